/**
 * Built-in topologies. Each takes a few parameters and returns an ordinary LabSpec, so a preset
 * and a spec file go through the same validation and the same code path.
 */
import { PathlensError } from '../core/errors.js';
import { type Impairment, type LabSpec, type LinkSpec, type NodeSpec, validateSpec } from './spec.js';

export interface PresetParams {
  name?: string;
  routers?: number;
  width?: number;
  delayMs?: number;
  jitterMs?: number;
  loss?: number;
  silent?: number[];
  mtu?: number;
  at?: number;
  code?: 'host' | 'net' | 'admin';
  seed?: number;
}

function impairment(p: PresetParams): Impairment | undefined {
  const i: Impairment = {};
  if (p.delayMs) i.delay_ms = p.delayMs;
  if (p.jitterMs) i.jitter_ms = p.jitterMs;
  if (p.loss) i.loss = p.loss;
  return Object.keys(i).length ? i : undefined;
}

function withImpair(l: LinkSpec, i: Impairment | undefined): LinkSpec {
  return i ? { ...l, impair: { ...i } } : l;
}

/** src - r1 - ... - rN - dst. Silent routers by number (1-based). */
export function chain(p: PresetParams): LabSpec {
  const n = p.routers ?? 3;
  if (!(n >= 1 && n <= 60)) throw new PathlensError('ERR_USAGE', 'chain: --routers must be 1..60');
  const silent = new Set(p.silent ?? []);
  for (const s of silent) if (s < 1 || s > n) throw new PathlensError('ERR_USAGE', `chain: silent router ${s} is not one of r1..r${n}`);
  const nodes: NodeSpec[] = [{ name: 'src', role: 'host' }];
  for (let i = 1; i <= n; i++) nodes.push({ name: `r${i}`, role: 'router', ...(silent.has(i) ? { silent: true } : {}) });
  nodes.push({ name: 'dst', role: 'host' });
  const imp = impairment(p);
  const links: LinkSpec[] = [];
  for (let i = 0; i + 1 < nodes.length; i++) links.push(withImpair({ a: nodes[i].name, b: nodes[i + 1].name }, imp));
  return validateSpec({ name: p.name ?? 'chain', nodes, links, ...(p.seed !== undefined ? { seed: p.seed } : {}) });
}

/** src - ra - {m1..mW} - rb - dst: W equal-cost paths, L4 multipath hashing on. */
export function ecmp(p: PresetParams): LabSpec {
  const w = p.width ?? 4;
  if (!(w >= 2 && w <= 32)) throw new PathlensError('ERR_USAGE', 'ecmp: --width must be 2..32');
  const nodes: NodeSpec[] = [
    { name: 'src', role: 'host' },
    { name: 'ra', role: 'router' },
  ];
  for (let i = 1; i <= w; i++) nodes.push({ name: `m${i}`, role: 'router' });
  nodes.push({ name: 'rb', role: 'router' }, { name: 'dst', role: 'host' });
  const imp = impairment(p);
  const links: LinkSpec[] = [withImpair({ a: 'src', b: 'ra' }, imp)];
  for (let i = 1; i <= w; i++) links.push(withImpair({ a: 'ra', b: `m${i}` }, imp));
  for (let i = 1; i <= w; i++) links.push(withImpair({ a: `m${i}`, b: 'rb' }, imp));
  links.push(withImpair({ a: 'rb', b: 'dst' }, imp));
  return validateSpec({ name: p.name ?? 'ecmp', nodes, links, ...(p.seed !== undefined ? { seed: p.seed } : {}) });
}

/** A chain whose link leaving router r<at> has a smaller MTU: r<at> sends Fragmentation Needed / Packet Too Big. */
export function mtu(p: PresetParams): LabSpec {
  const s = chain({ ...p, routers: p.routers ?? 4, name: p.name ?? 'mtu' });
  const at = p.at ?? 2;
  if (!(at >= 1 && at <= (p.routers ?? 4))) throw new PathlensError('ERR_USAGE', 'mtu: --at must name a router (1..routers)');
  s.links[at].mtu = p.mtu ?? 1400; // links[at] joins r<at> and the next node
  return validateSpec(s);
}

/**
 * A chain where router r<at> cannot deliver to the phantom prefix: 'host' (unreachable route:
 * Host Unreachable), 'admin' (prohibit route: Administratively Prohibited), or 'net' (no route at
 * all: Net Unreachable / No Route). Routers before it forward phantom traffic towards it.
 */
export function unreach(p: PresetParams): LabSpec {
  const n = p.routers ?? 3;
  const at = p.at ?? n;
  if (!(at >= 1 && at <= n)) throw new PathlensError('ERR_USAGE', 'unreach: --at must name a router (1..routers)');
  const s = chain({ ...p, routers: n, name: p.name ?? 'unreach' });
  for (let i = 1; i < at; i++) s.nodes[i].default_via = `r${i + 1}`;
  const code = p.code ?? 'host';
  if (code === 'host') s.nodes[at].routes = [{ to: 'phantom', type: 'unreachable' }];
  else if (code === 'admin') s.nodes[at].routes = [{ to: 'phantom', type: 'prohibit' }];
  return validateSpec(s);
}

/** A chain where r1 masquerades traffic towards r2 (src is behind NAT). */
export function nat(p: PresetParams): LabSpec {
  const s = chain({ ...p, routers: p.routers ?? 3, name: p.name ?? 'nat' });
  s.nodes[1].nat_towards = 'r2';
  return validateSpec(s);
}

/** The demo: 9 routers, 5 ms one-way per link (10 ms RTT per hop), r3 and r6 silent, the lab's name server on. */
export function demo(p: PresetParams): LabSpec {
  return { ...chain({ routers: 9, delayMs: 5, silent: [3, 6], ...defined(p), name: p.name ?? 'demo' }), dns: true };
}

/** Drops keys whose value is undefined, so that they do not override defaults when spread. */
export function defined<T extends object>(p: T): Partial<T> {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export const PRESETS: Record<string, (p: PresetParams) => LabSpec> = { chain, ecmp, mtu, unreach, nat, demo };
