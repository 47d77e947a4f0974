import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIp } from '../../src/packet/addr.js';
import { CmsgCursor } from '../../src/packet/cmsg.js';
import { ErrqueueRecord, parseErrqueue } from '../../src/packet/errqueue.js';
import { icmpName } from '../../src/packet/icmp.js';
import { ERR_BAD_LENGTH, ERR_MISSING, ERR_TRUNCATED, OK } from '../../src/packet/status.js';
import { cmsg, concat, extErr, sin, sin6, timespec, v6 } from '../helpers/bytes.js';

function parse(bytes: Uint8Array) {
  const rec = new ErrqueueRecord();
  const st = parseErrqueue(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.length, rec, new CmsgCursor());
  const off = rec.offender.family ? formatIp(bytes, rec.offender.addrOff, rec.offender.family) : null;
  return { st, rec, off };
}

const V4 = (type: number, code: number, errno: number, info = 0) =>
  concat(cmsg(1, 35, timespec(1_700_000_000, 123_456_789)), cmsg(0, 11, extErr({ errno, origin: 2, type, code, info }, sin([10, 100, 3, 1], 0))));

test('IPv4 Time Exceeded with offender and kernel timestamp', () => {
  const { st, rec, off } = parse(V4(11, 0, 113));
  assert.equal(st, OK);
  assert.deepEqual(
    { errno: rec.errno, origin: rec.origin, type: rec.icmpType, code: rec.icmpCode, off, hasTime: rec.hasTime, sec: rec.sec, nsec: rec.nsec },
    { errno: 113, origin: 2, type: 11, code: 0, off: '10.100.3.1', hasTime: true, sec: 1_700_000_000, nsec: 123_456_789 },
  );
  assert.deepEqual(icmpName(4, 11, 0), { kind: 'time-exceeded', code: 'ttl' });
  assert.deepEqual(icmpName(4, 11, 1), { kind: 'time-exceeded', code: 'reassembly' });
});

const V4_UNREACH: [number, string][] = [
  [0, 'net'],
  [1, 'host'],
  [2, 'protocol'],
  [3, 'port'],
  [4, 'frag-needed'],
  [5, 'source-route-failed'],
  [6, 'net-unknown'],
  [7, 'host-unknown'],
  [8, 'host-isolated'],
  [9, 'net-prohibited'],
  [10, 'host-prohibited'],
  [11, 'net-tos'],
  [12, 'host-tos'],
  [13, 'admin-prohibited'],
  [14, 'precedence-violation'],
  [15, 'precedence-cutoff'],
];

const V6_UNREACH: [number, string][] = [
  [0, 'no-route'],
  [1, 'admin-prohibited'],
  [2, 'beyond-scope'],
  [3, 'address'],
  [4, 'port'],
  [5, 'policy-failed'],
  [6, 'reject-route'],
  [7, 'source-route-error'],
  [8, 'headers-too-long'],
];

/** Each Destination Unreachable code, as the error queue delivers it, for both families. */
const UNREACH_CASES = [
  ...V4_UNREACH.map(([code, name]) => ({ fam: 4 as const, code, name, bytes: V4(3, code, 113, code === 4 ? 1400 : 0), offender: '10.100.3.1' })),
  ...V6_UNREACH.map(([code, name]) => ({
    fam: 6 as const,
    code,
    name,
    bytes: cmsg(41, 25, extErr({ errno: 113, origin: 3, type: 1, code }, sin6(v6('fd00:706c:0:2::1'), 0))),
    offender: 'fd00:706c:0:2::1',
  })),
];

for (const c of UNREACH_CASES) {
  test(`IPv${c.fam} Destination Unreachable code ${c.code} is '${c.name}'`, () => {
    const { st, rec, off } = parse(c.bytes);
    assert.equal(st, OK);
    assert.equal(rec.origin, c.fam === 4 ? 2 : 3);
    assert.equal(rec.icmpType, c.fam === 4 ? 3 : 1);
    assert.equal(rec.icmpCode, c.code);
    assert.equal(off, c.offender);
    if (c.fam === 4 && c.code === 4) assert.equal(rec.info, 1400);
    assert.deepEqual(icmpName(c.fam, rec.icmpType, c.code), { kind: 'unreachable', code: c.name });
  });
}

test('ICMPv6 Time Exceeded, Packet Too Big (MTU in ee_info), Parameter Problem', () => {
  const te = parse(cmsg(41, 25, extErr({ errno: 113, origin: 3, type: 3, code: 0 }, sin6(v6('fd00::1'), 0))));
  assert.equal(te.st, OK);
  assert.equal(te.off, 'fd00::1');
  assert.deepEqual(icmpName(6, 3, 0), { kind: 'time-exceeded', code: 'ttl' });
  const ptb = parse(cmsg(41, 25, extErr({ errno: 90, origin: 3, type: 2, code: 0, info: 1280 }, sin6(v6('fd00::2'), 0))));
  assert.equal(ptb.rec.info, 1280);
  assert.deepEqual(icmpName(6, 2, 0), { kind: 'packet-too-big', code: '0' });
  assert.deepEqual(icmpName(6, 4, 1), { kind: 'parameter-problem', code: 'next-header' });
  assert.deepEqual(icmpName(4, 12, 0), { kind: 'parameter-problem', code: 'pointer' });
});

test('local error (EMSGSIZE) has no offender: family AF_UNSPEC', () => {
  const b = cmsg(0, 11, extErr({ errno: 90, origin: 1, type: 0, code: 0, info: 1400 }, [0, 0, ...new Array(14).fill(0)]));
  const { st, rec, off } = parse(b);
  assert.equal(st, OK);
  assert.equal(rec.origin, 1);
  assert.equal(rec.info, 1400);
  assert.equal(off, null);
});

test('short sock_extended_err is a bad length, never a partial record', () => {
  const { st } = parse(cmsg(0, 11, [1, 2, 3, 4, 5, 6, 7, 8]));
  assert.equal(st, ERR_BAD_LENGTH);
});

test('no extended error at all: missing (timestamp still read)', () => {
  const { st, rec } = parse(cmsg(1, 35, timespec(5, 6)));
  assert.equal(st, ERR_MISSING);
  assert.equal(rec.hasTime, true);
  assert.equal(rec.sec, 5);
});

test('offender sockaddr cut short: the error stands, the offender is absent', () => {
  const b = cmsg(0, 11, extErr({ errno: 113, origin: 2, type: 11, code: 0 }, [2, 0, 0, 0, 10]));
  const { st, off } = parse(b);
  assert.equal(st, OK);
  assert.equal(off, null);
});

test('malformed control bytes before the error: truncated', () => {
  const { st } = parse(new Uint8Array(12));
  assert.equal(st, ERR_TRUNCATED);
});

test('an invalid nsec in the timestamp is not used', () => {
  const { rec } = parse(concat(cmsg(1, 35, timespec(5, 2_000_000_000)), cmsg(0, 11, extErr({ errno: 113, origin: 2, type: 11, code: 0 }, sin([1, 2, 3, 4], 0)))));
  assert.equal(rec.hasTime, false);
});

test('packet info: the interface a reply arrived on (IP_PKTINFO, IPV6_PKTINFO); absent means 0', () => {
  // struct in_pktinfo { ipi_ifindex = 7; ipi_spec_dst; ipi_addr }
  const v4 = concat(V4(11, 0, 113), cmsg(0, 8, [7, 0, 0, 0, 10, 100, 0, 1, 10, 100, 0, 1]));
  assert.equal(parse(v4).rec.ifindex, 7);
  assert.equal(parse(v4).st, OK);
  // struct in6_pktinfo { ipi6_addr (16 bytes); ipi6_ifindex = 300 }
  const v6pi = concat(cmsg(41, 50, [...v6('fd00:706c::1'), 44, 1, 0, 0]), cmsg(41, 25, extErr({ errno: 113, origin: 3, type: 3, code: 0 }, sin6(v6('fd00:706c::2'), 0))));
  assert.equal(parse(v6pi).rec.ifindex, 300);
  assert.equal(parse(V4(11, 0, 113)).rec.ifindex, 0);
  // Cut short: not read.
  assert.equal(parse(concat(V4(11, 0, 113), cmsg(0, 8, [7, 0, 0, 0]))).rec.ifindex, 0);
});

test('a send timestamp: origin TIMESTAMPING, the id in ee_data, the device\'s time in SCM_TIMESTAMPING ts[0]', () => {
  // struct scm_timestamping: ts[0] software, ts[1] deprecated, ts[2] hardware (zero here).
  const stamps = concat(timespec(1_700_000_001, 5_000), timespec(0, 0), timespec(0, 0));
  const { st, rec, off } = parse(concat(cmsg(1, 37, stamps), cmsg(0, 11, extErr({ errno: 42, origin: 4, type: 0, code: 0, info: 0, data: 1234 }, []))));
  assert.equal(st, OK);
  assert.deepEqual(
    { errno: rec.errno, origin: rec.origin, info: rec.info, data: rec.data, off, hasSw: rec.hasSwTime, swSec: rec.swSec, swNsec: rec.swNsec, hasTime: rec.hasTime },
    { errno: 42, origin: 4, info: 0, data: 1234, off: null, hasSw: true, swSec: 1_700_000_001, swNsec: 5_000, hasTime: false },
  );
  // Only a hardware time (ts[2]) or a short record: no software time.
  assert.equal(parse(concat(cmsg(1, 37, concat(timespec(0, 0), timespec(0, 0), timespec(9, 9))), cmsg(0, 11, extErr({ errno: 42, origin: 4, type: 0, code: 0 }, [])))).rec.hasSwTime, false);
  assert.equal(parse(concat(cmsg(1, 37, timespec(5, 5)), cmsg(0, 11, extErr({ errno: 42, origin: 4, type: 0, code: 0 }, [])))).rec.hasSwTime, false);
});
