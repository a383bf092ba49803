/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_frames.c - src/frames.c: the frame allocator's state machine. Each test checks the per-state
 * counts after every step, runs the full audit, and the teardown asserts that no frame leaked
 * (everything FREE or accounted for) before fini.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include "frames.h"

#define N 64u

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

/* Assert the five per-state counts and a clean audit. */
static void expect(const struct paste_frames *f, uint32_t nfree, uint32_t fill, uint32_t rx,
                   uint32_t tx, uint32_t kept)
{
	assert_int_equal(paste_frames__nr(f, PASTE_FRAME_FREE), nfree);
	assert_int_equal(paste_frames__nr(f, PASTE_FRAME_FILL), fill);
	assert_int_equal(paste_frames__nr(f, PASTE_FRAME_RX), rx);
	assert_int_equal(paste_frames__nr(f, PASTE_FRAME_TX), tx);
	assert_int_equal(paste_frames__nr(f, PASTE_FRAME_KEPT), kept);
	assert_int_equal(f->nfree, nfree);
	assert_true(paste_frames__audit(f));
}

static int setup(void **state)
{
	struct paste_frames *f = calloc(1, sizeof(*f));

	paste_set_print(quiet, NULL, PASTE_LOG_DEBUG);
	if (!f || paste_frames__init(f, N, NULL))
		return -1;
	*state = f;
	return 0;
}

/* Every test returns its frames: nothing may be left outside FREE (KEPT tests release theirs). */
static int teardown(void **state)
{
	struct paste_frames *f = *state;
	int leaked = !paste_frames__audit(f) || paste_frames__nr(f, PASTE_FRAME_FREE) != f->count;

	paste_frames__fini(f);
	leaked |= f->state != NULL || f->count != 0;
	free(f);
	return leaked ? -1 : 0;
}

static void test_init(void **state)
{
	struct paste_frames f;

	paste_set_print(quiet, NULL, PASTE_LOG_DEBUG);
	assert_int_equal(paste_frames__init(&f, 0, NULL), -EINVAL);
	assert_int_equal(paste_frames__init(&f, 1, NULL), 0);
	expect(&f, 1, 0, 0, 0, 0);
	paste_frames__fini(&f);
	assert_int_equal(f.count, 0);
}

static void test_alloc_all_then_enospc(void **state)
{
	struct paste_frames *f = *state;
	uint8_t seen[N] = {0};
	uint32_t idx;

	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &idx), 0);
		assert_true(idx < N);
		assert_int_equal(seen[idx], 0); /* never handed out twice */
		seen[idx] = 1;
		assert_int_equal(f->state[idx], PASTE_FRAME_FILL);
	}
	expect(f, 0, N, 0, 0, 0);
	idx = 12345;
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &idx), -ENOSPC);
	assert_int_equal(idx, 12345);
	expect(f, 0, N, 0, 0, 0);
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(paste_frames__move(f, i, PASTE_FRAME_FILL, PASTE_FRAME_FREE), 0);
	expect(f, N, 0, 0, 0, 0);
}

static void test_alloc_lowest_first_and_bad_target(void **state)
{
	struct paste_frames *f = *state;
	uint32_t a, b;

	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_TX, &a), 0);
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_TX, &b), 0);
	assert_int_equal(a, 0);
	assert_int_equal(b, 1);
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FREE, &a), -EINVAL);
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_NSTATES, &a), -EINVAL);
	expect(f, N - 2, 0, 0, 2, 0);
	assert_int_equal(paste_frames__move(f, 0, PASTE_FRAME_TX, PASTE_FRAME_FREE), 0);
	assert_int_equal(paste_frames__move(f, 1, PASTE_FRAME_TX, PASTE_FRAME_FREE), 0);
	/* LIFO: the frame freed last is handed out first (still warm in cache). */
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &a), 0);
	assert_int_equal(a, 1);
	assert_int_equal(paste_frames__move(f, 1, PASTE_FRAME_FILL, PASTE_FRAME_FREE), 0);
	expect(f, N, 0, 0, 0, 0);
}

static void test_move_wrong_state(void **state)
{
	struct paste_frames *f = *state;
	uint32_t idx;

	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &idx), 0);
	/* Claimed RX but it is on the fill ring: refused, nothing changes. */
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE), -EINVAL);
	expect(f, N - 1, 1, 0, 0, 0);
	assert_int_equal(f->state[idx], PASTE_FRAME_FILL);
	assert_non_null(strstr(paste_last_error(), "not RX"));
	/* Out of range index and bad states. */
	assert_int_equal(paste_frames__move(f, N, PASTE_FRAME_FILL, PASTE_FRAME_RX), -EINVAL);
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_FILL, PASTE_FRAME_NSTATES),
	                 -EINVAL);
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_NSTATES, PASTE_FRAME_RX), -EINVAL);
	expect(f, N - 1, 1, 0, 0, 0);
	/* The real path: FILL -> RX -> TX -> FREE. */
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_FILL, PASTE_FRAME_RX), 0);
	expect(f, N - 1, 0, 1, 0, 0);
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_RX, PASTE_FRAME_TX), 0);
	expect(f, N - 1, 0, 0, 1, 0);
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_TX, PASTE_FRAME_FREE), 0);
	expect(f, N, 0, 0, 0, 0);
}

static void test_double_free(void **state)
{
	struct paste_frames *f = *state;
	uint32_t idx;

	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_RX, &idx), 0);
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE), 0);
	expect(f, N, 0, 0, 0, 0);
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE), -EINVAL);
	assert_non_null(strstr(paste_last_error(), "double free"));
	expect(f, N, 0, 0, 0, 0); /* not pushed twice: the audit checks the stack for duplicates */
	/* After a rejected double free, every frame is still handed out exactly once. */
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &idx), 0);
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &idx), -ENOSPC);
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(paste_frames__move(f, i, PASTE_FRAME_FILL, PASTE_FRAME_FREE), 0);
	expect(f, N, 0, 0, 0, 0);
}

/* lwIP frees out-of-order segments late: frames come back in any order. */
static void test_out_of_order_returns(void **state)
{
	struct paste_frames *f = *state;
	uint32_t got[16], order[16] = {5, 0, 15, 7, 3, 12, 1, 9, 14, 2, 11, 6, 8, 13, 4, 10};

	for (int i = 0; i < 16; i++) {
		assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_RX, &got[i]), 0);
		expect(f, N - 1 - i, 0, i + 1, 0, 0);
	}
	for (int i = 0; i < 16; i++) {
		assert_int_equal(
		    paste_frames__move(f, got[order[i]], PASTE_FRAME_RX, PASTE_FRAME_FREE), 0);
		expect(f, N - 16 + i + 1, 0, 16 - i - 1, 0, 0);
	}
	/* Moving a specific FREE frame out (not the top of the stack) keeps the stack exact. */
	assert_int_equal(paste_frames__move(f, 40, PASTE_FRAME_FREE, PASTE_FRAME_FILL), 0);
	expect(f, N - 1, 1, 0, 0, 0);
	assert_int_equal(paste_frames__move(f, 40, PASTE_FRAME_FILL, PASTE_FRAME_FREE), 0);
	expect(f, N, 0, 0, 0, 0);
}

static void test_kept_bitmap_at_init(void **state)
{
	uint64_t kept[2] = {(1ull << 0) | (1ull << 63), 1ull << 1}; /* frames 0, 63, 65 */
	struct paste_frames f;
	uint32_t idx;

	assert_int_equal(paste_frames__init(&f, 70, kept), 0);
	expect(&f, 67, 0, 0, 0, 3);
	assert_int_equal(f.state[0], PASTE_FRAME_KEPT);
	assert_int_equal(f.state[63], PASTE_FRAME_KEPT);
	assert_int_equal(f.state[65], PASTE_FRAME_KEPT);
	assert_int_equal(f.refs[65], 1);
	assert_int_equal(f.state[64], PASTE_FRAME_FREE);
	/* Kept frames are never allocated. */
	for (uint32_t i = 0; i < 67; i++) {
		assert_int_equal(paste_frames__alloc(&f, PASTE_FRAME_FILL, &idx), 0);
		assert_true(idx != 0 && idx != 63 && idx != 65);
	}
	assert_int_equal(paste_frames__alloc(&f, PASTE_FRAME_FILL, &idx), -ENOSPC);
	expect(&f, 0, 67, 0, 0, 3);
	/* The index lets one go: it becomes allocatable. */
	assert_int_equal(paste_frames__unref(&f, 63), 0);
	expect(&f, 1, 67, 0, 0, 2);
	assert_int_equal(paste_frames__alloc(&f, PASTE_FRAME_FILL, &idx), 0);
	assert_int_equal(idx, 63);
	expect(&f, 0, 68, 0, 0, 2);
	paste_frames__fini(&f);
}

static void test_ref_unref(void **state)
{
	struct paste_frames *f = *state;
	uint32_t idx, other;

	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_RX, &idx), 0);
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &other), 0);
	assert_int_equal(paste_frames__ref(f, other), -EINVAL); /* only RX or KEPT */
	assert_int_equal(paste_frames__unref(f, idx), -EINVAL); /* RX is not kept */
	assert_int_equal(paste_frames__unref(f, N), -EINVAL);
	assert_int_equal(paste_frames__ref(f, N), -EINVAL);
	expect(f, N - 2, 1, 1, 0, 0);
	assert_int_equal(paste_frames__ref(f, idx), 0); /* RX -> KEPT, 1 ref */
	expect(f, N - 2, 1, 0, 0, 1);
	assert_int_equal(f->refs[idx], 1);
	assert_int_equal(paste_frames__ref(f, idx), 0);
	assert_int_equal(paste_frames__ref(f, idx), 0);
	assert_int_equal(f->refs[idx], 3);
	expect(f, N - 2, 1, 0, 0, 1);
	assert_int_equal(paste_frames__unref(f, idx), 0);
	assert_int_equal(paste_frames__unref(f, idx), 0);
	expect(f, N - 2, 1, 0, 0, 1); /* still one reference */
	assert_int_equal(paste_frames__unref(f, idx), 0);
	expect(f, N - 2, 1, 1, 0, 0); /* last one: back to RX, the pbuf still holds it */
	assert_int_equal(f->state[idx], PASTE_FRAME_RX);
	assert_int_equal(paste_frames__unref(f, idx), -EINVAL); /* one unref too many */
	assert_int_equal(paste_frames__rx_done(f, idx), 0);     /* the pbuf lets go: FREE */
	expect(f, N - 1, 1, 0, 0, 0);
	assert_int_equal(paste_frames__rx_done(f, idx), -EINVAL); /* pbuf freed twice */
	assert_int_equal(paste_frames__move(f, other, PASTE_FRAME_FILL, PASTE_FRAME_FREE), 0);
}

/* Kept while the pbuf still holds it, the pbuf goes first: KEPT stays until the last reference. */
static void test_keep_outlives_pbuf(void **state)
{
	struct paste_frames *f = *state;
	uint32_t idx;

	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_RX, &idx), 0);
	assert_int_equal(paste_frames__ref(f, idx), 0);
	assert_int_equal(paste_frames__ref(f, idx), 0); /* two ranges of one frame */
	assert_int_equal(paste_frames__rx_done(f, idx), 0);
	expect(f, N - 1, 0, 0, 0, 1);
	assert_int_equal(f->held[idx], 0);
	assert_int_equal(paste_frames__rx_done(f, idx), -EINVAL); /* no pbuf holds it any more */
	assert_int_equal(paste_frames__unref(f, idx), 0);
	expect(f, N - 1, 0, 0, 0, 1);
	assert_int_equal(paste_frames__unref(f, idx), 0);
	expect(f, N, 0, 0, 0, 0); /* straight to FREE: nothing else holds it */
	assert_int_equal(paste_frames__unref(f, idx), -EINVAL); /* double release */
}

/* Recovery marks frames named by indexes in O(1) each and rebuilds the free stack once. */
static void test_recover_refs(void **state)
{
	struct paste_frames *f = *state;
	uint32_t idx, got[N];

	assert_int_equal(paste_frames__recover_ref(f, 3), 0);
	assert_int_equal(paste_frames__recover_ref(f, 3), 0);
	assert_int_equal(paste_frames__recover_ref(f, 7), 0);
	assert_int_equal(paste_frames__recover_ref(f, N), -EINVAL);
	paste_frames__recover_done(f);
	expect(f, N - 2, 0, 0, 0, 2);
	assert_int_equal(f->refs[3], 2);
	for (uint32_t i = 0; i < N - 2; i++) { /* the kept frames are never handed out */
		assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &got[i]), 0);
		assert_true(got[i] != 3 && got[i] != 7);
	}
	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_FILL, &idx), -ENOSPC);
	for (uint32_t i = 0; i < N - 2; i++)
		assert_int_equal(paste_frames__move(f, got[i], PASTE_FRAME_FILL, PASTE_FRAME_FREE),
		                 0);
	assert_int_equal(paste_frames__unref(f, 3), 0);
	assert_int_equal(paste_frames__unref(f, 3), 0);
	assert_int_equal(paste_frames__unref(f, 7), 0);
	expect(f, N, 0, 0, 0, 0);
}

static void test_ref_overflow(void **state)
{
	struct paste_frames *f = *state;
	uint32_t idx;

	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_RX, &idx), 0);
	for (uint32_t i = 0; i < UINT16_MAX; i++)
		assert_int_equal(paste_frames__ref(f, idx), 0);
	assert_int_equal(f->refs[idx], UINT16_MAX);
	assert_int_equal(paste_frames__ref(f, idx), -EOVERFLOW);
	assert_int_equal(f->refs[idx], UINT16_MAX);
	expect(f, N - 1, 0, 0, 0, 1);
	for (uint32_t i = 0; i < UINT16_MAX; i++)
		assert_int_equal(paste_frames__unref(f, idx), 0);
	expect(f, N - 1, 0, 1, 0, 0); /* still held by its pbuf */
	assert_int_equal(paste_frames__rx_done(f, idx), 0);
	expect(f, N, 0, 0, 0, 0);
}

/* Moving into KEPT starts one reference, moving out drops them: the audit stays consistent. */
static void test_move_through_kept(void **state)
{
	struct paste_frames *f = *state;
	uint32_t idx;

	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_KEPT, &idx), 0);
	assert_int_equal(f->refs[idx], 1);
	expect(f, N - 1, 0, 0, 0, 1);
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_KEPT, PASTE_FRAME_FREE), 0);
	assert_int_equal(f->refs[idx], 0);
	expect(f, N, 0, 0, 0, 0);
}

/* The audit catches a corrupted state array (what it is for). */
static void test_audit_detects_corruption(void **state)
{
	struct paste_frames *f = *state;
	uint32_t idx;

	assert_int_equal(paste_frames__alloc(f, PASTE_FRAME_RX, &idx), 0);
	f->state[idx] = PASTE_FRAME_TX; /* behind the allocator's back */
	assert_false(paste_frames__audit(f));
	f->state[idx] = PASTE_FRAME_RX;
	assert_true(paste_frames__audit(f));
	f->refs[idx] = 2; /* refs on a frame that is not kept */
	assert_false(paste_frames__audit(f));
	f->refs[idx] = 0;
	/* A duplicate on the free stack (hiding another FREE frame): every count still agrees. */
	uint32_t saved = f->free_stack[1];
	f->free_stack[1] = f->free_stack[0];
	assert_false(paste_frames__audit(f));
	f->free_stack[1] = saved;
	assert_true(paste_frames__audit(f));
	assert_int_equal(paste_frames__move(f, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE), 0);
	expect(f, N, 0, 0, 0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init),
	    cmocka_unit_test_setup_teardown(test_alloc_all_then_enospc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alloc_lowest_first_and_bad_target, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_move_wrong_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_double_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_order_returns, setup, teardown),
	    cmocka_unit_test(test_kept_bitmap_at_init),
	    cmocka_unit_test_setup_teardown(test_ref_unref, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ref_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keep_outlives_pbuf, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recover_refs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_move_through_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_detects_corruption, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
