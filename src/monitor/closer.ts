/**
 * Closing windows. Window k closes `timeout` after its end, when each of its probes has an outcome,
 * CLOSE_BATCH targets a tick, so that the sockets are read in between (ten thousand targets'
 * statistics at once would hold the loop long enough for the receive buffers to overflow). For
 * each target: its figures (a `stats` event), its health (a `state` event and the `--on-change`
 * hook when it changes), and the ladder's step (a method that got nothing in a whole window gives
 * way to the next).
 */
import type { ProbeMethod } from '../probe/transport.js';
import { MONITOR_SCHEMA, type MonitorEvent } from './events.js';
import { type Health, judge } from './health.js';
import { type MethodNote, type ProberPool, chooseMethod, triedOf, triedSummary } from './ladder.js';
import { type Targets, slotOf } from './targets.js';
import type { WindowRooms } from './window.js';

/** Targets whose window is closed per tick. */
export const CLOSE_BATCH = 200;

export interface CloserContext {
  windowMs: number;
  timeoutMs: number;
  pool: ProberPool;
  emit(e: MonitorEvent): void;
  tms(): number;
  /** Sending has stopped (the ladder no longer moves). */
  stopping(): boolean;
  note(i: number): MethodNote;
  onChange: ((i: number, from: Health | null, to: Health, reason: string) => void) | null;
  /** Window k starts to be closed (its probes all have their outcomes): the prober's report on it. */
  onWindow?(k: number): void;
}

export class WindowCloser {
  /** The window being closed, or next to close. */
  private closing = 0;
  /** Next target to close in window `closing` (-1: no window is being closed). */
  private at = -1;

  constructor(
    private readonly T: Targets,
    private readonly rooms: WindowRooms,
    private readonly c: CloserContext,
  ) {}

  /** When the closer next has work: now while a window is being closed, else when the next one may start. */
  get nextAt(): number {
    return this.at >= 0 ? 0 : (this.closing + 1) * this.c.windowMs + this.c.timeoutMs;
  }

  /** When step() last ran. */
  private lastStep = -1;

  /**
   * A tick at `now`: starts closing the next window when its time has come, and closes a slice of
   * it: CLOSE_BATCH targets, or more when the ticks come slowly, so that a window is closed within
   * half the time before its slots are needed again (a loop slowed by its sends closed 10,000
   * targets a second, and a hundred thousand targets' window took longer than a window).
   */
  step(now: number): void {
    const c = this.c;
    const since = this.lastStep < 0 ? 0 : now - this.lastStep;
    this.lastStep = now;
    if (this.at < 0 && (this.closing + 1) * c.windowMs + c.timeoutMs <= now) {
      this.at = 0;
      c.onWindow?.(this.closing);
    }
    if (this.at < 0) return;
    const n = this.T.n;
    const spread = Math.max(1, (c.windowMs - c.timeoutMs) / 2);
    const end = Math.min(n, this.at + Math.max(CLOSE_BATCH, Math.ceil((n * since) / spread)));
    for (let i = this.at; i < end; i++) this.closeTarget(this.closing, i);
    this.at = end;
    if (end === n) {
      this.at = -1;
      this.closing++;
    }
  }

  /** At the end: the window being closed, then every one up to `lastWindow`, as far as they went. */
  flush(lastWindow: number): void {
    if (this.at >= 0) {
      for (let i = this.at; i < this.T.n; i++) this.closeTarget(this.closing, i);
      this.at = -1;
      this.closing++;
    }
    while (this.closing <= lastWindow) {
      this.c.onWindow?.(this.closing);
      for (let i = 0; i < this.T.n; i++) this.closeTarget(this.closing, i);
      this.closing++;
    }
  }

  /**
   * Target i's slot for window `win` is about to take a probe (or a due count): a window still in
   * it (the pass over the targets has not reached i; it ended a window ago, so every probe of it
   * has its outcome) is closed for this target now, so no window ever counts another's probes.
   */
  claim(i: number, win: number): void {
    const w = slotOf(i, win);
    while (this.rooms.win[w] < win) {
      this.early++;
      this.closeTarget(this.rooms.win[w], i);
    }
  }

  /** Target windows closed by claim() ahead of the pass. */
  early = 0;

  private closeTarget(k: number, i: number): void {
    const c = this.c;
    const T = this.T;
    const w = slotOf(i, k);
    const rooms = this.rooms;
    // Closed already (claim() got there first), or never opened for this target.
    if (rooms.win[w] !== k) return;
    // Nothing sent in it (no method, or the partial window the run ended in): nothing to say.
    if (rooms.sent[w] === 0) {
      rooms.next(w);
      return;
    }
    const f = rooms.figures(w, T.jitter.value(i));
    const method: ProbeMethod = T.method(i);
    const s = T.settings(i);
    const v = judge(f, s.thresholds);
    const change = T.health.update(i, v.health, v.reason, s.thresholds);
    const address = T.addr(i);
    const name = T.nameOr(i, address);
    // Written out rather than spread: ten thousand of these a window.
    c.emit({
      schema: MONITOR_SCHEMA,
      type: 'stats',
      t_ms: c.tms(),
      target: name,
      address,
      path: s.path,
      method,
      window_start_ms: k * c.windowMs,
      window_ms: c.windowMs,
      sent: f.sent,
      due: f.due,
      received: f.received,
      loss: f.loss,
      duplicates: f.duplicates,
      unreachable: f.unreachable,
      min_ms: f.min_ms,
      mean_ms: f.mean_ms,
      median_ms: f.median_ms,
      p95_ms: f.p95_ms,
      max_ms: f.max_ms,
      stdev_ms: f.stdev_ms,
      jitter_ms: f.jitter_ms,
      histogram: f.histogram,
      state: T.health.state(i)!,
      score: v.score,
    });
    if (change) {
      c.emit({ schema: MONITOR_SCHEMA, type: 'state', t_ms: c.tms(), target: name, address, path: s.path, from: change.from, to: change.to, reason: change.reason, method });
      c.onChange?.(i, change.from, change.to, change.reason);
    }
    // The ladder: a method that got nothing in a whole window gives way.
    if (s.method === 'auto' && f.sent >= 3 && f.received === 0 && !c.stopping()) {
      const why = f.unreachable > 0 ? `${f.unreachable} of ${f.sent} probes unreachable` : `no answer to ${f.sent} probes in the window`;
      triedOf(T, i).set(method, why);
      const note = c.note(i);
      if (!chooseMethod(c.pool, T, i, T.step[i] + 1, method, why, note)) {
        note('unreachable', null, method, `no method got an answer: ${triedSummary(T, i)}`);
        T.tried.delete(i);
        chooseMethod(c.pool, T, i, 0, method, 'starting the ladder over', note);
      }
    }
    rooms.next(w);
  }
}
