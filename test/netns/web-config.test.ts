/**
 * The metrics endpoint behind TLS and basic auth (--web.config.file), scraped by a real
 * Prometheus (Debian's) in a lab namespace: the job with the CA and the credentials gets the
 * agent's series (`up` 1, probe_success 1), a job without credentials is refused (`up` 0), and
 * an agent's probing goes on regardless.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import bcrypt from 'bcryptjs';
import { chain } from '../../src/lab/presets.js';
import { CLI, ROOT, addrOf, labName, nodeNs, withLab } from '../helpers/lab.js';
import { prometheusIn } from '../helpers/prometheus.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();
const PORT = 9465;
const TLS = join(ROOT, 'test', 'fixtures', 'tls');

test('a real Prometheus scrapes the monitor over TLS with basic auth; a job without credentials is refused', opt, async () => {
  await withLab(chain({ name: labName('wc'), routers: 1 }), async (st) => {
    const src = nodeNs(st, 'src');
    const target = addrOf(st, 'r1', 4);
    const dir = mkdtempSync(join(tmpdir(), 'pl-webcfg-'));
    chmodSync(dir, 0o755);
    const kids: ChildProcess[] = [];
    try {
      writeFileSync(
        join(dir, 'web.yml'),
        [
          'tls_server_config:',
          `  cert_file: ${join(TLS, 'server.crt')}`,
          `  key_file: ${join(TLS, 'server.key')}`,
          'basic_auth_users:',
          `  prom: '${bcrypt.hashSync('s3cret', 8)}'`,
          '',
        ].join('\n'),
      );
      kids.push(spawn('ip', ['netns', 'exec', src, process.execPath, CLI, 'monitor', '--quiet', '-I', '--interval', '0.2', '--window', '1', '--timeout', '300', '--prometheus', `127.0.0.1:${PORT}`, '--web.config.file', join(dir, 'web.yml'), target], { stdio: 'ignore' }));
      writeFileSync(
        join(dir, 'prometheus.yml'),
        [
          'global: {scrape_interval: 1s}',
          'scrape_configs:',
          '  - job_name: tls-auth',
          '    scheme: https',
          `    tls_config: {ca_file: "${join(TLS, 'ca.crt')}"}`,
          '    basic_auth: {username: prom, password: s3cret}',
          `    static_configs: [{targets: ["127.0.0.1:${PORT}"]}]`,
          '  - job_name: no-credentials',
          '    scheme: https',
          `    tls_config: {ca_file: "${join(TLS, 'ca.crt')}"}`,
          `    static_configs: [{targets: ["127.0.0.1:${PORT}"]}]`,
          '',
        ].join('\n'),
      );
      const check = spawnSync('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' });
      assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
      kids.push(spawn('ip', ['netns', 'exec', src, 'prometheus', `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--web.listen-address=127.0.0.1:9091'], { stdio: 'ignore' }));
      const { query, until } = prometheusIn(src, 9091);
      const ups = await until('up', (r) => r.length === 2, 30);
      const up = Object.fromEntries(ups.map((s) => [s.metric.job, s.value[1]]));
      assert.deepEqual(up, { 'tls-auth': '1', 'no-credentials': '0' });
      const ok = await until('probe_success{job="tls-auth"} == 1', (r) => r.length === 1, 20);
      assert.equal(ok[0].metric.target, target);
      assert.equal((await query('probe_success{job="no-credentials"}')).length, 0, 'nothing scraped without credentials');
    } finally {
      for (const k of kids) k.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
