/**
 * The human view of a `trace --xdp` sweep: a consumer of its pathlens.trace/1 events. One line
 * per target (its hops in TTL order, '*' for a TTL without reply, traceroute's ! mark on the
 * Destination Unreachable that ended the path), then the sweep's totals.
 */
import type { SweepDoneEvent, SweepPathEvent, SweepStartEvent, TraceEvent } from '../trace/events.js';
import { UNREACH_MARK } from './trace-text.js';

export class SweepTextView {
  constructor(private readonly write: (line: string) => void) {}

  event(e: TraceEvent): void {
    if (e.type === 'sweep-start') this.start(e);
    else if (e.type === 'path') this.path(e);
    else if (e.type === 'sweep-done') this.done(e);
  }

  private start(e: SweepStartEvent): void {
    const rate = e.rate_pps === null ? 'as fast as the ring takes them' : `${e.rate_pps} probes/s`;
    this.write(`sweep of ${e.targets} targets, TTL ${e.first_ttl}..${e.max_ttl}: ${e.probes} UDP probes from ${e.source}:${e.src_port} via ${e.gateway}, AF_XDP (${e.transport.attached}, ${e.transport.bind}, ${e.transport.queues} queue${e.transport.queues === 1 ? '' : 's'}), ${rate}`);
  }

  private path(e: SweepPathEvent): void {
    const hops = e.hops.map((h) => {
      if (h.addr === null) return `${h.ttl} *`;
      const mark = h.kind === 'unreachable' && h.code !== 'port' ? ` ${UNREACH_MARK[h.code ?? ''] ?? `!<${h.code}>`}` : '';
      return `${h.ttl} ${h.addr} ${h.rtt_ms!.toFixed(3)} ms${mark}`;
    });
    this.write(`${e.target}  ${hops.join('  ')}${hops.length ? '  ' : ''}[${e.end}]`);
  }

  private done(e: SweepDoneEvent): void {
    const rate = e.offered_pps === null ? '' : ` in ${e.send_ms.toFixed(1)} ms (${e.offered_pps} probes/s offered)`;
    this.write(`${e.reason === 'interrupted' ? 'interrupted: ' : ''}${e.probes_sent} probes sent${rate}; ${e.replies} replies matched, ${e.unmatched} unmatched, ${e.duplicates} duplicates; ${e.targets_reached} targets reached`);
  }
}
