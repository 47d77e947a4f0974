/**
 * `pathlens trace -c 20 --report` vs `mtr -r -c 20` on the demo lab (9 routers, 10 ms RTT per
 * hop, r3 and r6 silent) with 10% loss on the link r7 -> r8 (the probes' direction only), both
 * with their default 1 s interval and no name lookups, alternating. Prints each tool's wall time
 * (median), the ratio, and each hop's loss as each tool reported it beside what the lab sets
 * (silent hops 100%; hops 8 onwards 10%, within binomial bounds over the rounds).
 *
 *   sudo node dist/bench/trace-vs-mtr.js [runs=3] [rounds=20]
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { labDown, labUp } from '../src/lab/lab.js';
import { demo } from '../src/lab/presets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const RUNS = Number(process.argv[2] ?? 3);
const ROUNDS = Number(process.argv[3] ?? 20);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Loss % per hop from an mtr -r style table (both tools print one). */
function losses(report: string): number[] {
  const out: number[] = [];
  for (const line of report.split('\n')) {
    const m = /^\s*(\d+)\.\|--\s+\S+\s+([\d.]+)%?\s+(\d+)/.exec(line);
    if (m) out[Number(m[1]) - 1] = Number(m[2]);
  }
  return out;
}

if (spawnSync('mtr', ['--version']).error) {
  process.stderr.write('mtr is not installed (apt-get install mtr-tiny)\n');
  process.exit(2);
}
const spec = demo({ name: 'benchmtr' });
const lossy = spec.links.findIndex((l) => l.a === 'r7' && l.b === 'r8');
spec.links[lossy] = { ...spec.links[lossy], a_to_b: { ...(spec.links[lossy].impair ?? {}), loss: 0.1 }, b_to_a: spec.links[lossy].impair };
const st = await labUp({ ...spec, dns: false });
try {
  const src = st.plan.nodes.find((n) => n.name === 'src')!;
  const dst = st.plan.nodes.find((n) => n.name === 'dst')!.ifaces[0].v4;
  const tools = {
    pathlens: [process.execPath, CLI, 'trace', '-n', '--report', '-c', String(ROUNDS), dst],
    mtr: ['mtr', '-n', '-r', '-c', String(ROUNDS), dst],
  };
  const wall: Record<string, number[]> = { pathlens: [], mtr: [] };
  const loss: Record<string, number[][]> = { pathlens: [], mtr: [] };
  for (let r = 0; r < RUNS; r++) {
    for (const [name, cmd] of Object.entries(tools)) {
      const t0 = performance.now();
      const x = spawnSync('ip', ['netns', 'exec', src.ns, ...cmd], { encoding: 'utf8' });
      wall[name].push(performance.now() - t0);
      if (x.status !== 0) throw new Error(`${name} exited ${x.status}: ${x.stderr}`);
      loss[name].push(losses(x.stdout));
      if (r === 0) process.stdout.write(`--- ${name}, run 1:\n${x.stdout}`);
    }
  }
  process.stdout.write(`\nwall time, median of ${RUNS}: pathlens ${(median(wall.pathlens) / 1000).toFixed(2)} s, mtr ${(median(wall.mtr) / 1000).toFixed(2)} s, ratio ${(median(wall.pathlens) / median(wall.mtr)).toFixed(3)}\n`);
  process.stdout.write(`loss per hop (% per run), lab: hops 3 and 6 silent, 10% from hop 8 on (binomial over ${ROUNDS} rounds: 0-35% holds 99.9%)\n`);
  for (let h = 0; h < 10; h++) {
    const want = h === 2 || h === 5 ? '100' : h >= 7 ? '10' : '0';
    process.stdout.write(`  hop ${String(h + 1).padStart(2)}  lab ${want.padStart(3)}%   pathlens ${loss.pathlens.map((l) => String(l[h] ?? '-').padStart(5)).join(' ')}   mtr ${loss.mtr.map((l) => String(l[h] ?? '-').padStart(5)).join(' ')}\n`);
  }
} finally {
  labDown(st.name);
}
