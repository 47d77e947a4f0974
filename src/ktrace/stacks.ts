/**
 * Kernel stacks of the stages on tracing hooks (--stacks), named through /proc/kallsyms.
 */
import type { Kallsyms } from '../bpf/kallsyms.js';
import { native } from '../native/index.js';
import { STACK_DEPTH } from './layout.js';

/**
 * Names of the stacks in kt_stacks, each looked up and named once: an id names one stack for the
 * map's lifetime (bpf_get_stackid without BPF_F_REUSE_STACKID never overwrites one).
 */
const TRACING_FRAME = /^(0x|bpf_|__bpf_|trace_call_bpf|perf_trace_|perf_syscall|trace_event_raw_event_|__traceiter_)/;

export class StackNames {
  private readonly cache = new Map<number, string[] | null>();
  private readonly key = new Uint8Array(4);
  private readonly value = new Uint8Array(STACK_DEPTH * 8);
  private readonly view = new DataView(this.value.buffer);

  constructor(
    private readonly fd: number,
    private readonly syms: Kallsyms,
  ) {}

  /** `slot` as the programs store it: id + 1, or a negative errno (null: not taken). */
  frames(slot: number): string[] | null {
    if (slot <= 0) return null;
    const hit = this.cache.get(slot);
    if (hit !== undefined) return hit;
    new DataView(this.key.buffer).setUint32(0, slot - 1, true);
    this.value.fill(0);
    let names: string[] | null = null;
    if (native().bpfMapLookup(this.fd, this.key, this.value) === 0) {
      names = [];
      for (let i = 0; i < STACK_DEPTH; i++) {
        const ip = this.view.getBigUint64(8 * i, true);
        if (ip === 0n) break;
        names.push(this.syms.name(ip));
      }
      // The innermost frames are the program and the tracing machinery that ran it: from the
      // last of those on, the stack is the kernel's own.
      let k = 0;
      for (let i = 0; i < names.length; i++) if (TRACING_FRAME.test(names[i])) k = i + 1;
      names = names.slice(k);
    }
    this.cache.set(slot, names);
    return names;
  }
}
