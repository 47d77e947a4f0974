/**
 * Names looked up again on a schedule (--resolve-every), one at a time (a slow resolver delays only
 * itself). An address that changed is an `address` event; answers from the old one still count
 * for one timeout (probes sent there may still be answered).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Scheduler, TimerId } from '../core/scheduler.js';
import { type Family, parseIp } from '../packet/addr.js';
import { MONITOR_SCHEMA, type MonitorEvent } from './events.js';
import type { Targets } from './targets.js';

export type Lookup = (name: string, family?: Family) => Promise<Uint8Array>;

export const systemLookup: Lookup = async (name, family) => parseIp((await lookup(name, { family: family ?? 0 })).address);

export class Reresolver {
  /** The targets given by name. */
  private readonly named: number[] = [];
  private busy = false;
  private timer: TimerId | null = null;
  private stopped = false;

  constructor(
    private readonly T: Targets,
    private readonly o: { everyMs: number; timeoutMs: number; lookup: Lookup; clock: Scheduler; now(): number; tms(): number; emit(e: MonitorEvent): void; changed(i: number): void },
  ) {
    for (let i = 0; i < T.n; i++) if (T.given[i] !== null && isIP(T.given[i]!) === 0) this.named.push(i);
  }

  start(): void {
    if (this.named.length === 0 || !(this.o.everyMs > 0)) return;
    const again = () => {
      this.timer = this.o.clock.setTimer(again, this.o.everyMs);
      void this.round();
    };
    this.timer = this.o.clock.setTimer(again, this.o.everyMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.o.clock.clearTimer(this.timer);
    this.timer = null;
  }

  /** Looks every name up once; returns when the round is over. */
  async round(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    const o = this.o;
    const T = this.T;
    for (const i of this.named) {
      if (this.stopped) break;
      const name = T.name(i);
      let next: Uint8Array;
      try {
        next = await o.lookup(name, T.familyOf(i));
      } catch (e) {
        o.emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: o.tms(), code: 'ERR_RESOLVE', message: `${name}: looking it up again failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); probes keep going to ${T.addr(i)}` });
        continue;
      }
      if (next.length !== T.addrLen(i) || T.isAddr(i, next, 0)) continue;
      const from = T.addr(i);
      T.old.set(i, { addr: T.address(i), until: o.now() + o.timeoutMs });
      T.setAddress(i, next);
      o.changed(i);
      o.emit({ schema: MONITOR_SCHEMA, type: 'address', t_ms: o.tms(), target: name, address: T.addr(i), path: T.settings(i).path, from });
    }
    this.busy = false;
  }
}
