/**
 * Events of `pathlens ktrace` (schema pathlens.ktrace/1, schema/ktrace-v1.schema.json).
 * Stage times are ns after the trip's first stage (kernel monotonic clock); `t_ms` is ms since
 * the run started.
 */
import { KTRACE_SCHEMA } from '../core/schemas.js';
import type { HookKind } from './stages.js';

export { KTRACE_SCHEMA };

interface Base {
  schema: typeof KTRACE_SCHEMA;
  t_ms: number;
}

export interface StagePlan {
  name: string;
  path: 'out' | 'in';
  /** The hook used ("netfilter LOCAL_OUT"), or null when none could be attached. */
  hook: string | null;
  /** Measured at the same point as this stage (the two collapse onto one hook). */
  same_as?: string;
  /** Better hooks that were not used, and why. */
  refused: { hook: string; reason: string }[];
}

export interface KtraceStartEvent extends Base {
  type: 'start';
  version: string;
  time: string;
  direction: 'tx' | 'rx';
  /** The stage profile (--profile): a shipped one's name, or the file's. */
  profile: string;
  /** echo: ICMP echo round trips; packet: each TCP or UDP packet of the flow on its own path (--proto). */
  mode: 'echo' | 'packet';
  /** Packet mode: the transport and the port either end uses (null: any). */
  proto: 'udp' | 'tcp' | null;
  port: number | null;
  family: 4 | 6;
  src: string;
  dst: string;
  netns: string | null;
  iface: string | null;
  /** Each stage in path order (the first path, then the second). */
  stages: StagePlan[];
  /** What each kind of hook can do on this kernel: "available" or why not. */
  hooks: Record<HookKind, string>;
  /** Where drops are learned (kfree_skb), or null. */
  drops: string | null;
}

export interface StageTime {
  name: string;
  hook: string;
  /** ns after the trip's first stage. */
  t_ns: number;
  /**
   * --stacks, at tracing hooks only (netfilter and tc programs cannot take one): the kernel stack
   * when this stage saw the packet, innermost frame first, as "function+0xoffset"; null when
   * the kernel could not take it (its stack map full).
   */
  stack?: string[] | null;
}

export interface KtraceRttEvent extends Base {
  type: 'rtt';
  id: number;
  seq: number;
  /** The stages reached, in path order. */
  stages: StageTime[];
  /** From the first stage to the last. */
  total_ns: number;
  /** TX: from the request's last stage out to the reply's first stage in: the wire and the far end (RX: null). */
  wire_ns: number | null;
  /** RX: from the request's last stage in to the reply's first stage out: this host answering (TX: null). */
  answer_ns: number | null;
  /**
   * TX, with the socket stages: from the reply queued on the pinging socket (sk_data_ready, its
   * reader woken) to the reader copying it out (sk_read): wakeup and scheduling, which ping's own
   * RTT (the kernel's receive stamp) leaves out; null without both stages.
   */
  wakeup_ns: number | null;
  /** TX: the process that sent the request (seen in its context); null in RX mode. */
  pid: number | null;
  comm: string | null;
  ifindex_out: number | null;
  ifindex_in: number | null;
}

export interface KtraceIncompleteEvent extends Base {
  type: 'incomplete';
  id: number;
  seq: number;
  stages: StageTime[];
  /** The last stage reached. */
  last_stage: string | null;
  /** The kernel dropped the request or the reply, with kfree_skb's reason. */
  dropped: 'request' | 'reply' | null;
  drop_reason: string | null;
  /** Why it is reported: no reply within the timeout, or the run ended. */
  why: 'timeout' | 'stopped';
}

/**
 * Packet mode (--proto): one TCP or UDP packet of the flow on its path through this host (`dir`
 * out: leaving it; in: arriving), stage by stage. `end` says how its path ended: `complete` at the
 * path's last stage; `dropped` by the kernel (kfree_skb, with the reason); `reused` when its
 * buffer carried another packet through the path's first stage before this one reached the end
 * (a TCP ACK the stack consumed, for one); `timeout` or `stopped` when it was still on its way.
 */
export interface KtracePacketEvent extends Base {
  type: 'packet';
  dir: 'out' | 'in';
  proto: 'udp' | 'tcp';
  /** As on the wire. */
  src: string;
  sport: number;
  dst: string;
  dport: number;
  /** The IP packet's length. */
  len: number;
  /** TCP: the sequence number and flags (as "SA", "PA", "F"...); null for UDP. */
  tcp: { seq: number; flags: string } | null;
  stages: StageTime[];
  /** From its first stage to its last reached. */
  total_ns: number;
  end: 'complete' | 'dropped' | 'reused' | 'timeout' | 'stopped';
  last_stage: string | null;
  drop_reason: string | null;
  /** Out: the process that sent it, when a stage saw it in that process's context. */
  pid: number | null;
  comm: string | null;
  ifindex: number | null;
}

export interface KtraceHistogramEvent extends Base {
  type: 'histogram';
  /** Counts since the previous histogram event (log2 buckets: [2^k, 2^(k+1)) ns). */
  segments: { from: string; to: string; buckets: { ge_ns: number; count: number }[] }[];
}

/**
 * At the end of a run (before `done`): the kernel's drops of this run's trips, per packet (request
 * or reply), kfree_skb's reason and the last stage the packet reached, most first. `total` 0 says
 * no trip's packet was dropped where kfree_skb sees it.
 */
export interface KtraceDropsEvent extends Base {
  type: 'drops';
  total: number;
  /** `dropped`: the request or the reply (packet mode: a packet going out or coming in). */
  by: { dropped: DroppedWhat; reason: string; stage: string | null; count: number }[];
}

export type DroppedWhat = 'request' | 'reply' | 'out' | 'in';

export interface KtraceDoneEvent extends Base {
  type: 'done';
  reason: 'count' | 'interrupted' | 'error';
  /** Complete round trips (packet mode: packets that reached their path's last stage). */
  trips: number;
  /** Trips that did not complete (packet mode: packets whose path ended earlier). */
  incomplete: number;
  /** Records the ring buffer could not hold, and trips the map could not hold. */
  lost: number;
  duration_ms: number;
}

export type KtraceEvent = KtraceStartEvent | KtraceRttEvent | KtraceIncompleteEvent | KtracePacketEvent | KtraceHistogramEvent | KtraceDropsEvent | KtraceDoneEvent;
