/**
 * Per-hop statistics across rounds, against the definitions (mtr's): loss, last/mean/best/worst,
 * the sample standard deviation, jitter as the difference of consecutive RTTs (last, mean, max)
 * and RFC 3550's smoothed interarrival jitter; responders counted and bounded; reset.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { HopEvent, HopReply } from '../../src/trace/events.js';
import { HopStatsTable, MAX_RESPONDERS } from '../../src/trace/stats.js';

function hop(ttl: number, probes: number, rtts: (number | null)[], addr = '10.0.0.1'): HopEvent {
  const replies: HopReply[] = [];
  rtts.forEach((r, i) => {
    if (r !== null) replies.push({ addr, rtt_ms: r, kind: 'time-exceeded', code: 'ttl', index: i });
  });
  return { schema: 'pathlens.trace/1', type: 'hop', t_ms: 0, ttl, probes, replies, no_reply: probes - replies.length, addrs: replies.length ? [addr] : [] };
}

test('one hop over rounds: every figure as defined', () => {
  const t = new HopStatsTable();
  const seq = [10, 12, null, 11, 15];
  for (const r of seq) t.add(hop(1, 1, [r]));
  const s = t.hop(1);
  const got = [10, 12, 11, 15];
  const mean = got.reduce((a, b) => a + b) / got.length;
  const sd = Math.sqrt(got.reduce((a, b) => a + (b - mean) ** 2, 0) / (got.length - 1));
  const diffs = [2, 1, 4]; // |12-10|, |11-12|, |15-11|: a lost round does not break the chain
  let j = 0;
  for (const d of diffs) j += (d - j) / 16;
  assert.deepEqual(
    [s.sent, s.received, s.loss, s.last_ms, s.mean_ms, s.best_ms, s.worst_ms, s.stdev_ms, s.jitter_ms, s.jitter_mean_ms, s.jitter_max_ms, s.jitter_rfc3550_ms],
    [5, 4, 20, 15, mean, 10, 15, Math.round(sd * 1000) / 1000, 4, Math.round((7 / 3) * 1000) / 1000, 4, Math.round(j * 1000) / 1000],
  );
  assert.deepEqual(s.responders, [{ addr: '10.0.0.1', count: 4 }]);
});

test('a silent hop is 100% loss with no RTT figures; reset clears everything', () => {
  const t = new HopStatsTable();
  for (let i = 0; i < 4; i++) t.add(hop(3, 1, [null]));
  const s = t.hop(3);
  assert.deepEqual([s.sent, s.received, s.loss, s.mean_ms, s.stdev_ms, s.jitter_ms, s.responders.length], [4, 0, 100, null, null, null, 0]);
  t.reset();
  assert.deepEqual(t.hops(1), []);
});

test('responders: most replies first, at most MAX_RESPONDERS addresses, the rest counted', () => {
  const t = new HopStatsTable();
  for (let i = 0; i < MAX_RESPONDERS + 5; i++) t.add(hop(2, 1, [1], `10.0.${i}.1`));
  t.add(hop(2, 1, [1], '10.0.0.1'));
  const s = t.hop(2);
  assert.equal(s.responders.length, MAX_RESPONDERS);
  assert.deepEqual(s.responders[0], { addr: '10.0.0.1', count: 2 });
  assert.equal(s.other_responders, 5);
});

test('property: mean, sample deviation and loss equal their direct computation for any RTT sequence', () => {
  fc.assert(
    fc.property(fc.array(fc.option(fc.double({ min: 0.001, max: 5000, noNaN: true }), { nil: null }), { minLength: 1, maxLength: 200 }), (seq) => {
      const t = new HopStatsTable();
      for (const r of seq) t.add(hop(1, 1, [r]));
      const s = t.hop(1);
      const got = seq.filter((x): x is number => x !== null);
      assert.equal(s.sent, seq.length);
      assert.equal(s.loss, Math.round(((seq.length - got.length) / seq.length) * 100 * 1000) / 1000);
      if (got.length === 0) return;
      const mean = got.reduce((a, b) => a + b) / got.length;
      assert.ok(Math.abs(s.mean_ms! - mean) <= 0.0011 + mean * 1e-12);
      const sd = got.length > 1 ? Math.sqrt(got.reduce((a, b) => a + (b - mean) ** 2, 0) / (got.length - 1)) : 0;
      assert.ok(Math.abs(s.stdev_ms! - sd) <= 0.0011 + sd * 1e-9, `${s.stdev_ms} vs ${sd}`);
      assert.equal(s.best_ms, Math.round(Math.min(...got) * 1000) / 1000);
      assert.equal(s.worst_ms, Math.round(Math.max(...got) * 1000) / 1000);
    }),
  );
});
