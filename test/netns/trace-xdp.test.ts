/**
 * trace --xdp (issue 22's high-rate mode) on real lab routers:
 *  - the same hops as the default path (the error queue, one trace per target), IPv4 and IPv6:
 *    targets that answer (a host owning a whole prefix) and one behind an unreachable route; the
 *    gateway's link-layer address resolved by the kernel when it has no entry yet;
 *  - every probe of a 2,048-probe sweep answered and matched, no reply unmatched or duplicated;
 *  - nothing stays attached (no XDP program on the interface, no program loaded, no AF_XDP
 *    socket) after SIGINT, SIGTERM or SIGKILL; SIGINT and SIGTERM still end with sweep-done;
 *  - refusals in one line;
 *  - the XDP program and its TypeScript mirror (probe/xsk-match.ts) agree on every frame of a
 *    property run (replies of the run, near misses, random bytes), and a frame it takes carries
 *    its stamp where XSK_STAMP says.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { PHANTOM_HOST4, PHANTOM_HOST6 } from '../../src/lab/plan.js';
import type { LabState } from '../../src/lab/lab.js';
import type { HopEvent, SweepDoneEvent, SweepPathEvent, SweepStartEvent, TraceEvent } from '../../src/trace/events.js';
import { BpfObject, bpfObjectPath } from '../../src/bpf/object.js';
import { native } from '../../src/native/index.js';
import { type XskFilter, encodeXskConfig, quotesProbe } from '../../src/probe/xsk-match.js';
import { XSK_STAMP, XSK_STAMP_MAGIC } from '../../src/probe/xsk-layout.js';
import { CLI, addrOf, labName, leftovers, nodeNs, parseEvents, runIn, sweepLab, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();

/** A prefix that dst answers for as a whole (a local route), so a sweep has many targets that reply. */
const OWNED4 = '10.254.0.0/16';

/**
 * dst answers for OWNED4 as a whole (a local route: IPv4's port unreachable then comes from the
 * address probed) and for `v6` (addresses of its own: IPv6 picks its source among those).
 */
function own(st: LabState, v6: string[]): void {
  const ns = nodeNs(st, 'dst');
  const cmds = [`route add local ${OWNED4} dev lo`, ...v6.map((a) => `addr add ${a}/128 dev lo nodad`)];
  const r = spawnSync('ip', ['-n', ns, '-batch', '-'], { input: cmds.join('\n') + '\n', encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

function targetsFile(dir: string, list: string[]): string {
  const f = join(dir, `targets-${list.length}-${list[0].replace(/[:.]/g, '_')}.txt`);
  writeFileSync(f, `# sweep targets\n${list.join('\n')}\n`);
  return f;
}

async function sweep(st: LabState, args: string[]): Promise<TraceEvent[]> {
  const run = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '--xdp', '--jsonl', ...args]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
  return parseEvents(run.stdout);
}

/** Per target, the responders TTL by TTL up to where the default path stopped (null: no reply). */
async function defaultPaths(st: LabState, file: string, maxTtl: number): Promise<Map<string, (string | null)[]>> {
  const run = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '-n', '--jsonl', '-q', '1', '-m', String(maxTtl), '-w', '1', '--targets', file]);
  assert.equal(run.code, 0, run.stderr);
  const out = new Map<string, (string | null)[]>();
  for (const e of parseEvents(run.stdout)) {
    if (e.type !== 'hop') continue;
    const h = e as HopEvent;
    const list = out.get(h.target!) ?? [];
    list[h.ttl - 1] = h.addrs[0] ?? null;
    out.set(h.target!, list);
  }
  return out;
}

for (const family of [4, 6] as const) {
  test(`--xdp IPv${family}: the same hops as the default path; a 2,048-probe sweep all matched`, opt, async () => {
    await withLab(sweepLab(labName(`x${family}`)), async (st) => {
      const owned = family === 4 ? ['10.254.0.1', '10.254.1.2', '10.254.200.3'] : ['fd00:254::1', 'fd00:254::1:2', 'fd00:254::c8:3'];
      const many = Array.from({ length: 256 }, (_, i) => (family === 4 ? `10.254.${i >> 4}.${(i & 15) + 1}` : `fd00:254::2:${i.toString(16)}`));
      own(st, family === 6 ? [...new Set([...owned, ...many])] : []);
      const dir = mkdtempSync(join(tmpdir(), 'pl-xdp-'));
      try {
        const dst = addrOf(st, 'dst', family);
        const phantom = family === 4 ? PHANTOM_HOST4 : PHANTOM_HOST6;
        const list = [dst, ...owned, phantom];
        const file = targetsFile(dir, list);
        // The lab's neighbour entries are permanent: without the gateway's, the sweep has the
        // kernel resolve it first (one datagram to the gateway).
        const gw = addrOf(st, 'r1', family);
        const srcIf = st.plan.nodes.find((n) => n.name === 'src')!.ifaces[0].name;
        const del = spawnSync('ip', ['-n', nodeNs(st, 'src'), 'neigh', 'del', gw, 'dev', srcIf], { encoding: 'utf8' });
        assert.equal(del.status, 0, del.stderr);
        // The phantom target is answered by r3's unreachable route; its IPv4 answers come from the
        // kernel's own route-error rate limit (a few per second per source): one run each way, TTLs to 4.
        const ev = await sweep(st, ['-m', '4', '-w', '1', '--targets', file]);
        const start = ev[0] as SweepStartEvent;
        assert.equal(start.type, 'sweep-start');
        assert.equal(start.family, family);
        assert.equal(start.gateway, addrOf(st, 'r1', family));
        assert.equal(start.transport.kind, 'af_xdp');
        assert.equal(start.send_stamps, 'per-batch');
        const learnt = spawnSync('ip', ['-n', nodeNs(st, 'src'), 'neigh', 'show', gw, 'dev', srcIf], { encoding: 'utf8' }).stdout;
        assert.match(learnt, /lladdr .* (REACHABLE|STALE|DELAY|PROBE)/, `the gateway resolved by the kernel: ${learnt}`);
        const paths = ev.filter((e): e is SweepPathEvent => e.type === 'path');
        assert.deepEqual(paths.map((p) => p.target), list, 'one path per target, in the order given');
        const r = (n: string, link: number) => addrOf(st, n, family, link);
        const chain = [r('r1', 0), r('r2', 1), r('r3', 2)];
        for (const p of paths.slice(0, 4)) {
          assert.equal(p.end, 'reached', `${p.target}: ${JSON.stringify(p.hops)}`);
          assert.deepEqual(p.hops.map((h) => h.addr), [...chain, p.target]);
          assert.deepEqual(p.hops.map((h) => h.kind), ['time-exceeded', 'time-exceeded', 'time-exceeded', 'unreachable']);
          assert.equal(p.hops[3].code, 'port');
          for (const h of p.hops) assert.ok(h.rtt_ms! > 0 && h.rtt_ms! < 50, `${p.target} TTL ${h.ttl}: RTT ${h.rtt_ms} ms`);
        }
        // The phantom target: r1, r2, then r3 refuses it. IPv6's refusal is an ordinary ICMPv6
        // error (the lab lifts its rate limit); IPv4's goes through the kernel's route-error
        // limiter (net.ipv4.route.error_cost, global, not the lab's), which keeps the first
        // errors to a new source back: there, r3 may stay silent.
        const ph = paths[4];
        assert.deepEqual(ph.hops.slice(0, 2).map((h) => h.addr), chain.slice(0, 2));
        if (family === 6 || ph.end !== 'silent') {
          assert.equal(ph.end, 'unreachable');
          assert.deepEqual([ph.hops.length, ph.hops[2].addr, ph.hops[2].kind], [3, chain[2], 'unreachable']);
        }
        const done = ev.at(-1) as SweepDoneEvent;
        assert.equal(done.type, 'sweep-done');
        assert.equal(done.reason, 'complete');
        assert.equal(done.probes_sent, 5 * 4);
        assert.equal(done.unmatched, 0);
        assert.equal(done.targets_reached, 4);
        assert.ok(done.replies >= 4 * 4 + 2, `${done.replies} replies`);
        assert.equal(done.kernel.redirected, done.replies + done.duplicates + done.unmatched, 'every frame the program handed over was read');

        // The default path, target by target: the same responders at every TTL (the phantom's
        // last hop aside, which the route-error rate limit may leave unanswered there).
        const def = await defaultPaths(st, file, 4);
        for (const p of paths.slice(0, 4)) assert.deepEqual(p.hops.map((h) => h.addr), def.get(p.target), `${p.target}: --xdp and the error queue agree`);
        assert.deepEqual(def.get(phantom)!.slice(0, 2), chain.slice(0, 2));
        if (family === 6) assert.deepEqual(def.get(phantom), chain);

        // 256 targets x TTL 1..8: every probe answered (TTL 5..8 by the target again) and matched.
        const big = await sweep(st, ['-m', '8', '-w', '1', '--targets', targetsFile(dir, many)]);
        const bd = big.at(-1) as SweepDoneEvent;
        assert.deepEqual([bd.probes_sent, bd.replies, bd.unmatched, bd.duplicates, bd.targets_reached], [2048, 2048, 0, 0, 256]);
        assert.deepEqual([bd.sockets.rx_dropped, bd.sockets.rx_ring_full], [0, 0]);
        const bp = big.filter((e): e is SweepPathEvent => e.type === 'path');
        assert.ok(bp.every((p) => p.hops.length === 4 && p.hops[3].addr === p.target));
        // Paced: every probe sent by its own call and timed just before it, the same answers.
        const paced = await sweep(st, ['-m', '8', '-w', '1', '--rate', '20000', '--targets', targetsFile(dir, many)]);
        assert.equal((paced[0] as SweepStartEvent).send_stamps, 'per-probe');
        const pd = paced.at(-1) as SweepDoneEvent;
        assert.deepEqual([pd.probes_sent, pd.replies, pd.unmatched, pd.targets_reached], [2048, 2048, 0, 256]);
        assert.ok(pd.send_calls >= 2048, `${pd.send_calls} send calls`);
        assert.ok(pd.offered_pps! < 24000, `paced at ${pd.offered_pps} probes/s`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

test('--xdp: nothing stays attached after SIGINT, SIGTERM or SIGKILL', opt, async () => {
  await withLab(sweepLab(labName('xk')), async (st) => {
    own(st, []);
    const src = nodeNs(st, 'src');
    const dir = mkdtempSync(join(tmpdir(), 'pl-xdp-'));
    try {
      const file = targetsFile(dir, Array.from({ length: 4096 }, (_, i) => `10.254.${i >> 8}.${i & 255}`));
      assert.deepEqual(await leftovers(src), [], 'nothing before');
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
        // 32,768 probes at 2,000 a second: a signal comes long before the end.
        const child = spawn('ip', ['netns', 'exec', src, process.execPath, CLI, 'trace', '--xdp', '--jsonl', '--rate', '2000', '-m', '8', '--targets', file], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        await new Promise<void>((resolve) => {
          const check = () => (out.includes('"type":"sweep-start"') ? setTimeout(resolve, 300) : setTimeout(check, 20));
          check();
        });
        const during = await runIn(src, ['ip', '-d', 'link', 'show']);
        assert.match(during.stdout, /prog\/xdp/, 'the program is attached while it runs');
        child.kill(sig);
        const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
        if (sig !== 'SIGKILL') {
          assert.equal(code, 0, `${sig}: it exits by itself`);
          const ev = parseEvents(out);
          const done = ev.at(-1) as SweepDoneEvent;
          assert.equal(done.type, 'sweep-done', `${sig}: the run ends with its done event`);
          assert.equal(done.reason, 'interrupted');
          assert.ok(done.probes_sent > 0 && done.probes_sent < 32768, `${sig}: ${done.probes_sent} probes sent before it`);
          assert.equal(ev.filter((e) => e.type === 'path').length, 4096, 'every target still gets its path');
        }
        assert.deepEqual(await leftovers(src), [], `nothing left after ${sig}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('--xdp refusals in one line', opt, async () => {
  await withLab(sweepLab(labName('xr')), async (st) => {
    const src = nodeNs(st, 'src');
    const dst = addrOf(st, 'dst', 4);
    const cases: Array<[string[], number, RegExp, number?]> = [
      [['--xdp', '-I', dst], 2, /^pathlens: -I does not go with --xdp \(a sweep sends one UDP probe per target and TTL\)\n$/],
      [['--xdp', 'localhost'], 2, /^pathlens: --xdp takes IP addresses \(a sweep resolves no names\): "localhost" is not one\n$/],
      [['--xdp', dst, addrOf(st, 'dst', 6)], 2, /^pathlens: --xdp: .* is IPv6 but the sweep is IPv4 \(one family per sweep: -4 or -6\)\n$/],
      [['--xdp', addrOf(st, 'r1', 4)], 2, /^pathlens: --xdp: .* is on the probing interface's own link \(no gateway\); AF_XDP probes go through a router\n$/],
      [['--rate', '10', dst], 2, /^pathlens: --rate goes with --xdp\n$/],
      [['--xdp', '--xdp-ring', '100', dst], 2, /power of two/],
      [['--xdp', dst], 1, /^pathlens: --xdp: AF_XDP sockets and the XDP program need CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW \(run as root\)\n$/, 65534],
    ];
    for (const [args, code, re, uid] of cases) {
      const r = await runIn(src, [process.execPath, CLI, 'trace', '-n', ...args], { uid });
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
    assert.deepEqual(await leftovers(src), []);
  });
});

/** A reply quoting a probe: Ethernet, IP, ICMP (type, code), the quoted IP and UDP headers, 8 bytes of payload. */
function replyFrame(family: 4 | 6, type: number, sport: number, dport: number): Uint8Array {
  const l3 = 14;
  const ipLen = family === 4 ? 20 : 40;
  const f = new Uint8Array(l3 + ipLen + 8 + ipLen + 8 + 8);
  const dv = new DataView(f.buffer);
  dv.setUint16(12, family === 4 ? 0x0800 : 0x86dd);
  const inner = l3 + ipLen + 8;
  if (family === 4) {
    f[l3] = 0x45;
    f[l3 + 8] = 64;
    f[l3 + 9] = 1;
    f[inner] = 0x45;
    f[inner + 8] = 1;
    f[inner + 9] = 17;
  } else {
    f[l3] = 0x60;
    f[l3 + 6] = 58;
    f[l3 + 7] = 64;
    f[inner] = 0x60;
    f[inner + 6] = 17;
    f[inner + 7] = 1;
  }
  f[l3 + ipLen] = type;
  dv.setUint16(inner + ipLen, sport);
  dv.setUint16(inner + ipLen + 2, dport);
  return f;
}

test('--xdp: the XDP program and its TypeScript mirror agree on every frame; a frame taken carries the stamp', opt, () => {
  const n = native();
  for (const family of [4, 6] as const) {
    const filter: XskFilter = { family, sport: 40000, dportLo: 33434, dportHi: 33434 + 15 };
    const obj = BpfObject.open(bpfObjectPath('xsk.bpf.o'), 'xsk');
    try {
      obj.setInitialValue('.rodata', encodeXskConfig(filter));
      obj.load();
      const prog = obj.progFd('pl_xsk');
      const out = new Uint8Array(2048);
      const res = new Float64Array(2);
      let taken = 0;
      let left = 0;
      const replies =
        // Replies of the run and near misses: the type, the ports, a byte anywhere, a cut.
        fc
          .record({
            type: fc.constantFrom(3, 11, 1, 3, 11, 1, 0, 4, 129),
            sport: fc.constantFrom(filter.sport, filter.sport, filter.sport, filter.sport + 1, 0),
            dport: fc.integer({ min: filter.dportLo - 2, max: filter.dportHi + 2 }),
            pokes: fc.array(fc.tuple(fc.nat(120), fc.nat(255)), { maxLength: 1 }),
            cut: fc.oneof({ arbitrary: fc.constant(null), weight: 4 }, { arbitrary: fc.nat(140), weight: 1 }),
            other: fc.constantFrom(false, false, false, false, true),
          })
          .map(({ type, sport, dport, pokes, cut, other }) => {
            let f = replyFrame(other ? (family === 4 ? 6 : 4) : family, type, sport, dport);
            for (const [at, v] of pokes) if (at < f.length) f[at] = v;
            if (cut !== null) f = f.subarray(0, Math.max(14, Math.min(f.length, cut)));
            return f;
          });
      const frames = fc.oneof({ weight: 4, arbitrary: replies }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 14, maxLength: 160 }) });
      fc.assert(
        fc.property(frames, (f) => {
          const frame = Uint8Array.from(f);
          const rc = n.bpfTestRunXdp(prog, frame, out, res);
          assert.equal(rc, 0);
          assert.equal(res[0], 2, 'XDP_PASS: no socket in the map, everything goes on');
          const want = quotesProbe(frame, 0, frame.length, filter);
          const stamped = res[1] >= XSK_STAMP.size && new DataView(out.buffer).getUint32(XSK_STAMP.magic, true) === XSK_STAMP_MAGIC;
          if (stamped) out.fill(0, 0, XSK_STAMP.size);
          if (want) taken++;
          else left++;
          return want === stamped;
        }),
        { numRuns: 3000, seed: 22 },
      );
      assert.ok(taken > 200 && left > 200, `both outcomes are exercised (${taken} taken, ${left} left)`);
    } finally {
      obj.close();
    }
  }
});
