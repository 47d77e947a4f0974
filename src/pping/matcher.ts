/**
 * The passive-RTT rules, once, for every packet source in userspace (pcap/pcapng files and the
 * packet-socket capture); the BPF programs implement the same rules in the kernel. They are
 * ePPing's rules (xdp-project/bpf-examples pping), so that its field names mean what they mean
 * there; docs/pping.md states them and test/golden/pping-epping.test.ts holds pathlens to
 * ePPing's own output on recorded captures.
 *
 * A flow has two directions, each with a state: empty, waiting for its first reply, open, closed.
 * Every packet the rules can use (TCP with the timestamp option, SYNs only with includeSyn; ICMP
 * and ICMPv6 echo) plays two parts:
 *  - timestamp: its identifier (TSval, echo request sequence) is stored with the packet's time for
 *    its direction, when it carries data (TCP; a SYN counts), the direction is active, the
 *    identifier is new (TCP: wrap-safe newer; a connection's first TSval is only the edge to wait
 *    for) and the rate limit allows;
 *  - match: its echo (TSecr on an ACK, echo reply sequence) is looked up for the reverse
 *    direction; a hit is an RTT sample and the entry is removed.
 * The RTT event names the flow of the packet that carried the echo: src is the end that echoed,
 * whose RTT from the capture point was measured; the counters are those of the timestamped
 * direction (sent_*: packets from dest_ip, rec_*: from src_ip; bytes are payload bytes).
 */
import { IPPROTO_TCP, IPPROTO_UDP } from '../core/constants.js';
import type { Sink } from '../core/sink.js';
import { ICMP_ECHO_REQUEST, type PacketInfo, QUIC_LONG, QUIC_SHORT, isLoopback, isSelf } from './decode.js';
import { type FlowEvent, type FlowReason, PPING_SCHEMA, type RttEvent, type TableFullEvent } from './events.js';
import { NEWER_WRAP, PacketIds, R_RST, RULE_DNS, RULE_NAMES, RULE_SEQACK, identify, isNewer } from './identify.js';
import { D_BARRIER, D_CREDITS, D_HAS_BARRIER, D_LAST_ID, D_MISSED, D_LAST_STAMP, D_MIN_RTT, D_OPEN_REASON, D_REC_BYTES, D_REC_PKTS, D_SENT_BYTES, D_SENT_PKTS, D_SRTT, D_STAMPED, D_STATE, DIR_CLOSED, DIR_EMPTY, DIR_OPEN, DIR_WAITOPEN, DS, FlowTable, StampTable } from './tables.js';
import { QuicIds } from './quic.js';
import { FlowTuples } from './tuples.js';
import { active, CROWDED, gcVerdict, oneWayLimit, STAMP_MAX_LIFETIME_NS, STAMP_MIN_LIFETIME_NS, STAMP_RTT_LIFETIMES } from './hygiene.js';

export interface MatcherOptions {
  tcp: boolean;
  icmp: boolean;
  /** DNS over UDP: query to response (the decoder must decode it: Decoder.dns). */
  dns: boolean;
  /** QUIC's spin bit on these UDP ports (the decoder must decode them: Decoder.quicPorts); empty: off. */
  quicPorts: readonly number[];
  /** Least time between two timestamps of one flow direction, ns (0: none). */
  rateLimitNs: number;
  /** When > 0: the least time is this multiple of the direction's RTT (once it has one). */
  rttRate: number;
  rttRateUse: 'min' | 'smoothed';
  includeSyn: boolean;
  /** TCP flows without the timestamp option: match SEQ to ACK (Karn's rule); off: ePPing's rules. */
  seqAck: boolean;
  /**
   * After a sign of reordering or loss in a direction (a TCP identifier older than one it has
   * sent), this many of its next timestamps may bypass the rate limit (0: ePPing's sampling).
   */
  burst: number;
  /** Also measure flows between loopback addresses. */
  includeLocal: boolean;
  maxFlows: number;
  maxStamps: number;
}

export const MATCHER_DEFAULTS: MatcherOptions = {
  tcp: true,
  icmp: false,
  dns: false,
  quicPorts: [],
  rateLimitNs: 100e6,
  rttRate: 0,
  rttRateUse: 'smoothed',
  includeSyn: false,
  seqAck: false,
  burst: 0,
  includeLocal: false,
  maxFlows: 131072,
  maxStamps: 131072,
};

const NS = 1e9;

/** Flow reasons by code (the same codes as enum pping_reason in bpf/pping.h; R_* in identify.ts). */
export const REASONS: readonly FlowReason[] = ['first observed packet', 'SYN', 'SYN-ACK', 'first observed packet', 'FIN', 'RST', 'flow timeout'];
/** Full-table warnings: at most one per this interval (packet time). */
const FULL_REPORT_NS = 1 * NS;

/** What the rules emit: RTT samples, flow events, full-table reports. */
export type MatcherSink = Sink<RttEvent | FlowEvent | TableFullEvent>;

export interface MatcherStats {
  packets: number;
  stamped: number;
  rtts: number;
  flowsOpened: number;
  flowTableFull: number;
  stampTableFull: number;
  stampsExpired: number;
  /** SEQ/ACK: echoes of data sent before a retransmission, taken without a sample (Karn). */
  retransmitSkipped: number;
  /** Timestamps not stored for one-way directions, their share of the table being in use. */
  oneWayRefused: number;
  /** One-way flows removed early because the flow table was crowded. */
  flowsEvicted: number;
  /** Timestamps taken past the rate limit after a sign of reordering or loss (--burst). */
  burstStamps: number;
  /** Flows that left the table with only one direction ever seen. */
  oneWayFlows: number;
  /** QUIC flows moved to the client's new address or port by their connection id (quic.ts). */
  quicMoved: number;
}

export class Matcher {
  readonly o: MatcherOptions;
  readonly flows: FlowTable;
  readonly stamps: StampTable;
  readonly stats: MatcherStats = { packets: 0, stamped: 0, rtts: 0, flowsOpened: 0, flowTableFull: 0, stampTableFull: 0, stampsExpired: 0, retransmitSkipped: 0, oneWayRefused: 0, flowsEvicted: 0, burstStamps: 0, oneWayFlows: 0, quicMoved: 0 };
  private readonly sink: MatcherSink;
  /** Times are ns since baseSec (exact in a double for 104 days). */
  private baseSec = -1;
  private nextConn = 1;
  private lastFullReport = -Infinity;
  private reportedFlowFull = 0;
  private reportedStampFull = 0;
  /** Time of the latest packet (relative ns). */
  now = 0;
  /** The packet's time, for the rules below process(): a field, as a double argument is boxed. */
  private pt = 0;
  /** What the packet being processed identifies. */
  private readonly ids = new PacketIds();
  /** Flows' addresses and ports as event text. */
  private readonly tuples: FlowTuples;
  /** QUIC connection ids (only with quicPorts). */
  private readonly quic = new QuicIds();

  constructor(o: Partial<MatcherOptions>, sink: MatcherSink) {
    this.o = { ...MATCHER_DEFAULTS, ...o };
    this.flows = new FlowTable(this.o.maxFlows);
    this.stamps = new StampTable(this.o.maxStamps);
    this.tuples = new FlowTuples(this.flows);
    this.sink = sink;
  }

  /** Relative ns for an absolute time (the first call fixes the base). */
  rel(sec: number, nsec: number): number {
    if (this.baseSec < 0) this.baseSec = sec;
    return (sec - this.baseSec) * NS + nsec;
  }

  private absSec(t: number): number {
    return this.baseSec + Math.floor(t / NS);
  }
  private absNsec(t: number): number {
    return t - Math.floor(t / NS) * NS;
  }

  /** One decoded packet seen at (sec, nsec); `egress` when the capture says it was leaving. */
  process(p: PacketInfo, sec: number, nsec: number, egress: boolean): void {
    const o = this.o;
    const tcp = p.proto === IPPROTO_TCP;
    if (!(tcp ? o.tcp : p.proto === IPPROTO_UDP ? (p.quic ? o.quicPorts.length > 0 : o.dns) : o.icmp)) return;
    if (!o.includeLocal && isLoopback(p.bytes, p.srcOff, p.family) && isLoopback(p.bytes, p.dstOff, p.family)) return;
    const t = this.rel(sec, nsec);
    if (t > this.now) this.now = t;
    this.pt = t;
    this.stats.packets++;
    if (p.quic === QUIC_LONG) return this.quic.learn(p);
    const ids = this.ids;
    if (!identify(p, o, ids)) return;

    const ft = this.flows;
    const h = ft.hashOf(p);
    let slot = ft.find(p, h);
    // A QUIC client's packet: its flow may have been elsewhere before a NAT rebinding.
    const client = p.quic === QUIC_SHORT && !p.fromServer;
    if (slot < 0 && client) {
      slot = this.quic.follow(p, h, ft);
      if (slot >= 0) {
        this.stats.quicMoved++;
        this.tuples.clear();
      }
    }
    if (slot < 0) {
      // Only a packet that can be timestamped opens state; a closing one never does.
      if (!ids.idValid || ids.closing) return;
      slot = ft.insert(p, h, this.nextConn);
      if (slot < 0) {
        this.stats.flowTableFull++;
        this.reportFull(t);
        return;
      }
      this.nextConn = (this.nextConn + 1) & 0x7fffffff || 1;
      this.stats.flowsOpened++;
    }
    if (client) this.quic.note(p, h, ft, slot);
    // Both ends the same (echo to one's own address): requests go one way, replies the other.
    const dir = !tcp && isSelf(p) ? (p.echo === ICMP_ECHO_REQUEST ? 0 : 1) : ft.dir;
    this.applyRules(slot, dir, p.payload, egress);
    if (ids.closing) this.close(slot, dir, t, ids.closing);
  }

  /** Both directions' part of the packet (its facts in `ids`), once its flow is known. */
  private applyRules(slot: number, dir: number, payload: number, egress: boolean): void {
    const t = this.pt;
    const ft = this.flows;
    const ids = this.ids;
    const fd = ft.d;
    // The records of the packet's direction and of the reverse one.
    const a = (slot * 2 + dir) * DS;
    const r = (slot * 2 + (dir ^ 1)) * DS;
    // An edge (QUIC spin): the identifier differs from the direction's last (known before this packet).
    const edge = ids.echoOnEdge && fd[a + D_STATE] !== DIR_EMPTY && ids.id !== fd[a + D_LAST_ID];
    // The packet's own direction: opened by its first packet that can be timestamped.
    if (fd[a + D_STATE] === DIR_EMPTY && ids.idValid) {
      fd[a + D_STATE] = DIR_WAITOPEN;
      fd[a + D_LAST_STAMP] = t;
      fd[a + D_LAST_ID] = ids.id;
      fd[a + D_STAMPED] = 0;
      fd[a + D_OPEN_REASON] = ids.openReason;
    }
    if (active(fd[a + D_STATE])) {
      fd[a + D_SENT_PKTS]++;
      fd[a + D_SENT_BYTES] += payload;
      if (ids.idValid) this.stamp(slot, dir);
    }

    // The reverse direction: this packet is its reply.
    if (active(fd[r + D_STATE])) {
      if (fd[r + D_STATE] === DIR_WAITOPEN && ids.closing !== R_RST) {
        fd[r + D_STATE] = DIR_OPEN;
        this.flowEvent(slot, dir, fd[r + D_LAST_STAMP], 'opening', REASONS[fd[r + D_OPEN_REASON]], 'dest', true);
      }
      fd[r + D_REC_PKTS]++;
      fd[r + D_REC_BYTES] += payload;
      if (ids.echoValid && (edge || !ids.echoOnEdge)) this.match(slot, dir, egress);
    }
  }

  /** Stores the identifier of direction `dir`, when it is new and the rate limit allows. */
  private stamp(slot: number, dir: number): void {
    const t = this.pt;
    const ft = this.flows;
    const ids = this.ids;
    const id = ids.id;
    const di = slot * 2 + dir;
    const fd = ft.d;
    const a = di * DS;
    if ((fd[a + D_STAMPED] || ids.waitEdge) && !isNewer(ids.newer, id, fd[a + D_LAST_ID])) {
      // An identifier older than one already seen (TCP): reordering or a retransmission, a time
      // when samples matter; --burst lets the next few bypass the rate limit.
      if (this.o.burst > 0 && ids.newer === NEWER_WRAP && isNewer(NEWER_WRAP, fd[a + D_LAST_ID], id)) fd[a + D_CREDITS] = this.o.burst;
      // SEQ/ACK: a segment sent again (or reordered): nothing sent up to here gives a sample.
      if (ids.rule === RULE_SEQACK) {
        fd[a + D_BARRIER] = fd[a + D_LAST_ID];
        fd[a + D_HAS_BARRIER] = 1;
      }
      // DNS: a query sent again: its first copy's timestamp goes too.
      if (ids.rule === RULE_DNS && this.stamps.take(ft.connId[slot] * 2 + dir, id) >= 0) this.stats.retransmitSkipped++;
      return;
    }
    fd[a + D_LAST_ID] = id;
    if (fd[a + D_STAMPED] && (t < fd[a + D_LAST_STAMP] || t - fd[a + D_LAST_STAMP] < this.sampleGap(di))) {
      if (fd[a + D_CREDITS] === 0) return;
      fd[a + D_CREDITS]--;
      this.stats.burstStamps++;
    }
    // The attempt counts even when the table is full (as in ePPing: fairer to sparse flows).
    fd[a + D_STAMPED] = 1;
    fd[a + D_LAST_STAMP] = t;
    const rtt = fd[a + D_MIN_RTT];
    const life = rtt > 0 ? Math.min(STAMP_MAX_LIFETIME_NS, Math.max(STAMP_MIN_LIFETIME_NS, STAMP_RTT_LIFETIMES * rtt)) : STAMP_MAX_LIFETIME_NS;
    const oneWay = fd[a + D_STATE] === DIR_WAITOPEN;
    if (oneWay && this.stamps.oneWayCount >= oneWayLimit(this.stamps.max)) {
      this.stats.oneWayRefused++;
      return;
    }
    if (this.stamps.put(ft.connId[slot] * 2 + dir, id, t, t + life, oneWay)) {
      this.stats.stamped++;
      if (fd[a + D_MISSED] === id + 1) fd[a + D_MISSED] = 0;
    } else if (this.stamps.size >= this.stamps.max) {
      this.stats.stampTableFull++;
      this.reportFull(t);
    }
  }

  /** Looks up the echo of the reverse direction's identifier: a hit is an RTT sample. */
  private match(slot: number, dir: number, egress: boolean): void {
    const t = this.pt;
    const echoed = this.ids.echoed;
    const ft = this.flows;
    const fd = ft.d;
    const r = (slot * 2 + (dir ^ 1)) * DS;
    // The same echo as the last lookup that found nothing: nothing stored since, nothing to find.
    if (fd[r + D_MISSED] === echoed + 1) return;
    const t0 = this.stamps.take(ft.connId[slot] * 2 + (dir ^ 1), echoed, t);
    if (t0 === -1) fd[r + D_MISSED] = echoed + 1;
    if (t0 < 0) return;
    if (this.ids.rule === RULE_SEQACK && fd[r + D_HAS_BARRIER] && !isNewer(NEWER_WRAP, echoed, fd[r + D_BARRIER])) {
      this.stats.retransmitSkipped++;
      return;
    }
    const rtt = t - t0;
    if (fd[r + D_MIN_RTT] === 0 || rtt < fd[r + D_MIN_RTT]) fd[r + D_MIN_RTT] = rtt;
    const s = fd[r + D_SRTT];
    // The kernel's integer smoothing (7/8 of the old value plus 1/8 of the sample), to the ns.
    fd[r + D_SRTT] = s === 0 ? rtt : s - Math.floor(s / 8) + Math.floor(rtt / 8);
    this.stats.rtts++;
    this.rttEvent(slot, dir, t, rtt, egress);
  }

  /**
   * FIN closes the packet's direction; RST closes both. A flow with no active direction goes; one
   * whose other direction was never seen is reported as it goes (one-way).
   */
  private close(slot: number, dir: number, t: number, reason: number): void {
    const ft = this.flows;
    const fd = ft.d;
    const a = (slot * 2 + dir) * DS;
    const r = (slot * 2 + (dir ^ 1)) * DS;
    const wasActive = (active(fd[slot * 2 * DS + D_STATE]) ? 1 : 0) | (active(fd[slot * 2 * DS + DS + D_STATE]) ? 2 : 0);
    if (fd[a + D_STATE] === DIR_OPEN) this.flowEvent(slot, dir ^ 1, t, 'closing', REASONS[reason], 'dest', true);
    fd[a + D_STATE] = DIR_CLOSED;
    if (reason === R_RST) {
      if (fd[r + D_STATE] === DIR_OPEN) this.flowEvent(slot, dir, t, 'closing', 'RST', 'src', true);
      fd[r + D_STATE] = DIR_CLOSED;
    }
    if (!active(fd[a + D_STATE]) && !active(fd[r + D_STATE])) {
      this.oneWayGone(slot, wasActive, t, REASONS[reason], 'src');
      this.remove(slot);
    }
  }

  private remove(slot: number): void {
    if (this.o.quicPorts.length > 0 && this.flows.proto(slot) === IPPROTO_UDP) this.quic.forget(this.flows.connId[slot]);
    this.flows.remove(slot);
  }

  /** Whether a packet of each direction of slot's flow was seen (each counts the other's as received). */
  private bidirectional(slot: number): boolean {
    return this.flows.d[slot * 2 * DS + D_REC_PKTS] + this.flows.d[(slot * 2 + 1) * DS + D_REC_PKTS] > 0;
  }

  /**
   * A flow that goes with only one direction ever seen: a closing event (bidirectional false) for
   * each direction that was active (bit d of `dirs`), named from the silent end as ePPing names a
   * direction's events, and counted.
   */
  private oneWayGone(slot: number, dirs: number, t: number, reason: FlowReason, by: FlowEvent['triggered_by']): void {
    if (this.bidirectional(slot)) return;
    this.stats.oneWayFlows++;
    for (let d = 0; d < 2; d++) if (dirs & (1 << d)) this.flowEvent(slot, d ^ 1, t, 'closing', reason, by, false);
  }

  /** Least time between two timestamps of direction index di. */
  private sampleGap(di: number): number {
    const o = this.o;
    if (o.rttRate > 0) {
      const a = di * DS;
      const rtt = this.flows.d[a + (o.rttRateUse === 'min' ? D_MIN_RTT : D_SRTT)];
      if (rtt > 0) return o.rttRate * rtt;
    }
    return o.rateLimitNs;
  }

  /**
   * Expires stored timestamps past their lifetime and flows whose active directions have all
   * timed out (ePPing's garbage collection: a closing event with reason "flow timeout" for each
   * open direction, naming the flow the other way round, as ePPing does). `now` in relative ns
   * (the latest packet time when reading a file).
   */
  sweep(now: number = this.now): void {
    this.stats.stampsExpired += this.stamps.expire(now);
    const ft = this.flows;
    const crowded = ft.size > CROWDED * ft.max;
    const fd = ft.d;
    ft.forEach((slot) => {
      const a = slot * 2 * DS;
      const b = a + DS;
      const icmp = ft.proto(slot) !== IPPROTO_TCP;
      const v = gcVerdict(icmp, fd[a + D_STATE], now - fd[a + D_LAST_STAMP], fd[b + D_STATE], now - fd[b + D_LAST_STAMP], crowded);
      if (v < 0) return;
      if (crowded && gcVerdict(icmp, fd[a + D_STATE], now - fd[a + D_LAST_STAMP], fd[b + D_STATE], now - fd[b + D_LAST_STAMP]) < 0) this.stats.flowsEvicted++;
      for (let d = 0; d < 2; d++) if (v & (1 << d)) this.flowEvent(slot, d ^ 1, now, 'closing', 'flow timeout', 'garbage collection', true);
      this.oneWayGone(slot, (active(fd[a + D_STATE]) ? 1 : 0) | (active(fd[b + D_STATE]) ? 2 : 0), now, 'flow timeout', 'garbage collection');
      this.remove(slot);
    });
  }

  /** Relative ns of wall-clock time (sec, nsec), for live sweeps. */
  relNow(sec: number, nsec: number): number {
    return this.baseSec < 0 ? 0 : this.rel(sec, nsec);
  }

  private reportFull(t: number): void {
    if (t - this.lastFullReport < FULL_REPORT_NS) return;
    this.lastFullReport = t;
    const s = this.stats;
    if (s.flowTableFull > this.reportedFlowFull) {
      this.sink.event({ schema: PPING_SCHEMA, type: 'table-full', sec: this.absSec(t), nsec: this.absNsec(t), table: 'flows', capacity: this.flows.max, dropped: s.flowTableFull - this.reportedFlowFull });
      this.reportedFlowFull = s.flowTableFull;
    }
    if (s.stampTableFull > this.reportedStampFull) {
      this.sink.event({ schema: PPING_SCHEMA, type: 'table-full', sec: this.absSec(t), nsec: this.absNsec(t), table: 'timestamps', capacity: this.stamps.max, dropped: s.stampTableFull - this.reportedStampFull });
      this.reportedStampFull = s.stampTableFull;
    }
  }

  /** An RTT sample carried by a packet of direction `echoDir`: its flow, the timestamped direction's counters. */
  private rttEvent(slot: number, echoDir: number, t: number, rtt: number, egress: boolean): void {
    const fd = this.flows.d;
    const s = (slot * 2 + (echoDir ^ 1)) * DS;
    const f = this.tuples.get(slot, echoDir);
    // Every field written out (no spread): one object shape for every sample.
    this.sink.event({
      schema: PPING_SCHEMA,
      type: 'rtt',
      sec: this.absSec(t),
      nsec: this.absNsec(t),
      src_ip: f.src_ip,
      src_port: f.src_port,
      dest_ip: f.dest_ip,
      dest_port: f.dest_port,
      protocol: f.protocol,
      rtt,
      min_rtt: fd[s + D_MIN_RTT],
      sent_packets: fd[s + D_SENT_PKTS],
      sent_bytes: fd[s + D_SENT_BYTES],
      rec_packets: fd[s + D_REC_PKTS],
      rec_bytes: fd[s + D_REC_BYTES],
      match_on_egress: egress,
      match: RULE_NAMES[this.ids.rule],
    });
  }

  private flowEvent(slot: number, dir: number, t: number, kind: 'opening' | 'closing', reason: FlowReason, by: FlowEvent['triggered_by'], bidirectional: boolean): void {
    const f = this.tuples.get(slot, dir); // its fields written out, as rttEvent's (a spread is the slow way)
    this.sink.event({ schema: PPING_SCHEMA, type: 'flow', sec: this.absSec(t), nsec: this.absNsec(t), src_ip: f.src_ip, src_port: f.src_port, dest_ip: f.dest_ip, dest_port: f.dest_port, protocol: f.protocol, flow_event: kind, reason, triggered_by: by, bidirectional });
  }
}

