/**
 * The lab's name server: authoritative PTR answers for the lab's own addresses, so traces show
 * names with no traffic leaving the lab. NXDOMAIN for other reverse names, REFUSED for anything
 * else (it is nobody's recursive resolver). Every query is appended to a log, one JSON line each,
 * so tests can count what reached the server.
 */
import { appendFileSync } from 'node:fs';
import { type Socket as Dgram, createSocket } from 'node:dgram';
import { CLASS_IN, RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_NOERROR, RCODE_REFUSED, TYPE_PTR, encodeResponse, parseMessage, reverseName } from '../../resolve/dns.js';
import { parseIp } from '../../packet/addr.js';

export interface DnsServerConfig {
  lab: string;
  /** Address (text) -> name. */
  records: Record<string, string>;
  ttl: number;
  port: number;
  logPath: string;
  readyPath: string;
}

export function parseDnsServerConfig(text: string): DnsServerConfig {
  const c = JSON.parse(text) as DnsServerConfig;
  if (typeof c.lab !== 'string' || typeof c.records !== 'object' || c.records === null) throw new Error('config: lab and records are required');
  if (!Number.isInteger(c.ttl) || c.ttl < 0) throw new Error('config: ttl must be an integer >= 0');
  if (!Number.isInteger(c.port) || c.port < 1 || c.port > 65535) throw new Error('config: port must be 1..65535');
  return c;
}

export class LabDnsServer {
  private readonly table = new Map<string, string>();
  private readonly socks: Dgram[] = [];
  private readonly out = new Uint8Array(1232);

  constructor(private readonly c: DnsServerConfig) {
    for (const [addr, name] of Object.entries(c.records)) this.table.set(reverseName(parseIp(addr)), name);
  }

  /** What the server answers to a query (bytes in, bytes out or null: drop). */
  answer(q: Uint8Array): { reply: Uint8Array | null; qname: string | null; rcode: number } {
    const m = parseMessage(q);
    if ('error' in m) {
      if (q.length < 12) return { reply: null, qname: null, rcode: -1 };
      // A header we can echo: FORMERR with the id, no question.
      const r = new Uint8Array(12);
      r[0] = q[0];
      r[1] = q[1];
      r[2] = 0x80;
      r[3] = RCODE_FORMERR;
      return { reply: r, qname: null, rcode: RCODE_FORMERR };
    }
    if (m.response || !m.question) return { reply: null, qname: null, rcode: -1 };
    const qname = m.question.name.toLowerCase().replace(/\.$/, '');
    const reverse = qname.endsWith('.in-addr.arpa') || qname.endsWith('.ip6.arpa');
    const name = this.table.get(qname);
    let rcode = RCODE_REFUSED;
    let targets: string[] = [];
    if (m.question.cls === CLASS_IN && reverse) {
      if (name === undefined) rcode = RCODE_NXDOMAIN;
      else {
        rcode = RCODE_NOERROR;
        if (m.question.type === TYPE_PTR) targets = [name];
      }
    }
    const len = encodeResponse(this.out, m, rcode, targets, this.c.ttl);
    return { reply: len > 0 ? this.out.slice(0, len) : null, qname, rcode };
  }

  async start(): Promise<void> {
    for (const type of ['udp4', 'udp6'] as const) {
      const s = createSocket({ type, ipv6Only: type === 'udp6' });
      s.on('message', (msg, rinfo) => {
        const { reply, qname, rcode } = this.answer(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
        appendFileSync(this.c.logPath, `${JSON.stringify({ t: Date.now(), from: rinfo.address, qname, rcode })}\n`);
        if (reply) s.send(reply, rinfo.port, rinfo.address);
      });
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.bind(this.c.port, type === 'udp4' ? '0.0.0.0' : '::', () => res());
      });
      this.socks.push(s);
    }
  }

  close(): void {
    for (const s of this.socks) s.close();
  }
}
