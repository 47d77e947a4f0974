/**
 * One set of rules, two implementations: src/pping/matcher.ts (TypeScript, the reference) and
 * bpf/pping.bpf.c (the kernel). Random packet sequences (test/helpers/pping-steps.ts: several TCP flows in both directions
 * with data, pure ACKs, SYN, SYN-ACK, FIN, RST, repeated, reordered and wrapping TSvals, echoes
 * of recent TSvals; TCP without the timestamp option, matched by SEQ/ACK, with retransmitted,
 * reordered and wrapping sequence numbers and cumulative ACKs; DNS queries and responses over UDP
 * (sent again, answered late or twice, several questions, compressed names); QUIC short headers
 * whose spin bit a client and a server turn as RFC 9000 says, with spurious edges, handshake
 * datagrams (whose connection id lengths the rules learn), NAT rebindings, new connection ids and
 * runts among them; ICMP and ICMPv6 echo, also to
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
import { C, FLOW_KEY, STAMP_KEY, FLOW, STAMP, CFG_TEST_CLOCK } from '../../src/pping/bpf-layout.js';
import { EpochClock } from '../../src/bpf/clock.js';
import { MapWalker, PerCpuCounters } from '../../src/bpf/maps.js';
import { loadPping, recordToEvent } from '../../src/pping/bpf-run.js';
import { Decoder, LINKTYPE_ETHERNET, PacketInfo } from '../../src/pping/decode.js';
import { CaptureReader, CaptureRecord } from '../../src/pping/pcap.js';
import { join } from 'node:path';
import { ROOT } from '../helpers/lab.js';
import type { FlowEvent, RttEvent } from '../../src/pping/events.js';
import { IDENTIFIERS } from '../../src/pping/identify.js';
import { MATCHER_DEFAULTS, Matcher, type MatcherOptions } from '../../src/pping/matcher.js';
import { native } from '../../src/native/index.js';
import { eth, icmp, ipv4 } from '../helpers/bytes.js';
import { A4, B4, BASE_NS, STEPS, type Step, frames, quicStep, step } from '../helpers/pping-steps.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();
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

/** QUIC flows the last runTs moved by their connection id. */
let tsMoved = 0;

function runTs(fr: ReturnType<typeof frames>, o: MatcherOptions): Ev[] {
  const ev: Ev[] = [];
  const m = new Matcher(o, { event: (e) => e.type !== 'table-full' && ev.push(e) });
  tsMoved = 0;
  const dec = new Decoder();
  dec.dns = o.dns;
  dec.quicPorts = o.quicPorts;
  const info = new PacketInfo();
  for (const f of fr) {
    if (dec.decode(f.frame, 0, f.frame.length, LINKTYPE_ETHERNET, 0, info) !== 0) continue;
    m.process(info, Math.floor(f.t / 1e9), f.t % 1e9, f.egress);
  }
  tsMoved = m.stats.quicMoved;
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

  constructor(o: MatcherOptions) {
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
    this.counters = new PerCpuCounters(this.obj.mapFd('pping_counters'), C.NUM);
  }

  private readonly counters: PerCpuCounters;
  /** QUIC flows the last run moved by their connection id. */
  moved = 0;

  run(fr: ReturnType<typeof frames>): Ev[] {
    this.clear();
    this.got.length = 0;
    for (const f of fr) {
      const rc = native().bpfTestRunSkb(f.egress ? this.egress : this.ingress, f.frame, f.t, this.out);
      assert.equal(rc, 0, `BPF_PROG_TEST_RUN failed: ${rc}`);
      assert.equal(this.out[0], -1, 'the programs pass every packet on');
    }
    this.ring.drain();
    this.moved = this.counters.read()[C.QUIC_MOVED];
    return [...this.got];
  }

  /** Empties both state maps between sequences, and the one-way count with them (the sweep's job live). */
  private clear(): void {
    native().bpfMapUpdate(this.obj.mapFd('pping_one_way'), new Uint8Array(4), new Uint8Array(8), 0);
    this.counters.clear(C.QUIC_MOVED);
    for (const [name, ks, vs] of [
      ['pping_flows', FLOW_KEY.size, FLOW.size],
      ['pping_stamps', STAMP_KEY.size, STAMP.size],
      ['pping_quic_servers', 20, 4],
      ['pping_quic_cids', 40, 48],
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

/**
 * 150 random sequences of `arb`'s steps through both: the same events and the same QUIC moves,
 * or fast-check's smallest counterexample. Returns what was compared.
 */
function replayRandom(o: MatcherOptions, arb: fc.Arbitrary<Step>): { events: number; moved: number; byRule: Map<string, number> } {
  const bpf = new BpfReplay(o);
  let events = 0;
  let moved = 0;
  const byRule = new Map<string, number>();
  try {
    fc.assert(
      fc.property(fc.array(arb, { minLength: 1, maxLength: 80, size: 'max' }), (steps) => {
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
        assert.equal(bpf.moved, tsMoved, 'QUIC flows moved by their connection id');
        moved += tsMoved;
      }),
      { numRuns: 150 },
    );
  } finally {
    bpf.close();
  }
  return { events, moved, byRule };
}

for (const [name, cfg] of CONFIGS) {
  test(`BPF programs and the TypeScript matcher give the same events on random sequences: ${name}`, opt, () => {
    const o = { ...MATCHER_DEFAULTS, ...cfg };
    const { events, moved, byRule } = replayRandom(o, step);
    const rules = [...byRule].sort().map(([k, n]) => `${k} ${n}`).join(', ');
    process.stdout.write(`# ${name}: 150 sequences, ${events} events (RTTs by rule, one-way closings: ${rules}), identical${o.quicPorts.length ? `; ${moved} QUIC flows moved by connection id in both` : ''}\n`);
    // ICMP-only configurations see only the ICMP share of the steps (about 300 events in 150 sequences).
    assert.ok(events > 150, 'the sequences produce events to compare');
  });
}


for (const [name, cfg] of [
  ['QUIC only, no rate limit', { tcp: false, quicPorts: [4433], rateLimitNs: 0 }],
  ['QUIC only, defaults', { tcp: false, quicPorts: [4433] }],
] as Array<[string, Partial<MatcherOptions>]>) {
  test(`BPF programs and the TypeScript matcher follow QUIC connections by their ids alike: ${name}`, opt, () => {
    const { events, moved } = replayRandom({ ...MATCHER_DEFAULTS, ...cfg }, quicStep);
    process.stdout.write(`# ${name}: 150 sequences, ${events} events, ${moved} QUIC flows moved by connection id, identical\n`);
    assert.ok(moved > 20, 'NAT rebindings after a handshake move QUIC flows');
  });
}

test('the recorded QUIC captures (aioquic in a lab; a NAT rebinding in one) through both implementations: the same events', opt, () => {
  for (const [file, cut] of [
    ['spin.pcap', 0],
    ['rebind.pcap', 0],
    ['rebind.pcap', 5], // the client's short headers cut 5 bytes into the 8-byte id: neither may use it
  ] as const) {
    const o = { ...MATCHER_DEFAULTS, tcp: false, quicPorts: [4433], rateLimitNs: 0 };
    const fr: ReturnType<typeof frames> = [];
    const r = CaptureReader.open(join(ROOT, 'test', 'fixtures', 'quic', file));
    const rec = new CaptureRecord();
    // The capture's times, moved to the test clock's range (differences are what compare).
    let t0 = -1;
    while (r.next(rec)) {
      const t = rec.sec * 1e9 + rec.nsec;
      if (t0 < 0) t0 = t;
      const udpAt = rec.off + 14 + (rec.data[rec.off + 12] === 0x86 ? 40 : 20);
      const clientShort = ((rec.data[udpAt + 2] << 8) | rec.data[udpAt + 3]) === 4433 && (rec.data[udpAt + 8] & 0x80) === 0;
      const len = cut > 0 && clientShort ? udpAt - rec.off + 8 + 1 + cut : rec.len;
      fr.push({ t: BASE_NS + (t - t0), frame: rec.data.slice(rec.off, rec.off + len), egress: false });
    }
    r.close();
    const bpf = new BpfReplay(o);
    try {
      const want = strip(runTs(fr, o));
      const got = strip(bpf.run(fr));
      assert.deepEqual(got, want, file);
      assert.equal(bpf.moved, tsMoved, `${file}: QUIC flows moved by their connection id`);
      assert.ok(want.filter((e) => e.type === 'rtt').length > 400, `${file}: samples to compare`);
      if (file === 'rebind.pcap') assert.equal(tsMoved, cut ? 0 : 4, 'cut inside the id: no flow can follow it');
      process.stdout.write(`# ${file}${cut ? ` cut ${cut} bytes into the id` : ''}: ${fr.length} frames, ${want.length} events and ${tsMoved} moves, identical\n`);
    } finally {
      bpf.close();
    }
  }
});

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
