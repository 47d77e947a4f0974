/**
 * Caller-owned buffers for batched datagram I/O. Allocated once per socket; recvmmsg/sendmmsg fill
 * or read them in place, and the views handed out stay valid until the next call.
 */
import { native } from '../native/index.js';

/** Free receive slabs by shape (count, data, control and name slots), at most POOL_KEEP of each. */
const FREE = new Map<string, RecvBatch[]>();
export const POOL_KEEP = 32;

/** Receive side: `count` slots of payload, control bytes and source address. */
export class RecvBatch {
  /**
   * A slab of this shape from the free ones, or a new one: sockets that come and go (each round of
   * a continuous trace, a monitor's thousand paths) reuse slabs instead of leaving 100 KB of
   * garbage a round. Give it back with release() once its socket is closed.
   */
  static take(count: number, dataSlot: number, ctrlSlot = 256, nameSlot = 32): RecvBatch {
    const b = FREE.get(`${count}/${dataSlot}/${ctrlSlot}/${nameSlot}`)?.pop();
    if (b) {
      b.released = false;
      return b;
    }
    return new RecvBatch(count, dataSlot, ctrlSlot, nameSlot);
  }

  private released = false;
  private readonly ownSlab: boolean;

  readonly count: number;
  readonly dataSlot: number;
  readonly ctrlSlot: number;
  readonly nameSlot: number;
  readonly data: Uint8Array;
  readonly ctrl: Uint8Array;
  readonly names: Uint8Array;
  readonly dataView: DataView;
  readonly ctrlView: DataView;
  readonly nameView: DataView;
  /** Per message: dataLen, ctrlLen, nameLen, msgFlags. */
  readonly meta: Int32Array;

  /** `data` may be a caller's slab (at least count * dataSlot bytes) to receive into. */
  constructor(count: number, dataSlot: number, ctrlSlot = 256, nameSlot = 32, data?: Uint8Array) {
    if (!(count > 0 && count <= 256)) throw new RangeError('RecvBatch count must be 1..256');
    if (data && data.length < count * dataSlot) throw new RangeError('RecvBatch data slab too small');
    this.count = count;
    this.dataSlot = dataSlot;
    this.ctrlSlot = ctrlSlot;
    this.nameSlot = nameSlot;
    this.ownSlab = !data;
    this.data = data ?? new Uint8Array(count * dataSlot);
    this.ctrl = new Uint8Array(Math.max(1, count * ctrlSlot));
    this.names = new Uint8Array(Math.max(1, count * nameSlot));
    this.dataView = new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    this.ctrlView = new DataView(this.ctrl.buffer);
    this.nameView = new DataView(this.names.buffer);
    this.meta = new Int32Array(count * 4);
  }

  /** Gives the slab back for take() (its socket closed; nothing reads it after this). Once only; a caller's slab is never pooled. */
  release(): void {
    if (this.released || !this.ownSlab) return;
    this.released = true;
    const key = `${this.count}/${this.dataSlot}/${this.ctrlSlot}/${this.nameSlot}`;
    let list = FREE.get(key);
    if (!list) FREE.set(key, (list = []));
    if (list.length < POOL_KEEP) list.push(this);
  }

  /** One recvmmsg; -> messages received | -errno (-EAGAIN: none waiting). */
  recv(fd: number, flags: number): number {
    return native().recvmmsg(fd, this.count, flags, this.data, this.dataSlot, this.ctrl, this.ctrlSlot, this.names, this.nameSlot, this.meta);
  }

  dataOff(i: number): number {
    return i * this.dataSlot;
  }
  dataLen(i: number): number {
    return this.meta[i * 4];
  }
  ctrlOff(i: number): number {
    return i * this.ctrlSlot;
  }
  ctrlLen(i: number): number {
    return this.meta[i * 4 + 1];
  }
  nameOff(i: number): number {
    return i * this.nameSlot;
  }
  nameLen(i: number): number {
    return this.meta[i * 4 + 2];
  }
  flags(i: number): number {
    return this.meta[i * 4 + 3];
  }
}

/** Send side: fixed slots of payload, address and control bytes for up to `count` messages. */
export class SendBatch {
  readonly count: number;
  readonly dataSlot: number;
  readonly nameSlot: number;
  readonly ctrlSlot: number;
  readonly data: Uint8Array;
  readonly names: Uint8Array;
  readonly ctrl: Uint8Array;
  readonly dataView: DataView;
  readonly ctrlView: DataView;
  /** Per message: dataOff, dataLen, nameOff, nameLen, ctrlOff, ctrlLen. */
  readonly meta: Int32Array;
  /**
   * Send times of the last send(): batched, CLOCK_REALTIME [sec, nsec] just before and just after
   * the sendmmsg; one message at a time, [sec, nsec] just before message i's own syscall at 2i.
   */
  readonly times: Float64Array;
  /**
   * Send each message by its own syscall, its time taken just before it (for sockets whose kernel
   * gives no send timestamp: in one sendmmsg, the last message's time would include the kernel's
   * work on all the others, and any preemption between them). Off: one sendmmsg, one time.
   */
  perMessage = false;

  constructor(count: number, dataSlot: number, nameSlot = 28, ctrlSlot = 32) {
    if (!(count > 0 && count <= 256)) throw new RangeError('SendBatch count must be 1..256');
    this.count = count;
    this.dataSlot = dataSlot;
    this.nameSlot = nameSlot;
    this.ctrlSlot = ctrlSlot;
    this.data = new Uint8Array(count * dataSlot);
    this.names = new Uint8Array(Math.max(1, count * nameSlot));
    this.ctrl = new Uint8Array(Math.max(1, count * ctrlSlot));
    this.dataView = new DataView(this.data.buffer);
    this.ctrlView = new DataView(this.ctrl.buffer);
    this.meta = new Int32Array(count * 6);
    this.times = new Float64Array(Math.max(4, 2 * count));
  }

  /** Sets the lengths used by message i (its slots start at i * slot). */
  set(i: number, dataLen: number, nameLen: number, ctrlLen: number): void {
    const m = i * 6;
    this.meta[m] = i * this.dataSlot;
    this.meta[m + 1] = dataLen;
    this.meta[m + 2] = i * this.nameSlot;
    this.meta[m + 3] = nameLen;
    this.meta[m + 4] = i * this.ctrlSlot;
    this.meta[m + 5] = ctrlLen;
  }

  /** Sends messages [0, n) (sendmmsg, or one syscall each when perMessage); -> messages sent | -errno. */
  send(fd: number, n: number, flags = 0): number {
    if (this.perMessage) return native().sendeach(fd, n, this.meta, this.data, this.names, this.ctrl, flags, this.times);
    return native().sendmmsg(fd, n, this.meta, this.data, this.names, this.ctrl, flags, this.times);
  }

  /** CLOCK_REALTIME seconds just before message i of the last send() left (i counted from that call's first). */
  sentSec(i: number): number {
    return this.perMessage ? this.times[2 * i] : this.times[0];
  }

  /** The nanoseconds of sentSec(i). */
  sentNsec(i: number): number {
    return this.perMessage ? this.times[2 * i + 1] : this.times[1];
  }

  /**
   * Moves messages [from, from+n) to the front (after a partial send) so the next send() retries
   * exactly the ones that did not go out.
   */
  shift(from: number, n: number): void {
    if (from === 0) return;
    this.meta.copyWithin(0, from * 6, (from + n) * 6);
  }
}
