/**
 * Clocks. RTTs are measured on CLOCK_REALTIME because the kernel stamps received packets
 * (SO_TIMESTAMPNS) on that clock; the send time is taken by the native shim right before
 * sendmmsg. Scheduling (timeouts, deadlines) uses the monotonic performance.now().
 */
import { CLOCK_REALTIME } from '../core/constants.js';
import { native } from '../native/index.js';

const scratch = new Float64Array(2);

/** Difference b - a in milliseconds between two (sec, nsec) CLOCK_REALTIME readings. */
export function diffMs(aSec: number, aNsec: number, bSec: number, bNsec: number): number {
  return (bSec - aSec) * 1e3 + (bNsec - aNsec) / 1e6;
}

/** Reads CLOCK_REALTIME into out = [sec, nsec]. */
export function realtime(out: Float64Array = scratch): Float64Array {
  native().clockGettime(CLOCK_REALTIME, out);
  return out;
}

/** Rounds milliseconds to microsecond precision for events. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
