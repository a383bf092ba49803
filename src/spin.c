/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * spin.c - the monotonic clock every layer reads, and the busy-poll wait both transports share
 * (transport.h). Below everything else so that any layer may use it.
 */
#include <stdint.h>
#include <time.h>

#include "ctx.h"

uint64_t paste_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int paste_spin(struct paste_ctx *ctx, int ms, int (*fn)(struct paste_ctx *ctx))
{
	uint64_t end = ms < 0 ? UINT64_MAX : paste_now_ns() + (uint64_t)ms * 1000000ull;
	int r;

	do {
		r = fn(ctx);
		if (r)
			return r;
	} while (!ctx->stop && paste_now_ns() < end);
	return 0;
}
