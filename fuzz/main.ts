/**
 * pathlens' coverage-guided fuzzer:
 *
 *   node dist/fuzz/main.js [--seconds S] [--execs N] [--jobs J] [--seed K] [--save-corpus DIR]
 *                          [--findings DIR] [--hang-ms MS] [--json] [--list] [TARGET...]
 *
 * Each target (targets.ts) runs in a worker thread of its own, its modules instrumented for
 * coverage (hooks.ts), from its seed corpus in fuzz/corpus/TARGET/. A target stops after S
 * seconds or N executions, whichever comes first. Findings (a foreign exception, or a thread that
 * makes no progress for --hang-ms) are written to --findings (fuzz/findings/ by default) as the
 * input and a .txt beside it; copy an input into fuzz/regressions/TARGET/ to make it a
 * regression test (test/fuzz/regressions.test.ts replays every one). Exit status 1 when anything
 * was found.
 *
 * The numbers printed per target: executions and their rate, coverage (instrumented counters
 * ever reached, of those loaded; how many more than the seeds reached), the corpus (seeds, then
 * inputs kept), the slowest single execution, and the thread's live heap (after a full collection) at the first and last report, and its largest.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { digest } from './engine.js';
import { TARGETS } from './targets.js';
import type { WorkerJob, WorkerMessage } from './worker.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** The repository (dist/fuzz/ is two levels down). */
const ROOT = join(HERE, '..', '..');

interface Options {
  seconds: number;
  execs: number;
  jobs: number;
  seed: number;
  saveCorpus: string;
  findings: string;
  hangMs: number;
  json: boolean;
  targets: string[];
}

export interface TargetResult {
  target: string;
  execs: number;
  execsPerSec: number;
  reached: number;
  total: number;
  seedReached: number;
  seeds: number;
  corpus: number;
  slowestMs: number;
  heapFirstMiB: number;
  heapLastMiB: number;
  heapMaxMiB: number;
  crashes: string[];
  hangs: number;
}

function usage(msg: string): never {
  process.stderr.write(`pathlens-fuzz: ${msg}\n`);
  process.exit(2);
}

function parse(argv: string[]): Options {
  const o: Options = { seconds: 60, execs: Infinity, jobs: 1, seed: 1, saveCorpus: '', findings: join(ROOT, 'fuzz', 'findings'), hangMs: 10_000, json: false, targets: [] };
  const num = (v: string | undefined, what: string, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) usage(`${what} must be a number of at least ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seconds') o.seconds = num(argv[++i], '--seconds', 0.1);
    else if (a === '--execs') o.execs = num(argv[++i], '--execs', 1);
    else if (a === '--jobs') o.jobs = Math.floor(num(argv[++i], '--jobs', 1));
    else if (a === '--seed') o.seed = Math.floor(num(argv[++i], '--seed', 0));
    else if (a === '--hang-ms') o.hangMs = num(argv[++i], '--hang-ms', 100);
    else if (a === '--save-corpus') o.saveCorpus = argv[++i] ?? usage('--save-corpus needs a directory');
    else if (a === '--findings') o.findings = argv[++i] ?? usage('--findings needs a directory');
    else if (a === '--json') o.json = true;
    else if (a === '--list') {
      for (const t of TARGETS) process.stdout.write(`${t.name.padEnd(16)} ${t.what}\n`);
      process.exit(0);
    } else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (!TARGETS.some((t) => t.name === a)) usage(`no target '${a}' (--list names them)`);
    else o.targets.push(a);
  }
  if (o.targets.length === 0) o.targets = TARGETS.map((t) => t.name);
  return o;
}

function runTarget(name: string, o: Options, index: number): Promise<TargetResult> {
  const target = TARGETS.find((t) => t.name === name)!;
  const shared = new SharedArrayBuffer(8 + target.maxLen);
  const job: WorkerJob = { target: name, seconds: o.seconds, execs: o.execs, seed: o.seed + index, corpusDir: join(ROOT, 'fuzz', 'corpus', name), saveDir: o.saveCorpus ? join(o.saveCorpus, name) : '', shared };
  const w = new Worker(join(HERE, 'worker.js'), { workerData: job, execArgv: ['--import', join(HERE, 'register.js')] });
  const r: TargetResult = { target: name, execs: 0, execsPerSec: 0, reached: 0, total: 0, seedReached: 0, seeds: 0, corpus: 0, slowestMs: 0, heapFirstMiB: 0, heapLastMiB: 0, heapMaxMiB: 0, crashes: [], hangs: 0 };
  const meta = new Int32Array(shared, 0, 2);
  const save = (kind: string, input: Uint8Array, text: string) => {
    mkdirSync(o.findings, { recursive: true });
    const base = join(o.findings, `${name}-${kind}-${digest(input)}`);
    writeFileSync(base, input);
    writeFileSync(`${base}.txt`, text);
    return base;
  };
  return new Promise((resolve) => {
    let last = -1;
    let still = Date.now();
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(watch);
      resolve(r);
    };
    // A hang: no execution finished for hangMs. The input in shared memory is the one running.
    const watch = setInterval(() => {
      const n = Atomics.load(meta, 0);
      if (n !== last) {
        last = n;
        still = Date.now();
        return;
      }
      if (Date.now() - still < o.hangMs) return;
      const len = meta[1];
      const input = new Uint8Array(shared, 8, len).slice();
      r.hangs++;
      const at = save('hang', input, `no execution finished for ${o.hangMs} ms after ${n} executions\n`);
      process.stderr.write(`pathlens-fuzz: ${name}: a hang (input in ${at})\n`);
      void w.terminate().then(finish);
    }, 200);
    w.on('message', (m: WorkerMessage) => {
      if (m.kind === 'finding') {
        const at = save('crash', m.input, `${m.signature}\n\n${m.stack}\n`);
        r.crashes.push(m.signature);
        process.stderr.write(`pathlens-fuzz: ${name}: ${m.signature} (input in ${at})\n`);
        return;
      }
      const heap = m.heapUsed / 2 ** 20;
      if (r.heapFirstMiB === 0) r.heapFirstMiB = heap;
      r.heapLastMiB = heap;
      r.heapMaxMiB = Math.max(r.heapMaxMiB, heap);
      Object.assign(r, { execs: m.execs, reached: m.reached, total: m.total, seedReached: m.seedReached, seeds: m.seeds, corpus: m.corpus, slowestMs: m.slowestMs, execsPerSec: m.elapsedMs > 0 ? (m.execs / m.elapsedMs) * 1000 : 0 });
      if (m.done) void w.terminate().then(finish);
    });
    w.on('error', (e) => {
      r.crashes.push(`the worker failed: ${e.message}`);
      finish();
    });
    w.on('exit', finish);
  });
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const queue = [...o.targets];
  const results: TargetResult[] = [];
  let index = 0;
  const lanes = Array.from({ length: Math.min(o.jobs, queue.length) }, async () => {
    for (let name = queue.shift(); name; name = queue.shift()) {
      const r = await runTarget(name, o, index++);
      results.push(r);
      if (!o.json) process.stderr.write(`pathlens-fuzz: ${r.target}: ${r.execs} executions, coverage ${r.reached}/${r.total}\n`);
    }
  });
  await Promise.all(lanes);
  results.sort((a, b) => o.targets.indexOf(a.target) - o.targets.indexOf(b.target));
  if (o.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
  } else {
    const head = ['target', 'execs', 'execs/s', 'coverage', 'beyond seeds', 'corpus', 'slowest ms', 'heap MiB first/last/max', 'crashes', 'hangs'];
    const rows = results.map((r) => [r.target, String(r.execs), r.execsPerSec.toFixed(0), `${r.reached}/${r.total}`, `+${r.reached - r.seedReached}`, `${r.seeds}->${r.corpus}`, r.slowestMs.toFixed(1), `${r.heapFirstMiB.toFixed(1)}/${r.heapLastMiB.toFixed(1)}/${r.heapMaxMiB.toFixed(1)}`, String(r.crashes.length), String(r.hangs)]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
    for (const row of [head, ...rows]) process.stdout.write(`${row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}\n`);
  }
  process.exitCode = results.some((r) => r.crashes.length || r.hangs) ? 1 : 0;
}

void main();
