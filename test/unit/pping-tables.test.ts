/**
 * The passive-RTT tables against a Map model: flows found from either direction and stamps taken
 * once, through growth (a table starts at 1024 slots and doubles up to what its maximum needs),
 * tombstone rebuilds and a full table, with a direction's record moving with its flow.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PacketInfo } from '../../src/pping/decode.js';
import { D_REC_PKTS, DS, FlowTable, StampTable } from '../../src/pping/tables.js';

/** A TCP/IPv4 packet of flow n (10.x.y.z:n%60000 to 10.200.0.1:443), from the client or the server. */
function packet(n: number, fromServer: boolean, p = new PacketInfo()): PacketInfo {
  const client = [10, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  const server = [10, 200, 0, 1];
  p.family = 4;
  p.proto = 6;
  p.bytes = Uint8Array.from([...(fromServer ? server : client), ...(fromServer ? client : server)]);
  p.srcOff = 0;
  p.dstOff = 4;
  p.srcPort = fromServer ? 443 : 1024 + (n % 60000);
  p.dstPort = fromServer ? 1024 + (n % 60000) : 443;
  return p;
}

test('FlowTable: grows from 1024 slots as flows come, finds each from both sides, keeps its records, refuses past its maximum', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('insert', 'insert', 'insert', 'remove', 'find'), fc.integer({ min: 0, max: 5000 })), { maxLength: 4000 }), fc.constantFrom(100, 3000, 6000), (ops, max) => {
      const t = new FlowTable(max);
      const model = new Map<number, number>(); // flow -> its record's marker
      const p = new PacketInfo();
      let marker = 1;
      for (const [op, n] of ops) {
        const slot = t.find(packet(n, false, p), t.hashOf(p));
        assert.equal(slot >= 0, model.has(n), `flow ${n} present as the model says`);
        if (slot >= 0) {
          assert.equal(t.dir, 0);
          assert.equal(t.d[slot * 2 * DS + D_REC_PKTS], model.get(n), 'its record moved with it');
          const back = t.find(packet(n, true, p), t.hashOf(p));
          assert.deepEqual([back, t.dir], [slot, 1], 'found from the other side');
        }
        if (op === 'insert' && slot < 0) {
          const at = t.insert(packet(n, false, p), t.hashOf(p), marker);
          if (model.size >= max) assert.equal(at, -1, 'full');
          else {
            assert.ok(at >= 0);
            t.d[at * 2 * DS + D_REC_PKTS] = marker;
            model.set(n, marker++);
          }
        } else if (op === 'remove' && slot >= 0) {
          t.remove(slot);
          model.delete(n);
        }
        assert.equal(t.size, model.size);
      }
      assert.ok(t.capacitySlots >= 1024 || t.capacitySlots >= max * 2);
      assert.ok(t.capacitySlots <= Math.max(1024, 2 * 2 ** Math.ceil(Math.log2(max))), 'never past what the maximum needs');
    }),
    { numRuns: 60 },
  );
  const small = new FlowTable(16384);
  assert.equal(small.capacitySlots, 1024, 'an empty table starts small');
});

test('StampTable: grows, each stamp taken once, expiry and the maximum as before', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('put', 'put', 'take', 'expire'), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 1000 })), { maxLength: 3000 }), fc.constantFrom(50, 2000), (ops, max) => {
      const t = new StampTable(max);
      const model = new Map<number, { time: number; deadline: number }>();
      let now = 0;
      for (const [op, n, dt] of ops) {
        now += dt;
        const conn = n >> 4;
        const id = n & 15;
        if (op === 'put') {
          const ok = t.put(conn, id, now, now + 500);
          assert.equal(ok, !model.has(n) && model.size < max);
          if (ok) model.set(n, { time: now, deadline: now + 500 });
        } else if (op === 'take') {
          assert.equal(t.take(conn, id), model.get(n)?.time ?? -1);
          model.delete(n);
        } else {
          const gone = [...model].filter(([, v]) => v.deadline < now);
          assert.equal(t.expire(now), gone.length);
          for (const [k] of gone) model.delete(k);
        }
        assert.equal(t.size, model.size);
      }
    }),
    { numRuns: 60 },
  );
});
