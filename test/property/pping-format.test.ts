/**
 * The ppviz writer puts RTT lines into its byte block directly; every line must be ppvizLine's,
 * byte for byte, for any times, RTTs, ports and addresses (IPv4 and IPv6). JSONL's RTT events are
 * written field by field: the text must be the generic walk's, for the rules' shape and any other.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { type RttEvent, toJson, toJsonWalk } from '../../src/pping/events.js';
import { g6, g6General, PpingWriter, ppvizLine } from '../../src/render/pping-text.js';

const ip = fc.oneof(fc.ipV4(), fc.ipV6());
const event = fc.record({
  sec: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 2 ** 32 }), fc.constant(1_796_673_715)),
  nsec: fc.integer({ min: 0, max: 999_999_999 }),
  rtt: fc.oneof(fc.integer({ min: 0, max: 1e9 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.double({ min: 0, max: 1e12, noNaN: true })),
  min_rtt: fc.integer({ min: 0, max: 1e12 }),
  src_ip: ip,
  dest_ip: ip,
  src_port: fc.integer({ min: 0, max: 65535 }),
  dest_port: fc.integer({ min: 0, max: 65535 }),
});

test('ppviz: the bytes the writer puts in its block are ppvizLine\'s, line for line', async () => {
  const events: RttEvent[] = fc.sample(fc.array(event, { minLength: 1, maxLength: 3000 }), 1)[0].map((f) => ({
    schema: 'pathlens.pping/1',
    type: 'rtt',
    ...f,
    protocol: 'TCP',
    sent_packets: 1,
    sent_bytes: 1,
    rec_packets: 1,
    rec_bytes: 1,
    match_on_egress: false,
    match: 'tsopt',
  }));
  // Many small runs too (each its own writer): every line checked, also across block boundaries.
  fc.assert(
    fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 20 }), async (list) => {
      const evs = list.map((f) => ({ ...events[0], ...f }));
      assert.equal(await written(evs), evs.map((e) => `${ppvizLine(e)}\n`).join(''));
    }),
    { numRuns: 200 },
  );
  assert.equal(await written(events), events.map((e) => `${ppvizLine(e)}\n`).join(''), `${events.length} lines, over several 64 KiB blocks`);
});

async function written(events: RttEvent[]): Promise<string> {
  let text = '';
  const out = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  const w = new PpingWriter('ppviz', out, null);
  for (const e of events) w.event(e);
  await w.end();
  return text;
}

test('JSONL: an RTT event written field by field is the generic walk\'s text, whatever its values or shape', () => {
  const rtt = fc.record({
    sec: fc.integer({ min: 0, max: 2 ** 33 }),
    nsec: fc.integer({ min: 0, max: 999_999_999 }),
    src_ip: fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()),
    src_port: fc.integer({ min: 0, max: 65535 }),
    dest_ip: fc.oneof(fc.ipV4(), fc.ipV6()),
    dest_port: fc.integer({ min: 0, max: 65535 }),
    protocol: fc.constantFrom('TCP', 'ICMP', 'ICMPv6', 'UDP'),
    rtt: fc.oneof(fc.integer({ min: 0, max: 1e12 }), fc.double()),
    min_rtt: fc.integer({ min: 0, max: 1e12 }),
    sent_packets: fc.oneof(fc.nat(), fc.constant(Number.NaN)),
    sent_bytes: fc.nat(),
    rec_packets: fc.nat(),
    rec_bytes: fc.nat(),
    match_on_egress: fc.boolean(),
    match: fc.constantFrom('tsopt', 'seqack', 'icmp-echo', 'dns', 'quic-spin'),
  });
  fc.assert(
    fc.property(rtt, fc.boolean(), (f, reorder) => {
      // The rules' shape: schema, type, sec, nsec, then the fields in this order.
      const { sec, nsec, ...rest } = f;
      const e = (reorder ? { type: 'rtt', schema: 'pathlens.pping/1', sec, nsec, ...rest } : { schema: 'pathlens.pping/1', type: 'rtt', sec, nsec, ...rest }) as RttEvent;
      assert.equal(toJson(e), toJsonWalk(e));
      JSON.parse(toJson(e));
    }),
    { numRuns: 2000 },
  );
});

test('%.6g: the fast path for ordinary RTTs gives the general path\'s text', () => {
  const ms = fc.oneof(
    fc.double({ min: 0, max: 2e5, noNaN: true }),
    fc.double({ min: 1e-6, max: 1e-3, noNaN: true }),
    fc.integer({ min: 0, max: 1e12 }).map((ns) => ns / 1e6),
    fc.constantFrom(1e-4, 0.0000999995, 99999.95, 99999.9, 99999.949999, 12.5, 0.1, 1, 10, 100),
  );
  fc.assert(
    fc.property(ms, (x) => {
      assert.equal(g6(x), g6General(x));
    }),
    { numRuns: 20000 },
  );
});
