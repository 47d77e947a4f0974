/**
 * A QUIC connection followed by its connection id across a change of the client's address or
 * port (a NAT rebinding), so that its spin-bit state, and the edge it waits for, survive it. The
 * BPF programs keep the same state in maps (bpf/pping.bpf.c, quic_follow and quic_note); the
 * differential test holds the two to the same events.
 *
 *  - A short header does not say how long its destination connection id is: whoever receives it
 *    knows. The server's long headers (the handshake) do: their source connection id is one the
 *    server chose for itself, and a server's ids have one length (it has to parse its own). So the
 *    length is learnt per server endpoint (address and port).
 *  - Each flow remembers the server connection id its client last sent, when the length is known
 *    and the capture holds the id whole; each id remembers its connection's flow (its addresses
 *    and ports, as a packet of the client's).
 *  - A client's short header on addresses and ports with no flow, whose id belongs to a flow
 *    that still exists (the same connection number), moves that flow there, both directions'
 *    state with it (the matcher counts it: done.quic_moved). Anything else starts a flow as before.
 *
 * An id the client switches to after a migration it made on purpose (RFC 9000 §9.5) cannot be
 * linked to the old one by an observer, by design: that connection starts a new flow.
 */
import type { PacketInfo } from './decode.js';
import { QUIC_CID_MAX } from './decode.js';
import type { FlowTable } from './tables.js';

/** Server endpoints whose id length is kept (the oldest learnt goes first past this). */
export const QUIC_SERVERS_MAX = 4096;

/** What one connection id remembers: its connection and that connection's flow. */
interface IdHolder {
  conn: number;
  /** A packet of the client with the flow's addresses and ports (a copy of its bytes). */
  pkt: PacketInfo;
  hash: number;
}

/** What one connection (flow) remembers. */
interface ConnIds {
  /** Its server's id length as `lengths` had it at `generation` (-1: none known). */
  serverLen: number;
  generation: number;
  /** The server connection id its client last sent (length -1: none yet). */
  idLen: number;
  id: Uint8Array;
  /** The keys of `byId` that name this connection. */
  keys: string[];
}

/** An endpoint (its address at `off` in p.bytes, and its port) as a key. */
function endKey(p: PacketInfo, off: number, port: number): string {
  const n = p.family === 4 ? 4 : 16;
  let s = `${p.family}/${port}/`;
  for (let i = 0; i < n; i++) s += p.bytes[off + i].toString(16).padStart(2, '0');
  return s;
}

/** The server of a client's packet: its destination. */
const serverOf = (p: PacketInfo) => endKey(p, p.dstOff, p.dstPort);

function idKey(server: string, p: PacketInfo, len: number): string {
  let s = `${server}/${len}/`;
  for (let i = 0; i < len; i++) s += p.bytes[p.cidOff + i].toString(16).padStart(2, '0');
  return s;
}

/** A copy of the packet's bytes with the offsets the flow table reads (its key). */
function copyOf(p: PacketInfo): PacketInfo {
  const c = Object.assign(Object.create(Object.getPrototypeOf(p) as object) as PacketInfo, p);
  const lo = Math.min(p.srcOff, p.dstOff);
  const n = p.family === 4 ? 4 : 16;
  const hi = Math.max(p.srcOff, p.dstOff) + n;
  c.bytes = p.bytes.slice(lo, hi);
  c.srcOff = p.srcOff - lo;
  c.dstOff = p.dstOff - lo;
  c.words = null;
  c.hash = -1;
  return c;
}

export class QuicIds {
  /** Server endpoint -> the length of its connection ids. */
  private readonly lengths = new Map<string, number>();
  /** Bumped whenever a length is learnt or changes: flows look theirs up again. */
  private generation = 0;
  private readonly byConn = new Map<number, ConnIds>();
  private readonly byId = new Map<string, IdHolder>();

  /** A long header from the server: the length of the connection ids it chose. */
  learn(p: PacketInfo): void {
    const k = endKey(p, p.srcOff, p.srcPort); // the server's own packet
    if (this.lengths.get(k) === p.cidLen) return;
    if (!this.lengths.has(k) && this.lengths.size >= QUIC_SERVERS_MAX) this.lengths.delete(this.lengths.keys().next().value as string);
    this.lengths.set(k, p.cidLen);
    this.generation++;
  }

  /** The length of the connection id in a client's short header, when known and held whole; else -1. */
  private lengthOf(p: PacketInfo): number {
    const len = this.lengths.get(serverOf(p));
    return len === undefined || len > p.cidLen ? -1 : len;
  }

  /**
   * A client's short header on addresses and ports that have no flow: the slot its connection's
   * flow moved to (from wherever its connection id last was), or -1.
   */
  follow(p: PacketInfo, h: number, ft: FlowTable): number {
    if (this.lengths.size === 0) return -1;
    const len = this.lengthOf(p);
    if (len < 0) return -1;
    const holder = this.byId.get(idKey(serverOf(p), p, len));
    if (holder === undefined) return -1;
    const old = ft.find(holder.pkt, holder.hash);
    if (old < 0 || ft.connId[old] !== holder.conn) return -1;
    // ft.dir: the end the client's packet named in holder.pkt came from; it stays the client's.
    const clientEnd = ft.dir;
    const slot = ft.move(old, p, h, clientEnd);
    holder.pkt = copyOf(p);
    holder.hash = h;
    return slot;
  }

  /** A client's short header on flow `slot`: remembers the server connection id it sent. */
  note(p: PacketInfo, h: number, ft: FlowTable, slot: number): void {
    const conn = ft.connId[slot];
    let c = this.byConn.get(conn);
    if (c === undefined) this.byConn.set(conn, (c = { serverLen: -1, generation: -1, idLen: -1, id: new Uint8Array(QUIC_CID_MAX), keys: [] }));
    // The server's length, looked up again only when some length changed since.
    if (c.generation !== this.generation) {
      c.serverLen = this.lengths.get(serverOf(p)) ?? -1;
      c.generation = this.generation;
    }
    const len = c.serverLen;
    if (len < 0 || len > p.cidLen) return;
    if (c.idLen === len && sameId(c.id, p, len)) return;
    c.idLen = len;
    c.id.set(p.bytes.subarray(p.cidOff, p.cidOff + len));
    const key = idKey(serverOf(p), p, len);
    const was = this.byId.get(key);
    this.byId.set(key, { conn, pkt: copyOf(p), hash: h });
    if (was === undefined || was.conn !== conn) c.keys.push(key);
  }

  /** A flow went: what its connection left behind goes too. */
  forget(conn: number): void {
    const c = this.byConn.get(conn);
    if (c === undefined) return;
    this.byConn.delete(conn);
    for (const k of c.keys) if (this.byId.get(k)?.conn === conn) this.byId.delete(k);
  }
}

function sameId(id: Uint8Array, p: PacketInfo, len: number): boolean {
  for (let i = 0; i < len; i++) if (id[i] !== p.bytes[p.cidOff + i]) return false;
  return true;
}
