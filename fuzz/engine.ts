/**
 * The fuzzer's engine: coverage feedback, mutation, the corpus. It runs one target in one thread
 * (worker.ts), in the manner of AFL and libFuzzer:
 *  - every input is a mutation (a stack of byte-level edits, or a splice of two) of one in the
 *    corpus;
 *  - after each input the coverage counters of pathlens' own modules (instrumented as they load,
 *    hooks.ts) are read and cleared; a counter reaching a hit-count class it never reached before
 *    (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+) makes the input new, and it joins the corpus;
 *  - a target may refuse an input only with a PathlensError (the one way pathlens reports bad
 *    input) or by its own status values; any other exception (a RangeError from a DataView read
 *    past the input, a TypeError, a failed invariant) is a finding.
 * Each input is handed over as a copy of its exact length, so a read one byte past it throws.
 */
import { createHash } from 'node:crypto';
import { PathlensError } from '../src/core/errors.js';
import { COVERAGE_VAR } from './hooks.js';

/** A fuzz target: a name, the largest input it takes, and how to run one input. */
export interface Target {
  name: string;
  /** What the target reads, for the listing. */
  what: string;
  maxLen: number;
  /** Builds the runner (imports happen here, so only what the target reaches is loaded). */
  make(): Promise<(input: Uint8Array) => void | Promise<void>>;
}

/** Hit counts to classes (bit positions), as AFL buckets them. */
const BUCKET = new Uint8Array(256);
for (let c = 1; c < 256; c++) BUCKET[c] = c === 1 ? 1 : c === 2 ? 2 : c === 3 ? 4 : c < 8 ? 8 : c < 16 ? 16 : c < 32 ? 32 : c < 128 ? 64 : 128;

type Counters = Record<number, number> | number[];
type FileCoverage = { s: Record<string, number>; b: Record<string, number[]> };

/** The counters of every instrumented module loaded so far, read and cleared after each input. */
export class Coverage {
  private readonly groups: Counters[] = [];
  private readonly lens: number[] = [];
  private readonly bases: number[] = [];
  private readonly files = new Set<string>();
  private virgin = new Uint8Array(1 << 14);
  /** Counters that exist, and those ever reached. */
  total = 0;
  reached = 0;

  private get map(): Record<string, FileCoverage> {
    return ((globalThis as Record<string, unknown>)[COVERAGE_VAR] ?? {}) as Record<string, FileCoverage>;
  }

  /** Takes in modules loaded since the last call (their counters are numbered after the others). */
  refresh(): void {
    const map = this.map;
    for (const file of Object.keys(map)) {
      if (this.files.has(file)) continue;
      this.files.add(file);
      const fc = map[file];
      this.add(fc.s, Object.keys(fc.s).length);
      for (const k of Object.keys(fc.b)) this.add(fc.b[k], fc.b[k].length);
    }
  }

  private add(c: Counters, n: number): void {
    this.groups.push(c);
    this.lens.push(n);
    this.bases.push(this.total);
    this.total += n;
    if (this.total > this.virgin.length) {
      const v = new Uint8Array(Math.max(this.total, this.virgin.length * 2));
      v.set(this.virgin);
      this.virgin = v;
    }
  }

  /** Reads and clears the counters; true when one reached a class it had never reached. */
  collect(): boolean {
    let novel = false;
    const { groups, lens, bases, virgin } = this;
    for (let g = 0; g < groups.length; g++) {
      const a = groups[g] as number[];
      const n = lens[g];
      const base = bases[g];
      for (let i = 0; i < n; i++) {
        const c = a[i];
        if (c === 0) continue;
        a[i] = 0;
        const bit = BUCKET[c > 255 ? 255 : c];
        const v = virgin[base + i];
        if ((v & bit) === 0) {
          if (v === 0) this.reached++;
          virgin[base + i] = v | bit;
          novel = true;
        }
      }
    }
    return novel;
  }
}

/** xoshiro128**: a fast generator with a seed, so a run can be repeated. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: number) {
    this.s0 = seed | 1;
    this.s1 = 0x9e3779b9 ^ seed;
    this.s2 = 0x85ebca6b;
    this.s3 = 0xc2b2ae35;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }
  /** 0..n-1 */
  below(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

const INT8 = [0, 1, 2, 4, 8, 16, 32, 64, 100, 127, 128, 255];
const INT16 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x200, 0x3ff, 0x400, 0x1000, 0x7fff, 0x8000, 0xffff];
const INT32 = [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100, 0x1000000];

/** Byte-level mutations into a working buffer of the target's largest length. */
export class Mutator {
  readonly work: Uint8Array;
  len = 0;
  constructor(
    private readonly rng: Rng,
    readonly maxLen: number,
  ) {
    this.work = new Uint8Array(maxLen);
  }

  /** Loads `base` and applies 1 to 8 edits (a havoc stack), or splices in `other` first. */
  mutate(base: Uint8Array, other: Uint8Array | null): void {
    const r = this.rng;
    this.len = Math.min(base.length, this.maxLen);
    this.work.set(base.subarray(0, this.len));
    if (other && other.length && r.below(8) === 0) this.splice(other);
    const edits = 1 << r.below(4);
    for (let e = 0; e < edits; e++) this.edit(other);
  }

  private splice(other: Uint8Array): void {
    const r = this.rng;
    const at = r.below(this.len + 1);
    const from = r.below(other.length);
    const n = Math.min(other.length - from, this.maxLen - at);
    this.work.set(other.subarray(from, from + n), at);
    this.len = Math.max(this.len, at + n);
  }

  private edit(other: Uint8Array | null): void {
    const r = this.rng;
    const w = this.work;
    const len = this.len;
    switch (r.below(len === 0 ? 1 : 14)) {
      case 0: {
        // Insert random bytes (also the only edit an empty input can take).
        const n = Math.min(1 + r.below(16), this.maxLen - len);
        if (n <= 0) return;
        const at = r.below(len + 1);
        w.copyWithin(at + n, at, len);
        for (let i = 0; i < n; i++) w[at + i] = r.u32() & 0xff;
        this.len = len + n;
        return;
      }
      case 1:
        w[r.below(len)] ^= 1 << r.below(8);
        return;
      case 2:
        w[r.below(len)] = r.u32() & 0xff;
        return;
      case 3:
        w[r.below(len)] = INT8[r.below(INT8.length)];
        return;
      case 4: {
        if (len < 2) return;
        const at = r.below(len - 1);
        const v = INT16[r.below(INT16.length)];
        if (r.below(2)) (w[at] = v >> 8), (w[at + 1] = v & 0xff);
        else (w[at] = v & 0xff), (w[at + 1] = v >> 8);
        return;
      }
      case 5: {
        if (len < 4) return;
        const at = r.below(len - 3);
        const v = INT32[r.below(INT32.length)];
        const be = r.below(2) === 1;
        for (let i = 0; i < 4; i++) w[at + i] = (v >>> (8 * (be ? 3 - i : i))) & 0xff;
        return;
      }
      case 6: {
        // Add or subtract a little from a byte.
        const at = r.below(len);
        w[at] = (w[at] + (r.below(2) ? 1 : -1) * (1 + r.below(35))) & 0xff;
        return;
      }
      case 7: {
        // The same on a 16-bit field, either byte order: lengths and counts.
        if (len < 2) return;
        const at = r.below(len - 1);
        const be = r.below(2) === 1;
        let v = be ? (w[at] << 8) | w[at + 1] : w[at] | (w[at + 1] << 8);
        v = (v + (r.below(2) ? 1 : -1) * (1 + r.below(35))) & 0xffff;
        if (be) (w[at] = v >> 8), (w[at + 1] = v & 0xff);
        else (w[at] = v & 0xff), (w[at + 1] = v >> 8);
        return;
      }
      case 8: {
        // Delete a block.
        const n = 1 + r.below(Math.min(len, 32));
        const at = r.below(len - n + 1);
        w.copyWithin(at, at + n, len);
        this.len = len - n;
        return;
      }
      case 9: {
        // Copy a block over another place.
        const n = 1 + r.below(Math.min(len, 32));
        const from = r.below(len - n + 1);
        const to = r.below(len - n + 1);
        w.copyWithin(to, from, from + n);
        return;
      }
      case 10: {
        // Duplicate a block in place (repeated records, options, labels).
        const n = Math.min(1 + r.below(Math.min(len, 64)), this.maxLen - len);
        if (n <= 0) return;
        const from = r.below(len - n + 1);
        w.copyWithin(from + n, from, len);
        this.len = len + n;
        return;
      }
      case 11:
        // Cut the end off.
        this.len = r.below(len);
        return;
      case 12: {
        // Overwrite with a block of another corpus input.
        if (!other || other.length === 0) return;
        const n = 1 + r.below(Math.min(other.length, 32));
        const from = r.below(other.length - n + 1);
        const to = r.below(Math.max(1, len - n + 1));
        const m = Math.min(n, this.maxLen - to);
        w.set(other.subarray(from, from + m), to);
        this.len = Math.max(len, to + m);
        return;
      }
      default: {
        // Fill a block with one value.
        const n = 1 + r.below(Math.min(len, 16));
        const at = r.below(len - n + 1);
        w.fill(r.below(2) ? 0 : 0xff, at, at + n);
        return;
      }
    }
  }
}

/** What a foreign exception looks like, for grouping the same finding once. */
export function signature(e: unknown): string {
  if (!(e instanceof Error)) return `non-error ${typeof e}: ${String(e).slice(0, 80)}`;
  const frame = (e.stack ?? '').split('\n').find((l) => l.includes('/src/')) ?? '';
  // The message up to its first colon: what follows is often the input's own bytes.
  const what = e.message.split('\n')[0].split(':')[0].slice(0, 80);
  return `${e.name}: ${what} ${frame.trim().replace(/^at /, '')}`.trim();
}

/** Whether an exception is an accepted refusal (pathlens' own error for bad input). */
export function accepted(e: unknown): boolean {
  return e instanceof PathlensError;
}

export function digest(b: Uint8Array): string {
  return createHash('sha1').update(b).digest('hex').slice(0, 16);
}
