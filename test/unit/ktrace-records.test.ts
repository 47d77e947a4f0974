/**
 * ktrace's records on their own: ring-buffer records (struct kt_record, built here byte by byte at
 * the offsets of bpf/ktrace.h) into `rtt` events, trips left in the map into `incomplete` events
 * on a virtual monotonic clock (reported only past the timeout, all of them at the end, in the
 * order the pings were sent, with the kernel's drop reason), and the histogram event.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HIST_SLOTS, KEY, RECORD, REC_COMPLETE, REC_PARTIAL, TRIP } from '../../src/ktrace/layout.js';
import { histogramEvent, tcpFlags, type TripMap, TripDecoder, TripSweeper } from '../../src/ktrace/records.js';
import { STAGES, pathOrder } from '../../src/ktrace/stages.js';

// TX with fentry refused: ip_send_skb is reported as ip_local_out, the rest measured.
const measured = pathOrder(false).filter((s) => s.name !== 'ip_send_skb');
const shape = (rx: boolean) => {
  const m = rx ? pathOrder(true).filter((s) => s.name !== 'ip_send_skb') : measured;
  return {
    rx,
    measured: m,
    hookOf: new Map(m.map((s) => [s.id, `hook-${s.name}`])),
    firstPath: m.filter((s) => s.path === (rx ? 'in' : 'out')),
    secondPath: m.filter((s) => s.path === (rx ? 'out' : 'in')),
  };
};
const stageId = (name: string) => STAGES.find((s) => s.name === name)!.id;

/** struct kt_trip bytes at `off` of `b`: stage times (ns since boot), created, pid, comm, drop. */
function writeTrip(b: Uint8Array, off: number, t: Record<string, number>, extra: { created?: number; pid?: number; comm?: string; dropped?: number; reason?: number; ifOut?: number; ifIn?: number } = {}): void {
  const v = new DataView(b.buffer, b.byteOffset);
  for (const [name, ns] of Object.entries(t)) v.setBigUint64(off + TRIP.t + 8 * stageId(name), BigInt(ns), true);
  v.setBigUint64(off + TRIP.created, BigInt(extra.created ?? 0), true);
  v.setUint32(off + TRIP.pid, extra.pid ?? 0, true);
  v.setUint32(off + TRIP.ifindex_out, extra.ifOut ?? 0, true);
  v.setUint32(off + TRIP.ifindex_in, extra.ifIn ?? 0, true);
  v.setUint32(off + TRIP.drop_reason, extra.reason ?? 0, true);
  b[off + TRIP.dropped] = extra.dropped ?? 0;
  if (extra.comm) b.set(new TextEncoder().encode(extra.comm), off + TRIP.comm);
}

function key(id: number, seq: number): Uint8Array {
  const k = new Uint8Array(KEY.size);
  const v = new DataView(k.buffer);
  v.setUint16(KEY.id, id, true);
  v.setUint16(KEY.seq, seq, true);
  return k;
}

test('a complete trip record is an rtt event: stages in path order from the first reached, wire time between the paths, the process', () => {
  const b = new Uint8Array(RECORD.size + 8);
  const off = 8; // records need not start at 0
  b.set(key(77, 5), off + RECORD.key);
  const base = 5_000_000_000;
  // dev_queue_xmit never reached (a stage a packet can skip): left out, the others kept in order.
  writeTrip(b, off + RECORD.trip, { ip_local_out: base, post_routing: base + 400, tc_egress: base + 900, dev_start_xmit: base + 1500, __netif_receive_skb: base + 60_000, tc_ingress: base + 60_300, ip_rcv: base + 61_000, icmp_rcv: base + 62_500 }, { pid: 4242, comm: 'ping', ifOut: 3, ifIn: 3 });
  const v = new DataView(b.buffer);
  v.setUint32(off + RECORD.kind, REC_COMPLETE, true);
  const dec = new TripDecoder(shape(false), null, new Map());
  const e = dec.rtt(v, b, off, RECORD.size, 12.5)!;
  assert.deepEqual(
    e.stages.map((s) => [s.name, s.hook, s.t_ns]),
    [
      ['ip_local_out', 'hook-ip_local_out', 0],
      ['post_routing', 'hook-post_routing', 400],
      ['tc_egress', 'hook-tc_egress', 900],
      ['dev_start_xmit', 'hook-dev_start_xmit', 1500],
      ['__netif_receive_skb', 'hook-__netif_receive_skb', 60_000],
      ['tc_ingress', 'hook-tc_ingress', 60_300],
      ['ip_rcv', 'hook-ip_rcv', 61_000],
      ['icmp_rcv', 'hook-icmp_rcv', 62_500],
    ],
  );
  assert.deepEqual([e.id, e.seq, e.total_ns, e.wire_ns, e.answer_ns, e.wakeup_ns, e.pid, e.comm, e.ifindex_out, e.ifindex_in, e.t_ms], [77, 5, 62_500, 58_500, null, null, 4242, 'ping', 3, 3, 12.5]);
  // The socket stages: the reply queued on the socket, then read: the reader's wakeup between them.
  writeTrip(b, off + RECORD.trip, { ip_local_out: base, __netif_receive_skb: base + 60_000, icmp_rcv: base + 62_500, sk_data_ready: base + 63_000, sk_read: base + 71_000 }, { pid: 4242, comm: 'ping' });
  const s = dec.rtt(v, b, off, RECORD.size, 0)!;
  assert.deepEqual([s.stages.map((x) => x.name).slice(-2), s.total_ns, s.wakeup_ns], [['sk_data_ready', 'sk_read'], 71_000, 8000]);
  writeTrip(b, off + RECORD.trip, { ip_local_out: base, post_routing: base + 400, tc_egress: base + 900, dev_start_xmit: base + 1500, __netif_receive_skb: base + 60_000, tc_ingress: base + 60_300, ip_rcv: base + 61_000, icmp_rcv: base + 62_500 }, { pid: 4242, comm: 'ping', ifOut: 3, ifIn: 3 });
  // RX: the time between the paths is this host answering; no process.
  const rxDec = new TripDecoder(shape(true), null, new Map());
  writeTrip(b, off + RECORD.trip, { __netif_receive_skb: base, ip_rcv: base + 700, icmp_rcv: base + 1000, ip_local_out: base + 9000, dev_start_xmit: base + 9900 });
  const r = rxDec.rtt(v, b, off, RECORD.size, 0)!;
  assert.deepEqual([r.total_ns, r.wire_ns, r.answer_ns, r.pid, r.comm], [9900, null, 8000, null, null]);
  // Another kind of record, or one cut short: not an event.
  v.setUint32(off + RECORD.kind, REC_COMPLETE + 1, true);
  assert.equal(dec.rtt(v, b, off, RECORD.size, 0), null);
  v.setUint32(off + RECORD.kind, REC_COMPLETE, true);
  assert.equal(dec.rtt(v, b, off, RECORD.size - 1, 0), null);
});

/** A trip map in memory, walked in no particular order (as a hash map is). */
class FakeTrips implements TripMap {
  readonly entries = new Map<string, { key: Uint8Array; value: Uint8Array }>();
  put(k: Uint8Array, value: Uint8Array): void {
    this.entries.set(Buffer.from(k).toString('hex'), { key: k, value });
  }
  walk(f: (key: Uint8Array, v: DataView, off: number) => void): void {
    // One value buffer for all, as the batch walker has: trips at their index.
    const list = [...this.entries.values()].reverse();
    const all = new Uint8Array(list.length * TRIP.size);
    list.forEach((e, i) => all.set(e.value, i * TRIP.size));
    const v = new DataView(all.buffer);
    list.forEach((e, i) => f(e.key, v, i * TRIP.size));
  }
  delete(k: Uint8Array): void {
    this.entries.delete(Buffer.from(k).toString('hex'));
  }
}

test('incomplete trips on a virtual clock: reported once past the timeout (not before), all at the end, in ping order, with the drop reason', () => {
  const map = new FakeTrips();
  let mono = 10_000_000_000; // ns since boot
  const trip = (created: number, t: Record<string, number>, extra = {}) => {
    const b = new Uint8Array(TRIP.size);
    writeTrip(b, 0, t, { created, ...extra });
    return b;
  };
  // seq 3: the request left, no reply (dropped on the way back with a reason the kernel named).
  map.put(key(9, 3), trip(mono, { ip_local_out: mono, post_routing: mono + 500 }, { dropped: 2, reason: 6 }));
  // seq 1, 300 ms later: reached the receive path, nothing dropped that we saw.
  map.put(key(9, 1), trip(mono + 300e6, { ip_local_out: mono + 300e6, __netif_receive_skb: mono + 300e6 + 50_000 }));
  // seq 2, at the same time, dropped with an unnamed reason.
  map.put(key(9, 2), trip(mono + 300e6, { ip_local_out: mono + 300e6 }, { dropped: 1, reason: 99 }));
  const dec = new TripDecoder(shape(false), null, new Map([[6, 'NETFILTER_DROP']]));
  const sweeper = new TripSweeper(map, dec, 1000e6, () => mono);

  mono += 999e6;
  assert.deepEqual(sweeper.sweep(false, 1), [], 'nothing is late 999 ms after the first');
  mono += 1e6;
  const first = sweeper.sweep(false, 2);
  assert.deepEqual(
    first.map((e) => [e.seq, e.why, e.last_stage, e.dropped, e.drop_reason, e.stages.map((s) => s.t_ns)]),
    [[3, 'timeout', 'post_routing', 'reply', 'NETFILTER_DROP', [0, 500]]],
    'exactly at the timeout: the first trip, with the kernel reason named',
  );
  assert.equal(map.entries.size, 2, 'a reported trip leaves the map');
  assert.deepEqual(sweeper.sweep(false, 3), [], 'and is never reported twice');
  // The end of the run: the rest, timed out or not, in the order the pings were sent.
  const rest = sweeper.sweep(true, 4);
  assert.deepEqual(
    rest.map((e) => [e.seq, e.why, e.last_stage, e.dropped, e.drop_reason]),
    [
      [1, 'stopped', '__netif_receive_skb', null, null],
      [2, 'stopped', 'ip_local_out', 'request', 'reason 99'],
    ],
  );
  assert.equal(map.entries.size, 0);
});

test('histogram event: one segment between consecutive measured stages, log2 buckets from their counts', () => {
  const counts = new Float64Array(measured.length * HIST_SLOTS);
  counts[0 * HIST_SLOTS + 0] = 2; // < 1 ns... bucket 0
  counts[0 * HIST_SLOTS + 10] = 5; // >= 1024 ns
  counts[3 * HIST_SLOTS + 16] = 1;
  const e = histogramEvent(counts, measured, 7);
  assert.equal(e.segments.length, measured.length - 1);
  assert.deepEqual(e.segments[0], { from: measured[0].name, to: measured[1].name, buckets: [{ ge_ns: 0, count: 2 }, { ge_ns: 1024, count: 5 }] });
  assert.deepEqual(e.segments[3], { from: measured[3].name, to: measured[4].name, buckets: [{ ge_ns: 65536, count: 1 }] });
  assert.ok(e.segments.filter((_, i) => i !== 0 && i !== 3).every((s) => s.buckets.length === 0));
});

/** Packet mode's key: the addresses and ports from this host's side, the direction, the buffer. */
function packetKey(out: boolean, lport: number, rport: number, family: 4 | 6 = 4): Uint8Array {
  const k = new Uint8Array(KEY.size);
  const v = new DataView(k.buffer);
  k.set(family === 4 ? [10, 0, 0, 1] : [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], KEY.local);
  k.set(family === 4 ? [10, 0, 0, 2] : [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], KEY.remote);
  v.setUint16(KEY.id, lport, true);
  v.setUint16(KEY.seq, rport, true);
  k[KEY.family] = family;
  k[KEY.proto] = 6;
  k[KEY.out] = out ? 1 : 0;
  v.setBigUint64(KEY.skb, 0xffff888000001000n, true);
  return k;
}

test("packet mode: a record is a packet event with the wire's addresses and ports for its direction, TCP seq and flags, how it ended; left in the map, by when it began", () => {
  const m = pathOrder(false);
  const dec = new TripDecoder({ ...shape(false), measured: m, hookOf: new Map(m.map((s) => [s.id, `hook-${s.name}`])), proto: 'tcp', family: 6 }, null, new Map([[6, 'NETFILTER_DROP']]));
  const b = new Uint8Array(RECORD.size);
  const v = new DataView(b.buffer);
  b.set(packetKey(false, 40000, 443, 6), RECORD.key);
  const base = 7_000_000_000;
  writeTrip(b, RECORD.trip, { __netif_receive_skb: base, ip_rcv: base + 900, sk_read: base + 20_000 }, { ifIn: 4 });
  v.setUint16(RECORD.trip + TRIP.len, 252, true);
  v.setUint32(RECORD.trip + TRIP.tcp_seq, 0xfffffff0, true);
  b[RECORD.trip + TRIP.tcp_flags] = 0x18;
  v.setUint32(RECORD.kind, REC_COMPLETE, true);
  const e = dec.packetRecord(v, 0, RECORD.size, 3)!;
  assert.deepEqual(
    [e.dir, e.src, e.sport, e.dst, e.dport, e.len, e.tcp, e.end, e.last_stage, e.total_ns, e.ifindex, e.drop_reason],
    ['in', 'fd00::2', 443, 'fd00::1', 40000, 252, { seq: 0xfffffff0, flags: 'PA' }, 'complete', 'sk_read', 20_000, 4, null],
  );
  v.setUint32(RECORD.kind, REC_PARTIAL, true);
  assert.equal(dec.packetRecord(v, 0, RECORD.size, 3)!.end, 'reused', 'partial, not dropped: its buffer went on');
  b[RECORD.trip + TRIP.dropped] = 1;
  v.setUint32(RECORD.trip + TRIP.drop_reason, 6, true);
  assert.deepEqual([dec.packetRecord(v, 0, RECORD.size, 3)!.end, dec.packetRecord(v, 0, RECORD.size, 3)!.drop_reason], ['dropped', 'NETFILTER_DROP']);
  assert.equal(dec.packetRecord(v, 0, RECORD.size - 1, 3), null, 'a record cut short is refused');
  v.setUint32(RECORD.kind, 9, true);
  assert.equal(dec.packetRecord(v, 0, RECORD.size, 3), null, 'a kind it does not know is refused');

  // Out: the source is this host. Swept after the timeout, in the order the packets began.
  const map = new FakeTrips();
  let mono = 1_000_000_000;
  const t = new Uint8Array(TRIP.size);
  writeTrip(t, 0, { ip_local_out: mono + 5 }, { created: mono + 5, pid: 9, comm: 'curl', ifOut: 2 });
  map.put(packetKey(true, 40000, 443), t);
  const t2 = new Uint8Array(TRIP.size);
  writeTrip(t2, 0, { __netif_receive_skb: mono }, { created: mono });
  const k2 = packetKey(false, 40000, 443);
  k2[KEY.skb] = 0x20; // another buffer
  map.put(k2, t2);
  const sweeper = new TripSweeper(map, dec, 200e6, () => mono);
  assert.deepEqual(sweeper.sweepPackets(false, 1), []);
  mono += 200e6 + 5;
  const late = sweeper.sweepPackets(false, 2);
  assert.deepEqual(
    late.map((p) => [p.dir, p.src.length > 0, p.sport, p.dport, p.end, p.last_stage, p.comm, p.ifindex]),
    [
      ['in', true, 443, 40000, 'timeout', '__netif_receive_skb', null, null],
      ['out', true, 40000, 443, 'timeout', 'ip_local_out', 'curl', 2],
    ],
  );
  assert.equal(map.entries.size, 0);
});

test('TCP flags as tcpdump writes them', () => {
  assert.deepEqual([0x02, 0x12, 0x18, 0x11, 0x04, 0x10, 0x00, 0xc2].map(tcpFlags), ['S', 'SA', 'PA', 'FA', 'R', 'A', '.', 'SEW']);
});
