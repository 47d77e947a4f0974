/**
 * BPF programs stamp events with bpf_ktime_get_ns() (CLOCK_MONOTONIC); events carry epoch time.
 * EpochClock converts one to the other exactly (BigInt), from one reading of both clocks.
 */
import { CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_TAI } from '../core/constants.js';
import { native } from '../native/index.js';
import { realtime } from '../time/clock.js';

/** Converts kernel monotonic ns to epoch (sec, nsec) exactly. */
export class EpochClock {
  private readonly offset: bigint;
  /** The offset as whole seconds and nanoseconds (0..1e9), for the exact path without BigInt. */
  private readonly offSec: number;
  private readonly offNsec: number;
  constructor() {
    const mono = new Float64Array(2);
    const rt = new Float64Array(2);
    native().clockGettime(CLOCK_MONOTONIC, mono);
    realtime(rt);
    native().clockGettime(CLOCK_MONOTONIC, mono);
    this.offset = BigInt(rt[0]) * 1_000_000_000n + BigInt(rt[1]) - (BigInt(mono[0]) * 1_000_000_000n + BigInt(mono[1]));
    this.offSec = Number(this.offset / 1_000_000_000n);
    this.offNsec = Number(this.offset % 1_000_000_000n);
    if (this.offNsec < 0) {
      this.offSec -= 1;
      this.offNsec += 1_000_000_000;
    }
  }
  /** [sec, nsec] of monotonic time t (ns); exact, and without allocating for t below 2^53 (104 days of uptime). */
  epoch(t: number, out: { sec: number; nsec: number }): void {
    if (t <= Number.MAX_SAFE_INTEGER) {
      let sec = Math.floor(t / 1e9);
      let nsec = t - sec * 1e9; // exact: both below 2^53
      if (nsec < 0) {
        sec -= 1;
        nsec += 1e9;
      } else if (nsec >= 1e9) {
        sec += 1;
        nsec -= 1e9;
      }
      sec += this.offSec;
      nsec += this.offNsec;
      if (nsec >= 1e9) {
        sec += 1;
        nsec -= 1e9;
      }
      out.sec = sec;
      out.nsec = nsec;
      return;
    }
    const e = BigInt(t) + this.offset;
    out.sec = Number(e / 1_000_000_000n);
    out.nsec = Number(e % 1_000_000_000n);
  }
  static monoNow(): number {
    const m = new Float64Array(2);
    native().clockGettime(CLOCK_MONOTONIC, m);
    return m[0] * 1e9 + m[1];
  }
}

/**
 * A u64 count of nanoseconds given as its two 32-bit halves, split into whole seconds and the
 * nanoseconds after them, exactly and without allocating (long division in base 2^16: every
 * intermediate stays below 2^53). Realtime and TAI nanoseconds are past 2^53 and a double alone
 * would round them.
 */
export function splitNs(hi: number, lo: number, out: { sec: number; nsec: number }): void {
  let cur = hi >>> 16;
  const q3 = Math.floor(cur / 1e9);
  cur = (cur - q3 * 1e9) * 65536 + (hi & 0xffff);
  const q2 = Math.floor(cur / 1e9);
  cur = (cur - q2 * 1e9) * 65536 + (lo >>> 16);
  const q1 = Math.floor(cur / 1e9);
  cur = (cur - q1 * 1e9) * 65536 + (lo & 0xffff);
  const q0 = Math.floor(cur / 1e9);
  out.sec = ((q3 * 65536 + q2) * 65536 + q1) * 65536 + q0;
  out.nsec = cur - q0 * 1e9;
}

/**
 * BPF programs that stamp with bpf_ktime_get_tai_ns(): TAI is CLOCK_REALTIME plus the leap
 * seconds (whole seconds, changed only at a leap second), so one offset read at start turns each
 * stamp into epoch time, with no drift (the monotonic clock drifts from the realtime one as NTP
 * slews it).
 */
export class TaiClock {
  /** TAI - REALTIME, whole seconds. */
  readonly offsetSec: number;
  constructor() {
    const tai = new Float64Array(2);
    const rt = new Float64Array(2);
    native().clockGettime(CLOCK_REALTIME, rt);
    native().clockGettime(CLOCK_TAI, tai);
    this.offsetSec = Math.round(tai[0] - rt[0] + (tai[1] - rt[1]) / 1e9);
  }
  /** Epoch time of a TAI stamp given as its 32-bit halves. */
  epoch(hi: number, lo: number, out: { sec: number; nsec: number }): void {
    splitNs(hi, lo, out);
    out.sec -= this.offsetSec;
  }
}
