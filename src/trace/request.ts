/**
 * A trace request, its defaults, and every rule about which options go together, checked once,
 * before anything is resolved or opened: the result, a TraceSpec, is what the engine and the
 * transports read (flows, probes per TTL, the probe budget), so no one unpacks the request again.
 */
import { PathlensError } from '../core/errors.js';
import type { Scheduler } from '../core/scheduler.js';
import type { Placement } from '../io/placement.js';
import type { Egress } from '../io/route.js';
import type { Family } from '../packet/addr.js';
import type { BpfMode } from '../probe/bpf-trace.js';
import type { SendStamps } from '../probe/errqueue.js';
import type { SocketChoice } from '../probe/socket.js';
import { FLOW_SPACE } from './ecmp-auto.js';
import type { ProbeMethod } from './events.js';
import type { InflightPool } from '../probe/pool.js';
import { udpFits } from './udp.js';
import { COOKIE_LEN } from '../probe/cookie.js';

export type MethodChoice = ProbeMethod;
/** --method auto: the order tried, and how many silent hops (with nothing beyond) mean "filtered". */
export const AUTO_ORDER: MethodChoice[] = ['udp', 'tcp', 'icmp'];
export const AUTO_SILENT_HOPS = 3;

/** How a trace probes and waits: the request's and the engine's alike. */
export interface TraceShape {
  firstTtl: number;
  maxTtl: number;
  /** Probes per TTL (per flow). */
  queries: number;
  /** Longest wait for any one probe, ms. */
  waitMs: number;
  /** A silent probe is overdue after this multiple of the smallest RTT seen at its TTL or beyond. */
  adaptiveFactor: number;
  /** ... but never before this many ms. */
  minWaitMs: number;
  maxInflight: number;
  payloadLen: number;
  /** Whole-trace deadline in ms (0: none). */
  deadlineMs: number;
}

export interface TraceRequest extends TraceShape {
  target: string;
  family?: Family;
  port: number;
  source?: string;
  srcPort?: number;
  method?: MethodChoice | 'auto';
  /** Which socket: auto (unprivileged first), unpriv only, or raw only. */
  socket?: SocketChoice;
  placement?: Placement;
  /** Path MTU discovery along the path (UDP). */
  pmtu?: boolean;
  /**
   * ECMP exploration: flow identities per TTL (UDP, ICMP, raw TCP), or 'auto': per TTL, until the
   * MDA stopping rule holds at `confidence` (0.95 by default), at most `ecmpMax` flows (128).
   */
  ecmp?: number | 'auto';
  ecmpMax?: number;
  confidence?: number;
  /**
   * Send times: 'kernel-sw' the kernel's software send timestamps (UDP, ICMP over a ping socket;
   * Linux 6.13), 'userspace'
   * the time taken just before each probe's own sendmsg, 'auto' (the default) the kernel's where it gives them.
   */
  ts?: TsChoice;
  /**
   * Correlation in the kernel (UDP and ICMP): 'on' BPF programs pick out, time and correlate the
   * replies (refused in one line when they cannot load), 'auto' the same where they load (the start
   * event says why not), 'off' (the default) the socket's own error queue.
   */
  bpf?: BpfMode;
}

export type TsChoice = 'auto' | 'userspace' | 'kernel-sw' | 'kernel-hw';

export const stampsOf = (ts: TsChoice | undefined): SendStamps | undefined => (ts === 'kernel-sw' ? 'require' : ts === 'userspace' ? undefined : 'try');

export const TRACE_DEFAULTS = {
  firstTtl: 1,
  maxTtl: 30,
  queries: 3,
  port: 33434,
  waitMs: 3000,
  // A probe to hop t is overdue after twice the RTT of a hop at or beyond t that answered: the
  // path to that hop runs through t, so t's answer needs less unless t is slow to make ICMP.
  // Anything later is still reported, as a late reply.
  adaptiveFactor: 2,
  minWaitMs: 20,
  maxInflight: 16,
  payloadLen: 32,
  deadlineMs: 0,
  tcpPort: 80,
} as const;

export const ECMP_AUTO_DEFAULTS = { confidence: 0.95, maxFlows: 128 } as const;

export interface EngineOptions extends TraceShape {
  /** The target as the user gave it, and its address bytes. */
  target: string;
  address: Uint8Array;
  /** ECMP exploration: distinct flow identities per TTL (each gets `queries` probes); 1 otherwise. */
  flows?: number;
  /**
   * --ecmp auto: `flows` is FLOW_SPACE (the identities probes may take); per TTL, flows are added
   * until the MDA stopping rule holds at `confidence`, at most maxFlows (see EcmpAutoPlan). Needs
   * queries = 1.
   */
  adaptive?: { confidence: number; firstHopSingle: boolean; maxFlows: number };
  /** The route the kernel chose for the probes (start event), or why it is unknown. */
  egress?: Egress | { error: string };
  basePort: number;
  /** Path MTU discovery: a Fragmentation Needed / Packet Too Big sends the probe again, smaller. */
  pmtu?: boolean;
  /** The TOS / traffic class byte the probes carry (--tos), for the start event. */
  tos?: number;
  /**
   * --method auto: stop (reason 'silent') once this many consecutive hops, up to the highest TTL,
   * had no reply and nothing answered beyond them: the probes are probably filtered.
   */
  silentStop?: number;
  /** --bpf auto that fell back to the error queue: why the programs did not load (the start event says so). */
  bpfWhy?: string;
  version: string;
  /** Time and timers (the real clock unless a test gives a virtual one). */
  scheduler?: Scheduler;
  /** A cap shared with other traces of the same run (several targets); maxInflight still holds for this one. */
  pool?: InflightPool;
}

/** What the engine needs of its options, checked where they are made and where they are used. */
export function checkEngineOptions(o: Pick<EngineOptions, 'firstTtl' | 'maxTtl' | 'queries' | 'flows' | 'maxInflight' | 'adaptive'>): void {
  if (!(o.firstTtl >= 1 && o.maxTtl <= 255 && o.firstTtl <= o.maxTtl)) throw new PathlensError('ERR_USAGE', 'TTLs must satisfy 1 <= first <= max <= 255');
  if (!(o.queries >= 1 && o.queries <= 10)) throw new PathlensError('ERR_USAGE', 'queries per hop must be 1..10');
  const flows = o.flows ?? 1;
  if (!(flows >= 1 && flows <= 256)) throw new PathlensError('ERR_USAGE', 'flows per hop must be 1..256');
  if (!(o.maxInflight >= 1 && o.maxInflight <= 256)) throw new PathlensError('ERR_USAGE', 'max in-flight probes must be 1..256');
  if (o.adaptive) {
    if (o.queries !== 1) throw new PathlensError('ERR_USAGE', '--ecmp auto sends one probe per flow and hop (-q 1)');
    if (flows !== FLOW_SPACE) throw new PathlensError('ERR_USAGE', `--ecmp auto needs ${FLOW_SPACE} flow identities per hop`);
  }
}

/** A request, checked, with what follows from it. */
export interface TraceSpec {
  method: ProbeMethod;
  socket: SocketChoice;
  /** Flow identities per TTL the transport must build (FLOW_SPACE for --ecmp auto). */
  flows: number;
  /** Probes per TTL: queries x flows. */
  perTtl: number;
  /** The probe budget: (max - first + 1) x perTtl. */
  total: number;
  confidence: number;
  sendStamps: SendStamps | undefined;
}

/** Checks every rule about the request's options together; returns what follows from them. */
export function planTrace(req: TraceRequest): TraceSpec {
  const method = req.method === 'auto' || req.method === undefined ? 'udp' : req.method;
  const socket = req.socket ?? 'auto';
  const flows = req.ecmp === 'auto' ? FLOW_SPACE : (req.ecmp ?? 1);
  const confidence = req.confidence ?? ECMP_AUTO_DEFAULTS.confidence;
  checkEngineOptions({ firstTtl: req.firstTtl, maxTtl: req.maxTtl, queries: req.queries, flows, maxInflight: req.maxInflight, adaptive: req.ecmp === 'auto' ? { confidence, firstHopSingle: false, maxFlows: req.ecmpMax ?? ECMP_AUTO_DEFAULTS.maxFlows } : undefined });
  if (flows > 1 && method === 'tcp' && socket !== 'raw') throw new PathlensError('ERR_USAGE', '--ecmp with -T needs --raw: connect() probes cannot keep a flow\'s ports across TTLs');
  if (req.ecmp === 'auto' && req.pmtu) throw new PathlensError('ERR_USAGE', '--ecmp auto and --pmtu exclude each other');
  if (!(confidence > 0 && confidence < 1)) throw new PathlensError('ERR_USAGE', 'the confidence must be between 0 and 1 (e.g. 0.95)');
  if (req.pmtu && method !== 'udp') throw new PathlensError('ERR_USAGE', '--pmtu works with UDP probes (-U, the default)');
  if (req.ts === 'kernel-sw' && method === 'tcp') throw new PathlensError('ERR_USAGE', '--ts kernel-sw: kernel send timestamps are implemented for UDP and ICMP (ping socket) probes so far');
  if (method === 'tcp' && socket !== 'raw' && req.srcPort !== undefined) throw new PathlensError('ERR_USAGE', '--sport with -T needs --raw: connect() probes take a new source port per probe');
  if (method === 'udp' && socket === 'raw') throw new PathlensError('ERR_USAGE', 'UDP probes use an ordinary datagram socket: --raw applies to -I');
  if (req.bpf === 'on' && req.ts !== undefined && req.ts !== 'auto') throw new PathlensError('ERR_USAGE', `--bpf on times both ends of every probe at its own hooks: --ts ${req.ts} applies without it`);
  if (req.bpf === 'on' && method === 'tcp') throw new PathlensError('ERR_USAGE', '--bpf on: TCP probes are correlated by their own sockets; --bpf takes UDP (-U) and ICMP (-I) probes');
  const perTtl = req.queries * flows;
  const total = (req.maxTtl - req.firstTtl + 1) * perTtl;
  const udp = method === 'udp' ? udpFits(req.port, flows, total, req.pmtu ? COOKIE_LEN : req.payloadLen) : null;
  if (udp) throw new PathlensError('ERR_USAGE', udp);
  return { method, socket, flows, perTtl, total, confidence, sendStamps: stampsOf(req.ts) };
}
