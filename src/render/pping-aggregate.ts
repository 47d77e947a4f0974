/**
 * The `--aggregate` view: RTT events go into the aggregator, and at the end of every interval its
 * per-prefix events go to the writer; start, table-full and done events pass through, flow events
 * and single RTTs do not. Intervals follow event time (packet time when reading a file, so a
 * capture aggregates the same way however fast it is read), and `tick()` closes intervals that
 * ended while a live capture was quiet.
 */
import type { Aggregator } from '../pping/aggregate.js';
import type { PpingEvent } from '../pping/events.js';
import { realtime } from '../time/clock.js';
import type { PpingWriter } from './pping-text.js';

const NS = 1e9;

export class IntervalView {
  /** End of the current interval: epoch seconds (fractional) or -1 before the first event. */
  private end = -1;
  private readonly now = new Float64Array(2);

  constructor(
    private readonly agg: Aggregator,
    private readonly intervalS: number,
    private readonly writer: PpingWriter,
  ) {}

  event(e: PpingEvent): void {
    const t = e.sec + e.nsec / NS;
    if (e.type === 'start') {
      this.writer.event(e);
      if (e.sec > 0) this.end = t + this.intervalS;
      return;
    }
    if (this.end < 0 && e.sec > 0) this.end = t + this.intervalS;
    if (e.type !== 'done') this.closeUntil(t);
    switch (e.type) {
      case 'rtt':
        this.agg.add(e);
        break;
      case 'flow':
        this.agg.flow(e);
        break;
      case 'done':
        this.emit(t);
        this.writer.event(e);
        break;
      default:
        this.writer.event(e);
    }
  }

  /** Closes the intervals that ended before now (live captures, from a timer). */
  tick(): void {
    realtime(this.now);
    this.closeUntil(this.now[0] + this.now[1] / NS);
  }

  private closeUntil(t: number): void {
    if (this.end < 0) return;
    while (t >= this.end) {
      this.emit(this.end);
      this.end += this.intervalS;
    }
  }

  private emit(t: number): void {
    const sec = Math.floor(t);
    const nsec = Math.min(NS - 1, Math.round((t - sec) * NS));
    for (const a of this.agg.flush(sec, nsec, this.intervalS)) this.writer.event(a);
  }
}
