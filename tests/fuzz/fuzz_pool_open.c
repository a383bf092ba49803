/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_pool_open.c - libFuzzer target for paste_pool__open() on arbitrary file contents: the
 * superblock checks, region table checks and the index recovery they lead to.
 *
 * Input: [flags][file bytes]. The file is the bytes from offset 0, zero beyond them. Its size is
 * the bytes given (flags bit 2 clear) or the superblock's own pool_size field, capped at 4 MiB
 * (bit 2 set: the geometry then fits, so the checks after it are reached). Bits 0 and 1 recompute
 * the CRC of the primary and the backup superblock record, so mutations of the fields are
 * judged by the field checks rather than all stopping at the checksum.
 *
 * Checked: the open returns 0 or a negative errno and never crashes; an opened pool passes the
 * frame allocator audit, can take a new region, closes, and then reopens (what close wrote is
 * valid).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <paste/pool.h>

#include "fuzz.h"
#include "fuzz_pool_common.h"
#include "pool_internal.h"

#define MAX_FILE (4u << 20)
#define F_CRC1   0x01
#define F_CRC2   0x02
#define F_SIZE   0x04

static char path[64];

static void remove_pool(void)
{
	unlink(path);
}

static void write_file(const uint8_t *data, size_t n, uint8_t flags)
{
	static uint8_t head[2 * FZ_SB_SIZE];
	size_t size = n, h = n < sizeof(head) ? n : sizeof(head);
	uint64_t sb_size = 0;
	int fd;

	memset(head, 0, sizeof(head));
	memcpy(head, data, h);
	memcpy(&sb_size, head + FZ_SB_SIZE_OFF, sizeof(sb_size));
	if (flags & F_SIZE)
		size = sb_size < MAX_FILE ? (size_t)sb_size : MAX_FILE;
	if (flags & F_CRC1)
		fz_sb_fix_crc(head);
	if (flags & F_CRC2)
		fz_sb_fix_crc(head + FZ_SB_BACKUP);
	if (flags & (F_CRC1 | F_CRC2) && h < sizeof(head))
		h = sizeof(head);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FZ_CHECK(fd >= 0);
	FZ_CHECK(ftruncate(fd, (off_t)size) == 0);
	if (h > size)
		h = size;
	FZ_CHECK(pwrite(fd, head, h, 0) == (ssize_t)h);
	if (n > h && size > h)
		FZ_CHECK(pwrite(fd, data + h, (n < size ? n : size) - h, (off_t)h) ==
		         (ssize_t)((n < size ? n : size) - h));
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct paste_pool_opts o = {.sz = sizeof(o)};
	struct paste_pool *pool = NULL;
	struct fz f = {data, size};
	uint8_t flags = fz_u8(&f);
	void *addr;
	uint64_t len;
	int err;

	if (!path[0]) {
		fz_quiet();
		snprintf(path, sizeof(path), "/dev/shm/paste-fuzz-pool-%d.pool", (int)getpid());
		atexit(remove_pool);
	}
	write_file(f.p, f.n, flags);
	err = paste_pool__open(&pool, path, &o);
	FZ_CHECK(err <= 0 && err > -4096);
	FZ_CHECK((err == 0) == (pool != NULL));
	if (err)
		return 0;
	FZ_CHECK(paste_frames__audit(paste_pool__frame_alloc(pool)));
	err = paste_pool__region(pool, "fuzz.new", 4096, &addr, &len);
	FZ_CHECK(err == 0 || err == -ENOSPC || err == -EINVAL);
	paste_pool__close(&pool);
	FZ_CHECK(pool == NULL);
	err = paste_pool__open(&pool, path, &o);
	FZ_CHECK(err == 0); /* what close wrote must open again */
	paste_pool__close(&pool);
	return 0;
}
