/**
 * The pping output formats, each a consumer of the event stream. Three are ePPing's and mean
 * what they mean there:
 *  - standard: one line per RTT or flow event (local wall time with ns, RTT and min RTT in ms
 *    printed as C's %.6g, protocol, src:port+dst:port);
 *  - ppviz: pollere's machine format, RTT events only: epoch.ns rtt_s min_rtt_s src:port+dst:port;
 *  - json: one array of ePPing's objects (RTT and flow events, its fields in its order).
 * The fourth is pathlens' own: jsonl, every pathlens.pping/1 event (with schema and type, and the
 * start, table-full and done records). The other formats write those records as `#` notes to
 * the notes stream (stderr, or stdout when the output goes to a file).
 */
import type { Writable } from 'node:stream';
import { closeOutput, outputFailure } from '../io/output.js';
import { type FlowEvent, nsLiteral, type PpingDoneEvent, type PpingEvent, type PpingStartEvent, type RttEvent, type TableFullEvent, toJson } from '../pping/events.js';

export type PpingFormat = 'standard' | 'ppviz' | 'json' | 'jsonl';

/** Bytes gathered before a write. */
const BLOCK = 65536;
/** The longest ppviz line: two 20-digit seconds figures, an epoch time, two IPv6 addresses, ports. */
const PPVIZ_MAX = 256;
const DOT = 0x2e;
const SPACE = 0x20;
const COLON = 0x3a;
const PLUS = 0x2b;
const NEWLINE = 0x0a;
const ZERO = 0x30;

/** The digit pairs "00" to "99", two bytes each: digits are written two at a time. */
const PAIRS = new Uint8Array(200);
for (let k = 0; k < 100; k++) {
  PAIRS[2 * k] = ZERO + ((k / 10) | 0);
  PAIRS[2 * k + 1] = ZERO + (k % 10);
}

/**
 * A non-negative integer's decimal digits at b[i]; the index after them. Below 2^31 (epoch
 * seconds, ports, whole seconds of an RTT) in 32-bit integer arithmetic (a division by a constant
 * is then a multiplication), two digits a step.
 */
function putDigits(b: Uint8Array, i: number, n: number): number {
  if (n < 10) {
    b[i] = ZERO + n;
    return i + 1;
  }
  if (n > 0x7fffffff) return putDigitsLarge(b, i, n);
  let m = n | 0;
  let len = 2;
  for (let t = 100; t <= m; t *= 10) len++;
  let k = i + len - 2;
  for (; m >= 100; k -= 2) {
    const q = (m / 100) | 0;
    const r = (m - q * 100) << 1;
    b[k] = PAIRS[r];
    b[k + 1] = PAIRS[r + 1];
    m = q;
  }
  if (m >= 10) {
    b[k] = PAIRS[m << 1];
    b[k + 1] = PAIRS[(m << 1) + 1];
  } else {
    b[k + 1] = ZERO + m;
  }
  return i + len;
}

function putDigitsLarge(b: Uint8Array, i: number, n: number): number {
  let len = 0;
  for (let m = n; m >= 1; m = Math.floor(m / 10)) len++;
  for (let k = i + len - 1, m = n; k >= i; k--, m = Math.floor(m / 10)) b[k] = ZERO + (m % 10);
  return i + len;
}

/** An integer 0 to 999,999,999 in nine digits at b[i] (what nine() gives): four pairs, then one digit. */
function putNine(b: Uint8Array, i: number, n: number): number {
  let m = n | 0;
  for (let k = i + 7; k > i; k -= 2) {
    const q = (m / 100) | 0;
    const r = (m - q * 100) << 1;
    b[k] = PAIRS[r];
    b[k + 1] = PAIRS[r + 1];
    m = q;
  }
  b[i] = ZERO + m;
  return i + 9;
}

/** ns as seconds() writes them: "s.9 digits". */
function putSeconds(b: Uint8Array, i: number, ns: number): number {
  const n = Math.round(ns);
  const whole = Math.floor(n / 1e9);
  i = putDigits(b, i, whole);
  b[i] = DOT;
  return putNine(b, i + 1, n - whole * 1e9);
}

/** An ASCII string (an address) at b[i]. */
function putAscii(b: Uint8Array, i: number, s: string): number {
  for (let k = 0; k < s.length; k++) b[i + k] = s.charCodeAt(k);
  return i + s.length;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');
/** An integer 0 to 999,999,999 in nine digits (the fraction of a second): one string, no padding loop. */
const nine = (n: number) => String(1e9 + n).slice(1);

/** The local time of day of the last second clock() was asked for: one Date a second, not one a line. */
let clockSec = Number.NaN;
let clockText = '';

function clock(sec: number, nsec: number): string {
  if (sec !== clockSec) {
    const d = new Date(sec * 1000);
    clockSec = sec;
    clockText = `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.`;
  }
  return `${clockText}${nine(nsec)}`;
}

/** ns as "s.9 digits". */
function seconds(ns: number): string {
  const n = Math.round(ns);
  return `${Math.floor(n / 1e9)}.${nine(n % 1e9)}`;
}

/** C's printf("%.6g", x) for a finite x (ePPing prints its millisecond figures this way). */
export function g6(x: number): string {
  // The usual case, an RTT from 0.0001 to 99999.9 ms: six significant digits in fixed notation,
  // as toPrecision writes them there (the same digits and rounding as the general path below,
  // which test/property/pping-format.test.ts checks), trailing zeros stripped.
  if (x >= 1e-4 && x < 1e5) {
    const t = x.toPrecision(6);
    if (t.indexOf('e') < 0) {
      let end = t.length;
      if (t.indexOf('.') >= 0) {
        while (t.charCodeAt(end - 1) === 0x30) end--;
        if (t.charCodeAt(end - 1) === 0x2e) end--;
      }
      return end === t.length ? t : t.slice(0, end);
    }
  }
  return g6General(x);
}

/** g6 for any finite x: by its decimal exponent after rounding to six digits, as C decides. */
export function g6General(x: number): string {
  if (x === 0) return '0';
  const [m, e] = x.toExponential(5).split('e');
  const exp = Number(e);
  const strip = (t: string) => (t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t);
  if (exp < -4 || exp >= 6) return `${strip(m)}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return strip(x.toFixed(5 - exp));
}

/** ePPing's and pollere's flow text: address:port+address:port, IPv6 without brackets. */
function flow(e: { src_ip: string; src_port: number; dest_ip: string; dest_port: number }): string {
  return `${e.src_ip}:${e.src_port}+${e.dest_ip}:${e.dest_port}`;
}

/** An RTT or flow event as ePPing's JSON object: its fields, in its order. */
export function eppingJson(e: RttEvent | FlowEvent): string {
  const head = `{"timestamp":${nsLiteral(e.sec, e.nsec)},"src_ip":${JSON.stringify(e.src_ip)},"src_port":${e.src_port},"dest_ip":${JSON.stringify(e.dest_ip)},"dest_port":${e.dest_port},"protocol":"${e.protocol}"`;
  if (e.type === 'rtt') {
    return `${head},"rtt":${e.rtt},"min_rtt":${e.min_rtt},"sent_packets":${e.sent_packets},"sent_bytes":${e.sent_bytes},"rec_packets":${e.rec_packets},"rec_bytes":${e.rec_bytes},"match_on_egress":${e.match_on_egress}}`;
  }
  return `${head},"flow_event":"${e.flow_event}","reason":"${e.reason}","triggered_by":"${e.triggered_by}"}`;
}

export function standardLine(e: PpingEvent): string {
  switch (e.type) {
    case 'rtt':
      return `${clock(e.sec, e.nsec)} ${g6(e.rtt / 1e6)} ms ${g6(e.min_rtt / 1e6)} ms ${e.protocol} ${flow(e)}`;
    case 'flow':
      return `${clock(e.sec, e.nsec)} ${e.protocol} ${flow(e)} ${e.flow_event} due to ${e.reason} from ${e.triggered_by}`;
    case 'aggregate': {
      const kb = (b: number) => (b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(1)} kB`);
      const r = (ns: number | null) => ((ns ?? 0) / 1e6).toFixed(3);
      const rtts = e.rtt_count ? `${e.rtt_count} RTTs from ${e.flows} flows, min ${r(e.rtt_min)} p50 ${r(e.rtt_p50)} p95 ${r(e.rtt_p95)} max ${r(e.rtt_max)} ms; ` : 'no RTTs; ';
      const oneWay = e.one_way_flows ? `; ${e.one_way_flows} one-way flow${e.one_way_flows === 1 ? '' : 's'}` : '';
      return `${clock(e.sec, e.nsec)} ${e.prefix}: ${rtts}sent ${e.sent_packets} pkts ${kb(e.sent_bytes)}, received ${e.rec_packets} pkts ${kb(e.rec_bytes)}${oneWay}`;
    }
    case 'table-full':
      return `# ${clock(e.sec, e.nsec)} ${e.table} table full (${e.capacity} entries): ${e.dropped} not kept`;
    case 'start':
      return `# pping on ${e.input} (${e.source}): ${e.protocols.join(', ')}; rate limit ${e.rtt_rate ? `${e.rtt_rate} x RTT` : `${e.rate_limit_ms} ms`}`;
    case 'done': {
      const s = e.skipped;
      return `# ${e.reason}: ${e.packets} packets (${e.considered} considered by the rules; skipped: ${s.not_ip} not IP, ${s.other_protocol} other protocols, ${s.malformed} malformed, ${s.fragment} fragments), ${e.rtt_events} RTT${e.rtt_events === 1 ? '' : 's'}, ${e.flows_opened} flow${e.flows_opened === 1 ? '' : 's'}${e.one_way_flows ? ` (${e.one_way_flows} one-way)` : ''}${e.quic_moved ? `, ${e.quic_moved} QUIC flow${e.quic_moved === 1 ? '' : 's'} moved by connection id` : ''}${e.lost ? `, ${e.lost} lost` : ''}${e.flow_table_full || e.timestamp_table_full ? `, tables full: ${e.flow_table_full} flows, ${e.timestamp_table_full} timestamps not kept` : ''}`;
    }
  }
}

export function ppvizLine(e: RttEvent): string {
  return `${e.sec}.${nine(e.nsec)} ${seconds(e.rtt)} ${seconds(e.min_rtt)} ${flow(e)}`;
}

/** A flow that went with one direction only seen: pathlens' JSONL and aggregates have it, ePPing's formats do not. */
function oneWayOnly(e: PpingEvent): boolean {
  return e.type === 'flow' && !e.bidirectional;
}

/** Run records that the ePPing formats carry as `#` notes, not in their output. */
function isNote(e: PpingEvent): e is PpingStartEvent | PpingDoneEvent | TableFullEvent {
  return e.type === 'start' || e.type === 'done' || e.type === 'table-full';
}

/**
 * Writes events in one format to an output; notes (start, done, table-full) to `notes` for the
 * ePPing formats. Write failures are reported by src/io/output.ts; after one, nothing more is
 * written.
 */
export class PpingWriter {
  private first = true;
  /**
   * Output is gathered and written in blocks of 64 KiB (one write per line costs most of an
   * offline run), as bytes: a string gathered line by line would live across many young-generation
   * collections, and V8 answers that by growing the young generation (tens of MiB of RSS).
   */
  private pending = Buffer.allocUnsafe(BLOCK);
  private used = 0;

  constructor(
    private readonly format: PpingFormat,
    private readonly out: Writable,
    private readonly notes: Writable | null,
  ) {}

  event(e: PpingEvent): void {
    if (this.format !== 'jsonl' && oneWayOnly(e)) return;
    switch (this.format) {
      case 'standard':
        if (isNote(e)) this.note(e);
        else this.add(`${standardLine(e)}\n`);
        break;
      case 'ppviz':
        // pollere's format has RTT lines only; run notes go to `notes`, flow events nowhere.
        if (e.type === 'rtt') this.addPpviz(e);
        else if (isNote(e)) this.note(e);
        break;
      case 'json':
        if (isNote(e)) {
          this.note(e);
          break;
        }
        this.add(`${this.first ? '[\n' : ',\n'}${e.type === 'rtt' || e.type === 'flow' ? eppingJson(e) : toJson(e)}`);
        this.first = false;
        break;
      case 'jsonl':
        this.add(`${toJson(e)}\n`);
        break;
    }
  }

  /**
   * ppvizLine(e) and a newline, written as ASCII straight into the block: the RTT lines are most
   * of an offline run's output, and a string per line (three number conversions, a concatenation,
   * an encoding call) cost more than the rules that found the sample.
   */
  private addPpviz(e: RttEvent): void {
    if (BLOCK - this.used < PPVIZ_MAX) this.flush();
    const b = this.pending;
    let i = this.used;
    i = putDigits(b, i, e.sec);
    b[i++] = DOT;
    i = putNine(b, i, e.nsec);
    b[i++] = SPACE;
    i = putSeconds(b, i, e.rtt);
    b[i++] = SPACE;
    i = putSeconds(b, i, e.min_rtt);
    b[i++] = SPACE;
    i = putAscii(b, i, e.src_ip);
    b[i++] = COLON;
    i = putDigits(b, i, e.src_port);
    b[i++] = PLUS;
    i = putAscii(b, i, e.dest_ip);
    b[i++] = COLON;
    i = putDigits(b, i, e.dest_port);
    b[i++] = NEWLINE;
    this.used = i;
  }

  /** Appends text to the block (UTF-8), writing the block first when the text might not fit. */
  private add(text: string): void {
    if (text.length * 3 > BLOCK - this.used) {
      this.flush();
      if (text.length * 3 > BLOCK) {
        if (!outputFailure()) this.out.write(text);
        return;
      }
    }
    this.used += this.pending.write(text, this.used, 'utf8');
  }

  private note(e: PpingEvent): void {
    if (!outputFailure()) this.notes?.write(`${standardLine(e)}\n`);
  }

  /** Writes what is gathered (live captures call this a few times a second). */
  flush(): void {
    // The stream may hold a chunk until it is written: it gets the block, and a new one is taken
    // (not zeroed: every byte of it is written before it is used).
    if (this.used > 0 && !outputFailure()) {
      this.out.write(this.pending.subarray(0, this.used));
      this.pending = Buffer.allocUnsafeSlow(BLOCK);
    }
    this.used = 0;
  }

  /** Completes the format (json's closing bracket) and closes the output. */
  async end(): Promise<void> {
    if (this.format === 'json') this.add(this.first ? '[]\n' : '\n]\n');
    this.flush();
    await closeOutput(this.out);
  }
}
