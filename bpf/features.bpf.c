// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * Tiny programs that prove each attach path and loader feature of the shim before a capability
 * relies on it (test/netns/bpf-attach.test.ts): the same counter bumped from a tp_btf program,
 * a raw tracepoint, a classic tracepoint (through a perf event) and a netfilter hook, by a weight
 * set in read-only data before load. ktrace's stages use these paths.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum { PL_TP_BTF, PL_RAW_TP, PL_TRACEPOINT, PL_NETFILTER, PL_SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PL_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} pl_hits SEC(".maps");

/* Set before load (user space writes .rodata): the verifier sees a constant. */
const volatile __u64 pl_weight = 1;

static __always_inline void hit(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&pl_hits, &slot);
	if (c)
		__sync_fetch_and_add(c, pl_weight);
}

SEC("tp_btf/netif_receive_skb")
int pl_tp_btf(unsigned long long *ctx)
{
	hit(PL_TP_BTF);
	return 0;
}

SEC("raw_tp/netif_receive_skb")
int pl_raw_tp(void *ctx)
{
	hit(PL_RAW_TP);
	return 0;
}

SEC("tracepoint/net/netif_receive_skb")
int pl_tracepoint(void *ctx)
{
	hit(PL_TRACEPOINT);
	return 0;
}

/* Netfilter programs (Linux 6.4): libbpf before 1.3 does not know the section, so the loader sets
 * the program type itself. Returns NF_ACCEPT. */
SEC("netfilter")
int pl_netfilter(void *ctx)
{
	hit(PL_NETFILTER);
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
