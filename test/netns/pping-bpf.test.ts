/**
 * The BPF capture's life cycle and refusals, on real interfaces in lab namespaces:
 *  - the clsact path (kernels without tcx, forced with PATHLENS_TC_ATTACH=clsact) measures, and
 *    SIGTERM removes its filters and the qdisc it created;
 *  - an interface that disappears ends the run ("interface-gone"), with nothing left behind;
 *  - SIGKILL with tcx links leaves nothing attached (the kernel drops links with their fds);
 *  - flows seen one way only are reported as the kernel table's sweep removes them;
 *  - without privilege, without the object file, or with XDP on an L3 device: one clear line
 *    that names what is missing, and a non-zero exit.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { chain } from '../../src/lab/presets.js';
import { CLI, addrOf, labName, nodeNs, runIn, withLab } from '../helpers/lab.js';
import { ppingEvents } from '../helpers/pping-schema.js';
import { rootOnly } from '../helpers/root.js';
import { leftovers } from '../helpers/bpf.js';
import { startUntil } from '../helpers/spawn.js';

const opt = rootOnly();

interface Ev {
  type: string;
  protocol?: string;
  rtt?: number;
  reason?: string;
  attach?: string[];
}

const jsonl = (text: string): Ev[] => ppingEvents<Ev>(text);

function start(ns: string, iface: string, extra: string[], env: NodeJS.ProcessEnv = {}) {
  const p = startUntil(process.execPath, [CLI, 'pping', '-i', iface, '--netns', ns, '--icmp', '-F', 'jsonl', ...extra], '"type":"start"', env);
  return { ...p, exit: p.exit.then((code) => ({ code })) };
}

test('BPF over clsact (forced): RTTs measured, SIGTERM removes the filters and the qdisc', opt, async () => {
  await withLab(chain({ name: labName('pc'), routers: 1 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    const p = start(r1, 'e1', ['--rate-limit', '0'], { PATHLENS_TC_ATTACH: 'clsact' });
    await p.started;
    const q = await runIn(r1, ['tc', 'filter', 'show', 'dev', 'e1', 'egress']);
    assert.match(q.stdout, /pping_tc_egress/, 'the egress filter is in place while running');
    const ping = await runIn(nodeNs(st, 'src'), ['ping', '-c', '5', '-i', '0.05', addrOf(st, 'dst', 4)]);
    assert.equal(ping.code, 0, ping.stderr);
    p.child.kill('SIGTERM');
    const { code } = await p.exit;
    assert.equal(code, 0, p.err());
    const ev = jsonl(p.out());
    assert.deepEqual(ev[0].attach, ['clsact', 'clsact']);
    assert.equal(ev.filter((e) => e.type === 'rtt' && e.protocol === 'ICMP').length, 5, p.out());
    assert.equal(ev.at(-1)!.type, 'done');
    assert.deepEqual(await leftovers(r1, 'e1'), []);
  });
});

test('BPF: the interface disappears -> done "interface-gone", exit 0, nothing left loaded', opt, async () => {
  await withLab(chain({ name: labName('pg'), routers: 1 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    assert.equal((await runIn(r1, ['ip', 'link', 'add', 'plgone0', 'type', 'veth', 'peer', 'name', 'plgone1'])).code, 0);
    await runIn(r1, ['ip', 'link', 'set', 'plgone0', 'up']);
    const p = start(r1, 'plgone0', []);
    await p.started;
    await runIn(r1, ['ip', 'link', 'del', 'plgone0']);
    const { code } = await p.exit;
    assert.equal(code, 0, p.err());
    const done = jsonl(p.out()).at(-1)!;
    assert.equal(done.type, 'done');
    assert.equal(done.reason, 'interface-gone');
    assert.deepEqual(await leftovers(r1, 'e1'), []);
  });
});

test('BPF over tcx: SIGKILL leaves nothing attached (links die with their fds)', opt, async () => {
  await withLab(chain({ name: labName('pk'), routers: 1 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    const p = start(r1, 'e1', ['--ingress-hook', 'xdp']);
    await p.started;
    assert.deepEqual(jsonl(p.out())[0].attach?.[0], 'tcx');
    p.child.kill('SIGKILL');
    await p.exit;
    assert.deepEqual(await leftovers(r1, 'e1'), []);
  });
});

test('clsact after SIGKILL: the next run refuses and names --cleanup, which removes the filters; SIGHUP ends a run with its done event', opt, async () => {
  await withLab(chain({ name: labName('pz'), routers: 1 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    const env = { PATHLENS_TC_ATTACH: 'clsact' };
    const p = start(r1, 'e1', [], env);
    await p.started;
    p.child.kill('SIGKILL');
    await p.exit;
    const left = await runIn(r1, ['tc', 'filter', 'show', 'dev', 'e1', 'egress']);
    assert.match(left.stdout, /pping_tc_egress/, 'SIGKILL leaves the clsact filters (documented)');
    const again = await runIn(r1, ['env', 'PATHLENS_TC_ATTACH=clsact', process.execPath, CLI, 'pping', '-i', 'e1', '--duration', '1'], { timeoutMs: 20000 });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^pathlens: a tc filter with pathlens's handle is already on egress: .*'pathlens pping --cleanup -i IFACE' removes it\); without BPF, --capture packet applies the same rules\n$/);
    const clean = await runIn(r1, [process.execPath, CLI, 'pping', '-i', 'e1', '--cleanup']);
    assert.equal(clean.code, 0, clean.stderr);
    assert.equal(clean.stderr, 'pathlens: removed 2 pathlens tc filters from e1\n');
    // The clsact qdisc stays (other programs may use it): only pathlens' filters were leftovers.
    assert.deepEqual(await leftovers(r1, 'e1'), ['clsact on e1']);
    assert.equal((await runIn(r1, ['tc', 'qdisc', 'del', 'dev', 'e1', 'clsact'])).code, 0);
    const q = start(r1, 'e1', [], env);
    await q.started;
    q.child.kill('SIGHUP');
    const { code } = await q.exit;
    assert.equal(code, 0, q.err());
    const done = jsonl(q.out()).at(-1)!;
    assert.deepEqual([done.type, done.reason], ['done', 'interrupted']);
    assert.deepEqual(await leftovers(r1, 'e1'), [], 'SIGHUP removes the filters as SIGTERM does');
  });
});

test('pings to one\'s own address over lo: every echo measured (BPF and packet socket; requests and replies told apart by type)', opt, async () => {
  await withLab(chain({ name: labName('pl'), routers: 1 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    for (const capture of ['bpf', 'packet']) {
      // Pings 50 ms apart: no rate limit, or the default 100 ms would sample every other one.
      const p = start(r1, 'lo', ['--include-local', '--rate-limit', '0', '--capture', capture]);
      await p.started;
      const ping = await runIn(r1, ['ping', '-c', '15', '-i', '0.05', '127.0.0.1']);
      assert.equal(ping.code, 0, ping.stderr);
      p.child.kill('SIGINT');
      assert.equal((await p.exit).code, 0, p.err());
      const rtts = jsonl(p.out()).filter((e) => e.type === 'rtt' && e.protocol === 'ICMP');
      assert.equal(rtts.length, 15, `${capture}: ${p.out()}`);
      assert.ok(rtts.every((e) => e.rtt! > 0 && e.rtt! < 50e6), capture);
    }
    assert.deepEqual(await leftovers(r1, 'lo'), []);
  });
});

test('BPF refusals: one line naming what is missing, non-zero exit', opt, async () => {
  await withLab(chain({ name: labName('pr'), routers: 1 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    // Unprivileged.
    const user = await runIn(r1, [process.execPath, CLI, 'pping', '-i', 'e1', '--duration', '1'], { uid: 65534 });
    assert.notEqual(user.code, 0);
    assert.match(user.stderr, /^pathlens: pping: loading BPF programs needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN \(or root\): missing CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN;/m, user.stderr);
    assert.match(user.stderr, /--capture packet/);
    assert.doesNotMatch(user.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(user.stderr.split('\n').filter(Boolean).length, 1, `one line: ${user.stderr}`);
    // Not root, with exactly those three capabilities: it loads, attaches and measures; without
    // CAP_PERFMON (the verifier's EACCES) the line names it.
    const caps = (set: string) => ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', `--inh-caps=${set}`, `--ambient-caps=${set}`, '--'];
    const limited = spawn('ip', ['netns', 'exec', r1, ...caps('+bpf,+perfmon,+net_admin'), process.execPath, CLI, 'pping', '-i', 'e1', '--icmp', '--capture', 'bpf', '-F', 'jsonl', '--duration', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    limited.stdout!.on('data', (d) => (out += d));
    limited.stderr!.on('data', (d) => (err += d));
    await new Promise((r) => setTimeout(r, 1000));
    spawnSync('ip', ['netns', 'exec', nodeNs(st, 'src'), 'ping', '-c', '5', '-i', '0.2', addrOf(st, 'dst', 4)]);
    const code = await new Promise<number | null>((r) => limited.on('close', r));
    assert.equal(code, 0, err);
    assert.ok(out.split('\n').filter((l) => l.includes('"type":"rtt"')).length >= 4, `RTTs as uid 65534 with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN: ${out}${err}`);
    assert.deepEqual(await leftovers(r1, 'e1'), []);
    const noPerfmon = await runIn(r1, [...caps('+bpf,+net_admin'), process.execPath, CLI, 'pping', '-i', 'e1', '--capture', 'bpf', '--duration', '1']);
    assert.notEqual(noPerfmon.code, 0);
    assert.match(noPerfmon.stderr, /^pathlens: pping: loading BPF programs needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN \(or root\): missing CAP_PERFMON;/);
    // The object file is missing.
    const env = { ...process.env, PATHLENS_BPF_DIR: '/nonexistent' };
    const miss = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn('ip', ['netns', 'exec', r1, process.execPath, CLI, 'pping', '-i', 'e1', '--duration', '1'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let e = '';
      c.stderr!.on('data', (d) => (e += d));
      c.on('close', (code) => resolve({ code, stderr: e }));
    });
    assert.notEqual(miss.code, 0);
    assert.match(miss.stderr, /BPF object \/nonexistent\/pping\.bpf\.o is missing \(rebuild it with bpf\/build\.sh/, miss.stderr);
    // XDP on a device with no link-layer header.
    assert.equal((await runIn(r1, ['ip', 'tuntap', 'add', 'dev', 'pltun0', 'mode', 'tun'])).code, 0);
    await runIn(r1, ['ip', 'link', 'set', 'pltun0', 'up']);
    const tun = await runIn(r1, [process.execPath, CLI, 'pping', '-i', 'pltun0', '--ingress-hook', 'xdp', '--duration', '1']);
    assert.notEqual(tun.code, 0);
    assert.match(tun.stderr, /has no link-layer header: XDP is for Ethernet devices, use --ingress-hook tc/, tun.stderr);
    // An unknown interface.
    const none = await runIn(r1, [process.execPath, CLI, 'pping', '-i', 'nosuch0', '--duration', '1']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /-i nosuch0: no such interface/);
    assert.deepEqual(await leftovers(r1, 'e1'), []);
  });
});

test('BPF with --aggregate and --prometheus: per-prefix intervals in the stream, histograms at /metrics', opt, async () => {
  await withLab(chain({ name: labName('pa'), routers: 1, delayMs: 5 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    // Loopback only: the metrics server listens on 127.0.0.1 of the host running the test.
    const port = 20000 + Math.floor(Math.random() * 20000);
    const p = start(r1, 'e1', ['--rate-limit', '0', '--aggregate', '0.5', '--prometheus', `127.0.0.1:${port}`]);
    await p.started;
    const ping = await runIn(nodeNs(st, 'src'), ['ping', '-c', '10', '-i', '0.05', addrOf(st, 'dst', 4)]);
    assert.equal(ping.code, 0, ping.stderr);
    // The kernel's events are read every 100 ms (docs/pping.md): let the last ones arrive.
    await new Promise((r) => setTimeout(r, 300));
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const prefix = addrOf(st, 'dst', 4).replace(/\.\d+$/, '.0/24');
    const count = new RegExp(`^pathlens_pping_rtt_seconds_count\\{prefix="${prefix.replace(/\./g, '\\.')}",protocol="ICMP"\\} (\\d+)$`, 'm').exec(text);
    assert.ok(count, text);
    assert.equal(Number(count[1]), 10);
    // 5 ms each way from r1 to dst: every sample in the 20 ms bucket, none in the 5 ms one.
    assert.match(text, new RegExp(`pathlens_pping_rtt_seconds_bucket\\{le="0.005",prefix="${prefix.replace(/\./g, '\\.')}",protocol="ICMP"\\} 0`));
    assert.match(text, new RegExp(`pathlens_pping_rtt_seconds_bucket\\{le="0.02",prefix="${prefix.replace(/\./g, '\\.')}",protocol="ICMP"\\} 10`));
    assert.match(text, /pathlens_pping_flow_events_total\{event="opening",reason="first observed packet",protocol="ICMP"\} 1/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
    p.child.kill('SIGINT');
    assert.equal((await p.exit).code, 0, p.err());
    const ev = jsonl(p.out()) as Array<Ev & { prefix?: string; rtt_count?: number; rtt_min?: number }>;
    assert.ok(!ev.some((e) => e.type === 'rtt' || e.type === 'flow'), 'aggregate mode passes no single RTT or flow event');
    const aggs = ev.filter((e) => e.type === 'aggregate');
    assert.ok(aggs.length >= 1);
    assert.ok(aggs.every((e) => e.prefix === prefix), JSON.stringify(aggs));
    assert.equal(aggs.reduce((n, e) => n + e.rtt_count!, 0), 10);
    assert.ok(Math.min(...aggs.map((e) => e.rtt_min!)) >= 9e6);
  });
});

test('BPF: flows seen one way only are reported as they go (the sweep of a crowded table), counted, and exported', opt, async () => {
  await withLab(chain({ name: labName('po'), routers: 1 }), async (st) => {
    const r1 = nodeNs(st, 'r1');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const p = startUntil(process.execPath, [CLI, 'pping', '-i', 'e1', '--netns', r1, '--dns', '-F', 'jsonl', '--max-flows', '16', '--prometheus', `127.0.0.1:${port}`], '"type":"start"');
    await p.started;
    // 20 DNS queries from 20 ports to a host with no DNS server: 16 flows fit the table, none is answered.
    const dst = addrOf(st, 'dst', 4);
    const send = await runIn(nodeNs(st, 'src'), ['python3', '-c', `import socket\nfor i in range(20):\n s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(bytes([0x12, i, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 0, 0, 1, 0, 1]), ('${dst}', 53))`]);
    assert.equal(send.code, 0, send.stderr);
    // The table is more than 3/4 full: one-way flows go 3 s after their timestamp, at a sweep (1 s).
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && (p.out().match(/"bidirectional":false/g) ?? []).length < 16) await new Promise((r) => setTimeout(r, 200));
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    p.child.kill('SIGINT');
    assert.equal(await p.exit, 0, p.err());
    const ev = ppingEvents<{ type: string; flow_event?: string; bidirectional?: boolean; src_ip?: string; src_port?: number; reason?: string; triggered_by?: string; one_way_flows?: number; flows_evicted?: number; flow_table_full?: number }>(p.out());
    const oneWay = ev.filter((e) => e.type === 'flow' && e.bidirectional === false);
    assert.equal(oneWay.length, 16, JSON.stringify(ev.filter((e) => e.type === 'flow').slice(0, 3)));
    assert.ok(oneWay.every((e) => e.flow_event === 'closing' && e.reason === 'flow timeout' && e.triggered_by === 'garbage collection' && e.src_ip === dst && e.src_port === 53), 'named from the silent end');
    const done = ev.find((e) => e.type === 'done')!;
    assert.deepEqual([done.one_way_flows, done.flows_evicted, done.flow_table_full], [16, 16, 4]);
    const prefix = dst.replace(/\.\d+$/, '.0/24').replace(/\./g, '\\.');
    assert.match(text, new RegExp(`^pathlens_pping_one_way_flows_total\\{prefix="${prefix}"\\} 16$`, 'm'));
  });
});
