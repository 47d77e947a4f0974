/**
 * Strict argument parsers for commander: a bad value is a clear usage error, never NaN.
 */
import { InvalidArgumentError } from 'commander';

export function intArg(min: number, max: number) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

export function floatArg(min: number, max: number) {
  return (v: string): number => {
    if (!/^\d+(\.\d+)?$|^\.\d+$/.test(v)) throw new InvalidArgumentError(`expected a number from ${min} to ${max}`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}`);
    return n;
  };
}
