/**
 * A fleet of agents on one Prometheus (issue 23): three `pathlens monitor --prometheus` agents in
 * three namespaces of a lab chain (src, r1, r2), watching overlapping targets (r3 and dst beyond
 * the r2-r3 link, r1 on this side), and a real Prometheus (Debian's) in src scraping every agent's
 * /metrics and, through blackbox_exporter's multi-target pattern (relabelled __param_target, the
 * agent as __address__), the src agent's /probe. Checked through Prometheus' HTTP API: per-agent,
 * per-target series; a recording rule (loss over 5 m per path); the /probe job; and, with the r2-r3
 * link taken down, an alerting rule on probe_success that fires for the targets beyond it, and
 * only for them. /probe refuses a target the agent does not watch (404, counted). The Grafana
 * dashboard of deploy/grafana: each panel's query answered by this Prometheus from these agents.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chain } from '../../src/lab/presets.js';
import { CLI, ROOT, addrOf, labName, nodeNs, withLab } from '../helpers/lab.js';
import { getIn, prometheusIn } from '../helpers/prometheus.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();
const PORT = 9464;

test('three agents, one Prometheus: per-agent series, a recording rule, the /probe pattern, and an alert when a lab link goes down', opt, async () => {
  await withLab(chain({ name: labName('fl'), routers: 3 }), async (st) => {
    const src = nodeNs(st, 'src');
    const agents = ['src', 'r1', 'r2'];
    const at = (node: string) => addrOf(st, node, 4);
    const far = [at('r3'), at('dst')];
    const near = at('r1');
    const dir = mkdtempSync(join(tmpdir(), 'pl-fleet-'));
    chmodSync(dir, 0o755);
    const kids: ChildProcess[] = [];
    try {
      // Every agent watches both far targets (overlapping) and r1's address (this side).
      for (const a of agents) {
        kids.push(spawn('ip', ['netns', 'exec', nodeNs(st, a), process.execPath, CLI, 'monitor', '--quiet', '-I', '--interval', '0.1', '--window', '1', '--timeout', '300', '--fall', '1', '--prometheus', `${at(a)}:${PORT}`, near, ...far], { stdio: 'ignore' }));
      }
      writeFileSync(
        join(dir, 'rules.yml'),
        [
          'groups:',
          '  - name: pathlens',
          '    interval: 1s',
          '    rules:',
          '      - record: path:pathlens_monitor_loss_ratio:avg5m',
          '        expr: avg_over_time(pathlens_monitor_loss_ratio{job="pathlens"}[5m])',
          '      - alert: PathDown',
          '        expr: probe_success{job="pathlens"} == 0',
          '        for: 1s',
          '        labels: {severity: page}',
          '',
        ].join('\n'),
      );
      writeFileSync(
        join(dir, 'prometheus.yml'),
        [
          'global: {scrape_interval: 1s, evaluation_interval: 1s}',
          `rule_files: ["${join(dir, 'rules.yml')}"]`,
          'scrape_configs:',
          '  - job_name: pathlens',
          `    static_configs: [{targets: [${agents.map((a) => `"${at(a)}:${PORT}"`).join(', ')}]}]`,
          '  - job_name: pathlens-probe',
          '    metrics_path: /probe',
          '    params: {module: [icmp]}',
          `    static_configs: [{targets: ["${near}", "${far[1]}"]}]`,
          '    relabel_configs:',
          '      - {source_labels: [__address__], target_label: __param_target}',
          '      - {source_labels: [__param_target], target_label: target}',
          `      - {target_label: __address__, replacement: "${at('src')}:${PORT}"}`,
          '',
        ].join('\n'),
      );
      const check = spawnSync('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' });
      assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
      kids.push(spawn('ip', ['netns', 'exec', src, 'prometheus', `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--web.listen-address=127.0.0.1:9090'], { stdio: 'ignore' }));
      const get = (url: string) => getIn(src, url);
      const { query, until } = prometheusIn(src, 9090);

      // Every agent, every target: 3 x 3 series of probe_success, all 1.
      const up = await until('probe_success{job="pathlens"} == 1', (r) => r.length === 9, 40);
      assert.deepEqual(new Set(up.map((s) => s.metric.instance)), new Set(agents.map((a) => `${at(a)}:${PORT}`)));
      // The recording rule: loss over 5 m, per agent and path.
      const rec = await until('path:pathlens_monitor_loss_ratio:avg5m', (r) => r.length === 9, 20);
      assert.ok(rec.every((s) => Number(s.value[1]) === 0), JSON.stringify(rec));
      // The multi-target pattern: one series per relabelled target, from the src agent.
      const probed = await until('probe_success{job="pathlens-probe"}', (r) => r.length === 2, 20);
      assert.deepEqual(probed.map((s) => [s.metric.target, s.value[1]]).sort(), [[near, '1'], [far[1], '1']].sort());
      // /probe refuses what the agent does not watch, and counts it.
      const refused = await get(`http://${at('src')}:${PORT}/probe?target=${at('r2')}`);
      assert.match(refused, /^404 .*is not a target of this agent/);
      assert.match(await get(`http://${at('src')}:${PORT}/probe?target=${far[1]}&module=udp`), /^404 .*is probed by icmp here, not udp/);
      assert.match(await get(`http://${at('src')}:${PORT}/probe`), /^400 target= is required/);
      const counted = await get(`http://${at('src')}:${PORT}/metrics`);
      for (const reason of ['unknown-target', 'other-module', 'no-target']) assert.match(counted, new RegExp(`pathlens_monitor_probe_refused_total\\{reason="${reason}"\\} 1`));

      // The r2-r3 link goes down: the far targets stop answering, for every agent.
      const r2 = st.plan.nodes.find((n) => n.name === 'r2')!;
      const toR3 = r2.ifaces.find((i) => i.peer === 'r3')!;
      const down = spawnSync('ip', ['netns', 'exec', r2.ns, 'ip', 'link', 'set', toR3.name, 'down'], { encoding: 'utf8' });
      assert.equal(down.status, 0, down.stderr);
      const firing = await until('ALERTS{alertname="PathDown",alertstate="firing"}', (r) => r.length === 6, 40);
      assert.deepEqual(new Set(firing.map((s) => s.metric.target)), new Set(far), 'the alert fires for the targets beyond the link, and only them');
      assert.ok(firing.every((s) => s.metric.severity === 'page'));
      const still = await query(`probe_success{job="pathlens",target="${near}"}`);
      assert.ok(still.length === 3 && still.every((s) => s.value[1] === '1'), JSON.stringify(still));

      // The Grafana dashboard (deploy/grafana): every panel's query, its variables given their
      // 'All' value, answered by this Prometheus with series from these agents.
      const dash = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'pathlens-monitor.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[]; templating: { list: { name: string }[] } };
      assert.deepEqual(dash.templating.list.map((v) => v.name), ['datasource', 'job', 'instance']);
      for (const panel of dash.panels) {
        for (const t of panel.targets) {
          const expr = t.expr.replaceAll('$job', '.*').replaceAll('$instance', '.*').replaceAll('$__rate_interval', '1m');
          const r = await until(expr, (x) => x.length > 0, 20);
          assert.ok(r.every((s) => s.metric.instance === undefined || agents.some((a) => s.metric.instance === `${at(a)}:${PORT}`)), `${panel.title}: ${JSON.stringify(r[0])}`);
        }
      }
    } finally {
      for (const k of kids) k.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
