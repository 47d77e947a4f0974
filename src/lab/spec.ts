/**
 * Lab topology specs: the declarative description of a namespace network (JSON or YAML), and its
 * validation. Every error names the field at fault.
 */
import { readConfigText } from '../io/config-file.js';
import { isIP } from 'node:net';
import { PathlensError } from '../core/errors.js';

export interface Impairment {
  /** One-way delay added on this direction, ms. */
  delay_ms?: number;
  /** Uniform jitter: delay varies within ±jitter_ms (may reorder, as netem does). */
  jitter_ms?: number;
  /** Probability (0..1) that a frame is dropped. */
  loss?: number;
  /** Probability (0..1) that a frame skips the delay (and so overtakes others). */
  reorder?: number;
  /** Probability (0..1) that a frame is sent twice. */
  duplicate?: number;
  /** Serialization rate limit, Mbit/s. */
  rate_mbit?: number;
}

export interface RouteSpec {
  /** A CIDR prefix, or "phantom" (the lab's reserved prefixes that no node owns). */
  to: string;
  type: 'unreachable' | 'prohibit' | 'blackhole';
}

export interface NodeSpec {
  name: string;
  role: 'host' | 'router';
  /** Sends no Time Exceeded (IPv4 and IPv6), like a router that hides itself. */
  silent?: boolean;
  /** The kernel's own ICMP rate limiting (net.ipv4.icmp_ratelimit et al.); default: unlimited. */
  icmp_ratelimit?: { ms: number; msgs_per_sec?: number; burst?: number };
  routes?: RouteSpec[];
  /** Default route through this neighbour (hosts default to their first neighbour). */
  default_via?: string;
  /** Masquerade traffic leaving towards this neighbour. */
  nat_towards?: string;
}

export interface LinkSpec {
  a: string;
  b: string;
  mtu?: number;
  /** Applies to both directions unless a_to_b / b_to_a is given. */
  impair?: Impairment;
  a_to_b?: Impairment;
  b_to_a?: Impairment;
}

export interface LabSpec {
  name: string;
  nodes: NodeSpec[];
  links: LinkSpec[];
  /** Seed for the impairment random numbers (reproducible loss patterns). */
  seed?: number;
  /** auto: netem where the kernel has it, else the userspace path. */
  impair_mode?: 'auto' | 'netem' | 'userspace';
  /**
   * A name server for the lab's own addresses (PTR <node>.<lab>.pathlens.test), in the first host;
   * every node's /etc/netns/<ns>/resolv.conf points at it.
   */
  dns?: boolean;
}

export const LAB_NAME_RE = /^[a-z][a-z0-9]{0,9}$/;
export const NODE_NAME_RE = /^[a-z][a-z0-9]{0,7}$/;

function fail(msg: string): never {
  throw new PathlensError('ERR_CONFIG', msg);
}

function num(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(`${where} must be a number from ${min} to ${max}`);
  return v;
}

function prob(v: unknown, where: string): number {
  if (typeof v === 'string' && /^\d+(\.\d+)?%$/.test(v)) v = Number(v.slice(0, -1)) / 100;
  return num(v, where, 0, 1);
}

function keys(o: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${where}: unknown field '${k}' (allowed: ${allowed.join(', ')})`);
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${where} must be an object`);
  return v as Record<string, unknown>;
}

export function validateImpairment(v: unknown, where: string): Impairment {
  const o = obj(v, where);
  keys(o, ['delay_ms', 'jitter_ms', 'loss', 'reorder', 'duplicate', 'rate_mbit'], where);
  const out: Impairment = {};
  if (o.delay_ms !== undefined) out.delay_ms = num(o.delay_ms, `${where}.delay_ms`, 0, 60000);
  if (o.jitter_ms !== undefined) out.jitter_ms = num(o.jitter_ms, `${where}.jitter_ms`, 0, 60000);
  if (o.loss !== undefined) out.loss = prob(o.loss, `${where}.loss`);
  if (o.reorder !== undefined) out.reorder = prob(o.reorder, `${where}.reorder`);
  if (o.duplicate !== undefined) out.duplicate = prob(o.duplicate, `${where}.duplicate`);
  if (o.rate_mbit !== undefined) out.rate_mbit = num(o.rate_mbit, `${where}.rate_mbit`, 0.001, 100000);
  if ((out.jitter_ms ?? 0) > (out.delay_ms ?? 0)) fail(`${where}.jitter_ms must not exceed delay_ms`);
  return out;
}

export function isImpaired(i: Impairment | undefined): boolean {
  return !!i && ((i.delay_ms ?? 0) > 0 || (i.jitter_ms ?? 0) > 0 || (i.loss ?? 0) > 0 || (i.reorder ?? 0) > 0 || (i.duplicate ?? 0) > 0 || (i.rate_mbit ?? 0) > 0);
}

/** Validates an untrusted spec object (from a file or a preset) into a LabSpec. */
export function validateSpec(raw: unknown): LabSpec {
  const o = obj(raw, 'spec');
  keys(o, ['name', 'nodes', 'links', 'seed', 'impair_mode', 'dns'], 'spec');
  if (typeof o.name !== 'string' || !LAB_NAME_RE.test(o.name)) fail('spec.name must be 1-10 characters: a lowercase letter, then lowercase letters or digits');
  if (!Array.isArray(o.nodes) || o.nodes.length < 2) fail('spec.nodes must list at least two nodes');
  if (o.nodes.length > 200) fail('spec.nodes: at most 200 nodes');
  if (!Array.isArray(o.links) || o.links.length < 1) fail('spec.links must list at least one link');
  if (o.links.length > 1000) fail('spec.links: at most 1000 links');
  const names = new Set<string>();
  const nodes: NodeSpec[] = o.nodes.map((nv, i) => {
    const where = `spec.nodes[${i}]`;
    const n = obj(nv, where);
    keys(n, ['name', 'role', 'silent', 'icmp_ratelimit', 'routes', 'default_via', 'nat_towards'], where);
    if (typeof n.name !== 'string' || !NODE_NAME_RE.test(n.name)) fail(`${where}.name must be 1-8 characters: a lowercase letter, then lowercase letters or digits`);
    if (n.name === 'wire') fail(`${where}.name 'wire' is reserved`);
    if (names.has(n.name)) fail(`${where}.name '${n.name}' is used twice`);
    names.add(n.name);
    if (n.role !== 'host' && n.role !== 'router') fail(`${where}.role must be 'host' or 'router'`);
    const node: NodeSpec = { name: n.name, role: n.role };
    if (n.silent !== undefined) {
      if (typeof n.silent !== 'boolean') fail(`${where}.silent must be true or false`);
      node.silent = n.silent;
    }
    if (n.icmp_ratelimit !== undefined) {
      const r = obj(n.icmp_ratelimit, `${where}.icmp_ratelimit`);
      keys(r, ['ms', 'msgs_per_sec', 'burst'], `${where}.icmp_ratelimit`);
      node.icmp_ratelimit = { ms: num(r.ms, `${where}.icmp_ratelimit.ms`, 0, 100000) };
      if (r.msgs_per_sec !== undefined) node.icmp_ratelimit.msgs_per_sec = num(r.msgs_per_sec, `${where}.icmp_ratelimit.msgs_per_sec`, 0, 1e7);
      if (r.burst !== undefined) node.icmp_ratelimit.burst = num(r.burst, `${where}.icmp_ratelimit.burst`, 0, 1e7);
    }
    if (n.routes !== undefined) {
      if (!Array.isArray(n.routes)) fail(`${where}.routes must be a list`);
      node.routes = n.routes.map((rv, j) => {
        const rw = `${where}.routes[${j}]`;
        const r = obj(rv, rw);
        keys(r, ['to', 'type'], rw);
        if (typeof r.to !== 'string' || !(r.to === 'phantom' || isPrefix(r.to))) fail(`${rw}.to must be a CIDR prefix (an IPv4 or IPv6 address, '/', a length up to 32 or 128) or 'phantom'`);
        if (r.type !== 'unreachable' && r.type !== 'prohibit' && r.type !== 'blackhole') fail(`${rw}.type must be unreachable, prohibit or blackhole`);
        return { to: r.to, type: r.type };
      });
    }
    for (const f of ['default_via', 'nat_towards'] as const) {
      if (n[f] !== undefined) {
        if (typeof n[f] !== 'string') fail(`${where}.${f} must be a node name`);
        node[f] = n[f] as string;
      }
    }
    return node;
  });
  const links: LinkSpec[] = o.links.map((lv, i) => {
    const where = `spec.links[${i}]`;
    const l = obj(lv, where);
    keys(l, ['a', 'b', 'mtu', 'impair', 'a_to_b', 'b_to_a'], where);
    if (typeof l.a !== 'string' || !names.has(l.a)) fail(`${where}.a must name a node`);
    if (typeof l.b !== 'string' || !names.has(l.b)) fail(`${where}.b must name a node`);
    if (l.a === l.b) fail(`${where} links a node to itself`);
    const link: LinkSpec = { a: l.a, b: l.b };
    if (l.mtu !== undefined) link.mtu = num(l.mtu, `${where}.mtu`, 1280, 65535);
    if (l.impair !== undefined) link.impair = validateImpairment(l.impair, `${where}.impair`);
    if (l.a_to_b !== undefined) link.a_to_b = validateImpairment(l.a_to_b, `${where}.a_to_b`);
    if (l.b_to_a !== undefined) link.b_to_a = validateImpairment(l.b_to_a, `${where}.b_to_a`);
    return link;
  });
  for (const n of nodes) {
    const neighbours = new Set(links.filter((l) => l.a === n.name || l.b === n.name).map((l) => (l.a === n.name ? l.b : l.a)));
    if (neighbours.size === 0) fail(`node '${n.name}' has no link`);
    if (n.default_via && !neighbours.has(n.default_via)) fail(`node '${n.name}': default_via '${n.default_via}' is not a neighbour`);
    if (n.nat_towards && !neighbours.has(n.nat_towards)) fail(`node '${n.name}': nat_towards '${n.nat_towards}' is not a neighbour`);
  }
  const spec: LabSpec = { name: o.name, nodes, links };
  if (o.seed !== undefined) spec.seed = num(o.seed, 'spec.seed', 0, 2 ** 32 - 1);
  if (o.impair_mode !== undefined) {
    if (o.impair_mode !== 'auto' && o.impair_mode !== 'netem' && o.impair_mode !== 'userspace') fail("spec.impair_mode must be 'auto', 'netem' or 'userspace'");
    spec.impair_mode = o.impair_mode;
  }
  if (o.dns !== undefined) {
    if (typeof o.dns !== 'boolean') fail('spec.dns must be true or false');
    if (o.dns && !nodes.some((n) => n.role === 'host')) fail('spec.dns needs a host node to run the name server');
    spec.dns = o.dns;
  }
  return spec;
}

/** An address and a prefix length that fits its family (10.0.0.0/8, fd00::/64). */
function isPrefix(text: string): boolean {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(text);
  if (!m) return false;
  const fam = isIP(m[1]);
  return fam !== 0 && Number(m[2]) <= (fam === 4 ? 32 : 128);
}

/** Largest spec file read: a lab of hundreds of nodes fits in a few hundred KiB. */
export const MAX_SPEC_BYTES = 1 << 20;

/** Reads a spec file (.json, .yaml or .yml). */
export async function readSpecFile(path: string): Promise<LabSpec> {
  const text = readConfigText(path, MAX_SPEC_BYTES, 'a lab spec');
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : (await import('yaml')).parse(text, { logLevel: 'error' });
  } catch (e) {
    throw new PathlensError('ERR_CONFIG', `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
  return validateSpec(raw);
}
