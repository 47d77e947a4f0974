/**
 * Runs two traces in one process against a silent target (first with 32 hops, then 255) and
 * prints memory after each, plus the largest number of probes in flight seen in the events.
 * Used by test/netns/trace.test.ts; must run inside a lab namespace.
 */
import type { TraceEvent } from '../../src/trace/events.js';
import { TRACE_DEFAULTS } from '../../src/trace/request.js';
import { startTrace } from '../../src/trace/run.js';

async function once(target: string, maxTtl: number) {
  let inflight = 0;
  let maxInflight = 0;
  let probes = 0;
  const sink = {
    event(e: TraceEvent) {
      if (e.type === 'probe') {
        probes++;
        maxInflight = Math.max(maxInflight, ++inflight);
      } else if ((e.type === 'reply' && !e.late) || e.type === 'timeout') inflight--;
    },
  };
  const h = await startTrace({ ...TRACE_DEFAULTS, target, maxTtl, waitMs: 40 }, sink);
  const d = await h.done;
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, maxInflight, probes, hops: d.hops, reason: d.reason };
}

const target = process.argv[2];
const small = await once(target, 32);
const large = await once(target, 255);
process.stdout.write(`${JSON.stringify({ small, large })}\n`);
