/**
 * The connect() transport's socket: one non-blocking TCP socket per probe (no privilege needed),
 * the kernel sends the SYN inside connect(). Shared by trace (`-T`, a TTL per probe, ICMP errors
 * on the socket's error queue) and the monitor (is the port alive). The connection never opens
 * for long: SO_LINGER 0 makes close() an RST (no FIN exchange, no TIME_WAIT), and a user timeout
 * below the initial SYN RTO makes the kernel give up instead of retransmitting, so an answer can
 * only be to the first SYN.
 */
import {
  AF_INET,
  AF_INET6,
  IPPROTO_IPV6,
  IPPROTO_TCP,
  IPV6_RECVERR,
  IPV6_RECVERR_RFC4884,
  IPV6_UNICAST_HOPS,
  IP_RECVERR,
  IP_RECVERR_RFC4884,
  IP_TTL,
  SOCK_STREAM,
  SOL_IP,
  SOL_SOCKET,
  SO_LINGER,
  SO_TIMESTAMPNS,
  TCP_USER_TIMEOUT,
} from '../core/constants.js';
import { ECONNREFUSED } from '../core/errno.js';
import { type Placement, openSocket } from '../io/placement.js';
import type { Socket } from '../io/socket.js';
import type { Family } from '../packet/addr.js';

/** Below the kernel's initial SYN RTO (TCP_TIMEOUT_INIT, 1 s): the SYN is never retransmitted. */
export const CONNECT_USER_TIMEOUT_MS = 900;
/** A connect() probe is answered within the kernel's initial RTO or never. */
export const CONNECT_MAX_WAIT_MS = 1000;

/** struct linger { l_onoff = 1, l_linger = 0 } */
const LINGER_ZERO = new Uint8Array(8);
new DataView(LINGER_ZERO.buffer).setInt32(0, 1, true);

export interface ConnectSocketOptions {
  placement?: Placement;
  /** The bound local address (sockaddr bytes, port 0), when a source is given. */
  local?: Uint8Array;
  localWhat?: string;
  /** The probe's TTL / hop limit, with ICMP errors on the error queue (trace); the default TTL otherwise. */
  ttl?: number;
}

/** Opens one probe's TCP socket as `o` says; closed again if any step fails. */
export function openConnectSocket(family: Family, o: ConnectSocketOptions): Socket {
  const sock = openSocket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM, 0, o.placement ?? {});
  try {
    if (o.ttl !== undefined) {
      if (family === 4) {
        sock.setInt(SOL_IP, IP_TTL, o.ttl, 'IP_TTL');
        sock.setInt(SOL_IP, IP_RECVERR, 1, 'IP_RECVERR');
        sock.trySetInt(SOL_IP, IP_RECVERR_RFC4884, 1);
      } else {
        sock.setInt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, o.ttl, 'IPV6_UNICAST_HOPS');
        sock.setInt(IPPROTO_IPV6, IPV6_RECVERR, 1, 'IPV6_RECVERR');
        sock.trySetInt(IPPROTO_IPV6, IPV6_RECVERR_RFC4884, 1);
      }
      sock.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1, 'SO_TIMESTAMPNS');
    }
    sock.setInt(IPPROTO_TCP, TCP_USER_TIMEOUT, CONNECT_USER_TIMEOUT_MS, 'TCP_USER_TIMEOUT');
    sock.setBytes(SOL_SOCKET, SO_LINGER, LINGER_ZERO, 'SO_LINGER');
    if (o.local) sock.bind(o.local, o.localWhat ?? 'bind to the source address');
  } catch (e) {
    sock.close();
    throw e;
  }
  return sock;
}

/** What a finished connect() says of the target: 0 connected (SYN-ACK) and ECONNREFUSED (RST) both prove it alive. */
export function connectAnswered(err: number): boolean {
  return err === 0 || err === ECONNREFUSED;
}
