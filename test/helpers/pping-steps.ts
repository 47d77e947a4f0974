/**
 * Random packet sequences for test/netns/pping-bpf-diff.test.ts, which replays them through the
 * BPF programs and the TypeScript matcher: a step per packet (which flow, which side, what kind),
 * drawn by one generator per identifier, and the frames a sequence of steps makes.
 */
import fc from 'fast-check';
import type { IdentifierName } from '../../src/pping/identify.js';
import { eth, icmp, ipv4, ipv6, tcpSeg, udp, v6 } from './bytes.js';

const ACK = 0x10;
const SYN = 0x02;
const FIN = 0x01;
const RST = 0x04;
const PSH = 0x08;
/** Test-clock origin: far from 0, which the programs read as "no timestamp yet". */
export const BASE_NS = 5_000_000_000_000;

export interface Step {
  flow: number; // 0..3 TCP (0, 1 IPv4; 2 IPv6 with VLAN; 3 IPv4 reusing flow 0's tuple later), 4 ICMP, 5 ICMPv6, 6 ICMP to one's own address, 7 TCP without timestamps (IPv4), 8 the same (IPv6), 9 DNS (IPv4), 10 DNS (IPv6), 11 QUIC (IPv4), 12 QUIC (IPv6)
  fromB: boolean;
  kind: number; // TCP: 0 data, 1 pure ACK, 2 SYN, 3 SYN-ACK, 4 FIN, 5 RST, 6 data without TS; ICMP: 0 request, 1 reply
  tsDelta: number; // TSval step: 0 repeat, negative reorder, large wrap
  echoBack: number; // which recent TSval of the other side to echo (0: latest)
  gapUs: number;
  egress: boolean;
}

export const A4 = [10, 1, 0, 1];
export const B4 = [10, 2, 0, 9];
export const C4 = [10, 2, 0, 10];
export const A6 = v6('fd00:1::1');
export const B6 = v6('fd00:2::9');
/** A QUIC client's address after a NAT rebinding that changed it: above B's. */
export const D4 = [10, 3, 0, 1];
export const D6 = v6('fd00:3::1');

/** Frames of a step sequence, with the state the generator keeps per flow side. */
export function frames(steps: Step[]): Array<{ t: number; frame: Uint8Array; egress: boolean }> {
  const ts = new Map<string, number[]>();
  const seq = new Map<string, number>();
  // TCP without timestamps: per side, the next sequence number, the last segment's start, and
  // the ends of what it sent (the other side acknowledges one of the recent ones).
  const nxt = new Map<string, number>();
  const lastSeq = new Map<string, number>();
  const ends = new Map<string, number[]>();
  // QUIC: per flow, the client's port and the server connection id it sends.
  const quic = new Map<number, { port: number; cid: number; moved: number }>();
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
      // its own last (a reordered packet's edge); 4: a handshake datagram (long header: from the
      // server, a source connection id of 8, 4, 0 or 21 bytes by echoBack, version 0 when tsDelta
      // is); kind 1 with echoBack 4: a datagram too short for a 1-RTT packet. The client's short
      // headers carry the server connection id it uses; kind 5 from the client: a NAT rebinding
      // first (a new port, the server answers there), from the server: a late datagram to the
      // client's previous port; kind 6 from the client: a new connection id first.
      const v6f = s.flow === 12;
      const q = quic.get(s.flow) ?? { port: 40443, cid: 1, moved: 0 };
      quic.set(s.flow, q);
      if (s.kind === 5 && !s.fromB) {
        q.port++;
        // From echoBack 3 on, a new address too: one that sorts after the server's (the BPF
        // programs' flow key then holds the two ends the other way round).
        if (s.echoBack >= 3) q.moved ^= 1;
      }
      if (s.kind === 6 && !s.fromB) q.cid++;
      const own = seq.get(side) ?? 0;
      const theirs = seq.get(other) ?? 0;
      const spin = s.kind === 3 ? own ^ 1 : s.tsDelta === 0 ? own : s.fromB ? theirs : theirs ^ 1;
      if (s.kind !== 4) seq.set(side, spin);
      const len = s.kind === 1 && s.echoBack === 4 ? 12 : 40;
      const filler = (n: number) => Array.from({ length: n }, (_v, i) => (i * 37) & 0xff);
      let body: number[];
      if (s.kind === 4) {
        const scl = [8, 8, 4, 0, 21][s.echoBack];
        const version = s.tsDelta === 0 ? [0, 0, 0, 0] : [0, 0, 0, 1];
        body = [0xc0, ...version, 8, ...filler(8), scl, ...Array.from({ length: scl }, (_v, i) => 0x50 + i)];
        body.push(...filler(Math.max(0, 60 - body.length)));
      } else {
        const id = s.fromB ? filler(8) : [q.cid, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];
        body = [0x40 | (spin << 5) | (s.echoBack & 3), ...id, ...filler(len - 9)].slice(0, len);
      }
      const cport = s.kind === 5 && s.fromB && q.port > 40443 ? q.port - 1 : q.port;
      const u = udp(s.fromB ? 4433 : cport, s.fromB ? cport : 4433, body);
      const client = q.moved ? (v6f ? D6 : D4) : v6f ? A6 : A4;
      const [src, dst] = s.fromB ? [v6f ? B6 : B4, client] : [client, v6f ? B6 : B4];
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
export const STEPS: Record<IdentifierName, fc.Arbitrary<Step>> = {
  'tcp-ts': fc.record({ flow: fc.integer({ min: 0, max: 3 }), ...common }),
  'tcp-seqack': fc.record({ flow: fc.integer({ min: 7, max: 8 }), ...common }),
  'icmp-echo': fc.record({ flow: fc.integer({ min: 4, max: 6 }), ...common }),
  dns: fc.record({ flow: fc.integer({ min: 9, max: 10 }), ...common }),
  'quic-spin': fc.record({ flow: fc.integer({ min: 11, max: 12 }), ...common }),
};
const WEIGHT: Record<IdentifierName, number> = { 'tcp-ts': 4, 'tcp-seqack': 3, 'icmp-echo': 3, dns: 3, 'quic-spin': 3 };
export const step = fc.oneof(...(Object.keys(STEPS) as IdentifierName[]).map((k) => ({ arbitrary: STEPS[k], weight: WEIGHT[k] })));

// QUIC only, handshakes, rebindings and new connection ids often: flows move, and both agree.
export const quicStep = fc.record({ ...common, flow: fc.integer({ min: 11, max: 12 }), kind: fc.constantFrom(0, 0, 0, 1, 2, 3, 4, 4, 5, 5, 6) });
