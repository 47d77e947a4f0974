// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * `pathlens trace --xdp`: the AF_XDP sweep's receive side. On the probing interface, an ICMP or
 * ICMPv6 error (Time Exceeded, Destination Unreachable) quoting one of this run's UDP probes
 * (its source port, a destination port in the run's range) is stamped with the monotonic time the
 * program saw it and redirected to the AF_XDP socket of its receive queue. The stamp is written
 * over the frame's Ethernet addresses, which nobody reads after this point (XDP metadata would be
 * the tidy place, but not every kernel lets XDP programs use bpf_xdp_adjust_meta).
 * Everything else passes to the kernel untouched: ARP and neighbour discovery, other traffic,
 * other runs' replies. The quote's headers alone decide (RFC 792's 8 bytes are enough); what a
 * reply means is still decided in TypeScript.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xsk.h"

const volatile struct xsk_config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsk_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSK_C_NUM);
	__type(key, __u32);
	__type(value, __u64);
} xsk_counts SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&xsk_counts, &c);
	if (v)
		*v += 1;
}

static __always_inline bool ours(const __u8 *udp, const void *end)
{
	if ((const void *)(udp + 4) > end)
		return false;
	__u16 sport = ((__u16)udp[0] << 8) | udp[1];
	__u16 dport = ((__u16)udp[2] << 8) | udp[3];
	return sport == cfg.sport && dport >= cfg.dport_lo && dport <= cfg.dport_hi;
}

/* The quoted probe of an ICMP(v6) error starting at `l3`, or false. */
static __always_inline bool quotes_probe(const __u8 *l3, const void *end, __u16 proto)
{
	if (proto == bpf_htons(ETH_P_IP) && cfg.family == 4) {
		if ((const void *)(l3 + 20) > end)
			return false;
		__u32 ihl = (l3[0] & 0xf) * 4;
		if ((l3[0] >> 4) != 4 || ihl < 20 || l3[9] != IPPROTO_ICMP)
			return false;
		const __u8 *icmp = l3 + ihl;
		if ((const void *)(icmp + 8 + 20) > end)
			return false;
		if (icmp[0] != 11 && icmp[0] != 3)
			return false;
		const __u8 *in = icmp + 8;
		__u32 iihl = (in[0] & 0xf) * 4;
		if ((in[0] >> 4) != 4 || iihl < 20 || in[9] != IPPROTO_UDP)
			return false;
		return ours(in + iihl, end);
	}
	if (proto == bpf_htons(ETH_P_IPV6) && cfg.family == 6) {
		if ((const void *)(l3 + 40 + 8 + 40) > end)
			return false;
		if ((l3[0] >> 4) != 6 || l3[6] != IPPROTO_ICMPV6)
			return false;
		const __u8 *icmp = l3 + 40;
		if (icmp[0] != 3 && icmp[0] != 1)
			return false;
		const __u8 *in = icmp + 8;
		if ((in[0] >> 4) != 6 || in[6] != IPPROTO_UDP)
			return false;
		return ours(in + 40, end);
	}
	return false;
}

SEC("xdp")
int pl_xsk(struct xdp_md *ctx)
{
	const __u8 *data = (const __u8 *)(long)ctx->data;
	const void *end = (const void *)(long)ctx->data_end;
	if ((const void *)(data + ETH_HLEN) > end)
		goto pass;
	__u16 proto = *(const __u16 *)(data + 12);
	if (!quotes_probe(data + ETH_HLEN, end, proto))
		goto pass;
	/* quotes_probe checked that the frame holds more than the Ethernet header. */
	struct xsk_stamp *m = (struct xsk_stamp *)(long)ctx->data;
	if ((void *)(m + 1) > end)
		goto pass;
	m->rx_ns = bpf_ktime_get_ns();
	m->magic = XSK_STAMP_MAGIC;
	int act = bpf_redirect_map(&xsk_socks, ctx->rx_queue_index, XDP_PASS);
	count(act == XDP_REDIRECT ? XSK_C_REDIRECTED : XSK_C_NO_SOCKET);
	return act;
pass:
	count(XSK_C_PASSED);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
