/**
 * `pathlens ktrace`: the run. It finds which kinds of hook the kernel accepts (a probe load per
 * kind), loads bpf/ktrace.bpf.o with those, attaches each stage to the first of its hooks that
 * works, tells the programs which stages are attached (the trip's order and its final stage),
 * and turns ring-buffer records into `rtt` events. Once a tick it reports trips that never
 * completed (with the kernel's drop reason, when kfree_skb saw one of their packets) and, with
 * --histogram, the per-segment histograms the programs count. Everything attached is an fd:
 * closing them, or the process ending however it ends, detaches it all.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { type Attachment, attachNetfilter, attachRawTracepoint, attachTc, attachTracepoint, BPF_NETFILTER, BPF_PROG_TYPE_NETFILTER, ClsactHook, NF_HOOK } from '../bpf/attach.js';
import { MapWalker, PerCpuCounters, u64 } from '../bpf/maps.js';
import { BpfObject, bpfObjectPath } from '../bpf/object.js';
import { RingReader } from '../bpf/ringbuf.js';
import { Kallsyms } from '../bpf/kallsyms.js';
import { EpochClock } from '../bpf/clock.js';
import { PathlensError, SysError } from '../core/errors.js';
import { liveRun } from '../core/live.js';
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { version } from '../core/version.js';
import { inNamespace, netnsPath } from '../io/placement.js';
import { native } from '../native/index.js';
import { parseIp } from '../packet/addr.js';
import { type KtraceDoneEvent, type KtraceEvent, type KtraceHistogramEvent, type KtraceIncompleteEvent, type KtraceRttEvent, type KtraceStartEvent, KTRACE_SCHEMA, type StagePlan, type StageTime } from './events.js';
import { CONFIG, COUNTER, HIST_SLOTS, KEY, NSTAGES, PLAN, RECORD, REC_COMPLETE, STACK_DEPTH, TRIP } from './layout.js';
import { DROP_HOOKS, HOOK_KINDS, type Hook, type HookKind, pathOrder, programsOf, progName, STAGES, type Stage } from './stages.js';

export interface KtraceRequest {
  /** This host's address (TX: it pings from here; RX: it is pinged here). */
  src: string;
  /** The far end's address. */
  dst: string;
  direction?: 'tx' | 'rx';
  /** Interface for the tc stages (none: those stages are left out). */
  iface?: string;
  netns?: string;
  /** Report only trips that took at least this long. */
  latencyMs?: number;
  /** Stop after this many complete trips. */
  count?: number;
  durationMs?: number;
  histogram?: boolean;
  /** Kernel stacks at the stages on tracing hooks (named through /proc/kallsyms). */
  stacks?: boolean;
  /** --histogram: a histogram event this often (0: only at the end). */
  intervalMs?: number;
  /** A trip without its final stage this long after it started is reported incomplete. */
  timeoutMs?: number;
  /** Hook kinds not to use (tests force lower rungs with this). */
  skipHooks?: HookKind[];
}

const OBJECT = 'ktrace.bpf.o';
const NF_PRIORITY = -150; // before the filter tables (0): a drop there is seen after the stage
const TICK_MS = 100;

const hookName = (h: Hook) => `${h.kind} ${h.at}`;
/** The netfilter hooks by the names the stages use. */
const NF_POINT: Record<string, keyof typeof NF_HOOK> = { PRE_ROUTING: 'prerouting', LOCAL_IN: 'input', LOCAL_OUT: 'output', POST_ROUTING: 'postrouting' };

/** The classic kfree_skb record's format (tracefs), when mounted. */
function kfreeFormat(): string {
  for (const root of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    const f = `${root}/events/skb/kfree_skb/format`;
    if (existsSync(f)) return readFileSync(f, 'utf8');
  }
  return '';
}

/** Names of kfree_skb's drop reasons, from the tracepoint's format. */
function dropReasons(): Map<number, string> {
  const names = new Map<number, string>();
  for (const m of kfreeFormat().matchAll(/\{\s*(\d+),\s*"([A-Z0-9_]+)"\s*\}/g)) names.set(Number(m[1]), m[2]);
  return names;
}

/** Where `reason` sits in the classic kfree_skb record on this kernel (0: unknown). */
function kfreeReasonOffset(): number {
  const m = /field:enum skb_drop_reason reason;\s*offset:(\d+);\s*size:4;/.exec(kfreeFormat());
  return m ? Number(m[1]) : 0;
}

/** The inode of a network namespace (the tracing hooks filter by it). */
function netnsInode(netns: string | undefined): number {
  const path = netns ? netnsPath(netns) : '/proc/self/ns/net';
  try {
    return statSync(path).ino;
  } catch (e) {
    throw new PathlensError('ERR_USAGE', `--netns ${netns}: cannot open ${path} (${(e as NodeJS.ErrnoException).code})`);
  }
}

function configBytes(req: KtraceRequest, family: 4 | 6, src: Uint8Array, dst: Uint8Array, inode: number): Uint8Array {
  const b = new Uint8Array(CONFIG.size);
  const v = new DataView(b.buffer);
  v.setBigUint64(CONFIG.min_total_ns, BigInt(Math.round((req.latencyMs ?? 0) * 1e6)), true);
  v.setUint32(CONFIG.netns, inode, true);
  b[CONFIG.family] = family;
  b[CONFIG.rx] = req.direction === 'rx' ? 1 : 0;
  b[CONFIG.hist] = req.histogram ? 1 : 0;
  b[CONFIG.stacks] = req.stacks ? 1 : 0;
  b.set(src, CONFIG.local);
  b.set(dst, CONFIG.remote);
  v.setUint32(CONFIG.kfree_reason_off, kfreeReasonOffset(), true);
  return b;
}

/**
 * Names of the stacks in kt_stacks, each looked up and named once: an id names one stack for the
 * map's lifetime (bpf_get_stackid without BPF_F_REUSE_STACKID never overwrites one).
 */
const TRACING_FRAME = /^(0x|bpf_|__bpf_|trace_call_bpf|perf_trace_|perf_syscall|trace_event_raw_event_|__traceiter_)/;

class StackNames {
  private readonly cache = new Map<number, string[] | null>();
  private readonly key = new Uint8Array(4);
  private readonly value = new Uint8Array(STACK_DEPTH * 8);
  private readonly view = new DataView(this.value.buffer);

  constructor(
    private readonly fd: number,
    private readonly syms: Kallsyms,
  ) {}

  /** `slot` as the programs store it: id + 1, or a negative errno (null: not taken). */
  frames(slot: number): string[] | null {
    if (slot <= 0) return null;
    const hit = this.cache.get(slot);
    if (hit !== undefined) return hit;
    new DataView(this.key.buffer).setUint32(0, slot - 1, true);
    this.value.fill(0);
    let names: string[] | null = null;
    if (native().bpfMapLookup(this.fd, this.key, this.value) === 0) {
      names = [];
      for (let i = 0; i < STACK_DEPTH; i++) {
        const ip = this.view.getBigUint64(8 * i, true);
        if (ip === 0n) break;
        names.push(this.syms.name(ip));
      }
      // The innermost frames are the program and the tracing machinery that ran it: from the
      // last of those on, the stack is the kernel's own.
      let k = 0;
      for (let i = 0; i < names.length; i++) if (TRACING_FRAME.test(names[i])) k = i + 1;
      names = names.slice(k);
    }
    this.cache.set(slot, names);
    return names;
  }
}

/** Opens the object with only `on` loadable (netfilter programs typed by hand for old libbpf). */
function openWith(on: Set<string>, config: Uint8Array): BpfObject {
  const obj = BpfObject.open(bpfObjectPath(OBJECT), 'ktrace');
  try {
    obj.setInitialValue('.rodata', config);
    for (const kind of HOOK_KINDS) {
      for (const p of kind === 'tcx' ? ['kt_tc_egress', 'kt_tc_ingress'] : programsOf(kind)) {
        obj.setAutoload(p, on.has(p));
        if (kind === 'netfilter') obj.setProgType(p, BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER);
      }
    }
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

/** What each kind of hook can do here: "available", or why not (one probe load per kind). */
function probeHooks(req: KtraceRequest, config: Uint8Array): Record<HookKind, string> {
  const out = {} as Record<HookKind, string>;
  for (const kind of HOOK_KINDS) {
    if (req.skipHooks?.includes(kind)) {
      out[kind] = 'skipped (--skip-hooks)';
      continue;
    }
    if (kind === 'kprobe') {
      out[kind] = existsSync('/sys/bus/event_source/devices/kprobe')
        ? 'not used: kprobe programs depend on the CPU architecture and are not shipped; fentry reaches the same functions where the kernel allows it'
        : 'this kernel has no kprobes (no kprobe event source)';
      continue;
    }
    if (kind === 'tcx') {
      out[kind] = req.iface ? 'available' : 'no --iface: the tc stages need an interface';
      continue;
    }
    if (kind === 'tracepoint' && !['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events'].some((d) => existsSync(d))) {
      out[kind] = 'tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)';
      continue;
    }
    if (kind === 'tp_btf' && !existsSync('/sys/kernel/btf/vmlinux')) {
      out[kind] = 'this kernel has no BTF (/sys/kernel/btf/vmlinux)';
      continue;
    }
    let obj: BpfObject | null = null;
    try {
      obj = openWith(new Set(programsOf(kind)), config);
      obj.load();
      out[kind] = 'available';
    } catch (e) {
      const msg = (e as Error).message.replace(/^ktrace: /, '');
      // Refused as root: the kernel itself says no (lockdown, no trampolines), not a missing privilege.
      out[kind] = process.getuid?.() === 0 && /needs root/.test(msg) ? 'the kernel refuses these programs (EPERM as root)' : msg;
    } finally {
      obj?.close();
    }
  }
  return out;
}

interface Attached {
  stage: Stage;
  hook: Hook | null;
  sameAs?: Stage;
  refused: { hook: string; reason: string }[];
}

/** Attaches one hook; throws a PathlensError with the kernel's reason when it cannot. */
function attachHook(obj: BpfObject, h: Hook, family: 4 | 6, netns: string | undefined, ifindex: number, clsact: ClsactHook | null): Attachment {
  const fd = obj.progFd(progName(h, family));
  switch (h.kind) {
    case 'fentry':
    case 'tp_btf':
      return attachRawTracepoint(fd, null);
    case 'raw_tp':
      return attachRawTracepoint(fd, h.at);
    case 'tracepoint': {
      const [system, name] = h.at.split('/');
      return attachTracepoint(fd, system, name);
    }
    case 'netfilter':
      return inNamespace(netns, () => attachNetfilter(fd, family === 4 ? 'ipv4' : 'ipv6', NF_POINT[h.at], NF_PRIORITY));
    case 'tcx':
      return inNamespace(netns, () => attachTc(fd, ifindex, h.at === 'egress', 'auto', clsact!));
    default:
      throw new PathlensError('ERR_BPF', `${h.kind} hooks are not used`);
  }
}

export function startKtrace(req: KtraceRequest, sink: Sink<KtraceEvent>): RunHandle<KtraceDoneEvent> {
  const fam = isIP(req.src);
  if (!fam || isIP(req.dst) !== fam) throw new PathlensError('ERR_USAGE', `--src ${req.src} and --dst ${req.dst} must be IP addresses of one family`);
  const family = fam as 4 | 6;
  const rx = req.direction === 'rx';
  const why = native().bpfAvailable();
  if (why !== null) throw new PathlensError('ERR_BPF', `libbpf cannot be loaded (${why}); install it (Debian/Ubuntu: apt-get install libbpf1)`);
  if (process.getuid?.() !== 0) throw new PathlensError('ERR_BPF', 'ktrace needs root (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN): its programs trace the kernel');
  const pad = (b: Uint8Array) => {
    const o = new Uint8Array(16);
    o.set(b);
    return o;
  };
  const config = configBytes(req, family, pad(parseIp(req.src)), pad(parseIp(req.dst)), netnsInode(req.netns));
  let ifindex = 0;
  if (req.iface) {
    ifindex = inNamespace(req.netns, () => native().ifNameToIndex(req.iface!));
    if (ifindex < 0) throw new PathlensError('ERR_USAGE', `--iface ${req.iface}: no such interface${req.netns ? ` in ${req.netns}` : ''}`);
  }
  const syms = req.stacks ? Kallsyms.load() : null;

  const hooks = probeHooks(req, config);
  const on = new Set<string>();
  for (const kind of HOOK_KINDS) {
    if (hooks[kind] !== 'available') continue;
    for (const p of kind === 'tcx' ? ['kt_tc_egress', 'kt_tc_ingress'] : programsOf(kind)) on.add(p);
  }
  const obj = openWith(on, config);
  const links: Attachment[] = [];
  const detachAll = () => {
    try {
      inNamespace(req.netns, () => {
        for (const a of links.reverse()) a.detach();
      });
    } catch {
      for (const a of links) a.detach(); // the namespace is gone, and its hooks with it
    }
    links.length = 0;
  };
  let ring: RingReader | null = null;
  const order = pathOrder(rx);
  const plans: Attached[] = [];
  let drops: string | null = null;
  try {
    obj.load();
    const clsact = req.iface ? new ClsactHook(ifindex) : null;
    const byPoint = new Map<string, Stage>();
    for (const stage of order) {
      const a: Attached = { stage, hook: null, refused: [] };
      for (const h of stage.hooks) {
        if (hooks[h.kind] !== 'available') {
          a.refused.push({ hook: hookName(h), reason: hooks[h.kind] });
          continue;
        }
        const point = `${h.kind} ${h.at} ${progName(h, family)}`;
        if (h.records !== undefined) {
          // This stage's best point is another stage's: measured there, reported as the same.
          a.hook = h;
          a.sameAs = STAGES[h.records];
          break;
        }
        try {
          links.push(attachHook(obj, h, family, req.netns, ifindex, clsact));
          a.hook = h;
          byPoint.set(point, stage);
          break;
        } catch (e) {
          a.refused.push({ hook: hookName(h), reason: (e as Error).message });
        }
      }
      plans.push(a);
    }
    // A collapsed stage points at a stage that must itself be attached at that hook.
    for (const a of plans) if (a.sameAs && !plans.find((p) => p.stage === a.sameAs && p.hook && !p.sameAs)) a.hook = null;
    for (const h of DROP_HOOKS) {
      if (hooks[h.kind] !== 'available') continue;
      try {
        links.push(attachHook(obj, h, family, req.netns, ifindex, clsact));
        drops = hookName(h);
        break;
      } catch {
        // drops are a bonus: without them incomplete trips carry no reason
      }
    }
  } catch (e) {
    detachAll();
    obj.close();
    throw e;
  }
  const measured = plans.filter((a) => a.hook && !a.sameAs).map((a) => a.stage);
  const firstPath = measured.filter((s) => s.path === (rx ? 'in' : 'out'));
  const secondPath = measured.filter((s) => s.path === (rx ? 'out' : 'in'));
  if (firstPath.length === 0 || secondPath.length === 0) {
    detachAll();
    obj.close();
    const refused = plans.flatMap((a) => a.refused.map((r) => `${a.stage.name}: ${r.hook}: ${r.reason}`));
    throw new PathlensError('ERR_BPF', `no hook could be attached on the ${firstPath.length === 0 ? 'first' : 'second'} path (${refused.slice(0, 3).join('; ')})`);
  }
  // Tell the programs the order and the final stage.
  const plan = new Uint8Array(PLAN.size);
  plan[PLAN.final] = measured.at(-1)!.id;
  plan[PLAN.nstages] = measured.length;
  measured.forEach((s, i) => (plan[PLAN.order + i] = s.id));
  const rc = native().bpfMapUpdate(obj.mapFd('kt_plan'), new Uint8Array(4), plan, 0);
  if (rc < 0) {
    detachAll();
    obj.close();
    throw new SysError('bpf(BPF_MAP_UPDATE_ELEM)', rc, 'kt_plan');
  }

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

  const reasons = dropReasons();
  const counters = new PerCpuCounters(obj.mapFd('kt_counters'), COUNTER.NUM);
  let trips = 0;
  let incomplete = 0;

  const stacks = syms ? new StackNames(obj.mapFd('kt_stacks'), syms) : null;

  /** Stage times of a trip (at `off` in `v`), in path order, relative to the first reached. */
  const stageTimes = (v: DataView, off: number): StageTime[] => {
    const out: StageTime[] = [];
    let first = 0;
    for (const s of measured) {
      const t = u64(v, off + TRIP.t + 8 * s.id);
      if (!t) continue;
      if (!first) first = t;
      const st: StageTime = { name: s.name, hook: hookOf.get(s.id)!, t_ns: t - first };
      if (stacks) {
        const id = v.getInt32(off + TRIP.stack + 4 * s.id, true);
        if (id) st.stack = stacks.frames(id);
      }
      out.push(st);
    }
    return out;
  };
  const keyFields = (v: DataView, off: number) => ({ id: v.getUint16(off + KEY.id, true), seq: v.getUint16(off + KEY.seq, true) });
  const comm = (b: Uint8Array, off: number) => {
    const end = b.indexOf(0, off);
    return new TextDecoder().decode(b.subarray(off, end < 0 || end > off + 16 ? off + 16 : end));
  };

  const onRecord = (v: DataView, b: Uint8Array, off: number, len: number): void => {
    if (len < RECORD.size || v.getUint32(off + RECORD.kind, true) !== REC_COMPLETE) return;
    const tr = off + RECORD.trip;
    const stages = stageTimes(v, tr);
    const lastFirst = [...stages].reverse().find((s) => firstPath.some((f) => f.name === s.name));
    const firstSecond = stages.find((s) => secondPath.some((f) => f.name === s.name));
    const pid = v.getUint32(tr + TRIP.pid, true);
    const e: KtraceRttEvent = {
      schema: KTRACE_SCHEMA,
      type: 'rtt',
      t_ms: tMs(),
      ...keyFields(v, off + RECORD.key),
      stages,
      total_ns: stages.length ? stages.at(-1)!.t_ns : 0,
      wire_ns: lastFirst && firstSecond && !rx ? firstSecond.t_ns - lastFirst.t_ns : null,
      answer_ns: lastFirst && firstSecond && rx ? firstSecond.t_ns - lastFirst.t_ns : null,
      pid: pid || null,
      comm: pid ? comm(b, tr + TRIP.comm) : null,
      ifindex_out: v.getUint32(tr + TRIP.ifindex_out, true) || null,
      ifindex_in: v.getUint32(tr + TRIP.ifindex_in, true) || null,
    };
    trips++;
    sink.event(e);
    if (req.count && trips >= req.count) run.finish('count');
  };

  const tripsFd = obj.mapFd('kt_trips');
  const walker = new MapWalker(tripsFd, KEY.size, TRIP.size);
  const timeoutNs = (req.timeoutMs ?? 1000) * 1e6;
  /** Trips that will not complete: older than the timeout (or all of them, when the run ends). */
  const sweep = (all: boolean): void => {
    const mono = EpochClock.monoNow();
    const gone: Uint8Array[] = [];
    const late: KtraceIncompleteEvent[] = [];
    walker.walk((i) => {
      const vo = i * TRIP.size;
      const vv = walker.vv;
      if (!all && mono - u64(vv, vo + TRIP.created) < timeoutNs) return;
      const key = walker.keyBytes.slice(i * KEY.size, (i + 1) * KEY.size);
      gone.push(key);
      const stages = stageTimes(vv, vo);
      const dropped = vv.getUint8(vo + TRIP.dropped);
      const reason = vv.getUint32(vo + TRIP.drop_reason, true);
      const e: KtraceIncompleteEvent = {
        schema: KTRACE_SCHEMA,
        type: 'incomplete',
        t_ms: tMs(),
        ...keyFields(new DataView(key.buffer), 0),
        stages,
        last_stage: stages.at(-1)?.name ?? null,
        dropped: dropped === 1 ? 'request' : dropped === 2 ? 'reply' : null,
        drop_reason: dropped ? (reasons.get(reason) ?? `reason ${reason}`) : null,
        why: all ? 'stopped' : 'timeout',
      };
      late.push(e);
    });
    for (const k of gone) native().bpfMapDelete(tripsFd, k);
    // A hash map walks in no order: report in the order the pings were sent.
    late.sort((a, b) => a.id - b.id || a.seq - b.seq);
    for (const e of late) {
      incomplete++;
      sink.event(e);
    }
  };

  const hist = new PerCpuCounters(obj.mapFd('kt_hist'), NSTAGES * HIST_SLOTS);
  const histogram = (): void => {
    const counts = Float64Array.from(hist.read());
    // Counts per interval: what was read is cleared (a count landing in between is not lost
    // for long: at worst it moves to the next interval, or is dropped with a cleared slot).
    for (let i = 0; i < counts.length; i++) if (counts[i]) hist.clear(i);
    const e: KtraceHistogramEvent = { schema: KTRACE_SCHEMA, type: 'histogram', t_ms: tMs(), segments: [] };
    for (let s = 0; s + 1 < measured.length; s++) {
      const buckets: { ge_ns: number; count: number }[] = [];
      for (let k = 0; k < HIST_SLOTS; k++) {
        const c = counts[s * HIST_SLOTS + k];
        if (c) buckets.push({ ge_ns: k === 0 ? 0 : 2 ** k, count: c });
      }
      e.segments.push({ from: measured[s].name, to: measured[s + 1].name, buckets });
    }
    sink.event(e);
  };

  let lastHist = performance.now();
  let over = false;
  try {
    ring = new RingReader(obj.mapFd('kt_events'), onRecord, () => run.finish('error'));
  } catch (e) {
    detachAll();
    obj.close();
    throw e;
  }
  const run = liveRun<KtraceDoneEvent, KtraceDoneEvent['reason']>({
    durationMs: req.durationMs,
    tickMs: TICK_MS,
    sink,
    tick: () => {
      // The programs wake the reader only when the ring fills (a wakeup per record costs more
      // than the rest of the tracing): records are read here, before the sweep.
      ring!.drain();
      if (over) return; // a record just read was the last one --count wanted
      sweep(false);
      if (req.histogram && req.intervalMs && performance.now() - lastHist >= req.intervalMs) {
        lastHist = performance.now();
        histogram();
      }
    },
    teardown: (reason) => {
      over = true;
      detachAll();
      ring!.drain();
      ring!.close();
      sweep(true);
      if (req.histogram) histogram();
      const c = counters.read();
      obj.close();
      return { schema: KTRACE_SCHEMA, type: 'done', t_ms: tMs(), reason, trips, incomplete, lost: c[COUNTER.LOST] + c[COUNTER.MAP_FULL], duration_ms: tMs() };
    },
  });
  return run.handle;
}
