/**
 * Per-prefix aggregation and its interval view: prefixes (IPv4 /24, IPv6 /48, other lengths,
 * RFC 5952 text), statistics and histogram buckets of known samples, counter growth per flow
 * (and a reused tuple), the prefix bound ("other"), and intervals that follow event time.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Aggregator, OTHER_PREFIX, RTT_BOUNDS_MS, bucketOf, prefixOf } from '../../src/pping/aggregate.js';
import type { AggregateEvent, PpingEvent, RttEvent } from '../../src/pping/events.js';
import { IntervalView } from '../../src/render/pping-aggregate.js';
import { PpingWriter, standardLine } from '../../src/render/pping-text.js';

const D = { v4Prefix: 24, v6Prefix: 48, maxPrefixes: 1024 };

/** An RTT sample of the end `echoer` (ePPing's orientation: the echoing end is src). */
function rtt(echoer: string, ms: number, sec = 100, o: Partial<RttEvent> = {}): RttEvent {
  return {
    schema: 'pathlens.pping/1',
    type: 'rtt',
    sec,
    nsec: 0,
    src_ip: echoer,
    src_port: 443,
    dest_ip: '10.0.0.1',
    dest_port: 40000,
    protocol: 'TCP',
    rtt: ms * 1e6,
    min_rtt: ms * 1e6,
    sent_packets: 0,
    sent_bytes: 0,
    rec_packets: 0,
    rec_bytes: 0,
    match_on_egress: false,
    match: 'tsopt',
    ...o,
  };
}

test('prefixes: host bits cleared, configurable lengths, RFC 5952 text', () => {
  assert.equal(prefixOf('192.0.2.77', D), '192.0.2.0/24');
  assert.equal(prefixOf('192.0.2.77', { ...D, v4Prefix: 16 }), '192.0.0.0/16');
  assert.equal(prefixOf('192.0.2.77', { ...D, v4Prefix: 32 }), '192.0.2.77/32');
  assert.equal(prefixOf('192.0.2.77', { ...D, v4Prefix: 0 }), '0.0.0.0/0');
  assert.equal(prefixOf('2001:db8:aa:bb::1', D), '2001:db8:aa::/48');
  assert.equal(prefixOf('2001:db8:aa:bb::1', { ...D, v6Prefix: 64 }), '2001:db8:aa:bb::/64');
  assert.equal(prefixOf('2001:db8:0:0:1::5', { ...D, v6Prefix: 80 }), '2001:db8:0:0:1::/80', 'the longest zero run is compressed');
  assert.equal(prefixOf('2001:db8:0:0:1:0:0:1', { ...D, v6Prefix: 128 }), '2001:db8::1:0:0:1/128', 'of two equal runs, the first');
  assert.equal(prefixOf('fd00:706c:0:1::2', D), 'fd00:706c::/48');
  assert.equal(prefixOf('::1', { ...D, v6Prefix: 128 }), '::1/128');
});

test('histogram buckets: upper bounds inclusive, one bucket above the last bound', () => {
  assert.equal(bucketOf(0.05e6), 0);
  assert.equal(bucketOf(0.1e6), 0);
  assert.equal(bucketOf(0.1e6 + 1), 1);
  assert.equal(bucketOf(20e6), RTT_BOUNDS_MS.indexOf(20));
  assert.equal(bucketOf(6000e6), RTT_BOUNDS_MS.length);
});

test('statistics of one interval: count, min, mean, median, p95, max, histogram, flows', () => {
  const a = new Aggregator(D);
  const ms = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
  for (const m of ms) a.add(rtt('192.0.2.9', m));
  a.add(rtt('198.51.100.1', 5, 100, { src_port: 1 }));
  const [x, y] = a.flush(101, 0, 1);
  assert.equal(x.prefix, '192.0.2.0/24');
  assert.equal(x.rtt_count, 10);
  assert.equal(x.flows, 1);
  assert.equal(x.rtt_min, 10e6);
  assert.equal(x.rtt_max, 100e6);
  assert.equal(x.rtt_mean, 55e6);
  assert.equal(x.rtt_p50, 55e6);
  assert.equal(x.rtt_p95, 95.5e6);
  assert.equal(x.quantiles_from, 10);
  const h = new Array(RTT_BOUNDS_MS.length + 1).fill(0);
  h[RTT_BOUNDS_MS.indexOf(10)] = 1;
  h[RTT_BOUNDS_MS.indexOf(20)] = 1;
  h[RTT_BOUNDS_MS.indexOf(50)] = 3;
  h[RTT_BOUNDS_MS.indexOf(100)] = 5;
  assert.deepEqual(x.histogram, h);
  assert.equal(y.prefix, '198.51.100.0/24');
  assert.equal(y.rtt_count, 1);
  assert.deepEqual(a.flush(102, 0, 1), [], 'the next interval starts empty');
});

test('packets and bytes: growth of each flow\'s counters; a smaller value is a new flow', () => {
  const a = new Aggregator(D);
  a.add(rtt('192.0.2.9', 1, 100, { sent_packets: 10, sent_bytes: 1000, rec_packets: 8, rec_bytes: 400 }));
  a.add(rtt('192.0.2.9', 1, 100, { sent_packets: 25, sent_bytes: 2500, rec_packets: 20, rec_bytes: 1000 }));
  let [x] = a.flush(101, 0, 1);
  assert.deepEqual([x.sent_packets, x.sent_bytes, x.rec_packets, x.rec_bytes], [25, 2500, 20, 1000]);
  a.add(rtt('192.0.2.9', 1, 101, { sent_packets: 30, sent_bytes: 3000, rec_packets: 22, rec_bytes: 1100 }));
  [x] = a.flush(102, 0, 1);
  assert.deepEqual([x.sent_packets, x.sent_bytes, x.rec_packets, x.rec_bytes], [5, 500, 2, 100]);
  a.add(rtt('192.0.2.9', 1, 102, { sent_packets: 3, sent_bytes: 300, rec_packets: 2, rec_bytes: 100 }));
  [x] = a.flush(103, 0, 1);
  assert.deepEqual([x.sent_packets, x.rec_packets], [3, 2], 'the tuple was reused: counted from zero');
});

test('the prefix bound: past maxPrefixes, new prefixes are counted as "other"', () => {
  const a = new Aggregator({ ...D, maxPrefixes: 2 });
  for (const ip of ['10.0.1.1', '10.0.2.1', '10.0.3.1', '10.0.4.1', '10.0.1.2']) a.add(rtt(ip, 1));
  const out = a.flush(101, 0, 1).map((e) => [e.prefix, e.rtt_count]);
  assert.deepEqual(out, [
    ['10.0.1.0/24', 2],
    ['10.0.2.0/24', 1],
    [OTHER_PREFIX, 2],
  ]);
});

test('interval view: one batch per interval of event time; flow and RTT events are not passed on', async () => {
  const lines: string[] = [];
  const sinkStream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const w = new PpingWriter('jsonl', sinkStream, null);
  const v = new IntervalView(new Aggregator(D), 2, w);
  const ev: PpingEvent[] = [
    { schema: 'pathlens.pping/1', type: 'start', sec: 100, nsec: 0, version: 'x', source: 'pcap', input: 'f', protocols: ['TCP'], rate_limit_ms: 100, rtt_rate: null },
    rtt('192.0.2.1', 10, 100),
    rtt('192.0.2.1', 12, 101),
    { schema: 'pathlens.pping/1', type: 'flow', sec: 101, nsec: 0, src_ip: '10.0.0.1', src_port: 1, dest_ip: '192.0.2.1', dest_port: 2, protocol: 'TCP', flow_event: 'opening', reason: 'SYN', triggered_by: 'src', bidirectional: true },
    rtt('192.0.2.1', 14, 102),
    rtt('192.0.2.1', 16, 107),
  ];
  for (const e of ev) v.event(e);
  v.event({ schema: 'pathlens.pping/1', type: 'done', sec: 107, nsec: 500, reason: 'end-of-file', packets: 0, skipped: { not_ip: 0, other_protocol: 0, malformed: 0, fragment: 0 }, considered: 0, rtt_events: 4, flows_opened: 0, timestamps_expired: 0, flow_table_full: 0, timestamp_table_full: 0, retransmit_skipped: 0, one_way_refused: 0, flows_evicted: 0, burst_stamps: 0, one_way_flows: 0, quic_moved: 0, lost: 0 });
  await w.end();
  const parsed = lines.map((l) => JSON.parse(l) as AggregateEvent & { timestamp: number });
  assert.deepEqual(
    parsed.map((e) => e.type),
    ['start', 'aggregate', 'aggregate', 'aggregate', 'done'],
  );
  const aggs = parsed.filter((e) => e.type === 'aggregate');
  assert.deepEqual(
    aggs.map((e) => [e.rtt_count, e.rtt_min! / 1e6, e.interval_s]),
    [
      [2, 10, 2],
      [1, 14, 2],
      [1, 16, 2],
    ],
  );
  assert.deepEqual(
    aggs.map((e) => String(e.timestamp)),
    ['102000000000', '104000000000', '107000000500'],
  );
});

test('one-way flows: counted toward the silent end\'s prefix, with or without RTTs there; ePPing\'s formats leave their events out', async () => {
  const a = new Aggregator(D);
  const flow = (src: string, bidirectional: boolean): PpingEvent => ({ schema: 'pathlens.pping/1', type: 'flow', sec: 100, nsec: 0, src_ip: src, src_port: 80, dest_ip: '10.9.9.9', dest_port: 40000, protocol: 'TCP', flow_event: 'closing', reason: 'flow timeout', triggered_by: 'garbage collection', bidirectional });
  a.add(rtt('192.0.2.1', 10, 100));
  for (const e of [flow('192.0.2.7', false), flow('198.51.100.3', false), flow('198.51.100.4', false), flow('192.0.2.1', true)]) if (e.type === 'flow') a.flow(e);
  const out = a.flush(101, 0, 1);
  assert.deepEqual(
    out.map((e) => [e.prefix, e.rtt_count, e.one_way_flows, e.rtt_min]),
    [
      ['192.0.2.0/24', 1, 1, 10e6],
      ['198.51.100.0/24', 0, 2, null],
    ],
  );
  assert.match(standardLine(out[1]), /198\.51\.100\.0\/24: no RTTs; sent 0 pkts 0\.0 kB, received 0 pkts 0\.0 kB; 2 one-way flows$/);
  for (const format of ['standard', 'json', 'jsonl'] as const) {
    let text = '';
    const sink = new Writable({
      write(chunk, _enc, cb) {
        text += String(chunk);
        cb();
      },
    });
    const w = new PpingWriter(format, sink, null);
    w.event(flow('192.0.2.7', false));
    w.event(flow('192.0.2.8', true));
    await w.end();
    assert.equal(text.includes('192.0.2.7'), format === 'jsonl', `${format}: the one-way flow's event ${format === 'jsonl' ? 'written' : 'left out'}`);
    assert.ok(text.includes('192.0.2.8'), `${format}: the answered flow's closing written`);
  }
});
