/**
 * The shim's BPF surface beyond tc and XDP, each path proven with a tiny real program
 * (bpf/features.bpf.c) before a capability relies on it: read-only data set before load, per-program
 * autoload, a program type set for a section this libbpf does not know (netfilter), and the
 * attachments tp_btf, raw tracepoint, classic tracepoint (perf event link) and netfilter link (in
 * one lab namespace). Every attachment is an fd: closing it stops the counting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BPF_NETFILTER, BPF_PROG_TYPE_NETFILTER, attachNetfilter, attachRawTracepoint, attachTracepoint, type Attachment } from '../../src/bpf/attach.js';
import { u64 } from '../../src/bpf/maps.js';
import { BpfObject, bpfObjectPath } from '../../src/bpf/object.js';
import { inNamespace } from '../../src/io/placement.js';
import { chain } from '../../src/lab/presets.js';
import { native } from '../../src/native/index.js';
import { labName, nodeNs, runIn, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';
import { ensureTracefs } from '../helpers/tracefs.js';

const opt = rootOnly();
const SLOTS = ['tp_btf', 'raw_tp', 'tracepoint', 'netfilter'] as const;
const WEIGHT = 7;

function open(): BpfObject {
  const obj = BpfObject.open(bpfObjectPath('features.bpf.o'), 'features');
  const rodata = new Uint8Array(8);
  new DataView(rodata.buffer).setBigUint64(0, BigInt(WEIGHT), true);
  obj.setInitialValue('.rodata', rodata);
  obj.setProgType('pl_netfilter', BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER);
  return obj;
}

function hits(obj: BpfObject): Record<(typeof SLOTS)[number], number> {
  const fd = obj.mapFd('pl_hits');
  const key = new Uint8Array(4);
  const val = new Uint8Array(8);
  const out = {} as Record<(typeof SLOTS)[number], number>;
  SLOTS.forEach((name, i) => {
    new DataView(key.buffer).setUint32(0, i, true);
    assert.equal(native().bpfMapLookup(fd, key, val), 0);
    out[name] = u64(new DataView(val.buffer), 0);
  });
  return out;
}

test('BPF surface: rodata before load, autoload, program type for unknown sections; tp_btf, raw_tp, tracepoint and netfilter attachments count real packets and stop when closed', opt, async () => {
  ensureTracefs();
  // Autoload: a program turned off is not loaded; the others are.
  const partial = open();
  try {
    partial.setAutoload('pl_tracepoint', false);
    partial.load();
    assert.ok(native().bpfProgFd(partial.rawHandle(), 'pl_tracepoint') < 0, 'pl_tracepoint was not loaded');
    assert.ok(partial.progFd('pl_raw_tp') >= 0);
  } finally {
    partial.close();
  }

  await withLab(chain({ name: labName('ba'), routers: 1 }), async (st) => {
    const ns = nodeNs(st, 'r1');
    const obj = open();
    const attached: Attachment[] = [];
    try {
      obj.load();
      attached.push(attachRawTracepoint(obj.progFd('pl_tp_btf'), null));
      attached.push(attachRawTracepoint(obj.progFd('pl_raw_tp'), 'netif_receive_skb'));
      attached.push(attachTracepoint(obj.progFd('pl_tracepoint'), 'net', 'netif_receive_skb'));
      attached.push(inNamespace(ns, () => attachNetfilter(obj.progFd('pl_netfilter'), 'ipv4', 'input', -128)));
      assert.deepEqual(
        attached.map((a) => a.how),
        ['tp_btf', 'raw_tp', 'tracepoint', 'netfilter'],
      );
      const ping = await runIn(ns, ['ping', '-c', '3', '-i', '0.05', '127.0.0.1']);
      assert.equal(ping.code, 0, ping.stderr);
      const during = hits(obj);
      for (const s of SLOTS) {
        assert.ok(during[s] >= 3 * WEIGHT, `${s}: ${during[s]} (three echoes, weight ${WEIGHT})`);
        assert.equal(during[s] % WEIGHT, 0, `${s}: counted by the weight set in .rodata`);
      }
      for (const a of attached) a.detach();
      const after = hits(obj);
      const again = await runIn(ns, ['ping', '-c', '3', '-i', '0.05', '127.0.0.1']);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(hits(obj), after, 'closed attachments count nothing more');
    } finally {
      for (const a of attached) a.detach();
      obj.close();
    }
  });
});
