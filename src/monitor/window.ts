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

/** Memory for many windows: window k (room for caps[k] RTTs) gets views into two shared arrays. */
export function windowRooms(caps: number[]): { rtts: Float64Array; histogram: Int32Array }[] {
  let total = 0;
  for (const c of caps) total += Math.max(4, c);
  const rtts = new Float64Array(total);
  const histogram = new Int32Array(caps.length * HISTOGRAM_LEN);
  let off = 0;
  return caps.map((c, k) => {
    const r = { rtts: rtts.subarray(off, off + Math.max(4, c)), histogram: histogram.subarray(k * HISTOGRAM_LEN, (k + 1) * HISTOGRAM_LEN) };
    off += Math.max(4, c);
    return r;
  });
}

export class TargetWindow {
  sent = 0;
  received = 0;
  duplicates = 0;
  unreachable = 0;
  private n = 0;
  private rtts: Float64Array;
  readonly histogram: Int32Array;

  /**
   * Room for `capacity` RTTs (more when needed). `room` lends it memory: views into arrays
   * shared by many windows (ten thousand targets' windows as two arrays, not forty thousand).
   */
  constructor(capacity: number, room?: { rtts: Float64Array; histogram: Int32Array }) {
    this.rtts = room ? room.rtts : new Float64Array(Math.max(4, capacity));
    this.histogram = room ? room.histogram : new Int32Array(HISTOGRAM_LEN);
  }

  add(rtt: number): void {
    if (this.n === this.rtts.length) {
      const bigger = new Float64Array(this.rtts.length * 2);
      bigger.set(this.rtts);
      this.rtts = bigger;
    }
    this.rtts[this.n++] = rtt;
    this.received++;
    let b = 0;
    while (b < RTT_BOUNDS_MS.length && rtt > RTT_BOUNDS_MS[b]) b++;
    this.histogram[b]++;
  }

  /** The window's figures, once, when it closes (its RTTs are sorted in place); `jitter`: the target's RFC 3550 estimate now (null before two answers). */
  figures(jitter: number | null): WindowFigures {
    const n = this.n;
    // Sorted in place: the answers' order is not needed once the window is closed.
    const s = this.rtts.subarray(0, n).sort();
    let mean = 0;
    for (let i = 0; i < n; i++) mean += s[i];
    mean = n ? mean / n : 0;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (s[i] - mean) ** 2;
    // Nearest rank.
    const q = (p: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))];
    const lost = Math.max(0, this.sent - this.received);
    return {
      sent: this.sent,
      received: this.received,
      loss: this.sent > 0 ? r3((lost / this.sent) * 100) : 0,
      duplicates: this.duplicates,
      unreachable: this.unreachable,
      min_ms: n ? r3(s[0]) : null,
      mean_ms: n ? r3(mean) : null,
      median_ms: n ? r3(q(0.5)) : null,
      p95_ms: n ? r3(q(0.95)) : null,
      max_ms: n ? r3(s[n - 1]) : null,
      stdev_ms: n > 1 ? r3(Math.sqrt(ss / (n - 1))) : n === 1 ? 0 : null,
      jitter_ms: jitter === null ? null : r3(jitter),
      histogram: [...this.histogram],
    };
  }

  /** A new window. */
  next(): void {
    this.sent = this.received = this.duplicates = this.unreachable = this.n = 0;
    this.histogram.fill(0);
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
