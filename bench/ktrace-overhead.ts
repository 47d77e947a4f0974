/**
 * ktrace cost: what attaching `pathlens ktrace` (TX mode, in the source namespace of a one-router
 * lab) does to the traffic it watches and to the traffic it does not.
 *
 *  - ping RTT: `ping -c N -i 0.001` from src to dst, average and minimum from ping's summary. Every
 *    one of these packets is traced: each runs every stage's program and each round trip becomes a
 *    ring-buffer record and a JSONL event.
 *  - UDP request/response rate: one outstanding 64-byte datagram at a time, src -> dst echo -> src,
 *    for S seconds (transactions per second, as netperf's UDP_RR). These packets run the same
 *    programs but leave at the first filter (not ICMP echo between --src and --dst).
 *  - The same UDP request/response with `ktrace --proto udp --port 7007` (packet mode): now every
 *    datagram, both ways, is traced, a ring-buffer record and a JSONL event.
 *  - BPF ns per event: run_time_ns / run_cnt of every ktrace program (kernel bpf_stats, enabled by
 *    this script for its lifetime), for the ping runs and the UDP runs separately; per packet in
 *    packet mode.
 *
 * Runs alternate without/with ktrace; medians are compared. Root; traffic stays inside the lab.
 *
 *   sudo node dist/bench/ktrace-overhead.js [pings=3000] [udp-seconds=5] [runs=3]
 *
 * or one figure per process, for a timer of your own that alternates runs (see once()).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { native } from '../src/native/index.js';
import { chain } from '../src/lab/presets.js';
import { labDown, labUp } from '../src/lab/lab.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const positional = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
const [PINGS, UDP_SECONDS, RUNS] = [3000, 5, 3].map((d, i) => Number(positional[i] ?? d));
const LAB = 'ktbench';
const ns = (node: string) => `pl-${LAB}-${node}`;

const has = (cmd: string) => !spawnSync(cmd, ['-V'], { encoding: 'utf8' }).error;

function sh(cmd: string[]): string {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** ping's own summary: average and minimum RTT in µs. */
function pingRtt(dst: string): { avg: number; min: number; answered: number } {
  const out = sh(['ip', 'netns', 'exec', ns('src'), 'ping', '-n', '-q', '-c', String(PINGS), '-i', '0.001', dst]);
  const m = out.match(/= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/);
  const rx = out.match(/(\d+) received/);
  if (!m || !rx) throw new Error(`ping summary not understood: ${out}`);
  return { min: Number(m[1]) * 1e3, avg: Number(m[2]) * 1e3, answered: Number(rx[1]) };
}

/** Sequential UDP request/response from src to an echo in dst: transactions per second. */
function udpRate(dst: string): number {
  const echo = "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(7007,()=>console.log('up'))";
  const server = spawn('ip', ['netns', 'exec', ns('dst'), process.execPath, '-e', echo], { stdio: 'ignore' });
  spawnSync('sleep', ['0.4']);
  const client = `const s=require('dgram').createSocket('udp4');const b=Buffer.alloc(64);let n=0;const t0=process.hrtime.bigint();
s.on('message',()=>{n++;if(Number(process.hrtime.bigint()-t0)<${UDP_SECONDS}e9)s.send(b,7007,'${dst}');else{console.log(n/(Number(process.hrtime.bigint()-t0)/1e9));s.close();}});
s.send(b,7007,'${dst}');`;
  try {
    return Number(sh(['ip', 'netns', 'exec', ns('src'), process.execPath, '-e', client]).trim());
  } finally {
    server.kill();
  }
}

interface ProgStat {
  name: string;
  run_time_ns?: number;
  run_cnt?: number;
}

/** Summed bpf_stats of the ktrace programs loaded right now. */
function ktStats(): { ns: number; cnt: number } {
  const all = JSON.parse(sh(['bpftool', 'prog', 'show', '--json'])) as ProgStat[];
  let t = 0;
  let c = 0;
  for (const p of all) {
    if (!p.name?.startsWith('kt_')) continue;
    t += p.run_time_ns ?? 0;
    c += p.run_cnt ?? 0;
  }
  return { ns: t, cnt: c };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs `fn` with ktrace attached; the BPF statistics of that run and the round trips it reported. */
async function withKtrace<T>(src: string, dst: string, fn: () => T, extra: string[] = []): Promise<{ value: T; ns: number; cnt: number; rtts: number }> {
  const kt: ChildProcess = spawn(process.execPath, [CLI, 'ktrace', '--src', src, '--dst', dst, '--netns', ns('src'), '-i', 'e0', '--jsonl', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  kt.stdout!.on('data', (d) => (out += d));
  while (!out.includes('"type":"start"')) {
    if (kt.exitCode !== null) throw new Error('ktrace exited before it started');
    await new Promise((r) => setTimeout(r, 25));
  }
  const before = ktStats();
  const value = fn();
  const after = ktStats();
  kt.kill('SIGINT');
  await new Promise((r) => kt.on('close', r));
  const rtts = out.split('\n').filter((l) => l.includes('"type":"rtt"') || l.includes('"type":"packet"')).length;
  return { value, ns: after.ns - before.ns, cnt: after.cnt - before.cnt, rtts };
}

/**
 * One measurement in a lab that is already up (for an outside timer that pairs runs):
 *   node dist/bench/ktrace-overhead.js --lab up|down
 *   node dist/bench/ktrace-overhead.js --once ping|udp --ktrace on|off   (prints one figure)
 */
async function once(what: string, attach: boolean): Promise<void> {
  const node = (name: string) => JSON.parse(sh([process.execPath, CLI, 'lab', 'show', LAB, '--json'])).plan.nodes.find((n: { name: string }) => n.name === name);
  const src = node('src').ifaces[0].v4 as string;
  const dst = node('dst').ifaces[0].v4 as string;
  const measure = () => (what === 'ping' ? pingRtt(dst).avg : udpRate(dst));
  const v = attach ? (await withKtrace(src, dst, measure)).value : measure();
  console.log(`${what} ${attach ? 'with' : 'without'} ${v.toFixed(1)} ${what === 'ping' ? 'us average RTT' : 'transactions/s'}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (a lab and BPF)');
  const flag = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  if (flag('--lab') === 'up') return void (labDown(LAB), await labUp(chain({ name: LAB, routers: 1 })));
  if (flag('--lab') === 'down') return void labDown(LAB);
  if (flag('--once')) return once(flag('--once')!, flag('--ktrace') === 'on');
  for (const tool of ['bpftool', 'ping']) if (!has(tool)) throw new Error(`${tool} is needed (apt-get install ${tool === 'ping' ? 'iputils-ping' : tool})`);
  labDown(LAB);
  const st = await labUp(chain({ name: LAB, routers: 1 }));
  const node = (name: string) => st.plan.nodes.find((n) => n.name === name)!;
  const statsFd = native().bpfEnableStats();
  if (statsFd < 0) throw new Error(`BPF_ENABLE_STATS failed (${statsFd})`);
  try {
    const src = node('src').ifaces[0].v4;
    const dst = node('dst').ifaces[0].v4;
    if (node('src').ns !== ns('src') || node('dst').ns !== ns('dst')) throw new Error('unexpected lab namespace names');
    console.log(`# ${cpus().length} CPUs (${cpus()[0].model}); kernel ${sh(['uname', '-r']).trim()}; lab src -> r1 -> dst (veth, no impairment)`);
    console.log(`# ktrace --src ${src} --dst ${dst} --netns src -i e0 --jsonl; ${RUNS} runs each, alternating; ping -c ${PINGS} -i 0.001; UDP request/response ${UDP_SECONDS} s`);
    pingRtt(dst); // warm-up: neighbours, caches
    const off = { avg: [] as number[], min: [] as number[], udp: [] as number[] };
    const on = { avg: [] as number[], min: [] as number[], udp: [] as number[], udpTraced: [] as number[] };
    const cost = { pingNs: 0, pingCnt: 0, udpNs: 0, udpCnt: 0, rtts: 0, answered: 0, pktNs: 0, pktCnt: 0, packets: 0, sent: 0 };
    for (let i = 0; i < RUNS; i++) {
      const p0 = pingRtt(dst);
      const p1 = await withKtrace(src, dst, () => pingRtt(dst));
      off.avg.push(p0.avg);
      off.min.push(p0.min);
      on.avg.push(p1.value.avg);
      on.min.push(p1.value.min);
      cost.pingNs += p1.ns;
      cost.pingCnt += p1.cnt;
      cost.rtts += p1.rtts;
      cost.answered += p1.value.answered;
      const u0 = udpRate(dst);
      const u1 = await withKtrace(src, dst, () => udpRate(dst));
      off.udp.push(u0);
      on.udp.push(u1.value);
      cost.udpNs += u1.ns;
      cost.udpCnt += u1.cnt;
      // Packet mode: every datagram of the request/response traced, both ways.
      const u2 = await withKtrace(src, dst, () => udpRate(dst), ['--proto', 'udp', '--port', '7007']);
      on.udpTraced.push(u2.value);
      cost.pktNs += u2.ns;
      cost.pktCnt += u2.cnt;
      cost.packets += u2.rtts;
      cost.sent += Math.round(2 * u2.value * UDP_SECONDS);
      console.log(`run ${i + 1}: ping avg ${p0.avg.toFixed(1)} -> ${p1.value.avg.toFixed(1)} us (${p1.rtts}/${p1.value.answered} traced); UDP ${u0.toFixed(0)} -> ${u1.value.toFixed(0)} transactions/s, ${u2.value.toFixed(0)} with each packet traced (${u2.rtts} packets)`);
    }
    const row = (what: string, a: number, b: number, unit: string, digits = 1) =>
      console.log(`${what.padEnd(28)} ${a.toFixed(digits).padStart(9)} ${b.toFixed(digits).padStart(9)} ${unit.padEnd(15)} ${((b / a) * 100).toFixed(1)}%`);
    console.log(`${'(medians)'.padEnd(28)} ${'without'.padStart(9)} ${'with'.padStart(9)} ${''.padEnd(15)} with/without`);
    row('ping RTT, average', median(off.avg), median(on.avg), 'us');
    row('ping RTT, minimum', median(off.min), median(on.min), 'us');
    row('UDP request/response', median(off.udp), median(on.udp), 'transactions/s', 0);
    row('  each packet traced', median(off.udp), median(on.udpTraced), 'transactions/s', 0);
    console.log(`BPF cost, traced pings       ${cost.pingCnt ? (cost.pingNs / cost.pingCnt).toFixed(0) : '-'} ns per program run (${cost.pingCnt} runs, ${cost.answered ? (cost.pingCnt / cost.answered).toFixed(1) : '-'} per round trip: ${cost.answered ? (cost.pingNs / cost.answered / 1e3).toFixed(2) : '-'} us per round trip); ${cost.rtts} of ${cost.answered} round trips reported`);
    console.log(`BPF cost, untraced UDP       ${cost.udpCnt ? (cost.udpNs / cost.udpCnt).toFixed(0) : '-'} ns per program run (${cost.udpCnt} runs)`);
    console.log(`BPF cost, traced UDP packets ${cost.pktCnt ? (cost.pktNs / cost.pktCnt).toFixed(0) : '-'} ns per program run (${cost.pktCnt} runs, ${cost.packets ? (cost.pktCnt / cost.packets).toFixed(1) : '-'} per packet: ${cost.packets ? (cost.pktNs / cost.packets / 1e3).toFixed(2) : '-'} us per packet); ${cost.packets} packets reported of about ${cost.sent} sent`);
  } finally {
    native().close(statsFd);
    labDown(LAB);
  }
}

main().catch((e) => {
  console.error(`ktrace-overhead: ${(e as Error).message}`);
  process.exit(1);
});
