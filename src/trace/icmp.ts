/**
 * ICMP echo probes (`-I`), two ways:
 *  - ping: an ICMP datagram socket (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6), unprivileged where
 *    net.ipv4.ping_group_range includes the caller's group. The kernel rewrites the echo id to the
 *    socket's "port" and hands errors back on the error queue (IP_RECVERR) with the quoted echo
 *    header and payload; echo replies arrive on the normal queue.
 *  - raw: SOCK_RAW with CAP_NET_RAW. Every ICMP message reaching the host is seen; ours are picked
 *    by echo id, destination and cookie. Errors are parsed from the quoted packet here (and their
 *    RFC 4884 extensions with them).
 *
 * Correlation: the echo sequence number is the probe's seq (mod 2^16) and the 12-byte cookie in the
 * payload (magic, session, seq) must agree whenever it is present. Paris-style flow identity: the
 * last two payload bytes are chosen so that the ICMP checksum is the same for every probe of a flow
 * (routers that hash on the ICMP header then keep the flow on one path).
 */
import { crypto } from '../core/builtins.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from '../core/constants.js';
import { PathlensError } from '../core/errors.js';
import { RecvBatch, SendBatch } from '../io/batch.js';
import type { Placement } from '../io/placement.js';
import type { Socket } from '../io/socket.js';
import { type Family, formatIp, readSockaddr, sameAddr, writeSockaddr } from '../packet/addr.js';
import { onesSum } from '../packet/checksum.js';
import { TS_ID_CMSG_SPACE, TTL_CMSG_SPACE } from '../packet/cmsg.js';
import { ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, ICMP_ECHO, ICMP_ECHOREPLY, IcmpErrorView, icmpName, parseIcmpError } from '../packet/icmp.js';
import { findIcmpExtensions } from '../packet/icmpext.js';
import { IpView, parseIpHeader } from '../packet/ip.js';
import { OK } from '../packet/status.js';
import { COOKIE_LEN, cookieSeq, isOurCookie, writeCookieHead } from '../probe/cookie.js';
import { ChannelTransport } from '../probe/datagram.js';
import { ErrqueueTransport, type SendStamps } from '../probe/errqueue.js';
import { type IcmpSocketKind, type SocketChoice, openIcmpSocket } from '../probe/socket.js';
import { type OnSent, ReplyRecord, type Transport, type WholeReplies } from '../probe/transport.js';
import { flowOf } from './flows.js';
import { TRACE_SOCKET } from './udp.js';

export interface IcmpProberOptions {
  target: Uint8Array;
  total: number;
  maxBatch: number;
  /** Bytes after the 8-byte echo header (at least 16: cookie, TTL, pad, checksum fixer). */
  payloadLen: number;
  session: number;
  socket: SocketChoice;
  /** ECMP exploration: probe index i within a TTL (of perTtl) carries flow i % flows, each with its own constant checksum. */
  flows?: number;
  perTtl?: number;
  source?: Uint8Array;
  placement?: Placement;
  /** Kernel send timestamps (ping sockets: raw sockets read no error queue). */
  sendStamps?: SendStamps;
  /** trace --bpf: answers come whole from BPF programs; the socket only sends (no error queue). */
  kernelReplies?: boolean;
}

export const ICMP_MIN_PAYLOAD = 16;
/** The constant checksum of flow 0 (any value works; flows add their number to it). */
const FLOW_CHECKSUM = 0x5a5a;

/**
 * Sets the 16-bit word at `fixOff` so that the ICMP checksum over buf[off, off+len) comes out as
 * `want` (the checksum field itself must hold zero while this runs).
 */
export function fixChecksum(buf: Uint8Array, off: number, len: number, fixOff: number, want: number): void {
  buf[fixOff] = 0;
  buf[fixOff + 1] = 0;
  // Final checksum = ~(S + fix); want it equal to `want`: fix = ~want - S in one's complement.
  let fix = (~want & 0xffff) + (~onesSum(buf, off, len) & 0xffff);
  while (fix > 0xffff) fix = (fix & 0xffff) + (fix >>> 16);
  buf[fixOff] = fix >> 8;
  buf[fixOff + 1] = fix & 0xff;
}

export class IcmpProber extends ChannelTransport implements Transport, WholeReplies {
  readonly method = 'icmp' as const;
  readonly family: Family;
  readonly srcPort: number;
  readonly source: string | null;
  readonly socketKind: IcmpSocketKind;
  private readonly sock: Socket;
  private readonly o: IcmpProberOptions;
  private readonly batch: SendBatch;
  private readonly msgLen: number;
  private readonly echoId: number;
  /**
   * Probe seq goes out with echo sequence (seqBase + seq) mod 2^16: a random base, so that a
   * forger who cannot see the probes must guess it for errors that quote no cookie.
   */
  private readonly seqBase = crypto().randomInt(0, 0x10000);
  private readonly flowChecksum: number;
  private readonly errBatch: RecvBatch | null;
  private readonly dataBatch = RecvBatch.take(32, 2048, 128, 32);
  private readonly retries: Int32Array;
  private readonly ip = new IpView();
  private readonly icmp = new IcmpErrorView();
  get quotesHeader(): boolean {
    return this.socketKind === 'raw';
  }
  /** Messages a raw socket saw that belong to someone else (other pings, our own requests on lo). */
  foreign = 0;

  constructor(o: IcmpProberOptions) {
    super(new ReplyRecord());
    if (o.payloadLen < ICMP_MIN_PAYLOAD) throw new PathlensError('ERR_USAGE', `ICMP payload must be at least ${ICMP_MIN_PAYLOAD} bytes`);
    this.o = o;
    this.family = o.target.length === 4 ? 4 : 6;
    const { sock, kind, port } = openIcmpSocket(this.family, o.socket, { ...TRACE_SOCKET, placement: o.placement, source: o.source, recverr: !o.kernelReplies });
    this.sock = sock;
    this.socketKind = kind;
    // On a ping socket the kernel puts the socket's "port" in the id field; a raw socket sends
    // ours. The checksum fixer needs the id that will really be on the wire.
    this.echoId = kind === 'ping' ? port : (o.session ^ (o.session >>> 16)) & 0xffff;
    this.srcPort = this.echoId;
    this.source = o.source ? formatIp(o.source, 0, this.family) : null;
    this.flowChecksum = FLOW_CHECKSUM;
    this.errBatch = kind === 'ping' ? RecvBatch.take(32, 1024, 256, 32) : null;
    this.useChannel(sock, this.errBatch, this.dataBatch, { onError: (i) => this.onErrqueue(i), onData: (i) => (kind === 'ping' ? this.onPingData(i) : this.onRawData(i)) }, o.target);
    this.msgLen = 8 + o.payloadLen;
    this.batch = new SendBatch(o.maxBatch, this.msgLen, 28, TTL_CMSG_SPACE + TS_ID_CMSG_SPACE);
    if (o.sendStamps === 'require' && kind === 'raw') {
      sock.close();
      throw new PathlensError('ERR_USAGE', '--ts kernel-sw: kernel send timestamps need the ICMP datagram (ping) socket, and this trace got a raw one; --ts userspace or auto work');
    }
    if (kind === 'ping') this.askSendStamps(sock, o.sendStamps);
    this.sendTimesBelow = o.kernelReplies === true;
    const b = this.batch;
    for (let i = 0; i < o.maxBatch; i++) {
      const off = i * this.msgLen;
      b.data[off] = this.family === 4 ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
      b.dataView.setUint16(off + 4, this.echoId, false);
      writeCookieHead(b.dataView, off + 8, o.session);
    }
    this.retries = new Int32Array(o.maxBatch);
  }

  dstPort(): number | null {
    return null;
  }

  get kernelKey(): WholeReplies['kernelKey'] {
    // The echo sequence names a probe while the budget fits in 16 bits; past that the cookie must.
    return { proto: this.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, sport: this.echoId, session: this.o.session, byCookie: this.o.total > 0x10000 };
  }

  /** A whole answer (trace --bpf): an error's quote of our echo request, or an echo reply. */
  matchWhole(r: ReplyRecord, bytes: Uint8Array, dv: DataView, dstOff: number, l4: number, avail: number, what: 'quote' | 'echo-reply' | 'datagram'): void {
    const request = this.family === 4 ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
    if (avail < 8 || what === 'datagram' || (what === 'quote' && bytes[l4] !== request) || dv.getUint16(l4 + 4, false) !== this.echoId) {
      r.unmatched = 'malformed';
      r.detail = 'not an echo of this socket';
      return;
    }
    if (what === 'quote' && !sameAddr(bytes, dstOff, this.o.target)) {
      r.unmatched = 'wrong-destination';
      r.detail = `for ${formatIp(bytes, dstOff, this.family)}`;
      return;
    }
    this.match(r, bytes, dv, l4, avail, what === 'echo-reply');
  }

  echoSeqOf(seq: number): number {
    return (this.seqBase + seq) & 0xffff;
  }

  send(seqs: Int32Array, ttls: Int32Array, n: number, onSent: OnSent): number {
    const b = this.batch;
    const o = this.o;
    const len = this.msgLen;
    if (n > o.maxBatch) throw new RangeError('batch larger than maxBatch');
    for (let i = 0; i < n; i++) {
      const off = i * len;
      b.dataView.setUint16(off + 2, 0, false);
      b.dataView.setUint16(off + 6, this.echoSeqOf(seqs[i]), false);
      b.dataView.setUint32(off + 16, seqs[i] >>> 0, false);
      b.data[off + 8 + COOKIE_LEN] = ttls[i] & 0xff;
      const flows = o.flows ?? 1;
      const want = (this.flowChecksum + flowOf(seqs[i], o.perTtl ?? flows, flows)) & 0xffff;
      fixChecksum(b.data, off, len, off + len - 2, want);
      // IPv4 raw: we send the checksum; ping sockets and ICMPv6 compute it in the kernel (and get
      // the same constant value for the ICMP part).
      if (this.family === 4 && this.socketKind === 'raw') b.dataView.setUint16(off + 2, want, false);
      const nameLen = writeSockaddr(b.names, i * 28, o.target, 0);
      const ctrlLen = this.control(b, i * (TTL_CMSG_SPACE + TS_ID_CMSG_SPACE), ttls[i], seqs[i]);
      b.set(i, len, nameLen, ctrlLen);
    }
    return this.withStampFallback(this.sock, o.sendStamps, () => this.sendSlab(b, n, this.retries, onSent), () => this.send(seqs, ttls, n, onSent));
  }




  /**
   * Attributes an echo header at bytes[off] (8 bytes) and the cookie after it (if `avail` covers
   * it) to a probe: sets r.seq, or r.unmatched.
   */
  private match(r: ReplyRecord, bytes: Uint8Array, dv: DataView, off: number, avail: number, echoReply: boolean): void {
    if (avail < 8) {
      r.unmatched = 'malformed';
      r.detail = 'echo header cut short';
      return;
    }
    const seq16 = dv.getUint16(off + 6, false);
    if (avail >= 8 + COOKIE_LEN) {
      const seq = cookieSeq(dv, off + 8);
      if (!isOurCookie(dv, off + 8, avail - 8, this.o.session) || this.echoSeqOf(seq) !== seq16) {
        r.unmatched = 'cookie-mismatch';
        r.detail = `echo seq ${seq16}`;
        return;
      }
      if (seq >= this.o.total) {
        r.unmatched = 'unknown-probe';
        r.detail = `seq ${seq}`;
        return;
      }
      r.seq = seq;
      return;
    }
    // An echo reply returns the whole payload: without the cookie it is not ours.
    if (echoReply) {
      r.unmatched = 'cookie-mismatch';
      r.detail = `echo reply seq ${seq16} without the cookie`;
      return;
    }
    // An error quoting no cookie: the 16-bit sequence is the probe only while the budget fits in
    // it, and the match is unverified.
    const seq = (seq16 - this.seqBase) & 0xffff;
    if (this.o.total > 0x10000 || seq >= this.o.total) {
      r.unmatched = 'unknown-probe';
      r.detail = `echo seq ${seq16} without cookie`;
      return;
    }
    r.seq = seq;
    r.unverified = true;
  }

  /** Ping socket, error queue: the payload starts at the quoted echo header. */
  private onErrqueue(i: number): void {
    const b = this.errBatch!;
    const r = this.rec;
    const ok = this.beginErrqueue(b, i);
    if (this.sendStampOf(this.o.total)) return;
    if (ok) {
      const nm = this.name;
      if (readSockaddr(b.nameView, b.nameOff(i), b.nameLen(i), nm) === OK && nm.family === this.family && !sameAddr(b.names, nm.addrOff, this.o.target)) {
        r.unmatched = 'wrong-destination';
        r.detail = `for ${formatIp(b.names, nm.addrOff, this.family)}`;
      } else {
        this.match(r, b.data, b.dataView, b.dataOff(i), b.dataLen(i), false);
      }
      this.finishErrqueue(b, i);
    }
    this.onReply?.(r);
  }

  /** Ping socket, normal queue: an echo reply, ICMP header first; the kernel matched the id. */
  private onPingData(i: number): void {
    const b = this.dataBatch;
    const r = this.beginData(b, i);
    const off = b.dataOff(i);
    const want = this.family === 4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY;
    if (b.dataLen(i) < 8 || b.data[off] !== want) {
      r.unmatched = 'malformed';
      r.detail = `ICMP type ${b.dataLen(i) > 0 ? b.data[off] : -1} on a ping socket`;
    } else {
      this.match(r, b.data, b.dataView, off, b.dataLen(i), true);
    }
    this.echoReply(r, b, i);
    this.onReply?.(r);
  }

  private echoReply(r: ReplyRecord, b: RecvBatch, i: number): void {
    r.kind = 'echo-reply';
    r.code = 'reply';
    r.icmpType = this.family === 4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY;
    r.icmpCode = 0;
    const nm = this.name;
    if (readSockaddr(b.nameView, b.nameOff(i), b.nameLen(i), nm) === OK && nm.family === this.family) ErrqueueTransport.setAddr(r, b.names, nm.addrOff);
  }

  /**
   * Raw socket: IPv4 messages start with the IP header, IPv6 ones with the ICMPv6 header (the
   * sender is in msg_name). Echo replies with our id and errors quoting our echo requests are
   * replies; anything else is someone else's traffic and only counted.
   */
  private onRawData(i: number): void {
    const b = this.dataBatch;
    const bytes = b.data;
    const dv = b.dataView;
    let off = b.dataOff(i);
    let len = b.dataLen(i);
    let srcOff = -1;
    if (this.family === 4) {
      if (parseIpHeader(bytes, off, len, this.ip, false) !== OK || this.ip.proto !== IPPROTO_ICMP) {
        this.foreign++;
        return;
      }
      srcOff = this.ip.srcOff;
      off = this.ip.payloadOff;
      len = this.ip.payloadLen;
    } else if (readSockaddr(b.nameView, b.nameOff(i), b.nameLen(i), this.name) === OK && this.name.family === 6) {
      srcOff = -2; // in the name buffer
    }
    if (len < 8) {
      this.foreign++;
      return;
    }
    const type = bytes[off];
    const r = this.beginData(b, i);
    if (type === (this.family === 4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY)) {
      if (dv.getUint16(off + 4, false) !== this.echoId) {
        this.foreign++;
        return;
      }
      this.match(r, bytes, dv, off, len, true);
      r.kind = 'echo-reply';
      r.code = 'reply';
      r.icmpType = type;
      r.icmpCode = 0;
    } else {
      const ie = this.icmp;
      if (parseIcmpError(bytes, dv, off, len, this.family, ie) !== OK) {
        this.foreign++; // informational types, our own requests on loopback, broken messages
        return;
      }
      const inner = ie.inner;
      const l4 = inner.payloadOff;
      const avail = ie.quotedOff + ie.quotedLen - l4;
      const echoType = this.family === 4 ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
      if (inner.proto !== (this.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) || avail < 8 || bytes[l4] !== echoType || ie.echoId !== this.echoId) {
        this.foreign++;
        return;
      }
      if (!sameAddr(bytes, inner.dstOff, this.o.target)) {
        r.unmatched = 'wrong-destination';
        r.detail = `for ${formatIp(bytes, inner.dstOff, this.family)}`;
      } else {
        this.match(r, bytes, dv, l4, avail, false);
      }
      r.quotedTos = inner.tos;
      r.quotedTtl = inner.ttl;
      r.icmpError(this.family, ie.type, ie.code, ie.rest);
      if (findIcmpExtensions(bytes, off, len, this.family, this.ext) === OK) r.mpls = this.ext.labels();
    }
    if (srcOff >= 0) ErrqueueTransport.setAddr(r, bytes, srcOff);
    else if (srcOff === -2) ErrqueueTransport.setAddr(r, b.names, this.name.addrOff);
    this.onReply?.(r);
  }

}
