/** Validation of ktrace output lines against schema/ktrace-v1.schema.json. */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { KtraceEvent } from '../../src/ktrace/events.js';
import { ROOT } from './lab.js';

const ajv = new Ajv2020({ strict: true, validateFormats: false, allErrors: true });
const validate = ajv.compile(JSON.parse(readFileSync(`${ROOT}schema/ktrace-v1.schema.json`, 'utf8')));

/** Parses JSONL, validating every object; throws on the first bad one. */
export function ktraceEvents(text: string): KtraceEvent[] {
  const out: KtraceEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line);
    if (!validate(e)) throw new Error(`ktrace schema violation: ${ajv.errorsText(validate.errors)} in ${line}`);
    out.push(e as KtraceEvent);
  }
  return out;
}
