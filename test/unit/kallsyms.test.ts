/** Kernel address naming from kallsyms text: text symbols only, nearest below, honest misses. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Kallsyms } from '../../src/bpf/kallsyms.js';

const TEXT = [
  'ffffffff81000000 T _stext',
  'ffffffff81000100 t helper_one',
  'ffffffff81000200 D some_data',
  'ffffffff81000400 T __dev_queue_xmit',
  'ffffffffc0001000 t veth_xmit\t[veth]',
  'ffffffff81000300 W weak_fn',
  'garbage line',
  '',
].join('\n');

test('kallsyms: an address is named by the text symbol at or below it, with the offset', () => {
  const k = Kallsyms.parse(TEXT);
  assert.equal(k.size, 5, 'data symbols and malformed lines are not functions');
  assert.equal(k.name(0xffffffff81000000n), '_stext+0x0');
  assert.equal(k.name(0xffffffff81000486n), '__dev_queue_xmit+0x86');
  assert.equal(k.name(0xffffffff81000250n), 'helper_one+0x150', 'a data symbol in between does not take the name');
  assert.equal(k.name(0xffffffff81000310n), 'weak_fn+0x10', 'lines need not be sorted');
  assert.equal(k.name(0xffffffffc0001020n), 'veth_xmit+0x20', 'module symbols drop the module tag');
});

test('kallsyms: below the first symbol or far past the last, the address itself, never a guess', () => {
  const k = Kallsyms.parse(TEXT);
  assert.equal(k.name(0xffffffff80000000n), '0xffffffff80000000');
  assert.equal(k.name(0xffffffffc0801000n), '0xffffffffc0801000');
  assert.equal(Kallsyms.parse('').name(1n), '0x1');
});

test('kallsyms: hidden addresses (kptr_restrict) and an unreadable file are one-line refusals', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-ksyms-'));
  const hidden = join(dir, 'kallsyms');
  writeFileSync(hidden, '0000000000000000 T _stext\n0000000000000000 t helper_one\n');
  assert.throws(() => Kallsyms.load(hidden), /shows no addresses \(kernel\.kptr_restrict; not root, CAP_SYSLOG shows them\)/);
  assert.throws(() => Kallsyms.load(join(dir, 'missing')), /cannot read .*missing to name kernel stack frames \(ENOENT\)/);
});
