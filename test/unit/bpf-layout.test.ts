/**
 * The kernel side (bpf/pping.h, compiled into bpf/obj/pping.bpf.o) and the user side
 * (src/pping/bpf-layout.ts) must agree on every struct crossing the boundary: each offset and size
 * that TypeScript uses is compared with the object's BTF.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CONFIG, DIR, EVENT, FLOW, FLOW_KEY, STAMP, STAMP_KEY, TALLY } from '../../src/pping/bpf-layout.js';
import { IDENTIFIERS, PacketIds } from '../../src/pping/identify.js';
import { btfStructs } from '../helpers/btf.js';
import * as KT from '../../src/ktrace/layout.js';
import * as TR from '../../src/probe/bpf-layout.js';
import * as XSK from '../../src/probe/xsk-layout.js';
import { ROOT } from '../helpers/lab.js';

const structs = btfStructs(join(ROOT, 'bpf', 'obj', 'pping.bpf.o'));

/** Each object, and the structs TypeScript reads from it with their offsets. */
const layouts: Array<[string, ReturnType<typeof btfStructs>, Array<[string, Record<string, number>]>]> = [
  [
    'pping',
    structs,
    [
      ['pping_flow_key', FLOW_KEY],
      ['pping_dir', DIR],
      ['pping_tally', TALLY],
      ['pping_flow', FLOW],
      ['pping_stamp_key', STAMP_KEY],
      ['pping_stamp', STAMP],
      ['pping_config', CONFIG],
      ['pping_event', EVENT],
    ],
  ],
  [
    'ktrace',
    btfStructs(join(ROOT, 'bpf', 'obj', 'ktrace.bpf.o')),
    [
      ['kt_key', KT.KEY],
      ['kt_trip', KT.TRIP],
      ['kt_record', KT.RECORD],
      ['kt_config', KT.CONFIG],
      ['kt_plan', KT.PLAN],
    ],
  ],
  [
    'trace --bpf',
    btfStructs(join(ROOT, 'bpf', 'obj', 'trace.bpf.o')),
    [
      ['tr_config', TR.TR_CONFIG],
      ['tr_sock_key', TR.TR_SOCK_KEY],
      ['tr_sock', TR.TR_SOCK],
      ['tr_key', TR.TR_KEY],
      ['tr_hist_key', TR.TR_HIST_KEY],
      ['tr_probe', TR.TR_PROBE],
      ['tr_event', TR.TR_EVENT],
      ['tr_hist', TR.TR_HIST],
    ],
  ],
  [
    'trace --xdp',
    btfStructs(join(ROOT, 'bpf', 'obj', 'xsk.bpf.o')),
    [
      // struct xsk_stamp has no variable of its own, so no BTF: test/netns/trace-xdp.test.ts reads
      // it from frames the program stamped.
      ['xsk_config', XSK.XSK_CONFIG],
    ],
  ],
];

for (const [object, btf, cases] of layouts) {
  for (const [name, ts] of cases) {
    test(`struct ${name} (${object}): TypeScript offsets match the object's BTF`, () => {
      const s = btf.get(name);
      assert.ok(s, `struct ${name} is in the BTF`);
      for (const [field, off] of Object.entries(ts)) {
        if (field === 'size') assert.equal(off, s.size, `sizeof(struct ${name})`);
        else assert.equal(off, s.members.get(field), `offsetof(struct ${name}, ${field})`);
      }
    });
  }
}

test('every struct pping_event field that TypeScript does not read is padding', () => {
  const s = structs.get('pping_event')!;
  const unread = [...s.members.keys()].filter((m) => !(m in EVENT));
  assert.deepEqual(unread.sort(), ['pad2']);
});

test('pping identifiers by shape: struct pping_ids and PacketIds are one record, and every identifier has its C function of the same name', () => {
  const s = structs.get('pping_ids');
  assert.ok(s, 'struct pping_ids is in the BTF');
  const camel = (x: string) => x.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
  const c = [...s.members.keys()].filter((m) => !m.startsWith('pad')).map(camel).sort();
  assert.deepEqual(c, Object.keys(new PacketIds()).sort(), 'the same fields on both sides');
  const src = readFileSync(join(ROOT, 'bpf', 'pping.bpf.c'), 'utf8');
  for (const name of Object.keys(IDENTIFIERS)) {
    const fn = `identify_${name.replace(/-/g, '_')}`;
    assert.match(src, new RegExp(`\\bbool ${fn}\\(struct packet \\*pk, const volatile struct pping_config \\*cfg, struct pping_ids \\*ids\\)`), `${fn} in bpf/pping.bpf.c`);
    assert.match(src, new RegExp(`\\b${fn}\\(pk, cfg, ids\\)`), `${fn} in the C dispatch`);
  }
});
