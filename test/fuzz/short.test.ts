/**
 * The fuzzer's short run, as CI runs it: every target, coverage-guided, from its seed corpus, for
 * a few seconds each (PATHLENS_FUZZ_SECONDS, 6 by default; `node dist/fuzz/main.js` runs longer).
 * It must find nothing, and each target must have run and reached code its seeds did not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TargetResult } from '../../fuzz/main.js';
import { TARGETS } from '../../fuzz/targets.js';
import { ROOT } from '../helpers/lab.js';

const SECONDS = Number(process.env.PATHLENS_FUZZ_SECONDS ?? 6);

test(`fuzz, ${SECONDS} s a target: every parser of untrusted bytes, nothing found, coverage beyond the seeds`, { timeout: (SECONDS * TARGETS.length + 120) * 1000 }, () => {
  const findings = mkdtempSync(join(tmpdir(), 'pathlens-fuzz-'));
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'fuzz', 'main.js'), '--seconds', String(SECONDS), '--jobs', '2', '--json', '--findings', findings], { encoding: 'utf8' });
  const results = JSON.parse(r.stdout || '[]') as TargetResult[];
  assert.deepEqual(results.map((x) => x.target).sort(), TARGETS.map((t) => t.name).sort(), r.stderr);
  for (const x of results) {
    process.stdout.write(`# ${x.target}: ${x.execs} executions (${x.execsPerSec.toFixed(0)}/s), coverage ${x.reached}/${x.total} (+${x.reached - x.seedReached} beyond the seeds), corpus ${x.seeds}->${x.corpus}\n`);
    assert.deepEqual(x.crashes, [], `${x.target}: findings in ${findings}`);
    assert.equal(x.hangs, 0, `${x.target}: a hang, input in ${findings}`);
    assert.ok(x.execs >= 500, `${x.target}: only ${x.execs} executions`);
    assert.ok(x.reached > x.seedReached, `${x.target}: no coverage beyond the seeds`);
  }
  assert.equal(r.status, 0, r.stderr);
});
