/**
 * Attaching programs so that nothing outlives the process:
 *  - tc: a tcx link (Linux 6.6+), which the kernel removes when its fd closes, so even SIGKILL
 *    leaves nothing behind; on older kernels, a clsact qdisc with a cls_bpf filter through
 *    netlink, removed on exit (and the qdisc too when pathlens created it);
 *  - XDP: an XDP link (Linux 5.9+), native driver mode or generic (skb) mode;
 *  - tracing: tp_btf and raw tracepoints (BPF_RAW_TRACEPOINT_OPEN), classic tracepoints through a
 *    perf event link, netfilter hooks (a BPF_NETFILTER link, Linux 6.4+, per namespace).
 * Every one of these is an fd: closing it, or the process ending, detaches the program.
 * Call the interface and netfilter ones inside the right network namespace.
 */
import { existsSync, readFileSync } from 'node:fs';
import { PathlensError, errnoName } from '../core/errors.js';
import { native } from '../native/index.js';
import { EACCES, EBUSY, EEXIST, EINVAL, EOPNOTSUPP, EPERM } from '../core/errno.js';

const BPF_XDP = 37;
const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;
const XDP_FLAGS_SKB_MODE = 2;
const XDP_FLAGS_DRV_MODE = 4;
/** cls_bpf filter handle and priority pathlens uses on the clsact path ("pl"). */
const TC_HANDLE = 0x706c;
const TC_PRIORITY = 0x706c;

export type TcMode = 'auto' | 'tcx' | 'clsact';
export type XdpMode = 'auto' | 'native' | 'generic';

export interface Attachment {
  /** How it is attached: tcx, clsact, xdp-native, xdp-generic. */
  readonly how: string;
  detach(): void;
}

function privilege(what: string): PathlensError {
  return new PathlensError('ERR_BPF', `${what} needs CAP_NET_ADMIN and CAP_BPF (run as root)`);
}

/** The clsact qdisc of one interface, shared by its ingress and egress filters. */
export class ClsactHook {
  private users = 0;
  private created = false;
  constructor(readonly ifindex: number) {}

  acquire(): void {
    if (this.users++ > 0) return;
    const rc = native().bpfTcHook(this.ifindex, 1);
    if (rc === 0) this.created = true;
    else if (-rc !== EEXIST) {
      this.users--;
      if (-rc === EPERM) throw privilege('adding a clsact qdisc');
      throw new PathlensError('ERR_BPF', `cannot add a clsact qdisc (${errnoName(-rc)})`);
    }
  }

  release(): void {
    if (--this.users > 0) return;
    if (this.created) native().bpfTcHook(this.ifindex, 0);
    this.created = false;
  }
}

/** Attaches progFd on tc ingress or egress of ifindex. */
export function attachTc(progFd: number, ifindex: number, egress: boolean, mode: TcMode, hook: ClsactHook): Attachment {
  const n = native();
  if (mode !== 'clsact') {
    const fd = n.bpfLinkCreate(progFd, ifindex, egress ? BPF_TCX_EGRESS : BPF_TCX_INGRESS, 0);
    if (fd >= 0) {
      let open = true;
      return {
        how: 'tcx',
        detach: () => {
          if (open) n.close(fd);
          open = false;
        },
      };
    }
    if (-fd === EPERM) throw privilege('attaching to tc');
    // EINVAL: this kernel has no tcx (before 6.6); anything else is a real refusal.
    if (mode === 'tcx' || -fd !== EINVAL) {
      throw new PathlensError('ERR_BPF', `the kernel refused a tcx link on ${egress ? 'egress' : 'ingress'} (${errnoName(-fd)})${-fd === EINVAL ? ': tcx needs Linux 6.6; use the clsact path' : ''}`);
    }
  }
  hook.acquire();
  const rc = n.bpfTcFilter(ifindex, egress ? 1 : 0, TC_HANDLE, TC_PRIORITY, progFd);
  if (rc < 0) {
    hook.release();
    if (-rc === EEXIST) {
      throw new PathlensError('ERR_BPF', `a tc filter with pathlens's handle is already on ${egress ? 'egress' : 'ingress'}: another pathlens pping runs on this interface, or one was killed and left it ('pathlens pping --cleanup -i IFACE' removes it)`);
    }
    throw new PathlensError('ERR_BPF', `cannot attach the tc ${egress ? 'egress' : 'ingress'} filter (${errnoName(-rc)})`);
  }
  let open = true;
  return {
    how: 'clsact',
    detach: () => {
      if (!open) return;
      open = false;
      n.bpfTcFilter(ifindex, egress ? 1 : 0, TC_HANDLE, TC_PRIORITY, -1);
      hook.release();
    },
  };
}

/** Attaches an XDP program to ifindex through a link. */
export function attachXdp(progFd: number, ifindex: number, mode: XdpMode): Attachment {
  const n = native();
  const tries: Array<[string, number]> =
    mode === 'native' ? [['xdp-native', XDP_FLAGS_DRV_MODE]] : mode === 'generic' ? [['xdp-generic', XDP_FLAGS_SKB_MODE]] : [['xdp-native', XDP_FLAGS_DRV_MODE], ['xdp-generic', XDP_FLAGS_SKB_MODE]];
  let last = 0;
  for (const [how, flags] of tries) {
    const fd = n.bpfLinkCreate(progFd, ifindex, BPF_XDP, flags);
    if (fd >= 0) {
      let open = true;
      return {
        how,
        detach: () => {
          if (open) n.close(fd);
          open = false;
        },
      };
    }
    if (-fd === EPERM) throw privilege('attaching XDP');
    if (-fd === EBUSY || -fd === EEXIST) throw new PathlensError('ERR_BPF', 'another XDP program is attached to this interface; use --ingress-hook tc');
    last = fd;
  }
  const why = -last === EOPNOTSUPP || -last === EINVAL ? ': the driver has no native XDP (try --xdp-mode generic)' : '';
  throw new PathlensError('ERR_BPF', `the kernel refused the XDP link (${errnoName(-last)})${mode === 'native' ? why : ''}`);
}

/**
 * Removes the clsact filters a killed pathlens left on ifindex (tcx and XDP links never outlive
 * their process). The clsact qdisc stays: other filters may use it. Returns how many were removed.
 */
export function removeLeftoverFilters(ifindex: number): number {
  const n = native();
  let removed = 0;
  for (const egress of [0, 1]) {
    const rc = n.bpfTcFilter(ifindex, egress, TC_HANDLE, TC_PRIORITY, -1);
    if (rc === 0) removed++;
    else if (-rc === EPERM) throw privilege('removing tc filters');
  }
  return removed;
}

/** An fd whose closing detaches what it holds (links, raw tracepoints). */
function fdAttachment(how: string, fd: number): Attachment {
  let open = true;
  return {
    how,
    detach: () => {
      if (open) native().close(fd);
      open = false;
    },
  };
}

/** A raw_tp program on tracepoint `name`, or a tp_btf program on the one it was loaded for (name null). */
export function attachRawTracepoint(progFd: number, name: string | null): Attachment {
  const fd = native().bpfRawTracepointOpen(progFd, name);
  if (fd < 0) throw new PathlensError('ERR_BPF', `the kernel refused to attach ${name ? `raw tracepoint ${name}` : 'a tp_btf program'} (${errnoName(-fd)})${-fd === EPERM ? ': it needs CAP_BPF and CAP_PERFMON (run as root)' : ''}`);
  return fdAttachment(name ? 'raw_tp' : 'tp_btf', fd);
}

/** Where tracefs is mounted, if it is. */
const TRACEFS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

/** The tracefs id of a classic tracepoint (events/<system>/<name>/id). */
export function tracepointId(system: string, name: string): number {
  const root = TRACEFS.find((d) => existsSync(`${d}/events`));
  if (!root) throw new PathlensError('ERR_BPF', 'tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing): classic tracepoints need it');
  const path = `${root}/events/${system}/${name}/id`;
  if (!existsSync(path)) throw new PathlensError('ERR_BPF', `this kernel has no tracepoint ${system}/${name}`);
  return Number(readFileSync(path, 'utf8').trim());
}

/** A tracepoint program on classic tracepoint system/name, through a perf event link. */
export function attachTracepoint(progFd: number, system: string, name: string): Attachment {
  const n = native();
  const perf = n.perfTracepointOpen(tracepointId(system, name));
  if (perf < 0) throw new PathlensError('ERR_BPF', `perf_event_open of tracepoint ${system}/${name} refused (${errnoName(-perf)})${-perf === EACCES || -perf === EPERM ? ': it needs CAP_PERFMON (run as root)' : ''}`);
  const link = n.bpfPerfEventLink(progFd, perf);
  // The link holds the perf event; our fd of it is no longer needed either way.
  n.close(perf);
  if (link < 0) throw new PathlensError('ERR_BPF', `the kernel refused to link a program to tracepoint ${system}/${name} (${errnoName(-link)})`);
  return fdAttachment('tracepoint', link);
}

/** Netfilter families and hooks, by the names the kernel gives them. */
export const NFPROTO = { ipv4: 2, ipv6: 10 } as const;
export const NF_HOOK = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 } as const;
export const BPF_PROG_TYPE_NETFILTER = 32;
export const BPF_NETFILTER = 45;

/** A netfilter program on one hook of the calling thread's network namespace. */
export function attachNetfilter(progFd: number, family: keyof typeof NFPROTO, hook: keyof typeof NF_HOOK, priority: number): Attachment {
  const fd = native().bpfNetfilterLink(progFd, NFPROTO[family], NF_HOOK[hook], priority, 0);
  if (fd < 0) {
    const why = -fd === EINVAL || -fd === EOPNOTSUPP ? ': BPF netfilter links need Linux 6.4' : -fd === EPERM ? ': it needs CAP_NET_ADMIN and CAP_BPF (run as root)' : '';
    throw new PathlensError('ERR_BPF', `the kernel refused a netfilter link at ${family} ${hook} (${errnoName(-fd)})${why}`);
  }
  return fdAttachment('netfilter', fd);
}
