/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_workers_opts.c - --queues and --cpus (src/apps/daemon_opts.c): parsed into struct
 * daemon_opts for a program that runs workers, refused by one that does not, bad values refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "apps/daemon_opts.h"

static void usage(FILE *out)
{
	fprintf(out, "usage\n");
}

static int parse(struct daemon_opts *d, int argc, char **argv)
{
	return daemon_parse(argc, argv, d, NULL, NULL, NULL, usage);
}

#define ARGS(...)                                                                                  \
	(char *[])                                                                                 \
	{                                                                                          \
		"prog", "--ifname", "lo", "--ip", "10.0.0.1", "--port", "7", __VA_ARGS__           \
	}
#define NARGS(...) (int)(7 + sizeof((char *[]){__VA_ARGS__}) / sizeof(char *))

static void queues_and_cpus(void **state)
{
	struct daemon_opts d;

	daemon_supports_workers = true;
	assert_int_equal(parse(&d, NARGS("--queues", "3", "--cpus", "0,2-3"),
	                       ARGS("--queues", "3", "--cpus", "0,2-3")),
	                 0);
	assert_int_equal(d.queues, 3);
	assert_int_equal(d.ncpus, 3);
	assert_int_equal(d.cpus[0], 0);
	assert_int_equal(d.cpus[1], 2);
	assert_int_equal(d.cpus[2], 3);
	assert_int_equal(d.worker, -1);
	/* --cpus alone: one pinned worker */
	assert_int_equal(parse(&d, NARGS("--cpus", "1"), ARGS("--cpus", "1")), 0);
	assert_int_equal(d.queues, 1);
	/* without either: no supervisor */
	assert_int_equal(parse(&d, NARGS("--verbose"), ARGS("--verbose")), 0);
	assert_int_equal(d.queues, 0);
}

static void bad_values(void **state)
{
	struct daemon_opts d;

	daemon_supports_workers = true;
	assert_int_equal(parse(&d, NARGS("--queues", "0"), ARGS("--queues", "0")), 2);
	assert_int_equal(parse(&d, NARGS("--queues", "65"), ARGS("--queues", "65")), 2);
	assert_int_equal(parse(&d, NARGS("--cpus", "3-1"), ARGS("--cpus", "3-1")), 2);
	assert_int_equal(parse(&d, NARGS("--cpus", "1,"), ARGS("--cpus", "1,")), 2);
	assert_int_equal(parse(&d, NARGS("--cpus", "a"), ARGS("--cpus", "a")), 2);
	/* queue 60 + 8 workers goes past queue 63 */
	assert_int_equal(parse(&d, NARGS("--queue", "60", "--queues", "8"),
	                       ARGS("--queue", "60", "--queues", "8")),
	                 2);
}

static void refused_without_workers(void **state)
{
	struct daemon_opts d;

	daemon_supports_workers = false;
	assert_int_equal(parse(&d, NARGS("--queues", "2"), ARGS("--queues", "2")), 2);
	assert_int_equal(parse(&d, NARGS("--cpus", "0"), ARGS("--cpus", "0")), 2);
	assert_int_equal(parse(&d, NARGS("--verbose"), ARGS("--verbose")), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(queues_and_cpus),
	    cmocka_unit_test(bad_values),
	    cmocka_unit_test(refused_without_workers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
