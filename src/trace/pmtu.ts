/**
 * --pmtu: path MTU discovery's state, beside the engine. A probe that a router could not forward
 * (Fragmentation Needed / Packet Too Big) never reached its TTL: it is sent again, smaller, and
 * where the MTU dropped is placed at the reporting router's hop once that hop is settled (or,
 * if that router never answered at a lower TTL, inferred as the hop before the first probe it
 * bounced).
 */
import { TRACE_SCHEMA, type MtuEvent } from './events.js';
import type { ReplyRecord, Transport } from '../probe/transport.js';

/** A probe is sent again at most this many times. */
const MAX_RESENDS = 4;

interface Drop {
  addr: string | null;
  mtu: number;
  /** The lowest TTL of a probe this router bounced. */
  probeTtl: number;
  reported: boolean;
}

export class PmtuState {
  /** Probes to send again (smaller), in order. */
  readonly resendQueue: number[] = [];
  /** How often each probe was sent again. */
  private readonly resends: Uint8Array;
  private readonly drops: Drop[] = [];
  /** First TTL at which each responder address was settled in a hop. */
  private readonly hopOfAddr = new Map<string, number>();
  resent = 0;

  constructor(
    total: number,
    private readonly prober: Transport,
  ) {
    this.resends = new Uint8Array(total);
  }

  /** Is this reply a router saying the probe was too big (and can it be sent smaller)? */
  bounces(r: ReplyRecord): boolean {
    if (r.mtu <= 0 || r.kind === 'local-error' || !this.prober.setPacketLen) return false;
    if (r.kind !== 'packet-too-big' && !(r.kind === 'unreachable' && r.code === 'frag-needed')) return false;
    return r.mtu >= (this.prober.family === 4 ? 68 : 1280) && this.resends[r.seq] < MAX_RESENDS;
  }

  /** Probe `seq` (at `ttl`) bounced with this reply: queue it, shrink later probes, note the drop. */
  bounce(seq: number, ttl: number, addr: string | null, r: ReplyRecord): void {
    this.resends[seq]++;
    this.resent++;
    this.resendQueue.push(seq);
    const cur = this.prober.packetLen ?? Infinity;
    if (r.mtu < cur) this.prober.setPacketLen!(r.mtu);
    const d = this.drops.find((x) => x.addr === addr && x.mtu === r.mtu);
    if (!d) this.drops.push({ addr, mtu: r.mtu, probeTtl: ttl, reported: false });
    else if (ttl < d.probeTtl) d.probeTtl = ttl;
  }

  /** A hop settled with these responders. */
  settled(ttl: number, addrs: string[]): void {
    for (const a of addrs) if (!this.hopOfAddr.has(a)) this.hopOfAddr.set(a, ttl);
  }

  /** mtu events for the drops whose reporting router is now placed at a settled hop. */
  place(tMs: number): MtuEvent[] {
    const out: MtuEvent[] = [];
    for (const d of this.drops) {
      if (d.reported || d.addr === null) continue;
      const hop = this.hopOfAddr.get(d.addr);
      if (hop === undefined || hop >= d.probeTtl) continue;
      d.reported = true;
      out.push({ schema: TRACE_SCHEMA, type: 'mtu', t_ms: tMs, ttl: hop, mtu: d.mtu, addr: d.addr, inferred: false });
    }
    return out;
  }

  /** At the end: the drops never placed, each at the hop before the first probe it bounced. */
  inferRest(tMs: number): MtuEvent[] {
    const out: MtuEvent[] = [];
    for (const d of this.drops) {
      if (d.reported) continue;
      d.reported = true;
      out.push({ schema: TRACE_SCHEMA, type: 'mtu', t_ms: tMs, ttl: Math.max(1, d.probeTtl - 1), mtu: d.mtu, addr: d.addr, inferred: true });
    }
    return out;
  }

  get pendingDrops(): boolean {
    return this.drops.length > 0;
  }
}
