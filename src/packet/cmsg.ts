/**
 * Control messages (struct cmsghdr on LP64): a bounds-checked walker over received control bytes
 * and builders for the ones pathlens sends. No allocation per message.
 *
 *   struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; unsigned char data[]; }
 *   data starts at CMSG_HDR_LEN (16); each message is padded to CMSG_ALIGN (8).
 */
import {
  CMSG_ALIGN,
  CMSG_HDR_LEN,
  IPPROTO_IPV6,
  IPV6_HOPLIMIT,
  IP_TTL,
  SCM_TS_OPT_ID,
  SOL_IP,
  SOL_SOCKET,
  SO_TIMESTAMPNS,
} from '../core/constants.js';
import { ERR_BAD_LENGTH, ERR_TRUNCATED, OK } from './status.js';

export function cmsgAlign(n: number): number {
  return (n + CMSG_ALIGN - 1) & ~(CMSG_ALIGN - 1);
}

/** CMSG_SPACE(n): bytes one control message with n data bytes takes. */
export function cmsgSpace(n: number): number {
  return CMSG_HDR_LEN + cmsgAlign(n);
}

/** Walks the control messages in dv[start, end). Reuse one cursor; call reset() per buffer. */
export class CmsgCursor {
  private dv!: DataView;
  private off = 0;
  private end = 0;
  level = 0;
  type = 0;
  dataOff = 0;
  dataLen = 0;
  /** OK while walking; ERR_* when the walk stopped at malformed bytes. */
  status = OK;

  reset(dv: DataView, start: number, end: number): this {
    this.dv = dv;
    this.off = start;
    this.end = Math.min(end, dv.byteLength);
    this.status = OK;
    return this;
  }

  /** Advances to the next message; false at the end or on malformed bytes (see status). */
  next(): boolean {
    const { dv, off, end } = this;
    if (this.status !== OK || off >= end) return false;
    if (end - off < CMSG_HDR_LEN) {
      this.status = ERR_TRUNCATED;
      return false;
    }
    const lenLo = dv.getUint32(off, true);
    const lenHi = dv.getUint32(off + 4, true);
    if (lenHi !== 0 || lenLo < CMSG_HDR_LEN) {
      this.status = ERR_BAD_LENGTH;
      return false;
    }
    if (lenLo > end - off) {
      this.status = ERR_TRUNCATED;
      return false;
    }
    this.level = dv.getInt32(off + 8, true);
    this.type = dv.getInt32(off + 12, true);
    this.dataOff = off + CMSG_HDR_LEN;
    this.dataLen = lenLo - CMSG_HDR_LEN;
    this.off = off + cmsgAlign(lenLo);
    return true;
  }
}

/** Writes one control message header at buf[off]; returns the offset of its data. */
export function writeCmsgHeader(dv: DataView, off: number, level: number, type: number, dataLen: number): number {
  const space = cmsgSpace(dataLen);
  if (off < 0 || off + space > dv.byteLength) throw new RangeError('control message does not fit');
  dv.setUint32(off, CMSG_HDR_LEN + dataLen, true);
  dv.setUint32(off + 4, 0, true);
  dv.setInt32(off + 8, level, true);
  dv.setInt32(off + 12, type, true);
  return off + CMSG_HDR_LEN;
}

export const TTL_CMSG_SPACE = cmsgSpace(4);
export const TS_ID_CMSG_SPACE = cmsgSpace(4);

/**
 * Writes the per-packet TTL (IPv4: IP_TTL) or hop limit (IPv6: IPV6_HOPLIMIT) control message, so
 * that one socket can send every TTL in one sendmmsg batch. Returns the bytes used.
 */
export function writeTtlCmsg(dv: DataView, off: number, family: 4 | 6, ttl: number): number {
  const data = family === 4 ? writeCmsgHeader(dv, off, SOL_IP, IP_TTL, 4) : writeCmsgHeader(dv, off, IPPROTO_IPV6, IPV6_HOPLIMIT, 4);
  dv.setInt32(data, ttl, true);
  dv.setUint32(data + 4, 0, true); // padding to CMSG_ALIGN
  return TTL_CMSG_SPACE;
}

/**
 * Writes (SOL_SOCKET, SCM_TS_OPT_ID): the id the kernel puts in this packet's send timestamp
 * (ee_data), instead of the socket's running count. Returns the bytes used.
 */
export function writeTsIdCmsg(dv: DataView, off: number, id: number): number {
  const data = writeCmsgHeader(dv, off, SOL_SOCKET, SCM_TS_OPT_ID, 4);
  dv.setUint32(data, id >>> 0, true);
  dv.setUint32(data + 4, 0, true); // padding to CMSG_ALIGN
  return TS_ID_CMSG_SPACE;
}

/**
 * Reads SCM_TIMESTAMPNS (SOL_SOCKET) from a message's control bytes dv[off, off+len) into out;
 * false when absent. The two 64-bit fields are read as 32-bit halves: no BigInt (an allocation)
 * per message.
 */
export function readTimestampNs(cur: CmsgCursor, dv: DataView, off: number, len: number, out: { sec: number; nsec: number }): boolean {
  cur.reset(dv, off, off + len);
  while (cur.next()) {
    if (cur.level === SOL_SOCKET && cur.type === SO_TIMESTAMPNS && cur.dataLen >= 16) {
      out.sec = dv.getUint32(cur.dataOff, true) + dv.getInt32(cur.dataOff + 4, true) * 4294967296;
      out.nsec = dv.getUint32(cur.dataOff + 8, true);
      return true;
    }
  }
  return false;
}
