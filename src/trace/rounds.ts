/**
 * Continuous mode (`-c N`, `--live`): the trace run again and again, as mtr and Trippy do. Each
 * round is a whole trace on the same engine (its own socket, so a late reply of one round can
 * never be taken for the next one's), and the stream stays one run: one `start` (with `rounds`
 * and `interval_ms`), the rounds' events with their `round` number and times from the run's
 * start, a `path-change` event when the addresses answering at a TTL changed, after each round
 * a `hop-stats` event per hop (HopStatsTable: mtr's figures over the rounds so far) and then the
 * `round` event; one `done` at the end with the rounds' sums.
 *
 * Between rounds: `intervalMs` (from the start of one round to the start of the next, as mtr's
 * -i; a round longer than that is followed at once). `pause()` holds the next round, `reset()`
 * clears the statistics (the live view's keys).
 */
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { PathlensError } from '../core/errors.js';
import { type DoneEvent, type HopEvent, type StartEvent, type StopReason, TRACE_SCHEMA, type TraceEvent } from './events.js';
import type { TraceRequest } from './request.js';
import { type TraceHandle, type TraceShared, correlatorsFor, startTrace } from './run.js';
import { HopStatsTable } from '../path/stats.js';

export interface RoundsOptions {
  /** Rounds to run; null: until stopped. */
  count: number | null;
  intervalMs: number;
  /**
   * Only what a path watcher reads (the monitor's paths, trace/path-source.ts): the start, hop,
   * mtu, error, round and done events, no hop-stats kept or sent, and per-probe events not copied.
   */
  hopsOnly?: boolean;
}

export interface RoundsHandle extends RunHandle<DoneEvent> {
  readonly error: Error | null;
  /** The statistics so far (the views read them). */
  readonly stats: HopStatsTable;
  /** Rounds completed. */
  readonly round: number;
  paused: boolean;
  /** Clears the statistics (mtr's "reset"). */
  reset(): void;
}

const ms = (x: number) => Math.round(x * 1000) / 1000;

export async function startRounds(req: TraceRequest, sink: Sink<TraceEvent>, ro: RoundsOptions, shared: TraceShared = {}): Promise<RoundsHandle> {
  if (req.method === 'auto') throw new PathlensError('ERR_USAGE', 'continuous mode runs one method: choose -U, -I or -T instead of --method auto');
  if (ro.count !== null && !(ro.count >= 1)) throw new PathlensError('ERR_USAGE', 'rounds must be at least 1');
  let stats = new HopStatsTable();
  let roundReq = req;
  // --bpf: the programs are loaded once for all the rounds (each round's socket registers with them).
  const kernel = shared.kernel ? null : correlatorsFor(req);
  if (kernel) shared = { ...shared, kernel };
  let roundShared = shared;
  const lastAddrs = new Map<number, string[]>();
  const t0 = performance.now();
  let stopped = false;
  let paused = false;
  let current: TraceHandle | null = null;
  let failure: Error | null = null;
  let round = 0;
  let wake: (() => void) | null = null;
  const now = () => ms(performance.now() - t0);
  const emit = (e: TraceEvent) => sink.event(e);

  /** Sleeps until `at` (performance.now() time), or until stopped / unpaused. */
  const sleepUntil = (at: number) =>
    new Promise<void>((res) => {
      const t = setTimeout(() => {
        wake = null;
        res();
      }, Math.max(0, at - performance.now()));
      wake = () => {
        clearTimeout(t);
        wake = null;
        res();
      };
    });

  const totals = { probes_sent: 0, replies: 0, timeouts: 0, late: 0, unmatched: 0, send_retries: 0, send_calls: 0, recv_calls: 0 };
  let first = true;
  const done = (async (): Promise<DoneEvent> => {
    try {
      return await runAll();
    } finally {
      kernel?.close();
    }
  })();

  async function runAll(): Promise<DoneEvent> {
    let last: DoneEvent | null = null;
    let lastReason: StopReason = 'interrupted';
    while (!stopped && (ro.count === null || round < ro.count)) {
      const roundStart = performance.now();
      const offset = roundStart - t0;
      const r = round + 1;
      let srcPort = 0;
      const wrap: Sink<TraceEvent> = {
        event: (e) => {
          if (e.type === 'start') {
            srcPort = e.src_port;
            // UDP: every round from the first round's source port, so that each flow (its ports)
            // takes the same ECMP branch round after round, as mtr's one socket does: per-branch
            // statistics and path changes mean something only then. (Each round still has its own
            // socket and cookie session: a late reply of one round is never taken for the next's.)
            if (e.method === 'udp' && roundReq.srcPort === undefined) roundReq = { ...req, srcPort: e.src_port };
            // The route is the same for every round: asked once (rtnetlink), given to the others.
            if (e.egress && !roundShared.egress) roundShared = { ...shared, egress: e.egress };
            if (first) {
              stats = new HopStatsTable(e.address);
              first = false;
              emit({ ...e, rounds: ro.count, interval_ms: ro.intervalMs } satisfies StartEvent);
            }
            return;
          }
          if (e.type === 'done') {
            last = e;
            return;
          }
          if (ro.hopsOnly && e.type !== 'hop' && e.type !== 'mtu' && e.type !== 'error') return;
          const shifted = { ...e, t_ms: ms(e.t_ms + offset) } as TraceEvent;
          if (shifted.type === 'probe' || shifted.type === 'reply' || shifted.type === 'timeout' || shifted.type === 'hop' || shifted.type === 'mtu' || shifted.type === 'unmatched') shifted.round = r;
          emit(shifted);
          if (shifted.type === 'hop') onHop(shifted, r);
          else if (shifted.type === 'mtu') stats.addMtu(shifted.ttl, shifted.mtu);
        },
      };
      try {
        current = await startTrace(roundReq, wrap, roundShared);
      } catch (e) {
        if (round === 0) throw e;
        failure = e as Error;
        lastReason = 'error';
        break;
      }
      const d = await current.done;
      failure = current.error;
      // The round is over: its engine, socket and slabs go now, not when the next round starts
      // (a monitor watching a thousand paths would keep a thousand finished rounds otherwise).
      current = null;
      round = r;
      for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += d[k];
      lastReason = d.reason;
      const t = now();
      if (!ro.hopsOnly) for (const h of stats.hops(req.firstTtl)) emit({ schema: TRACE_SCHEMA, type: 'hop-stats', t_ms: t, round: r, ...h });
      // Last: the round's own summary, after its statistics (consumers flush on it).
      emit({ schema: TRACE_SCHEMA, type: 'round', t_ms: now(), round: r, reached: d.reached, reason: d.reason, hops: d.hops, probes_sent: d.probes_sent, replies: d.replies, timeouts: d.timeouts, src_port: srcPort, duration_ms: ms(performance.now() - roundStart) });
      if (d.reason === 'error' || d.reason === 'interrupted') break;
      if (ro.count !== null && round >= ro.count) break;
      await sleepUntil(roundStart + ro.intervalMs);
      while (paused && !stopped) await sleepUntil(performance.now() + 3_600_000);
    }
    const l = last as DoneEvent | null;
    return {
      schema: TRACE_SCHEMA,
      type: 'done',
      t_ms: now(),
      reached: l?.reached ?? false,
      reason: stopped && lastReason !== 'error' ? 'interrupted' : lastReason,
      hops: l?.hops ?? 0,
      ...totals,
      duration_ms: now(),
      rounds: round,
    };
  }

  function onHop(h: HopEvent, r: number): void {
    if (ro.hopsOnly) return;
    stats.add(h);
    if (h.addrs.length === 0) return;
    const before = lastAddrs.get(h.ttl);
    const now_ = [...h.addrs].sort();
    lastAddrs.set(h.ttl, now_);
    if (before && (before.length !== now_.length || before.some((a, i) => a !== now_[i]))) {
      emit({ schema: TRACE_SCHEMA, type: 'path-change', t_ms: h.t_ms, round: r, ttl: h.ttl, from: before, to: now_ });
    }
  }

  const finished = done.then((d) => {
    emit(d);
    return d;
  });
  return {
    done: finished,
    stop: () => {
      stopped = true;
      current?.stop();
      wake?.();
    },
    get error() {
      return failure;
    },
    get stats() {
      return stats;
    },
    get round() {
      return round;
    },
    get paused() {
      return paused;
    },
    set paused(v: boolean) {
      paused = v;
      if (!v) wake?.();
    },
    reset: () => {
      stats.reset();
      lastAddrs.clear();
    },
  };
}
