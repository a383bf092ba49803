/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_file_peer.c - paste-wal --queues N --sync fdatasync: reading a record of another worker's
 * log file (--log-file PATH: worker K's is PATH.wK, wal_file.c), from whichever worker a client
 * lands on.
 *
 * The owner's record index is process memory, so a reader keeps its own: the file offsets of the
 * records from some record on, as far as it has walked their headers (struct wf_rec; the same
 * index as for another worker's segment files, struct tier_peer, wal_tier_peer.c). It starts
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
#include <unistd.h>

#include "wal.h"
#include "wal_seg.h"

/* Start the walk at record @first, which the owner says is at @first_off. */
static int restart(struct tier_peer *p, const char *path, uint64_t first, uint64_t first_off)
{
	if (p->fd < 0 && (p->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -ENOENT; /* the owner has not made it yet */
	return peer_index_start(p, first, first_off);
}

/* Records before @first are gone for good: forget their offsets (keeps the index small). */
static void rebase(struct tier_peer *p, uint64_t first)
{
	uint64_t drop = first - p->first;

	if (first <= p->first || drop >= p->noff || drop < p->noff / 2)
		return;
	memmove(p->off, p->off + drop, (p->noff - drop) * sizeof(*p->off));
	p->noff -= drop;
	p->first = first;
}

/* Copy record @seq (@first <= @seq < the owner's published next) whole into @buf (@cap bytes),
 * checked. @return 0 with *@len, or -ENOENT (gone, not there, or not checking out). */
int file_peer_read(struct tier_peer *p, const char *path, uint64_t first, uint64_t first_off,
                   uint64_t seq, void *buf, size_t cap, uint32_t *len)
{
	if (seq < first)
		return -ENOENT;
	for (int pass = 0; pass < 2; pass++) {
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
		if (!peer_index_read(p, seq, buf, cap, len))
			return 0;
	}
	return -ENOENT;
}
