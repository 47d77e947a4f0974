/**
 * Puts a trace together: resolve the target, open the prober, run the engine, feed the sinks.
 */
import { randomInt } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { PathlensError } from '../core/errors.js';
import { version } from '../core/version.js';
import { type Family, parseIp } from '../packet/addr.js';
import { TraceEngine } from './engine.js';
import type { DoneEvent, EventSink, TraceEvent } from './events.js';
import { ICMP_MIN_PAYLOAD, IcmpProber, type SocketChoice } from './icmp.js';
import type { Placement } from './placement.js';
import type { Prober } from './prober.js';
import { TcpConnectProber } from './tcp.js';
import { UdpProber, routeMtu, udpOverhead } from './udp.js';

export type MethodChoice = 'udp' | 'icmp' | 'tcp';

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
  method?: MethodChoice;
  /** Which socket: auto (unprivileged first), unpriv only, or raw only. */
  socket?: SocketChoice;
  placement?: Placement;
  /** Path MTU discovery along the path (UDP). */
  pmtu?: boolean;
  /** ECMP exploration: flow identities per TTL (UDP, ICMP). */
  ecmp?: number;
}

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

export interface TraceHandle {
  done: Promise<DoneEvent>;
  engine: TraceEngine;
}

export async function startTrace(req: TraceRequest, sink: EventSink<TraceEvent>): Promise<TraceHandle> {
  const address = await resolveTarget(req.target, req.family);
  const source = req.source ? parseIp(req.source) : undefined;
  if (source && source.length !== address.length) throw new PathlensError('ERR_USAGE', `source ${req.source} and target are of different families`);
  const flows = req.ecmp ?? 1;
  if (flows > 1 && req.method === 'tcp') throw new PathlensError('ERR_USAGE', '--ecmp needs UDP or ICMP probes: connect() probes cannot keep a flow\'s ports across TTLs');
  const total = (req.maxTtl - req.firstTtl + 1) * req.queries * flows;
  if (req.pmtu && (req.method ?? 'udp') !== 'udp') throw new PathlensError('ERR_USAGE', '--pmtu works with UDP probes (-U, the default)');
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
        basePort: req.port,
        waitMs: req.waitMs,
        adaptiveFactor: req.adaptiveFactor,
        minWaitMs: req.minWaitMs,
        maxInflight: req.maxInflight,
        payloadLen: prober.packetLen !== undefined && req.pmtu ? prober.packetLen - udpOverhead(prober.family) : req.payloadLen,
        deadlineMs: req.deadlineMs,
        pmtu: req.pmtu,
        version: version(),
      },
      prober,
      sink,
    );
  } catch (e) {
    prober.close();
    throw e;
  }
  return { done: engine.run(), engine };
}

/** Opens the prober for the requested method and socket choice. */
export function openProber(req: TraceRequest, address: Uint8Array, source: Uint8Array | undefined, total: number): Prober {
  const method = req.method ?? 'udp';
  const choice = req.socket ?? 'auto';
  const session = randomInt(0, 0xffffffff);
  if (method === 'icmp') {
    return new IcmpProber({ target: address, total, maxBatch: req.maxInflight, payloadLen: Math.max(req.payloadLen, ICMP_MIN_PAYLOAD), session, socket: choice, source, placement: req.placement, flows: req.ecmp, perTtl: req.queries * (req.ecmp ?? 1) });
  }
  if (method === 'tcp') {
    if (choice === 'raw') throw new PathlensError('ERR_USAGE', 'raw TCP SYN probes are not available yet: -T uses unprivileged connect() probes (drop --raw)');
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
  return new UdpProber({ target: address, basePort: req.port, total, maxBatch: req.maxInflight, payloadLen, session, source, srcPort: req.srcPort, placement: req.placement, pmtu: req.pmtu, flows: req.ecmp, perTtl: req.queries * (req.ecmp ?? 1) });
}
