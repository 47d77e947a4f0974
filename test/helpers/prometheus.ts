/**
 * Talking to a test's Prometheus in a lab namespace: GET from inside the namespace, instant
 * queries through the HTTP API, and waiting until a query's answer is what a test expects.
 */
import assert from 'node:assert/strict';
import { runIn } from './lab.js';

export interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

/** GET url from inside namespace ns: "STATUS BODY" (empty when the request failed). */
export async function getIn(ns: string, url: string): Promise<string> {
  return (await runIn(ns, [process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(async r=>process.stdout.write(r.status+' '+await r.text()),e=>{console.error(e.message);process.exit(1)})`])).stdout;
}

/** Queries of the Prometheus listening on 127.0.0.1:port in namespace ns. */
export function prometheusIn(ns: string, port: number) {
  const query = async (q: string): Promise<Series[]> => {
    const text = await getIn(ns, `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => '');
    const body = text.slice(text.indexOf(' ') + 1);
    try {
      const j = JSON.parse(body) as { status: string; data: { result: Series[] } };
      return j.status === 'success' ? j.data.result : [];
    } catch {
      return [];
    }
  };
  /** Asks q every half second until ok(answer), for at most `seconds`; fails with the last answer. */
  const until = async (q: string, ok: (r: Series[]) => boolean, seconds: number): Promise<Series[]> => {
    let r: Series[] = [];
    for (let i = 0; i < seconds * 2; i++) {
      r = await query(q);
      if (ok(r)) return r;
      await new Promise((res) => setTimeout(res, 500));
    }
    assert.fail(`${q}: ${JSON.stringify(r)}`);
  };
  return { query, until };
}
