/**
 * Many-target sweeps (issue 22's high-rate mode): the error-queue path (`trace --targets FILE`,
 * one trace and socket per target), kernel correlation (`--bpf on`) and AF_XDP (`--xdp`) side by
 * side in one run, on the tests' sweep lab (src - r1 - r2 - r3 - dst) whose dst answers for all
 * of 10.254.0.0/16 (a local route), so every target replies: Time Exceeded from r1..r3, then port
 * unreachable from the target.
 *
 *  1. The same 4,096 targets x TTL 1..4 (16,384 probes) through each mode, in turn, `runs` times:
 *     probes per second over the whole command, CPU per probe (user + system), network and
 *     readiness system calls per probe (strace -f, a separate run), replies matched.
 *  2. AF_XDP at its full rate: 65,536 targets x TTL 1..16 (1,048,576 probes), pathlens on CPU 0.
 *     The first router reads its link in a kernel thread of its own on CPU 1 (an XDP program on
 *     its end makes the veth use NAPI; threaded NAPI moves it off the sender's CPU), as a NIC's
 *     queue would.
 *     a. The sender alone: that program discards every frame (bpf/sink.bpf.c), so the rate
 *        offered is pathlens' own, not the lab's.
 *     b. The whole lab: the program passes every frame to r1's kernel, which forwards and answers.
 *        The veth pushes back when r1's ring is full, so the rate offered is what r1 takes.
 *        Printed: the ICMP errors the lab's routers and dst sent (their /proc/net/snmp), the
 *        replies that reached the probing interface (the XDP program's count) and how many of
 *        those were matched. Two cores cannot forward a million packets a second through three
 *        routers: the lab drops, and what it drops never comes back; the goal is about what does.
 *     c. A policing first hop: one frame in 32 goes on to r1's kernel, the rest is dropped in XDP,
 *        so the lab keeps up with what it takes while the sender runs at its own rate.
 *  3. RTT error against the wire, every mode on the 4,096 targets; --xdp paced at 20,000 probes/s
 *     (each probe sent and timed on its own) and at full rate (one time per batch): tcpdump on
 *     r1's side of the link (AF_XDP frames skip the sender's own packet taps, and the XDP program
 *     takes the replies before them), |reported - wire| per probe.
 *  4. The monitor's UDP method on 4,096 targets at 10 probes a second each for 10 s: its datagram
 *     socket against `--xdp`: CPU per probe, system calls per probe, answers.
 *
 *   sudo node dist/bench/trace-sweep.js [runs=3]
 *
 * Needs root, strace and tcpdump (apt-get install strace tcpdump). Traffic stays inside the lab.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attachXdp } from '../src/bpf/attach.js';
import { BpfObject, bpfObjectPath } from '../src/bpf/object.js';
import { inNamespace } from '../src/io/placement.js';
import { labDown, labUp } from '../src/lab/lab.js';
import { native } from '../src/native/index.js';
import { CaptureReader, CaptureRecord } from '../src/pping/pcap.js';
import type { SweepDoneEvent, SweepPathEvent, SweepStartEvent, TraceEvent } from '../src/trace/events.js';
import { sweepLab } from '../test/helpers/lab.js';
import { cpuOf, have } from './lib/run.js';
import { captureProbes, quantile } from '../test/helpers/wire.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const RUNS = Number(process.argv[2] ?? 3);
const LAB = 'benchswp';
const SMALL = 4096;
const NET = new Set(['socket', 'setsockopt', 'getsockopt', 'bind', 'connect', 'sendto', 'sendmsg', 'sendmmsg', 'recvfrom', 'recvmsg', 'recvmmsg', 'poll', 'ppoll', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'epoll_ctl']);

const addr = (i: number) => `10.254.${(i >> 8) & 255}.${i & 255}`;

function events(out: string): TraceEvent[] {
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as TraceEvent);
}

function sh(ns: string, cmd: string[], input?: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Network and readiness system calls of one command (strace -f -c). */
function syscalls(ns: string, cmd: string[]): number {
  const dir = mkdtempSync(join(tmpdir(), 'pl-swp-'));
  const file = join(dir, 'strace.txt');
  try {
    spawnSync('ip', ['netns', 'exec', ns, 'strace', '-f', '-c', '-o', file, ...cmd], { encoding: 'utf8', maxBuffer: 1 << 30 });
    let n = 0;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
      if (m && NET.has(m[2])) n += Number(m[1]);
    }
    return n;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** ICMP errors (Destination Unreachable, Time Exceeded) sent by the namespaces so far (/proc/net/snmp). */
function icmpSent(nss: string[]): number {
  let n = 0;
  for (const ns of nss) {
    const lines = sh(ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('IcmpMsg:'));
    if (lines.length < 2) continue;
    const keys = lines[0].split(/\s+/).slice(1);
    const vals = lines[1].split(/\s+/).slice(1).map(Number);
    keys.forEach((k, i) => {
      if (k === 'OutType3' || k === 'OutType11') n += vals[i];
    });
  }
  return n;
}

/** Matched replies of a multi-target trace (reply events of the error-queue and BPF paths). */
function repliesOf(ev: TraceEvent[]): number {
  return ev.filter((e) => e.type === 'reply').length;
}

/** Wire RTT (µs) of each probe in a capture on r1's side: probe in (UDP from `src`), its ICMP error out; by `dst|dport`. */
function wireRtts(pcap: string, src: string): Map<string, number> {
  const me = src.split('.').map(Number);
  const sent = new Map<string, number>();
  const out = new Map<string, number>();
  const r = CaptureReader.open(pcap);
  const rec = new CaptureRecord();
  const ip4 = (b: Uint8Array, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
  try {
    while (r.next(rec)) {
      const b = rec.data.subarray(rec.off, rec.off + rec.len);
      if (rec.linktype !== 1 || b.length < 42 || b[12] !== 8 || b[13] !== 0) continue;
      const t = rec.sec * 1e6 + rec.nsec / 1e3;
      const ihl = (b[14] & 15) * 4;
      const l4 = 14 + ihl;
      const fromMe = b[26] === me[0] && b[27] === me[1] && b[28] === me[2] && b[29] === me[3];
      if (b[23] === 17 && fromMe) {
        const k = `${ip4(b, 30)}|${(b[l4 + 2] << 8) | b[l4 + 3]}`;
        if (sent.has(k)) sent.set(k, -1); // seen twice: never a guess
        else sent.set(k, t);
      } else if (b[23] === 1 && (b[l4] === 11 || b[l4] === 3) && b.length >= l4 + 8 + 20 + 4) {
        const inner = l4 + 8;
        const iudp = inner + (b[inner] & 15) * 4;
        const k = `${ip4(b, inner + 16)}|${(b[iudp + 2] << 8) | b[iudp + 3]}`;
        const s = sent.get(k);
        if (s !== undefined && s >= 0 && !out.has(k)) out.set(k, t - s);
      }
    }
  } finally {
    r.close();
  }
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (a lab)');
  for (const t of ['strace', 'tcpdump']) if (!have(t)) throw new Error(`${t} is needed (apt-get install ${t})`);
  labDown(LAB);
  const st = await labUp(sweepLab(LAB));
  const ns = (n: string) => st.plan.nodes.find((x) => x.name === n)!.ns;
  const src = ns('src');
  const srcAddr = st.plan.nodes.find((x) => x.name === 'src')!.ifaces[0].v4;
  sh(ns('dst'), ['ip', 'route', 'add', 'local', '10.254.0.0/16', 'dev', 'lo']);
  const dir = mkdtempSync(join(tmpdir(), 'pl-swp-'));
  let farEnd: { detach(): void } | null = null;
  let endObj: BpfObject | null = null;
  try {
    console.log(`# ${cpus().length} x ${cpus()[0]?.model ?? '?'}, kernel ${spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim()}, node ${process.version}`);
    console.log('# lab: src - r1 - r2 - r3 - dst, no impairment; dst answers for 10.254.0.0/16\n');

    // 1. The three modes on the same targets.
    const small = join(dir, 'small.txt');
    writeFileSync(small, Array.from({ length: SMALL }, (_, i) => addr(i)).join('\n') + '\n');
    const modes = [
      { name: 'errqueue', args: ['trace', '-n', '--jsonl', '-q', '1', '-m', '4', '-w', '1', '-N', '256', '--parallel', '256', '--targets', small] },
      { name: 'bpf', args: ['trace', '-n', '--jsonl', '-q', '1', '-m', '4', '-w', '1', '-N', '256', '--parallel', '256', '--bpf', 'on', '--targets', small] },
      { name: 'af_xdp', args: ['trace', '--xdp', '--jsonl', '-m', '4', '-w', '0.5', '--targets', small] },
    ];
    const probes = SMALL * 4;
    const rows = new Map<string, { cpu: number; wall: number; replies: number }[]>(modes.map((m) => [m.name, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const m of modes) {
        const r = cpuOf(src, [process.execPath, CLI, ...m.args]);
        const ev = events(r.out);
        const done = ev.at(-1)!;
        const replies = done.type === 'sweep-done' ? (done as SweepDoneEvent).replies : repliesOf(ev);
        rows.get(m.name)!.push({ cpu: r.cpu, wall: r.wall, replies });
      }
    }
    console.log(`## ${SMALL} targets x TTL 1..4 (${probes} probes), median of ${RUNS} runs in turn\n`);
    console.log('| mode | replies matched | wall (whole command) | probes/s | CPU (user+sys) | CPU per probe | network + readiness syscalls per probe |');
    console.log('|---|---:|---:|---:|---:|---:|---:|');
    for (const m of modes) {
      const runs = rows.get(m.name)!.sort((a, b) => a.wall - b.wall);
      const med = runs[Math.floor(runs.length / 2)];
      const calls = syscalls(src, [process.execPath, CLI, ...m.args.map((a) => (a === '--jsonl' ? '--quiet' : a))]);
      console.log(`| ${m.name} | ${med.replies} | ${med.wall.toFixed(2)} s | ${(probes / med.wall).toFixed(0)} | ${med.cpu.toFixed(2)} s | ${((med.cpu / probes) * 1e6).toFixed(1)} us | ${(calls / probes).toFixed(3)} (${calls}) |`);
    }

    // 2. AF_XDP at full rate.
    const big = join(dir, 'big.txt');
    writeFileSync(big, Array.from({ length: 65536 }, (_, i) => addr(i)).join('\n') + '\n');
    const r1If = st.plan.nodes.find((x) => x.name === 'r1')!.ifaces.find((f) => f.peer === 'src')!.name;
    const r1Index = inNamespace(ns('r1'), () => native().ifNameToIndex(r1If));
    const labNs = ['r1', 'r2', 'r3', 'dst'].map(ns);
    for (const [label, file, prog] of [
      ['a. the sender alone (r1\'s end discards in XDP)', 'sink.bpf.o', 'pl_sink'],
      ['b. the whole lab (r1\'s end passes every frame to its kernel)', 'xsk.bpf.o', 'pl_xsk'],
      ['c. a policing first hop (r1\'s end passes one frame in 32 to its kernel, drops the rest)', 'sink.bpf.o', 'pl_sample'],
    ] as const) {
      // xsk.bpf.o with family 0 in its configuration takes nothing and passes everything.
      endObj = BpfObject.open(bpfObjectPath(file), 'far end');
      endObj.load();
      farEnd = inNamespace(ns('r1'), () => attachXdp(endObj!.progFd(prog), r1Index, 'native'));
      sh(ns('r1'), ['sh', '-c', `echo 1 > /sys/class/net/${r1If}/threaded`]);
      const napi = spawnSync('pgrep', ['-f', `^napi/${r1If}-`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      for (const pid of napi) spawnSync('taskset', ['-pc', '1', pid]);
      console.log(`\n## --xdp at full rate, ${label}: 65,536 targets x TTL 1..16 (1,048,576 probes)\n`);
      console.log('| run | offered probes/s | sent | send calls | ICMP errors the lab sent | arrived at the probing interface | matched | matched / arrived | rx ring drops |');
      console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
      for (let i = 0; i < RUNS; i++) {
        const before = icmpSent(labNs);
        const out = sh(src, ['taskset', '-c', '0', process.execPath, CLI, 'trace', '--xdp', '--jsonl', '-m', '16', '-w', '1', '--targets', big]);
        const lab = icmpSent(labNs) - before;
        const d = events(out).at(-1) as SweepDoneEvent;
        const arrived = d.kernel.redirected;
        const drops = d.sockets.rx_dropped + d.sockets.rx_ring_full;
        const share = arrived ? `${((100 * d.replies) / arrived).toFixed(2)}%` : 'n/a';
        console.log(`| ${i + 1} | ${d.offered_pps} | ${d.probes_sent} | ${d.send_calls} | ${lab} | ${arrived} | ${d.replies} | ${share} | ${drops} |`);
      }
      farEnd.detach();
      farEnd = null;
      endObj.close();
      endObj = null;
    }

    // 3. RTT error against the wire: every mode on the same targets; --xdp paced (each probe
    // timed on its own) and at full rate (a batch's time).
    const third: Array<[string, string[]]> = [
      ['errqueue', modes[0].args],
      ['bpf', modes[1].args],
      ['af_xdp, --rate 20000 (send_stamps per-probe)', [...modes[2].args, '--rate', '20000']],
      ['af_xdp, full rate (send_stamps per-batch)', modes[2].args],
    ];
    console.log(`\n## RTT error against the wire (tcpdump on r1's side of the link), ${SMALL} targets x TTL 1..4\n`);
    console.log('| mode | probes compared | p50 | p90 | p99 | max |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const [label, args] of third) {
      const pcap = join(dir, 'wire.pcap');
      const dump = await captureProbes(ns('r1'), r1If, pcap);
      const ev = events(sh(src, [process.execPath, CLI, ...args]));
      await new Promise((r) => setTimeout(r, 500));
      dump.kill('SIGINT');
      await new Promise((r) => dump.on('close', r));
      const wire = wireRtts(pcap, srcAddr);
      const errs: number[] = [];
      const compare = (target: string, dport: number, ms: number) => {
        const w = wire.get(`${target}|${dport}`);
        if (w !== undefined) errs.push(Math.abs(ms * 1000 - w));
      };
      const start = ev[0];
      if (start.type === 'sweep-start') {
        for (const p of ev.filter((e): e is SweepPathEvent => e.type === 'path')) for (const h of p.hops) if (h.rtt_ms !== null) compare(p.address, start.port + h.ttl - 1, h.rtt_ms);
      } else {
        // -q 1: the probe at TTL t went to port + t - 1, from its target's own socket.
        for (const e of ev) if (e.type === 'reply' && !e.late && e.addr !== null) compare(e.target!, 33434 + e.ttl - 1, e.rtt_ms);
      }
      errs.sort((x, y) => x - y);
      console.log(`| ${label} | ${errs.length} | ${quantile(errs, 0.5).toFixed(1)} us | ${quantile(errs, 0.9).toFixed(1)} us | ${quantile(errs, 0.99).toFixed(1)} us | ${errs.at(-1)!.toFixed(1)} us |`);
      rmSync(pcap, { force: true });
    }

    // 4. The monitor's UDP method: a datagram socket against --xdp, same targets and schedule.
    const mon = join(dir, 'monitor.json');
    writeFileSync(mon, JSON.stringify({ defaults: { method: 'udp', interval: 0.1 }, targets: Array.from({ length: SMALL }, (_, i) => addr(i)) }));
    const monArgs = (xdp: boolean) => [process.execPath, CLI, 'monitor', '-4', ...(xdp ? ['--xdp'] : []), '--jsonl', '-c', mon, '--window', '2', '--timeout', '500', '--duration', '10', '--quiet'];
    console.log(`\n## monitor, UDP: ${SMALL} targets, 10 probes a second each, 10 s (median of ${RUNS} runs in turn)\n`);
    console.log('| socket | probes | answered | CPU (user+sys) | CPU per probe | network + readiness syscalls per probe |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const xdp of [false, true]) {
      const runs: { cpu: number; sent: number; replies: number }[] = [];
      for (let i = 0; i < RUNS; i++) {
        const r = cpuOf(src, monArgs(xdp));
        const done = events(r.out).at(-1) as unknown as { probes_sent: number; replies: number };
        runs.push({ cpu: r.cpu, sent: done.probes_sent, replies: done.replies });
      }
      runs.sort((x, y) => x.cpu / x.sent - y.cpu / y.sent);
      const med = runs[Math.floor(runs.length / 2)];
      const calls = syscalls(src, monArgs(xdp));
      console.log(`| ${xdp ? 'af_xdp (--xdp)' : 'dgram'} | ${med.sent} | ${med.replies} | ${med.cpu.toFixed(2)} s | ${((med.cpu / med.sent) * 1e6).toFixed(1)} us | ${(calls / med.sent).toFixed(3)} |`);
    }
  } finally {
    farEnd?.detach();
    endObj?.close();
    rmSync(dir, { recursive: true, force: true });
    labDown(LAB);
  }
}

main().catch((e) => {
  console.error(`trace-sweep: ${(e as Error).message}`);
  process.exit(1);
});
