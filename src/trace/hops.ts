/**
 * Hops settled in TTL order: a TTL's hop event goes out once every probe it will get has an
 * outcome (one by one: once its planned probes are out and back; together, under --ecmp auto: when
 * all is quiet), never before a lower TTL's. It also keeps what the silent-stop rule of
 * --method auto reads (consecutive settled hops without a reply, the highest TTL that answered).
 */
import type { TraceEvents } from './emit.js';
import type { TraceEvent } from './events.js';
import type { PlanView, ProbePlan } from './plan.js';
import { type ProbeTable, TIMEDOUT } from './probes.js';

export class HopSettler {
  /** The lowest TTL not yet settled. */
  next: number;
  /** Consecutive settled hops without a reply. */
  private silentRun = 0;
  /** The highest TTL that got any reply. */
  private maxRepliedTtl = 0;

  constructor(
    private readonly firstTtl: number,
    private readonly table: ProbeTable,
    private readonly plan: ProbePlan,
    private readonly ev: TraceEvents,
    private readonly emit: (e: TraceEvent) => void,
  ) {
    this.next = this.firstTtl;
  }

  /** A reply was recorded at `ttl`. */
  replied(ttl: number): void {
    if (ttl > this.maxRepliedTtl) this.maxRepliedTtl = ttl;
  }

  /**
   * Emits every hop up to `stopTtl` that is settled, in TTL order (`running()`: probes may still
   * be sent; `view` brings the plan's view up to date). Returns 'silent' when `silentStop` hops in
   * a row, up to the last settled, stayed silent with nothing answering beyond them.
   */
  advance(stopTtl: number, running: () => boolean, silentStop: number, view: () => PlanView, tMs: () => number): 'silent' | null {
    const t = this.table;
    const plan = this.plan;
    let quiet: boolean | undefined;
    while (this.next <= stopTtl) {
      const h = this.next;
      const sent = t.ttlSent[h];
      // A hop waits while probes may still come for it: one by one, until its planned probes are
      // out; together (a later TTL can still add to it), until all is quiet.
      const moreComing = running() && (plan.settlesTogether ? (quiet ??= t.nInflight === 0 && !plan.wants(view())) === false : sent < plan.planned(h, view()));
      if (moreComing || t.ttlDone[h] < sent || sent === 0) break;
      this.emitHop(h, tMs());
      this.next++;
      for (const e of plan.placed(tMs())) this.emit(e);
      if (silentStop && running() && this.silentRun >= silentStop && this.maxRepliedTtl < h) return 'silent';
    }
    return null;
  }

  /** At the end: hops still unsettled can only be ones that get no more probes; what they have. */
  flush(stopTtl: number, tMs: number): void {
    while (this.next <= stopTtl && this.table.ttlSent[this.next] > 0) this.emitHop(this.next++, tMs);
  }

  private emitHop(h: number, tMs: number): void {
    const t = this.table;
    const replies = (t.hopReplies[h] ?? []).sort((a, b) => a.index - b.index);
    t.hopReplies[h] = null;
    const addrs: string[] = [];
    for (const r of replies) if (r.addr !== null && !addrs.includes(r.addr)) addrs.push(r.addr);
    this.plan.settled(h, addrs);
    this.silentRun = replies.length === 0 ? this.silentRun + 1 : 0;
    this.emit(this.ev.hop(tMs, h, t.ttlSent[h], replies, addrs, this.plan.statement(h, replies, addrs), this.noReplyFlows(h)));
  }

  /** Several flows per TTL: the flow of each probe at `h` that ended without a reply (per-branch loss needs them). */
  private noReplyFlows(h: number): number[] | undefined {
    if (this.ev.flowOf(0) === null) return undefined;
    const t = this.table;
    const base = (h - this.firstTtl) * t.perTtl;
    const out: number[] = [];
    for (let i = 0; i < t.perTtl; i++) if (t.state[base + i] === TIMEDOUT) out.push(this.ev.flowOf(base + i)!);
    return out;
  }
}
