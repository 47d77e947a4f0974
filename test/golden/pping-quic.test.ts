/**
 * `pathlens pping --quic` against tshark on a real QUIC connection (test/fixtures/quic: aioquic
 * endpoints, which spin the latency bit, over IPv4 and IPv6 in a lab with 5 ms of path RTT and
 * 1 % loss; tshark's per-packet reading recorded beside it). TShark decodes every QUIC packet's
 * header form and spin bit but times nothing, so the edges come from its reading: a change of the
 * bit in one direction, and every edge that follows an edge of the other direction is a sample of
 * the time between the two. pathlens must give exactly those samples (within 50 µs), no others.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Decoder, LINKTYPE_RAW, PacketInfo, QUIC_LONG, QUIC_SHORT, SKIP_PROTO } from '../../src/pping/decode.js';
import type { PpingDoneEvent, RttEvent } from '../../src/pping/events.js';
import type { MatcherOptions } from '../../src/pping/matcher.js';
import { runOffline } from '../../src/pping/run.js';
import { spawnSync } from 'node:child_process';
import { CLI, ROOT } from '../helpers/lab.js';
import { ppingEvents } from '../helpers/pping-schema.js';
import { ipv4, udp } from '../helpers/bytes.js';

const DIR = join(ROOT, 'test', 'fixtures', 'quic');
const PCAP = join(DIR, 'spin.pcap');
/** tshark's reading of a capture (README.md); `conn` is quic.connection.number, where recorded. */
type Row = { n: number; us: number; src: string; sport: string; dst: string; dport: string; form: string; spin: string; conn: string };
const tsv = (file: string): Row[] =>
  readFileSync(join(DIR, file), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split('\t'))
    .map(([n, time, s4, s6, sport, d4, d6, dport, form, spin, conn]) => ({ n: +n, us: Math.round(+time * 1e6), src: s4 || s6, sport, dst: d4 || d6, dport, form, spin, conn: (conn ?? '').split(',')[0] }));
const rows = tsv('tshark-frames.tsv');

/** A direction of a connection: by its addresses and ports (a UDP flow). */
const byTuple = (r: Row) => ({ dir: `${r.src}/${r.sport}>${r.dst}/${r.dport}`, rev: `${r.dst}/${r.dport}>${r.src}/${r.sport}` });
/** ... or by the QUIC connection tshark links the packet to by its connection ids, and which end sent it. */
const byConnection = (r: Row) => ({ dir: `${r.conn}/${r.sport === '4433' ? 'server' : 'client'}`, rev: `${r.conn}/${r.sport === '4433' ? 'client' : 'server'}` });

/** tshark's edges, and the samples they make: [frame time µs, sender, µs since the other direction's edge]. */
function reference(list: Row[] = rows, dirOf: (r: Row) => { dir: string; rev: string } = byTuple): { edges: number; samples: Map<string, number> } {
  const last = new Map<string, string>();
  const edgeAt = new Map<string, number>();
  const samples = new Map<string, number>();
  let edges = 0;
  for (const r of list) {
    if (r.spin === '') continue; // no short header in the datagram
    const { dir, rev } = dirOf(r);
    const bit = r.spin.split(',').at(-1)!;
    const was = last.get(dir);
    last.set(dir, bit);
    if (was === undefined || was === bit) continue;
    edges++;
    const other = edgeAt.get(rev);
    if (other !== undefined && other > (edgeAt.get(dir) ?? 0)) samples.set(`${r.us}/${r.src}`, r.us - other);
    edgeAt.set(dir, r.us);
  }
  return { edges, samples };
}

async function run(o: Partial<MatcherOptions>, pcap = PCAP): Promise<{ rtts: RttEvent[]; done: PpingDoneEvent }> {
  const rtts: RttEvent[] = [];
  const done = await runOffline(pcap, { tcp: false, ...o }, { event: (e) => e.type === 'rtt' && rtts.push(e) }).done;
  return { rtts, done };
}

const key = (e: RttEvent) => `${Math.round((e.sec * 1e9 + e.nsec) / 1000)}/${e.src_ip}`;

test("pping --quic-ports 4433: every sample is an edge-to-edge time of tshark's spin bits, and every such time is a sample", async () => {
  const ref = reference();
  const { rtts } = await run({ quicPorts: [4433], rateLimitNs: 0 });
  assert.ok(ref.samples.size >= 400, `edges in the capture: ${ref.edges}, samples: ${ref.samples.size}`);
  assert.ok(rtts.every((e) => e.match === 'quic-spin' && e.protocol === 'UDP'));
  assert.ok(rtts.some((e) => e.src_ip.includes(':')) && rtts.some((e) => !e.src_ip.includes(':')), 'IPv4 and IPv6');
  let worst = 0;
  for (const e of rtts) {
    const us = ref.samples.get(key(e));
    assert.ok(us !== undefined, `a sample at ${e.sec}.${e.nsec} from ${e.src_ip} that is no edge after an edge`);
    worst = Math.max(worst, Math.abs(us * 1000 - e.rtt));
  }
  assert.equal(rtts.length, ref.samples.size, 'every edge after an edge of the other direction is a sample');
  assert.ok(worst <= 50_000, `largest difference: ${worst} ns`);
  // The server's samples span the path (5 ms of delay in the lab, and whatever the endpoints
  // wait); the client's the capture point's own host.
  const server = rtts.filter((e) => e.src_port === 4433).map((e) => e.rtt);
  const client = rtts.filter((e) => e.src_port !== 4433).map((e) => e.rtt);
  assert.ok(Math.min(...server) >= 5e6, `least server-side sample ${Math.min(...server)} ns`);
  assert.ok(client.length > 0 && Math.min(...client) < 5e6);
  process.stdout.write(`# ${rtts.length} samples from ${ref.edges} edges, all tshark's (largest difference ${worst} ns); server side from ${(Math.min(...server) / 1e6).toFixed(3)} ms\n`);
});

test('a NAT rebinding (the client on a new port, the same connection ids): the flow follows its connection, as tshark links it, and no sample is lost', async () => {
  const list = tsv('rebind-tshark.tsv');
  const ref = reference(list, byConnection);
  const pcap = join(DIR, 'rebind.pcap');
  const { rtts, done } = await run({ quicPorts: [4433], rateLimitNs: 0 }, pcap);
  let worst = 0;
  for (const e of rtts) {
    const us = ref.samples.get(key(e));
    assert.ok(us !== undefined, `a sample at ${e.sec}.${e.nsec} from ${e.src_ip}:${e.src_port} that is no edge after an edge of the connection`);
    worst = Math.max(worst, Math.abs(us * 1000 - e.rtt));
  }
  assert.equal(rtts.length, ref.samples.size, "every edge after an edge of the connection's other end is a sample");
  assert.ok(worst <= 50_000, `largest difference: ${worst} ns`);
  // Two connections (IPv4, IPv6), each on three client ports in turn, two moves each.
  assert.equal(done.flows_opened, 2);
  assert.equal(done.quic_moved, 4);
  const ports = new Set(rtts.filter((e) => e.src_port !== 4433).map((e) => `${e.src_ip}/${e.src_port}`));
  assert.equal(ports.size, 6, `samples from each client port: ${[...ports].join(' ')}`);
  // Flows by addresses and ports would lose the first edges on each new port.
  const byFlow = reference(list, byTuple);
  assert.ok(byFlow.samples.size < ref.samples.size);
  process.stdout.write(`# rebinding: ${rtts.length} samples, all tshark's by connection (largest difference ${worst} ns); by addresses and ports there would be ${byFlow.samples.size}\n`);
});

test('pping --quic: the default rate limit keeps a subset of those samples; without --quic, UDP is another protocol', async () => {
  const ref = reference();
  const { rtts } = await run({ quicPorts: [4433] });
  assert.ok(rtts.length > 50 && rtts.length < ref.samples.size);
  assert.ok(rtts.every((e) => ref.samples.has(key(e))));
  const off = await run({ icmp: true });
  assert.equal(off.rtts.length, 0);
  assert.equal(off.done.skipped.other_protocol, off.done.packets);
  const elsewhere = await run({ quicPorts: [443, 8443] });
  assert.equal(elsewhere.rtts.length, 0, 'not on a QUIC port: nothing');
});

test('the CLI: --quic-ports gives pathlens.pping/1 events the schema accepts (match quic-spin, UDP); bad port lists are one line', () => {
  const r = spawnSync(process.execPath, [CLI, 'pping', '-r', PCAP, '--quic-ports', '4433', '-F', 'jsonl'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ev = ppingEvents<{ type: string; match?: string; protocol?: string; protocols?: string[]; rtt_events?: number }>(r.stdout);
  const rtts = ev.filter((e) => e.type === 'rtt');
  assert.ok(rtts.length > 50 && rtts.every((e) => e.match === 'quic-spin' && e.protocol === 'UDP'));
  assert.deepEqual(ev[0].protocols, ['UDP'], 'QUIC alone: no TCP unless asked');
  assert.equal(ev.at(-1)!.rtt_events, rtts.length);
  for (const bad of ['70000', '1,2,3,4,5', '443,443', 'abc']) {
    const b = spawnSync(process.execPath, [CLI, 'pping', '-r', PCAP, '--quic-ports', bad], { encoding: 'utf8' });
    assert.equal(b.status, 2, bad);
    assert.match(b.stderr, /^pathlens: option '--quic-ports <list>' argument '[^']*' is invalid\. [^\n]+\n$/, bad);
  }
});

test("the QUIC decoder: short headers on a QUIC port only, the server by its port, runts skipped; the server's long headers give its id length", () => {
  const dec = new Decoder();
  dec.quicPorts = [443, 4433];
  const p = new PacketInfo();
  const frame = (sport: number, dport: number, first: number, len = 40, head: number[] = [first]) => {
    const u = udp(sport, dport, [...head, ...new Array<number>(Math.max(0, len - head.length)).fill(7)].slice(0, len));
    return Uint8Array.from([...ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, u.length, 64), ...u]);
  };
  const decode = (f: Uint8Array) => dec.decode(f, 0, f.length, LINKTYPE_RAW, 0, p);
  assert.equal(decode(frame(40000, 443, 0x40 | 0x20)), 0);
  assert.deepEqual([p.quic, p.spin, p.fromServer], [1, 1, false]);
  assert.equal(decode(frame(443, 40000, 0x40)), 0);
  assert.deepEqual([p.quic, p.spin, p.fromServer], [1, 0, true]);
  assert.equal(decode(frame(4433, 443, 0x60)), 0);
  assert.equal(p.fromServer, false, 'both ports QUIC ports: the lower is the server');
  assert.equal(decode(frame(40000, 443, 0xc0)), SKIP_PROTO, "a long header from the client (its ids are the client's and the server's first guess)");
  const long = (version: number[], scid: number[]) => [0xc0, ...version, 8, 1, 2, 3, 4, 5, 6, 7, 8, scid.length, ...scid];
  assert.equal(decode(frame(443, 40000, 0xc0, 40, long([0, 0, 0, 1], [9, 9, 9, 9, 9, 9]))), 0, "the server's long header");
  assert.deepEqual([p.quic, p.cidLen, p.fromServer], [QUIC_LONG, 6, true], 'the length of the id the server chose');
  assert.equal(decode(frame(443, 40000, 0xc0, 40, long([0, 0, 0, 0], [9, 9, 9, 9]))), SKIP_PROTO, 'version negotiation');
  assert.equal(decode(frame(443, 40000, 0xc0, 40, long([0, 0, 0, 1], new Array<number>(21).fill(9)))), SKIP_PROTO, 'an id longer than version 1 allows');
  assert.equal(decode(frame(443, 40000, 0xc0, 14, long([0, 0, 0, 1], [9]))), SKIP_PROTO, 'cut before its source id length');
  assert.equal(decode(frame(443, 40000, 0xc0, 15, long([0, 0, 0, 1], [9]))), 0, 'no more is needed');
  assert.equal(decode(frame(40000, 443, 0x40, 40, [0x40, 0xaa, 0xbb])), 0);
  assert.deepEqual([p.quic, p.cidLen, p.bytes[p.cidOff], p.bytes[p.cidOff + 1]], [QUIC_SHORT, 20, 0xaa, 0xbb], "a short header: where the destination id starts, and up to 20 bytes of it");
  assert.equal(decode(frame(40000, 443, 0x20)), SKIP_PROTO, 'the fixed bit clear');
  assert.equal(decode(frame(40000, 443, 0x40, 20)), SKIP_PROTO, 'too short for a 1-RTT packet');
  assert.equal(decode(frame(40000, 8443, 0x40)), SKIP_PROTO, 'not a QUIC port');
  dec.quicPorts = [];
  assert.equal(decode(frame(40000, 443, 0x40)), SKIP_PROTO, 'QUIC off');
});
