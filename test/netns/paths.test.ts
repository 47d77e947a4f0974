/**
 * Paths on real lab routers (issue 30): the loss verdicts (a router whose own ICMP is rate-limited
 * by the kernel is called rate-limited, a lossy link is called real loss from the hop after it: each
 * right in at least 19 of 20 runs), per-branch statistics on a 4-wide diamond with loss on one
 * branch (that branch lossy, the others clean), `pathlens report` of a recording equal to the live
 * report, `pathlens diff` naming the hop that changed, and the monitor watching a path whose middle
 * link goes down and comes back: two path events, per-hop series, and an alert firing in a real
 * Prometheus.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Collect } from '../../src/core/sink.js';
import { labLink } from '../../src/lab/link.js';
import { chain, ecmp } from '../../src/lab/presets.js';
import { validateSpec } from '../../src/lab/spec.js';
import type { MonitorEvent, PathEvent } from '../../src/monitor/events.js';
import type { HopStats } from '../../src/path/stats.js';
import type { TraceEvent } from '../../src/trace/events.js';
import { TRACE_DEFAULTS } from '../../src/trace/request.js';
import { startRounds } from '../../src/trace/rounds.js';
import { CLI, addrOf, labName, nodeNs, runIn, withLab } from '../helpers/lab.js';
import { getIn, prometheusIn } from '../helpers/prometheus.js';
import { rootOnly } from '../helpers/root.js';
import { jsonlOf } from '../helpers/schema.js';

const opt = rootOnly();
const RUNS = 20;

/** One run of continuous mode from src, in-process: the hop statistics at its end. */
async function rounds(st: Parameters<typeof nodeNs>[0], target: string, o: { count: number; intervalMs: number; queries?: number; ecmp?: number }): Promise<HopStats[]> {
  const sink = new Collect<TraceEvent>();
  const h = await startRounds({ ...TRACE_DEFAULTS, target, method: 'udp', queries: o.queries ?? 3, maxTtl: 8, waitMs: 500, placement: { netns: nodeNs(st, 'src') }, ...(o.ecmp ? { ecmp: o.ecmp } : {}) }, sink, { count: o.count, intervalMs: o.intervalMs });
  const d = await h.done;
  assert.equal(d.reason, 'reached');
  return h.stats.hops(1);
}

test(`loss verdicts: a router rate-limiting its own ICMP is "rate-limited" in >= 19 of ${RUNS} runs, the hops around it "none"`, opt, async () => {
  const spec = chain({ name: labName('rl'), routers: 3 });
  // r2 answers at most one Time Exceeded per 100 ms to a host (the kernel's token bucket, a burst of 6).
  spec.nodes.find((n) => n.name === 'r2')!.icmp_ratelimit = { ms: 100 };
  await withLab(validateSpec(spec), async (st) => {
    const dst = addrOf(st, 'dst', 4);
    let right = 0;
    const seen: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const hops = await rounds(st, dst, { count: 15, intervalMs: 50 });
      const v = hops.map((h) => h.loss_verdict);
      seen.push(`${hops[1].loss.toFixed(0)}%:${v.join(',')}`);
      if (v[1] === 'rate-limited' && v[0] === 'none' && v[2] === 'none') right++;
    }
    process.stdout.write(`# rate-limited router: right in ${right}/${RUNS} (hop 2 loss and verdicts per run: ${seen.join(' ')})\n`);
    assert.ok(right >= RUNS - 1, seen.join('\n'));
  });
});

// The verdict's z >= 3 test calls equal losses "rate-limited" by chance in about 1 run of 700 (a CI
// run once drew 49 % at hop 3 against 18 % at the target, 45 probes each: z = 3.1). So one such run
// in 20 is within the bar; two would be a bias, not chance (about 1 in 10^5).
test(`loss verdicts: a lossy link is "onward" (real loss) at the hop after it in >= 19 of ${RUNS} runs, "rate-limited" at most once`, opt, async () => {
  const spec = chain({ name: labName('ll'), routers: 3, seed: 7 });
  // 20 % loss each way on r2-r3: hop 3 and the target lose about 36 % of their round trips.
  spec.links.find((l) => l.a === 'r2' && l.b === 'r3')!.impair = { loss: 0.2 };
  await withLab(validateSpec(spec), async (st) => {
    const dst = addrOf(st, 'dst', 4);
    let right = 0;
    let limited = 0;
    const seen: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const hops = await rounds(st, dst, { count: 15, intervalMs: 20 });
      const v = hops.map((h) => h.loss_verdict);
      seen.push(`${hops[2].loss.toFixed(0)}%/${hops[3].loss.toFixed(0)}%:${v.join(',')}`);
      if (v[2] === 'rate-limited') limited++;
      assert.ok(limited <= 1, seen.join('\n'));
      if (v[0] === 'none' && v[1] === 'none' && v[2] === 'onward' && hops[2].loss_evidence?.ttl === 4) right++;
    }
    process.stdout.write(`# lossy link: right in ${right}/${RUNS} (hop 3 / target loss and verdicts per run: ${seen.join(' ')})\n`);
    assert.ok(right >= RUNS - 1, seen.join('\n'));
  });
});

test('ECMP branches: a 4-wide diamond with loss on one branch shows it on that branch only', opt, async () => {
  const spec = ecmp({ name: labName('eb'), width: 4, seed: 3 });
  spec.links.find((l) => l.a === 'ra' && l.b === 'm2')!.impair = { loss: 0.3 };
  await withLab(validateSpec(spec), async (st) => {
    const dst = addrOf(st, 'dst', 4);
    const m2 = st.plan.nodes.find((n) => n.name === 'm2')!.ifaces.find((i) => i.peer === 'ra')!.v4;
    for (let run = 0; run < 3; run++) {
      const hops = await rounds(st, dst, { count: 10, intervalMs: 20, queries: 1, ecmp: 32 });
      const branches = hops[1].branches!.filter((b) => b.addr !== null);
      assert.equal(branches.length, 4, JSON.stringify(hops[1].branches));
      for (const b of branches) {
        if (b.addr === m2) assert.ok(b.loss > 20 && b.flows.length > 0, `the lossy branch: ${JSON.stringify(b)}`);
        else assert.equal(b.loss, 0, `a clean branch: ${JSON.stringify(b)}`);
      }
      assert.ok(hops[1].loss > 0 && hops[1].loss < 30, `the hop as a whole loses less than its lossy branch: ${hops[1].loss}`);
    }
  });
});

test('pathlens report of a recording equals the live report; pathlens diff names the hop that changed', opt, async () => {
  await withLab(ecmp({ name: labName('rd'), width: 2 }), async (st) => {
    const src = nodeNs(st, 'src');
    const dst = addrOf(st, 'dst', 4);
    const dir = mkdtempSync(join(tmpdir(), 'pl-report-'));
    try {
      const ra = st.plan.nodes.find((n) => n.name === 'ra')!;
      const via = (m: string) => st.plan.nodes.find((n) => n.name === m)!.ifaces.find((i) => i.peer === 'ra')!.v4;
      const pin = (m: string) => assert.equal(spawnSync('ip', ['-n', ra.ns, 'route', 'replace', `${dst}/32`, 'via', via(m)]).status, 0);
      const recorded: string[] = [];
      for (const m of ['m1', 'm2']) {
        pin(m);
        const file = join(dir, `${m}.jsonl`);
        const live = await runIn(src, [process.execPath, CLI, 'trace', '-n', '-c', '5', '--interval', '0.05', '--report', '-o', file, dst]);
        assert.equal(live.code, 0, live.stderr);
        const again = await runIn(src, [process.execPath, CLI, 'report', '-n', file]);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(again.stdout, live.stdout, 'the report of the recording is the live one');
        assert.match(live.stdout, new RegExp(`2\\.\\|-- ${via(m).replaceAll('.', '\\.')} `));
        recorded.push(file);
      }
      const d = await runIn(src, [process.execPath, CLI, 'diff', '--exit-code', ...recorded]);
      assert.equal(d.code, 3, d.stderr);
      // Hop 2 is the middle router pinned; rb (hop 3) answers from whichever link its own ECMP return route hashes to.
      assert.match(d.stdout, /changed hops: 2(, 3)?\n$/);
      assert.match(d.stdout, new RegExp(`^  2 .*changed \\+${via('m2').replaceAll('.', '\\.')} -${via('m1').replaceAll('.', '\\.')}`, 'm'));
      const j = await runIn(src, [process.execPath, CLI, 'diff', '--json', `${recorded[0]}@1-2`, `${recorded[0]}@3-5`]);
      assert.equal(j.code, 0, j.stderr);
      assert.deepEqual(JSON.parse(j.stdout).changed, [], 'two stretches of one run on one path: nothing changed');
      const bad = await runIn(src, [process.execPath, CLI, 'report', join(dir, 'none.jsonl')]);
      assert.deepEqual([bad.code, bad.stderr], [1, `pathlens: cannot read ${join(dir, 'none.jsonl')}: ENOENT\n`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('monitor --hops: a middle link down and back gives two path events, per-hop series, and an alert in a real Prometheus', opt, async () => {
  await withLab(chain({ name: labName('mh'), routers: 3 }), async (st) => {
    const src = nodeNs(st, 'src');
    const at = (node: string) => addrOf(st, node, 4);
    const dst = at('dst');
    const PORT = 9465;
    const dir = mkdtempSync(join(tmpdir(), 'pl-paths-'));
    chmodSync(dir, 0o755);
    const kids: ChildProcess[] = [];
    const out = join(dir, 'monitor.jsonl');
    try {
      const agent = spawn('ip', ['netns', 'exec', src, process.execPath, CLI, 'monitor', '--quiet', '-I', '--interval', '0.2', '--window', '1', '--timeout', '300', '--hops', '--prometheus', `${at('src')}:${PORT}`, '-o', out, dst], { stdio: 'ignore' });
      kids.push(agent);
      writeFileSync(join(dir, 'rules.yml'), ['groups:', '  - name: paths', '    interval: 1s', '    rules:', '      - alert: PathChanged', '        expr: increase(pathlens_path_changes_total{job="pathlens"}[1m]) > 0', '        labels: {severity: ticket}', ''].join('\n'));
      writeFileSync(join(dir, 'prometheus.yml'), ['global: {scrape_interval: 1s, evaluation_interval: 1s}', `rule_files: ["${join(dir, 'rules.yml')}"]`, 'scrape_configs:', '  - job_name: pathlens', `    static_configs: [{targets: ["${at('src')}:${PORT}"]}]`, ''].join('\n'));
      const check = spawnSync('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' });
      assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
      kids.push(spawn('ip', ['netns', 'exec', src, 'prometheus', `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--web.listen-address=127.0.0.1:9091'], { stdio: 'ignore' }));
      const { until } = prometheusIn(src, 9091);
      // The whole path, one series per hop, the target reached.
      const hopSeries = await until(`pathlens_hop_loss_ratio{target="${dst}"}`, (r) => r.length === 4, 40);
      assert.deepEqual(hopSeries.map((x) => [x.metric.hop, x.metric.addr]).sort(), [['1', at('r1')], ['2', at('r2')], ['3', at('r3')], ['4', dst]]);
      await until(`pathlens_path_reached{target="${dst}"} == 1`, (r) => r.length === 1, 20);
      const metrics = await getIn(src, `http://${at('src')}:${PORT}/metrics`);
      assert.match(metrics, new RegExp(`pathlens_hop_loss_verdict\\{target="${dst.replaceAll('.', '\\.')}",path="",hop="2",addr="[^"]+",verdict="none"\\} 1`));

      // The r2-r3 link goes down: the path ends at r1 (r2 has no route, its unreachables are rate-limited); the alert fires.
      labLink(st, 'r2', 'r3', 'down');
      const firing = await until('ALERTS{alertname="PathChanged",alertstate="firing"}', (r) => r.length === 1, 40);
      assert.equal(firing[0].metric.target, dst);
      await until(`pathlens_path_reached{target="${dst}"} == 0`, (r) => r.length === 1, 10);
      // And comes back, with its routes: the path is whole again.
      labLink(st, 'r2', 'r3', 'up');
      await until(`pathlens_path_reached{target="${dst}"} == 1`, (r) => r.length === 1, 30);
      await until(`pathlens_path_changes_total{target="${dst}"}`, (r) => r.length === 1 && r[0].value[1] === '2', 10);
      agent.kill('SIGINT');
      await new Promise((r) => agent.once('exit', r));
      const events = jsonlOf<MonitorEvent>('monitor-v1.schema.json', false)(readFileSync(out, 'utf8'));
      const paths = events.filter((e): e is PathEvent => e.type === 'path');
      assert.deepEqual(
        paths.map((e) => [e.change, e.reached]),
        [
          ['initial', true],
          ['changed', false],
          ['changed', true],
        ],
        JSON.stringify(paths),
      );
      assert.ok(paths[1].changed_ttls.includes(3) && paths[2].changed_ttls.includes(3), JSON.stringify(paths));
      assert.deepEqual(paths[2].to.map((h) => h.addrs), [[at('r1')], [at('r2')], [at('r3')], [dst]]);
      assert.equal(events.at(-1)!.type, 'done');
      // The recording's path windows replay into the report.
      const rep = await runIn(src, [process.execPath, CLI, 'report', '-n', out]);
      assert.equal(rep.code, 0, rep.stderr);
      assert.match(rep.stdout, /HOST: /);
    } finally {
      for (const k of kids) k.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
