/**
 * The monitor's live table (stdout a terminal): one row per target, worst first (down, degraded,
 * up; then by score), as many as the screen holds, redrawn at most ten times a second from the
 * event stream. Keys: q (or Ctrl-C) quit, s sort by name / worst first.
 */
import type { Sink } from '../core/sink.js';
import type { MonitorEvent, MonitorStartEvent, StateEvent, StatsEvent } from '../monitor/events.js';
import { ScreenView, type TerminalIn, type TerminalOut } from './terminal.js';

const RANK = { down: 0, degraded: 1, up: 2 } as const;
const f = (x: number | null, d = 2) => (x === null ? '-' : x.toFixed(d));

export class MonitorLiveView extends ScreenView implements Sink<MonitorEvent> {
  private start: MonitorStartEvent | null = null;
  private readonly rows = new Map<string, StatsEvent>();
  private note = '';
  private byName = false;
  private stop: (() => void) | null = null;

  constructor(out: TerminalOut, input: TerminalIn) {
    super(out, input);
  }

  open(stop: () => void): void {
    this.stop = stop;
    this.screen.open((k) => {
      if (k === 'q' || k === '\x03') this.stop?.();
      else if (k === 's') this.byName = !this.byName;
      this.draw();
    });
    this.draw();
  }

  event(e: MonitorEvent): void {
    if (e.type === 'start') this.start = e;
    else if (e.type === 'stats') this.rows.set(`${e.target}\u0000${e.path ?? ''}`, e);
    else if (e.type === 'state') this.note = noteOf(e);
    else if (e.type === 'method' && e.action !== 'chosen') this.note = `${e.target}: method ${e.action}${e.method ? ` ${e.method}` : ''}: ${e.reason}`;
    else if (e.type === 'address') this.note = `${e.target}: now ${e.address} (was ${e.from})`;
    else if (e.type === 'error') this.note = `error: ${e.message}`;
    else if (e.type === 'path' && e.change === 'changed') this.note = `${e.target}: path changed at hop ${e.changed_ttls.join(', ')}${e.reached ? '' : ' (no longer reaches it)'}`;
    this.schedule();
  }

  frame(): string[] {
    const all = [...this.rows.values()];
    const count = { up: 0, degraded: 0, down: 0 };
    for (const r of all) count[r.state]++;
    const s = this.start;
    const lines = [
      `pathlens monitor: ${s ? s.targets : 0} targets   up ${count.up}   degraded ${count.degraded}   down ${count.down}   windows of ${s ? s.window_ms / 1000 : 0} s   ${new Date().toISOString().slice(0, 19)}Z`,
      `Keys: q quit  s sort (${this.byName ? 'by name' : 'worst first'})`,
      '',
      `${'Target'.padEnd(28)}${'Path'.padEnd(10)}${'State'.padEnd(10)}${'Method'.padEnd(7)}${'Loss%'.padStart(7)}${'Sent'.padStart(6)}${'Median'.padStart(9)}${'p95'.padStart(9)}${'Jitter'.padStart(9)}${'Score'.padStart(7)}`,
    ];
    all.sort(this.byName ? (a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0) : (a, b) => RANK[a.state] - RANK[b.state] || a.score - b.score || (a.target < b.target ? -1 : 1));
    const room = Math.max(1, this.screen.rows - lines.length - 3);
    for (const r of all.slice(0, room)) {
      lines.push(`${r.target.slice(0, 27).padEnd(28)}${(r.path ?? '').slice(0, 9).padEnd(10)}${r.state.padEnd(10)}${r.method.padEnd(7)}${r.loss.toFixed(1).padStart(7)}${String(r.sent).padStart(6)}${f(r.median_ms).padStart(9)}${f(r.p95_ms).padStart(9)}${f(r.jitter_ms).padStart(9)}${String(r.score).padStart(7)}`);
    }
    if (all.length > room) lines.push(`... and ${all.length - room} more`);
    if (this.note) lines.push('', this.note);
    return lines;
  }
}

function noteOf(e: StateEvent): string {
  return `${e.target}${e.path ? ` via ${e.path}` : ''}: ${e.from ?? 'unknown'} -> ${e.to} (${e.reason})`;
}
