/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_recover.c - the key-value index's lifecycle: geometry and creation (paste_kv__open through the
 * shared skeleton of index.c), and recovery, run by paste_pool__open() for every region that starts
 * with PASTE_KV_MAGIC (through paste_kv_index_type, registered by pool_open.c): validate the
 * header, resolve every bucket to its newest valid entry, roll torn updates back, scrub, maybe
 * compact. See docs/kv-index.md and docs/recovery.md.
 */
#include "kv_internal.h"

/* ---- open / create ------------------------------------------------------------------------- */

static void kv_free(void *p)
{
	struct paste_kv *kv = p;

	if (!kv)
		return;
	paste_pool__del_drain_hook(kv->pool, pkv_kv_after_fence, kv);
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
	int err = paste_pool__add_drain_hook(kv->pool, pkv_kv_after_fence, kv);

	if (err)
		return err;
	err = paste_pool__set_index(kv->pool, kv->name, kv, &paste_kv_index_type);
	if (err)
		paste_pool__del_drain_hook(kv->pool, pkv_kv_after_fence, kv);
	return err;
}

static int kv_geometry(const char *name, uint64_t capacity, struct kv_geom *g)
{
	uint64_t max_cap = (1ull << KV_MAX_IB) - 2 - PASTE_KV_SLACK_MIN;

	max_cap -= max_cap >> PASTE_KV_SLACK_SHIFT;
	if (capacity == 0 || capacity > max_cap)
		return paste_fail(
		    -EINVAL, "key-value index '%s': capacity %llu is out of range: 1 to %llu keys",
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
	return fmix64(paste_now_ns() ^ (uint64_t)(uintptr_t)&seed);
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
	s->crc = pkv_super_crc(s);
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
		    "key-value index '%s': region of %llu bytes is too small for %llu keys (%llu bytes needed): use another name",
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
	pr_info(
	    "key-value index '%s': created for %llu keys: %llu buckets, %llu entry slots, %llu-byte region",
	    name, (unsigned long long)g->capacity, (unsigned long long)g->nbuckets,
	    (unsigned long long)g->nslots, (unsigned long long)g->region_size);
	*kvp = kv;
	return 0;
}

PASTE_EXPORT int paste_kv__open(struct paste_kv **kvp, struct paste_pool *pool, const char *name,
                                const struct paste_kv_opts *opts)
{
	struct paste_kv_opts o = {0};
	struct paste_kv *kv;
	struct kv_geom g;
	uint64_t len, capacity;
	void *addr;
	int err;

	if (!pool || !name || !kvp)
		return paste_fail(-EINVAL, "paste_kv__open: pool, name and kv must not be NULL");
	*kvp = NULL;
	if (opts && (err = PASTE_OPTS_COPY(&o, opts, capacity, "paste_kv__open")))
		return err;
	capacity = o.capacity;
	err = paste_index__find(pool, &paste_kv_index_type, name, capacity != 0, &addr, &len,
	                        (void **)&kv);
	if (err == -ENOENT && capacity) { /* no region yet: one of the size the geometry needs */
		err = kv_geometry(name, capacity, &g);
		if (!err)
			err = paste_pool__region(pool, name, g.region_size, &addr, &len);
		return err ? err : kv_create(pool, name, addr, len, &g, true, kvp);
	}
	if (err)
		return err;
	if (kv) {
		if (capacity > kv->capacity)
			return paste_fail(
			    -EINVAL,
			    "key-value index '%s' holds at most %llu keys, %llu were asked for: an index cannot grow; use another name",
			    name, (unsigned long long)kv->capacity, (unsigned long long)capacity);
		*kvp = kv;
		return 0;
	}
	err = kv_geometry(name, capacity, &g); /* an empty region made before */
	return err ? err : kv_create(pool, name, addr, len, &g, false, kvp);
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
		return paste_fail(
		    -EBADMSG,
		    "key-value index '%s' has format version %u; this library reads version %u: use a matching libpaste-xdp or recreate the pool",
		    name, s->version, KV_VERSION);
	if (s->crc != pkv_super_crc(s))
		return paste_fail(
		    -EBADMSG,
		    "key-value index '%s': header checksum mismatch: the index is corrupt; restore the pool file or recreate it",
		    name);
	end = s->slots_off + s->nslots * KV_ENTRY;
	if (s->entry_sz != KV_ENTRY || s->idx_bits < KV_MIN_IB || s->idx_bits > KV_MAX_IB ||
	    s->nslots > (1ull << s->idx_bits) - 2 || s->capacity == 0 || s->capacity > s->nslots ||
	    s->nbuckets < KV_MIN_BKTS || s->capacity >= s->nbuckets - s->nbuckets / 8 ||
	    s->buckets_off < sizeof(*s) || s->buckets_off % 8 || s->slots_off % KV_ENTRY ||
	    s->slots_off < s->buckets_off + s->nbuckets * 8 || end > len)
		return paste_fail(
		    -EBADMSG,
		    "key-value index '%s': header geometry does not fit its %llu-byte region: the index is corrupt; restore or recreate the pool",
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
	if (e->crc != pkv_entry_crc(e) || kv_tag(kv, e->hash) != tag || e->reserved[0] ||
	    e->reserved[1] || e->key.flags || e->val.flags ||
	    !paste_pool__ref_in_frame(kv->pool, &e->key, NULL) ||
	    !paste_pool__ref_in_frame(kv->pool, &e->val, NULL))
		return false;
	return !data || e->data_crc == pkv_data_crc(kv, &e->key, &e->val);
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
	const void *key = pkv_ref_bytes(kv, &e->key);

	if ((home + nb - gap) % nb == 0 || (home + nb - gap) % nb > (p + nb - gap) % nb)
		return false;
	for (uint64_t q = home; q != p; q = next_bucket(kv, q)) {
		uint64_t w = kv->buckets[q];

		if (w_live(w) && w_tag(kv, w) == tag &&
		    pkv_entry_is(kv, w_cur(kv, w) - 1, e->hash, key, e->key.len))
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
		    "key-value index '%s': an entry names a frame the pool cannot reference (%d): the pool's frame accounting is inconsistent; the pool was not opened",
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
		pkv_kv_store(kv, p,
		             KV_TOMB); /* a torn new key, or a stale copy: never acknowledged */
		kv->dropped++;
		return 0;
	}
	err = kv_take_refs(kv, s);
	if (err)
		return err;
	if (nw != w) { /* the update never fully reached media: back to the old entry */
		pkv_kv_store(kv, p, nw);
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
		__builtin_prefetch(pkv_ref_bytes(kv, &e->key));
	if (paste_pool__ref_in_frame(kv->pool, &e->val, NULL))
		__builtin_prefetch(pkv_ref_bytes(kv, &e->val));
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
		return paste_fail(
		    -EBADMSG,
		    "key-value index '%s': no empty bucket: the index is corrupt; restore or recreate the pool",
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

static int kv_recover(struct paste_pool *pool, const char *name, void *addr, uint64_t len)
{
	uint64_t t0 = paste_now_ns();
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
	pkv_kv_fence(
	    kv); /* the zeroed slots must be durable before the first batch reuses one: else a
	          * word could reach media over a stale entry that still checks out */
	kv->recovered = kv->keys;
	kv->used_hi = kv->used;
	if (kv->used >= kv->max_used && kv->used > kv->keys && pkv_kv_compact(kv))
		pr_warn("key-value index '%s': compaction failed; new keys may get -ENOSPC", name);
	err = kv_register(kv);
	if (err)
		goto err_put;
	paste_print(
	    kv->dropped ? PASTE_LOG_WARN : PASTE_LOG_INFO,
	    "key-value index '%s': recovered %llu keys, dropped %llu torn or invalid updates, in %.3f ms",
	    name, (unsigned long long)kv->recovered, (unsigned long long)kv->dropped,
	    (double)(paste_now_ns() - t0) / 1e6);
	return 0;

err_put:
	kv_put_refs(kv);
err_free:
	kv_free(kv);
	return err;
}

static const void *kv_region(const void *handle)
{
	return ((const struct paste_kv *)handle)->super;
}

const struct paste_index_type paste_kv_index_type = {
    .magic = PASTE_KV_MAGIC,
    .name = "key-value index",
    .create_arg = "a capacity",
    .recover = kv_recover,
    .free = kv_free,
    .region = kv_region,
};
