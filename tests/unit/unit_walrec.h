/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * unit_walrec.h - paste-wal records in the format of its log file and segment files (wal_seg.h:
 * header, payload, CRC32C) for the unit tests of the peer readers: record @seq's length and bytes
 * are a function of the seq alone (a seq names one record), so a read can be checked exactly.
 */
#ifndef PASTE_UNIT_WALREC_H
#define PASTE_UNIT_WALREC_H

#include <stdint.h>
#include <unistd.h>

#include <paste/paste.h>

#include "wal_seg.h"

static inline uint32_t rec_len(uint64_t seq)
{
	return (uint32_t)(1 + (seq * 2654435761u) % 3000);
}

static inline uint8_t rec_byte(uint64_t seq, uint32_t i)
{
	return (uint8_t)(seq * 31 + i * 7);
}

/* Write records [first, end) to @fd at its file position. @return 0, or -1 on a short write. */
static inline int rec_write(int fd, uint64_t first, uint64_t end)
{
	uint8_t p[3000];

	for (uint64_t s = first; s < end; s++) {
		struct wf_rec h = {.magic = WF_REC_MAGIC, .len = rec_len(s), .seq = s};
		uint32_t crc;

		for (uint32_t i = 0; i < h.len; i++)
			p[i] = rec_byte(s, i);
		crc = paste_crc32c(paste_crc32c(0, &h, sizeof(h)), p, h.len);
		if (write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
		    write(fd, p, h.len) != (ssize_t)h.len || write(fd, &crc, 4) != 4)
			return -1;
	}
	return 0;
}

/* Offset of record @seq from the start of record @from, in a file of consecutive records. */
static inline uint64_t rec_off(uint64_t from, uint64_t seq)
{
	uint64_t off = 0;

	for (uint64_t s = from; s < seq; s++)
		off += rec_len(s) + SEG_REC_OVER;
	return off;
}

#endif
