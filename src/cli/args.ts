/**
 * Strict argument parsers for commander: a bad value is a clear usage error, never NaN.
 */
import { InvalidArgumentError } from 'commander';

/** A byte, decimal or 0x hex (TOS values are written both ways). */
export function byteArg(v: string): number {
  if (!/^(\d+|0x[0-9a-fA-F]+)$/.test(v)) throw new InvalidArgumentError('expected a byte, 0-255 or 0x00-0xff');
  const n = Number(v);
  if (n > 255) throw new InvalidArgumentError('expected a byte, 0-255 or 0x00-0xff');
  return n;
}

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

/** A comma-separated list of 1 to `max` distinct port numbers (1-65535). */
export function portListArg(max: number) {
  return (v: string): number[] => {
    const parts = v.split(',');
    if (parts.length > max || !parts.every((p) => /^\d{1,5}$/.test(p))) throw new InvalidArgumentError(`expected 1 to ${max} ports, comma-separated`);
    const ports = parts.map(Number);
    if (ports.some((p) => p < 1 || p > 65535)) throw new InvalidArgumentError('expected ports from 1 to 65535');
    if (new Set(ports).size !== ports.length) throw new InvalidArgumentError('a port is listed twice');
    return ports;
  };
}
