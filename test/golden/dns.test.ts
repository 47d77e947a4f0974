/**
 * The DNS codec on known bytes: a query as RFC 1035 lays it out, a response written by hand with
 * compression pointers and an RFC 2317 CNAME, hostile names (control bytes, loops, forward
 * pointers), and the lab server's answers read back by the resolver's parser.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DnsMessage, RCODE_NXDOMAIN, RCODE_REFUSED, encodeQuery, parseMessage, ptrAnswer, readName, reverseName } from '../../src/resolve/dns.js';
import { LabDnsServer } from '../../src/lab/dns/server.js';
import { parseIp } from '../../src/packet/addr.js';
import { parseServer } from '../../src/resolve/reverse.js';

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));

test('reverse names: in-addr.arpa and ip6.arpa nibbles', () => {
  assert.equal(reverseName(parseIp('10.100.3.2')), '2.3.100.10.in-addr.arpa');
  assert.equal(reverseName(parseIp('2001:db8::567:89ab')), 'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
});

test('a PTR query, byte for byte', () => {
  const b = new Uint8Array(512);
  const n = encodeQuery(b, 0x1234, '2.3.100.10.in-addr.arpa');
  assert.deepEqual(
    b.subarray(0, n),
    hex(`1234 0100 0001 0000 0000 0000
         01 32 01 33 03 313030 02 3130 07 696e2d61646472 04 61727061 00
         000c 0001`),
  );
});

// A response to the query above: the PTR's owner is a pointer to the question (offset 12), the
// second target "r4" ends with a pointer to the "lab" of the first (offset 0x38).
const RESPONSE = hex(`1234 8580 0001 0002 0000 0000
  01 32 01 33 03 313030 02 3130 07 696e2d61646472 04 61727061 00  000c 0001
  c00c 000c 0001 00000e10 0008  02 7233 03 6c6162 00
  c00c 000c 0001 0000003c 0005  02 7234 c038`);

test('a hand-written response: compression pointers, two PTRs, the smaller TTL', () => {
  const m = parseMessage(RESPONSE) as DnsMessage;
  assert.ok(!('error' in m));
  assert.equal(m.id, 0x1234);
  assert.equal(m.response, true);
  assert.equal(m.rcode, 0);
  assert.deepEqual(m.question, { name: '2.3.100.10.in-addr.arpa', type: 12, cls: 1 });
  assert.deepEqual(m.answers.map((a) => [a.name, a.ttl, a.target]), [
    ['2.3.100.10.in-addr.arpa', 3600, 'r3.lab'],
    ['2.3.100.10.in-addr.arpa', 60, 'r4.lab'],
  ]);
  assert.deepEqual(ptrAnswer(m, 0x1234, '2.3.100.10.IN-ADDR.ARPA.'), { rcode: 0, names: ['r3.lab', 'r4.lab'], ttl: 60 });
  assert.equal(ptrAnswer(m, 0x1235, '2.3.100.10.in-addr.arpa'), 'id 4660 is not the query\'s 4661');
  assert.equal(ptrAnswer(m, 0x1234, '9.3.100.10.in-addr.arpa'), 'the response is for another question');
});

test('RFC 2317 classless delegation: a CNAME in the answer is followed to the PTR', () => {
  const b = hex(`0001 8180 0001 0002 0000 0000
    01 35 01 32 01 30 03 313932 07 696e2d61646472 04 61727061 00 000c 0001
    c00c 0005 0001 00000100 0008 01 35 03 302d37 c010
    c034 000c 0001 00000200 0006 03 686f73 c036`);
  const m = parseMessage(b) as DnsMessage;
  assert.ok(!('error' in m), JSON.stringify(m));
  assert.deepEqual(ptrAnswer(m, 1, '5.2.0.192.in-addr.arpa'), { rcode: 0, names: ['hos.0-7.0.192.in-addr.arpa'], ttl: 256 });
});

test('hostile names: control bytes are escaped, loops and forward pointers refused, 255-byte limit', () => {
  // A label with ESC [ 2 J (clear screen) and a dot inside it.
  const evil = hex('05 1b5b324a2e 02 6f6b 00');
  assert.deepEqual(readName(evil, 0, evil.length), ['\\027\\0912J\\046.ok', evil.length]);
  assert.equal(readName(hex('c000'), 0, 2), 'compression pointer does not point backwards');
  assert.equal(readName(hex('00 c002'), 1, 3), 'compression pointer does not point backwards');
  assert.equal(readName(hex('03 6162'), 0, 3), 'label runs past the message');
  assert.equal(readName(hex('40'), 0, 1), 'reserved label type');
  const long = new Uint8Array(300);
  for (let i = 0; i + 64 < 300; i += 64) long[i] = 63;
  assert.equal(readName(long, 0, long.length), 'name longer than 255 bytes');
  assert.match((parseMessage(hex('1234 8180 0001')) as { error: string }).error, /shorter than the 12-byte header/);
  assert.match((parseMessage(RESPONSE.subarray(0, RESPONSE.length - 3)) as { error: string }).error, /answer 2/);
});

test('the lab server: PTR for its addresses, NXDOMAIN for others, REFUSED outside reverse zones; the parser reads it back', () => {
  const srv = new LabDnsServer({ lab: 't', records: { '10.100.0.2': 'r1.t.pathlens.test', 'fd00:706c::2': 'r1.t.pathlens.test' }, ttl: 300, port: 53, logPath: '/dev/null', readyPath: '/dev/null' });
  const ask = (name: string, type = 12) => {
    const q = new Uint8Array(512);
    const n = encodeQuery(q, 77, name, type);
    const r = srv.answer(q.subarray(0, n));
    return parseMessage(r.reply!) as DnsMessage;
  };
  for (const a of ['10.100.0.2', 'fd00:706c::2']) {
    const q = reverseName(parseIp(a));
    assert.deepEqual(ptrAnswer(ask(q), 77, q), { rcode: 0, names: ['r1.t.pathlens.test'], ttl: 300 });
  }
  assert.equal(ask(reverseName(parseIp('10.100.0.9'))).rcode, RCODE_NXDOMAIN);
  assert.equal(ask('example.org', 1).rcode, RCODE_REFUSED);
  assert.equal(srv.answer(hex('0102')).reply, null);
});

test('name server argument: ADDR, ADDR:PORT, [V6]:PORT; anything else is a usage error', () => {
  assert.equal(parseServer('10.100.0.1').text, '10.100.0.1:53');
  assert.equal(parseServer('10.100.0.1:5353').port, 5353);
  assert.equal(parseServer('[fd00::1]:54').text, '[fd00::1]:54');
  assert.equal(parseServer('fd00::1').port, 53);
  assert.throws(() => parseServer('ns.example'), /give an IP address/);
  assert.throws(() => parseServer('10.0.0.1:0'), /port must be/);
});
