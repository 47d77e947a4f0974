/**
 * Bringing labs up and down. A lab is a set of network namespaces named pl-<lab>-<node> (plus
 * pl-<lab>-wire for the userspace impairment path) and a state file under /run/pathlens/labs.
 * `down` needs neither the state file nor the process that created the lab: it finds namespaces
 * by prefix and kills every process inside them, so a crash or kill -9 leaves nothing behind.
 */
import { childProcess } from '../core/builtins.js';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PathlensError } from '../core/errors.js';
import { packageRoot } from '../core/paths.js';
import type { DnsServerConfig } from './dns/server.js';
import type { ForwarderConfig } from './impair/forwarder.js';
import { type LabPlan, NS_PREFIX, type PlanNode, nsName, planLab } from './plan.js';
import { must, run } from './sh.js';
import { routeCmd } from './link.js';
import { type Impairment, LAB_NAME_RE, type LabSpec } from './spec.js';

export interface LabState {
  name: string;
  created: string;
  status: 'creating' | 'ready';
  creator_pid: number;
  namespaces: string[];
  plan: LabPlan;
  forwarder_pid: number | null;
  /** spec.dns: the lab's name server (its address and process). */
  dns?: { server: string; pid: number } | null;
}

export function stateDir(): string {
  return process.env.PATHLENS_STATE_DIR ?? '/run/pathlens/labs';
}

function labDir(name: string): string {
  return join(stateDir(), name);
}

function statePath(name: string): string {
  return join(labDir(name), 'state.json');
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new PathlensError('ERR_PRIVILEGE', `${what} needs root (it creates network namespaces): run it as root, e.g. with sudo`);
  }
}

function writeState(s: LabState): void {
  mkdirSync(labDir(s.name), { recursive: true });
  writeFileSync(statePath(s.name), `${JSON.stringify(s, null, 2)}\n`);
}

export function readState(name: string): LabState | null {
  try {
    return JSON.parse(readFileSync(statePath(name), 'utf8')) as LabState;
  } catch {
    return null;
  }
}

/** Network namespaces that exist now, by name. */
export function listNamespaces(): string[] {
  const out = run('ip', ['netns', 'list']).stdout;
  return out
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.length > 0);
}

function labOfNs(ns: string): string | null {
  if (!ns.startsWith(NS_PREFIX)) return null;
  const rest = ns.slice(NS_PREFIX.length);
  const dash = rest.indexOf('-');
  return dash > 0 ? rest.slice(0, dash) : null;
}

/** True when the kernel has the netem qdisc (probed on a throwaway dummy device). */
export function netemAvailable(): boolean {
  const ns = `${NS_PREFIX}probe${process.pid}`;
  if (run('ip', ['netns', 'add', ns]).status !== 0) return false;
  try {
    if (run('ip', ['-n', ns, 'link', 'add', 'd0', 'type', 'dummy']).status !== 0) return false;
    return run('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'd0', 'root', 'netem', 'delay', '1ms']).status === 0;
  } catch {
    return false;
  } finally {
    run('ip', ['netns', 'del', ns]);
  }
}

function netemArgs(i: Impairment): string[] {
  const a: string[] = [];
  if (i.delay_ms || i.jitter_ms) a.push('delay', `${i.delay_ms ?? 0}ms`, ...(i.jitter_ms ? [`${i.jitter_ms}ms`] : []));
  if (i.loss) a.push('loss', `${i.loss * 100}%`);
  if (i.duplicate) a.push('duplicate', `${i.duplicate * 100}%`);
  if (i.reorder) a.push('reorder', `${i.reorder * 100}%`);
  if (i.rate_mbit) a.push('rate', `${i.rate_mbit}mbit`);
  return a;
}

export interface UpOptions {
  /** Wait this long for the impairment process to be ready, ms. */
  readyTimeoutMs?: number;
  log?: (line: string) => void;
}

export async function labUp(spec: LabSpec, opts: UpOptions = {}): Promise<LabState> {
  requireRoot('pathlens lab up');
  const log = opts.log ?? (() => {});
  const existing = listNamespaces().filter((ns) => labOfNs(ns) === spec.name);
  if (existing.length > 0 || readState(spec.name)) {
    throw new PathlensError('ERR_LAB_EXISTS', `lab '${spec.name}' already exists: 'pathlens lab down ${spec.name}' first, or choose another --name`);
  }
  const plan = planLab(spec, spec.impair_mode === 'userspace' ? false : netemAvailable());
  if (plan.impairMode === 'netem' && spec.impair_mode === 'netem' && !netemAvailable()) {
    throw new PathlensError('ERR_LAB', "impair_mode 'netem' was asked for, but this kernel has no netem qdisc (use 'auto' or 'userspace')");
  }
  if (plan.nodes.some((n) => n.nft)) must('nft', ['--version']);
  const namespaces = plan.nodes.map((n) => n.ns);
  if (plan.wireNs) namespaces.push(plan.wireNs);
  const state: LabState = {
    name: spec.name,
    created: new Date().toISOString(),
    status: 'creating',
    creator_pid: process.pid,
    namespaces,
    plan,
    forwarder_pid: null,
  };
  writeState(state); // first, so that `down` can clean a half-built lab
  try {
    build(plan, log);
    if (plan.wireNs) state.forwarder_pid = await startForwarder(plan, opts.readyTimeoutMs ?? 10000);
    if (spec.dns) state.dns = await startDns(plan, opts.readyTimeoutMs ?? 10000);
    state.status = 'ready';
    writeState(state);
    return state;
  } catch (e) {
    labDown(spec.name);
    throw e;
  }
}

function build(plan: LabPlan, log: (l: string) => void): void {
  for (const ns of [...plan.nodes.map((n) => n.ns), ...(plan.wireNs ? [plan.wireNs] : [])]) must('ip', ['netns', 'add', ns]);
  log(`namespaces: ${plan.nodes.length}${plan.wireNs ? ' + wire' : ''}`);
  for (const n of plan.nodes) {
    must('ip', ['netns', 'exec', n.ns, 'sysctl', '-q', '-w', ...n.sysctls.map(([k, v]) => `${k}=${v}`)]);
  }
  if (plan.wireNs) {
    must('ip', ['netns', 'exec', plan.wireNs, 'sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv6.conf.all.disable_ipv6=1']);
  }
  const nsOf = new Map(plan.nodes.map((n) => [n.name, n.ns]));
  const linkCmds: string[] = [];
  for (const l of plan.links) {
    const a = nsOf.get(l.a)!;
    const b = nsOf.get(l.b)!;
    if (l.wire) {
      linkCmds.push(`link add ${l.aIf} netns ${a} type veth peer name ${l.wire.aIf} netns ${plan.wireNs}`);
      linkCmds.push(`link add ${l.bIf} netns ${b} type veth peer name ${l.wire.bIf} netns ${plan.wireNs}`);
    } else {
      linkCmds.push(`link add ${l.aIf} netns ${a} type veth peer name ${l.bIf} netns ${b}`);
    }
  }
  must('ip', ['-batch', '-'], `${linkCmds.join('\n')}\n`);
  for (const n of plan.nodes) must('ip', ['-n', n.ns, '-batch', '-'], nodeBatch(n));
  staticNeighbours(plan);
  if (plan.wireNs) {
    const cmds: string[] = [];
    for (const l of plan.links) {
      if (!l.wire) continue;
      for (const w of [l.wire.aIf, l.wire.bIf]) {
        cmds.push(`link set ${w} ${l.mtu ? `mtu ${l.mtu} ` : ''}promisc on up`);
      }
    }
    must('ip', ['-n', plan.wireNs, '-batch', '-'], `${cmds.join('\n')}\n`);
  }
  for (const n of plan.nodes) if (n.nft) must('ip', ['netns', 'exec', n.ns, 'nft', '-f', '-'], n.nft);
  if (plan.impairMode === 'netem') {
    for (const l of plan.links) {
      if (l.aToB) must('tc', ['-n', nsOf.get(l.a)!, 'qdisc', 'add', 'dev', l.aIf, 'root', 'netem', ...netemArgs(l.aToB)]);
      if (l.bToA) must('tc', ['-n', nsOf.get(l.b)!, 'qdisc', 'add', 'dev', l.bIf, 'root', 'netem', ...netemArgs(l.bToA)]);
    }
  }
  log(`links: ${plan.links.length} (${plan.links.filter((l) => l.wire).length} through the userspace impairment path)`);
}

/**
 * Permanent neighbour entries for every link peer (IPv4 and IPv6): no ARP/ND on first use, so the
 * first probe is not delayed by resolution and impairments never drop a resolution.
 */
function staticNeighbours(plan: LabPlan): void {
  const mac = new Map<string, string>();
  for (const n of plan.nodes) {
    const links = JSON.parse(must('ip', ['-j', '-n', n.ns, 'link', 'show'])) as { ifname: string; address?: string }[];
    for (const l of links) if (l.address) mac.set(`${n.name}/${l.ifname}`, l.address);
  }
  for (const n of plan.nodes) {
    const cmds: string[] = [];
    for (const i of n.ifaces) {
      const peer = plan.nodes.find((x) => x.name === i.peer)!;
      const pi = peer.ifaces.find((x) => x.link === i.link)!;
      const lladdr = mac.get(`${peer.name}/${pi.name}`);
      if (!lladdr) throw new PathlensError('ERR_LAB', `no MAC address for ${peer.name}/${pi.name}`);
      cmds.push(`neigh replace ${pi.v4} lladdr ${lladdr} dev ${i.name} nud permanent`);
      cmds.push(`neigh replace ${pi.v6} lladdr ${lladdr} dev ${i.name} nud permanent`);
    }
    must('ip', ['-n', n.ns, '-batch', '-'], `${cmds.join('\n')}\n`);
  }
}

function nodeBatch(n: PlanNode): string {
  const c: string[] = ['link set lo up'];
  for (const i of n.ifaces) {
    c.push(`addr add ${i.v4}/24 dev ${i.name}`);
    c.push(`addr add ${i.v6}/64 dev ${i.name} nodad`);
    c.push(`link set ${i.name} ${i.mtu ? `mtu ${i.mtu} ` : ''}up`);
  }
  for (const r of n.routes) c.push(routeCmd(r, 'add'));
  return `${c.join('\n')}\n`;
}


/** The name every address of a lab node gets from the lab's name server. */
export function labHostName(node: string, lab: string): string {
  return `${node}.${lab}.pathlens.test`;
}

/** Where `ip netns exec` finds a namespace's own /etc files (resolv.conf). */
function etcNetns(ns: string): string {
  return join('/etc/netns', ns);
}

/**
 * spec.dns: starts the lab's name server in the first host and points every node's resolv.conf
 * (/etc/netns/<ns>/resolv.conf, which `ip netns exec` mounts over /etc/resolv.conf) at it.
 */
async function startDns(plan: LabPlan, timeoutMs: number): Promise<{ server: string; pid: number }> {
  const host = plan.nodes.find((n) => n.role === 'host')!;
  const server = host.ifaces[0].v4;
  const records: Record<string, string> = {};
  for (const n of plan.nodes) for (const i of n.ifaces) {
    records[i.v4] = labHostName(n.name, plan.name);
    records[i.v6] = labHostName(n.name, plan.name);
  }
  const dir = labDir(plan.name);
  const cfg: DnsServerConfig = { lab: plan.name, records, ttl: 300, port: 53, logPath: join(dir, 'dns.log'), readyPath: join(dir, 'dns.ready') };
  const cfgPath = join(dir, 'dns.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  writeFileSync(cfg.logPath, '');
  for (const n of plan.nodes) {
    mkdirSync(etcNetns(n.ns), { recursive: true });
    writeFileSync(join(etcNetns(n.ns), 'resolv.conf'), `# pathlens lab ${plan.name}: its own name server\nnameserver ${server}\n`);
  }
  const entry = join(packageRoot(), 'dist', 'src', 'lab', 'dns', 'main.js');
  const pid = await startHelper('name server', host.ns, [process.execPath, entry, '--lab', plan.name, '--config', cfgPath], join(dir, 'dns.log.stderr'), cfg.readyPath, timeoutMs);
  return { server, pid };
}

/** Starts a lab process detached in `ns`; resolves with the pid it writes to readyPath. */
async function startHelper(what: string, ns: string, argv: string[], logPath: string, readyPath: string, timeoutMs: number): Promise<number> {
  rmSync(readyPath, { force: true });
  const logFd = openSync(logPath, 'a');
  const child = childProcess().spawn('ip', ['netns', 'exec', ns, ...argv], { detached: true, stdio: ['ignore', logFd, logFd] });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(readyPath)) return Number(readFileSync(readyPath, 'utf8').trim());
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  let why = '';
  try {
    why = readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' / ');
  } catch {
    // no log
  }
  throw new PathlensError('ERR_LAB', `the ${what} did not start${why ? `: ${why}` : ''}`);
}

async function startForwarder(plan: LabPlan, timeoutMs: number): Promise<number> {
  const dir = labDir(plan.name);
  const cfg: ForwarderConfig = {
    lab: plan.name,
    seed: plan.seed,
    links: plan.links.filter((l) => l.wire).map((l) => ({ idx: l.idx, aIf: l.wire!.aIf, bIf: l.wire!.bIf, aToB: l.aToB, bToA: l.bToA })),
    readyPath: join(dir, 'forwarder.ready'),
    statsPath: join(dir, 'forwarder.stats.json'),
  };
  const cfgPath = join(dir, 'forwarder.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  // Real-time scheduling keeps timer wake-ups within ~0.2 ms (several ms otherwise under load);
  // PATHLENS_LAB_RT=0 turns it off. Without chrt the forwarder runs at normal priority.
  const rt = process.env.PATHLENS_LAB_RT !== '0' && run('chrt', ['--version']).status === 0 ? ['chrt', '-f', '20'] : [];
  const entry = join(packageRoot(), 'dist', 'src', 'lab', 'impair', 'main.js');
  return startHelper('impairment process', plan.wireNs!, [...rt, process.execPath, entry, '--lab', plan.name, '--config', cfgPath], join(dir, 'forwarder.log'), cfg.readyPath, timeoutMs);
}

/**
 * Removes a lab: kills every process in its namespaces, deletes the namespaces (and with them every
 * veth), removes its state. Works from namespace names alone. Returns the namespaces removed.
 */
export function labDown(name: string): string[] {
  requireRoot('pathlens lab down');
  if (!LAB_NAME_RE.test(name)) throw new PathlensError('ERR_USAGE', `not a lab name: ${JSON.stringify(name)}`);
  const st = readState(name);
  const namespaces = new Set(listNamespaces().filter((ns) => labOfNs(ns) === name));
  for (const ns of st?.namespaces ?? []) namespaces.add(ns);
  const existing = new Set(listNamespaces());
  for (const ns of namespaces) {
    if (!existing.has(ns)) continue;
    killAll(ns);
  }
  if (st?.forwarder_pid) killIfOurs(st.forwarder_pid, name);
  const removed: string[] = [];
  for (const ns of namespaces) {
    if (!existing.has(ns)) continue;
    const r = run('ip', ['netns', 'del', ns]);
    if (r.status !== 0) throw new PathlensError('ERR_LAB', `cannot delete namespace ${ns}: ${r.stderr.trim()}`);
    removed.push(ns);
  }
  for (const ns of namespaces) rmSync(etcNetns(ns), { recursive: true, force: true });
  try {
    for (const d of readdirSync('/etc/netns')) if (labOfNs(d) === name) rmSync(etcNetns(d), { recursive: true, force: true });
  } catch {
    // no /etc/netns
  }
  rmSync(labDir(name), { recursive: true, force: true });
  return removed;
}

function killAll(ns: string): void {
  for (let round = 0; round < 20; round++) {
    const pids = run('ip', ['netns', 'pids', ns])
      .stdout.split('\n')
      .map((s) => Number(s.trim()))
      .filter((p) => p > 0 && p !== process.pid);
    if (pids.length === 0) return;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    sleepSync(50); // let the kernel reap them before looking again
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function killIfOurs(pid: number, lab: string): void {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmd.includes('impair') && cmd.includes(lab)) process.kill(pid, 'SIGKILL');
  } catch {
    // not running
  }
}

export interface LabListing {
  name: string;
  status: string;
  namespaces: number;
  nodes: string[];
}

/** Labs known from state files or seen as namespaces (an orphan shows as 'orphaned'). */
export function labList(): LabListing[] {
  const byName = new Map<string, LabListing>();
  let dirs: string[] = [];
  try {
    dirs = readdirSync(stateDir());
  } catch {
    dirs = [];
  }
  for (const d of dirs) {
    const st = readState(d);
    if (st) byName.set(d, { name: d, status: st.status, namespaces: 0, nodes: st.plan.nodes.map((n) => n.name) });
  }
  for (const ns of listNamespaces()) {
    const lab = labOfNs(ns);
    if (!lab) continue;
    let e = byName.get(lab);
    if (!e) {
      e = { name: lab, status: 'orphaned', namespaces: 0, nodes: [] };
      byName.set(lab, e);
    }
    e.namespaces++;
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function labDownAll(): string[] {
  const removed: string[] = [];
  for (const l of labList()) removed.push(...labDown(l.name));
  return removed;
}

/** Resolves the namespace of NODE in LAB (LAB may be omitted when exactly one lab exists). */
export function nodeNamespace(node: string, lab?: string): { lab: string; ns: string; state: LabState } {
  let name = lab;
  if (!name) {
    const labs = labList().filter((l) => l.status !== 'orphaned');
    if (labs.length === 0) throw new PathlensError('ERR_LAB_NOT_FOUND', 'no lab is up (pathlens lab up PRESET|SPEC)');
    if (labs.length > 1) throw new PathlensError('ERR_USAGE', `several labs are up (${labs.map((l) => l.name).join(', ')}): name one with --lab`);
    name = labs[0].name;
  }
  const st = readState(name);
  if (!st) throw new PathlensError('ERR_LAB_NOT_FOUND', `no lab named '${name}'`);
  const n = st.plan.nodes.find((x) => x.name === node);
  if (!n && node !== 'wire') throw new PathlensError('ERR_USAGE', `lab '${name}' has no node '${node}' (nodes: ${st.plan.nodes.map((x) => x.name).join(', ')})`);
  return { lab: name, ns: n ? n.ns : nsName(name, 'wire'), state: st };
}
