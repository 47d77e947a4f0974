/**
 * A lab's links after it is up: `lab link A B down|up` (a link taken down at both ends, or brought
 * back with its addresses, neighbours and routes), and the one way a planned route is written as
 * an `ip -batch` line (lab.ts builds nodes with it too).
 */
import { PathlensError } from '../core/errors.js';
import type { LabPlan, PlanNode } from './plan.js';
import { must } from './sh.js';

/** One route as an `ip -batch` line. ip's batch mode takes no -6: the family follows from the addresses (::/0 for the default). */
export function routeCmd(r: PlanNode['routes'][number], verb: 'add' | 'replace'): string {
  const to = r.to === 'default' ? (r.family === 6 ? '::/0' : '0.0.0.0/0') : r.to;
  if (r.type) return `route ${verb} ${r.type} ${to}`;
  if (r.nexthops.length === 1) return `route ${verb} ${to} via ${r.nexthops[0].via} dev ${r.nexthops[0].dev}`;
  return `route ${verb} ${to} ${r.nexthops.map((h) => `nexthop via ${h.via} dev ${h.dev}`).join(' ')}`;
}

/**
 * `lab link A B down|up`: the link between nodes A and B taken down at both ends (the kernel then
 * drops the routes, IPv6 addresses and neighbour entries on it, as on a real router), or brought
 * back with all of them: addresses, permanent neighbours, and every route of both nodes
 * (`route replace`, so the routes that never left are left as they are). The link's impairment
 * path, if any, is not touched.
 */
export function labLink(st: { name: string; plan: LabPlan }, a: string, b: string, state: 'down' | 'up'): void {
  const na = st.plan.nodes.find((n) => n.name === a);
  const nb = st.plan.nodes.find((n) => n.name === b);
  if (!na || !nb) throw new PathlensError('ERR_USAGE', `lab '${st.name}' has no node '${!na ? a : b}' (nodes: ${st.plan.nodes.map((x) => x.name).join(', ')})`);
  const ia = na.ifaces.find((i) => i.peer === b);
  if (!ia) throw new PathlensError('ERR_USAGE', `lab '${st.name}': no link between ${a} and ${b}`);
  const ib = nb.ifaces.find((i) => i.link === ia.link)!;
  const ends: [PlanNode, typeof ia, typeof ib][] = [
    [na, ia, ib],
    [nb, ib, ia],
  ];
  if (state === 'down') {
    for (const [n, i] of ends) must('ip', ['-n', n.ns, 'link', 'set', 'dev', i.name, 'down']);
    return;
  }
  for (const [n, i] of ends) must('ip', ['-n', n.ns, '-batch', '-'], `addr replace ${i.v4}/24 dev ${i.name}
addr replace ${i.v6}/64 dev ${i.name} nodad
link set ${i.name} up
`);
  for (const [n, i, peer] of ends) {
    const other = n === na ? nb : na;
    const links = JSON.parse(must('ip', ['-j', '-n', other.ns, 'link', 'show', 'dev', peer.name])) as { address?: string }[];
    const mac = links[0]?.address;
    if (!mac) throw new PathlensError('ERR_LAB', `no MAC address for ${other.name}/${peer.name}`);
    const cmds = [`neigh replace ${peer.v4} lladdr ${mac} dev ${i.name} nud permanent`, `neigh replace ${peer.v6} lladdr ${mac} dev ${i.name} nud permanent`];
    for (const r of n.routes) cmds.push(routeCmd(r, 'replace'));
    must('ip', ['-n', n.ns, '-batch', '-'], `${cmds.join('\n')}\n`);
  }
}
