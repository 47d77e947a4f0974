// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * `pathlens trace --bpf`: the probes' correlation in the kernel. Two netfilter programs in the
 * probing namespace, one set of maps:
 *
 *  - tr_out (POST_ROUTING, the last hook before the device): a packet from the probing socket
 *    (its protocol, its source port or echo id, the run's cookie in its payload) is a probe. Its
 *    identity on the wire (destination, port or echo sequence, and the cookie's seq when flows
 *    share ports) keys an LRU map entry holding the send time, the seq and the TTL it left with.
 *  - tr_in (PRE_ROUTING, the first hook after the device): an ICMP/ICMPv6 error quoting such a
 *    probe, an echo reply to it, or a datagram from the target to the socket's port is a reply.
 *    Its probe is looked up by the same identity; the reply goes to user space through the ring
 *    buffer with both times (and the packet's own receive timestamp, the one a socket reads), the
 *    probe's seq (or -1) and its first TR_CAP bytes, and its RTT
 *    counts in its TTL's log2 histogram (first answer only).
 *
 * User space decodes the bytes with the parsers the raw sockets use and checks the cookie: the
 * kernel picks out, times and correlates; what a reply means is still decided in TypeScript.
 * The probing socket itself reads nothing (no IP_RECVERR, a socket filter that takes nothing), so
 * a probe costs its share of one sendmmsg and a reply no system call at all.
 *
 * Times are TAI (bpf_ktime_get_tai_ns: CLOCK_REALTIME plus the leap seconds, so user space has one
 * fixed offset to subtract, where the monotonic clock would drift from the realtime one).
 * Packet bytes are read with bpf_dynptr_from_skb (paged data too); the program accepts every
 * packet (NF_ACCEPT): it only watches.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "trace.h"

struct net_device {
	int ifindex;
} __attribute__((preserve_access_index));
struct nf_hook_state {
	struct net_device *in;
} __attribute__((preserve_access_index));
struct sk_buff {
	unsigned int len;
	__s64 tstamp;
} __attribute__((preserve_access_index));
struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
};

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym;

const volatile struct tr_config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096); /* resized by user space to the run's probe budget */
	__type(key, struct tr_key);
	__type(value, struct tr_probe);
} tr_probes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} tr_events SEC(".maps");

/* Ring-buffer records have no map value type: this keeps struct tr_event in the object's BTF, which
 * the layout test reads. */
struct tr_event *tr_event_btf __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TR_NUM);
	__type(key, __u32);
	__type(value, __u64);
} tr_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TR_TTLS);
	__type(key, __u32);
	__type(value, struct tr_hist);
} tr_hist SEC(".maps");

/* The first bytes of a packet, to parse; indices are masked into it. */
#define HDR 256
struct scratch {
	__u8 b[HDR];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} tr_scratch SEC(".maps");

#define B(i) (sc->b[(i) & (HDR - 1)])

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&tr_counters, &c);
	if (v)
		*v += 1;
}

static __always_inline __u16 be16(struct scratch *sc, __u32 i)
{
	return ((__u16)B(i) << 8) | B(i + 1);
}

static __always_inline __u32 be32(struct scratch *sc, __u32 i)
{
	return ((__u32)B(i) << 24) | ((__u32)B(i + 1) << 16) | ((__u32)B(i + 2) << 8) | B(i + 3);
}

static __always_inline void addr_of(struct scratch *sc, __u32 at, __u8 family, __u8 *out)
{
	if (family == 4) {
		for (int i = 0; i < 4; i++)
			out[i] = B(at + i);
	} else {
		for (int i = 0; i < 16; i++)
			out[i] = B(at + i);
	}
}

/* Reads the packet's first min(len, HDR) bytes into the scratch; returns how many, or 0. */
static __always_inline __u32 load(struct bpf_nf_ctx *ctx, struct bpf_dynptr *p, struct scratch *sc)
{
	__u32 len = BPF_CORE_READ(ctx->skb, len);
	if (len < 28)
		return 0;
	if (bpf_dynptr_from_skb((struct __sk_buff *)ctx->skb, 0, p))
		return 0;
	__u32 n = len < HDR ? len : HDR;
	if (bpf_dynptr_read(sc->b, n, p, 0, 0))
		return 0;
	return n;
}

/* The cookie at `at` (with `have` bytes captured) is this run's: its seq in *seq. */
static __always_inline bool our_cookie(struct scratch *sc, __u32 at, __u32 have, __u32 *seq)
{
	if (at + 12 > have)
		return false;
	if (be32(sc, at) != cfg.magic || be32(sc, at + 4) != cfg.session)
		return false;
	*seq = be32(sc, at + 8);
	return true;
}

/* IP header at 0: its version must be the run's; header length, protocol, TTL, addresses' offsets. */
struct ip_view {
	__u32 hlen;
	__u32 src;
	__u32 dst;
	__u8 proto;
	__u8 ttl;
};

static __always_inline bool ip_at(struct scratch *sc, __u32 at, __u32 have, struct ip_view *v)
{
	if (cfg.family == 4) {
		if (at + 20 > have || (B(at) >> 4) != 4)
			return false;
		v->hlen = (B(at) & 0xf) * 4;
		if (v->hlen < 20)
			return false;
		v->proto = B(at + 9);
		v->ttl = B(at + 8);
		v->src = at + 12;
		v->dst = at + 16;
	} else {
		if (at + 40 > have || (B(at) >> 4) != 6)
			return false;
		v->hlen = 40; /* probes carry no extension headers; replies with them are not parsed here */
		v->proto = B(at + 6);
		v->ttl = B(at + 7);
		v->src = at + 8;
		v->dst = at + 24;
	}
	return true;
}

/* A probe's own L4 header at `l4` (sent, or quoted back): from this socket's port or echo id? Its
 * identity (destination port, echo sequence) in *id. */
static __always_inline bool our_probe(struct scratch *sc, __u32 l4, __u16 *id)
{
	if (cfg.proto == 17) {
		if (be16(sc, l4) != cfg.sport)
			return false;
		*id = be16(sc, l4 + 2);
		return true;
	}
	if (B(l4) != (cfg.family == 4 ? 8 : 128) || be16(sc, l4 + 4) != cfg.sport)
		return false;
	*id = be16(sc, l4 + 6);
	return true;
}

/* The scratch with the packet's first bytes, its IP header parsed into *ip; NULL for a packet
 * too short, of the other family, or with an IP header beyond 60 bytes. */
static __always_inline struct scratch *begin(struct bpf_nf_ctx *ctx, struct bpf_dynptr *p, struct ip_view *ip, __u32 *have)
{
	__u32 zero = 0;
	struct scratch *sc = bpf_map_lookup_elem(&tr_scratch, &zero);
	if (!sc)
		return NULL;
	*have = load(ctx, p, sc);
	if (!*have || !ip_at(sc, 0, *have, ip) || ip->hlen > 60)
		return NULL;
	return sc;
}

/* ---- sends --------------------------------------------------------------------------------- */

SEC("netfilter")
int tr_out(struct bpf_nf_ctx *ctx)
{
	struct bpf_dynptr p;
	struct ip_view ip;
	__u32 have;
	struct scratch *sc = begin(ctx, &p, &ip, &have);
	if (!sc || ip.proto != cfg.proto)
		return 1;
	__u32 l4 = ip.hlen;
	struct tr_key k = {};
	if (!our_probe(sc, l4, &k.id))
		return 1;
	__u32 seq;
	if (!our_cookie(sc, l4 + 8, have, &seq))
		return 1;
	addr_of(sc, ip.dst, cfg.family, k.daddr);
	if (cfg.by_cookie)
		k.seq = seq;
	struct tr_probe v = { .tx_ns = bpf_ktime_get_tai_ns(), .seq = seq, .ttl = ip.ttl };
	if (bpf_map_update_elem(&tr_probes, &k, &v, BPF_ANY))
		count(TR_MAP_FULL);
	else
		count(TR_SENT);
	return 1;
}

/* ---- replies ------------------------------------------------------------------------------- */

static __always_inline __u32 log2_us(__u64 ns)
{
	__u64 us = ns / 1000;
	__u32 b = 0;
	for (int i = 0; i < TR_BUCKETS - 1; i++) {
		if (us == 0)
			break;
		us >>= 1;
		b++;
	}
	return b;
}

SEC("netfilter")
int tr_in(struct bpf_nf_ctx *ctx)
{
	__u64 now = bpf_ktime_get_tai_ns();
	struct bpf_dynptr p;
	struct ip_view ip;
	__u32 have;
	struct scratch *sc = begin(ctx, &p, &ip, &have);
	if (!sc)
		return 1;
	__u32 o = ip.hlen;
	struct tr_key k = {};
	__u32 cookie = 0;   /* where the probe's cookie would be, 0: nowhere */
	__u8 icmp = cfg.family == 4 ? 1 : 58;
	if (ip.proto == icmp) {
		__u8 type = B(o);
		bool echo_reply = cfg.family == 4 ? type == 0 : type == 129;
		bool error = cfg.family == 4 ? (type == 3 || type == 11 || type == 12) : (type >= 1 && type <= 4);
		if (echo_reply) {
			if (cfg.proto == 17 || be16(sc, o + 4) != cfg.sport)
				return 1;
			addr_of(sc, ip.src, cfg.family, k.daddr);
			k.id = be16(sc, o + 6);
			cookie = o + 8;
		} else if (error) {
			struct ip_view in;
			if (!ip_at(sc, o + 8, have, &in) || in.proto != cfg.proto || in.hlen > 60)
				return 1;
			__u32 q = o + 8 + in.hlen;
			if (q + 8 > have || !our_probe(sc, q, &k.id))
				return 1;
			addr_of(sc, in.dst, cfg.family, k.daddr);
			cookie = q + 8;
		} else {
			return 1;
		}
	} else if (ip.proto == 17 && cfg.proto == 17) {
		/* A datagram from a UDP service at the target: its source port is the probe's port. */
		if (o + 8 > have || be16(sc, o + 2) != cfg.sport)
			return 1;
		addr_of(sc, ip.src, cfg.family, k.daddr);
		k.id = be16(sc, o);
	} else {
		return 1;
	}

	__s32 seq = -1;
	__u64 tx = 0;
	__u32 cseq = 0;
	bool quoted = cookie && our_cookie(sc, cookie, have, &cseq);
	if (!cfg.by_cookie || quoted) {
		if (cfg.by_cookie)
			k.seq = cseq;
		struct tr_probe *v = bpf_map_lookup_elem(&tr_probes, &k);
		if (v) {
			seq = v->seq;
			tx = v->tx_ns;
			if (!v->answered) {
				v->answered = 1;
				__u32 ttl = v->ttl;
				struct tr_hist *h = bpf_map_lookup_elem(&tr_hist, &ttl);
				__u32 b = log2_us(now - tx);
				if (h && b < TR_BUCKETS)
					__sync_fetch_and_add(&h->b[b], 1);
			}
		}
	}
	count(seq >= 0 ? TR_MATCHED : TR_UNMATCHED);

	struct tr_event *e = bpf_ringbuf_reserve(&tr_events, sizeof(*e), 0);
	if (!e) {
		count(TR_RING_FULL);
		return 1;
	}
	__u32 len = BPF_CORE_READ(ctx->skb, len);
	__u32 n = len < TR_CAP ? len : TR_CAP;
	e->rx_ns = now;
	e->tx_ns = tx;
	e->rx_stamp = BPF_CORE_READ(ctx->skb, tstamp);
	e->seq = seq;
	e->ifindex = BPF_CORE_READ(ctx->state, in, ifindex);
	e->wire_len = len > 0xffff ? 0xffff : len;
	e->family = cfg.family;
	e->pad[0] = e->pad[1] = e->pad[2] = 0;
	if (bpf_dynptr_read(e->pkt, n, &p, 0, 0))
		n = 0;
	e->len = n;
	bpf_ringbuf_submit(e, 0);
	return 1;
}

/* The probing socket's filter: it keeps nothing (the answers reach user space through the ring). */
SEC("socket")
int tr_sock_drop(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
