/**
 * --burst: a TCP flow sampled once per 100 ms; a segment with an older TSval (reordered, or sent
 * again) gives its direction N timestamps past the rate limit, and exactly N more samples follow,
 * counted; without --burst nothing changes (ePPing's sampling).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decoder, LINKTYPE_ETHERNET, PacketInfo } from '../../src/pping/decode.js';
import type { RttEvent } from '../../src/pping/events.js';
import { Matcher } from '../../src/pping/matcher.js';
import { eth, ipv4, tcpSeg } from '../helpers/bytes.js';

const A = [10, 1, 0, 1];
const B = [10, 2, 0, 9];
const ACK = 0x10;
const PSH = 0x08;

function run(burst: number): { rtts: RttEvent[]; m: Matcher } {
  const rtts: RttEvent[] = [];
  const m = new Matcher({ tcp: true, rateLimitNs: 100e6, burst }, { event: (e) => e.type === 'rtt' && rtts.push(e) });
  const dec = new Decoder();
  const info = new PacketInfo();
  let t = 5_000_000_000;
  const feed = (src: number[], dst: number[], seg: number[]) => {
    const f = Uint8Array.from(eth(0x0800, [...ipv4(src, dst, 6, seg.length, 64), ...seg]));
    assert.equal(dec.decode(f, 0, f.length, LINKTYPE_ETHERNET, 0, info), 0);
    m.process(info, Math.floor(t / 1e9), t % 1e9, false);
  };
  // One segment every 10 ms for 1 s, each with a new TSval, each acknowledged 1 ms later.
  for (let i = 0; i < 100; i++) {
    const tsval = 1000 + i;
    feed(A, B, tcpSeg({ sport: 40000, dport: 443, flags: ACK | PSH, ts: [tsval, 77], payload: 100 }));
    if (i === 50) feed(A, B, tcpSeg({ sport: 40000, dport: 443, flags: ACK | PSH, ts: [tsval - 5, 77], payload: 100 })); // older: reordered
    t += 1_000_000;
    feed(B, A, tcpSeg({ sport: 443, dport: 40000, flags: ACK, ts: [78 + i, tsval] }));
    t += 9_000_000;
  }
  return { rtts, m };
}

test('--burst: after an older TSval, the next N timestamps bypass the rate limit, N more samples, counted', () => {
  const base = run(0);
  const burst = run(3);
  assert.equal(base.m.stats.burstStamps, 0);
  assert.ok(base.rtts.length >= 8 && base.rtts.length <= 11, `about one sample per 100 ms: ${base.rtts.length}`);
  assert.equal(burst.m.stats.burstStamps, 3);
  // The older segment went out at 500 ms: the next three segments (510, 520, 530 ms... past the
  // rate limit) are sampled at their ACKs, 1 ms later; without --burst none of them is.
  const at = (e: RttEvent) => Math.round((e.sec * 1e9 + e.nsec - 5e9) / 1e6);
  const after = (r: RttEvent[]) => r.map(at).filter((ms) => ms > 500 && ms < 545);
  assert.equal(after(burst.rtts).length, after(base.rtts).length + 3, `samples 500-545 ms: ${after(base.rtts)} without, ${after(burst.rtts)} with`);
  assert.ok(burst.rtts.every((e) => e.rtt === 1_000_000), 'each an RTT of 1 ms');
  assert.ok(burst.rtts.length > base.rtts.length, `${burst.rtts.length} samples with, ${base.rtts.length} without`);
});
