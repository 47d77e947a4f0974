/**
 * JSONL export: one JSON object per line, to stdout or to a file. A consumer of the event stream
 * like any other view. Write failures are handled by src/io/output.ts.
 *
 * Lines are gathered and written as one chunk when 64 KiB have gathered or at the end of the
 * event loop's turn (whichever comes first): a monitor closing 100,000 targets' windows emits
 * 100,000 lines in a burst, and one stream write each kept 100,000 queued chunks (and their
 * bookkeeping) in memory until the disk took them, about twice the memory of the run itself.
 */
import type { Writable } from 'node:stream';
import type { Sink } from '../core/sink.js';
import { closeOutput, outputFailure } from '../io/output.js';

/** Bytes (UTF-16 code units, near enough) gathered before a chunk is written. */
const CHUNK = 64 * 1024;

export class JsonlSink<E> implements Sink<E> {
  private lines: string[] = [];
  private size = 0;
  private flushQueued = false;
  private readonly flushBound = () => {
    this.flushQueued = false;
    this.flush();
  };

  /** `owned`: the sink closes the output at the end (a file); stdout is only drained. */
  constructor(
    private readonly out: Writable,
    private readonly owned = false,
  ) {}

  event(e: E): void {
    // After a write failure nothing more is written (src/io/output.ts reports it and stops the run).
    if (outputFailure()) return;
    const line = `${JSON.stringify(e)}\n`;
    this.lines.push(line);
    this.size += line.length;
    if (this.size >= CHUNK) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flushBound);
    }
  }

  /** Writes what has gathered, as one chunk. */
  flush(): void {
    if (this.lines.length === 0) return;
    const chunk = this.lines.length === 1 ? this.lines[0] : this.lines.join('');
    this.lines = [];
    this.size = 0;
    if (!outputFailure()) this.out.write(chunk);
  }

  end(): Promise<void> {
    this.flush();
    return this.owned || this.out === process.stdout ? closeOutput(this.out) : Promise.resolve();
  }
}
