/**
 * ktrace's built-in stages (the programs compiled for each) and, for each, its hooks best first;
 * a profile (profile.ts, profiles/ktrace/*.yaml) picks and orders stages, and adds its own on the
 * generic programs. A stage is a point on the path of an
 * echo through this host; the out path is what leaves it, the in path what arrives (TX mode:
 * the request goes out, the reply comes in; RX mode: the other way round). At start each stage
 * takes the first hook the kernel accepts; two stages whose best working hook is the same point
 * (ip_send_skb and ip_local_out both become netfilter LOCAL_OUT without fentry) are reported as
 * one, never timed twice.
 */
export type HookKind = 'fentry' | 'kprobe' | 'tp_btf' | 'raw_tp' | 'tracepoint' | 'netfilter' | 'tcx';
export const HOOK_KINDS: readonly HookKind[] = ['fentry', 'kprobe', 'tp_btf', 'raw_tp', 'tracepoint', 'netfilter', 'tcx'];

/** What a run follows: ICMP echoes, or a TCP or UDP flow's packets. */
export type Proto = 'icmp' | 'udp' | 'tcp';

export interface Hook {
  kind: HookKind;
  /** Where: a kernel function, a tracepoint, a netfilter hook, a tc direction. */
  at: string;
  /** fentry and kprobe: the IPv6 path's function, when another one. */
  at6?: string;
  /** The program, per family (fentry targets differ); one name when the same for both. */
  prog: string | { 4: string; 6: string };
  /** Only for these transports (a profile's `proto`): others skip the hook. */
  protos?: Proto[];
  /** A built-in program that records another stage's point (a collapse: that stage's id). */
  records?: number;
  /** A profile's own hook, on generic program slot `slot` (its target set before load). */
  generic?: { slot: number; arg: number; data: boolean; field: string };
  /**
   * A point younger kernels have (the socket's tracepoints, Linux 6.7): probed on its own, so a
   * kernel without it loses this hook, not the whole kind.
   */
  optional?: true;
  /** More points the same stage needs attached too (sendto and sendmsg), with their programs. */
  also?: { at: string; prog: string }[];
}

export interface Stage {
  id: number;
  name: string;
  path: 'out' | 'in';
  hooks: Hook[];
  /** Only in TX mode: the pinging process's socket (in RX mode the kernel answers, no socket reads). */
  txOnly?: true;
}

const fe = (fn4: string, fn6: string): Hook => ({ kind: 'fentry', at: fn4, ...(fn4 !== fn6 ? { at6: fn6 } : {}), prog: { 4: `kt_fe_${fn4}`, 6: `kt_fe_${fn6}` } });
const kp = (fn: string): Hook => ({ kind: 'kprobe', at: fn, prog: '' });
/** A tracepoint's hooks: tp_btf, raw, and classic (when its record holds the skb address). */
const tps = (name: string, system: string | null = 'net'): Hook[] => [
  { kind: 'tp_btf', at: name, prog: `kt_btf_${name}` },
  { kind: 'raw_tp', at: name, prog: `kt_raw_${name}` },
  ...(system ? [{ kind: 'tracepoint' as const, at: `${system}/${name}`, prog: `kt_tp_${name}` }] : []),
];
const optional = (h: Hook): Hook => ({ ...h, optional: true });
const nf = (hook: string, prog: string, records?: number): Hook => ({ kind: 'netfilter', at: hook, prog: `kt_nf_${prog}`, ...(records !== undefined ? { records } : {}) });

export const STAGES: readonly Stage[] = [
  // The sender's system call (TX): its sendto or sendmsg began. The syscall tracepoints carry no
  // packet: the task's time is kept and taken by the trip a tracing stage later sees it send. So
  // the stack's send path before LOCAL_OUT is measured too. First in path order (the array's).
  { id: 12, name: 'sendmsg', path: 'out', txOnly: true, hooks: [{ kind: 'tracepoint', at: 'syscalls/sys_enter_sendto', prog: 'kt_tp_sys_enter_sendto', optional: true, also: [{ at: 'syscalls/sys_enter_sendmsg', prog: 'kt_tp_sys_enter_sendmsg' }] }] },
  { id: 0, name: 'ip_send_skb', path: 'out', hooks: [fe('ip_send_skb', 'ip6_send_skb'), kp('ip_send_skb'), nf('LOCAL_OUT', 'local_out', 1)] },
  { id: 1, name: 'ip_local_out', path: 'out', hooks: [fe('ip_local_out', 'ip6_local_out'), kp('ip_local_out'), nf('LOCAL_OUT', 'local_out')] },
  { id: 2, name: 'post_routing', path: 'out', hooks: [nf('POST_ROUTING', 'post_routing')] },
  { id: 3, name: 'tc_egress', path: 'out', hooks: [{ kind: 'tcx', at: 'egress', prog: 'kt_tc_egress' }] },
  { id: 4, name: 'dev_queue_xmit', path: 'out', hooks: [fe('__dev_queue_xmit', '__dev_queue_xmit'), kp('__dev_queue_xmit'), ...tps('net_dev_queue')] },
  // The classic net_dev_start_xmit record holds no skb address: tp_btf or raw only.
  { id: 5, name: 'dev_start_xmit', path: 'out', hooks: tps('net_dev_start_xmit', null) },
  { id: 6, name: '__netif_receive_skb', path: 'in', hooks: [fe('__netif_receive_skb', '__netif_receive_skb'), kp('__netif_receive_skb'), ...tps('netif_receive_skb')] },
  { id: 7, name: 'tc_ingress', path: 'in', hooks: [{ kind: 'tcx', at: 'ingress', prog: 'kt_tc_ingress' }] },
  { id: 8, name: 'ip_rcv', path: 'in', hooks: [fe('ip_rcv', 'ipv6_rcv'), kp('ip_rcv'), nf('PRE_ROUTING', 'pre_routing')] },
  { id: 9, name: 'icmp_rcv', path: 'in', hooks: [fe('icmp_rcv', 'icmpv6_rcv'), kp('icmp_rcv'), nf('LOCAL_IN', 'local_in')] },
  // The socket: the reply queued on the pinging socket (its reader woken), then copied out by the
  // reader's recvmsg. Between the two: wakeup and scheduling, which ping's own RTT (taken from the
  // kernel's receive stamp) does not show and a program that reads late pays.
  { id: 10, name: 'sk_data_ready', path: 'in', txOnly: true, hooks: tps('sk_data_ready', 'sock').map(optional) },
  { id: 11, name: 'sk_read', path: 'in', txOnly: true, hooks: tps('skb_copy_datagram_iovec', 'skb').map(optional) },
];

/** Drops: not a stage, but where an incomplete trip learns why (kfree_skb's reason). */
export const DROP_HOOKS: readonly Hook[] = tps('kfree_skb', 'skb');

/** The tc programs: the echo mode's, or packet mode's (which learn the buffer's address). */
export const tcPrograms = (packet: boolean): string[] => (packet ? ['kt_tc_egress_pk', 'kt_tc_ingress_pk'] : ['kt_tc_egress', 'kt_tc_ingress']);

/** The built-in programs of the stages given (all built-in stages by default) and the drop hooks, by hook kind; `optional`: only the optional ones, or only the others. */
export function programsOf(kind: HookKind, optional?: boolean, stages: readonly Stage[] = STAGES): string[] {
  const out = new Set<string>();
  for (const h of [...stages.flatMap((s) => s.hooks), ...DROP_HOOKS]) {
    if (h.generic) continue;
    if (h.kind !== kind || !h.prog) continue;
    if (optional !== undefined && !!h.optional !== optional) continue;
    for (const x of h.also ?? []) out.add(x.prog);
    if (typeof h.prog === 'string') out.add(h.prog);
    else {
      out.add(h.prog[4]);
      out.add(h.prog[6]);
    }
  }
  return [...out];
}

export function progName(h: Hook, family: 4 | 6): string {
  return typeof h.prog === 'string' ? h.prog : h.prog[family];
}

/** Where a hook attaches for a family (fentry and kprobe functions may differ for IPv6). */
export const targetOf = (h: Hook, family: 4 | 6): string => (family === 6 && h.at6 ? h.at6 : h.at);

/** Stages in path order: the first path (TX: out, RX: in), then the second (array order within a path). */
export function pathOrder(rx: boolean, stages: readonly Stage[] = STAGES): Stage[] {
  const out = stages.filter((s) => s.path === 'out' && !(rx && s.txOnly));
  const inn = stages.filter((s) => s.path === 'in' && !(rx && s.txOnly));
  return rx ? [...inn, ...out] : [...out, ...inn];
}
