/**
 * Per-prefix aggregation of the RTT event stream (`--aggregate SECONDS`, and the Prometheus
 * exporter): RTT samples are grouped by the prefix of the end that echoed them (src_ip, as in
 * ePPing: the side whose RTT was measured), IPv4 /24 and IPv6 /48 unless told otherwise.
 *
 * Per prefix and interval: the number of samples, min / mean / max, the median and 95th
 * percentile (exact up to RESERVOIR samples, then from a uniform reservoir of that many), a
 * histogram over fixed bounds, the flows seen, the flows toward it that went with one direction
 * only seen (closing events with bidirectional false), and the packets and bytes each way. Packet and byte
 * counts come from the flow counters that RTT events carry: each flow adds the growth of its
 * counters between its samples (so they count a flow's packets up to its latest sample).
 *
 * The number of prefixes is bounded (--aggregate-max-prefixes): past it, samples of new prefixes
 * go to one "other" entry, so neither memory nor metric labels grow without bound.
 */
import { parseIp } from '../packet/addr.js';
import { type AggregateEvent, type FlowEvent, PPING_SCHEMA, type RttEvent } from './events.js';

/** Histogram upper bounds, ms (the last bucket is everything above). */
export const RTT_BOUNDS_MS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] as const;
export const RESERVOIR = 4096;
export const OTHER_PREFIX = 'other';

export interface AggregateOptions {
  v4Prefix: number;
  v6Prefix: number;
  maxPrefixes: number;
}

export const AGGREGATE_DEFAULTS: AggregateOptions = { v4Prefix: 24, v6Prefix: 48, maxPrefixes: 1024 };

/** "a.b.c.d/len" or "x:x::/len" of an address string, host bits cleared. */
export function prefixOf(ip: string, o: AggregateOptions): string {
  const a = parseIp(ip);
  const len = a.length === 4 ? o.v4Prefix : o.v6Prefix;
  for (let bit = len; bit < a.length * 8; bit++) a[bit >> 3] &= ~(0x80 >> (bit & 7));
  if (a.length === 4) return `${a[0]}.${a[1]}.${a[2]}.${a[3]}/${len}`;
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(((a[2 * i] << 8) | a[2 * i + 1]).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const text = best < 0 ? groups.join(':') : `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  return `${text}/${len}`;
}

/** Index of the histogram bucket of an RTT in ns. */
export function bucketOf(rttNs: number): number {
  const ms = rttNs / 1e6;
  for (let i = 0; i < RTT_BOUNDS_MS.length; i++) if (ms <= RTT_BOUNDS_MS[i]) return i;
  return RTT_BOUNDS_MS.length;
}

class PrefixStats {
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;
  readonly kept: number[] = [];
  readonly hist = new Array<number>(RTT_BOUNDS_MS.length + 1).fill(0);
  readonly flows = new Set<string>();
  oneWayFlows = 0;
  sentPackets = 0;
  sentBytes = 0;
  recPackets = 0;
  recBytes = 0;

  add(rtt: number, random: () => number): void {
    this.count++;
    this.sum += rtt;
    if (rtt < this.min) this.min = rtt;
    if (rtt > this.max) this.max = rtt;
    this.hist[bucketOf(rtt)]++;
    if (this.kept.length < RESERVOIR) this.kept.push(rtt);
    else {
      const j = Math.floor(random() * this.count);
      if (j < RESERVOIR) this.kept[j] = rtt;
    }
  }
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return Math.round(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo));
}

/** Last counters seen per flow, to turn cumulative counters into growth. */
interface FlowCounters {
  sentPackets: number;
  sentBytes: number;
  recPackets: number;
  recBytes: number;
}

/** What one add() counted (reused: valid until the next add). */
export interface Added {
  prefix: string;
  sentPackets: number;
  sentBytes: number;
  recPackets: number;
  recBytes: number;
}

export class Aggregator {
  readonly o: AggregateOptions;
  readonly added: Added = { prefix: '', sentPackets: 0, sentBytes: 0, recPackets: 0, recBytes: 0 };
  private current = new Map<string, PrefixStats>();
  private readonly known = new Set<string>();
  private readonly lastCounters = new Map<string, FlowCounters>();
  private readonly random: () => number;

  constructor(o: Partial<AggregateOptions> = {}, random: () => number = Math.random) {
    this.o = { ...AGGREGATE_DEFAULTS, ...o };
    this.random = random;
  }

  /** The label a prefix is counted under ("other" once maxPrefixes distinct ones were seen). */
  label(prefix: string): string {
    if (this.known.has(prefix)) return prefix;
    if (this.known.size < this.o.maxPrefixes) {
      this.known.add(prefix);
      return prefix;
    }
    return OTHER_PREFIX;
  }

  /**
   * Adds one RTT event; `added` says under which prefix label and what the flow's counters grew
   * by. With intervals off (a metrics exporter), only the label and the growth are computed.
   */
  add(e: RttEvent, intervals = true): Added {
    const a = this.added;
    a.prefix = this.label(prefixOf(e.src_ip, this.o));
    const flow = `${e.protocol} ${e.src_ip} ${e.src_port} ${e.dest_ip} ${e.dest_port}`;
    const last = this.lastCounters.get(flow);
    // Counters only grow within a flow; a smaller value means a new flow on the same tuple.
    const grew = (now: number, before: number | undefined) => (before !== undefined && now >= before ? now - before : now);
    a.sentPackets = grew(e.sent_packets, last?.sentPackets);
    a.sentBytes = grew(e.sent_bytes, last?.sentBytes);
    a.recPackets = grew(e.rec_packets, last?.recPackets);
    a.recBytes = grew(e.rec_bytes, last?.recBytes);
    this.lastCounters.set(flow, { sentPackets: e.sent_packets, sentBytes: e.sent_bytes, recPackets: e.rec_packets, recBytes: e.rec_bytes });
    if (!intervals) return a;
    const s = this.stats(a.prefix);
    s.add(e.rtt, this.random);
    s.flows.add(flow);
    s.sentPackets += a.sentPackets;
    s.sentBytes += a.sentBytes;
    s.recPackets += a.recPackets;
    s.recBytes += a.recBytes;
    return a;
  }

  /** A flow event: a closing one forgets the flow's counters, a one-way one is counted toward its silent end's prefix. */
  flow(e: FlowEvent, intervals = true): void {
    if (e.flow_event !== 'closing') return;
    this.forget(e);
    if (e.bidirectional || !intervals) return;
    this.stats(this.label(prefixOf(e.src_ip, this.o))).oneWayFlows++;
  }

  private stats(prefix: string): PrefixStats {
    let s = this.current.get(prefix);
    if (!s) {
      s = new PrefixStats();
      this.current.set(prefix, s);
    }
    return s;
  }

  /** Forgets a flow's counters (its closing event). */
  forget(e: { protocol: string; src_ip: string; src_port: number; dest_ip: string; dest_port: number }): void {
    this.lastCounters.delete(`${e.protocol} ${e.src_ip} ${e.src_port} ${e.dest_ip} ${e.dest_port}`);
    this.lastCounters.delete(`${e.protocol} ${e.dest_ip} ${e.dest_port} ${e.src_ip} ${e.src_port}`);
  }

  /** Ends the interval that ends at (sec, nsec): one event per prefix with samples or one-way flows, sorted by prefix. */
  flush(sec: number, nsec: number, intervalS: number): AggregateEvent[] {
    const out: AggregateEvent[] = [];
    for (const [prefix, s] of [...this.current.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      const sorted = s.kept.slice().sort((a, b) => a - b);
      const any = s.count > 0;
      out.push({
        schema: PPING_SCHEMA,
        type: 'aggregate',
        sec,
        nsec,
        interval_s: intervalS,
        prefix,
        flows: s.flows.size,
        rtt_count: s.count,
        rtt_min: any ? s.min : null,
        rtt_mean: any ? Math.round(s.sum / s.count) : null,
        rtt_p50: any ? quantile(sorted, 0.5) : null,
        rtt_p95: any ? quantile(sorted, 0.95) : null,
        rtt_max: any ? s.max : null,
        quantiles_from: sorted.length,
        histogram_bounds_ms: [...RTT_BOUNDS_MS],
        histogram: s.hist.slice(),
        one_way_flows: s.oneWayFlows,
        sent_packets: s.sentPackets,
        sent_bytes: s.sentBytes,
        rec_packets: s.recPackets,
        rec_bytes: s.recBytes,
      });
    }
    this.current = new Map();
    return out;
  }
}
