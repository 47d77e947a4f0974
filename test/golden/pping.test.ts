/**
 * The passive-RTT rules on crafted packet sequences, decoded from hand-built frames: the
 * first-instance rule, pure ACKs, wrap-around, reordering, retransmission, rate limits, SYNs,
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
  const m = new Matcher(opts, { rtt: (e) => events.push(e), flow: (e) => events.push(e), full: (e) => events.push(e) });
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

test('first instance of a TSval is timestamped, the first ACK echoing it matches, later echoes do not', () => {
  const { rtts } = run([data(0, 100), data(1, 100), ackB(10, 100), ackB(12, 100)]);
  assert.equal(rtts.length, 1);
  const r = rtts[0];
  assert.deepEqual(
    [r.rtt, r.min_rtt, r.src_ip, r.src_port, r.dest_ip, r.dest_port, r.protocol, r.sec, r.nsec],
    [10 * MS, 10 * MS, '10.0.0.1', 40000, '10.0.0.2', 5001, 'TCP', T0, 10 * MS],
    'the RTT belongs to the timestamped side (A to B), measured from the first packet with TSval 100',
  );
  assert.deepEqual([r.sent_packets, r.sent_bytes, r.rec_packets, r.rec_bytes], [2, 2 * 152, 1, 52]);
});

test('pure ACKs are never timestamped; data, SYN-less FIN are', () => {
  const { rtts } = run([
    { at: 0, frame: tcp4('A', ACK, [200, 1]) }, // pure ACK, new TSval
    ackB(10, 200),
    { at: 200, frame: tcp4('A', ACK | FIN, [300, 1]) }, // FIN without data: not a pure ACK
    ackB(215, 300),
  ]);
  assert.deepEqual(
    rtts.map((r) => r.rtt),
    [15 * MS],
  );
});

test('TSval wrap-around counts as newer; a reordered (older) TSval is not timestamped', () => {
  const { rtts } = run([
    data(0, 0xfffffff0),
    ackB(5, 0xfffffff0),
    data(200, 0x10), // wrapped: newer
    data(400, 0xffffff00), // older than 0x10 (reordered): ignored
    ackB(403, 0xffffff00),
    ackB(410, 0x10),
  ]);
  assert.deepEqual(
    rtts.map((r) => r.rtt),
    [5 * MS, 210 * MS],
  );
});

test('retransmission: the retransmitted segment carries its own TSval, and the echo of it gives the true RTT', () => {
  const { rtts } = run([data(0, 400), data(300, 500), ackB(310, 500)]);
  assert.deepEqual(
    rtts.map((r) => r.rtt),
    [10 * MS],
    'the ACK echoes the retransmission, not the lost original',
  );
});

test('rate limit: one timestamp per 100 ms per direction by default, every new TSval with 0', () => {
  const seq = [data(0, 1000), data(50, 1001), ackB(60, 1000), ackB(61, 1001), data(120, 1002), ackB(125, 1002)];
  assert.deepEqual(
    run(seq).rtts.map((r) => r.rtt),
    [60 * MS, 5 * MS],
  );
  assert.deepEqual(
    run(seq, { rateLimitNs: 0 }).rtts.map((r) => r.rtt),
    [60 * MS, 11 * MS, 5 * MS],
  );
});

test('--rtt-rate: the gap between samples follows the flow\'s RTT once it has one', () => {
  // RTT 10 ms, rate 1: after the first sample, one per 10 ms.
  const seq = [data(0, 1), ackB(10, 1), data(15, 2), data(22, 3), ackB(30, 2), ackB(31, 3)];
  assert.deepEqual(
    run(seq, { rttRate: 1, rttRateUse: 'min' }).rtts.map((r) => r.rtt),
    [10 * MS, 15 * MS],
    'TSval 3 came 7 ms after TSval 2: under one RTT, not sampled',
  );
});

test('SYN and SYN-ACK: opening events; timestamped only with includeSyn', () => {
  const hs = [
    { at: 0, frame: tcp4('A', SYN, [50, 0]) },
    { at: 10, frame: tcp4('B', SYN | ACK, [60, 50]) },
    { at: 20, frame: tcp4('A', ACK, [51, 60]) },
  ];
  const plain = run(hs);
  assert.deepEqual(plain.rtts, []);
  assert.deepEqual(
    plain.flows.map((f) => [f.flow_event, f.reason, f.triggered_by, f.src_ip]),
    [['opening', 'SYN', 'src', '10.0.0.1']],
  );
  const syn = run(hs, { includeSyn: true });
  assert.deepEqual(
    syn.rtts.map((r) => [r.src_ip, r.rtt]),
    [
      ['10.0.0.1', 10 * MS],
      ['10.0.0.2', 10 * MS],
    ],
  );
  const mid = run([{ at: 0, frame: tcp4('B', SYN | ACK, [60, 50]) }]);
  assert.deepEqual(
    mid.flows.map((f) => [f.reason, f.src_ip]),
    [['SYN-ACK', '10.0.0.2']],
  );
});

test('closing: FIN once per connection, RST, flow timeout; later packets stay with the closed flow', () => {
  const fin = run([data(0, 1), { at: 5, frame: tcp4('A', ACK | FIN, [2, 1]) }, { at: 6, frame: tcp4('B', ACK | FIN, [8, 2]) }, { at: 7, frame: tcp4('A', ACK, [3, 8]) }]);
  assert.deepEqual(
    fin.flows.map((f) => [f.flow_event, f.reason, f.triggered_by]),
    [
      ['opening', 'first observed packet', 'src'],
      ['closing', 'FIN', 'src'],
    ],
  );
  const rst = run([data(0, 1), { at: 5, frame: tcp4('B', RST | ACK, [8, 1]) }]);
  assert.deepEqual(
    rst.flows.map((f) => [f.flow_event, f.reason, f.src_ip]),
    [
      ['opening', 'first observed packet', '10.0.0.1'],
      ['closing', 'RST', '10.0.0.2'],
    ],
  );
  assert.deepEqual(run([{ at: 0, frame: tcp4('B', RST | ACK, [8, 1]) }]).flows, [], 'an RST alone opens nothing');
  // Idle flows: 300 s for an answered TCP flow, 30 s for one never answered.
  const idle = run([data(0, 1), ackB(10, 1)], {}, 301_000);
  assert.deepEqual(
    idle.flows.map((f) => [f.flow_event, f.reason, f.triggered_by]),
    [
      ['opening', 'first observed packet', 'src'],
      ['closing', 'flow timeout', 'userspace-cleanup'],
    ],
  );
  assert.equal(run([data(0, 1), ackB(10, 1)], {}, 299_000).flows.length, 1, 'not yet idle long enough');
  assert.equal(run([data(0, 1)], {}, 31_000).flows.length, 2, 'unanswered flows go after 30 s');
});

test('timestamps expire: an echo after the lifetime matches nothing', () => {
  // RTT 10 ms known: the next timestamp lives max(8 x 10 ms, 1 s) = 1 s.
  const { rtts, m } = run([data(0, 1), ackB(10, 1), data(200, 2)], {}, 1300);
  assert.equal(rtts.length, 1);
  assert.equal(m.stats.stampsExpired, 1);
});

test('ICMP and ICMPv6 echo: id as both ports, sequence as identifier, request/reply', () => {
  const req4 = (seq: number) => icmp(8, 0, [0x12, 0x34, seq >> 8, seq & 0xff], [1, 2, 3, 4]);
  const rep4 = (seq: number) => icmp(0, 0, [0x12, 0x34, seq >> 8, seq & 0xff], [1, 2, 3, 4]);
  const v4 = (from: number[], to: number[], m: number[]) => [...ipv4(from, to, 1, m.length, 64), ...m];
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
    r.rtts.map((e) => [e.protocol, e.src_port, e.dest_port, e.rtt]),
    [
      ['ICMP', 0x1234, 0x1234, 7 * MS],
      ['ICMP', 0x1234, 0x1234, 4 * MS],
    ],
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
    [['ICMPv6', 'fd00::1', 'fd00::2', 3 * MS]],
  );
  assert.deepEqual(run([{ at: 0, frame: v4(A, B, req4(1)) }, { at: 7, frame: v4(B, A, rep4(1)) }]).rtts, [], 'TCP only by default');
});

test('IPv6 with a hop-by-hop header, in Ethernet with two VLAN tags', () => {
  const seg = (from: 'A' | 'B', flags: number, ts: [number, number], payload: number) => tcpSeg({ sport: from === 'A' ? 40000 : 443, dport: from === 'A' ? 443 : 40000, flags, ts, payload });
  const hbh = (next: number) => [next, 0, 1, 4, 0, 0, 0, 0]; // PadN
  const pkt = (from: 'A' | 'B', s: number[]) => eth(0x86dd, [...ipv6(from === 'A' ? A6 : B6, from === 'A' ? B6 : A6, 0, 8 + s.length, 64), ...hbh(6), ...s], [100, 200]);
  const { rtts } = run([
    { at: 0, lt: LINKTYPE_ETHERNET, frame: pkt('A', seg('A', ACK | PSH, [9, 1], 10)) },
    { at: 2.5, lt: LINKTYPE_ETHERNET, frame: pkt('B', seg('B', ACK, [3, 9], 0)), egress: true },
  ]);
  assert.deepEqual(
    rtts.map((r) => [r.src_ip, r.src_port, r.rtt, r.match_on_egress]),
    [['fd00::1', 40000, 2.5 * MS, true]],
  );
});

test('loopback flows are left out unless includeLocal', () => {
  const lo = (from: number[], to: number[], flags: number, ts: [number, number], payload: number) => {
    const s = tcpSeg({ sport: from[3] === 1 ? 1 : 2, dport: from[3] === 1 ? 2 : 1, flags, ts, payload });
    return [...ipv4(from, to, 6, s.length, 64), ...s];
  };
  const seq = [
    { at: 0, frame: lo([127, 0, 0, 1], [127, 0, 0, 2], ACK, [5, 1], 10) },
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
