/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_opts.c - paste_open()'s checks of paste_opts (src/ctx.c): a zero_copy value outside the
 * enum, force_copy combined with PASTE_ZC_REQUIRED and a syn_backlog outside 16-1048576 are
 * refused with -EINVAL and a message naming the option, before any pool, program or socket is
 * made (no root needed).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <paste/paste.h>

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
	(void)level;
	(void)msg;
	(void)user;
}

static int open_with(struct paste_opts *o)
{
	struct paste_ctx *ctx = (struct paste_ctx *)1;
	int err = paste_open(&ctx, o);

	assert_null(ctx);
	return err;
}

static void zero_copy_out_of_range(void **state)
{
	struct paste_opts o = {.sz = sizeof(o),
	                       .ifname = "lo",
	                       .ip = "10.9.9.9",
	                       .pool_path = "/nonexistent/never-created.pool"};

	(void)state;
	o.zero_copy = (enum paste_zero_copy)7;
	assert_int_equal(open_with(&o), -EINVAL);
	assert_non_null(strstr(paste_last_error(), "zero_copy 7"));
}

static void force_copy_contradicts_required(void **state)
{
	struct paste_opts o = {.sz = sizeof(o),
	                       .ifname = "lo",
	                       .ip = "10.9.9.9",
	                       .pool_path = "/nonexistent/never-created.pool",
	                       .force_copy = true,
	                       .zero_copy = PASTE_ZC_REQUIRED};

	(void)state;
	assert_int_equal(open_with(&o), -EINVAL);
	assert_non_null(strstr(paste_last_error(), "force_copy and zero_copy"));
}

static void syn_backlog_out_of_range(void **state)
{
	struct paste_opts o = {.sz = sizeof(o),
	                       .ifname = "lo",
	                       .ip = "10.9.9.9",
	                       .pool_path = "/nonexistent/never-created.pool"};

	(void)state;
	o.syn_backlog = 15;
	assert_int_equal(open_with(&o), -EINVAL);
	assert_non_null(strstr(paste_last_error(), "syn_backlog 15"));
	o.syn_backlog = (1u << 20) + 1;
	assert_int_equal(open_with(&o), -EINVAL);
	assert_non_null(strstr(paste_last_error(), "syn_backlog 1048577"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(zero_copy_out_of_range),
	    cmocka_unit_test(force_copy_contradicts_required),
	    cmocka_unit_test(syn_backlog_out_of_range),
	};

	paste_set_print(quiet, NULL, PASTE_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
