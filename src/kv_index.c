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
#include "kv_internal.h"

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
/* The commit: one aligned 8-byte store, flushed (the caller's drain fences it). */
void pkv_kv_store(struct paste_kv *kv, uint64_t i, uint64_t w)
{
	__atomic_store_n(&kv->buckets[i], w, __ATOMIC_RELAXED);
	paste_pool__flush(kv->pool, &kv->buckets[i], sizeof(w));
}

/* A fence that runs no after-fence hooks (creation, recovery, compaction). */
void pkv_kv_fence(struct paste_kv *kv)
{
	paste_pool__persist(kv->pool, kv->super, sizeof(*kv->super));
}

uint32_t pkv_super_crc(const struct kv_super *s)
{
	struct kv_super t = *s;

	t.crc = 0;
	return paste_crc32c(0, &t, sizeof(t));
}

uint32_t pkv_entry_crc(const struct kv_entry *e)
{
	return paste_crc32c(0, e, offsetof(struct kv_entry, crc));
}

const void *pkv_ref_bytes(const struct paste_kv *kv, const struct paste_ref *r)
{
	return paste_pool__ref_ptr(kv->pool, r);
}

PASTE_EXPORT uint32_t paste_kv__data_crc(const void *key, size_t klen, const void *val, size_t vlen)
{
	return paste_crc32c(paste_crc32c(0, key, klen), val, vlen);
}

uint32_t pkv_data_crc(const struct paste_kv *kv, const struct paste_ref *key,
                      const struct paste_ref *val)
{
	return paste_kv__data_crc(pkv_ref_bytes(kv, key), key->len, pkv_ref_bytes(kv, val),
	                          val->len);
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
void pkv_kv_after_fence(void *arg)
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

bool pkv_entry_is(const struct paste_kv *kv, uint64_t s, uint64_t h, const void *key, size_t klen)
{
	const struct kv_entry *e = &kv->slots[s];

	return e->hash == h && e->key.len == klen && !memcmp(pkv_ref_bytes(kv, &e->key), key, klen);
}

/* Where a probe for a key ended: the bucket holding it, else the first tombstone and the empty. */
struct kv_probe {
	uint64_t found, tomb, empty;
};

/*
 * How much of a value a lookup prefetches: its first lines start the page walk and the stream,
 * the copy that follows takes the rest. More costs a lookup whose caller does not read the value
 * (paste-kv's SET looks the key up first): 2 KiB made SET's request handling 3 % slower than 256.
 */
#define KV_PREFETCH_VAL 256u

/*
 * Start loading the value of candidate slot @s while its key is compared: the value usually lies
 * in the same pool frame as the key (both came in one request), so the lines arrive behind the
 * key's miss instead of one more dependent miss after the lookup returns. Only the lookup that
 * hands the value out asks for it (paste_kv__get: its caller copies the value next).
 */
static void prefetch_val(const struct paste_kv *kv, uint64_t s)
{
	const struct paste_ref *v = &kv->slots[s].val;
	const uint8_t *p = pkv_ref_bytes(kv, v);
	uint32_t n = v->len < KV_PREFETCH_VAL ? v->len : KV_PREFETCH_VAL;

	for (uint32_t off = 0; p && off < n; off += 64)
		__builtin_prefetch(p + off);
}

static void kv_probe(const struct paste_kv *kv, uint64_t h, const void *key, size_t klen,
                     bool want_val, struct kv_probe *pr)
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
		} else if (w_tag(kv, w) == tag) {
			uint64_t s = w_cur(kv, w) - 1;

			if (want_val && kv->slots[s].hash == h)
				prefetch_val(kv, s);
			if (pkv_entry_is(kv, s, h, key, klen)) {
				pr->found = i;
				return;
			}
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
int pkv_kv_compact(struct paste_kv *kv)
{
	uint64_t nb = kv->nbuckets, e = 0, moved = 0, unfenced = 0, t0 = paste_now_ns();
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
	pkv_kv_fence(
	    kv); /* earlier updates durable: moved words need no prev (defensive: the source
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
			pkv_kv_fence(kv);
			unfenced = 0;
		}
		pkv_kv_store(kv, q, w_make(kv, w_tag(kv, w), 0, w_cur(kv, w)));
		unfenced++;
		moved++;
	}
	pkv_kv_fence(kv);
	for (uint64_t p = 0; p < nb; p++)
		if (kv->buckets[p] && !bit_test(assigned, p))
			pkv_kv_store(kv, p, 0);
	pkv_kv_fence(kv);
	free(assigned);
	pr_info(
	    "key-value index '%s': compacted %llu buckets (%llu keys, %llu moved, %llu tombstones cleared) in %.3f ms",
	    kv->name, (unsigned long long)nb, (unsigned long long)kv->keys,
	    (unsigned long long)moved, (unsigned long long)(kv->used - kv->keys),
	    (double)(paste_now_ns() - t0) / 1e6);
	kv->used = kv->used_hi = kv->keys;
	kv->compactions++;
	return 0;
}

/* Test hook (tests/unit/test_kv_index.c; in no header): compact now. */
int paste_kv__compact(struct paste_kv *kv);
int paste_kv__compact(struct paste_kv *kv)
{
	return pkv_kv_compact(kv);
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
		    "key-value index '%s': the %s reference ([%llu, +%u), flags %#x) is not a range inside one frame of the pool: put references made by paste_keep()",
		    kv->name, what, (unsigned long long)r->off, r->len, r->flags);
	if (f && f->state[frame] != PASTE_FRAME_KEPT)
		return paste_fail(
		    -EINVAL,
		    "key-value index '%s': the %s reference names frame %u, which is not kept: keep the bytes (paste_keep) before the put",
		    kv->name, what, frame);
	return 0;
}

static void kv_write_entry(struct paste_kv *kv, uint32_t s, uint64_t h, const struct paste_ref *key,
                           const struct paste_ref *val, uint32_t data_crc)
{
	struct kv_entry e = {.hash = h, .key = *key, .val = *val, .seq = kv->seq++};

	e.data_crc = data_crc;
	e.crc = pkv_entry_crc(&e);
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
	return paste_fail(
	    -ENOSPC,
	    "key-value index '%s' has no free entry slot: %zu replaced entries wait for a fence (paste_pool__drain) before their slots are reused",
	    kv->name, kv->pending.n + kv->zeroing.n);
}

/* Update the key in bucket @b: a new entry, then the word (with the prev still durable). */
static int kv_replace(struct paste_kv *kv, uint64_t b, uint64_t h, const struct paste_ref *key,
                      const struct paste_ref *val, uint32_t data_crc)
{
	uint64_t w = kv->buckets[b], cur = w_cur(kv, w);
	uint64_t prev = bit_test(kv->fresh, cur - 1) ? w_prev(kv, w) : cur;
	uint32_t s;

	if (!kv->nfree)
		return kv_no_slot(kv);
	s = slot_alloc(kv);
	kv_write_entry(kv, s, h, key, val, data_crc);
	pkv_kv_store(kv, b, w_make(kv, kv_tag(kv, h), prev, (uint64_t)s + 1));
	list_push(&kv->pending, (uint32_t)(cur - 1));
	bit_set(kv->fresh, s);
	list_push(&kv->fresh_list, s);
	return 0;
}

/* A new key, into the first tombstone or else the empty bucket its probe @pr ended at. */
static int kv_insert(struct paste_kv *kv, uint64_t h, const struct paste_ref *key,
                     const struct paste_ref *val, uint32_t data_crc, struct kv_probe pr)
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
		err = pkv_kv_compact(kv); /* tombstones fill the table: clear them */
		if (err)
			return err;
		kv_probe(kv, h, pkv_ref_bytes(kv, key), key->len, false, &pr);
	}
	b = pr.tomb != KV_NONE ? pr.tomb : pr.empty;
	if (b == KV_NONE) /* cannot happen: live keys <= capacity < max_used */
		return paste_fail(-ENOSPC, "key-value index '%s': no free bucket", kv->name);
	s = slot_alloc(kv);
	kv_write_entry(kv, s, h, key, val, data_crc);
	pkv_kv_store(kv, b, w_make(kv, kv_tag(kv, h), 0, (uint64_t)s + 1));
	kv->used += b == pr.empty;
	kv->used_hi += b == pr.empty;
	kv->keys++;
	bit_set(kv->fresh, s);
	list_push(&kv->fresh_list, s);
	return 0;
}

/*
 * paste_kv__put and __put_src: @kb NULL: the key is read, and the data CRC computed, from the pool
 * bytes; else @kb is the caller's copy of the key and @crc its data CRC (checked against the pool
 * bytes in builds without NDEBUG).
 */
static int kv_put(struct paste_kv *kv, const struct paste_ref *key, const struct paste_ref *val,
                  const void *kb, uint32_t crc, const char *fn)
{
	struct kv_probe pr;
	uint64_t h;
	int err;

	if (!kv)
		return paste_fail(-EINVAL, "%s: kv is NULL", fn);
	err = kv_check_ref(kv, key, "key");
	if (!err)
		err = kv_check_ref(kv, val, "value");
	if (!err)
		err = kv_reserve(kv);
	if (err)
		return err;
	if (!kb) {
		kb = pkv_ref_bytes(kv, key);
		crc = pkv_data_crc(kv, key, val);
	}
#ifndef NDEBUG /* a wrong CRC would make recovery drop the entry, a wrong key misfile it */
	else if (memcmp(kb, pkv_ref_bytes(kv, key), key->len) || crc != pkv_data_crc(kv, key, val))
		return paste_fail(
		    -EINVAL,
		    "%s: key-value index '%s': the key bytes or the data CRC %#x given are not those of the references (CRC %#x): pass the bytes that were kept and paste_kv__data_crc of them",
		    fn, kv->name, crc, pkv_data_crc(kv, key, val));
#endif
	h = kv_hash(kv->seed, kb, key->len);
	kv_probe(kv, h, kb, key->len, false, &pr);
	if (pr.found != KV_NONE)
		return kv_replace(kv, pr.found, h, key, val, crc);
	return kv_insert(kv, h, key, val, crc, pr);
}

PASTE_EXPORT int paste_kv__put(struct paste_kv *kv, const struct paste_ref *key,
                               const struct paste_ref *val)
{
	return kv_put(kv, key, val, NULL, 0, "paste_kv__put");
}

PASTE_EXPORT int paste_kv__put_src(struct paste_kv *kv, const struct paste_ref *key,
                                   const struct paste_ref *val, const void *key_bytes,
                                   uint32_t data_crc)
{
	if (!key_bytes)
		return paste_fail(-EINVAL, "paste_kv__put_src: key_bytes is NULL");
	return kv_put(kv, key, val, key_bytes, data_crc, "paste_kv__put_src");
}

PASTE_EXPORT int paste_kv__get(struct paste_kv *kv, const void *key, size_t klen,
                               struct paste_ref *val)
{
	struct kv_probe pr;
	uint64_t h;

	if (!kv || (!key && klen) || !val)
		return paste_fail(-EINVAL, "paste_kv__get: kv, key and val must not be NULL");
	h = kv_hash(kv->seed, key, klen);
	kv_probe(kv, h, key, klen, true, &pr);
	if (pr.found == KV_NONE) /* a miss is an answer: a fixed message, nothing printed */
		return paste_fail_const(-ENOENT, "paste_kv__get: no such key");
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
		pkv_kv_store(kv, b, 0);
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
	kv_probe(kv, kv_hash(kv->seed, key, klen), key, klen, false, &pr);
	if (pr.found == KV_NONE)
		return paste_fail_quiet(-ENOENT, "key-value index '%s': no such key to delete",
		                        kv->name);
	if (kv_reserve(kv))
		return paste_fail(-ENOMEM, "key-value index '%s': out of memory", kv->name);
	b = pr.found;
	w = kv->buckets[b];
	if (kv->buckets[next_bucket(kv, b)] != 0)
		pkv_kv_store(kv, b, KV_TOMB);
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

PASTE_EXPORT int paste_kv__info(const struct paste_kv *kv, struct paste_kv_info *out, size_t sz)
{
	struct paste_kv_info info = {0};

	if (!kv)
		return paste_fail(-EINVAL, "paste_kv__info: NULL index");
	info.keys = kv->keys;
	info.capacity = kv->capacity;
	info.recovered = kv->recovered;
	info.dropped = kv->dropped;
	return paste_info_copy(out, sz, &info, sizeof(info), "paste_kv__info");
}
