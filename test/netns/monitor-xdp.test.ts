/**
 * monitor --xdp: the UDP method's probes as frames through AF_XDP, answers picked out by the XDP
 * program. On the sweep lab (dst answers for a whole /16, and for addresses of its own in IPv6):
 * every probe of every target answered in every whole window, none unreachable, RTTs of the lab's
 * order, IPv4 and IPv6; nothing left attached after SIGTERM; refusals in one line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { MethodEvent, MonitorEvent, StatsEvent } from '../../src/monitor/events.js';
import { CLI, labName, leftovers, nodeNs, runIn, sweepLab, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';
import { jsonlOf } from '../helpers/schema.js';

const opt = rootOnly();
const events = jsonlOf<MonitorEvent>('monitor-v1.schema.json', false);

test('monitor --xdp: UDP through AF_XDP, every probe answered in every whole window (IPv4: 256 targets, IPv6: 16); nothing left after SIGTERM; refusals', opt, async () => {
  await withLab(sweepLab(labName('mx')), async (st) => {
    const src = nodeNs(st, 'src');
    const v6 = Array.from({ length: 16 }, (_, i) => `fd00:254::3:${(i + 1).toString(16)}`);
    const cmds = ['route add local 10.254.0.0/16 dev lo', ...v6.map((a) => `addr add ${a}/128 dev lo nodad`)];
    const r = spawnSync('ip', ['-n', nodeNs(st, 'dst'), '-batch', '-'], { input: `${cmds.join('\n')}\n`, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const dir = mkdtempSync(join(tmpdir(), 'pl-monx-'));
    try {
      for (const [family, targets] of [
        [4, Array.from({ length: 256 }, (_, i) => `10.254.${i >> 4}.${(i & 15) + 1}`)],
        [6, v6],
      ] as const) {
        const file = join(dir, `targets${family}.json`);
        writeFileSync(file, JSON.stringify({ defaults: { method: 'udp', interval: 0.1 }, targets }));
        const run = await runIn(src, [process.execPath, CLI, 'monitor', '--xdp', `-${family}`, '--jsonl', '-c', file, '--window', '1', '--timeout', '300', '--duration', '4', '--quiet'], { timeoutMs: 60000 });
        assert.equal(run.code, 0, run.stderr);
        const ev = events(run.stdout);
        const methods = ev.filter((e): e is MethodEvent => e.type === 'method');
        assert.equal(methods.length, targets.length);
        assert.ok(methods.every((m) => m.method === 'udp' && m.socket === 'af_xdp'), JSON.stringify(methods[0]));
        const whole = ev.filter((e): e is StatsEvent => e.type === 'stats' && e.window_start_ms >= 1000 && e.window_start_ms < 3000);
        assert.equal(whole.length, 2 * targets.length, `IPv${family}: target windows ${whole.length}`);
        const bad = whole.filter((s) => s.sent < 8 || s.received !== s.sent || s.unreachable > 0);
        assert.equal(bad.length, 0, `IPv${family}: ${bad.length} windows short, lossy or unreachable, e.g. ${JSON.stringify(bad[0])}`);
        assert.ok(whole.every((s) => s.max_ms! < 50), `IPv${family}: RTTs of the lab's order`);
        const done = ev.at(-1)!;
        assert.ok(done.type === 'done' && done.replies === done.probes_sent, JSON.stringify(done));
      }
      // SIGTERM ends it with its done event, and nothing stays.
      const file = join(dir, 'targets4.json');
      const child = spawnSync('sh', ['-c', `ip netns exec ${src} ${process.execPath} ${CLI} monitor --xdp -4 --jsonl -c ${file} --quiet & pid=$!; sleep 2; kill -TERM $pid; wait $pid; echo "exit=$?"`], { encoding: 'utf8', maxBuffer: 1 << 26 });
      assert.match(child.stdout, /exit=0\n$/);
      assert.match(child.stdout, /"type":"done"/);
      assert.deepEqual(await leftovers(src), []);
      // Refusals.
      for (const [args, re] of [
        [['--xdp', '10.254.0.1'], /^pathlens: --xdp needs -4 or -6 \(one XDP program on the interface: one family\)\n$/],
        [['--xdp', '-4', '--mark', '7', '10.254.0.1'], /^pathlens: --mark does not go with --xdp/],
        [['--xdp', '-4', '-U', '10.100.0.2'], /^pathlens: --xdp: 10.100.0.2 is on the probing interface's own link \(no gateway\); AF_XDP probes go through a router\n$/],
      ] as const) {
        const x = await runIn(src, [process.execPath, CLI, 'monitor', '--quiet', '--duration', '2', ...args]);
        assert.notEqual(x.code, 0, args.join(' '));
        assert.match(x.stderr, re, args.join(' '));
      }
      assert.deepEqual(await leftovers(src), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
