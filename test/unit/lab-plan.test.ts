import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planLab, primaryAddr, SILENT_MS } from '../../src/lab/plan.js';
import { chain, demo, ecmp, mtu, nat, unreach } from '../../src/lab/presets.js';
import { MAX_SPEC_BYTES, readSpecFile, validateSpec } from '../../src/lab/spec.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('chain: addresses per link, routes towards every subnet, hosts default to their router', () => {
  const p = planLab(chain({ routers: 3 }));
  assert.deepEqual(
    p.nodes.map((n) => n.name),
    ['src', 'r1', 'r2', 'r3', 'dst'],
  );
  assert.equal(primaryAddr(p, 'dst', 4), '10.100.3.2');
  assert.equal(primaryAddr(p, 'dst', 6), 'fd00:706c:0:3::2');
  const r1 = p.nodes[1];
  const to3 = r1.routes.find((r) => r.to === '10.100.3.0/24')!;
  assert.deepEqual(to3.nexthops, [{ via: '10.100.1.2', dev: 'e1' }]);
  const src = p.nodes[0];
  assert.deepEqual(src.routes, [
    { family: 4, to: 'default', nexthops: [{ via: '10.100.0.2', dev: 'e0' }] },
    { family: 6, to: 'default', nexthops: [{ via: 'fd00:706c::2', dev: 'e0' }] },
  ]);
  assert.ok(p.nodes[2].sysctls.some(([k, v]) => k === 'net.ipv4.ip_forward' && v === '1'));
  assert.ok(!src.sysctls.some(([k]) => k === 'net.ipv4.ip_forward'));
});

test('ecmp: the fan-out router has W equal-cost next hops to the far side', () => {
  for (const w of [2, 4, 8]) {
    const p = planLab(ecmp({ width: w }));
    const ra = p.nodes.find((n) => n.name === 'ra')!;
    const dstLink = p.links.find((l) => l.b === 'dst')!;
    const r4 = ra.routes.find((r) => r.to === dstLink.prefix4)!;
    const r6 = ra.routes.find((r) => r.to === dstLink.prefix6)!;
    assert.equal(r4.nexthops.length, w);
    assert.equal(r6.nexthops.length, w);
    const rb = p.nodes.find((n) => n.name === 'rb')!;
    assert.equal(rb.routes.find((r) => r.to === p.links[0].prefix4)!.nexthops.length, w);
    assert.ok(ra.sysctls.some(([k, v]) => k === 'net.ipv6.fib_multipath_hash_policy' && v === '1'));
  }
});

test('demo preset: 9 routers, 5 ms each way, r3 and r6 silent, userspace path without netem', () => {
  const p = planLab(demo({}), false);
  assert.equal(p.nodes.length, 11);
  assert.equal(p.links.length, 10);
  assert.ok(p.links.every((l) => l.aToB?.delay_ms === 5 && l.bToA?.delay_ms === 5 && l.wire));
  // Silent routers: only Time Exceeded is rate limited, to one per destination per 11.5 days.
  const sysctl = (name: string, key: string) => p.nodes.find((n) => n.name === name)!.sysctls.find(([k]) => k === key)?.[1];
  assert.deepEqual(
    p.nodes.filter((n) => sysctl(n.name, 'net.ipv4.icmp_ratemask') === String(1 << 11) && sysctl(n.name, 'net.ipv6.icmp.ratemask') === '3').map((n) => n.name),
    ['r3', 'r6'],
  );
  assert.equal(sysctl('r3', 'net.ipv4.icmp_ratelimit'), String(SILENT_MS));
  assert.equal(sysctl('r4', 'net.ipv4.icmp_ratelimit'), '0');
  assert.ok(
    p.nodes.every((n) => n.nft === null),
    'the demo needs no nftables',
  );
  assert.equal(p.wireNs, 'pl-demo-wire');
  const withNetem = planLab(demo({}), true);
  assert.equal(withNetem.impairMode, 'netem');
  assert.equal(withNetem.wireNs, null);
});

test('unreach: routers before the failing one forward the phantom prefix to it', () => {
  const p = planLab(unreach({ routers: 3, at: 2, code: 'admin' }));
  assert.deepEqual(p.nodes[1].routes.filter((r) => r.to === 'default').map((r) => r.nexthops[0].via), ['10.100.1.2', 'fd00:706c:0:1::2']);
  assert.deepEqual(
    p.nodes[2].routes.filter((r) => r.type).map((r) => [r.to, r.type]),
    [
      ['10.255.0.0/16', 'prohibit'],
      ['fd00:706c:ffff::/48', 'prohibit'],
    ],
  );
  const net = planLab(unreach({ routers: 3, at: 2, code: 'net' }));
  assert.equal(net.nodes[2].routes.filter((r) => r.type || r.to === 'default').length, 0);
});

test('mtu and nat presets', () => {
  const p = planLab(mtu({ routers: 4, at: 2, mtu: 1400 }));
  assert.equal(p.links[2].mtu, 1400);
  assert.deepEqual([p.links[2].a, p.links[2].b], ['r2', 'r3']);
  const n = planLab(nat({}));
  assert.ok(n.nodes[1].nft?.includes('oifname "e1" masquerade'));
});

test('spec validation names the field at fault', () => {
  const base = { name: 'x', nodes: [{ name: 'a', role: 'host' }, { name: 'b', role: 'host' }], links: [{ a: 'a', b: 'b' }] };
  assert.doesNotThrow(() => validateSpec(base));
  const bad: [unknown, RegExp][] = [
    [{ ...base, name: 'Bad!' }, /spec\.name/],
    [{ ...base, nodes: [{ name: 'a', role: 'host' }, { name: 'a', role: 'host' }] }, /used twice/],
    [{ ...base, links: [{ a: 'a', b: 'zz' }] }, /links\[0\]\.b/],
    [{ ...base, links: [{ a: 'a', b: 'b', impair: { loss: 2 } }] }, /impair\.loss/],
    [{ ...base, links: [{ a: 'a', b: 'b', impair: { delay_ms: 1, jitter_ms: 5 } }] }, /jitter_ms/],
    [{ ...base, links: [{ a: 'a', b: 'b', mtu: 100 }] }, /mtu/],
    [{ ...base, extra: 1 }, /unknown field 'extra'/],
    [{ ...base, nodes: [{ name: 'a', role: 'switch' }, { name: 'b', role: 'host' }] }, /role/],
    [[1, 2], /spec must be an object/],
    [{ ...base, nodes: [{ name: 'a', role: 'host', routes: [{ to: '10.0.0.0/999', type: 'blackhole' }] }, { name: 'b', role: 'host' }] }, /nodes\[0\]\.routes\[0\]\.to/],
    [{ ...base, nodes: [{ name: 'a', role: 'host', routes: [{ to: '10.0.0.0/33', type: 'blackhole' }] }, { name: 'b', role: 'host' }] }, /routes\[0\]\.to/],
    [{ ...base, nodes: [{ name: 'a', role: 'host', routes: [{ to: '10.0.0.999/8', type: 'blackhole' }] }, { name: 'b', role: 'host' }] }, /routes\[0\]\.to/],
  ];
  for (const [spec, re] of bad) assert.throws(() => validateSpec(spec), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && re.test(e.message));
  assert.equal(validateSpec({ ...base, links: [{ a: 'a', b: 'b', impair: { loss: '5%' } }] }).links[0].impair?.loss, 0.05);
  assert.doesNotThrow(() => validateSpec({ ...base, nodes: [{ name: 'a', role: 'host', routes: [{ to: 'fd00::/128', type: 'unreachable' }] }, { name: 'b', role: 'host' }] }));
});

test('a spec file larger than any lab is refused before it is parsed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pathlens-spec-'));
  const big = join(dir, 'big.yaml');
  writeFileSync(big, Buffer.alloc(MAX_SPEC_BYTES + 1, 'a'));
  await assert.rejects(readSpecFile(big), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && /big\.yaml is \d+ bytes: a lab spec is at most/.test(e.message));
  await assert.rejects(readSpecFile(dir), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && /EISDIR/.test(e.message));
});
