/**
 * Two views of one path compared hop by hop (`pathlens diff A B`): two runs, or two moments of
 * one run. Per TTL: the addresses that answered in A and in B (a hop whose set differs is
 * *changed*: which addresses came and went), the loss and mean RTT in each and their change, and
 * the loss verdicts. Pure: HopStats in, a HopDiff list out; render/path-diff.ts writes it.
 */
import type { HopStats } from './stats.js';

export const DIFF_SCHEMA = 'pathlens.diff/1';

export interface HopSide {
  addrs: string[];
  sent: number;
  loss: number;
  mean_ms: number | null;
  loss_verdict: string | null;
}

export interface HopDiff {
  ttl: number;
  a: HopSide | null;
  b: HopSide | null;
  /** The addresses answering at this TTL differ (or the hop is only in one). */
  changed: boolean;
  added: string[];
  removed: string[];
  /** B − A, percentage points; null when a side has no probes. */
  loss_delta: number | null;
  /** B − A, ms; null when a side has no RTT. */
  mean_delta_ms: number | null;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

function side(h: HopStats | undefined): HopSide | null {
  if (!h) return null;
  return { addrs: h.responders.map((r) => r.addr).sort(), sent: h.sent, loss: h.loss, mean_ms: h.mean_ms, loss_verdict: h.loss_verdict ?? null };
}

/** A hop-by-hop comparison of two paths (hops in any order). */
export function diffHops(a: readonly HopStats[], b: readonly HopStats[]): HopDiff[] {
  const byA = new Map(a.map((h) => [h.ttl, h]));
  const byB = new Map(b.map((h) => [h.ttl, h]));
  const ttls = [...new Set([...byA.keys(), ...byB.keys()])].sort((x, y) => x - y);
  return ttls.map((ttl) => {
    const sa = side(byA.get(ttl));
    const sb = side(byB.get(ttl));
    const inA = new Set(sa?.addrs ?? []);
    const inB = new Set(sb?.addrs ?? []);
    const added = [...inB].filter((x) => !inA.has(x));
    const removed = [...inA].filter((x) => !inB.has(x));
    return {
      ttl,
      a: sa,
      b: sb,
      changed: sa === null || sb === null || added.length > 0 || removed.length > 0,
      added,
      removed,
      loss_delta: sa && sb && sa.sent > 0 && sb.sent > 0 ? r3(sb.loss - sa.loss) : null,
      mean_delta_ms: sa?.mean_ms != null && sb?.mean_ms != null ? r3(sb.mean_ms - sa.mean_ms) : null,
    };
  });
}
