/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * spin.c - the monotonic clock every layer reads, and the busy-poll wait both transports share
 * (transport.h). Below everything else so that any layer may use it.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctx.h"
#include "internal.h"
#include "transport.h"

uint64_t paste_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reset the wake fd (paste_set_wake_fd) after a wait it ended; the transports and the spin call
 * this. */
void paste__drain_wake(struct paste_ctx *ctx)
{
	uint64_t v;

	if (ctx->wake_fd >= 0 && read(ctx->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_warn("reading the wake fd %d: %s", ctx->wake_fd, strerror(errno));
}

/*
 * A wake ends a busy-poll wait as it ends a sleeping one. A transport with a wake_fd op (kernel,
 * io_uring) put the fd into its own wait set, which each of its spin's polls looks at; the AF_XDP
 * transport has none (it adds the fd to its poll() when it sleeps), and its spin looks only at its
 * rings: there a peer's wake waited for a frame or the end of the wait (paste-kv --queues N
 * --busy-poll: a forwarded request to a worker without traffic of its own waited up to 5 ms). So
 * the spin looks at the fd for such a transport. poll(), not a read, so that an fd left blocking
 * cannot hang the spin.
 */
static bool woken(struct paste_ctx *ctx)
{
	struct pollfd pfd = {.fd = ctx->wake_fd, .events = POLLIN};

	if (ctx->wake_fd < 0 || (ctx->tp && ctx->tp->wake_fd))
		return false; /* none, or the transport's own polls see it */
	if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN))
		return false;
	paste__drain_wake(ctx);
	return true;
}

/*
 * The clock is read once per PASTE_SPIN_CLOCK_EVERY polls, not per poll: on this VM the vDSO
 * clock_gettime was ~80 % of a busy-poll iteration (bench/profile of paste-kv at 1 connection),
 * and a frame that arrives while the loop reads the clock waits for it. The first poll is
 * followed by a check so that a wait of 0 ms stays one poll. The wake fd is looked at on the same
 * polls (one system call per PASTE_SPIN_CLOCK_EVERY polls, only when the context has one and its
 * transport's polls do not see it).
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
		if ((k == 1 || k % PASTE_SPIN_CLOCK_EVERY == 0) &&
		    (paste_now_ns() >= end || woken(ctx)))
			return 0;
	}
}
