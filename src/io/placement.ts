/**
 * Where sockets live, for every capability: a network namespace (entered with setns for socket
 * creation only), a device (SO_BINDTODEVICE), a firewall mark (SO_MARK). Probers open their
 * sockets through `openSocket`, so placement applies the same way to UDP, ICMP and TCP probes;
 * pping's captures and BPF attachments run inside `inNamespace`.
 *
 * setns changes the namespace of the calling thread only. Sockets keep the namespace they were
 * created in, so the main thread enters the target namespace, creates the socket and returns to
 * its own namespace at once; DNS resolution (libuv's thread pool) stays in the original one.
 */
import { closeSync, openSync } from 'node:fs';
import { AF_INET6, CLONE_NEWNET, IPPROTO_IPV6, IPV6_TCLASS, IP_TOS, SOL_IP, SOL_SOCKET, SO_BINDTODEVICE, SO_MARK } from '../core/constants.js';
import { PathlensError, SysError } from '../core/errors.js';
import { Socket } from './socket.js';
import { ENODEV, EPERM } from '../core/errno.js';
import { native } from '../native/index.js';

export interface Placement {
  /** A name under /run/netns, or a path to a namespace file (e.g. /proc/PID/ns/net). */
  netns?: string;
  iface?: string;
  mark?: number;
  /** IPv4 TOS / IPv6 traffic class byte (DSCP and ECN) of what the socket sends. */
  tos?: number;
}

/** /run/netns/NAME for a name; a path is used as it is. */
export function netnsPath(netns: string): string {
  if (netns.includes('/')) return netns;
  if (!/^[A-Za-z0-9_.-]{1,255}$/.test(netns) || netns === '.' || netns === '..') throw new PathlensError('ERR_USAGE', `--netns ${netns}: not a namespace name (or give a path)`);
  return `/run/netns/${netns}`;
}

function openNs(path: string, what: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new PathlensError('ERR_USAGE', `${what} ${path}: cannot open (${code})${code === 'ENOENT' ? ': no such network namespace' : ''}`);
  }
}

/** Runs fn with the main thread inside `netns` (if given), always returning to where it was. */
export function inNamespace<T>(netns: string | undefined, fn: () => T): T {
  if (!netns) return fn();
  const target = openNs(netnsPath(netns), '--netns');
  let home = -1;
  try {
    home = openNs('/proc/thread-self/ns/net', 'own namespace');
    const rc = native().setns(target, CLONE_NEWNET);
    if (rc < 0) {
      if (-rc === EPERM) throw new PathlensError('ERR_PRIVILEGE', `--netns ${netns}: entering a network namespace needs CAP_SYS_ADMIN (run as root)`);
      throw new SysError('setns', rc, netnsPath(netns));
    }
    try {
      return fn();
    } finally {
      const back = native().setns(home, CLONE_NEWNET);
      // Staying in the wrong namespace would make every later socket wrong: never continue.
      if (back < 0) throw new SysError('setns', back, 'returning to the original namespace');
    }
  } finally {
    closeSync(target);
    if (home >= 0) closeSync(home);
  }
}

/** Applies device binding and mark to a socket created inside the right namespace. */
export function applyPlacement(sock: Socket, p: Placement): void {
  if (p.iface) {
    const rc = native().setsockopt(sock.fd, SOL_SOCKET, SO_BINDTODEVICE, new TextEncoder().encode(`${p.iface}\0`));
    if (rc < 0) {
      if (-rc === ENODEV) throw new PathlensError('ERR_USAGE', `--iface ${p.iface}: no such interface${p.netns ? ` in ${p.netns}` : ''}`);
      if (-rc === EPERM) throw new PathlensError('ERR_PRIVILEGE', `--iface ${p.iface}: binding to a device needs CAP_NET_RAW (run as root or setcap cap_net_raw+ep on node)`);
      throw new SysError('setsockopt', rc, `SO_BINDTODEVICE ${p.iface}`);
    }
  }
  if (p.mark !== undefined) {
    const rc = sock.trySetInt(SOL_SOCKET, SO_MARK, p.mark);
    if (rc < 0) {
      if (-rc === EPERM) throw new PathlensError('ERR_PRIVILEGE', `--mark: setting SO_MARK needs CAP_NET_ADMIN (or CAP_NET_RAW, Linux 5.17), or root`);
      throw new SysError('setsockopt', rc, 'SO_MARK');
    }
  }
}

/** Creates a socket in the placement's namespace, bound to its device and marked. */
export function openSocket(domain: number, type: number, protocol: number, p: Placement): Socket {
  return inNamespace(p.netns, () => {
    const s = new Socket(domain, type, protocol);
    try {
      applyPlacement(s, p);
      if (p.tos !== undefined) {
        if (domain === AF_INET6) s.setInt(IPPROTO_IPV6, IPV6_TCLASS, p.tos, 'IPV6_TCLASS');
        else s.setInt(SOL_IP, IP_TOS, p.tos, 'IP_TOS');
      }
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  });
}
