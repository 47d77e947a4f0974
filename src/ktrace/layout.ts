/**
 * The layouts of bpf/ktrace.h as TypeScript reads and writes them (host byte order).
 * test/unit/bpf-layout.test.ts compares each offset with the BTF in bpf/obj/ktrace.bpf.o.
 */
export const NSTAGES = 32;
/** Stage ids from here on are a profile's own stages, on generic programs. */
export const FIRST_GENERIC = 13;
/** Generic programs per hook kind (kt_g_fe_N, kt_g_btf_N, kt_g_raw_N, kt_g_tp_N, kt_g_nf_N). */
export const GEN_SLOTS = 12;
export const NO_STAGE = 0xff;
export const HIST_SLOTS = 64;
/** Frames per kernel stack in map kt_stacks. */
export const STACK_DEPTH = 32;

/** struct kt_key */
export const KEY = { size: 48, local: 0, remote: 16, id: 32, seq: 34, family: 36, proto: 37, out: 38, skb: 40 } as const;
/** struct kt_trip */
export const TRIP = { size: 432, t: 0, created: 256, pid: 264, ifindex_out: 268, ifindex_in: 272, drop_reason: 276, comm: 280, dropped: 296, tcp_flags: 297, len: 298, tcp_seq: 300, stack: 304 } as const;
/** struct kt_record */
export const RECORD = { size: 488, key: 0, trip: 48, kind: 480 } as const;
/** struct kt_config (.rodata) */
export const CONFIG = {
  size: 152,
  min_total_ns: 0,
  netns: 8,
  family: 12,
  rx: 13,
  hist: 14,
  stacks: 15,
  local: 16,
  remote: 32,
  kfree_reason_off: 48,
  proto: 52,
  port: 54,
  gen_out: 56,
  gen_in: 68,
  gen_how: 80,
  gen_off: 128,
} as const;
/** gen_how's rows (enum kt_gen_kind) and bits. */
export const GEN_KIND = { fentry: 0, tp_btf: 1, raw_tp: 2, tracepoint: 3 } as const;
export const HOW_DATA = 0x10;
/** struct kt_plan (map kt_plan) */
export const PLAN = { size: 40, final_out: 0, final_in: 1, first_out: 2, first_in: 3, nstages: 4, order: 5 } as const;

export const REC_COMPLETE = 1;
export const REC_PARTIAL = 2;
/** kt_counters indexes. */
export const COUNTER = { LOST: 0, CREATED: 1, MAP_FULL: 2, NUM: 4 } as const;
