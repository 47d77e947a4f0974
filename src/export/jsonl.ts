/**
 * JSONL export: one JSON object per line, to stdout or to a file. A consumer of the event stream
 * like any other view.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { PathlensError } from '../core/errors.js';

export class JsonlSink<E> {
  private readonly out: Writable;
  private readonly owned: boolean;
  private failed: Error | null = null;

  constructor(out: Writable, owned = false) {
    this.out = out;
    this.owned = owned;
    out.on('error', (e) => (this.failed = e));
  }

  static toFile<E>(path: string): JsonlSink<E> {
    let s: WriteStream;
    try {
      s = createWriteStream(path, { flags: 'w' });
    } catch (e) {
      throw new PathlensError('ERR_USAGE', `cannot write ${path}: ${(e as Error).message}`);
    }
    return new JsonlSink<E>(s, true);
  }

  event(e: E): void {
    if (this.failed) return;
    this.out.write(`${JSON.stringify(e)}\n`);
  }

  end(): Promise<void> {
    if (this.failed) return Promise.reject(new PathlensError('ERR_USAGE', `cannot write events: ${this.failed.message}`));
    if (!this.owned) return new Promise((res) => this.out.write('', () => res()));
    return new Promise((res, rej) => {
      this.out.end(() => (this.failed ? rej(this.failed) : res()));
    });
  }
}

/** Fans one event stream out to several consumers. */
export class Tee<E> {
  constructor(private readonly sinks: { event(e: E): void; end?(): void | Promise<void> }[]) {}
  event(e: E): void {
    for (const s of this.sinks) s.event(e);
  }
  async end(): Promise<void> {
    for (const s of this.sinks) await s.end?.();
  }
}

/** Keeps every event (tests, reports). */
export class Collect<E> {
  readonly events: E[] = [];
  event(e: E): void {
    this.events.push(e);
  }
}
