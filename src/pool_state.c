/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_state.c - the pool's volatile state, rebuilt at every open: the frame allocator (who holds
 * each frame), kept-frame references and their release after a fence, after-fence hooks, the index
 * handles recovered at open, and the registry of index types recovery dispatches through (the pool
 * names no index type: they register above it, pool_open.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pool_priv.h"

/* ---- volatile state: frames, references, hooks, indexes -------------------------------------- */

/* The registered index types (paste_pool__register_index_type); pool_open.c adds the library's. */
static const struct paste_index_type *index_types[PASTE_POOL_MAX_INDEX_TYPES];
static unsigned nindex_types;

int paste_pool__register_index_type(const struct paste_index_type *t)
{
	if (!t || !t->magic || !t->name || !t->recover || !t->free || !t->region)
		return paste_fail(-EINVAL,
		                  "index type: magic, name, recover, free and region are required");
	for (unsigned i = 0; i < nindex_types; i++) {
		if (index_types[i] == t)
			return 0;
		if (index_types[i]->magic == t->magic)
			return paste_fail(-EEXIST, "index type '%s': magic %#llx is taken by '%s'",
			                  t->name, (unsigned long long)t->magic,
			                  index_types[i]->name);
	}
	if (nindex_types == PASTE_POOL_MAX_INDEX_TYPES)
		return paste_fail(-ENOSPC, "index type '%s': at most %d types", t->name,
		                  PASTE_POOL_MAX_INDEX_TYPES);
	index_types[nindex_types++] = t;
	return 0;
}

static const struct paste_index_type *index_type_of(uint64_t magic)
{
	for (unsigned i = 0; i < nindex_types; i++)
		if (index_types[i]->magic == magic)
			return index_types[i];
	return NULL;
}

/*
 * Rebuild the frame allocator from the indexes: every region that starts with the magic of a
 * registered index type is recovered by that type, which takes one reference per live ref. A frame
 * no index names is free.
 */
int paste_pool__recover(struct paste_pool *p)
{
	uint64_t t0 = paste_now_ns(), magic;
	const struct paste_index_type *t;
	unsigned nidx = 0;
	int err;

	err = paste_frames__init(&p->frames, p->sb.frame_count, NULL);
	if (err)
		return err;
	p->recovering = true;
	for (uint32_t i = 0; i < p->sb.nregions && !err; i++) {
		const struct pool_region *r = &p->sb.regions[i];

		if (r->size < sizeof(magic))
			continue;
		memcpy(&magic, p->base + r->off, sizeof(magic));
		t = index_type_of(magic);
		if (!t)
			continue;
		err = t->recover(p, r->name, p->base + r->off, r->size);
		nidx++;
	}
	p->recovering = false;
	paste_frames__recover_done(&p->frames);
	if (err)
		return err;
	if (nidx)
		pr_info("pool %s: recovered %u index%s in %.3f ms (%s shutdown): %u frames in use",
		        p->path, nidx, nidx == 1 ? "" : "es", (double)(paste_now_ns() - t0) / 1e6,
		        p->was_clean ? "clean" : "unclean", p->frames.n[PASTE_FRAME_KEPT]);
	return 0;
}

void paste_pool__free_volatile(struct paste_pool *p)
{
	for (unsigned i = 0; i < PASTE_POOL_MAX_REGIONS; i++) {
		struct pool_index *ix = &p->indexes[i];

		if (ix->handle)
			ix->type->free(ix->handle);
		memset(ix, 0, sizeof(*ix));
	}
	free(p->deferred);
	p->deferred = NULL;
	p->ndeferred = p->deferred_cap = 0;
	paste_frames__fini(&p->frames);
}

struct paste_frames *paste_pool__frame_alloc(struct paste_pool *pool)
{
	return &pool->frames;
}

bool paste_pool__ref_in_frame(const struct paste_pool *pool, const struct paste_ref *ref,
                              uint32_t *frame)
{
	const struct pool_sb *sb = &pool->sb;
	uint64_t rel, fs = sb->frame_size;

	if (!ref || ref->len == 0 || ref->off < sb->frame_area_off)
		return false;
	rel = ref->off - sb->frame_area_off;
	if (rel / fs >= sb->frame_count || rel % fs + ref->len > fs)
		return false;
	if (frame)
		*frame = (uint32_t)(rel / fs);
	return true;
}

PASTE_EXPORT void *paste_pool__ref_ptr(const struct paste_pool *pool, const struct paste_ref *ref)
{
	if (!pool || !ref || ref->off > pool->sb.pool_size ||
	    ref->len > pool->sb.pool_size - ref->off) {
		/* callers may probe with it: kept for paste_last_error(), printed at debug level */
		if (pool && ref)
			paste_fail_quiet(-EINVAL,
			                 "pool %s: reference [%llu, +%u) is not inside the pool",
			                 pool->path, (unsigned long long)ref->off, ref->len);
		else
			paste_fail_quiet(-EINVAL,
			                 "paste_pool__ref_ptr: pool and ref must not be NULL");
		errno = EINVAL;
		return NULL;
	}
	return pool->base + ref->off;
}

int paste_pool__ref_get(struct paste_pool *pool, const struct paste_ref *ref)
{
	uint32_t frame;

	if (!paste_pool__ref_in_frame(pool, ref, &frame))
		return paste_fail(-EINVAL, "pool %s: reference [%llu, +%u) is not inside one frame",
		                  pool->path, ref ? (unsigned long long)ref->off : 0ull,
		                  ref ? ref->len : 0);
	if (pool->recovering)
		return paste_frames__recover_ref(&pool->frames, frame);
	return paste_frames__ref(&pool->frames, frame);
}

int paste_pool__ref_put(struct paste_pool *pool, const struct paste_ref *ref)
{
	uint32_t frame;

	if (!paste_pool__ref_in_frame(pool, ref, &frame))
		return paste_fail(-EINVAL, "pool %s: reference [%llu, +%u) is not inside one frame",
		                  pool->path, ref ? (unsigned long long)ref->off : 0ull,
		                  ref ? ref->len : 0);
	if (pool->frames.state[frame] != PASTE_FRAME_KEPT)
		return paste_fail(
		    -EINVAL,
		    "pool %s: release of an unknown reference (frame %u is not kept: never kept, or released twice)",
		    pool->path, frame);
	return paste_frames__unref(&pool->frames, frame);
}

int paste_pool__ref_put_after_fence(struct paste_pool *pool, const struct paste_ref *ref)
{
	uint32_t frame;

	if (!paste_pool__ref_in_frame(pool, ref, &frame) ||
	    pool->frames.state[frame] != PASTE_FRAME_KEPT)
		return paste_fail(
		    -EINVAL, "pool %s: deferred release of an unknown reference [%llu, +%u)",
		    pool->path, ref ? (unsigned long long)ref->off : 0ull, ref ? ref->len : 0);
	if (pool->ndeferred == pool->deferred_cap) {
		size_t cap = pool->deferred_cap ? pool->deferred_cap * 2 : 256;
		struct paste_ref *d = realloc(pool->deferred, cap * sizeof(*d));

		if (!d)
			return paste_fail(-ENOMEM, "pool %s: out of memory for deferred releases",
			                  pool->path);
		pool->deferred = d;
		pool->deferred_cap = cap;
	}
	pool->deferred[pool->ndeferred++] = *ref;
	return 0;
}

int paste_pool__add_drain_hook(struct paste_pool *pool, void (*fn)(void *arg), void *arg)
{
	if (pool->nhooks == ARRAY_SIZE(pool->hooks))
		return paste_fail(-ENOSPC, "pool %s: too many after-fence hooks", pool->path);
	pool->hooks[pool->nhooks].fn = fn;
	pool->hooks[pool->nhooks].arg = arg;
	pool->nhooks++;
	return 0;
}

void paste_pool__del_drain_hook(struct paste_pool *pool, void (*fn)(void *arg), void *arg)
{
	for (unsigned i = 0; i < pool->nhooks; i++) {
		if (pool->hooks[i].fn == fn && pool->hooks[i].arg == arg) {
			pool->hooks[i] = pool->hooks[--pool->nhooks];
			return;
		}
	}
}

bool paste_pool__recovering(const struct paste_pool *pool)
{
	return pool->recovering;
}

bool paste_pool__was_clean(const struct paste_pool *pool)
{
	return pool->was_clean;
}

void *paste_pool__index(const struct paste_pool *pool, const char *name)
{
	for (unsigned i = 0; i < PASTE_POOL_MAX_REGIONS; i++)
		if (pool->indexes[i].handle && !strcmp(pool->indexes[i].name, name))
			return pool->indexes[i].handle;
	return NULL;
}

int paste_pool__set_index(struct paste_pool *pool, const char *name, void *index,
                          const struct paste_index_type *type)
{
	for (unsigned i = 0; i < PASTE_POOL_MAX_REGIONS; i++) {
		struct pool_index *ix = &pool->indexes[i];

		if (ix->handle)
			continue;
		snprintf(ix->name, sizeof(ix->name), "%s", name);
		ix->handle = index;
		ix->type = type;
		return 0;
	}
	return paste_fail(-ENOSPC, "pool %s: too many open indexes", pool->path);
}
