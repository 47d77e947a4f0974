/**
 * A program outside the package that uses pathlens the way a user's would: a folder of its own
 * whose node_modules/pathlens is this checkout, so that `import ... from 'pathlens'` goes through
 * the package's `exports` and types.
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './lab.js';

export function consumerDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pathlens-user-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'pathlens'), 'dir');
  writeFileSync(join(dir, 'package.json'), '{ "type": "module", "private": true }\n');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
