/**
 * The confidence statement of multipath exploration (after the Multipath Detection Algorithm of
 * Augustin, Friedman and Teixeira): having seen k distinct next hops at a TTL with n flows, how
 * likely is it that a (k+1)-th, equally likely next hop would still have been missed?
 *
 *   P(miss | k+1 hops, n flows) = P(some one of k+1 equally likely hops gets none of n flows)
 *                               = sum_{i=1..k+1} (-1)^(i+1) C(k+1, i) ((k+1-i)/(k+1))^n
 *
 * Flows are assumed to spread uniformly over the next hops at that TTL (true of per-flow hashing;
 * nested diamonds make the per-TTL view optimistic, which the docs say).
 */

/** Probability that n uniform flows over `hops` equally likely next hops leave one unseen. */
export function missProbability(hops: number, n: number): number {
  if (hops <= 1) return 0;
  let p = 0;
  let c = 1; // C(hops, i)
  for (let i = 1; i <= hops; i++) {
    c = (c * (hops - i + 1)) / i;
    const term = c * ((hops - i) / hops) ** n;
    p += i % 2 === 1 ? term : -term;
  }
  return Math.min(1, Math.max(0, p));
}

/** Flows needed so that a (k+1)-th next hop would be missed with probability at most 1 - confidence. */
export function flowsNeeded(k: number, confidence: number): number {
  const alpha = 1 - confidence;
  let n = k;
  while (missProbability(k + 1, n) > alpha) n++;
  return n;
}
