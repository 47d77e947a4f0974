/**
 * The trace strategy loop: send a window of probes across many TTLs, fold replies and timeouts
 * into per-probe outcomes, settle hops in TTL order, and stop for an explicit reason. The loop is
 * all this file holds: per-probe state is a ProbeTable (probes.ts), which probes go next a
 * ProbePlan (plan.ts: sequence order, --ecmp auto, --pmtu resends), the events TraceEvents
 * (emit.ts), and the network a Transport (probe/transport.ts).
 *
 * Invariants (tested):
 *  - every probe sent ends in exactly one outcome: a reply or a timeout (no-reply); a reply that
 *    arrives after its timeout is reported as late and never changes the hop;
 *  - a reply is attributed only to the probe it was correlated to; anything else is "unmatched";
 *  - probes in flight never exceed maxInflight, nor, with other traces, the cap they share (pool);
 *    per-probe state is sized by the probe budget
 *    ((maxTtl - firstTtl + 1) * queries), so memory is flat however long the trace runs.
 */
import { realScheduler, type Scheduler, type TimerId } from '../core/scheduler.js';
import type { Sink } from '../core/sink.js';
import { formatIp, sameAddr } from '../packet/addr.js';
import { type ReplyRecord, type Transport, type TransportFacts, factsOf } from '../probe/transport.js';
import { diffMs, roundMs } from '../time/clock.js';
import { TraceEvents } from './emit.js';
import { type DoneEvent, type StopReason, TRACE_SCHEMA, type TimeoutEvent, type TraceEvent, type UnmatchedEvent } from './events.js';
import { EcmpAutoProbePlan, type PlanView, PmtuPlan, type ProbePlan, SeqPlan } from './plan.js';
import { HopSettler } from './hops.js';
import { ProbeTable, REPLIED, RESEND, TIMEDOUT, UNSENT } from './probes.js';
import { type EngineOptions, checkEngineOptions } from './request.js';

export type { EngineOptions };

export class TraceEngine {
  private readonly o: EngineOptions;
  private readonly transport: Transport;
  private readonly facts: TransportFacts;
  private readonly sink: Sink<TraceEvent>;
  private readonly ev: TraceEvents;
  private readonly table: ProbeTable;
  private readonly plan: ProbePlan;
  private readonly v: PlanView;
  private readonly batchSeqs: Int32Array;
  private readonly batchTtls: Int32Array;
  private nextSeq = 0;
  /** No probe with seq >= limitSeq is sent (shrinks when the target is reached or unreachable). */
  private limitSeq: number;
  private readonly hops: HopSettler;
  private t0 = 0;
  private deadlineAt = Infinity;
  private readonly clock: Scheduler;
  private timer: TimerId | null = null;
  private immediate: TimerId | null = null;
  private timerAt = Infinity;
  private pumping = false;
  private pumpQueued = false;
  private finished = false;
  private stopReason: StopReason | null = null;
  private failure: Error | null = null;
  private resolve!: (d: DoneEvent) => void;
  private readonly counts = { sent: 0, replies: 0, timeouts: 0, late: 0, unmatched: 0 };
  private readonly abandoned: number[] = [];
  private readonly onSentBound: (i: number, sec: number, nsec: number, retries: number) => void;
  private readonly ttlOfBound = (seq: number) => this.table.ttlOf(seq);
  private readonly viewBound = () => this.view();
  private readonly nowBound = () => this.now();
  private readonly runningBound = () => this.stopReason === null;
  /** Shared cap (several targets): how much of it this trace holds, and its wake-up. */
  private readonly pool: EngineOptions['pool'];
  private held = 0;
  private readonly wakeBound = () => this.schedulePump();
  /** The longest wait for one probe: -w, capped by what the method can honour. */
  private readonly waitMs: number;
  /** Probes per TTL: queries x flows. Probe index i at a TTL belongs to flow i % flows. */
  private readonly perTtl: number;

  constructor(o: EngineOptions, transport: Transport, sink: Sink<TraceEvent>) {
    checkEngineOptions(o);
    const flows = o.flows ?? 1;
    this.clock = o.scheduler ?? realScheduler;
    this.perTtl = o.queries * flows;
    this.o = o;
    this.pool = o.pool;
    this.transport = transport;
    this.facts = factsOf(transport);
    this.sink = sink;
    this.waitMs = Math.min(o.waitMs, this.facts.maxWaitMs);
    this.ev = new TraceEvents(o, transport, this.perTtl, flows);
    this.table = new ProbeTable({ firstTtl: o.firstTtl, maxTtl: o.maxTtl, perTtl: this.perTtl, maxInflight: o.maxInflight, waitMs: this.waitMs, adaptiveFactor: o.adaptiveFactor, minWaitMs: o.minWaitMs });
    this.limitSeq = this.table.total;
    this.batchSeqs = new Int32Array(o.maxInflight);
    this.batchTtls = new Int32Array(o.maxInflight);
    this.onSentBound = (i, sec, nsec, retries) => this.onSent(i, sec, nsec, retries);
    if (o.adaptive) {
      this.plan = new EcmpAutoProbePlan(o.firstTtl, this.perTtl, this.ttlOfBound, { firstTtl: o.firstTtl, maxTtl: o.maxTtl, ...o.adaptive });
    } else {
      this.plan = new SeqPlan(o.firstTtl, this.perTtl, this.ttlOfBound);
    }
    if (o.pmtu && this.facts.settableLength) this.plan = new PmtuPlan(this.plan, this.table.total, transport, this.ttlOfBound);
    this.hops = new HopSettler(o.firstTtl, this.table, this.plan, this.ev, (e) => this.emit(e));
    const t = this.table;
    this.v = { ttlSent: t.ttlSent, ttlDone: t.ttlDone, replies: t.hopReplies, stopTtl: Infinity, limitTtl: o.maxTtl, settledBelow: o.firstTtl, nextSeq: 0, limitSeq: this.limitSeq, stopped: false };
  }

  /** What the plan sees, brought up to date (one object, no allocation per look). */
  private view(): PlanView {
    const v = this.v;
    v.stopTtl = this.table.stopTtl;
    v.limitTtl = this.o.firstTtl + Math.ceil(this.limitSeq / this.perTtl) - 1;
    v.settledBelow = this.hops.next;
    v.nextSeq = this.nextSeq;
    v.limitSeq = this.limitSeq;
    v.stopped = this.stopReason !== null;
    return v;
  }

  /** Total probes this trace may send at most. */
  get budget(): number {
    return this.table.total;
  }

  get inflightCount(): number {
    return this.table.nInflight;
  }

  private now(): number {
    return roundMs(this.clock.now() - this.t0);
  }

  private emit(e: TraceEvent): void {
    this.sink.event(e);
  }

  private emitAll(list: TraceEvent[]): void {
    for (const e of list) this.sink.event(e);
  }

  run(): Promise<DoneEvent> {
    const o = this.o;
    this.t0 = this.clock.now();
    if (o.deadlineMs > 0) this.deadlineAt = this.t0 + o.deadlineMs;
    this.emit(this.ev.start(this.waitMs, this.plan.startFields()));
    this.emitAll(this.plan.begin());
    const done = new Promise<DoneEvent>((res) => (this.resolve = res));
    try {
      this.transport.start(
        (r) => this.onReply(r),
        (e) => this.fail(e),
      );
    } catch (e) {
      this.fail(e as Error);
      return done;
    }
    this.pump();
    return done;
  }

  /** Stops sending, declares what is in flight as no-reply, and finishes (SIGINT). */
  interrupt(): void {
    if (this.finished) return;
    this.stopAll('interrupted', 'stopped');
  }

  /** The error that ended the trace, when done.reason is 'error'. */
  get error(): Error | null {
    return this.failure;
  }

  private schedulePump(): void {
    if (this.pumpQueued || this.pumping || this.finished) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.finished || this.pumping) return;
    this.pumping = true;
    try {
      const o = this.o;
      const t = this.table;
      while (t.nInflight < o.maxInflight && this.stopReason === null && this.plan.wants(this.view())) {
        let room = Math.min(o.maxInflight - t.nInflight, this.facts.sendChunk);
        if (this.pool) {
          room = Math.min(room, this.pool.free);
          if (room === 0) {
            // The other traces hold the shared cap: go on when some of it comes back.
            this.pool.wait(this.wakeBound);
            break;
          }
        }
        const n = this.plan.next(this.view(), room, this.batchSeqs, this.batchTtls);
        if (n === 0) break;
        const sent = this.transport.send(this.batchSeqs, this.batchTtls, n, this.onSentBound);
        this.plan.sent(this.batchSeqs, this.batchTtls, sent, n);
        this.hold();
        if (this.finished) return;
        if (sent < n) {
          // Socket buffer full: try again shortly (a timer, not a spin).
          this.armTimer(this.clock.now() + 1);
          break;
        }
        if (this.facts.sendChunk !== Infinity && t.nInflight < o.maxInflight && this.plan.wants(this.view())) {
          // Slow sends (a socket per probe): let the loop read replies between chunks, so that
          // replies seen only in userspace are timed when they come, not after the whole window.
          if (!this.immediate) this.immediate = this.clock.defer(() => {
            this.immediate = null;
            this.pump();
          });
          break;
        }
      }
    } catch (e) {
      this.pumping = false;
      this.fail(e as Error);
      return;
    }
    this.pumping = false;
    this.settle();
  }

  /** Brings this trace's share of the pool to its probes in flight (taking or giving back). */
  private hold(): void {
    if (!this.pool) return;
    const now = this.table.nInflight;
    if (now > this.held) this.pool.take(now - this.held);
    else if (now < this.held) this.pool.give(this.held - now);
    this.held = now;
  }

  private onSent(i: number, sec: number, nsec: number, retries: number): void {
    const seq = this.batchSeqs[i];
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    const again = this.table.sent(seq, sec, nsec, this.clock.now());
    this.counts.sent++;
    this.emit(this.ev.probe(this.now(), seq, this.batchTtls[i], again, retries));
  }

  private onReply(r: ReplyRecord): void {
    if (this.finished) return;
    if (r.sendStamp) {
      // The kernel's send time (it arrives before the probe's answer: both come through the error
      // queue, in order). A probe already answered keeps the time its RTT was taken from.
      this.table.kernelSent(r.seq, r.sec, r.nsec);
      return;
    }
    const t = this.table;
    const addr = r.hasAddr ? formatIp(r.addrBuf, r.addrOff, r.family) : null;
    if (!this.attributable(r, addr)) return;
    const seq = r.seq;
    const ttl = t.ttlOf(seq);
    const rtt = roundMs(diffMs(t.txSec[seq], t.txNsec[seq], r.sec, r.nsec));
    const late = t.state[seq] === TIMEDOUT;
    if (!late && this.plan.onReply(seq, ttl, addr, r) === 'resend') {
      // --pmtu: the probe never reached its TTL (a router before it could not forward it). The
      // reply is reported (resend: true) but is not the hop's answer; the probe goes again, smaller.
      this.emit(this.ev.reply(this.now(), seq, ttl, addr, rtt, r, t.txKernel[seq] === 1, false, true));
      t.land(seq, RESEND);
      this.hold();
      this.emitAll(this.plan.placed(this.now()));
      this.schedulePump();
      return;
    }
    this.emit(this.ev.reply(this.now(), seq, ttl, addr, rtt, r, t.txKernel[seq] === 1, late, false));
    if (late) {
      this.counts.late++;
      return;
    }
    this.record(seq, ttl, addr, rtt, r);
    t.tighten(ttl, rtt);
    const fromTarget = r.hasAddr && sameAddr(r.addrBuf, r.addrOff, this.o.address);
    const stop = t.noteStop(ttl, fromTarget, r.kind === 'unreachable');
    if (stop !== Infinity) this.limitSeq = Math.min(this.limitSeq, (stop - this.o.firstTtl + 1) * this.perTtl);
    this.schedulePump();
  }

  /** A reply names a probe that is out (or already declared silent); anything else is unmatched. */
  private attributable(r: ReplyRecord, addr: string | null): boolean {
    if (r.seq < 0) {
      this.unmatched(r.unmatched ?? 'unknown-probe', addr, r.detail);
      return false;
    }
    const st = this.table.state[r.seq];
    if (st === UNSENT) this.unmatched('unsent', addr, `seq ${r.seq}`);
    else if (st === REPLIED) this.unmatched('duplicate', addr, `seq ${r.seq}`);
    else if (st === RESEND) this.unmatched('duplicate', addr, `seq ${r.seq} (already bounced)`);
    else return true;
    return false;
  }

  /** The probe's outcome: a reply, kept for its hop. */
  private record(seq: number, ttl: number, addr: string | null, rtt: number, r: ReplyRecord): void {
    const t = this.table;
    t.land(seq, REPLIED);
    this.hold();
    this.counts.replies++;
    this.hops.replied(ttl);
    t.ttlDone[ttl]++;
    (t.hopReplies[ttl] ??= []).push(this.ev.hopReply(seq, addr, rtt, r));
  }

  private unmatched(reason: UnmatchedEvent['reason'], addr: string | null, detail: string): void {
    this.counts.unmatched++;
    this.emit(this.ev.unmatched(this.now(), reason, addr, detail));
  }

  private timeout(seq: number, reason: TimeoutEvent['reason']): void {
    const t = this.table;
    const ttl = t.ttlOf(seq);
    t.land(seq, TIMEDOUT);
    this.hold();
    this.transport.expire?.(seq);
    t.ttlDone[ttl]++;
    this.counts.timeouts++;
    this.emit(this.ev.timeout(this.now(), seq, ttl, roundMs(this.clock.now() - t.txMono[seq]), reason));
  }

  private armTimer(at: number): void {
    if (this.finished) return;
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimer(() => this.onTimer(), Math.max(0, Math.ceil(at - this.clock.now())));
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.finished) return;
    // Anything already queued is a reply, not a timeout: read it first.
    try {
      this.transport.drain();
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    if (this.finished) return;
    const now = this.clock.now();
    if (now >= this.deadlineAt) {
      this.stopAll('deadline', 'deadline');
      return;
    }
    const t = this.table;
    for (let i = 0; i < t.nInflight; ) {
      const seq = t.inflight[i];
      // setTimeout has millisecond granularity: allow half a millisecond of earliness.
      if (t.deadline[seq] <= now + 0.5) this.timeout(seq, t.deadlineFromRtt[seq] ? 'adaptive' : 'wait');
      else i++;
    }
    this.pump();
  }

  /** Emits every hop that is settled, in TTL order; finishes when nothing is left to do. */
  private settle(): void {
    if (this.finished) return;
    const t = this.table;
    const plan = this.plan;
    const stopTtl = Math.min(t.stopTtl, this.o.maxTtl);
    if (this.hops.advance(stopTtl, this.runningBound, this.o.silentStop ?? 0, this.viewBound, this.nowBound) === 'silent') {
      // The last hops and everything beyond them stayed silent: give up on this method.
      this.stopAll('silent', 'stopped');
      return;
    }
    plan.abandon(this.view(), stopTtl, this.ttlOfBound, this.abandoned);
    for (const q of this.abandoned) this.timeout(q, 'stopped');
    this.abandoned.length = 0;
    if (this.hops.next > stopTtl && t.nInflight > 0 && !plan.wants(this.view())) {
      // Every hop up to where the trace stops is settled: probes still out beyond it cannot change
      // the result. They end now, explicitly, as no-reply with reason 'stopped'.
      while (t.nInflight > 0) this.timeout(t.inflight[0], 'stopped');
    }
    if (t.nInflight === 0 && (this.stopReason !== null || !plan.wants(this.view()))) {
      this.finish();
      return;
    }
    const earliest = t.earliest(this.deadlineAt);
    if (earliest !== Infinity) this.armTimer(earliest);
  }

  private stopAll(reason: StopReason, timeoutReason: TimeoutEvent['reason']): void {
    this.stopReason = reason;
    this.limitSeq = Math.min(this.limitSeq, this.nextSeq);
    const t = this.table;
    while (t.nInflight > 0) this.timeout(t.inflight[0], timeoutReason);
    this.settle();
  }

  private fail(e: Error): void {
    if (this.finished) return;
    this.failure = e;
    const code = (e as { code?: string }).code ?? 'ERR_INTERNAL';
    this.emit({ schema: TRACE_SCHEMA, type: 'error', t_ms: this.now(), code, message: e.message });
    this.stopAll('error', 'stopped');
  }

  private finish(): void {
    if (this.finished) return;
    const o = this.o;
    const t = this.table;
    this.hops.flush(Math.min(t.stopTtl, o.maxTtl), this.now());
    this.emitAll(this.plan.end(this.now()));
    this.finished = true;
    this.pool?.leave(this.wakeBound);
    this.hold();
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = null;
    if (this.immediate) this.clock.clearTimer(this.immediate);
    this.immediate = null;
    this.transport.close();
    const reached = t.reachedTtl !== Infinity;
    let reason: StopReason;
    if (this.stopReason === 'error' || this.stopReason === 'interrupted' || this.stopReason === 'deadline' || this.stopReason === 'silent') reason = this.stopReason;
    else if (reached) reason = 'reached';
    else if (t.unreachTtl !== Infinity) reason = 'unreachable';
    else reason = 'max-ttl';
    const done = this.ev.done(this.now(), reached, reason, Math.max(0, this.hops.next - o.firstTtl), this.counts, this.transport.stats, o.pmtu ? (this.plan.doneFields() ?? { resent: 0, path_mtu: this.transport.packetLen ?? null }) : null);
    this.emit(done);
    this.resolve(done);
  }
}
