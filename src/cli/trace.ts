/**
 * `pathlens trace`: options -> TraceRequest -> engine; the views are sinks on the event stream.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { PathlensError } from '../core/errors.js';
import type { BpfMode } from '../probe/bpf-trace.js';
import { type Sink, Tee } from '../core/sink.js';
import { TraceBlocks } from '../render/trace-blocks.js';
import { type MultiDone, parseTargetList, startTraces, tagTarget } from '../trace/multi.js';
import type { Family } from '../packet/addr.js';
import { untilDone } from './lifecycle.js';
import { type RoundsCli, runRounds, wantsRounds } from './trace-rounds.js';
import { eventOutputs } from './outputs.js';
import { TraceTextView } from '../render/trace-text.js';
import { RESOLVER_DEFAULTS, ReverseResolver, parseServer } from '../resolve/reverse.js';
import { TraceNames } from '../trace/names.js';
import type { TraceEvent } from '../trace/events.js';
import { ECMP_AUTO_DEFAULTS, type MethodChoice, TRACE_DEFAULTS, type TraceRequest, type TsChoice } from '../trace/request.js';
import { startTrace } from '../trace/run.js';
import { byteArg, floatArg, intArg } from './args.js';
import type { CapName } from '../core/caps.js';
import { USER_HELP, becomeUser } from './run-as.js';
import type { XdpMode } from '../bpf/attach.js';
import { type XskCopyMode, xskRefusal } from '../probe/xsk.js';
import { SweepTextView } from '../render/sweep-text.js';
import { SWEEP_DEFAULTS, SWEEP_MAX_PAYLOAD, type SweepRequest, startSweep } from '../trace/sweep.js';

/** --xdp-ring: a power of two, 64..65536. */
function ringArg(v: string): number {
  const n = intArg(64, 65536)(v);
  if (n & (n - 1)) throw new InvalidArgumentError('expected a power of two from 64 to 65536');
  return n;
}

/** --ecmp: a flow count 2..256, or auto. */
function ecmpArg(v: string): number | 'auto' {
  return v === 'auto' ? 'auto' : intArg(2, 256)(v);
}

interface TraceOpts extends RoundsCli {
  user?: string;
  ipv4?: boolean;
  ipv6?: boolean;
  firstTtl: number;
  maxTtl: number;
  queries: number;
  port?: number;
  wait: number;
  adaptive: number;
  minWait: number;
  maxInflight: number;
  payload: number;
  deadline: number;
  source?: string;
  sport?: number;
  numeric?: boolean;
  udp?: boolean;
  icmp?: boolean;
  tcp?: boolean;
  method?: string;
  raw?: boolean;
  unpriv?: boolean;
  netns?: string;
  iface?: string;
  mark?: number;
  pmtu?: boolean;
  ts: TsChoice;
  bpf: BpfMode;
  tos?: number;
  ecmp?: number | 'auto';
  ecmpMax: number;
  confidence: number;
  dnsServer?: string;
  dnsTimeout: number;
  jsonl?: boolean;
  jsonlFile?: string;
  quiet?: boolean;
  targets?: string;
  parallel: number;
  xdp?: boolean;
  xdpMode: XdpMode;
  xdpCopy: XskCopyMode;
  xdpRing: number;
  rate?: number;
}

/** Options a --xdp sweep has no use for: given on the command line, they are refused, not ignored. */
const NOT_WITH_XDP: Array<[keyof TraceOpts, string]> = [
  ['icmp', '-I'], ['tcp', '-T'], ['method', '--method'], ['raw', '--raw'], ['unpriv', '--unpriv'], ['mark', '--mark'], ['tos', '--tos'],
  ['ecmp', '--ecmp'], ['pmtu', '--pmtu'], ['bpf', '--bpf'], ['ts', '--ts'], ['queries', '-q'], ['maxInflight', '-N'], ['adaptive', '--adaptive'],
  ['minWait', '--min-wait'], ['deadline', '--deadline'], ['parallel', '--parallel'], ['count', '-c'], ['live', '--live'], ['report', '--report'],
  ['reportJson', '--report-json'], ['csv', '--csv'], ['html', '--html'], ['textfile', '--textfile'], ['user', '--user'],
];
const XDP_ONLY: Array<[keyof TraceOpts, string]> = [['xdpMode', '--xdp-mode'], ['xdpCopy', '--xdp-copy'], ['xdpRing', '--xdp-ring'], ['rate', '--rate']];

/** `trace --xdp`: the targets swept through AF_XDP, one path event per target. */
async function runSweep(targets: string[], opts: TraceOpts, cmd: Command): Promise<void> {
  for (const [k, flag] of NOT_WITH_XDP) if (cmd.getOptionValueSource(k) === 'cli') throw new Error(`usage: ${flag} does not go with --xdp (a sweep sends one UDP probe per target and TTL)`);
  if (opts.ipv4 && opts.ipv6) throw new Error('usage: -4 and -6 exclude each other');
  const why = xskRefusal();
  if (why) throw new PathlensError('ERR_PRIVILEGE', `--xdp: ${why}`);
  const payloadLen = cmd.getOptionValueSource('payload') === 'cli' ? opts.payload : SWEEP_DEFAULTS.payloadLen;
  if (payloadLen > SWEEP_MAX_PAYLOAD) throw new Error(`usage: --payload goes up to ${SWEEP_MAX_PAYLOAD} bytes with --xdp`);
  const req: SweepRequest = {
    targets,
    family: opts.ipv4 ? 4 : opts.ipv6 ? 6 : undefined,
    firstTtl: opts.firstTtl,
    maxTtl: opts.maxTtl,
    port: opts.port ?? SWEEP_DEFAULTS.port,
    srcPort: opts.sport,
    source: opts.source,
    waitMs: cmd.getOptionValueSource('wait') === 'cli' ? Math.round(opts.wait * 1000) : SWEEP_DEFAULTS.waitMs,
    ratePps: opts.rate ?? 0,
    payloadLen,
    placement: { netns: opts.netns, iface: opts.iface },
    xdpMode: opts.xdpMode,
    copyMode: opts.xdpCopy,
    ringSize: opts.xdpRing,
  };
  if (req.firstTtl > req.maxTtl) throw new Error(`usage: first TTL ${req.firstTtl} is above max TTL ${req.maxTtl}`);
  const out = eventOutputs<TraceEvent>(opts, (write) => new SweepTextView(write));
  try {
    await untilDone(() => startSweep(req, out));
  } finally {
    await out.end();
  }
}

/** --targets FILE: its targets, or one line saying why there are none. */
function readTargets(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PathlensError('ERR_USAGE', `--targets ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const list = parseTargetList(text);
  if (list.length === 0) throw new PathlensError('ERR_USAGE', `--targets ${file}: no targets in it (one per line, # comments)`);
  return list;
}

/**
 * Several targets: traced at once (startTraces), each trace's events tagged with its target into
 * the shared outputs, the text view one whole trace after another in the order given.
 */
async function runMany(reqs: TraceRequest[], opts: TraceOpts): Promise<void> {
  const names = !opts.numeric;
  const shared = eventOutputs<TraceEvent>({ jsonl: opts.jsonl, jsonlFile: opts.jsonlFile, quiet: true }, () => ({ event() {} }));
  const blocks = !opts.quiet && !opts.jsonl ? new TraceBlocks((l) => process.stdout.write(`${l}\n`), reqs.length, (write) => new TraceTextView(write, { names })) : null;
  const resolver = names ? new ReverseResolver({ server: opts.dnsServer, timeoutMs: Math.round(opts.dnsTimeout * 1000), placement: { netns: opts.netns } }) : null;
  const sinkOf = (i: number): Sink<TraceEvent> => {
    const out = new Tee<TraceEvent>([tagTarget(reqs[i].target, shared), ...(blocks ? [blocks.sink(i)] : [])]);
    return resolver ? new TraceNames(resolver, out, false) : out;
  };
  let result: MultiDone;
  try {
    ({ done: result } = await untilDone(() => startTraces(reqs, sinkOf, { parallel: opts.parallel })));
  } finally {
    resolver?.close();
    await shared.end();
  }
  const first = result.traces.find((t) => t.error !== null);
  if (!first) return;
  const code = first.error instanceof PathlensError && first.error.code !== 'ERR_USAGE' ? first.error.code : 'ERR_SEND';
  throw new PathlensError(code, `${result.failed} of ${reqs.length} traces failed (${first.target}: ${first.error!.message})`);
}

/** What a trace may need once it runs as another user: raw sockets (ICMP without ping sockets, raw TCP, --mark), setns. */
function traceCaps(method: MethodChoice | 'auto', req: TraceRequest): CapName[] {
  const raw = req.socket === 'raw' || (method === 'icmp' && req.socket !== 'unpriv') || method === 'auto' || req.placement?.mark !== undefined;
  const bpf = req.bpf === 'on' || req.bpf === 'auto' ? (['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON'] as const) : [];
  return [...(raw ? (['CAP_NET_RAW'] as const) : []), ...(req.placement?.netns ? (['CAP_SYS_ADMIN'] as const) : []), ...bpf];
}

export function traceCommand(): Command {
  const d = TRACE_DEFAULTS;
  return new Command('trace')
    .description('trace the path to TARGET (UDP probes by default; ICMP echo with -I, TCP SYN with -T)')
    .argument('[targets...]', 'IP address or host name; several are traced at once, under one -N cap')
    .option('--targets <file>', 'trace the targets listed in FILE too (one per line, # comments)')
    .option('--parallel <n>', 'several targets: how many are traced at once, at most', intArg(1, 1024), 16)
    .option('-4, --ipv4', 'use IPv4')
    .option('-6, --ipv6', 'use IPv6')
    .option('-U, --udp', 'UDP probes (the default)')
    .option('-I, --icmp', 'ICMP echo probes (ping socket where allowed, raw socket with CAP_NET_RAW)')
    .option('-T, --tcp', 'TCP SYN probes to port -p (default 80): connect() per probe, unprivileged; built SYNs on a raw socket with --raw')
    .addOption(new Option('-M, --method <method>', 'probe method; auto: UDP, then TCP, then ICMP when probes look filtered').choices(['udp', 'icmp', 'tcp', 'auto']))
    .option('--raw', 'use a raw socket (needs CAP_NET_RAW): -I, -T')
    .option('--unpriv', 'never use a raw socket (fail if the unprivileged way is refused)')
    .option('--netns <name|path>', 'open the probing sockets in this network namespace (/run/netns/NAME or a path)')
    .option('-i, --iface <name>', 'send through this interface only (SO_BINDTODEVICE)')
    .option('--mark <n>', 'firewall mark for the probes (SO_MARK)', intArg(0, 0xffffffff))
    .option('--tos <byte>', 'TOS (IPv4) / traffic class (IPv6) of the probes, e.g. 0xb8 (DSCP EF); with -I --raw each hop reports the TOS it saw', byteArg)
    .option('--ecmp <flows|auto>', 'explore equal-cost paths: this many flow identities per hop (Paris style: constant per flow), or auto: per hop until the MDA stopping rule holds', ecmpArg)
    .option('--confidence <percent>', '--ecmp auto: confidence of the stopping rule, 50..99.99', floatArg(50, 99.99), ECMP_AUTO_DEFAULTS.confidence * 100)
    .option('--ecmp-max <flows>', '--ecmp auto: at most this many flows per hop', intArg(2, 256), ECMP_AUTO_DEFAULTS.maxFlows)
    .option('--pmtu', 'path MTU discovery: full-size probes with DF; report where the MTU drops (UDP)')
    .addOption(new Option('--bpf <mode>', 'correlate replies in the kernel (UDP, ICMP; root): on, auto (where the programs load, else the error queue, saying why), off').choices(['auto', 'on', 'off']).default('off'))
    .addOption(new Option('--ts <source>', 'send times: the kernel\'s software timestamps (UDP, ICMP over a ping socket; Linux 6.13), userspace, or auto: the kernel\'s where it gives them').choices(['auto', 'userspace', 'kernel-sw', 'kernel-hw']).default('auto'))
    .option('-f, --first-ttl <ttl>', 'first TTL', intArg(1, 255), d.firstTtl)
    .option('-m, --max-ttl <ttl>', 'largest TTL', intArg(1, 255), d.maxTtl)
    .option('-q, --queries <n>', 'probes per hop', intArg(1, 10), d.queries)
    .option('-p, --port <port>', `UDP: base destination port, probe i goes to port+i (default ${d.port}); TCP: the destination port (default ${d.tcpPort})`, intArg(1, 65535))
    .option('-w, --wait <seconds>', 'longest wait for one probe', floatArg(0.001, 60), d.waitMs / 1000)
    .option('--adaptive <factor>', 'declare a silent probe after this multiple of later hops\' RTT', floatArg(1, 1000), d.adaptiveFactor)
    .option('--min-wait <ms>', 'never declare a probe silent sooner than this', floatArg(0, 60000), d.minWaitMs)
    .option('-N, --max-inflight <n>', 'probes in flight at most', intArg(1, 256), d.maxInflight)
    .option('--payload <bytes>', 'UDP payload length', intArg(12, 1400), d.payloadLen)
    .option('--deadline <seconds>', 'stop the whole trace after this long (0: none)', floatArg(0, 86400), 0)
    .option('-s, --source <addr>', 'source address')
    .option('--sport <port>', 'source port (UDP; TCP with --raw, flow f uses port+f)', intArg(1, 65535))
    .option('-n, --numeric', 'addresses only: no reverse DNS lookups')
    .option('--dns-server <addr>', 'ask this name server for reverse names (ADDR, ADDR:PORT or [V6]:PORT; default: resolv.conf, /etc/netns/NS/resolv.conf with --netns NS)')
    .option('--dns-timeout <seconds>', 'give up on one reverse lookup after this long (never delays hops; the run\'s end waits at most this)', floatArg(0.01, 30), RESOLVER_DEFAULTS.timeoutMs / 1000)
    .option('-c, --count <rounds>', 'continuous mode: trace this many rounds (mtr -c); per hop loss, RTT and jitter over the rounds', intArg(1, 1_000_000))
    .option('--live', 'continuous mode until interrupted (the live view on a terminal)')
    .option('--interval <seconds>', 'continuous mode: from one round\'s start to the next (mtr -i; -i is --iface here, as in traceroute)', floatArg(0, 3600), 1)
    .option('--report', 'continuous mode: print mtr -r\'s table at the end (10 rounds unless -c)')
    .option('--report-json', 'continuous mode: print one JSON document at the end (mtr --json, with pathlens\' hops)')
    .option('--csv', 'continuous mode: print mtr --csv\'s rows at the end')
    .option('--html <file>', 'continuous mode: write a self-contained HTML report (hop table, RTT charts over the rounds)')
    .option('--textfile <dir>', 'continuous mode: write node_exporter textfile metrics to DIR after every round')
    .addOption(new Option('--view <mode>', 'continuous mode: the live view to start with').choices(['table', 'compact', 'diag']).default('table'))
    .option('--jsonl', 'write pathlens.trace/1 events to stdout, one JSON object per line')
    .addOption(new Option('-o, --jsonl-file <file>', 'write events to FILE; the human view stays on the terminal'))
    .option('--quiet', 'no human view')
    .option('--user <name>', USER_HELP)
    .option('--xdp', 'high-rate sweep through an AF_XDP socket (root): one UDP probe per target and TTL, one path per target; IP addresses, one next hop')
    .addOption(new Option('--xdp-mode <mode>', '--xdp: attach the XDP program in the driver (native), generic (skb) mode, or auto: native where the driver has it').choices(['auto', 'native', 'generic']).default('auto'))
    .addOption(new Option('--xdp-copy <mode>', '--xdp: AF_XDP copy or zero-copy mode; auto: zero-copy where the driver has it').choices(['auto', 'copy', 'zerocopy']).default('auto'))
    .option('--xdp-ring <n>', '--xdp: descriptors per ring (a power of two, 64..65536)', ringArg, SWEEP_DEFAULTS.ringSize)
    .option('--rate <pps>', '--xdp: offer at most this many probes per second (default: as fast as the socket takes them)', intArg(1, 100_000_000))
    .action(async (given: string[], opts: TraceOpts, cmd: Command) => {
      const targets = [...given, ...(opts.targets !== undefined ? readTargets(opts.targets) : [])];
      if (targets.length === 0) throw new Error('usage: give a target (an IP address or a host name), or --targets FILE');
      if (opts.xdp) {
        await runSweep(targets, opts, cmd);
        return;
      }
      for (const [k, flag] of XDP_ONLY) if (cmd.getOptionValueSource(k) === 'cli') throw new Error(`usage: ${flag} goes with --xdp`);
      if (targets.length > 1 && wantsRounds(opts)) throw new Error('usage: continuous mode (-c, --live and the reports) follows one target; several targets are traced once each');
      if (targets.length === 1 && cmd.getOptionValueSource('parallel') === 'cli') throw new Error('usage: --parallel goes with several targets');
      const target = targets[0];
      // Exploring flows: one probe per flow and hop unless -q says otherwise.
      if ((opts.ecmp || wantsRounds(opts)) && cmd.getOptionValueSource('queries') === 'default') opts.queries = 1;
      if (opts.ecmp === 'auto' && opts.queries !== 1) throw new Error('usage: --ecmp auto sends one probe per flow and hop (leave -q out)');
      if (opts.ecmp !== 'auto' && (cmd.getOptionValueSource('confidence') === 'cli' || cmd.getOptionValueSource('ecmpMax') === 'cli')) throw new Error('usage: --confidence and --ecmp-max go with --ecmp auto');
      if (targets.some((t) => !t.trim())) throw new Error('usage: the target is empty: give an IP address or a host name');
      const family: Family | undefined = opts.ipv4 ? 4 : opts.ipv6 ? 6 : undefined;
      if (opts.ipv4 && opts.ipv6) throw new Error('usage: -4 and -6 exclude each other');
      const picked = [opts.udp && 'udp', opts.icmp && 'icmp', opts.tcp && 'tcp', opts.method].filter(Boolean) as (MethodChoice | 'auto')[];
      if (new Set(picked).size > 1) throw new Error(`usage: choose one probe method (${picked.join(', ')} given)`);
      const method = picked[0] ?? 'udp';
      if (method === 'auto' && (opts.pmtu || opts.ecmp || opts.raw)) throw new Error('usage: --method auto goes with neither --pmtu, --ecmp nor --raw');
      if (opts.raw && opts.unpriv) throw new Error('usage: --raw and --unpriv exclude each other');
      if (opts.sport !== undefined && (method === 'icmp' || method === 'auto' || (method === 'tcp' && !opts.raw))) throw new Error('usage: --sport applies to UDP probes and to TCP probes with --raw');
      const req: TraceRequest = {
        target,
        family,
        firstTtl: opts.firstTtl,
        maxTtl: opts.maxTtl,
        queries: opts.queries,
        port: opts.port ?? (method === 'tcp' ? d.tcpPort : d.port),
        waitMs: Math.round(opts.wait * 1000),
        adaptiveFactor: opts.adaptive,
        minWaitMs: opts.minWait,
        maxInflight: opts.maxInflight,
        payloadLen: opts.payload,
        deadlineMs: Math.round(opts.deadline * 1000),
        source: opts.source,
        srcPort: opts.sport,
        method,
        socket: opts.raw ? 'raw' : opts.unpriv ? 'unpriv' : 'auto',
        placement: { netns: opts.netns, iface: opts.iface, mark: opts.mark, tos: opts.tos },
        pmtu: opts.pmtu,
        ecmp: opts.ecmp,
        ...(opts.ecmp === 'auto' ? { ecmpMax: opts.ecmpMax, confidence: opts.confidence / 100 } : {}),
        ts: opts.ts,
        bpf: opts.bpf,
      };
      if (req.firstTtl > req.maxTtl) throw new Error(`usage: first TTL ${req.firstTtl} is above max TTL ${req.maxTtl}`);
      if (opts.dnsServer !== undefined) parseServer(opts.dnsServer); // a bad one is a usage error, even with -n
      // Sockets open all through a trace (a round's, a name lookup's, TCP's per probe): the drop
      // comes first, keeping what opening them needs.
      becomeUser(opts.user, traceCaps(method, req));
      if (wantsRounds(opts)) {
        await runRounds(req, opts);
        return;
      }
      if (targets.length > 1) {
        await runMany(targets.map((t) => ({ ...req, target: t })), opts);
        return;
      }
      const names = !opts.numeric;
      const tee = eventOutputs<TraceEvent>(opts, (write) => new TraceTextView(write, { names }));
      // Names travel with the probes' namespace only: a device or mark is about the measured path.
      const sink = names ? new TraceNames(new ReverseResolver({ server: opts.dnsServer, timeoutMs: Math.round(opts.dnsTimeout * 1000), placement: { netns: opts.netns } }), tee) : tee;
      const { handle: h, done } = await untilDone(() => startTrace(req, sink));
      await sink.end();
      if (done.reason === 'error') {
        const e = h.error;
        throw e ?? new Error('trace failed');
      }
    });
}
