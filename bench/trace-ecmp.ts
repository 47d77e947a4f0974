/**
 * Adaptive multipath discovery: `pathlens trace --ecmp auto` vs scamper's `tracelb` (the MDA),
 * on lab diamonds of width 2, 4, 8 and 16 (src - ra - {m1..mW} - rb - dst, L4 hashing), IPv4
 * and IPv6, 95% confidence, UDP probes whose flows differ in destination port for both.
 *
 * For each width and family: pathlens N runs (default 100): how many found every next hop at
 * TTL 2 and 3, probes per run (min/median/max), wall time per process (median); scamper M runs
 * (default 2, it is slow): the same figures. Then the ratios of the medians.
 *
 *   sudo node dist/bench/trace-ecmp.js [pathlens-runs=100] [scamper-runs=2] [--wait-probe CS] [--scamper-timeout S] [--widths 2,4,8,16]
 *
 * Run r of either tool (r = 0, 1, ...) sets the multipath hash seed of every router to r+1
 * (net.ipv4.fib_multipath_hash_seed, which IPv6 uses too) before it starts, so the two tools meet
 * the same sequence of hash functions. Left at 0, every namespace uses one random key: ra's choice
 * of branch and rb's choice of the route back for its Time Exceeded then agree, and rb's address at
 * TTL 3 names the branch taken; with seeds of their own they do not, as between real routers.
 *
 * --wait-probe sets scamper's gap between probes (-W, hundredths of a second; its default 25 is
 * used unless given; 15 is the least it takes). A scamper run is stopped after --scamper-timeout
 * seconds (90): here, scamper 20211212's IPv6 tracelb matches no reply and waits out its 5 s
 * timeout for every probe, and is reported as giving no result.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { labDown, labUp } from '../src/lab/lab.js';
import { ecmp } from '../src/lab/presets.js';
import type { DoneEvent, HopEvent, TraceEvent } from '../src/trace/events.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const waitProbe = flag('--wait-probe');
const WIDTHS = (flag('--widths') ?? '2,4,8,16').split(',').map(Number);
const RUNS = Number(args[0] ?? 100);
const SC_RUNS = Number(args[1] ?? 2);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function run(ns: string, cmd: string[], timeoutMs = 0): { ms: number; stdout: string; status: number; stderr: string } {
  const t0 = performance.now();
  const r = spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: timeoutMs, killSignal: 'SIGKILL' });
  return { ms: performance.now() - t0, stdout: r.stdout ?? '', stderr: r.stderr ?? '', status: r.status ?? -1 };
}

/** A scamper run longer than this is stopped and reported as such (IPv6 tracelb can wait 5 s per probe). */
const SC_TIMEOUT_MS = Number(flag('--scamper-timeout') ?? 90) * 1000;

interface Tally {
  complete: number;
  runs: number;
  probes: number[];
  /** Probes of the runs that found every next hop (a run that missed one stops sooner, on fewer). */
  completeProbes: number[];
  ms: number[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (t: Tally) => `${String(t.complete).padStart(3)}/${String(t.runs).padEnd(3)}  probes ${String(Math.min(...t.probes)).padStart(3)}/${String(median(t.probes)).padStart(3)}/${String(Math.max(...t.probes)).padStart(3)} mean ${mean(t.probes).toFixed(1).padStart(5)} (complete runs ${t.completeProbes.length ? mean(t.completeProbes).toFixed(1).padStart(5) : '    -'})  wall ${median(t.ms).toFixed(0).padStart(6)} ms`;

/** Gives every router of the lab hash seed `seed` (false: the kernel has no such setting). */
function seedHash(routers: string[], seed: number): boolean {
  for (const ns of routers) {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv4.fib_multipath_hash_seed=${seed}`]);
    if (r.status !== 0) return false;
  }
  return true;
}

if (spawnSync('scamper', ['-v']).error) {
  process.stderr.write('scamper is not installed (apt-get install scamper)\n');
  process.exit(2);
}
process.stdout.write(`pathlens --ecmp auto (95%) x ${RUNS} vs scamper tracelb -c 95 x ${SC_RUNS}${waitProbe ? ` -W ${waitProbe}` : ''}\n`);
process.stdout.write('width fam  tool      complete  probes min/med/max mean (mean of complete runs)  wall (median per process)\n');
let seeded = true;
for (const width of WIDTHS) {
  const st = await labUp(ecmp({ name: `bench${width}`, width }));
  try {
    const src = st.plan.nodes.find((n) => n.name === 'src')!;
    const dst = st.plan.nodes.find((n) => n.name === 'dst')!;
    const mids = st.plan.nodes.filter((n) => n.name.startsWith('m'));
    const rb = st.plan.nodes.find((n) => n.name === 'rb')!;
    const routers = st.plan.nodes.filter((n) => n.name === 'ra' || n.name === 'rb' || n.name.startsWith('m')).map((n) => n.ns);
    for (const fam of [4, 6] as const) {
      const pick = (i: { v4: string; v6: string }) => (fam === 4 ? i.v4 : i.v6);
      const want2 = new Set(mids.map((m) => pick(m.ifaces.find((i) => i.peer === 'ra')!)));
      const want3 = new Set(rb.ifaces.filter((i) => i.peer.startsWith('m')).map(pick));
      const target = pick(dst.ifaces[0]);
      const pl: Tally = { complete: 0, runs: 0, probes: [], completeProbes: [], ms: [] };
      for (let r = 0; r < RUNS; r++) {
        if (seeded) seeded = seedHash(routers, r + 1);
        const x = run(src.ns, [process.execPath, CLI, 'trace', '-n', '--jsonl', '--ecmp', 'auto', target]);
        if (x.status !== 0) throw new Error(`pathlens exited ${x.status}: ${x.stderr}`);
        const ev = x.stdout.trim().split('\n').map((l) => JSON.parse(l) as TraceEvent);
        const hops = ev.filter((e): e is HopEvent => e.type === 'hop');
        const done = ev.find((e): e is DoneEvent => e.type === 'done')!;
        const ok = hops[1].addrs.length === want2.size && hops[1].addrs.every((a) => want2.has(a)) && hops[2].addrs.length === want3.size && hops[2].addrs.every((a) => want3.has(a));
        pl.runs++;
        if (ok && done.reached) {
          pl.complete++;
          pl.completeProbes.push(done.probes_sent);
        }
        pl.probes.push(done.probes_sent);
        pl.ms.push(x.ms);
      }
      const sc: Tally = { complete: 0, runs: 0, probes: [], completeProbes: [], ms: [] };
      for (let r = 0; r < SC_RUNS; r++) {
        if (seeded) seeded = seedHash(routers, r + 1);
        const x = run(src.ns, ['scamper', '-O', 'json', '-c', `tracelb -P udp-dport -c 95${waitProbe ? ` -W ${waitProbe}` : ''}`, '-i', target], SC_TIMEOUT_MS);
        const tl = x.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; probec?: number; nodes?: { addr: string; links?: { addr: string }[][] }[] }).find((o) => o.type === 'tracelb');
        if (!tl) {
          process.stdout.write(`${String(width).padStart(5)} v${fam}   scamper   no result in ${(x.ms / 1000).toFixed(0)} s${x.stderr ? `: ${x.stderr.trim().split('\n')[0]}` : ''}\n`);
          break;
        }
        // Every address scamper reports, in its nodes and along its links.
        const seen = new Set<string>();
        for (const n of tl.nodes ?? []) {
          seen.add(n.addr);
          for (const l of n.links ?? []) for (const h of l) seen.add(h.addr);
        }
        sc.runs++;
        if ([...want2, ...want3].every((a) => seen.has(a))) {
          sc.complete++;
          sc.completeProbes.push(tl.probec ?? 0);
        }
        sc.probes.push(tl.probec ?? 0);
        sc.ms.push(x.ms);
      }
      process.stdout.write(`${String(width).padStart(5)} v${fam}   pathlens  ${fmt(pl)}\n`);
      if (sc.runs > 0) {
        process.stdout.write(`${String(width).padStart(5)} v${fam}   scamper   ${fmt(sc)}\n`);
        process.stdout.write(`                 ratio     probes median ${(median(pl.probes) / median(sc.probes)).toFixed(2)} mean ${(mean(pl.probes) / mean(sc.probes)).toFixed(3)}  wall ${(median(pl.ms) / median(sc.ms)).toFixed(4)}\n`);
      }
    }
  } finally {
    labDown(st.name);
  }
}
if (!seeded) process.stdout.write('(this kernel has no net.ipv4.fib_multipath_hash_seed: every run used the one random key)\n');
