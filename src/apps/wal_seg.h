/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_seg.h - the on-disk parts of paste-wal's capacity tier that the server (wal_tier.c) and
 * paste-wal-dump share: segment file names, listing them, checking one record, and the pool region
 * word that says where the tier starts. docs/paste-wal.md describes the format.
 */
#ifndef PASTE_WAL_SEG_H
#define PASTE_WAL_SEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A record (the log file's format too): this header, len payload bytes, CRC32C(header + payload).
 */
struct wf_rec {
	uint32_t magic;
	uint32_t len;
	uint64_t seq;
};

#define WF_REC_MAGIC 0x31525750u /* "PWR1" */
#define WF_REC_MAX   (1u << 30)
#define SEG_REC_OVER (sizeof(struct wf_rec) + 4u) /* header + CRC trailer per record */

/* The pool region "<log>.tier" (4 KiB): @first is the tier's first record, 0 while it is empty. */
#define TIER_MAGIC       0x3152454954574150ull /* "PAWTIER1" */
#define TIER_REGION_SIZE 4096u
struct tier_region {
	uint64_t magic;
	uint64_t first; /* one aligned 8-byte store switches it */
};

/* "seg-<first seq, 20 digits>.pwt" into @buf (>= 29 bytes). */
void seg_name(char *buf, size_t n, uint64_t first);

/* The first seqs of the segment files in directory @dirfd, sorted (*out: malloc'ed).
 * @return 0 or -errno. */
int seg_list(int dirfd, uint64_t **out, size_t *n);

/*
 * Check record @seq at @off of @fd (@size bytes): header, and with @payload its CRC32C (read
 * through @buf of @bufsz bytes; with @copy non-NULL the payload must fit @bufsz and is left in
 * @buf, *copy = its CRC32C alone). @return the payload length, or 0 when it does not check out.
 */
uint32_t seg_check(int fd, uint64_t size, uint64_t off, uint64_t seq, bool payload, void *buf,
                   size_t bufsz, uint32_t *copy);

#endif /* PASTE_WAL_SEG_H */
