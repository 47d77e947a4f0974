import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIp } from '../../src/packet/addr.js';
import { IcmpErrorView, inetChecksum, parseIcmpError } from '../../src/packet/icmp.js';
import { IpView, parseIpHeader } from '../../src/packet/ip.js';
import { ERR_BAD_CHECKSUM, ERR_BAD_LENGTH, ERR_BAD_VERSION, ERR_NOT_ERROR, ERR_TRUNCATED, OK } from '../../src/packet/status.js';
import { icmp, ipv4, ipv6, udp, v6 } from '../helpers/bytes.js';

function parse(bytes: number[], family: 4 | 6) {
  const b = Uint8Array.from(bytes);
  const v = new IcmpErrorView();
  const st = parseIcmpError(b, new DataView(b.buffer), 0, b.length, family, v);
  return { st, v, b };
}

const SRC = [10, 100, 0, 1];
const DST = [10, 100, 9, 2];
const cookie = [0x50, 0x4c, 0x4e, 0x31, 0, 0, 0, 7, 0, 0, 0, 42];

function quote4(payload: number[]) {
  const u = udp(40000, 33434 + 42, payload);
  return [...ipv4(SRC, DST, 17, u.length, 1), ...u];
}

test('IPv4 Time Exceeded quoting IP + UDP + cookie', () => {
  const { st, v, b } = parse(icmp(11, 0, [0, 0, 0, 0], quote4(cookie)), 4);
  assert.equal(st, OK);
  assert.equal(v.type, 11);
  assert.equal(v.code, 0);
  assert.equal(v.inner.version, 4);
  assert.equal(v.inner.proto, 17);
  assert.equal(v.inner.ttl, 1);
  assert.equal(formatIp(b, v.inner.srcOff, 4), '10.100.0.1');
  assert.equal(formatIp(b, v.inner.dstOff, 4), '10.100.9.2');
  assert.equal(v.srcPort, 40000);
  assert.equal(v.dstPort, 33476);
  assert.equal(v.innerPayloadLen, 12);
  assert.deepEqual(Array.from(b.subarray(v.innerPayloadOff, v.innerPayloadOff + 12)), cookie);
});

test('IPv4 minimal quote (IP header + 8 bytes): ports, no payload', () => {
  const q = quote4(cookie).slice(0, 28);
  const { st, v } = parse(icmp(3, 3, [0, 0, 0, 0], q), 4);
  assert.equal(st, OK);
  assert.equal(v.dstPort, 33476);
  assert.equal(v.innerPayloadLen, 0);
});

test('IPv4 Fragmentation Needed carries the next-hop MTU in the rest word', () => {
  const { st, v } = parse(icmp(3, 4, [0, 0, 0x05, 0x78], quote4(cookie)), 4);
  assert.equal(st, OK);
  assert.equal(v.rest & 0xffff, 1400);
});

test('RFC 4884 length is read for Time Exceeded (IPv4 byte 5)', () => {
  const { v } = parse(icmp(11, 0, [0, 32, 0, 0], quote4(cookie)), 4);
  assert.equal(v.rfc4884Words, 32);
});

test('a bad ICMP checksum is rejected', () => {
  const m = icmp(11, 0, [0, 0, 0, 0], quote4(cookie));
  m[2] ^= 0xff;
  assert.equal(parse(m, 4).st, ERR_BAD_CHECKSUM);
});

test('an echo reply is not an error message', () => {
  assert.equal(parse(icmp(0, 0, [0, 1, 0, 2], []), 4).st, ERR_NOT_ERROR);
  assert.equal(parse([129, 0, 0, 0, 0, 1, 0, 2], 6).st, ERR_NOT_ERROR);
});

test('truncated: fewer than 8 bytes, or a quoted IPv4 header cut short', () => {
  assert.equal(parse([11, 0, 0], 4).st, ERR_TRUNCATED);
  assert.equal(parse(icmp(11, 0, [0, 0, 0, 0], quote4(cookie).slice(0, 12)), 4).st, ERR_TRUNCATED);
});

test('a quoted IPv4 header with IHL < 5 is a bad length', () => {
  const q = quote4(cookie);
  q[0] = 0x44;
  assert.equal(parse(icmp(11, 0, [0, 0, 0, 0], q), 4).st, ERR_BAD_LENGTH);
});

test('a quoted packet of IP version 5 is rejected', () => {
  const q = quote4(cookie);
  q[0] = 0x55;
  assert.equal(parse(icmp(11, 0, [0, 0, 0, 0], q), 4).st, ERR_BAD_VERSION);
});

const S6 = v6('fd00:706c::1');
const D6 = v6('fd00:706c:0:9::2');

test('ICMPv6 Time Exceeded quoting IPv6 + UDP (flow label kept)', () => {
  const u = udp(40001, 33500, cookie);
  const { st, v, b } = parse([3, 0, 0, 0, 0, 0, 0, 0, ...ipv6(S6, D6, 17, u.length, 1, 0xabcde), ...u], 6);
  assert.equal(st, OK);
  assert.equal(v.inner.version, 6);
  assert.equal(v.inner.flowLabel, 0xabcde);
  assert.equal(formatIp(b, v.inner.dstOff, 6), 'fd00:706c:0:9::2');
  assert.equal(v.dstPort, 33500);
  assert.equal(v.innerPayloadLen, 12);
});

test('ICMPv6 quote through hop-by-hop and fragment extension headers', () => {
  const u = udp(1, 2, []);
  const hbh = [44, 0, 1, 4, 0, 0, 0, 0]; // next: fragment, len 0 (8 bytes), PadN
  const frag = [17, 0, 0, 0, 0, 0, 0, 1];
  const pkt = [...ipv6(S6, D6, 0, hbh.length + frag.length + u.length), ...hbh, ...frag, ...u];
  const { st, v } = parse([1, 4, 0, 0, 0, 0, 0, 0, ...pkt], 6);
  assert.equal(st, OK);
  assert.equal(v.inner.proto, 17);
  assert.equal(v.inner.headerLen, 56);
  assert.equal(v.dstPort, 2);
});

test('ICMPv6 Packet Too Big: MTU in the rest word', () => {
  const u = udp(1, 2, []);
  const { st, v } = parse([2, 0, 0, 0, 0, 0, 0x05, 0x00, ...ipv6(S6, D6, 17, u.length), ...u], 6);
  assert.equal(st, OK);
  assert.equal(v.rest, 1280);
});

test('an extension header running past the quote is truncated', () => {
  const pkt = [...ipv6(S6, D6, 0, 16), 17, 3, 0, 0];
  assert.equal(parse([3, 0, 0, 0, 0, 0, 0, 0, ...pkt], 6).st, ERR_TRUNCATED);
});

test('standalone IPv4 header: totalLen beyond the buffer is truncated unless quoted', () => {
  const h = Uint8Array.from([...ipv4(SRC, DST, 17, 100), 1, 2, 3]);
  const v = new IpView();
  assert.equal(parseIpHeader(h, 0, h.length, v, false), ERR_TRUNCATED);
  assert.equal(parseIpHeader(h, 0, h.length, v, true), OK);
  assert.equal(v.payloadLen, 3);
  assert.equal(v.dontFragment, true);
});

test('internet checksum of a valid IPv4 header is zero', () => {
  const h = Uint8Array.from(ipv4(SRC, DST, 17, 8));
  assert.equal(inetChecksum(h, 0, 20), 0);
});
