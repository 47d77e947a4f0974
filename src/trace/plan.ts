/**
 * Which probes go next, as a plan the engine asks (scamper's mode tables, as objects): the engine
 * sends what `next` picks, tells the plan what went out, and asks whether a hop can still get
 * probes; it never branches on which plan it runs. Three plans:
 *  - SeqPlan: probes in sequence order, TTL by TTL (traceroute's order; every TTL gets perTtl);
 *  - EcmpAutoPlan (ecmp-auto.ts, adapted here): flows per TTL until the MDA rule holds; a later
 *    TTL can still add to an earlier one, so hops settle together;
 *  - PmtuPlan: wraps another; a probe that bounced off a smaller MTU goes again first, smaller,
 *    and where the MTU dropped becomes an `mtu` event once the reporting router's hop settles.
 */
import type { ReplyRecord, Transport } from '../probe/transport.js';
import type { EcmpView } from './ecmp-auto.js';
import { EcmpAutoPlan, type EcmpAutoOptions } from './ecmp-auto.js';
import type { EcmpAutoStatement, HopReply, MtuEvent, StartEvent } from './events.js';
import { TRACE_SCHEMA } from './events.js';
import { PmtuState } from './pmtu.js';

/** What a plan sees of the trace: the per-TTL state and how far sending may go. */
export interface PlanView extends EcmpView {
  /** Sequence numbers below this were handed out. */
  nextSeq: number;
  /** No probe with seq >= limitSeq is sent (it shrinks when the trace stops early). */
  limitSeq: number;
  /** Sending has stopped (interrupted, deadline, error, silent). */
  stopped: boolean;
}

export interface ProbePlan {
  /** Hops settle together when all is quiet (a later TTL can still add to an earlier one), not one by one. */
  readonly settlesTogether: boolean;
  /** Anything to send now. */
  wants(v: PlanView): boolean;
  /** Picks up to `room` probes into seqs/ttls, in the order they should go; returns how many. */
  next(v: PlanView, room: number, seqs: Int32Array, ttls: Int32Array): number;
  /** Of the n picked, the first `sent` went out (the rest did not: a full socket buffer). */
  sent(seqs: Int32Array, ttls: Int32Array, sent: number, n: number): void;
  /** Probes TTL t gets in all, for settling one by one (a hop waits until they are out). */
  planned(t: number, v: PlanView): number;
  /** A reply to probe seq: 'record' it as its hop's answer, or 'resend' the probe (it never reached its TTL). */
  onReply(seq: number, ttl: number, addr: string | null, r: ReplyRecord): 'record' | 'resend';
  /** Probes the plan still holds that cannot matter any more (sending stopped, or beyond `stopTtl`): out of the plan, into `out`. */
  abandon(v: PlanView, stopTtl: number, ttlOf: (seq: number) => number, out: number[]): void;
  /** The hop event's multipath statement, where the plan has one. */
  statement(t: number, replies: HopReply[], addrs: string[]): EcmpAutoStatement | undefined;
  /** Hop t settled with these responders. */
  settled(t: number, addrs: string[]): void;
  /** Events now due (a drop's router now placed at a settled hop). */
  placed(tMs: number): MtuEvent[];
  /** Events at the start, and at the end. */
  begin(): MtuEvent[];
  end(tMs: number): MtuEvent[];
  /** What the done event adds. */
  doneFields(): { resent: number; path_mtu: number | null } | null;
  /** What the start event says of the plan (--ecmp auto's settings). */
  startFields(): StartEvent['ecmp'] | undefined;
}

const NONE: MtuEvent[] = [];

/** The plain plan: probes in sequence order up to the limit. */
export class SeqPlan implements ProbePlan {
  readonly settlesTogether: boolean = false;

  constructor(
    private readonly firstTtl: number,
    private readonly perTtl: number,
    private readonly ttlOf: (seq: number) => number,
  ) {}

  wants(v: PlanView): boolean {
    return v.nextSeq < v.limitSeq;
  }

  next(v: PlanView, room: number, seqs: Int32Array, ttls: Int32Array): number {
    const n = Math.max(0, Math.min(room, v.limitSeq - v.nextSeq));
    for (let i = 0; i < n; i++) {
      seqs[i] = v.nextSeq + i;
      ttls[i] = this.ttlOf(v.nextSeq + i);
    }
    return n;
  }

  sent(_seqs: Int32Array, _ttls: Int32Array, _sent: number, _n: number): void {}

  planned(t: number, v: PlanView): number {
    return Math.max(0, Math.min(this.perTtl, v.limitSeq - (t - this.firstTtl) * this.perTtl));
  }

  onReply(): 'record' {
    return 'record';
  }

  abandon(): void {}

  statement(_t: number, _replies: HopReply[], _addrs: string[]): EcmpAutoStatement | undefined {
    return undefined;
  }

  settled(): void {}

  placed(): MtuEvent[] {
    return NONE;
  }

  begin(): MtuEvent[] {
    return NONE;
  }

  end(): MtuEvent[] {
    return NONE;
  }

  doneFields(): null {
    return null;
  }

  startFields(): StartEvent['ecmp'] | undefined {
    return undefined;
  }
}

/** --ecmp auto's plan as the engine asks it. */
export class EcmpAutoProbePlan extends SeqPlan {
  override readonly settlesTogether = true;
  readonly ecmp: EcmpAutoPlan;

  constructor(
    firstTtl: number,
    perTtl: number,
    ttlOf: (seq: number) => number,
    private readonly o: EcmpAutoOptions,
  ) {
    super(firstTtl, perTtl, ttlOf);
    this.ecmp = new EcmpAutoPlan(o);
  }

  override startFields(): StartEvent['ecmp'] {
    return { mode: 'auto', confidence: this.ecmp.confidence, max_flows: this.o.maxFlows, first_hop_single: this.ecmp.firstHopSingle };
  }

  override wants(v: PlanView): boolean {
    return !v.stopped && this.ecmp.wants(v);
  }

  override next(v: PlanView, room: number, seqs: Int32Array, ttls: Int32Array): number {
    return this.ecmp.pick(v, room, seqs, ttls);
  }

  override sent(seqs: Int32Array, ttls: Int32Array, sent: number, n: number): void {
    if (sent < n) this.ecmp.unsent(seqs, ttls, sent, n);
  }

  override planned(): number {
    return Infinity;
  }

  override statement(t: number, replies: HopReply[], addrs: string[]): EcmpAutoStatement {
    return this.ecmp.statement(t, replies, addrs);
  }
}

/** --pmtu around another plan: resends first, drops placed as hops settle, the rest inferred at the end. */
export class PmtuPlan implements ProbePlan {
  private readonly pmtu: PmtuState;
  private readonly queue: number[];
  private resending = false;

  constructor(
    private readonly inner: ProbePlan,
    total: number,
    private readonly t: Transport,
    private readonly ttlOf: (seq: number) => number,
  ) {
    this.pmtu = new PmtuState(total, t);
    this.queue = this.pmtu.resendQueue;
  }

  get settlesTogether(): boolean {
    return this.inner.settlesTogether;
  }

  wants(v: PlanView): boolean {
    return this.queue.length > 0 || this.inner.wants(v);
  }

  next(v: PlanView, room: number, seqs: Int32Array, ttls: Int32Array): number {
    this.resending = this.queue.length > 0;
    if (!this.resending) return this.inner.next(v, room, seqs, ttls);
    // Probes sent again after an MTU drop go first: their hops are waiting for them.
    const n = Math.min(room, this.queue.length);
    for (let i = 0; i < n; i++) {
      seqs[i] = this.queue[i];
      ttls[i] = this.ttlOf(this.queue[i]);
    }
    return n;
  }

  sent(seqs: Int32Array, ttls: Int32Array, sent: number, n: number): void {
    if (this.resending) this.queue.splice(0, sent);
    else this.inner.sent(seqs, ttls, sent, n);
  }

  planned(t: number, v: PlanView): number {
    return this.inner.planned(t, v);
  }

  onReply(seq: number, ttl: number, addr: string | null, r: ReplyRecord): 'record' | 'resend' {
    if (!this.pmtu.bounces(r)) return 'record';
    this.pmtu.bounce(seq, ttl, addr, r);
    return 'resend';
  }

  abandon(v: PlanView, stopTtl: number, ttlOf: (seq: number) => number, out: number[]): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const q = this.queue[i];
      if (v.stopped || ttlOf(q) > stopTtl) {
        this.queue.splice(i, 1);
        out.push(q);
      }
    }
  }

  statement(t: number, replies: HopReply[], addrs: string[]): EcmpAutoStatement | undefined {
    return this.inner.statement(t, replies, addrs);
  }

  settled(t: number, addrs: string[]): void {
    this.pmtu.settled(t, addrs);
  }

  placed(tMs: number): MtuEvent[] {
    return this.pmtu.place(tMs);
  }

  begin(): MtuEvent[] {
    return this.t.packetLen !== undefined ? [{ schema: TRACE_SCHEMA, type: 'mtu', t_ms: 0, ttl: 0, mtu: this.t.packetLen, addr: null, inferred: false }] : NONE;
  }

  end(tMs: number): MtuEvent[] {
    // Drops whose router never answered at a lower TTL: the hop before the first probe it bounced
    // (every TTL is first probed at the full size), marked as inferred.
    return this.pmtu.inferRest(tMs);
  }

  doneFields(): { resent: number; path_mtu: number | null } {
    return { resent: this.pmtu.resent, path_mtu: this.t.packetLen ?? null };
  }

  startFields(): StartEvent['ecmp'] | undefined {
    return this.inner.startFields();
  }
}
