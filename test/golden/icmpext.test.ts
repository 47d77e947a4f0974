/**
 * RFC 4884 extension structures and RFC 4950 MPLS label stacks, built by hand byte by byte:
 * compliant (length field) and non-compliant (length-less, 128 bytes) IPv4 Time Exceeded, an
 * ICMPv6 one (length in 64-bit words), bad checksums, broken objects; and the errqueue path, where
 * the kernel reports the extension offset in ee_data. Also the Paris checksum fixer for ICMP.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findIcmpExtensions, IcmpExtView, parseIcmpExtensions } from '../../src/packet/icmpext.js';
import { ERR_BAD_CHECKSUM, ERR_BAD_LENGTH, ERR_BAD_VERSION, ERR_TRUNCATED, OK, describeStatus } from '../../src/packet/status.js';
import { fixChecksum } from '../../src/trace/icmp.js';
import { rfc4884Offset } from '../../src/probe/transport.js';

/** RFC 1071 checksum, written out independently of the production one. */
function cksum(b: number[]): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) + (b[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/** One MPLS label stack entry: label 20 bits, TC 3, S 1, TTL 8. */
function lse(label: number, tc: number, s: 0 | 1, ttl: number): number[] {
  const v = label * 4096 + tc * 512 + s * 256 + ttl;
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

/** Extension structure: version 2 header with checksum, then one MPLS object (class 1, c-type 1). */
function mplsExtension(entries: number[][], withChecksum = true): number[] {
  const obj = [0, 4 + entries.length * 4, 1, 1, ...entries.flat()];
  const ext = [0x20, 0x00, 0x00, 0x00, ...obj];
  if (withChecksum) {
    const c = cksum(ext);
    ext[2] = c >> 8;
    ext[3] = c & 0xff;
  }
  return ext;
}

/** IPv4 Time Exceeded with `orig` bytes of original datagram and the extension after it. */
function timeExceeded4(origLen: number, lengthField: number, ext: number[]): Uint8Array {
  const orig = new Array(origLen).fill(0);
  orig[0] = 0x45; // a quoted IPv4 header starts the original datagram
  const msg = [11, 0, 0, 0, 0, lengthField, 0, 0, ...orig, ...ext];
  const c = cksum(msg);
  msg[2] = c >> 8;
  msg[3] = c & 0xff;
  return Uint8Array.from(msg);
}

const TWO_LABELS = [lse(16004, 0, 0, 254), lse(24001, 5, 1, 1)];
const WANT = [
  { label: 16004, tc: 0, s: false, ttl: 254 },
  { label: 24001, tc: 5, s: true, ttl: 1 },
];

test('compliant IPv4: length field 32 words (128 bytes), two-label MPLS stack, checksum verified', () => {
  const m = timeExceeded4(128, 32, mplsExtension(TWO_LABELS));
  const v = new IcmpExtView();
  assert.equal(findIcmpExtensions(m, 0, m.length, 4, v), OK);
  assert.equal(v.checksummed, true);
  assert.equal(v.objects, 1);
  assert.deepEqual(v.labels(), WANT);
});

test('compliant IPv4 with a longer original datagram (144 bytes, length 36 words)', () => {
  const m = timeExceeded4(144, 36, mplsExtension([lse(3, 0, 1, 64)]));
  const v = new IcmpExtView();
  assert.equal(findIcmpExtensions(m, 0, m.length, 4, v), OK);
  assert.deepEqual(v.labels(), [{ label: 3, tc: 0, s: true, ttl: 64 }]);
});

test('non-compliant (length-less): extension right after 128 bytes, accepted only with a valid checksum', () => {
  const v = new IcmpExtView();
  const good = timeExceeded4(128, 0, mplsExtension(TWO_LABELS));
  assert.equal(findIcmpExtensions(good, 0, good.length, 4, v), OK);
  assert.deepEqual(v.labels(), WANT);
  // No checksum: no proof that these bytes are an extension rather than quoted payload.
  const unsummed = timeExceeded4(128, 0, mplsExtension(TWO_LABELS, false));
  assert.equal(describeStatus(findIcmpExtensions(unsummed, 0, unsummed.length, 4, v)), describeStatus(ERR_BAD_VERSION));
  assert.equal(v.labels(), null);
  // A corrupted label under a checksum that no longer matches.
  const bad = Array.from(timeExceeded4(128, 0, mplsExtension(TWO_LABELS)));
  bad[8 + 128 + 8] ^= 0x10;
  assert.equal(findIcmpExtensions(Uint8Array.from(bad), 0, bad.length, 4, v), ERR_BAD_CHECKSUM);
});

test('compliant with a zero checksum ("not computed") is accepted; a wrong one is not', () => {
  const v = new IcmpExtView();
  const m = timeExceeded4(128, 32, mplsExtension(TWO_LABELS, false));
  assert.equal(findIcmpExtensions(m, 0, m.length, 4, v), OK);
  assert.equal(v.checksummed, false);
  assert.deepEqual(v.labels(), WANT);
  const ext = mplsExtension(TWO_LABELS);
  ext[3] ^= 1;
  const w = timeExceeded4(128, 32, ext);
  assert.equal(findIcmpExtensions(w, 0, w.length, 4, v), ERR_BAD_CHECKSUM);
});

test('ICMPv6: the length field is byte 4 and counts 64-bit words (16 -> 128 bytes)', () => {
  const orig = new Array(128).fill(0);
  orig[0] = 0x60;
  const m = Uint8Array.from([3, 0, 0, 0, 16, 0, 0, 0, ...orig, ...mplsExtension(TWO_LABELS)]);
  const v = new IcmpExtView();
  assert.equal(findIcmpExtensions(m, 0, m.length, 6, v), OK);
  assert.deepEqual(v.labels(), WANT);
});

test('no room for extensions, a length below 128 bytes, broken objects', () => {
  const v = new IcmpExtView();
  const plain = timeExceeded4(28, 0, []);
  assert.equal(findIcmpExtensions(plain, 0, plain.length, 4, v), ERR_TRUNCATED);
  const short = timeExceeded4(64, 16, mplsExtension(TWO_LABELS));
  assert.equal(findIcmpExtensions(short, 0, short.length, 4, v), ERR_BAD_LENGTH);
  // Object length 2 (< its own header), object running past the end, MPLS payload not whole entries.
  const hdr = [0x20, 0, 0, 0];
  assert.equal(parseIcmpExtensions(Uint8Array.from([...hdr, 0, 2, 1, 1]), 0, 8, v), ERR_BAD_LENGTH);
  assert.equal(parseIcmpExtensions(Uint8Array.from([...hdr, 0, 12, 1, 1, 0, 0, 0, 0]), 0, 12, v), ERR_BAD_LENGTH);
  assert.equal(parseIcmpExtensions(Uint8Array.from([...hdr, 0, 6, 1, 1, 0, 0]), 0, 10, v), ERR_BAD_LENGTH);
  assert.equal(parseIcmpExtensions(Uint8Array.from([...hdr, 0, 4]), 0, 6, v), ERR_TRUNCATED);
  assert.equal(parseIcmpExtensions(Uint8Array.from([0x10, 0, 0, 0]), 0, 4, v), ERR_BAD_VERSION);
  // Unknown objects are skipped and counted; MPLS after them is still found.
  const two = Uint8Array.from([...hdr, 0, 8, 2, 0x0f, 1, 2, 3, 4, 0, 8, 1, 1, ...lse(100, 0, 1, 9)]);
  assert.equal(parseIcmpExtensions(two, 0, two.length, v), OK);
  assert.equal(v.objects, 2);
  assert.deepEqual(v.labels(), [{ label: 100, tc: 0, s: true, ttl: 9 }]);
});

test('errqueue: the kernel reports the extension offset in ee_data (len, flags); INVALID is refused', () => {
  assert.equal(rfc4884Offset(0), -1);
  assert.equal(rfc4884Offset(108), 108); // sock_ee_data_rfc4884 { len = 108, flags = 0 }
  assert.equal(rfc4884Offset(108 | (1 << 16)), -1); // SO_EE_RFC4884_FLAG_INVALID
});

test('Paris ICMP: the fixer keeps the checksum constant whatever the sequence and payload', () => {
  for (const seq of [0, 1, 255, 0x1234, 0xffff]) {
    const m = Uint8Array.from([8, 0, 0, 0, 0x12, 0x34, seq >> 8, seq & 0xff, 0x50, 0x4c, 0x4e, 0x31, 1, 2, 3, 4, 0, 0, 0, seq & 0xff, 7, 0, 0, 0]);
    fixChecksum(m, 0, m.length, m.length - 2, 0x5a5a);
    const withSum = Array.from(m);
    withSum[2] = 0x5a;
    withSum[3] = 0x5a;
    assert.equal(cksum(withSum), 0, `seq ${seq}: the message checks with checksum 0x5a5a`);
  }
});
