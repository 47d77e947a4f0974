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
  /** The window's stats, kept only while there are few targets (a line each). */
  private window: StatsEvent[] = [];
  private windowStart = -1;
  /** Past the limit, the window is counted as it comes: per state, and the three lowest scores. */
  private counted = 0;
  private by = { up: 0, degraded: 0, down: 0 };
  private worst: StatsEvent[] = [];

  constructor(private readonly write: (line: string) => void) {}

  private get many(): boolean {
    return this.targets > PER_TARGET_LIMIT;
  }

  private name(e: { target: string; address: string; path: string | null }): string {
    return `${e.target}${e.target !== e.address ? ` (${e.address})` : ''}${e.path ? ` via ${e.path}` : ''}`;
  }

  private add(s: StatsEvent): void {
    if (!this.many) {
      this.window.push(s);
      return;
    }
    this.counted++;
    this.by[s.state]++;
    if (s.score >= 100) return;
    const w = this.worst;
    if (w.length === 3 && s.score >= w[2].score) return;
    let k = Math.min(w.length, 2);
    if (w.length < 3) w.push(s);
    while (k > 0 && w[k - 1].score > s.score) {
      w[k] = w[k - 1];
      k--;
    }
    w[k] = s;
  }

  private flush(): void {
    if (!this.many) {
      const w = this.window;
      this.window = [];
      for (const s of w) {
        this.write(`${this.name(s).padEnd(24)} ${s.state.padEnd(8)} ${s.method.padEnd(4)} sent ${String(s.sent).padStart(4)}  loss ${s.loss.toFixed(1).padStart(5)}%  rtt min/med/p95/max ${f(s.min_ms)}/${f(s.median_ms)}/${f(s.p95_ms)}/${f(s.max_ms)} ms  jitter ${f(s.jitter_ms)} ms`);
      }
      return;
    }
    if (this.counted === 0) return;
    const { by, worst } = this;
    this.write(`window at ${(this.windowStart / 1000).toFixed(0)} s: ${this.counted} targets: ${by.up} up, ${by.degraded} degraded, ${by.down} down${worst.length ? `; worst: ${worst.map((s) => `${this.name(s)} ${s.loss}% loss`).join(', ')}` : ''}`);
    this.counted = by.up = by.degraded = by.down = 0;
    this.worst = [];
  }

  event(e: MonitorEvent): void {
    switch (e.type) {
      case 'start':
        this.targets = e.targets;
        this.write(`pathlens monitor: ${e.targets} target${e.targets === 1 ? '' : 's'}, every ${e.interval_ms / 1000} s, windows of ${e.window_ms / 1000} s, timeout ${e.timeout_ms} ms`);
        break;
      case 'method':
        if (!this.many || e.action !== 'chosen') this.write(`${this.name(e)}: method ${e.action}${e.method ? ` ${e.method}` : ''}${e.from ? ` (was ${e.from})` : ''}: ${e.reason}`);
        break;
      case 'stats':
        if (e.window_start_ms !== this.windowStart) {
          this.flush();
          this.windowStart = e.window_start_ms;
        }
        this.add(e);
        break;
      case 'address':
        this.write(`${e.target}: now ${e.address} (was ${e.from})${e.path ? ` via ${e.path}` : ''}`);
        break;
      case 'state':
        if (!this.many) {
          this.flush();
          this.write(`${this.name(e)}: ${e.from ?? 'unknown'} -> ${e.to} (${e.reason})`);
        } else if (e.from !== null || e.to !== 'up') {
          // Many targets: changes as they come, and a first state only when it is not up (the
          // window's summary line counts the rest).
          this.write(`${this.name(e)}: ${e.from ?? 'unknown'} -> ${e.to} (${e.reason})`);
        }
        break;
      case 'prober':
        // The prober's own shortfall, said when there is one (a kept schedule is the normal case).
        if (!e.kept) {
          this.flush();
          this.write(`prober behind schedule in the window at ${(e.window_start_ms / 1000).toFixed(0)} s (not the network's doing): ${e.behind!.join('; ')}`);
        }
        break;
      case 'path': {
        const list = (hops: { ttl: number; addrs: string[] }[]) => hops.map((h) => (h.addrs.length ? h.addrs.join('|') : '*')).join(' ');
        if (e.change === 'initial') this.write(`${this.name(e)}: path ${list(e.to)}${e.reached ? '' : ' (does not reach it)'}`);
        else this.write(`${this.name(e)}: path changed at hop ${e.changed_ttls.join(', ')}: ${list(e.from ?? [])} -> ${list(e.to)}${e.reached ? '' : ' (does not reach it)'}`);
        break;
      }
      case 'path-hops': {
        // One line per path and window: each hop's address, loss and median; the verdict where loss is not the path's.
        if (this.many || e.rounds === 0) break;
        const hop = (h: (typeof e.hops)[number]) => `${h.ttl} ${h.responders[0]?.addr ?? '*'} ${h.loss.toFixed(0)}%${h.loss_verdict === 'rate-limited' ? '(rate-limited)' : h.loss_verdict === 'onward' ? '(real)' : ''} ${h.median_ms != null ? h.median_ms.toFixed(2) : '-'}`;
        this.write(`${this.name(e)}: hops (${e.rounds} rounds): ${e.hops.map(hop).join(' | ')}`);
        break;
      }
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
