/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_kv_lkey.c - paste-kv's large keys (src/apps/kv_lkey.c) on a real pool and real indexes
 * (kernel-transport context, nothing listening): keys of 100 B stay inline; keys of 2 KiB,
 * 64 KiB and 1 MiB get a surrogate, are stored as chunks and read back byte for byte; a slot
 * holding another key of the same hash is skipped (the full key is compared); a deleted key's
 * chunks are reaped after the fence but kept when the key is stored again first; chunks without
 * a surrogate (a crash between the two steps) are deleted by the startup sweep; FLUSHALL in a
 * transaction that never commits is rolled back with the key's chunks; database tags.
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
#include <unistd.h>
#include <cmocka.h>

#include "kv.h"

static char pool_path[128];
static struct kvd D;
static struct kconn KC;

static void quiet_print(enum paste_log_level level, const char *msg, void *user)
{
}

static int setup(void **state)
{
	memset(&D, 0, sizeof(D));
	memset(&KC, 0, sizeof(KC));
	paste_set_print(quiet_print, NULL, PASTE_LOG_ERROR);
	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-test-%d-lkey.pool", (int)getpid());
	unlink(pool_path);
	D.d.paste.sz = sizeof(D.d.paste);
	D.d.paste.transport = PASTE_TRANSPORT_KERNEL;
	D.d.paste.pool_path = pool_path;
	D.d.paste.pool_size = 64u << 20;
	assert_int_equal(paste_open(&D.ctx, &D.d.paste), 0);
	D.max_key = 512u << 20;
	D.keys = 4096;
	D.sub_keys = 8192;
	assert_int_equal(open_store(&D), 0);
	D.arena_cap = KV_ARENA;
	D.arena = malloc(D.arena_cap);
	assert_non_null(D.arena);
	KC.d = &D;
	return 0;
}

static void close_store(void)
{
	arena_reset(&D);
	free(D.arena);
	free(D.extra);
	free(D.hc);
	free(D.dead);
	free(D.lk_new);
	free(D.lk_dead);
	free(D.tx.seen);
	free(D.tx.gc);
	free(D.watches);
	replica_free(&D);
	paste_close(&D.ctx);
}

static int teardown(void **state)
{
	close_store();
	unlink(pool_path);
	return 0;
}

/* A request whose argument 1 is @key (the arguments are in memory: as when EXEC runs it). */
struct fake_req {
	struct req r;
	struct resp_cmd cmd;
	struct resp_arg argv[2];
	struct resp_seg seg;
	struct resp_buf b;
	uint8_t *buf;
};

static void fake_req(struct fake_req *f, const uint8_t *key, size_t n, int db)
{
	f->buf = malloc(n + 1);
	assert_non_null(f->buf);
	memcpy(f->buf, key, n);
	f->buf[n] = '\r';
	f->seg = (struct resp_seg){.p = f->buf, .len = n + 1};
	resp_buf_init(&f->b, &f->seg, 1);
	f->argv[0] = (struct resp_arg){.off = 0, .len = 0};
	f->argv[1] = (struct resp_arg){.off = 0, .len = (uint32_t)n};
	f->cmd = (struct resp_cmd){.argc = 2, .argv = f->argv};
	KC.db = db;
	f->r = (struct req){.d = &D, .kc = &KC, .b = &f->b, .cmd = &f->cmd, .queued = true};
}

static uint8_t *make_key(size_t n, unsigned seed)
{
	uint8_t *k = malloc(n);

	assert_non_null(k);
	for (size_t i = 0; i < n; i++)
		k[i] = (uint8_t)(i * 7 + seed + (i >> 9));
	return k;
}

/* arg_key() of @key, then store it with value @v; @return its stored form (copied). */
static void put_key(const uint8_t *key, size_t n, const char *v, struct str *out, uint8_t *sbuf)
{
	struct fake_req f;
	struct str k, val = {.p = (const uint8_t *)v, .n = (uint32_t)strlen(v), .pool = false};

	arena_reset(&D);
	fake_req(&f, key, n, 0);
	assert_int_equal(arg_key(&f.r, 1, &k), 0);
	assert_int_equal(store(&D, &k, &val, 0, S_NEW), 0);
	memcpy(sbuf, k.p, k.n);
	*out = (struct str){.p = sbuf, .n = k.n};
	free(f.buf);
}

static const uint8_t *get_val(struct str *k, size_t *n)
{
	struct paste_ref ref;

	if (lookup(&D, k, &ref))
		return NULL;
	return val_bytes(&D, &ref, n);
}

static void test_sizes(void **state)
{
	static const size_t sizes[] = {100, 2048, 65536, 1u << 20};
	uint8_t sbuf[4][128];
	struct str k[4];

	for (int i = 0; i < 4; i++) {
		uint8_t *key = make_key(sizes[i], (unsigned)i);
		char v[32];

		snprintf(v, sizeof(v), "v%zu\r", sizes[i]);
		put_key(key, sizes[i], v, &k[i], sbuf[i]);
		if (sizes[i] <= lkey_inline(&D)) {
			assert_false(lkey_is(k[i].p, k[i].n));
			assert_int_equal(k[i].n, sizes[i] + 1);
		} else {
			size_t len = 0;
			uint8_t *full;

			assert_true(lkey_is(k[i].p, k[i].n));
			assert_int_equal(k[i].n, 26);
			full = lkey_bytes(&D, k[i].p, k[i].n, &len);
			assert_non_null(full);
			assert_int_equal(len, sizes[i]);
			assert_memory_equal(full, key, len);
			free(full);
		}
		free(key);
	}
	/* the same key again names the same entry; one byte different is another key */
	for (int i = 0; i < 4; i++) {
		uint8_t *key = make_key(sizes[i], (unsigned)i);
		struct fake_req f;
		struct str again;
		size_t n;
		const uint8_t *p;

		arena_reset(&D);
		fake_req(&f, key, sizes[i], 0);
		assert_int_equal(arg_key(&f.r, 1, &again), 0);
		assert_int_equal(again.n, k[i].n);
		assert_memory_equal(again.p, k[i].p, k[i].n);
		p = get_val(&again, &n);
		assert_non_null(p);
		assert_int_equal(n, strlen("v") + (sizes[i] == 100     ? 3
		                                   : sizes[i] == 2048  ? 4
		                                   : sizes[i] == 65536 ? 5
		                                                       : 7));
		free(f.buf);
		key[sizes[i] / 2] ^= 1;
		arena_reset(&D);
		fake_req(&f, key, sizes[i], 0);
		assert_int_equal(arg_key(&f.r, 1, &again), 0);
		assert_null(get_val(&again, &n));
		free(f.buf);
		free(key);
	}
}

/* Chunks of another key under a key's first slot: the key takes the next slot. */
static void test_collision(void **state)
{
	size_t n = 5000;
	uint8_t *key = make_key(n, 9), *other = make_key(n, 10), sur[26], sbuf[128];
	struct fake_req f;
	struct str k, stored;
	uint64_t nchunks;
	size_t len;
	uint8_t *full;

	fake_req(&f, key, n, 0);
	assert_int_equal(arg_key(&f.r, 1, &k), 0);
	assert_int_equal(k.p[24], 0); /* slot 0 */
	memcpy(sur, k.p, 26);
	free(f.buf);
	arena_reset(&D);
	/* the same hash and length, other bytes: what a hash collision would leave */
	assert_int_equal(pieces_put(&D, UINT64_MAX, sur, 26, NULL, 0, other, n, &nchunks), 0);
	assert_true(nchunks >= 3);
	put_key(key, n, "x\r", &stored, sbuf);
	assert_int_equal(stored.p[24], 1);
	assert_memory_equal(stored.p, sur, 24);
	full = lkey_bytes(&D, stored.p, stored.n, &len);
	assert_non_null(full);
	assert_memory_equal(full, key, n);
	free(full);
	free(key);
	free(other);
}

static void reopen(void);

static uint64_t pieces(void)
{
	return sub_count(&D);
}

static void test_reap_and_sweep(void **state)
{
	size_t n = 65536;
	uint8_t *key = make_key(n, 3), *key2 = make_key(n, 4), sbuf[128], sbuf2[128], sur[26];
	struct str k, k2;
	uint64_t before = pieces(), with, nchunks;
	struct fake_req f;

	put_key(key, n, "a\r", &k, sbuf);
	with = pieces();
	assert_true(with - before >= n / D.frame_size);
	/* deleted, then stored again before the reap: the chunks stay */
	assert_true(del_key(&D, k.p, k.n));
	put_key(key, n, "b\r", &k, sbuf);
	paste_pool__drain(D.pool);
	obj_reap(&D);
	assert_int_equal(pieces(), with);
	/* deleted: after the fence its chunks go */
	assert_true(del_key(&D, k.p, k.n));
	assert_int_equal(pieces(), with); /* not before the fence */
	paste_pool__drain(D.pool);
	obj_reap(&D);
	assert_int_equal(pieces(), before);

	/* a crash between the chunks and the surrogate: chunks without a key */
	put_key(key2, n, "c\r", &k2, sbuf2); /* a stored one, which must survive */
	arena_reset(&D);
	fake_req(&f, key, n, 0);
	assert_int_equal(arg_key(&f.r, 1, &k), 0);
	memcpy(sur, k.p, 26);
	assert_int_equal(pieces_put(&D, UINT64_MAX, sur, 26, NULL, 0, key, n, &nchunks), 0);
	free(f.buf);
	with = pieces();
	paste_pool__drain(D.pool);
	reopen(); /* "restart" */
	assert_int_equal(D.start_orphan_pieces, nchunks);
	assert_int_equal(pieces(), with - nchunks);
	{
		size_t len, vn;
		uint8_t *full = lkey_bytes(&D, k2.p, k2.n, &len);
		struct str k2s = {.p = sbuf2, .n = 26};

		assert_non_null(full);
		assert_memory_equal(full, key2, n);
		free(full);
		assert_non_null(get_val(&k2s, &vn));
		assert_int_equal(vn, 1);
	}
	free(key);
	free(key2);
}

static void reopen(void)
{
	close_store();
	memset(&D, 0, sizeof(D));
	D.d.paste.sz = sizeof(D.d.paste);
	D.d.paste.transport = PASTE_TRANSPORT_KERNEL;
	D.d.paste.pool_path = pool_path;
	D.max_key = 512u << 20;
	assert_int_equal(paste_open(&D.ctx, &D.d.paste), 0);
	assert_int_equal(open_store(&D), 0);
	D.arena_cap = KV_ARENA;
	D.arena = malloc(D.arena_cap);
	assert_non_null(D.arena);
	KC.d = &D;
}

/* FLUSHALL inside a transaction that never commits (a crash before EXEC's end): recovery puts the
 * large key back, chunks included (their deletion is logged like any other). */
static void test_flushall_rolled_back(void **state)
{
	size_t n = 70000, len, vn;
	uint8_t *key = make_key(n, 7), sbuf[128], *full;
	struct fake_req f;
	struct str k;

	put_key(key, n, "kept\r", &k, sbuf);
	paste_pool__drain(D.pool);
	arena_reset(&D);
	fake_req(&f, key, 0, 0);
	f.cmd.argc = 1;
	tx_begin(&D);
	assert_int_equal(cmd_flushall(&f.r), 0);
	free(f.buf);
	assert_null(get_val(&k, &vn));
	paste_pool__drain(D.pool);       /* the deletions are on media; the commit never comes */
	daemon_replyq_free(&KC.q, NULL); /* copies only: nothing to release */
	memset(&KC, 0, sizeof(KC));
	D.tx.depth = 0;
	reopen();
	assert_true(D.tx.undone > 0);
	assert_int_equal(D.start_orphan_pieces, 0);
	assert_non_null(get_val(&k, &vn));
	assert_int_equal(vn, 4);
	full = lkey_bytes(&D, k.p, k.n, &len);
	assert_non_null(full);
	assert_int_equal(len, n);
	assert_memory_equal(full, key, n);
	free(full);
	free(key);
}

static void test_db_tags(void **state)
{
	size_t n = 3000;
	uint8_t *key = make_key(n, 5);
	struct fake_req f;
	struct str k0, k3;
	uint8_t s0[26];

	fake_req(&f, key, n, 0);
	assert_int_equal(arg_key(&f.r, 1, &k0), 0);
	memcpy(s0, k0.p, 26);
	free(f.buf);
	arena_reset(&D);
	fake_req(&f, key, n, 3);
	assert_int_equal(arg_key(&f.r, 1, &k3), 0);
	free(f.buf);
	assert_memory_not_equal(s0, k3.p, 26);
	assert_int_equal(key_db(s0, 26), 0);
	assert_int_equal(key_db(k3.p, 26), 3);
	assert_true(key_in(s0, 26, db_tag(0)));
	assert_false(key_in(s0, 26, db_tag(3)));
	assert_true(key_in(k3.p, 26, db_tag(3)));
	assert_true(key_in((const uint8_t *)"ab\r", 3, db_tag(0)));
	assert_true(key_in((const uint8_t *)"ab\x85", 3, db_tag(5)));
	assert_false(key_in((const uint8_t *)"ab\x85", 3, db_tag(0)));
	free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_collision, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reap_and_sweep, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flushall_rolled_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_db_tags, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
