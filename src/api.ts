/**
 * pathlens as a library, for programs that script it from Node: each capability is a function
 * that starts a run and returns its handle. The handle is the same for every capability:
 * `done` (the done event), `stop()`, and iteration over the run's events as they come
 * (`for await (const e of run)`). The events are the versioned ones the CLI writes as JSONL
 * (schema/*.schema.json). See docs/api.md.
 *
 *   import { trace } from 'pathlens';
 *   const run = trace('192.0.2.7', { queries: 1 });
 *   for await (const e of run) if (e.type === 'hop') console.log(e.ttl, e.addrs);
 *   console.log((await run.done).reason);
 */
import type { TcMode, XdpMode } from './bpf/attach.js';
import type { RunHandle } from './core/run.js';
import { EventStream } from './core/stream.js';
import { runBpf } from './pping/bpf-run.js';
import type { PpingDoneEvent, PpingEvent } from './pping/events.js';
import type { MatcherOptions } from './pping/matcher.js';
import { type LiveHandle, runOffline, runPacketSocket } from './pping/run.js';
import type { KtraceDoneEvent, KtraceEvent } from './ktrace/events.js';
import { type KtraceRequest, startKtrace } from './ktrace/run.js';
import type { DoneEvent, TraceEvent } from './trace/events.js';
import { resolveTarget } from './resolve/forward.js';
import { TRACE_DEFAULTS, type TraceRequest } from './trace/request.js';
import { type TraceHandle, startTrace } from './trace/run.js';
import type { MonitorDoneEvent, MonitorEvent } from './monitor/events.js';
import { MONITOR_DEFAULTS, type MonitorRequest, type MonitorTarget, type TargetSettings } from './monitor/request.js';
import { type MonitorHandle, startMonitor } from './monitor/run.js';
import { openTracePath } from './trace/path-source.js';
import { TraceNames } from './trace/names.js';
import { ReverseResolver } from './resolve/reverse.js';

export { PathlensError, SysError } from './core/errors.js';
export { ReverseResolver, type NameResult, type ResolverOptions } from './resolve/reverse.js';
export type { ErrorCode } from './core/errors.js';
export { PPING_SCHEMA, TRACE_SCHEMA } from './core/schemas.js';
export type { RunHandle } from './core/run.js';
export type * from './trace/events.js';
export type { AggregateEvent, FlowEvent, PpingDoneEvent, PpingEvent, PpingStartEvent, RttEvent, TableFullEvent } from './pping/events.js';
export type * from './ktrace/events.js';
export type * from './monitor/events.js';
export { MONITOR_SCHEMA } from './core/schemas.js';
export type { KtraceRequest as KtraceOptions } from './ktrace/run.js';
export { KTRACE_SCHEMA } from './core/schemas.js';

/** A running measurement: its done event, stop(), and its events as an async iterable. */
export interface Run<E, D> extends RunHandle<D>, AsyncIterable<E> {}

/**
 * trace() options: the CLI's, by name (defaults as the CLI's), and `names`: reverse names as
 * `name` events (off unless asked for, unlike the CLI; `server` "ADDR[:PORT]" else resolv.conf).
 */
export type TraceOptions = Partial<Omit<TraceRequest, 'target'>> & { names?: boolean | { server?: string; timeoutMs?: number } };

/**
 * Traces the path to `target` (an address or a name). Resolves nothing up front: a name that
 * does not resolve, or a probe method the kernel refuses, rejects `done` (and ends the iteration
 * with that error) with a PathlensError.
 */
export function trace(target: string, options: TraceOptions = {}): Run<TraceEvent, DoneEvent> {
  const { names: n, ...rest } = options;
  const method = rest.method ?? 'udp';
  const req: TraceRequest = {
    ...TRACE_DEFAULTS,
    port: method === 'tcp' ? TRACE_DEFAULTS.tcpPort : TRACE_DEFAULTS.port,
    ...rest,
    target,
  };
  const stream = new EventStream<TraceEvent>();
  let handle: TraceHandle | null = null;
  let stopped = false;
  // Names end the stream themselves (after the lookups still out): runOf's end comes after.
  const names = n ? new TraceNames(new ReverseResolver({ ...(n === true ? {} : n), placement: { netns: req.placement?.netns } }), { event: (e) => stream.event(e) }) : null;
  const done = startTrace(req, names ?? stream).then(async (h) => {
    handle = h;
    if (stopped) h.stop();
    const d = await h.done;
    await names?.end();
    if (d.reason === 'error' && h.error) throw h.error;
    return d;
  });
  return runOf(stream, done, () => {
    stopped = true;
    handle?.stop();
  });
}

/** pping() options: a live interface (`iface`) or a capture file (`read`), and the rules' options. */
export interface PpingOptions extends Partial<MatcherOptions> {
  iface?: string;
  read?: string;
  netns?: string;
  /** Live: stop after this long. */
  durationMs?: number;
  /** Live: BPF programs (the default) or a packet socket. */
  capture?: 'bpf' | 'packet';
  ingressHook?: 'tc' | 'xdp';
  xdpMode?: XdpMode;
  tcMode?: TcMode;
}

/**
 * Passive RTT, live or from a file. Throws a PathlensError at once when the capture cannot start
 * (no such interface, BPF refused: the message says what is missing).
 */
export function pping(options: PpingOptions): Run<PpingEvent, PpingDoneEvent> {
  if (!options.iface === !options.read) throw new TypeError('pping(): give one of iface (live) or read (a capture file)');
  const stream = new EventStream<PpingEvent>();
  let h: LiveHandle;
  if (options.read) h = runOffline(options.read, options, stream);
  else {
    const lo = { iface: options.iface!, netns: options.netns, durationMs: options.durationMs ?? 0 };
    h = options.capture === 'packet' ? runPacketSocket(lo, options, stream) : runBpf({ ...lo, ingressHook: options.ingressHook ?? 'tc', xdpMode: options.xdpMode ?? 'auto', tcMode: options.tcMode ?? 'auto' }, options, stream);
  }
  return runOf(stream, h.done, () => h.stop());
}

/**
 * Per-stage kernel latency of ICMP echo round trips (root). Throws a PathlensError at once when
 * it cannot start (no BPF, no root, bad addresses: the message says what is missing).
 */
export function ktrace(options: KtraceRequest): Run<KtraceEvent, KtraceDoneEvent> {
  const stream = new EventStream<KtraceEvent>();
  const h = startKtrace(options, stream);
  return runOf(stream, h.done, () => h.stop());
}

/** monitor() targets: an address (or name), or one with its own settings (the CLI's target-file fields). */
export type MonitorTargetOption = string | ({ target: string } & Partial<TargetSettings>);

/** monitor() options: window, timeout, duration (0: until stopped), samples, hook; defaults for targets. */
export interface MonitorOptions extends Partial<Omit<MonitorRequest, 'targets'>>, Partial<TargetSettings> {}

/**
 * Watches many paths (docs/monitor.md): yields pathlens.monitor/1 events until `durationMs`
 * passes or stop() is called. Names are resolved first; one that does not resolve rejects `done`.
 */
export function monitor(targets: MonitorTargetOption[], options: MonitorOptions = {}): Run<MonitorEvent, MonitorDoneEvent> {
  const stream = new EventStream<MonitorEvent>();
  const { windowMs, timeoutMs, durationMs, samples, onChange, onRtt, confirm, resolveEveryMs, resolve, openPath, pathDamping, pathInflight, ...defaults } = options;
  let handle: MonitorHandle | null = null;
  let stopped = false;
  const done = (async () => {
    const resolved: MonitorTarget[] = [];
    for (const t of targets) {
      const o = typeof t === 'string' ? { target: t } : t;
      const address = options.resolve ? await options.resolve(o.target) : await resolveTarget(o.target);
      resolved.push({
        method: 'auto',
        udpPort: MONITOR_DEFAULTS.udpPort,
        tcpPort: MONITOR_DEFAULTS.tcpPort,
        intervalMs: MONITOR_DEFAULTS.intervalMs,
        thresholds: MONITOR_DEFAULTS.thresholds,
        placement: {},
        path: null,
        labels: {},
        ...defaults,
        ...o,
        name: o.target,
        address,
      });
    }
    const h = await startMonitor({ targets: resolved, windowMs: windowMs ?? MONITOR_DEFAULTS.windowMs, timeoutMs: timeoutMs ?? MONITOR_DEFAULTS.timeoutMs, durationMs: durationMs ?? 0, samples: samples ?? false, onChange, onRtt, confirm, resolveEveryMs, resolve, openPath: openPath ?? openTracePath, pathDamping, pathInflight }, stream);
    handle = h;
    if (stopped) h.stop();
    const d = await h.done;
    if (d.reason === 'error' && h.error) throw h.error;
    return d;
  })();
  return runOf(stream, done, () => {
    stopped = true;
    handle?.stop();
  });
}

/** The handle: done ends the stream (or fails it); an unobserved failure is never unhandled. */
function runOf<E, D>(stream: EventStream<E>, done: Promise<D>, stop: () => void): Run<E, D> {
  const settled = done.then(
    (d) => {
      stream.end();
      return d;
    },
    (e) => {
      stream.fail(e);
      throw e;
    },
  );
  settled.catch(() => {});
  return {
    done: settled,
    stop,
    [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator](),
  };
}
