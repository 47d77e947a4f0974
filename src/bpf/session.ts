/**
 * One BPF run's life, written once for every capability that loads programs (pping, ktrace; trace
 * --bpf and AF_XDP would be more): the loaded object, its attachments made in the run's network
 * namespace, the ring buffer it reports through, a live lifecycle that reads the ring and ticks,
 * and one way to end: detach (in the namespace; plainly when the namespace is gone, its hooks gone
 * with it), read what the programs had already queued, read the last figures, close the ring and
 * the object. A setup that fails half-way is undone by `abort()`. Everything attached is an fd or
 * a netlink object removed here: nothing stays behind.
 */
import { liveRun, type LiveRun } from '../core/live.js';
import type { Scheduler } from '../core/scheduler.js';
import type { Sink } from '../core/sink.js';
import { inNamespace } from '../io/placement.js';
import type { Attachment } from './attach.js';
import type { BpfObject } from './object.js';
import { type RecordHandler, RingReader } from './ringbuf.js';

export interface BpfLiveOptions<D, R extends string> {
  durationMs?: number;
  /** How often the ring is read (the programs wake the reader only when it fills: a wake-up per record would cost more than the tracing). */
  drainMs: number;
  /** How often `tick` runs (a multiple of drainMs, at least one drain). */
  tickMs: number;
  /** After a read of the ring: sweeps, counters, histograms. */
  tick(): void;
  /** The done event, once: after everything is detached and the ring read to its end, before the object closes. */
  done(reason: R): D;
  sink: Sink<D>;
  scheduler?: Scheduler;
}

export class BpfSession {
  private readonly links: Attachment[] = [];
  private ring: RingReader | null = null;
  private closed = false;

  constructor(
    readonly obj: BpfObject,
    /** The network namespace the attachments are made in (none: the process's own). */
    readonly netns: string | undefined,
  ) {}

  /** Attaches with `f`, run in the session's namespace; the attachment ends with the session. */
  attach(f: () => Attachment): Attachment {
    const a = inNamespace(this.netns, f);
    this.links.push(a);
    return a;
  }

  /** How each attachment is made (tcx, clsact, xdp-native...), in order. */
  get attached(): string[] {
    return this.links.map((a) => a.how);
  }

  /** Reads the ring-buffer map `map` into `onRecord`; a failing ring calls `onError`. */
  openRing(map: string, onRecord: RecordHandler, onError: (e: Error) => void): void {
    this.ring = new RingReader(this.obj.mapFd(map), onRecord, onError);
  }

  /** Reads what the programs have queued; returns how many records. */
  drain(): number {
    return this.ring?.drain() ?? 0;
  }

  /** Detaches everything, newest first, in the session's namespace (plainly when it is gone). */
  detach(): void {
    try {
      inNamespace(this.netns, () => {
        for (const a of this.links.reverse()) a.detach();
      });
    } catch {
      for (const a of this.links) a.detach(); // the namespace is gone, and its hooks with it
    }
    this.links.length = 0;
  }

  /** Ends the session: detach, read the ring to its end, `last(obj)` (the last figures), close ring and object. */
  close<T>(last: (obj: BpfObject) => T): T {
    this.detach();
    this.ring?.drain();
    try {
      return last(this.obj);
    } finally {
      this.ring?.close();
      this.obj.close();
      this.closed = true;
    }
  }

  /** Undoes a setup that failed half-way (idempotent). */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    this.ring?.close();
    this.obj.close();
  }

  /** Runs the session live until stopped, its duration, or `finish`; then closes it with `done`. */
  live<D, R extends string>(o: BpfLiveOptions<D, R>): LiveRun<D, R> {
    const every = Math.max(1, Math.round(o.tickMs / o.drainMs));
    let turn = 0;
    const run: LiveRun<D, R> = liveRun<D, R>({
      durationMs: o.durationMs,
      tickMs: o.drainMs,
      scheduler: o.scheduler,
      sink: o.sink,
      tick: () => {
        this.drain();
        // A record just read may have ended the run (a count reached, a ring failure).
        if (run.finished || ++turn % every !== 0) return;
        o.tick();
      },
      teardown: (reason) => this.close(() => o.done(reason)),
    });
    return run;
  }
}
