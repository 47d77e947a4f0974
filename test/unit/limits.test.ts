/** The metrics endpoint's per-client bounds on a virtual clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientLimits, limitsOf } from '../../src/export/limits.js';

test('client limits: a burst, then the rate; each client its own bucket; in-flight bound; Retry-After; idle clients forgotten past the cap', () => {
  let t = 0;
  const l = new ClientLimits({ ...limitsOf(10), inflight: 3, maxClients: 2 }, () => t);
  // A burst of 20 (twice the rate) admitted at once, the 21st refused.
  let admitted = 0;
  for (let i = 0; i < 25; i++) {
    const r = l.admit('a');
    if (r === null) {
      admitted++;
      l.done('a');
    } else assert.equal(r, 'rate');
  }
  assert.equal(admitted, 20);
  assert.equal(l.retryAfter('a'), 1);
  // 10 a second come back: after 0.5 s, 5 more.
  t = 500;
  admitted = 0;
  for (let i = 0; i < 10; i++) if (l.admit('a') === null) (admitted++, l.done('a'));
  assert.equal(admitted, 5);
  // Another client is not held back by the first.
  assert.equal(l.admit('b'), null);
  l.done('b');
  // In flight: three at once, the fourth refused until one is done.
  t = 10_000;
  assert.deepEqual([l.admit('b'), l.admit('b'), l.admit('b'), l.admit('b')], [null, null, null, 'inflight']);
  l.done('b');
  assert.equal(l.admit('b'), null);
  // A third client: the longest-idle one with nothing in flight ('a') is forgotten.
  assert.equal(l.admit('c'), null);
  assert.equal(l.size, 2);
  // No bound at 0.
  const free = new ClientLimits({ ...limitsOf(0), inflight: 1000 }, () => 0);
  for (let i = 0; i < 500; i++) assert.equal(free.admit('x'), null);
});
