/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_log_view.c - src/log_view.c: read-only views of one slice of a sliced pool file and of a
 * log in it, read while the owner (here the same process, through its own open of the slice)
 * appends, wraps its ring and truncates. Record seq's payload byte i is pat(seq, i), so every read
 * also checks content.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <paste/index.h>
#include <paste/pool.h>

#include "internal.h"
#include "pool_internal.h"

#define MiB    (1ull << 20)
#define WAL    "wal"
#define SLICE  1u
#define REGION (16u << 10) /* a small ring: the tests wrap it */

static char path[256];
static struct paste_pool *pool;
static struct paste_log *log_;

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

static uint8_t pat(uint64_t seq, unsigned i)
{
	return (uint8_t)(seq * 131 + i * 7 + 3);
}

static uint32_t len_of(uint64_t seq)
{
	return 50 + (uint32_t)(seq % 300);
}

/* Append record @want (its payload in a frame of its own, kept as the event loop keeps it). */
static void append(uint64_t want)
{
	struct paste_frames *f = paste_pool__frame_alloc(pool);
	uint8_t *base = paste_pool__base(pool);
	struct paste_pool_info pi;
	struct paste_ref ref;
	uint64_t seq = 0;
	uint32_t idx;

	paste_pool__info(pool, &pi, sizeof(pi));
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_RX, &idx), 0);
	ref = (struct paste_ref){.off = pi.frame_area_off + (uint64_t)idx * pi.frame_size + 16,
	                         .len = len_of(want)};
	for (unsigned i = 0; i < ref.len; i++)
		base[ref.off + i] = pat(want, i);
	paste_pool__persist(pool, base + ref.off, ref.len);
	assert_int_equal(paste_pool__ref_get(pool, &ref), 0);
	assert_int_equal(paste_frames__rx_done(f, idx), 0);
	assert_int_equal(paste_log__append(log_, &ref, 1, &seq), 0);
	assert_int_equal(seq, want);
	paste_pool__drain(pool);
}

/* Read @seq through @v within the owner's current bounds and check every byte. */
static void read_ok(struct paste_log_view *v, uint64_t seq)
{
	struct paste_log_info li;
	uint8_t buf[512];
	uint32_t len = 0;

	paste_log__info(log_, &li, sizeof(li));
	assert_int_equal(
	    paste_log_view__read(v, seq, li.first_seq, li.next_seq, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, len_of(seq));
	for (unsigned i = 0; i < len; i++)
		assert_int_equal(buf[i], pat(seq, i));
	assert_int_equal(paste_log_view__len(v, seq, li.first_seq, li.next_seq, &len), 0);
	assert_int_equal(len, len_of(seq));
}

static int read_err(struct paste_log_view *v, uint64_t seq, uint64_t first, uint64_t next,
                    size_t cap)
{
	uint8_t buf[512];
	uint32_t len;

	return paste_log_view__read(v, seq, first, next, buf, cap, &len);
}

static int setup(void **state)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .size = 4 * MiB, .frame_size = 2048};

	paste_set_print(quiet, NULL, PASTE_LOG_DEBUG);
	snprintf(path, sizeof(path), "/dev/shm/paste-test-logview-%d.pool", (int)getpid());
	unlink(path);
	o.create = true;
	o.sliced = true;
	o.slice = SLICE;
	if (paste_pool__open(&pool, path, &o) ||
	    paste_log__open(&log_, pool, WAL,
	                    &PASTE_OPTS_LIT(paste_log_opts, .region_size = REGION)))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	paste_pool__close(&pool);
	unlink(path);
	return 0;
}

static void test_missing_slice(void **state)
{
	struct paste_pool_view *pv = NULL;

	assert_int_equal(paste_pool_view__open(&pv, pool, 0), -ENOENT); /* slice 0 never made */
	assert_null(pv);
	assert_non_null(strstr(paste_last_error(), "does not exist yet"));
}

static void test_read_wrap_truncate(void **state)
{
	struct paste_pool_view *pv = NULL;
	struct paste_log_view *v = NULL;
	struct paste_log_info li;
	uint64_t next = 1;

	assert_int_equal(paste_pool_view__open(&pv, pool, SLICE), 0);
	assert_non_null(paste_pool_view__region(pv, WAL, NULL));
	assert_null(paste_pool_view__region(pv, "nope", NULL));
	assert_int_equal(paste_log_view__open(&v, pv, "nope"), -ENOENT);
	assert_int_equal(paste_log_view__open(&v, pv, WAL), 0);
	assert_int_equal(read_err(v, 1, 1, 1, 512), -ENOENT); /* nothing committed yet */
	/* The ring holds about 250 records: 8 rounds of 100 appends and a truncation wrap it
	 * several times while the view keeps its cached offsets. */
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 100; i++)
			append(next++);
		for (uint64_t s = next - 100; s < next; s += 7)
			read_ok(v, s);
		read_ok(v, next - 1);
		assert_int_equal(paste_log__truncate(log_, next - 60), 0);
		paste_log__info(log_, &li, sizeof(li));
		assert_int_equal(li.first_seq, next - 59);
		/* truncated: outside the owner's bounds (with stale bounds the bytes may still be
		 * intact and read: the caller re-checks first after the read) */
		assert_int_equal(read_err(v, next - 61, li.first_seq, next, 512), -ENOENT);
		read_ok(v, next - 59);
	}
	paste_log__info(log_, &li, sizeof(li));
	assert_int_equal(read_err(v, li.next_seq, li.first_seq, li.next_seq, 512), -ENOENT);
	assert_int_equal(read_err(v, li.first_seq, li.first_seq, li.next_seq, 10), -EMSGSIZE);
	paste_log_view__close(&v);
	assert_null(v);
	paste_pool_view__close(&pv);
	assert_null(pv);
}

/* A payload changed under the view (a frame reused after a truncation it did not see yet): the
 * payload CRC refuses it. */
static void test_payload_checked(void **state)
{
	struct paste_pool_view *pv = NULL;
	struct paste_log_view *v = NULL;
	struct paste_log_rec rec;
	uint8_t *p;

	for (uint64_t s = 1; s <= 3; s++)
		append(s);
	assert_int_equal(paste_pool_view__open(&pv, pool, SLICE), 0);
	assert_int_equal(paste_log_view__open(&v, pv, WAL), 0);
	read_ok(v, 2);
	assert_int_equal(paste_log__get(log_, 2, &rec), 0);
	p = paste_pool__ref_ptr(pool, &rec.refs[0]);
	p[5] ^= 0xff;
	assert_int_equal(read_err(v, 2, 1, 4, 512), -ENOENT);
	p[5] ^= 0xff;
	read_ok(v, 2);
	read_ok(v, 3);
	paste_log_view__close(&v);
	paste_pool_view__close(&pv);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_missing_slice),
	    T(test_read_wrap_truncate),
	    T(test_payload_checked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
