/**
 * Capture files built by hand for the readers' tests: classic pcap records and pcapng blocks
 * (section header, interface description, enhanced packet), either byte order.
 */
export function u16(v: number, le: boolean): number[] {
  return le ? [v & 0xff, v >> 8] : [v >> 8, v & 0xff];
}
export function u32(v: number, le: boolean): number[] {
  const b = [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  return le ? b.reverse() : b;
}

export interface Rec {
  sec: number;
  frac: number;
  data: number[];
}

export function pcap(recs: Rec[], o: { le?: boolean; ns?: boolean; linktype?: number } = {}): Uint8Array {
  const le = o.le ?? true;
  const out = [...u32(o.ns ? 0xa1b23c4d : 0xa1b2c3d4, le), ...u16(2, le), ...u16(4, le), ...u32(0, le), ...u32(0, le), ...u32(65535, le), ...u32(o.linktype ?? 1, le)];
  for (const r of recs) out.push(...u32(r.sec, le), ...u32(r.frac, le), ...u32(r.data.length, le), ...u32(r.data.length, le), ...r.data);
  return Uint8Array.from(out);
}

export function block(type: number, body: number[], le: boolean): number[] {
  const padded = [...body, ...new Array((4 - (body.length % 4)) % 4).fill(0)];
  const total = padded.length + 12;
  return [...u32(type, le), ...u32(total, le), ...padded, ...u32(total, le)];
}

export function opt(code: number, value: number[], le: boolean): number[] {
  return [...u16(code, le), ...u16(value.length, le), ...value, ...new Array((4 - (value.length % 4)) % 4).fill(0)];
}

export function shb(le: boolean): number[] {
  return block(0x0a0d0d0a, [...u32(0x1a2b3c4d, le), ...u16(1, le), ...u16(0, le), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], le);
}

export function idb(linktype: number, le: boolean, opts: number[] = []): number[] {
  return block(1, [...u16(linktype, le), 0, 0, ...u32(0, le), ...opts, ...(opts.length ? u32(0, le) : [])], le);
}

/** ts as a 64-bit count of units split into high/low words. */
export function epb(ifIdx: number, ts: bigint, data: number[], le: boolean, opts: number[] = []): number[] {
  const hi = Number(ts >> 32n);
  const lo = Number(ts & 0xffffffffn);
  const padded = [...data, ...new Array((4 - (data.length % 4)) % 4).fill(0)];
  return block(6, [...u32(ifIdx, le), ...u32(hi, le), ...u32(lo, le), ...u32(data.length, le), ...u32(data.length, le), ...padded, ...opts, ...(opts.length ? u32(0, le) : [])], le);
}
