/**
 * TCP headers: a bounds-checked, zero-allocation parser (ports, sequence numbers, flags, and the
 * timestamp option that passive RTT needs), the checksum over the IPv4/IPv6 pseudo-header, and the
 * SYN that raw TCP probes send.
 */
import { IPPROTO_TCP } from '../core/constants.js';
import { inetChecksum, onesSum } from './checksum.js';
import { ERR_BAD_LENGTH, ERR_TRUNCATED, OK } from './status.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

const OPT_EOL = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_TIMESTAMP = 8;

export class TcpView {
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  /** Header length in bytes (data offset * 4). */
  headerLen = 0;
  flags = 0;
  window = 0;
  /** Timestamp option (RFC 7323), when present and well formed. */
  hasTimestamp = false;
  tsval = 0;
  tsecr = 0;
  /** Payload bytes present after the header (within the given length). */
  payloadLen = 0;
}

/**
 * Parses the TCP header at bytes[off, off+len). With `quoted` only the first 8 bytes (ports and
 * sequence number, what an ICMP error must quote) are required; the rest is read when present.
 * Options are walked with every length checked; a malformed option list is ERR_BAD_LENGTH.
 */
export function parseTcpHeader(bytes: Uint8Array, off: number, len: number, out: TcpView, quoted: boolean): number {
  out.hasTimestamp = false;
  out.tsval = out.tsecr = 0;
  out.ack = out.flags = out.window = out.headerLen = out.payloadLen = 0;
  if (off < 0 || len < 0 || off + len > bytes.length) return ERR_TRUNCATED;
  if (len < (quoted ? 8 : 20)) return ERR_TRUNCATED;
  out.srcPort = (bytes[off] << 8) | bytes[off + 1];
  out.dstPort = (bytes[off + 2] << 8) | bytes[off + 3];
  out.seq = ((bytes[off + 4] << 24) | (bytes[off + 5] << 16) | (bytes[off + 6] << 8) | bytes[off + 7]) >>> 0;
  if (len < 20) return OK; // a short quote: ports and sequence only
  out.ack = ((bytes[off + 8] << 24) | (bytes[off + 9] << 16) | (bytes[off + 10] << 8) | bytes[off + 11]) >>> 0;
  const hl = (bytes[off + 12] >> 4) * 4;
  out.flags = bytes[off + 13];
  out.window = (bytes[off + 14] << 8) | bytes[off + 15];
  if (hl < 20) return ERR_BAD_LENGTH;
  if (hl > len) return quoted ? OK : ERR_TRUNCATED;
  out.headerLen = hl;
  out.payloadLen = len - hl;
  // Linux's usual options, NOP NOP TIMESTAMP and nothing else: what the walk below finds, read at once.
  if (hl === 32 && bytes[off + 20] === OPT_NOP && bytes[off + 21] === OPT_NOP && bytes[off + 22] === OPT_TIMESTAMP && bytes[off + 23] === 10) {
    out.hasTimestamp = true;
    out.tsval = ((bytes[off + 24] << 24) | (bytes[off + 25] << 16) | (bytes[off + 26] << 8) | bytes[off + 27]) >>> 0;
    out.tsecr = ((bytes[off + 28] << 24) | (bytes[off + 29] << 16) | (bytes[off + 30] << 8) | bytes[off + 31]) >>> 0;
    return OK;
  }
  let i = off + 20;
  const end = off + hl;
  while (i < end) {
    const kind = bytes[i];
    if (kind === OPT_EOL) break;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return ERR_BAD_LENGTH;
    const olen = bytes[i + 1];
    if (olen < 2 || i + olen > end) return ERR_BAD_LENGTH;
    if (kind === OPT_TIMESTAMP) {
      if (olen !== 10) return ERR_BAD_LENGTH;
      out.hasTimestamp = true;
      out.tsval = ((bytes[i + 2] << 24) | (bytes[i + 3] << 16) | (bytes[i + 4] << 8) | bytes[i + 5]) >>> 0;
      out.tsecr = ((bytes[i + 6] << 24) | (bytes[i + 7] << 16) | (bytes[i + 8] << 8) | bytes[i + 9]) >>> 0;
    }
    i += olen;
  }
  return OK;
}

/**
 * The pseudo-header part of a TCP checksum (RFC 793 for IPv4, RFC 8200 section 8.1 for IPv6):
 * source, destination, protocol and segment length, as a folded sum to pass to tcpChecksum.
 */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, segmentLen: number): number {
  let sum = onesSum(src, 0, src.length, 0);
  sum = onesSum(dst, 0, dst.length, sum);
  sum += IPPROTO_TCP + (segmentLen >>> 16) + (segmentLen & 0xffff);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The TCP checksum of the segment at buf[off, off+len) (its checksum field counted as is). */
export function tcpChecksum(buf: Uint8Array, off: number, len: number, pseudoSum: number): number {
  return inetChecksum(buf, off, len, pseudoSum);
}

/** Length of the SYN writeSyn builds: a 20-byte header and an MSS option. */
export const SYN_LEN = 24;

/**
 * Writes a SYN (with an MSS option) at buf[off, off+SYN_LEN) and fills in its checksum.
 * `pseudoSum` is pseudoHeaderSum(src, dst, SYN_LEN).
 */
export function writeSyn(buf: Uint8Array, off: number, srcPort: number, dstPort: number, seq: number, mss: number, pseudoSum: number): void {
  buf[off] = srcPort >> 8;
  buf[off + 1] = srcPort & 0xff;
  buf[off + 2] = dstPort >> 8;
  buf[off + 3] = dstPort & 0xff;
  buf[off + 4] = seq >>> 24;
  buf[off + 5] = (seq >>> 16) & 0xff;
  buf[off + 6] = (seq >>> 8) & 0xff;
  buf[off + 7] = seq & 0xff;
  buf.fill(0, off + 8, off + 12); // ack
  buf[off + 12] = (SYN_LEN / 4) << 4;
  buf[off + 13] = TCP_SYN;
  buf[off + 14] = 0xfa; // window 64240
  buf[off + 15] = 0xf0;
  buf[off + 16] = 0; // checksum, below
  buf[off + 17] = 0;
  buf[off + 18] = 0; // urgent pointer
  buf[off + 19] = 0;
  buf[off + 20] = OPT_MSS;
  buf[off + 21] = 4;
  buf[off + 22] = mss >> 8;
  buf[off + 23] = mss & 0xff;
  const ck = tcpChecksum(buf, off, SYN_LEN, pseudoSum);
  buf[off + 16] = ck >> 8;
  buf[off + 17] = ck & 0xff;
}
