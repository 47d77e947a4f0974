/**
 * Reverse names for addresses, without ever holding up a measurement: asynchronous lookups over
 * one UDP socket per server family, at most `concurrency` queries out at once, each answered or
 * given up after `timeoutMs`, and a cache that keeps answers for their TTL (failures for a short
 * while, so a dead resolver is not asked again and again).
 *
 * The socket is opened through the same placement as the probes (--netns, --iface, --mark), so a
 * trace placed in a lab namespace asks the lab's name server, from inside the lab. Queries carry a
 * random id from a kernel-chosen port on a connected socket, and an answer counts only when it
 * echoes our question.
 */
import { crypto } from '../core/builtins.js';
import { readFileSync } from 'node:fs';
import { AF_INET, AF_INET6, SOCK_DGRAM } from '../core/constants.js';
import { PathlensError, errnoName } from '../core/errors.js';
import { EAGAIN } from '../core/errno.js';
import { RecvBatch, SendBatch } from '../io/batch.js';
import { type Placement, openSocket } from '../io/placement.js';
import type { Socket } from '../io/socket.js';
import { formatIp, parseIp, sockaddr } from '../packet/addr.js';
import { RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL, encodeQuery, parseMessage, ptrAnswer, reverseName } from './dns.js';

export type NameStatus = 'ok' | 'nxdomain' | 'no-name' | 'servfail' | 'refused' | 'timeout' | 'error';

export interface NameResult {
  addr: string;
  /** The first PTR name (null unless status is 'ok'). */
  name: string | null;
  status: NameStatus;
  /** Why, when status is 'error' (a socket error, a malformed answer...). */
  detail?: string;
  /** The server asked ("addr:port"). */
  server: string;
  /** Answered from the cache. */
  cached: boolean;
}

export interface ResolverOptions {
  /** Name server "ADDR" or "ADDR:PORT" / "[V6]:PORT"; default: the first nameserver of resolv.conf. */
  server?: string;
  placement?: Placement;
  timeoutMs?: number;
  concurrency?: number;
  /** How long failures (timeouts, errors, SERVFAIL) stay cached, ms. */
  failureTtlMs?: number;
  /** Upper bound on what the cache keeps an answer for, ms (whatever its TTL says). */
  maxTtlMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

export const RESOLVER_DEFAULTS = { timeoutMs: 2000, concurrency: 16, failureTtlMs: 60_000, maxTtlMs: 86_400_000 };

export interface Server {
  addr: Uint8Array;
  port: number;
  text: string;
}

/** "ADDR", "ADDR:PORT" or "[V6]:PORT". Throws ERR_USAGE. */
export function parseServer(s: string): Server {
  let host = s;
  let port = 53;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? (/^([^:]+):(\d+)$/.exec(s) as RegExpExecArray | null);
  if (m) {
    host = m[1];
    if (m[2] !== undefined) port = Number(m[2]);
  }
  if (!(port >= 1 && port <= 65535)) throw new PathlensError('ERR_USAGE', `name server ${s}: port must be 1..65535`);
  let addr: Uint8Array;
  try {
    addr = parseIp(host);
  } catch {
    throw new PathlensError('ERR_USAGE', `name server ${JSON.stringify(s)}: give an IP address (and :PORT)`);
  }
  const text = addr.length === 4 ? `${host}:${port}` : `[${formatIp(addr, 0, 6)}]:${port}`;
  return { addr, port, text };
}

/**
 * The name server a process in `netns` would use: /etc/netns/NAME/resolv.conf (what `ip netns
 * exec` shows the process as /etc/resolv.conf) when there is one, else /etc/resolv.conf.
 */
export function systemServer(netns?: string): Server | null {
  const files = netns && !netns.includes('/') ? [`/etc/netns/${netns}/resolv.conf`, '/etc/resolv.conf'] : ['/etc/resolv.conf'];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      if (!m) continue;
      try {
        return parseServer(m[1].includes(':') && !m[1].startsWith('[') ? `[${m[1].replace(/%.*$/, '')}]` : m[1]);
      } catch {
        // not an address this reader understands: try the next line
      }
    }
    return null;
  }
  return null;
}

interface Pending {
  id: number;
  addr: string;
  qname: string;
  timer: NodeJS.Timeout;
  waiters: ((r: NameResult) => void)[];
}

interface CacheEntry {
  result: NameResult;
  expires: number;
}

export class ReverseResolver {
  readonly server: Server | null;
  private readonly o: Required<Omit<ResolverOptions, 'server' | 'placement'>> & { placement: Placement };
  private sock: Socket | null = null;
  private sockError: string | null = null;
  private readonly send = new SendBatch(1, 512, 0, 0);
  private readonly recvBatch = new RecvBatch(8, 1500, 0, 0);
  private readonly byId = new Map<number, Pending>();
  private readonly byAddr = new Map<string, Pending>();
  private readonly queue: Pending[] = [];
  private readonly cache = new Map<string, CacheEntry>();
  private closed = false;
  /** Queries sent (not cache hits): what a test counts at the server. */
  queries = 0;

  constructor(opts: ResolverOptions = {}) {
    this.server = opts.server ? parseServer(opts.server) : systemServer(opts.placement?.netns);
    this.o = {
      timeoutMs: opts.timeoutMs ?? RESOLVER_DEFAULTS.timeoutMs,
      concurrency: opts.concurrency ?? RESOLVER_DEFAULTS.concurrency,
      failureTtlMs: opts.failureTtlMs ?? RESOLVER_DEFAULTS.failureTtlMs,
      maxTtlMs: opts.maxTtlMs ?? RESOLVER_DEFAULTS.maxTtlMs,
      now: opts.now ?? (() => performance.now()),
      placement: opts.placement ?? {},
    };
  }

  /** Lookups started and not yet settled. */
  get outstanding(): number {
    return this.byAddr.size;
  }

  /** The reverse name of `addr` (text form); always resolves, never rejects. */
  lookup(addr: string): Promise<NameResult> {
    const now = this.o.now();
    const hit = this.cache.get(addr);
    if (hit && hit.expires > now) return Promise.resolve({ ...hit.result, cached: true });
    if (hit) this.cache.delete(addr);
    const already = this.byAddr.get(addr);
    if (already) return new Promise((res) => already.waiters.push(res));
    const server = this.server?.text ?? 'none';
    if (this.closed) return Promise.resolve({ addr, name: null, status: 'error', detail: 'resolver closed', server, cached: false });
    if (!this.server) return Promise.resolve(this.remember({ addr, name: null, status: 'error', detail: 'no name server (resolv.conf has none; give --dns-server)', server, cached: false }, null));
    let bytes: Uint8Array;
    try {
      bytes = parseIp(addr);
    } catch {
      return Promise.resolve({ addr, name: null, status: 'error', detail: 'not an IP address', server, cached: false });
    }
    return new Promise((res) => {
      const p: Pending = { id: -1, addr, qname: reverseName(bytes), timer: undefined as unknown as NodeJS.Timeout, waiters: [res] };
      this.byAddr.set(addr, p);
      this.queue.push(p);
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && this.byId.size < this.o.concurrency && !this.closed) {
      const p = this.queue.shift()!;
      this.start(p);
    }
  }

  private openSock(): Socket | null {
    if (this.sock || this.sockError) return this.sock;
    const s = this.server!;
    try {
      const sock = openSocket(s.addr.length === 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0, this.o.placement);
      const rc = sock.connect(sockaddr(s.addr, s.port));
      if (rc < 0) {
        sock.close();
        this.sockError = `connect to ${s.text}: ${errnoName(-rc)}`;
        return null;
      }
      sock.watch(() => this.drain(), (e) => this.failAll(e.message));
      // The socket alone does not keep the process alive; a lookup out does (its timer).
      sock.unref();
      this.sock = sock;
    } catch (e) {
      this.sockError = (e as Error).message;
    }
    return this.sock;
  }

  private start(p: Pending): void {
    const sock = this.openSock();
    if (!sock) {
      this.settle(p, { status: 'error', detail: this.sockError ?? 'no socket' }, null);
      return;
    }
    let id = crypto().randomInt(0, 0x10000);
    while (this.byId.has(id)) id = (id + 1) & 0xffff;
    p.id = id;
    const len = encodeQuery(this.send.data, id, p.qname);
    this.send.set(0, len, 0, 0);
    const rc = this.send.send(sock.fd, 1);
    if (rc < 0) {
      this.settle(p, { status: 'error', detail: `send to ${this.server!.text}: ${errnoName(-rc)}` }, null);
      return;
    }
    this.queries++;
    this.byId.set(id, p);
    p.timer = setTimeout(() => this.settle(p, { status: 'timeout', detail: `no answer from ${this.server!.text} in ${this.o.timeoutMs} ms` }, null), this.o.timeoutMs);
  }

  private drain(): number {
    const sock = this.sock;
    if (!sock) return 0;
    let total = 0;
    for (;;) {
      const n = this.recvBatch.recv(sock.fd, 0);
      if (n <= 0) {
        // A refused or unreachable server shows as an error on the connected socket: every query out fails now.
        if (n < 0 && n !== -EAGAIN) this.failAll(`from ${this.server!.text}: ${errnoName(-n)}`);
        else {
          const err = sock.takeError();
          if (err) this.failAll(`from ${this.server!.text}: ${errnoName(err)}`);
        }
        return total;
      }
      total += n;
      for (let i = 0; i < n; i++) this.onMessage(this.recvBatch.data.subarray(this.recvBatch.dataOff(i), this.recvBatch.dataOff(i) + this.recvBatch.dataLen(i)));
    }
  }

  private onMessage(b: Uint8Array): void {
    const m = parseMessage(b);
    if ('error' in m) return; // not something we can attribute: the query's timeout stands
    const p = this.byId.get(m.id);
    if (!p) return;
    const a = ptrAnswer(m, p.id, p.qname);
    if (typeof a === 'string') return;
    if (m.truncated && a.names.length === 0) {
      this.settle(p, { status: 'error', detail: 'answer truncated (TC) without a PTR record' }, null);
      return;
    }
    if (a.rcode === RCODE_NOERROR && a.names.length > 0) this.settle(p, { status: 'ok', name: a.names[0] }, a.ttl);
    else if (a.rcode === RCODE_NOERROR) this.settle(p, { status: 'no-name' }, a.ttl);
    else if (a.rcode === RCODE_NXDOMAIN) this.settle(p, { status: 'nxdomain' }, a.ttl);
    else if (a.rcode === RCODE_SERVFAIL) this.settle(p, { status: 'servfail' }, null);
    else if (a.rcode === RCODE_REFUSED) this.settle(p, { status: 'refused' }, null);
    else this.settle(p, { status: 'error', detail: `rcode ${a.rcode}` }, null);
  }

  private failAll(detail: string): void {
    for (const p of [...this.byId.values()]) this.settle(p, { status: 'error', detail }, null);
  }

  private settle(p: Pending, r: { status: NameStatus; name?: string; detail?: string }, ttlS: number | null): void {
    if (this.byAddr.get(p.addr) !== p) return;
    clearTimeout(p.timer);
    this.byAddr.delete(p.addr);
    if (p.id >= 0) this.byId.delete(p.id);
    const result = this.remember(
      { addr: p.addr, name: r.name ?? null, status: r.status, ...(r.detail ? { detail: r.detail } : {}), server: this.server?.text ?? 'none', cached: false },
      ttlS,
    );
    for (const w of p.waiters) w(result);
    this.pump();
  }

  private remember(r: NameResult, ttlS: number | null): NameResult {
    const positive = r.status === 'ok' || r.status === 'nxdomain' || r.status === 'no-name';
    // Answers live for their TTL (negative ones without an SOA here: the failure lifetime).
    const life = positive && ttlS !== null ? Math.min(ttlS * 1000, this.o.maxTtlMs) : this.o.failureTtlMs;
    if (life > 0) this.cache.set(r.addr, { result: r, expires: this.o.now() + life });
    return r;
  }

  /** Resolves when every lookup started so far has settled (each is bounded by the timeout). */
  async settled(): Promise<void> {
    while (this.byAddr.size > 0) {
      const any = [...this.byAddr.values()][0];
      await new Promise<void>((res) => any.waiters.push(() => res()));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.byAddr.values()]) this.settle(p, { status: 'error', detail: 'resolver closed' }, null);
    this.sock?.close();
    this.sock = null;
  }
}
