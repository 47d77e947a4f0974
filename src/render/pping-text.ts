/**
 * The pping output formats, each a consumer of the event stream:
 *  - standard: one human line per event (local wall time with ns, RTT and min RTT in ms, flow);
 *  - ppviz: pollere's machine format, RTT events only: epoch.ns rtt_s min_rtt_s src:port+dst:port;
 *  - json: one array of event objects (ePPing's field names); jsonl: one object per line.
 * Start, table-full and done events go to standard as comment lines (stderr keeps them out of
 * ppviz's way); json and jsonl carry them as objects.
 */
import type { Writable } from 'node:stream';
import { PathlensError } from '../core/errors.js';
import { type PpingEvent, type RttEvent, toJson } from '../pping/events.js';

export type PpingFormat = 'standard' | 'ppviz' | 'json' | 'jsonl';

const pad = (n: number, w: number) => String(n).padStart(w, '0');

function clock(sec: number, nsec: number): string {
  const d = new Date(sec * 1000);
  return `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(nsec, 9)}`;
}

/** ns as "ms.6 digits" (exact: integer arithmetic). */
function ms(ns: number): string {
  const n = Math.round(ns);
  return `${Math.floor(n / 1e6)}.${pad(n % 1e6, 6)}`;
}

/** ns as "s.9 digits". */
function seconds(ns: number): string {
  const n = Math.round(ns);
  return `${Math.floor(n / 1e9)}.${pad(n % 1e9, 9)}`;
}

function endpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function flow(e: { src_ip: string; src_port: number; dest_ip: string; dest_port: number }): string {
  return `${endpoint(e.src_ip, e.src_port)}+${endpoint(e.dest_ip, e.dest_port)}`;
}

export function standardLine(e: PpingEvent): string {
  switch (e.type) {
    case 'rtt':
      return `${clock(e.sec, e.nsec)} ${ms(e.rtt)} ms ${ms(e.min_rtt)} ms ${e.protocol} ${flow(e)}`;
    case 'flow':
      return `${clock(e.sec, e.nsec)} ${e.protocol} ${flow(e)} ${e.flow_event} due to ${e.reason} from ${e.triggered_by}`;
    case 'aggregate': {
      const kb = (b: number) => (b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(1)} kB`);
      const r = (ns: number) => (ns / 1e6).toFixed(3);
      return `${clock(e.sec, e.nsec)} ${e.prefix}: ${e.rtt_count} RTTs from ${e.flows} flows, min ${r(e.rtt_min)} p50 ${r(e.rtt_p50)} p95 ${r(e.rtt_p95)} max ${r(e.rtt_max)} ms; sent ${e.sent_packets} pkts ${kb(e.sent_bytes)}, received ${e.rec_packets} pkts ${kb(e.rec_bytes)}`;
    }
    case 'table-full':
      return `# ${clock(e.sec, e.nsec)} ${e.table} table full (${e.capacity} entries): ${e.dropped} not kept`;
    case 'start':
      return `# pping on ${e.input} (${e.source}): ${e.protocols.join(', ')}; rate limit ${e.rtt_rate ? `${e.rtt_rate} x RTT` : `${e.rate_limit_ms} ms`}`;
    case 'done': {
      const s = e.skipped;
      return `# ${e.reason}: ${e.packets} packets (${e.considered} TCP/ICMP considered; skipped: ${s.not_ip} not IP, ${s.other_protocol} other protocols, ${s.malformed} malformed, ${s.fragment} fragments), ${e.rtt_events} RTTs, ${e.flows_opened} flows${e.lost ? `, ${e.lost} lost` : ''}${e.flow_table_full || e.timestamp_table_full ? `, tables full: ${e.flow_table_full} flows, ${e.timestamp_table_full} timestamps not kept` : ''}`;
    }
  }
}

export function ppvizLine(e: RttEvent): string {
  return `${e.sec}.${pad(e.nsec, 9)} ${seconds(e.rtt)} ${seconds(e.min_rtt)} ${flow(e)}`;
}

/** Writes events in one format to a stream; notes (start, done, table-full) to `notes` for ppviz. */
export class PpingWriter {
  private first = true;
  private failed: Error | null = null;
  /** Output is gathered and written in blocks of about 64 KiB (one write per line costs most of an offline run). */
  private pending = '';

  constructor(
    private readonly format: PpingFormat,
    private readonly out: Writable,
    private readonly notes: Writable | null,
    private readonly owned = false,
  ) {
    out.on('error', (err) => (this.failed = err));
  }

  event(e: PpingEvent): void {
    if (this.failed) return;
    switch (this.format) {
      case 'standard':
        this.pending += `${standardLine(e)}\n`;
        break;
      case 'ppviz':
        // pollere's format has RTT lines only; run notes go to `notes`, flow events nowhere.
        if (e.type === 'rtt') this.pending += `${ppvizLine(e)}\n`;
        else if (e.type !== 'flow') this.notes?.write(`${standardLine(e)}\n`);
        break;
      case 'json':
        this.pending += `${this.first ? '[\n' : ',\n'}${toJson(e)}`;
        this.first = false;
        break;
      case 'jsonl':
        this.pending += `${toJson(e)}\n`;
        break;
    }
    if (this.pending.length >= 65536) this.flush();
  }

  /** Writes what is gathered (live captures call this a few times a second). */
  flush(): void {
    if (this.pending && !this.failed) this.out.write(this.pending);
    this.pending = '';
  }

  end(): Promise<void> {
    if (this.format === 'json') this.pending += this.first ? '[]\n' : '\n]\n';
    this.flush();
    return new Promise((res, rej) => {
      const done = () => (this.failed ? rej(new PathlensError('ERR_USAGE', `cannot write output: ${this.failed.message}`)) : res());
      if (this.owned) this.out.end(done);
      else this.out.write('', done);
    });
  }
}
