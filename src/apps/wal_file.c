/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_file.c - paste-wal's fdatasync log file (--sync fdatasync --log-file PATH): the path for
 * users without NVMM. Records are appended with pwritev() as requests complete and the file is
 * fdatasync()ed once per round from the round hook, before any reply of the round leaves.
 *
 * File layout: [super, 4 KiB: magic, version, two head slots][records from WF_DATA_OFF]. A record
 * is struct wf_rec, the payload, then CRC32C(header + payload). The current head slot (valid crc,
 * higher gen) names the first live record (truncation moves it); recovery walks the records from
 * there and cuts the file at the first one that does not check out (a torn tail).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "wal.h"

/* ---- the fdatasync log file: recovery ---------------------------------------------------- */

static int wf_fail(struct wal_file *f, const char *what)
{
	int err = errno ? -errno : -EIO;

	fprintf(stderr, "paste-wal: log file %s: %s: %s\n", f->path, what, strerror(-err));
	return err;
}

static int wf_index_push(struct wal_file *f, uint64_t off, uint32_t len)
{
	uint64_t i = f->next_seq - f->base;

	if (i == f->cap) {
		uint64_t cap = f->cap ? f->cap * 2 : 1024;
		struct wf_index *n = realloc(f->idx, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		f->idx = n;
		f->cap = cap;
	}
	f->idx[i] = (struct wf_index){off, len};
	f->next_seq++;
	f->bytes += len;
	return 0;
}

/* Write head slot (the one not current) naming @first/@start_off; synced with the next round. */
static int wf_write_head(struct wal_file *f, uint64_t first, uint64_t start_off)
{
	struct wf_slot s = {.gen = f->gen + 1, .first_seq = first, .start_off = start_off};
	unsigned slot = f->gen ? f->slot ^ 1 : 0;

	s.crc = wf_slot_crc(&s);
	if (pwrite(f->fd, &s, sizeof(s), WF_SLOT0_OFF * (1 + slot)) !=
	    (ssize_t)sizeof(s)) /* 64, 128 */
		return wf_fail(f, "writing the head");
	f->gen = s.gen;
	f->slot = slot;
	f->dirty = true;
	return 0;
}

static int wf_create(struct wal_file *f)
{
	struct wf_super s = {.version = WF_VERSION, .data_off = WF_DATA_OFF};
	int dfd;
	char *dir, *slash;

	memcpy(s.magic, WF_MAGIC, 8);
	s.crc = paste_crc32c(0, &s, offsetof(struct wf_super, crc));
	if (ftruncate(f->fd, WF_DATA_OFF) || pwrite(f->fd, &s, sizeof(s), 0) != (ssize_t)sizeof(s))
		return wf_fail(f, "creating");
	f->gen = 0;
	if (wf_write_head(f, 1, WF_DATA_OFF) || fdatasync(f->fd))
		return wf_fail(f, "creating");
	/* The new file's name must be durable too. */
	dir = strdup(f->path);
	slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir);
	f->first_seq = f->next_seq = f->base = 1;
	f->end = WF_DATA_OFF;
	f->dirty = false;
	return 0;
}

/* Read the super and pick the current head slot (wal_seg.c, shared with paste-wal-dump). */
static int wf_load_head(struct wal_file *f, uint64_t size)
{
	struct wf_slot h;
	unsigned slot;
	int err = wf_head_read(f->fd, size, &h, &slot);

	if (err == -EBADMSG)
		fprintf(stderr,
		        "paste-wal: %s is not a paste-wal log file (bad magic, version or "
		        "checksum): give another --log-file, or move it away to start a new log\n",
		        f->path);
	else if (err)
		fprintf(stderr, "paste-wal: %s: no valid head slot: the file is corrupt\n",
		        f->path);
	if (err)
		return -EBADMSG;
	f->gen = h.gen;
	f->slot = slot;
	f->first_seq = f->next_seq = f->base = h.first_seq;
	f->end = h.start_off;
	return 0;
}

/* Check the record at f->end; on success index it and advance. @return 1 valid, 0 not. */
static int wf_check_one(struct wal_file *f, uint64_t size, uint8_t *buf, size_t bufsz)
{
	uint32_t len = seg_check(f->fd, size, f->end, f->next_seq, true, buf, bufsz, NULL);

	if (!len || wf_index_push(f, f->end, len))
		return 0;
	f->end += len + SEG_REC_OVER;
	return 1;
}

int wf_open(struct wal *w)
{
	struct wal_file *f = &w->file;
	struct stat st;
	int err;

	f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (f->fd < 0 || fstat(f->fd, &st))
		return wf_fail(f, "cannot open");
	if (st.st_size == 0)
		return wf_create(f);
	err = wf_load_head(f, (uint64_t)st.st_size);
	if (err)
		return err;
	while (wf_check_one(f, (uint64_t)st.st_size, w->scratch, sizeof(w->scratch)))
		f->recovered++;
	if (f->end < (uint64_t)st.st_size) {
		f->torn_bytes = (uint64_t)st.st_size - f->end;
		fprintf(stderr,
		        "paste-wal: log file %s: cutting a torn tail of %" PRIu64 " bytes after "
		        "record %" PRIu64 "\n",
		        f->path, f->torn_bytes, f->next_seq - 1);
		if (ftruncate(f->fd, (off_t)f->end) || fdatasync(f->fd))
			return wf_fail(f, "cutting the torn tail");
	} else if (f->recovered && !w->no_persist && fdatasync(f->fd)) {
		/* after a crash, records the last run wrote but had not synced (never acknowledged)
		 * are in the page cache only: durable before anyone reads them (--queues: other
		 * workers too, once this one publishes what it recovered) */
		return wf_fail(f, "syncing the recovered records");
	}
	return 0;
}

/* File offset of the first live record (the end when there is none). */
uint64_t wf_first_off(const struct wal_file *f)
{
	return f->first_seq < f->next_seq ? f->idx[f->first_seq - f->base].off : f->end;
}

/* ---- the fdatasync log file: append, truncate, read, sync -------------------------------- */

/* pwritev all of @iov[0..@n) at @off, in IOV_MAX batches, across short writes. */
int write_all(int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwritev(fd, iov, n < IOV_MAX ? n : IOV_MAX, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (uint64_t)w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int wf_append(struct wal *w, const struct paste_ref *refs, unsigned n, uint64_t len, uint64_t *seq)
{
	struct wal_file *f = &w->file;
	struct wf_rec h = {.magic = WF_REC_MAGIC, .len = (uint32_t)len, .seq = f->next_seq};
	struct iovec iov[PASTE_LOG_MAX_REFS + 2];
	uint32_t crc = paste_crc32c(0, &h, sizeof(h));
	int err;

	iov[0] = (struct iovec){&h, sizeof(h)};
	for (unsigned i = 0; i < n; i++) {
		void *p = paste_pool__ref_ptr(w->pool, &refs[i]);

		crc = paste_crc32c(crc, p, refs[i].len);
		iov[i + 1] = (struct iovec){p, refs[i].len};
	}
	iov[n + 1] = (struct iovec){&crc, sizeof(crc)};
	err = write_all(f->fd, iov, (int)n + 2, f->end);
	if (!err)
		err = wf_index_push(f, f->end, (uint32_t)len);
	if (err) {
		if (ftruncate(f->fd, (off_t)f->end)) /* drop what was half written */
			err = -EIO;
		fprintf(stderr, "paste-wal: log file %s: append failed: %s\n", f->path,
		        strerror(-err));
		return err == -EDQUOT ? -ENOSPC : err;
	}
	*seq = f->next_seq - 1;
	f->end += sizeof(h) + len + 4;
	f->dirty = true;
	return 0;
}

int wf_truncate(struct wal_file *f, uint64_t upto)
{
	uint64_t last = upto < f->next_seq ? upto : f->next_seq - 1;
	uint64_t start;
	int err;

	if (upto < f->first_seq || last < f->first_seq)
		return 0;
	start = last + 1 < f->next_seq ? f->idx[last + 1 - f->base].off : f->end;
	err = wf_write_head(f, last + 1, start);
	if (err)
		return err;
	for (uint64_t s = f->first_seq; s <= last; s++)
		f->bytes -= f->idx[s - f->base].len;
	f->first_seq = last + 1;
	f->punch_end = start & ~4095ull;
	if (f->first_seq - f->base > (f->next_seq - f->base) / 2) { /* compact the index */
		memmove(f->idx, f->idx + (f->first_seq - f->base),
		        (f->next_seq - f->first_seq) * sizeof(*f->idx));
		f->base = f->first_seq;
	}
	return 0;
}

/* The round's fdatasync; then give the space of truncated records back to the file system. */
int wf_sync(struct wal *w)
{
	struct wal_file *f = &w->file;

	if (f->err) /* once failed, never "synced" again: the kernel may have dropped the pages */
		return f->err;
	if (!f->dirty)
		return 0;
	f->dirty = false;
	if (!w->no_persist) {
		if (fdatasync(f->fd))
			return f->err = -errno;
		w->n.fsyncs++;
	}
	if (f->punch_end > WF_DATA_OFF) {
		fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, WF_DATA_OFF,
		          (off_t)(f->punch_end - WF_DATA_OFF)); /* best effort */
		f->punch_end = 0;
	}
	return 0;
}
