/**
 * The life of a live capture or trace, whatever the capability: a tick once a second (sweeps,
 * counters), an optional duration, and one finish that tears everything down, emits the done
 * event it returns and resolves the handle. Whatever ends the run (stop(), the duration, a
 * failing capture), it ends exactly once.
 */
import type { RunHandle } from './run.js';
import type { Sink } from './sink.js';

export interface LiveRun<D> {
  readonly handle: RunHandle<D>;
  /** Ends the run now with this reason (idempotent). */
  finish(reason: string): void;
}

export interface LiveRunOptions<D, R extends string> {
  durationMs?: number;
  tickMs?: number;
  tick(): void;
  teardown(reason: R): D;
  sink: Sink<D>;
}

export function liveRun<D, R extends string>(o: LiveRunOptions<D, R>): LiveRun<D> & { finish(reason: R): void } {
  let finished = false;
  let resolve!: (d: D) => void;
  const done = new Promise<D>((res) => (resolve = res));
  const ticker = setInterval(() => finished || o.tick(), o.tickMs ?? 1000);
  const timer = o.durationMs ? setTimeout(() => finish('interrupted' as R), o.durationMs) : null;
  function finish(reason: R): void {
    if (finished) return;
    finished = true;
    clearInterval(ticker);
    if (timer) clearTimeout(timer);
    const d = o.teardown(reason);
    o.sink.event(d);
    resolve(d);
  }
  return { handle: { done, stop: () => finish('interrupted' as R) }, finish };
}
