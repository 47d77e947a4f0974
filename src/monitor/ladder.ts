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
import type { OpenProber } from './request.js';
import type { Targets } from './targets.js';

/**
 * A prober and the targets it sends for in this tick: `idx[0, n)`, a typed array that grows by
 * doubling and is reused (a JS array emptied with `length = 0` gives its storage back, and the
 * next tick's pushes would allocate it again: tens of bytes a probe at 100,000 probes a second).
 */
export class Group {
  idx = new Int32Array(256);
  n = 0;

  constructor(readonly prober: Prober) {}

  push(i: number): void {
    if (this.n === this.idx.length) {
      const grown = new Int32Array(2 * this.n);
      grown.set(this.idx);
      this.idx = grown;
    }
    this.idx[this.n++] = i;
  }
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

  /** The group of an open prober: its index in `groups`. */
  groupOf(pr: Prober): number {
    const k = this.groups.findIndex((x) => x.prober === pr);
    if (k >= 0) return k;
    this.groups.push(new Group(pr));
    return this.groups.length - 1;
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

export type MethodNote = (action: MethodEvent['action'], method: ProbeMethod | null, from: ProbeMethod | null, reason: string, socket?: string | null) => void;

/** Moves target i to the first method at or after `step` that the kernel allows; false if none. */
export function chooseMethod(pool: ProberPool, T: Targets, i: number, step: number, from: ProbeMethod | null, reason: string, note: MethodNote): boolean {
  const methods = T.methods(i);
  const s = T.settings(i);
  for (let k = step; k < methods.length; k++) {
    const m = methods[k];
    const pr = pool.get(m, T.familyOf(i), s.placement, s.source);
    if (pr instanceof Error) {
      triedOf(T, i).set(m, `refused: ${pr.message}`);
      note('refused', m, null, pr.message);
      continue;
    }
    T.step[i] = k;
    T.group[i] = pool.groupOf(pr);
    note(from === null ? 'chosen' : 'switched', m, from, reason || (s.method === 'auto' ? 'the first method of the ladder the kernel allows' : 'as configured'), pr.socket);
    return true;
  }
  return false;
}

/** What each method got when it gave way, for target i (made on first use). */
export function triedOf(T: Targets, i: number): Map<ProbeMethod, string> {
  let m = T.tried.get(i);
  if (!m) T.tried.set(i, (m = new Map()));
  return m;
}

/** What each method got, for an `unreachable` reason. */
export function triedSummary(T: Targets, i: number): string {
  return [...(T.tried.get(i) ?? [])].map(([m, w]) => `${m}: ${w}`).join('; ');
}
