/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_seg.h - the on-disk formats of paste-wal that the server and paste-wal-dump share: the
 * capacity tier's segment files (wal_tier.c: names, listing them, checking one record, the pool
 * region word that says where the tier starts) and the log file of --sync fdatasync (wal_file.c:
 * its super block and head slots). docs/paste-wal.md describes the formats.
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

/*
 * The log file of --sync fdatasync: [super, 4 KiB: magic, version, two head slots][records from
 * WF_DATA_OFF, each as above]. The current head slot (valid crc, higher gen) names the first live
 * record; the records after it run to the first one that does not check out (a torn tail).
 */
#define WF_MAGIC     "PWALLOG1"
#define WF_VERSION   1u
#define WF_DATA_OFF  4096u
#define WF_SLOT0_OFF 64u

struct wf_super {
	char magic[8];
	uint32_t version;
	uint32_t data_off;
	uint32_t crc; /* CRC32C of the fields above */
	uint32_t pad;
};

struct wf_slot {
	uint64_t gen;
	uint64_t first_seq;
	uint64_t start_off; /* file offset of record first_seq (or the end when empty) */
	uint32_t crc;       /* CRC32C of the fields above */
	uint32_t pad;
};

/* CRC32C of a head slot's fields. */
uint32_t wf_slot_crc(const struct wf_slot *s);

/* The current head of the log file @fd (@size bytes): *slot (0 or 1) and its contents in *head.
 * @return 0; -EBADMSG when the file is not a paste-wal log file (bad magic, version or checksum);
 * -EUCLEAN when no head slot is valid (corrupt). */
int wf_head_read(int fd, uint64_t size, struct wf_slot *head, unsigned *slot);

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
