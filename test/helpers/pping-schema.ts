/** Validation of pping output lines against schema/pping-v1.schema.json. */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ROOT } from './lab.js';

const ajv = new Ajv2020({ strict: true, validateFormats: false, allErrors: true });
const validate = ajv.compile(JSON.parse(readFileSync(`${ROOT}schema/pping-v1.schema.json`, 'utf8')));

/** Parses JSONL (lines starting with "{"), validating every object; throws on the first bad one. */
export function ppingEvents<T = Record<string, unknown>>(text: string): T[] {
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line);
    if (!validate(e)) throw new Error(`pping schema violation: ${ajv.errorsText(validate.errors)} in ${line}`);
    out.push(e as T);
  }
  return out;
}
