/**
 * An event stream a program can iterate: a Sink that a run emits into and an AsyncIterable that
 * yields the events in order, as they come, ending after the last one (or throwing the run's
 * error). Events wait in memory until they are read.
 */
import type { Sink } from './sink.js';

export class EventStream<E> implements Sink<E>, AsyncIterable<E> {
  private readonly queue: E[] = [];
  private head = 0;
  private ended = false;
  private error: unknown = null;
  private wake: (() => void) | null = null;

  event(e: E): void {
    this.queue.push(e);
    this.notify();
  }

  /** No more events: iteration ends once the queue is read. */
  end(): void {
    this.ended = true;
    this.notify();
  }

  /** The run failed: iteration throws this after the events before it. */
  fail(e: unknown): void {
    this.error = e;
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<E> {
    for (;;) {
      while (this.head < this.queue.length) {
        const e = this.queue[this.head++];
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue.splice(0, this.head);
          this.head = 0;
        }
        yield e;
      }
      if (this.ended) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}
