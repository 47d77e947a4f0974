/**
 * Reverse names in a lab with its own name server (spec.dns): names appear for every hop, in the
 * events and in the view; each address is asked once (counted at the server) and the cache keeps
 * answers for their TTL; a name server that never answers changes neither the hops nor the run's
 * length beyond the lookup timeout. No query leaves the lab.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { stateDir } from '../../src/lab/lab.js';
import { chain } from '../../src/lab/presets.js';
import { ReverseResolver, trace } from '../../src/api.js';
import type { HopEvent, NameEvent, TraceEvent } from '../../src/trace/events.js';
import { CLI, addrOf, labName, nodeNs, parseEvents, runIn, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();

const queriesAt = (lab: string) => readFileSync(join(stateDir(), lab, 'dns.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { qname: string });

test('names from the lab name server: every hop named, in events and view, IPv4 and IPv6; one query per address; the cache keeps answers for their TTL', opt, async () => {
  await withLab({ ...chain({ name: labName('dn'), routers: 3 }), dns: true }, async (st) => {
    const server = `${st.dns!.server}:53`;
    const nameOf = new Map<string, string>();
    for (const n of st.plan.nodes) for (const i of n.ifaces) for (const a of [i.v4, i.v6]) nameOf.set(a, `${n.name}.${st.name}.pathlens.test`);
    for (const f of [4, 6] as const) {
      const before = queriesAt(st.name).length;
      // No -n, no --dns-server: the namespace's resolv.conf (ip netns exec) names the lab's server.
      const run = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '--jsonl', '-q', '3', addrOf(st, 'dst', f)]);
      assert.equal(run.code, 0, run.stderr);
      const events = parseEvents(run.stdout);
      const hops = events.filter((e): e is HopEvent => e.type === 'hop');
      const names = events.filter((e): e is NameEvent => e.type === 'name');
      const addrs = [...new Set(hops.flatMap((h) => h.addrs))];
      assert.equal(addrs.length, 4, `IPv${f}: 3 routers and the target`);
      assert.deepEqual(names.map((n) => n.addr).sort(), [...addrs].sort(), `IPv${f}: one name event per address`);
      for (const n of names) assert.deepEqual([n.status, n.name, n.server, n.cached], ['ok', nameOf.get(n.addr), server, false]);
      // Names are inside the run: before its done event.
      assert.equal(events.at(-1)!.type, 'done');
      // 12 replies from 4 addresses: 4 queries reached the server.
      assert.equal(queriesAt(st.name).length - before, 4, `IPv${f}: queries at the server`);
      const view = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '-q', '1', addrOf(st, 'dst', f)]);
      assert.equal(view.code, 0, view.stderr);
      for (const [i, h] of hops.entries()) {
        const line = view.stdout.split('\n').find((l) => l.startsWith(String(h.ttl).padStart(2)));
        assert.equal(line?.split('  ')[1], `${nameOf.get(h.addrs[0])} (${h.addrs[0]})`, `IPv${f} hop ${i + 1}: ${view.stdout}`);
      }
    }
    // The library: names only when asked for, inside start..done.
    const events: TraceEvent[] = [];
    const run = trace(addrOf(st, 'dst', 4), { queries: 1, names: { server }, placement: { netns: nodeNs(st, 'src') } });
    for await (const e of run) events.push(e);
    assert.deepEqual(events.filter((e): e is NameEvent => e.type === 'name').map((e) => e.name).sort(), ['dst', 'r1', 'r2', 'r3'].map((n) => `${n}.${st.name}.pathlens.test`));
    assert.equal(events.at(-1)!.type, 'done');
    // The cache, through the library: a second lookup is answered without a query, until the TTL (300 s) runs out.
    let now = 1000;
    const r = new ReverseResolver({ server, placement: { netns: nodeNs(st, 'src') }, now: () => now });
    try {
      const a = addrOf(st, 'r2', 4);
      const n0 = queriesAt(st.name).length;
      const first = await r.lookup(a);
      const again = await r.lookup(a);
      assert.deepEqual([first.name, first.cached, again.name, again.cached], [nameOf.get(a), false, nameOf.get(a), true]);
      assert.equal(queriesAt(st.name).length - n0, 1);
      // Concurrent lookups of one address share a query.
      const b = addrOf(st, 'r3', 6);
      const both = await Promise.all([r.lookup(b), r.lookup(b)]);
      assert.deepEqual(both.map((x) => x.name), [nameOf.get(b), nameOf.get(b)]);
      assert.equal(queriesAt(st.name).length - n0, 2);
      now += 301_000;
      const later = await r.lookup(a);
      assert.deepEqual([later.name, later.cached], [nameOf.get(a), false]);
      assert.equal(queriesAt(st.name).length - n0, 3);
      // An address the lab does not have: NXDOMAIN, cached too.
      const none = await r.lookup('10.200.0.1');
      assert.equal(none.status, 'nxdomain');
      assert.equal((await r.lookup('10.200.0.1')).cached, true);
      assert.equal(queriesAt(st.name).length - n0, 4);
    } finally {
      r.close();
    }
  });
});

test('a name server that never answers: the same hops, hop events on time, the run longer by at most the lookup timeout; every name a timeout', opt, async () => {
  await withLab(chain({ name: labName('dd'), routers: 3, delayMs: 1 }), async (st) => {
    // A UDP socket in dst that reads queries and never answers.
    const sink: ChildProcess = spawn('ip', ['netns', 'exec', nodeNs(st, 'dst'), process.execPath, '-e', "const s=require('dgram').createSocket('udp4');let n=0;s.on('message',()=>n++);s.bind(5353,()=>console.log('up'));process.on('SIGTERM',()=>{console.log(n);process.exit(0)})"], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    sink.stdout!.on('data', (d) => (out += d));
    try {
      while (!out.includes('up')) await new Promise((r) => setTimeout(r, 20));
      const dst = addrOf(st, 'dst', 4);
      const timed = async (args: string[]) => {
        const t0 = performance.now();
        const run = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '--jsonl', '-q', '2', ...args, dst]);
        const wall = performance.now() - t0;
        assert.equal(run.code, 0, run.stderr);
        return { events: parseEvents(run.stdout), wall };
      };
      const TIMEOUT_MS = 500;
      for (let i = 0; i < 3; i++) {
        const numeric = await timed(['-n']);
        const dead = await timed(['--dns-server', `${dst}:5353`, '--dns-timeout', String(TIMEOUT_MS / 1000)]);
        const hopsOf = (ev: TraceEvent[]) => ev.filter((e): e is HopEvent => e.type === 'hop');
        assert.deepEqual(hopsOf(dead.events).map((h) => [h.ttl, h.addrs]), hopsOf(numeric.events).map((h) => [h.ttl, h.addrs]));
        // Hops are not held for names: the last hop comes as soon as without names (scheduling slack 150 ms).
        assert.ok(hopsOf(dead.events).at(-1)!.t_ms < hopsOf(numeric.events).at(-1)!.t_ms + 150, `last hop at ${hopsOf(dead.events).at(-1)!.t_ms} vs ${hopsOf(numeric.events).at(-1)!.t_ms} ms`);
        const names = dead.events.filter((e): e is NameEvent => e.type === 'name');
        assert.equal(names.length, 4);
        assert.ok(names.every((n) => n.status === 'timeout' && n.name === null && n.t_ms <= hopsOf(dead.events).at(-1)!.t_ms + TIMEOUT_MS + 150), JSON.stringify(names));
        // The whole run: longer by the lookup timeout at most (+ process noise).
        assert.ok(dead.wall < numeric.wall + TIMEOUT_MS + 400, `wall ${dead.wall.toFixed(0)} ms vs ${numeric.wall.toFixed(0)} ms without names`);
      }
    } finally {
      sink.kill('SIGTERM');
      await new Promise((r) => sink.once('exit', r));
    }
    // The queries did reach the silent server (3 runs x 4 addresses).
    assert.equal(Number(out.trim().split('\n').at(-1)), 12);
  });
});

test('a name server address where nothing listens: lookups fail at once (port unreachable), named as errors; the trace is unchanged', opt, async () => {
  await withLab(chain({ name: labName('dx'), routers: 2 }), async (st) => {
    const t0 = performance.now();
    const run = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '--jsonl', '-q', '1', '--dns-server', addrOf(st, 'r1', 4), addrOf(st, 'dst', 4)]);
    const wall = performance.now() - t0;
    assert.equal(run.code, 0, run.stderr);
    const events = parseEvents(run.stdout);
    const names = events.filter((e): e is NameEvent => e.type === 'name');
    assert.equal(names.length, 3);
    assert.ok(names.every((n) => n.status === 'error' && /ECONNREFUSED/.test(n.detail ?? '')), JSON.stringify(names));
    assert.equal(events.at(-1)!.type, 'done');
    // Far below the 2 s lookup timeout: a refusal is an answer.
    assert.ok(wall < 1500, `${wall.toFixed(0)} ms`);
  });
});
