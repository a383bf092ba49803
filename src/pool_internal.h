/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_internal.h - what the library's own layers (event loop, persistent indexes, the
 * power-failure simulator) use of the pool beyond the public paste/pool.h: the volatile frame
 * allocator the pool owns, frame references, after-fence hooks, index recovery dispatch, and the
 * persistence hook.
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

/* Index handles recovered at open, by region name (NULL if none). */
void *paste_pool__index(const struct paste_pool *pool, const char *name);
int paste_pool__set_index(struct paste_pool *pool, const char *name, void *index,
                          void (*free_fn)(void *index));

/* Region lookup by name without creating: 0 with addr/len, or -ENOENT. */
int paste_pool__find_region(struct paste_pool *pool, const char *name, void **addr, uint64_t *len);

/*
 * Persistence hook. By default flush/drain are libpmem's (clwb/clflushopt + sfence). The
 * power-failure simulator (tests/sim) installs its own to track which cache lines reach "media".
 */
struct paste_pmem_ops {
	void (*flush)(void *arg, const void *addr, size_t len);
	void (*drain)(void *arg);
	void *arg;
};
void paste_pool__set_pmem_ops(struct paste_pool *pool, const struct paste_pmem_ops *ops);

/* Index recovery entry points, called by paste_pool__open() for regions whose first 8 bytes are the
 * index's magic. They validate the region, take one frame reference per live ref, and register the
 * handle with paste_pool__set_index(). An index that cannot be read at all fails the open. */
#define PASTE_LOG_MAGIC 0x31474f4c45545350ull /* "PSTELOG1" */
#define PASTE_KV_MAGIC  0x31564b5f45545350ull /* "PSTE_KV1" */
int paste_log__recover(struct paste_pool *pool, const char *name, void *addr, uint64_t len);
int paste_kv__recover(struct paste_pool *pool, const char *name, void *addr, uint64_t len);

#endif /* PASTE_POOL_INTERNAL_H */
