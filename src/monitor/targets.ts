/**
 * The monitor's per-target state: what every probe reads (address, interval, ports, prober) kept
 * on the state itself, in one shape; the ladder's position; jitter and health. Its two windows
 * (filling and closing) are slots of the shared rooms (slotOf), and when it is next due lives in
 * the wheel's column.
 */
import { type Family, formatIp } from '../packet/addr.js';
import type { ProbeMethod } from '../probe/transport.js';
import { HealthState } from './health.js';
import type { Group, LadderTarget } from './ladder.js';
import type { Prober } from './prober.js';
import { LADDER, type MonitorTarget, ONLY, sameShape } from './request.js';
import { Jitter, WindowRooms } from './window.js';

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
export function makeTargets(given: MonitorTarget[], windowMs: number, seq0: number): { targets: TargetState[]; rooms: WindowRooms } {
  const n = given.length;
  const caps = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) caps[2 * i] = caps[2 * i + 1] = Math.ceil(windowMs / given[i].intervalMs) + 2;
  const rooms = new WindowRooms(caps);
  const out: TargetState[] = [];
  for (let i = 0; i < n; i++) {
    // Given in the one shape already (the CLI's are), it is kept as it is: a copy per target would
    // double a hundred thousand objects for the whole run.
    const g = given[i];
    const t = g.path !== undefined && g.labels !== undefined ? g : sameShape(g);
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
      jitter: new Jitter(),
      health: new HealthState(t.thresholds),
      tried: null,
      confirmLeft: 0,
      lastOk: false,
      oldAddr: null,
      oldUntil: 0,
    });
  }
  return { targets: out, rooms };
}

/** Target i's window w: its slot in the rooms (a target's two windows take turns). */
export const slotOf = (i: number, w: number): number => 2 * i + (w & 1);
