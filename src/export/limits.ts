/**
 * Per-client bounds on the metrics endpoint (`--prometheus`): a token bucket of requests per
 * client address (so one client cannot make the agent render its metrics, or check a password,
 * as fast as it can send) and a bound on the requests one client has in flight. What is refused
 * is answered (429 with Retry-After, or 503) with the reason, and counted.
 */

export interface LimitOptions {
  /** Requests a second per client address (0: no bound). */
  ratePerSec: number;
  /** Requests a client may send at once after a quiet spell. */
  burst: number;
  /** Requests of one client in flight at once. */
  inflight: number;
  /** Clients remembered; past this the longest-idle are forgotten (full buckets again). */
  maxClients: number;
}

export const LIMIT_DEFAULTS: LimitOptions = { ratePerSec: 100, burst: 200, inflight: 16, maxClients: 4096 };

interface Client {
  tokens: number;
  at: number;
  inflight: number;
}

export type Refusal = 'rate' | 'inflight' | null;

export class ClientLimits {
  private readonly clients = new Map<string, Client>();

  constructor(
    readonly o: LimitOptions,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Admits one request of `client` (then `done` must follow), or says why not. */
  admit(client: string): Refusal {
    const t = this.now();
    let c = this.clients.get(client);
    if (c) {
      // Most recently seen last: the map's first entries are the longest idle.
      this.clients.delete(client);
    } else {
      c = { tokens: this.o.burst, at: t, inflight: 0 };
      if (this.clients.size >= this.o.maxClients) this.forgetIdle();
    }
    this.clients.set(client, c);
    if (this.o.ratePerSec > 0) {
      c.tokens = Math.min(this.o.burst, c.tokens + ((t - c.at) / 1000) * this.o.ratePerSec);
      c.at = t;
      if (c.tokens < 1) return 'rate';
    }
    if (c.inflight >= this.o.inflight) return 'inflight';
    if (this.o.ratePerSec > 0) c.tokens -= 1;
    c.inflight++;
    return null;
  }

  done(client: string): void {
    const c = this.clients.get(client);
    if (c && c.inflight > 0) c.inflight--;
  }

  /** Seconds until `client` has a token again (for Retry-After). */
  retryAfter(client: string): number {
    const c = this.clients.get(client);
    if (!c || this.o.ratePerSec <= 0) return 1;
    return Math.max(1, Math.ceil((1 - c.tokens) / this.o.ratePerSec));
  }

  get size(): number {
    return this.clients.size;
  }

  private forgetIdle(): void {
    for (const [k, c] of this.clients) {
      if (c.inflight === 0) {
        this.clients.delete(k);
        return;
      }
    }
  }
}

/** --prometheus-rate N: N a second, bursts of 2N, the default in-flight bound. */
export function limitsOf(ratePerSec: number): LimitOptions {
  return { ...LIMIT_DEFAULTS, ratePerSec, burst: Math.max(1, 2 * ratePerSec) };
}
