/**
 * The engine's invariants, driven by a scripted prober (pure logic; the real kernel path is in
 * test/netns). Each probe must end in exactly one outcome; hops come in TTL order; stop reasons
 * are explicit; in-flight probes never exceed the cap.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Collect } from '../../src/core/sink.js';
import { parseIp } from '../../src/packet/addr.js';
import type { ReplyKind } from '../../src/packet/icmp.js';
import { TraceEngine, type EngineOptions } from '../../src/trace/engine.js';
import type { DoneEvent, HopEvent, TraceEvent } from '../../src/trace/events.js';
import { type OnSent, type Prober, ReplyRecord } from '../../src/trace/prober.js';
import { realtime } from '../../src/time/clock.js';

interface Answer {
  addr: string;
  kind?: ReplyKind;
  code?: string;
  delayMs: number;
  seq?: number;
  twice?: boolean;
}

class ScriptedProber implements Prober {
  readonly method = 'udp' as const;
  readonly socketKind = 'dgram' as const;
  readonly family = 4 as const;
  readonly srcPort = 40000;
  readonly source = null;
  readonly stats = { sendCalls: 0, recvCalls: 0, retries: 0 };
  private onReply: ((r: ReplyRecord) => void) | null = null;
  private timers: NodeJS.Timeout[] = [];
  constructor(private readonly script: (ttl: number, index: number) => Answer | null) {}
  dstPort(seq: number): number {
    return 33434 + seq;
  }
  send(seqs: Int32Array, ttls: Int32Array, n: number, onSent: OnSent): number {
    this.stats.sendCalls++;
    const t = realtime(new Float64Array(2));
    for (let i = 0; i < n; i++) {
      const seq = seqs[i];
      onSent(i, t[0], t[1], 0);
      const a = this.script(ttls[i], seq % 3);
      if (!a) continue;
      for (let k = 0; k < (a.twice ? 2 : 1); k++) {
        this.timers.push(
          setTimeout(() => {
            const r = new ReplyRecord();
            r.seq = a.seq ?? seq;
            r.unmatched = r.seq < 0 ? 'cookie-mismatch' : null;
            r.hasAddr = true;
            r.addrBuf = parseIp(a.addr);
            r.addrOff = 0;
            r.kind = a.kind ?? 'time-exceeded';
            r.code = a.code ?? 'ttl';
            const ns = t[1] + a.delayMs * 1e6;
            r.sec = t[0] + Math.floor(ns / 1e9);
            r.nsec = ns % 1e9;
            r.kernelTs = true;
            this.onReply?.(r);
          }, a.delayMs),
        );
      }
    }
    return n;
  }
  drain(): number {
    return 0;
  }
  start(onReply: (r: ReplyRecord) => void): void {
    this.onReply = onReply;
  }
  close(): void {
    for (const t of this.timers) clearTimeout(t);
  }
}

const TARGET = '10.0.0.9';
const OPTS: EngineOptions = {
  target: TARGET,
  address: parseIp(TARGET),
  firstTtl: 1,
  maxTtl: 12,
  queries: 3,
  basePort: 33434,
  waitMs: 1000,
  adaptiveFactor: 3,
  minWaitMs: 20,
  maxInflight: 6,
  payloadLen: 32,
  deadlineMs: 0,
  version: 'test',
};

async function trace(script: (ttl: number, index: number) => Answer | null, o: Partial<EngineOptions> = {}) {
  const sink = new Collect<TraceEvent>();
  const eng = new TraceEngine({ ...OPTS, ...o }, new ScriptedProber(script), sink);
  const done = await eng.run();
  return { events: sink.events, done };
}

/** Every probe has exactly one outcome (reply or timeout); late replies come after a timeout. */
function checkOutcomes(events: TraceEvent[], cap: number): void {
  const outcome = new Map<number, string>();
  let inflight = 0;
  let maxInflight = 0;
  for (const e of events) {
    if (e.type === 'probe') {
      assert.ok(!outcome.has(e.seq));
      outcome.set(e.seq, 'pending');
      maxInflight = Math.max(maxInflight, ++inflight);
    } else if (e.type === 'reply' && !e.late) {
      assert.equal(outcome.get(e.seq), 'pending', `seq ${e.seq} answered twice`);
      outcome.set(e.seq, 'reply');
      inflight--;
    } else if (e.type === 'reply' && e.late) {
      assert.equal(outcome.get(e.seq), 'timeout');
    } else if (e.type === 'timeout') {
      assert.equal(outcome.get(e.seq), 'pending');
      outcome.set(e.seq, 'timeout');
      inflight--;
    }
  }
  for (const [seq, o] of outcome) assert.notEqual(o, 'pending', `seq ${seq} has no outcome`);
  assert.ok(maxInflight <= cap, `in flight ${maxInflight} > ${cap}`);
}

const hopAddr = (ttl: number) => `10.0.${ttl}.1`;

test('a clean path: hops in order, target reached, exactly one outcome per probe', async () => {
  const { events, done } = await trace((ttl) => (ttl < 5 ? { addr: hopAddr(ttl), delayMs: ttl } : { addr: TARGET, kind: 'unreachable', code: 'port', delayMs: 5 }));
  checkOutcomes(events, OPTS.maxInflight);
  const hops = events.filter((e): e is HopEvent => e.type === 'hop');
  assert.deepEqual(
    hops.map((h) => [h.ttl, h.addrs, h.no_reply]),
    [1, 2, 3, 4, 5].map((t) => [t, [t < 5 ? hopAddr(t) : TARGET], 0]),
  );
  assert.equal(done.reached, true);
  assert.equal(done.reason, 'reached');
  assert.equal(done.hops, 5);
  assert.equal(events[0].type, 'start');
  assert.equal(events.at(-1)!.type, 'done');
});

test('silent hops are explicit and declared adaptively, not after the full wait', async () => {
  // The window must reach past the silent hops: only a later hop's reply bounds their wait.
  const { events, done } = await trace((ttl) => (ttl === 2 || ttl === 3 ? null : ttl < 5 ? { addr: hopAddr(ttl), delayMs: 2 } : { addr: TARGET, kind: 'unreachable', code: 'port', delayMs: 3 }), { maxInflight: 12 });
  checkOutcomes(events, 12);
  const hops = events.filter((e): e is HopEvent => e.type === 'hop');
  assert.deepEqual(
    hops.map((h) => [h.ttl, h.replies.length, h.no_reply]),
    [
      [1, 3, 0],
      [2, 0, 3],
      [3, 0, 3],
      [4, 3, 0],
      [5, 3, 0],
    ],
  );
  const timeouts = events.filter((e) => e.type === 'timeout');
  assert.ok(timeouts.every((e) => e.type === 'timeout' && e.reason === 'adaptive'));
  assert.ok(done.duration_ms < 500, `took ${done.duration_ms} ms with a 1000 ms wait`);
});

test('a reply after its timeout is reported late and never changes the hop', async () => {
  const { events, done } = await trace((ttl, i) =>
    ttl === 2 && i === 0 ? { addr: hopAddr(2), delayMs: 150 } : ttl < 4 ? { addr: hopAddr(ttl), delayMs: 2 } : { addr: TARGET, kind: 'unreachable', code: 'port', delayMs: 3 },
  );
  checkOutcomes(events, OPTS.maxInflight);
  const hop2 = events.find((e): e is HopEvent => e.type === 'hop' && e.ttl === 2)!;
  assert.equal(hop2.no_reply, 1);
  // The trace may finish before the late reply arrives; if it arrived, it is marked late.
  const late = events.filter((e) => e.type === 'reply' && e.late);
  assert.equal(done.late, late.length);
  assert.ok(late.every((e) => e.type === 'reply' && e.ttl === 2));
});

test('unreachable from a router stops the trace at that hop', async () => {
  const { events, done } = await trace((ttl) => (ttl < 3 ? { addr: hopAddr(ttl), delayMs: 1 } : { addr: hopAddr(3), kind: 'unreachable', code: 'host', delayMs: 1 }));
  checkOutcomes(events, OPTS.maxInflight);
  assert.equal(done.reason, 'unreachable');
  assert.equal(done.reached, false);
  assert.equal(done.hops, 3);
  const hop3 = events.find((e): e is HopEvent => e.type === 'hop' && e.ttl === 3)!;
  assert.deepEqual(hop3.replies.map((r) => r.code), ['host', 'host', 'host']);
});

test('max-ttl when nothing ever answers; the in-flight cap holds', async () => {
  const { events, done } = await trace(() => null, { maxTtl: 8, waitMs: 30, maxInflight: 4 });
  checkOutcomes(events, 4);
  assert.equal(done.reason, 'max-ttl');
  assert.equal(done.probes_sent, 24);
  assert.equal(done.timeouts, 24);
  assert.equal(done.hops, 8);
});

test('deadline stops the trace and closes every outstanding probe as no-reply', async () => {
  const { events, done } = await trace(() => null, { maxTtl: 30, waitMs: 1000, deadlineMs: 80 });
  checkOutcomes(events, OPTS.maxInflight);
  assert.equal(done.reason, 'deadline');
  assert.ok(events.some((e) => e.type === 'timeout' && e.reason === 'deadline'));
});

test('unattributable replies and duplicates are counted as unmatched, never attributed', async () => {
  const { events, done } = await trace((ttl) =>
    ttl === 1 ? { addr: hopAddr(1), delayMs: 1, twice: true } : ttl === 2 ? { addr: '192.0.2.1', delayMs: 1, seq: -1 } : { addr: TARGET, kind: 'unreachable', code: 'port', delayMs: 2 },
  );
  checkOutcomes(events, OPTS.maxInflight);
  assert.ok(done.unmatched >= 3 + 3);
  const hop2 = events.find((e): e is HopEvent => e.type === 'hop' && e.ttl === 2)!;
  assert.equal(hop2.replies.length, 0);
  assert.ok(events.some((e) => e.type === 'unmatched' && e.reason === 'duplicate'));
  assert.ok(events.some((e) => e.type === 'unmatched' && e.reason === 'cookie-mismatch'));
});

test('interrupt ends the trace with reason interrupted', async () => {
  const sink = new Collect<TraceEvent>();
  const eng = new TraceEngine({ ...OPTS, waitMs: 5000 }, new ScriptedProber(() => null), sink);
  const p = eng.run();
  setTimeout(() => eng.interrupt(), 30);
  const done: DoneEvent = await p;
  assert.equal(done.reason, 'interrupted');
  checkOutcomes(sink.events, OPTS.maxInflight);
});
