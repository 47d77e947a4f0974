/**
 * The reports of continuous mode, from the per-hop statistics: `--report` (mtr -r's table),
 * `--report-json` (mtr --json's document, with pathlens' `hops`), `--csv` (mtr --csv's columns).
 * Host names where a `name` event gave one, `???` for a hop that never answered (as mtr).
 */
import { hostname } from 'node:os';
import type { StartEvent } from '../trace/events.js';
import type { BranchStats, HopStats } from '../trace/events.js';

export interface ReportInput {
  start: StartEvent;
  hops: HopStats[];
  rounds: number;
  /** Address -> reverse name (names on). */
  names: Map<string, string | null>;
  /** When the run started (epoch ms). */
  startedAt: number;
  /** The name of this machine (mtr's HOST / src); os.hostname() unless given. */
  host?: string;
}

export const REPORT_SCHEMA = 'pathlens.trace-report/1';

const f1 = (x: number | null) => (x === null ? '0.0' : x.toFixed(1));
const f2 = (x: number | null) => (x === null ? '0.00' : x.toFixed(2));

function label(addr: string, names: Map<string, string | null>): string {
  return names.get(addr) ?? addr;
}

/** The responder lines of a hop: the main one first (most replies). */
function hosts(h: HopStats, names: Map<string, string | null>): string[] {
  if (h.responders.length === 0) return ['???'];
  return h.responders.map((r) => label(r.addr, names));
}

/** The line that says what a lossy hop's loss means (path/verdict.ts), with its evidence; null when there is nothing to say. */
export function verdictLine(h: HopStats): string | null {
  if (!h.loss_verdict || h.loss_verdict === 'none') return null;
  const e = h.loss_evidence;
  const ev = e ? `hop ${e.ttl} loses ${e.loss.toFixed(1)}% of ${e.sent}` : null;
  switch (h.loss_verdict) {
    case 'rate-limited':
      return `loss here is this hop's replies (rate-limited or filtered): ${ev}`;
    case 'onward':
      return `loss is real, from here on: the best later hop, ${ev}`;
    default:
      return e ? `loss cannot be placed (too few probes, or no clear difference): ${ev}` : "loss cannot be placed: no later hop (at the last hop it is the path's own)";
  }
}

function branchLabel(b: BranchStats, names: Map<string, string | null>): string {
  const who = b.addr === null ? 'no answer' : label(b.addr, names);
  return `${who} [flows ${b.flows.join(',')}]`;
}

function isoLocal(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, '+0000');
}

/** `mtr -r`: the table, one row per hop, further responders of a hop on lines of their own. */
export function reportText(x: ReportInput): string {
  const rows = x.hops.map((h) => ({ h, names: hosts(h, x.names) }));
  // mtr's columns: the host in 25 characters (wider when a name needs it, as mtr -w), then
  // Loss% in 6 (100% is written 100.0, as mtr does), Snt in 6, Last in 7, the others in 6.
  // ECMP branches are rows of their own under their hop ('|->'), in the same columns.
  const width = Math.max(25, ...rows.flatMap((r) => r.names.map((n) => n.length + 2)), ...x.hops.flatMap((h) => (h.branches ?? []).map((b) => branchLabel(b, x.names).length)));
  const figs = (f: BranchStats | HopStats) =>
    `${(f.loss >= 100 ? '100.0' : `${f.loss.toFixed(1)}%`).padStart(6)}${String(f.sent).padStart(6)}${f1(f.last_ms).padStart(7)}${f1(f.mean_ms).padStart(6)}${f1(f.best_ms).padStart(6)}${f1(f.worst_ms).padStart(6)}${f1(f.stdev_ms).padStart(6)}`;
  const lines = [`Start: ${isoLocal(x.startedAt)}`, `HOST: ${(x.host ?? hostname()).padEnd(width + 3)}Loss%   Snt   Last   Avg  Best  Wrst StDev`];
  let pmtu: number | undefined;
  for (const { h, names } of rows) {
    if (h.pmtu !== undefined && h.pmtu !== pmtu) lines.push(`    |   path MTU ${h.pmtu} from here`);
    pmtu = h.pmtu;
    lines.push(`${String(h.ttl).padStart(3)}.|-- ${names[0].padEnd(width)}${figs(h)}`);
    if (h.branches && h.branches.length > 0) {
      for (const b of h.branches) lines.push(`    |-> ${branchLabel(b, x.names).padEnd(width)}${figs(b)}`);
    } else for (const n of names.slice(1)) lines.push(`    |   ${n}`);
    const v = verdictLine(h);
    if (v) lines.push(`    |   ${v}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `mtr --json`'s document, and pathlens' own per-TTL entries in `hops`. */
export function reportJson(x: ReportInput): string {
  const s = x.start;
  const doc = {
    schema: REPORT_SCHEMA,
    report: {
      mtr: {
        src: x.host ?? hostname(),
        dst: s.target,
        tos: s.tos ?? 0,
        tests: x.rounds,
        psize: String(s.payload_len),
        bitpattern: '0x00',
      },
      hubs: x.hops.map((h) => ({
        count: h.ttl,
        host: hosts(h, x.names)[0],
        'Loss%': h.loss,
        Snt: h.sent,
        Last: h.last_ms ?? 0,
        Avg: h.mean_ms ?? 0,
        Best: h.best_ms ?? 0,
        Wrst: h.worst_ms ?? 0,
        StDev: h.stdev_ms ?? 0,
      })),
      hops: x.hops.map((h) => ({
        ...h,
        responders: h.responders.map((r) => ({ ...r, name: x.names.get(r.addr) ?? null })),
      })),
      method: s.method,
      family: s.family,
      address: s.address,
      started: new Date(x.startedAt).toISOString(),
      version: s.version,
    },
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function csvField(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** `mtr --csv`: mtr's header and columns (Snt is followed by mtr's blank column), one row per responder. */
export function reportCsv(x: ReportInput): string {
  const lines = ['Mtr_Version,Start_Time,Status,Host,Hop,Ip,Loss%,Snt, ,Last,Avg,Best,Wrst,StDev,'];
  const when = Math.floor(x.startedAt / 1000);
  for (const h of x.hops) {
    const ips = h.responders.length ? h.responders.map((r) => label(r.addr, x.names)) : ['???'];
    for (const ip of ips) {
      lines.push(
        [`pathlens-${x.start.version}`, String(when), 'OK', x.start.target, String(h.ttl), ip, h.loss.toFixed(2), String(h.sent), '0', f2(h.last_ms), f2(h.mean_ms), f2(h.best_ms), f2(h.worst_ms), f2(h.stdev_ms)].map(csvField).join(','),
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
