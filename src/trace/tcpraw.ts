/**
 * TCP SYN probes on a raw socket (`-T --raw`, CAP_NET_RAW): the SYNs are built here and a whole
 * window of TTLs leaves in one sendmmsg, as with UDP. One raw IPPROTO_TCP socket does everything:
 *  - send: the kernel adds the IP header; the TTL travels per message (IP_TTL / IPV6_HOPLIMIT
 *    control message); the checksum is ours (pseudo-header over the route's source address).
 *  - ICMP errors: with IP_RECVERR the kernel puts errors quoting a TCP packet from our address on
 *    the raw socket's error queue, quote first, with offender, kernel timestamp and RFC 4884 offset.
 *  - SYN-ACK / RST from the target: a raw TCP socket receives a copy of every TCP segment
 *    delivered to the host; ours are picked by address, ports and acknowledgement number, the rest
 *    only counted (`foreign`).
 *
 * Identity: probe `seq` carries the sequence number base + seq (base random per run), which every
 * ICMP error quotes (the first 8 bytes of the TCP header are the minimum quote) and every SYN-ACK or
 * RST acknowledges as base + seq + 1. Source ports are reserved by binding an ordinary TCP socket
 * per flow (no listen, so the host's own stack answers a SYN-ACK with an RST and the target drops
 * its half-open connection), and stay constant per flow: with --ecmp N, flow f uses the f-th port,
 * the same at every TTL (Paris: the port pair is the flow).
 */
import { AF_INET, AF_INET6, IPPROTO_TCP, SOCK_RAW, SOCK_STREAM } from '../core/constants.js';
import { PathlensError, SysError } from '../core/errors.js';
import { RecvBatch, SendBatch } from '../io/batch.js';
import type { Socket } from '../io/socket.js';
import { type Family, SockaddrView, formatIp, readSockaddr, sameAddr, writeSockaddr } from '../packet/addr.js';
import { TTL_CMSG_SPACE } from '../packet/cmsg.js';
import { IpView, parseIpHeader } from '../packet/ip.js';
import { OK } from '../packet/status.js';
import { SYN_LEN, TCP_ACK, TCP_RST, TCP_SYN, TcpView, parseTcpHeader, pseudoHeaderSum, writeSyn } from '../packet/tcp.js';
import { type Placement, openSocket } from '../io/placement.js';
import { ChannelTransport } from '../probe/datagram.js';
import { ErrqueueTransport } from '../probe/errqueue.js';
import { openProbeSocket, routeSource } from '../probe/socket.js';
import { type OnSent, ReplyRecord, type Transport } from '../probe/transport.js';
import { flowOf } from './flows.js';
import { TRACE_SOCKET } from './udp.js';
import { EACCES, EADDRINUSE, EPERM } from '../core/errno.js';

export interface TcpRawProberOptions {
  target: Uint8Array;
  dstPort: number;
  total: number;
  maxBatch: number;
  /** Random per run: probe seq goes out with TCP sequence number seqBase + seq. */
  seqBase: number;
  source?: Uint8Array;
  /** First source port (flow f uses srcPort + f); the kernel picks free ones when absent. */
  srcPort?: number;
  placement?: Placement;
  flows?: number;
  perTtl?: number;
}

const MSS = 1460;

export function tcpRawPrivilegeHint(): string {
  return 'raw TCP SYN probes need CAP_NET_RAW (setcap cap_net_raw+ep "$(command -v node)", or run as root); without it, -T sends its SYNs through connect() (drop --raw)';
}

export class TcpRawProber extends ChannelTransport implements Transport {
  readonly method = 'tcp' as const;
  readonly socketKind = 'raw' as const;
  readonly family: Family;
  readonly srcPort: number;
  readonly source: string;
  private readonly o: TcpRawProberOptions;
  private readonly sock: Socket;
  /** One bound (never listening) TCP socket per flow keeps its source port ours. */
  private readonly holders: Socket[] = [];
  private readonly ports: Int32Array;
  private readonly flows: number;
  private readonly perTtl: number;
  private readonly pseudo: number;
  private readonly batch: SendBatch;
  private readonly errBatch = RecvBatch.take(32, 1024, 256, 32);
  private readonly dataBatch = RecvBatch.take(32, 2048, 128, 32);
  private readonly retries: Int32Array;
  private readonly ip = new IpView();
  private readonly tcp = new TcpView();
  private readonly errName = new SockaddrView();
  /** TCP segments and errors the raw socket saw that are not about our probes. */
  foreign = 0;

  constructor(o: TcpRawProberOptions) {
    super(new ReplyRecord());
    this.o = o;
    this.family = o.target.length === 4 ? 4 : 6;
    this.flows = Math.max(1, o.flows ?? 1);
    this.perTtl = o.perTtl ?? this.flows;
    const src = o.source ?? routeSource(o.target, o.placement);
    this.source = formatIp(src, 0, this.family);
    this.sock = this.openRaw(src);
    this.useChannel(this.sock, this.errBatch, this.dataBatch, { onError: (i) => this.onErrqueue(i), onData: (i) => this.onData(i) }, o.target);
    try {
      this.ports = new Int32Array(this.flows);
      for (let f = 0; f < this.flows; f++) this.ports[f] = this.reservePort(src, o.srcPort !== undefined ? o.srcPort + f : 0);
    } catch (e) {
      this.close();
      throw e;
    }
    this.srcPort = this.ports[0];
    this.pseudo = pseudoHeaderSum(src, o.target, SYN_LEN);
    this.batch = new SendBatch(o.maxBatch, SYN_LEN, 28, TTL_CMSG_SPACE);
    this.retries = new Int32Array(o.maxBatch);
  }

  private openRaw(src: Uint8Array): Socket {
    try {
      return openProbeSocket(this.family, SOCK_RAW, IPPROTO_TCP, { ...TRACE_SOCKET, placement: this.o.placement, source: src, recverr: true }).sock;
    } catch (e) {
      if (e instanceof SysError && e.syscall === 'socket' && (e.errno === EPERM || e.errno === EACCES)) {
        throw new PathlensError('ERR_PRIVILEGE', `raw TCP socket refused (${e.sysCode}): ${tcpRawPrivilegeHint()}`);
      }
      throw e;
    }
  }

  private reservePort(src: Uint8Array, port: number): number {
    const s = openSocket(this.family === 4 ? AF_INET : AF_INET6, SOCK_STREAM, 0, this.o.placement ?? {});
    this.holders.push(s);
    const name = new Uint8Array(28);
    const len = writeSockaddr(name, 0, src, port);
    try {
      s.bind(name.subarray(0, len), `reserve source port ${port || '(any)'} on ${this.source}`);
    } catch (e) {
      if (e instanceof SysError && e.errno === EADDRINUSE) throw new PathlensError('ERR_USAGE', `source port ${port} on ${this.source} is in use: pick another --sport`);
      throw e;
    }
    const nm = s.localName();
    const v = new SockaddrView();
    readSockaddr(new DataView(nm.buffer, nm.byteOffset, nm.byteLength), 0, nm.length, v);
    return v.port;
  }

  private flowOf(seq: number): number {
    return flowOf(seq, this.perTtl, this.flows);
  }

  dstPort(): number {
    return this.o.dstPort;
  }

  srcPortOf(seq: number): number {
    return this.ports[this.flowOf(seq)];
  }

  send(seqs: Int32Array, ttls: Int32Array, n: number, onSent: OnSent): number {
    const b = this.batch;
    const o = this.o;
    if (n > o.maxBatch) throw new RangeError('batch larger than maxBatch');
    for (let i = 0; i < n; i++) {
      writeSyn(b.data, i * SYN_LEN, this.ports[this.flowOf(seqs[i])], o.dstPort, (o.seqBase + seqs[i]) >>> 0, MSS, this.pseudo);
      // A raw IPv6 socket takes port 0 (or its protocol) in the destination; IPv4 ignores it.
      const nameLen = writeSockaddr(b.names, i * 28, o.target, 0);
      const ctrlLen = this.control(b, i * TTL_CMSG_SPACE, ttls[i], seqs[i]);
      b.set(i, SYN_LEN, nameLen, ctrlLen);
    }
    return this.sendSlab(b, n, this.retries, onSent);
  }




  private isOurPort(port: number): boolean {
    for (let f = 0; f < this.flows; f++) if (this.ports[f] === port) return true;
    return false;
  }

  /** Probe number for TCP sequence number `tcpSeq`, or -1 when it is not one of ours. */
  private probeOf(tcpSeq: number): number {
    const seq = (tcpSeq - this.o.seqBase) >>> 0;
    return seq < this.o.total ? seq : -1;
  }

  /**
   * An error-queue message: an ICMP error quoting a TCP packet sent from our address (ours, or
   * another local TCP socket's: those are counted and dropped), or a local error about a send.
   */
  private onErrqueue(i: number): void {
    const b = this.errBatch;
    const r = this.rec;
    if (!this.beginErrqueue(b, i)) {
      this.onReply?.(r);
      return;
    }
    const off = b.dataOff(i);
    const st = parseTcpHeader(b.data, off, b.dataLen(i), this.tcp, true);
    if (st === OK) {
      const t = this.tcp;
      if (t.dstPort !== this.o.dstPort || !this.isOurPort(t.srcPort)) {
        this.foreign++;
        return;
      }
      const nm = this.errName;
      if (readSockaddr(b.nameView, b.nameOff(i), b.nameLen(i), nm) === OK && nm.family === this.family && !sameAddr(b.names, nm.addrOff, this.o.target)) {
        r.unmatched = 'wrong-destination';
        r.detail = `for ${formatIp(b.names, nm.addrOff, this.family)}`;
      } else {
        const seq = this.probeOf(t.seq);
        if (seq < 0) {
          r.unmatched = 'unknown-probe';
          r.detail = `TCP seq ${t.seq}`;
        } else {
          r.seq = seq;
        }
      }
    } else {
      r.unmatched = 'malformed';
      r.detail = 'quoted TCP header cut short';
    }
    this.finishErrqueue(b, i);
    this.onReply?.(r);
  }

  /**
   * A TCP segment delivered to the host. IPv4 raw sockets see it from the IP header on; IPv6 ones
   * from the TCP header, with the sender in msg_name. Ours: from the target's probed port to one
   * of our ports, SYN-ACK or RST, acknowledging base + seq + 1.
   */
  private onData(i: number): void {
    const b = this.dataBatch;
    const bytes = b.data;
    let off = b.dataOff(i);
    let len = b.dataLen(i);
    let fromTarget: boolean;
    if (this.family === 4) {
      if (parseIpHeader(bytes, off, len, this.ip, false) !== OK || this.ip.proto !== IPPROTO_TCP) {
        this.foreign++;
        return;
      }
      fromTarget = sameAddr(bytes, this.ip.srcOff, this.o.target);
      off = this.ip.payloadOff;
      len = this.ip.payloadLen;
    } else {
      fromTarget = readSockaddr(b.nameView, b.nameOff(i), b.nameLen(i), this.name) === OK && this.name.family === 6 && sameAddr(b.names, this.name.addrOff, this.o.target);
    }
    const t = this.tcp;
    if (!fromTarget || parseTcpHeader(bytes, off, len, t, false) !== OK || t.srcPort !== this.o.dstPort || !this.isOurPort(t.dstPort)) {
      this.foreign++;
      return;
    }
    const synAck = (t.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK);
    const rst = (t.flags & TCP_RST) !== 0;
    const seq = (t.flags & TCP_ACK) !== 0 ? this.probeOf((t.ack - 1) >>> 0) : -1;
    if (!(synAck || rst) || seq < 0) {
      this.foreign++; // another connection between the same ports, or an RST without ACK
      return;
    }
    const r = this.beginData(b, i);
    r.seq = seq;
    r.kind = synAck ? 'tcp-syn-ack' : 'tcp-rst';
    r.code = synAck ? 'open' : 'closed';
    ErrqueueTransport.setAddr(r, this.o.target, 0);
    this.onReply?.(r);
  }

  override close(): void {
    if (this.ch) super.close();
    else this.sock?.close();
    for (const s of this.holders) s.close();
    this.holders.length = 0;
  }
}
