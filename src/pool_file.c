/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_file.c - the pool file below the pool (pool.c): opening and locking it, whole or one slice
 * (paste_pool_opts.sliced: one per worker process, docs/multicore.md), and the superblock's
 * checksum. A slice is a complete pool at slice x stride in the file, locked on its byte range
 * with an OFD lock, so the workers of one daemon share one file and never each other's slice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "internal.h"
#include "pool_priv.h"

uint32_t paste_pool__sb_crc(const struct pool_sb *sb)
{
	struct pool_sb tmp = *sb;

	tmp.crc = 0;
	return paste_crc32c(0, &tmp, sizeof(tmp));
}

bool paste_pool__sb_intact(const struct pool_sb *sb)
{
	return !memcmp(sb->magic, POOL_MAGIC, sizeof(sb->magic)) && sb->version == POOL_VERSION &&
	       sb->crc == paste_pool__sb_crc(sb);
}

#define POOL_SLICE_ALIGN (2ull << 20)

/* OFD write lock on [start, start + len) of the file (len 0: to the end, however large). */
static int pool_lock(struct paste_pool *p, uint64_t start, uint64_t len)
{
	struct flock fl = {
	    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)start, .l_len = (off_t)len};

	if (fcntl(p->fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return paste_fail(-EBUSY,
		                  "pool %s%s is in use: another open (in this process or another) "
		                  "holds it%s; close that one first",
		                  p->path, p->stride ? " (this slice)" : "",
		                  p->stride ? ", or the whole file" : " or one of its slices");
	return paste_fail(-errno, "cannot lock pool %s: %s", p->path, strerror(errno));
}

/* Sliced: the stride (slice 0's if it exists, else @cfg's size rounded up) and the offset. */
static int pool_slice_place(struct paste_pool *p, const struct pool_cfg *cfg)
{
	struct pool_sb sb0;

	p->stride = PASTE_ALIGN_UP(cfg->size, POOL_SLICE_ALIGN);
	if (pread(p->fd, &sb0, sizeof(sb0), 0) == (ssize_t)sizeof(sb0) &&
	    paste_pool__sb_intact(&sb0)) {
		if (!sb0.slice_stride)
			return paste_fail(-EINVAL,
			                  "pool %s was made without slices (by one process): it "
			                  "cannot be opened as slice %u; give the workers another "
			                  "pool path, or run one process on this one",
			                  p->path, cfg->slice);
		p->stride = sb0.slice_stride;
	}
	if (cfg->slice > (uint64_t)INT64_MAX / 2 / p->stride)
		return paste_fail(-EFBIG, "pool %s: slice %u at %llu-byte stride is too far",
		                  p->path, cfg->slice, (unsigned long long)p->stride);
	p->off = (uint64_t)cfg->slice * p->stride;
	return 0;
}

/* Sliced, after the lock: does the slice exist (a superblock copy there)? Sets p->created. */
static int pool_slice_exists(struct paste_pool *p, const struct pool_cfg *cfg)
{
	struct pool_sb a = {0}, b = {0};
	bool exists;

	if (pread(p->fd, &a, sizeof(a), (off_t)p->off) < 0 ||
	    pread(p->fd, &b, sizeof(b), (off_t)(p->off + POOL_SB_BACKUP_OFF)) < 0)
		return paste_fail(-errno, "cannot read pool %s: %s", p->path, strerror(errno));
	exists = !memcmp(a.magic, POOL_MAGIC, sizeof(a.magic)) ||
	         !memcmp(b.magic, POOL_MAGIC, sizeof(b.magic));
	if (exists && cfg->must_create)
		return paste_fail(-EEXIST,
		                  "slice %u of pool %s already exists and must_create is set",
		                  cfg->slice, p->path);
	if (!exists && !cfg->create)
		return paste_fail(-ENOENT,
		                  "slice %u of pool %s does not exist: create it (create option) "
		                  "or check the path and slice",
		                  cfg->slice, p->path);
	p->created = !exists;
	return 0;
}

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

/* A new pool on hugetlbfs (2 MiB pages, as device DAX maps them): the size must be a multiple of
 * the page size, or the kernel would silently round the file up to the next page. */
int paste_pool__hugetlb_check(struct paste_pool *p, uint64_t size)
{
	struct statfs fs;

	if (fstatfs(p->fd, &fs) || fs.f_type != HUGETLBFS_MAGIC || !fs.f_bsize)
		return 0;
	if (size % (uint64_t)fs.f_bsize)
		return paste_fail(
		    -EINVAL,
		    "cannot create pool %s: it is on hugetlbfs with %llu-byte pages and "
		    "its size %llu is not a multiple of that: choose a size of whole "
		    "pages (e.g. %llu)",
		    p->path, (unsigned long long)fs.f_bsize, (unsigned long long)size,
		    (unsigned long long)PASTE_ALIGN_UP(size, (uint64_t)fs.f_bsize));
	return 0;
}

/* Open (or create) the file and lock it (or its slice); sets p->fd and p->created. */
int paste_pool__open_file(struct paste_pool *p, const struct pool_cfg *cfg)
{
	const int rw = O_RDWR | O_CLOEXEC, excl = O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL;
	int err;

	p->fd = cfg->must_create && !cfg->sliced ? -1 : open(p->path, rw);
	if (p->fd < 0 && (cfg->must_create || (errno == ENOENT && cfg->create))) {
		p->fd = open(p->path, excl, 0600);
		p->created = p->fd >= 0 && !cfg->sliced;
		if (p->fd < 0 && errno == EEXIST && (!cfg->must_create || cfg->sliced))
			p->fd = open(p->path, rw); /* someone else created it meanwhile */
	}
	if (p->fd < 0 && errno == EEXIST)
		return paste_fail(-EEXIST,
		                  "pool %s already exists and must_create is set: remove "
		                  "the file or open it without must_create",
		                  p->path);
	if (p->fd < 0 && errno == ENOENT)
		return paste_fail(-ENOENT,
		                  "pool %s does not exist: create it (create option) or "
		                  "check the path",
		                  p->path);
	if (p->fd < 0)
		return paste_fail(-errno, "cannot open pool %s: %s", p->path, strerror(errno));
	if (!cfg->sliced)
		return pool_lock(p, 0, 0);
	err = pool_slice_place(p, cfg);
	if (!err)
		err = pool_lock(p, p->off, p->stride);
	return err ? err : pool_slice_exists(p, cfg);
}
