/**
 * The monitor's UDP probes share one socket with IP_RECVERR, and every Port Unreachable (the
 * answer of a live target) also sets the socket's pending error, which fails the next send to
 * whatever target it goes. In the lab the answer comes back inside the very sendmmsg that carried
 * the probe. 300 UDP targets (an AnyIP /16 behind one host) must still get their probes sent and
 * answered: no probe dropped for a full socket that was not full, and no target called
 * unreachable for another target's answer. (Whether a loaded host keeps the exact schedule is
 * another question; here every window must have probes, all of them answered.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chain } from '../../src/lab/presets.js';
import type { MonitorEvent, StatsEvent } from '../../src/monitor/events.js';
import { CLI, labName, nodeNs, runIn, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';
import { jsonlOf } from '../helpers/schema.js';

const opt = rootOnly();
const events = jsonlOf<MonitorEvent>('monitor-v1.schema.json', false);

function sh(ns: string, ...cmds: string[]): void {
  for (const c of cmds) {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', c], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${c}: ${r.stderr}`);
  }
}

test('monitor UDP to 300 targets on one socket: probes in every window, every probe answered, none unreachable (a pending error from one answer never costs another target its probe)', opt, async () => {
  await withLab(chain({ name: labName('mu'), routers: 1 }), async (st) => {
    const src = nodeNs(st, 'src');
    const r1 = st.plan.nodes.find((n) => n.name === 'r1')!;
    const dstNode = st.plan.nodes.find((n) => n.name === 'dst')!;
    sh(src, `ip route add 10.201.0.0/16 via ${r1.ifaces.find((i) => i.peer === 'src')!.v4}`);
    sh(nodeNs(st, 'r1'), `ip route add 10.201.0.0/16 via ${dstNode.ifaces[0].v4}`);
    sh(nodeNs(st, 'dst'), 'ip route add local 10.201.0.0/16 dev lo', 'sysctl -qw net.ipv4.icmp_ratelimit=0', 'sysctl -qw net.ipv4.icmp_msgs_per_sec=100000');
    const dir = mkdtempSync(join(tmpdir(), 'pl-monu-'));
    try {
      const file = join(dir, 'targets.json');
      const N = 300;
      const targets = Array.from({ length: N }, (_, i) => `10.201.${Math.floor(i / 250)}.${(i % 250) + 1}`);
      writeFileSync(file, JSON.stringify({ defaults: { method: 'udp', interval: 0.1 }, targets }));
      const r = await runIn(src, [process.execPath, CLI, 'monitor', '--jsonl', '-c', file, '--window', '1', '--timeout', '300', '--duration', '4', '--quiet'], { timeoutMs: 60000 });
      assert.equal(r.code, 0, r.stderr);
      const ev = events(r.stdout);
      const stats = ev.filter((e): e is StatsEvent => e.type === 'stats');
      // Every target in every whole window (the first three), and close to its 10 probes in each
      // (a window only reports what was sent in it: before the fix, 440 of 1,500 target windows of
      // this test with 500 targets had a probe at all).
      const whole = stats.filter((s) => s.window_start_ms < 3000);
      assert.equal(whole.length, 3 * N, `target windows with probes: ${whole.length} of ${3 * N}`);
      const sent = whole.reduce((a, s) => a + s.sent, 0);
      assert.ok(sent >= 0.8 * 30 * N, `probes in the whole windows: ${sent} of ${30 * N} asked`);
      const bad = stats.filter((s) => s.unreachable > 0 || s.received !== s.sent);
      assert.equal(bad.length, 0, `windows with unreachable or lost probes: ${bad.length}, e.g. ${JSON.stringify(bad[0])}`);
      const done = ev.at(-1)!;
      assert.ok(done.type === 'done' && done.replies === done.probes_sent && done.probes_sent >= 0.8 * N * 40, JSON.stringify(done));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
