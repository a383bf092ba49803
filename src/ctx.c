/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctx.c - the context: paste_open()/paste_close() wire the layers together, paste_poll() is one
 * run-to-completion round of the event loop (see ctx.h for its order), paste_run() loops it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lwip/etharp.h>
#include <lwip/ip4_frag.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/tcp.h>
#include <lwip/timeouts.h>

#include "ctx.h"
#include "paste_steer.h"
#include "pool_internal.h"

static int parse_ip(struct paste_ctx *ctx)
{
	struct in_addr a;
	uint8_t plen = ctx->opts.prefix_len ? ctx->opts.prefix_len : 24;

	if (!ctx->opts.ip)
		return ctx->opts.shared_ip ? 0
		                           : paste_fail(-EINVAL, "no IP address: give the stack "
		                                                 "a dedicated address (--ip), or "
		                                                 "use shared-IP mode");
	if (inet_pton(AF_INET, ctx->opts.ip, &a) != 1 || a.s_addr == 0)
		return paste_fail(-EINVAL, "'%s' is not an IPv4 address (expected e.g. 10.0.0.2)",
		                  ctx->opts.ip);
	if (plen > 32)
		return paste_fail(-EINVAL, "prefix length %u is out of range (1-32)", plen);
	ctx->ip = a.s_addr;
	ctx->netmask = htonl(plen == 32 ? 0xffffffffu : ~(0xffffffffu >> plen));
	return 0;
}

static int check_opts(struct paste_ctx *ctx, const struct paste_opts *in)
{
	struct paste_opts *o = &ctx->opts;

	if (!in || in->sz < offsetof(struct paste_opts, ip))
		return paste_fail(-EINVAL, "paste_open: options missing or .sz not set");
	memcpy(o, in, in->sz < sizeof(*o) ? in->sz : sizeof(*o));
	if (o->transport == PASTE_TRANSPORT_KERNEL)
		o->ifname = NULL; /* not used: kernel sockets in this namespace */
	else if (!o->ifname || !*o->ifname || strlen(o->ifname) >= IFNAMSIZ)
		return paste_fail(-EINVAL, "paste_open: an interface name is required (--ifname)");
	else
		snprintf(ctx->ifname, sizeof(ctx->ifname), "%s", o->ifname);
	if (o->ifname)
		o->ifname = ctx->ifname;
	if (!o->pool_path)
		o->pool_path = PASTE_POOL_DEFAULT_PATH;
	if (!o->batch_size)
		o->batch_size = 64;
	if (!o->ring_size)
		o->ring_size = 4096;
	if (!o->max_conns)
		o->max_conns = 4096;
	if (!o->ephemeral_lo && !o->ephemeral_hi) {
		o->ephemeral_lo = 49152;
		o->ephemeral_hi = 65535;
	}
	if (o->ring_size & (o->ring_size - 1) || o->ring_size < 64 || o->ring_size > 32768)
		return paste_fail(-EINVAL, "ring size %u: must be a power of two in 64-32768",
		                  o->ring_size);
	if (o->batch_size > o->ring_size)
		return paste_fail(-EINVAL, "batch size %u is larger than the ring (%u)",
		                  o->batch_size, o->ring_size);
	if (o->zero_copy != PASTE_ZC_AUTO && o->zero_copy != PASTE_ZC_REQUIRED &&
	    o->zero_copy != PASTE_ZC_OFF)
		return paste_fail(-EINVAL, "zero_copy %d: must be auto, required or off",
		                  (int)o->zero_copy);
	if (o->force_copy && o->zero_copy == PASTE_ZC_REQUIRED)
		return paste_fail(-EINVAL,
		                  "force_copy and zero_copy = required contradict each other");
	if (o->force_copy)
		o->zero_copy = PASTE_ZC_OFF;
	if (o->ephemeral_lo > o->ephemeral_hi)
		return paste_fail(-EINVAL, "ephemeral port range %u-%u is empty", o->ephemeral_lo,
		                  o->ephemeral_hi);
	if (o->transport == PASTE_TRANSPORT_KERNEL)
		return o->ip ? parse_ip(ctx) : 0;
	ctx->ifindex = (int)if_nametoindex(o->ifname);
	if (!ctx->ifindex)
		return paste_fail(-ENODEV,
		                  "no interface '%s' in this network namespace (ip link "
		                  "show lists them)",
		                  o->ifname);
	return parse_ip(ctx);
}

static void noop_flush(void *arg, const void *addr, size_t len)
{
}

static void noop_drain(void *arg)
{
}

static int open_pool(struct paste_ctx *ctx)
{
	struct paste_pool_opts po = {
	    .sz = sizeof(po),
	    .size = ctx->opts.pool_size,
	    .frame_size = ctx->opts.frame_size,
	    .create = true,
	};
	struct paste_pool_info info;
	int err;

	err = paste_pool__open(&ctx->pool, ctx->opts.pool_path, &po);
	if (err)
		return err;
	paste_pool__info(ctx->pool, &info);
	ctx->area = paste_pool__frames(ctx->pool);
	ctx->frame_size = info.frame_size;
	ctx->frame_count = info.frame_count;
	if (info.frame_count < 2 * ctx->opts.ring_size + PASTE_TX_RESERVE)
		return paste_fail(-EINVAL,
		                  "pool %s has %u frames: too few for rings of %u (need at "
		                  "least %u); use a larger --pool-size",
		                  ctx->opts.pool_path, info.frame_count, ctx->opts.ring_size,
		                  2 * ctx->opts.ring_size + PASTE_TX_RESERVE);
	ctx->frames = paste_pool__frame_alloc(ctx->pool);
	if (ctx->opts.no_persist) {
		static const struct paste_pmem_ops none = {noop_flush, noop_drain, NULL};

		pr_warn("--no-persist: flushes and fences are off; nothing written from now on is "
		        "durable");
		paste_pool__set_pmem_ops(ctx->pool, &none);
	}
	ctx->rxbufs = calloc(ctx->frame_count, sizeof(*ctx->rxbufs));
	if (!ctx->rxbufs)
		return paste_fail(-ENOMEM, "out of memory for %u frame descriptors",
		                  ctx->frame_count);
	return 0;
}

static int open_steer(struct paste_ctx *ctx)
{
	struct paste_steer_cfg cfg = {
	    .ifindex = ctx->ifindex,
	    .shared_ip = ctx->opts.shared_ip,
	    .ip = ctx->ip,
	    .eph_lo = ctx->opts.ephemeral_lo,
	    .eph_hi = ctx->opts.ephemeral_hi,
	    .mode = ctx->opts.xdp_mode,
	};
	int err;

	err = paste_steer__open(&ctx->steer, &cfg);
	if (!err)
		err = paste_steer__attach(ctx->steer);
	return err;
}

PASTE_EXPORT int paste_open(struct paste_ctx **out, const struct paste_opts *opts)
{
	struct paste_ctx *ctx;
	int err;

	if (!out)
		return paste_fail(-EINVAL, "paste_open: NULL context pointer");
	*out = NULL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return paste_fail(-ENOMEM, "paste_open: out of memory");
	ctx->xsk.fd = -1;
	ctx->epfd = -1;
	err = check_opts(ctx, opts);
	if (err)
		goto fail;
	ctx->xsk.ring_size = ctx->opts.ring_size;
	err = open_pool(ctx);
	if (err)
		goto fail;
	if (ctx->opts.transport == PASTE_TRANSPORT_KERNEL) {
		err = paste_k__open(ctx);
		if (err)
			goto fail;
		*out = ctx;
		return 0;
	}
	err = paste_netif__query(ctx);
	if (err)
		goto fail;
	err = open_steer(ctx);
	if (err)
		goto fail;
	err = paste_xsk__open(ctx);
	if (err)
		goto fail;
	err = paste_steer__set_xsk(ctx->steer, ctx->opts.queue, ctx->xsk.fd);
	if (err)
		goto fail;
	err = paste_netif__open(ctx);
	if (err)
		goto fail;
	*out = ctx;
	return 0;
fail:
	paste_close(&ctx);
	return err;
}

/* Every pcb lwIP has not handed to us (half-open, or closing after we let go) holds no frame of
 * ours once aborted; IP reassembly and the ARP queue may: age them out. */
static void drain_stack(struct paste_ctx *ctx)
{
	while (tcp_active_pcbs) {
		struct tcp_pcb *pcb = tcp_active_pcbs;

		tcp_arg(pcb, NULL);
		tcp_err(pcb, NULL);
		tcp_abort(pcb);
	}
	for (int i = 0; i < 2 * IP_REASS_MAXAGE + 2; i++)
		ip_reass_tmr();
	etharp_cleanup_netif(&ctx->netif);
}

PASTE_EXPORT int paste_shutdown(struct paste_ctx *ctx)
{
	paste_conns__shutdown_conns(ctx);
	paste_conns__reap(ctx);
	if (ctx->netif_added) {
		drain_stack(ctx);
		paste_xsk__kick(ctx); /* the RSTs */
	}
	return 0;
}

PASTE_EXPORT void paste_close(struct paste_ctx **pctx)
{
	struct paste_ctx *ctx = pctx ? *pctx : NULL;

	if (!ctx)
		return;
	if (ctx->netif_added || ctx->kernel) {
		paste_shutdown(ctx);
		paste_conns__shutdown(ctx); /* listeners */
	}
	if (ctx->netif_added)
		paste_netif__close(ctx);
	paste_k__close(ctx);
	if (ctx->pack_open)
		paste_frames__unref(ctx->frames, ctx->pack_frame);
	paste_steer__close(&ctx->steer); /* detach first: stop steering to a closing socket */
	paste_xsk__close(ctx);
	free(ctx->rxbufs);
	paste_pool__close(&ctx->pool);
	free(ctx);
	*pctx = NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The one fence of the round (group commit), plus the emulated media latency if asked. */
static void fence(struct paste_ctx *ctx)
{
	paste_pool__drain(ctx->pool);
	if (ctx->opts.fence_delay_ns) {
		uint64_t end = now_ns() + ctx->opts.fence_delay_ns;

		while (now_ns() < end)
			__builtin_ia32_pause();
	}
	ctx->fence_needed = false;
	ctx->st.fences++;
}

/* Nothing received: wait up to @ms (spinning in busy-poll mode). @return frames then taken. */
static int wait_rx(struct paste_ctx *ctx, int ms)
{
	uint64_t end;
	unsigned n;
	int r;

	if (!ctx->opts.busy_poll) {
		r = paste_xsk__wait(ctx, ms);
		if (r < 0)
			return r;
		return (int)paste_xsk__rx(ctx, ctx->opts.batch_size);
	}
	end = ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)ms * 1000000ull;
	do {
		if (xsk_ring_prod__needs_wakeup(&ctx->xsk.fill))
			recvfrom(ctx->xsk.fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		n = paste_xsk__rx(ctx, ctx->opts.batch_size);
		if (n)
			return (int)n;
	} while (!ctx->stop && now_ns() < end);
	return 0;
}

/* Kernel transport: wait for and handle socket events (spinning with --busy-poll). */
static int poll_kernel(struct paste_ctx *ctx, int timeout_ms)
{
	uint64_t end;
	int n;

	if (ctx->ready || ctx->stop)
		timeout_ms = 0;
	if (!ctx->opts.busy_poll || timeout_ms == 0)
		return paste_k__poll(ctx, timeout_ms);
	end = timeout_ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)timeout_ms * 1000000ull;
	do {
		n = paste_k__poll(ctx, 0);
	} while (n == 0 && !ctx->stop && now_ns() < end);
	return n;
}

/* AF_XDP + lwIP: take a batch of frames, waiting for them if there is nothing else to do. */
static int poll_paste(struct paste_ctx *ctx, int timeout_ms)
{
	int n = (int)paste_xsk__rx(ctx, ctx->opts.batch_size);

	if (!n && timeout_ms != 0 && !ctx->ready && !ctx->stop) {
		uint32_t t = sys_timeouts_sleeptime();
		int ms = t == SYS_TIMEOUTS_SLEEPTIME_INFINITE ? -1 : (int)t;

		if (timeout_ms >= 0 && (ms < 0 || timeout_ms < ms))
			ms = timeout_ms;
		n = wait_rx(ctx, ms);
	}
	return n;
}

PASTE_EXPORT int paste_poll(struct paste_ctx *ctx, int timeout_ms)
{
	int n = ctx->kernel ? poll_kernel(ctx, timeout_ms) : poll_paste(ctx, timeout_ms);

	if (n < 0 && n != -EINTR)
		return paste_fail(n, "waiting for packets: %s", strerror(-n));
	if (n > 0)
		ctx->st.rounds++;
	paste_conns__run_ready(ctx);
	if (ctx->fence_needed || paste_pool__needs_drain(ctx->pool))
		fence(ctx); /* before anything the callbacks queued can leave */
	if (ctx->round_hook) {
		int r = ctx->round_hook(ctx, ctx->round_arg);

		if (r < 0)
			pr_warn("round hook failed: %s", strerror(-r));
	}
	paste_conns__flush(ctx);
	if (!ctx->kernel)
		sys_check_timeouts();
	paste_conns__reap(ctx);
	if (ctx->kernel)
		paste_k__unstarve(ctx);
	if (!ctx->kernel) {
		paste_xsk__kick(ctx);
		paste_xsk__complete(ctx);
		paste_xsk__refill(ctx);
	}
	return n;
}

PASTE_EXPORT int paste_run(struct paste_ctx *ctx)
{
	int n;

	while (!ctx->stop) {
		n = paste_poll(ctx, -1);
		if (n < 0 && n != -EINTR)
			return n;
	}
	ctx->stop = 0;
	return 0;
}

PASTE_EXPORT void paste_stop(struct paste_ctx *ctx)
{
	ctx->stop = 1;
}

PASTE_EXPORT int paste_set_round_hook(struct paste_ctx *ctx,
                                      int (*fn)(struct paste_ctx *ctx, void *arg), void *arg)
{
	ctx->round_hook = fn;
	ctx->round_arg = arg;
	return 0;
}

PASTE_EXPORT struct paste_pool *paste_pool(struct paste_ctx *ctx)
{
	return ctx->pool;
}

PASTE_EXPORT int paste_stats(struct paste_ctx *ctx, struct paste_stats *out, size_t sz)
{
	struct paste_stats st = ctx->st;
	uint64_t cnt[PASTE_CNT_MAX] = {0};

	if (!out || !sz)
		return -EINVAL;
	if (!ctx->kernel)
		paste_xsk__kstats(ctx, &st);
	if (ctx->steer && !paste_steer__counters(ctx->steer, cnt, PASTE_CNT_MAX)) {
		st.steered = cnt[PASTE_CNT_STEERED];
		st.passed = cnt[PASTE_CNT_PASSED] + cnt[PASTE_CNT_NO_SOCKET];
	}
	st.conns_open = ctx->nconns;
	st.frames_total = ctx->frame_count;
	st.frames_free = paste_frames__nr(ctx->frames, PASTE_FRAME_FREE);
	st.frames_fill = paste_frames__nr(ctx->frames, PASTE_FRAME_FILL);
	st.frames_rx = paste_frames__nr(ctx->frames, PASTE_FRAME_RX);
	st.frames_tx = paste_frames__nr(ctx->frames, PASTE_FRAME_TX);
	st.frames_kept = paste_frames__nr(ctx->frames, PASTE_FRAME_KEPT);
	st.zerocopy = ctx->xsk.zerocopy;
	st.xdp_mode = ctx->steer ? paste_steer__attached_mode(ctx->steer) : PASTE_XDP_AUTO;
	memcpy(out, &st, sz < sizeof(st) ? sz : sizeof(st));
	return 0;
}
