/**
 * A non-blocking socket owned by pathlens: options, addresses, and readiness through one native
 * Poller. Readiness is reported to a single `onReady` callback that must drain both the error
 * queue and the normal queue until EAGAIN; the socket then re-arms its poller.
 *
 * libuv stops the poll handle and reports UV_EBADF when an IP_RECVERR socket has a queued ICMP
 * error (POLLERR). That is a normal event here: we drain and re-arm. Only when a drain finds nothing
 * and SO_ERROR is clear several times in a row is it treated as a real failure (re-arming then
 * would spin).
 */
import { SOL_SOCKET, SO_ERROR, UV_EBADF, UV_READABLE } from '../core/constants.js';
import { PathlensError, SysError, check } from '../core/errors.js';
import { type NativePoller, native } from '../native/index.js';
import { EAGAIN, EBADF } from '../core/errno.js';


/** `err`: libuv reported POLLERR (the error queue holds messages, or SO_ERROR is set). */
export type ReadyHandler = (err?: boolean) => number;

export class Socket {
  readonly fd: number;
  private poller: NativePoller | null = null;
  private closed = false;
  private idleErrors = 0;
  private onReady: ReadyHandler | null = null;
  private onFatal: ((e: Error) => void) | null = null;
  private events = UV_READABLE;
  private readonly intBuf = new Uint8Array(4);
  private readonly intView = new DataView(this.intBuf.buffer);

  constructor(domain: number, type: number, protocol: number) {
    this.fd = check('socket', native().socket(domain, type, protocol));
  }

  setInt(level: number, name: number, value: number, what = 'setsockopt'): void {
    this.intView.setInt32(0, value, true);
    check('setsockopt', native().setsockopt(this.fd, level, name, this.intBuf), what);
  }

  /** Like setInt but returns -errno instead of throwing (for optional features). */
  trySetInt(level: number, name: number, value: number): number {
    this.intView.setInt32(0, value, true);
    return native().setsockopt(this.fd, level, name, this.intBuf);
  }

  setBytes(level: number, name: number, value: Uint8Array, what = 'setsockopt'): void {
    check('setsockopt', native().setsockopt(this.fd, level, name, value), what);
  }

  getInt(level: number, name: number): number {
    check('getsockopt', native().getsockopt(this.fd, level, name, this.intBuf));
    return this.intView.getInt32(0, true);
  }

  /** Reads and clears SO_ERROR (a pending asynchronous error); returns the errno or 0. */
  takeError(): number {
    const rc = native().getsockopt(this.fd, SOL_SOCKET, SO_ERROR, this.intBuf);
    if (rc < 0) return -rc;
    return this.intView.getInt32(0, true);
  }

  bind(addr: Uint8Array, what = 'bind'): void {
    check('bind', native().bind(this.fd, addr), what);
  }

  connect(addr: Uint8Array): number {
    return native().connect(this.fd, addr);
  }

  /** Local address as raw sockaddr bytes. */
  localName(): Uint8Array {
    const out = new Uint8Array(128);
    const n = check('getsockname', native().getsockname(this.fd, out));
    return out.subarray(0, n);
  }

  /**
   * Starts readiness callbacks. `onReady` drains both queues and returns how many messages it
   * consumed; `onFatal` receives an unrecoverable poll error.
   */
  watch(onReady: ReadyHandler, onFatal: (e: Error) => void, events = UV_READABLE): void {
    if (this.closed) throw new PathlensError('ERR_SYSCALL', 'socket is closed');
    this.onReady = onReady;
    this.onFatal = onFatal;
    this.events = events;
    if (!this.poller) {
      const Poller = native().Poller;
      this.poller = new Poller(this.fd, (status) => this.handle(status));
    }
    check('uv_poll_start', this.poller.start(events));
  }

  private handle(status: number): void {
    if (this.closed || !this.onReady) return;
    if (status === 0) {
      this.onReady();
      return;
    }
    if (status !== UV_EBADF) {
      this.fail(new SysError('uv_poll', status));
      return;
    }
    // POLLERR: the error queue holds messages (or SO_ERROR is set). Drain, then re-arm. A drain
    // that read something has also cleared SO_ERROR (the normal queue's recv returns it first);
    // only an empty one asks for it, to tell a pending error from a descriptor that is gone.
    const drained = this.onReady(true);
    if (this.closed) return;
    if (drained === 0) {
      const pending = this.takeError();
      if ((pending === 0 || pending === EBADF /* the fd is really gone */) && (pending === EBADF || ++this.idleErrors > 3)) {
        this.fail(new SysError('uv_poll', -EBADF, 'poll error with nothing to drain'));
        return;
      }
      if (pending !== 0) this.idleErrors = 0;
    } else {
      this.idleErrors = 0;
    }
    const rc = this.poller!.start(this.events);
    if (rc < 0) this.fail(new SysError('uv_poll_start', rc));
  }

  private fail(e: Error): void {
    const f = this.onFatal;
    this.close();
    if (f) f(e);
  }

  /** Lets the process exit while this socket is the only thing left. */
  unref(): void {
    this.poller?.unref();
  }

  ref(): void {
    this.poller?.ref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onReady = null;
    if (this.poller) this.poller.close();
    else native().close(this.fd);
    this.poller = null;
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

export function isEagain(rc: number): boolean {
  return rc === -EAGAIN;
}
