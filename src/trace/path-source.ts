/**
 * Trace's side of the path seam (`path/source.ts`): a watched path is continuous mode (rounds.ts)
 * with no views: each finished round handed over as the hops and MTUs its events carried. The
 * monitor's `hops` targets run on this; the command line passes it in (capabilities never import
 * each other).
 */
import type { Sink } from '../core/sink.js';
import type { InflightPool } from '../probe/pool.js';
import type { OpenPathTracer, PathHooks, PathSpec, PathTracer } from '../path/source.js';
import type { HopSample } from '../path/stats.js';
import type { TraceEvent } from './events.js';
import { TRACE_DEFAULTS, type TraceRequest } from './request.js';
import { startRounds } from './rounds.js';

export const openTracePath: OpenPathTracer = async (spec: PathSpec, hooks: PathHooks, pool: InflightPool): Promise<PathTracer> => {
  const req: TraceRequest = {
    ...TRACE_DEFAULTS,
    target: spec.address,
    method: spec.method,
    port: spec.port,
    placement: spec.placement,
    ...(spec.source ? { source: spec.source } : {}),
    maxTtl: spec.maxTtl,
    queries: spec.queries,
    waitMs: spec.waitMs,
    maxInflight: Math.min(TRACE_DEFAULTS.maxInflight, pool.cap),
    ...(spec.flows > 1 ? { ecmp: spec.flows } : {}),
  };
  let hops: HopSample[] = [];
  let mtus: { ttl: number; mtu: number }[] = [];
  let stopped = false;
  const sink: Sink<TraceEvent> = {
    event(e) {
      if (stopped) return;
      if (e.type === 'hop') hops.push({ ttl: e.ttl, probes: e.probes, replies: e.replies, ...(e.no_reply_flows ? { no_reply_flows: e.no_reply_flows } : {}) });
      else if (e.type === 'mtu') mtus.push({ ttl: e.ttl, mtu: e.mtu });
      else if (e.type === 'round') {
        const r = { round: e.round, hops, mtus, reached: e.reached, srcPort: e.src_port };
        hops = [];
        mtus = [];
        // An interrupted round is not a round: its hops were cut short by stop().
        if (e.reason !== 'interrupted') hooks.onRound(r);
      }
    },
  };
  const h = await startRounds(req, sink, { count: null, intervalMs: spec.intervalMs, hopsOnly: true }, { pool });
  const done = h.done.then(
    (d) => {
      if (d.reason === 'error' && h.error && !stopped) hooks.onError(h.error);
    },
    (e: Error) => {
      if (!stopped) hooks.onError(e);
    },
  );
  return {
    stop: () => {
      stopped = true;
      h.stop();
    },
    done,
  };
};
