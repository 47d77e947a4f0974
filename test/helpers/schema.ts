/** JSONL event streams checked against the project's JSON Schemas (schema/*.schema.json). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ajv = new Ajv2020({ strict: true, validateFormats: false, allErrors: true });

/**
 * A parser of JSONL output that validates every object against schema/<file> and throws on the
 * first bad one. `mixed`: other lines (a human view, notes) may come between, and are passed
 * over; otherwise every non-empty line must be an event.
 */
export function jsonlOf<T>(file: string, mixed: boolean): (text: string) => T[] {
  const validate = ajv.compile(JSON.parse(readFileSync(`${ROOT}schema/${file}`, 'utf8')));
  return (text) => {
    const out: T[] = [];
    for (const line of text.split('\n')) {
      if (!line || (mixed && !line.startsWith('{'))) continue;
      const e = JSON.parse(line);
      if (!validate(e)) throw new Error(`${file}: schema violation: ${ajv.errorsText(validate.errors)} in ${line}`);
      out.push(e as T);
    }
    return out;
  };
}
