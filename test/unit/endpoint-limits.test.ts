/**
 * The monitor's endpoint is not an open relay (issue 29), on loopback: /probe answers only for the
 * agent's own targets (anything else 404, counted), and one client's flood beyond
 * --prometheus-rate gets 429 with Retry-After and the reason, counted, while the agent keeps
 * serving once the client slows down.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI } from '../helpers/lab.js';

test('endpoint bounds: targets outside the agent\'s own refused; a flood beyond the rate refused with 429 and counted; served again after', async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const base = `http://127.0.0.1:${port}`;
  const c = spawn(process.execPath, [CLI, 'monitor', '--udp', '--interval', '0.2', '--window', '1', '--timeout', '300', '--duration', '30', '--quiet', '--prometheus', `127.0.0.1:${port}`, '--prometheus-rate', '20', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr!.on('data', (d) => (err += d));
  try {
    // Up, with a closed window for its target.
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      await sleep(100);
      ready = await fetch(`${base}/metrics`).then(async (r) => (await r.text()).includes('probe_success{target="127.0.0.1"'), () => false);
    }
    assert.ok(ready, `the agent did not answer: ${err}`);
    await sleep(2100); // the bucket full again (40: twice the rate)

    const outside = await fetch(`${base}/probe?target=198.51.100.7`);
    assert.equal(outside.status, 404);
    assert.match(await outside.text(), /198\.51\.100\.7 is not a target of this agent .* probes nothing on request/);

    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: 200 }, () => fetch(`${base}/probe?target=127.0.0.1`).then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), body: await r.text() }))));
    const ok = answers.filter((a) => a.status === 200).length;
    const limited = answers.filter((a) => a.status === 429);
    assert.equal(ok + limited.length, 200, JSON.stringify(answers.filter((a) => a.status !== 200 && a.status !== 429)));
    // The bucket held 40 (less the one refused target's request), and refills at 20 a second.
    const refilled = Math.ceil(((performance.now() - t0) / 1000) * 20);
    assert.ok(ok >= 39 && ok <= 40 + refilled, `${ok} answered: the burst of 40 and the ${refilled} the rate refilled meanwhile`);
    assert.ok(limited.every((a) => a.retry === '1' && /^more than 20 requests a second from 127\.0\.0\.1\n$/.test(a.body)), JSON.stringify(limited[0]));

    await sleep(1500);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, new RegExp(`^pathlens_http_requests_refused_total\\{reason="rate"\\} ${limited.length}$`, 'm'));
    assert.match(metrics, /^pathlens_monitor_probe_refused_total\{reason="unknown-target"\} 1$/m);
  } finally {
    c.kill('SIGTERM');
    await new Promise((r) => c.once('close', r));
  }
});
