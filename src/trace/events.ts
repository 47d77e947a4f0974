/**
 * pathlens.trace/1 events. Every line of `--jsonl` output is one of these; the JSON Schema in
 * schema/trace-v1.schema.json describes the same shapes and the tests validate every emitted line
 * against it. Add fields compatibly; a breaking change bumps the schema to pathlens.trace/2.
 */
import { TRACE_SCHEMA } from '../core/schemas.js';
import type { ReplyKind } from '../packet/icmp.js';

/** Where a timestamp came from (see the reply event's send_ts and recv_ts). */
export type TsSource = 'kernel-sw' | 'bpf' | 'userspace';
import type { MplsLabel } from '../packet/icmpext.js';
import type { Egress } from '../io/route.js';

export { TRACE_SCHEMA };

/** How probes are sent (the one list of methods: probers, requests and events use it). */
import type { ProbeMethod } from '../probe/transport.js';
export type { ProbeMethod };
export type TraceSocket = 'dgram' | 'ping' | 'raw' | 'connect';
export type StopReason = 'reached' | 'unreachable' | 'max-ttl' | 'deadline' | 'interrupted' | 'error' | 'silent';

interface Base {
  schema: typeof TRACE_SCHEMA;
  /** Milliseconds since the start event (monotonic clock). */
  t_ms: number;
  /** Several targets in one run (`trace A B C`, `--targets FILE`): the target, as given, this event belongs to. */
  target?: string;
}

export interface StartEvent extends Base {
  type: 'start';
  version: string;
  time: string;
  method: ProbeMethod;
  /** How probes are sent: datagram socket, ICMP datagram (ping) socket, raw socket, or connect(). */
  socket: TraceSocket;
  family: 4 | 6;
  target: string;
  address: string;
  source: string | null;
  src_port: number;
  first_ttl: number;
  max_ttl: number;
  queries: number;
  /** ECMP exploration: flow identities per TTL. */
  flows?: number;
  port: number;
  wait_ms: number;
  adaptive_factor: number;
  max_inflight: number;
  payload_len: number;
  deadline_ms: number | null;
  /** The TOS (IPv4) / traffic class (IPv6) byte the probes carry, when set with --tos. */
  tos: number | null;
  /** Replies report the quoted IP header (quoted_tos, quoted_ttl): raw ICMP sockets only. */
  quote_header: boolean;
  /** The route the kernel chose for the probes (rtnetlink, best effort), or why it is unknown. */
  egress?: Egress | { error: string };
  /** --ecmp auto: the stopping rule's confidence, the flow cap, and whether hop 1 is known single from the route. */
  ecmp?: { mode: 'auto'; confidence: number; max_flows: number; first_hop_single: boolean };
  /** Continuous mode (-c N, --live): rounds asked for (null: until interrupted) and the pause between them. */
  rounds?: number | null;
  interval_ms?: number;
  /**
   * --bpf: how replies are correlated. 'kernel': BPF programs at these netfilter hooks pick out,
   * time and correlate them; 'socket' (--bpf auto when they could not load): the socket's own
   * queues, and why.
   */
  bpf?: { correlation: 'kernel'; hooks: string[]; attached: string[] } | { correlation: 'socket'; why: string };
}

/** Continuous mode: events of one round carry its number (1, 2, ...). */
export interface InRound {
  round?: number;
}

/** Continuous mode: a round ended (every TTL up to where it stopped settled). */
export interface RoundEvent extends Base, Pick<DoneEvent, 'reached' | 'reason' | 'hops' | 'probes_sent' | 'replies' | 'timeouts'> {
  type: 'round';
  round: number;
  /** The round's own source port / echo id (each round has its own socket). */
  src_port: number;
  duration_ms: number;
}

/** Continuous mode: a hop's statistics over the rounds so far (after each round), with mtr's meanings. */
export interface HopStatsEvent extends Base, HopStats {
  type: 'hop-stats';
  round: number;
}

/** Continuous mode: the addresses answering at a TTL are not the ones of the last round it answered in. */
export interface PathChangeEvent extends Base {
  type: 'path-change';
  round: number;
  ttl: number;
  from: string[];
  to: string[];
}

export interface ProbeEvent extends Base, InRound {
  type: 'probe';
  seq: number;
  ttl: number;
  index: number;
  /** Destination port (null for ICMP probes). */
  dst_port: number | null;
  /** ECMP exploration: the flow identity (0..flows-1) this probe carries. */
  flow?: number;
  /** Source port when each probe has its own (TCP connect probes). */
  src_port?: number;
  /** ICMP echo sequence number (ICMP probes). */
  echo_seq?: number;
  /** Sent again after a smaller MTU bounced it (--pmtu). */
  resent?: boolean;
  /** Packet length on the wire, IP header included (--pmtu). */
  len?: number;
  /** Send retries this probe needed after a pending ICMP error failed sendmsg. */
  retries: number;
}

export interface ReplyEvent extends Base, InRound {
  type: 'reply';
  seq: number;
  ttl: number;
  index: number;
  addr: string | null;
  rtt_ms: number;
  kind: ReplyKind;
  code: string;
  icmp_type: number | null;
  icmp_code: number | null;
  /** The probe had already been declared a no-reply: this reply is reported, never counted in the hop. */
  late: boolean;
  /** The kernel's receive timestamp was used (otherwise the userspace receive time). */
  kernel_ts: boolean;
  /**
   * Which clock made each end of rtt_ms (both CLOCK_REALTIME): 'kernel-sw', the kernel's software
   * timestamp (send: when the device took the packet; receive: when the packet arrived), or
   * 'userspace' (send: just before the probe's own sendmsg; receive: when pathlens read it).
   */
  send_ts: TsSource;
  recv_ts: TsSource;
  /** Next-hop MTU reported by the error, when it carries one. */
  mtu?: number;
  /** RFC 4950 MPLS label stack from the error's RFC 4884 extensions, outermost first. */
  mpls?: MplsLabel[];
  /** Interface the reply arrived on (index in the probing namespace), when the kernel reports it. */
  ifindex?: number;
  /** --pmtu: the probe was too big for a link before its TTL; it is sent again, smaller, and this reply is not the hop's. */
  resend?: boolean;
  /**
   * Matched on ports or echo sequence alone: the error quoted too little of the probe to carry
   * its cookie. Counted (real routers do this) but not proven ours.
   */
  unverified?: true;
  /** The TOS / traffic class and TTL / hop limit the probe had when the replying node got it (the quoted IP header; start.quote_header). */
  quoted_tos?: number;
  quoted_ttl?: number;
}

/**
 * --pmtu: where the path MTU drops. ttl 0 is the local route's MTU (the first packet length);
 * otherwise the router at hop `ttl` reported that its next hop takes at most `mtu` bytes.
 * `inferred`: that router never answered at a lower TTL, so its hop is the one before the first
 * probe it bounced.
 */
export interface MtuEvent extends Base, InRound {
  type: 'mtu';
  ttl: number;
  mtu: number;
  addr: string | null;
  inferred: boolean;
}

export interface TimeoutEvent extends Base, InRound {
  type: 'timeout';
  seq: number;
  ttl: number;
  index: number;
  waited_ms: number;
  /** wait: the -w limit; adaptive: overdue against later hops' RTTs; deadline: the trace deadline. */
  reason: 'wait' | 'adaptive' | 'deadline' | 'stopped';
}

export interface HopReply {
  addr: string | null;
  rtt_ms: number;
  kind: ReplyKind;
  code: string;
  index: number;
  /** ECMP exploration: the flow this probe belonged to. */
  flow?: number;
  mpls?: MplsLabel[];
  /** See ReplyEvent.unverified. */
  unverified?: true;
  /** See ReplyEvent.quoted_tos. */
  quoted_tos?: number;
  quoted_ttl?: number;
}

export interface HopEvent extends Base, InRound {
  type: 'hop';
  ttl: number;
  probes: number;
  replies: HopReply[];
  no_reply: number;
  /** Distinct responder addresses at this TTL, in order of first reply. */
  addrs: string[];
  /** ECMP exploration: each responder with the flows that reached it. */
  responders?: { addr: string; flows: number[] }[];
  /**
   * ECMP exploration: k next hops seen over n answered flows; the probability that one more,
   * equally likely next hop would have been missed; and the flows MDA needs for 95% with k seen.
   */
  multipath?: { next_hops: number; flows: number; miss_probability: number; flows_for_95: number } & Partial<EcmpAutoStatement>;
  /** ECMP exploration: the flow of each probe that got no reply (one entry per probe), so that per-branch loss is known. */
  no_reply_flows?: number[];
}

export interface UnmatchedEvent extends Base, InRound {
  type: 'unmatched';
  reason: 'unknown-probe' | 'cookie-mismatch' | 'wrong-destination' | 'duplicate' | 'malformed' | 'unsent';
  addr: string | null;
  detail: string;
}

/**
 * --method auto: the trace so far (start..done) used `from`; the next one (a new start..done)
 * uses `to`. Never silent: every switch is this event, with its reason.
 */
export interface SwitchEvent extends Base {
  type: 'switch';
  from: ProbeMethod;
  to: ProbeMethod;
  reason: string;
}

/**
 * A reverse name for an address seen in replies (on by default in the CLI; -n turns it off). Names
 * come when the resolver answers, independently of hops: a view fills them in as they arrive.
 * status: ok (name set), nxdomain / no-name (the server has none), servfail / refused, timeout,
 * error (detail says why).
 */
export interface NameEvent extends Base {
  type: 'name';
  addr: string;
  name: string | null;
  status: 'ok' | 'nxdomain' | 'no-name' | 'servfail' | 'refused' | 'timeout' | 'error';
  detail?: string;
  server: string;
  cached: boolean;
}

export interface ErrorEvent extends Base {
  type: 'error';
  code: string;
  message: string;
}

export interface DoneEvent extends Base {
  type: 'done';
  reached: boolean;
  reason: StopReason;
  hops: number;
  probes_sent: number;
  replies: number;
  timeouts: number;
  late: number;
  unmatched: number;
  send_retries: number;
  send_calls: number;
  recv_calls: number;
  duration_ms: number;
  /** --pmtu: probes sent again after an MTU drop, and the path MTU found (the last packet length). */
  resent?: number;
  path_mtu?: number | null;
  /** Continuous mode: rounds completed (the counts above are their sums; hops and reached are the last round's). */
  rounds?: number;
  /**
   * --bpf: the kernel's own counts (probes its send hook recorded, replies it matched or not, ring
   * records and probes it had no room for) and each TTL's RTT histogram, counts per log2 bucket of
   * microseconds ([0,1), [1,2), [2,4)...; the first answer of each probe).
   */
  bpf?: { sent: number; matched: number; unmatched: number; ring_full: number; map_full: number; rtt_log2_us: Record<string, number[]> };
}

export type TraceEvent =
  | StartEvent
  | ProbeEvent
  | ReplyEvent
  | TimeoutEvent
  | HopEvent
  | MtuEvent
  | SwitchEvent
  | NameEvent
  | RoundEvent
  | HopStatsEvent
  | PathChangeEvent
  | UnmatchedEvent
  | ErrorEvent
  | DoneEvent
  | SweepStartEvent
  | SweepPathEvent
  | SweepDoneEvent;

/** `trace --xdp`: a sweep of many targets through an AF_XDP socket begins. */
export interface SweepStartEvent extends Base {
  type: 'sweep-start';
  version: string;
  time: string;
  family: 4 | 6;
  /** How many targets, and probes in all (one per target and TTL). */
  targets: number;
  probes: number;
  first_ttl: number;
  max_ttl: number;
  /** Base destination port: the probe at TTL t goes to port + t - 1. */
  port: number;
  src_port: number;
  source: string;
  /** The one next hop every target's route names, and the interface. */
  gateway: string;
  ifindex: number;
  payload_len: number;
  wait_ms: number;
  /** Probes per second asked for (null: as fast as the socket takes them). */
  rate_pps: number | null;
  /** How the XDP program is attached (xdp-native, xdp-generic), how the sockets are bound (copy, zerocopy), on how many queues, ring size. */
  transport: { kind: 'af_xdp'; attached: string; bind: 'copy' | 'zerocopy'; queues: number; ring: number };
  /**
   * How send times are taken: per-probe (--rate: each probe sent by its own system call, timed
   * just before it) or per-batch (full rate: one time for a batch, which leaves within that call:
   * RTTs read high by up to the batch's time on the way out).
   */
  send_stamps: 'per-probe' | 'per-batch';
}

/** One TTL of a swept path: who answered and how (all null: no reply to that probe). */
export interface SweepHop {
  ttl: number;
  addr: string | null;
  rtt_ms: number | null;
  kind: ReplyKind | null;
  code: string | null;
}

/** `trace --xdp`: one target's path, after the sweep. */
export interface SweepPathEvent extends Base {
  type: 'path';
  target: string;
  address: string;
  /**
   * As the default path decides: reached: the target itself answered; unreachable: another
   * address answered with something other than Time Exceeded (a Destination Unreachable);
   * silent: nothing answered beyond the last hop listed (hops stop at the last answer).
   */
  end: 'reached' | 'unreachable' | 'silent';
  /** TTLs from first_ttl to the one that ended the path (silent: to the last that answered). */
  hops: SweepHop[];
}

/** `trace --xdp`: the sweep ended. */
export interface SweepDoneEvent extends Base {
  type: 'sweep-done';
  reason: 'complete' | 'interrupted';
  probes_sent: number;
  /** Replies matched to a probe of this run (first replies only). */
  replies: number;
  /** Frames the program handed over that name no probe of this run (another source, a probe not sent). */
  unmatched: number;
  /** Second and later replies to one probe. */
  duplicates: number;
  targets_reached: number;
  /** From the first probe's send to the last one's, ms; the offered rate over that time. */
  send_ms: number;
  offered_pps: number | null;
  /** sendto() calls that pushed the TX ring out (copy mode: one per small batch); reads of the RX rings (shared memory, no system call). */
  send_calls: number;
  ring_reads: number;
  /** The XDP program's counts (redirected, passed, no_socket) and the sockets' XDP_STATISTICS. */
  kernel: Record<string, number>;
  sockets: Record<string, number>;
}


/** What --ecmp auto adds to a hop's multipath statement. */
export interface EcmpAutoStatement {
  confidence: number;
  /** The stopping rule ended the hop (false: the cap did, or nothing answered). */
  complete: boolean;
  /** The first hop: one answer sufficed, the local route having a single next hop. */
  by_route?: true;
}


/** Per-hop statistics across rounds: the shared path layer's (mtr's meanings, branches, loss verdicts). */
export type { HopStats, BranchStats } from '../path/stats.js';
import type { HopStats } from '../path/stats.js';
