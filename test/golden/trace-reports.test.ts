/**
 * The continuous-mode reports on fixed statistics, against files in test/fixtures/reports/:
 * mtr -r's table, mtr --json's document with pathlens' hops, mtr --csv's rows; the JSON and CSV
 * read back with Python's json and csv modules (standard tools), the HTML's structure.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { RoundSeries, reportHtml } from '../../src/render/trace-html.js';
import { type ReportInput, reportCsv, reportJson, reportText } from '../../src/render/trace-report.js';
import type { HopEvent, StartEvent } from '../../src/trace/events.js';
import { HopStatsTable } from '../../src/path/stats.js';
import { ROOT } from '../helpers/lab.js';

const FIX = `${ROOT}test/fixtures/reports/`;
const UPDATE = process.env.PATHLENS_UPDATE_GOLDEN === '1';

function input(): ReportInput & { series: RoundSeries } {
  const table = new HopStatsTable();
  const series = new RoundSeries();
  const rtts: Record<number, (number | null)[]> = {
    1: [1.1, 1.3, 1.2, 1.0],
    2: [null, null, null, null],
    3: [10.5, null, 11.5, 10.0],
    4: [20.25, 21.5, null, 20.75],
  };
  for (let round = 1; round <= 4; round++) {
    for (const ttl of [1, 2, 3, 4]) {
      const r = rtts[ttl][round - 1];
      const addr = ttl === 3 && round === 3 ? '10.0.3.9' : `10.0.${ttl}.1`;
      const h: HopEvent = { schema: 'pathlens.trace/1', type: 'hop', t_ms: 0, round, ttl, probes: 1, replies: r === null ? [] : [{ addr, rtt_ms: r, kind: 'time-exceeded', code: 'ttl', index: 0 }], no_reply: r === null ? 1 : 0, addrs: r === null ? [] : [addr] };
      table.add(h);
      series.event(h);
    }
  }
  const start = { schema: 'pathlens.trace/1', type: 'start', t_ms: 0, version: '0.1.0', time: '2026-01-01T00:00:00.000Z', method: 'udp', socket: 'dgram', family: 4, target: '10.0.4.1', address: '10.0.4.1', source: null, src_port: 40000, first_ttl: 1, max_ttl: 30, queries: 1, port: 33434, wait_ms: 3000, adaptive_factor: 2, max_inflight: 16, payload_len: 32, deadline_ms: null, tos: null, quote_header: false } as StartEvent;
  return { start, hops: table.hops(1), rounds: 4, names: new Map([['10.0.1.1', 'gw.example.test'], ['10.0.3.9', null]]), startedAt: Date.UTC(2026, 0, 1), host: 'probe-host', series };
}

function golden(name: string, text: string): void {
  if (UPDATE) writeFileSync(FIX + name, text);
  assert.equal(text, readFileSync(FIX + name, 'utf8'), `${name} differs (PATHLENS_UPDATE_GOLDEN=1 rewrites it after a deliberate change)`);
}

test('--report: mtr -r\'s columns', () => {
  golden('report.txt', reportText(input()));
});

test('--report-json: mtr --json\'s document and pathlens\' hops; Python\'s json reads it', () => {
  const text = reportJson(input());
  golden('report.json', text);
  const py = spawnSync('python3', ['-c', 'import json,sys; d=json.load(sys.stdin)["report"]; print(len(d["hubs"]), d["hops"][2]["loss"], d["hubs"][1]["host"])'], { input: text, encoding: 'utf8' });
  assert.equal(py.stdout.trim(), '4 25 ???');
});

test('--csv: mtr --csv\'s header and rows; Python\'s csv reads them', () => {
  const text = reportCsv(input());
  golden('report.csv', text);
  const py = spawnSync('python3', ['-c', 'import csv,sys; r=list(csv.DictReader(sys.stdin)); print(len(r), r[2]["Ip"], r[3]["Ip"], r[0]["Loss%"])'], { input: text, encoding: 'utf8' });
  assert.equal(py.stdout.trim(), '5 10.0.3.1 10.0.3.9 0.00');
});

test('--html: one row per hop, one chart per answering hop, lost rounds marked, nothing fetched', () => {
  const html = reportHtml(input());
  assert.equal((html.match(/<tr class="hop/g) ?? []).length, 4);
  assert.equal((html.match(/<svg class="rtt-chart"/g) ?? []).length, 3);
  assert.equal((html.match(/<line class="lost"/g) ?? []).length, 2);
  assert.ok(!/(src|href)=|@import|url\(/.test(html), 'no external resource');
  assert.match(html, /gw\.example\.test/);
});
