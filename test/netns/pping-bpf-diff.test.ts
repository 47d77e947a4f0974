/**
 * One set of rules, two implementations: src/pping/matcher.ts (TypeScript, the reference) and
 * bpf/pping.bpf.c (the kernel). Random packet sequences (several TCP flows in both directions
 * with data, pure ACKs, SYN, SYN-ACK, FIN, RST, repeated, reordered and wrapping TSvals, echoes
 * of recent TSvals; TCP without the timestamp option, matched by SEQ/ACK, with retransmitted,
 * reordered and wrapping sequence numbers and cumulative ACKs; DNS queries and responses over UDP
 * (sent again, answered late or twice, several questions, compressed names); QUIC short headers
 * whose spin bit a client and a server turn as RFC 9000 says, with spurious edges, handshake
 * datagrams and runts among them; ICMP and ICMPv6 echo, also to
 * one's own address; IPv4 and IPv6; VLAN tags) are replayed through the
 * real BPF programs with BPF_PROG_TEST_RUN, at chosen times (the programs' test clock reads
 * skb->tstamp), and through the TypeScript matcher (flows that close with one direction seen
 * included). Both must give the same RTT and flow events,
 * in the same order, with the same values, for each sampling configuration.
 *
 * Root (loading BPF); no network traffic at all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RingReader } from '../../src/bpf/ringbuf.js';
import { FLOW_KEY, STAMP_KEY, FLOW, STAMP, CFG_TEST_CLOCK } from '../../src/pping/bpf-layout.js';
import { EpochClock } from '../../src/bpf/clock.js';
import { MapWalker } from '../../src/bpf/maps.js';
import { loadPping, recordToEvent } from '../../src/pping/bpf-run.js';
import { Decoder, LINKTYPE_ETHERNET, PacketInfo } from '../../src/pping/decode.js';
import type { FlowEvent, RttEvent } from '../../src/pping/events.js';
import { IDENTIFIERS, type IdentifierName } from '../../src/pping/identify.js';
import { MATCHER_DEFAULTS, Matcher, type MatcherOptions } from '../../src/pping/matcher.js';
import { native } from '../../src/native/index.js';
import { eth, icmp, ipv4, ipv6, tcpSeg, udp, v6 } from '../helpers/bytes.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();
const ACK = 0x10;
const SYN = 0x02;
const FIN = 0x01;
const RST = 0x04;
const PSH = 0x08;
/** Test-clock origin: far from 0, which the programs read as "no timestamp yet". */
const BASE_NS = 5_000_000_000_000;

interface Step {
  flow: number; // 0..3 TCP (0, 1 IPv4; 2 IPv6 with VLAN; 3 IPv4 reusing flow 0's tuple later), 4 ICMP, 5 ICMPv6, 6 ICMP to one's own address, 7 TCP without timestamps (IPv4), 8 the same (IPv6), 9 DNS (IPv4), 10 DNS (IPv6), 11 QUIC (IPv4), 12 QUIC (IPv6)
  fromB: boolean;
  kind: number; // TCP: 0 data, 1 pure ACK, 2 SYN, 3 SYN-ACK, 4 FIN, 5 RST, 6 data without TS; ICMP: 0 request, 1 reply
  tsDelta: number; // TSval step: 0 repeat, negative reorder, large wrap
  echoBack: number; // which recent TSval of the other side to echo (0: latest)
  gapUs: number;
  egress: boolean;
}

const A4 = [10, 1, 0, 1];
const B4 = [10, 2, 0, 9];
const C4 = [10, 2, 0, 10];
const A6 = v6('fd00:1::1');
const B6 = v6('fd00:2::9');

/** Frames of a step sequence, with the state the generator keeps per flow side. */
function frames(steps: Step[]): Array<{ t: number; frame: Uint8Array; egress: boolean }> {
  const ts = new Map<string, number[]>();
  const seq = new Map<string, number>();
  // TCP without timestamps: per side, the next sequence number, the last segment's start, and
  // the ends of what it sent (the other side acknowledges one of the recent ones).
  const nxt = new Map<string, number>();
  const lastSeq = new Map<string, number>();
  const ends = new Map<string, number[]>();
  let t = BASE_NS;
  const out: Array<{ t: number; frame: Uint8Array; egress: boolean }> = [];
  for (const s of steps) {
    t += s.gapUs * 1000;
    const side = `${s.flow}${s.fromB ? 'B' : 'A'}`;
    const other = `${s.flow}${s.fromB ? 'A' : 'B'}`;
    let frame: number[];
    if (s.flow >= 11) {
      // QUIC: the client (A) and the server (B, port 4433). kind 0-2, 5, 6: a short header whose
      // spin bit follows RFC 9000 when tsDelta is not 0 (the server sends the client's last value,
      // the client the opposite of the server's) and repeats its own otherwise; 3: the opposite of
      // its own last (a reordered packet's edge); 4: a handshake datagram (long header); kind 1
      // with echoBack 4: a datagram too short for a 1-RTT packet.
      const v6f = s.flow === 12;
      const own = seq.get(side) ?? 0;
      const theirs = seq.get(other) ?? 0;
      const spin = s.kind === 3 ? own ^ 1 : s.tsDelta === 0 ? own : s.fromB ? theirs : theirs ^ 1;
      if (s.kind !== 4) seq.set(side, spin);
      const first = s.kind === 4 ? 0xc0 : 0x40 | (spin << 5) | (s.echoBack & 3);
      const len = s.kind === 1 && s.echoBack === 4 ? 12 : 40;
      const u = udp(s.fromB ? 4433 : 40443, s.fromB ? 40443 : 4433, [first, ...Array.from({ length: len - 1 }, (_v, i) => (i * 37) & 0xff)]);
      const [src, dst] = s.fromB ? [v6f ? B6 : B4, v6f ? A6 : A4] : [v6f ? A6 : A4, v6f ? B6 : B4];
      frame = v6f ? eth(0x86dd, [...ipv6(src, dst, 17, u.length, 64), ...u]) : eth(0x0800, [...ipv4(src, dst, 17, u.length, 64), ...u]);
    } else if (s.flow >= 9) {
      // DNS: the client (A) asks, the server (B, port 53) answers a recent question.
      const v6f = s.flow === 10;
      const response = s.fromB;
      const names = [['www', 'lab'], ['a', 'example', 'org'], ['x']];
      let q: [number, number];
      if (!response) {
        const last = (seq.get(side) ?? 7) & 0xffff;
        const id = s.tsDelta === 0 ? last : (last + 1 + (s.tsDelta > 1000 ? 0xff00 : 0)) & 0xffff; // 0: sent again
        seq.set(side, id);
        q = [id, s.echoBack % names.length];
        ts.set(side, [...(ts.get(side) ?? []).slice(-5), q[0] * 4 + q[1]]);
      } else {
        const asked = ts.get(other) ?? [7 * 4];
        const v = asked[Math.max(0, asked.length - 1 - (s.echoBack % asked.length))];
        q = [v >> 2, v & 3];
      }
      const name = names[q[1] % names.length].flatMap((l) => [l.length, ...Buffer.from(l)]);
      const qdcount = s.kind === 6 ? 2 : 1; // 6: two questions (no identifier)
      const question = s.kind === 5 ? [0xc0, 0x0c, 0, 1, 0, 1] : [...name, 0, 0, 1, 0, 1]; // 5: a compressed name (none)
      const answer = response ? [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9] : [];
      const msg = [q[0] >> 8, q[0] & 0xff, response ? 0x81 : 0x01, response ? 0x80 : 0x00, 0, qdcount, 0, response ? 1 : 0, 0, 0, 0, 0, ...question, ...answer];
      const u = udp(response ? 53 : 40053, response ? 40053 : 53, msg);
      const [src, dst] = s.fromB ? [v6f ? B6 : B4, v6f ? A6 : A4] : [v6f ? A6 : A4, v6f ? B6 : B4];
      frame = v6f ? eth(0x86dd, [...ipv6(src, dst, 17, u.length, 64), ...u]) : eth(0x0800, [...ipv4(src, dst, 17, u.length, 64), ...u]);
    } else if (s.flow >= 7) {
      const v6f = s.flow === 8;
      const kind = s.kind;
      const flags = [ACK | PSH, ACK, SYN, SYN | ACK, FIN | ACK, RST | ACK, ACK | PSH][kind];
      const payload = kind === 0 || kind === 6 ? 100 : 0;
      let n = nxt.get(side) ?? (s.fromB ? 0x70000000 : 1000);
      let sq = n;
      if (payload > 0) {
        if (s.tsDelta === 0) sq = lastSeq.get(side) ?? n; // sent again
        else if (s.tsDelta < 0) sq = (n + 100 * s.tsDelta) >>> 0; // older data, reordered
        else if (s.tsDelta > 1000) sq = n = 0xffffff80; // about to wrap
      }
      if (kind === 2 || kind === 3) sq = (n - 1) >>> 0;
      const end = (sq + payload + (kind === 4 ? 1 : 0)) >>> 0;
      if (payload > 0 || kind === 4) {
        lastSeq.set(side, sq);
        if (((end - n) | 0) > 0) n = end;
        ends.set(side, [...(ends.get(side) ?? []).slice(-5), end]);
      }
      nxt.set(side, n >>> 0);
      const oe = ends.get(other) ?? [];
      const ack = oe.length ? oe[Math.max(0, oe.length - 1 - s.echoBack)] : 0;
      const seg = tcpSeg({ sport: s.fromB ? 5001 : 40007, dport: s.fromB ? 40007 : 5001, seq: sq, ack, flags, payload });
      const [src, dst] = s.fromB ? [v6f ? B6 : B4, v6f ? A6 : A4] : [v6f ? A6 : A4, v6f ? B6 : B4];
      frame = v6f ? eth(0x86dd, [...ipv6(src, dst, 6, seg.length, 64), ...seg]) : eth(0x0800, [...ipv4(src, dst, 6, seg.length, 64), ...seg]);
    } else if (s.flow >= 4) {
      const v6f = s.flow === 5;
      const reply = s.kind % 2 === 1;
      const n = seq.get(side) ?? 0;
      const sq = reply ? (seq.get(other) ?? 0) : n + (s.tsDelta === 0 ? 0 : 1);
      if (!reply) seq.set(side, sq);
      const type = v6f ? (reply ? 129 : 128) : reply ? 0 : 8;
      const m = icmp(type, 0, [0x12, 0x34, sq >> 8, sq & 0xff], [1, 2, 3, 4]);
      const far = s.flow === 6 ? A4 : B4;
      const [src, dst] = reply === s.fromB ? [v6f ? A6 : A4, v6f ? B6 : far] : [v6f ? B6 : far, v6f ? A6 : A4];
      frame = v6f ? eth(0x86dd, [...ipv6(src, dst, 58, m.length, 64), ...m]) : eth(0x0800, [...ipv4(src, dst, 1, m.length, 64), ...m]);
    } else {
      const hist = ts.get(side) ?? [1000 + s.flow * 7777];
      const last = hist[hist.length - 1];
      const tsval = (last + (s.tsDelta > 1000 ? 0xfffff000 : s.tsDelta)) >>> 0;
      if (s.tsDelta !== 0) ts.set(side, [...hist.slice(-5), tsval]);
      const oh = ts.get(other) ?? [];
      const tsecr = oh.length ? oh[Math.max(0, oh.length - 1 - s.echoBack)] : 0;
      const kind = s.kind;
      const flags = [ACK | PSH, ACK, SYN, SYN | ACK, FIN | ACK, RST | ACK, ACK | PSH][kind];
      const payload = kind === 0 || kind === 6 ? 100 : 0;
      const pa = s.flow === 1 ? 40001 : 40000;
      const seg = tcpSeg({ sport: s.fromB ? 5001 : pa, dport: s.fromB ? pa : 5001, flags, ts: kind === 6 ? undefined : [tsval, kind === 2 ? 0 : tsecr], payload });
      if (s.flow === 2) {
        const [src, dst] = s.fromB ? [B6, A6] : [A6, B6];
        frame = eth(0x86dd, [...ipv6(src, dst, 6, seg.length, 64), ...seg], [7, 9]);
      } else {
        const b = s.flow === 1 ? C4 : B4;
        const [src, dst] = s.fromB ? [b, A4] : [A4, b];
        frame = eth(0x0800, [...ipv4(src, dst, 6, seg.length, 64), ...seg]);
      }
    }
    out.push({ t, frame: Uint8Array.from(frame), egress: s.egress });
  }
  return out;
}

type Ev = RttEvent | FlowEvent;
/**
 * Events without their schema, times as ns after the sequence's first event: the kernel's clock
 * reaches user space through the monotonic-to-epoch offset, so only differences compare.
 */
const strip = (list: Ev[]) => {
  const t0 = list.length ? list[0].sec * 1e9 + list[0].nsec : 0;
  return list.map((e) => {
    const { sec, nsec, schema: _c, ...rest } = e;
    return { ...rest, at: Math.round((sec * 1e9 + nsec - t0) / 1000) };
  });
};

function runTs(fr: ReturnType<typeof frames>, o: MatcherOptions): Ev[] {
  const ev: Ev[] = [];
  const m = new Matcher(o, { event: (e) => e.type !== 'table-full' && ev.push(e) });
  const dec = new Decoder();
  dec.dns = o.dns;
  dec.quicPorts = o.quicPorts;
  const info = new PacketInfo();
  for (const f of fr) {
    if (dec.decode(f.frame, 0, f.frame.length, LINKTYPE_ETHERNET, 0, info) !== 0) continue;
    m.process(info, Math.floor(f.t / 1e9), f.t % 1e9, f.egress);
  }
  return ev;
}

class BpfReplay {
  private readonly obj;
  private readonly ring: RingReader;
  private readonly egress: number;
  private readonly ingress: number;
  private readonly clock = new EpochClock();
  private readonly got: Ev[] = [];
  private readonly out = new Float64Array(2);

  constructor(private readonly o: MatcherOptions) {
    this.obj = loadPping(o, CFG_TEST_CLOCK);
    const t = { sec: 0, nsec: 0 };
    this.ring = new RingReader(
      this.obj.mapFd('pping_events'),
      (v, b, off, len) => {
        const e = recordToEvent(v, b, off, len, this.clock, t);
        if (e) this.got.push(e);
      },
      (e) => {
        throw e;
      },
    );
    this.egress = this.obj.progFd('pping_tc_egress');
    this.ingress = this.obj.progFd('pping_tc_ingress');
  }

  run(fr: ReturnType<typeof frames>): Ev[] {
    this.clear();
    this.got.length = 0;
    for (const f of fr) {
      const rc = native().bpfTestRunSkb(f.egress ? this.egress : this.ingress, f.frame, f.t, this.out);
      assert.equal(rc, 0, `BPF_PROG_TEST_RUN failed: ${rc}`);
      assert.equal(this.out[0], -1, 'the programs pass every packet on');
    }
    this.ring.drain();
    return [...this.got];
  }

  /** Empties both state maps between sequences, and the one-way count with them (the sweep's job live). */
  private clear(): void {
    native().bpfMapUpdate(this.obj.mapFd('pping_one_way'), new Uint8Array(4), new Uint8Array(8), 0);
    for (const [name, ks, vs] of [
      ['pping_flows', FLOW_KEY.size, FLOW.size],
      ['pping_stamps', STAMP_KEY.size, STAMP.size],
    ] as const) {
      const fd = this.obj.mapFd(name);
      const w = new MapWalker(fd, ks, vs);
      const keys: Uint8Array[] = [];
      w.walk((i) => keys.push(w.keyBytes.slice(i * ks, (i + 1) * ks)));
      for (const k of keys) native().bpfMapDelete(fd, k);
    }
  }

  close(): void {
    this.ring.close();
    this.obj.close();
  }
}

// One generator of steps per identifier (src/pping/identify.ts): a new identifier is covered by
// adding its own here. Both draw kinds, identifier steps, echoes and gaps alike.
const common = {
  fromB: fc.boolean(),
  kind: fc.oneof(fc.constantFrom(0, 0, 0, 1, 1), fc.integer({ min: 0, max: 6 })),
  tsDelta: fc.oneof(fc.constantFrom(1, 1, 1, 0, 5), fc.integer({ min: -3, max: 3 }), fc.constant(5000)),
  echoBack: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4 })),
  gapUs: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 150_000 })),
  egress: fc.boolean(),
};
const STEPS: Record<IdentifierName, fc.Arbitrary<Step>> = {
  'tcp-ts': fc.record({ flow: fc.integer({ min: 0, max: 3 }), ...common }),
  'tcp-seqack': fc.record({ flow: fc.integer({ min: 7, max: 8 }), ...common }),
  'icmp-echo': fc.record({ flow: fc.integer({ min: 4, max: 6 }), ...common }),
  dns: fc.record({ flow: fc.integer({ min: 9, max: 10 }), ...common }),
  'quic-spin': fc.record({ flow: fc.integer({ min: 11, max: 12 }), ...common }),
};
const WEIGHT: Record<IdentifierName, number> = { 'tcp-ts': 4, 'tcp-seqack': 3, 'icmp-echo': 3, dns: 3, 'quic-spin': 3 };
const step = fc.oneof(...(Object.keys(STEPS) as IdentifierName[]).map((k) => ({ arbitrary: STEPS[k], weight: WEIGHT[k] })));

test('the differential test has a step generator for every identifier the rules know', () => {
  assert.deepEqual(Object.keys(STEPS).sort(), Object.keys(IDENTIFIERS).sort());
});

const CONFIGS: Array<[string, Partial<MatcherOptions>]> = [
  ['defaults + ICMP (100 ms rate limit)', { icmp: true }],
  ['no rate limit, SYNs included', { icmp: true, rateLimitNs: 0, includeSyn: true }],
  ['--rtt-rate 0.5 --rtt-type min', { icmp: true, rttRate: 0.5, rttRateUse: 'min' }],
  ['ICMP only', { tcp: false, icmp: true, rateLimitNs: 0 }],
  ['--seqack, no rate limit, SYNs included', { icmp: true, rateLimitNs: 0, includeSyn: true, seqAck: true }],
  ['--seqack, defaults', { icmp: true, seqAck: true }],
  ['--dns --seqack, no rate limit', { icmp: true, dns: true, rateLimitNs: 0, seqAck: true }],
  ['--dns, defaults', { icmp: true, dns: true }],
  ['--quic-ports 4433,443 --dns, no rate limit', { icmp: true, dns: true, quicPorts: [4433, 443], rateLimitNs: 0 }],
  ['--quic-ports 443,4433,8443 (no rule for 40443), defaults', { quicPorts: [443, 4433, 8443] }],
  ['--burst 3, defaults', { icmp: true, burst: 3 }],
  ['--burst 2 --seqack --rtt-rate 0.5', { icmp: true, burst: 2, seqAck: true, rttRate: 0.5, rttRateUse: 'min' }],
];

for (const [name, cfg] of CONFIGS) {
  test(`BPF programs and the TypeScript matcher give the same events on random sequences: ${name}`, opt, () => {
    const o = { ...MATCHER_DEFAULTS, ...cfg };
    const bpf = new BpfReplay(o);
    let events = 0;
    const byRule = new Map<string, number>();
    try {
      fc.assert(
        fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), (steps) => {
          const fr = frames(steps);
          const want = strip(runTs(fr, o));
          const got = strip(bpf.run(fr));
          events += want.length;
          for (const e of want) {
            const k = e.type === 'rtt' ? e.match : e.bidirectional ? '' : 'one-way closings';
            if (k) byRule.set(k, (byRule.get(k) ?? 0) + 1);
          }
          if (process.env.PPING_DIFF_DEBUG && JSON.stringify(got) !== JSON.stringify(want) && steps.length < 12) process.stderr.write(`BPF ${JSON.stringify(got)}\nTS  ${JSON.stringify(want)}\n`);
          assert.deepEqual(got, want);
        }),
        { numRuns: 150 },
      );
    } finally {
      bpf.close();
    }
    const rules = [...byRule].sort().map(([k, n]) => `${k} ${n}`).join(', ');
    process.stdout.write(`# ${name}: 150 sequences, ${events} events (RTTs by rule, one-way closings: ${rules}), identical\n`);
    // ICMP-only configurations see only the ICMP share of the steps (about 300 events in 150 sequences).
    assert.ok(events > 150, 'the sequences produce events to compare');
  });
}

test('a flood of one-way flows through both implementations: the same events, and the long-lived flow keeps every sample', opt, () => {
  const o = { ...MATCHER_DEFAULTS, tcp: false, icmp: true, rateLimitNs: 0, maxFlows: 1024, maxStamps: 256 };
  const fr: ReturnType<typeof frames> = [];
  let t = BASE_NS;
  const echo = (src: number[], dst: number[], type: number, id: number, sq: number) => {
    const m = icmp(type, 0, [id >> 8, id & 0xff, sq >> 8, sq & 0xff], [1, 2, 3, 4]);
    return Uint8Array.from(eth(0x0800, [...ipv4(src, dst, 1, m.length, 64), ...m]));
  };
  let spoofed = 0;
  for (let s = 1; s <= 100; s++) {
    // Spoofed requests first: whatever room the last answer made, the flood reaches it first.
    for (let k = 0; k < 60; k++, spoofed++) fr.push({ t: (t += 1000), frame: echo([10, 9, (spoofed >> 8) & 0xff, spoofed & 0xff], B4, 8, 0x4000 + (spoofed & 0x3fff), 1), egress: false });
    fr.push({ t: (t += 1000), frame: echo(A4, B4, 8, 7, s), egress: true });
    fr.push({ t: (t += 100_000), frame: echo(B4, A4, 0, 7, s), egress: false });
  }
  const bpf = new BpfReplay(o);
  try {
    const want = strip(runTs(fr, o));
    const got = strip(bpf.run(fr));
    assert.deepEqual(got, want);
    const real = got.filter((e) => e.type === 'rtt' && e.src_ip === '10.2.0.9');
    assert.ok(real.length >= 99, `${real.length} of 100 exchanges sampled`);
    process.stdout.write(`# flood: ${spoofed} spoofed requests, ${real.length} of 100 real exchanges sampled by both\n`);
  } finally {
    bpf.close();
  }
});
