/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * What crosses the kernel/user boundary of `pathlens trace --bpf` (configuration, the probe map,
 * ring-buffer records, counters, histograms), with explicit padding. src/probe/bpf-layout.ts
 * mirrors these layouts; test/unit/bpf-layout.test.ts checks them against the object's BTF.
 */
#ifndef PATHLENS_TRACE_H
#define PATHLENS_TRACE_H

#include <linux/types.h>

/* Bytes of a reply kept in its record, from the outer IP header on: the headers, the quote up to
 * RFC 4884's 128 bytes and the extensions after it (MPLS label stacks). */
#define TR_CAP 640
/* Log2 buckets of the in-kernel RTT histograms (microseconds: [0,1), [1,2), [2,4) ... ). */
#define TR_BUCKETS 32
/* TTLs (hop limits) the histograms cover, 0..255. */
#define TR_TTLS 256

/* Set in .rodata before load: what every probe of this object shares. */
struct tr_config {
	__u32 magic;     /* the cookie's first word (big-endian on the wire, host order here) */
	__u8 family;     /* 4 or 6: one object per family and namespace */
	__u8 pad[3];
};

/* A probing socket, the tr_socks map's key: the programs look at its packets only. */
struct tr_sock_key {
	__u16 sport;     /* UDP source port, or the ping socket's echo id, host order */
	__u8 proto;      /* IPPROTO_UDP, IPPROTO_ICMP or IPPROTO_ICMPV6 */
	__u8 pad;
};

/* The socket's run, set by user space when it opens, and the kernel's counts for it. */
struct tr_sock {
	__u32 session;    /* the cookie's second word, host order */
	__u8 by_cookie;   /* flows share ports across TTLs: the cookie's seq is part of the key */
	__u8 end_ttl;     /* the lowest TTL the path's end answered (the target, an unreachable);
	                   * 0: none yet. Set by the kernel, zero when user space adds the socket */
	__u16 wake_every; /* wake the reader when a TTL's answers reach a multiple of this (its
	                   * probes); 0 or 1: at every reply */
	__u64 count[5];   /* enum tr_counter */
	__u32 unread;     /* first answers since the reader was last woken */
	__u16 wake_batch; /* a TTL's last answer wakes the reader once this many are unread (two
	                   * TTLs' worth in a large enough window); 0 or 1: at every TTL */
	__u16 pad2;
	__u64 ttls[4];    /* bit t: TTL t has a histogram entry (tr_hist): user space reads those only */
};

/* A probe as the wire names it (its identity), the probe map's key. */
struct tr_key {
	__u8 daddr[16];  /* IPv4 in the first 4 bytes, rest zero */
	__u16 sport;     /* its socket's port or echo id */
	__u16 id;        /* UDP: destination port; ICMP: echo sequence (host order) */
	__u32 seq;       /* the cookie's seq when by_cookie, else 0 */
};

/* A socket's TTL, the histogram map's key. */
struct tr_hist_key {
	__u16 sport;
	__u8 proto;
	__u8 ttl;
};

/* What the send hook saw of a probe. */
struct tr_probe {
	__u64 tx_ns;     /* bpf_ktime_get_tai_ns() at the send hook */
	__u32 seq;       /* the cookie's seq */
	__u8 ttl;        /* TTL / hop limit it left with */
	__u8 answered;   /* a reply was counted in the histogram */
	__u8 pad[2];
};

/* One reply, or something that looked like one to this socket, for user space to decode. */
struct tr_event {
	__u64 rx_ns;     /* bpf_ktime_get_tai_ns() at the receive hook */
	__u64 tx_ns;     /* the probe's send time (TAI, at the send hook), 0 when no probe matched */
	__u64 rx_stamp;  /* the packet's own receive timestamp (skb->tstamp: CLOCK_REALTIME, taken as the
	                  * device handed it over, as a socket's SO_TIMESTAMPNS), 0 when it has none */
	__s32 seq;       /* the probe's seq, -1 when the kernel found none */
	__u32 ifindex;   /* interface it arrived on */
	__u16 len;       /* bytes in pkt */
	__u16 wire_len;  /* the packet's length */
	__u8 family;     /* 4 or 6 */
	__u8 proto;      /* the socket's: IPPROTO_UDP, IPPROTO_ICMP or IPPROTO_ICMPV6 */
	__u16 sport;     /* the socket's port or echo id: the reader it goes to */
	__u8 pkt[TR_CAP];
};

/* A socket's counts. */
enum tr_counter {
	TR_SENT = 0,      /* probes the send hook recorded */
	TR_MATCHED = 1,   /* replies the kernel matched to a probe */
	TR_UNMATCHED = 2, /* replies about this socket's probes that match none */
	TR_RING_FULL = 3, /* records lost: the ring buffer was full */
	TR_MAP_FULL = 4,  /* probes not recorded: the probe map refused */
	TR_NUM = 5,
};

/* One TTL's RTT histogram for one socket, and its answers so far (first answers only). */
struct tr_hist {
	__u32 b[TR_BUCKETS];
	__u32 answered;
};

#endif
