/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_wal_file_peer.c - src/apps/wal_file_peer.c, how a paste-wal worker reads a record of
 * another worker's log file (paste-wal --queues N --sync fdatasync): a file it does not own, which
 * the owner appends to, truncates (head moved, space punched) and cuts at recovery while the
 * reader holds offsets into it, starting from the first record and offset the owner published.
 * Every read must return the record's exact bytes or -ENOENT, never other bytes: reads in and out
 * of order past the reader's first 4096 offsets, the file growing after a walk, a truncation (the
 * reader forgets the offsets below the new first), a published offset that does not name the
 * published first record, a tail cut and written again, a flipped payload byte, a record larger
 * than the buffer, a file that does not exist yet.
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

static char dir[64], path[128];
static uint8_t buf[1 << 16];

static int setup(void **state)
{
	(void)state;
	if (unit_tmpdir_make(dir, sizeof(dir), "test_wal_file_peer"))
		return -1;
	snprintf(path, sizeof(path), "%s/wal.log.w1", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return unit_tmpdir_remove(dir);
}

/* File offset of record @seq in a log whose record 1 is at WF_DATA_OFF. */
static uint64_t off_of(uint64_t seq)
{
	return WF_DATA_OFF + rec_off(1, seq);
}

/* Append records [first, end) (the file is created with its 4 KiB head area when absent). */
static void log_append(uint64_t first, uint64_t end)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	if (!st.st_size)
		assert_int_equal(ftruncate(fd, WF_DATA_OFF), 0);
	assert_int_equal(rec_write(fd, first, end), 0);
	close(fd);
}

/* Read @seq through @p with the owner's published first record @first: its exact bytes. */
static void read_ok(struct tier_peer *p, uint64_t first, uint64_t seq)
{
	uint32_t len = 0;

	assert_int_equal(file_peer_read(p, path, first, off_of(first), seq, buf, sizeof(buf), &len),
	                 0);
	assert_int_equal(len, rec_len(seq));
	for (uint32_t i = 0; i < len; i++)
		if (buf[i] != rec_byte(seq, i))
			fail_msg("record %llu byte %u differs", (unsigned long long)seq, i);
}

static void read_gone(struct tier_peer *p, uint64_t first, uint64_t first_off, uint64_t seq)
{
	uint32_t len = 0;

	assert_int_equal(file_peer_read(p, path, first, first_off, seq, buf, sizeof(buf), &len),
	                 -ENOENT);
}

static void test_reads(void **state)
{
	struct tier_peer p = {.dirfd = -1, .fd = -1}, q = {.dirfd = -1, .fd = -1};
	int fd;

	(void)state;
	log_append(1, 5000); /* more offsets than the first 4096 the reader keeps */
	for (uint64_t s = 1; s < 5000; s += 7) /* in order */
		read_ok(&p, 1, s);
	for (uint64_t s = 4999; s >= 1 && s < 5000; s -= 97) /* backwards */
		read_ok(&p, 1, s);
	for (unsigned i = 0; i < 300; i++) /* at random */
		read_ok(&p, 1, 1 + (uint64_t)rand() % 4999);
	read_gone(&p, 1, off_of(1), 5000); /* not written (yet) */
	/* the owner appends after the reader walked to the end */
	log_append(5000, 5050);
	read_ok(&p, 1, 5049);
	/* truncation up to 2999: first 3000 published, the space before it punched */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, WF_DATA_OFF,
	                           (off_t)((off_of(3000) & ~4095ull) - WF_DATA_OFF)),
	                 0);
	close(fd);
	read_gone(&p, 3000, off_of(3000), 2999); /* below first */
	read_ok(&p, 3000, 4000);
	assert_int_equal(p.first, 3000); /* the offsets below it were dropped */
	read_ok(&p, 3000, 3000);
	read_ok(&q, 3000, 4500); /* a reader that starts now walks from the published offset */
	read_ok(&q, 3000, 3001);
	/* the published offset is not the published first record's (a store in between): gone,
	 * never another record's bytes; the next read with a matching pair reads */
	tier_peer_close(&q);
	q = (struct tier_peer){.dirfd = -1, .fd = -1};
	read_gone(&q, 3000, off_of(3001), 3005);
	read_ok(&q, 3000, 3005);
	/* recovery cuts a tail that was never published and the records are written again */
	assert_int_equal(truncate(path, (off_t)off_of(5040)), 0);
	read_gone(&p, 3000, off_of(3000), 5045);
	read_ok(&p, 3000, 5039);
	log_append(5040, 5050);
	read_ok(&p, 3000, 5045);
	tier_peer_close(&p);
	tier_peer_close(&q);
	assert_int_equal(p.fd, -1);
	assert_null(p.off);
}

static void test_corrupt(void **state)
{
	struct tier_peer p = {.dirfd = -1, .fd = -1};
	uint32_t len = 0;
	off_t at = (off_t)(off_of(60) + sizeof(struct wf_rec) + 3);
	uint8_t b;
	int fd;

	(void)state;
	log_append(1, 100);
	read_ok(&p, 1, 50);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	/* one payload byte of record 60 flipped: its CRC32C fails, its neighbours still read */
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
	read_gone(&p, 1, off_of(1), 60);
	read_ok(&p, 1, 59);
	read_ok(&p, 1, 61);
	/* a record larger than the reader's buffer is refused, not cut */
	assert_int_equal(file_peer_read(&p, path, 1, off_of(1), 2, buf, rec_len(2) - 1, &len),
	                 -ENOENT);
	tier_peer_close(&p);
}

static void test_no_file(void **state)
{
	struct tier_peer p = {.dirfd = -1, .fd = -1};

	(void)state;
	read_gone(&p, 1, off_of(1), 1); /* the owner has not made its file yet */
	assert_int_equal(p.fd, -1);     /* looked for again next time */
	log_append(1, 10);
	read_ok(&p, 1, 9);
	tier_peer_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
