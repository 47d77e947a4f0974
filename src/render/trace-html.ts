/**
 * `--html FILE`: one self-contained page for a continuous run (no script, no font, no fetch):
 * the hop table (mtr's columns and the jitter figures) and, per answering hop, an SVG chart of
 * its RTT over the rounds with the lost rounds marked. Readable on a phone: the table scrolls
 * sideways inside its box, the charts take the width they are given.
 *
 * RoundSeries is the sink that keeps what the charts need: per TTL, the best RTT of each round
 * (null: no reply that round), for the last MAX_ROUNDS rounds.
 */
import type { Sink } from '../core/sink.js';
import type { StartEvent, TraceEvent } from '../trace/events.js';
import type { HopStats } from '../trace/events.js';
import { verdictLine } from './trace-report.js';

export const MAX_ROUNDS = 2000;

export class RoundSeries implements Sink<TraceEvent> {
  /** ttl -> per round (index round - first kept) best RTT or null. */
  readonly series = new Map<number, (number | null)[]>();
  firstRound = 1;
  lastRound = 0;

  event(e: TraceEvent): void {
    if (e.type !== 'hop' || e.round === undefined) return;
    if (e.round > this.lastRound) this.lastRound = e.round;
    let s = this.series.get(e.ttl);
    if (!s) {
      s = [];
      this.series.set(e.ttl, s);
    }
    const best = e.replies.length ? Math.min(...e.replies.map((r) => r.rtt_ms)) : null;
    s[e.round - this.firstRound] = best;
    if (this.lastRound - this.firstRound + 1 > MAX_ROUNDS) {
      for (const v of this.series.values()) v.shift();
      this.firstRound++;
    }
  }

  /** Rounds of a TTL, oldest first (undefined: not probed that round, e.g. past the target). */
  of(ttl: number): (number | null | undefined)[] {
    const s = this.series.get(ttl) ?? [];
    const out: (number | null | undefined)[] = [];
    for (let i = 0; i <= this.lastRound - this.firstRound; i++) out.push(s[i]);
    return out;
  }
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const f = (x: number | null) => (x === null ? '–' : x.toFixed(2));

/** One hop's RTT over the rounds: a line where it answered, red marks where it did not. */
export function rttChart(ttl: number, host: string, rounds: (number | null | undefined)[]): string {
  const W = 600;
  const H = 120;
  const pad = 4;
  const vals = rounds.filter((x): x is number => typeof x === 'number');
  // The band the RTTs cover (a tenth more each side), so that their variation shows.
  const hi0 = Math.max(...vals, 0.001);
  const lo0 = Math.min(...vals, hi0);
  const span = Math.max(hi0 - lo0, hi0 * 0.02, 0.001);
  const lo = Math.max(0, lo0 - span * 0.1);
  const max = hi0 + span * 0.1;
  const n = Math.max(rounds.length - 1, 1);
  const x = (i: number) => pad + ((W - 2 * pad) * i) / n;
  const y = (v: number) => H - pad - ((H - 2 * pad) * (v - lo)) / (max - lo);
  const parts: string[] = [];
  let run: string[] = [];
  const flush = () => {
    if (run.length > 1) parts.push(`<polyline class="rtt" points="${run.join(' ')}"/>`);
    else if (run.length === 1) parts.push(`<circle class="rtt" r="2" cx="${run[0].split(',')[0]}" cy="${run[0].split(',')[1]}"/>`);
    run = [];
  };
  rounds.forEach((v, i) => {
    if (typeof v === 'number') run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    else {
      flush();
      if (v === null) parts.push(`<line class="lost" x1="${x(i).toFixed(1)}" x2="${x(i).toFixed(1)}" y1="${H - pad}" y2="${H - pad - 14}"><title>round ${i + 1}: no reply</title></line>`);
    }
  });
  flush();
  return `<figure class="chart"><figcaption>${ttl}. ${esc(host)} <span class="scale">${lo.toFixed(2)}–${max.toFixed(2)} ms</span></figcaption><svg class="rtt-chart" data-ttl="${ttl}" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="RTT of hop ${ttl} over ${rounds.length} rounds"><rect class="frame" x="0" y="0" width="${W}" height="${H}"/>${parts.join('')}</svg></figure>`;
}

export interface HtmlInput {
  start: StartEvent;
  hops: HopStats[];
  rounds: number;
  names: Map<string, string | null>;
  series: RoundSeries;
  startedAt: number;
}

export function reportHtml(x: HtmlInput): string {
  const s = x.start;
  const host = (a: string) => x.names.get(a) ?? a;
  const rows = x.hops
    .map((h) => {
      const who = h.responders.length ? h.responders.map((r) => `${esc(host(r.addr))}${h.responders.length > 1 ? ` <small>(${r.count})</small>` : ''}`).join('<br>') : '???';
      const lossCls = h.loss >= 100 ? ' silent' : h.loss > 0 ? ' lossy' : '';
      return `<tr class="hop${lossCls}" data-ttl="${h.ttl}"><td>${h.ttl}</td><td class="host">${who}</td><td>${h.loss.toFixed(1)}%</td><td>${h.sent}</td><td>${f(h.last_ms)}</td><td>${f(h.mean_ms)}</td><td>${f(h.best_ms)}</td><td>${f(h.worst_ms)}</td><td>${f(h.stdev_ms)}</td><td>${f(h.jitter_mean_ms)}</td><td>${f(h.jitter_max_ms)}</td><td class="why">${h.loss_verdict && h.loss_verdict !== 'none' ? esc(verdictLine(h) ?? '') : ''}</td></tr>${(h.branches ?? []).map((b) => `<tr class="branch" data-ttl="${h.ttl}"><td></td><td class="host">&rarr; ${b.addr === null ? 'no answer' : esc(b.addr)} [flows ${b.flows.join(',')}]</td><td>${b.loss.toFixed(1)}%</td><td>${b.sent}</td><td>${f(b.last_ms)}</td><td>${f(b.mean_ms)}</td><td>${f(b.best_ms)}</td><td>${f(b.worst_ms)}</td><td>${f(b.stdev_ms)}</td><td>${f(b.jitter_mean_ms)}</td><td>${f(b.jitter_max_ms)}</td><td></td></tr>`).join('')}`;
    })
    .join('\n');
  const charts = x.hops
    .filter((h) => h.received > 0)
    .map((h) => rttChart(h.ttl, h.responders.length ? host(h.responders[0].addr) : '???', x.series.of(h.ttl)))
    .join('\n');
  const title = `pathlens trace to ${s.target}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:1rem;color:#1b1f24;background:#fff}
h1{font-size:1.2rem;margin:0 0 .3rem}
p.meta{color:#555;margin:0 0 1rem;font-size:.9rem}
.table{overflow-x:auto;border:1px solid #d0d7de;border-radius:6px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:.9rem}
th,td{padding:.35rem .6rem;text-align:right;white-space:nowrap;border-bottom:1px solid #eaeef2}
th{background:#f6f8fa;position:sticky;top:0}
td.host,th.host,td.why{text-align:left}
td.why{font-size:.85em}
tr.branch td{color:#555}
tr.lossy td{background:#fff8e6}
tr.silent td{color:#888}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:1rem;margin-top:1rem}
figure.chart{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:.5rem}
figcaption{font-size:.85rem;margin-bottom:.3rem;overflow-wrap:anywhere}
.scale{color:#777;float:right}
svg.rtt-chart{width:100%;height:90px;display:block}
rect.frame{fill:#fbfcfd;stroke:#eaeef2}
polyline.rtt{fill:none;stroke:#0969da;stroke-width:1.5;vector-effect:non-scaling-stroke}
circle.rtt{fill:#0969da}
line.lost{stroke:#cf222e;stroke-width:2;vector-effect:non-scaling-stroke}
</style>
</head>
<body>
<h1>${esc(title)}${s.target !== s.address ? ` (${esc(s.address)})` : ''}</h1>
<p class="meta">${esc(s.method.toUpperCase())}/IPv${s.family}, ${x.rounds} round${x.rounds === 1 ? '' : 's'}, started ${esc(new Date(x.startedAt).toISOString())}, pathlens ${esc(s.version)}</p>
<div class="table"><table>
<thead><tr><th>#</th><th class="host">Host</th><th>Loss</th><th>Snt</th><th>Last</th><th>Avg</th><th>Best</th><th>Wrst</th><th>StDev</th><th>Javg</th><th>Jmax</th><th>Loss means</th></tr></thead>
<tbody>
${rows}
</tbody>
</table></div>
<section class="charts">
${charts}
</section>
</body>
</html>
`;
}
