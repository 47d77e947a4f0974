// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * Passive RTT in the kernel: the rules of src/pping/matcher.ts (the reference implementation,
 * used for pcap files and packet sockets; ePPing's rules), applied on tc egress + tc ingress or
 * XDP ingress.
 *
 * Each flow direction has a state (empty, waiting for its first reply, open, closed). Every
 * packet the rules can use plays both parts, as in the reference:
 *  - timestamp its own identifier (TCP TSval, ICMP echo request sequence) for its direction,
 *    when it carries data (or is a SYN, when SYNs are asked for), the direction is active, the
 *    identifier is new (TCP: wrap-safe newer; the first TSval is the edge to wait for) and the
 *    direction's rate limit allows;
 *  - match its echo of the reverse direction's identifier (TCP TSecr on an ACK, ICMP echo reply
 *    sequence): a hit is an RTT sample, sent to user space through the ring buffer, and the
 *    stored timestamp is removed.
 * Flow opening (first reply) and closing (FIN, RST) events come from here too; idle flows and
 * stale timestamps are swept from user space (it owns the clock policy and the "flow timeout"
 * events).
 *
 * Only UAPI structures are read (packet headers, __sk_buff and xdp_md fields), so the object
 * loads unchanged on any kernel with BTF-less CO-RE needs: there is nothing to relocate.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "pping.h"

#define NSEC 1000000000ull
#define STAMP_RTT_LIFETIMES 8
#define STAMP_MIN_LIFETIME (1 * NSEC)
#define STAMP_MAX_LIFETIME (10 * NSEC)
#define MAX_VLAN 2
#define MAX_EXT_HEADERS 8
#define MAX_TCP_OPTIONS 40

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IPPROTO_ICMPV6_ 58

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* tcx and cls_bpf (direct action) alike: -1 lets the next program decide, the packet passes. */
#define PASS_ON (-1)

enum skip { OK = 0, SKIP_NOT_IP = 1, SKIP_PROTO = 2, SKIP_MALFORMED = 3, SKIP_FRAGMENT = 4 };

/* Allocated as flows come (BPF_F_NO_PREALLOC), not for the table's maximum up front: a flow is
 * 320 bytes (its written counters kept apart from the rest), about 50 MiB at the default 2^17 flows. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pping_flow_key);
	__type(value, struct pping_flow);
} pping_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pping_stamp_key);
	__type(value, struct pping_stamp);
} pping_stamps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} pping_events SEC(".maps");

/* Waking the reader per event raises an interrupt and a wakeup inside the program (about 14 us
 * on a 2-vCPU VM); the reader drains every 100 ms instead, and is woken when this much waits. */
#define PPING_WAKE_BYTES (128 * 1024)

static __always_inline void submit(void *e)
{
	bool wake = bpf_ringbuf_query(&pping_events, BPF_RB_AVAIL_DATA) >= PPING_WAKE_BYTES;
	bpf_ringbuf_submit(e, wake ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* The rules' options, set by user space before load (.rodata): the verifier sees them as constants
 * and drops the branches of options that are off, as ePPing's own configuration does. */
const volatile struct pping_config pping_cfg = {};

/* Timestamps stored for directions still waiting for their first reply (one-way traffic, maybe
 * spoofed): capped at cfg->one_way_limit so that flows that answer always find room. Atomic
 * adds here; the user-space sweep writes the recount of what its walk saw (self-correcting). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pping_one_way SEC(".maps");

static __always_inline void one_way_add(__s64 n)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&pping_one_way, &zero);
	if (c)
		__sync_fetch_and_add(c, n);
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PPING_C_NUM);
	__type(key, __u32);
	__type(value, __u64);
} pping_counters SEC(".maps");

/* Ring-buffer records have no map value type: this keeps struct pping_event in the object's BTF,
 * where user space's layout test reads it. */
struct pping_event *pping_event_btf __attribute__((unused));

/* QUIC: the length of each server endpoint's connection ids (learnt from its long headers), and
 * where each server connection id's connection was last seen (src/pping/quic.ts keeps the same).
 * LRU: a flood of handshakes pushes out the oldest, never a new one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pping_quic_server);
	__type(value, __u32);
} pping_quic_servers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pping_quic_cid_key);
	__type(value, struct pping_quic_conn);
} pping_quic_cids SEC(".maps");

/* Connection ids, unique in this run (0 is never used). */
__u32 pping_next_conn = 0;

/* What the parser gives the rules (addresses in key order: src first). */
struct packet {
	__u8 src[16] __attribute__((aligned(8)));
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 has_ts;
	__u8 echo; /* 1 request, 2 reply */
	__u8 dns;  /* 1 query, 2 response */
	__u8 quic; /* QUIC_SHORT: the datagram starts with a short header; QUIC_LONG: a long one, from the server */
	__u8 quic_bits; /* QUIC_SPIN: its spin bit; QUIC_FROM_SERVER: its source port is the server's */
	__u8 cid_len; /* QUIC_SHORT from the client: bytes of cid the packet holds; QUIC_LONG: its source id's length */
	__u8 cid[PPING_QUIC_CID_MAX]; /* QUIC_SHORT from the client: its first bytes after the first byte */
	__u32 ip_len;
	__u32 payload;
	__u32 tsval;
	__u32 tsecr;
	__u32 seq;      /* TCP sequence and acknowledgment numbers */
	__u32 ack;
	__u32 echo_seq;
	__u32 dns_id;   /* transaction id << 16 | 16-bit hash of the question */
	__u32 et;       /* EtherType */
	__u32 hdr_len;  /* IP header bytes, extension headers included */
	/* Loop cursor kept in map memory, which the verifier does not track: every iteration then
	 * looks alike to it ("some offset below 60"), instead of one state per exact offset. */
	__u32 cursor;
};

/* Per-CPU scratch space: the BPF stack (512 bytes) is too small for these. */
struct scratch {
	struct packet p;
	struct pping_flow_key key __attribute__((aligned(8)));
	struct pping_flow nf;
	__u64 now;      /* the packet's time, read when first needed (now_of); 0 until then */
	__u64 tstamp;   /* the packet's own time, for PPING_CFG_TEST_CLOCK */
	__u32 dir;      /* the packet's direction in the flow key (0: src is end 0) */
	__u32 egress;
	struct pping_ids ids; /* what the packet identifies (identify_*) */
	__u32 quic_len; /* a QUIC client's packet: its server id's length + 1, when known and whole (0: not) */
	struct pping_quic_cid_key qkey; /* ... and that id, with its server */
	struct pping_quic_conn qconn;
	struct pping_stamp_key skey[4]; /* timestamps moved with a QUIC flow */
	struct pping_stamp sval[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} pping_scratch SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&pping_counters, &idx);
	if (c)
		*c += 1;
}

/* The packet's time, read from the clock the first time a rule needs it: most packets need none
 * (a pure ACK with nothing outstanding, a data segment whose TSval is not new), and the clock is
 * a good part of what a packet costs. The differential tests replay packets at chosen times. */
static __always_inline __u64 now_of(struct scratch *sc)
{
	if (!sc->now)
		sc->now = (pping_cfg.flags & PPING_CFG_TEST_CLOCK) ? sc->tstamp : bpf_ktime_get_ns();
	return sc->now;
}

/*
 * Parsing, in three stages with the same outcomes as src/pping/decode.ts for the same bytes:
 * link layer, IP (with IPv6 extension headers), transport. Each stage leaves its result offset
 * in map memory (struct packet), and the next reads it back as "some bounded offset": the
 * verifier's states do not multiply with the paths through the previous stages. The stages are
 * inlined (a call per stage per packet showed in the programs' cost); the offsets kept in map
 * memory are what keep their verification small.
 */
#define MAX_L3_OFF (14 + 4 * MAX_VLAN)
#define MAX_L4_OFF 1024

static __always_inline __u32 recall(__u32 *slot)
{
	return *(volatile __u32 *)slot;
}

/*
 * The addresses and the flow key are written in whole 8-byte words and read back the same way:
 * the flow map's hash and key compare read the key just after it is built, and a word read over
 * several narrower stores still in the store buffer stalls (a failed store forward). Written
 * byte by byte, the key compare alone cost about as much as the rest of the program.
 */
static __always_inline void put_addr(__u8 *to, const __u8 *from, int n)
{
	__u64 w0 = 0, w1 = 0;
	if (n == 4) {
		__u32 a;
		__builtin_memcpy(&a, from, 4);
		w0 = a; /* memory order kept: the 4 bytes first, then zeros (little or big endian alike) */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		w0 <<= 32;
#endif
	} else {
		__builtin_memcpy(&w0, from, 8);
		__builtin_memcpy(&w1, from + 8, 8);
	}
	((__u64 *)to)[0] = w0;
	((__u64 *)to)[1] = w1;
}

/* Link layer: the EtherType and where the IP header starts. */
static __always_inline int parse_link(void *data, void *data_end, __u16 l3proto, bool l3, struct packet *p)
{
	p->et = l3proto;
	p->cursor = 0;
	if (l3)
		return OK;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return SKIP_MALFORMED;
	__u16 et = bpf_ntohs(eth->h_proto);
	__u8 *pos = data + sizeof(*eth);
#pragma clang loop unroll(full)
	for (int i = 0; i < MAX_VLAN; i++) {
		if (et != ETH_P_8021Q_ && et != ETH_P_8021AD_)
			break;
		if ((void *)(pos + 4) > data_end)
			return SKIP_MALFORMED;
		et = ((__u16)pos[2] << 8) | pos[3];
		pos += 4;
	}
	p->et = et;
	p->cursor = (__u32)((void *)pos - data);
	return OK;
}

/* IP: addresses, protocol, lengths, and where the transport header starts. */
static __always_inline int parse_ip(void *data, void *data_end, struct packet *p)
{
	__u32 et = p->et;
	if (et != ETH_P_IP && et != ETH_P_IPV6)
		return SKIP_NOT_IP;
	__u32 l3off = recall(&p->cursor);
	if (l3off > MAX_L3_OFF)
		return SKIP_MALFORMED;
	__u8 *pos = data + l3off;
	if (et == ETH_P_IP) {
		if ((void *)(pos + 20) > data_end)
			return SKIP_MALFORMED;
		if ((pos[0] >> 4) != 4)
			return SKIP_MALFORMED;
		__u32 ihl = (pos[0] & 0x0f) * 4;
		if (ihl < 20)
			return SKIP_MALFORMED;
		__u32 tot = ((__u32)pos[2] << 8) | pos[3];
		if (tot < ihl)
			return SKIP_MALFORMED;
		if (((pos[6] & 0x1f) | pos[7]) != 0)
			return SKIP_FRAGMENT;
		p->family = 4;
		p->proto = pos[9];
		p->ip_len = tot;
		put_addr(p->src, pos + 12, 4);
		put_addr(p->dst, pos + 16, 4);
		if ((void *)(pos + ihl) > data_end)
			return SKIP_MALFORMED;
		p->hdr_len = ihl;
		p->cursor = l3off + ihl;
		return OK;
	}
	if ((void *)(pos + 40) > data_end)
		return SKIP_MALFORMED;
	if ((pos[0] >> 4) != 6)
		return SKIP_MALFORMED;
	p->family = 6;
	p->ip_len = 40 + (((__u32)pos[4] << 8) | pos[5]);
	put_addr(p->src, pos + 8, 16);
	put_addr(p->dst, pos + 24, 16);
	p->proto = pos[6];
	p->cursor = l3off + 40;
	bool later = false;
	for (int i = 0; i < MAX_EXT_HEADERS; i++) {
		__u8 next = p->proto;
		if (next != 0 && next != 43 && next != 60 && next != 44)
			break;
		__u32 off = recall(&p->cursor);
		if (off > MAX_L4_OFF)
			return SKIP_MALFORMED;
		__u8 *x = data + off;
		if ((void *)(x + 8) > data_end)
			return SKIP_MALFORMED;
		p->proto = x[0];
		if (next == 44) {
			if ((((__u32)x[2] << 8) | (x[3] & 0xf8)) != 0)
				later = true;
			p->cursor = off + 8;
		} else {
			p->cursor = off + ((__u32)x[1] + 1) * 8;
		}
	}
	__u32 l4off = recall(&p->cursor);
	if (l4off > MAX_L4_OFF || data + l4off > data_end)
		return SKIP_MALFORMED;
	if (later)
		return SKIP_FRAGMENT;
	p->hdr_len = l4off - l3off;
	return OK;
}

/* TCP options from byte 20 to hl: the timestamp option, or SKIP_MALFORMED for a broken list. */
static __always_inline int parse_tcp_options(__u8 *tcp, void *data_end, __u32 hl, struct packet *p)
{
	/* Linux's usual options, NOP NOP TIMESTAMP and nothing else: what the walk below finds, read
	 * at once (as parseTcpHeader does). */
	if (hl == 32 && (void *)(tcp + 32) <= data_end && tcp[20] == 1 && tcp[21] == 1 && tcp[22] == 8 && tcp[23] == 10) {
		p->has_ts = 1;
		p->tsval = ((__u32)tcp[24] << 24) | ((__u32)tcp[25] << 16) | ((__u32)tcp[26] << 8) | tcp[27];
		p->tsecr = ((__u32)tcp[28] << 24) | ((__u32)tcp[29] << 16) | ((__u32)tcp[30] << 8) | tcp[31];
		return OK;
	}
	p->cursor = 20;
	for (int i = 0; i < MAX_TCP_OPTIONS; i++) {
		__u32 off = recall(&p->cursor);
		if (off >= hl || off >= 60)
			return OK;
		__u8 *o = tcp + off;
		if ((void *)(o + 1) > data_end)
			return SKIP_MALFORMED;
		__u8 kind = o[0];
		if (kind == 0)
			return OK;
		if (kind == 1) {
			p->cursor = off + 1;
			continue;
		}
		if (off + 1 >= hl || (void *)(o + 2) > data_end)
			return SKIP_MALFORMED;
		__u8 olen = o[1];
		if (olen < 2 || off + olen > hl)
			return SKIP_MALFORMED;
		if (kind == 8) {
			if (olen != 10 || (void *)(o + 10) > data_end)
				return SKIP_MALFORMED;
			p->has_ts = 1;
			p->tsval = ((__u32)o[2] << 24) | ((__u32)o[3] << 16) | ((__u32)o[4] << 8) | o[5];
			p->tsecr = ((__u32)o[6] << 24) | ((__u32)o[7] << 16) | ((__u32)o[8] << 8) | o[9];
		}
		p->cursor = off + olen;
	}
	return OK;
}

/* Transport: TCP ports, flags, timestamps; ICMP echo id and sequence. */
#define DNS_PORT 53
#define QUIC_SPIN 1
#define QUIC_FROM_SERVER 2
#define QUIC_SHORT 1
#define QUIC_LONG 2
/* Least UDP payload of a short-header packet: first byte, packet number, 16-byte tag, and the
 * 4 bytes header protection samples past the packet number (QUIC_SHORT_MIN in decode.ts). */
#define QUIC_SHORT_MIN 21

static __always_inline bool quic_port(const volatile struct pping_config *cfg, __u16 port)
{
	bool hit = false;
	for (int i = 0; i < PPING_QUIC_PORTS; i++)
		hit |= cfg->quic_ports[i] != 0 && cfg->quic_ports[i] == port;
	return hit;
}
#define DNS_QUESTION_MAX 260 /* bytes of the question hashed at most (a name is at most 255) */

/*
 * A DNS message at msg (kind 1: a query, QR clear; 2: a response, QR set) with exactly one
 * question, whole in the packet: its identifier is the transaction id and a 16-bit FNV-1a hash of
 * the question (name, type, class), as dnsIdOf in src/pping/decode.ts.
 */
static __noinline int parse_dns(__u8 *msg, void *data_end, __u32 kind, struct packet *p)
{
	if ((void *)(msg + 12) > data_end)
		return SKIP_PROTO;
	if (((msg[2] & 0x80) != 0) != (kind == 2))
		return SKIP_PROTO;
	if (msg[4] != 0 || msg[5] != 1)
		return SKIP_PROTO;
	p->cursor = 12;
	bool named = false;
	for (int n = 0; n < 128; n++) {
		__u32 i = recall(&p->cursor);
		if (i > 12 + DNS_QUESTION_MAX)
			return SKIP_PROTO;
		__u8 *l = msg + i;
		if ((void *)(l + 1) > data_end)
			return SKIP_PROTO;
		__u8 len = l[0];
		if (len == 0) {
			named = true;
			break;
		}
		if (len & 0xc0)
			return SKIP_PROTO;
		p->cursor = i + len + 1;
	}
	if (!named)
		return SKIP_PROTO;
	__u32 qend = recall(&p->cursor) + 1 + 4;
	if (qend - 12 > DNS_QUESTION_MAX || (void *)(msg + (qend & 0x1ff)) > data_end)
		return SKIP_PROTO;
	__u32 h = 0x811c9dc5;
	for (__u32 k = 12; k < 12 + DNS_QUESTION_MAX; k++) {
		if (k >= qend)
			break;
		__u8 *c = msg + k;
		if ((void *)(c + 1) > data_end)
			return SKIP_PROTO;
		h = (h ^ *c) * 0x01000193;
	}
	p->dns = kind;
	p->dns_id = ((((__u32)msg[0] << 8) | msg[1]) << 16) | ((h ^ (h >> 16)) & 0xffff);
	return OK;
}

/* A long header (at h, its first byte) from the server: the length of its source connection id,
 * one the server chose (RFC 9000 §17.2). Version 0 (version negotiation) carries the client's. */
static __always_inline int parse_quic_long(__u8 *h, void *data_end, bool from_server, struct packet *p)
{
	if (!from_server || (void *)(h + 7) > data_end || (h[1] | h[2] | h[3] | h[4]) == 0)
		return SKIP_PROTO;
	__u32 dcl = h[5];
	if (dcl > PPING_QUIC_CID_MAX)
		return SKIP_PROTO;
	__u8 *s = h + 6 + dcl;
	if ((void *)(s + 1) > data_end || *s > PPING_QUIC_CID_MAX)
		return SKIP_PROTO;
	p->quic = QUIC_LONG;
	p->cid_len = *s;
	return OK;
}

static __always_inline int parse_l4(void *data, void *data_end, struct packet *p, const volatile struct pping_config *cfg)
{
	__u32 l4off = recall(&p->cursor);
	if (l4off > MAX_L4_OFF)
		return SKIP_MALFORMED;
	__u8 *l4 = data + l4off;
	if (p->proto == IPPROTO_TCP) {
		if ((void *)(l4 + 20) > data_end)
			return SKIP_MALFORMED;
		__u32 hl = (l4[12] >> 4) * 4;
		if (hl < 20)
			return SKIP_MALFORMED;
		p->sport = ((__u16)l4[0] << 8) | l4[1];
		p->dport = ((__u16)l4[2] << 8) | l4[3];
		p->tcp_flags = l4[13];
		p->seq = ((__u32)l4[4] << 24) | ((__u32)l4[5] << 16) | ((__u32)l4[6] << 8) | l4[7];
		p->ack = ((__u32)l4[8] << 24) | ((__u32)l4[9] << 16) | ((__u32)l4[10] << 8) | l4[11];
		__u32 hdrs = p->hdr_len + hl;
		p->payload = p->ip_len > hdrs ? p->ip_len - hdrs : 0;
		/* Headers not all in the frame: ports and flags only, as a capture cut by its snaplen. */
		if ((void *)(l4 + hl) > data_end)
			return OK;
		return parse_tcp_options(l4, data_end, hl, p);
	}
	if (p->proto == IPPROTO_UDP) {
		bool dns = (cfg->flags & PPING_CFG_DNS) != 0;
		bool quic = (cfg->flags & PPING_CFG_QUIC) != 0;
		if (!dns && !quic)
			return SKIP_PROTO;
		if ((void *)(l4 + 8) > data_end)
			return SKIP_MALFORMED;
		__u16 sp = ((__u16)l4[0] << 8) | l4[1];
		__u16 dp = ((__u16)l4[2] << 8) | l4[3];
		p->sport = sp;
		p->dport = dp;
		__u32 hdrs = p->hdr_len + 8;
		p->payload = p->ip_len > hdrs ? p->ip_len - hdrs : 0;
		if (dns && (dp == DNS_PORT || sp == DNS_PORT))
			return parse_dns(l4 + 8, data_end, dp == DNS_PORT ? 1 : 2, p);
		if (!quic)
			return SKIP_PROTO;
		bool qs = quic_port(cfg, sp);
		bool qd = quic_port(cfg, dp);
		if (!qs && !qd)
			return SKIP_PROTO;
		if ((void *)(l4 + 9) > data_end)
			return SKIP_PROTO;
		bool from_server = qs && (!qd || sp < dp);
		if (l4[8] & 0x80)
			return parse_quic_long(l4 + 8, data_end, from_server, p);
		/* A short header: form bit clear, fixed bit set; a datagram that starts with a long
		 * header has no spin bit to use. */
		if (p->payload < QUIC_SHORT_MIN || (l4[8] & 0x40) == 0)
			return SKIP_PROTO;
		p->quic = QUIC_SHORT;
		p->quic_bits = ((l4[8] >> 5) & 1) | (from_server ? QUIC_FROM_SERVER : 0);
		if (!from_server) {
			/* The client's: the destination connection id (whose length the rules know, if
			 * anyone does) is in the bytes that follow. */
			__u32 n = 0;
			for (int i = 0; i < PPING_QUIC_CID_MAX; i++) {
				if ((void *)(l4 + 9 + i + 1) > data_end)
					break;
				p->cid[i] = l4[9 + i];
				n++;
			}
			p->cid_len = n;
		}
		return OK;
	}
	bool v6 = p->family == 6;
	if (p->proto != (v6 ? IPPROTO_ICMPV6_ : IPPROTO_ICMP))
		return SKIP_PROTO;
	if ((void *)(l4 + 8) > data_end)
		return SKIP_MALFORMED;
	__u8 type = l4[0];
	if (type == (v6 ? 128 : 8))
		p->echo = 1;
	else if (type == (v6 ? 129 : 0))
		p->echo = 2;
	else
		return SKIP_PROTO;
	if (l4[1] != 0)
		return SKIP_MALFORMED;
	p->sport = p->dport = ((__u16)l4[4] << 8) | l4[5];
	p->echo_seq = ((__u32)l4[6] << 8) | l4[7];
	__u32 hdrs = p->hdr_len + 8;
	p->payload = p->ip_len > hdrs ? p->ip_len - hdrs : 0;
	return OK;
}

static __always_inline bool is_loopback(const __u8 *a, __u8 family)
{
	if (family == 4)
		return a[0] == 127;
	for (int i = 0; i < 15; i++)
		if (a[i] != 0)
			return false;
	return a[15] == 1;
}

/* Canonical key; returns the packet's direction (0: src is end 0). The addresses are compared as
 * big-endian words (the order of their bytes) and the key is written in 8-byte words (put_addr). */
static __always_inline int make_key(const struct packet *p, struct pping_flow_key *k)
{
	const __u32 *s32 = (const __u32 *)p->src;
	const __u32 *d32 = (const __u32 *)p->dst;
	int src_first = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < 4; i++) {
		__u32 a = bpf_ntohl(s32[i]);
		__u32 b = bpf_ntohl(d32[i]);
		if (a != b) {
			src_first = a < b ? 1 : -1;
			break;
		}
	}
	if (src_first == 0 && p->sport != p->dport)
		src_first = p->sport < p->dport ? 1 : -1;
	/* Both ends the same (an echo to one's own address): requests go one way, replies the other. */
	if (src_first == 0)
		src_first = p->echo == 2 ? -1 : 1;
	int dir = src_first > 0 ? 0 : 1;
	const __u64 *a64 = (const __u64 *)(dir ? p->dst : p->src);
	const __u64 *b64 = (const __u64 *)(dir ? p->src : p->dst);
	__u64 *k64 = (__u64 *)k;
	k64[0] = a64[0];
	k64[1] = a64[1];
	k64[2] = b64[0];
	k64[3] = b64[1];
	/* port[0], port[1], proto, family and the padding, as one word laid out as the struct is. */
	struct pping_flow_key_tail t = {
		.port = { dir ? p->dport : p->sport, dir ? p->sport : p->dport },
		.proto = p->proto,
		.family = p->family,
	};
	__u64 w;
	__builtin_memcpy(&w, &t, 8);
	k64[4] = w;
	return dir;
}

static __always_inline void fill_tuple(struct pping_event *e, const struct pping_flow_key *k, int from)
{
	__builtin_memcpy(e->saddr, k->addr[from & 1], 16);
	__builtin_memcpy(e->daddr, k->addr[(from & 1) ^ 1], 16);
	e->sport = k->port[from & 1];
	e->dport = k->port[(from & 1) ^ 1];
	e->family = k->family;
	e->proto = k->proto;
}

/* A flow event naming the flow as seen from end `from` (it is the event's src). */
static __always_inline void flow_event(const struct pping_flow_key *k, int from, __u64 time, __u8 kind, __u8 reason, __u8 by, __u8 flags)
{
	struct pping_event *e = bpf_ringbuf_reserve(&pping_events, sizeof(*e), 0);
	if (!e) {
		count(PPING_C_EVENTS_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = PPING_EV_FLOW;
	e->time = time;
	e->flow_event = kind;
	e->reason = reason;
	e->by = by;
	e->flags = flags;
	fill_tuple(e, k, from);
	submit(e);
}

/* An RTT sample carried by a packet of direction `echo_dir`: its flow, the timestamped direction's counters. */
static __always_inline void rtt_event(const struct pping_flow_key *k, const struct pping_flow *f, __u32 echo_dir, __u64 now, __u64 rtt, bool egress, __u8 rule)
{
	struct pping_event *e = bpf_ringbuf_reserve(&pping_events, sizeof(*e), 0);
	if (!e) {
		count(PPING_C_EVENTS_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = PPING_EV_RTT;
	e->time = now;
	e->flags = egress ? PPING_EVF_MATCH_ON_EGRESS : 0;
	e->match = rule;
	fill_tuple(e, k, echo_dir);
	/* The timestamped direction's counters: its sent ones in its tally, its received ones in the
	 * echoing direction's. */
	const struct pping_dir *d = &f->d[(echo_dir & 1) ^ 1];
	const struct pping_tally *sent = &f->by[(echo_dir & 1) ^ 1];
	const struct pping_tally *rec = &f->by[echo_dir & 1];
	e->rtt = rtt;
	e->min_rtt = d->min_rtt;
	e->sent_packets = sent->sent_pkts;
	e->sent_bytes = sent->sent_bytes;
	e->rec_packets = rec->rec_pkts;
	e->rec_bytes = rec->rec_bytes;
	submit(e);
}

static __always_inline bool dir_active(const struct pping_dir *d)
{
	return d->state == PPING_DIR_WAITOPEN || d->state == PPING_DIR_OPEN;
}

/*
 * What a packet identifies, one function per protocol (src/pping/identify.ts has the same ones):
 * each fills struct pping_ids, or returns false when the rules have nothing to use in the packet.
 */

/* TCP by its timestamp option: TSval is the identifier, TSecr the echo (RFC 7323). */
static __always_inline bool identify_tcp_ts(struct packet *pk, const volatile struct pping_config *cfg, struct pping_ids *ids)
{
	__u8 fl = pk->tcp_flags;
	/* Without the option there is no identifier; SYNs are left out unless asked for. */
	if (!pk->has_ts || ((fl & TCP_SYN) && !(cfg->flags & PPING_CFG_INCLUDE_SYN)))
		return false;
	ids->id = pk->tsval;
	ids->echoed = pk->tsecr;
	ids->id_valid = pk->payload > 0 || (fl & TCP_SYN);
	ids->echo_valid = (fl & TCP_ACK) != 0;
	ids->wait_edge = !(fl & TCP_SYN);
	ids->echo_on_edge = 0;
	ids->closing = (fl & TCP_RST) ? PPING_R_RST : (fl & TCP_FIN) ? PPING_R_FIN : 0;
	ids->open_reason = (fl & TCP_SYN) ? ((fl & TCP_ACK) ? PPING_R_SYN_ACK : PPING_R_SYN) : PPING_R_FIRST;
	ids->newer = PPING_NEWER_WRAP;
	ids->rule = PPING_RULE_TSOPT;
	return true;
}

/* TCP without the timestamp option, by sequence numbers: the identifier is the acknowledgment
 * number that covers the segment exactly (SYN and FIN count one), the echo an ACK's number. */
static __always_inline bool identify_tcp_seqack(struct packet *pk, const volatile struct pping_config *cfg, struct pping_ids *ids)
{
	__u8 fl = pk->tcp_flags;
	if ((fl & TCP_SYN) && !(cfg->flags & PPING_CFG_INCLUDE_SYN))
		return false;
	ids->id = pk->seq + pk->payload + ((fl & TCP_SYN) ? 1 : 0) + ((fl & TCP_FIN) ? 1 : 0);
	ids->echoed = pk->ack;
	ids->id_valid = pk->payload > 0 || (fl & TCP_SYN);
	ids->echo_valid = (fl & TCP_ACK) != 0;
	ids->wait_edge = 0;
	ids->echo_on_edge = 0;
	ids->closing = (fl & TCP_RST) ? PPING_R_RST : (fl & TCP_FIN) ? PPING_R_FIN : 0;
	ids->open_reason = (fl & TCP_SYN) ? ((fl & TCP_ACK) ? PPING_R_SYN_ACK : PPING_R_SYN) : PPING_R_FIRST;
	ids->newer = PPING_NEWER_WRAP;
	ids->rule = PPING_RULE_SEQACK;
	return true;
}

/* ICMP and ICMPv6 echo: the request's sequence is the identifier, the reply's the echo. */
static __always_inline bool identify_icmp_echo(struct packet *pk, const volatile struct pping_config *cfg, struct pping_ids *ids)
{
	ids->id = ids->echoed = pk->echo_seq;
	ids->id_valid = pk->echo == 1;
	ids->echo_valid = pk->echo == 2;
	ids->wait_edge = 0;
	ids->echo_on_edge = 0;
	ids->closing = 0;
	ids->open_reason = PPING_R_FIRST;
	ids->newer = PPING_NEWER_DIFFERENT;
	ids->rule = PPING_RULE_ECHO;
	return true;
}

/* DNS over UDP: a query's id and question is the identifier, the response's the echo. */
static __always_inline bool identify_dns(struct packet *pk, const volatile struct pping_config *cfg, struct pping_ids *ids)
{
	ids->id = ids->echoed = pk->dns_id;
	ids->id_valid = pk->dns == 1;
	ids->echo_valid = pk->dns == 2;
	ids->wait_edge = 0;
	ids->echo_on_edge = 0;
	ids->closing = 0;
	ids->open_reason = PPING_R_FIRST;
	ids->newer = PPING_NEWER_DIFFERENT;
	ids->rule = PPING_RULE_DNS;
	return true;
}

/* QUIC by the latency spin bit of short-header packets: each direction's edges are its
 * identifiers (the value it turned to); an edge echoes the other direction's last edge, a
 * server's to the same value, a client's to the opposite one (RFC 9000 §17.4). */
static __always_inline bool identify_quic_spin(struct packet *pk, const volatile struct pping_config *cfg, struct pping_ids *ids)
{
	__u32 spin = pk->quic_bits & QUIC_SPIN;
	ids->id = spin;
	ids->echoed = (pk->quic_bits & QUIC_FROM_SERVER) ? spin : spin ^ 1;
	ids->id_valid = 1;
	ids->echo_valid = 1;
	ids->wait_edge = 1;
	ids->echo_on_edge = 1;
	ids->closing = 0;
	ids->open_reason = PPING_R_FIRST;
	ids->newer = PPING_NEWER_DIFFERENT;
	ids->rule = PPING_RULE_SPIN;
	return true;
}

/* The packet's identifier by its protocol (the parser has passed only TCP, ICMP echo, DNS and
 * QUIC short headers). */
static __always_inline bool identify(struct packet *pk, const volatile struct pping_config *cfg, struct pping_ids *ids)
{
	if (pk->proto == IPPROTO_UDP)
		return pk->quic ? identify_quic_spin(pk, cfg, ids) : identify_dns(pk, cfg, ids);
	if (pk->proto != IPPROTO_TCP)
		return identify_icmp_echo(pk, cfg, ids);
	if (pk->has_ts || !(cfg->flags & PPING_CFG_SEQACK))
		return identify_tcp_ts(pk, cfg, ids);
	return identify_tcp_seqack(pk, cfg, ids);
}

/*
 * The rules read the packet's facts from the per-CPU scratch (map memory, which the verifier does
 * not track). What every packet runs (the flow lookup, both directions' bookkeeping) is inlined;
 * what few packets reach (a timestamp, a match, a close) is a subprogram, verified once per call
 * site instead of once per combination of flags: the whole object verifies in well under a second.
 */

/* Timestamps the packet's own identifier, when the rules allow (its direction is active). */
static __noinline void stamp_packet(struct scratch *sc, const volatile struct pping_config *cfg, struct pping_flow *f)
{
	struct pping_dir *d = &f->d[sc->dir & 1];
	__u32 id = sc->ids.id;
	if (d->stamped || sc->ids.wait_edge) {
		bool fresh = sc->ids.newer == PPING_NEWER_WRAP ? (__s32)(id - d->last_id) > 0 : id != d->last_id;
		if (!fresh) {
			/* An identifier older than one already seen (TCP): reordering or a retransmission;
			 * --burst lets the next few bypass the rate limit. */
			if (cfg->burst && sc->ids.newer == PPING_NEWER_WRAP && (__s32)(d->last_id - id) > 0)
				d->credits = cfg->burst;
			/* SEQ/ACK: a segment sent again (or reordered): nothing sent up to here gives a sample. */
			if (sc->ids.rule == PPING_RULE_SEQACK) {
				d->barrier = d->last_id;
				d->has_barrier = 1;
			}
			/* DNS: a query sent again: its first copy's timestamp goes too. */
			if (sc->ids.rule == PPING_RULE_DNS) {
				struct pping_stamp_key again = { .conn_id = f->conn_id, .dir = sc->dir & 1, .id = id };
				struct pping_stamp *old = bpf_map_lookup_elem(&pping_stamps, &again);
				__u32 was_one_way = old ? old->one_way : 0;
				if (old && bpf_map_delete_elem(&pping_stamps, &again) == 0) {
					__sync_fetch_and_add(&d->outstanding, -1);
					if (was_one_way)
						one_way_add(-1);
					count(PPING_C_RETRANSMIT_SKIPPED);
				}
			}
			return;
		}
	}
	d->last_id = id;

	__u64 now = now_of(sc);
	if (d->stamped) {
		__u64 gap = cfg->rate_limit_ns;
		if (cfg->rtt_rate_milli) {
			__u64 rtt = (cfg->flags & PPING_CFG_RTT_MIN) ? d->min_rtt : d->srtt;
			if (rtt)
				gap = rtt * cfg->rtt_rate_milli / 1000;
		}
		if (now < d->last_stamp || now - d->last_stamp < gap) {
			if (!d->credits)
				return;
			d->credits--;
			count(PPING_C_BURST);
		}
	}
	/* The attempt counts even when the map is full (as in ePPing: fairer to sparse flows). */
	d->stamped = 1;
	d->last_stamp = now;
	__u64 life = STAMP_MAX_LIFETIME;
	if (d->min_rtt) {
		life = d->min_rtt * STAMP_RTT_LIFETIMES;
		if (life < STAMP_MIN_LIFETIME)
			life = STAMP_MIN_LIFETIME;
		if (life > STAMP_MAX_LIFETIME)
			life = STAMP_MAX_LIFETIME;
	}
	__u32 one_way = d->state == PPING_DIR_WAITOPEN;
	if (one_way) {
		__u32 zero = 0;
		__u64 *held = bpf_map_lookup_elem(&pping_one_way, &zero);
		if (held && *held >= cfg->one_way_limit) {
			count(PPING_C_ONE_WAY_REFUSED);
			return;
		}
	}
	struct pping_stamp_key sk = { .conn_id = f->conn_id, .dir = sc->dir & 1, .id = id };
	struct pping_stamp sv = { .time = now, .deadline = now + life, .one_way = one_way };
	long err = bpf_map_update_elem(&pping_stamps, &sk, &sv, BPF_NOEXIST);
	if (err == 0) {
		__sync_fetch_and_add(&d->outstanding, 1);
		if (one_way)
			one_way_add(1);
		count(PPING_C_STAMPED);
	}
	else if (err != -17 /* EEXIST */)
		count(PPING_C_STAMP_FULL);
}

/* Matches the packet's echo of the reverse direction's identifier (that direction is active): an RTT sample. */
static __noinline void match_packet(struct scratch *sc, struct pping_flow *f)
{
	__u32 sent = (sc->dir & 1) ^ 1;
	struct pping_dir *rd = &f->d[sent];
	/* Nothing stored that way: no lookup (most ACKs of a sampled flow, every packet of a flow whose
	 * other end sends no data). */
	if (!rd->outstanding)
		return;
	struct pping_stamp_key sk = { .conn_id = f->conn_id, .dir = sent, .id = sc->ids.echoed };
	struct pping_stamp *s = bpf_map_lookup_elem(&pping_stamps, &sk);
	if (!s)
		return;
	__u64 now = now_of(sc);
	if (now < s->time)
		return;
	__u64 t0 = s->time;
	__u32 was_one_way = s->one_way;
	/* Only the CPU that removes the entry reports it. */
	if (bpf_map_delete_elem(&pping_stamps, &sk) != 0)
		return;
	__sync_fetch_and_add(&rd->outstanding, -1);
	if (was_one_way)
		one_way_add(-1);
	if (sc->ids.rule == PPING_RULE_SEQACK && rd->has_barrier && (__s32)(sc->ids.echoed - rd->barrier) <= 0) {
		count(PPING_C_RETRANSMIT_SKIPPED);
		return;
	}
	__u64 rtt = now - t0;
	if (!rd->min_rtt || rtt < rd->min_rtt)
		rd->min_rtt = rtt;
	/* The kernel's smoothing: 7/8 of the old value plus 1/8 of the sample, in integers. */
	rd->srtt = rd->srtt ? rd->srtt - (rd->srtt >> 3) + (rtt >> 3) : rtt;
	count(PPING_C_RTTS);
	rtt_event(&sc->key, f, sc->dir & 1, now, rtt, sc->egress, sc->ids.rule);
}

/* The flow of the packet in the scratch: found, or created by a packet that can be timestamped. */
static __always_inline struct pping_flow *flow_of(struct scratch *sc)
{
	struct pping_flow *f = bpf_map_lookup_elem(&pping_flows, &sc->key);
	if (f)
		return f;
	/* Only a packet that can be timestamped opens state; a closing one never does. */
	if (!sc->ids.id_valid || sc->ids.closing)
		return NULL;
	struct pping_flow *nf = &sc->nf;
	__builtin_memset(nf, 0, sizeof(*nf));
	nf->conn_id = __sync_fetch_and_add(&pping_next_conn, 1) + 1;
	long err = bpf_map_update_elem(&pping_flows, &sc->key, nf, BPF_NOEXIST);
	f = bpf_map_lookup_elem(&pping_flows, &sc->key);
	if (err == 0)
		count(PPING_C_FLOWS_OPENED);
	else if (!f)
		count(PPING_C_FLOW_FULL);
	return f;
}

/* A long header from a QUIC server: the length of the connection ids it chose for itself. */
static __noinline void quic_learn(struct packet *pk)
{
	struct pping_quic_server s = {};
	__builtin_memcpy(s.addr, pk->src, 16);
	s.port = pk->sport;
	s.family = pk->family;
	__u32 len = pk->cid_len;
	bpf_map_update_elem(&pping_quic_servers, &s, &len, BPF_ANY);
}

/* Swaps n bytes (a multiple of 8) at a and b. */
static __always_inline void swap64(void *a, void *b, __u32 n)
{
	__u64 *x = a;
	__u64 *y = b;
#pragma clang loop unroll(full)
	for (__u32 i = 0; i < n / 8; i++) {
		__u64 t = x[i];
		x[i] = y[i];
		y[i] = t;
	}
}

/* The spin-bit timestamps of connection conn (identifiers 0 and 1, both directions) change
 * direction: its flow's key put its ends the other way round. */
static __always_inline void quic_flip_stamps(struct scratch *sc, __u32 conn)
{
#pragma clang loop unroll(full)
	for (int k = 0; k < 4; k++) {
		struct pping_stamp_key *key = &sc->skey[k];
		key->conn_id = conn;
		key->dir = k >> 1;
		key->id = k & 1;
		struct pping_stamp *v = bpf_map_lookup_elem(&pping_stamps, key);
		if (v) {
			sc->sval[k] = *v;
			bpf_map_delete_elem(&pping_stamps, key);
		} else {
			key->conn_id = 0;
		}
	}
#pragma clang loop unroll(full)
	for (int k = 0; k < 4; k++) {
		if (!sc->skey[k].conn_id)
			continue;
		sc->skey[k].dir ^= 1;
		bpf_map_update_elem(&pping_stamps, &sc->skey[k], &sc->sval[k], BPF_ANY);
	}
}

/* A QUIC client's short header: the server connection id it carries, when its length is known and
 * the packet holds it whole (sc->quic_len, sc->qkey). On addresses and ports with no flow, a flow
 * that still holds that id's connection moves here (a NAT rebinding), state and all; quic.ts's
 * QuicIds.follow does the same. */
static __noinline void quic_follow(struct scratch *sc)
{
	struct packet *pk = &sc->p;
	struct pping_quic_cid_key *q = &sc->qkey;
	struct pping_quic_server s = {};
	__builtin_memcpy(s.addr, pk->dst, 16);
	s.port = pk->dport;
	s.family = pk->family;
	__u32 *lenp = bpf_map_lookup_elem(&pping_quic_servers, &s);
	if (!lenp)
		return;
	__u32 len = *lenp;
	if (len > pk->cid_len || len > PPING_QUIC_CID_MAX)
		return;
	__builtin_memcpy(q->addr, pk->dst, 16);
	q->port = pk->dport;
	q->family = pk->family;
	q->len = len;
#pragma clang loop unroll(full)
	for (__u32 i = 0; i < PPING_QUIC_CID_MAX; i++)
		q->cid[i] = i < len ? pk->cid[i] : 0;
	sc->quic_len = len + 1;
	if (bpf_map_lookup_elem(&pping_flows, &sc->key))
		return;
	struct pping_quic_conn *c = bpf_map_lookup_elem(&pping_quic_cids, q);
	if (!c)
		return;
	struct pping_flow *old = bpf_map_lookup_elem(&pping_flows, &c->flow);
	if (!old || old->conn_id != c->conn_id)
		return;
	struct pping_flow *nf = &sc->nf;
	__builtin_memcpy(nf, old, sizeof(*nf));
	__u32 dir = sc->dir & 1;
	bpf_map_delete_elem(&pping_flows, &c->flow);
	bool flip = c->client_end != dir;
	if (flip) {
		swap64(&nf->d[0], &nf->d[1], sizeof(nf->d[0]));
		swap64(&nf->by[0], &nf->by[1], sizeof(nf->by[0]));
	}
	if (bpf_map_update_elem(&pping_flows, &sc->key, nf, BPF_NOEXIST))
		return;
	if (flip)
		quic_flip_stamps(sc, nf->conn_id);
	__builtin_memcpy(&c->flow, &sc->key, sizeof(c->flow));
	c->client_end = dir;
	count(PPING_C_QUIC_MOVED);
}

/* After quic_follow, on the packet's flow: the id is remembered with it, and where to find it. */
static __noinline void quic_note(struct scratch *sc, struct pping_flow *f)
{
	__u32 ql = sc->quic_len;
	if (!ql)
		return;
	bool same = f->quic_cid_len == ql;
#pragma clang loop unroll(full)
	for (int i = 0; i < PPING_QUIC_CID_MAX; i++)
		same = same && f->quic_cid[i] == sc->qkey.cid[i];
	if (same)
		return;
	f->quic_cid_len = ql;
	__builtin_memcpy(f->quic_cid, sc->qkey.cid, PPING_QUIC_CID_MAX);
	struct pping_quic_conn *c = &sc->qconn;
	__builtin_memcpy(&c->flow, &sc->key, sizeof(c->flow));
	c->conn_id = f->conn_id;
	c->client_end = sc->dir & 1;
	bpf_map_update_elem(&pping_quic_cids, &sc->qkey, c, BPF_ANY);
}

/* FIN closes the packet's direction, RST both; a flow with no active direction goes. */
static __noinline void close_flow(struct scratch *sc, struct pping_flow *f)
{
	__u32 dir = sc->dir & 1;
	struct pping_dir *d = &f->d[dir];
	struct pping_dir *r = &f->d[dir ^ 1];
	bool was0 = dir_active(&f->d[0]);
	bool was1 = dir_active(&f->d[1]);
	if (d->state == PPING_DIR_OPEN)
		flow_event(&sc->key, dir ^ 1, now_of(sc), PPING_FLOW_CLOSING, sc->ids.closing, PPING_BY_DEST, 0);
	d->state = PPING_DIR_CLOSED;
	if (sc->ids.closing == PPING_R_RST) {
		if (r->state == PPING_DIR_OPEN)
			flow_event(&sc->key, dir, now_of(sc), PPING_FLOW_CLOSING, PPING_R_RST, PPING_BY_SRC, 0);
		r->state = PPING_DIR_CLOSED;
	}
	if (dir_active(d) || dir_active(r))
		return;
	/* A flow that goes with one direction only seen (each direction counts the other's packets
	 * as received): reported as it goes, from the silent end, as matcher.ts does. */
	if (!f->by[0].rec_pkts && !f->by[1].rec_pkts) {
		count(PPING_C_ONE_WAY_FLOWS);
		if (was0)
			flow_event(&sc->key, 1, now_of(sc), PPING_FLOW_CLOSING, sc->ids.closing, PPING_BY_SRC, PPING_EVF_ONE_WAY);
		if (was1)
			flow_event(&sc->key, 0, now_of(sc), PPING_FLOW_CLOSING, sc->ids.closing, PPING_BY_SRC, PPING_EVF_ONE_WAY);
	}
	bpf_map_delete_elem(&pping_flows, &sc->key);
}

/* Both directions' part of the packet, once its flow is known. */
static __always_inline void apply_rules(struct scratch *sc, const volatile struct pping_config *cfg, struct pping_flow *f)
{
	__u32 dir = sc->dir & 1;
	struct pping_dir *d = &f->d[dir];
	struct pping_dir *r = &f->d[dir ^ 1];
	struct packet *pk = &sc->p;
	/* An edge: the identifier differs from the direction's last (known before this packet). */
	bool edge = d->state != PPING_DIR_EMPTY && sc->ids.id != d->last_id;

	/* The packet's own direction: opened by its first packet that can be timestamped. */
	if (d->state == PPING_DIR_EMPTY && sc->ids.id_valid) {
		d->state = PPING_DIR_WAITOPEN;
		d->last_stamp = now_of(sc);
		d->last_id = sc->ids.id;
		d->stamped = 0;
		d->open_reason = sc->ids.open_reason;
	}
	if (dir_active(d)) {
		f->by[dir].sent_pkts++;
		f->by[dir].sent_bytes += pk->payload;
		if (sc->ids.id_valid)
			stamp_packet(sc, cfg, f);
	}

	/* The reverse direction: this packet is its reply. */
	if (dir_active(r)) {
		if (r->state == PPING_DIR_WAITOPEN && sc->ids.closing != PPING_R_RST) {
			r->state = PPING_DIR_OPEN;
			flow_event(&sc->key, dir, r->last_stamp, PPING_FLOW_OPENING, r->open_reason, PPING_BY_DEST, 0);
		}
		f->by[dir].rec_pkts++;
		f->by[dir].rec_bytes += pk->payload;
		if (sc->ids.echo_valid && (edge || !sc->ids.echo_on_edge))
			match_packet(sc, f);
	}
}

static __noinline int pping(void *data, void *data_end, __u16 l3proto, bool egress, __u64 tstamp)
{
	__u32 zero = 0;
	const volatile struct pping_config *cfg = &pping_cfg;
	struct scratch *sc = bpf_map_lookup_elem(&pping_scratch, &zero);
	if (!sc)
		return 0;
	count(PPING_C_SEEN);

	struct packet *pk = &sc->p;
	/* What the parsers may leave unwritten on the way to OK: the rest is always written there
	 * (the addresses whole, by put_addr), and an 88-byte memset per packet showed in its cost. */
	pk->tcp_flags = pk->has_ts = pk->echo = pk->dns = pk->quic = pk->quic_bits = pk->cid_len = 0;
	pk->payload = 0;
	int r = parse_link(data, data_end, l3proto, (cfg->flags & PPING_CFG_L3) != 0, pk);
	if (r == OK)
		r = parse_ip(data, data_end, pk);
	if (r == OK)
		r = parse_l4(data, data_end, pk, cfg);
	if (r != OK) {
		count(r == SKIP_NOT_IP ? PPING_C_NOT_IP : r == SKIP_PROTO ? PPING_C_OTHER_PROTO : r == SKIP_FRAGMENT ? PPING_C_FRAGMENT : PPING_C_MALFORMED);
		return 0;
	}
	bool tcp = pk->proto == IPPROTO_TCP;
	if (!(cfg->flags & (tcp ? PPING_CFG_TCP : pk->proto == IPPROTO_UDP ? (pk->quic ? PPING_CFG_QUIC : PPING_CFG_DNS) : PPING_CFG_ICMP)))
		return 0;
	if (!(cfg->flags & PPING_CFG_INCLUDE_LOCAL) && is_loopback(pk->src, pk->family) && is_loopback(pk->dst, pk->family))
		return 0;
	count(PPING_C_CONSIDERED);
	if (pk->quic == QUIC_LONG) {
		quic_learn(pk);
		return 0;
	}
	if (!identify(pk, cfg, &sc->ids))
		return 0;
	sc->now = 0;
	sc->tstamp = tstamp;
	sc->egress = egress;
	sc->dir = make_key(pk, &sc->key);

	/* A QUIC client's packet: its flow may have been elsewhere before a NAT rebinding. */
	bool client = pk->quic == QUIC_SHORT && !(pk->quic_bits & QUIC_FROM_SERVER);
	sc->quic_len = 0;
	if (client)
		quic_follow(sc);
	struct pping_flow *f = flow_of(sc);
	if (!f)
		return 0;
	if (client)
		quic_note(sc, f);
	apply_rules(sc, cfg, f);
	if (sc->ids.closing)
		close_flow(sc, f);
	return 0;
}

SEC("tc")
int pping_tc_egress(struct __sk_buff *skb)
{
	pping((void *)(long)skb->data, (void *)(long)skb->data_end, bpf_ntohs(skb->protocol), true, skb->tstamp);
	return PASS_ON;
}

SEC("tc")
int pping_tc_ingress(struct __sk_buff *skb)
{
	pping((void *)(long)skb->data, (void *)(long)skb->data_end, bpf_ntohs(skb->protocol), false, skb->tstamp);
	return PASS_ON;
}

SEC("xdp")
int pping_xdp_ingress(struct xdp_md *ctx)
{
	/* XDP has no protocol field: on an L3 device the version nibble says which IP it is. */
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u16 l3proto = ETH_P_IP;
	if (data + 1 <= data_end && (*(__u8 *)data >> 4) == 6)
		l3proto = ETH_P_IPV6;
	pping(data, data_end, l3proto, false, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
