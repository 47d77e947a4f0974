#!/usr/bin/env node
// pathlens command line entry point: loads the CLI built by `npm ci` (the single-file bundle when
// present: it starts faster, and start-up is part of every trace's wall time).
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/pathlens.mjs', import.meta.url);
const modules = new URL('../dist/src/cli/main.js', import.meta.url);
const entry = existsSync(bundle) ? bundle : modules;
if (!existsSync(entry)) {
  process.stderr.write("pathlens: not built yet: run 'npm ci' (or 'npm run build') in the pathlens directory\n");
  process.exit(1);
}
// `pping -r BIG_FILE` reads on a second thread, which takes as long to start as the CLI takes to
// load: it starts now (src/pping/reader-thread.ts; the run adopts it or lets it go).
const reader = new URL('../dist/src/pping/reader-thread.js', import.meta.url);
if (process.argv[2] === 'pping' && existsSync(reader)) (await import(reader.href)).prestart(process.argv.slice(3));
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
