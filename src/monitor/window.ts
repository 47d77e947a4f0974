/**
 * One target's samples in one window, and the figures the monitor reports for it: sent,
 * received, loss, duplicates, min / mean / median / p95 / max RTT, the sample standard
 * deviation, RFC 3550 interarrival jitter (a Jitter per target: J += (|D| - J) / 16, D the
 * difference of consecutive RTTs in the order the answers came, carried across windows as the
 * RFC's running estimate is; the window reports its value when it closes) and an RTT histogram on
 * fixed bounds. Buffers are allocated once for all targets and reused.
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
 * Every target's windows in columns: slot k holds one window (target i's window w is slot
 * 2i + (w & 1): a target's two windows, the one filling and the one closing, take turns), its
 * counts in Int32Arrays and its RTTs in one Float32Array (microsecond precision to past 100 s),
 * part [offs[k], offs[k + 1]) of it; a window that gets more answers than its room holds (a
 * confirmation burst) grows into an array of its own. The RTT histogram is made from the sorted
 * RTTs when the window closes. A hundred thousand targets' windows are a dozen arrays, not two
 * hundred thousand objects.
 */
export class WindowRooms {
  readonly sent: Int32Array;
  readonly due: Int32Array;
  readonly received: Int32Array;
  readonly duplicates: Int32Array;
  readonly unreachable: Int32Array;
  /** The window slot k holds now (goes up by 2 at next()). */
  readonly win: Int32Array;
  /** Slot k's room is rtts[offs[k], offs[k + 1]); its RTTs so far are the first received[k] of it. */
  private readonly offs: Int32Array;
  private readonly rtts: Float32Array;
  /** Slots past their room: their RTTs, in an array of their own. */
  private readonly grown = new Map<number, Float32Array>();

  /** Room for caps[k] RTTs (at least 4) in slot k; slot k starts as window k & 1. */
  constructor(caps: ArrayLike<number>) {
    const m = caps.length;
    this.sent = new Int32Array(m);
    this.due = new Int32Array(m);
    this.received = new Int32Array(m);
    this.duplicates = new Int32Array(m);
    this.unreachable = new Int32Array(m);
    this.win = new Int32Array(m);
    this.offs = new Int32Array(m + 1);
    let total = 0;
    for (let k = 0; k < m; k++) {
      this.offs[k] = total;
      this.win[k] = k & 1;
      total += Math.max(4, caps[k]);
    }
    this.offs[m] = total;
    this.rtts = new Float32Array(total);
  }

  /** Slot k as an object (tests, and code that holds one window). */
  window(k: number): TargetWindow {
    return new TargetWindow(0, this, k);
  }

  add(k: number, rtt: number): void {
    this.one[0] = rtt;
    this.addFrom(k, this.one);
  }
  private readonly one = new Float64Array(1);

  /**
   * Adds the RTT in from[0] to slot k. The hot path's form: a fraction passed as an argument to a
   * function V8 does not inline is boxed (a heap number an answer), a typed array is not.
   */
  addFrom(k: number, from: Float64Array): void {
    const rtt = from[0];
    const i = this.received[k];
    const g = this.grown.get(k);
    if (g === undefined && i < this.offs[k + 1] - this.offs[k]) this.rtts[this.offs[k] + i] = rtt;
    else {
      let own = g ?? this.rtts.slice(this.offs[k], this.offs[k] + i);
      if (i === own.length) {
        const bigger = new Float32Array(Math.max(8, own.length * 2));
        bigger.set(own);
        own = bigger;
      }
      own[i] = rtt;
      this.grown.set(k, own);
    }
    this.received[k] = i + 1;
  }

  /** Slot k's RTTs so far: the array and where they start. */
  private store(k: number): { a: Float32Array; o: number } {
    const g = this.grown.get(k);
    return g ? { a: g, o: 0 } : { a: this.rtts, o: this.offs[k] };
  }

  /** Counts per RTT_BOUNDS_MS bucket of slot k's RTTs (sorted when `sorted`). */
  histogram(k: number, sorted = false): number[] {
    const h = new Array<number>(HISTOGRAM_LEN).fill(0);
    const { a, o } = this.store(k);
    const n = this.received[k];
    let b = 0;
    for (let i = 0; i < n; i++) {
      const x = a[o + i];
      if (!sorted) b = 0;
      while (b < RTT_BOUNDS_MS.length && x > RTT_BOUNDS_MS[b]) b++;
      h[b]++;
    }
    return h;
  }

  /** Slot k's figures, once, when it closes (its RTTs are sorted in place); `jitter`: the target's RFC 3550 estimate now (null before two answers). */
  figures(k: number, jitter: number | null): WindowFigures {
    const n = this.received[k];
    const { a: s, o } = this.store(k);
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
    const sent = this.sent[k];
    const lost = Math.max(0, sent - this.received[k]);
    return {
      sent,
      due: this.due[k],
      received: this.received[k],
      loss: sent > 0 ? r3((lost / sent) * 100) : 0,
      duplicates: this.duplicates[k],
      unreachable: this.unreachable[k],
      min_ms: n ? r3(s[o]) : null,
      mean_ms: n ? r3(mean) : null,
      median_ms: n ? r3(q(0.5)) : null,
      p95_ms: n ? r3(q(0.95)) : null,
      max_ms: n ? r3(s[o + n - 1]) : null,
      stdev_ms: n > 1 ? r3(Math.sqrt(ss / (n - 1))) : n === 1 ? 0 : null,
      jitter_ms: jitter === null ? null : r3(jitter),
      histogram: this.histogram(k, true),
    };
  }

  /** Slot k starts its next window (two on from the one it held). */
  next(k: number): void {
    this.win[k] += 2;
    this.sent[k] = this.due[k] = this.received[k] = this.duplicates[k] = this.unreachable[k] = 0;
    this.grown.delete(k);
  }
}

/** One window as an object: a slot of rooms (its own rooms of one slot when made alone). */
export class TargetWindow {
  private readonly r: WindowRooms;
  private readonly k: number;

  constructor(capacity: number, rooms?: WindowRooms, k = 0) {
    this.r = rooms ?? new WindowRooms([capacity]);
    this.k = rooms ? k : 0;
  }

  get sent(): number {
    return this.r.sent[this.k];
  }
  set sent(v: number) {
    this.r.sent[this.k] = v;
  }
  get received(): number {
    return this.r.received[this.k];
  }

  add(rtt: number): void {
    this.r.add(this.k, rtt);
  }

  get histogram(): number[] {
    return this.r.histogram(this.k);
  }

  figures(jitter: number | null): WindowFigures {
    return this.r.figures(this.k, jitter);
  }

  next(): void {
    this.r.next(this.k);
  }
}

/**
 * RFC 3550's interarrival jitter over each target's answers, in the order they came, in columns
 * (NaN until known).
 */
export class JitterColumns {
  private readonly j: Float64Array;
  private readonly last: Float64Array;

  constructor(n: number) {
    this.j = new Float64Array(n).fill(Number.NaN);
    this.last = new Float64Array(n).fill(Number.NaN);
  }

  add(i: number, rtt: number): void {
    this.one[0] = rtt;
    this.addFrom(i, this.one);
  }
  private readonly one = new Float64Array(1);

  /** Adds the RTT in from[0] to target i's estimate (the hot path's form: no boxed argument). */
  addFrom(i: number, from: Float64Array): void {
    const rtt = from[0];
    const last = this.last[i];
    if (last === last) {
      const d = Math.abs(rtt - last);
      const j = this.j[i];
      this.j[i] = j === j ? j + (d - j) / 16 : d;
    }
    this.last[i] = rtt;
  }

  value(i: number): number | null {
    const j = this.j[i];
    return j === j ? j : null;
  }
}

/** One target's jitter, alone (a column of one). */
export class Jitter {
  private readonly c = new JitterColumns(1);

  add(rtt: number): void {
    this.c.add(0, rtt);
  }

  get value(): number | null {
    return this.c.value(0);
  }
}
