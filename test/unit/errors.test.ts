/** Every error code pathlens can raise is documented in docs/errors.md, and nothing documented is stale. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/lab.js';

test('every ErrorCode is in docs/errors.md and every documented code exists', () => {
  const src = readFileSync(join(ROOT, 'src', 'core', 'errors.ts'), 'utf8');
  const union = /export type ErrorCode =([^;]+);/.exec(src)![1];
  const codes = [...union.matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]).sort();
  const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
  const documented = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]).sort();
  assert.ok(codes.length >= 14);
  assert.deepEqual(documented, codes);
});
