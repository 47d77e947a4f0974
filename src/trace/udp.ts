/**
 * UDP probes, unprivileged: one unconnected datagram socket with IP_RECVERR/IPV6_RECVERR, every
 * probe's TTL set per message (IP_TTL / IPV6_HOPLIMIT control message) so a whole window of TTLs
 * leaves in one sendmmsg. ICMP errors come back on the socket's error queue.
 *
 * Correlation (docs/correlation.md): probe `seq` goes to destination port base+seq and carries a
 * 12-byte cookie (magic, session id, seq). The kernel hands back the original destination address
 * and port in msg_name and whatever part of our payload the router quoted. The port identifies the
 * probe; when the quote holds the cookie it must agree, otherwise the reply is not attributed.
 */
import {
  AF_INET,
  AF_INET6,
  IPPROTO_IPV6,
  IPV6_RECVERR,
  IP_RECVERR,
  MSG_ERRQUEUE,
  SOCK_DGRAM,
  SOL_IP,
  SOL_SOCKET,
  SO_EE_ORIGIN_ICMP,
  SO_EE_ORIGIN_ICMP6,
  SO_EE_ORIGIN_LOCAL,
  SO_RCVBUF,
  SO_TIMESTAMPNS,
} from '../core/constants.js';
import { PathlensError, SysError, errnoName } from '../core/errors.js';
import { type Family, SockaddrView, formatIp, readSockaddr, sameAddr, writeSockaddr } from '../packet/addr.js';
import { CmsgCursor, TTL_CMSG_SPACE, writeTtlCmsg } from '../packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../packet/errqueue.js';
import { icmpName } from '../packet/icmp.js';
import { OK } from '../packet/status.js';
import { RecvBatch, SendBatch } from '../io/batch.js';
import { Socket } from '../io/socket.js';
import { realtime } from '../time/clock.js';
import { type OnSent, type Prober, type ProberStats, ReplyRecord } from './prober.js';

export const COOKIE_MAGIC = 0x504c4e31; // 'PLN1'
export const COOKIE_LEN = 12;
const EAGAIN = 11;
const ENOBUFS = 105;
const EMSGSIZE = 90;
/** errno values a queued ICMP error leaves in sk_err, which the next sendmsg then returns. */
const ICMP_ERRNOS = new Set([113 /* EHOSTUNREACH */, 101 /* ENETUNREACH */, 111 /* ECONNREFUSED */, 112 /* EHOSTDOWN */, 64 /* ENONET */, 71 /* EPROTO */, 92 /* ENOPROTOOPT */, 13 /* EACCES */, 90 /* EMSGSIZE */, 1 /* EPERM */]);
const MAX_RETRIES = 16;

export interface UdpProberOptions {
  target: Uint8Array;
  basePort: number;
  total: number;
  maxBatch: number;
  payloadLen: number;
  session: number;
  source?: Uint8Array;
  srcPort?: number;
}

export class UdpProber implements Prober {
  readonly family: Family;
  readonly srcPort: number;
  readonly source: string | null;
  readonly stats: ProberStats = { sendCalls: 0, recvCalls: 0, retries: 0 };
  private readonly sock: Socket;
  private readonly o: UdpProberOptions;
  private readonly sendBatch: SendBatch;
  private readonly errBatch = new RecvBatch(32, 128, 256, 32);
  private readonly dataBatch = new RecvBatch(16, 2048, 128, 32);
  private readonly retries: Int32Array;
  private readonly rec = new ReplyRecord();
  private readonly eq = new ErrqueueRecord();
  private readonly cur = new CmsgCursor();
  private readonly name = new SockaddrView();
  private readonly now = new Float64Array(2);
  private onReply: ((r: ReplyRecord) => void) | null = null;

  constructor(o: UdpProberOptions) {
    if (o.payloadLen < COOKIE_LEN) throw new PathlensError('ERR_USAGE', `payload length must be at least ${COOKIE_LEN} bytes`);
    if (o.basePort < 1 || o.basePort + o.total - 1 > 65535) {
      throw new PathlensError('ERR_USAGE', `port range ${o.basePort}..${o.basePort + o.total - 1} does not fit in 1..65535: lower -p, -m or -q`);
    }
    this.o = o;
    this.family = o.target.length === 4 ? 4 : 6;
    this.sock = new Socket(this.family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
    try {
      if (this.family === 4) this.sock.setInt(SOL_IP, IP_RECVERR, 1, 'IP_RECVERR');
      else this.sock.setInt(IPPROTO_IPV6, IPV6_RECVERR, 1, 'IPV6_RECVERR');
      this.sock.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1, 'SO_TIMESTAMPNS');
      this.sock.trySetInt(SOL_SOCKET, SO_RCVBUF, 1 << 20);
      const local = new Uint8Array(28);
      const any = o.source ?? new Uint8Array(this.family === 4 ? 4 : 16);
      const len = writeSockaddr(local, 0, any, o.srcPort ?? 0);
      this.sock.bind(local.subarray(0, len), o.source ? `bind to ${formatIp(any, 0, this.family)}` : 'bind');
      const nm = this.sock.localName();
      const v = new SockaddrView();
      readSockaddr(new DataView(nm.buffer, nm.byteOffset, nm.byteLength), 0, nm.length, v);
      this.srcPort = v.port;
      this.source = o.source ? formatIp(o.source, 0, this.family) : null;
    } catch (e) {
      this.sock.close();
      throw e;
    }
    this.sendBatch = new SendBatch(o.maxBatch, o.payloadLen, 28, TTL_CMSG_SPACE);
    const b = this.sendBatch;
    for (let i = 0; i < o.maxBatch; i++) {
      const off = i * o.payloadLen;
      b.dataView.setUint32(off, COOKIE_MAGIC, false);
      b.dataView.setUint32(off + 4, o.session >>> 0, false);
    }
    this.retries = new Int32Array(o.maxBatch);
  }

  dstPort(seq: number): number {
    return this.o.basePort + seq;
  }

  send(seqs: Int32Array, ttls: Int32Array, n: number, onSent: OnSent): number {
    const b = this.sendBatch;
    const o = this.o;
    const retries = this.retries;
    if (n > o.maxBatch) throw new RangeError('batch larger than maxBatch');
    for (let i = 0; i < n; i++) {
      const off = i * o.payloadLen;
      b.dataView.setUint32(off + 8, seqs[i] >>> 0, false);
      if (o.payloadLen > COOKIE_LEN) b.data[off + COOKIE_LEN] = ttls[i] & 0xff;
      const nameLen = writeSockaddr(b.names, i * 28, o.target, o.basePort + seqs[i]);
      const ctrlLen = writeTtlCmsg(b.ctrlView, i * TTL_CMSG_SPACE, this.family, ttls[i]);
      b.set(i, o.payloadLen, nameLen, ctrlLen);
      retries[i] = 0;
    }
    let done = 0;
    let failedWithoutDrain = 0;
    while (done < n) {
      const rc = b.send(this.sock.fd, n - done);
      this.stats.sendCalls++;
      if (rc > 0) {
        const sec = b.times[0];
        const nsec = b.times[1];
        for (let i = done; i < done + rc; i++) onSent(i, sec, nsec, retries[i]);
        done += rc;
        b.shift(rc, n - done);
        failedWithoutDrain = 0;
        continue;
      }
      const err = -rc;
      if (err === EAGAIN || err === ENOBUFS) break; // socket buffer full: the engine retries later
      if (!ICMP_ERRNOS.has(err)) throw new SysError('sendmmsg', rc, `probe to ${formatIp(o.target, 0, this.family)}`);
      // A queued ICMP error was reported through this send: the probe did not leave. Read the
      // error queue (those are replies to earlier probes) and send the same probe again.
      this.stats.retries++;
      retries[done]++;
      const drained = this.drain();
      if (drained === 0 && ++failedWithoutDrain > 1) {
        // Nothing queued explains the failure: it is local (no route, firewall, MTU).
        throw new SysError('sendmmsg', rc, `probe to ${formatIp(o.target, 0, this.family)}${err === EMSGSIZE ? ': packet larger than the path MTU' : ''}`);
      }
      if (retries[done] > MAX_RETRIES) throw new SysError('sendmmsg', rc, 'kept failing after draining the error queue');
    }
    return done;
  }

  start(onReply: (r: ReplyRecord) => void, onFatal: (e: Error) => void): void {
    this.onReply = onReply;
    this.sock.watch(() => this.drain(), onFatal);
  }

  /** Reads the error queue, then the normal queue, until both are empty. */
  drain(): number {
    let total = 0;
    for (;;) {
      const n = this.errBatch.recv(this.sock.fd, MSG_ERRQUEUE);
      this.stats.recvCalls++;
      if (n <= 0) break;
      for (let i = 0; i < n; i++) this.onErrqueue(i);
      total += n;
      if (n < this.errBatch.count) break;
    }
    for (let errs = 0; ; ) {
      const n = this.dataBatch.recv(this.sock.fd, 0);
      this.stats.recvCalls++;
      if (n <= 0) {
        // A pending sk_err surfaces on recv too (and is cleared by it); the queue may still hold data.
        if (n < 0 && ICMP_ERRNOS.has(-n) && ++errs < 4) continue;
        break;
      }
      for (let i = 0; i < n; i++) this.onDatagram(i);
      total += n;
      if (n < this.dataBatch.count) break;
    }
    return total;
  }

  private resetRecord(): ReplyRecord {
    const r = this.rec;
    r.seq = -1;
    r.unmatched = null;
    r.detail = '';
    r.family = this.family;
    r.hasAddr = false;
    r.kind = 'other';
    r.code = '';
    r.icmpType = -1;
    r.icmpCode = -1;
    r.errno = 0;
    r.mtu = 0;
    r.kernelTs = false;
    return r;
  }

  private stamp(r: ReplyRecord, hasTime: boolean, sec: number, nsec: number): void {
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

  /** Matches the original destination (msg_name) and the quoted cookie to a probe. */
  private correlate(r: ReplyRecord, batch: RecvBatch, i: number, cookieOff: number, cookieLen: number): void {
    const nm = this.name;
    if (readSockaddr(batch.nameView, batch.nameOff(i), batch.nameLen(i), nm) !== OK || nm.family !== this.family) {
      r.unmatched = 'malformed';
      r.detail = 'no usable address';
      return;
    }
    if (!sameAddr(batch.names, nm.addrOff, this.o.target)) {
      r.unmatched = 'wrong-destination';
      r.detail = `for ${formatIp(batch.names, nm.addrOff, this.family)}`;
      return;
    }
    const seq = nm.port - this.o.basePort;
    if (seq < 0 || seq >= this.o.total) {
      r.unmatched = 'unknown-probe';
      r.detail = `port ${nm.port}`;
      return;
    }
    if (cookieLen >= COOKIE_LEN) {
      const dv = batch.dataView;
      if (dv.getUint32(cookieOff, false) !== COOKIE_MAGIC || dv.getUint32(cookieOff + 4, false) !== this.o.session >>> 0 || dv.getUint32(cookieOff + 8, false) !== seq) {
        r.unmatched = 'cookie-mismatch';
        r.detail = `port ${nm.port}`;
        return;
      }
    }
    r.seq = seq;
  }

  private onErrqueue(i: number): void {
    const b = this.errBatch;
    const r = this.resetRecord();
    const eq = this.eq;
    const st = parseErrqueue(b.ctrlView, b.ctrlOff(i), b.ctrlOff(i) + b.ctrlLen(i), eq, this.cur);
    this.stamp(r, eq.hasTime, eq.sec, eq.nsec);
    if (st !== OK) {
      r.unmatched = 'malformed';
      r.detail = 'error queue message without sock_extended_err';
    } else {
      this.correlate(r, b, i, b.dataOff(i), b.dataLen(i));
      r.errno = eq.errno;
      if (eq.origin === SO_EE_ORIGIN_ICMP || eq.origin === SO_EE_ORIGIN_ICMP6) {
        const fam: Family = eq.origin === SO_EE_ORIGIN_ICMP ? 4 : 6;
        const nm = icmpName(fam, eq.icmpType, eq.icmpCode);
        r.kind = nm.kind;
        r.code = nm.code;
        r.icmpType = eq.icmpType;
        r.icmpCode = eq.icmpCode;
        if ((fam === 4 && eq.icmpType === 3 && eq.icmpCode === 4) || (fam === 6 && eq.icmpType === 2)) r.mtu = eq.info;
        if (eq.offender.family === this.family) {
          r.hasAddr = true;
          r.addrBuf = b.ctrl;
          r.addrOff = eq.offender.addrOff;
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
    this.onReply?.(r);
  }

  private onDatagram(i: number): void {
    const b = this.dataBatch;
    const r = this.resetRecord();
    const eq = this.eq;
    parseErrqueue(b.ctrlView, b.ctrlOff(i), b.ctrlOff(i) + b.ctrlLen(i), eq, this.cur); // timestamp only
    this.stamp(r, eq.hasTime, eq.sec, eq.nsec);
    // A UDP answer from the target: its source port is our probe's destination port. No cookie
    // comes back (it is the service's own payload), so the port alone identifies the probe.
    this.correlate(r, b, i, 0, 0);
    r.kind = 'udp-reply';
    r.code = 'reply';
    if (r.unmatched !== 'malformed') {
      r.hasAddr = true;
      r.addrBuf = b.names;
      r.addrOff = this.name.addrOff;
    }
    this.onReply?.(r);
  }

  close(): void {
    this.sock.close();
  }
}
