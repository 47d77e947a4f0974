/**
 * Per-hop statistics across rounds (`trace -c N`, `--live`), with mtr's meanings: per TTL, the
 * probes whose outcome is known (Snt), the replies, loss % = (sent − received) / sent, the last,
 * mean, best and worst RTT, the sample standard deviation (mtr's StDev: n − 1, Welford's update), and jitter: the
 * difference between consecutive RTTs at that hop (mtr's Jttr), its mean (Javg) and maximum
 * (Jmax), and RFC 3550's interarrival jitter J += (|D| − J) / 16 (mtr's Jint). Responders are
 * counted per address. Pure: fed with the events of each round, read as `hop-stats` events.
 *
 * Memory is bounded: 256 TTLs of fixed counters, and per TTL at most MAX_RESPONDERS addresses
 * (the rest counted as `other`).
 */
import type { HopEvent, HopStats } from './events.js';

export const MAX_RESPONDERS = 16;

const r3 = (x: number) => Math.round(x * 1000) / 1000;

export class HopStatsTable {
  private readonly sent = new Int32Array(257);
  private readonly received = new Int32Array(257);
  private readonly last = new Float64Array(257);
  private readonly mean = new Float64Array(257);
  private readonly m2 = new Float64Array(257);
  private readonly best = new Float64Array(257).fill(Infinity);
  private readonly worst = new Float64Array(257).fill(-Infinity);
  private readonly jitter = new Float64Array(257);
  private readonly jitterSum = new Float64Array(257);
  private readonly jitterN = new Int32Array(257);
  private readonly jitterMax = new Float64Array(257);
  private readonly jint = new Float64Array(257);
  private readonly responders: (Map<string, number> | null)[] = new Array(257).fill(null);
  private readonly other = new Int32Array(257);
  /** Highest TTL with any probe. */
  maxTtl = 0;
  /** The lowest TTL at which the target answered (hops past it are not shown, as mtr). */
  targetTtl = Infinity;

  /** `target`: the traced address, so that the hops past the first that reached it are left out. */
  constructor(private readonly target: string | null = null) {}

  /** Folds one settled hop (all its probes have outcomes) into the table. */
  add(h: HopEvent): void {
    const t = h.ttl;
    if (t > this.maxTtl) this.maxTtl = t;
    this.sent[t] += h.probes;
    for (const r of [...h.replies].sort((a, b) => a.index - b.index)) {
      const rtt = r.rtt_ms;
      if (this.received[t] > 0) {
        const d = Math.abs(rtt - this.last[t]);
        this.jitter[t] = d;
        this.jitterSum[t] += d;
        this.jitterN[t]++;
        if (d > this.jitterMax[t]) this.jitterMax[t] = d;
        this.jint[t] += (d - this.jint[t]) / 16;
      }
      const n = ++this.received[t];
      this.last[t] = rtt;
      const delta = rtt - this.mean[t];
      this.mean[t] += delta / n;
      this.m2[t] += delta * (rtt - this.mean[t]);
      if (rtt < this.best[t]) this.best[t] = rtt;
      if (rtt > this.worst[t]) this.worst[t] = rtt;
      if (r.addr !== null && r.addr === this.target && t < this.targetTtl) this.targetTtl = t;
      if (r.addr !== null) {
        let m = this.responders[t];
        if (!m) m = this.responders[t] = new Map();
        const c = m.get(r.addr);
        if (c !== undefined) m.set(r.addr, c + 1);
        else if (m.size < MAX_RESPONDERS) m.set(r.addr, 1);
        else this.other[t]++;
      }
    }
  }

  /** mtr's "reset statistics". */
  reset(): void {
    for (const a of [this.sent, this.received, this.jitterN, this.other]) a.fill(0);
    for (const a of [this.last, this.mean, this.m2, this.jitter, this.jitterSum, this.jitterMax, this.jint]) a.fill(0);
    this.best.fill(Infinity);
    this.worst.fill(-Infinity);
    this.responders.fill(null);
    this.maxTtl = 0;
    this.targetTtl = Infinity;
  }

  /** The statistics of one TTL. */
  hop(t: number): HopStats {
    const n = this.received[t];
    const sent = this.sent[t];
    const mean = n > 0 ? this.mean[t] : null;
    const variance = n > 1 ? this.m2[t] / (n - 1) : n === 1 ? 0 : null;
    const jn = this.jitterN[t];
    return {
      ttl: t,
      sent,
      received: n,
      loss: sent > 0 ? r3(((sent - n) / sent) * 100) : 0,
      last_ms: n > 0 ? r3(this.last[t]) : null,
      mean_ms: mean === null ? null : r3(mean),
      best_ms: n > 0 ? r3(this.best[t]) : null,
      worst_ms: n > 0 ? r3(this.worst[t]) : null,
      stdev_ms: variance === null ? null : r3(Math.sqrt(variance)),
      jitter_ms: jn > 0 ? r3(this.jitter[t]) : null,
      jitter_mean_ms: jn > 0 ? r3(this.jitterSum[t] / jn) : null,
      jitter_max_ms: jn > 0 ? r3(this.jitterMax[t]) : null,
      jitter_rfc3550_ms: jn > 0 ? r3(this.jint[t]) : null,
      responders: [...(this.responders[t] ?? new Map<string, number>())].map(([addr, count]) => ({ addr, count })).sort((a, b) => b.count - a.count || (a.addr < b.addr ? -1 : 1)),
      other_responders: this.other[t],
    };
  }

  /**
   * Every TTL from `first` to the highest probed, or to the lowest at which the target answered:
   * a round whose probe to the target's TTL was lost reaches it one TTL later, and that is a
   * loss at the target's hop, not a hop past it (mtr shows it so).
   */
  hops(first: number): HopStats[] {
    const out: HopStats[] = [];
    const last = Math.min(this.maxTtl, this.targetTtl);
    for (let t = first; t <= last; t++) if (this.sent[t] > 0) out.push(this.hop(t));
    return out;
  }
}
