/**
 * A soak: `pathlens monitor` with N targets (10,000) of which half never answer, and `pathlens
 * trace -c` on a lossy lab path, side by side for M minutes (30), both as uid 65534 writing their
 * events to files. Every 10 s: each process's RSS, open descriptors, CPU and events written,
 * printed as a table; then the drift of each figure after the warm-up (the first 2 minutes), false
 * loss on the answering half (what the monitor lost beyond the lab's own drops), and a SIGTERM at
 * a random moment of the last 10 s: each event file must end with a complete `done` event, every
 * line must parse, the processes must be gone.
 *
 *   sudo node dist/bench/soak.js [minutes=30] [targets=10000]
 *
 * The monitor's lab: src - r1 - dst, dst answering 10.200.0.0/16 itself (AnyIP), r1 dropping
 * 10.201.0.0/16 into a blackhole (no answer, no error). The trace's lab: a chain of 4 routers with
 * 5 % loss on every link (the lab's userspace impairment path), one round a second.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown, labUp } from '../src/lab/lab.js';
import { chain } from '../src/lab/presets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const MINUTES = Number(process.argv[2] ?? 30);
const N = Number(process.argv[3] ?? 10000);
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];
const STEP_S = 10;
const WARMUP_S = 120;

function sh(ns: string, cmd: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One process's figures now: RSS (MiB), open descriptors, CPU seconds so far (user + system). */
function sample(pid: number): { rss: number; fds: number; cpu: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { rss: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024, fds: readdirSync(`/proc/${pid}/fd`).length, cpu: (Number(f[11]) + Number(f[12])) / 100 };
  } catch {
    return null;
  }
}

/** Counts the lines a growing file has gained since the last call. */
class LineCounter {
  private off = 0;
  private readonly buf = Buffer.alloc(1 << 20);
  constructor(private readonly file: string) {}
  more(): number {
    let n = 0;
    const fd = openSync(this.file, 'r');
    try {
      for (;;) {
        const got = readSync(fd, this.buf, 0, this.buf.length, this.off);
        if (got <= 0) break;
        for (let i = 0; i < got; i++) if (this.buf[i] === 10) n++;
        this.off += got;
      }
    } finally {
      closeSync(fd);
    }
    return n;
  }
}

/** Every line of a JSONL file parsed (calls f on each); the last event, and the first line that did not parse. */
function readEvents(file: string, f: (e: Record<string, unknown>) => void): { last: Record<string, unknown> | null; bad: string | null; lines: number } {
  const text = readFileSync(file, 'utf8');
  let last: Record<string, unknown> | null = null;
  let bad: string | null = null;
  let lines = 0;
  let at = 0;
  while (at < text.length) {
    const nl = text.indexOf('\n', at);
    const line = text.slice(at, nl < 0 ? text.length : nl);
    at = nl < 0 ? text.length : nl + 1;
    if (!line) continue;
    lines++;
    try {
      last = JSON.parse(line) as Record<string, unknown>;
      f(last);
    } catch {
      bad ??= line.slice(0, 200);
    }
  }
  if (!text.endsWith('\n')) bad ??= 'the file does not end with a newline';
  return { last, bad, lines };
}

const labDrops = (ns: string) => Number(/IcmpOutErrors\s+(\d+)/.exec(sh(ns, 'nstat -az IcmpOutErrors'))?.[1] ?? 0);

const mon = await labUp(chain({ name: 'soakmon', routers: 1 }));
const tr = await labUp(chain({ name: 'soaktr', routers: 4, loss: 0.05, seed: 11 }));
const dir = mkdtempSync(join(tmpdir(), 'pl-soak-'));
const kids: ChildProcess[] = [];
try {
  chmodSync(dir, 0o777);
  const node = (st: typeof mon, name: string) => st.plan.nodes.find((n) => n.name === name)!;
  const src = node(mon, 'src');
  const r1 = node(mon, 'r1');
  const dst = node(mon, 'dst');
  sh(src.ns, `ip route add 10.200.0.0/15 via ${r1.ifaces.find((i) => i.peer === 'src')!.v4} && sysctl -qw net.ipv4.ping_group_range="0 2147483647"`);
  sh(r1.ns, `ip route add 10.200.0.0/16 via ${dst.ifaces[0].v4} && ip route add blackhole 10.201.0.0/16`);
  sh(dst.ns, 'ip route add local 10.200.0.0/16 dev lo');
  const half = Math.floor(N / 2);
  const addr = (net: number, i: number) => `10.${net}.${(i >> 8) & 255}.${i & 255}`;
  const answering = Array.from({ length: half }, (_, i) => addr(200, i + 1));
  const silent = Array.from({ length: N - half }, (_, i) => addr(201, i + 1));
  const targets = join(dir, 'targets.json');
  writeFileSync(targets, JSON.stringify({ defaults: { method: 'icmp', interval: 1 }, targets: [...answering, ...silent] }));
  const monOut = join(dir, 'monitor.jsonl');
  const trOut = join(dir, 'trace.jsonl');
  for (const f of [monOut, trOut]) {
    writeFileSync(f, '');
    chmodSync(f, 0o666);
  }
  chmodSync(targets, 0o644);
  const drops0 = labDrops(dst.ns);
  const trSrc = node(tr, 'src');
  const trDst = tr.plan.nodes.find((n) => n.name === 'dst')!.ifaces[0].v4!;
  kids.push(spawn('ip', ['netns', 'exec', src.ns, ...NOBODY, process.execPath, CLI, 'monitor', '-c', targets, '--window', '60', '--timeout', '1000', '--quiet', '-o', monOut], { stdio: 'ignore' }));
  kids.push(spawn('ip', ['netns', 'exec', trSrc.ns, ...NOBODY, process.execPath, CLI, 'trace', '-n', '-c', '1000000', '--interval', '1', '-o', trOut, trDst], { stdio: 'ignore' }));
  const names = ['monitor', 'trace'];
  const counters = [new LineCounter(monOut), new LineCounter(trOut)];
  const rows: { t: number; rss: number[]; fds: number[]; cpu: number[]; events: number[] }[] = [];
  let lastCpu = [0, 0];
  process.stdout.write(`soak: monitor of ${N} targets (${half} answering, ${N - half} never), 1/s, windows of 60 s; trace -c on 4 routers with 5% loss per link, a round a second; ${MINUTES} min, a row every ${STEP_S} s\n`);
  process.stdout.write(`${'t s'.padStart(6)}  ${names.map((n) => `${n} RSS MiB  fds  CPU %  events`.padStart(34)).join('  ')}\n`);
  const t0 = Date.now();
  for (let k = 1; k * STEP_S <= MINUTES * 60; k++) {
    await sleep(t0 + k * STEP_S * 1000 - Date.now());
    const s = kids.map((c) => sample(c.pid!));
    if (s.some((x) => x === null)) throw new Error(`a process ended early: ${s.map((x, i) => `${names[i]} ${x ? 'running' : 'gone'}`).join(', ')}`);
    const cpu = s.map((x) => x!.cpu);
    const row = { t: k * STEP_S, rss: s.map((x) => x!.rss), fds: s.map((x) => x!.fds), cpu: cpu.map((c, i) => ((c - lastCpu[i]) / STEP_S) * 100), events: counters.map((c) => c.more()) };
    lastCpu = cpu;
    rows.push(row);
    process.stdout.write(`${String(row.t).padStart(6)}  ${names.map((_, i) => `${row.rss[i].toFixed(1).padStart(12)} ${String(row.fds[i]).padStart(4)} ${row.cpu[i].toFixed(1).padStart(6)} ${String(row.events[i]).padStart(7)}`.padStart(34)).join('  ')}\n`);
  }
  // SIGTERM at a random moment of the next 10 s.
  await sleep(Math.floor(Math.random() * 10_000));
  for (const c of kids) c.kill('SIGTERM');
  const exits = await Promise.all(kids.map((c) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))))));
  const labLost = labDrops(dst.ns) - drops0;

  // Drift after the warm-up: (last minute's mean - the first minute after warm-up's mean) / the latter.
  const after = rows.filter((r) => r.t > WARMUP_S);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const drift = (pick: (r: (typeof rows)[number]) => number) => {
    const first = mean(after.slice(0, 6).map(pick));
    const last = mean(after.slice(-6).map(pick));
    return first > 0 ? ((last - first) / first) * 100 : 0;
  };
  process.stdout.write('\nafter the warm-up (first 2 min), last minute against the first:\n');
  for (let i = 0; i < 2; i++) {
    process.stdout.write(`  ${names[i].padEnd(8)} RSS ${drift((r) => r.rss[i]).toFixed(1)} %, fds ${drift((r) => r.fds[i]).toFixed(1)} %, CPU ${drift((r) => r.cpu[i]).toFixed(1)} %, RSS range ${Math.min(...after.map((r) => r.rss[i])).toFixed(1)}-${Math.max(...after.map((r) => r.rss[i])).toFixed(1)} MiB, fds ${Math.min(...after.map((r) => r.fds[i]))}-${Math.max(...after.map((r) => r.fds[i]))}\n`);
  }

  // The monitor's events: false loss on the answering half, the silent half all lost, the end.
  const answeringSet = new Set(answering);
  let sentA = 0;
  let gotA = 0;
  let sentS = 0;
  let gotS = 0;
  const m = readEvents(monOut, (e) => {
    if (e.type !== 'stats') return;
    if (answeringSet.has(e.target as string)) {
      sentA += e.sent as number;
      gotA += e.received as number;
    } else {
      sentS += e.sent as number;
      gotS += e.received as number;
    }
  });
  const t = readEvents(trOut, () => {});
  process.stdout.write(`monitor: answering half ${gotA}/${sentA} answered, ${sentA - gotA} lost, the lab's own drops ${labLost}: false loss ${Math.max(0, sentA - gotA - labLost)}; silent half ${gotS}/${sentS} answered\n`);
  for (const [name, r, code] of [['monitor', m, exits[0]], ['trace', t, exits[1]]] as const) {
    process.stdout.write(`${name}: SIGTERM, exit ${code}; ${r.lines} lines, every line parses: ${r.bad === null ? 'yes' : `no (${r.bad})`}; last event: ${r.last?.type}${r.last?.type === 'done' ? ` (reason ${r.last.reason})` : ''}\n`);
  }
  const left = kids.filter((c) => sample(c.pid!) !== null).length;
  process.stdout.write(`processes left: ${left}\n`);
} finally {
  for (const c of kids) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  labDown(mon.name);
  labDown(tr.name);
}
