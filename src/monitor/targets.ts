/**
 * The monitor's per-target state, in columns indexed by target (struct of arrays): what every
 * probe reads (address bytes, interval, profile, ladder step, prober group, sequence) and what
 * every answer writes (jitter, confirmation burst), with health in its own columns. A hundred
 * thousand targets are a score of typed arrays and their names, about 60 bytes a target here
 * (the windows' rooms, the rings and the wheel hold the rest), not a hundred thousand objects.
 * The rare things (what a method got when it gave way, the address before a change) are kept in
 * maps, for the targets that have them.
 *
 * A target's two windows (filling and closing) are slots of the shared rooms (slotOf); when it
 * is next due lives in the wheel's column.
 */
import { type Family, formatIp } from '../packet/addr.js';
import type { ProbeMethod } from '../probe/transport.js';
import { HealthColumns } from './health.js';
import { LADDER, ONLY, type TargetSettings } from './request.js';
import { ADDR_STRIDE, TargetTable } from './table.js';
import { JitterColumns, WindowRooms } from './window.js';

export class Targets {
  readonly n: number;
  /** As given; null for an address given in its canonical form (name() makes it). */
  readonly given: (string | null)[];
  readonly profiles: TargetSettings[];
  /** Per profile: its ladder (`auto`'s, or the one method it is held to). */
  readonly ladders: ProbeMethod[][];
  readonly profileOf: Int32Array;
  /** Address bytes, ADDR_STRIDE a target (the family's first 4 or 16 used). */
  readonly addrs: Uint8Array;
  readonly family: Uint8Array;
  /** Ladder position (index in the ladder); -1 when no method could be had. */
  readonly step: Int8Array;
  /** The prober group the target sends through (the pool's groups); -1 none. */
  readonly group: Int16Array;
  readonly seq: Int32Array;
  /** --confirm: fast probes still to send after a loss, and whether the last outcome was an answer. */
  readonly confirmLeft: Int32Array;
  readonly lastOk: Uint8Array;
  readonly jitter: JitterColumns;
  readonly health: HealthColumns;
  /** What each method got when it last gave way (for the `unreachable` reason), per target that has any. */
  readonly tried = new Map<number, Map<ProbeMethod, string>>();
  /** The address before the last change (--resolve-every), answers from which count until `until`. */
  readonly old = new Map<number, { addr: Uint8Array; until: number }>();

  /** The table's columns are taken over (not copied). */
  constructor(t: TargetTable, seq0: number) {
    const n = (this.n = t.length);
    this.given = t.given;
    this.profiles = t.profiles;
    this.ladders = t.profiles.map((p) => (p.method === 'auto' ? LADDER : ONLY[p.method]));
    this.profileOf = new Int32Array(n);
    this.addrs = t.addresses.length === ADDR_STRIDE * n ? t.addresses : t.addresses.slice(0, ADDR_STRIDE * n);
    this.family = new Uint8Array(n);
    this.step = new Int8Array(n);
    this.group = new Int16Array(n).fill(-1);
    this.seq = new Int32Array(n);
    this.confirmLeft = new Int32Array(n);
    this.lastOk = new Uint8Array(n);
    this.jitter = new JitterColumns(n);
    this.health = new HealthColumns(n);
    for (let i = 0; i < n; i++) {
      const p = t.profileOf(i);
      this.profileOf[i] = p;
      this.family[i] = t.family(i);
      // Sequences spread over the sequence space from one random start.
      this.seq[i] = (seq0 + i * 7919) & 0xffff;
    }
  }

  /** Target i as given (name or address). */
  name(i: number): string {
    return this.given[i] ?? this.addr(i);
  }

  /** Target i's name, when its address text is at hand already. */
  nameOr(i: number, address: string): string {
    return this.given[i] ?? address;
  }

  /** Target i's interval, ms (its profile's). */
  intervalMs(i: number): number {
    return this.profiles[this.profileOf[i]].intervalMs;
  }

  settings(i: number): TargetSettings {
    return this.profiles[this.profileOf[i]];
  }

  methods(i: number): ProbeMethod[] {
    return this.ladders[this.profileOf[i]];
  }

  /** The method target i is on (its first rung when none could be had). */
  method(i: number): ProbeMethod {
    return this.ladders[this.profileOf[i]][Math.max(0, this.step[i])];
  }

  familyOf(i: number): Family {
    return this.family[i] as Family;
  }

  addrLen(i: number): number {
    return this.family[i] === 4 ? 4 : 16;
  }

  /** A copy of target i's address. */
  address(i: number): Uint8Array {
    return this.addrs.slice(ADDR_STRIDE * i, ADDR_STRIDE * i + this.addrLen(i));
  }

  /** Target i's address as text (events; made when asked, not kept). */
  addr(i: number): string {
    return formatIp(this.addrs, ADDR_STRIDE * i, this.familyOf(i));
  }

  /** Whether the bytes at buf[off..] are target i's address. */
  isAddr(i: number, buf: Uint8Array, off: number): boolean {
    const a = this.addrs;
    const o = ADDR_STRIDE * i;
    const len = this.addrLen(i);
    if (off + len > buf.length) return false;
    for (let k = 0; k < len; k++) if (buf[off + k] !== a[o + k]) return false;
    return true;
  }

  /** Target i's address is now `next` (same family). */
  setAddress(i: number, next: Uint8Array): void {
    this.addrs.set(next, ADDR_STRIDE * i);
  }
}

/** The targets' states, and their windows in shared rooms (two a target, room for its probes in a window). */
export function makeTargets(given: TargetTable, windowMs: number, seq0: number): { targets: Targets; rooms: WindowRooms } {
  const targets = new Targets(given, seq0);
  const n = targets.n;
  const caps = new Int32Array(2 * n);
  // A window's probes, and one more: a probe due at a window's end can leave in the next one.
  for (let i = 0; i < n; i++) caps[2 * i] = caps[2 * i + 1] = Math.ceil(windowMs / targets.intervalMs(i)) + 1;
  return { targets, rooms: new WindowRooms(caps) };
}

/** Target i's window w: its slot in the rooms (a target's two windows take turns). */
export const slotOf = (i: number, w: number): number => 2 * i + (w & 1);
