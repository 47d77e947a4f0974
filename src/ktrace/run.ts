/**
 * `pathlens ktrace`: the run's lifecycle. It finds which kinds of hook the kernel accepts, loads
 * bpf/ktrace.bpf.o with those, attaches each stage to the first of its hooks that works, tells the
 * programs which stages are attached (hooks.ts), and then, on a BpfSession, turns ring-buffer
 * records into `rtt` events and, once a tick, trips that never completed into `incomplete` ones
 * and, with --histogram, the per-segment histograms (records.ts). Everything attached is an fd or
 * a netlink object the session removes: the process ending however it ends detaches it all.
 */
import { type CapName, listCaps, missingCaps } from '../core/caps.js';
import { isIP } from 'node:net';
import { EpochClock } from '../bpf/clock.js';
import { Kallsyms } from '../bpf/kallsyms.js';
import { MapWalker, PerCpuCounters } from '../bpf/maps.js';
import { BpfSession } from '../bpf/session.js';
import { PathlensError } from '../core/errors.js';
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { version } from '../core/version.js';
import { inNamespace } from '../io/placement.js';
import { native } from '../native/index.js';
import { parseIp } from '../packet/addr.js';
import { type KtraceDoneEvent, type KtraceEvent, type KtracePacketEvent, type KtraceStartEvent, KTRACE_SCHEMA, type StagePlan } from './events.js';
import { attachStages, hookName, type LoadShape, openWith, probeHooks, probeIndividually, programsToLoad, resolveGeneric, runStages, writeGenericConfig, writePlan } from './hooks.js';
import { dropReasons, kfreeReasonOffset, netnsInode } from './kernel.js';
import { COUNTER, HIST_SLOTS, KEY, NSTAGES, TRIP } from './layout.js';
import { loadProfile } from './profile.js';
import { DropTally, histogramEvent, type TripMap, TripDecoder, TripSweeper } from './records.js';
import { configBytes, type KtraceRequest } from './request.js';
import { StackNames } from './stacks.js';

export type { KtraceRequest };

const TICK_MS = 100;

/** An address in 16 bytes (IPv4 in the first 4), as struct kt_config holds it. */
function pad16(b: Uint8Array): Uint8Array {
  const o = new Uint8Array(16);
  o.set(b);
  return o;
}

export function startKtrace(req: KtraceRequest, sink: Sink<KtraceEvent>): RunHandle<KtraceDoneEvent> {
  const fam = isIP(req.src);
  if (!fam || isIP(req.dst) !== fam) throw new PathlensError('ERR_USAGE', `--src ${req.src} and --dst ${req.dst} must be IP addresses of one family`);
  const family = fam as 4 | 6;
  const packet = !!req.proto;
  if (packet && req.direction === 'rx') throw new PathlensError('ERR_USAGE', '--direction rx is for echo round trips: with --proto, packets are timed both ways');
  if (req.port !== undefined && !packet) throw new PathlensError('ERR_USAGE', '--port needs --proto udp or tcp');
  const rx = req.direction === 'rx' && !packet;
  const profile = loadProfile(req.profile ?? (packet ? 'transport' : 'kernel'));
  const why = native().bpfAvailable();
  if (why !== null) throw new PathlensError('ERR_BPF', `libbpf cannot be loaded (${why}); install it (Debian/Ubuntu: apt-get install libbpf1)`);
  // Not root: the capabilities each part needs (a missing one named), tracefs as kernel.ts reads it.
  const need: CapName[] = ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_DAC_READ_SEARCH', ...(req.netns ? (['CAP_SYS_ADMIN'] as const) : []), ...(req.stacks ? (['CAP_SYSLOG'] as const) : [])];
  const missing = missingCaps(need);
  if (missing.length) throw new PathlensError('ERR_BPF', `ktrace needs ${listCaps(need)}, or root: missing ${listCaps(missing)}`);
  const config = configBytes(req, family, pad16(parseIp(req.src)), pad16(parseIp(req.dst)), netnsInode(req.netns), kfreeReasonOffset());
  let ifindex = 0;
  if (req.iface) {
    ifindex = inNamespace(req.netns, () => native().ifNameToIndex(req.iface!));
    if (ifindex < 0) throw new PathlensError('ERR_USAGE', `--iface ${req.iface}: no such interface${req.netns ? ` in ${req.netns}` : ''}`);
  }
  const syms = req.stacks ? Kallsyms.load() : null;

  const generic = resolveGeneric(profile, family);
  writeGenericConfig(config, profile, generic.offsets);
  const shape: LoadShape = { family, packet, proto: req.proto ?? 'icmp', targets: generic.targets };
  const stages = runStages(profile, rx, packet);
  const hooks = probeHooks(req, config);
  const refused = generic.refused;
  probeIndividually(stages, hooks, config, shape, refused);
  const session = new BpfSession(openWith(programsToLoad(stages, hooks, refused, shape), config, shape.targets), req.netns);
  let planning: ReturnType<typeof attachStages>;
  try {
    session.obj.load();
    planning = attachStages(session, req, stages, shape, hooks, ifindex, refused);
    writePlan(session.obj, planning.measured, rx, packet);
  } catch (e) {
    session.abort();
    throw e;
  }
  const { plans, measured, firstPath, secondPath, drops } = planning;

  const t0 = performance.now();
  const tMs = () => Math.round((performance.now() - t0) * 1000) / 1000;
  const hookOf = new Map<number, string>();
  for (const a of plans) if (a.hook && !a.sameAs) hookOf.set(a.stage.id, hookName(a.hook));
  const start: KtraceStartEvent = {
    schema: KTRACE_SCHEMA,
    type: 'start',
    t_ms: 0,
    version: version(),
    time: new Date().toISOString(),
    direction: rx ? 'rx' : 'tx',
    profile: profile.name,
    mode: packet ? 'packet' : 'echo',
    proto: req.proto ?? null,
    port: req.port ?? null,
    family,
    src: req.src,
    dst: req.dst,
    netns: req.netns ?? null,
    iface: req.iface ?? null,
    stages: plans.map(
      (a): StagePlan => ({
        name: a.stage.name,
        path: a.stage.path,
        hook: a.hook ? hookName(a.hook) : null,
        ...(a.sameAs ? { same_as: a.sameAs.name } : {}),
        refused: a.refused,
      }),
    ),
    hooks,
    drops,
  };
  sink.event(start);

  const obj = session.obj;
  const counters = new PerCpuCounters(obj.mapFd('kt_counters'), COUNTER.NUM);
  const dec = new TripDecoder({ rx, measured, hookOf, firstPath, secondPath, proto: req.proto ?? null, family }, syms ? new StackNames(obj.mapFd('kt_stacks'), syms) : null, dropReasons());
  const tripsFd = obj.mapFd('kt_trips');
  const walker = new MapWalker(tripsFd, KEY.size, TRIP.size);
  const trips: TripMap = {
    walk: (f) => walker.walk((i) => f(walker.keyBytes.subarray(i * KEY.size, (i + 1) * KEY.size), walker.vv, i * TRIP.size)),
    delete: (k) => void native().bpfMapDelete(tripsFd, k),
  };
  const sweeper = new TripSweeper(trips, dec, (req.timeoutMs ?? 1000) * 1e6, () => EpochClock.monoNow());
  const hist = new PerCpuCounters(obj.mapFd('kt_hist'), NSTAGES * HIST_SLOTS);
  const histogram = (): void => {
    const counts = Float64Array.from(hist.read());
    for (let i = 0; i < counts.length; i++) if (counts[i]) hist.clear(i);
    sink.event(histogramEvent(counts, measured, tMs(), packet));
  };
  let complete = 0;
  let incomplete = 0;
  const tally = new DropTally();
  const minNs = (req.latencyMs ?? 0) * 1e6;
  // Packet mode: a packet whose path ended early (the kernel dropped it, its buffer went on with
  // another, or it was still on its way); --latency-ms holds for the time it had taken.
  const partial = (e: KtracePacketEvent) => {
    incomplete++;
    if (tally.add(e) || (!req.dropsOnly && e.total_ns >= minNs)) sink.event(e);
  };
  const sweep = (all: boolean) => {
    if (packet) {
      for (const e of sweeper.sweepPackets(all, tMs())) partial(e);
      return;
    }
    for (const e of sweeper.sweep(all, tMs())) {
      incomplete++;
      // --drops-only: what the kernel dropped, nothing else.
      if (tally.add(e) || !req.dropsOnly) sink.event(e);
    }
  };

  try {
    session.openRing(
      'kt_events',
      (v, b, off, len) => {
        if (packet) {
          const p = dec.packetRecord(v, off, len, tMs());
          if (!p) return;
          if (p.end !== 'complete') return partial(p);
          complete++;
          if (!req.dropsOnly) sink.event(p);
          if (req.count && complete >= req.count) run.finish('count');
          return;
        }
        const e = dec.rtt(v, b, off, len, tMs());
        if (!e) return;
        complete++;
        if (!req.dropsOnly) sink.event(e);
        if (req.count && complete >= req.count) run.finish('count');
      },
      () => run.finish('error'),
    );
  } catch (e) {
    session.abort();
    throw e;
  }
  let lastHist = performance.now();
  const run = session.live<KtraceDoneEvent, KtraceDoneEvent['reason']>({
    durationMs: req.durationMs,
    drainMs: TICK_MS,
    tickMs: TICK_MS,
    sink,
    tick: () => {
      sweep(false);
      if (req.histogram && req.intervalMs && performance.now() - lastHist >= req.intervalMs) {
        lastHist = performance.now();
        histogram();
      }
    },
    done: (reason) => {
      sweep(true);
      if (req.histogram) histogram();
      sink.event(tally.event(tMs()));
      const c = counters.read();
      return { schema: KTRACE_SCHEMA, type: 'done', t_ms: tMs(), reason, trips: complete, incomplete, lost: c[COUNTER.LOST] + c[COUNTER.MAP_FULL], duration_ms: tMs() };
    },
  });
  return run.handle;
}
