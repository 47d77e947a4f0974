/**
 * Hand-built kernel structures for golden tests. Written independently of the production writers
 * (byte by byte, as the uapi headers lay them out), so a mistake in one is caught by the other.
 */
export function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

function le64(v: number): number[] {
  return [...le32(v >>> 0), ...le32(Math.floor(v / 2 ** 32))];
}

/** struct cmsghdr + data + padding to 8 bytes. */
export function cmsg(level: number, type: number, data: Uint8Array | number[], lenOverride?: number): Uint8Array {
  const len = lenOverride ?? 16 + data.length;
  const pad = (8 - (data.length % 8)) % 8;
  return concat(le64(len), le32(level), le32(type), data, new Array(pad).fill(0));
}

/** struct sockaddr_in (16 bytes). */
export function sin(addr: number[], port: number): number[] {
  return [2, 0, port >> 8, port & 0xff, ...addr, 0, 0, 0, 0, 0, 0, 0, 0];
}

/** struct sockaddr_in6 (28 bytes). */
export function sin6(addr: number[], port: number, scope = 0): number[] {
  return [10, 0, port >> 8, port & 0xff, 0, 0, 0, 0, ...addr, ...le32(scope)];
}

/** struct sock_extended_err (16 bytes) followed by the offender sockaddr. */
export function extErr(e: { errno: number; origin: number; type: number; code: number; info?: number; data?: number }, offender: number[]): number[] {
  return [...le32(e.errno), e.origin, e.type, e.code, 0, ...le32(e.info ?? 0), ...le32(e.data ?? 0), ...offender];
}

/** struct timespec (two int64). */
export function timespec(sec: number, nsec: number): number[] {
  return [...le64(sec), ...le64(nsec)];
}

export function v6(text: string): number[] {
  // test helper: full or ::-compressed form
  const [h, t] = text.split('::');
  const hs = h ? h.split(':') : [];
  const ts = t !== undefined && t !== '' ? t.split(':') : [];
  const groups = [...hs, ...new Array(8 - hs.length - ts.length).fill('0'), ...ts].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

export function checksum(bytes: number[]): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** IPv4 header (20 bytes) with a correct header checksum. */
export function ipv4(src: number[], dst: number[], proto: number, payloadLen: number, ttl = 1): number[] {
  const total = 20 + payloadLen;
  const h = [0x45, 0, total >> 8, total & 0xff, 0x12, 0x34, 0x40, 0, ttl, proto, 0, 0, ...src, ...dst];
  const c = checksum(h);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  return h;
}

/** IPv6 header (40 bytes), traffic class 0. */
export function ipv6(src: number[], dst: number[], next: number, payloadLen: number, hop = 1, flow = 0): number[] {
  return [0x60, (flow >> 16) & 0x0f, (flow >> 8) & 0xff, flow & 0xff, payloadLen >> 8, payloadLen & 0xff, next, hop, ...src, ...dst];
}

export function udp(sport: number, dport: number, payload: number[]): number[] {
  const len = 8 + payload.length;
  return [sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, len >> 8, len & 0xff, 0, 0, ...payload];
}

/** ICMP message with a correct checksum (IPv4 style; ICMPv6 checksums are not checked here). */
export function icmp(type: number, code: number, rest: number[], body: number[]): number[] {
  const m = [type, code, 0, 0, ...rest, ...body];
  const c = checksum(m);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return m;
}

/** TCP segment: 20-byte header plus a timestamp option (NOP NOP TS) when `ts` is given; checksum 0. */
export function tcpSeg(o: { sport: number; dport: number; seq?: number; ack?: number; flags: number; ts?: [number, number]; payload?: number }): number[] {
  const opts = o.ts ? [1, 1, 8, 10, ...be32(o.ts[0]), ...be32(o.ts[1])] : [];
  const hl = 20 + opts.length;
  return [
    o.sport >> 8, o.sport & 0xff, o.dport >> 8, o.dport & 0xff,
    ...be32(o.seq ?? 1), ...be32(o.ack ?? 0),
    (hl / 4) << 4, o.flags, 0xff, 0xff, 0, 0, 0, 0,
    ...opts,
    ...new Array(o.payload ?? 0).fill(0xab),
  ];
}

export function be32(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

/** Ethernet frame (with optional 802.1Q tags) around an L3 packet. */
export function eth(ethertype: number, l3: number[], vlans: number[] = []): number[] {
  const tags = vlans.flatMap((vid) => [0x81, 0x00, vid >> 8, vid & 0xff]);
  return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, ...tags, ethertype >> 8, ethertype & 0xff, ...l3];
}
