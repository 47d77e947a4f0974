/**
 * ICMP extensions (RFC 4884) and the MPLS label stack object (RFC 4950), bounds-checked and
 * allocation-free until labels are asked for.
 *
 * Where the extension structure starts:
 *  - compliant replies give the original datagram's length in the ICMP header (IPv4: byte 5, in
 *    32-bit words; IPv6: byte 4, in 64-bit words); the structure follows that many bytes (at least
 *    128) after the 8-byte ICMP header. The kernel does this for us with IP_RECVERR_RFC4884 and
 *    reports the offset in sock_extended_err.ee_data.
 *  - non-compliant (pre-RFC 4884, "length-less") replies from MPLS routers put it right after a
 *    128-byte original datagram. Without a length there is no proof, so such a structure is
 *    accepted only with a non-zero checksum that verifies.
 *
 * Structure: 4-byte header (version 2 in the top 4 bits, 12 reserved bits, checksum over the
 * whole structure, 0 = not computed), then objects: length (16 bits, header included), class-num,
 * c-type, payload. MPLS label stack: class 1, c-type 1, entries of label(20) TC(3) S(1) TTL(8).
 */
import type { Family } from './addr.js';
import { inetChecksum } from './checksum.js';
import { ERR_BAD_CHECKSUM, ERR_BAD_LENGTH, ERR_BAD_VERSION, ERR_TRUNCATED, OK } from './status.js';

export const ICMP_EXT_VERSION = 2;
export const ICMP_EXT_CLASS_MPLS = 1;
export const ICMP_EXT_CTYPE_MPLS_INCOMING = 1;
/** Minimum original-datagram field when extensions are present (RFC 4884 §5.1). */
export const ICMP_EXT_MIN_ORIG = 128;
const MAX_LABELS = 16;

export interface MplsLabel {
  label: number;
  tc: number;
  s: boolean;
  ttl: number;
}

export class IcmpExtView {
  status = OK;
  /** The structure had a checksum (non-zero) and it verified. */
  checksummed = false;
  objects = 0;
  /** MPLS label stack entries found (up to 16). */
  nLabels = 0;
  readonly entries = new Uint32Array(MAX_LABELS);

  labels(): MplsLabel[] | null {
    if (this.nLabels === 0) return null;
    const out: MplsLabel[] = [];
    for (let i = 0; i < this.nLabels; i++) {
      const e = this.entries[i];
      out.push({ label: e >>> 12, tc: (e >>> 9) & 7, s: ((e >>> 8) & 1) === 1, ttl: e & 0xff });
    }
    return out;
  }
}

/**
 * Parses an extension structure occupying bytes[off, off+len) (to the end of the ICMP message).
 * Returns OK, ERR_TRUNCATED, ERR_BAD_VERSION, ERR_BAD_CHECKSUM or ERR_BAD_LENGTH (an object
 * shorter than its header or running past the end).
 */
export function parseIcmpExtensions(bytes: Uint8Array, off: number, len: number, out: IcmpExtView): number {
  out.checksummed = false;
  out.objects = 0;
  out.nLabels = 0;
  if (off < 0 || len < 4 || off + len > bytes.length) return (out.status = ERR_TRUNCATED);
  if (bytes[off] >> 4 !== ICMP_EXT_VERSION) return (out.status = ERR_BAD_VERSION);
  const cksum = (bytes[off + 2] << 8) | bytes[off + 3];
  if (cksum !== 0) {
    if (inetChecksum(bytes, off, len) !== 0) return (out.status = ERR_BAD_CHECKSUM);
    out.checksummed = true;
  }
  let p = off + 4;
  const end = off + len;
  while (p < end) {
    if (p + 4 > end) return failed(out, ERR_TRUNCATED);
    const olen = (bytes[p] << 8) | bytes[p + 1];
    if (olen < 4 || p + olen > end) return failed(out, ERR_BAD_LENGTH);
    const cls = bytes[p + 2];
    const ctype = bytes[p + 3];
    if (cls === ICMP_EXT_CLASS_MPLS && ctype === ICMP_EXT_CTYPE_MPLS_INCOMING) {
      if ((olen - 4) % 4 !== 0) return failed(out, ERR_BAD_LENGTH);
      for (let q = p + 4; q < p + olen && out.nLabels < MAX_LABELS; q += 4) {
        out.entries[out.nLabels++] = ((bytes[q] << 24) | (bytes[q + 1] << 16) | (bytes[q + 2] << 8) | bytes[q + 3]) >>> 0;
      }
    }
    out.objects++;
    p += olen;
  }
  return (out.status = OK);
}

/**
 * Finds and parses the extension structure of a whole ICMP error message at bytes[off, off+len)
 * (8-byte ICMP header first). Returns OK with `out` filled, or a status: ERR_TRUNCATED when the
 * message has no room for extensions (the common case: none present).
 */
export function findIcmpExtensions(bytes: Uint8Array, off: number, len: number, family: Family, out: IcmpExtView): number {
  out.checksummed = false;
  out.objects = 0;
  out.nLabels = 0;
  if (off < 0 || len < 8 || off + len > bytes.length) return (out.status = ERR_TRUNCATED);
  const lenField = family === 4 ? bytes[off + 5] : bytes[off + 4];
  const orig = lenField * (family === 4 ? 4 : 8);
  if (lenField !== 0) {
    // Compliant: the length is authoritative, and RFC 4884 requires at least 128 bytes.
    if (orig < ICMP_EXT_MIN_ORIG) return (out.status = ERR_BAD_LENGTH);
    if (8 + orig + 4 > len) return (out.status = ERR_TRUNCATED);
    return parseIcmpExtensions(bytes, off + 8 + orig, len - 8 - orig, out);
  }
  // Length-less: only a checksummed structure right after 128 bytes counts.
  if (8 + ICMP_EXT_MIN_ORIG + 4 > len) return (out.status = ERR_TRUNCATED);
  const at = off + 8 + ICMP_EXT_MIN_ORIG;
  if (bytes[at] >> 4 !== ICMP_EXT_VERSION || ((bytes[at + 2] << 8) | bytes[at + 3]) === 0) return (out.status = ERR_BAD_VERSION);
  const s = parseIcmpExtensions(bytes, at, len - 8 - ICMP_EXT_MIN_ORIG, out);
  return s === OK && !out.checksummed ? failed(out, ERR_BAD_CHECKSUM) : s;
}

/** A structure that fails part-way keeps none of what was read before the failure. */
function failed(out: IcmpExtView, status: number): number {
  out.nLabels = 0;
  out.objects = 0;
  return (out.status = status);
}
