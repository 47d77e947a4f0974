/**
 * The layouts of bpf/ktrace.h as TypeScript reads and writes them (host byte order).
 * test/unit/bpf-layout.test.ts compares each offset with the BTF in bpf/obj/ktrace.bpf.o.
 */
export const NSTAGES = 13;
export const HIST_SLOTS = 64;
/** Frames per kernel stack in map kt_stacks. */
export const STACK_DEPTH = 32;

/** struct kt_key */
export const KEY = { size: 40, local: 0, remote: 16, id: 32, seq: 34, family: 36 } as const;
/** struct kt_trip */
export const TRIP = { size: 216, t: 0, created: 104, pid: 112, ifindex_out: 116, ifindex_in: 120, drop_reason: 124, comm: 128, dropped: 144, stack: 152 } as const;
/** struct kt_record */
export const RECORD = { size: 264, key: 0, trip: 40, kind: 256 } as const;
/** struct kt_config (.rodata) */
export const CONFIG = { size: 56, min_total_ns: 0, netns: 8, family: 12, rx: 13, hist: 14, stacks: 15, local: 16, remote: 32, kfree_reason_off: 48 } as const;
/** struct kt_plan (map kt_plan) */
export const PLAN = { size: 19, final: 0, nstages: 1, order: 2 } as const;

export const REC_COMPLETE = 1;
/** kt_counters indexes. */
export const COUNTER = { LOST: 0, CREATED: 1, MAP_FULL: 2, NUM: 4 } as const;
