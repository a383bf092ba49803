/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_kv_cluster.c - paste-kv's cluster key hash (src/apps/kv_crc16.c) and slot map file
 * (src/apps/kv_cluster_map.c). The slots below are redis-server 7.0.15's CLUSTER KEYSLOT answers
 * (tests/integration/test_kv_cluster.sh compares thousands more against a running redis-server).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kv_cluster.h"

#define S(x) (const uint8_t *)(x), strlen(x)

static void test_crc16(void **state)
{
	(void)state;
	assert_int_equal(kv_crc16(S("123456789")), 0x31C3); /* the CRC's published check value */
	assert_int_equal(kv_crc16(S("")), 0);
	assert_int_equal(kv_key_slot(S("foo")), 12182);
	assert_int_equal(kv_key_slot(S("bar")), 5061);
	assert_int_equal(kv_key_slot(S("")), 0);
}

static void test_hash_tags(void **state)
{
	(void)state;
	/* only the bytes between the first '{' and the first '}' after it */
	assert_int_equal(kv_key_slot(S("{user1000}.following")), kv_key_slot(S("user1000")));
	assert_int_equal(kv_key_slot(S("{user1000}.followers")), kv_key_slot(S("user1000")));
	assert_int_equal(kv_key_slot(S("foo{bar}{zap}")), kv_key_slot(S("bar")));
	assert_int_equal(kv_key_slot(S("foo{{bar}}zap")), kv_key_slot(S("{bar")));
	assert_int_equal(kv_key_slot(S("}{a}")), kv_key_slot(S("a")));
	/* an empty tag or no closing brace: the whole key */
	assert_int_equal(kv_key_slot(S("foo{}{bar}")), kv_crc16(S("foo{}{bar}")) & 16383);
	assert_int_equal(kv_key_slot(S("{")), kv_crc16(S("{")) & 16383);
	assert_int_equal(kv_key_slot(S("a{b")), kv_crc16(S("a{b")) & 16383);
	assert_int_equal(kv_key_slot(S("{a}")), 15495);
}

static char path[64];

static void write_map(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#define ID1 "1111111111111111111111111111111111111111"
#define ID2 "2222222222222222222222222222222222222222"

static void test_map(void **state)
{
	struct kv_cluster *cl = calloc(1, sizeof(*cl));
	char err[512];

	(void)state;
	assert_non_null(cl);
	snprintf(path, sizeof(path), "/tmp/test_kv_cluster-%d.conf", (int)getpid());
	write_map("# two nodes\n\nnode " ID1 " 10.0.0.1 7001 0-8191   # first half\n"
	          "node " ID2 " 10.0.0.2 7001 8192-16000 16001 16002-16383\n");
	assert_int_equal(kv_cluster_load(cl, path, NULL, "10.0.0.2", 7001, err, sizeof(err)), 0);
	assert_int_equal(cl->n, 2);
	assert_int_equal(cl->self, 1);
	assert_int_equal(cl->served, 16384);
	assert_int_equal(cl->owner[0], 0);
	assert_int_equal(cl->owner[8191], 0);
	assert_int_equal(cl->owner[8192], 1);
	assert_int_equal(cl->owner[16001], 1);
	assert_int_equal(cl->nodes[1].nslots, 8192);
	kv_cluster_free(cl);
	/* same port, no address: ambiguous; the id decides */
	assert_int_equal(kv_cluster_load(cl, path, NULL, NULL, 7001, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--cluster-id"));
	assert_int_equal(kv_cluster_load(cl, path, ID1, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(cl->self, 0);
	kv_cluster_free(cl);
	/* uncovered slots are allowed */
	write_map("node " ID1 " 127.0.0.1 7001 0-99\n");
	assert_int_equal(kv_cluster_load(cl, path, NULL, NULL, 7001, err, sizeof(err)), 0);
	assert_int_equal(cl->served, 100);
	assert_int_equal(cl->owner[100], -1);
	kv_cluster_free(cl);
	free(cl);
}

/* Each malformed map is refused with a message naming the line and the fault. */
static void test_map_errors(void **state)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
	    {"node " ID1 " 127.0.0.1 7001 0-100\nnode " ID2 " 127.0.0.1 7002 100-200\n",
	     ":2: slot 100 is already served by node " ID1 " (line 1)"},
	    {"node 12345 127.0.0.1 7001 0\n", ":1: node id '12345' is not 40 hex digits"},
	    {"node " ID1 " localhost 7001 0\n", ":1: 'localhost' is not a numeric"},
	    {"node " ID1 " 127.0.0.1 0 0\n", ":1: bad port '0'"},
	    {"node " ID1 " 127.0.0.1 7001 5-3\n", ":1: bad slot range '5-3'"},
	    {"node " ID1 " 127.0.0.1 7001 16384\n", ":1: bad slot range '16384'"},
	    {"node " ID1 " 127.0.0.1 7001 1x\n", ":1: bad slot range '1x'"},
	    {"node " ID1 " 127.0.0.1 7001\nnode " ID1 " 127.0.0.1 7002\n",
	     ":2: node id " ID1 " is also on line 1"},
	    {"node " ID1 " 127.0.0.1 7001\nnode " ID2 " 127.0.0.1 7001\n",
	     ":2: 127.0.0.1 port 7001 is also on line 1"},
	    {"nod " ID1 " 127.0.0.1 7001\n", ":1: unknown word 'nod'"},
	    {"node " ID1 " 127.0.0.1\n", ":1: expected 'node ID ADDRESS PORT"},
	    {"# nothing\n", "no 'node' line"},
	    {"node " ID1 " 127.0.0.1 7002 0-16383\n", "no node line has port 7001"},
	};
	struct kv_cluster *cl = calloc(1, sizeof(*cl));
	char err[512];

	(void)state;
	assert_non_null(cl);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_map(bad[i].text);
		err[0] = 0;
		assert_true(kv_cluster_load(cl, path, NULL, NULL, 7001, err, sizeof(err)) < 0);
		if (!strstr(err, bad[i].msg))
			fail_msg("map %zu: message '%s' lacks '%s'", i, err, bad[i].msg);
		assert_null(cl->nodes);
	}
	assert_int_equal(
	    kv_cluster_load(cl, "/nonexistent/x.conf", NULL, NULL, 7001, err, sizeof(err)),
	    -ENOENT);
	assert_non_null(strstr(err, "cannot open"));
	unlink(path);
	free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc16),
	    cmocka_unit_test(test_hash_tags),
	    cmocka_unit_test(test_map),
	    cmocka_unit_test(test_map_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
