/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_obj.c - paste-kv's values that are more than one reference: strings longer than a frame
 * ("big strings") and hashes.
 *
 * Such a value is an object: the main index maps the key to a small header (stored form: the
 * 32-byte struct obj_hdr then the tag byte 'O', where a plain string has '\r'), and the pieces
 * live in a second persistent index, "paste-kv.sub", under keys that start with the object's
 * 8-byte generation number (big endian, unique for the pool's lifetime):
 *  - big string: gen + 4-byte chunk number -> the chunk's bytes. Chunks are the pieces of the
 *    value as they lie in the received frames (kept in place), or frame-sized packed copies for
 *    computed values; the header holds the total length and the chunk count;
 *  - hash: gen + field -> the field's value (stored form, '\r' added), one entry per field, so an
 *    HSET of one field is one atomic put. Field counts are kept in memory (rebuilt at startup).
 * The header is put last, after a fence (pieces_fence): a crash before it leaves only
 * unreachable pieces, which startup deletes (no header names their generation). A replaced or
 * deleted object's pieces are deleted only after the round's fence (obj_reap), so a crash never
 * leaves a live header whose pieces are partly gone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define OBJ_MAGIC 0x424f4b50u /* "PKOB" */
#define OBJ_TAG   'O'

struct obj_hdr {
	uint32_t magic;
	uint8_t type;
	uint8_t pad[3];
	uint64_t gen, len, n;
};

/* ---- decoding ----------------------------------------------------------------------------- */

void obj_decode(struct kvd *d, const struct paste_ref *ref, struct obj *o)
{
	const uint8_t *p = paste_pool__ref_ptr(d->pool, ref);
	struct obj_hdr h;

	memset(o, 0, sizeof(*o));
	o->ref = *ref;
	o->p = p;
	o->len = p && ref->len ? ref->len - 1 : 0;
	o->type = T_STR;
	if (!p || ref->len != sizeof(h) + 1 || p[sizeof(h)] != OBJ_TAG)
		return;
	memcpy(&h, p, sizeof(h));
	if (h.magic != OBJ_MAGIC || h.type < T_BIG || h.type > T_ZSET)
		return;
	o->type = h.type;
	o->gen = h.gen;
	o->len = h.len;
	o->n = h.n;
	o->p = NULL;
}

/* Look @k up (lazy expiry included) and decode it. @return 0 or -ENOENT. */
int obj_lookup(struct kvd *d, const struct str *k, struct obj *o)
{
	struct paste_ref ref;

	if (lookup(d, k, &ref))
		return -ENOENT;
	obj_decode(d, &ref, o);
	return 0;
}

/* ---- the piece index ------------------------------------------------------------------------ */

static size_t sub_key(uint8_t *buf, uint64_t gen, const void *sk, size_t skn)
{
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(gen >> (56 - 8 * i));
	memcpy(buf + 8, sk, skn);
	return 8 + skn;
}

uint64_t sub_gen(const uint8_t *key)
{
	uint64_t g = 0;

	for (int i = 0; i < 8; i++)
		g = g << 8 | key[i];
	return g;
}

/* The sub-key bytes: [gen | sk]; in the arena. */
static uint8_t *sub_keybuf(struct kvd *d, uint64_t gen, const void *sk, size_t skn, size_t *n)
{
	uint8_t *buf = arena_alloc(d, 8 + skn);

	if (buf)
		*n = sub_key(buf, gen, sk, skn);
	return buf;
}

/* Put gen|sk -> @val (a kept reference the index takes). On failure @val is released. */
int sub_put(struct kvd *d, uint64_t gen, const void *sk, size_t skn, struct paste_ref *val)
{
	struct paste_ref kr = {0};
	size_t n = 0;
	uint8_t *kb = sub_keybuf(d, gen, sk, skn, &n);
	int err = kb ? paste_keep_copy(d->ctx, kb, n, &kr) : -ENOMEM;

	if (!err)
		err = ix_put(d, d->sub, &kr, val);
	if (err) {
		release(d, &kr);
		release(d, val);
	}
	return err;
}

int sub_get(struct kvd *d, uint64_t gen, const void *sk, size_t skn, struct paste_ref *val)
{
	size_t n = 0;
	uint8_t *kb = sub_keybuf(d, gen, sk, skn, &n);

	return kb ? paste_kv__get(d->sub, kb, n, val) : -ENOMEM;
}

int sub_del(struct kvd *d, uint64_t gen, const void *sk, size_t skn)
{
	size_t n = 0;
	uint8_t *kb = sub_keybuf(d, gen, sk, skn, &n);

	return kb ? ix_del(d, d->sub, kb, n) : -ENOMEM;
}

static void chunk_key(uint8_t *b, uint64_t i)
{
	b[0] = (uint8_t)(i >> 24);
	b[1] = (uint8_t)(i >> 16);
	b[2] = (uint8_t)(i >> 8);
	b[3] = (uint8_t)i;
}

uint64_t sub_count(struct kvd *d)
{
	struct paste_kv_info i;

	paste_kv__info(d->sub, &i, sizeof(i));
	return i.keys;
}

/* ---- headers ------------------------------------------------------------------------------- */

/*
 * Before a header (or a reference to one) is stored: the pieces put so far are durable. Without
 * it, the pieces' and the header's puts share a batch and a crash may leave the header's 8-byte
 * commit on media without a piece's (paste-powerfail --probe kvapp found such headers).
 */
static void pieces_fence(struct kvd *d)
{
	paste_pool__persist(d->pool, paste_pool__base(d->pool), 0);
}

/* Store @k -> a header of @type; @ttl as for store(). */
int hdr_store(struct kvd *d, const struct str *k, int type, uint64_t gen, uint64_t len, uint64_t n,
              uint64_t ttl)
{
	uint8_t buf[sizeof(struct obj_hdr) + 1];
	struct obj_hdr h = {
	    .magic = OBJ_MAGIC, .type = (uint8_t)type, .gen = gen, .len = len, .n = n};
	struct str v = {.p = buf, .n = sizeof(buf), .pool = false};

	pieces_fence(d);
	memcpy(buf, &h, sizeof(h));
	buf[sizeof(h)] = OBJ_TAG;
	d->have_objs = true;
	return store(d, k, &v, ttl, S_NEW);
}

/* ---- big strings --------------------------------------------------------------------------- */

struct chunker {
	struct kvd *d;
	uint64_t gen, idx;
	const uint8_t *pfx; /* sub-key bytes before the chunk number (large keys, kv_lkey.c) */
	size_t pfxn;
};

/* The sub-key after the generation: [@pfx | chunk @i (4, big endian)], in @b. */
static size_t piece_key(uint8_t *b, const uint8_t *pfx, size_t pfxn, uint64_t i)
{
	if (pfxn)
		memcpy(b, pfx, pfxn);
	chunk_key(b + pfxn, i);
	return pfxn + 4;
}

static int chunk_add(struct chunker *c, const uint8_t *p, size_t n, bool pool)
{
	struct kvd *d = c->d;
	struct paste_ref ref = {0};
	uint8_t ck[KV_PIECE_PFX + 4];
	int err;

	if (pool) {
		err = paste_keep(d->ctx, p, n, &ref);
		if (!err)
			err = paste_persist(d->ctx, p, n);
		if (err)
			release(d, &ref);
	} else {
		err = paste_keep_copy(d->ctx, p, n, &ref);
	}
	if (err)
		return err;
	err = sub_put(d, c->gen, ck, piece_key(ck, c->pfx, c->pfxn, c->idx), &ref);
	if (!err) {
		c->idx++;
		if (pool)
			d->st.pieces_inplace++;
		else
			d->st.pieces_copied++;
	}
	return err;
}

/* Delete chunks [0, @n) of gen|@pfx (@n UINT64_MAX: up to the first one absent). */
void pieces_del(struct kvd *d, uint64_t gen, const uint8_t *pfx, size_t pfxn, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint8_t ck[KV_PIECE_PFX + 4];
		size_t mark = d->arena_used;
		int err = sub_del(d, gen, ck, piece_key(ck, pfx, pfxn, i));

		d->arena_used = mark;
		if (err && n == UINT64_MAX)
			break;
	}
}

static void chunks_del(struct kvd *d, uint64_t gen, uint64_t n)
{
	pieces_del(d, gen, NULL, 0, n);
}

/*
 * The pieces of a string of @n bytes, as chunks gen|@pfx|i (*nchunks): from the request's
 * buffer @b at @off (in place, one chunk per frame piece) when @b is set, else from @p (copied,
 * frame-sized chunks). On failure nothing is left.
 */
int pieces_put(struct kvd *d, uint64_t gen, const uint8_t *pfx, size_t pfxn, struct resp_buf *b,
               size_t off, const uint8_t *p, size_t n, uint64_t *nchunks)
{
	struct chunker c = {.d = d, .gen = gen, .pfx = pfx, .pfxn = pfxn};
	size_t done = 0;
	int err = 0;

	while (done < n && !err) {
		size_t mark = d->arena_used;

		if (b) {
			size_t at = off + done, skip = at, take;
			unsigned i = 0;

			while (i < b->nseg && skip >= b->seg[i].len)
				skip -= b->seg[i++].len;
			if (i == b->nseg) {
				err = -EINVAL;
				break;
			}
			take = b->seg[i].len - skip;
			if (take > n - done)
				take = n - done;
			if (take > d->frame_size)
				take = d->frame_size;
			err = chunk_add(&c, b->seg[i].p + skip, take, true);
			done += take;
		} else {
			size_t take = n - done < d->frame_size ? n - done : d->frame_size;

			err = chunk_add(&c, p + done, take, false);
			done += take;
		}
		d->arena_used = mark;
	}
	if (err) {
		pieces_del(d, gen, pfx, pfxn, c.idx);
		return err;
	}
	*nchunks = c.idx;
	return 0;
}

/* The pieces of a big string of @n bytes under a new generation (*gen, *nchunks); see
 * pieces_put(). */
int big_pieces(struct kvd *d, struct resp_buf *b, size_t off, const uint8_t *p, size_t n,
               uint64_t *gen, uint64_t *nchunks)
{
	uint64_t g = d->next_gen++;
	int err = pieces_put(d, g, NULL, 0, b, off, p, n, nchunks);

	if (err)
		return err;
	*gen = g;
	d->have_objs = true;
	d->st.val_big++;
	return 0;
}

/* A kept reference to a big-string header (for a hash field whose value is a big string). */
int big_header_ref(struct kvd *d, uint64_t gen, uint64_t len, uint64_t n, struct paste_ref *ref)
{
	uint8_t buf[sizeof(struct obj_hdr) + 1];
	struct obj_hdr h = {.magic = OBJ_MAGIC, .type = T_BIG, .gen = gen, .len = len, .n = n};

	pieces_fence(d);
	memcpy(buf, &h, sizeof(h));
	buf[sizeof(h)] = OBJ_TAG;
	return paste_keep_copy(d->ctx, buf, sizeof(buf), ref);
}

/* Store @k -> a big string of @n bytes (see big_pieces()); @ttl as for store(). */
int big_store(struct kvd *d, const struct str *k, struct resp_buf *b, size_t off, const uint8_t *p,
              size_t n, uint64_t ttl)
{
	uint64_t gen, nchunks;
	int err = big_pieces(d, b, off, p, n, &gen, &nchunks);

	if (err)
		return err;
	err = hdr_store(d, k, T_BIG, gen, n, nchunks, ttl);
	if (err)
		chunks_del(d, gen, nchunks);
	return err;
}

/* A new big string with the pieces of @o (each referenced again, no copy); *hdr its header. */
int big_clone(struct kvd *d, const struct obj *o, struct paste_ref *hdr)
{
	uint64_t gen = d->next_gen++, i;
	int err = 0;

	for (i = 0; i < o->n && !err; i++) {
		struct paste_ref ref = {0};
		const uint8_t *p;
		size_t n, mark = d->arena_used;
		uint8_t ck[4];

		err = big_chunk(d, o, i, &p, &n);
		if (!err)
			err = paste_keep(d->ctx, p, n, &ref);
		chunk_key(ck, i);
		if (!err)
			err = sub_put(d, gen, ck, 4, &ref);
		d->arena_used = mark;
	}
	if (!err)
		err = big_header_ref(d, gen, o->len, o->n, hdr);
	if (err)
		chunks_del(d, gen, i);
	return err;
}

/* A piece's value that is itself a big string (a large hash field) is retired with it. */
void value_retire(struct kvd *d, const struct paste_ref *v)
{
	struct obj o;

	obj_decode(d, v, &o);
	if (o.type == T_BIG)
		obj_retire(d, &o);
}

/* Chunk @i of gen|@pfx. @return 0 or -ENOENT (absent). */
int piece_get(struct kvd *d, uint64_t gen, const uint8_t *pfx, size_t pfxn, uint64_t i,
              const uint8_t **p, size_t *n)
{
	struct paste_ref ref;
	size_t mark = d->arena_used;
	uint8_t ck[KV_PIECE_PFX + 4];
	int err = sub_get(d, gen, ck, piece_key(ck, pfx, pfxn, i), &ref);

	d->arena_used = mark;
	if (err)
		return -ENOENT;
	*p = paste_pool__ref_ptr(d->pool, &ref);
	*n = ref.len;
	return *p ? 0 : -ENOENT;
}

/* Chunk @i of a big string. @return 0 or -ENOENT (damaged). */
int big_chunk(struct kvd *d, const struct obj *o, uint64_t i, const uint8_t **p, size_t *n)
{
	return piece_get(d, o->gen, NULL, 0, i, p, n);
}

/* Copy bytes [off, off + n) of the string @o to @dst. @return 0 or -ENOENT. */
int obj_read(struct kvd *d, const struct obj *o, uint64_t off, uint64_t n, uint8_t *dst)
{
	uint64_t at = 0;

	if (o->type == T_STR) {
		memcpy(dst, o->p + off, n);
		return 0;
	}
	for (uint64_t i = 0; i < o->n && n; i++) {
		const uint8_t *p;
		size_t len;

		if (big_chunk(d, o, i, &p, &len))
			return -ENOENT;
		if (off < at + len) {
			size_t from = off - at, take = len - from < n ? len - from : n;

			memcpy(dst, p + from, take);
			dst += take;
			off += take;
			n -= take;
		}
		at += len;
	}
	return n ? -ENOENT : 0;
}

/* The whole string @o as contiguous bytes (in place, or gathered into the scratch). */
const uint8_t *obj_bytes(struct kvd *d, const struct obj *o)
{
	uint8_t *buf;

	if (o->type == T_STR)
		return o->p;
	buf = arena_alloc(d, o->len ? o->len : 1);
	if (!buf || obj_read(d, o, 0, o->len, buf))
		return NULL;
	return buf;
}

/* Reply the string @o as a bulk string: in place, piece by piece. */
int out_obj(struct kvd *d, struct kconn *kc, const struct obj *o)
{
	if (o->type == T_STR)
		return out_value(kc, o->p, o->len);
	if (out_hdr(kc, '$', (int64_t)o->len))
		return -ENOMEM;
	for (uint64_t i = 0; i < o->n; i++) {
		const uint8_t *p;
		size_t n;

		if (big_chunk(d, o, i, &p, &n) || out_piece(kc, p, n))
			return -ENOMEM;
	}
	return out(kc, "\r\n", 2);
}

/* ---- hash field counts (memory; rebuilt at startup) ------------------------------------------ */

static uint64_t *hc_slot(struct kvd *d, uint64_t gen, bool add)
{
	if (add && (d->hc_used + 1) * 2 > d->hc_cap) {
		size_t cap = d->hc_cap ? d->hc_cap * 2 : 1024;
		uint64_t *v = calloc(cap * 2, sizeof(*v));

		if (!v)
			return NULL;
		for (size_t i = 0; i < d->hc_cap; i++) {
			uint64_t g = d->hc[2 * i];
			size_t j = (size_t)(g * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);

			if (!g)
				continue;
			while (v[2 * j])
				j = (j + 1) & (cap - 1);
			v[2 * j] = g;
			v[2 * j + 1] = d->hc[2 * i + 1];
		}
		free(d->hc);
		d->hc = v;
		d->hc_cap = cap;
	}
	if (!d->hc_cap)
		return NULL;
	for (size_t j = (size_t)(gen * 0x9e3779b97f4a7c15ull >> 20) & (d->hc_cap - 1);;
	     j = (j + 1) & (d->hc_cap - 1)) {
		if (d->hc[2 * j] == gen)
			return &d->hc[2 * j + 1];
		if (!d->hc[2 * j]) {
			if (!add)
				return NULL;
			d->hc[2 * j] = gen;
			d->hc_used++;
			return &d->hc[2 * j + 1];
		}
	}
}

uint64_t hash_count(struct kvd *d, uint64_t gen)
{
	uint64_t *s = hc_slot(d, gen, false);

	return s ? *s : 0;
}

void hash_count_add(struct kvd *d, uint64_t gen, int64_t delta)
{
	uint64_t *s = hc_slot(d, gen, true);

	if (s)
		*s = (uint64_t)((int64_t)*s + delta);
}

/* ---- reaping replaced objects, and the startup sweep ----------------------------------------- */

/* @o (an object just replaced or deleted): delete its pieces after the round's fence. */
void obj_retire(struct kvd *d, const struct obj *o)
{
	if (o->type == T_STR)
		return;
	if (d->dead_n == d->dead_cap) {
		size_t cap = d->dead_cap ? d->dead_cap * 2 : 64;
		struct obj *v = realloc(d->dead, cap * sizeof(*v));

		if (!v)
			return; /* the pieces stay until the next startup sweeps them */
		d->dead = v;
		d->dead_cap = cap;
	}
	d->dead[d->dead_n++] = *o;
}

struct gens {
	struct kvd *d;
	uint64_t *v;
	size_t n, cap;
	uint64_t want; /* collect: sub keys of this generation (0: of dead generations) */
	struct batch bt;
	uint64_t orphans;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool gen_live(const struct gens *g, uint64_t gen)
{
	return g->n && bsearch(&gen, g->v, g->n, sizeof(gen), cmp_u64) != NULL;
}

static int pick_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct gens *g = arg;
	const uint8_t *k = paste_pool__ref_ptr(g->d->pool, key);
	uint64_t gen;

	(void)val;
	if (!k || key->len < 8)
		return 0;
	gen = sub_gen(k);
	if (g->want ? gen != g->want : gen_live(g, gen) || lkey_piece_live(g->d, k, key->len))
		return 0;
	if (g->want)
		value_retire(g->d, val); /* a field's own big string goes with the field */
	return collect_fn(key, val, &g->bt);
}

/* Delete the sub entries @g picks, a batch at a time. @return entries deleted. */
static uint64_t sub_delete_picked(struct kvd *d, struct gens *g)
{
	uint64_t total = 0, pass;

	g->bt = (struct batch){.d = d, .cap = (size_t)KV_FLUSH_BATCH * (4 + d->frame_size)};
	g->bt.buf = malloc(g->bt.cap);
	if (!g->bt.buf)
		return 0;
	do {
		g->bt.len = 0;
		g->bt.n = 0;
		pass = 0;
		paste_kv__iterate(d->sub, pick_fn, g);
		for (size_t o = 0; o < g->bt.len;) {
			uint32_t n;

			memcpy(&n, g->bt.buf + o, 4);
			pass += paste_kv__del(d->sub, g->bt.buf + o + 4, n) == 0;
			o += 4 + n;
		}
		total += pass;
	} while (g->bt.n && pass);
	free(g->bt.buf);
	return total;
}

/* After a fence: delete the pieces of the objects retired before it. */
void obj_reap(struct kvd *d)
{
	struct obj *dead = d->dead; /* reaping a collection may retire its fields' big strings */
	size_t n = d->dead_n;

	lkey_reap(d); /* chunks of deleted large keys */
	if (!n)
		return;
	d->dead = NULL;
	d->dead_n = d->dead_cap = 0;
	for (size_t i = 0; i < n; i++) {
		struct obj *o = &dead[i];

		d->arena_used = 0;
		if (o->type == T_BIG) {
			chunks_del(d, o->gen, o->n);
		} else {
			struct gens g = {.d = d, .want = o->gen};

			sub_delete_picked(d, &g);
			hash_count_add(d, o->gen, -(int64_t)hash_count(d, o->gen));
			if (o->type == T_LIST)
				hash_count_add(d, o->gen ^ LIST_HEAD_BIT,
				               -(int64_t)hash_count(d, o->gen ^ LIST_HEAD_BIT));
		}
	}
	free(dead);
}

static int add_gen(struct gens *g, uint64_t gen)
{
	if (gen >= g->d->next_gen)
		g->d->next_gen = gen + 1;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 256;
		uint64_t *v = realloc(g->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		g->v = v;
		g->cap = cap;
	}
	g->v[g->n++] = gen;
	return 0;
}

static int live_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct gens *g = arg;
	const uint8_t *k = paste_pool__ref_ptr(g->d->pool, key);
	struct obj o;

	if (k && key_db(k, key->len))
		g->d->multi_db = true;
	obj_decode(g->d, val, &o);
	if (o.type == T_STR)
		return 0;
	if (add_gen(g, o.gen))
		return -ENOMEM;
	if (!IS_STRING(o.type))
		hash_count_add(g->d, o.gen, 0);
	if (o.type == T_LIST)
		hash_count_add(g->d, o.gen ^ LIST_HEAD_BIT, 0);
	return 0;
}

/* A piece of a live collection whose value is a big string header: that string is live. */
static int nested_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct gens *g = arg;
	const uint8_t *k = paste_pool__ref_ptr(g->d->pool, key);
	struct obj o;

	if (!k || key->len < 8 || val->len != 33)
		return 0;
	obj_decode(g->d, val, &o);
	if (o.type != T_BIG || !hc_slot(g->d, sub_gen(k), false))
		return 0;
	return add_gen(g, o.gen);
}

static int count_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct gens *g = arg;
	const uint8_t *k = paste_pool__ref_ptr(g->d->pool, key);
	uint64_t *c;

	(void)val;
	if (!k || key->len < 8)
		return 0;
	c = hc_slot(g->d, sub_gen(k), false); /* collections only: live_fn registered them */
	if (c)
		(*c)++;
	c = hc_slot(g->d, sub_gen(k) ^ LIST_HEAD_BIT, false); /* a list's first position */
	if (c && key->len == 16) {
		uint64_t pos = sub_gen(k + 8);

		if (!*c || pos < *c)
			*c = pos;
	}
	return 0;
}

/*
 * Startup: find the live objects, delete pieces no header names (a crash between the pieces and
 * the header, or before a retired object was reaped), count hash fields. @return 0 or -ENOMEM.
 */
int obj_sweep(struct kvd *d)
{
	struct gens g = {.d = d};
	int err;

	d->next_gen = 1;
	err = paste_kv__iterate(d->kv, live_fn, &g);
	if (err) {
		free(g.v);
		return err;
	}
	d->have_objs = g.n > 0;
	if (g.n)
		qsort(g.v, g.n, sizeof(*g.v), cmp_u64);
	if (g.n) { /* big strings that are field values of live collections are live too */
		size_t before = g.n;

		err = paste_kv__iterate(d->sub, nested_fn, &g);
		if (err) {
			free(g.v);
			return err;
		}
		if (g.n != before)
			qsort(g.v, g.n, sizeof(*g.v), cmp_u64);
	}
	d->start_orphan_pieces = sub_delete_picked(d, &g);
	paste_pool__drain(d->pool);
	/* hash field counts: every live piece that is not a 4-byte chunk key of a big string */
	paste_kv__iterate(d->sub, count_fn, &g);
	free(g.v);
	return 0;
}
