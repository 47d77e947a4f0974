// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * `pathlens ktrace`: where an ICMP echo round trip spends its time inside Linux. Each stage of
 * the path (bpf/ktrace.h) has programs for several hooks, best first: fentry, tp_btf, raw
 * tracepoint, classic tracepoint, netfilter, tc. User space loads what the kernel accepts and
 * attaches, per stage, the first hook that works; every program here calls the same logic:
 *
 *  - parse the packet (IPv4/IPv6 + ICMP echo), keep it only if it is the configured echo in the
 *    expected direction (request out and reply in for TX mode, the other way round for RX) and,
 *    for the global tracing hooks, in the configured network namespace;
 *  - record the stage's time in the trip's entry (a hash map keyed by family, addresses, echo id
 *    and sequence; created by the first path's stages only);
 *  - at the final stage, send the whole trip to user space through the ring buffer (and count
 *    per-segment log2 histograms), and delete the entry.
 * kfree_skb marks a trip whose packet the kernel dropped, with the reason; user space reports
 * trips that never completed when they expire.
 *
 * Kernel structures are read with CO-RE through the few fields declared below, so the object is
 * relocated to the running kernel's layout at load (its BTF), and builds without vmlinux.h.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "ktrace.h"

/* Only the fields used, relocated by name against the kernel's BTF. */
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));
struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));
typedef struct {
	struct net *net;
} possible_net_t;
struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));
struct sock;
struct sk_buff {
	struct sock *sk;
	struct net_device *dev;
	unsigned char *head;
	unsigned char *data;
	__u16 network_header;
} __attribute__((preserve_access_index));
struct sk_buff_head {
	struct sk_buff *next;
	struct sk_buff *prev;
} __attribute__((preserve_access_index));
struct sock {
	struct sk_buff_head sk_receive_queue;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));
struct bpf_nf_ctx {
	const void *state;
	struct sk_buff *skb;
} __attribute__((preserve_access_index));

const volatile struct kt_config cfg = { .family = 4 };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kt_plan);
} kt_plan SEC(".maps");

static __always_inline struct kt_plan *plan(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&kt_plan, &zero);
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct kt_key);
	__type(value, struct kt_trip);
} kt_trips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} kt_events SEC(".maps");

/* Kernel stacks, deduplicated by the kernel (an id names one stack for the map's lifetime). */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, KT_STACK_DEPTH * sizeof(__u64));
} kt_stacks SEC(".maps");

/* Wake the reader when this much is waiting (it also drains every tick, 100 ms). */
#define KT_WAKE_BYTES (256 * 1024)

/* Per-segment log2 histograms: segment i (from cfg.order[i] to cfg.order[i+1]), slot = log2(ns). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KT_NSTAGES * KT_HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} kt_hist SEC(".maps");

/* Counters: 0 records lost (ring buffer full), 1 trips created, 2 entries not created (map full). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} kt_counters SEC(".maps");

struct kt_record *kt_record_btf __attribute__((unused));

struct pkt {
	__u8 src[16];
	__u8 dst[16];
	__u16 id;
	__u16 seq;
	__u8 family;
	__u8 type;
};

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&kt_counters, &idx);
	if (c)
		*c += 1;
}

static __always_inline bool same16(const __u8 *a, const volatile __u8 *b, int n)
{
	for (int i = 0; i < 16; i++)
		if (i < n && a[i] != b[i])
			return false;
	return true;
}

/* IPv4 or IPv6 header at `l3` (kernel memory) followed by an ICMP echo: fills p. */
static __always_inline bool parse_kernel(const unsigned char *l3, struct pkt *p)
{
	__u8 h[40];
	if (bpf_probe_read_kernel(h, 20, l3))
		return false;
	__u32 off;
	if ((h[0] >> 4) == 4 && cfg.family == 4) {
		if (h[9] != 1 /* ICMP */ || ((h[6] & 0x1f) | h[7]))
			return false;
		off = (h[0] & 0x0f) * 4;
		if (off < 20)
			return false;
		__builtin_memset(p, 0, sizeof(*p));
		__builtin_memcpy(p->src, h + 12, 4);
		__builtin_memcpy(p->dst, h + 16, 4);
		p->family = 4;
	} else if ((h[0] >> 4) == 6 && cfg.family == 6) {
		if (bpf_probe_read_kernel(h, 40, l3) || h[6] != 58 /* ICMPv6 */)
			return false;
		__builtin_memcpy(p->src, h + 8, 16);
		__builtin_memcpy(p->dst, h + 24, 16);
		p->family = 6;
		off = 40;
	} else {
		return false;
	}
	__u8 icmp[8];
	if (bpf_probe_read_kernel(icmp, 8, l3 + (off & 0x3f)))
		return false;
	p->type = icmp[0];
	p->id = ((__u16)icmp[4] << 8) | icmp[5];
	p->seq = ((__u16)icmp[6] << 8) | icmp[7];
	return icmp[1] == 0;
}

static __always_inline bool is_request(__u8 type)
{
	return type == 8 || type == 128;
}

static __always_inline bool is_reply(__u8 type)
{
	return type == 0 || type == 129;
}

/* The trip this packet belongs to at an out (or in) stage, in the key's orientation; false when
 * it is not the configured echo in that direction. */
static __always_inline bool key_of(const struct pkt *p, bool out, struct kt_key *k)
{
	int n = p->family == 4 ? 4 : 16;
	const __u8 *local = out ? p->src : p->dst;
	const __u8 *remote = out ? p->dst : p->src;
	if (!same16(local, cfg.local, n) || !same16(remote, cfg.remote, n))
		return false;
	/* TX: requests go out, replies come in; RX: the other way round. */
	bool want_request = cfg.rx ? !out : out;
	if (want_request ? !is_request(p->type) : !is_reply(p->type))
		return false;
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->local, local, 16);
	__builtin_memcpy(k->remote, remote, 16);
	k->id = p->id;
	k->seq = p->seq;
	k->family = p->family;
	return true;
}

/* floor(log2(v)) (0 for 0 and 1) without a branch, so the verifier walks one path: smear the top
 * bit down, count the bits (Hacker's Delight), minus one. */
static __always_inline __u32 log2_slot(__u64 v)
{
	v |= v >> 1;
	v |= v >> 2;
	v |= v >> 4;
	v |= v >> 8;
	v |= v >> 16;
	v |= v >> 32;
	v = v - ((v >> 1) & 0x5555555555555555ULL);
	v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	__u64 bits = (v * 0x0101010101010101ULL) >> 56;
	return bits ? (__u32)(bits - 1) & (KT_HIST_SLOTS - 1) : 0;
}

/*
 * Per-segment histograms of one trip: a global function, so the verifier checks it once, not
 * once per program and call site.
 */
__noinline int kt_hist_trip(struct kt_trip *t)
{
	struct kt_plan *pl = plan();
	if (!t || !pl)
		return 0;
	/* Segment i runs from order[i] to order[i+1]; counted when the trip reached both. Each
	 * iteration stands alone (no state carried over), so the verifier's walk stays short. */
	for (__u32 i = 0; i + 1 < KT_NSTAGES; i++) {
		if (i + 1 >= pl->nstages)
			break;
		__u64 a = t->t[pl->order[i] & 15];
		__u64 b = t->t[pl->order[i + 1] & 15];
		if (!a || !b || b < a)
			continue;
		__u32 idx = i * KT_HIST_SLOTS + log2_slot(b - a);
		__u64 *c = bpf_map_lookup_elem(&kt_hist, &idx);
		if (c)
			*c += 1;
	}
	return 0;
}

static __noinline void finish(struct kt_key *k, struct kt_trip *t, __u64 now)
{
	if (now - t->created < cfg.min_total_ns) {
		bpf_map_delete_elem(&kt_trips, k);
		return;
	}
	if (cfg.hist)
		kt_hist_trip(t);
	struct kt_record *r = bpf_ringbuf_reserve(&kt_events, sizeof(*r), 0);
	if (r) {
		__builtin_memcpy(&r->key, k, sizeof(*k));
		__builtin_memcpy(&r->trip, t, sizeof(*t));
		r->kind = KT_REC_COMPLETE;
		r->pad = 0;
		/* Waking the reader per record raises an interrupt and a wakeup inside this program
		 * (about 14 us per round trip on a 2-vCPU VM, 50 times the rest of the stage); the
		 * reader drains on its own tick instead and is woken only when the ring fills. */
		__u64 wake = bpf_ringbuf_query(&kt_events, BPF_RB_AVAIL_DATA) >= KT_WAKE_BYTES;
		bpf_ringbuf_submit(r, wake ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	} else {
		count(0);
	}
	bpf_map_delete_elem(&kt_trips, k);
}

/* TX: per CPU, the task that last entered sendto/sendmsg there and when (the sendmsg stage). The
 * send path of a locally made packet runs in that system call, on that CPU: its trip takes the
 * time if the task is the same. A per-CPU slot, not a map lookup by task: every sendto on the
 * host runs this, so it must cost next to nothing. */
struct kt_send {
	__u64 task;
	__u64 t;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kt_send);
} kt_sends SEC(".maps");

/* Per-CPU scratch: keys and the new entry's template are too big for comfort on the stack. */
struct scratch {
	struct pkt p;
	struct kt_key k;
	struct kt_trip nt;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} kt_scratch SEC(".maps");

/* A parsed packet seen at `stage`: record it in its trip. `ctx_task`: a process context whose
 * pid/comm describe the sender (tracing hooks of TX's out path). */
static __noinline int on_stage(struct scratch *sc, __u32 stage, __u32 ifindex, bool ctx_task, long stack)
{
	bool out = stage < KT_FIRST_IN;
	if (!key_of(&sc->p, out, &sc->k))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct kt_trip *t = bpf_map_lookup_elem(&kt_trips, &sc->k);
	if (!t) {
		/* Only the first path (TX: out, RX: in) starts a trip. */
		if (cfg.rx ? out : !out)
			return 0;
		__builtin_memset(&sc->nt, 0, sizeof(sc->nt));
		sc->nt.created = now;
		if (bpf_map_update_elem(&kt_trips, &sc->k, &sc->nt, BPF_NOEXIST) == 0)
			count(1);
		t = bpf_map_lookup_elem(&kt_trips, &sc->k);
		if (!t) {
			count(2);
			return 0;
		}
	}
	if (stage < KT_NSTAGES) {
		/* The mask bounds the index for the verifier (t[] plus what follows it in the value). */
		__u32 i = stage & 15;
		if (t->t[i] == 0) {
			t->t[i] = now;
			if (stack)
				t->stack[i] = stack >= 0 ? stack + 1 : stack;
		}
	}
	if (ifindex) {
		if (out && !t->ifindex_out)
			t->ifindex_out = ifindex;
		if (!out && !t->ifindex_in)
			t->ifindex_in = ifindex;
	}
	if (ctx_task && out && !cfg.rx && !t->pid) {
		__u64 task = bpf_get_current_pid_tgid();
		t->pid = task >> 32;
		bpf_get_current_comm(t->comm, sizeof(t->comm));
		/* The system call that sent it: this task's sendto/sendmsg on this CPU, if it began before the trip. */
		__u32 zero = 0;
		struct kt_send *sent = bpf_map_lookup_elem(&kt_sends, &zero);
		if (sent && sent->task == task && sent->t && sent->t <= t->created && !t->t[KT_SENDMSG]) {
			t->t[KT_SENDMSG] = sent->t;
			sent->t = 0;
		}
	}
	struct kt_plan *pl = plan();
	if (pl && stage == pl->final)
		finish(&sc->k, t, now);
	return 0;
}

static __always_inline struct scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&kt_scratch, &zero);
}

/* The netns of the device a packet is on (0: no device yet, not filtered). */
static __always_inline __u32 netns_of(struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (!dev)
		return 0;
	return BPF_CORE_READ(dev, nd_net.net, ns.inum);
}

enum where { AT_NETWORK_HEADER, AT_DATA };

/* Tracing hooks (fentry, tp_btf, raw_tp, tracepoint): global, so filtered by namespace here. */
static __always_inline int traced(void *ctx, struct sk_buff *skb, __u32 stage, enum where w, bool task)
{
	struct scratch *sc = scratch();
	if (!sc || !skb)
		return 0;
	__u32 ns = netns_of(skb);
	if (cfg.netns && ns && ns != cfg.netns)
		return 0;
	const unsigned char *l3;
	if (w == AT_DATA) {
		l3 = BPF_CORE_READ(skb, data);
	} else {
		__u16 nh = BPF_CORE_READ(skb, network_header);
		if (nh == (__u16)~0U)
			return 0;
		l3 = BPF_CORE_READ(skb, head) + nh;
	}
	if (!parse_kernel(l3, &sc->p))
		return 0;
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	__u32 ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	/* Taken for every echo parsed here (the key is checked in on_stage), only with --stacks. */
	long stack = cfg.stacks ? bpf_get_stackid(ctx, &kt_stacks, 0) : 0;
	return on_stage(sc, stage, ifindex, task, stack);
}

/* ---- fentry: the kernel functions themselves (where the kernel allows tracing programs) ---- */

#define FENTRY(fn, argi, stage, where)                                   \
	SEC("fentry/" #fn)                                               \
	int kt_fe_##fn(unsigned long long *ctx)                          \
	{                                                                \
		return traced(ctx, (struct sk_buff *)ctx[argi], stage, where, stage < KT_FIRST_IN); \
	}

FENTRY(ip_send_skb, 1, KT_IP_SEND_SKB, AT_NETWORK_HEADER)
FENTRY(ip6_send_skb, 0, KT_IP_SEND_SKB, AT_NETWORK_HEADER)
FENTRY(ip_local_out, 2, KT_IP_LOCAL_OUT, AT_NETWORK_HEADER)
FENTRY(ip6_local_out, 2, KT_IP_LOCAL_OUT, AT_NETWORK_HEADER)
FENTRY(__dev_queue_xmit, 0, KT_DEV_QUEUE, AT_NETWORK_HEADER)
FENTRY(__netif_receive_skb, 0, KT_NETIF_RECEIVE, AT_DATA)
FENTRY(ip_rcv, 0, KT_IP_RCV, AT_DATA)
FENTRY(ipv6_rcv, 0, KT_IP_RCV, AT_DATA)
FENTRY(icmp_rcv, 0, KT_ICMP_RCV, AT_NETWORK_HEADER)
FENTRY(icmpv6_rcv, 0, KT_ICMP_RCV, AT_NETWORK_HEADER)

/* ---- device tracepoints, three ways: tp_btf, raw_tp, classic ------------------------------ */

/* Classic tracepoint records start with an 8-byte common header; skbaddr follows. */
struct tp_skb {
	__u64 common;
	struct sk_buff *skb;
};

#define DEV_TP_BTF_RAW(name, stage, where)                                           \
	SEC("tp_btf/" #name)                                                         \
	int kt_btf_##name(unsigned long long *ctx)                                   \
	{                                                                            \
		return traced(ctx, (struct sk_buff *)ctx[0], stage, where, stage < KT_FIRST_IN); \
	}                                                                            \
	SEC("raw_tp/" #name)                                                         \
	int kt_raw_##name(struct bpf_raw_tracepoint_args *ctx)                       \
	{                                                                            \
		return traced(ctx, (struct sk_buff *)ctx->args[0], stage, where, stage < KT_FIRST_IN); \
	}

#define DEV_TP(name, stage, where)                                                   \
	DEV_TP_BTF_RAW(name, stage, where)                                           \
	SEC("tracepoint/net/" #name)                                                 \
	int kt_tp_##name(struct tp_skb *ctx)                                         \
	{                                                                            \
		return traced(ctx, ctx->skb, stage, where, stage < KT_FIRST_IN);          \
	}

DEV_TP(net_dev_queue, KT_DEV_QUEUE, AT_NETWORK_HEADER)
/* The classic net_dev_start_xmit record holds no skb address: no classic variant. */
DEV_TP_BTF_RAW(net_dev_start_xmit, KT_DEV_XMIT, AT_NETWORK_HEADER)
/* netif_receive_skb fires before the network header is reset: the IP header is at data. */
DEV_TP(netif_receive_skb, KT_NETIF_RECEIVE, AT_DATA)

/* ---- the socket: sk_data_ready (sock) and skb_copy_datagram_iovec (skb, len) --------------- */

/* Only ICMP sockets (ping and raw, both ways): every socket on the host fires these two points. */
static __always_inline bool icmp_sock(const struct sock *sk)
{
	if (!sk)
		return false;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	return proto == (cfg.family == 4 ? 1 : 58);
}

/* sk_data_ready fires once a packet is on the socket's receive queue: the newest is its tail. */
static __always_inline struct sk_buff *queued(const struct sock *sk)
{
	if (!icmp_sock(sk))
		return 0;
	return BPF_CORE_READ(sk, sk_receive_queue.prev);
}

/* The packet a reader copies out, when its socket is an ICMP one. */
static __always_inline struct sk_buff *read_out(struct sk_buff *skb)
{
	if (!skb || !icmp_sock(BPF_CORE_READ(skb, sk)))
		return 0;
	return skb;
}

SEC("tp_btf/sk_data_ready")
int kt_btf_sk_data_ready(unsigned long long *ctx)
{
	return traced(ctx, queued((const struct sock *)ctx[0]), KT_SK_DATA_READY, AT_NETWORK_HEADER, false);
}

SEC("raw_tp/sk_data_ready")
int kt_raw_sk_data_ready(struct bpf_raw_tracepoint_args *ctx)
{
	return traced(ctx, queued((const struct sock *)ctx->args[0]), KT_SK_DATA_READY, AT_NETWORK_HEADER, false);
}

/* The classic record: the common header, then skaddr. */
struct tp_sk {
	__u64 common;
	const struct sock *sk;
};

SEC("tracepoint/sock/sk_data_ready")
int kt_tp_sk_data_ready(struct tp_sk *ctx)
{
	return traced(ctx, queued(ctx->sk), KT_SK_DATA_READY, AT_NETWORK_HEADER, false);
}

SEC("tp_btf/skb_copy_datagram_iovec")
int kt_btf_skb_copy_datagram_iovec(unsigned long long *ctx)
{
	return traced(ctx, read_out((struct sk_buff *)ctx[0]), KT_SK_READ, AT_NETWORK_HEADER, false);
}

SEC("raw_tp/skb_copy_datagram_iovec")
int kt_raw_skb_copy_datagram_iovec(struct bpf_raw_tracepoint_args *ctx)
{
	return traced(ctx, read_out((struct sk_buff *)ctx->args[0]), KT_SK_READ, AT_NETWORK_HEADER, false);
}

SEC("tracepoint/skb/skb_copy_datagram_iovec")
int kt_tp_skb_copy_datagram_iovec(struct tp_skb *ctx)
{
	return traced(ctx, read_out(ctx->skb), KT_SK_READ, AT_NETWORK_HEADER, false);
}

/* ---- the sender's system call: sys_enter_sendto / sys_enter_sendmsg (TX) -------------------- */

static __always_inline int sending(void)
{
	if (cfg.rx)
		return 0;
	__u32 zero = 0;
	struct kt_send *s = bpf_map_lookup_elem(&kt_sends, &zero);
	if (s) {
		s->task = bpf_get_current_pid_tgid();
		s->t = bpf_ktime_get_ns();
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int kt_tp_sys_enter_sendto(void *ctx)
{
	return sending();
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int kt_tp_sys_enter_sendmsg(void *ctx)
{
	return sending();
}

/* ---- drops: kfree_skb (skb, location, reason) ---------------------------------------------- */

static __always_inline int dropped(struct sk_buff *skb, __u32 reason)
{
	struct scratch *sc = scratch();
	if (!sc || !skb)
		return 0;
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (nh == (__u16)~0U || !parse_kernel(BPF_CORE_READ(skb, head) + nh, &sc->p))
		return 0;
	for (int out = 0; out < 2; out++) {
		if (!key_of(&sc->p, out, &sc->k))
			continue;
		struct kt_trip *t = bpf_map_lookup_elem(&kt_trips, &sc->k);
		if (t && !t->dropped) {
			t->dropped = (cfg.rx ? !out : out) ? 1 : 2;
			t->drop_reason = reason;
		}
	}
	return 0;
}


SEC("tp_btf/kfree_skb")
int kt_btf_kfree_skb(unsigned long long *ctx)
{
	return dropped((struct sk_buff *)ctx[0], (__u32)ctx[2]);
}

SEC("raw_tp/kfree_skb")
int kt_raw_kfree_skb(struct bpf_raw_tracepoint_args *ctx)
{
	return dropped((struct sk_buff *)ctx->args[0], (__u32)ctx->args[2]);
}

/* The classic record's layout changes between kernels: `reason` sits where tracefs says. */
SEC("tracepoint/skb/kfree_skb")
int kt_tp_kfree_skb(struct tp_skb *ctx)
{
	__u32 reason = 0;
	if (cfg.kfree_reason_off)
		bpf_probe_read_kernel(&reason, sizeof(reason), (void *)ctx + (cfg.kfree_reason_off & 0xff));
	return dropped(ctx->skb, reason);
}

/* ---- netfilter hooks (per namespace; libbpf before 1.3 needs the type set by user space) ---- */

#define NF_HOOK_PROG(name, stage)                                          \
	SEC("netfilter")                                                   \
	int kt_nf_##name(struct bpf_nf_ctx *ctx)                           \
	{                                                                  \
		struct scratch *sc = scratch();                            \
		struct sk_buff *skb = ctx->skb;                            \
		if (sc && skb) {                                           \
			__u16 nh = BPF_CORE_READ(skb, network_header);     \
			if (parse_kernel(BPF_CORE_READ(skb, head) + nh, &sc->p)) \
				on_stage(sc, stage, 0, false, 0);        \
		}                                                          \
		return 1; /* NF_ACCEPT */                                  \
	}

NF_HOOK_PROG(local_out, KT_IP_LOCAL_OUT)
NF_HOOK_PROG(post_routing, KT_POST_ROUTING)
NF_HOOK_PROG(pre_routing, KT_IP_RCV)
NF_HOOK_PROG(local_in, KT_ICMP_RCV)

/* ---- tc (tcx or clsact) on the interface ------------------------------------------------------ */

static __always_inline int tc_stage(struct __sk_buff *skb, __u32 stage)
{
	struct scratch *sc = scratch();
	if (!sc)
		return -1;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	unsigned char *l3 = data + 14;
	/* Read through the probe helper as the other hooks do: one parser for every hook. */
	if ((void *)(l3 + 1) > end)
		return -1;
	if (parse_kernel(l3, &sc->p))
		on_stage(sc, stage, skb->ifindex, false, 0);
	return -1; /* TC_ACT_UNSPEC: let the packet go on */
}

SEC("tc")
int kt_tc_egress(struct __sk_buff *skb)
{
	return tc_stage(skb, KT_TC_EGRESS);
}

SEC("tc")
int kt_tc_ingress(struct __sk_buff *skb)
{
	return tc_stage(skb, KT_TC_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
