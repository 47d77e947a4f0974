/**
 * Runs pping over a packet source and feeds the event stream:
 *  - offline: a pcap/pcapng file, as fast as it reads; timestamps and sweeps follow packet time;
 *  - packet socket: AF_PACKET (SOCK_DGRAM, every protocol) on one interface, both directions,
 *    kernel receive timestamps, drops counted from PACKET_STATISTICS. The same decoder and matcher
 *    as offline: one implementation of the rules.
 */
import { AF_PACKET, ETH_P_ALL, SOCK_DGRAM, SOL_PACKET, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, SO_TIMESTAMPNS } from '../core/constants.js';
import { PathlensError, SysError } from '../core/errors.js';
import { liveRun } from '../core/live.js';
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { version } from '../core/version.js';
import { RecvBatch } from '../io/batch.js';
import { Socket } from '../io/socket.js';
import { native } from '../native/index.js';
import { sockaddrLl } from '../packet/addr.js';
import { CmsgCursor } from '../packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../packet/errqueue.js';
import { realtime } from '../time/clock.js';
import { inNamespace } from '../io/placement.js';
import { Decoder, L3_ETHERTYPE, PacketInfo, SKIP_FRAGMENT, SKIP_MALFORMED, SKIP_NOT_IP, SKIP_PROTO, linktypeSupported } from './decode.js';
import { PPING_SCHEMA, type PpingDoneEvent, type PpingEvent, type PpingProtocol, type PpingStartEvent } from './events.js';
import { Matcher, type MatcherOptions } from './matcher.js';
import { CaptureReader, CaptureRecord } from './pcap.js';
import { EACCES, ENETDOWN, ENODEV, ENXIO, EPERM } from '../core/errno.js';

/** What a pping run emits into. */
export type PpingSink = Sink<PpingEvent>;

const NS = 1e9;
const SWEEP_NS = 1 * NS;
/** Live captures sweep their state and read their counters this often. */
export const TICK_MS = 1000;
const PACKET_STATISTICS = 6;
const PACKET_OUTGOING = 4;

/** Counts of what a run saw, for the done event. */
class Tally {
  packets = 0;
  notIp = 0;
  proto = 0;
  malformed = 0;
  fragment = 0;
  lost = 0;

  skip(reason: number): void {
    if (reason === SKIP_NOT_IP) this.notIp++;
    else if (reason === SKIP_PROTO) this.proto++;
    else if (reason === SKIP_MALFORMED) this.malformed++;
    else if (reason === SKIP_FRAGMENT) this.fragment++;
  }
}

function protocols(o: Partial<MatcherOptions>): PpingProtocol[] {
  const out: PpingProtocol[] = [];
  if (o.tcp !== false) out.push('TCP');
  if (o.icmp) out.push('ICMP', 'ICMPv6');
  if (o.dns || (o.quicPorts?.length ?? 0) > 0) out.push('UDP');
  return out;
}

export function startEvent(source: PpingStartEvent['source'], input: string, o: Partial<MatcherOptions>, sec: number, nsec: number): PpingStartEvent {
  return {
    schema: PPING_SCHEMA,
    type: 'start',
    sec,
    nsec,
    version: version(),
    source,
    input,
    protocols: protocols(o),
    rate_limit_ms: (o.rateLimitNs ?? 100e6) / 1e6,
    rtt_rate: o.rttRate ? o.rttRate : null,
  };
}

function doneEvent(m: Matcher, t: Tally, reason: PpingDoneEvent['reason'], sec: number, nsec: number): PpingDoneEvent {
  return {
    schema: PPING_SCHEMA,
    type: 'done',
    sec,
    nsec,
    reason,
    packets: t.packets,
    skipped: { not_ip: t.notIp, other_protocol: t.proto, malformed: t.malformed, fragment: t.fragment },
    considered: m.stats.packets,
    rtt_events: m.stats.rtts,
    flows_opened: m.stats.flowsOpened,
    timestamps_expired: m.stats.stampsExpired,
    flow_table_full: m.stats.flowTableFull,
    timestamp_table_full: m.stats.stampTableFull,
    retransmit_skipped: m.stats.retransmitSkipped,
    one_way_refused: m.stats.oneWayRefused,
    flows_evicted: m.stats.flowsEvicted,
    burst_stamps: m.stats.burstStamps,
    one_way_flows: m.stats.oneWayFlows,
    lost: t.lost,
  };
}

function matcherFor(o: Partial<MatcherOptions>, sink: PpingSink): Matcher {
  return new Matcher(o, sink);
}

/** Packets read between two turns of the event loop (so a signal can stop a long read). */
const OFFLINE_SLICE = 8192;

/**
 * Reads a pcap or pcapng file through the rules, a slice at a time: `stop()` (a signal, a failed
 * output) ends it early with reason "interrupted". The done event is the last one either way.
 */
export function runOffline(path: string, o: Partial<MatcherOptions>, sink: PpingSink): LiveHandle {
  const reader = CaptureReader.open(path);
  const m = matcherFor(o, sink);
  const dec = new Decoder();
  dec.dns = !!o.dns;
  dec.quicPorts = o.quicPorts ?? [];
  const info = new PacketInfo();
  const rec = new CaptureRecord();
  const t = new Tally();
  let started = false;
  let stopped = false;
  let nextSweep = SWEEP_NS;
  let lastSec = 0;
  let lastNsec = 0;
  const slice = (): boolean => {
    for (let n = 0; n < OFFLINE_SLICE; n++) {
      if (!reader.next(rec)) return false;
      if (!started) {
        started = true;
        sink.event(startEvent('pcap', path, o, rec.sec, rec.nsec));
      }
      t.packets++;
      lastSec = rec.sec;
      lastNsec = rec.nsec;
      if (!linktypeSupported(rec.linktype)) {
        throw new PathlensError('ERR_PARSE', `${path}: link type ${rec.linktype} is not supported (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback are)`);
      }
      const r = dec.decode(rec.data, rec.off, rec.len, rec.linktype, 0, info);
      if (r !== 0) {
        t.skip(r);
        continue;
      }
      // Direction: pcapng's epb_flags, else a Linux cooked header's packet type, else unknown (ingress).
      m.process(info, rec.sec, rec.nsec, rec.egress ?? info.linkOut === 1);
      if (m.now >= nextSweep) {
        m.sweep();
        nextSweep = m.now + SWEEP_NS;
      }
    }
    return true;
  };
  const done = new Promise<PpingDoneEvent>((resolve, reject) => {
    const turn = (): void => {
      try {
        if (!stopped && slice()) {
          setImmediate(turn);
          return;
        }
        reader.close();
        if (!started) sink.event(startEvent('pcap', path, o, 0, 0));
        const d = doneEvent(m, t, stopped ? 'interrupted' : 'end-of-file', lastSec, lastNsec);
        sink.event(d);
        resolve(d);
      } catch (e) {
        reader.close();
        reject(e);
      }
    };
    setImmediate(turn);
  });
  return { done, stop: () => (stopped = true) };
}

export interface LiveOptions {
  iface: string;
  netns?: string;
  /** Stop after this long (ms); 0: until interrupted. */
  durationMs?: number;
}

/** A running pping: offline, packet socket or BPF alike. */
export type LiveHandle = RunHandle<PpingDoneEvent>;

/** Live capture on a packet socket. Needs CAP_NET_RAW. */
export function runPacketSocket(lo: LiveOptions, o: Partial<MatcherOptions>, sink: PpingSink): LiveHandle {
  const { sock, ifindex } = inNamespace(lo.netns, () => {
    const idx = native().ifNameToIndex(lo.iface);
    if (idx < 0) throw new PathlensError('ERR_USAGE', `-i ${lo.iface}: no such interface${lo.netns ? ` in ${lo.netns}` : ''}`);
    let s: Socket;
    try {
      s = new Socket(AF_PACKET, SOCK_DGRAM, (ETH_P_ALL >> 8) | ((ETH_P_ALL & 0xff) << 8));
    } catch (e) {
      if (e instanceof SysError && (e.errno === EPERM || e.errno === EACCES)) {
        throw new PathlensError('ERR_PRIVILEGE', `packet socket refused (${e.sysCode}): capturing needs CAP_NET_RAW (run as root, or setcap cap_net_raw+ep "$(command -v node)")`);
      }
      throw e;
    }
    return { sock: s, ifindex: idx };
  });
  try {
    sock.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1, 'SO_TIMESTAMPNS');
    if (sock.trySetInt(SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20) < 0) sock.trySetInt(SOL_SOCKET, SO_RCVBUF, 32 << 20);
    sock.bind(sockaddrLl(ifindex), `bind to ${lo.iface}`);
  } catch (e) {
    sock.close();
    throw e;
  }
  const m = matcherFor(o, sink);
  const dec = new Decoder();
  dec.dns = !!o.dns;
  dec.quicPorts = o.quicPorts ?? [];
  const info = new PacketInfo();
  const batch = new RecvBatch(64, 2048, 64, 20);
  const eq = new ErrqueueRecord();
  const cur = new CmsgCursor();
  const t = new Tally();
  const clock = new Float64Array(2);
  const stats = new Uint8Array(12);
  const statsView = new DataView(stats.buffer);
  realtime(clock);
  sink.event(startEvent('packet-socket', lo.iface, o, clock[0], clock[1]));

  const readDrops = () => {
    // struct tpacket_stats { tp_packets, tp_drops }: reading resets the counters.
    if (native().getsockopt(sock.fd, SOL_PACKET, PACKET_STATISTICS, stats) >= 8) t.lost += statsView.getUint32(4, true);
  };

  const onReady = (): number => {
    let total = 0;
    for (;;) {
      const n = batch.recv(sock.fd, 0);
      if (n <= 0) {
        if (n < 0 && (-n === ENETDOWN || -n === ENODEV || -n === ENXIO)) run.finish('interface-gone');
        break;
      }
      for (let i = 0; i < n; i++) {
        t.packets++;
        parseErrqueue(batch.ctrlView, batch.ctrlOff(i), batch.ctrlOff(i) + batch.ctrlLen(i), eq, cur);
        let sec = eq.sec;
        let nsec = eq.nsec;
        if (!eq.hasTime) {
          realtime(clock);
          sec = clock[0];
          nsec = clock[1];
        }
        const no = batch.nameOff(i);
        const ethertype = batch.nameLen(i) >= 12 ? (batch.names[no + 2] << 8) | batch.names[no + 3] : 0;
        const egress = batch.nameLen(i) >= 12 && batch.names[no + 10] === PACKET_OUTGOING;
        const r = dec.decode(batch.data, batch.dataOff(i), batch.dataLen(i), L3_ETHERTYPE, ethertype, info);
        if (r !== 0) {
          t.skip(r);
          continue;
        }
        m.process(info, sec, nsec, egress);
      }
      total += n;
      if (n < batch.count) break;
    }
    return total;
  };

  const run = liveRun<PpingDoneEvent, PpingDoneEvent['reason']>({
    durationMs: lo.durationMs,
    tickMs: TICK_MS,
    sink: sink as Sink<PpingDoneEvent>,
    tick: () => {
      realtime(clock);
      m.sweep(m.relNow(clock[0], clock[1]));
      readDrops();
    },
    teardown: (reason) => {
      if (reason !== 'interface-gone') {
        onReady();
        readDrops();
      }
      sock.close();
      realtime(clock);
      return doneEvent(m, t, reason, clock[0], clock[1]);
    },
  });
  sock.watch(onReady, () => run.finish('interface-gone'));
  return run.handle;
}
