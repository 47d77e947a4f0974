/**
 * The monitor's ledger of probes in flight: a ring of outstanding probes per target, and the
 * timeout queue.
 *
 * Rings: as many slots per target as twice the timeout holds of its probes at their closest
 * spacing (its interval, or a confirmation burst's), a power of two; small rings keep what every
 * probe touches in the processor's caches (ten thousand targets' 64 slots of four arrays were
 * 10 MB). Target i's ring is [i * ring, (i + 1) * ring): per slot the seq (-1 free), the send time
 * (realtime ms), the window and whether it has an outcome. A probe's slot is its seq mod ring.
 *
 * Timeout queue: (target, slot, deadline) in send order (the timeout is the same for every probe,
 * so the order is the deadlines' order), a ring that grows by doubling with the probes in flight.
 */
import { RING_MAX } from './request.js';

export class OutstandingRings {
  readonly ring: number;
  readonly seq: Int32Array;
  readonly tx: Float64Array;
  readonly win: Int32Array;
  readonly done: Uint8Array;

  /** Rings for `targets`, each probed at least `spacingMs[i]` apart (smallest first wins), answered within `timeoutMs`. */
  constructor(spacingMs: ArrayLike<number>, timeoutMs: number, slackMs: number) {
    let need = 4;
    for (let i = 0; i < spacingMs.length; i++) {
      while (need < RING_MAX && need * spacingMs[i] < 2 * timeoutMs + slackMs) need *= 2;
    }
    this.ring = need;
    const n = spacingMs.length * need;
    this.seq = new Int32Array(n).fill(-1);
    this.tx = new Float64Array(n);
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

  /** Slot k's probe was never sent after all. */
  free(k: number): void {
    this.seq[k] = -1;
  }
}

export class TimeoutQueue {
  private t = new Int32Array(1024);
  private s = new Int32Array(1024);
  private d = new Float64Array(1024);
  private head = 0;
  private len = 0;

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
      this.head = (this.head + 1) % this.t.length;
      this.len--;
    }
    return this.len > 0 ? this.d[this.head] : Infinity;
  }

  push(target: number, slot: number, deadline: number): void {
    if (this.len === this.t.length) this.grow();
    const at = (this.head + this.len) % this.t.length;
    this.t[at] = target;
    this.s[at] = slot;
    this.d[at] = deadline;
    this.len++;
  }

  /** Calls f(target, slot) for every entry whose deadline is at or before `now`, oldest first, and drops them. */
  expire(now: number, f: (target: number, slot: number) => void): void {
    while (this.len > 0 && this.d[this.head] <= now) {
      const target = this.t[this.head];
      const slot = this.s[this.head];
      this.head = (this.head + 1) % this.t.length;
      this.len--;
      f(target, slot);
    }
  }

  private grow(): void {
    const cap = this.t.length;
    const t = new Int32Array(cap * 2);
    const s = new Int32Array(cap * 2);
    const d = new Float64Array(cap * 2);
    for (let k = 0; k < this.len; k++) {
      const from = (this.head + k) % cap;
      t[k] = this.t[from];
      s[k] = this.s[from];
      d[k] = this.d[from];
    }
    this.t = t;
    this.s = s;
    this.d = d;
    this.head = 0;
  }
}
