/**
 * ICMP and ICMPv6: names for every type/code pathlens reports, and a zero-allocation parser for
 * ICMP error messages (outer header, quoted IP header, quoted transport header).
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../core/constants.js';
import type { Family } from './addr.js';
import { inetChecksum } from './checksum.js';
import { IpView, parseIpHeader } from './ip.js';

export { inetChecksum };
import { ERR_BAD_CHECKSUM, ERR_NOT_ERROR, ERR_TRUNCATED, OK } from './status.js';

export type ReplyKind =
  | 'time-exceeded'
  | 'unreachable'
  | 'packet-too-big'
  | 'parameter-problem'
  | 'source-quench'
  | 'redirect'
  | 'echo-reply'
  | 'udp-reply'
  | 'tcp-syn-ack'
  | 'tcp-rst'
  | 'local-error'
  | 'other';

export const ICMP_ECHOREPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETERPROB = 12;

export const ICMP6_DST_UNREACH = 1;
export const ICMP6_PACKET_TOO_BIG = 2;
export const ICMP6_TIME_EXCEEDED = 3;
export const ICMP6_PARAM_PROB = 4;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;

const UNREACH4 = [
  'net',
  'host',
  'protocol',
  'port',
  'frag-needed',
  'source-route-failed',
  'net-unknown',
  'host-unknown',
  'host-isolated',
  'net-prohibited',
  'host-prohibited',
  'net-tos',
  'host-tos',
  'admin-prohibited',
  'precedence-violation',
  'precedence-cutoff',
] as const;

const UNREACH6 = [
  'no-route',
  'admin-prohibited',
  'beyond-scope',
  'address',
  'port',
  'policy-failed',
  'reject-route',
  'source-route-error',
  'headers-too-long',
] as const;

const TIMEX = ['ttl', 'reassembly'] as const;
const PARAM4 = ['pointer', 'missing-option', 'bad-length'] as const;
const PARAM6 = ['header-field', 'next-header', 'option', 'first-fragment', 'sr-header', 'chain-too-long'] as const;
const REDIRECT4 = ['net', 'host', 'tos-net', 'tos-host'] as const;

export interface IcmpName {
  kind: ReplyKind;
  /** The code by name ('port', 'host', 'ttl', ...), or the number as text when unnamed. */
  code: string;
}

function pick(list: readonly string[], code: number): string {
  return list[code] ?? String(code);
}

/** Names an ICMP (family 4) or ICMPv6 (family 6) type and code. */
export function icmpName(family: Family, type: number, code: number): IcmpName {
  if (family === 4) {
    switch (type) {
      case ICMP_ECHOREPLY:
        return { kind: 'echo-reply', code: String(code) };
      case ICMP_DEST_UNREACH:
        return { kind: 'unreachable', code: pick(UNREACH4, code) };
      case ICMP_SOURCE_QUENCH:
        return { kind: 'source-quench', code: String(code) };
      case ICMP_REDIRECT:
        return { kind: 'redirect', code: pick(REDIRECT4, code) };
      case ICMP_TIME_EXCEEDED:
        return { kind: 'time-exceeded', code: pick(TIMEX, code) };
      case ICMP_PARAMETERPROB:
        return { kind: 'parameter-problem', code: pick(PARAM4, code) };
      default:
        return { kind: 'other', code: String(code) };
    }
  }
  switch (type) {
    case ICMP6_DST_UNREACH:
      return { kind: 'unreachable', code: pick(UNREACH6, code) };
    case ICMP6_PACKET_TOO_BIG:
      return { kind: 'packet-too-big', code: String(code) };
    case ICMP6_TIME_EXCEEDED:
      return { kind: 'time-exceeded', code: pick(TIMEX, code) };
    case ICMP6_PARAM_PROB:
      return { kind: 'parameter-problem', code: pick(PARAM6, code) };
    case ICMP6_ECHO_REPLY:
      return { kind: 'echo-reply', code: String(code) };
    default:
      return { kind: 'other', code: String(code) };
  }
}

/** True for the ICMP types that quote the offending packet. */
export function isIcmpError(family: Family, type: number): boolean {
  return family === 4
    ? type === ICMP_DEST_UNREACH || type === ICMP_TIME_EXCEEDED || type === ICMP_PARAMETERPROB || type === ICMP_SOURCE_QUENCH || type === ICMP_REDIRECT
    : type >= 1 && type <= 4;
}

/** A parsed ICMP error message; reuse one per receive loop. */
export class IcmpErrorView {
  status = OK;
  type = 0;
  code = 0;
  checksum = 0;
  /** The 4 bytes after type/code/checksum (pointer, MTU, gateway, RFC 4884 length...). */
  rest = 0;
  /** RFC 4884 "length" of the original datagram in 32-bit words (0: not given). */
  rfc4884Words = 0;
  quotedOff = 0;
  quotedLen = 0;
  readonly inner = new IpView();
  /** Transport fields of the quoted packet (when quoted far enough; -1 otherwise). */
  srcPort = -1;
  dstPort = -1;
  echoId = -1;
  echoSeq = -1;
  /** Offset and length of the quoted transport payload (after the UDP/ICMP header). */
  innerPayloadOff = 0;
  innerPayloadLen = 0;
}

/**
 * Parses an ICMP (family 4, checksum verified) or ICMPv6 (checksum not verified here: it needs the
 * pseudo-header) error message at bytes[off, off+len); dv is a DataView over the same bytes. Returns OK, ERR_TRUNCATED, ERR_NOT_ERROR (an
 * informational type), ERR_BAD_CHECKSUM, or the quoted IP header's error.
 */
export function parseIcmpError(
  bytes: Uint8Array,
  dv: DataView,
  off: number,
  len: number,
  family: Family,
  out: IcmpErrorView,
): number {
  out.srcPort = out.dstPort = out.echoId = out.echoSeq = -1;
  out.innerPayloadOff = out.innerPayloadLen = 0;
  out.quotedOff = out.quotedLen = 0;
  if (off < 0 || len < 8 || off + len > bytes.length) return (out.status = ERR_TRUNCATED);
  out.type = bytes[off];
  out.code = bytes[off + 1];
  out.checksum = dv.getUint16(off + 2, false);
  out.rest = dv.getUint32(off + 4, false);
  if (!isIcmpError(family, out.type)) return (out.status = ERR_NOT_ERROR);
  if (family === 4 && inetChecksum(bytes, off, len) !== 0) return (out.status = ERR_BAD_CHECKSUM);
  // RFC 4884: IPv4 byte 5, IPv6 byte 4 carry the original datagram length (32-bit words) for the
  // types that allow extensions.
  out.rfc4884Words = family === 4 ? bytes[off + 5] : bytes[off + 4];
  if (family === 4 && out.type !== ICMP_DEST_UNREACH && out.type !== ICMP_TIME_EXCEEDED && out.type !== ICMP_PARAMETERPROB) out.rfc4884Words = 0;
  if (family === 6 && out.type !== ICMP6_DST_UNREACH && out.type !== ICMP6_TIME_EXCEEDED) out.rfc4884Words = 0;
  out.quotedOff = off + 8;
  out.quotedLen = len - 8;
  const s = parseIpHeader(bytes, out.quotedOff, out.quotedLen, out.inner, true);
  if (s !== OK) return (out.status = s);
  const l4 = out.inner.payloadOff;
  const avail = out.quotedOff + out.quotedLen - l4;
  const p = out.inner.proto;
  if ((p === IPPROTO_UDP || p === IPPROTO_TCP) && avail >= 4) {
    out.srcPort = dv.getUint16(l4, false);
    out.dstPort = dv.getUint16(l4 + 2, false);
  }
  if ((p === IPPROTO_ICMP || p === IPPROTO_ICMPV6) && avail >= 8) {
    out.echoId = dv.getUint16(l4 + 4, false);
    out.echoSeq = dv.getUint16(l4 + 6, false);
  }
  const hdr = p === IPPROTO_TCP ? 20 : 8;
  if (avail > hdr) {
    out.innerPayloadOff = l4 + hdr;
    out.innerPayloadLen = avail - hdr;
  }
  return (out.status = OK);
}
