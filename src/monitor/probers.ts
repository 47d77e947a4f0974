/**
 * The monitor's probers: one socket per family and method for all targets (ICMP echo, UDP), so
 * ten thousand targets are ten thousand destinations of one socket, not ten thousand sockets.
 * Every probe carries a 16-byte cookie (magic, session, target index, sequence) in its payload;
 * an answer counts only when it comes back with that cookie from the target's address. TCP has
 * to use one connect() per probe (unprivileged), and is for the targets that need it.
 *
 * Times: the send time is CLOCK_REALTIME just before sendmmsg (one per batch, in the batch's
 * `times`), the receive time the kernel's (SO_TIMESTAMPNS); for TCP both are taken in userspace.
 */
import {
  AF_INET,
  AF_INET6,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IPV6,
  IPV6_RECVERR,
  IP_MTU_DISCOVER,
  IP_PMTUDISC_PROBE,
  IP_RECVERR,
  MSG_ERRQUEUE,
  SOCK_DGRAM,
  SOCK_RAW,
  SOCK_STREAM,
  SOL_IP,
  SOL_SOCKET,
  SO_EE_ORIGIN_ICMP,
  SO_EE_ORIGIN_ICMP6,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_TIMESTAMPNS,
  UV_WRITABLE,
} from '../core/constants.js';
import { EACCES, EAGAIN, ECONNREFUSED, EINPROGRESS, EPERM } from '../core/errno.js';
import { PathlensError, SysError, errnoName } from '../core/errors.js';
import { RecvBatch, SendBatch } from '../io/batch.js';
import { type Placement, openSocket } from '../io/placement.js';
import type { Socket } from '../io/socket.js';
import { type Family, SockaddrView, readSockaddr, sameAddr, writeSockaddr } from '../packet/addr.js';
import { CmsgCursor } from '../packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../packet/errqueue.js';
import { ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, ICMP_ECHO, ICMP_ECHOREPLY, inetChecksum } from '../packet/icmp.js';
import { OK } from '../packet/status.js';

export type MonitorMethod = 'icmp' | 'udp' | 'tcp';

export const COOKIE_MAGIC = 0x504c4d31; // 'PLM1'
export const COOKIE_LEN = 16;
const SCM_TIMESTAMPNS = SO_TIMESTAMPNS;

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
  readonly method: MonitorMethod;
  readonly family: Family;
  /** Socket kind, for the events: ping, raw, dgram, connect. */
  readonly socket: string;
  /**
   * Sends probes i in [0, n): to addrs[i] (port ports[i] for UDP/TCP), carrying (targets[i],
   * seqs[i]). Calls onSent(i, sec, nsec) for each one sent; returns how many were sent (the rest
   * is tried again by the caller at the next tick).
   */
  send(n: number, targets: Int32Array, seqs: Int32Array, addrs: Uint8Array[], ports: Int32Array, onSent: (i: number, sec: number, nsec: number) => void): number;
  /** Reads answers that have arrived (probers that are not driven by readiness). */
  poll?(): number;
  /** The target's address changed (probers that keep something per target). */
  forget?(target: number): void;
  close(): void;
}

export interface ProberHooks {
  onAnswer: (a: Answer) => void;
  onFatal: (e: Error) => void;
}

const MAX_BATCH = 256;

/** CLOCK_REALTIME now, to the microsecond (Date.now() has milliseconds only). */
function realtimeNow(out: { sec: number; nsec: number }): void {
  const ms = performance.timeOrigin + performance.now();
  out.sec = Math.floor(ms / 1000);
  out.nsec = Math.round((ms - out.sec * 1000) * 1e6);
}


/** Reads SCM_TIMESTAMPNS from a message's control bytes into out; false when absent. */
function rxTime(cur: CmsgCursor, dv: DataView, off: number, len: number, out: { sec: number; nsec: number }): boolean {
  cur.reset(dv, off, off + len);
  while (cur.next()) {
    if (cur.level === SOL_SOCKET && cur.type === SCM_TIMESTAMPNS && cur.dataLen >= 16) {
      // Two 64-bit fields read as 32-bit halves: no BigInt (an allocation) per answer.
      out.sec = dv.getUint32(cur.dataOff, true) + dv.getInt32(cur.dataOff + 4, true) * 4294967296;
      out.nsec = dv.getUint32(cur.dataOff + 8, true);
      return true;
    }
  }
  return false;
}

abstract class DatagramProber implements Prober {
  abstract readonly method: MonitorMethod;
  abstract readonly socket: string;
  protected readonly sock: Socket;
  protected readonly batch: SendBatch;
  private readonly batchNames: Uint32Array;
  protected readonly data = new RecvBatch(64, 1500, 128, 32);
  protected readonly errs = new RecvBatch(64, 1500, 256, 32);
  protected readonly eq = new ErrqueueRecord();
  protected readonly name = new SockaddrView();
  protected readonly cur = new CmsgCursor();
  protected readonly t = { sec: 0, nsec: 0 };
  protected readonly ans: Answer = { target: -1, seq: -1, kind: 'alive', sec: 0, nsec: 0, kernelTs: false, detail: '' };
  /** Whether bytes at buf[off] are an address the target's answers may come from. */
  protected fromTarget: (target: number, buf: Uint8Array, off: number) => boolean = () => false;

  constructor(
    readonly family: Family,
    protected readonly session: number,
    protected readonly hooks: ProberHooks,
    sock: Socket,
    payload: number,
  ) {
    this.sock = sock;
    this.batch = new SendBatch(MAX_BATCH, payload, 28, 0);
    // The batch's names as words (the cache's words hold the same bytes).
    this.batchNames = new Uint32Array(this.batch.names.buffer, this.batch.names.byteOffset, (MAX_BATCH * 28) / 4);
    // No readiness callbacks: the monitor reads both queues on its own tick (poll()), in
    // batches. A wake-up per answer would cost more system time than the probing itself; the
    // kernel's receive timestamps keep the RTTs exact whenever the queue is read.
  }

  setAddressCheck(f: (target: number, buf: Uint8Array, off: number) => boolean): void {
    this.fromTarget = f;
  }

  /**
   * Each target's sockaddr, 28 bytes a target in one array, built on its first probe (and again
   * after forget()): a probe copies seven words instead of reading objects of its target's.
   */
  private nameCache = new Uint32Array(0);
  private nameLens = new Uint8Array(0);
  private readonly scratch = new Uint8Array(28);
  private readonly scratchWords = new Uint32Array(this.scratch.buffer);

  /** The target's address changed: its sockaddr is built again at its next probe. */
  forget(target: number): void {
    if (target < this.nameLens.length) this.nameLens[target] = 0;
  }

  /** Writes the target's sockaddr into the batch's name slot j; returns its length. */
  private nameInto(j: number, target: number, addr: Uint8Array, port: number): number {
    if (target >= this.nameLens.length) {
      const cap = Math.max(target + 1, this.nameLens.length * 2, 64);
      const c = new Uint32Array(cap * 7);
      c.set(this.nameCache);
      const l = new Uint8Array(cap);
      l.set(this.nameLens);
      this.nameCache = c;
      this.nameLens = l;
    }
    const c = this.nameCache;
    const at = target * 7;
    let len = this.nameLens[target];
    if (len === 0) {
      const x = this.scratch;
      x.fill(0);
      writeSockaddr(x, 0, addr, port);
      len = addr.length === 4 ? 16 : 28;
      for (let w = 0; w < 7; w++) c[at + w] = this.scratchWords[w];
      this.nameLens[target] = len;
    }
    const d = this.batchNames;
    const to = j * 7;
    d[to] = c[at];
    d[to + 1] = c[at + 1];
    d[to + 2] = c[at + 2];
    d[to + 3] = c[at + 3];
    if (len === 28) {
      d[to + 4] = c[at + 4];
      d[to + 5] = c[at + 5];
      d[to + 6] = c[at + 6];
    }
    return len;
  }

  protected abstract fill(i: number, target: number, seq: number, port: number): number;

  send(n: number, targets: Int32Array, seqs: Int32Array, addrs: Uint8Array[], ports: Int32Array, onSent: (i: number, sec: number, nsec: number) => void): number {
    let done = 0;
    while (done < n) {
      const k = Math.min(MAX_BATCH, n - done);
      const b = this.batch;
      for (let j = 0; j < k; j++) {
        const i = done + j;
        const len = this.fill(j, targets[i], seqs[i], ports[i]);
        b.set(j, len, this.nameInto(j, targets[i], addrs[i], this.method === 'icmp' ? 0 : ports[i]), 0);
      }
      const rc = b.send(this.sock.fd, k);
      // CLOCK_REALTIME just before the call (times[0], times[1]).
      const sec = b.times[0];
      const nsec = b.times[1];
      if (rc < 0) {
        if (rc === -EAGAIN) return done;
        // A send error names one destination (no route...): that probe is answered "unreachable".
        this.answerLocal(targets[done], seqs[done], sec, nsec, errnoName(-rc));
        onSent(done, sec, nsec);
        done++;
        continue;
      }
      for (let j = 0; j < rc; j++) onSent(done + j, sec, nsec);
      done += rc;
      if (rc < k) return done;
    }
    return done;
  }

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

  /** The cookie at b[off..]: the target index and seq, or false. */
  protected cookie(b: Uint8Array, dv: DataView, off: number, avail: number): boolean {
    if (avail < COOKIE_LEN) return false;
    if (dv.getUint32(off, false) !== COOKIE_MAGIC || dv.getUint32(off + 4, false) !== this.session) return false;
    this.ans.target = dv.getUint32(off + 8, false);
    this.ans.seq = dv.getUint32(off + 12, false);
    return true;
  }

  protected writeCookie(dv: DataView, off: number, target: number, seq: number): void {
    dv.setUint32(off, COOKIE_MAGIC, false);
    dv.setUint32(off + 4, this.session, false);
    dv.setUint32(off + 8, target >>> 0, false);
    dv.setUint32(off + 12, seq >>> 0, false);
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
    if (readSockaddr(d.nameView, d.nameOff(i), d.nameLen(i), this.name) !== OK || this.name.family !== this.family || !this.fromTarget(a.target, d.names, this.name.addrOff)) return;
    a.kind = 'alive';
    a.kernelTs = rxTime(this.cur, d.ctrlView, d.ctrlOff(i), d.ctrlLen(i), this.t);
    if (a.kernelTs) {
      a.sec = this.t.sec;
      a.nsec = this.t.nsec;
    } else realtimeNow(a);
    a.detail = detail;
    this.hooks.onAnswer(a);
  }

  private polls = 0;

  /** Reads what has arrived (the error queue every sixteenth call: errors are rare and keep). */
  poll(): number {
    return this.drain((this.polls++ & 15) === 0);
  }

  private drain(errQueue: boolean): number {
    let total = 0;
    for (; errQueue; ) {
      const n = this.errs.recv(this.sock.fd, MSG_ERRQUEUE);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) this.onError(i);
      total += n;
      if (n < this.errs.count) break;
    }
    for (;;) {
      const n = this.data.recv(this.sock.fd, 0);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) this.onData(i);
      total += n;
      if (n < this.data.count) break;
    }
    return total;
  }

  /** An ICMP error from the error queue: which probe it quotes, who sent it, and what it says. */
  protected errorOf(i: number, payloadOff: number): { fromTarget: boolean; type: number; code: number } | null {
    const e = this.errs;
    const eq = this.eq;
    parseErrqueue(e.ctrlView, e.ctrlOff(i), e.ctrlOff(i) + e.ctrlLen(i), eq, this.cur);
    if (eq.status !== OK || (eq.origin !== SO_EE_ORIGIN_ICMP && eq.origin !== SO_EE_ORIGIN_ICMP6)) return null;
    if (!this.cookie(e.data, e.dataView, e.dataOff(i) + payloadOff, e.dataLen(i) - payloadOff)) return null;
    // The offender's address bytes are in the control buffer, where the kernel put its sockaddr.
    const fromTarget = eq.offender.family === this.family && this.fromTarget(this.ans.target, e.ctrl, eq.offender.addrOff);
    const a = this.ans;
    if (eq.hasTime) {
      a.sec = eq.sec;
      a.nsec = eq.nsec;
      a.kernelTs = true;
    } else {
      realtimeNow(a);
      a.kernelTs = false;
    }
    return { fromTarget, type: eq.icmpType, code: eq.icmpCode };
  }

  close(): void {
    this.sock.close();
  }
}

/** Receive buffer asked for: replies to thousands of targets can come in bursts. */
const RCVBUF = 8 << 20;

/** Binds the socket to the way out's source address (a sockaddr with port 0), when one is given. */
function bindSource(sock: Socket, source: Uint8Array | undefined): void {
  if (!source) return;
  const name = new Uint8Array(source.length === 4 ? 16 : 28);
  writeSockaddr(name, 0, source, 0);
  sock.bind(name, `bind to the source address`);
}

/** Error queue, receive timestamps, buffer and source on a new datagram socket; closed if any fails. */
function prepare(sock: Socket, family: Family, source: Uint8Array | undefined): void {
  try {
    enableCommon(sock, family);
    bindSource(sock, source);
  } catch (e) {
    sock.close();
    throw e;
  }
}

function enableCommon(sock: Socket, family: Family): void {
  // Above net.core.rmem_max only with CAP_NET_ADMIN (SO_RCVBUFFORCE); otherwise as much as allowed.
  if (sock.trySetInt(SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF) < 0) sock.trySetInt(SOL_SOCKET, SO_RCVBUF, RCVBUF);
  if (family === 4) {
    sock.setInt(SOL_IP, IP_RECVERR, 1, 'IP_RECVERR');
    // DF on (and the path MTU not applied: a probe is far below any MTU). An unfragmentable
    // datagram from an unconnected socket gets IP ID 0 (RFC 6864), which spares the kernel its
    // per-destination ID generator: a hashed counter and a cache miss for every probe to one of
    // ten thousand destinations.
    sock.setInt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, 'IP_MTU_DISCOVER');
  } else sock.setInt(IPPROTO_IPV6, IPV6_RECVERR, 1, 'IPV6_RECVERR');
  sock.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1, 'SO_TIMESTAMPNS');
}

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

  constructor(family: Family, session: number, hooks: ProberHooks, placement: Placement, source?: Uint8Array) {
    const domain = family === 4 ? AF_INET : AF_INET6;
    const proto = family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    let sock: Socket;
    let kind: 'ping' | 'raw' = 'ping';
    try {
      sock = openSocket(domain, SOCK_DGRAM, proto, placement);
    } catch (e) {
      const errno = (e as SysError).errno;
      if (errno !== EACCES && errno !== EPERM) throw e;
      try {
        sock = openSocket(domain, SOCK_RAW, proto, placement);
        kind = 'raw';
      } catch (e2) {
        const errno2 = (e2 as SysError).errno;
        if (errno2 !== EACCES && errno2 !== EPERM) throw e2;
        throw new PathlensError('ERR_PRIVILEGE', `ICMP refused: no ping socket (net.ipv4.ping_group_range does not include this group) and no raw socket (CAP_NET_RAW)`);
      }
    }
    prepare(sock, family, source);
    super(family, session, hooks, sock, 8 + COOKIE_LEN);
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
    if (this.socket === 'raw' && this.family === 4) b.dataView.setUint16(off + 2, inetChecksum(b.data, off, 8 + COOKIE_LEN), false);
    return 8 + COOKIE_LEN;
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
    if (!this.cookie(d.data, d.dataView, off + 8, len - 8)) return;
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

  constructor(family: Family, session: number, hooks: ProberHooks, placement: Placement, source?: Uint8Array) {
    const sock = openSocket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0, placement);
    prepare(sock, family, source);
    super(family, session, hooks, sock, COOKIE_LEN);
  }

  protected fill(j: number, target: number, seq: number): number {
    const b = this.batch;
    this.writeCookie(b.dataView, j * b.dataSlot, target, seq);
    return COOKIE_LEN;
  }

  protected onData(i: number): void {
    const d = this.data;
    if (!this.cookie(d.data, d.dataView, d.dataOff(i), d.dataLen(i))) return;
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
 * TCP: one non-blocking connect() per probe (no privilege). A SYN-ACK (connected) or an RST
 * (ECONNREFUSED) proves the target alive; an unreachable error says it cannot be reached; the
 * connection is dropped at once with SO_LINGER 0.
 */
export class TcpProber implements Prober {
  readonly method = 'tcp' as const;
  readonly socket = 'connect';
  private readonly open = new Set<Socket>();
  private readonly nameBuf = new Uint8Array(28);
  private readonly t = { sec: 0, nsec: 0 };

  constructor(
    readonly family: Family,
    private readonly hooks: ProberHooks,
    private readonly placement: Placement,
    private readonly source?: Uint8Array,
  ) {}

  send(n: number, targets: Int32Array, seqs: Int32Array, addrs: Uint8Array[], ports: Int32Array, onSent: (i: number, sec: number, nsec: number) => void): number {
    for (let i = 0; i < n; i++) {
      const target = targets[i];
      const seq = seqs[i];
      let sock: Socket;
      try {
        sock = openSocket(this.family === 4 ? AF_INET : AF_INET6, SOCK_STREAM, 0, this.placement);
      } catch {
        return i; // out of descriptors: the rest wait for the next tick
      }
      try {
        bindSource(sock, this.source);
      } catch (e) {
        sock.close();
        throw e;
      }
      realtimeNow(this.t);
      const { sec, nsec } = this.t;
      writeSockaddr(this.nameBuf, 0, addrs[i], ports[i]);
      const rc = sock.connect(this.nameBuf.subarray(0, this.family === 4 ? 16 : 28));
      onSent(i, sec, nsec);
      if (rc === 0 || rc === -ECONNREFUSED) {
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
          if (err === 0) this.answer(target, seq, 'alive', 'connected (SYN-ACK)');
          else if (err === ECONNREFUSED) this.answer(target, seq, 'alive', 'refused (RST)');
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
    realtimeNow(this.t);
    this.hooks.onAnswer({ target, seq, kind, sec: this.t.sec, nsec: this.t.nsec, kernelTs: false, detail });
  }

  /** Gives up a probe's connection (its timeout passed). */
  close(): void {
    for (const s of this.open) s.close();
    this.open.clear();
  }
}
