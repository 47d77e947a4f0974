/**
 * The monitor's three methods: ICMP echo and UDP over one shared datagram socket each
 * (`DatagramProber`), TCP over one connect() per probe.
 */
import { SOCK_DGRAM, UV_WRITABLE } from '../core/constants.js';
import { EINPROGRESS } from '../core/errno.js';
import { SysError, errnoName } from '../core/errors.js';
import type { Placement } from '../io/placement.js';
import type { Socket } from '../io/socket.js';
import { type Family, writeSockaddr } from '../packet/addr.js';
import { ADDR_STRIDE } from './table.js';
import { ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, ICMP_ECHO, ICMP_ECHOREPLY, inetChecksum } from '../packet/icmp.js';
import { connectAnswered, openConnectSocket } from '../probe/connect.js';
import { COOKIE_TARGET_LEN } from '../probe/cookie.js';
import { openIcmpSocket, openProbeSocket } from '../probe/socket.js';
import { type Answer, DatagramProber, MAX_BATCH, type Prober, type ProberHooks, type ProberOptions, stampNow } from './prober.js';
import type { OpenProber } from './request.js';
import { XdpUdpProber } from './xdp.js';

/**
 * The monitor's datagram sockets: the error queue, a receive buffer for replies to thousands of
 * targets in bursts (past rmem_max where allowed), DF with IP ID 0 (see ProbeSocketOptions).
 */
const socketOptions = (placement: Placement, source: Uint8Array | undefined, o: ProberOptions) => ({ placement, source, rcvbuf: o.rcvbuf, forceRcvbuf: true, sndbuf: 4 << 20, dontFragment: true });

/**
 * ICMP echo: over an ICMP datagram ("ping") socket where net.ipv4.ping_group_range includes the
 * caller's group (per namespace), else over a raw socket with CAP_NET_RAW. On a ping socket the
 * kernel sets the echo id (the socket's port) and delivers only replies with it; on a raw socket
 * the id is ours and every ICMP message arrives (IPv4 with its IP header), ours picked by id and
 * cookie. Either way the sequence and the cookie say which probe.
 */
export class EchoProber extends DatagramProber {
  readonly method = 'icmp' as const;
  readonly socket: 'ping' | 'raw';
  private readonly echoId: number;

  constructor(family: Family, session: number, hooks: ProberHooks, placement: Placement, source: Uint8Array | undefined, o: ProberOptions) {
    const { sock, kind } = openIcmpSocket(family, 'auto', socketOptions(placement, source, o));
    super(family, session, hooks, sock, 8 + COOKIE_TARGET_LEN);
    this.socket = kind;
    this.echoId = kind === 'ping' ? 0 : (session ^ (session >>> 16)) & 0xffff;
    const b = this.batch;
    for (let j = 0; j < MAX_BATCH; j++) {
      b.data[j * b.dataSlot] = family === 4 ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
      b.dataView.setUint16(j * b.dataSlot + 4, this.echoId, false);
    }
  }

  protected fill(j: number, target: number, seq: number): number {
    const b = this.batch;
    const off = j * b.dataSlot;
    b.dataView.setUint16(off + 2, 0, false);
    b.dataView.setUint16(off + 6, seq & 0xffff, false);
    this.writeCookie(b.dataView, off + 8, target, seq);
    // IPv4 raw: the checksum is ours to write (the kernel does it for ping sockets and ICMPv6).
    if (this.socket === 'raw' && this.family === 4) b.dataView.setUint16(off + 2, inetChecksum(b.data, off, 8 + COOKIE_TARGET_LEN), false);
    return 8 + COOKIE_TARGET_LEN;
  }

  protected onData(i: number): void {
    const d = this.data;
    let off = d.dataOff(i);
    let len = d.dataLen(i);
    if (this.socket === 'raw' && this.family === 4) {
      // IPv4 raw sockets deliver the IP header first.
      if (len < 20) return;
      const ihl = (d.data[off] & 0x0f) * 4;
      if (ihl < 20 || ihl > len) return;
      off += ihl;
      len -= ihl;
    }
    if (len < 8 || d.data[off] !== (this.family === 4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY)) return;
    if (this.socket === 'raw' && d.dataView.getUint16(off + 4, false) !== this.echoId) return;
    if (!this.cookie(d.dataView, off + 8, len - 8)) return;
    if ((d.dataView.getUint16(off + 6, false) & 0xffff) !== (this.ans.seq & 0xffff)) return;
    this.answerFrom(i, 'echo reply');
  }

  protected onError(i: number): void {
    const r = this.errorOf(i, 8);
    if (!r) return;
    const a = this.ans;
    a.kind = 'unreachable';
    a.detail = `ICMP type ${r.type} code ${r.code}`;
    this.hooks.onAnswer(a);
  }


}

/**
 * UDP to a (normally closed) port, on one unconnected socket with IP_RECVERR: a Port Unreachable
 * from the target proves it alive (the error queue returns our payload, cookie and all), an
 * answer from the target's port counts too when it echoes the cookie, and an error from anyone
 * else (a router's Host Unreachable) says the target cannot be reached.
 */
export class UdpProber extends DatagramProber {
  readonly method = 'udp' as const;
  readonly socket = 'dgram';

  constructor(family: Family, session: number, hooks: ProberHooks, placement: Placement, source: Uint8Array | undefined, o: ProberOptions) {
    const { sock } = openProbeSocket(family, SOCK_DGRAM, 0, { ...socketOptions(placement, source, o), recverr: true });
    super(family, session, hooks, sock, COOKIE_TARGET_LEN);
  }

  protected fill(j: number, target: number, seq: number): number {
    const b = this.batch;
    this.writeCookie(b.dataView, j * b.dataSlot, target, seq);
    return COOKIE_TARGET_LEN;
  }

  protected onData(i: number): void {
    const d = this.data;
    if (!this.cookie(d.dataView, d.dataOff(i), d.dataLen(i))) return;
    this.answerFrom(i, 'udp answer');
  }

  protected onError(i: number): void {
    const r = this.errorOf(i, 0);
    if (!r) return;
    const a = this.ans;
    const portUnreach = this.family === 4 ? r.type === 3 && r.code === 3 : r.type === 1 && r.code === 4;
    a.kind = portUnreach && r.fromTarget ? 'alive' : 'unreachable';
    a.detail = portUnreach && r.fromTarget ? 'port unreachable' : `ICMP type ${r.type} code ${r.code}${r.fromTarget ? '' : ' from a router'}`;
    this.hooks.onAnswer(a);
  }
}

/**
 * TCP: one non-blocking connect() per probe (no privilege; `probe/connect.ts`). A SYN-ACK
 * (connected) or an RST (ECONNREFUSED) proves the target alive; an unreachable error says it cannot
 * be reached; the connection is dropped at once with SO_LINGER 0.
 */
export class TcpProber implements Prober {
  readonly method = 'tcp' as const;
  readonly socket = 'connect';
  private readonly open = new Set<Socket>();
  private readonly nameBuf = new Uint8Array(28);
  private readonly t = { sec: 0, nsec: 0 };
  private readonly local: Uint8Array | undefined;

  constructor(
    readonly family: Family,
    private readonly hooks: ProberHooks,
    private readonly placement: Placement,
    source?: Uint8Array,
  ) {
    if (source) {
      const name = new Uint8Array(28);
      this.local = name.subarray(0, writeSockaddr(name, 0, source, 0));
    }
  }

  send(n: number, targets: Int32Array, seqs: Int32Array, addrs: Uint8Array, ports: Int32Array, onSent: (i: number, sec: number, nsec: number) => void): number {
    const len = this.family === 4 ? 4 : 16;
    for (let i = 0; i < n; i++) {
      const target = targets[i];
      const seq = seqs[i];
      let sock: Socket;
      try {
        sock = openConnectSocket(this.family, { placement: this.placement, local: this.local });
      } catch (e) {
        if (e instanceof SysError && e.syscall === 'socket') return i; // out of descriptors: the rest wait for the next tick
        throw e;
      }
      stampNow(this.t);
      const { sec, nsec } = this.t;
      writeSockaddr(this.nameBuf, 0, addrs.subarray(ADDR_STRIDE * target, ADDR_STRIDE * target + len), ports[i]);
      const rc = sock.connect(this.nameBuf.subarray(0, this.family === 4 ? 16 : 28));
      onSent(i, sec, nsec);
      if (connectAnswered(-rc)) {
        sock.close();
        this.answer(target, seq, 'alive', rc === 0 ? 'connected' : 'refused (RST)');
        continue;
      }
      if (rc !== -EINPROGRESS) {
        sock.close();
        this.answer(target, seq, 'unreachable', `connect: ${errnoName(-rc)}`);
        continue;
      }
      this.open.add(sock);
      sock.watch(
        () => {
          const err = sock.takeError();
          this.open.delete(sock);
          sock.close();
          if (connectAnswered(err)) this.answer(target, seq, 'alive', err === 0 ? 'connected (SYN-ACK)' : 'refused (RST)');
          else this.answer(target, seq, 'unreachable', `connect: ${errnoName(err)}`);
          return 1;
        },
        this.hooks.onFatal,
        UV_WRITABLE,
      );
    }
    return n;
  }

  private answer(target: number, seq: number, kind: Answer['kind'], detail: string): void {
    stampNow(this.t);
    this.hooks.onAnswer({ target, seq, kind, sec: this.t.sec, nsec: this.t.nsec, kernelTs: false, detail });
  }

  /** Gives up a probe's connection (its timeout passed). */
  close(): void {
    for (const s of this.open) s.close();
    this.open.clear();
  }
}

/** The probers of the real sockets, by method. */
export const openMonitorProber: OpenProber = (m, family, session, hooks, placement, source, o) =>
  m === 'icmp'
    ? new EchoProber(family, session, hooks, placement, source, o)
    : m === 'udp'
      ? o.xdp
        ? new XdpUdpProber(family, session, hooks, placement, source, o.xdp)
        : new UdpProber(family, session, hooks, placement, source, o)
      : new TcpProber(family, hooks, placement, source);
