/**
 * What an AF_XDP prober needs before its first frame, whatever it probes for (trace's sweep
 * today): frames go straight to the device, so the prober does the kernel's routing and neighbour
 * work itself, once. Every destination's route is read (rtnetlink) and all must leave by one
 * interface through one gateway; the gateway's link-layer address comes from the kernel's
 * neighbour table (one datagram to the gateway has the kernel resolve it when there is no entry
 * yet); the source port is held by an ordinary UDP socket for the prober's life, so no local
 * application is handed its late replies. Then the UDP frame template probes are patched from.
 */
import { SOCK_DGRAM } from '../core/constants.js';
import { PathlensError, errnoName } from '../core/errors.js';
import { type Family, formatIp, sockaddr } from '../packet/addr.js';
import { onesSum } from '../packet/checksum.js';
import { type Placement, inNamespace, openSocket } from '../io/placement.js';
import { linkAddressOf, neighbourOf, routesOf } from '../io/route.js';
import type { Socket } from '../io/socket.js';
import { native } from '../native/index.js';

const ETH = 14;
/** How long the kernel may take to resolve the gateway, ms. */
const RESOLVE_MS = 3000;

export interface XskPath {
  family: Family;
  ifindex: number;
  gateway: Uint8Array;
  source: Uint8Array;
  srcMac: Uint8Array;
  gwMac: Uint8Array;
  /** The UDP socket holding the source port (close it with the prober). */
  holder: Socket;
  sport: number;
}

export interface XskPathOptions {
  placement: Placement;
  /** The source address (default: the route's). */
  source?: Uint8Array;
  /** The source port (default: one the kernel picks). */
  srcPort?: number;
  /** How each destination was given, for the messages. */
  names: string[];
  /** The option the messages start with (`--xdp`). */
  who: string;
}

/** The one next hop of every destination in `dsts` (one family), or a one-line PathlensError. */
export function openXskPath(dsts: Uint8Array[], o: XskPathOptions): XskPath {
  const who = o.who;
  const fam: Family = dsts[0].length === 4 ? 4 : 6;
  const first = o.names[0];
  const routes = routesOf(dsts, o.placement, o.source);
  if ('error' in routes) throw new PathlensError('ERR_SYSCALL', `${who}: the kernel's routes could not be read (${routes.error})`);
  const r0 = routes[0];
  if ('error' in r0) throw new PathlensError('ERR_SEND', `${who}: ${first}: ${r0.error}`);
  if (r0.oif === null) throw new PathlensError('ERR_SEND', `${who}: ${first}: the route names no interface`);
  if (r0.gateway === null) throw new PathlensError('ERR_USAGE', `${who}: ${first} is on the probing interface's own link (no gateway); AF_XDP probes go through a router`);
  sameNextHop(routes, r0.oif, r0.gateway, fam, o, first);
  const ifindex = r0.oif;
  const iface = o.placement.iface;
  if (iface !== undefined) {
    const want = inNamespace(o.placement.netns, () => native().ifNameToIndex(iface));
    if (want !== ifindex) throw new PathlensError('ERR_USAGE', `${who}: the targets' route leaves by interface ${ifindex}, not ${iface}`);
  }
  const source = o.source ?? r0.prefsrc;
  if (!source) throw new PathlensError('ERR_SEND', `${who}: the route to ${first} gives no source address (use --source)`);
  const srcMac = linkAddressOf(ifindex, o.placement.netns);
  if ('error' in srcMac) throw new PathlensError('ERR_SEND', `${who}: the interface's link-layer address: ${srcMac.error}`);
  if (srcMac.length !== 6) throw new PathlensError('ERR_UNSUPPORTED', `${who}: the probing interface is not Ethernet`);
  const holder = openSocket(fam === 4 ? 2 : 10, SOCK_DGRAM, 17, { netns: o.placement.netns });
  try {
    const n = native();
    const rc = n.bind(holder.fd, sockaddr(source, o.srcPort ?? 0));
    if (rc < 0) throw new PathlensError('ERR_SEND', `${who}: the source port ${o.srcPort ?? 0} cannot be held (${errnoName(rc)})`);
    const name = new Uint8Array(28);
    n.getsockname(holder.fd, name);
    const sport = (name[2] << 8) | name[3];
    const gwMac = resolveGateway(holder, ifindex, r0.gateway, o.placement.netns, fam, who);
    return { family: fam, ifindex, gateway: r0.gateway, source, srcMac, gwMac, holder, sport };
  } catch (e) {
    holder.close();
    throw e;
  }
}

type Routes = Exclude<ReturnType<typeof routesOf>, { error: string }>;

function sameNextHop(routes: Routes, oif: number, gateway: Uint8Array, fam: Family, o: XskPathOptions, first: string): void {
  const gw = formatIp(gateway, 0, fam);
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i];
    if ('error' in r) throw new PathlensError('ERR_SEND', `${o.who}: ${o.names[i]}: ${r.error}`);
    if (r.oif !== oif || r.gateway === null || formatIp(r.gateway, 0, fam) !== gw)
      throw new PathlensError('ERR_USAGE', `${o.who}: ${o.names[i]} leaves by another interface or gateway than ${first} (AF_XDP frames have one next hop: split the list)`);
  }
}

/** Checks that more destinations leave by the path's interface and gateway (a one-line PathlensError otherwise). */
export function checkXskPath(p: XskPath, dsts: Uint8Array[], o: XskPathOptions, first: string): void {
  const routes = routesOf(dsts, o.placement, p.source);
  if ('error' in routes) throw new PathlensError('ERR_SYSCALL', `${o.who}: the kernel's routes could not be read (${routes.error})`);
  sameNextHop(routes, p.ifindex, p.gateway, p.family, o, first);
}

/** The gateway's link-layer address from the neighbour table, after one datagram to it (TTL 1, discard port) when there is no usable entry. */
function resolveGateway(holder: Socket, ifindex: number, gw: Uint8Array, netns: string | undefined, fam: Family, who: string): Uint8Array {
  const n = native();
  const until = performance.now() + RESOLVE_MS;
  let sent = false;
  for (;;) {
    const a = neighbourOf(ifindex, gw, netns);
    if (a !== null && 'error' in a) throw new PathlensError('ERR_SEND', `${who}: the gateway's neighbour entry: ${a.error}`);
    if (a !== null && a.usable && a.lladdr && a.lladdr.length === 6) return a.lladdr;
    if (performance.now() > until) throw new PathlensError('ERR_SEND', `${who}: the gateway ${formatIp(gw, 0, fam)} has no link-layer address (the kernel could not resolve it)`);
    if (!sent) {
      const ttl = new Uint8Array(4);
      new DataView(ttl.buffer).setInt32(0, 1, true);
      n.setsockopt(holder.fd, fam === 4 ? 0 : 41, fam === 4 ? 2 : 16, ttl); // IP_TTL, IPV6_UNICAST_HOPS
      n.connect(holder.fd, sockaddr(gw, 9));
      n.sendeach(holder.fd, 1, Int32Array.of(0, 1, 0, 0, 0, 0), new Uint8Array(1), null, null, 0x40, new Float64Array(4));
      sent = true;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

/** A 32-bit ones'-complement sum folded to 16 bits. */
export function fold16(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

export interface UdpTemplate {
  /** Ethernet, IP and UDP headers and the payload, with the destination, TTL, destination port and checksums zero. */
  frame: Uint8Array;
  len: number;
  udpOff: number;
  /** IPv4: the header's sum without TTL and destination; IPv6: the UDP checksum's sum without destination and destination port. */
  ipSum: number;
  udpSum: number;
}

/** The frame every UDP probe over `p` starts from (in a buffer of `slot` bytes). */
export function udpTemplate(p: XskPath, payload: Uint8Array, slot: number): UdpTemplate {
  const f = new Uint8Array(slot);
  const dv = new DataView(f.buffer);
  f.set(p.gwMac, 0);
  f.set(p.srcMac, 6);
  const udpLen = 8 + payload.length;
  let udp: number;
  let ipSum = 0;
  let udpSum = 0;
  if (p.family === 4) {
    dv.setUint16(12, 0x0800);
    f[ETH] = 0x45;
    dv.setUint16(ETH + 2, 20 + udpLen);
    f[ETH + 9] = 17;
    f.set(p.source, ETH + 12);
    ipSum = onesSum(f, ETH, 20); // TTL, checksum and destination still zero
    udp = ETH + 20;
  } else {
    dv.setUint16(12, 0x86dd);
    dv.setUint32(ETH, 0x60000000);
    dv.setUint16(ETH + 4, udpLen);
    f[ETH + 6] = 17;
    f.set(p.source, ETH + 8);
    udp = ETH + 40;
  }
  if (udp + udpLen > slot) throw new PathlensError('ERR_USAGE', `a probe of ${udp + udpLen} bytes does not fit a ${slot}-byte slot`);
  dv.setUint16(udp, p.sport);
  dv.setUint16(udp + 4, udpLen);
  f.set(payload, udp + 8);
  if (p.family === 6) {
    // Pseudo-header (source; the destination is added per probe), length, next header; the UDP
    // header and payload with the destination port and checksum zero.
    udpSum = onesSum(p.source, 0, 16) + udpLen + 17 + onesSum(f, udp, udpLen);
  }
  return { frame: f, len: udp + udpLen, udpOff: udp, ipSum, udpSum };
}
