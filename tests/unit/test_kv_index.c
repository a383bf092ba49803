/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_kv_index.c - src/kv_index.c: put/get/overwrite/delete/iterate, references released only
 * after a fence, recovery at reopen (same keys, same bytes, same frame counts), full index and
 * exhausted entry slots, bad references, collisions and tombstones in a tiny table (against a
 * model), and crashes: a real process crash, and power failures simulated by editing what the
 * media would hold (a bucket word that reached media before its entry, torn value bytes, a key
 * left in two buckets by an interrupted compaction).
 *
 * Keys and values are written into RX frames taken from the pool's allocator and kept with
 * paste_pool__ref_get, as paste_keep() does. After every test the frame accounting must match
 * exactly what the index names (teardown).
 *
 * Tests that edit the region rely on its documented layout (docs/kv-index.md): header at 0 (struct
 * t_super below), the bucket array at buckets_off, 64-byte entries at slots_off; a live bucket
 * word holds slot + 1 in its low idx_bits bits.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <paste/index.h>
#include <paste/pool.h>

#include "internal.h"
#include "pool_internal.h"

#define MiB     (1ull << 20)
#define NOFRAME UINT32_MAX
#define KV_NAME "kv"
#define TOMB    (~0ull)

/* Mirrors of the on-media structs (docs/kv-index.md). */
struct t_super {
	uint64_t magic;
	uint32_t version, entry_sz;
	uint64_t capacity, nbuckets, nslots, buckets_off, slots_off, hash_seed;
	uint32_t idx_bits, crc;
};

struct t_entry {
	uint64_t hash;
	struct paste_ref key, val;
	uint64_t seq;
	uint32_t data_crc, reserved[2], crc;
};

static char path[256];
static struct paste_pool *pool;
static struct paste_kv *kv;
static uint32_t cur_frame = NOFRAME, cur_off;
static int ncompacted;

static void capture(enum paste_log_level level, const char *msg, void *user)
{
	if (strstr(msg, "compacted"))
		ncompacted++;
}

static void assert_error_has(const char *what)
{
	if (!strstr(paste_last_error(), what))
		fail_msg("error \"%s\" lacks \"%s\"", paste_last_error(), what);
}

/* ---- pool, frames, references ---------------------------------------------------------------- */

static int pool_open(bool create)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .size = 16 * MiB, .frame_size = 2048};

	o.create = create;
	o.region_area = 4 * MiB;
	cur_frame = NOFRAME;
	return paste_pool__open(&pool, path, &o);
}

static struct paste_frames *frames(void)
{
	return paste_pool__frame_alloc(pool);
}

/* Drop our RX hold on the frame refs are being cut from (it stays KEPT while refs name it). */
static void frame_done(void)
{
	if (cur_frame != NOFRAME)
		assert_int_equal(paste_frames__rx_done(frames(), cur_frame), 0);
	cur_frame = NOFRAME;
}

/* Copy @len bytes into an RX frame and keep them: a reference the caller owns. */
static struct paste_ref mkref(const void *data, size_t len)
{
	struct paste_pool_info info;
	struct paste_ref r;
	uint8_t *dst;

	paste_pool__info(pool, &info, sizeof(info));
	if (cur_frame == NOFRAME || cur_off + len > info.frame_size) {
		frame_done();
		assert_int_equal(paste_frames__alloc(frames(), PASTE_FRAME_RX, &cur_frame), 0);
		cur_off = 0;
	}
	dst = (uint8_t *)paste_pool__frames(pool) + (uint64_t)cur_frame * info.frame_size + cur_off;
	memcpy(dst, data, len);
	paste_pool__flush(pool, dst, len);
	r = (struct paste_ref){.off = info.frame_area_off + (uint64_t)cur_frame * info.frame_size +
	                              cur_off,
	                       .len = (uint32_t)len};
	assert_int_equal(paste_pool__ref_get(pool, &r), 0);
	cur_off += (uint32_t)PASTE_ALIGN_UP(len, 8);
	return r;
}

static struct paste_ref mkstr(const char *s)
{
	return mkref(s, strlen(s));
}

/* A reference alone in a frame of its own (so the frame's state tells about this ref only). */
static struct paste_ref mkstr_alone(const char *s, uint32_t *frame)
{
	struct paste_ref r;

	frame_done();
	r = mkstr(s);
	*frame = cur_frame;
	frame_done();
	return r;
}

static void put(const char *key, const char *val)
{
	struct paste_ref k = mkstr(key), v = mkstr(val);

	assert_int_equal(paste_kv__put(kv, &k, &v), 0);
}

static bool ref_is(const struct paste_ref *r, const char *s)
{
	const void *p = paste_pool__ref_ptr(pool, r);

	return p && r->len == strlen(s) && !memcmp(p, s, r->len);
}

static void expect(const char *key, const char *val)
{
	struct paste_ref v;

	assert_int_equal(paste_kv__get(kv, key, strlen(key), &v), 0);
	if (!ref_is(&v, val))
		fail_msg("key '%s': expected '%s', got '%.*s'", key, val, (int)v.len,
		         (const char *)paste_pool__ref_ptr(pool, &v));
}

static void expect_absent(const char *key)
{
	struct paste_ref v;

	assert_int_equal(paste_kv__get(kv, key, strlen(key), &v), -ENOENT);
}

static uint64_t nkeys(void)
{
	struct paste_kv_info info;

	paste_kv__info(kv, &info, sizeof(info));
	return info.keys;
}

static void release(struct paste_ref r)
{
	assert_int_equal(paste_pool__ref_put(pool, &r), 0);
}

/* ---- the region, as media ---------------------------------------------------------------- */

static struct t_super *region(void)
{
	uint64_t len;
	void *addr;

	assert_int_equal(paste_pool__find_region(pool, KV_NAME, &addr, &len), 0);
	return addr;
}

static uint64_t *buckets(void)
{
	return (uint64_t *)((uint8_t *)region() + region()->buckets_off);
}

static struct t_entry *slot(uint64_t s)
{
	return (struct t_entry *)((uint8_t *)region() + region()->slots_off) + s;
}

/* The slot of the entry whose value is @val (the one a put just wrote). */
static uint64_t slot_of(const struct paste_ref *val)
{
	for (uint64_t s = 0; s < region()->nslots; s++)
		if (slot(s)->val.off == val->off && slot(s)->val.len == val->len)
			return s;
	fail_msg("no entry names value [%llu, +%u)", (unsigned long long)val->off, val->len);
	return 0;
}

static void count_buckets(uint64_t *live, uint64_t *tombs)
{
	*live = *tombs = 0;
	for (uint64_t i = 0; i < region()->nbuckets; i++) {
		*live += buckets()[i] && buckets()[i] != TOMB;
		*tombs += buckets()[i] == TOMB;
	}
}

static bool slot_zero(uint64_t s)
{
	static const struct t_entry zero;

	return !memcmp(slot(s), &zero, sizeof(zero));
}

/* ---- frame accounting -------------------------------------------------------------------- */

static int count_ref(const struct paste_ref *k, const struct paste_ref *v, void *arg)
{
	uint32_t *want = arg, f;

	assert_true(paste_pool__ref_in_frame(pool, k, &f));
	want[f]++;
	assert_true(paste_pool__ref_in_frame(pool, v, &f));
	want[f]++;
	return 0;
}

/* After a drain: every frame the index names is KEPT with exactly its count, every other is FREE.
 */
static void assert_no_leak(void)
{
	struct paste_frames *f = frames();
	uint32_t *want = calloc(f->count, sizeof(*want));

	assert_non_null(want);
	assert_true(paste_frames__audit(f));
	if (kv)
		assert_int_equal(paste_kv__iterate(kv, count_ref, want), 0);
	for (uint32_t i = 0; i < f->count; i++) {
		if (want[i] && (f->state[i] != PASTE_FRAME_KEPT || f->refs[i] != want[i]))
			fail_msg("frame %u: state %u refs %u, the index names it %u times", i,
			         f->state[i], f->refs[i], want[i]);
		if (!want[i] && f->state[i] != PASTE_FRAME_FREE)
			fail_msg("frame %u leaked: state %u refs %u, the index does not name it", i,
			         f->state[i], f->refs[i]);
	}
	free(want);
}

static void reopen(void)
{
	frame_done();
	paste_pool__close(&pool);
	kv = NULL;
	assert_int_equal(pool_open(false), 0);
	assert_int_equal(paste_kv__open(&kv, pool, KV_NAME, NULL), 0);
}

/*
 * Crash: close the pool, let a child open it, run @fn (which returns 0 or a failure code) and die
 * without a drain or a close; then reopen it here (unclean: full recovery).
 */
static void crash_child(int (*fn)(void *arg), void *arg)
{
	int status;
	pid_t pid;

	frame_done();
	paste_pool__close(&pool);
	kv = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int code = 90;

		if (pool_open(false) == 0 && paste_kv__open(&kv, pool, KV_NAME, NULL) == 0)
			code = fn(arg);
		_exit(code);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(pool_open(false), 0);
	assert_int_equal(paste_kv__open(&kv, pool, KV_NAME, NULL), 0);
	{
		struct paste_pool_info info;

		paste_pool__info(pool, &info, sizeof(info));
		assert_false(info.was_clean);
	}
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int setup_cap(uint64_t capacity)
{
	paste_set_print(capture, NULL, PASTE_LOG_DEBUG);
	ncompacted = 0;
	snprintf(path, sizeof(path), "/dev/shm/paste-test-kv-%d.pool", (int)getpid());
	unlink(path);
	if (pool_open(true) || paste_kv__open(&kv, pool, KV_NAME,
	                                      &PASTE_OPTS_LIT(paste_kv_opts, .capacity = capacity)))
		return -1;
	return 0;
}

static int setup(void **state)
{
	return setup_cap(256);
}

static int setup_tiny(void **state)
{
	return setup_cap(4);
}

static int teardown(void **state)
{
	if (pool) {
		frame_done();
		paste_pool__drain(pool);
		assert_no_leak();
		paste_pool__close(&pool);
	}
	kv = NULL;
	unlink(path);
	return 0;
}

/* ---- basic operations --------------------------------------------------------------------- */

static void test_put_get_overwrite_delete(void **state)
{
	struct paste_kv *again;

	put("alpha", "one");
	put("beta", "two");
	put("gamma", "three-three-three");
	expect("alpha", "one");
	expect("beta", "two");
	expect("gamma", "three-three-three");
	expect_absent("delta");
	expect_absent("alph"); /* a prefix is another key */
	assert_int_equal(nkeys(), 3);

	put("alpha", "uno");
	expect("alpha", "uno");
	assert_int_equal(nkeys(), 3);

	assert_int_equal(paste_kv__del(kv, "beta", 4), 0);
	expect_absent("beta");
	assert_int_equal(paste_kv__del(kv, "beta", 4), -ENOENT);
	assert_int_equal(nkeys(), 2);
	put("beta", "again");
	expect("beta", "again");
	assert_int_equal(nkeys(), 3);

	assert_int_equal(paste_kv__open(&again, pool, KV_NAME, NULL), 0);
	assert_ptr_equal(again, kv);
	assert_int_equal(
	    paste_kv__open(&again, pool, KV_NAME, &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 100)),
	    0);
	assert_ptr_equal(again, kv);
}

static void test_delete_missing(void **state)
{
	assert_int_equal(paste_kv__del(kv, "nothing", 7), -ENOENT);
	put("a", "1");
	assert_int_equal(paste_kv__del(kv, "b", 1), -ENOENT);
	assert_int_equal(paste_kv__del(kv, "", 0), -ENOENT);
	expect("a", "1");
	assert_int_equal(nkeys(), 1);
}

struct seen {
	unsigned n;
	bool key[64];
};

static int collect(const struct paste_ref *k, const struct paste_ref *v, void *arg)
{
	struct seen *s = arg;
	char kb[16], vb[16];
	unsigned i;

	assert_true(k->len < sizeof(kb) && v->len < sizeof(vb));
	memcpy(kb, paste_pool__ref_ptr(pool, k), k->len);
	kb[k->len] = 0;
	memcpy(vb, paste_pool__ref_ptr(pool, v), v->len);
	vb[v->len] = 0;
	assert_int_equal(sscanf(kb, "key%u", &i), 1);
	assert_true(i < 64);
	assert_false(s->key[i]); /* each key once */
	assert_int_equal(atoi(vb), (int)i * 7);
	s->key[i] = true;
	s->n++;
	return 0;
}

static int stop_at_second(const struct paste_ref *k, const struct paste_ref *v, void *arg)
{
	return ++*(int *)arg == 2 ? 42 : 0;
}

static void test_iterate(void **state)
{
	struct seen s = {0};
	char k[16], v[16];
	int calls = 0;

	for (unsigned i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "key%u", i);
		snprintf(v, sizeof(v), "%u", i * 7 + (i % 3 == 0)); /* every third is overwritten */
		put(k, v);
	}
	for (unsigned i = 0; i < 40; i += 3) {
		snprintf(k, sizeof(k), "key%u", i);
		snprintf(v, sizeof(v), "%u", i * 7);
		put(k, v);
	}
	for (unsigned i = 1; i < 40; i += 10) {
		snprintf(k, sizeof(k), "key%u", i);
		assert_int_equal(paste_kv__del(kv, k, strlen(k)), 0);
	}
	assert_int_equal(paste_kv__iterate(kv, collect, &s), 0);
	assert_int_equal(s.n, 36);
	for (unsigned i = 0; i < 40; i++)
		assert_int_equal(s.key[i], i % 10 != 1);
	assert_int_equal(paste_kv__iterate(kv, stop_at_second, &calls), 42);
	assert_int_equal(calls, 2);
}

/* The replaced references stay kept until the fence; the slot is zeroed, then reused. */
static void test_overwrite_releases_after_drain(void **state)
{
	uint32_t fk1, fv1, fv2, fk2;
	struct paste_ref k1 = mkstr_alone("key", &fk1), v1 = mkstr_alone("old value", &fv1);
	struct paste_ref k2 = mkstr_alone("key", &fk2), v2 = mkstr_alone("new value", &fv2);
	struct paste_ref k3, v3;
	uint64_t s1;

	assert_int_equal(paste_kv__put(kv, &k1, &v1), 0);
	paste_pool__drain(pool);
	s1 = slot_of(&v1);
	assert_int_equal(paste_kv__put(kv, &k2, &v2), 0);
	expect("key", "new value");
	assert_int_equal(frames()->state[fv1], PASTE_FRAME_KEPT); /* not before the fence */
	assert_int_equal(frames()->state[fk1], PASTE_FRAME_KEPT);
	assert_false(slot_zero(s1));
	paste_pool__drain(pool);
	assert_int_equal(frames()->state[fv1], PASTE_FRAME_FREE);
	assert_int_equal(frames()->state[fk1], PASTE_FRAME_FREE);
	assert_int_equal(frames()->state[fv2], PASTE_FRAME_KEPT);
	assert_int_equal(frames()->refs[fv2], 1);
	assert_true(slot_zero(s1)); /* zeroed at the first fence ... */
	k3 = mkstr("other");
	v3 = mkstr("x");
	assert_int_equal(paste_kv__put(kv, &k3, &v3), 0);
	assert_int_not_equal(slot_of(&v3), s1); /* ... not reused before the second */
	paste_pool__drain(pool);
	paste_pool__drain(pool);
	put("third", "y");
	{
		struct paste_ref v;

		assert_int_equal(paste_kv__get(kv, "third", 5, &v), 0);
		assert_int_equal(slot_of(&v), s1); /* lowest free slot again */
	}
	assert_int_equal(paste_kv__del(kv, "key", 3), 0);
	assert_int_equal(frames()->state[fv2], PASTE_FRAME_KEPT);
	paste_pool__drain(pool);
	assert_int_equal(frames()->state[fv2], PASTE_FRAME_FREE);
	assert_int_equal(frames()->state[fk2], PASTE_FRAME_FREE);
}

/* ---- recovery ------------------------------------------------------------------------------ */

static void snapshot_frames(uint8_t **state, uint16_t **refs)
{
	struct paste_frames *f = frames();

	*state = malloc(f->count);
	*refs = malloc(f->count * sizeof(**refs));
	assert_non_null(*state);
	assert_non_null(*refs);
	memcpy(*state, f->state, f->count);
	memcpy(*refs, f->refs, f->count * sizeof(**refs));
}

static void fill_varied(unsigned n)
{
	char k[32], v[600];

	for (unsigned i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "k-%u-%.*s", i, (int)(i % 13), "abcdefghijklm");
		memset(v, 'a' + i % 26, sizeof(v));
		snprintf(v, sizeof(v) - 1, "v%u:", i);
		v[(i * 37) % 500 + 8] = 0;
		put(k, v);
	}
}

static void test_reopen_recovers_everything(void **state)
{
	struct paste_kv_info info;
	uint8_t *st0, *st1;
	uint16_t *rf0, *rf1;
	char k[32];

	fill_varied(200);
	for (unsigned i = 0; i < 200; i += 5) { /* overwrite some, delete some */
		snprintf(k, sizeof(k), "k-%u-%.*s", i, (int)(i % 13), "abcdefghijklm");
		if (i % 10)
			put(k, "replaced");
		else
			assert_int_equal(paste_kv__del(kv, k, strlen(k)), 0);
	}
	frame_done();
	paste_pool__drain(pool);
	assert_no_leak();
	snapshot_frames(&st0, &rf0);
	reopen();
	snapshot_frames(&st1, &rf1);
	assert_memory_equal(st0, st1, frames()->count);
	assert_memory_equal(rf0, rf1, frames()->count * sizeof(*rf0));
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.keys, 180);
	assert_int_equal(info.recovered, 180);
	assert_int_equal(info.dropped, 0);
	assert_int_equal(info.capacity, 256);
	for (unsigned i = 0; i < 200; i++) {
		char v[600];

		snprintf(k, sizeof(k), "k-%u-%.*s", i, (int)(i % 13), "abcdefghijklm");
		memset(v, 'a' + i % 26, sizeof(v));
		snprintf(v, sizeof(v) - 1, "v%u:", i);
		v[(i * 37) % 500 + 8] = 0;
		if (i % 10 == 0)
			expect_absent(k);
		else
			expect(k, i % 5 ? v : "replaced");
	}
	/* and it keeps working after recovery */
	put("after", "reopen");
	expect("after", "reopen");
	free(st0);
	free(st1);
	free(rf0);
	free(rf1);
}

/* ---- limits and bad input ------------------------------------------------------------------ */

static void test_full(void **state)
{
	struct paste_ref k, v;
	struct paste_kv_info info;

	put("a", "1");
	put("b", "2");
	put("c", "3");
	put("d", "4");
	k = mkstr("e");
	v = mkstr("5");
	assert_int_equal(paste_kv__put(kv, &k, &v), -ENOSPC);
	assert_error_has("key-value index 'kv' is full (4 keys): use a larger capacity");
	assert_int_equal(nkeys(), 4);
	expect_absent("e");
	expect("a", "1");
	expect("d", "4");
	release(k); /* still the caller's */
	release(v);
	put("b", "two"); /* a full index still takes updates */
	expect("b", "two");
	assert_int_equal(paste_kv__del(kv, "a", 1), 0);
	put("e", "5");
	expect("e", "5");
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.capacity, 4);
	assert_int_equal(info.keys, 4);
}

/* Replaced slots wait out two fences: a batch with too many updates gets -ENOSPC, intact. */
static void test_slots_exhausted_until_fences(void **state)
{
	uint64_t nslots = region()->nslots, n = 0;
	struct paste_ref k, v;
	char val[16], last[16] = "0";
	int err;

	put("a", "0");
	paste_pool__drain(pool);
	paste_pool__drain(pool);
	for (;;) {
		snprintf(val, sizeof(val), "%llu", (unsigned long long)++n);
		k = mkstr("a");
		v = mkstr(val);
		err = paste_kv__put(kv, &k, &v);
		if (err)
			break;
		strcpy(last, val);
	}
	assert_int_equal(err, -ENOSPC);
	assert_error_has("no free entry slot");
	assert_int_equal(n - 1, nslots - 1); /* every slot but the live one was used once */
	expect("a", last);                   /* the failed put changed nothing */
	paste_pool__drain(pool);             /* replaced slots are zeroed now, but not free yet */
	assert_int_equal(paste_kv__put(kv, &k, &v), -ENOSPC);
	expect("a", last);
	paste_pool__drain(pool);
	assert_int_equal(paste_kv__put(kv, &k, &v), 0);
	expect("a", val);
}

static void test_bad_refs(void **state)
{
	struct paste_pool_info info;
	struct paste_ref good = mkstr("value"), key = mkstr("key"), bad;
	uint32_t free_frame;

	paste_pool__info(pool, &info, sizeof(info));
	put("keep", "me");
	bad = (struct paste_ref){.off = 64, .len = 4}; /* superblock, not a frame */
	assert_int_equal(paste_kv__put(kv, &bad, &good), -EINVAL);
	assert_int_equal(paste_kv__put(kv, &key, &bad), -EINVAL);
	bad = key;
	bad.len = 0;
	assert_int_equal(paste_kv__put(kv, &bad, &good), -EINVAL);
	bad = (struct paste_ref){.off = info.frame_area_off + info.frame_size - 2, .len = 4};
	assert_int_equal(paste_kv__put(kv, &key, &bad), -EINVAL); /* crosses into the next frame */
	bad = key;
	bad.flags = 1;
	assert_int_equal(paste_kv__put(kv, &bad, &good), -EINVAL);
	for (free_frame = frames()->count; free_frame-- > 0;)
		if (frames()->state[free_frame] == PASTE_FRAME_FREE)
			break;
	bad = (struct paste_ref){
	    .off = info.frame_area_off + (uint64_t)info.frame_size * free_frame, .len = 8};
	assert_int_equal(paste_kv__put(kv, &bad, &good), -EINVAL); /* a frame nobody kept */
	assert_error_has("not kept");
	assert_int_equal(paste_kv__put(kv, NULL, &good), -EINVAL);
	assert_int_equal(paste_kv__put(kv, &key, NULL), -EINVAL);
	assert_int_equal(nkeys(), 1);
	expect("keep", "me");
	expect_absent("key");
	release(good);
	release(key);
}

static void test_open_rules(void **state)
{
	struct paste_kv *other;
	uint64_t len, junk = 0x1234;
	void *addr;

	assert_int_equal(paste_kv__open(&other, pool, "absent", NULL), -ENOENT);
	assert_null(other);
	assert_int_equal(
	    paste_kv__open(&other, pool, KV_NAME, &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 257)),
	    -EINVAL);
	assert_error_has("cannot grow");
	assert_int_equal(paste_kv__open(&other, pool, "huge",
	                                &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 1ull << 40)),
	                 -EINVAL);
	assert_error_has("out of range");
	assert_int_equal(paste_pool__region(pool, "raw", 4096, &addr, &len), 0);
	memcpy(addr, &junk, sizeof(junk));
	assert_int_equal(
	    paste_kv__open(&other, pool, "raw", &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 10)),
	    -EINVAL);
	assert_error_has("something other than a key-value index");
	assert_int_equal(paste_pool__region(pool, "empty", 64 * 1024, &addr, &len), 0);
	assert_int_equal(paste_kv__open(&other, pool, "empty", NULL), -ENOENT);
	assert_int_equal(paste_kv__open(&other, pool, "empty",
	                                &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 1000000)),
	                 -EINVAL);
	assert_error_has("too small");
	assert_int_equal(
	    paste_kv__open(&other, pool, "empty", &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 16)),
	    0); /* fits: made there */
	assert_non_null(other);
	assert_ptr_not_equal(other, kv);
	put("in-kv", "1");
	{
		struct paste_ref v;

		assert_int_equal(paste_kv__get(other, "in-kv", 5, &v), -ENOENT); /* separate */
	}
}

/* ---- collisions, tombstones, compaction ---------------------------------------------------- */

/* Re-inserting a deleted key reuses the tombstone on its path: no new bucket is taken. */
static void test_tombstone_reuse(void **state)
{
	uint64_t live, tombs;
	char k[16];
	int victim = -1;

	put("solo", "v"); /* alone: the next bucket is empty, so no tombstone is needed */
	assert_int_equal(paste_kv__del(kv, "solo", 4), 0);
	count_buckets(&live, &tombs);
	assert_int_equal(live + tombs, 0);

	/* Sets of 4 keys in 8 buckets until deleting one leaves a tombstone (its next bucket
	 * is taken); deleting a key at the end of a cluster empties its bucket instead. */
	for (int set = 0; set < 100 && victim < 0; set++) {
		for (int i = 0; i < 4; i++) {
			snprintf(k, sizeof(k), "s%d-%d", set, i);
			put(k, "v");
		}
		for (int i = 0; i < 4 && victim < 0; i++) {
			snprintf(k, sizeof(k), "s%d-%d", set, i);
			assert_int_equal(paste_kv__del(kv, k, strlen(k)), 0);
			count_buckets(&live, &tombs);
			assert_int_equal(live, 3);
			if (tombs)
				victim = set * 4 + i;
			else
				put(k, "v"); /* was emptied: no tombstone; put it back */
		}
		for (int i = 0; i < 4 && victim < 0; i++) {
			snprintf(k, sizeof(k), "s%d-%d", set, i);
			assert_int_equal(paste_kv__del(kv, k, strlen(k)), 0);
		}
		count_buckets(&live, &tombs);
		assert_true(victim >= 0 || (live == 0 && tombs == 0)); /* all emptied again */
	}
	assert_true(victim >= 0);
	assert_int_equal(tombs, 1);
	snprintf(k, sizeof(k), "s%d-%d", victim / 4, victim % 4);
	expect_absent(k);
	put(k, "back");
	count_buckets(&live, &tombs);
	assert_int_equal(live, 4);
	assert_int_equal(tombs, 0); /* the tombstone was taken, not a new empty bucket */
	expect(k, "back");
}

/*
 * A tiny table (4 keys, 8 buckets) under random churn over 64 key names, against a model: every
 * key reads back right after every operation, the frame counts add up, a reopen in the middle
 * changes nothing, and a power failure at any point could not leave the bucket array without an
 * empty bucket. Deletes in the middle of clusters leave tombstones; new keys then run into the
 * load limit and compact the table.
 */
static void test_collisions_churn(void **state)
{
	uint64_t nb = region()->nbuckets, *fenced = calloc(nb, sizeof(*fenced));
	char model[64][8] = {{0}};
	char k[8], v[8];
	unsigned seed = 12345, live = 0;
	int seen_compactions = 0;

	assert_non_null(fenced);
	for (int op = 0; op < 90000; op++) {
		unsigned i = (seed = seed * 1103515245 + 12345) >> 16 & 63;
		unsigned what = seed >> 8 & 3;
		bool empty = false;

		snprintf(k, sizeof(k), "c%u", i);
		if (what == 0 && model[i][0]) {
			assert_int_equal(paste_kv__del(kv, k, strlen(k)), 0);
			model[i][0] = 0;
			live--;
		} else if (what != 0 && (model[i][0] || live < 4)) {
			snprintf(v, sizeof(v), "%d", op);
			live += !model[i][0];
			put(k, v);
			strcpy(model[i], v);
		}
		if (ncompacted != seen_compactions) { /* it fenced: the table was durable then */
			seen_compactions = ncompacted;
			memcpy(fenced, buckets(), nb * 8);
		}
		/* A power failure now keeps each bucket's fenced or current word: one must be
		 * empty either way, or recovery could not even start. */
		for (uint64_t b = 0; b < nb && !empty; b++)
			empty = !fenced[b] && !buckets()[b];
		if (!empty)
			fail_msg("op %d: no bucket is empty both at the last fence and now", op);
		if (op % 3 == 0) {
			paste_pool__drain(pool);
			memcpy(fenced, buckets(), nb * 8);
		}
		if (op % 5000 == 0) {
			frame_done();
			paste_pool__drain(pool);
			assert_no_leak();
		}
		for (int j = 0; j < 64; j++) {
			snprintf(k, sizeof(k), "c%d", j);
			if (model[j][0])
				expect(k, model[j]);
			else
				expect_absent(k);
		}
		assert_int_equal(nkeys(), live);
		if (op == 45000) {
			reopen();
			memcpy(fenced, buckets(), nb * 8);
		}
	}
	free(fenced);
	print_message("churn: %d compactions\n", ncompacted);
}

/*
 * Compaction, deterministically: a table whose every bucket but one is a tombstone (as churn
 * leaves it) is compacted at the next open; all keys stay, every tombstone goes.
 */
static void test_compaction_clears_tombstones(void **state)
{
	uint64_t nb = region()->nbuckets, *b = buckets(), live, tombs;
	bool spared = false;

	put("one", "1");
	put("two", "2");
	put("three", "3");
	frame_done();
	paste_pool__drain(pool);
	for (uint64_t i = 0; i < nb; i++) {
		if (b[i])
			continue;
		if (!spared) { /* recovery starts after an empty bucket */
			spared = true;
			continue;
		}
		b[i] = TOMB;
	}
	paste_pool__persist(pool, b, nb * 8);
	count_buckets(&live, &tombs);
	assert_int_equal(live + tombs, nb - 1);
	ncompacted = 0;
	reopen();
	assert_int_equal(ncompacted, 1);
	count_buckets(&live, &tombs);
	assert_int_equal(live, 3);
	assert_int_equal(tombs, 0);
	expect("one", "1");
	expect("two", "2");
	expect("three", "3");
	put("four", "4"); /* room again */
	expect("four", "4");
}

/* Under churn the put path compacts too: distinct new keys against a deleted one each time. */
static void test_put_compacts(void **state)
{
	char k[16];
	uint64_t live, tombs;

	put("a", "1");
	put("b", "2");
	put("c", "3");
	for (int i = 0; i < 4000 && !ncompacted; i++) {
		snprintf(k, sizeof(k), "n%d", i);
		put(k, "x");
		assert_int_equal(paste_kv__del(kv, k, strlen(k)), 0);
		if (i % 2)
			paste_pool__drain(pool);
	}
	assert_true(ncompacted > 0);
	count_buckets(&live, &tombs);
	assert_true(live + tombs < region()->nbuckets);
	expect("a", "1");
	expect("b", "2");
	expect("c", "3");
	assert_int_equal(nkeys(), 3);
}

/* ---- crashes ------------------------------------------------------------------------------- */

static int child_put_and_die(void *arg)
{
	struct paste_ref k = mkstr("k"), v = mkstr("new"), k2 = mkstr("fresh"), v2 = mkstr("x");

	if (paste_kv__put(kv, &k, &v) || paste_kv__put(kv, &k2, &v2))
		return 1;
	return 0; /* no drain, no close */
}

/* A process crash right after the puts (tmpfs keeps every store, so the new values survive). */
static void test_process_crash(void **state)
{
	struct paste_ref k = mkstr("k"), v = mkstr("old");
	uint64_t old_slot;

	assert_int_equal(paste_kv__put(kv, &k, &v), 0);
	put("other", "o");
	paste_pool__drain(pool);
	old_slot = slot_of(&v);
	crash_child(child_put_and_die, NULL);
	expect("k", "new");
	expect("fresh", "x");
	expect("other", "o");
	assert_int_equal(nkeys(), 3);
	/* The replaced entry was intact on media (no fence retired it): recovery zeroed it, so
	 * that reusing its slot can never expose it as a valid entry again. */
	assert_true(slot_zero(old_slot));
}

/* ---- put from the caller's copy (paste_kv__put_src) ---------------------------------------- */

/* The data CRC is CRC32C of the key bytes, then the value bytes: "12345" + "6789" is the check
 * value of "123456789". */
static void test_data_crc(void **state)
{
	assert_int_equal(paste_kv__data_crc("12345", 5, "6789", 4), 0xe3069283u);
	assert_int_equal(paste_kv__data_crc("", 0, "123456789", 9), 0xe3069283u);
	assert_int_equal(paste_kv__data_crc("123456789", 9, NULL, 0), 0xe3069283u);
}

/* Put @key -> @val with the key and CRC taken from a copy outside the pool (as paste-kv does
 * for bytes it has just copied into the pool). */
static int put_src(const char *key, const char *val)
{
	char kb[64], vb[64];
	struct paste_ref k, v;
	int err;

	snprintf(kb, sizeof(kb), "%s", key);
	snprintf(vb, sizeof(vb), "%s", val);
	k = mkstr(kb);
	v = mkstr(vb);
	err = paste_kv__put_src(kv, &k, &v, kb, paste_kv__data_crc(kb, strlen(kb), vb, strlen(vb)));
	if (err) {
		paste_pool__ref_put(pool, &k);
		paste_pool__ref_put(pool, &v);
	}
	return err;
}

static int child_put_src_and_die(void *arg)
{
	if (put_src("carried", "new value") || put_src("fresh", "from the source"))
		return 1;
	paste_pool__drain(pool);
	return 0; /* no close: the reopen recovers and checks every entry's data CRC */
}

/*
 * An entry written with the caller's CRC is the entry paste_kv__put writes: after a crash,
 * recovery recomputes every data CRC over the pool bytes and drops an entry whose CRC does not
 * match - here it drops none, and the values read back. A CRC or key that does not match the
 * references is refused where NDEBUG is not defined (the Debug/ASan tree), nothing changed.
 */
static void test_put_src(void **state)
{
	struct paste_kv_info info;

	assert_int_equal(put_src("carried", "old value"), 0);
	expect("carried", "old value");
	put("other", "o");
	paste_pool__drain(pool);
	crash_child(child_put_src_and_die, NULL);
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.dropped, 0);
	assert_int_equal(info.keys, 3);
	expect("carried", "new value");
	expect("fresh", "from the source");
	expect("other", "o");
	{
		struct paste_ref k = mkstr("carried"), v = mkstr("v");

		assert_int_equal(paste_kv__put_src(kv, &k, &v, NULL, 0), -EINVAL);
#ifndef NDEBUG
		assert_int_equal(paste_kv__put_src(kv, &k, &v, "carried",
		                                   paste_kv__data_crc("carried", 7, "w", 1)),
		                 -EINVAL);
		assert_non_null(strstr(paste_last_error(), "data CRC"));
		assert_int_equal(paste_kv__put_src(kv, &k, &v, "carries",
		                                   paste_kv__data_crc("carries", 7, "v", 1)),
		                 -EINVAL);
#endif
		expect("carried", "new value");
		paste_pool__ref_put(pool, &k);
		paste_pool__ref_put(pool, &v);
	}
}

struct tear {
	const char *key, *val;
	int how; /* 0: entry never reached media (zero); 1: value bytes torn; 2: two updates */
};

/* Put, then make media look as if the bucket word reached it but the entry did not. */
static int child_torn_put(void *arg)
{
	const struct tear *t = arg;
	struct paste_ref k = mkstr(t->key), v = mkstr(t->val);
	uint64_t s;

	if (paste_kv__put(kv, &k, &v))
		return 1;
	s = slot_of(&v);
	if (t->how == 1) {
		((uint8_t *)paste_pool__ref_ptr(pool, &v))[1] ^= 0x20; /* torn payload */
		return 0;
	}
	if (t->how == 2) { /* a second update of the key in the same batch, also lost */
		k = mkstr(t->key);
		v = mkstr("third");
		if (paste_kv__put(kv, &k, &v))
			return 2;
		memset(slot(slot_of(&v)), 0, sizeof(struct t_entry));
	}
	memset(slot(s), 0, sizeof(struct t_entry)); /* after the puts: they saw it whole */
	return 0;
}

static void torn_overwrite(int how)
{
	struct tear t = {"k", "new", how};
	uint32_t fold;
	struct paste_ref k = mkstr("k"), v = mkstr_alone("old", &fold);
	struct paste_kv_info info;

	assert_int_equal(paste_kv__put(kv, &k, &v), 0);
	put("neighbour", "n");
	paste_pool__drain(pool);
	crash_child(child_torn_put, &t);
	expect("k", "old"); /* never a mix: the old value, whole */
	expect("neighbour", "n");
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.keys, 2);
	assert_int_equal(info.dropped, 1);
	assert_int_equal(frames()->state[fold], PASTE_FRAME_KEPT);
	reopen(); /* the repair is durable: a second recovery finds nothing to do */
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.dropped, 0);
	expect("k", "old");
}

static void test_torn_overwrite_entry_missing(void **state)
{
	torn_overwrite(0);
}

static void test_torn_overwrite_payload(void **state)
{
	torn_overwrite(1);
}

static void test_torn_double_overwrite(void **state)
{
	torn_overwrite(2);
}

static void test_torn_new_key_absent(void **state)
{
	struct tear t = {"newkey", "nv", 0};
	struct paste_kv_info info;
	uint64_t live, tombs;

	put("k", "v");
	paste_pool__drain(pool);
	crash_child(child_torn_put, &t);
	expect_absent("newkey");
	expect("k", "v");
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.keys, 1);
	assert_int_equal(info.dropped, 1);
	count_buckets(&live, &tombs);
	assert_int_equal(live, 1);
	put("newkey", "later"); /* the key can be written again */
	expect("newkey", "later");
}

static int child_nothing(void *arg)
{
	return 0;
}

/* After a clean close recovery trusts the payload bytes; after a crash it checks them. */
static void test_payload_crc_only_after_crash(void **state)
{
	struct paste_ref k = mkstr("key"), v = mkstr("payload");
	struct paste_ref copy;
	struct paste_kv_info info;

	assert_int_equal(paste_kv__put(kv, &k, &v), 0);
	put("other", "fine");
	copy = v;
	reopen(); /* clean */
	((uint8_t *)paste_pool__ref_ptr(pool, &copy))[0] ^= 1;
	reopen(); /* clean: not checked */
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.keys, 2);
	assert_int_equal(info.dropped, 0);
	crash_child(child_nothing, NULL);
	/* unclean: the rotten entry is found (it has no older version: the key is gone) */
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.dropped, 1);
	expect_absent("key");
	expect("other", "fine");
}

static void check_twenty(void)
{
	struct paste_kv_info info;
	struct seen s = {0};
	char k[16], v[16];

	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.keys, 20);
	assert_int_equal(info.dropped, 1);
	assert_int_equal(paste_kv__iterate(kv, collect, &s), 0);
	assert_int_equal(s.n, 20);
	for (unsigned i = 0; i < 20; i++) {
		snprintf(k, sizeof(k), "key%u", i);
		snprintf(v, sizeof(v), "%u", i * 7);
		expect(k, v);
	}
}

/* Copy a live word into an empty bucket: just after its cluster (@after) or just before it. */
static void copy_word(bool after)
{
	uint64_t nb = region()->nbuckets, *b = buckets();

	for (uint64_t i = 0; i < nb; i++) {
		uint64_t prev = (i + nb - 1) % nb, next = (i + 1) % nb;
		uint64_t dst = after ? next : prev;

		if (!b[i] || b[i] == TOMB || b[dst])
			continue;
		b[dst] = b[i];
		paste_pool__persist(pool, &b[dst], 8);
		return;
	}
	fail_msg("no live bucket next to an empty one");
}

/*
 * A key left in two buckets (a compaction cut short leaves the old copy behind, later on the
 * probe path; or a copy sits where the key's probe never looks): it comes back once, with its
 * references taken once.
 */
static void test_duplicate_word_recovered_once(void **state)
{
	char k[16], v[16];

	for (unsigned i = 0; i < 20; i++) {
		snprintf(k, sizeof(k), "key%u", i);
		snprintf(v, sizeof(v), "%u", i * 7);
		put(k, v);
	}
	paste_pool__drain(pool);
	copy_word(true); /* reachable second copy: dropped as a duplicate */
	reopen();
	check_twenty();
	copy_word(false); /* unreachable copy: dropped */
	reopen();
	check_twenty();
}

/*
 * The same key in two buckets with two different entries (a delete and a re-insert in one batch,
 * both half on media): the first on the probe path wins, the other is dropped with its entry.
 */
static void test_same_key_two_entries(void **state)
{
	uint64_t nb = region()->nbuckets, *b = buckets(), mask, src = UINT64_MAX, copy = 0;
	char k[16], v[16];

	for (unsigned i = 0; i < 20; i++) {
		snprintf(k, sizeof(k), "key%u", i);
		snprintf(v, sizeof(v), "%u", i * 7);
		put(k, v);
	}
	paste_pool__drain(pool);
	mask = (1ull << region()->idx_bits) - 1;
	for (uint64_t i = 0; i < nb && src == UINT64_MAX; i++)
		if (b[i] && b[i] != TOMB && !b[(i + 1) % nb])
			src = i;
	assert_true(src != UINT64_MAX);
	while (!slot_zero(copy)) /* a free slot gets a byte copy of the key's entry */
		copy++;
	memcpy(slot(copy), slot((b[src] & mask) - 1), sizeof(struct t_entry));
	b[(src + 1) % nb] = (b[src] & ~mask) | (copy + 1);
	paste_pool__persist(pool, slot(copy), sizeof(struct t_entry));
	paste_pool__persist(pool, &b[(src + 1) % nb], 8);
	reopen();
	check_twenty();
	assert_true(slot_zero(copy)); /* the losing entry's slot was scrubbed ... */
	reopen();                     /* ... (reopen clean: nothing more to drop) */
	{
		struct paste_kv_info info;

		paste_kv__info(kv, &info, sizeof(info));
		assert_int_equal(info.dropped, 0);
		assert_int_equal(info.keys, 20);
	}
}

static int check_gettable(const struct paste_ref *k, const struct paste_ref *v, void *arg)
{
	struct paste_ref got;

	assert_int_equal(paste_kv__get(kv, paste_pool__ref_ptr(pool, k), k->len, &got), 0);
	assert_memory_equal(&got, v, sizeof(got));
	++*(unsigned *)arg;
	return 0;
}

/* A word its key's probe can never reach (an empty bucket on the path): dropped, not counted. */
static void test_unreachable_word_dropped(void **state)
{
	uint64_t nb = region()->nbuckets, *b = buckets(), i;
	struct paste_kv_info info;
	unsigned n = 0;
	char k[16], v[16];

	for (unsigned j = 0; j < 20; j++) {
		snprintf(k, sizeof(k), "key%u", j);
		snprintf(v, sizeof(v), "%u", j * 7);
		put(k, v);
	}
	paste_pool__drain(pool);
	for (i = 0; i < nb; i++) /* alone in its cluster, so its home is i; two empties after */
		if (b[i] && b[i] != TOMB && !b[(i + nb - 1) % nb] && !b[(i + 1) % nb] &&
		    !b[(i + 2) % nb] && !b[(i + 3) % nb])
			break;
	assert_true(i < nb);
	b[(i + 2) % nb] = b[i]; /* moved past an empty bucket: lost to every lookup */
	b[i] = 0;
	paste_pool__persist(pool, b, nb * 8);
	reopen();
	paste_kv__info(kv, &info, sizeof(info));
	assert_int_equal(info.keys, 19);
	assert_int_equal(info.dropped, 1);
	assert_int_equal(paste_kv__iterate(kv, check_gettable, &n), 0);
	assert_int_equal(n, 19); /* what iterate shows, get finds */
}

/* ---- power failure: only fenced lines are sure to be on media ------------------------------ */

/*
 * A model of the media under the index region: durable[] is what a power failure keeps for sure.
 * A drain makes the lines flushed since the last drain durable. At the crash, every 8-byte word
 * that differs from durable[] keeps its new value or goes back to the durable one, at random:
 * any mix of unfenced stores, at the 8-byte granularity persistence guarantees.
 */
struct sim {
	uint8_t *region, *durable, *flushed; /* flushed: one flag per 64-byte line */
	uint64_t len;
	unsigned countdown; /* crash at this fence (0: never) */
	unsigned arm;       /* if not 0: the countdown during each put (only compactions fence) */
	unsigned op;        /* the operation running, reported as the exit status */
	unsigned rng;
};

static struct sim sim;

static void sim_flush(void *arg, const void *addr, size_t len)
{
	const uint8_t *a = addr;

	if (a + len <= sim.region || a >= sim.region + sim.len)
		return;
	for (uint64_t l = (uint64_t)(a - sim.region) / 64;
	     l * 64 < (uint64_t)(a - sim.region) + len; l++)
		if (l < sim.len / 64)
			sim.flushed[l] = 1;
}

static void sim_crash(void)
{
	uint64_t *r = (uint64_t *)sim.region, *d = (uint64_t *)sim.durable;

	for (uint64_t i = 0; i < sim.len / 8; i++)
		if (r[i] != d[i] && (sim.rng = sim.rng * 1103515245 + 12345) >> 16 & 1)
			r[i] = d[i];
	_exit((int)sim.op);
}

static void sim_drain(void *arg)
{
	if (sim.countdown && --sim.countdown == 0)
		sim_crash(); /* before this fence took effect */
	for (uint64_t l = 0; l < sim.len / 64; l++) {
		if (!sim.flushed[l])
			continue;
		memcpy(sim.durable + l * 64, sim.region + l * 64, 64);
		sim.flushed[l] = 0;
	}
}

/* Test hook in src/kv_index.c: compact the bucket array now. */
int paste_kv__compact(struct paste_kv *kv);

#define FZ_KEYS 24
#define FZ_OPS  40

static unsigned fz_cap; /* the index's capacity (16, or 4 to compact more often) */

struct fz_op {
	uint8_t type; /* 0 put, 1 delete, 2 drain, 3 compact */
	uint8_t key;
};

struct fz_model {
	char val[FZ_KEYS][16]; /* "" when absent */
};

/* What an operation does to the model, and the return code the index must give. */
static int fz_apply(struct fz_model *m, const struct fz_op *op, int trial, int i)
{
	unsigned live = 0;

	for (int k = 0; k < FZ_KEYS; k++)
		live += m->val[k][0] != 0;
	if (op->type == 1) {
		if (!m->val[op->key][0])
			return -ENOENT;
		m->val[op->key][0] = 0;
		return 0;
	}
	if (op->type == 0) {
		if (!m->val[op->key][0] && live >= fz_cap)
			return -ENOSPC;
		snprintf(m->val[op->key], sizeof(m->val[0]), "v%hu-%hu", (unsigned short)trial,
		         (unsigned short)i);
	}
	return 0;
}

/*
 * Whatever mix of memory and durable image a power failure leaves, some bucket must be empty in
 * both (recovery starts its scan there; linear probing needs one to end a miss).
 */
static bool fz_empty_survives(const struct t_super *sup)
{
	const uint64_t *mem = (const uint64_t *)(sim.region + sup->buckets_off);
	const uint64_t *dur = (const uint64_t *)(sim.durable + sup->buckets_off);

	for (uint64_t i = 0; i < sup->nbuckets; i++)
		if (!mem[i] && !dur[i])
			return true;
	return false;
}

/* mkstr() for the child, which must not use cmocka's asserts (they would longjmp into the
 * parent's test runner copy). @return 0 or -errno. */
static int fz_ref(const char *s, struct paste_ref *r)
{
	struct paste_pool_info info;
	size_t len = strlen(s);
	int err;

	paste_pool__info(pool, &info, sizeof(info));
	if (cur_frame == NOFRAME || cur_off + len > info.frame_size) {
		if (cur_frame != NOFRAME && (err = paste_frames__rx_done(frames(), cur_frame)))
			return err;
		if ((err = paste_frames__alloc(frames(), PASTE_FRAME_RX, &cur_frame)))
			return err;
		cur_off = 0;
	}
	r->off = info.frame_area_off + (uint64_t)cur_frame * info.frame_size + cur_off;
	r->len = (uint32_t)len;
	r->flags = 0;
	memcpy((uint8_t *)paste_pool__base(pool) + r->off, s, len);
	paste_pool__flush(pool, (uint8_t *)paste_pool__base(pool) + r->off, len);
	cur_off += (uint32_t)PASTE_ALIGN_UP(len, 8);
	return paste_pool__ref_get(pool, r);
}

static int fz_child(const struct fz_op *ops, int nops, struct fz_model m, int trial)
{
	struct t_super *sup;
	uint64_t len;
	void *addr;
	struct paste_pmem_ops po = {sim_flush, sim_drain, NULL};
	char key[8];

	if (paste_pool__find_region(pool, KV_NAME, &addr, &len))
		return 254;
	sup = addr;
	sim.region = addr;
	sim.len = PASTE_ALIGN_UP(sup->slots_off + sup->nslots * 64, 64ull);
	sim.durable = malloc(sim.len);
	sim.flushed = calloc(sim.len / 64, 1);
	if (!sim.durable || !sim.flushed)
		return 251;
	memcpy(sim.durable, sim.region, sim.len); /* recovery fenced everything */
	paste_pool__set_pmem_ops(pool, &po);
	for (sim.op = 0; sim.op < (unsigned)nops; sim.op++) {
		const struct fz_op *op = &ops[sim.op];
		int want = fz_apply(&m, op, trial, (int)sim.op), got = 0;

		snprintf(key, sizeof(key), "k%u", op->key);
		sim.countdown = sim.arm && op->type == 0 ? sim.arm : sim.arm ? 0 : sim.countdown;
		if (op->type == 2) {
			paste_pool__drain(pool);
		} else if (op->type == 3) {
			got = paste_kv__compact(kv);
		} else if (op->type == 1) {
			got = paste_kv__del(kv, key, strlen(key));
		} else {
			struct paste_ref k, v;

			char val[16];
			int e1, e2;

			snprintf(val, sizeof(val), "v%d-%u", trial,
			         sim.op); /* as fz_apply names it */
			e1 = fz_ref(key, &k);
			e2 = e1 ? 0 : fz_ref(val, &v);

			if (e1 || e2) {
				fprintf(stderr, "trial %d op %u: keeping bytes: %d %d: %s\n", trial,
				        sim.op, e1, e2, paste_last_error());
				return 255;
			}
			got = paste_kv__put(kv, &k, &v);
			if (got) {
				paste_pool__ref_put(pool, &k);
				paste_pool__ref_put(pool, &v);
			}
		}
		if (got != want) {
			fprintf(stderr, "trial %d op %u (%d k%u): got %d, the model says %d\n",
			        trial, sim.op, op->type, op->key, got, want);
			return 252;
		}
		if (!fz_empty_survives(sup)) {
			fprintf(stderr,
			        "trial %d op %u: a power failure now could leave no empty "
			        "bucket\n",
			        trial, sim.op);
			return 249;
		}
	}
	sim_crash(); /* exits with nops: crashed after the last operation */
	return 253;
}

/* After the crash during operation @at: may key @k hold @got ("" = absent)? */
static bool fz_allowed(const struct fz_op *ops, int at, int nops, struct fz_model m, int trial,
                       int k, const char *got)
{
	struct fz_model acked;
	int last = -1; /* last drain that completed */

	for (int i = 0; i < at && i < nops; i++)
		if (ops[i].type == 2)
			last = i;
	for (int i = 0; i <= last; i++)
		fz_apply(&m, &ops[i], trial, i);
	acked = m;
	if (!strcmp(got, acked.val[k]))
		return true;
	for (int i = last + 1; i <= at && i < nops; i++) { /* the batch that was not fenced */
		if (fz_apply(&m, &ops[i], trial, i) == 0 && ops[i].key == k && ops[i].type < 2 &&
		    !strcmp(got, m.val[k]))
			return true;
	}
	return false;
}

static void fz_read(struct fz_model *m)
{
	char key[8];

	for (int k = 0; k < FZ_KEYS; k++) {
		struct paste_ref v;

		snprintf(key, sizeof(key), "k%d", k);
		m->val[k][0] = 0;
		if (paste_kv__get(kv, key, strlen(key), &v) == 0) {
			assert_true(v.len < sizeof(m->val[k]));
			memcpy(m->val[k], paste_pool__ref_ptr(pool, &v), v.len);
			m->val[k][v.len] = 0;
		}
	}
}

/*
 * Random batches of puts, deletes and compactions over 24 keys in a 16-key index, and in a 4-key
 * one (full at times, compacting at times), cut by a power failure at a random fence or after the
 * last operation. Every third run of operations puts and deletes one key at a time, which leaves
 * tombstones and compacts often, and fails only at the first, second, third or fourth fence inside
 * a put (a put fences only when it compacts); 300 times in a row on one pool (KV_FUZZ_TRIALS,
 * KV_FUZZ_SEED override). After every recovery each key holds its value as of the last completed
 * fence or one the unfenced batch gave it, never anything else, and the frame accounting matches
 * the index exactly.
 */
static void test_power_failure_fuzz(void **state)
{
	const char *env_trials = getenv("KV_FUZZ_TRIALS"), *env_seed = getenv("KV_FUZZ_SEED");
	int trials = env_trials ? atoi(env_trials) : 300, drops = 0;
	unsigned rng = env_seed ? (unsigned)atoi(env_seed) : 777;
	struct fz_model m, start;

	fz_read(&m);
	for (int trial = 0; trial < trials; trial++) {
		struct fz_op ops[FZ_OPS];
		int nops = 1 + (int)((rng = rng * 1103515245 + 12345) >> 16) % FZ_OPS, status, at;
		unsigned ndrain = 0, live = 0;
		pid_t pid;

		bool pairs = trial % 3 == 2; /* put and delete one key: tombstones, compactions */

		for (int i = 0; i < nops; i++) {
			unsigned r = (rng = rng * 1103515245 + 12345) >> 16;

			if (pairs) {
				ops[i].type = i % 6 == 5 ? 2 : i % 2;
				ops[i].key = i % 2 ? ops[i - 1].key : (uint8_t)(r % FZ_KEYS);
			} else {
				ops[i].type = r % 8 == 0 ? 2 : r % 8 == 1 ? 3 : r % 8 < 4 ? 1 : 0;
				ops[i].key = (uint8_t)(r / 8 % FZ_KEYS);
			}
			ndrain += ops[i].type == 2 ? 1 : ops[i].type == 3 ? 3 : 0; /* fences */
		}
		sim.rng = rng;
		sim.countdown = (rng >> 20) % 3 ? 1 + (rng >> 8) % (ndrain + 3) : 0;
		sim.arm =
		    pairs ? 1 + (rng >> 8) % 4 : 0; /* fail at the arm-th fence of a compaction */
		frame_done();
		paste_pool__close(&pool);
		kv = NULL;
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int code = 250;

			if (pool_open(false) == 0 && paste_kv__open(&kv, pool, KV_NAME, NULL) == 0)
				code = fz_child(ops, nops, m, trial);
			_exit(code);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		at = WEXITSTATUS(status);
		if (at > nops)
			fail_msg("trial %d: the child failed (%d)", trial, at);
		assert_int_equal(pool_open(false), 0);
		assert_int_equal(paste_kv__open(&kv, pool, KV_NAME, NULL), 0);
		{
			struct paste_kv_info info;

			paste_kv__info(kv, &info, sizeof(info));
			drops += info.dropped != 0;
		}
		start = m;
		fz_read(&m);
		for (int k = 0; k < FZ_KEYS; k++) {
			if (!fz_allowed(ops, at, nops, start, trial, k, m.val[k]))
				fail_msg("trial %d, crash in op %d of %d: key k%d holds '%s'",
				         trial, at, nops, k, m.val[k]);
			live += m.val[k][0] != 0;
		}
		assert_int_equal(nkeys(), live);
		assert_no_leak();
	}
	print_message("power failures: %d of %d recoveries dropped torn updates\n", drops, trials);
}

static int setup_fuzz(void **state)
{
	fz_cap = 16;
	return setup_cap(fz_cap);
}

static int setup_fuzz_tiny(void **state)
{
	fz_cap = 4;
	return setup_cap(fz_cap);
}

static void test_corrupt_header_fails_open(void **state)
{
	put("a", "b");
	frame_done();
	region()->capacity ^= 1; /* crc no longer matches */
	paste_pool__close(&pool);
	kv = NULL;
	assert_int_equal(pool_open(false), -EBADMSG);
	assert_null(pool);
	assert_error_has("header checksum mismatch");
}

int main(void)
{
#define T(fn)    cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TINY(fn) cmocka_unit_test_setup_teardown(fn, setup_tiny, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_put_get_overwrite_delete),
	    T(test_delete_missing),
	    T(test_iterate),
	    T(test_overwrite_releases_after_drain),
	    T(test_reopen_recovers_everything),
	    TINY(test_full),
	    TINY(test_slots_exhausted_until_fences),
	    T(test_bad_refs),
	    T(test_open_rules),
	    TINY(test_tombstone_reuse),
	    TINY(test_collisions_churn),
	    TINY(test_compaction_clears_tombstones),
	    TINY(test_put_compacts),
	    T(test_process_crash),
	    T(test_data_crc),
	    T(test_put_src),
	    T(test_torn_overwrite_entry_missing),
	    T(test_torn_overwrite_payload),
	    T(test_torn_double_overwrite),
	    T(test_torn_new_key_absent),
	    T(test_payload_crc_only_after_crash),
	    T(test_duplicate_word_recovered_once),
	    T(test_same_key_two_entries),
	    T(test_unreachable_word_dropped),
	    cmocka_unit_test_setup_teardown(test_power_failure_fuzz, setup_fuzz, teardown),
	    cmocka_unit_test_setup_teardown(test_power_failure_fuzz, setup_fuzz_tiny, teardown),
	    T(test_corrupt_header_fails_open),
	};
#undef T
#undef TINY

	return cmocka_run_group_tests(tests, NULL, NULL);
}
