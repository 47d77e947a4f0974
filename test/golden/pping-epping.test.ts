/**
 * pathlens pping against ePPing's own output (test/fixtures/epping/, see its README): the same
 * traffic was watched by ePPing live on a router interface and captured by tcpdump there; reading
 * the capture must give ePPing's RTT and flow events, one for one: the same flow in the same
 * orientation, the same reasons, times within 200 us, RTTs and min RTTs within 50 us (ePPing
 * stamps at tc, tcpdump at its tap: a few us apart), and identical packet and byte counters.
 *
 * Two things a capture file cannot carry are left out, and counted: ePPing's "flow timeout"
 * closings from its garbage collection after the capture's last packet (no file shows that time
 * passing), and match_on_egress (an Ethernet pcap records no direction: pathlens says false).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FlowEvent, RttEvent } from '../../src/pping/events.js';
import { runOffline } from '../../src/pping/run.js';
import { eppingJson } from '../../src/render/pping-text.js';
import { ROOT } from '../helpers/lab.js';

const DIR = join(ROOT, 'test', 'fixtures', 'epping');

interface EppingEvent {
  timestamp: number;
  src_ip: string;
  src_port: number;
  dest_ip: string;
  dest_port: number;
  protocol: string;
  rtt?: number;
  min_rtt?: number;
  sent_packets?: number;
  sent_bytes?: number;
  rec_packets?: number;
  rec_bytes?: number;
  match_on_egress?: boolean;
  flow_event?: string;
  reason?: string;
  triggered_by?: string;
}

const kind = (e: EppingEvent) => [e.src_ip, e.src_port, e.dest_ip, e.dest_port, e.protocol, e.flow_event ?? 'rtt', e.reason ?? '', e.triggered_by ?? ''].join(' ');

function twins(a: EppingEvent, b: EppingEvent): boolean {
  if (kind(a) !== kind(b) || Math.abs(a.timestamp - b.timestamp) > 200_000) return false;
  if (a.rtt === undefined) return true;
  return (
    Math.abs(a.rtt - b.rtt!) <= 50_000 &&
    Math.abs(a.min_rtt! - b.min_rtt!) <= 50_000 &&
    a.sent_packets === b.sent_packets &&
    a.sent_bytes === b.sent_bytes &&
    a.rec_packets === b.rec_packets &&
    a.rec_bytes === b.rec_bytes
  );
}

/** Event timestamps as JSON numbers lose the last ns digits past 2^53: that is well inside 200 us. */
const parse = (text: string) => JSON.parse(text) as EppingEvent[];

const CASES = [
  { fix: 'fixA', run: 'r0', rateLimitMs: 0 },
  { fix: 'fixA', run: 'r100', rateLimitMs: 100 },
  { fix: 'fixB', run: 'r0', rateLimitMs: 0 },
  { fix: 'fixB', run: 'r100', rateLimitMs: 100 },
];

for (const c of CASES) {
  test(`ePPing's own output on ${c.fix} ${c.run} (rate limit ${c.rateLimitMs} ms): pathlens reproduces it one for one`, async () => {
    const want = parse(readFileSync(join(DIR, `${c.fix}-${c.run}.epping.json`), 'utf8'));
    const got: EppingEvent[] = [];
    let lastPacketNs = 0;
    const done = await runOffline(join(DIR, `${c.fix}-${c.run}.pcap`), { tcp: true, icmp: true, rateLimitNs: c.rateLimitMs * 1e6 }, {
      event: (e) => {
        if (e.type === 'rtt' || e.type === 'flow') got.push(JSON.parse(eppingJson(e as RttEvent | FlowEvent)) as EppingEvent);
      },
    }).done;
    lastPacketNs = done.sec * 1e9 + done.nsec;
    assert.ok(got.every((e) => e.match_on_egress !== true), 'no direction in an Ethernet pcap: match_on_egress is false');
    const unseeable = want.filter((e) => e.timestamp > lastPacketNs + 1e6);
    assert.ok(
      unseeable.every((e) => e.reason === 'flow timeout' && e.triggered_by === 'garbage collection'),
      "only ePPing's garbage collection lies after the capture's last packet",
    );
    const comparable = want.filter((e) => !unseeable.includes(e));
    const used = new Set<number>();
    const missing: EppingEvent[] = [];
    for (const w of comparable) {
      const i = got.findIndex((g, j) => !used.has(j) && twins(w, g));
      if (i < 0) missing.push(w);
      else used.add(i);
    }
    const extra = got.filter((_, j) => !used.has(j));
    const matched = comparable.length - missing.length;
    process.stdout.write(
      `# ${c.fix} ${c.run}: ePPing ${want.length} events (${unseeable.length} after the capture), pathlens ${got.length}; matched ${matched} (${((100 * matched) / comparable.length).toFixed(1)}%), extra ${extra.length}\n`,
    );
    assert.ok(comparable.length > 100, 'the fixture holds events to compare');
    assert.ok(matched >= 0.99 * comparable.length, `at least 99% of ePPing's events have a twin; missing: ${JSON.stringify(missing.slice(0, 3))}`);
    assert.ok(extra.length <= 0.01 * comparable.length, `at most 1% extra events; extra: ${JSON.stringify(extra.slice(0, 3))}`);
  });
}
