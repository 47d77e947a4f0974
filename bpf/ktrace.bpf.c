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

/* Kernel stacks by their frames, each with the id stages record (kt_stack_next's, in order). A
 * stack trace map names a stack by a hash of it and gives a second stack with the same hash no id
 * at all (-EEXIST): a few dozen stacks in 4096 buckets lost one in a few runs in a hundred. Keyed
 * by the frames themselves, two stacks never share an entry; only a full map refuses one. */
struct kt_stack {
	__u64 ip[KT_STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct kt_stack);
	__type(value, __u32);
} kt_stacks SEC(".maps");

__u32 kt_stack_next = 0;

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
	__u16 id;        /* echo identifier (packet mode: the source port) */
	__u16 seq;       /* echo sequence (packet mode: the destination port) */
	__u8 family;
	__u8 type;       /* ICMP type (packet mode: 0) */
	__u8 tcp_flags;
	__u8 pad;
	__u16 len;       /* the IP packet's length */
	__u32 tcp_seq;
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

/* IPv4 or IPv6 header at `l3` (kernel memory) followed by an ICMP echo (packet mode: by the
 * configured TCP or UDP header, either port the configured one): fills p. */
static __always_inline bool parse_kernel(const unsigned char *l3, struct pkt *p)
{
	__u8 h[40];
	if (bpf_probe_read_kernel(h, 20, l3))
		return false;
	__u32 off;
	__u8 l4;
	if ((h[0] >> 4) == 4 && cfg.family == 4) {
		if ((h[6] & 0x1f) | h[7]) /* a fragment after the first: no transport header */
			return false;
		l4 = h[9];
		off = (h[0] & 0x0f) * 4;
		if (off < 20)
			return false;
		__builtin_memset(p, 0, sizeof(*p));
		__builtin_memcpy(p->src, h + 12, 4);
		__builtin_memcpy(p->dst, h + 16, 4);
		p->family = 4;
		p->len = ((__u16)h[2] << 8) | h[3];
	} else if ((h[0] >> 4) == 6 && cfg.family == 6) {
		if (bpf_probe_read_kernel(h, 40, l3))
			return false;
		l4 = h[6];
		__builtin_memset(p, 0, sizeof(*p));
		__builtin_memcpy(p->src, h + 8, 16);
		__builtin_memcpy(p->dst, h + 24, 16);
		p->family = 6;
		p->len = (((__u16)h[4] << 8) | h[5]) + 40;
		off = 40;
	} else {
		return false;
	}
	if (cfg.proto) {
		__u8 th[14];
		if (l4 != cfg.proto)
			return false;
		if (cfg.proto == 6) {
			if (bpf_probe_read_kernel(th, 14, l3 + (off & 0x3f)))
				return false;
			p->tcp_seq = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
			p->tcp_flags = th[13];
		} else if (bpf_probe_read_kernel(th, 4, l3 + (off & 0x3f))) {
			return false;
		}
		p->id = ((__u16)th[0] << 8) | th[1];
		p->seq = ((__u16)th[2] << 8) | th[3];
		return !cfg.port || p->id == cfg.port || p->seq == cfg.port;
	}
	if (l4 != (cfg.family == 4 ? 1 /* ICMP */ : 58 /* ICMPv6 */))
		return false;
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
 * it is not the configured echo in that direction. Packet mode: the packet itself, on that path
 * (its buffer's address `skb` in the key). */
static __always_inline bool key_of(const struct pkt *p, bool out, struct kt_key *k, __u64 skb)
{
	int n = p->family == 4 ? 4 : 16;
	const __u8 *local = out ? p->src : p->dst;
	const __u8 *remote = out ? p->dst : p->src;
	if (!same16(local, cfg.local, n) || !same16(remote, cfg.remote, n))
		return false;
	if (!cfg.proto) {
		/* TX: requests go out, replies come in; RX: the other way round. */
		bool want_request = cfg.rx ? !out : out;
		if (want_request ? !is_request(p->type) : !is_reply(p->type))
			return false;
	}
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->local, local, 16);
	__builtin_memcpy(k->remote, remote, 16);
	k->family = p->family;
	if (cfg.proto) {
		k->id = out ? p->id : p->seq;
		k->seq = out ? p->seq : p->id;
		k->proto = cfg.proto;
		k->out = out;
		k->skb = skb;
	} else {
		k->id = p->id;
		k->seq = p->seq;
	}
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
		__u64 a = t->t[pl->order[i] & KT_STAGE_MASK];
		__u64 b = t->t[pl->order[i + 1] & KT_STAGE_MASK];
		if (!a || !b || b < a)
			continue;
		__u32 idx = i * KT_HIST_SLOTS + log2_slot(b - a);
		__u64 *c = bpf_map_lookup_elem(&kt_hist, &idx);
		if (c)
			*c += 1;
	}
	return 0;
}

/* One record to user space: a trip complete (kind KT_REC_COMPLETE, at least --latency-ms long),
 * or a packet that will not complete (KT_REC_PARTIAL). */
static __noinline void report(struct kt_key *k, struct kt_trip *t, __u64 now, __u32 kind)
{
	if (kind == KT_REC_COMPLETE) {
		if (now - t->created < cfg.min_total_ns)
			return;
		if (cfg.hist)
			kt_hist_trip(t);
	}
	struct kt_record *r = bpf_ringbuf_reserve(&kt_events, sizeof(*r), 0);
	if (r) {
		__builtin_memcpy(&r->key, k, sizeof(*k));
		__builtin_memcpy(&r->trip, t, sizeof(*t));
		r->kind = kind;
		r->pad = 0;
		/* Waking the reader per record raises an interrupt and a wakeup inside this program
		 * (about 14 us per round trip on a 2-vCPU VM, 50 times the rest of the stage); the
		 * reader drains on its own tick instead and is woken only when the ring fills. */
		__u64 wake = bpf_ringbuf_query(&kt_events, BPF_RB_AVAIL_DATA) >= KT_WAKE_BYTES;
		bpf_ringbuf_submit(r, wake ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	} else {
		count(0);
	}
}

static __always_inline void finish(struct kt_key *k, struct kt_trip *t, __u64 now)
{
	report(k, t, now, KT_REC_COMPLETE);
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
	/* What the hook knows besides the packet (a BPF call takes five arguments): */
	long stack;      /* kt_stacks id + 1, or a negative errno (0: none taken) */
	struct kt_stack stk; /* the stack being taken */
	__u32 ifindex;   /* the packet's device (0: unknown) */
	__u32 task;      /* 1: a process context whose pid/comm describe the sender */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} kt_scratch SEC(".maps");

/* The kernel stack at ctx: its id in kt_stacks + 1 (a new one the first time it is seen), or a
 * negative errno (the map full: -E2BIG). */
static __noinline long take_stack(void *ctx, struct scratch *sc)
{
	__builtin_memset(&sc->stk, 0, sizeof(sc->stk));
	long n = bpf_get_stack(ctx, &sc->stk, sizeof(sc->stk), 0);
	if (n < 0)
		return n;
	__u32 *id = bpf_map_lookup_elem(&kt_stacks, &sc->stk);
	if (id)
		return (long)*id + 1;
	__u32 nid = __sync_fetch_and_add(&kt_stack_next, 1);
	long err = bpf_map_update_elem(&kt_stacks, &sc->stk, &nid, BPF_NOEXIST);
	if (err == -17 /* EEXIST: another CPU put the same stack first */) {
		id = bpf_map_lookup_elem(&kt_stacks, &sc->stk);
		return id ? (long)*id + 1 : -2 /* ENOENT */;
	}
	return err ? err : (long)nid + 1;
}

/* A new entry from the scratch template (packet mode: what the packet is). */
static __always_inline struct kt_trip *create(struct scratch *sc, __u64 now, __u64 flags)
{
	__builtin_memset(&sc->nt, 0, sizeof(sc->nt));
	sc->nt.created = now;
	sc->nt.len = sc->p.len;
	sc->nt.tcp_seq = sc->p.tcp_seq;
	sc->nt.tcp_flags = sc->p.tcp_flags;
	if (bpf_map_update_elem(&kt_trips, &sc->k, &sc->nt, flags) == 0)
		count(1);
	struct kt_trip *t = bpf_map_lookup_elem(&kt_trips, &sc->k);
	if (!t)
		count(2);
	return t;
}

/* A parsed packet seen at a point that is stage `s_out` for a packet leaving this host and `s_in`
 * for one arriving (KT_NO_STAGE: not a stage of that path): record it in its trip. `skb`: the
 * buffer's address (packet mode keys by it). sc->task: a process context whose pid/comm
 * describe the sender (tracing hooks of TX's out path); sc->ifindex, sc->stack. */
static __noinline int on_stage(struct scratch *sc, __u32 s_out, __u32 s_in, __u64 skb)
{
	__u32 ifindex = sc->ifindex;
	bool ctx_task = sc->task;
	long stack = sc->stack;
	bool out;
	__u32 stage;
	if (s_out != KT_NO_STAGE && key_of(&sc->p, true, &sc->k, skb)) {
		out = true;
		stage = s_out;
	} else if (s_in != KT_NO_STAGE && key_of(&sc->p, false, &sc->k, skb)) {
		out = false;
		stage = s_in;
	} else {
		return 0;
	}
	struct kt_plan *pl = plan();
	if (!pl)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct kt_trip *t = bpf_map_lookup_elem(&kt_trips, &sc->k);
	if (cfg.proto) {
		/* Packet mode: the path's first stage starts the packet's entry, and only it: a later
		 * stage sees buffers that were merged into others (TCP coalescing on the socket queue).
		 * An entry already there is an earlier packet in a buffer since freed and reused:
		 * reported as it stands. */
		if (stage == (out ? pl->first_out : pl->first_in)) {
			if (t)
				report(&sc->k, t, now, KT_REC_PARTIAL);
			t = create(sc, now, BPF_ANY);
			if (!t)
				return 0;
		} else if (!t) {
			return 0;
		}
	} else if (!t) {
		/* Only the first path (TX: out, RX: in) starts a trip. */
		if (cfg.rx ? out : !out)
			return 0;
		t = create(sc, now, BPF_NOEXIST);
		if (!t)
			return 0;
	}
	if (stage < KT_NSTAGES) {
		/* The mask bounds the index for the verifier. */
		__u32 i = stage & KT_STAGE_MASK;
		if (t->t[i] == 0) {
			t->t[i] = now;
			if (stack)
				t->stack[i] = stack;
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
	if (stage == (out ? pl->final_out : pl->final_in))
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

/* Tracing hooks (fentry, tp_btf, raw_tp, tracepoint): global, so filtered by namespace here. One
 * copy of the code for every program (a BPF call takes five arguments: `w` and `task` share one). */
#define traced(ctx, skb, s_out, s_in, w, task) kt_traced(ctx, skb, s_out, s_in, (w) | ((task) ? 2 : 0))

static __noinline int kt_traced(void *ctx, struct sk_buff *skb, __u32 s_out, __u32 s_in, __u32 how)
{
	enum where w = how & 1;
	bool task = how & 2;
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
	sc->stack = cfg.stacks ? take_stack(ctx, sc) : 0;
	sc->ifindex = ifindex;
	sc->task = task;
	return on_stage(sc, s_out, s_in, (__u64)skb);
}

/* A built-in stage's point: its stage on its own path, none on the other. */
#define OUT_OF(stage) ((stage) < KT_FIRST_IN ? (stage) : KT_NO_STAGE)
#define IN_OF(stage) ((stage) < KT_FIRST_IN ? KT_NO_STAGE : (stage))

/* ---- fentry: the kernel functions themselves (where the kernel allows tracing programs) ---- */

#define FENTRY(fn, argi, stage, where)                                   \
	SEC("fentry/" #fn)                                               \
	int kt_fe_##fn(unsigned long long *ctx)                          \
	{                                                                \
		return traced(ctx, (struct sk_buff *)ctx[argi], OUT_OF(stage), IN_OF(stage), where, stage < KT_FIRST_IN); \
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
		return traced(ctx, (struct sk_buff *)ctx[0], OUT_OF(stage), IN_OF(stage), where, stage < KT_FIRST_IN); \
	}                                                                            \
	SEC("raw_tp/" #name)                                                         \
	int kt_raw_##name(struct bpf_raw_tracepoint_args *ctx)                       \
	{                                                                            \
		return traced(ctx, (struct sk_buff *)ctx->args[0], OUT_OF(stage), IN_OF(stage), where, stage < KT_FIRST_IN); \
	}

#define DEV_TP(name, stage, where)                                                   \
	DEV_TP_BTF_RAW(name, stage, where)                                           \
	SEC("tracepoint/net/" #name)                                                 \
	int kt_tp_##name(struct tp_skb *ctx)                                         \
	{                                                                            \
		return traced(ctx, ctx->skb, OUT_OF(stage), IN_OF(stage), where, stage < KT_FIRST_IN);          \
	}

DEV_TP(net_dev_queue, KT_DEV_QUEUE, AT_NETWORK_HEADER)
/* The classic net_dev_start_xmit record holds no skb address: no classic variant. */
DEV_TP_BTF_RAW(net_dev_start_xmit, KT_DEV_XMIT, AT_NETWORK_HEADER)
/* netif_receive_skb fires before the network header is reset: the IP header is at data. */
DEV_TP(netif_receive_skb, KT_NETIF_RECEIVE, AT_DATA)

/* ---- the socket: sk_data_ready (sock) and skb_copy_datagram_iovec (skb, len) --------------- */

/* Only ICMP sockets (ping and raw, both ways; packet mode: TCP or UDP ones): every socket on the
 * host fires these two points. */
static __always_inline bool icmp_sock(const struct sock *sk)
{
	if (!sk)
		return false;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	return proto == (cfg.proto ? cfg.proto : cfg.family == 4 ? 1 : 58);
}

/* sk_data_ready fires once a packet is on the socket's receive queue: the newest is its tail. */
static __always_inline struct sk_buff *queued(const struct sock *sk)
{
	if (!icmp_sock(sk))
		return 0;
	return BPF_CORE_READ(sk, sk_receive_queue.prev);
}

/* The packet a reader copies out, when its socket is an ICMP one. Packet mode takes every one
 * (UDP's queued buffers have no owner socket) and leaves the choice to the packet's headers. */
static __always_inline struct sk_buff *read_out(struct sk_buff *skb)
{
	if (!skb || (!cfg.proto && !icmp_sock(BPF_CORE_READ(skb, sk))))
		return 0;
	return skb;
}

SEC("tp_btf/sk_data_ready")
int kt_btf_sk_data_ready(unsigned long long *ctx)
{
	return traced(ctx, queued((const struct sock *)ctx[0]), KT_NO_STAGE, KT_SK_DATA_READY, AT_NETWORK_HEADER, false);
}

SEC("raw_tp/sk_data_ready")
int kt_raw_sk_data_ready(struct bpf_raw_tracepoint_args *ctx)
{
	return traced(ctx, queued((const struct sock *)ctx->args[0]), KT_NO_STAGE, KT_SK_DATA_READY, AT_NETWORK_HEADER, false);
}

/* The classic record: the common header, then skaddr. */
struct tp_sk {
	__u64 common;
	const struct sock *sk;
};

SEC("tracepoint/sock/sk_data_ready")
int kt_tp_sk_data_ready(struct tp_sk *ctx)
{
	return traced(ctx, queued(ctx->sk), KT_NO_STAGE, KT_SK_DATA_READY, AT_NETWORK_HEADER, false);
}

SEC("tp_btf/skb_copy_datagram_iovec")
int kt_btf_skb_copy_datagram_iovec(unsigned long long *ctx)
{
	return traced(ctx, read_out((struct sk_buff *)ctx[0]), KT_NO_STAGE, KT_SK_READ, AT_NETWORK_HEADER, false);
}

SEC("raw_tp/skb_copy_datagram_iovec")
int kt_raw_skb_copy_datagram_iovec(struct bpf_raw_tracepoint_args *ctx)
{
	return traced(ctx, read_out((struct sk_buff *)ctx->args[0]), KT_NO_STAGE, KT_SK_READ, AT_NETWORK_HEADER, false);
}

SEC("tracepoint/skb/skb_copy_datagram_iovec")
int kt_tp_skb_copy_datagram_iovec(struct tp_skb *ctx)
{
	return traced(ctx, read_out(ctx->skb), KT_NO_STAGE, KT_SK_READ, AT_NETWORK_HEADER, false);
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
		if (!key_of(&sc->p, out, &sc->k, (__u64)skb))
			continue;
		struct kt_trip *t = bpf_map_lookup_elem(&kt_trips, &sc->k);
		if (!t || t->dropped)
			continue;
		t->drop_reason = reason;
		if (cfg.proto) {
			/* Packet mode: the packet's path ends here; its buffer is free for the next. */
			t->dropped = 1;
			report(&sc->k, t, bpf_ktime_get_ns(), KT_REC_PARTIAL);
			bpf_map_delete_elem(&kt_trips, &sc->k);
		} else {
			t->dropped = (cfg.rx ? !out : out) ? 1 : 2;
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

static __always_inline int nf_stage(struct bpf_nf_ctx *ctx, __u32 s_out, __u32 s_in)
{
	struct scratch *sc = scratch();
	struct sk_buff *skb = ctx->skb;
	if (sc && skb) {
		__u16 nh = BPF_CORE_READ(skb, network_header);
		if (parse_kernel(BPF_CORE_READ(skb, head) + nh, &sc->p)) {
			sc->stack = 0;
			sc->ifindex = 0;
			sc->task = 0;
			on_stage(sc, s_out, s_in, (__u64)skb);
		}
	}
	return 1; /* NF_ACCEPT */
}

#define NF_HOOK_PROG(name, stage)                                          \
	SEC("netfilter")                                                   \
	int kt_nf_##name(struct bpf_nf_ctx *ctx)                           \
	{                                                                  \
		return nf_stage(ctx, OUT_OF(stage), IN_OF(stage));         \
	}

NF_HOOK_PROG(local_out, KT_IP_LOCAL_OUT)
NF_HOOK_PROG(post_routing, KT_POST_ROUTING)
NF_HOOK_PROG(pre_routing, KT_IP_RCV)
NF_HOOK_PROG(local_in, KT_ICMP_RCV)

/* ---- tc (tcx or clsact) on the interface ------------------------------------------------------ */

static __always_inline int tc_stage(struct __sk_buff *skb, __u32 stage, __u64 kskb)
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
	if (parse_kernel(l3, &sc->p)) {
		sc->stack = 0;
		sc->ifindex = skb->ifindex;
		sc->task = 0;
		on_stage(sc, OUT_OF(stage), IN_OF(stage), kskb);
	}
	return -1; /* TC_ACT_UNSPEC: let the packet go on */
}

SEC("tc")
int kt_tc_egress(struct __sk_buff *skb)
{
	return tc_stage(skb, KT_TC_EGRESS, 0);
}

SEC("tc")
int kt_tc_ingress(struct __sk_buff *skb)
{
	return tc_stage(skb, KT_TC_INGRESS, 0);
}

/* Packet mode keys by the buffer's address, which a tc program learns through this kfunc (Linux
 * 6.3): the variants below load only in packet mode, and a kernel without it loses the tc stages. */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

SEC("tc")
int kt_tc_egress_pk(struct __sk_buff *skb)
{
	return tc_stage(skb, KT_TC_EGRESS, (__u64)bpf_cast_to_kern_ctx(skb));
}

SEC("tc")
int kt_tc_ingress_pk(struct __sk_buff *skb)
{
	return tc_stage(skb, KT_TC_INGRESS, (__u64)bpf_cast_to_kern_ctx(skb));
}

/* ---- a profile's own stages: generic programs, KT_GEN_SLOTS per kind -------------------------- */

/* The sk_buff among a function's or tracepoint's arguments: cfg.gen_how is a constant to the
 * verifier, so each program keeps one branch (and reads no argument its target lacks). */
static __always_inline __u64 arg_of(unsigned long long *args, int kind, int i)
{
	switch (cfg.gen_how[kind][i] & KT_HOW_ARG) {
	case 0: return args[0];
	case 1: return args[1];
	case 2: return args[2];
	case 3: return args[3];
	case 4: return args[4];
	case 5: return args[5];
	}
	return 0;
}

static __always_inline int generic(void *ctx, __u64 skb, int kind, int i)
{
	return traced(ctx, (struct sk_buff *)skb, cfg.gen_out[i], cfg.gen_in[i], (cfg.gen_how[kind][i] & KT_HOW_DATA) ? AT_DATA : AT_NETWORK_HEADER,
		      cfg.gen_out[i] != KT_NO_STAGE);
}

/* fentry and tp_btf get their target from user space before load (a profile names it). */
#define GENERIC(i)                                                                          \
	SEC("fentry")                                                                       \
	int kt_g_fe_##i(unsigned long long *ctx)                                            \
	{                                                                                   \
		return generic(ctx, arg_of(ctx, KT_GEN_FENTRY, i), KT_GEN_FENTRY, i);       \
	}                                                                                   \
	SEC("tp_btf")                                                                       \
	int kt_g_btf_##i(unsigned long long *ctx)                                           \
	{                                                                                   \
		return generic(ctx, arg_of(ctx, KT_GEN_TP_BTF, i), KT_GEN_TP_BTF, i);       \
	}                                                                                   \
	SEC("raw_tp")                                                                       \
	int kt_g_raw_##i(struct bpf_raw_tracepoint_args *ctx)                               \
	{                                                                                   \
		return generic(ctx, arg_of(ctx->args, KT_GEN_RAW_TP, i), KT_GEN_RAW_TP, i); \
	}                                                                                   \
	SEC("tracepoint")                                                                   \
	int kt_g_tp_##i(void *ctx)                                                          \
	{                                                                                   \
		__u64 skb = 0;                                                              \
		bpf_probe_read_kernel(&skb, sizeof(skb), ctx + (cfg.gen_off[i] & 0xfff));   \
		return generic(ctx, skb, KT_GEN_TRACEPOINT, i);                             \
	}                                                                                   \
	SEC("netfilter")                                                                    \
	int kt_g_nf_##i(struct bpf_nf_ctx *ctx)                                             \
	{                                                                                   \
		return nf_stage(ctx, cfg.gen_out[i], cfg.gen_in[i]);                        \
	}

GENERIC(0)
GENERIC(1)
GENERIC(2)
GENERIC(3)
GENERIC(4)
GENERIC(5)
GENERIC(6)
GENERIC(7)
GENERIC(8)
GENERIC(9)
GENERIC(10)
GENERIC(11)

char LICENSE[] SEC("license") = "GPL";
