/**
 * --tos and header rewrites along the path: a lab router that bleaches DSCP (nftables, `dscp set
 * cs0` on what it forwards) is placed at its hop, IPv4 and IPv6, from the TOS each router quotes
 * back (raw ICMP sockets, which get the quoted IP header); ECN bits are reported as they arrived.
 * Sockets that get quotes without their IP header say so; the probes carry the TOS all the same.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { chain } from '../../src/lab/presets.js';
import type { HopEvent, StartEvent } from '../../src/trace/events.js';
import { CLI, addrOf, labName, nodeNs, runIn, trace, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();

function nft(ns: string, ...cmds: string[][]): void {
  for (const c of cmds) {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', ...c], { encoding: 'utf8' });
    assert.equal(r.status, 0, `nft ${c.join(' ')}: ${r.stderr}`);
  }
}

test('--tos: a router that bleaches DSCP is placed at its hop (raw ICMP, IPv4 and IPv6); ECN bits come back as they were; the view marks the hop', opt, async () => {
  await withLab(chain({ name: labName('tq'), routers: 3 }), async (st) => {
    const r2 = nodeNs(st, 'r2');
    for (const fam of ['ip', 'ip6']) {
      nft(r2, ['add', 'table', fam, 'pl'], ['add', 'chain', fam, 'pl', 'pass', '{ type filter hook forward priority 0; }'], ['add', 'rule', fam, 'pl', 'pass', fam, 'dscp', 'set', 'cs0']);
    }
    for (const f of [4, 6] as const) {
      // 0xba: DSCP EF (46) with ECN ECT(0); r2 forwards it as 0x02.
      const { events } = await trace(st, 'src', addrOf(st, 'dst', f), ['-I', '--raw', '--tos', '0xba', '-q', '2', '-m', '4']);
      const start = events[0] as StartEvent;
      assert.deepEqual([start.tos, start.quote_header], [0xba, true]);
      const hops = events.filter((e): e is HopEvent => e.type === 'hop');
      const seen = hops.map((h) => [h.ttl, [...new Set(h.replies.map((r) => r.quoted_tos ?? null))]]);
      // Routers 1 and 2 got the probe as sent (r2 rewrites what it forwards, after its own TTL
      // check); r3 got it bleached; the target answers with an echo reply, which quotes nothing.
      assert.deepEqual(seen, [[1, [0xba]], [2, [0xba]], [3, [0x02]], [4, [null]]], `IPv${f}`);
      assert.ok(hops.slice(0, 3).every((h) => h.replies.every((r) => r.quoted_ttl === 1)), 'a Time Exceeded quotes the TTL that ran out');
      const view = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '-n', '-I', '--raw', '--tos', '0xba', '-q', '1', '-m', '4', addrOf(st, 'dst', f)]);
      const lines = view.stdout.split('\n');
      assert.match(lines[0], /, tos 0xba, via e0 \(\S+\)$/);
      assert.deepEqual(
        lines.slice(1, 5).map((l) => l.includes('[tos 0x02]')),
        [false, false, true, false],
        view.stdout,
      );
    }
  });
});

test('--tos on sockets that get no quoted header: the start event and the view say so, and the probes carry it (counted at a router)', opt, async () => {
  await withLab(chain({ name: labName('tu'), routers: 2 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    nft(r1, ['add', 'table', 'ip', 'pl'], ['add', 'chain', 'ip', 'pl', 'pass', '{ type filter hook forward priority 0; }'], ['add', 'rule', 'ip', 'pl', 'pass', 'ip', 'dscp', 'af41', 'counter']);
    const { events } = await trace(st, 'src', addrOf(st, 'dst', 4), ['--tos', '0x88', '-q', '1'], 65534);
    const start = events[0] as StartEvent;
    assert.deepEqual([start.tos, start.quote_header], [0x88, false]);
    assert.ok(events.every((e) => e.type !== 'reply' || e.quoted_tos === undefined), 'nothing is invented');
    const counted = spawnSync('ip', ['netns', 'exec', r1, 'nft', 'list', 'chain', 'ip', 'pl', 'pass'], { encoding: 'utf8' }).stdout;
    const packets = Number(/counter packets (\d+)/.exec(counted)?.[1] ?? 0);
    assert.ok(packets >= 2, `r1 forwarded ${packets} probes marked AF41:\n${counted}`);
    const view = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '-n', '--tos', '0x88', '-q', '1', addrOf(st, 'dst', 4)]);
    assert.match(view.stdout.split('\n')[1], /hops cannot show the TOS they saw/);
    const bad = spawnSync(process.execPath, [CLI, 'trace', '-n', '--tos', '256', '127.0.0.1'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr.split('\n').filter(Boolean).length, 1 + (bad.stderr.includes('--help') ? 1 : 0));
    assert.match(bad.stderr, /^pathlens: .*--tos.*expected a byte, 0-255 or 0x00-0xff/);
  });
});
