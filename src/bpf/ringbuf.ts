/**
 * Consumer of a BPF ring buffer map: the native shim copies whole records into one buffer owned
 * here (no per-record allocation), and readiness comes from polling a duplicate of the map fd on
 * the event loop. Records are handed over as (view, offset, length) until the next read.
 */
import { PathlensError, check } from '../core/errors.js';
import { UV_READABLE } from '../core/constants.js';
import { type NativePoller, native } from '../native/index.js';

export type RecordHandler = (view: DataView, bytes: Uint8Array, off: number, len: number) => void;

export class RingReader {
  private readonly handle: number;
  private readonly buf: Uint8Array;
  private readonly view: DataView;
  private poller: NativePoller | null = null;
  private closed = false;

  constructor(
    mapFd: number,
    private readonly onRecord: RecordHandler,
    onError: (e: Error) => void,
    bufBytes = 256 * 1024,
  ) {
    const h = native().ringbufOpen(mapFd);
    if (h < 0) check('mmap ring buffer', h);
    this.handle = h;
    this.buf = new Uint8Array(bufBytes);
    this.view = new DataView(this.buf.buffer);
    const dupFd = check('dup', native().dup(mapFd));
    const Poller = native().Poller;
    const poller = new Poller(dupFd, (status: number) => {
      if (status < 0) onError(new PathlensError('ERR_BPF', `polling the ring buffer failed (${status})`));
      else this.drain();
    });
    this.poller = poller;
    check('uv_poll_start', poller.start(UV_READABLE));
  }

  /** Reads every complete record now available; returns how many. */
  drain(): number {
    if (this.closed) return 0;
    let records = 0;
    for (;;) {
      const n = native().ringbufRead(this.handle, this.buf);
      if (n <= 0) break;
      for (let off = 0; off < n; ) {
        const len = this.view.getUint32(off, true);
        this.onRecord(this.view, this.buf, off + 8, len);
        off += 8 + ((len + 7) & ~7);
        records++;
      }
      if (n < this.buf.length - 4096) break;
    }
    return records;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    this.poller = null;
    native().ringbufClose(this.handle);
  }
}
