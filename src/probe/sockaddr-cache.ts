/**
 * Each target's destination sockaddr, built once and kept as seven 32-bit words a target in one
 * array: a probe to one of ten thousand targets copies seven words into its send slot instead of
 * reading objects of its target's. `forget` makes a target's sockaddr be built again (its address
 * changed).
 */
import { writeSockaddr } from '../packet/addr.js';

const WORDS = 7; // 28 bytes: a sockaddr_in6, or a sockaddr_in (16) padded

export class SockaddrCache {
  private words = new Uint32Array(0);
  private lens = new Uint8Array(0);
  private readonly scratch = new Uint8Array(WORDS * 4);
  private readonly scratchWords = new Uint32Array(this.scratch.buffer);

  /** The target's address changed: its sockaddr is built again at its next probe. */
  forget(target: number): void {
    if (target < this.lens.length) this.lens[target] = 0;
  }

  /**
   * Writes target's sockaddr (address `addr`, `port`; built on first use) into `into` at word
   * `at` (a send batch's names seen as words); returns its length in bytes.
   */
  copy(target: number, addr: Uint8Array, port: number, into: Uint32Array, at: number): number {
    if (target >= this.lens.length) this.grow(target + 1);
    const c = this.words;
    const from = target * WORDS;
    let len = this.lens[target];
    if (len === 0) {
      const x = this.scratch;
      x.fill(0);
      len = writeSockaddr(x, 0, addr, port);
      for (let w = 0; w < WORDS; w++) c[from + w] = this.scratchWords[w];
      this.lens[target] = len;
    }
    into[at] = c[from];
    into[at + 1] = c[from + 1];
    into[at + 2] = c[from + 2];
    into[at + 3] = c[from + 3];
    if (len > 16) {
      into[at + 4] = c[from + 4];
      into[at + 5] = c[from + 5];
      into[at + 6] = c[from + 6];
    }
    return len;
  }

  private grow(min: number): void {
    const cap = Math.max(min, this.lens.length * 2, 64);
    const c = new Uint32Array(cap * WORDS);
    c.set(this.words);
    const l = new Uint8Array(cap);
    l.set(this.lens);
    this.words = c;
    this.lens = l;
  }
}
