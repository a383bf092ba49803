/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_index.c - the persistent key-value index (include/paste/index.h, key-value part): a hash table
 * in one pool region whose entries name a key and a value kept in pool frames, updated out of place
 * and committed by one aligned 8-byte store, with one fence per batch (the caller's drain).
 *
 * The region holds a header, an open-addressing (linear probing) array of 8-byte bucket words and
 * an arena of 64-byte entries. A put writes a new entry into a free slot and flushes it, then
 * stores the bucket word and flushes it; nothing is fenced here. Because the word can reach media
 * before the entry, the word itself carries the entry it replaces (prev): recovery that finds the
 * word's entry invalid falls back to prev, which stays untouched until two fences have passed.
 * Freed slots are zeroed after the first fence and reused after the second, so a slot's stale bytes
 * can never pass for the entry a word names. docs/kv-index.md has the format, the crash argument
 * and the recovery algorithm.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"
#include "pool_internal.h"

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

static int list_reserve(struct kv_list *l, size_t more)
{
	size_t cap;
	uint32_t *v;

	if (l->n + more <= l->cap)
		return 0;
	cap = l->cap ? l->cap * 2 : 64;
	while (cap < l->n + more)
		cap *= 2;
	v = realloc(l->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->v = v;
	l->cap = cap;
	return 0;
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

/*
 * The key hash (part of the on-media format: entries store it, buckets are placed by it).
 * MurmurHash3 x64's word step and finaliser over 8-byte little-endian words, seeded per index.
 */
static uint64_t kv_hash(uint64_t seed, const void *key, size_t n)
{
	const uint64_t c1 = 0x87c37b91114253d5ull, c2 = 0x4cf5ad432745937full;
	const uint8_t *p = key;
	uint64_t h = seed, v;
	size_t left = n;

	for (; left >= 8; left -= 8, p += 8) {
		memcpy(&v, p, 8);
		h ^= rotl64(v * c1, 31) * c2;
		h = rotl64(h, 27) * 5 + 0x52dce729;
	}
	if (left) {
		v = 0;
		memcpy(&v, p, left);
		h ^= rotl64(v * c1, 31) * c2;
	}
	return fmix64(h ^ n);
}

/* Home bucket: the hash's high bits scaled to nbuckets (no power of two needed). */
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

/* The commit: one aligned 8-byte store, flushed (the caller's drain fences it). */
static void kv_store(struct paste_kv *kv, uint64_t i, uint64_t w)
{
	__atomic_store_n(&kv->buckets[i], w, __ATOMIC_RELAXED);
	paste_pool__flush(kv->pool, &kv->buckets[i], sizeof(w));
}

/* A fence that runs no after-fence hooks (creation, recovery, compaction). */
static void kv_fence(struct paste_kv *kv)
{
	paste_pool__persist(kv->pool, kv->super, sizeof(*kv->super));
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t super_crc(const struct kv_super *s)
{
	struct kv_super t = *s;

	t.crc = 0;
	return paste_crc32c(0, &t, sizeof(t));
}

static uint32_t entry_crc(const struct kv_entry *e)
{
	return paste_crc32c(0, e, offsetof(struct kv_entry, crc));
}

static const void *ref_bytes(const struct paste_kv *kv, const struct paste_ref *r)
{
	return paste_pool__ref_ptr(kv->pool, r);
}

static uint32_t data_crc(const struct paste_kv *kv, const struct paste_ref *key,
                         const struct paste_ref *val)
{
	uint32_t c = paste_crc32c(0, ref_bytes(kv, key), key->len);

	return paste_crc32c(c, ref_bytes(kv, val), val->len);
}

/* ---- slots --------------------------------------------------------------------------------- */

/* Take the lowest free slot (the arena fills from the front). The caller checked nfree. */
static uint32_t slot_alloc(struct paste_kv *kv)
{
	uint64_t nw = nwords(kv->nslots), i = kv->hint, b;

	while (i < nw && !~kv->used_map[i])
		i++;
	kv->hint = i;
	b = (uint64_t)__builtin_ctzll(~kv->used_map[i]);
	kv->used_map[i] |= 1ull << b;
	kv->nfree--;
	return (uint32_t)(i * 64 + b);
}

static void slot_release(struct paste_kv *kv, uint32_t s)
{
	bit_clear(kv->used_map, s);
	kv->nfree++;
	if (s / 64 < kv->hint)
		kv->hint = s / 64;
}

/* A replaced or deleted entry whose replacement is now durable: drop its refs, zero it. */
static void slot_retire(struct paste_kv *kv, uint32_t s)
{
	struct kv_entry *e = &kv->slots[s];

	paste_pool__ref_put(kv->pool, &e->key);
	paste_pool__ref_put(kv->pool, &e->val);
	memset(e, 0, sizeof(*e));
	paste_pool__flush(kv->pool, e, sizeof(*e));
}

static void fresh_clear(struct paste_kv *kv)
{
	for (size_t i = 0; i < kv->fresh_list.n; i++)
		bit_clear(kv->fresh, kv->fresh_list.v[i]);
	kv->fresh_list.n = 0;
}

/*
 * After every paste_pool__drain(): slots zeroed at the previous fence are durably zero now and go
 * back to the free map; slots replaced before this fence are retired (their refs released, their
 * bytes zeroed and flushed: durable at the next fence, when they are freed in turn).
 */
static void kv_after_fence(void *arg)
{
	struct paste_kv *kv = arg;
	struct kv_list t;

	for (size_t i = 0; i < kv->zeroing.n; i++)
		slot_release(kv, kv->zeroing.v[i]);
	kv->zeroing.n = 0;
	for (size_t i = 0; i < kv->pending.n; i++)
		slot_retire(kv, kv->pending.v[i]);
	t = kv->zeroing;
	kv->zeroing = kv->pending;
	kv->pending = t;
	fresh_clear(kv);
	kv->used_hi = kv->used;
}

/* ---- lookup -------------------------------------------------------------------------------- */

static bool entry_is(const struct paste_kv *kv, uint64_t s, uint64_t h, const void *key,
                     size_t klen)
{
	const struct kv_entry *e = &kv->slots[s];

	return e->hash == h && e->key.len == klen && !memcmp(ref_bytes(kv, &e->key), key, klen);
}

/* Where a probe for a key ended: the bucket holding it, else the first tombstone and the empty. */
struct kv_probe {
	uint64_t found, tomb, empty;
};

static void kv_probe(const struct paste_kv *kv, uint64_t h, const void *key, size_t klen,
                     struct kv_probe *pr)
{
	uint64_t i = kv_home(kv, h), tag = kv_tag(kv, h);

	pr->found = pr->tomb = pr->empty = KV_NONE;
	for (uint64_t n = 0; n < kv->nbuckets; n++, i = next_bucket(kv, i)) {
		uint64_t w = kv->buckets[i];

		if (w == 0) {
			pr->empty = i;
			return;
		}
		if (w == KV_TOMB) {
			if (pr->tomb == KV_NONE)
				pr->tomb = i;
		} else if (w_tag(kv, w) == tag && entry_is(kv, w_cur(kv, w) - 1, h, key, klen)) {
			pr->found = i;
			return;
		}
	}
}

/* ---- compaction ---------------------------------------------------------------------------- */

static uint64_t first_unassigned(const struct paste_kv *kv, const uint64_t *assigned, uint64_t i)
{
	while (bit_test(assigned, i))
		i = next_bucket(kv, i);
	return i;
}

/*
 * Move every live word to where re-inserting the keys in probe order would put it (never later in
 * its probe path), then empty every bucket nothing was assigned to. A word is first written at its
 * new place, and its old place is overwritten (by a later move) only after a fence, so a crash
 * leaves each key at its new place, or at both (recovery keeps the first in probe order: the same
 * entry). Tombstones all go, so the table is as if freshly filled. Fences are our own (no hooks).
 */
static int kv_compact(struct paste_kv *kv)
{
	uint64_t nb = kv->nbuckets, e = 0, moved = 0, unfenced = 0, t0 = mono_ns();
	uint64_t *assigned;

	while (e < nb && kv->buckets[e])
		e++;
	assigned = calloc(nwords(nb), sizeof(*assigned));
	if (!assigned || e == nb) {
		free(assigned);
		return paste_fail(-ENOMEM,
		                  "key-value index '%s': cannot compact the bucket array: %s",
		                  kv->name, e == nb ? "no empty bucket" : "out of memory");
	}
	kv_fence(kv); /* earlier updates durable: moved words need no prev (defensive: the source
	               * words keep theirs until the fences below order everything anyway) */
	fresh_clear(kv);
	for (uint64_t k = 1, p = e; k < nb; k++) {
		uint64_t w, q;

		p = next_bucket(kv, p);
		w = kv->buckets[p];
		if (!w_live(w))
			continue;
		q = first_unassigned(kv, assigned, kv_home(kv, kv->slots[w_cur(kv, w) - 1].hash));
		bit_set(assigned, q);
		if (q == p)
			continue;
		if (kv->buckets[q] != KV_TOMB && unfenced) { /* q still holds a moved word */
			kv_fence(kv);
			unfenced = 0;
		}
		kv_store(kv, q, w_make(kv, w_tag(kv, w), 0, w_cur(kv, w)));
		unfenced++;
		moved++;
	}
	kv_fence(kv);
	for (uint64_t p = 0; p < nb; p++)
		if (kv->buckets[p] && !bit_test(assigned, p))
			kv_store(kv, p, 0);
	kv_fence(kv);
	free(assigned);
	pr_info("key-value index '%s': compacted %llu buckets (%llu keys, %llu moved, %llu "
	        "tombstones cleared) in %.3f ms",
	        kv->name, (unsigned long long)nb, (unsigned long long)kv->keys,
	        (unsigned long long)moved, (unsigned long long)(kv->used - kv->keys),
	        (double)(mono_ns() - t0) / 1e6);
	kv->used = kv->used_hi = kv->keys;
	kv->compactions++;
	return 0;
}

/* Test hook (tests/unit/test_kv_index.c; in no header): compact now. */
int paste_kv__compact(struct paste_kv *kv);
int paste_kv__compact(struct paste_kv *kv)
{
	return kv_compact(kv);
}

/* ---- put / get / del / iterate ------------------------------------------------------------- */

static int kv_check_ref(const struct paste_kv *kv, const struct paste_ref *r, const char *what)
{
	const struct paste_frames *f = paste_pool__frame_alloc(kv->pool);
	uint32_t frame;

	if (!r)
		return paste_fail(-EINVAL, "key-value index '%s': the %s reference is NULL",
		                  kv->name, what);
	if (r->flags || !paste_pool__ref_in_frame(kv->pool, r, &frame))
		return paste_fail(
		    -EINVAL,
		    "key-value index '%s': the %s reference ([%llu, +%u), flags %#x) "
		    "is not a range inside one frame of the pool: put references made "
		    "by paste_keep()",
		    kv->name, what, (unsigned long long)r->off, r->len, r->flags);
	if (f && f->state[frame] != PASTE_FRAME_KEPT)
		return paste_fail(-EINVAL,
		                  "key-value index '%s': the %s reference names frame %u, which is "
		                  "not kept: keep the bytes (paste_keep) before the put",
		                  kv->name, what, frame);
	return 0;
}

static void kv_write_entry(struct paste_kv *kv, uint32_t s, uint64_t h, const struct paste_ref *key,
                           const struct paste_ref *val)
{
	struct kv_entry e = {.hash = h, .key = *key, .val = *val, .seq = kv->seq++};

	e.data_crc = data_crc(kv, key, val);
	e.crc = entry_crc(&e);
	memcpy(&kv->slots[s], &e, sizeof(e));
	paste_pool__flush(kv->pool, &kv->slots[s], sizeof(e));
}

/* Room for what an update records in volatile state, so nothing can fail after the commit. */
static int kv_reserve(struct paste_kv *kv)
{
	if (list_reserve(&kv->pending, 1) || list_reserve(&kv->fresh_list, 1))
		return paste_fail(-ENOMEM, "key-value index '%s': out of memory", kv->name);
	return 0;
}

static int kv_no_slot(const struct paste_kv *kv)
{
	return paste_fail(-ENOSPC,
	                  "key-value index '%s' has no free entry slot: %zu replaced entries "
	                  "wait for a fence (paste_pool__drain) before their slots are reused",
	                  kv->name, kv->pending.n + kv->zeroing.n);
}

/* Update the key in bucket @b: a new entry, then the word (with the prev still durable). */
static int kv_replace(struct paste_kv *kv, uint64_t b, uint64_t h, const struct paste_ref *key,
                      const struct paste_ref *val)
{
	uint64_t w = kv->buckets[b], cur = w_cur(kv, w);
	uint64_t prev = bit_test(kv->fresh, cur - 1) ? w_prev(kv, w) : cur;
	uint32_t s;

	if (!kv->nfree)
		return kv_no_slot(kv);
	s = slot_alloc(kv);
	kv_write_entry(kv, s, h, key, val);
	kv_store(kv, b, w_make(kv, kv_tag(kv, h), prev, (uint64_t)s + 1));
	list_push(&kv->pending, (uint32_t)(cur - 1));
	bit_set(kv->fresh, s);
	list_push(&kv->fresh_list, s);
	return 0;
}

/* A new key, into the first tombstone or else the empty bucket its probe @pr ended at. */
static int kv_insert(struct paste_kv *kv, uint64_t h, const struct paste_ref *key,
                     const struct paste_ref *val, struct kv_probe pr)
{
	uint64_t b;
	uint32_t s;
	int err;

	if (kv->keys >= kv->capacity)
		return paste_fail(-ENOSPC,
		                  "key-value index '%s' is full (%llu keys): use a larger capacity",
		                  kv->name, (unsigned long long)kv->keys);
	if (!kv->nfree)
		return kv_no_slot(kv);
	if (pr.tomb == KV_NONE && (pr.empty == KV_NONE || kv->used + 1 > kv->max_used ||
	                           kv->used_hi + 1 >= kv->nbuckets)) {
		err = kv_compact(kv); /* tombstones fill the table: clear them */
		if (err)
			return err;
		kv_probe(kv, h, ref_bytes(kv, key), key->len, &pr);
	}
	b = pr.tomb != KV_NONE ? pr.tomb : pr.empty;
	if (b == KV_NONE) /* cannot happen: live keys <= capacity < max_used */
		return paste_fail(-ENOSPC, "key-value index '%s': no free bucket", kv->name);
	s = slot_alloc(kv);
	kv_write_entry(kv, s, h, key, val);
	kv_store(kv, b, w_make(kv, kv_tag(kv, h), 0, (uint64_t)s + 1));
	kv->used += b == pr.empty;
	kv->used_hi += b == pr.empty;
	kv->keys++;
	bit_set(kv->fresh, s);
	list_push(&kv->fresh_list, s);
	return 0;
}

PASTE_EXPORT int paste_kv__put(struct paste_kv *kv, const struct paste_ref *key,
                               const struct paste_ref *val)
{
	struct kv_probe pr;
	const void *kb;
	uint64_t h;
	int err;

	if (!kv)
		return paste_fail(-EINVAL, "paste_kv__put: kv is NULL");
	err = kv_check_ref(kv, key, "key");
	if (!err)
		err = kv_check_ref(kv, val, "value");
	if (!err)
		err = kv_reserve(kv);
	if (err)
		return err;
	kb = ref_bytes(kv, key);
	h = kv_hash(kv->seed, kb, key->len);
	kv_probe(kv, h, kb, key->len, &pr);
	if (pr.found != KV_NONE)
		return kv_replace(kv, pr.found, h, key, val);
	return kv_insert(kv, h, key, val, pr);
}

PASTE_EXPORT int paste_kv__get(struct paste_kv *kv, const void *key, size_t klen,
                               struct paste_ref *val)
{
	struct kv_probe pr;
	uint64_t h;

	if (!kv || (!key && klen) || !val)
		return paste_fail(-EINVAL, "paste_kv__get: kv, key and val must not be NULL");
	h = kv_hash(kv->seed, key, klen);
	kv_probe(kv, h, key, klen, &pr);
	if (pr.found == KV_NONE)
		return -ENOENT; /* a miss is an answer, not an error: no message */
	*val = kv->slots[w_cur(kv, kv->buckets[pr.found]) - 1].val;
	return 0;
}

/*
 * Empty bucket @b (whose next bucket is empty, so no probe needs to pass it) and the tombstones
 * just before it, which then have an empty bucket next in turn. No live key's probe path crosses
 * any of them, so any subset of these stores reaching media is consistent.
 */
static void kv_empty_back(struct paste_kv *kv, uint64_t b)
{
	uint64_t n = 0;

	do {
		kv_store(kv, b, 0);
		kv->used--;
		b = b ? b - 1 : kv->nbuckets - 1;
	} while (++n < kv->nbuckets && kv->buckets[b] == KV_TOMB);
}

/* Delete: a tombstone in the bucket (one 8-byte store), or an empty bucket at a cluster's end. */
PASTE_EXPORT int paste_kv__del(struct paste_kv *kv, const void *key, size_t klen)
{
	struct kv_probe pr;
	uint64_t w, b;

	if (!kv || (!key && klen))
		return paste_fail(-EINVAL, "paste_kv__del: kv and key must not be NULL");
	kv_probe(kv, kv_hash(kv->seed, key, klen), key, klen, &pr);
	if (pr.found == KV_NONE)
		return -ENOENT;
	if (kv_reserve(kv))
		return -ENOMEM;
	b = pr.found;
	w = kv->buckets[b];
	if (kv->buckets[next_bucket(kv, b)] != 0)
		kv_store(kv, b, KV_TOMB);
	else
		kv_empty_back(kv, b);
	list_push(&kv->pending, (uint32_t)(w_cur(kv, w) - 1));
	kv->keys--;
	return 0;
}

PASTE_EXPORT int paste_kv__iterate(struct paste_kv *kv,
                                   int (*fn)(const struct paste_ref *key,
                                             const struct paste_ref *val, void *arg),
                                   void *arg)
{
	if (!kv || !fn)
		return paste_fail(-EINVAL, "paste_kv__iterate: kv and fn must not be NULL");
	for (uint64_t i = 0; i < kv->nbuckets; i++) {
		uint64_t w = kv->buckets[i];
		const struct kv_entry *e;
		int ret;

		if (!w_live(w))
			continue;
		e = &kv->slots[w_cur(kv, w) - 1];
		ret = fn(&e->key, &e->val, arg);
		if (ret)
			return ret;
	}
	return 0;
}

PASTE_EXPORT void paste_kv__info(const struct paste_kv *kv, struct paste_kv_info *info)
{
	memset(info, 0, sizeof(*info));
	info->keys = kv->keys;
	info->capacity = kv->capacity;
	info->recovered = kv->recovered;
	info->dropped = kv->dropped;
}

/* ---- open / create ------------------------------------------------------------------------- */

static void kv_free(void *p)
{
	struct paste_kv *kv = p;

	if (!kv)
		return;
	paste_pool__del_drain_hook(kv->pool, kv_after_fence, kv);
	free(kv->used_map);
	free(kv->fresh);
	free(kv->pending.v);
	free(kv->zeroing.v);
	free(kv->fresh_list.v);
	free(kv);
}

/* Volatile state for the index whose (checked) header is at @addr; every slot starts free. */
static struct paste_kv *kv_new(struct paste_pool *pool, const char *name, void *addr)
{
	struct kv_super *s = addr;
	struct paste_kv *kv = calloc(1, sizeof(*kv));
	uint64_t nw = nwords(s->nslots);

	if (!kv)
		return NULL;
	kv->pool = pool;
	kv->used_map = calloc(nw, sizeof(uint64_t));
	kv->fresh = calloc(nw, sizeof(uint64_t));
	if (!kv->used_map || !kv->fresh) {
		kv_free(kv);
		return NULL;
	}
	if (s->nslots % 64) /* the tail of the last word is never allocated */
		kv->used_map[nw - 1] = ~0ull << (s->nslots % 64);
	kv->super = s;
	kv->buckets = (uint64_t *)((uint8_t *)addr + s->buckets_off);
	kv->slots = (struct kv_entry *)((uint8_t *)addr + s->slots_off);
	kv->capacity = s->capacity;
	kv->nbuckets = s->nbuckets;
	kv->nslots = s->nslots;
	kv->seed = s->hash_seed;
	kv->ib = s->idx_bits;
	kv->idx_mask = (1ull << s->idx_bits) - 1;
	kv->max_used = s->nbuckets - s->nbuckets / 8;
	kv->nfree = s->nslots;
	kv->seq = 1;
	snprintf(kv->name, sizeof(kv->name), "%s", name);
	return kv;
}

/* Hook up to the pool: after-fence hook, then the handle (which the pool frees at close). */
static int kv_register(struct paste_kv *kv)
{
	int err = paste_pool__add_drain_hook(kv->pool, kv_after_fence, kv);

	if (err)
		return err;
	err = paste_pool__set_index(kv->pool, kv->name, kv, kv_free);
	if (err)
		paste_pool__del_drain_hook(kv->pool, kv_after_fence, kv);
	return err;
}

static int kv_geometry(const char *name, uint64_t capacity, struct kv_geom *g)
{
	uint64_t max_cap = (1ull << KV_MAX_IB) - 2 - PASTE_KV_SLACK_MIN;

	max_cap -= max_cap >> PASTE_KV_SLACK_SHIFT;
	if (capacity == 0 || capacity > max_cap)
		return paste_fail(-EINVAL,
		                  "key-value index '%s': capacity %llu is out of range: 1 to %llu "
		                  "keys",
		                  name, (unsigned long long)capacity, (unsigned long long)max_cap);
	g->capacity = capacity;
	g->nslots = capacity + (capacity >> PASTE_KV_SLACK_SHIFT) + PASTE_KV_SLACK_MIN;
	for (g->ib = KV_MIN_IB; (1ull << g->ib) - 2 < g->nslots;)
		g->ib++;
	g->nbuckets = (capacity * 100 + PASTE_KV_LOAD_PERCENT - 1) / PASTE_KV_LOAD_PERCENT;
	g->nbuckets = PASTE_ALIGN_UP(g->nbuckets < KV_MIN_BKTS ? KV_MIN_BKTS : g->nbuckets,
	                             (uint64_t)KV_MIN_BKTS);
	g->slots_off = PASTE_ALIGN_UP(KV_HDR_SIZE + g->nbuckets * 8, (uint64_t)4096);
	g->region_size = g->slots_off + g->nslots * KV_ENTRY;
	return 0;
}

static uint64_t new_seed(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), 0) == sizeof(seed))
		return seed;
	pr_warn("getrandom failed: the key-value hash seed falls back to the clock");
	return fmix64(mono_ns() ^ (uint64_t)(uintptr_t)&seed);
}

/* Write the header of a new index into @addr (the region's bytes past it are zero). */
static void kv_format(struct paste_pool *pool, void *addr, const struct kv_geom *g)
{
	struct kv_super *s = addr;

	*s = (struct kv_super){
	    .version = KV_VERSION,
	    .entry_sz = KV_ENTRY,
	    .capacity = g->capacity,
	    .nbuckets = g->nbuckets,
	    .nslots = g->nslots,
	    .buckets_off = KV_HDR_SIZE,
	    .slots_off = g->slots_off,
	    .hash_seed = new_seed(),
	    .idx_bits = g->ib,
	};
	s->magic = PASTE_KV_MAGIC; /* in the crc, but stored last */
	s->crc = super_crc(s);
	s->magic = 0;
	paste_pool__persist(pool, s, sizeof(*s));
	s->magic = PASTE_KV_MAGIC;
	paste_pool__persist(pool, s, sizeof(*s));
}

static int kv_create(struct paste_pool *pool, const char *name, void *addr, uint64_t len,
                     const struct kv_geom *g, bool fresh_region, struct paste_kv **kvp)
{
	struct paste_kv *kv;
	int err;

	if (len < g->region_size)
		return paste_fail(
		    -EINVAL,
		    "key-value index '%s': region of %llu bytes is too small for %llu "
		    "keys (%llu bytes needed): use another name",
		    name, (unsigned long long)len, (unsigned long long)g->capacity,
		    (unsigned long long)g->region_size);
	if (!fresh_region) { /* an old region without an index: its bytes are unknown */
		memset(addr, 0, g->region_size);
		paste_pool__persist(pool, addr, g->region_size);
	}
	kv_format(pool, addr, g);
	kv = kv_new(pool, name, addr);
	if (!kv)
		return paste_fail(-ENOMEM, "key-value index '%s': out of memory", name);
	err = kv_register(kv);
	if (err) {
		kv_free(kv);
		return err;
	}
	pr_info("key-value index '%s': created for %llu keys: %llu buckets, %llu entry slots, "
	        "%llu-byte region",
	        name, (unsigned long long)g->capacity, (unsigned long long)g->nbuckets,
	        (unsigned long long)g->nslots, (unsigned long long)g->region_size);
	*kvp = kv;
	return 0;
}

/* The region exists: return the index the pool recovered, or make one in an empty region. */
static int kv_open_existing(struct paste_pool *pool, const char *name, uint64_t capacity,
                            void *addr, uint64_t len, struct paste_kv **kvp)
{
	struct paste_kv *kv;
	struct kv_geom g;
	uint64_t magic;
	int err;

	memcpy(&magic, addr, sizeof(magic));
	if (magic == PASTE_KV_MAGIC) {
		kv = paste_pool__index(pool, name);
		if (!kv || (void *)kv->super != addr)
			return paste_fail(
			    -EIO,
			    "key-value index '%s' was not recovered when the pool was "
			    "opened (internal error): close and reopen the pool",
			    name);
		if (capacity > kv->capacity)
			return paste_fail(-EINVAL,
			                  "key-value index '%s' holds at most %llu keys, %llu were "
			                  "asked for: an index cannot grow; use another name",
			                  name, (unsigned long long)kv->capacity,
			                  (unsigned long long)capacity);
		*kvp = kv;
		return 0;
	}
	if (magic != 0)
		return paste_fail(-EINVAL,
		                  "region '%s' holds something other than a key-value index (magic "
		                  "%#llx): use another name for the index",
		                  name, (unsigned long long)magic);
	if (!capacity)
		return paste_fail(-ENOENT,
		                  "region '%s' exists but holds no key-value index yet: pass a "
		                  "capacity to create it",
		                  name);
	err = kv_geometry(name, capacity, &g);
	return err ? err : kv_create(pool, name, addr, len, &g, false, kvp);
}

PASTE_EXPORT int paste_kv__open(struct paste_pool *pool, const char *name, uint64_t capacity,
                                struct paste_kv **kvp)
{
	struct kv_geom g;
	uint64_t len;
	void *addr;
	int err;

	if (!pool || !name || !kvp)
		return paste_fail(-EINVAL, "paste_kv__open: pool, name and kv must not be NULL");
	*kvp = NULL;
	err = paste_pool__find_region(pool, name, &addr, &len);
	if (err != -ENOENT)
		return err ? err : kv_open_existing(pool, name, capacity, addr, len, kvp);
	if (!capacity)
		return paste_fail(-ENOENT,
		                  "pool has no key-value index '%s': pass a capacity to create it, "
		                  "or check the name",
		                  name);
	err = kv_geometry(name, capacity, &g);
	if (!err)
		err = paste_pool__region(pool, name, g.region_size, &addr, &len);
	if (err)
		return err;
	return kv_create(pool, name, addr, len, &g, true, kvp);
}

/* ---- recovery ------------------------------------------------------------------------------ */

static int kv_check_super(const char *name, const void *addr, uint64_t len)
{
	const struct kv_super *s = addr;
	uint64_t end;

	if (len < KV_HDR_SIZE || s->magic != PASTE_KV_MAGIC)
		return paste_fail(
		    -EBADMSG, "key-value index '%s': region of %llu bytes holds no index header",
		    name, (unsigned long long)len);
	if (s->version != KV_VERSION)
		return paste_fail(-EBADMSG,
		                  "key-value index '%s' has format version %u; this library reads "
		                  "version %u: use a matching libpaste-xdp or recreate the pool",
		                  name, s->version, KV_VERSION);
	if (s->crc != super_crc(s))
		return paste_fail(-EBADMSG,
		                  "key-value index '%s': header checksum mismatch: the index is "
		                  "corrupt; restore the pool file or recreate it",
		                  name);
	end = s->slots_off + s->nslots * KV_ENTRY;
	if (s->entry_sz != KV_ENTRY || s->idx_bits < KV_MIN_IB || s->idx_bits > KV_MAX_IB ||
	    s->nslots > (1ull << s->idx_bits) - 2 || s->capacity == 0 || s->capacity > s->nslots ||
	    s->nbuckets < KV_MIN_BKTS || s->capacity >= s->nbuckets - s->nbuckets / 8 ||
	    s->buckets_off < sizeof(*s) || s->buckets_off % 8 || s->slots_off % KV_ENTRY ||
	    s->slots_off < s->buckets_off + s->nbuckets * 8 || end > len)
		return paste_fail(
		    -EBADMSG,
		    "key-value index '%s': header geometry does not fit its %llu-byte "
		    "region: the index is corrupt; restore or recreate the pool",
		    name, (unsigned long long)len);
	return 0;
}

/* Is slot @s (from a word with tag @tag) a valid entry? @data: also check the key/value bytes. */
static bool entry_valid(const struct paste_kv *kv, uint64_t s, uint64_t tag, bool data)
{
	const struct kv_entry *e;

	if (s >= kv->nslots)
		return false;
	e = &kv->slots[s];
	if (e->crc != entry_crc(e) || kv_tag(kv, e->hash) != tag || e->reserved[0] ||
	    e->reserved[1] || e->key.flags || e->val.flags ||
	    !paste_pool__ref_in_frame(kv->pool, &e->key, NULL) ||
	    !paste_pool__ref_in_frame(kv->pool, &e->val, NULL))
		return false;
	return !data || e->data_crc == data_crc(kv, &e->key, &e->val);
}

/*
 * The slot word @w stands for after a crash: cur if valid, else prev (then *nw drops prev).
 * A valid cur that an earlier bucket already holds is a second copy (compaction): nothing.
 */
static uint64_t kv_resolve(const struct paste_kv *kv, uint64_t w, bool data, uint64_t *nw)
{
	uint64_t tag = w_tag(kv, w), cur = w_cur(kv, w), prev = w_prev(kv, w);

	*nw = w;
	if (cur && entry_valid(kv, cur - 1, tag, data))
		return bit_test(kv->used_map, cur - 1) ? KV_NONE : cur - 1;
	if (prev && entry_valid(kv, prev - 1, tag, data) && !bit_test(kv->used_map, prev - 1)) {
		*nw = w_make(kv, tag, 0, prev);
		return prev - 1;
	}
	return KV_NONE;
}

/*
 * May the key of slot @s stay in bucket @p, whose cluster starts after the empty bucket @gap? Its
 * home must be inside (gap, p], and no earlier bucket on its probe path may hold the same key (a
 * crash during a compaction, or a delete and re-insert in one batch, can leave it twice).
 */
static bool kv_keep_at(const struct paste_kv *kv, uint64_t p, uint64_t gap, uint64_t s)
{
	const struct kv_entry *e = &kv->slots[s];
	uint64_t nb = kv->nbuckets, home = kv_home(kv, e->hash), tag = kv_tag(kv, e->hash);
	const void *key = ref_bytes(kv, &e->key);

	if ((home + nb - gap) % nb == 0 || (home + nb - gap) % nb > (p + nb - gap) % nb)
		return false;
	for (uint64_t q = home; q != p; q = next_bucket(kv, q)) {
		uint64_t w = kv->buckets[q];

		if (w_live(w) && w_tag(kv, w) == tag &&
		    entry_is(kv, w_cur(kv, w) - 1, e->hash, key, e->key.len))
			return false;
	}
	return true;
}

/* One frame reference for the key and one for the value of slot @s. */
static int kv_take_refs(struct paste_kv *kv, uint64_t s)
{
	const struct kv_entry *e = &kv->slots[s];
	int err = paste_pool__ref_get(kv->pool, &e->key);

	if (!err) {
		err = paste_pool__ref_get(kv->pool, &e->val);
		if (err)
			paste_pool__ref_put(kv->pool, &e->key);
	}
	if (err)
		return paste_fail(
		    err,
		    "key-value index '%s': an entry names a frame the pool cannot "
		    "reference (%d): the pool's frame accounting is inconsistent; the "
		    "pool was not opened",
		    kv->name, err);
	return 0;
}

/* Put back the references taken for every live slot (a recovery that fails half way). */
static void kv_put_refs(struct paste_kv *kv)
{
	for (uint64_t s = 0; s < kv->nslots; s++) {
		if (!bit_test(kv->used_map, s))
			continue;
		paste_pool__ref_put(kv->pool, &kv->slots[s].key);
		paste_pool__ref_put(kv->pool, &kv->slots[s].val);
	}
}

/*
 * Decide bucket @p (live word @w) after a crash: keep it (taking its references), roll it back
 * to prev, or drop it. @return 0, or the error of a reference the pool refuses.
 */
static int kv_scan_one(struct paste_kv *kv, uint64_t p, uint64_t w, uint64_t gap, bool data)
{
	uint64_t nw, s = kv_resolve(kv, w, data, &nw);
	int err;

	if (s == KV_NONE || !kv_keep_at(kv, p, gap, s)) {
		kv_store(kv, p, KV_TOMB); /* a torn new key, or a stale copy: never acknowledged */
		kv->dropped++;
		return 0;
	}
	err = kv_take_refs(kv, s);
	if (err)
		return err;
	if (nw != w) { /* the update never fully reached media: back to the old entry */
		kv_store(kv, p, nw);
		kv->dropped++;
	}
	bit_set(kv->used_map, s);
	kv->keys++;
	if (kv->slots[s].seq >= kv->seq)
		kv->seq = kv->slots[s].seq + 1;
	return 0;
}

/*
 * Recovery is bound by cache misses: a bucket's entry lies anywhere in the arena, its key and
 * value anywhere in the frames. Fetch the entry of the bucket @ahead positions on, and (when the
 * payload is checked) the bytes of the one half as far, so that the misses overlap.
 */
static void kv_prefetch(const struct paste_kv *kv, uint64_t p, unsigned ahead, bool data)
{
	uint64_t w = kv->buckets[(p + ahead) % kv->nbuckets];
	const struct kv_entry *e;

	/* the word may be corrupt: slot numbers are 1..nslots (0 - 1 wraps and fails too) */
	if (w_live(w) && w_cur(kv, w) - 1 < kv->nslots)
		__builtin_prefetch(&kv->slots[w_cur(kv, w) - 1]);
	w = kv->buckets[(p + ahead / 2) % kv->nbuckets];
	if (!data || !w_live(w) || w_cur(kv, w) - 1 >= kv->nslots)
		return;
	e = &kv->slots[w_cur(kv, w) - 1];
	if (paste_pool__ref_in_frame(kv->pool, &e->key, NULL))
		__builtin_prefetch(ref_bytes(kv, &e->key));
	if (paste_pool__ref_in_frame(kv->pool, &e->val, NULL))
		__builtin_prefetch(ref_bytes(kv, &e->val));
}

/*
 * One pass over the buckets in cluster order (from just after an empty bucket, so every cluster is
 * seen from its start): validate each word's entry, fall back to prev, drop what cannot stay, take
 * the references of what stays. Marks the live slots in used_map. Repairs are flushed; the caller
 * fences.
 */
static int kv_scan(struct paste_kv *kv)
{
	bool data = !paste_pool__was_clean(kv->pool);
	uint64_t nb = kv->nbuckets, e = 0, gap;
	int err = 0;

	while (e < nb && kv->buckets[e])
		e++;
	if (e == nb)
		return paste_fail(-EBADMSG,
		                  "key-value index '%s': no empty bucket: the index is corrupt; "
		                  "restore or recreate the pool",
		                  kv->name);
	gap = e;
	for (uint64_t k = 1, p = e; k < nb && !err; k++) {
		uint64_t w;

		p = next_bucket(kv, p);
		kv_prefetch(kv, p, 16, data);
		w = kv->buckets[p];
		if (w == 0) {
			gap = p;
			continue;
		}
		kv->used++;
		if (w != KV_TOMB)
			err = kv_scan_one(kv, p, w, gap, data);
	}
	if (err)
		kv_put_refs(kv);
	return err;
}

/*
 * Zero every slot no bucket names (it may hold a stale valid-looking entry); the caller fences.
 * After a clean close with nothing dropped there is nothing to do: the close's fence retired
 * every replaced slot.
 */
static void kv_scrub(struct paste_kv *kv)
{
	static const struct kv_entry zero;
	bool all = !paste_pool__was_clean(kv->pool) || kv->dropped;

	for (uint64_t s = 0; s < kv->nslots && all; s++) {
		if (bit_test(kv->used_map, s) || !memcmp(&kv->slots[s], &zero, sizeof(zero)))
			continue;
		memset(&kv->slots[s], 0, sizeof(zero));
		paste_pool__flush(kv->pool, &kv->slots[s], sizeof(zero));
	}
	kv->nfree = kv->nslots - kv->keys;
	kv->hint = 0;
}

int paste_kv__recover(struct paste_pool *pool, const char *name, void *addr, uint64_t len)
{
	uint64_t t0 = mono_ns();
	struct paste_kv *kv;
	int err;

	err = kv_check_super(name, addr, len);
	if (err)
		return err;
	kv = kv_new(pool, name, addr);
	if (!kv)
		return paste_fail(-ENOMEM, "key-value index '%s': out of memory", name);
	err = kv_scan(kv);
	if (err)
		goto err_free;
	kv_scrub(kv);
	kv_fence(kv); /* the zeroed slots must be durable before the first batch reuses one: else a
	               * word could reach media over a stale entry that still checks out */
	kv->recovered = kv->keys;
	kv->used_hi = kv->used;
	if (kv->used >= kv->max_used && kv->used > kv->keys && kv_compact(kv))
		pr_warn("key-value index '%s': compaction failed; new keys may get -ENOSPC", name);
	err = kv_register(kv);
	if (err)
		goto err_put;
	paste_print(kv->dropped ? PASTE_LOG_WARN : PASTE_LOG_INFO,
	            "key-value index '%s': recovered %llu keys, dropped %llu torn or invalid "
	            "updates, in %.3f ms",
	            name, (unsigned long long)kv->recovered, (unsigned long long)kv->dropped,
	            (double)(mono_ns() - t0) / 1e6);
	return 0;

err_put:
	kv_put_refs(kv);
err_free:
	kv_free(kv);
	return err;
}
