/**
 * IPv4 and IPv6 headers (with IPv6 extension headers), bounds-checked, zero-allocation.
 */
import { ERR_BAD_LENGTH, ERR_BAD_VERSION, ERR_TRUNCATED, OK } from './status.js';

export class IpView {
  version = 0;
  headerLen = 0;
  /** Total length claimed by the header (IPv6: 40 + payload length). */
  totalLen = 0;
  /** Upper-layer protocol (after IPv6 extension headers). */
  proto = 0;
  ttl = 0;
  tos = 0;
  flowLabel = 0;
  ident = 0;
  dontFragment = false;
  /** A fragment other than the first: its payload does not start with the upper-layer header. */
  laterFragment = false;
  srcOff = 0;
  dstOff = 0;
  payloadOff = 0;
  /** Payload bytes present in the buffer (may be fewer than the header claims in a quote). */
  payloadLen = 0;
}

const V6_EXT_HOPOPTS = 0;
const V6_EXT_ROUTING = 43;
const V6_EXT_FRAGMENT = 44;
const V6_EXT_DSTOPTS = 60;
const MAX_EXT_HEADERS = 8;

/**
 * Parses the IP header at bytes[off, off+len). With `quoted` the packet may be cut short after the
 * header (as in an ICMP quote): only the header itself must be complete.
 */
export function parseIpHeader(bytes: Uint8Array, off: number, len: number, out: IpView, quoted: boolean): number {
  if (off < 0 || len < 1 || off + len > bytes.length) return ERR_TRUNCATED;
  const v = bytes[off] >> 4;
  out.version = v;
  if (v === 4) {
    if (len < 20) return ERR_TRUNCATED;
    const ihl = (bytes[off] & 0x0f) * 4;
    if (ihl < 20) return ERR_BAD_LENGTH;
    if (ihl > len) return ERR_TRUNCATED;
    out.headerLen = ihl;
    out.tos = bytes[off + 1];
    out.totalLen = (bytes[off + 2] << 8) | bytes[off + 3];
    if (out.totalLen < ihl) return ERR_BAD_LENGTH;
    if (!quoted && out.totalLen > len) return ERR_TRUNCATED;
    out.ident = (bytes[off + 4] << 8) | bytes[off + 5];
    out.dontFragment = (bytes[off + 6] & 0x40) !== 0;
    out.laterFragment = ((bytes[off + 6] & 0x1f) | bytes[off + 7]) !== 0;
    out.ttl = bytes[off + 8];
    out.proto = bytes[off + 9];
    out.flowLabel = 0;
    out.srcOff = off + 12;
    out.dstOff = off + 16;
    out.payloadOff = off + ihl;
    out.payloadLen = Math.min(out.totalLen, len) - ihl;
    return OK;
  }
  if (v === 6) {
    if (len < 40) return ERR_TRUNCATED;
    out.tos = ((bytes[off] & 0x0f) << 4) | (bytes[off + 1] >> 4);
    out.flowLabel = ((bytes[off + 1] & 0x0f) << 16) | (bytes[off + 2] << 8) | bytes[off + 3];
    const plen = (bytes[off + 4] << 8) | bytes[off + 5];
    out.totalLen = 40 + plen;
    if (!quoted && out.totalLen > len) return ERR_TRUNCATED;
    out.ttl = bytes[off + 7];
    out.ident = 0;
    out.dontFragment = true;
    out.laterFragment = false;
    out.srcOff = off + 8;
    out.dstOff = off + 24;
    let next = bytes[off + 6];
    let p = off + 40;
    const end = off + len;
    for (let i = 0; i < MAX_EXT_HEADERS; i++) {
      if (next === V6_EXT_HOPOPTS || next === V6_EXT_ROUTING || next === V6_EXT_DSTOPTS) {
        if (end - p < 8) return ERR_TRUNCATED;
        const hl = (bytes[p + 1] + 1) * 8;
        if (end - p < hl) return ERR_TRUNCATED;
        next = bytes[p];
        p += hl;
      } else if (next === V6_EXT_FRAGMENT) {
        if (end - p < 8) return ERR_TRUNCATED;
        next = bytes[p];
        if (((bytes[p + 2] << 8) | (bytes[p + 3] & 0xf8)) !== 0) out.laterFragment = true;
        p += 8;
      } else {
        break;
      }
    }
    out.proto = next;
    out.headerLen = p - off;
    out.payloadOff = p;
    out.payloadLen = Math.max(0, Math.min(out.totalLen, len) - out.headerLen);
    return OK;
  }
  return ERR_BAD_VERSION;
}
