/**
 * Forward resolution of a target given by name or address: a literal is parsed (and must be of
 * the family asked for); a name goes to the system resolver, in its own order (verbatim), and a
 * failure is one ERR_RESOLVE line with the resolver's code.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { PathlensError } from '../core/errors.js';
import { type Family, parseIp } from '../packet/addr.js';

export async function resolveTarget(target: string, family?: Family): Promise<Uint8Array> {
  const lit = isIP(target);
  if (lit) {
    if (family && lit !== family) throw new PathlensError('ERR_USAGE', `${target} is not an IPv${family} address`);
    return parseIp(target);
  }
  try {
    const r = await lookup(target, { family: family ?? 0, verbatim: true });
    return parseIp(r.address);
  } catch (e) {
    throw new PathlensError('ERR_RESOLVE', `cannot resolve ${target}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

