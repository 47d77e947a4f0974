/**
 * Kernel addresses to names, from /proc/kallsyms (read once; addresses are visible to root).
 * Addresses are 64-bit, so they stay BigInts; lookups are a binary search over a sorted table.
 */
import { readFileSync } from 'node:fs';
import { PathlensError } from '../core/errors.js';

export class Kallsyms {
  private constructor(
    private readonly addrs: BigUint64Array,
    private readonly names: string[],
  ) {}

  /** Parses kallsyms text ("ffffffff81000000 T _stext [module]" per line); text symbols only. */
  static parse(text: string): Kallsyms {
    const rows: [bigint, string][] = [];
    for (const line of text.split('\n')) {
      const a = line.indexOf(' ');
      const b = line.indexOf(' ', a + 1);
      if (a !== 16 || b !== a + 2) continue;
      const type = line[a + 1];
      if (type !== 't' && type !== 'T' && type !== 'w' && type !== 'W') continue;
      let addr: bigint;
      try {
        addr = BigInt(`0x${line.slice(0, a)}`);
      } catch {
        continue;
      }
      if (addr === 0n) continue;
      const tab = line.indexOf('\t', b + 1);
      rows.push([addr, line.slice(b + 1, tab < 0 ? undefined : tab)]);
    }
    rows.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return new Kallsyms(BigUint64Array.from(rows.map((r) => r[0])), rows.map((r) => r[1]));
  }

  /** This kernel's symbols; a refusal when they are hidden (addresses all zero). */
  static load(path = '/proc/kallsyms'): Kallsyms {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new PathlensError('ERR_BPF', `cannot read ${path} to name kernel stack frames (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
    const k = Kallsyms.parse(text);
    if (k.addrs.length === 0) throw new PathlensError('ERR_BPF', `${path} shows no addresses (kernel.kptr_restrict; not root, CAP_SYSLOG shows them): kernel stacks cannot be named`);
    return k;
  }

  get size(): number {
    return this.addrs.length;
  }

  /** "name+0xoff" for an address inside a known function, else the address in hex. */
  name(addr: bigint): string {
    const a = this.addrs;
    let lo = 0;
    let hi = a.length - 1;
    if (hi < 0 || addr < a[0]) return `0x${addr.toString(16)}`;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (a[mid] <= addr) lo = mid;
      else hi = mid - 1;
    }
    const off = addr - a[lo];
    // Past the last function of a region (no size in kallsyms): say the address, not a guess.
    if (off > 0x100000n) return `0x${addr.toString(16)}`;
    return `${this.names[lo]}+0x${off.toString(16)}`;
  }
}
