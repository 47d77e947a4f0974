/**
 * From a LabSpec to a concrete plan: namespace and interface names, addresses, routes (shortest
 * paths, equal-cost ones as multipath), sysctls and firewall rules. Pure: no system calls, so the
 * whole addressing and routing logic is unit-tested.
 *
 * Addresses are private to the lab's own namespaces:
 *   link i: IPv4 10.(100 + i/256).(i%256).0/24, IPv6 fd00:706c:0:i::/64; side a = .1/::1, b = .2/::2
 *   "phantom" prefixes that no node owns (for unreachable targets): 10.255.0.0/16, fd00:706c:ffff::/48
 */
import { formatIp, parseIp } from '../packet/addr.js';
import { type Impairment, type LabSpec, type NodeSpec, isImpaired } from './spec.js';

export const NS_PREFIX = 'pl-';
export const PHANTOM4 = '10.255.0.0/16';
export const PHANTOM6 = 'fd00:706c:ffff::/48';
/** An address inside the phantom prefixes, handy as an unreachable target. */
export const PHANTOM_HOST4 = '10.255.0.1';
export const PHANTOM_HOST6 = 'fd00:706c:ffff::1';

export interface PlanIface {
  name: string;
  link: number;
  peer: string;
  v4: string;
  v6: string;
  mtu?: number;
}

export interface PlanRoute {
  family: 4 | 6;
  to: string;
  type?: 'unreachable' | 'prohibit' | 'blackhole';
  nexthops: { via: string; dev: string }[];
}

export interface PlanNode {
  name: string;
  ns: string;
  role: 'host' | 'router';
  ifaces: PlanIface[];
  routes: PlanRoute[];
  sysctls: [string, string][];
  /** nftables ruleset for this node, or null. */
  nft: string | null;
}

export interface PlanLink {
  idx: number;
  a: string;
  b: string;
  aIf: string;
  bIf: string;
  v4: [string, string];
  v6: [string, string];
  prefix4: string;
  prefix6: string;
  mtu?: number;
  aToB: Impairment | null;
  bToA: Impairment | null;
  /** Interfaces in the wire namespace when the link goes through the userspace impairment path. */
  wire: { aIf: string; bIf: string } | null;
}

export interface LabPlan {
  name: string;
  nodes: PlanNode[];
  links: PlanLink[];
  wireNs: string | null;
  seed: number;
  impairMode: 'netem' | 'userspace';
}

export function nsName(lab: string, node: string): string {
  return `${NS_PREFIX}${lab}-${node}`;
}

export function linkPrefix4(i: number): string {
  return `10.${100 + (i >> 8)}.${i & 255}.0/24`;
}

export function linkAddr4(i: number, side: 0 | 1): string {
  return `10.${100 + (i >> 8)}.${i & 255}.${side + 1}`;
}

/** RFC 5952 text, so that lab addresses compare equal to what the tools print. */
function canonical6(text: string): string {
  return formatIp(parseIp(text), 0, 6);
}

export function linkPrefix6(i: number): string {
  return `${canonical6(`fd00:706c:0:${i.toString(16)}::`)}/64`;
}

export function linkAddr6(i: number, side: 0 | 1): string {
  return canonical6(`fd00:706c:0:${i.toString(16)}::${side + 1}`);
}

/** Distances (in hops) from every node to the endpoints of a link, forwarding only through routers. */
function distancesTo(spec: LabSpec, link: number, adj: Map<string, { peer: string; link: number }[]>, role: Map<string, string>): Map<string, number> {
  const l = spec.links[link];
  const dist = new Map<string, number>([
    [l.a, 0],
    [l.b, 0],
  ]);
  const queue = [l.a, l.b];
  while (queue.length) {
    const u = queue.shift()!;
    const d = dist.get(u)!;
    if (role.get(u) !== 'router') continue; // only routers forward (a host on the link does not)
    for (const { peer } of adj.get(u) ?? []) {
      if (!dist.has(peer)) {
        dist.set(peer, d + 1);
        queue.push(peer);
      }
    }
  }
  return dist;
}

function effective(link: LabSpec['links'][number], dir: 'a_to_b' | 'b_to_a'): Impairment | null {
  const i = link[dir] ?? link.impair;
  return isImpaired(i) ? { ...i } : null;
}

export function planLab(spec: LabSpec, netemAvailable = false): LabPlan {
  const mode: 'netem' | 'userspace' =
    spec.impair_mode === 'netem' ? 'netem' : spec.impair_mode === 'userspace' ? 'userspace' : netemAvailable ? 'netem' : 'userspace';
  const role = new Map(spec.nodes.map((n) => [n.name, n.role] as [string, string]));
  const adj = new Map<string, { peer: string; link: number }[]>();
  for (const n of spec.nodes) adj.set(n.name, []);
  spec.links.forEach((l, i) => {
    adj.get(l.a)!.push({ peer: l.b, link: i });
    adj.get(l.b)!.push({ peer: l.a, link: i });
  });
  const links: PlanLink[] = spec.links.map((l, i) => {
    const aToB = effective(l, 'a_to_b');
    const bToA = effective(l, 'b_to_a');
    const wire = mode === 'userspace' && (aToB || bToA) ? { aIf: `w${i}a`, bIf: `w${i}b` } : null;
    return {
      idx: i,
      a: l.a,
      b: l.b,
      aIf: `e${i}`,
      bIf: `e${i}`,
      v4: [linkAddr4(i, 0), linkAddr4(i, 1)],
      v6: [linkAddr6(i, 0), linkAddr6(i, 1)],
      prefix4: linkPrefix4(i),
      prefix6: linkPrefix6(i),
      ...(l.mtu !== undefined ? { mtu: l.mtu } : {}),
      aToB,
      bToA,
      wire,
    };
  });
  const dists = spec.links.map((_, i) => distancesTo(spec, i, adj, role));
  const addrOn = (node: string, link: number): { v4: string; v6: string } => {
    const l = links[link];
    const side = l.a === node ? 0 : 1;
    return { v4: l.v4[side], v6: l.v6[side] };
  };
  const nodes: PlanNode[] = spec.nodes.map((n) => {
    const mine = adj.get(n.name)!;
    const ifaces: PlanIface[] = mine.map(({ peer, link }) => {
      const a = addrOn(n.name, link);
      return { name: `e${link}`, link, peer, v4: a.v4, v6: a.v6, ...(links[link].mtu !== undefined ? { mtu: links[link].mtu } : {}) };
    });
    const routes: PlanRoute[] = [];
    const viaNeighbour = (peer: string, link: number) => {
      const p = addrOn(peer, link);
      return { v4: { via: p.v4, dev: `e${link}` }, v6: { via: p.v6, dev: `e${link}` } };
    };
    if (n.role === 'router') {
      spec.links.forEach((_, li) => {
        const d = dists[li];
        const here = d.get(n.name);
        if (here === undefined || here === 0) return;
        const hops = mine.filter(({ peer }) => d.get(peer) === here - 1).map(({ peer, link }) => viaNeighbour(peer, link));
        if (hops.length === 0) return;
        routes.push({ family: 4, to: links[li].prefix4, nexthops: hops.map((h) => h.v4) });
        routes.push({ family: 6, to: links[li].prefix6, nexthops: hops.map((h) => h.v6) });
      });
    }
    const defVia = n.default_via ?? (n.role === 'host' ? mine[0].peer : undefined);
    if (defVia) {
      const link = mine.find((m) => m.peer === defVia)!.link;
      const h = viaNeighbour(defVia, link);
      routes.push({ family: 4, to: 'default', nexthops: [h.v4] });
      routes.push({ family: 6, to: 'default', nexthops: [h.v6] });
    }
    for (const r of n.routes ?? []) {
      if (r.to === 'phantom') {
        routes.push({ family: 4, to: PHANTOM4, type: r.type, nexthops: [] });
        routes.push({ family: 6, to: PHANTOM6, type: r.type, nexthops: [] });
      } else {
        routes.push({ family: r.to.includes(':') ? 6 : 4, to: r.to, type: r.type, nexthops: [] });
      }
    }
    return { name: n.name, ns: nsName(spec.name, n.name), role: n.role, ifaces, routes, sysctls: sysctlsFor(n), nft: nftFor(n, mine) };
  });
  const wireNs = links.some((l) => l.wire) ? nsName(spec.name, 'wire') : null;
  return { name: spec.name, nodes, links, wireNs, seed: spec.seed ?? 1, impairMode: mode };
}

function sysctlsFor(n: NodeSpec): [string, string][] {
  const s: [string, string][] = [
    ['net.ipv4.conf.all.rp_filter', '0'],
    ['net.ipv4.conf.default.rp_filter', '0'],
    ['net.ipv6.conf.all.accept_dad', '0'],
    ['net.ipv6.conf.default.accept_dad', '0'],
    ['net.ipv6.conf.default.accept_ra', '0'],
    ['net.ipv4.ping_group_range', '0 2147483647'],
  ];
  const rl = n.icmp_ratelimit;
  if (n.silent) {
    // A silent router sends no Time Exceeded, and nothing else changes: only that type is rate
    // limited (ratemask), and per destination its limit is one message per SILENT_MS, a token
    // bucket whose first tokens (the kernel grants 60 s' worth) never reach one message.
    s.push(['net.ipv4.icmp_ratemask', String(1 << 11)]);
    s.push(['net.ipv6.icmp.ratemask', '3']);
    s.push(['net.ipv4.icmp_ratelimit', String(SILENT_MS)]);
    s.push(['net.ipv6.icmp.ratelimit', String(SILENT_MS)]);
  } else {
    s.push(['net.ipv4.icmp_ratelimit', String(rl ? rl.ms : 0)]);
    s.push(['net.ipv6.icmp.ratelimit', String(rl ? rl.ms : 0)]);
  }
  s.push(['net.ipv4.icmp_msgs_per_sec', String(rl?.msgs_per_sec ?? 10000000)]);
  s.push(['net.ipv4.icmp_msgs_burst', String(rl?.burst ?? 10000000)]);
  if (n.role === 'router') {
    s.push(['net.ipv4.ip_forward', '1']);
    s.push(['net.ipv6.conf.all.forwarding', '1']);
    s.push(['net.ipv4.fib_multipath_hash_policy', '1']);
    s.push(['net.ipv6.fib_multipath_hash_policy', '1']);
  }
  return s;
}

/** A silent router's ICMP Time Exceeded rate limit: one per destination per 11.5 days. */
export const SILENT_MS = 1_000_000_000;

/** nftables rules: NAT only (silent routers need no tool beyond sysctl). */
function nftFor(n: NodeSpec, mine: { peer: string; link: number }[]): string | null {
  const parts: string[] = [];
  if (n.nat_towards) {
    const link = mine.find((m) => m.peer === n.nat_towards)!.link;
    parts.push(
      'table ip pathlens_nat {',
      '  chain post {',
      '    type nat hook postrouting priority 100; policy accept;',
      `    oifname "e${link}" masquerade`,
      '  }',
      '}',
    );
  }
  return parts.length ? `${parts.join('\n')}\n` : null;
}

/** The address of a node on its first link (its "primary" address), per family. */
export function primaryAddr(plan: LabPlan, node: string, family: 4 | 6): string {
  const n = plan.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node}`);
  return family === 4 ? n.ifaces[0].v4 : n.ifaces[0].v6;
}
