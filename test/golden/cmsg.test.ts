import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CmsgCursor, TTL_CMSG_SPACE, cmsgSpace, writeTtlCmsg } from '../../src/packet/cmsg.js';
import { ERR_BAD_LENGTH, ERR_TRUNCATED, OK } from '../../src/packet/status.js';
import { cmsg, concat } from '../helpers/bytes.js';

function walk(bytes: Uint8Array) {
  const c = new CmsgCursor().reset(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.length);
  const out: { level: number; type: number; dataOff: number; dataLen: number }[] = [];
  while (c.next()) out.push({ level: c.level, type: c.type, dataOff: c.dataOff, dataLen: c.dataLen });
  return { out, status: c.status };
}

test('walks two control messages with padding', () => {
  const b = concat(cmsg(0, 11, [1, 2, 3, 4, 5]), cmsg(1, 35, new Array(16).fill(7)));
  const { out, status } = walk(b);
  assert.equal(status, OK);
  assert.deepEqual(out, [
    { level: 0, type: 11, dataOff: 16, dataLen: 5 },
    { level: 1, type: 35, dataOff: 24 + 16, dataLen: 16 },
  ]);
});

test('empty control buffer yields nothing', () => {
  assert.deepEqual(walk(new Uint8Array(0)), { out: [], status: OK });
});

test('a header cut short is truncated', () => {
  const { out, status } = walk(new Uint8Array(10));
  assert.equal(out.length, 0);
  assert.equal(status, ERR_TRUNCATED);
});

test('cmsg_len smaller than the header is a bad length', () => {
  const { status } = walk(cmsg(0, 11, [1, 2, 3, 4], 8));
  assert.equal(status, ERR_BAD_LENGTH);
});

test('cmsg_len past the buffer (MSG_CTRUNC) is truncated, earlier messages kept', () => {
  const b = concat(cmsg(0, 11, [1, 2, 3, 4]), cmsg(1, 35, [9, 9, 9, 9], 64));
  const { out, status } = walk(b);
  assert.equal(out.length, 1);
  assert.equal(status, ERR_TRUNCATED);
});

test('a 64-bit cmsg_len with high bits set is a bad length', () => {
  const b = cmsg(0, 11, [1, 2, 3, 4]);
  b[4] = 1;
  assert.equal(walk(b).status, ERR_BAD_LENGTH);
});

test('TTL control messages: IP_TTL and IPV6_HOPLIMIT, exact bytes', () => {
  const buf = new Uint8Array(TTL_CMSG_SPACE);
  const dv = new DataView(buf.buffer);
  assert.equal(writeTtlCmsg(dv, 0, 4, 7), 24);
  assert.deepEqual(Array.from(buf), Array.from(cmsg(0, 2, [7, 0, 0, 0])));
  writeTtlCmsg(dv, 0, 6, 64);
  assert.deepEqual(Array.from(buf), Array.from(cmsg(41, 52, [64, 0, 0, 0])));
  assert.equal(cmsgSpace(16), 32);
});
