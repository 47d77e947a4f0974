/**
 * The address a metrics endpoint listens on, as given to --prometheus. Apart from the exporters,
 * so that reading the option does not load prom-client.
 */
import { PathlensError } from '../core/errors.js';

/** ADDR:PORT, [v6]:PORT or :PORT (every address) -> host and port. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new PathlensError('ERR_USAGE', `--prometheus ${text}: expected ADDR:PORT, [IPv6]:PORT or :PORT (port 1-65535)`);
  return { host: m[1] ?? (m[2] || '::'), port };
}

/** Per-hop series a monitor's /metrics keeps at most by default (--max-hop-series). */
export const HOP_SERIES_DEFAULT = 100_000;
