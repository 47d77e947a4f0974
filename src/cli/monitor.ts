/**
 * `pathlens monitor`: the health of many paths. Targets on the command line and/or in a YAML/JSON
 * file (-c), one method ladder, statistics per window, health states, Prometheus metrics.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Command, Option } from 'commander';
import { PathlensError } from '../core/errors.js';
import { Tee, type Sink } from '../core/sink.js';
import type { MonitorMetrics } from '../export/monitor-prometheus.js';
import { HOP_SERIES_DEFAULT, parseListen } from '../export/listen.js';
import { HOPS_DEFAULTS, PATH_DEFAULTS } from '../monitor/paths.js';
import { readWebConfig } from '../export/web-config.js';
import { parseIp } from '../packet/addr.js';
import { type Defaults, eachTargetInFile, specOf } from '../monitor/config.js';
import type { MonitorEvent } from '../monitor/events.js';
import { DEFAULT_THRESHOLDS } from '../monitor/health.js';
import { MONITOR_DEFAULTS, type MethodChoice, type TargetSettings } from '../monitor/request.js';
import { TargetTable } from '../monitor/table.js';
import { startMonitor } from '../monitor/run.js';
import { MonitorTextView } from '../render/monitor-text.js';
import { MonitorLiveView } from '../render/monitor-live.js';
import { floatArg, intArg } from './args.js';
import { untilDone } from './lifecycle.js';
import { eventOutputs } from './outputs.js';
import { LIMIT_DEFAULTS, limitsOf } from '../export/limits.js';
import { USER_HELP, becomeUser } from './run-as.js';
import type { XdpMode } from '../bpf/attach.js';
import { xskRefusal } from '../probe/xsk.js';
import { xdpMonitorRefusal } from '../monitor/xdp.js';

interface MonitorOpts {
  prometheusRate: number;
  config?: string;
  icmp?: boolean;
  udp?: boolean;
  tcp?: boolean;
  method?: MethodChoice;
  port?: number;
  tcpPort: number;
  interval: number;
  window: number;
  timeout: number;
  duration: number;
  jsonl?: boolean;
  jsonlFile?: string;
  quiet?: boolean;
  prometheus?: string;
  'web.config.file'?: string;
  samples?: boolean;
  rcvbuf: number;
  confirm: number;
  resolveEvery: number;
  onChange?: string;
  user?: string;
  netns?: string;
  iface?: string;
  mark?: number;
  xdp?: boolean;
  xdpMode: XdpMode;
  source?: string;
  hops?: boolean;
  hopsInterval?: number;
  hopsMaxTtl: number;
  hopsQueries: number;
  hopsMethod?: 'icmp' | 'udp' | 'tcp';
  hopsEcmp: number;
  pathDamping: number;
  pathInflight: number;
  maxHopSeries: number;
  lossDegraded: number;
  lossDown: number;
  rttDegraded: number;
  jitterDegraded: number;
  rise: number;
  fall: number;
  family?: 4 | 6;
  ipv4?: boolean;
  ipv6?: boolean;
}

async function resolveOne(name: string, family: 4 | 6 | undefined): Promise<Uint8Array> {
  try {
    const r = await lookup(name, { family: family ?? 0, verbatim: true });
    return parseIp(r.address);
  } catch (e) {
    throw new PathlensError('ERR_RESOLVE', `cannot resolve ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * The targets, in columns, as they are read: literal addresses parsed into the table at once (a
 * hundred thousand from a file without an object or an await each), names given a row and looked
 * up once every target is read (a mistake in the file is said before any lookup).
 */
async function targetTable(given: string[], base: Defaults, config: string | undefined, family: 4 | 6 | undefined): Promise<TargetTable> {
  const table = new TargetTable();
  const named: number[] = [];
  const put = (target: string, s: TargetSettings) => {
    if (isIP(target)) table.addLiteral(target, s);
    else named.push(table.add(target, UNRESOLVED, s));
  };
  const bare = specOf(base, '');
  for (const t of given) put(t, bare);
  if (config) await eachTargetInFile(config, base, put);
  for (const i of named) {
    const source = table.settings(i).source;
    table.setAddress(i, await resolveOne(table.name(i), family ?? (source ? (isIP(source) as 4 | 6) : undefined)));
  }
  return table;
}

/** A named target's address until it is looked up. */
const UNRESOLVED = new Uint8Array(4);

export function monitorCommand(): Command {
  return new Command('monitor')
    .description('watch the health of many paths: loss, latency, jitter and states per target, with a method ladder (ICMP, UDP, TCP) and Prometheus metrics')
    .argument('[targets...]', 'addresses or names (and/or -c FILE)')
    .option('-c, --config <file>', 'targets (and defaults) from a YAML or JSON file')
    .option('-4, --ipv4', 'resolve names to IPv4')
    .option('-6, --ipv6', 'resolve names to IPv6')
    .option('-I, --icmp', 'ICMP echo (ping socket: net.ipv4.ping_group_range must include the group)')
    .option('-U, --udp', 'UDP to a closed port: a port unreachable from the target proves it alive')
    .option('-T, --tcp', 'TCP connect: a SYN-ACK or an RST proves the target alive')
    .addOption(new Option('-M, --method <method>', 'the method; auto: ICMP, then UDP, then TCP, per target, as each works (the default)').choices(['auto', 'icmp', 'udp', 'tcp']))
    .option('-p, --port <port>', `UDP: the port probed (default ${MONITOR_DEFAULTS.udpPort})`, intArg(1, 65535))
    .option('--tcp-port <port>', 'TCP: the port connected to', intArg(1, 65535), MONITOR_DEFAULTS.tcpPort)
    .option('--interval <seconds>', 'between probes to one target', floatArg(0.001, 3600), MONITOR_DEFAULTS.intervalMs / 1000)
    .option('--window <seconds>', 'statistics and health per window of this length', floatArg(0.1, 86400), MONITOR_DEFAULTS.windowMs / 1000)
    .option('--timeout <ms>', 'a probe without an answer after this long is lost', floatArg(1, 600000), MONITOR_DEFAULTS.timeoutMs)
    .option('--duration <seconds>', 'stop after this long (0: until interrupted)', floatArg(0, 31_536_000), 0)
    .option('--loss-degraded <percent>', 'a window with this much loss or more is degraded', floatArg(0, 100), DEFAULT_THRESHOLDS.lossDegraded)
    .option('--loss-down <percent>', 'a window with this much loss or more is down', floatArg(0, 100), DEFAULT_THRESHOLDS.lossDown)
    .option('--rtt-degraded <ms>', 'a window whose median RTT is above this is degraded (0: no limit)', floatArg(0, 600000), 0)
    .option('--jitter-degraded <ms>', 'a window whose jitter is above this is degraded (0: no limit)', floatArg(0, 600000), 0)
    .option('--fall <windows>', 'windows in a row judged worse before the state gets worse', intArg(1, 100), DEFAULT_THRESHOLDS.fall)
    .option('--rise <windows>', 'windows in a row judged better before the state gets better', intArg(1, 100), DEFAULT_THRESHOLDS.rise)
    .option('--confirm <probes>', 'after a probe is lost, send this many at a tenth of the interval, to confirm a failure sooner', intArg(0, 1000), 0)
    .option('--resolve-every <seconds>', 'look names up again this often (0: never); a new address is an address event', floatArg(0, 86400), 300)
    .option('--on-change <cmd>', 'run CMD (sh -c) on every state change; PATHLENS_TARGET, _ADDRESS, _PATH, _FROM, _TO, _REASON, _METHOD in its environment')
    .option('--netns <name|path>', 'probe from this network namespace')
    .option('-i, --iface <name>', 'probe through this interface (SO_BINDTODEVICE)')
    .option('--mark <n>', 'firewall mark for the probes (SO_MARK)', intArg(0, 0xffffffff))
    .option('-s, --source <addr>', 'the source address the probes leave from')
    .option('--prometheus <addr:port>', 'serve /metrics (probe_success, probe_duration_seconds, loss, jitter, state, RTT histogram) and /probe?target=T (blackbox_exporter\'s multi-target pattern, over this agent\'s own targets)')
    .option('--prometheus-rate <n>', 'requests a second one client address may make to --prometheus (twice that at once after a quiet spell; 0: no bound); beyond, 429', floatArg(0, 1e6), LIMIT_DEFAULTS.ratePerSec)
    .option('--web.config.file <file>', 'TLS and basic auth for --prometheus: a web configuration file in the format Prometheus\' exporters share (tls_server_config, basic_auth_users, http_server_config.headers)')
    .option('--hops', 'trace every target\'s path too (mtr as a monitor): per-hop loss, RTT and jitter per window, the loss verdict per hop, path events when the path changes')
    .option('--hops-interval <seconds>', '--hops: from one round to the next (default: the target\'s --interval)', floatArg(0.1, 86400))
    .option('--hops-max-ttl <ttl>', '--hops: the largest TTL', intArg(1, 255), HOPS_DEFAULTS.maxTtl)
    .option('--hops-queries <n>', '--hops: probes per hop and round', intArg(1, 10), HOPS_DEFAULTS.queries)
    .addOption(new Option('--hops-method <method>', '--hops: the path\'s probes (default: the target\'s method; ICMP for auto, as mtr)').choices(['icmp', 'udp', 'tcp']))
    .option('--hops-ecmp <flows>', '--hops: flow identities per hop, each ECMP branch with its own figures (UDP, ICMP)', intArg(1, 64), HOPS_DEFAULTS.flows)
    .option('--path-damping <rounds>', 'a path change must hold this many rounds in a row before it is one', intArg(1, 100), PATH_DEFAULTS.damping)
    .option('--path-inflight <n>', 'probes in flight at most over all traced paths', intArg(1, 65536), PATH_DEFAULTS.inflight)
    .option('--max-hop-series <n>', '--prometheus: per-hop series at most (beyond, counted in pathlens_hop_series_dropped_total)', intArg(0, 10_000_000), HOP_SERIES_DEFAULT)
    .option('--samples', 'one sample event per probe outcome')
    .option('--xdp', 'UDP probes as frames through an AF_XDP socket, the answers picked out by an XDP program (root; one family: -4 or -6; the targets must share one next hop)')
    .addOption(new Option('--xdp-mode <mode>', '--xdp: attach the XDP program in the driver (native), generic (skb) mode, or auto').choices(['auto', 'native', 'generic']).default('auto'))
    .option('--rcvbuf <bytes>', 'receive buffer of the probe sockets (past net.core.rmem_max only with CAP_NET_ADMIN); answers it cannot hold are counted in the prober event as rx_dropped', intArg(2048, 1 << 30), MONITOR_DEFAULTS.rcvbuf)
    .option('--jsonl', 'write pathlens.monitor/1 events to stdout')
    .addOption(new Option('-o, --jsonl-file <file>', 'write events to FILE; the plain view stays on the terminal'))
    .option('--quiet', 'no plain view')
    .option('--user <name>', USER_HELP)
    .action(async (targets: string[], o: MonitorOpts) => {
      const picked = [o.icmp && 'icmp', o.udp && 'udp', o.tcp && 'tcp', o.method].filter(Boolean) as MethodChoice[];
      if (new Set(picked).size > 1) throw new Error(`usage: choose one method (${picked.join(', ')} given)`);
      if (o.ipv4 && o.ipv6) throw new Error('usage: -4 and -6 exclude each other');
      if (o.lossDegraded > o.lossDown) throw new Error('usage: --loss-degraded must not be above --loss-down');
      if (o.xdp) {
        const no = xdpMonitorRefusal({ mark: o.mark, family: o.ipv4 ? 4 : o.ipv6 ? 6 : undefined });
        if (no) throw new Error(`usage: ${no}`);
        const why = xskRefusal();
        if (why) throw new PathlensError('ERR_PRIVILEGE', `--xdp: ${why}`);
      } else if (o.xdpMode !== 'auto') throw new Error('usage: --xdp-mode goes with --xdp');
      const base: Defaults = {
        method: picked[0] ?? 'auto',
        udpPort: o.port ?? MONITOR_DEFAULTS.udpPort,
        tcpPort: o.tcpPort,
        intervalMs: Math.round(o.interval * 1000),
        thresholds: { lossDegraded: o.lossDegraded, lossDown: o.lossDown, rttDegradedMs: o.rttDegraded, jitterDegradedMs: o.jitterDegraded, rise: o.rise, fall: o.fall },
        placement: { netns: o.netns, iface: o.iface, mark: o.mark },
        ...(o.source ? { source: o.source } : {}),
        hops: o.hops ? { ...HOPS_DEFAULTS, intervalMs: o.hopsInterval ? Math.round(o.hopsInterval * 1000) : 0, maxTtl: o.hopsMaxTtl, queries: o.hopsQueries, flows: o.hopsEcmp, ...(o.hopsMethod ? { method: o.hopsMethod } : {}) } : null,
      };
      const hopsOpts = o.hopsInterval !== undefined || o.hopsMethod !== undefined;
      if (hopsOpts && !o.hops && !o.config) throw new Error('usage: --hops-interval and --hops-method apply to --hops: give --hops too');
      if (o.source && !isIP(o.source)) throw new Error(`usage: --source ${o.source}: not an IP address`);
      if (targets.length === 0 && !o.config) throw new Error('usage: no targets: give addresses or names, or -c FILE');
      const resolved = await targetTable(targets, base, o.config, o.ipv4 ? 4 : o.ipv6 ? 6 : undefined);
      // On a terminal (and nothing else on stdout), the live table; plain lines otherwise.
      const live = process.stdout.isTTY === true && process.stdin.isTTY === true && !o.jsonl && !o.quiet ? new MonitorLiveView(process.stdout, process.stdin) : null;
      const sinks: Sink<MonitorEvent>[] = [eventOutputs<MonitorEvent>(live ? { ...o, quiet: true } : o, (write) => new MonitorTextView(write))];
      if (live) sinks.push(live);
      let metrics: MonitorMetrics | null = null;
      let server: import('node:http').Server | null = null;
      if (o['web.config.file'] && !o.prometheus) throw new Error('usage: --web.config.file configures the --prometheus endpoint: give --prometheus too');
      const web = o['web.config.file'] ? await readWebConfig(o['web.config.file']) : null;
      if (o.prometheus) {
        const { host, port } = parseListen(o.prometheus);
        // prom-client is loaded only when metrics are served.
        const { MonitorMetrics } = await import('../export/monitor-prometheus.js');
        metrics = new MonitorMetrics({ maxHopSeries: o.maxHopSeries });
        server = await metrics.listen(host, port, web, limitsOf(o.prometheusRate));
        sinks.push(metrics);
      }
      // Set up as root (the target file, the endpoint's keys and port read and bound): from here on
      // the user, keeping raw sockets (ICMP without ping sockets) and setns when a target has a netns.
      const netns = resolved.profiles.some((p) => p.placement?.netns);
      becomeUser(o.user, ['CAP_NET_RAW', ...(netns ? (['CAP_SYS_ADMIN'] as const) : []), ...(o.xdp ? (['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON'] as const) : [])]);
      const tee = new Tee<MonitorEvent>(sinks);
      try {
        const { handle, done } = await untilDone(async () => {
          const h = await startMonitor(
            {
              targets: resolved,
              windowMs: Math.round(o.window * 1000),
              timeoutMs: o.timeout,
              durationMs: Math.round(o.duration * 1000),
              samples: !!o.samples,
              onChange: o.onChange,
              confirm: o.confirm,
              resolveEveryMs: Math.round(o.resolveEvery * 1000),
              rcvbuf: o.rcvbuf,
              ...(o.xdp ? { xdp: { mode: o.xdpMode, copy: 'auto' as const, ring: 4096 } } : {}),
              pathDamping: o.pathDamping,
              pathInflight: o.pathInflight,
              // trace's continuous mode traces the paths, loaded only when a target has hops.
              ...(resolved.profiles.some((p) => p.hops) ? { openPath: (await import('../trace/path-source.js')).openTracePath } : {}),
              onRtt: metrics ? (target, method, path, rtt) => metrics!.rtt.observe({ target, method, path: path ?? '' }, rtt / 1000) : undefined,
            },
            tee,
          );
          live?.open(() => h.stop());
          return h;
        });
        await tee.end();
        if (done.reason === 'error' && handle.error) throw handle.error;
      } finally {
        live?.close();
        server?.close();
      }
    });
}
