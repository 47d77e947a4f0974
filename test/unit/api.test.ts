/**
 * The library API from a user's program, imported by the package's name: its types check under
 * a strict TypeScript configuration, and pping() over a capture file yields the same events the
 * CLI writes, then resolves its done event. (trace() in a lab: test/netns/api.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { consumerDir } from '../helpers/consumer.js';
import { CLI, ROOT } from '../helpers/lab.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'epping', 'fixA-r0.pcap');

const TYPED = `import { type DoneEvent, type PpingEvent, type Run, type TraceEvent, PathlensError, TRACE_SCHEMA, pping, trace } from 'pathlens';
const t: Run<TraceEvent, DoneEvent> = trace('127.0.0.1', { queries: 1, method: 'icmp' });
const p: Run<PpingEvent, unknown> = pping({ read: 'x.pcap', icmp: true, rateLimitNs: 0 });
async function use(): Promise<string> {
  for await (const e of t) if (e.type === 'hop') return e.addrs.join(',');
  const d = await t.done;
  return d.reason + TRACE_SCHEMA + String(p) + String(PathlensError);
}
// @ts-expect-error: hop events have no 'rtt' field
const bad = (e: TraceEvent) => e.type === 'hop' && e.rtt;
export { use, bad };
`;

test('the package exports typed functions: a strict TypeScript program type-checks against them', () => {
  const dir = consumerDir({
    'use.ts': TYPED,
    'tsconfig.json': JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: false, types: [] }, files: ['use.ts'] }),
  });
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test("pping() from a user's program: the CLI's events, as an async iterable, then done", () => {
  const dir = consumerDir({
    'read.mjs': `import { pping } from 'pathlens';
const run = pping({ read: process.argv[2], tcp: true, icmp: true, rateLimitNs: 0 });
const lines = [];
for await (const e of run) lines.push(JSON.stringify({ type: e.type, rtt: e.rtt, src: e.src_ip }));
const done = await run.done;
console.log(JSON.stringify({ lines, done: done.reason, rtts: done.rtt_events }));
`,
  });
  const api = spawnSync(process.execPath, [join(dir, 'read.mjs'), FIXTURE], { encoding: 'utf8', cwd: dir });
  assert.equal(api.status, 0, api.stderr);
  const got = JSON.parse(api.stdout) as { lines: string[]; done: string; rtts: number };
  const cli = spawnSync(process.execPath, [CLI, 'pping', '-r', FIXTURE, '--tcp', '--icmp', '--rate-limit', '0', '-F', 'jsonl'], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  const want = cli.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; rtt?: number; src_ip?: string })
    .map((e) => JSON.stringify({ type: e.type, rtt: e.rtt, src: e.src_ip }));
  assert.deepEqual(got.lines, want, 'the same events, in the same order, start and done included');
  assert.equal(got.done, 'end-of-file');
  assert.ok(got.rtts > 100);
  // A bad call fails at once, in one sentence.
  const bad = spawnSync(process.execPath, ['--input-type=module', '-e', "import { pping } from 'pathlens'; try { pping({}); } catch (e) { console.log(e.message); }"], { encoding: 'utf8', cwd: dir });
  assert.equal(bad.stdout, 'pping(): give one of iface (live) or read (a capture file)\n');
});
