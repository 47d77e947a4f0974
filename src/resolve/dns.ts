/**
 * The part of DNS (RFC 1035) that reverse names need: PTR queries, and responses read from
 * untrusted bytes. Every read is bounds-checked; a malformed message is a value
 * (`{ error }`), never an exception. Names are returned in presentation format with every byte
 * outside [A-Za-z0-9_-] escaped as \DDD, so a hostile PTR record cannot put terminal control
 * sequences into a view.
 *
 * The lab's own name server uses the same codec to answer (encodeResponse).
 */

export const TYPE_PTR = 12;
export const TYPE_CNAME = 5;
export const CLASS_IN = 1;
export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_REFUSED = 5;
const HEADER_LEN = 12;
/** The longest name on the wire (RFC 1035 2.3.4). */
const MAX_NAME_WIRE = 255;
/** Records read from one section at most: a 512-byte answer cannot hold more anyway. */
const MAX_RECORDS = 64;

export interface DnsRecord {
  name: string;
  type: number;
  cls: number;
  ttl: number;
  /** PTR and CNAME: the name in the data; other types: null. */
  target: string | null;
}

export interface DnsMessage {
  id: number;
  response: boolean;
  opcode: number;
  truncated: boolean;
  rcode: number;
  question: { name: string; type: number; cls: number } | null;
  answers: DnsRecord[];
}

export type ParseResult = DnsMessage | { error: string };

/** The reverse-lookup name of an address: d.c.b.a.in-addr.arpa, or 32 nibbles under ip6.arpa. */
export function reverseName(addr: Uint8Array): string {
  if (addr.length === 4) return `${addr[3]}.${addr[2]}.${addr[1]}.${addr[0]}.in-addr.arpa`;
  if (addr.length !== 16) throw new RangeError('an address is 4 or 16 bytes');
  const parts: string[] = [];
  for (let i = 15; i >= 0; i--) parts.push((addr[i] & 0xf).toString(16), (addr[i] >> 4).toString(16));
  return `${parts.join('.')}.ip6.arpa`;
}

/** Case-insensitive name comparison (RFC 4343), on presentation format, trailing dot ignored. */
export function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

/** Writes a name (presentation format, no escapes) at buf[off]; returns the new offset or -1 if it does not fit or is not a name. */
export function writeName(buf: Uint8Array, off: number, name: string): number {
  const labels = name.replace(/\.$/, '').split('.');
  let p = off;
  let total = 1;
  for (const l of labels) {
    if (l.length === 0 && labels.length > 1) return -1;
    if (l.length > 63) return -1;
    total += l.length + 1;
    if (total > MAX_NAME_WIRE || p + 1 + l.length >= buf.length) return -1;
    if (l.length === 0) continue;
    buf[p++] = l.length;
    for (let i = 0; i < l.length; i++) {
      const c = l.charCodeAt(i);
      if (c > 0x7e || c < 0x21) return -1;
      buf[p++] = c;
    }
  }
  buf[p++] = 0;
  return p;
}

function writeHeader(dv: DataView, id: number, flags: number, qd: number, an: number): void {
  dv.setUint16(0, id);
  dv.setUint16(2, flags);
  dv.setUint16(4, qd);
  dv.setUint16(6, an);
  dv.setUint16(8, 0);
  dv.setUint16(10, 0);
}

/** A recursive query (RD) for `name`/`type` IN; returns its length (or -1: not a name / no room). */
export function encodeQuery(buf: Uint8Array, id: number, name: string, type = TYPE_PTR): number {
  if (buf.length < HEADER_LEN + 5) return -1;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  writeHeader(dv, id & 0xffff, 0x0100, 1, 0);
  const p = writeName(buf, HEADER_LEN, name);
  if (p < 0 || p + 4 > buf.length) return -1;
  dv.setUint16(p, type);
  dv.setUint16(p + 2, CLASS_IN);
  return p + 4;
}

/**
 * An authoritative answer to `q` with PTR records `targets` (empty: NXDOMAIN unless rcode is
 * given); returns its length or -1 when it does not fit.
 */
export function encodeResponse(buf: Uint8Array, q: DnsMessage, rcode: number, targets: string[], ttl: number): number {
  if (!q.question || buf.length < HEADER_LEN) return -1;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // QR, opcode copied, AA, RD copied, RA clear.
  const flags = 0x8000 | ((q.opcode & 0xf) << 11) | 0x0400 | 0x0100 | (rcode & 0xf);
  writeHeader(dv, q.id, flags, 1, targets.length);
  let p = writeName(buf, HEADER_LEN, q.question.name);
  if (p < 0 || p + 4 > buf.length) return -1;
  dv.setUint16(p, q.question.type);
  dv.setUint16(p + 2, q.question.cls);
  p += 4;
  for (const t of targets) {
    if (p + 12 > buf.length) return -1;
    dv.setUint16(p, 0xc000 | HEADER_LEN); // the question's name
    dv.setUint16(p + 2, TYPE_PTR);
    dv.setUint16(p + 4, CLASS_IN);
    dv.setUint32(p + 6, ttl >>> 0);
    const end = writeName(buf, p + 12, t);
    if (end < 0) return -1;
    dv.setUint16(p + 10, end - (p + 12));
    p = end;
  }
  return p;
}

function escapeLabel(b: Uint8Array, off: number, len: number): string {
  let s = '';
  for (let i = off; i < off + len; i++) {
    const c = b[i];
    const plain = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f;
    s += plain ? String.fromCharCode(c) : `\\${String(c).padStart(3, '0')}`;
  }
  return s;
}

/**
 * Reads a possibly compressed name at b[off] within b[0, end). Returns [name, offset after the
 * name in place] or an error string. Pointers must point strictly backwards (no loops), and the
 * expanded name is at most 255 bytes.
 */
export function readName(b: Uint8Array, off: number, end: number): [string, number] | string {
  const labels: string[] = [];
  let p = off;
  let after = -1;
  let wire = 1;
  let lowest = off;
  for (;;) {
    if (p >= end) return 'name runs past the message';
    const len = b[p];
    if ((len & 0xc0) === 0xc0) {
      if (p + 1 >= end) return 'compression pointer runs past the message';
      const to = ((len & 0x3f) << 8) | b[p + 1];
      if (after < 0) after = p + 2;
      if (to >= lowest) return 'compression pointer does not point backwards';
      lowest = to;
      p = to;
      continue;
    }
    if ((len & 0xc0) !== 0) return 'reserved label type';
    if (len === 0) {
      if (after < 0) after = p + 1;
      break;
    }
    if (p + 1 + len > end) return 'label runs past the message';
    wire += len + 1;
    if (wire > MAX_NAME_WIRE) return 'name longer than 255 bytes';
    labels.push(escapeLabel(b, p + 1, len));
    p += 1 + len;
  }
  return [labels.length === 0 ? '.' : labels.join('.'), after];
}

/** Parses a DNS message from b[0, len). Never throws. */
export function parseMessage(b: Uint8Array, len = b.length): ParseResult {
  const end = Math.min(len, b.length);
  if (end < HEADER_LEN) return { error: `message of ${end} bytes is shorter than the 12-byte header` };
  const dv = new DataView(b.buffer, b.byteOffset, end);
  const id = dv.getUint16(0);
  const flags = dv.getUint16(2);
  const qd = dv.getUint16(4);
  const an = dv.getUint16(6);
  const msg: DnsMessage = {
    id,
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    truncated: (flags & 0x0200) !== 0,
    rcode: flags & 0xf,
    question: null,
    answers: [],
  };
  if (qd > 1) return { error: `${qd} questions (one is asked at a time)` };
  let p = HEADER_LEN;
  if (qd === 1) {
    const n = readName(b, p, end);
    if (typeof n === 'string') return { error: `question: ${n}` };
    p = n[1];
    if (p + 4 > end) return { error: 'question: type and class run past the message' };
    msg.question = { name: n[0], type: dv.getUint16(p), cls: dv.getUint16(p + 2) };
    p += 4;
  }
  const count = Math.min(an, MAX_RECORDS);
  for (let i = 0; i < count; i++) {
    if (p >= end && msg.truncated) break;
    const n = readName(b, p, end);
    if (typeof n === 'string') return { error: `answer ${i + 1}: ${n}` };
    p = n[1];
    if (p + 10 > end) return { error: `answer ${i + 1}: record header runs past the message` };
    const type = dv.getUint16(p);
    const cls = dv.getUint16(p + 2);
    const ttl = dv.getUint32(p + 4);
    const rdlen = dv.getUint16(p + 8);
    p += 10;
    if (p + rdlen > end) return { error: `answer ${i + 1}: data runs past the message` };
    let target: string | null = null;
    if (type === TYPE_PTR || type === TYPE_CNAME) {
      // Bounded by the record's data; pointers only go backwards, into what was already read.
      const t = readName(b, p, p + rdlen);
      if (typeof t === 'string') return { error: `answer ${i + 1}: ${t}` };
      target = t[0];
    }
    // TTLs with the top bit set are read as 0 (RFC 2181 8).
    msg.answers.push({ name: n[0], type, cls, ttl: ttl > 0x7fffffff ? 0 : ttl, target });
    p += rdlen;
  }
  return msg;
}

export interface PtrAnswer {
  rcode: number;
  /** PTR targets for the asked name (following CNAMEs in the answer, RFC 2317). */
  names: string[];
  /** Smallest TTL of the records used, s (for the cache); null when there were none. */
  ttl: number | null;
}

/**
 * The PTR answer for `qname` in a response, after checking it answers our query (id, QR, the
 * question echoed). Returns an error string when it does not.
 */
export function ptrAnswer(m: DnsMessage, id: number, qname: string): PtrAnswer | string {
  if (!m.response) return 'not a response';
  if (m.id !== id) return `id ${m.id} is not the query's ${id}`;
  if (!m.question || !sameName(m.question.name, qname) || m.question.type !== TYPE_PTR) return 'the response is for another question';
  let owner = qname;
  let ttl: number | null = null;
  const names: string[] = [];
  // Follow at most 8 CNAMEs, in any order within the answer.
  for (let hop = 0; hop < 9; hop++) {
    let next: string | null = null;
    for (const a of m.answers) {
      if (a.cls !== CLASS_IN || !sameName(a.name, owner) || a.target === null) continue;
      if (a.type === TYPE_PTR) {
        names.push(a.target);
        ttl = ttl === null ? a.ttl : Math.min(ttl, a.ttl);
      } else if (a.type === TYPE_CNAME && next === null) {
        next = a.target;
        ttl = ttl === null ? a.ttl : Math.min(ttl, a.ttl);
      }
    }
    if (names.length > 0 || next === null) break;
    owner = next;
  }
  return { rcode: m.rcode, names, ttl };
}
