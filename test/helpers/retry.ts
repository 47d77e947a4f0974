/**
 * Forces the "pending ICMP error fails the next send" path: send a TTL-1 probe, block (without
 * reading) until its Time Exceeded is queued, then send a second probe. The kernel reports the
 * pending error through that sendmmsg; the prober must drain the queue (delivering the first
 * reply), send the second probe again, and get its reply too. Prints what happened as JSON.
 * Run inside a lab node: node retry.js TARGET
 */
import { parseIp } from '../../src/packet/addr.js';
import { type ReplyRecord } from '../../src/probe/transport.js';
import { UdpProber } from '../../src/trace/udp.js';

const target = parseIp(process.argv[2]);
const prober = new UdpProber({ target, basePort: 33434, total: 2, maxBatch: 1, payloadLen: 32, session: 99 });
const replies: { seq: number; kind: string; code: string }[] = [];
const retries: number[] = [];
prober.start(
  (r: ReplyRecord) => replies.push({ seq: r.seq, kind: r.kind, code: r.code }),
  (e) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);
const seqs = new Int32Array(1);
const ttls = Int32Array.of(1);
prober.send(seqs, ttls, 1, (_i, _s, _n, r) => retries.push(r));
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100); // the error arrives meanwhile
seqs[0] = 1;
prober.send(seqs, ttls, 1, (_i, _s, _n, r) => retries.push(r));
setTimeout(() => {
  prober.close();
  process.stdout.write(`${JSON.stringify({ replies, retries, stats: prober.stats })}\n`);
}, 200);
