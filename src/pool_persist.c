/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_persist.c - the flush/fence primitives everything durable in a pool goes through
 * (include/paste/pool.h): paste_pool__flush, __flush_append, __drain, __persist, the persistence
 * ops chosen at open (libpmem's, or a test's: src/pool_internal.h) and the emulated media
 * latency (paste_pool_opts emu_*). Split from pool.c, which creates, validates and maps the file.
 */
#include <libpmem.h>
#include <stdbool.h>
#include <stdint.h>

#include <paste/pool.h>

#include "internal.h"
#include "pool_internal.h"
#include "pool_priv.h"

static void pmem_ops_flush(void *arg, const void *addr, size_t len)
{
	pmem_flush(addr, len);
}

static void pmem_ops_drain(void *arg)
{
	pmem_drain();
}

static const struct paste_pmem_ops libpmem_ops = {pmem_ops_flush, pmem_ops_drain, NULL};

/* What the next open uses (paste_pool__set_default_pmem_ops): libpmem's unless a test replaced it.
 */
static struct paste_pmem_ops default_ops = {pmem_ops_flush, pmem_ops_drain, NULL};

/* ---- durability -------------------------------------------------------------------------- */

/*
 * Direct libpmem calls whatever is_pmem says (see the top of the file): on tmpfs and DAX the
 * mapping is the memory, and clwb + sfence is what makes a store durable there.
 */
PASTE_EXPORT void paste_pool__flush(struct paste_pool *pool, const void *addr, size_t len)
{
	pool->ops.flush(pool->ops.arg, addr, len);
	pool->flushed = true;
	if (unlikely(pool->emu_line_ns) && len) {
		uintptr_t a = (uintptr_t)addr;

		pool->emu_lines += ((a + len + 63) >> 6) - (a >> 6);
	}
}

PASTE_EXPORT void paste_pool__flush_append(struct paste_pool *pool, const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr & ~(uintptr_t)63, end = (uintptr_t)addr + len;
	uintptr_t last = (end - 1) & ~(uintptr_t)63;

	if (!len)
		return;
	if (pool->pend_line && (pool->pend_line < a || pool->pend_line > last))
		paste_pool__flush(pool, (const void *)pool->pend_line, 64); /* not continued */
	pool->pend_line = 0;
	if (end & 63) { /* ends inside its last line: that one waits */
		pool->pend_line = last;
		end = last;
	}
	if (end > a)
		paste_pool__flush(pool, (const void *)a, end - a);
	pool->flushed = true;
}

/* The drain itself (after the line flush_append left), plus the emulated media latency if asked
 * (cfg emu_*). */
static void pool_drain_ops(struct paste_pool *pool)
{
	if (pool->pend_line) {
		paste_pool__flush(pool, (const void *)pool->pend_line, 64);
		pool->pend_line = 0;
	}
	pool->ops.drain(pool->ops.arg);
	if (unlikely(pool->emu_fence_ns || pool->emu_line_ns)) {
		uint64_t end = paste_now_ns() + pool->emu_fence_ns +
		               pool->emu_lines * (uint64_t)pool->emu_line_ns;

		pool->emu_lines = 0;
		while (paste_now_ns() < end)
			__builtin_ia32_pause();
	}
}

PASTE_EXPORT bool paste_pool__needs_drain(const struct paste_pool *pool)
{
	return pool->flushed || pool->ndeferred;
}

PASTE_EXPORT void paste_pool__drain(struct paste_pool *pool)
{
	size_t i, n;

	pool_drain_ops(pool);
	pool->flushed = false;
	/* Only now may what the fenced operations replaced be reused. */
	n = pool->ndeferred;
	pool->ndeferred = 0;
	for (i = 0; i < n; i++)
		paste_pool__ref_put(pool, &pool->deferred[i]);
	for (i = 0; i < pool->nhooks; i++)
		pool->hooks[i].fn(pool->hooks[i].arg);
}

PASTE_EXPORT void paste_pool__persist(struct paste_pool *pool, const void *addr, size_t len)
{
	paste_pool__flush(pool, addr, len);
	pool_drain_ops(pool);
}

void paste_pool__set_pmem_ops(struct paste_pool *pool, const struct paste_pmem_ops *ops)
{
	pool->ops = ops ? *ops : libpmem_ops;
}

void paste_pool__set_default_pmem_ops(const struct paste_pmem_ops *ops)
{
	default_ops = ops ? *ops : libpmem_ops;
}

/* At open: the ops the next pool uses (libpmem's unless a test replaced them). */
void paste_pool__default_ops(struct paste_pool *pool)
{
	pool->ops = default_ops;
}
