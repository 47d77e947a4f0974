/**
 * The monitor's plain view: method decisions and state changes as they come, and per window one
 * line per target (or, past 50 targets, one summary line: how many are up, degraded, down, and
 * the worst few), as a consumer of pathlens.monitor/1 events.
 */
import type { Sink } from '../core/sink.js';
import type { MonitorEvent, StatsEvent } from '../monitor/events.js';

const PER_TARGET_LIMIT = 50;
const f = (x: number | null) => (x === null ? '-' : x.toFixed(2));

export class MonitorTextView implements Sink<MonitorEvent> {
  private targets = 0;
  private window: StatsEvent[] = [];
  private windowStart = -1;

  constructor(private readonly write: (line: string) => void) {}

  private name(e: { target: string; address: string; path: string | null }): string {
    return `${e.target}${e.target !== e.address ? ` (${e.address})` : ''}${e.path ? ` via ${e.path}` : ''}`;
  }

  private flush(): void {
    if (this.window.length === 0) return;
    const w = this.window;
    this.window = [];
    if (this.targets <= PER_TARGET_LIMIT) {
      for (const s of w) {
        this.write(`${this.name(s).padEnd(24)} ${s.state.padEnd(8)} ${s.method.padEnd(4)} sent ${String(s.sent).padStart(4)}  loss ${s.loss.toFixed(1).padStart(5)}%  rtt min/med/p95/max ${f(s.min_ms)}/${f(s.median_ms)}/${f(s.p95_ms)}/${f(s.max_ms)} ms  jitter ${f(s.jitter_ms)} ms`);
      }
      return;
    }
    const by = { up: 0, degraded: 0, down: 0 };
    for (const s of w) by[s.state]++;
    const worst = [...w].sort((a, b) => a.score - b.score).slice(0, 3).filter((s) => s.score < 100);
    this.write(`window at ${(this.windowStart / 1000).toFixed(0)} s: ${w.length} targets: ${by.up} up, ${by.degraded} degraded, ${by.down} down${worst.length ? `; worst: ${worst.map((s) => `${this.name(s)} ${s.loss}% loss`).join(', ')}` : ''}`);
  }

  event(e: MonitorEvent): void {
    switch (e.type) {
      case 'start':
        this.targets = e.targets;
        this.write(`pathlens monitor: ${e.targets} target${e.targets === 1 ? '' : 's'}, every ${e.interval_ms / 1000} s, windows of ${e.window_ms / 1000} s, timeout ${e.timeout_ms} ms`);
        break;
      case 'method':
        if (this.targets <= PER_TARGET_LIMIT || e.action !== 'chosen') this.write(`${this.name(e)}: method ${e.action}${e.method ? ` ${e.method}` : ''}${e.from ? ` (was ${e.from})` : ''}: ${e.reason}`);
        break;
      case 'stats':
        if (e.window_start_ms !== this.windowStart) {
          this.flush();
          this.windowStart = e.window_start_ms;
        }
        this.window.push(e);
        break;
      case 'address':
        this.write(`${e.target}: now ${e.address} (was ${e.from})${e.path ? ` via ${e.path}` : ''}`);
        break;
      case 'state':
        this.flush();
        this.write(`${this.name(e)}: ${e.from ?? 'unknown'} -> ${e.to} (${e.reason})`);
        break;
      case 'error':
        this.write(`error: ${e.message}`);
        break;
      case 'done':
        this.flush();
        this.write(`-- ${e.reason}: ${e.probes_sent} probes, ${e.replies} answers, ${(e.duration_ms / 1000).toFixed(1)} s`);
        break;
      default:
        break;
    }
  }
}
