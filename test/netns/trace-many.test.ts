/**
 * Several targets in one run (`pathlens trace A B C`, `--targets FILE`) over real routers, as uid
 * 65534: every target gets a whole trace of its own (start..done, every event tagged with it, the
 * same hops as when traced alone), the traces overlap in time, and their probes out at once never
 * exceed the one -N cap; the text view prints whole traces in the order given; a target that
 * cannot start fails alone, with one line at the end and a non-zero exit.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chain } from '../../src/lab/presets.js';
import type { LabState } from '../../src/lab/lab.js';
import type { DoneEvent, HopEvent, TraceEvent } from '../../src/trace/events.js';
import { CLI, addrOf, labName, nodeNs, parseEvents, runIn, trace, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const NOBODY = 65534;
const opt = rootOnly();
const CAP = 5;

const many = (st: LabState, args: string[]) => runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '-n', ...args], { uid: NOBODY });

/** The lab's targets: the far end and a middle router, over both families. */
function targetsOf(st: LabState): string[] {
  return [addrOf(st, 'dst', 4), addrOf(st, 'r2', 4), addrOf(st, 'dst', 6), addrOf(st, 'r3', 6)];
}

test('trace A B C D: one whole trace per target, the same hops as alone, all under one -N cap, at once', opt, async () => {
  // 1 ms per link: a probe to the far end is out for about 10 ms, so the traces overlap.
  await withLab(chain({ name: labName('tm'), routers: 4, delayMs: 1 }), async (st) => {
    const targets = targetsOf(st);
    const run = await many(st, ['--jsonl', '-N', String(CAP), '-q', '2', ...targets]);
    assert.equal(run.code, 0, run.stderr);
    const events = parseEvents(run.stdout);
    const byTarget = new Map<string, TraceEvent[]>(targets.map((t) => [t, []]));
    for (const e of events) {
      assert.ok(e.target !== undefined && byTarget.has(e.target), `every event names one of the targets: ${JSON.stringify(e)}`);
      byTarget.get(e.target)!.push(e);
    }
    // Probes out across the run, at every point of the merged stream, and how many traces had some out.
    const out = new Map<string, Set<number>>(targets.map((t) => [t, new Set()]));
    let most = 0;
    let mostTraces = 0;
    for (const e of events) {
      const o = out.get(e.target!)!;
      if (e.type === 'probe') o.add(e.seq);
      else if ((e.type === 'reply' && !e.late) || e.type === 'timeout') assert.ok(o.delete(e.seq), `${e.target} seq ${e.seq}: an outcome for a probe that was out`);
      const total = [...out.values()].reduce((n, s) => n + s.size, 0);
      most = Math.max(most, total);
      mostTraces = Math.max(mostTraces, [...out.values()].filter((s) => s.size > 0).length);
    }
    assert.ok(most <= CAP, `at most ${CAP} probes out at once over all targets (saw ${most})`);
    assert.equal(most, CAP, 'the cap is used in full');
    assert.ok(mostTraces >= 2, 'the traces ran at the same time');
    for (const t of targets) {
      const ev = byTarget.get(t)!;
      assert.equal(ev[0].type, 'start');
      assert.equal(ev.at(-1)!.type, 'done');
      assert.equal(ev.filter((e) => e.type === 'start' || e.type === 'done').length, 2, `${t}: one start, one done`);
      for (const s of out.get(t)!) assert.fail(`${t}: probe ${s} has no outcome`);
      const d = ev.at(-1) as DoneEvent;
      assert.equal(d.reason, 'reached', t);
      // Alone, the same target gives the same hops.
      const alone = await trace(st, 'src', t, ['-q', '2'], NOBODY);
      const hops = (x: TraceEvent[]) => x.filter((e): e is HopEvent => e.type === 'hop').map((h) => h.addrs);
      assert.deepEqual(hops(ev), hops(alone.events), `${t}: the hops traced alone`);
    }
  });
});

test('the text view: whole traces in the order given; --targets FILE adds its targets; one that cannot start fails alone', opt, async () => {
  await withLab(chain({ name: labName('tm'), routers: 3, delayMs: 1 }), async (st) => {
    const [far4, mid4, far6, mid6] = targetsOf(st);
    const text = await many(st, ['-N', '4', '-q', '1', far4, mid4, far6, mid6]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.split('\n');
    const heads = lines.flatMap((l, i) => (l.startsWith('pathlens trace to ') ? [i] : []));
    assert.deepEqual(
      heads.map((i) => lines[i].split(' ')[3].replace(',', '')),
      [far4, mid4, far6, mid6],
      'one block per target, in the order given',
    );
    for (let k = 0; k < heads.length; k++) {
      const end = k + 1 < heads.length ? heads[k + 1] : lines.length;
      const block = lines.slice(heads[k], end);
      const dones = block.filter((l) => l.startsWith('-- reached'));
      assert.equal(dones.length, 1, `block ${k} ends with its own result, before the next begins`);
      assert.ok(dones[0].includes([far4, mid4, far6, mid6][k]));
    }

    const dir = mkdtempSync(join(tmpdir(), 'pl-targets-'));
    chmodSync(dir, 0o755); // the traces run as uid 65534
    try {
      const file = join(dir, 'targets.txt');
      // -4 makes the IPv6 literal a target that cannot start; the others still run.
      writeFileSync(file, `# lab targets\n${mid4}\n\n   ${far6}   # this one cannot go over IPv4\n`);
      const run = await many(st, ['-4', '--jsonl', '--targets', file, far4]);
      assert.equal(run.code, 1, 'a failed target makes the run fail');
      const errLines = run.stderr.trim().split('\n');
      assert.equal(errLines.length, 1, run.stderr);
      assert.match(errLines[0], new RegExp(`^pathlens: 1 of 3 traces failed \\(${far6.replace(/\./g, '\\.')}: `));
      const events = parseEvents(run.stdout);
      const done = (t: string) => events.filter((e) => e.target === t && e.type === 'done') as DoneEvent[];
      assert.equal(done(far4)[0]?.reason, 'reached');
      assert.equal(done(mid4)[0]?.reason, 'reached');
      assert.deepEqual(
        events.filter((e) => e.target === far6).map((e) => e.type),
        ['error'],
        'the target that cannot start: one error event in its own name',
      );
      const missing = await many(st, ['--targets', join(dir, 'none.txt')]);
      assert.equal(missing.code, 2);
      assert.equal(missing.stderr.trim(), `pathlens: --targets ${join(dir, 'none.txt')}: no such file`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const rounds = await many(st, ['-c', '2', far4, mid4]);
    assert.equal(rounds.code, 2);
    assert.match(rounds.stderr, /^pathlens: continuous mode .* follows one target/);
  });
});
