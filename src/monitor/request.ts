/**
 * What a monitor run is asked to do, whoever asks (command line, target file, library), its
 * defaults, and its validation, once.
 */
import { PathlensError } from '../core/errors.js';
import type { Scheduler } from '../core/scheduler.js';
import type { Placement } from '../io/placement.js';
import type { Family } from '../packet/addr.js';
import type { ProbeMethod } from '../probe/transport.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from './health.js';
import type { Prober, ProberHooks, ProberOptions } from './prober.js';
import { TargetTable } from './table.js';
import type { HopsSettings } from './paths.js';
import type { OpenPathTracer } from '../path/source.js';
import type { XdpProbing } from './xdp.js';

export type MethodChoice = ProbeMethod | 'auto';

/** What a target's configuration says, whoever read it (command line, target file). */
export interface TargetSettings {
  method: MethodChoice;
  /** UDP: the (closed) port probed; TCP: the port connected to. */
  udpPort: number;
  tcpPort: number;
  intervalMs: number;
  thresholds: Thresholds;
  placement: Placement;
  /** The source address the probes leave from (the way out's), when given. */
  source?: string;
  /** The way out, for events and metrics (e.g. the uplink's name). */
  path: string | null;
  labels: Record<string, string>;
  /** Trace the target's path too (per-hop figures, path changes); null or absent: endpoint only. */
  hops?: HopsSettings | null;
}

export interface MonitorTarget extends TargetSettings {
  /** As given (name or address). */
  name: string;
  address: Uint8Array;
}

/** Opens the prober of one method, family and way out (tests give scripted ones). */
export type OpenProber = (method: ProbeMethod, family: Family, session: number, hooks: ProberHooks, placement: Placement, source: Uint8Array | undefined, opts: ProberOptions) => Prober;

export interface MonitorRequest {
  /** The targets: a list, or columns (the command line's: a hundred thousand targets without an object each). */
  targets: MonitorTarget[] | TargetTable;
  windowMs: number;
  timeoutMs: number;
  /** 0: until stopped. */
  durationMs: number;
  samples: boolean;
  /** Run on every state change, with PATHLENS_* in its environment. */
  onChange?: string;
  /** Every answer's RTT (the metrics' histogram). */
  onRtt?: (target: string, method: ProbeMethod, path: string | null, rttMs: number) => void;
  /** After a lost probe, this many probes at a tenth of the interval (0: off), to confirm a failure sooner. */
  confirm?: number;
  /** Names looked up again this often (0: never), ms; an address that changes is an `address` event. */
  resolveEveryMs?: number;
  /** How names are looked up (tests); the system resolver by default. */
  resolve?: (name: string, family?: Family) => Promise<Uint8Array>;
  /** Time and timers (the real clock unless a test gives a virtual one). */
  scheduler?: Scheduler;
  /** How probers are opened (the real sockets unless a test gives scripted ones). */
  openProber?: OpenProber;
  /** Receive buffer of the probe sockets, bytes (MONITOR_DEFAULTS.rcvbuf). */
  rcvbuf?: number;
  /** The UDP method's probes through AF_XDP (`--xdp`). */
  xdp?: XdpProbing;
  /** How targets with `hops` are traced (trace's continuous mode: the command line and the library pass it). */
  openPath?: OpenPathTracer;
  /** Rounds in a row a path change must hold before it is one (PATH_DEFAULTS.damping). */
  pathDamping?: number;
  /** Probes in flight at most over all paths (PATH_DEFAULTS.inflight). */
  pathInflight?: number;
}

export const MONITOR_DEFAULTS = { intervalMs: 1000, windowMs: 10_000, timeoutMs: 1000, udpPort: 33434, tcpPort: 80, thresholds: DEFAULT_THRESHOLDS, rcvbuf: 8 << 20 };

/** The ladder of `auto`, in order. */
export const LADDER: ProbeMethod[] = ['icmp', 'udp', 'tcp'];
/** A target held to one method: its ladder of one, shared. */
export const ONLY: Record<ProbeMethod, ProbeMethod[]> = { icmp: ['icmp'], udp: ['udp'], tcp: ['tcp'] };

/** The longest timeout, ms (send times are kept modulo 1,073 s: ledger.ts). */
export const MAX_TIMEOUT_MS = 600_000;

/** Outstanding probes kept per target, at most: enough for timeout / interval probes in flight. */
export const RING_MAX = 64;

/** Refuses a request the run could not honour, with one line saying why. */
export function validateMonitor(req: MonitorRequest): void {
  if (req.targets.length === 0) throw new PathlensError('ERR_USAGE', 'no targets: give addresses or names, or a config file with -c');
  if (!(req.timeoutMs > 0 && req.timeoutMs < req.windowMs)) throw new PathlensError('ERR_USAGE', `the timeout (${req.timeoutMs} ms) must be shorter than the window (${req.windowMs} ms)`);
  if (!(req.timeoutMs <= MAX_TIMEOUT_MS)) throw new PathlensError('ERR_USAGE', `the timeout (${req.timeoutMs} ms) must be at most ${MAX_TIMEOUT_MS} ms`);
  if (req.pathDamping !== undefined && !(Number.isInteger(req.pathDamping) && req.pathDamping >= 1 && req.pathDamping <= 100)) throw new PathlensError('ERR_USAGE', 'the path damping must be from 1 to 100 rounds');
  if (req.pathInflight !== undefined && !(Number.isInteger(req.pathInflight) && req.pathInflight >= 1)) throw new PathlensError('ERR_USAGE', 'the paths\' in-flight cap must be at least 1');
  const profiles = req.targets instanceof TargetTable ? req.targets.profiles : req.targets;
  if (!req.openPath && profiles.some((p) => p.hops)) throw new PathlensError('ERR_USAGE', 'targets with hops need a path tracer (openPath): the command line and the library pass trace\'s');
  if (req.targets instanceof TargetTable) {
    // Settings are checked once per profile, named by its first target.
    const seen = new Set<number>();
    for (let i = 0; i < req.targets.length; i++) {
      const p = req.targets.profileOf(i);
      if (seen.has(p)) continue;
      seen.add(p);
      checkTarget(req.targets.name(i), req.targets.profiles[p], req.timeoutMs);
    }
    return;
  }
  for (const t of req.targets) checkTarget(t.name, t, req.timeoutMs);
}

function checkTarget(name: string, t: TargetSettings, timeoutMs: number): void {
  if (t.hops) {
    const h = t.hops;
    if (!(h.maxTtl >= 1 && h.maxTtl <= 255)) throw new PathlensError('ERR_USAGE', `${name}: hops max_ttl must be from 1 to 255`);
    if (!(h.queries >= 1 && h.queries <= 10)) throw new PathlensError('ERR_USAGE', `${name}: hops queries must be from 1 to 10`);
    if (!(h.flows >= 1 && h.flows <= 64)) throw new PathlensError('ERR_USAGE', `${name}: hops ecmp must be from 1 to 64 flows`);
    if ((h.intervalMs || t.intervalMs) < 100) throw new PathlensError('ERR_USAGE', `${name}: a path is traced at most every 0.1 s (hops interval)`);
    const method = h.method ?? (t.method === 'auto' ? 'icmp' : t.method);
    if (h.flows > 1 && method === 'tcp') throw new PathlensError('ERR_USAGE', `${name}: hops ecmp needs UDP or ICMP probes (TCP connect() probes cannot keep a flow's ports)`);
  }
  if (!(t.intervalMs >= 1)) throw new PathlensError('ERR_USAGE', `${name}: the interval must be at least 1 ms`);
  if (RING_MAX * t.intervalMs < timeoutMs) throw new PathlensError('ERR_USAGE', `${name}: an interval of ${t.intervalMs} ms keeps more than ${RING_MAX} probes waiting for a ${timeoutMs} ms timeout`);
}
