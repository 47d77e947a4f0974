/**
 * Recorded runs read back (`pathlens report`, `pathlens diff`): a JSONL file of trace events
 * (one trace, continuous mode, several targets) or of monitor events (its `path-hops` windows),
 * folded into the same per-hop statistics the live run keeps, with the same code
 * (path/stats.ts), so a report of a recording equals the live one.
 *
 * A source is `FILE` or `FILE@FROM-TO` (rounds FROM..TO of a trace; windows of a monitor run),
 * `-` is standard input. A line that is not a pathlens event is an error naming the file and line.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { PathlensError } from '../core/errors.js';
import { MONITOR_SCHEMA, TRACE_SCHEMA } from '../core/schemas.js';
import { type HopStats, HopStatsTable } from '../path/stats.js';
import type { StartEvent } from '../trace/events.js';

export interface ReplayedPath {
  /** The target as given (several targets: each its own). */
  target: string;
  /** The trace's start event (a monitor path: one made from its path-hops event). */
  start: StartEvent;
  hops: HopStats[];
  /** Rounds folded in. */
  rounds: number;
  names: Map<string, string | null>;
  startedAt: number;
}

export interface Source {
  file: string;
  from: number;
  to: number;
}

/** `FILE` or `FILE@FROM-TO` (or `FILE@N`). */
export function parseSource(s: string): Source {
  const m = /^(.*)@(\d+)(?:-(\d+))?$/.exec(s);
  if (!m || m[1] === '') return { file: s, from: 1, to: Infinity };
  const from = Number(m[2]);
  const to = m[3] === undefined ? from : Number(m[3]);
  if (from < 1 || to < from) throw new PathlensError('ERR_USAGE', `${s}: rounds must be FROM-TO with 1 <= FROM <= TO`);
  return { file: m[1], from, to };
}

interface TraceAcc {
  start: StartEvent;
  stats: HopStatsTable;
  rounds: Set<number>;
}

/** Reads one recorded run into its paths (one per target, in the order they started). */
export async function replay(src: Source): Promise<ReplayedPath[]> {
  const input = src.file === '-' ? process.stdin : createReadStream(src.file);
  const opened = new Promise<void>((res, rej) => {
    if (src.file === '-') return res();
    input.once('open', () => res());
    input.once('error', (e: NodeJS.ErrnoException) => rej(new PathlensError('ERR_PARSE', `cannot read ${src.file}: ${e.code ?? e.message}`)));
  });
  await opened;
  const lines = createInterface({ input, crlfDelay: Infinity });
  const traces = new Map<string, TraceAcc>();
  const monitor = new Map<string, ReplayedPath>();
  const names = new Map<string, string | null>();
  let n = 0;
  const bad = (why: string) => new PathlensError('ERR_PARSE', `${src.file}:${n}: ${why}`);
  try {
    for await (const line of lines) {
      n++;
      if (line.trim() === '') continue;
      let e: Record<string, unknown>;
      try {
        e = JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw bad('not JSON (a pathlens --jsonl / -o recording is one event per line)');
      }
      if (typeof e !== 'object' || e === null || typeof e.type !== 'string') throw bad('not a pathlens event');
      if (e.schema === TRACE_SCHEMA) {
        const key = typeof e.target === 'string' && e.type !== 'start' ? e.target : null;
        if (e.type === 'start') {
          const s = e as unknown as StartEvent;
          if (typeof s.target !== 'string' || typeof s.address !== 'string' || typeof s.first_ttl !== 'number') throw bad('start event without target, address or first_ttl');
          if (!traces.has(s.target)) traces.set(s.target, { start: s, stats: new HopStatsTable(s.address), rounds: new Set() });
          continue;
        }
        if (e.type === 'name' && typeof e.addr === 'string') {
          names.set(e.addr, typeof e.name === 'string' ? e.name : null);
          continue;
        }
        const acc = key !== null ? traces.get(key) : traces.size === 1 ? traces.values().next().value : undefined;
        if (e.type !== 'hop' && e.type !== 'mtu') continue;
        if (!acc) throw bad(`${e.type} event before its start event`);
        const round = typeof e.round === 'number' ? e.round : 1;
        if (round < src.from || round > src.to) continue;
        if (e.type === 'hop') {
          const why = badHop(e);
          if (why) throw bad(`hop event: ${why}`);
          acc.stats.add(e as never);
          acc.rounds.add(round);
        } else if (isInt(e.ttl, 0, 255) && isInt(e.mtu, 68, 1 << 20)) acc.stats.addMtu(e.ttl as number, e.mtu as number);
      } else if (e.schema === MONITOR_SCHEMA) {
        if (e.type !== 'path-hops') continue;
        const w = typeof e.window === 'number' ? e.window : 0;
        if (w < src.from || w > src.to) continue;
        if (typeof e.target !== 'string' || !Array.isArray(e.hops)) throw bad('path-hops event without target or hops');
        for (const h of e.hops as unknown[]) {
          const why = badStats(h);
          if (why) throw bad(`path-hops event: ${why}`);
        }
        const start = monitorStart(e);
        // A monitor path's figures are per window: the report shows the last window asked for.
        monitor.set(e.target, { target: e.target, start, hops: e.hops as HopStats[], rounds: typeof e.rounds === 'number' ? e.rounds : 0, names, startedAt: Date.parse(String(e.time ?? start.time)) || 0 });
      } else throw bad(`not a pathlens trace or monitor event (schema ${JSON.stringify(e.schema)})`);
    }
  } finally {
    lines.close();
    if (src.file !== '-') (input as ReturnType<typeof createReadStream>).destroy();
  }
  const out: ReplayedPath[] = [];
  for (const [target, t] of traces) {
    out.push({ target, start: t.start, hops: t.stats.hops(t.start.first_ttl), rounds: t.rounds.size, names, startedAt: Date.parse(t.start.time) || 0 });
  }
  out.push(...monitor.values());
  if (out.length === 0) throw new PathlensError('ERR_PARSE', `${src.file}: no trace start event and no monitor path-hops event: nothing to report`);
  return out;
}

const isInt = (x: unknown, lo: number, hi: number): boolean => Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi;

/** What is wrong with a recorded hop event (null: nothing), checked before it is folded in. */
function badHop(e: Record<string, unknown>): string | null {
  if (!isInt(e.ttl, 1, 255)) return 'ttl must be a whole number from 1 to 255';
  if (!isInt(e.probes, 0, 1 << 20)) return 'probes must be a whole number';
  if (!Array.isArray(e.replies) || e.replies.length > (e.probes as number)) return 'replies must be a list of at most `probes` replies';
  for (const r of e.replies as unknown[]) {
    const x = r as Record<string, unknown>;
    if (typeof r !== 'object' || r === null) return 'a reply must be an object';
    if (!(x.addr === null || typeof x.addr === 'string')) return 'a reply\'s addr must be an address or null';
    if (typeof x.rtt_ms !== 'number' || !Number.isFinite(x.rtt_ms) || x.rtt_ms < 0) return 'a reply\'s rtt_ms must be a number of ms';
    if (!isInt(x.index, 0, 1 << 20)) return 'a reply\'s index must be a whole number';
    if (x.flow !== undefined && !isInt(x.flow, 0, 1 << 16)) return 'a reply\'s flow must be a whole number';
  }
  if (e.no_reply_flows !== undefined && (!Array.isArray(e.no_reply_flows) || !e.no_reply_flows.every((f) => isInt(f, 0, 1 << 16)))) return 'no_reply_flows must be a list of flows';
  return null;
}

const FIGURES = ['last_ms', 'mean_ms', 'best_ms', 'worst_ms', 'stdev_ms', 'jitter_ms', 'jitter_mean_ms', 'jitter_max_ms', 'jitter_rfc3550_ms'] as const;

/** What is wrong with a recorded hop's statistics (a monitor's path-hops), before a view reads them. */
function badStats(h: unknown): string | null {
  if (typeof h !== 'object' || h === null) return 'a hop must be an object';
  const x = h as Record<string, unknown>;
  if (!isInt(x.ttl, 1, 255)) return 'a hop\'s ttl must be a whole number from 1 to 255';
  if (!isInt(x.sent, 0, 2 ** 31) || !isInt(x.received, 0, 2 ** 31)) return 'a hop\'s sent and received must be whole numbers';
  if (typeof x.loss !== 'number' || !(x.loss >= 0 && x.loss <= 100)) return 'a hop\'s loss must be a percentage';
  for (const k of FIGURES) if (!(x[k] === null || (typeof x[k] === 'number' && Number.isFinite(x[k])))) return `a hop's ${k} must be a number or null`;
  if (!Array.isArray(x.responders) || !x.responders.every((r) => typeof r === 'object' && r !== null && typeof (r as { addr: unknown }).addr === 'string' && isInt((r as { count: unknown }).count, 0, 2 ** 31))) return 'a hop\'s responders must be a list of {addr, count}';
  if (x.branches !== undefined && !Array.isArray(x.branches)) return 'a hop\'s branches must be a list';
  for (const b of (x.branches as unknown[] | undefined) ?? []) {
    const y = b as Record<string, unknown>;
    if (typeof b !== 'object' || b === null || !(y.addr === null || typeof y.addr === 'string') || !Array.isArray(y.flows) || typeof y.loss !== 'number' || !isInt(y.sent, 0, 2 ** 31)) return 'a branch must have addr, flows, sent and loss';
    for (const k of FIGURES) if (!(y[k] === null || (typeof y[k] === 'number' && Number.isFinite(y[k])))) return `a branch's ${k} must be a number or null`;
  }
  if (x.loss_evidence !== undefined && x.loss_evidence !== null) {
    const v = x.loss_evidence as Record<string, unknown>;
    if (typeof v !== 'object' || !isInt(v.ttl, 1, 255) || typeof v.loss !== 'number' || !isInt(v.sent, 0, 2 ** 31)) return 'a hop\'s loss_evidence must be {ttl, loss, sent}';
  }
  if (x.pmtu !== undefined && !isInt(x.pmtu, 68, 1 << 20)) return 'a hop\'s pmtu must be a whole number';
  return null;
}

/** The start event a report needs, from a monitor's path-hops event. */
function monitorStart(e: Record<string, unknown>): StartEvent {
  return {
    schema: TRACE_SCHEMA,
    type: 'start',
    t_ms: 0,
    version: String(e.version ?? ''),
    time: String(e.time ?? new Date(0).toISOString()),
    method: (e.method as StartEvent['method']) ?? 'udp',
    socket: 'dgram',
    family: e.family === 6 ? 6 : 4,
    target: String(e.target),
    address: String(e.address ?? e.target),
    source: null,
    src_port: 0,
    first_ttl: 1,
    max_ttl: 30,
    queries: 1,
    port: 0,
    wait_ms: 0,
    adaptive_factor: 0,
    max_inflight: 0,
    payload_len: 0,
    deadline_ms: null,
    tos: null,
    quote_header: false,
  };
}
