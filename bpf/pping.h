/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Everything that crosses the kernel/user boundary of `pathlens pping` (maps, ring-buffer
 * events, configuration), with explicit padding. src/pping/bpf-layout.ts mirrors these layouts;
 * test/unit/bpf-layout.test.ts checks the offsets against the BTF that clang puts in the object,
 * so the two cannot drift apart.
 */
#ifndef PATHLENS_PPING_H
#define PATHLENS_PPING_H

#include <linux/types.h>

/* Longest QUIC connection id (RFC 9000 §17.2, version 1): QUIC_CID_MAX in src/pping/decode.ts. */
#define PPING_QUIC_CID_MAX 20

/* Flow key: the two endpoints in canonical order (end 0 sorts before end 1, address then port). */
struct pping_flow_key {
	__u8 addr[2][16]; /* IPv4 in the first 4 bytes, rest zero */
	__u16 port[2];    /* host order; ICMP echo: the echo id on both ends */
	__u8 proto;       /* IPPROTO_TCP, IPPROTO_ICMP, IPPROTO_ICMPV6 */
	__u8 family;      /* 4 or 6 */
	__u8 pad[2];
};

/* The key's last 8 bytes (after the addresses), built in a register and stored as one word. */
struct pping_flow_key_tail {
	__u16 port[2];
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* States of a flow direction (ePPing's): active while waiting for its first reply, or open. */
enum pping_dir_state {
	PPING_DIR_EMPTY = 0,
	PPING_DIR_WAITOPEN = 1,
	PPING_DIR_OPEN = 2,
	PPING_DIR_CLOSED = 3,
};

/* Per direction of a flow: direction d carries packets from end d to end d^1. */
struct pping_dir {
	__u64 last_stamp; /* ktime of the last timestamp, or of the first packet before any */
	__u64 min_rtt;    /* of samples of packets sent this way, ns (0: none) */
	__u64 srtt;
	__u32 last_id;    /* last identifier seen this way (TSval or echo sequence) */
	__u32 barrier;    /* SEQ/ACK: the highest identifier sent this way before a retransmission: no sample up to it */
	/* Timestamps of this direction stored and not yet matched, as ePPing keeps it: an echo is
	 * looked up only when there may be one. The user-space sweep's expiries do not count down
	 * (it cannot update the flow atomically), so this may stay above the truth (a lookup more),
	 * never below it. */
	__u32 outstanding;
	__u8 state;       /* enum pping_dir_state */
	__u8 stamped;     /* a timestamp has been taken (or tried) this way */
	__u8 open_reason; /* enum pping_reason */
	__u8 has_barrier; /* SEQ/ACK: a retransmission was seen this way (Karn's rule) */
	__u8 credits;     /* --burst: timestamps it may still take past the rate limit */
	__u8 pad[7];
};

/*
 * The counters a packet going way k writes, every packet: direction k's sent ones and direction
 * k ^ 1's received ones. The two ways of a flow are often handled by two CPUs (data on one, ACKs
 * on the other): each tally is written by one of them only, 64 bytes apart from the other so
 * that they never share a cache line.
 */
struct pping_tally {
	__u64 sent_pkts;  /* direction k: packets sent that way while it was active */
	__u64 sent_bytes; /* their payload bytes */
	__u64 rec_pkts;   /* direction k ^ 1: packets this way (its replies) while it was active */
	__u64 rec_bytes;
	__u64 pad[4];
};

/*
 * A flow: what every packet reads and few write (the id, both directions' states) first, then
 * 64 bytes of nothing, then what every packet writes. A hash map's element is its key followed by
 * this value at an offset the program does not know: the gap keeps the written tallies out of the
 * cache lines of the key and the read-mostly fields whatever the offset. With a tally's first
 * word in the line of the other direction's state, every ACK waited for a line the data packets
 * had just written: the counters cost a quarter of the program (40 ns a packet here).
 */
struct pping_flow {
	__u32 conn_id;    /* unique per connection in this run: stored timestamps are keyed by it */
	__u32 pad;
	struct pping_dir d[2];
	__u64 gap[8];
	struct pping_tally by[2];
	/* QUIC: the server connection id the client last sent (length + 1; 0: none), zero-padded. */
	__u8 quic_cid_len;
	__u8 quic_cid[PPING_QUIC_CID_MAX];
	__u8 pad2[3];
};

/* A server endpoint, whose connection ids have the length its long headers show (src/pping/quic.ts). */
struct pping_quic_server {
	__u8 addr[16];
	__u16 port;
	__u8 family;
	__u8 pad;
};

/* A server connection id of a server endpoint, and the flow its connection was last seen on. */
struct pping_quic_cid_key {
	__u8 addr[16];
	__u16 port;
	__u8 family;
	__u8 len;
	__u8 cid[PPING_QUIC_CID_MAX]; /* zero past len */
};

struct pping_quic_conn {
	struct pping_flow_key flow;
	__u32 conn_id;    /* the flow's, when this was written: a flow since put on that key is another */
	__u32 client_end; /* the key's end (0 or 1) the client is */
};

struct pping_stamp_key {
	__u32 conn_id;
	__u32 dir;
	__u32 id;
};

struct pping_stamp {
	__u64 time;
	__u64 deadline;
	__u32 one_way;    /* stored while its direction waited for its first reply */
	__u32 pad;
};

#define PPING_CFG_TCP (1u << 0)
#define PPING_CFG_ICMP (1u << 1)
#define PPING_CFG_INCLUDE_SYN (1u << 2)
#define PPING_CFG_INCLUDE_LOCAL (1u << 3)
#define PPING_CFG_RTT_MIN (1u << 4)  /* --rtt-type min (else smoothed) */
#define PPING_CFG_L3 (1u << 5)       /* the device has no link-layer header (tun, PPP, wireguard) */
#define PPING_CFG_TEST_CLOCK (1u << 6) /* time is skb->tstamp (BPF_PROG_TEST_RUN only: the tests set it) */
#define PPING_CFG_SEQACK (1u << 7)     /* TCP without the timestamp option: SEQ/ACK matching */
#define PPING_CFG_DNS (1u << 8)        /* DNS over UDP: query to response */
#define PPING_CFG_QUIC (1u << 9)       /* QUIC's spin bit on the configured UDP ports */
#define PPING_QUIC_PORTS 4

struct pping_config {
	__u64 rate_limit_ns;
	__u32 rtt_rate_milli; /* 0: --rtt-rate off */
	__u32 flags;
	__u32 one_way_limit;  /* timestamps one-way directions may hold (half the map) */
	__u32 burst;          /* --burst: timestamps past the rate limit after reordering or loss (0: none) */
	__u16 quic_ports[PPING_QUIC_PORTS]; /* QUIC servers' ports, host order (0: unused) */
};

enum pping_event_type {
	PPING_EV_RTT = 1,
	PPING_EV_FLOW = 2,
};

enum pping_flow_kind {
	PPING_FLOW_OPENING = 1,
	PPING_FLOW_CLOSING = 2,
};

enum pping_reason {
	PPING_R_SYN = 1,
	PPING_R_SYN_ACK = 2,
	PPING_R_FIRST = 3,
	PPING_R_FIN = 4,
	PPING_R_RST = 5,
};

/* How "new" an identifier is judged: wrap-safe later (TCP TSval), or merely different (echo sequence). */
enum pping_newness {
	PPING_NEWER_WRAP = 0,
	PPING_NEWER_DIFFERENT = 1,
};

/*
 * What a packet identifies, before any rule runs (ePPing's protocol_info): filled by one
 * identify_* function per protocol in pping.bpf.c; src/pping/identify.ts has the same functions
 * filling the same record (PacketIds), and the rules on both sides read only this.
 */
struct pping_ids {
	__u32 id;         /* the identifier it may be timestamped by (TSval, echo request sequence) */
	__u32 echoed;     /* the identifier it echoes (TSecr, echo reply sequence) */
	__u8 id_valid;    /* it can be timestamped (TCP: data or a SYN; an echo request) */
	__u8 echo_valid;  /* it can match (an ACK; an echo reply) */
	__u8 wait_edge;   /* its direction's first identifier is only an edge to wait for (TCP, not a SYN; QUIC spin) */
	__u8 closing;     /* PPING_R_FIN, PPING_R_RST or 0 */
	__u8 open_reason; /* why its direction opens, if it does: enum pping_reason */
	__u8 newer;       /* enum pping_newness */
	__u8 rule;        /* enum pping_rule: which identifier it is */
	__u8 echo_on_edge; /* it can match only when its identifier differs from its direction's last (a spin edge) */
};

/* Which identifier made a sample (RTT events' `match`). */
enum pping_rule {
	PPING_RULE_TSOPT = 0,
	PPING_RULE_SEQACK = 1,
	PPING_RULE_ECHO = 2,
	PPING_RULE_DNS = 3,
	PPING_RULE_SPIN = 4,
};

/* Which end of the packet a flow event is attributed to (ePPing's triggered_by). */
enum pping_by {
	PPING_BY_SRC = 0,
	PPING_BY_DEST = 1,
};

#define PPING_EVF_MATCH_ON_EGRESS (1u << 0)
#define PPING_EVF_ONE_WAY (1u << 1) /* a flow event of a flow that goes with one direction only seen */

struct pping_event {
	__u8 type;        /* enum pping_event_type */
	__u8 family;
	__u8 proto;
	__u8 flags;       /* PPING_EVF_* */
	__u8 flow_event;  /* enum pping_flow_kind */
	__u8 reason;      /* enum pping_reason */
	__u8 by;          /* enum pping_by */
	__u8 match;       /* enum pping_rule (RTT events) */
	__u64 time;       /* bpf_ktime_get_ns() (an opening: when the opened direction was last timestamped) */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 pad2;
	__u64 rtt;
	__u64 min_rtt;
	__u64 sent_packets;
	__u64 sent_bytes;
	__u64 rec_packets;
	__u64 rec_bytes;
};

/* Per-CPU counters (array map "pping_counters"). */
enum pping_counter {
	PPING_C_SEEN,          /* every packet the programs ran on */
	PPING_C_CONSIDERED,    /* packets of the selected protocols that reached the rules */
	PPING_C_STAMPED,
	PPING_C_RTTS,
	PPING_C_FLOWS_OPENED,
	PPING_C_FLOW_FULL,
	PPING_C_STAMP_FULL,
	PPING_C_EVENTS_LOST,   /* ring buffer full: an event not delivered */
	PPING_C_NOT_IP,
	PPING_C_OTHER_PROTO,
	PPING_C_MALFORMED,
	PPING_C_FRAGMENT,
	PPING_C_RETRANSMIT_SKIPPED, /* SEQ/ACK: echoes of data sent before a retransmission (Karn) */
	PPING_C_ONE_WAY_REFUSED,    /* timestamps not stored for one-way directions: their share in use */
	PPING_C_BURST,              /* timestamps taken past the rate limit after reordering or loss */
	PPING_C_ONE_WAY_FLOWS,      /* flows closed (FIN, RST) with one direction only seen */
	PPING_C_QUIC_MOVED,         /* QUIC flows moved to the client's new address or port by their connection id */
	PPING_C_NUM,
};

#endif
