/**
 * Per-hop statistics across rounds, shared by trace's continuous mode, the monitor's paths and
 * `pathlens report`, with mtr's meanings: per TTL, the probes whose outcome is known (Snt), the
 * replies, loss % = (sent − received) / sent, the last, mean, best and worst RTT, the sample
 * standard deviation (mtr's StDev: n − 1, Welford's update), and jitter: the difference between
 * consecutive RTTs at that hop (mtr's Jttr), its mean (Javg) and maximum (Jmax), and RFC 3550's
 * interarrival jitter J += (|D| − J) / 16 (mtr's Jint). Responders are counted per address.
 *
 * With several flow identities per hop (ECMP, `--ecmp K`), each hop also keeps its **branches**:
 * one per responding address, fed by the flows that reached it (a flow's lost probes count
 * against the address that flow last reached; a flow never answered is the branch `addr: null`),
 * each with the same figures. Every hop gets a loss verdict (`verdict.ts`) and the path MTU up to
 * it when `--pmtu` reported one.
 *
 * Pure: fed one settled hop at a time (`HopSample`: what a `hop` event carries), read as HopStats.
 * Memory is bounded: 256 TTLs, per TTL at most MAX_RESPONDERS addresses (the rest counted as
 * `other`) and MAX_FLOWS flow identities.
 */
import { type LossVerdict, classifyLoss } from './verdict.js';

export const MAX_RESPONDERS = 16;
/** Flow identities followed per TTL for branches (the rest are left out of the branches, counted). */
export const MAX_FLOWS = 256;

/** What one settled hop of one round brings: its probes, and the replies (index = probe number at the TTL). */
export interface HopSample {
  ttl: number;
  probes: number;
  replies: readonly { addr: string | null; rtt_ms: number; index: number; flow?: number; kind?: string; code?: string }[];
  /** ECMP: the flow of each probe that got no reply (one entry per probe). */
  no_reply_flows?: readonly number[];
}

/** Figures of one set of probes (a hop, or one branch of it). */
export interface Figures {
  sent: number;
  received: number;
  /** Percent, 0..100. */
  loss: number;
  last_ms: number | null;
  mean_ms: number | null;
  best_ms: number | null;
  worst_ms: number | null;
  stdev_ms: number | null;
  /** |RTT − previous RTT|: last, mean and max (null before two replies). */
  jitter_ms: number | null;
  jitter_mean_ms: number | null;
  jitter_max_ms: number | null;
  /** RFC 3550 interarrival jitter. */
  jitter_rfc3550_ms: number | null;
}

/** One ECMP branch at a hop: the address the flows reached (null: flows never answered), and their figures. */
export interface BranchStats extends Figures {
  addr: string | null;
  flows: number[];
}

/** Per-hop statistics across rounds (mtr's meanings), as `hop-stats` events carry them. */
export interface HopStats extends Figures {
  ttl: number;
  /** Addresses that answered at this TTL, most replies first, and how many replies came from others past the limit. */
  responders: { addr: string; count: number }[];
  other_responders: number;
  /**
   * What the loss at this hop means, from the later hops' figures: `none` (no loss), `rate-limited`
   * (a later hop answers significantly more: probes went through, this hop's replies were limited
   * or filtered), `onward` (later hops lose as much or more: real loss from here on), `unknown`
   * (no later hop to compare with, or too few probes).
   */
  loss_verdict?: LossVerdict;
  /** The later hop the verdict rests on: its TTL, loss % and probes. */
  loss_evidence?: { ttl: number; loss: number; sent: number } | null;
  /** ECMP (several flows per hop): each branch with its own figures. */
  branches?: BranchStats[];
  /** Flows past MAX_FLOWS, left out of the branches. */
  other_flows?: number;
  /** --pmtu: the path MTU of the probes that reach this hop (the smallest next-hop MTU reported before it). */
  pmtu?: number;
  /** Tables that keep their RTTs (the monitor's windows): the median and 90th percentile (nearest rank). */
  median_ms?: number | null;
  p90_ms?: number | null;
}

/** RTTs a hop keeps for its quantiles, at most (a window of rounds has far fewer). */
export const MAX_KEPT_RTTS = 4096;

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Running figures of one set of probes. */
export class Acc {
  sent = 0;
  received = 0;
  last = 0;
  mean = 0;
  m2 = 0;
  best = Infinity;
  worst = -Infinity;
  jitter = 0;
  jitterSum = 0;
  jitterN = 0;
  jitterMax = 0;
  jint = 0;

  rtt(x: number): void {
    if (this.received > 0) {
      const d = Math.abs(x - this.last);
      this.jitter = d;
      this.jitterSum += d;
      this.jitterN++;
      if (d > this.jitterMax) this.jitterMax = d;
      this.jint += (d - this.jint) / 16;
    }
    const n = ++this.received;
    this.last = x;
    const delta = x - this.mean;
    this.mean += delta / n;
    this.m2 += delta * (x - this.mean);
    if (x < this.best) this.best = x;
    if (x > this.worst) this.worst = x;
  }

  figures(): Figures {
    const n = this.received;
    const sent = this.sent;
    const variance = n > 1 ? this.m2 / (n - 1) : n === 1 ? 0 : null;
    const jn = this.jitterN;
    return {
      sent,
      received: n,
      loss: sent > 0 ? r3(((sent - n) / sent) * 100) : 0,
      last_ms: n > 0 ? r3(this.last) : null,
      mean_ms: n > 0 ? r3(this.mean) : null,
      best_ms: n > 0 ? r3(this.best) : null,
      worst_ms: n > 0 ? r3(this.worst) : null,
      stdev_ms: variance === null ? null : r3(Math.sqrt(variance)),
      jitter_ms: jn > 0 ? r3(this.jitter) : null,
      jitter_mean_ms: jn > 0 ? r3(this.jitterSum / jn) : null,
      jitter_max_ms: jn > 0 ? r3(this.jitterMax) : null,
      jitter_rfc3550_ms: jn > 0 ? r3(this.jint) : null,
    };
  }
}

/** One TTL's state. */
class HopRow {
  readonly all = new Acc();
  readonly responders = new Map<string, number>();
  other = 0;
  /** ECMP: the address each flow last reached. */
  flowAddr: Map<number, string> | null = null;
  /** ECMP: branches by address ('' for flows never answered), and the flows each one has had. */
  branches: Map<string, { acc: Acc; flows: Set<number> }> | null = null;
  otherFlows = 0;
  /** The RTTs, when the table keeps them. */
  rtts: number[] | null = null;
}

export class HopStatsTable {
  private readonly rows: (HopRow | null)[] = new Array(257).fill(null);
  /** Next-hop MTUs reported (--pmtu), by the reporting hop's TTL (0: the local route). */
  private readonly mtus = new Map<number, number>();
  /** Highest TTL with any probe. */
  maxTtl = 0;
  /** The lowest TTL at which the target answered (hops past it are not shown, as mtr). */
  targetTtl = Infinity;

  /** `target`: the traced address, so that the hops past the first that reached it are left out. */
  /** `keepRtts`: keep each hop's RTTs (at most MAX_KEPT_RTTS) for the median and 90th percentile. */
  constructor(
    private readonly target: string | null = null,
    private readonly keepRtts = false,
  ) {}

  private row(t: number): HopRow {
    return (this.rows[t] ??= new HopRow());
  }

  /** Folds one settled hop (all its probes have outcomes) into the table. */
  add(h: HopSample): void {
    const t = h.ttl;
    if (t < 0 || t > 256) return;
    if (t > this.maxTtl) this.maxTtl = t;
    const row = this.row(t);
    row.all.sent += h.probes;
    const ecmp = h.no_reply_flows !== undefined || h.replies.some((r) => r.flow !== undefined);
    for (const r of [...h.replies].sort((a, b) => a.index - b.index)) {
      row.all.rtt(r.rtt_ms);
      if (this.keepRtts) {
        row.rtts ??= [];
        if (row.rtts.length < MAX_KEPT_RTTS) row.rtts.push(r.rtt_ms);
      }
      if (r.addr !== null && r.addr === this.target && t < this.targetTtl) this.targetTtl = t;
      if (r.addr !== null) {
        const c = row.responders.get(r.addr);
        if (c !== undefined) row.responders.set(r.addr, c + 1);
        else if (row.responders.size < MAX_RESPONDERS) row.responders.set(r.addr, 1);
        else row.other++;
      }
      if (ecmp && r.flow !== undefined) {
        const b = this.branch(row, r.flow, r.addr);
        if (b) {
          b.acc.sent++;
          b.acc.rtt(r.rtt_ms);
        }
      }
    }
    if (ecmp) {
      for (const f of h.no_reply_flows ?? []) {
        const b = this.branch(row, f, null);
        if (b) b.acc.sent++;
      }
    }
  }

  /** The branch a flow's probe counts in: the address it reached now, else the one it last reached. */
  private branch(row: HopRow, flow: number, addr: string | null): { acc: Acc; flows: Set<number> } | null {
    row.flowAddr ??= new Map();
    row.branches ??= new Map();
    if (!row.flowAddr.has(flow) && row.flowAddr.size >= MAX_FLOWS) {
      row.otherFlows++;
      return null;
    }
    const before = row.flowAddr.get(flow);
    // '' is the branch of flows never answered.
    const key = addr ?? before ?? '';
    if (before !== undefined && before !== key) row.branches.get(before)?.flows.delete(flow);
    row.flowAddr.set(flow, key);
    let b = row.branches.get(key);
    if (!b) {
      if (row.branches.size > MAX_RESPONDERS) {
        row.otherFlows++;
        return null;
      }
      b = { acc: new Acc(), flows: new Set() };
      row.branches.set(key, b);
    }
    b.flows.add(flow);
    return b;
  }

  /** --pmtu: the router at `ttl` (0: the local route) said its next hop takes at most `mtu` bytes. */
  addMtu(ttl: number, mtu: number): void {
    const before = this.mtus.get(ttl);
    if (before === undefined || mtu < before) this.mtus.set(ttl, mtu);
  }

  /** mtr's "reset statistics". */
  reset(): void {
    this.rows.fill(null);
    this.mtus.clear();
    this.maxTtl = 0;
    this.targetTtl = Infinity;
  }

  /** The statistics of one TTL (without the verdict, which needs the later hops: see hops()). */
  hop(t: number): HopStats {
    const row = this.rows[t] ?? new HopRow();
    const out: HopStats = {
      ttl: t,
      ...row.all.figures(),
      responders: [...row.responders].map(([addr, count]) => ({ addr, count })).sort((a, b) => b.count - a.count || (a.addr < b.addr ? -1 : 1)),
      other_responders: row.other,
    };
    if (row.branches) {
      out.branches = [...row.branches]
        .filter(([, b]) => b.acc.sent > 0)
        .map(([key, b]) => ({ addr: key === '' ? null : key, flows: [...b.flows].sort((x, y) => x - y), ...b.acc.figures() }))
        .sort((a, b) => (a.addr === null ? 1 : b.addr === null ? -1 : a.addr < b.addr ? -1 : 1));
      out.other_flows = row.otherFlows;
    }
    if (this.keepRtts) {
      const v = (row.rtts ?? []).slice().sort((a, b) => a - b);
      out.median_ms = v.length ? r3(v[Math.ceil(0.5 * v.length) - 1]) : null;
      out.p90_ms = v.length ? r3(v[Math.ceil(0.9 * v.length) - 1]) : null;
    }
    let pmtu = Infinity;
    for (const [ttl, mtu] of this.mtus) if (ttl < t && mtu < pmtu) pmtu = mtu;
    if (pmtu !== Infinity) out.pmtu = pmtu;
    return out;
  }

  /**
   * Every TTL from `first` to the highest probed, or to the lowest at which the target answered:
   * a round whose probe to the target's TTL was lost reaches it one TTL later, and that is a
   * loss at the target's hop, not a hop past it (mtr shows it so). Each with its loss verdict.
   */
  hops(first: number): HopStats[] {
    const out: HopStats[] = [];
    const last = Math.min(this.maxTtl, this.targetTtl);
    for (let t = first; t <= last; t++) if (this.rows[t] && this.rows[t]!.all.sent > 0) out.push(this.hop(t));
    classifyLoss(out);
    return out;
  }
}
