#!/usr/bin/env node
// Runs the compiled test suite with node:test. Arguments pick categories (unit golden property
// netns fuzz); none means all. fuzz: the fuzzer's short run and its regressions. Root-only tests live in test/netns:
//  - as root, the system tools they drive are installed first when missing (scripts/test-deps.js);
//  - not root, they run through sudo when there is one (saying so), else they skip with a printed
//    reason, except under CI=true, where they fail instead (see test/helpers/root.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestTools } from './test-deps.js';

const all = ['unit', 'golden', 'property', 'netns', 'fuzz'];
const picked = process.argv.slice(2).length ? process.argv.slice(2) : all;
for (const c of picked) {
  if (!all.includes(c)) {
    console.error(`run-tests: unknown category '${c}' (known: ${all.join(', ')})`);
    process.exit(2);
  }
}
const filesOf = (cats) => {
  const files = [];
  for (const c of cats) {
    const dir = join('dist', 'test', c);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.test.js')) files.push(join(dir, f));
  }
  return files;
};
if (filesOf(picked).length === 0) {
  console.error('run-tests: no compiled tests found (run `npm run build` first)');
  process.exit(1);
}
const root = process.getuid?.() === 0;
// Under sudo, pathlens runs as the user who ran sudo once set up (--user's default): the tests
// start pathlens as root and say --user where they mean it, so they do not pass sudo's user on.
if (root) for (const k of ['SUDO_UID', 'SUDO_GID', 'SUDO_USER']) delete process.env[k];
const hasSudo = spawnSync('sh', ['-c', 'command -v sudo'], { stdio: 'ignore' }).status === 0;
const elevate = picked.includes('netns') && !root && hasSudo && process.env.CI !== 'true';
const here = elevate ? picked.filter((c) => c !== 'netns') : picked;
if (root && here.includes('netns')) ensureTestTools();

// netns tests share the machine's network state: files run one at a time.
const runner = ['--test', '--test-concurrency=1', '--test-reporter=spec'];
let status = 0;
if (here.length) {
  const r = spawnSync(process.execPath, [...runner, ...filesOf(here)], { stdio: 'inherit' });
  status = r.status ?? 1;
}
if (elevate) {
  process.stderr.write('run-tests: the netns tests need root (network namespaces, BPF): running them through sudo\n');
  const r = spawnSync('sudo', ['--', process.execPath, 'scripts/run-tests.js', 'netns'], { stdio: 'inherit' });
  status ||= r.status ?? 1;
}
process.exit(status);
