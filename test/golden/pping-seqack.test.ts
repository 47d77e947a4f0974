/**
 * `pathlens pping --seqack` against tshark on a real TCP connection without timestamps
 * (test/fixtures/seqack: captured in a lab with 3 % loss, tshark's output recorded beside it):
 * every sample is tshark's ack_rtt for the same ACK (within 50 µs), no sample is taken for data
 * sent before a retransmission and acknowledged after it (Karn), and every ack_rtt tshark gives
 * that pathlens does not is accounted for. Without --seqack the connection gives nothing, as in
 * ePPing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PpingDoneEvent, RttEvent } from '../../src/pping/events.js';
import { runOffline } from '../../src/pping/run.js';
import { ROOT } from '../helpers/lab.js';

const DIR = join(ROOT, 'test', 'fixtures', 'seqack');
const PCAP = join(DIR, 'no-timestamps.pcap');

const tsv = (file: string) =>
  readFileSync(join(DIR, file), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split('\t'));

/** tshark's frames: who sent it, its sequence range, its ACK and flags. */
interface Frame {
  n: number;
  src: string;
  seq: number;
  len: number;
  ack: number;
  flags: number;
}
const frames: Frame[] = tsv('tshark-frames.tsv').map(([n, src, _port, seq, len, ack, flags]) => ({ n: +n, src, seq: +seq, len: +len, ack: +ack, flags: parseInt(flags, 16) }));
/** tshark's ack_rtt: the ACK's frame and time, its sender and ACK number, the RTT and the frame it acknowledges. */
const acks = tsv('tshark-ack-rtt.tsv').map(([n, time, src, _port, ack, rtt, acked]) => ({ n: +n, us: Math.round(+time * 1e6), src, ack: +ack, rttNs: +rtt * 1e9, acked: +acked }));

async function run(seqAck: boolean): Promise<{ rtts: RttEvent[]; done: PpingDoneEvent }> {
  const rtts: RttEvent[] = [];
  const done = await runOffline(PCAP, { tcp: true, rateLimitNs: 0, seqAck }, { event: (e) => e.type === 'rtt' && rtts.push(e) }).done;
  return { rtts, done };
}

test('pping --seqack on a connection without timestamps: every sample is tshark\'s ack_rtt; Karn\'s rule; the rest accounted for', async () => {
  const { rtts, done } = await run(true);
  assert.ok(rtts.length >= 90, `samples: ${rtts.length}`);
  assert.ok(rtts.every((e) => e.match === 'seqack' && e.protocol === 'TCP'));

  // Every sample: tshark's ack_rtt of the same ACK (its time and sender).
  const byAck = new Map(acks.map((a) => [`${a.us}/${a.src}`, a]));
  const used = new Set<number>();
  let worst = 0;
  for (const e of rtts) {
    const a = byAck.get(`${Math.round((e.sec * 1e9 + e.nsec) / 1000)}/${e.src_ip}`);
    assert.ok(a, `a sample at ${e.sec}.${e.nsec} from ${e.src_ip} that tshark has no ack_rtt for`);
    worst = Math.max(worst, Math.abs(a.rttNs - e.rtt));
    used.add(a.n);
  }
  assert.ok(worst <= 50_000, `largest difference from tshark: ${worst} ns`);

  // Segments sent again: the data end of a segment that is not past what its sender had sent.
  const sentAgainAt = new Map<string, number[]>();
  const highest = new Map<string, number>();
  for (const f of frames) {
    const end = f.seq + f.len + (f.flags & 0x03 ? 1 : 0);
    const h = highest.get(f.src);
    if (f.len > 0 || f.flags & 0x01) {
      if (h !== undefined && end <= h) sentAgainAt.set(f.src, [...(sentAgainAt.get(f.src) ?? []), f.n]);
      highest.set(f.src, h === undefined ? end : Math.max(h, end));
    }
  }
  const byN = new Map(frames.map((f) => [f.n, f]));
  const resent = [...sentAgainAt.values()].flat();
  assert.ok(resent.length >= 5, `the loss made segments go again: ${resent.length}`);
  // Karn: no sample for an ACK of data sent before a retransmission of its direction and acknowledged after it.
  const afterResend = (a: (typeof acks)[number]) => {
    const acked = byN.get(a.acked)!;
    return (sentAgainAt.get(acked.src) ?? []).some((r) => r >= a.acked && r < a.n);
  };
  for (const a of acks.filter((x) => used.has(x.n))) assert.ok(!afterResend(a), `frame ${a.n}: a sample for data acknowledged after a retransmission`);

  // tshark's other values: the handshake (SYNs are not timestamped without --include-syn), ACKs
  // of a FIN without data (sent once or again: not timestamped, as with timestamps), and ACKs of
  // data sent before a retransmission (Karn, counted).
  const rest = acks.filter((a) => !used.has(a.n));
  const why = (a: (typeof acks)[number]) => {
    const acked = byN.get(a.acked)!;
    if (acked.flags & 0x02) return 'handshake';
    if (acked.len === 0 && acked.flags & 0x01) return 'fin';
    if (afterResend(a)) return 'karn';
    return `unexplained (frame ${a.n} acknowledging ${a.acked})`;
  };
  const reasons = rest.map(why);
  assert.deepEqual(reasons.filter((r) => r.startsWith('unexplained')), []);
  assert.equal(reasons.filter((r) => r === 'karn').length, done.retransmit_skipped, 'every Karn case counted in the done event');
  process.stdout.write(`# ${rtts.length} samples, all tshark's (largest difference ${worst} ns); tshark's ${rest.length} others: ${['handshake', 'karn', 'fin'].map((r) => `${reasons.filter((x) => x === r).length} ${r}`).join(', ')}\n`);
});

test('without --seqack, a connection without timestamps gives no sample (ePPing\'s rules)', async () => {
  const { rtts, done } = await run(false);
  assert.equal(rtts.length, 0);
  assert.equal(done.retransmit_skipped, 0);
});
