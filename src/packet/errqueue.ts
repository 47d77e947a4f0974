/**
 * The socket error queue: what recvmsg(MSG_ERRQUEUE) hands back for an ICMP error or a local
 * error, decoded from the control bytes into a reused ErrqueueRecord.
 *
 *   struct sock_extended_err {
 *     u32 ee_errno; u8 ee_origin; u8 ee_type; u8 ee_code; u8 ee_pad;
 *     u32 ee_info;  u32 ee_data;             // 16 bytes
 *   };                                       // then SO_EE_OFFENDER: a sockaddr (AF_UNSPEC for none)
 *
 * It arrives as cmsg (SOL_IP, IP_RECVERR) or (SOL_IPV6, IPV6_RECVERR). The kernel timestamp of the
 * ICMP error arrives beside it as (SOL_SOCKET, SCM_TIMESTAMPNS) when SO_TIMESTAMPNS is on.
 *
 * With SO_TIMESTAMPING's send timestamps, the queue also holds one message per packet sent: an
 * extended error with ee_errno ENOMSG, origin SO_EE_ORIGIN_TIMESTAMPING, ee_info the kind of stamp
 * (SCM_TSTAMP_SND) and ee_data the packet's id, beside (SOL_SOCKET, SCM_TIMESTAMPING).
 */
import {
  IPV6_PKTINFO,
  IP_PKTINFO,
  IPPROTO_IPV6,
  IPV6_RECVERR,
  IP_RECVERR,
  SCM_TIMESTAMPING,
  SCM_TIMESTAMPNS,
  SOCK_EXTENDED_ERR_LEN,
  SOL_IP,
  SOL_SOCKET,
} from '../core/constants.js';
import { SockaddrView, readSockaddr } from './addr.js';
import { CmsgCursor } from './cmsg.js';
import { ERR_BAD_LENGTH, ERR_MISSING, OK } from './status.js';

export class ErrqueueRecord {
  /** OK when an extended error was found; ERR_* otherwise (for the walk or the error itself). */
  status = ERR_MISSING;
  errno = 0;
  origin = 0;
  icmpType = 0;
  icmpCode = 0;
  info = 0;
  data = 0;
  /** The offender (the router or host that sent the ICMP error); family 0 when there is none. */
  readonly offender = new SockaddrView();
  /** Kernel receive time of the error (CLOCK_REALTIME), when present. */
  hasTime = false;
  sec = 0;
  nsec = 0;
  /** Interface the message arrived on (IP_PKTINFO / IPV6_PKTINFO), 0 when not reported. */
  ifindex = 0;
  /**
   * The software timestamp of SCM_TIMESTAMPING (ts[0], CLOCK_REALTIME): for a send timestamp
   * (origin SO_EE_ORIGIN_TIMESTAMPING), when the device took the packet.
   */
  hasSwTime = false;
  swSec = 0;
  swNsec = 0;
  private readonly ts = { sec: 0, nsec: 0 };

  clear(): void {
    this.status = ERR_MISSING;
    this.errno = this.origin = this.icmpType = this.icmpCode = this.info = this.data = 0;
    this.offender.family = 0;
    this.hasTime = false;
    this.sec = this.nsec = 0;
    this.ifindex = 0;
    this.hasSwTime = false;
    this.swSec = this.swNsec = 0;
  }

  /** Reads ts[0] of a struct scm_timestamping at off. */
  readSw(dv: DataView, off: number): void {
    readTimespec(dv, off, this.ts);
    this.hasSwTime = (this.ts.sec !== 0 || this.ts.nsec !== 0) && this.ts.nsec >= 0 && this.ts.nsec < 1e9;
    this.swSec = this.ts.sec;
    this.swNsec = this.ts.nsec;
  }
}

/** Reads a struct timespec (two little-endian int64) at off as exact doubles. */
export function readTimespec(dv: DataView, off: number, out: { sec: number; nsec: number }): void {
  out.sec = dv.getUint32(off, true) + dv.getInt32(off + 4, true) * 0x100000000;
  out.nsec = dv.getUint32(off + 8, true) + dv.getInt32(off + 12, true) * 0x100000000;
}

/**
 * Parses the control bytes dv[start, end) of one error-queue message into rec.
 * Returns rec.status: OK, ERR_MISSING (no extended error), ERR_BAD_LENGTH (short
 * sock_extended_err), or the walk's error for malformed control bytes. A present but malformed
 * offender leaves offender.family at 0 and does not fail the record (the error itself is valid).
 */
export function parseErrqueue(dv: DataView, start: number, end: number, rec: ErrqueueRecord, cur: CmsgCursor): number {
  rec.clear();
  cur.reset(dv, start, end);
  let status = ERR_MISSING;
  while (cur.next()) {
    if (cur.level === SOL_SOCKET && cur.type === SCM_TIMESTAMPNS) {
      if (cur.dataLen >= 16) {
        readTimespec(dv, cur.dataOff, rec);
        rec.hasTime = rec.nsec >= 0 && rec.nsec < 1e9;
      }
      continue;
    }
    if (cur.level === SOL_SOCKET && cur.type === SCM_TIMESTAMPING) {
      // struct scm_timestamping { struct timespec ts[3]; }: software, (deprecated), hardware.
      if (cur.dataLen >= 48) rec.readSw(dv, cur.dataOff);
      continue;
    }
    if (cur.level === SOL_IP && cur.type === IP_PKTINFO) {
      // struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; }
      if (cur.dataLen >= 12) rec.ifindex = dv.getInt32(cur.dataOff, true);
      continue;
    }
    if (cur.level === IPPROTO_IPV6 && cur.type === IPV6_PKTINFO) {
      // struct in6_pktinfo { struct in6_addr ipi6_addr; int ipi6_ifindex; }
      if (cur.dataLen >= 20) rec.ifindex = dv.getInt32(cur.dataOff + 16, true);
      continue;
    }
    const isErr = (cur.level === SOL_IP && cur.type === IP_RECVERR) || (cur.level === IPPROTO_IPV6 && cur.type === IPV6_RECVERR);
    if (!isErr) continue;
    if (cur.dataLen < SOCK_EXTENDED_ERR_LEN) {
      status = ERR_BAD_LENGTH;
      continue;
    }
    const o = cur.dataOff;
    rec.errno = dv.getUint32(o, true);
    rec.origin = dv.getUint8(o + 4);
    rec.icmpType = dv.getUint8(o + 5);
    rec.icmpCode = dv.getUint8(o + 6);
    rec.info = dv.getUint32(o + 8, true);
    rec.data = dv.getUint32(o + 12, true);
    const offLen = cur.dataLen - SOCK_EXTENDED_ERR_LEN;
    if (offLen > 0) {
      const s = readSockaddr(dv, o + SOCK_EXTENDED_ERR_LEN, offLen, rec.offender);
      if (s !== OK) rec.offender.family = 0; // AF_UNSPEC (local error) or a short sockaddr
    }
    status = OK;
  }
  if (cur.status !== OK && status !== OK) status = cur.status;
  rec.status = status;
  return status;
}
