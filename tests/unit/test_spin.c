/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_spin.c - src/spin.c: paste_spin(), the busy-poll wait of both transports, which reads the
 * clock only once per several polls. A 0 ms wait is exactly one poll (a due lwIP timer must not
 * wait behind a batch of polls); a poll that finds work ends the spin at once with its count; a
 * stop request ends it at the next poll; a timed wait polls until its time is up and not much
 * longer (generous bound: the machine is shared); a negative wait spins until work or stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(zero_wait_is_one_poll),
	    cmocka_unit_test(work_ends_the_spin),
	    cmocka_unit_test(stop_ends_the_spin),
	    cmocka_unit_test(timed_wait_ends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
