/**
 * The passive-RTT rules, once, for every packet source in userspace (pcap/pcapng files and the
 * packet-socket capture); the BPF programs implement the same rules in the kernel.
 *
 * Every packet plays both parts, so one capture point that sees both directions (a host, a router)
 * measures the RTT from itself to each endpoint and back:
 *  - timestamp: the packet's identifier (TCP TSval; ICMP echo request sequence) is stored with the
 *    packet's time, for its flow direction, if it is the first packet carrying that identifier
 *    (TCP: wrap-safe newer than the last one seen in that direction), it is not a pure ACK, not a
 *    SYN (unless includeSyn), and the direction's rate limit allows a sample;
 *  - match: the packet's echo of an identifier (TCP TSecr on an ACK; ICMP echo reply sequence) is
 *    looked up for the reverse direction; a hit is an RTT sample and the entry is removed.
 * An RTT event names the flow of the timestamped packet: src is the end whose packet was
 * timestamped, dest the end that echoed it, so `rtt` is the time from the capture point to dest
 * and back.
 */
import { IPPROTO_ICMP, IPPROTO_TCP } from '../core/constants.js';
import { formatIp } from '../packet/addr.js';
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, type PacketInfo } from './decode.js';
import type { FlowEvent, FlowReason, PpingProtocol, RttEvent, TableFullEvent } from './events.js';
import { FlowTable, StampTable } from './tables.js';

export interface MatcherOptions {
  tcp: boolean;
  icmp: boolean;
  /** Least time between two timestamps of one flow direction, ns (0: none). */
  rateLimitNs: number;
  /** When > 0: the least time is this multiple of the direction's RTT (once it has one). */
  rttRate: number;
  rttRateUse: 'min' | 'smoothed';
  includeSyn: boolean;
  /** Also measure flows between loopback addresses. */
  includeLocal: boolean;
  maxFlows: number;
  maxStamps: number;
}

export const MATCHER_DEFAULTS: MatcherOptions = {
  tcp: true,
  icmp: false,
  rateLimitNs: 100e6,
  rttRate: 0,
  rttRateUse: 'smoothed',
  includeSyn: false,
  includeLocal: false,
  maxFlows: 16384,
  maxStamps: 16384,
};

const NS = 1e9;
/** A stored timestamp lives 8 RTTs of its direction, at least 1 s and at most 10 s (10 s before an RTT is known). */
export const STAMP_RTT_LIFETIMES = 8;
export const STAMP_MIN_LIFETIME_NS = 1 * NS;
export const STAMP_MAX_LIFETIME_NS = 10 * NS;
export const TCP_FLOW_LIFETIME_NS = 300 * NS;
export const ICMP_FLOW_LIFETIME_NS = 30 * NS;
/** A closed connection (FIN or RST seen) goes after this long without packets. */
export const CLOSED_FLOW_LIFETIME_NS = 1 * NS;
/** A flow seen in one direction only goes after this long. */
export const UNANSWERED_FLOW_LIFETIME_NS = 30 * NS;
/** Full-table warnings: at most one per this interval (packet time). */
const FULL_REPORT_NS = 1 * NS;

export interface MatcherSink {
  rtt(e: RttEvent): void;
  flow(e: FlowEvent): void;
  full(e: TableFullEvent): void;
}

export interface MatcherStats {
  packets: number;
  stamped: number;
  rtts: number;
  flowsOpened: number;
  flowTableFull: number;
  stampTableFull: number;
  stampsExpired: number;
}

function protocolName(proto: number): PpingProtocol {
  return proto === IPPROTO_TCP ? 'TCP' : proto === IPPROTO_ICMP ? 'ICMP' : 'ICMPv6';
}

function isLoopback(b: Uint8Array, off: number, family: 4 | 6): boolean {
  if (family === 4) return b[off] === 127;
  for (let i = 0; i < 15; i++) if (b[off + i] !== 0) return false;
  return b[off + 15] === 1;
}

export class Matcher {
  readonly o: MatcherOptions;
  readonly flows: FlowTable;
  readonly stamps: StampTable;
  readonly stats: MatcherStats = { packets: 0, stamped: 0, rtts: 0, flowsOpened: 0, flowTableFull: 0, stampTableFull: 0, stampsExpired: 0 };
  private readonly sink: MatcherSink;
  /** Times are ns since baseSec (exact in a double for 104 days). */
  private baseSec = -1;
  private nextConn = 1;
  private lastFullReport = -Infinity;
  private reportedFlowFull = 0;
  private reportedStampFull = 0;
  /** Time of the latest packet (relative ns). */
  now = 0;

  constructor(o: Partial<MatcherOptions>, sink: MatcherSink) {
    this.o = { ...MATCHER_DEFAULTS, ...o };
    this.flows = new FlowTable(this.o.maxFlows);
    this.stamps = new StampTable(this.o.maxStamps);
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
    if (tcp ? !o.tcp : !o.icmp) return;
    if (!o.includeLocal && isLoopback(p.bytes, p.srcOff, p.family) && isLoopback(p.bytes, p.dstOff, p.family)) return;
    const t = this.rel(sec, nsec);
    if (t > this.now) this.now = t;
    this.stats.packets++;
    const ft = this.flows;
    const h = ft.hashOf(p);
    let slot = ft.find(p, h);
    if (slot >= 0 && tcp && ft.closing[slot] && p.syn && !p.ack) {
      // The 4-tuple is reused by a new connection: the old one is over.
      ft.remove(slot);
      slot = -1;
    }
    if (slot < 0) {
      // An RST, or an ICMP echo reply, for a flow never seen says nothing: no state for it.
      if ((tcp && p.rst) || (!tcp && p.echo === ICMP_ECHO_REPLY)) return;
      slot = ft.insert(p, h, this.nextConn, t);
      if (slot < 0) {
        this.stats.flowTableFull++;
        this.reportFull(t);
        return;
      }
      this.nextConn = (this.nextConn + 1) & 0x7fffffff || 1;
      this.stats.flowsOpened++;
      const reason: FlowReason = tcp && p.syn ? (p.ack ? 'SYN-ACK' : 'SYN') : 'first observed packet';
      this.flowEvent(slot, 0, t, 'opening', reason, 'src');
    }
    const dir = ft.dir;
    const di = slot * 2 + dir;
    const ri = slot * 2 + (dir ^ 1);
    ft.lastSeen[slot] = t;
    ft.pkts[di]++;
    ft.bytes[di] += p.ipLen;
    const connDir = ft.connId[slot] * 2;

    // Timestamp the packet's own identifier.
    let id = -1;
    if (tcp) {
      const pureAck = p.ack && p.tcpPayload === 0 && !p.syn && !p.fin && !p.rst;
      if (p.hasTs && !pureAck && !p.rst && (o.includeSyn || !p.syn)) {
        const last = ft.lastId[di];
        if (!ft.hasLastId[di] || ((p.tsval - last) | 0) > 0) {
          ft.lastId[di] = p.tsval;
          ft.hasLastId[di] = 1;
          id = p.tsval;
        }
      }
    } else if (p.echo === ICMP_ECHO_REQUEST) {
      if (!ft.hasLastId[di] || ft.lastId[di] !== p.echoSeq) {
        ft.lastId[di] = p.echoSeq;
        ft.hasLastId[di] = 1;
        id = p.echoSeq;
      }
    }
    if (id >= 0 && t - ft.lastStamp[di] >= this.sampleGap(di)) {
      const rtt = ft.minRtt[di];
      const life = rtt > 0 ? Math.min(STAMP_MAX_LIFETIME_NS, Math.max(STAMP_MIN_LIFETIME_NS, STAMP_RTT_LIFETIMES * rtt)) : STAMP_MAX_LIFETIME_NS;
      if (this.stamps.put(connDir + dir, id, t, t + life)) {
        ft.lastStamp[di] = t;
        this.stats.stamped++;
      } else if (this.stamps.size >= this.stamps.max) {
        this.stats.stampTableFull++;
        this.reportFull(t);
      }
    }

    // Match the packet's echo of the other direction's identifier.
    let echoed = -1;
    if (tcp) {
      if (p.ack && p.hasTs && p.tsecr !== 0 && !p.rst) echoed = p.tsecr;
    } else if (p.echo === ICMP_ECHO_REPLY) {
      echoed = p.echoSeq;
    }
    if (echoed >= 0) {
      const t0 = this.stamps.take(connDir + (dir ^ 1), echoed);
      if (t0 >= 0 && t >= t0) {
        const rtt = t - t0;
        ft.minRtt[ri] = ft.minRtt[ri] > 0 ? Math.min(ft.minRtt[ri], rtt) : rtt;
        ft.srtt[ri] = ft.srtt[ri] > 0 ? ft.srtt[ri] + (rtt - ft.srtt[ri]) / 8 : rtt;
        this.stats.rtts++;
        this.rttEvent(slot, dir ^ 1, t, rtt, egress);
      }
    }

    // Closing.
    if (tcp && (p.fin || p.rst)) {
      if (!ft.closing[slot]) {
        ft.closing[slot] = 1;
        this.flowEvent(slot, dir, t, 'closing', p.rst ? 'RST' : 'FIN', 'src');
      }
      if (p.fin) ft.fin[di] = 1;
      // The state stays until the sweep (CLOSED_FLOW_LIFETIME_NS idle): the last ACKs and any
      // retransmission still belong to this connection, never to a new "first observed" one.
    }
  }

  /** Least time between two timestamps of direction index di. */
  private sampleGap(di: number): number {
    const o = this.o;
    if (o.rttRate > 0) {
      const rtt = o.rttRateUse === 'min' ? this.flows.minRtt[di] : this.flows.srtt[di];
      if (rtt > 0) return o.rttRate * rtt;
    }
    return o.rateLimitNs;
  }

  /**
   * Expires stored timestamps past their lifetime and flows idle too long (a closing event with
   * reason "flow timeout"). `now` in relative ns (the latest packet time when reading a file).
   */
  sweep(now: number = this.now): void {
    this.stats.stampsExpired += this.stamps.expire(now);
    const ft = this.flows;
    ft.forEach((slot) => {
      const idle = now - ft.lastSeen[slot];
      const answered = ft.pkts[slot * 2] > 0 && ft.pkts[slot * 2 + 1] > 0;
      const life = ft.closing[slot] ? CLOSED_FLOW_LIFETIME_NS : !answered ? UNANSWERED_FLOW_LIFETIME_NS : ft.proto(slot) === IPPROTO_TCP ? TCP_FLOW_LIFETIME_NS : ICMP_FLOW_LIFETIME_NS;
      if (idle > life) {
        if (!ft.closing[slot]) this.flowEvent(slot, 0, now, 'closing', 'flow timeout', 'userspace-cleanup');
        ft.remove(slot);
      }
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
      this.sink.full({ schema: 'pathlens.pping/1', type: 'table-full', sec: this.absSec(t), nsec: this.absNsec(t), table: 'flows', capacity: this.flows.max, dropped: s.flowTableFull - this.reportedFlowFull });
      this.reportedFlowFull = s.flowTableFull;
    }
    if (s.stampTableFull > this.reportedStampFull) {
      this.sink.full({ schema: 'pathlens.pping/1', type: 'table-full', sec: this.absSec(t), nsec: this.absNsec(t), table: 'timestamps', capacity: this.stamps.max, dropped: s.stampTableFull - this.reportedStampFull });
      this.reportedStampFull = s.stampTableFull;
    }
  }

  /** Endpoint fields of slot's flow seen from direction `dir` (0: A to B). */
  private tuple(slot: number, dir: number) {
    const ft = this.flows;
    const fam = ft.family(slot);
    const src = dir;
    const dst = dir ^ 1;
    return {
      src_ip: formatIp(ft.keys, ft.addrOff(slot, src), fam),
      src_port: ft.port(slot, src),
      dest_ip: formatIp(ft.keys, ft.addrOff(slot, dst), fam),
      dest_port: ft.port(slot, dst),
      protocol: protocolName(ft.proto(slot)),
    };
  }

  private rttEvent(slot: number, dir: number, t: number, rtt: number, egress: boolean): void {
    const ft = this.flows;
    const di = slot * 2 + dir;
    const ri = slot * 2 + (dir ^ 1);
    this.sink.rtt({
      schema: 'pathlens.pping/1',
      type: 'rtt',
      sec: this.absSec(t),
      nsec: this.absNsec(t),
      ...this.tuple(slot, dir),
      rtt,
      min_rtt: ft.minRtt[di],
      sent_packets: ft.pkts[di],
      sent_bytes: ft.bytes[di],
      rec_packets: ft.pkts[ri],
      rec_bytes: ft.bytes[ri],
      match_on_egress: egress,
    });
  }

  private flowEvent(slot: number, dir: number, t: number, kind: 'opening' | 'closing', reason: FlowReason, by: FlowEvent['triggered_by']): void {
    this.sink.flow({ schema: 'pathlens.pping/1', type: 'flow', sec: this.absSec(t), nsec: this.absNsec(t), ...this.tuple(slot, dir), flow_event: kind, reason, triggered_by: by });
  }
}

