/**
 * Reading a capture file on a second thread. A worker (decode-worker.ts) reads and decodes the
 * file into a ring of shared slots, one fixed-size record per packet; the main thread takes the
 * records in order and runs the rules on them. Reading and decoding are about two fifths of an
 * offline run's work, so on two cores they overlap with the rules instead of adding to them.
 *
 * A record holds what the rules read of a packet (PacketInfo's fields), its time, its direction
 * and, for a packet that gives no flow, the reason (SKIP_*). Addresses are copied into the record,
 * so PacketInfo.bytes can point at the slot itself: the rules never see the frame.
 *
 * Start-up: a worker takes 20 to 40 ms to start, and this thread waits for its first slot. Reading
 * the first packets here meanwhile measured slower overall (cold code on both threads, and two
 * cores shared with the worker's start-up), and took more memory.
 *
 * Hand-over: a slot is free (0, the worker's) or full (1, the main thread's). The worker waits
 * (Atomics.wait) for a free slot; the main thread never blocks: it awaits Atomics.waitAsync, so a
 * signal still stops the run. A slot's status says whether more follow, the file ended, or reading
 * failed: the error then waits on a MessagePort, read synchronously when its slot comes up, so
 * packets before the error still go through the rules, as they do on one thread.
 */
import { MessageChannel, type MessagePort, type Worker, receiveMessageOnPort } from 'node:worker_threads';
import { PathlensError } from '../core/errors.js';
import { type FeedError, type FeedSetup, FeedViews } from './feed-ring.js';
import { readerThread } from './reader-thread.js';

/** The main thread's end: starts the worker and hands out its slots in order. */
export class OfflineFeed {
  readonly v: FeedViews;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  /** Rejects when the worker dies without saying why in a slot (it failed to start, or crashed). */
  readonly died: Promise<never>;
  private finished = false;

  constructor(path: string, dns: boolean, quicPorts: readonly number[]) {
    const { ctl, ring } = FeedViews.allocate();
    this.v = new FeedViews(ctl, ring);
    const ch = new MessageChannel();
    this.port = ch.port1;
    const setup: FeedSetup = { path, dns, quicPorts: [...quicPorts], ctl, ring, port: ch.port2 };
    this.worker = readerThread();
    this.worker.postMessage(setup, [ch.port2]);
    this.died = new Promise<never>((_, reject) => {
      this.worker.once('error', (e) => reject(new PathlensError('ERR_PARSE', `${path}: the reading thread failed: ${e.message}`)));
      this.worker.once('exit', (code) => {
        // A worker that ends normally has handed over its last slot first.
        if (!this.finished && code !== 0) reject(new PathlensError('ERR_PARSE', `${path}: the reading thread stopped (exit code ${code}) before the end of the file`));
      });
    });
    this.died.catch(() => {});
  }

  /** Resolves when `slot` is full (at once if it is). */
  async full(slot: number): Promise<void> {
    const w = this.v.whenFull(slot);
    if (w) await Promise.race([w, this.died]);
  }

  /** The error the worker reported with its last slot. */
  error(): PathlensError | Error {
    const m = receiveMessageOnPort(this.port)?.message as FeedError | undefined;
    if (!m) return new Error('the reading thread reported an error and gave no message');
    return m.code ? new PathlensError(m.code, m.message) : new Error(m.message);
  }

  /** Ends the worker (at the end of the file it has ended already). */
  close(): void {
    this.finished = true;
    this.port.close();
    void this.worker.terminate();
  }
}
