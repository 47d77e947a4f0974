/**
 * What a ktrace run is asked to do, and the programs' read-only configuration made from it.
 */
import { CONFIG } from './layout.js';
import type { HookKind } from './stages.js';

export interface KtraceRequest {
  /** This host's address (TX: it pings from here; RX: it is pinged here). */
  src: string;
  /** The far end's address. */
  dst: string;
  direction?: 'tx' | 'rx';
  /** Interface for the tc stages (none: those stages are left out). */
  iface?: string;
  netns?: string;
  /** Report only trips that took at least this long. */
  latencyMs?: number;
  /** Stop after this many complete trips. */
  count?: number;
  durationMs?: number;
  histogram?: boolean;
  /** Kernel stacks at the stages on tracing hooks (named through /proc/kallsyms). */
  stacks?: boolean;
  /** --histogram: a histogram event this often (0: only at the end). */
  intervalMs?: number;
  /** A trip without its final stage this long after it started is reported incomplete. */
  timeoutMs?: number;
  /** Only what was dropped: no rtt events, no incomplete trip the kernel did not drop (the drops summary as always). */
  dropsOnly?: boolean;
  /** Hook kinds not to use (tests force lower rungs with this). */
  skipHooks?: HookKind[];
  /** The stage profile: a shipped one's name (default "kernel"; with proto, "transport") or a YAML/JSON file. */
  profile?: string;
  /** Packet mode: time each packet of this transport between src and dst, both ways. */
  proto?: 'udp' | 'tcp';
  /** Packet mode: a port either end uses. */
  port?: number;
}

/** The programs' .rodata (struct kt_config): the verifier sees these as constants. */
export function configBytes(req: KtraceRequest, family: 4 | 6, src: Uint8Array, dst: Uint8Array, inode: number, kfreeReasonOff: number): Uint8Array {
  const b = new Uint8Array(CONFIG.size);
  const v = new DataView(b.buffer);
  v.setBigUint64(CONFIG.min_total_ns, BigInt(Math.round((req.latencyMs ?? 0) * 1e6)), true);
  v.setUint32(CONFIG.netns, inode, true);
  b[CONFIG.family] = family;
  b[CONFIG.rx] = req.direction === 'rx' && !req.proto ? 1 : 0;
  b[CONFIG.proto] = req.proto === 'tcp' ? 6 : req.proto === 'udp' ? 17 : 0;
  v.setUint16(CONFIG.port, req.port ?? 0, true);
  b[CONFIG.hist] = req.histogram ? 1 : 0;
  b[CONFIG.stacks] = req.stacks ? 1 : 0;
  b.set(src, CONFIG.local);
  b.set(dst, CONFIG.remote);
  v.setUint32(CONFIG.kfree_reason_off, kfreeReasonOff, true);
  return b;
}
