/**
 * The monitor's timing wheel: which targets are due now. Targets are kept in slots of `slotMs` by
 * their next due time (a singly linked list per slot, through `next`); a tick takes the slots that
 * have ended since the last tick, so no probe leaves before it is due and none is visited twice,
 * and it takes at most `budget` probes: after a stall, what is late goes out over the next ticks
 * instead of in one burst, the rest of a slot put back in front of it.
 *
 * State is in columns indexed by target: `due` (ms since the run's start) and `next`; the wheel
 * holds 65,536 slots (65 s of 1 ms slots), and a target due in a later turn of the wheel is only
 * put back.
 */
const SIZE = 1 << 16;

export class TimingWheel {
  /** Per target: when it is next due, ms since the start. */
  readonly due: Float64Array;
  private readonly next: Int32Array;
  private readonly slots = new Int32Array(SIZE).fill(-1);
  /** The last slot taken whole. */
  private lastSlot = -1;

  constructor(
    targets: number,
    private readonly slotMs = 1,
  ) {
    this.due = new Float64Array(targets);
    this.next = new Int32Array(targets).fill(-1);
  }

  /** Puts target i in the slot of its due time. */
  insert(i: number): void {
    const slot = Math.floor(this.due[i] / this.slotMs) & (SIZE - 1);
    this.next[i] = this.slots[slot];
    this.slots[slot] = i;
  }

  /**
   * Takes what is due by `now` in the slots that have ended, at most `budget` of them: `take(i)`
   * is called for each (it must move due[i] on: the wheel puts i back by it), and targets for
   * which `active(i)` is false leave the wheel. Returns how many were taken.
   */
  collect(now: number, budget: number, active: (i: number) => boolean, take: (i: number) => void): number {
    const upto = Math.floor(now / this.slotMs) - 1;
    const next = this.next;
    let left = budget;
    let taken = 0;
    let sl = this.lastSlot + 1;
    for (; sl <= upto && left > 0; sl++) {
      const w = sl & (SIZE - 1);
      let i = this.slots[w];
      this.slots[w] = -1;
      while (i >= 0) {
        if (left <= 0) {
          // The rest of this slot waits for the next tick (put back in front of what is there).
          let tail = i;
          while (next[tail] >= 0) tail = next[tail];
          next[tail] = this.slots[w];
          this.slots[w] = i;
          break;
        }
        const nx = next[i];
        const on = active(i);
        // Only what is due: a target in a later turn of the wheel shares the slot.
        if (on && this.due[i] <= now) {
          take(i);
          left--;
          taken++;
        }
        if (on) this.insert(i);
        i = nx;
      }
    }
    // A slot cut short by the budget is visited again by the next tick.
    this.lastSlot = left > 0 ? upto : sl - 2;
    return taken;
  }

  /**
   * When the next tick has something to send: the end of the first slot after the last one taken
   * that holds a target (it may be one due a turn of the wheel later: then early, never late),
   * looking at most `horizonMs` ahead (Infinity: nothing in that span).
   */
  nextAt(horizonMs: number): number {
    const last = this.lastSlot + Math.ceil(horizonMs / this.slotMs);
    for (let sl = this.lastSlot + 1; sl <= last; sl++) if (this.slots[sl & (SIZE - 1)] >= 0) return (sl + 1) * this.slotMs;
    return Infinity;
  }
}
