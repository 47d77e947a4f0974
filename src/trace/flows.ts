/**
 * Paris-style flows for multipath exploration (--ecmp N): the probes of one TTL are numbered
 * 0..perTtl-1, and probe i belongs to flow i % flows, so each flow's identity (ports, checksum)
 * is the same at every TTL. This is the one place that numbering is written down; probers build
 * packets from it and the engine reports it.
 */
import type { EcmpAutoStatement, HopEvent, HopReply } from './events.js';
import { flowsNeeded, missProbability } from './mda.js';

/** The flow probe `seq` belongs to (0 when there is one flow). */
export function flowOf(seq: number, perTtl: number, flows: number): number {
  return flows > 1 ? (seq % perTtl) % flows : 0;
}

/**
 * Which flows reached each responder at one hop, and the confidence statement: with k
 * responders seen over n answered flows, the chance that one more, equally likely next hop went
 * unseen (and how many flows MDA needs for 95 %).
 */
export function multipath(replies: HopReply[], addrs: string[], extra?: EcmpAutoStatement): Pick<HopEvent, 'responders' | 'multipath'> {
  const byAddr = new Map<string, Set<number>>(addrs.map((a) => [a, new Set<number>()]));
  const answered = new Set<number>();
  for (const r of replies) {
    if (r.addr === null || r.flow === undefined) continue;
    byAddr.get(r.addr)!.add(r.flow);
    answered.add(r.flow);
  }
  const k = addrs.length;
  const n = answered.size;
  return {
    responders: addrs.map((a) => ({ addr: a, flows: [...byAddr.get(a)!].sort((x, y) => x - y) })),
    multipath: { next_hops: k, flows: n, miss_probability: Math.round(missProbability(k + 1, n) * 1e6) / 1e6, flows_for_95: flowsNeeded(k, 0.95), ...extra },
  };
}
