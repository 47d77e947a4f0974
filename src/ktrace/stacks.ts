/**
 * Kernel stacks of the stages on tracing hooks (--stacks), named through /proc/kallsyms.
 */
import type { Kallsyms } from '../bpf/kallsyms.js';
import { MapWalker } from '../bpf/maps.js';
import { STACK_DEPTH } from './layout.js';

/** Frames of the program and the tracing machinery that ran it (innermost, left out). */
const TRACING_FRAME = /^(0x|bpf_|__bpf_|trace_call_bpf|perf_trace_|perf_syscall|trace_event_raw_event_|__traceiter_)/;

/**
 * Names of the stacks in kt_stacks (frames -> id: the programs give each new stack the next id),
 * each named once. An id never changes its stack for the map's lifetime, so a walk of the map
 * when an id is new to us finds it and every other new one.
 */
export class StackNames {
  private readonly cache = new Map<number, string[] | null>();
  private readonly walker: MapWalker;

  constructor(
    fd: number,
    private readonly syms: Kallsyms,
  ) {
    this.walker = new MapWalker(fd, STACK_DEPTH * 8, 4, 64);
  }

  /** `slot` as the programs store it: id + 1, or a negative errno (null: not taken). */
  frames(slot: number): string[] | null {
    if (slot <= 0) return null;
    if (!this.cache.has(slot)) this.refresh();
    const hit = this.cache.get(slot);
    if (hit !== undefined) return hit;
    this.cache.set(slot, null); // not in the map: nothing to name (it cannot appear later)
    return null;
  }

  private refresh(): void {
    const w = this.walker;
    w.walk((i) => {
      const slot = w.vv.getUint32(4 * i, true) + 1;
      if (this.cache.has(slot)) return;
      let names: string[] = [];
      for (let f = 0; f < STACK_DEPTH; f++) {
        const ip = w.kv.getBigUint64(i * STACK_DEPTH * 8 + 8 * f, true);
        if (ip === 0n) break;
        names.push(this.syms.name(ip));
      }
      // From the last frame of the tracing machinery on, the stack is the kernel's own.
      let k = 0;
      for (let f = 0; f < names.length; f++) if (TRACING_FRAME.test(names[f])) k = f + 1;
      names = names.slice(k);
      this.cache.set(slot, names);
    });
  }
}
