/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keep.c - the durable side of the receive path (PASTE's Pring/Pbuf): persist received bytes where
 * they are, keep them as references that survive restarts, release them.
 *
 * Keeping a range adds a reference to its frame in the pool's allocator: the frame leaves the
 * RX/FREE cycle and is not put back on the fill ring until every reference is gone. The pbuf that
 * delivered the frame may be freed before or after that; the allocator tracks both holds. Small
 * payloads can instead be copied into a "packing" frame (copy_threshold): many small records share
 * one frame instead of each pinning a 2 KiB frame for a few bytes. Under pool pressure
 * (paste_set_copy_pressure: fewer free frames than a threshold) small payloads are packed too, so a
 * pool whose frames each pin a few live bytes does not run out while its live data is small.
 *
 * The fence is not here: paste_poll() issues one per round, after the callbacks, before any output
 * (ctx.c), when anything was flushed in the round.
 */
#include <errno.h>
#include <string.h>

#include "ctx.h"
#include "pool_internal.h"

static bool in_area(const struct paste_ctx *ctx, const void *addr, size_t len)
{
	const uint8_t *a = addr;
	const uint8_t *end = ctx->area + (uint64_t)ctx->frame_size * ctx->frame_count;

	return a >= ctx->area && a <= end && len <= (size_t)(end - a);
}

PASTE_EXPORT int paste_persist(struct paste_ctx *ctx, const void *addr, size_t len)
{
	if (!in_area(ctx, addr, len))
		return paste_fail(-EINVAL,
		                  "paste_persist: [%p, +%zu) is not inside the pool's frames", addr,
		                  len);
	paste_pool__flush(ctx->pool, addr, len);
	ctx->fence_needed = true;
	ctx->st.persisted_bytes += len;
	return 0;
}

/*
 * Kept frames leave the RX/FREE cycle. Below this many free frames the fill ring can no longer be
 * topped up (the transport's frames_reserved stay for TX), or recv() has no frame to read into, so
 * reception would stop: refuse to keep instead, and let the application answer "full" while it can
 * still receive.
 */
static bool keep_would_starve(const struct paste_ctx *ctx)
{
	uint32_t held_back = 2 * ctx->opts.batch_size + ctx->tp->frames_reserved;

	return paste_frames__nr(ctx->frames, PASTE_FRAME_FREE) < held_back;
}

/*
 * paste_set_copy_pressure(): pack @len bytes of frame @frame instead of pinning it? Only bytes of a
 * received frame: one that holds stored data only (a reply pinning a stored value, a second
 * reference to it) is pinned already, a copy would only take packing space.
 */
static bool keep_under_pressure(const struct paste_ctx *ctx, uint32_t frame, size_t len)
{
	return len < ctx->pressure_threshold &&
	       paste_frames__nr(ctx->frames, PASTE_FRAME_FREE) < ctx->pressure_frames &&
	       paste_frames__received(ctx->frames, frame);
}

/* Copy @len bytes into the current packing frame (a fresh one when it does not fit). */
static int keep_copy(struct paste_ctx *ctx, const void *addr, size_t len, struct paste_ref *ref)
{
	uint8_t *dst;
	int err;

	if (!ctx->pack_open || ctx->pack_off + len > ctx->frame_size) {
		uint32_t idx;

		if (paste_frames__alloc(ctx->frames, PASTE_FRAME_KEPT, &idx))
			return paste_fail_quiet(
			    -ENOSPC,
			    "paste_keep: no free frame to pack small payloads into: the pool is full; release references");
		if (ctx->pack_open) /* drop our own hold on the full one */
			paste_frames__unref(ctx->frames, ctx->pack_frame);
		ctx->pack_frame = idx;
		ctx->pack_off = 0;
		ctx->pack_open = true;
	}
	dst = ctx->area + (uint64_t)ctx->pack_frame * ctx->frame_size + ctx->pack_off;
	memcpy(dst, addr, len);
	/* the last line waits for the next copy, which goes on in it, or the fence */
	paste_pool__flush_append(ctx->pool, dst, len);
	ctx->fence_needed = true;
	ref->off = (uint64_t)(dst - (uint8_t *)paste_pool__base(ctx->pool));
	ref->len = (uint32_t)len;
	ref->flags = 0;
	ctx->pack_off += (uint32_t)PASTE_ALIGN_UP(len, 8);
	err = paste_pool__ref_get(ctx->pool, ref);
	if (!err)
		ctx->st.kept_copied_bytes += len;
	return err;
}

PASTE_EXPORT int paste_keep(struct paste_ctx *ctx, const void *addr, size_t len,
                            struct paste_ref *ref)
{
	struct paste_ref r;
	uint32_t frame;
	int err;

	if (!ref || !len || len > UINT32_MAX || !in_area(ctx, addr, len))
		return paste_fail(-EINVAL, "paste_keep: [%p, +%zu) is not inside the pool's frames",
		                  addr, len);
	r.off = (uint64_t)((const uint8_t *)addr - (uint8_t *)paste_pool__base(ctx->pool));
	r.len = (uint32_t)len;
	r.flags = 0;
	if (!paste_pool__ref_in_frame(ctx->pool, &r, &frame))
		return paste_fail(
		    -EINVAL,
		    "paste_keep: [%p, +%zu) crosses a frame boundary: keep each slot separately (paste_conn__keep does)",
		    addr, len);
	if (keep_would_starve(ctx))
		return paste_fail_quiet(
		    -ENOSPC,
		    "paste_keep: the pool is nearly full (%u frames free): keeping more would stop reception; release references or use a larger pool",
		    paste_frames__nr(ctx->frames, PASTE_FRAME_FREE));
	if (ctx->opts.copy_threshold && len < ctx->opts.copy_threshold) {
		err = keep_copy(ctx, addr, len, &r);
	} else if (keep_under_pressure(ctx, frame, len)) {
		err = keep_copy(ctx, addr, len, &r);
		ctx->st.kept_pressure_copied_bytes += err ? 0 : len;
	} else {
		err = paste_pool__ref_get(ctx->pool, &r);
	}
	if (err)
		return err;
	ctx->st.kept_bytes += len;
	*ref = r;
	return 0;
}

PASTE_EXPORT int paste_set_copy_pressure(struct paste_ctx *ctx, uint32_t free_below,
                                         uint32_t threshold)
{
	if (!ctx)
		return paste_fail(-EINVAL, "paste_set_copy_pressure: NULL context");
	if (threshold > ctx->frame_size)
		return paste_fail(
		    -EINVAL, "paste_set_copy_pressure: threshold %u is above the frame size (%u)",
		    threshold, ctx->frame_size);
	ctx->pressure_frames = free_below;
	ctx->pressure_threshold = free_below ? (threshold ? threshold : ctx->frame_size / 2) : 0;
	return 0;
}

PASTE_EXPORT int paste_keep_copy(struct paste_ctx *ctx, const void *src, size_t len,
                                 struct paste_ref *ref)
{
	int err;

	if (!ref || !len || len > ctx->frame_size)
		return paste_fail(-EINVAL,
		                  "paste_keep_copy: %zu bytes: must be 1 to %u (the frame size)",
		                  len, ctx->frame_size);
	err = keep_copy(ctx, src, len, ref);
	if (!err)
		ctx->st.kept_bytes += len;
	return err;
}

PASTE_EXPORT int paste_conn__keep(struct paste_conn *c, size_t off, size_t len, bool persist,
                                  struct paste_ref *refs, unsigned max, unsigned *n)
{
	struct paste_ctx *ctx = c->ctx;
	const struct paste_slot *s;
	unsigned ns, i, k = 0;
	size_t skip = off, left = len;
	int err = 0;

	if (off > c->pending || len > c->pending - off || !len)
		return paste_fail(
		    -EINVAL, "paste_conn__keep: bytes [%zu, +%zu) are not pending (%zu pending)",
		    off, len, c->pending);
	s = paste_conn__slots(c, &ns);
	for (i = 0; i < ns && left && !err; i++) {
		size_t take;

		if (skip >= s[i].len) {
			skip -= s[i].len;
			continue;
		}
		take = s[i].len - skip < left ? s[i].len - skip : left;
		if (k == max) {
			err = -E2BIG;
			break;
		}
		err = paste_keep(ctx, s[i].data + skip, take, &refs[k]);
		/* a packed copy was flushed where it went; flush in place otherwise */
		if (!err && persist && paste_pool__ref_ptr(ctx->pool, &refs[k]) == s[i].data + skip)
			paste_persist(ctx, s[i].data + skip, take);
		k += !err;
		left -= take;
		skip = 0;
	}
	if (err) { /* all or nothing */
		while (k)
			paste_pool__ref_put(ctx->pool, &refs[--k]);
		return err == -E2BIG
		           ? paste_fail(err, "paste_conn__keep: %zu bytes span more than %u slots",
		                        len, max)
		           : err;
	}
	*n = k;
	return 0;
}

PASTE_EXPORT int paste_release(struct paste_ctx *ctx, const struct paste_ref *ref)
{
	return paste_pool__ref_put(ctx->pool, ref);
}
