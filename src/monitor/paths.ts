/**
 * The monitor's paths: every target with `hops` is traced continuously (rounds at its hops
 * interval, by its method and way out), beside its endpoint probes. Each round is folded into the
 * target's window (path/stats.ts: mtr's figures per hop, median and 90th percentile, ECMP branches,
 * loss verdicts) and into its path (path/changes.ts: a change must hold for `damping` rounds).
 * Events: `path` when the path is first seen and when it changes, `path-hops` per window.
 *
 * The tracing itself is the path seam's (path/source.ts), opened through `open` (trace's
 * continuous mode, passed in by the command line); all paths share one in-flight cap. Start times
 * are spread over the interval, so a thousand paths do not start their rounds together.
 */
import type { Scheduler, TimerId } from '../core/scheduler.js';
import { version } from '../core/version.js';
import type { Placement } from '../io/placement.js';
import { PathChanges, type PathShape } from '../path/changes.js';
import type { OpenPathTracer, PathRound, PathTracer } from '../path/source.js';
import { HopStatsTable } from '../path/stats.js';
import { InflightPool } from '../probe/pool.js';
import type { ProbeMethod } from '../probe/transport.js';
import { MONITOR_SCHEMA, type MonitorEvent, type PathHop } from './events.js';

/** What a target's `hops` says. */
export interface HopsSettings {
  /** The method of the path's probes (default: the target's, ICMP for auto: mtr's default). */
  method?: ProbeMethod;
  /** From one round's start to the next, ms (0: the target's interval). */
  intervalMs: number;
  maxTtl: number;
  queries: number;
  /** Flow identities per hop (ECMP branches); 1: one flow. */
  flows: number;
  /** UDP: the base destination port (probe i to port + i); TCP: the target's tcp port is used. */
  port: number;
}

export const HOPS_DEFAULTS: HopsSettings = { intervalMs: 0, maxTtl: 30, queries: 3, flows: 1, port: 33434 };
export const PATH_DEFAULTS = { damping: 2, inflight: 64 };

/** One watched path, as the run knows its target. */
export interface WatchedPath {
  target: string;
  address: string;
  family: 4 | 6;
  path: string | null;
  method: ProbeMethod;
  port: number;
  placement: Placement;
  source?: string;
  intervalMs: number;
  hops: HopsSettings;
}

interface Watch {
  p: WatchedPath;
  tracer: PathTracer | null;
  table: HopStatsTable;
  rounds: number;
  reached: boolean | null;
  changes: PathChanges;
  timer: TimerId | null;
}

const hopList = (s: PathShape): PathHop[] => s.hops.map((addrs, i) => ({ ttl: s.firstTtl + i, addrs }));

export class PathWatch {
  private readonly watches: Watch[];
  private readonly pool: InflightPool;
  private stopped = false;
  private window = 0;
  private windowTimer: TimerId | null = null;

  constructor(
    paths: WatchedPath[],
    private readonly open: OpenPathTracer,
    private readonly o: { windowMs: number; damping: number; inflight: number; timeoutMs: number; clock: Scheduler; t0: number; wall0: number; emit: (e: MonitorEvent) => void; onError: (target: string, e: Error) => void },
  ) {
    this.pool = new InflightPool(o.inflight);
    this.watches = paths.map((p) => ({ p, tracer: null, table: new HopStatsTable(p.address, true), rounds: 0, reached: null, changes: new PathChanges(o.damping), timer: null }));
  }

  private tms(): number {
    return Math.round((this.o.clock.now() - this.o.t0) * 1000) / 1000;
  }

  /** Starts every path (spread over their interval) and the window clock. */
  start(): void {
    const n = this.watches.length;
    this.watches.forEach((w, k) => {
      const at = (w.p.intervalMs * k) / Math.max(1, n);
      w.timer = this.o.clock.setTimer(() => {
        w.timer = null;
        void this.openOne(w);
      }, at);
    });
    this.armWindow();
  }

  private armWindow(): void {
    const next = (this.window + 1) * this.o.windowMs;
    this.windowTimer = this.o.clock.setTimer(() => {
      this.windowTimer = null;
      if (this.stopped) return;
      this.closeWindow();
      this.armWindow();
    }, Math.max(0, next - (this.o.clock.now() - this.o.t0)));
  }

  private async openOne(w: Watch): Promise<void> {
    if (this.stopped) return;
    const p = w.p;
    try {
      const t = await this.open(
        { target: p.target, address: p.address, method: p.method, port: p.port, placement: p.placement, ...(p.source ? { source: p.source } : {}), intervalMs: p.intervalMs, maxTtl: p.hops.maxTtl, queries: p.hops.queries, flows: p.hops.flows, waitMs: this.o.timeoutMs },
        { onRound: (r) => this.onRound(w, r), onError: (e) => this.o.onError(p.target, e) },
        this.pool,
      );
      if (this.stopped) t.stop();
      else w.tracer = t;
    } catch (e) {
      this.o.onError(p.target, e as Error);
    }
  }

  private onRound(w: Watch, r: PathRound): void {
    if (this.stopped) return;
    for (const h of r.hops) w.table.add(h);
    for (const m of r.mtus) w.table.addMtu(m.ttl, m.mtu);
    w.rounds++;
    w.reached = r.reached;
    const c = w.changes.round(r.hops, r.reached);
    if (!c) return;
    const p = w.p;
    this.o.emit({
      schema: MONITOR_SCHEMA,
      type: 'path',
      t_ms: this.tms(),
      target: p.target,
      address: p.address,
      path: p.path,
      change: c.kind,
      round: r.round,
      from: c.from ? hopList(c.from) : null,
      to: hopList(c.to),
      reached: c.to.reached,
      changed_ttls: c.ttls,
      changes: w.changes.changes,
    });
  }

  /** Every path's window: its figures as a path-hops event, then a fresh table. */
  private closeWindow(): void {
    this.window++;
    const start = (this.window - 1) * this.o.windowMs;
    for (const w of this.watches) this.emitWindow(w, start, this.o.windowMs);
  }

  private emitWindow(w: Watch, start: number, len: number): void {
    const p = w.p;
    this.o.emit({
      schema: MONITOR_SCHEMA,
      type: 'path-hops',
      t_ms: this.tms(),
      target: p.target,
      address: p.address,
      path: p.path,
      window: this.window,
      window_start_ms: start,
      window_ms: len,
      method: p.method,
      family: p.family,
      time: new Date(this.o.wall0 + start + len).toISOString(),
      version: version(),
      rounds: w.rounds,
      reached: w.rounds ? w.reached : null,
      hops: w.table.hops(1),
    });
    w.table.reset();
    w.rounds = 0;
  }

  /** Stops every tracer; the window in progress is closed with what it has. Resolves when the sockets are closed. */
  stop(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.stopped = true;
    if (this.windowTimer !== null) this.o.clock.clearTimer(this.windowTimer);
    const now = this.o.clock.now() - this.o.t0;
    const start = this.window * this.o.windowMs;
    if (now > start) {
      this.window++;
      for (const w of this.watches) if (w.rounds > 0) this.emitWindow(w, start, Math.round((now - start) * 1000) / 1000);
    }
    const done: Promise<void>[] = [];
    for (const w of this.watches) {
      if (w.timer !== null) this.o.clock.clearTimer(w.timer);
      if (w.tracer) {
        w.tracer.stop();
        done.push(w.tracer.done);
      }
    }
    return Promise.all(done).then(() => undefined);
  }
}
