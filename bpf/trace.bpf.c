// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * `pathlens trace --bpf`: the probes' correlation in the kernel. Two netfilter programs in the
 * probing namespace (one object per namespace and family), shared by every probing socket of a run
 * (a trace's rounds, a run's targets): each socket is a key of tr_socks (its protocol and its port
 * or echo id) holding its cookie session and its counts.
 *
 *  - tr_out (POST_ROUTING, the last hook before the device): a packet from a probing socket with
 *    its run's cookie in its payload is a probe. Its identity on the wire (destination, socket,
 *    port or echo sequence, and the cookie's seq when flows share ports) keys an LRU map entry
 *    holding the send time, the seq and the TTL it left with.
 *  - tr_in (PRE_ROUTING, the first hook after the device): an ICMP/ICMPv6 error quoting such a
 *    probe, an echo reply to it, or a datagram from a target to a socket's port is a reply. Its
 *    probe is looked up by the same identity; the reply goes to user space through the ring buffer
 *    with both times (and the packet's own receive timestamp, the one a socket reads), its socket,
 *    the probe's seq (or -1) and its first TR_CAP bytes; its RTT counts in the socket's TTL's log2
 *    histogram (first answer only). The reader is woken when it can act (a TTL's answers all in,
 *    the end of the path, anything unmatched), not at every reply.
 *
 * User space decodes the bytes with the parsers the raw sockets use and checks the cookie: the
 * kernel picks out, times and correlates; what a reply means is still decided in TypeScript.
 * A probing socket itself reads nothing (no IP_RECVERR, a socket filter that takes nothing), so
 * a probe costs its share of one sendmmsg and a reply no system call of its own.
 *
 * Times are TAI (bpf_ktime_get_tai_ns: CLOCK_REALTIME plus the leap seconds, so user space has one
 * fixed offset to subtract, where the monotonic clock would drift from the realtime one).
 * Packet bytes are read with bpf_dynptr_from_skb (paged data too); the programs accept every
 * packet (NF_ACCEPT): they only watch.
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
	__uint(max_entries, 65536); /* resized by user space to the run's probe budget */
	__type(key, struct tr_key);
	__type(value, struct tr_probe);
} tr_probes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} tr_events SEC(".maps");

/* Ring-buffer records and map keys used only through pointers: this keeps their structs in the
 * object's BTF, which the layout test reads. */
struct tr_event *tr_event_btf __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tr_sock_key);
	__type(value, struct tr_sock);
} tr_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tr_hist_key);
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

static __always_inline void count(struct tr_sock *s, __u32 c)
{
	if (c < TR_NUM)
		__sync_fetch_and_add(&s->count[c], 1);
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
static __always_inline bool our_cookie(struct scratch *sc, __u32 at, __u32 have, __u32 session, __u32 *seq)
{
	if (at + 12 > have)
		return false;
	if (be32(sc, at) != cfg.magic || be32(sc, at + 4) != session)
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

/* A probe's own L4 header at `l4` (sent, or quoted back), of protocol `proto`: the probing socket
 * it came from (by its port or echo id), or NULL; its identity (destination port, echo sequence) in
 * k->id and the socket's port in k->sport. */
static __always_inline struct tr_sock *our_probe(struct scratch *sc, __u32 l4, __u8 proto, struct tr_key *k, struct tr_sock_key *sk)
{
	if (proto == 17) {
		sk->sport = be16(sc, l4);
		k->id = be16(sc, l4 + 2);
	} else if (proto == (cfg.family == 4 ? 1 : 58)) {
		if (B(l4) != (cfg.family == 4 ? 8 : 128))
			return NULL;
		sk->sport = be16(sc, l4 + 4);
		k->id = be16(sc, l4 + 6);
	} else {
		return NULL;
	}
	sk->proto = proto;
	sk->pad = 0;
	k->sport = sk->sport;
	return bpf_map_lookup_elem(&tr_socks, sk);
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
	if (!sc)
		return 1;
	__u32 l4 = ip.hlen;
	struct tr_key k = {};
	struct tr_sock_key sk;
	struct tr_sock *s = our_probe(sc, l4, ip.proto, &k, &sk);
	__u32 seq;
	if (!s || !our_cookie(sc, l4 + 8, have, s->session, &seq))
		return 1;
	addr_of(sc, ip.dst, cfg.family, k.daddr);
	if (s->by_cookie)
		k.seq = seq;
	struct tr_probe v = { .tx_ns = bpf_ktime_get_tai_ns(), .seq = seq, .ttl = ip.ttl };
	count(s, bpf_map_update_elem(&tr_probes, &k, &v, BPF_ANY) ? TR_MAP_FULL : TR_SENT);
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
	struct tr_sock_key sk = {};
	struct tr_sock *s = NULL;
	__u32 cookie = 0;   /* where the probe's cookie would be, 0: nowhere */
	bool timex = false; /* a Time Exceeded: a hop on the way (the others end the trace) */
	__u8 icmp = cfg.family == 4 ? 1 : 58;
	if (ip.proto == icmp) {
		__u8 type = B(o);
		bool echo_reply = cfg.family == 4 ? type == 0 : type == 129;
		bool error = cfg.family == 4 ? (type == 3 || type == 11 || type == 12) : (type >= 1 && type <= 4);
		if (echo_reply) {
			sk.sport = be16(sc, o + 4);
			sk.proto = icmp;
			s = bpf_map_lookup_elem(&tr_socks, &sk);
			k.sport = sk.sport;
			k.id = be16(sc, o + 6);
			addr_of(sc, ip.src, cfg.family, k.daddr);
			cookie = o + 8;
		} else if (error) {
			timex = type == (cfg.family == 4 ? 11 : 3);
			struct ip_view in;
			if (!ip_at(sc, o + 8, have, &in) || in.hlen > 60)
				return 1;
			__u32 q = o + 8 + in.hlen;
			if (q + 8 > have)
				return 1;
			s = our_probe(sc, q, in.proto, &k, &sk);
			addr_of(sc, in.dst, cfg.family, k.daddr);
			cookie = q + 8;
		}
	} else if (ip.proto == 17 && o + 8 <= have) {
		/* A datagram from a UDP service at the target: its source port is the probe's port. */
		sk.sport = be16(sc, o + 2);
		sk.proto = 17;
		s = bpf_map_lookup_elem(&tr_socks, &sk);
		k.sport = sk.sport;
		k.id = be16(sc, o);
		addr_of(sc, ip.src, cfg.family, k.daddr);
	}
	if (!s)
		return 1;

	__s32 seq = -1;
	__u64 tx = 0;
	__u32 cseq = 0;
	/* The reader is woken when it can act: a TTL's probes all answered (a window to refill, a hop
	 * settled), the path's end first heard of or at a lower TTL than before (the trace stops
	 * there), anything unmatched or foreign. The end's answers to probes beyond that TTL change
	 * nothing (the reader ends them as stopped), nor do duplicates. Other replies wait in the ring
	 * for the next wake-up or the reader's own timer, which drains the ring first: their times
	 * are taken here, not when read. */
	bool wake = s->wake_every <= 1;
	bool quoted = cookie && our_cookie(sc, cookie, have, s->session, &cseq);
	/* A quote with the cookie of another run (an earlier round's socket had this port) is not ours. */
	bool foreign = cookie && !quoted && cookie + 8 <= have && be32(sc, cookie) == cfg.magic;
	if (!foreign && (!s->by_cookie || quoted)) {
		if (s->by_cookie)
			k.seq = cseq;
		struct tr_probe *v = bpf_map_lookup_elem(&tr_probes, &k);
		if (v) {
			seq = v->seq;
			tx = v->tx_ns;
			if (!v->answered) {
				v->answered = 1;
				struct tr_hist_key hk = { .sport = sk.sport, .proto = sk.proto, .ttl = v->ttl };
				struct tr_hist *h = bpf_map_lookup_elem(&tr_hist, &hk);
				if (!h) {
					struct tr_hist zero = {};
					bpf_map_update_elem(&tr_hist, &hk, &zero, BPF_NOEXIST);
					h = bpf_map_lookup_elem(&tr_hist, &hk);
				}
				__u32 b = log2_us(now - tx);
				if (h && b < TR_BUCKETS)
					__sync_fetch_and_add(&h->b[b], 1);
				__u64 bit = 1ULL << (v->ttl & 63);
				if (h && !(s->ttls[(v->ttl >> 6) & 3] & bit))
					__sync_fetch_and_or(&s->ttls[(v->ttl >> 6) & 3], bit);
				bool ttl_done = h && s->wake_every > 1 &&
						(__sync_fetch_and_add(&h->answered, 1) + 1) % s->wake_every == 0;
				/* Wake-ups are coalesced like a NIC's interrupts: a settled TTL wakes the
				 * reader once wake_batch answers are unread (two TTLs' worth when that is at
				 * most half the window: the other half keeps the path busy meanwhile). */
				bool batch = s->wake_batch <= 1 ||
					     __sync_fetch_and_add(&s->unread, 1) + 1 >= s->wake_batch;
				if (timex) {
					wake |= ttl_done && batch;
				} else if (s->end_ttl == 0 || v->ttl < s->end_ttl) {
					/* Racing writers on two CPUs leave one of two ends; both wake. */
					s->end_ttl = v->ttl;
					wake = true;
				} else if (v->ttl == s->end_ttl) {
					wake |= ttl_done;
				}
			}
		}
	}
	count(s, seq >= 0 ? TR_MATCHED : TR_UNMATCHED);
	if (seq < 0)
		wake = true;
	if (wake)
		s->unread = 0;

	struct tr_event *e = bpf_ringbuf_reserve(&tr_events, sizeof(*e), 0);
	if (!e) {
		count(s, TR_RING_FULL);
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
	e->proto = sk.proto;
	e->sport = sk.sport;
	if (bpf_dynptr_read(e->pkt, n, &p, 0, 0))
		n = 0;
	e->len = n;
	bpf_ringbuf_submit(e, wake ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 1;
}

/* The probing socket's filter: it keeps nothing (the answers reach user space through the ring). */
SEC("socket")
int tr_sock_drop(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
