/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_rdb_read.c - paste-kv's RDB reader (src/apps/kv_rdb_read.c): Redis' CRC-64 check value; a
 * hand-built RDB with every encoding the reader decodes (plain, integer and LZF strings, hashes as
 * pairs, ziplist and listpack, expiries, SELECTDB, AUX) and types it skips; a wrong checksum and
 * every truncation of the file refused with -EBADMSG; and a dump.rdb written at test time by
 * redis-server (SAVE; skipped when redis-server is not installed) read back key by key.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "apps/kv_rdb.h"

/* ---- what the callback saw ------------------------------------------------------------------ */

struct seen {
	char key[64];
	int db;
	enum rdb_kind kind;
	char *val; /* strings: the value; hashes: "f=v,f=v" */
	size_t vlen, nfields;
	int64_t expire_ms;
};

static struct seen got[512];
static unsigned ngot;

static int collect(const struct rdb_entry *e, void *arg)
{
	struct seen *s = &got[ngot++];

	assert_true(ngot < 512);
	assert_true(e->key.n < sizeof(s->key));
	memcpy(s->key, e->key.p, e->key.n);
	s->key[e->key.n] = 0;
	s->db = e->db;
	s->kind = e->kind;
	s->expire_ms = e->expire_ms;
	if (e->kind == RDB_STRING) {
		s->val = malloc(e->val.n + 1);
		memcpy(s->val, e->val.p, e->val.n);
		s->val[e->val.n] = 0;
		s->vlen = e->val.n;
		return 0;
	}
	s->nfields = e->nfields;
	s->vlen = 0;
	for (size_t i = 0; i < e->nfields; i++)
		s->vlen += e->fields[i].n + 1;
	s->val = calloc(1, s->vlen + 1);
	for (size_t i = 0; i < e->nfields; i++) {
		strncat(s->val, (const char *)e->fields[i].p, e->fields[i].n);
		strcat(s->val, i % 2 ? "," : "=");
	}
	return 0;
}

static void reset(void)
{
	for (unsigned i = 0; i < ngot; i++)
		free(got[i].val);
	ngot = 0;
}

static const struct seen *find(const char *key)
{
	for (unsigned i = 0; i < ngot; i++)
		if (!strcmp(got[i].key, key))
			return &got[i];
	return NULL;
}

/* ---- a hand-built file ---------------------------------------------------------------------- */

struct buf {
	uint8_t b[4096];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->b));
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_str(struct buf *b, const char *s)
{
	put8(b, (uint8_t)strlen(s)); /* < 64: a 6-bit length */
	put(b, s, strlen(s));
}

static void put_blob(struct buf *b, const struct buf *inner)
{
	put8(b, 0x40 | (uint8_t)(inner->n >> 8)); /* 14-bit length */
	put8(b, (uint8_t)inner->n);
	put(b, inner->b, inner->n);
}

static void build(struct buf *b)
{
	static const uint8_t lzf[] = {0x02, 'a', 'b', 'c', 0xe0, 0x00, 0x02}; /* "abc" x4 */
	struct buf zl = {0}, lp = {0}, set = {0};
	uint64_t crc, ms = 4102444800000ull; /* 2100-01-01 */

	put(b, "REDIS0010", 9);
	put8(b, 0xfa);
	put_str(b, "redis-ver");
	put_str(b, "7.0.15");
	put8(b, 0xfe);
	put8(b, 0);
	put8(b, 0xfb);
	put8(b, 9);
	put8(b, 1);
	put8(b, 0); /* string */
	put_str(b, "plain");
	put_str(b, "hello");
	put8(b, 0);
	put_str(b, "i8");
	put8(b, 0xc0);
	put8(b, 0xf9); /* -7 */
	put8(b, 0);
	put_str(b, "i16");
	put8(b, 0xc1);
	put(b, "\x39\x30", 2); /* 12345 */
	put8(b, 0);
	put_str(b, "i32");
	put8(b, 0xc2);
	put(b, "\x00\x00\x00\x80", 4); /* INT32_MIN */
	put8(b, 0);
	put_str(b, "lzf");
	put8(b, 0xc3);
	put8(b, sizeof(lzf));
	put8(b, 12);
	put(b, lzf, sizeof(lzf));
	put8(b, 0xfc); /* expiry in ms, then the key */
	for (int i = 0; i < 8; i++)
		put8(b, (uint8_t)(ms >> (8 * i)));
	put8(b, 0);
	put_str(b, "ttl");
	put_str(b, "v");
	put8(b, 4); /* hash as pairs */
	put_str(b, "hpairs");
	put8(b, 1);
	put_str(b, "f");
	put_str(b, "v");
	/* hash as a ziplist: f1=abc, f2=7 (4-bit immediate), f3=-300 (int16) */
	put(&zl, "\0\0\0\0\0\0\0\0\6\0", 10);
	put(&zl,
	    "\x00\x02"
	    "f1",
	    4);
	put(&zl,
	    "\x04\x03"
	    "abc",
	    5);
	put(&zl,
	    "\x05\x02"
	    "f2",
	    4);
	put(&zl, "\x04\xf8", 2);
	put(&zl,
	    "\x02\x02"
	    "f3",
	    4);
	put(&zl, "\x04\xc0\xd4\xfe", 4);
	put8(&zl, 0xff);
	put8(b, 13);
	put_str(b, "hzip");
	put_blob(b, &zl);
	/* hash as a listpack: a=1 (7-bit uint), b=-1000 (13-bit), c=70000 (int24), long=<70 x's> */
	put(&lp, "\0\0\0\0\x08\0", 6);
	put(&lp,
	    "\x81"
	    "a\x02",
	    3);
	put(&lp, "\x01\x01", 2);
	put(&lp,
	    "\x81"
	    "b\x02",
	    3);
	put(&lp, "\xdc\x18\x02", 3); /* 8192 - 1000 = 0x1c18 */
	put(&lp,
	    "\x81"
	    "c\x02",
	    3);
	put(&lp, "\xf2\x70\x11\x01\x04", 5);
	put(&lp,
	    "\x84"
	    "long\x05",
	    6);
	put8(&lp, 0xe0);
	put8(&lp, 70);
	for (int i = 0; i < 70; i++)
		put8(&lp, 'x');
	put8(&lp, 72); /* backlen of a 72-byte entry */
	put8(&lp, 0xff);
	put8(b, 16);
	put_str(b, "hlp");
	put_blob(b, &lp);
	/* skipped: a set of two members, an intset, then a key in db 3 */
	put8(b, 2);
	put_str(b, "aset");
	put8(b, 2);
	put_str(b, "m1");
	put_str(b, "m2");
	put(&set, "\x02\0\0\0\x01\0\0\0\x05\0", 10);
	put8(b, 11);
	put_str(b, "iset");
	put_blob(b, &set);
	put8(b, 0xfe);
	put8(b, 3);
	put8(b, 0);
	put_str(b, "indb3");
	put_str(b, "x");
	put8(b, 0xff);
	crc = rdb_crc64(0, b->b, b->n);
	for (int i = 0; i < 8; i++)
		put8(b, (uint8_t)(crc >> (8 * i)));
}

static void test_crc64(void **state)
{
	assert_true(rdb_crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9caull);
}

static void test_handmade(void **state)
{
	struct buf b = {0};
	struct rdb_stats st;
	char err[256];
	const struct seen *s;
	char longv[80];

	build(&b);
	reset();
	assert_int_equal(rdb_load(b.b, b.n, collect, NULL, &st, err, sizeof(err)), 0);
	assert_int_equal(st.version, 10);
	assert_true(st.crc_checked);
	assert_int_equal(st.strings, 7);
	assert_int_equal(st.hashes, 3);
	assert_int_equal(st.colls, 2);
	assert_int_equal(st.skipped, 0);
	assert_int_equal(st.expires, 1);
	assert_int_equal(st.aux, 1);
	assert_string_equal(find("plain")->val, "hello");
	assert_string_equal(find("i8")->val, "-7");
	assert_string_equal(find("i16")->val, "12345");
	assert_string_equal(find("i32")->val, "-2147483648");
	assert_string_equal(find("lzf")->val, "abcabcabcabc");
	s = find("ttl");
	assert_true(s->expire_ms == 4102444800000ll);
	assert_true(find("plain")->expire_ms == -1);
	assert_string_equal(find("hpairs")->val, "f=v,");
	s = find("hzip");
	assert_int_equal(s->kind, RDB_HASH);
	assert_string_equal(s->val, "f1=abc,f2=7,f3=-300,");
	memset(longv, 'x', 70);
	longv[70] = 0;
	s = find("hlp");
	assert_int_equal(s->nfields, 8);
	assert_non_null(strstr(s->val, "a=1,b=-1000,c=70000,long="));
	assert_non_null(strstr(s->val, longv));
	assert_int_equal(find("indb3")->db, 3);
	assert_int_equal(find("plain")->db, 0);
	assert_int_equal(find("aset")->kind, RDB_SET);
	assert_string_equal(find("aset")->val, "m1=m2,");
	assert_int_equal(find("iset")->kind, RDB_SET);
	assert_int_equal(find("iset")->nfields, 1);
	assert_string_equal(find("iset")->val, "5=");
	reset();
}

static void test_bad_crc_and_truncation(void **state)
{
	struct buf b = {0};
	struct rdb_stats st;
	char err[256];

	build(&b);
	b.b[12] ^= 1; /* inside the AUX value */
	assert_int_equal(rdb_load(b.b, b.n, collect, NULL, &st, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "checksum mismatch"));
	reset();
	b.b[12] ^= 1;
	for (size_t n = 0; n < b.n; n++) { /* every prefix: refused, never read past it */
		uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, b.b, n);
		assert_int_equal(rdb_load(copy, n, collect, NULL, &st, err, sizeof(err)), -EBADMSG);
		assert_true(err[0] != 0);
		free(copy);
		reset();
	}
	assert_int_equal(
	    rdb_load((const uint8_t *)"REDIS0011", 9, collect, NULL, &st, err, sizeof(err)),
	    -EBADMSG);
	assert_non_null(strstr(err, "version 11"));
}

/* ---- a file redis-server wrote -------------------------------------------------------------- */

static void test_redis_server_dump(void **state)
{
	char dir[] = "/tmp/paste-rdb-XXXXXX", cmd[4096], path[256];
	struct rdb_stats st;
	char err[256];
	uint8_t *data;
	struct stat sb;
	FILE *f;
	int rc;
	char big[5000];

	if (system("command -v redis-server >/dev/null && command -v redis-cli >/dev/null")) {
		skip(); /* scripts/deps installs both */
		return;
	}
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
	         "cd %s && redis-server --port 0 --unixsocket %s/s --dir %s --save '' "
	         "--daemonize yes --pidfile %s/pid --logfile %s/log && "
	         "for i in $(seq 50); do redis-cli -s %s/s ping >/dev/null 2>&1 && break; "
	         "sleep 0.1; done && "
	         "C='redis-cli -s %s/s' && "
	         "$C set small hi >/dev/null && $C set n 123456 >/dev/null && "
	         "$C set neg -42 >/dev/null && $C set big \"$(printf 'ab%%.0s' $(seq 2500))\" "
	         ">/dev/null && $C set exp v PXAT 4102444800000 >/dev/null && "
	         "$C hset h a 1 b two >/dev/null && "
	         "for i in $(seq 200); do echo \"HSET bigh f$i v$i\"; done | $C >/dev/null && "
	         "$C sadd s x y >/dev/null && $C rpush l a b >/dev/null && "
	         "$C zadd z 1 a 2.5 b >/dev/null && $C xadd st '*' f v >/dev/null && "
	         "$C sadd si 3 -70000 5000000000 >/dev/null && "
	         "for i in $(seq 3000); do echo \"RPUSH bigl e$i\"; echo \"ZADD bigz $i.5 m$i\"; "
	         "done | $C >/dev/null && "
	         "$C -n 5 set in5 five >/dev/null && $C save >/dev/null && "
	         "$C shutdown nosave >/dev/null 2>&1; "
	         "for i in $(seq 50); do [ -e %s/pid ] || break; sleep 0.1; done",
	         dir, dir, dir, dir, dir, dir, dir, dir);
	rc = system(cmd);
	snprintf(path, sizeof(path), "%s/dump.rdb", dir);
	assert_int_equal(stat(path, &sb), 0);
	(void)rc;
	data = malloc((size_t)sb.st_size);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(data, 1, (size_t)sb.st_size, f), (size_t)sb.st_size);
	fclose(f);
	reset();
	assert_int_equal(rdb_load(data, (size_t)sb.st_size, collect, NULL, &st, err, sizeof(err)),
	                 0);
	assert_true(st.crc_checked);
	assert_string_equal(find("small")->val, "hi");
	assert_string_equal(find("n")->val, "123456");
	assert_string_equal(find("neg")->val, "-42");
	for (int i = 0; i < 2500; i++)
		memcpy(big + 2 * i, "ab", 2);
	assert_int_equal(find("big")->vlen, 5000);
	assert_memory_equal(find("big")->val, big, 5000);
	assert_true(find("exp")->expire_ms == 4102444800000ll);
	assert_string_equal(find("h")->val, "a=1,b=two,");
	assert_int_equal(find("bigh")->nfields, 400);
	assert_non_null(strstr(find("bigh")->val, "f137=v137,"));
	assert_int_equal(find("in5")->db, 5);
	assert_int_equal(st.skipped, 1); /* the stream */
	assert_int_equal(st.skipped_type[19], 1);
	assert_int_equal(find("s")->kind, RDB_SET);
	assert_int_equal(find("s")->nfields, 2);
	assert_string_equal(find("l")->val, "a=b,"); /* elements in order */
	assert_int_equal(find("z")->kind, RDB_ZSET);
	assert_string_equal(find("z")->val, "a=1,b=2.5,"); /* member, score */
	assert_int_equal(find("si")->nfields, 3);
	assert_non_null(strstr(find("si")->val, "-70000"));
	assert_non_null(strstr(find("si")->val, "5000000000"));
	assert_int_equal(find("bigl")->kind, RDB_LIST); /* a quicklist of several listpacks */
	assert_int_equal(find("bigl")->nfields, 3000);
	assert_true(!strncmp(find("bigl")->val, "e1=e2,e3=", 9));
	assert_non_null(strstr(find("bigl")->val, "e2999=e3000,"));
	assert_int_equal(find("bigz")->nfields, 6000); /* a skiplist: binary scores */
	assert_non_null(strstr(find("bigz")->val, "m1234=1234.5,"));
	reset();
	free(data);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc64),
	    cmocka_unit_test(test_handmade),
	    cmocka_unit_test(test_bad_crc_and_truncation),
	    cmocka_unit_test(test_redis_server_dump),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
