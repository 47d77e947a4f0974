/**
 * IP addresses as bytes and as text, and the sockaddr structures the kernel exchanges.
 * Text formatting allocates (it is for events); comparisons work on bytes and do not.
 */
import { isIPv4, isIPv6 } from 'node:net';
import {
  AF_INET,
  AF_INET6,
  AF_PACKET,
  ETH_P_ALL,
  SOCKADDR_IN6_LEN,
  SOCKADDR_IN_LEN,
  SOCKADDR_LL_LEN,
} from '../core/constants.js';
import { PathlensError } from '../core/errors.js';
import { ERR_BAD_FAMILY, ERR_TRUNCATED, OK } from './status.js';

export type Family = 4 | 6;

/** Parses a literal IPv4 or IPv6 address into 4 or 16 bytes. Throws ERR_USAGE on bad input. */
export function parseIp(text: string): Uint8Array {
  if (isIPv4(text)) {
    const out = new Uint8Array(4);
    v4Into(text, out, 0);
    return out;
  }
  if (isIPv6(text)) {
    return parseIpv6(text);
  }
  throw new PathlensError('ERR_USAGE', `not an IP address: ${JSON.stringify(text)}`);
}

/**
 * Parses a literal IPv4 or IPv6 address into out[off..] (4 or 16 bytes); returns its family.
 * IPv4 allocates nothing (a hundred thousand targets' addresses are parsed at start). Throws
 * ERR_USAGE on bad input.
 */
export function parseIpInto(text: string, out: Uint8Array, off: number): Family {
  if (isIPv4(text)) {
    v4Into(text, out, off);
    return 4;
  }
  out.set(parseIp(text), off);
  return 6;
}

/** A valid dotted quad into out[off, off + 4), by hand: a hundred thousand targets' addresses are parsed at start. */
function v4Into(text: string, out: Uint8Array, off: number): void {
  let k = off;
  let v = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      out[k++] = v;
      v = 0;
    } else v = v * 10 + (c - 48);
  }
  out[k] = v;
}

function parseIpv6(text: string): Uint8Array {
  let s = text;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const out = new Uint8Array(16);
  // An embedded IPv4 tail becomes two groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIp(tail);
    s = `${s.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups: number[] = [];
  for (const g of h) groups.push(parseInt(g, 16));
  if (rest !== undefined) for (let i = 0; i < 8 - h.length - r.length; i++) groups.push(0);
  for (const g of r) groups.push(parseInt(g, 16));
  for (let i = 0; i < 8; i++) {
    out[i * 2] = (groups[i] >> 8) & 0xff;
    out[i * 2 + 1] = groups[i] & 0xff;
  }
  return out;
}

export function familyOf(addr: Uint8Array): Family {
  return addr.length === 4 ? 4 : 6;
}

/** Formats 4 or 16 bytes at `off` in `buf` as text (RFC 5952 for IPv6). */
export function formatIp(buf: Uint8Array, off: number, family: Family): string {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]);
  // IPv4-mapped
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

export function ipToString(addr: Uint8Array): string {
  return formatIp(addr, 0, familyOf(addr));
}

/** Writes a sockaddr_in / sockaddr_in6 for addr:port at buf[off]; returns its length. */
export function writeSockaddr(buf: Uint8Array, off: number, addr: Uint8Array, port: number, scopeId = 0): number {
  const len = addr.length === 4 ? SOCKADDR_IN_LEN : SOCKADDR_IN6_LEN;
  if (off < 0 || off + len > buf.length) throw new RangeError('sockaddr does not fit');
  buf.fill(0, off, off + len);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (addr.length === 4) {
    dv.setUint16(off, AF_INET, true);
    dv.setUint16(off + 2, port, false);
    buf.set(addr, off + 4);
  } else {
    dv.setUint16(off, AF_INET6, true);
    dv.setUint16(off + 2, port, false);
    buf.set(addr, off + 8);
    dv.setUint32(off + 24, scopeId, true);
  }
  return len;
}

export function sockaddr(addr: Uint8Array, port: number): Uint8Array {
  const out = new Uint8Array(addr.length === 4 ? SOCKADDR_IN_LEN : SOCKADDR_IN6_LEN);
  writeSockaddr(out, 0, addr, port);
  return out;
}

/** sockaddr_ll for binding a packet socket to an interface. */
export function sockaddrLl(ifindex: number, protocol = ETH_P_ALL): Uint8Array {
  const out = new Uint8Array(SOCKADDR_LL_LEN);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, AF_PACKET, true);
  dv.setUint16(2, protocol, false);
  dv.setInt32(4, ifindex, true);
  return out;
}

/** A decoded sockaddr, reused by the caller: the address bytes stay in the source buffer. */
export class SockaddrView {
  family: Family | 0 = 0;
  port = 0;
  /** Offset of the 4 or 16 address bytes within the parsed buffer. */
  addrOff = 0;
  scopeId = 0;
}

/**
 * Decodes sockaddr_in / sockaddr_in6 at buf[off, off+len). Returns OK, ERR_TRUNCATED, or
 * ERR_BAD_FAMILY (for AF_UNSPEC too: a local error has no offender).
 */
export function readSockaddr(dv: DataView, off: number, len: number, out: SockaddrView): number {
  out.family = 0;
  if (len < 2 || off < 0 || off + len > dv.byteLength) return ERR_TRUNCATED;
  const fam = dv.getUint16(off, true);
  if (fam === AF_INET) {
    if (len < SOCKADDR_IN_LEN - 8) return ERR_TRUNCATED; // sin_zero may be omitted
    out.family = 4;
    out.port = dv.getUint16(off + 2, false);
    out.addrOff = off + 4;
    out.scopeId = 0;
    return OK;
  }
  if (fam === AF_INET6) {
    if (len < 24) return ERR_TRUNCATED;
    out.family = 6;
    out.port = dv.getUint16(off + 2, false);
    out.addrOff = off + 8;
    out.scopeId = len >= SOCKADDR_IN6_LEN ? dv.getUint32(off + 24, true) : 0;
    return OK;
  }
  return ERR_BAD_FAMILY;
}

/** True when buf[off..] holds exactly the bytes of addr. */
export function sameAddr(buf: Uint8Array, off: number, addr: Uint8Array): boolean {
  if (off < 0 || off + addr.length > buf.length) return false;
  for (let i = 0; i < addr.length; i++) if (buf[off + i] !== addr[i]) return false;
  return true;
}
