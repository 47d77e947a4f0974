/**
 * Monitor targets in columns, as given: a name each, the address bytes in one slab (16 bytes a
 * target, the family's first 4 or 16 of them used), and the settings as profiles shared by every
 * target that has the same ones. A hundred thousand targets from one file are a few arrays and a
 * profile or two, where a hundred thousand target objects with an address array each were about
 * 40 MB of heap. The command line builds one as it reads its targets; a list of MonitorTarget
 * objects (the library's form) is turned into one (`TargetTable.from`).
 */
import { type Family, formatIp, parseIpInto } from '../packet/addr.js';
import type { MonitorTarget, TargetSettings } from './request.js';

/** Bytes of the slab per target. */
export const ADDR_STRIDE = 16;

export class TargetTable {
  /**
   * As given (name or address); null for an address given in its canonical form, which is made
   * again from the address when asked (a hundred thousand literal targets keep no string each).
   */
  readonly given: (string | null)[] = [];
  /** The distinct settings, in the order first met. */
  readonly profiles: TargetSettings[] = [];
  private slab = new Uint8Array(ADDR_STRIDE * 64);
  private fam = new Uint8Array(64);
  private prof = new Int32Array(64);
  private readonly byKey = new Map<string, number>();
  private last: TargetSettings | null = null;
  private lastProfile = -1;

  get length(): number {
    return this.given.length;
  }

  /** Target i as given (name or address). */
  name(i: number): string {
    return this.given[i] ?? formatIp(this.slab, ADDR_STRIDE * i, this.fam[i] as Family);
  }

  /** Target i's address bytes start at slab[ADDR_STRIDE * i]. */
  get addresses(): Uint8Array {
    return this.slab;
  }

  family(i: number): Family {
    return this.fam[i] as Family;
  }

  profileOf(i: number): number {
    return this.prof[i];
  }

  settings(i: number): TargetSettings {
    return this.profiles[this.prof[i]];
  }

  /** A copy of target i's address. */
  address(i: number): Uint8Array {
    const off = ADDR_STRIDE * i;
    return this.slab.slice(off, off + (this.fam[i] === 4 ? 4 : 16));
  }

  /** Adds a target (its address, 4 or 16 bytes, is copied); returns its index. */
  add(name: string, address: Uint8Array, s: TargetSettings): number {
    const i = this.given.length;
    if (i === this.fam.length) this.grow(2 * i);
    this.given.push(name);
    this.slab.set(address, ADDR_STRIDE * i);
    this.fam[i] = address.length === 4 ? 4 : 6;
    this.prof[i] = this.profileFor(s);
    return i;
  }

  /** Adds a target given as a literal address (parsed into the slab: nothing allocated a target); returns its index. */
  addLiteral(text: string, s: TargetSettings): number {
    const i = this.given.length;
    if (i === this.fam.length) this.grow(2 * i);
    // Parsed before anything is written: a bad literal throws with the table unchanged.
    const family = parseIpInto(text, this.slab, ADDR_STRIDE * i);
    this.fam[i] = family;
    this.given.push(formatIp(this.slab, ADDR_STRIDE * i, family) === text ? null : text);
    this.prof[i] = this.profileFor(s);
    return i;
  }

  /** Target i's address is now `address` (a name looked up after it was added). */
  setAddress(i: number, address: Uint8Array): void {
    this.slab.set(address, ADDR_STRIDE * i);
    this.fam[i] = address.length === 4 ? 4 : 6;
  }

  /** The library's list of targets, in columns. */
  static from(targets: readonly MonitorTarget[]): TargetTable {
    const t = new TargetTable();
    t.grow(targets.length);
    for (const x of targets) t.add(x.name, x.address, x);
    return t;
  }

  /**
   * The profile of settings s. The settings of consecutive targets from one file share their
   * objects: the last profile is tried first, by identity; otherwise the settings' values are the
   * key (two targets with equal settings share a profile whatever objects hold them).
   */
  private profileFor(s: TargetSettings): number {
    const l = this.last;
    if (
      l !== null &&
      l.method === s.method &&
      l.udpPort === s.udpPort &&
      l.tcpPort === s.tcpPort &&
      l.intervalMs === s.intervalMs &&
      l.thresholds === s.thresholds &&
      l.placement === s.placement &&
      l.source === s.source &&
      (l.path ?? null) === (s.path ?? null) &&
      (l.labels === s.labels || (isEmpty(l.labels) && isEmpty(s.labels))) &&
      (l.hops ?? null) === (s.hops ?? null)
    )
      return this.lastProfile;
    const p = s.placement;
    const key = JSON.stringify([s.method, s.udpPort, s.tcpPort, s.intervalMs, s.thresholds, p.netns, p.iface, p.mark, s.source, s.path ?? null, s.labels ?? {}, s.hops ?? null]);
    let k = this.byKey.get(key);
    if (k === undefined) {
      k = this.profiles.length;
      // The profile in one shape, whoever built the settings (every read of it is then monomorphic).
      this.profiles.push({ method: s.method, udpPort: s.udpPort, tcpPort: s.tcpPort, intervalMs: s.intervalMs, thresholds: s.thresholds, placement: s.placement, source: s.source, path: s.path ?? null, labels: s.labels ?? {}, hops: s.hops ?? null });
      this.byKey.set(key, k);
    }
    this.last = s;
    this.lastProfile = k;
    return k;
  }

  private grow(cap: number): void {
    if (cap <= this.fam.length) return;
    const slab = new Uint8Array(ADDR_STRIDE * cap);
    slab.set(this.slab);
    const fam = new Uint8Array(cap);
    fam.set(this.fam);
    const prof = new Int32Array(cap);
    prof.set(this.prof);
    this.slab = slab;
    this.fam = fam;
    this.prof = prof;
  }
}

function isEmpty(o: Record<string, string> | undefined): boolean {
  if (o === undefined) return true;
  for (const _ in o) return false;
  return true;
}
