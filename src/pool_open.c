/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_open.c - paste_pool__open(): the pool (pool.c) with the library's index types registered,
 * so that every open recovers every region an index of this library wrote. It sits above both the
 * pool and the index types, which is what lets pool.c name none of them.
 */
#include <pthread.h>

#include "indexes.h"
#include "internal.h"

/* Every index type of the library (indexes.h: adding one). */
static const struct paste_index_type *const builtin_types[] = {
    &paste_log_index_type,
    &paste_kv_index_type,
};

static int register_err;

static void register_builtin(void)
{
	for (unsigned i = 0; i < ARRAY_SIZE(builtin_types) && !register_err; i++)
		register_err = paste_pool__register_index_type(builtin_types[i]);
}

PASTE_EXPORT int paste_pool__open(struct paste_pool **poolp, const char *path,
                                  const struct paste_pool_opts *opts)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, register_builtin);
	if (register_err)
		return paste_fail(
		    register_err,
		    "paste_pool__open: registering the index types failed (internal error)");
	return paste_pool__open_registered(poolp, path, opts);
}
