/**
 * The XDP program's test (bpf/xsk.bpf.c, quotes_probe) in TypeScript, line for line: a frame is
 * an ICMP Time Exceeded or Destination Unreachable (ICMPv6: type 3 or 1) quoting a UDP packet
 * from the run's source port to a destination port in its range. It is the reference the
 * differential test holds the program to, and the sweep's first check of every frame it reads.
 * Bounds-checked; never throws.
 */
import { endianness } from 'node:os';
import type { Family } from '../packet/addr.js';
import { XSK_CONFIG } from './xsk-layout.js';

export interface XskFilter {
  family: Family;
  sport: number;
  dportLo: number;
  dportHi: number;
}

function ours(b: Uint8Array, udp: number, end: number, f: XskFilter): boolean {
  if (udp + 4 > end) return false;
  const sport = (b[udp] << 8) | b[udp + 1];
  const dport = (b[udp + 2] << 8) | b[udp + 3];
  return sport === f.sport && dport >= f.dportLo && dport <= f.dportHi;
}

/** Whether the Ethernet frame b[off, off + len) quotes one of the run's probes. */
export function quotesProbe(b: Uint8Array, off: number, len: number, f: XskFilter): boolean {
  const end = Math.min(off + len, b.length);
  if (off + 14 > end) return false;
  const proto = (b[off + 12] << 8) | b[off + 13];
  const l3 = off + 14;
  if (proto === 0x0800 && f.family === 4) {
    if (l3 + 20 > end) return false;
    const ihl = (b[l3] & 0xf) * 4;
    if (b[l3] >> 4 !== 4 || ihl < 20 || b[l3 + 9] !== 1) return false;
    const icmp = l3 + ihl;
    if (icmp + 8 + 20 > end) return false;
    if (b[icmp] !== 11 && b[icmp] !== 3) return false;
    const inner = icmp + 8;
    const iihl = (b[inner] & 0xf) * 4;
    if (b[inner] >> 4 !== 4 || iihl < 20 || b[inner + 9] !== 17) return false;
    return ours(b, inner + iihl, end, f);
  }
  if (proto === 0x86dd && f.family === 6) {
    if (l3 + 40 + 8 + 40 > end) return false;
    if (b[l3] >> 4 !== 6 || b[l3 + 6] !== 58) return false;
    const icmp = l3 + 40;
    if (b[icmp] !== 3 && b[icmp] !== 1) return false;
    const inner = icmp + 8;
    if (b[inner] >> 4 !== 6 || b[inner + 6] !== 17) return false;
    return ours(b, inner + 40, end, f);
  }
  return false;
}

/** The filter as the program's .rodata holds it (struct xsk_config, host byte order). */
export function encodeXskConfig(f: XskFilter): Uint8Array {
  const le = endianness() === 'LE';
  const cfg = new Uint8Array(XSK_CONFIG.size);
  const dv = new DataView(cfg.buffer);
  dv.setUint16(XSK_CONFIG.sport, f.sport, le);
  dv.setUint16(XSK_CONFIG.dport_lo, f.dportLo, le);
  dv.setUint16(XSK_CONFIG.dport_hi, f.dportHi, le);
  cfg[XSK_CONFIG.family] = f.family;
  return cfg;
}
