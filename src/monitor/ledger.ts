/**
 * The monitor's ledger of probes in flight: a ring of outstanding probes per target, and the
 * timeout queue.
 *
 * Rings: as many slots per target as twice the timeout holds of its probes at their closest
 * spacing (its interval, or a confirmation burst's), a power of two; small rings keep what every
 * probe touches in the processor's caches (ten thousand targets' 64 slots of four arrays were
 * 10 MB). Target i's ring is [i * ring, (i + 1) * ring): per slot the seq (-1 free), the send time,
 * the window and whether it has an outcome. A probe's slot is its seq mod ring. The send time is
 * kept in quarter microseconds of the realtime clock modulo 2^32 (4 bytes a slot, not 8): an RTT is
 * the difference modulo 2^32, exact to a quarter microsecond (a double of realtime milliseconds
 * holds about a third), and unambiguous up to 1,006 s, past the longest timeout (600 s) (the last 67 s of the
 * modulus are an answer stamped before its send, by another clock: 0 ms).
 *
 * Timeout queue: (slot, deadline) in send order (the timeout is the same for every probe,
 * so the order is the deadlines' order), a ring that grows by doubling with the probes in flight.
 */
import { RING_MAX } from './request.js';

/**
 * Realtime (sec, nsec) in quarter microseconds modulo 2^32. 4,000,000 quarters a second is 2^8 *
 * 15,625, so the seconds count only modulo 2^24 (the product stays far inside a double's exact
 * integers, whatever the year).
 */
export function quarterUs(sec: number, nsec: number): number {
  return ((sec % 0x1000000) * 4_000_000 + Math.floor(nsec / 250)) >>> 0;
}

export class OutstandingRings {
  readonly ring: number;
  readonly seq: Int32Array;
  /** Send time, quarter microseconds of the realtime clock, modulo 2^32. */
  readonly tx: Uint32Array;
  readonly win: Int32Array;
  readonly done: Uint8Array;

  /** Rings for `targets`, probed at least min(spacingMs) apart, answered within `timeoutMs`. */
  constructor(targets: number, spacingMs: ArrayLike<number>, timeoutMs: number, slackMs: number) {
    let need = 4;
    for (let i = 0; i < spacingMs.length; i++) {
      while (need < RING_MAX && need * spacingMs[i] < 2 * timeoutMs + slackMs) need *= 2;
    }
    this.ring = need;
    const n = targets * need;
    this.seq = new Int32Array(n).fill(-1);
    this.tx = new Uint32Array(n);
    this.win = new Int32Array(n);
    this.done = new Uint8Array(n);
  }

  /** The index of target i's slot for `seq`. */
  at(i: number, seq: number): number {
    return i * this.ring + (seq % this.ring);
  }

  /** Whether slot k holds a probe still waiting for its outcome. */
  waiting(k: number): boolean {
    return this.seq[k] >= 0 && this.done[k] === 0;
  }

  /** Slot k now holds probe `seq`, sent in window `win`. */
  take(k: number, seq: number, win: number): void {
    this.seq[k] = seq;
    this.done[k] = 0;
    this.win[k] = win;
  }

  /** Slot k's probe left at realtime (sec, nsec). */
  sentAt(k: number, sec: number, nsec: number): void {
    this.tx[k] = quarterUs(sec, nsec);
  }

  /** The RTT of slot k's probe answered at realtime (sec, nsec), ms (0 for an answer stamped before the send). */
  rttMs(k: number, sec: number, nsec: number): number {
    const d = (quarterUs(sec, nsec) - this.tx[k]) >>> 0;
    // Within 67 s before the send (2^28 quarters): an answer stamped early by another clock.
    return d >= 0xf0000000 ? 0 : d / 4000;
  }

  /** Slot k's probe was never sent after all. */
  free(k: number): void {
    this.seq[k] = -1;
  }
}

export class TimeoutQueue {
  private s = new Int32Array(1024);
  private d = new Float64Array(1024);
  private head = 0;
  private len = 0;

  /** Slots of rings of `ring` slots a target: slot k is target floor(k / ring)'s. */
  constructor(private readonly ring: number) {}

  get length(): number {
    return this.len;
  }

  /**
   * The earliest deadline of a probe still waiting (Infinity: none): entries at the head whose
   * probe already has its outcome are dropped first (`waiting(slot)` false), so a light monitor
   * whose answers came does not wake for their deadlines.
   */
  firstWaiting(waiting: (slot: number) => boolean): number {
    while (this.len > 0 && !waiting(this.s[this.head])) {
      this.head = (this.head + 1) % this.s.length;
      this.len--;
    }
    return this.len > 0 ? this.d[this.head] : Infinity;
  }

  /** The probe in ring slot `slot` times out at `deadline` (no earlier than the last pushed). */
  push(slot: number, deadline: number): void {
    if (this.len === this.s.length) this.grow();
    const at = (this.head + this.len) % this.s.length;
    this.s[at] = slot;
    this.d[at] = deadline;
    this.len++;
  }

  /** Calls f(target, slot) for every entry whose deadline is at or before `now`, oldest first, and drops them. */
  expire(now: number, f: (target: number, slot: number) => void): void {
    while (this.len > 0 && this.d[this.head] <= now) {
      const slot = this.s[this.head];
      this.head = (this.head + 1) % this.s.length;
      this.len--;
      f(Math.floor(slot / this.ring), slot);
    }
  }

  private grow(): void {
    const cap = this.s.length;
    const s = new Int32Array(cap * 2);
    const d = new Float64Array(cap * 2);
    for (let k = 0; k < this.len; k++) {
      const from = (this.head + k) % cap;
      s[k] = this.s[from];
      d[k] = this.d[from];
    }
    this.s = s;
    this.d = d;
    this.head = 0;
  }
}
