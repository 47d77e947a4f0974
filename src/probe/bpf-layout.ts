/**
 * The layouts of bpf/trace.h as TypeScript sees them (offsets in host byte order).
 * test/unit/bpf-layout.test.ts compares every offset and size here with the BTF clang wrote into
 * bpf/obj/trace.bpf.o, so the two sides cannot drift apart.
 */

/** struct tr_config (.rodata `cfg`) */
export const TR_CONFIG = { size: 8, magic: 0, family: 4 } as const;
/** struct tr_sock_key, struct tr_sock (the tr_socks map) */
export const TR_SOCK_KEY = { size: 4, sport: 0, proto: 2 } as const;
export const TR_SOCK = { size: 88, session: 0, by_cookie: 4, end_ttl: 5, wake_every: 6, count: 8, unread: 48, wake_batch: 52, ttls: 56 } as const;
/** struct tr_key */
export const TR_KEY = { size: 24, daddr: 0, sport: 16, id: 18, seq: 20 } as const;
/** struct tr_hist_key */
export const TR_HIST_KEY = { size: 4, sport: 0, proto: 2, ttl: 3 } as const;
/** struct tr_probe */
export const TR_PROBE = { size: 16, tx_ns: 0, seq: 8, ttl: 12, answered: 13 } as const;
/** struct tr_event */
export const TR_EVENT = { size: 680, rx_ns: 0, tx_ns: 8, rx_stamp: 16, seq: 24, ifindex: 28, len: 32, wire_len: 34, family: 36, proto: 37, sport: 38, pkt: 40 } as const;
/** struct tr_hist */
export const TR_HIST = { size: 132, b: 0, answered: 128 } as const;
/** Bytes of a reply the record keeps; histogram buckets; TTLs. */
export const TR_CAP = 640;
export const TR_BUCKETS = 32;
export const TR_TTLS = 256;
/** enum tr_counter: struct tr_sock's count[] */
export const TR_COUNTERS = ['sent', 'matched', 'unmatched', 'ring_full', 'map_full'] as const;
