/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * What crosses the kernel/user boundary of `pathlens trace --xdp` (the AF_XDP sweep): the
 * configuration, the metadata in front of each redirected frame, the counters. src/probe/xsk-layout.ts
 * mirrors these layouts; test/unit/bpf-layout.test.ts checks them against the object's BTF.
 */
#ifndef PATHLENS_XSK_H
#define PATHLENS_XSK_H

#include <linux/types.h>

/* "PLXS": the stamp's mark (a frame without it gets user space's receive time). */
#define XSK_STAMP_MAGIC 0x504c5853

/* Set in .rodata before load: which quoted probes are this run's. */
struct xsk_config {
	__u16 sport;     /* the probes' UDP source port, host order */
	__u16 dport_lo;  /* their destination ports: dport_lo + TTL, up to dport_hi (inclusive) */
	__u16 dport_hi;
	__u8 family;     /* 4 or 6 */
	__u8 pad;
};

/* Written over a redirected frame's Ethernet addresses (12 bytes; the EtherType stays): when the
 * program saw it. */
struct xsk_stamp {
	__u64 rx_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 magic;     /* XSK_STAMP_MAGIC */
} __attribute__((packed));

enum xsk_counter {
	XSK_C_REDIRECTED,  /* replies to this run's probes handed to the socket */
	XSK_C_PASSED,      /* everything else, left to the kernel */
	XSK_C_NO_SOCKET,   /* replies to this run's probes on a queue without a socket (passed) */
	XSK_C_NUM,
};

#endif
