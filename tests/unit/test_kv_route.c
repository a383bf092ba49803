/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_kv_route.c - which worker owns a key with paste-kv --queues N (kvmw_owner in
 * src/apps/kv_multi_worker_int.h): FNV-1a 64 of the key or of its {hash tag}, modulo N. The
 * integration test (test_multiqueue_kv.sh) computes the same in Python to pick keys of two workers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kv_multi_worker_int.h"

static unsigned own(const char *k, unsigned n)
{
	return kvmw_owner((const uint8_t *)k, strlen(k), n);
}

/* The published FNV-1a 64 test vectors: "" -> cbf29ce484222325, "a" -> af63dc4c8601ec8c,
 * "foobar" -> 85944171f73967e8. */
static void fnv1a_vectors(void **state)
{
	(void)state;
	for (unsigned n = 1; n <= 64; n++) {
		assert_int_equal(own("", n), (unsigned)(0xcbf29ce484222325ull % n));
		assert_int_equal(own("a", n), (unsigned)(0xaf63dc4c8601ec8cull % n));
		assert_int_equal(own("foobar", n), (unsigned)(0x85944171f73967e8ull % n));
	}
}

/* Keys with one non-empty {tag} go where the tag goes; an empty or unclosed one does not count. */
static void hash_tags(void **state)
{
	(void)state;
	for (unsigned n = 2; n <= 16; n++) {
		assert_int_equal(own("{foobar}:name", n), own("foobar", n));
		assert_int_equal(own("x{foobar}y{a}", n), own("foobar", n));
		assert_int_equal(own("{a}", n), own("a", n));
	}
	/* "{}a" and "{a" hash all their bytes: not the same as "a" for every n */
	{
		unsigned same = 0;

		for (unsigned n = 2; n <= 64; n++)
			same += own("{}a", n) == own("a", n);
		assert_true(same < 63);
		same = 0;
		for (unsigned n = 2; n <= 64; n++)
			same += own("{a", n) == own("a", n);
		assert_true(same < 63);
	}
}

/* Keys spread evenly: 20000 keys over 4 workers, each between 22 % and 28 %. */
static void spread(void **state)
{
	unsigned count[4] = {0};
	char k[32];

	(void)state;
	for (unsigned i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "key:%012u", i);
		count[own(k, 4)]++;
	}
	for (unsigned w = 0; w < 4; w++) {
		assert_in_range(count[w], 4400, 5600);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fnv1a_vectors),
	    cmocka_unit_test(hash_tags),
	    cmocka_unit_test(spread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
