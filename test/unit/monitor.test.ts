/**
 * The monitor's pure parts: window figures against their direct computation (property), the
 * health verdict and its hysteresis, and the target file's errors naming file, line and field.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Defaults, readTargetsFile } from '../../src/monitor/config.js';
import { DEFAULT_THRESHOLDS, HealthState, judge } from '../../src/monitor/health.js';
import { Jitter, RTT_BOUNDS_MS, TargetWindow, WindowRooms } from '../../src/monitor/window.js';
import { monitor } from '../../src/api.js';
import type { MonitorEvent, StatsEvent } from '../../src/monitor/events.js';
import { parseIp } from '../../src/packet/addr.js';

test('window figures: loss, quantiles (nearest rank), sample deviation, histogram and RFC 3550 jitter as defined', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0.001, max: 3000, noNaN: true }), { maxLength: 300 }), fc.nat({ max: 50 }), (rtts, lost) => {
      const w = new TargetWindow(4);
      const jit = new Jitter();
      w.sent = rtts.length + lost;
      let j = -1;
      for (let i = 0; i < rtts.length; i++) {
        w.add(rtts[i]);
        jit.add(rtts[i]);
        if (i > 0) {
          const d = Math.abs(rtts[i] - rtts[i - 1]);
          j = j < 0 ? d : j + (d - j) / 16;
        }
      }
      const f = w.figures(jit.value);
      const r3 = (x: number) => Math.round(x * 1000) / 1000;
      assert.equal(f.received, rtts.length);
      assert.equal(f.loss, w.sent ? r3((lost / w.sent) * 100) : 0);
      assert.equal(f.histogram.reduce((a, b) => a + b, 0), rtts.length);
      if (rtts.length === 0) return assert.deepEqual([f.min_ms, f.median_ms, f.stdev_ms, f.jitter_ms], [null, null, null, null]);
      // RTTs are kept as float32 (microsecond precision to past 100 s).
      const s = rtts.map(Math.fround).sort((a, b) => a - b);
      const rank = (p: number) => s[Math.max(0, Math.ceil(p * s.length) - 1)];
      assert.deepEqual([f.min_ms, f.median_ms, f.p95_ms, f.max_ms], [r3(s[0]), r3(rank(0.5)), r3(rank(0.95)), r3(s.at(-1)!)]);
      const mean = s.reduce((a, b) => a + b, 0) / s.length;
      const sd = s.length > 1 ? Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / (s.length - 1)) : 0;
      assert.ok(Math.abs(f.stdev_ms! - sd) < 0.0011 + sd * 1e-9);
      assert.equal(f.jitter_ms, j < 0 ? null : r3(j));
      const first = RTT_BOUNDS_MS.findIndex((b) => s[0] <= b);
      assert.ok(f.histogram[first < 0 ? RTT_BOUNDS_MS.length : first] > 0);
    }),
  );
});

test('windows in shared rooms: each says what a window of its own says, past its room too, and a new window clears only its own counts', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ cap: fc.integer({ min: 0, max: 12 }), rtts: fc.array(fc.double({ min: 0.001, max: 3000, noNaN: true }), { maxLength: 60 }) }), { minLength: 1, maxLength: 8 }),
      (ws) => {
        const rooms = new WindowRooms(ws.map((w) => w.cap));
        const shared = ws.map((_, k) => rooms.window(k));
        const own = ws.map((w) => new TargetWindow(w.cap));
        // Interleaved, as answers for many targets come.
        for (let i = 0; i < 60; i++)
          ws.forEach((w, k) => {
            if (i < w.rtts.length) {
              shared[k].add(w.rtts[i]);
              own[k].add(w.rtts[i]);
            }
          });
        ws.forEach((w, k) => {
          shared[k].sent = own[k].sent = w.rtts.length;
          assert.deepEqual(shared[k].figures(null), own[k].figures(null));
        });
        shared[0].next();
        assert.deepEqual(shared[0].histogram, new Array(RTT_BOUNDS_MS.length + 1).fill(0));
        ws.forEach((w, k) => k > 0 && assert.equal(shared[k].histogram.reduce((a, b) => a + b, 0), w.rtts.length));
      },
    ),
  );
});

test('health: verdicts by loss, RTT and jitter; the state moves only after fall / rise windows in a row', () => {
  const t = { ...DEFAULT_THRESHOLDS, lossDegraded: 5, lossDown: 50, rttDegradedMs: 100, jitterDegradedMs: 10 };
  const fig = (loss: number, median: number | null = 1, jitter: number | null = 0) => ({ sent: 10, due: 10, received: 10, loss, duplicates: 0, unreachable: 0, min_ms: median, mean_ms: median, median_ms: median, p95_ms: median, max_ms: median, stdev_ms: 0, jitter_ms: jitter, histogram: [] });
  assert.equal(judge(fig(0), t).health, 'up');
  assert.equal(judge(fig(5), t).health, 'degraded');
  assert.equal(judge(fig(50), t).health, 'down');
  assert.match(judge(fig(0, 150), t).reason, /median RTT 150 ms > 100 ms/);
  assert.match(judge(fig(0, 1, 20), t).reason, /jitter 20 ms > 10 ms/);
  assert.equal(judge(fig(0), t).score, 100);
  const h = new HealthState({ ...t, fall: 2, rise: 3 });
  const seq = ['up', 'down', 'up', 'down', 'down', 'up', 'up', 'degraded', 'up', 'up'] as const;
  const changes = seq.map((s) => h.update(s, 'x')).map((c) => (c ? `${c.from}->${c.to}` : '-'));
  assert.deepEqual(changes, ['null->up', '-', '-', '-', 'up->down', '-', '-', '-', '-', '-']);
  // Down after two bad windows (fall 2); then up, up, a degraded window breaking the run, up, up:
  // no change yet (rise 3 needs three of the same verdict in a row); the third up brings it up.
  assert.equal(h.update('up', 'x')?.to, 'up');
});

test('target file: YAML and JSON; errors name the file, the line and the field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-cfg-'));
  const base: Defaults = { method: 'auto', udpPort: 33434, tcpPort: 80, intervalMs: 1000, thresholds: DEFAULT_THRESHOLDS, placement: {} };
  try {
    const ok = join(dir, 'ok.yaml');
    writeFileSync(ok, 'defaults:\n  method: icmp\n  interval: 0.5\ntargets:\n  - 192.0.2.1\n  - {target: 192.0.2.2, method: tcp, tcp_port: 443, path: wan-b, iface: eth1, source: 198.51.100.2, labels: {site: par}, thresholds: {loss_degraded: 2, fall: 3}}\n');
    const t = await readTargetsFile(ok, base);
    assert.deepEqual(t.map((x) => [x.target, x.method, x.intervalMs, x.tcpPort, x.path, x.placement.iface ?? null, x.source ?? null, x.thresholds.lossDegraded, x.thresholds.fall]), [
      ['192.0.2.1', 'icmp', 500, 80, null, null, null, 5, 2],
      ['192.0.2.2', 'tcp', 500, 443, 'wan-b', 'eth1', '198.51.100.2', 2, 3],
    ]);
    const json = join(dir, 'ok.json');
    writeFileSync(json, JSON.stringify({ targets: ['192.0.2.3', { target: 'h.example', port: 5000 }] }));
    assert.deepEqual((await readTargetsFile(json, base)).map((x) => [x.target, x.udpPort]), [['192.0.2.3', 33434], ['h.example', 5000]]);
    const cases: [string, RegExp][] = [
      ['targets:\n  - 192.0.2.1\n  - {target: 192.0.2.2, interval: 0}\n', /bad\.yaml:3: targets\[1\]\.interval must be a number of seconds from 0\.001 to 3600$/],
      ['targets:\n  - {target: 192.0.2.2,\n     methd: icmp}\n', /bad\.yaml:3: targets\[0\]\.methd is not a known field/],
      ['defaults: {thresholds: {loss_down: 150}}\ntargets: [192.0.2.1]\n', /bad\.yaml:1: defaults\.thresholds\.loss_down must be a number from 0 to 100$/],
      ['targets: []\n', /bad\.yaml:1: targets must be a non-empty list$/],
      ['targets:\n  - {target: 192.0.2.2, source: uplink}\n', /bad\.yaml:2: targets\[0\]\.source must be an IP address$/],
      ['targets:\n  - {target: [1]\n', /bad\.yaml:\d+: not valid YAML or JSON/],
    ];
    for (const [text, msg] of cases) {
      const f = join(dir, 'bad.yaml');
      writeFileSync(f, text);
      await assert.rejects(readTargetsFile(f, base), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && msg.test(e.message));
    }
    await assert.rejects(readTargetsFile(join(dir, 'none.yaml'), base), /cannot read .*none\.yaml: ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('names looked up again: a new address is an address event, and the probes go there (UDP over loopback, unprivileged)', async () => {
  const answers = [parseIp('127.0.0.1'), parseIp('127.0.0.2')];
  let calls = 0;
  const run = monitor(['probe.test'], {
    method: 'udp',
    intervalMs: 20,
    windowMs: 300,
    timeoutMs: 100,
    durationMs: 1500,
    resolveEveryMs: 700,
    resolve: async () => answers[Math.min(calls++, 1)],
  });
  const events: MonitorEvent[] = [];
  for await (const e of run) events.push(e);
  const moved = events.filter((e) => e.type === 'address');
  assert.deepEqual(moved.map((e) => e.type === 'address' && [e.from, e.address]), [['127.0.0.1', '127.0.0.2']]);
  const stats = events.filter((e): e is StatsEvent => e.type === 'stats');
  assert.ok(stats.some((s) => s.address === '127.0.0.1' && s.received > 0) && stats.some((s) => s.address === '127.0.0.2' && s.received > 0), JSON.stringify(stats.map((s) => [s.address, s.sent, s.received])));
  assert.ok(stats.every((s) => s.loss === 0), 'no probe lost across the change');
});

test('plain view: past 50 targets one summary line a window (counts, the three worst), changes as they come, a first state only when not up', async () => {
  const { MonitorTextView } = await import('../../src/render/monitor-text.js');
  const lines: string[] = [];
  const v = new MonitorTextView((l) => lines.push(l));
  const n = 200;
  const base = { schema: 'pathlens.monitor/1', t_ms: 0, path: null, method: 'icmp', window_ms: 10_000, received: 10, duplicates: 0, unreachable: 0, min_ms: 1, mean_ms: 1, median_ms: 1, p95_ms: 1, max_ms: 1, stdev_ms: 0, jitter_ms: 0, histogram: [] } as const;
  const stats = (i: number, w: number, loss: number): StatsEvent => ({ ...base, type: 'stats', target: `10.0.0.${i}`, address: `10.0.0.${i}`, window_start_ms: w * 10_000, sent: 10, loss, state: loss >= 100 ? 'down' : loss > 5 ? 'degraded' : 'up', score: 100 - loss }) as unknown as StatsEvent;
  v.event({ schema: 'pathlens.monitor/1', type: 'start', t_ms: 0, version: 'x', time: '', targets: n, interval_ms: 1000, window_ms: 10_000, timeout_ms: 1000 } as MonitorEvent);
  for (let w = 0; w < 2; w++) {
    for (let i = 0; i < n; i++) {
      // Window 0: target 7 loses 100 %, 9 loses 30 %, 11 loses 20 %, 13 loses 10 %; window 1: all answer.
      const loss = w === 0 ? ({ 7: 100, 9: 30, 11: 20, 13: 10 } as Record<number, number>)[i] ?? 0 : 0;
      const e = stats(i, w, loss);
      v.event(e);
      const from = w === 0 ? null : i === 7 ? 'down' : i === 9 || i === 11 || i === 13 ? 'degraded' : null;
      if (w === 0 || from) v.event({ ...base, type: 'state', target: e.target, address: e.address, from, to: w === 0 ? e.state : 'up', reason: 'r' } as MonitorEvent);
    }
  }
  v.event({ schema: 'pathlens.monitor/1', type: 'done', t_ms: 20_000, reason: 'duration', probes_sent: 4000, replies: 3984, duration_ms: 20_000 } as MonitorEvent);
  assert.deepEqual(lines, [
    'pathlens monitor: 200 targets, every 1 s, windows of 10 s, timeout 1000 ms',
    '10.0.0.7: unknown -> down (r)',
    '10.0.0.9: unknown -> degraded (r)',
    '10.0.0.11: unknown -> degraded (r)',
    '10.0.0.13: unknown -> degraded (r)',
    'window at 0 s: 200 targets: 196 up, 3 degraded, 1 down; worst: 10.0.0.7 100% loss, 10.0.0.9 30% loss, 10.0.0.11 20% loss',
    '10.0.0.7: down -> up (r)',
    '10.0.0.9: degraded -> up (r)',
    '10.0.0.11: degraded -> up (r)',
    '10.0.0.13: degraded -> up (r)',
    'window at 10 s: 200 targets: 200 up, 0 degraded, 0 down',
    '-- duration: 4000 probes, 3984 answers, 20.0 s',
  ]);
});
