/**
 * The monitor's probers: one socket per family and method for all targets (ICMP echo, UDP), so
 * ten thousand targets are ten thousand destinations of one socket, not ten thousand sockets.
 * Every probe carries the 16-byte cookie of `probe/cookie.ts` (magic, session, seq, target index);
 * an answer counts only when it comes back with that cookie from the target's address. TCP has to
 * use one connect() per probe (unprivileged), and is for the targets that need it. The methods are
 * in `methods.ts`; this file holds their contract and what the datagram ones share.
 *
 * Times: the send time is CLOCK_REALTIME just before sendmmsg (one per batch, in the batch's
 * `times`), the receive time the kernel's (SO_TIMESTAMPNS); for TCP both are taken in userspace.
 */
import { release } from 'node:os';
import {
  SCM_TSTAMP_SND,
  SOF_TIMESTAMPING_OPT_ID,
  SOF_TIMESTAMPING_OPT_RX_FILTER,
  SOF_TIMESTAMPING_OPT_TSONLY,
  SOF_TIMESTAMPING_SOFTWARE,
  SOF_TIMESTAMPING_TX_SOFTWARE,
  SOL_SOCKET,
  SO_EE_ORIGIN_ICMP,
  SO_EE_ORIGIN_ICMP6,
  SO_EE_ORIGIN_TIMESTAMPING,
  SO_TIMESTAMPING,
} from '../core/constants.js';
import { errnoName } from '../core/errors.js';
import { RecvBatch, SendBatch } from '../io/batch.js';
import type { Socket } from '../io/socket.js';
import { type Family, SockaddrView, readSockaddr, writeSockaddr } from '../packet/addr.js';
import { CmsgCursor, TS_ID_CMSG_SPACE, readTimestampNs, writeCmsgHeader, writeTsIdCmsg } from '../packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../packet/errqueue.js';
import { OK } from '../packet/status.js';
import { COOKIE_TARGET_LEN, cookieSeq, cookieTarget, isOurCookie, writeCookie } from '../probe/cookie.js';
import { DatagramChannel } from '../probe/datagram.js';
import { socketDrops } from '../probe/socket.js';
import { ADDR_STRIDE } from './table.js';
import type { ProbeMethod } from '../probe/transport.js';
import { realtime } from '../time/clock.js';
import type { XdpProbing } from './xdp.js';

/** What a prober reports for one probe. */
export interface Answer {
  target: number;
  seq: number;
  /** alive: the target answered (echo reply, port unreachable from it, SYN-ACK or RST); unreachable: a router or the kernel said it cannot be reached. */
  kind: 'alive' | 'unreachable';
  /** Receive time, CLOCK_REALTIME. */
  sec: number;
  nsec: number;
  kernelTs: boolean;
  detail: string;
}

export interface Prober {
  readonly method: ProbeMethod;
  readonly family: Family;
  /** Socket kind, for the events: ping, raw, dgram, connect. */
  readonly socket: string;
  /**
   * Sends probes i in [0, n): to target targets[i]'s address (port ports[i] for UDP/TCP),
   * carrying (targets[i], seqs[i]). Target t's address is the prober family's 4 or 16 bytes at
   * addrs[ADDR_STRIDE * t] (the targets' slab). Calls onSent(i, sec, nsec) for each one sent;
   * returns how many were sent (the rest is tried again by the caller at the next tick).
   */
  send(n: number, targets: Int32Array, seqs: Int32Array, addrs: Uint8Array, ports: Int32Array, onSent: (i: number, sec: number, nsec: number) => void): number;
  /** Reads answers that have arrived (probers that are not driven by readiness); `full`: every queue, the rarely read ones too. */
  poll?(full?: boolean): number;
  /** The target's address changed (probers that keep something per target). */
  forget?(target: number): void;
  /** Packets the kernel dropped on the prober's socket so far (SO_MEMINFO: answers that found its receive buffer full), for datagram probers. */
  rxDropped?(): number;
  /** Whether the socket gives kernel send stamps (onSendDelay is called for a sample of the probes). */
  readonly sendStamps?: boolean;
  close(): void;
}

/** How the monitor's probe sockets are set up. */
export interface ProberOptions {
  /** Receive buffer asked for, bytes (past net.core.rmem_max only with CAP_NET_ADMIN). */
  rcvbuf: number;
  /** The UDP method's probes through AF_XDP (`--xdp`, monitor/xdp.ts). */
  xdp?: XdpProbing;
}

/** Whether bytes at buf[off] are an address target's answers may come from. */
export type AddressCheck = (target: number, buf: Uint8Array, off: number) => boolean;

export interface ProberHooks {
  onAnswer: (a: Answer) => void;
  /** A sampled probe's kernel send stamp came: it left the kernel `ms` after the time its RTT is measured from. */
  onSendDelay?: (ms: number) => void;
  onFatal: (e: Error) => void;
  /** An answer counts only from its target's address (datagram probers check; connect() cannot be answered by anyone else). */
  fromTarget: AddressCheck;
}

/** The probe layer's clock, for answers the kernel did not stamp. */
const clock = new Float64Array(2);
export function stampNow(a: { sec: number; nsec: number }): void {
  realtime(clock);
  a.sec = clock[0];
  a.nsec = clock[1];
}

/** Probes a datagram prober sends in one sendmmsg, at most. */
export const MAX_BATCH = 256;

/**
 * What the echo and UDP probers share: the send loop over one slab (sockaddrs written from the
 * targets' address slab, cookies written per probe, a kernel send stamp asked for the last probe
 * of each batch), the read of both queues on the tick, and the cookie and address checks an
 * answer must pass.
 */
export abstract class DatagramProber implements Prober {
  abstract readonly method: ProbeMethod;
  abstract readonly socket: string;
  protected readonly batch: SendBatch;
  /** The batch's names as words: a probe's sockaddr is written as four or seven words. */
  private readonly batchNames: Uint32Array;
  /** The targets' address slab as words (made again when the caller hands another slab). */
  private slab: Uint8Array | null = null;
  private slabWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  /** A sockaddr's first word (family and port, in the kernel's byte order) for port `headPort`. */
  private headPort = -1;
  private headWord = 0;
  protected readonly data = new RecvBatch(64, 1500, 128, 32);
  protected readonly errs = new RecvBatch(64, 1500, 256, 32);
  protected readonly eq = new ErrqueueRecord();
  protected readonly name = new SockaddrView();
  protected readonly cur = new CmsgCursor();
  protected readonly t = { sec: 0, nsec: 0 };
  protected readonly ans: Answer = { target: -1, seq: -1, kind: 'alive', sec: 0, nsec: 0, kernelTs: false, detail: '' };
  /** The socket, its slabs and the send policy: the probe layer's datagram transport. */
  protected readonly ch: DatagramChannel;

  constructor(
    readonly family: Family,
    protected readonly session: number,
    protected readonly hooks: ProberHooks,
    sock: Socket,
    payload: number,
  ) {
    this.ch = new DatagramChannel(sock, this.errs, this.data, { onError: (i) => this.onErrorMessage(i), onData: (i) => this.onData(i) });
    this.sendStamps = askSendStamps(sock);
    this.batch = new SendBatch(MAX_BATCH, payload, 28, this.sendStamps ? STAMP_CTRL : 0);
    this.batchNames = new Uint32Array(this.batch.names.buffer, this.batch.names.byteOffset, (MAX_BATCH * 28) / 4);
    // No readiness callbacks: the monitor reads both queues on its own tick (poll()), in
    // batches. A wake-up per answer would cost more system time than the probing itself; the
    // kernel's receive timestamps keep the RTTs exact whenever the queue is read.
  }

  /** Writes probe (target, seq)'s payload into the batch's slot j; returns its length. */
  protected abstract fill(j: number, target: number, seq: number): number;

  send(n: number, targets: Int32Array, seqs: Int32Array, addrs: Uint8Array, ports: Int32Array, onSent: (i: number, sec: number, nsec: number) => void): number {
    let done = 0;
    if (addrs !== this.slab) {
      this.slab = addrs;
      this.slabWords = new Uint32Array(addrs.buffer, addrs.byteOffset, addrs.length >> 2);
    }
    const a = this.slabWords;
    const w = this.batchNames;
    const v4 = this.family === 4;
    const icmp = this.method === 'icmp';
    this.outer = onSent;
    this.targets = targets;
    this.seqs = seqs;
    while (done < n) {
      const k = Math.min(MAX_BATCH, n - done);
      const b = this.batch;
      for (let j = 0; j < k; j++) {
        const i = done + j;
        const len = this.fill(j, targets[i], seqs[i]);
        // The sockaddr, written from the slab's words (the address bytes are already in network
        // order; the first word is the family and port, the rest zero).
        const port = icmp ? 0 : ports[i];
        if (port !== this.headPort) this.head(port);
        const at = j * 7;
        const t = (ADDR_STRIDE >> 2) * targets[i];
        w[at] = this.headWord;
        if (v4) {
          w[at + 1] = a[t];
          w[at + 2] = 0;
          w[at + 3] = 0;
        } else {
          w[at + 1] = 0;
          w[at + 2] = a[t];
          w[at + 3] = a[t + 1];
          w[at + 4] = a[t + 2];
          w[at + 5] = a[t + 3];
          w[at + 6] = 0;
        }
        b.set(j, len, v4 ? 16 : 28, 0);
      }
      // The last probe of the batch asks for its kernel send stamp: the one that waits longest in
      // the kernel behind the others, so its delay bounds what the send adds to any RTT of the batch.
      if (this.sendStamps) {
        const id = this.stampNext++ & (STAMP_RING - 1);
        writeSendStampCmsgs(b.ctrlView, (k - 1) * STAMP_CTRL, id);
        b.set(k - 1, b.meta[(k - 1) * 6 + 1], v4 ? 16 : 28, STAMP_CTRL);
        this.stampedJ = k - 1;
        this.stampId = id;
        this.stampSec[id] = -1;
      }
      this.base = done;
      // A pending ICMP error (about another target's probe) fails the next send: the queues are
      // read (that answer goes to its own target) and the probe sent again. A failure nothing
      // explains is this destination's own (no route...): its probe is answered "unreachable".
      const sent = this.ch.send(b, k, this.retries, this.onSentBound, this.onLocalBound);
      done += sent;
      if (sent < k) return done;
    }
    return done;
  }

  /** The first word of a sockaddr of this family for `port`, as writeSockaddr lays it out. */
  private head(port: number): void {
    const x = new Uint8Array(28);
    writeSockaddr(x, 0, new Uint8Array(this.family === 4 ? 4 : 16), port);
    this.headWord = new Uint32Array(x.buffer, 0, 1)[0];
    this.headPort = port;
  }

  private outer: (i: number, sec: number, nsec: number) => void = () => {};
  private targets: Int32Array = new Int32Array(0);
  private seqs: Int32Array = new Int32Array(0);
  /** The batch's first probe, in the caller's numbering. */
  private base = 0;
  private readonly retries = new Int32Array(MAX_BATCH);
  private readonly onSentBound = (j: number, sec: number, nsec: number) => {
    if (j === this.stampedJ) {
      this.stampSec[this.stampId] = sec;
      this.stampNsec[this.stampId] = nsec;
    }
    this.outer(this.base + j, sec, nsec);
  };

  /** Kernel send stamps are asked for (the last probe of each batch). */
  readonly sendStamps: boolean;
  /** Per stamp id (a ring): the time the probe's RTT is measured from (-1: not sent). */
  private readonly stampSec = new Float64Array(STAMP_RING).fill(-1);
  private readonly stampNsec = new Float64Array(STAMP_RING);
  private stampNext = 0;
  private stampedJ = -1;
  private stampId = 0;

  /**
   * An error-queue message: a send stamp (SO_EE_ORIGIN_TIMESTAMPING, the device's software stamp,
   * its id the ring's) is turned into the probe's send delay; anything else is the method's.
   */
  private onErrorMessage(i: number): void {
    if (this.sendStamps) {
      const e = this.errs;
      const eq = this.eq;
      parseErrqueue(e.ctrlView, e.ctrlOff(i), e.ctrlOff(i) + e.ctrlLen(i), eq, this.cur);
      if (eq.status === OK && eq.origin === SO_EE_ORIGIN_TIMESTAMPING) {
        const id = eq.data;
        if (eq.info === SCM_TSTAMP_SND && eq.hasSwTime && id < STAMP_RING && this.stampSec[id] >= 0) {
          this.hooks.onSendDelay?.(Math.max(0, (eq.swSec - this.stampSec[id]) * 1000 + (eq.swNsec - this.stampNsec[id]) / 1e6));
          this.stampSec[id] = -1;
        }
        return;
      }
    }
    this.onError(i);
  }
  private readonly onLocalBound = (j: number, rc: number) => {
    const i = this.base + j;
    this.answerLocal(this.targets[i], this.seqs[i], this.batch.times[0], this.batch.times[1], errnoName(-rc));
  };

  private answerLocal(target: number, seq: number, sec: number, nsec: number, why: string): void {
    const a = this.ans;
    a.target = target;
    a.seq = seq;
    a.kind = 'unreachable';
    a.sec = sec;
    a.nsec = nsec;
    a.kernelTs = false;
    a.detail = `send: ${why}`;
    this.hooks.onAnswer(a);
  }

  /** The cookie at dv[off..]: the target index and seq into `ans`, or false. */
  protected cookie(dv: DataView, off: number, avail: number): boolean {
    if (!isOurCookie(dv, off, avail, this.session, COOKIE_TARGET_LEN)) return false;
    this.ans.target = cookieTarget(dv, off);
    this.ans.seq = cookieSeq(dv, off);
    return true;
  }

  protected writeCookie(dv: DataView, off: number, target: number, seq: number): void {
    writeCookie(dv, off, this.session, seq, target);
  }

  protected abstract onData(i: number): void;
  protected abstract onError(i: number): void;

  /**
   * Data message i carried the cookie now in `ans`: it is the target's answer if it came from the
   * target's address; its time is the kernel's receive stamp (userspace's when there is none).
   */
  protected answerFrom(i: number, detail: string): void {
    const d = this.data;
    const a = this.ans;
    if (readSockaddr(d.nameView, d.nameOff(i), d.nameLen(i), this.name) !== OK || this.name.family !== this.family || !this.hooks.fromTarget(a.target, d.names, this.name.addrOff)) return;
    a.kind = 'alive';
    a.kernelTs = readTimestampNs(this.cur, d.ctrlView, d.ctrlOff(i), d.ctrlLen(i), this.t);
    if (a.kernelTs) {
      a.sec = this.t.sec;
      a.nsec = this.t.nsec;
    } else stampNow(a);
    a.detail = detail;
    this.hooks.onAnswer(a);
  }

  private polls = 0;

  /**
   * Reads what has arrived: the error queue every sixteenth call (errors are rare and keep), and
   * whenever `full` (a probe's deadline has come: its answer may be an error waiting there).
   */
  poll(full = false): number {
    return this.ch.drain(full || (this.polls++ & 15) === 0);
  }

  /** An ICMP error from the error queue: which probe it quotes, who sent it, and what it says. */
  protected errorOf(i: number, payloadOff: number): { fromTarget: boolean; type: number; code: number } | null {
    const e = this.errs;
    const eq = this.eq;
    parseErrqueue(e.ctrlView, e.ctrlOff(i), e.ctrlOff(i) + e.ctrlLen(i), eq, this.cur);
    if (eq.status !== OK || (eq.origin !== SO_EE_ORIGIN_ICMP && eq.origin !== SO_EE_ORIGIN_ICMP6)) return null;
    if (!this.cookie(e.dataView, e.dataOff(i) + payloadOff, e.dataLen(i) - payloadOff)) return null;
    // The offender's address bytes are in the control buffer, where the kernel put its sockaddr.
    const fromTarget = eq.offender.family === this.family && this.hooks.fromTarget(this.ans.target, e.ctrl, eq.offender.addrOff);
    const a = this.ans;
    if (eq.hasTime) {
      a.sec = eq.sec;
      a.nsec = eq.nsec;
      a.kernelTs = true;
    } else {
      stampNow(a);
      a.kernelTs = false;
    }
    return { fromTarget, type: eq.icmpType, code: eq.icmpCode };
  }

  rxDropped(): number {
    return Math.max(0, socketDrops(this.ch.sock));
  }

  close(): void {
    this.ch.close();
  }
}

/** Stamp ids in flight, at most (a ring: a batch's stamp comes back within microseconds). */
const STAMP_RING = 1024;
/** Control bytes of a stamped probe: (SOL_SOCKET, SO_TIMESTAMPING) and (SOL_SOCKET, SCM_TS_OPT_ID). */
const STAMP_CTRL = 2 * TS_ID_CMSG_SPACE;

/**
 * Whether the socket gives kernel send stamps on request: software stamps reported, the id set per
 * packet (SCM_TS_OPT_ID, Linux 6.13: a kernel before it fails the send with EINVAL, which the
 * send policy would take for the destination's, so it is not asked there), receive stamps left
 * to SO_TIMESTAMPNS (OPT_RX_FILTER), and no packet stamped unless it asks (no TX flag here).
 */
function askSendStamps(sock: Socket): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release());
  if (!m || Number(m[1]) * 1000 + Number(m[2]) < 6013) return false;
  return sock.trySetInt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY | SOF_TIMESTAMPING_OPT_RX_FILTER) === 0;
}

/** Writes a stamped probe's control messages at off: a software send stamp, with this id. */
function writeSendStampCmsgs(dv: DataView, off: number, id: number): void {
  const data = writeCmsgHeader(dv, off, SOL_SOCKET, SO_TIMESTAMPING, 4);
  dv.setUint32(data, SOF_TIMESTAMPING_TX_SOFTWARE, true);
  dv.setUint32(data + 4, 0, true);
  writeTsIdCmsg(dv, off + TS_ID_CMSG_SPACE, id);
}
