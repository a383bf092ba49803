/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_daemon_replyq.c - src/apps/daemon_replyq.c, the daemons' reply queue, over fake send/keep/
 * release (struct daemon_replyq_io): segments leave in the order queued and copies coalesce; a send
 * buffer that takes a few bytes at a time (back-pressure) gets every byte exactly once across
 * flushes; pinning takes one reference per borrowed segment, sends from where the reference
 * points, and releases each reference exactly once when its segment is out; a refused reference
 * copies the bytes while they are valid; dropping the queue (connection closed) releases every
 * reference, also of a segment half sent; a failed send reports the connection gone.
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
#include <cmocka.h>

#include "daemon_replyq.h"

/* The fake connection and pool: what was sent, how much the send buffer takes per round. */
static struct {
	uint8_t sent[1 << 16];
	size_t sent_len;
	size_t room;             /* bytes the send buffer takes until refilled */
	bool fail;               /* the next send fails (connection gone) */
	int keep_err;            /* paste_keep's answer */
	unsigned live;           /* references held */
	unsigned kept;           /* references ever taken */
	unsigned released[64];   /* releases per reference (offset = index) */
	uint8_t packed[64][256]; /* where a reference points (copy_threshold: a packing frame) */
} F;

static struct paste_conn *const CONN = (struct paste_conn *)&F;
static struct paste_ctx *const CTX = (struct paste_ctx *)&F;
static const struct paste_pool *const POOL = (const struct paste_pool *)&F;

static ssize_t fake_send(struct paste_conn *c, const void *p, size_t n)
{
	assert_ptr_equal(c, CONN);
	if (F.fail)
		return -ENOTCONN;
	if (n > F.room)
		n = F.room;
	memcpy(F.sent + F.sent_len, p, n);
	F.sent_len += n;
	F.room -= n;
	return (ssize_t)n;
}

static int fake_keep(struct paste_ctx *ctx, const void *p, size_t n, struct paste_ref *ref)
{
	assert_ptr_equal(ctx, CTX);
	if (F.keep_err)
		return F.keep_err;
	assert_true(F.kept < 64 && n <= sizeof(F.packed[0]));
	memcpy(F.packed[F.kept], p, n); /* the reference names its own copy of the bytes */
	*ref = (struct paste_ref){.off = F.kept, .len = (uint32_t)n};
	F.kept++;
	F.live++;
	return 0;
}

static int fake_release(struct paste_ctx *ctx, const struct paste_ref *ref)
{
	assert_ptr_equal(ctx, CTX);
	assert_true(ref->off < F.kept);
	F.released[ref->off]++;
	assert_int_equal(F.released[ref->off], 1); /* exactly once */
	F.live--;
	return 0;
}

static void *fake_ref_ptr(const struct paste_pool *pool, const struct paste_ref *ref)
{
	assert_ptr_equal(pool, POOL);
	return F.packed[ref->off];
}

static const struct daemon_replyq_io IO = {fake_send, fake_keep, fake_release, fake_ref_ptr};

static int setup(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	F.room = SIZE_MAX;
	return 0;
}

static void sent_is(const char *want)
{
	assert_int_equal(F.sent_len, strlen(want));
	assert_memory_equal(F.sent, want, F.sent_len);
}

static void test_order_and_coalesce(void **state)
{
	struct daemon_replyq q = {.io = &IO};
	char value[] = "VALUE-IN-POOL";

	(void)state;
	assert_int_equal(daemon_replyq_copy(&q, "$13\r\n", 5), 0);
	assert_int_equal(daemon_replyq_borrow(&q, value, 13), 0);
	assert_int_equal(daemon_replyq_copy(&q, "\r\n", 2), 0);
	assert_int_equal(daemon_replyq_copy(&q, "+OK\r\n", 5), 0); /* joins the copy before it */
	assert_int_equal(q.n, 3);
	assert_int_equal(q.queued, 25);
	assert_int_equal(daemon_replyq_at(&q, 1)->kind, RSEG_BORROW);
	assert_int_equal(daemon_replyq_copy(&q, "x", 0), 0); /* nothing: no segment */
	assert_int_equal(q.n, 3);
	/* sent in the same callback: the borrowed bytes go out from where they are */
	assert_int_equal(daemon_replyq_flush(&q, CONN, CTX), 0);
	sent_is("$13\r\nVALUE-IN-POOL\r\n+OK\r\n");
	assert_int_equal(q.n, 0);
	assert_int_equal(q.queued, 0);
	assert_int_equal(q.buf_len, 0); /* the buffer is reused from its start */
	assert_int_equal(F.kept, 0);
	daemon_replyq_free(&q, CTX);
}

static void test_backpressure(void **state)
{
	struct daemon_replyq q = {.io = &IO};
	char want[4096], value[200];
	size_t wl = 0, rounds = 0;

	(void)state;
	for (unsigned i = 0; i < sizeof(value); i++)
		value[i] = (char)('a' + i % 26);
	for (int i = 0; i < 10; i++) { /* 10 replies: header copy, pinned value, trailer copy */
		char h[16];
		int n = snprintf(h, sizeof(h), "$%d\r\n", 100 + i);

		assert_int_equal(daemon_replyq_copy(&q, h, (size_t)n), 0);
		assert_int_equal(daemon_replyq_borrow(&q, value, 100 + (size_t)i), 0);
		assert_int_equal(daemon_replyq_copy(&q, "\r\n", 2), 0);
		memcpy(want + wl, h, (size_t)n);
		memcpy(want + wl + n, value, 100 + (size_t)i);
		memcpy(want + wl + n + 100 + i, "\r\n", 2);
		wl += (size_t)n + 100 + (size_t)i + 2;
	}
	assert_int_equal(daemon_replyq_pin(&q, CTX, POOL), 0);
	assert_int_equal(q.pins, 10);
	memset(value, '#', sizeof(value)); /* the data moves on (a DEL): the reply must not */
	assert_int_equal(q.queued, wl);
	while (q.n) {
		F.room = 37; /* the send buffer takes 37 bytes per round */
		assert_int_equal(daemon_replyq_flush(&q, CONN, CTX), 0);
		assert_int_equal(q.queued, wl - F.sent_len);
		/* a reference lives exactly as long as its segment is queued */
		assert_int_equal(F.live, F.kept - (unsigned)q.releases);
		assert_true(++rounds < 1000);
	}
	assert_int_equal(F.sent_len, wl);
	assert_memory_equal(F.sent, want, wl);
	assert_int_equal(F.live, 0);
	assert_int_equal(q.releases, 10);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(F.released[i], 1);
	daemon_replyq_free(&q, CTX);
}

static void test_pin_refused_copies(void **state)
{
	struct daemon_replyq q = {.io = &IO};
	char value[] = "scratch-or-unkeepable";

	(void)state;
	F.keep_err = -ENOSPC;
	assert_int_equal(daemon_replyq_copy(&q, "<", 1), 0);
	assert_int_equal(daemon_replyq_borrow(&q, value, strlen(value)), 0);
	assert_int_equal(daemon_replyq_copy(&q, ">", 1), 0);
	assert_int_equal(daemon_replyq_pin(&q, CTX, POOL), 0);
	assert_int_equal(q.pins, 0);
	assert_int_equal(q.pin_copies, 1);
	assert_int_equal(daemon_replyq_at(&q, 1)->kind, RSEG_COPY);
	memset(value, '#', sizeof(value) - 1);
	assert_int_equal(daemon_replyq_flush(&q, CONN, CTX), 0);
	sent_is("<scratch-or-unkeepable>");
	assert_int_equal(q.releases, 0);
	daemon_replyq_free(&q, CTX);
}

static void test_drop_on_close(void **state)
{
	struct daemon_replyq q = {.io = &IO};
	char a[] = "first-pinned-value", b[] = "second-pinned-value";

	(void)state;
	assert_int_equal(daemon_replyq_borrow(&q, a, strlen(a)), 0);
	assert_int_equal(daemon_replyq_copy(&q, "|", 1), 0);
	assert_int_equal(daemon_replyq_borrow(&q, b, strlen(b)), 0);
	assert_int_equal(daemon_replyq_pin(&q, CTX, POOL), 0);
	assert_int_equal(F.live, 2);
	F.room = 5; /* the first segment half sent */
	assert_int_equal(daemon_replyq_flush(&q, CONN, CTX), 0);
	sent_is("first");
	assert_int_equal(F.live, 2);
	F.room = SIZE_MAX;
	F.fail = true; /* the connection is gone: flush says so and keeps the queue */
	assert_int_equal(daemon_replyq_flush(&q, CONN, CTX), -1);
	assert_int_equal(q.n, 3);
	daemon_replyq_drop(&q, CTX); /* on_close */
	assert_int_equal(q.n, 0);
	assert_int_equal(q.queued, 0);
	assert_int_equal(F.live, 0);
	assert_int_equal(F.released[0], 1);
	assert_int_equal(F.released[1], 1);
	daemon_replyq_drop(&q, CTX); /* again: nothing left to release */
	assert_int_equal(q.releases, 2);
	daemon_replyq_free(&q, CTX);
	assert_null(q.buf);
	assert_null(q.seg);
}

static void test_many_segments(void **state)
{
	struct daemon_replyq q = {.io = &IO};
	char v[40][8];
	size_t total = 0;

	(void)state;
	/* more segments than the first allocation, sent while more are queued (head slides) */
	for (int i = 0; i < 40; i++) {
		snprintf(v[i], sizeof(v[i]), "<%05d>", i);
		assert_int_equal(daemon_replyq_borrow(&q, v[i], 7), 0);
		assert_int_equal(daemon_replyq_copy(&q, ",", 1), 0);
		total += 8;
		if (i % 7 == 6) {
			F.room = 20;
			assert_int_equal(daemon_replyq_flush(&q, CONN, CTX), 0);
		}
	}
	F.room = SIZE_MAX;
	assert_int_equal(daemon_replyq_flush(&q, CONN, CTX), 0);
	assert_int_equal(F.sent_len, total);
	for (int i = 0; i < 40; i++)
		assert_memory_equal(F.sent + 8 * i, v[i], 7);
	assert_int_equal(daemon_replyq_borrow(&q, v[0], (size_t)UINT32_MAX + 1), -EINVAL);
	assert_int_equal(q.n, 0);
	daemon_replyq_free(&q, CTX);
}

/* daemon_replyq_send (paste-echo's slots, paste-wal's record chunks): straight to the send buffer
 * while nothing is queued, the rest borrowed (or copied) and pinned; once something is queued,
 * later bytes queue behind it, not around it; a gone connection takes nothing. */
static void test_send_then_queue(void **state)
{
	struct daemon_replyq q = {.io = &IO};
	char slot[] = "0123456789", more[] = "abcdef";

	(void)state;
	F.room = 4;
	assert_int_equal(daemon_replyq_send(&q, CONN, slot, 10, true), 10);
	sent_is("0123");
	assert_int_equal(q.n, 1);
	assert_int_equal(daemon_replyq_at(&q, 0)->kind, RSEG_BORROW);
	assert_int_equal(q.queued, 6);
	assert_int_equal(daemon_replyq_send(&q, CONN, more, 6, false), 6); /* behind: no send */
	sent_is("0123");
	assert_int_equal(q.n, 2);
	assert_int_equal(daemon_replyq_at(&q, 1)->kind, RSEG_COPY);
	assert_int_equal(daemon_replyq_pin(&q, CTX, POOL), 0);
	assert_int_equal(F.live, 1);         /* the borrowed rest of the slot, not the copy */
	memset(slot, '#', sizeof(slot) - 1); /* the slot is consumed and reused */
	memset(more, '#', sizeof(more) - 1);
	F.room = SIZE_MAX;
	assert_int_equal(daemon_replyq_flush(&q, CONN, CTX), 0);
	sent_is("0123456789abcdef");
	assert_int_equal(F.live, 0);
	assert_int_equal(q.releases, 1);
	/* everything taken: nothing queued, no reference */
	assert_int_equal(daemon_replyq_send(&q, CONN, "xy", 2, true), 2);
	assert_int_equal(q.n, 0);
	sent_is("0123456789abcdefxy");
	F.fail = true;
	assert_int_equal(daemon_replyq_send(&q, CONN, "z", 1, true), -ENOTCONN);
	assert_int_equal(q.n, 0);
	daemon_replyq_free(&q, CTX);
}

/* daemon_put_u64: the digits snprintf gives, at the start of the buffer, nothing written after
 * them; every power of ten and its neighbours (where the digit count changes), and the extremes. */
static void test_put_u64(void **state)
{
	uint64_t v[64];
	size_t nv = 0;

	(void)state;
	v[nv++] = 0;
	v[nv++] = UINT64_MAX;
	for (uint64_t p = 1; p <= 10000000000000000000ull; p *= 10) {
		v[nv++] = p - 1;
		v[nv++] = p;
		v[nv++] = p + 1;
		if (p == 10000000000000000000ull)
			break;
	}
	for (size_t i = 0; i < nv; i++) {
		char want[32], got[32];
		int n = snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);

		memset(got, '#', sizeof(got));
		assert_int_equal(daemon_put_u64(got, v[i]), (size_t)n);
		assert_memory_equal(got, want, (size_t)n);
		for (size_t k = (size_t)n; k < sizeof(got); k++)
			assert_int_equal(got[k], '#');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_order_and_coalesce, setup),
	    cmocka_unit_test_setup(test_backpressure, setup),
	    cmocka_unit_test_setup(test_pin_refused_copies, setup),
	    cmocka_unit_test_setup(test_drop_on_close, setup),
	    cmocka_unit_test_setup(test_many_segments, setup),
	    cmocka_unit_test_setup(test_send_then_queue, setup),
	    cmocka_unit_test(test_put_u64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
