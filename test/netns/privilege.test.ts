/**
 * Dropping root (issue 29): every capability started as root with `--user nobody` runs, once set
 * up, as uid 65534 with exactly the capabilities docs/privileges.md lists for that run, no new
 * privileges, a bounding set of those only; and still measures. Checked from /proc/PID/status
 * while it runs (after its first result: nothing it parsed was parsed as root). Without --user,
 * under sudo (SUDO_UID), it becomes sudo's user; `--user root` stays root; a hook the monitor runs
 * belongs to the user; refusals are one line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CAPS, type CapName } from '../../src/core/caps.js';
import { chain } from '../../src/lab/presets.js';
import { CLI, addrOf, labName, nodeNs, runIn, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';
import { startUntil } from '../helpers/spawn.js';

const opt = rootOnly();

interface Status {
  uid: number[];
  gid: number[];
  eff: bigint;
  prm: bigint;
  bnd: bigint;
  noNewPrivs: number;
}

function status(pid: number): Status {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(s)![1].trim();
  return {
    uid: field('Uid').split(/\s+/).map(Number),
    gid: field('Gid').split(/\s+/).map(Number),
    eff: BigInt(`0x${field('CapEff')}`),
    prm: BigInt(`0x${field('CapPrm')}`),
    bnd: BigInt(`0x${field('CapBnd')}`),
    noNewPrivs: Number(field('NoNewPrivs')),
  };
}

const mask = (caps: CapName[]) => caps.reduce((m, c) => m | (1n << BigInt(CAPS[c])), 0n);

/** Starts `args` in `ns` (null: here) as root; once stdout shows `marker`, reads its status; then waits for the end. */
async function watch(ns: string | null, args: string[], marker: string, env: NodeJS.ProcessEnv = {}, during?: () => Promise<void>): Promise<{ st: Status; out: string; err: string; code: number | null }> {
  // `ip netns exec` execs the command: the child's pid is pathlens'.
  const p = ns ? startUntil('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args], marker, env) : startUntil(process.execPath, [CLI, ...args], marker, env);
  await p.started;
  // With traffic to make: read once it has been measured (the start line may precede the drop).
  if (during) await during();
  const st = status(p.child.pid!);
  const code = await p.exit;
  return { st, out: p.out(), err: p.err(), code };
}

function assertDropped(st: Status, keep: CapName[], what: string): void {
  assert.deepEqual(st.uid, [65534, 65534, 65534, 65534], `${what}: uids`);
  assert.deepEqual(st.gid, [65534, 65534, 65534, 65534], `${what}: gids`);
  assert.equal(st.eff, mask(keep), `${what}: effective set 0x${st.eff.toString(16)}, expected ${keep.join(', ') || 'none'}`);
  assert.equal(st.prm, mask(keep), `${what}: permitted set`);
  assert.equal(st.bnd, mask(keep), `${what}: bounding set`);
  assert.equal(st.noNewPrivs, 1, `${what}: no new privileges`);
}

test('--user nobody: trace, monitor, pping and ktrace run as uid 65534 with only the capabilities they need, and measure; sudo\'s user by default; hooks run as the user', opt, async () => {
  await withLab(chain({ name: labName('pv'), routers: 2 }), async (st) => {
    const src = nodeNs(st, 'src');
    const r1 = nodeNs(st, 'r1');
    const dst = addrOf(st, 'dst', 4);
    // The user may not open ping sockets here: ICMP goes through the raw socket it kept.
    spawnSync('ip', ['netns', 'exec', src, 'sysctl', '-qw', 'net.ipv4.ping_group_range=1 0']);
    const ping = () => runIn(src, ['ping', '-c', '4', '-i', '0.2', dst]).then((r) => assert.equal(r.code, 0, r.stderr));

    // trace: UDP needs nothing; ICMP and raw TCP keep CAP_NET_RAW; --netns keeps CAP_SYS_ADMIN (setns for each round's sockets).
    for (const [args, keep] of [
      [[], []],
      [['-I'], ['CAP_NET_RAW']],
      [['-T', '--raw', '-p', '9'], ['CAP_NET_RAW']],
    ] as [string[], CapName[]][]) {
      const r = await watch(src, ['trace', '-n', '--user', 'nobody', '-c', '3', '--interval', '0.4', '--jsonl', ...args, dst], '"type":"hop"');
      assert.equal(r.code, 0, r.err);
      assertDropped(r.st, keep, `trace ${args.join(' ')}`);
      const rounds = r.out.split('\n').filter((l) => l.includes('"type":"round"'));
      assert.equal(rounds.length, 3, r.out.slice(-400));
      assert.ok(rounds.every((l) => JSON.parse(l).reached === true), rounds.join('\n'));
    }
    const viaNetns = await watch(null, ['trace', '-n', '--user', 'nobody', '--netns', src, '-c', '3', '--interval', '0.4', '--jsonl', dst], '"type":"hop"');
    assert.equal(viaNetns.code, 0, viaNetns.err);
    assertDropped(viaNetns.st, ['CAP_SYS_ADMIN'], 'trace --netns');

    // Under sudo: sudo's user, with no option; --user root stays root.
    const sudo = { SUDO_UID: '65534', SUDO_GID: '65534', SUDO_USER: 'nobody' };
    const bySudo = await watch(src, ['trace', '-n', '-c', '3', '--interval', '0.4', '--jsonl', dst], '"type":"hop"', sudo);
    assert.equal(bySudo.code, 0, bySudo.err);
    assertDropped(bySudo.st, [], 'trace under sudo');
    const stay = await watch(src, ['trace', '-n', '--user', 'root', '-c', '3', '--interval', '0.4', '--jsonl', dst], '"type":"hop"', sudo);
    assert.equal(stay.code, 0, stay.err);
    assert.deepEqual(stay.st.uid, [0, 0, 0, 0], '--user root');

    // monitor: ICMP through the raw socket it kept; an --on-change hook runs as the user, without capabilities.
    const dir = mkdtempSync(join(tmpdir(), 'pl-pv-'));
    chmodSync(dir, 0o777);
    const hookOut = join(dir, 'hook');
    const mon = await watch(src, ['monitor', '--user', 'nobody', '-I', '--interval', '0.1', '--window', '1', '--timeout', '300', '--duration', '2.5', '--jsonl', '--on-change', `grep -E '^(Uid|CapEff)' /proc/self/status > ${hookOut}`, dst], '"type":"stats"');
    assert.equal(mon.code, 0, mon.err);
    assertDropped(mon.st, ['CAP_NET_RAW'], 'monitor');
    const stats = mon.out.split('\n').filter((l) => l.includes('"type":"stats"')).map((l) => JSON.parse(l) as { received: number; method: string });
    assert.ok(stats.length >= 2 && stats.every((s) => s.method === 'icmp' && s.received > 0), JSON.stringify(stats));
    const hook = readFileSync(hookOut, 'utf8');
    assert.match(hook, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m, hook);
    assert.match(hook, /^CapEff:\s+0+$/m, hook);

    // pping on r1, packet socket (nothing kept) and BPF (map sweeps and the detach kept).
    for (const [capture, keep] of [['packet', []], ['bpf', ['CAP_NET_ADMIN', 'CAP_BPF', 'CAP_SYS_ADMIN']]] as [string, CapName[]][]) {
      const pp = await watch(r1, ['pping', '-i', 'e0', '--netns', r1, '--capture', capture, '--icmp', '--user', 'nobody', '--duration', '3', '-F', 'jsonl'], '"type":"start"', {}, ping);
      assert.equal(pp.code, 0, pp.err);
      assertDropped(pp.st, keep, `pping --capture ${capture}`);
      const rtts = pp.out.split('\n').filter((l) => l.includes('"rtt"'));
      assert.ok(rtts.length >= 3, `pping --capture ${capture}: ${rtts.length} RTTs`);
    }

    // ktrace: the programs loaded as root; then the user, keeping the map reads and the detach.
    const kt = await watch(src, ['ktrace', '--src', addrOf(st, 'src', 4), '--dst', dst, '--netns', src, '--user', 'nobody', '--duration', '3', '--jsonl'], '"type":"start"', {}, ping);
    assert.equal(kt.code, 0, kt.err);
    assertDropped(kt.st, ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN'], 'ktrace');
    assert.ok(kt.out.split('\n').filter((l) => l.includes('"type":"rtt"')).length >= 4, kt.out.slice(-300));

    // Refusals: one line each.
    const unknown = await runIn(src, [process.execPath, CLI, 'trace', '-n', '--user', 'no-such-user-here', dst]);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, 'pathlens: --user no-such-user-here: no such user\n');
    const notRoot = await runIn(src, [process.execPath, CLI, 'trace', '-n', '--user', 'root', dst], { uid: 65534 });
    assert.equal(notRoot.code, 2);
    assert.equal(notRoot.stderr, 'pathlens: --user root: only root can become another user (this process runs as uid 65534)\n');
  });
});
