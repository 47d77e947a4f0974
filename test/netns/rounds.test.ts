/**
 * Continuous mode in the lab: per-hop loss over rounds within binomial bounds behind a lossy link
 * (and inherited by every hop after it), a silent router at 100%; path changes on an ECMP diamond
 * (each round has its own socket, so its own source port and hash); the reports from a real run;
 * the HTML report in headless Chromium (a screenshot that is not blank, the DOM's rows and
 * charts); the node_exporter textfile through promtool; the live view under tmux (columns, keys,
 * and the terminal given back after q and after SIGTERM).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { chain, ecmp } from '../../src/lab/presets.js';
import type { HopEvent, HopStatsEvent, PathChangeEvent, RoundEvent } from '../../src/trace/events.js';
import { CLI, addrOf, labName, nodeNs, runIn, trace, withLab } from '../helpers/lab.js';
import { rootOnly } from '../helpers/root.js';

const opt = rootOnly();

/** src - r1 (silent) - r2 - r3 - r4 - dst, 10% loss on r2 -> r3 (the probes' way only). */
function lossyChain() {
  const s = chain({ name: labName('rl'), routers: 4, silent: [1] });
  s.links[2] = { ...s.links[2], a_to_b: { loss: 0.1 } };
  return s;
}

test('rounds: per-hop loss within binomial bounds behind a 10% lossy link, inherited by later hops; a silent router at 100%; the text report says the same', opt, async () => {
  await withLab(lossyChain(), async (st) => {
    const ROUNDS = 300;
    const { events } = await trace(st, 'src', addrOf(st, 'dst', 4), ['-c', String(ROUNDS), '--interval', '0']);
    const rounds = events.filter((e): e is RoundEvent => e.type === 'round');
    assert.equal(rounds.length, ROUNDS);
    const last = events.filter((e): e is HopStatsEvent => e.type === 'hop-stats' && e.round === ROUNDS);
    assert.deepEqual(last.map((h) => h.ttl), [1, 2, 3, 4, 5]);
    assert.equal(last[0].loss, 100, 'r1 is silent');
    assert.equal(last[1].loss, 0);
    // Binomial(300, 0.1): mean 30, sd 5.2; 3.5 sd either side.
    for (const h of last.slice(2)) {
      const lost = h.sent - h.received;
      assert.equal(h.sent, ROUNDS);
      assert.ok(lost >= 12 && lost <= 48, `hop ${h.ttl}: ${lost} of ${h.sent} lost`);
    }
    const done = events.at(-1)!;
    assert.ok(done.type === 'done' && done.rounds === ROUNDS);
    // Every probe event of a round carries it; hop events are per round: as many as that round's
    // hops (5, or more when its probe to the target was the one in ten the link lost and a
    // later TTL reached it).
    const r7 = rounds.find((r) => r.round === 7)!;
    assert.ok(r7.hops >= 5, JSON.stringify(r7));
    assert.equal(events.filter((e): e is HopEvent => e.type === 'hop' && e.round === 7).length, r7.hops);
    const rep = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '-n', '--report', '-c', '20', '--interval', '0', addrOf(st, 'dst', 4)]);
    assert.equal(rep.code, 0, rep.stderr);
    const lines = rep.stdout.trim().split('\n');
    assert.match(lines[1], /^HOST: \S+\s+Loss%   Snt   Last   Avg  Best  Wrst StDev$/);
    assert.match(lines[2], /^ {2}1\.\|-- \?\?\? +100\.0 +20 /);
    // The silent router's loss is its own replies' (path/verdict.ts): hop 2 answers every probe.
    assert.equal(lines[3], "    |   loss here is this hop's replies (rate-limited or filtered): hop 2 loses 0.0% of 20");
    assert.match(lines[4], new RegExp(`^  2\\.\\|-- ${addrOf(st, 'r2', 4).replace(/\./g, '\\.')} +0\\.0% +20 `));
    assert.equal(lines.filter((l) => /^ +\d+\.\|-- /.test(l)).length, 5);
  });
});

test('rounds: on an ECMP diamond UDP rounds keep their flow (one source port), so the path holds; a real change is an event naming the TTL, what answered before and what answers now', opt, async () => {
  await withLab(ecmp({ name: labName('rp'), width: 4 }), async (st) => {
    const dst = addrOf(st, 'dst', 4);
    const steady = await trace(st, 'src', dst, ['-c', '12', '--interval', '0']);
    assert.deepEqual(steady.events.filter((e) => e.type === 'path-change'), [], 'twelve rounds from one source port take one branch');
    assert.equal(new Set(steady.events.filter((e): e is RoundEvent => e.type === 'round').map((r) => r.src_port)).size, 1);
    // ra's route to the target pinned to m1, then to m3, while the rounds run.
    const ra = st.plan.nodes.find((n) => n.name === 'ra')!;
    const via = (m: string) => st.plan.nodes.find((n) => n.name === m)!.ifaces.find((i) => i.peer === 'ra')!.v4;
    const pin = (m: string) => assert.equal(spawnSync('ip', ['-n', ra.ns, 'route', 'replace', `${dst}/32`, 'via', via(m)]).status, 0);
    pin('m1');
    const run = trace(st, 'src', dst, ['-c', '20', '--interval', '0.1']);
    await new Promise((r) => setTimeout(r, 1000));
    pin('m3');
    const { events } = await run;
    const changes = events.filter((e): e is PathChangeEvent => e.type === 'path-change');
    assert.ok(changes.some((c) => c.ttl === 2 && c.from.includes(via('m1')) && c.to.includes(via('m3'))), JSON.stringify(changes));
    for (const c of changes) {
      assert.ok(c.ttl === 2 || c.ttl === 3, `ttl ${c.ttl}`);
      assert.notDeepEqual(c.from, c.to);
      const hop = events.find((e): e is HopEvent => e.type === 'hop' && e.round === c.round && e.ttl === c.ttl)!;
      assert.deepEqual(c.to, [...hop.addrs].sort());
    }
  });
});

/** Rough PNG check: the decoded scanlines are not one colour. */
function pngHasContent(path: string): { w: number; h: number; distinct: number; inked: number } {
  const b = readFileSync(path);
  assert.equal(b.subarray(1, 4).toString('latin1'), 'PNG');
  let p = 8;
  let w = 0;
  let h = 0;
  const idat: Buffer[] = [];
  while (p + 8 <= b.length) {
    const len = b.readUInt32BE(p);
    const type = b.subarray(p + 4, p + 8).toString('latin1');
    if (type === 'IHDR') {
      w = b.readUInt32BE(p + 8);
      h = b.readUInt32BE(p + 12);
    } else if (type === 'IDAT') idat.push(b.subarray(p + 8, p + 8 + len));
    p += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const seen = new Set<number>();
  let inked = 0;
  for (let i = 0; i < raw.length; i++) {
    seen.add(raw[i]);
    if (raw[i] !== 0 && raw[i] !== 255) inked++;
  }
  return { w, h, distinct: seen.size, inked: inked / raw.length };
}

test('rounds: --html opens in headless Chromium (phone width): not blank, one row per hop, one chart per answering hop; --textfile passes promtool', opt, async () => {
  await withLab(lossyChain(), async (st) => {
    const dir = mkdtempSync(join(tmpdir(), 'pl-rounds-'));
    try {
      const html = join(dir, 'report.html');
      const r = await runIn(nodeNs(st, 'src'), [process.execPath, CLI, 'trace', '-n', '-c', '15', '--interval', '0', '--html', html, '--textfile', dir, addrOf(st, 'dst', 4)]);
      assert.equal(r.code, 0, r.stderr);
      const chrome = ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars'];
      const shot = join(dir, 'shot.png');
      const s = spawnSync('chromium', [...chrome, `--screenshot=${shot}`, '--window-size=412,915', `file://${html}`], { encoding: 'utf8', timeout: 60000 });
      assert.equal(s.status, 0, s.stderr);
      const png = pngHasContent(shot);
      assert.deepEqual([png.w, png.h], [412, 915]);
      assert.ok(png.distinct > 20 && png.inked > 0.01, `screenshot looks blank: ${JSON.stringify(png)}`);
      const dom = spawnSync('chromium', [...chrome, '--dump-dom', `file://${html}`], { encoding: 'utf8', timeout: 60000 }).stdout;
      assert.equal((dom.match(/<tr class="hop/g) ?? []).length, 5, 'one row per hop');
      assert.equal((dom.match(/<svg class="rtt-chart"/g) ?? []).length, 4, 'a chart per answering hop (r1 is silent)');
      const prom = readdirSync(dir).find((f) => f.endsWith('.prom'))!;
      const text = readFileSync(join(dir, prom), 'utf8');
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
      assert.match(text, /pathlens_trace_hop_loss_ratio\{target="[^"]+",ttl="1"\} 1\n/);
      assert.match(text, /pathlens_trace_hop_rtt_seconds\{quantile="0\.5",target="[^"]+",ttl="2"\} /);
      assert.match(text, /pathlens_trace_rounds\{target="[^"]+"\} 15\n/);
      assert.ok(!readdirSync(dir).some((f) => f.endsWith('.tmp')), 'no temporary file left');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function tmux(...args: string[]): string {
  let r = spawnSync('tmux', args, { encoding: 'utf8' });
  // Killing the last session makes the server exit; a session started at once can meet the
  // server on its way out ("server exited unexpectedly"): then it is started again.
  for (let i = 0; i < 20 && r.status !== 0 && /server exited unexpectedly/.test(r.stderr); i++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    r = spawnSync('tmux', args, { encoding: 'utf8' });
  }
  assert.equal(r.status, 0, `tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function until(what: string, fn: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('rounds: the live view under tmux: mtr\'s columns, keys (view, names, pause, reset), the terminal given back after q and after SIGTERM', opt, async () => {
  await withLab({ ...chain({ name: labName('rv'), routers: 2 }), dns: true }, async (st) => {
    const sess = `pl-live-${process.pid}`;
    const dst = addrOf(st, 'dst', 4);
    // In a shell that stays after pathlens ends, so that the terminal it gave back can be read.
    const start = () => {
      tmux('new-session', '-d', '-s', sess, '-x', '132', '-y', '40', `ip netns exec ${nodeNs(st, 'src')} ${process.execPath} ${CLI} trace --live --interval 0.2 ${dst}; echo "EXIT=$?"; sleep 600`);
    };
    const exited = () => /EXIT=(\d+)/.exec(screen())?.[1];
    const screen = () => tmux('capture-pane', '-p', '-t', sess);
    const fmt = (f: string) => tmux('display-message', '-p', '-t', sess, f).trim();
    try {
      start();
      await until('the table', () => /dst\.\S+\.pathlens\.test/.test(screen()));
      const s = screen();
      assert.match(s, /^pathlens trace to /m);
      assert.match(s, / Host\s+Loss%\s+Snt\s+Last\s+Avg\s+Best\s+Wrst\s+StDev\s+Javg\s+Jmax/);
      assert.match(s, /^ {2}1\. r1\.\S+ +0\.0%/m);
      assert.equal(fmt('#{alternate_on}'), '1');
      tmux('send-keys', '-t', sess, 'n');
      await until('addresses', () => screen().includes(`  3. ${dst} `));
      tmux('send-keys', '-t', sess, 'd');
      await until('the compact view', () => /d view \(compact\)/.test(screen()) && new RegExp(`3\\. ${dst.replace(/\./g, '\\.')} \\(\\d+\\)`).test(screen()));
      tmux('send-keys', '-t', sess, 'd');
      await until('the diagnostic view', () => /clocks \(send\/recv\)/.test(screen()) && /kernel-sw\/kernel-sw/.test(screen()));
      tmux('send-keys', '-t', sess, 'p');
      await until('pause', () => /\[paused\]/.test(screen()));
      const roundOf = () => Number(/round (\d+)/.exec(screen())?.[1] ?? -1);
      const held = roundOf();
      await new Promise((r) => setTimeout(r, 700));
      assert.ok(roundOf() <= held + 1, 'no new rounds while paused (one may have been under way)');
      tmux('send-keys', '-t', sess, 'p');
      tmux('send-keys', '-t', sess, 'd');
      tmux('send-keys', '-t', sess, 'r');
      await until('reset', () => /statistics reset/.test(screen()));
      tmux('send-keys', '-t', sess, 'q');
      await until('exit after q', () => exited() !== undefined);
      assert.deepEqual([exited(), fmt('#{alternate_on}'), fmt('#{cursor_flag}')], ['0', '0', '1']);
      tmux('kill-session', '-t', sess);
      // SIGTERM ends the run the same way: done, and the terminal back.
      start();
      await until('the table again', () => /Loss%/.test(screen()) && fmt('#{alternate_on}') === '1');
      const shell = fmt('#{pane_pid}');
      const pid = Number(spawnSync('pgrep', ['-P', shell], { encoding: 'utf8' }).stdout.trim().split('\n')[0]);
      assert.ok(pid > 0, 'the pathlens process under the shell');
      process.kill(pid, 'SIGTERM');
      await until('exit after SIGTERM', () => exited() !== undefined);
      assert.deepEqual([exited(), fmt('#{alternate_on}'), fmt('#{cursor_flag}')], ['0', '0', '1']);
    } finally {
      spawnSync('tmux', ['kill-session', '-t', sess]);
    }
  });
});
