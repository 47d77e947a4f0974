/**
 * The text view of several traces that run at once: printed one whole trace after another, in
 * the order the targets were given, as if they had run one by one. The first unfinished trace
 * prints as it goes; the lines of those after it wait in memory until every trace before them
 * has ended, then come out at once. A blank line separates two traces.
 */
import type { Sink } from '../core/sink.js';
import type { TraceEvent } from '../trace/events.js';

export class TraceBlocks {
  private readonly held: string[][];
  private readonly ended: boolean[];
  private current = 0;

  constructor(
    private readonly write: (line: string) => void,
    count: number,
    private readonly view: (write: (line: string) => void) => Sink<TraceEvent>,
  ) {
    this.held = Array.from({ length: count }, () => []);
    this.ended = new Array<boolean>(count).fill(false);
  }

  /** Trace i's view: its lines go out now if every trace before it has ended, else later; end() says it has ended. */
  sink(i: number): Sink<TraceEvent> {
    const v = this.view((line) => {
      if (i === this.current) this.write(line);
      else this.held[i].push(line);
    });
    return {
      event: (e) => v.event(e),
      end: async () => {
        await v.end?.();
        this.ended[i] = true;
        this.advance();
      },
    };
  }

  private advance(): void {
    while (this.current < this.ended.length && this.ended[this.current]) {
      this.current++;
      if (this.current >= this.held.length) return;
      this.write('');
      for (const line of this.held[this.current]) this.write(line);
      this.held[this.current] = [];
    }
  }
}
