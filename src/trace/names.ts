/**
 * Reverse names in the trace stream: a Sink that passes every event on unchanged and, for each
 * new address in a reply, starts a lookup; each answer becomes a `name` event when it comes.
 * Hops and probes are never held for a name. Only `done` waits, for lookups still out (each
 * bounded by the resolver's timeout), so that a run's names are inside its start..done.
 */
import type { Sink } from '../core/sink.js';
import type { ReverseResolver } from '../resolve/reverse.js';
import { TRACE_SCHEMA, type TraceEvent } from './events.js';

export class TraceNames implements Sink<TraceEvent> {
  private t0 = performance.now();
  private readonly asked = new Set<string>();
  private readonly pending = new Set<Promise<void>>();
  /** Events held behind a `done` while its lookups finish (in order). */
  private held: TraceEvent[] | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly resolver: ReverseResolver,
    private readonly out: Sink<TraceEvent>,
    /** Closes the resolver at end() (false: other traces share it, and its owner closes it). */
    private readonly ownsResolver = true,
  ) {}

  event(e: TraceEvent): void {
    if (this.held) {
      this.held.push(e);
      return;
    }
    if (e.type === 'start') this.t0 = performance.now() - e.t_ms;
    if (e.type === 'done' && this.pending.size > 0) {
      this.held = [e];
      this.flushing = this.flush();
      return;
    }
    this.out.event(e);
    if (e.type === 'reply' && e.addr !== null && !this.asked.has(e.addr)) this.ask(e.addr);
  }

  private ask(addr: string): void {
    this.asked.add(addr);
    const p = this.resolver.lookup(addr).then((r) => {
      this.pending.delete(p);
      this.out.event({
        schema: TRACE_SCHEMA,
        type: 'name',
        t_ms: Math.round((performance.now() - this.t0) * 1000) / 1000,
        addr: r.addr,
        name: r.name,
        status: r.status,
        ...(r.detail ? { detail: r.detail } : {}),
        server: r.server,
        cached: r.cached,
      });
    });
    this.pending.add(p);
  }

  private async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    const held = this.held!;
    this.held = null;
    // Events after a held done (another --method auto attempt) go through event() again in order.
    for (const e of held) this.event(e);
    if (this.held) await this.flushing;
  }

  async end(): Promise<void> {
    while (this.flushing) {
      const f = this.flushing;
      await f;
      if (this.flushing === f) this.flushing = null;
    }
    if (this.ownsResolver) this.resolver.close();
    await this.out.end?.();
  }
}
