/**
 * rtnetlink on recorded kernel replies (test/fixtures/netlink/README.md): a route's output
 * interface, source and gateway; a multipath FIB entry's next hops (IPv4 and IPv6); "no route" as
 * an errno; an interface name; and the request bytes as rtnetlink(7) lays them out.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { constants } from 'node:os';
import { parseIp } from '../../src/packet/addr.js';
import { encodeLinkRequest, encodeNeighRequest, encodeRouteRequest, parseLinkAddressReply, parseLinkReply, parseLinkTypeReply, parseNeighReply, parseRouteReply } from '../../src/packet/netlink.js';
import { SOF_RX_SOFTWARE, SOF_SOFTWARE, SOF_TX_SOFTWARE, describeTimestamping, encodeGetFamily, encodeTsinfoGet, parseTsinfo } from '../../src/packet/genetlink.js';
import { ROOT } from '../helpers/lab.js';

const rec = JSON.parse(readFileSync(`${ROOT}test/fixtures/netlink/replies.json`, 'utf8')) as Record<string, string>;
const bytes = (k: string) => Uint8Array.from(Buffer.from(rec[k], 'hex'));

test('recorded replies: route, multipath FIB entries, no route, interface name', () => {
  const r = bytes('route4');
  assert.deepEqual(parseRouteReply(r, r.length, 1), { ok: { oif: 3, prefsrc: parseIp('10.100.1.1'), gateway: parseIp('10.100.1.2'), nexthops: 1 } });
  for (const [k, seq] of [['fib4', 2], ['fib6', 3]] as const) {
    const b = bytes(k);
    const a = parseRouteReply(b, b.length, seq);
    assert.ok('ok' in a && a.ok.nexthops === 2, `${k}: ${JSON.stringify(a)}`);
  }
  const n = bytes('noroute');
  assert.deepEqual(parseRouteReply(n, n.length, 4), { errno: constants.errno.ENETUNREACH });
  const l = bytes('link');
  assert.deepEqual(parseLinkReply(l, l.length, 5), { ok: 'e0' });
  // The same answer says what kind of device it is: a veth, Ethernet (ARPHRD_ETHER).
  assert.deepEqual(parseLinkTypeReply(l, l.length, 5), { ok: 1 });
  assert.deepEqual(parseLinkTypeReply(l, l.length, 6), { error: 'no reply to the request' });
  // A reply is only taken for its own request.
  assert.deepEqual(parseRouteReply(r, r.length, 9), { error: 'no reply to the request' });
});

test('recorded replies: neighbours (IPv4, IPv6, none) and an interface\'s link-layer address', () => {
  const mac = Uint8Array.from(Buffer.from('3a527a2cda48', 'hex'));
  for (const [k, seq] of [['neigh4', 6], ['neigh6', 7]] as const) {
    const b = bytes(k);
    assert.deepEqual(parseNeighReply(b, b.length, seq), { ok: { state: 0x80, lladdr: mac, usable: true } }, k);
  }
  const none = bytes('noneigh');
  assert.deepEqual(parseNeighReply(none, none.length, 8), { errno: constants.errno.ENOENT });
  const l = bytes('link');
  const a = parseLinkAddressReply(l, l.length, 5);
  assert.ok('ok' in a && a.ok.length === 6, JSON.stringify(a));
  assert.deepEqual(parseNeighReply(l, l.length, 5), { error: 'no reply to the request' }, 'a link answer is no neighbour');
});

test('RTM_GETNEIGH request, byte for byte', () => {
  const b = new Uint8Array(64);
  const n = encodeNeighRequest(b, 6, 3, parseIp('10.100.1.2'));
  // nlmsghdr: len 36, RTM_GETNEIGH (30), NLM_F_REQUEST, seq 6, pid 0; ndmsg: AF_INET, ifindex 3; NDA_DST
  assert.equal(Buffer.from(b.subarray(0, n)).toString('hex'), '240000001e0001000600000000000000' + '020000000300000000000000' + '080001000a640102');
});

test('requests, byte for byte', () => {
  const b = new Uint8Array(128);
  const n = encodeRouteRequest(b, 7, { dst: parseIp('10.1.2.3'), oif: 5, mark: 9, fibMatch: true });
  assert.equal(Buffer.from(b.subarray(0, n)).toString('hex'),
    // nlmsghdr: len 52, RTM_GETROUTE, NLM_F_REQUEST, seq 7, pid 0
    '34000000' + '1a00' + '0100' + '07000000' + '00000000' +
    // rtmsg: AF_INET, dst_len 32, src_len 0, tos 0, table 0, proto 0, scope 0, type 0, flags RTM_F_FIB_MATCH
    '02200000' + '00000000' + '00200000' +
    // RTA_DST 10.1.2.3, RTA_OIF 5, RTA_MARK 9
    '08000100' + '0a010203' + '08000400' + '05000000' + '08001000' + '09000000');
  const m = encodeLinkRequest(b, 8, 2);
  assert.equal(Buffer.from(b.subarray(0, m)).toString('hex'), '20000000' + '1200' + '0100' + '08000000' + '00000000' + '00000000' + '02000000' + '00000000' + '00000000');
});

test('ethtool TSINFO over generic netlink: what lo and ifb offer (software stamps only); the requests byte for byte', () => {
  const lo = bytes('tsinfo_lo');
  assert.deepEqual(parseTsinfo(lo, lo.length, 3), { ok: { timestamping: SOF_TX_SOFTWARE | SOF_RX_SOFTWARE | SOF_SOFTWARE, phcIndex: null } });
  const ifb = bytes('tsinfo_ifb0');
  const t = parseTsinfo(ifb, ifb.length, 4);
  assert.ok('ok' in t);
  assert.deepEqual(describeTimestamping(t.ok.timestamping), ['software-receive', 'software-system-clock']);
  const b = new Uint8Array(64);
  const n = encodeGetFamily(b, 1, 'ethtool');
  // nlmsghdr (len 32, GENL_ID_CTRL, REQUEST, seq 1), genlmsghdr (CTRL_CMD_GETFAMILY, version 1), CTRL_ATTR_FAMILY_NAME "ethtool\0"
  assert.equal(Buffer.from(b.subarray(0, n)).toString('hex'), '20000000' + '1000' + '0100' + '01000000' + '00000000' + '03010000' + '0c000200' + '657468746f6f6c00');
  const m = encodeTsinfoGet(b, 2, 21, 7);
  // ETHTOOL_MSG_TSINFO_GET (25), header nest (NLA_F_NESTED): DEV_INDEX 7, FLAGS COMPACT_BITSETS
  assert.equal(Buffer.from(b.subarray(0, m)).toString('hex'), '28000000' + '1500' + '0100' + '02000000' + '00000000' + '19010000' + '14000180' + '08000100' + '07000000' + '08000300' + '01000000');
});
