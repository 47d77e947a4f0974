/**
 * What the loss at an intermediate hop means (mtr users' oldest question: why does hop 4 lose 40 %
 * when hop 9 loses nothing?). A hop answers a traceroute probe with an ICMP message it makes
 * itself, on its slow path and under its own rate limit; the probes that go *through* it are
 * forwarded on the fast path. So a hop's loss is compared with the best-answering later hop:
 *
 * - `none`: every probe answered.
 * - `rate-limited`: a later hop answers significantly more often (one-sided two-proportion z test,
 *   z ≥ 3): the probes went through this hop, its own replies were limited or filtered. Its loss
 *   is not the path's.
 * - `onward`: even the best later hop loses, and not significantly less (z < 3): the loss is real
 *   and goes on from here (a lossy link at or before this hop).
 * - `unknown`: no later hop to compare with (the last hop, the target's own loss, is the path's
 *   end-to-end loss and says nothing about where), fewer than MIN_PROBES probes at either, or a
 *   difference the test cannot place (later hops lose nothing, this one too little to tell).
 *
 * The evidence (the later hop's TTL, loss and probes) goes with the verdict, so a reader can check it.
 */

export type LossVerdict = 'none' | 'rate-limited' | 'onward' | 'unknown';

/** Probes a hop needs before its loss is judged. */
export const MIN_PROBES = 10;
/** The z score past which the later hop's lower loss is not chance (one-sided, p ≈ 0.0013). */
export const Z_LIMIT = 3;

interface Judged {
  ttl: number;
  sent: number;
  received: number;
  loss: number;
  loss_verdict?: LossVerdict;
  loss_evidence?: { ttl: number; loss: number; sent: number } | null;
}

/** One-sided z of "a loses more than b" (two proportions, pooled). */
export function lossZ(lostA: number, nA: number, lostB: number, nB: number): number {
  const pa = lostA / nA;
  const pb = lostB / nB;
  const p = (lostA + lostB) / (nA + nB);
  const se = Math.sqrt(p * (1 - p) * (1 / nA + 1 / nB));
  if (se === 0) return pa > pb ? Infinity : 0;
  return (pa - pb) / se;
}

/** Sets every hop's verdict and evidence, in place (hops in TTL order). */
export function classifyLoss(hops: Judged[]): void {
  for (let i = 0; i < hops.length; i++) {
    const h = hops[i];
    const lost = h.sent - h.received;
    if (h.sent === 0) continue;
    if (lost === 0) {
      h.loss_verdict = 'none';
      h.loss_evidence = null;
      continue;
    }
    // The best-answering later hop (the nearest among equals).
    let e: Judged | null = null;
    for (let j = i + 1; j < hops.length; j++) {
      const x = hops[j];
      if (x.sent === 0) continue;
      if (!e || (x.sent - x.received) / x.sent < (e.sent - e.received) / e.sent) e = x;
    }
    if (!e) {
      h.loss_verdict = 'unknown';
      h.loss_evidence = null;
      continue;
    }
    h.loss_evidence = { ttl: e.ttl, loss: e.loss, sent: e.sent };
    if (h.sent < MIN_PROBES || e.sent < MIN_PROBES) {
      h.loss_verdict = 'unknown';
      continue;
    }
    const lostE = e.sent - e.received;
    const z = lossZ(lost, h.sent, lostE, e.sent);
    h.loss_verdict = z >= Z_LIMIT ? 'rate-limited' : lostE > 0 ? 'onward' : 'unknown';
  }
}
