/**
 * pcap and pcapng readers for `pping --read`: streaming (a few MiB in memory whatever the file
 * size), both byte orders, microsecond and nanosecond pcap, pcapng sections with several
 * interfaces, if_tsresol / if_tsoffset, and the packet direction of epb_flags. Records are handed
 * out in place (no copy, no allocation per packet). Anything malformed or cut short is a
 * PathlensError naming the file and the byte offset; nothing is guessed.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { PathlensError } from '../core/errors.js';

const CHUNK = 4 << 20;
/** The path that names standard input. */
export const STDIN = '-';
/** Something to wait on for a millisecond. */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
/** Latest timestamp accepted: the end of year 9999 (any later one is a broken file, not a capture). */
const MAX_SEC = 253402300799;
/** Largest |if_tsoffset| accepted, seconds (about 136 years). */
const MAX_TSOFFSET = 2 ** 32;
/** Largest record accepted (pcapng blocks and pcap records alike). */
const MAX_RECORD = 16 << 20;

const PCAP_US = 0xa1b2c3d4;
const PCAP_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;
const BT_IDB = 1;
const BT_OPB = 2;
const BT_SPB = 3;
const BT_EPB = 6;

/** One packet, valid until the next call to next(). */
export class CaptureRecord {
  data: Uint8Array = new Uint8Array(0);
  off = 0;
  /** Bytes captured (present in data). */
  len = 0;
  /** Bytes the packet had on the wire. */
  origLen = 0;
  sec = 0;
  nsec = 0;
  linktype = 0;
  /** true: outbound, false: inbound, null: the file does not say. */
  egress: boolean | null = null;
}

interface Iface {
  linktype: number;
  /** Timestamp units per second (10^k or 2^k, at most 2^30). */
  units: number;
  /** Multiplier from a remainder in units to ns (exact for 10^k; rounded for 2^k). */
  nsPerUnit: number;
  offsetSec: number;
}

/** q, r of the unsigned 64-bit hi:lo divided by d (d < 2^31): exact, by 16-bit limbs. */
function divmod64(hi: number, lo: number, d: number, out: Float64Array): void {
  let cur = hi >>> 16;
  let q = Math.floor(cur / d);
  let r = cur - q * d;
  cur = r * 65536 + (hi & 0xffff);
  let qd = Math.floor(cur / d);
  r = cur - qd * d;
  q = q * 65536 + qd;
  cur = r * 65536 + (lo >>> 16);
  qd = Math.floor(cur / d);
  r = cur - qd * d;
  q = q * 65536 + qd;
  cur = r * 65536 + (lo & 0xffff);
  qd = Math.floor(cur / d);
  r = cur - qd * d;
  out[0] = q * 65536 + qd;
  out[1] = r;
}

export class CaptureReader {
  readonly path: string;
  readonly format: 'pcap' | 'pcapng';
  private fd: number;
  private buf: Uint8Array;
  private dv: DataView;
  private start = 0;
  private end = 0;
  /** File offset of buf[0]. */
  private base = 0;
  private eof = false;
  private le = true;
  private nsRes = false;
  private pcapLinktype = 0;
  private ifaces: Iface[] = [];
  private readonly qr = new Float64Array(2);
  /** Blocks or records without a timestamp (pcapng simple packets), skipped. */
  untimed = 0;

  /** Reads from fd `chunk` bytes at a time, or (fd -1) from `bytes`, the whole file. */
  private constructor(path: string, fd: number, bytes?: Uint8Array, chunk = CHUNK) {
    this.path = path;
    this.fd = fd;
    this.buf = bytes ? bytes.slice() : new Uint8Array(chunk);
    this.dv = new DataView(this.buf.buffer);
    if (bytes) {
      this.end = bytes.length;
      this.eof = true;
    }
    if (!this.ensure(4)) throw this.bad(0, 'empty or shorter than any capture header');
    const m = this.dv.getUint32(0, false);
    if (m === PCAPNG_SHB) {
      this.format = 'pcapng';
      return;
    }
    this.format = 'pcap';
    const mle = this.dv.getUint32(0, true);
    if (m === PCAP_US || m === PCAP_NS) this.le = false;
    else if (mle === PCAP_US || mle === PCAP_NS) this.le = true;
    else throw this.bad(0, `not a pcap or pcapng file (magic 0x${m.toString(16).padStart(8, '0')})`);
    this.nsRes = (this.le ? mle : m) === PCAP_NS;
    if (!this.ensure(24)) throw this.bad(0, 'pcap file header cut short (24 bytes needed)');
    const major = this.u16(4);
    if (major !== 2) throw this.bad(4, `pcap version ${major}.${this.u16(6)} (only 2.x exists)`);
    this.pcapLinktype = this.u32(20) & 0xffff;
    this.start = 24;
  }

  /**
   * Opens a capture file, reading `chunk` bytes at a time (a record may still grow the buffer).
   * `-` is standard input, as for tcpdump -r and libpcap.
   */
  static open(path: string, chunk = CHUNK): CaptureReader {
    if (path === STDIN) return new CaptureReader('standard input', 0, undefined, chunk);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new PathlensError('ERR_USAGE', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      if (fstatSync(fd).isDirectory()) throw new PathlensError('ERR_USAGE', `cannot read ${path}: it is a directory, not a capture file`);
      return new CaptureReader(path, fd, undefined, chunk);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** A capture already in memory (`name` stands for the file in messages): the fuzzer's way in. */
  static fromBytes(name: string, bytes: Uint8Array): CaptureReader {
    return new CaptureReader(name, -1, bytes);
  }

  close(): void {
    if (this.fd > 0) closeSync(this.fd); // standard input (0) stays open
    this.fd = -1;
  }

  private bad(fileOff: number, what: string): PathlensError {
    return new PathlensError('ERR_PARSE', `${this.path}: ${what} (at byte ${fileOff})`);
  }

  private u16(i: number): number {
    return this.dv.getUint16(i, this.le);
  }
  private u32(i: number): number {
    return this.dv.getUint32(i, this.le);
  }

  /** Makes n bytes available from `start`; false if the file ends first. */
  private ensure(n: number): boolean {
    if (this.end - this.start >= n) return true;
    if (n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(n, this.buf.length * 2));
      bigger.set(this.buf.subarray(this.start, this.end));
      this.buf = bigger;
      this.dv = new DataView(bigger.buffer);
    } else {
      this.buf.copyWithin(0, this.start, this.end);
    }
    this.base += this.start;
    this.end -= this.start;
    this.start = 0;
    while (this.end < n && !this.eof) {
      let got: number;
      try {
        got = readSync(this.fd, this.buf, this.end, this.buf.length - this.end, null);
      } catch (e) {
        // Standard input another process set non-blocking: wait for data, as a blocking read would.
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
          Atomics.wait(PAUSE, 0, 0, 1);
          continue;
        }
        throw new PathlensError('ERR_PARSE', `cannot read ${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (at byte ${this.base + this.end})`);
      }
      if (got === 0) this.eof = true;
      this.end += got;
    }
    return this.end - this.start >= n;
  }

  /** Fills rec with the next packet; false at the end of the file. */
  next(rec: CaptureRecord): boolean {
    return this.format === 'pcap' ? this.nextPcap(rec) : this.nextPcapng(rec);
  }

  private nextPcap(rec: CaptureRecord): boolean {
    if (!this.ensure(16)) {
      if (this.end === this.start) return false;
      throw this.bad(this.base + this.start, `record header cut short (${this.end - this.start} of 16 bytes)`);
    }
    const s = this.start;
    const incl = this.u32(s + 8);
    if (incl > MAX_RECORD) throw this.bad(this.base + s, `record claims ${incl} bytes`);
    if (!this.ensure(16 + incl)) throw this.bad(this.base + this.start, `record cut short (${this.end - this.start - 16} of ${incl} bytes)`);
    const h = this.start;
    const frac = this.u32(h + 4);
    if (frac >= (this.nsRes ? 1e9 : 1e6)) throw this.bad(this.base + h + 4, `fraction of a second out of range (${frac})`);
    rec.sec = this.u32(h);
    rec.nsec = this.nsRes ? frac : frac * 1000;
    rec.len = incl;
    rec.origLen = this.u32(h + 12);
    rec.data = this.buf;
    rec.off = h + 16;
    rec.linktype = this.pcapLinktype;
    rec.egress = null;
    this.start = h + 16 + incl;
    return true;
  }

  private nextPcapng(rec: CaptureRecord): boolean {
    for (;;) {
      if (!this.ensure(12)) {
        if (this.end === this.start) return false;
        throw this.bad(this.base + this.start, `block header cut short (${this.end - this.start} of 12 bytes)`);
      }
      let s = this.start;
      const rawType = this.dv.getUint32(s, false);
      if (rawType === PCAPNG_SHB) {
        // Section header: its byte-order magic decides how everything up to the next one reads.
        const bom = this.dv.getUint32(s + 8, true);
        if (bom === PCAPNG_BOM) this.le = true;
        else if (this.dv.getUint32(s + 8, false) === PCAPNG_BOM) this.le = false;
        else throw this.bad(this.base + s + 8, 'section header without a byte-order magic');
        this.ifaces = [];
      }
      const type = this.u32(s);
      const total = this.u32(s + 4);
      if (total < 12 || total % 4 !== 0 || total > MAX_RECORD) throw this.bad(this.base + s + 4, `block length ${total} (must be a multiple of 4, at least 12)`);
      if (!this.ensure(total)) throw this.bad(this.base + this.start, `block cut short (${this.end - this.start} of ${total} bytes)`);
      s = this.start;
      if (this.u32(s + total - 4) !== total) throw this.bad(this.base + s + total - 4, 'block trailer length differs from its header');
      this.start = s + total;
      const body = s + 8;
      const bodyLen = total - 12;
      switch (type) {
        case PCAPNG_SHB:
          if (bodyLen < 16) throw this.bad(this.base + s, 'section header too short');
          if (this.u16(body + 4) !== 1) throw this.bad(this.base + body + 4, `pcapng version ${this.u16(body + 4)}.${this.u16(body + 6)} (only 1.x exists)`);
          break;
        case BT_IDB:
          this.ifaces.push(this.readIdb(body, bodyLen));
          break;
        case BT_EPB:
        case BT_OPB: {
          const epb = type === BT_EPB;
          if (bodyLen < 20) throw this.bad(this.base + s, 'packet block too short');
          const ifIdx = epb ? this.u32(body) : this.u16(body);
          const iface = this.ifaces[ifIdx];
          if (!iface) throw this.bad(this.base + body, `packet for interface ${ifIdx}, which no interface block described`);
          const cap = this.u32(body + 12);
          // Plain arithmetic: cap is up to 2^32 - 1, where 32-bit rounding would wrap.
          const pad = cap + ((4 - (cap % 4)) % 4);
          if (pad > bodyLen - 20) throw this.bad(this.base + body + 12, `captured length ${cap} runs past the block`);
          divmod64(this.u32(body + 4), this.u32(body + 8), iface.units, this.qr);
          rec.sec = this.qr[0] + iface.offsetSec;
          if (!(rec.sec >= 0 && rec.sec <= MAX_SEC)) throw this.bad(this.base + body + 4, `timestamp out of range (${rec.sec} s since 1970${iface.offsetSec ? `, with if_tsoffset ${iface.offsetSec} s` : ''})`);
          rec.nsec = Math.min(999999999, Math.round(this.qr[1] * iface.nsPerUnit));
          rec.len = cap;
          rec.origLen = this.u32(body + 16);
          rec.data = this.buf;
          rec.off = body + 20;
          rec.linktype = iface.linktype;
          rec.egress = epb ? this.direction(body + 20 + pad, bodyLen - 20 - pad) : null;
          return true;
        }
        case BT_SPB:
          this.untimed++;
          break;
        default:
          break; // name resolution, statistics, custom blocks: nothing pping needs
      }
    }
  }

  /** Options at [off, off+len): calls fn(code, valueOff, valueLen) for each until opt_endofopt. */
  private options(off: number, len: number, fn: (code: number, v: number, n: number) => void): void {
    let p = off;
    const end = off + len;
    while (end - p >= 4) {
      const code = this.u16(p);
      const n = this.u16(p + 2);
      if (code === 0) return;
      const padded = (n + 3) & ~3;
      if (p + 4 + padded > end) throw this.bad(this.base + p, `option ${code} runs past its block`);
      fn(code, p + 4, n);
      p += 4 + padded;
    }
  }

  private readIdb(body: number, len: number): Iface {
    if (len < 8) throw this.bad(this.base + body, 'interface block too short');
    const iface: Iface = { linktype: this.u16(body), units: 1e6, nsPerUnit: 1000, offsetSec: 0 };
    this.options(body + 8, len - 8, (code, v, n) => {
      if (code === 9 && n >= 1) {
        const r = this.buf[v];
        const exp = r & 0x7f;
        if (r & 0x80) {
          if (exp > 30) throw this.bad(this.base + v, `time resolution 2^-${exp} is finer than supported (2^-30)`);
          iface.units = 2 ** exp;
          iface.nsPerUnit = 1e9 / iface.units;
        } else {
          if (exp > 9) throw this.bad(this.base + v, `time resolution 10^-${exp} is finer than supported (ns)`);
          iface.units = 10 ** exp;
          iface.nsPerUnit = 10 ** (9 - exp);
        }
      } else if (code === 14 && n >= 8) {
        // if_tsoffset is a signed 64-bit count of seconds.
        const off = Number(this.dv.getBigInt64(v, this.le));
        if (Math.abs(off) > MAX_TSOFFSET) throw this.bad(this.base + v, `if_tsoffset ${off} s is out of range (at most ${MAX_TSOFFSET} s either way)`);
        iface.offsetSec = off;
      }
    });
    return iface;
  }

  /** epb_flags direction: true outbound, false inbound, null unknown (a loop: no closure per packet). */
  private direction(off: number, len: number): boolean | null {
    let p = off;
    const end = off + len;
    while (end - p >= 4) {
      const code = this.u16(p);
      const n = this.u16(p + 2);
      if (code === 0) break;
      const padded = (n + 3) & ~3;
      if (p + 4 + padded > end) throw this.bad(this.base + p, `option ${code} runs past its block`);
      if (code === 2 && n >= 4) {
        const d = this.u32(p + 4) & 3;
        return d === 2 ? true : d === 1 ? false : null;
      }
      p += 4 + padded;
    }
    return null;
  }
}
