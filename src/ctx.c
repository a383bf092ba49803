/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctx.c - the context: paste_open()/paste_close() wire the pool and a transport together,
 * paste_poll() is one run-to-completion round of the event loop (see ctx.h for its order),
 * paste_run() loops it. The transport is chosen once, from the transports[] table below.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "pool_internal.h"

/* Every transport, by enum paste_transport (transport.h: adding one). */
static const struct paste_transport_ops *const transports[] = {
    [PASTE_TRANSPORT_PASTE] = &paste_transport_xdp,
    [PASTE_TRANSPORT_KERNEL] = &paste_transport_kernel,
    [PASTE_TRANSPORT_IO_URING] = &paste_transport_io_uring,
};

static int parse_ip(struct paste_ctx *ctx)
{
	struct in_addr a;
	uint8_t plen = ctx->opts.prefix_len ? ctx->opts.prefix_len : 24;

	if (!ctx->opts.ip)
		return ctx->opts.shared_ip || !ctx->tp->needs_ifname
		           ? 0
		           : paste_fail(
		                 -EINVAL,
		                 "no IP address: give the stack a dedicated address (--ip), or use shared-IP mode");
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
	int err;

	err = PASTE_OPTS_COPY(o, in, ip, "paste_open");
	if (err)
		return err;
	if ((unsigned)o->transport >= ARRAY_SIZE(transports) || !transports[o->transport])
		return paste_fail(-EINVAL, "paste_open: unknown transport %d", (int)o->transport);
	ctx->tp = transports[o->transport];
	if (!ctx->tp->needs_ifname)
		o->ifname = NULL; /* not used (kernel sockets in this namespace) */
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
	if (!o->syn_backlog)
		o->syn_backlog = 1024;
	if (o->syn_backlog < 16 || o->syn_backlog > 1u << 20)
		return paste_fail(-EINVAL, "syn_backlog %u: must be in 16-1048576", o->syn_backlog);
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
	err = ctx->tp->init ? ctx->tp->init(ctx) : 0;
	if (err)
		return err;
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
	    .sliced = ctx->opts.pool_sliced,
	    .slice = ctx->opts.pool_slice,
	};
	struct paste_pool_info info;
	int err;

	err = paste_pool__open(&ctx->pool, ctx->opts.pool_path, &po);
	if (err)
		return err;
	paste_pool__info(ctx->pool, &info, sizeof(info));
	ctx->area = paste_pool__frames(ctx->pool);
	ctx->frame_size = info.frame_size;
	ctx->frame_count = info.frame_count;
	if (info.frame_count < 2 * ctx->opts.ring_size + PASTE_POOL_SPARE_FRAMES)
		return paste_fail(
		    -EINVAL,
		    "pool %s has %u frames: too few for rings of %u (need at least %u); use a larger --pool-size",
		    ctx->opts.pool_path, info.frame_count, ctx->opts.ring_size,
		    2 * ctx->opts.ring_size + PASTE_POOL_SPARE_FRAMES);
	ctx->frames = paste_pool__frame_alloc(ctx->pool);
	if (ctx->opts.no_persist) {
		static const struct paste_pmem_ops none = {noop_flush, noop_drain, NULL};

		pr_warn(
		    "--no-persist: flushes and fences are off; nothing written from now on is durable");
		paste_pool__set_pmem_ops(ctx->pool, &none);
	}
	return 0;
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
	ctx->wake_fd = -1;
	err = check_opts(ctx, opts);
	if (!err)
		err = open_pool(ctx);
	if (!err)
		err = ctx->tp->open(ctx);
	if (err) {
		paste_close(&ctx);
		return err;
	}
	ctx->tp_open = true;
	*out = ctx;
	return 0;
}

PASTE_EXPORT int paste_shutdown(struct paste_ctx *ctx)
{
	paste_conns__shutdown_conns(ctx);
	paste_conns__reap(ctx);
	if (ctx->tp->shutdown)
		ctx->tp->shutdown(ctx);
	return 0;
}

PASTE_EXPORT void paste_close(struct paste_ctx **pctx)
{
	struct paste_ctx *ctx = pctx ? *pctx : NULL;

	if (!ctx)
		return;
	if (ctx->tp_open) {
		paste_shutdown(ctx);
		paste_conns__shutdown(ctx); /* listeners */
	}
	if (ctx->tp)
		ctx->tp->close(ctx);
	if (ctx->pack_open)
		paste_frames__unref(ctx->frames, ctx->pack_frame);
	paste_pool__close(&ctx->pool);
	free(ctx);
	*pctx = NULL;
}

/* The one fence of the round (group commit), plus the emulated media latency if asked. */
static void fence(struct paste_ctx *ctx)
{
	paste_pool__drain(ctx->pool);
	if (ctx->opts.fence_delay_ns) {
		uint64_t end = paste_now_ns() + ctx->opts.fence_delay_ns;

		while (paste_now_ns() < end)
			__builtin_ia32_pause();
	}
	ctx->fence_needed = false;
	ctx->st.fences++;
}

PASTE_EXPORT int paste_poll(struct paste_ctx *ctx, int timeout_ms)
{
	int n;

	if (ctx->ready || ctx->stop)
		timeout_ms = 0; /* work is waiting: take what input there is, do not wait */
	else if (ctx->nconnecting && (timeout_ms < 0 || timeout_ms > 50))
		timeout_ms = 50; /* connect timeouts are checked every round */
	n = ctx->tp->poll(ctx, timeout_ms);

	if (n < 0 && n != -EINTR)
		return paste_fail(n, "waiting for packets: %s", strerror(-n));
	if (n > 0)
		ctx->st.rounds++;
	paste_conns__connect_timers(ctx);
	paste_conns__run_ready(ctx);
	if (ctx->work_hook)
		ctx->work_hook(ctx, ctx->work_arg);
	if (ctx->fence_needed || paste_pool__needs_drain(ctx->pool))
		fence(ctx); /* before anything the callbacks queued can leave */
	if (ctx->round_hook) {
		int r = ctx->round_hook(ctx, ctx->round_arg);

		if (r < 0) { /* nothing this round acknowledged may leave: reset, do not send */
			pr_warn(
			    "round hook failed (%s): resetting every connection with output queued this round",
			    strerror(-r));
			paste_conns__abort_dirty(ctx);
		}
	}
	paste_conns__flush(ctx);
	if (ctx->tp->kick)
		ctx->tp->kick(ctx);
	if (ctx->tp->tick)
		ctx->tp->tick(ctx);
	paste_conns__reap(ctx);
	if (ctx->tp->after_round)
		ctx->tp->after_round(ctx);
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

PASTE_EXPORT int paste_set_work_hook(struct paste_ctx *ctx,
                                     void (*fn)(struct paste_ctx *ctx, void *arg), void *arg)
{
	ctx->work_hook = fn;
	ctx->work_arg = arg;
	return 0;
}

PASTE_EXPORT int paste_set_wake_fd(struct paste_ctx *ctx, int fd)
{
	int err;

	if (fd < 0)
		return paste_fail(-EINVAL, "paste_set_wake_fd: fd %d is not a file descriptor", fd);
	if (ctx->wake_fd >= 0)
		return paste_fail(-EBUSY, "paste_set_wake_fd: this context already has one (fd %d)",
		                  ctx->wake_fd);
	err = ctx->tp->wake_fd ? ctx->tp->wake_fd(ctx, fd) : 0;
	if (!err)
		ctx->wake_fd = fd;
	return err;
}

PASTE_EXPORT struct paste_pool *paste_pool(struct paste_ctx *ctx)
{
	return ctx->pool;
}

PASTE_EXPORT int paste_stats(struct paste_ctx *ctx, struct paste_stats *out, size_t sz)
{
	struct paste_stats st;

	if (!ctx)
		return paste_fail(-EINVAL, "paste_stats: NULL context");
	if (!out || !sz)
		return paste_info_copy(out, sz, &ctx->st, sizeof(st), "paste_stats");
	st = ctx->st;
	st.zerocopy = false;
	st.xdp_mode = PASTE_XDP_AUTO;
	if (ctx->tp->stats)
		ctx->tp->stats(ctx, &st);
	st.conns_open = ctx->nconns;
	st.frames_total = ctx->frame_count;
	st.frames_free = paste_frames__nr(ctx->frames, PASTE_FRAME_FREE);
	st.frames_fill = paste_frames__nr(ctx->frames, PASTE_FRAME_FILL);
	st.frames_rx = paste_frames__nr(ctx->frames, PASTE_FRAME_RX);
	st.frames_tx = paste_frames__nr(ctx->frames, PASTE_FRAME_TX);
	st.frames_kept = paste_frames__nr(ctx->frames, PASTE_FRAME_KEPT);
	return paste_info_copy(out, sz, &st, sizeof(st), "paste_stats");
}
