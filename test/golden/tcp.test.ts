/**
 * TCP header parser and SYN writer against hand-built segments: options walked with every length
 * checked, quotes of 8 bytes, malformed headers refused, and SYN checksums verified by an
 * independent sum over the pseudo-header (RFC 793 / RFC 8200 8.1).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIp } from '../../src/packet/addr.js';
import { ERR_BAD_LENGTH, ERR_TRUNCATED, OK } from '../../src/packet/status.js';
import { SYN_LEN, TCP_ACK, TCP_SYN, TcpView, parseTcpHeader, pseudoHeaderSum, writeSyn } from '../../src/packet/tcp.js';

function parse(bytes: number[], quoted = false) {
  const b = Uint8Array.from(bytes);
  const v = new TcpView();
  return { st: parseTcpHeader(b, 0, b.length, v, quoted), v };
}

// SYN-ACK 80 -> 40000, seq 0x01020304, ack 0xa0b0c0d1, 40-byte header: MSS 1460, SACK-permitted,
// timestamps (TSval 1000000, TSecr 0x11223344), NOP, window scale 7.
const SYNACK = [
  0x00, 0x50, 0x9c, 0x40, 0x01, 0x02, 0x03, 0x04, 0xa0, 0xb0, 0xc0, 0xd1, 0xa0, 0x12, 0xfe, 0x88, 0x12, 0x34, 0x00, 0x00,
  0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x0f, 0x42, 0x40, 0x11, 0x22, 0x33, 0x44, 0x01, 0x03, 0x03, 0x07,
];

test('SYN-ACK with MSS, SACK-permitted, timestamps and window scale', () => {
  const { st, v } = parse(SYNACK);
  assert.equal(st, OK);
  assert.deepEqual([v.srcPort, v.dstPort, v.seq, v.ack, v.headerLen, v.flags, v.window], [80, 40000, 0x01020304, 0xa0b0c0d1, 40, TCP_SYN | TCP_ACK, 0xfe88]);
  assert.deepEqual([v.hasTimestamp, v.tsval, v.tsecr, v.payloadLen], [true, 1000000, 0x11223344, 0]);
});

test('payload after the header is counted; EOL ends the option list', () => {
  const hdr = [0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 2, 0x60, 0x18, 0x01, 0x00, 0, 0, 0, 0, 0x00, 0x08, 0x0a, 0x00];
  const { st, v } = parse([...hdr, 1, 2, 3, 4, 5]);
  assert.equal(st, OK);
  assert.deepEqual([v.headerLen, v.payloadLen, v.hasTimestamp], [24, 5, false], 'a timestamp kind after EOL is not an option');
});

test('an ICMP quote of 8 bytes gives ports and sequence number', () => {
  const { st, v } = parse(SYNACK.slice(0, 8), true);
  assert.equal(st, OK);
  assert.deepEqual([v.srcPort, v.dstPort, v.seq, v.flags, v.headerLen], [80, 40000, 0x01020304, 0, 0]);
  assert.equal(parse(SYNACK.slice(0, 7), true).st, ERR_TRUNCATED);
  // A quote that stops inside the options is still a quote.
  assert.equal(parse(SYNACK.slice(0, 30), true).st, OK);
});

test('malformed headers are refused', () => {
  assert.equal(parse(SYNACK.slice(0, 19)).st, ERR_TRUNCATED, 'shorter than 20 bytes');
  assert.equal(parse(SYNACK.slice(0, 30)).st, ERR_TRUNCATED, 'options cut short');
  const doff4 = [...SYNACK];
  doff4[12] = 0x40;
  assert.equal(parse(doff4).st, ERR_BAD_LENGTH, 'data offset below 5');
  const overrun = [...SYNACK];
  overrun[25] = 30; // SACK-permitted claiming 30 bytes
  assert.equal(parse(overrun).st, ERR_BAD_LENGTH, 'option past the header');
  const zeroLen = [...SYNACK];
  zeroLen[21] = 0; // MSS length 0 would loop forever
  assert.equal(parse(zeroLen).st, ERR_BAD_LENGTH, 'option length below 2');
  const shortTs = [...SYNACK];
  shortTs[27] = 8;
  assert.equal(parse(shortTs).st, ERR_BAD_LENGTH, 'timestamp option of the wrong length');
  const b = new Uint8Array(10);
  assert.equal(parseTcpHeader(b, 4, 10, new TcpView(), true), ERR_TRUNCATED, 'range past the buffer');
});

/** Independent RFC 1071 check: the sum over pseudo-header and segment must be 0xffff. */
function verifies(src: number[], dst: number[], seg: Uint8Array): boolean {
  const words: number[] = [];
  const bytes = [...src, ...dst, ...(src.length === 4 ? [0, 6, 0, seg.length] : [0, 0, 0, seg.length, 0, 0, 0, 6]), ...seg];
  for (let i = 0; i < bytes.length; i += 2) words.push((bytes[i] << 8) | (bytes[i + 1] ?? 0));
  let sum = words.reduce((a, w) => a + w, 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

test('SYN: exact bytes, and a checksum that verifies over the IPv4 and IPv6 pseudo-headers', () => {
  for (const [s, d] of [
    ['10.100.0.1', '10.100.9.2'],
    ['fd00:100::1', 'fd00:100:9::2'],
  ]) {
    const src = parseIp(s);
    const dst = parseIp(d);
    const buf = new Uint8Array(SYN_LEN + 4);
    writeSyn(buf, 2, 40000, 80, 0xdeadbeef, 1460, pseudoHeaderSum(src, dst, SYN_LEN));
    const seg = buf.subarray(2, 2 + SYN_LEN);
    assert.deepEqual(
      [...seg.subarray(0, 16), ...seg.subarray(18)],
      [0x9c, 0x40, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0, 0, 0x02, 0x04, 0x05, 0xb4],
    );
    assert.ok(verifies([...src], [...dst], seg), `checksum of ${s} -> ${d}`);
    assert.deepEqual([buf[0], buf[1], buf[26], buf[27]], [0, 0, 0, 0], 'nothing written outside the segment');
    const v = new TcpView();
    assert.equal(parseTcpHeader(buf, 2, SYN_LEN, v, false), OK);
    assert.deepEqual([v.flags, v.seq, v.headerLen], [TCP_SYN, 0xdeadbeef, 24]);
  }
});
