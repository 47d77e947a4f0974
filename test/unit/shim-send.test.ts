/**
 * The shim's two ways of sending a batch, over real loopback UDP sockets: sendmmsg (one time for
 * the call) and sendeach (one sendmsg per message, each timed just before its call). Every
 * message arrives once and in order; sendeach's times are per message and never go backwards;
 * a slab too small for the count is refused before anything is sent.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_RCVBUF } from '../../src/core/constants.js';
import { RecvBatch, SendBatch } from '../../src/io/batch.js';
import { Socket } from '../../src/io/socket.js';
import { native } from '../../src/native/index.js';
import { SockaddrView, parseIp, readSockaddr, writeSockaddr } from '../../src/packet/addr.js';

const LOOPBACK = parseIp('127.0.0.1');

/** A bound receiver on loopback and a sender aimed at it; `n` messages of 8 bytes (index, pass). */
function pair(n: number, pass: number) {
  const rx = new Socket(AF_INET, SOCK_DGRAM, 0);
  rx.trySetInt(SOL_SOCKET, SO_RCVBUF, 1 << 20);
  const name = new Uint8Array(16);
  writeSockaddr(name, 0, LOOPBACK, 0);
  rx.bind(name);
  const got = rx.localName();
  const sa = new SockaddrView();
  readSockaddr(new DataView(got.buffer, got.byteOffset, got.length), 0, got.length, sa);
  const port = sa.port;
  assert.ok(port > 0);
  const tx = new Socket(AF_INET, SOCK_DGRAM, 0);
  const b = new SendBatch(n, 8, 16, 0);
  for (let i = 0; i < n; i++) {
    writeSockaddr(b.names, i * 16, LOOPBACK, port);
    b.dataView.setUint32(i * 8, i, false);
    b.dataView.setUint32(i * 8 + 4, pass, false);
    b.set(i, 8, 16, 0);
  }
  return { rx, tx, b };
}

/** Everything waiting on rx: [index, pass] per datagram, in arrival order. */
function readAll(rx: Socket): [number, number][] {
  const r = new RecvBatch(64, 16, 0, 0);
  const out: [number, number][] = [];
  for (;;) {
    const k = r.recv(rx.fd, 0);
    if (k <= 0) return out;
    for (let i = 0; i < k; i++) out.push([r.dataView.getUint32(r.dataOff(i), false), r.dataView.getUint32(r.dataOff(i) + 4, false)]);
  }
}

const ns = (t: Float64Array, i: number) => t[2 * i] * 1e9 + t[2 * i + 1];

test('sendeach sends every message once, in order, each with its own time taken before its call', () => {
  const N = 64;
  const { rx, tx, b } = pair(N, 1);
  try {
    b.perMessage = true;
    const before = Date.now();
    assert.equal(b.send(tx.fd, N), N);
    const after = Date.now();
    assert.deepEqual(readAll(rx), Array.from({ length: N }, (_, i) => [i, 1]));
    for (let i = 0; i < N; i++) {
      const t = ns(b.times, i);
      assert.equal(b.sentSec(i) * 1e9 + b.sentNsec(i), t);
      assert.ok(t >= (before - 1) * 1e6 && t <= (after + 1) * 1e6, `message ${i}: its time lies within the call`);
      if (i > 0) assert.ok(t >= ns(b.times, i - 1), `message ${i}: its time is not before the previous one's`);
    }
    // Each message has a time of its own: 64 syscalls cannot all start in the same nanosecond.
    assert.ok(ns(b.times, N - 1) > ns(b.times, 0));
  } finally {
    rx.close();
    tx.close();
  }
});

test('sendmmsg (the default) sends the same batch in one call, one time for every message', () => {
  const N = 32;
  const { rx, tx, b } = pair(N, 2);
  try {
    assert.equal(b.perMessage, false);
    assert.equal(b.send(tx.fd, N), N);
    assert.deepEqual(readAll(rx), Array.from({ length: N }, (_, i) => [i, 2]));
    for (let i = 0; i < N; i++) assert.equal(b.sentSec(i) * 1e9 + b.sentNsec(i), ns(b.times, 0));
  } finally {
    rx.close();
    tx.close();
  }
});

test('sendeach: a count its slabs cannot hold, or a field outside them, is refused before anything is sent', () => {
  const { rx, tx, b } = pair(4, 3);
  try {
    assert.throws(() => native().sendeach(tx.fd, 4, b.meta, b.data, b.names, null, 0, new Float64Array(6)), /sendeach: count exceeds meta\/times capacity/);
    assert.throws(() => native().sendeach(tx.fd, 5, b.meta, b.data, b.names, null, 0, new Float64Array(10)), /count exceeds/);
    const meta = b.meta.slice();
    meta[6 + 1] = 9; // message 1's data runs past its 8-byte slot into the slab's end
    meta[6 + 0] = 3 * 8;
    assert.throws(() => native().sendeach(tx.fd, 4, meta, b.data, b.names, null, 0, new Float64Array(8)), /sendeach: message field outside its slab/);
    assert.deepEqual(readAll(rx), []);
    // A failure on the first message is its errno; nothing went out.
    assert.ok(native().sendeach(-1, 1, b.meta, b.data, b.names, null, 0, new Float64Array(4)) < 0);
  } finally {
    rx.close();
    tx.close();
  }
});
