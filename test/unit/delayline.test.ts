import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DelayLine, Rng } from '../../src/lab/impair/delayline.js';

function setup(imp: ConstructorParameters<typeof DelayLine>[5], arena = 4096, entries = 64) {
  const mem = new Uint8Array(1024 + arena);
  const line = new DelayLine(mem, 1024, arena, entries, 32, imp, 42);
  const meta = new Int32Array(32 * 6);
  /** Admits a frame of n bytes filled with `tag`. */
  const admit = (tag: number, n: number, at: number) => {
    mem.fill(tag, 0, n);
    return line.admit(0, n, at);
  };
  /** Pops everything due by `until`; returns [tag, len] of each, releasing them as sent. */
  const pop = (until: number) => {
    const out: [number, number][] = [];
    for (;;) {
      const k = line.popDue(until, meta, 32);
      if (k === 0) return out;
      for (let i = 0; i < k; i++) out.push([mem[meta[i * 6]], meta[i * 6 + 1]]);
      line.release(k);
    }
  };
  return { line, admit, pop };
}

test('constant delay: nothing before it is due, everything after, in order', () => {
  const { admit, pop, line } = setup({ delay_ms: 10 });
  admit(1, 100, 0);
  admit(2, 60, 0.5);
  admit(3, 80, 1);
  assert.deepEqual(pop(9.99), []);
  assert.equal(line.nextDue(), 10);
  assert.deepEqual(pop(10.5), [
    [1, 100],
    [2, 60],
  ]);
  assert.deepEqual(pop(20), [[3, 80]]);
  assert.equal(line.queued, 0);
});

test('equal due times leave first-in first-out', () => {
  const { admit, pop } = setup({ delay_ms: 0 });
  for (let t = 1; t <= 20; t++) admit(t, 10, 5);
  assert.deepEqual(
    pop(5).map(([t]) => t),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});

test('the arena wraps around and reuses freed space without corrupting frames', () => {
  const { admit, pop } = setup({ delay_ms: 1 }, 1000, 64);
  let t = 0;
  for (let round = 0; round < 50; round++) {
    admit((round % 250) + 1, 300, t);
    admit(((round + 100) % 250) + 1, 300, t);
    const out = pop(t + 1);
    assert.deepEqual(out, [
      [(round % 250) + 1, 300],
      [((round + 100) % 250) + 1, 300],
    ]);
    t += 2;
  }
});

test('overflow: a full arena drops and counts, never overwrites', () => {
  const { admit, pop, line } = setup({ delay_ms: 5 }, 1000, 64);
  assert.equal(admit(1, 400, 0), 1);
  assert.equal(admit(2, 400, 0), 1);
  assert.equal(admit(3, 400, 0), 0);
  assert.equal(line.stats.overflow, 1);
  assert.deepEqual(pop(5), [
    [1, 400],
    [2, 400],
  ]);
});

test('loss rate p is met within a binomial bound (10,000 frames)', () => {
  for (const p of [0.01, 0.1, 0.5]) {
    const { admit, pop, line } = setup({ loss: p }, 1 << 20, 16384);
    for (let i = 0; i < 10000; i++) admit(1, 10, i);
    pop(1e9);
    const sd = Math.sqrt(10000 * p * (1 - p));
    assert.ok(Math.abs(line.stats.dropped - 10000 * p) < 4 * sd, `p=${p}: dropped ${line.stats.dropped}`);
    assert.equal(line.stats.sent + line.stats.dropped, 10000);
  }
});

test('duplication sends a frame twice; reorder lets frames skip the delay', () => {
  const d = setup({ duplicate: 1 });
  d.admit(7, 10, 0);
  assert.deepEqual(d.pop(0), [
    [7, 10],
    [7, 10],
  ]);
  const r = setup({ delay_ms: 10, reorder: 1 });
  r.admit(1, 10, 0);
  assert.deepEqual(r.pop(0), [[1, 10]]);
});

test('jitter stays within ±jitter of the delay', () => {
  const { admit, line } = setup({ delay_ms: 10, jitter_ms: 2 }, 1 << 16, 4096);
  for (let i = 0; i < 2000; i++) admit(1, 10, 0);
  const meta = new Int32Array(32 * 6);
  let min = Infinity;
  let max = -Infinity;
  for (;;) {
    const d = line.nextDue();
    if (d === Infinity) break;
    min = Math.min(min, d);
    max = Math.max(max, d);
    const k = line.popDue(d, meta, 32);
    line.release(k);
  }
  assert.ok(min >= 8 && max <= 12, `${min}..${max}`);
  assert.ok(min < 8.1 && max > 11.9, 'the whole range is used');
});

test('rate: serialization spaces frames by size/rate', () => {
  const { admit, line } = setup({ rate_mbit: 8 }); // 8 Mbit/s = 8000 bits/ms: 1000 bytes take 1 ms
  admit(1, 1000, 0);
  admit(2, 1000, 0);
  const meta = new Int32Array(32 * 6);
  assert.equal(line.nextDue(), 1);
  line.release(line.popDue(1, meta, 32));
  assert.equal(line.nextDue(), 2);
});

test('the rng is deterministic per seed and roughly uniform', () => {
  const a = new Rng(7);
  const b = new Rng(7);
  let sum = 0;
  for (let i = 0; i < 10000; i++) {
    const x = a.next();
    assert.equal(x, b.next());
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(Math.abs(sum / 10000 - 0.5) < 0.02);
});
