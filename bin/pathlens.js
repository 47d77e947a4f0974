#!/usr/bin/env node
// pathlens command line entry point: loads the compiled CLI (built by `npm ci`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("pathlens: not built yet: run 'npm ci' (or 'npm run build') in the pathlens directory\n");
  process.exit(1);
}
const { main } = await import(entry.href);
const code = await main(process.argv);
process.exitCode = code;
