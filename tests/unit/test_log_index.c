/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_log_index.c - src/log_index.c: the persistent log over a real pool file on /dev/shm.
 * Records name payload bytes the tests write into frames taken from the pool's allocator (as the
 * event loop does: RX, then kept with paste_pool__ref_get, then the "pbuf" lets go). Payload byte i
 * of ref j of record seq is pat(seq, j, i), so every check of a record also checks its content.
 *
 * Crashes are real: a forked child opens the pool, appends, and _exit()s without closing it, so the
 * parent's next open runs recovery after an unclean shutdown. Torn writes are made by flipping
 * bytes of a record, a payload, or a head slot in the mapping; those tests rely on the documented
 * on-media layout (docs/log-index.md): head slots at region offsets 64 and 128 ({gen, seq, off,
 * epoch, crc}, crc at +28), the data area at 256, a record header of 32 bytes before its refs.
 *
 * The teardown of every test audits the frame allocator against the logs: after a drain, every
 * frame is FREE or KEPT, and a frame is KEPT with n references exactly when the live records of
 * the logs name it n times.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <paste/index.h>
#include <paste/pool.h>

#include "internal.h"
#include "pool_internal.h"

#define MiB          (1ull << 20)
#define FS           2048u
#define WAL          "wal"
#define WAL_SIZE     (64u << 10)
#define SMALL        "small"
#define SMALL_SIZE   (8u << 10)
#define HDR_SIZE     256u
#define SLOT_OFF(i)  (64u + 64u * (i))
#define SLOT_CRC_OFF 28u
#define REC_HDR      32u

static const char *const log_names[] = {WAL, SMALL};

static char path[256];
static struct paste_pool *pool;

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

static uint8_t pat(uint64_t seq, unsigned j, unsigned i)
{
	return (uint8_t)(seq * 131 + j * 17 + i * 3 + 1);
}

static struct paste_pool_opts pool_opts(void)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .size = 8 * MiB, .frame_size = FS};

	o.create = true;
	o.region_area = 1 * MiB;
	return o;
}

static int pool_open(void)
{
	struct paste_pool_opts o = pool_opts();

	return paste_pool__open(&pool, path, &o);
}

static struct paste_log *log_get(const char *name)
{
	struct paste_log *log = NULL;

	assert_int_equal(paste_log__open(&log, pool, name, NULL), 0);
	return log;
}

static void reopen(void)
{
	paste_pool__close(&pool);
	assert_null(pool);
	assert_int_equal(pool_open(), 0);
}

static struct paste_log_info info_of(const char *name)
{
	struct paste_log_info in;

	paste_log__info(log_get(name), &in, sizeof(in));
	return in;
}

/* ---- making references ------------------------------------------------------------------- */

static uint64_t frame_off(uint32_t idx)
{
	struct paste_pool_info pi;

	paste_pool__info(pool, &pi, sizeof(pi));
	return pi.frame_area_off + (uint64_t)idx * pi.frame_size;
}

/*
 * Write the payload of record @seq into frames and keep it: @nrefs refs, all in one frame
 * (@shared, nrefs <= 16) or one frame each, taken from the allocator as received (RX), as the
 * event loop hands them over. The refs are kept (one reference each, owned by the caller) and no
 * pbuf holds the frames any more. No cmocka asserts: crashing children call it too.
 * @return 0 or -1.
 */
static int try_make_refs(uint64_t seq, unsigned nrefs, bool shared, struct paste_ref *refs)
{
	struct paste_frames *f = paste_pool__frame_alloc(pool);
	uint8_t *base = paste_pool__base(pool);
	uint32_t frames[PASTE_LOG_MAX_REFS], nframes = shared ? 1 : nrefs;

	for (unsigned k = 0; k < nframes; k++)
		if (paste_frames__alloc(f, PASTE_FRAME_RX, &frames[k]))
			return -1;
	for (unsigned j = 0; j < nrefs; j++) {
		unsigned slot = shared ? FS / nrefs : 0;
		uint64_t in = shared ? (uint64_t)j * slot : 16 + j % 64;
		uint32_t len = shared ? slot - j % 5 : 100 + j % 200;

		refs[j] =
		    (struct paste_ref){.off = frame_off(frames[shared ? 0 : j]) + in, .len = len};
		for (unsigned i = 0; i < len; i++)
			base[refs[j].off + i] = pat(seq, j, i);
		paste_pool__persist(pool, base + refs[j].off, len);
		if (paste_pool__ref_get(pool, &refs[j]))
			return -1;
	}
	for (unsigned k = 0; k < nframes; k++)
		if (paste_frames__rx_done(f, frames[k]))
			return -1;
	return 0;
}

static void make_refs(uint64_t seq, unsigned nrefs, bool shared, struct paste_ref *refs)
{
	assert_int_equal(try_make_refs(seq, nrefs, shared, refs), 0);
}

/* A frame taken as received and not kept. */
static uint32_t rx_frame(void)
{
	uint32_t idx;

	assert_int_equal(paste_frames__alloc(paste_pool__frame_alloc(pool), PASTE_FRAME_RX, &idx),
	                 0);
	return idx;
}

static void put_refs(const struct paste_ref *refs, unsigned nrefs)
{
	for (unsigned j = 0; j < nrefs; j++)
		assert_int_equal(paste_pool__ref_put(pool, &refs[j]), 0);
}

/* Append a new record of @nrefs refs to @name and check it got @want_seq. */
static void append(const char *name, uint64_t want_seq, unsigned nrefs, bool shared)
{
	struct paste_ref refs[PASTE_LOG_MAX_REFS];
	uint64_t seq = 0;

	make_refs(want_seq, nrefs, shared, refs);
	assert_int_equal(paste_log__append(log_get(name), refs, nrefs, &seq), 0);
	assert_int_equal(seq, want_seq);
}

/* Record @seq of @name is there, with @nrefs refs (0: any) and its pattern. */
static void check_rec(const char *name, uint64_t seq, unsigned nrefs)
{
	const uint8_t *base = paste_pool__base(pool);
	struct paste_log_rec rec;
	uint64_t len = 0;

	assert_int_equal(paste_log__get(log_get(name), seq, &rec), 0);
	assert_int_equal(rec.seq, seq);
	if (nrefs)
		assert_int_equal(rec.nrefs, nrefs);
	for (unsigned j = 0; j < rec.nrefs; j++) {
		assert_ptr_equal(paste_pool__ref_ptr(pool, &rec.refs[j]), base + rec.refs[j].off);
		for (unsigned i = 0; i < rec.refs[j].len; i++)
			if (base[rec.refs[j].off + i] != pat(seq, j, i))
				fail_msg("record %llu ref %u byte %u differs",
				         (unsigned long long)seq, j, i);
		len += rec.refs[j].len;
	}
	assert_int_equal(rec.len, len);
}

static void check_range(const char *name, uint64_t first, uint64_t next)
{
	struct paste_log_info in = info_of(name);
	struct paste_log_rec rec;

	assert_int_equal(in.first_seq, first);
	assert_int_equal(in.next_seq, next);
	assert_int_equal(in.records, next - first);
	for (uint64_t s = first; s < next; s++)
		check_rec(name, s, 0);
	assert_int_equal(paste_log__get(log_get(name), first - 1, &rec), -ENOENT);
	assert_int_equal(paste_log__get(log_get(name), next, &rec), -ENOENT);
}

/* ---- the leak check ---------------------------------------------------------------------- */

static int count_refs(const struct paste_log_rec *rec, void *arg)
{
	uint32_t *cnt = arg;
	uint32_t frame;

	for (unsigned j = 0; j < rec->nrefs; j++) {
		if (!paste_pool__ref_in_frame(pool, &rec->refs[j], &frame))
			return -1;
		cnt[frame]++;
	}
	return 0;
}

/* After a drain: every frame FREE or KEPT, and KEPT with n refs iff the logs name it n times. */
static bool frames_explained(void)
{
	struct paste_frames *f = paste_pool__frame_alloc(pool);
	struct paste_log *log;
	uint32_t *cnt;
	bool ok;

	paste_pool__drain(pool);
	cnt = calloc(f->count, sizeof(*cnt));
	ok = cnt && paste_frames__audit(f);
	for (unsigned k = 0; ok && k < ARRAY_SIZE(log_names); k++)
		if (paste_log__open(&log, pool, log_names[k], NULL) == 0)
			ok = paste_log__iterate(log, 0, count_refs, cnt) == 0;
	ok = ok && paste_frames__nr(f, PASTE_FRAME_FREE) + paste_frames__nr(f, PASTE_FRAME_KEPT) ==
	               f->count;
	for (uint32_t i = 0; ok && i < f->count; i++) {
		if (cnt[i] ? f->state[i] != PASTE_FRAME_KEPT || f->refs[i] != cnt[i]
		           : f->state[i] != PASTE_FRAME_FREE) {
			print_error("frame %u: state %u, %u refs, named %u times\n", i, f->state[i],
			            f->refs[i], cnt[i]);
			ok = false;
		}
	}
	free(cnt);
	return ok;
}

static uint32_t nr_kept(void)
{
	return paste_frames__nr(paste_pool__frame_alloc(pool), PASTE_FRAME_KEPT);
}

static int setup(void **state)
{
	struct paste_log *log;

	paste_set_print(quiet, NULL, PASTE_LOG_DEBUG);
	snprintf(path, sizeof(path), "/dev/shm/paste-test-log-%d.pool", (int)getpid());
	unlink(path);
	if (pool_open() ||
	    paste_log__open(&log, pool, WAL,
	                    &PASTE_OPTS_LIT(paste_log_opts, .region_size = WAL_SIZE)))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	bool ok = pool && frames_explained();

	if (pool) { /* and the same after a restart: recovery rebuilds exactly this */
		paste_pool__close(&pool);
		ok = ok && pool_open() == 0 && frames_explained();
		paste_pool__close(&pool);
	}
	unlink(path);
	return ok ? 0 : -1;
}

/* ---- crash helpers ----------------------------------------------------------------------- */

/*
 * Close the pool, run @fn in a child that opens it and dies without closing it (a crash: no clean
 * flag), then reopen it here. @fn returns 0 if all went as expected.
 */
static void crash_child(int (*fn)(void *arg), void *arg)
{
	pid_t pid;
	int st;

	paste_pool__close(&pool);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = pool_open() ? 90 : fn(arg);

		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(pool_open(), 0);
}

static bool was_clean(void)
{
	struct paste_pool_info pi;

	paste_pool__info(pool, &pi, sizeof(pi));
	return pi.was_clean;
}

/* Header of record @seq of @name, in the mapping. */
static uint8_t *rec_hdr(const char *name, uint64_t seq)
{
	struct paste_log_rec rec;

	if (paste_log__get(log_get(name), seq, &rec))
		return NULL;
	return (uint8_t *)rec.refs - REC_HDR;
}

static uint8_t *region_of(const char *name)
{
	uint64_t len;
	void *addr;

	assert_int_equal(paste_pool__find_region(pool, name, &addr, &len), 0);
	return addr;
}

/* ---- tests ------------------------------------------------------------------------------- */

static int collect(const struct paste_log_rec *rec, void *arg)
{
	uint64_t *seen = arg;

	seen[++seen[0]] = rec->seq;
	return rec->seq == seen[99] ? 7 : 0;
}

static void test_append_get_iterate(void **state)
{
	struct paste_log_info in;
	struct paste_log_rec rec;
	uint64_t seen[100] = {0}, bytes = 0;

	for (uint64_t s = 1; s <= 20; s++)
		append(WAL, s, 1 + s % 4, s % 2);
	for (uint64_t s = 1; s <= 20; s++) {
		check_rec(WAL, s, 1 + s % 4);
		assert_int_equal(paste_log__get(log_get(WAL), s, &rec), 0);
		bytes += rec.len;
	}
	in = info_of(WAL);
	assert_int_equal(in.first_seq, 1);
	assert_int_equal(in.next_seq, 21);
	assert_int_equal(in.records, 20);
	assert_int_equal(in.bytes, bytes);
	assert_int_equal(in.region_size, WAL_SIZE);
	assert_true(in.region_used > HDR_SIZE && in.region_used < WAL_SIZE);
	assert_int_equal(paste_log__get(log_get(WAL), 0, &rec), -ENOENT);
	assert_int_equal(paste_log__get(log_get(WAL), 21, &rec), -ENOENT);

	assert_int_equal(paste_log__iterate(log_get(WAL), 0, collect, seen), 0);
	assert_int_equal(seen[0], 20);
	for (uint64_t i = 1; i <= 20; i++)
		assert_int_equal(seen[i], i);
	memset(seen, 0, sizeof(seen));
	seen[99] = 15; /* stop there: the callback's value comes back */
	assert_int_equal(paste_log__iterate(log_get(WAL), 12, collect, seen), 7);
	assert_int_equal(seen[0], 4);
	assert_int_equal(seen[1], 12);
	assert_int_equal(seen[4], 15);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(paste_log__iterate(log_get(WAL), 21, collect, seen), 0);
	assert_int_equal(seen[0], 0);
	assert_true(frames_explained());
}

static int collect_and_truncate(const struct paste_log_rec *rec, void *arg)
{
	uint64_t *seen = arg;

	seen[++seen[0]] = rec->seq;
	if (rec->seq == 3)
		assert_int_equal(paste_log__truncate(log_get(WAL), 5), 0);
	if (rec->seq == 8) /* appended records are not visited in this pass */
		append(WAL, 11, 1, false);
	return 0;
}

/* A callback may truncate ahead of the iteration (it skips ahead) and append (not visited). */
static void test_iterate_while_changing(void **state)
{
	static const uint64_t want[] = {1, 2, 3, 6, 7, 8, 9, 10};
	uint64_t seen[100] = {0};

	for (uint64_t s = 1; s <= 10; s++)
		append(WAL, s, 1, false);
	assert_int_equal(paste_log__iterate(log_get(WAL), 1, collect_and_truncate, seen), 0);
	assert_int_equal(seen[0], ARRAY_SIZE(want));
	for (unsigned i = 0; i < ARRAY_SIZE(want); i++)
		assert_int_equal(seen[i + 1], want[i]);
	check_range(WAL, 6, 12);
	paste_pool__drain(pool);
	assert_int_equal(nr_kept(), 6);
}

static void test_open_semantics(void **state)
{
	struct paste_log *a = log_get(WAL), *b = NULL;
	uint64_t magic = 0x1122334455667788ull;
	uint64_t len;
	void *addr;

	assert_int_equal(paste_log__open(&b, pool, WAL,
	                                 &PASTE_OPTS_LIT(paste_log_opts, .region_size = WAL_SIZE)),
	                 0); /* same handle */
	assert_ptr_equal(a, b);
	assert_int_equal(
	    paste_log__open(&b, pool, WAL,
	                    &PASTE_OPTS_LIT(paste_log_opts, .region_size = 2 * WAL_SIZE)),
	    -EINVAL); /* cannot grow */
	assert_int_equal(paste_log__open(&b, pool, "nope", NULL), -ENOENT);
	assert_null(b);
	assert_int_equal(paste_log__open(&b, pool, "bad name",
	                                 &PASTE_OPTS_LIT(paste_log_opts, .region_size = 4096)),
	                 -EINVAL);
	assert_int_equal(paste_log__open(&b, NULL, WAL, NULL), -EINVAL);

	/* A region that holds something else is refused; an empty one becomes a log on request. */
	assert_int_equal(paste_pool__region(pool, "other", 4096, &addr, &len), 0);
	memcpy(addr, &magic, sizeof(magic));
	assert_int_equal(paste_log__open(&b, pool, "other",
	                                 &PASTE_OPTS_LIT(paste_log_opts, .region_size = 4096)),
	                 -EINVAL);
	assert_int_equal(paste_pool__region(pool, SMALL, SMALL_SIZE, &addr, &len), 0);
	assert_int_equal(paste_log__open(&b, pool, SMALL, NULL), -ENOENT);
	assert_int_equal(
	    paste_log__open(&b, pool, SMALL,
	                    &PASTE_OPTS_LIT(paste_log_opts, .region_size = SMALL_SIZE)),
	    0);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	append(SMALL, 1, 1, false);
	reopen();
	check_range(SMALL, 1, 2);
	check_range(WAL, 1, 1);
	assert_int_equal(paste_log__open(&b, pool, "other", NULL), -EINVAL);
}

static void test_reopen_recovers(void **state)
{
	struct paste_log_info in;

	for (uint64_t s = 1; s <= 30; s++)
		append(WAL, s, 1 + s % 5, s % 3 == 0);
	reopen();
	assert_true(was_clean());
	in = info_of(WAL);
	assert_int_equal(in.recovered, 30);
	assert_int_equal(in.dropped, 0);
	check_range(WAL, 1, 31);
	assert_true(frames_explained()); /* the frame refs were rebuilt from the records */
	assert_true(nr_kept() > 30);
	append(WAL, 31, 2, false); /* dense across the restart */
	reopen();
	check_range(WAL, 1, 32);
}

static void test_truncate(void **state)
{
	struct paste_log_info in;

	for (uint64_t s = 1; s <= 10; s++)
		append(WAL, s, 1, false); /* one frame each */
	assert_int_equal(nr_kept(), 10);
	assert_int_equal(paste_log__truncate(log_get(WAL), 4), 0);
	check_range(WAL, 5, 11);
	assert_int_equal(nr_kept(), 10); /* released after the next fence, not before */
	paste_pool__drain(pool);
	assert_int_equal(nr_kept(), 6);
	assert_int_equal(paste_log__truncate(log_get(WAL), 2), 0); /* nothing there: no-op */
	assert_int_equal(paste_log__truncate(log_get(WAL), 4), 0);
	paste_pool__drain(pool);
	assert_int_equal(nr_kept(), 6);
	check_range(WAL, 5, 11);
	reopen();
	check_range(WAL, 5, 11);
	assert_int_equal(nr_kept(), 6);
	in = info_of(WAL);
	assert_int_equal(in.recovered, 6);

	assert_int_equal(paste_log__truncate(log_get(WAL), 1000), 0); /* everything */
	paste_pool__drain(pool);
	check_range(WAL, 11, 11);
	assert_int_equal(nr_kept(), 0);
	in = info_of(WAL);
	assert_int_equal(in.bytes, 0);
	assert_int_equal(in.region_used, HDR_SIZE);
	reopen();
	check_range(WAL, 11, 11);
	append(WAL, 11, 3, true);
	reopen();
	check_range(WAL, 11, 12);
	assert_int_equal(nr_kept(), 1);
}

/* Append one-ref records to SMALL from seq @next until it is full; @return how many fit. */
static uint64_t fill_small(uint64_t next)
{
	struct paste_log *log = log_get(SMALL);
	struct paste_log_info before, after;
	uint8_t *region = region_of(SMALL), *copy = malloc(SMALL_SIZE);
	struct paste_ref ref;
	uint64_t seq = 0, n = 0;
	int err;

	assert_non_null(copy);
	for (;;) {
		make_refs(next + n, 1, false, &ref);
		memcpy(copy, region, SMALL_SIZE);
		paste_log__info(log, &before, sizeof(before));
		err = paste_log__append(log, &ref, 1, &seq);
		if (err)
			break;
		assert_int_equal(seq, next + n);
		n++;
	}
	assert_int_equal(err, -ENOSPC);
	assert_memory_equal(copy, region, SMALL_SIZE); /* nothing written */
	paste_log__info(log, &after, sizeof(after));
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(after.region_used, SMALL_SIZE);
	put_refs(&ref, 1); /* still the caller's */
	free(copy);
	return n;
}

static void test_full(void **state)
{
	struct paste_ref refs[PASTE_LOG_MAX_REFS];
	struct paste_log *log = NULL;
	uint64_t n, seq;

	assert_int_equal(
	    paste_log__open(&log, pool, SMALL,
	                    &PASTE_OPTS_LIT(paste_log_opts, .region_size = SMALL_SIZE)),
	    0);
	n = fill_small(1);
	assert_int_equal(n, (SMALL_SIZE - HDR_SIZE) / 64); /* one-ref records take 64 bytes */
	check_range(SMALL, 1, n + 1);

	/* A record larger than the whole data area can never fit, not even in an empty log. */
	assert_int_equal(paste_log__truncate(log, n), 0);
	make_refs(n + 1, PASTE_LOG_MAX_REFS, false, refs);
	assert_int_equal(paste_log__append(log, refs, PASTE_LOG_MAX_REFS, &seq), -ENOSPC);
	put_refs(refs, PASTE_LOG_MAX_REFS);
	check_range(SMALL, n + 1, n + 1);

	/* Move the head to the middle, fill again around the end, then make room by truncating. */
	for (uint64_t s = n + 1; s <= n + 10; s++)
		append(SMALL, s, 1, false);
	assert_int_equal(paste_log__truncate(log, n + 10), 0);
	assert_int_equal(info_of(SMALL).region_used, HDR_SIZE);
	assert_int_equal(fill_small(n + 11), n);
	make_refs(2 * n + 11, 1, false, refs);
	assert_int_equal(paste_log__append(log, refs, 1, &seq), -ENOSPC);
	assert_int_equal(paste_log__truncate(log, n + 11), 0);
	assert_int_equal(paste_log__append(log, refs, 1, &seq), 0);
	assert_int_equal(seq, 2 * n + 11);
	reopen();
	check_range(SMALL, n + 12, 2 * n + 12);
	assert_int_equal(info_of(SMALL).region_used, SMALL_SIZE);
}

static void test_bad_refs(void **state)
{
	struct paste_ref good, bad[PASTE_LOG_MAX_REFS + 1];
	struct paste_log *log = log_get(WAL);
	struct paste_pool_info pi;
	uint64_t seq = 99;
	uint32_t rx;

	paste_pool__info(pool, &pi, sizeof(pi));
	append(WAL, 1, 1, false);
	make_refs(2, 1, false, &good);
	for (unsigned i = 0; i <= PASTE_LOG_MAX_REFS; i++)
		bad[i] = good;
	assert_int_equal(paste_log__append(log, bad, 0, &seq), -EINVAL);
	assert_int_equal(paste_log__append(log, bad, PASTE_LOG_MAX_REFS + 1, &seq), -EINVAL);
	assert_int_equal(paste_log__append(log, NULL, 1, &seq), -EINVAL);
	assert_int_equal(paste_log__append(log, &good, 1, NULL), -EINVAL);
	bad[0] = (struct paste_ref){.off = pi.region_area_off, .len = 8}; /* not in the frames */
	assert_int_equal(paste_log__append(log, bad, 1, &seq), -EINVAL);
	bad[0] = (struct paste_ref){.off = good.off - 16 + FS - 8, .len = 16}; /* two frames */
	assert_int_equal(paste_log__append(log, bad, 1, &seq), -EINVAL);
	bad[0] = (struct paste_ref){.off = good.off, .len = 0};
	assert_int_equal(paste_log__append(log, bad, 1, &seq), -EINVAL);
	bad[0] = (struct paste_ref){.off = good.off, .len = 4, .flags = 1};
	assert_int_equal(paste_log__append(log, bad, 1, &seq), -EINVAL);
	bad[0] = (struct paste_ref){.off = pi.size, .len = 4}; /* past the pool */
	assert_int_equal(paste_log__append(log, bad, 1, &seq), -EINVAL);
	rx = rx_frame(); /* received, not kept */
	bad[0] = (struct paste_ref){.off = frame_off(rx), .len = 4};
	assert_int_equal(paste_log__append(log, bad, 1, &seq), -EINVAL);
	bad[0] = good; /* one bad ref fails the whole append */
	bad[1] = (struct paste_ref){.off = frame_off(rx), .len = 4};
	assert_int_equal(paste_log__append(log, bad, 2, &seq), -EINVAL);
	assert_int_equal(seq, 99); /* untouched on failure */
	check_range(WAL, 1, 2);
	assert_int_equal(paste_frames__rx_done(paste_pool__frame_alloc(pool), rx), 0);
	assert_int_equal(paste_log__append(log, &good, 1, &seq), 0);
	assert_int_equal(seq, 2); /* the failures consumed no sequence number */
	check_range(WAL, 1, 3);
	append(WAL, 3, 1, false); /* the failures consumed no sequence number */
	reopen();
	check_range(WAL, 1, 4);
}

/* Append/truncate for many laps of a small ring, with restarts in the middle. */
static void wrap_rounds(uint64_t *next, unsigned rounds)
{
	struct paste_log *log = log_get(SMALL);

	for (unsigned i = 0; i < rounds; i++) {
		for (unsigned k = 0; k <= i % 3; k++) {
			unsigned nrefs = 1 + (unsigned)(*next % 7); /* 64..192-byte records */

			append(SMALL, *next, nrefs, *next % 2);
			check_rec(SMALL, *next, nrefs);
			(*next)++;
		}
		if (*next > 25)
			assert_int_equal(paste_log__truncate(log, *next - 25 + i % 4), 0);
		paste_pool__drain(pool);
	}
}

static void test_wraparound(void **state)
{
	struct paste_log *log = NULL;
	struct paste_log_info in;
	uint64_t next = 1;

	assert_int_equal(
	    paste_log__open(&log, pool, SMALL,
	                    &PASTE_OPTS_LIT(paste_log_opts, .region_size = SMALL_SIZE)),
	    0);
	wrap_rounds(&next, 1500); /* ~3000 records of ~128 bytes: ~48 laps of 7936 bytes */
	in = info_of(SMALL);
	check_range(SMALL, in.first_seq, next);
	assert_true(frames_explained());
	reopen();
	in = info_of(SMALL);
	assert_int_equal(in.recovered, in.records);
	assert_int_equal(in.dropped, 0);
	check_range(SMALL, in.first_seq, next);
	wrap_rounds(&next, 300);
	reopen();
	in = info_of(SMALL);
	check_range(SMALL, in.first_seq, next);
	assert_true(next > 3000);
}

/* A torn record header (its crc) on a clean pool: it and everything after are cut. */
static void test_torn_header(void **state)
{
	struct paste_log_info in;

	for (uint64_t s = 1; s <= 6; s++)
		append(WAL, s, 2, false);
	paste_pool__drain(pool);
	rec_hdr(WAL, 5)[24] ^= 0x01; /* its crc */
	reopen();
	assert_true(was_clean());
	in = info_of(WAL);
	assert_int_equal(in.recovered, 4);
	assert_int_equal(in.dropped, 1); /* the walk cannot go past a header it cannot trust */
	check_range(WAL, 1, 5);
	assert_true(frames_explained()); /* the frames of 5 and 6 are free again */
	assert_int_equal(nr_kept(), 8);
	append(WAL, 5, 1, false);
	reopen();
	check_range(WAL, 1, 6);
}

/* Child: append 3 one-ref records (seq 4..6), fence, then tear the payload of the first. */
static int child_torn_payload(void *arg)
{
	struct paste_ref ref;
	struct paste_log *log;
	struct paste_log_rec rec;
	uint64_t seq;

	if (paste_log__open(&log, pool, WAL, NULL))
		return 91;
	for (uint64_t s = 4; s <= 6; s++) {
		if (try_make_refs(s, 1, false, &ref) || paste_log__append(log, &ref, 1, &seq) ||
		    seq != s)
			return 92;
	}
	paste_pool__drain(pool);
	if (paste_log__get(log, 4, &rec))
		return 93;
	((uint8_t *)paste_pool__base(pool))[rec.refs[0].off + 5] ^= 0x20; /* never became durable */
	return 0;
}

/*
 * A payload that never became durable (crash): the record is cut with the two after it. A new
 * record 4 of the same size then lands where the old one was, right before the old 5, whose header
 * and payload are intact: old 5 must not come back (stale epoch), even on a clean open where
 * payload checksums are skipped.
 */
static void test_torn_payload_no_resurrection(void **state)
{
	struct paste_log_info in;
	uint8_t *old4;

	for (uint64_t s = 1; s <= 3; s++)
		append(WAL, s, 1, false);
	crash_child(child_torn_payload, NULL);
	assert_false(was_clean());
	in = info_of(WAL);
	assert_int_equal(in.recovered, 3);
	assert_int_equal(in.dropped, 3);
	check_range(WAL, 1, 4);
	assert_int_equal(nr_kept(), 3);
	old4 = rec_hdr(WAL, 3) + 64;
	append(WAL, 4, 1, false);
	assert_ptr_equal(rec_hdr(WAL, 4), old4); /* same place, the stale 5 right after it */
	reopen();
	assert_true(was_clean());
	in = info_of(WAL);
	assert_int_equal(in.recovered, 4);
	assert_int_equal(in.dropped, 0);
	check_range(WAL, 1, 5);
	append(WAL, 5, 2, false);
	reopen();
	check_range(WAL, 1, 6);
}

/* Child: append record 3 and fence, then tear its payload; returns its offset through @arg. */
static int child_append_torn(void *arg)
{
	struct paste_ref ref;
	struct paste_log *log;
	uint64_t seq;

	if (paste_log__open(&log, pool, WAL, NULL))
		return 91;
	if (try_make_refs(3, 1, false, &ref) || paste_log__append(log, &ref, 1, &seq) || seq != 3)
		return 92;
	paste_pool__drain(pool);
	((uint8_t *)paste_pool__base(pool))[ref.off + 1] ^= 0x20;
	return 0;
}

static int child_nothing(void *arg)
{
	return 0;
}

/*
 * The record cut at the tail must stay dead on later opens: after a clean close its payload is not
 * checked, and its bytes could also come back (the same request received into the same frame).
 * Recovery zeroes the tail it cut at.
 */
static void test_cut_record_stays_dead(void **state)
{
	static const uint8_t zero[64];
	struct paste_log_info in;

	for (uint64_t s = 1; s <= 2; s++)
		append(WAL, s, 1, false);
	crash_child(child_append_torn, NULL);
	in = info_of(WAL);
	assert_int_equal(in.recovered, 2);
	assert_int_equal(in.dropped, 1);
	/* Record 3 sat right after 2 (one-ref records are 64 bytes): its line is zeroed now. */
	assert_memory_equal(rec_hdr(WAL, 2) + 64, zero, sizeof(zero));
	reopen(); /* clean: payload checksums are skipped, so only the zeroing keeps 3 dead */
	check_range(WAL, 1, 3);
	crash_child(child_nothing, NULL); /* unclean: payload checksums checked */
	check_range(WAL, 1, 3);
	append(WAL, 3, 1, false);
	reopen();
	check_range(WAL, 1, 4);
}

/* Child: append 50 records without tearing anything, fence, crash. */
static int child_append_many(void *arg)
{
	struct paste_ref refs[8];
	struct paste_log *log;
	uint64_t seq;

	if (paste_log__open(&log, pool, WAL, NULL))
		return 91;
	for (uint64_t s = 2; s <= 51; s++) {
		if (try_make_refs(s, 1 + s % 8, s % 2, refs) ||
		    paste_log__append(log, refs, 1 + s % 8, &seq) || seq != s)
			return 92;
		if (s % 10 == 0)
			paste_pool__drain(pool);
	}
	paste_pool__drain(pool);
	return 0;
}

static void test_crash_keeps_fenced_records(void **state)
{
	struct paste_log_info in;

	append(WAL, 1, 1, false);
	crash_child(child_append_many, NULL);
	assert_false(was_clean());
	in = info_of(WAL);
	assert_int_equal(in.recovered, 51);
	assert_int_equal(in.dropped, 0);
	check_range(WAL, 1, 52);
	for (uint64_t s = 2; s <= 51; s++)
		check_rec(WAL, s, 1 + s % 8);
}

/* Fill SMALL with one-ref records 1..123 (7872 of 7936 bytes), then truncate the first @drop. */
static void small_near_end(uint64_t drop)
{
	struct paste_log *log = NULL;

	assert_int_equal(
	    paste_log__open(&log, pool, SMALL,
	                    &PASTE_OPTS_LIT(paste_log_opts, .region_size = SMALL_SIZE)),
	    0);
	for (uint64_t s = 1; s <= 123; s++)
		append(SMALL, s, 1, false);
	assert_int_equal(paste_log__truncate(log, drop), 0);
	paste_pool__drain(pool);
}

/* An empty log whose next record must wrap: the head then names the wrap marker. */
static void test_empty_wrap(void **state)
{
	struct paste_log_info in;

	small_near_end(123);          /* empty, head = tail = 7872: 64 bytes left before the end */
	append(SMALL, 124, 3, false); /* 128 bytes: marker at 7872, record at 0 */
	assert_ptr_equal(rec_hdr(SMALL, 124), region_of(SMALL) + HDR_SIZE);
	in = info_of(SMALL);
	assert_int_equal(in.region_used, HDR_SIZE + 64 + 128); /* the marker's waste counts */
	reopen();
	in = info_of(SMALL);
	assert_int_equal(in.recovered, 1);
	check_range(SMALL, 124, 125);
	assert_int_equal(paste_log__truncate(log_get(SMALL), 124), 0);
	reopen();
	check_range(SMALL, 125, 125);
	append(SMALL, 125, 1, false);
	reopen();
	check_range(SMALL, 125, 126);
}

/* Child: append a 128-byte record to SMALL (it wraps), fence, tear its payload. */
static int child_wrap_torn(void *arg)
{
	struct paste_ref refs[3];
	struct paste_log *log;
	uint64_t seq;

	if (paste_log__open(&log, pool, SMALL, NULL) || try_make_refs(124, 3, false, refs) ||
	    paste_log__append(log, refs, 3, &seq) || seq != 124)
		return 91;
	paste_pool__drain(pool);
	((uint8_t *)paste_pool__base(pool))[refs[2].off] ^= 0x01;
	return 0;
}

/*
 * A torn record right after a wrap marker: the chain ends at the marker (the tail goes back there,
 * and the marker is zeroed), and the next append wraps again.
 */
static void test_torn_after_wrap(void **state)
{
	static const uint8_t zero[64];
	struct paste_log_info in;
	uint8_t *data;

	small_near_end(10);
	crash_child(child_wrap_torn, NULL);
	in = info_of(SMALL);
	assert_int_equal(in.recovered, 113);
	assert_int_equal(in.dropped, 1);
	data = region_of(SMALL) + HDR_SIZE;
	assert_memory_equal(data + 7872, zero, sizeof(zero)); /* the marker */
	assert_int_equal(in.region_used, HDR_SIZE + 113 * 64);
	check_range(SMALL, 11, 124);
	append(SMALL, 124, 3, true); /* 128 bytes: wraps again */
	assert_ptr_equal(rec_hdr(SMALL, 124), data);
	reopen();
	check_range(SMALL, 11, 125);
	assert_int_equal(info_of(SMALL).recovered, 114);
}

/* A torn wrap marker cuts the chain there: the records after it are counted as dropped. */
static void test_torn_marker(void **state)
{
	static const uint8_t zero[64];
	struct paste_log_info in;
	uint8_t *data;

	small_near_end(10);
	append(SMALL, 124, 3, false); /* wraps */
	append(SMALL, 125, 1, false);
	paste_pool__drain(pool);
	data = region_of(SMALL) + HDR_SIZE;
	data[7872 + 24] ^= 0x04; /* the marker's crc */
	reopen();
	in = info_of(SMALL);
	assert_int_equal(in.recovered, 113);
	assert_int_equal(in.dropped, 2);
	check_range(SMALL, 11, 124);
	data = region_of(SMALL) + HDR_SIZE;
	assert_memory_equal(data + 7872, zero, sizeof(zero));
	append(SMALL, 124, 1, false); /* 64 bytes: fits before the end this time */
	assert_ptr_equal(rec_hdr(SMALL, 124), data + 7872);
	append(SMALL, 125, 1, false);
	assert_ptr_equal(rec_hdr(SMALL, 125), data);
	reopen();
	check_range(SMALL, 11, 126);
}

/* The head slot with the higher gen, and its offset from the region start. */
static unsigned newest_slot(const uint8_t *region)
{
	uint64_t g0, g1;

	memcpy(&g0, region + SLOT_OFF(0), sizeof(g0));
	memcpy(&g1, region + SLOT_OFF(1), sizeof(g1));
	return g1 > g0;
}

/*
 * A truncate whose head update was torn by a crash is undone: the other slot still names the old
 * head, whose records are intact (their frames were not reused: they are released after the
 * fence, and no fence came). Both slots bad: the pool refuses to open, and opens again once the
 * slots are repaired.
 */
static void test_torn_head_update(void **state)
{
	uint8_t *region, saved[128];
	struct paste_log_info in;
	uint64_t region_off;
	int fd;

	for (uint64_t s = 1; s <= 6; s++)
		append(WAL, s, 1, false);
	assert_int_equal(paste_log__truncate(log_get(WAL), 3), 0);
	check_range(WAL, 4, 7);
	region = region_of(WAL);
	region[SLOT_OFF(newest_slot(region)) + SLOT_CRC_OFF] ^= 0x10; /* torn */
	reopen();
	in = info_of(WAL);
	assert_int_equal(in.recovered, 6);
	check_range(WAL, 1, 7);
	assert_int_equal(nr_kept(), 6);

	/* Both slots corrupt: the log cannot be read and the pool does not open. */
	region = region_of(WAL);
	region_off = (uint64_t)(region - (uint8_t *)paste_pool__base(pool));
	memcpy(saved, region + SLOT_OFF(0), sizeof(saved));
	region[SLOT_OFF(0) + SLOT_CRC_OFF] ^= 0x10;
	region[SLOT_OFF(1) + SLOT_CRC_OFF] ^= 0x10;
	paste_pool__close(&pool);
	assert_int_equal(pool_open(), -EBADMSG);
	assert_null(pool);
	assert_non_null(strstr(paste_last_error(), "head slots"));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, saved, sizeof(saved), (off_t)(region_off + SLOT_OFF(0))),
	                 (ssize_t)sizeof(saved));
	close(fd);
	assert_int_equal(pool_open(), 0);
	check_range(WAL, 1, 7);
	assert_int_equal(paste_log__truncate(log_get(WAL), 5), 0);
	reopen();
	check_range(WAL, 6, 7);
}

/* Flip bits of the byte at file offset @off (with the pool closed). */
static void file_flip(uint64_t off, uint8_t bits)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= bits;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

/* A corrupt log header fails the pool open with a message naming the log; repaired, it opens. */
static void test_corrupt_super(void **state)
{
	uint64_t region_off;

	append(WAL, 1, 1, false);
	region_off = (uint64_t)(region_of(WAL) - (uint8_t *)paste_pool__base(pool));
	paste_pool__close(&pool);
	file_flip(region_off + 16, 0x01); /* data_size */
	assert_int_equal(pool_open(), -EBADMSG);
	assert_null(pool);
	assert_non_null(strstr(paste_last_error(), "'wal'"));
	file_flip(region_off + 16, 0x01);
	assert_int_equal(pool_open(), 0);
	check_range(WAL, 1, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_append_get_iterate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iterate_while_changing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_semantics, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_recovers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_refs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wraparound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_payload_no_resurrection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cut_record_stays_dead, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash_keeps_fenced_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_wrap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_after_wrap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_marker, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_head_update, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_super, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
