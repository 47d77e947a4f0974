/**
 * BPF programs stamp events with bpf_ktime_get_ns() (CLOCK_MONOTONIC); events carry epoch time.
 * EpochClock converts one to the other exactly (BigInt), from one reading of both clocks.
 */
import { CLOCK_MONOTONIC } from '../core/constants.js';
import { native } from '../native/index.js';
import { realtime } from '../time/clock.js';

/** Converts kernel monotonic ns to epoch (sec, nsec) exactly. */
export class EpochClock {
  private readonly offset: bigint;
  constructor() {
    const mono = new Float64Array(2);
    const rt = new Float64Array(2);
    native().clockGettime(CLOCK_MONOTONIC, mono);
    realtime(rt);
    native().clockGettime(CLOCK_MONOTONIC, mono);
    this.offset = BigInt(rt[0]) * 1_000_000_000n + BigInt(rt[1]) - (BigInt(mono[0]) * 1_000_000_000n + BigInt(mono[1]));
  }
  /** [sec, nsec] of monotonic time t (ns). */
  epoch(t: number, out: { sec: number; nsec: number }): void {
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
