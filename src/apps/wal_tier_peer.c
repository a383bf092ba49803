/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_tier_peer.c - paste-wal --queues N with --tier-dir: reading a record that another worker
 * destaged to its segment files (DIR/wK, wal_tier.c), from whichever worker a client lands on.
 *
 * The owner's record index is process memory, so a reader keeps its own: the segment it read last
 * (found by listing the directory: the one with the highest first seq <= the record) with the
 * offsets of its records as far as it has walked them (record headers, struct wf_rec). A segment
 * that starts at seq F always holds records F, F+1, ... with the lengths the records have, so a
 * walked offset stays right while the file exists; the owner only appends to it, cuts copies it
 * never switched (recovery) or deletes it whole (truncation). Every read is checked anyway: the
 * header must name the record and the CRC32C must match (seg_check), else the segment is looked up
 * and walked again once, and then the record counts as gone. The caller (wal_multi.c) re-checks
 * the owner's published bounds after the copy: a record truncated while it was copied is gone.
 * An open descriptor of a segment the owner deleted still reads its old bytes, which are the
 * record's bytes (a seq names one record for good) or fail the checks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal.h"
#include "wal_seg.h"

void tier_peer_close(struct tier_peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	if (p->dirfd >= 0)
		close(p->dirfd);
	free(p->off);
	*p = (struct tier_peer){.fd = -1, .dirfd = -1};
}

/*
 * Offsets from record @first at file offset @off of the open p->fd on (the walk starts there).
 * Shared with the reader of another worker's log file (wal_file_peer.c). @return 0 or -ENOMEM.
 */
int peer_index_start(struct tier_peer *p, uint64_t first, uint64_t off)
{
	if (!p->cap) {
		p->off = malloc(4096 * sizeof(*p->off));
		if (!p->off)
			return -ENOMEM;
		p->cap = 4096;
	}
	p->first = first;
	p->off[0] = off;
	p->noff = 1;
	return 0;
}

/* Open the segment that holds @seq, if any: offsets from scratch. */
static int locate(struct tier_peer *p, const char *dir, uint64_t seq)
{
	char name[64];
	uint64_t *v = NULL, first = 0;
	size_t n;
	int err;

	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->noff = 0;
	if (p->dirfd < 0 && (p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -ENOENT; /* the owner has not made it yet */
	err = seg_list(p->dirfd, &v, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n && v[i] <= seq; i++)
		first = v[i];
	free(v);
	if (!first)
		return -ENOENT;
	seg_name(name, sizeof(name), first);
	p->fd = openat(p->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (p->fd < 0)
		return -ENOENT; /* deleted since the listing */
	err = peer_index_start(p, first, 0);
	if (err) { /* the next read locates it again */
		close(p->fd);
		p->fd = -1;
	}
	return err;
}

/* Walk the open file's record headers up to record @seq (@size: the file's size now). @return
 * true when its offset is known. */
static bool walk(struct tier_peer *p, uint64_t seq, uint64_t size)
{
	uint64_t want = seq - p->first;

	while (p->noff <= want) {
		uint64_t o = p->off[p->noff - 1];
		uint32_t len =
		    seg_check(p->fd, size, o, p->first + p->noff - 1, false, NULL, 0, NULL);

		if (!len)
			return false;
		if (p->noff == p->cap) {
			uint64_t *n = realloc(p->off, p->cap * 2 * sizeof(*n));

			if (!n)
				return false;
			p->off = n;
			p->cap *= 2;
		}
		p->off[p->noff++] = o + len + SEG_REC_OVER;
	}
	return true;
}

/* Copy record @seq of the open p->fd (walked up to it) whole into @buf (@cap bytes), checked.
 * Shared with wal_file_peer.c. @return 0 with *@len, or -ENOENT. */
int peer_index_read(struct tier_peer *p, uint64_t seq, void *buf, size_t cap, uint32_t *len)
{
	struct stat st;
	uint32_t crc;

	if (fstat(p->fd, &st) || !walk(p, seq, (uint64_t)st.st_size))
		return -ENOENT;
	*len = seg_check(p->fd, (uint64_t)st.st_size, p->off[seq - p->first], seq, true, buf, cap,
	                 &crc);
	return *len ? 0 : -ENOENT;
}

int tier_peer_read(struct tier_peer *p, const char *dir, uint64_t seq, void *buf, size_t cap,
                   uint32_t *len)
{
	for (int pass = 0; pass < 2; pass++) {
		int err;

		if ((pass || p->fd < 0 || seq < p->first) && (err = locate(p, dir, seq)))
			return err;
		if (!peer_index_read(p, seq, buf, cap, len))
			return 0;
	}
	return -ENOENT;
}
