/**
 * `pathlens monitor` vs fping on the same targets: an AnyIP /16 answered by one lab namespace
 * (a local route for 10.200.0.0/16), N targets (10,000) probed once a second each for each run
 * length given (30 and 60 s: start-up weighs more in the shorter), ICMP echo from a ping socket, both as uid 65534, one after the other (pathlens with its
 * plain view, fping with -q: neither writes per probe). Prints for each:
 * probes sent and answered, achieved rate, CPU (user + sys, from the kernel's accounting of the
 * finished process) per probe, peak RSS, and how evenly the send times are spread (in runs of
 * their own, tcpdump on the source interface: the mean, the 99th percentile and the most probes
 * in one millisecond).
 *
 *   sudo node dist/bench/monitor-vs-fping.js [targets=10000] [seconds=30,60] [fping-rounds=5]
 *
 * fping runs twice: `fping -C 5 -p 1000 -i 0 -q -f FILE` (every target every second, no gap
 * between targets: a burst of 10,000 probes a second), and with `-i 0.1` (one probe every 0.1 ms:
 * the round spread evenly over the second, as pathlens spreads it). It cannot run longer at this rate: fping 5.1 keeps each sequence number for 10 s in
 * one 16-bit space shared by all targets ("not enough sequence numbers available" past about
 * 6,500 probes a second for more than 6 rounds), so it gets 5 rounds, and its start-up is shared
 * by fewer probes than pathlens'. Debian's fping has cap_net_raw, so uid 65534 can run it.
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
const N = Number(process.argv[2] ?? 10000);
const DS = (process.argv[3] ?? '30,60').split(',').map(Number);
/** fping's rounds: it keeps every sequence number 10 s (one 16-bit space for all targets), so 10,000 targets at 1/s fit 6 rounds at most. */
const FC = Number(process.argv[4] ?? 5);
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];

function sh(ns: string, cmd: string): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

/** Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait), softirq included. */
function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + steal) / 100;
}

/**
 * Runs cmd and returns its CPU (user + sys of the process, from getrusage through python3), its
 * peak RSS, and the whole machine's busy CPU over the run: packets' kernel work done in softirq
 * (ksoftirqd) is charged to no process, and a burst sender leaves more of it there.
 */
function measured(ns: string, cmd: string[]): { cpu: number; machine: number; rssMb: number; wall: number; stdout: string; stderr: string } {
  const t0 = Date.now();
  const busy0 = machineBusy();
  // `command time` is not on a fresh machine: getrusage of the child through python3 instead.
  const py = 'import resource,subprocess,sys; p=subprocess.run(sys.argv[1:],capture_output=True); r=resource.getrusage(resource.RUSAGE_CHILDREN); sys.stdout.buffer.write(p.stdout); sys.stderr.buffer.write(p.stderr); sys.stderr.write("\\nRUSAGE %f %f %d\\n" % (r.ru_utime, r.ru_stime, r.ru_maxrss))';
  // Both tools in the same bare environment: a caller's NODE_EXTRA_CA_CERTS, for one, makes every
  // node process read a CA bundle at start (30 ms of CPU here) that no probe needs.
  const r = spawnSync('ip', ['netns', 'exec', ns, 'python3', '-c', py, ...cmd], { encoding: 'utf8', maxBuffer: 1 << 28, env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  const m = /RUSAGE ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr);
  if (!m) throw new Error(`no rusage: ${r.stderr.slice(-500)}`);
  return { cpu: Number(m[1]) + Number(m[2]), machine: machineBusy() - busy0, rssMb: Number(m[3]) / 1024, wall: (Date.now() - t0) / 1000, stdout: r.stdout, stderr: r.stderr };
}

const st = await labUp(chain({ name: 'benchmon', routers: 1 }));
const dir = mkdtempSync(join(tmpdir(), 'pl-benchmon-'));
try {
  const src = st.plan.nodes.find((n) => n.name === 'src')!;
  const r1 = st.plan.nodes.find((n) => n.name === 'r1')!;
  const dst = st.plan.nodes.find((n) => n.name === 'dst')!;
  sh(src.ns, `ip route add 10.200.0.0/16 via ${r1.ifaces.find((i) => i.peer === 'src')!.v4} && sysctl -qw net.ipv4.ping_group_range="0 2147483647"`);
  sh(r1.ns, `ip route add 10.200.0.0/16 via ${dst.ifaces[0].v4}`);
  sh(dst.ns, 'ip route add local 10.200.0.0/16 dev lo');
  const addrs = Array.from({ length: N }, (_, i) => `10.200.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  writeFileSync(join(dir, 'targets.txt'), `${addrs.join('\n')}\n`);
  // The target file as JSON (which -c reads with JSON.parse; YAML goes through a parser that
  // keeps every node's position for error messages, a tenth of a second for 10,000 lines), as a
  // script that writes ten thousand targets would; fping reads its plain list.
  writeFileSync(join(dir, 'targets.json'), JSON.stringify({ defaults: { method: 'icmp', interval: 1 }, targets: addrs }));
  spawnSync('chmod', ['-R', 'a+rX', dir]);

  // Send times: tcpdump on the source interface for a few seconds of a run of their own (a capture
  // taps every packet in the sender's softirq, which would be charged to the measured process);
  // the figures are the mean, the 99th percentile and the most probes in one millisecond.
  const dump = spawnSync('sh', ['-c', 'command -v tcpdump']).status === 0;
  const watch = (name: string, delay: number, seconds: number): (() => string) => {
    const pcap = join(dir, `${name}.pcap`);
    if (!dump) return () => 'send spread: no tcpdump';
    spawnSync('sh', ['-c', `(sleep ${delay}; timeout ${seconds} ip netns exec ${src.ns} tcpdump -i ${src.ifaces[0].name} -j adapter_unsynced -s 64 -w ${pcap} icmp[icmptype]==8 >/dev/null 2>&1) &`]);
    return () => {
      const r = spawnSync('tcpdump', ['-tt', '-n', '-r', pcap], { encoding: 'utf8', maxBuffer: 1 << 28 });
      const perMs = new Map<number, number>();
      for (const l of r.stdout.split('\n')) {
        const t = Number(l.split(' ')[0]);
        if (t > 0) perMs.set(Math.floor(t * 1000), (perMs.get(Math.floor(t * 1000)) ?? 0) + 1);
      }
      if (perMs.size === 0) return 'send spread: nothing captured';
      const counts = [...perMs.values()];
      const total = counts.reduce((a, b) => a + b, 0);
      const span = Math.max(...perMs.keys()) - Math.min(...perMs.keys()) + 1;
      // Milliseconds with no probe count too (as zeros) for the percentile.
      const all = [...counts, ...new Array<number>(Math.max(0, span - counts.length)).fill(0)].sort((x, y) => x - y);
      return `send spread (tcpdump, ${total} probes over ${span} ms): mean ${(total / span).toFixed(1)} per ms, 99th percentile ${all[Math.ceil(0.99 * all.length) - 1]}, at most ${Math.max(...counts)} in one ms`;
    };
  };

  // The plain view (a summary line per window past 50 targets), as fping -q prints little: the
  // figures then measure the probing, not the writing of 10,000 JSON lines a window.
  const plArgs = (seconds: number) => [...NOBODY, process.execPath, CLI, 'monitor', '-c', join(dir, 'targets.json'), '--window', '10', '--timeout', '1000', '--duration', String(seconds)];
  const runs = DS.map((d) => {
    const pl = measured(src.ns, plArgs(d));
    const m = /-- duration: (\d+) probes, (\d+) answers/.exec(pl.stdout);
    if (!m) throw new Error(`pathlens printed no done line: ${pl.stdout.slice(-500)}${pl.stderr.slice(-500)}`);
    const windows = pl.stdout.split('\n').filter((l) => l.startsWith('window at '));
    const lastWindow = windows.at(-2) ?? windows.at(-1) ?? '';
    const notUp = /(\d+) up, (\d+) degraded, (\d+) down/.exec(lastWindow);
    return { d, pl, sent: Number(m[1]), replies: Number(m[2]), notUpCount: notUp ? Number(notUp[2]) + Number(notUp[3]) : -1 };
  });

  /** fping -C FC -p 1000 -i GAP: every target every second, GAP ms between two probes. */
  const fpArgs = (gap: string) => [...NOBODY, 'fping', '-C', String(FC), '-p', '1000', '-i', gap, '-q', '-f', join(dir, 'targets.txt')];
  const fping = (gap: string) => {
    const r = measured(src.ns, fpArgs(gap));
    if (!/ : /.test(r.stderr)) throw new Error(`fping printed no results: ${r.stderr.slice(0, 500)}`);
    let sent = 0;
    let got = 0;
    for (const l of r.stderr.split('\n')) {
      const x = /^\S+\s+:\s+(.*)$/.exec(l);
      if (!x) continue;
      for (const v of x[1].trim().split(/\s+/)) {
        sent++;
        if (v !== '-') got++;
      }
    }
    return { ...r, sent, got };
  };
  // -i 0: each round as one burst (the bar's yardstick); -i 0.1: the round spread over the
  // second, one probe every 0.1 ms, the schedule pathlens keeps.
  const burst = fping('0');
  const even = fping('0.1');
  // The spread runs: pathlens 14 s, captured from 10 s to 13 s (across the first window's close
  // at 11 s); each fping from 1 s to 3 s.
  const spreadOf = (name: string, delay: number, seconds: number, args: string[]) => {
    const w = watch(name, delay, seconds);
    measured(src.ns, args);
    return w();
  };
  const plSpread = spreadOf('pathlens', 10, 3, plArgs(14));
  const burstSpread = spreadOf('fping-burst', 1, 2, fpArgs('0'));
  const evenSpread = spreadOf('fping-even', 1, 2, fpArgs('0.1'));
  const row = (name: string, sent: number, got: number, r: { cpu: number; machine: number; rssMb: number; wall: number }) =>
    `${name.padEnd(16)} sent ${String(sent).padStart(8)}  answered ${String(got).padStart(8)}  rate ${(sent / r.wall).toFixed(0).padStart(6)}/s  process CPU ${((r.cpu / sent) * 1e6).toFixed(2).padStart(6)} us/probe  machine CPU ${((r.machine / sent) * 1e6).toFixed(2).padStart(6)} us/probe  RSS ${r.rssMb.toFixed(0)} MiB  wall ${r.wall.toFixed(1)} s`;
  const per = (r: { cpu: number; machine: number }, n: number) => ({ cpu: r.cpu / Math.max(n, 1), machine: r.machine / Math.max(n, 1) });
  process.stdout.write(`${N} targets, one probe a second each, pathlens for ${DS.join(' and ')} s, fping ${FC} rounds, ICMP, uid 65534\n`);
  for (const r of runs) process.stdout.write(`${row(`pathlens ${r.d} s`, r.sent, r.replies, r.pl)}  targets not up (last full window): ${r.notUpCount}\n`);
  process.stdout.write(`   pathlens ${plSpread}\n`);
  for (const [name, f, spread] of [['fping -i 0', burst, burstSpread], ['fping -i 0.1', even, evenSpread]] as const) {
    const q = per(f, f.sent);
    process.stdout.write(`${row(name, f.sent, f.got, f)}\n   ${spread}\n`);
    for (const r of runs) {
      const p = per(r.pl, r.sent);
      process.stdout.write(`   CPU per probe, pathlens ${r.d} s / ${name}: process ${(p.cpu / q.cpu).toFixed(3)}, machine ${(p.machine / q.machine).toFixed(3)}; RSS ${r.pl.rssMb.toFixed(0)} / ${f.rssMb.toFixed(0)} MiB\n`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  labDown(st.name);
}
