/**
 * pcap and pcapng readers on hand-built files: both byte orders, micro- and nanosecond pcap,
 * pcapng with several interfaces, if_tsresol, if_tsoffset and epb_flags direction; then truncated
 * and malformed files, which must end in a PathlensError naming the byte offset (and, through
 * the CLI, one clean line on stderr and exit 1).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ppingEvents } from '../helpers/pping-schema.js';
import { PathlensError } from '../../src/core/errors.js';
import { CaptureReader, CaptureRecord } from '../../src/pping/pcap.js';
import type { PpingEvent, RttEvent } from '../../src/pping/events.js';
import { runOffline } from '../../src/pping/run.js';
import { eth, ipv4, tcpSeg } from '../helpers/bytes.js';
import { block, epb, idb, opt, pcap, shb, u16, u32 } from '../helpers/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'pathlens-pcap-'));
const CLI = join(process.cwd(), 'bin', 'pathlens.js');

function file(name: string, bytes: Uint8Array | number[]): string {
  const p = join(dir, name);
  writeFileSync(p, bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes));
  return p;
}

function readAll(path: string) {
  const r = CaptureReader.open(path);
  const rec = new CaptureRecord();
  const out: { sec: number; nsec: number; len: number; linktype: number; egress: boolean | null; first: number }[] = [];
  try {
    while (r.next(rec)) out.push({ sec: rec.sec, nsec: rec.nsec, len: rec.len, linktype: rec.linktype, egress: rec.egress, first: rec.data[rec.off] });
  } finally {
    r.close();
  }
  return { out, format: r.format };
}

function rejects(path: string, re: RegExp): void {
  assert.throws(
    () => readAll(path),
    (e: unknown) => e instanceof PathlensError && e.code === 'ERR_PARSE' && re.test(e.message),
  );
}

const F1 = [0x11, 2, 3];
const F2 = [0x22, 5, 6, 7, 8];

test('pcap: little- and big-endian, micro- and nanoseconds', () => {
  for (const le of [true, false]) {
    const us = readAll(file(`us-${le}.pcap`, pcap([{ sec: 1700000000, frac: 123456, data: F1 }, { sec: 1700000001, frac: 999999, data: F2 }], { le })));
    assert.equal(us.format, 'pcap');
    assert.deepEqual(us.out, [
      { sec: 1700000000, nsec: 123456000, len: 3, linktype: 1, egress: null, first: 0x11 },
      { sec: 1700000001, nsec: 999999000, len: 5, linktype: 1, egress: null, first: 0x22 },
    ]);
    const ns = readAll(file(`ns-${le}.pcap`, pcap([{ sec: 5, frac: 999999999, data: F1 }], { le, ns: true, linktype: 101 })));
    assert.deepEqual(ns.out, [{ sec: 5, nsec: 999999999, len: 3, linktype: 101, egress: null, first: 0x11 }]);
  }
  assert.deepEqual(readAll(file('empty.pcap', pcap([]))).out, [], 'a header alone is an empty capture');
});

test('pcapng: two interfaces, ns and 2^-20 resolutions, ts offset, direction flags, both byte orders', () => {
  for (const le of [true, false]) {
    const bytes = [
      ...shb(le),
      ...idb(1, le, opt(9, [9], le)), // ns
      ...idb(101, le, [...opt(9, [0x80 | 20], le), ...opt(14, [...u32(le ? 100 : 0, le), ...u32(le ? 0 : 100, le)], le)]), // 2^-20 s, +100 s
      ...block(4, [1, 2, 3, 4], le), // a name-resolution block: skipped
      ...epb(0, 1_700_000_000_123_456_789n, F1, le, opt(2, u32(2, le), le)), // outbound
      ...epb(1, (7n << 20n) + (1n << 19n), F2, le, opt(2, u32(1, le), le)), // 7.5 s + 100, inbound
      ...epb(0, 1n, F1, le),
    ];
    const { out, format } = readAll(file(`two-${le}.pcapng`, bytes));
    assert.equal(format, 'pcapng');
    assert.deepEqual(out, [
      { sec: 1700000000, nsec: 123456789, len: 3, linktype: 1, egress: true, first: 0x11 },
      { sec: 107, nsec: 500000000, len: 5, linktype: 101, egress: false, first: 0x22 },
      { sec: 0, nsec: 1, len: 3, linktype: 1, egress: null, first: 0x11 },
    ]);
  }
});

test('truncated and malformed captures are errors with the byte offset, never guesses', () => {
  const good = pcap([{ sec: 1, frac: 0, data: F2 }]);
  rejects(file('t1.pcap', good.subarray(0, 30)), /record header cut short \(6 of 16 bytes\) \(at byte 24\)/);
  rejects(file('t2.pcap', good.subarray(0, good.length - 2)), /record cut short \(3 of 5 bytes\)/);
  rejects(file('t3.pcap', good.subarray(0, 10)), /pcap file header cut short/);
  rejects(file('magic.pcap', [1, 2, 3, 4, 5, 6, 7, 8]), /not a pcap or pcapng file \(magic 0x01020304\)/);
  rejects(file('zero.pcap', []), /empty/);
  const big = pcap([{ sec: 1, frac: 0, data: F1 }]);
  big.set(u32(0x7fffffff, true), 24 + 8);
  rejects(file('huge.pcap', big), /record claims 2147483647 bytes/);
  const frac = pcap([{ sec: 1, frac: 1_000_000, data: F1 }]);
  rejects(file('frac.pcap', frac), /fraction of a second out of range/);
  const le = true;
  const ng = [...shb(le), ...idb(1, le), ...epb(0, 5n, F1, le)];
  rejects(file('ng-trunc.pcapng', ng.slice(0, ng.length - 3)), /block cut short/);
  const badTrailer = [...ng];
  badTrailer[badTrailer.length - 4] ^= 4;
  rejects(file('ng-trailer.pcapng', badTrailer), /trailer length differs/);
  rejects(file('ng-noif.pcapng', [...shb(le), ...epb(0, 5n, F1, le)]), /interface 0, which no interface block described/);
  rejects(file('ng-len.pcapng', [...shb(le), ...u32(6, le), ...u32(13, le), 0, 0, 0, 0]), /block length 13/);
  rejects(file('ng-res.pcapng', [...shb(le), ...idb(1, le, opt(9, [12], le)), ...epb(0, 5n, F1, le)]), /10\^-12 is finer than supported/);
  const capPast = [...shb(le), ...idb(1, le), ...epb(0, 5n, F1, le)];
  capPast.splice(capPast.length - 4 - 4 - 4 - 4, 4, ...u32(200, le)); // captured length 200 in a small block
  rejects(file('ng-cap.pcapng', capPast), /captured length 200 runs past the block/);
});

test('offline pping over a pcap: RTT events from the same rules; the CLI reports bad files in one line', async () => {
  const A = [10, 0, 0, 1];
  const B = [10, 0, 0, 2];
  const frame = (src: number[], dst: number[], s: number[]) => eth(0x0800, [...ipv4(src, dst, 6, s.length, 64), ...s]);
  // The first TSval of a connection is only the edge to wait for; the next one is timestamped.
  const d0 = tcpSeg({ sport: 40000, dport: 80, flags: 0x18, ts: [76, 1], payload: 50 });
  const d = tcpSeg({ sport: 40000, dport: 80, flags: 0x18, ts: [77, 1], payload: 50 });
  const a = tcpSeg({ sport: 80, dport: 40000, flags: 0x10, ts: [9, 77] });
  const path = file(
    'flow.pcap',
    pcap([
      { sec: 1700000000, frac: 0, data: frame(A, B, d0) },
      { sec: 1700000000, frac: 100, data: frame(A, B, d) },
      { sec: 1700000000, frac: 12_600, data: frame(B, A, a) },
    ]),
  );
  const events: PpingEvent[] = [];
  const done = await runOffline(path, {}, { event: (e) => events.push(e) }).done;
  const rtts = events.filter((e): e is RttEvent => e.type === 'rtt');
  assert.deepEqual(
    rtts.map((r) => [r.rtt, r.src_ip, r.dest_ip, r.sent_packets, r.sent_bytes, r.rec_packets, r.rec_bytes]),
    [[12_500_000, '10.0.0.2', '10.0.0.1', 2, 100, 1, 0]],
    'as ePPing: src echoed; counters of the timestamped direction, payload bytes',
  );
  assert.deepEqual([done.packets, done.considered, done.rtt_events, done.reason], [3, 3, 1, 'end-of-file']);
  for (const fmt of ['standard', 'ppviz', 'json', 'jsonl']) {
    const r = spawnSync(process.execPath, [CLI, 'pping', '-r', path, '-F', fmt], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    if (fmt === 'ppviz') assert.equal(r.stdout, '1700000000.012600000 0.012500000 0.012500000 10.0.0.2:80+10.0.0.1:40000\n');
    if (fmt === 'standard') {
      assert.match(r.stdout, / 12\.5 ms 12\.5 ms TCP 10\.0\.0\.2:80\+10\.0\.0\.1:40000\n/, "ePPing's %.6g figures");
      assert.match(r.stdout, /^\d\d:\d\d:\d\d\.000100000 TCP 10\.0\.0\.2:80\+10\.0\.0\.1:40000 opening due to first observed packet from dest\n/, "opened when the first reply came: the time of its direction's last timestamp");
      assert.match(r.stderr, /^# pping on .* \(pcap\)/, 'run notes go to stderr');
    }
    if (fmt === 'json') {
      const arr = JSON.parse(r.stdout) as Record<string, unknown>[];
      assert.deepEqual(
        arr.map((e) => Object.keys(e)),
        [
          ['timestamp', 'src_ip', 'src_port', 'dest_ip', 'dest_port', 'protocol', 'flow_event', 'reason', 'triggered_by'],
          ['timestamp', 'src_ip', 'src_port', 'dest_ip', 'dest_port', 'protocol', 'rtt', 'min_rtt', 'sent_packets', 'sent_bytes', 'rec_packets', 'rec_bytes', 'match_on_egress'],
        ],
        "ePPing's objects only, its fields in its order",
      );
      for (const e of arr) ppingEvents(JSON.stringify({ schema: 'pathlens.pping/1', type: 'rtt' in e ? 'rtt' : 'flow', ...e, ...('rtt' in e ? {} : { bidirectional: true }) }));
      assert.match(r.stdout, /"timestamp":1700000000012600000,/, 'the epoch ns timestamp is written exactly');
    }
    if (fmt === 'jsonl') {
      assert.deepEqual(
        ppingEvents(r.stdout).map((e) => e.type),
        ['start', 'flow', 'rtt', 'done'],
        'every line valid against schema/pping-v1.schema.json',
      );
    }
  }
  const agg = spawnSync(process.execPath, [CLI, 'pping', '-r', path, '--aggregate', '1', '-F', 'jsonl'], { encoding: 'utf8' });
  assert.equal(agg.status, 0, agg.stderr);
  const aggEvents = ppingEvents<{ type: string; prefix?: string; rtt_count?: number; rtt_p50?: number }>(agg.stdout);
  assert.deepEqual(
    aggEvents.map((e) => [e.type, e.prefix, e.rtt_count, e.rtt_p50]),
    [
      ['start', undefined, undefined, undefined],
      ['aggregate', '10.0.0.0/24', 1, 12_500_000],
      ['done', undefined, undefined, undefined],
    ],
  );
  const ppvizAgg = spawnSync(process.execPath, [CLI, 'pping', '-r', path, '--aggregate', '1', '-F', 'ppviz'], { encoding: 'utf8' });
  assert.equal(ppvizAgg.status, 2, 'a usage error');
  assert.equal(ppvizAgg.stderr, 'pathlens: --aggregate has no ppviz form: use -F standard, json or jsonl\n');
  const badProm = spawnSync(process.execPath, [CLI, 'pping', '-r', path, '--prometheus', 'localhost'], { encoding: 'utf8' });
  assert.equal(badProm.status, 2, 'a usage error');
  assert.match(badProm.stderr, /^pathlens: --prometheus localhost: expected ADDR:PORT/);
  for (const [name, bytes] of [
    ['cli-trunc.pcap', pcap([{ sec: 1, frac: 0, data: F2 }]).subarray(0, 40)],
    ['cli-magic.pcap', Uint8Array.from([9, 9, 9, 9])],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, 'pping', '-r', file(name, bytes)], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^pathlens: .*\(at byte \d+\)\n$/);
  }
  const missing = spawnSync(process.execPath, [CLI, 'pping', '-r', join(dir, 'nope.pcap')], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.equal(missing.stderr, `pathlens: cannot read ${join(dir, 'nope.pcap')}: ENOENT\n`);
  const both = spawnSync(process.execPath, [CLI, 'pping'], { encoding: 'utf8' });
  assert.equal(both.status, 2);
  assert.match(both.stderr, /give one of -i IFACE \(live\) or -r FILE \(offline\)/);
});

test("-r - reads standard input, as tcpdump -r - does: the same lines as the file; a cut one names standard input", () => {
  const fix = join(process.cwd(), 'test', 'fixtures', 'epping', 'fixA-r0.pcap');
  const viaFile = spawnSync(process.execPath, [CLI, 'pping', '-r', fix, '-F', 'ppviz'], { encoding: 'utf8' });
  const viaPipe = spawnSync('sh', ['-c', 'cat "$1" | exec "$2" "$3" pping -r - -F ppviz', 'sh', fix, process.execPath, CLI], { encoding: 'utf8' });
  assert.equal(viaPipe.status, 0, viaPipe.stderr);
  assert.ok(viaFile.stdout.split('\n').length > 50, 'samples to compare');
  assert.equal(viaPipe.stdout, viaFile.stdout);
  const cut = spawnSync('sh', ['-c', 'head -c 1000 "$1" | exec "$2" "$3" pping -r - -F ppviz', 'sh', fix, process.execPath, CLI], { encoding: 'utf8' });
  assert.equal(cut.status, 1);
  assert.match(cut.stderr, /\npathlens: standard input: record cut short \(54 of 98 bytes\) \(at byte 930\)\n$/);
});
