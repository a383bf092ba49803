/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_index_recovery.c - libFuzzer target for index recovery (paste_log__recover and
 * paste_kv__recover, run by paste_pool__open) on arbitrary region contents.
 *
 * Once per process a template pool is made (2 MiB on /dev/shm): a log "wal" (64 KiB) with
 * records of one to five references, a log "small" (8 KiB) filled up and partly truncated, and a
 * key-value index "kv" (64 keys) with live, replaced and deleted keys; the file is kept as a byte
 * image. For every input the image is restored, then patched:
 *
 *   [flags] then patches [where u8][offset u32][n u8][n bytes]...
 *   where % 4: 0 "wal", 1 "small", 2 "kv" region (offset modulo the region's size), 3 the frames
 *   the indexes name (offset modulo the used part of the frame area: payload corruption).
 *   flags bit 0: leave the pool marked unclean (recovery then checks payload checksums);
 *   bit 1: after a successful open, append, put, delete and truncate on what was recovered.
 *
 * Checked: the open returns 0 or a negative errno; if it opens, the frame allocator audit holds,
 * nothing is RX or TX, every frame an index names is KEPT, and reading every recovered record,
 * reference and key (through paste_pool__ref_ptr) stays inside the pool (ASan checks the reads);
 * after an unclean shutdown (payload checksummed) every key iterate yields is found by get.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <paste/index.h>
#include <paste/pool.h>

#include "fuzz.h"
#include "fuzz_pool_common.h"
#include "pool_internal.h"

#define POOL_SIZE (2u << 20)
#define F_UNCLEAN 0x01
#define F_MUTATE  0x02

struct region {
	const char *name;
	uint64_t off, len;
};

static char path[64];
static uint8_t *image;
static size_t image_len;
static struct region regions[3] = {{"wal", 0, 0}, {"small", 0, 0}, {"kv", 0, 0}};
static uint64_t frames_off, frames_used;
static uint32_t cur_frame = UINT32_MAX, cur_off;

static void remove_pool(void)
{
	unlink(path);
}

/* Copy @len bytes into an RX frame and keep them, as the event loop does (the caller owns it). */
static struct paste_ref mkref(struct paste_pool *pool, const void *data, size_t len)
{
	struct paste_frames *fr = paste_pool__frame_alloc(pool);
	struct paste_pool_info info;
	struct paste_ref r;

	paste_pool__info(pool, &info, sizeof(info));
	if (cur_frame == UINT32_MAX || cur_off + len > info.frame_size) {
		if (cur_frame != UINT32_MAX)
			FZ_CHECK(paste_frames__rx_done(fr, cur_frame) == 0);
		FZ_CHECK(paste_frames__alloc(fr, PASTE_FRAME_RX, &cur_frame) == 0);
		cur_off = 0;
	}
	r = (struct paste_ref){.off = info.frame_area_off + (uint64_t)cur_frame * info.frame_size +
	                              cur_off,
	                       .len = (uint32_t)len};
	memcpy(paste_pool__ref_ptr(pool, &r), data, len);
	paste_pool__flush(pool, paste_pool__ref_ptr(pool, &r), len);
	FZ_CHECK(paste_pool__ref_get(pool, &r) == 0);
	cur_off += (uint32_t)((len + 7) & ~7ul);
	if (!image && r.off + r.len > frames_off + frames_used) /* template only */
		frames_used = r.off + r.len - frames_off;
	return r;
}

static void fill_log(struct paste_pool *pool, struct paste_log *log, unsigned nrec)
{
	char text[64];

	for (unsigned i = 0; i < nrec; i++) {
		struct paste_ref refs[5];
		unsigned n = 1 + i % 5;
		uint64_t seq;

		for (unsigned j = 0; j < n; j++) {
			int l = snprintf(text, sizeof(text), "record %u part %u", i, j);

			refs[j] = mkref(pool, text, (size_t)l + j * 3);
		}
		if (paste_log__append(log, refs, n, &seq)) {
			for (unsigned j = 0; j < n; j++)
				paste_pool__ref_put(pool, &refs[j]);
			break;
		}
	}
}

static void fill_kv(struct paste_pool *pool, struct paste_kv *kv)
{
	char k[32], v[64];

	for (unsigned i = 0; i < 40; i++) {
		int kl = snprintf(k, sizeof(k), "key:%u", i % 24);
		int vl =
		    snprintf(v, sizeof(v), "value %u of some length %*s", i, (int)(i % 17), "");
		struct paste_ref kr = mkref(pool, k, (size_t)kl), vr = mkref(pool, v, (size_t)vl);

		FZ_CHECK(paste_kv__put(kv, &kr, &vr) == 0);
		if (i % 7 == 3)
			FZ_CHECK(paste_kv__del(kv, k, (size_t)kl) == 0);
		paste_pool__drain(pool);
	}
}

/* PASTE_FUZZ_DUMP_IMAGE=FILE: write the template's superblock and region area there (with a
 * leading flags byte of 7, it is a fuzz_pool_open seed: gen_seeds.py uses it). */
static void dump_image(void)
{
	const char *out = getenv("PASTE_FUZZ_DUMP_IMAGE");
	uint64_t end = 0;
	FILE *f;

	if (!out)
		return;
	for (unsigned i = 0; i < 3; i++)
		if (regions[i].off + regions[i].len > end)
			end = regions[i].off + regions[i].len;
	f = fopen(out, "wb");
	FZ_CHECK(f && fputc(7, f) == 7 && fwrite(image, 1, end, f) == end);
	fclose(f);
}

/* Make the template pool and keep its image. */
static void setup(void)
{
	struct paste_pool_opts o = {.sz = sizeof(o),
	                            .size = POOL_SIZE,
	                            .frame_size = 2048,
	                            .create = true,
	                            .must_create = true};
	struct paste_pool *pool;
	struct paste_pool_info info;
	struct paste_log *wal, *small;
	struct paste_kv *kv;
	void *addr;
	int fd;

	fz_quiet();
	snprintf(path, sizeof(path), "/dev/shm/paste-fuzz-recovery-%d.pool", (int)getpid());
	unlink(path);
	atexit(remove_pool);
	FZ_CHECK(paste_pool__open(&pool, path, &o) == 0);
	paste_pool__info(pool, &info, sizeof(info));
	frames_off = info.frame_area_off;
	FZ_CHECK(paste_log__open(&wal, pool, "wal",
	                         &PASTE_OPTS_LIT(paste_log_opts, .region_size = 64 << 10)) == 0);
	FZ_CHECK(paste_log__open(&small, pool, "small",
	                         &PASTE_OPTS_LIT(paste_log_opts, .region_size = 8 << 10)) == 0);
	FZ_CHECK(paste_kv__open(&kv, pool, "kv", &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 64)) ==
	         0);
	fill_log(pool, wal, 12);
	fill_log(pool, small, 1000); /* until full */
	FZ_CHECK(paste_log__truncate(small, 5) == 0);
	fill_log(pool, small, 3);
	fill_kv(pool, kv);
	FZ_CHECK(paste_frames__rx_done(paste_pool__frame_alloc(pool), cur_frame) == 0);
	cur_frame = UINT32_MAX;
	paste_pool__drain(pool);
	for (unsigned i = 0; i < 3; i++) {
		FZ_CHECK(paste_pool__find_region(pool, regions[i].name, &addr, &regions[i].len) ==
		         0);
		regions[i].off = (uint64_t)((uint8_t *)addr - (uint8_t *)paste_pool__base(pool));
	}
	paste_pool__close(&pool);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	FZ_CHECK(fd >= 0);
	image_len = POOL_SIZE;
	image = malloc(image_len);
	FZ_CHECK(image && pread(fd, image, image_len, 0) == (ssize_t)image_len);
	close(fd);
	dump_image();
}

static void write_image(struct fz *f, uint8_t flags)
{
	static uint8_t buf[POOL_SIZE];
	int fd;

	memcpy(buf, image, image_len);
	if (flags & F_UNCLEAN) {
		memset(buf + FZ_SB_CLEAN_OFF, 0, 4);
		fz_sb_fix_crc(buf);
		memcpy(buf + FZ_SB_BACKUP, buf, FZ_SB_SIZE);
	}
	while (f->n) {
		uint8_t where = fz_u8(f) % 4;
		uint32_t off = fz_u32(f);
		size_t n = fz_u8(f), got;
		const uint8_t *b = fz_bytes(f, n, &got);
		uint64_t base = where < 3 ? regions[where].off : frames_off,
		         len = where < 3 ? regions[where].len : frames_used;

		off = (uint32_t)(off % len);
		if (got > len - off)
			got = (size_t)(len - off);
		memcpy(buf + base + off, b, got);
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FZ_CHECK(fd >= 0);
	FZ_CHECK(pwrite(fd, buf, image_len, 0) == (ssize_t)image_len);
	close(fd);
}

/* Every recovered reference: readable, inside the pool, its frame KEPT. */
static void check_ref(struct paste_pool *pool, const struct paste_ref *r)
{
	struct paste_frames *fr = paste_pool__frame_alloc(pool);
	volatile uint8_t sink = 0;
	const uint8_t *p = paste_pool__ref_ptr(pool, r);
	uint32_t frame;

	FZ_CHECK(p != NULL);
	for (uint32_t i = 0; i < r->len; i++)
		sink ^= p[i];
	FZ_CHECK(paste_pool__ref_in_frame(pool, r, &frame));
	FZ_CHECK(fr->state[frame] == PASTE_FRAME_KEPT && fr->refs[frame] > 0);
	(void)sink;
}

static int on_rec(const struct paste_log_rec *rec, void *arg)
{
	uint64_t sum = 0;

	FZ_CHECK(rec->nrefs >= 1 && rec->nrefs <= PASTE_LOG_MAX_REFS);
	for (uint32_t i = 0; i < rec->nrefs; i++) {
		check_ref(arg, &rec->refs[i]);
		sum += rec->refs[i].len;
	}
	FZ_CHECK(sum == rec->len);
	return 0;
}

static int on_kv(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct paste_pool *pool = arg;
	struct paste_kv *kv = paste_pool__index(pool, "kv");
	struct paste_ref got;

	check_ref(pool, key);
	check_ref(pool, val);
	/* A clean pool's payload is trusted (not checksummed at open), so corrupt key bytes can
	 * make a key unfindable there: only an unclean open promises iterate and get agree. */
	if (kv && !paste_pool__was_clean(pool))
		FZ_CHECK(paste_kv__get(kv, paste_pool__ref_ptr(pool, key), key->len, &got) == 0);
	return 0;
}

static void mutate(struct paste_pool *pool, struct paste_log *log, struct paste_kv *kv)
{
	struct paste_log_info li;
	struct paste_ref r[2];
	uint64_t seq;

	if (log) {
		r[0] = mkref(pool, "appended after recovery", 23);
		if (paste_log__append(log, r, 1, &seq))
			paste_pool__ref_put(pool, &r[0]);
		paste_log__info(log, &li, sizeof(li));
		FZ_CHECK(paste_log__truncate(log, li.first_seq + 1) == 0);
	}
	if (kv) {
		r[0] = mkref(pool, "key:3", 5);
		r[1] = mkref(pool, "new value", 9);
		if (paste_kv__put(kv, &r[0], &r[1])) {
			paste_pool__ref_put(pool, &r[0]);
			paste_pool__ref_put(pool, &r[1]);
		}
		paste_kv__del(kv, "key:5", 5);
	}
	if (cur_frame != UINT32_MAX)
		FZ_CHECK(paste_frames__rx_done(paste_pool__frame_alloc(pool), cur_frame) == 0);
	cur_frame = UINT32_MAX;
	paste_pool__drain(pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct paste_pool_opts o = {.sz = sizeof(o)};
	struct paste_pool *pool = NULL;
	struct fz f = {data, size};
	uint8_t flags = fz_u8(&f);
	struct paste_frames *fr;
	struct paste_log *logs[2] = {NULL, NULL};
	struct paste_kv *kv = NULL;
	int err;

	if (!image)
		setup();
	write_image(&f, flags);
	err = paste_pool__open(&pool, path, &o);
	FZ_CHECK(err <= 0 && err > -4096);
	if (err)
		return 0;
	fr = paste_pool__frame_alloc(pool);
	FZ_CHECK(paste_frames__audit(fr));
	FZ_CHECK(paste_frames__nr(fr, PASTE_FRAME_RX) == 0 &&
	         paste_frames__nr(fr, PASTE_FRAME_TX) == 0);
	for (unsigned i = 0; i < 2; i++)
		if (paste_log__open(&logs[i], pool, regions[i].name, NULL) == 0)
			FZ_CHECK(paste_log__iterate(logs[i], 0, on_rec, pool) == 0);
	if (paste_kv__open(&kv, pool, "kv", NULL) == 0)
		FZ_CHECK(paste_kv__iterate(kv, on_kv, pool) == 0);
	if (flags & F_MUTATE) {
		mutate(pool, logs[0], kv);
		FZ_CHECK(paste_frames__audit(fr));
	}
	paste_pool__close(&pool);
	return 0;
}
