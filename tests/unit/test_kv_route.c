/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_kv_route.c - which worker owns a key with paste-kv --queues N (kvmw_owner in
 * src/apps/kv_multi_worker_int.h): FNV-1a 64 of the key or of its {hash tag}, modulo N. The
 * integration test (test_multiqueue_kv.sh) computes the same in Python to pick keys of two workers.
 * Also the owner's stand-in connection before a forwarded request (kvmw_pk_ready).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The stand-in connection after a request: equal to its clean state but for the reply queue
 * (kept: its buffers) and the database (the next request's). */
static void pk_is_clean(const struct mw *m, const struct daemon_replyq *q, int db)
{
	struct kconn want = m->pk0;

	want.q = *q;
	want.db = db;
	assert_memory_equal(&m->pk, &want, sizeof(want));
}

/*
 * kvmw_pk_ready: a stand-in connection still clean keeps its bytes (the reply queue's buffers
 * too) and gets the new database; one a request changed anywhere - its first field, its last, a
 * MULTI block, a flag - is rebuilt from the clean state, the reply queue kept.
 */
static void stand_in_connection(void **state)
{
	struct mw *m = calloc(1, sizeof(*m));
	struct daemon_replyq q;
	int dummy;

	(void)state;
	assert_non_null(m);
	m->pk0.d = (struct kvd *)&dummy;
	m->pk0.rp.lim.max_bulk = 512u << 20; /* (something not zero, as resp_parser_init leaves) */
	m->pk = m->pk0;
	memset(&m->pk.q, 0x5a, sizeof(m->pk.q)); /* a reply queue with buffers */
	q = m->pk.q;
	m->pk.db = 3;
	kvmw_pk_ready(m, 7);
	pk_is_clean(m, &q, 7);

	m->pk.multi = true; /* a MULTI block ran */
	m->pk.mq_n = 4;
	m->pk.name[10] = 'x';
	kvmw_pk_ready(m, 0);
	pk_is_clean(m, &q, 0);

	memset(&m->pk.dc, 0xff, sizeof(m->pk.dc)); /* the first field */
	kvmw_pk_ready(m, 1);
	pk_is_clean(m, &q, 1);

	m->pk.woff = 99; /* the last field */
	kvmw_pk_ready(m, 1);
	pk_is_clean(m, &q, 1);

	m->pk.quit = true;       /* a flag before the reply queue */
	m->pk.spill_done = true; /* one between it and the database */
	m->pk.cl_asking = true;  /* and one after the database */
	kvmw_pk_ready(m, 2);
	pk_is_clean(m, &q, 2);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fnv1a_vectors),
	    cmocka_unit_test(hash_tags),
	    cmocka_unit_test(spread),
	    cmocka_unit_test(stand_in_connection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
