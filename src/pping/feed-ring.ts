/**
 * The shared memory between an offline run's two threads (offline-feed.ts spawns the reader,
 * decode-worker.ts is it): a ring of slots of fixed-size packet records, and the control words that
 * hand slots over. Both threads import this file; it starts no thread itself.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ErrorCode } from '../core/errors.js';
import { type PacketInfo, QUIC_SHORT } from './decode.js';
import { endsHash, flowHash, foldV6, word } from './tables.js';

/** Atomics.waitAsync (Node 16 on; typed from ES2024, past this project's lib). */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** 32-bit words per record (even: the time is a float64 at the record's start). */
export const REC_WORDS = 24;
/** Records per slot, and slots in the ring. */
export const SLOT_RECORDS = 8192;
export const SLOTS = 2;
/** Bytes the worker reads from the file at a time. */
export const WORKER_CHUNK = 256 << 10;

// Word offsets in a record. R_SEC is a float64 (words 0 and 1).
const R_SEC = 0;
const R_NSEC = 2;
/** The skip reason (low byte; 0 for a decoded packet), then bits H_*. */
const R_HEAD = 3;
/** proto (low byte), the echo sequence (high 16 bits). */
const R_PROTO = 4;
/** srcPort << 16 | dstPort. */
const R_PORTS = 5;
const R_PAYLOAD = 6;
const R_TCP_PAYLOAD = 7;
const R_IPLEN = 8;
const R_TSVAL = 9;
const R_TSECR = 10;
const R_SEQ = 11;
const R_ACK = 12;
const R_DNS_ID = 13;
const R_HASH = 14;
/** Source address (16 bytes), then the destination's. */
const R_ADDR = 15;
/** QUIC: PacketInfo.quic (low byte), cidLen (next byte); a short header's connection id bytes are at R_CID. */
const R_QUIC = 23;
/** Words of a QUIC record that TCP and DNS fields use in theirs: room for QUIC_CID_MAX bytes. */
const R_CID = R_TSVAL;

// Bits of R_HEAD above the skip reason.
const H_EGRESS = 1 << 8;
const H_V6 = 1 << 9;
const H_HAS_TS = 1 << 10;
const H_FROM_SERVER = 1 << 11;
const H_SPIN = 1 << 12;
/** echo (2 bits), dns (2 bits), linkOut + 1 (2 bits), TCP flags (12 bits) from these shifts. */
const H_ECHO = 14;
const H_DNS = 16;
const H_LINK = 18;
const H_FLAGS = 20;

// Control words: per slot its state, record count and status.
const C_STATE = 0;
const C_COUNT = SLOTS;
const C_STATUS = 2 * SLOTS;
const CTL_WORDS = 3 * SLOTS;

/** A slot's state: the worker's to fill, or the main thread's to read. */
const SLOT_FREE = 0;
const SLOT_FULL = 1;
/** A slot's status: more slots follow, the file ended after it, or reading failed after it. */
export const STATUS_MORE = 0;
export const STATUS_END = 1;
export const STATUS_ERROR = 2;

/** What the worker is given. */
export interface FeedSetup {
  path: string;
  dns: boolean;
  quicPorts: readonly number[];
  ctl: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  port: MessagePort;
}

/** An error crossing from the worker: a PathlensError's code, or none for anything else. */
export interface FeedError {
  code: ErrorCode | null;
  message: string;
}

/** Views of the shared memory, the same on both sides. */
export class FeedViews {
  readonly ctl: Int32Array;
  readonly u32: Uint32Array;
  readonly f64: Float64Array;
  readonly u8: Uint8Array;
  /** The ring as tables.ts word()s (PacketInfo.words), on a little-endian machine; else null. */
  readonly words: Int32Array | null;

  constructor(ctl: SharedArrayBuffer, ring: SharedArrayBuffer) {
    this.ctl = new Int32Array(ctl);
    this.u32 = new Uint32Array(ring);
    this.f64 = new Float64Array(ring);
    this.u8 = new Uint8Array(ring);
    this.words = LITTLE_ENDIAN ? new Int32Array(ring) : null;
  }

  static allocate(): { ctl: SharedArrayBuffer; ring: SharedArrayBuffer } {
    const ctl = new SharedArrayBuffer(CTL_WORDS * 4);
    return { ctl, ring: new SharedArrayBuffer(SLOTS * SLOT_RECORDS * REC_WORDS * 4) };
  }

  count(slot: number): number {
    return this.ctl[C_COUNT + slot];
  }
  status(slot: number): number {
    return this.ctl[C_STATUS + slot];
  }

  /** The worker hands a slot over (its records written before). */
  publish(slot: number, count: number, status: number): void {
    this.ctl[C_COUNT + slot] = count;
    this.ctl[C_STATUS + slot] = status;
    Atomics.store(this.ctl, C_STATE + slot, SLOT_FULL);
    Atomics.notify(this.ctl, C_STATE + slot);
  }

  /** The main thread gives a slot back. */
  release(slot: number): void {
    Atomics.store(this.ctl, C_STATE + slot, SLOT_FREE);
    Atomics.notify(this.ctl, C_STATE + slot);
  }

  /** Resolves when `slot` is full (main thread); null if it is. */
  whenFull(slot: number): Promise<unknown> | null {
    const w = waitAsync(this.ctl, C_STATE + slot, SLOT_FREE);
    return w.async ? (w.value as Promise<string>) : null;
  }

  /** The worker waits until a slot is free. */
  waitFree(slot: number): void {
    while (Atomics.load(this.ctl, C_STATE + slot) !== SLOT_FREE) Atomics.wait(this.ctl, C_STATE + slot, SLOT_FULL);
  }

  /** Word index of record i of a slot. */
  static base(slot: number, i: number): number {
    return (slot * SLOT_RECORDS + i) * REC_WORDS;
  }

  /** Writes a packet that gives no flow (only its time and the reason count). */
  writeSkip(b: number, sec: number, nsec: number, reason: number): void {
    this.f64[(b + R_SEC) >> 1] = sec;
    this.u32[b + R_NSEC] = nsec;
    this.u32[b + R_HEAD] = reason;
  }

  /** Writes a decoded packet, with its flow's hash (tables.ts flowHash). */
  write(b: number, sec: number, nsec: number, egress: boolean, p: PacketInfo): void {
    const u = this.u32;
    this.f64[(b + R_SEC) >> 1] = sec;
    u[b + R_NSEC] = nsec;
    u[b + R_HEAD] =
      (egress ? H_EGRESS : 0) |
      (p.family === 6 ? H_V6 : 0) |
      (p.hasTs ? H_HAS_TS : 0) |
      (p.fromServer ? H_FROM_SERVER : 0) |
      (p.spin ? H_SPIN : 0) |
      (p.echo << H_ECHO) |
      (p.dns << H_DNS) |
      ((p.linkOut + 1) << H_LINK) |
      (p.tcpFlags << H_FLAGS);
    u[b + R_PROTO] = p.proto | (p.echoSeq << 16);
    u[b + R_PORTS] = (p.srcPort << 16) | p.dstPort;
    u[b + R_PAYLOAD] = p.payload;
    u[b + R_TCP_PAYLOAD] = p.tcpPayload;
    u[b + R_IPLEN] = p.ipLen;
    u[b + R_TSVAL] = p.tsval;
    u[b + R_TSECR] = p.tsecr;
    u[b + R_SEQ] = p.seq;
    u[b + R_ACK] = p.ackNum;
    u[b + R_DNS_ID] = p.dnsId;
    u[b + R_QUIC] = p.quic | (p.cidLen << 8);
    const src = p.bytes;
    const d = this.u8;
    if (p.quic === QUIC_SHORT) for (let i = 0, c = (b + R_CID) * 4; i < p.cidLen; i++) d[c + i] = src[p.cidOff + i];
    const w = b + R_ADDR;
    const a = w * 4;
    if (p.family === 4) {
      d[a] = src[p.srcOff];
      d[a + 1] = src[p.srcOff + 1];
      d[a + 2] = src[p.srcOff + 2];
      d[a + 3] = src[p.srcOff + 3];
      d[a + 16] = src[p.dstOff];
      d[a + 17] = src[p.dstOff + 1];
      d[a + 18] = src[p.dstOff + 2];
      d[a + 19] = src[p.dstOff + 3];
    } else {
      for (let i = 0; i < 16; i++) {
        d[a + i] = src[p.srcOff + i];
        d[a + 16 + i] = src[p.dstOff + i];
      }
    }
    // The addresses' words, read back aligned: on a little-endian machine they are tables.ts's word().
    if (!LITTLE_ENDIAN) u[b + R_HASH] = flowHash(p);
    else if (p.family === 4) u[b + R_HASH] = endsHash(u[w], p.srcPort, u[w + 4], p.dstPort, p.proto);
    else u[b + R_HASH] = endsHash(foldV6(u[w], u[w + 1], u[w + 2], u[w + 3]), p.srcPort, foldV6(u[w + 4], u[w + 5], u[w + 6], u[w + 7]), p.dstPort, p.proto);
  }

  /**
   * The commonest frame decoded straight into record b: Ethernet without VLAN tags, IPv4 without
   * options, not a later fragment, TCP with no options or exactly NOP NOP timestamp (what Linux
   * sends). What Decoder.decode and write() would store, without the PacketInfo in between (the
   * fields that do not apply to TCP are 0); false for any other frame, which takes that way.
   * A property test holds the two to the same record.
   */
  writeTcp4(b: number, bytes: Uint8Array, off: number, len: number, sec: number, nsec: number, egress: boolean): boolean {
    if (len < 54 || bytes[off + 12] !== 0x08 || bytes[off + 13] !== 0x00 || bytes[off + 14] !== 0x45 || bytes[off + 23] !== 6) return false;
    if (((bytes[off + 20] & 0x1f) | bytes[off + 21]) !== 0) return false; // a later fragment
    const ip = off + 14;
    const totalLen = (bytes[ip + 2] << 8) | bytes[ip + 3];
    if (totalLen < 20) return false;
    const t = ip + 20;
    const hl = (bytes[t + 12] >> 4) * 4;
    let ts = false;
    if (hl === 32) {
      if (len < 66 || bytes[t + 20] !== 1 || bytes[t + 21] !== 1 || bytes[t + 22] !== 8 || bytes[t + 23] !== 10) return false;
      ts = true;
    } else if (hl !== 20) {
      return false;
    }
    const u = this.u32;
    this.f64[(b + R_SEC) >> 1] = sec;
    u[b + R_NSEC] = nsec;
    u[b + R_HEAD] = (egress ? H_EGRESS : 0) | (ts ? H_HAS_TS : 0) | (bytes[t + 13] << H_FLAGS);
    u[b + R_PROTO] = 6;
    const sp = (bytes[t] << 8) | bytes[t + 1];
    const dp = (bytes[t + 2] << 8) | bytes[t + 3];
    u[b + R_PORTS] = (sp << 16) | dp;
    const payload = Math.max(0, totalLen - 20 - hl);
    u[b + R_PAYLOAD] = payload;
    u[b + R_TCP_PAYLOAD] = payload;
    u[b + R_IPLEN] = totalLen;
    u[b + R_TSVAL] = ts ? (bytes[t + 24] << 24) | (bytes[t + 25] << 16) | (bytes[t + 26] << 8) | bytes[t + 27] : 0;
    u[b + R_TSECR] = ts ? (bytes[t + 28] << 24) | (bytes[t + 29] << 16) | (bytes[t + 30] << 8) | bytes[t + 31] : 0;
    u[b + R_SEQ] = (bytes[t + 4] << 24) | (bytes[t + 5] << 16) | (bytes[t + 6] << 8) | bytes[t + 7];
    u[b + R_ACK] = (bytes[t + 8] << 24) | (bytes[t + 9] << 16) | (bytes[t + 10] << 8) | bytes[t + 11];
    u[b + R_DNS_ID] = 0;
    u[b + R_QUIC] = 0;
    const w = b + R_ADDR;
    const d = this.u8;
    const a = w * 4;
    d[a] = bytes[ip + 12];
    d[a + 1] = bytes[ip + 13];
    d[a + 2] = bytes[ip + 14];
    d[a + 3] = bytes[ip + 15];
    d[a + 16] = bytes[ip + 16];
    d[a + 17] = bytes[ip + 17];
    d[a + 18] = bytes[ip + 18];
    d[a + 19] = bytes[ip + 19];
    u[b + R_HASH] = LITTLE_ENDIAN ? endsHash(u[w], sp, u[w + 4], dp, 6) : endsHash(word(d, a), sp, word(d, a + 16), dp, 6);
    return true;
  }

  /** The fields read() leaves alone. */
  readOther(b: number, p: PacketInfo): void {
    const u = this.u32;
    p.tcpPayload = u[b + R_TCP_PAYLOAD];
    p.ipLen = u[b + R_IPLEN];
    p.linkOut = ((u[b + R_HEAD] >>> H_LINK) & 3) - 1;
  }

  sec(b: number): number {
    return this.f64[(b + R_SEC) >> 1];
  }
  nsec(b: number): number {
    return this.u32[b + R_NSEC];
  }
  /** 0 for a decoded packet, else its SKIP_* reason. */
  skip(b: number): number {
    return this.u32[b + R_HEAD] & 0xff;
  }
  egress(b: number): boolean {
    return (this.u32[b + R_HEAD] & H_EGRESS) !== 0;
  }

  /**
   * Fills `p` from a decoded record as Decoder.decode fills it, in the fields the rules read
   * (matcher.ts, identify.ts, tables.ts; not ipLen, tcpPayload, linkOut: the record has them for
   * readOther): those every packet sets, then those of its protocol (the others keep what they
   * held, as they do after decode). Its addresses stay in the ring: p.bytes and p.words must be
   * the ring's (`u8`, `words`), set once by the caller.
   */
  read(b: number, p: PacketInfo): void {
    const u = this.u32;
    const h = u[b + R_HEAD];
    p.family = h & H_V6 ? 6 : 4;
    const a = (b + R_ADDR) * 4;
    p.srcOff = a;
    p.dstOff = a + 16;
    const pr = u[b + R_PROTO];
    const proto = pr & 0xff;
    p.proto = proto;
    const ports = u[b + R_PORTS];
    p.srcPort = ports >>> 16;
    p.dstPort = ports & 0xffff;
    p.tcpFlags = h >>> H_FLAGS;
    p.payload = u[b + R_PAYLOAD];
    p.hasTs = (h & H_HAS_TS) !== 0;
    p.echo = (h >>> H_ECHO) & 3;
    p.dns = (h >>> H_DNS) & 3;
    p.hash = u[b + R_HASH];
    if (proto === 6) {
      p.quic = 0;
      p.tsval = u[b + R_TSVAL];
      p.tsecr = u[b + R_TSECR];
      p.seq = u[b + R_SEQ];
      p.ackNum = u[b + R_ACK];
    } else {
      p.echoSeq = pr >>> 16;
      p.dnsId = u[b + R_DNS_ID];
      p.spin = (h & H_SPIN) !== 0 ? 1 : 0;
      p.fromServer = (h & H_FROM_SERVER) !== 0;
      const q = u[b + R_QUIC];
      p.quic = q & 0xff;
      p.cidLen = (q >>> 8) & 0xff;
      p.cidOff = (b + R_CID) * 4;
    }
  }
}
