/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_file_peer.c - paste-wal --queues N --sync fdatasync: reading a record of another worker's
 * log file (--log-file PATH: worker K's is PATH.wK, wal_file.c), from whichever worker a client
 * lands on.
 *
 * The owner's record index is process memory, so a reader keeps its own: the file offsets of the
 * records from some record on, as far as it has walked their headers (struct wf_rec). It starts
 * from the owner's published first record and that record's offset (wal_multi.c), and reads only
 * records below the published next, which the owner stores after the round's fdatasync. The owner
 * only appends to its file: a record below next keeps its offset for as long as the file exists
 * (truncation moves the head slot and punches the space before the new first record; recovery
 * cuts only a tail past every record the owner published). Every read is checked anyway: the
 * header must name the record and the CRC32C must match (seg_check), else the walk starts again
 * once from the owner's published first, and then the record counts as gone. The caller re-checks
 * the published first after the copy: a record truncated while it was copied is gone.
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

void file_peer_close(struct file_peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	free(p->off);
	*p = (struct file_peer){.fd = -1};
}

/* Start the walk at record @first, which the owner says is at @first_off. */
static int restart(struct file_peer *p, const char *path, uint64_t first, uint64_t first_off)
{
	if (p->fd < 0 && (p->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -ENOENT; /* the owner has not made it yet */
	if (!p->cap) {
		p->off = malloc(4096 * sizeof(*p->off));
		if (!p->off)
			return -ENOMEM;
		p->cap = 4096;
	}
	p->first = first;
	p->off[0] = first_off;
	p->noff = 1;
	return 0;
}

/* Records before @first are gone for good: forget their offsets (keeps the index small). */
static void rebase(struct file_peer *p, uint64_t first)
{
	uint64_t drop = first - p->first;

	if (first <= p->first || drop >= p->noff || drop < p->noff / 2)
		return;
	memmove(p->off, p->off + drop, (p->noff - drop) * sizeof(*p->off));
	p->noff -= drop;
	p->first = first;
}

/* Walk the headers up to record @seq. @return true when its offset is known. */
static bool walk(struct file_peer *p, uint64_t seq, uint64_t size)
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

/* Copy record @seq (@first <= @seq < the owner's published next) whole into @buf (@cap bytes),
 * checked. @return 0 with *@len, or -ENOENT (gone, not there, or not checking out). */
int file_peer_read(struct file_peer *p, const char *path, uint64_t first, uint64_t first_off,
                   uint64_t seq, void *buf, size_t cap, uint32_t *len)
{
	if (seq < first)
		return -ENOENT;
	for (int pass = 0; pass < 2; pass++) {
		struct stat st;
		uint32_t crc;
		int err;

		if (pass || p->fd < 0 || !p->noff || seq < p->first) {
			if (pass && p->fd >= 0) { /* a fresh descriptor too, in case */
				close(p->fd);
				p->fd = -1;
			}
			err = restart(p, path, first, first_off);
			if (err)
				return err;
		} else {
			rebase(p, first);
		}
		if (fstat(p->fd, &st) || !walk(p, seq, (uint64_t)st.st_size))
			continue;
		*len = seg_check(p->fd, (uint64_t)st.st_size, p->off[seq - p->first], seq, true,
		                 buf, cap, &crc);
		if (*len)
			return 0;
	}
	return -ENOENT;
}
