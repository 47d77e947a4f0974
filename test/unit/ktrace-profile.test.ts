/**
 * ktrace's stage profiles as data: the shipped ones load (the kernel profile is exactly the
 * built-in stages, the OVS one has 14 stages with the points the two paths share in one slot),
 * a user's file loads, and every mistake is one line naming the file and the field.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PathlensError } from '../../src/core/errors.js';
import { FIRST_GENERIC, GEN_SLOTS, NSTAGES } from '../../src/ktrace/layout.js';
import { loadProfile, parseProfile, shippedProfiles } from '../../src/ktrace/profile.js';
import { STAGES } from '../../src/ktrace/stages.js';
import { CLI } from '../helpers/lab.js';

test('shipped profiles: kernel, ovs and transport', () => {
  assert.deepEqual(shippedProfiles(), ['kernel', 'ovs', 'transport']);
});

test('the kernel profile is the built-in stages, hook for hook, each on its compiled program', () => {
  const p = loadProfile('kernel');
  assert.equal(p.name, 'kernel');
  assert.deepEqual(
    p.stages.map((s) => [s.id, s.name, s.path, !!s.txOnly]),
    STAGES.map((s) => [s.id, s.name, s.path, !!s.txOnly]),
  );
  for (const s of p.stages) {
    const b = STAGES.find((x) => x.name === s.name)!;
    assert.deepEqual(s.hooks, b.hooks, `${s.name}: the built-in hooks, in order`);
  }
  assert.deepEqual(p.slots, [], 'no generic program');
});

test('the OVS profile: 14 stages, seven each way; the datapath points both paths see share a slot', () => {
  const p = loadProfile('ovs');
  assert.equal(p.stages.length, 14);
  assert.equal(p.stages.filter((s) => s.path === 'out').length, 7);
  const byName = new Map(p.stages.map((s) => [s.name, s]));
  for (const name of ['ip_send_skb', 'dev_queue_xmit', '__netif_receive_skb', 'icmp_rcv']) assert.equal(byName.get(name)!.id, STAGES.find((s) => s.name === name)!.id, `${name} is the built-in stage`);
  const own = p.stages.filter((s) => s.id >= FIRST_GENERIC);
  assert.equal(own.length, 10);
  assert.equal(new Set(own.map((s) => s.id)).size, 10, 'each stage its own id');
  for (const [a, b] of [
    ['ovs_process_out', 'ovs_process_in'],
    ['ovs_upcall_out', 'ovs_upcall_in'],
    ['ovs_execute_out', 'ovs_execute_in'],
    ['ovs_vport_send_out', 'ovs_vport_send_in'],
  ]) {
    const slot = byName.get(a)!.hooks.find((h) => h.generic)!.generic!.slot;
    assert.equal(byName.get(b)!.hooks.find((h) => h.generic)!.generic!.slot, slot, `${a} and ${b}: one point`);
    assert.deepEqual(p.slots[slot], { out: byName.get(a)!.id, in: byName.get(b)!.id });
  }
  assert.equal(p.slots.length, 6);
  const upcall = byName.get('ovs_upcall_out')!.hooks;
  assert.deepEqual(
    upcall.map((h) => [h.kind, h.at, h.generic?.arg ?? null, h.prog]),
    [
      ['fentry', 'ovs_dp_upcall', 1, `kt_g_fe_${upcall[0].generic!.slot}`],
      ['kprobe', 'ovs_dp_upcall', null, ''],
      ['tp_btf', 'ovs_dp_upcall', 1, `kt_g_btf_${upcall[0].generic!.slot}`],
      ['raw_tp', 'ovs_dp_upcall', 1, `kt_g_raw_${upcall[0].generic!.slot}`],
      ['tracepoint', 'openvswitch/ovs_dp_upcall', 0, `kt_g_tp_${upcall[0].generic!.slot}`],
    ],
  );
  assert.equal(upcall[4].generic!.field, 'skbaddr');
});

test('the transport profile: no ICMP point; sk_read for TCP only', () => {
  const p = loadProfile('transport');
  const names = p.stages.map((s) => s.name);
  assert.ok(!names.includes('icmp_rcv') && !names.includes('ip_send_skb'));
  const local = p.stages.find((s) => s.name === 'local_in')!;
  assert.deepEqual([local.path, local.hooks[0].kind, local.hooks[0].at, local.hooks[0].prog], ['in', 'netfilter', 'LOCAL_IN', `kt_g_nf_${local.hooks[0].generic!.slot}`]);
  assert.ok(p.stages.find((s) => s.name === 'sk_read')!.hooks.every((h) => h.protos?.join() === 'tcp'));
});

test("a user's profile: built-in stages, generic hooks on a built-in stage, a user's own stages", () => {
  const p = parseProfile(
    {
      name: 'mine',
      stages: [
        { name: 'ip_local_out', path: 'out', hooks: [{ netfilter: 'LOCAL_OUT' }] },
        { name: 'driver', path: 'out', hooks: [{ tp_btf: 'net_dev_start_xmit' }, { raw_tp: 'net_dev_start_xmit', arg: 0 }] },
        { name: 'backlog', path: 'in', hooks: [{ raw_tp: 'netif_rx', header: 'data' }, { tracepoint: 'net/netif_rx', header: 'data' }] },
        { name: '__netif_receive_skb', path: 'in', hooks: [{ fentry: 'netif_receive_skb_core', arg: 0 }, { tp_btf: 'netif_receive_skb' }] },
      ],
    },
    'mine.yaml',
  );
  const [lo, drv, backlog, rcv] = p.stages;
  assert.equal(lo.hooks[0].prog, 'kt_nf_local_out');
  assert.deepEqual([drv.id, backlog.id], [FIRST_GENERIC, FIRST_GENERIC + 1]);
  assert.deepEqual(backlog.hooks.map((h) => h.generic!.data), [true, true]);
  // The built-in stage keeps its id; its own generic fentry hook gets a slot recording that id.
  assert.equal(rcv.id, STAGES.find((s) => s.name === '__netif_receive_skb')!.id);
  assert.equal(rcv.hooks[0].prog, `kt_g_fe_${rcv.hooks[0].generic!.slot}`);
  assert.equal(rcv.hooks[1].prog, 'kt_btf_netif_receive_skb');
  assert.deepEqual(p.slots[rcv.hooks[0].generic!.slot], { out: null, in: rcv.id });
});

test('profile mistakes: one line naming the file and the field', () => {
  const base = (stages: unknown[]) => ({ name: 'x', stages });
  const ok = { name: 'a', path: 'out', hooks: [{ netfilter: 'LOCAL_OUT' }] };
  const inn = { name: 'b', path: 'in', hooks: [{ netfilter: 'LOCAL_IN' }] };
  const cases: [unknown, RegExp][] = [
    [[], /must be a mapping/],
    [{ name: 'x', stages: [] }, /stages: must be a non-empty list/],
    [{ name: 'x y', stages: [ok, inn] }, /name: must be a name/],
    [{ name: 'x', stages: [ok, inn], extra: 1 }, /unknown key extra/],
    [base([ok]), /no stage on the in path/],
    [base([ok, { ...inn, name: 'a' }]), /stages\[1\]\.name: a is named twice/],
    [base([ok, { ...inn, path: 'up' }]), /stages\[1\]\.path: must be out/],
    [base([ok, { name: 'ip_rcv', path: 'out', hooks: [{ netfilter: 'PRE_ROUTING' }] }]), /stages\[1\]\.path: ip_rcv is a built-in stage of the in path/],
    [base([ok, { ...inn, hooks: [] }]), /stages\[1\]\.hooks: must be a non-empty list/],
    [base([ok, { ...inn, hooks: [{ netfilter: 'LOCAL_IN', fentry: 'x' }] }]), /hooks\[0\]: must name exactly one hook kind/],
    [base([ok, { ...inn, hooks: [{ uprobe: 'x' }] }]), /hooks\[0\]: must name exactly one hook kind/],
    [base([ok, { ...inn, hooks: [{ netfilter: 'INPUT' }] }]), /hooks\[0\]\.netfilter: must be one of PRE_ROUTING/],
    [base([ok, { ...inn, hooks: [{ tcx: 'ingress' }] }]), /tcx hooks are built in/],
    [base([ok, { ...inn, hooks: [{ raw_tp: 'netif_rx', arg: 6 }] }]), /hooks\[0\]\.arg: must be the sk_buff argument's position, 0 to 5/],
    [base([ok, { ...inn, hooks: [{ raw_tp: 'netif_rx', field: 'skbaddr' }] }]), /hooks\[0\]\.field: is for classic tracepoints/],
    [base([ok, { ...inn, hooks: [{ tracepoint: 'netif_rx' }] }]), /hooks\[0\]\.tracepoint: must be SYSTEM\/NAME/],
    [base([ok, { ...inn, hooks: [{ tracepoint: 'net/netif_rx', arg: 1 }] }]), /finds the sk_buff by its record's field/],
    [base([ok, { ...inn, hooks: [{ raw_tp: 'netif_rx', header: 'mac' }] }]), /hooks\[0\]\.header: must be network/],
    [base([ok, { ...inn, hooks: [{ raw_tp: 'netif_rx', ipv6: 'x' }] }]), /hooks\[0\]\.ipv6: is the IPv6 path's function/],
    [base([ok, { ...inn, hooks: [{ raw_tp: 'netif_rx', proto: 'sctp' }] }]), /hooks\[0\]\.proto: must be one or a list of icmp, udp, tcp/],
    [base([ok, { ...inn, hooks: [{ raw_tp: 'netif_rx', when: 1 }] }]), /hooks\[0\]: unknown key when/],
    [base([ok, { name: 'icmp_rcv', path: 'in', hooks: [{ netfilter: 'LOCAL_IN', arg: 1 }] }]), /the built-in icmp_rcv stage's netfilter hook takes no arg/],
    [base([ok, ...Array.from({ length: NSTAGES - FIRST_GENERIC + 1 }, (_, i) => ({ name: `s${i}`, path: 'in', hooks: [{ netfilter: 'LOCAL_IN' }] }))]), /at most 19 stages of a profile's own/],
    [base([ok, ...Array.from({ length: GEN_SLOTS + 1 }, (_, i) => ({ name: `s${i}`, path: 'in', hooks: [{ raw_tp: `tp${i}` }] }))]), /at most 12 points of a profile's own/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(
      () => parseProfile(raw, '/some/where/p.yaml'),
      (e: unknown) => e instanceof PathlensError && e.code === 'ERR_CONFIG' && /^ktrace profile p\.yaml: /.test(e.message) && re.test(e.message) && !e.message.includes('\n'),
      `${JSON.stringify(raw).slice(0, 120)} -> ${re}`,
    );
  }
});

test('pathlens ktrace --profile: an unknown name, a bad file, bad YAML: one pathlens: line, exit 1 or 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-prof-'));
  writeFileSync(join(dir, 'bad.yaml'), 'name: x\nstages:\n  - name: a\n    path: sideways\n    hooks: [{netfilter: LOCAL_OUT}]\n');
  writeFileSync(join(dir, 'broken.yaml'), 'name: [x\n');
  const runs: [string, RegExp][] = [
    ['nosuch', /^pathlens: --profile nosuch: no such profile \(shipped: kernel, ovs, transport; or give a file\)$/],
    [join(dir, 'bad.yaml'), /^pathlens: ktrace profile bad\.yaml: stages\[0\]\.path: must be out/],
    [join(dir, 'broken.yaml'), /^pathlens: .*broken\.yaml is not valid YAML/],
    [join(dir, 'missing.yaml'), /^pathlens: cannot read .*missing\.yaml: ENOENT$/],
  ];
  for (const [profile, re] of runs) {
    const r = spawnSync(process.execPath, [CLI, 'ktrace', '--src', '127.0.0.1', '--dst', '127.0.0.2', '--profile', profile], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, profile);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trim(), re);
  }
});
