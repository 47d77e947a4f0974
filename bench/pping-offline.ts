/**
 * Offline pping speed: packets per second through `pathlens pping -r` on a generated pcap of
 * bulk TCP flows (both directions, timestamp option on every segment, ACKs echoing), with
 * pollere's pping and tcpdump (reading and discarding, a floor for "as fast as the format
 * allows") side by side when installed. Loopback only: the file is synthetic.
 *
 *   node dist/bench/pping-offline.js [packets=3000000] [flows=1000] [runs=3]
 *   node dist/bench/pping-offline.js --copies N --of FILE [runs=3]
 *
 * --copies N --of FILE: instead of the generated flows, N copies of a recorded classic pcap
 * (Ethernet), each copy's IPv4 and IPv6 addresses moved to a block of their own and its packets
 * merged with the others' in time order, so that the copies never meet: the run must give exactly
 * N times the samples of FILE alone (checked, for pathlens and pollere alike). Peak RSS is printed
 * where GNU time is installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  argv.splice(i, 2);
  return v;
};
const COPIES = Number(opt('--copies') ?? 0);
const OF = opt('--of');
if (COPIES > 0 !== (OF !== undefined) || (COPIES > 0 && COPIES > 65535)) {
  console.error('usage: pping-offline.js [packets] [flows] [runs] | --copies N (1-65535) --of FILE [runs]');
  process.exit(2);
}
const PACKETS = COPIES ? 0 : Number(argv[0] ?? 3_000_000);
const FLOWS = Number(argv[1] ?? 1000);
const RUNS = Number((COPIES ? argv[0] : argv[2]) ?? 3);

/**
 * N copies of a classic Ethernet pcap, merged in time order; copy k's IPv4 addresses get k added
 * to their second byte's 16 bits (second and third bytes), its IPv6 addresses to bytes 2-3.
 * Returns the packet count.
 */
function copies(src: string, dest: string, n: number): number {
  const b = readFileSync(src);
  if (b.readUInt32LE(0) !== 0xa1b2c3d4 && b.readUInt32LE(0) !== 0xa1b23c4d) throw new Error(`${src}: a little-endian classic pcap is needed`);
  if (b.readUInt32LE(20) !== 1) throw new Error(`${src}: Ethernet captures only`);
  const recs: { at: number; off: number; len: number }[] = [];
  const nano = b.readUInt32LE(0) === 0xa1b23c4d;
  for (let o = 24; o + 16 <= b.length; ) {
    const len = b.readUInt32LE(o + 8);
    recs.push({ at: b.readUInt32LE(o) * 1e9 + b.readUInt32LE(o + 4) * (nano ? 1 : 1000), off: o, len });
    o += 16 + len;
  }
  const bytes = recs.reduce((t, r) => t + 16 + r.len, 0);
  const out = Buffer.alloc(24 + n * bytes);
  b.copy(out, 0, 0, 24);
  let w = 24;
  // Copy k's record i comes at the record's own time: ties go by i, then k (a stable order).
  for (const r of recs) {
    for (let k = 0; k < n; k++) {
      b.copy(out, w, r.off, r.off + 16 + r.len);
      const f = w + 16;
      const et = out.readUInt16BE(f + 12);
      const shift = (ip: number, at: number) => out.writeUInt16BE((out.readUInt16BE(ip + at) + k) & 0xffff, ip + at);
      if (et === 0x0800 && r.len >= 34) {
        shift(f + 14, 12 + 1);
        shift(f + 14, 16 + 1);
        // The IPv4 header checksum follows its addresses (a reader may check it).
        const ip = f + 14;
        out.writeUInt16BE(0, ip + 10);
        let sum = 0;
        const ihl = (out[ip] & 15) * 4;
        for (let i = 0; i < ihl; i += 2) sum += out.readUInt16BE(ip + i);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
        out.writeUInt16BE(~sum & 0xffff, ip + 10);
      } else if (et === 0x86dd && r.len >= 54) {
        shift(f + 14, 8 + 2);
        shift(f + 14, 24 + 2);
      }
      w += 16 + r.len;
    }
  }
  writeFileSync(dest, out.subarray(0, w));
  return recs.length * n;
}

const haveTime = existsSync('/usr/bin/time');
/** Peak RSS (MiB) of the last timed run, when GNU time measured it. */
let lastPeak = '';

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
  const r = haveTime ? spawnSync('/usr/bin/time', ['-f', 'peak-kib %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 }) : spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}: ${r.stderr}`);
  const peak = /peak-kib (\d+)/.exec(r.stderr ?? '');
  lastPeak = peak ? `peak ${(Number(peak[1]) / 1024).toFixed(0)} MiB` : '';
  return { s, out: r.stdout };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const dir = mkdtempSync(join(tmpdir(), 'pathlens-bench-'));
try {
  const file = join(dir, 'bulk.pcap');
  const packets = COPIES ? copies(OF!, file, COPIES) : (generate(file), PACKETS);
  const mb = statSync(file).size / 1e6;
  console.log(`# ${packets} packets, ${COPIES ? `${COPIES} copies of ${OF}` : `${FLOWS} flows`}, ${mb.toFixed(0)} MB pcap; median of ${RUNS} runs`);
  const rows: [string, number, string][] = [];
  const lines = (out: string) => out.split('\n').length - 1;
  // With copies: each tool's samples on the file alone, which the copies must give N times over.
  const check = (got: number, cmd: string, args: string[]): string => {
    if (!COPIES) return '';
    const alone = lines(time(cmd, args.map((a) => (a === file ? OF! : a))).out);
    return got === COPIES * alone ? `, ${COPIES} x ${alone} (the file alone): exact` : `, NOT ${COPIES} x ${alone} (the file alone)`;
  };
  // The default tables (ePPing's 2^17 entries) unless many copies need more.
  const big = COPIES * 64 > 131072 ? ['--max-flows', String(COPIES * 64), '--max-timestamps', String(COPIES * 64)] : [];
  const ours = ['-r', file, '--rate-limit', '0', '-F', 'ppviz', ...big];
  const theirs = ['-r', file, '-m'];
  // Alternate the tools run by run, so that a drift of the machine's speed falls on both.
  const hasPollere = have('pping', ['-h']);
  const t: number[] = [];
  const tp: number[] = [];
  let rtts = 0;
  let theirLines = 0;
  let peak = '';
  let theirPeak = '';
  for (let i = 0; i < RUNS; i++) {
    const r = time(process.execPath, [CLI, 'pping', ...ours]);
    t.push(r.s);
    rtts = lines(r.out);
    peak = lastPeak;
    if (hasPollere) {
      const p = time('pping', theirs);
      tp.push(p.s);
      theirLines = lines(p.out);
      theirPeak = lastPeak;
    }
  }
  rows.push(['pathlens pping -r (rate limit 0, ppviz)', median(t), `${rtts} RTT lines${check(rtts, process.execPath, [CLI, 'pping', ...ours])}${peak ? `; ${peak}` : ''}`]);
  if (hasPollere) {
    rows.push(['pollere pping -r -m', median(tp), `${theirLines} RTT lines${check(theirLines, 'pping', theirs)}${theirPeak ? `; ${theirPeak}` : ''}`]);
  } else {
    console.log('# pollere pping: not installed (build it from github.com/pollere/pping to compare)');
  }
  if (have('tcpdump', ['--version'])) {
    const t: number[] = [];
    for (let i = 0; i < RUNS; i++) t.push(time('tcpdump', ['-r', file, '-w', '/dev/null']).s);
    rows.push(['tcpdump -r -w /dev/null (read and rewrite only)', median(t), '']);
  }
  for (const [name, s, note] of rows) console.log(`${name.padEnd(50)} ${s.toFixed(2)} s  ${((packets / s) / 1e6).toFixed(2)} Mpps  ${note}`);
  if (hasPollere) console.log(`pollere / pathlens: ${(median(tp) / median(t)).toFixed(2)} x (medians of the alternating runs)`);
} finally {
  if (process.env.PATHLENS_BENCH_KEEP) console.log(`# kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
