/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_spin.c - src/spin.c: paste_spin(), the busy-poll wait of both transports, which reads the
 * clock only once per several polls. A 0 ms wait is exactly one poll (a due lwIP timer must not
 * wait behind a batch of polls); a poll that finds work ends the spin at once with its count; a
 * stop request ends it at the next poll; a timed wait polls until its time is up and not much
 * longer (generous bound: the machine is shared); a negative wait spins until work or stop; a
 * wake (paste_set_wake_fd) ends it, written before or during the spin, and is reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctx.h"
#include "transport.h"

static unsigned polls;
static unsigned work_at; /* the poll (1-based) that finds work, 0 never */
static unsigned stop_at; /* the poll that asks to stop, 0 never */

static int fake_poll(struct paste_ctx *ctx)
{
	polls++;
	if (stop_at && polls == stop_at)
		ctx->stop = 1;
	return work_at && polls == work_at ? 3 : 0;
}

static void reset(struct paste_ctx *ctx, unsigned work, unsigned stop)
{
	ctx->stop = 0;
	ctx->wake_fd = -1;
	polls = 0;
	work_at = work;
	stop_at = stop;
}

static void zero_wait_is_one_poll(void **state)
{
	struct paste_ctx ctx = {0};

	(void)state;
	reset(&ctx, 0, 0);
	assert_int_equal(paste_spin(&ctx, 0, fake_poll), 0);
	assert_int_equal(polls, 1);
}

static void work_ends_the_spin(void **state)
{
	struct paste_ctx ctx = {0};

	(void)state;
	reset(&ctx, 100, 0); /* not on a clock-reading poll */
	assert_int_equal(paste_spin(&ctx, -1, fake_poll), 3);
	assert_int_equal(polls, 100);
	reset(&ctx, 1, 0);
	assert_int_equal(paste_spin(&ctx, 0, fake_poll), 3);
	assert_int_equal(polls, 1);
}

static void stop_ends_the_spin(void **state)
{
	struct paste_ctx ctx = {0};

	(void)state;
	reset(&ctx, 0, 77);
	assert_int_equal(paste_spin(&ctx, -1, fake_poll), 0);
	assert_int_equal(polls, 77);
}

static void timed_wait_ends(void **state)
{
	struct paste_ctx ctx = {0};
	uint64_t t0 = paste_now_ns(), dt;

	(void)state;
	reset(&ctx, 0, 0);
	assert_int_equal(paste_spin(&ctx, 20, fake_poll), 0);
	dt = paste_now_ns() - t0;
	assert_true(dt >= 20000000ull);
	assert_true(dt < 5000000000ull); /* ends: a lost clock check would spin forever */
	assert_true(polls > 1);
}

/*
 * The AF_XDP transport's spin sees only its rings: without the spin's own look at the wake fd, a
 * wake waited for the end of the wait (here: the 20 s bound, or for ever with -1 and the stop at
 * poll 2^31 as a backstop that the assertions on the poll count catch).
 */
static void wake_ends_the_spin(void **state)
{
	struct paste_ctx ctx = {0};
	uint64_t one = 1, v, t0;
	int e = eventfd(0, EFD_NONBLOCK), st;
	pid_t pid;

	(void)state;
	assert_true(e >= 0);
	reset(&ctx, 0, 0);
	ctx.wake_fd = e;
	/* no wake: the spin waits its time */
	t0 = paste_now_ns();
	assert_int_equal(paste_spin(&ctx, 20, fake_poll), 0);
	assert_true(paste_now_ns() - t0 >= 20000000ull);
	/* a wake written before the spin: it ends after the first poll, and the fd is reset */
	assert_int_equal(write(e, &one, sizeof(one)), sizeof(one));
	reset(&ctx, 0, 1u << 31);
	ctx.wake_fd = e;
	assert_int_equal(paste_spin(&ctx, -1, fake_poll), 0);
	assert_int_equal(polls, 1);
	assert_int_equal(read(e, &v, sizeof(v)), -1);
	assert_int_equal(errno, EAGAIN);
	/* a wake from another process while it spins */
	reset(&ctx, 0, 1u << 31);
	ctx.wake_fd = e;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		usleep(50000);
		_exit(write(e, &one, sizeof(one)) == sizeof(one) ? 0 : 1);
	}
	t0 = paste_now_ns();
	assert_int_equal(paste_spin(&ctx, 20000, fake_poll), 0);
	assert_true(paste_now_ns() - t0 < 10000000000ull);
	assert_true(polls > 1 && polls < 1u << 31);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(read(e, &v, sizeof(v)), -1);
	close(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(zero_wait_is_one_poll), cmocka_unit_test(work_ends_the_spin),
	    cmocka_unit_test(stop_ends_the_spin),    cmocka_unit_test(timed_wait_ends),
	    cmocka_unit_test(wake_ends_the_spin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
