/**
 * The monitor: many targets, probed on a timing wheel that spreads their send times evenly over
 * the interval, through shared sockets (one per method, family and way out), with per-window
 * statistics, health states, the method ladder, and events.
 *
 * Probes belong to the window in which they were sent; a window is closed `timeout` after its end,
 * when each of its probes has an outcome (a reply, an unreachable, or a timeout), so nothing is
 * counted lost that could still be answered. Memory per target is fixed (a ring of outstanding
 * probes, two windows); the timeout queue is a ring that grows only with the probes in flight.
 *
 * The ladder (`auto`): ICMP echo (ping socket), then UDP to a closed port, then TCP connect, in
 * that order, skipping what the kernel refuses (a `method` event with action `refused`); a method
 * that got no answer in a whole window gives way to the next (`switched`, with the reason); when
 * none answered, the target is `unreachable` (with what each method got) and the ladder starts
 * over. Statistics never mix methods: every window is probed with one.
 */
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import type { RunHandle } from '../core/run.js';
import type { Sink } from '../core/sink.js';
import { PathlensError } from '../core/errors.js';
import { version } from '../core/version.js';
import type { Placement } from '../io/placement.js';
import { type Family, formatIp, parseIp, sameAddr } from '../packet/addr.js';
import { type MethodEvent, MONITOR_SCHEMA, type MonitorDoneEvent, type MonitorEvent } from './events.js';
import { DEFAULT_THRESHOLDS, type Health, HealthState, type Thresholds, judge } from './health.js';
import { type Answer, EchoProber, type MonitorMethod, type Prober, TcpProber, UdpProber } from './probers.js';
import { Jitter, TargetWindow, WindowRooms } from './window.js';

export type MethodChoice = MonitorMethod | 'auto';
export const LADDER: MonitorMethod[] = ['icmp', 'udp', 'tcp'];
/** A target held to one method: its ladder of one, shared. */
const ONLY: Record<MonitorMethod, MonitorMethod[]> = { icmp: ['icmp'], udp: ['udp'], tcp: ['tcp'] };

/** What a target's configuration says, whoever read it (command line, target file). */
export interface TargetSettings {
  method: MethodChoice;
  /** UDP: the (closed) port probed; TCP: the port connected to. */
  udpPort: number;
  tcpPort: number;
  intervalMs: number;
  thresholds: Thresholds;
  placement: Placement;
  /** The source address the probes leave from (the way out's), when given. */
  source?: string;
  /** The way out, for events and metrics (e.g. the uplink's name). */
  path: string | null;
  labels: Record<string, string>;
}

export interface MonitorTarget extends TargetSettings {
  /** As given (name or address). */
  name: string;
  address: Uint8Array;
}

export interface MonitorRequest {
  targets: MonitorTarget[];
  windowMs: number;
  timeoutMs: number;
  /** 0: until stopped. */
  durationMs: number;
  samples: boolean;
  /** Run on every state change, with PATHLENS_* in its environment. */
  onChange?: string;
  /** Every answer's RTT (the metrics' histogram). */
  onRtt?: (target: string, method: MonitorMethod, path: string | null, rttMs: number) => void;
  /** After a lost probe, this many probes at a tenth of the interval (0: off), to confirm a failure sooner. */
  confirm?: number;
  /** Names looked up again this often (0: never), ms; an address that changes is an `address` event. */
  resolveEveryMs?: number;
  /** How names are looked up (tests); the system resolver by default. */
  resolve?: (name: string, family?: Family) => Promise<Uint8Array>;
}

export const MONITOR_DEFAULTS = { intervalMs: 1000, windowMs: 10_000, timeoutMs: 1000, udpPort: 33434, tcpPort: 80, thresholds: DEFAULT_THRESHOLDS };

/** Outstanding probes kept per target, at most: enough for timeout / interval probes in flight. */
const RING_MAX = 64;
/**
 * The timer's period. Each wake-up costs CPU (about 25 µs here: a virtual machine's timer and
 * halt exits, the event loop's two polls), and a tick sends what came due since the last, so the
 * period is the trade between CPU and how bunched the sends are. With Node's timers firing about
 * a millisecond late, 4 ms gives bursts of about 5 ms' worth (50 probes at 10,000 a second) and
 * cost 8 % less CPU than 2 ms (bursts of 3 ms' worth) for 10,000 targets.
 */
const TICK_MS = 4;
/** The wheel's slot: a tick sends the slots that have ended since the last, every probe in them due. */
const SLOT_MS = 1;
/** At most this many ticks' worth of probes go out in one tick (what a late timer brings is allowed; after a stall, the rest waits). */
const BURST_TICKS = 1.25;
/** Targets whose window is closed per tick. */
const CLOSE_BATCH = 200;

interface Group {
  prober: Prober;
  idx: number[];
}

interface TargetState {
  t: MonitorTarget;
  /** What every probe reads, here rather than behind `t` (one object fewer per probe). */
  index: number;
  address: Uint8Array;
  intervalMs: number;
  udpPort: number;
  tcpPort: number;
  family: Family;
  addr: string;
  /** Ladder position (index in `methods`). */
  step: number;
  methods: MonitorMethod[];
  prober: Prober;
  /** The prober's batch of due probes (one per prober, made when the prober opens). */
  group: Group;
  seq: number;
  /** Where its outstanding ring starts in the shared ring arrays (index * ring). */
  base: number;
  windows: [TargetWindow, TargetWindow];
  jitter: Jitter;
  health: HealthState;
  /** What each method got when it last gave way (for the `unreachable` reason). */
  tried: Map<MonitorMethod, string> | null;
  /** Timing wheel: next due (ms since start) and the next target in the same slot. */
  due: number;
  next: number;
  /** --confirm: fast probes still to send after a loss, and whether the last outcome was an answer. */
  confirmLeft: number;
  lastOk: boolean;
  /** The address before the last change (--resolve-every), answers from which count until oldUntil. */
  oldAddr: Uint8Array | null;
  oldUntil: number;
}

/**
 * The target in one shape. Targets come from the command line, files and the API, built with
 * their keys in different orders; read through objects of many shapes, every probe's
 * `t.address` would be a megamorphic lookup.
 */
function sameShape(t: MonitorTarget): MonitorTarget {
  return {
    name: t.name,
    address: t.address,
    method: t.method,
    udpPort: t.udpPort,
    tcpPort: t.tcpPort,
    intervalMs: t.intervalMs,
    // Shared, not copied: targets from one file share their defaults' objects, and these are read
    // once a window, not once a probe.
    thresholds: t.thresholds,
    placement: t.placement,
    source: t.source,
    path: t.path ?? null,
    labels: t.labels ?? {},
  };
}

export interface MonitorHandle extends RunHandle<MonitorDoneEvent> {
  /** The error that ended the run, when done.reason is 'error'. */
  readonly error: Error | null;
  /** Latest state per target index (views, metrics). */
  states(): { target: string; path: string | null; method: MonitorMethod; state: Health | null }[];
}

export async function startMonitor(req: MonitorRequest, sink: Sink<MonitorEvent>): Promise<MonitorHandle> {
  if (req.targets.length === 0) throw new PathlensError('ERR_USAGE', 'no targets: give addresses or names, or a config file with -c');
  if (!(req.timeoutMs > 0 && req.timeoutMs < req.windowMs)) throw new PathlensError('ERR_USAGE', `the timeout (${req.timeoutMs} ms) must be shorter than the window (${req.windowMs} ms)`);
  for (const t of req.targets) {
    if (!(t.intervalMs >= 1)) throw new PathlensError('ERR_USAGE', `${t.name}: the interval must be at least 1 ms`);
    if (RING_MAX * t.intervalMs < req.timeoutMs) throw new PathlensError('ERR_USAGE', `${t.name}: an interval of ${t.intervalMs} ms keeps more than ${RING_MAX} probes waiting for a ${req.timeoutMs} ms timeout`);
  }
  const session = randomInt(0, 0xffffffff);
  const seq0 = randomInt(0, 0x10000);
  const t0 = performance.now();
  const wall0 = Date.now();
  const now = () => performance.now() - t0;
  const tms = () => Math.round(now() * 1000) / 1000;
  const emit = (e: MonitorEvent) => sink.event(e);
  const counts = { sent: 0, replies: 0 };
  /** Probes sent that have no outcome yet. */
  let pending = 0;
  let failure: Error | null = null;
  let finished = false;
  let stopReason: MonitorDoneEvent['reason'] | null = null;

  // Probers, one per method, family and way out; opened on first use. Each has a group: the
  // indexes of its targets due in this tick.
  const groups: Group[] = [];
  const groupOf = (pr: Prober): Group => {
    let g = groups.find((x) => x.prober === pr);
    if (!g) groups.push((g = { prober: pr, idx: [] }));
    return g;
  };
  const probers = new Map<string, Prober | Error>();
  /** The probers that opened (the tick reads them). */
  const proberList: Prober[] = [];
  const byIndex: TargetState[] = [];
  const hooks = { onAnswer: (a: Answer) => onAnswer(a), onFatal: (e: Error) => fail(e) };
  // The last lookup, kept: targets from one file share their placement object, and ten
  // thousand of them would otherwise build ten thousand keys.
  let last: { m: MonitorMethod; family: Family; p: Placement; source: string | undefined; pr: Prober | Error } | null = null;
  const proberFor = (m: MonitorMethod, family: Family, p: Placement, source: string | undefined): Prober | Error => {
    if (last && last.m === m && last.family === family && last.p === p && last.source === source) return last.pr;
    const pr = proberByKey(m, family, p, source);
    last = { m, family, p, source, pr };
    return pr;
  };
  const proberByKey = (m: MonitorMethod, family: Family, p: Placement, source: string | undefined): Prober | Error => {
    const key = `${m}/${family}/${p.netns ?? ''}/${p.iface ?? ''}/${p.mark ?? ''}/${source ?? ''}`;
    let pr = probers.get(key);
    if (!pr) {
      try {
        const src = source ? parseIp(source) : undefined;
        if (src && src.length !== (family === 4 ? 4 : 16)) throw new PathlensError('ERR_USAGE', `source ${source} is not an IPv${family} address`);
        pr = m === 'icmp' ? new EchoProber(family, session, hooks, p, src) : m === 'udp' ? new UdpProber(family, session, hooks, p, src) : new TcpProber(family, hooks, p, src);
        if ('setAddressCheck' in pr) (pr as EchoProber).setAddressCheck(fromTarget);
        proberList.push(pr);
      } catch (e) {
        pr = e as Error;
      }
      probers.set(key, pr);
    }
    return pr;
  };

  /** An answer's source is the target's address, or its previous one while probes sent there can still be answered. */
  const fromTarget = (i: number, buf: Uint8Array, off: number): boolean => {
    const s = byIndex[i];
    if (!s) return false;
    return sameAddr(buf, off, s.address) || (s.oldAddr !== null && now() < s.oldUntil && sameAddr(buf, off, s.oldAddr));
  };
  const methodEvent = (s: TargetState, action: MethodEvent['action'], method: MonitorMethod | null, from: MonitorMethod | null, reason: string, socket: string | null = null) =>
    emit({ schema: MONITOR_SCHEMA, type: 'method', t_ms: tms(), target: s.t.name, address: s.addr, path: s.t.path, action, method, socket, from, reason });

  /** Moves s to the first method at or after `step` that the kernel allows; false if none. */
  function settle(s: TargetState, step: number, from: MonitorMethod | null, reason: string): boolean {
    for (let k = step; k < s.methods.length; k++) {
      const m = s.methods[k];
      const pr = proberFor(m, s.family, s.t.placement, s.t.source);
      if (pr instanceof Error) {
        (s.tried ??= new Map()).set(m, `refused: ${pr.message}`);
        methodEvent(s, 'refused', m, null, pr.message);
        continue;
      }
      s.step = k;
      s.prober = pr;
      s.group = groupOf(pr);
      methodEvent(s, from === null ? 'chosen' : 'switched', m, from, reason || (s.t.method === 'auto' ? 'the first method of the ladder the kernel allows' : 'as configured'), pr.socket);
      return true;
    }
    return false;
  }

  // Targets.
  const n = req.targets.length;
  const wheelSize = 1 << 16;
  const wheel = new Int32Array(wheelSize).fill(-1);
  const insert = (i: number) => {
    const s = byIndex[i];
    const slot = Math.floor(s.due / SLOT_MS) & (wheelSize - 1);
    s.next = wheel[slot];
    wheel[slot] = i;
  };
  // Outstanding rings: as many slots per target as twice the timeout holds of its probes at their
  // closest spacing (its interval, or a confirmation burst's), a power of two; small rings keep
  // what every probe touches in the processor's caches (ten thousand targets' 64 slots of four
  // arrays were 10 MB). Target i's ring is [i * ring, (i + 1) * ring): per slot the seq (-1
  // free), the send time (realtime ms), the window and whether it has an outcome.
  let need = 4;
  for (const t of req.targets) {
    const spacing = req.confirm ? Math.max(TICK_MS, t.intervalMs / 10) : t.intervalMs;
    while (need < RING_MAX && need * spacing < 2 * req.timeoutMs + TICK_MS) need *= 2;
  }
  const ring = need;
  const rSeq = new Int32Array(n * ring).fill(-1);
  const rTx = new Float64Array(n * ring);
  const rWin = new Int32Array(n * ring);
  const rDone = new Uint8Array(n * ring);
  // Two windows a target (the one filling and the one closing), room for its probes in a window.
  const caps = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) caps[2 * i] = caps[2 * i + 1] = Math.ceil(req.windowMs / req.targets[i].intervalMs) + 2;
  const rooms = new WindowRooms(caps);
  req.targets.forEach((given, i) => {
    const t = sameShape(given);
    const family: Family = t.address.length === 4 ? 4 : 6;
    const s: TargetState = {
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
      // Spread over the sequence space from one random start (the cookie's session tells runs apart).
      seq: (seq0 + i * 7919) & 0xffff,
      base: i * ring,
      windows: [rooms.window(2 * i), rooms.window(2 * i + 1)],
      jitter: new Jitter(),
      health: new HealthState(t.thresholds),
      tried: null,
      // Spread: target i starts at its share of the interval.
      due: (t.intervalMs * i) / n,
      next: -1,
      confirmLeft: 0,
      lastOk: false,
      oldAddr: null,
      oldUntil: 0,
    };
    byIndex.push(s);
  });
  // Names looked up again on a schedule, one at a time (a slow resolver delays only itself).
  const named = byIndex.filter((s) => isIP(s.t.name) === 0);
  const lookupFn = req.resolve ?? (async (name: string, family?: Family) => parseIp((await lookup(name, { family: family ?? 0 })).address));
  let resolving = false;
  let resolveTimer: NodeJS.Timeout | null = null;
  const reresolve = async () => {
    if (resolving || finished) return;
    resolving = true;
    for (const s of named) {
      if (finished) break;
      let next: Uint8Array;
      try {
        next = await lookupFn(s.t.name, s.family);
      } catch (e) {
        emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: tms(), code: 'ERR_RESOLVE', message: `${s.t.name}: looking it up again failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); probes keep going to ${s.addr}` });
        continue;
      }
      if (next.length !== s.t.address.length || next.every((b, k) => b === s.t.address[k])) continue;
      const from = s.addr;
      s.oldAddr = s.t.address;
      s.oldUntil = now() + req.timeoutMs;
      s.t.address = next;
      s.address = next;
      for (const pr of proberList) pr.forget?.(s.index);
      s.addr = formatIp(next, 0, s.family);
      emit({ schema: MONITOR_SCHEMA, type: 'address', t_ms: tms(), target: s.t.name, address: s.addr, path: s.t.path, from });
    }
    resolving = false;
  };
  if (named.length > 0 && (req.resolveEveryMs ?? 0) > 0) {
    resolveTimer = setInterval(() => void reresolve(), req.resolveEveryMs);
    resolveTimer.unref();
  }
  emit({ schema: MONITOR_SCHEMA, type: 'start', t_ms: 0, version: version(), time: new Date(wall0).toISOString(), targets: n, interval_ms: req.targets[0].intervalMs, window_ms: req.windowMs, timeout_ms: req.timeoutMs });
  for (const s of byIndex) {
    if (!settle(s, 0, null, '')) {
      s.step = -1;
      methodEvent(s, 'unreachable', null, null, `no method the kernel allows: ${[...(s.tried ?? [])].map(([m, w]) => `${m}: ${w}`).join('; ')}`);
    }
  }
  byIndex.forEach((s, i) => {
    if (s.step >= 0) insert(i);
  });

  // Timeout queue: (target, slot, deadline) in send order; the timeout is the same for all.
  let qT = new Int32Array(1024);
  let qS = new Int32Array(1024);
  let qD = new Float64Array(1024);
  let qHead = 0;
  let qLen = 0;
  const push = (i: number, slot: number, deadline: number) => {
    if (qLen === qT.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        for (let k = 0; k < qLen; k++) b[k] = a[(qHead + k) % a.length];
        return b;
      };
      const d = new Float64Array(qD.length * 2);
      for (let k = 0; k < qLen; k++) d[k] = qD[(qHead + k) % qD.length];
      qT = grow(qT);
      qS = grow(qS);
      qD = d;
      qHead = 0;
    }
    const at = (qHead + qLen) % qT.length;
    qT[at] = i;
    qS[at] = slot;
    qD[at] = deadline;
    qLen++;
  };

  const winOf = (ms: number) => Math.floor(ms / req.windowMs);

  function outcome(s: TargetState, slot: number, result: 'reply' | 'timeout' | 'unreachable', rtt: number | null, kernelTs: boolean): void {
    const w = s.windows[rWin[s.base + slot] & 1];
    // --confirm: the first loss after an answer makes the next probes come fast (a target that
    // stays down is not probed fast for ever).
    if (result === 'timeout' && req.confirm && s.lastOk && s.confirmLeft === 0) s.confirmLeft = req.confirm;
    s.lastOk = result === 'reply';
    pending--;
    if (result === 'reply') {
      w.add(rtt!);
      s.jitter.add(rtt!);
      counts.replies++;
      req.onRtt?.(s.t.name, s.methods[s.step], s.t.path, rtt!);
    } else if (result === 'unreachable') w.unreachable++;
    rDone[s.base + slot] = 1;
    if (req.samples) emit({ schema: MONITOR_SCHEMA, type: 'sample', t_ms: tms(), target: s.t.name, address: s.addr, path: s.t.path, method: s.methods[s.step], seq: rSeq[s.base + slot], result, rtt_ms: rtt === null ? null : Math.round(rtt * 1000) / 1000, kernel_ts: kernelTs });
  }

  function onAnswer(a: Answer): void {
    const s = byIndex[a.target];
    if (!s) return;
    const slot = a.seq % ring;
    if (rSeq[s.base + slot] !== a.seq) return; // long gone (timed out and reused) or never ours
    if (rDone[s.base + slot]) {
      if (a.kind === 'alive') {
        s.windows[rWin[s.base + slot] & 1].duplicates++;
        if (req.samples) emit({ schema: MONITOR_SCHEMA, type: 'sample', t_ms: tms(), target: s.t.name, address: s.addr, path: s.t.path, method: s.methods[s.step], seq: a.seq, result: 'duplicate', rtt_ms: null, kernel_ts: a.kernelTs });
      }
      return;
    }
    const rtt = a.sec * 1000 + a.nsec / 1e6 - rTx[s.base + slot];
    // Stamped by the kernel after the deadline: lost, whichever tick reads it (the timeout's tick
    // can come a few ms after the deadline, and the answer is read before it). Without the
    // kernel's stamp the time is the read's, which the tick delays: no verdict from it.
    if (a.kernelTs && rtt > req.timeoutMs) {
      outcome(s, slot, 'timeout', null, true);
      return;
    }
    outcome(s, slot, a.kind === 'alive' ? 'reply' : 'unreachable', a.kind === 'alive' ? Math.max(0, rtt) : null, a.kernelTs);
  }

  // Sending: the due probes of a tick, grouped by prober.
  const bT = new Int32Array(4096);
  const bQ = new Int32Array(4096);
  const bP = new Int32Array(4096);
  const bA: Uint8Array[] = new Array(4096);
  let lastSlot = -1;
  /** The tick's time, for onSent (one function for every batch: no closure per tick). */
  let sendNow = 0;
  const onSent = (j: number, sec: number, nsec: number) => {
    const s = byIndex[bT[j]];
    const slot = bQ[j] % ring;
    rTx[s.base + slot] = sec * 1000 + nsec / 1e6;
    s.windows[rWin[s.base + slot] & 1].sent++;
    counts.sent++;
    pending++;
    push(bT[j], slot, sendNow + req.timeoutMs);
  };
  // Probes per tick on average, and the most one tick may send.
  const perTick = req.targets.reduce((a, t) => a + TICK_MS / t.intervalMs, 0);
  const burstCap = Math.max(16, Math.ceil(perTick * BURST_TICKS));

  function tick(): void {
    if (finished) return;
    // Answers first: they were stamped by the kernel when they came.
    try {
      for (let k = 0; k < proberList.length; k++) proberList[k].poll?.();
    } catch (e) {
      fail(e as Error);
    }
    const tnow = now();
    // The slots that have ended: all they hold is due (but what comes round in a later turn of
    // the wheel), and none is visited twice.
    const upto = Math.floor(tnow / SLOT_MS) - 1;
    // At most a few ticks' worth per tick: after a stall (a collection, a window closing), the
    // probes that are late go out over the next ticks instead of in one burst.
    let budget = burstCap;
    let sl = lastSlot + 1;
    for (; sl <= upto && stopReason === null && budget > 0; sl++) {
      const w = sl & (wheelSize - 1);
      let i = wheel[w];
      wheel[w] = -1;
      while (i >= 0) {
        if (budget <= 0) {
          // The rest of this slot waits for the next tick (put back in front of what is there).
          let tail = i;
          while (byIndex[tail].next >= 0) tail = byIndex[tail].next;
          byIndex[tail].next = wheel[w];
          wheel[w] = i;
          break;
        }
        const s = byIndex[i];
        const nx = s.next;
        // Only what is due: sending a slot ahead of time put two slots' probes in one
        // millisecond whenever two ticks straddled a slot's start.
        if (s.due <= tnow && s.step >= 0) {
          s.group.idx.push(i);
          if (s.confirmLeft > 0) {
            s.confirmLeft--;
            // A tenth of the interval, but never so fast that the ring of outstanding probes wraps.
            s.due += Math.max(TICK_MS, s.intervalMs / 10, (2 * req.timeoutMs) / ring);
          } else s.due += s.intervalMs;
          budget--;
        }
        if (s.step >= 0) insert(i);
        i = nx;
      }
    }
    if (stopReason === null) lastSlot = budget > 0 ? upto : sl - 2;
    for (let gi = 0; gi < groups.length; gi++) {
      const g = groups[gi];
      const pr = g.prober;
      for (let off = 0; off < g.idx.length; off += bT.length) {
        const k = Math.min(bT.length, g.idx.length - off);
        for (let j = 0; j < k; j++) {
          const s = byIndex[g.idx[off + j]];
          const seq = s.seq++ & 0x7fffffff;
          const slot = seq % ring;
          bT[j] = g.idx[off + j];
          bQ[j] = seq;
          bA[j] = s.address;
          bP[j] = pr.method === 'tcp' ? s.tcpPort : s.udpPort;
          // The slot is taken now: an answer can only come after the send.
          if (rSeq[s.base + slot] >= 0 && !rDone[s.base + slot]) outcome(s, slot, 'timeout', null, false);
          rSeq[s.base + slot] = seq;
          rDone[s.base + slot] = 0;
          rWin[s.base + slot] = winOf(tnow);
        }
        sendNow = tnow;
        const sent = pr.send(k, bT, bQ, bA, bP, onSent);
        for (let j = sent; j < k; j++) {
          // Not sent (the socket is full): the probe is forgotten, the target tries at its next turn.
          rSeq[bT[j] * ring + (bQ[j] % ring)] = -1;
        }
      }
      g.idx.length = 0;
    }
    // Timeouts.
    while (qLen > 0 && qD[qHead] <= tnow) {
      const s = byIndex[qT[qHead]];
      const slot = qS[qHead];
      if (rSeq[s.base + slot] >= 0 && !rDone[s.base + slot]) outcome(s, slot, 'timeout', null, false);
      qHead = (qHead + 1) % qT.length;
      qLen--;
    }
    // Windows closing: window k closes at (k + 1) * window + timeout, CLOSE_BATCH targets a tick,
    // so that the sockets are read in between (ten thousand targets' statistics at once would hold
    // the loop long enough for the receive buffers to overflow).
    if (closeAt < 0 && (closing + 1) * req.windowMs + req.timeoutMs <= tnow) closeAt = 0;
    if (closeAt >= 0) {
      const end = Math.min(n, closeAt + CLOSE_BATCH);
      for (let i = closeAt; i < end; i++) closeTarget(closing, byIndex[i]);
      closeAt = end;
      if (end === n) {
        closeAt = -1;
        closing++;
      }
    }
    if (req.durationMs > 0 && tnow >= req.durationMs && stopReason === null) stopReason = 'duration';
    if (stopReason !== null && sendingStopped === null) sendingStopped = tnow;
    // Done when every probe has its outcome (or the last could not have one any more).
    if (sendingStopped !== null && (pending <= 0 || qLen === 0 || tnow >= sendingStopped + req.timeoutMs)) {
      finish();
      return;
    }
    // One timer, re-armed (no new Timeout object per tick).
    if (timer) timer.refresh();
    else timer = setTimeout(tick, TICK_MS);
  }
  let closing = 0;
  /** Next target to close in window `closing` (-1: no window is being closed). */
  let closeAt = -1;
  let sendingStopped: number | null = null;
  let timer: NodeJS.Timeout | null = null;

  function closeWindow(k: number): void {
    for (const s of byIndex) closeTarget(k, s);
  }

  function closeTarget(k: number, s: TargetState): void {
    const start = k * req.windowMs;
    {
      const w = s.windows[k & 1];
      // Nothing sent in it (no method, or the partial window the run ended in): nothing to say.
      if (w.sent === 0) return;
      const f = w.figures(s.jitter.value);
      const method = s.methods[Math.max(0, s.step)];
      const v = judge(f, s.t.thresholds);
      const change = s.health.update(v.health, v.reason);
      // Written out rather than spread: ten thousand of these a window.
      emit({
        schema: MONITOR_SCHEMA,
        type: 'stats',
        t_ms: tms(),
        target: s.t.name,
        address: s.addr,
        path: s.t.path,
        method,
        window_start_ms: start,
        window_ms: req.windowMs,
        sent: f.sent,
        received: f.received,
        loss: f.loss,
        duplicates: f.duplicates,
        unreachable: f.unreachable,
        min_ms: f.min_ms,
        mean_ms: f.mean_ms,
        median_ms: f.median_ms,
        p95_ms: f.p95_ms,
        max_ms: f.max_ms,
        stdev_ms: f.stdev_ms,
        jitter_ms: f.jitter_ms,
        histogram: f.histogram,
        state: s.health.state!,
        score: v.score,
      });
      if (change) {
        emit({ schema: MONITOR_SCHEMA, type: 'state', t_ms: tms(), target: s.t.name, address: s.addr, path: s.t.path, from: change.from, to: change.to, reason: change.reason, method });
        if (req.onChange) runHook(s, change.from, change.to, change.reason);
      }
      // The ladder: a method that got nothing in a whole window gives way.
      if (s.t.method === 'auto' && f.sent >= 3 && f.received === 0 && stopReason === null) {
        const why = f.unreachable > 0 ? `${f.unreachable} of ${f.sent} probes unreachable` : `no answer to ${f.sent} probes in the window`;
        (s.tried ??= new Map()).set(method, why);
        if (!settle(s, s.step + 1, method, why)) {
          methodEvent(s, 'unreachable', null, method, `no method got an answer: ${[...(s.tried ?? [])].map(([m, x]) => `${m}: ${x}`).join('; ')}`);
          s.tried = null;
          settle(s, 0, method, 'starting the ladder over');
        }
      }
      w.next();
    }
  }

  function runHook(s: TargetState, from: Health | null, to: Health, reason: string): void {
    try {
      const child = spawn('/bin/sh', ['-c', req.onChange!], {
        stdio: 'ignore',
        env: { ...process.env, PATHLENS_TARGET: s.t.name, PATHLENS_ADDRESS: s.addr, PATHLENS_PATH: s.t.path ?? '', PATHLENS_FROM: from ?? '', PATHLENS_TO: to, PATHLENS_REASON: reason, PATHLENS_METHOD: s.methods[Math.max(0, s.step)] },
      });
      child.on('error', (e) => emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: tms(), code: 'ERR_HOOK', message: `--on-change: ${e.message}` }));
    } catch (e) {
      emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: tms(), code: 'ERR_HOOK', message: `--on-change: ${(e as Error).message}` });
    }
  }

  let resolveDone!: (d: MonitorDoneEvent) => void;
  const done = new Promise<MonitorDoneEvent>((r) => (resolveDone = r));

  function fail(e: Error): void {
    if (finished) return;
    failure = e;
    emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: tms(), code: (e as { code?: string }).code ?? 'ERR_INTERNAL', message: e.message });
    stopReason = 'error';
  }

  function finish(): void {
    if (finished) return;
    if (resolveTimer) clearInterval(resolveTimer);
    // A window being closed, then the one the run ended in, as far as it went.
    if (closeAt >= 0) {
      for (let i = closeAt; i < n; i++) closeTarget(closing, byIndex[i]);
      closeAt = -1;
      closing++;
    }
    const end = now();
    while (closing <= winOf(sendingStopped ?? end)) closeWindow(closing++);
    finished = true;
    if (timer) clearTimeout(timer);
    for (const p of probers.values()) if (!(p instanceof Error)) p.close();
    const d: MonitorDoneEvent = { schema: MONITOR_SCHEMA, type: 'done', t_ms: tms(), reason: stopReason ?? 'interrupted', probes_sent: counts.sent, replies: counts.replies, duration_ms: tms() };
    emit(d);
    resolveDone(d);
  }

  // The first tick at once; it makes the timer that the others re-arm.
  setTimeout(tick, 0);
  return {
    done,
    stop: () => {
      if (stopReason === null) stopReason = 'interrupted';
    },
    states: () => byIndex.map((s) => ({ target: s.t.name, path: s.t.path, method: s.methods[Math.max(0, s.step)], state: s.health.state })),
    get error() {
      return failure;
    },
  } as MonitorHandle;
}
