/**
 * One in-flight cap over several traces (`pathlens trace A B C`, `--targets FILE`, the monitor's
 * paths): the traces run at once, and their probes out at any moment never exceed the cap together. An engine takes
 * room before it sends and gives it back as its probes land (reply or timeout); an engine that
 * finds no room waits, and every engine waiting is woken when room comes back (each then takes
 * what is free, in the order they began to wait).
 */
export class InflightPool {
  private used = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly cap: number) {
    if (!(Number.isInteger(cap) && cap >= 1)) throw new RangeError('the in-flight cap must be a positive integer');
  }

  /** Probes that may still go out now. */
  get free(): number {
    return this.cap - this.used;
  }

  /** Probes out now, across the traces. */
  get inFlight(): number {
    return this.used;
  }

  /** Takes `n` (at most what is free: the caller asked `free` first). */
  take(n: number): void {
    if (n > this.cap - this.used) throw new RangeError(`took ${n} with ${this.cap - this.used} free`);
    this.used += n;
  }

  /** Gives `n` back, and wakes every trace waiting for room. */
  give(n: number): void {
    if (n <= 0) return;
    if (n > this.used) throw new RangeError(`gave back ${n} with ${this.used} out`);
    this.used -= n;
    if (this.waiting.size === 0) return;
    const woken = [...this.waiting];
    this.waiting.clear();
    for (const wake of woken) wake();
  }

  /** Calls `wake` once, the next time room is given back. */
  wait(wake: () => void): void {
    this.waiting.add(wake);
  }

  /** Forgets a waiter (its trace ended). */
  leave(wake: () => void): void {
    this.waiting.delete(wake);
  }
}
