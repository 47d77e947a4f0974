/**
 * Reading BPF maps from user space without a call per entry: batch walks of hash maps
 * (BPF_MAP_LOOKUP_BATCH, growing the batch when one bucket holds more than it), and per-CPU
 * counter arrays summed over the possible CPUs.
 */
import { endianness } from 'node:os';
import { ENOENT, ENOSPC } from '../core/errno.js';
import { SysError } from '../core/errors.js';
import { native } from '../native/index.js';
import { possibleCpus } from './object.js';

/** Walks a hash map in batches (BPF_MAP_LOOKUP_BATCH), calling fn(keyOff, valueOff) per entry. */
export class MapWalker {
  private keys: Uint8Array;
  private values: Uint8Array;
  readonly kv: DataView;
  readonly vv: DataView;
  private readonly inTok: Uint8Array;
  private readonly outTok: Uint8Array;
  private readonly io = new Int32Array(1);
  private batch: number;

  constructor(
    private readonly fd: number,
    private readonly keySize: number,
    private readonly valueSize: number,
    batch = 512,
  ) {
    this.batch = batch;
    this.keys = new Uint8Array(batch * keySize);
    this.values = new Uint8Array(batch * valueSize);
    this.kv = new DataView(this.keys.buffer);
    this.vv = new DataView(this.values.buffer);
    this.inTok = new Uint8Array(Math.max(8, keySize));
    this.outTok = new Uint8Array(Math.max(8, keySize));
  }

  get keyBytes(): Uint8Array {
    return this.keys;
  }

  walk(fn: (i: number) => void): void {
    const n = native();
    let first = true;
    for (;;) {
      this.io[0] = this.batch;
      const rc = n.bpfMapLookupBatch(this.fd, first ? null : this.inTok, this.outTok, this.keys, this.values, this.io);
      if (rc < 0 && -rc === ENOSPC) {
        // One hash bucket holds more entries than a batch: grow and retry from the same place.
        this.grow();
        continue;
      }
      if (rc < 0 && -rc !== ENOENT) throw new SysError('bpf(BPF_MAP_LOOKUP_BATCH)', rc);
      const got = this.io[0];
      for (let i = 0; i < got; i++) fn(i);
      if (rc < 0) return; // ENOENT: the walk is complete
      this.inTok.set(this.outTok);
      first = false;
    }
  }

  private grow(): void {
    this.batch *= 2;
    this.keys = new Uint8Array(this.batch * this.keySize);
    this.values = new Uint8Array(this.batch * this.valueSize);
    (this as { kv: DataView }).kv = new DataView(this.keys.buffer);
    (this as { vv: DataView }).vv = new DataView(this.values.buffer);
  }
}

/**
 * A BPF_MAP_TYPE_PERCPU_ARRAY of u64 counters, read as sums over the CPUs. `read()` refreshes
 * `values` in place (no allocation per read).
 */
export class PerCpuCounters {
  readonly values: Float64Array;
  private readonly key = new Uint8Array(4);
  private readonly keyView = new DataView(this.key.buffer);
  private readonly cpus = possibleCpus();
  private readonly buf: Uint8Array;
  private readonly zero: Uint8Array;
  private readonly view: DataView;

  constructor(
    private readonly fd: number,
    count: number,
  ) {
    this.values = new Float64Array(count);
    this.buf = new Uint8Array(8 * this.cpus);
    this.zero = new Uint8Array(8 * this.cpus);
    this.view = new DataView(this.buf.buffer);
  }

  /** Sets counter i back to zero on every CPU. */
  clear(i: number): void {
    this.keyView.setUint32(0, i, LE);
    native().bpfMapUpdate(this.fd, this.key, this.zero, 0);
  }

  read(): Float64Array {
    for (let i = 0; i < this.values.length; i++) {
      this.keyView.setUint32(0, i, LE);
      if (native().bpfMapLookup(this.fd, this.key, this.buf) < 0) continue;
      let sum = 0;
      for (let c = 0; c < this.cpus; c++) sum += u64(this.view, c * 8);
      this.values[i] = sum;
    }
    return this.values;
  }
}

const LE = endianness() === 'LE';

/** A u64 field as a number (exact below 2^53). */
export function u64(v: DataView, off: number): number {
  return LE ? v.getUint32(off, true) + v.getUint32(off + 4, true) * 0x100000000 : v.getUint32(off + 4, false) + v.getUint32(off, false) * 0x100000000;
}

/** Writes x (below 2^53) as a u64 field. */
export function setU64(v: DataView, off: number, x: number): void {
  const hi = Math.floor(x / 0x100000000);
  const lo = x - hi * 0x100000000;
  if (LE) {
    v.setUint32(off, lo, true);
    v.setUint32(off + 4, hi, true);
  } else {
    v.setUint32(off, hi, false);
    v.setUint32(off + 4, lo, false);
  }
}
