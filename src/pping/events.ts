/**
 * Events of `pathlens pping` (schema pathlens.pping/1). RTT and flow events carry ePPing's JSON
 * field names (timestamp in ns since the epoch, src_ip, src_port, dest_ip, dest_port, protocol,
 * rtt and min_rtt in ns, sent/rec packets and bytes, match_on_egress; flow_event, reason,
 * triggered_by), so ePPing consumers read them unchanged. In memory the time is kept as sec +
 * nsec (a double cannot hold epoch nanoseconds exactly); `toJson` writes it as one exact integer.
 */

import { PPING_SCHEMA } from '../core/schemas.js';

export { PPING_SCHEMA };

export type PpingProtocol = 'TCP' | 'ICMP' | 'ICMPv6' | 'UDP';
export type FlowReason = 'SYN' | 'SYN-ACK' | 'first observed packet' | 'FIN' | 'RST' | 'flow timeout';

interface Base {
  schema: typeof PPING_SCHEMA;
  /** Event time: seconds and nanoseconds since the epoch (written as `timestamp`, ns). */
  sec: number;
  nsec: number;
}

export interface FlowTuple {
  src_ip: string;
  src_port: number;
  dest_ip: string;
  dest_port: number;
  protocol: PpingProtocol;
}

export interface RttEvent extends Base, FlowTuple {
  type: 'rtt';
  rtt: number;
  min_rtt: number;
  sent_packets: number;
  sent_bytes: number;
  rec_packets: number;
  rec_bytes: number;
  match_on_egress: boolean;
  /** What matched: the TCP timestamp option, TCP SEQ/ACK (--seqack), or an ICMP echo (not in ePPing's output). */
  match: 'tsopt' | 'seqack' | 'icmp-echo' | 'dns' | 'quic-spin';
}

export interface FlowEvent extends Base, FlowTuple {
  type: 'flow';
  flow_event: 'opening' | 'closing';
  reason: FlowReason;
  /** ePPing's words: the packet's source or destination end, or its garbage collection (timeouts). */
  triggered_by: 'src' | 'dest' | 'garbage collection';
  /**
   * A packet of each direction was seen (pathlens' field). Every opening and every closing of an
   * answered direction is; a flow that goes with one direction only seen (asymmetric routing past
   * the capture point, a host that never answers, spoofed traffic) is reported once as it goes,
   * with false: in pathlens' JSONL and aggregates only (ePPing reports no such flow).
   */
  bidirectional: boolean;
}

/** A state table was full: `dropped` flows or timestamps not kept since the last report. */
export interface TableFullEvent extends Base {
  type: 'table-full';
  table: 'flows' | 'timestamps';
  capacity: number;
  dropped: number;
}

/**
 * `--aggregate`: the RTT samples of one interval whose echoing end (src_ip) is in `prefix`
 * (or "other" past the prefix limit). RTTs in ns; the histogram counts samples per bucket whose
 * upper bounds are histogram_bounds_ms (one more bucket for everything above). Packets and bytes:
 * growth of the flow counters carried by the interval's RTT events ("sent" = toward prefix).
 */
export interface AggregateEvent extends Base {
  type: 'aggregate';
  interval_s: number;
  prefix: string;
  flows: number;
  rtt_count: number;
  /** null when rtt_count is 0 (a prefix with one-way flows only). */
  rtt_min: number | null;
  rtt_mean: number | null;
  rtt_p50: number | null;
  rtt_p95: number | null;
  rtt_max: number | null;
  /** Samples the percentiles come from (all of them up to 4096, then a uniform reservoir). */
  quantiles_from: number;
  histogram_bounds_ms: number[];
  histogram: number[];
  /** Flows toward the prefix (its end silent) that went in the interval with one direction only seen. */
  one_way_flows: number;
  sent_packets: number;
  sent_bytes: number;
  rec_packets: number;
  rec_bytes: number;
}

/** Where the packets come from, and what pathlens does with them. */
export interface PpingStartEvent extends Base {
  type: 'start';
  version: string;
  source: 'pcap' | 'packet-socket' | 'bpf';
  /** Interface name (live) or file path (offline). */
  input: string;
  protocols: PpingProtocol[];
  rate_limit_ms: number;
  rtt_rate: number | null;
  /** BPF capture: how each program is attached (tcx, clsact, xdp-native, xdp-generic), egress first. */
  attach?: string[];
}

export interface PpingDoneEvent extends Base {
  type: 'done';
  reason: 'end-of-file' | 'interrupted' | 'interface-gone' | 'error';
  packets: number;
  /** Packets that gave no flow, by reason (not IP, other protocol, malformed, later fragment). */
  skipped: { not_ip: number; other_protocol: number; malformed: number; fragment: number };
  /** Packets the rules considered (TCP, ICMP echo, DNS, QUIC short headers, of the selected protocols). */
  considered: number;
  rtt_events: number;
  flows_opened: number;
  timestamps_expired: number;
  flow_table_full: number;
  timestamp_table_full: number;
  /** --seqack: echoes of data sent before a retransmission, taken without a sample (Karn's rule). */
  retransmit_skipped: number;
  /** Timestamps not stored for directions still waiting for their first reply, their half of the table in use. */
  one_way_refused: number;
  /** Flows removed early (3 s without a reply instead of 30) while the flow table was over 3/4 full. */
  flows_evicted: number;
  /** --burst: timestamps taken past the rate limit after a sign of reordering or loss. */
  burst_stamps: number;
  /** Flows that went with only one direction ever seen (closing events with bidirectional false). */
  one_way_flows: number;
  /** QUIC flows that followed their connection id to the client's new address or port (a NAT rebinding). */
  quic_moved: number;
  /** Packets or events the capture path lost (kernel drops, ring-buffer overruns). */
  lost: number;
}

export type PpingEvent = RttEvent | FlowEvent | TableFullEvent | AggregateEvent | PpingStartEvent | PpingDoneEvent;

/** Epoch nanoseconds of (sec, nsec) as an exact integer literal. */
export function nsLiteral(sec: number, nsec: number): string {
  return sec > 0 ? `${sec}${String(nsec).padStart(9, '0')}` : String(nsec);
}

/** The key order RTT events have as the rules and the BPF reader make them (rttJson writes it). */
const RTT_KEYS = 'schema,type,sec,nsec,src_ip,src_port,dest_ip,dest_port,protocol,rtt,min_rtt,sent_packets,sent_bytes,rec_packets,rec_bytes,match_on_egress,match';

/**
 * One event as a JSON object text: `timestamp` first (exact ns), then the fields in order. RTT
 * events, most of a run's output, are written field by field when they have the fields and order
 * the rules give them (the generic walk below costs several µs an event); anything else, or an
 * RTT event of another shape, takes the walk. test/property/pping-format.test.ts holds the two
 * to the same text.
 */
export function toJson(e: PpingEvent): string {
  if (e.type === 'rtt' && rttShaped(e)) return rttJson(e);
  return toJsonWalk(e);
}

function rttShaped(e: RttEvent): boolean {
  let keys = '';
  for (const k in e) keys += keys ? `,${k}` : k;
  return keys === RTT_KEYS && Number.isFinite(e.rtt) && Number.isFinite(e.min_rtt) && Number.isFinite(e.sent_packets) && Number.isFinite(e.sent_bytes) && Number.isFinite(e.rec_packets) && Number.isFinite(e.rec_bytes);
}

function rttJson(e: RttEvent): string {
  return `{"schema":"pathlens.pping/1","type":"rtt","timestamp":${nsLiteral(e.sec, e.nsec)},"src_ip":${JSON.stringify(e.src_ip)},"src_port":${e.src_port},"dest_ip":${JSON.stringify(e.dest_ip)},"dest_port":${e.dest_port},"protocol":${JSON.stringify(e.protocol)},"rtt":${e.rtt},"min_rtt":${e.min_rtt},"sent_packets":${e.sent_packets},"sent_bytes":${e.sent_bytes},"rec_packets":${e.rec_packets},"rec_bytes":${e.rec_bytes},"match_on_egress":${e.match_on_egress},"match":${JSON.stringify(e.match)}}`;
}

/** toJson for any event: every field but schema, type, sec and nsec, in the object's order. */
export function toJsonWalk(e: PpingEvent): string {
  let out = `{"schema":"pathlens.pping/1","type":${JSON.stringify(e.type)},"timestamp":${nsLiteral(e.sec, e.nsec)}`;
  for (const [k, v] of Object.entries(e)) {
    if (k === 'schema' || k === 'type' || k === 'sec' || k === 'nsec') continue;
    out += `,${JSON.stringify(k)}:${JSON.stringify(v)}`;
  }
  return `${out}}`;
}
