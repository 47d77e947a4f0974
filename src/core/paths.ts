import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PathlensError } from './errors.js';

let root: string | undefined;

/**
 * The pathlens package directory, found by walking up from this module (which may live in
 * dist/src/core or in the single-file CLI bundle dist/pathlens.mjs).
 */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj) && existsSync(join(dir, 'binding.gyp'))) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'pathlens') return (root = dir);
      } catch {
        // not ours: keep walking
      }
    }
    dir = resolve(dir, '..');
  }
  throw new PathlensError('ERR_NATIVE_LOAD', 'cannot find the pathlens package directory');
}
