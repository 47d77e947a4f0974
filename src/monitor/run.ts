/**
 * The monitor: many targets, probed on a timing wheel that spreads their send times evenly over
 * the interval, through shared sockets (one per method, family and way out), with per-window
 * statistics, health states, the method ladder, and events. This file is the run's lifecycle and
 * its tick; the parts are named files: `wheel.ts` (who is due), `ledger.ts` (probes in flight and
 * their timeouts), `ladder.ts` (probers and the method ladder), `closer.ts` (windows closed into
 * events), `resolve.ts` (names looked up again), `hooks.ts` (--on-change). Time goes through an
 * injectable Scheduler, so all of it runs on a virtual clock in tests.
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
 * over. The ladder moves when a window is closed, `timeout` after its end: the next window's
 * first probes still go by the method that gave way, and its statistics name the one it ends with.
 */
import { crypto } from '../core/builtins.js';
import type { RunHandle } from '../core/run.js';
import { realScheduler, type TimerId } from '../core/scheduler.js';
import type { Sink } from '../core/sink.js';
import { version } from '../core/version.js';
import type { ProbeMethod } from '../probe/transport.js';
import { WindowCloser } from './closer.js';
import { MONITOR_SCHEMA, type MonitorDoneEvent, type MonitorEvent } from './events.js';
import type { Health } from './health.js';
import { runChangeHook } from './hooks.js';
import { type MethodNote, ProberPool, chooseMethod, triedSummary } from './ladder.js';
import { OutstandingRings, TimeoutQueue } from './ledger.js';
import { openMonitorProber } from './methods.js';
import type { Answer } from './prober.js';
import { MONITOR_DEFAULTS, type MonitorRequest, validateMonitor } from './request.js';
import { Reresolver, systemLookup } from './resolve.js';
import { TargetTable } from './table.js';
import { makeTargets, slotOf } from './targets.js';
import { ScheduleLedger } from './schedule.js';
import { TimingWheel } from './wheel.js';
import { PATH_DEFAULTS, PathWatch, type WatchedPath } from './paths.js';

/**
 * The timer's period. Each wake-up costs CPU (about 25 µs here: a virtual machine's timer and
 * halt exits, the event loop's two polls), and a tick sends what came due since the last, so the
 * period is the trade between CPU and how bunched the sends are. With Node's timers firing about
 * a millisecond late, 4 ms gives bursts of about 5 ms' worth (50 probes at 10,000 a second) and
 * cost 8 % less CPU than 2 ms (bursts of 3 ms' worth) for 10,000 targets.
 */
export const TICK_MS = 4;
/** The wheel's slot: a tick sends the slots that have ended since the last, every probe in them due. */
const SLOT_MS = 1;
/**
 * A tick sends what came due since the last one, at most this many times the probes the asked
 * rate gives the time since the last tick (the period is TICK_MS plus the tick's own work plus
 * the timer's lateness, not TICK_MS: a cap of a fixed period's worth fell behind at 100,000 targets,
 * sending 6 or 7 probes of 10 a window). Past that, what is late goes out over the next ticks.
 */
const CATCH_UP = 1.25;
/** ... and never more than this long's worth at once (after a stall: a collection, a suspended process). */
const MAX_BURST_MS = 50;
/** The longest the loop sleeps with nothing to do (a stop asked by a signal waits at most this long). */
const IDLE_MS = 250;
/** Probes handed to a prober in one send call, at most. */
const SEND_BATCH = 4096;

export interface MonitorHandle extends RunHandle<MonitorDoneEvent> {
  /** The error that ended the run, when done.reason is 'error'. */
  readonly error: Error | null;
  /** Latest state per target index (views, metrics). */
  states(): { target: string; path: string | null; method: ProbeMethod; state: Health | null }[];
}

export async function startMonitor(req: MonitorRequest, sink: Sink<MonitorEvent>): Promise<MonitorHandle> {
  validateMonitor(req);
  const clock = req.scheduler ?? realScheduler;
  const session = crypto().randomInt(0, 0xffffffff);
  const t0 = clock.now();
  const wall0 = Date.now();
  const now = () => clock.now() - t0;
  const tms = () => Math.round(now() * 1000) / 1000;
  const emit = (e: MonitorEvent) => sink.event(e);
  const counts = { sent: 0, replies: 0 };
  /** Probes sent that have no outcome yet. */
  let pending = 0;
  let failure: Error | null = null;
  let finished = false;
  let stopReason: MonitorDoneEvent['reason'] | null = null;

  const table = req.targets instanceof TargetTable ? req.targets : TargetTable.from(req.targets);
  const { targets: T, rooms } = makeTargets(table, req.windowMs, crypto().randomInt(0, 0x10000));
  const n = T.n;
  const profiles = T.profiles;
  /** An answer's source is the target's address, or its previous one while probes sent there can still be answered. */
  const fromTarget = (i: number, buf: Uint8Array, off: number): boolean => {
    if (!(i >= 0 && i < n)) return false;
    if (T.isAddr(i, buf, off)) return true;
    const old = T.old.size > 0 ? T.old.get(i) : undefined;
    if (old === undefined) return false;
    if (now() >= old.until) {
      T.old.delete(i);
      return false;
    }
    return sameBytes(buf, off, old.addr);
  };
  const pool = new ProberPool(
    req.openProber ?? openMonitorProber,
    session,
    { onAnswer: (a) => onAnswer(a), onFatal: (e) => fail(e), fromTarget, onSendDelay: (ms) => ledger.sendKernel(winOf(now()), ms) },
    { rcvbuf: req.rcvbuf ?? MONITOR_DEFAULTS.rcvbuf, ...(req.xdp ? { xdp: req.xdp } : {}) },
  );
  const note =
    (i: number): MethodNote =>
    (action, method, from, reason, socket = null) =>
      emit({ schema: MONITOR_SCHEMA, type: 'method', t_ms: tms(), target: T.name(i), address: T.addr(i), path: T.settings(i).path, action, method, socket, from, reason });

  const wheel = new TimingWheel(n, SLOT_MS);
  const rings = new OutstandingRings(
    n,
    profiles.map((p) => (req.confirm ? Math.max(TICK_MS, p.intervalMs / 10) : p.intervalMs)),
    req.timeoutMs,
    TICK_MS,
  );
  const ring = rings.ring;
  const timeouts = new TimeoutQueue(ring);
  let longest = 0;
  let shortest = Infinity;
  for (const p of profiles) {
    longest = Math.max(longest, p.intervalMs);
    shortest = Math.min(shortest, p.intervalMs);
  }
  const ledger = new ScheduleLedger(req.windowMs, longest, shortest);
  /** Per target: how late its probe of this tick is, from its due time (ms). */
  const lagOf = new Float32Array(n);
  const closer = new WindowCloser(T, rooms, {
    windowMs: req.windowMs,
    timeoutMs: req.timeoutMs,
    pool,
    emit,
    tms,
    stopping: () => stopReason !== null,
    note,
    onChange: req.onChange
      ? (i, from, to, reason) =>
          runChangeHook(req.onChange!, { target: T.name(i), address: T.addr(i), path: T.settings(i).path, from, to, reason, method: T.method(i) }, (message) =>
            emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: tms(), code: 'ERR_HOOK', message }),
          )
      : null,
    onWindow: (k) => {
      // The run's last window, as far as it went.
      const end = sendingStopped === null ? (k + 1) * req.windowMs : Math.min((k + 1) * req.windowMs, sendingStopped);
      ledger.stamps = pool.list.some((pr) => pr.sendStamps === true);
      emit(ledger.report(k, pool.rxDropped(), tms(), Math.max(0, end - k * req.windowMs)));
    },
  });
  const resolver = new Reresolver(T, {
    everyMs: req.resolveEveryMs ?? 0,
    timeoutMs: req.timeoutMs,
    lookup: req.resolve ?? systemLookup,
    clock,
    now,
    tms,
    emit,
    changed: (i) => pool.forget(i),
  });
  resolver.start();

  emit({ schema: MONITOR_SCHEMA, type: 'start', t_ms: 0, version: version(), time: new Date(wall0).toISOString(), targets: n, interval_ms: T.intervalMs(0), window_ms: req.windowMs, timeout_ms: req.timeoutMs });
  const paths = pathWatch();
  paths?.start();
  for (let i = 0; i < n; i++) {
    if (!chooseMethod(pool, T, i, 0, null, '', note(i))) {
      T.step[i] = -1;
      note(i)('unreachable', null, null, `no method the kernel allows: ${triedSummary(T, i)}`);
    }
  }
  const winOf = (ms: number) => Math.floor(ms / req.windowMs);
  // Spread: target i starts at its share of the interval, from now: the schedule starts when the
  // prober is ready (setting up a hundred thousand targets takes a few hundred milliseconds, and
  // a schedule that started before it began late, its first window behind).
  const start = now();
  for (let i = 0; i < n; i++) {
    wheel.due[i] = start + (T.intervalMs(i) * i) / n;
    if (T.step[i] < 0) continue;
    wheel.insert(i);
    ledger.ask(winOf(wheel.due[i]));
  }

  /**
   * A reply's RTT reaches outcome() through this slot, not as an argument: a fraction passed to a
   * function V8 does not inline is boxed (a heap number an answer: a megabyte a second at 100,000
   * answers a second, and the young generation grows to hold it).
   */
  const rttSlot = new Float64Array(1);

  function outcome(i: number, k: number, result: 'reply' | 'timeout' | 'unreachable', kernelTs: boolean): void {
    const w = slotOf(i, rings.win[k]);
    // --confirm: the first loss after an answer makes the next probes come fast (a target that
    // stays down is not probed fast for ever).
    if (result === 'timeout' && req.confirm && T.lastOk[i] && T.confirmLeft[i] === 0) T.confirmLeft[i] = req.confirm;
    T.lastOk[i] = result === 'reply' ? 1 : 0;
    pending--;
    if (result === 'reply') {
      rooms.addFrom(w, rttSlot);
      T.jitter.addFrom(i, rttSlot);
      counts.replies++;
      req.onRtt?.(T.name(i), T.method(i), T.settings(i).path, rttSlot[0]);
    } else if (result === 'unreachable') rooms.unreachable[w]++;
    rings.done[k] = 1;
    if (req.samples) emit({ schema: MONITOR_SCHEMA, type: 'sample', t_ms: tms(), target: T.name(i), address: T.addr(i), path: T.settings(i).path, method: T.method(i), seq: rings.seq[k], result, rtt_ms: result === 'reply' ? Math.round(rttSlot[0] * 1000) / 1000 : null, kernel_ts: kernelTs });
  }

  function onAnswer(a: Answer): void {
    const i = a.target;
    if (!(i >= 0 && i < n)) return;
    const k = rings.at(a.target, a.seq);
    if (rings.seq[k] !== a.seq) return; // long gone (timed out and reused) or never ours
    if (rings.done[k]) {
      if (a.kind === 'alive') {
        rooms.duplicates[slotOf(i, rings.win[k])]++;
        if (req.samples) emit({ schema: MONITOR_SCHEMA, type: 'sample', t_ms: tms(), target: T.name(i), address: T.addr(i), path: T.settings(i).path, method: T.method(i), seq: a.seq, result: 'duplicate', rtt_ms: null, kernel_ts: a.kernelTs });
      }
      return;
    }
    const rtt = rings.rttMs(k, a.sec, a.nsec);
    // Stamped by the kernel after the deadline: lost, whichever tick reads it (the timeout's tick
    // can come a few ms after the deadline, and the answer is read before it). Without the
    // kernel's stamp the time is the read's, which the tick delays: no verdict from it.
    if (a.kernelTs && rtt > req.timeoutMs) {
      outcome(i, k, 'timeout', true);
      return;
    }
    rttSlot[0] = rtt;
    outcome(i, k, a.kind === 'alive' ? 'reply' : 'unreachable', a.kernelTs);
  }

  // Sending: the due probes of a tick, grouped by prober, in batches of columns.
  const bT = new Int32Array(SEND_BATCH);
  const bQ = new Int32Array(SEND_BATCH);
  const bP = new Int32Array(SEND_BATCH);
  /** The tick's time, for onSent (one function for every batch: no closure per tick). */
  let sendNow = 0;
  const onSent = (j: number, sec: number, nsec: number) => {
    const k = rings.at(bT[j], bQ[j]);
    rings.sentAt(k, sec, nsec);
    rooms.sent[slotOf(bT[j], rings.win[k])]++;
    ledger.sentAt(rings.win[k], lagOf[bT[j]]);
    counts.sent++;
    pending++;
    timeouts.push(k, sendNow + req.timeoutMs);
  };
  // The asked rate (probes per ms), for the most one tick may send.
  let perMs = 0;
  for (let i = 0; i < n; i++) perMs += 1 / T.intervalMs(i);
  let lastTick = -1;
  const active = (i: number) => T.step[i] >= 0;
  let tnow = 0;
  /** Probe due at `d` counts in its window's `due` (when the target's window for it is still open). */
  const countDue = (i: number, d: number) => {
    const dw = winOf(d);
    const w = slotOf(i, dw);
    if (rooms.win[w] < dw) closer.claim(i, dw);
    if (rooms.win[w] === dw) rooms.due[w]++;
  };
  const groups = pool.groups;
  const take = (i: number) => {
    const iv = T.intervalMs(i);
    const due = wheel.due;
    // More than an interval late (the loop fell that far behind): the probes missed are skipped,
    // and said to be; the target gets one probe now, never a burst of them.
    while (tnow - due[i] > iv) {
      ledger.skip(winOf(due[i]));
      countDue(i, due[i]);
      due[i] += iv;
      ledger.ask(winOf(due[i]));
    }
    countDue(i, due[i]);
    lagOf[i] = tnow - due[i];
    groups[T.group[i]].push(i);
    if (T.confirmLeft[i] > 0) {
      T.confirmLeft[i]--;
      // A tenth of the interval, but never so fast that the ring of outstanding probes wraps.
      due[i] += Math.max(TICK_MS, iv / 10, (2 * req.timeoutMs) / ring);
    } else due[i] += iv;
    ledger.ask(winOf(due[i]));
  };
  const expire = (i: number, k: number) => {
    if (rings.waiting(k)) outcome(i, k, 'timeout', false);
  };

  function send(): void {
    for (let gi = 0; gi < groups.length; gi++) {
      const g = groups[gi];
      const pr = g.prober;
      const idx = g.idx;
      for (let off = 0; off < g.n; off += SEND_BATCH) {
        const m = Math.min(SEND_BATCH, g.n - off);
        for (let j = 0; j < m; j++) {
          const i = idx[off + j];
          const seq = T.seq[i]++ & 0x7fffffff;
          const k = rings.at(i, seq);
          const p = profiles[T.profileOf[i]];
          bT[j] = i;
          bQ[j] = seq;
          bP[j] = pr.method === 'tcp' ? p.tcpPort : p.udpPort;
          // The slot is taken now: an answer can only come after the send.
          if (rings.waiting(k)) outcome(i, k, 'timeout', false);
          const win = winOf(tnow);
          if (rooms.win[slotOf(i, win)] < win) closer.claim(i, win);
          rings.take(k, seq, win);
        }
        sendNow = tnow;
        const sent = pr.send(m, bT, bQ, T.addrs, bP, onSent);
        // Not sent (the socket is full): the probe is forgotten, the target tries at its next turn.
        for (let j = sent; j < m; j++) rings.free(rings.at(bT[j], bQ[j]));
        if (sent < m) ledger.refuse(winOf(tnow), m - sent);
      }
      g.n = 0;
    }
  }

  let sendingStopped: number | null = null;
  let timer: TimerId | null = null;

  /** When the timer should fire next (-1: the first tick). */
  let plannedAt = -1;

  function tick(): void {
    if (finished) return;
    const entered = now();
    if (plannedAt >= 0) ledger.tick(winOf(entered), Math.max(0, entered - plannedAt));
    // Answers first: they were stamped by the kernel when they came.
    try {
      // Every queue when a deadline has come (a sleeping loop polls seldom: an ICMP error that
      // answered a probe must be read before that probe is declared lost).
      pool.poll(timeouts.firstWaiting(waitingSlot) <= now() + 0.5);
    } catch (e) {
      fail(e as Error);
    }
    tnow = now();
    // What the asked rate gives the time since the last tick, and a quarter more to catch up:
    // after a stall (a collection, a window closing), the probes that are late go out over the
    // next ticks instead of in one burst.
    const since = lastTick < 0 ? TICK_MS : Math.min(MAX_BURST_MS, tnow - lastTick);
    lastTick = tnow;
    if (stopReason === null) wheel.collect(tnow, Math.max(16, Math.ceil(perMs * since * CATCH_UP)), active, take);
    send();
    timeouts.expire(tnow, expire);
    closer.step(tnow);
    if (req.durationMs > 0 && tnow >= req.durationMs && stopReason === null) stopReason = 'duration';
    if (stopReason !== null && sendingStopped === null) {
      sendingStopped = tnow;
      // The probes scheduled past the end will not be due within the run.
      for (let i = 0; i < n; i++) if (T.step[i] >= 0 && wheel.due[i] >= tnow) ledger.unask(winOf(wheel.due[i]));
    }
    // Done when every probe has its outcome (or the last could not have one any more).
    if (sendingStopped !== null && (pending <= 0 || timeouts.length === 0 || tnow >= sendingStopped + req.timeoutMs)) {
      finish();
      return;
    }
    // Asleep until there is something to do: the next slot with a target in it, the first
    // timeout, the next window to close, the end of the run (a light monitor, 100 targets a
    // second, wakes for its probes, not 250 times a second). Busy, one timer re-armed every
    // TICK_MS (no new Timeout object per tick).
    const t = now();
    let wake = Math.min(timeouts.firstWaiting(waitingSlot), closer.nextAt, req.durationMs > 0 ? req.durationMs : Infinity);
    if (stopReason === null && wake - t > TICK_MS) wake = Math.min(wake, wheel.nextAt(Math.min(wake - t, IDLE_MS)));
    const delay = sendingStopped !== null ? TICK_MS : Math.max(TICK_MS, Math.min(IDLE_MS, Math.ceil(wake - t)));
    plannedAt = t + delay;
    if (delay === TICK_MS && timerDelay === TICK_MS) timer = clock.again(timer, tick, TICK_MS);
    else {
      if (timer !== null) clock.clearTimer(timer);
      timer = clock.setTimer(tick, delay);
      timerDelay = delay;
    }
  }
  const waitingSlot = (k: number) => rings.waiting(k);
  /** The delay the current timer object was made with (Node's refresh() re-arms with it). */
  let timerDelay = -1;

  let resolveDone!: (d: MonitorDoneEvent) => void;
  const done = new Promise<MonitorDoneEvent>((r) => (resolveDone = r));

  function fail(e: Error): void {
    if (finished) return;
    failure = e;
    emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: tms(), code: (e as { code?: string }).code ?? 'ERR_INTERNAL', message: e.message });
    stopReason = 'error';
  }

  /** The targets with `hops`, traced beside their endpoint probes (paths.ts). */
  function pathWatch(): PathWatch | null {
    const watched: WatchedPath[] = [];
    for (let i = 0; i < n; i++) {
      const s = T.settings(i);
      const h = s.hops;
      if (!h) continue;
      const method = h.method ?? (s.method === 'auto' ? 'icmp' : s.method);
      watched.push({ target: T.name(i), address: T.addr(i), family: T.familyOf(i), path: s.path, method, port: method === 'udp' ? h.port : method === 'tcp' ? s.tcpPort : 0, placement: s.placement, ...(s.source ? { source: s.source } : {}), intervalMs: h.intervalMs || s.intervalMs, hops: h });
    }
    if (watched.length === 0) return null;
    return new PathWatch(watched, req.openPath!, {
      windowMs: req.windowMs,
      timeoutMs: req.timeoutMs,
      damping: req.pathDamping ?? PATH_DEFAULTS.damping,
      inflight: req.pathInflight ?? PATH_DEFAULTS.inflight,
      clock, t0, wall0, emit,
      // A path that cannot be traced is said, and the rest of the run goes on.
      onError: (target, e) => emit({ schema: MONITOR_SCHEMA, type: 'error', t_ms: tms(), code: (e as { code?: string }).code ?? 'ERR_PATH', message: `${target}: path: ${e.message}` }),
    });
  }

  function finish(): void {
    if (finished) return;
    void paths?.stop();
    resolver.stop();
    // A window being closed, then the one the run ended in, as far as it went.
    closer.flush(winOf(sendingStopped ?? now()));
    finished = true;
    if (timer !== null) clock.clearTimer(timer);
    pool.close();
    const d: MonitorDoneEvent = { schema: MONITOR_SCHEMA, type: 'done', t_ms: tms(), reason: stopReason ?? 'interrupted', probes_sent: counts.sent, replies: counts.replies, duration_ms: tms() };
    emit(d);
    resolveDone(d);
  }

  // The first tick at once; it makes the timer that the others re-arm.
  clock.setTimer(tick, 0);
  return {
    done,
    stop: () => {
      if (stopReason === null) stopReason = 'interrupted';
    },
    states: () => T.given.map((_, i) => ({ target: T.name(i), path: T.settings(i).path, method: T.method(i), state: T.health.state(i) })),
    get error() {
      return failure;
    },
  } as MonitorHandle;
}

/** Whether the bytes at buf[off..] are `addr`'s. */
function sameBytes(buf: Uint8Array, off: number, addr: Uint8Array): boolean {
  if (off + addr.length > buf.length) return false;
  for (let k = 0; k < addr.length; k++) if (buf[off + k] !== addr[k]) return false;
  return true;
}
