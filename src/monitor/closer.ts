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
import { type MethodNote, type ProberPool, chooseMethod, triedSummary } from './ladder.js';
import { type TargetState, slotOf } from './targets.js';
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
  note(s: TargetState): MethodNote;
  onChange: ((s: TargetState, from: Health | null, to: Health, reason: string) => void) | null;
  /** Window k starts to be closed (its probes all have their outcomes): the prober's report on it. */
  onWindow?(k: number): void;
}

export class WindowCloser {
  /** The window being closed, or next to close. */
  private closing = 0;
  /** Next target to close in window `closing` (-1: no window is being closed). */
  private at = -1;

  constructor(
    private readonly targets: TargetState[],
    private readonly rooms: WindowRooms,
    private readonly c: CloserContext,
  ) {}

  /** When the closer next has work: now while a window is being closed, else when the next one may start. */
  get nextAt(): number {
    return this.at >= 0 ? 0 : (this.closing + 1) * this.c.windowMs + this.c.timeoutMs;
  }

  /** A tick at `now`: starts closing the next window when its time has come, and closes a slice of it. */
  step(now: number): void {
    const c = this.c;
    if (this.at < 0 && (this.closing + 1) * c.windowMs + c.timeoutMs <= now) {
      this.at = 0;
      c.onWindow?.(this.closing);
    }
    if (this.at < 0) return;
    const n = this.targets.length;
    const end = Math.min(n, this.at + CLOSE_BATCH);
    for (let i = this.at; i < end; i++) this.closeTarget(this.closing, this.targets[i]);
    this.at = end;
    if (end === n) {
      this.at = -1;
      this.closing++;
    }
  }

  /** At the end: the window being closed, then every one up to `lastWindow`, as far as they went. */
  flush(lastWindow: number): void {
    if (this.at >= 0) {
      for (let i = this.at; i < this.targets.length; i++) this.closeTarget(this.closing, this.targets[i]);
      this.at = -1;
      this.closing++;
    }
    while (this.closing <= lastWindow) {
      this.c.onWindow?.(this.closing);
      for (const s of this.targets) this.closeTarget(this.closing, s);
      this.closing++;
    }
  }

  private closeTarget(k: number, s: TargetState): void {
    const c = this.c;
    const w = slotOf(s.index, k);
    const rooms = this.rooms;
    // Nothing sent in it (no method, or the partial window the run ended in): nothing to say.
    if (rooms.sent[w] === 0) {
      rooms.next(w);
      return;
    }
    const f = rooms.figures(w, s.jitter.value);
    const method: ProbeMethod = s.methods[Math.max(0, s.step)];
    const v = judge(f, s.t.thresholds);
    const change = s.health.update(v.health, v.reason);
    // Written out rather than spread: ten thousand of these a window.
    c.emit({
      schema: MONITOR_SCHEMA,
      type: 'stats',
      t_ms: c.tms(),
      target: s.t.name,
      address: s.addr,
      path: s.t.path,
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
      state: s.health.state!,
      score: v.score,
    });
    if (change) {
      c.emit({ schema: MONITOR_SCHEMA, type: 'state', t_ms: c.tms(), target: s.t.name, address: s.addr, path: s.t.path, from: change.from, to: change.to, reason: change.reason, method });
      c.onChange?.(s, change.from, change.to, change.reason);
    }
    // The ladder: a method that got nothing in a whole window gives way.
    if (s.t.method === 'auto' && f.sent >= 3 && f.received === 0 && !c.stopping()) {
      const why = f.unreachable > 0 ? `${f.unreachable} of ${f.sent} probes unreachable` : `no answer to ${f.sent} probes in the window`;
      (s.tried ??= new Map()).set(method, why);
      const note = c.note(s);
      if (!chooseMethod(c.pool, s, s.step + 1, method, why, note)) {
        note('unreachable', null, method, `no method got an answer: ${triedSummary(s)}`);
        s.tried = null;
        chooseMethod(c.pool, s, 0, method, 'starting the ladder over', note);
      }
    }
    rooms.next(w);
  }
}
