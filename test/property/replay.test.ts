/**
 * `pathlens report` / `diff` read recordings a user hands them: any bytes. Property: for any file
 * (random lines, JSON of any shape, real-looking events with any field changed), replay() either
 * gives paths every view renders without throwing, or refuses with one PathlensError naming the
 * file and line; never another exception.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { replay } from '../../src/cli/replay.js';
import { PathlensError } from '../../src/core/errors.js';
import { diffHops } from '../../src/path/diff.js';
import { RoundSeries, reportHtml } from '../../src/render/trace-html.js';
import { reportCsv, reportJson, reportText } from '../../src/render/trace-report.js';

const start = { schema: 'pathlens.trace/1', type: 'start', t_ms: 0, version: '0.1.0', time: '2026-01-01T00:00:00.000Z', method: 'udp', socket: 'dgram', family: 4, target: '10.0.3.1', address: '10.0.3.1', source: null, src_port: 1, first_ttl: 1, max_ttl: 30, queries: 1, port: 33434, wait_ms: 3000, adaptive_factor: 2, max_inflight: 16, payload_len: 32, deadline_ms: null, tos: null, quote_header: false };
const hop = (ttl: number, addr: string | null, round: number) => ({ schema: 'pathlens.trace/1', type: 'hop', t_ms: 1, round, ttl, probes: 1, replies: addr === null ? [] : [{ addr, rtt_ms: ttl, kind: 'time-exceeded', code: 'ttl', index: 0 }], no_reply: addr === null ? 1 : 0, addrs: addr === null ? [] : [addr] });
const pathHops = { schema: 'pathlens.monitor/1', type: 'path-hops', t_ms: 1, target: 't', address: '10.0.3.1', path: null, window: 1, window_start_ms: 0, window_ms: 1000, method: 'icmp', family: 4, time: '2026-01-01T00:00:01.000Z', version: '0.1.0', rounds: 1, reached: true, hops: [{ ttl: 1, sent: 1, received: 1, loss: 0, last_ms: 1, mean_ms: 1, best_ms: 1, worst_ms: 1, stdev_ms: 0, jitter_ms: null, jitter_mean_ms: null, jitter_max_ms: null, jitter_rfc3550_ms: null, responders: [{ addr: '10.0.1.1', count: 1 }], other_responders: 0, median_ms: 1, p90_ms: 1 }] };

/** A real-looking event with one field (at any depth) replaced by any JSON value. */
const mutated = fc.tuple(fc.constantFrom<unknown>(start, hop(1, '10.0.1.1', 1), hop(2, null, 1), pathHops), fc.array(fc.oneof(fc.string(), fc.nat(3)), { minLength: 1, maxLength: 4 }), fc.jsonValue()).map(([base, path, value]) => {
  const copy = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  let at: Record<string, unknown> = copy;
  for (let i = 0; i < path.length - 1; i++) {
    const next = at[String(path[i])];
    if (typeof next !== 'object' || next === null) break;
    at = next as Record<string, unknown>;
  }
  at[String(path[path.length - 1])] = value;
  return JSON.stringify(copy);
});

const valid = fc.tuple(fc.integer({ min: 1, max: 8 }), fc.option(fc.constantFrom('10.0.1.1', '10.0.2.1', '10.0.3.1'), { nil: null }), fc.integer({ min: 1, max: 5 })).map(([t, a, r]) => JSON.stringify(hop(t, a, r)));
const line = fc.oneof({ arbitrary: valid, weight: 4 }, { arbitrary: mutated, weight: 2 }, { arbitrary: fc.string(), weight: 1 }, { arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)), weight: 1 }, { arbitrary: fc.constant(JSON.stringify(pathHops)), weight: 1 });
/** A recording: usually a start event first, then any lines. */
const recording = fc.tuple(fc.boolean(), fc.array(line, { maxLength: 12 })).map(([withStart, rest]) => (withStart ? [JSON.stringify(start), ...rest] : rest));

test('property: replay of any recording renders every view or refuses with one pathlens error naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-replay-'));
  const file = join(dir, 'rec.jsonl');
  const seen = { rendered: 0, refused: 0 };
  try {
    await fc.assert(
      fc.asyncProperty(recording, async (lines) => {
        writeFileSync(file, lines.join('\n'));
        let paths;
        try {
          paths = await replay({ file, from: 1, to: Infinity });
        } catch (e) {
          assert.ok(e instanceof PathlensError, `not a PathlensError: ${(e as Error).stack}`);
          assert.ok(e.message.startsWith(file), e.message);
          assert.ok(!e.message.includes('\n'), 'one line');
          seen.refused++;
          return;
        }
        for (const p of paths) {
          const x = { start: p.start, hops: p.hops, rounds: p.rounds, names: p.names, startedAt: p.startedAt, host: 'h' };
          reportText(x);
          JSON.parse(reportJson(x));
          reportCsv(x);
          reportHtml({ ...x, series: new RoundSeries() });
          diffHops(p.hops, p.hops);
        }
        seen.rendered++;
      }),
      { numRuns: 400 },
    );
    assert.ok(seen.rendered > 40 && seen.refused > 40, `both ways taken: ${JSON.stringify(seen)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
