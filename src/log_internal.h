/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log_internal.h - the persistent log's on-media format and volatile handle, shared by its two
 * files: log_index.c (format helpers, create/open, append, read, truncate) and log_recover.c
 * (recovery at pool open, and the index type the pool registers). docs/log-index.md describes the
 * format.
 */
#ifndef PASTE_LOG_INTERNAL_H
#define PASTE_LOG_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "indexes.h"

/*
 * Region layout (offsets from the region start, host byte order):
 *
 *   0    struct log_super: magic, version, geometry, crc; written once, when the log is created
 *   64   head slot 0  \ struct log_head {gen, seq, off, epoch, crc}: the persistent head, written
 *   128  head slot 1  / alternately; the slot with a good crc and the higher gen is current
 *   256  data area: data_size bytes (a multiple of 64) used as a ring of records
 *
 * Records start on a 64-byte boundary: a 32-byte struct log_rec, then nrefs struct paste_ref
 * (16 bytes each), then padding up to the next 64 bytes. A record never straddles the end of the
 * data area: when it does not fit there, a wrap marker (a struct log_rec of kind LOG_KIND_WRAP
 * carrying the seq of the record that follows) is written at the tail and the record goes to
 * offset 0. Records and markers carry the epoch they were written in; the epoch is bumped at every
 * recovery, so a chain can never run from a new record into a stale one left behind by a crash.
 */
#define LOG_VERSION   1u
#define LOG_ALIGN     64u
#define LOG_HDR_SIZE  256u
#define LOG_SLOT_OFF  64u
#define LOG_KIND_REC  0x4352u /* "RC" */
#define LOG_KIND_WRAP 0x5057u /* "WP" */
#define LOG_FIRST_SEQ 1u
#define LOG_RING_MIN  64u
#define LOG_MAX_DATA  (1ull << 38) /* the volatile index keeps offsets / 64 in 32 bits */

/* Written once at creation: the magic last, in its own persist, so a magic implies the rest. */
struct log_super {
	uint64_t magic;     /* PASTE_LOG_MAGIC */
	uint32_t version;   /* LOG_VERSION */
	uint32_t hdr_size;  /* LOG_HDR_SIZE: offset of the data area */
	uint64_t data_size; /* multiple of LOG_ALIGN, <= region size - hdr_size */
	uint32_t align;     /* LOG_ALIGN */
	uint32_t crc;       /* CRC32C of this struct with crc = 0 */
};

/* One head slot (each on its own cache line). An update writes the slot that is not current. */
struct log_head {
	uint64_t gen;   /* update counter, >= 1 in a written slot */
	uint64_t seq;   /* oldest live record; the next seq when the log is empty */
	uint64_t off;   /* where that record (or a wrap marker before it) starts in the data area */
	uint32_t epoch; /* current epoch: records are written with it; recovery bumps it */
	uint32_t crc;   /* CRC32C of this struct with crc = 0 */
};

/* A record header, or a wrap marker (kind LOG_KIND_WRAP, nrefs 0, len 0, pcrc 0). */
struct log_rec {
	uint64_t seq;
	uint32_t len;   /* payload bytes: the sum of the refs' lengths */
	uint16_t nrefs; /* 1..PASTE_LOG_MAX_REFS */
	uint16_t kind;  /* LOG_KIND_REC or LOG_KIND_WRAP */
	uint32_t epoch; /* epoch of the head when it was written */
	uint32_t pcrc;  /* CRC32C of the payload bytes, refs in order */
	uint32_t crc;   /* CRC32C of this header (crc = 0) followed by the refs */
	uint32_t reserved;
	struct paste_ref refs[];
};

_Static_assert(sizeof(struct log_super) == 32, "log super is 32 bytes");
_Static_assert(sizeof(struct log_head) == 32, "log head slot is 32 bytes");
_Static_assert(LOG_SLOT_OFF + 2 * LOG_ALIGN <= LOG_HDR_SIZE, "head slots fit in the header");
_Static_assert(sizeof(struct log_rec) == 32, "log record header is 32 bytes");
_Static_assert(sizeof(struct paste_ref) == 16, "a reference is 16 bytes");
_Static_assert(PASTE_LOG_MAX_REFS <= UINT16_MAX, "nrefs fits in 16 bits");

/*
 * The volatile side. Live records occupy [head_off, tail_off) of the data area, circularly, for
 * used bytes (wrap waste included); used tells a full ring (head == tail, used == data_size) from
 * an empty one. ring[seq & (ring_cap - 1)] is the offset / LOG_ALIGN of record seq, for
 * first_seq <= seq < next_seq.
 */
struct paste_log {
	struct paste_pool *pool;
	uint8_t *region; /* the log_super */
	uint8_t *data;   /* the data area */
	uint64_t region_size, data_size;
	unsigned cur; /* current head slot */
	uint64_t gen; /* its gen */
	uint32_t epoch;
	uint64_t head_off, tail_off, used;
	uint64_t first_seq, next_seq, bytes;
	uint32_t *ring;
	uint64_t ring_cap; /* power of two */
	uint64_t recovered, dropped;
	char name[PASTE_POOL_REGION_NAME_MAX + 1];
};

/* ---- format helpers (log_index.c) ---------------------------------------------------------- */

uint64_t plog_rec_size(unsigned nrefs);
uint32_t plog_hdr_crc(const struct log_rec *hd, const struct paste_ref *refs, unsigned nrefs);
uint32_t plog_rec_crc(const struct log_rec *r, unsigned nrefs);
uint32_t plog_payload_crc(const struct paste_pool *pool, const struct paste_ref *refs,
                          unsigned nrefs);
uint32_t plog_head_crc(const struct log_head *h);
uint32_t plog_super_crc(const struct log_super *s);
struct log_head *plog_log_slot(const struct paste_log *log, unsigned i);
struct log_rec *plog_log_at(const struct paste_log *log, uint64_t off);
uint64_t plog_log_count(const struct paste_log *log);
uint64_t plog_ring_off(const struct paste_log *log, uint64_t seq);
int plog_ring_reserve(struct paste_log *log);
void plog_ring_push(struct paste_log *log, uint64_t off);
void plog_head_write(struct paste_log *log, uint64_t seq, uint64_t off, uint32_t epoch);
uint64_t plog_log_span(const struct paste_log *log, uint64_t count);
void plog_log_free(void *p);
struct paste_log *plog_log_new(struct paste_pool *pool, const char *name, void *region,
                               uint64_t region_size, uint64_t data_size);

#endif /* PASTE_LOG_INTERNAL_H */
