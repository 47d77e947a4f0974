/**
 * Writes the seed corpus that is not recorded live (fuzz/record.ts records the kernel's answers in
 * a lab): `node dist/fuzz/seeds.js` rewrites fuzz/corpus/TARGET/fix-* from
 *  - the captures of test/fixtures/epping/ (real traffic: ePPing's test captures): the files cut
 *    at a record boundary, the same packets as pcapng, their frames, IP packets and TCP segments;
 *  - test/fixtures/netlink/replies.json (a lab router's rtnetlink and genetlink answers);
 *  - ring-buffer records laid out as bpf/ktrace.h and bpf/pping.h lay them out;
 *  - the target files, lab specs and web configuration files of the docs and deploy/.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVENT, EV_FLOW, EV_RTT } from '../src/pping/bpf-layout.js';
import { KEY, RECORD, REC_COMPLETE, REC_PARTIAL, TRIP } from '../src/ktrace/layout.js';
import { STAGES, pathOrder } from '../src/ktrace/stages.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CORPUS = join(ROOT, 'fuzz', 'corpus');

const written = new Map<string, number>();
function put(target: string, name: string, b: Uint8Array | string): void {
  const dir = join(CORPUS, target);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `fix-${name}`), b);
  written.set(target, (written.get(target) ?? 0) + 1);
}

const withByte = (first: number, ...parts: Uint8Array[]) => {
  const n = parts.reduce((s, p) => s + p.length, 1);
  const o = new Uint8Array(n);
  o[0] = first;
  let at = 1;
  for (const p of parts) {
    o.set(p, at);
    at += p.length;
  }
  return o;
};

/** A pcap file's header and its records (little-endian files only: the fixtures are). */
function records(file: Uint8Array): { head: Uint8Array; recs: { hdr: Uint8Array; data: Uint8Array }[] } {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const recs: { hdr: Uint8Array; data: Uint8Array }[] = [];
  for (let at = 24; at + 16 <= file.length; ) {
    const incl = v.getUint32(at + 8, true);
    recs.push({ hdr: file.subarray(at, at + 16), data: file.subarray(at + 16, at + 16 + incl) });
    at += 16 + incl;
  }
  return { head: file.subarray(0, 24), recs };
}

/** The same packets as a pcapng file: a section header, one interface (ns resolution), enhanced packet blocks. */
function pcapng(recs: { hdr: Uint8Array; data: Uint8Array }[], linktype: number): Uint8Array {
  const out: number[] = [];
  const u32 = (n: number) => out.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  const u16 = (n: number) => out.push(n & 0xff, n >>> 8);
  u32(0x0a0d0d0a), u32(28), u32(0x1a2b3c4d), u16(1), u16(0), u32(0xffffffff), u32(0xffffffff), u32(28);
  // IDB with if_tsresol = 9 (ns), then opt_endofopt.
  u32(1), u32(32), u16(linktype), u16(0), u32(0), u16(9), u16(1), out.push(9, 0, 0, 0), u16(0), u16(0), u32(32);
  for (const r of recs) {
    const hv = new DataView(r.hdr.buffer, r.hdr.byteOffset, 16);
    const ns = BigInt(hv.getUint32(0, true)) * 1_000_000_000n + BigInt(hv.getUint32(4, true));
    const pad = (4 - (r.data.length % 4)) % 4;
    const len = 32 + r.data.length + pad;
    u32(6), u32(len), u32(0), u32(Number(ns >> 32n)), u32(Number(ns & 0xffffffffn)), u32(r.data.length), u32(hv.getUint32(12, true));
    out.push(...r.data, ...new Array(pad).fill(0));
    u32(len);
  }
  return Uint8Array.from(out);
}

function captures(): void {
  // DNS over UDP (the decoder walks its question): a query and a response from the DNS fixture.
  const dns = records(new Uint8Array(readFileSync(join(ROOT, 'test', 'fixtures', 'dns', 'queries.pcap')))).recs;
  dns.slice(0, 2).forEach((r, i) => put('frame', `dns-${i ? 'response' : 'query'}`, withByte(1, Uint8Array.of(0), r.data)));
  const dir = join(ROOT, 'test', 'fixtures', 'epping');
  let frames = 0;
  const seenShape = new Set<string>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.pcap')).sort()) {
    const file = new Uint8Array(readFileSync(join(dir, f)));
    const { head, recs } = records(file);
    // The capture target takes 16 KiB: as many whole records as fit.
    let n = 0;
    let size = 24;
    while (n < recs.length && size + 16 + recs[n].data.length <= 16384) size += 16 + recs[n++].data.length;
    put('capture', f, file.subarray(0, size));
    if (f.includes('r0')) put('capture', `${f}ng`, pcapng(recs.slice(0, Math.min(n, 60)), new DataView(head.buffer, head.byteOffset).getUint32(20, true)));
    for (const r of recs) {
      const d = r.data;
      if (d.length < 14) continue;
      const et = (d[12] << 8) | d[13];
      const l3 = d.subarray(14);
      const proto = et === 0x0800 ? l3[9] : et === 0x86dd ? l3[6] : -1;
      const shape = `${et}-${proto}-${d.length > 100}`;
      if (seenShape.has(shape) || frames >= 24) continue;
      seenShape.add(shape);
      frames++;
      put('frame', `${f}-${frames}`, withByte(1, Uint8Array.of(0), d));
      put('frame', `${f}-${frames}-l3`, withByte(7, Uint8Array.of(et === 0x86dd ? 1 : 0), l3));
      if (et === 0x0800 || et === 0x86dd) put('ip-header', `${f}-${frames}`, withByte(0, l3));
      const l4 = et === 0x0800 ? l3.subarray((l3[0] & 15) * 4) : et === 0x86dd ? l3.subarray(40) : null;
      if (l4 && proto === 6) {
        put('tcp-header', `${f}-${frames}`, withByte(0, l4));
        put('tcp-header', `${f}-${frames}-quoted`, withByte(1, l4.subarray(0, 8)));
      }
    }
  }
}

function netlink(): void {
  const rec = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'netlink', 'replies.json'), 'utf8')) as Record<string, string>;
  const seqs: Record<string, number> = { route4: 1, fib4: 2, fib6: 3, noroute: 4, link: 5, neigh4: 6, neigh6: 7, noneigh: 0, tsinfo_lo: 3, tsinfo_ifb0: 4 };
  for (const [k, hex] of Object.entries(rec)) put('netlink', k, withByte(seqs[k] ?? 1, Uint8Array.from(Buffer.from(hex, 'hex'))));
}

/** Replies a --xdp sweep takes: Time Exceeded (IPv4) and port unreachable (IPv6) quoting a probe from port 40000 to 33434 + 2. */
function xskFrames(): void {
  for (const family of [4, 6] as const) {
    const ipLen = family === 4 ? 20 : 40;
    const f = new Uint8Array(14 + ipLen + 8 + ipLen + 8 + 8);
    const v = new DataView(f.buffer);
    v.setUint16(12, family === 4 ? 0x0800 : 0x86dd);
    const inner = 14 + ipLen + 8;
    if (family === 4) {
      f.set([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1], 14);
      f.set([0x45, 0, 0, 0, 0, 0, 0, 0, 1, 17], inner);
      f[14 + ipLen] = 11;
    } else {
      f.set([0x60, 0, 0, 0, 0, 0, 58, 64], 14);
      f.set([0x60, 0, 0, 0, 0, 0, 17, 1], inner);
      f[14 + ipLen] = 1;
      f[14 + ipLen + 1] = 4;
    }
    v.setUint16(inner + ipLen, 40000);
    v.setUint16(inner + ipLen + 2, 33436);
    // First byte: bit 0 the family, the rest the port range's width (here 16: up to 33434 + 16).
    put('xsk-match', `reply${family}`, withByte((16 << 1) | (family === 6 ? 1 : 0), f));
  }
}

function le64(v: DataView, off: number, n: number): void {
  v.setBigUint64(off, BigInt(n), true);
}

function ringRecords(): void {
  // ktrace: complete trips, TX (ping out, reply in) and RX (request in, reply out).
  for (const rx of [false, true]) {
    const b = new Uint8Array(1 + RECORD.size);
    const v = new DataView(b.buffer, 1);
    b[0] = rx ? 1 : 0;
    v.setUint16(RECORD.key, 77, true);
    let t = 5_000_000_000;
    for (const s of pathOrder(rx)) le64(v, RECORD.trip + TRIP.t + 8 * s.id, (t += 700));
    v.setUint32(RECORD.trip + TRIP.pid, 4242, true);
    b.set(new TextEncoder().encode('ping'), 1 + RECORD.trip + TRIP.comm);
    v.setUint32(RECORD.kind, REC_COMPLETE, true);
    put('ktrace-record', rx ? 'rx' : 'tx', b);
  }
  void STAGES;
  // ktrace packet mode: a UDP datagram out (complete), a TCP segment in (its buffer reused).
  for (const [lead, out, kind] of [[2, 1, REC_COMPLETE], [3, 0, REC_PARTIAL]] as const) {
    const b = new Uint8Array(1 + RECORD.size);
    const v = new DataView(b.buffer, 1);
    b[0] = lead;
    b.set(lead === 2 ? [10, 0, 0, 1] : [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 1 + RECORD.key + KEY.local);
    b.set(lead === 2 ? [10, 0, 0, 2] : [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 1 + RECORD.key + KEY.remote);
    v.setUint16(RECORD.key + KEY.id, 40000, true);
    v.setUint16(RECORD.key + KEY.seq, lead === 2 ? 53 : 443, true);
    v.setUint8(RECORD.key + KEY.out, out);
    v.setBigUint64(RECORD.key + KEY.skb, 0xffff888012345600n, true);
    let t = 5_000_000_000;
    for (const s of [12, 1, 2, 3, 4, 5]) le64(v, RECORD.trip + TRIP.t + 8 * s, (t += 700));
    v.setUint16(RECORD.trip + TRIP.len, 128, true);
    v.setUint32(RECORD.trip + TRIP.tcp_seq, 123456789, true);
    v.setUint8(RECORD.trip + TRIP.tcp_flags, 0x18);
    v.setUint32(RECORD.kind, kind, true);
    put('ktrace-record', lead === 2 ? 'udp-out' : 'tcp-in', b);
  }
  // pping: an RTT event and a flow event, IPv4 and IPv6.
  for (const [type, fam] of [[EV_RTT, 4], [EV_RTT, 6], [EV_FLOW, 4], [EV_FLOW, 6]] as const) {
    const b = new Uint8Array(EVENT.size);
    const v = new DataView(b.buffer);
    b[EVENT.type] = type;
    b[EVENT.family] = fam;
    b[EVENT.proto] = 6;
    le64(v, EVENT.time, 123_456_789_000);
    if (fam === 4) b.set([10, 0, 0, 1], EVENT.saddr), b.set([10, 0, 0, 2], EVENT.daddr);
    else b.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], EVENT.saddr), b.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], EVENT.daddr);
    v.setUint16(EVENT.sport, 443, true);
    v.setUint16(EVENT.dport, 51000, true);
    le64(v, EVENT.rtt, 20_000_000);
    le64(v, EVENT.min_rtt, 19_000_000);
    b[EVENT.flow_event] = 1;
    b[EVENT.reason] = 1;
    put('pping-record', `${type === EV_RTT ? 'rtt' : 'flow'}${fam}`, b);
  }
}

function configs(): void {
  put('monitor-targets', 'docs.yaml', 'defaults: {method: auto, interval: 1, port: 33434, tcp_port: 80,\n           thresholds: {loss_degraded: 5, loss_down: 100, rtt_degraded_ms: 0, jitter_degraded_ms: 0, rise: 2, fall: 2}}\ntargets:\n  - 192.0.2.1\n  - {target: 192.0.2.1, path: wan-b, iface: wan1, mark: 2}\n  - {target: example.net, method: tcp, tcp_port: 443, labels: {site: par}}\n');
  put('monitor-targets', 'list.json', '{"defaults": {"method": "icmp", "interval": 0.5}, "targets": ["192.0.2.1", {"target": "2001:db8::1", "method": "udp", "port": 5000, "source": "2001:db8::2", "netns": "blue", "thresholds": {"fall": 3}}]}\n');
  put('monitor-targets', 'anchors.yaml', 'defaults: &d {method: udp, interval: 2}\ntargets:\n  - {<<: *d, target: 198.51.100.7, labels: {site: ams, rack: "4"}}\n  - 198.51.100.8\n');
  put('lab-spec', 'docs.yaml', 'name: mylab\nseed: 7\nimpair_mode: auto\ndns: true\nnodes:\n  - {name: src, role: host}\n  - {name: r1, role: router, silent: true}\n  - {name: r2, role: router, icmp_ratelimit: {ms: 1000, msgs_per_sec: 100, burst: 10}}\n  - {name: r3, role: router, routes: [{to: phantom, type: unreachable}], nat_towards: dst}\n  - {name: dst, role: host}\nlinks:\n  - {a: src, b: r1, impair: {delay_ms: 5, jitter_ms: 1, loss: 0.01}}\n  - {a: r1, b: r2, mtu: 1400}\n  - {a: r2, b: r3, a_to_b: {delay_ms: 20}, b_to_a: {loss: "2%"}}\n  - {a: r3, b: dst, impair: {rate_mbit: 100, reorder: 0.01, duplicate: 0.001}}\n');
  put('lab-spec', 'small.yaml', 'name: fz\nnodes:\n  - {name: src, role: host}\n  - {name: r1, role: router, routes: [{to: "2001:db8::/64", type: prohibit}]}\n  - {name: dst, role: host}\nlinks:\n  - {a: src, b: r1}\n  - {a: r1, b: dst, mtu: 1280}\n');
  put('web-config', 'tls.yml', 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS12\n  max_version: TLS13\n');
  put('web-config', 'auth.yml', 'basic_auth_users:\n  prometheus: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n');
}

mkdirSync(CORPUS, { recursive: true });
for (const t of readdirSync(CORPUS, { withFileTypes: true })) {
  if (!t.isDirectory()) continue;
  for (const f of readdirSync(join(CORPUS, t.name))) if (f.startsWith('fix-')) rmSync(join(CORPUS, t.name, f));
}
captures();
netlink();
xskFrames();
ringRecords();
configs();
for (const [t, n] of [...written].sort()) process.stdout.write(`${t}: ${n} seeds\n`);
