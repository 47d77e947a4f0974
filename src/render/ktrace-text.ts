/**
 * The human view of `pathlens ktrace`: a consumer of pathlens.ktrace/1 events. The start lists
 * each stage with the hook it got (or why none); each round trip is a block, stage by stage with
 * the time since the previous one, the wire-and-far-end time between the two paths, and the
 * total; incomplete trips say where they stopped and why; histograms are log2 bars per segment.
 */
import type { KtraceEvent, KtraceHistogramEvent, KtraceRttEvent, StageTime } from '../ktrace/events.js';

const us = (ns: number) => (ns / 1000).toFixed(1);
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

function stageLines(stages: StageTime[], firstPath: Set<string>, label: [string, string]): string[] {
  const out: string[] = [];
  let prev = 0;
  let side = '';
  for (const s of stages) {
    const now = firstPath.has(s.name) ? label[0] : label[1];
    if (now !== side && side && stages.indexOf(s) > 0) out.push(`  ${pad('', 13)}${pad('(wire and far end)', 22)}${pad('', 28)}+${us(s.t_ns - prev)} us`);
    out.push(`  ${pad(now !== side ? now : '', 13)}${pad(s.name, 22)}${pad(s.hook, 28)}${s.t_ns === 0 ? ' 0.0' : `+${us(s.t_ns - prev)}`} us`);
    if (s.stack === null) out.push(`${' '.repeat(17)}(no stack: the kernel's stack map is full)`);
    for (const f of s.stack ?? []) out.push(`${' '.repeat(17)}${f}`);
    side = now;
    prev = s.t_ns;
  }
  return out;
}

function bars(h: KtraceHistogramEvent): string[] {
  const out: string[] = [];
  for (const seg of h.segments) {
    const total = seg.buckets.reduce((a, b) => a + b.count, 0);
    if (!total) continue;
    out.push(`  ${seg.from} -> ${seg.to} (${total})`);
    const max = Math.max(...seg.buckets.map((b) => b.count));
    for (const b of seg.buckets) {
      const hi = b.ge_ns === 0 ? 1 : b.ge_ns * 2 - 1;
      out.push(`    ${String(b.ge_ns).padStart(9)} -> ${String(hi).padEnd(9)} ns : ${String(b.count).padStart(7)} |${'*'.repeat(Math.max(1, Math.round((40 * b.count) / max))).padEnd(40)}|`);
    }
  }
  return out;
}

export class KtraceTextView {
  private firstPath = new Set<string>();
  private labels: [string, string] = ['request out', 'reply in'];
  private what = '';
  constructor(private readonly write: (line: string) => void) {}

  event(e: KtraceEvent): void {
    switch (e.type) {
      case 'start': {
        const rx = e.direction === 'rx';
        this.labels = rx ? ['request in', 'reply out'] : ['request out', 'reply in'];
        this.firstPath = new Set(e.stages.filter((s) => s.path === (rx ? 'in' : 'out')).map((s) => s.name));
        this.what = rx ? `${e.dst} -> ${e.src}` : `${e.src} -> ${e.dst}`;
        this.write(`pathlens ktrace: ICMP${e.family === 6 ? 'v6' : ''} echo ${this.what} (${rx ? 'RX: pinged here' : 'TX: pinging from here'})${e.netns ? `, netns ${e.netns}` : ''}`);
        for (const s of e.stages) {
          const why = s.hook ? (s.same_as ? `${s.hook} (same point as ${s.same_as})` : s.hook) : `not measured: ${s.refused.at(-1)?.reason ?? 'no hook'}`;
          this.write(`  ${pad(s.name, 22)}${why}`);
        }
        this.write(`  drops: ${e.drops ?? 'not seen (no kfree_skb hook)'}`);
        break;
      }
      case 'rtt':
        this.rtt(e);
        break;
      case 'incomplete': {
        const why = e.dropped ? `${e.dropped} dropped by the kernel: ${e.drop_reason}` : e.why === 'timeout' ? 'no reply in time' : 'the run ended';
        this.write(`echo id ${e.id} seq ${e.seq}: incomplete after ${e.last_stage ?? 'no stage'} (${why})`);
        break;
      }
      case 'histogram':
        this.write(`histograms (ns, per segment) at ${(e.t_ms / 1000).toFixed(1)} s:`);
        for (const l of bars(e)) this.write(l);
        break;
      case 'done':
        this.write(`-- ${e.trips} round trip${e.trips === 1 ? '' : 's'}, ${e.incomplete} incomplete${e.lost ? `, ${e.lost} lost` : ''} (${e.reason}, ${(e.duration_ms / 1000).toFixed(2)} s)`);
        break;
    }
  }

  private rtt(e: KtraceRttEvent): void {
    const who = e.pid ? `${e.comm} pid ${e.pid}, ` : '';
    const ifs = [e.ifindex_out && `out ifindex ${e.ifindex_out}`, e.ifindex_in && `in ifindex ${e.ifindex_in}`].filter(Boolean).join(', ');
    this.write(`echo ${this.what} id ${e.id} seq ${e.seq} (${who}${ifs})`);
    for (const l of stageLines(e.stages, this.firstPath, this.labels)) this.write(l);
    this.write(`  total ${us(e.total_ns)} us${e.wire_ns !== null ? `, of which wire and far end ${us(e.wire_ns)} us` : ''}`);
  }
}
