/**
 * `pathlens monitor --hops` (mtr as a monitor) against what an operator runs today: `mtr -r -c R`
 * for every target, all at once, in a loop. A lab chain of 4 routers to an AnyIP /16 (every
 * address of 10.200.0.0/16 answered by the last namespace: 5 hops to each target), ICMP, both as
 * uid 65534, one after the other in the same run:
 *
 *  - CPU per hop and round: pathlens watching N paths (a round a second each, one probe per hop,
 *    queries 1 like mtr's one probe per hop and cycle; its endpoint probes, one a second per
 *    target, are counted against it too) for S and 2S seconds, against N `mtr -r -n -c S -i 1`
 *    processes started together (the loop's one pass), and -c 2S; the whole run's figure, and the
 *    steady state's (the longer run minus the shorter: start-up cancels out). CPU is user + sys of the process tree, from the
 *    kernel's accounting of the finished children (getrusage through python3); rounds and hops
 *    from pathlens' own path-hops events and mtr's reports.
 *  - Memory for M monitored paths (1,000): the peak RSS of one pathlens process watching them (a
 *    round every 10 s each), beside one mtr process's peak (mtr needs one process per path).
 *
 *   sudo node dist/bench/monitor-paths.js [paths=20] [seconds=30] [memory-paths=1000] [memory-seconds=40]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown, labUp } from '../src/lab/lab.js';
import { chain } from '../src/lab/presets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const N = Number(process.argv[2] ?? 20);
const S = Number(process.argv[3] ?? 30);
const M = Number(process.argv[4] ?? 1000);
const MS = Number(process.argv[5] ?? 40);
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];
const HOPS = 5;

function sh(ns: string, cmd: string): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

/** Runs cmd in ns: CPU (user + sys of every child waited for), the largest child's peak RSS, wall time. */
function measured(ns: string, cmd: string[]): { cpu: number; rssMb: number; wall: number; stdout: string; stderr: string } {
  const t0 = Date.now();
  const py = 'import resource,subprocess,sys; p=subprocess.run(sys.argv[1:],capture_output=True); r=resource.getrusage(resource.RUSAGE_CHILDREN); sys.stdout.buffer.write(p.stdout); sys.stderr.buffer.write(p.stderr); sys.stderr.write("\\nRUSAGE %f %f %d\\n" % (r.ru_utime, r.ru_stime, r.ru_maxrss))';
  const r = spawnSync('ip', ['netns', 'exec', ns, 'python3', '-c', py, ...cmd], { encoding: 'utf8', maxBuffer: 1 << 28, env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  const m = /RUSAGE ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr);
  if (!m) throw new Error(`no rusage: ${r.stderr.slice(-500)}`);
  return { cpu: Number(m[1]) + Number(m[2]), rssMb: Number(m[3]) / 1024, wall: (Date.now() - t0) / 1000, stdout: r.stdout, stderr: r.stderr };
}

if (spawnSync('sh', ['-c', 'command -v mtr']).status !== 0) throw new Error('mtr is not installed (apt-get install mtr-tiny)');
const st = await labUp(chain({ name: 'benchpath', routers: 4 }));
const dir = mkdtempSync(join(tmpdir(), 'pl-benchpath-'));
try {
  const node = (name: string) => st.plan.nodes.find((n) => n.name === name)!;
  const order = ['src', 'r1', 'r2', 'r3', 'r4', 'dst'];
  sh(node('src').ns, 'sysctl -qw net.ipv4.ping_group_range="0 2147483647"');
  for (let i = 0; i < order.length - 1; i++) {
    const next = node(order[i + 1]).ifaces.find((x) => x.peer === order[i])!.v4;
    sh(node(order[i]).ns, `ip route add 10.200.0.0/16 via ${next}`);
  }
  sh(node('dst').ns, 'ip route add local 10.200.0.0/16 dev lo');
  const addrs = (n: number) => Array.from({ length: n }, (_, i) => `10.200.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  const file = (name: string, n: number, hopsInterval: number) => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify({ defaults: { method: 'icmp', interval: 1, hops: { interval: hopsInterval, queries: 1, max_ttl: 10 } }, targets: addrs(n) }));
    return f;
  };
  const cpuFile = file('cpu.json', N, 1);
  const memFile = file('mem.json', M, 10);
  spawnSync('chmod', ['-R', 'a+rwX', dir]);
  const src = node('src').ns;

  // pathlens: N paths, a round a second, for d seconds; the rounds counted from its path-hops events.
  const pathlens = (d: number) => {
    const out = join(dir, `cpu-${d}.jsonl`);
    const r = measured(src, [...NOBODY, process.execPath, CLI, 'monitor', '--quiet', '-c', cpuFile, '--window', '10', '--timeout', '500', '--duration', String(d), '-o', out]);
    let hopRounds = 0;
    for (const l of readFileSync(out, 'utf8').split('\n')) {
      if (!l.includes('"path-hops"')) continue;
      const e = JSON.parse(l) as { rounds: number; hops: unknown[] };
      hopRounds += e.rounds * e.hops.length;
    }
    return { ...r, hopRounds };
  };
  // mtr: the same N targets, each its own process for d cycles a second apart, all at once.
  const mtr = (d: number) => {
    const loop = `for t in ${addrs(N).join(' ')}; do mtr -r -n -c ${d} -i 1 -m 10 $t > ${dir}/mtr-$t.txt & done; wait`;
    const r = measured(src, [...NOBODY, 'sh', '-c', loop]);
    let hopRounds = 0;
    for (const a of addrs(N)) {
      const rows = readFileSync(join(dir, `mtr-${a}.txt`), 'utf8').split('\n').filter((l) => /^\s*\d+\.\|--/.test(l));
      for (const row of rows) hopRounds += Number(row.trim().split(/\s+/)[3]);
    }
    return { ...r, hopRounds };
  };
  const us = (cpu: number, n: number) => ((cpu / Math.max(1, n)) * 1e6).toFixed(1);
  process.stdout.write(`${N} paths of ${HOPS} hops, a round a second each, ICMP, uid 65534; each tool for ${S} s and ${2 * S} s, alternating\n`);
  const pl1 = pathlens(S);
  const mt1 = mtr(S);
  const pl2 = pathlens(2 * S);
  const mt2 = mtr(2 * S);
  for (const [name, r] of [[`pathlens monitor --hops, ${S} s`, pl1], [`mtr -r -c ${S}, ${N} at once`, mt1], [`pathlens monitor --hops, ${2 * S} s`, pl2], [`mtr -r -c ${2 * S}, ${N} at once`, mt2]] as const) {
    process.stdout.write(`${name.padEnd(34)} hop-rounds ${String(r.hopRounds).padStart(6)}  CPU ${r.cpu.toFixed(2).padStart(6)} s  ${us(r.cpu, r.hopRounds).padStart(7)} us per hop-round  peak RSS ${r.rssMb.toFixed(0)} MiB${name.startsWith('mtr') ? ` (the largest of ${N} processes)` : ' (one process)'}  wall ${r.wall.toFixed(1)} s\n`);
  }
  // The steady state: what the second half of the longer run cost (start-up and set-up cancel out).
  const marginal = (a: typeof pl1, b: typeof pl1) => (b.cpu - a.cpu) / Math.max(1, b.hopRounds - a.hopRounds);
  const mPl = marginal(pl1, pl2);
  const mMt = marginal(mt1, mt2);
  process.stdout.write(`CPU per hop-round, whole run (${2 * S} s): pathlens / mtr = ${(pl2.cpu / pl2.hopRounds / (mt2.cpu / mt2.hopRounds)).toFixed(3)}\n`);
  process.stdout.write(`CPU per hop-round, steady state (${2 * S} s run minus ${S} s run): pathlens ${(mPl * 1e6).toFixed(1)} us, mtr ${(mMt * 1e6).toFixed(1)} us, pathlens / mtr = ${(mPl / mMt).toFixed(3)}\n`);
  const mt = mt2;

  // Memory: M paths, a round every 10 s each, for MS seconds.
  const mem = measured(src, [...NOBODY, process.execPath, CLI, 'monitor', '--quiet', '-c', memFile, '--window', '10', '--timeout', '1000', '--duration', String(MS)]);
  process.stdout.write(`pathlens monitor --hops, ${M} paths (a round every 10 s each, ${MS} s): peak RSS ${mem.rssMb.toFixed(0)} MiB, CPU ${mem.cpu.toFixed(1)} s; mtr would be ${M} processes of about ${mt.rssMb.toFixed(0)} MiB each\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
  labDown(st.name);
}
