/**
 * Time and timers for the runtime, injectable: every capability takes a Scheduler (the real one by
 * default), so that its timing logic (deadlines, adaptive waits, intervals) can run on a virtual
 * clock in tests, deterministically and without waiting.
 */

/** A timer, as its scheduler made it (opaque: a Node Timeout or Immediate, or a virtual timer's number). */
export type TimerId = number | object;

export interface Scheduler {
  /** Monotonic milliseconds (fractional). */
  now(): number;
  /** Runs fn once, delayMs from now. */
  setTimer(fn: () => void, delayMs: number): TimerId;
  clearTimer(id: TimerId): void;
  /** Runs fn after the current turn of the event loop (after pending I/O callbacks). */
  defer(fn: () => void): TimerId;
  /**
   * Runs fn delayMs from now, through timer `id` when it is given and has fired (a loop that
   * re-arms one timer each turn makes no new timer object per turn); returns the timer. The
   * delay of a timer re-armed this way is the one it was made with.
   */
  again(id: TimerId | null, fn: () => void, delayMs: number): TimerId;
}

/** The process's clock: performance.now(), setTimeout, setImmediate. */
export const realScheduler: Scheduler = {
  now: () => performance.now(),
  setTimer: (fn, delayMs) => setTimeout(fn, delayMs) as object,
  clearTimer: (id) => {
    if (typeof id === 'object' && id !== null && '_onImmediate' in id) clearImmediate(id as NodeJS.Immediate);
    else clearTimeout(id as NodeJS.Timeout);
  },
  defer: (fn) => setImmediate(fn) as object,
  again: (id, fn, delayMs) => {
    if (id === null) return setTimeout(fn, delayMs) as object;
    (id as NodeJS.Timeout).refresh();
    return id;
  },
};

interface VirtualTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to: timers fire in time order (then in the order they were
 * set), and time jumps to each one. Between timers, pending promise callbacks run, so code that
 * awaits or queues microtasks behaves as it would on the real loop.
 */
export class VirtualScheduler implements Scheduler {
  private t = 0;
  private nextId = 1;
  private timers: VirtualTimer[] = [];

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, delayMs: number): number {
    const id = this.nextId++;
    this.timers.push({ id, at: this.t + Math.max(0, delayMs), fn });
    return id;
  }

  clearTimer(id: TimerId): void {
    this.timers = this.timers.filter((x) => x.id !== id);
  }

  defer(fn: () => void): number {
    return this.setTimer(fn, 0);
  }

  again(_id: TimerId | null, fn: () => void, delayMs: number): number {
    return this.setTimer(fn, delayMs);
  }

  /** Timers still to fire. */
  get pending(): number {
    return this.timers.length;
  }

  /**
   * Fires timers in order, advancing time, until none is left or the next is later than
   * `untilMs`; returns the time reached.
   */
  async run(untilMs = Infinity): Promise<number> {
    for (;;) {
      await settle();
      if (this.timers.length === 0) break;
      let next = this.timers[0];
      for (const x of this.timers) if (x.at < next.at || (x.at === next.at && x.id < next.id)) next = x;
      if (next.at > untilMs) {
        this.t = untilMs;
        break;
      }
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    await settle();
    return this.t;
  }
}

/** Lets every pending promise callback and microtask run. */
function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
