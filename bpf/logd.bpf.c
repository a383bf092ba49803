// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * logd.bpf.c - paste-logd's XDP program: every frame of both interfaces goes to paste-logd's AF_XDP
 * socket (paste-logd is the only way across), carrying a verdict in its XDP metadata: log it,
 * forward it without logging, or malformed (headers that do not fit the frame). What is logged is
 * set by user space in logd_conf and logd_rules (bpf/logd.h): everything, nothing, or IPv4 frames
 * matching a rule by protocol, address/prefix and port. The XSK map slot is the queue, offset by 64
 * for the second interface, so one program and one map serve both. GPL (as well) for
 * bpf_redirect_map().
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "logd.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct logd_conf);
} logd_conf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LOGD_MAX_RULES);
	__type(key, __u32);
	__type(value, struct logd_rule);
} logd_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 2 * LOGD_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} logd_xsks SEC(".maps");

/* --kernel-redirect (a benchmark baseline): side -> the other interface's ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} logd_devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOGD_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} logd_counters SEC(".maps");

#define IP_FRAG_OFFSET_MASK 0x1fff

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&logd_counters, &idx);

	if (c)
		*c += 1;
}

/* The facts selection looks at; filled by parse(). */
struct flow {
	__u32 saddr, daddr;
	__u16 sport, dport;
	__u8 proto;
	__u8 ipv4;
};

/* @return 0 if the headers fit the frame (ipv4 set for IPv4), -1 if they do not (malformed). */
static __always_inline int parse(void *data, void *data_end, struct flow *f)
{
	struct ethhdr *eth = data;
	struct iphdr *iph;
	__u32 hlen, tot;
	void *l4;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end || iph->version != 4 || iph->ihl < 5)
		return -1;
	hlen = iph->ihl * 4;
	tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen || (void *)iph + tot > data_end)
		return -1;
	f->ipv4 = 1;
	f->saddr = iph->saddr;
	f->daddr = iph->daddr;
	f->proto = iph->protocol;
	if (iph->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK))
		return 0; /* a later fragment: no transport header */
	l4 = (void *)iph + hlen;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end || th->doff < 5 || th->doff * 4 > tot - hlen)
			return -1;
		f->sport = bpf_ntohs(th->source);
		f->dport = bpf_ntohs(th->dest);
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end || bpf_ntohs(uh->len) < sizeof(*uh))
			return -1;
		f->sport = bpf_ntohs(uh->source);
		f->dport = bpf_ntohs(uh->dest);
	}
	return 0;
}

static __always_inline int rule_match(const struct logd_rule *r, const struct flow *f)
{
	if (r->proto && r->proto != f->proto)
		return 0;
	if (r->mask && (f->saddr & r->mask) != r->addr && (f->daddr & r->mask) != r->addr)
		return 0;
	if (r->port && r->port != f->sport && r->port != f->dport)
		return 0;
	return 1;
}

static __always_inline __u32 select(const struct logd_conf *conf, const struct flow *f)
{
	if (conf->mode == LOGD_SEL_ALL)
		return LOGD_V_LOG;
	if (conf->mode != LOGD_SEL_RULES || !f->ipv4)
		return LOGD_V_PASS;
#pragma unroll
	for (__u32 i = 0; i < LOGD_MAX_RULES; i++) {
		__u32 key = i;
		struct logd_rule *r;

		if (i >= conf->nrules)
			break;
		r = bpf_map_lookup_elem(&logd_rules, &key);
		if (r && rule_match(r, f))
			return LOGD_V_LOG;
	}
	return LOGD_V_PASS;
}

SEC("xdp")
int logd_xdp(struct xdp_md *ctx)
{
	struct flow f = {};
	struct logd_conf *conf;
	struct logd_meta *meta;
	__u32 key = 0, verdict, slot;
	void *data, *data_end;

	count(LOGD_CNT_SEEN);
	conf = bpf_map_lookup_elem(&logd_conf, &key);
	if (!conf)
		return XDP_DROP;
	if (conf->redirect)
		return bpf_redirect_map(&logd_devs, ctx->ingress_ifindex != conf->ifindex_a,
		                        XDP_DROP);
	slot = ctx->rx_queue_index;
	if (slot >= LOGD_MAX_QUEUES)
		slot = LOGD_MAX_QUEUES - 1;
	if (ctx->ingress_ifindex != conf->ifindex_a)
		slot += LOGD_MAX_QUEUES;
	if (!bpf_map_lookup_elem(&logd_xsks, &slot)) {
		count(LOGD_CNT_NO_SOCKET);
		return XDP_DROP;
	}

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (parse(data, data_end, &f)) {
		verdict = LOGD_V_MALFORMED;
		count(LOGD_CNT_MALFORMED);
	} else {
		verdict = select(conf, &f);
		if (verdict == LOGD_V_LOG)
			count(LOGD_CNT_SELECTED);
	}
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta))) {
		count(LOGD_CNT_NO_META);
		return bpf_redirect_map(&logd_xsks, slot, XDP_DROP);
	}
	meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > (void *)(long)ctx->data)
		return XDP_DROP;
	meta->verdict = verdict;
	meta->magic = LOGD_META_MAGIC;
	return bpf_redirect_map(&logd_xsks, slot, XDP_DROP);
}

char _license[] SEC("license") = "GPL";
