/**
 * pathlens.monitor/1 events (schema/monitor-v1.schema.json; the tests validate every line).
 * Every event names its target by `target` (the name given, or address) and, where a target is
 * watched over several ways out, `path`.
 */
import type { Health } from './health.js';
import type { ProbeMethod } from '../probe/transport.js';
import type { WindowFigures } from './window.js';
import type { HopStats } from '../path/stats.js';

import { MONITOR_SCHEMA } from '../core/schemas.js';

export { MONITOR_SCHEMA };

interface Base {
  schema: typeof MONITOR_SCHEMA;
  /** Milliseconds since the start event (monotonic). */
  t_ms: number;
}

interface Of {
  target: string;
  /** The target's address as probed. */
  address: string;
  /** The way out (path label), when given. */
  path: string | null;
}

export interface MonitorStartEvent extends Base {
  type: 'start';
  version: string;
  time: string;
  targets: number;
  interval_ms: number;
  window_ms: number;
  timeout_ms: number;
}

/** A method decision for a target: chosen at start, switched when it stopped working, or refused by the kernel. */
export interface MethodEvent extends Base, Of {
  type: 'method';
  action: 'chosen' | 'switched' | 'refused' | 'unreachable';
  method: ProbeMethod | null;
  /** The socket the method uses: ping, raw, dgram, connect, af_xdp (UDP with --xdp) (null with no method). */
  socket: string | null;
  from: ProbeMethod | null;
  reason: string;
}

/** A name looked up again (--resolve-every) gave another address: probes go there from now on. */
export interface AddressEvent extends Base, Of {
  type: 'address';
  /** The address before (the new one is `address`). */
  from: string;
}

export interface StatsEvent extends Base, Of, WindowFigures {
  type: 'stats';
  method: ProbeMethod;
  /** The window: [window_start_ms, window_start_ms + window_ms) in t_ms terms. */
  window_start_ms: number;
  window_ms: number;
  state: Health;
  score: number;
}

export interface StateEvent extends Base, Of {
  type: 'state';
  from: Health | null;
  to: Health;
  reason: string;
  method: ProbeMethod | null;
}

/** --samples: one per probe outcome. */
export interface SampleEvent extends Base, Of {
  type: 'sample';
  method: ProbeMethod;
  seq: number;
  result: 'reply' | 'timeout' | 'unreachable' | 'duplicate';
  rtt_ms: number | null;
  kernel_ts: boolean;
}

/** Lag figures of one window, ms: the 50th and 99th percentiles as histogram bounds (at most), and the largest. */
export interface LagFigures {
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number;
}

/** Kernel send delay of the probes stamped in one window: how many, the percentiles as histogram bounds (at most), the largest, ms. */
export interface KernelSendFigures {
  stamped: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number;
}

/**
 * The prober's account of itself for one window (schedule.ts), when the window is closed: what
 * was asked and sent, what was skipped, refused or dropped on this host, how late probes and ticks
 * were, and whether the schedule was kept (`behind` says why not).
 */
export interface ProberEvent extends Base {
  type: 'prober';
  window_start_ms: number;
  window_ms: number;
  asked: number;
  sent: number;
  skipped: number;
  send_refused: number;
  rx_dropped: number;
  asked_per_s: number;
  sent_per_s: number;
  send_lag: LagFigures;
  tick_late: LagFigures;
  /** Kernel send delay of the sampled probes (the last of each send batch); null when no socket gives send stamps. */
  send_kernel: KernelSendFigures | null;
  kept: boolean;
  behind?: string[];
}

/** The addresses answering at one TTL of a watched path. */
export interface PathHop {
  ttl: number;
  addrs: string[];
}

/**
 * A target with `hops`: its path as first seen (`initial`), or a change (`changed`: seen in
 * `damping` rounds in a row), with the hop lists before and after and the TTLs that changed.
 */
export interface PathEvent extends Base, Of {
  type: 'path';
  change: 'initial' | 'changed';
  /** The round (of this path's tracer) that settled it. */
  round: number;
  from: PathHop[] | null;
  to: PathHop[];
  /** Whether the target answered at the end of the new path. */
  reached: boolean;
  changed_ttls: number[];
  /** Changes so far for this target (the metric's count). */
  changes: number;
}

/**
 * A target with `hops`, one window: the rounds traced in it and each hop's figures over them
 * (mtr's, with the median and 90th percentile, the responders, the ECMP branches and the loss
 * verdict with its evidence).
 */
export interface PathHopsEvent extends Base, Of {
  type: 'path-hops';
  /** The window's number, from 1 (pathlens report FILE@FROM-TO selects by it). */
  window: number;
  window_start_ms: number;
  window_ms: number;
  method: ProbeMethod;
  family: 4 | 6;
  /** Wall-clock time of the window's end. */
  time: string;
  version: string;
  rounds: number;
  /** Whether the last round reached the target (null: no round in the window). */
  reached: boolean | null;
  hops: HopStats[];
}

export interface MonitorErrorEvent extends Base {
  type: 'error';
  code: string;
  message: string;
}

export interface MonitorDoneEvent extends Base {
  type: 'done';
  reason: 'duration' | 'interrupted' | 'error';
  probes_sent: number;
  replies: number;
  duration_ms: number;
}

export type MonitorEvent = MonitorStartEvent | MethodEvent | AddressEvent | StatsEvent | StateEvent | SampleEvent | ProberEvent | PathEvent | PathHopsEvent | MonitorErrorEvent | MonitorDoneEvent;
