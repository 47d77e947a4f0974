/**
 * The life of a live capture or trace, whatever the capability: a tick (sweeps, counters), an
 * optional duration, and one finish that tears everything down, emits the done event it returns
 * and resolves the handle. Whatever ends the run (stop(), the duration, a failing capture), it
 * ends exactly once. Time goes through a Scheduler (the real one unless a test gives another).
 */
import type { RunHandle } from './run.js';
import { realScheduler, type Scheduler, type TimerId } from './scheduler.js';
import type { Sink } from './sink.js';

export interface LiveRun<D, R extends string = string> {
  readonly handle: RunHandle<D>;
  /** Ends the run now with this reason (idempotent). */
  finish(reason: R): void;
  /** Whether it has ended. */
  readonly finished: boolean;
}

export interface LiveRunOptions<D, R extends string> {
  durationMs?: number;
  tickMs?: number;
  tick(): void;
  teardown(reason: R): D;
  sink: Sink<D>;
  scheduler?: Scheduler;
}

export function liveRun<D, R extends string>(o: LiveRunOptions<D, R>): LiveRun<D, R> {
  const clock = o.scheduler ?? realScheduler;
  const tickMs = o.tickMs ?? 1000;
  let finished = false;
  let resolve!: (d: D) => void;
  const done = new Promise<D>((res) => (resolve = res));
  let ticker: TimerId | null = null;
  const tick = () => {
    if (finished) return;
    o.tick();
    if (!finished) ticker = clock.again(ticker, tick, tickMs);
  };
  ticker = clock.setTimer(tick, tickMs);
  const timer = o.durationMs ? clock.setTimer(() => finish('interrupted' as R), o.durationMs) : null;
  function finish(reason: R): void {
    if (finished) return;
    finished = true;
    if (ticker !== null) clock.clearTimer(ticker);
    if (timer !== null) clock.clearTimer(timer);
    const d = o.teardown(reason);
    o.sink.event(d);
    resolve(d);
  }
  return {
    handle: { done, stop: () => finish('interrupted' as R) },
    finish,
    get finished() {
      return finished;
    },
  };
}
