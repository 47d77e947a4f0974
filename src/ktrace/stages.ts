/**
 * ktrace's stages and, for each, its hooks best first. A stage is a point on the path of an
 * echo through this host; the out path is what leaves it, the in path what arrives (TX mode:
 * the request goes out, the reply comes in; RX mode: the other way round). At start each stage
 * takes the first hook the kernel accepts; two stages whose best working hook is the same point
 * (ip_send_skb and ip_local_out both become netfilter LOCAL_OUT without fentry) are reported as
 * one, never timed twice.
 */
export type HookKind = 'fentry' | 'kprobe' | 'tp_btf' | 'raw_tp' | 'tracepoint' | 'netfilter' | 'tcx';
export const HOOK_KINDS: readonly HookKind[] = ['fentry', 'kprobe', 'tp_btf', 'raw_tp', 'tracepoint', 'netfilter', 'tcx'];

export interface Hook {
  kind: HookKind;
  /** Where: a kernel function, a tracepoint, a netfilter hook, a tc direction. */
  at: string;
  /** The program, per family (fentry targets differ); one name when the same for both. */
  prog: string | { 4: string; 6: string };
  /** The stage the program records, when it is another stage's point (a collapse). */
  records?: number;
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

const fe = (fn4: string, fn6: string): Hook => ({ kind: 'fentry', at: fn4 === fn6 ? fn4 : `${fn4} / ${fn6}`, prog: { 4: `kt_fe_${fn4}`, 6: `kt_fe_${fn6}` } });
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

/** Every program of the object, by hook kind (what a probe load turns on); `optional`: only the optional ones, or only the others. */
export function programsOf(kind: HookKind, optional?: boolean): string[] {
  const out = new Set<string>();
  for (const h of [...STAGES.flatMap((s) => s.hooks), ...DROP_HOOKS]) {
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

/** Stages in path order: the first path (TX: out, RX: in), then the second. */
export function pathOrder(rx: boolean): Stage[] {
  const out = STAGES.filter((s) => s.path === 'out' && !(rx && s.txOnly));
  const inn = STAGES.filter((s) => s.path === 'in' && !(rx && s.txOnly));
  return rx ? [...inn, ...out] : [...out, ...inn];
}
