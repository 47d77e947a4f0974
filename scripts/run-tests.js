#!/usr/bin/env node
// Runs the compiled test suite with node:test. Arguments pick categories (unit golden property
// netns); none means all. Root-only tests live in test/netns and skip with a printed reason when
// not root, except under CI=true, where they fail instead (see test/helpers/root.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const all = ['unit', 'golden', 'property', 'netns'];
const picked = process.argv.slice(2).length ? process.argv.slice(2) : all;
for (const c of picked) {
  if (!all.includes(c)) {
    console.error(`run-tests: unknown category '${c}' (known: ${all.join(', ')})`);
    process.exit(2);
  }
}
const files = [];
for (const c of picked) {
  const dir = join('dist', 'test', c);
  if (!existsSync(dir)) continue;
  for (const f of readdirSync(dir).sort()) if (f.endsWith('.test.js')) files.push(join(dir, f));
}
if (files.length === 0) {
  console.error('run-tests: no compiled tests found (run `npm run build` first)');
  process.exit(1);
}
// netns tests share the machine's network state: run files one at a time.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
