/**
 * Attaching programs to an interface so that nothing outlives the process:
 *  - tc: a tcx link (Linux 6.6+), which the kernel removes when its fd closes, so even SIGKILL
 *    leaves nothing behind; on older kernels, a clsact qdisc with a cls_bpf filter through
 *    netlink, removed on exit (and the qdisc too when pathlens created it);
 *  - XDP: an XDP link (Linux 5.9+), native driver mode or generic (skb) mode.
 * Call these inside the interface's network namespace (ifindexes are per namespace).
 */
import { PathlensError, errnoName } from '../core/errors.js';
import { native } from '../native/index.js';
import { EBUSY, EEXIST, EINVAL, EOPNOTSUPP, EPERM } from '../core/errno.js';

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
