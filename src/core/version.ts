import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './paths.js';

let v: string | undefined;

/** The package version (package.json), read once. */
export function version(): string {
  if (v) return v;
  try {
    v = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    v = '0.0.0';
  }
  return v;
}
