/**
 * The human view of `pathlens ktrace`: a consumer of pathlens.ktrace/1 events. The start lists
 * each stage with the hook it got (or why none); each round trip is a block, path by path, stage by
 * stage with the time since the previous stage of its path and the path's own time, the
 * wire-and-far-end time between the two paths, and the total split into those three; incomplete trips say where they stopped and why; histograms are log2 bars per segment.
 */
import type { KtraceEvent, KtraceHistogramEvent, KtracePacketEvent, KtraceRttEvent, StageTime } from '../ktrace/events.js';

const us = (ns: number) => (ns / 1000).toFixed(1);
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

interface PathPart {
  label: string;
  stages: StageTime[];
}

/** The stages of a round trip split into its two paths, in order. */
function paths(stages: StageTime[], firstPath: Set<string>, label: [string, string]): PathPart[] {
  const out: PathPart[] = [];
  for (const s of stages) {
    const l = firstPath.has(s.name) ? label[0] : label[1];
    if (out.at(-1)?.label !== l) out.push({ label: l, stages: [] });
    out.at(-1)!.stages.push(s);
  }
  return out;
}

const spanOf = (p: PathPart) => p.stages.at(-1)!.t_ns - p.stages[0].t_ns;

/**
 * Per path: each stage with the time since the one before it in that path (the first at 0.0),
 * the path's own time on its last stage; between the paths, the gap (TX: the wire and the far
 * end; RX: this host answering).
 */
function stageLines(parts: PathPart[], gapLabel: string): string[] {
  const out: string[] = [];
  parts.forEach((p, k) => {
    if (k > 0) {
      const gap = p.stages[0].t_ns - parts[k - 1].stages.at(-1)!.t_ns;
      out.push(`  ${pad(gapLabel, 63)}${us(gap).padStart(6)} us`);
    }
    p.stages.forEach((s, i) => {
      const delta = i === 0 ? ' 0.0' : `+${us(s.t_ns - p.stages[i - 1].t_ns)}`;
      const end = i === p.stages.length - 1 && i > 0 ? `   = ${us(spanOf(p))} us` : '';
      out.push(`  ${pad(i === 0 ? p.label : '', 13)}${pad(s.name, 22)}${pad(s.hook, 28)}${delta.padStart(6)} us${end}`);
      if (s.stack === null) out.push(`${' '.repeat(17)}(no stack: the kernel's stack map is full)`);
      for (const f of s.stack ?? []) out.push(`${' '.repeat(17)}${f}`);
    });
  });
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
  private gap = 'wire and far end';
  private packetMode = false;
  constructor(private readonly write: (line: string) => void) {}

  event(e: KtraceEvent): void {
    switch (e.type) {
      case 'start': {
        const rx = e.direction === 'rx';
        this.labels = rx ? ['request in', 'reply out'] : ['request out', 'reply in'];
        this.gap = rx ? 'answering here' : 'wire and far end';
        this.firstPath = new Set(e.stages.filter((s) => s.path === (rx ? 'in' : 'out')).map((s) => s.name));
        this.what = rx ? `${e.dst} -> ${e.src}` : `${e.src} -> ${e.dst}`;
        this.packetMode = e.mode === 'packet';
        const profile = e.profile !== 'kernel' ? `, profile ${e.profile}` : '';
        if (this.packetMode) this.write(`pathlens ktrace: ${e.proto!.toUpperCase()} packets between ${e.src} and ${e.dst}${e.port ? ` (port ${e.port})` : ''}, each way${e.netns ? `, netns ${e.netns}` : ''}${profile}`);
        else this.write(`pathlens ktrace: ICMP${e.family === 6 ? 'v6' : ''} echo ${this.what} (${rx ? 'RX: pinged here' : 'TX: pinging from here'})${e.netns ? `, netns ${e.netns}` : ''}${profile}`);
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
      case 'packet':
        this.packet(e);
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
      case 'drops':
        if (e.total === 0) this.write('drops: none of these trips\' packets was dropped where kfree_skb sees it');
        else {
          this.write(`drops: ${e.total}, by packet, reason and the last stage it reached:`);
          for (const d of e.by) this.write(`  ${String(d.count).padStart(6)}  ${d.dropped.padEnd(8)} ${pad(d.reason, 28)}after ${d.stage ?? 'no stage'}`);
        }
        break;
      case 'done':
        if (this.packetMode) this.write(`-- ${e.trips} packet${e.trips === 1 ? '' : 's'} through their path, ${e.incomplete} ended earlier${e.lost ? `, ${e.lost} lost` : ''} (${e.reason}, ${(e.duration_ms / 1000).toFixed(2)} s)`);
        else this.write(`-- ${e.trips} round trip${e.trips === 1 ? '' : 's'}, ${e.incomplete} incomplete${e.lost ? `, ${e.lost} lost` : ''} (${e.reason}, ${(e.duration_ms / 1000).toFixed(2)} s)`);
        break;
    }
  }

  private packet(e: KtracePacketEvent): void {
    const who = e.pid ? `, ${e.comm} pid ${e.pid}` : '';
    const tcp = e.tcp ? ` [${e.tcp.flags}] seq ${e.tcp.seq}` : '';
    const ends: Record<KtracePacketEvent['end'], string> = {
      complete: '',
      dropped: `; dropped by the kernel: ${e.drop_reason}`,
      reused: `; ended after ${e.last_stage ?? 'no stage'} (its buffer carried another packet)`,
      timeout: `; ended after ${e.last_stage ?? 'no stage'}`,
      stopped: `; still after ${e.last_stage ?? 'no stage'} when the run ended`,
    };
    this.write(`${e.proto} ${e.dir} ${e.src}:${e.sport} -> ${e.dst}:${e.dport} len ${e.len}${tcp} (${e.ifindex ? `ifindex ${e.ifindex}` : 'no device'}${who})`);
    for (const l of stageLines([{ label: e.dir === 'out' ? 'out' : 'in', stages: e.stages }], '')) this.write(l);
    this.write(`  total ${us(e.total_ns)} us${ends[e.end]}`);
  }

  private rtt(e: KtraceRttEvent): void {
    const who = e.pid ? `${e.comm} pid ${e.pid}, ` : '';
    const ifs = [e.ifindex_out && `out ifindex ${e.ifindex_out}`, e.ifindex_in && `in ifindex ${e.ifindex_in}`].filter(Boolean).join(', ');
    this.write(`echo ${this.what} id ${e.id} seq ${e.seq} (${who}${ifs})`);
    const parts = paths(e.stages, this.firstPath, this.labels);
    for (const l of stageLines(parts, this.gap)) this.write(l);
    const gap = e.wire_ns ?? e.answer_ns;
    const split = parts.length === 2 && gap !== null ? `: ${parts[0].label} ${us(spanOf(parts[0]))}, ${this.gap} ${us(gap)}, ${parts[1].label} ${us(spanOf(parts[1]))} us` : '';
    this.write(`  total ${us(e.total_ns)} us${split}${e.wakeup_ns !== null ? `; of which the reader's wakeup (sk_data_ready to sk_read) ${us(e.wakeup_ns)} us` : ''}`);
  }
}
