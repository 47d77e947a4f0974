/**
 * pathlens trace against real Linux routers in network namespaces (root; see helpers/root.ts).
 * Every trace runs the real CLI as uid 65534 inside the source node: unprivileged operation is
 * proven by every test, not one.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { PHANTOM_HOST4, PHANTOM_HOST6, linkAddr4, linkAddr6 } from '../../src/lab/plan.js';
import { chain, unreach } from '../../src/lab/presets.js';
import type { DoneEvent, HopEvent, ProbeEvent, TraceEvent } from '../../src/trace/events.js';
import { CLI, ROOT, addrOf, labName, nodeNs, runIn, trace, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const NOBODY = 65534;
const opt = rootOnly();

const hops = (ev: TraceEvent[]) => ev.filter((e): e is HopEvent => e.type === 'hop');
const done = (ev: TraceEvent[]) => ev.find((e): e is DoneEvent => e.type === 'done')!;

/** Router r<k> answers from its address on the link it received the probe on (link k-1, side b). */
const hopAddr = (k: number, fam: 4 | 6) => (fam === 4 ? linkAddr4(k - 1, 1) : linkAddr6(k - 1, 1));

/** Every probe has exactly one outcome; late replies only after a timeout. */
function checkOutcomes(ev: TraceEvent[]): void {
  const seen = new Map<number, string>();
  for (const e of ev) {
    if (e.type === 'probe') seen.set(e.seq, 'pending');
    if (e.type === 'reply' && !e.late) {
      assert.equal(seen.get(e.seq), 'pending', `seq ${e.seq}`);
      seen.set(e.seq, 'reply');
    }
    if (e.type === 'timeout') {
      assert.equal(seen.get(e.seq), 'pending', `seq ${e.seq}`);
      seen.set(e.seq, 'timeout');
    }
  }
  for (const [s, o] of seen) assert.notEqual(o, 'pending', `probe ${s} has no outcome`);
  const d = done(ev);
  assert.equal(d.probes_sent, seen.size);
  assert.equal(d.replies + d.timeouts, seen.size);
  const retries = ev.filter((e): e is ProbeEvent => e.type === 'probe').reduce((n, e) => n + e.retries, 0);
  assert.equal(retries, d.send_retries, 'every send retry is accounted to a probe');
}

for (const fam of [4, 6] as const) {
  test(`IPv${fam}: 7-router chain, exact hop list, target reached, as uid 65534`, opt, async () => {
    await withLab(chain({ name: labName('tc'), routers: 7 }), async (st) => {
      const dst = addrOf(st, 'dst', fam);
      const { events } = await trace(st, 'src', dst, ['-q', '3'], NOBODY);
      checkOutcomes(events);
      const h = hops(events);
      assert.deepEqual(
        h.map((x) => x.addrs),
        [...[1, 2, 3, 4, 5, 6, 7].map((k) => [hopAddr(k, fam)]), [dst]],
      );
      assert.ok(h.every((x) => x.no_reply === 0 && x.replies.length === 3));
      assert.ok(h.slice(0, 7).every((x) => x.replies.every((r) => r.kind === 'time-exceeded' && r.code === 'ttl')));
      assert.ok(h[7].replies.every((r) => r.kind === 'unreachable' && r.code === 'port'));
      const d = done(events);
      assert.deepEqual([d.reached, d.reason, d.hops], [true, 'reached', 8]);
      assert.equal(d.unmatched, 0);
    });
  });

  test(`IPv${fam}: silent routers show as explicit no-reply, every other hop exact`, opt, async () => {
    await withLab(chain({ name: labName('ts'), routers: 6, silent: [2, 5] }), async (st) => {
      const dst = addrOf(st, 'dst', fam);
      const { events } = await trace(st, 'src', dst, ['-w', '2'], NOBODY);
      checkOutcomes(events);
      const h = hops(events);
      assert.deepEqual(
        h.map((x) => (x.addrs.length ? x.addrs[0] : '*')),
        [hopAddr(1, fam), '*', hopAddr(3, fam), hopAddr(4, fam), '*', hopAddr(6, fam), dst],
      );
      assert.deepEqual(
        h.map((x) => x.no_reply),
        [0, 3, 0, 0, 3, 0, 0],
      );
      // Declared from later hops' RTTs, not after the 2 s wait.
      const timeouts = events.filter((e) => e.type === 'timeout');
      assert.ok(timeouts.every((e) => e.type === 'timeout' && e.reason === 'adaptive'));
      assert.ok(done(events).duration_ms < 1000);
    });
  });

  for (const [code, v4name, v6name] of [
    ['host', 'host', 'no-route'],
    ['admin', 'admin-prohibited', 'admin-prohibited'],
    ['net', 'net', 'no-route'],
  ] as const) {
    test(`IPv${fam}: unreachable target (${code}) is reported by name at the right hop and stops the trace`, opt, async () => {
      await withLab(unreach({ name: labName('tu'), routers: 3, at: 2, code }), async (st) => {
        const target = fam === 4 ? PHANTOM_HOST4 : PHANTOM_HOST6;
        const { events } = await trace(st, 'src', target, ['-q', '2'], NOBODY);
        checkOutcomes(events);
        const h = hops(events);
        assert.equal(h.length, 2);
        assert.deepEqual(h[0].addrs, [hopAddr(1, fam)]);
        assert.deepEqual(h[1].addrs, [hopAddr(2, fam)]);
        assert.ok(h[1].replies.every((r) => r.kind === 'unreachable' && r.code === (fam === 4 ? v4name : v6name)), JSON.stringify(h[1].replies));
        const d = done(events);
        assert.deepEqual([d.reached, d.reason], [false, 'unreachable']);
      });
    });
  }

  test(`IPv${fam}: random loss on every link never puts a wrong address at a hop`, opt, async () => {
    await withLab(chain({ name: labName('tl'), routers: 5, loss: 0.15, seed: 7 }), async (st) => {
      const dst = addrOf(st, 'dst', fam);
      let lost = 0;
      for (let run = 0; run < 4; run++) {
        const { events } = await trace(st, 'src', dst, ['-q', '4', '-w', '1'], NOBODY);
        checkOutcomes(events);
        for (const h of hops(events)) {
          const want = h.ttl <= 5 ? hopAddr(h.ttl, fam) : dst;
          for (const r of h.replies) assert.equal(r.addr, want, `ttl ${h.ttl}`);
          assert.equal(h.replies.length + h.no_reply, 4);
          lost += h.no_reply;
        }
      }
      assert.ok(lost > 0, 'with 15% loss per link some probes must go unanswered');
    });
  });
}

test('a pending ICMP error that fails sendmmsg: the queue is drained, the probe sent again, nothing lost or doubled', opt, async () => {
  await withLab(chain({ name: labName('tr'), routers: 2 }), async (st) => {
    for (const fam of [4, 6] as const) {
      const r = await runIn(nodeNs(st, 'src'), [process.execPath, `${ROOT}dist/test/helpers/retry.js`, addrOf(st, 'dst', fam)], { uid: NOBODY });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { replies: { seq: number; kind: string }[]; retries: number[]; stats: { retries: number } };
      assert.deepEqual(out.retries, [0, 1], `IPv${fam}: the second probe needed exactly one retry`);
      assert.equal(out.stats.retries, 1);
      assert.deepEqual(
        out.replies.map((x) => [x.seq, x.kind]),
        [
          [0, 'time-exceeded'],
          [1, 'time-exceeded'],
        ],
      );
    }
  });
});

test('a probe budget of 255 hops against a silent target: in flight never above the cap, memory flat', opt, async () => {
  await withLab(unreach({ name: labName('tm'), routers: 2, at: 2, code: 'host' }), async (st) => {
    // Blackhole instead of reject: nothing ever answers beyond r2.
    await runIn(nodeNs(st, 'r2'), ['ip', 'route', 'replace', 'blackhole', '10.255.0.0/16']);
    const r = await runIn(nodeNs(st, 'src'), [process.execPath, '--expose-gc', `${ROOT}dist/test/helpers/memcheck.js`, PHANTOM_HOST4], { uid: NOBODY, timeoutMs: 120000 });
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout) as { small: { rss: number; heap: number }; large: { rss: number; heap: number; maxInflight: number; probes: number; hops: number; reason: string } };
    assert.equal(m.large.reason, 'max-ttl');
    assert.equal(m.large.hops, 255);
    assert.equal(m.large.probes, 765);
    assert.ok(m.large.maxInflight <= 16, `in flight ${m.large.maxInflight}`);
    assert.ok(m.large.heap - m.small.heap < 2 * 1024 * 1024, `heap grew ${m.large.heap - m.small.heap} bytes`);
  });
});

test('bad arguments and bad specs give a clear message and a non-zero exit, never a stack trace', () => {
  const cases: [string[], number][] = [
    [['trace'], 2],
    [['trace', '-n', '-m', 'x', '127.0.0.1'], 2],
    [['trace', '-n', '-q', '0', '127.0.0.1'], 2],
    [['trace', '-n', '-f', '9', '-m', '3', '127.0.0.1'], 2],
    [['trace', '-n', '-p', '65500', '-m', '30', '127.0.0.1'], 2],
    [['trace', '-n', '--dns-server', 'resolver.example', '127.0.0.1'], 2],
    [['trace', '-n', '-c', '0', '127.0.0.1'], 2],
    [['trace', '-n', '-c', '2', '--live', '127.0.0.1'], 2],
    [['trace', '-n', '-c', '2', '--report', '--csv', '127.0.0.1'], 2],
    [['trace', '-n', '-c', '2', '--textfile', '/nonexistent', '127.0.0.1'], 2],
    [['trace', '-n', '-c', '2', '--html', '/nonexistent/x.html', '127.0.0.1'], 2],
    [['trace', '-n', '-c', '2', '-M', 'auto', '127.0.0.1'], 2],
    [['trace', '-n', '--ecmp', 'auto', '-q', '2', '127.0.0.1'], 2],
    // In a new, empty namespace: the name lookup fails there without a packet leaving the machine.
    [['trace', '-n', 'no.such.host.invalid'], 1],
    [['monitor', '--duration', '0.1'], 2],
    [['monitor', '-c', '/nonexistent.yaml', '--duration', '0.1'], 1],
    [['monitor', '--prometheus', 'nope', '--duration', '0.1', '127.0.0.1'], 2],
    [['monitor', '--timeout', '20000', '--duration', '0.1', '127.0.0.1'], 2],
    [['monitor', '-I', '-T', '--duration', '0.1', '127.0.0.1'], 2],
    [['nonsense'], 2],
    [['lab', 'up', '/nonexistent.yaml'], process.getuid?.() === 0 ? 2 : 1],
  ];
  for (const [args, want] of cases) {
    const p = args.includes('no.such.host.invalid')
      ? spawnSync('unshare', ['-n', process.execPath, CLI, ...args], { encoding: 'utf8' })
      : spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    assert.equal(p.status, want, `${args.join(' ')}: ${p.stderr}`);
    assert.ok(!/\n\s+at /.test(p.stderr), `stack trace for ${args.join(' ')}: ${p.stderr}`);
    assert.match(p.stderr, /\S/);
  }
});
