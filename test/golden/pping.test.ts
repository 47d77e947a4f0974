/**
 * The passive-RTT rules (ePPing's) on crafted packet sequences, decoded from hand-built frames:
 * the first-TSval edge, pure ACKs, wrap-around, reordering, retransmission, rate limits, SYNs,
 * ICMP and ICMPv6 echo, IPv6 extension headers and VLAN tags, flow opening and closing, timeouts
 * and full tables. Every expected RTT is exact (times are integers in ns).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decoder, LINKTYPE_ETHERNET, LINKTYPE_RAW, PacketInfo } from '../../src/pping/decode.js';
import type { FlowEvent, PpingEvent, RttEvent } from '../../src/pping/events.js';
import { Matcher, type MatcherOptions } from '../../src/pping/matcher.js';
import { eth, icmp, ipv4, ipv6, tcpSeg, v6 } from '../helpers/bytes.js';

const A = [10, 0, 0, 1];
const B = [10, 0, 0, 2];
const A6 = v6('fd00::1');
const B6 = v6('fd00::2');
const SYN = 0x02;
const ACK = 0x10;
const FIN = 0x01;
const RST = 0x04;
const PSH = 0x08;
const MS = 1e6;
const T0 = 1_700_000_000;

interface Pkt {
  at: number; // ms since T0
  frame: number[];
  lt?: number;
  egress?: boolean;
}

function tcp4(from: 'A' | 'B', flags: number, ts?: [number, number], payload = 0): number[] {
  const seg = tcpSeg({ sport: from === 'A' ? 40000 : 5001, dport: from === 'A' ? 5001 : 40000, flags, ts, payload });
  return [...ipv4(from === 'A' ? A : B, from === 'A' ? B : A, 6, seg.length, 64), ...seg];
}

function run(pkts: Pkt[], opts: Partial<MatcherOptions> = {}, sweepAt?: number) {
  const events: PpingEvent[] = [];
  const m = new Matcher(opts, { event: (e) => events.push(e) });
  const dec = new Decoder();
  const info = new PacketInfo();
  for (const p of pkts) {
    const b = Uint8Array.from(p.frame);
    assert.equal(dec.decode(b, 0, b.length, p.lt ?? LINKTYPE_RAW, 0, info), 0, `frame at ${p.at} ms decodes`);
    const ns = Math.round(p.at * MS);
    m.process(info, T0 + Math.floor(ns / 1e9), ns % 1e9, p.egress ?? false);
  }
  if (sweepAt !== undefined) m.sweep(sweepAt * MS);
  const rtts = events.filter((e): e is RttEvent => e.type === 'rtt');
  const flows = events.filter((e): e is FlowEvent => e.type === 'flow');
  return { events, rtts, flows, m };
}

const data = (at: number, tsval: number, tsecr = 1) => ({ at, frame: tcp4('A', ACK | PSH, [tsval, tsecr], 100) });
const ackB = (at: number, tsecr: number, tsval = 7) => ({ at, frame: tcp4('B', ACK, [tsval, tsecr]) });

const dataB = (at: number, tsval: number, tsecr: number) => ({ at, frame: tcp4('B', ACK | PSH, [tsval, tsecr], 100) });
const flowRows = (fs: FlowEvent[]) => fs.map((f) => [f.flow_event, f.reason, f.triggered_by, f.src_ip]);

test("a connection's first TSval is the edge to wait for; the next new one is timestamped and its first echo matches", () => {
  const { rtts, flows } = run([data(0, 100), ackB(5, 100), data(20, 101), data(21, 101), ackB(30, 101), ackB(32, 101)]);
  assert.equal(rtts.length, 1, 'TSval 100 (first seen) gives no sample; a repeated TSval and a second echo neither');
  const r = rtts[0];
  assert.deepEqual(
    [r.rtt, r.min_rtt, r.src_ip, r.src_port, r.dest_ip, r.dest_port, r.protocol, r.sec, r.nsec, r.match_on_egress],
    [10 * MS, 10 * MS, '10.0.0.2', 5001, '10.0.0.1', 40000, 'TCP', T0, 30 * MS, false],
    'as ePPing: the flow is the packet that carried the echo (src echoed)',
  );
  assert.deepEqual(
    [r.sent_packets, r.sent_bytes, r.rec_packets, r.rec_bytes],
    [3, 300, 2, 0],
    'counters of the timestamped direction: sent from dest_ip, received from src_ip, payload bytes',
  );
  assert.deepEqual(flowRows(flows), [['opening', 'first observed packet', 'dest', '10.0.0.2']], 'opened at the first reply, named from the replying end');
  assert.deepEqual([flows[0].sec, flows[0].nsec], [T0, 0], "the opening carries the time of the direction's first packet");
});

test('pure ACKs and data-less FINs are never timestamped, and open nothing', () => {
  assert.deepEqual(run([{ at: 0, frame: tcp4('A', ACK, [200, 1]) }, ackB(10, 200)]).events, []);
  const { rtts, flows } = run([
    data(0, 1),
    data(1, 2),
    ackB(6, 2),
    { at: 200, frame: tcp4('A', ACK | FIN, [3, 1]) }, // no data: not timestamped; closes A's direction
    ackB(215, 3),
  ]);
  assert.deepEqual(
    rtts.map((r) => r.rtt),
    [5 * MS],
  );
  assert.deepEqual(flowRows(flows), [
    ['opening', 'first observed packet', 'dest', '10.0.0.2'],
    ['closing', 'FIN', 'dest', '10.0.0.2'],
  ]);
});

test('TSval wrap-around counts as newer; a reordered (older) TSval is not timestamped', () => {
  const { rtts } = run([
    data(0, 0xffffffe0),
    data(1, 0xfffffff0),
    ackB(5, 0xfffffff0),
    data(200, 0x10), // wrapped: newer
    data(400, 0xffffff00), // older than 0x10 (reordered): ignored
    ackB(403, 0xffffff00),
    ackB(410, 0x10),
  ]);
  assert.deepEqual(
    rtts.map((r) => r.rtt),
    [4 * MS, 210 * MS],
  );
});

test('retransmission: the retransmitted segment carries its own TSval, and the echo of it gives the true RTT', () => {
  const { rtts } = run([data(0, 399), data(1, 400), data(300, 500), ackB(310, 500)]);
  assert.deepEqual(
    rtts.map((r) => r.rtt),
    [10 * MS],
    'the ACK echoes the retransmission, not the lost original',
  );
});

test('rate limit: one timestamp per 100 ms per direction by default, every new TSval with 0', () => {
  const seq = [data(0, 999), data(1, 1000), data(50, 1001), ackB(60, 1000), ackB(61, 1001), data(120, 1002), ackB(125, 1002)];
  assert.deepEqual(
    run(seq).rtts.map((r) => r.rtt),
    [59 * MS, 5 * MS],
  );
  assert.deepEqual(
    run(seq, { rateLimitNs: 0 }).rtts.map((r) => r.rtt),
    [59 * MS, 11 * MS, 5 * MS],
  );
});

test("--rtt-rate: the gap between samples follows the flow's RTT once it has one", () => {
  // RTT 10 ms, rate 1: after the first sample, one per 10 ms.
  const seq = [data(0, 1), data(1, 2), ackB(11, 2), data(15, 3), data(22, 4), ackB(30, 3), ackB(31, 4)];
  assert.deepEqual(
    run(seq, { rttRate: 1, rttRateUse: 'min' }).rtts.map((r) => r.rtt),
    [10 * MS, 15 * MS],
    'TSval 4 came 7 ms after TSval 3: under one RTT, not sampled',
  );
});

test('SYN and SYN-ACK: left out by default; with includeSyn they open and are timestamped', () => {
  const hs = [
    { at: 0, frame: tcp4('A', SYN, [50, 0]) },
    { at: 10, frame: tcp4('B', SYN | ACK, [60, 50]) },
    { at: 20, frame: tcp4('A', ACK, [51, 60]) },
  ];
  assert.deepEqual(run(hs).events, [], 'the handshake alone gives nothing');
  const conv = run([...hs, data(30, 52, 60), dataB(40, 61, 52), data(50, 53, 61)]);
  assert.deepEqual(conv.rtts, [], 'each side waits for its first TSval edge');
  assert.deepEqual(
    conv.flows.map((f) => [...flowRows([f])[0], f.nsec / MS]),
    [
      ['opening', 'first observed packet', 'dest', '10.0.0.2', 30],
      ['opening', 'first observed packet', 'dest', '10.0.0.1', 40],
    ],
    'one opening per direction, at its first reply',
  );
  const syn = run(hs, { includeSyn: true });
  assert.deepEqual(
    syn.rtts.map((r) => [r.src_ip, r.rtt]),
    [
      ['10.0.0.2', 10 * MS],
      ['10.0.0.1', 10 * MS],
    ],
  );
  assert.deepEqual(flowRows(syn.flows), [
    ['opening', 'SYN', 'dest', '10.0.0.2'],
    ['opening', 'SYN-ACK', 'dest', '10.0.0.1'],
  ]);
});

test('closing: FIN per direction, RST both ways, flow timeout as garbage collection; closed flows open nothing again', () => {
  const open2 = [data(0, 1), dataB(1, 8, 1), data(2, 2, 8)];
  const fin = run([...open2, { at: 5, frame: tcp4('A', ACK | FIN, [3, 8]) }, { at: 6, frame: tcp4('B', ACK | FIN, [9, 3]) }, { at: 7, frame: tcp4('A', ACK, [4, 9]) }]);
  assert.deepEqual(flowRows(fin.flows), [
    ['opening', 'first observed packet', 'dest', '10.0.0.2'],
    ['opening', 'first observed packet', 'dest', '10.0.0.1'],
    ['closing', 'FIN', 'dest', '10.0.0.2'],
    ['closing', 'FIN', 'dest', '10.0.0.1'],
  ]);
  assert.equal(fin.m.flows.size, 0, 'both directions closed: the flow is gone');
  const rst = run([...open2, { at: 5, frame: tcp4('B', RST | ACK, [9, 2]) }]);
  assert.deepEqual(flowRows(rst.flows).slice(2), [
    ['closing', 'RST', 'dest', '10.0.0.1'],
    ['closing', 'RST', 'src', '10.0.0.2'],
  ]);
  assert.deepEqual(run([{ at: 0, frame: tcp4('B', RST | ACK, [8, 1]) }]).events, [], 'an RST alone opens nothing');
  // Garbage collection: 300 s after a direction's last timestamp (30 s before its first reply).
  const idle = run([data(0, 1), ackB(10, 1)], {}, 301_000);
  assert.deepEqual(
    idle.flows.map((f) => [f.flow_event, f.reason, f.triggered_by, f.src_ip, f.sec - T0]),
    [
      ['opening', 'first observed packet', 'dest', '10.0.0.2', 0],
      ['closing', 'flow timeout', 'garbage collection', '10.0.0.2', 301],
    ],
  );
  assert.equal(run([data(0, 1), ackB(10, 1)], {}, 299_000).flows.length, 1, 'not yet idle long enough');
  const unanswered = run([data(0, 1)], {}, 31_000);
  assert.deepEqual(
    unanswered.flows.map((f) => [f.flow_event, f.reason, f.triggered_by, f.src_ip, f.bidirectional, f.sec - T0]),
    [['closing', 'flow timeout', 'garbage collection', '10.0.0.2', false, 31]],
    'an unanswered flow goes after 30 s, reported once as one-way (named from its silent end)',
  );
  assert.equal(unanswered.m.flows.size, 0);
  assert.equal(unanswered.m.stats.oneWayFlows, 1);
  assert.ok(idle.flows.every((f) => f.bidirectional), 'an answered flow is bidirectional in every event');
  // One direction only, closed by FIN: reported as it goes; a FIN after a reply is ePPing's closing.
  const finOneWay = run([data(0, 1), { at: 5, frame: tcp4('A', FIN | ACK, [2, 0]) }]);
  assert.deepEqual(
    finOneWay.flows.map((f) => [f.flow_event, f.reason, f.triggered_by, f.src_ip, f.bidirectional]),
    [['closing', 'FIN', 'src', '10.0.0.2', false]],
  );
});

test('timestamps expire: an echo after the lifetime matches nothing', () => {
  // RTT 10 ms known: the next timestamp lives max(8 x 10 ms, 1 s) = 1 s.
  const { rtts, m } = run([data(0, 1), data(1, 2), ackB(11, 2), data(200, 3)], {}, 1300);
  assert.equal(rtts.length, 1);
  assert.equal(m.stats.stampsExpired, 1);
});

const req4 = (seq: number) => icmp(8, 0, [0x12, 0x34, seq >> 8, seq & 0xff], [1, 2, 3, 4]);
const rep4 = (seq: number) => icmp(0, 0, [0x12, 0x34, seq >> 8, seq & 0xff], [1, 2, 3, 4]);
const v4 = (from: number[], to: number[], m: number[]) => [...ipv4(from, to, 1, m.length, 64), ...m];

test('ICMP and ICMPv6 echo: id as both ports, sequence as identifier, request/reply', () => {
  const r = run(
    [
      { at: 0, frame: v4(A, B, req4(1)) },
      { at: 7, frame: v4(B, A, rep4(1)) },
      { at: 200, frame: v4(A, B, req4(2)) },
      { at: 204, frame: v4(B, A, rep4(2)) },
      { at: 205, frame: v4(B, A, rep4(2)) }, // duplicate reply
    ],
    { tcp: false, icmp: true },
  );
  assert.deepEqual(
    r.rtts.map((e) => [e.protocol, e.src_ip, e.src_port, e.dest_port, e.rtt, e.sent_packets, e.sent_bytes, e.rec_packets, e.rec_bytes]),
    [
      ['ICMP', '10.0.0.2', 0x1234, 0x1234, 7 * MS, 1, 4, 1, 4],
      ['ICMP', '10.0.0.2', 0x1234, 0x1234, 4 * MS, 2, 8, 2, 8],
    ],
    'the first request is timestamped; src is the host that answered; bytes are echo payload',
  );
  const m6 = (type: number, seq: number) => [type, 0, 0, 0, 0, 9, 0, seq, 0, 0];
  const r6 = run(
    [
      { at: 0, frame: [...ipv6(A6, B6, 58, 10, 64), ...m6(128, 1)] },
      { at: 3, frame: [...ipv6(B6, A6, 58, 10, 64), ...m6(129, 1)] },
    ],
    { tcp: false, icmp: true },
  );
  assert.deepEqual(
    r6.rtts.map((e) => [e.protocol, e.src_ip, e.dest_ip, e.rtt]),
    [['ICMPv6', 'fd00::2', 'fd00::1', 3 * MS]],
  );
  assert.deepEqual(run([{ at: 0, frame: v4(A, B, req4(1)) }, { at: 7, frame: v4(B, A, rep4(1)) }]).rtts, [], 'TCP only by default');
});

test('echo to one\'s own address over loopback: requests and replies are told apart by type', () => {
  const L = [127, 0, 0, 1];
  const seq = [
    { at: 0, frame: v4(L, L, req4(1)) },
    { at: 0.05, frame: v4(L, L, rep4(1)) },
    { at: 1000, frame: v4(L, L, req4(2)) },
    { at: 1000.04, frame: v4(L, L, rep4(2)) },
  ];
  assert.deepEqual(run(seq, { tcp: false, icmp: true }).rtts, [], 'loopback is left out unless includeLocal');
  assert.deepEqual(
    run(seq, { tcp: false, icmp: true, includeLocal: true }).rtts.map((e) => [e.src_ip, e.dest_ip, e.rtt]),
    [
      ['127.0.0.1', '127.0.0.1', 50_000],
      ['127.0.0.1', '127.0.0.1', 40_000],
    ],
  );
});

test('IPv6 with a hop-by-hop header, in Ethernet with two VLAN tags', () => {
  const seg = (from: 'A' | 'B', flags: number, ts: [number, number], payload: number) => tcpSeg({ sport: from === 'A' ? 40000 : 443, dport: from === 'A' ? 443 : 40000, flags, ts, payload });
  const hbh = (next: number) => [next, 0, 1, 4, 0, 0, 0, 0]; // PadN
  const pkt = (from: 'A' | 'B', s: number[]) => eth(0x86dd, [...ipv6(from === 'A' ? A6 : B6, from === 'A' ? B6 : A6, 0, 8 + s.length, 64), ...hbh(6), ...s], [100, 200]);
  const { rtts } = run([
    { at: 0, lt: LINKTYPE_ETHERNET, frame: pkt('A', seg('A', ACK | PSH, [9, 1], 10)) },
    { at: 1, lt: LINKTYPE_ETHERNET, frame: pkt('A', seg('A', ACK | PSH, [10, 1], 10)) },
    { at: 3.5, lt: LINKTYPE_ETHERNET, frame: pkt('B', seg('B', ACK, [3, 10], 0)), egress: true },
  ]);
  assert.deepEqual(
    rtts.map((r) => [r.src_ip, r.src_port, r.rtt, r.match_on_egress, r.sent_bytes]),
    [['fd00::2', 443, 2.5 * MS, true, 20]],
  );
});

test('loopback flows are left out unless includeLocal', () => {
  const lo = (from: number[], to: number[], flags: number, ts: [number, number], payload: number) => {
    const s = tcpSeg({ sport: from[3] === 1 ? 1 : 2, dport: from[3] === 1 ? 2 : 1, flags, ts, payload });
    return [...ipv4(from, to, 6, s.length, 64), ...s];
  };
  const seq = [
    { at: 0, frame: lo([127, 0, 0, 1], [127, 0, 0, 2], ACK, [4, 1], 10) },
    { at: 0.5, frame: lo([127, 0, 0, 1], [127, 0, 0, 2], ACK, [5, 1], 10) },
    { at: 1, frame: lo([127, 0, 0, 2], [127, 0, 0, 1], ACK, [6, 5], 0) },
  ];
  assert.equal(run(seq).rtts.length, 0);
  assert.equal(run(seq, { includeLocal: true }).rtts.length, 1);
});

test('a full flow table is reported (once per second), never a crash', () => {
  const pkts: Pkt[] = [];
  for (let i = 0; i < 40; i++) {
    const s = tcpSeg({ sport: 1000 + i, dport: 80, flags: ACK, ts: [1, 1], payload: 1 });
    pkts.push({ at: i, frame: [...ipv4(A, B, 6, s.length, 64), ...s] });
  }
  const { events, m } = run(pkts, { maxFlows: 16 });
  assert.equal(m.stats.flowsOpened, 16);
  assert.equal(m.stats.flowTableFull, 24);
  const full = events.filter((e) => e.type === 'table-full');
  assert.deepEqual(
    full.map((e) => e.type === 'table-full' && [e.table, e.capacity, e.dropped]),
    [['flows', 16, 1]],
    'one report within the first second; the rest counted',
  );
});
