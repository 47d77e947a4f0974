/**
 * The one shape every consumer of an event stream has, whatever the capability: views, writers,
 * exporters, tests. A run emits into one Sink; a Tee fans it out.
 */
export interface Sink<E> {
  event(e: E): void;
  /** Called once after the last event (writers flush and close here). */
  end?(): void | Promise<void>;
}

/** Fans one event stream out to several consumers, in order. */
export class Tee<E> implements Sink<E> {
  constructor(private readonly sinks: Sink<E>[]) {}
  event(e: E): void {
    for (const s of this.sinks) s.event(e);
  }
  async end(): Promise<void> {
    for (const s of this.sinks) await s.end?.();
  }
}

/** Keeps every event (tests, reports, the library API's iterator). */
export class Collect<E> implements Sink<E> {
  readonly events: E[] = [];
  event(e: E): void {
    this.events.push(e);
  }
}
