/**
 * The live full-screen view of continuous mode (mtr's and Trippy's), when stdout is a terminal.
 * A consumer of the event stream like every other view: hop-stats events fill the table, name
 * events the names, reply events the diagnostic view. The few ANSI sequences it needs are written
 * here (docs/trace-views.md says why not a TUI library): the alternate screen, cursor hidden,
 * each frame drawn from the top left over the last one (no clearing, so no flicker), raw key
 * input. The terminal is restored when the run ends, on quit, on signals (the run ends through
 * them) and, as a last resort, on process exit.
 *
 * Keys: q (or Ctrl-C) quit, p pause/resume, r reset statistics, n names/addresses, d next view
 * (table, compact, diagnostic).
 */
import type { Sink } from '../core/sink.js';
import { ScreenView, type TerminalIn, type TerminalOut } from './terminal.js';
import type { HopStatsEvent, ReplyEvent, StartEvent, TraceEvent } from '../trace/events.js';

export type LiveMode = 'table' | 'compact' | 'diag';
const MODES: LiveMode[] = ['table', 'compact', 'diag'];

/** What the view can ask of the run. */
export interface LiveControl {
  stop(): void;
  paused: boolean;
  reset(): void;
}

const f1 = (x: number | null) => (x === null ? '' : x.toFixed(1));

interface Diag {
  reply: ReplyEvent;
  late: number;
}

/** The live table's word on a lossy hop (path/verdict.ts; the reports give the evidence). */
const LOSS_MARK: Record<string, string> = { none: '', 'rate-limited': '^ loss: replies rate-limited here, later hops answer', onward: '^ loss: real, from here on', unknown: '' };

export class LiveView extends ScreenView implements Sink<TraceEvent> {
  private start: StartEvent | null = null;
  private readonly stats = new Map<number, HopStatsEvent>();
  private readonly names = new Map<string, string | null>();
  private readonly diag = new Map<number, Diag>();
  private round = 0;
  private mode: LiveMode;
  private showNames: boolean;
  private control: LiveControl | null = null;
  private note = '';

  constructor(out: TerminalOut, input: TerminalIn, opts: { names: boolean; mode?: LiveMode }) {
    super(out, input);
    this.showNames = opts.names;
    this.mode = opts.mode ?? 'table';
  }

  /** Takes the terminal (alternate screen, raw keys) and the run's controls. */
  open(control: LiveControl): void {
    this.control = control;
    this.screen.open((k) => this.key(k));
    this.draw();
  }

  event(e: TraceEvent): void {
    switch (e.type) {
      case 'start':
        this.start = e;
        break;
      case 'hop-stats':
        this.stats.set(e.ttl, e);
        break;
      case 'round':
        this.round = e.round;
        break;
      case 'name':
        this.names.set(e.addr, e.name);
        break;
      case 'reply': {
        const d = this.diag.get(e.ttl);
        if (e.late) {
          if (d) d.late++;
        } else this.diag.set(e.ttl, { reply: e, late: d?.late ?? 0 });
        break;
      }
      case 'path-change':
        this.note = `round ${e.round}: hop ${e.ttl} changed from ${e.from.join(', ')} to ${e.to.join(', ')}`;
        break;
      default:
        break;
    }
    this.schedule();
  }

  private key(k: string): void {
    const c = this.control;
    if (!c) return;
    if (k === 'q' || k === '\x03') c.stop();
    else if (k === 'p') {
      c.paused = !c.paused;
      this.note = c.paused ? 'paused: p resumes' : 'resumed';
    } else if (k === 'r') {
      c.reset();
      this.stats.clear();
      this.diag.clear();
      this.note = 'statistics reset';
    } else if (k === 'n') this.showNames = !this.showNames;
    else if (k === 'd') this.mode = MODES[(MODES.indexOf(this.mode) + 1) % MODES.length];
    this.draw();
  }

  private host(addr: string): string {
    return this.showNames ? (this.names.get(addr) ?? addr) : addr;
  }

  /** The frame's lines (also what tests and screenshots read). */
  frame(): string[] {
    const s = this.start;
    const lines: string[] = [];
    const state = this.control?.paused ? 'paused' : 'running';
    lines.push(`pathlens trace to ${s ? `${s.target}${s.target !== s.address ? ` (${s.address})` : ''}` : '...'}   round ${this.round}   [${state}]   ${new Date().toISOString().slice(0, 19)}Z`);
    lines.push(`Keys: q quit  p pause  r reset  n ${this.showNames ? 'addresses' : 'names'}  d view (${this.mode})`);
    lines.push('');
    const hops = [...this.stats.values()].sort((a, b) => a.ttl - b.ttl);
    if (this.mode === 'table') {
      const w = Math.max(28, ...hops.flatMap((h) => h.responders.map((r) => this.host(r.addr).length + 5)));
      lines.push(`${' Host'.padEnd(w)}${'Loss%'.padStart(6)}${'Snt'.padStart(6)}${'Last'.padStart(7)}${'Avg'.padStart(7)}${'Best'.padStart(7)}${'Wrst'.padStart(7)}${'StDev'.padStart(7)}${'Javg'.padStart(7)}${'Jmax'.padStart(7)}`);
      for (const h of hops) {
        const who = h.responders.length ? this.host(h.responders[0].addr) : '???';
        lines.push(
          `${`${String(h.ttl).padStart(3)}. ${who}`.padEnd(w)}${`${h.loss.toFixed(1)}%`.padStart(6)}${String(h.sent).padStart(6)}${f1(h.last_ms).padStart(7)}${f1(h.mean_ms).padStart(7)}${f1(h.best_ms).padStart(7)}${f1(h.worst_ms).padStart(7)}${f1(h.stdev_ms).padStart(7)}${f1(h.jitter_mean_ms).padStart(7)}${f1(h.jitter_max_ms).padStart(7)}`,
        );
        if (h.branches?.length) {
          for (const b of h.branches) {
            const bw = `   -> ${b.addr === null ? 'no answer' : this.host(b.addr)} [${b.flows.join(',')}]`;
            lines.push(`${bw.padEnd(w)}${`${b.loss.toFixed(1)}%`.padStart(6)}${String(b.sent).padStart(6)}${f1(b.last_ms).padStart(7)}${f1(b.mean_ms).padStart(7)}${f1(b.best_ms).padStart(7)}${f1(b.worst_ms).padStart(7)}${f1(b.stdev_ms).padStart(7)}${f1(b.jitter_mean_ms).padStart(7)}${f1(b.jitter_max_ms).padStart(7)}`);
          }
        } else for (const r of h.responders.slice(1)) lines.push(`     ${this.host(r.addr)}`);
        const why = LOSS_MARK[h.loss_verdict ?? 'none'];
        if (why || h.pmtu !== undefined) lines.push(`     ${[why, h.pmtu !== undefined ? `path MTU ${h.pmtu}` : ''].filter(Boolean).join('   ')}`);
      }
    } else if (this.mode === 'compact') {
      for (const h of hops) {
        const who = h.responders.length ? h.responders.map((r) => `${this.host(r.addr)} (${r.count})`).join('  ') : '???';
        lines.push(`${String(h.ttl).padStart(3)}. ${who}  ${h.loss.toFixed(0)}% loss  ${f1(h.mean_ms)} ms`);
      }
    } else {
      lines.push(`${'  #'} ${'last reply'.padEnd(24)} ${'probe'.padEnd(22)} ${'rtt ms'.padStart(8)}  clocks (send/recv)   if  mpls  late`);
      for (const h of hops) {
        const d = this.diag.get(h.ttl);
        if (!d) {
          lines.push(`${String(h.ttl).padStart(3)} ${'(none)'.padEnd(24)}`);
          continue;
        }
        const r = d.reply;
        const probe = `${s?.method ?? ''} seq ${r.seq}${r.index ? ` #${r.index}` : ''}`;
        const mpls = r.mpls ? r.mpls.map((m) => m.label).join('/') : '-';
        lines.push(`${String(h.ttl).padStart(3)} ${(r.addr ? this.host(r.addr) : '(local)').padEnd(24)} ${probe.padEnd(22)} ${r.rtt_ms.toFixed(3).padStart(8)}  ${`${r.send_ts}/${r.recv_ts}`.padEnd(19)} ${String(r.ifindex ?? '-').padStart(3)}  ${mpls.padEnd(4)}  ${d.late}`);
      }
    }
    if (this.note) lines.push('', this.note);
    return lines;
  }
}
