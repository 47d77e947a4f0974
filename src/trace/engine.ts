/**
 * The trace strategy loop: send a window of probes across many TTLs, fold replies and timeouts
 * into per-probe outcomes, settle hops in TTL order, and stop for an explicit reason.
 *
 * Invariants (tested):
 *  - every probe sent ends in exactly one outcome: a reply or a timeout (no-reply); a reply that
 *    arrives after its timeout is reported as late and never changes the hop;
 *  - a reply is attributed only to the probe it was correlated to; anything else is "unmatched";
 *  - probes in flight never exceed maxInflight; per-probe state is sized by the probe budget
 *    ((maxTtl - firstTtl + 1) * queries), so memory is flat however long the trace runs.
 */
import { realScheduler, type Scheduler, type TimerId } from '../core/scheduler.js';
import { PathlensError } from '../core/errors.js';
import type { Sink } from '../core/sink.js';
import { formatIp, sameAddr } from '../packet/addr.js';
import { diffMs, roundMs } from '../time/clock.js';
import {
  type DoneEvent,
  type HopReply,
  type StopReason,
  TRACE_SCHEMA,
  type TimeoutEvent,
  type TraceEvent,
} from './events.js';
import { flowOf, multipath } from './flows.js';
import { PmtuState } from './pmtu.js';
import { AdaptivePlan, FLOW_SPACE } from './adaptive.js';
import type { Egress } from '../io/route.js';
import type { ReplyRecord, Transport } from '../probe/transport.js';

export interface EngineOptions {
  /** The target as the user gave it, and its address bytes. */
  target: string;
  address: Uint8Array;
  firstTtl: number;
  maxTtl: number;
  queries: number;
  /** ECMP exploration: distinct flow identities per TTL (each gets `queries` probes); 1 otherwise. */
  flows?: number;
  /**
   * --ecmp auto: `flows` is FLOW_SPACE (the identities probes may take); per TTL, flows are added
   * until the MDA stopping rule holds at `confidence`, at most maxFlows (see AdaptivePlan). Needs
   * queries = 1.
   */
  adaptive?: { confidence: number; firstHopSingle: boolean; maxFlows: number };
  /** The route the kernel chose for the probes (start event), or why it is unknown. */
  egress?: Egress | { error: string };
  basePort: number;
  /** Longest wait for any one probe, ms. */
  waitMs: number;
  /** A silent probe is overdue after this multiple of the smallest RTT seen at its TTL or beyond. */
  adaptiveFactor: number;
  /** ... but never before this many ms. */
  minWaitMs: number;
  maxInflight: number;
  payloadLen: number;
  /** Whole-trace deadline in ms (0: none). */
  deadlineMs: number;
  /** Path MTU discovery: a Fragmentation Needed / Packet Too Big sends the probe again, smaller. */
  pmtu?: boolean;
  /** The TOS / traffic class byte the probes carry (--tos), for the start event. */
  tos?: number;
  /**
   * --method auto: stop (reason 'silent') once this many consecutive hops, up to the highest TTL,
   * had no reply and nothing answered beyond them: the probes are probably filtered.
   */
  silentStop?: number;
  version: string;
  /** Time and timers (the real clock unless a test gives a virtual one). */
  scheduler?: Scheduler;
}

const UNSENT = 0;
const INFLIGHT = 1;
const REPLIED = 2;
const TIMEDOUT = 3;
/** Bounced by a smaller MTU on the way (--pmtu): waiting to be sent again. */
const RESEND = 4;
const NO_RESENDS: number[] = [];

export class TraceEngine {
  private readonly o: EngineOptions;
  private readonly prober: Transport;
  private readonly sink: Sink<TraceEvent>;
  private readonly total: number;
  private readonly state: Uint8Array;
  private readonly txSec: Float64Array;
  /** 1: txSec/txNsec are the kernel's send timestamp; 0: the time taken just before sendmmsg. */
  private readonly txKernel: Uint8Array;
  private readonly txNsec: Float64Array;
  private readonly txMono: Float64Array;
  private readonly deadline: Float64Array;
  private readonly adaptive: Uint8Array;
  /** Smallest RTT seen at TTL >= t (index t), ms. */
  private readonly minRttFrom: Float64Array;
  private readonly ttlSent: Int32Array;
  private readonly ttlDone: Int32Array;
  private readonly hopReplies: (HopReply[] | null)[];
  private readonly inflight: Int32Array;
  private readonly inflightPos: Int32Array;
  private nInflight = 0;
  private readonly batchSeqs: Int32Array;
  private readonly batchTtls: Int32Array;
  private nextSeq = 0;
  /** No probe with seq >= limitSeq is sent (shrinks when the target is reached or unreachable). */
  private limitSeq: number;
  private reachedTtl = Infinity;
  private unreachTtl = Infinity;
  private nextHopTtl: number;
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
  /** --pmtu: its own state (resends, where the MTU drops); null without --pmtu. */
  private readonly pmtu: PmtuState | null;
  /** Probes waiting to be sent again (always empty without --pmtu). */
  private readonly resendQueue: number[];
  /** Consecutive settled hops without a reply, and the highest TTL that got any reply. */
  private silentRun = 0;
  private maxRepliedTtl = 0;
  private readonly onSentBound: (i: number, sec: number, nsec: number, retries: number) => void;
  /** The longest wait for one probe: -w, capped by what the method can honour. */
  private readonly waitMs: number;
  /** Probes per TTL: queries x flows. Probe index i at a TTL belongs to flow i % flows. */
  private readonly perTtl: number;
  private readonly flows: number;
  /** --ecmp auto: which flows to send next, per TTL; null otherwise (probes go in seq order). */
  private readonly plan: AdaptivePlan | null;

  constructor(o: EngineOptions, prober: Transport, sink: Sink<TraceEvent>) {
    if (o.firstTtl < 1 || o.maxTtl > 255 || o.firstTtl > o.maxTtl) throw new PathlensError('ERR_USAGE', 'TTLs must satisfy 1 <= first <= max <= 255');
    if (o.queries < 1 || o.queries > 10) throw new PathlensError('ERR_USAGE', 'queries per hop must be 1..10');
    const flows = o.flows ?? 1;
    if (!(flows >= 1 && flows <= 256)) throw new PathlensError('ERR_USAGE', 'flows per hop must be 1..256');
    this.flows = flows;
    this.clock = o.scheduler ?? realScheduler;
    this.perTtl = o.queries * flows;
    if (o.maxInflight < 1 || o.maxInflight > 256) throw new PathlensError('ERR_USAGE', 'max in-flight probes must be 1..256');
    this.o = o;
    this.prober = prober;
    this.sink = sink;
    this.total = (o.maxTtl - o.firstTtl + 1) * this.perTtl;
    this.limitSeq = this.total;
    this.state = new Uint8Array(this.total);
    this.txSec = new Float64Array(this.total);
    this.txKernel = new Uint8Array(this.total);
    this.txNsec = new Float64Array(this.total);
    this.txMono = new Float64Array(this.total);
    this.deadline = new Float64Array(this.total);
    this.adaptive = new Uint8Array(this.total);
    this.pmtu = o.pmtu && prober.setPacketLen ? new PmtuState(this.total, prober) : null;
    this.resendQueue = this.pmtu?.resendQueue ?? NO_RESENDS;
    this.minRttFrom = new Float64Array(257).fill(Infinity);
    this.ttlSent = new Int32Array(257);
    this.ttlDone = new Int32Array(257);
    this.hopReplies = new Array(257).fill(null);
    this.inflight = new Int32Array(o.maxInflight);
    this.inflightPos = new Int32Array(this.total).fill(-1);
    this.batchSeqs = new Int32Array(o.maxInflight);
    this.batchTtls = new Int32Array(o.maxInflight);
    this.nextHopTtl = o.firstTtl;
    this.waitMs = Math.min(o.waitMs, prober.maxWaitMs ?? Infinity);
    this.onSentBound = (i, sec, nsec, retries) => this.onSent(i, sec, nsec, retries);
    if (o.adaptive) {
      if (o.queries !== 1) throw new PathlensError('ERR_USAGE', '--ecmp auto sends one probe per flow and hop (-q 1)');
      if (flows !== FLOW_SPACE) throw new PathlensError('ERR_USAGE', `--ecmp auto needs ${FLOW_SPACE} flow identities per hop`);
      this.plan = new AdaptivePlan({ firstTtl: o.firstTtl, maxTtl: o.maxTtl, maxFlows: o.adaptive.maxFlows, confidence: o.adaptive.confidence, firstHopSingle: o.adaptive.firstHopSingle });
    } else {
      this.plan = null;
    }
  }

  /** Anything left to send (in seq order, or as the adaptive plan wants). */
  private moreToSend(): boolean {
    if (this.plan) return this.stopReason === null && this.plan.wants(this.view());
    return this.nextSeq < this.limitSeq;
  }

  /** What the adaptive plan sees of the per-TTL state. */
  private view() {
    return { ttlSent: this.ttlSent, ttlDone: this.ttlDone, replies: this.hopReplies, stopTtl: Math.min(this.reachedTtl, this.unreachTtl), limitTtl: this.o.firstTtl + Math.ceil(this.limitSeq / this.perTtl) - 1, settledBelow: this.nextHopTtl };
  }

  /** Total probes this trace may send at most. */
  get budget(): number {
    return this.total;
  }

  get inflightCount(): number {
    return this.nInflight;
  }

  private ttlOf(seq: number): number {
    return this.o.firstTtl + Math.floor(seq / this.perTtl);
  }

  private now(): number {
    return roundMs(this.clock.now() - this.t0);
  }

  private emit(e: TraceEvent): void {
    this.sink.event(e);
  }

  run(): Promise<DoneEvent> {
    const o = this.o;
    this.t0 = this.clock.now();
    if (o.deadlineMs > 0) this.deadlineAt = this.t0 + o.deadlineMs;
    this.emit({
      schema: TRACE_SCHEMA,
      type: 'start',
      t_ms: 0,
      version: o.version,
      time: new Date().toISOString(),
      method: this.prober.method,
      socket: this.prober.socketKind,
      family: this.prober.family,
      target: o.target,
      address: formatIp(o.address, 0, this.prober.family),
      source: this.prober.source,
      src_port: this.prober.srcPort,
      first_ttl: o.firstTtl,
      max_ttl: o.maxTtl,
      queries: o.queries,
      ...(this.flows > 1 ? { flows: this.flows } : {}),
      port: o.basePort,
      wait_ms: this.waitMs,
      adaptive_factor: o.adaptiveFactor,
      max_inflight: o.maxInflight,
      payload_len: o.payloadLen,
      deadline_ms: o.deadlineMs > 0 ? o.deadlineMs : null,
      tos: o.tos ?? null,
      quote_header: this.prober.quotesHeader === true,
      ...(o.egress ? { egress: o.egress } : {}),
      ...(this.plan ? { ecmp: { mode: 'auto' as const, confidence: this.plan.confidence, max_flows: o.adaptive!.maxFlows, first_hop_single: this.plan.firstHopSingle } } : {}),
    });
    if (o.pmtu && this.prober.packetLen !== undefined) {
      this.emit({ schema: TRACE_SCHEMA, type: 'mtu', t_ms: 0, ttl: 0, mtu: this.prober.packetLen, addr: null, inferred: false });
    }
    const done = new Promise<DoneEvent>((res) => (this.resolve = res));
    try {
      this.prober.start(
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
      while (this.nInflight < o.maxInflight && (this.moreToSend() || this.resendQueue.length > 0) && this.stopReason === null) {
        const room = Math.min(o.maxInflight - this.nInflight, this.prober.sendChunk ?? Infinity);
        let n: number;
        const resending = this.resendQueue.length > 0;
        if (resending) {
          // Probes sent again after an MTU drop go first: their hops are waiting for them.
          n = Math.min(room, this.resendQueue.length);
          for (let i = 0; i < n; i++) {
            this.batchSeqs[i] = this.resendQueue[i];
            this.batchTtls[i] = this.ttlOf(this.resendQueue[i]);
          }
        } else if (this.plan) {
          n = this.plan.pick(this.view(), room, this.batchSeqs, this.batchTtls);
          if (n === 0) break;
        } else {
          n = Math.min(room, this.limitSeq - this.nextSeq);
          for (let i = 0; i < n; i++) {
            this.batchSeqs[i] = this.nextSeq + i;
            this.batchTtls[i] = this.ttlOf(this.nextSeq + i);
          }
        }
        const sent = this.prober.send(this.batchSeqs, this.batchTtls, n, this.onSentBound);
        if (resending) this.resendQueue.splice(0, sent);
        else if (this.plan && sent < n) this.plan.unsent(this.batchSeqs, this.batchTtls, sent, n);
        if (this.finished) return;
        if (sent < n) {
          // Socket buffer full: try again shortly (a timer, not a spin).
          this.armTimer(this.clock.now() + 1);
          break;
        }
        if (this.prober.sendChunk !== undefined && this.nInflight < o.maxInflight && (this.moreToSend() || this.resendQueue.length > 0)) {
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

  private onSent(i: number, sec: number, nsec: number, retries: number): void {
    const seq = this.batchSeqs[i];
    const ttl = this.batchTtls[i];
    const again = this.state[seq] === RESEND;
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    this.state[seq] = INFLIGHT;
    this.txSec[seq] = sec;
    this.txNsec[seq] = nsec;
    this.txKernel[seq] = 0;
    const mono = this.clock.now();
    this.txMono[seq] = mono;
    if (!again) this.ttlSent[ttl]++;
    this.counts.sent++;
    this.inflightPos[seq] = this.nInflight;
    this.inflight[this.nInflight++] = seq;
    this.setDeadline(seq);
    this.emit({
      schema: TRACE_SCHEMA,
      type: 'probe',
      t_ms: this.now(),
      seq,
      ttl,
      index: seq % this.perTtl,
      dst_port: this.prober.dstPort(seq),
      ...(this.flows > 1 ? { flow: flowOf(seq, this.perTtl, this.flows) } : {}),
      ...(again ? { resent: true } : {}),
      ...(this.o.pmtu && this.prober.packetLen !== undefined ? { len: this.prober.packetLen } : {}),
      ...(this.prober.srcPortOf ? { src_port: this.prober.srcPortOf(seq) } : {}),
      ...(this.prober.echoSeqOf ? { echo_seq: this.prober.echoSeqOf(seq) } : {}),
      retries,
    });
  }

  private setDeadline(seq: number): void {
    const o = this.o;
    const base = this.txMono[seq] + this.waitMs;
    // Past the hop where the trace stops (target reached or unreachable), that hop's RTT is the
    // evidence: such probes would be answered by the same node (which may rate-limit them).
    const stopTtl = Math.min(this.reachedTtl, this.unreachTtl);
    const ttl = this.ttlOf(seq);
    const ref = this.minRttFrom[ttl > stopTtl ? stopTtl : ttl];
    if (ref !== Infinity) {
      const adaptive = this.txMono[seq] + Math.max(o.minWaitMs, o.adaptiveFactor * ref);
      if (adaptive < base) {
        this.deadline[seq] = adaptive;
        this.adaptive[seq] = 1;
        return;
      }
    }
    this.deadline[seq] = base;
    this.adaptive[seq] = 0;
  }

  private removeInflight(seq: number): void {
    const pos = this.inflightPos[seq];
    if (pos < 0) return;
    const last = this.inflight[--this.nInflight];
    this.inflight[pos] = last;
    this.inflightPos[last] = pos;
    this.inflightPos[seq] = -1;
  }

  private onReply(r: ReplyRecord): void {
    if (this.finished) return;
    if (r.sendStamp) {
      this.onSendStamp(r.seq, r.sec, r.nsec);
      return;
    }
    const addr = r.hasAddr ? formatIp(r.addrBuf, r.addrOff, r.family) : null;
    if (!this.attributable(r, addr)) return;
    const seq = r.seq;
    const ttl = this.ttlOf(seq);
    const rtt = roundMs(diffMs(this.txSec[seq], this.txNsec[seq], r.sec, r.nsec));
    const late = this.state[seq] === TIMEDOUT;
    if (!late && this.pmtu?.bounces(r)) {
      this.bounce(seq, ttl, addr, rtt, r);
      return;
    }
    this.emitReply(seq, ttl, addr, rtt, r, late, false);
    if (late) {
      this.counts.late++;
      return;
    }
    this.record(seq, ttl, addr, rtt, r);
    this.tightenDeadlines(ttl, rtt);
    this.noteStop(ttl, r);
    this.schedulePump();
  }

  /**
   * The kernel's send time of probe `seq` (it arrives before the probe's answer: both come through
   * the error queue, in order). A probe already answered keeps the time its RTT was taken from.
   */
  private onSendStamp(seq: number, sec: number, nsec: number): void {
    if (seq < 0 || seq >= this.total) return;
    const st = this.state[seq];
    if (st !== INFLIGHT && st !== TIMEDOUT) return;
    this.txSec[seq] = sec;
    this.txNsec[seq] = nsec;
    this.txKernel[seq] = 1;
  }

  /** A reply names a probe that is out (or already declared silent); anything else is unmatched. */
  private attributable(r: ReplyRecord, addr: string | null): boolean {
    if (r.seq < 0) {
      this.unmatched(r.unmatched ?? 'unknown-probe', addr, r.detail);
      return false;
    }
    const st = this.state[r.seq];
    if (st === UNSENT) this.unmatched('unsent', addr, `seq ${r.seq}`);
    else if (st === REPLIED) this.unmatched('duplicate', addr, `seq ${r.seq}`);
    else if (st === RESEND) this.unmatched('duplicate', addr, `seq ${r.seq} (already bounced)`);
    else return true;
    return false;
  }

  /** The probe's outcome: a reply, kept for its hop. */
  private record(seq: number, ttl: number, addr: string | null, rtt: number, r: ReplyRecord): void {
    this.state[seq] = REPLIED;
    this.counts.replies++;
    if (ttl > this.maxRepliedTtl) this.maxRepliedTtl = ttl;
    this.removeInflight(seq);
    this.ttlDone[ttl]++;
    let list = this.hopReplies[ttl];
    if (!list) list = this.hopReplies[ttl] = [];
    list.push({
      addr,
      rtt_ms: rtt,
      kind: r.kind,
      code: r.code,
      index: seq % this.perTtl,
      ...(this.flows > 1 ? { flow: flowOf(seq, this.perTtl, this.flows) } : {}),
      ...(r.mpls ? { mpls: r.mpls } : {}),
      ...(r.unverified ? { unverified: true as const } : {}),
      ...(r.quotedTos >= 0 ? { quoted_tos: r.quotedTos, quoted_ttl: r.quotedTtl } : {}),
    });
  }

  /** Later hops bound how long earlier ones can take: a new smallest RTT tightens their deadlines. */
  private tightenDeadlines(ttl: number, rtt: number): void {
    if (!(rtt >= 0 && rtt < this.minRttFrom[ttl])) return;
    for (let t = ttl; t >= this.o.firstTtl && rtt < this.minRttFrom[t]; t--) this.minRttFrom[t] = rtt;
    for (let i = 0; i < this.nInflight; i++) {
      const s = this.inflight[i];
      if (this.ttlOf(s) <= ttl) this.setDeadline(s);
    }
  }

  /** The target answered, or a router said it cannot be reached: nothing beyond is sent, and what is out beyond waits less. */
  private noteStop(ttl: number, r: ReplyRecord): void {
    const prevStop = Math.min(this.reachedTtl, this.unreachTtl);
    const fromTarget = r.hasAddr && sameAddr(r.addrBuf, r.addrOff, this.o.address);
    if (fromTarget) {
      if (ttl < this.reachedTtl) this.reachedTtl = ttl;
    } else if (r.kind === 'unreachable') {
      if (ttl < this.unreachTtl) this.unreachTtl = ttl;
    }
    const stopTtl = Math.min(this.reachedTtl, this.unreachTtl);
    if (stopTtl === Infinity) return;
    this.limitSeq = Math.min(this.limitSeq, (stopTtl - this.o.firstTtl + 1) * this.perTtl);
    if (stopTtl < ttl || stopTtl !== prevStop) {
      for (let i = 0; i < this.nInflight; i++) {
        const s = this.inflight[i];
        if (this.ttlOf(s) > stopTtl) this.setDeadline(s);
      }
    }
  }

  private emitReply(seq: number, ttl: number, addr: string | null, rtt: number, r: ReplyRecord, late: boolean, resend: boolean): void {
    this.emit({
      schema: TRACE_SCHEMA,
      type: 'reply',
      t_ms: this.now(),
      seq,
      ttl,
      index: seq % this.perTtl,
      addr,
      rtt_ms: rtt,
      kind: r.kind,
      code: r.code,
      icmp_type: r.icmpType >= 0 ? r.icmpType : null,
      icmp_code: r.icmpCode >= 0 ? r.icmpCode : null,
      late,
      kernel_ts: r.kernelTs,
      send_ts: this.txKernel[seq] ? 'kernel-sw' : 'userspace',
      recv_ts: r.kernelTs ? 'kernel-sw' : 'userspace',
      ...(r.mtu > 0 ? { mtu: r.mtu } : {}),
      ...(r.mpls ? { mpls: r.mpls } : {}),
      ...(r.ifindex > 0 ? { ifindex: r.ifindex } : {}),
      ...(r.quotedTos >= 0 ? { quoted_tos: r.quotedTos, quoted_ttl: r.quotedTtl } : {}),
      ...(resend ? { resend: true } : {}),
      ...(r.unverified ? { unverified: true as const } : {}),
    });
  }

  /**
   * --pmtu: the probe never reached its TTL (a router before it could not forward it). The reply
   * is reported (resend: true) but is not the hop's answer; the probe is sent again, smaller.
   */
  private bounce(seq: number, ttl: number, addr: string | null, rtt: number, r: ReplyRecord): void {
    this.emitReply(seq, ttl, addr, rtt, r, false, true);
    this.removeInflight(seq);
    this.state[seq] = RESEND;
    this.pmtu!.bounce(seq, ttl, addr, r);
    this.placeDrops();
    this.schedulePump();
  }

  /** Emits an mtu event for each drop whose reporting router has been seen at a settled hop. */
  private placeDrops(): void {
    if (!this.pmtu) return;
    for (const e of this.pmtu.place(this.now())) this.emit(e);
  }

  private unmatched(reason: 'unknown-probe' | 'cookie-mismatch' | 'wrong-destination' | 'duplicate' | 'malformed' | 'unsent', addr: string | null, detail: string): void {
    this.counts.unmatched++;
    this.emit({ schema: TRACE_SCHEMA, type: 'unmatched', t_ms: this.now(), reason, addr, detail });
  }

  private timeout(seq: number, reason: TimeoutEvent['reason']): void {
    const ttl = this.ttlOf(seq);
    this.state[seq] = TIMEDOUT;
    this.prober.expire?.(seq);
    this.removeInflight(seq);
    this.ttlDone[ttl]++;
    this.counts.timeouts++;
    this.emit({
      schema: TRACE_SCHEMA,
      type: 'timeout',
      t_ms: this.now(),
      seq,
      ttl,
      index: seq % this.perTtl,
      waited_ms: roundMs(this.clock.now() - this.txMono[seq]),
      reason,
    });
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
      this.prober.drain();
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
    for (let i = 0; i < this.nInflight; ) {
      const seq = this.inflight[i];
      // setTimeout has millisecond granularity: allow half a millisecond of earliness.
      if (this.deadline[seq] <= now + 0.5) {
        this.timeout(seq, this.adaptive[seq] ? 'adaptive' : 'wait');
      } else {
        i++;
      }
    }
    this.pump();
  }

  /** Emits every hop that is settled, in TTL order; finishes when nothing is left to do. */
  private settle(): void {
    if (this.finished) return;
    const o = this.o;
    const lastSeq = this.limitSeq;
    let quiet: boolean | undefined;
    const stopTtl = Math.min(this.reachedTtl, this.unreachTtl, o.maxTtl);
    while (this.nextHopTtl <= stopTtl) {
      const t = this.nextHopTtl;
      const sent = this.ttlSent[t];
      let moreComing: boolean;
      if (this.plan) {
        // A later TTL can still add to this one: hops settle together, when all is quiet.
        moreComing = this.stopReason === null && (quiet ??= this.nInflight === 0 && !this.plan.wants(this.view())) === false;
      } else {
        const planned = Math.max(0, Math.min(this.perTtl, lastSeq - (t - o.firstTtl) * this.perTtl));
        moreComing = this.stopReason === null && sent < planned;
      }
      if (moreComing || this.ttlDone[t] < sent || sent === 0) break;
      this.emitHop(t);
      this.nextHopTtl++;
      this.placeDrops();
      if (o.silentStop && this.stopReason === null && this.silentRun >= o.silentStop && this.maxRepliedTtl < t) {
        // The last hops and everything beyond them stayed silent: give up on this method.
        this.stopAll('silent', 'stopped');
        return;
      }
    }
    for (let i = this.resendQueue.length - 1; i >= 0; i--) {
      const q = this.resendQueue[i];
      if (this.stopReason !== null || this.ttlOf(q) > stopTtl) {
        this.resendQueue.splice(i, 1);
        this.timeout(q, 'stopped');
      }
    }
    if (this.nextHopTtl > stopTtl && this.nInflight > 0 && !this.moreToSend() && this.resendQueue.length === 0) {
      // Every hop up to where the trace stops is settled: probes still out beyond it cannot change
      // the result. They end now, explicitly, as no-reply with reason 'stopped'.
      while (this.nInflight > 0) this.timeout(this.inflight[0], 'stopped');
    }
    if (this.nInflight === 0 && this.resendQueue.length === 0 && (!this.moreToSend() || this.stopReason !== null)) {
      this.finish();
      return;
    }
    let earliest = this.deadlineAt;
    for (let i = 0; i < this.nInflight; i++) {
      const d = this.deadline[this.inflight[i]];
      if (d < earliest) earliest = d;
    }
    if (earliest !== Infinity) this.armTimer(earliest);
  }

  private emitHop(t: number): void {
    const replies = (this.hopReplies[t] ?? []).sort((a, b) => a.index - b.index);
    this.hopReplies[t] = null;
    const addrs: string[] = [];
    for (const r of replies) if (r.addr !== null && !addrs.includes(r.addr)) addrs.push(r.addr);
    this.pmtu?.settled(t, addrs);
    this.silentRun = replies.length === 0 ? this.silentRun + 1 : 0;
    this.emit({
      schema: TRACE_SCHEMA,
      type: 'hop',
      t_ms: this.now(),
      ttl: t,
      probes: this.ttlSent[t],
      replies,
      no_reply: this.ttlSent[t] - replies.length,
      addrs,
      ...(this.flows > 1 ? multipath(replies, addrs, this.plan ? this.plan.statement(t, replies, addrs) : undefined) : {}),
    });
  }

  private stopAll(reason: StopReason, timeoutReason: TimeoutEvent['reason']): void {
    this.stopReason = reason;
    this.limitSeq = Math.min(this.limitSeq, this.nextSeq);
    while (this.nInflight > 0) this.timeout(this.inflight[0], timeoutReason);
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
    // Hops still unsettled can only be ones that will get no more probes; emit what they have.
    const stopTtl = Math.min(this.reachedTtl, this.unreachTtl, o.maxTtl);
    while (this.nextHopTtl <= stopTtl && this.ttlSent[this.nextHopTtl] > 0) this.emitHop(this.nextHopTtl++);
    // Drops whose router never answered at a lower TTL: the hop before the first probe it bounced
    // (every TTL is first probed at the full size), marked as inferred.
    if (this.pmtu) for (const e of this.pmtu.inferRest(this.now())) this.emit(e);
    this.finished = true;
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = null;
    if (this.immediate) this.clock.clearTimer(this.immediate);
    this.immediate = null;
    this.prober.close();
    const reached = this.reachedTtl !== Infinity;
    let reason: StopReason;
    if (this.stopReason === 'error' || this.stopReason === 'interrupted' || this.stopReason === 'deadline' || this.stopReason === 'silent') reason = this.stopReason;
    else if (reached) reason = 'reached';
    else if (this.unreachTtl !== Infinity) reason = 'unreachable';
    else reason = 'max-ttl';
    const st = this.prober.stats;
    const done: DoneEvent = {
      schema: TRACE_SCHEMA,
      type: 'done',
      t_ms: this.now(),
      reached,
      reason,
      hops: Math.max(0, this.nextHopTtl - o.firstTtl),
      probes_sent: this.counts.sent,
      replies: this.counts.replies,
      timeouts: this.counts.timeouts,
      late: this.counts.late,
      unmatched: this.counts.unmatched,
      send_retries: st.retries,
      send_calls: st.sendCalls,
      recv_calls: st.recvCalls,
      duration_ms: this.now(),
      ...(o.pmtu ? { resent: this.pmtu?.resent ?? 0, path_mtu: this.prober.packetLen ?? null } : {}),
    };
    this.emit(done);
    this.resolve(done);
  }
}
