/**
 * The monitor's named parts on their own, and the whole run on a virtual clock with scripted
 * probers: the wheel (due times, the burst budget, what a stall leaves for later), the ledger
 * (rings sized from timeout and spacing, the timeout queue past its first capacity), the ladder
 * (refusals, choices, switches, starting over) and the run's windows, timeouts, states and end,
 * asserted to the millisecond without waiting (the real sockets are in test/netns/monitor.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VirtualScheduler } from '../../src/core/scheduler.js';
import { Collect } from '../../src/core/sink.js';
import type { MethodEvent, MonitorEvent, ProberEvent, StateEvent, StatsEvent } from '../../src/monitor/events.js';
import { DEFAULT_THRESHOLDS } from '../../src/monitor/health.js';
import { ProberPool, chooseMethod } from '../../src/monitor/ladder.js';
import { OutstandingRings, TimeoutQueue } from '../../src/monitor/ledger.js';
import type { Prober, ProberHooks } from '../../src/monitor/prober.js';
import { validateMonitor } from '../../src/monitor/request.js';
import type { MonitorRequest, MonitorTarget, OpenProber } from '../../src/monitor/request.js';
import { startMonitor } from '../../src/monitor/run.js';
import { TargetTable } from '../../src/monitor/table.js';
import { makeTargets, slotOf } from '../../src/monitor/targets.js';
import { WindowCloser } from '../../src/monitor/closer.js';
import { TimingWheel } from '../../src/monitor/wheel.js';
import { parseIp } from '../../src/packet/addr.js';
import type { ProbeMethod } from '../../src/probe/transport.js';

test('wheel: every target is taken once per interval, never before it is due, in the tick after its slot ends', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 5, max: 40 }), fc.integer({ min: 1, max: 7 }), (n, interval, tick) => {
      const w = new TimingWheel(n, 1);
      for (let i = 0; i < n; i++) {
        w.due[i] = (interval * i) / n;
        w.insert(i);
      }
      const taken: number[][] = Array.from({ length: n }, () => []);
      for (let t = tick; t <= 10 * interval; t += tick) {
        w.collect(t, Infinity, () => true, (i) => {
          assert.ok(w.due[i] <= t, `target ${i} due at ${w.due[i]} taken at ${t}`);
          // Taken at most one tick (plus the slot) after it was due.
          assert.ok(t - w.due[i] < tick + 1 + 1e-9, `target ${i} due at ${w.due[i]} taken late at ${t}`);
          taken[i].push(w.due[i]);
          w.due[i] += interval;
        });
      }
      for (let i = 0; i < n; i++) {
        // Every due time up to the last whole slot before the end, each exactly once.
        const want: number[] = [];
        for (let d = (interval * i) / n; Math.floor(d) + 1 <= 10 * interval - (10 * interval) % tick; d += interval) want.push(d);
        assert.deepEqual(taken[i], want, `target ${i}`);
      }
    }),
  );
});

test('wheel: after a stall the budget spreads what is late over the next ticks, in due order, none lost or taken twice; inactive targets leave', () => {
  const n = 100;
  const w = new TimingWheel(n, 1);
  for (let i = 0; i < n; i++) {
    w.due[i] = i / 10; // all in the first 10 ms
    w.insert(i);
  }
  const order: number[] = [];
  // A stall: the first tick comes at 20 ms, and each may take 16.
  let t = 20;
  const perTick: number[] = [];
  while (order.length < n && t < 100) {
    perTick.push(w.collect(t, 16, (i) => i % 10 !== 9, (i) => {
      order.push(i);
      w.due[i] += 1000;
    }));
    t += 4;
  }
  assert.ok(perTick.every((k) => k <= 16), `per tick ${perTick}`);
  const expected = [...Array(n).keys()].filter((i) => i % 10 !== 9);
  assert.deepEqual([...order].sort((a, b) => a - b), expected, 'each active target once, the inactive ones never');
  // Slots are taken in time order.
  for (let k = 1; k < order.length; k++) assert.ok(Math.floor(order[k] / 10) >= Math.floor(order[k - 1] / 10), `slot order at ${k}: ${order.slice(0, k + 1)}`);
  // Nothing comes back before its next due time.
  assert.equal(w.collect(500, Infinity, () => true, () => assert.fail('taken early')), 0);
});

test('ledger: rings sized from timeout and spacing (a power of two, at most 64); the timeout queue keeps send order past its first capacity', () => {
  assert.equal(new OutstandingRings(1, [1000], 1000, 4).ring, 4);
  assert.equal(new OutstandingRings(2, [1000, 100], 1000, 4).ring, 32);
  assert.equal(new OutstandingRings(1, [10], 1000, 4).ring, 64);
  const r = new OutstandingRings(2, [100], 1000, 4);
  const k = r.at(1, 70);
  assert.equal(k, r.ring + (70 % r.ring));
  assert.equal(r.waiting(k), false);
  r.take(k, 70, 3);
  assert.deepEqual([r.waiting(k), r.seq[k], r.win[k]], [true, 70, 3]);
  r.done[k] = 1;
  assert.equal(r.waiting(k), false);
  r.free(k);
  assert.equal(r.seq[k], -1);

  // Rings of 4 slots: entry `next` is target `next`'s slot 1.
  const q = new TimeoutQueue(4);
  const out: number[] = [];
  // Interleave pushes and expiries so the ring wraps before it grows.
  let next = 0;
  for (let round = 0; round < 5; round++) {
    for (let j = 0; j < 900; j++, next++) q.push(next * 4 + 1, next);
    q.expire(next - 300, (t, s) => {
      assert.equal(s, t * 4 + 1);
      out.push(t);
    });
  }
  assert.equal(q.length, next - out.length);
  q.expire(Infinity, (t) => out.push(t));
  assert.deepEqual(out, [...Array(next).keys()], 'every entry once, in push order');
});

/** A prober that refuses, or answers nothing: for the ladder. */
function pool(refuse: ProbeMethod[]): { pool: ProberPool; opened: string[] } {
  const opened: string[] = [];
  const hooks: ProberHooks = { onAnswer: () => {}, onFatal: () => {}, fromTarget: () => true };
  const open: OpenProber = (m, family) => {
    opened.push(`${m}/${family}`);
    if (refuse.includes(m)) throw new Error(`${m} refused here`);
    return { method: m, family, socket: m === 'icmp' ? 'ping' : m === 'udp' ? 'dgram' : 'connect', send: () => 0, close: () => {} };
  };
  return { pool: new ProberPool(open, 1, hooks, { rcvbuf: 1 << 20 }), opened };
}

const target = (name: string, method: MonitorTarget['method']): MonitorTarget => ({
  name,
  address: parseIp(name),
  method,
  udpPort: 33434,
  tcpPort: 80,
  intervalMs: 100,
  thresholds: DEFAULT_THRESHOLDS,
  placement: {},
  path: null,
  labels: {},
});

test('ladder: refused methods are skipped with their reason, the first allowed one chosen; probers are opened once per method and family', () => {
  const { pool: p, opened } = pool(['icmp']);
  const { targets: T } = makeTargets(TargetTable.from([target('192.0.2.1', 'auto'), target('192.0.2.2', 'auto'), target('2001:db8::1', 'tcp')]), 1000, 0);
  assert.equal(T.profiles.length, 2, 'targets with equal settings share a profile');
  const notes: string[] = [];
  const note = (action: string, m: string | null, from: string | null, reason: string) => notes.push(`${action} ${m} ${from} ${reason}`);
  assert.equal(chooseMethod(p, T, 0, 0, null, '', note), true);
  assert.equal(chooseMethod(p, T, 1, 0, null, '', note), true);
  assert.equal(chooseMethod(p, T, 2, 0, null, '', note), true);
  const prober = (i: number) => p.groups[T.group[i]].prober.method;
  assert.deepEqual([T.step[0], prober(0), prober(1), prober(2)], [1, 'udp', 'udp', 'tcp']);
  assert.equal(T.group[0], T.group[1], 'one group per prober');
  assert.deepEqual(opened, ['icmp/4', 'udp/4', 'tcp/6'], 'a refusal is kept too: icmp/4 opened once');
  assert.deepEqual(notes, [
    'refused icmp null icmp refused here',
    'chosen udp null the first method of the ladder the kernel allows',
    'refused icmp null icmp refused here',
    'chosen udp null the first method of the ladder the kernel allows',
    'chosen tcp null as configured',
  ]);
  assert.equal(chooseMethod(p, T, 0, T.step[0] + 1, 'udp', 'no answer', note), true);
  assert.deepEqual([T.step[0], prober(0), notes.at(-1)], [2, 'tcp', 'switched tcp udp no answer']);
  assert.equal(chooseMethod(p, T, 0, 3, 'tcp', 'x', note), false, 'past the last rung');
  assert.equal(T.tried.get(0)?.get('icmp'), 'refused: icmp refused here');
  assert.deepEqual([T.addr(2), T.name(1), T.isAddr(1, parseIp('192.0.2.2'), 0), T.isAddr(0, parseIp('192.0.2.2'), 0)], ['2001:db8::1', '192.0.2.2', true, false]);
});

/**
 * Scripted probers on the virtual clock: probe seq of target i is answered after rtt(i, seq, method)
 * ms (null: never), read at the next poll, with kernel-like receive stamps.
 */
function scripted(clock: VirtualScheduler, rtt: (target: number, seq: number, m: ProbeMethod) => number | null, refuse: ProbeMethod[] = []) {
  const EPOCH = 1_700_000_000_000; // realtime ms at virtual time 0
  const sent: { m: ProbeMethod; target: number; at: number }[] = [];
  const open: OpenProber = (m, family, _session, hooks) => {
    if (refuse.includes(m)) throw new Error(`${m} refused here`);
    const queue: { target: number; seq: number; at: number }[] = [];
    const pr: Prober = {
      method: m,
      family,
      socket: 'scripted',
      send(n, targets, seqs, _addrs, _ports, onSent) {
        const now = clock.now();
        for (let i = 0; i < n; i++) {
          const ms = EPOCH + now;
          onSent(i, Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6));
          sent.push({ m, target: targets[i], at: now });
          const d = rtt(targets[i], seqs[i], m);
          if (d !== null) queue.push({ target: targets[i], seq: seqs[i], at: now + d });
        }
        return n;
      },
      poll() {
        const now = clock.now();
        let k = 0;
        for (let j = 0; j < queue.length; ) {
          const q = queue[j];
          if (q.at > now) {
            j++;
            continue;
          }
          queue.splice(j, 1);
          const ms = EPOCH + q.at;
          hooks.onAnswer({ target: q.target, seq: q.seq, kind: 'alive', sec: Math.floor(ms / 1000), nsec: Math.round((ms % 1000) * 1e6), kernelTs: true, detail: 'scripted' });
          k++;
        }
        return k;
      },
      close() {},
    };
    return pr;
  };
  return { open, sent };
}

async function runOn(clock: VirtualScheduler, req: Partial<MonitorRequest> & { targets: MonitorTarget[] }, open: OpenProber): Promise<MonitorEvent[]> {
  const sink = new Collect<MonitorEvent>();
  const h = await startMonitor({ windowMs: 1000, timeoutMs: 200, durationMs: 3000, samples: false, scheduler: clock, openProber: open, ...req }, sink);
  await clock.run();
  await h.done;
  return sink.events;
}

test('monitor on a virtual clock: every window carries its full count, RTTs as answered, losses as timeouts, late answers lost', async () => {
  const clock = new VirtualScheduler();
  // Target 0 answers in 5 ms; target 1 loses every fourth probe; target 2 answers in 250 ms (after the 200 ms timeout).
  let count1 = 0;
  const { open, sent } = scripted(clock, (t) => (t === 0 ? 5 : t === 1 ? (++count1 % 4 === 0 ? null : 7) : 250));
  const ev = await runOn(clock, { targets: [target('192.0.2.1', 'icmp'), target('192.0.2.2', 'icmp'), target('192.0.2.3', 'icmp')], samples: true }, open);
  const stats = ev.filter((e): e is StatsEvent => e.type === 'stats');
  const by = (name: string) => stats.filter((s) => s.target === name);
  for (const name of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) {
    assert.deepEqual(by(name).map((s) => [s.window_start_ms, s.sent]), [[0, 10], [1000, 10], [2000, 10]], `${name}: 10 probes a window, 100 ms apart`);
  }
  assert.ok(by('192.0.2.1').every((s) => s.received === 10 && s.min_ms === 5 && s.max_ms === 5 && s.loss === 0));
  assert.deepEqual(by('192.0.2.2').map((s) => [s.received, s.loss, s.min_ms]), [[8, 20, 7], [7, 30, 7], [8, 20, 7]], 'probes 4, 8, ..., 28 lost');
  assert.ok(by('192.0.2.3').every((s) => s.received === 0 && s.loss === 100), 'an answer after the timeout is a loss');
  const samples = ev.filter((e) => e.type === 'sample') as Extract<MonitorEvent, { type: 'sample' }>[];
  assert.deepEqual(
    ['reply', 'timeout'].map((r) => samples.filter((x) => x.result === r).length),
    [30 + 23, 7 + 30],
    'every probe has one outcome: 53 replies, 37 timeouts',
  );
  assert.ok(samples.every((x) => (x.result === 'reply') === (x.rtt_ms !== null)));
  // Sends spread over the interval: the three targets at 0, 33.3 and 66.7 ms into each 100 ms (their slot's end + a tick at most).
  for (const s of sent) {
    const phase = (s.at % 100) - (s.target * 100) / 3;
    assert.ok(phase >= 0 && phase < 1 + 4 + 1e-9, `target ${s.target} sent at ${s.at}`);
  }
  const done = ev.at(-1)!;
  assert.equal(done.type, 'done');
  assert.deepEqual(done.type === 'done' && [done.reason, done.probes_sent], ['duration', 90]);
});

test('monitor on a virtual clock: the ladder switches after a silent window and says why; states follow fall and rise', async () => {
  const clock = new VirtualScheduler();
  // ICMP is refused; UDP never answers; TCP answers until 4 s, then nothing.
  const { open } = scripted(clock, (_t, _seq, m) => (m === 'tcp' && clock.now() < 4000 ? 3 : null), ['icmp']);
  const ev = await runOn(clock, { targets: [target('192.0.2.9', 'auto')], durationMs: 6000 }, open);
  const methods = ev.filter((e): e is MethodEvent => e.type === 'method').map((m) => [m.action, m.method, m.reason]);
  assert.deepEqual(methods, [
    ['refused', 'icmp', 'icmp refused here'],
    ['chosen', 'udp', 'the first method of the ladder the kernel allows'],
    ['switched', 'tcp', 'no answer to 10 probes in the window'],
    ['unreachable', null, 'no method got an answer: icmp: refused: icmp refused here; udp: no answer to 10 probes in the window; tcp: no answer to 10 probes in the window'],
    ['refused', 'icmp', 'icmp refused here'],
    ['switched', 'udp', 'starting the ladder over'],
  ]);
  const states = ev.filter((e): e is StateEvent => e.type === 'state').map((s) => [s.t_ms, s.from, s.to]);
  const stats = ev.filter((e): e is StatsEvent => e.type === 'stats');
  // The ladder moves when a window closes (its end + the timeout): window 1's first two probes
  // still went by UDP.
  assert.deepEqual(stats.map((s) => [s.method, s.sent, s.received]), [['udp', 10, 0], ['tcp', 10, 8], ['tcp', 10, 10], ['tcp', 10, 10], ['tcp', 10, 0], ['udp', 10, 0]]);
  // First window: down at once. Window 1 (20 % loss) is degraded, 2 and 3 up: up after rise 2,
  // when window 3 closes (4,000 + 200 ms); windows 4 and 5 lost: down after fall 2, at the end.
  assert.deepEqual(states.map(([, from, to]) => [from, to]), [[null, 'down'], ['down', 'up'], ['up', 'down']]);
  assert.deepEqual(states.slice(0, 2).map(([t]) => t), [1200, 4200]);
});

test('ScheduleLedger: a window asked, sent, skipped and dropped, its lag percentiles on the bounds, a late count carried to the next report', async () => {
  const { ScheduleLedger, LAG_FLOOR_MS } = await import('../../src/monitor/schedule.js');
  const l = new ScheduleLedger(1000, 1000, 100);
  for (let i = 0; i < 10; i++) l.ask(0);
  for (let i = 0; i < 8; i++) l.sentAt(0, i < 7 ? 1.5 : 40);
  l.skip(0);
  l.tick(0, 0.2);
  l.tick(0, 7);
  const r = l.report(0, 5, 1234);
  assert.equal(r.type, 'prober');
  assert.deepEqual([r.asked, r.sent, r.skipped, r.rx_dropped, r.send_refused, r.asked_per_s, r.sent_per_s], [10, 8, 1, 5, 0, 10, 8]);
  assert.deepEqual(r.send_lag, { p50_ms: 2, p99_ms: 50, max_ms: 40 });
  assert.deepEqual(r.tick_late, { p50_ms: 0.5, p99_ms: 8, max_ms: 7 });
  assert.equal(r.send_kernel, null, 'no socket gives send stamps: null, not zeros');
  assert.equal(r.kept, false);
  assert.deepEqual(r.behind, ['sent 8 of 10 asked', '1 skipped, more than an interval late', '5 answers dropped by a full receive buffer', `99% of probes left within 50 ms of their due time (more than ${LAG_FLOOR_MS} ms)`]);
  // A probe accounted to window 0 after its report goes to the next one; drops are counted once.
  l.ask(0);
  for (let i = 0; i < 10; i++) l.ask(1);
  for (let i = 0; i < 11; i++) l.sentAt(1, 1);
  l.stamps = true;
  for (let i = 0; i < 99; i++) l.sendKernel(1, 0.004);
  l.sendKernel(1, 0.3);
  const r1 = l.report(1, 5, 2000);
  assert.deepEqual([r1.asked, r1.sent, r1.rx_dropped, r1.kept], [11, 11, 0, true]);
  assert.equal(r1.behind, undefined);
  assert.deepEqual(r1.send_kernel, { stamped: 100, p50_ms: 0.005, p99_ms: 0.005, max_ms: 0.3 }, 'kernel send delay on its own microsecond bounds');
  assert.deepEqual(l.report(2, 5, 3000).send_kernel, { stamped: 0, p50_ms: null, p99_ms: null, max_ms: 0 });
});

test('monitor on a virtual clock: a light monitor sleeps until its next probe is due (no tick every 4 ms), and keeps the schedule', async () => {
  /** The virtual clock, counting the loop's wake-ups (every timer it sets or re-arms). */
  class Counting extends VirtualScheduler {
    wakes = 0;
    override setTimer(fn: () => void, delayMs: number): number {
      this.wakes++;
      return super.setTimer(fn, delayMs);
    }
    override again(id: Parameters<VirtualScheduler['again']>[0], fn: () => void, delayMs: number): number {
      this.wakes++;
      return super.again(id, fn, delayMs);
    }
  }
  const clock = new Counting();
  const { open, sent } = scripted(clock, () => 2);
  // 10 targets once a second: a probe every 100 ms, for 10 s.
  const targets = Array.from({ length: 10 }, (_, i) => ({ ...target(`192.0.2.${i + 1}`, 'icmp'), intervalMs: 1000 }));
  const ev = await runOn(clock, { targets, windowMs: 5000, timeoutMs: 200, durationMs: 10_000 }, open);
  assert.equal(sent.length, 100, 'every probe of the 10 s sent');
  for (const p of ev.filter((e): e is ProberEvent => e.type === 'prober' && e.window_ms === 5000)) assert.deepEqual([p.asked, p.sent, p.kept], [50, 50, true]);
  // A probe every 100 ms: a wake-up to send it, one for its answer's timeout check at most, and a
  // few to close each window; a tick every 4 ms would be 2,500.
  assert.ok(clock.wakes <= 2 * 100 + 2 * 60, `${clock.wakes} wake-ups in 10 s`);
  // Never before its due time; at most a tick (4 ms) after its slot's end.
  // (target i is due at 100 i ms into each second.)
  for (const s of sent) {
    const late = (s.at - 100 * s.target) % 1000;
    assert.ok(late >= 0 && late <= 1 + 4 + 1e-9, `target ${s.target} sent at ${s.at}`);
  }
});

test('ledger: send times in quarter microseconds modulo 2^32 give RTTs exact to a quarter microsecond, across the wrap, up to the longest timeout', () => {
  const r = new OutstandingRings(1, [1000], 1000, 4);
  r.sentAt(0, 1_700_000_000, 999_999_750);
  assert.equal(r.rttMs(0, 1_700_000_001, 250), 0.0005, 'half a microsecond across a second');
  // The seconds wrap modulo 2^24 inside quarterUs, and the quarters modulo 2^32.
  r.sentAt(0, 0xffffff, 500_000_000);
  assert.equal(r.rttMs(0, 0x1000000, 0), 500);
  r.sentAt(0, 1_700_000_000, 0);
  assert.equal(r.rttMs(0, 1_699_999_999, 999_000_000), 0, 'an answer stamped before its send is 0 ms, not 1,073 s');
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 32 }), fc.integer({ min: 0, max: 999_999_999 }), fc.integer({ min: 0, max: 600_000_000_000 }), (sec, nsec, rttNs) => {
      r.sentAt(0, sec, nsec);
      const ns = nsec + rttNs;
      const got = r.rttMs(0, sec + Math.floor(ns / 1e9), ns % 1e9);
      assert.ok(Math.abs(got - rttNs / 1e6) <= 0.00025 + 1e-9, `${got} for ${rttNs} ns`);
    }),
  );
});

test('closer: a window the pass has not reached is closed for a target when its slot is needed again, once, and the pass skips it', () => {
  const { targets: T, rooms } = makeTargets(TargetTable.from([target('192.0.2.1', 'icmp'), target('192.0.2.2', 'icmp'), target('192.0.2.3', 'icmp')]), 1000, 0);
  const events: MonitorEvent[] = [];
  const closer = new WindowCloser(T, rooms, {
    windowMs: 1000,
    timeoutMs: 200,
    pool: null as unknown as ProberPool,
    emit: (e) => events.push(e),
    tms: () => 0,
    stopping: () => false,
    note: () => () => {},
    onChange: null,
  });
  for (let i = 0; i < 3; i++) {
    rooms.sent[slotOf(i, 0)] = 2;
    rooms.add(slotOf(i, 0), 1 + i);
  }
  // Target 2's window 2 begins while window 0 is still in its slot.
  closer.claim(2, 2);
  const stats = () => events.filter((e): e is StatsEvent => e.type === 'stats').map((e) => [e.target, e.window_start_ms, e.sent, e.received]);
  assert.deepEqual(stats(), [['192.0.2.3', 0, 2, 1]]);
  assert.equal(rooms.win[slotOf(2, 2)], 2, 'the slot holds window 2 now, empty');
  assert.equal(rooms.sent[slotOf(2, 2)], 0);
  assert.equal(closer.early, 1);
  closer.claim(2, 2);
  assert.equal(closer.early, 1, 'claiming a slot that holds its window already closes nothing');
  closer.step(1200);
  assert.deepEqual(stats(), [['192.0.2.3', 0, 2, 1], ['192.0.2.1', 0, 2, 1], ['192.0.2.2', 0, 2, 1]], 'the pass closes the others, and target 2 once only');
});

test('validateMonitor: a list and the same targets as columns are refused for the same reasons, in the same words', () => {
  const base = { durationMs: 0, samples: false };
  const cases: { windowMs: number; timeoutMs: number; intervalMs: number; want: RegExp | null }[] = [
    { windowMs: 10_000, timeoutMs: 1000, intervalMs: 100, want: null },
    { windowMs: 10_000, timeoutMs: 20_000, intervalMs: 1000, want: /shorter than the window/ },
    { windowMs: 10_000, timeoutMs: 0, intervalMs: 100, want: /shorter than the window/ },
    { windowMs: 900_000, timeoutMs: 600_001, intervalMs: 60_000, want: /at most 600000 ms/ },
    { windowMs: 10_000, timeoutMs: 7000, intervalMs: 100, want: /more than 64 probes waiting/ },
  ];
  for (const c of cases) {
    const list = [{ ...target('192.0.2.1', 'icmp'), intervalMs: c.intervalMs }, { ...target('2001:db8::1', 'udp'), intervalMs: c.intervalMs }];
    for (const targets of [list, TargetTable.from(list)]) {
      const req = { ...base, windowMs: c.windowMs, timeoutMs: c.timeoutMs, targets } as MonitorRequest;
      const form = Array.isArray(targets) ? 'list' : 'columns';
      if (c.want === null) assert.doesNotThrow(() => validateMonitor(req), form);
      else assert.throws(() => validateMonitor(req), c.want, `${form}: ${JSON.stringify(c)}`);
    }
  }
});
