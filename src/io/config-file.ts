/**
 * Reading a configuration file (lab specs, monitor target files): a size cap, and every failure
 * as one ERR_CONFIG line naming the file (a directory, a missing file, a file too large).
 */
import { readFileSync, statSync } from 'node:fs';
import { PathlensError } from '../core/errors.js';

/** The file's text; `what` names the kind of file in the size message ("a lab spec"). */
export function readConfigText(path: string, maxBytes: number, what: string): string {
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (st.size > maxBytes) throw new PathlensError('ERR_CONFIG', `${path} is ${st.size} bytes: ${what} is at most ${maxBytes} bytes`);
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof PathlensError) throw e;
    throw new PathlensError('ERR_CONFIG', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
