/**
 * The error-queue transport's machinery, shared by every socket transport: the reply record and
 * its reset, timestamps, the reading of an error-queue record (IP_RECVERR) into a reply, the send
 * loop that drains a pending ICMP error and sends again, and the drain of both queues. Trace's UDP,
 * ICMP (ping and raw) and TCP transports build on it; `drainQueues` is also the monitor's read.
 */
import {
  MSG_ERRQUEUE,
  SCM_TSTAMP_SND,
  SOF_TIMESTAMPING_OPT_ID,
  SOF_TIMESTAMPING_OPT_TSONLY,
  SOF_TIMESTAMPING_SOFTWARE,
  SOF_TIMESTAMPING_TX_SOFTWARE,
  SOL_SOCKET,
  SO_EE_ORIGIN_ICMP,
  SO_EE_ORIGIN_ICMP6,
  SO_EE_ORIGIN_LOCAL,
  SO_EE_ORIGIN_TIMESTAMPING,
  SO_TIMESTAMPING,
} from '../core/constants.js';
import { PathlensError, SysError, errnoName } from '../core/errors.js';
import type { RecvBatch, SendBatch } from '../io/batch.js';
import type { Socket } from '../io/socket.js';
import { type Family, SockaddrView, formatIp } from '../packet/addr.js';
import { CmsgCursor } from '../packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../packet/errqueue.js';
import { icmpName } from '../packet/icmp.js';
import { IcmpExtView, parseIcmpExtensions } from '../packet/icmpext.js';
import { OK } from '../packet/status.js';
import { realtime } from '../time/clock.js';
import { type OnSent, type ReplyRecord, type TransportStats, rfc4884Offset } from './transport.js';
import { EAGAIN, EINVAL, EMSGSIZE, ENOBUFS } from '../core/errno.js';

/**
 * Kernel send timestamps (SO_TIMESTAMPING software send stamps, each packet's id given with
 * SCM_TS_OPT_ID): 'require' fails when the kernel refuses the id (before Linux 6.13), 'try' falls
 * back to userspace send times.
 */
export type SendStamps = 'require' | 'try';

/** errno values a queued ICMP error leaves in sk_err, which the next sendmsg then returns. */
export const ICMP_ERRNOS = new Set([113 /* EHOSTUNREACH */, 101 /* ENETUNREACH */, 111 /* ECONNREFUSED */, 112 /* EHOSTDOWN */, 64 /* ENONET */, 71 /* EPROTO */, 92 /* ENOPROTOOPT */, 13 /* EACCES */, 90 /* EMSGSIZE */, 1 /* EPERM */]);
const MAX_RETRIES = 16;

export abstract class ErrqueueTransport {
  abstract readonly family: Family;
  readonly stats: TransportStats = { sendCalls: 0, recvCalls: 0, retries: 0 };
  protected onReply: ((r: ReplyRecord) => void) | null = null;
  protected readonly eq = new ErrqueueRecord();
  protected readonly cur = new CmsgCursor();
  protected readonly name = new SockaddrView();
  protected readonly ext = new IcmpExtView();
  private readonly now = new Float64Array(2);
  /** Probes carry SCM_TS_OPT_ID and the socket reports send timestamps. */
  protected stampIds = false;

  constructor(protected readonly rec: ReplyRecord) {}

  /**
   * Asks the kernel for software send timestamps on sock (an error-queue socket). A refusal
   * closes the socket and throws under 'require'; under 'try' the probes go without.
   */
  protected askSendStamps(sock: Socket, mode: SendStamps | undefined): void {
    if (!mode) return;
    try {
      sock.setInt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY, 'SO_TIMESTAMPING');
      this.stampIds = true;
    } catch (e) {
      if (mode === 'require') {
        sock.close();
        throw e;
      }
    }
  }

  /** Whether probes now carry kernel send timestamps. */
  get kernelSendTimes(): boolean {
    return this.stampIds;
  }

  /**
   * `send()` around a failure of the per-packet timestamp id: a kernel before 6.13 refuses it
   * (EINVAL, before anything is sent). 'require' says so; 'try' turns the stamps off and calls
   * `again` (which builds the batch anew, without them: userspace send times, said per reply).
   */
  protected withStampFallback(sock: Socket, mode: SendStamps | undefined, send: () => number, again: () => number): number {
    try {
      return send();
    } catch (e) {
      if (!this.stampIds || !(e instanceof SysError) || e.errno !== EINVAL) throw e;
      if (mode === 'require') throw new PathlensError('ERR_USAGE', '--ts kernel-sw: this kernel refuses per-packet timestamp ids (SCM_TS_OPT_ID, Linux 6.13); --ts userspace or auto work');
      this.stampIds = false;
      sock.trySetInt(SOL_SOCKET, SO_TIMESTAMPING, 0);
      return again();
    }
  }

  /**
   * After beginErrqueue: when the message is a send timestamp, hands it on as such (its id is the
   * probe's sequence number) and returns true. Only the device's stamp is asked for; any other
   * kind, or an id no probe has, is not a reply and is left.
   */
  protected sendStampOf(total: number): boolean {
    const eq = this.eq;
    if (eq.status !== OK || eq.origin !== SO_EE_ORIGIN_TIMESTAMPING) return false;
    if (eq.info === SCM_TSTAMP_SND && eq.hasSwTime && eq.data < total) {
      const r = this.rec;
      r.sendStamp = true;
      r.seq = eq.data;
      r.sec = eq.swSec;
      r.nsec = eq.swNsec;
      this.onReply?.(r);
    }
    return true;
  }

  protected resetRecord(): ReplyRecord {
    return this.rec.reset(this.family);
  }

  protected stamp(r: ReplyRecord, hasTime: boolean, sec: number, nsec: number): void {
    if (hasTime) {
      r.sec = sec;
      r.nsec = nsec;
      r.kernelTs = true;
    } else {
      realtime(this.now);
      r.sec = this.now[0];
      r.nsec = this.now[1];
    }
  }

  /**
   * Starts the reply for error-queue message i of b: the record is reset, the extended error
   * parsed into `this.eq` and the timestamp taken. Returns false (the record marked malformed)
   * when the message carries no usable sock_extended_err.
   */
  protected beginErrqueue(b: RecvBatch, i: number): boolean {
    const r = this.resetRecord();
    const st = parseErrqueue(b.ctrlView, b.ctrlOff(i), b.ctrlOff(i) + b.ctrlLen(i), this.eq, this.cur);
    this.stamp(r, this.eq.hasTime, this.eq.sec, this.eq.nsec);
    r.ifindex = this.eq.ifindex;
    if (st === OK) return true;
    r.unmatched = 'malformed';
    r.detail = 'error queue message without sock_extended_err';
    return false;
  }

  /** Kind, code, MTU, offender and MPLS labels of error-queue message i (after beginErrqueue). */
  protected finishErrqueue(b: RecvBatch, i: number): void {
    this.fromErrqueue(this.rec, b.ctrl, b.data, b.dataOff(i), b.dataLen(i), rfc4884Offset(this.eq.data));
  }

  /** Starts the reply for normal-queue message i of b: reset, and the kernel timestamp if any. */
  protected beginData(b: RecvBatch, i: number): ReplyRecord {
    const r = this.resetRecord();
    parseErrqueue(b.ctrlView, b.ctrlOff(i), b.ctrlOff(i) + b.ctrlLen(i), this.eq, this.cur); // timestamp, ifindex
    this.stamp(r, this.eq.hasTime, this.eq.sec, this.eq.nsec);
    r.ifindex = this.eq.ifindex;
    return r;
  }

  protected static setAddr(r: ReplyRecord, buf: Uint8Array, off: number): void {
    r.hasAddr = true;
    r.addrBuf = buf;
    r.addrOff = off;
  }

  /**
   * Fills kind, code, errno, MTU and offender from `this.eq` (a parsed error-queue record), and the
   * MPLS label stack when the kernel located RFC 4884 extensions after the quote (`extOff`, bytes
   * into the payload at `payload`; -1 when there are none).
   */
  protected fromErrqueue(r: ReplyRecord, ctrl: Uint8Array, payload: Uint8Array, payloadOff: number, payloadLen: number, extOff: number): void {
    const eq = this.eq;
    r.errno = eq.errno;
    if (eq.origin === SO_EE_ORIGIN_ICMP || eq.origin === SO_EE_ORIGIN_ICMP6) {
      const fam: Family = eq.origin === SO_EE_ORIGIN_ICMP ? 4 : 6;
      const nm = icmpName(fam, eq.icmpType, eq.icmpCode);
      r.kind = nm.kind;
      r.code = nm.code;
      r.icmpType = eq.icmpType;
      r.icmpCode = eq.icmpCode;
      if ((fam === 4 && eq.icmpType === 3 && eq.icmpCode === 4) || (fam === 6 && eq.icmpType === 2)) r.mtu = eq.info;
      if (eq.offender.family === this.family) ErrqueueTransport.setAddr(r, ctrl, eq.offender.addrOff);
      if (extOff >= 0 && extOff < payloadLen) {
        if (parseIcmpExtensions(payload, payloadOff + extOff, payloadLen - extOff, this.ext) === OK) r.mpls = this.ext.labels();
      }
    } else if (eq.origin === SO_EE_ORIGIN_LOCAL) {
      r.kind = 'local-error';
      r.code = errnoName(eq.errno);
      if (eq.errno === EMSGSIZE) r.mtu = eq.info;
    } else {
      r.kind = 'other';
      r.code = `origin-${eq.origin}`;
    }
  }

  abstract drain(): number;
}

/**
 * Reads a socket's error queue (when errBatch is given), then its normal queue, each until it is
 * empty, handing each message to the callbacks; returns how many were read. A pending sk_err
 * surfaces on the normal queue's recv too (which clears it) while data may still wait: read on.
 */
export function drainQueues(fd: number, errBatch: RecvBatch | null, dataBatch: RecvBatch, onErr: (i: number) => void, onData: (i: number) => void, stats: TransportStats | null): number {
  let total = 0;
  if (errBatch) {
    for (;;) {
      const n = errBatch.recv(fd, MSG_ERRQUEUE);
      if (stats) stats.recvCalls++;
      if (n <= 0) break;
      for (let i = 0; i < n; i++) onErr(i);
      total += n;
      if (n < errBatch.count) break;
    }
  }
  for (let errs = 0; ; ) {
    const n = dataBatch.recv(fd, 0);
    if (stats) stats.recvCalls++;
    if (n <= 0) {
      if (n < 0 && ICMP_ERRNOS.has(-n) && ++errs < 4) continue;
      break;
    }
    for (let i = 0; i < n; i++) onData(i);
    total += n;
    if (n < dataBatch.count) break;
  }
  return total;
}

/** The error for a send that failed on its own (no route, firewall, MTU): it ends a trace. */
export function localSendError(rc: number, target: Uint8Array, family: Family): SysError {
  return new SysError('sendmmsg', rc, `probe to ${formatIp(target, 0, family)}${-rc === EMSGSIZE ? ': packet larger than the path MTU' : ''}`);
}

/**
 * Sends messages [0, n) of batch b on fd, calling onSent as they leave (the time is CLOCK_REALTIME
 * just before the sendmmsg that carried them, or before each message's own syscall when the batch
 * sends them one at a time). With IP_RECVERR every ICMP error about an earlier
 * probe also sets the socket's sk_err, which fails the next send whatever its destination: such a
 * failure drains the queues (`drain`: those are answers to earlier probes, delivered to them) and
 * sends the same message again. A failure that no drain explains (twice in a row with nothing
 * read) is local to that message's destination (no route, firewall, MTU): `onLocal(i, rc)` either
 * throws, or takes it (the message then counts as sent, its onSent called, and sending goes on).
 * Returns how many went out or were taken (fewer than n when the socket buffer is full).
 */
export function sendDraining(fd: number, b: SendBatch, n: number, retries: Int32Array, onSent: OnSent, drain: () => number, stats: TransportStats | null, onLocal: (i: number, rc: number) => void): number {
  for (let i = 0; i < n; i++) retries[i] = 0;
  let done = 0;
  let failedWithoutDrain = 0;
  while (done < n) {
    const rc = b.send(fd, n - done);
    if (stats) stats.sendCalls++;
    if (rc > 0) {
      for (let i = done; i < done + rc; i++) onSent(i, b.sentSec(i - done), b.sentNsec(i - done), retries[i]);
      done += rc;
      b.shift(rc, n - done);
      failedWithoutDrain = 0;
      continue;
    }
    const err = -rc;
    if (err === EAGAIN || err === ENOBUFS) break; // socket buffer full: the caller retries later
    const local = !ICMP_ERRNOS.has(err) || retries[done] >= MAX_RETRIES;
    if (!local) {
      if (stats) stats.retries++;
      retries[done]++;
      if (drain() > 0 || ++failedWithoutDrain <= 1) continue;
    }
    // Nothing queued explains the failure: it is this message's own.
    onLocal(done, rc);
    onSent(done, b.sentSec(0), b.sentNsec(0), retries[done]);
    done++;
    b.shift(1, n - done);
    failedWithoutDrain = 0;
  }
  return done;
}
