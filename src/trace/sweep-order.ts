/**
 * A sweep's bookkeeping that is not about packets: which target an address is (an open-addressing
 * index over the targets' address bytes, no allocation on lookup), and the order probes go in (a
 * multiplicative walk over target x TTL that visits every probe once and scatters neighbours).
 */
import { PathlensError } from '../core/errors.js';
import { formatIp } from '../packet/addr.js';

/** Open-addressing index of the targets' addresses (no allocation on lookup). */
export class AddrIndex {
  private readonly slots: Int32Array;
  private readonly mask: number;
  constructor(
    private readonly addrs: Uint8Array,
    private readonly alen: number,
    n: number,
  ) {
    let size = 16;
    while (size < 2 * n) size <<= 1;
    this.slots = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    for (let i = 0; i < n; i++) {
      let h = this.hash(addrs, i * alen);
      while (this.slots[h] >= 0) {
        if (this.same(this.slots[h], addrs, i * alen)) throw new PathlensError('ERR_USAGE', `--xdp: target ${formatIp(addrs, i * alen, alen === 4 ? 4 : 6)} is listed twice`);
        h = (h + 1) & this.mask;
      }
      this.slots[h] = i;
    }
  }
  private hash(b: Uint8Array, off: number): number {
    let h = 0x811c9dc5;
    for (let k = 0; k < this.alen; k++) h = Math.imul(h ^ b[off + k], 0x01000193);
    return (h >>> 0) & this.mask;
  }
  private same(i: number, b: Uint8Array, off: number): boolean {
    const a = i * this.alen;
    for (let k = 0; k < this.alen; k++) if (this.addrs[a + k] !== b[off + k]) return false;
    return true;
  }
  /** The index of the target whose address is b[off, off + alen), or -1. */
  find(b: Uint8Array, off: number): number {
    let h = this.hash(b, off);
    for (;;) {
      const i = this.slots[h];
      if (i < 0) return -1;
      if (this.same(i, b, off)) return i;
      h = (h + 1) & this.mask;
    }
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** A step through [0, n) that visits every index once and scatters neighbours (a multiplicative walk). */
export function scatterStep(n: number): number {
  if (n <= 2) return 1;
  let s = Math.floor(n * 0.6180339887) | 1;
  while (gcd(s, n) !== 1) s += 2;
  return s % n || 1;
}
