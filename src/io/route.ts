/**
 * The kernel's own answer to "how would a packet to X leave?", asked over rtnetlink from the
 * placement's namespace, with the probes' source, device and mark: the egress interface, the
 * source address the kernel picks, the gateway, and how many next hops the matching route has.
 * Best effort: any failure is a reason, never an exception, and nothing is guessed.
 */
import { SOCK_RAW } from '../core/constants.js';
import { errnoName } from '../core/errors.js';
import { EAGAIN, ENOENT } from '../core/errno.js';
import { native } from '../native/index.js';
import { formatIp, familyOf } from '../packet/addr.js';
import { AF_NETLINK, NETLINK_ROUTE, type NeighAnswer, type RouteQuery, encodeLinkRequest, encodeNeighRequest, encodeRouteRequest, kernelSockaddr, parseLinkAddressReply, parseLinkReply, parseLinkTypeReply, parseNeighReply, parseRouteReply } from '../packet/netlink.js';
import { type TsInfo, encodeGetFamily, encodeTsinfoGet, parseFamilyId, parseTsinfo } from '../packet/genetlink.js';
import { RecvBatch, SendBatch } from './batch.js';
import { type Placement, inNamespace, openSocket } from './placement.js';
import type { Socket } from './socket.js';

export interface Egress {
  iface: string | null;
  ifindex: number | null;
  source: string | null;
  gateway: string | null;
  /** Next hops of the route that matched (more than 1: the local route itself is multipath). */
  nexthops: number;
}

/** How long to wait for the kernel's answer (it is normally queued before sendmsg returns), ms. */
const WAIT_MS = 200;

function ask(sock: Socket, send: SendBatch, recv: RecvBatch, len: number): number {
  send.names.set(kernelSockaddr());
  send.set(0, len, 12, 0);
  const rc = send.send(sock.fd, 1);
  if (rc < 0) return rc;
  const until = performance.now() + WAIT_MS;
  for (;;) {
    const n = recv.recv(sock.fd, 0);
    if (n !== -EAGAIN || performance.now() > until) return n < 0 ? n : recv.dataLen(0);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }
}

/** The route the kernel chose for `dst` (and its multipath fan-out), or why it could not be read. */
export function egressOf(dst: Uint8Array, p: Placement, src?: Uint8Array): Egress | { error: string } {
  let sock: Socket;
  try {
    sock = openSocket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, { netns: p.netns });
  } catch (e) {
    return { error: (e as Error).message };
  }
  try {
    const send = new SendBatch(1, 256, 12, 0);
    const recv = new RecvBatch(1, 8192, 0, 0);
    const oif = p.iface ? inNamespace(p.netns, () => native().ifNameToIndex(p.iface!)) : undefined;
    const q: RouteQuery = { dst, src, oif: oif && oif > 0 ? oif : undefined, mark: p.mark };
    let n = ask(sock, send, recv, encodeRouteRequest(send.data, 1, q));
    if (n < 0) return { error: `RTM_GETROUTE: ${errnoName(n)}` };
    const r = parseRouteReply(recv.data, n, 1);
    if ('errno' in r) return { error: `no route: ${errnoName(r.errno)}` };
    if ('error' in r) return { error: r.error };
    const fam = familyOf(dst);
    const out: Egress = {
      iface: null,
      ifindex: r.ok.oif,
      source: r.ok.prefsrc ? formatIp(r.ok.prefsrc, 0, fam) : null,
      gateway: r.ok.gateway ? formatIp(r.ok.gateway, 0, fam) : null,
      nexthops: 1,
    };
    n = ask(sock, send, recv, encodeRouteRequest(send.data, 2, { ...q, fibMatch: true }));
    if (n >= 0) {
      const m = parseRouteReply(recv.data, n, 2);
      if ('ok' in m) out.nexthops = m.ok.nexthops;
    }
    if (r.ok.oif !== null) {
      n = ask(sock, send, recv, encodeLinkRequest(send.data, 3, r.ok.oif));
      if (n >= 0) {
        const l = parseLinkReply(recv.data, n, 3);
        if ('ok' in l) out.iface = l.ok;
      }
    }
    return out;
  } finally {
    sock.close();
  }
}

const NETLINK_GENERIC = 16;

/** Runs `f` with a netlink socket (rtnetlink unless `protocol`) of the namespace and request/answer buffers; any failure is a reason. */
function withNetlink<T>(netns: string | undefined, f: (ask1: (len: number) => number, send: SendBatch, recv: RecvBatch, fd: number) => T | { error: string }, protocol = NETLINK_ROUTE): T | { error: string } {
  let sock: Socket;
  try {
    sock = openSocket(AF_NETLINK, SOCK_RAW, protocol, { netns });
  } catch (e) {
    return { error: (e as Error).message };
  }
  try {
    const send = new SendBatch(1, 256, 12, 0);
    const recv = new RecvBatch(1, 8192, 0, 0);
    return f((len) => ask(sock, send, recv, len), send, recv, sock.fd);
  } finally {
    sock.close();
  }
}

/**
 * An interface's ARPHRD_* type over rtnetlink (RTM_GETLINK) in the current namespace: no
 * privilege needed (a packet socket bound to the device, the other way, needs CAP_NET_RAW).
 */
export function linkTypeOf(ifindex: number): number | { error: string } {
  let sock: Socket;
  try {
    sock = openSocket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, {});
  } catch (e) {
    return { error: (e as Error).message };
  }
  try {
    const send = new SendBatch(1, 256, 12, 0);
    const recv = new RecvBatch(1, 8192, 0, 0);
    const n = ask(sock, send, recv, encodeLinkRequest(send.data, 1, ifindex));
    if (n < 0) return { error: `RTM_GETLINK: ${errnoName(n)}` };
    const t = parseLinkTypeReply(recv.data, n, 1);
    if ('ok' in t) return t.ok;
    return { error: 'errno' in t ? `RTM_GETLINK: ${errnoName(t.errno)}` : t.error };
  } finally {
    sock.close();
  }
}

type RouteOf = { oif: number | null; gateway: Uint8Array | null; prefsrc: Uint8Array | null } | { error: string };

/** Requests written into one message (their answers, one read). */
const ROUTE_CHUNK = 64;

/**
 * The kernel's route for each of `dsts`, in the placement's namespace: the requests go 64 to a
 * message and their answers come in one read, so thousands of targets cost a few hundred system calls.
 */
export function routesOf(dsts: Uint8Array[], p: Placement, src?: Uint8Array): RouteOf[] | { error: string } {
  return withNetlink(p.netns, (_ask, _send, _recv, fd) => {
    const out: RouteOf[] = new Array(dsts.length);
    const send = new SendBatch(1, ROUTE_CHUNK * 96, 12, 0);
    const recv = new RecvBatch(64, 2048, 0, 0);
    send.names.set(kernelSockaddr());
    for (let base = 0; base < dsts.length; base += ROUTE_CHUNK) {
      const n = Math.min(ROUTE_CHUNK, dsts.length - base);
      let len = 0;
      for (let j = 0; j < n; j++) len += encodeRouteRequest(send.data.subarray(len), base + j + 1, { dst: dsts[base + j], src, mark: p.mark });
      send.set(0, len, 12, 0);
      const rc = send.send(fd, 1);
      if (rc < 0) return { error: `RTM_GETROUTE: ${errnoName(rc)}` };
      const until = performance.now() + WAIT_MS;
      for (let got = 0; got < n; ) {
        const m = recv.recv(fd, 0);
        if (m === -EAGAIN) {
          if (performance.now() > until) return { error: 'RTM_GETROUTE: the kernel did not answer every request' };
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
          continue;
        }
        if (m < 0) return { error: `RTM_GETROUTE: ${errnoName(m)}` };
        for (let k = 0; k < m; k++) {
          const at = k * recv.dataSlot;
          const b = recv.data.subarray(at, at + recv.dataLen(k));
          const seq = b.length >= 12 ? new DataView(b.buffer, b.byteOffset, b.length).getUint32(8, true) : 0;
          const i = seq - 1;
          if (i < base || i >= base + n || out[i] !== undefined) continue; // not an answer of this chunk
          const r = parseRouteReply(b, b.length, seq);
          out[i] = 'ok' in r ? r.ok : { error: 'errno' in r ? `no route: ${errnoName(r.errno)}` : r.error };
          got++;
        }
      }
    }
    return out;
  });
}

/** An interface's link-layer address (its MAC on Ethernet), in the namespace. */
export function linkAddressOf(ifindex: number, netns?: string): Uint8Array | { error: string } {
  return withNetlink(netns, (ask1, send, recv) => {
    const n = ask1(encodeLinkRequest(send.data, 1, ifindex));
    if (n < 0) return { error: `RTM_GETLINK: ${errnoName(n)}` };
    const a = parseLinkAddressReply(recv.data, n, 1);
    if ('ok' in a) return a.ok;
    return { error: 'errno' in a ? `RTM_GETLINK: ${errnoName(a.errno)}` : a.error };
  });
}

/** The kernel's neighbour entry for `addr` on ifindex (null: none yet), in the namespace. */
export function neighbourOf(ifindex: number, addr: Uint8Array, netns?: string): NeighAnswer | null | { error: string } {
  return withNetlink<NeighAnswer | null>(netns, (ask1, send, recv) => {
    const n = ask1(encodeNeighRequest(send.data, 1, ifindex, addr));
    if (n < 0) return { error: `RTM_GETNEIGH: ${errnoName(n)}` };
    const a = parseNeighReply(recv.data, n, 1);
    if ('ok' in a) return a.ok;
    if ('errno' in a) return a.errno === ENOENT ? null : { error: `RTM_GETNEIGH: ${errnoName(a.errno)}` };
    return { error: a.error };
  });
}

/**
 * What a device's driver offers for SO_TIMESTAMPING (ethtool's TSINFO over generic netlink, the
 * netlink form of ETHTOOL_GET_TS_INFO), in the placement's namespace; or why it is unknown.
 */
export function timestampingOf(ifindex: number, netns?: string): TsInfo | { error: string } {
  return withNetlink(
    netns,
    (ask1, send, recv) => {
      let n = ask1(encodeGetFamily(send.data, 1, 'ethtool'));
      if (n < 0) return { error: `CTRL_CMD_GETFAMILY: ${errnoName(n)}` };
      const fam = parseFamilyId(recv.data, n, 1);
      if (!('ok' in fam)) return { error: 'errno' in fam ? `no ethtool netlink family: ${errnoName(fam.errno)}` : fam.error };
      n = ask1(encodeTsinfoGet(send.data, 2, fam.ok, ifindex));
      if (n < 0) return { error: `ETHTOOL_MSG_TSINFO_GET: ${errnoName(n)}` };
      const t = parseTsinfo(recv.data, n, 2);
      if ('ok' in t) return t.ok;
      return { error: 'errno' in t ? `ETHTOOL_MSG_TSINFO_GET: ${errnoName(t.errno)}` : t.error };
    },
    NETLINK_GENERIC,
  );
}
