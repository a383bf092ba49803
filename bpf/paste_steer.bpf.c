// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * paste_steer.bpf.c - the XDP program that decides, frame by frame, what the user-space stack gets.
 *
 * Frames the stack owns are redirected to the AF_XDP socket of their RX queue (paste_xsks indexed
 * by rx_queue_index); everything else goes on to the kernel (XDP_PASS). What "owns" means is set by
 * the library through paste_conf (see paste_steer.h):
 *  - dedicated IP: every IPv4 frame to conf.ip (any protocol) and ARP asking for conf.ip;
 *  - shared IP: only TCP to conf.ip whose destination port is a listening port (paste_ports) or in
 *    the stack's ephemeral range; ARP, ICMP, UDP and other ports stay with the kernel.
 * A frame that is too short for the headers it claims, IPv6, and anything unrecognised is passed.
 * A matched frame with no socket on its queue is passed too, and counted apart
 * (PASTE_CNT_NO_SOCKET). Licensed GPL (as well) because bpf_redirect_map() is available only to GPL
 * programs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "paste_steer.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct paste_steer_conf);
} paste_conf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PASTE_STEER_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} paste_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, PASTE_STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} paste_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PASTE_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} paste_counters SEC(".maps");

/*
 * ARP for IPv4 over Ethernet (RFC 826). Spelled out here: <linux/if_arp.h> pulls in libc headers,
 * which do not build for the BPF target.
 */
#define ARP_HRD_ETHER 1
struct arp_eth_ipv4 {
	__be16 ar_hrd; /* hardware type: ARP_HRD_ETHER */
	__be16 ar_pro; /* protocol type: ETH_P_IP */
	__u8 ar_hln;   /* hardware address length: 6 */
	__u8 ar_pln;   /* protocol address length: 4 */
	__be16 ar_op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

#define IP_FRAG_OFFSET_MASK 0x1fff

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&paste_counters, &idx);

	if (c)
		*c += 1; /* per-CPU slot: no other writer */
}

static __always_inline int pass(void)
{
	count(PASTE_CNT_PASSED);
	return XDP_PASS;
}

static __always_inline int steer(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;

	if (!bpf_map_lookup_elem(&paste_xsks, &queue)) {
		count(PASTE_CNT_NO_SOCKET);
		return XDP_PASS;
	}
	count(PASTE_CNT_STEERED);
	return bpf_redirect_map(&paste_xsks, queue, XDP_PASS);
}

/* Dedicated mode: is this an ARP packet (request or reply) whose target protocol address is @ip? */
static __always_inline int arp_for_us(void *l3, void *data_end, __u32 ip)
{
	struct arp_eth_ipv4 *arp = l3;
	__u32 tpa;

	if ((void *)(arp + 1) > data_end)
		return 0;
	if (arp->ar_hrd != bpf_htons(ARP_HRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
	    arp->ar_hln != ETH_ALEN || arp->ar_pln != 4)
		return 0;
	__builtin_memcpy(&tpa, arp->tpa, sizeof(tpa));
	return tpa == ip;
}

/* Shared mode: TCP (first fragment or unfragmented) to a listening port or the ephemeral range. */
static __always_inline int tcp_for_us(struct iphdr *iph, void *data_end,
                                      const struct paste_steer_conf *conf)
{
	struct tcphdr *tcp;
	__u16 port;

	if (iph->protocol != IPPROTO_TCP)
		return 0;
	if (iph->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK))
		return 0; /* a later fragment: no TCP header to look at */
	tcp = (void *)iph + iph->ihl * 4;
	if ((void *)(tcp + 1) > data_end)
		return 0;
	port = bpf_ntohs(tcp->dest);
	if (bpf_map_lookup_elem(&paste_ports, &port))
		return 1;
	return conf->eph_lo && port >= conf->eph_lo && port <= conf->eph_hi;
}

SEC("xdp")
int paste_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct paste_steer_conf *conf;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	__u32 key = 0;

	conf = bpf_map_lookup_elem(&paste_conf, &key);
	if (!conf || conf->mode == PASTE_STEER_OFF)
		return pass();
	if ((void *)(eth + 1) > data_end)
		return pass();

	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		if (conf->mode == PASTE_STEER_DEDICATED && arp_for_us(eth + 1, data_end, conf->ip))
			return steer(ctx);
		return pass();
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return pass();

	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end || iph->version != 4 || iph->ihl < 5)
		return pass();
	if (iph->daddr != conf->ip)
		return pass();
	if (conf->mode == PASTE_STEER_DEDICATED)
		return steer(ctx);
	if (conf->mode == PASTE_STEER_SHARED && tcp_for_us(iph, data_end, conf))
		return steer(ctx);
	return pass();
}

char _license[] SEC("license") = "GPL";
