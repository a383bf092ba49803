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

/*
 * The clock is read once per PASTE_SPIN_CLOCK_EVERY polls, not per poll: on this VM the vDSO
 * clock_gettime was ~80 % of a busy-poll iteration (bench/profile of paste-kv at 1 connection),
 * and a frame that arrives while the loop reads the clock waits for it. The first poll is
 * followed by a check so that a wait of 0 ms stays one poll.
 */
#define PASTE_SPIN_CLOCK_EVERY 64u

int paste_spin(struct paste_ctx *ctx, int ms, int (*fn)(struct paste_ctx *ctx))
{
	uint64_t end = ms < 0 ? UINT64_MAX : paste_now_ns() + (uint64_t)ms * 1000000ull;
	int r;

	for (unsigned k = 1;; k++) {
		r = fn(ctx);
		if (r)
			return r;
		if (ctx->stop)
			return 0;
		if ((k == 1 || k % PASTE_SPIN_CLOCK_EVERY == 0) && paste_now_ns() >= end)
			return 0;
	}
}
