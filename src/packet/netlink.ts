/**
 * rtnetlink, the part a route question needs (rtnetlink(7)): an RTM_GETROUTE request for one
 * destination (with the source, output interface and mark the probes would have), and the
 * kernel's answer read from untrusted bytes: the output interface, preferred source, gateway and,
 * asked with RTM_F_FIB_MATCH, how many next hops the matching route has (RTA_MULTIPATH).
 * RTM_GETLINK turns an interface index into its name (and its link-layer address); RTM_GETNEIGH
 * asks for one neighbour's link-layer address (an AF_XDP sweep writes whole frames).
 * Bounds-checked; never throws.
 */

export const AF_NETLINK = 16;
export const NETLINK_ROUTE = 0;
export const SOCKADDR_NL_LEN = 12;
const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 1;
export const RTM_NEWLINK = 16;
export const RTM_GETLINK = 18;
export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_GETNEIGH = 30;
/** rtm_flags: return the FIB entry that matched, not a route for this one packet. */
export const RTM_F_FIB_MATCH = 0x2000;
const RTA_DST = 1;
const RTA_SRC = 2;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PREFSRC = 7;
const RTA_MULTIPATH = 9;
const RTA_MARK = 16;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDMSG_LEN = 12;
/** Neighbour states whose link-layer address may be used (reachable, stale, delay, probe, noarp, permanent). */
const NUD_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
const RTMSG_LEN = 12;
const IFINFOMSG_LEN = 16;

const align4 = (n: number) => (n + 3) & ~3;

export interface RouteQuery {
  dst: Uint8Array;
  src?: Uint8Array;
  oif?: number;
  mark?: number;
  /** Ask for the matching FIB entry (its next hops) instead of one packet's route. */
  fibMatch?: boolean;
}

function putAttr(dv: DataView, b: Uint8Array, off: number, type: number, data: Uint8Array): number {
  const len = 4 + data.length;
  dv.setUint16(off, len, true);
  dv.setUint16(off + 2, type, true);
  b.set(data, off + 4);
  b.fill(0, off + len, off + align4(len));
  return off + align4(len);
}

const u32 = (v: number) => {
  const x = new Uint8Array(4);
  new DataView(x.buffer).setUint32(0, v >>> 0, true);
  return x;
};

/** Writes an RTM_GETROUTE request into b; returns its length. */
export function encodeRouteRequest(b: Uint8Array, seq: number, q: RouteQuery): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = q.dst.length === 4 ? 2 : 10;
  b.fill(0, 0, NLMSG_HDRLEN + RTMSG_LEN);
  let p = NLMSG_HDRLEN;
  b[p] = family;
  b[p + 1] = q.dst.length * 8; // rtm_dst_len
  b[p + 2] = q.src ? q.src.length * 8 : 0;
  dv.setUint32(p + 8, q.fibMatch ? RTM_F_FIB_MATCH : 0, true);
  p += RTMSG_LEN;
  p = putAttr(dv, b, p, RTA_DST, q.dst);
  if (q.src) p = putAttr(dv, b, p, RTA_SRC, q.src);
  if (q.oif !== undefined) p = putAttr(dv, b, p, RTA_OIF, u32(q.oif));
  if (q.mark !== undefined) p = putAttr(dv, b, p, RTA_MARK, u32(q.mark));
  dv.setUint32(0, p, true);
  dv.setUint16(4, RTM_GETROUTE, true);
  dv.setUint16(6, NLM_F_REQUEST, true);
  dv.setUint32(8, seq >>> 0, true);
  dv.setUint32(12, 0, true);
  return p;
}

/** Writes an RTM_GETLINK request for one interface index; returns its length. */
export function encodeLinkRequest(b: Uint8Array, seq: number, ifindex: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const len = NLMSG_HDRLEN + IFINFOMSG_LEN;
  b.fill(0, 0, len);
  dv.setUint32(0, len, true);
  dv.setUint16(4, RTM_GETLINK, true);
  dv.setUint16(6, NLM_F_REQUEST, true);
  dv.setUint32(8, seq >>> 0, true);
  dv.setInt32(NLMSG_HDRLEN + 4, ifindex, true);
  return len;
}

export interface RouteAnswer {
  oif: number | null;
  prefsrc: Uint8Array | null;
  gateway: Uint8Array | null;
  /** Next hops of the route (1 unless it is multipath). */
  nexthops: number;
}

export type NlResult<T> = { ok: T } | { errno: number } | { error: string };

/** Walks the attributes in b[off, end); calls fn(type, dataOff, dataLen). Returns an error string or null. */
function walkAttrs(b: Uint8Array, dv: DataView, off: number, end: number, fn: (type: number, at: number, len: number) => void): string | null {
  let p = off;
  while (p + 4 <= end) {
    const len = dv.getUint16(p, true);
    const type = dv.getUint16(p + 2, true) & 0x3fff;
    if (len < 4 || p + len > end) return `attribute of length ${len} at ${p} does not fit`;
    fn(type, p + 4, len - 4);
    p += align4(len);
  }
  return null;
}

/**
 * Finds the reply to request `seq` of type `want` in b[0, len): its payload range, an errno from
 * NLMSG_ERROR, or an error string.
 */
function findReply(b: Uint8Array, len: number, seq: number, want: number): NlResult<[number, number]> {
  const end = Math.min(len, b.length);
  const dv = new DataView(b.buffer, b.byteOffset, end);
  let p = 0;
  while (p + NLMSG_HDRLEN <= end) {
    const mlen = dv.getUint32(p, true);
    const type = dv.getUint16(p + 4, true);
    const mseq = dv.getUint32(p + 8, true);
    if (mlen < NLMSG_HDRLEN || p + mlen > end) return { error: `netlink message of length ${mlen} at ${p} does not fit` };
    if (mseq === seq >>> 0) {
      if (type === NLMSG_ERROR) {
        if (mlen < NLMSG_HDRLEN + 4) return { error: 'short NLMSG_ERROR' };
        const err = dv.getInt32(p + NLMSG_HDRLEN, true);
        return err === 0 ? { error: 'acknowledged without an answer' } : { errno: -err };
      }
      if (type === want) return { ok: [p + NLMSG_HDRLEN, p + mlen] };
      if (type === NLMSG_DONE) return { error: 'no answer (done)' };
    }
    p += align4(mlen);
  }
  return { error: 'no reply to the request' };
}

/** Reads the RTM_NEWROUTE answer to request `seq`. */
export function parseRouteReply(b: Uint8Array, len: number, seq: number): NlResult<RouteAnswer> {
  const r = findReply(b, len, seq, RTM_NEWROUTE);
  if (!('ok' in r)) return r;
  const [start, end] = r.ok;
  if (start + RTMSG_LEN > end) return { error: 'short rtmsg' };
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = b[start];
  const alen = family === 2 ? 4 : family === 10 ? 16 : 0;
  if (!alen) return { error: `route of family ${family}` };
  const out: RouteAnswer = { oif: null, prefsrc: null, gateway: null, nexthops: 1 };
  let bad: string | null = null;
  const err = walkAttrs(b, dv, start + RTMSG_LEN, end, (type, at, n) => {
    if (type === RTA_OIF && n >= 4) out.oif = dv.getUint32(at, true);
    else if (type === RTA_PREFSRC && n === alen) out.prefsrc = b.slice(at, at + n);
    else if (type === RTA_GATEWAY && n === alen) out.gateway = b.slice(at, at + n);
    else if (type === RTA_MULTIPATH) {
      // struct rtnexthop { u16 len; u8 flags; u8 hops; s32 ifindex; } followed by its attributes.
      let p = at;
      let count = 0;
      while (p + 8 <= at + n) {
        const l = dv.getUint16(p, true);
        if (l < 8 || p + l > at + n) {
          bad = `rtnexthop of length ${l} does not fit`;
          return;
        }
        count++;
        p += align4(l);
      }
      out.nexthops = count;
    }
  });
  if (err ?? bad) return { error: (err ?? bad)! };
  return { ok: out };
}

/** Reads the interface name from the RTM_NEWLINK answer to request `seq`. */
export function parseLinkReply(b: Uint8Array, len: number, seq: number): NlResult<string> {
  const r = findReply(b, len, seq, RTM_NEWLINK);
  if (!('ok' in r)) return r;
  const [start, end] = r.ok;
  if (start + IFINFOMSG_LEN > end) return { error: 'short ifinfomsg' };
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let name: string | null = null;
  const err = walkAttrs(b, dv, start + IFINFOMSG_LEN, end, (type, at, n) => {
    if (type !== IFLA_IFNAME || n < 1 || n > 16) return;
    let s = '';
    for (let i = at; i < at + n && b[i] !== 0; i++) s += b[i] >= 0x21 && b[i] <= 0x7e ? String.fromCharCode(b[i]) : '?';
    name = s;
  });
  if (err) return { error: err };
  return name === null ? { error: 'no IFLA_IFNAME' } : { ok: name };
}

/** Reads the interface's ARPHRD_* type (ifinfomsg's ifi_type) from the RTM_NEWLINK answer to request `seq`. */
export function parseLinkTypeReply(b: Uint8Array, len: number, seq: number): NlResult<number> {
  const r = findReply(b, len, seq, RTM_NEWLINK);
  if (!('ok' in r)) return r;
  const [start, end] = r.ok;
  if (start + IFINFOMSG_LEN > end) return { error: 'short ifinfomsg' };
  // struct ifinfomsg { u8 family, pad; u16 type; s32 index; u32 flags, change; }
  return { ok: new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(start + 2, true) };
}

/** Writes an RTM_GETNEIGH request for one neighbour (Linux 5.0+) of ifindex; returns its length. */
export function encodeNeighRequest(b: Uint8Array, seq: number, ifindex: number, dst: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b.fill(0, 0, NLMSG_HDRLEN + NDMSG_LEN);
  // struct ndmsg { u8 family, pad1; u16 pad2; s32 ifindex; u16 state; u8 flags, type; }
  b[NLMSG_HDRLEN] = dst.length === 4 ? 2 : 10;
  dv.setInt32(NLMSG_HDRLEN + 4, ifindex, true);
  const p = putAttr(dv, b, NLMSG_HDRLEN + NDMSG_LEN, NDA_DST, dst);
  dv.setUint32(0, p, true);
  dv.setUint16(4, RTM_GETNEIGH, true);
  dv.setUint16(6, NLM_F_REQUEST, true);
  dv.setUint32(8, seq >>> 0, true);
  return p;
}

export interface NeighAnswer {
  /** NUD_* state bits. */
  state: number;
  /** The link-layer address, when the entry holds one. */
  lladdr: Uint8Array | null;
  /** The state allows using lladdr now. */
  usable: boolean;
}

/** Reads the RTM_NEWNEIGH answer to request `seq`. */
export function parseNeighReply(b: Uint8Array, len: number, seq: number): NlResult<NeighAnswer> {
  const r = findReply(b, len, seq, RTM_NEWNEIGH);
  if (!('ok' in r)) return r;
  const [start, end] = r.ok;
  if (start + NDMSG_LEN > end) return { error: 'short ndmsg' };
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const state = dv.getUint16(start + 8, true);
  let lladdr: Uint8Array | null = null;
  const err = walkAttrs(b, dv, start + NDMSG_LEN, end, (type, at, n) => {
    if (type === NDA_LLADDR && n >= 1 && n <= 32) lladdr = b.slice(at, at + n);
  });
  if (err) return { error: err };
  return { ok: { state, lladdr, usable: lladdr !== null && (state & NUD_USABLE) !== 0 } };
}

/** Reads the interface's link-layer address (IFLA_ADDRESS) from the RTM_NEWLINK answer to request `seq`. */
export function parseLinkAddressReply(b: Uint8Array, len: number, seq: number): NlResult<Uint8Array> {
  const r = findReply(b, len, seq, RTM_NEWLINK);
  if (!('ok' in r)) return r;
  const [start, end] = r.ok;
  if (start + IFINFOMSG_LEN > end) return { error: 'short ifinfomsg' };
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let addr: Uint8Array | null = null;
  const err = walkAttrs(b, dv, start + IFINFOMSG_LEN, end, (type, at, n) => {
    if (type === IFLA_ADDRESS && n >= 1 && n <= 32) addr = b.slice(at, at + n);
  });
  if (err) return { error: err };
  return addr === null ? { error: 'no IFLA_ADDRESS' } : { ok: addr };
}

/** sockaddr_nl of the kernel (pid 0, no groups). */
export function kernelSockaddr(): Uint8Array {
  const b = new Uint8Array(SOCKADDR_NL_LEN);
  new DataView(b.buffer).setUint16(0, AF_NETLINK, true);
  return b;
}
