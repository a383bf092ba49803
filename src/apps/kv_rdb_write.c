/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_rdb_write.c - the keyspace as an RDB file (version 10, what Redis 7.0 writes and reads), for a
 * replica's full resynchronisation (kv_primary.c). Strings (big ones piece by piece from the
 * pool), hashes, sets, lists and sorted sets, each with its expiry; every database that has keys.
 * No compression and no compact encodings: every value is a plain length-prefixed string, which
 * Redis loads into whatever encoding suits it. The file ends with the EOF opcode and the CRC-64
 * (Jones polynomial, reflected, as Redis checks it).
 *
 * Collections: their members are pieces of the piece index keyed by the object's generation. One
 * walk of that index gathers the pieces of every collection, sorted by (generation, piece key) -
 * which is also a list's element order - so the snapshot costs one walk of each index, not one
 * per collection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"
#include "kv_primary.h"

enum {
	RDB_STRING = 0,
	RDB_LIST = 1,
	RDB_SET = 2,
	RDB_HASH = 4,
	RDB_ZSET_2 = 5,
	RDB_OP_AUX = 0xFA,
	RDB_OP_EXPIRETIME_MS = 0xFC,
	RDB_OP_SELECTDB = 0xFE,
	RDB_OP_EOF = 0xFF,
};

#define RDB_MAGIC "REDIS0010"

/* ---- CRC-64 (Jones, reflected; crc64("123456789") = 0xe9c6d914c4b8d9ca) ------------------- */

static uint64_t crc_tab[256];

static void crc_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint64_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x95ac9329ac4bc9b5ull : c >> 1;
		crc_tab[i] = c;
	}
}

uint64_t kv_rdb_write_crc64(uint64_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (!crc_tab[1])
		crc_init();
	for (size_t i = 0; i < n; i++)
		crc = crc_tab[(uint8_t)(crc ^ b[i])] ^ (crc >> 8);
	return crc;
}

/* ---- encoding ------------------------------------------------------------------------------- */

int kv_rbuf_add(struct kv_rbuf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *q;

		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	if (n && p) /* NULL: reserve @n bytes for the caller to fill */
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int put_byte(struct kv_rbuf *b, uint8_t v)
{
	return kv_rbuf_add(b, &v, 1);
}

/* RDB length: 6 bits, 14 bits, or a 32- or 64-bit big-endian number after a marker byte. */
static int put_len(struct kv_rbuf *b, uint64_t n)
{
	uint8_t h[9];
	size_t k;

	if (n < 64) {
		h[0] = (uint8_t)n;
		k = 1;
	} else if (n < 16384) {
		h[0] = (uint8_t)(0x40 | (n >> 8));
		h[1] = (uint8_t)n;
		k = 2;
	} else if (n <= UINT32_MAX) {
		h[0] = 0x80;
		for (int i = 0; i < 4; i++)
			h[1 + i] = (uint8_t)(n >> (24 - 8 * i));
		k = 5;
	} else {
		h[0] = 0x81;
		for (int i = 0; i < 8; i++)
			h[1 + i] = (uint8_t)(n >> (56 - 8 * i));
		k = 9;
	}
	return kv_rbuf_add(b, h, k);
}

static int put_str(struct kv_rbuf *b, const void *p, size_t n)
{
	return put_len(b, n) || kv_rbuf_add(b, p, n) ? -ENOMEM : 0;
}

static int put_le64(struct kv_rbuf *b, uint64_t v)
{
	uint8_t h[8];

	for (int i = 0; i < 8; i++)
		h[i] = (uint8_t)(v >> (8 * i));
	return kv_rbuf_add(b, h, 8);
}

static int put_aux(struct kv_rbuf *b, const char *k, const char *v)
{
	return put_byte(b, RDB_OP_AUX) || put_str(b, k, strlen(k)) || put_str(b, v, strlen(v))
	           ? -ENOMEM
	           : 0;
}

/* A stored string value (one reference, or a big string's pieces) as an RDB string. */
static int put_value(struct kvd *d, struct kv_rbuf *b, const struct paste_ref *ref)
{
	struct obj o;

	obj_decode(d, ref, &o);
	if (o.type == T_STR)
		return put_str(b, o.p, o.len);
	if (o.type != T_BIG)
		return -EINVAL;
	if (put_len(b, o.len))
		return -ENOMEM;
	for (uint64_t i = 0, at = 0; i < o.n; i++) {
		const uint8_t *p;
		size_t n;

		if (big_chunk(d, &o, i, &p, &n))
			return -EIO;
		if (at + n > o.len)
			n = o.len - at;
		if (kv_rbuf_add(b, p, n))
			return -ENOMEM;
		at += n;
	}
	return 0;
}

/* ---- collections -------------------------------------------------------------------------- */

struct piece {
	uint64_t gen;
	struct paste_ref k, v;
};

struct kv_rdb_snap {
	struct kvd *d;
	struct kv_rbuf *b;
	uint64_t *gens; /* generations of the collections (sorted) */
	size_t ngens, gens_cap;
	struct piece *pc; /* their pieces, sorted by (generation, key) */
	size_t npc, pc_cap;
	uint8_t tag; /* the database being written */
	uint64_t keys;
	int err;
};

static int gens_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct kv_rdb_snap *s = arg;
	struct obj o;

	(void)key;
	obj_decode(s->d, val, &o);
	if (IS_STRING(o.type))
		return 0;
	if (s->ngens == s->gens_cap) {
		size_t cap = s->gens_cap ? s->gens_cap * 2 : 64;
		uint64_t *v = realloc(s->gens, cap * sizeof(*v));

		if (!v)
			return s->err = -ENOMEM;
		s->gens = v;
		s->gens_cap = cap;
	}
	s->gens[s->ngens++] = o.gen;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int pieces_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct kv_rdb_snap *s = arg;
	const uint8_t *k = paste_pool__ref_ptr(s->d->pool, key);
	uint64_t gen;

	if (!k || key->len < 8)
		return 0;
	gen = sub_gen(k);
	if (!bsearch(&gen, s->gens, s->ngens, sizeof(gen), cmp_u64))
		return 0;
	if (s->npc == s->pc_cap) {
		size_t cap = s->pc_cap ? s->pc_cap * 2 : 256;
		struct piece *v = realloc(s->pc, cap * sizeof(*v));

		if (!v)
			return s->err = -ENOMEM;
		s->pc = v;
		s->pc_cap = cap;
	}
	s->pc[s->npc++] = (struct piece){.gen = gen, .k = *key, .v = *val};
	return 0;
}

static struct kvd *sort_d; /* qsort has no argument: the one snapshot being sorted */

static int cmp_piece(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;
	const uint8_t *p, *q;
	size_t n;
	int c;

	if (x->gen != y->gen)
		return x->gen < y->gen ? -1 : 1;
	p = paste_pool__ref_ptr(sort_d->pool, &x->k);
	q = paste_pool__ref_ptr(sort_d->pool, &y->k);
	n = x->k.len < y->k.len ? x->k.len : y->k.len;
	c = memcmp(p, q, n);
	return c ? c : (x->k.len > y->k.len) - (x->k.len < y->k.len);
}

/* The pieces of collection @gen: *first and the count. */
static size_t pieces_of(const struct kv_rdb_snap *s, uint64_t gen, size_t *first)
{
	size_t lo = 0, hi = s->npc, end;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->pc[mid].gen < gen)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < s->npc && s->pc[end].gen == gen; end++)
		;
	*first = lo;
	return end - lo;
}

static int put_collection(struct kv_rdb_snap *s, const struct obj *o)
{
	struct kv_rbuf *b = s->b;
	size_t first, n = pieces_of(s, o->gen, &first);

	if (put_len(b, n))
		return -ENOMEM;
	for (size_t i = first; i < first + n; i++) {
		const struct piece *pc = &s->pc[i];
		const uint8_t *k = paste_pool__ref_ptr(s->d->pool, &pc->k);
		const uint8_t *v = paste_pool__ref_ptr(s->d->pool, &pc->v);
		size_t vn = pc->v.len ? pc->v.len - 1 : 0;
		int err = 0;

		if (!k || !v)
			return -EIO;
		switch (o->type) {
		case T_HASH: /* field, value (a value larger than a frame is a big string) */
			err = put_str(b, k + 8, pc->k.len - 8) || put_value(s->d, b, &pc->v);
			break;
		case T_SET:
			err = put_str(b, k + 8, pc->k.len - 8);
			break;
		case T_LIST: /* gen | 8-byte position: sorted, so in list order */
			err = put_str(b, v, vn);
			break;
		case T_ZSET: { /* member, then the score as a little-endian binary double */
			char num[64];
			double sc;
			uint64_t bits;

			snprintf(num, sizeof(num), "%.*s", (int)(vn < 63 ? vn : 63),
			         (const char *)v);
			sc = strtod(num, NULL);
			memcpy(&bits, &sc, 8);
			err = put_str(b, k + 8, pc->k.len - 8) || put_le64(b, bits);
			break;
		}
		default:
			return -EINVAL;
		}
		if (err)
			return -ENOMEM;
	}
	return 0;
}

/* ---- keys --------------------------------------------------------------------------------- */

static int type_byte(int t)
{
	switch (t) {
	case T_HASH:
		return RDB_HASH;
	case T_SET:
		return RDB_SET;
	case T_LIST:
		return RDB_LIST;
	case T_ZSET:
		return RDB_ZSET_2;
	default:
		return RDB_STRING;
	}
}

/* One key (@p, @n: its stored form, the database tag last) and its value @val, with its expiry. */
static int put_key(struct kv_rdb_snap *s, const uint8_t *p, size_t n, const struct paste_ref *val)
{
	struct kv_rbuf *b = s->b;
	size_t mark = s->d->arena_used;
	struct str k = {.p = p, .n = (uint32_t)n};
	uint8_t *full = NULL; /* a large key's bytes: its stored form is a stand-in (kv_lkey.c) */
	size_t fn = 0;
	struct obj o;
	uint64_t dl;
	int err;

	obj_decode(s->d, val, &o);
	if (!IS_STRING(o.type)) {
		size_t first;

		if (!pieces_of(s, o.gen, &first))
			return 0; /* Redis refuses an empty collection in an RDB */
	}
	if (lkey_is(p, n) && !(full = lkey_bytes(s->d, p, n, &fn)))
		return 0; /* its chunks are gone: the startup sweep drops such a key */
	dl = ttl_get(s->d, &k);
	s->d->arena_used = mark;
	if ((dl && (put_byte(b, RDB_OP_EXPIRETIME_MS) || put_le64(b, dl))) ||
	    put_byte(b, (uint8_t)type_byte(o.type)) ||
	    (full ? put_str(b, full, fn) : put_str(b, p, n - 1))) {
		free(full);
		return -ENOMEM;
	}
	free(full);
	err = IS_STRING(o.type) ? put_value(s->d, b, val) : put_collection(s, &o);
	s->d->arena_used = mark;
	if (!err)
		s->keys++;
	return err;
}

static int key_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct kv_rdb_snap *s = arg;
	const uint8_t *p = paste_pool__ref_ptr(s->d->pool, key);
	int err;

	if (!p || !key_in(p, key->len, s->tag))
		return 0;
	err = put_key(s, p, key->len, val);
	return err ? (s->err = err) : 0;
}

/* Gather the pieces of every collection, sorted by (generation, key): one walk of each index. */
static int gather(struct kv_rdb_snap *s)
{
	struct kvd *d = s->d;

	if (!d->have_objs)
		return 0;
	paste_kv__iterate(d->kv, gens_fn, s);
	if (!s->err && s->ngens) {
		qsort(s->gens, s->ngens, sizeof(*s->gens), cmp_u64);
		paste_kv__iterate(d->sub, pieces_fn, s);
		sort_d = d;
		if (!s->err)
			qsort(s->pc, s->npc, sizeof(*s->pc), cmp_piece);
	}
	return s->err;
}

static int put_header(struct kv_rbuf *b)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", (long long)time(NULL));
	return kv_rbuf_add(b, RDB_MAGIC, strlen(RDB_MAGIC)) || put_aux(b, "redis-ver", "7.0.0") ||
	               put_aux(b, "redis-bits", "64") || put_aux(b, "aof-base", "0") ||
	               put_aux(b, "ctime", num)
	           ? -ENOMEM
	           : 0;
}

/* ---- a snapshot written key by key (kv_primary_snap.c) -------------------------------------- */

/*
 * Begin a snapshot written piece by piece: the header goes to @b, and the pieces of every
 * collection are gathered now (references: valid as long as their key is not changed, which the
 * caller guarantees by writing a key before any command changes it).
 */
int kv_rdb_write_begin(struct kvd *d, struct kv_rdb_snap **out, struct kv_rbuf *b)
{
	struct kv_rdb_snap *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->d = d;
	s->tag = 0xFF; /* no database selected yet */
	err = put_header(b);
	if (!err)
		err = gather(s);
	if (err) {
		kv_rdb_write_free(s);
		return err;
	}
	*out = s;
	return 0;
}

/* The key @k (stored form) as it is now, if it exists, appended to @b. */
int kv_rdb_write_key(struct kv_rdb_snap *s, const uint8_t *k, size_t n, struct kv_rbuf *b)
{
	struct paste_ref val;
	uint8_t tag = db_tag(key_db(k, n)); /* a large key's stand-in ends in its own tag */

	if (paste_kv__get(s->d->kv, k, n, &val))
		return 0; /* gone (cannot happen: it is written before a command deletes it) */
	s->b = b;
	if (tag != s->tag) {
		int db = tag == '\r' ? 0 : tag - 0x80;

		if (put_byte(b, RDB_OP_SELECTDB) || put_len(b, (uint64_t)db))
			return -ENOMEM;
		s->tag = tag;
	}
	return put_key(s, k, n, &val);
}

/* The end: EOF and the CRC-64 of everything written (@crc: of what went before @b's bytes). */
int kv_rdb_write_end(struct kv_rdb_snap *s, struct kv_rbuf *b, uint64_t crc)
{
	(void)s;
	if (put_byte(b, RDB_OP_EOF))
		return -ENOMEM;
	return put_le64(b, kv_rdb_write_crc64(crc, b->p, b->len));
}

void kv_rdb_write_free(struct kv_rdb_snap *s)
{
	if (!s)
		return;
	free(s->gens);
	free(s->pc);
	free(s);
}

/*
 * The whole keyspace, now, as an RDB file appended to @b. Runs to completion in the event loop's
 * thread: nothing changes while it runs, so the file is the state at this point of the
 * replication stream. @return 0, -ENOMEM, or -EIO (a piece the index names is missing).
 */
int kv_rdb_write_keyspace(struct kvd *d, struct kv_rbuf *b)
{
	struct kv_rdb_snap s = {.d = d, .b = b};
	size_t start = b->len;
	uint64_t crc;
	int err;

	if (put_header(b))
		return -ENOMEM;
	gather(&s);
	for (int db = 0; db < (d->multi_db ? KV_DBS : 1) && !s.err; db++) {
		size_t at = b->len;
		uint64_t before = s.keys;

		if (put_byte(b, RDB_OP_SELECTDB) || put_len(b, (uint64_t)db)) {
			s.err = -ENOMEM;
			break;
		}
		s.tag = db_tag(db);
		paste_kv__iterate(d->kv, key_fn, &s);
		if (s.keys == before)
			b->len = at; /* no key in this database: no SELECTDB either */
	}
	err = s.err;
	free(s.gens);
	free(s.pc);
	if (err)
		return err;
	if (put_byte(b, RDB_OP_EOF))
		return -ENOMEM;
	crc = kv_rdb_write_crc64(0, b->p + start, b->len - start);
	return put_le64(b, crc);
}
