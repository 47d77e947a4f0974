/**
 * pping's state hygiene, shared by the TypeScript rules and the BPF capture's user-space sweep:
 * how long a stored timestamp and a flow direction live (ePPing's lifetimes), the garbage
 * collection verdict, and what keeps one-way traffic from filling the tables (the one-way half of
 * the timestamp table; early eviction of one-way flows from a crowded flow table).
 */
import { DIR_OPEN, DIR_WAITOPEN } from './tables.js';

const NS = 1e9;
/** A stored timestamp lives 8 RTTs of its direction, at least 1 s and at most 10 s (10 s before an RTT is known). */
export const STAMP_RTT_LIFETIMES = 8;
export const STAMP_MIN_LIFETIME_NS = 1 * NS;
export const STAMP_MAX_LIFETIME_NS = 10 * NS;
/** A direction is timed out this long after its last timestamp (ePPing's lifetimes). */
export const TCP_FLOW_LIFETIME_NS = 300 * NS;
export const ICMP_FLOW_LIFETIME_NS = 30 * NS;
/** A direction still waiting for its first reply. */
export const UNANSWERED_FLOW_LIFETIME_NS = 30 * NS;
/** ... when the flow table is more than CROWDED full: one-way flows go sooner, counted (flows_evicted). */
export const CROWDED_UNANSWERED_LIFETIME_NS = 3 * NS;
export const CROWDED = 0.75;

/**
 * Timestamps for directions still waiting for their first reply (one-way traffic: an asymmetric
 * capture, a flood from spoofed sources) may fill at most this share of the timestamp table; the
 * rest stays for flows that answer, so a flood never stops a long-lived flow from being sampled.
 */
export function oneWayLimit(maxStamps: number): number {
  return Math.max(1, Math.floor(maxStamps / 2));
}


/**
 * ePPing's garbage collection of one flow, given each direction's state and the time since its
 * last timestamp: -1 when the flow stays (an active direction has not timed out), else the
 * directions (bit d) whose closing "flow timeout" is reported (open ones that timed out); the
 * flow then goes. The BPF capture's user-space sweep applies the same verdict to the kernel's map.
 */
export function gcVerdict(icmp: boolean, st0: number, age0: number, st1: number, age1: number, crowded = false): number {
  let notify = 0;
  const unanswered = crowded ? CROWDED_UNANSWERED_LIFETIME_NS : UNANSWERED_FLOW_LIFETIME_NS;
  for (let d = 0; d < 2; d++) {
    const st = d === 0 ? st0 : st1;
    if (!active(st)) continue;
    const age = d === 0 ? age0 : age1;
    const old = age > 0 && ((st === DIR_WAITOPEN && age > unanswered) || (icmp && age > ICMP_FLOW_LIFETIME_NS) || age > TCP_FLOW_LIFETIME_NS);
    if (!old) return -1;
    if (st === DIR_OPEN) notify |= 1 << d;
  }
  return notify;
}

export function active(state: number): boolean {
  return state === DIR_WAITOPEN || state === DIR_OPEN;
}
