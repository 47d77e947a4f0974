/**
 * The prober's account of itself, per window, so that a user can tell the network's loss from the
 * prober's own shortfall (a monitor that silently stretches its interval under load reports loss
 * and jitter over another experiment than the one configured):
 *   - asked: probes whose due time fell in the window (each counted when it is scheduled, one
 *     interval ahead; confirmation probes too); sent: probes that left in it;
 *   - skipped: probes more than an interval late when their turn came (the loop fell that far
 *     behind): the target gets one probe then, never two at once, and the one missed is said;
 *   - send lag: from a probe's due time to its send; tick lateness: from when the loop's timer
 *     should have fired to when it did (both as histograms on fixed bounds);
 *   - refused: probes the socket would not take (full send buffer; tried at the next turn);
 *   - dropped: answers the kernel dropped for a full receive buffer (SO_RXQ_OVFL), since the
 *     previous report;
 *   - kernel send delay: for the last probe of each send batch, from the time its RTT is measured
 *     from (taken before the batch's sendmmsg) to the kernel's software send stamp (the device
 *     took it): what the send itself adds to an RTT, at most (null when no socket gives stamps).
 * A window is `kept` when nothing was skipped, refused or dropped, at least 99 % of what was asked
 * went out, and the 99th percentile of the send lag is within a tenth of the smallest interval
 * (at least LAG_FLOOR_MS). Counts are kept in a ring of windows (as many as the longest interval
 * spans, and a few more), reported when the window is closed.
 */
import type { KernelSendFigures, ProberEvent } from './events.js';
import { MONITOR_SCHEMA } from './events.js';

/** Upper bounds of the lag histograms, ms (the last bucket: above the last bound). */
export const LAG_BOUNDS_MS = [0.5, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 200, 500, 1000, 2000, 5000];
const BUCKETS = LAG_BOUNDS_MS.length + 1;
/** Upper bounds of the kernel send delay histogram, ms (the last bucket: above the last bound). */
export const KERNEL_BOUNDS_MS = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100];
const KBUCKETS = KERNEL_BOUNDS_MS.length + 1;
/** The send lag's 99th percentile is never judged against less than this. */
export const LAG_FLOOR_MS = 20;

const r3 = (x: number) => Math.round(x * 1000) / 1000;

export class ScheduleLedger {
  private readonly mask: number;
  private readonly asked: Float64Array;
  private readonly sent: Float64Array;
  private readonly skipped: Float64Array;
  private readonly refused: Float64Array;
  private readonly lag: Int32Array;
  private readonly lagMax: Float64Array;
  private readonly late: Int32Array;
  private readonly lateMax: Float64Array;
  private readonly kernel: Int32Array;
  private readonly kernelMax: Float64Array;
  /** Some prober's socket gives kernel send stamps (the report has send_kernel). */
  stamps = false;
  /** The window each ring slot holds now (a slot is cleared when a later window takes it). */
  private readonly slotWin: Float64Array;
  private droppedBefore = 0;
  /** Probes counted for a window already reported (a loop stalled past it): added to the next report. */
  private carried = 0;
  private readonly lagLimitMs: number;

  constructor(
    private readonly windowMs: number,
    longestIntervalMs: number,
    smallestIntervalMs: number,
  ) {
    let size = 4;
    while (size < Math.ceil(longestIntervalMs / windowMs) + 4) size *= 2;
    this.mask = size - 1;
    this.asked = new Float64Array(size);
    this.sent = new Float64Array(size);
    this.skipped = new Float64Array(size);
    this.refused = new Float64Array(size);
    this.lag = new Int32Array(size * BUCKETS);
    this.lagMax = new Float64Array(size);
    this.late = new Int32Array(size * BUCKETS);
    this.lateMax = new Float64Array(size);
    this.kernel = new Int32Array(size * KBUCKETS);
    this.kernelMax = new Float64Array(size);
    this.slotWin = new Float64Array(size).fill(-1);
    this.lagLimitMs = Math.max(LAG_FLOOR_MS, smallestIntervalMs / 10);
  }

  /** Window w's slot, cleared first if it held an earlier window; -1 for a window already reported. */
  private slot(w: number): number {
    const k = w & this.mask;
    if (this.slotWin[k] === w) return k;
    if (this.slotWin[k] > w) return -1;
    this.slotWin[k] = w;
    this.asked[k] = this.sent[k] = this.skipped[k] = this.refused[k] = this.lagMax[k] = this.lateMax[k] = this.kernelMax[k] = 0;
    this.kernel.fill(0, k * KBUCKETS, (k + 1) * KBUCKETS);
    this.lag.fill(0, k * BUCKETS, (k + 1) * BUCKETS);
    this.late.fill(0, k * BUCKETS, (k + 1) * BUCKETS);
    return k;
  }

  /** A probe was scheduled, due in window w. */
  ask(w: number): void {
    const k = this.slot(w);
    if (k >= 0) this.asked[k]++;
    else this.carried++;
  }

  /** A probe scheduled in window w will not be due within the run after all (it stopped first). */
  unask(w: number): void {
    const k = this.slot(w);
    if (k >= 0) this.asked[k]--;
  }

  /** A probe due in window w was more than an interval late and was skipped. */
  skip(w: number): void {
    const k = this.slot(w);
    if (k >= 0) this.skipped[k]++;
  }

  /** A probe left in window w, `lagMs` after its due time. */
  sentAt(w: number, lagMs: number): void {
    const k = this.slot(w);
    if (k < 0) return;
    this.sent[k]++;
    bucket(this.lag, k, lagMs);
    if (lagMs > this.lagMax[k]) this.lagMax[k] = lagMs;
  }

  /** The socket refused `n` probes in window w. */
  refuse(w: number, n: number): void {
    const k = this.slot(w);
    if (k >= 0) this.refused[k] += n;
  }

  /** In window w, a stamped probe left the kernel `ms` after the time its RTT is measured from. */
  sendKernel(w: number, ms: number): void {
    const k = this.slot(w);
    if (k < 0) return;
    bucket(this.kernel, k, ms, KERNEL_BOUNDS_MS);
    if (ms > this.kernelMax[k]) this.kernelMax[k] = ms;
  }

  /** The loop's timer fired `lateMs` after it should have, in window w. */
  tick(w: number, lateMs: number): void {
    const k = this.slot(w);
    if (k < 0) return;
    bucket(this.late, k, lateMs);
    if (lateMs > this.lateMax[k]) this.lateMax[k] = lateMs;
  }

  private kernelFigures(k: number): KernelSendFigures {
    let n = 0;
    for (let b = 0; b < KBUCKETS; b++) n += this.kernel[k * KBUCKETS + b];
    return { stamped: n, p50_ms: quantile(this.kernel, k, n, 0.5, KERNEL_BOUNDS_MS), p99_ms: quantile(this.kernel, k, n, 0.99, KERNEL_BOUNDS_MS), max_ms: r3(this.kernelMax[k]) };
  }

  /**
   * Window w's report (once, when it is closed). `droppedSoFar`: the probers' count of answers
   * dropped for a full receive buffer; `tms`: the event's time.
   */
  report(w: number, droppedSoFar: number, tms: number, lengthMs = this.windowMs): ProberEvent {
    const k = this.slot(w);
    const dropped = Math.max(0, droppedSoFar - this.droppedBefore);
    this.droppedBefore = Math.max(this.droppedBefore, droppedSoFar);
    const asked = this.asked[k] + this.carried;
    this.carried = 0;
    const sent = this.sent[k];
    const lag = { p50_ms: quantile(this.lag, k, this.sent[k], 0.5), p99_ms: quantile(this.lag, k, this.sent[k], 0.99), max_ms: r3(this.lagMax[k]) };
    const ticks = count(this.late, k);
    const late = { p50_ms: quantile(this.late, k, ticks, 0.5), p99_ms: quantile(this.late, k, ticks, 0.99), max_ms: r3(this.lateMax[k]) };
    const behind: string[] = [];
    if (sent < 0.99 * asked) behind.push(`sent ${sent} of ${asked} asked`);
    if (this.skipped[k] > 0) behind.push(`${this.skipped[k]} skipped, more than an interval late`);
    if (this.refused[k] > 0) behind.push(`${this.refused[k]} refused by a full send buffer`);
    if (dropped > 0) behind.push(`${dropped} answers dropped by a full receive buffer`);
    if (lag.p99_ms !== null && lag.p99_ms > this.lagLimitMs) behind.push(`99% of probes left within ${lag.p99_ms} ms of their due time (more than ${r3(this.lagLimitMs)} ms)`);
    const secs = lengthMs / 1000;
    // The slot is done with: a late count for this window now goes to the next report.
    this.slotWin[k] = w + 0.5;
    return {
      schema: MONITOR_SCHEMA,
      type: 'prober',
      t_ms: tms,
      window_start_ms: w * this.windowMs,
      window_ms: lengthMs,
      asked,
      sent,
      skipped: this.skipped[k],
      send_refused: this.refused[k],
      rx_dropped: dropped,
      asked_per_s: secs > 0 ? Math.round(asked / secs) : 0,
      sent_per_s: secs > 0 ? Math.round(sent / secs) : 0,
      send_lag: lag,
      tick_late: late,
      send_kernel: this.stamps ? this.kernelFigures(k) : null,
      kept: behind.length === 0,
      ...(behind.length ? { behind } : {}),
    };
  }
}

function bucket(h: Int32Array, k: number, ms: number, bounds = LAG_BOUNDS_MS): void {
  let b = 0;
  while (b < bounds.length && ms > bounds[b]) b++;
  h[k * (bounds.length + 1) + b]++;
}

function count(h: Int32Array, k: number): number {
  let n = 0;
  for (let b = 0; b < BUCKETS; b++) n += h[k * BUCKETS + b];
  return n;
}

/** The bound at or under which a fraction q of the window's values lie (null: none; above the last bound: the last bound's double). */
function quantile(h: Int32Array, k: number, n: number, q: number, bounds = LAG_BOUNDS_MS): number | null {
  if (n <= 0) return null;
  const buckets = bounds.length + 1;
  const want = Math.ceil(q * n);
  let acc = 0;
  for (let b = 0; b < buckets; b++) {
    acc += h[k * buckets + b];
    if (acc >= want) return b < bounds.length ? bounds[b] : bounds[bounds.length - 1] * 2;
  }
  return null;
}
