/**
 * `pathlens pping --capture bpf` (the default live mode): the programs of bpf/pping.bpf.c on tc
 * egress and tc ingress (or XDP ingress) of one interface apply the rules in the kernel; this side
 * turns ring-buffer records into pathlens.pping/1 events, sweeps stale timestamps and idle flows
 * once a second (the "flow timeout" closing events come from here), reports full tables from the
 * kernel's counters at most once a second, and detaches everything when it stops.
 */
import { attachTc, attachXdp, ClsactHook, type TcMode, type XdpMode } from '../bpf/attach.js';
import { EpochClock } from '../bpf/clock.js';
import { ARPHRD_ETHER, ARPHRD_L3, ARPHRD_LOOPBACK, linkType } from '../bpf/link.js';
import { MapWalker, PerCpuCounters } from '../bpf/maps.js';
import { BpfObject, bpfObjectPath } from '../bpf/object.js';
import { BpfSession } from '../bpf/session.js';
import { PathlensError } from '../core/errors.js';
import { inNamespace } from '../io/placement.js';
import { native } from '../native/index.js';
import { formatIp } from '../packet/addr.js';
import { realtime } from '../time/clock.js';
import {
  C,
  CFG_ICMP,
  CFG_INCLUDE_LOCAL,
  CFG_INCLUDE_SYN,
  CFG_L3,
  CFG_RTT_MIN,
  CFG_SEQACK,
  CFG_DNS,
  CFG_QUIC,
  CFG_TCP,
  CONFIG,
  DIR,
  BY_DEST,
  EVENT,
  EVF_MATCH_ON_EGRESS,
  EVF_ONE_WAY,
  EV_FLOW,
  EV_RTT,
  FLOW,
  FLOW_CLOSING,
  FLOW_KEY,
  LE,
  STAMP,
  STAMP_KEY,
  TALLY,
  setU64,
  u64,
} from './bpf-layout.js';
import { type FlowEvent, PPING_SCHEMA, type PpingDoneEvent, type PpingProtocol, type RttEvent, type TableFullEvent } from './events.js';
import { RULE_NAMES } from './identify.js';
import { active, CROWDED, gcVerdict, oneWayLimit } from './hygiene.js';
import { MATCHER_DEFAULTS, type MatcherOptions, REASONS } from './matcher.js';
import type { LiveRun } from '../core/live.js';
import type { Sink } from '../core/sink.js';
import { type LiveHandle, type LiveOptions, type PpingSink, TICK_MS, startEvent } from './run.js';

export interface BpfOptions extends LiveOptions {
  ingressHook: 'tc' | 'xdp';
  xdpMode: XdpMode;
  tcMode: TcMode;
}

const OBJECT = 'pping.bpf.o';
const DRAIN_MS = 100;

function protoName(p: number): PpingProtocol {
  return p === 6 ? 'TCP' : p === 1 ? 'ICMP' : p === 17 ? 'UDP' : 'ICMPv6';
}

/**
 * Opens, sizes, configures and loads the pping object; the caller owns it (close()). The rules'
 * options are the programs' .rodata (extraFlags: CFG_L3, CFG_TEST_CLOCK), constants to the
 * verifier, so an option that is off costs nothing per packet.
 */
export function loadPping(o: MatcherOptions, extraFlags = 0): BpfObject {
  const obj = BpfObject.open(bpfObjectPath(OBJECT), 'pping');
  try {
    obj.setMaxEntries('pping_flows', o.maxFlows);
    obj.setMaxEntries('pping_stamps', o.maxStamps);
    // Where QUIC connection ids were last seen: one per flow at most that is worth keeping.
    obj.setMaxEntries('pping_quic_cids', o.quicPorts.length > 0 ? o.maxFlows : 1);
    obj.setInitialValue('.rodata', configOf(o, extraFlags));
    obj.load();
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

/** struct pping_config of the rules' options. */
function configOf(o: MatcherOptions, extraFlags: number): Uint8Array {
  const cfg = new Uint8Array(CONFIG.size);
  const cv = new DataView(cfg.buffer);
  setU64(cv, CONFIG.rate_limit_ns, o.rateLimitNs);
  cv.setUint32(CONFIG.rtt_rate_milli, Math.round(o.rttRate * 1000), LE);
  const flags = (o.tcp ? CFG_TCP : 0) | (o.icmp ? CFG_ICMP : 0) | (o.includeSyn ? CFG_INCLUDE_SYN : 0) | (o.includeLocal ? CFG_INCLUDE_LOCAL : 0) | (o.rttRateUse === 'min' ? CFG_RTT_MIN : 0) | (o.seqAck ? CFG_SEQACK : 0) | (o.dns ? CFG_DNS : 0) | (o.quicPorts.length ? CFG_QUIC : 0);
  cv.setUint32(CONFIG.flags, flags | extraFlags, LE);
  cv.setUint32(CONFIG.one_way_limit, oneWayLimit(o.maxStamps), LE);
  cv.setUint32(CONFIG.burst, o.burst, LE);
  o.quicPorts.forEach((port, i) => cv.setUint16(CONFIG.quic_ports + 2 * i, port, LE));
  return cfg;
}

/** One ring-buffer record as an event (null for a record this version does not know). */
export function recordToEvent(v: DataView, b: Uint8Array, off: number, len: number, clock: EpochClock, t: { sec: number; nsec: number }): RttEvent | FlowEvent | null {
  if (len < EVENT.size) return null;
  const type = b[off + EVENT.type];
  const fam = b[off + EVENT.family] === 6 ? 6 : 4;
  clock.epoch(u64(v, off + EVENT.time), t);
  const tuple = {
    src_ip: formatIp(b, off + EVENT.saddr, fam),
    src_port: v.getUint16(off + EVENT.sport, LE),
    dest_ip: formatIp(b, off + EVENT.daddr, fam),
    dest_port: v.getUint16(off + EVENT.dport, LE),
    protocol: protoName(b[off + EVENT.proto]),
  };
  if (type === EV_RTT) {
    return {
      schema: PPING_SCHEMA,
      type: 'rtt',
      sec: t.sec,
      nsec: t.nsec,
      ...tuple,
      rtt: u64(v, off + EVENT.rtt),
      min_rtt: u64(v, off + EVENT.min_rtt),
      sent_packets: u64(v, off + EVENT.sent_packets),
      sent_bytes: u64(v, off + EVENT.sent_bytes),
      rec_packets: u64(v, off + EVENT.rec_packets),
      rec_bytes: u64(v, off + EVENT.rec_bytes),
      match_on_egress: (b[off + EVENT.flags] & EVF_MATCH_ON_EGRESS) !== 0,
      match: RULE_NAMES[b[off + EVENT.match]] ?? 'tsopt',
    };
  }
  if (type === EV_FLOW) {
    return {
      schema: PPING_SCHEMA,
      type: 'flow',
      sec: t.sec,
      nsec: t.nsec,
      ...tuple,
      flow_event: b[off + EVENT.flow_event] === FLOW_CLOSING ? 'closing' : 'opening',
      reason: REASONS[b[off + EVENT.reason]] || 'first observed packet',
      triggered_by: b[off + EVENT.by] === BY_DEST ? 'dest' : 'src',
      bidirectional: (b[off + EVENT.flags] & EVF_ONE_WAY) === 0,
    };
  }
  return null;
}

/**
 * The user-space half of the BPF capture's state hygiene, once a second: stored timestamps past
 * their deadline are deleted, flows are garbage-collected by the same verdict as the matcher's
 * sweep (emitting the "flow timeout" closings), and full tables are reported from the kernel's
 * counters (at most once per sweep, with how many were not kept since the last report).
 */
class BpfSweeper {
  readonly counters: PerCpuCounters;
  expired = 0;
  private readonly stampFd: number;
  private readonly flowFd: number;
  private readonly stampWalk: MapWalker;
  private readonly flowWalk: MapWalker;
  private readonly delKeys: Uint8Array[] = [];
  private readonly timeouts: Array<{ key: Uint8Array; from: number; bidirectional: boolean }> = [];
  private readonly now = new Float64Array(2);
  private reportedFlowFull = 0;
  private reportedStampFull = 0;
  private readonly oneWayFd: number;
  /** Flows in the map after the last walk. */
  private flowsSeen = 0;
  /** One-way flows removed early while the map was crowded. */
  evicted = 0;
  /** Flows removed here with one direction only seen. */
  oneWay = 0;

  constructor(
    obj: BpfObject,
    private readonly o: MatcherOptions,
    private readonly sink: PpingSink,
  ) {
    this.counters = new PerCpuCounters(obj.mapFd('pping_counters'), C.NUM);
    this.stampFd = obj.mapFd('pping_stamps');
    this.oneWayFd = obj.mapFd('pping_one_way');
    this.flowFd = obj.mapFd('pping_flows');
    this.stampWalk = new MapWalker(this.stampFd, STAMP_KEY.size, STAMP.size);
    this.flowWalk = new MapWalker(this.flowFd, FLOW_KEY.size, FLOW.size);
  }

  sweep(): void {
    const mono = EpochClock.monoNow();
    this.expireStamps(mono);
    this.collectFlows(mono);
    this.reportFull();
  }

  private expireStamps(mono: number): void {
    const w = this.stampWalk;
    this.delKeys.length = 0;
    let oneWay = 0;
    w.walk((i) => {
      if (u64(w.vv, i * STAMP.size + STAMP.deadline) < mono) this.delKeys.push(w.keyBytes.slice(i * STAMP_KEY.size, (i + 1) * STAMP_KEY.size));
      else if (w.vv.getUint32(i * STAMP.size + STAMP.one_way, LE)) oneWay++;
    });
    for (const k of this.delKeys) if (native().bpfMapDelete(this.stampFd, k) === 0) this.expired++;
    // The programs count one-way timestamps up and down; expiries happen here: the count becomes
    // what this walk saw (a store racing it is off by a few until the next sweep).
    const v = new Uint8Array(8);
    new DataView(v.buffer).setBigUint64(0, BigInt(oneWay), LE);
    native().bpfMapUpdate(this.oneWayFd, new Uint8Array(4), v, 0);
  }

  private collectFlows(mono: number): void {
    const w = this.flowWalk;
    this.delKeys.length = 0;
    this.timeouts.length = 0;
    // Crowded by the last walk's count: one-way flows then go after 3 s instead of 30 (counted).
    const crowded = this.flowsSeen > CROWDED * this.o.maxFlows;
    let seen = 0;
    w.walk((i) => {
      seen++;
      const vo = i * FLOW.size;
      const vv = w.vv;
      const key = w.keyBytes.subarray(i * FLOW_KEY.size, (i + 1) * FLOW_KEY.size);
      const d1 = vo + FLOW.d + DIR.size;
      const args = [key[FLOW_KEY.proto] !== 6, vv.getUint8(vo + FLOW.d + DIR.state), mono - u64(vv, vo + FLOW.d + DIR.last_stamp), vv.getUint8(d1 + DIR.state), mono - u64(vv, d1 + DIR.last_stamp)] as const;
      const verdict = gcVerdict(...args, crowded);
      if (verdict < 0) return;
      if (crowded && gcVerdict(...args) < 0) this.evicted++;
      const k = key.slice();
      this.delKeys.push(k);
      // As ePPing: each open direction that timed out, named the other way round.
      for (let d = 0; d < 2; d++) if (verdict & (1 << d)) this.timeouts.push({ key: k, from: d ^ 1, bidirectional: true });
      // A flow with one direction only seen (each direction counts the other's packets as received):
      // its active direction, the same way round, once (matcher.ts oneWayGone).
      if (u64(vv, vo + FLOW.by + TALLY.rec_pkts) === 0 && u64(vv, vo + FLOW.by + TALLY.size + TALLY.rec_pkts) === 0) {
        this.oneWay++;
        for (let d = 0; d < 2; d++) if (active(vv.getUint8(vo + FLOW.d + d * DIR.size + DIR.state))) this.timeouts.push({ key: k, from: d ^ 1, bidirectional: false });
      }
    });
    for (const k of this.delKeys) native().bpfMapDelete(this.flowFd, k);
    this.flowsSeen = seen - this.delKeys.length;
    realtime(this.now);
    for (const f of this.timeouts) this.sink.event(this.timeoutEvent(f.key, f.from, f.bidirectional));
  }

  private timeoutEvent(key: Uint8Array, a: number, bidirectional: boolean): FlowEvent {
    const fam = key[FLOW_KEY.family] === 6 ? 6 : 4;
    const kv = new DataView(key.buffer, key.byteOffset);
    return {
      schema: PPING_SCHEMA,
      type: 'flow',
      sec: this.now[0],
      nsec: this.now[1],
      src_ip: formatIp(key, FLOW_KEY.addr + 16 * a, fam),
      src_port: kv.getUint16(FLOW_KEY.port + 2 * a, LE),
      dest_ip: formatIp(key, FLOW_KEY.addr + 16 * (a ^ 1), fam),
      dest_port: kv.getUint16(FLOW_KEY.port + 2 * (a ^ 1), LE),
      protocol: protoName(key[FLOW_KEY.proto]),
      flow_event: 'closing',
      reason: 'flow timeout',
      triggered_by: 'garbage collection',
      bidirectional,
    };
  }

  private reportFull(): void {
    const c = this.counters.read();
    realtime(this.now);
    const report = (table: TableFullEvent['table'], capacity: number, dropped: number) =>
      this.sink.event({ schema: PPING_SCHEMA, type: 'table-full', sec: this.now[0], nsec: this.now[1], table, capacity, dropped });
    if (c[C.FLOW_FULL] > this.reportedFlowFull) {
      report('flows', this.o.maxFlows, c[C.FLOW_FULL] - this.reportedFlowFull);
      this.reportedFlowFull = c[C.FLOW_FULL];
    }
    if (c[C.STAMP_FULL] > this.reportedStampFull) {
      report('timestamps', this.o.maxStamps, c[C.STAMP_FULL] - this.reportedStampFull);
      this.reportedStampFull = c[C.STAMP_FULL];
    }
  }
}

/** Live capture with the BPF programs. Needs root (CAP_BPF + CAP_NET_ADMIN). */
export function runBpf(lo: BpfOptions, opts: Partial<MatcherOptions>, sink: PpingSink): LiveHandle {
  const o: MatcherOptions = { ...MATCHER_DEFAULTS, ...opts };
  // The interface first: whether it has a link-layer header is part of the programs' constants.
  let ifindex = -1;
  let l3 = false;
  inNamespace(lo.netns, () => {
    ifindex = native().ifNameToIndex(lo.iface);
    if (ifindex < 0) throw new PathlensError('ERR_USAGE', `-i ${lo.iface}: no such interface${lo.netns ? ` in ${lo.netns}` : ''}`);
    const type = linkType(ifindex);
    if (ARPHRD_L3.has(type)) l3 = true;
    else if (type !== ARPHRD_ETHER && type !== ARPHRD_LOOPBACK) throw new PathlensError('ERR_BPF', `-i ${lo.iface}: link type ${type} is neither Ethernet nor a layer-3 device; use --capture packet`);
  });
  if (l3 && lo.ingressHook === 'xdp') throw new PathlensError('ERR_USAGE', `-i ${lo.iface} has no link-layer header: XDP is for Ethernet devices, use --ingress-hook tc`);
  const session = new BpfSession(loadPping(o, l3 ? CFG_L3 : 0), lo.netns);
  const obj = session.obj;
  const clock = new EpochClock();
  const t = { sec: 0, nsec: 0 };
  // The run's lifecycle starts once everything is attached; a ring-buffer failure ends it.
  let run: LiveRun<PpingDoneEvent, PpingDoneEvent['reason']> | null = null;
  try {
    session.openRing(
      'pping_events',
      (v, b, off, len) => {
        const e = recordToEvent(v, b, off, len, clock, t);
        if (e) sink.event(e);
      },
      () => run?.finish('error'),
    );
    const hook = new ClsactHook(ifindex);
    session.attach(() => attachTc(obj.progFd('pping_tc_egress'), ifindex, true, lo.tcMode, hook));
    if (lo.ingressHook === 'xdp') session.attach(() => attachXdp(obj.progFd('pping_xdp_ingress'), ifindex, lo.xdpMode));
    else session.attach(() => attachTc(obj.progFd('pping_tc_ingress'), ifindex, false, lo.tcMode, hook));
  } catch (e) {
    session.abort();
    throw e;
  }

  const now = new Float64Array(2);
  realtime(now);
  const start = startEvent('bpf', lo.iface, o, now[0], now[1]);
  start.attach = session.attached;
  sink.event(start);

  const sweeper = new BpfSweeper(obj, o, sink);
  const ifaceGone = (): boolean => {
    try {
      return inNamespace(lo.netns, () => native().ifNameToIndex(lo.iface)) !== ifindex;
    } catch {
      return true; // the namespace itself is gone
    }
  };

  run = session.live<PpingDoneEvent, PpingDoneEvent['reason']>({
    durationMs: lo.durationMs,
    // The programs wake the reader only when the ring fills (a wakeup per event cost more than the
    // rest of the program): events are read ten times a second, the maps swept once.
    drainMs: DRAIN_MS,
    tickMs: TICK_MS,
    sink: sink as Sink<PpingDoneEvent>,
    tick: () => {
      if (ifaceGone()) return run!.finish('interface-gone');
      try {
        sweeper.sweep();
      } catch (e) {
        process.emitWarning(`pping sweep: ${(e as Error).message}`);
      }
    },
    done: (reason) => {
      const counters = sweeper.counters.read();
      realtime(now);
      return {
        schema: PPING_SCHEMA,
        type: 'done',
        sec: now[0],
        nsec: now[1],
        reason,
        packets: counters[C.SEEN],
        skipped: { not_ip: counters[C.NOT_IP], other_protocol: counters[C.OTHER_PROTO], malformed: counters[C.MALFORMED], fragment: counters[C.FRAGMENT] },
        considered: counters[C.CONSIDERED],
        rtt_events: counters[C.RTTS],
        flows_opened: counters[C.FLOWS_OPENED],
        timestamps_expired: sweeper.expired,
        flow_table_full: counters[C.FLOW_FULL],
        timestamp_table_full: counters[C.STAMP_FULL],
        retransmit_skipped: counters[C.RETRANSMIT_SKIPPED],
        one_way_refused: counters[C.ONE_WAY_REFUSED],
        flows_evicted: sweeper.evicted,
        burst_stamps: counters[C.BURST],
        one_way_flows: counters[C.ONE_WAY_FLOWS] + sweeper.oneWay,
        quic_moved: counters[C.QUIC_MOVED],
        lost: counters[C.EVENTS_LOST],
      };
    },
  });
  return run.handle;
}
