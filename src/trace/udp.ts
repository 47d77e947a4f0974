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
  IPPROTO_IPV6,
  IPV6_MTU_DISCOVER,
  IPV6_PMTUDISC_PROBE,
  IP_MTU_DISCOVER,
  IP_PMTUDISC_PROBE,
  SOCK_DGRAM,
  SOL_IP,
} from '../core/constants.js';
import { PathlensError } from '../core/errors.js';
import { RecvBatch, SendBatch } from '../io/batch.js';
import type { Placement } from '../io/placement.js';
import type { Socket } from '../io/socket.js';
import { type Family, formatIp, readSockaddr, sameAddr, writeSockaddr } from '../packet/addr.js';
import { TS_ID_CMSG_SPACE, TTL_CMSG_SPACE } from '../packet/cmsg.js';
import { OK } from '../packet/status.js';
import { COOKIE_LEN, cookieSeq, isOurCookie, writeCookieHead } from '../probe/cookie.js';
import { ChannelTransport } from '../probe/datagram.js';
import { ErrqueueTransport, type SendStamps } from '../probe/errqueue.js';
import { openProbeSocket } from '../probe/socket.js';
import { type OnSent, ReplyRecord, type Transport, type WholeReplies } from '../probe/transport.js';
import { flowOf } from './flows.js';

/** How trace's probe sockets are set up (beyond what each method asks): a 1 MiB receive buffer, the arrival interface. */
export const TRACE_SOCKET = { rcvbuf: 1 << 20, pktinfo: true } as const;

export interface UdpProberOptions {
  target: Uint8Array;
  basePort: number;
  total: number;
  maxBatch: number;
  payloadLen: number;
  session: number;
  source?: Uint8Array;
  srcPort?: number;
  placement?: Placement;
  /** Path MTU discovery: DF set, the kernel's PMTU cache ignored, packets as large as the route allows. */
  pmtu?: boolean;
  /**
   * ECMP exploration (Paris style): `flows` destination ports base..base+flows-1, one per flow and
   * the same at every TTL; probe index i within a TTL (of `perTtl`) uses flow i % flows. The
   * cookie, not the port, then identifies the probe.
   */
  flows?: number;
  perTtl?: number;
  /**
   * Send times from the kernel (SO_TIMESTAMPING software send timestamps, each packet's id given
   * with SCM_TS_OPT_ID): 'require' fails when the kernel refuses the id (before Linux 6.13),
   * 'try' falls back to userspace send times.
   */
  sendStamps?: SendStamps;
  /** trace --bpf: answers come whole from BPF programs; the socket only sends (no error queue). */
  kernelReplies?: boolean;
}

/** Why UDP probes cannot be made so (a payload without room for the cookie, ports past 65535), or null. */
export function udpFits(basePort: number, flows: number, total: number, payloadLen: number): string | null {
  if (payloadLen < COOKIE_LEN) return `payload length must be at least ${COOKIE_LEN} bytes`;
  const span = flows > 1 ? flows : total;
  if (basePort < 1 || basePort + span - 1 > 65535) return `port range ${basePort}..${basePort + span - 1} does not fit in 1..65535: lower -p, -m, -q or --ecmp`;
  return null;
}

/** IP + UDP header bytes in front of the payload. */
export const udpOverhead = (family: Family) => (family === 4 ? 28 : 48);

export class UdpProber extends ChannelTransport implements Transport, WholeReplies {
  readonly method = 'udp' as const;
  readonly socketKind = 'dgram' as const;
  readonly family: Family;
  readonly srcPort: number;
  readonly source: string | null;
  private readonly sock: Socket;
  private readonly o: UdpProberOptions;
  private readonly batch: SendBatch;
  /** Error-queue slots hold the quote and any RFC 4884 extensions after it. */
  private readonly errBatch = RecvBatch.take(32, 1024, 256, 32);
  private readonly dataBatch = RecvBatch.take(16, 2048, 128, 32);
  private readonly retries: Int32Array;
  /** Payload bytes of the next probes (below o.payloadLen after an MTU drop in --pmtu). */
  private payload: number;
  packetLen: number;

  constructor(o: UdpProberOptions) {
    super(new ReplyRecord());
    const fits = udpFits(o.basePort, o.flows ?? 1, o.total, o.payloadLen);
    if (fits) throw new PathlensError('ERR_USAGE', fits);
    this.o = o;
    this.family = o.target.length === 4 ? 4 : 6;
    const { sock, port } = openProbeSocket(this.family, SOCK_DGRAM, 0, { ...TRACE_SOCKET, placement: o.placement, source: o.source, srcPort: o.srcPort, recverr: !o.kernelReplies });
    this.sock = sock;
    this.useChannel(sock, this.errBatch, this.dataBatch, { onError: (i) => this.onErrqueue(i), onData: (i) => this.onDatagram(i) }, o.target);
    this.srcPort = port;
    this.source = o.source ? formatIp(o.source, 0, this.family) : null;
    if (o.pmtu) {
      try {
        if (this.family === 4) sock.setInt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, 'IP_MTU_DISCOVER');
        else sock.setInt(IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, 'IPV6_MTU_DISCOVER');
      } catch (e) {
        sock.close();
        throw e;
      }
    }
    this.payload = o.payloadLen;
    this.packetLen = o.payloadLen + udpOverhead(this.family);
    this.batch = new SendBatch(o.maxBatch, o.payloadLen, 28, TTL_CMSG_SPACE + TS_ID_CMSG_SPACE);
    this.askSendStamps(sock, o.sendStamps);
    this.sendTimesBelow = o.kernelReplies === true;
    const b = this.batch;
    for (let i = 0; i < o.maxBatch; i++) writeCookieHead(b.dataView, i * o.payloadLen, o.session);
    this.retries = new Int32Array(o.maxBatch);
  }

  get kernelKey(): WholeReplies['kernelKey'] {
    return { proto: 17, sport: this.srcPort, session: this.o.session, byCookie: (this.o.flows ?? 1) > 1 };
  }

  setPacketLen(len: number): void {
    const p = len - udpOverhead(this.family);
    if (p < COOKIE_LEN || p > this.o.payloadLen) throw new RangeError(`packet length ${len} outside ${COOKIE_LEN + udpOverhead(this.family)}..${this.o.payloadLen + udpOverhead(this.family)}`);
    this.payload = p;
    this.packetLen = len;
  }

  dstPort(seq: number): number {
    const o = this.o;
    return o.flows && o.flows > 1 ? o.basePort + flowOf(seq, o.perTtl ?? o.flows, o.flows) : o.basePort + seq;
  }

  send(seqs: Int32Array, ttls: Int32Array, n: number, onSent: OnSent): number {
    const b = this.batch;
    const o = this.o;
    if (n > o.maxBatch) throw new RangeError('batch larger than maxBatch');
    for (let i = 0; i < n; i++) {
      const off = i * o.payloadLen;
      b.dataView.setUint32(off + 8, seqs[i] >>> 0, false);
      if (o.payloadLen > COOKIE_LEN) b.data[off + COOKIE_LEN] = ttls[i] & 0xff;
      const nameLen = writeSockaddr(b.names, i * 28, o.target, this.dstPort(seqs[i]));
      const ctrlLen = this.control(b, i * (TTL_CMSG_SPACE + TS_ID_CMSG_SPACE), ttls[i], seqs[i]);
      b.set(i, this.payload, nameLen, ctrlLen);
    }
    return this.withStampFallback(this.sock, o.sendStamps, () => this.sendSlab(b, n, this.retries, onSent), () => this.send(seqs, ttls, n, onSent));
  }




  /** Matches the original destination (msg_name) and the quoted cookie to a probe. */
  private correlate(r: ReplyRecord, batch: RecvBatch, i: number, cookieOff: number, cookieLen: number, verifiable = true): void {
    const nm = this.name;
    if (readSockaddr(batch.nameView, batch.nameOff(i), batch.nameLen(i), nm) !== OK || nm.family !== this.family) {
      r.unmatched = 'malformed';
      r.detail = 'no usable address';
      return;
    }
    this.correlatePort(r, batch.names, nm.addrOff, nm.port, batch.dataView, cookieOff, cookieLen, verifiable);
  }

  /** The probe sent to `port` at the address at names[dstOff], its cookie (if any) at dv[cookieOff]. */
  private correlatePort(r: ReplyRecord, names: Uint8Array, dstOff: number, port: number, dv: DataView, cookieOff: number, cookieLen: number, verifiable: boolean): void {
    if (!sameAddr(names, dstOff, this.o.target)) {
      r.unmatched = 'wrong-destination';
      r.detail = `for ${formatIp(names, dstOff, this.family)}`;
      return;
    }
    if (this.o.flows && this.o.flows > 1) {
      this.correlateFlow(r, dv, port, cookieOff, cookieLen);
      return;
    }
    const seq = port - this.o.basePort;
    if (seq < 0 || seq >= this.o.total) {
      r.unmatched = 'unknown-probe';
      r.detail = `port ${port}`;
      return;
    }
    if (cookieLen >= COOKIE_LEN) {
      if (!isOurCookie(dv, cookieOff, cookieLen, this.o.session) || cookieSeq(dv, cookieOff) !== seq) {
        r.unmatched = 'cookie-mismatch';
        r.detail = `port ${port}`;
        return;
      }
    } else if (verifiable) {
      // An error that quotes less than the cookie: the port alone names the probe.
      r.unverified = true;
    }
    r.seq = seq;
  }

  /** Flows share ports across TTLs: the quoted cookie names the probe, and its port must agree. */
  private correlateFlow(r: ReplyRecord, dv: DataView, port: number, cookieOff: number, cookieLen: number): void {
    const flow = port - this.o.basePort;
    if (flow < 0 || flow >= this.o.flows!) {
      r.unmatched = 'unknown-probe';
      r.detail = `port ${port}`;
      return;
    }
    if (cookieLen < COOKIE_LEN) {
      r.unmatched = 'unknown-probe';
      r.detail = `port ${port}: no cookie quoted, and flows share ports across TTLs`;
      return;
    }
    const seq = cookieSeq(dv, cookieOff);
    if (!isOurCookie(dv, cookieOff, cookieLen, this.o.session) || seq >= this.o.total || this.dstPort(seq) !== port) {
      r.unmatched = 'cookie-mismatch';
      r.detail = `port ${port}`;
      return;
    }
    r.seq = seq;
  }

  /**
   * A whole answer (trace --bpf): an error's quote of our datagram (UDP header, then the cookie),
   * or a datagram from the target (its source port is the probe's destination port; no cookie).
   */
  matchWhole(r: ReplyRecord, bytes: Uint8Array, dv: DataView, dstOff: number, l4: number, avail: number, what: 'quote' | 'echo-reply' | 'datagram'): void {
    if (avail < 8 || what === 'echo-reply') {
      r.unmatched = 'malformed';
      r.detail = 'UDP header cut short';
      return;
    }
    if (what === 'datagram') {
      this.correlatePort(r, bytes, dstOff, dv.getUint16(l4, false), dv, 0, 0, false);
      r.kind = 'udp-reply';
      r.code = 'reply';
      return;
    }
    this.correlatePort(r, bytes, dstOff, dv.getUint16(l4 + 2, false), dv, l4 + 8, avail - 8, true);
  }

  private onErrqueue(i: number): void {
    const b = this.errBatch;
    const ok = this.beginErrqueue(b, i);
    if (this.sendStampOf(this.o.total)) return;
    if (ok) {
      this.correlate(this.rec, b, i, b.dataOff(i), b.dataLen(i));
      this.finishErrqueue(b, i);
    }
    this.onReply?.(this.rec);
  }

  private onDatagram(i: number): void {
    const b = this.dataBatch;
    const r = this.beginData(b, i);
    // A UDP answer from the target: its source port is our probe's destination port. No cookie
    // comes back (it is the service's own payload), so the port alone identifies the probe.
    this.correlate(r, b, i, 0, 0, false);
    r.kind = 'udp-reply';
    r.code = 'reply';
    if (r.unmatched !== 'malformed') ErrqueueTransport.setAddr(r, b.names, this.name.addrOff);
    this.onReply?.(r);
  }

}
