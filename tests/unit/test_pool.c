/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_pool.c - src/pool.c: creating and reopening pool files, the clean-shutdown flag across a
 * real process crash, named regions, and every refusal at open (wrong frame size, truncation,
 * checksum, magic, version, not a pool, exists, absent, too small, busy, and a UMEM the kernel will
 * not pin). Pool files live under /dev/shm (tmpfs) and /var/tmp (ext4 here), named with the pid;
 * each test removes its own.
 *
 * Some tests edit the superblock bytes directly; they rely on its documented layout (pool.c):
 * record at 0 and backup at 2048, 2048 bytes each, magic at 0, version at 8, crc at 12, pool_size
 * at 16, frame_size at 24, frame_count at 28, region_area_used at 48, the region table at 88
 * (48-byte entries: name[32], off, size); crc = CRC32C of the record with the crc field zeroed.
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
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <paste/pool.h>

#include "internal.h"
#include "pool_internal.h"

#define MiB      (1ull << 20)
#define SB_REC   2048
#define SB_BACK  2048
#define OFF_VER  8
#define OFF_CRC  12
#define OFF_SIZE 16

static char warn_buf[512];
static int nwarn;

static void capture(enum paste_log_level level, const char *msg, void *user)
{
	if (level == PASTE_LOG_WARN) {
		snprintf(warn_buf, sizeof(warn_buf), "%s", msg);
		nwarn++;
	}
}

/* Per-test file name; setup removes leftovers, teardown removes the file. */
static char path[256];

static void make_path(const char *dir, const char *tag)
{
	snprintf(path, sizeof(path), "%s/paste-test-%d-%s.pool", dir, (int)getpid(), tag);
	unlink(path);
}

static int setup(void **state)
{
	paste_set_print(capture, NULL, PASTE_LOG_DEBUG);
	warn_buf[0] = 0;
	nwarn = 0;
	make_path("/dev/shm", "t");
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	return 0;
}

static struct paste_pool_opts create_opts(uint64_t size, uint32_t frame_size)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .size = size, .frame_size = frame_size};

	o.create = true;
	o.region_area = 1 * MiB;
	return o;
}

static struct paste_pool *create_pool(uint64_t size, uint32_t frame_size)
{
	struct paste_pool_opts o = create_opts(size, frame_size);
	struct paste_pool *p = NULL;

	assert_int_equal(paste_pool__open(&p, path, &o), 0);
	assert_non_null(p);
	return p;
}

static int open_pool(struct paste_pool **p, const struct paste_pool_opts *o)
{
	return paste_pool__open(p, path, o);
}

static bool file_exists(const char *f)
{
	return access(f, F_OK) == 0;
}

static void file_rw(bool write, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	if (write)
		assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	else
		assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void flip_byte(off_t off)
{
	uint8_t b;

	file_rw(false, &b, 1, off);
	b ^= 0x40;
	file_rw(true, &b, 1, off);
}

static void assert_error_has(const char *what)
{
	if (!strstr(paste_last_error(), what))
		fail_msg("error \"%s\" lacks \"%s\"", paste_last_error(), what);
}

/* ---- create, reopen, clean flag ---------------------------------------------------------- */

static void test_create_and_reopen(void **state)
{
	struct paste_pool_info a, b;
	struct paste_pool *p = create_pool(8 * MiB, 2048);
	static const uint8_t zero_uuid[16];
	struct stat st;
	uint8_t *frames;

	paste_pool__info(p, &a, sizeof(a));
	assert_true(a.created);
	assert_true(a.was_clean); /* nothing to recover in a new pool */
	assert_false(a.is_pmem);  /* tmpfs */
	assert_int_equal(a.frame_size, 2048);
	assert_int_equal(a.region_area_off, 4096);
	assert_int_equal(a.region_area_size, 1 * MiB);
	assert_int_equal(a.region_area_used, 0);
	assert_int_equal(a.frame_area_off, 4096 + 1 * MiB);
	assert_int_equal(a.frame_area_off % 4096, 0);
	assert_int_equal(a.frame_count, (8 * MiB - 4096 - 1 * MiB) / 2048);
	assert_int_equal(a.size, a.frame_area_off + (uint64_t)a.frame_count * 2048);
	assert_memory_not_equal(a.uuid, zero_uuid, 16);
	assert_int_equal(a.uuid[6] >> 4, 4); /* v4 uuid */
	frames = paste_pool__frames(p);
	assert_ptr_equal(frames, (uint8_t *)paste_pool__base(p) + a.frame_area_off);
	assert_int_equal((uintptr_t)frames % 4096, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, a.size);
	assert_int_equal(st.st_mode & 0777, 0600);
	for (uint32_t i = 0; i < a.frame_count; i++)
		frames[(size_t)i * 2048 + 7] = (uint8_t)i;
	paste_pool__persist(p, frames, (size_t)a.frame_count * 2048);
	paste_pool__close(&p);
	assert_null(p);
	paste_pool__close(&p); /* NULL is fine */

	assert_int_equal(open_pool(&p, NULL), 0); /* no opts: open an existing pool as it is */
	paste_pool__info(p, &b, sizeof(b));
	assert_false(b.created);
	assert_true(b.was_clean);
	assert_memory_equal(a.uuid, b.uuid, 16);
	assert_int_equal(a.size, b.size);
	assert_int_equal(a.frame_count, b.frame_count);
	assert_int_equal(a.frame_area_off, b.frame_area_off);
	frames = paste_pool__frames(p);
	for (uint32_t i = 0; i < b.frame_count; i++)
		assert_int_equal(frames[(size_t)i * 2048 + 7], (uint8_t)i);
	paste_pool__close(&p);
}

static void test_defaults_and_4k_frames(void **state)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .create = true, .frame_size = 4096};
	struct paste_pool_info info;
	struct paste_pool *p;

	assert_int_equal(open_pool(&p, &o), 0);
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.size, PASTE_POOL_DEFAULT_SIZE);
	assert_int_equal(info.region_area_size, PASTE_POOL_DEFAULT_SIZE / 8);
	assert_int_equal(info.frame_size, 4096);
	assert_int_equal(info.frame_count, (PASTE_POOL_DEFAULT_SIZE * 7 / 8 - 4096) / 4096);
	paste_pool__close(&p);
}

/* Child opens, writes and persists, then dies without closing: the pool is not clean. */
static void test_crash_leaves_pool_unclean(void **state)
{
	struct paste_pool_info info;
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	uint64_t len;
	int status;
	pid_t pid;
	void *r;

	paste_pool__close(&p);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct paste_pool *c;
		uint64_t len;
		uint8_t *f;
		void *r;

		if (paste_pool__open(&c, path, NULL))
			_exit(1);
		f = paste_pool__frames(c);
		memcpy(f + 2048 * 5, "survives", 8);
		paste_pool__flush(c, f + 2048 * 5, 8);
		paste_pool__drain(c);
		if (paste_pool__region(c, "idx", 4096, &r, &len))
			_exit(2);
		memcpy(r, "index", 5);
		paste_pool__persist(c, r, 5);
		_exit(0); /* no close */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	assert_int_equal(open_pool(&p, NULL), 0); /* the crashed process's lock went with it */
	paste_pool__info(p, &info, sizeof(info));
	assert_false(info.was_clean);
	assert_memory_equal((uint8_t *)paste_pool__frames(p) + 2048 * 5, "survives", 8);
	assert_int_equal(paste_pool__region(p, "idx", 0, &r, &len),
	                 0); /* recorded before the crash */
	assert_memory_equal(r, "index", 5);
	paste_pool__close(&p);
	assert_int_equal(open_pool(&p, NULL), 0);
	paste_pool__info(p, &info, sizeof(info));
	assert_true(info.was_clean); /* closed properly this time */
	paste_pool__close(&p);
}

static void test_busy(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048), *q = (void *)1;

	assert_int_equal(open_pool(&q, NULL), -EBUSY);
	assert_null(q);
	assert_error_has("in use");
	paste_pool__close(&p);
	assert_int_equal(open_pool(&q, NULL), 0);
	paste_pool__close(&q);
}

/* ---- regions ----------------------------------------------------------------------------- */

static void test_regions_persist(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	struct paste_pool_info info;
	void *wal, *kv, *again;
	uint64_t wal_len, kv_len, len;
	uintptr_t wal_off, kv_off;

	/* Stale bytes in the unused region area (a reused pool): a new region must not show them.
	 */
	paste_pool__info(p, &info, sizeof(info));
	memset((uint8_t *)paste_pool__base(p) + info.region_area_off, 0xAA, info.region_area_size);
	assert_int_equal(paste_pool__region(p, "wal.log", 5000, &wal, &wal_len), 0);
	assert_int_equal(wal_len, 8192); /* rounded up to 4 KiB */
	assert_int_equal((uintptr_t)wal % 4096, 0);
	wal_off = (uintptr_t)wal - (uintptr_t)paste_pool__base(p);
	assert_true(wal_off >= 4096 && wal_off + wal_len <= 4096 + 1 * MiB);
	for (size_t i = 0; i < wal_len; i++)
		assert_int_equal(((uint8_t *)wal)[i], 0);
	assert_int_equal(paste_pool__region(p, "kv", 4096, &kv, &kv_len), 0);
	kv_off = (uintptr_t)kv - (uintptr_t)paste_pool__base(p);
	assert_true(kv_off >= wal_off + wal_len || kv_off + kv_len <= wal_off);
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.region_area_used, 8192 + 4096);
	memcpy(wal, "log record", 10);
	paste_pool__persist(p, wal, 10);

	assert_int_equal(paste_pool__region(p, "wal.log", 0, &again, &len), 0); /* find only */
	assert_ptr_equal(again, wal);
	assert_int_equal(len, 8192);
	assert_int_equal(paste_pool__region(p, "wal.log", 8192, &again, &len), 0);
	assert_ptr_equal(again, wal);
	assert_int_equal(paste_pool__region(p, "wal.log", 8193, &again, &len), -EINVAL);
	assert_error_has("cannot grow");
	assert_int_equal(paste_pool__region(p, "nope", 0, &again, &len), -ENOENT);
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.region_area_used, 8192 + 4096); /* lookups allocate nothing */
	paste_pool__close(&p);

	assert_int_equal(open_pool(&p, NULL), 0);
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.region_area_used, 8192 + 4096);
	assert_int_equal(paste_pool__region(p, "wal.log", 0, &again, &len), 0);
	assert_int_equal((uintptr_t)again - (uintptr_t)paste_pool__base(p), wal_off);
	assert_int_equal(len, 8192);
	assert_memory_equal(again, "log record", 10);
	assert_int_equal(paste_pool__region(p, "kv", 1, &again, &len), 0);
	assert_int_equal((uintptr_t)again - (uintptr_t)paste_pool__base(p), kv_off);
	assert_int_equal(len, 4096);
	paste_pool__close(&p);
}

static void test_region_too_big(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	struct paste_pool_info info;
	void *a;
	uint64_t len;

	assert_int_equal(paste_pool__region(p, "big", 1 * MiB + 1, &a, &len), -ENOSPC);
	assert_error_has("region_area");
	assert_int_equal(paste_pool__region(p, "huge", UINT64_MAX, &a, &len), -ENOSPC);
	assert_int_equal(paste_pool__region(p, "half", MiB / 2, &a, &len), 0);
	assert_int_equal(paste_pool__region(p, "half2", MiB / 2 + 1, &a, &len), -ENOSPC);
	assert_int_equal(paste_pool__region(p, "rest", MiB / 2, &a, &len), 0); /* exactly fits */
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.region_area_used, 1 * MiB);
	assert_int_equal(paste_pool__region(p, "more", 1, &a, &len), -ENOSPC);
	assert_int_equal(paste_pool__region(p, "big", 0, &a, &len), -ENOENT); /* not recorded */
	paste_pool__close(&p);
}

static void test_region_table_full(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	char name[32];
	void *a, *first = NULL;
	uint64_t len;

	for (int i = 0; i < PASTE_POOL_MAX_REGIONS; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		assert_int_equal(paste_pool__region(p, name, 4096, &a, &len), 0);
		if (i == 0)
			first = a;
	}
	assert_int_equal(paste_pool__region(p, "one-more", 4096, &a, &len), -ENOSPC);
	assert_error_has("table is full");
	paste_pool__close(&p);
	assert_int_equal(open_pool(&p, NULL), 0);
	assert_int_equal(paste_pool__region(p, "r0", 0, &a, &len), 0);
	assert_int_equal((uintptr_t)a - (uintptr_t)paste_pool__base(p),
	                 (uintptr_t)first - (uintptr_t)paste_pool__base(p) + 0);
	assert_int_equal(paste_pool__region(p, "r15", 0, &a, &len), 0);
	assert_int_equal(paste_pool__region(p, "one-more", 4096, &a, &len), -ENOSPC);
	paste_pool__close(&p);
}

static void test_region_bad_names(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	static const char *const bad[] = {"", "has space", "tab\there", "new\nline",
	                                  "0123456789012345678901234567890123"};
	char longest[PASTE_POOL_REGION_NAME_MAX + 1];
	struct paste_pool_info info;
	void *a;
	uint64_t len;

	assert_int_equal(paste_pool__region(p, NULL, 4096, &a, &len), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(paste_pool__region(p, bad[i], 4096, &a, &len), -EINVAL);
	assert_error_has("bad region name");
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.region_area_used, 0);
	memset(longest, 'x', PASTE_POOL_REGION_NAME_MAX);
	longest[PASTE_POOL_REGION_NAME_MAX] = 0;
	assert_int_equal(paste_pool__region(p, longest, 4096, &a, &len), 0);
	longest[PASTE_POOL_REGION_NAME_MAX - 1] = 0; /* a prefix is another name */
	assert_int_equal(paste_pool__region(p, longest, 0, &a, &len), -ENOENT);
	paste_pool__close(&p);
}

/* ---- refusals at open -------------------------------------------------------------------- */

static void test_wrong_frame_size(void **state)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .frame_size = 2048};
	struct paste_pool_info info;
	struct paste_pool *p = create_pool(4 * MiB, 4096);

	paste_pool__close(&p);
	assert_int_equal(open_pool(&p, &o), -EINVAL);
	assert_null(p);
	assert_error_has("4096-byte frames");
	assert_error_has("2048");
	assert_error_has(path);
	o.frame_size = 0;
	assert_int_equal(open_pool(&p, &o), 0);
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.frame_size, 4096);
	assert_true(info.was_clean); /* the refused open did not mark the pool in use */
	paste_pool__close(&p);
	o.frame_size = 1024;
	o.create = true;
	unlink(path);
	assert_int_equal(open_pool(&p, &o), -EINVAL);
	assert_error_has("1024");
	assert_false(file_exists(path));
}

static void test_truncated(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	struct paste_pool_info info;
	char want[128];

	paste_pool__info(p, &info, sizeof(info));
	paste_pool__close(&p);
	assert_int_equal(truncate(path, (off_t)info.size - 4096), 0);
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_null(p);
	snprintf(want, sizeof(want), "truncated: file is %llu bytes, superblock says %llu",
	         (unsigned long long)info.size - 4096, (unsigned long long)info.size);
	assert_error_has(want);
}

static void test_checksum_flip(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	struct paste_pool_info before, after;
	uint8_t prim[SB_REC], back[SB_REC];

	paste_pool__info(p, &before, sizeof(before));
	paste_pool__close(&p);

	/* One copy damaged (what a torn update looks like): the backup is used and rewritten. */
	flip_byte(OFF_SIZE + 1);
	assert_int_equal(open_pool(&p, NULL), 0);
	assert_true(strstr(warn_buf, "backup") != NULL);
	paste_pool__info(p, &after, sizeof(after));
	assert_int_equal(after.size, before.size);
	assert_memory_equal(after.uuid, before.uuid, 16);
	paste_pool__close(&p);
	file_rw(false, prim, SB_REC, 0);
	file_rw(false, back, SB_REC, SB_BACK);
	assert_memory_equal(prim, back, SB_REC); /* repaired */

	/* Only the backup damaged (a crash while writing it): the primary is used, no warning. */
	flip_byte(SB_BACK + 30);
	nwarn = 0;
	assert_int_equal(open_pool(&p, NULL), 0);
	assert_int_equal(nwarn, 0);
	paste_pool__close(&p);

	/* A creation that crashed after the backup but before the primary was written. */
	memset(prim, 0, SB_REC);
	file_rw(true, prim, SB_REC, 0);
	assert_int_equal(open_pool(&p, NULL), 0);
	paste_pool__info(p, &after, sizeof(after));
	assert_memory_equal(after.uuid, before.uuid, 16);
	paste_pool__close(&p);

	/* Both copies damaged: corrupt. */
	flip_byte(OFF_SIZE + 1);
	flip_byte(SB_BACK + 100);
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_null(p);
	assert_error_has("superblock checksum mismatch: corrupt pool; restore or recreate");
	assert_error_has(path);
}

static void test_bad_magic(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);

	paste_pool__close(&p);
	/* Only the primary: a torn first write of the superblock looks like this; the backup wins.
	 */
	flip_byte(0);
	assert_int_equal(open_pool(&p, NULL), 0);
	assert_true(strstr(warn_buf, "backup") != NULL);
	paste_pool__close(&p);
	/* Both copies: not a pool. */
	flip_byte(0);
	flip_byte(SB_BACK);
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_error_has("not a paste pool");
	assert_error_has(path);
}

/* Overwrite @len bytes at @off of both superblock copies and give them a valid checksum. */
static void rewrite_sb(size_t off, const void *val, size_t len)
{
	uint8_t rec[SB_REC];
	uint32_t crc = 0;

	file_rw(false, rec, SB_REC, 0);
	memcpy(rec + off, val, len);
	memcpy(rec + OFF_CRC, &crc, 4);
	crc = paste_crc32c(0, rec, SB_REC);
	memcpy(rec + OFF_CRC, &crc, 4);
	file_rw(true, rec, SB_REC, 0);
	file_rw(true, rec, SB_REC, SB_BACK);
}

/* A superblock with a valid checksum but a future version. */
static void test_wrong_version(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	uint32_t v = 99;

	paste_pool__close(&p);
	rewrite_sb(OFF_VER, &v, 4);
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_error_has("version 99");
	assert_error_has(path);
}

/* Checksummed but impossible geometry (a bug or a crafted file) is refused too. */
static void test_bad_geometry(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	uint32_t fs = 1000, count = UINT32_MAX;
	uint64_t used = 2 * MiB;
	uint8_t good[SB_REC];
	void *a;
	uint64_t len;

	assert_int_equal(paste_pool__region(p, "r0", 4096, &a, &len), 0);
	assert_int_equal(paste_pool__region(p, "r1", 4096, &a, &len), 0);
	paste_pool__close(&p);
	file_rw(false, good, SB_REC, 0);

	rewrite_sb(24, &fs, 4); /* frame_size */
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_error_has("corrupt superblock (frame size");
	rewrite_sb(24, good + 24, 4);
	rewrite_sb(28, &count, 4); /* frame_count */
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_error_has("frame area does not fit");
	rewrite_sb(28, good + 28, 4);
	rewrite_sb(48, &used, 8); /* region_area_used > region_area_size */
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_error_has("region area");
	rewrite_sb(48, good + 48, 8);
	rewrite_sb(88 + 48 + 32, good + 88 + 32, 8); /* region 1 at region 0's offset */
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_error_has("overlap");
	rewrite_sb(88 + 48 + 32, good + 88 + 48 + 32, 8);
	assert_int_equal(open_pool(&p, NULL), 0); /* all restored */
	paste_pool__close(&p);
}

/* Files that are not pools are refused and left exactly as they were. */
static void test_not_a_pool(void **state)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .create = true};
	static const size_t sizes[] = {0, 100, 4096, 65536};
	struct paste_pool *p;
	char *text = malloc(65536), *back = malloc(65536);

	assert_non_null(text);
	assert_non_null(back);
	for (size_t i = 0; i < 65536; i++)
		text[i] = "not a pool\n"[i % 11];
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, text, sizes[i]), (ssize_t)sizes[i]);
		close(fd);
		assert_int_equal(open_pool(&p, &o), -EBADMSG); /* create does not overwrite it */
		assert_error_has("not a paste pool");
		assert_error_has(path);
		if (sizes[i]) {
			file_rw(false, back, sizes[i], 0);
			assert_memory_equal(text, back, sizes[i]);
		}
	}
	/* Zeros (what a creation interrupted before the superblock leaves): says so. */
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(truncate(path, 8192), 0);
	assert_int_equal(open_pool(&p, NULL), -EBADMSG);
	assert_error_has("all zeros");
	free(text);
	free(back);
}

static void test_must_create_existing(void **state)
{
	struct paste_pool_opts o = create_opts(4 * MiB, 2048);
	struct paste_pool_info a, b;
	struct paste_pool *p = create_pool(4 * MiB, 2048);

	paste_pool__info(p, &a, sizeof(a));
	paste_pool__close(&p);
	o.must_create = true;
	assert_int_equal(open_pool(&p, &o), -EEXIST);
	assert_null(p);
	assert_error_has("already exists");
	assert_int_equal(open_pool(&p, NULL), 0); /* untouched */
	paste_pool__info(p, &b, sizeof(b));
	assert_memory_equal(a.uuid, b.uuid, 16);
	assert_true(b.was_clean);
	paste_pool__close(&p);
	unlink(path);
	o.create = false; /* must_create alone creates */
	assert_int_equal(open_pool(&p, &o), 0);
	paste_pool__info(p, &b, sizeof(b));
	assert_true(b.created);
	paste_pool__close(&p);
}

static void test_absent_without_create(void **state)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .size = 4 * MiB};
	struct paste_pool *p = (void *)1;

	assert_int_equal(open_pool(&p, &o), -ENOENT);
	assert_null(p);
	assert_error_has("does not exist");
	assert_false(file_exists(path));
	assert_int_equal(open_pool(&p, NULL), -ENOENT);
}

static void test_size_limits(void **state)
{
	struct paste_pool_opts o =
	    create_opts(1 * MiB, 2048); /* 1 MiB region area + frames > 1 MiB */
	struct paste_pool_info info;
	struct paste_pool *p;

	assert_int_equal(open_pool(&p, &o), -EINVAL);
	assert_error_has("too small");
	assert_false(file_exists(path)); /* nothing half made */
	/* The exact minimum: superblock + one page of regions + 64 frames. */
	o.region_area = 4096;
	o.size = 4096 + 4096 + 64 * 2048;
	assert_int_equal(open_pool(&p, &o), 0);
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.frame_count, 64);
	paste_pool__close(&p);
	unlink(path);
	o.size -= 1;
	assert_int_equal(open_pool(&p, &o), -EINVAL);
	/* Sizes that are not a whole number of frames are rounded down. */
	o.size = 4096 + 4096 + 100 * 2048 + 1000;
	assert_int_equal(open_pool(&p, &o), 0);
	paste_pool__info(p, &info, sizeof(info));
	assert_int_equal(info.frame_count, 100);
	assert_int_equal(info.size, 4096 + 4096 + 100 * 2048);
	paste_pool__close(&p);
	unlink(path);
	o.size = 1ull << 60; /* more than 2^32 frames */
	assert_int_equal(open_pool(&p, &o), -EFBIG);
	assert_false(file_exists(path));
}

static void test_bad_opts(void **state)
{
	struct paste_pool_opts o = create_opts(4 * MiB, 2048);
	struct paste_pool *p;

	o.sz = 0;
	assert_int_equal(open_pool(&p, &o), -EINVAL);
	assert_error_has(".sz");
	assert_false(file_exists(path));
}

/* ---- persistence ops chosen at open, emulated media ---------------------------------------- */

static unsigned nflush, ndrain;

static void count_flush(void *arg, const void *addr, size_t len)
{
	nflush++;
}

static void count_drain(void *arg)
{
	ndrain++;
}

/* The default set before an open is what that open (superblock commit included) and the pool use.
 */
static void test_default_pmem_ops(void **state)
{
	static const struct paste_pmem_ops counting = {count_flush, count_drain, NULL};
	struct paste_pool *p = NULL;
	void *addr;
	uint64_t len;

	nflush = ndrain = 0;
	paste_pool__set_default_pmem_ops(&counting);
	p = create_pool(4 * MiB, 2048);
	paste_pool__set_default_pmem_ops(NULL);
	assert_true(nflush > 0 && ndrain > 0); /* the open's superblock writes went through it */
	ndrain = 0;
	assert_int_equal(paste_pool__region(p, "r", 4096, &addr, &len), 0);
	paste_pool__persist(p, addr, 64);
	assert_true(ndrain >= 1);
	paste_pool__close(&p);
	nflush = ndrain = 0;
	p = create_pool(4 * MiB, 2048); /* reset: libpmem's again */
	paste_pool__close(&p);
	assert_int_equal(nflush + ndrain, 0);
}

/* Every line flush_append was given is flushed before the next fence (drain or persist), a line
 * the next append continues only once, none of them before: the continued line is not flushed
 * while appends go on in it. */
static uintptr_t fl_lines[64];
static unsigned nfl, fl_at_drain[4], nfl_drain;

static void rec_flush(void *arg, const void *addr, size_t len)
{
	for (uintptr_t a = (uintptr_t)addr & ~(uintptr_t)63; a < (uintptr_t)addr + len; a += 64)
		if (nfl < 64)
			fl_lines[nfl++] = a;
}

static void rec_drain(void *arg)
{
	if (nfl_drain < 4)
		fl_at_drain[nfl_drain++] = nfl;
}

static bool flushed_line(uintptr_t a, unsigned upto)
{
	unsigned n = 0;

	for (unsigned i = 0; i < upto; i++)
		n += fl_lines[i] == (a & ~(uintptr_t)63);
	return n == 1;
}

static void test_flush_append(void **state)
{
	static const struct paste_pmem_ops rec = {rec_flush, rec_drain, NULL};
	struct paste_pool *p = create_pool(4 * MiB, 2048);
	uint8_t *addr;
	uint64_t len;

	assert_int_equal(paste_pool__region(p, "r", 4096, (void **)&addr, &len), 0);
	paste_pool__set_pmem_ops(p, &rec);
	nfl = nfl_drain = 0;
	paste_pool__flush_append(p, addr + 8, 40); /* [8, 48): its line waits */
	assert_int_equal(nfl, 0);
	assert_true(paste_pool__needs_drain(p));
	paste_pool__flush_append(p, addr + 48, 100); /* [48, 148): lines 0, 1 done, 2 waits */
	assert_int_equal(nfl, 2);
	assert_true(flushed_line((uintptr_t)addr, 2) && flushed_line((uintptr_t)addr + 64, 2));
	paste_pool__drain(p); /* line 2 before the fence */
	assert_int_equal(nfl_drain, 1);
	assert_int_equal(fl_at_drain[0], 3);
	assert_true(flushed_line((uintptr_t)addr + 128, 3));
	assert_false(paste_pool__needs_drain(p));
	paste_pool__flush_append(p, addr + 1000, 10); /* pending, then not continued: flushed */
	paste_pool__flush_append(p, addr + 2000, 64); /* [2000, 2064): 2 lines, the 2nd waits */
	assert_int_equal(nfl, 5);
	assert_true(flushed_line((uintptr_t)addr + 1000, 5) &&
	            flushed_line((uintptr_t)addr + 2000, 5));
	paste_pool__persist(p, addr + 3000, 8); /* a persist is a fence too */
	assert_int_equal(nfl_drain, 2);
	assert_true(flushed_line((uintptr_t)addr + 2063, fl_at_drain[1]));
	assert_true(flushed_line((uintptr_t)addr + 3000, fl_at_drain[1]));
	paste_pool__flush_append(p, addr + 256, 64); /* line aligned: nothing waits */
	assert_int_equal(nfl, fl_at_drain[1] + 1);
	paste_pool__set_pmem_ops(p, NULL);
	paste_pool__close(&p);
}

/* A fence costs at least the emulated latency (CPU contention only makes it slower). */
static void test_emulated_media(void **state)
{
	struct paste_pool_opts o = create_opts(4 * MiB, 2048);
	struct paste_pool *p = NULL;
	uint64_t t0, len;
	uint8_t *addr;

	o.emu_fence_ns = 2000000; /* 2 ms */
	o.emu_line_ns = 100000;   /* 0.1 ms per line */
	assert_int_equal(open_pool(&p, &o), 0);
	assert_true(strstr(warn_buf, "emulating slow media") != NULL);
	assert_int_equal(paste_pool__region(p, "r", 4096, (void **)&addr, &len), 0);
	t0 = paste_now_ns();
	for (int i = 0; i < 5; i++)
		paste_pool__persist(p, addr, 64); /* one line each */
	assert_true(paste_now_ns() - t0 >= 5 * 2100000ull);
	t0 = paste_now_ns();
	paste_pool__flush(p, addr + 1, 1024); /* 17 lines: the range is not line aligned */
	paste_pool__drain(p);
	assert_true(paste_now_ns() - t0 >= 2000000ull + 17 * 100000ull);
	paste_pool__close(&p);
	/* the environment sets it when the option is 0 */
	o.emu_fence_ns = o.emu_line_ns = 0;
	o.create = false;
	setenv("PASTE_EMU_FENCE_NS", "3000000", 1);
	assert_int_equal(open_pool(&p, &o), 0);
	unsetenv("PASTE_EMU_FENCE_NS");
	assert_int_equal(paste_pool__region(p, "r", 4096, (void **)&addr, &len), 0);
	t0 = paste_now_ns();
	paste_pool__persist(p, addr, 64);
	assert_true(paste_now_ns() - t0 >= 3000000ull);
	paste_pool__close(&p);
}

/* ---- the frame area as a UMEM ------------------------------------------------------------ */

static bool have_af_xdp(void)
{
	int fd = socket(AF_XDP, SOCK_RAW, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void test_check_umem_shm(void **state)
{
	struct paste_pool_opts o = create_opts(4 * MiB, 2048);
	struct paste_pool *p;

	if (!have_af_xdp())
		skip(); /* needs root / CAP_NET_RAW */
	o.check_umem = true;
	assert_int_equal(open_pool(&p, &o), 0);
	paste_pool__close(&p);
	o.create = false;
	assert_int_equal(open_pool(&p, &o), 0); /* existing pools are checked too */
	paste_pool__close(&p);
}

static void test_check_umem_ext4(void **state)
{
	struct paste_pool_opts o = create_opts(4 * MiB, 2048);
	struct paste_pool_info info;
	struct paste_pool *p;
	struct statfs fs;

	make_path("/var/tmp", "ext4");
	if (!have_af_xdp() || statfs("/var/tmp", &fs) || fs.f_type != EXT4_SUPER_MAGIC)
		skip();
	o.check_umem = true;
	assert_int_equal(open_pool(&p, &o), -EFAULT);
	assert_null(p);
	assert_error_has("/dev/shm");
	assert_error_has("EFAULT");
	assert_error_has(path);
	assert_false(file_exists(path)); /* the file this open created is removed again */
	/* The same file without the check opens (offline tools), with a durability warning. */
	o.check_umem = false;
	assert_int_equal(open_pool(&p, &o), 0);
	assert_true(strstr(warn_buf, "without DAX") != NULL);
	paste_pool__info(p, &info, sizeof(info));
	assert_false(info.is_pmem);
	paste_pool__close(&p);
	o.create = false;
	o.check_umem = true;
	assert_int_equal(open_pool(&p, &o), -EFAULT); /* an existing pool is kept */
	assert_true(file_exists(path));
	assert_int_equal(open_pool(&p, NULL), 0);
	paste_pool__info(p, &info, sizeof(info));
	assert_true(info.was_clean); /* the refused open did not mark it in use */
	paste_pool__close(&p);
}

/* ---- slices: one file, one pool per worker ------------------------------------------------ */

static struct paste_pool *open_slice(uint32_t slice, bool create, int want)
{
	struct paste_pool_opts o = create_opts(4 * MiB, 2048);
	struct paste_pool *p = NULL;

	o.create = create;
	o.sliced = true;
	o.slice = slice;
	assert_int_equal(open_pool(&p, &o), want);
	return p;
}

static void slice_region(struct paste_pool *p, const char *text, bool write)
{
	void *r;
	uint64_t n;

	assert_int_equal(paste_pool__region(p, "idx", 4096, &r, &n), 0);
	if (write) {
		strcpy(r, text);
		paste_pool__persist(p, r, strlen(text) + 1);
	} else {
		assert_string_equal(r, text);
	}
}

static void test_slices(void **state)
{
	struct paste_pool *s1 = open_slice(1, true, 0), *s0, *q;
	struct paste_pool_info info;

	paste_pool__info(s1, &info, sizeof(info));
	assert_int_equal(info.slice, 1);
	assert_int_equal(info.slice_stride, 4 * MiB);
	assert_true(info.size <= 4 * MiB);
	s0 = open_slice(0, true, 0); /* the other slice is free while slice 1 is open */
	slice_region(s1, "one", true);
	slice_region(s0, "zero", true);
	assert_ptr_not_equal(paste_pool__frames(s0), paste_pool__frames(s1));
	q = open_slice(1, true, -EBUSY); /* a slice is used by one open at a time */
	assert_null(q);
	assert_error_has("in use");
	assert_int_equal(open_pool(&q, NULL),
	                 -EBUSY); /* the whole file conflicts with its slices */
	assert_null(q);
	assert_null(open_slice(2, false, -ENOENT));
	assert_error_has("slice 2");
	paste_pool__close(&s1);
	paste_pool__close(&s0);

	s1 = open_slice(1, false, 0); /* reopened without create: each keeps its own contents */
	s0 = open_slice(0, false, 0);
	slice_region(s1, "one", false);
	slice_region(s0, "zero", false);
	paste_pool__info(s1, &info, sizeof(info));
	assert_true(info.was_clean);
	assert_false(info.created);
	paste_pool__close(&s0);
	paste_pool__close(&s1);
}

static void test_slices_of_plain_pool(void **state)
{
	struct paste_pool *p = create_pool(4 * MiB, 2048);

	paste_pool__close(&p);
	assert_null(open_slice(1, true, -EINVAL)); /* made by one process: not sliced */
	assert_error_has("without slices");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_create_and_reopen),
	    T(test_defaults_and_4k_frames),
	    T(test_crash_leaves_pool_unclean),
	    T(test_busy),
	    T(test_regions_persist),
	    T(test_region_too_big),
	    T(test_region_table_full),
	    T(test_region_bad_names),
	    T(test_wrong_frame_size),
	    T(test_truncated),
	    T(test_checksum_flip),
	    T(test_bad_magic),
	    T(test_wrong_version),
	    T(test_bad_geometry),
	    T(test_not_a_pool),
	    T(test_must_create_existing),
	    T(test_absent_without_create),
	    T(test_size_limits),
	    T(test_bad_opts),
	    T(test_default_pmem_ops),
	    T(test_flush_append),
	    T(test_emulated_media),
	    T(test_check_umem_shm),
	    T(test_check_umem_ext4),
	    T(test_slices),
	    T(test_slices_of_plain_pool),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
