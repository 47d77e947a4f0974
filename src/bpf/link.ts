/**
 * What kind of device an interface is, for choosing how BPF programs read its frames: Ethernet
 * (and loopback) frames start with a link-layer header; layer-3 devices (tun, PPP, WireGuard,
 * tunnels) hand programs the IP header first.
 */
import { endianness } from 'node:os';
import { AF_PACKET, SOCK_DGRAM } from '../core/constants.js';
import { PathlensError } from '../core/errors.js';
import { Socket } from '../io/socket.js';
import { sockaddrLl } from '../packet/addr.js';

export const ARPHRD_ETHER = 1;
export const ARPHRD_LOOPBACK = 772;
/** Link types whose frames start at the IP header in tc and XDP. */
export const ARPHRD_L3 = new Set([0xfffe /* NONE: tun, wireguard */, 512 /* PPP */, 519 /* RAWIP */, 768 /* TUNNEL */, 769 /* TUNNEL6 */, 776 /* SIT */, 778 /* IPGRE */, 823 /* IP6GRE */]);

const LE = endianness() === 'LE';

/** The ARPHRD_* type of an interface (from a packet socket bound to it that receives nothing). */
export function linkType(ifindex: number): number {
  const s = new Socket(AF_PACKET, SOCK_DGRAM, 0);
  try {
    s.bind(sockaddrLl(ifindex, 0), 'bind packet socket');
    const sa = s.localName();
    if (sa.length < 12) throw new PathlensError('ERR_BPF', 'getsockname on a packet socket returned a short address');
    return new DataView(sa.buffer, sa.byteOffset).getUint16(8, LE);
  } finally {
    s.close();
  }
}
