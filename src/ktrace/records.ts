/**
 * What ktrace's programs report, as events: a complete trip from the ring buffer becomes an `rtt`
 * event (stage times in path order, relative to the first stage reached; the wire or answering
 * time between the two paths; the sending process); a trip still in the trip map past the timeout
 * (or at the end) becomes an `incomplete` event with the stage it reached and, when kfree_skb saw
 * one of its packets, the kernel's drop reason; the per-segment histograms become a `histogram`
 * event. The sweeper keeps time on a clock it is given (the kernel's monotonic one in a run), so
 * it is tested on a virtual one.
 */
import { u64 } from '../bpf/maps.js';
import { formatIp } from '../packet/addr.js';
import { type DroppedWhat, KTRACE_SCHEMA, type KtraceDropsEvent, type KtraceHistogramEvent, type KtraceIncompleteEvent, type KtracePacketEvent, type KtraceRttEvent, type StageTime } from './events.js';
import { HIST_SLOTS, KEY, RECORD, REC_COMPLETE, REC_PARTIAL, TRIP } from './layout.js';
import type { StackNames } from './stacks.js';
import type { Stage } from './stages.js';

export interface TripShape {
  rx: boolean;
  /** Stages attached at a point of their own, in path order, and each one's hook. */
  measured: Stage[];
  hookOf: Map<number, string>;
  firstPath: Stage[];
  secondPath: Stage[];
  /** Packet mode: the transport (echo mode: null). */
  proto?: 'udp' | 'tcp' | null;
  family?: 4 | 6;
}

/** TCP's flags as letters, tcpdump's way (S, F, R, P, A, U, E, W). */
export function tcpFlags(f: number): string {
  let out = '';
  const names: [number, string][] = [[0x02, 'S'], [0x01, 'F'], [0x04, 'R'], [0x08, 'P'], [0x10, 'A'], [0x20, 'U'], [0x40, 'E'], [0x80, 'W']];
  for (const [bit, l] of names) if (f & bit) out += l;
  return out || '.';
}

const decoder = new TextDecoder();

/** TX, the socket stages: from the reply queued on the socket (its reader woken) to the reader copying it out. */
function wakeup(stages: StageTime[]): number | null {
  const ready = stages.find((s) => s.name === 'sk_data_ready');
  const read = stages.find((s) => s.name === 'sk_read');
  return ready && read ? read.t_ns - ready.t_ns : null;
}

export class TripDecoder {
  constructor(
    private readonly shape: TripShape,
    private readonly stacks: StackNames | null,
    /** kfree_skb's drop reasons by number. */
    private readonly reasons: Map<number, string>,
  ) {}

  /** Stage times of a trip (struct kt_trip at `off` in `v`), in path order, relative to the first reached. */
  stageTimes(v: DataView, off: number): StageTime[] {
    const out: StageTime[] = [];
    let first = 0;
    for (const s of this.shape.measured) {
      const t = u64(v, off + TRIP.t + 8 * s.id);
      if (!t) continue;
      if (!first) first = t;
      const st: StageTime = { name: s.name, hook: this.shape.hookOf.get(s.id)!, t_ns: t - first };
      if (this.stacks) {
        const id = v.getInt32(off + TRIP.stack + 4 * s.id, true);
        if (id) st.stack = this.stacks.frames(id);
      }
      out.push(st);
    }
    return out;
  }

  /** A ring-buffer record (struct kt_record) as an `rtt` event; null for a record of another kind or cut short. */
  rtt(v: DataView, b: Uint8Array, off: number, len: number, tMs: number): KtraceRttEvent | null {
    if (len < RECORD.size || v.getUint32(off + RECORD.kind, true) !== REC_COMPLETE) return null;
    const { rx, firstPath, secondPath } = this.shape;
    const tr = off + RECORD.trip;
    const stages = this.stageTimes(v, tr);
    const lastFirst = [...stages].reverse().find((s) => firstPath.some((f) => f.name === s.name));
    const firstSecond = stages.find((s) => secondPath.some((f) => f.name === s.name));
    const pid = v.getUint32(tr + TRIP.pid, true);
    return {
      schema: KTRACE_SCHEMA,
      type: 'rtt',
      t_ms: tMs,
      id: v.getUint16(off + RECORD.key + KEY.id, true),
      seq: v.getUint16(off + RECORD.key + KEY.seq, true),
      stages,
      total_ns: stages.length ? stages.at(-1)!.t_ns : 0,
      wire_ns: lastFirst && firstSecond && !rx ? firstSecond.t_ns - lastFirst.t_ns : null,
      answer_ns: lastFirst && firstSecond && rx ? firstSecond.t_ns - lastFirst.t_ns : null,
      wakeup_ns: wakeup(stages),
      pid: pid || null,
      comm: pid ? comm(b, tr + TRIP.comm) : null,
      ifindex_out: v.getUint32(tr + TRIP.ifindex_out, true) || null,
      ifindex_in: v.getUint32(tr + TRIP.ifindex_in, true) || null,
    };
  }

  /**
   * Packet mode: one packet (struct kt_key at `k` and struct kt_trip at `tr` in `v`) as a
   * `packet` event; `end` how its path ended (partial records: dropped or reused, by the flag).
   */
  packet(kv: DataView, k: number, v: DataView, tr: number, end: KtracePacketEvent['end'], tMs: number): KtracePacketEvent {
    const family = this.shape.family ?? 4;
    const kb = new Uint8Array(kv.buffer, kv.byteOffset, kv.byteLength);
    const b = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    const out = kv.getUint8(k + KEY.out) === 1;
    const local = formatIp(kb, k + KEY.local, family);
    const remote = formatIp(kb, k + KEY.remote, family);
    const lport = kv.getUint16(k + KEY.id, true);
    const rport = kv.getUint16(k + KEY.seq, true);
    const stages = this.stageTimes(v, tr);
    const dropped = v.getUint8(tr + TRIP.dropped) !== 0;
    const pid = v.getUint32(tr + TRIP.pid, true);
    const tcp = this.shape.proto === 'tcp';
    return {
      schema: KTRACE_SCHEMA,
      type: 'packet',
      t_ms: tMs,
      dir: out ? 'out' : 'in',
      proto: tcp ? 'tcp' : 'udp',
      src: out ? local : remote,
      sport: out ? lport : rport,
      dst: out ? remote : local,
      dport: out ? rport : lport,
      len: v.getUint16(tr + TRIP.len, true),
      tcp: tcp ? { seq: v.getUint32(tr + TRIP.tcp_seq, true), flags: tcpFlags(v.getUint8(tr + TRIP.tcp_flags)) } : null,
      stages,
      total_ns: stages.length ? stages.at(-1)!.t_ns : 0,
      end: dropped ? 'dropped' : end,
      last_stage: stages.at(-1)?.name ?? null,
      drop_reason: dropped ? (this.reasons.get(v.getUint32(tr + TRIP.drop_reason, true)) ?? `reason ${v.getUint32(tr + TRIP.drop_reason, true)}`) : null,
      pid: pid || null,
      comm: pid ? comm(b, tr + TRIP.comm) : null,
      ifindex: v.getUint32(tr + (out ? TRIP.ifindex_out : TRIP.ifindex_in), true) || null,
    };
  }

  /** Packet mode: a ring-buffer record as a `packet` event (complete, or ended early); null when cut short. */
  packetRecord(v: DataView, off: number, len: number, tMs: number): KtracePacketEvent | null {
    if (len < RECORD.size) return null;
    const kind = v.getUint32(off + RECORD.kind, true);
    if (kind !== REC_COMPLETE && kind !== REC_PARTIAL) return null;
    return this.packet(v, off + RECORD.key, v, off + RECORD.trip, kind === REC_COMPLETE ? 'complete' : 'reused', tMs);
  }

  /** A trip left in the map (key: struct kt_key bytes; value at `off` in `v`) as an `incomplete` event. */
  incomplete(key: Uint8Array, v: DataView, off: number, why: KtraceIncompleteEvent['why'], tMs: number): KtraceIncompleteEvent {
    const kv = new DataView(key.buffer, key.byteOffset, key.byteLength);
    const stages = this.stageTimes(v, off);
    const dropped = v.getUint8(off + TRIP.dropped);
    const reason = v.getUint32(off + TRIP.drop_reason, true);
    return {
      schema: KTRACE_SCHEMA,
      type: 'incomplete',
      t_ms: tMs,
      id: kv.getUint16(KEY.id, true),
      seq: kv.getUint16(KEY.seq, true),
      stages,
      last_stage: stages.at(-1)?.name ?? null,
      dropped: dropped === 1 ? 'request' : dropped === 2 ? 'reply' : null,
      drop_reason: dropped ? (this.reasons.get(reason) ?? `reason ${reason}`) : null,
      why,
    };
  }
}

function comm(b: Uint8Array, off: number): string {
  const end = b.indexOf(0, off);
  return decoder.decode(b.subarray(off, end < 0 || end > off + 16 ? off + 16 : end));
}

/** The trip map as the sweeper sees it: walk its entries, delete one. */
export interface TripMap {
  /** Calls f for each entry: its key bytes (valid during the call) and its value at `off` in `v`. */
  walk(f: (key: Uint8Array, v: DataView, off: number) => void): void;
  delete(key: Uint8Array): void;
}

/** The drops of a run's trips, per packet, reason and last stage (the `drops` event at its end). */
export class DropTally {
  private readonly counts = new Map<string, { dropped: DroppedWhat; reason: string; stage: string | null; count: number }>();
  total = 0;

  /** Counts an incomplete trip (or packet) when the kernel dropped one of its packets; whether it did. */
  add(e: KtraceIncompleteEvent | KtracePacketEvent): boolean {
    const what: DroppedWhat | null = e.type === 'packet' ? (e.end === 'dropped' ? e.dir : null) : e.dropped;
    if (what === null) return false;
    const reason = e.drop_reason ?? 'unknown';
    const key = `${what}\u0000${reason}\u0000${e.last_stage ?? ''}`;
    const c = this.counts.get(key);
    if (c) c.count++;
    else this.counts.set(key, { dropped: what, reason, stage: e.last_stage, count: 1 });
    this.total++;
    return true;
  }

  event(tMs: number): KtraceDropsEvent {
    const by = [...this.counts.values()].sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
    return { schema: KTRACE_SCHEMA, type: 'drops', t_ms: tMs, total: this.total, by };
  }
}

export class TripSweeper {
  constructor(
    private readonly map: TripMap,
    private readonly dec: TripDecoder,
    private readonly timeoutNs: number,
    /** The kernel's monotonic clock, ns (the trips' `created` is on it). */
    private readonly monoNow: () => number,
  ) {}

  /** The entries older than the timeout, or all of them: removed from the map, with when they began. */
  private take<E>(all: boolean, f: (key: Uint8Array, v: DataView, off: number) => E): { e: E; created: number }[] {
    const mono = this.monoNow();
    const gone: Uint8Array[] = [];
    const late: { e: E; created: number }[] = [];
    this.map.walk((key, v, off) => {
      const created = u64(v, off + TRIP.created);
      if (!all && mono - created < this.timeoutNs) return;
      const k = key.slice();
      gone.push(k);
      late.push({ e: f(k, v, off), created });
    });
    for (const k of gone) this.map.delete(k);
    return late;
  }

  /**
   * Trips that will not complete: older than the timeout, or all of them (`all`, when the run
   * ends). They leave the map and come back as events, in the order the pings were sent.
   */
  sweep(all: boolean, tMs: number): KtraceIncompleteEvent[] {
    const late = this.take(all, (k, v, off) => this.dec.incomplete(k, v, off, all ? 'stopped' : 'timeout', tMs)).map((x) => x.e);
    // A hash map walks in no order: report in the order the pings were sent.
    return late.sort((a, b) => a.id - b.id || a.seq - b.seq);
  }

  /** Packet mode: packets still on their way past the timeout (or at the end), in the order they began. */
  sweepPackets(all: boolean, tMs: number): KtracePacketEvent[] {
    const late = this.take(all, (k, v, off) => this.dec.packet(new DataView(k.buffer, k.byteOffset, k.byteLength), 0, v, off, all ? 'stopped' : 'timeout', tMs));
    return late.sort((a, b) => a.created - b.created).map((x) => x.e);
  }
}

/**
 * The programs' per-segment histograms (log2 ns buckets, per CPU) as one event; what was read is
 * cleared, so each event holds the counts since the last (a count landing in between is not lost
 * for long: at worst it moves to the next interval, or is dropped with a cleared slot).
 */
export function histogramEvent(counts: ArrayLike<number>, measured: Stage[], tMs: number, packet = false): KtraceHistogramEvent {
  const e: KtraceHistogramEvent = { schema: KTRACE_SCHEMA, type: 'histogram', t_ms: tMs, segments: [] };
  for (let s = 0; s + 1 < measured.length; s++) {
    // Packet mode: a packet goes one way; no segment joins the two paths.
    if (packet && measured[s].path !== measured[s + 1].path) continue;
    const buckets: { ge_ns: number; count: number }[] = [];
    for (let k = 0; k < HIST_SLOTS; k++) {
      const c = counts[s * HIST_SLOTS + k];
      if (c) buckets.push({ ge_ns: k === 0 ? 0 : 2 ** k, count: c });
    }
    e.segments.push({ from: measured[s].name, to: measured[s + 1].name, buckets });
  }
  return e;
}
