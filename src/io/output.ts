/**
 * Where results go, and what happens when they cannot: every output (stdout, a file given with
 * -o or -w) reports its first failure once, here. A run in progress is told to stop (it still
 * ends with its done event, and whatever it attached is removed); the CLI then exits with one
 * `pathlens: cannot write ...` line and status 1, or, for a reader that went away (a closed pipe,
 * as in `pathlens trace ... | head`), quietly with status 141, as a process ended by SIGPIPE.
 * Nothing written is ever lost without saying so.
 */
import { closeSync, createWriteStream, openSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { PathlensError, errnoName } from '../core/errors.js';

export class OutputError extends PathlensError {
  /** The reader went away (EPIPE): end quietly. */
  readonly closedPipe: boolean;
  constructor(what: string, err: NodeJS.ErrnoException) {
    const code = err.code ?? (typeof err.errno === 'number' ? errnoName(err.errno) : 'error');
    super('ERR_OUTPUT', `cannot write ${what}: ${code}${DESCRIPTIONS[code] ? ` (${DESCRIPTIONS[code]})` : ''}`);
    this.closedPipe = code === 'EPIPE';
  }
}

const DESCRIPTIONS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  EROFS: 'read-only file system',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large',
  EIO: 'input/output error',
  EPIPE: 'the reader closed the pipe',
};

let failure: OutputError | null = null;
/** What each output is called in messages. */
const names = new WeakMap<Writable, string>();
const stoppers = new Set<() => void>();

/** The first output failure of this process, if any. */
export function outputFailure(): OutputError | null {
  return failure;
}

/** Registers what stops the current run when an output fails; returns the unregister function. */
export function onOutputFailure(stop: () => void): () => void {
  stoppers.add(stop);
  return () => stoppers.delete(stop);
}

function fail(what: string, err: NodeJS.ErrnoException): void {
  if (failure) return;
  failure = new OutputError(what, err);
  if (stoppers.size === 0) return;
  for (const s of [...stoppers]) s();
}

/** Watches stdout for write errors (the CLI calls this once, before any command runs). */
export function guardStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => fail('to standard output', e));
}

/** Opens FILE for writing now (a path that cannot be written fails before any work is done). */
function openForWriting(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw new OutputError(path, e as NodeJS.ErrnoException);
  }
  try {
    if (statSync(path).isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
  } catch (e) {
    closeSync(fd);
    throw new OutputError(path, e as NodeJS.ErrnoException);
  }
  return fd;
}

/**
 * A file written synchronously, in whole chunks: what is handed to write() has reached the
 * system when it returns, and the caller may reuse its buffer. For outputs that gather their own
 * chunks (JSONL): a stream's queue would keep every chunk until the disk took it, and a burst (a
 * monitor closing 100,000 windows) kept tens of megabytes alive that way. A failure (a full
 * disk) is reported through the same channel as stdout's, once; nothing is written after it.
 */
export class SyncFile {
  private closed = false;

  constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  static open(path: string): SyncFile {
    return new SyncFile(path, openForWriting(path));
  }

  /** Writes buf[0, len); false (and the run's output failure) when it could not. */
  write(buf: Uint8Array, len: number): boolean {
    if (failure || this.closed) return false;
    let off = 0;
    try {
      while (off < len) off += writeSync(this.fd, buf, off, len - off);
      return true;
    } catch (e) {
      fail(this.path, e as NodeJS.ErrnoException);
      return false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch (e) {
      fail(this.path, e as NodeJS.ErrnoException);
    }
  }
}

/**
 * Opens FILE for writing now, so that a path that cannot be written fails before any work is
 * done; later write errors (a full disk) are reported through the same channel as stdout's.
 */
export function openOutputFile(path: string): Writable {
  const fd = openForWriting(path);
  const s = createWriteStream(path, { fd });
  names.set(s, path);
  s.on('error', (e: NodeJS.ErrnoException) => fail(path, e));
  return s;
}

/**
 * Ends an output: a file is closed, stdout drained. Resolves once everything written has reached
 * the system (or failed, which outputFailure() then tells).
 */
export function closeOutput(out: Writable): Promise<void> {
  return new Promise((res) => {
    const name = names.get(out) ?? 'to standard output';
    // A stream can be errored before its 'error' event is emitted: take the error from it.
    if (out.errored) fail(name, out.errored as NodeJS.ErrnoException);
    if (failure || out.destroyed) return res();
    // The callback is also told of an error, which may come before the 'error' event does.
    const done = (err?: Error | null) => {
      if (err) fail(name, err as NodeJS.ErrnoException);
      res();
    };
    if (out === process.stdout || out === process.stderr) out.write('', done);
    else out.end(done);
  });
}

/** Throws the output failure, if there was one (after a run has ended). */
export function throwIfOutputFailed(): void {
  if (failure) throw failure;
}

/**
 * Writes a whole file so that a reader sees the old one or the new one, never half of either
 * (a temporary file beside it, then rename): reports, the Prometheus textfile. A failure is the
 * run's output failure (the run stops; one `pathlens: cannot write FILE` line, status 1); returns
 * false then.
 */
export function writeFileAtomic(path: string, text: string): boolean {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
    return true;
  } catch (e) {
    rmSync(tmp, { force: true });
    fail(path, e as NodeJS.ErrnoException);
    return false;
  }
}
