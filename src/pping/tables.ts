/**
 * Fixed-capacity open-addressing hash tables over typed arrays for the passive-RTT state, so the
 * per-packet path allocates nothing and a full table is a counted condition, as with a BPF map:
 *  - FlowTable: one entry per connection, found from either direction (symmetric hash, and the
 *    key compared both ways round); the caller learns which direction the packet went. Each
 *    direction has its own state (empty, waiting for a reply, open, closed) and counters.
 *  - StampTable: (connection id, direction, identifier) -> time the identifier was first seen.
 * Deletions leave tombstones; a table rebuilds itself in place when they pile up. A table starts
 * small and doubles as it fills, up to the slots its maximum needs: memory and cache lines follow
 * the flows there are, not the flows there could be.
 */
import type { PacketInfo } from './decode.js';

const EMPTY = 0;
const USED = 1;
const DELETED = 2;
/** StampTable: the state's bits, and a flag on a USED slot. */
const STATE_MASK = 3;
const ONE_WAY = 4;
const KEY = 40; // family, proto, -, -, portA(2), portB(2), addrA(16), addrB(16)

function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Bytes b[o..o+3] as one 32-bit word (any fixed order would do: keys and packets use this one). */
export function word(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
}

/** An address (1 or 4 words at b[off]) folded into one word. */
function addrWord(b: Uint8Array, off: number, family: number): number {
  if (family === 4) return word(b, off);
  return foldV6(word(b, off), word(b, off + 4), word(b, off + 8), word(b, off + 12));
}

/** An IPv6 address's four words (word() of its bytes 0, 4, 8, 12) folded into one. */
export function foldV6(w0: number, w1: number, w2: number, w3: number): number {
  let h = Math.imul(w0 ^ (w0 >>> 15), 0x2c1b3c6d) ^ w1;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ w2;
  return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ w3;
}

/** One end (address word and port), spread before the two ends are combined symmetrically. */
function endpointHash(w: number, port: number): number {
  const h = Math.imul(w ^ Math.imul(port + 1, 0x9e3779b1), 0x85ebca6b);
  return h ^ (h >>> 15);
}

/** The symmetric hash of a packet's flow (the same both ways round): an unsigned 32-bit number. */
export function flowHash(p: PacketInfo): number {
  return endsHash(addrWord(p.bytes, p.srcOff, p.family), p.srcPort, addrWord(p.bytes, p.dstOff, p.family), p.dstPort, p.proto);
}

/** flowHash from its parts: each end's address word (addrWord: IPv4's word, or foldV6) and port. */
export function endsHash(wa: number, pa: number, wb: number, pb: number, proto: number): number {
  return mix((endpointHash(wa, pa) ^ endpointHash(wb, pb)) + proto);
}

/** FlowTable's key words per slot: family | proto << 8, ports (A << 16 | B), A's address, B's address. */
const KW = 10;

function pow2AtLeast(n: number): number {
  let c = 16;
  while (c < n) c *= 2;
  return c;
}

/** Slots a table starts with (fewer when its maximum needs fewer). */
const INITIAL_SLOTS = 1024;

/**
 * The slot count a table of `slots` (at most `maxSlots`) should rebuild to when it has `live`
 * entries and needs room for one more: doubled while they would fill more than half of it.
 */
function roomFor(live: number, slots: number, maxSlots: number): number {
  let n = slots;
  while (n < maxSlots && (live + 1) * 2 > n) n *= 2;
  return n;
}

/** The fields of a direction's record in FlowTable.d (DS numbers from index * DS). */
/** Direction state (DIR_*). */
export const D_STATE = 0;
/** Time of the direction's last timestamp, or of its first packet before any (ePPing's last_timestamp). */
export const D_LAST_STAMP = 1;
/** Last identifier seen. */
export const D_LAST_ID = 2;
/** Whether the direction has been timestamped at all (0/1). */
export const D_STAMPED = 3;
/** Why the direction opened (a FlowReason code: see matcher.ts). */
export const D_OPEN_REASON = 4;
export const D_SENT_PKTS = 5;
export const D_SENT_BYTES = 6;
export const D_REC_PKTS = 7;
export const D_REC_BYTES = 8;
export const D_MIN_RTT = 9;
export const D_SRTT = 10;
/** SEQ/ACK (Karn): the highest identifier sent this way before a retransmission, and whether there is one. */
export const D_BARRIER = 11;
export const D_HAS_BARRIER = 12;
/** --burst: timestamps this direction may still take past the rate limit. */
export const D_CREDITS = 13;
/**
 * The last echo looked up for this direction's timestamps and not found there, plus one (0:
 * none): a bulk flow's ACKs echo the same TSval many times over, and the lookups after the first
 * cannot find it unless it is stored meanwhile (which clears this).
 */
export const D_MISSED = 14;
/** Numbers per direction record (a power of two: 128 bytes). */
export const DS = 16;

/** Direction states, as ePPing's: a direction is "active" while waiting for its first reply or open. */
export const DIR_EMPTY = 0;
export const DIR_WAITOPEN = 1;
export const DIR_OPEN = 2;
export const DIR_CLOSED = 3;

export class FlowTable {
  readonly max: number;
  size = 0;
  private slots: number;
  private mask: number;
  private tomb = 0;
  keys!: Uint8Array;
  /**
   * The key again as words (KW per slot, see word()): a lookup compares a few words, not up to 36
   * bytes one at a time. `keys` keeps the bytes that events and the sweep read.
   */
  private kw!: Int32Array;
  state!: Uint8Array;
  hash!: Uint32Array;
  /** Per slot: connection id (unique for the run; stored timestamps are keyed by it). */
  connId!: Uint32Array;
  /**
   * Per slot and direction (direction index slot * 2 + dir; direction d carries packets from end
   * d), one record of DS numbers at `d[index * DS]`, fields D_*: a packet's rules read and write
   * its flow's two records, four cache lines side by side, instead of a line in each of fourteen
   * arrays (what made a busy table cost a cache miss per field).
   */
  d!: Float64Array;
  /** Direction of the last lookup (0: as stored, 1: reversed). */
  dir = 0;

  private readonly maxSlots: number;

  constructor(max: number) {
    this.max = max;
    this.maxSlots = pow2AtLeast(max * 2);
    this.slots = Math.min(this.maxSlots, INITIAL_SLOTS);
    this.mask = this.slots - 1;
    this.alloc();
  }

  private alloc(): void {
    const n = this.slots;
    this.keys = new Uint8Array(n * KEY);
    this.kw = new Int32Array(n * KW);
    this.state = new Uint8Array(n);
    this.hash = new Uint32Array(n);
    this.connId = new Uint32Array(n);
    this.d = new Float64Array(n * 2 * DS);
  }

  get capacitySlots(): number {
    return this.slots;
  }

  /** The symmetric hash of the packet's flow: flowHash(p), unless the reading thread gave it (p.hash). */
  hashOf(p: PacketInfo): number {
    return p.hash >= 0 ? p.hash : flowHash(p);
  }

  private same(slot: number, p: PacketInfo, reversed: boolean): boolean {
    const k = this.kw;
    const o = slot * KW;
    if (k[o] !== (p.family | (p.proto << 8))) return false;
    if (k[o + 1] !== (reversed ? (p.dstPort << 16) | p.srcPort : (p.srcPort << 16) | p.dstPort)) return false;
    const b = p.bytes;
    const aOff = reversed ? p.dstOff : p.srcOff;
    const bOff = reversed ? p.srcOff : p.dstOff;
    const w = p.words;
    if (p.family === 4) return w !== null ? k[o + 2] === w[aOff >> 2] && k[o + 6] === w[bOff >> 2] : k[o + 2] === word(b, aOff) && k[o + 6] === word(b, bOff);
    for (let i = 0; i < 4; i++) if (k[o + 2 + i] !== word(b, aOff + 4 * i) || k[o + 6 + i] !== word(b, bOff + 4 * i)) return false;
    return true;
  }

  /**
   * Slot of the packet's connection (setting `dir`), or -1. A flow whose two ends are the same
   * (an echo to one's own address over loopback) matches both ways round: `dir` is then 0, and
   * the caller tells the directions apart by what the packet is.
   */
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

  /**
   * Inserts the packet's connection (its source as end 0, or as end 1 when `reversed`), every
   * direction empty: its slot, or -1 when full.
   */
  insert(p: PacketInfo, h: number, connId: number, reversed = false): number {
    if (this.size >= this.max) return -1;
    if (this.size + this.tomb + 1 > (this.slots * 3) >>> 2) this.rebuild(roomFor(this.size, this.slots, this.maxSlots));
    let i = h & this.mask;
    while (this.state[i] === USED) i = (i + 1) & this.mask;
    if (this.state[i] === DELETED) this.tomb--;
    const k = this.keys;
    const o = i * KEY;
    const n = p.family === 4 ? 4 : 16;
    k.fill(0, o, o + KEY);
    k[o] = p.family;
    k[o + 1] = p.proto;
    const aPort = reversed ? p.dstPort : p.srcPort;
    const bPort = reversed ? p.srcPort : p.dstPort;
    const aOff = reversed ? p.dstOff : p.srcOff;
    const bOff = reversed ? p.srcOff : p.dstOff;
    k[o + 4] = aPort >> 8;
    k[o + 5] = aPort & 0xff;
    k[o + 6] = bPort >> 8;
    k[o + 7] = bPort & 0xff;
    k.set(p.bytes.subarray(aOff, aOff + n), o + 8);
    k.set(p.bytes.subarray(bOff, bOff + n), o + 24);
    const kw = this.kw;
    const w = i * KW;
    kw.fill(0, w, w + KW);
    kw[w] = p.family | (p.proto << 8);
    kw[w + 1] = (aPort << 16) | bPort;
    for (let j = 0; j < n; j += 4) {
      kw[w + 2 + j / 4] = word(p.bytes, aOff + j);
      kw[w + 6 + j / 4] = word(p.bytes, bOff + j);
    }
    this.state[i] = USED;
    this.hash[i] = h;
    this.connId[i] = connId;
    this.d.fill(0, i * 2 * DS, (i + 1) * 2 * DS);
    this.size++;
    this.dir = reversed ? 1 : 0;
    return i;
  }

  /**
   * Moves slot `from`'s connection (its id and both directions' records) to the packet's
   * addresses and ports, the packet's source taking end `srcEnd`, so that every direction keeps
   * its index (and the timestamps stored under it stay found): a QUIC connection that a NAT
   * rebinding moved (quic.ts). Returns the new slot.
   */
  move(from: number, p: PacketInfo, h: number, srcEnd: number): number {
    const conn = this.connId[from];
    const rec = this.moving;
    rec.set(this.d.subarray(from * 2 * DS, (from + 1) * 2 * DS));
    this.remove(from);
    const i = this.insert(p, h, conn, srcEnd === 1); // one entry removed: there is room
    this.d.set(rec, i * 2 * DS);
    return i;
  }
  private readonly moving = new Float64Array(2 * DS);

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

  /** Rehashes every live entry into `slots` slots (drops tombstones), keeping slot contents. */
  private rebuild(slots: number): void {
    const oldKeys = this.keys;
    const oldKw = this.kw;
    const oldState = this.state;
    const oldHash = this.hash;
    const oldConn = this.connId;
    const oldD = this.d;
    const n = this.slots;
    this.slots = slots;
    this.mask = slots - 1;
    this.alloc();
    this.tomb = 0;
    for (let s = 0; s < n; s++) {
      if (oldState[s] !== USED) continue;
      let i = oldHash[s] & this.mask;
      while (this.state[i] === USED) i = (i + 1) & this.mask;
      this.keys.set(oldKeys.subarray(s * KEY, s * KEY + KEY), i * KEY);
      this.kw.set(oldKw.subarray(s * KW, s * KW + KW), i * KW);
      this.state[i] = USED;
      this.hash[i] = oldHash[s];
      this.connId[i] = oldConn[s];
      this.d.set(oldD.subarray(s * 2 * DS, (s + 1) * 2 * DS), i * 2 * DS);
    }
  }
}

/** Numbers per StampTable record: connection and direction, identifier, time, deadline. */
const SR = 4;

/**
 * (connection id, direction, identifier) -> first-seen time and expiry. Each slot's key and times
 * are one 32-byte record (`rec`), its state one byte: a probe reads the small state array and the
 * record it stops at, instead of a line in each of five arrays.
 */
export class StampTable {
  readonly max: number;
  size = 0;
  private slots: number;
  private mask: number;
  private tomb = 0;
  /** EMPTY, USED or DELETED, with ONE_WAY set on a USED slot stored for a direction still waiting for its first reply. */
  private state: Uint8Array;
  private rec: Float64Array;
  /** Entries stored for such directions (Matcher caps them at half the table). */
  oneWayCount = 0;
  private readonly maxSlots: number;

  constructor(max: number) {
    this.max = max;
    this.maxSlots = pow2AtLeast(max * 2);
    this.slots = Math.min(this.maxSlots, INITIAL_SLOTS);
    this.mask = this.slots - 1;
    this.state = new Uint8Array(this.slots);
    this.rec = new Float64Array(this.slots * SR);
  }

  private static key(connDir: number, id: number): number {
    return mix(Math.imul(connDir, 0x9e3779b1) ^ id);
  }

  /** Stores the time of (connDir = connId * 2 + dir, id). False when full or already present. */
  put(connDir: number, id: number, time: number, deadline: number, oneWay = false): boolean {
    if (this.size >= this.max) return false;
    if (this.size + this.tomb + 1 > (this.slots * 3) >>> 2) this.rebuild(roomFor(this.size, this.slots, this.maxSlots));
    const cd = connDir >>> 0;
    const r = this.rec;
    let i = StampTable.key(connDir, id) & this.mask;
    let free = -1;
    for (;;) {
      const st = this.state[i] & STATE_MASK;
      if (st === EMPTY) break;
      if (st === USED && r[i * SR] === cd && r[i * SR + 1] === id) return false;
      if (st === DELETED && free < 0) free = i;
      i = (i + 1) & this.mask;
    }
    if (free >= 0) {
      i = free;
      this.tomb--;
    }
    this.state[i] = oneWay ? USED | ONE_WAY : USED;
    r[i * SR] = cd;
    r[i * SR + 1] = id;
    r[i * SR + 2] = time;
    r[i * SR + 3] = deadline;
    if (oneWay) this.oneWayCount++;
    this.size++;
    return true;
  }

  private drop(i: number): void {
    if (this.state[i] & ONE_WAY) this.oneWayCount--;
    this.state[i] = DELETED;
    this.size--;
    this.tomb++;
  }

  /**
   * Removes (connDir, id) and returns its time, or -1 when absent; an entry younger than
   * `notAfter` (a packet earlier than the one it would match) is left in place and -2 returned.
   */
  take(connDir: number, id: number, notAfter = Infinity): number {
    const cd = connDir >>> 0;
    const r = this.rec;
    for (let i = StampTable.key(connDir, id) & this.mask, n = 0; n < this.slots; i = (i + 1) & this.mask, n++) {
      const st = this.state[i] & STATE_MASK;
      if (st === EMPTY) return -1;
      if (st === USED && r[i * SR] === cd && r[i * SR + 1] === id) {
        const time = r[i * SR + 2];
        if (time > notAfter) return -2;
        this.drop(i);
        return time;
      }
    }
    return -1;
  }

  /** Drops every entry whose deadline is before `now`; returns how many. */
  expire(now: number): number {
    let n = 0;
    for (let i = 0; i < this.slots; i++) {
      if ((this.state[i] & STATE_MASK) === USED && this.rec[i * SR + 3] < now) {
        this.drop(i);
        n++;
      }
    }
    if (this.tomb > this.slots >>> 2) this.rebuild(this.slots);
    return n;
  }

  private rebuild(slots: number): void {
    const { state, rec } = this;
    const n = this.slots;
    this.slots = slots;
    this.mask = slots - 1;
    this.state = new Uint8Array(slots);
    this.rec = new Float64Array(slots * SR);
    this.tomb = 0;
    for (let s = 0; s < n; s++) {
      if ((state[s] & STATE_MASK) !== USED) continue;
      let i = StampTable.key(rec[s * SR], rec[s * SR + 1]) & this.mask;
      while ((this.state[i] & STATE_MASK) === USED) i = (i + 1) & this.mask;
      this.state[i] = state[s];
      this.rec.set(rec.subarray(s * SR, s * SR + SR), i * SR);
    }
  }
}
