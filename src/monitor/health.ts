/**
 * A target's health from its windows: `up`, `degraded` or `down`, with hysteresis. Each window
 * is judged on its own (down: loss at or above `lossDown`; degraded: loss at or above
 * `lossDegraded`, or median RTT or jitter above their limits; up otherwise), and the state
 * moves only after `fall` windows in a row judged worse, or `rise` windows in a row judged
 * better (HAProxy's and keepalived's rise/fall). The first window sets the first state. A score
 * (0-100) says how far the window is from the limits: 100 clean, 0 down.
 */
import type { WindowFigures } from './window.js';

export type Health = 'up' | 'degraded' | 'down';

export interface Thresholds {
  /** Loss %, at or above which a window is degraded / down. */
  lossDegraded: number;
  lossDown: number;
  /** Median RTT and RFC 3550 jitter above which a window is degraded, ms (0: no limit). */
  rttDegradedMs: number;
  jitterDegradedMs: number;
  /** Windows in a row before the state gets worse / better. */
  fall: number;
  rise: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { lossDegraded: 5, lossDown: 100, rttDegradedMs: 0, jitterDegradedMs: 0, fall: 2, rise: 2 };

const RANK: Record<Health, number> = { down: 0, degraded: 1, up: 2 };

export function judge(f: WindowFigures, t: Thresholds): { health: Health; reason: string; score: number } {
  if (f.sent === 0) return { health: 'up', reason: 'no probes in the window', score: 100 };
  if (f.loss >= t.lossDown) return { health: 'down', reason: `loss ${f.loss}% >= ${t.lossDown}%`, score: 0 };
  const why: string[] = [];
  if (f.loss >= t.lossDegraded) why.push(`loss ${f.loss}% >= ${t.lossDegraded}%`);
  if (t.rttDegradedMs > 0 && f.median_ms !== null && f.median_ms > t.rttDegradedMs) why.push(`median RTT ${f.median_ms} ms > ${t.rttDegradedMs} ms`);
  if (t.jitterDegradedMs > 0 && f.jitter_ms !== null && f.jitter_ms > t.jitterDegradedMs) why.push(`jitter ${f.jitter_ms} ms > ${t.jitterDegradedMs} ms`);
  const lossPart = Math.max(0, 1 - f.loss / Math.max(t.lossDown, 1e-9));
  const rttPart = t.rttDegradedMs > 0 && f.median_ms !== null ? Math.min(1, t.rttDegradedMs / Math.max(f.median_ms, 1e-9)) : 1;
  const jitPart = t.jitterDegradedMs > 0 && f.jitter_ms !== null ? Math.min(1, t.jitterDegradedMs / Math.max(f.jitter_ms, 1e-9)) : 1;
  const score = Math.round(100 * lossPart * rttPart * jitPart);
  return why.length ? { health: 'degraded', reason: why.join(', '), score } : { health: 'up', reason: 'within limits', score };
}

export class HealthState {
  state: Health | null = null;
  private pending: Health | null = null;
  private count = 0;

  constructor(private readonly t: Thresholds) {}

  /** Folds one window's verdict in; returns the change, if the state changed. */
  update(h: Health, reason: string): { from: Health | null; to: Health; reason: string } | null {
    if (this.state === null) {
      this.state = h;
      return { from: null, to: h, reason: `first window: ${reason}` };
    }
    if (h === this.state) {
      this.pending = null;
      this.count = 0;
      return null;
    }
    if (h !== this.pending) {
      this.pending = h;
      this.count = 0;
    }
    this.count++;
    const need = RANK[h] < RANK[this.state] ? this.t.fall : this.t.rise;
    if (this.count < need) return null;
    const from = this.state;
    this.state = h;
    this.pending = null;
    this.count = 0;
    return { from, to: h, reason: `${need} window${need === 1 ? '' : 's'} in a row: ${reason}` };
  }
}
