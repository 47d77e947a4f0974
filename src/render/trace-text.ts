/**
 * The human traceroute view: a consumer of pathlens.trace/1 events, nothing more. It prints one
 * line per hop event, '*' for each probe without reply, traceroute's ! annotations, and '?' after
 * a reply that could only be matched on ports (its quote was too short to carry the cookie).
 *
 * With names on, a hop line waits for its addresses' `name` events (traceroute prints
 * "name (address)"); lines stay in order, and the run's `done` comes only after its names, so
 * nothing waits longer than the resolver's timeout.
 */
import type { HopEvent, StartEvent, TraceEvent } from '../trace/events.js';

export const UNREACH_MARK: Record<string, string> = {
  net: '!N',
  'no-route': '!N',
  'net-unknown': '!N',
  host: '!H',
  address: '!H',
  'host-unknown': '!H',
  'host-isolated': '!H',
  protocol: '!P',
  'frag-needed': '!F',
  'source-route-failed': '!S',
  'net-prohibited': '!X',
  'host-prohibited': '!X',
  'admin-prohibited': '!X',
  'policy-failed': '!X',
  'reject-route': '!X',
  'beyond-scope': '!B',
  'precedence-violation': '!V',
  'precedence-cutoff': '!C',
};

function fmtRtt(ms: number): string {
  return ms < 10 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(2) : ms.toFixed(1);
}

/** ECMP exploration: one line per responder with its flows, then the confidence statement. */
/** How an address is shown: "name (address)" when a name is known, the address otherwise. */
export type NameOf = (addr: string) => string;
const plain: NameOf = (a) => a;

function formatMultipath(e: HopEvent, target: string, show: NameOf): string {
  const lines: string[] = [];
  const minRtt = new Map<string, number>();
  for (const r of e.replies) if (r.addr !== null) minRtt.set(r.addr, Math.min(minRtt.get(r.addr) ?? Infinity, r.rtt_ms));
  (e.responders ?? []).forEach((x, i) => {
    lines.push(`${i === 0 ? String(e.ttl).padStart(2) : '  '}  ${show(x.addr)}  ${x.flows.length} flow${x.flows.length === 1 ? '' : 's'}  min ${fmtRtt(minRtt.get(x.addr) ?? 0)} ms`);
  });
  if (lines.length === 0) lines.push(`${String(e.ttl).padStart(2)}  *`);
  const m = e.multipath;
  if (m) {
    const tail = e.no_reply ? `, ${e.no_reply} without reply` : '';
    const hops = `${m.next_hops} next hop${m.next_hops === 1 ? '' : 's'} over ${m.flows} flow${m.flows === 1 ? '' : 's'}${tail}`;
    if (m.by_route) lines.push(`      [${hops}: the local route has one next hop]`);
    else if (m.confidence !== undefined && m.next_hops === 1 && e.addrs[0] === target) lines.push(`      [the target]`);
    else if (m.confidence !== undefined) {
      const pct = `${+(m.confidence * 100).toFixed(2)}%`;
      lines.push(m.complete ? `      [${hops}: no other next hop at ${pct} (one more would have been missed with p=${m.miss_probability.toFixed(3)})]` : `      [${hops}: stopped short of ${pct}${m.next_hops ? ` (p=${m.miss_probability.toFixed(3)} of missing one more)` : ''}]`);
    } else lines.push(`      [${hops}; one more would have been missed with p=${m.miss_probability.toFixed(3)}; MDA needs ${m.flows_for_95} flows for 95%]`);
  }
  return lines.join('\n');
}

const hex = (b: number) => `0x${b.toString(16).padStart(2, '0')}`;

/** `sentTos`: the probes' TOS (--tos); a reply whose quote shows another is marked with it. */
export function formatHop(e: HopEvent, target: string, sentTos: number | null = null, show: NameOf = plain): string {
  if (e.responders) return formatMultipath(e, target, show);
  const parts: string[] = [String(e.ttl).padStart(2)];
  const byIndex = new Map(e.replies.map((r) => [r.index, r]));
  let lastAddr: string | null | undefined;
  for (let i = 0; i < e.probes; i++) {
    const r = byIndex.get(i);
    if (!r) {
      parts.push('*');
      continue;
    }
    if (r.addr !== lastAddr) {
      parts.push(r.addr === null ? '(local)' : show(r.addr));
      lastAddr = r.addr;
    }
    let s = `${fmtRtt(r.rtt_ms)} ms`;
    if (r.kind === 'unreachable' && !(r.code === 'port' && r.addr === target)) s += ` ${UNREACH_MARK[r.code] ?? `!<${r.code}>`}`;
    else if (r.kind === 'packet-too-big') s += ' !F';
    else if (r.kind === 'local-error') s += ` !L(${r.code})`;
    // Matched on ports alone (the router quoted too little to carry the probe's cookie).
    if (r.unverified) s += ' ?';
    // The router got the probe with another TOS: something before it rewrote DSCP or ECN.
    if (sentTos !== null && r.quoted_tos !== undefined && r.quoted_tos !== sentTos) s += ` [tos ${hex(r.quoted_tos)}]`;
    parts.push(s);
  }
  return parts.join('  ');
}

export class TraceTextView {
  private target = '';
  private tos: number | null = null;
  /** Names on: addr -> name (null: looked up, none). */
  private readonly names: Map<string, string | null> | null;
  /** Events waiting behind a hop whose names have not come yet (names on only). */
  private readonly queue: TraceEvent[] = [];
  private readonly show: NameOf = (a) => {
    const n = this.names?.get(a);
    return n ? `${n} (${a})` : a;
  };

  constructor(
    private readonly write: (line: string) => void,
    opts: { names?: boolean } = {},
  ) {
    this.names = opts.names ? new Map() : null;
  }

  event(e: TraceEvent): void {
    if (!this.names) {
      this.render(e);
      return;
    }
    if (e.type === 'name') {
      this.names.set(e.addr, e.name);
      this.drain(false);
      return;
    }
    this.queue.push(e);
    this.drain(e.type === 'done');
  }

  /** Renders queued events in order, stopping at a hop still waiting for a name (unless `all`). */
  private drain(all: boolean): void {
    while (this.queue.length > 0) {
      const e = this.queue[0];
      if (!all && e.type === 'hop' && e.addrs.some((a) => !this.names!.has(a))) return;
      this.queue.shift();
      this.render(e);
    }
  }

  private render(e: TraceEvent): void {
    switch (e.type) {
      case 'start':
        this.target = e.address;
        this.tos = e.tos;
        this.write(
          `pathlens trace to ${e.target}${e.target !== e.address ? ` (${e.address})` : ''}, ${e.max_ttl} hops max, ${e.ecmp ? `flows/hop until no other next hop at ${+(e.ecmp.confidence * 100).toFixed(2)}% (MDA, at most ${e.ecmp.max_flows})` : e.flows ? `${e.flows} flows x ${e.queries} probes/hop` : `${e.queries} probes/hop`}, ${describeMethod(e)}${e.tos !== null ? `, tos ${hex(e.tos)}` : ''}${e.egress && 'iface' in e.egress && e.egress.iface ? `, via ${e.egress.iface}${e.egress.source ? ` (${e.egress.source})` : ''}` : ''}`,
        );
        if (e.tos !== null && !e.quote_header) this.write('    (hops cannot show the TOS they saw: this socket gets quotes without their IP header; -I --raw does)');
        if (e.bpf?.correlation === 'kernel') this.write('    (replies correlated in the kernel: BPF programs at netfilter hooks)');
        else if (e.bpf) this.write(`    (--bpf auto: replies read from the socket: ${e.bpf.why})`);
        break;
      case 'hop':
        this.write(formatHop(e, this.target, this.tos, this.show));
        break;
      case 'reply':
        if (e.late) this.write(`    late reply: ttl ${e.ttl} probe ${e.index + 1} from ${e.addr ?? '?'} after ${fmtRtt(e.rtt_ms)} ms (counted as no reply)`);
        break;
      case 'mtu':
        this.write(
          e.ttl === 0
            ? `    pmtu ${e.mtu} (local route)`
            : `    pmtu ${e.mtu} after hop ${e.ttl}${e.addr ? ` (reported by ${e.addr}${e.inferred ? ', hop inferred' : ''})` : ''}`,
        );
        break;
      case 'switch':
        this.write(`-- switching from ${e.from.toUpperCase()} to ${e.to.toUpperCase()}: ${e.reason}`);
        break;
      case 'error':
        this.write(`error: ${e.message}`);
        break;
      case 'done': {
        const extra = [`${e.probes_sent} probes`, `${(e.duration_ms / 1000).toFixed(2)} s`];
        if (e.unmatched) extra.push(`${e.unmatched} unmatched`);
        if (e.late) extra.push(`${e.late} late`);
        if (e.path_mtu) extra.push(`path MTU ${e.path_mtu}`);
        const hops = `${e.hops} hop${e.hops === 1 ? '' : 's'}`;
        const what = e.reason === 'reached' ? `reached ${this.target} in ${hops}` : `stopped: ${e.reason} after ${hops}`;
        this.write(`-- ${what} (${extra.join(', ')})`);
        break;
      }
      default:
        break;
    }
  }
}

function describeMethod(e: StartEvent): string {
  const via = e.socket === 'raw' ? ', raw socket' : e.socket === 'ping' ? ', ping socket' : '';
  if (e.method === 'icmp') return `ICMP echo/IPv${e.family}, id ${e.src_port}${via}`;
  if (e.method === 'tcp') return `TCP SYN/IPv${e.family} to port ${e.port}${e.socket === 'connect' ? ' (connect)' : via}`;
  return `UDP/IPv${e.family} from port ${e.src_port}`;
}
