/**
 * Every input the fuzzer ever found a fault with (fuzz/regressions/TARGET/), replayed through its
 * target: each must now end in a result or a PathlensError, and pass the target's own checks.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { accepted, signature } from '../../fuzz/engine.js';
import { TARGETS } from '../../fuzz/targets.js';
import { ROOT } from '../helpers/lab.js';

const DIR = join(ROOT, 'fuzz', 'regressions');

test('fuzz regressions: every recorded finding now passes its target', async () => {
  const dirs = readdirSync(DIR, { withFileTypes: true }).filter((d) => d.isDirectory());
  assert.ok(dirs.length > 0, 'no regressions recorded');
  let n = 0;
  for (const d of dirs) {
    const target = TARGETS.find((t) => t.name === d.name);
    assert.ok(target, `fuzz/regressions/${d.name}: no such target`);
    const run = await target.make();
    for (const f of readdirSync(join(DIR, d.name)).sort()) {
      const input = new Uint8Array(readFileSync(join(DIR, d.name, f)));
      try {
        await run(input);
      } catch (e) {
        assert.ok(accepted(e), `${d.name}/${f}: ${signature(e)}`);
      }
      n++;
    }
  }
  assert.ok(n >= 3, `${n} regressions replayed`);
});

test('fuzz regressions: the seed corpus of every target exists and passes it', async () => {
  for (const t of TARGETS) {
    const dir = join(ROOT, 'fuzz', 'corpus', t.name);
    assert.ok(existsSync(dir), `no seed corpus for ${t.name}`);
    const files = readdirSync(dir).filter((f) => f !== 'README.md');
    assert.ok(files.length > 0, `empty seed corpus for ${t.name}`);
    const run = await t.make();
    for (const f of files) {
      try {
        await run(new Uint8Array(readFileSync(join(dir, f))));
      } catch (e) {
        assert.ok(accepted(e), `${t.name} seed ${f}: ${signature(e)}`);
      }
    }
  }
});
