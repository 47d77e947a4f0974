/**
 * The method ladder and the probers it draws on.
 *
 * ProberPool: one prober per method, family and way out (placement and source), opened on first
 * use and kept (a refusal is kept too, as the Error); each open prober has a group, the targets due
 * in this tick. The last lookup is remembered: targets from one file share their placement object,
 * and ten thousand of them would otherwise build ten thousand keys.
 *
 * chooseMethod: moves a target to the first method at or after a rung that the kernel allows,
 * saying why in a `method` event (`refused` for each one skipped).
 */
import { PathlensError } from '../core/errors.js';
import type { Placement } from '../io/placement.js';
import { type Family, parseIp } from '../packet/addr.js';
import type { ProbeMethod } from '../probe/transport.js';
import type { MethodEvent } from './events.js';
import type { Prober, ProberHooks, ProberOptions } from './prober.js';
import type { MethodChoice, OpenProber } from './request.js';

/** A prober and the targets it sends for in this tick. */
export interface Group {
  prober: Prober;
  idx: number[];
}

export class ProberPool {
  readonly groups: Group[] = [];
  /** The probers that opened (the tick reads them). */
  readonly list: Prober[] = [];
  private readonly byKey = new Map<string, Prober | Error>();
  private last: { m: ProbeMethod; family: Family; p: Placement; source: string | undefined; pr: Prober | Error } | null = null;

  constructor(
    private readonly open: OpenProber,
    private readonly session: number,
    private readonly hooks: ProberHooks,
    private readonly opts: ProberOptions,
  ) {}

  /** The prober for this method, family and way out, or why it cannot be had. */
  get(m: ProbeMethod, family: Family, p: Placement, source: string | undefined): Prober | Error {
    const last = this.last;
    if (last && last.m === m && last.family === family && last.p === p && last.source === source) return last.pr;
    const pr = this.byKeyOf(m, family, p, source);
    this.last = { m, family, p, source, pr };
    return pr;
  }

  private byKeyOf(m: ProbeMethod, family: Family, p: Placement, source: string | undefined): Prober | Error {
    const key = `${m}/${family}/${p.netns ?? ''}/${p.iface ?? ''}/${p.mark ?? ''}/${source ?? ''}`;
    let pr = this.byKey.get(key);
    if (!pr) {
      try {
        const src = source ? parseIp(source) : undefined;
        if (src && src.length !== (family === 4 ? 4 : 16)) throw new PathlensError('ERR_USAGE', `source ${source} is not an IPv${family} address`);
        pr = this.open(m, family, this.session, this.hooks, p, src, this.opts);
        this.list.push(pr);
      } catch (e) {
        pr = e as Error;
      }
      this.byKey.set(key, pr);
    }
    return pr;
  }

  /** The group of an open prober. */
  groupOf(pr: Prober): Group {
    let g = this.groups.find((x) => x.prober === pr);
    if (!g) this.groups.push((g = { prober: pr, idx: [] }));
    return g;
  }

  /** Reads what every prober has received. */
  poll(full = false): void {
    for (let k = 0; k < this.list.length; k++) this.list[k].poll?.(full);
  }

  /** Answers the probers' sockets dropped so far for a full receive buffer. */
  rxDropped(): number {
    let n = 0;
    for (let k = 0; k < this.list.length; k++) n += this.list[k].rxDropped?.() ?? 0;
    return n;
  }

  /** Target i's address changed. */
  forget(i: number): void {
    for (const pr of this.list) pr.forget?.(i);
  }

  close(): void {
    for (const pr of this.list) pr.close();
  }
}

/** What the ladder reads and moves of a target. */
export interface LadderTarget {
  readonly family: Family;
  readonly methods: ProbeMethod[];
  readonly t: { method: MethodChoice; placement: Placement; source?: string };
  /** Ladder position (index in `methods`); -1 when no method could be had. */
  step: number;
  prober: Prober;
  group: Group;
  /** What each method got when it last gave way (for the `unreachable` reason). */
  tried: Map<ProbeMethod, string> | null;
}

export type MethodNote = (action: MethodEvent['action'], method: ProbeMethod | null, from: ProbeMethod | null, reason: string, socket?: string | null) => void;

/** Moves s to the first method at or after `step` that the kernel allows; false if none. */
export function chooseMethod(pool: ProberPool, s: LadderTarget, step: number, from: ProbeMethod | null, reason: string, note: MethodNote): boolean {
  for (let k = step; k < s.methods.length; k++) {
    const m = s.methods[k];
    const pr = pool.get(m, s.family, s.t.placement, s.t.source);
    if (pr instanceof Error) {
      (s.tried ??= new Map()).set(m, `refused: ${pr.message}`);
      note('refused', m, null, pr.message);
      continue;
    }
    s.step = k;
    s.prober = pr;
    s.group = pool.groupOf(pr);
    note(from === null ? 'chosen' : 'switched', m, from, reason || (s.t.method === 'auto' ? 'the first method of the ladder the kernel allows' : 'as configured'), pr.socket);
    return true;
  }
  return false;
}

/** What each method got, for an `unreachable` reason. */
export function triedSummary(s: LadderTarget): string {
  return [...(s.tried ?? [])].map(([m, w]) => `${m}: ${w}`).join('; ');
}
