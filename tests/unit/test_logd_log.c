/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_logd_log.c - src/apps/paste-logd-log.c: paste-logd's packet log over a real pool file on
 * /dev/shm. Records name bytes the test writes into pool frames (frame i holds packet i, byte j of
 * packet seq is pat(seq, j)), so every check of a record also checks its content. Damage is made in
 * the mapping by hand and relies on the documented layout (docs/paste-logd.md): records of 64 bytes
 * from region offset 4096, record seq in slot seq % nslots, the seq in the first 8 bytes.
 *
 * test_power_failure models NVMM under a power cut with the pool's persistence hook: a store
 * reaches "media" only when its cache line was flushed and a fence followed (flushed lines not yet
 * fenced survive or not, at random); at the crash the mapping is replaced by the media image and
 * the log recovered. paste-logd sends a batch only after its fence, so every record appended before
 * the last fence must come back, with its packet bytes, and no truncated record may return.
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

#include <paste/paste.h>
#include <paste/pool.h>

#include "paste-logd.h"
#include "pool_internal.h" /* paste_pool__set_pmem_ops: the power-failure model below */

#define OFF 256u /* where copy mode puts a packet in its frame */

static char path[256];
static struct paste_pool *pool;
static struct plog *plog;
static uint32_t fsz;

static uint8_t pat(uint64_t seq, unsigned j)
{
	return (uint8_t)(seq * 131 + j * 7 + 1);
}

static uint16_t len_of(uint64_t seq)
{
	return (uint16_t)(60 + seq * 37 % 1400);
}

static void reopen(bool writable)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .size = 8u << 20, .create = true};

	if (plog)
		plog_close(&plog);
	if (pool)
		paste_pool__close(&pool);
	assert_int_equal(paste_pool__open(&pool, path, &o), 0);
	assert_int_equal(plog_open(pool, true, writable, &plog), 0);
	fsz = 2048;
}

static uint8_t *frame(uint32_t f)
{
	return (uint8_t *)paste_pool__frames(pool) + (uint64_t)f * fsz;
}

/* Write packet @seq into frame @f and append it; the log must give it seq @seq. */
static void append(uint64_t seq, uint32_t f)
{
	struct plog_rec r = {
	    .ts_ns = 1000 + seq, .frame = f, .off = OFF, .len = len_of(seq), .ifindex = 7};
	uint64_t got;

	for (unsigned j = 0; j < r.len; j++)
		frame(f)[OFF + j] = pat(seq, j);
	assert_int_equal(plog_append(plog, &r, &got), 0);
	assert_int_equal(got, seq);
}

static void check(uint64_t seq)
{
	struct plog_rec r;
	const uint8_t *b;

	assert_int_equal(plog_get(plog, seq, &r, &b), 0);
	assert_int_equal(r.seq, seq);
	assert_int_equal(r.ts_ns, 1000 + seq);
	assert_int_equal(r.len, len_of(seq));
	assert_int_equal(r.ifindex, 7);
	for (unsigned j = 0; j < r.len; j++)
		assert_int_equal(b[j], pat(seq, j));
}

static struct plog_info info(void)
{
	struct plog_info i;

	plog_info(plog, &i);
	return i;
}

static uint8_t *slot(uint64_t seq)
{
	void *addr;
	uint64_t len;

	assert_int_equal(paste_pool__region(pool, PLOG_REGION, 4096, &addr, &len), 0);
	return (uint8_t *)addr + 4096 + (seq & (info().nslots - 1)) * 64;
}

static int setup(void **state)
{
	snprintf(path, sizeof(path), "/dev/shm/paste-unit-logd-%d.pool", (int)getpid());
	unlink(path);
	reopen(true);
	return 0;
}

static int teardown(void **state)
{
	if (plog)
		plog_close(&plog);
	if (pool)
		paste_pool__close(&pool);
	unlink(path);
	return 0;
}

static void test_append_recover(void **state)
{
	for (uint64_t s = 1; s <= 100; s++)
		append(s, (uint32_t)s);
	assert_int_equal(info().epoch, 1);
	reopen(true);
	assert_int_equal(info().first_seq, 1);
	assert_int_equal(info().next_seq, 101);
	assert_int_equal(info().recovered, 100);
	assert_false(info().cut);
	assert_int_equal(info().epoch, 2); /* a writable open starts a new epoch */
	for (uint64_t s = 1; s <= 100; s++)
		check(s);
	append(101, 500);
	check(101);
}

static void test_torn_payload_cuts(void **state)
{
	for (uint64_t s = 1; s <= 20; s++)
		append(s, (uint32_t)s);
	frame(13)[OFF + 5] ^= 0xff; /* packet 13 did not reach media whole */
	reopen(false);
	assert_int_equal(info().next_seq, 13);
	assert_true(info().cut);
	assert_int_equal(info().cut_seq, 13);
	for (uint64_t s = 1; s <= 12; s++)
		check(s);
	struct plog_rec r;
	const uint8_t *b;
	assert_int_equal(plog_get(plog, 13, &r, &b), -ENOENT);
	assert_int_equal(plog_append(plog, &r, &(uint64_t){0}), -EPERM); /* read-only open */
}

static void test_torn_record_cuts(void **state)
{
	for (uint64_t s = 1; s <= 20; s++)
		append(s, (uint32_t)s);
	slot(9)[20] ^= 1; /* the record itself is torn */
	reopen(true);
	assert_int_equal(info().next_seq, 9);
	append(9, 900);
	check(9);
}

/* After a crash left a gap (record 6 lost, 7..10 on media), a restart appends a new 6; a second
 * crash before 7 is rewritten must not chain the new 6 into the stale 7..10. */
static void test_epoch_stops_stale_chain(void **state)
{
	for (uint64_t s = 1; s <= 10; s++)
		append(s, (uint32_t)s);
	memset(slot(6), 0, 64);
	reopen(true);
	assert_int_equal(info().next_seq, 6);
	append(6, 600); /* new epoch */
	reopen(false);
	assert_int_equal(info().next_seq, 7);
	check(6);
}

struct released {
	uint32_t frames[64];
	unsigned n;
};

static void on_release(void *arg, uint32_t f)
{
	struct released *r = arg;

	r->frames[r->n++] = f;
}

static void on_release_none(void *arg, uint32_t f)
{
}

static void test_truncate(void **state)
{
	struct released rel = {0};

	for (uint64_t s = 1; s <= 30; s++)
		append(s, (uint32_t)(100 + s));
	assert_int_equal(plog_truncate(plog, 11, on_release, &rel), 10);
	assert_int_equal(rel.n, 10);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(rel.frames[i], 101 + i);
	assert_int_equal(plog_truncate(plog, 5, on_release, &rel), 0); /* never backwards */
	reopen(true);
	assert_int_equal(info().first_seq, 11);
	assert_int_equal(info().next_seq, 31);
	for (uint64_t s = 11; s <= 30; s++)
		check(s);
	assert_int_equal(plog_truncate(plog, 1000, on_release, &rel), 20); /* clamped to the end */
	assert_int_equal(info().first_seq, 31);
}

static void test_full_and_bad_input(void **state)
{
	uint64_t n = info().nslots, seq;
	struct plog_rec r = {.frame = 1, .off = OFF, .len = 100};

	for (uint64_t s = 1; s <= n; s++)
		assert_int_equal(plog_append(plog, &r, &seq), 0);
	assert_int_equal(plog_append(plog, &r, &seq), -ENOSPC);
	struct released rel = {0};
	assert_int_equal(plog_truncate(plog, 2, on_release, &rel), 1);
	r.len = 2000; /* past the frame */
	assert_int_equal(plog_append(plog, &r, &seq), -EINVAL);
	r.len = 0;
	assert_int_equal(plog_append(plog, &r, &seq), -EINVAL);
}

static void test_corrupt_header_refused(void **state)
{
	void *addr;
	uint64_t len;
	struct plog *l2;

	assert_int_equal(paste_pool__region(pool, PLOG_REGION, 4096, &addr, &len), 0);
	((uint8_t *)addr)[12] ^= 1; /* the superblock's geometry */
	assert_int_equal(plog_open(pool, false, false, &l2), -EBADMSG);
}

/* paste-logd owns every frame of its pool: a pool with another program's regions is refused. */
static void test_foreign_pool_refused(void **state)
{
	void *addr;
	uint64_t len;

	assert_int_equal(plog_check_pool(pool, path), 0); /* only the packet log */
	assert_int_equal(paste_pool__region(pool, "wal.log", 4096, &addr, &len), 0);
	assert_int_equal(plog_check_pool(pool, path), -EINVAL);
}

/* ---- power failure ----------------------------------------------------------------------------
 */

struct media {
	uint8_t *live, *img; /* the mapping, and what survived on media */
	uint64_t size;
	uint64_t *pend; /* line numbers flushed since the last fence */
	size_t npend, cap;
};

static void m_flush(void *arg, const void *addr, size_t len)
{
	struct media *m = arg;
	uint64_t lo = ((const uint8_t *)addr - m->live) / 64,
	         hi = ((const uint8_t *)addr - m->live + len + 63) / 64;

	for (uint64_t l = lo; l < hi; l++) {
		if (m->npend == m->cap) {
			m->cap = m->cap ? 2 * m->cap : 1024;
			m->pend = realloc(m->pend, m->cap * sizeof(*m->pend));
			assert_non_null(m->pend);
		}
		m->pend[m->npend++] = l;
	}
}

static void m_drain(void *arg)
{
	struct media *m = arg;

	for (size_t i = 0; i < m->npend; i++)
		memcpy(m->img + m->pend[i] * 64, m->live + m->pend[i] * 64, 64);
	m->npend = 0;
}

/* One run: random batches of appends (each ended by a fence), truncations that reuse frames, and a
 * crash at a random point. @return 1 if the crash cut records that were not fenced. */
static int power_cut(unsigned seed)
{
	struct paste_pool_info pi;
	struct media m = {0};
	struct paste_pmem_ops ops = {.flush = m_flush, .drain = m_drain, .arg = &m};
	uint64_t seq = 1, fenced = 0, head = 1, stop;
	const uint32_t nframes = 64;
	int cut;

	srand(seed);
	paste_pool__info(pool, &pi, sizeof(pi));
	m.live = paste_pool__base(pool);
	m.size = pi.size;
	m.img = malloc(m.size);
	assert_non_null(m.img);
	memcpy(m.img, m.live, m.size); /* everything before this point is durable */
	paste_pool__set_pmem_ops(pool, &ops);
	stop = 20 + (uint64_t)rand() % 400;
	while (seq < stop) {
		unsigned batch = 1 + rand() % 24;

		for (unsigned i = 0; i < batch && seq < stop; i++, seq++) {
			if (seq - head >=
			    nframes - 8) /* keep frames free: drop the oldest, durably */
				head += plog_truncate(plog, seq - 32, on_release_none, NULL);
			append(seq, 1 + (uint32_t)(seq % nframes));
		}
		if (seq < stop) {
			paste_pool__drain(pool); /* the batch's fence: now it may be forwarded */
			fenced = seq - 1;
		}
	}
	for (size_t i = 0; i < m.npend; i++) /* flushed, not fenced: some lines made it */
		if (rand() & 1)
			memcpy(m.img + m.pend[i] * 64, m.live + m.pend[i] * 64, 64);
	paste_pool__set_pmem_ops(pool, NULL);
	memcpy(m.live, m.img, m.size); /* power back: only media is left */
	free(m.img);
	free(m.pend);
	reopen(false);
	assert_true(info().next_seq >= fenced + 1); /* every fenced record survived */
	assert_true(info().first_seq >= head);      /* no truncated record came back */
	for (uint64_t s = info().first_seq; s < info().next_seq; s++)
		check(s);
	cut = info().next_seq < seq;
	reopen(true);
	return cut;
}

static void test_power_failure(void **state)
{
	unsigned cuts = 0, runs = 150;

	for (unsigned r = 0; r < runs; r++) {
		teardown(NULL);
		setup(NULL);
		cuts += power_cut(r + 1);
	}
	/* The model must actually lose unfenced records in some runs, or it proves nothing. */
	assert_true(cuts > runs / 10);
}

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_append_recover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_payload_cuts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_record_cuts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_epoch_stops_stale_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_and_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_header_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_pool_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_power_failure, setup, teardown),
	};

	paste_set_print(quiet, NULL, PASTE_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
