/**
 * The monitor's paths without a network: path/changes.ts (what is a change, what is only loss,
 * damping), the monitor's PathWatch on a virtual clock with a scripted path tracer (path events,
 * per-window path-hops events with quantiles and verdicts, spread start, stop), the target file's
 * `hops`, and the per-hop Prometheus series (bounded: replaced, removed, capped and counted).
 * Every event is checked against schema/monitor-v1.schema.json.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { VirtualScheduler } from '../../src/core/scheduler.js';
import { MonitorMetrics } from '../../src/export/monitor-prometheus.js';
import { readTargetsFile } from '../../src/monitor/config.js';
import type { MonitorEvent, PathEvent, PathHopsEvent } from '../../src/monitor/events.js';
import { HOPS_DEFAULTS, PathWatch, type WatchedPath } from '../../src/monitor/paths.js';
import { MONITOR_DEFAULTS } from '../../src/monitor/request.js';
import { PathChanges } from '../../src/path/changes.js';
import { diffHops } from '../../src/path/diff.js';
import type { OpenPathTracer, PathHooks } from '../../src/path/source.js';
import type { HopSample } from '../../src/path/stats.js';
import { HopStatsTable } from '../../src/path/stats.js';
import { jsonlOf } from '../helpers/schema.js';

/** A round: addresses per TTL (null: every probe lost), `q` probes each, all answered unless null. */
function round(addrs: (string | null)[], q = 1, opts: { unreachAt?: number; by?: string } = {}): HopSample[] {
  return addrs.map((a, i) => ({
    ttl: i + 1,
    probes: q,
    replies: a === null ? [] : Array.from({ length: q }, (_, k) => ({ addr: a, rtt_ms: i + 1 + k * 0.1, index: k, kind: 'time-exceeded', code: 'ttl' })),
  })).concat(opts.unreachAt ? [{ ttl: opts.unreachAt, probes: 1, replies: [{ addr: opts.by!, rtt_ms: 1, index: 0, kind: 'unreachable', code: 'net' }] }] : []);
}

test('path changes: the first path, a lost probe is no change, a new address held for the damping rounds is', () => {
  const c = new PathChanges(2);
  const a = ['10.0.1.1', '10.0.2.1', '10.0.3.1'];
  const first = c.round(round(a), true);
  assert.equal(first?.kind, 'initial');
  assert.deepEqual(first?.ttls, [1, 2, 3]);
  // Hop 2 lost every probe, the target still answered: loss, not a change.
  assert.equal(c.round(round(['10.0.1.1', null, '10.0.3.1']), true), null);
  // A new address at hop 2, once: damped.
  const b = ['10.0.1.1', '10.0.9.1', '10.0.3.1'];
  assert.equal(c.round(round(b), true), null);
  // Back to the known path: the candidate is forgotten.
  assert.equal(c.round(round(a), true), null);
  assert.equal(c.round(round(b), true), null);
  const ch = c.round(round(b), true);
  assert.equal(ch?.kind, 'changed');
  assert.deepEqual(ch?.ttls, [2]);
  assert.equal(c.changes, 1);
});

test('path changes: a path that ends early (a link down) is a change whatever TTL the router\'s unreachable came at; so is its return', () => {
  const c = new PathChanges(2);
  const full = ['10.0.1.1', '10.0.2.1', '10.0.3.1', '10.0.4.1'];
  c.round(round(full), true);
  // Linux sends Net Unreachable about once a second: it comes at varying TTLs, or not at all.
  assert.equal(c.round(round(['10.0.1.1'], 1, { unreachAt: 7, by: '10.0.2.1' }), false), null);
  const down = c.round(round(['10.0.1.1', null, null]), false);
  assert.equal(down?.kind, 'changed');
  assert.deepEqual(down?.ttls, [2, 3, 4]);
  assert.equal(down?.to.reached, false);
  assert.equal(c.round(round(full), true), null);
  const up = c.round(round(full), true);
  assert.deepEqual([up?.kind, up?.ttls, up?.to.reached], ['changed', [2, 3, 4], true]);
});

test('path changes: an ECMP hop that shows fewer branches in a lossy round is no change; in a clean round it is', () => {
  const c = new PathChanges(1);
  const two: HopSample = { ttl: 1, probes: 2, replies: [{ addr: 'A', rtt_ms: 1, index: 0 }, { addr: 'B', rtt_ms: 1, index: 1 }] };
  c.round([two], true);
  assert.equal(c.round([{ ttl: 1, probes: 2, replies: [{ addr: 'A', rtt_ms: 1, index: 0 }] }], true), null);
  const ch = c.round([{ ttl: 1, probes: 2, replies: [{ addr: 'A', rtt_ms: 1, index: 0 }, { addr: 'A', rtt_ms: 1, index: 1 }] }], true);
  assert.deepEqual(ch?.ttls, [1]);
});

test('diff: the changed hop named, loss and RTT changes as B - A', () => {
  const t1 = new HopStatsTable();
  const t2 = new HopStatsTable();
  for (let i = 0; i < 10; i++) {
    for (const h of round(['10.0.1.1', '10.0.2.1', '10.0.3.1'])) t1.add(h);
    for (const h of round(['10.0.1.1', i % 2 ? '10.0.7.1' : null, '10.0.3.1'])) t2.add(h);
  }
  const d = diffHops(t1.hops(1), t2.hops(1));
  assert.deepEqual(d.filter((h) => h.changed).map((h) => [h.ttl, h.added, h.removed]), [[2, ['10.0.7.1'], ['10.0.2.1']]]);
  assert.equal(d[1].loss_delta, 50);
  assert.equal(d[0].mean_delta_ms, 0);
});

/** A scripted tracer: round r ends at (r - 1) x intervalMs + 10 ms on the virtual clock, from `script(round)`. */
function scripted(clock: VirtualScheduler, script: (target: string, round: number) => { hops: HopSample[]; reached: boolean }, opened: string[]): OpenPathTracer {
  return async (spec, hooks: PathHooks) => {
    opened.push(`${spec.target}@${clock.now()}`);
    let r = 0;
    let timer: number | object | null = null;
    const next = () => {
      timer = clock.setTimer(() => {
        const x = script(spec.target, ++r);
        hooks.onRound({ round: r, hops: x.hops, mtus: [], reached: x.reached, srcPort: 1 });
        next();
      }, r === 0 ? 10 : spec.intervalMs);
    };
    next();
    return { stop: () => timer !== null && clock.clearTimer(timer), done: Promise.resolve() };
  };
}

test('PathWatch: starts spread over the interval, a path event when the path is known and when it changes, a path-hops event per window with quantiles and verdicts', async () => {
  const clock = new VirtualScheduler();
  const events: MonitorEvent[] = [];
  const opened: string[] = [];
  const paths: WatchedPath[] = ['t1', 't2'].map((t) => ({ target: t, address: t === 't1' ? '10.0.3.1' : '10.0.3.2', family: 4, path: null, method: 'udp', port: 33434, placement: {}, intervalMs: 100, hops: HOPS_DEFAULTS }));
  const watch = new PathWatch(
    paths,
    scripted(clock, (target, r) => {
      // t1: hop 2 answers every other round (rate-limited), the path changes at hop 2 from round 25 on.
      const h2 = r >= 25 ? '10.0.8.1' : r % 2 ? '10.0.2.1' : null;
      return { hops: round(['10.0.1.1', target === 't1' ? h2 : '10.0.2.1', target === 't1' ? '10.0.3.1' : '10.0.3.2'], 1), reached: true };
    }, opened),
    { windowMs: 1000, damping: 2, inflight: 8, timeoutMs: 500, clock, t0: 0, wall0: Date.UTC(2026, 0, 1), emit: (e) => events.push(e), onError: (t, e) => assert.fail(`${t}: ${e.message}`) },
  );
  watch.start();
  await clock.run(2950);
  await watch.stop();
  assert.deepEqual(opened, ['t1@0', 't2@50']);
  jsonlOf<MonitorEvent>('monitor-v1.schema.json', false)(events.map((e) => JSON.stringify(e)).join('\n'));
  const pathEvents = events.filter((e): e is PathEvent => e.type === 'path');
  assert.deepEqual(pathEvents.map((e) => [e.target, e.change, e.changed_ttls, e.round]), [['t1', 'initial', [1, 2, 3], 1], ['t2', 'initial', [1, 2, 3], 1], ['t1', 'changed', [2], 26]]);
  const hops = events.filter((e): e is PathHopsEvent => e.type === 'path-hops');
  // Two whole windows and the part of the third the run had, for each path.
  assert.deepEqual(hops.map((e) => [e.target, e.window, e.rounds]), [['t1', 1, 10], ['t2', 1, 10], ['t1', 2, 10], ['t2', 2, 10], ['t1', 3, 10], ['t2', 3, 9]]);
  const w1 = hops[0];
  assert.equal(w1.hops[1].loss, 50);
  assert.equal(w1.hops[1].loss_verdict, 'unknown', 'ten rounds of one probe each: the evidence is there, the probes too few');
  assert.equal(w1.hops[0].median_ms, 1);
  assert.equal(w1.hops[1].p90_ms, 2);
  assert.equal(w1.time, '2026-01-01T00:00:01.000Z');
});

test('target file: hops true, false and a mapping over the defaults; mistakes named with their line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-hops-'));
  const f = join(dir, 't.yaml');
  writeFileSync(f, 'defaults: {hops: {interval: 10, queries: 2}}\ntargets:\n  - 192.0.2.1\n  - {target: 192.0.2.2, hops: false}\n  - {target: 192.0.2.3, hops: {ecmp: 4, method: udp}}\n  - {target: 192.0.2.4, hops: true}\n');
  const base = { method: 'auto' as const, udpPort: 33434, tcpPort: 80, intervalMs: 1000, thresholds: MONITOR_DEFAULTS.thresholds, placement: {} };
  const t = await readTargetsFile(f, base);
  assert.deepEqual(t[0].hops, { ...HOPS_DEFAULTS, intervalMs: 10000, queries: 2 });
  assert.equal(t[1].hops, null);
  assert.deepEqual(t[2].hops, { ...HOPS_DEFAULTS, intervalMs: 10000, queries: 2, flows: 4, method: 'udp' });
  assert.deepEqual(t[3].hops, { ...HOPS_DEFAULTS, intervalMs: 10000, queries: 2 });
  writeFileSync(f, 'targets:\n  - 192.0.2.1\n  - {target: 192.0.2.2, hops: {max_ttl: 300}}\n');
  await assert.rejects(readTargetsFile(f, base), /t\.yaml:3: targets\[1\]\.hops\.max_ttl must be a whole number from 1 to 255/);
  writeFileSync(f, 'targets:\n  - {target: 192.0.2.2, hops: yes please}\n');
  await assert.rejects(readTargetsFile(f, base), /hops must be true, false or a mapping/);
});

test('per-hop Prometheus series: one per hop, replaced when its address changes, removed when the hop is gone, capped and counted', async () => {
  const m = new MonitorMetrics({ maxHopSeries: 3 });
  const t1 = new HopStatsTable('10.0.3.1', true);
  for (const h of round(['10.0.1.1', '10.0.2.1', '10.0.3.1'], 3)) t1.add(h);
  const ev = (target: string, hops = t1.hops(1)): PathHopsEvent => ({ schema: 'pathlens.monitor/1', type: 'path-hops', t_ms: 0, target, address: target, path: null, window: 1, window_start_ms: 0, window_ms: 1000, method: 'udp', family: 4, time: '', version: '', rounds: 1, reached: true, hops });
  m.event(ev('a'));
  let text = await m.registry.metrics();
  assert.match(text, /pathlens_hop_loss_ratio\{target="a",path="",hop="2",addr="10\.0\.2\.1"\} 0/);
  assert.match(text, /pathlens_hop_rtt_seconds\{target="a",path="",hop="1",addr="10\.0\.1\.1",stat="p50"\} 0\.001/);
  assert.match(text, /pathlens_hop_loss_verdict\{target="a",path="",hop="3",addr="10\.0\.3\.1",verdict="none"\} 1/);
  // Hop 2 answers from another address, and the path is one hop shorter.
  const t2 = new HopStatsTable('10.0.3.1', true);
  for (const h of round(['10.0.1.1', '10.0.5.1'], 3)) t2.add(h);
  m.event(ev('a', t2.hops(1)));
  text = await m.registry.metrics();
  assert.doesNotMatch(text, /addr="10\.0\.2\.1"/);
  assert.doesNotMatch(text, /hop="3"/);
  assert.match(text, /pathlens_hop_loss_ratio\{target="a",path="",hop="2",addr="10\.0\.5\.1"\} 0/);
  // A second path: one series left under the cap of 3, the other two hops counted.
  m.event(ev('b'));
  text = await m.registry.metrics();
  assert.equal((text.match(/^pathlens_hop_loss_ratio\{/gm) ?? []).length, 3);
  assert.match(text, /pathlens_hop_series_dropped_total 2/);
  m.event({ schema: 'pathlens.monitor/1', type: 'path', t_ms: 0, target: 'a', address: 'a', path: null, change: 'changed', round: 3, from: null, to: [{ ttl: 1, addrs: ['10.0.1.1'] }], reached: false, changed_ttls: [2], changes: 1 });
  text = await m.registry.metrics();
  assert.match(text, /pathlens_path_changes_total\{target="a",path=""\} 1/);
  assert.match(text, /pathlens_path_reached\{target="a",path=""\} 0/);
  assert.match(text, /pathlens_path_hops\{target="a",path=""\} 1/);
});

test('monitor requests with hops: refused in one line without a path tracer, with TCP ECMP, or too fast', async () => {
  const { validateMonitor } = await import('../../src/monitor/request.js');
  const target = (hops: Partial<typeof HOPS_DEFAULTS>, method: 'auto' | 'tcp' = 'auto') => ({ name: 'x', address: new Uint8Array([192, 0, 2, 1]), method, udpPort: 33434, tcpPort: 80, intervalMs: 1000, thresholds: MONITOR_DEFAULTS.thresholds, placement: {}, path: null, labels: {}, hops: { ...HOPS_DEFAULTS, ...hops } });
  const req = (t: ReturnType<typeof target>, openPath?: OpenPathTracer) => ({ targets: [t], windowMs: 10000, timeoutMs: 1000, durationMs: 0, samples: false, ...(openPath ? { openPath } : {}) });
  const open: OpenPathTracer = async () => ({ stop() {}, done: Promise.resolve() });
  assert.throws(() => validateMonitor(req(target({}))), /targets with hops need a path tracer/);
  assert.doesNotThrow(() => validateMonitor(req(target({}), open)));
  assert.throws(() => validateMonitor(req(target({ flows: 4 }, 'tcp'), open)), /x: hops ecmp needs UDP or ICMP probes/);
  assert.throws(() => validateMonitor(req(target({ intervalMs: 50 }), open)), /at most every 0\.1 s/);
  assert.throws(() => validateMonitor(req(target({ maxTtl: 0 }), open)), /max_ttl must be from 1 to 255/);
});
