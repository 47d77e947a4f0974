/**
 * ktrace's hooks: which kinds of hook this kernel accepts (one probe load per kind), the object
 * loaded with those, each stage attached to the first of its hooks that works (the ladder), the
 * refusals kept with the kernel's reasons, and the plan the programs are told (the trip's order
 * and its final stage).
 */
import { existsSync } from 'node:fs';
import { type Attachment, attachNetfilter, attachRawTracepoint, attachTc, attachTracepoint, BPF_NETFILTER, BPF_PROG_TYPE_NETFILTER, ClsactHook, NF_HOOK } from '../bpf/attach.js';
import { BpfObject, bpfObjectPath } from '../bpf/object.js';
import type { BpfSession } from '../bpf/session.js';
import { PathlensError, SysError } from '../core/errors.js';
import { native } from '../native/index.js';
import { PLAN } from './layout.js';
import type { KtraceRequest } from './request.js';
import { DROP_HOOKS, HOOK_KINDS, type Hook, type HookKind, pathOrder, programsOf, progName, STAGES, type Stage } from './stages.js';

const OBJECT = 'ktrace.bpf.o';
const NF_PRIORITY = -150; // before the filter tables (0): a drop there is seen after the stage

export const hookName = (h: Hook) => `${h.kind} ${h.at}`;
/** The netfilter hooks by the names the stages use. */
const NF_POINT: Record<string, keyof typeof NF_HOOK> = { PRE_ROUTING: 'prerouting', LOCAL_IN: 'input', LOCAL_OUT: 'output', POST_ROUTING: 'postrouting' };

/** Opens the object with only `on` loadable (netfilter programs typed by hand for old libbpf). */
export function openWith(on: Set<string>, config: Uint8Array): BpfObject {
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
    let obj: BpfObject | null = null;
    try {
      obj = openWith(new Set(programsOf(kind, false)), config);
      obj.load();
      out[kind] = 'available';
    } catch (e) {
      // Refused with every capability held (as root): the kernel itself says no (lockdown, no
      // trampolines), not a missing privilege; BpfObject.load says so.
      out[kind] = (e as Error).message.replace(/^ktrace: /, '');
    } finally {
      obj?.close();
    }
  }
  return out;
}

export interface Attached {
  stage: Stage;
  hook: Hook | null;
  sameAs?: Stage;
  refused: { hook: string; reason: string }[];
}

/** Attaches one hook (the session runs it in the run's namespace); throws a PathlensError with the kernel's reason when it cannot. */
function attachHook(obj: BpfObject, h: Hook, family: 4 | 6, ifindex: number, clsact: ClsactHook | null): Attachment {
  const fd = obj.progFd(progName(h, family));
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
      return attachNetfilter(fd, family === 4 ? 'ipv4' : 'ipv6', NF_POINT[h.at], NF_PRIORITY);
    case 'tcx':
      return attachTc(fd, ifindex, h.at === 'egress', 'auto', clsact!);
    default:
      throw new PathlensError('ERR_BPF', `${h.kind} hooks are not used`);
  }
}

/**
 * The optional programs of the available kinds (points younger kernels have), each probed on its
 * own: the ones this kernel refuses, with its reason.
 */
export function probeOptional(hooks: Record<HookKind, string>, config: Uint8Array): Map<string, string> {
  const refused = new Map<string, string>();
  for (const kind of HOOK_KINDS) {
    if (hooks[kind] !== 'available') continue;
    for (const p of programsOf(kind, true)) {
      let obj: BpfObject | null = null;
      try {
        obj = openWith(new Set([p]), config);
        obj.load();
      } catch (e) {
        refused.set(p, (e as Error).message.replace(/^ktrace: /, ''));
      } finally {
        obj?.close();
      }
    }
  }
  return refused;
}

/** The programs to load: every one of the kinds that are available, but the optional ones refused. */
export function availablePrograms(hooks: Record<HookKind, string>, refused: Map<string, string> = new Map()): Set<string> {
  const on = new Set<string>();
  for (const kind of HOOK_KINDS) {
    if (hooks[kind] !== 'available') continue;
    for (const p of kind === 'tcx' ? ['kt_tc_egress', 'kt_tc_ingress'] : programsOf(kind)) if (!refused.has(p)) on.add(p);
  }
  return on;
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
export function attachStages(session: BpfSession, req: KtraceRequest, family: 4 | 6, hooks: Record<HookKind, string>, ifindex: number, refusedProgs: Map<string, string> = new Map()): StagePlanning {
  const rx = req.direction === 'rx';
  const obj = session.obj;
  const clsact = req.iface ? new ClsactHook(ifindex) : null;
  const plans: Attached[] = [];
  for (const stage of pathOrder(rx)) {
    const a: Attached = { stage, hook: null, refused: [] };
    for (const h of stage.hooks) {
      if (hooks[h.kind] !== 'available') {
        a.refused.push({ hook: hookName(h), reason: hooks[h.kind] });
        continue;
      }
      const own = h.prog ? refusedProgs.get(progName(h, family)) : undefined;
      if (own !== undefined) {
        a.refused.push({ hook: hookName(h), reason: own });
        continue;
      }
      if (h.records !== undefined) {
        // This stage's best point is another stage's: measured there, reported as the same.
        a.hook = h;
        a.sameAs = STAGES.find((s) => s.id === h.records);
        break;
      }
      try {
        session.attach(() => attachHook(obj, h, family, ifindex, clsact));
        a.hook = h;
        break;
      } catch (e) {
        a.refused.push({ hook: hookName(h), reason: (e as Error).message });
      }
    }
    plans.push(a);
  }
  // A collapsed stage points at a stage that must itself be attached at that hook.
  for (const a of plans) if (a.sameAs && !plans.find((p) => p.stage === a.sameAs && p.hook && !p.sameAs)) a.hook = null;
  let drops: string | null = null;
  for (const h of DROP_HOOKS) {
    if (hooks[h.kind] !== 'available') continue;
    try {
      session.attach(() => attachHook(obj, h, family, ifindex, clsact));
      drops = hookName(h);
      break;
    } catch {
      // drops are a bonus: without them incomplete trips carry no reason
    }
  }
  const measured = plans.filter((a) => a.hook && !a.sameAs).map((a) => a.stage);
  const firstPath = measured.filter((s) => s.path === (rx ? 'in' : 'out'));
  const secondPath = measured.filter((s) => s.path === (rx ? 'out' : 'in'));
  if (firstPath.length === 0 || secondPath.length === 0) {
    const refused = plans.flatMap((a) => a.refused.map((r) => `${a.stage.name}: ${r.hook}: ${r.reason}`));
    throw new PathlensError('ERR_BPF', `no hook could be attached on the ${firstPath.length === 0 ? 'first' : 'second'} path (${refused.slice(0, 3).join('; ')})`);
  }
  return { plans, measured, firstPath, secondPath, drops };
}

/** Tells the programs the order and the final stage (map kt_plan). */
export function writePlan(obj: BpfObject, measured: Stage[]): void {
  const plan = new Uint8Array(PLAN.size);
  plan[PLAN.final] = measured.at(-1)!.id;
  plan[PLAN.nstages] = measured.length;
  measured.forEach((s, i) => (plan[PLAN.order + i] = s.id));
  const rc = native().bpfMapUpdate(obj.mapFd('kt_plan'), new Uint8Array(4), plan, 0);
  if (rc < 0) throw new SysError('bpf(BPF_MAP_UPDATE_ELEM)', rc, 'kt_plan');
}
