/**
 * Fixed-capacity open-addressing hash tables over typed arrays for the passive-RTT state, so the
 * per-packet path allocates nothing and a full table is a counted condition, as with a BPF map:
 *  - FlowTable: one entry per connection, found from either direction (symmetric hash, and the
 *    key compared both ways round); the caller learns which direction the packet went.
 *  - StampTable: (connection id, direction, identifier) -> time the identifier was first seen.
 * Deletions leave tombstones; a table rebuilds itself in place when they pile up.
 */
import type { PacketInfo } from './decode.js';

const EMPTY = 0;
const USED = 1;
const DELETED = 2;
const KEY = 40; // family, proto, -, -, portA(2), portB(2), addrA(16), addrB(16)

function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

function endpointHash(b: Uint8Array, off: number, n: number, port: number): number {
  let h = 0x811c9dc5 ^ port;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[off + i], 0x01000193);
  return mix(h);
}

function pow2AtLeast(n: number): number {
  let c = 16;
  while (c < n) c *= 2;
  return c;
}

export class FlowTable {
  readonly max: number;
  size = 0;
  private slots: number;
  private mask: number;
  private tomb = 0;
  keys!: Uint8Array;
  state!: Uint8Array;
  hash!: Uint32Array;
  /** Per slot: connection id (unique for the run), last packet time. */
  connId!: Uint32Array;
  lastSeen!: Float64Array;
  /** Per slot and direction (index slot * 2 + dir): */
  lastId!: Float64Array;
  hasLastId!: Uint8Array;
  lastStamp!: Float64Array;
  pkts!: Float64Array;
  bytes!: Float64Array;
  minRtt!: Float64Array;
  srtt!: Float64Array;
  fin!: Uint8Array;
  /** Per slot: closing reported. */
  closing!: Uint8Array;
  /** Direction of the last lookup (0: as stored, 1: reversed). */
  dir = 0;

  constructor(max: number) {
    this.max = max;
    this.slots = pow2AtLeast(max * 2);
    this.mask = this.slots - 1;
    this.alloc();
  }

  private alloc(): void {
    const n = this.slots;
    this.keys = new Uint8Array(n * KEY);
    this.state = new Uint8Array(n);
    this.hash = new Uint32Array(n);
    this.connId = new Uint32Array(n);
    this.lastSeen = new Float64Array(n);
    this.lastId = new Float64Array(n * 2);
    this.hasLastId = new Uint8Array(n * 2);
    this.lastStamp = new Float64Array(n * 2);
    this.pkts = new Float64Array(n * 2);
    this.bytes = new Float64Array(n * 2);
    this.minRtt = new Float64Array(n * 2);
    this.srtt = new Float64Array(n * 2);
    this.fin = new Uint8Array(n * 2);
    this.closing = new Uint8Array(n);
  }

  get capacitySlots(): number {
    return this.slots;
  }

  /** The symmetric hash of the packet's flow. */
  hashOf(p: PacketInfo): number {
    const n = p.family === 4 ? 4 : 16;
    return mix((endpointHash(p.bytes, p.srcOff, n, p.srcPort) ^ endpointHash(p.bytes, p.dstOff, n, p.dstPort)) + p.proto);
  }

  private same(slot: number, p: PacketInfo, reversed: boolean): boolean {
    const k = this.keys;
    const o = slot * KEY;
    if (k[o] !== p.family || k[o + 1] !== p.proto) return false;
    const pa = (k[o + 4] << 8) | k[o + 5];
    const pb = (k[o + 6] << 8) | k[o + 7];
    const n = p.family === 4 ? 4 : 16;
    const b = p.bytes;
    const aOff = reversed ? p.dstOff : p.srcOff;
    const bOff = reversed ? p.srcOff : p.dstOff;
    if (pa !== (reversed ? p.dstPort : p.srcPort) || pb !== (reversed ? p.srcPort : p.dstPort)) return false;
    for (let i = 0; i < n; i++) if (k[o + 8 + i] !== b[aOff + i] || k[o + 24 + i] !== b[bOff + i]) return false;
    return true;
  }

  /** Slot of the packet's connection (setting `dir`), or -1. */
  find(p: PacketInfo, h: number): number {
    for (let i = h & this.mask, probes = 0; probes < this.slots; i = (i + 1) & this.mask, probes++) {
      const st = this.state[i];
      if (st === EMPTY) return -1;
      if (st === USED && this.hash[i] === h) {
        if (this.same(i, p, false)) {
          this.dir = 0;
          return i;
        }
        if (this.same(i, p, true)) {
          this.dir = 1;
          return i;
        }
      }
    }
    return -1;
  }

  /** Inserts the packet's connection (src as A): its slot, or -1 when the table is full. */
  insert(p: PacketInfo, h: number, connId: number, now: number): number {
    if (this.size >= this.max) return -1;
    if (this.size + this.tomb + 1 > (this.slots * 3) >>> 2) this.rebuild();
    let i = h & this.mask;
    while (this.state[i] === USED) i = (i + 1) & this.mask;
    if (this.state[i] === DELETED) this.tomb--;
    const k = this.keys;
    const o = i * KEY;
    const n = p.family === 4 ? 4 : 16;
    k.fill(0, o, o + KEY);
    k[o] = p.family;
    k[o + 1] = p.proto;
    k[o + 4] = p.srcPort >> 8;
    k[o + 5] = p.srcPort & 0xff;
    k[o + 6] = p.dstPort >> 8;
    k[o + 7] = p.dstPort & 0xff;
    k.set(p.bytes.subarray(p.srcOff, p.srcOff + n), o + 8);
    k.set(p.bytes.subarray(p.dstOff, p.dstOff + n), o + 24);
    this.state[i] = USED;
    this.hash[i] = h;
    this.connId[i] = connId;
    this.lastSeen[i] = now;
    this.closing[i] = 0;
    for (let d = i * 2; d < i * 2 + 2; d++) {
      this.lastId[d] = 0;
      this.hasLastId[d] = 0;
      this.lastStamp[d] = -Infinity;
      this.pkts[d] = 0;
      this.bytes[d] = 0;
      this.minRtt[d] = 0;
      this.srtt[d] = 0;
      this.fin[d] = 0;
    }
    this.size++;
    this.dir = 0;
    return i;
  }

  remove(slot: number): void {
    if (this.state[slot] !== USED) return;
    this.state[slot] = DELETED;
    this.size--;
    this.tomb++;
  }

  /** Calls fn for every live slot (fn may remove the slot it is given). */
  forEach(fn: (slot: number) => void): void {
    for (let i = 0; i < this.slots; i++) if (this.state[i] === USED) fn(i);
  }

  family(slot: number): 4 | 6 {
    return this.keys[slot * KEY] === 6 ? 6 : 4;
  }
  proto(slot: number): number {
    return this.keys[slot * KEY + 1];
  }
  /** Port of end 0 (A) or 1 (B). */
  port(slot: number, end: number): number {
    const o = slot * KEY + 4 + end * 2;
    return (this.keys[o] << 8) | this.keys[o + 1];
  }
  /** Offset in `keys` of end 0 (A) or 1 (B)'s address. */
  addrOff(slot: number, end: number): number {
    return slot * KEY + 8 + end * 16;
  }

  /** Rehashes every live entry (drops tombstones), keeping slot contents. */
  private rebuild(): void {
    const old = {
      keys: this.keys,
      state: this.state,
      hash: this.hash,
      connId: this.connId,
      lastSeen: this.lastSeen,
      lastId: this.lastId,
      hasLastId: this.hasLastId,
      lastStamp: this.lastStamp,
      pkts: this.pkts,
      bytes: this.bytes,
      minRtt: this.minRtt,
      srtt: this.srtt,
      fin: this.fin,
      closing: this.closing,
    };
    const n = this.slots;
    this.alloc();
    this.tomb = 0;
    for (let s = 0; s < n; s++) {
      if (old.state[s] !== USED) continue;
      let i = old.hash[s] & this.mask;
      while (this.state[i] === USED) i = (i + 1) & this.mask;
      this.keys.set(old.keys.subarray(s * KEY, s * KEY + KEY), i * KEY);
      this.state[i] = USED;
      this.hash[i] = old.hash[s];
      this.connId[i] = old.connId[s];
      this.lastSeen[i] = old.lastSeen[s];
      this.closing[i] = old.closing[s];
      for (let d = 0; d < 2; d++) {
        const a = s * 2 + d;
        const b = i * 2 + d;
        this.lastId[b] = old.lastId[a];
        this.hasLastId[b] = old.hasLastId[a];
        this.lastStamp[b] = old.lastStamp[a];
        this.pkts[b] = old.pkts[a];
        this.bytes[b] = old.bytes[a];
        this.minRtt[b] = old.minRtt[a];
        this.srtt[b] = old.srtt[a];
        this.fin[b] = old.fin[a];
      }
    }
  }
}

/** (connection id, direction, identifier) -> first-seen time and expiry. */
export class StampTable {
  readonly max: number;
  size = 0;
  private slots: number;
  private mask: number;
  private tomb = 0;
  private state: Uint8Array;
  private conn: Uint32Array;
  private ident: Uint32Array;
  private time: Float64Array;
  private deadline: Float64Array;

  constructor(max: number) {
    this.max = max;
    this.slots = pow2AtLeast(max * 2);
    this.mask = this.slots - 1;
    this.state = new Uint8Array(this.slots);
    this.conn = new Uint32Array(this.slots);
    this.ident = new Uint32Array(this.slots);
    this.time = new Float64Array(this.slots);
    this.deadline = new Float64Array(this.slots);
  }

  private static key(connDir: number, id: number): number {
    return mix(Math.imul(connDir, 0x9e3779b1) ^ id);
  }

  /** Stores the time of (connDir = connId * 2 + dir, id). False when full or already present. */
  put(connDir: number, id: number, time: number, deadline: number): boolean {
    if (this.size >= this.max) return false;
    if (this.size + this.tomb + 1 > (this.slots * 3) >>> 2) this.rebuild();
    let i = StampTable.key(connDir, id) & this.mask;
    let free = -1;
    for (;;) {
      const st = this.state[i];
      if (st === EMPTY) break;
      if (st === USED && this.conn[i] === connDir >>> 0 && this.ident[i] === id) return false;
      if (st === DELETED && free < 0) free = i;
      i = (i + 1) & this.mask;
    }
    if (free >= 0) {
      i = free;
      this.tomb--;
    }
    this.state[i] = USED;
    this.conn[i] = connDir;
    this.ident[i] = id;
    this.time[i] = time;
    this.deadline[i] = deadline;
    this.size++;
    return true;
  }

  /** Removes (connDir, id) and returns its time, or -1 when absent. */
  take(connDir: number, id: number): number {
    for (let i = StampTable.key(connDir, id) & this.mask, n = 0; n < this.slots; i = (i + 1) & this.mask, n++) {
      const st = this.state[i];
      if (st === EMPTY) return -1;
      if (st === USED && this.conn[i] === connDir >>> 0 && this.ident[i] === id) {
        this.state[i] = DELETED;
        this.size--;
        this.tomb++;
        return this.time[i];
      }
    }
    return -1;
  }

  /** Drops every entry whose deadline is before `now`; returns how many. */
  expire(now: number): number {
    let n = 0;
    for (let i = 0; i < this.slots; i++) {
      if (this.state[i] === USED && this.deadline[i] < now) {
        this.state[i] = DELETED;
        this.size--;
        this.tomb++;
        n++;
      }
    }
    if (this.tomb > this.slots >>> 2) this.rebuild();
    return n;
  }

  private rebuild(): void {
    const { state, conn, ident, time, deadline } = this;
    const n = this.slots;
    this.state = new Uint8Array(n);
    this.conn = new Uint32Array(n);
    this.ident = new Uint32Array(n);
    this.time = new Float64Array(n);
    this.deadline = new Float64Array(n);
    this.tomb = 0;
    for (let s = 0; s < n; s++) {
      if (state[s] !== USED) continue;
      let i = StampTable.key(conn[s], ident[s]) & this.mask;
      while (this.state[i] === USED) i = (i + 1) & this.mask;
      this.state[i] = USED;
      this.conn[i] = conn[s];
      this.ident[i] = ident[s];
      this.time[i] = time[s];
      this.deadline[i] = deadline[s];
    }
  }
}
