/**
 * From a captured frame to what passive RTT needs: the flow (addresses, ports or echo id,
 * protocol), the TCP flags and timestamp option, or the ICMP echo type and sequence, and the IP
 * length. Link layers: Ethernet with up to two VLAN tags, Linux cooked capture (SLL, SLL2), raw
 * IP (tun, PPP without header), BSD loopback, and L3 packets with a known EtherType (AF_PACKET
 * SOCK_DGRAM). Zero allocation: one reused PacketInfo; addresses stay in the frame's buffer.
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../core/constants.js';
import { IpView, parseIpHeader } from '../packet/ip.js';
import { OK } from '../packet/status.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpView, parseTcpHeader } from '../packet/tcp.js';

/** pcap LINKTYPE_* values understood here (plus L3_ETHERTYPE for AF_PACKET SOCK_DGRAM). */
export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;
/** Not a pcap value: the frame is an L3 packet and `ethertype` says which. */
export const L3_ETHERTYPE = -1;

export function linktypeSupported(lt: number): boolean {
  return lt === LINKTYPE_NULL || lt === LINKTYPE_ETHERNET || lt === LINKTYPE_RAW || lt === 14 || lt === LINKTYPE_LINUX_SLL || lt === LINKTYPE_LINUX_SLL2 || lt === LINKTYPE_IPV4 || lt === LINKTYPE_IPV6;
}

const ETH_P_IP = 0x0800;
/** Linux packet type of a frame the host sent (SLL, SLL2). */
const PACKET_OUTGOING = 4;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;

export const ICMP_ECHO_REQUEST = 1;
export const ICMP_ECHO_REPLY = 2;

/** Why a frame gives no flow (counted per reason by the reader). */
export const SKIP_NOT_IP = 1;
export const SKIP_PROTO = 2;
export const SKIP_MALFORMED = 3;
export const SKIP_FRAGMENT = 4;

export const DNS_PORT = 53;
export const DNS_QUERY = 1;
export const DNS_RESPONSE = 2;
/** QUIC ports measured by default with --quic (servers listen there; the other end is the client). */
export const QUIC_DEFAULT_PORTS: readonly number[] = [443, 4433, 8443];
/** At most this many QUIC ports (the BPF programs' configuration holds four). */
export const QUIC_MAX_PORTS = 4;
/**
 * Least UDP payload of a QUIC short-header packet: the first byte, a packet number and its
 * 16-byte AEAD tag, plus the 4 bytes header protection samples past the packet number
 * (RFC 9001 §5.4.2): anything shorter is no 1-RTT packet.
 */
export const QUIC_SHORT_MIN = 21;
/** PacketInfo.quic: a short-header (1-RTT) packet, or a long header from the server (the handshake). */
export const QUIC_SHORT = 1;
export const QUIC_LONG = 2;
/** Longest connection id (RFC 9000 §17.2: version 1 allows 20 bytes). */
export const QUIC_CID_MAX = 20;
/** Bytes of a DNS question the identifier hashes at most (a name is at most 255). */
const DNS_QUESTION_MAX = 260;

/**
 * A DNS message's identifier, or -1 when it has none to give: the transaction id in the high 16
 * bits and a 16-bit FNV-1a hash of its question (name, type, class: what the response repeats)
 * in the low 16. The message must be a query (QR clear, `kind` DNS_QUERY) or a response (QR set)
 * with exactly one question, whole in the captured bytes. bpf/pping.bpf.c computes the same.
 */
export function dnsIdOf(b: Uint8Array, off: number, len: number, kind: number): number {
  if (len < 12) return -1;
  const qr = (b[off + 2] & 0x80) !== 0;
  if (qr !== (kind === DNS_RESPONSE)) return -1;
  if (b[off + 4] !== 0 || b[off + 5] !== 1) return -1;
  // The name: labels up to the root label (no compression in a question's first name).
  let i = 12;
  for (let n = 0; ; n++) {
    if (n >= 128 || i >= len) return -1;
    const l = b[off + i];
    if (l === 0) break;
    if (l & 0xc0) return -1;
    i += l + 1;
  }
  const qend = i + 1 + 4;
  if (qend > len || qend - 12 > DNS_QUESTION_MAX) return -1;
  let h = 0x811c9dc5;
  for (let k = off + 12; k < off + qend; k++) h = Math.imul(h ^ b[k], 0x01000193);
  h >>>= 0;
  return ((((b[off] << 8) | b[off + 1]) << 16) | ((h ^ (h >>> 16)) & 0xffff)) >>> 0;
}

export class PacketInfo {
  family: 4 | 6 = 4;
  /** The frame's bytes; addresses at srcOff/dstOff (4 or 16 bytes). */
  bytes: Uint8Array = new Uint8Array(0);
  srcOff = 0;
  dstOff = 0;
  proto = 0;
  /** TCP ports; for ICMP echo both are the echo id. */
  srcPort = 0;
  dstPort = 0;
  /** IP length as the header states it (what counts as the packet's bytes). */
  ipLen = 0;
  tcpFlags = 0;
  /** TCP payload bytes as the headers state them (whatever the capture kept). */
  tcpPayload = 0;
  /**
   * Bytes after the transport header (TCP header with options, or the 8-byte ICMP echo header)
   * as the IP header states them: what ePPing counts as a packet's payload.
   */
  payload = 0;
  hasTs = false;
  tsval = 0;
  tsecr = 0;
  /** TCP sequence and acknowledgment numbers. */
  seq = 0;
  ackNum = 0;
  /** ICMP_ECHO_REQUEST or ICMP_ECHO_REPLY (0 for TCP). */
  echo = 0;
  echoSeq = 0;
  /** DNS over UDP (Decoder.dns): DNS_QUERY or DNS_RESPONSE, and its identifier (dnsIdOf). */
  dns = 0;
  dnsId = 0;
  /**
   * QUIC (Decoder.quicPorts): 1 when the datagram starts with a short-header (1-RTT) packet, whose
   * latency spin bit (RFC 9000 §17.4) is `spin`; `fromServer` when its source port is the QUIC
   * port (the lower one when both are).
   */
  quic = 0;
  spin = 0;
  fromServer = false;
  /**
   * QUIC connection ids. A short header (quic 1): `cidOff` is where its destination connection id
   * starts in `bytes` and `cidLen` how many of its bytes the capture holds (at most
   * QUIC_CID_MAX); the id's length is not in the packet (quic.ts learns it). A long header from
   * the server (quic 2, QUIC_LONG): `cidLen` is its source connection id's length, the length of
   * the ids the server chose for itself.
   */
  cidOff = 0;
  cidLen = 0;
  /** Direction the link layer records (Linux cooked captures): 1 outgoing, 0 incoming, -1 unknown. */
  linkOut = -1;
  /**
   * The flow's hash (tables.ts flowHash) when whoever decoded the packet computed it already (the
   * reading thread of offline-feed.ts), else -1. The Decoder never sets it.
   */
  hash = -1;
  /**
   * `bytes` as 32-bit words in tables.ts word()'s order, when the addresses are aligned in it
   * (the reading thread's records, on a little-endian machine), else null. The Decoder never sets it.
   */
  words: Int32Array | null = null;

  get syn(): boolean {
    return (this.tcpFlags & TCP_SYN) !== 0;
  }
  get ack(): boolean {
    return (this.tcpFlags & TCP_ACK) !== 0;
  }
  get fin(): boolean {
    return (this.tcpFlags & TCP_FIN) !== 0;
  }
  get rst(): boolean {
    return (this.tcpFlags & TCP_RST) !== 0;
  }
}

export class Decoder {
  private readonly ip = new IpView();
  private readonly tcp = new TcpView();
  /** Decode DNS over UDP (port 53); otherwise UDP is another protocol, skipped. */
  dns = false;
  /** Decode QUIC short headers on these UDP ports (empty: QUIC is another protocol). */
  quicPorts: readonly number[] = [];

  /**
   * Decodes frame bytes[off, off+len) of link type `linktype` (for L3_ETHERTYPE, `ethertype`
   * names the L3 protocol). Returns 0 with `out` filled, or a SKIP_* reason.
   */
  decode(bytes: Uint8Array, off: number, len: number, linktype: number, ethertype: number, out: PacketInfo): number {
    if (off < 0 || len < 0 || off + len > bytes.length) return SKIP_MALFORMED;
    const end = off + len;
    let p = off;
    let et = -1;
    out.linkOut = -1;
    switch (linktype) {
      case LINKTYPE_ETHERNET:
        if (len < 14) return SKIP_MALFORMED;
        et = (bytes[p + 12] << 8) | bytes[p + 13];
        p += 14;
        break;
      case LINKTYPE_LINUX_SLL:
        if (len < 16) return SKIP_MALFORMED;
        et = (bytes[p + 14] << 8) | bytes[p + 15];
        out.linkOut = ((bytes[p] << 8) | bytes[p + 1]) === PACKET_OUTGOING ? 1 : 0;
        p += 16;
        break;
      case LINKTYPE_LINUX_SLL2:
        if (len < 20) return SKIP_MALFORMED;
        et = (bytes[p] << 8) | bytes[p + 1];
        out.linkOut = bytes[p + 10] === PACKET_OUTGOING ? 1 : 0;
        p += 20;
        break;
      case LINKTYPE_NULL: {
        if (len < 4) return SKIP_MALFORMED;
        // The BSD address family in the capturing host's byte order: 2 is IPv4; 10, 24, 28, 30 IPv6.
        const le = bytes[p] | (bytes[p + 1] << 8);
        const be = (bytes[p + 2] << 8) | bytes[p + 3];
        const af = le !== 0 ? le : be;
        et = af === 2 ? ETH_P_IP : af === 10 || af === 24 || af === 28 || af === 30 ? ETH_P_IPV6 : 0;
        p += 4;
        break;
      }
      case LINKTYPE_RAW:
      case 14: // LINKTYPE_RAW on some systems (DLT_RAW = 14 on OpenBSD)
        if (len < 1) return SKIP_MALFORMED;
        et = bytes[p] >> 4 === 6 ? ETH_P_IPV6 : ETH_P_IP;
        break;
      case LINKTYPE_IPV4:
        et = ETH_P_IP;
        break;
      case LINKTYPE_IPV6:
        et = ETH_P_IPV6;
        break;
      case L3_ETHERTYPE:
        et = ethertype;
        break;
      default:
        return SKIP_NOT_IP;
    }
    // VLAN tags (802.1Q, 802.1ad), up to two.
    for (let i = 0; i < 2 && (et === ETH_P_8021Q || et === ETH_P_8021AD); i++) {
      if (end - p < 4) return SKIP_MALFORMED;
      et = (bytes[p + 2] << 8) | bytes[p + 3];
      p += 4;
    }
    if (et !== ETH_P_IP && et !== ETH_P_IPV6) return SKIP_NOT_IP;
    const ip = this.ip;
    // A capture may keep only the first bytes (snaplen): the headers must be whole, not the payload.
    if (parseIpHeader(bytes, p, end - p, ip, true) !== OK) return SKIP_MALFORMED;
    if ((et === ETH_P_IP) !== (ip.version === 4)) return SKIP_MALFORMED;
    if (ip.laterFragment) return SKIP_FRAGMENT;
    out.family = ip.version === 6 ? 6 : 4;
    out.bytes = bytes;
    out.srcOff = ip.srcOff;
    out.dstOff = ip.dstOff;
    out.proto = ip.proto;
    out.ipLen = ip.totalLen;
    out.tcpFlags = 0;
    out.tcpPayload = 0;
    out.payload = 0;
    out.hasTs = false;
    out.echo = 0;
    out.dns = 0;
    out.quic = 0;
    const l4 = ip.payloadOff;
    const avail = end - l4;
    if (ip.proto === IPPROTO_UDP) {
      if (!this.dns && this.quicPorts.length === 0) return SKIP_PROTO;
      if (avail < 8) return SKIP_MALFORMED;
      const sp = (bytes[l4] << 8) | bytes[l4 + 1];
      const dp = (bytes[l4 + 2] << 8) | bytes[l4 + 3];
      out.srcPort = sp;
      out.dstPort = dp;
      out.payload = Math.max(0, ip.totalLen - ip.headerLen - 8);
      if (this.dns && (dp === DNS_PORT || sp === DNS_PORT)) {
        const kind = dp === DNS_PORT ? DNS_QUERY : DNS_RESPONSE;
        // A query goes to port 53 with QR clear; a response comes from it with QR set. One question.
        const id = dnsIdOf(bytes, l4 + 8, avail - 8, kind);
        if (id < 0) return SKIP_PROTO;
        out.dns = kind;
        out.dnsId = id;
        return 0;
      }
      const qs = this.quicPorts.includes(sp);
      const qd = this.quicPorts.includes(dp);
      if (!qs && !qd) return SKIP_PROTO;
      if (avail < 9) return SKIP_PROTO;
      const first = bytes[l4 + 8];
      out.fromServer = qs && (!qd || sp < dp);
      if (first & 0x80) {
        // A long header (the handshake) has no spin bit; the server's tell the length of the
        // connection ids it chose: its source connection id (RFC 9000 §17.2). Version 0 is version
        // negotiation, whose ids are the client's.
        const h = l4 + 8;
        if (!out.fromServer || avail < 15 || (bytes[h + 1] | bytes[h + 2] | bytes[h + 3] | bytes[h + 4]) === 0) return SKIP_PROTO;
        const dcl = bytes[h + 5];
        if (dcl > QUIC_CID_MAX || avail < 8 + 6 + dcl + 1) return SKIP_PROTO;
        const scl = bytes[h + 6 + dcl];
        if (scl > QUIC_CID_MAX) return SKIP_PROTO;
        out.quic = QUIC_LONG;
        out.cidLen = scl;
        return 0;
      }
      // A short header: form bit clear, fixed bit set. Datagrams that start with a long header
      // carry no spin bit to use, even when a 1-RTT packet is coalesced after.
      if (out.payload < QUIC_SHORT_MIN || (first & 0x40) === 0) return SKIP_PROTO;
      out.quic = QUIC_SHORT;
      out.spin = (first >> 5) & 1;
      out.cidOff = l4 + 9;
      out.cidLen = Math.min(QUIC_CID_MAX, avail - 9);
      return 0;
    }
    if (ip.proto === IPPROTO_TCP) {
      const t = this.tcp;
      if (parseTcpHeader(bytes, l4, avail, t, true) !== OK || avail < 20) return SKIP_MALFORMED;
      out.srcPort = t.srcPort;
      out.dstPort = t.dstPort;
      out.tcpFlags = t.flags;
      const hl = t.headerLen > 0 ? t.headerLen : (bytes[l4 + 12] >> 4) * 4;
      out.tcpPayload = Math.max(0, ip.totalLen - ip.headerLen - hl);
      out.payload = out.tcpPayload;
      out.hasTs = t.hasTimestamp;
      out.tsval = t.tsval;
      out.tsecr = t.tsecr;
      out.seq = t.seq;
      out.ackNum = t.ack;
      return 0;
    }
    const v6 = ip.version === 6;
    if (ip.proto === (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP)) {
      if (avail < 8) return SKIP_MALFORMED;
      const type = bytes[l4];
      if (type === (v6 ? 128 : 8)) out.echo = ICMP_ECHO_REQUEST;
      else if (type === (v6 ? 129 : 0)) out.echo = ICMP_ECHO_REPLY;
      else return SKIP_PROTO;
      if (bytes[l4 + 1] !== 0) return SKIP_MALFORMED;
      out.srcPort = out.dstPort = (bytes[l4 + 4] << 8) | bytes[l4 + 5];
      out.echoSeq = (bytes[l4 + 6] << 8) | bytes[l4 + 7];
      out.payload = Math.max(0, ip.totalLen - ip.headerLen - 8);
      return 0;
    }
    return SKIP_PROTO;
  }
}

/** Both ends of the packet are the same address and port (or echo id). */
export function isSelf(p: PacketInfo): boolean {
  if (p.srcPort !== p.dstPort) return false;
  const n = p.family === 4 ? 4 : 16;
  for (let i = 0; i < n; i++) if (p.bytes[p.srcOff + i] !== p.bytes[p.dstOff + i]) return false;
  return true;
}

/** A loopback address (127/8, ::1) at b[off]. */
export function isLoopback(b: Uint8Array, off: number, family: 4 | 6): boolean {
  if (family === 4) return b[off] === 127;
  for (let i = 0; i < 15; i++) if (b[off + i] !== 0) return false;
  return b[off + 15] === 1;
}
