/**
 * An AF_XDP port for high-rate probing (`trace --xdp`): whole frames leave through the sockets' TX
 * ring, and the XDP program bpf/xsk.bpf.c, attached to the probing interface, hands this run's
 * replies (ICMP/ICMPv6 errors quoting its UDP probes) to the sockets' RX rings with the time it
 * saw them; everything else goes on to the kernel. One socket per receive queue of the interface
 * (a reply arrives on whichever queue the device picks); the first one sends.
 *
 * The UMEM and rings live in the native shim (native/xsk.c): frames are copied from and into
 * caller slabs a batch at a time, so no script ever holds a pointer into kernel-shared memory.
 * Closing detaches the program first, then closes the sockets: nothing stays attached, and a
 * killed process leaves nothing either (the XDP link and the sockets are fds).
 */
import { endianness } from 'node:os';
import { PathlensError, errnoName } from '../core/errors.js';
import { EINVAL, EPERM } from '../core/errno.js';
import { listCaps, missingCaps } from '../core/caps.js';
import { type XdpMode, attachXdp } from '../bpf/attach.js';
import { BpfObject, bpfObjectPath, possibleCpus } from '../bpf/object.js';
import { BpfSession } from '../bpf/session.js';
import { inNamespace } from '../io/placement.js';
import { type NativePoller, native } from '../native/index.js';
import { XSK_COUNTERS, XSK_STAMP, XSK_STAMP_MAGIC } from './xsk-layout.js';
import { type XskFilter, encodeXskConfig } from './xsk-match.js';

const LE = endianness() === 'LE';
const SOL_XDP = 283;
const XDP_STATISTICS = 7;
/** sockaddr_xdp flags. */
const XDP_COPY = 1 << 1;
const XDP_ZEROCOPY = 1 << 2;
/** Receive queues tried at most (a veth has one; a NIC as many as it has channels). */
const MAX_QUEUES = 64;
const UV_READABLE = 1;

export type XskCopyMode = 'copy' | 'zerocopy' | 'auto';

/** The filter: the probes' family, UDP source port and destination ports [dportLo, dportHi]. */
export interface XskOptions extends XskFilter {
  netns?: string;
  ifindex: number;
  xdpMode: XdpMode;
  copyMode: XskCopyMode;
  /** Descriptors per ring (a power of two); each socket has twice as many 2 KiB frames. */
  ringSize: number;
}

/** Why --xdp cannot run here, before anything is opened; null when it may try. */
export function xskRefusal(): string | null {
  const missing = missingCaps(['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_NET_RAW']);
  if (missing.length) return `AF_XDP sockets and the XDP program need ${listCaps(missing)} (run as root)`;
  const lib = native().bpfAvailable();
  if (lib !== null) return `libbpf cannot be loaded (${lib})`;
  return null;
}

interface Queue {
  handle: number;
  fd: number;
  poller: NativePoller | null;
}

export class XskPort {
  private readonly session: BpfSession;
  private readonly queues: Queue[] = [];
  /** CLOCK_MONOTONIC at open, split, so that stamps are small exact doubles (ns since open). */
  private readonly baseSec: number;
  private readonly sendOut = new Float64Array(3);
  /** How the program is attached (xdp-native, xdp-generic) and how the sockets are bound. */
  readonly attached: string;
  readonly bind: 'copy' | 'zerocopy';
  /** sendto calls made to push frames out (copy mode sends a small batch per call). */
  sendCalls = 0;
  recvCalls = 0;
  private closed = false;

  /** CLOCK_REALTIME read just after `pairNs` (the port's clock), to give its times as wall times. */
  private readonly realSec: number;
  private readonly realNsec: number;
  private readonly pairNs: number;

  /** `onReadable`: called when a receive ring has frames (null: the caller reads on its own schedule). */
  constructor(o: XskOptions, onReadable: (() => void) | null) {
    const n = native();
    const clock = new Float64Array(2);
    n.clockGettime(1, clock);
    this.baseSec = clock[0];
    this.pairNs = (clock[0] - this.baseSec) * 1e9 + clock[1];
    n.clockGettime(0, clock);
    this.realSec = clock[0];
    this.realNsec = clock[1];
    const obj = BpfObject.open(bpfObjectPath('xsk.bpf.o'), 'xsk');
    this.session = new BpfSession(obj, o.netns);
    try {
      obj.setInitialValue('.rodata', encodeXskConfig(o));
      obj.load();
      const out = new Int32Array(2);
      const flagsTried: Array<['copy' | 'zerocopy', number]> =
        o.copyMode === 'copy' ? [['copy', XDP_COPY]] : o.copyMode === 'zerocopy' ? [['zerocopy', XDP_ZEROCOPY]] : [['zerocopy', XDP_ZEROCOPY], ['copy', XDP_COPY]];
      let bound = null as 'copy' | 'zerocopy' | null;
      for (let q = 0; q < MAX_QUEUES; q++) {
        let rc = -EINVAL;
        for (const [how, flags] of (bound ? flagsTried.filter(([h]) => h === bound) : flagsTried) as Array<['copy' | 'zerocopy', number]>) {
          rc = inNamespace(o.netns, () => n.xskOpen(o.ifindex, q, 2 * o.ringSize, o.ringSize, flags, out));
          if (rc === 0) {
            bound = how;
            break;
          }
        }
        if (rc < 0) {
          if (q > 0 && -rc === EINVAL) break; // no such queue: every queue has its socket
          if (-rc === EPERM) throw new PathlensError('ERR_PRIVILEGE', 'AF_XDP sockets need CAP_NET_RAW (run as root)');
          const why = o.copyMode === 'zerocopy' && (-rc === EINVAL || -rc === 95) ? ' (the driver has no zero-copy AF_XDP: try --xdp-copy copy)' : '';
          throw new PathlensError('ERR_BPF', `the kernel refused an AF_XDP socket on queue ${q} (${errnoName(rc)})${why}`);
        }
        const queue: Queue = { handle: out[0], fd: out[1], poller: null };
        this.queues.push(queue);
        const key = new Uint8Array(4);
        new DataView(key.buffer).setUint32(0, q, LE);
        const val = new Uint8Array(4);
        new DataView(val.buffer).setUint32(0, queue.fd, LE);
        const m = n.bpfMapUpdate(obj.mapFd('xsk_socks'), key, val, 0);
        if (m < 0) throw new PathlensError('ERR_BPF', `the kernel refused the socket's XSKMAP entry (${errnoName(m)})`);
        if (onReadable) {
          const dup = n.dup(queue.fd);
          if (dup < 0) throw new PathlensError('ERR_BPF', `dup: ${errnoName(dup)}`);
          queue.poller = new n.Poller(dup, () => onReadable());
          queue.poller.start(UV_READABLE);
          queue.poller.unref();
        }
      }
      this.bind = bound!;
      this.attached = this.session.attach(() => attachXdp(obj.progFd('pl_xsk'), o.ifindex, o.xdpMode)).how;
    } catch (e) {
      this.closeQueues();
      this.session.abort();
      throw e;
    }
  }

  get queueCount(): number {
    return this.queues.length;
  }

  /** Nanoseconds since open on CLOCK_MONOTONIC from a [sec, nsec] pair. */
  private ns(sec: number, nsec: number): number {
    return (sec - this.baseSec) * 1e9 + nsec;
  }

  /** A time of the port's clock (ns since open) as CLOCK_REALTIME, into out (the clocks' offset as it was at open). */
  wallTime(ns: number, out: { sec: number; nsec: number }): void {
    const total = this.realNsec + (ns - this.pairNs);
    const carry = Math.floor(total / 1e9);
    out.sec = this.realSec + carry;
    out.nsec = total - carry * 1e9;
  }

  /** Now, in the port's clock (ns since open). */
  now(): number {
    const c = this.sendOut;
    native().clockGettime(1, c);
    return this.ns(c[0], c[1]);
  }

  /**
   * Sends frames [0, count) of data (frame i at i * slot, lens[i] bytes) through the first queue.
   * Returns how many the TX ring took (fewer when it is full: send the rest later) and sets
   * `lastSendNs`, the time just before the kernel was asked to send them.
   */
  send(data: Uint8Array, slot: number, lens: Int32Array, count: number): number {
    const rc = native().xskSend(this.queues[0].handle, data, slot, lens, count, this.sendOut);
    if (rc < 0) throw new PathlensError('ERR_SEND', `AF_XDP send: ${errnoName(rc)}`);
    this.sendCalls += this.sendOut[2];
    this.lastSendNs = this.ns(this.sendOut[0], this.sendOut[1]);
    return rc;
  }

  lastSendNs = 0;
  /** sendEach: the last frame it posted was pushed back (it is still on the ring). */
  pushedBack = false;
  /** sendEach: the time a frame pushed back by the call before left (ns since open), or -1. */
  retriedNs = -1;
  private eachTimes = new Float64Array(2 * 64 + 4);

  /**
   * Sends frames [0, count) one at a time through the first queue, each by its own system call,
   * and sets stamps[i] to the time just before frame i's (ns since open). Returns how many were
   * posted; see `pushedBack` and `retriedNs` for a frame the device did not take at once.
   */
  sendEach(data: Uint8Array, slot: number, lens: Int32Array, count: number, stamps: Float64Array): number {
    if (this.eachTimes.length < 2 * count + 4) this.eachTimes = new Float64Array(2 * count + 4);
    const t = this.eachTimes;
    const rc = native().xskSendEach(this.queues[0].handle, data, slot, lens, count, t);
    if (rc < 0) throw new PathlensError('ERR_SEND', `AF_XDP send: ${errnoName(rc)}`);
    const r = 2 * count;
    this.sendCalls += rc + (t[r] === 1 || (rc === 0 && t[r + 3] === 1) ? 1 : 0);
    this.retriedNs = t[r] === 1 ? this.ns(t[r + 1], t[r + 2]) : -1;
    this.pushedBack = t[r + 3] === 1;
    for (let i = 0; i < rc; i++) stamps[i] = this.ns(t[2 * i], t[2 * i + 1]);
    return rc;
  }

  /**
   * Reads up to `count` replies from every queue into data (reply i at i * slot), lens[i] its
   * length and stamps[i] the time the XDP program saw it (ns since open; the read time when the
   * frame carries no stamp). Returns how many.
   */
  recv(data: Uint8Array, slot: number, lens: Int32Array, stamps: Float64Array, count: number): number {
    const n = native();
    let got = 0;
    for (const q of this.queues) {
      if (got >= count) break;
      this.recvCalls++;
      const rc = n.xskRecv(q.handle, got === 0 ? data : data.subarray(got * slot), slot, got === 0 ? lens : lens.subarray(got), count - got);
      if (rc < 0) throw new PathlensError('ERR_SYSCALL', `AF_XDP receive: ${errnoName(rc)}`);
      got += rc;
    }
    if (got === 0) return 0;
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let readNs = -1;
    for (let i = 0; i < got; i++) {
      const at = i * slot;
      if (lens[i] >= XSK_STAMP.size && dv.getUint32(at + XSK_STAMP.magic, LE) === XSK_STAMP_MAGIC) {
        const lo = dv.getUint32(at + XSK_STAMP.rx_ns + (LE ? 0 : 4), LE);
        const hi = dv.getUint32(at + XSK_STAMP.rx_ns + (LE ? 4 : 0), LE);
        stamps[i] = this.monoNs(hi, lo);
      } else {
        if (readNs < 0) readNs = this.now();
        stamps[i] = readNs;
      }
    }
    return got;
  }

  /** A u64 CLOCK_MONOTONIC ns value (hi:lo) in the port's clock. */
  private monoNs(hi: number, lo: number): number {
    // hi * 2^32 + lo - baseSec * 1e9, kept exact: split the base the same way.
    const base = this.baseSec * 1e9;
    const baseHi = Math.floor(base / 4294967296);
    const baseLo = base - baseHi * 4294967296;
    return (hi - baseHi) * 4294967296 + (lo - baseLo);
  }

  /** The program's counts (summed over CPUs) and the sockets' own (XDP_STATISTICS, summed over queues). */
  stats(): { kernel: Record<string, number>; sockets: Record<string, number> } {
    const n = native();
    const kernel: Record<string, number> = {};
    if (!this.closed) {
      const obj = this.session.obj;
      const cpus = possibleCpus();
      const val = new Uint8Array(8 * cpus);
      const vdv = new DataView(val.buffer);
      const key = new Uint8Array(4);
      XSK_COUNTERS.forEach((name, i) => {
        new DataView(key.buffer).setUint32(0, i, LE);
        let sum = 0;
        if (n.bpfMapLookup(obj.mapFd('xsk_counts'), key, val) >= 0) for (let c = 0; c < cpus; c++) sum += Number(vdv.getBigUint64(8 * c, LE));
        kernel[name] = sum;
      });
    }
    const names = ['rx_dropped', 'rx_invalid_descs', 'tx_invalid_descs', 'rx_ring_full', 'rx_fill_ring_empty_descs', 'tx_ring_empty_descs'];
    const sockets: Record<string, number> = Object.fromEntries(names.map((k) => [k, 0]));
    const buf = new Uint8Array(48);
    const bdv = new DataView(buf.buffer);
    for (const q of this.queues) {
      if (n.getsockopt(q.fd, SOL_XDP, XDP_STATISTICS, buf) < 0) continue;
      names.forEach((k, i) => (sockets[k] += Number(bdv.getBigUint64(8 * i, LE))));
    }
    return { kernel, sockets };
  }

  private closeQueues(): void {
    const n = native();
    for (const q of this.queues) {
      q.poller?.close();
      n.xskClose(q.handle);
    }
    this.queues.length = 0;
  }

  /** Detaches the program, then closes the sockets (idempotent). Returns the last statistics. */
  close(): { kernel: Record<string, number>; sockets: Record<string, number> } {
    if (this.closed) return { kernel: {}, sockets: {} };
    this.session.detach();
    const last = this.stats();
    this.closed = true;
    this.closeQueues();
    this.session.abort();
    return last;
  }
}

/** Exported for tests: the bind flags' names. */
export const XSK_BIND = { copy: XDP_COPY, zerocopy: XDP_ZEROCOPY } as const;
