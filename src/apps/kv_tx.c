/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_tx.c - multi-key writes (EXEC, MSET, MSETNX, HSET of several fields) durable as one unit:
 * an undo log in a fourth persistent index, "paste-kv.undo".
 *
 * Rule (docs/kv-index.md, "Multi-key writes"): inside tx_begin()/tx_end(), before the first
 * change of an (index, key) pair, its current value is logged (undo entry: the key bytes, and a
 * reference of its own on the old value, or "absent"), and the log is fenced before the change.
 * The first entry of a transaction also puts the marker "H" -> transaction id. tx_end() fences
 * the transaction's changes, then deletes the marker: that single 8-byte bucket store is the
 * commit point, made durable by the round's fence before any reply. The undo entries are deleted
 * after that fence (tx_gc), so recovery never sees a marker without its entries.
 *
 * Recovery (tx_recover, before the startup sweeps): a marker on media means the transaction did
 * not commit; every entry of that transaction is put back (old value) or deleted (was absent),
 * then the marker and all entries are deleted. Pieces of objects created inside the transaction
 * (generation >= the first one it could use) are not logged: undoing the header that names them
 * leaves them unreachable, and the object sweep deletes them.
 *
 * The fences inside a transaction are plain fences (paste_pool__persist), not drains: no index
 * slot or reference is released in the middle of a round.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define TX_MARK     "H" /* the marker's key: shorter than any entry key */
#define TX_HDR      14  /* entry key: id (8, big endian) | seq (4) | index (1) | had value (1) */
#define TX_ABSENT   '-' /* value of an entry whose key was absent */
#define TX_SEEN_MIN 64u

static int ix_id(struct kvd *d, const struct paste_kv *kv)
{
	return kv == d->kv ? 0 : kv == d->ttl ? 1 : kv == d->sub ? 2 : -1;
}

static struct paste_kv *ix_of(struct kvd *d, int id)
{
	return id == 0 ? d->kv : id == 1 ? d->ttl : id == 2 ? d->sub : NULL;
}

static void be_put(uint8_t *b, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

static uint64_t be_get(const uint8_t *b, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

/* FNV-1a of the index id and the key: the in-memory "already logged" set. */
static uint64_t seen_hash(int id, const uint8_t *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)id;

	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 0x100000001b3ull;
	return h | 1; /* 0 marks an empty slot */
}

/* The logged key at offset @off of the gc list: [len 4][undo key]. */
static bool seen_eq(const struct kv_tx *t, size_t off, int id, const uint8_t *k, size_t n)
{
	uint32_t len;
	const uint8_t *u = t->gc + off + 4;

	memcpy(&len, t->gc + off, 4);
	return len == TX_HDR + n && u[12] == id && !memcmp(u + TX_HDR, k, n);
}

/* Find (id, k) in the seen set; @return true if logged. *slot: where it is or would go. */
static bool seen_find(const struct kv_tx *t, int id, const uint8_t *k, size_t n, size_t *slot)
{
	uint64_t h = seen_hash(id, k, n);
	size_t i = h & (t->seen_cap - 1);

	for (;; i = (i + 1) & (t->seen_cap - 1)) {
		if (!t->seen[2 * i]) {
			*slot = i;
			return false;
		}
		if (t->seen[2 * i] == h && seen_eq(t, t->seen[2 * i + 1], id, k, n))
			return true;
	}
}

static int seen_grow(struct kv_tx *t)
{
	size_t cap = t->seen_cap ? t->seen_cap * 2 : TX_SEEN_MIN;
	uint64_t *s = calloc(2 * cap, sizeof(*s));

	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < t->seen_cap; i++) {
		size_t j;

		if (!t->seen[2 * i])
			continue;
		for (j = t->seen[2 * i] & (cap - 1); s[2 * j]; j = (j + 1) & (cap - 1))
			;
		s[2 * j] = t->seen[2 * i];
		s[2 * j + 1] = t->seen[2 * i + 1];
	}
	free(t->seen);
	t->seen = s;
	t->seen_cap = cap;
	return 0;
}

static int gc_add(struct kv_tx *t, const uint8_t *u, uint32_t n, size_t *off)
{
	if (t->gc_len + 4 + n > t->gc_cap) {
		size_t cap = t->gc_cap ? t->gc_cap * 2 : 4096;
		uint8_t *g;

		while (cap < t->gc_len + 4 + n)
			cap *= 2;
		g = realloc(t->gc, cap);
		if (!g)
			return -ENOMEM;
		t->gc = g;
		t->gc_cap = cap;
	}
	*off = t->gc_len;
	memcpy(t->gc + t->gc_len, &n, 4);
	memcpy(t->gc + t->gc_len + 4, u, n);
	t->gc_len += 4 + n;
	return 0;
}

/* Put undo-index entry @k (copied) -> @val (a kept reference the index takes, released on
 * failure). */
static int undo_put(struct kvd *d, const void *k, size_t n, struct paste_ref *val)
{
	struct paste_ref kr = {0};
	int err = paste_keep_copy(d->ctx, k, n, &kr);

	if (!err)
		err = paste_kv__put(d->undo, &kr, val);
	if (err) {
		release(d, &kr);
		release(d, val);
	}
	return err;
}

/* A plain fence: the flushes so far are durable; nothing is released (not a drain). */
static void tx_fence(struct kvd *d)
{
	paste_pool__persist(d->pool, paste_pool__base(d->pool), 0);
}

void tx_begin(struct kvd *d)
{
	struct kv_tx *t = &d->tx;

	if (t->depth++)
		return;
	t->id++;
	t->seq = 0;
	t->logged = false;
	t->gen0 = d->next_gen;
	if (t->seen_cap)
		memset(t->seen, 0, 2 * t->seen_cap * sizeof(*t->seen));
}

/* Log the value (index @kv, key @k) has before its first change in this transaction (@del: the
 * change is a deletion). Pieces of new generations are not logged; a large key's chunks
 * (generation UINT64_MAX, kv_lkey.c) are logged when deleted (FLUSHALL in MULTI), since the
 * surrogate an undo puts back names them. */
static int tx_log(struct kvd *d, struct paste_kv *kv, const uint8_t *k, size_t n, bool del)
{
	struct kv_tx *t = &d->tx;
	int id = ix_id(d, kv);
	struct paste_ref old, vr = {0};
	uint8_t *u;
	size_t slot, off;
	uint64_t ids;
	int err;

	if (!t->depth || id < 0 ||
	    (id == 2 && n >= 8 && sub_gen(k) >= t->gen0 && !(del && sub_gen(k) == UINT64_MAX)))
		return 0;
	if (TX_HDR + n > d->frame_size) {
		fprintf(stderr, "paste-kv: key of %zu bytes too long to log in a transaction\n", n);
		return -ENAMETOOLONG;
	}
	if ((t->seq + 1) * 2 > t->seen_cap && (err = seen_grow(t)))
		return err;
	if (seen_find(t, id, k, n, &slot))
		return 0;
	if (!t->logged) {
		struct paste_ref mr = {0};

		be_put((uint8_t *)&ids, t->id, 8);
		err = paste_keep_copy(d->ctx, &ids, 8, &mr);
		if (!err)
			err = undo_put(d, TX_MARK, 1, &mr);
		if (err)
			return err;
		t->logged = true;
	}
	u = arena_alloc(d, TX_HDR + n);
	if (!u)
		return -ENOMEM;
	be_put(u, t->id, 8);
	be_put(u + 8, t->seq, 4);
	u[12] = (uint8_t)id;
	u[13] = paste_kv__get(kv, k, n, &old) == 0;
	memcpy(u + TX_HDR, k, n);
	if (u[13])
		err = paste_keep(d->ctx, paste_pool__ref_ptr(d->pool, &old), old.len, &vr);
	else
		err = paste_keep_copy(d->ctx, &(uint8_t){TX_ABSENT}, 1, &vr);
	if (err)
		return err;
	err = undo_put(d, u, TX_HDR + n, &vr);
	if (!err)
		err = gc_add(t, u, TX_HDR + (uint32_t)n, &off);
	if (err) {
		if (err == -ENOSPC)
			fprintf(stderr,
			        "paste-kv: the undo log is full (%" PRIu64
			        " entries): a transaction "
			        "this large needs a larger --undo-keys\n",
			        d->undo_keys);
		return err;
	}
	t->seen[2 * slot] = seen_hash(id, k, n);
	t->seen[2 * slot + 1] = off;
	t->seq++;
	t->entries++;
	t->unfenced = true; /* fenced before the change (ix_put/ix_del) */
	return 0;
}

/* Log (index @kv, key @k) ahead of the changes, without a fence: a command that knows its keys
 * logs them all, then its first change fences once for all of them. */
int tx_prelog(struct kvd *d, struct paste_kv *kv, const uint8_t *k, size_t n)
{
	return tx_log(d, kv, k, n, false);
}

/* Before a change: the logged old values are durable. */
static int tx_ready(struct kvd *d, struct paste_kv *kv, const uint8_t *k, size_t n, bool del)
{
	int err = tx_log(d, kv, k, n, del);

	if (!err && d->tx.unfenced) {
		tx_fence(d);
		d->tx.unfenced = false;
	}
	return err;
}

int ix_put(struct kvd *d, struct paste_kv *kv, struct paste_ref *kr, struct paste_ref *vr)
{
	int err = tx_ready(d, kv, paste_pool__ref_ptr(d->pool, kr), kr->len, false);

	return err ? err : paste_kv__put(kv, kr, vr);
}

/* ix_put from the bytes the caller kept: @k (the bytes @kr names) and the data CRC of key and
 * value (paste_kv__data_crc): paste_kv__put_src. */
int ix_put_src(struct kvd *d, struct paste_kv *kv, struct paste_ref *kr, struct paste_ref *vr,
               const uint8_t *k, uint32_t crc)
{
	int err = tx_ready(d, kv, k, kr->len, false);

	return err ? err : paste_kv__put_src(kv, kr, vr, k, crc);
}

int ix_del(struct kvd *d, struct paste_kv *kv, const void *k, size_t n)
{
	int err = tx_ready(d, kv, k, n, true);

	return err ? err : paste_kv__del(kv, k, n);
}

void tx_end(struct kvd *d)
{
	struct kv_tx *t = &d->tx;

	if (!t->depth || --t->depth || !t->logged)
		return;
	t->unfenced = false; /* entries logged but never followed by a change: nothing to protect */
	tx_fence(d);         /* every change of the transaction is durable ... */
	paste_kv__del(d->undo, TX_MARK, 1); /* ... before the commit point reaches media */
	t->logged = false;
	t->txs++;
}

/* After the round's fence (the markers' deletions are durable): delete the entries. */
void tx_gc(struct kvd *d)
{
	struct kv_tx *t = &d->tx;

	if (t->depth || !t->gc_len)
		return;
	for (size_t o = 0; o < t->gc_len;) {
		uint32_t n;

		memcpy(&n, t->gc + o, 4);
		paste_kv__del(d->undo, t->gc + o + 4, n);
		o += 4 + n;
	}
	t->gc_len = 0;
}

struct undo_walk {
	struct kvd *d;
	uint64_t id;
	uint64_t undone;
	int err;
};

static int undo_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct undo_walk *w = arg;
	struct kvd *d = w->d;
	const uint8_t *u = paste_pool__ref_ptr(d->pool, key);
	struct paste_kv *kv;
	struct paste_ref kr = {0}, vr = {0};
	size_t n;

	if (!u || key->len < TX_HDR || be_get(u, 8) != w->id || !(kv = ix_of(d, u[12])))
		return 0; /* the marker, or an entry of a committed transaction */
	n = key->len - TX_HDR;
	if (!u[13]) {
		paste_kv__del(kv, u + TX_HDR, n);
	} else if ((w->err = paste_keep_copy(d->ctx, u + TX_HDR, n, &kr)) ||
	           (w->err =
	                paste_keep(d->ctx, paste_pool__ref_ptr(d->pool, val), val->len, &vr)) ||
	           (w->err = paste_kv__put(kv, &kr, &vr))) {
		release(d, &kr);
		release(d, &vr);
		return 1;
	}
	w->undone++;
	return 0;
}

/* Delete every undo entry, KV_FLUSH_BATCH at a time. */
static void undo_clear(struct kvd *d)
{
	paste_pool__drain(d->pool);
	paste_kv__del(d->undo, TX_MARK, 1);
	paste_pool__drain(d->pool); /* no marker on media: the entries are garbage now */
	flush_index(d, d->undo);
	paste_pool__drain(d->pool);
}

/* Startup: open the undo log; roll back the transaction whose marker is still there. */
int tx_recover(struct kvd *d)
{
	struct undo_walk w = {.d = d};
	struct paste_kv_info info;
	struct paste_ref mr;
	const uint8_t *m;
	int err;

	/* A pool made before the undo log may lack the room: take what fits, down to 256. */
	paste_set_print(quiet, NULL, PASTE_LOG_ERROR);
	err = paste_kv__open(&d->undo, d->pool, KV_UNDO_INDEX, NULL); /* the existing one, if any */
	while (err == -ENOENT || (err == -ENOSPC && d->undo_keys > 256)) {
		if (err == -ENOSPC)
			d->undo_keys /= 2;
		err = paste_kv__open(&d->undo, d->pool, KV_UNDO_INDEX,
		                     &PASTE_OPTS_LIT(paste_kv_opts, .capacity = d->undo_keys));
	}
	paste_set_print(NULL, NULL, d->d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	if (err) {
		fprintf(stderr, "paste-kv: cannot open the undo log '%s': %s\n", KV_UNDO_INDEX,
		        paste_last_error());
		return err;
	}
	paste_kv__info(d->undo, &info, sizeof(info));
	d->undo_keys = info.capacity;
	d->tx.id = wall_ms() << 16; /* ids of this run differ from any entry left behind */
	if (paste_kv__get(d->undo, TX_MARK, 1, &mr) == 0 &&
	    (m = paste_pool__ref_ptr(d->pool, &mr)) && mr.len == 8) {
		w.id = be_get(m, 8);
		paste_kv__iterate(d->undo, undo_fn, &w);
		if (w.err) {
			fprintf(stderr,
			        "paste-kv: cannot roll back an interrupted transaction: %s (%s); "
			        "start again with more free pool frames or index room\n",
			        strerror(-w.err), paste_last_error());
			return w.err;
		}
	}
	d->tx.undone = w.undone;
	undo_clear(d);
	return 0;
}
