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

/** Health as a column code (0: no state yet). */
const CODE: Record<Health, number> = { up: 1, degraded: 2, down: 3 };
const OF_CODE: (Health | null)[] = [null, 'up', 'degraded', 'down'];

/**
 * Every target's health with its hysteresis, in columns (a hundred thousand targets are three
 * small arrays, not a hundred thousand objects): the state, the verdict waiting to be confirmed,
 * and how many windows in a row have given it.
 */
export class HealthColumns {
  private readonly st: Uint8Array;
  private readonly pend: Uint8Array;
  private readonly count: Uint16Array;

  constructor(n: number) {
    this.st = new Uint8Array(n);
    this.pend = new Uint8Array(n);
    this.count = new Uint16Array(n);
  }

  state(i: number): Health | null {
    return OF_CODE[this.st[i]];
  }

  /** Folds target i's window verdict in (thresholds t); returns the change, if the state changed. */
  update(i: number, h: Health, reason: string, t: Thresholds): { from: Health | null; to: Health; reason: string } | null {
    const now = this.st[i];
    const code = CODE[h];
    if (now === 0) {
      this.st[i] = code;
      return { from: null, to: h, reason: `first window: ${reason}` };
    }
    if (code === now) {
      this.pend[i] = 0;
      this.count[i] = 0;
      return null;
    }
    if (code !== this.pend[i]) {
      this.pend[i] = code;
      this.count[i] = 0;
    }
    this.count[i]++;
    const from = OF_CODE[now]!;
    const need = RANK[h] < RANK[from] ? t.fall : t.rise;
    if (this.count[i] < need) return null;
    this.st[i] = code;
    this.pend[i] = 0;
    this.count[i] = 0;
    return { from, to: h, reason: `${need} window${need === 1 ? '' : 's'} in a row: ${reason}` };
  }
}

/** One target's health, alone (a column of one). */
export class HealthState {
  private readonly c = new HealthColumns(1);

  constructor(private readonly t: Thresholds) {}

  get state(): Health | null {
    return this.c.state(0);
  }

  /** Folds one window's verdict in; returns the change, if the state changed. */
  update(h: Health, reason: string): { from: Health | null; to: Health; reason: string } | null {
    return this.c.update(0, h, reason, this.t);
  }
}
