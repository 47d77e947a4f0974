/**
 * The reading thread's records (src/pping/feed-ring.ts). For any frame, mostly near the fast
 * path's shape (Ethernet, IPv4, TCP) with any byte of its headers changed: writeTcp4 either
 * declines it or writes the record Decoder.decode and write() would, word for word. And a record
 * read back gives the PacketInfo the decoder gave, in every field the rules read.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Decoder, LINKTYPE_ETHERNET, PacketInfo } from '../../src/pping/decode.js';
import { FeedViews, REC_WORDS } from '../../src/pping/feed-ring.js';
import { eth, ipv4, tcpSeg } from '../helpers/bytes.js';

/** Mostly undefined; now and then a value of `arb`. */
const rarely = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary: arb, weight: 1 });

/** A TCP segment over IPv4 in Ethernet, optionally with the timestamp option, then mutations. */
const frame = fc
  .record({
    ts: fc.option(fc.tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff })), { nil: undefined }),
    payload: fc.nat({ max: 40 }),
    flags: fc.nat({ max: 255 }),
    seq: fc.nat({ max: 0xffffffff }),
    ack: fc.nat({ max: 0xffffffff }),
    sport: fc.nat({ max: 65535 }),
    dport: fc.nat({ max: 65535 }),
    src: fc.array(fc.nat({ max: 255 }), { minLength: 4, maxLength: 4 }),
    dst: fc.array(fc.nat({ max: 255 }), { minLength: 4, maxLength: 4 }),
    // The fields the fast path decides on, now and then set to anything (the rest stays valid).
    ipLen: rarely(fc.nat({ max: 120 })),
    versionIhl: rarely(fc.constantFrom(0x45, 0x46, 0x44, 0x65, 0x55)),
    frag: rarely(fc.constantFrom(0x0000, 0x0001, 0x2000, 0x4000, 0x1fff)),
    tcpOff: rarely(fc.nat({ max: 15 })),
    edits: rarely(fc.array(fc.tuple(fc.nat({ max: 70 }), fc.nat({ max: 255 })), { minLength: 1, maxLength: 3 })),
    cut: fc.nat({ max: 80 }),
  })
  .map((r) => {
    const seg = tcpSeg({ sport: r.sport, dport: r.dport, seq: r.seq, ack: r.ack, flags: r.flags, ts: r.ts, payload: r.payload });
    const f = eth(0x0800, [...ipv4(r.src, r.dst, 6, seg.length, 64), ...seg]);
    if (r.ipLen !== undefined) [f[16], f[17]] = [r.ipLen >> 8, r.ipLen & 0xff];
    if (r.versionIhl !== undefined) f[14] = r.versionIhl;
    if (r.frag !== undefined) [f[20], f[21]] = [r.frag >> 8, r.frag & 0xff];
    if (r.tcpOff !== undefined) f[46] = (r.tcpOff << 4) | (f[46] & 0x0f);
    for (const [at, v] of r.edits ?? []) if (at < f.length) f[at] = v;
    // Sometimes cut short (a snap length, or a broken frame).
    return Uint8Array.from(r.cut < 20 ? f.slice(0, Math.max(0, f.length - r.cut * 3)) : f);
  });

const RULE_FIELDS = ['family', 'proto', 'srcPort', 'dstPort', 'tcpFlags', 'payload', 'tcpPayload', 'ipLen', 'hasTs', 'tsval', 'tsecr', 'seq', 'ackNum', 'echo', 'dns', 'quic', 'linkOut'] as const;

test('writeTcp4 declines a frame or writes what the decoder and write() write; read() gives the decoder\'s PacketInfo back', () => {
  const { ctl, ring } = FeedViews.allocate();
  const v = new FeedViews(ctl, ring);
  let fast = 0;
  fc.assert(
    fc.property(frame, fc.boolean(), (bytes, egress) => {
      const dec = new Decoder();
      const info = new PacketInfo();
      const r = dec.decode(bytes, 0, bytes.length, LINKTYPE_ETHERNET, 0, info);
      // Both records start as the same filler: a word one of them leaves unwritten shows.
      const slow = FeedViews.base(0, 0);
      v.u32.fill(0xdeadbeef, slow, slow + REC_WORDS);
      if (r === 0) v.write(slow, 1_700_000_000, 5, egress, info);
      else v.writeSkip(slow, 1_700_000_000, 5, r);
      const quick = FeedViews.base(0, 1);
      v.u32.fill(0xdeadbeef, quick, quick + REC_WORDS);
      if (v.writeTcp4(quick, bytes, 0, bytes.length, 1_700_000_000, 5, egress)) {
        fast++;
        assert.equal(r, 0, 'the fast path takes only frames the decoder decodes');
        assert.deepEqual([...v.u32.subarray(quick, quick + REC_WORDS)], [...v.u32.subarray(slow, slow + REC_WORDS)]);
      }
      if (r !== 0) return;
      const back = new PacketInfo();
      back.bytes = v.u8;
      v.read(slow, back);
      v.readOther(slow, back);
      for (const k of RULE_FIELDS) assert.equal(back[k], info[k], k);
      assert.deepEqual([...v.u8.subarray(back.srcOff, back.srcOff + 4)], [...bytes.subarray(info.srcOff, info.srcOff + 4)]);
      assert.deepEqual([...v.u8.subarray(back.dstOff, back.dstOff + 4)], [...bytes.subarray(info.dstOff, info.dstOff + 4)]);
      assert.equal(v.egress(slow), egress);
    }),
    { numRuns: 4000 },
  );
  assert.ok(fast > 1000, `the fast path took ${fast} frames`);
});
