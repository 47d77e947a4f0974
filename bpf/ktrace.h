/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Everything that crosses the kernel/user boundary of `pathlens ktrace`, with explicit padding;
 * src/ktrace/layout.ts mirrors it (test/unit/bpf-layout.test.ts checks it against the object's BTF).
 */
#ifndef PATHLENS_KTRACE_H
#define PATHLENS_KTRACE_H

#include <linux/types.h>

/* Stages: where an echo is seen. The out path is what leaves this host, the in path what arrives;
 * in TX mode the request goes out and the reply comes in, in RX mode the other way round. */
enum kt_stage {
	KT_IP_SEND_SKB = 0,
	KT_IP_LOCAL_OUT = 1,
	KT_POST_ROUTING = 2,
	KT_TC_EGRESS = 3,
	KT_DEV_QUEUE = 4,
	KT_DEV_XMIT = 5,
	KT_NETIF_RECEIVE = 6,
	KT_TC_INGRESS = 7,
	KT_IP_RCV = 8,
	KT_ICMP_RCV = 9,
	KT_SK_DATA_READY = 10, /* TX: the reply queued on the pinging socket, its reader woken */
	KT_SK_READ = 11,       /* TX: the reader copies it out (recvmsg): wakeup and scheduling between */
	KT_SENDMSG = 12,       /* TX: the sender's sendto/sendmsg system call began (first in path order) */
	KT_FIRST_GENERIC = 13, /* a profile's own stages take ids from here on (kt_config.gen_out/gen_in) */
	KT_NSTAGES = 32,
};
#define KT_FIRST_IN KT_NETIF_RECEIVE
#define KT_HIST_SLOTS 64
#define KT_STAGE_MASK 31   /* KT_NSTAGES - 1: a masked stage index stays inside t[] and stack[] */
#define KT_NO_STAGE 0xff
#define KT_GEN_SLOTS 12    /* generic programs per hook kind: a profile's stages beyond the built-in ones */
#define KT_STACK_DEPTH 32  /* frames kept per kernel stack (map kt_stacks) */

/* One round trip (echo mode), keyed in the request's orientation from this host's side; or, in
 * packet mode (cfg.proto), one UDP or TCP packet on one path, keyed by its buffer too. */
struct kt_key {
	__u8 local[16];  /* IPv4 in the first 4 bytes */
	__u8 remote[16];
	__u16 id;        /* echo identifier, host order (packet mode: the local port) */
	__u16 seq;       /* echo sequence, host order (packet mode: the remote port) */
	__u8 family;     /* 4 or 6 */
	__u8 proto;      /* packet mode: 6 or 17 (echo mode: 0) */
	__u8 out;        /* packet mode: 1 leaving this host, 0 arriving */
	__u8 pad;
	__u64 skb;       /* packet mode: the sk_buff's address (echo mode: 0) */
};

struct kt_trip {
	__u64 t[KT_NSTAGES]; /* bpf_ktime_get_ns() at each stage, 0: not reached */
	__u64 created;       /* the first stage of the first path */
	__u32 pid;           /* the process that sent (TX: the request, seen in its context) */
	__u32 ifindex_out;
	__u32 ifindex_in;
	__u32 drop_reason;   /* kfree_skb's reason, when the kernel dropped a packet of this trip */
	__u8 comm[16];
	__u8 dropped;        /* 1: the request (packet mode: the packet) was dropped, 2: the reply */
	__u8 tcp_flags;      /* packet mode, TCP: the flags byte */
	__u16 len;           /* packet mode: the IP packet's length */
	__u32 tcp_seq;       /* packet mode, TCP: the sequence number */
	/* With cfg.stacks, at tracing hooks: kt_stacks id + 1 of the kernel stack at each stage
	 * (0: none taken, negative: bpf_get_stackid's error). */
	__s32 stack[KT_NSTAGES];
};

/* Set by user space before load (.rodata): the verifier sees constants. */
struct kt_config {
	__u64 min_total_ns;        /* --latency-ms: shorter trips are not reported */
	__u32 netns;               /* inode of the network namespace for global hooks (0: any) */
	__u8 family;               /* 4 or 6 */
	__u8 rx;                   /* 0: TX (this host pings), 1: RX (it is pinged) */
	__u8 hist;                 /* count per-segment histograms */
	__u8 stacks;               /* take kernel stacks at tracing hooks (--stacks) */
	__u8 local[16];
	__u8 remote[16];
	__u32 kfree_reason_off;    /* offset of `reason` in the classic skb/kfree_skb record (tracefs format) */
	__u8 proto;                /* 0: ICMP echo round trips; 6 or 17: TCP or UDP packets (packet mode) */
	__u8 pad0;
	__u16 port;                /* packet mode: either port must be this one (0: any) */
	/* A profile's stages on generic programs, per slot (the verifier sees these as constants, so
	 * each program keeps only its slot's branch): */
	__u8 gen_out[KT_GEN_SLOTS];   /* the stage a packet leaving this host is at (KT_NO_STAGE: none) */
	__u8 gen_in[KT_GEN_SLOTS];    /* the stage an arriving packet is at */
	/* Per kind (KT_GEN_FENTRY..KT_GEN_TRACEPOINT) and slot: which argument is the sk_buff (bits
	 * 0-3; fentry, tp_btf, raw_tp) and where its IP header is (bit 4: at data, else at
	 * network_header). */
	__u8 gen_how[4][KT_GEN_SLOTS];
	__u16 gen_off[KT_GEN_SLOTS];  /* classic tracepoints: the offset of the sk_buff's address in the record */
};
enum kt_gen_kind { KT_GEN_FENTRY = 0, KT_GEN_TP_BTF = 1, KT_GEN_RAW_TP = 2, KT_GEN_TRACEPOINT = 3 };
#define KT_HOW_ARG 0x0f
#define KT_HOW_DATA 0x10

/* Which stages got a hook, known only once attached (map "kt_plan", one entry). */
struct kt_plan {
	__u8 final_out;            /* the stage that completes a trip on the out path (KT_NO_STAGE: none) */
	__u8 final_in;             /* ... on the in path (echo mode: only the second path completes) */
	__u8 first_out;            /* packet mode: the stage that starts a packet's entry on the out path */
	__u8 first_in;
	__u8 nstages;
	__u8 order[KT_NSTAGES];    /* attached stages in path order (first path, then second) */
	__u8 pad[3];
};

#define KT_REC_COMPLETE 1  /* reached its path's final stage */
#define KT_REC_PARTIAL 2   /* packet mode: its buffer started another packet, or the kernel dropped it */

struct kt_record {
	struct kt_key key;
	struct kt_trip trip;
	__u32 kind;          /* KT_REC_* */
	__u32 pad;
};

#endif
