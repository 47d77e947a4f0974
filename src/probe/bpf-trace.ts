/**
 * trace --bpf: a Transport whose replies the kernel correlates (bpf/trace.bpf.c). The prober
 * (UDP or ICMP, opened with `kernelReplies`) still builds and sends the probes, in one sendmmsg a
 * window; its socket reads nothing (no error queue, and a socket filter that keeps nothing). Two
 * netfilter programs in the probing namespace record each probe's send time in an LRU map keyed by
 * its identity on the wire and, for every ICMP error, echo reply or datagram about this socket's
 * probes, put the packet, both times and the probe's seq in a ring buffer, read here from shared
 * memory (no system call). The prober's own rules then name the probe from the packet, as for a
 * raw socket; the kernel's seq must agree for its send time to be used.
 *
 * The engine sees the same Transport as ever: a reply is handed over after its probe's kernel send
 * time (a `sendStamp` record), so RTTs run between the two BPF timestamps, both on the monotonic
 * clock, converted to CLOCK_REALTIME exactly.
 */
import { endianness } from 'node:os';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, SOL_SOCKET } from '../core/constants.js';
import { EINVAL } from '../core/errno.js';
import { PathlensError, errnoName } from '../core/errors.js';
import { listCaps, missingCaps } from '../core/caps.js';
import type { Placement } from '../io/placement.js';
import type { Family } from '../packet/addr.js';
import { ICMP6_ECHO_REPLY, ICMP_ECHOREPLY, IcmpErrorView, parseIcmpError } from '../packet/icmp.js';
import { IcmpExtView, findIcmpExtensions } from '../packet/icmpext.js';
import { IpView, parseIpHeader } from '../packet/ip.js';
import { OK } from '../packet/status.js';
import { BPF_NETFILTER, BPF_PROG_TYPE_NETFILTER, attachNetfilter } from '../bpf/attach.js';
import { TaiClock, splitNs } from '../bpf/clock.js';
import { BpfObject, bpfObjectPath } from '../bpf/object.js';
import { BpfSession } from '../bpf/session.js';
import { native } from '../native/index.js';
import { COOKIE_MAGIC } from './cookie.js';
import { TR_BUCKETS, TR_CONFIG, TR_COUNTERS, TR_EVENT, TR_HIST, TR_HIST_KEY, TR_SOCK, TR_SOCK_KEY } from './bpf-layout.js';
import { type KernelFacts, ReplyRecord, type OnSent, type Transport, type WholeReplies } from './transport.js';

const LE = endianness() === 'LE';
/** Offsets of a u64's high and low halves. */
const HI = LE ? 4 : 0;
const LO = LE ? 0 : 4;
/** A packet's own receive stamp is taken at most this long before the receive hook runs (else it is not one: a delivery time). */
const STAMP_AGREES_NS = 10_000_000;
const SO_ATTACH_BPF = 50;
/** Netfilter priorities: the send hook after NAT and the filter tables, the receive hook before conntrack's defragmentation. */
const PRIO_OUT = 300;
const PRIO_IN = -450;

/** `--bpf`: off (the socket's error queue), on (refuse when BPF cannot), auto (BPF when it can, saying why not). */
export type BpfMode = 'off' | 'on' | 'auto';

/** Why trace --bpf cannot run for this method here, before anything is opened; null when it may try. */
export function bpfTraceRefusal(method: string): string | null {
  if (method === 'tcp') return 'TCP probes are correlated by their own sockets; --bpf takes UDP and ICMP probes';
  const missing = missingCaps(['CAP_BPF', 'CAP_NET_ADMIN']);
  if (missing.length) return `loading the programs and their netfilter hooks needs ${listCaps(missing)} (run as root)`;
  return null;
}

type Prober = Transport & WholeReplies & { readonly socketFd: number };

/**
 * The loaded programs of one namespace and family, shared by every probing socket there: a trace's
 * rounds, a run's targets. Each socket is a key of the tr_socks map, with its cookie session and
 * its counts; ring records carry the socket's port, and go to its transport.
 */
class Correlator {
  readonly session: BpfSession;
  private readonly readers = new Map<number, KernelTransport>();
  private ringOpen = false;
  private readonly sockKey = new Uint8Array(TR_SOCK_KEY.size);
  private readonly sockKeyView = new DataView(this.sockKey.buffer);
  private readonly sockVal = new Uint8Array(TR_SOCK.size);
  private readonly sockValView = new DataView(this.sockVal.buffer);
  readonly hooks: string[];

  constructor(
    readonly family: Family,
    netns: string | undefined,
    probes: number,
  ) {
    const obj = BpfObject.open(bpfObjectPath('trace.bpf.o'), 'trace');
    this.session = new BpfSession(obj, netns);
    try {
      const cfg = new Uint8Array(TR_CONFIG.size);
      new DataView(cfg.buffer).setUint32(TR_CONFIG.magic, COOKIE_MAGIC, LE);
      cfg[TR_CONFIG.family] = family;
      obj.setInitialValue('.rodata', cfg);
      // The probes of the run fit, with room for resent ones (--pmtu); the LRU drops the oldest.
      obj.setMaxEntries('tr_probes', Math.max(1024, Math.min(1 << 20, 2 * probes)));
      for (const p of ['tr_out', 'tr_in']) obj.setProgType(p, BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER);
      obj.load();
      const nf = family === 4 ? 'ipv4' : 'ipv6';
      this.session.attach(() => attachNetfilter(obj.progFd('tr_out'), nf, 'postrouting', PRIO_OUT));
      this.session.attach(() => attachNetfilter(obj.progFd('tr_in'), nf, 'prerouting', PRIO_IN));
      this.hooks = [`netfilter ${nf} postrouting`, `netfilter ${nf} prerouting`];
    } catch (e) {
      this.session.abort();
      throw e;
    }
  }

  /** Takes the socket's records from now on (its filter keeps the socket itself from reading any, unless `shadow`). */
  add(t: KernelTransport, fd: number, key: WholeReplies['kernelKey'], wake: Wake, shadow: boolean): void {
    const obj = this.session.obj;
    if (!shadow) {
      const rc = native().setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, int32(obj.progFd('tr_sock_drop')));
      if (rc < 0) throw new PathlensError('ERR_BPF', `the kernel refused the probe socket's filter (SO_ATTACH_BPF, ${errnoName(-rc)})`);
    }
    this.keyOf(key.sport, key.proto);
    this.sockVal.fill(0);
    this.sockValView.setUint32(TR_SOCK.session, key.session >>> 0, LE);
    this.sockVal[TR_SOCK.by_cookie] = key.byCookie ? 1 : 0;
    this.sockValView.setUint16(TR_SOCK.wake_every, clampU16(wake.perTtl), LE);
    this.sockValView.setUint16(TR_SOCK.wake_batch, clampU16(wake.batch), LE);
    const rc = native().bpfMapUpdate(obj.mapFd('tr_socks'), this.sockKey, this.sockVal, 0);
    if (rc < 0) throw new PathlensError('ERR_BPF', `the kernel refused the probe socket's entry (${errnoName(-rc)})`);
    this.readers.set(readerKey(key.sport, key.proto), t);
    if (!this.ringOpen) {
      // A failing ring fails every trace reading it.
      this.session.openRing('tr_events', (view, bytes, off, len) => this.route(view, bytes, off, len), (e) => {
        for (const r of this.readers.values()) r.fail(e);
      });
      this.ringOpen = true;
    }
  }

  /** The socket's last counts and histograms, its entries removed. */
  remove(key: WholeReplies['kernelKey'], maxTtl: number): Record<string, unknown> {
    const obj = this.session.obj;
    const n = native();
    this.session.drain();
    this.readers.delete(readerKey(key.sport, key.proto));
    this.keyOf(key.sport, key.proto);
    const counters: Record<string, number> = Object.fromEntries(TR_COUNTERS.map((c) => [c, 0]));
    // The TTLs with a histogram entry, as the kernel marked them: only those are read.
    const ttls = new Uint8Array(32);
    if (n.bpfMapLookup(obj.mapFd('tr_socks'), this.sockKey, this.sockVal) >= 0) {
      TR_COUNTERS.forEach((c, i) => (counters[c] = u64(this.sockValView, TR_SOCK.count + 8 * i)));
      ttls.set(this.sockVal.subarray(TR_SOCK.ttls, TR_SOCK.ttls + 32));
    }
    n.bpfMapDelete(obj.mapFd('tr_socks'), this.sockKey);
    const hist: Record<string, number[]> = {};
    const hk = new Uint8Array(TR_HIST_KEY.size);
    const hv = new DataView(hk.buffer);
    hv.setUint16(TR_HIST_KEY.sport, key.sport, LE);
    hk[TR_HIST_KEY.proto] = key.proto;
    const val = new Uint8Array(TR_HIST.size);
    const vv = new DataView(val.buffer);
    const fd = obj.mapFd('tr_hist');
    for (let ttl = 1; ttl <= maxTtl; ttl++) {
      // Bit t of the host-order 64-bit words: byte t >> 3 of its word, counted from the low end.
      const byte = (ttl >> 6) * 8 + (LE ? (ttl >> 3) & 7 : 7 - ((ttl >> 3) & 7));
      if (!(ttls[byte] & (1 << (ttl & 7)))) continue;
      hk[TR_HIST_KEY.ttl] = ttl;
      if (!this.takeEntry(fd, hk, val)) continue;
      let last = -1;
      for (let b = 0; b < TR_BUCKETS; b++) if (vv.getUint32(b * 4, LE) > 0) last = b;
      if (last < 0) continue;
      const row: number[] = [];
      for (let b = 0; b <= last; b++) row.push(vv.getUint32(b * 4, LE));
      hist[String(ttl)] = row;
    }
    return { ...counters, rtt_log2_us: hist };
  }

  get idle(): boolean {
    return this.readers.size === 0;
  }

  /** Whether the kernel lacks BPF_MAP_LOOKUP_AND_DELETE_ELEM for hash maps (before 5.14, which
   * says EINVAL or its own ENOTSUPP). */
  private noLookupAndDelete = false;

  /** Reads and removes one entry: one system call where the kernel allows it, else two. */
  private takeEntry(fd: number, key: Uint8Array, out: Uint8Array): boolean {
    const n = native();
    if (!this.noLookupAndDelete) {
      const rc = n.bpfMapLookupAndDelete(fd, key, out);
      if (rc >= 0) return true;
      if (rc !== -EINVAL && rc !== -ENOTSUPP) return false;
      this.noLookupAndDelete = true;
    }
    if (n.bpfMapLookup(fd, key, out) < 0) return false;
    n.bpfMapDelete(fd, key);
    return true;
  }

  private keyOf(sport: number, proto: number): void {
    this.sockKey.fill(0);
    this.sockKeyView.setUint16(TR_SOCK_KEY.sport, sport, LE);
    this.sockKey[TR_SOCK_KEY.proto] = proto;
  }

  private route(view: DataView, bytes: Uint8Array, off: number, len: number): void {
    if (len < TR_EVENT.pkt) return;
    this.readers.get(readerKey(view.getUint16(off + TR_EVENT.sport, LE), bytes[off + TR_EVENT.proto]))?.onRecord(view, bytes, off, len);
  }
}

const readerKey = (sport: number, proto: number) => proto * 0x10000 + sport;
/** The kernel's "operation not supported" (524), which errno.h does not name. */
const ENOTSUPP = 524;

/**
 * The correlators of a run (a trace's rounds, a run's targets share them): one per namespace and
 * family, loaded when first asked for, closed by close().
 */
export class KernelCorrelators {
  private readonly open = new Map<string, Correlator>();

  get(family: Family, netns: string | undefined, probes: number): Correlator {
    const k = `${family} ${netns ?? ''}`;
    let c = this.open.get(k);
    if (!c) {
      c = new Correlator(family, netns, probes);
      this.open.set(k, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.open.values()) c.session.close(() => null);
    this.open.clear();
  }
}

/**
 * Wraps `inner` (opened with kernelReplies) in kernel correlation: the run's correlator for its
 * namespace and family (loaded now if it is the first; a private one when `pool` is absent, closed
 * with the transport), or a PathlensError naming what is missing (the caller closes `inner`).
 * `shadow`: the socket keeps reading its own replies too (no filter on it), so both paths see the
 * same probes (the differential test). `perTtl`: a TTL's probes, whose answers wake the reader
 * together; `window`: the probes a trace keeps in flight (its -N), which decides whether settled
 * TTLs wake the reader in pairs (wakeOf).
 */
export function kernelCorrelated(inner: Prober, placement: Placement | undefined, total: number, o: { shadow?: boolean; perTtl?: number; window?: number; maxTtl?: number; pool?: KernelCorrelators } = {}): KernelTransport {
  const own = o.pool ? null : new KernelCorrelators();
  try {
    const c = (o.pool ?? own!).get(inner.family, placement?.netns, total);
    return new KernelTransport(inner, c, own, o.shadow === true, wakeOf(o.perTtl ?? 1, o.window ?? 1), o.maxTtl ?? 255);
  } catch (e) {
    own?.close();
    throw e;
  }
}

/** When the kernel wakes a socket's reader (struct tr_sock's wake_every and wake_batch). */
export interface Wake {
  /** A TTL's probes: its last answer settles it. */
  perTtl: number;
  /** First answers gathered before a settled TTL wakes the reader. */
  batch: number;
}

/**
 * A settled TTL wakes the reader at every second TTL's worth of answers when two TTLs are at most
 * half the window: with -N 16 and 3 probes a TTL, one sendmmsg refills six slots while ten stay in
 * flight. Smaller windows, and one probe a TTL (ECMP), wake at every TTL. Two and no more: on the
 * demo lab two TTLs moved no trace's wall time by more than 1 ms (-q 3..10, -N 16..64), while
 * three (-q 10 -N 64) held the deep TTLs back and took 22 % longer. The path's end, anything
 * unmatched and the reader's own timer still wake it at once.
 */
export function wakeOf(perTtl: number, window: number): Wake {
  const q = Math.max(1, Math.floor(perTtl));
  if (q === 1) return { perTtl: 1, batch: 1 };
  return { perTtl: q, batch: window >= 4 * q ? 2 * q : q };
}

function clampU16(x: number): number {
  return Math.min(0xffff, Math.max(1, Math.floor(x)));
}

function int32(x: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, x, LE);
  return b;
}

export class KernelTransport implements Transport {
  readonly method;
  readonly socketKind;
  readonly family: Family;
  readonly srcPort: number;
  readonly source: string | null;
  readonly stats;
  readonly quotesHeader = false;
  readonly kernel: KernelFacts;
  private readonly rec = new ReplyRecord();
  private readonly stampRec = new ReplyRecord();
  private readonly ip = new IpView();
  private readonly icmp = new IcmpErrorView();
  private readonly ext = new IcmpExtView();
  private readonly clock = new TaiClock();
  private readonly rt = { sec: 0, nsec: 0 };
  private readonly t = { sec: 0, nsec: 0 };
  private onReply: ((r: ReplyRecord) => void) | null = null;
  private onFatal: ((e: Error) => void) | null = null;
  private figures: Record<string, unknown> | null = null;
  private closed = false;

  constructor(
    private readonly inner: Prober,
    private readonly correlator: Correlator,
    private readonly own: KernelCorrelators | null,
    private readonly shadow: boolean,
    private readonly wake: Wake,
    private readonly maxTtl: number,
  ) {
    this.method = inner.method;
    this.socketKind = inner.socketKind;
    this.family = inner.family;
    this.srcPort = inner.srcPort;
    this.source = inner.source;
    this.stats = inner.stats;
    const start = { correlation: 'kernel', hooks: correlator.hooks, attached: correlator.session.attached };
    this.kernel = { start, done: () => this.figures };
    // The socket is the correlator's from now on: its probes are recorded as they leave.
    correlator.add(this, inner.socketFd, inner.kernelKey, wake, shadow);
  }

  get packetLen(): number | undefined {
    return this.inner.packetLen;
  }
  get maxWaitMs(): number | undefined {
    return this.inner.maxWaitMs;
  }
  dstPort(seq: number): number | null {
    return this.inner.dstPort(seq);
  }
  echoSeqOf(seq: number): number {
    return this.inner.echoSeqOf ? this.inner.echoSeqOf(seq) : seq;
  }
  setPacketLen(len: number): void {
    if (!this.inner.setPacketLen) throw new RangeError('this method cannot change its packet length');
    this.inner.setPacketLen(len);
  }
  expire(seq: number): void {
    this.inner.expire?.(seq);
  }

  send(seqs: Int32Array, ttls: Int32Array, n: number, onSent: OnSent): number {
    return this.inner.send(seqs, ttls, n, onSent);
  }

  drain(): number {
    return this.closed ? 0 : this.correlator.session.drain();
  }

  start(onReply: (r: ReplyRecord) => void, onFatal: (e: Error) => void): void {
    this.onReply = onReply;
    this.onFatal = onFatal;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.figures = this.correlator.remove(this.inner.kernelKey, this.maxTtl);
    } finally {
      this.inner.close();
      this.own?.close();
    }
  }

  fail(e: Error): void {
    this.onFatal?.(e);
  }

  /** One ring-buffer record of this socket: a reply the kernel picked out, with its times and (maybe) its probe. */
  onRecord(dv: DataView, bytes: Uint8Array, off: number, len: number): void {
    if (this.closed) return;
    const kseq = dv.getInt32(off + TR_EVENT.seq, LE);
    const caplen = Math.min(dv.getUint16(off + TR_EVENT.len, LE), len - TR_EVENT.pkt);
    const r = this.decode(bytes, dv, off + TR_EVENT.pkt, caplen);
    if (!r) return;
    // The receive time: the packet's own timestamp (the one the socket path reads) when it has one
    // that agrees with the hook's time, else the hook's.
    this.clock.epoch(dv.getUint32(off + TR_EVENT.rx_ns + HI, LE), dv.getUint32(off + TR_EVENT.rx_ns + LO, LE), this.t);
    const sh = dv.getUint32(off + TR_EVENT.rx_stamp + HI, LE);
    const sl = dv.getUint32(off + TR_EVENT.rx_stamp + LO, LE);
    splitNs(sh, sl, this.rt);
    const own = (sh !== 0 || sl !== 0) && Math.abs((this.t.sec - this.rt.sec) * 1e9 + (this.t.nsec - this.rt.nsec)) < STAMP_AGREES_NS;
    r.sec = own ? this.rt.sec : this.t.sec;
    r.nsec = own ? this.rt.nsec : this.t.nsec;
    r.kernelTs = true;
    r.bpfTimes = true;
    r.recvBpf = !own;
    r.ifindex = dv.getUint32(off + TR_EVENT.ifindex, LE);
    if (kseq >= 0 && r.seq === kseq) {
      // The probe's send time as the kernel saw it, before its answer (as the error queue orders them).
      const s = this.stampRec;
      s.sendStamp = true;
      s.bpfTimes = true;
      s.seq = kseq;
      this.clock.epoch(dv.getUint32(off + TR_EVENT.tx_ns + HI, LE), dv.getUint32(off + TR_EVENT.tx_ns + LO, LE), this.t);
      s.sec = this.t.sec;
      s.nsec = this.t.nsec;
      this.onReply?.(s);
    }
    this.onReply?.(r);
  }

  /** Decodes a whole reply (outer IP header first) into the record; null when it is nobody's (it was counted by the kernel). */
  private decode(bytes: Uint8Array, dv: DataView, off: number, len: number): ReplyRecord | null {
    const r = this.rec.reset(this.family);
    const ip = this.ip;
    if (parseIpHeader(bytes, off, len, ip, true) !== OK || ip.version !== this.family) {
      r.unmatched = 'malformed';
      r.detail = 'reply without a usable IP header';
      return r;
    }
    const avail = Math.min(ip.payloadLen, off + len - ip.payloadOff);
    setAddr(r, bytes, ip.srcOff);
    const icmpProto = this.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    if (ip.proto === icmpProto && avail >= 8 && bytes[ip.payloadOff] === (this.family === 4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY)) {
      this.inner.matchWhole(r, bytes, dv, ip.srcOff, ip.payloadOff, avail, 'echo-reply');
      r.kind = 'echo-reply';
      r.code = 'reply';
      r.icmpType = bytes[ip.payloadOff];
      r.icmpCode = 0;
      return r;
    }
    if (ip.proto === icmpProto) {
      const ie = this.icmp;
      if (parseIcmpError(bytes, dv, ip.payloadOff, avail, this.family, ie) !== OK) {
        r.unmatched = 'malformed';
        r.detail = `ICMP type ${bytes[ip.payloadOff]} not an error quoting a probe`;
        return r;
      }
      const inner = ie.inner;
      const l4 = inner.payloadOff;
      this.inner.matchWhole(r, bytes, dv, inner.dstOff, l4, ie.quotedOff + ie.quotedLen - l4, 'quote');
      r.icmpError(this.family, ie.type, ie.code, ie.rest);
      if (findIcmpExtensions(bytes, ip.payloadOff, avail, this.family, this.ext) === OK) r.mpls = this.ext.labels();
      return r;
    }
    this.inner.matchWhole(r, bytes, dv, ip.srcOff, ip.payloadOff, avail, 'datagram');
    return r;
  }
}

function setAddr(r: ReplyRecord, buf: Uint8Array, off: number): void {
  r.hasAddr = true;
  r.addrBuf = buf;
  r.addrOff = off;
}

function u64(v: DataView, off: number): number {
  return v.getUint32(off + LO, LE) + v.getUint32(off + HI, LE) * 0x100000000;
}
