/**
 * ktrace beyond its built-in stages, with real traffic between lab namespaces: the OVS profile
 * loads and each of its datapath stages is refused with the kernel's reason (no openvswitch
 * module here) while the rest still times every ping; a user's profile puts stages on generic
 * programs (tp_btf, raw_tp, classic tracepoint, netfilter) and a point this kernel lacks is
 * refused alone; packet mode follows a UDP or TCP flow chosen by port, each packet on its path,
 * other flows never reported, and a packet the kernel drops is reported with its reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KtraceDropsEvent, KtraceEvent, KtracePacketEvent, KtraceRttEvent, KtraceStartEvent } from '../../src/ktrace/events.js';
import { chain } from '../../src/lab/presets.js';
import { ktraceEvents } from '../helpers/ktrace-schema.js';
import { CLI, addrOf, labName, nodeNs, runIn, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';
import { startUntil } from '../helpers/spawn.js';
import { ensureTracefs } from '../helpers/tracefs.js';

const opt = rootOnly();
if (process.getuid?.() === 0) ensureTracefs();

async function run(args: string[], traffic: () => Promise<void>): Promise<KtraceEvent[]> {
  const k = startUntil(process.execPath, [CLI, 'ktrace', '--jsonl', ...args], '"type":"start"');
  await k.started;
  await traffic();
  await new Promise((r) => setTimeout(r, 300));
  k.child.kill('SIGINT');
  assert.equal(await k.exit, 0, k.err());
  return ktraceEvents(k.out());
}

async function ping(ns: string, target: string, count: number): Promise<number> {
  const r = await runIn(ns, ['ping', ...(target.includes(':') ? ['-6'] : []), '-n', '-c', String(count), '-i', '0.05', target]);
  return [...r.stdout.matchAll(/icmp_seq=\d+ /g)].length;
}

const rtts = (ev: KtraceEvent[]) => ev.filter((e): e is KtraceRttEvent => e.type === 'rtt');
const packets = (ev: KtraceEvent[]) => ev.filter((e): e is KtracePacketEvent => e.type === 'packet');
const names = (e: { stages: { name: string }[] }) => e.stages.map((s) => s.name);
const forward = (e: { stages: { t_ns: number }[] }) => e.stages.every((s, i) => i === 0 || s.t_ns >= e.stages[i - 1].t_ns);

test('ktrace profiles: the OVS profile refuses its datapath stages one by one and times the rest; a user profile on generic programs (tp_btf, raw_tp, classic tracepoint, netfilter), a missing point refused alone', opt, async () => {
  await withLab(chain({ name: labName('kp'), routers: 1 }), async (st) => {
    const src = nodeNs(st, 'src');
    const local = addrOf(st, 'src', 4);
    const far = addrOf(st, 'dst', 4);
    const base = ['--src', local, '--dst', far, '--netns', src];

    // OVS: no openvswitch module on this kernel. Every datapath stage is listed with each hook
    // refused and why; the four stack stages work and every ping is timed through them.
    let sent = 0;
    const ovs = await run([...base, '--profile', 'ovs'], async () => {
      sent = await ping(src, far, 5);
    });
    const start = ovs[0] as KtraceStartEvent;
    assert.equal(start.profile, 'ovs');
    assert.equal(start.stages.length, 14);
    const attached = start.stages.filter((s) => s.hook).map((s) => [s.name, s.hook]);
    assert.deepEqual(attached, [
      ['ip_send_skb', 'netfilter LOCAL_OUT'],
      ['dev_queue_xmit', 'tp_btf net_dev_queue'],
      ['__netif_receive_skb', 'tp_btf netif_receive_skb'],
      ['icmp_rcv', 'netfilter LOCAL_IN'],
    ]);
    for (const s of start.stages.filter((x) => x.name.startsWith('ovs_'))) {
      assert.equal(s.hook, null, s.name);
      assert.ok(s.refused.length >= 2, `${s.name}: every hook refused, with its reason`);
      for (const r of s.refused) {
        if (r.hook.startsWith('fentry')) assert.match(r.reason, /refuses|no function/);
        else if (r.hook.startsWith('kprobe')) assert.match(r.reason, /kprobe/);
        else assert.match(r.reason, /no tracepoint (openvswitch\/)?ovs_(dp_upcall|do_execute_action)/, `${s.name}: ${r.hook}: ${r.reason}`);
      }
    }
    assert.equal(sent, 5);
    assert.equal(rtts(ovs).length, 5, 'every ping timed');
    for (const e of rtts(ovs)) {
      assert.deepEqual(names(e), ['ip_send_skb', 'dev_queue_xmit', '__netif_receive_skb', 'icmp_rcv']);
      assert.ok(forward(e));
    }

    // A user's profile: its own stages on generic programs, beside built-in ones, and one whose
    // point this kernel lacks (refused; the rest runs).
    const dir = mkdtempSync(join(tmpdir(), 'pl-ktp-'));
    const file = join(dir, 'mine.yaml');
    writeFileSync(
      file,
      [
        'name: mine',
        'stages:',
        '  - name: ip_local_out',
        '    path: out',
        '    hooks: [{netfilter: LOCAL_OUT}]',
        '  - name: postrouting',
        '    path: out',
        '    hooks: [{netfilter: POST_ROUTING}]',
        '  - name: driver',
        '    path: out',
        '    hooks: [{tp_btf: net_dev_start_xmit}, {raw_tp: net_dev_start_xmit}]',
        '  - name: backlog',
        '    path: in',
        '    hooks:',
        '      - {raw_tp: netif_rx, header: data}',
        '      - {tracepoint: net/netif_rx, header: data}',
        '  - name: __netif_receive_skb',
        '    path: in',
        '    hooks: [{tp_btf: netif_receive_skb}, {tracepoint: net/netif_receive_skb}]',
        '  - name: nowhere',
        '    path: in',
        '    hooks: [{tp_btf: no_such_point_here}, {tracepoint: nosuch/point}]',
        '  - name: delivered',
        '    path: in',
        '    hooks: [{netfilter: LOCAL_IN}]',
        '',
      ].join('\n'),
    );
    for (const skip of [[], ['--skip-hooks', 'tp_btf,raw_tp']]) {
      const mine = await run([...base, '--profile', file, ...skip], async () => {
        sent = await ping(src, far, 5);
      });
      const s0 = mine[0] as KtraceStartEvent;
      const plan = Object.fromEntries(s0.stages.map((s) => [s.name, s.hook]));
      const classic = skip.length > 0;
      assert.deepEqual(plan, {
        ip_local_out: 'netfilter LOCAL_OUT',
        postrouting: 'netfilter POST_ROUTING',
        driver: classic ? null : 'tp_btf net_dev_start_xmit',
        backlog: classic ? 'tracepoint net/netif_rx' : 'raw_tp netif_rx',
        __netif_receive_skb: classic ? 'tracepoint net/netif_receive_skb' : 'tp_btf netif_receive_skb',
        nowhere: null,
        delivered: 'netfilter LOCAL_IN',
      });
      const nowhere = s0.stages.find((s) => s.name === 'nowhere')!;
      assert.match(nowhere.refused.find((r) => r.hook === 'tracepoint nosuch/point')!.reason, /no tracepoint nosuch\/point here/);
      if (!classic) assert.match(nowhere.refused[0].reason, /no tracepoint no_such_point_here in this kernel's BTF/);
      assert.equal(sent, 5);
      const trips = rtts(mine);
      assert.equal(trips.length, 5, `${classic ? 'classic' : 'BTF'} rungs: every ping timed`);
      const order = ['ip_local_out', 'postrouting', ...(classic ? [] : ['driver']), 'backlog', '__netif_receive_skb', 'delivered'];
      for (const e of trips) {
        assert.deepEqual(names(e), order, 'every stage of the profile that attached, in its order');
        assert.ok(forward(e), 'forward in time');
      }
    }
  });
});

/** A UDP echo: the server answers `n` datagrams; the client sends them one by one and reads each answer. */
const UDP_SERVER = 'import socket,sys\ns=socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)\ns.bind((sys.argv[1],int(sys.argv[2])))\nfor _ in range(int(sys.argv[3])):\n  d,a=s.recvfrom(2048); s.sendto(d,a)\n';
const UDP_CLIENT = 'import socket,sys,time\ns=socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(2)\nfor _ in range(int(sys.argv[3])):\n  s.sendto(b"x"*100,(sys.argv[1],int(sys.argv[2]))); s.recvfrom(2048); time.sleep(0.05)\n';
const TCP_SERVER = 'import socket,sys\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(1)\nc,_=s.accept()\nfor _ in range(int(sys.argv[3])):\n  d=c.recv(2048)\n  if not d: break\n  c.sendall(d)\nc.close()\n';
const TCP_CLIENT = 'import socket,sys,time\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=2); s.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)\nfor _ in range(int(sys.argv[3])):\n  s.send(b"y"*200); s.recv(2048); time.sleep(0.05)\ns.close()\n';

/** A server in one namespace, a client in another; resolves when both are done. */
async function exchange(serverNs: string, clientNs: string, server: string, client: string, addr: string, port: number, n: number): Promise<void> {
  const srv = runIn(serverNs, ['python3', '-c', server, addr, String(port), String(n)], { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 300));
  const cli = await runIn(clientNs, ['python3', '-c', client, addr, String(port), String(n)], { timeoutMs: 10_000 });
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal((await srv).code, 0);
}

test('ktrace --proto udp|tcp --port: each packet of the flow on its own path, other flows never reported, a dropped packet with its reason', opt, async () => {
  await withLab(chain({ name: labName('kq'), routers: 1 }), async (st) => {
    const src = nodeNs(st, 'src');
    const dst = nodeNs(st, 'dst');
    for (const fam of [4, 6] as const) {
      const local = addrOf(st, 'src', fam);
      const far = addrOf(st, 'dst', fam);
      const base = ['--src', local, '--dst', far, '--netns', src, '-i', 'e0'];
      // UDP on port 5353, and another flow on 6000 at the same time (never reported).
      const udp = await run([...base, '--proto', 'udp', '--port', '5353'], async () => {
        await Promise.all([exchange(dst, src, UDP_SERVER, UDP_CLIENT, far, 5353, 5), exchange(dst, src, UDP_SERVER, UDP_CLIENT, far, 6000, 5)]);
      });
      const start = udp[0] as KtraceStartEvent;
      assert.deepEqual([start.mode, start.proto, start.port, start.profile], ['packet', 'udp', 5353, 'transport']);
      assert.match(start.stages.find((s) => s.name === 'sk_read')!.refused[0].reason, /for tcp only/);
      const ps = packets(udp);
      assert.ok(ps.every((p) => p.proto === 'udp' && (p.sport === 5353 || p.dport === 5353)), 'only the chosen flow');
      const out = ps.filter((p) => p.dir === 'out');
      const inn = ps.filter((p) => p.dir === 'in');
      assert.equal(out.length, 5, `IPv${fam}: every datagram out`);
      assert.equal(inn.length, 5, `IPv${fam}: every answer in`);
      for (const p of out) {
        assert.deepEqual([p.src, p.dst, p.dport, p.len, p.end, p.comm, p.tcp], [local, far, 5353, fam === 4 ? 128 : 148, 'complete', 'python3', null]);
        assert.deepEqual(names(p), ['sendmsg', 'ip_local_out', 'post_routing', 'tc_egress', 'dev_queue_xmit', 'dev_start_xmit']);
        assert.ok(forward(p));
      }
      for (const p of inn) {
        assert.deepEqual([p.src, p.dst, p.sport, p.end], [far, local, 5353, 'complete']);
        // UDP: sk_data_ready is the last point a tracepoint sees (the reader copies without one).
        assert.deepEqual(names(p), ['__netif_receive_skb', 'tc_ingress', 'ip_rcv', 'local_in', 'sk_data_ready']);
        assert.ok(forward(p));
      }
      const done = udp.at(-1)!;
      assert.deepEqual([done.type, done.type === 'done' && done.trips], ['done', 10]);
    }

    // TCP: the handshake, the data both ways, the close.
    const local = addrOf(st, 'src', 4);
    const far = addrOf(st, 'dst', 4);
    const tcp = await run(['--src', local, '--dst', far, '--netns', src, '--proto', 'tcp', '--port', '8080', '--timeout', '200'], async () => {
      await exchange(dst, src, TCP_SERVER, TCP_CLIENT, far, 8080, 3);
      await new Promise((r) => setTimeout(r, 400));
    });
    const ps = packets(tcp);
    assert.ok(ps.every((p) => p.proto === 'tcp' && p.tcp !== null && (p.sport === 8080 || p.dport === 8080)));
    const first = ps.filter((p) => p.dir === 'out').sort((a, b) => a.tcp!.seq - b.tcp!.seq)[0];
    assert.equal(ps.filter((p) => p.dir === 'out' && p.tcp!.flags === 'S').length, 1, 'one SYN out');
    assert.equal(first.tcp!.flags, 'S');
    assert.equal(ps.filter((p) => p.dir === 'in' && p.tcp!.flags === 'SA').length, 1, 'one SYN-ACK in');
    const dataIn = ps.filter((p) => p.dir === 'in' && p.len === 252);
    assert.equal(dataIn.length, 3, 'the three echoes in');
    for (const p of dataIn) {
      assert.equal(p.end, 'complete');
      assert.equal(p.stages.at(-1)!.name, 'sk_read', 'read by the client');
      assert.ok(forward(p));
    }
    assert.equal(ps.filter((p) => p.dir === 'out' && p.len === 252).length, 3, 'the three requests out');
    // A pure ACK ends where TCP consumes it: local delivery, never the socket.
    for (const p of ps.filter((x) => x.dir === 'in' && x.tcp!.flags === 'A')) assert.ok(['local_in', 'sk_data_ready'].includes(p.last_stage!) && p.end !== 'complete', `${p.end} ${p.last_stage}`);

    // A packet the kernel drops: UDP answers dropped before PRE_ROUTING.
    const nft = (script: string) => spawnSync('ip', ['netns', 'exec', src, 'nft', '-f', '-'], { input: script, encoding: 'utf8' });
    assert.equal(nft('table inet ktq {\n  chain pre {\n    type filter hook prerouting priority -300;\n    udp sport 5353 drop\n  }\n}\n').status, 0);
    let dropped: KtraceEvent[];
    try {
      dropped = await run(['--src', local, '--dst', far, '--netns', src, '-i', 'e0', '--proto', 'udp', '--port', '5353'], async () => {
        const srv = runIn(dst, ['python3', '-c', UDP_SERVER, far, '5353', '2'], { timeoutMs: 5_000 });
        await new Promise((r) => setTimeout(r, 300));
        // The answers never arrive: the client gives up (its timeout) after each.
        await runIn(src, ['python3', '-c', 'import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.3)\nfor _ in range(2):\n  s.sendto(b"x"*100,(sys.argv[1],5353))\n  try: s.recvfrom(2048)\n  except OSError: pass\n', far], { timeoutMs: 5_000 });
        await srv;
      });
    } finally {
      nft('delete table inet ktq\n');
    }
    const gone = packets(dropped).filter((p) => p.dir === 'in');
    assert.deepEqual(
      gone.map((p) => [p.end, p.drop_reason, p.last_stage]),
      [
        ['dropped', 'NETFILTER_DROP', 'tc_ingress'],
        ['dropped', 'NETFILTER_DROP', 'tc_ingress'],
      ],
    );
    const summary = dropped.at(-2) as KtraceDropsEvent;
    assert.deepEqual([summary.type, summary.total, summary.by], ['drops', 2, [{ dropped: 'in', reason: 'NETFILTER_DROP', stage: 'tc_ingress', count: 2 }]]);
  });
});
