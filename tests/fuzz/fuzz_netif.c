/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_netif.c - libFuzzer target for the frame input path: arbitrary Ethernet frames into the
 * stack (paste_netif__input -> lwIP ethernet_input -> TCP -> the connection queues -> on_data).
 *
 * The harness builds a paste context without a network: a 16 MiB pool on /dev/shm, its frame
 * allocator, lwIP on a netif (paste_netif__open) whose XSK TX and completion rings are plain
 * memory served by a fake kernel (see fake_kernel()), and two listeners made with
 * paste_ptp__listen_pcb(): port 7 echoes and consumes what it receives, port 8 keeps every
 * received byte (paste_conn__keep, as a durable server does) and releases the references when the
 * connection ends. Stack address 10.0.0.2/24, MAC 02:00:00:00:00:02.
 *
 * Input: [flags][len16 frame]... (at most MAX_FRAMES frames, each copied into an RX frame of the
 * pool and fed like a received one). flags: bit 0 recompute IPv4 header and TCP/UDP/ICMP
 * checksums of every frame (lwIP drops bad ones, so mutations stay interesting); bit 1 the
 * applications consume nothing (a slow reader); bit 2 the applications close after their first
 * data; bit 3 run lwIP's TCP timer after every frame (retransmissions, timeouts).
 *
 * After every input every connection and pcb is aborted, IP reassembly is aged out, the ARP and
 * ND caches are flushed, and the frame accounting must hold: the allocator audit passes and no
 * frame is left RX, KEPT or TX (so inputs are independent, and a leaked frame is a crash).
 * lwIP's initial sequence number is 6510 while tcp_ticks is 0 (reset per input), so a seed can
 * complete a handshake.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdbool.h>
#include <unistd.h>

#include <lwip/etharp.h>
#include <lwip/ip4_frag.h>
#include <lwip/ip6_frag.h>
#include <lwip/nd6.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/tcp.h>
#include <lwip/timeouts.h>

#include <paste/index.h>

#include "fuzz.h"
#include "ptransport.h"
#include "pool_internal.h"

#define MAX_FRAMES 64
#define MAX_KEPT   64
#define F_CSUM     0x01
#define F_SLOW     0x02
#define F_CLOSE    0x04
#define F_TIMER    0x08

static struct paste_ctx *ctx;
static struct paste_ptp *pt;
static uint8_t flags;
static char pool_path[64];
static uint64_t tx_frames, tx_bytes;

/* What the keeping application holds for one connection. */
struct kept {
	struct paste_ref refs[MAX_KEPT];
	unsigned n;
};

/*
 * The "kernel" side of the XSK rings: the TX and completion rings are plain memory here, so
 * paste_xsk__tx() runs unchanged (TX frames accounted as in production); fake_kernel() takes what
 * was submitted, checks each descriptor and completes it, as the NIC would.
 */
#define RING 256u
static uint32_t tx_prod, tx_cons, comp_prod, comp_cons, ring_flags;
static struct xdp_desc tx_descs[RING];
static uint64_t comp_addrs[RING];

static void fake_rings(void)
{
	struct paste_xsk *x = &pt->xsk;

	x->ring_size = RING;
	x->tx = (struct xsk_ring_prod){.cached_cons = RING,
	                               .mask = RING - 1,
	                               .size = RING,
	                               .producer = &tx_prod,
	                               .consumer = &tx_cons,
	                               .ring = tx_descs,
	                               .flags = &ring_flags};
	x->comp = (struct xsk_ring_cons){.mask = RING - 1,
	                                 .size = RING,
	                                 .producer = &comp_prod,
	                                 .consumer = &comp_cons,
	                                 .ring = comp_addrs,
	                                 .flags = &ring_flags};
}

static void fake_kernel(void)
{
	for (; tx_cons != tx_prod; tx_cons++) {
		const struct xdp_desc *d = &tx_descs[tx_cons & (RING - 1)];
		uint32_t frame = (uint32_t)(d->addr / ctx->frame_size);

		FZ_CHECK(d->addr % ctx->frame_size == 0 && frame < ctx->frame_count);
		FZ_CHECK(ctx->frames->state[frame] == PASTE_FRAME_TX);
		FZ_CHECK(d->len >= 14 && d->len <= pt->nif.mtu + 14);
		FZ_CHECK(comp_prod - comp_cons < RING);
		comp_addrs[comp_prod++ & (RING - 1)] = d->addr;
		tx_frames++;
		tx_bytes += d->len;
	}
	paste_xsk__complete(&pt->xsk);
}

static int on_accept(struct paste_conn *c, void *user)
{
	if (user) { /* the keeping listener */
		struct kept *k = calloc(1, sizeof(*k));

		if (!k)
			return -ENOMEM;
		paste_conn__set_user(c, k);
	}
	return 0;
}

static void on_data(struct paste_conn *c, void *user)
{
	static uint8_t out[4096];
	struct kept *k = paste_conn__user(c);
	size_t pending = paste_conn__pending(c);
	const struct paste_slot *s;
	unsigned n, got = 0;

	if (pending && !(flags & F_SLOW)) {
		if (k && k->n < MAX_KEPT &&
		    !paste_conn__keep(c, 0, pending, false, k->refs + k->n, MAX_KEPT - k->n, &got))
			k->n += got;
		s = paste_conn__slots(c, &n);
		for (unsigned i = 0; i < n && !k; i++) {
			FZ_CHECK(s[i].frame < ctx->frame_count &&
			         s[i].offset + s[i].len <= ctx->frame_size);
			memcpy(out, s[i].data, s[i].len < sizeof(out) ? s[i].len : sizeof(out));
			FZ_CHECK(paste_conn__send(
			             c, out, s[i].len < sizeof(out) ? s[i].len : sizeof(out)) >= 0);
		}
		FZ_CHECK(paste_conn__consume(c, pending) == 0);
	}
	if (paste_conn__eof(c) || (flags & F_CLOSE))
		paste_conn__close(c);
}

static void on_close(struct paste_conn *c, int err, void *user)
{
	struct kept *k = paste_conn__user(c);

	if (!k)
		return;
	for (unsigned i = 0; i < k->n; i++)
		FZ_CHECK(paste_release(ctx, &k->refs[i]) == 0);
	free(k);
}

static void add_listener(uint16_t port, void *user)
{
	struct paste_listener *l = calloc(1, sizeof(*l) + ctx->tp->listener_size);

	FZ_CHECK(l);
	l->ops = (struct paste_conn_ops){
	    .sz = sizeof(l->ops), .on_accept = on_accept, .on_data = on_data, .on_close = on_close};
	l->user = user;
	l->port = port;
	l->ctx = ctx;
	FZ_CHECK(paste_ptp__listen_pcb(l) == 0);
	ctx->listeners[ctx->nlisteners++] = l;
}

static void remove_pool(void)
{
	unlink(pool_path);
}

static void setup(void)
{
	struct paste_pool_opts po = {.sz = sizeof(po),
	                             .size = 16 << 20,
	                             .frame_size = 2048,
	                             .create = true,
	                             .must_create = true};
	struct paste_pool_info info;
	static int keep_marker;

	fz_quiet();
	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-fuzz-netif-%d.pool", (int)getpid());
	unlink(pool_path);
	ctx = calloc(1, sizeof(*ctx));
	FZ_CHECK(ctx);
	FZ_CHECK(paste_pool__open(&ctx->pool, pool_path, &po) == 0);
	atexit(remove_pool);
	paste_pool__info(ctx->pool, &info, sizeof(info));
	ctx->opts.max_conns = 8; /* small: refusing connections is reachable */
	ctx->area = paste_pool__frames(ctx->pool);
	ctx->frame_size = info.frame_size;
	ctx->frame_count = info.frame_count;
	ctx->frames = paste_pool__frame_alloc(ctx->pool);
	ctx->tp = &paste_transport_xdp; /* its table, without its open: no NIC, no steering */
	pt = calloc(1, sizeof(*pt));
	FZ_CHECK(pt);
	ctx->tp_state = pt;
	pt->xsk = (struct paste_xsk){.frames = ctx->frames,
	                             .area = ctx->area,
	                             .frame_size = ctx->frame_size,
	                             .frame_count = ctx->frame_count,
	                             .st = &ctx->st,
	                             .fd = -1};
	pt->nif = (struct paste_netif){.xsk = &pt->xsk,
	                               .frames = ctx->frames,
	                               .st = &ctx->st,
	                               .ifname = "fuzz0",
	                               .frame_size = ctx->frame_size,
	                               .frame_count = ctx->frame_count,
	                               .ip = htonl(0x0a000002),
	                               .netmask = htonl(0xffffff00),
	                               .mtu = 1500};
	memcpy(pt->nif.mac, "\x02\x00\x00\x00\x00\x02", 6);
	ctx->ip = htonl(0x0a000002);
	ctx->netmask = htonl(0xffffff00);
	fake_rings();
	FZ_CHECK(paste_netif__open(&pt->nif) == 0);
	add_listener(7, NULL);
	add_listener(8, &keep_marker);
}

/* ---- checksums (flag bit 0) ---------------------------------------------------------------- */

static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
	for (; n > 1; p += 2, n -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (n)
		s += (uint32_t)p[0] << 8;
	return s;
}

static void put_csum(uint8_t *at, uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	s = ~s & 0xffff;
	at[0] = (uint8_t)(s >> 8);
	at[1] = (uint8_t)s;
}

/* Make the IPv4 header checksum and the TCP/UDP/ICMP checksum of @f right (where they fit). */
static void fix_checksums(uint8_t *f, size_t len)
{
	uint8_t *ip = f + 14, *l4;
	size_t ihl, tot, l4len;
	uint32_t s;

	if (len < 34 || f[12] != 0x08 || f[13] != 0x00)
		return;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	if (ihl < 20 || 14 + ihl > len)
		return;
	ip[10] = ip[11] = 0;
	put_csum(ip + 10, sum16(0, ip, ihl));
	tot = (size_t)ip[2] << 8 | ip[3];
	if (tot > len - 14)
		tot = len - 14;
	if (tot < ihl || (ip[6] & 0x3f) || ip[7]) /* fragments: only the header */
		return;
	l4 = ip + ihl;
	l4len = tot - ihl;
	s = sum16(0, ip + 12, 8) + ip[9] + (uint32_t)l4len;
	if (ip[9] == 6 && l4len >= 20) {
		l4[16] = l4[17] = 0;
		put_csum(l4 + 16, sum16(s, l4, l4len));
	} else if (ip[9] == 17 && l4len >= 8) {
		l4[6] = l4[7] = 0;
		put_csum(l4 + 6, sum16(s, l4, l4len));
	} else if (ip[9] == 1 && l4len >= 4) {
		l4[2] = l4[3] = 0;
		put_csum(l4 + 2, sum16(0, l4, l4len));
	}
}

/* ---- one input --------------------------------------------------------------------------- */

static void round_end(void)
{
	paste_conns__run_ready(ctx);
	paste_pool__drain(ctx->pool);
	paste_conns__flush(ctx);
	if (flags & F_TIMER)
		tcp_tmr();
	sys_check_timeouts();
	paste_conns__reap(ctx);
	paste_xsk__kick(&pt->xsk);
	fake_kernel();
}

/* Abort everything an input left, age out what lwIP holds, and check the frame accounting. */
static void teardown_input(void)
{
	struct paste_conn *c;

	for (c = ctx->conns; c; c = c->next)
		paste_conn__abort(c);
	paste_conns__reap(ctx);
	while (tcp_active_pcbs)
		tcp_abort(tcp_active_pcbs);
	while (tcp_tw_pcbs)
		tcp_abort(tcp_tw_pcbs);
	for (int i = 0; i <= IP_REASS_MAXAGE; i++)
		ip_reass_tmr();
	for (int i = 0; i <= IPV6_REASS_MAXAGE; i++)
		ip6_reass_tmr();
	etharp_cleanup_netif(&pt->nif.netif);
	nd6_cleanup_netif(&pt->nif.netif);
	paste_pool__drain(ctx->pool); /* deferred releases */
	fake_kernel();
	if (getenv("PASTE_FUZZ_VERBOSE"))
		fprintf(
		    stderr,
		    "netif: accepted %llu refused %llu payload %llu bytes kept %llu bytes, tx %llu "
		    "frames %llu bytes\n",
		    (unsigned long long)ctx->st.conns_accepted,
		    (unsigned long long)ctx->st.conns_refused,
		    (unsigned long long)ctx->st.rx_payload_bytes,
		    (unsigned long long)ctx->st.kept_bytes, (unsigned long long)tx_frames,
		    (unsigned long long)tx_bytes);
	FZ_CHECK(ctx->conns == NULL && ctx->nconns == 0 && !ctx->ready && !ctx->dead);
	FZ_CHECK(paste_frames__audit(ctx->frames));
	FZ_CHECK(paste_frames__nr(ctx->frames, PASTE_FRAME_RX) == 0);
	FZ_CHECK(paste_frames__nr(ctx->frames, PASTE_FRAME_KEPT) == 0);
	FZ_CHECK(paste_frames__nr(ctx->frames, PASTE_FRAME_TX) == 0);
	FZ_CHECK(paste_frames__nr(ctx->frames, PASTE_FRAME_FREE) == ctx->frame_count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};

	if (!ctx)
		setup();
	tcp_ticks = 0; /* deterministic initial sequence numbers (see above) */
	flags = fz_u8(&f);
	for (unsigned k = 0; k < MAX_FRAMES && f.n; k++) {
		size_t want = fz_u16(&f), got;
		const uint8_t *bytes;
		uint32_t idx;
		uint8_t *frame;

		if (want > ctx->frame_size)
			want = ctx->frame_size;
		bytes = fz_bytes(&f, want, &got);
		if (paste_frames__alloc(ctx->frames, PASTE_FRAME_RX, &idx))
			break;
		frame = ctx->area + (uint64_t)idx * ctx->frame_size;
		memcpy(frame, bytes, got);
		if (flags & F_CSUM)
			fix_checksums(frame, got);
		paste_netif__input(&pt->nif, idx, frame, (uint32_t)got);
		round_end();
	}
	teardown_input();
	return 0;
}
