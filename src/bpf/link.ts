/**
 * What kind of device an interface is, for choosing how BPF programs read its frames: Ethernet
 * (and loopback) frames start with a link-layer header; layer-3 devices (tun, PPP, WireGuard,
 * tunnels) hand programs the IP header first.
 */
import { PathlensError } from '../core/errors.js';
import { linkTypeOf } from '../io/route.js';

export const ARPHRD_ETHER = 1;
export const ARPHRD_LOOPBACK = 772;
/** Link types whose frames start at the IP header in tc and XDP. */
export const ARPHRD_L3 = new Set([0xfffe /* NONE: tun, wireguard */, 512 /* PPP */, 519 /* RAWIP */, 768 /* TUNNEL */, 769 /* TUNNEL6 */, 776 /* SIT */, 778 /* IPGRE */, 823 /* IP6GRE */]);

/** The ARPHRD_* type of an interface (rtnetlink, in the current namespace). */
export function linkType(ifindex: number): number {
  const t = linkTypeOf(ifindex);
  if (typeof t !== 'number') throw new PathlensError('ERR_BPF', `cannot tell what kind of device interface ${ifindex} is: ${t.error}`);
  return t;
}
