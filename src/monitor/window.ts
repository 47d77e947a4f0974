/**
 * One target's samples in one window, and the figures the monitor reports for it: sent,
 * received, loss, duplicates, min / mean / median / p95 / max RTT, the sample standard
 * deviation, RFC 3550 interarrival jitter (a Jitter per target: J += (|D| - J) / 16, D the
 * difference of consecutive RTTs in the order the answers came, carried across windows as the
 * RFC's running estimate is; the window reports its value when it closes) and an RTT histogram on
 * fixed bounds. Buffers are allocated once per target and reused.
 */

/** RTT histogram upper bounds, ms (Prometheus-style cumulative buckets are built from these). */
export const RTT_BOUNDS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

export interface WindowFigures {
  sent: number;
  /** Probes that came due in the window: what it should have carried. */
  due: number;
  received: number;
  /** Percent of probes with an outcome that got no answer from the target. */
  loss: number;
  duplicates: number;
  /** Probes a router or the kernel said could not reach the target. */
  unreachable: number;
  min_ms: number | null;
  mean_ms: number | null;
  median_ms: number | null;
  p95_ms: number | null;
  max_ms: number | null;
  stdev_ms: number | null;
  jitter_ms: number | null;
  /** Counts per RTT_BOUNDS_MS bucket (the last: above the last bound). */
  histogram: number[];
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Buckets in a window's histogram: one per bound, and one above the last. */
export const HISTOGRAM_LEN = RTT_BOUNDS_MS.length + 1;

/**
 * Memory for many windows: one array of RTTs and one of histogram counts, window k's part of
 * them at an offset (ten thousand targets' windows as two arrays, not forty thousand views).
 */
export class WindowRooms {
  readonly rtts: Float64Array;
  readonly histogram: Int32Array;
  private readonly offs: Int32Array;
  private readonly caps: Int32Array;

  /** Room for caps[k] RTTs (at least 4) for window k. */
  constructor(caps: ArrayLike<number>) {
    this.offs = new Int32Array(caps.length);
    this.caps = new Int32Array(caps.length);
    let total = 0;
    for (let k = 0; k < caps.length; k++) {
      this.offs[k] = total;
      this.caps[k] = Math.max(4, caps[k]);
      total += this.caps[k];
    }
    this.rtts = new Float64Array(total);
    this.histogram = new Int32Array(caps.length * HISTOGRAM_LEN);
  }

  /** Window k's window. */
  window(k: number): TargetWindow {
    return new TargetWindow(this.caps[k], this, this.offs[k], k * HISTOGRAM_LEN);
  }
}

export class TargetWindow {
  /** The window this one is now (a target's two windows take turns: this goes up by 2 at next()). */
  win = 0;
  sent = 0;
  due = 0;
  received = 0;
  duplicates = 0;
  unreachable = 0;
  private n = 0;
  /** The RTTs are rtts[off, off + cap); the counts histogram[hOff, hOff + HISTOGRAM_LEN). */
  private rtts: Float64Array;
  private off: number;
  private cap: number;
  private readonly hist: Int32Array;
  private readonly hOff: number;

  /** Room for `capacity` RTTs (more when needed), its own or, from `rooms`, part of shared arrays. */
  constructor(capacity: number, rooms?: WindowRooms, off = 0, hOff = 0) {
    this.cap = Math.max(4, capacity);
    this.rtts = rooms ? rooms.rtts : new Float64Array(this.cap);
    this.off = rooms ? off : 0;
    this.hist = rooms ? rooms.histogram : new Int32Array(HISTOGRAM_LEN);
    this.hOff = rooms ? hOff : 0;
  }

  add(rtt: number): void {
    if (this.n === this.cap) {
      // More answers than the room was made for (a confirmation burst): a larger array of its own.
      const bigger = new Float64Array(this.cap * 2);
      bigger.set(this.rtts.subarray(this.off, this.off + this.n));
      this.rtts = bigger;
      this.off = 0;
      this.cap *= 2;
    }
    this.rtts[this.off + this.n++] = rtt;
    this.received++;
    let b = 0;
    while (b < RTT_BOUNDS_MS.length && rtt > RTT_BOUNDS_MS[b]) b++;
    this.hist[this.hOff + b]++;
  }

  /** The counts per RTT_BOUNDS_MS bucket, a copy. */
  get histogram(): number[] {
    const h: number[] = new Array(HISTOGRAM_LEN);
    for (let b = 0; b < HISTOGRAM_LEN; b++) h[b] = this.hist[this.hOff + b];
    return h;
  }

  /** The window's figures, once, when it closes (its RTTs are sorted in place); `jitter`: the target's RFC 3550 estimate now (null before two answers). */
  figures(jitter: number | null): WindowFigures {
    const n = this.n;
    const s = this.rtts;
    const o = this.off;
    // Sorted in place: the answers' order is not needed once the window is closed. A window
    // holds a dozen RTTs at the usual interval: insertion sort, no view or comparator call.
    if (n > 32) s.subarray(o, o + n).sort();
    else {
      for (let i = o + 1; i < o + n; i++) {
        const x = s[i];
        let j = i - 1;
        while (j >= o && s[j] > x) {
          s[j + 1] = s[j];
          j--;
        }
        s[j + 1] = x;
      }
    }
    let mean = 0;
    for (let i = 0; i < n; i++) mean += s[o + i];
    mean = n ? mean / n : 0;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (s[o + i] - mean) ** 2;
    // Nearest rank.
    const q = (p: number) => s[o + Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))];
    const lost = Math.max(0, this.sent - this.received);
    return {
      sent: this.sent,
      due: this.due,
      received: this.received,
      loss: this.sent > 0 ? r3((lost / this.sent) * 100) : 0,
      duplicates: this.duplicates,
      unreachable: this.unreachable,
      min_ms: n ? r3(s[o]) : null,
      mean_ms: n ? r3(mean) : null,
      median_ms: n ? r3(q(0.5)) : null,
      p95_ms: n ? r3(q(0.95)) : null,
      max_ms: n ? r3(s[o + n - 1]) : null,
      stdev_ms: n > 1 ? r3(Math.sqrt(ss / (n - 1))) : n === 1 ? 0 : null,
      jitter_ms: jitter === null ? null : r3(jitter),
      histogram: this.histogram,
    };
  }

  /** A new window. */
  next(): void {
    this.win += 2;
    this.sent = this.due = this.received = this.duplicates = this.unreachable = this.n = 0;
    this.hist.fill(0, this.hOff, this.hOff + HISTOGRAM_LEN);
  }
}

/** RFC 3550's interarrival jitter over one target's answers, in the order they came. */
export class Jitter {
  // NaN until known: fields that hold fractions from the start keep one representation (an
  // integer first and a fraction later would make V8 migrate every target's object once).
  private j = Number.NaN;
  private last = Number.NaN;

  add(rtt: number): void {
    if (this.last === this.last) {
      const d = Math.abs(rtt - this.last);
      this.j = this.j === this.j ? this.j + (d - this.j) / 16 : d;
    }
    this.last = rtt;
  }

  get value(): number | null {
    return this.j === this.j ? this.j : null;
  }
}
