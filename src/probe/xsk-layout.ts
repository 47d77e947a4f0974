/**
 * The layouts of bpf/xsk.h as TypeScript sees them (offsets in host byte order).
 * test/unit/bpf-layout.test.ts compares them with the BTF clang wrote into bpf/obj/xsk.bpf.o.
 */

/** struct xsk_config (.rodata `cfg`) */
export const XSK_CONFIG = { size: 8, sport: 0, dport_lo: 2, dport_hi: 4, family: 6 } as const;
/** struct xsk_stamp: written over each redirected frame's Ethernet addresses */
export const XSK_STAMP = { size: 12, rx_ns: 0, magic: 8 } as const;
export const XSK_STAMP_MAGIC = 0x504c5853;
/** enum xsk_counter: the xsk_counts per-CPU array */
export const XSK_COUNTERS = ['redirected', 'passed', 'no_socket'] as const;
