/**
 * One socket-setup path for every probe socket (trace and monitor): placed (netns, device, mark),
 * the error queue (IP_RECVERR / IPV6_RECVERR, RFC 4884 extensions where the kernel has them),
 * kernel receive timestamps, a receive buffer, bound to the source; the ICMP socket ladder (a ping
 * socket, else a raw one) with the one-line refusal; and the route's MTU and source address.
 */
import {
  AF_INET,
  AF_INET6,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IPV6,
  IPV6_MTU,
  IPV6_RECVERR,
  IPV6_RECVERR_RFC4884,
  IPV6_RECVPKTINFO,
  IP_MTU,
  IP_MTU_DISCOVER,
  IP_PKTINFO,
  IP_PMTUDISC_PROBE,
  IP_RECVERR,
  IP_RECVERR_RFC4884,
  SOCK_DGRAM,
  SOCK_RAW,
  SOL_IP,
  SOL_SOCKET,
  SO_RCVBUF,
  SK_MEMINFO_DROPS,
  SO_MEMINFO,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SO_TIMESTAMPNS,
} from '../core/constants.js';
import { EACCES, EPERM } from '../core/errno.js';
import { PathlensError, SysError } from '../core/errors.js';
import { type Placement, openSocket } from '../io/placement.js';
import type { Socket } from '../io/socket.js';
import { native } from '../native/index.js';
import { type Family, SockaddrView, formatIp, readSockaddr, sockaddr, writeSockaddr } from '../packet/addr.js';

export interface ProbeSocketOptions {
  placement?: Placement;
  /** The source address (the way out's); any when absent. */
  source?: Uint8Array;
  srcPort?: number;
  /** ICMP errors on the error queue (off for raw ICMP sockets, which read them whole). */
  recverr: boolean;
  /** Receive buffer asked for, bytes. */
  rcvbuf: number;
  /** Past net.core.rmem_max where the process may (SO_RCVBUFFORCE, CAP_NET_ADMIN). */
  forceRcvbuf?: boolean;
  /**
   * Send buffer asked for, bytes (the kernel's default when absent), past net.core.wmem_max where
   * the process may: a socket sending to many destinations at once holds every packet not yet
   * freed by the device against it, and a full one refuses the next send.
   */
  sndbuf?: number;
  /** The interface each reply arrived on, in a control message (costs a few bytes a reply). */
  pktinfo?: boolean;
  /**
   * IPv4: DF on, the path MTU not applied (IP_PMTUDISC_PROBE). An unfragmentable datagram from an
   * unconnected socket gets IP ID 0 (RFC 6864), which spares the kernel its per-destination ID
   * generator: for probes to ten thousand destinations, a hashed counter and a cache miss each.
   */
  dontFragment?: boolean;
}

/**
 * Packets the kernel dropped on this socket so far (SO_MEMINFO's drop count: a full receive buffer
 * among others; every socket kind has it, where SO_RXQ_OVFL's control message is not given on a
 * ping socket), or -1 when the kernel does not say.
 */
export function socketDrops(sock: Socket): number {
  const out = MEMINFO;
  const n = native().getsockopt(sock.fd, SOL_SOCKET, SO_MEMINFO, out);
  if (n < (SK_MEMINFO_DROPS + 1) * 4) return -1;
  return new DataView(out.buffer).getUint32(SK_MEMINFO_DROPS * 4, true);
}
const MEMINFO = new Uint8Array(64);

/** Opens a probe socket as `o` says; closed again if any step fails. Returns it with its local port. */
export function openProbeSocket(family: Family, type: number, proto: number, o: ProbeSocketOptions): { sock: Socket; port: number } {
  const sock = openSocket(family === 4 ? AF_INET : AF_INET6, type, proto, o.placement ?? {});
  try {
    if (o.recverr) {
      if (family === 4) {
        sock.setInt(SOL_IP, IP_RECVERR, 1, 'IP_RECVERR');
        sock.trySetInt(SOL_IP, IP_RECVERR_RFC4884, 1); // kernels >= 5.9
      } else {
        sock.setInt(IPPROTO_IPV6, IPV6_RECVERR, 1, 'IPV6_RECVERR');
        sock.trySetInt(IPPROTO_IPV6, IPV6_RECVERR_RFC4884, 1); // kernels >= 5.9
      }
    }
    if (o.dontFragment && family === 4) sock.setInt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, 'IP_MTU_DISCOVER');
    sock.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1, 'SO_TIMESTAMPNS');
    if (!o.forceRcvbuf || sock.trySetInt(SOL_SOCKET, SO_RCVBUFFORCE, o.rcvbuf) < 0) sock.trySetInt(SOL_SOCKET, SO_RCVBUF, o.rcvbuf);
    if (o.sndbuf !== undefined && sock.trySetInt(SOL_SOCKET, SO_SNDBUFFORCE, o.sndbuf) < 0) sock.trySetInt(SOL_SOCKET, SO_SNDBUF, o.sndbuf);
    if (o.pktinfo) {
      // Best effort: the interface each reply arrived on (reported as ifindex when the kernel says).
      if (family === 4) sock.trySetInt(SOL_IP, IP_PKTINFO, 1);
      else sock.trySetInt(IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
    }
    const local = new Uint8Array(28);
    const any = o.source ?? new Uint8Array(family === 4 ? 4 : 16);
    const len = writeSockaddr(local, 0, any, o.srcPort ?? 0);
    sock.bind(local.subarray(0, len), o.source ? `bind to ${formatIp(any, 0, family)}` : 'bind');
    const nm = sock.localName();
    const v = new SockaddrView();
    readSockaddr(new DataView(nm.buffer, nm.byteOffset, nm.byteLength), 0, nm.length, v);
    return { sock, port: v.port };
  } catch (e) {
    sock.close();
    throw e;
  }
}

export type IcmpSocketKind = 'ping' | 'raw';
/** auto: ping socket if allowed, raw otherwise; unpriv: ping only; raw: raw only. */
export type SocketChoice = 'auto' | 'unpriv' | 'raw';

export function icmpPrivilegeHint(family: Family): string {
  return (
    `ICMP probes need an ICMP datagram socket, allowed when the sysctl net.ipv4.ping_group_range includes your group ` +
    `(sysctl -w net.ipv4.ping_group_range="0 2147483647"), or a raw socket, which needs CAP_NET_RAW ` +
    `(setcap cap_net_raw+ep "$(command -v node)", or run as root)${family === 6 ? '; the same sysctl governs ICMPv6' : ''}`
  );
}

const refused = (e: unknown): e is SysError => e instanceof SysError && e.syscall === 'socket' && (e.errno === EACCES || e.errno === EPERM);

/**
 * Opens the ICMP socket the choice allows: a ping socket first, raw when that is refused. On a ping
 * socket the kernel sets the echo id (the socket's port, returned) and delivers only replies with
 * it; a raw socket sees every ICMP message and reads errors whole (no error queue).
 */
export function openIcmpSocket(family: Family, choice: SocketChoice, o: Omit<ProbeSocketOptions, 'recverr'> & { recverr?: boolean }): { sock: Socket; kind: IcmpSocketKind; port: number } {
  const proto = family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  let pingErr: unknown = null;
  if (choice !== 'raw') {
    try {
      const { sock, port } = openProbeSocket(family, SOCK_DGRAM, proto, { ...o, recverr: o.recverr ?? true });
      return { sock, kind: 'ping', port };
    } catch (e) {
      if (!refused(e)) throw e;
      pingErr = e;
      if (choice === 'unpriv') throw new PathlensError('ERR_PRIVILEGE', `ICMP datagram (ping) socket refused (${e.sysCode}): ${icmpPrivilegeHint(family)}`);
    }
  }
  try {
    const { sock } = openProbeSocket(family, SOCK_RAW, proto, { ...o, recverr: false });
    return { sock, kind: 'raw', port: 0 };
  } catch (e) {
    if (refused(e)) throw new PathlensError('ERR_PRIVILEGE', `${pingErr ? 'ping socket and raw socket both refused' : `raw ICMP socket refused (${e.sysCode})`}: ${icmpPrivilegeHint(family)}`);
    throw e;
  }
}

/** Runs `f` on a datagram socket connected to `target` (the kernel's route to it). */
function withRoute<T>(target: Uint8Array, placement: Placement | undefined, f: (s: Socket, fam: Family) => T): T {
  const fam: Family = target.length === 4 ? 4 : 6;
  const s = openSocket(fam === 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0, placement ?? {});
  try {
    const rc = s.connect(sockaddr(target, 9));
    if (rc < 0) throw new SysError('connect', rc, `route to ${formatIp(target, 0, fam)}`);
    return f(s, fam);
  } finally {
    s.close();
  }
}

/** The MTU of the route to `target` (a connected datagram socket's IP_MTU / IPV6_MTU). */
export function routeMtu(target: Uint8Array, placement: Placement | undefined): number {
  return withRoute(target, placement, (s, fam) => (fam === 4 ? s.getInt(SOL_IP, IP_MTU) : s.getInt(IPPROTO_IPV6, IPV6_MTU)));
}

/** The source address the kernel picks for `target` (a connected datagram socket's local name). */
export function routeSource(target: Uint8Array, placement: Placement | undefined): Uint8Array {
  return withRoute(target, placement, (s, fam) => {
    const nm = s.localName();
    const v = new SockaddrView();
    readSockaddr(new DataView(nm.buffer, nm.byteOffset, nm.byteLength), 0, nm.length, v);
    return nm.slice(v.addrOff, v.addrOff + (fam === 4 ? 4 : 16));
  });
}
