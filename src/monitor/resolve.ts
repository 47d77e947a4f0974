/**
 * Names looked up again on a schedule (--resolve-every), one at a time (a slow resolver delays only
 * itself). An address that changed is an `address` event; answers from the old one still count
 * for one timeout (probes sent there may still be answered).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Scheduler, TimerId } from '../core/scheduler.js';
import { type Family, formatIp, parseIp } from '../packet/addr.js';
import { MONITOR_SCHEMA, type MonitorEvent } from './events.js';
import type { TargetState } from './targets.js';

export type Lookup = (name: string, family?: Family) => Promise<Uint8Array>;

export const systemLookup: Lookup = async (name, family) => parseIp((await lookup(name, { family: family ?? 0 })).address);

export class Reresolver {
  private readonly named: TargetState[];
  private busy = false;
  private timer: TimerId | null = null;
  private stopped = false;

  constructor(
    targets: TargetState[],
    private readonly o: { everyMs: number; timeoutMs: number; lookup: Lookup; clock: Scheduler; now(): number; tms(): number; emit(e: MonitorEvent): void; changed(i: number): void },
  ) {
    this.named = targets.filter((s) => isIP(s.t.name) === 0);
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
    for (const s of this.named) {
      if (this.stopped) break;
      let next: Uint8Array;
      try {
        next = await o.lookup(s.t.name, s.family);
      } catch (e) {
        o.emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: o.tms(), code: 'ERR_RESOLVE', message: `${s.t.name}: looking it up again failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); probes keep going to ${s.addr}` });
        continue;
      }
      if (next.length !== s.t.address.length || next.every((b, k) => b === s.t.address[k])) continue;
      const from = s.addr;
      s.oldAddr = s.t.address;
      s.oldUntil = o.now() + o.timeoutMs;
      s.t.address = next;
      s.address = next;
      o.changed(s.index);
      s.addr = formatIp(next, 0, s.family);
      o.emit({ schema: MONITOR_SCHEMA, type: 'address', t_ms: o.tms(), target: s.t.name, address: s.addr, path: s.t.path, from });
    }
    this.busy = false;
  }
}
