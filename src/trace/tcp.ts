/**
 * TCP SYN probes (`-T`) without privileges: one non-blocking connect() per probe, on its own
 * socket with the probe's TTL and IP_RECVERR. The kernel sends the SYN; an ICMP error about it
 * comes back on that socket's error queue (and ends the connection attempt); a SYN-ACK makes the
 * socket writable (connected) and an RST fails it with ECONNREFUSED: both mean the target was
 * reached. A connection that opens is closed at once with SO_LINGER 0 (an RST, no FIN exchange,
 * no TIME_WAIT).
 *
 * Each probe's socket gets its own source port from the kernel, so the socket identifies the
 * probe: no payload is needed. Timing: the SYN leaves inside connect(), so the send time is taken
 * just before it; a SYN-ACK's RTT is the kernel's own measurement (tcpi_rtt); errors carry kernel
 * receive timestamps; an RST only has the time userspace saw it.
 *
 * The kernel retransmits an unanswered SYN after its initial RTO (1 s), and an answer to the
 * retransmission could not be told apart from one to the first SYN. TCP_USER_TIMEOUT below that
 * makes the kernel give up instead of retransmitting, so a probe is answered within 1 s or not at
 * all, and the longest wait is capped to match (`maxWaitMs`).
 */
import { IPPROTO_TCP, MSG_ERRQUEUE, TCPI_RTT_OFFSET, TCP_INFO, UV_READABLE, UV_WRITABLE } from '../core/constants.js';
import { SysError, errnoName } from '../core/errors.js';
import { RecvBatch } from '../io/batch.js';
import type { Socket } from '../io/socket.js';
import { native } from '../native/index.js';
import { type Family, SockaddrView, formatIp, readSockaddr, writeSockaddr } from '../packet/addr.js';
import { realtime } from '../time/clock.js';
import type { Placement } from '../io/placement.js';
import { CONNECT_MAX_WAIT_MS, openConnectSocket } from '../probe/connect.js';
import { ErrqueueTransport } from '../probe/errqueue.js';
import { type OnSent, ReplyRecord, type Transport } from '../probe/transport.js';
import { EAGAIN, ECONNREFUSED, EINPROGRESS } from '../core/errno.js';

export interface TcpProberOptions {
  target: Uint8Array;
  dstPort: number;
  total: number;
  source?: Uint8Array;
  placement?: Placement;
}

const TCP_ESTABLISHED = 1;

export class TcpConnectProber extends ErrqueueTransport implements Transport {
  readonly method = 'tcp' as const;
  readonly socketKind = 'connect' as const;
  readonly family: Family;
  readonly srcPort = 0;
  readonly source: string | null;
  /** A probe is answered within the kernel's initial RTO or never (see above). */
  readonly maxWaitMs = CONNECT_MAX_WAIT_MS;
  /** Each probe costs a socket and ~10 system calls: replies are read between small chunks. */
  readonly sendChunk = 2;
  private readonly o: TcpProberOptions;
  private readonly socks: (Socket | null)[];
  private readonly ports: Int32Array;
  private readonly txSec: Float64Array;
  private readonly txNsec: Float64Array;
  private readonly errBatch = new RecvBatch(4, 1024, 256, 32);
  private readonly nameBuf: Uint8Array;
  private readonly local: Uint8Array;
  private readonly localLen: number;
  private readonly info = new Uint8Array(232);
  private readonly infoView = new DataView(this.info.buffer);
  private readonly clock = new Float64Array(2);
  private readonly view = new SockaddrView();
  private onFatal: ((e: Error) => void) | null = null;
  private open = 0;

  constructor(o: TcpProberOptions) {
    super(new ReplyRecord());
    this.o = o;
    this.family = o.target.length === 4 ? 4 : 6;
    this.source = o.source ? formatIp(o.source, 0, this.family) : null;
    this.socks = new Array(o.total).fill(null);
    this.ports = new Int32Array(o.total);
    this.txSec = new Float64Array(o.total);
    this.txNsec = new Float64Array(o.total);
    const name = new Uint8Array(28);
    this.nameBuf = name.subarray(0, writeSockaddr(name, 0, o.target, o.dstPort));
    this.local = new Uint8Array(28);
    this.localLen = writeSockaddr(this.local, 0, o.source ?? new Uint8Array(this.family === 4 ? 4 : 16), 0);
  }

  dstPort(): number {
    return this.o.dstPort;
  }

  srcPortOf(seq: number): number {
    return this.ports[seq];
  }

  private openProbe(ttl: number): Socket {
    return openConnectSocket(this.family, { placement: this.o.placement, ttl, local: this.o.source ? this.local.subarray(0, this.localLen) : undefined, localWhat: `bind to ${this.source}` });
  }

  send(seqs: Int32Array, ttls: Int32Array, n: number, onSent: OnSent): number {
    for (let i = 0; i < n; i++) {
      const seq = seqs[i];
      const sock = this.openProbe(ttls[i]);
      realtime(this.clock);
      const sec = this.clock[0];
      const nsec = this.clock[1];
      const rc = sock.connect(this.nameBuf);
      this.stats.sendCalls++;
      if (rc < 0 && -rc !== EINPROGRESS && -rc !== ECONNREFUSED) {
        sock.close();
        if (-rc === EAGAIN) return i; // out of local ports for the moment: the engine retries
        throw new SysError('connect', rc, `probe to ${formatIp(this.o.target, 0, this.family)} port ${this.o.dstPort}`);
      }
      const nm = sock.localName();
      readSockaddr(new DataView(nm.buffer, nm.byteOffset, nm.byteLength), 0, nm.length, this.view);
      this.ports[seq] = this.view.port;
      this.txSec[seq] = sec;
      this.txNsec[seq] = nsec;
      this.socks[seq] = sock;
      this.open++;
      onSent(i, sec, nsec, 0);
      if (rc === 0 || -rc === ECONNREFUSED) {
        // Answered before connect() returned (loopback): report it now.
        this.settle(seq, rc === 0 ? 0 : ECONNREFUSED);
        continue;
      }
      sock.watch(
        () => this.onReady(seq),
        (e) => this.onFatal?.(e),
        UV_READABLE | UV_WRITABLE,
      );
    }
    return n;
  }

  start(onReply: (r: ReplyRecord) => void, onFatal: (e: Error) => void): void {
    this.onReply = onReply;
    this.onFatal = onFatal;
  }

  /** Readiness of probe seq's socket: an error-queue message, a connection, or a failure. */
  private onReady(seq: number): number {
    const sock = this.socks[seq];
    if (!sock) return 0;
    let got = this.readErrqueue(seq, sock);
    if (this.socks[seq] === null) return got;
    const err = sock.takeError();
    if (err === 0) {
      // No error: connected (a SYN-ACK came) or still waiting; tcpi_state tells which.
      if (native().getsockopt(sock.fd, IPPROTO_TCP, TCP_INFO, this.info) < 1 || this.info[0] !== TCP_ESTABLISHED) return got;
      this.settle(seq, 0);
      got++;
    } else if (err === ECONNREFUSED) {
      this.settle(seq, ECONNREFUSED);
      got++;
    } else {
      // ETIMEDOUT (our user timeout: no answer) or an ICMP-caused errno whose message was
      // already read: the attempt is over. The engine's timer declares the no-reply.
      this.expire(seq);
      got++;
    }
    return got;
  }

  private readErrqueue(seq: number, sock: Socket): number {
    const b = this.errBatch;
    const n = b.recv(sock.fd, MSG_ERRQUEUE);
    this.stats.recvCalls++;
    if (n <= 0) return 0;
    for (let i = 0; i < n; i++) {
      if (this.beginErrqueue(b, i)) {
        // The socket is the probe: one SYN per socket, never retransmitted.
        this.rec.seq = seq;
        this.finishErrqueue(b, i);
      }
      this.onReply?.(this.rec);
    }
    this.expire(seq);
    return n;
  }

  /** Reports a SYN-ACK (err 0) or an RST (ECONNREFUSED) from the target and closes the socket. */
  private settle(seq: number, err: number): void {
    const sock = this.socks[seq];
    const r = this.resetRecord();
    r.seq = seq;
    ErrqueueTransport.setAddr(r, this.o.target, 0);
    if (err === 0) {
      r.kind = 'tcp-syn-ack';
      r.code = 'open';
      const rc = sock ? native().getsockopt(sock.fd, IPPROTO_TCP, TCP_INFO, this.info) : -1;
      const rttUs = rc > TCPI_RTT_OFFSET + 4 ? this.infoView.getUint32(TCPI_RTT_OFFSET, true) : 0;
      if (rttUs > 0) {
        // The kernel's RTT sample of the SYN: a kernel-side measurement, as precise as timestamps.
        let nsec = this.txNsec[seq] + rttUs * 1000;
        let sec = this.txSec[seq];
        while (nsec >= 1e9) {
          nsec -= 1e9;
          sec++;
        }
        r.sec = sec;
        r.nsec = nsec;
        r.kernelTs = true;
      } else {
        this.stamp(r, false, 0, 0);
      }
    } else {
      r.kind = 'tcp-rst';
      r.code = errnoName(err) === 'ECONNREFUSED' ? 'closed' : errnoName(err);
      this.stamp(r, false, 0, 0);
    }
    this.expire(seq);
    this.onReply?.(r);
  }

  /** Closes probe seq's socket (answered, failed, or declared a no-reply by the engine). */
  expire(seq: number): void {
    const sock = this.socks[seq];
    if (!sock) return;
    this.socks[seq] = null;
    this.open--;
    sock.close();
  }

  drain(): number {
    let got = 0;
    for (let seq = 0; seq < this.socks.length && this.open > 0; seq++) if (this.socks[seq]) got += this.onReady(seq);
    return got;
  }

  close(): void {
    for (let seq = 0; seq < this.socks.length; seq++) this.expire(seq);
  }
}
