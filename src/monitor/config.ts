/**
 * Monitor targets from a YAML or JSON file (`monitor -c FILE`), merged over the command line's
 * defaults. Errors name the file, the line and the field (`targets.yaml:7: targets[2].interval
 * must be a number of seconds from 0.01 to 3600`). JSON is YAML, so one parser reads both.
 *
 *   defaults: {method: auto, interval: 1, port: 33434, tcp_port: 80, netns: blue,
 *              thresholds: {loss_degraded: 5, loss_down: 100, rtt_degraded_ms: 0, jitter_degraded_ms: 0, rise: 2, fall: 2}}
 *   targets:
 *     - 192.0.2.1                                # an address or a name, with the defaults
 *     - {target: example.net, method: tcp, tcp_port: 443, path: uplink-a, iface: wan0, source: 198.51.100.2, labels: {site: par}}
 *     - {target: 203.0.113.9, hops: true}        # its path too: per-hop figures, path changes
 *     - {target: 203.0.113.7, hops: {interval: 10, max_ttl: 20, queries: 3, method: udp, ecmp: 4}}
 */
import { readConfigText } from '../io/config-file.js';
import { isIP } from 'node:net';
import { PathlensError } from '../core/errors.js';
import { type Thresholds } from './health.js';
import type { MethodChoice, TargetSettings } from './request.js';
import { HOPS_DEFAULTS, type HopsSettings } from './paths.js';

export interface TargetSpec extends TargetSettings {
  target: string;
}

export type Defaults = Omit<TargetSpec, 'target' | 'path' | 'labels'>;

const MAX_BYTES = 16 << 20;

/** Reads the file; `base` holds the command line's values. */
export async function readTargetsFile(file: string, base: Defaults): Promise<TargetSpec[]> {
  const out: TargetSpec[] = [];
  await eachTargetInFile(file, base, (target, s) => out.push({ ...s, target }));
  return out;
}

/**
 * Reads the file and hands each target to `each`, with its settings: the targets given as bare
 * addresses or names share one settings object (the file's defaults), so a hundred thousand of
 * them are a hundred thousand calls, not a hundred thousand objects kept until the run starts.
 * Nothing is handed over unless the whole file is right.
 */
export async function eachTargetInFile(file: string, base: Defaults, each: (target: string, s: TargetSettings) => void): Promise<void> {
  const text = readConfigText(file, MAX_BYTES, 'a target file');
  // JSON is read with JSON.parse (a target file of 10,000 entries in milliseconds); YAML, or a
  // JSON file with a mistake in it, through the YAML parser, which knows where each node is.
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  // The YAML parser is loaded only for YAML, or to say where a mistake in a JSON file is.
  const YAML = json === undefined ? await import('yaml') : null;
  let docCache: { doc: import('yaml').Document.Parsed; lines: import('yaml').LineCounter } | null = null;
  const parsed = (Y: typeof import('yaml')) => {
    if (!docCache) {
      const lines = new Y.LineCounter();
      docCache = { doc: Y.parseDocument(text, { lineCounter: lines, prettyErrors: false, logLevel: 'error' }), lines };
    }
    return docCache;
  };
  if (YAML) {
    const { doc, lines } = parsed(YAML);
    if (doc.errors.length) {
      const e = doc.errors[0];
      throw new PathlensError('ERR_CONFIG', `${file}:${lines.linePos(e.pos[0]).line}: not valid YAML or JSON: ${e.message.split('\n')[0]}`);
    }
  }
  const fail = (path: (string | number)[], what: string): never => {
    throw new ConfigMistake(path, what);
  };
  let root: unknown = json;
  if (YAML) {
    // Aliases are resolved here: one that names no anchor, or too many of them (a "billion laughs"
    // file), is refused like any other mistake in the file.
    try {
      root = parsed(YAML).doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw new PathlensError('ERR_CONFIG', `${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  try {
    const { defaults, targets } = specsOf(root, base, fail);
    const bare = specOf(defaults, '');
    for (const t of targets) {
      if (typeof t === 'string') each(t, bare);
      else each(t.target, t);
    }
    return;
  } catch (e) {
    if (!(e instanceof ConfigMistake)) throw e;
    // The line where the node at the mistake's path starts (1 when unknown).
    const { doc, lines } = parsed(YAML ?? (await import('yaml')));
    const node = doc.getIn(e.path, true) as { range?: [number, number, number] } | undefined;
    const line = node?.range ? lines.linePos(node.range[0]).line : 1;
    const name = e.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i ? `.${p}` : p)).join('');
    throw new PathlensError('ERR_CONFIG', `${file}:${line}: ${name} ${e.what}`);
  }
}

/** A mistake found in a target file's content, before its line is known. */
class ConfigMistake extends Error {
  constructor(
    readonly path: (string | number)[],
    readonly what: string,
  ) {
    super(what);
  }
}

/** The file's defaults, and its targets: bare ones as their text, the others as specs (checked). */
function specsOf(root: unknown, base: Defaults, fail: Fail): { defaults: Defaults; targets: (string | TargetSpec)[] } {
  if (!root || typeof root !== 'object' || Array.isArray(root)) fail([], 'the file must hold a mapping with `targets` (and optionally `defaults`)');
  const r = root as Record<string, unknown>;
  for (const k of Object.keys(r)) if (k !== 'targets' && k !== 'defaults') fail([k], 'is not a known key (targets, defaults)');
  const defaults = r.defaults === undefined ? base : (fields(r.defaults, ['defaults'], base, fail, false) as Defaults);
  if (!Array.isArray(r.targets) || r.targets.length === 0) fail(['targets'], 'must be a non-empty list');
  const list = r.targets as unknown[];
  for (let i = 0; i < list.length; i++) {
    const t = list[i];
    if (typeof t === 'string') {
      if (!t.trim()) fail(['targets', i], 'must be an address, a name or a mapping with `target`');
    } else list[i] = fields(t, ['targets', i], defaults, fail, true) as TargetSpec;
  }
  return { defaults, targets: list as (string | TargetSpec)[] };
}

type Fail = (path: (string | number)[], what: string) => never;

function fields(v: unknown, at: (string | number)[], base: Defaults, fail: Fail, isTarget: boolean): Defaults | TargetSpec {
  if (!v || typeof v !== 'object' || Array.isArray(v)) fail(at, isTarget ? 'must be an address, a name or a mapping with `target`' : 'must be a mapping');
  const o = v as Record<string, unknown>;
  const known = ['method', 'interval', 'port', 'tcp_port', 'netns', 'iface', 'mark', 'source', 'thresholds', 'hops', ...(isTarget ? ['target', 'path', 'labels'] : [])];
  for (const k of Object.keys(o)) if (!known.includes(k)) fail([...at, k], `is not a known field (${known.join(', ')})`);
  const out: TargetSpec = { ...base, thresholds: { ...base.thresholds }, placement: { ...base.placement }, target: '', path: null, labels: {} };
  if (isTarget) {
    if (typeof o.target !== 'string' || !o.target.trim()) fail([...at, 'target'], 'must be an address or a name');
    out.target = o.target as string;
    if (o.path !== undefined) {
      if (typeof o.path !== 'string' || !/^[\w.:-]{1,64}$/.test(o.path)) fail([...at, 'path'], 'must be a label of 1-64 letters, digits, _ . : -');
      out.path = o.path as string;
    }
    if (o.labels !== undefined) {
      if (!o.labels || typeof o.labels !== 'object' || Array.isArray(o.labels)) fail([...at, 'labels'], 'must be a mapping of strings');
      for (const [k, x] of Object.entries(o.labels as Record<string, unknown>)) {
        if (!/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/.test(k) || typeof x !== 'string') fail([...at, 'labels', k], 'must be a string, under a name of letters, digits and _');
        out.labels[k] = x as string;
      }
    }
  }
  if (o.method !== undefined) {
    if (!['auto', 'icmp', 'udp', 'tcp'].includes(o.method as string)) fail([...at, 'method'], 'must be auto, icmp, udp or tcp');
    out.method = o.method as MethodChoice;
  }
  const num = (k: string, lo: number, hi: number, unit: string): number | undefined => {
    if (o[k] === undefined) return undefined;
    if (typeof o[k] !== 'number' || !((o[k] as number) >= lo && (o[k] as number) <= hi)) fail([...at, k], `must be ${unit} from ${lo} to ${hi}`);
    return o[k] as number;
  };
  const iv = num('interval', 0.001, 3600, 'a number of seconds');
  if (iv !== undefined) out.intervalMs = Math.round(iv * 1000);
  const port = num('port', 1, 65535, 'a port');
  if (port !== undefined) out.udpPort = port;
  const tcp = num('tcp_port', 1, 65535, 'a port');
  if (tcp !== undefined) out.tcpPort = tcp;
  const mark = num('mark', 0, 0xffffffff, 'a mark');
  if (mark !== undefined) out.placement.mark = mark;
  if (o.source !== undefined) {
    if (typeof o.source !== 'string' || isIP(o.source) === 0) fail([...at, 'source'], 'must be an IP address');
    out.source = o.source as string;
  }
  for (const k of ['netns', 'iface'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'string' || !(o[k] as string)) fail([...at, k], 'must be a name');
    out.placement[k] = o[k] as string;
  }
  if (o.hops !== undefined) out.hops = hopsOf(o.hops, [...at, 'hops'], base.hops ?? null, fail);
  if (o.thresholds !== undefined) {
    const t = o.thresholds as Record<string, unknown>;
    if (!t || typeof t !== 'object' || Array.isArray(t)) fail([...at, 'thresholds'], 'must be a mapping');
    const map: Record<string, [keyof Thresholds, number, number]> = {
      loss_degraded: ['lossDegraded', 0, 100],
      loss_down: ['lossDown', 0, 100],
      rtt_degraded_ms: ['rttDegradedMs', 0, 600000],
      jitter_degraded_ms: ['jitterDegradedMs', 0, 600000],
      rise: ['rise', 1, 100],
      fall: ['fall', 1, 100],
    };
    for (const [k, x] of Object.entries(t)) {
      const m = map[k];
      if (!m) fail([...at, 'thresholds', k], `is not a known threshold (${Object.keys(map).join(', ')})`);
      if (typeof x !== 'number' || !(x >= m[1] && x <= m[2]) || ((k === 'rise' || k === 'fall') && !Number.isInteger(x))) fail([...at, 'thresholds', k], `must be a number from ${m[1]} to ${m[2]}`);
      out.thresholds[m[0]] = x as number;
    }
    if (out.thresholds.lossDegraded > out.thresholds.lossDown) fail([...at, 'thresholds'], 'loss_degraded must not be above loss_down');
  }
  return isTarget ? out : defaultsOf(out);
}

/** `hops: true | false | {interval, max_ttl, queries, method, ecmp, port}` over the defaults' hops. */
function hopsOf(v: unknown, at: (string | number)[], base: HopsSettings | null, fail: Fail): HopsSettings | null {
  if (v === false || v === null) return null;
  if (v === true) return base ?? HOPS_DEFAULTS;
  if (!v || typeof v !== 'object' || Array.isArray(v)) fail(at, 'must be true, false or a mapping (interval, max_ttl, queries, method, ecmp, port)');
  const o = v as Record<string, unknown>;
  const known = ['interval', 'max_ttl', 'queries', 'method', 'ecmp', 'port'];
  for (const k of Object.keys(o)) if (!known.includes(k)) fail([...at, k], `is not a known field (${known.join(', ')})`);
  const out: HopsSettings = { ...(base ?? HOPS_DEFAULTS) };
  const int = (k: string, lo: number, hi: number): number | undefined => {
    if (o[k] === undefined) return undefined;
    if (typeof o[k] !== 'number' || !Number.isInteger(o[k]) || (o[k] as number) < lo || (o[k] as number) > hi) fail([...at, k], `must be a whole number from ${lo} to ${hi}`);
    return o[k] as number;
  };
  if (o.interval !== undefined) {
    if (typeof o.interval !== 'number' || !(o.interval >= 0.1 && o.interval <= 86400)) fail([...at, 'interval'], 'must be a number of seconds from 0.1 to 86400');
    out.intervalMs = Math.round((o.interval as number) * 1000);
  }
  out.maxTtl = int('max_ttl', 1, 255) ?? out.maxTtl;
  out.queries = int('queries', 1, 10) ?? out.queries;
  out.flows = int('ecmp', 1, 64) ?? out.flows;
  out.port = int('port', 1, 65535) ?? out.port;
  if (o.method !== undefined) {
    if (!['icmp', 'udp', 'tcp'].includes(o.method as string)) fail([...at, 'method'], 'must be icmp, udp or tcp');
    out.method = o.method as HopsSettings['method'];
  }
  return out;
}

/** No labels: one object for every target without (nothing writes to a spec's labels). */
const NO_LABELS: Record<string, string> = Object.freeze({});

/** A target given as a bare address or name, with the defaults; written out (ten thousand of these, and no spread). */
export function specOf(d: Defaults, target: string): TargetSpec {
  return { method: d.method, udpPort: d.udpPort, tcpPort: d.tcpPort, intervalMs: d.intervalMs, thresholds: d.thresholds, placement: d.placement, source: d.source, target, path: null, labels: NO_LABELS, hops: d.hops ?? null };
}

/** The defaults part of a spec, written out: objects made by rest destructuring can come out in V8's slow dictionary mode, and every target is made from these. */
function defaultsOf(o: TargetSpec): Defaults {
  return { method: o.method, udpPort: o.udpPort, tcpPort: o.tcpPort, intervalMs: o.intervalMs, thresholds: o.thresholds, placement: o.placement, source: o.source, hops: o.hops ?? null };
}
