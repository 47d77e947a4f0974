/**
 * Puts a trace together: resolve the target, open the prober, run the engine, feed the sinks.
 */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { PathlensError } from '../core/errors.js';
import { version } from '../core/version.js';
import { type Family, parseIp } from '../packet/addr.js';
import { TraceEngine } from './engine.js';
import { FLOW_SPACE } from './adaptive.js';
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { type DoneEvent, type ProbeMethod, TRACE_SCHEMA, type TraceEvent } from './events.js';
import { ICMP_MIN_PAYLOAD, IcmpProber } from './icmp.js';
import type { Placement } from '../io/placement.js';
import { type Egress, egressOf, timestampingOf } from '../io/route.js';
import { SOF_RAW_HARDWARE, SOF_RX_HARDWARE, SOF_TX_HARDWARE, describeTimestamping } from '../packet/genetlink.js';
import type { Transport } from '../probe/transport.js';
import { type SocketChoice, routeMtu } from '../probe/socket.js';
import { TcpConnectProber } from './tcp.js';
import { TcpRawProber } from './tcpraw.js';
import { UdpProber, udpOverhead } from './udp.js';
import type { SendStamps } from '../probe/errqueue.js';

export type MethodChoice = ProbeMethod;
/** --method auto: the order tried, and how many silent hops (with nothing beyond) mean "filtered". */
export const AUTO_ORDER: MethodChoice[] = ['udp', 'tcp', 'icmp'];
export const AUTO_SILENT_HOPS = 3;

export interface TraceRequest {
  target: string;
  family?: Family;
  firstTtl: number;
  maxTtl: number;
  queries: number;
  port: number;
  waitMs: number;
  adaptiveFactor: number;
  minWaitMs: number;
  maxInflight: number;
  payloadLen: number;
  deadlineMs: number;
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
   * the time taken before sendmmsg, 'auto' (the default) the kernel's where it gives them.
   */
  ts?: TsChoice;
}

export type TsChoice = 'auto' | 'userspace' | 'kernel-sw' | 'kernel-hw';

const stampsOf = (ts: TsChoice | undefined): SendStamps | undefined => (ts === 'kernel-sw' ? 'require' : ts === 'userspace' ? undefined : 'try');

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

/**
 * --ts kernel-hw: says what the egress device's driver offers (ethtool TSINFO). Hardware stamps
 * need hardware-transmit, hardware-receive and the raw hardware clock; a device without them
 * (veth, lo, most virtual NICs) is named with what it does offer. Reading NIC timestamps is not
 * implemented (no NIC here has them to test against), so a device that offers them is refused too,
 * saying so.
 */
function refuseHardwareStamps(egress: Egress | { error: string }, netns: string | undefined): never {
  const alt = '--ts kernel-sw takes the kernel\'s software timestamps';
  if (!('ifindex' in egress) || egress.ifindex === null) throw new PathlensError('ERR_UNSUPPORTED', `--ts kernel-hw: the egress interface is unknown (${'error' in egress ? egress.error : 'no interface in the route'}); ${alt}`);
  const dev = egress.iface ?? `ifindex ${egress.ifindex}`;
  const ts = timestampingOf(egress.ifindex, netns);
  if ('error' in ts) throw new PathlensError('ERR_UNSUPPORTED', `--ts kernel-hw: cannot ask ${dev} what it timestamps (${ts.error}); ${alt}`);
  const need = SOF_TX_HARDWARE | SOF_RX_HARDWARE | SOF_RAW_HARDWARE;
  if ((ts.timestamping & need) !== need) {
    const offers = describeTimestamping(ts.timestamping);
    throw new PathlensError('ERR_UNSUPPORTED', `--ts kernel-hw: ${dev} offers no hardware timestamps (its driver offers: ${offers.length ? offers.join(', ') : 'nothing'}); ${alt}`);
  }
  throw new PathlensError('ERR_UNSUPPORTED', `--ts kernel-hw: ${dev} offers hardware timestamps (PTP clock ${ts.phcIndex ?? '?'}), but pathlens does not read NIC timestamps yet; ${alt}`);
}

export const ECMP_AUTO_DEFAULTS = { confidence: 0.95, maxFlows: 128 } as const;

/** Flow identities per TTL the prober must be able to build (the cap, for --ecmp auto). */
function flowCount(req: TraceRequest): number {
  if (req.ecmp === 'auto') return FLOW_SPACE;
  return req.ecmp ?? 1;
}

export async function resolveTarget(target: string, family?: Family): Promise<Uint8Array> {
  const lit = isIP(target);
  if (lit) {
    if (family && lit !== family) throw new PathlensError('ERR_USAGE', `${target} is not an IPv${family} address`);
    return parseIp(target);
  }
  try {
    const r = await lookup(target, { family: family ?? 0, verbatim: true });
    return parseIp(r.address);
  } catch (e) {
    throw new PathlensError('ERR_RESOLVE', `cannot resolve ${target}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A running trace: stop() declares what is in flight as no-reply, then done. */
export interface TraceHandle extends RunHandle<DoneEvent> {
  /** The error that ended the trace, when done.reason is 'error'. */
  readonly error: Error | null;
}

export async function startTrace(req: TraceRequest, sink: Sink<TraceEvent>): Promise<TraceHandle> {
  if (req.method === 'auto') return startAuto(req, sink);
  const engine = await startEngine(req, sink, 0);
  return { done: engine.run(), stop: () => engine.interrupt(), get error() { return engine.error; } };
}

/**
 * --method auto: UDP first; when the target and the last hops stay silent (AUTO_SILENT_HOPS in a
 * row with nothing answering beyond), TCP, then ICMP. Each attempt is a whole start..done in the
 * stream, and a `switch` event between them says why. A method the kernel refuses (no ping socket
 * and no CAP_NET_RAW) is skipped with a switch event naming the refusal.
 */
async function startAuto(req: TraceRequest, sink: Sink<TraceEvent>): Promise<TraceHandle> {
  let current: TraceEngine | null = null;
  let stopped = false;
  let failure: Error | null = null;
  let t0 = 0;
  const done = (async (): Promise<DoneEvent> => {
    let last: DoneEvent | null = null;
    for (let i = 0; i < AUTO_ORDER.length; i++) {
      const method = AUTO_ORDER[i];
      const next = AUTO_ORDER[i + 1];
      let engine: TraceEngine;
      try {
        engine = await startEngine({ ...req, method, port: method === 'tcp' ? TRACE_DEFAULTS.tcpPort : req.port }, sink, next ? AUTO_SILENT_HOPS : 0);
      } catch (e) {
        if (!next || !(e instanceof PathlensError) || e.code !== 'ERR_PRIVILEGE') throw e;
        sink.event({ schema: TRACE_SCHEMA, type: 'switch', t_ms: t0 ? Math.round((performance.now() - t0) * 1000) / 1000 : 0, from: method, to: next, reason: `not permitted: ${e.message}` });
        continue;
      }
      if (!t0) t0 = performance.now();
      current = engine;
      last = await engine.run();
      failure = engine.error;
      if (stopped || last.reason !== 'silent' || !next) return last;
      sink.event({
        schema: TRACE_SCHEMA,
        type: 'switch',
        t_ms: Math.round((performance.now() - t0) * 1000) / 1000,
        from: method,
        to: next,
        reason: `${AUTO_SILENT_HOPS} hops in a row without a reply and nothing beyond: ${method.toUpperCase()} probes look filtered`,
      });
    }
    return last!;
  })();
  return {
    done,
    stop: () => {
      stopped = true;
      current?.interrupt();
    },
    get error() {
      return failure;
    },
  };
}

async function startEngine(req: TraceRequest, sink: Sink<TraceEvent>, silentStop: number): Promise<TraceEngine> {
  const address = await resolveTarget(req.target, req.family);
  const source = req.source ? parseIp(req.source) : undefined;
  if (source && source.length !== address.length) throw new PathlensError('ERR_USAGE', `source ${req.source} and target are of different families`);
  const flows = flowCount(req);
  if (flows > 1 && req.method === 'tcp' && req.socket !== 'raw') throw new PathlensError('ERR_USAGE', '--ecmp with -T needs --raw: connect() probes cannot keep a flow\'s ports across TTLs');
  if (req.ecmp === 'auto' && req.pmtu) throw new PathlensError('ERR_USAGE', '--ecmp auto and --pmtu exclude each other');
  const confidence = req.confidence ?? ECMP_AUTO_DEFAULTS.confidence;
  if (!(confidence > 0 && confidence < 1)) throw new PathlensError('ERR_USAGE', 'the confidence must be between 0 and 1 (e.g. 0.95)');
  const total = (req.maxTtl - req.firstTtl + 1) * req.queries * flows;
  // The route the kernel chose (start event), and for --ecmp auto whether hop 1 can branch at all.
  const egress = egressOf(address, req.placement ?? {}, source);
  if (req.ts === 'kernel-hw') refuseHardwareStamps(egress, req.placement?.netns);
  if (req.pmtu && (req.method ?? 'udp') !== 'udp') throw new PathlensError('ERR_USAGE', '--pmtu works with UDP probes (-U, the default)');

  if (req.ts === 'kernel-sw' && req.method === 'tcp') throw new PathlensError('ERR_USAGE', '--ts kernel-sw: kernel send timestamps are implemented for UDP and ICMP (ping socket) probes so far');
  const prober = openProber(req, address, source, total);
  let engine: TraceEngine;
  try {
    engine = new TraceEngine(
      {
        target: req.target,
        address,
        firstTtl: req.firstTtl,
        maxTtl: req.maxTtl,
        queries: req.queries,
        flows,
        ...(req.ecmp === 'auto' ? { adaptive: { confidence, maxFlows: req.ecmpMax ?? ECMP_AUTO_DEFAULTS.maxFlows, firstHopSingle: 'nexthops' in egress && egress.nexthops === 1 } } : {}),
        egress,
        basePort: req.port,
        waitMs: req.waitMs,
        adaptiveFactor: req.adaptiveFactor,
        minWaitMs: req.minWaitMs,
        maxInflight: req.maxInflight,
        payloadLen: prober.packetLen !== undefined && req.pmtu ? prober.packetLen - udpOverhead(prober.family) : req.payloadLen,
        deadlineMs: req.deadlineMs,
        pmtu: req.pmtu,
        tos: req.placement?.tos,
        silentStop,
        version: version(),
      },
      prober,
      sink,
    );
  } catch (e) {
    prober.close();
    throw e;
  }
  return engine;
}

/** Opens the prober for the requested method and socket choice. */
export function openProber(req: TraceRequest, address: Uint8Array, source: Uint8Array | undefined, total: number): Transport {
  const method = req.method === 'auto' ? 'udp' : (req.method ?? 'udp');
  const choice = req.socket ?? 'auto';
  const session = randomInt(0, 0xffffffff);
  if (method === 'icmp') {
    return new IcmpProber({ target: address, total, maxBatch: req.maxInflight, payloadLen: Math.max(req.payloadLen, ICMP_MIN_PAYLOAD), session, socket: choice, source, placement: req.placement, flows: flowCount(req), perTtl: req.queries * flowCount(req), sendStamps: stampsOf(req.ts) });
  }
  if (method === 'tcp') {
    if (choice === 'raw') {
      return new TcpRawProber({ target: address, dstPort: req.port, total, maxBatch: req.maxInflight, seqBase: randomInt(0, 0xffffffff), source, srcPort: req.srcPort, placement: req.placement, flows: flowCount(req), perTtl: req.queries * flowCount(req) });
    }
    if (req.srcPort !== undefined) throw new PathlensError('ERR_USAGE', '--sport with -T needs --raw: connect() probes take a new source port per probe');
    return new TcpConnectProber({ target: address, dstPort: req.port, total, source, placement: req.placement });
  }
  if (choice === 'raw') throw new PathlensError('ERR_USAGE', 'UDP probes use an ordinary datagram socket: --raw applies to -I');
  let payloadLen = req.payloadLen;
  if (req.pmtu) {
    // Start at the local route's MTU (capped to what one datagram can carry); routers on the way
    // say where it drops.
    const fam = address.length === 4 ? 4 : 6;
    payloadLen = Math.min(routeMtu(address, req.placement), 65000) - udpOverhead(fam);
  }
  return new UdpProber({ target: address, basePort: req.port, total, maxBatch: req.maxInflight, payloadLen, session, source, srcPort: req.srcPort, placement: req.placement, pmtu: req.pmtu, flows: flowCount(req), perTtl: req.queries * flowCount(req), sendStamps: stampsOf(req.ts) });
}
