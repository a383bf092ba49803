/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_internal.h - what the library's own layers (event loop, persistent indexes, the
 * power-failure simulator) use of the pool beyond the public paste/pool.h: the volatile frame
 * allocator the pool owns, frame references, after-fence hooks, the registry of index types the
 * pool recovers, and the persistence hook.
 *
 * Frame references: each frame's kept-reference count lives in the pool's allocator (frames.h). An
 * index that takes a reference owns one count; releasing it after a fence is what keeps a crash
 * from ever leaving a durable record that names a recycled frame.
 */
#ifndef PASTE_POOL_INTERNAL_H
#define PASTE_POOL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <paste/index.h>
#include <paste/pool.h>

#include "frames.h"

/* The pool's frame allocator (one per pool; the event loop uses it for RX/TX/fill frames). */
struct paste_frames *paste_pool__frame_alloc(struct paste_pool *pool);

/* True if @ref is non-empty and lies inside one frame of the frame area. @frame gets its index. */
bool paste_pool__ref_in_frame(const struct paste_pool *pool, const struct paste_ref *ref,
                              uint32_t *frame);

/*
 * Add one kept reference to the frame @ref lies in. The frame must be RX (received, still held) or
 * KEPT; while the pool is recovering it may also be FREE. @return 0, -EINVAL (not a frame range, or
 * the frame is free: an unknown reference), -EOVERFLOW.
 */
int paste_pool__ref_get(struct paste_pool *pool, const struct paste_ref *ref);
/* Drop one kept reference now. @return 0 or -EINVAL (frame not kept: unknown or double release). */
int paste_pool__ref_put(struct paste_pool *pool, const struct paste_ref *ref);
/* Drop one kept reference after the next paste_pool__drain(). @return 0, -EINVAL, -ENOMEM. */
int paste_pool__ref_put_after_fence(struct paste_pool *pool, const struct paste_ref *ref);

/* Run @fn(@arg) after every paste_pool__drain() (indexes recycle their freed slots there). */
int paste_pool__add_drain_hook(struct paste_pool *pool, void (*fn)(void *arg), void *arg);
void paste_pool__del_drain_hook(struct paste_pool *pool, void (*fn)(void *arg), void *arg);

/* True while paste_pool__open() runs index recovery (paste_pool__ref_get accepts FREE frames). */
bool paste_pool__recovering(const struct paste_pool *pool);
/* Whether the previous user closed the pool cleanly (recovery may skip payload checksums). */
bool paste_pool__was_clean(const struct paste_pool *pool);

/*
 * An index type: what the pool does with a region whose first 8 bytes are @magic. The pool knows
 * no index type by name; the types register themselves above it (pool_open.c registers the log and
 * the key-value index before every paste_pool__open), like libbpf's section handlers.
 */
struct paste_index_type {
	uint64_t magic;
	const char *name;       /* for messages: "log", "key-value index" */
	const char *create_arg; /* what its open takes to create one: "a region size" */
	/* Validate the region, take one frame reference per live ref, register the handle with
	 * paste_pool__set_index(). An index that cannot be read at all fails the open (-errno). */
	int (*recover)(struct paste_pool *pool, const char *name, void *addr, uint64_t len);
	/* Free a handle (at pool close). */
	void (*free)(void *handle);
	/* The region a handle lives in (the open path checks a recovered handle against it). */
	const void *(*region)(const void *handle);
};

/* Add @t to the process-wide registry. @return 0, -EEXIST (another type has its magic; the same
 * type again is fine), -ENOSPC (PASTE_POOL_MAX_INDEX_TYPES), -EINVAL. */
#define PASTE_POOL_MAX_INDEX_TYPES 8
int paste_pool__register_index_type(const struct paste_index_type *t);

/* The open the public paste_pool__open wraps (pool_open.c): recovers the registered types only. */
int paste_pool__open_registered(struct paste_pool **poolp, const char *path,
                                const struct paste_pool_opts *opts);

/* Index handles recovered at open, by region name (NULL if none). */
void *paste_pool__index(const struct paste_pool *pool, const char *name);
int paste_pool__set_index(struct paste_pool *pool, const char *name, void *index,
                          const struct paste_index_type *type);

/* Region lookup by name without creating: 0 with addr/len, or -ENOENT. */
int paste_pool__find_region(struct paste_pool *pool, const char *name, void **addr, uint64_t *len);

/*
 * Persistence ops, chosen when a pool opens (PMDK's "choose the persist function once"). By
 * default flush/drain are libpmem's (clwb/clflushopt + sfence). A test or the power-failure
 * simulator (tests/sim) sets a process-wide default before paste_pool__open, so recovery inside
 * the open goes through it too, or replaces the ops of one open pool (paste_open's no_persist).
 * Emulated media latency (paste_pool_opts.emu_*, PASTE_EMU_FENCE_NS/LINE_NS) wraps any ops.
 */
struct paste_pmem_ops {
	void (*flush)(void *arg, const void *addr, size_t len);
	void (*drain)(void *arg);
	void *arg;
	/* Optional: the pool file was mapped at @base, @len bytes (before any flush of the open),
	 * so a simulator can track the mapping. */
	void (*map)(void *arg, void *base, size_t len);
};
void paste_pool__set_pmem_ops(struct paste_pool *pool, const struct paste_pmem_ops *ops);
/* The ops every later paste_pool__open starts with (NULL: libpmem's again). Not thread safe. */
void paste_pool__set_default_pmem_ops(const struct paste_pmem_ops *ops);

#endif /* PASTE_POOL_INTERNAL_H */
