/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * compat.c - the 0.1 ABI of the calls whose signatures changed in 0.2 (issue 12: options structs
 * with .sz for the log and key-value opens, the created object first, a size for every info
 * call). A program linked against libpaste-xdp 0.1 binds to name@PASTE_XDP_0.1 and lands here;
 * new programs get name@@PASTE_XDP_0.2 (src/libpaste-xdp.map). Each wrapper only converts the
 * arguments. Nothing else in the library calls these.
 */
#include <paste/index.h>
#include <paste/pool.h>

#include "internal.h"

/* Built into the shared library only: the static library has no symbol versions. */
#ifdef PASTE_SYMVER /* defined for the shared library only (CMakeLists.txt) */
#define COMPAT_0_1(fn, name) __asm__(".symver " #fn ", " #name "@PASTE_XDP_0.1")
#else
#define COMPAT_0_1(fn, name)
#endif

int compat_log_open_0_1(struct paste_pool *pool, const char *name, uint64_t region_size,
                        struct paste_log **log);
int compat_kv_open_0_1(struct paste_pool *pool, const char *name, uint64_t capacity,
                       struct paste_kv **kv);
int compat_log_view_open_0_1(const struct paste_pool_view *pv, const char *name,
                             struct paste_log_view **view);
void compat_pool_info_0_1(const struct paste_pool *pool, struct paste_pool_info *info);
void compat_log_info_0_1(const struct paste_log *log, struct paste_log_info *info);
void compat_kv_info_0_1(const struct paste_kv *kv, struct paste_kv_info *info);

PASTE_EXPORT int compat_log_open_0_1(struct paste_pool *pool, const char *name,
                                     uint64_t region_size, struct paste_log **log)
{
	return paste_log__open(log, pool, name,
	                       &PASTE_OPTS_LIT(paste_log_opts, .region_size = region_size));
}
COMPAT_0_1(compat_log_open_0_1, paste_log__open);

PASTE_EXPORT int compat_kv_open_0_1(struct paste_pool *pool, const char *name, uint64_t capacity,
                                    struct paste_kv **kv)
{
	return paste_kv__open(kv, pool, name, &PASTE_OPTS_LIT(paste_kv_opts, .capacity = capacity));
}
COMPAT_0_1(compat_kv_open_0_1, paste_kv__open);

PASTE_EXPORT int compat_log_view_open_0_1(const struct paste_pool_view *pv, const char *name,
                                          struct paste_log_view **view)
{
	return paste_log_view__open(view, pv, name);
}
COMPAT_0_1(compat_log_view_open_0_1, paste_log_view__open);

/* The 0.1 info structs are the 0.2 ones: their size is the whole struct. */
PASTE_EXPORT void compat_pool_info_0_1(const struct paste_pool *pool, struct paste_pool_info *info)
{
	(void)paste_pool__info(pool, info, sizeof(*info));
}
COMPAT_0_1(compat_pool_info_0_1, paste_pool__info);

PASTE_EXPORT void compat_log_info_0_1(const struct paste_log *log, struct paste_log_info *info)
{
	(void)paste_log__info(log, info, sizeof(*info));
}
COMPAT_0_1(compat_log_info_0_1, paste_log__info);

PASTE_EXPORT void compat_kv_info_0_1(const struct paste_kv *kv, struct paste_kv_info *info)
{
	(void)paste_kv__info(kv, info, sizeof(*info));
}
COMPAT_0_1(compat_kv_info_0_1, paste_kv__info);
