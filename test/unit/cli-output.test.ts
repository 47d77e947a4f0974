/**
 * The command line when its output cannot be written, when its reader goes away, on bad
 * arguments and on signals: one `pathlens:` line and a non-zero status (1 for a write failure, 2
 * for a usage error), silence and status 141 for a closed pipe (as a process SIGPIPE ends), never
 * a stack trace or a silent success; a signal ends an offline read with everything read so far.
 * Loopback only (traces to 127.0.0.1); no root needed.
 */
import assert from 'node:assert/strict';
import { type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eth, ipv4, tcpSeg } from '../helpers/bytes.js';
import { CLI } from '../helpers/lab.js';

const dir = mkdtempSync(join(tmpdir(), 'pathlens-cli-'));

/** A pcap of `pairs` data/ACK exchanges of one connection (rate limit 0: one RTT event each). */
function capture(name: string, pairs: number): string {
  const A = [10, 0, 0, 1];
  const B = [10, 0, 0, 2];
  const rec = (sec: number, usec: number, frame: number[]) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(sec, 0);
    h.writeUInt32LE(usec, 4);
    h.writeUInt32LE(frame.length, 8);
    h.writeUInt32LE(frame.length, 12);
    return Buffer.concat([h, Buffer.from(frame)]);
  };
  const head = Buffer.from([0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]);
  const parts: Buffer[] = [head];
  for (let i = 0; i < pairs; i++) {
    const d = tcpSeg({ sport: 40000, dport: 80, flags: 0x18, ts: [1000 + i, 5], payload: 10 });
    const a = tcpSeg({ sport: 80, dport: 40000, flags: 0x10, ts: [5, 1000 + i] });
    const t = i * 200;
    parts.push(rec(1700000000 + Math.floor(t / 1e6), t % 1e6, eth(0x0800, [...ipv4(A, B, 6, d.length, 64), ...d])));
    parts.push(rec(1700000000 + Math.floor((t + 100) / 1e6), (t + 100) % 1e6, eth(0x0800, [...ipv4(B, A, 6, a.length, 64), ...a])));
  }
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat(parts));
  return p;
}

const small = capture('small.pcap', 2000);

function run(args: string[], stdout: 'pipe' | number = 'pipe') {
  const o: SpawnOptions = { stdio: ['ignore', stdout, 'pipe'] };
  const r = spawnSync(process.execPath, [CLI, ...args], { ...o, encoding: 'utf8' } as Parameters<typeof spawnSync>[2] & { encoding: 'utf8' });
  return { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

/** Runs with stdout going to /dev/full. */
function toFull(args: string[]) {
  const fd = openSync('/dev/full', 'w');
  try {
    return run(args, fd);
  } finally {
    closeSync(fd);
  }
}

/** Runs with a reader that goes away after the first bytes; resolves with status and stderr. */
function closedPipe(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    c.stderr.on('data', (d) => (stderr += d));
    c.stdout.once('data', () => c.stdout.destroy());
    c.on('close', (status) => resolve({ status, stderr }));
  });
}

const oneLine = (stderr: string, re: RegExp) => {
  assert.equal(stderr.split('\n').filter(Boolean).length, 1, `one line: ${stderr}`);
  assert.match(stderr, re);
  assert.doesNotMatch(stderr, /\bat .*\(.*:\d+:\d+\)|Error:|Warning/, 'no stack trace, no runtime warning');
};

test('a full disk: one line naming the output and the reason, status 1', () => {
  const full = /^pathlens: cannot write (\/dev\/full|to standard output): ENOSPC \(no space left on device\)\n$/;
  for (const args of [
    ['trace', '-n', '-o', '/dev/full', '127.0.0.1'],
    ['pping', '-r', small, '-w', '/dev/full'],
    ['pping', '-r', small, '-w', '/dev/full', '-F', 'json'],
  ]) {
    const r = run(args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    oneLine(r.stderr.split('\n').filter((l) => !l.startsWith('#')).join('\n'), full);
  }
  for (const args of [
    ['--help'],
    ['--version'],
    ['trace', '--help'],
    ['trace', '-n', '127.0.0.1'],
    ['trace', '-n', '--jsonl', '127.0.0.1'],
    ['pping', '-r', small],
    ['pping', '-r', small, '-F', 'jsonl'],
  ]) {
    const r = toFull(args);
    assert.equal(r.status, 1, `${args.join(' ')} > /dev/full: ${r.stderr}`);
    oneLine(r.stderr.split('\n').filter((l) => !l.startsWith('#')).join('\n'), full);
  }
});

test('an output that cannot be opened is refused before any work, status 1', () => {
  for (const args of [
    ['pping', '-r', small, '-w', join(dir, 'no', 'such', 'dir', 'x')],
    ['trace', '-n', '-o', join(dir, 'no', 'such', 'dir', 'x'), '127.0.0.1'],
  ]) {
    const r = run(args);
    assert.equal(r.status, 1);
    oneLine(r.stderr, /^pathlens: cannot write .*\/no\/such\/dir\/x: ENOENT \(no such file or directory\)\n$/);
    assert.equal(r.stdout, '');
  }
  const d = run(['pping', '-r', small, '-w', dir]);
  assert.equal(d.status, 1);
  oneLine(d.stderr, /^pathlens: cannot write .*: EISDIR \(is a directory\)\n$/);
});

test('a reader that goes away (| head): silence and status 141', async () => {
  for (const args of [
    ['trace', '-n', '--jsonl', '-q', '10', '127.0.0.1'],
    ['pping', '-r', small, '-F', 'jsonl', '--rate-limit', '0'],
    ['pping', '-r', small, '--rate-limit', '0'],
  ]) {
    const r = await closedPipe(args);
    assert.equal(r.status, 141, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.split('\n').filter((l) => l && !l.startsWith('#')).join('\n'), '', 'nothing but run notes on stderr');
  }
});

test('bad arguments: one pathlens line, status 2, for every command level', () => {
  const cases: [string[], RegExp][] = [
    [['trace', ''], /^pathlens: the target is empty: give an IP address or a host name\n$/],
    [['trace', '--bogus', 'x'], /^pathlens: unknown option '--bogus'\n/],
    [['lab', 'up', '--bogus'], /^pathlens: unknown option '--bogus'\n/],
    [['lab', 'down', '--nope'], /^pathlens: unknown option '--nope'\n/],
    [['pping', '-r', dir], /^pathlens: cannot read .*: it is a directory, not a capture file\n$/],
    [['pping', '--cleanup', '-r', small], /^pathlens: --cleanup goes with -i IFACE\n$/],
  ];
  for (const [args, re] of cases) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /^error:|DeprecationWarning|\n\s+at /m);
  }
  const one = run(['trace', '-n', '127.0.0.1']);
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stdout, /-- reached 127\.0\.0\.1 in 1 hop \(/, 'one hop, not "1 hops"');
});

test('SIGINT during a long offline read: everything read so far is written, then the done note', async () => {
  const big = capture('big.pcap', 300_000);
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [CLI, 'pping', '-r', big, '--rate-limit', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => {
      if (!stdout) c.kill('SIGINT');
      stdout += d;
    });
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^# interrupted: (\d+) packets/m, 'the run ends with its done note');
  const packets = Number(/^# interrupted: (\d+) packets/m.exec(r.stderr)![1]);
  assert.ok(packets < 600_000, `stopped early (${packets} packets read)`);
  const lines = r.stdout.split('\n').filter(Boolean);
  assert.ok(r.stdout.endsWith('\n') && lines.every((l) => / ms TCP |opening due to first observed packet from dest$/.test(l)), 'whole lines only');
  // RTT events = exchanges read minus the first (its TSval is only the edge): nothing read was lost.
  const rtts = lines.filter((l) => / ms TCP /.test(l)).length;
  assert.ok(Math.abs(rtts - (packets / 2 - 1)) <= 1, `${rtts} RTT lines for ${packets} packets`);
});
