/**
 * A flow's addresses and ports as event text, seen from either end: formatted once per connection
 * and direction (an RTT event per sample would otherwise format two addresses each time), cached
 * by flow-table slot and checked against the connection id the slot holds.
 */
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../core/constants.js';
import { formatIp } from '../packet/addr.js';
import type { FlowTuple, PpingProtocol } from './events.js';
import type { FlowTable } from './tables.js';

function protocolName(proto: number): PpingProtocol {
  return proto === IPPROTO_TCP ? 'TCP' : proto === IPPROTO_ICMP ? 'ICMP' : proto === IPPROTO_UDP ? 'UDP' : 'ICMPv6';
}

export class FlowTuples {
  /** Per slot and direction, the text and the connection it was made for (0: none). */
  private tuples: (FlowTuple | undefined)[] = [];
  private conn = new Uint32Array(0);

  constructor(private readonly ft: FlowTable) {}

  /** Flow `slot` seen from end `dir`. */
  get(slot: number, dir: number): FlowTuple {
    const ft = this.ft;
    const i = slot * 2 + dir;
    const conn = ft.connId[slot];
    const hit = this.tuples[i];
    if (hit !== undefined && this.conn[i] === conn) return hit;
    const fam = ft.family(slot);
    const t: FlowTuple = {
      src_ip: formatIp(ft.keys, ft.addrOff(slot, dir), fam),
      src_port: ft.port(slot, dir),
      dest_ip: formatIp(ft.keys, ft.addrOff(slot, dir ^ 1), fam),
      dest_port: ft.port(slot, dir ^ 1),
      protocol: protocolName(ft.proto(slot)),
    };
    if (this.conn.length < ft.capacitySlots * 2) {
      this.conn = new Uint32Array(ft.capacitySlots * 2);
      this.tuples = new Array<FlowTuple | undefined>(ft.capacitySlots * 2).fill(undefined);
    }
    this.tuples[i] = t;
    this.conn[i] = conn;
    return t;
  }

  /**
   * A connection moved to new addresses or ports (quic.ts): every text goes, as its connection may
   * be cached at any slot it held before a rebuild of the table, and move there again. Rare.
   */
  clear(): void {
    this.conn.fill(0);
  }
}
