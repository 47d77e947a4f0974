/**
 * `pathlens pping --dns` against tshark on real DNS traffic (test/fixtures/dns: queries over IPv4
 * and IPv6 in a lab with loss and duplicated responses, tshark's output recorded beside it): every
 * sample is tshark's dns.time for the same response (within 50 µs); the responses tshark times and
 * pathlens does not are exactly those to queries sent more than once, each counted; a duplicated
 * response gives no second sample. Without --dns, UDP is another protocol, as in ePPing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { dnsIdOf, DNS_QUERY, DNS_RESPONSE } from '../../src/pping/decode.js';
import type { PpingDoneEvent, RttEvent } from '../../src/pping/events.js';
import { runOffline } from '../../src/pping/run.js';
import { ROOT } from '../helpers/lab.js';

const DIR = join(ROOT, 'test', 'fixtures', 'dns');
const PCAP = join(DIR, 'queries.pcap');
const tsv = (file: string) =>
  readFileSync(join(DIR, file), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split('\t'));

/** tshark's frames: sender, DNS id, query or response, the name asked. */
const frames = tsv('tshark-frames.tsv').map(([n, ip4, ip6, _port, id, response, name]) => ({ n: +n, src: ip4 || ip6, id, response: response === '1', name }));
/** tshark's dns.time: the response's frame and time, its sender, the RTT, the query it answers. */
const times = tsv('tshark-dns-time.tsv').map(([n, time, ip4, ip6, _port, id, rtt, query]) => ({ n: +n, us: Math.round(+time * 1e6), src: ip4 || ip6, id, rttNs: +rtt * 1e9, query: +query }));

async function run(dns: boolean): Promise<{ rtts: RttEvent[]; done: PpingDoneEvent }> {
  const rtts: RttEvent[] = [];
  const done = await runOffline(PCAP, { tcp: false, dns, rateLimitNs: 0 }, { event: (e) => e.type === 'rtt' && rtts.push(e) }).done;
  return { rtts, done };
}

test("pping --dns: every sample is tshark's dns.time; responses to queries sent again give none, and are counted", async () => {
  const { rtts, done } = await run(true);
  assert.ok(rtts.length >= 90, `samples: ${rtts.length}`);
  assert.ok(rtts.every((e) => e.match === 'dns' && e.protocol === 'UDP' && e.src_port === 53));
  assert.ok(rtts.some((e) => e.src_ip.includes(':')) && rtts.some((e) => !e.src_ip.includes(':')), 'IPv4 and IPv6');
  const byResponse = new Map(times.map((t) => [`${t.us}/${t.src}`, t]));
  const used = new Set<number>();
  let worst = 0;
  for (const e of rtts) {
    const t = byResponse.get(`${Math.round((e.sec * 1e9 + e.nsec) / 1000)}/${e.src_ip}`);
    assert.ok(t, `a sample at ${e.sec}.${e.nsec} from ${e.src_ip} that tshark has no dns.time for`);
    assert.ok(!used.has(t.n), 'one sample per response');
    worst = Math.max(worst, Math.abs(t.rttNs - e.rtt));
    used.add(t.n);
  }
  assert.ok(worst <= 50_000, `largest difference from tshark: ${worst} ns`);
  // The others: the query (same id and name, same client) was sent more than once before it.
  const copies = (t: (typeof times)[number]) => {
    const q = frames.find((f) => f.n === t.query)!;
    return frames.filter((f) => !f.response && f.n < t.n && f.id === q.id && f.name === q.name && f.src === q.src).length;
  };
  const rest = times.filter((t) => !used.has(t.n));
  assert.deepEqual(
    rest.filter((t) => copies(t) < 2).map((t) => t.n),
    [],
    'every dns.time without a sample answers a query sent again',
  );
  assert.ok(rest.length > 0, 'the capture has queries sent again');
  assert.equal(done.retransmit_skipped, rest.length, 'each counted in the done event');
  // A duplicated response: tshark marks it and times nothing; pathlens takes no second sample.
  const responses = frames.filter((f) => f.response).length;
  assert.ok(responses > times.length, `duplicated responses in the capture: ${responses - times.length}`);
  process.stdout.write(`# ${rtts.length} samples, all tshark's (largest difference ${worst} ns); ${rest.length} responses to queries sent again, not sampled; ${responses - times.length} duplicated responses\n`);
});

test('without --dns, UDP is another protocol (ePPing\'s rules)', async () => {
  const { rtts, done } = await run(false);
  assert.equal(rtts.length, 0);
  assert.equal(done.skipped.other_protocol, done.packets);
});

test('the DNS identifier: id and question, one question only, QR as the direction says, the name whole', () => {
  const q = (flags: number, qd: number, question: number[]) => Uint8Array.from([0x12, 0x34, flags, 0, 0, qd, 0, 0, 0, 0, 0, 0, ...question]);
  const name = [3, 0x77, 0x77, 0x77, 3, 0x6c, 0x61, 0x62, 0, 0, 1, 0, 1];
  const id = dnsIdOf(q(0x01, 1, name), 0, 12 + name.length, DNS_QUERY);
  assert.equal(id >>> 16, 0x1234);
  assert.equal(dnsIdOf(q(0x81, 1, name), 0, 12 + name.length, DNS_RESPONSE), id, 'a response to it has the same identifier');
  const upper = [3, 0x57, 0x57, 0x57, ...name.slice(4)];
  assert.notEqual(dnsIdOf(q(0x01, 1, upper), 0, 12 + upper.length, DNS_QUERY), id, 'another question, another identifier');
  assert.equal(dnsIdOf(q(0x81, 1, name), 0, 12 + name.length, DNS_QUERY), -1, 'QR set on the way to port 53');
  assert.equal(dnsIdOf(q(0x01, 2, name), 0, 12 + name.length, DNS_QUERY), -1, 'two questions');
  assert.equal(dnsIdOf(q(0x01, 1, name), 0, 12 + name.length - 1, DNS_QUERY), -1, 'the question cut short');
  assert.equal(dnsIdOf(q(0x01, 1, [0xc0, 0x0c, 0, 1, 0, 1]), 0, 18, DNS_QUERY), -1, 'a compressed name');
  assert.equal(dnsIdOf(q(0x01, 1, []), 0, 11, DNS_QUERY), -1, 'shorter than a header');
});
