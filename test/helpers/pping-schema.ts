/** pping output lines (those starting with "{"), validated against schema/pping-v1.schema.json. */
import { jsonlOf } from './schema.js';

const parse = jsonlOf<Record<string, unknown>>('pping-v1.schema.json', true);

export function ppingEvents<T = Record<string, unknown>>(text: string): T[] {
  return parse(text) as T[];
}
