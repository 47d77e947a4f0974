/**
 * `pathlens monitor` at 1,000, 10,000 and 100,000 targets (or the counts given), once a second
 * each, against fping on the same targets in the same run, with as many fping processes as it
 * takes to try to hold the rate (as fping's users do: one process holds about 10,000 targets at
 * 1/s for 5 rounds before its 16-bit sequence space runs out).
 *
 *   sudo node dist/bench/monitor-scale.js [counts=1000,10000,100000] [seconds=30]
 *
 * The lab: src - r1, r1 answering every address of 10.200.0.0/14 itself (AnyIP). Its forwarding
 * and echo replies run on the other core (RPS: r1's ingress steered to CPU 1, src's to CPU 0, the
 * measured processes pinned to CPU 0), as a network's would run elsewhere; without that the sender's
 * sendmmsg does the whole round trip of every probe inline, and at 100,000 a second that alone
 * fills a core. net.core.netdev_max_backlog is raised to 10,000 for the run (restored after). The
 * lab itself can still lose a reply (r1's ICMP socket has a small send buffer, and bursts of
 * hundreds of replies fill it: IcmpOutErrors): those are the network's losses, read off r1's own
 * counter, so "false loss" is what the monitor lost beyond them.
 *
 * pathlens runs as uid 65534 with its plain view (which prints a line for every window whose
 * schedule was not kept) and its events to a file (`-o`), for `seconds`; printed per count: how
 * many target windows carried the probes that came due in them (within one, from the stats
 * events' sent and due), asked and achieved rate (the prober events' asked and sent over their
 * windows' time: the schedule starts when the prober is ready, a few hundred ms in at 100,000
 * targets), windows kept,
 * loss, false loss, CPU per probe (user + system of the finished processes), peak RSS (of the
 * largest process: fping's is per process).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown, labUp } from '../src/lab/lab.js';
import { chain } from '../src/lab/presets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const COUNTS = (process.argv[2] ?? '1000,10000,100000').split(',').map(Number);
const D = Number(process.argv[3] ?? 30);
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];
const FPING_PER_PROCESS = 10000;
const FPING_ROUNDS = 5;

function sh(ns: string, cmd: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

/** r1's count of echo replies its kernel failed to send (the lab's own loss). */
const labDrops = (ns: string) => Number(/IcmpOutErrors\s+(\d+)/.exec(sh(ns, 'nstat -az IcmpOutErrors'))?.[1] ?? 0);

/** Runs the commands at once, pinned to CPU 0, in ns; their summed CPU and RSS (getrusage of each, through python3), wall time, outputs. */
function measured(ns: string, cmds: string[][]): { cpu: number; rssMb: number; wall: number; out: { stdout: string; stderr: string }[] } {
  const py = [
    'import json,resource,subprocess,sys,time',
    'cmds=json.loads(sys.argv[1]); t=time.time()',
    'ps=[subprocess.Popen(c,stdout=subprocess.PIPE,stderr=subprocess.PIPE,text=True) for c in cmds]',
    'outs=[]; cpu=0.0; rss=0',
    'for p in ps:',
    '  o,e=p.communicate(); outs.append({"stdout":o,"stderr":e})',
    'r=resource.getrusage(resource.RUSAGE_CHILDREN)',
    'print(json.dumps({"cpu":r.ru_utime+r.ru_stime,"rss":r.ru_maxrss,"wall":time.time()-t,"out":outs}))',
  ].join('\n');
  const r = spawnSync('ip', ['netns', 'exec', ns, 'taskset', '-c', '0', 'python3', '-c', py, JSON.stringify(cmds)], { encoding: 'utf8', maxBuffer: 1 << 28, env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  if (r.status !== 0) throw new Error(`measure: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { cpu: number; rss: number; wall: number; out: { stdout: string; stderr: string }[] };
  // RUSAGE_CHILDREN's ru_maxrss is the largest child's: per process, as fping's users see it.
  return { cpu: j.cpu, rssMb: j.rss / 1024, wall: j.wall, out: j.out };
}

if (spawnSync('fping', ['-v']).error) {
  process.stderr.write('fping is not installed (apt-get install fping)\n');
  process.exit(2);
}
const backlog = readFileSync('/proc/sys/net/core/netdev_max_backlog', 'utf8').trim();
const st = await labUp(chain({ name: 'benchscale', routers: 1 }));
const dir = mkdtempSync(join(tmpdir(), 'pl-benchscale-'));
try {
  writeFileSync('/proc/sys/net/core/netdev_max_backlog', '10000');
  const src = st.plan.nodes.find((n) => n.name === 'src')!;
  const r1 = st.plan.nodes.find((n) => n.name === 'r1')!;
  const r1in = r1.ifaces.find((i) => i.peer === 'src')!;
  sh(src.ns, `ip route add 10.200.0.0/14 via ${r1in.v4} && sysctl -qw net.ipv4.ping_group_range="0 2147483647" && echo 1 > /sys/class/net/${src.ifaces[0].name}/queues/rx-0/rps_cpus`);
  sh(r1.ns, `ip route add local 10.200.0.0/14 dev lo && echo 2 > /sys/class/net/${r1in.name}/queues/rx-0/rps_cpus`);
  chmodSync(dir, 0o755);
  process.stdout.write(`monitor at scale: ICMP echo, 1/s per target, ${D} s, windows of 10 s, uid 65534, pinned to CPU 0 (the lab on CPU 1); fping: processes of ${FPING_PER_PROCESS} targets, -C ${FPING_ROUNDS} -p 1000 -i 0\n`);
  process.stdout.write('targets   tool       procs  asked/s   sent/s  kept windows  answered          loss  false loss  CPU us/probe  RSS MiB\n');
  for (const n of COUNTS) {
    const addrs = Array.from({ length: n }, (_, i) => `10.${200 + Math.floor(i / 65536)}.${(i >> 8) & 255}.${i & 255}`);
    const file = join(dir, `t${n}.json`);
    writeFileSync(file, JSON.stringify({ defaults: { method: 'icmp', interval: 1 }, targets: addrs }));
    chmodSync(file, 0o644);
    const drops0 = labDrops(r1.ns);
    const events = join(dir, `m${n}.jsonl`);
    writeFileSync(events, '');
    chmodSync(events, 0o666);
    const pl = measured(src.ns, [[...NOBODY, process.execPath, CLI, 'monitor', '-c', file, '--window', '10', '--timeout', '1000', '--duration', String(D), '-o', events]]);
    // Every target's every window: did it carry the probes that came due in it (within one)?
    let targetWindows = 0;
    let short = 0;
    // The prober's own account, window by window: probes asked and sent, over the windows' time.
    let asked = 0;
    let sentP = 0;
    let spanMs = 0;
    for (const line of readFileSync(events, 'utf8').split('\n')) {
      if (line.includes('"type":"prober"')) {
        const p = JSON.parse(line) as { asked: number; sent: number; window_ms: number };
        asked += p.asked;
        sentP += p.sent;
        spanMs += p.window_ms;
        continue;
      }
      if (!line.includes('"type":"stats"')) continue;
      const e = JSON.parse(line) as { sent: number; due: number };
      targetWindows++;
      if (e.sent < e.due - 1) short++;
    }
    rmSync(events);
    const plDrops = labDrops(r1.ns) - drops0;
    const text = pl.out[0].stdout;
    const m = /-- duration: (\d+) probes, (\d+) answers/.exec(text);
    if (!m) throw new Error(`pathlens printed no done line: ${text.slice(-400)} ${pl.out[0].stderr.slice(-400)}`);
    const sent = Number(m[1]);
    const got = Number(m[2]);
    const windows = Math.ceil(D / 10);
    const behind = text.split('\n').filter((l) => l.startsWith('prober behind schedule'));
    const lost = sent - got;
    const row = (tool: string, procs: number, asked: number, rate: number, kept: string, s: number, g: number, falseLoss: number, r: { cpu: number; rssMb: number }) =>
      `${String(n).padStart(7)}   ${tool.padEnd(9)} ${String(procs).padStart(5)}  ${String(Math.round(asked)).padStart(7)}  ${String(Math.round(rate)).padStart(7)}  ${kept.padStart(12)}  ${String(g).padStart(8)}/${String(s).padEnd(8)} ${(((s - g) / Math.max(1, s)) * 100).toFixed(3).padStart(6)}%  ${String(falseLoss).padStart(10)}  ${((r.cpu / Math.max(1, s)) * 1e6).toFixed(2).padStart(12)}  ${r.rssMb.toFixed(0).padStart(7)}`;
    process.stdout.write(`${row('pathlens', 1, (asked * 1000) / spanMs, (sentP * 1000) / spanMs, `${windows - behind.length}/${windows}`, sent, got, Math.max(0, lost - plDrops), pl)}\n`);
    process.stdout.write(`            target windows carrying their due probes (within one): ${targetWindows - short}/${targetWindows}\n`);
    for (const b of behind) process.stdout.write(`            ${b}\n`);
    if (plDrops) process.stdout.write(`            (the lab's r1 failed to send ${plDrops} echo replies: IcmpOutErrors)\n`);

    // fping: a process per FPING_PER_PROCESS targets, all at once.
    const procs = Math.ceil(n / FPING_PER_PROCESS);
    const cmds: string[][] = [];
    for (let p = 0; p < procs; p++) {
      const f = join(dir, `f${n}-${p}.txt`);
      writeFileSync(f, `${addrs.slice(p * FPING_PER_PROCESS, (p + 1) * FPING_PER_PROCESS).join('\n')}\n`);
      chmodSync(f, 0o644);
      cmds.push([...NOBODY, 'fping', '-C', String(FPING_ROUNDS), '-p', '1000', '-i', '0', '-q', '-f', f]);
    }
    const d1 = labDrops(r1.ns);
    const fp = measured(src.ns, cmds);
    const fpDrops = labDrops(r1.ns) - d1;
    let fs = 0;
    let fg = 0;
    for (const o of fp.out) {
      for (const l of o.stderr.split('\n')) {
        const x = /^\S+\s+:\s+(.*)$/.exec(l);
        if (!x) continue;
        for (const v of x[1].trim().split(/\s+/)) {
          fs++;
          if (v !== '-') fg++;
        }
      }
    }
    // Its rate: R rounds a second apart are R seconds' worth when it keeps up; slower, they take
    // longer (its wall time less the last round's wait for answers, about 0.5 s).
    process.stdout.write(`${row('fping', procs, n, fs / Math.max(FPING_ROUNDS, fp.wall - 0.5), '-', fs, fg, Math.max(0, fs - fg - fpDrops), fp)}  (wall ${fp.wall.toFixed(1)} s for ${FPING_ROUNDS} rounds a second apart)\n`);
    if (fpDrops) process.stdout.write(`            (the lab's r1 failed to send ${fpDrops} echo replies: IcmpOutErrors)\n`);
  }
} finally {
  writeFileSync('/proc/sys/net/core/netdev_max_backlog', backlog);
  rmSync(dir, { recursive: true, force: true });
  labDown(st.name);
}
