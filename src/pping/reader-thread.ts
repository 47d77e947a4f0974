/**
 * The thread that reads a big capture file for an offline pping run (decode-worker.ts), and when
 * it starts. A worker takes 20 to 40 ms to start, the CLI about as long to load: bin/pathlens.js
 * calls prestart() before it loads the CLI, so the two overlap. It is a guess from the arguments
 * (`pping -r FILE` with FILE big enough); the run adopts the thread (readerThread) or, when it
 * reads on one thread after all, lets it go (it keeps no process alive). The thread does nothing
 * until it is given a run's setup.
 */
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Files at least this big are read on a second thread. A smaller one does not pay for it: 6 and
 * 16 MB captures (46,000 and 132,000 packets) measured 4 and 2 % slower on two threads, with
 * 8 to 9 MiB more; 286 MB measured 25 % faster.
 */
export const THREAD_MIN_BYTES = 32 << 20;

const SPARE = Symbol.for('pathlens.pping.reader');

interface Spare {
  worker: Worker;
  exited: boolean;
}

/** The worker's module: the bundle's beside the CLI bundle, else the compiled module beside this one. */
function workerUrl(): URL {
  for (const u of [new URL('./pping-decode.cjs', import.meta.url), new URL('../../pping-decode.cjs', import.meta.url)]) if (existsSync(u)) return u;
  return new URL('./decode-worker.js', import.meta.url);
}

/**
 * Whether `path` is read on a second thread: a regular file (a pipe cannot be read twice), of
 * THREAD_MIN_BYTES or more with two cores unless `force`.
 */
export function threadPays(path: string, force: boolean): boolean {
  if (path === '-') return false; // standard input: one reader
  try {
    const st = statSync(path);
    return st.isFile() && (force || (st.size >= THREAD_MIN_BYTES && availableParallelism() > 1));
  } catch {
    return false; // the reader says why
  }
}

/** From pping's arguments after `pping`: starts the reading thread if the run will want one. */
export function prestart(args: readonly string[]): void {
  let path: string | undefined;
  for (let i = 0; i < args.length && path === undefined; i++) {
    const a = args[i];
    if (a === '-r' || a === '--read') path = args[i + 1];
    else if (a.startsWith('--read=')) path = a.slice('--read='.length);
  }
  if (!path || !threadPays(path, false)) return;
  const spare: Spare = { worker: new Worker(workerUrl(), { stdout: false, stderr: false }), exited: false };
  spare.worker.on('error', () => {}); // one that fails is not adopted: the run starts its own
  spare.worker.once('exit', () => (spare.exited = true));
  spare.worker.unref();
  (globalThis as Record<symbol, unknown>)[SPARE] = spare;
}

/** The reading thread started for this run, or a new one; it waits for a FeedSetup message. */
export function readerThread(): Worker {
  const g = globalThis as Record<symbol, Spare | undefined>;
  const spare = g[SPARE];
  g[SPARE] = undefined;
  if (spare && !spare.exited) {
    spare.worker.removeAllListeners();
    spare.worker.ref();
    return spare.worker;
  }
  if (spare) void spare.worker.terminate();
  return new Worker(workerUrl(), { stdout: false, stderr: false });
}
