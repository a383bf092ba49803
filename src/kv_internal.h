/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_internal.h - the key-value index's on-media format, volatile handle and small inline helpers,
 * shared by its two files: kv_index.c (slots, lookup, compaction, put/get/del/iterate) and
 * kv_recover.c (open/create, recovery at pool open, the index type the pool registers).
 * docs/kv-index.md describes the format.
 */
#ifndef PASTE_KV_INTERNAL_H
#define PASTE_KV_INTERNAL_H

#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"
#include "indexes.h"

/* ---- tunables (creation-time geometry; an existing index keeps the geometry it was made with) */

#ifndef PASTE_KV_LOAD_PERCENT
#define PASTE_KV_LOAD_PERCENT 75 /* live keys per bucket at full capacity, in percent */
#endif
#ifndef PASTE_KV_SLACK_SHIFT
#define PASTE_KV_SLACK_SHIFT 5 /* spare entry slots: capacity >> 5 (3 %) ... */
#endif
#ifndef PASTE_KV_SLACK_MIN
#define PASTE_KV_SLACK_MIN 32 /* ... + 32: room for replaced entries waiting out their fences */
#endif

/*
 * Region layout (offsets from the region start, host byte order, little-endian here):
 *
 *   0            struct kv_super: magic, version, geometry, hash seed, crc; written once
 *   4096         bucket array: nbuckets 8-byte words
 *   slots_off    entry arena: nslots 64-byte entries (cache-line aligned)
 *
 * A bucket word is 0 (empty), KV_TOMB (deleted), or a live word
 *
 *   bits [0, ib)       cur + 1:  the entry slot of this key
 *   bits [ib, 2 ib)    prev + 1: the slot this word replaced, 0 for none (recovery's fallback)
 *   bits [2 ib, 64)    tag:      the low 64 - 2 ib bits of the key hash (most probes stop here)
 *
 * ib (idx_bits) is the smallest width with nslots <= 2^ib - 2, so the cur field of a live word is
 * never all ones and a live word never equals KV_TOMB.
 */
#define KV_VERSION  1u
#define KV_HDR_SIZE 4096u
#define KV_ENTRY    64u
#define KV_TOMB     (~0ull)
#define KV_MAX_IB   28u /* leaves >= 8 tag bits; at most 2^28 - 2 slots */
#define KV_MIN_IB   2u
#define KV_MIN_BKTS 8u
#define KV_NONE     UINT64_MAX

/* Written once at creation: the magic last, in its own persist, so a magic implies the rest. */
struct kv_super {
	uint64_t magic;    /* PASTE_KV_MAGIC */
	uint32_t version;  /* KV_VERSION */
	uint32_t entry_sz; /* KV_ENTRY */
	uint64_t capacity; /* keys the index accepts */
	uint64_t nbuckets; /* >= capacity * 100 / PASTE_KV_LOAD_PERCENT, a multiple of 8 */
	uint64_t nslots;   /* capacity + slack */
	uint64_t buckets_off, slots_off;
	uint64_t hash_seed; /* random per index: keys from the network cannot aim at one bucket */
	uint32_t idx_bits;  /* ib */
	uint32_t crc;       /* CRC32C of this struct with crc = 0 */
};

/*
 * One entry: one cache line. Valid iff crc holds and data_crc matches the key and value bytes
 * (the latter checked at recovery only after an unclean shutdown). seq makes every entry ever
 * written differ from every other, so no mix of two writes of one slot can pass the crc.
 */
struct kv_entry {
	uint64_t hash; /* kv_hash(hash_seed, key bytes) */
	struct paste_ref key;
	struct paste_ref val;
	uint64_t seq;         /* write counter (diagnostics: larger is newer) */
	uint32_t data_crc;    /* CRC32C of the key bytes, then the value bytes */
	uint32_t reserved[2]; /* 0 */
	uint32_t crc;         /* CRC32C of the bytes before it */
};

_Static_assert(sizeof(struct kv_super) == 72, "kv super is 72 bytes");
_Static_assert(sizeof(struct kv_entry) == KV_ENTRY, "a kv entry is one cache line");
_Static_assert(sizeof(struct paste_ref) == 16, "a reference is 16 bytes");

/* A growable list of slot numbers (slots fit in 32 bits: KV_MAX_IB). */
struct kv_list {
	uint32_t *v;
	size_t n, cap;
};

/*
 * The volatile side, rebuilt at every open. Slot states: free (bit clear in used_map), live (named
 * by a bucket), pending (replaced or deleted since the last fence: still intact, its refs still
 * held), zeroing (zeroed and flushed at the last fence; reusable after the next). fresh marks the
 * slots written since the last fence: a word whose cur is fresh keeps its prev on a new update.
 */
struct paste_kv {
	struct paste_pool *pool;
	struct kv_super *super;
	uint64_t *buckets;
	struct kv_entry *slots;
	uint64_t capacity, nbuckets, nslots, seed;
	unsigned ib;
	uint64_t idx_mask;
	uint64_t max_used; /* non-empty buckets (live + tombstones) allowed before a compaction */
	uint64_t keys, used, seq;
	/*
	 * The most non-empty buckets media can show after a crash: non-empty at the last fence,
	 * plus every bucket filled from empty since (buckets emptied since may still be full on
	 * media). Kept below nbuckets, so recovery always finds an empty bucket to start from.
	 */
	uint64_t used_hi;
	uint64_t *used_map; /* bit per slot: not free (bits past nslots stay set) */
	uint64_t *fresh;    /* bit per slot: written since the last fence */
	uint64_t hint;      /* used_map words below it are full */
	uint64_t nfree;
	struct kv_list pending, zeroing, fresh_list;
	uint64_t recovered, dropped, compactions;
	char name[PASTE_POOL_REGION_NAME_MAX + 1];
};

/* Geometry of a new index, derived from its capacity. */
struct kv_geom {
	uint64_t capacity, nbuckets, nslots, slots_off, region_size;
	unsigned ib;
};

/* ---- small helpers ------------------------------------------------------------------------- */

static inline bool bit_test(const uint64_t *m, uint64_t i)
{
	return m[i / 64] >> (i % 64) & 1;
}

static inline void bit_set(uint64_t *m, uint64_t i)
{
	m[i / 64] |= 1ull << (i % 64);
}

static inline void bit_clear(uint64_t *m, uint64_t i)
{
	m[i / 64] &= ~(1ull << (i % 64));
}

static inline uint64_t nwords(uint64_t bits)
{
	return (bits + 63) / 64;
}

static inline void list_push(struct kv_list *l, uint32_t x)
{
	l->v[l->n++] = x; /* after list_reserve */
}

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
	return x << r | x >> (64 - r);
}

static inline uint64_t fmix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static inline uint64_t kv_home(const struct paste_kv *kv, uint64_t h)
{
	return (uint64_t)(((unsigned __int128)h * kv->nbuckets) >> 64);
}

static inline uint64_t kv_tag(const struct paste_kv *kv, uint64_t h)
{
	return h & (~0ull >> (2 * kv->ib));
}

static inline bool w_live(uint64_t w)
{
	return w != 0 && w != KV_TOMB;
}

static inline uint64_t w_cur(const struct paste_kv *kv, uint64_t w)
{
	return w & kv->idx_mask;
}

static inline uint64_t w_prev(const struct paste_kv *kv, uint64_t w)
{
	return w >> kv->ib & kv->idx_mask;
}

static inline uint64_t w_tag(const struct paste_kv *kv, uint64_t w)
{
	return w >> (2 * kv->ib);
}

static inline uint64_t w_make(const struct paste_kv *kv, uint64_t tag, uint64_t prev, uint64_t cur)
{
	return tag << (2 * kv->ib) | prev << kv->ib | cur;
}

static inline uint64_t next_bucket(const struct paste_kv *kv, uint64_t i)
{
	return ++i == kv->nbuckets ? 0 : i;
}

/* ---- shared between kv_index.c and kv_recover.c -------------------------------------------- */

void pkv_kv_store(struct paste_kv *kv, uint64_t i, uint64_t w);
void pkv_kv_fence(struct paste_kv *kv);
uint32_t pkv_super_crc(const struct kv_super *s);
uint32_t pkv_entry_crc(const struct kv_entry *e);
const void *pkv_ref_bytes(const struct paste_kv *kv, const struct paste_ref *r);
uint32_t pkv_data_crc(const struct paste_kv *kv, const struct paste_ref *key,
                      const struct paste_ref *val);
void pkv_kv_after_fence(void *arg);
bool pkv_entry_is(const struct paste_kv *kv, uint64_t s, uint64_t h, const void *key, size_t klen);
int pkv_kv_compact(struct paste_kv *kv);

#endif /* PASTE_KV_INTERNAL_H */
