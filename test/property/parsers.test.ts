/**
 * Property tests: random bytes into every parser of untrusted input. None may throw (DataView
 * raises RangeError on an out-of-bounds read, so "no throw" also means "no out-of-bounds read"),
 * and every status is one of the defined ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SockaddrView, formatIp, parseIp, readSockaddr } from '../../src/packet/addr.js';
import { CmsgCursor } from '../../src/packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../../src/packet/errqueue.js';
import { IcmpErrorView, parseIcmpError } from '../../src/packet/icmp.js';
import { IcmpExtView, findIcmpExtensions, parseIcmpExtensions } from '../../src/packet/icmpext.js';
import { IpView, parseIpHeader } from '../../src/packet/ip.js';
import { TcpView, parseTcpHeader } from '../../src/packet/tcp.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PathlensError } from '../../src/core/errors.js';
import { Decoder, DNS_QUERY, DNS_RESPONSE, dnsIdOf, L3_ETHERTYPE, PacketInfo, QUIC_LONG, QUIC_SHORT } from '../../src/pping/decode.js';
import { CaptureReader, CaptureRecord } from '../../src/pping/pcap.js';
import { describeStatus } from '../../src/packet/status.js';
import { encodeQuery, encodeResponse, parseMessage, ptrAnswer, readName } from '../../src/resolve/dns.js';
import { parseLinkAddressReply, parseLinkReply, parseLinkTypeReply, parseNeighReply, parseRouteReply } from '../../src/packet/netlink.js';
import { parseFamilyId, parseTsinfo } from '../../src/packet/genetlink.js';
import { quotesProbe } from '../../src/probe/xsk-match.js';
import { readFileSync as readFixture } from 'node:fs';
import { ROOT } from '../helpers/lab.js';

const RUNS = { numRuns: 3000 };
const defined = (s: number) => !describeStatus(s).startsWith('status-');
const bytes = fc.uint8Array({ minLength: 0, maxLength: 300 });

/** Random bytes shaped like control messages (plausible lengths), to reach deeper code. */
const cmsgish = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 80 }), fc.constantFrom(0, 1, 41, 7), fc.constantFrom(11, 25, 35, 37, 2, 99), fc.uint8Array({ maxLength: 64 })), { maxLength: 4 })
  .map((parts) => {
    const out: number[] = [];
    for (const [len, level, type, data] of parts) {
      out.push(len & 0xff, 0, 0, 0, 0, 0, 0, 0, level, 0, 0, 0, type, 0, 0, 0, ...data);
    }
    return Uint8Array.from(out);
  });

test('cmsg walker: never throws, stops with a defined status', () => {
  fc.assert(
    fc.property(fc.oneof(bytes, cmsgish), (b) => {
      const c = new CmsgCursor().reset(new DataView(b.buffer), 0, b.length);
      let n = 0;
      while (c.next()) {
        assert.ok(c.dataOff + c.dataLen <= b.length);
        n++;
        assert.ok(n <= b.length);
      }
      assert.ok(defined(c.status));
    }),
    RUNS,
  );
});

test('error-queue parser: never throws; offender inside the buffer', () => {
  const rec = new ErrqueueRecord();
  const cur = new CmsgCursor();
  fc.assert(
    fc.property(fc.oneof(bytes, cmsgish), (b) => {
      const st = parseErrqueue(new DataView(b.buffer), 0, b.length, rec, cur);
      assert.ok(defined(st));
      if (rec.offender.family) assert.ok(rec.offender.addrOff + (rec.offender.family === 4 ? 4 : 16) <= b.length);
    }),
    RUNS,
  );
});

test('ICMP error parser: never throws, any offset/length inside the buffer', () => {
  const v = new IcmpErrorView();
  fc.assert(
    fc.property(bytes, fc.nat(), fc.nat(), fc.constantFrom<4 | 6>(4, 6), (b, o, l, fam) => {
      const off = b.length ? o % (b.length + 1) : 0;
      const len = (b.length - off + 1) > 0 ? l % (b.length - off + 1) : 0;
      const st = parseIcmpError(b, new DataView(b.buffer), off, len, fam, v);
      assert.ok(defined(st));
      if (st === 0) {
        assert.ok(v.inner.payloadOff <= off + len);
        assert.ok(v.innerPayloadOff + v.innerPayloadLen <= off + len);
      }
    }),
    RUNS,
  );
});

test('ICMP error parser on IP-shaped quotes (version nibble 4/6 forced)', () => {
  const v = new IcmpErrorView();
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 8, maxLength: 200 }), fc.constantFrom(0x45, 0x46, 0x4f, 0x60, 0x61), fc.constantFrom<4 | 6>(4, 6), (b, first, fam) => {
      b[0] = fam === 4 ? 11 : 3;
      if (b.length > 8) b[8] = first;
      const st = parseIcmpError(b, new DataView(b.buffer), 0, b.length, fam, v);
      assert.ok(defined(st));
    }),
    RUNS,
  );
});

test('IP header parser: never throws; payload inside the buffer', () => {
  const v = new IpView();
  fc.assert(
    fc.property(bytes, fc.boolean(), (b, quoted) => {
      const st = parseIpHeader(b, 0, b.length, v, quoted);
      assert.ok(defined(st));
      if (st === 0) assert.ok(v.payloadOff + v.payloadLen <= b.length);
    }),
    RUNS,
  );
});

test('sockaddr reader: never throws for any length', () => {
  const v = new SockaddrView();
  fc.assert(
    fc.property(bytes, fc.nat(64), (b, l) => {
      const st = readSockaddr(new DataView(b.buffer), 0, Math.min(l, b.length), v);
      assert.ok(defined(st));
    }),
    RUNS,
  );
});

test('IP text round trip: format(parse(x)) is canonical and stable', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
      const a = parseIp(text);
      const f = formatIp(a, 0, a.length === 4 ? 4 : 6);
      assert.deepEqual(parseIp(f), a);
      assert.equal(formatIp(parseIp(f), 0, a.length === 4 ? 4 : 6), f);
    }),
    RUNS,
  );
});

test('ICMP extension parsers: never throw, defined statuses, labels only on OK', () => {
  const v = new IcmpExtView();
  // Extension-shaped bytes (version 2 first) reach the object walk; raw bytes test the rest.
  const extish = fc.uint8Array({ minLength: 4, maxLength: 80 }).map((b) => {
    b[0] = 0x20 | (b[0] & 0x0f);
    b[2] = b[3] = 0;
    return b;
  });
  fc.assert(
    fc.property(fc.oneof(bytes, extish), fc.nat(100), fc.nat(300), (b, off, len) => {
      const s = parseIcmpExtensions(b, off, len, v);
      assert.ok(defined(s));
      if (s !== 0) assert.equal(v.labels(), null);
      assert.ok(v.nLabels <= 16);
    }),
    RUNS,
  );
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), fc.nat(50), fc.nat(400), fc.constantFrom(4 as const, 6 as const), (b, off, len, fam) => {
      const s = findIcmpExtensions(b, off, len, fam, v);
      assert.ok(defined(s));
      if (s !== 0) assert.equal(v.labels(), null, 'no labels survive a failed parse');
    }),
    RUNS,
  );
});

test('TCP header parser: never throws; header and payload inside the given range', () => {
  const v = new TcpView();
  fc.assert(
    fc.property(bytes, fc.nat(40), fc.boolean(), (b, skip, quoted) => {
      const off = Math.min(skip, b.length);
      const st = parseTcpHeader(b, off, b.length - off, v, quoted);
      assert.ok(defined(st));
      if (st === 0 && v.headerLen > 0) assert.ok(off + v.headerLen + v.payloadLen === b.length);
    }),
    RUNS,
  );
});

test('DNS identifier: never throws; -1 or an unsigned 32-bit value; nothing past the given length read', () => {
  // DNS-shaped: a header with one question, then labels of any lengths (and random bytes).
  const dnsish = fc.tuple(fc.uint8Array({ maxLength: 12, minLength: 12 }), fc.array(fc.uint8Array({ maxLength: 70 }), { maxLength: 8 }), fc.uint8Array({ maxLength: 20 })).map(([h, labels, tail]) => {
    const head = Uint8Array.from(h);
    head[4] = 0;
    head[5] = 1;
    return Uint8Array.from([...head, ...labels.flatMap((l) => [l.length, ...l]), 0, ...tail]);
  });
  fc.assert(
    fc.property(fc.oneof(bytes, dnsish), fc.nat(300), fc.constantFrom(DNS_QUERY, DNS_RESPONSE), fc.uint8Array({ maxLength: 16 }), (b, cut, kind, junk) => {
      const len = Math.min(cut, b.length);
      const id = dnsIdOf(b, 0, len, kind);
      assert.ok(id === -1 || (Number.isInteger(id) && id >= 0 && id <= 0xffffffff));
      // What lies after `len` changes nothing.
      assert.equal(dnsIdOf(Uint8Array.from([...b.subarray(0, len), ...junk]), 0, len, kind), id);
    }),
    RUNS,
  );
});

test('pping frame decoder: never throws, for every link type; addresses inside the frame', () => {
  const dec = new Decoder();
  dec.dns = true;
  const info = new PacketInfo();
  fc.assert(
    fc.property(bytes, fc.constantFrom(0, 1, 14, 101, 113, 228, 229, 276, L3_ETHERTYPE, 999), fc.constantFrom(0x0800, 0x86dd, 0x8100, 0), (b, lt, et) => {
      const r = dec.decode(b, 0, b.length, lt, et, info);
      if (r === 0) assert.ok(info.srcOff >= 0 && info.dstOff + (info.family === 4 ? 4 : 16) <= b.length);
    }),
    RUNS,
  );
});

/** A QUIC long header's shape: any first byte with the form bit, a version, ids of any length byte. */
const longHeader = fc
  .tuple(fc.integer({ min: 0x80, max: 0xff }), fc.constantFrom([0, 0, 0, 1], [0, 0, 0, 0], [0x6b, 0x33, 0x43, 0xcf]), fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 24 }), fc.uint8Array({ maxLength: 40 }))
  .map(([first, version, dcl, scl, rest]) => Uint8Array.from([first, ...version, dcl, ...new Array<number>(Math.min(dcl, 24)).fill(0xd), scl, ...rest]));

test('pping UDP decoding (DNS and QUIC ports): never throws; a QUIC result is a whole short header on a QUIC port, or a server long header whole up to its source id length', () => {
  const dec = new Decoder();
  dec.dns = true;
  dec.quicPorts = [443, 4433];
  const info = new PacketInfo();
  const port = fc.constantFrom(53, 443, 4433, 40000, 0);
  fc.assert(
    fc.property(port, port, fc.oneof(fc.uint8Array({ maxLength: 64 }), longHeader), fc.integer({ min: 0, max: 80 }), (sp, dp, payload, cut) => {
      // A raw IPv4 header (20 bytes) and UDP header; the IP length as the payload says, the frame maybe cut short.
      const len = 28 + payload.length;
      const f = Uint8Array.from([0x45, 0, len >> 8, len & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, sp >> 8, sp & 0xff, dp >> 8, dp & 0xff, (len - 20) >> 8, (len - 20) & 0xff, 0, 0, ...payload]);
      const n = Math.min(f.length, 20 + cut);
      const r = dec.decode(f, 0, n, 101, 0, info);
      if (r === 0 && info.quic === QUIC_SHORT) {
        assert.ok([443, 4433].includes(sp) || [443, 4433].includes(dp));
        assert.ok(n >= 29 && (f[28] & 0xc0) === 0x40 && payload.length >= 21);
        assert.equal(info.spin, (f[28] >> 5) & 1);
        // The destination connection id's bytes the frame holds, at most 20, right after the first byte.
        assert.equal(info.cidOff, 29);
        assert.equal(info.cidLen, Math.min(20, n - 29));
      } else if (r === 0 && info.quic === QUIC_LONG) {
        // A server's long header, version 1 ids, whole up to its source id's length.
        assert.ok(info.fromServer && [443, 4433].includes(sp));
        assert.ok(n >= 35 && (f[28] & 0x80) !== 0 && (f[29] | f[30] | f[31] | f[32]) !== 0);
        const dcl = f[33];
        assert.ok(dcl <= 20 && n >= 35 + dcl);
        assert.equal(info.cidLen, f[34 + dcl]);
        assert.ok(info.cidLen <= 20);
      } else if (r === 0) {
        assert.equal(info.quic, 0);
      }
    }),
    RUNS,
  );
});

/**
 * Writes `b` to `path` and reads it back, calling `check` on every record; any failure must be a
 * PathlensError (then handed to `failed`).
 */
function readBack(path: string, b: Uint8Array, rec: CaptureRecord, check: () => void, failed: (e: Error) => void = () => {}): void {
  writeFileSync(path, b);
  try {
    const r = CaptureReader.open(path);
    try {
      while (r.next(rec)) check();
    } finally {
      r.close();
    }
  } catch (e) {
    assert.ok(e instanceof PathlensError, String(e));
    failed(e);
  }
}

test('pcap/pcapng reader: random and mutated files end in records or a PathlensError, nothing else', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pathlens-prop-'));
  const path = join(dir, 'f');
  const rec = new CaptureRecord();
  const pcapHead = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
  const ngHead = [0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0];
  const file = fc.oneof(
    bytes,
    bytes.map((b) => Uint8Array.from([...pcapHead, ...b])),
    bytes.map((b) => Uint8Array.from([...ngHead, ...b])),
  );
  fc.assert(
    fc.property(file, (b) => {
      let n = 0;
      readBack(path, b, rec, () => {
        assert.ok(rec.off >= 0 && rec.off + rec.len <= rec.data.length);
        assert.ok(++n <= b.length);
      });
    }),
    { numRuns: 600 },
  );
});

test('pcapng reader: structured files with extreme lengths, resolutions and offsets give sane records or one error naming the file and byte', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pathlens-prop-'));
  const path = join(dir, 'g.pcapng');
  const rec = new CaptureRecord();
  const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  const u16 = (v: number) => [v & 0xff, (v >>> 8) & 0xff];
  const pad4 = (b: number[]) => [...b, ...new Array((4 - (b.length % 4)) % 4).fill(0)];
  const block = (type: number, body: number[], total?: number) => {
    const len = total ?? 12 + body.length;
    return [...u32(type), ...u32(len), ...body, ...u32(len)];
  };
  // Lengths where 32-bit arithmetic wraps, next to ordinary ones.
  const length = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constantFrom(0x7ffffffc, 0x7ffffffd, 0x7ffffffe, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff), fc.nat({ max: 0xffffffff }));
  const option = fc.oneof(
    fc.record({ code: fc.constant(9), value: fc.integer({ min: 0, max: 255 }).map((v) => [v]) }),
    fc.record({ code: fc.constant(14), value: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 }) }),
    fc.record({ code: fc.integer({ min: 1, max: 20 }), value: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 12 }) }),
  );
  const opts = (os: { code: number; value: number[] }[]) => [...os.flatMap((o) => [...u16(o.code), ...u16(o.value.length), ...pad4(o.value)]), 0, 0, 0, 0];
  const packet = fc.record({
    type: fc.constantFrom(6, 2, 3),
    cap: length,
    orig: length,
    tsHi: fc.nat({ max: 0xffffffff }),
    tsLo: fc.nat({ max: 0xffffffff }),
    data: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 64 }),
    total: fc.option(length, { nil: undefined }),
  });
  const file = fc.record({ idbOpts: fc.array(option, { maxLength: 3 }), packets: fc.array(packet, { minLength: 1, maxLength: 4 }) }).map(({ idbOpts, packets }) => {
    const shb = block(0x0a0d0d0a, [...u32(0x1a2b3c4d), 1, 0, 0, 0, ...new Array(8).fill(0xff)]);
    const idb = block(1, [1, 0, 0, 0, ...u32(65535), ...opts(idbOpts)]);
    const pkts = packets.flatMap((p) => {
      const head = p.type === 2 ? [0, 0, 0, 0] : u32(0);
      const body = p.type === 3 ? [...u32(p.orig), ...pad4(p.data)] : [...head, ...u32(p.tsHi), ...u32(p.tsLo), ...u32(p.cap), ...u32(p.orig), ...pad4(p.data)];
      return block(p.type, body, p.total);
    });
    return Uint8Array.from([...shb, ...idb, ...pkts]);
  });
  fc.assert(
    fc.property(file, (b) => {
      readBack(
        path,
        b,
        rec,
        () => {
          assert.ok(rec.off >= 0 && rec.len >= 0 && rec.off + rec.len <= rec.data.length, 'the record lies in the buffer');
          assert.ok(Number.isInteger(rec.sec) && rec.sec >= 0 && rec.sec <= 253402300799, `a timestamp a clock can show (${rec.sec})`);
          assert.ok(Number.isInteger(rec.nsec) && rec.nsec >= 0 && rec.nsec < 1e9);
        },
        (e) => assert.match(e.message, /g\.pcapng: .*\(at byte \d+\)$/, 'one message naming the file and the byte'),
      );
    }),
    { numRuns: 3000 },
  );
});

/** A DNS label as a resolver may send it: any bytes 1..63 long. */
const label = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
const dnsName = fc.array(label, { minLength: 1, maxLength: 6 }).map((l) => l.join('.'));

test('DNS parser: random bytes and mutated answers give a message or an error string, never a throw; names stay printable', () => {
  // Answers the lab server's encoder writes, then damaged: flipped bytes, cut short, counts raised.
  const answers = fc.tuple(dnsName, fc.array(dnsName, { maxLength: 4 }), fc.integer({ min: 0, max: 0xffff })).map(([q, targets, id]) => {
    const qb = new Uint8Array(512);
    const n = encodeQuery(qb, id, q);
    const m = parseMessage(qb.subarray(0, n));
    if ('error' in m) throw new Error(m.error);
    const out = new Uint8Array(1232);
    const len = encodeResponse(out, m, 0, targets, 60);
    return { bytes: out.slice(0, Math.max(0, len)), q, targets, id };
  });
  const check = (b: Uint8Array) => {
    const m = parseMessage(b);
    if ('error' in m) {
      assert.equal(typeof m.error, 'string');
      return;
    }
    for (const a of m.answers) {
      for (const t of [a.name, a.target]) if (t !== null) assert.match(t, /^[A-Za-z0-9_\-.\\]*$/);
      assert.ok(a.ttl >= 0 && a.ttl <= 0x7fffffff);
    }
    if (m.question) ptrAnswer(m, m.id, m.question.name);
  };
  fc.assert(fc.property(bytes, (b) => check(b)), RUNS);
  fc.assert(
    fc.property(answers, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(), ({ bytes: b0 }, flips, cut) => {
      const b = b0.slice(0, b0.length - (cut % (b0.length + 1)));
      for (const [at, v] of flips) if (b.length) b[at % b.length] = v;
      check(b);
    }),
    RUNS,
  );
  // Undamaged, they read back exactly.
  fc.assert(
    fc.property(answers, ({ bytes: b, q, targets, id }) => {
      const m = parseMessage(b);
      assert.ok(!('error' in m));
      assert.deepEqual(ptrAnswer(m, id, q), { rcode: 0, names: targets, ttl: targets.length ? 60 : null });
    }),
    RUNS,
  );
});

test('DNS name reader: any start offset and end inside the buffer; a result ends inside it', () => {
  fc.assert(
    fc.property(bytes, fc.nat(), fc.nat(), (b, o, e) => {
      const end = b.length ? e % (b.length + 1) : 0;
      const off = end ? o % end : 0;
      const r = readName(b, off, end);
      if (typeof r !== 'string') assert.ok(r[1] > off && r[1] <= end, `name ends at ${r[1]}, outside (${off}, ${end}]`);
    }),
    RUNS,
  );
});

test('rtnetlink and generic netlink parsers: random bytes and damaged recorded replies give an answer, an errno or an error string, never a throw', () => {
  const rec = JSON.parse(readFixture(`${ROOT}test/fixtures/netlink/replies.json`, 'utf8')) as Record<string, string>;
  const recorded = Object.values(rec).map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
  const check = (b: Uint8Array, seq: number) => {
    for (const r of [parseRouteReply(b, b.length, seq), parseLinkReply(b, b.length, seq), parseLinkTypeReply(b, b.length, seq), parseLinkAddressReply(b, b.length, seq), parseNeighReply(b, b.length, seq), parseFamilyId(b, b.length, seq), parseTsinfo(b, b.length, seq)]) {
      assert.ok('ok' in r || ('errno' in r && Number.isInteger(r.errno)) || ('error' in r && typeof r.error === 'string'));
      if ('ok' in r && typeof r.ok === 'object' && 'nexthops' in r.ok) assert.ok(r.ok.nexthops >= 0);
      if ('ok' in r && typeof r.ok === 'number') assert.ok(r.ok >= 0 && r.ok <= 0xffff);
      if ('ok' in r && typeof r.ok === 'string') assert.match(r.ok, /^[!-~]*$/);
    }
  };
  fc.assert(fc.property(bytes, fc.integer({ min: 0, max: 9 }), (b, seq) => check(b, seq)), RUNS);
  fc.assert(
    fc.property(fc.constantFrom(...recorded), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(), fc.integer({ min: 1, max: 5 }), (b0, flips, cut, seq) => {
      const b = b0.slice(0, b0.length - (cut % (b0.length + 1)));
      for (const [at, v] of flips) if (b.length) b[at % b.length] = v;
      check(b, seq);
    }),
    RUNS,
  );
});

test('--xdp frame test (probe/xsk-match.ts): any bytes, offset and length give a boolean, never a throw or a read past the buffer', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(220), fc.nat(260), fc.constantFrom(4, 6) as fc.Arbitrary<4 | 6>, (b, off, len, family) => {
      const r = quotesProbe(b, off, len, { family, sport: 40000, dportLo: 33434, dportHi: 33464 });
      assert.equal(typeof r, 'boolean');
      // What lies past the buffer cannot change the answer: the same bytes in a larger buffer, cut at the same end.
      const big = new Uint8Array(b.length + 64).fill(0xff);
      big.set(b);
      assert.equal(quotesProbe(big, off, Math.min(len, Math.max(0, b.length - off)), { family, sport: 40000, dportLo: 33434, dportHi: 33464 }), quotesProbe(b, off, Math.min(len, Math.max(0, b.length - off)), { family, sport: 40000, dportLo: 33434, dportHi: 33464 }));
    }),
    RUNS,
  );
});
