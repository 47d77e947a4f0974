/**
 * Live pping cost: forwarding throughput of a lab router (kernel forwarding between two veth
 * links, no impairment) while a bulk TCP transfer crosses it, without pping and with
 * `pathlens pping` (BPF, default sampling) attached to the router's interface toward the sink,
 * alternating runs; plus the BPF programs' own cost from the kernel's run-time statistics
 * (bpf_stats: run_time_ns / run_cnt per program). Root; traffic stays inside the lab.
 *
 *   sudo node dist/bench/pping-live.js [seconds=5] [runs=3] [--ingress-hook tc|xdp] [--rate-limit MS] [--traffic bulk|small] [--epping PATH]
 *
 * --traffic small: 100-byte writes with TCP_NODELAY (iperf3 -l 100 -N): a segment per write, so
 * many more packets per second and per byte, each with a small payload, instead of bulk's
 * GSO-sized ones.
 * --rate-limit 0 samples every timestamp (an event per ACK or so): the cost of producing events.
 * --epping PATH adds ePPing (xdp-project/bpf-examples pping, built by ../shared/peers/build-epping.sh;
 * not part of pathlens) as a third leg of each round with the same hooks and sampling: its
 * programs' ns per packet beside pathlens', from the same bpf_stats, in the same run.
 *
 * The transfer is iperf3 when installed (apt-get install iperf3), else a Node sender and sink.
 * Bar (issue 5): with pping attached, throughput >= 90% of the same router without it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { native } from '../src/native/index.js';
import { chain } from '../src/lab/presets.js';
import { labDown, labUp } from '../src/lab/lab.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const args = process.argv.slice(2);
const hookAt = args.indexOf('--ingress-hook');
const HOOK = hookAt >= 0 ? args[hookAt + 1] : 'tc';
const rateAt = args.indexOf('--rate-limit');
const RATE = rateAt >= 0 ? ['--rate-limit', args[rateAt + 1]] : [];
const eppingAt = args.indexOf('--epping');
const EPPING = eppingAt >= 0 ? args[eppingAt + 1] : null;
const trafficAt = args.indexOf('--traffic');
const TRAFFIC = trafficAt >= 0 ? args[trafficAt + 1] : 'bulk';
if (TRAFFIC !== 'bulk' && TRAFFIC !== 'small') {
  console.error('pping-live: --traffic bulk|small');
  process.exit(2);
}
const SMALL = TRAFFIC === 'small';
const valueAt = new Set([hookAt, rateAt, eppingAt, trafficAt].filter((i) => i >= 0).map((i) => i + 1));
const pos = args.filter((a, i) => !a.startsWith('--') && !valueAt.has(i));
const SECONDS = Number(pos[0] ?? 5);
const RUNS = Number(pos[1] ?? 3);
const LAB = 'plbench';

const has = (cmd: string) => !spawnSync(cmd, ['--version'], { encoding: 'utf8' }).error;

function sh(cmd: string[], ok = true): string {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (ok && r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const ns = (node: string) => `pl-${LAB}-${node}`;

/** One transfer src -> dst through r1: bits per second. */
function transfer(dst: string): number {
  if (has('iperf3')) {
    const server = spawn('ip', ['netns', 'exec', ns('dst'), 'iperf3', '-s', '-1'], { stdio: 'ignore' });
    spawnSync('sleep', ['0.3']);
    const out = sh(['ip', 'netns', 'exec', ns('src'), 'iperf3', '-c', dst, '-t', String(SECONDS), '-J', ...(SMALL ? ['-l', '100', '-N'] : [])]);
    server.kill();
    return JSON.parse(out).end.sum_received.bits_per_second as number;
  }
  const sink = "require('net').createServer((c)=>{c.resume();c.on('end',()=>c.end())}).listen(5201)";
  const server = spawn('ip', ['netns', 'exec', ns('dst'), process.execPath, '-e', sink], { stdio: 'ignore' });
  spawnSync('sleep', ['0.5']);
  const send = `const s=require('net').connect(5201,'${dst}',()=>{s.setNoDelay(${SMALL});const b=Buffer.alloc(${SMALL ? 100 : '1<<20'});const t0=process.hrtime.bigint();let n=0;const w=()=>{while(Number(process.hrtime.bigint()-t0)<${SECONDS}e9){n+=b.length;if(!s.write(b))return s.once('drain',w);}s.end(()=>{console.log(n*8/(Number(process.hrtime.bigint()-t0)/1e9));});};w();});`;
  const out = sh(['ip', 'netns', 'exec', ns('src'), process.execPath, '-e', send]);
  server.kill();
  return Number(out.trim());
}

interface ProgStat {
  name: string;
  run_time_ns: number;
  run_cnt: number;
}

function progStats(): ProgStat[] {
  const all = JSON.parse(sh(['bpftool', 'prog', 'show', '--json'])) as ProgStat[];
  return all.filter((p) => p.name?.startsWith('pping_'));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Runs `fn` with pathlens pping (or, `epping`, ePPing) attached: its programs' statistics and RTT events. */
async function withPping<T>(fn: () => T, epping = false): Promise<{ value: T; stats: ProgStat[]; events: number }> {
  // ePPing's JSON has "rtt" fields and no "type"; its own loader needs -c 0 where the kernel
  // refuses its map-iterator cleanup programs (as here).
  const pp: ChildProcess = epping
    ? spawn('ip', ['netns', 'exec', ns('r1'), EPPING!, '-i', 'e1', '-I', HOOK, ...(RATE.length ? ['-r', RATE[1]] : []), '-F', 'json', '-c', '0'], { stdio: ['ignore', 'pipe', 'inherit'], cwd: dirname(EPPING!) }) // it loads pping_kern.o from its directory
    : spawn(process.execPath, [CLI, 'pping', '-i', 'e1', '--netns', ns('r1'), '--ingress-hook', HOOK, ...RATE, '-F', 'jsonl'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  pp.stdout!.on('data', (d) => (out += d));
  const t0 = Date.now();
  // Attached once its programs are loaded (ePPing prints nothing until an event).
  while (epping ? progStats().length < 2 : !out.includes('"type":"start"')) {
    if (pp.exitCode !== null) throw new Error(`${epping ? 'ePPing' : 'pping'} exited`);
    if (Date.now() - t0 > 20_000) throw new Error(`${epping ? 'ePPing' : 'pping'} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (epping) await new Promise((r) => setTimeout(r, 500));
  const before = progStats();
  const value = fn();
  const after = progStats();
  const stats = after.map((p) => {
    const b = before.find((x) => x.name === p.name);
    return { name: p.name, run_time_ns: (p.run_time_ns ?? 0) - (b?.run_time_ns ?? 0), run_cnt: (p.run_cnt ?? 0) - (b?.run_cnt ?? 0) };
  });
  pp.kill('SIGINT');
  await new Promise((r) => pp.on('close', r));
  // ePPing's JSON is one array whose objects need not each have a line: count the fields, not lines.
  return { value, stats, events: (epping ? out.match(/"rtt":/g) : out.match(/"type":"rtt"/g))?.length ?? 0 };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (a lab and BPF)');
  if (!has('bpftool')) throw new Error('bpftool is needed for the BPF statistics (apt-get install bpftool)');
  labDown(LAB);
  await labUp(chain({ name: LAB, routers: 1 }));
  const statsFd = native().bpfEnableStats();
  if (statsFd < 0) throw new Error(`BPF_ENABLE_STATS failed (${statsFd})`);
  try {
    const dst = sh(['ip', 'netns', 'exec', ns('dst'), 'ip', '-4', '-o', 'addr', 'show', 'e1']).match(/inet (\S+)\//)![1];
    console.log(`# ${cpus().length} CPUs (${cpus()[0].model}); kernel ${sh(['uname', '-r']).trim()}; ${has('iperf3') ? 'iperf3' : 'node'} transfer, ${SECONDS} s x ${RUNS} runs each, alternating`);
    console.log(`# pping: BPF, tc egress + ${HOOK} ingress on r1's interface toward the sink, ${RATE.length ? `rate limit ${RATE[1]} ms` : 'default sampling (TCP, 100 ms rate limit)'}; ${SMALL ? 'small segments (100-byte writes, TCP_NODELAY)' : 'bulk transfer'}`);
    transfer(dst); // warm-up
    const off: number[] = [];
    const on: number[] = [];
    const ep: number[] = [];
    // ns per program run, per round: a round's ratio pathlens/ePPing is taken within the round.
    const ours: number[] = [];
    const theirs: number[] = [];
    let events = 0;
    let eppingEvents = 0;
    const perRun = (stats: ProgStat[]) => {
      const t = stats.reduce((a, p) => a + p.run_time_ns, 0);
      const c = stats.reduce((a, p) => a + p.run_cnt, 0);
      return { ns: c ? t / c : NaN, runs: c };
    };
    for (let i = 0; i < RUNS; i++) {
      off.push(transfer(dst));
      const r = await withPping(() => transfer(dst));
      on.push(r.value);
      events += r.events;
      const a = perRun(r.stats);
      ours.push(a.ns);
      let line = `run ${i + 1}: without ${(off[i] / 1e9).toFixed(2)} Gbit/s, with pping ${(on[i] / 1e9).toFixed(2)} Gbit/s (${r.events} RTT events, ${a.ns.toFixed(0)} ns per packet over ${a.runs} runs)`;
      if (EPPING) {
        const e = await withPping(() => transfer(dst), true);
        ep.push(e.value);
        eppingEvents += e.events;
        const b = perRun(e.stats);
        theirs.push(b.ns);
        line += `; with ePPing ${(e.value / 1e9).toFixed(2)} Gbit/s (${e.events} RTT events, ${b.ns.toFixed(0)} ns per packet over ${b.runs} runs)`;
      }
      console.log(line);
    }
    const ratio = median(on) / median(off);
    console.log(`${'without pping'.padEnd(24)} ${(median(off) / 1e9).toFixed(2)} Gbit/s (median)`);
    console.log(`${'with pping (BPF)'.padEnd(24)} ${(median(on) / 1e9).toFixed(2)} Gbit/s (median)  ${(ratio * 100).toFixed(1)}% of without; bar >= 90%`);
    console.log(`${'BPF cost'.padEnd(24)} ${median(ours).toFixed(0)} ns per packet (median of rounds; ${events} RTT events)`);
    if (EPPING) {
      console.log(`${'with ePPing'.padEnd(24)} ${(median(ep) / 1e9).toFixed(2)} Gbit/s (median)  ${((median(ep) / median(off)) * 100).toFixed(1)}% of without`);
      console.log(`${'ePPing BPF cost'.padEnd(24)} ${median(theirs).toFixed(0)} ns per packet (median of rounds; ${eppingEvents} RTT events)`);
      const per = ours.map((x, i) => x / theirs[i]);
      console.log(`${'pathlens / ePPing'.padEnd(24)} ${median(per).toFixed(2)} x ns per packet (median of the rounds' ratios: ${per.map((x) => x.toFixed(2)).join(', ')}); goal <= 0.8`);
    }
  } finally {
    native().close(statsFd);
    labDown(LAB);
  }
}

main().catch((e) => {
  console.error(`pping-live: ${(e as Error).message}`);
  process.exit(1);
});
