/**
 * The human view of `pathlens ktrace`, golden: the plan, a TX round trip path by path (per-stage
 * deltas, path times, the wire gap, the split total), a stack, an RX trip, an incomplete trip with
 * its drop reason, a histogram and the closing line, from hand-built events.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KTRACE_SCHEMA, type KtraceEvent, type StagePlan } from '../../src/ktrace/events.js';
import { KtraceTextView } from '../../src/render/ktrace-text.js';

const S = KTRACE_SCHEMA;
const plan = (name: string, path: 'out' | 'in', hook: string | null, same_as?: string): StagePlan => ({
  name,
  path,
  hook,
  ...(same_as ? { same_as } : {}),
  refused: hook ? [] : [{ hook: 'tcx egress', reason: 'no --iface' }],
});

const HOOKS = { fentry: 'refused (EPERM)', kprobe: 'not built into this kernel', tp_btf: 'available', raw_tp: 'available', tracepoint: 'available', netfilter: 'available', tcx: 'available' };

function render(events: KtraceEvent[]): string {
  const lines: string[] = [];
  const v = new KtraceTextView((l) => lines.push(l));
  for (const e of events) v.event(e);
  return lines.join('\n') + '\n';
}

test('ktrace view, TX: plan, per-path deltas and path times, the wire gap, a stack, an incomplete trip, histograms, the end', () => {
  const events: KtraceEvent[] = [
    {
      schema: S, type: 'start', t_ms: 0, version: '0.1.0', time: '2026-11-29T23:00:00.000Z', direction: 'tx', profile: 'kernel', mode: 'echo', proto: null, port: null, family: 4,
      src: '10.100.0.1', dst: '10.100.1.2', netns: 'pl-k-src', iface: null,
      stages: [
        plan('ip_send_skb', 'out', 'netfilter LOCAL_OUT', 'ip_local_out'),
        plan('ip_local_out', 'out', 'netfilter LOCAL_OUT'),
        plan('tc_egress', 'out', null),
        plan('dev_queue_xmit', 'out', 'tp_btf net_dev_queue'),
        plan('__netif_receive_skb', 'in', 'tp_btf netif_receive_skb'),
        plan('icmp_rcv', 'in', 'netfilter LOCAL_IN'),
      ],
      hooks: HOOKS, drops: 'tp_btf kfree_skb',
    },
    {
      schema: S, type: 'rtt', t_ms: 1200, id: 7, seq: 1,
      stages: [
        { name: 'ip_local_out', hook: 'netfilter LOCAL_OUT', t_ns: 0 },
        { name: 'dev_queue_xmit', hook: 'tp_btf net_dev_queue', t_ns: 9_900, stack: ['__dev_queue_xmit+0x486', 'ping_v4_sendmsg+0x40b'] },
        { name: '__netif_receive_skb', hook: 'tp_btf netif_receive_skb', t_ns: 40_000, stack: null },
        { name: 'icmp_rcv', hook: 'netfilter LOCAL_IN', t_ns: 45_600 },
      ],
      total_ns: 45_600, wire_ns: 30_100, answer_ns: null, wakeup_ns: null, pid: 4582, comm: 'ping', ifindex_out: 2, ifindex_in: 2,
    },
    {
      schema: S, type: 'incomplete', t_ms: 2300, id: 7, seq: 2,
      stages: [
        { name: 'ip_local_out', hook: 'netfilter LOCAL_OUT', t_ns: 0 },
        { name: 'dev_queue_xmit', hook: 'tp_btf net_dev_queue', t_ns: 10_000 },
        { name: '__netif_receive_skb', hook: 'tp_btf netif_receive_skb', t_ns: 41_000 },
      ],
      last_stage: '__netif_receive_skb', dropped: 'reply', drop_reason: 'NETFILTER_DROP', why: 'timeout',
    },
    { schema: S, type: 'incomplete', t_ms: 2400, id: 7, seq: 3, stages: [], last_stage: null, dropped: null, drop_reason: null, why: 'stopped' },
    {
      schema: S, type: 'histogram', t_ms: 3000,
      segments: [
        { from: 'ip_local_out', to: 'dev_queue_xmit', buckets: [{ ge_ns: 8192, count: 3 }, { ge_ns: 16384, count: 1 }] },
        { from: 'dev_queue_xmit', to: '__netif_receive_skb', buckets: [] },
      ],
    },
    { schema: S, type: 'done', t_ms: 3100, reason: 'interrupted', trips: 1, incomplete: 2, lost: 0, duration_ms: 3100 },
  ];
  assert.equal(render(events), `pathlens ktrace: ICMP echo 10.100.0.1 -> 10.100.1.2 (TX: pinging from here), netns pl-k-src
  ip_send_skb           netfilter LOCAL_OUT (same point as ip_local_out)
  ip_local_out          netfilter LOCAL_OUT
  tc_egress             not measured: no --iface
  dev_queue_xmit        tp_btf net_dev_queue
  __netif_receive_skb   tp_btf netif_receive_skb
  icmp_rcv              netfilter LOCAL_IN
  drops: tp_btf kfree_skb
echo 10.100.0.1 -> 10.100.1.2 id 7 seq 1 (ping pid 4582, out ifindex 2, in ifindex 2)
  request out  ip_local_out          netfilter LOCAL_OUT            0.0 us
               dev_queue_xmit        tp_btf net_dev_queue          +9.9 us   = 9.9 us
                 __dev_queue_xmit+0x486
                 ping_v4_sendmsg+0x40b
  wire and far end                                                 30.1 us
  reply in     __netif_receive_skb   tp_btf netif_receive_skb       0.0 us
                 (no stack: the kernel's stack map is full)
               icmp_rcv              netfilter LOCAL_IN            +5.6 us   = 5.6 us
  total 45.6 us: request out 9.9, wire and far end 30.1, reply in 5.6 us
echo id 7 seq 2: incomplete after __netif_receive_skb (reply dropped by the kernel: NETFILTER_DROP)
echo id 7 seq 3: incomplete after no stage (the run ended)
histograms (ns, per segment) at 3.0 s:
  ip_local_out -> dev_queue_xmit (4)
         8192 -> 16383     ns :       3 |****************************************|
        16384 -> 32767     ns :       1 |*************                           |
-- 1 round trip, 2 incomplete (interrupted, 3.10 s)
`);
});

test('ktrace view, RX: the request comes in first, the gap is this host answering, no process is named, IPv6', () => {
  const events: KtraceEvent[] = [
    {
      schema: S, type: 'start', t_ms: 0, version: '0.1.0', time: '2026-11-29T23:00:00.000Z', direction: 'rx', profile: 'kernel', mode: 'echo', proto: null, port: null, family: 6,
      src: 'fd00::1', dst: 'fd00::2', netns: null, iface: 'e0',
      stages: [plan('__netif_receive_skb', 'in', 'tp_btf netif_receive_skb'), plan('ip_local_out', 'out', 'netfilter LOCAL_OUT')],
      hooks: HOOKS, drops: null,
    },
    {
      schema: S, type: 'rtt', t_ms: 5, id: 9, seq: 4,
      stages: [
        { name: '__netif_receive_skb', hook: 'tp_btf netif_receive_skb', t_ns: 0 },
        { name: 'ip_local_out', hook: 'netfilter LOCAL_OUT', t_ns: 12_300 },
      ],
      total_ns: 12_300, wire_ns: null, answer_ns: 12_300, wakeup_ns: null, pid: null, comm: null, ifindex_out: 3, ifindex_in: 3,
    },
  ];
  assert.equal(render(events), `pathlens ktrace: ICMPv6 echo fd00::2 -> fd00::1 (RX: pinged here)
  __netif_receive_skb   tp_btf netif_receive_skb
  ip_local_out          netfilter LOCAL_OUT
  drops: not seen (no kfree_skb hook)
echo fd00::2 -> fd00::1 id 9 seq 4 (out ifindex 3, in ifindex 3)
  request in   __netif_receive_skb   tp_btf netif_receive_skb       0.0 us
  answering here                                                   12.3 us
  reply out    ip_local_out          netfilter LOCAL_OUT            0.0 us
  total 12.3 us: request in 0.0, answering here 12.3, reply out 0.0 us
`);
});

test('ktrace view, packet mode: the flow, each packet on its path with its ports, length and TCP flags, how it ended, the drops, the end', () => {
  const st = (name: string, hook: string, t_ns: number) => ({ name, hook, t_ns });
  const events: KtraceEvent[] = [
    {
      schema: S, type: 'start', t_ms: 0, version: '0.1.0', time: '2026-11-29T23:00:00.000Z', direction: 'tx', profile: 'transport', mode: 'packet', proto: 'tcp', port: 443, family: 4,
      src: '10.0.0.1', dst: '10.0.0.2', netns: 'lab-src', iface: null,
      stages: [plan('ip_local_out', 'out', 'netfilter LOCAL_OUT'), plan('__netif_receive_skb', 'in', 'tp_btf netif_receive_skb'), plan('local_in', 'in', 'netfilter LOCAL_IN'), plan('sk_read', 'in', 'tp_btf skb_copy_datagram_iovec')],
      hooks: HOOKS, drops: 'tp_btf kfree_skb',
    },
    {
      schema: S, type: 'packet', t_ms: 10, dir: 'out', proto: 'tcp', src: '10.0.0.1', sport: 40000, dst: '10.0.0.2', dport: 443, len: 60, tcp: { seq: 1000, flags: 'S' },
      stages: [st('ip_local_out', 'netfilter LOCAL_OUT', 0)], total_ns: 0, end: 'complete', last_stage: 'ip_local_out', drop_reason: null, pid: 77, comm: 'curl', ifindex: 2,
    },
    {
      schema: S, type: 'packet', t_ms: 11, dir: 'in', proto: 'tcp', src: '10.0.0.2', sport: 443, dst: '10.0.0.1', dport: 40000, len: 252, tcp: { seq: 5000, flags: 'PA' },
      stages: [st('__netif_receive_skb', 'tp_btf netif_receive_skb', 0), st('local_in', 'netfilter LOCAL_IN', 4_100), st('sk_read', 'tp_btf skb_copy_datagram_iovec', 20_500)],
      total_ns: 20_500, end: 'complete', last_stage: 'sk_read', drop_reason: null, pid: null, comm: null, ifindex: 2,
    },
    {
      schema: S, type: 'packet', t_ms: 1200, dir: 'in', proto: 'tcp', src: '10.0.0.2', sport: 443, dst: '10.0.0.1', dport: 40000, len: 52, tcp: { seq: 5200, flags: 'A' },
      stages: [st('__netif_receive_skb', 'tp_btf netif_receive_skb', 0), st('local_in', 'netfilter LOCAL_IN', 3_000)],
      total_ns: 3_000, end: 'timeout', last_stage: 'local_in', drop_reason: null, pid: null, comm: null, ifindex: 2,
    },
    {
      schema: S, type: 'packet', t_ms: 1300, dir: 'in', proto: 'tcp', src: '10.0.0.2', sport: 443, dst: '10.0.0.1', dport: 40000, len: 52, tcp: { seq: 5200, flags: 'FA' },
      stages: [st('__netif_receive_skb', 'tp_btf netif_receive_skb', 0)],
      total_ns: 0, end: 'dropped', last_stage: '__netif_receive_skb', drop_reason: 'NETFILTER_DROP', pid: null, comm: null, ifindex: 2,
    },
    { schema: S, type: 'drops', t_ms: 1400, total: 1, by: [{ dropped: 'in', reason: 'NETFILTER_DROP', stage: '__netif_receive_skb', count: 1 }] },
    { schema: S, type: 'done', t_ms: 1400, reason: 'interrupted', trips: 2, incomplete: 2, lost: 0, duration_ms: 1400 },
  ];
  assert.equal(render(events), `pathlens ktrace: TCP packets between 10.0.0.1 and 10.0.0.2 (port 443), each way, netns lab-src, profile transport
  ip_local_out          netfilter LOCAL_OUT
  __netif_receive_skb   tp_btf netif_receive_skb
  local_in              netfilter LOCAL_IN
  sk_read               tp_btf skb_copy_datagram_iovec
  drops: tp_btf kfree_skb
tcp out 10.0.0.1:40000 -> 10.0.0.2:443 len 60 [S] seq 1000 (ifindex 2, curl pid 77)
  out          ip_local_out          netfilter LOCAL_OUT            0.0 us
  total 0.0 us
tcp in 10.0.0.2:443 -> 10.0.0.1:40000 len 252 [PA] seq 5000 (ifindex 2)
  in           __netif_receive_skb   tp_btf netif_receive_skb       0.0 us
               local_in              netfilter LOCAL_IN            +4.1 us
               sk_read               tp_btf skb_copy_datagram_iovec +16.4 us   = 20.5 us
  total 20.5 us
tcp in 10.0.0.2:443 -> 10.0.0.1:40000 len 52 [A] seq 5200 (ifindex 2)
  in           __netif_receive_skb   tp_btf netif_receive_skb       0.0 us
               local_in              netfilter LOCAL_IN            +3.0 us   = 3.0 us
  total 3.0 us; ended after local_in
tcp in 10.0.0.2:443 -> 10.0.0.1:40000 len 52 [FA] seq 5200 (ifindex 2)
  in           __netif_receive_skb   tp_btf netif_receive_skb       0.0 us
  total 0.0 us; dropped by the kernel: NETFILTER_DROP
drops: 1, by packet, reason and the last stage it reached:
       1  in       NETFILTER_DROP              after __netif_receive_skb
-- 2 packets through their path, 2 ended earlier (interrupted, 1.40 s)
`);
});
