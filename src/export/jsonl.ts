/**
 * JSONL export: one JSON object per line, to stdout or to a file. A consumer of the event stream
 * like any other view. Write failures are handled by src/io/output.ts.
 *
 * Lines are gathered and written as one chunk when 64 KiB have gathered or when the callback
 * that emitted them returns (a microtask; whichever comes first): a monitor closing 100,000 targets' windows emits
 * 100,000 lines in a burst, and one stream write each kept 100,000 queued chunks (and their
 * bookkeeping) in memory until the disk took them, about twice the memory of the run itself.
 * To a file, each line is encoded at once into one reused buffer, written synchronously when
 * full: no line outlives its event (gathered strings and queued chunks lived long enough to be
 * moved to the old generation, and a monitor writing its events to a file held 40 MB more).
 */
import type { Writable } from 'node:stream';
import type { Sink } from '../core/sink.js';
import { SyncFile, closeOutput, outputFailure } from '../io/output.js';

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

  /** To a file: the chunk being filled, and how much of it is. */
  private readonly buf: Buffer | null;
  private used = 0;

  /** A stream (stdout: only drained at the end; `owned`: ended there too) or a file (closed at the end). */
  constructor(
    private readonly out: Writable | SyncFile,
    private readonly owned = false,
  ) {
    this.buf = out instanceof SyncFile ? Buffer.allocUnsafe(CHUNK) : null;
  }

  event(e: E): void {
    // After a write failure nothing more is written (src/io/output.ts reports it and stops the run).
    if (outputFailure()) return;
    const line = `${JSON.stringify(e)}\n`;
    const buf = this.buf;
    if (buf !== null) {
      // UTF-8 takes at most 3 bytes per UTF-16 unit.
      if (this.used + 3 * line.length > CHUNK) this.flush();
      if (3 * line.length > CHUNK) (this.out as SyncFile).write(Buffer.from(line), Buffer.byteLength(line));
      else this.used += buf.write(line, this.used);
      this.queueFlush();
      return;
    }
    this.lines.push(line);
    this.size += line.length;
    if (this.size >= CHUNK) this.flush();
    else this.queueFlush();
  }

  /**
   * A microtask, not setImmediate: a pending immediate makes libuv poll once more with a zero
   * timeout before it sleeps, one more system call on every wake-up of a run whose events are
   * few and far between (a trace reading its kernel ring: about 0.5 calls a probe).
   */
  private queueFlush(): void {
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushBound);
    }
  }

  /** Writes what has gathered, as one chunk. */
  flush(): void {
    if (this.buf !== null) {
      if (this.used > 0 && !outputFailure()) (this.out as SyncFile).write(this.buf, this.used);
      this.used = 0;
      return;
    }
    if (this.lines.length === 0) return;
    const chunk = this.lines.length === 1 ? this.lines[0] : this.lines.join('');
    this.lines = [];
    this.size = 0;
    if (!outputFailure()) (this.out as Writable).write(chunk);
  }

  end(): Promise<void> {
    this.flush();
    if (this.buf !== null) {
      (this.out as SyncFile).close();
      return Promise.resolve();
    }
    const out = this.out as Writable;
    return this.owned || out === process.stdout ? closeOutput(out) : Promise.resolve();
  }
}
