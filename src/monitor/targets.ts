/**
 * The monitor's per-target state: what every probe reads (address, interval, ports, prober) kept
 * on the state itself, in one shape; the ladder's position; the two windows (filling and closing)
 * in shared rooms; jitter and health. When a target is next due lives in the wheel's column.
 */
import { type Family, formatIp } from '../packet/addr.js';
import type { ProbeMethod } from '../probe/transport.js';
import { HealthState } from './health.js';
import type { Group, LadderTarget } from './ladder.js';
import type { Prober } from './prober.js';
import { LADDER, type MonitorTarget, ONLY, sameShape } from './request.js';
import { Jitter, type TargetWindow, WindowRooms } from './window.js';

export interface TargetState extends LadderTarget {
  t: MonitorTarget;
  index: number;
  address: Uint8Array;
  intervalMs: number;
  udpPort: number;
  tcpPort: number;
  family: Family;
  addr: string;
  methods: ProbeMethod[];
  seq: number;
  windows: [TargetWindow, TargetWindow];
  jitter: Jitter;
  health: HealthState;
  /** --confirm: fast probes still to send after a loss, and whether the last outcome was an answer. */
  confirmLeft: number;
  lastOk: boolean;
  /** The address before the last change (--resolve-every), answers from which count until oldUntil. */
  oldAddr: Uint8Array | null;
  oldUntil: number;
}

/**
 * The targets' states, their windows in shared rooms (two a target, room for its probes in a
 * window), sequences spread over the sequence space from one random start `seq0`.
 */
export function makeTargets(given: MonitorTarget[], windowMs: number, seq0: number): TargetState[] {
  const n = given.length;
  const caps = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) caps[2 * i] = caps[2 * i + 1] = Math.ceil(windowMs / given[i].intervalMs) + 2;
  const rooms = new WindowRooms(caps);
  const out: TargetState[] = [];
  for (let i = 0; i < n; i++) {
    const t = sameShape(given[i]);
    const family: Family = t.address.length === 4 ? 4 : 6;
    out.push({
      t,
      index: i,
      address: t.address,
      intervalMs: t.intervalMs,
      udpPort: t.udpPort,
      tcpPort: t.tcpPort,
      family,
      addr: formatIp(t.address, 0, family),
      step: 0,
      methods: t.method === 'auto' ? LADDER : ONLY[t.method],
      prober: null as unknown as Prober,
      group: null as unknown as Group,
      seq: (seq0 + i * 7919) & 0xffff,
      windows: [rooms.window(2 * i), rooms.window(2 * i + 1)],
      jitter: new Jitter(),
      health: new HealthState(t.thresholds),
      tried: null,
      confirmLeft: 0,
      lastOk: false,
      oldAddr: null,
      oldUntil: 0,
    });
  }
  for (const s of out) s.windows[1].win = 1;
  return out;
}
