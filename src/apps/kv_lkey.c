/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_lkey.c - keys longer than a frame ("large keys"), up to --max-key (512 MB by default).
 *
 * A key of at most lkey_inline() bytes is one reference, as always. A longer key is kept as
 * values larger than a frame are: its bytes stay in the frames they arrived in, as chunks in the
 * piece index ("paste-kv.sub"), and the indexes name it by a fixed-size surrogate:
 *
 *     surrogate (LK_LEN bytes) = hash (16) | length (8, big endian) | slot (1) | tag (1)
 *     piece                    = LK_GEN (8) | surrogate | chunk number (4) -> the chunk's bytes
 *
 * The tag is 0x90 + the database (an ordinary key's stored form ends with '\r' or 0x80 + n, so
 * the two never meet). The main, expiry and undo indexes, WATCH and MULTI see only surrogates,
 * so every command works on large keys unchanged. Finding a key: hash it, then for each slot
 * whose chunk 0 exists compare the whole key with the chunks; two keys with the same hash and
 * length take different slots (LK_SLOTS of them).
 *
 * Crash safety, in the order of the writes: a new key's chunks are put, fenced, and only then
 * is the surrogate put in the main index (store() calls lkey_make() first), so a surrogate on
 * media always names complete chunks. Chunks whose surrogate is not in the main index are
 * garbage: a crash between the two steps, or a key deleted before its chunks were reaped; the
 * startup sweep (obj_sweep) deletes them. A deleted key's chunks are deleted only after the
 * round's fence (lkey_reap), and not at all if the key was stored again meanwhile.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define LK_LEN   26         /* surrogate bytes, tag included */
#define LK_GEN   UINT64_MAX /* the generation of key pieces: never allocated */
#define LK_TAG0  0x90u      /* tag of a large key of database 0 */
#define LK_SLOTS 8          /* keys with the same hash and length */

/* A large key named in this request that has no chunks yet: lkey_make() writes them. */
struct lk_new {
	const uint8_t *sur; /* LK_LEN bytes, in the arena */
	const uint8_t *a;   /* the key, contiguous */
	size_t n;
	struct resp_buf *b; /* set: the key lies in received frames at @off (kept in place) */
	size_t off;
};

/* Keys longer than this are large keys (a stored inline key and an undo entry fit a frame). */
uint32_t lkey_inline(const struct kvd *d)
{
	return d->frame_size - 16;
}

bool lkey_is(const uint8_t *k, size_t n)
{
	return n == LK_LEN && k[LK_LEN - 1] >= LK_TAG0 && k[LK_LEN - 1] < LK_TAG0 + KV_DBS;
}

/* The database of a stored key (its tag byte). */
int key_db(const uint8_t *k, size_t n)
{
	uint8_t t = n ? k[n - 1] : '\r';

	if (lkey_is(k, n))
		return t - LK_TAG0;
	return t > 0x80 && t < 0x80 + KV_DBS ? t - 0x80 : 0;
}

/* 128 bits of hash of @n bytes (two 64-bit lanes, a multiply-xorshift mix; stored on media, so
 * fixed: no seed). Collisions are handled by the slots, so its quality only sets their cost. */
static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static void lk_hash(const uint8_t *p, size_t n, uint8_t out[16])
{
	uint64_t a = 0x9e3779b97f4a7c15ull ^ n, b = 0x6a09e667f3bcc909ull + n, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		w = le64toh(w);
		a = (a ^ w) * 0x9fb21c651e98df25ull;
		a ^= a >> 29;
		b = (b + w) * 0xd6e8feb86659fd93ull;
		b = b << 31 | b >> 33;
	}
	w = 0;
	for (size_t j = 0; i + j < n; j++)
		w |= (uint64_t)p[i + j] << (8 * j);
	a = mix(a ^ w ^ b);
	b = mix(b + w + a);
	a = htobe64(a);
	b = htobe64(b);
	memcpy(out, &a, 8);
	memcpy(out + 8, &b, 8);
}

/* Compare key @a (@n bytes) with the chunks of surrogate @sur.
 * @return 1 the same key, 0 no chunks (a free slot), -1 another key (or damaged chunks). */
static int lk_cmp(struct kvd *d, const uint8_t *sur, const uint8_t *a, size_t n)
{
	size_t at = 0;

	for (uint64_t i = 0; at < n; i++) {
		const uint8_t *p;
		size_t len;

		if (piece_get(d, LK_GEN, sur, LK_LEN, i, &p, &len))
			return i ? -1 : 0;
		if (len > n - at || memcmp(p, a + at, len))
			return -1;
		at += len;
	}
	return 1;
}

static int lk_remember(struct kvd *d, const struct lk_new *e)
{
	if (d->lk_new_n == d->lk_new_cap) {
		size_t cap = d->lk_new_cap ? d->lk_new_cap * 2 : 8;
		struct lk_new *v = realloc(d->lk_new, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->lk_new = v;
		d->lk_new_cap = cap;
	}
	d->lk_new[d->lk_new_n++] = *e;
	return 0;
}

/*
 * Argument @i, longer than lkey_inline(), as a key of database @db: its surrogate (in the arena).
 * A key not stored yet gets the first free slot and is remembered: lkey_make() puts its chunks
 * when a write stores it. @return 0 or a negative errno.
 */
int lkey_arg(struct req *r, unsigned i, int db, struct str *s)
{
	struct kvd *d = r->d;
	uint32_t n = arg_len(r, i);
	const uint8_t *a = arg(r, i);
	uint8_t *sur = arena_alloc(d, LK_LEN);
	uint64_t len = htobe64(n);
	int slot, free_slot = -1;
	struct lk_new e;

	if (!a || !sur)
		return -ENOMEM;
	lk_hash(a, n, sur);
	memcpy(sur + 16, &len, 8);
	sur[LK_LEN - 1] = (uint8_t)(LK_TAG0 + db);
	*s = (struct str){.p = sur, .n = LK_LEN, .pool = false};
	for (slot = 0; slot < LK_SLOTS; slot++) {
		int c;

		sur[24] = (uint8_t)slot;
		c = lk_cmp(d, sur, a, n);
		if (c > 0)
			return 0; /* stored (or its chunks wait to be reaped: lkey_reap keeps them)
			           */
		if (c == 0 && free_slot < 0)
			free_slot = slot;
	}
	if (free_slot < 0) {
		fprintf(stderr,
		        "paste-kv: %d large keys of %u bytes share one hash: no slot left\n",
		        LK_SLOTS, n);
		return -ENOSPC;
	}
	sur[24] = (uint8_t)free_slot;
	e = (struct lk_new){.sur = sur, .a = a, .n = n};
	if (!r->cmd->inl && !r->queued) {
		e.b = r->b;
		e.off = r->base + r->cmd->argv[i].off;
	}
	return lk_remember(d, &e);
}

/* The large keys remembered by lkey_arg() point into the request's scratch: forget them. */
void lkey_forget(struct kvd *d)
{
	d->lk_new_n = 0;
}

/*
 * Before @k is put in the main index: if it is a large key of this request without chunks, put
 * them (in place when the key lies in received frames) and fence, so the surrogate never reaches
 * media before them. @return 0 or a negative errno (-ENOSPC: no room; nothing is left).
 */
int lkey_make(struct kvd *d, const struct str *k)
{
	struct lk_new *e = NULL;
	uint64_t nchunks;
	int err;

	if (!lkey_is(k->p, k->n))
		return 0;
	for (size_t i = 0; i < d->lk_new_n && !e; i++)
		if (!memcmp(d->lk_new[i].sur, k->p, LK_LEN))
			e = &d->lk_new[i];
	if (!e)
		return 0; /* found by lkey_arg: its chunks are there */
	switch (lk_cmp(d, e->sur, e->a, e->n)) {
	case 1:
		return 0; /* put by an earlier write of this request */
	case -1:
		return -EEXIST; /* the slot was taken since (two keys of one hash in one request) */
	}
	err =
	    pieces_put(d, LK_GEN, e->sur, LK_LEN, e->b, e->off, e->b ? NULL : e->a, e->n, &nchunks);
	if (err)
		return err;
	paste_pool__persist(d->pool, paste_pool__base(d->pool), 0); /* chunks before surrogate */
	d->have_objs = true;
	return 0;
}

/* @k was deleted from the main index (or its put failed): reap its chunks after the fence. */
void lkey_retire(struct kvd *d, const uint8_t *k, size_t n)
{
	if (!lkey_is(k, n))
		return;
	if (d->lk_dead_n == d->lk_dead_cap) {
		size_t cap = d->lk_dead_cap ? d->lk_dead_cap * 2 : 64;
		uint8_t *v = realloc(d->lk_dead, cap * LK_LEN);

		if (!v)
			return; /* the chunks stay until the next startup sweeps them */
		d->lk_dead = v;
		d->lk_dead_cap = cap;
	}
	memcpy(d->lk_dead + d->lk_dead_n++ * LK_LEN, k, LK_LEN);
}

/* After the round's fence: delete the chunks of large keys deleted before it and not stored
 * again since. */
void lkey_reap(struct kvd *d)
{
	for (size_t i = 0; i < d->lk_dead_n; i++) {
		const uint8_t *sur = d->lk_dead + i * LK_LEN;
		struct paste_ref ref;

		d->arena_used = 0;
		if (paste_kv__get(d->kv, sur, LK_LEN, &ref) == 0)
			continue;
		pieces_del(d, LK_GEN, sur, LK_LEN, UINT64_MAX);
	}
	d->lk_dead_n = 0;
}

/* The bytes of large key @k (surrogate), gathered in a buffer the caller frees; NULL if its
 * chunks are missing or no memory. */
uint8_t *lkey_bytes(struct kvd *d, const uint8_t *k, size_t n, size_t *len)
{
	uint64_t want;
	uint8_t *buf;
	size_t at = 0;

	if (!lkey_is(k, n))
		return NULL;
	memcpy(&want, k + 16, 8);
	want = be64toh(want);
	buf = malloc(want ? want : 1);
	for (uint64_t i = 0; buf && at < want; i++) {
		const uint8_t *p;
		size_t pn;

		if (piece_get(d, LK_GEN, k, LK_LEN, i, &p, &pn) || pn > want - at) {
			free(buf);
			return NULL;
		}
		memcpy(buf + at, p, pn);
		at += pn;
	}
	*len = want;
	return buf;
}

/* Startup sweep: is piece-index key @sk (@n bytes) a chunk of a large key that is stored? */
bool lkey_piece_live(struct kvd *d, const uint8_t *sk, size_t n)
{
	struct paste_ref ref;

	if (n < 8 + LK_LEN || sub_gen(sk) != LK_GEN)
		return false;
	return paste_kv__get(d->kv, sk + 8, LK_LEN, &ref) == 0;
}

/* Does stored key @k belong to the database whose tag is @tag (db_tag())? */
bool key_in(const uint8_t *k, size_t n, uint8_t tag)
{
	return n && key_db(k, n) == (tag == '\r' ? 0 : tag - 0x80);
}
