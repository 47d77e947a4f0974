/**
 * Prometheus exposition for pping (`--prometheus ADDR:PORT`): an HTTP server whose /metrics is
 * prom-client's text format, fed by the pathlens.pping/1 event stream. Labels are bounded: RTTs
 * and packets are labelled by aggregated prefix (at most --aggregate-max-prefixes, then "other")
 * and protocol, flow events by kind, reason and protocol; never by address or port.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http, https } from '../core/builtins.js';
import { Counter, Histogram, Registry } from 'prom-client';
import { type WebConfig, makeGuard, refuse, tlsOptions } from './web-config.js';
import { ClientLimits, LIMIT_DEFAULTS, type LimitOptions } from './limits.js';
import { PathlensError } from '../core/errors.js';
import { Aggregator, type AggregateOptions, prefixOf, RTT_BOUNDS_MS } from '../pping/aggregate.js';
import type { PpingEvent } from '../pping/events.js';

export class PpingMetrics {
  readonly registry = new Registry();
  private readonly agg: Aggregator;
  private readonly rtt: Histogram<'prefix' | 'protocol'>;
  private readonly packets: Counter<'prefix' | 'direction'>;
  private readonly bytes: Counter<'prefix' | 'direction'>;
  private readonly flows: Counter<'event' | 'reason' | 'protocol'>;
  private readonly full: Counter<'table'>;
  private readonly oneWay: Counter<'prefix'>;

  constructor(o: Partial<AggregateOptions>) {
    this.agg = new Aggregator(o);
    const registers = [this.registry];
    this.rtt = new Histogram({
      name: 'pathlens_pping_rtt_seconds',
      help: 'RTT samples, by prefix of the echoing end and protocol',
      labelNames: ['prefix', 'protocol'],
      buckets: RTT_BOUNDS_MS.map((b) => b / 1000),
      registers,
    });
    this.packets = new Counter({ name: 'pathlens_pping_packets_total', help: 'Packets of measured flows (sent: toward the prefix), up to each flow\'s latest RTT sample', labelNames: ['prefix', 'direction'], registers });
    this.bytes = new Counter({ name: 'pathlens_pping_bytes_total', help: 'IP bytes of measured flows (sent: toward the prefix), up to each flow\'s latest RTT sample', labelNames: ['prefix', 'direction'], registers });
    this.flows = new Counter({ name: 'pathlens_pping_flow_events_total', help: 'Flow opening and closing events', labelNames: ['event', 'reason', 'protocol'], registers });
    this.oneWay = new Counter({ name: 'pathlens_pping_one_way_flows_total', help: 'Flows that went with one direction only seen, by prefix of the silent end', labelNames: ['prefix'], registers });
    this.full = new Counter({ name: 'pathlens_pping_table_full_total', help: 'Flows or timestamps not kept because a state table was full', labelNames: ['table'], registers });
  }

  event(e: PpingEvent): void {
    if (e.type === 'rtt') {
      const a = this.agg.add(e, false);
      this.rtt.observe({ prefix: a.prefix, protocol: e.protocol }, e.rtt / 1e9);
      this.packets.inc({ prefix: a.prefix, direction: 'sent' }, a.sentPackets);
      this.packets.inc({ prefix: a.prefix, direction: 'received' }, a.recPackets);
      this.bytes.inc({ prefix: a.prefix, direction: 'sent' }, a.sentBytes);
      this.bytes.inc({ prefix: a.prefix, direction: 'received' }, a.recBytes);
    } else if (e.type === 'flow') {
      this.flows.inc({ event: e.flow_event, reason: e.reason, protocol: e.protocol });
      this.agg.flow(e, false);
      if (!e.bidirectional) this.oneWay.inc({ prefix: this.agg.label(prefixOf(e.src_ip, this.agg.o)) });
    } else if (e.type === 'table-full') {
      this.full.inc({ table: e.table }, e.dropped);
    }
  }

  /** Serves GET /metrics on host:port; resolves once listening. */
  listen(host: string, port: number, web: WebConfig | null = null, limits: LimitOptions = LIMIT_DEFAULTS): Promise<Server> {
    return serveMetrics(this.registry, host, port, 'pping', {}, web, limits);
  }
}

/** An HTTP answer of a route beside /metrics. */
export interface RouteAnswer {
  status: number;
  body: string;
  contentType?: string;
}

/**
 * Serves a registry's GET /metrics on host:port, and GET on the other `routes` given (404
 * elsewhere); resolves once listening.
 */
export function serveMetrics(registry: Registry, host: string, port: number, what: string, routes: Record<string, (q: URLSearchParams) => RouteAnswer> = {}, web: WebConfig | null = null, limits: LimitOptions = LIMIT_DEFAULTS): Promise<Server> {
  const guard = web ? makeGuard(web) : null;
  const bounds = new ClientLimits(limits);
  const refusedHttp = new Counter({ name: 'pathlens_http_requests_refused_total', help: 'Requests to this endpoint refused before being answered, by reason: rate (more than --prometheus-rate a second from one address), inflight (too many at once from one address).', labelNames: ['reason'], registers: [registry] });
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const [path, query] = (req.url ?? '').split('?', 2);
    const route = req.method === 'GET' ? routes[path] : undefined;
    if (route) {
      let a: RouteAnswer;
      try {
        a = route(new URLSearchParams(query ?? ''));
      } catch (e) {
        a = { status: 500, body: `${(e as Error).message}\n` };
      }
      res.writeHead(a.status, { 'content-type': a.contentType ?? 'text/plain; charset=utf-8' }).end(a.body);
      return;
    }
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`pathlens ${what}: metrics are at /metrics${Object.keys(routes).length ? ` (and ${Object.keys(routes).join(', ')})` : ''}\n`);
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  };
  // With a web configuration (--web.config.file): TLS when it says so, its headers on every
  // answer, and every request checked (client certificate, basic auth) before it is answered.
  const checked = (req: IncomingMessage, res: ServerResponse) => {
    // Bounded before anything costs (a bcrypt check, the metrics' rendering).
    const client = req.socket.remoteAddress ?? '';
    const no = bounds.admit(client);
    if (no) {
      refusedHttp.inc({ reason: no });
      const rate = no === 'rate';
      res.writeHead(rate ? 429 : 503, { 'content-type': 'text/plain; charset=utf-8', ...(rate ? { 'retry-after': String(bounds.retryAfter(client)) } : {}) });
      res.end(rate ? `more than ${limits.ratePerSec} requests a second from ${client}\n` : `more than ${limits.inflight} requests at once from ${client}\n`);
      return;
    }
    res.once('close', () => bounds.done(client));
    if (!guard || !web) return handle(req, res);
    for (const [k, v] of Object.entries(web.headers)) res.setHeader(k, v);
    guard(req).then(
      (status) => (status === 0 ? handle(req, res) : refuse(res, status)),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  };
  const server = web?.tls ? https().createServer(tlsOptions(web.tls), checked) : http().createServer(checked);
  // A client that sends its request slowly, or holds connections open, is cut off.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.maxConnections = 1024;
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new PathlensError('ERR_USAGE', `--prometheus ${host.includes(':') ? `[${host}]` : host}:${port}: cannot listen (${err.code ?? err.message})`)),
    );
    server.listen(port, host, () => resolve(server));
  });
}
