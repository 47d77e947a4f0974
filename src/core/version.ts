import { readFileSync } from 'node:fs';

let v: string | undefined;

/** The package version (package.json), read once. */
export function version(): string {
  if (v) return v;
  try {
    const url = new URL('../../../package.json', import.meta.url);
    v = (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  } catch {
    v = '0.0.0';
  }
  return v;
}
