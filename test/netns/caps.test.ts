/**
 * Least privilege (issue 29): each method works with exactly the capability docs/privileges.md
 * names, in a process that is not root (uid 65534 with that one capability as an ambient one,
 * through setpriv), and without it refuses in one line naming it. The namespace's
 * ping_group_range excludes the user, so ICMP needs the raw socket. (pping's BPF capture with
 * CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN: test/netns/pping-bpf.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { chain } from '../../src/lab/presets.js';
import type { MonitorEvent } from '../../src/monitor/events.js';
import type { StartEvent, TraceEvent } from '../../src/trace/events.js';
import { CLI, addrOf, labName, nodeNs, parseEvents, runIn, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';
import { jsonlOf } from '../helpers/schema.js';
import { startUntil } from '../helpers/spawn.js';

const opt = rootOnly();
const monitorEvents = jsonlOf<MonitorEvent>('monitor-v1.schema.json', false);

/** setpriv as uid 65534 with `caps` (e.g. "+net_raw") ambient, or none. */
const as = (caps: string | null) => ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...(caps ? [`--inh-caps=${caps}`, `--ambient-caps=${caps}`] : []), '--'];

test('not root, one capability each: CAP_NET_RAW for raw ICMP and TCP probes (trace and monitor), CAP_NET_ADMIN or CAP_NET_RAW for --mark; without it, one line naming it', opt, async () => {
  await withLab(chain({ name: labName('cp'), routers: 2 }), async (st) => {
    const src = nodeNs(st, 'src');
    const r = spawnSync('ip', ['netns', 'exec', src, 'sysctl', '-qw', 'net.ipv4.ping_group_range=1 0'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const dst = addrOf(st, 'dst', 4);
    const trace = (caps: string | null, args: string[]) => runIn(src, [...as(caps), process.execPath, CLI, 'trace', '-n', '--jsonl', ...args, dst]);

    for (const args of [['-I'], ['-T', '--raw', '-p', '9']]) {
      const ok = await trace('+net_raw', args);
      assert.equal(ok.code, 0, `${args.join(' ')}: ${ok.stderr}`);
      const ev = parseEvents(ok.stdout) as TraceEvent[];
      assert.equal((ev[0] as StartEvent).socket, 'raw', args.join(' '));
      const last = ev.at(-1)!;
      assert.equal(last.type === 'done' ? last.reason : last.type, 'reached', args.join(' '));
      const no = await trace(null, args);
      assert.equal(no.code, 1);
      assert.equal(no.stderr.trim().split('\n').length, 1, no.stderr);
      assert.match(no.stderr, /^pathlens: .*CAP_NET_RAW/);
    }
    // SO_MARK: CAP_NET_ADMIN, or CAP_NET_RAW since Linux 5.17.
    for (const caps of ['+net_admin', '+net_raw']) {
      const mark = await trace(caps, ['--mark', '7']);
      assert.equal(mark.code, 0, `${caps}: ${mark.stderr}`);
    }
    const noMark = await trace(null, ['--mark', '7']);
    assert.notEqual(noMark.code, 0);
    assert.equal(noMark.stderr, 'pathlens: --mark: setting SO_MARK needs CAP_NET_ADMIN (or CAP_NET_RAW, Linux 5.17), or root\n');

    // The monitor's ICMP with the ping socket refused: the raw socket, with CAP_NET_RAW only.
    const mon = await runIn(src, [...as('+net_raw'), process.execPath, CLI, 'monitor', '--jsonl', '-I', '--interval', '0.1', '--window', '1', '--timeout', '300', '--duration', '1.5', dst]);
    assert.equal(mon.code, 0, mon.stderr);
    const me = monitorEvents(mon.stdout);
    const chosen = me.find((e) => e.type === 'method');
    assert.ok(chosen && chosen.type === 'method' && chosen.action === 'chosen' && chosen.socket === 'raw', JSON.stringify(chosen));
    const done = me.at(-1)!;
    assert.ok(done.type === 'done' && done.probes_sent > 5 && done.replies === done.probes_sent, JSON.stringify(done));
  });
});

test('ktrace not root: CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_DAC_READ_SEARCH (tracefs), CAP_SYS_ADMIN for --netns; it measures with exactly those, and without one names it', opt, async () => {
  await withLab(chain({ name: labName('kc'), routers: 1 }), async (st) => {
    const src = nodeNs(st, 'src');
    const dst = addrOf(st, 'dst', 4);
    const caps = '+bpf,+perfmon,+net_admin,+dac_read_search,+sys_admin';
    const kt = (c: string) => [...as(c), process.execPath, CLI, 'ktrace', '--src', addrOf(st, 'src', 4), '--dst', dst, '--netns', src, '--jsonl'];
    const p = startUntil(kt(caps)[0], [...kt(caps).slice(1), '--duration', '4'], '"type":"start"');
    await p.started;
    const ping = await runIn(src, ['ping', '-c', '3', '-i', '0.2', dst]);
    assert.equal(ping.code, 0, ping.stderr);
    assert.equal(await p.exit, 0, p.err());
    const trips = p.out().split('\n').filter((l) => l.includes('"type":"rtt"'));
    assert.equal(trips.length, 3, p.out().slice(-300));
    for (const drop of ['dac_read_search', 'perfmon', 'sys_admin']) {
      const fewer = caps.split(',').filter((c) => c !== `+${drop}`).join(',');
      const r = spawnSync(kt(fewer)[0], [...kt(fewer).slice(1), '--duration', '1'], { encoding: 'utf8' });
      assert.equal(r.status, 1, `without ${drop}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^pathlens: ktrace needs .* or root: missing CAP_${drop.toUpperCase()}$`, 'm'));
    }
  });
});

test('pping --capture packet not root: CAP_NET_RAW only; it measures with it, and without it says so in one line', opt, async () => {
  await withLab(chain({ name: labName('pc'), routers: 1 }), async (st) => {
    const src = nodeNs(st, 'src');
    const r1 = nodeNs(st, 'r1');
    const dst = addrOf(st, 'dst', 4);
    const argv = (caps: string | null) => ['ip', ['netns', 'exec', r1, ...as(caps), process.execPath, CLI, 'pping', '-i', 'e0', '--capture', 'packet', '--icmp', '-F', 'jsonl', '--duration', '3']] as const;
    const [cmd, args] = argv('+net_raw');
    const p = startUntil(cmd, [...args], '"type":"start"');
    await p.started;
    const ping = await runIn(src, ['ping', '-c', '3', '-i', '0.2', dst]);
    assert.equal(ping.code, 0, ping.stderr);
    assert.equal(await p.exit, 0, p.err());
    assert.ok(p.out().split('\n').filter((l) => l.includes('"rtt"')).length >= 3, p.out().slice(-300));
    const [c2, a2] = argv(null);
    const no = spawnSync(c2, [...a2], { encoding: 'utf8' });
    assert.equal(no.status, 1, no.stderr);
    assert.equal(no.stderr.trim().split('\n').length, 1, no.stderr);
    assert.match(no.stderr, /^pathlens: packet socket refused \(EPERM\): capturing needs CAP_NET_RAW/);
  });
});
