/**
 * The probe matrix against real routers: UDP, ICMP echo (ping socket and raw socket) and TCP SYN
 * (connect per probe and raw socket), IPv4 and IPv6, as uid 65534 and as root; capability errors that name the
 * fix; and placement (--netns without `ip netns exec`, --iface, --mark).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { linkAddr4, linkAddr6 } from '../../src/lab/plan.js';
import { chain } from '../../src/lab/presets.js';
import type { DoneEvent, HopEvent, ProbeEvent, StartEvent, TraceEvent } from '../../src/trace/events.js';
import { CLI, addrOf, labName, nodeNs, parseEvents, runIn, trace, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const NOBODY = 65534;
const opt = rootOnly();
const ROUTERS = 4;

const hops = (ev: TraceEvent[]) => ev.filter((e): e is HopEvent => e.type === 'hop');
const done = (ev: TraceEvent[]) => ev.find((e): e is DoneEvent => e.type === 'done')!;
const start = (ev: TraceEvent[]) => ev.find((e): e is StartEvent => e.type === 'start')!;
const hopAddr = (k: number, fam: 4 | 6) => (fam === 4 ? linkAddr4(k - 1, 1) : linkAddr6(k - 1, 1));

interface Case {
  name: string;
  args: string[];
  uid?: number;
  method: StartEvent['method'];
  socket: StartEvent['socket'];
  /** What the target answers with. */
  last: string;
}

const CASES: Case[] = [
  { name: 'UDP, unprivileged', args: ['-U'], uid: NOBODY, method: 'udp', socket: 'dgram', last: 'unreachable/port' },
  { name: 'UDP, root', args: ['-U'], method: 'udp', socket: 'dgram', last: 'unreachable/port' },
  { name: 'ICMP, unprivileged (ping socket)', args: ['-I'], uid: NOBODY, method: 'icmp', socket: 'ping', last: 'echo-reply/reply' },
  { name: 'ICMP, privileged (raw socket)', args: ['-I', '--raw'], method: 'icmp', socket: 'raw', last: 'echo-reply/reply' },
  { name: 'TCP, unprivileged (connect)', args: ['-T'], uid: NOBODY, method: 'tcp', socket: 'connect', last: 'tcp-rst/closed' },
  { name: 'TCP, root (connect)', args: ['-T'], method: 'tcp', socket: 'connect', last: 'tcp-rst/closed' },
  { name: 'TCP, privileged (raw socket)', args: ['-T', '--raw'], method: 'tcp', socket: 'raw', last: 'tcp-rst/closed' },
];

/** Every probe has exactly one outcome. */
function checkOutcomes(ev: TraceEvent[]): void {
  const open = new Set<number>();
  let outcomes = 0;
  for (const e of ev) {
    if (e.type === 'probe') open.add(e.seq);
    if ((e.type === 'reply' && !e.late) || e.type === 'timeout') {
      assert.ok(open.delete(e.seq), `seq ${e.seq}: an outcome without a pending probe`);
      outcomes++;
    }
  }
  assert.equal(open.size, 0, `probes without an outcome: ${[...open].join(' ')}`);
  assert.equal(done(ev).probes_sent, outcomes);
}

test('probe matrix: every method x IPv4/IPv6 x unprivileged/root gives the exact hops and reaches the target', opt, async () => {
  await withLab(chain({ name: labName('mm'), routers: ROUTERS }), async (st) => {
    const srcIf = st.plan.nodes.find((n) => n.name === 'src')!.ifaces[0].name;
    const srcIfindex = (JSON.parse(spawnSync('ip', ['-j', '-n', nodeNs(st, 'src'), 'link', 'show', srcIf], { encoding: 'utf8' }).stdout) as { ifindex: number }[])[0].ifindex;
    for (const fam of [4, 6] as const) {
      const dst = addrOf(st, 'dst', fam);
      const want = [...Array.from({ length: ROUTERS }, (_, i) => [hopAddr(i + 1, fam)]), [dst]];
      for (const c of CASES) {
        const { events } = await trace(st, 'src', dst, ['-q', '2', ...c.args], c.uid);
        const what = `${c.name}, IPv${fam}`;
        checkOutcomes(events);
        const s = start(events);
        assert.deepEqual([s.method, s.socket, s.family], [c.method, c.socket, fam], what);
        const h = hops(events);
        assert.deepEqual(
          h.map((x) => x.addrs),
          want,
          what,
        );
        assert.ok(h.slice(0, ROUTERS).every((x) => x.replies.length === 2 && x.replies.every((r) => r.kind === 'time-exceeded')), what);
        assert.deepEqual(
          h[ROUTERS].replies.map((r) => `${r.kind}/${r.code}`),
          [c.last, c.last],
          what,
        );
        const d = done(events);
        assert.deepEqual([d.reached, d.reason, d.unmatched], [true, 'reached', 0], what);
        // Ingress interface: best effort, but when given it is src's only interface.
        const ifx = events.flatMap((e) => (e.type === 'reply' && e.ifindex !== undefined ? [e.ifindex] : []));
        assert.ok(ifx.every((x) => x === srcIfindex), `${what}: ifindex ${[...new Set(ifx)].join(',')}`);
        if (c.socket !== 'connect') assert.ok(ifx.length > 0, `${what}: datagram and raw sockets report the ingress interface`);
        const probes = events.filter((e): e is ProbeEvent => e.type === 'probe');
        // The echo sequence is seq past a random base (mod 2^16): what a blind forger must guess.
        if (c.method === 'icmp') assert.ok(probes.every((p) => p.dst_port === null && p.echo_seq === ((probes[0].echo_seq! + p.seq - probes[0].seq) & 0xffff)), what);
        if (c.socket === 'connect') {
          // One socket per probe: every probe has its own source port.
          assert.equal(new Set(probes.map((p) => p.src_port)).size, probes.length, what);
          assert.ok(probes.every((p) => p.dst_port === 80), what);
        }
        if (c.socket === 'raw' && c.method === 'tcp') {
          // Raw SYNs: one reserved source port for the whole run (Paris: one flow), SYN-ACK/RST
          // timed by the kernel.
          assert.equal(new Set(probes.map((p) => p.src_port)).size, 1, what);
          assert.ok(probes.every((p) => p.dst_port === 80), what);
        }
      }
    }
  });
});

test('TCP to an open port: the SYN-ACK reaches the target, its RTT comes from the kernel, the connection is reset at once', opt, async () => {
  await withLab(chain({ name: labName('mo'), routers: 2 }), async (st) => {
    // A listener in dst that reports every connection it accepts and how it ended.
    const server = spawn('ip', ['netns', 'exec', nodeNs(st, 'dst'), process.execPath, '-e', `
      const net = require('node:net');
      const s = net.createServer((c) => { c.on('error', (e) => console.log('conn', e.code)); c.on('close', () => console.log('closed')); });
      s.listen(8080, '::', () => console.log('ready'));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    server.stdout.on('data', (d) => (out += d));
    try {
      const until = Date.now() + 10000;
      while (!out.includes('ready') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      for (const fam of [4, 6] as const) {
        const dst = addrOf(st, 'dst', fam);
        const { events } = await trace(st, 'src', dst, ['-T', '-p', '8080', '-q', '1'], NOBODY);
        checkOutcomes(events);
        const last = hops(events).at(-1)!;
        assert.deepEqual(last.addrs, [dst]);
        assert.equal(last.replies[0].kind, 'tcp-syn-ack');
        const reply = events.find((e) => e.type === 'reply' && e.kind === 'tcp-syn-ack');
        assert.ok(reply && reply.type === 'reply' && reply.kernel_ts, 'SYN-ACK RTT from tcpi_rtt');
      }
      // Probes sent past the target (the window is in flight before the target answers) reach it
      // too. Every connection the server accepted must end in a reset: none closed gracefully,
      // none left open.
      await new Promise((r) => setTimeout(r, 300));
      const resets = (out.match(/conn ECONNRESET/g) ?? []).length;
      const closed = (out.match(/closed/g) ?? []).length;
      assert.ok(resets >= 2, `the server saw: ${out}`);
      assert.equal(closed, resets, `a connection ended without a reset: ${out}`);
      const est = spawnSync('ip', ['netns', 'exec', nodeNs(st, 'dst'), 'ss', '-Htn', 'state', 'established'], { encoding: 'utf8' });
      assert.equal(est.stdout.trim(), '', 'no connection left open');
      // Raw SYNs: the SYN-ACK is read off the raw socket with a kernel timestamp; src's own stack
      // answers it with an RST (the port is reserved, never listening), so the server accepts
      // nothing and keeps no half-open connection.
      const before = out;
      for (const fam of [4, 6] as const) {
        const dst = addrOf(st, 'dst', fam);
        const { events } = await trace(st, 'src', dst, ['-T', '--raw', '-p', '8080', '-q', '1']);
        checkOutcomes(events);
        const last = hops(events).at(-1)!;
        assert.deepEqual([last.addrs, last.replies[0].kind], [[dst], 'tcp-syn-ack'], `raw, IPv${fam}`);
        const reply = events.find((e) => e.type === 'reply' && e.kind === 'tcp-syn-ack');
        assert.ok(reply && reply.type === 'reply' && reply.kernel_ts, 'raw SYN-ACK with a kernel receive timestamp');
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(out, before, 'raw SYN probes never complete a handshake');
      const half = spawnSync('ip', ['netns', 'exec', nodeNs(st, 'dst'), 'ss', '-Htn', 'state', 'syn-recv'], { encoding: 'utf8' });
      assert.equal(half.stdout.trim(), '', 'no half-open connection left at the target');
    } finally {
      server.kill();
    }
  });
});

test('capability errors name the fix: no ping socket, no raw socket', opt, async () => {
  await withLab(chain({ name: labName('mp'), routers: 1 }), async (st) => {
    const ns = nodeNs(st, 'src');
    const dst = addrOf(st, 'dst', 4);
    const raw = await runIn(ns, [process.execPath, CLI, 'trace', '-n', '-I', '--raw', dst], { uid: NOBODY });
    assert.equal(raw.code, 1);
    assert.match(raw.stderr, /^pathlens: raw ICMP socket refused \(EPERM\): .*CAP_NET_RAW/);
    assert.match(raw.stderr, /setcap cap_net_raw\+ep/);
    assert.doesNotMatch(raw.stderr, /\n\s+at /, 'no stack trace');
    const rawTcp = await runIn(ns, [process.execPath, CLI, 'trace', '-n', '-T', '--raw', dst], { uid: NOBODY });
    assert.equal(rawTcp.code, 1);
    assert.match(rawTcp.stderr, /^pathlens: raw TCP socket refused \(EPERM\): .*CAP_NET_RAW.*setcap cap_net_raw\+ep.*connect\(\)/);
    assert.doesNotMatch(rawTcp.stderr, /\n\s+at /, 'no stack trace');
    spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ping_group_range=1 0']);
    for (const args of [['-I'], ['-I', '--unpriv']]) {
      const r = await runIn(ns, [process.execPath, CLI, 'trace', '-n', ...args, dst], { uid: NOBODY });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /net\.ipv4\.ping_group_range/);
      assert.match(r.stderr, /CAP_NET_RAW/);
    }
    // Root without a ping socket falls back to raw and says so in the start event.
    const { events } = await trace(st, 'src', dst, ['-I']);
    assert.equal(start(events).socket, 'raw');
    assert.equal(done(events).reached, true);
  });
});

test('placement: --netns from outside (name and path), --iface, --mark; bad values are clear errors', opt, async () => {
  await withLab(chain({ name: labName('mn'), routers: 3 }), async (st) => {
    const ns = nodeNs(st, 'src');
    for (const fam of [4, 6] as const) {
      const dst = addrOf(st, 'dst', fam);
      const want = [1, 2, 3].map((k) => [hopAddr(k, fam)]).concat([[dst]]);
      for (const where of [ns, `/run/netns/${ns}`]) {
        // No `ip netns exec`: the CLI runs in the host namespace and opens its sockets in `where`.
        const r = spawnSync(process.execPath, [CLI, 'trace', '-n', '--jsonl', '--netns', where, '-q', '1', dst], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(hops(parseEvents(r.stdout)).map((h) => h.addrs), want);
      }
      const ifname = st.plan.nodes.find((n) => n.name === 'src')!.ifaces[0].name;
      const { events } = await trace(st, 'src', dst, ['-q', '1', '--iface', ifname], NOBODY);
      assert.deepEqual(hops(events).map((h) => h.addrs), want);
    }
    const bad = [
      { args: ['--netns', 'pl-no-such-ns'], re: /--netns .*no such network namespace/ },
      { args: ['--netns', 'bad name'], re: /not a namespace name/ },
      { args: ['--iface', 'nosuch0', '--netns', ns], re: /--iface nosuch0: no such interface/ },
    ];
    for (const b of bad) {
      const r = spawnSync(process.execPath, [CLI, 'trace', '-n', ...b.args, addrOf(st, 'dst', 4)], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr); // usage errors exit 2
      assert.match(r.stderr, b.re);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
    const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, CLI, 'trace', '-n', '--netns', ns, addrOf(st, 'dst', 4)], { encoding: 'utf8' });
    assert.equal(asNobody.status, 1);
    assert.match(asNobody.stderr, /needs CAP_SYS_ADMIN/);
    // --mark: an nft rule in src counts output packets carrying the mark.
    const nft = (script: string) => spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: script, encoding: 'utf8' });
    {
      const r = nft('table inet plmark { chain out { type filter hook output priority 0; meta mark 0x2a counter; }; }');
      assert.equal(r.status, 0, r.stderr);
    }
    const { events } = await trace(st, 'src', addrOf(st, 'dst', 4), ['-q', '1', '--mark', '42']);
    const sent = done(events).probes_sent;
    const list = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'table', 'inet', 'plmark'], { encoding: 'utf8' });
    const counter = (JSON.parse(list.stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }).nftables
      .flatMap((x) => x.rule?.expr ?? [])
      .find((x) => x.counter)!.counter!;
    assert.equal(counter.packets, sent, 'every probe carried the mark');
  });
});

test('--pmtu: each MTU drop is reported at the hop whose router reported it, with its value (IPv4 and IPv6)', opt, async () => {
  // Two drops: r1 -> r2 takes 1400 bytes, r3 -> r4 takes 1300; the local route is 1500.
  const spec = chain({ name: labName('mt'), routers: 4 });
  spec.links[1].mtu = 1400;
  spec.links[3].mtu = 1300;
  await withLab(spec, async (st) => {
    for (const fam of [4, 6] as const) {
      const dst = addrOf(st, 'dst', fam);
      const { events } = await trace(st, 'src', dst, ['--pmtu', '-q', '2'], NOBODY);
      const mtus = events.filter((e) => e.type === 'mtu').map((e) => e.type === 'mtu' && [e.ttl, e.mtu, e.addr, e.inferred]);
      assert.deepEqual(mtus, [
        [0, 1500, null, false],
        [1, 1400, hopAddr(1, fam), false],
        [3, 1300, hopAddr(3, fam), false],
      ], `IPv${fam}`);
      assert.deepEqual(hops(events).map((h) => h.addrs), [1, 2, 3, 4].map((k) => [hopAddr(k, fam)]).concat([[dst]]));
      const d = done(events);
      assert.equal(d.path_mtu, 1300);
      assert.ok((d.resent ?? 0) > 0);
      // Every transmission ends in one outcome: a hop reply, a timeout, or a bounce (resend).
      const bounced = events.filter((e) => e.type === 'reply' && e.resend).length;
      assert.equal(bounced, d.resent);
      assert.equal(d.probes_sent, d.replies + d.timeouts + bounced);
      // Resent probes go out at the size the path takes.
      const last = events.filter((e): e is ProbeEvent => e.type === 'probe').at(-1)!;
      assert.ok(last.len !== undefined && last.len <= 1300);
    }
  });
});

test('--method auto: UDP filtered at the target -> a switch event, then TCP reaches it (IPv4 and IPv6, unprivileged)', opt, async () => {
  await withLab(chain({ name: labName('ma'), routers: 3 }), async (st) => {
    // dst drops every UDP probe in silence: the target and everything past it look filtered.
    const nft = spawnSync('ip', ['netns', 'exec', nodeNs(st, 'dst'), 'nft', '-f', '-'], {
      input: 'table inet plauto { chain in { type filter hook input priority 0; meta l4proto udp drop; }; }',
      encoding: 'utf8',
    });
    assert.equal(nft.status, 0, nft.stderr);
    for (const fam of [4, 6] as const) {
      const dst = addrOf(st, 'dst', fam);
      const { events } = await trace(st, 'src', dst, ['--method', 'auto', '-q', '1', '-w', '0.5'], NOBODY);
      const kinds = events.filter((e) => e.type === 'start' || e.type === 'done' || e.type === 'switch').map((e) => (e.type === 'start' ? `start:${e.method}` : e.type === 'done' ? `done:${e.reason}` : `switch:${e.from}>${e.to}`));
      assert.deepEqual(kinds, ['start:udp', 'done:silent', 'switch:udp>tcp', 'start:tcp', 'done:reached'], `IPv${fam}`);
      // The UDP attempt still names the routers it saw; the TCP attempt ends at the target.
      const hopEvents = hops(events);
      const udpHops = hopEvents.slice(0, hopEvents.findIndex((h, i) => i > 0 && h.ttl === 1));
      assert.deepEqual(udpHops.slice(0, 3).map((h) => h.addrs), [1, 2, 3].map((k) => [hopAddr(k, fam)]));
      assert.ok(udpHops.slice(3).every((h) => h.addrs.length === 0), 'no address invented past the last answering router');
      assert.deepEqual(hopEvents.at(-1)!.addrs, [dst]);
      assert.equal(hopEvents.at(-1)!.replies[0].kind, 'tcp-rst');
    }
  });
});
