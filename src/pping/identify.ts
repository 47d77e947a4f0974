/**
 * What a packet identifies, before any rule runs (ePPing's `protocol_info`): the identifier it may
 * be timestamped by, the identifier it echoes, whether each is usable, whether its direction's
 * first identifier is only an edge to wait for, whether it closes its flow and why its direction
 * opens, and how "new" is judged for its protocol. One function per protocol fills a PacketIds;
 * the rules (matcher.ts) read only the record. bpf/pping.bpf.c has the same functions with the same
 * names filling the same record (struct pping_ids in bpf/pping.h), and
 * test/netns/pping-bpf-diff.test.ts replays random packets of each identifier through both.
 *
 * A new protocol is one function here, one in C, one line in each dispatch, and one generator in
 * the differential test.
 */
import { IPPROTO_TCP, IPPROTO_UDP } from '../core/constants.js';
import { DNS_QUERY, DNS_RESPONSE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, type PacketInfo } from './decode.js';

/** Flow reasons by code (the same codes as enum pping_reason in bpf/pping.h). */
export const R_SYN = 1;
export const R_SYN_ACK = 2;
export const R_FIRST = 3;
export const R_FIN = 4;
export const R_RST = 5;

/** How "new" is judged (enum pping_newness): wrap-safe later (TCP TSval), or merely different (echo sequence). */
export const NEWER_WRAP = 0;
export const NEWER_DIFFERENT = 1;

/** Which identifier made a sample (enum pping_rule), as RTT events name it in `match`. */
export const RULE_TSOPT = 0;
export const RULE_SEQACK = 1;
export const RULE_ECHO = 2;
export const RULE_DNS = 3;
export const RULE_SPIN = 4;
export const RULE_NAMES = ['tsopt', 'seqack', 'icmp-echo', 'dns', 'quic-spin'] as const;
export type RuleName = (typeof RULE_NAMES)[number];

/** struct pping_ids */
export class PacketIds {
  /** The identifier it may be timestamped by (TSval, echo request sequence). */
  id = 0;
  /** The identifier it echoes (TSecr, echo reply sequence). */
  echoed = 0;
  /** It can be timestamped (TCP: carries data or is a SYN; an echo request). */
  idValid = false;
  /** It can match (an ACK; an echo reply). */
  echoValid = false;
  /** Its direction's first identifier is only an edge to wait for (TCP, not a SYN; QUIC spin). */
  waitEdge = false;
  /** It can match only when its identifier differs from its direction's last one (a spin edge). */
  echoOnEdge = false;
  /** R_FIN, R_RST or 0. */
  closing = 0;
  /** Why its direction opens, if it opens it: R_SYN, R_SYN_ACK or R_FIRST. */
  openReason = R_FIRST;
  newer = NEWER_WRAP;
  /** RULE_TSOPT, RULE_SEQACK or RULE_ECHO. */
  rule = RULE_TSOPT;
}

/** The options an identifier reads (whether a protocol is measured at all is decided before). */
export interface IdentifyOptions {
  includeSyn: boolean;
  /** TCP without the timestamp option: SEQ/ACK matching (off: ePPing's rules, no identifier). */
  seqAck: boolean;
}

/** Fills `out` for a packet of its protocol; false when the rules have nothing to use in it. */
export type Identifier = (p: PacketInfo, o: IdentifyOptions, out: PacketIds) => boolean;

/** TCP by its timestamp option: TSval is the identifier, TSecr the echo (RFC 7323). */
export function identifyTcpTs(p: PacketInfo, o: IdentifyOptions, out: PacketIds): boolean {
  // Without the option there is no identifier; SYNs are left out unless asked for.
  if (!p.hasTs || (p.syn && !o.includeSyn)) return false;
  out.id = p.tsval;
  out.echoed = p.tsecr;
  out.idValid = p.payload > 0 || p.syn;
  out.echoValid = p.ack;
  out.waitEdge = !p.syn;
  out.echoOnEdge = false;
  out.closing = p.rst ? R_RST : p.fin ? R_FIN : 0;
  out.openReason = p.syn ? (p.ack ? R_SYN_ACK : R_SYN) : R_FIRST;
  out.newer = NEWER_WRAP;
  out.rule = RULE_TSOPT;
  return true;
}

/**
 * TCP without the timestamp option, by sequence numbers: a segment's identifier is the
 * acknowledgment number that covers it exactly (SEQ + its length, SYN and FIN counting one), an
 * ACK echoes its acknowledgment number. A segment that is not new (a retransmission, or data
 * reordered before the capture point) is never timestamped, and the matcher then takes no sample
 * for anything it had sent up to there (Karn's rule): an ACK after a retransmission says nothing
 * about when the first copy arrived. Every segment has an identifier of its own: no edge to wait for.
 */
export function identifyTcpSeqAck(p: PacketInfo, o: IdentifyOptions, out: PacketIds): boolean {
  if (p.syn && !o.includeSyn) return false;
  out.id = (p.seq + p.payload + (p.syn ? 1 : 0) + (p.fin ? 1 : 0)) >>> 0;
  out.echoed = p.ackNum;
  out.idValid = p.payload > 0 || p.syn;
  out.echoValid = p.ack;
  out.waitEdge = false;
  out.echoOnEdge = false;
  out.closing = p.rst ? R_RST : p.fin ? R_FIN : 0;
  out.openReason = p.syn ? (p.ack ? R_SYN_ACK : R_SYN) : R_FIRST;
  out.newer = NEWER_WRAP;
  out.rule = RULE_SEQACK;
  return true;
}

/** ICMP and ICMPv6 echo: the request's sequence is the identifier, the reply's the echo. */
export function identifyIcmpEcho(p: PacketInfo, _o: IdentifyOptions, out: PacketIds): boolean {
  out.id = out.echoed = p.echoSeq;
  out.idValid = p.echo === ICMP_ECHO_REQUEST;
  out.echoValid = p.echo === ICMP_ECHO_REPLY;
  out.waitEdge = false;
  out.echoOnEdge = false;
  out.closing = 0;
  out.openReason = R_FIRST;
  out.newer = NEWER_DIFFERENT;
  out.rule = RULE_ECHO;
  return true;
}

/**
 * DNS over UDP: a query's transaction id and question (hashed) is the identifier, the response's
 * the echo. A query sent again (the same id and question) is not timestamped again, and the first
 * copy's timestamp is dropped (matcher.ts): its answer says nothing about when the first one left.
 */
export function identifyDns(p: PacketInfo, _o: IdentifyOptions, out: PacketIds): boolean {
  out.id = out.echoed = p.dnsId;
  out.idValid = p.dns === DNS_QUERY;
  out.echoValid = p.dns === DNS_RESPONSE;
  out.waitEdge = false;
  out.echoOnEdge = false;
  out.closing = 0;
  out.openReason = R_FIRST;
  out.newer = NEWER_DIFFERENT;
  out.rule = RULE_DNS;
  return true;
}

/**
 * QUIC by the latency spin bit (RFC 9000 §17.4) of short-header packets: the server sends the
 * value it last received, the client the opposite of what it last received, so the value turns
 * over once a round trip. Each direction's edges (a change of value) are its identifiers: the
 * value it turned to; the first value seen is only an edge to wait for. An edge also echoes the
 * other direction's last edge: a server's edge to v answers the client's edge to v, a client's
 * edge to v the server's edge to the opposite value. Packets that are not an edge match nothing.
 * The sample is the time between the two edges at the capture point: from the server's edge, the
 * RTT towards the server; from the client's, towards the client (together, the connection's).
 */
export function identifyQuicSpin(p: PacketInfo, _o: IdentifyOptions, out: PacketIds): boolean {
  out.id = p.spin;
  out.echoed = p.fromServer ? p.spin : p.spin ^ 1;
  out.idValid = true;
  out.echoValid = true;
  out.waitEdge = true;
  out.echoOnEdge = true;
  out.closing = 0;
  out.openReason = R_FIRST;
  out.newer = NEWER_DIFFERENT;
  out.rule = RULE_SPIN;
  return true;
}

/** The identifiers by name, in the order the dispatch tries them. */
export const IDENTIFIERS: { readonly [name: string]: Identifier } & { readonly 'tcp-ts': Identifier; readonly 'tcp-seqack': Identifier; readonly 'icmp-echo': Identifier; readonly dns: Identifier; readonly 'quic-spin': Identifier } = {
  'tcp-ts': identifyTcpTs,
  'tcp-seqack': identifyTcpSeqAck,
  'icmp-echo': identifyIcmpEcho,
  dns: identifyDns,
  'quic-spin': identifyQuicSpin,
};
export type IdentifierName = 'tcp-ts' | 'tcp-seqack' | 'icmp-echo' | 'dns' | 'quic-spin';

/**
 * The packet's identifier by its protocol (the decoder has passed only TCP, ICMP echo, DNS and
 * QUIC short headers): TCP by its timestamp option, or without one by SEQ/ACK when asked.
 */
export function identify(p: PacketInfo, o: IdentifyOptions, out: PacketIds): boolean {
  if (p.proto === IPPROTO_UDP) return p.quic ? identifyQuicSpin(p, o, out) : identifyDns(p, o, out);
  if (p.proto !== IPPROTO_TCP) return identifyIcmpEcho(p, o, out);
  return p.hasTs || !o.seqAck ? identifyTcpTs(p, o, out) : identifyTcpSeqAck(p, o, out);
}

/** Whether identifier `id` is new after `last`, as `newer` judges. */
export function isNewer(newer: number, id: number, last: number): boolean {
  return newer === NEWER_WRAP ? ((id - last) | 0) > 0 : id !== last;
}
