/**
 * When trace's kernel correlation wakes its reader (wakeOf): settled TTLs wake it in pairs when two
 * TTLs are at most half the window, else one by one; never more than two (three held the deep TTLs
 * of a -q 10 -N 64 trace back: 22 % longer on the demo lab).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { wakeOf } from '../../src/probe/bpf-trace.js';

test('wakeOf: the defaults (-q 3, -N 16) wake at every second TTL; small windows and ECMP at every TTL', () => {
  assert.deepEqual(wakeOf(3, 16), { perTtl: 3, batch: 6 });
  assert.deepEqual(wakeOf(3, 12), { perTtl: 3, batch: 6 });
  assert.deepEqual(wakeOf(3, 11), { perTtl: 3, batch: 3 });
  assert.deepEqual(wakeOf(3, 3), { perTtl: 3, batch: 3 });
  assert.deepEqual(wakeOf(3, 1), { perTtl: 3, batch: 3 });
  assert.deepEqual(wakeOf(1, 64), { perTtl: 1, batch: 1 });
  assert.deepEqual(wakeOf(10, 64), { perTtl: 10, batch: 20 });
});

test('wakeOf: one or two whole TTLs, two only within half the window', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 4096 }), (q, n) => {
      const w = wakeOf(q, n);
      assert.equal(w.perTtl, q);
      assert.equal(w.batch % w.perTtl, 0);
      assert.ok(w.batch === w.perTtl || w.batch === 2 * w.perTtl);
      if (q > 1) assert.ok(w.batch === q || w.batch <= n / 2, `${w.batch} of a window of ${n}`);
      else assert.equal(w.batch, 1);
    }),
  );
});
