/**
 * `pathlens ktrace`: per-stage kernel latency of ICMP echo round trips (or of each TCP or UDP
 * packet of a flow, --proto), on the stages of a profile. The views are sinks on the
 * pathlens.ktrace/1 event stream.
 */
import { Command, Option } from 'commander';
import type { KtraceEvent } from '../ktrace/events.js';
import { startKtrace } from '../ktrace/run.js';
import { USER_HELP, becomeUser } from './run-as.js';
import { HOOK_KINDS, type HookKind } from '../ktrace/stages.js';
import { shippedProfiles } from '../ktrace/profile.js';
import { KtraceTextView } from '../render/ktrace-text.js';
import { floatArg, intArg } from './args.js';
import { untilDone } from './lifecycle.js';
import { eventOutputs } from './outputs.js';

interface KtraceOpts {
  user?: string;
  src: string;
  dst: string;
  direction: 'tx' | 'rx';
  iface?: string;
  netns?: string;
  latencyMs?: number;
  count?: number;
  duration?: number;
  histogram?: boolean;
  stacks?: boolean;
  interval?: number;
  timeout: number;
  skipHooks?: string;
  dropsOnly?: boolean;
  profile?: string;
  proto?: 'udp' | 'tcp';
  port?: number;
  jsonl?: boolean;
  jsonlFile?: string;
  quiet?: boolean;
}

function hookList(v: string): HookKind[] {
  const kinds = v.split(',').map((x) => x.trim()).filter(Boolean);
  for (const k of kinds) if (!HOOK_KINDS.includes(k as HookKind)) throw new Error(`usage: --skip-hooks ${v}: '${k}' is not one of ${HOOK_KINDS.join(', ')}`);
  return kinds as HookKind[];
}

export function ktraceCommand(): Command {
  return new Command('ktrace')
    .description('where ICMP echo round trips (or a flow\'s packets, --proto) spend their time inside this host\'s kernel, stage by stage (BPF; root)')
    .requiredOption('--src <ip>', 'this host\'s address (TX: pings from here; RX: pinged here)')
    .requiredOption('--dst <ip>', 'the far end\'s address')
    .addOption(new Option('--direction <dir>', 'tx: this host pings; rx: it is pinged').choices(['tx', 'rx']).default('tx'))
    .option('-i, --iface <name>', 'the interface, for the tc stages')
    .option('--netns <name|path>', 'trace in this network namespace')
    .option('--latency-ms <ms>', 'report only round trips that took at least this long', floatArg(0, 1e6))
    .option('-c, --count <n>', 'stop after this many round trips', intArg(1, 1e9))
    .option('--duration <seconds>', 'stop after this long', floatArg(0.001, 1e7))
    .option('--histogram', 'count per-segment log2 histograms in the kernel; print them at the end (and every --interval)')
    .option('--stacks', 'the kernel stack at each stage on a tracing hook (tracepoints, fentry; netfilter and tc cannot take one)')
    .option('--interval <seconds>', 'with --histogram: print every SECONDS', floatArg(0.1, 86400))
    .option('--timeout <ms>', 'a round trip without its last stage this long after its first is incomplete', floatArg(1, 600000), 1000)
    .option('--drops-only', 'only what the kernel dropped: no round trips, no incomplete trip it did not drop; the drops summary at the end as always')
    .option('--profile <name|file>', `the stages and their hooks: a shipped profile (${shippedProfiles().join(', ')}) or a YAML/JSON file (default: kernel; with --proto, transport)`)
    .addOption(new Option('--proto <proto>', 'time each packet of this transport between --src and --dst, both ways (packet mode)').choices(['udp', 'tcp']))
    .option('--port <port>', 'with --proto: a port either end uses', intArg(1, 65535))
    .option('--skip-hooks <kinds>', `hook kinds not to use, comma-separated (${HOOK_KINDS.join(', ')}): forces lower rungs`)
    .option('--jsonl', 'write pathlens.ktrace/1 events to stdout, one JSON object per line')
    .addOption(new Option('-o, --jsonl-file <file>', 'write events to FILE; the human view stays on the terminal'))
    .option('--quiet', 'no human view')
    .option('--user <name>', USER_HELP)
    .action(async (opts: KtraceOpts) => {
      const skipHooks = opts.skipHooks ? hookList(opts.skipHooks) : [];
      const tee = eventOutputs<KtraceEvent>(opts, (write) => new KtraceTextView(write));
      // Programs loaded and attached as root; then the user, keeping the map reads and the detach.
      const start = () => {
        const h = open();
        becomeUser(opts.user, ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', ...(opts.netns ? (['CAP_SYS_ADMIN'] as const) : [])]);
        return h;
      };
      const open = () => startKtrace(
        {
          src: opts.src,
          dst: opts.dst,
          direction: opts.direction,
          iface: opts.iface,
          netns: opts.netns,
          latencyMs: opts.latencyMs,
          count: opts.count,
          durationMs: opts.duration ? opts.duration * 1000 : 0,
          histogram: opts.histogram,
          stacks: opts.stacks,
          intervalMs: opts.interval ? opts.interval * 1000 : 0,
          timeoutMs: opts.timeout,
          skipHooks,
          dropsOnly: opts.dropsOnly,
          profile: opts.profile,
          proto: opts.proto,
          port: opts.port,
        },
        tee,
      );
      try {
        await untilDone(start);
      } finally {
        await tee.end();
      }
    });
}
