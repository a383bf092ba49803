/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_wal_tier_peer.c - src/apps/wal_tier_peer.c, how a paste-wal worker reads a record another
 * worker destaged (paste-wal --queues N --tier-dir): from segment files it does not own, which the
 * owner appends to, cuts and deletes while the reader holds offsets into them. Every read must
 * return the record's exact bytes or -ENOENT, never other bytes: records of several segments in
 * and out of order, a segment growing after the reader walked it, the open segment deleted, a
 * segment cut (recovery) and written again, a flipped payload byte, a record in no segment, a
 * directory that does not exist yet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "wal.h"
#include "unit_tmpdir.h"
#include "unit_walrec.h"
#include "wal_seg.h"

static char dir[64];
static uint8_t buf[1 << 16];

static int setup(void **state)
{
	(void)state;
	return unit_tmpdir_make(dir, sizeof(dir), "test_wal_tier_peer");
}

static int teardown(void **state)
{
	(void)state;
	return unit_tmpdir_remove(dir);
}

/* Append records [first, end) to segment @sfirst (created if absent). @return its new size. */
static uint64_t seg_append(uint64_t sfirst, uint64_t first, uint64_t end)
{
	char name[64], path[160];
	struct stat st;
	int fd;

	seg_name(name, sizeof(name), sfirst);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	assert_true(fd >= 0);
	assert_int_equal(rec_write(fd, first, end), 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	return (uint64_t)st.st_size;
}

static void seg_path(char *path, size_t n, uint64_t sfirst)
{
	char name[64];

	seg_name(name, sizeof(name), sfirst);
	snprintf(path, n, "%s/%s", dir, name);
}

/* Read @seq through @p: its exact bytes, or fail the test. */
static void read_ok(struct tier_peer *p, uint64_t seq)
{
	uint32_t len = 0;

	assert_int_equal(tier_peer_read(p, dir, seq, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, rec_len(seq));
	for (uint32_t i = 0; i < len; i++)
		if (buf[i] != rec_byte(seq, i))
			fail_msg("record %llu byte %u differs", (unsigned long long)seq, i);
}

static void read_gone(struct tier_peer *p, uint64_t seq)
{
	uint32_t len = 0;

	assert_int_equal(tier_peer_read(p, dir, seq, buf, sizeof(buf), &len), -ENOENT);
}

static void test_reads(void **state)
{
	struct tier_peer p = {.dirfd = -1, .fd = -1};
	char path[160];

	(void)state;
	seg_append(1, 1, 200);
	seg_append(200, 200, 5000); /* more offsets than the first 4096 the reader keeps */
	seg_append(5000, 5000, 5100);
	for (uint64_t s = 1; s < 5100; s += 7) /* in order, across segments */
		read_ok(&p, s);
	for (uint64_t s = 5099; s >= 1 && s < 5100; s -= 97) /* backwards */
		read_ok(&p, s);
	for (unsigned i = 0; i < 300; i++) /* at random */
		read_ok(&p, 1 + (uint64_t)rand() % 5099);
	read_gone(&p, 5100); /* not written (yet) */
	read_gone(&p, 0);
	/* the owner appends to the last segment after the reader walked it */
	seg_append(5000, 5100, 5150);
	read_ok(&p, 5149);
	/* the open segment is deleted (a truncation): its records are gone from the directory; one
	 * already open may still read its old bytes, which are the record's own bytes */
	read_ok(&p, 250);
	seg_path(path, sizeof(path), 200);
	assert_int_equal(unlink(path), 0);
	read_ok(&p, 260);
	read_ok(&p, 100); /* another segment: the listing no longer has 200 */
	read_gone(&p, 300);
	/* recovery cuts a segment's tail (copies that were never switched), then destages them
	 * again: the reader's offsets past the cut fail their check, the rewrite reads right */
	read_ok(&p, 5140);
	seg_path(path, sizeof(path), 5000);
	assert_int_equal(truncate(path, (off_t)rec_off(5000, 5120)), 0);
	read_gone(&p, 5140);
	read_ok(&p, 5119);
	seg_append(5000, 5120, 5150);
	read_ok(&p, 5140);
	tier_peer_close(&p);
	assert_int_equal(p.fd, -1);
	assert_int_equal(p.dirfd, -1);
	assert_null(p.off);
}

static void test_corrupt(void **state)
{
	struct tier_peer p = {.dirfd = -1, .fd = -1};
	char path[160];
	uint8_t b;
	int fd;

	(void)state;
	seg_append(1000, 1000, 1100);
	read_ok(&p, 1050);
	seg_path(path, sizeof(path), 1000);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	/* one payload byte of record 1060 flipped: its CRC32C fails, the others still read */
	assert_int_equal(pread(fd, &b, 1, (off_t)(rec_off(1000, 1060) + sizeof(struct wf_rec) + 3)),
	                 1);
	b ^= 0x10;
	assert_int_equal(
	    pwrite(fd, &b, 1, (off_t)(rec_off(1000, 1060) + sizeof(struct wf_rec) + 3)), 1);
	close(fd);
	read_gone(&p, 1060);
	read_ok(&p, 1059);
	read_ok(&p, 1061);
	/* a record larger than the reader's buffer is refused, not cut */
	{
		uint32_t len = 0;

		assert_int_equal(tier_peer_read(&p, dir, 1002, buf, rec_len(1002) - 1, &len),
		                 -ENOENT);
	}
	tier_peer_close(&p);
}

static void test_no_dir(void **state)
{
	struct tier_peer p = {.dirfd = -1, .fd = -1};
	char sub[96];
	uint32_t len = 0;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/w1", dir);
	assert_int_equal(tier_peer_read(&p, sub, 1, buf, sizeof(buf), &len), -ENOENT);
	assert_int_equal(p.dirfd, -1); /* looked for again next time */
	tier_peer_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_dir, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
