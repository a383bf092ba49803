/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_wal_seg.c - src/apps/wal_seg.c, the on-disk side of paste-wal's capacity tier: segment
 * names, listing a directory (only well-formed names, in sequence order, not name order by
 * accident), and the record check recovery relies on: a good record passes with and without its
 * payload check, and every single-bit flip of header, payload or CRC, a wrong expected seq, a
 * record cut anywhere, and a payload that does not fit the copy buffer are refused.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <paste/pool.h>

#include "unit_tmpdir.h"
#include "wal_seg.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	return unit_tmpdir_make(dir, sizeof(dir), "test_wal_seg");
}

static int teardown(void **state)
{
	(void)state;
	return unit_tmpdir_remove(dir);
}

static void touch(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	close(fd);
}

static void test_names_and_list(void **state)
{
	char name[64];
	uint64_t *v = NULL;
	size_t n = 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	(void)state;
	assert_true(dfd >= 0);
	seg_name(name, sizeof(name), 42);
	assert_string_equal(name, "seg-00000000000000000042.pwt");
	assert_int_equal(seg_list(dfd, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	seg_name(name, sizeof(name), 1000000);
	touch(dfd, name);
	seg_name(name, sizeof(name), 7);
	touch(dfd, name);
	seg_name(name, sizeof(name), 18446744073709551615ull);
	touch(dfd, name);
	/* not segments: wrong suffix, short number, extra text, other files */
	touch(dfd, "seg-00000000000000000009.pwx");
	touch(dfd, "seg-9.pwt");
	touch(dfd, "seg-00000000000000000009.pwt.tmp");
	touch(dfd, "notes.txt");
	assert_int_equal(seg_list(dfd, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_true(v[0] == 7 && v[1] == 1000000 && v[2] == 18446744073709551615ull);
	free(v);
	close(dfd);
}

/* A file with records @first.. of @lens bytes each; @return its size. */
static uint64_t write_records(int fd, uint64_t first, const uint32_t *lens, unsigned n,
                              uint8_t *payload)
{
	uint64_t off = 0;

	for (unsigned i = 0; i < n; i++) {
		struct wf_rec h = {.magic = WF_REC_MAGIC, .len = lens[i], .seq = first + i};
		uint32_t crc;

		for (uint32_t k = 0; k < lens[i]; k++)
			payload[k] = (uint8_t)(k * 7 + i);
		crc = paste_crc32c(paste_crc32c(0, &h, sizeof(h)), payload, lens[i]);
		assert_int_equal(pwrite(fd, &h, sizeof(h), (off_t)off), sizeof(h));
		assert_int_equal(pwrite(fd, payload, lens[i], (off_t)(off + sizeof(h))), lens[i]);
		assert_int_equal(pwrite(fd, &crc, 4, (off_t)(off + sizeof(h) + lens[i])), 4);
		off += lens[i] + SEG_REC_OVER;
	}
	return off;
}

static void test_check(void **state)
{
	static const uint32_t lens[] = {1, 1280, 70000};
	uint8_t *buf = malloc(1 << 17), *payload = malloc(1 << 17);
	char path[96];
	uint64_t size, off2 = 1 + SEG_REC_OVER + 1280 + SEG_REC_OVER, rec2 = 70000 + SEG_REC_OVER;
	uint32_t crc = 0, want = 0;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/check", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0 && buf && payload);
	size = write_records(fd, 5, lens, 3, payload);
	assert_int_equal(size, off2 + rec2);

	/* good records: header only, payload in small pieces, and copied whole with its CRC */
	assert_int_equal(seg_check(fd, size, 0, 5, false, buf, 16, NULL), 1);
	assert_int_equal(seg_check(fd, size, 1 + SEG_REC_OVER, 6, true, buf, 100, NULL), 1280);
	assert_int_equal(seg_check(fd, size, off2, 7, true, buf, 1 << 17, &crc), 70000);
	for (uint32_t k = 0; k < 70000; k++)
		payload[k] = (uint8_t)(k * 7 + 2);
	want = paste_crc32c(0, payload, 70000);
	assert_int_equal(crc, want);
	assert_memory_equal(buf, payload, 70000);

	/* refused: another seq, a record cut at every length, a payload larger than the copy buffer
	 */
	assert_int_equal(seg_check(fd, size, off2, 8, true, buf, 1 << 17, NULL), 0);
	for (uint64_t cut = off2; cut < size; cut += 997)
		assert_int_equal(seg_check(fd, cut, off2, 7, true, buf, 1 << 17, NULL), 0);
	assert_int_equal(seg_check(fd, size - 1, off2, 7, false, buf, 16, NULL), 0);
	assert_int_equal(seg_check(fd, size, off2, 7, true, buf, 69999, &crc), 0);

	/* every bit of record 6 (header, payload, CRC) flipped in turn */
	for (uint64_t byte = 1 + SEG_REC_OVER; byte < off2; byte++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			uint8_t b, f;

			assert_int_equal(pread(fd, &b, 1, (off_t)byte), 1);
			f = (uint8_t)(b ^ (1u << bit));
			assert_int_equal(pwrite(fd, &f, 1, (off_t)byte), 1);
			assert_int_equal(
			    seg_check(fd, size, 1 + SEG_REC_OVER, 6, true, buf, 4096, NULL), 0);
			assert_int_equal(pwrite(fd, &b, 1, (off_t)byte), 1);
		}
		if (byte == 1 + SEG_REC_OVER + 40) /* then a sample: the test stays fast */
			byte += 97;
	}
	assert_int_equal(seg_check(fd, size, 1 + SEG_REC_OVER, 6, true, buf, 4096, NULL), 1280);
	close(fd);
	free(buf);
	free(payload);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_and_list),
	    cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
