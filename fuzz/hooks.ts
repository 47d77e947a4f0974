/**
 * Module customization hooks (node:module register) that instrument pathlens' own compiled
 * modules for coverage as they load: istanbul's instrumenter (the one nyc uses) adds a counter per
 * statement, function and branch arm, kept in globalThis[COVERAGE_VAR][file]. The fuzzer reads and
 * clears those counters after every input (engine.ts). Nothing outside `prefix` (dist/src/) is
 * touched: dependencies and the fuzzer itself run as they are.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const COVERAGE_VAR = '__pathlens_cov';

interface Instrumenter {
  instrumentSync(code: string, filename: string): string;
}

let prefix = '';
let instrumenter: Instrumenter | null = null;

export function initialize(data: { prefix: string }): void {
  prefix = data.prefix;
  const require = createRequire(import.meta.url);
  const { createInstrumenter } = require('istanbul-lib-instrument') as { createInstrumenter(o: object): Instrumenter };
  instrumenter = createInstrumenter({ esModules: true, compact: true, produceSourceMap: false, coverageVariable: COVERAGE_VAR, autoWrap: false, preserveComments: false });
}

type LoadResult = { format?: string | null; source?: string | ArrayBuffer | Uint8Array | null; shortCircuit?: boolean };
type NextLoad = (url: string, context: object) => Promise<LoadResult>;

export async function load(url: string, context: object, nextLoad: NextLoad): Promise<LoadResult> {
  const r = await nextLoad(url, context);
  if (!instrumenter || !url.startsWith(prefix) || r.format !== 'module' || r.source == null) return r;
  const code = typeof r.source === 'string' ? r.source : new TextDecoder().decode(r.source as Uint8Array);
  return { format: 'module', source: instrumenter.instrumentSync(code, fileURLToPath(url)), shortCircuit: true };
}
