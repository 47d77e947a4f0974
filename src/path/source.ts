/**
 * The seam between whoever watches a path (the monitor's `hops` targets) and whoever traces it
 * (trace's continuous mode, `trace/path-source.ts`): the watcher asks for a path by this spec and
 * is handed every finished round, as the hops a `hop` event carries. Capabilities never import
 * each other, so the command line (and the library) pass trace's opener to the monitor.
 */
import type { Placement } from '../io/placement.js';
import type { InflightPool } from '../probe/pool.js';
import type { ProbeMethod } from '../probe/transport.js';
import type { HopSample } from './stats.js';

export interface PathSpec {
  /** The target as given, and its address (already resolved: the path follows the target's address). */
  target: string;
  address: string;
  method: ProbeMethod;
  /** UDP: the base destination port; TCP: the port. */
  port: number;
  placement: Placement;
  source?: string;
  /** From one round's start to the next. */
  intervalMs: number;
  maxTtl: number;
  /** Probes per hop and round. */
  queries: number;
  /** Flow identities per hop (ECMP: statistics per branch); 1: one flow. */
  flows: number;
  /** The longest wait for one probe. */
  waitMs: number;
}

/** One finished round of a watched path. */
export interface PathRound {
  round: number;
  hops: HopSample[];
  /** --pmtu figures (ttl 0: the local route). */
  mtus: { ttl: number; mtu: number }[];
  reached: boolean;
  /** The probes' source port / echo id of this round (its own socket). */
  srcPort: number;
}

export interface PathTracer {
  stop(): void;
  /** Settles when the tracer has closed its sockets. */
  readonly done: Promise<void>;
}

export interface PathHooks {
  onRound(r: PathRound): void;
  /** The tracer stopped on an error (it gives no more rounds). */
  onError(e: Error): void;
}

/** Starts tracing one path; every path of a run shares `pool` (the in-flight cap). */
export type OpenPathTracer = (spec: PathSpec, hooks: PathHooks, pool: InflightPool) => Promise<PathTracer>;
