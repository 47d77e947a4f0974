/**
 * The trace's events, built in one place: what each event says and which fields are there only
 * sometimes (flows, resends, packet length, the transport's own per-probe facts, kernel stamps,
 * MPLS, quoted headers, unverified matches). The engine says what happened; this says it in
 * pathlens.trace/1.
 */
import { formatIp } from '../packet/addr.js';
import type { ReplyRecord, Transport, TransportStats } from '../probe/transport.js';
import type { EngineOptions } from './request.js';
import {
  type DoneEvent,
  type EcmpAutoStatement,
  type HopEvent,
  type HopReply,
  type ProbeEvent,
  type ReplyEvent,
  type StartEvent,
  type StopReason,
  TRACE_SCHEMA,
  type TimeoutEvent,
  type UnmatchedEvent,
} from './events.js';
import { flowOf, multipath } from './flows.js';

export class TraceEvents {
  constructor(
    private readonly o: EngineOptions,
    private readonly t: Transport,
    private readonly perTtl: number,
    private readonly flows: number,
  ) {}

  start(waitMs: number, ecmp: StartEvent['ecmp'] | undefined): StartEvent {
    const o = this.o;
    const t = this.t;
    return {
      schema: TRACE_SCHEMA,
      type: 'start',
      t_ms: 0,
      version: o.version,
      time: new Date().toISOString(),
      method: t.method,
      socket: t.socketKind,
      family: t.family,
      target: o.target,
      address: formatIp(o.address, 0, t.family),
      source: t.source,
      src_port: t.srcPort,
      first_ttl: o.firstTtl,
      max_ttl: o.maxTtl,
      queries: o.queries,
      ...(this.flows > 1 ? { flows: this.flows } : {}),
      port: o.basePort,
      wait_ms: waitMs,
      adaptive_factor: o.adaptiveFactor,
      max_inflight: o.maxInflight,
      payload_len: o.payloadLen,
      deadline_ms: o.deadlineMs > 0 ? o.deadlineMs : null,
      tos: o.tos ?? null,
      quote_header: t.quotesHeader === true,
      ...(o.egress ? { egress: o.egress } : {}),
      ...(ecmp ? { ecmp } : {}),
      ...(t.kernel ? { bpf: t.kernel.start as StartEvent['bpf'] } : o.bpfWhy ? { bpf: { correlation: 'socket' as const, why: o.bpfWhy } } : {}),
    };
  }

  probe(tMs: number, seq: number, ttl: number, again: boolean, retries: number): ProbeEvent {
    const t = this.t;
    return {
      schema: TRACE_SCHEMA,
      type: 'probe',
      t_ms: tMs,
      seq,
      ttl,
      index: seq % this.perTtl,
      dst_port: t.dstPort(seq),
      ...(this.flows > 1 ? { flow: flowOf(seq, this.perTtl, this.flows) } : {}),
      ...(again ? { resent: true } : {}),
      ...(this.o.pmtu && t.packetLen !== undefined ? { len: t.packetLen } : {}),
      ...(t.srcPortOf ? { src_port: t.srcPortOf(seq) } : {}),
      ...(t.echoSeqOf ? { echo_seq: t.echoSeqOf(seq) } : {}),
      retries,
    };
  }

  reply(tMs: number, seq: number, ttl: number, addr: string | null, rtt: number, r: ReplyRecord, kernelSent: boolean, late: boolean, resend: boolean): ReplyEvent {
    return {
      schema: TRACE_SCHEMA,
      type: 'reply',
      t_ms: tMs,
      seq,
      ttl,
      index: seq % this.perTtl,
      addr,
      rtt_ms: rtt,
      kind: r.kind,
      code: r.code,
      icmp_type: r.icmpType >= 0 ? r.icmpType : null,
      icmp_code: r.icmpCode >= 0 ? r.icmpCode : null,
      late,
      kernel_ts: r.kernelTs,
      send_ts: kernelSent ? (r.bpfTimes ? 'bpf' : 'kernel-sw') : 'userspace',
      recv_ts: r.kernelTs ? (r.recvBpf ? 'bpf' : 'kernel-sw') : 'userspace',
      ...(r.mtu > 0 ? { mtu: r.mtu } : {}),
      ...(r.mpls ? { mpls: r.mpls } : {}),
      ...(r.ifindex > 0 ? { ifindex: r.ifindex } : {}),
      ...(r.quotedTos >= 0 ? { quoted_tos: r.quotedTos, quoted_ttl: r.quotedTtl } : {}),
      ...(resend ? { resend: true } : {}),
      ...(r.unverified ? { unverified: true as const } : {}),
    };
  }

  /** A reply as its hop keeps it. */
  hopReply(seq: number, addr: string | null, rtt: number, r: ReplyRecord): HopReply {
    return {
      addr,
      rtt_ms: rtt,
      kind: r.kind,
      code: r.code,
      index: seq % this.perTtl,
      ...(this.flows > 1 ? { flow: flowOf(seq, this.perTtl, this.flows) } : {}),
      ...(r.mpls ? { mpls: r.mpls } : {}),
      ...(r.unverified ? { unverified: true as const } : {}),
      ...(r.quotedTos >= 0 ? { quoted_tos: r.quotedTos, quoted_ttl: r.quotedTtl } : {}),
    };
  }

  unmatched(tMs: number, reason: UnmatchedEvent['reason'], addr: string | null, detail: string): UnmatchedEvent {
    return { schema: TRACE_SCHEMA, type: 'unmatched', t_ms: tMs, reason, addr, detail };
  }

  timeout(tMs: number, seq: number, ttl: number, waitedMs: number, reason: TimeoutEvent['reason']): TimeoutEvent {
    return { schema: TRACE_SCHEMA, type: 'timeout', t_ms: tMs, seq, ttl, index: seq % this.perTtl, waited_ms: waitedMs, reason };
  }

  /** The flow of probe `seq` when probes carry several (null otherwise). */
  flowOf(seq: number): number | null {
    return this.flows > 1 ? flowOf(seq, this.perTtl, this.flows) : null;
  }

  hop(tMs: number, ttl: number, probes: number, replies: HopReply[], addrs: string[], statement: EcmpAutoStatement | undefined, noReplyFlows?: number[]): HopEvent {
    return {
      schema: TRACE_SCHEMA,
      type: 'hop',
      t_ms: tMs,
      ttl,
      probes,
      replies,
      no_reply: probes - replies.length,
      addrs,
      ...(this.flows > 1 ? multipath(replies, addrs, statement) : {}),
      ...(noReplyFlows ? { no_reply_flows: noReplyFlows } : {}),
    };
  }

  done(tMs: number, reached: boolean, reason: StopReason, hops: number, counts: { sent: number; replies: number; timeouts: number; late: number; unmatched: number }, st: TransportStats, pmtu: { resent: number; path_mtu: number | null } | null): DoneEvent {
    return {
      schema: TRACE_SCHEMA,
      type: 'done',
      t_ms: tMs,
      reached,
      reason,
      hops,
      probes_sent: counts.sent,
      replies: counts.replies,
      timeouts: counts.timeouts,
      late: counts.late,
      unmatched: counts.unmatched,
      send_retries: st.retries,
      send_calls: st.sendCalls,
      recv_calls: st.recvCalls,
      duration_ms: tMs,
      ...(pmtu ? pmtu : {}),
      ...(this.t.kernel?.done() ? { bpf: this.t.kernel.done() as DoneEvent['bpf'] } : {}),
    };
  }
}
