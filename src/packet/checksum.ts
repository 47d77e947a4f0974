/**
 * The Internet checksum (RFC 1071): one's-complement sums over byte ranges, shared by ICMP
 * validation, the Paris checksum fixer and TCP.
 */

/** Folded (not inverted) one's-complement 16-bit sum of buf[off, off+len), starting from `initial`. */
export function onesSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Internet checksum of buf[off, off+len), with an optional initial sum (0 over a valid message). */
export function inetChecksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~onesSum(buf, off, len, initial) & 0xffff;
}
