/**
 * Per-hop statistics across rounds, against the definitions (mtr's): loss, last/mean/best/worst,
 * the sample standard deviation, jitter as the difference of consecutive RTTs (last, mean, max)
 * and RFC 3550's smoothed interarrival jitter; responders counted and bounded; reset.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { HopEvent, HopReply } from '../../src/trace/events.js';
import { HopStatsTable, MAX_RESPONDERS } from '../../src/path/stats.js';
import { MIN_PROBES, classifyLoss } from '../../src/path/verdict.js';

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

test('loss verdicts: replies limited at a middle hop, real loss from a hop on, the last hop unknown, none', () => {
  const t = new HopStatsTable('10.0.4.1');
  for (let round = 0; round < 30; round++) {
    t.add(hop(1, 1, [1]));
    t.add(hop(2, 1, [round % 2 ? 2 : null], '10.0.2.1')); // half its replies: rate-limited
    t.add(hop(3, 1, [round % 3 === 0 ? null : 3], '10.0.3.1')); // a third lost ...
    t.add(hop(4, 1, [round % 3 === 0 ? null : 4], '10.0.4.1')); // ... and the same onwards
  }
  const [h1, h2, h3, h4] = t.hops(1);
  assert.deepEqual([h1.loss_verdict, h1.loss_evidence], ['none', null]);
  assert.equal(h2.loss_verdict, 'onward', 'the best later hop loses a third: 50 % vs 33 % is no proof of rate limiting');
  assert.equal(h3.loss_verdict, 'onward');
  assert.deepEqual(h3.loss_evidence, { ttl: 4, loss: 33.333, sent: 30 });
  assert.deepEqual([h4.loss_verdict, h4.loss_evidence], ['unknown', null]);
  const u = new HopStatsTable('10.0.4.1');
  for (let round = 0; round < 30; round++) {
    u.add(hop(1, 1, [1]));
    u.add(hop(2, 1, [round % 2 ? 2 : null], '10.0.2.1'));
    u.add(hop(3, 1, [3], '10.0.3.1'));
  }
  const [, r2] = u.hops(1);
  assert.equal(r2.loss_verdict, 'rate-limited');
  assert.deepEqual(r2.loss_evidence, { ttl: 3, loss: 0, sent: 30 });
});

test('property: a hop is never called rate-limited unless a later hop loses less; unknown below MIN_PROBES', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 1, noNaN: true })), { minLength: 1, maxLength: 8 }), (spec) => {
      const hops = spec.map(([sent, p], i) => {
        const received = Math.round(sent * p);
        return { ttl: i + 1, sent, received, loss: Math.round(((sent - received) / sent) * 100000) / 1000 } as Parameters<typeof classifyLoss>[0][number];
      });
      classifyLoss(hops);
      for (const h of hops) {
        if (h.received === h.sent) assert.equal(h.loss_verdict, 'none');
        if (h.loss_verdict === 'rate-limited') {
          const e = h.loss_evidence!;
          assert.ok(e.loss < h.loss && e.ttl > h.ttl);
          assert.ok(h.sent >= MIN_PROBES && e.sent >= MIN_PROBES);
        }
        if (h.loss_verdict === 'onward') assert.ok(h.loss_evidence!.loss > 0);
      }
    }),
  );
});

test('ECMP branches: each responding address with its own flows and figures, lost probes on the branch their flow last reached', () => {
  const t = new HopStatsTable();
  for (let round = 0; round < 10; round++) {
    // Flows 0 and 2 reach A (never lost); flows 1 and 3 reach B, which loses flow 3's probe on odd rounds.
    const replies: HopReply[] = [
      { addr: '10.0.1.1', rtt_ms: 1, kind: 'time-exceeded', code: 'ttl', index: 0, flow: 0 },
      { addr: '10.0.1.2', rtt_ms: 2, kind: 'time-exceeded', code: 'ttl', index: 1, flow: 1 },
      { addr: '10.0.1.1', rtt_ms: 1, kind: 'time-exceeded', code: 'ttl', index: 2, flow: 2 },
    ];
    const lost = round % 2 === 1 ? [3] : [];
    if (!lost.length) replies.push({ addr: '10.0.1.2', rtt_ms: 2, kind: 'time-exceeded', code: 'ttl', index: 3, flow: 3 });
    t.add({ ttl: 1, probes: 4, replies, no_reply_flows: lost });
  }
  const h = t.hop(1);
  assert.equal(h.loss, 12.5);
  assert.deepEqual(
    h.branches!.map((b) => [b.addr, b.flows, b.sent, b.received, b.loss]),
    [
      ['10.0.1.1', [0, 2], 20, 20, 0],
      ['10.0.1.2', [1, 3], 20, 15, 25],
    ],
  );
});

test('path MTU per hop: the smallest next-hop MTU reported before it', () => {
  const t = new HopStatsTable();
  for (const ttl of [1, 2, 3]) t.add(hop(ttl, 1, [ttl]));
  t.addMtu(0, 1500);
  t.addMtu(2, 1400);
  assert.deepEqual(t.hops(1).map((h) => h.pmtu), [1500, 1500, 1400]);
});
