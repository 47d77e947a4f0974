/**
 * `--textfile DIR`: continuous mode for node_exporter's textfile collector. After every round the
 * file DIR/pathlens_trace_<target>.prom is written again, atomically (node_exporter never reads
 * half a file), from a prom-client registry: per hop (labels target, ttl) the loss ratio, probes
 * and replies so far, RTT quantiles (a summary, seconds), mean jitter; the replies of each
 * responder (label `responder`: at most RESPONDER_LABELS addresses per hop, the rest as
 * `other`, so the label's cardinality is bounded); the rounds so far.
 */
import { join } from 'node:path';
import { Gauge, Registry, Summary } from 'prom-client';
import type { Sink } from '../core/sink.js';
import { writeFileAtomic } from '../io/output.js';
import type { TraceEvent } from '../trace/events.js';

export const RESPONDER_LABELS = 4;

export class TraceTextfile implements Sink<TraceEvent> {
  readonly path: string;
  private readonly registry = new Registry();
  private readonly loss: Gauge<'target' | 'ttl'>;
  private readonly probes: Gauge<'target' | 'ttl'>;
  private readonly replies: Gauge<'target' | 'ttl'>;
  private readonly jitter: Gauge<'target' | 'ttl'>;
  private readonly rtt: Summary<'target' | 'ttl'>;
  private readonly responders: Gauge<'target' | 'ttl' | 'responder'>;
  private readonly rounds: Gauge<'target'>;
  private target = '';

  constructor(dir: string, target: string) {
    this.path = join(dir, `pathlens_trace_${target.replace(/[^A-Za-z0-9_.-]/g, '_')}.prom`);
    const registers = [this.registry];
    this.loss = new Gauge({ name: 'pathlens_trace_hop_loss_ratio', help: 'Probes to this hop without a reply, over the rounds so far (0..1).', labelNames: ['target', 'ttl'], registers });
    this.probes = new Gauge({ name: 'pathlens_trace_hop_probes', help: 'Probes to this hop with a known outcome, over the rounds so far.', labelNames: ['target', 'ttl'], registers });
    this.replies = new Gauge({ name: 'pathlens_trace_hop_replies', help: 'Replies from this hop, over the rounds so far.', labelNames: ['target', 'ttl'], registers });
    this.jitter = new Gauge({ name: 'pathlens_trace_hop_jitter_seconds', help: 'Mean difference between consecutive RTTs at this hop (mtr Javg).', labelNames: ['target', 'ttl'], registers });
    this.rtt = new Summary({ name: 'pathlens_trace_hop_rtt_seconds', help: 'Round-trip time to this hop.', labelNames: ['target', 'ttl'], percentiles: [0.5, 0.9, 0.99], registers });
    this.responders = new Gauge({ name: 'pathlens_trace_hop_responder_replies', help: `Replies per responding address at this hop (at most ${RESPONDER_LABELS} addresses, the rest as "other").`, labelNames: ['target', 'ttl', 'responder'], registers });
    this.rounds = new Gauge({ name: 'pathlens_trace_rounds', help: 'Rounds completed.', labelNames: ['target'], registers });
  }

  event(e: TraceEvent): void {
    if (e.type === 'start') this.target = e.target;
    else if (e.type === 'hop') {
      for (const r of e.replies) this.rtt.observe({ target: this.target, ttl: String(e.ttl) }, r.rtt_ms / 1000);
    } else if (e.type === 'hop-stats') {
      const l = { target: this.target, ttl: String(e.ttl) };
      this.loss.set(l, e.loss / 100);
      this.probes.set(l, e.sent);
      this.replies.set(l, e.received);
      if (e.jitter_mean_ms !== null) this.jitter.set(l, e.jitter_mean_ms / 1000);
      let other = e.other_responders;
      e.responders.forEach((r, i) => {
        if (i < RESPONDER_LABELS) this.responders.set({ ...l, responder: r.addr }, r.count);
        else other += r.count;
      });
      if (other > 0) this.responders.set({ ...l, responder: 'other' }, other);
    } else if (e.type === 'round') {
      this.rounds.set({ target: this.target }, e.round);
      this.pending = this.pending.then(() => this.flush());
    }
  }

  private pending: Promise<unknown> = Promise.resolve();

  /** Writes the file now (after each round; the CLI also calls it first, to fail early). */
  async flush(): Promise<boolean> {
    return writeFileAtomic(this.path, await this.registry.metrics());
  }

  async end(): Promise<void> {
    await this.pending;
  }
}
