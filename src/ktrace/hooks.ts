/**
 * ktrace's hooks: which kinds of hook this kernel accepts (one probe load per kind), which of a
 * profile's own points exist here (and the few built-in points younger kernels have), the object
 * loaded with what is left, each stage attached to the first of its hooks that works (the
 * ladder), the refusals kept with the kernel's reasons, and the plan the programs are told (the
 * trip's order, where each path starts and ends).
 */
import { existsSync } from 'node:fs';
import { type Attachment, attachNetfilter, attachRawTracepoint, attachTc, attachTracepoint, BPF_NETFILTER, BPF_PROG_TYPE_NETFILTER, ClsactHook, NF_HOOK } from '../bpf/attach.js';
import { BpfObject, bpfObjectPath } from '../bpf/object.js';
import type { BpfSession } from '../bpf/session.js';
import { PathlensError, SysError } from '../core/errors.js';
import { native } from '../native/index.js';
import { btfHas, tracepointField } from './kernel.js';
import { CONFIG, GEN_KIND, GEN_SLOTS, HOW_DATA, NO_STAGE, PLAN } from './layout.js';
import type { Profile } from './profile.js';
import { genericProgram } from './profile.js';
import type { KtraceRequest } from './request.js';
import { DROP_HOOKS, HOOK_KINDS, type Hook, type HookKind, pathOrder, programsOf, progName, type Proto, STAGES, type Stage, targetOf, tcPrograms } from './stages.js';

const OBJECT = 'ktrace.bpf.o';
const NF_PRIORITY = -150; // before the filter tables (0): a drop there is seen after the stage

export const hookName = (h: Hook) => `${h.kind} ${h.at}${h.at6 ? ` / ${h.at6}` : ''}`;
/** The netfilter hooks by the names the stages use. */
const NF_POINT: Record<string, keyof typeof NF_HOOK> = { PRE_ROUTING: 'prerouting', LOCAL_IN: 'input', FORWARD: 'forward', LOCAL_OUT: 'output', POST_ROUTING: 'postrouting' };

/** What the run loads its programs for: the family, packet mode, and the fentry/tp_btf targets of generic programs. */
export interface LoadShape {
  family: 4 | 6;
  packet: boolean;
  /** What the run follows (a hook may be for some transports only). */
  proto: Proto;
  /** Generic fentry and tp_btf programs: the function or tracepoint each is loaded for. */
  targets: Map<string, string>;
}

/** Every program of the object, by kind (built-in, generic, both tc variants). */
function everyProgram(kind: HookKind): string[] {
  if (kind === 'tcx') return [...tcPrograms(false), ...tcPrograms(true)];
  const generic = Array.from({ length: GEN_SLOTS }, (_, i) => genericProgram(kind, i)).filter(Boolean);
  return [...programsOf(kind), ...generic];
}

/** Opens the object with only `on` loadable (netfilter programs typed by hand for old libbpf). */
export function openWith(on: Set<string>, config: Uint8Array, targets: Map<string, string> = new Map()): BpfObject {
  const obj = BpfObject.open(bpfObjectPath(OBJECT), 'ktrace');
  try {
    obj.setInitialValue('.rodata', config);
    for (const kind of HOOK_KINDS) {
      for (const p of everyProgram(kind)) {
        obj.setAutoload(p, on.has(p));
        if (kind === 'netfilter') obj.setProgType(p, BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER);
        const target = targets.get(p);
        if (on.has(p) && target) obj.setAttachTarget(p, target);
      }
    }
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

/** What each kind of hook can do here: "available", or why not (one probe load per kind). */
export function probeHooks(req: KtraceRequest, config: Uint8Array): Record<HookKind, string> {
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
    const reason = tryLoad(new Set(programsOf(kind, false)), config);
    out[kind] = reason ?? 'available';
  }
  return out;
}

/** Loads an object with only `on`: null when the kernel takes it, else why not. */
function tryLoad(on: Set<string>, config: Uint8Array, targets?: Map<string, string>): string | null {
  let obj: BpfObject | null = null;
  try {
    obj = openWith(on, config, targets);
    obj.load();
    return null;
  } catch (e) {
    // Refused with every capability held (as root): the kernel itself says no (lockdown, no
    // trampolines), not a missing privilege; BpfObject.load says so.
    return (e as Error).message.replace(/^ktrace: /, '');
  } finally {
    obj?.close();
  }
}

/**
 * A profile's generic points as this kernel has them, before the object is made: each generic
 * hook's target (fentry, tp_btf), the classic tracepoints' field offsets, and the hooks whose
 * point does not exist here, with why (keyed by program and target).
 */
export interface GenericResolution {
  targets: Map<string, string>;
  /** Per slot: the offset of the sk_buff field in its classic tracepoint's record. */
  offsets: number[];
  refused: Map<string, string>;
}

/** A hook's identity among refusals: its program and where it attaches. */
export const hookKey = (h: Hook, family: 4 | 6): string => `${progName(h, family)}@${targetOf(h, family)}`;

export function resolveGeneric(profile: Profile, family: 4 | 6): GenericResolution {
  const r: GenericResolution = { targets: new Map(), offsets: new Array(GEN_SLOTS).fill(0), refused: new Map() };
  for (const s of profile.stages) {
    for (const h of s.hooks) {
      if (!h.generic) continue;
      const target = targetOf(h, family);
      const key = hookKey(h, family);
      switch (h.kind) {
        case 'fentry':
          if (!btfHas(target)) r.refused.set(key, `no function ${target} in this kernel's BTF (vmlinux or a loaded module)`);
          else r.targets.set(progName(h, family), target);
          break;
        case 'tp_btf':
        case 'raw_tp':
          if (!btfHas(`btf_trace_${target}`)) r.refused.set(key, `no tracepoint ${target} in this kernel's BTF (vmlinux or a loaded module)`);
          else if (h.kind === 'tp_btf') r.targets.set(progName(h, family), target);
          break;
        case 'tracepoint': {
          const f = tracepointField(target, h.generic.field);
          if (typeof f === 'string') r.refused.set(key, f);
          else r.offsets[h.generic.slot] = f;
          break;
        }
        default:
          break;
      }
    }
  }
  return r;
}

/** The programs' .rodata, its generic part: each slot's stages, arguments, header place and tracepoint offset. */
export function writeGenericConfig(config: Uint8Array, profile: Profile, offsets: number[]): void {
  const v = new DataView(config.buffer, config.byteOffset, config.byteLength);
  for (let i = 0; i < GEN_SLOTS; i++) {
    config[CONFIG.gen_out + i] = profile.slots[i]?.out ?? NO_STAGE;
    config[CONFIG.gen_in + i] = profile.slots[i]?.in ?? NO_STAGE;
    v.setUint16(CONFIG.gen_off + 2 * i, offsets[i] ?? 0, true);
  }
  for (const s of profile.stages) {
    for (const h of s.hooks) {
      if (!h.generic || !(h.kind in GEN_KIND)) continue;
      const row = GEN_KIND[h.kind as keyof typeof GEN_KIND];
      config[CONFIG.gen_how + row * GEN_SLOTS + h.generic.slot] = h.generic.arg | (h.generic.data ? HOW_DATA : 0);
    }
  }
}

/** Whether a hook is for the run's transport. */
const forProto = (h: Hook, shape: LoadShape) => !h.protos || h.protos.includes(shape.proto);

/** The program a hook runs in this run (tc: packet mode's variant). */
function programFor(h: Hook, shape: LoadShape): string {
  if (h.kind === 'tcx') return tcPrograms(shape.packet)[h.at === 'egress' ? 0 : 1];
  return progName(h, shape.family);
}

/** The stages a run takes from its profile, in path order (RX echo mode: no socket stages). */
export function runStages(profile: Profile, rx: boolean, packet: boolean): Stage[] {
  return pathOrder(rx && !packet, profile.stages);
}

/**
 * Hooks that can be refused one by one (of the kinds available): built-in points younger kernels
 * have, a profile's generic fentry and tp_btf programs (their target checked by the kernel), and
 * packet mode's tc programs (a kfunc of Linux 6.3). Each is loaded on its own: the ones this
 * kernel refuses, with its reason, keyed as hookKey says.
 */
export function probeIndividually(stages: Stage[], hooks: Record<HookKind, string>, config: Uint8Array, shape: LoadShape, refused: Map<string, string>): void {
  const tried = new Set<string>();
  for (const s of stages) {
    for (const h of s.hooks) {
      if (hooks[h.kind] !== 'available' || !forProto(h, shape)) continue;
      const key = h.kind === 'tcx' ? programFor(h, shape) : hookKey(h, shape.family);
      if (tried.has(key) || refused.has(key)) continue;
      const one = h.optional || (h.generic && (h.kind === 'fentry' || h.kind === 'tp_btf')) || (h.kind === 'tcx' && shape.packet);
      if (!one) continue;
      tried.add(key);
      const p = programFor(h, shape);
      const why = tryLoad(new Set([p]), config, shape.targets);
      if (why !== null) refused.set(key, h.kind === 'tcx' ? `packet mode's tc programs need the kfunc bpf_cast_to_kern_ctx (Linux 6.3): ${why}` : why);
    }
  }
}

/** The programs to load: those of the run's stages (and the drop hooks) of available kinds, but the refused ones. */
export function programsToLoad(stages: Stage[], hooks: Record<HookKind, string>, refused: Map<string, string>, shape: LoadShape): Set<string> {
  const on = new Set<string>();
  for (const h of [...stages.flatMap((s) => s.hooks), ...DROP_HOOKS]) {
    if (hooks[h.kind] !== 'available' || h.kind === 'kprobe' || !forProto(h, shape)) continue;
    const key = h.kind === 'tcx' ? programFor(h, shape) : hookKey(h, shape.family);
    if (refused.has(key)) continue;
    on.add(programFor(h, shape));
    for (const x of h.also ?? []) on.add(x.prog);
  }
  return on;
}

export interface Attached {
  stage: Stage;
  hook: Hook | null;
  sameAs?: Stage;
  refused: { hook: string; reason: string }[];
}

/** Attaches one hook (the session runs it in the run's namespace); throws a PathlensError with the kernel's reason when it cannot. */
function attachHook(obj: BpfObject, h: Hook, shape: LoadShape, ifindex: number, clsact: ClsactHook | null): Attachment {
  const fd = obj.progFd(programFor(h, shape));
  switch (h.kind) {
    case 'fentry':
    case 'tp_btf':
      return attachRawTracepoint(fd, null);
    case 'raw_tp':
      return attachRawTracepoint(fd, h.at);
    case 'tracepoint': {
      const [system, name] = h.at.split('/');
      if (!h.also?.length) return attachTracepoint(fd, system, name);
      // A stage on several points: all of them, or none (what was attached is detached again).
      const links = [attachTracepoint(fd, system, name)];
      try {
        for (const x of h.also) {
          const [s2, n2] = x.at.split('/');
          links.push(attachTracepoint(obj.progFd(x.prog), s2, n2));
        }
      } catch (e) {
        for (const l of links) l.detach();
        throw e;
      }
      return { how: links[0].how, detach: () => links.forEach((l) => l.detach()) };
    }
    case 'netfilter':
      return attachNetfilter(fd, shape.family === 4 ? 'ipv4' : 'ipv6', NF_POINT[h.at], NF_PRIORITY);
    case 'tcx':
      return attachTc(fd, ifindex, h.at === 'egress', 'auto', clsact!);
    default:
      throw new PathlensError('ERR_BPF', `${h.kind} hooks are not used`);
  }
}

/** What was attached: each stage's hook (or why none), the stages measured, and where drops are learned. */
export interface StagePlanning {
  plans: Attached[];
  /** Stages attached at a point of their own, in path order. */
  measured: Stage[];
  firstPath: Stage[];
  secondPath: Stage[];
  drops: string | null;
}

/**
 * Attaches each stage to its first working hook (in the run's namespace for netfilter and tc),
 * and kfree_skb where it can; refuses, in one line, a plan with a path left without a stage.
 */
export function attachStages(session: BpfSession, req: KtraceRequest, stages: Stage[], shape: LoadShape, hooks: Record<HookKind, string>, ifindex: number, refused: Map<string, string>): StagePlanning {
  const rx = req.direction === 'rx' && !shape.packet;
  const obj = session.obj;
  const clsact = req.iface ? new ClsactHook(ifindex) : null;
  const plans: Attached[] = [];
  for (const stage of stages) {
    const a: Attached = { stage, hook: null, refused: [] };
    for (const h of stage.hooks) {
      if (!forProto(h, shape)) {
        a.refused.push({ hook: hookName(h), reason: `for ${h.protos!.join(', ')} only` });
        continue;
      }
      if (hooks[h.kind] !== 'available') {
        a.refused.push({ hook: hookName(h), reason: hooks[h.kind] });
        continue;
      }
      const own = refused.get(h.kind === 'tcx' ? programFor(h, shape) : hookKey(h, shape.family));
      if (own !== undefined) {
        a.refused.push({ hook: hookName(h), reason: own });
        continue;
      }
      if (h.records !== undefined && stages.some((s) => s.id === h.records)) {
        // This stage's best point is another stage's: measured there, reported as the same.
        a.hook = h;
        a.sameAs = STAGES.find((s) => s.id === h.records);
        break;
      }
      try {
        session.attach(() => attachHook(obj, h, shape, ifindex, clsact));
        a.hook = h;
        // Its program times another stage's point, which this run lacks: this stage takes it.
        if (h.records !== undefined) a.stage = { ...stage, id: h.records };
        break;
      } catch (e) {
        a.refused.push({ hook: hookName(h), reason: (e as Error).message });
      }
    }
    plans.push(a);
  }
  // A collapsed stage points at a stage that must itself be attached at that hook.
  for (const a of plans) {
    if (a.sameAs && !plans.find((p) => p.stage.id === a.sameAs!.id && p.hook && !p.sameAs)) {
      a.refused.push({ hook: hookName(a.hook!), reason: `its program times the ${a.sameAs.name} stage's point, which this run does not have` });
      a.hook = null;
      delete a.sameAs;
    }
  }
  let drops: string | null = null;
  for (const h of DROP_HOOKS) {
    if (hooks[h.kind] !== 'available') continue;
    try {
      session.attach(() => attachHook(obj, h, shape, ifindex, clsact));
      drops = hookName(h);
      break;
    } catch {
      // drops are a bonus: without them incomplete trips carry no reason
    }
  }
  const measured = plans.filter((a) => a.hook && !a.sameAs).map((a) => a.stage);
  const firstPath = measured.filter((s) => s.path === (rx ? 'in' : 'out'));
  const secondPath = measured.filter((s) => s.path === (rx ? 'out' : 'in'));
  // Echo mode needs both paths; packet mode one at least.
  const none = (p: Stage[]) => p.filter((s) => s.name !== 'sendmsg').length === 0;
  if (shape.packet ? none(firstPath) && none(secondPath) : none(firstPath) || none(secondPath)) {
    const why = plans.flatMap((a) => a.refused.map((r) => `${a.stage.name}: ${r.hook}: ${r.reason}`));
    const which = shape.packet ? 'either' : none(firstPath) ? 'the first' : 'the second';
    throw new PathlensError('ERR_BPF', `no hook could be attached on ${which} path (${why.slice(0, 3).join('; ')})`);
  }
  return { plans, measured, firstPath, secondPath, drops };
}

/**
 * Tells the programs the order and where each path ends (map kt_plan): echo mode completes a
 * trip at the second path's last stage; packet mode a packet at its own path's last, and starts
 * one at its path's first stage that sees packets (not sendmsg, a system call).
 */
export function writePlan(obj: BpfObject, measured: Stage[], rx: boolean, packet: boolean): void {
  const b = new Uint8Array(PLAN.size);
  const outPath = measured.filter((s) => s.path === 'out');
  const inPath = measured.filter((s) => s.path === 'in');
  const last = (p: Stage[]) => p.at(-1)?.id ?? NO_STAGE;
  const first = (p: Stage[]) => p.find((s) => s.name !== 'sendmsg')?.id ?? NO_STAGE;
  b[PLAN.final_out] = packet || rx ? last(outPath) : NO_STAGE;
  b[PLAN.final_in] = packet || !rx ? last(inPath) : NO_STAGE;
  b[PLAN.first_out] = first(outPath);
  b[PLAN.first_in] = first(inPath);
  b[PLAN.nstages] = measured.length;
  measured.forEach((s, i) => (b[PLAN.order + i] = s.id));
  const rc = native().bpfMapUpdate(obj.mapFd('kt_plan'), new Uint8Array(4), b, 0);
  if (rc < 0) throw new SysError('bpf(BPF_MAP_UPDATE_ELEM)', rc, 'kt_plan');
}
