/**
 * `pathlens lab`: namespace networks with real Linux routers, for users, tests and benchmarks.
 */
import { childProcess } from '../core/builtins.js';
import { existsSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { PathlensError } from '../core/errors.js';
import { type LabState, labDown, labDownAll, labList, labUp, nodeNamespace, requireRoot } from '../lab/lab.js';
import { labLink } from '../lab/link.js';
import { PRESETS, type PresetParams } from '../lab/presets.js';
import { readSpecFile } from '../lab/spec.js';
import { floatArg, intArg } from './args.js';

function listArg(v: string): number[] {
  if (!/^\d+(,\d+)*$/.test(v)) throw new InvalidArgumentError('expected a comma-separated list of router numbers, e.g. 3,6');
  return v.split(',').map(Number);
}

function probArg(v: string): number {
  const pct = v.endsWith('%');
  const n = Number(pct ? v.slice(0, -1) : v);
  if (!Number.isFinite(n) || n < 0 || (pct ? n > 100 : n > 1)) throw new InvalidArgumentError('expected a probability (0..1) or a percentage (e.g. 5%)');
  return pct ? n / 100 : n;
}

interface UpOpts {
  name?: string;
  routers?: number;
  width?: number;
  delay?: number;
  jitter?: number;
  loss?: number;
  silent?: number[];
  mtu?: number;
  at?: number;
  code?: 'host' | 'net' | 'admin';
  seed?: number;
  dns?: boolean;
  json?: boolean;
}

async function specFrom(what: string, o: UpOpts) {
  const preset = PRESETS[what];
  if (preset) {
    const p: PresetParams = {
      name: o.name,
      routers: o.routers,
      width: o.width,
      delayMs: o.delay,
      jitterMs: o.jitter,
      loss: o.loss,
      silent: o.silent,
      mtu: o.mtu,
      at: o.at,
      code: o.code,
      seed: o.seed,
    };
    const spec = preset(p);
    if (o.dns !== undefined) spec.dns = o.dns;
    return spec;
  }
  if (!existsSync(what)) {
    throw new PathlensError('ERR_USAGE', `'${what}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a spec file`);
  }
  const spec = await readSpecFile(what);
  if (o.name) spec.name = o.name;
  return spec;
}

export function describeLab(st: LabState): string {
  const lines = [`lab ${st.name}: ${st.plan.nodes.length} nodes, ${st.plan.links.length} links, impairments: ${st.plan.impairMode}`];
  for (const n of st.plan.nodes) {
    const flags = [n.role, n.nft?.includes('time-exceeded') ? 'silent' : '', n.nft?.includes('masquerade') ? 'nat' : ''].filter(Boolean).join(',');
    lines.push(`  ${n.name.padEnd(8)} ${n.ns.padEnd(20)} ${flags.padEnd(14)} ${n.ifaces.map((i) => `${i.name}:${i.v4},${i.v6}`).join('  ')}`);
  }
  if (st.dns) lines.push(`  names: <node>.${st.name}.pathlens.test, from the lab's name server at ${st.dns.server} (every node's resolv.conf)`);
  return lines.join('\n');
}

function runIn(ns: string, cmd: string[]): Promise<number> {
  return new Promise((res) => {
    const child = childProcess().spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: 'inherit' });
    child.on('error', (e) => {
      process.stderr.write(`pathlens: ${e.message}\n`);
      res(127);
    });
    child.on('exit', (code, sig) => res(code ?? (sig ? 128 : 1)));
  });
}

export function labCommand(): Command {
  const lab = new Command('lab').description('network topologies of real Linux routers in namespaces (root)').enablePositionalOptions();
  const up = new Command('up')
    .description(`bring up a lab from a preset (${Object.keys(PRESETS).join(', ')}) or a JSON/YAML spec file`)
    .argument('<spec>', 'preset name or spec file')
    .option('--name <name>', 'lab name (default: the preset name)')
    .option('--routers <n>', 'routers (chain, mtu, unreach, nat, demo)', intArg(1, 60))
    .option('--width <w>', 'paths (ecmp)', intArg(2, 32))
    .option('--delay <ms>', 'one-way delay on every link, ms', floatArg(0, 60000))
    .option('--jitter <ms>', 'uniform jitter on every link, ms', floatArg(0, 60000))
    .option('--loss <p>', 'loss on every link, 0..1 or N%', probArg)
    .option('--silent <list>', 'routers that send no Time Exceeded, e.g. 3,6', listArg)
    .option('--mtu <bytes>', 'smaller MTU (mtu)', intArg(1280, 65535))
    .option('--at <k>', 'the router that has the small MTU (mtu) or the unreachable route (unreach)', intArg(1, 60))
    .addOption(new Command().createOption('--code <code>', 'unreach: host, net or admin').choices(['host', 'net', 'admin']))
    .option('--seed <n>', 'random seed for impairments', intArg(0, 2 ** 31 - 1))
    .option('--dns', 'run a name server for the lab\'s addresses (names <node>.<lab>.pathlens.test; on in demo)')
    .option('--no-dns', 'no lab name server')
    .option('--json', 'print the lab state as JSON')
    .action(async (what: string, o: UpOpts) => {
      requireRoot('pathlens lab up');
      const spec = await specFrom(what, o);
      const st = await labUp(spec, { log: (l) => process.stderr.write(`${l}\n`) });
      process.stdout.write(o.json ? `${JSON.stringify(st, null, 2)}\n` : `${describeLab(st)}\n`);
    });
  const down = new Command('down')
    .description('remove a lab: its namespaces, interfaces and processes')
    .argument('[name]', 'lab name')
    .option('--all', 'remove every lab')
    .action((name: string | undefined, o: { all?: boolean }) => {
      requireRoot('pathlens lab down');
      if (!name && !o.all) throw new PathlensError('ERR_USAGE', 'name a lab, or use --all');
      const removed = o.all ? labDownAll() : labDown(name!);
      if (!o.all && removed.length === 0) throw new PathlensError('ERR_LAB_NOT_FOUND', `no lab named '${name}'`);
      process.stdout.write(`removed ${removed.length} namespaces\n`);
    });
  const ls = new Command('ls')
    .description('list labs')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean }) => {
      requireRoot('pathlens lab ls');
      const labs = labList();
      if (o.json) process.stdout.write(`${JSON.stringify(labs)}\n`);
      else if (labs.length === 0) process.stdout.write('no labs\n');
      else for (const l of labs) process.stdout.write(`${l.name.padEnd(12)} ${l.status.padEnd(9)} ${l.namespaces} namespaces  ${l.nodes.join(' ')}\n`);
    });
  const show = new Command('show')
    .description('show a lab: nodes, namespaces, addresses')
    .argument('[name]', 'lab name (default: the only lab)')
    .option('--json', 'the full state as JSON')
    .action((name: string | undefined, o: { json?: boolean }) => {
      requireRoot('pathlens lab show');
      const { state } = nodeNamespace(nodeOfAny(name), name);
      process.stdout.write(o.json ? `${JSON.stringify(state, null, 2)}\n` : `${describeLab(state)}\n`);
    });
  const addr = new Command('addr')
    .description("print a node's address (on its first link)")
    .argument('<node>', 'node name')
    .option('-4', 'IPv4 (default)')
    .option('-6', 'IPv6')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .action((node: string, o: { 6?: boolean; lab?: string }) => {
      requireRoot('pathlens lab addr');
      const { state } = nodeNamespace(node, o.lab);
      const n = state.plan.nodes.find((x) => x.name === node)!;
      process.stdout.write(`${o['6'] ? n.ifaces[0].v6 : n.ifaces[0].v4}\n`);
    });
  const exec = new Command('exec')
    .description('run a command inside a node: pathlens lab exec NODE -- CMD ARGS...')
    .argument('<node>', 'node name')
    .argument('<cmd...>', 'command and arguments')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .passThroughOptions()
    .action(async (node: string, cmd: string[], o: { lab?: string }) => {
      requireRoot('pathlens lab exec');
      const { ns } = nodeNamespace(node, o.lab);
      // With pass-through options commander hands the `--` separator on as an operand.
      process.exitCode = await runIn(ns, cmd[0] === '--' ? cmd.slice(1) : cmd);
    });
  const link = new Command('link')
    .description('take the link between two nodes down, or bring it back up with its addresses, neighbours and routes')
    .argument('<a>', 'one node')
    .argument('<b>', 'the other')
    .argument('<state>', 'down or up')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .action((a: string, b: string, state: string, o: { lab?: string }) => {
      requireRoot('pathlens lab link');
      if (state !== 'down' && state !== 'up') throw new PathlensError('ERR_USAGE', `lab link: the state must be down or up, not '${state}'`);
      const { state: st } = nodeNamespace(a, o.lab);
      labLink(st, a, b, state);
    });
  const demo = new Command('demo')
    .description('bring up the demo chain (9 routers, 5 ms per link, r3 and r6 silent), trace it over IPv4 and IPv6, tear it down')
    .option('--keep', 'leave the lab up afterwards')
    .option('--name <name>', 'lab name', 'demo')
    .action(async (o: { keep?: boolean; name: string }) => {
      requireRoot('pathlens lab demo');
      const st = await labUp(PRESETS.demo({ name: o.name }), { log: (l) => process.stderr.write(`${l}\n`) });
      let code = 0;
      try {
        process.stdout.write(`${describeLab(st)}\n\n`);
        const dst = st.plan.nodes.find((n) => n.name === 'dst')!;
        const src = st.plan.nodes.find((n) => n.name === 'src')!;
        const self = process.argv[1];
        for (const target of [dst.ifaces[0].v4, dst.ifaces[0].v6]) {
          process.stdout.write(`$ pathlens lab exec src -- pathlens trace ${target}\n`);
          code ||= await runIn(src.ns, [process.execPath, self, 'trace', target]);
          process.stdout.write('\n');
        }
      } finally {
        if (!o.keep) labDown(st.name);
      }
      if (o.keep) process.stdout.write(`lab '${st.name}' left up: 'pathlens lab down ${st.name}' removes it\n`);
      process.exitCode = code;
    });
  for (const c of [up, down, ls, show, addr, exec, link, demo]) lab.addCommand(c);
  return lab;
}

function nodeOfAny(name: string | undefined): string {
  const labs = labList().filter((l) => l.status !== 'orphaned' && (!name || l.name === name));
  if (labs.length === 0) throw new PathlensError('ERR_LAB_NOT_FOUND', name ? `no lab named '${name}'` : 'no lab is up');
  return labs[0].nodes[0];
}
