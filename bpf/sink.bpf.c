// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * The far end of a probing link for bench/trace-sweep.ts, attached to the first router's side to
 * tell the sender's rate from the lab's:
 *  - pl_sink drops every frame in XDP (the sender alone: the rate a sweep can offer);
 *  - pl_sample passes one frame in SAMPLE_EVERY (32) to the router's kernel and drops the rest, like a
 *    first hop that polices: the lab answers the frames it takes, at a rate it can keep up with.
 * Not used by pathlens itself.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SAMPLE_EVERY 32

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

SEC("xdp")
int pl_sink(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int pl_sample(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&seen, &k);
	if (!n)
		return XDP_DROP;
	return (*n)++ % SAMPLE_EVERY == 0 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
