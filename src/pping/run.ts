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
import { FeedViews, REC_WORDS, SLOTS, SLOT_RECORDS, STATUS_END, STATUS_ERROR } from './feed-ring.js';
import { OfflineFeed } from './offline-feed.js';
import { threadPays } from './reader-thread.js';
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
    quic_moved: m.stats.quicMoved,
    lost: t.lost,
  };
}

function matcherFor(o: Partial<MatcherOptions>, sink: PpingSink): Matcher {
  return new Matcher(o, sink);
}

/** Packets read between two turns of the event loop (so a signal can stop a long read). */
const OFFLINE_SLICE = 8192;
/** The same on two threads, where a slice takes about a millisecond (a turn costs tens of µs). */
const THREAD_SLICE = 32768;

export interface OfflineOptions {
  /**
   * Read and decode on a worker thread: 'auto' (regular files of THREAD_MIN_BYTES up, with two
   * cores), 'on' (any regular file), 'off'.
   */
  thread?: 'auto' | 'on' | 'off';
}

/** What an offline pass keeps between packets, whichever thread decodes them. */
class OfflinePass {
  readonly t = new Tally();
  started = false;
  private nextSweep = SWEEP_NS;
  private lastSec = 0;
  private lastNsec = 0;

  constructor(
    private readonly path: string,
    private readonly o: Partial<MatcherOptions>,
    private readonly sink: PpingSink,
    readonly m: Matcher,
  ) {}

  /** Counts a packet read (the first one starts the stream). */
  packet(sec: number, nsec: number): void {
    this.packets(1, sec, nsec, sec, nsec);
  }

  /** Counts n packets read, the first at (sec0, nsec0), the last at (sec, nsec). */
  packets(n: number, sec0: number, nsec0: number, sec: number, nsec: number): void {
    if (!this.started) {
      this.started = true;
      this.sink.event(startEvent('pcap', this.path, this.o, sec0, nsec0));
    }
    this.t.packets += n;
    this.lastSec = sec;
    this.lastNsec = nsec;
  }

  /** Runs the rules on a decoded packet, and sweeps each second of packet time. */
  rules(info: PacketInfo, sec: number, nsec: number, egress: boolean): void {
    const m = this.m;
    m.process(info, sec, nsec, egress);
    if (m.now >= this.nextSweep) {
      m.sweep();
      this.nextSweep = m.now + SWEEP_NS;
    }
  }

  /** Decodes a record read from the file and runs the rules on it. */
  one(rec: CaptureRecord, dec: Decoder, info: PacketInfo): void {
    this.packet(rec.sec, rec.nsec);
    if (!linktypeSupported(rec.linktype)) {
      throw new PathlensError('ERR_PARSE', `${this.path}: link type ${rec.linktype} is not supported (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback are)`);
    }
    const r = dec.decode(rec.data, rec.off, rec.len, rec.linktype, 0, info);
    if (r !== 0) this.t.skip(r);
    // Direction: pcapng's epb_flags, else a Linux cooked header's packet type, else unknown (ingress).
    else this.rules(info, rec.sec, rec.nsec, rec.egress ?? info.linkOut === 1);
  }

  finish(stopped: boolean): PpingDoneEvent {
    if (!this.started) this.sink.event(startEvent('pcap', this.path, this.o, 0, 0));
    const d = doneEvent(this.m, this.t, stopped ? 'interrupted' : 'end-of-file', this.lastSec, this.lastNsec);
    this.sink.event(d);
    return d;
  }
}

/**
 * Reads a pcap or pcapng file through the rules, a slice at a time: `stop()` (a signal, a failed
 * output) ends it early with reason "interrupted". The done event is the last one either way.
 * A big file is read and decoded on a second thread (offline-feed.ts); the events are the same.
 */
export function runOffline(path: string, o: Partial<MatcherOptions>, sink: PpingSink, oo: OfflineOptions = {}): LiveHandle {
  const thread = oo.thread ?? 'auto';
  if (thread !== 'off' && threadPays(path, thread === 'on')) {
    // The file's header is checked here, so a file that is no capture fails as the one-thread path does.
    CaptureReader.open(path, 4096).close();
    return runOfflineThreaded(path, o, sink);
  }
  const reader = CaptureReader.open(path);
  const pass = new OfflinePass(path, o, sink, matcherFor(o, sink));
  const dec = decoderFor(o);
  const info = new PacketInfo();
  const rec = new CaptureRecord();
  let stopped = false;
  const slice = (): boolean => {
    for (let n = 0; n < OFFLINE_SLICE; n++) {
      if (!reader.next(rec)) return false;
      pass.one(rec, dec, info);
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
        resolve(pass.finish(stopped));
      } catch (e) {
        reader.close();
        reject(e);
      }
    };
    setImmediate(turn);
  });
  return { done, stop: () => (stopped = true) };
}

function decoderFor(o: Partial<MatcherOptions>): Decoder {
  const dec = new Decoder();
  dec.dns = !!o.dns;
  dec.quicPorts = o.quicPorts ?? [];
  return dec;
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** runOffline with reading and decoding on a worker: this thread runs the rules on its records. */
function runOfflineThreaded(path: string, o: Partial<MatcherOptions>, sink: PpingSink): LiveHandle {
  const feed = new OfflineFeed(path, !!o.dns, o.quicPorts ?? []);
  const pass = new OfflinePass(path, o, sink, matcherFor(o, sink));
  const v = feed.v;
  const info = new PacketInfo();
  let stopped = false;
  /** Runs a full slot's records through the rules and gives it back: its status. */
  const take = (slot: number): number => {
    const n = v.count(slot);
    info.bytes = v.u8;
    info.words = v.words;
    if (n > 0) {
      const first = FeedViews.base(slot, 0);
      const last = FeedViews.base(slot, n - 1);
      // The start event (first packet) comes before the rules' events; the count is whole at the end.
      pass.packets(n, v.sec(first), v.nsec(first), v.sec(last), v.nsec(last));
    }
    for (let i = 0, b = FeedViews.base(slot, 0); i < n; i++, b += REC_WORDS) {
      const r = v.skip(b);
      if (r !== 0) pass.t.skip(r);
      else {
        v.read(b, info);
        pass.rules(info, v.sec(b), v.nsec(b), v.egress(b));
      }
    }
    const status = v.status(slot);
    v.release(slot);
    return status;
  };
  const run = async (): Promise<PpingDoneEvent> => {
    try {
      for (let slot = 0, since = 0; !stopped; slot = (slot + 1) % SLOTS) {
        await feed.full(slot);
        const status = take(slot);
        if (status === STATUS_ERROR) throw feed.error();
        if (status === STATUS_END) break;
        since += SLOT_RECORDS;
        if (since >= THREAD_SLICE) {
          since = 0;
          await nextTurn();
        }
      }
      return pass.finish(stopped);
    } finally {
      feed.close();
    }
  };
  // As on one thread, nothing is read before the caller has the handle (and can stop it).
  return { done: nextTurn().then(run), stop: () => (stopped = true) };
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
