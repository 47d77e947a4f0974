/**
 * Path changes, damped: which addresses answer at each TTL, round after round, and when that
 * differs from the path known so far for `damping` rounds in a row, a change (old and new hop
 * lists, the TTLs that changed). What is *not* a change: a probe lost at a hop that still
 * forwards (a later hop answered, or the hop answered before and nothing says otherwise), and an
 * ECMP hop that showed fewer of its branches in a round that lost probes there. What is: a new
 * address at a TTL, a hop set that shrank in a round with no loss there, the target reached at
 * another TTL, or reached no longer (the path ends earlier: a link or a router down).
 *
 * Pure: one `round()` call per finished round.
 */
import type { HopSample } from './stats.js';

/** The addresses that answered at each TTL (sorted), from the first TTL, and whether the target answered. */
export interface PathShape {
  firstTtl: number;
  hops: string[][];
  reached: boolean;
}

export interface PathChange {
  kind: 'initial' | 'changed';
  from: PathShape | null;
  to: PathShape;
  /** TTLs whose addresses differ (all of the path for the initial one). */
  ttls: number[];
}

/**
 * Whether a reply names a hop of the path: a router's Time Exceeded, or the target's own answer.
 * A router's Destination Unreachable (no route, a link down) says the path ends there: it is not
 * a hop, and Linux sends it at most about once a second, so it comes at whatever TTL a probe was.
 */
export function isPathReply(r: HopSample['replies'][number]): boolean {
  return r.kind === undefined || r.kind !== 'unreachable' || r.code === 'port';
}

/** A round's shape (up to its last hop that answered), and per TTL whether every probe there was answered. */
export function shapeOf(hops: readonly HopSample[], reached: boolean): { shape: PathShape; lossless: boolean[] } {
  const sorted = [...hops].sort((a, b) => a.ttl - b.ttl);
  const firstTtl = sorted.length ? sorted[0].ttl : 1;
  const out: string[][] = [];
  const lossless: boolean[] = [];
  for (const h of sorted) {
    const i = h.ttl - firstTtl;
    const set = new Set<string>();
    for (const r of h.replies) if (r.addr !== null && isPathReply(r)) set.add(r.addr);
    out[i] = [...set].sort();
    lossless[i] = h.replies.length >= h.probes && h.probes > 0;
  }
  for (let i = 0; i < out.length; i++) out[i] ??= [];
  let end = out.length;
  while (end > 0 && out[end - 1].length === 0) end--;
  out.length = end;
  return { shape: { firstTtl, hops: out, reached }, lossless };
}

/** The TTLs whose addresses differ between two shapes (the last hop's, when only whether the target answers differs). */
export function changedTtls(a: PathShape, b: PathShape): number[] {
  const out: number[] = [];
  const first = Math.min(a.firstTtl, b.firstTtl);
  const end = Math.max(a.firstTtl + a.hops.length, b.firstTtl + b.hops.length);
  for (let t = first; t < end; t++) {
    const x = a.hops[t - a.firstTtl] ?? [];
    const y = b.hops[t - b.firstTtl] ?? [];
    if (x.length !== y.length || x.some((v, i) => v !== y[i])) out.push(t);
  }
  if (out.length === 0 && a.reached !== b.reached) out.push(end - 1);
  return out;
}

const lastAnswered = (s: PathShape) => {
  for (let i = s.hops.length - 1; i >= 0; i--) if (s.hops[i].length > 0) return i;
  return -1;
};

export class PathChanges {
  /** The path as known (null before the first round that answered anywhere). */
  current: PathShape | null = null;
  private candidate: PathShape | null = null;
  private seen = 0;
  /** Changes declared so far (not the initial path). */
  changes = 0;

  constructor(readonly damping: number) {
    if (!(Number.isInteger(damping) && damping >= 1)) throw new RangeError('damping must be a whole number of rounds, at least 1');
  }

  /** Folds one round; a change (or the initial path) when one is declared. */
  round(hops: readonly HopSample[], reached: boolean): PathChange | null {
    const { shape, lossless } = shapeOf(hops, reached);
    if (lastAnswered(shape) < 0 && !this.current) return null;
    if (!this.current) {
      this.current = shape;
      return { kind: 'initial', from: null, to: shape, ttls: shape.hops.map((_, i) => shape.firstTtl + i) };
    }
    const diff = this.differs(this.current, shape, lossless);
    if (diff.length === 0) {
      this.candidate = null;
      this.seen = 0;
      this.learn(shape);
      return null;
    }
    if (this.candidate && this.differs(this.candidate, shape, lossless).length === 0) this.seen++;
    else {
      this.candidate = shape;
      this.seen = 1;
    }
    if (this.seen < this.damping) return null;
    const from = this.current;
    const to = this.candidate!;
    this.current = to;
    this.candidate = null;
    this.seen = 0;
    this.changes++;
    return { kind: 'changed', from, to, ttls: changedTtls(from, to) };
  }

  /** The TTLs at which `round` says the path is not `known` (empty: the same path). */
  private differs(known: PathShape, round: PathShape, lossless: boolean[]): number[] {
    const out: number[] = [];
    const first = Math.min(known.firstTtl, round.firstTtl);
    const end = Math.max(known.firstTtl + known.hops.length, round.firstTtl + round.hops.length);
    const lastK = known.firstTtl + lastAnswered(known);
    const lastR = round.firstTtl + lastAnswered(round);
    const ended = known.reached !== round.reached || (known.reached && round.reached && lastK !== lastR);
    // The round stopped answering before the known path's end (and did not reach): the path ends earlier.
    const shorter = !round.reached && lastR < lastK;
    for (let t = first; t < end; t++) {
      const k = known.hops[t - known.firstTtl] ?? [];
      const r = round.hops[t - round.firstTtl] ?? [];
      const clean = lossless[t - round.firstTtl] ?? false;
      const added = r.some((a) => !k.includes(a));
      const fewer = clean && r.length > 0 && k.some((a) => !r.includes(a));
      const gone = shorter && t > lastR && k.length > 0;
      if (added || fewer || gone || (ended && (t === lastK || t === lastR))) out.push(t);
    }
    if (ended && out.length === 0) out.push(Math.max(lastK, lastR));
    return out;
  }

  /** A round that matched: hops silent so far that answered now are learnt (not a change). */
  private learn(round: PathShape): void {
    const c = this.current!;
    for (let i = 0; i < round.hops.length; i++) {
      const t = round.firstTtl + i;
      const j = t - c.firstTtl;
      if (j < 0) continue;
      if ((c.hops[j] ?? []).length === 0 && round.hops[i].length > 0) c.hops[j] = round.hops[i];
    }
  }
}
