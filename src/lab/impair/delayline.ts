/**
 * One direction of an impaired link: frames are admitted with their kernel arrival time, maybe
 * dropped, duplicated or let through early, copied into an arena, and released when due.
 * Pure logic over caller-owned memory: no I/O, no allocation per frame.
 *
 * Semantics follow netem's where they overlap: delay + uniform jitter (which may reorder), loss,
 * duplication, "reorder" = a fraction of frames skip the delay, rate = serialization after delay.
 */
import type { Impairment } from '../spec.js';

/** mulberry32: small, fast, seedable; good enough for loss patterns, not for secrets. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export interface LineStats {
  admitted: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  overflow: number;
  sent: number;
  txErrors: number;
  bytes: number;
}

export class DelayLine {
  readonly stats: LineStats = { admitted: 0, dropped: 0, duplicated: 0, reordered: 0, overflow: 0, sent: 0, txErrors: 0, bytes: 0 };
  private readonly mem: Uint8Array;
  private readonly base: number;
  private readonly cap: number;
  private readonly max: number;
  private readonly off: Int32Array;
  private readonly len: Int32Array;
  private readonly due: Float64Array;
  private readonly freed: Uint8Array;
  /** Allocation order, to keep frames with equal due times first-in first-out. */
  private readonly order: Float64Array;
  private readonly heap: Int32Array;
  private heapN = 0;
  /** Entries live in allocation order in ring positions [tail, head). */
  private head = 0;
  private tail = 0;
  private arenaHead = 0;
  private arenaTail = 0;
  private lastDepart = -Infinity;
  private readonly popped: Int32Array;
  private nPopped = 0;
  private readonly delay: number;
  private readonly jitter: number;
  private readonly loss: number;
  private readonly reorder: number;
  private readonly duplicate: number;
  /** bits per millisecond, 0: unlimited */
  private readonly rate: number;
  private readonly rng: Rng;

  /**
   * mem[base, base+cap) is this line's arena; maxEntries bounds the frames queued at once;
   * maxBatch bounds one popDue.
   */
  constructor(mem: Uint8Array, base: number, cap: number, maxEntries: number, maxBatch: number, imp: Impairment | null, seed: number) {
    this.mem = mem;
    this.base = base;
    this.cap = cap;
    this.max = maxEntries;
    this.off = new Int32Array(maxEntries);
    this.len = new Int32Array(maxEntries);
    this.due = new Float64Array(maxEntries);
    this.freed = new Uint8Array(maxEntries);
    this.order = new Float64Array(maxEntries);
    this.heap = new Int32Array(maxEntries);
    this.popped = new Int32Array(maxBatch);
    this.delay = imp?.delay_ms ?? 0;
    this.jitter = imp?.jitter_ms ?? 0;
    this.loss = imp?.loss ?? 0;
    this.reorder = imp?.reorder ?? 0;
    this.duplicate = imp?.duplicate ?? 0;
    this.rate = imp?.rate_mbit ? imp.rate_mbit * 1000 : 0;
    this.rng = new Rng(seed);
  }

  get queued(): number {
    return this.head - this.tail;
  }

  /** Admits the frame mem[src, src+n) that arrived at `arrival` (ms). Returns copies queued. */
  admit(src: number, n: number, arrival: number): number {
    this.stats.admitted++;
    if (this.loss > 0 && this.rng.next() < this.loss) {
      this.stats.dropped++;
      return 0;
    }
    const copies = this.duplicate > 0 && this.rng.next() < this.duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    let queued = 0;
    for (let c = 0; c < copies; c++) {
      let due = arrival;
      if (this.reorder > 0 && this.rng.next() < this.reorder) {
        this.stats.reordered++;
      } else {
        due += this.delay;
        if (this.jitter > 0) due += (this.rng.next() * 2 - 1) * this.jitter;
      }
      if (this.rate > 0) {
        const start = due > this.lastDepart ? due : this.lastDepart;
        due = start + (n * 8) / this.rate;
        this.lastDepart = due;
      }
      if (!this.enqueue(src, n, due)) {
        this.stats.overflow++;
        break;
      }
      queued++;
    }
    return queued;
  }

  private alloc(n: number): number {
    if (this.head === this.tail) {
      this.arenaHead = this.arenaTail = 0;
    }
    if (this.head - this.tail >= this.max || n > this.cap) return -1;
    let at: number;
    if (this.head === this.tail || this.arenaHead >= this.arenaTail) {
      if (this.cap - this.arenaHead >= n) at = this.arenaHead;
      else if (this.arenaTail > n) at = 0;
      else return -1;
    } else if (this.arenaTail - this.arenaHead > n) {
      at = this.arenaHead;
    } else {
      return -1;
    }
    this.arenaHead = at + n;
    return at;
  }

  private enqueue(src: number, n: number, due: number): boolean {
    const at = this.alloc(n);
    if (at < 0) return false;
    const id = this.head % this.max;
    if (this.head === this.tail) this.arenaTail = at;
    this.mem.copyWithin(this.base + at, src, src + n);
    this.off[id] = at;
    this.len[id] = n;
    this.due[id] = due;
    this.order[id] = this.head;
    this.freed[id] = 0;
    this.head++;
    this.heapPush(id);
    return true;
  }

  /** Due time of the next frame, or Infinity. */
  nextDue(): number {
    return this.heapN > 0 ? this.due[this.heap[0]] : Infinity;
  }

  /** Due time of the i-th frame of the last popDue. */
  poppedDue(i: number): number {
    return this.due[this.popped[i]];
  }

  /**
   * Moves frames due at or before `until` into meta (sendmmsg layout: 6 Int32 per message, data
   * offsets into mem) and returns how many. Call release() after sending them.
   */
  popDue(until: number, meta: Int32Array, maxCount: number): number {
    let k = 0;
    const lim = Math.min(maxCount, this.popped.length);
    while (k < lim && this.heapN > 0 && this.due[this.heap[0]] <= until) {
      const id = this.heapPop();
      const m = k * 6;
      meta[m] = this.base + this.off[id];
      meta[m + 1] = this.len[id];
      meta[m + 2] = 0;
      meta[m + 3] = 0;
      meta[m + 4] = 0;
      meta[m + 5] = 0;
      this.popped[k++] = id;
    }
    this.nPopped = k;
    return k;
  }

  /** Frees the frames of the last popDue; `sent` of them left, the rest failed. */
  release(sent: number): void {
    this.stats.sent += sent;
    this.stats.txErrors += this.nPopped - sent;
    for (let i = 0; i < this.nPopped; i++) {
      const id = this.popped[i];
      if (i < sent) this.stats.bytes += this.len[id];
      this.freed[id] = 1;
    }
    this.nPopped = 0;
    while (this.tail < this.head && this.freed[this.tail % this.max]) this.tail++;
    if (this.tail < this.head) this.arenaTail = this.off[this.tail % this.max];
  }

  private before(a: number, b: number): boolean {
    const da = this.due[a];
    const db = this.due[b];
    return da < db || (da === db && this.order[a] < this.order[b]);
  }

  private heapPush(id: number): void {
    const h = this.heap;
    let i = this.heapN++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.before(h[p], id)) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = id;
  }

  private heapPop(): number {
    const h = this.heap;
    const top = h[0];
    const last = h[--this.heapN];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.heapN) break;
      const r = l + 1;
      const c = r < this.heapN && this.before(h[r], h[l]) ? r : l;
      if (!this.before(h[c], last)) break;
      h[i] = h[c];
      i = c;
    }
    h[i] = last;
    return top;
  }
}
