/**
 * Offline pping speed: packets per second through `pathlens pping -r` on a generated pcap of
 * bulk TCP flows (both directions, timestamp option on every segment, ACKs echoing), with
 * pollere's pping and tcpdump (reading and discarding, a floor for "as fast as the format
 * allows") side by side when installed. Loopback only: the file is synthetic.
 *
 *   node dist/bench/pping-offline.js [packets=3000000] [flows=1000] [runs=3]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const PACKETS = Number(process.argv[2] ?? 3_000_000);
const FLOWS = Number(process.argv[3] ?? 1000);
const RUNS = Number(process.argv[4] ?? 3);

/** A pcap (Ethernet, µs) of FLOWS interleaved TCP flows: data from clients, ACKs from servers. */
function generate(path: string): void {
  const FRAME = 14 + 20 + 32 + 100; // eth, IPv4, TCP with NOP NOP TS, payload
  const ACKF = 14 + 20 + 32;
  const buf = Buffer.alloc(24 + PACKETS * (16 + FRAME));
  buf.writeUInt32LE(0xa1b2c3d4, 0);
  buf.writeUInt16LE(2, 4);
  buf.writeUInt16LE(4, 6);
  buf.writeUInt32LE(262144, 16);
  buf.writeUInt32LE(1, 20);
  let o = 24;
  let usec = 0;
  const tsval = new Uint32Array(FLOWS).fill(1000);
  for (let i = 0; i < PACKETS; i++) {
    const f = (i >> 1) % FLOWS;
    const ack = (i & 1) === 1;
    usec += 3;
    const len = ack ? ACKF : FRAME;
    buf.writeUInt32LE(1_700_000_000 + Math.floor(usec / 1e6), o);
    buf.writeUInt32LE(usec % 1e6, o + 4);
    buf.writeUInt32LE(len, o + 8);
    buf.writeUInt32LE(len, o + 12);
    o += 16;
    const p = o;
    buf.fill(0, p, p + len);
    buf.writeUInt16BE(0x0800, p + 12);
    const ip = p + 14;
    buf[ip] = 0x45;
    buf.writeUInt16BE(len - 14, ip + 2);
    buf[ip + 8] = 64;
    buf[ip + 9] = 6;
    const client = [10, 1, f >> 8, f & 0xff];
    const server = [10, 2, 0, 1];
    Buffer.from(ack ? server : client).copy(buf, ip + 12);
    Buffer.from(ack ? client : server).copy(buf, ip + 16);
    const t = ip + 20;
    buf.writeUInt16BE(ack ? 443 : 10000 + f, t);
    buf.writeUInt16BE(ack ? 10000 + f : 443, t + 2);
    buf[t + 12] = 8 << 4;
    buf[t + 13] = ack ? 0x10 : 0x18;
    buf[t + 20] = 1;
    buf[t + 21] = 1;
    buf[t + 22] = 8;
    buf[t + 23] = 10;
    if (!ack) {
      if ((i >> 1) % 7 === 0) tsval[f]++; // a new TSval every few segments, as a 1 ms clock would
      buf.writeUInt32BE(tsval[f], t + 24);
      buf.writeUInt32BE(5, t + 28);
    } else {
      buf.writeUInt32BE(5, t + 24);
      buf.writeUInt32BE(tsval[f], t + 28);
    }
    o += len;
  }
  writeFileSync(path, buf.subarray(0, o));
}

function have(cmd: string, args: string[]): boolean {
  return !spawnSync(cmd, args, { encoding: 'utf8' }).error;
}

function time(cmd: string, args: string[]): { s: number; out: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}: ${r.stderr}`);
  return { s, out: r.stdout };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const dir = mkdtempSync(join(tmpdir(), 'pathlens-bench-'));
try {
  const file = join(dir, 'bulk.pcap');
  generate(file);
  const mb = statSync(file).size / 1e6;
  console.log(`# ${PACKETS} packets, ${FLOWS} flows, ${mb.toFixed(0)} MB pcap; median of ${RUNS} runs`);
  const rows: [string, number, string][] = [];
  const ours: number[] = [];
  let rtts = 0;
  for (let i = 0; i < RUNS; i++) {
    const r = time(process.execPath, [CLI, 'pping', '-r', file, '--rate-limit', '0', '-F', 'ppviz']);
    ours.push(r.s);
    rtts = r.out.split('\n').length - 1;
  }
  rows.push(['pathlens pping -r (rate limit 0, ppviz)', median(ours), `${rtts} RTT lines`]);
  if (have('pping', ['-h'])) {
    const t: number[] = [];
    let lines = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = time('pping', ['-r', file, '-m']);
      t.push(r.s);
      lines = r.out.split('\n').length - 1;
    }
    rows.push(['pollere pping -r -m', median(t), `${lines} RTT lines`]);
  } else {
    console.log('# pollere pping: not installed (build it from github.com/pollere/pping to compare)');
  }
  if (have('tcpdump', ['--version'])) {
    const t: number[] = [];
    for (let i = 0; i < RUNS; i++) t.push(time('tcpdump', ['-r', file, '-w', '/dev/null']).s);
    rows.push(['tcpdump -r -w /dev/null (read and rewrite only)', median(t), '']);
  }
  for (const [name, s, note] of rows) console.log(`${name.padEnd(50)} ${s.toFixed(2)} s  ${((PACKETS / s) / 1e6).toFixed(2)} Mpps  ${note}`);
} finally {
  if (process.env.PATHLENS_BENCH_KEEP) console.log(`# kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
