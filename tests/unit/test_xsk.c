/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_xsk.c - src/xsk.c, the AF_XDP socket object, over fake rings: the four rings are plain
 * memory here and the test plays the kernel (takes fill-ring frames, posts RX descriptors, takes
 * TX descriptors, posts completions), over a real pool's frame allocator. Checked: the fill ring
 * is topped up only above the TX reserve, and only to fill_target frames (deeper after a drained
 * ring); a received descriptor becomes {frame, len, data} with
 * the frame moved FILL -> RX and the counters kept; a descriptor naming a frame the kernel was
 * never given is dropped and counted, never touched; TX copies through the caller's function,
 * refuses what does not fit a frame, gives the frame back when the ring is full; completions
 * return TX frames to FREE. No socket is opened: the object needs no context.
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

#include <paste/paste.h>
#include <paste/pool.h>

#include "pool_internal.h"
#include "ptransport.h"

#define RING 64u /* each fake ring; smaller than the pool's frames minus the TX reserve */

static struct {
	uint32_t prod, cons, flags;
} fill_r, comp_r, rx_r, tx_r;
static uint64_t fill_addrs[RING], comp_addrs[RING];
static struct xdp_desc rx_descs[RING], tx_descs[RING];

static char pool_path[128];
static struct paste_pool *pool;
static struct paste_stats st;
static struct paste_xsk x;

/* A libxdp ring over plain memory: @r's producer/consumer/flags words and the array @arr. */
#define FAKE_RING(r, arr, cached_cons_)                                                            \
	{                                                                                          \
		.cached_cons = (cached_cons_), .mask = RING - 1, .size = RING,                     \
		.producer = &(r).prod, .consumer = &(r).cons, .ring = (arr), .flags = &(r).flags   \
	}

static int setup(void **state)
{
	struct paste_pool_opts po = {.sz = sizeof(po), .size = 4 << 20, .create = true};
	struct paste_pool_info info;

	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-test-%d-xsk.pool", (int)getpid());
	unlink(pool_path);
	assert_int_equal(paste_pool__open(&pool, pool_path, &po), 0);
	paste_pool__info(pool, &info, sizeof(info));
	memset(&st, 0, sizeof(st));
	memset(&fill_r, 0, sizeof(fill_r));
	memset(&comp_r, 0, sizeof(comp_r));
	memset(&rx_r, 0, sizeof(rx_r));
	memset(&tx_r, 0, sizeof(tx_r));
	x = (struct paste_xsk){
	    .frames = paste_pool__frame_alloc(pool),
	    .area = paste_pool__frames(pool),
	    .frame_size = info.frame_size,
	    .frame_count = info.frame_count,
	    .ring_size = RING,
	    .st = &st,
	    .fd = -1,
	};
	/* Producer rings the library writes start with RING free entries (cached_cons = size, as
	 * libxdp sets them up); consumer rings start empty. */
	x.fill = (struct xsk_ring_prod)FAKE_RING(fill_r, fill_addrs, RING);
	x.tx = (struct xsk_ring_prod)FAKE_RING(tx_r, tx_descs, RING);
	x.comp = (struct xsk_ring_cons)FAKE_RING(comp_r, comp_addrs, 0);
	x.rx = (struct xsk_ring_cons)FAKE_RING(rx_r, rx_descs, 0);
	assert_true(info.frame_count > RING + PASTE_TX_RESERVE);
	return 0;
}

static int teardown(void **state)
{
	assert_true(paste_frames__audit(x.frames));
	paste_pool__close(&pool);
	unlink(pool_path);
	return 0;
}

/* The kernel: take one frame address off the fill ring. */
static uint64_t kernel_take_fill(void)
{
	assert_true(fill_r.cons != fill_r.prod);
	return fill_addrs[fill_r.cons++ & (RING - 1)];
}

/* The kernel: post a received packet of @len bytes at @addr (plus the 256-byte headroom). */
static void kernel_rx(uint64_t addr, uint32_t len, uint8_t fill_byte)
{
	memset(x.area + addr + 256, fill_byte, len);
	rx_descs[rx_r.prod++ & (RING - 1)] = (struct xdp_desc){.addr = addr + 256, .len = len};
}

static void test_refill_keeps_tx_reserve(void **state)
{
	uint32_t nfree = paste_frames__nr(x.frames, PASTE_FRAME_FREE);

	paste_xsk__refill(&x);
	/* The ring is the limit here: RING frames handed to the kernel, all in state FILL. */
	assert_int_equal(fill_r.prod, RING);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FILL), RING);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FREE), nfree - RING);
	for (uint32_t i = 0; i < RING; i++) {
		uint64_t a = fill_addrs[i];

		assert_int_equal(a % x.frame_size, 0);
		assert_int_equal(x.frames->state[a / x.frame_size], PASTE_FRAME_FILL);
	}
	/* A full ring takes nothing more. */
	paste_xsk__refill(&x);
	assert_int_equal(fill_r.prod, RING);

	/* Drain the ring back (the kernel hands every frame back as a 60-byte packet). */
	for (uint32_t i = 0; i < RING; i++)
		kernel_rx(kernel_take_fill(), 60, 0);
	struct paste_xsk_desc d[RING];
	assert_int_equal(paste_xsk__rx_burst(&x, d, RING), RING);
	for (uint32_t i = 0; i < RING; i++)
		paste_frames__move(x.frames, d[i].frame, PASTE_FRAME_RX, PASTE_FRAME_FREE);

	/* Only frames above the TX reserve go to the fill ring: leave reserve + 5 free. */
	uint32_t held[4096], nheld = 0, f;

	while (paste_frames__nr(x.frames, PASTE_FRAME_FREE) > PASTE_TX_RESERVE + 5) {
		assert_int_equal(paste_frames__alloc(x.frames, PASTE_FRAME_RX, &f), 0);
		assert_true(nheld < 4096);
		held[nheld++] = f;
	}
	paste_xsk__refill(&x);
	assert_int_equal(fill_r.prod - fill_r.cons, 5);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FREE), PASTE_TX_RESERVE);
	/* At the reserve nothing moves. */
	paste_xsk__refill(&x);
	assert_int_equal(fill_r.prod - fill_r.cons, 5);
	while (nheld)
		paste_frames__move(x.frames, held[--nheld], PASTE_FRAME_RX, PASTE_FRAME_FREE);
	while (fill_r.cons != fill_r.prod) {
		uint64_t a = kernel_take_fill();

		paste_frames__move(x.frames, (uint32_t)(a / x.frame_size), PASTE_FRAME_FILL,
		                   PASTE_FRAME_FREE);
	}
}

/* The kernel: take every frame on the fill ring, receive nothing into them, and give them back to
 * the allocator (as the transport does with frames whose packets it dropped). */
static void kernel_drain_fill(void)
{
	while (fill_r.cons != fill_r.prod)
		paste_frames__move(x.frames, (uint32_t)(kernel_take_fill() / x.frame_size),
		                   PASTE_FRAME_FILL, PASTE_FRAME_FREE);
}

/*
 * fill_target: the ring holds that many frames, topped up with the frames freed last (the LIFO
 * stack's top: still in the cache); a refill that finds the ring drained deepens it (fill_dry
 * doubles) and counts it, never beyond the ring.
 */
static void test_refill_target(void **state)
{
	struct paste_xsk_desc d[4];
	uint64_t a[3];

	x.fill_target = 8;
	paste_xsk__refill(&x);
	assert_int_equal(fill_r.prod - fill_r.cons, 8);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FILL), 8);
	paste_xsk__refill(&x); /* at the target: nothing more */
	assert_int_equal(fill_r.prod - fill_r.cons, 8);

	/* Three packets: their frames, freed, are the ones the ring gets back. */
	for (int i = 0; i < 3; i++) {
		a[i] = kernel_take_fill();
		kernel_rx(a[i], 60, 0);
	}
	assert_int_equal(paste_xsk__rx_burst(&x, d, 4), 3);
	for (int i = 0; i < 3; i++)
		paste_frames__move(x.frames, d[i].frame, PASTE_FRAME_RX, PASTE_FRAME_FREE);
	paste_xsk__refill(&x);
	assert_int_equal(fill_r.prod - fill_r.cons, 8);
	for (uint32_t k = fill_r.prod - 3; k != fill_r.prod; k++) {
		uint64_t got = fill_addrs[k & (RING - 1)];

		assert_true(got == a[0] || got == a[1] || got == a[2]);
	}
	assert_int_equal(st.fill_dry, 0);

	/* The kernel took all of them: the ring was too shallow, it deepens by the target, then
	 * doubles what it added. */
	kernel_drain_fill();
	paste_xsk__refill(&x);
	assert_int_equal(st.fill_dry, 1);
	assert_int_equal(fill_r.prod - fill_r.cons, 16);
	kernel_drain_fill();
	paste_xsk__refill(&x);
	assert_int_equal(st.fill_dry, 2);
	assert_int_equal(fill_r.prod - fill_r.cons, 24);
	/* Dry again and again: capped by the ring, and it stops counting there. */
	for (int i = 0; i < 4; i++) {
		kernel_drain_fill();
		paste_xsk__refill(&x);
	}
	assert_int_equal(fill_r.prod - fill_r.cons, RING);
	assert_int_equal(st.fill_dry, 4); /* fill_dry 8, 16, 32, 64: the ring is the limit */
	kernel_drain_fill();
	paste_xsk__refill(&x);
	assert_int_equal(st.fill_dry, 4);
	kernel_drain_fill();
}

static void test_rx_burst(void **state)
{
	struct paste_xsk_desc d[8];
	uint64_t a0, a1, a2;

	paste_xsk__refill(&x);
	a0 = kernel_take_fill();
	a1 = kernel_take_fill();
	a2 = kernel_take_fill();
	kernel_rx(a0, 100, 0xa0);
	kernel_rx(a1, 1514, 0xa1);
	kernel_rx(a2, 42, 0xa2);

	/* @max limits the burst; the rest stays on the ring. */
	assert_int_equal(paste_xsk__rx_burst(&x, d, 2), 2);
	assert_int_equal(d[0].frame, a0 / x.frame_size);
	assert_int_equal(d[0].len, 100);
	assert_ptr_equal(d[0].data, x.area + a0 + 256);
	assert_int_equal(d[0].data[99], 0xa0);
	assert_int_equal(d[1].frame, a1 / x.frame_size);
	assert_int_equal(d[1].len, 1514);
	assert_int_equal(x.frames->state[d[0].frame], PASTE_FRAME_RX);
	assert_int_equal(x.frames->state[d[1].frame], PASTE_FRAME_RX);
	assert_int_equal(paste_xsk__rx_burst(&x, d + 2, 8), 1);
	assert_int_equal(d[2].len, 42);
	assert_int_equal(paste_xsk__rx_burst(&x, d + 3, 8), 0);
	assert_int_equal(st.rx_packets, 3);
	assert_int_equal(st.rx_bytes, 100 + 1514 + 42);
	assert_int_equal(st.rx_invalid, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    paste_frames__move(x.frames, d[i].frame, PASTE_FRAME_RX, PASTE_FRAME_FREE), 0);
}

static void test_rx_foreign_frame_dropped(void **state)
{
	struct paste_xsk_desc d[4];
	uint32_t f;

	/* A frame the library holds (RX), never given to the kernel, comes back in a descriptor:
	 * it is counted and skipped, and its state and bytes are left alone. */
	assert_int_equal(paste_frames__alloc(x.frames, PASTE_FRAME_RX, &f), 0);
	memset(x.area + (uint64_t)f * x.frame_size + 256, 0x55, 16);
	rx_descs[rx_r.prod++ & (RING - 1)] =
	    (struct xdp_desc){.addr = (uint64_t)f * x.frame_size + 256, .len = 16};
	assert_int_equal(paste_xsk__rx_burst(&x, d, 4), 0);
	assert_int_equal(st.rx_invalid, 1);
	assert_int_equal(st.rx_packets, 0);
	assert_int_equal(rx_r.cons, rx_r.prod); /* released from the ring all the same */
	assert_int_equal(x.frames->state[f], PASTE_FRAME_RX);
	assert_int_equal(x.area[(uint64_t)f * x.frame_size + 256], 0x55);
	paste_frames__move(x.frames, f, PASTE_FRAME_RX, PASTE_FRAME_FREE);
}

static void copy_pattern(const void *arg, uint8_t *dst)
{
	const uint32_t *len = arg;

	for (uint32_t i = 0; i < *len; i++)
		dst[i] = (uint8_t)i;
}

static void test_tx_and_complete(void **state)
{
	uint32_t len = 300, big, i, nfree = paste_frames__nr(x.frames, PASTE_FRAME_FREE);
	const struct xdp_desc *d;

	assert_int_equal(paste_xsk__tx(&x, len, copy_pattern, &len), 0);
	assert_int_equal(tx_r.prod, 1);
	d = &tx_descs[0];
	assert_int_equal(d->len, 300);
	assert_int_equal(d->addr % x.frame_size, 0);
	assert_int_equal(x.frames->state[d->addr / x.frame_size], PASTE_FRAME_TX);
	assert_int_equal(x.area[d->addr + 299], (uint8_t)299);
	assert_int_equal(st.tx_packets, 1);
	assert_int_equal(st.tx_bytes, 300);
	assert_int_equal(x.tx_pending, 1);

	/* Larger than a frame: refused, no frame taken. */
	big = x.frame_size + 1;
	assert_int_equal(paste_xsk__tx(&x, big, copy_pattern, &big), -EMSGSIZE);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FREE), nfree - 1);

	/* Fill the TX ring; the next send finds it full (the kernel took nothing) and gives its
	 * frame back. */
	for (i = 1; i < RING; i++)
		assert_int_equal(paste_xsk__tx(&x, len, copy_pattern, &len), 0);
	assert_int_equal(paste_xsk__tx(&x, len, copy_pattern, &len), -ENOBUFS);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_TX), RING);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FREE), nfree - RING);

	/* A kick without need_wakeup set does not enter the kernel (the fd is -1 here). */
	paste_xsk__kick(&x);
	assert_int_equal(x.tx_pending, 0);

	/* The kernel sends and completes everything: completions return the frames. */
	for (; tx_r.cons != tx_r.prod; tx_r.cons++)
		comp_addrs[comp_r.prod++ & (RING - 1)] = tx_descs[tx_r.cons & (RING - 1)].addr;
	paste_xsk__complete(&x);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_TX), 0);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FREE), nfree);
	assert_int_equal(st.rx_invalid, 0);

	/* A completion for a frame that is not in TX is counted, not moved. */
	comp_addrs[comp_r.prod++ & (RING - 1)] = 0;
	paste_xsk__complete(&x);
	assert_int_equal(st.rx_invalid, 1);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FREE), nfree);
}

/*
 * The guess at the next received frame (rx_fill_seq, rx_off) follows the kernel through the fill
 * ring, and readying the guessed frames (paste_xsk__warm) and the RX burst's hint change nothing:
 * not a byte of the frame area, not a ring index, not a frame's state.
 */
static void test_next_frame_guess_is_only_a_hint(void **state)
{
	struct paste_xsk_desc d[8], first[8];
	size_t area = (size_t)x.frame_count * x.frame_size;
	uint8_t *copy = malloc(area);
	uint32_t fill_prod, fill_cons, nfill;

	(void)state;
	assert_non_null(copy);
	paste_xsk__refill(&x);
	for (int i = 0; i < 3; i++)
		kernel_rx(kernel_take_fill(), 1300, (uint8_t)(0x40 + i));
	assert_int_equal(paste_xsk__rx_burst(&x, first, 8), 3);
	assert_int_equal(x.rx_fill_seq, 3);
	assert_int_equal(x.rx_off, 256);
	/* The next frame the kernel takes is the one the guess names. */
	assert_int_equal(x.rx_fill_seq, fill_r.cons);

	memcpy(copy, x.area, area);
	fill_prod = fill_r.prod;
	fill_cons = fill_r.cons;
	nfill = paste_frames__nr(x.frames, PASTE_FRAME_FILL);
	paste_xsk__warm(&x);
	paste_xsk__warm(&x);
	assert_int_equal(paste_xsk__rx_burst(&x, d, 8), 0); /* nothing posted: no hint, no change */
	assert_memory_equal(copy, x.area, area);
	assert_int_equal(fill_r.prod, fill_prod);
	assert_int_equal(fill_r.cons, fill_cons);
	assert_int_equal(paste_frames__nr(x.frames, PASTE_FRAME_FILL), nfill);
	assert_int_equal(x.rx_fill_seq, 3);

	/* The kernel posts the next frame: the hint read it, the descriptor is as before. */
	uint64_t next = kernel_take_fill();

	kernel_rx(next, 100, 0x7f);
	assert_int_equal(paste_xsk__rx_burst(&x, d, 8), 1);
	assert_int_equal(d[0].frame, next / x.frame_size);
	assert_ptr_equal(d[0].data, x.area + next + 256);
	assert_int_equal(d[0].len, 100);
	assert_int_equal(x.rx_fill_seq, 4);
	assert_int_equal(paste_frames__move(x.frames, d[0].frame, PASTE_FRAME_RX, PASTE_FRAME_FREE),
	                 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    paste_frames__move(x.frames, first[i].frame, PASTE_FRAME_RX, PASTE_FRAME_FREE),
		    0);
	free(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_refill_keeps_tx_reserve, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refill_target, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_burst, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_foreign_frame_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_and_complete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_next_frame_guess_is_only_a_hint, setup, teardown),
	};

	paste_set_print(NULL, NULL, PASTE_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
