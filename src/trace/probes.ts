/**
 * Per-probe state of one trace (Trippy's TracerState, in columns): each probe's state, send times
 * (userspace or the kernel's), deadline and whether it came from the RTTs seen; per TTL the probes
 * sent and settled and the smallest RTT at or beyond it; the set of probes in flight; where the
 * trace stops (the target reached, or a router saying it cannot be). Sized by the probe budget,
 * so memory is flat however long the trace runs. No I/O and no events: the engine drives it.
 */
import type { HopReply } from './events.js';

export const UNSENT = 0;
export const INFLIGHT = 1;
export const REPLIED = 2;
export const TIMEDOUT = 3;
/** Bounced by a smaller MTU on the way (--pmtu): waiting to be sent again. */
export const RESEND = 4;

export interface ProbeTableOptions {
  firstTtl: number;
  maxTtl: number;
  /** Probes per TTL: queries x flows. */
  perTtl: number;
  maxInflight: number;
  /** The longest wait for one probe, ms. */
  waitMs: number;
  /** A silent probe is overdue after this multiple of the smallest RTT seen at its TTL or beyond ... */
  adaptiveFactor: number;
  /** ... but never before this many ms. */
  minWaitMs: number;
}

export class ProbeTable {
  readonly total: number;
  readonly state: Uint8Array;
  readonly txSec: Float64Array;
  readonly txNsec: Float64Array;
  /** 1: txSec/txNsec are the kernel's send timestamp; 0: the time taken just before the probe's own sendmsg. */
  readonly txKernel: Uint8Array;
  /** Monotonic send time (the scheduler's clock), for deadlines. */
  readonly txMono: Float64Array;
  readonly deadline: Float64Array;
  /** 1: the probe's deadline came from the RTTs seen (adaptiveFactor), not from waitMs. */
  readonly deadlineFromRtt: Uint8Array;
  /** Smallest RTT seen at TTL >= t (index t), ms. */
  readonly minRttFrom = new Float64Array(257).fill(Infinity);
  readonly ttlSent = new Int32Array(257);
  readonly ttlDone = new Int32Array(257);
  /** Answered probes per TTL, until the hop is settled. */
  readonly hopReplies: (HopReply[] | null)[] = new Array(257).fill(null);
  /** Probes in flight, in no order, and each one's position in that list (-1: not in flight). */
  readonly inflight: Int32Array;
  private readonly inflightPos: Int32Array;
  nInflight = 0;
  reachedTtl = Infinity;
  unreachTtl = Infinity;

  /** Probes per TTL (queries x flows). */
  get perTtl(): number {
    return this.o.perTtl;
  }

  constructor(private readonly o: ProbeTableOptions) {
    this.total = (o.maxTtl - o.firstTtl + 1) * o.perTtl;
    const n = this.total;
    this.state = new Uint8Array(n);
    this.txSec = new Float64Array(n);
    this.txNsec = new Float64Array(n);
    this.txKernel = new Uint8Array(n);
    this.txMono = new Float64Array(n);
    this.deadline = new Float64Array(n);
    this.deadlineFromRtt = new Uint8Array(n);
    this.inflight = new Int32Array(o.maxInflight);
    this.inflightPos = new Int32Array(n).fill(-1);
  }

  ttlOf(seq: number): number {
    return this.o.firstTtl + Math.floor(seq / this.o.perTtl);
  }

  /** Where the trace stops: the lowest TTL at which the target answered or a router said unreachable (Infinity: not yet). */
  get stopTtl(): number {
    return Math.min(this.reachedTtl, this.unreachTtl);
  }

  /** Probe `seq` left at (sec, nsec) realtime, `mono` on the scheduler's clock; returns whether it was a resend. */
  sent(seq: number, sec: number, nsec: number, mono: number): boolean {
    const again = this.state[seq] === RESEND;
    this.state[seq] = INFLIGHT;
    this.txSec[seq] = sec;
    this.txNsec[seq] = nsec;
    this.txKernel[seq] = 0;
    this.txMono[seq] = mono;
    if (!again) this.ttlSent[this.ttlOf(seq)]++;
    this.inflightPos[seq] = this.nInflight;
    this.inflight[this.nInflight++] = seq;
    this.setDeadline(seq);
    return again;
  }

  /** The kernel's send time of probe `seq`, when it is still out or declared silent; false otherwise. */
  kernelSent(seq: number, sec: number, nsec: number): boolean {
    if (seq < 0 || seq >= this.total) return false;
    const st = this.state[seq];
    if (st !== INFLIGHT && st !== TIMEDOUT) return false;
    this.txSec[seq] = sec;
    this.txNsec[seq] = nsec;
    this.txKernel[seq] = 1;
    return true;
  }

  /**
   * The probe's deadline: waitMs after it left, or sooner when the hops after it answered (a
   * multiple of the smallest RTT seen at its TTL or beyond, never under minWaitMs). Past the hop
   * where the trace stops, that hop's RTT is the evidence: such probes would be answered by the
   * same node (which may rate-limit them).
   */
  setDeadline(seq: number): void {
    const o = this.o;
    const base = this.txMono[seq] + o.waitMs;
    const stopTtl = this.stopTtl;
    const ttl = this.ttlOf(seq);
    const ref = this.minRttFrom[ttl > stopTtl ? stopTtl : ttl];
    if (ref !== Infinity) {
      const fromRtt = this.txMono[seq] + Math.max(o.minWaitMs, o.adaptiveFactor * ref);
      if (fromRtt < base) {
        this.deadline[seq] = fromRtt;
        this.deadlineFromRtt[seq] = 1;
        return;
      }
    }
    this.deadline[seq] = base;
    this.deadlineFromRtt[seq] = 0;
  }

  /** Probe `seq` has its outcome (a reply, a timeout, a bounce): out of the in-flight set. */
  land(seq: number, state: number): void {
    this.state[seq] = state;
    const pos = this.inflightPos[seq];
    if (pos < 0) return;
    const last = this.inflight[--this.nInflight];
    this.inflight[pos] = last;
    this.inflightPos[last] = pos;
    this.inflightPos[seq] = -1;
  }

  /** Later hops bound how long earlier ones can take: a new smallest RTT tightens their deadlines. */
  tighten(ttl: number, rtt: number): void {
    if (!(rtt >= 0 && rtt < this.minRttFrom[ttl])) return;
    for (let t = ttl; t >= this.o.firstTtl && rtt < this.minRttFrom[t]; t--) this.minRttFrom[t] = rtt;
    for (let i = 0; i < this.nInflight; i++) {
      const s = this.inflight[i];
      if (this.ttlOf(s) <= ttl) this.setDeadline(s);
    }
  }

  /**
   * A reply at `ttl` from the target, or an unreachable: where the trace stops may move down, and
   * what is out beyond it waits less. Returns the new stop TTL (Infinity: none yet).
   */
  noteStop(ttl: number, fromTarget: boolean, unreachable: boolean): number {
    const prev = this.stopTtl;
    if (fromTarget) {
      if (ttl < this.reachedTtl) this.reachedTtl = ttl;
    } else if (unreachable) {
      if (ttl < this.unreachTtl) this.unreachTtl = ttl;
    }
    const stop = this.stopTtl;
    if (stop !== Infinity && (stop < ttl || stop !== prev)) {
      for (let i = 0; i < this.nInflight; i++) {
        const s = this.inflight[i];
        if (this.ttlOf(s) > stop) this.setDeadline(s);
      }
    }
    return stop;
  }

  /** The earliest deadline in flight, or `bound` when none is earlier. */
  earliest(bound: number): number {
    let e = bound;
    for (let i = 0; i < this.nInflight; i++) {
      const d = this.deadline[this.inflight[i]];
      if (d < e) e = d;
    }
    return e;
  }
}
