/**
 * Puts a trace together: check the request (request.ts), resolve the target, open the transport,
 * run the engine, feed the sinks; and --method auto (UDP, then TCP, then ICMP).
 */
import { crypto } from '../core/builtins.js';
import { performance } from 'node:perf_hooks';
import { PathlensError } from '../core/errors.js';
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { version } from '../core/version.js';
import { type Egress, egressOf, timestampingOf } from '../io/route.js';
import { parseIp } from '../packet/addr.js';
import { SOF_RAW_HARDWARE, SOF_RX_HARDWARE, SOF_TX_HARDWARE, describeTimestamping } from '../packet/genetlink.js';
import { routeMtu } from '../probe/socket.js';
import type { Transport } from '../probe/transport.js';
import { KernelCorrelators, bpfTraceRefusal, kernelCorrelated } from '../probe/bpf-trace.js';
import { resolveTarget } from '../resolve/forward.js';
import { TraceEngine } from './engine.js';
import { type DoneEvent, TRACE_SCHEMA, type TraceEvent } from './events.js';
import { ICMP_MIN_PAYLOAD, IcmpProber } from './icmp.js';
import { AUTO_ORDER, AUTO_SILENT_HOPS, ECMP_AUTO_DEFAULTS, TRACE_DEFAULTS, type TraceRequest, type TraceSpec, planTrace } from './request.js';
import { TcpConnectProber } from './tcp.js';
import { TcpRawProber } from './tcpraw.js';
import type { InflightPool } from '../probe/pool.js';
import { UdpProber, udpOverhead } from './udp.js';

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

/** A running trace: stop() declares what is in flight as no-reply, then done. */
export interface TraceHandle extends RunHandle<DoneEvent> {
  /** The error that ended the trace, when done.reason is 'error'. */
  readonly error: Error | null;
}

/** What a trace shares with the others of its run (several targets, the rounds of continuous mode). */
export interface TraceShared {
  /** One in-flight cap over all of them. */
  pool?: InflightPool;
  /** The route already asked for (an earlier round's, same target and placement): not asked again. */
  egress?: Egress | { error: string };
  /** --bpf: the loaded programs, one set per namespace and family for the whole run (closed by its owner). */
  kernel?: KernelCorrelators;
}

export async function startTrace(req: TraceRequest, sink: Sink<TraceEvent>, shared: TraceShared = {}): Promise<TraceHandle> {
  if (req.method === 'auto') return startAuto(req, sink, shared);
  const engine = await startEngine(req, sink, 0, shared);
  return { done: engine.run(), stop: () => engine.interrupt(), get error() { return engine.error; } };
}

/**
 * --method auto: UDP first; when the target and the last hops stay silent (AUTO_SILENT_HOPS in a
 * row with nothing answering beyond), TCP, then ICMP. Each attempt is a whole start..done in the
 * stream, and a `switch` event between them says why. A method the kernel refuses (no ping socket
 * and no CAP_NET_RAW) is skipped with a switch event naming the refusal.
 */
async function startAuto(req: TraceRequest, sink: Sink<TraceEvent>, shared: TraceShared): Promise<TraceHandle> {
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
        engine = await startEngine({ ...req, method, port: method === 'tcp' ? TRACE_DEFAULTS.tcpPort : req.port }, sink, next ? AUTO_SILENT_HOPS : 0, shared);
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

async function startEngine(req: TraceRequest, sink: Sink<TraceEvent>, silentStop: number, shared: TraceShared): Promise<TraceEngine> {
  const spec = planTrace(req);
  const address = await resolveTarget(req.target, req.family);
  const source = req.source ? parseIp(req.source) : undefined;
  if (source && source.length !== address.length) throw new PathlensError('ERR_USAGE', `source ${req.source} and target are of different families`);
  // The route the kernel chose (start event), and for --ecmp auto whether hop 1 can branch at all.
  const egress = shared.egress ?? egressOf(address, req.placement ?? {}, source);
  if (req.ts === 'kernel-hw') refuseHardwareStamps(egress, req.placement?.netns);
  const { transport, bpfWhy } = openCorrelated(req, spec, address, source, shared.kernel);
  let engine: TraceEngine;
  try {
    engine = new TraceEngine(
      {
        target: req.target,
        address,
        firstTtl: req.firstTtl,
        maxTtl: req.maxTtl,
        queries: req.queries,
        flows: spec.flows,
        ...(req.ecmp === 'auto' ? { adaptive: { confidence: spec.confidence, maxFlows: req.ecmpMax ?? ECMP_AUTO_DEFAULTS.maxFlows, firstHopSingle: 'nexthops' in egress && egress.nexthops === 1 } } : {}),
        egress,
        basePort: req.port,
        waitMs: req.waitMs,
        adaptiveFactor: req.adaptiveFactor,
        minWaitMs: req.minWaitMs,
        maxInflight: req.maxInflight,
        payloadLen: transport.packetLen !== undefined && req.pmtu ? transport.packetLen - udpOverhead(transport.family) : req.payloadLen,
        deadlineMs: req.deadlineMs,
        pmtu: req.pmtu,
        tos: req.placement?.tos,
        silentStop,
        ...(bpfWhy ? { bpfWhy } : {}),
        version: version(),
        ...(shared.pool ? { pool: shared.pool } : {}),
      },
      transport,
      sink,
    );
  } catch (e) {
    transport.close();
    throw e;
  }
  return engine;
}

/**
 * --bpf: the prober's socket only sends, and BPF programs correlate its replies; with 'auto', the
 * socket's own error queue when they cannot load (bpfWhy says why), with 'on' a one-line refusal.
 */
function openCorrelated(req: TraceRequest, spec: TraceSpec, address: Uint8Array, source: Uint8Array | undefined, pool: KernelCorrelators | undefined): { transport: Transport; bpfWhy?: string } {
  const mode = req.bpf ?? 'off';
  if (mode === 'off') return { transport: openTransport(req, spec, address, source) };
  const refusal = bpfTraceRefusal(spec.method);
  let why = refusal;
  if (!refusal) {
    const inner = openTransport(req, spec, address, source, true);
    try {
      // --ecmp auto sends a varying number of probes per TTL: no batching of wake-ups by TTL there.
      const perTtl = req.ecmp === 'auto' ? 1 : spec.perTtl;
      return { transport: kernelCorrelated(inner as Parameters<typeof kernelCorrelated>[0], req.placement, spec.total, { perTtl, window: req.maxInflight, maxTtl: req.maxTtl, pool }) };
    } catch (e) {
      inner.close();
      if (!(e instanceof PathlensError) || mode === 'on') throw e;
      why = e.message;
    }
  }
  if (mode === 'on') throw new PathlensError(spec.method === 'tcp' ? 'ERR_USAGE' : 'ERR_BPF', `--bpf on: ${why}`);
  return { transport: openTransport(req, spec, address, source), bpfWhy: why! };
}

/** Opens the transport for the planned method and socket choice (`kernelReplies`: its socket only sends, for --bpf). */
export function openTransport(req: TraceRequest, spec: TraceSpec, address: Uint8Array, source: Uint8Array | undefined, kernelReplies = false): Transport {
  const { method, socket: choice, total, flows, perTtl, sendStamps } = spec;
  const session = crypto().randomInt(0, 0xffffffff);
  if (method === 'icmp') {
    return new IcmpProber({ target: address, total, maxBatch: req.maxInflight, payloadLen: Math.max(req.payloadLen, ICMP_MIN_PAYLOAD), session, socket: choice, source, placement: req.placement, flows, perTtl, sendStamps: kernelReplies ? undefined : sendStamps, kernelReplies });
  }
  if (method === 'tcp') {
    if (choice === 'raw') {
      return new TcpRawProber({ target: address, dstPort: req.port, total, maxBatch: req.maxInflight, seqBase: crypto().randomInt(0, 0xffffffff), source, srcPort: req.srcPort, placement: req.placement, flows, perTtl });
    }
    return new TcpConnectProber({ target: address, dstPort: req.port, total, source, placement: req.placement });
  }
  let payloadLen = req.payloadLen;
  if (req.pmtu) {
    // Start at the local route's MTU (capped to what one datagram can carry); routers on the way
    // say where it drops.
    const fam = address.length === 4 ? 4 : 6;
    payloadLen = Math.min(routeMtu(address, req.placement), 65000) - udpOverhead(fam);
  }
  return new UdpProber({ target: address, basePort: req.port, total, maxBatch: req.maxInflight, payloadLen, session, source, srcPort: req.srcPort, placement: req.placement, pmtu: req.pmtu, flows, perTtl, sendStamps: kernelReplies ? undefined : sendStamps, kernelReplies });
}

/** The run-wide correlators a request with --bpf needs (null without): its owner closes them at the end of the run. */
export function correlatorsFor(req: TraceRequest): KernelCorrelators | null {
  return req.bpf === 'on' || req.bpf === 'auto' ? new KernelCorrelators() : null;
}
