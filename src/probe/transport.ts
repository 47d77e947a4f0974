/**
 * The probe layer's contract: how probes leave and how replies come back, below every capability
 * that sends probes (trace today; the monitor shares the sockets, cookie and queue reading of
 * this folder). A transport sends probes named by sequence number and hands back replies already
 * correlated to one, in a reused `ReplyRecord`. Implementations: the error-queue datagram
 * transports (UDP, ICMP over a ping socket), raw sockets (ICMP, built TCP SYNs) and one connect()
 * per probe; a BPF ring buffer or an AF_XDP socket would be more of the same shape: correlation
 * happens below this seam, so whoever does it (the socket, the kernel) the engine is the same.
 */
import type { Family } from '../packet/addr.js';
import { type ReplyKind, icmpName } from '../packet/icmp.js';
import type { MplsLabel } from '../packet/icmpext.js';

/** How a probe asks for an answer: one word for trace and monitor alike. */
export type ProbeMethod = 'udp' | 'icmp' | 'tcp';

/** Outcome of correlating one received message. Reused by the transport for every message. */
export class ReplyRecord {
  /** Sequence number of the probe this answers, or -1. */
  seq = -1;
  /** Why it did not match (when seq is -1). */
  unmatched: 'unknown-probe' | 'cookie-mismatch' | 'wrong-destination' | 'malformed' | null = null;
  /**
   * Matched on ports or the echo sequence alone: the error quoted too little of the probe to carry
   * its cookie (old routers quote 8 bytes). Real routers do this, so the reply counts, but a
   * forger who guessed the ports could have sent it too: events and views say so.
   */
  unverified = false;
  detail = '';
  family: Family = 4;
  /** Responder address bytes live in `addrBuf[addrOff..]`; hasAddr false for local errors. */
  hasAddr = false;
  addrBuf: Uint8Array = new Uint8Array(0);
  addrOff = 0;
  kind: ReplyKind = 'other';
  code = '';
  icmpType = -1;
  icmpCode = -1;
  errno = 0;
  /** Next-hop MTU when the error carries one (frag-needed / packet-too-big), else 0. */
  mtu = 0;
  /** Receive time (CLOCK_REALTIME). */
  sec = 0;
  nsec = 0;
  kernelTs = false;
  /** Interface (in the probing namespace) the reply arrived on; 0 when unknown. */
  ifindex = 0;
  /** RFC 4950 MPLS label stack carried in the error's RFC 4884 extensions, when present. */
  mpls: MplsLabel[] | null = null;
  /**
   * Not a reply: the kernel's send timestamp of probe `seq` (sec/nsec, CLOCK_REALTIME, taken when
   * the device got the packet). It replaces the userspace send time.
   */
  sendStamp = false;
  /** The TOS (traffic class) and TTL (hop limit) of the probe as the error's sender saw it, from the quoted IP header (raw ICMP sockets); -1 when not seen. */
  quotedTos = -1;
  quotedTtl = -1;
  /** trace --bpf: the kernel correlated this reply (its probe's send time is a BPF program's, at the send hook). */
  bpfTimes = false;
  /** trace --bpf: the receive time is the BPF program's at its hook (the packet carried no receive timestamp of its own). */
  recvBpf = false;

  /** Back to "nothing known" for the next message (every field but the time, which each path sets). */
  reset(family: Family): this {
    this.seq = -1;
    this.unmatched = null;
    this.unverified = false;
    this.detail = '';
    this.family = family;
    this.hasAddr = false;
    this.kind = 'other';
    this.code = '';
    this.icmpType = -1;
    this.icmpCode = -1;
    this.errno = 0;
    this.mtu = 0;
    this.kernelTs = false;
    this.ifindex = 0;
    this.mpls = null;
    this.sendStamp = false;
    this.quotedTos = -1;
    this.quotedTtl = -1;
    this.bpfTimes = false;
    this.recvBpf = false;
    return this;
  }

  /** Kind, code, type and next-hop MTU of an ICMP error read whole (a raw socket's, or a BPF program's copy). */
  icmpError(family: Family, type: number, code: number, rest: number): void {
    const nm = icmpName(family, type, code);
    this.kind = nm.kind;
    this.code = nm.code;
    this.icmpType = type;
    this.icmpCode = code;
    if ((family === 4 && type === 3 && code === 4) || (family === 6 && type === 2)) this.mtu = family === 4 ? rest & 0xffff : rest;
  }
}

/**
 * A prober whose answers can come whole from below its socket (trace --bpf: BPF programs pick them
 * out of the namespace's traffic, time and correlate them, and hand over the packet). Its socket
 * then only sends. The prober names the probe an answer is about from the headers it quotes or
 * carries, by the same rules as its own socket's path.
 */
export interface WholeReplies {
  /** What the kernel's send hook keys a probe by: its protocol, source port or echo id, the cookie's session, and whether flows share ports (the cookie's seq is then in the key). */
  readonly kernelKey: { proto: number; sport: number; session: number; byCookie: boolean };
  /**
   * Names the probe: `l4` is the probe's own L4 header (quoted in an error, or the echo reply's
   * or datagram's header), `avail` bytes of it captured; `dstOff` its destination address in
   * `bytes` (the quoted IP header's, or the reply's source). Sets r.seq, or r.unmatched.
   */
  matchWhole(r: ReplyRecord, bytes: Uint8Array, dv: DataView, dstOff: number, l4: number, avail: number, what: 'quote' | 'echo-reply' | 'datagram'): void;
}

/** Facts a BPF-correlated transport adds to the start event (and `done` figures once closed). */
export interface KernelFacts {
  /** The start event's `bpf` field. */
  readonly start: Record<string, unknown>;
  /** The done event's `bpf` field, after close(); null before. */
  done(): Record<string, unknown> | null;
}

/** Kernel-located RFC 4884 extension offset from sock_extended_err.ee_data, or -1. */
export function rfc4884Offset(eeData: number): number {
  const len = eeData & 0xffff;
  const invalid = ((eeData >>> 16) & 0xff & 1) !== 0; // SO_EE_RFC4884_FLAG_INVALID
  return len > 0 && !invalid ? len : -1;
}

/**
 * Called for each probe right after the sendmmsg that carried it, before anything else is read
 * from the socket: (index in the batch, CLOCK_REALTIME sec/nsec taken just before that call,
 * retries it needed).
 */
export type OnSent = (i: number, sec: number, nsec: number, retries: number) => void;

export interface TransportStats {
  sendCalls: number;
  recvCalls: number;
  retries: number;
}

/** How the probes are sent: an ordinary datagram socket, an ICMP datagram socket, a raw socket, or connect(). */
export type SocketKind = 'dgram' | 'ping' | 'raw' | 'connect';

/**
 * What the engine drives. The required members are all a datagram transport has; the optional
 * ones are facts only some methods have (a connect() per probe has its own source ports and a
 * longest wait; an echo carries its own sequence; --pmtu needs a settable packet length). The
 * engine reads them once, when it starts (`TransportFacts`).
 */
export interface Transport {
  readonly method: ProbeMethod;
  readonly socketKind: SocketKind;
  readonly family: Family;
  readonly srcPort: number;
  readonly source: string | null;
  readonly stats: TransportStats;
  /** Destination port of probe `seq` (null for ICMP), for the probe event. */
  dstPort(seq: number): number | null;
  /** Source port of probe `seq`, when probes have their own (one socket per TCP probe). */
  srcPortOf?(seq: number): number;
  /** ICMP: the echo sequence number probe `seq` carries. */
  echoSeqOf?(seq: number): number;
  /** Replies show the quoted IP header (a raw ICMP socket reads whole errors; others get the quote after it). */
  readonly quotesHeader?: boolean;
  /** Longest wait the method can honour (TCP connect: the kernel's initial SYN RTO). */
  readonly maxWaitMs?: number;
  /** Probe packet length on the wire (IP header included), for path MTU discovery. */
  readonly packetLen?: number;
  /** Makes later probes this long (after a Fragmentation Needed / Packet Too Big). */
  setPacketLen?(len: number): void;
  /** trace --bpf: the kernel correlates (start and done carry its facts). */
  readonly kernel?: KernelFacts;
  /** Send at most this many probes per turn of the event loop (costly sends). */
  readonly sendChunk?: number;
  /** The engine declared probe `seq` a no-reply: release what it holds. */
  expire?(seq: number): void;
  /**
   * Sends probes seqs[0..n) with TTLs ttls[0..n), calling onSent for each as it leaves. Returns
   * how many were sent: fewer than n when the socket buffer is full (retry later). Throws a
   * PathlensError for a local failure that retrying cannot fix.
   */
  send(seqs: Int32Array, ttls: Int32Array, n: number, onSent: OnSent): number;
  /** Reads every queued reply now (before a timeout is declared); returns how many. */
  drain(): number;
  /** Starts delivering replies; `onReply` gets a reused record, valid only during the call. */
  start(onReply: (r: ReplyRecord) => void, onFatal: (e: Error) => void): void;
  close(): void;
}

/** The optional facts of a transport, read once: the engine never probes them per probe. */
export interface TransportFacts {
  readonly quotesHeader: boolean;
  readonly maxWaitMs: number;
  /** Probes per turn of the event loop (Infinity: a whole window at once). */
  readonly sendChunk: number;
  /** --pmtu is possible (the transport can make its probes smaller). */
  readonly settableLength: boolean;
}

export function factsOf(t: Transport): TransportFacts {
  return {
    quotesHeader: t.quotesHeader === true,
    maxWaitMs: t.maxWaitMs ?? Infinity,
    sendChunk: t.sendChunk ?? Infinity,
    settableLength: typeof t.setPacketLen === 'function',
  };
}
