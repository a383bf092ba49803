/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * indexes.h - what the persistent index types share above the pool: the open skeleton (index.c)
 * and the library's two types (log_index.c, kv_index.c), which pool_open.c registers with the
 * pool (pool_internal.h, struct paste_index_type). A new index type is one more file defining a
 * struct paste_index_type and one line in pool_open.c (docs/architecture.md).
 */
#ifndef PASTE_INDEXES_H
#define PASTE_INDEXES_H

#include <stdbool.h>
#include <stdint.h>

#include "pool_internal.h"

/*
 * The open path every index type shares (index.c). Find region @name and look at its magic:
 *  - @t's magic: 0 with *handle the handle recovered at pool open (checked against the region);
 *  - zero and @create: 0 with *handle NULL and the empty region (at *addr, *len bytes) to make one
 * in;
 *  - absent: -ENOENT (with a message only when !@create: the caller makes the region otherwise);
 *  - zero and !@create: -ENOENT; another magic: -EINVAL; a handle missing: -EIO.
 */
int paste_index__find(struct paste_pool *pool, const struct paste_index_type *t, const char *name,
                      bool create, void **addr, uint64_t *len, void **handle);

/* The library's index types (log_index.c, kv_index.c); their magic is the first 8 bytes of the
 * region. */
#define PASTE_LOG_MAGIC 0x31474f4c45545350ull /* "PSTELOG1" */
#define PASTE_KV_MAGIC  0x31564b5f45545350ull /* "PSTE_KV1" */
extern const struct paste_index_type paste_log_index_type;
extern const struct paste_index_type paste_kv_index_type;

#endif /* PASTE_INDEXES_H */
