/**
 * BPF timestamps to epoch time: exact, for every value a u64 can hold (splitNs), and the same as
 * the BigInt arithmetic it replaces (EpochClock's path without allocation).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EpochClock, TaiClock, splitNs } from '../../src/bpf/clock.js';

test('splitNs: seconds and nanoseconds of any u64, exactly as BigInt division gives them', () => {
  const out = { sec: 0, nsec: 0 };
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (t) => {
      splitNs(Number(t >> 32n), Number(t & 0xffffffffn), out);
      assert.equal(BigInt(out.sec) * 1_000_000_000n + BigInt(out.nsec), t);
      assert.ok(out.nsec >= 0 && out.nsec < 1e9 && Number.isInteger(out.nsec));
    }),
    { numRuns: 20000 },
  );
  for (const t of [0n, 999_999_999n, 1_000_000_000n, (1n << 64n) - 1n, 1_800_000_000_123_456_789n]) {
    splitNs(Number(t >> 32n), Number(t & 0xffffffffn), out);
    assert.equal(BigInt(out.sec) * 1_000_000_000n + BigInt(out.nsec), t, String(t));
  }
});

test('EpochClock: monotonic ns below 2^53 convert as the exact BigInt sum does, at every second boundary too', () => {
  const c = new EpochClock();
  const off = (c as unknown as { offset: bigint }).offset;
  const out = { sec: 0, nsec: 0 };
  const check = (t: number) => {
    c.epoch(t, out);
    const e = BigInt(t) + off;
    assert.deepEqual([out.sec, out.nsec], [Number(e / 1_000_000_000n), Number(e % 1_000_000_000n)], String(t));
  };
  fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), check), { numRuns: 20000 });
  for (let s = 1; s < 1e7; s *= 7) for (const d of [-1, 0, 1]) check(s * 1e9 + d);
});

test('TaiClock: the TAI offset is whole seconds, and a TAI stamp is the epoch time it names', () => {
  const c = new TaiClock();
  assert.ok(Number.isInteger(c.offsetSec) && c.offsetSec >= 0 && c.offsetSec < 100, `TAI - UTC = ${c.offsetSec} s`);
  const out = { sec: 0, nsec: 0 };
  const t = (1_700_000_000n + BigInt(c.offsetSec)) * 1_000_000_000n + 123n;
  c.epoch(Number(t >> 32n), Number(t & 0xffffffffn), out);
  assert.deepEqual(out, { sec: 1_700_000_000, nsec: 123 });
});
