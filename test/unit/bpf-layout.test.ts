/**
 * The kernel side (bpf/pping.h, compiled into bpf/obj/pping.bpf.o) and the user side
 * (src/pping/bpf-layout.ts) must agree on every struct crossing the boundary: each offset and size
 * that TypeScript uses is compared with the object's BTF.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CONFIG, DIR, EVENT, FLOW, FLOW_KEY, STAMP, STAMP_KEY } from '../../src/pping/bpf-layout.js';
import { IDENTIFIERS, PacketIds } from '../../src/pping/identify.js';
import { btfStructs } from '../helpers/btf.js';
import * as KT from '../../src/ktrace/layout.js';
import { ROOT } from '../helpers/lab.js';

const structs = btfStructs(join(ROOT, 'bpf', 'obj', 'pping.bpf.o'));

const cases: Array<[string, Record<string, number>]> = [
  ['pping_flow_key', FLOW_KEY],
  ['pping_dir', DIR],
  ['pping_flow', FLOW],
  ['pping_stamp_key', STAMP_KEY],
  ['pping_stamp', STAMP],
  ['pping_config', CONFIG],
  ['pping_event', EVENT],
];

for (const [name, ts] of cases) {
  test(`struct ${name}: TypeScript offsets match the object's BTF`, () => {
    const s = structs.get(name);
    assert.ok(s, `struct ${name} is in the BTF`);
    for (const [field, off] of Object.entries(ts)) {
      if (field === 'size') assert.equal(off, s.size, `sizeof(struct ${name})`);
      else assert.equal(off, s.members.get(field), `offsetof(struct ${name}, ${field})`);
    }
  });
}

const ktrace = btfStructs(join(ROOT, 'bpf', 'obj', 'ktrace.bpf.o'));
for (const [name, ts] of [
  ['kt_key', KT.KEY],
  ['kt_trip', KT.TRIP],
  ['kt_record', KT.RECORD],
  ['kt_config', KT.CONFIG],
  ['kt_plan', KT.PLAN],
] as Array<[string, Record<string, number>]>) {
  test(`struct ${name} (ktrace): TypeScript offsets match the object's BTF`, () => {
    const s = ktrace.get(name);
    assert.ok(s, `struct ${name} is in the BTF`);
    for (const [field, off] of Object.entries(ts)) {
      if (field === 'size') assert.equal(off, s.size, `sizeof(struct ${name})`);
      else assert.equal(off, s.members.get(field), `offsetof(struct ${name}, ${field})`);
    }
  });
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
    assert.match(src, new RegExp(`\\bbool ${fn}\\(struct packet \\*pk, struct pping_config \\*cfg, struct pping_ids \\*ids\\)`), `${fn} in bpf/pping.bpf.c`);
    assert.match(src, new RegExp(`\\b${fn}\\(pk, cfg, ids\\)`), `${fn} in the C dispatch`);
  }
});
