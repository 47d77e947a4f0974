/**
 * Offline pping on two threads (a worker reads and decodes, this thread runs the rules) must give
 * the very events of one thread: on every recorded fixture; on a generated capture that wraps the
 * ring of slots several times (IPv4 and IPv6, TCP with and without the timestamp option, ICMP echo,
 * frames that give no flow), as pcap and as pcapng. A file that
 * turns bad after good packets ends both ways with the same events and the same error; stop()
 * ends a run as interrupted. Through the CLI, a file big enough takes the worker's bundle.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PpingEvent } from '../../src/pping/events.js';
import type { MatcherOptions } from '../../src/pping/matcher.js';
import { type OfflineOptions, runOffline } from '../../src/pping/run.js';
import { THREAD_MIN_BYTES } from '../../src/pping/reader-thread.js';
import { eth, icmp, ipv4, ipv6, tcpSeg, udp, v6 } from '../helpers/bytes.js';
import { epb, idb, pcap, type Rec, shb } from '../helpers/capture.js';
import { CLI, ROOT } from '../helpers/lab.js';

const dir = mkdtempSync(join(tmpdir(), 'pathlens-thread-'));
const FIX = join(ROOT, 'test', 'fixtures');

interface Outcome {
  events: string[];
  error: string | null;
}

async function run(path: string, o: Partial<MatcherOptions>, oo: OfflineOptions): Promise<Outcome> {
  const events: string[] = [];
  try {
    await runOffline(path, o, { event: (e: PpingEvent) => events.push(JSON.stringify(e)) }, oo).done;
    return { events, error: null };
  } catch (e) {
    return { events, error: e instanceof Error ? `${(e as { code?: string }).code ?? e.name}: ${e.message}` : String(e) };
  }
}

/** One thread, then two: the same outcome. */
async function same(path: string, o: Partial<MatcherOptions>): Promise<Outcome> {
  const one = await run(path, o, { thread: 'off' });
  const two = await run(path, o, { thread: 'on' });
  assert.equal(two.error, one.error, `${path}: the same error`);
  assert.equal(two.events.length, one.events.length, `${path}: as many events`);
  assert.deepEqual(two.events, one.events, `${path}: the same events`);
  return one;
}

test('recorded fixtures: two threads give the events of one', async () => {
  const cases: [string, Partial<MatcherOptions>][] = [
    ['epping/fixA-r0.pcap', { tcp: true, icmp: true, rateLimitNs: 0 }],
    ['epping/fixB-r100.pcap', { tcp: true, icmp: true, rateLimitNs: 100e6 }],
    ['dns/queries.pcap', { tcp: false, dns: true, rateLimitNs: 0 }],
    ['quic/spin.pcap', { tcp: false, quicPorts: [4433] }],
    ['quic/rebind.pcap', { tcp: false, quicPorts: [4433], rateLimitNs: 0 }],
    ['seqack/no-timestamps.pcap', { tcp: true, rateLimitNs: 0, seqAck: true }],
  ];
  for (const [file, o] of cases) {
    const one = await same(join(FIX, file), o);
    assert.equal(one.error, null);
    assert.ok(one.events.some((e) => e.includes('"type":"rtt"')), `${file}: samples to compare`);
  }
});

const A4 = (f: number) => [10, 1, f >> 8, f & 0xff];
const B4 = [10, 2, 0, 1];
const A6 = (f: number) => v6(`fd00::1:${f.toString(16)}`);
const B6 = v6('fd00::2:1');

/** Packet i of a generated mix: data and ACKs of 300 TCP flows (one in five IPv6), echoes, ARP, UDP. */
function frame(i: number): number[] {
  const f = (i >> 1) % 300;
  const ack = (i & 1) === 1;
  if (i % 97 === 0) {
    const reply = i % 194 === 0;
    const body = icmp(reply ? 0 : 8, 0, [0, 7, (i >> 8) & 0xff, i & 0xff], [1, 2, 3, 4]);
    return eth(0x0800, [...ipv4(reply ? B4 : A4(f), reply ? A4(f) : B4, 1, body.length, 64), ...body]);
  }
  if (i % 101 === 0) return eth(0x0806, new Array(28).fill(0));
  if (i % 113 === 0) {
    const u = udp(5000, 6000, [1, 2, 3]);
    return eth(0x0800, [...ipv4(A4(f), B4, 17, u.length, 64), ...u]);
  }
  const tsval = 1000 + (i >> 3);
  // Flows without the timestamp option (SEQ/ACK's), and a few segments with other options first.
  const ts: [number, number] | undefined = f % 7 === 3 ? undefined : ack ? [7, tsval] : [tsval, 7];
  const seg = tcpSeg({ sport: ack ? 443 : 10000 + f, dport: ack ? 10000 + f : 443, seq: 1 + (i >> 1) * 100, ack: 1, flags: ack ? 0x10 : 0x18, ts, payload: ack ? 0 : 100 });
  if (i % 89 === 5) {
    seg.splice(20, 0, 2, 4, 5, 0xb4); // MSS 1460
    seg[12] += 1 << 4;
  }
  if (f % 5 === 0) return eth(0x86dd, [...ipv6(ack ? B6 : A6(f), ack ? A6(f) : B6, 6, seg.length, 64), ...seg]);
  return eth(0x0800, [...ipv4(ack ? B4 : A4(f), ack ? A4(f) : B4, 6, seg.length, 64), ...seg]);
}

const N = 40_000;
const recs: Rec[] = [];
for (let i = 0; i < N; i++) recs.push({ sec: 1_700_000_000 + Math.floor((i * 37) / 1e6), frac: (i * 37) % 1e6, data: frame(i) });
const bigPcap = pcap(recs);

test('a generated capture that wraps the ring: two threads give the events of one, pcap and pcapng', async () => {
  const path = join(dir, 'mix.pcap');
  writeFileSync(path, bigPcap);
  const o = { tcp: true, icmp: true, rateLimitNs: 0, seqAck: true };
  const one = await same(path, o);
  assert.equal(one.error, null);
  const done = JSON.parse(one.events.at(-1)!) as { packets: number; skipped: { not_ip: number; other_protocol: number }; rtt_events: number };
  assert.equal(done.packets, N);
  assert.ok(done.skipped.not_ip > 0 && done.skipped.other_protocol > 0, 'frames that give no flow are counted the same way');
  assert.ok(done.rtt_events > 10_000, `samples: ${done.rtt_events}`);

  // pcapng: two Ethernet interfaces, packets alternating between them.
  const le = true;
  const ng = [...shb(le), ...idb(1, le), ...idb(1, le)];
  recs.forEach((r, i) => ng.push(...epb(i & 1, BigInt(r.sec) * 1_000_000n + BigInt(r.frac), r.data, le)));
  const ngPath = join(dir, 'mix.pcapng');
  writeFileSync(ngPath, Uint8Array.from(ng));
  const ngOne = await same(ngPath, o);
  assert.deepEqual(ngOne.events.slice(1), one.events.slice(1).map((e) => e.replace('mix.pcap', 'mix.pcapng')), 'pcapng gives what pcap gives');
});

test('Linux cooked (SLL2) with the direction of each packet, big-endian and in nanoseconds: two threads give the events of one', async () => {
  // The same packets behind an SLL2 header instead of Ethernet, data outgoing and ACKs incoming:
  // the worker's generic decoding and its direction from the link layer.
  const sll: Rec[] = recs.map((r, i) => {
    const et = (r.data[12] << 8) | r.data[13];
    const out = i % 3 !== 1 ? 4 : 0; // PACKET_OUTGOING or PACKET_HOST
    const head = [et >> 8, et & 0xff, 0, 0, 0, 0, 0, 2, 0, 1, out, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    return { sec: r.sec, frac: r.frac * 1000 + (i % 1000), data: [...head, ...r.data.slice(14)] };
  });
  const path = join(dir, 'mix-sll2.pcap');
  writeFileSync(path, pcap(sll, { le: false, ns: true, linktype: 276 }));
  const one = await same(path, { tcp: true, icmp: true, rateLimitNs: 0 });
  assert.equal(one.error, null);
  const rtts = one.events.filter((e) => e.includes('"type":"rtt"'));
  assert.ok(rtts.some((e) => e.includes('"match_on_egress":true')) && rtts.some((e) => e.includes('"match_on_egress":false')), 'directions from the link layer');
});

test('a capture that turns bad after good packets: the same events, then the same error', async () => {
  const o = { tcp: true, icmp: true, rateLimitNs: 0 };
  const cut = join(dir, 'cut.pcap');
  writeFileSync(cut, bigPcap.subarray(0, bigPcap.length - 40));
  const one = await same(cut, o);
  assert.match(one.error ?? '', /^ERR_PARSE: .*cut\.pcap: record cut short/);
  assert.ok(one.events.length > 1000, 'the packets before the cut went through the rules');

  // pcapng whose third interface has a link type pathlens does not read, used half-way.
  const le = true;
  const ng = [...shb(le), ...idb(1, le)];
  recs.slice(0, 30_000).forEach((r, i) => {
    if (i === 25_000) ng.push(...idb(1, le), ...idb(147, le));
    ng.push(...epb(i === 25_001 ? 2 : 0, BigInt(r.sec) * 1_000_000n + BigInt(r.frac), r.data, le));
  });
  const odd = join(dir, 'odd.pcapng');
  writeFileSync(odd, Uint8Array.from(ng));
  const two = await same(odd, o);
  assert.equal(two.error, `ERR_PARSE: ${odd}: link type 147 is not supported (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback are)`);
});

test('stop() ends a two-thread run as interrupted, before the end of the file', async () => {
  const path = join(dir, 'stop.pcap');
  writeFileSync(path, bigPcap);
  let rtts = 0;
  const h = runOffline(path, { tcp: true, rateLimitNs: 0 }, { event: (e) => e.type === 'rtt' && ++rtts === 1 && h.stop() }, { thread: 'on' });
  const done = await h.done;
  assert.equal(done.reason, 'interrupted');
  assert.ok(done.packets < N, `stopped at ${done.packets} of ${N} packets`);
  const now = runOffline(path, {}, { event: () => {} }, { thread: 'on' });
  now.stop();
  assert.deepEqual([(await now.done).reason, (await now.done).packets], ['interrupted', 0]);
});

test('through the CLI, a big file is read by the bundled worker and prints what one thread prints', () => {
  // Copies of the generated capture one after another in time, past the size that takes two threads.
  const copies = Math.ceil(THREAD_MIN_BYTES / (bigPcap.length - 24)) + 1;
  const parts: Uint8Array[] = [bigPcap];
  for (let k = 1; k < copies; k++) {
    const c = bigPcap.slice(24);
    const dv = new DataView(c.buffer);
    for (let o = 0; o < c.length; o += 16 + dv.getUint32(o + 8, true)) dv.setUint32(o, dv.getUint32(o, true) + k * 100, true);
    parts.push(c);
  }
  const big = join(dir, 'big.pcap');
  writeFileSync(big, Buffer.concat(parts));
  const two = spawnSync(process.execPath, [CLI, 'pping', '-r', big, '-F', 'ppviz'], { encoding: 'utf8', env: { ...process.env, NODE_DEBUG: 'worker' }, maxBuffer: 1 << 28 });
  assert.equal(two.status, 0, two.stderr.slice(-500));
  assert.match(two.stderr, /instantiating Worker\. url: file:\/\/\S+\/dist\/pping-decode\.cjs/, 'the bundled worker read the file');
  // A pipe is read on one thread (it cannot be read twice).
  const one = spawnSync('sh', ['-c', 'cat "$1" | exec "$2" "$3" pping -r /dev/stdin -F ppviz', 'sh', big, process.execPath, CLI], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(one.status, 0, one.stderr);
  assert.ok(one.stdout.length > 100_000, 'samples to compare');
  assert.equal(two.stdout, one.stdout);
});
