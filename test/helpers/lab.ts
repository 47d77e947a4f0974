/**
 * Integration-test helpers: labs brought up through the product's own lab code, the real CLI run
 * inside a node's namespace (optionally as an unprivileged user), and schema validation of every
 * JSONL line it prints.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type LabState, labDown, labUp, stateDir } from '../../src/lab/lab.js';
import { type LabSpec, validateSpec } from '../../src/lab/spec.js';
import type { TraceEvent } from '../../src/trace/events.js';
import { jsonlOf } from './schema.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = `${ROOT}bin/pathlens.js`;

let counter = 0;
/** A lab name unique to this test process. */
export function labName(prefix: string): string {
  return `${prefix}${(process.pid % 1000).toString(36)}${(counter++).toString(36)}`.slice(0, 10);
}

export async function withLab<T>(spec: LabSpec, fn: (st: LabState) => Promise<T>): Promise<T> {
  const st = await labUp(spec);
  try {
    return await fn(st);
  } finally {
    labDown(spec.name);
  }
}

export function nodeNs(st: LabState, node: string): string {
  return st.plan.nodes.find((n) => n.name === node)!.ns;
}

export function addrOf(st: LabState, node: string, family: 4 | 6, link?: number): string {
  const n = st.plan.nodes.find((x) => x.name === node)!;
  const i = link === undefined ? n.ifaces[0] : n.ifaces.find((x) => x.link === link)!;
  return family === 4 ? i.v4 : i.v6;
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command inside a namespace; `uid` drops to that user (and group) first. */
export function runIn(ns: string, cmd: string[], opts: { uid?: number; timeoutMs?: number } = {}): Promise<Run> {
  const drop = opts.uid !== undefined ? ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', '--'] : [];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...drop, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Parses `trace --jsonl` output, every line an event valid against the v1 schema; throws on the first bad line. */
export const parseEvents = jsonlOf<TraceEvent>('trace-v1.schema.json', false);

/**
 * Runs `pathlens trace --jsonl` inside the node's namespace and returns validated events. Reverse
 * names are off (-n) unless args ask for a name server (--dns-server).
 */
export async function trace(st: LabState, from: string, target: string, args: string[] = [], uid?: number): Promise<{ events: TraceEvent[]; run: Run }> {
  const numeric = args.some((a) => a.startsWith('--dns')) ? [] : ['-n'];
  const run = await runIn(nodeNs(st, from), [process.execPath, CLI, 'trace', '--jsonl', ...numeric, ...args, target], { uid });
  if (run.code !== 0) throw new Error(`trace exited ${run.code}: ${run.stderr}`);
  return { events: parseEvents(run.stdout), run };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** The impairment process's cumulative send counters: frames sent, and frames that left late. */
export interface LabTiming {
  sent: number;
  late: Record<string, number>;
}

function readTiming(st: LabState): LabTiming | null {
  try {
    const j = JSON.parse(readFileSync(`${stateDir()}/${st.name}/forwarder.stats.json`, 'utf8')) as { sent_total: number; sent_late: Record<string, number> };
    return { sent: j.sent_total, late: j.sent_late };
  } catch {
    return null;
  }
}

/**
 * The counters once the impairment process has gone idle after sending more than `after.sent`
 * frames (it writes them only while nothing is queued, at most every 100 ms).
 */
export async function labTiming(st: LabState, after?: LabTiming): Promise<LabTiming> {
  const until = Date.now() + 5000;
  for (;;) {
    const t = readTiming(st);
    if (t && (!after || t.sent > after.sent)) return t;
    if (Date.now() > until) throw new Error(`the impairment process of ${st.name} wrote no stats`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Frames that left more than `bound` ms late between two snapshots. */
export function lateBetween(a: LabTiming, b: LabTiming, bound: 0.25 | 0.5 | 1 | 2 | 5): number {
  const k = `over_${bound}_ms`;
  return (b.late[k] ?? 0) - (a.late[k] ?? 0);
}

/** Sweeps (trace --xdp): src - r1 - r2 - r3 - dst; every router forwards the unknown towards dst, and r3 refuses the lab's phantom prefix. */
export function sweepLab(name: string): LabSpec {
  return validateSpec({
    name,
    nodes: [
      { name: 'src', role: 'host' },
      { name: 'r1', role: 'router', default_via: 'r2' },
      { name: 'r2', role: 'router', default_via: 'r3' },
      { name: 'r3', role: 'router', default_via: 'dst', routes: [{ to: 'phantom', type: 'unreachable' }] },
      { name: 'dst', role: 'host' },
    ],
    links: [
      { a: 'src', b: 'r1' },
      { a: 'r1', b: 'r2' },
      { a: 'r2', b: 'r3' },
      { a: 'r3', b: 'dst' },
    ],
  });
}

/** What pathlens --xdp may have left in the namespace: an XDP program on an interface, a loaded pl_xsk, an AF_XDP socket. */
export async function leftovers(ns: string): Promise<string[]> {
  for (let i = 0; ; i++) {
    const found: string[] = [];
    const links = await runIn(ns, ['ip', '-d', 'link', 'show']);
    if (/prog\/xdp|xdpgeneric|xdpdrv/.test(links.stdout)) found.push('an XDP program on an interface');
    const progs = await runIn(ns, ['bpftool', 'prog', 'show']);
    if (/name pl_xsk\b/.test(progs.stdout)) found.push('pl_xsk loaded');
    const socks = await runIn(ns, ['ss', '-a', '--xdp']);
    if (socks.stdout.trim().split('\n').length > 1) found.push(`AF_XDP sockets: ${socks.stdout.trim()}`);
    if (found.length === 0 || i === 40) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
}
