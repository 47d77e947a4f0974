/**
 * Generic netlink, the part `--ts kernel-hw` needs: the family id of "ethtool" (CTRL_CMD_GETFAMILY)
 * and ETHTOOL_MSG_TSINFO_GET, the netlink form of ETHTOOL_GET_TS_INFO: which SO_TIMESTAMPING
 * flags a device's driver offers and its PTP hardware clock. Bitsets are asked for in compact form
 * (a u32 array, bit i = flag i). Replies are read from untrusted bytes: bounds-checked, never throws.
 */

const NLMSG_HDRLEN = 16;
const GENL_HDRLEN = 4;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
export const GENL_ID_CTRL = 0x10;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR_FAMILY_ID = 1;
const CTRL_ATTR_FAMILY_NAME = 2;
const ETHTOOL_MSG_TSINFO_GET = 25;
const ETHTOOL_A_TSINFO_HEADER = 1;
const ETHTOOL_A_TSINFO_TIMESTAMPING = 2;
const ETHTOOL_A_TSINFO_PHC_INDEX = 5;
const ETHTOOL_A_HEADER_DEV_INDEX = 1;
const ETHTOOL_A_HEADER_FLAGS = 3;
const ETHTOOL_FLAG_COMPACT_BITSETS = 1;
const ETHTOOL_A_BITSET_VALUE = 4;
const NLA_F_NESTED = 0x8000;

/** SO_TIMESTAMPING flags (linux/net_tstamp.h) a device may offer. */
export const SOF_TX_HARDWARE = 1 << 0;
export const SOF_TX_SOFTWARE = 1 << 1;
export const SOF_RX_HARDWARE = 1 << 2;
export const SOF_RX_SOFTWARE = 1 << 3;
export const SOF_SOFTWARE = 1 << 4;
export const SOF_RAW_HARDWARE = 1 << 6;

const align4 = (n: number) => (n + 3) & ~3;

function header(dv: DataView, len: number, type: number, seq: number, cmd: number): void {
  dv.setUint32(0, len, true);
  dv.setUint16(4, type, true);
  dv.setUint16(6, NLM_F_REQUEST, true);
  dv.setUint32(8, seq >>> 0, true);
  dv.setUint32(12, 0, true);
  dv.setUint8(NLMSG_HDRLEN, cmd);
  dv.setUint8(NLMSG_HDRLEN + 1, 1); // version
  dv.setUint16(NLMSG_HDRLEN + 2, 0, true);
}

/** CTRL_CMD_GETFAMILY for `name`; returns the request's length. */
export function encodeGetFamily(b: Uint8Array, seq: number, name: string): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = NLMSG_HDRLEN + GENL_HDRLEN;
  const alen = 4 + name.length + 1;
  b.fill(0, 0, p + align4(alen));
  dv.setUint16(p, alen, true);
  dv.setUint16(p + 2, CTRL_ATTR_FAMILY_NAME, true);
  for (let i = 0; i < name.length; i++) b[p + 4 + i] = name.charCodeAt(i);
  p += align4(alen);
  header(dv, p, GENL_ID_CTRL, seq, CTRL_CMD_GETFAMILY);
  return p;
}

/** ETHTOOL_MSG_TSINFO_GET for one device (compact bitsets); returns the request's length. */
export function encodeTsinfoGet(b: Uint8Array, seq: number, family: number, ifindex: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const p = NLMSG_HDRLEN + GENL_HDRLEN;
  const len = p + 4 + 8 + 8;
  b.fill(0, 0, len);
  dv.setUint16(p, 4 + 16, true);
  dv.setUint16(p + 2, ETHTOOL_A_TSINFO_HEADER | NLA_F_NESTED, true);
  dv.setUint16(p + 4, 8, true);
  dv.setUint16(p + 6, ETHTOOL_A_HEADER_DEV_INDEX, true);
  dv.setUint32(p + 8, ifindex >>> 0, true);
  dv.setUint16(p + 12, 8, true);
  dv.setUint16(p + 14, ETHTOOL_A_HEADER_FLAGS, true);
  dv.setUint32(p + 16, ETHTOOL_FLAG_COMPACT_BITSETS, true);
  header(dv, len, family, seq, ETHTOOL_MSG_TSINFO_GET);
  return len;
}

export type GenlResult<T> = { ok: T } | { errno: number } | { error: string };

/** The attributes of the reply to `seq` (after the genl header), or an errno / error. */
function replyAttrs(b: Uint8Array, len: number, seq: number): GenlResult<[number, number]> {
  const end = Math.min(len, b.length);
  const dv = new DataView(b.buffer, b.byteOffset, end);
  let p = 0;
  while (p + NLMSG_HDRLEN <= end) {
    const mlen = dv.getUint32(p, true);
    if (mlen < NLMSG_HDRLEN || p + mlen > end) return { error: `netlink message of length ${mlen} at ${p} does not fit` };
    if (dv.getUint32(p + 8, true) === seq >>> 0) {
      const type = dv.getUint16(p + 4, true);
      if (type === NLMSG_ERROR) {
        if (mlen < NLMSG_HDRLEN + 4) return { error: 'short NLMSG_ERROR' };
        const err = dv.getInt32(p + NLMSG_HDRLEN, true);
        return err === 0 ? { error: 'acknowledged without an answer' } : { errno: -err };
      }
      if (mlen < NLMSG_HDRLEN + GENL_HDRLEN) return { error: 'short generic netlink message' };
      return { ok: [p + NLMSG_HDRLEN + GENL_HDRLEN, p + mlen] };
    }
    p += align4(mlen);
  }
  return { error: 'no reply to the request' };
}

/** Calls fn(type, dataOff, dataLen) for each attribute in [off, end); returns an error string or null. */
function attrs(b: Uint8Array, off: number, end: number, fn: (type: number, at: number, n: number) => void): string | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = off;
  while (p + 4 <= end) {
    const l = dv.getUint16(p, true);
    if (l < 4 || p + l > end) return `attribute of length ${l} at ${p} does not fit`;
    fn(dv.getUint16(p + 2, true) & 0x3fff, p + 4, l - 4);
    p += align4(l);
  }
  return null;
}

export function parseFamilyId(b: Uint8Array, len: number, seq: number): GenlResult<number> {
  const r = replyAttrs(b, len, seq);
  if (!('ok' in r)) return r;
  let id = -1;
  const err = attrs(b, r.ok[0], r.ok[1], (t, at, n) => {
    if (t === CTRL_ATTR_FAMILY_ID && n >= 2) id = b[at] | (b[at + 1] << 8);
  });
  if (err) return { error: err };
  return id < 0 ? { error: 'no CTRL_ATTR_FAMILY_ID' } : { ok: id };
}

export interface TsInfo {
  /** SO_TIMESTAMPING flags the driver offers (SOF_*). */
  timestamping: number;
  /** The PTP hardware clock, or null. */
  phcIndex: number | null;
}

export function parseTsinfo(b: Uint8Array, len: number, seq: number): GenlResult<TsInfo> {
  const r = replyAttrs(b, len, seq);
  if (!('ok' in r)) return r;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: TsInfo = { timestamping: 0, phcIndex: null };
  let inner: string | null = null;
  const err = attrs(b, r.ok[0], r.ok[1], (t, at, n) => {
    if (t === ETHTOOL_A_TSINFO_PHC_INDEX && n >= 4) out.phcIndex = dv.getUint32(at, true);
    else if (t === ETHTOOL_A_TSINFO_TIMESTAMPING) {
      inner = attrs(b, at, at + n, (bt, bat, bn) => {
        // The first 32 bits are every SOF_* flag there is so far.
        if (bt === ETHTOOL_A_BITSET_VALUE && bn >= 4) out.timestamping = dv.getUint32(bat, true);
      });
    }
  });
  if (err ?? inner) return { error: (err ?? inner)! };
  return { ok: out };
}

/** The flags a driver offers, by name (for messages). */
export function describeTimestamping(flags: number): string[] {
  const names: [number, string][] = [
    [SOF_TX_HARDWARE, 'hardware-transmit'],
    [SOF_TX_SOFTWARE, 'software-transmit'],
    [SOF_RX_HARDWARE, 'hardware-receive'],
    [SOF_RX_SOFTWARE, 'software-receive'],
    [SOF_SOFTWARE, 'software-system-clock'],
    [SOF_RAW_HARDWARE, 'hardware-raw-clock'],
  ];
  return names.filter(([f]) => (flags & f) !== 0).map(([, n]) => n);
}
