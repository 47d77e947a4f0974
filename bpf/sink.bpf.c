// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * A link's far end that discards every frame in XDP: bench/trace-sweep.ts attaches it to the
 * first router's side of the probing link to time the sender alone (the rate a sweep can offer),
 * apart from how fast the lab's routers forward. Not used by pathlens itself.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int pl_sink(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
