/**
 * Several targets in one run (`pathlens trace A B C`, `--targets FILE`): each target is a whole
 * trace of its own (its socket, its events from start to done, tagged with its `target`), up to
 * `parallel` of them at once, and all of them under one in-flight cap (InflightPool): the cap the
 * user gave with -N is what the run puts on the network at any moment, however many targets.
 *
 * The options are checked once, before anything starts. A target that cannot start (a name that
 * does not resolve, a refused socket) gets an `error` event in its own stream and the others go
 * on; the run's done says how many failed.
 */
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { type DoneEvent, TRACE_SCHEMA, type TraceEvent } from './events.js';
import { InflightPool } from '../probe/pool.js';
import { type TraceRequest, planTrace } from './request.js';
import { type TraceHandle, correlatorsFor, startTrace } from './run.js';

export interface MultiTraceOptions {
  /** Traces running at once, at most. */
  parallel: number;
}

/** How a multi-target run ended: per target (in the order given), its done event or its error. */
export interface MultiDone {
  traces: { target: string; done: DoneEvent | null; error: Error | null }[];
  failed: number;
}

/** Traces with the same options to the targets of `reqs`; each writes to its own sink (`sinkOf(i)`, ended when that trace is over). */
export function startTraces(reqs: TraceRequest[], sinkOf: (i: number) => Sink<TraceEvent>, o: MultiTraceOptions): RunHandle<MultiDone> {
  if (reqs.length === 0) throw new RangeError('no targets');
  if (!(Number.isInteger(o.parallel) && o.parallel >= 1)) throw new RangeError('parallel must be a positive integer');
  // Every rule about the options, once (they differ only in the target).
  planTrace(reqs[0]);
  const pool = new InflightPool(reqs[0].maxInflight);
  // --bpf: one set of programs per namespace and family for all the targets.
  const kernel = correlatorsFor(reqs[0]) ?? undefined;
  const results: MultiDone['traces'] = reqs.map((r) => ({ target: r.target, done: null, error: null }));
  const running = new Set<TraceHandle>();
  let next = 0;
  let stopped = false;

  const one = async (i: number): Promise<void> => {
    const sink = sinkOf(i);
    let h: TraceHandle | null = null;
    try {
      h = await startTrace(reqs[i], sink, { pool, kernel });
      running.add(h);
      if (stopped) h.stop();
      const d = await h.done;
      results[i].done = d;
      if (d.reason === 'error') results[i].error = h.error ?? new Error('trace failed');
    } catch (e) {
      const err = e as Error & { code?: string };
      results[i].error = err;
      sink.event({ schema: TRACE_SCHEMA, type: 'error', t_ms: 0, code: err.code ?? 'ERR_INTERNAL', message: err.message });
    } finally {
      if (h) running.delete(h);
      await sink.end?.();
    }
  };

  const worker = async (): Promise<void> => {
    while (!stopped && next < reqs.length) await one(next++);
  };

  const done = (async (): Promise<MultiDone> => {
    try {
      await Promise.all(Array.from({ length: Math.min(o.parallel, reqs.length) }, worker));
    } finally {
      kernel?.close();
    }
    return { traces: results, failed: results.filter((r) => r.error !== null).length };
  })();

  return {
    done,
    stop: () => {
      stopped = true;
      for (const h of running) h.stop();
    },
  };
}

/** One trace's events into a multi-target run's shared outputs, each with its `target` (the start event has it already); the shared outputs are ended by the run, not here. */
export function tagTarget(target: string, out: Sink<TraceEvent>): Sink<TraceEvent> {
  return { event: (e) => out.event(e.type === 'start' ? e : { ...e, target }) };
}

/** Targets from a file: one per line; blank lines and `#` comments are skipped. */
export function parseTargetList(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line) out.push(line);
  }
  return out;
}
