/**
 * `pathlens pping`: passive per-flow RTT, live on an interface or offline from a capture file.
 * The output formats are consumers of the pathlens.pping/1 event stream.
 */
import { Command, Option } from 'commander';
import { PathlensError } from '../core/errors.js';
import type { PpingEvent } from '../pping/events.js';
import type { MatcherOptions } from '../pping/matcher.js';
import type { TcMode, XdpMode } from '../bpf/attach.js';
import { removeLeftoverFilters } from '../bpf/attach.js';
import { openOutputFile } from '../io/output.js';
import { native } from '../native/index.js';
import { runBpf } from '../pping/bpf-run.js';
import { type LiveHandle, runOffline, runPacketSocket } from '../pping/run.js';
import { inNamespace } from '../io/placement.js';
import { untilDone } from './lifecycle.js';
import { parseListen } from '../export/listen.js';
import { readWebConfig } from '../export/web-config.js';
import { Aggregator } from '../pping/aggregate.js';
import { type PpingFormat, PpingWriter } from '../render/pping-text.js';
import { IntervalView } from '../render/pping-aggregate.js';
import { floatArg, intArg, portListArg } from './args.js';
import { QUIC_DEFAULT_PORTS, QUIC_MAX_PORTS } from '../pping/decode.js';
import type { CapName } from '../core/caps.js';
import { LIMIT_DEFAULTS, limitsOf } from '../export/limits.js';
import { USER_HELP, becomeUser } from './run-as.js';

interface PpingOpts {
  prometheusRate: number;
  iface?: string;
  read?: string;
  tcp?: boolean;
  icmp?: boolean;
  format: PpingFormat;
  write?: string;
  rateLimit: number;
  rttRate?: number;
  rttType: 'min' | 'smoothed';
  includeSyn?: boolean;
  seqack?: boolean;
  burst: number;
  dns?: boolean;
  quic?: boolean;
  quicPorts?: number[];
  includeLocal?: boolean;
  capture: 'bpf' | 'packet';
  ingressHook: 'tc' | 'xdp';
  xdpMode: XdpMode;
  netns?: string;
  user?: string;
  duration?: number;
  maxFlows: number;
  maxTimestamps: number;
  aggregate?: number;
  aggregateV4Prefix: number;
  aggregateV6Prefix: number;
  aggregateMaxPrefixes: number;
  prometheus?: string;
  'web.config.file'?: string;
  cleanup?: boolean;
}

/** PATHLENS_TC_ATTACH=tcx|clsact forces one tc attach path (default: tcx, else clsact). */
function tcModeFromEnv(): TcMode {
  const v = process.env.PATHLENS_TC_ATTACH;
  if (!v || v === 'auto') return 'auto';
  if (v === 'tcx' || v === 'clsact') return v;
  throw new PathlensError('ERR_USAGE', `PATHLENS_TC_ATTACH=${v}: expected auto, tcx or clsact`);
}

export function ppingCommand(): Command {
  return new Command('pping')
    .description("passive per-flow RTT from TCP timestamps (or SEQ/ACK), ICMP echo, DNS and QUIC's spin bit, live (-i IFACE) or from a capture file (-r FILE)")
    .option('-i, --iface <name>', 'interface to watch (both directions)')
    .option('-r, --read <file>', "read a pcap or pcapng file instead (as tcpdump -r; '-' is standard input)")
    .option('--tcp', 'TCP, from the timestamp option (the default when none of --tcp, --icmp, --dns, --quic is given)')
    .option('--icmp', 'ICMP and ICMPv6 echo, from id and sequence')
    .option('--dns', 'DNS over UDP (port 53): a query to its response, by transaction id and question; not in ePPing')
    .option('--quic', `QUIC, from the latency spin bit of short-header packets on the --quic-ports (default ${QUIC_DEFAULT_PORTS.join(',')}); not in ePPing`)
    .option('--quic-ports <list>', `the QUIC servers' UDP ports, up to ${QUIC_MAX_PORTS} (implies --quic)`, portListArg(QUIC_MAX_PORTS))
    .addOption(new Option('-F, --format <format>', 'output format').choices(['standard', 'ppviz', 'json', 'jsonl']).default('standard'))
    .option('-w, --write <file>', 'write the output to FILE instead of stdout')
    .option('--rate-limit <ms>', 'least time between two timestamps of one flow direction (0: no limit)', floatArg(0, 1e6), 100)
    .option('-R, --rtt-rate <r>', 'sample at most once per R x the flow\'s RTT (overrides --rate-limit once an RTT is known)', floatArg(0, 1e6))
    .addOption(new Option('-t, --rtt-type <type>', 'RTT that --rtt-rate uses').choices(['min', 'smoothed']).default('smoothed'))
    .option('--include-syn', 'also timestamp SYN and SYN-ACK packets')
    .option('--burst <n>', 'after a TCP segment older than one seen that way (reordering, a retransmission), let its direction\'s next N timestamps bypass the rate limit (0: ePPing\'s sampling)', intArg(0, 255), 0)
    .option('--seqack', 'TCP flows without the timestamp option: match each segment to the ACK that covers it exactly, no sample after a retransmission (Karn); not in ePPing')
    .option('--include-local', 'also measure flows between loopback addresses')
    .addOption(new Option('--capture <how>', 'live capture: BPF programs on tc/XDP, or a packet socket').choices(['bpf', 'packet']).default('bpf'))
    .addOption(new Option('--ingress-hook <hook>', 'BPF ingress hook').choices(['tc', 'xdp']).default('tc'))
    .addOption(new Option('--xdp-mode <mode>', 'XDP attach mode with --ingress-hook xdp').choices(['auto', 'native', 'generic']).default('auto'))
    .option('--netns <name|path>', 'the interface is in this network namespace')
    .option('--duration <seconds>', 'stop after this long (live)', floatArg(0.001, 1e7))
    .option('--max-flows <n>', 'flow table size (ePPing\'s 2^17; the file reader\'s table grows to it as flows come)', intArg(16, 1 << 24), 131072)
    .option('--max-timestamps <n>', 'timestamp table size (ePPing\'s 2^17)', intArg(16, 1 << 24), 131072)
    .option('--aggregate <seconds>', 'instead of each RTT, per-prefix RTT statistics and histograms every SECONDS', floatArg(0.01, 86400))
    .option('--aggregate-v4-prefix <len>', 'IPv4 prefix length to aggregate by', intArg(0, 32), 24)
    .option('--aggregate-v6-prefix <len>', 'IPv6 prefix length to aggregate by', intArg(0, 128), 48)
    .option('--aggregate-max-prefixes <n>', 'distinct prefixes kept (more go to "other"); also bounds metric labels', intArg(1, 1 << 20), 1024)
    .option('--prometheus <addr:port>', 'serve Prometheus metrics (RTT histograms, packet and flow counters per prefix) at http://ADDR:PORT/metrics')
    .option('--prometheus-rate <n>', 'requests a second one client address may make to --prometheus (twice that at once after a quiet spell; 0: no bound); beyond, 429', floatArg(0, 1e6), LIMIT_DEFAULTS.ratePerSec)
    .option('--web.config.file <file>', 'TLS and basic auth for --prometheus: a web configuration file in the format Prometheus\' exporters share (tls_server_config, basic_auth_users, http_server_config.headers)')
    .option('--cleanup', "remove the tc filters a killed pathlens pping left on -i IFACE (kernels without tcx), then exit")
    .option('--user <name>', USER_HELP)
    .action(async (opts: PpingOpts) => {
      if (!opts.iface === !opts.read) throw new Error('usage: give one of -i IFACE (live) or -r FILE (offline)');
      if (opts.cleanup) {
        if (!opts.iface) throw new Error('usage: --cleanup goes with -i IFACE');
        const removed = inNamespace(opts.netns, () => {
          const idx = native().ifNameToIndex(opts.iface!);
          if (idx < 0) throw new PathlensError('ERR_USAGE', `-i ${opts.iface}: no such interface${opts.netns ? ` in ${opts.netns}` : ''}`);
          return removeLeftoverFilters(idx);
        });
        process.stderr.write(`pathlens: removed ${removed} pathlens tc filter${removed === 1 ? '' : 's'} from ${opts.iface}\n`);
        return;
      }
      const mo: Partial<MatcherOptions> = {
        tcp: opts.tcp || (!opts.icmp && !opts.dns && !opts.quic && !opts.quicPorts),
        icmp: !!opts.icmp,
        dns: !!opts.dns,
        quicPorts: opts.quicPorts ?? (opts.quic ? QUIC_DEFAULT_PORTS : []),
        rateLimitNs: opts.rateLimit * 1e6,
        rttRate: opts.rttRate ?? 0,
        rttRateUse: opts.rttType,
        includeSyn: !!opts.includeSyn,
        seqAck: !!opts.seqack,
        burst: opts.burst,
        includeLocal: !!opts.includeLocal,
        maxFlows: opts.maxFlows,
        maxStamps: opts.maxTimestamps,
      };
      if (opts.aggregate && opts.format === 'ppviz') throw new PathlensError('ERR_USAGE', '--aggregate has no ppviz form: use -F standard, json or jsonl');
      const ao = { v4Prefix: opts.aggregateV4Prefix, v6Prefix: opts.aggregateV6Prefix, maxPrefixes: opts.aggregateMaxPrefixes };
      const listen = opts.prometheus ? parseListen(opts.prometheus) : null;
      if (opts['web.config.file'] && !listen) throw new PathlensError('ERR_USAGE', '--web.config.file configures the --prometheus endpoint: give --prometheus too');
      const web = opts['web.config.file'] ? await readWebConfig(opts['web.config.file']) : null;
      // prom-client is loaded only for an endpoint: it costs start-up time and memory.
      const metrics = listen ? new (await import('../export/prometheus.js')).PpingMetrics(ao) : null;
      const server = listen ? await metrics!.listen(listen.host, listen.port, web, limitsOf(opts.prometheusRate)) : null;
      const out = opts.write ? openOutputFile(opts.write) : process.stdout;
      const writer = new PpingWriter(opts.format, out, opts.write ? process.stdout : process.stderr);
      const view = opts.aggregate ? new IntervalView(new Aggregator(ao), opts.aggregate, writer) : null;
      const sink = {
        event: (e: PpingEvent) => {
          metrics?.event(e);
          if (view) view.event(e);
          else writer.event(e);
        },
      };
      // Set up as root (the socket or the programs, the endpoint), then the user, keeping what the
      // end of the run needs: tc filters removed (CAP_NET_ADMIN) and map sweeps (CAP_BPF).
      const keep: CapName[] = opts.read || opts.capture !== 'bpf' ? [] : ['CAP_BPF', 'CAP_NET_ADMIN', ...(opts.netns ? (['CAP_SYS_ADMIN'] as const) : [])];
      const start = (): LiveHandle => {
        const h = open();
        becomeUser(opts.user, keep);
        return h;
      };
      const open = (): LiveHandle => {
        if (opts.read) return runOffline(opts.read, mo, sink);
        const lo = { iface: opts.iface!, netns: opts.netns, durationMs: opts.duration ? opts.duration * 1000 : 0 };
        if (opts.capture !== 'bpf') return runPacketSocket(lo, mo, sink);
        try {
          return runBpf({ ...lo, ingressHook: opts.ingressHook, xdpMode: opts.xdpMode, tcMode: tcModeFromEnv() }, mo, sink);
        } catch (e) {
          if (e instanceof PathlensError && e.code === 'ERR_BPF') {
            throw new PathlensError('ERR_BPF', `${e.message}; without BPF, --capture packet applies the same rules`);
          }
          throw e;
        }
      };
      // Live output is written a few times a second; a file is written as it is read.
      const flusher = opts.read
        ? null
        : setInterval(() => {
            view?.tick();
            writer.flush();
          }, 200);
      try {
        await untilDone(start);
      } finally {
        if (flusher) clearInterval(flusher);
        server?.close();
        await writer.end();
      }
    });
}
