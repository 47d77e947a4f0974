/**
 * JSONL export: one JSON object per line, to stdout or to a file. A consumer of the event stream
 * like any other view. Write failures are handled by src/io/output.ts.
 */
import type { Writable } from 'node:stream';
import type { Sink } from '../core/sink.js';
import { closeOutput, outputFailure } from '../io/output.js';

export class JsonlSink<E> implements Sink<E> {
  /** `owned`: the sink closes the output at the end (a file); stdout is only drained. */
  constructor(
    private readonly out: Writable,
    private readonly owned = false,
  ) {}

  event(e: E): void {
    // After a write failure nothing more is written (src/io/output.ts reports it and stops the run).
    if (!outputFailure()) this.out.write(`${JSON.stringify(e)}\n`);
  }

  end(): Promise<void> {
    return this.owned || this.out === process.stdout ? closeOutput(this.out) : Promise.resolve();
  }
}
