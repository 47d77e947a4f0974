/**
 * --ecmp auto: which probes to send, so that multipath exploration stops when it knows enough
 * (the MDA stopping rule) instead of when a fixed flow count runs out.
 *
 * Flows have numbers (0..FLOW_SPACE-1) and a flow keeps its identity at every TTL (Paris flows),
 * so a flow answered at TTL t and at t+1 links a node at t to its successor. Per TTL:
 *   - the rule: with k distinct next hops seen, n_k flows must have answered, n_k being the MDA's
 *     count for ruling out a (k+1)-th equally likely next hop at the requested confidence; every
 *     new next hop raises k and the count; flows without a reply do not count;
 *   - successors: every node at t-1 gets one of its own flows probed at t (MDA-Lite's reuse: no
 *     search for flows through a node), so each node's next hop is seen;
 *   - predecessors: every node seen at t+1 should have one of its flows probed at t; one that has
 *     none (it was reached by flows new at t+1) gets one, which finds a node the rule missed at t.
 *     Within t's rule count that probe costs nothing extra; past it, only when t+1 shows more
 *     nodes than t (else merging branches, or routers that answer from the interface of their
 *     route back, explain the unlinked node, and the probe would only meet a node already known),
 *     and one at a time;
 *   - the rest of the rule's count is made of flows not probed at t-1, so that each TTL samples
 *     the branches afresh instead of replaying the TTL before it.
 * The same number of probes as a hop-by-hop MDA on a diamond when every hop is complete; when one
 * TTL's sample missed a branch, the adjacent TTL's usually has it, and the links between them
 * bring it back. Further:
 *   - a TTL opens with one probe (a scout) only when the TTL before it answered from somewhere
 *     other than the target, or stayed silent: nothing is sent past the destination, where the
 *     target's one answer ends the trace;
 *   - hop 1 needs one answer when the kernel's own route to the target has a single next hop (asked
 *     over rtnetlink): a packet with TTL 1 can only reach that gateway;
 *   - a TTL that stays silent gets SILENT_TRIES probes;
 *   - at most `maxFlows` flows at one TTL; a hop the cap stopped says so.
 * TTLs are explored in parallel once open. A later TTL can still add to an earlier one, so hops
 * are settled together when nothing is left to send or wait for.
 */
import type { EcmpAutoStatement, HopReply } from './events.js';
import { flowsNeeded } from './mda.js';

/** Probes at a TTL that gets no answer at all (as traceroute's three). */
export const SILENT_TRIES = 3;
/** Flow identities the probers build for --ecmp auto (fresh flows at t avoid those of t-1). */
export const FLOW_SPACE = 256;

export interface EcmpView {
  /** Probes sent / with an outcome, per TTL. */
  ttlSent: Int32Array;
  ttlDone: Int32Array;
  /** Answered probes per TTL (null: none yet). */
  replies: (HopReply[] | null)[];
  /** The TTL where the target answered or a router said unreachable (Infinity: not yet). */
  stopTtl: number;
  /** The highest TTL any probe may go to. */
  limitTtl: number;
  /** The lowest TTL not yet settled. */
  settledBelow: number;
}

export interface EcmpAutoOptions {
  firstTtl: number;
  maxTtl: number;
  maxFlows: number;
  confidence: number;
  firstHopSingle: boolean;
}

export class EcmpAutoPlan {
  readonly confidence: number;
  readonly firstHopSingle: boolean;
  private readonly o: EcmpAutoOptions;
  /** rule[k]: answered flows that rule out a (k+1)-th next hop (0: not computed yet). */
  private readonly rule: Int32Array;
  /** Per TTL: which flows were sent (allocated when the TTL opens). */
  private readonly sent: (Uint8Array | null)[] = new Array(257).fill(null);
  private openTtl: number;
  private readonly scratch: number[] = [];

  constructor(o: EcmpAutoOptions) {
    if (!(o.confidence > 0 && o.confidence < 1)) throw new RangeError('confidence must be in (0, 1)');
    if (!(o.maxFlows >= 1 && o.maxFlows <= FLOW_SPACE)) throw new RangeError(`the flow cap must be 1..${FLOW_SPACE}`);
    this.o = o;
    this.confidence = o.confidence;
    this.firstHopSingle = o.firstHopSingle;
    this.rule = new Int32Array(FLOW_SPACE + 2);
    this.openTtl = o.firstTtl;
    this.sent[o.firstTtl] = new Uint8Array(FLOW_SPACE);
  }

  /** The MDA's flow count for k next hops seen (memoized: it is computed when first needed). */
  private ruleFor(k: number): number {
    const i = Math.min(k, this.rule.length - 1);
    if (this.rule[i] === 0) this.rule[i] = flowsNeeded(i, this.confidence);
    return this.rule[i];
  }

  /** Hop 1 when the local route has a single next hop: one answer says it all. */
  private byRoute(t: number): boolean {
    return t === 1 && this.o.firstTtl === 1 && this.firstHopSingle;
  }

  /** Flows that must answer at TTL t for the rule to hold, given what answered so far (uncapped). */
  needAt(t: number, replies: HopReply[]): number {
    if (this.byRoute(t)) return 1;
    return this.ruleFor(distinct(replies));
  }

  /** Opens the TTLs whose predecessor answered from a router (not the target) or stayed silent. */
  private advance(v: EcmpView): void {
    while (this.openTtl < Math.min(this.o.maxTtl, v.limitTtl)) {
      const t = this.openTtl;
      const answered = v.replies[t]?.length ?? 0;
      const open = (answered > 0 && t < v.stopTtl) || (answered === 0 && v.ttlDone[t] > 0);
      if (!open) return;
      this.sent[++this.openTtl] = new Uint8Array(FLOW_SPACE);
    }
  }

  /** A flow not yet sent at t, preferably one not sent at t-1 either (a fresh sample), or -1. */
  private fresh(t: number, taken: number[]): number {
    const here = this.sent[t]!;
    const before = t > this.o.firstTtl ? this.sent[t - 1] : null;
    let fallback = -1;
    for (let f = 0; f < FLOW_SPACE; f++) {
      if (here[f] || taken.includes(f)) continue;
      if (!before || !before[f]) return f;
      if (fallback < 0) fallback = f;
    }
    return fallback;
  }

  /**
   * Flows TTL t should get now, in order, into `out` (cleared first): links to the TTLs around it,
   * then fresh flows for the rule; one scout while nothing has answered.
   */
  private candidates(v: EcmpView, t: number, out: number[]): void {
    out.length = 0;
    if (t > this.openTtl || t >= v.stopTtl || t > v.limitTtl) return;
    const here = this.sent[t]!;
    const sent = v.ttlSent[t];
    const inFlight = sent - v.ttlDone[t];
    if (sent >= this.o.maxFlows) return;
    const list = v.replies[t];
    const answered = list?.length ?? 0;
    // Predecessors: a node at t+1 (not the target) none of whose flows was probed at t (hop 1
    // known single from the route has nothing to find). Such a flow counts toward t's own rule;
    // past the rule it is sent only when t+1 shows more nodes than t, the sign of a node t missed
    // (with as many nodes or fewer, branches merging or a router answering from the interface of
    // its route back explains it, and the probe would find a node already known).
    const next = v.replies[t + 1];
    if (answered > 0 && next && !this.byRoute(t) && t + 1 < v.stopTtl && t + 1 <= this.openTtl && v.ttlSent[t + 1] === v.ttlDone[t + 1]) {
      // Past the rule, one at a time: each answer says whether it found a node (then the rule asks
      // for more flows anyway) or met one already known.
      const within = this.needAt(t, list!) - answered - inFlight;
      const room = within > 0 ? within : distinct(next) > distinct(list!) && inFlight === 0 ? 1 : 0;
      if (room > 0) linkFlows(next, here, out, room);
    }
    // Successors: a node at t-1 none of whose flows was probed at t.
    const prev = t > this.o.firstTtl ? v.replies[t - 1] : null;
    if (prev) linkFlows(prev, here, out);
    if (answered === 0) {
      if (sent === 0) {
        // The scout: one probe until this TTL is known not to be the target's.
        if (out.length === 0) out.push(this.fresh(t, out));
        out.length = 1;
        return;
      }
      if (v.ttlDone[t] === 0) {
        out.length = 0;
        return;
      }
      // Silent so far: up to SILENT_TRIES in all.
      const room = Math.max(0, Math.min(SILENT_TRIES, this.o.maxFlows) - sent);
      while (out.length < room) {
        const f = this.fresh(t, out);
        if (f < 0) break;
        out.push(f);
      }
      out.length = Math.min(out.length, room);
      return;
    }
    let more = this.needAt(t, list!) - answered - inFlight - out.length;
    while (more-- > 0) {
      const f = this.fresh(t, out);
      if (f < 0) break;
      out.push(f);
    }
    out.length = Math.min(out.length, this.o.maxFlows - sent);
  }

  /** Anything to send now. */
  wants(v: EcmpView): boolean {
    this.advance(v);
    for (let t = v.settledBelow; t <= this.openTtl; t++) {
      this.candidates(v, t, this.scratch);
      if (this.scratch.length > 0) return true;
    }
    return false;
  }

  /** Fills seqs/ttls with up to `room` probes (TTL order); returns how many. seq = (t - first) * FLOW_SPACE + flow. */
  pick(v: EcmpView, room: number, seqs: Int32Array, ttls: Int32Array): number {
    this.advance(v);
    let n = 0;
    for (let t = v.settledBelow; t <= this.openTtl && n < room; t++) {
      this.candidates(v, t, this.scratch);
      const base = (t - this.o.firstTtl) * FLOW_SPACE;
      for (const f of this.scratch) {
        if (n >= room) break;
        this.sent[t]![f] = 1;
        seqs[n] = base + f;
        ttls[n++] = t;
      }
    }
    return n;
  }

  /** Picked probes [from, to) that were not sent after all (a full socket buffer): not sent. */
  unsent(seqs: Int32Array, ttls: Int32Array, from: number, to: number): void {
    for (let i = from; i < to; i++) this.sent[ttls[i]]![seqs[i] % FLOW_SPACE] = 0;
  }

  /** The hop event's statement: the confidence asked for, and whether the rule (not the cap) ended the hop. */
  statement(t: number, replies: HopReply[], addrs: string[]): EcmpAutoStatement {
    if (addrs.length === 0) return { confidence: this.confidence, complete: false };
    return { confidence: this.confidence, complete: replies.length >= this.needAt(t, replies), ...(this.byRoute(t) ? { by_route: true as const } : {}) };
  }
}

/** For each node answering in `replies` none of whose flows is in `sentHere`: its lowest such flow, once (at most `room` more in `out`). */
function linkFlows(replies: HopReply[], sentHere: Uint8Array, out: number[], room = FLOW_SPACE): void {
  const linked = new Set<string | null>();
  const end = out.length + room;
  for (const r of replies) if (r.flow !== undefined && sentHere[r.flow]) linked.add(r.addr);
  for (const r of replies) {
    if (out.length >= end) return;
    if (r.flow === undefined || linked.has(r.addr) || out.includes(r.flow)) continue;
    linked.add(r.addr);
    out.push(r.flow);
  }
}

function distinct(list: HopReply[]): number {
  let k = 0;
  for (let i = 0; i < list.length; i++) {
    const a = list[i].addr;
    let seen = false;
    for (let j = 0; j < i; j++) if (list[j].addr === a) {
      seen = true;
      break;
    }
    if (!seen) k++;
  }
  return Math.max(1, k);
}
