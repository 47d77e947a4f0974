/**
 * Tables that a flood cannot fill against a long-lived flow: echo requests from 1,000,000 spoofed
 * sources (never answered) arrive between the exchanges of one real ICMP flow. One-way directions
 * may hold only half the timestamp table, so the real flow keeps every sample; the refusals are
 * counted; and a crowded flow table lets one-way flows go after 3 s instead of 30, counted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decoder, LINKTYPE_ETHERNET, PacketInfo } from '../../src/pping/decode.js';
import type { RttEvent } from '../../src/pping/events.js';
import { oneWayLimit } from '../../src/pping/hygiene.js';
import { Matcher } from '../../src/pping/matcher.js';
import { eth, icmp, ipv4 } from '../helpers/bytes.js';

const A = [10, 1, 0, 1];
const B = [10, 2, 0, 9];
const echo = (src: number[], dst: number[], type: number, id: number, seq: number) => {
  const m = icmp(type, 0, [id >> 8, id & 0xff, seq >> 8, seq & 0xff], [1, 2, 3, 4]);
  return Uint8Array.from(eth(0x0800, [...ipv4(src, dst, 1, m.length, 64), ...m]));
};

test('a flood of one-way flows never stops a long-lived flow from being sampled; refusals and early evictions counted', () => {
  const rtts: RttEvent[] = [];
  const m = new Matcher({ tcp: false, icmp: true, rateLimitNs: 0, maxFlows: 1024, maxStamps: 256 }, { event: (e) => e.type === 'rtt' && rtts.push(e) });
  const dec = new Decoder();
  const info = new PacketInfo();
  let t = 1_000_000_000;
  const feed = (f: Uint8Array) => {
    assert.equal(dec.decode(f, 0, f.length, LINKTYPE_ETHERNET, 0, info), 0);
    m.process(info, Math.floor(t / 1e9), t % 1e9, false);
  };
  let spoofed = 0;
  const exchanges = 205;
  for (let s = 1; s <= exchanges; s++) {
    // From the 6th exchange on (the real flow is established by then), 5,000 spoofed requests (new
    // sources, never answered) before each real one: whatever room the last answer made, the
    // flood reaches it first.
    for (let k = 0; s > 5 && k < 5000 && spoofed < 1_000_000; k++, spoofed++) {
      t += 1000;
      feed(echo([11 + (spoofed >> 16), (spoofed >> 8) & 0xff, spoofed & 0xff, 1], B, 8, 0x4000 + (spoofed & 0x3fff), 1));
    }
    feed(echo(A, B, 8, 7, s));
    t += 100_000;
    feed(echo(B, A, 0, 7, s));
    t += 50_000_000; // 50 ms between exchanges: 10 s in all, sweeps once a second of packet time
    if (s % 20 === 0) m.sweep(m.now);
  }
  const real = rtts.filter((e) => e.src_ip === '10.2.0.9');
  assert.ok(m.stats.oneWayRefused > 0, 'the flood reached its half of the timestamp table');
  assert.ok(m.stamps.oneWayCount <= oneWayLimit(256));
  // The first request goes out while the flow is one-way too (it may be refused); after its first
  // reply the flow is two-way and every request is stored.
  assert.ok(real.length >= exchanges - 1, `${real.length} of ${exchanges} exchanges sampled`);
  assert.ok(m.stats.flowTableFull > 0, 'the flood filled the flow table');
  assert.ok(m.stats.flowsEvicted > 0, 'one-way flows went early while the table was crowded');
  // The long-lived flow itself is never evicted: it answers.
  assert.equal(real.at(-1)!.dest_ip, '10.1.0.1');
  assert.equal(spoofed, 1_000_000);
});
