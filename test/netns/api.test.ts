/**
 * trace() from a user's program, imported by the package's name, in a lab: the events come as an
 * async iterable while the trace runs, done resolves with the same stop reason, stop() ends a run
 * early (with its done event), and a request that cannot be traced rejects done (and the iteration).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { chain } from '../../src/lab/presets.js';
import { consumerDir } from '../helpers/consumer.js';
import { addrOf, labName, nodeNs, runIn, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();

const PROGRAM = `import { trace } from 'pathlens';
const [target, mode] = process.argv.slice(2);
if (mode === 'stop') {
  const run = trace(target, { waitMs: 5000, maxTtl: 30 });
  setTimeout(() => run.stop(), 50);
  const done = await run.done;
  console.log(JSON.stringify({ reason: done.reason }));
} else if (mode === 'bad') {
  // An IPv6 literal asked for over IPv4: refused before anything is sent (no DNS either).
  const run = trace(target, { family: 4 });
  try { for await (const e of run) {} } catch (e) { console.log(JSON.stringify({ iterError: e.code })); }
  await run.done.catch((e) => console.log(JSON.stringify({ doneError: e.code })));
} else {
  const run = trace(target, { queries: 2 });
  const types = [];
  const hops = [];
  for await (const e of run) {
    types.push(e.type);
    if (e.type === 'hop') hops.push(e.addrs);
  }
  const done = await run.done;
  console.log(JSON.stringify({ first: types[0], last: types.at(-1), hops, reason: done.reason, hopsDone: done.hops }));
}
`;

test("trace() from a user's program: events as they come, done, stop(), and errors that reject", opt, async () => {
  const dir = consumerDir({ 'trace.mjs': PROGRAM });
  await withLab(chain({ name: labName('ap'), routers: 3 }), async (st) => {
    const src = nodeNs(st, 'src');
    const dst = addrOf(st, 'dst', 4);
    const run = await runIn(src, [process.execPath, join(dir, 'trace.mjs'), dst]);
    assert.equal(run.code, 0, run.stderr);
    const r = JSON.parse(run.stdout) as { first: string; last: string; hops: string[][]; reason: string; hopsDone: number };
    assert.deepEqual([r.first, r.last, r.reason, r.hopsDone], ['start', 'done', 'reached', 4]);
    assert.deepEqual(r.hops, [['10.100.0.2'], ['10.100.1.2'], ['10.100.2.2'], [dst]]);
    // stop(): toward an address nobody answers, ended early with its done event.
    const stopped = await runIn(src, [process.execPath, join(dir, 'trace.mjs'), '10.255.0.1', 'stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.deepEqual(JSON.parse(stopped.stdout), { reason: 'interrupted' });
    const bad = await runIn(src, [process.execPath, join(dir, 'trace.mjs'), '::1', 'bad']);
    assert.equal(bad.code, 0, bad.stderr);
    assert.deepEqual(
      bad.stdout.trim().split('\n').map((l) => JSON.parse(l)),
      [{ iterError: 'ERR_USAGE' }, { doneError: 'ERR_USAGE' }],
    );
  });
});

const MONITOR_PROGRAM = `import { monitor } from 'pathlens';
const run = monitor([process.argv[2], { target: process.argv[3], method: 'udp', path: 'b' }], { durationMs: 1500, windowMs: 500, timeoutMs: 200, intervalMs: 50 });
const seen = [];
for await (const e of run) seen.push(e.type === 'stats' ? [e.type, e.target, e.method, e.path, e.received > 0] : [e.type]);
const d = await run.done;
process.stdout.write(JSON.stringify({ seen, reason: d.reason }));
`;

test("monitor() from a user's program: per-target settings, events as an async iterable, done", opt, async () => {
  const dir = consumerDir({ 'monitor.mjs': MONITOR_PROGRAM });
  await withLab(chain({ name: labName('am'), routers: 1 }), async (st) => {
    const dst = addrOf(st, 'dst', 4);
    const r1 = addrOf(st, 'r1', 4);
    const run = await runIn(nodeNs(st, 'src'), [process.execPath, join(dir, 'monitor.mjs'), dst, r1]);
    assert.equal(run.code, 0, run.stderr);
    const r = JSON.parse(run.stdout) as { seen: unknown[][]; reason: string };
    assert.equal(r.reason, 'duration');
    assert.deepEqual(r.seen[0], ['start']);
    assert.deepEqual(r.seen.at(-1), ['done']);
    const stats = r.seen.filter((e) => e[0] === 'stats');
    assert.ok(stats.some((e) => e[1] === dst && e[3] === null && e[4] === true));
    assert.ok(stats.some((e) => e[1] === r1 && e[2] === 'udp' && e[3] === 'b' && e[4] === true));
  });
});
