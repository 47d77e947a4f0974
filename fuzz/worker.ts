/**
 * One fuzz target in one worker thread (started by main.ts with the coverage hooks imported).
 * The seeds run first (their coverage is the baseline), then mutations until the time or the
 * execution budget is spent. The input being run is kept in shared memory, so the main thread can
 * name it if this thread stops making progress (a hang) and has to be stopped.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { Coverage, Mutator, Rng, accepted, digest, signature } from './engine.js';
import { TARGETS } from './targets.js';

export interface WorkerJob {
  target: string;
  seconds: number;
  execs: number;
  seed: number;
  corpusDir: string;
  /** Where inputs that reached new coverage are written (to grow the seeds by hand), or ''. */
  saveDir: string;
  /** Int32Array: [0] executions so far (the heartbeat), [1] the current input's length; then its bytes. */
  shared: SharedArrayBuffer;
}

export type WorkerMessage =
  | { kind: 'stats'; execs: number; corpus: number; reached: number; total: number; seedReached: number; heapUsed: number; slowestMs: number; seeds: number; done: boolean; elapsedMs: number }
  | { kind: 'finding'; signature: string; input: Uint8Array; stack: string };

const job = workerData as WorkerJob;
// The heap is reported after a full collection (once a second): the live heap, not V8's sawtooth.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const port = parentPort!;

async function main(): Promise<void> {
  const target = TARGETS.find((t) => t.name === job.target);
  if (!target) throw new Error(`no fuzz target ${job.target}`);
  const run = await target.make();
  const meta = new Int32Array(job.shared, 0, 2);
  const cur = new Uint8Array(job.shared, 8);
  const cov = new Coverage();
  const rng = new Rng(job.seed);
  const mut = new Mutator(rng, target.maxLen);
  const corpus: Uint8Array[] = [];
  const found = new Set<string>();
  let execs = 0;
  let slowestMs = 0;

  const once = async (input: Uint8Array): Promise<boolean> => {
    meta[1] = input.length;
    cur.set(input);
    const t0 = performance.now();
    try {
      const r = run(input);
      if (r) await r;
    } catch (e) {
      if (!accepted(e)) {
        const sig = signature(e);
        if (!found.has(sig)) {
          found.add(sig);
          port.postMessage({ kind: 'finding', signature: sig, input: input.slice(), stack: e instanceof Error ? (e.stack ?? '') : String(e) } satisfies WorkerMessage);
        }
      }
    }
    const ms = performance.now() - t0;
    if (ms > slowestMs) slowestMs = ms;
    Atomics.store(meta, 0, ++execs);
    // Modules loaded since (a lazy import) join the coverage map now and then: their counters
    // accumulate meanwhile, and are read then.
    if ((execs & 1023) === 1) cov.refresh();
    return cov.collect();
  };

  // Seeds first: every one is kept (they are the corpus the mutations start from).
  const seedFiles = (existsSync(job.corpusDir) ? readdirSync(job.corpusDir) : []).filter((f) => !f.startsWith('.') && f !== 'README.md').sort();
  for (const f of seedFiles) {
    const b = new Uint8Array(readFileSync(join(job.corpusDir, f)));
    const input = b.length > target.maxLen ? b.subarray(0, target.maxLen) : b;
    await once(input.slice());
    corpus.push(input.slice());
  }
  if (corpus.length === 0) corpus.push(new Uint8Array(0));
  const seedReached = cov.reached;
  const seeds = corpus.length;

  if (job.saveDir) mkdirSync(job.saveDir, { recursive: true });
  const start = performance.now();
  const liveHeap = () => {
    gc();
    return getHeapStatistics().used_heap_size;
  };
  const stats = (done: boolean): WorkerMessage => ({ kind: 'stats', execs, corpus: corpus.length, reached: cov.reached, total: cov.total, seedReached, heapUsed: liveHeap(), slowestMs, seeds, done, elapsedMs: performance.now() - start });
  let nextReport = start + 1000;
  const deadline = start + job.seconds * 1000;
  const budget = execs + job.execs;
  for (;;) {
    const base = corpus[rng.below(corpus.length)];
    const other = corpus.length > 1 ? corpus[rng.below(corpus.length)] : null;
    mut.mutate(base, other);
    const input = mut.work.slice(0, mut.len);
    if (await once(input)) {
      corpus.push(input);
      if (job.saveDir) writeFileSync(join(job.saveDir, digest(input)), input);
    }
    if ((execs & 255) === 0) {
      const now = performance.now();
      if (now >= deadline || execs >= budget) break;
      if (now >= nextReport) {
        port.postMessage(stats(false));
        nextReport = now + 1000;
      }
    }
  }
  port.postMessage(stats(true));
}

main().catch((e: unknown) => {
  port.postMessage({ kind: 'finding', signature: `the target could not start: ${signature(e)}`, input: new Uint8Array(0), stack: e instanceof Error ? (e.stack ?? '') : String(e) } satisfies WorkerMessage);
  port.postMessage({ kind: 'stats', execs: 0, corpus: 0, reached: 0, total: 0, seedReached: 0, heapUsed: 0, slowestMs: 0, seeds: 0, done: true, elapsedMs: 0 } satisfies WorkerMessage);
});
