/**
 * pathlens trace vs Debian traceroute on the demo lab: 9 routers, 5 ms one-way per link (10 ms
 * RTT per hop), r3 and r6 silent. Both run as uid 65534 with 3 probes per hop, alternating, over
 * IPv4 and IPv6. Prints wall times (median of N), the ratio, whether pathlens got every hop right,
 * and syscalls per probe (strace, when installed).
 *
 *   sudo node dist/bench/trace-vs-traceroute.js [runs=7]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { labDown, labUp, readState } from '../src/lab/lab.js';
import { linkAddr4, linkAddr6 } from '../src/lab/plan.js';
import { demo } from '../src/lab/presets.js';
import type { DoneEvent, HopEvent, TraceEvent } from '../src/trace/events.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const RUNS = Number(process.argv[2] ?? 7);
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];
const LAB = 'benchtr';

function have(cmd: string): boolean {
  return !spawnSync(cmd, ['--version'], { encoding: 'utf8' }).error;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timed(ns: string, cmd: string[]): { ms: number; stdout: string; status: number } {
  const t0 = performance.now();
  const r = spawnSync('ip', ['netns', 'exec', ns, ...NOBODY, ...cmd], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { ms: performance.now() - t0, stdout: r.stdout, status: r.status ?? -1 };
}

/** Network and readiness syscalls counted by strace -c for one run. */
const NET_CALLS = ['socket', 'setsockopt', 'getsockopt', 'bind', 'connect', 'sendto', 'sendmsg', 'sendmmsg', 'recvfrom', 'recvmsg', 'recvmmsg', 'poll', 'ppoll', 'select', 'pselect6', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2'];

function straceCounts(ns: string, cmd: string[]): Map<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'pl-bench-'));
  const out = join(dir, 'strace.txt');
  spawnSync('ip', ['netns', 'exec', ns, 'strace', '-f', '-c', '-o', out, ...NOBODY, ...cmd], { encoding: 'utf8' });
  const counts = new Map<string, number>();
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    const m = line.trim().split(/\s+/);
    if (m.length >= 5 && /^\d/.test(m[0]) && NET_CALLS.includes(m.at(-1)!)) counts.set(m.at(-1)!, Number(m[3]));
  }
  rmSync(dir, { recursive: true, force: true });
  return counts;
}

function sum(m: Map<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench: needs root (it builds a namespace lab)');
    process.exit(2);
  }
  if (!have('traceroute')) {
    console.error('bench: Debian traceroute is not installed (apt-get install traceroute)');
    process.exit(2);
  }
  const tr = spawnSync('traceroute', ['--version'], { encoding: 'utf8' });
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, kernel ${spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim()}, node ${process.version}`);
  console.log(`peer: ${(tr.stdout || tr.stderr).split('\n')[0]}`);
  if (readState(LAB)) labDown(LAB);
  const st = await labUp(demo({ name: LAB }));
  try {
    const src = st.plan.nodes.find((n) => n.name === 'src')!.ns;
    // Let the impairment process's lead settle before measuring.
    timed(src, [process.execPath, CLI, 'trace', '-n', '--quiet', st.plan.nodes.at(-1)!.ifaces[0].v4]);
    console.log(`lab: demo chain, ${RUNS} alternating runs per tool and family, 3 probes per hop, both as uid 65534\n`);
    console.log('family  tool                 median wall   min wall    hops right   syscalls/probe (strace)');
    for (const fam of [4, 6] as const) {
      const target = fam === 4 ? st.plan.nodes.at(-1)!.ifaces[0].v4 : st.plan.nodes.at(-1)!.ifaces[0].v6;
      const want = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => (k === 3 || k === 6 ? '*' : fam === 4 ? linkAddr4(k - 1, 1) : linkAddr6(k - 1, 1))).concat([target]);
      const pl: number[] = [];
      const tt: number[] = [];
      let right = 0;
      let probes = 0;
      let ownCalls = 0;
      for (let i = 0; i < RUNS; i++) {
        const a = timed(src, [process.execPath, CLI, 'trace', '-n', '--jsonl', `-${fam}`, '-q', '3', target]);
        pl.push(a.ms);
        const ev = a.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as TraceEvent);
        const hops = ev.filter((e): e is HopEvent => e.type === 'hop').map((h) => (h.addrs.length === 0 ? '*' : h.addrs.join(',')));
        const d = ev.find((e): e is DoneEvent => e.type === 'done')!;
        if (JSON.stringify(hops) === JSON.stringify(want) && d.reached) right++;
        probes += d.probes_sent;
        ownCalls += d.send_calls + d.recv_calls;
        const b = timed(src, ['traceroute', `-${fam}`, '-n', '-q', '3', target]);
        if (b.status !== 0) throw new Error(`traceroute failed: ${b.stdout}`);
        tt.push(b.ms);
      }
      let plSys = `${(ownCalls / probes).toFixed(2)} (own send+recv count)`;
      let trSys = 'strace not installed';
      if (have('strace')) {
        const sp = straceCounts(src, [process.execPath, CLI, 'trace', '-n', '--quiet', `-${fam}`, '-q', '3', target]);
        const stt = straceCounts(src, ['traceroute', `-${fam}`, '-n', '-q', '3', target]);
        const trProbes = stt.get('sendto') ?? stt.get('sendmsg') ?? 1;
        plSys = `${(sum(sp) / (probes / RUNS)).toFixed(2)} (${[...sp].map(([k, v]) => `${k} ${v}`).join(', ')})`;
        trSys = `${(sum(stt) / trProbes).toFixed(2)} (${[...stt].map(([k, v]) => `${k} ${v}`).join(', ')})`;
      }
      console.log(`IPv${fam}    pathlens trace       ${median(pl).toFixed(0).padStart(6)} ms   ${Math.min(...pl).toFixed(0).padStart(6)} ms   ${right}/${RUNS}          ${plSys}`);
      console.log(`IPv${fam}    traceroute -q 3      ${median(tt).toFixed(0).padStart(6)} ms   ${Math.min(...tt).toFixed(0).padStart(6)} ms   -            ${trSys}`);
      console.log(`IPv${fam}    ratio (pathlens / traceroute, median wall): ${(median(pl) / median(tt)).toFixed(2)}\n`);
    }
  } finally {
    labDown(LAB);
  }
}

await main();
