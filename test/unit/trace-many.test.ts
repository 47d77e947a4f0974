/**
 * The parts of a multi-target trace that need no network: the shared in-flight cap, the text
 * view that prints whole traces in the order given while they run at once, and the targets file.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TraceBlocks } from '../../src/render/trace-blocks.js';
import type { TraceEvent } from '../../src/trace/events.js';
import { parseTargetList } from '../../src/trace/multi.js';
import { InflightPool } from '../../src/probe/pool.js';

test('InflightPool: takes at most the cap, wakes every waiter once when room comes back', () => {
  const p = new InflightPool(4);
  p.take(3);
  assert.equal(p.free, 1);
  assert.throws(() => p.take(2), RangeError);
  let a = 0;
  let b = 0;
  const wa = () => a++;
  p.wait(wa);
  p.wait(() => b++);
  p.wait(wa); // the same waiter twice is woken once
  p.give(2);
  assert.deepEqual([a, b, p.free, p.inFlight], [1, 1, 3, 1]);
  p.give(1);
  assert.deepEqual([a, b], [1, 1], 'a waiter is woken once, not on every give');
  p.wait(wa);
  p.leave(wa);
  p.take(1);
  p.give(1);
  assert.equal(a, 1, 'a waiter that left is not woken');
  assert.throws(() => p.give(1), RangeError, 'no more back than was taken');
  assert.throws(() => new InflightPool(0), RangeError);
});

/** A view that writes one line per event: its type and the target in its start. */
const view = (write: (l: string) => void) => ({ event: (e: TraceEvent) => write(`${e.type === 'start' ? `start ${e.target}` : e.type}`) });
const ev = (type: string, target = '') => ({ schema: 'pathlens.trace/1', type, t_ms: 0, target }) as unknown as TraceEvent;

test('TraceBlocks: whole traces in the order given, the first unfinished one as it goes', async () => {
  const out: string[] = [];
  const blocks = new TraceBlocks((l) => out.push(l), 3, view);
  const [s0, s1, s2] = [0, 1, 2].map((i) => blocks.sink(i));
  s1.event(ev('start', 'B'));
  s0.event(ev('start', 'A'));
  s2.event(ev('start', 'C'));
  s1.event(ev('hop'));
  assert.deepEqual(out, ['start A'], 'only the first trace prints while it runs');
  s2.event(ev('done'));
  await s2.end!();
  assert.deepEqual(out, ['start A'], 'a later trace that ended waits for those before it');
  s0.event(ev('hop'));
  s0.event(ev('done'));
  await s0.end!();
  assert.deepEqual(out, ['start A', 'hop', 'done', '', 'start B', 'hop'], 'the next trace comes out, then goes on live');
  s1.event(ev('done'));
  await s1.end!();
  assert.deepEqual(out, ['start A', 'hop', 'done', '', 'start B', 'hop', 'done', '', 'start C', 'done']);
});

test('a targets file: one a line, blank lines and # comments skipped', () => {
  assert.deepEqual(parseTargetList('# lab\n192.0.2.1\n\n  2001:db8::1  # v6\r\nexample.net\n#\n'), ['192.0.2.1', '2001:db8::1', 'example.net']);
  assert.deepEqual(parseTargetList('\n# nothing\n'), []);
});
