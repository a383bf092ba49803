/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_kvapp.c - paste-kv's app-level commit protocols on the library's kv index, under crashes
 * (paste-powerfail --probe kvapp [--ops N] [--seed S]).
 *
 * A model of what paste-kv does (src/apps/kv_obj.c, kv_hash.c, kv_tx.c; docs/kv-index.md) on
 * three real persistent indexes of one pool: "ka.kv" (main: key -> value or object header),
 * "ka.sub" (pieces: generation(8, big endian) | piece -> bytes) and "ka.undo" (the undo log).
 * It does not link paste-kv: the steps, their order and their fences are restated here.
 *
 *  - big string: pieces gen|chunk(4) in ka.sub, a fence (pieces_fence), the header (gen, chunk
 *    count, version) in ka.kv (as big_store()), then the round's drain, then the old object's
 *    pieces are deleted (obj_reap) and drained;
 *  - hash: one piece gen|field(1) per field; an HSET of one field on an existing hash is one put;
 *    on a new hash the field, a fence, then the header (as hash_put());
 *  - large keys (kv_lkey.c): keys 4 and 5 are named by a 26-byte surrogate; a new one gets its
 *    key chunks LK_GEN|surrogate|chunk(4) in ka.sub (not logged: LK_GEN >= any gen0), a fence,
 *    then its header; a deleted one's chunks are deleted after the round's drain unless the key
 *    was stored again in the same round (lkey_reap); "DEL+SET" does exactly that;
 *  - multi-key writes (MSET of big strings, HSET of several fields) through the undo log: the
 *    marker "H" -> id, an entry id|seq|index|had|key -> old value per (index, key) before its first
 *    change, a fence before the first change, pieces of new generations not logged; at the end a
 *    fence, the marker's deletion (the commit point), the round's drain, then the entries'
 *    deletion.
 *
 * Every flush and fence of every operation is a crash point (dense capture, both eviction models
 * alternating). Each image is opened (the library's recovery), then paste-kv's startup is
 * modelled on it: roll back the transaction whose marker is there (tx_recover), delete pieces no
 * header names (obj_sweep). Checks: (a) a key names its complete old or complete new value, never
 * a header whose pieces are missing; (b) each hash field is its old or new value; (c) the keys and
 * fields of a group are all old or all new; (d) a large key's surrogate on media names all its
 * key chunks; and no orphan piece (object or key chunk) survives the sweep.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

#define KA_KEYS  6
#define KA_MAXP  3 /* chunks of a big string, fields of a hash */
#define KA_MARK  "H"
#define KA_UHDR  14 /* undo entry key: id(8) | seq(4) | index(1) | had(1) | key */
#define KA_MAGIC 0x424f4b50u
#define KA_LKEYS 2          /* the last KA_LKEYS keys are large keys (kv_lkey.c) */
#define KA_SUR   26         /* a large key's surrogate: hash | length | slot | tag */
#define KA_LKGEN UINT64_MAX /* the generation of key chunks */
#define KA_KCH   2          /* chunks of a large key */
#define KA_KMAX  40         /* longest main or sub key of the model */

enum { KA_NONE, KA_BIG, KA_HASH };

/* A key's value as the model and the checks see it. */
struct ka_val {
	uint32_t type;
	uint32_t n;            /* big: chunks */
	uint64_t gen;          /* object generation */
	uint32_t ver[KA_MAXP]; /* big: ver[0] is the value's version; hash: per field, 0 absent */
};

/* Stored header (the value in ka.kv). */
struct ka_hdr {
	uint32_t magic, type, n, ver;
	uint64_t gen;
};

/* Stored piece (the value in ka.sub). */
struct ka_piece {
	uint64_t gen;
	uint32_t idx, ver;
};

struct ka {
	struct paste_pool *pool;
	struct paste_kv *kv, *sub, *undo;
	struct sim_pmem pm;
	struct sim_rng rng;
	struct ka_val cur[KA_KEYS], old[KA_KEYS];
	uint64_t next_gen, tx_id, next_ver;
	/* the transaction in progress (the model of kv_tx.c) */
	bool in_tx, logged, unfenced;
	uint64_t gen0;
	uint32_t seq;
	uint8_t ukeys[16][KA_UHDR + KA_KMAX];
	bool kch[KA_KEYS]; /* a large key's chunks are in ka.sub (as the model wrote them) */
	size_t uklen[16];
	unsigned nukeys;
	/* the operation being crashed: which keys, all-or-nothing or per key */
	bool group;
	int mid_absent; /* this key may also be absent (DEL+SET: two commands, crash between) */
	const char *opname;
	/* results */
	uint64_t ops, points, violations, rollbacks, orphans, max_calls, calls, len[6];
	unsigned reports;
	const char *crash_path;
};

static void ka_viol(struct ka *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ka_viol(struct ka *a, const char *fmt, ...)
{
	va_list ap;

	a->violations++;
	if (a->reports++ >= 10)
		return;
	printf("VIOLATION [kvapp op %llu %s, crash point %llu]: ", (unsigned long long)a->ops,
	       a->opname, (unsigned long long)a->points);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
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

static bool is_large(unsigned i)
{
	return i >= KA_KEYS - KA_LKEYS;
}

/* Key @i as the main index names it: 8 bytes, or a large key's surrogate. @return its length. */
static size_t main_key(uint8_t *k, unsigned i)
{
	if (is_large(i)) {
		memset(k, 0, KA_SUR);
		memcpy(k, "kvapp-lk", 8);
		k[8] = (uint8_t)('0' + i);
		k[KA_SUR - 1] = 0x90; /* database 0's large-key tag */
		return KA_SUR;
	}
	memcpy(k, "kvapp-k", 7);
	k[7] = (uint8_t)('0' + i);
	return 8;
}

/* Chunk @c of large key @i: LK_GEN | surrogate | chunk (4). */
static size_t kchunk_key(uint8_t *sk, unsigned i, uint32_t c)
{
	be_put(sk, KA_LKGEN, 8);
	main_key(sk + 8, i);
	be_put(sk + 8 + KA_SUR, c, 4);
	return 8 + KA_SUR + 4;
}

static size_t sub_key(uint8_t *k, uint64_t gen, uint32_t piece, bool hash)
{
	be_put(k, gen, 8);
	if (hash) {
		k[8] = (uint8_t)piece;
		return 9;
	}
	be_put(k + 8, piece, 4);
	return 12;
}

/* Put key -> value bytes into @kv (fresh frames, as paste_keep_copy). */
static int raw_put(struct paste_pool *pool, struct paste_kv *kv, const void *k, size_t kn,
                   const void *v, size_t vn)
{
	struct paste_ref kr, vr;
	int err = sim_payload_on(pool, k, (uint32_t)kn, &kr);

	if (err)
		return err;
	err = sim_payload_on(pool, v, (uint32_t)vn, &vr);
	if (err) {
		paste_pool__ref_put(pool, &kr);
		return err;
	}
	err = paste_kv__put(kv, &kr, &vr);
	if (err) {
		paste_pool__ref_put(pool, &kr);
		paste_pool__ref_put(pool, &vr);
	}
	return err;
}

/* ---- the transaction (kv_tx.c) -------------------------------------------------------------- */

static int tx_log(struct ka *a, int ix, const uint8_t *k, size_t n)
{
	struct paste_kv *kv = ix == 0 ? a->kv : a->sub;
	struct paste_ref old;
	uint8_t u[KA_UHDR + KA_KMAX];
	int err;

	if (!a->in_tx || (ix == 1 && be_get(k, 8) >= a->gen0))
		return 0; /* pieces of objects made inside the transaction are not logged */
	for (unsigned i = 0; i < a->nukeys; i++)
		if (a->uklen[i] == KA_UHDR + n && a->ukeys[i][12] == ix &&
		    !memcmp(a->ukeys[i] + KA_UHDR, k, n))
			return 0;
	if (!a->logged) {
		uint8_t id[8];

		be_put(id, a->tx_id, 8);
		err = raw_put(a->pool, a->undo, KA_MARK, 1, id, 8);
		if (err)
			return err;
		a->logged = true;
	}
	be_put(u, a->tx_id, 8);
	be_put(u + 8, a->seq++, 4);
	u[12] = (uint8_t)ix;
	u[13] = paste_kv__get(kv, k, n, &old) == 0;
	memcpy(u + KA_UHDR, k, n);
	if (u[13])
		err = raw_put(a->pool, a->undo, u, KA_UHDR + n, paste_pool__ref_ptr(a->pool, &old),
		              old.len);
	else
		err = raw_put(a->pool, a->undo, u, KA_UHDR + n, "-", 1);
	if (err)
		return err;
	memcpy(a->ukeys[a->nukeys], u, KA_UHDR + n);
	a->uklen[a->nukeys++] = KA_UHDR + n;
	a->unfenced = true;
	return 0;
}

/* ix_put / ix_del: the logged old values are fenced before the change. */
static int tx_ready(struct ka *a, int ix, const uint8_t *k, size_t n)
{
	int err = tx_log(a, ix, k, n);

	if (!err && a->unfenced) {
		paste_pool__persist(a->pool, paste_pool__base(a->pool), 0);
		a->unfenced = false;
	}
	return err;
}

static int ix_put(struct ka *a, int ix, const uint8_t *k, size_t kn, const void *v, size_t vn)
{
	int err = tx_ready(a, ix, k, kn);

	return err ? err : raw_put(a->pool, ix == 0 ? a->kv : a->sub, k, kn, v, vn);
}

static int ix_del(struct ka *a, int ix, const uint8_t *k, size_t kn)
{
	int err = tx_ready(a, ix, k, kn);

	return err ? err : paste_kv__del(ix == 0 ? a->kv : a->sub, k, kn);
}

static void tx_begin(struct ka *a)
{
	a->in_tx = true;
	a->logged = a->unfenced = false;
	a->tx_id++;
	a->seq = 0;
	a->nukeys = 0;
	a->gen0 = a->next_gen;
}

static void tx_end(struct ka *a)
{
	a->in_tx = false;
	if (!a->logged)
		return;
	paste_pool__persist(a->pool, paste_pool__base(a->pool), 0); /* every change durable */
	paste_kv__del(a->undo, KA_MARK, 1);                         /* the commit point */
}

/* After the round's drain: the entries go (tx_gc). */
static void tx_gc(struct ka *a)
{
	for (unsigned i = 0; i < a->nukeys; i++)
		paste_kv__del(a->undo, a->ukeys[i], a->uklen[i]);
	a->nukeys = 0;
}

/* ---- objects (kv_obj.c, kv_hash.c) ---------------------------------------------------------- */

/* lkey_make(): a large key without chunks gets them, then a fence, before its surrogate. */
static int key_make(struct ka *a, unsigned k)
{
	uint8_t sk[KA_KMAX];
	int err = 0;

	if (!is_large(k) || a->kch[k])
		return 0;
	for (uint32_t c = 0; c < KA_KCH && !err; c++) {
		struct ka_piece p = {.gen = KA_LKGEN, .idx = c, .ver = k};

		err = ix_put(a, 1, sk, kchunk_key(sk, k, c), &p, sizeof(p));
	}
	if (err)
		return err;
	paste_pool__persist(a->pool, paste_pool__base(a->pool), 0);
	a->kch[k] = true;
	return 0;
}

static int hdr_put(struct ka *a, unsigned k, const struct ka_val *v)
{
	struct ka_hdr h = {.magic = KA_MAGIC, .type = v->type, .n = v->n, .gen = v->gen};
	uint8_t key[KA_KMAX];
	size_t kn = main_key(key, k);
	int err;

	h.ver = v->type == KA_BIG ? v->ver[0] : 0;
	paste_pool__persist(a->pool, paste_pool__base(a->pool), 0); /* pieces_fence() */
	err = key_make(a, k);                                       /* store(): lkey_make() */
	return err ? err : ix_put(a, 0, key, kn, &h, sizeof(h));
}

/* lkey_reap(), after the round's drain: chunks of a large key not in the main index (any more). */
static void key_reap(struct ka *a, unsigned k)
{
	uint8_t key[KA_KMAX], sk[KA_KMAX];
	size_t kn = main_key(key, k);
	struct paste_ref r;

	if (!is_large(k) || !a->kch[k] || paste_kv__get(a->kv, key, kn, &r) == 0)
		return;
	for (uint32_t c = 0; c < KA_KCH; c++)
		paste_kv__del(a->sub, sk, kchunk_key(sk, k, c));
	a->kch[k] = false;
}

static int piece_put(struct ka *a, uint64_t gen, uint32_t i, uint32_t ver, bool hash)
{
	struct ka_piece p = {.gen = gen, .idx = i, .ver = ver};
	uint8_t sk[12];

	return ix_put(a, 1, sk, sub_key(sk, gen, i, hash), &p, sizeof(p));
}

/* The replaced object's pieces, after the round's fence (obj_reap). */
static void reap(struct ka *a, const struct ka_val *o)
{
	uint8_t sk[12];

	for (uint32_t i = 0; i < KA_MAXP; i++)
		if ((o->type == KA_BIG && i < o->n) || (o->type == KA_HASH && o->ver[i]))
			paste_kv__del(a->sub, sk, sub_key(sk, o->gen, i, o->type == KA_HASH));
}

/* A new big string at key @k: pieces, then the header (big_store). */
static int set_big(struct ka *a, unsigned k)
{
	struct ka_val v = {.type = KA_BIG, .gen = a->next_gen++};
	int err = 0;

	v.n = 1 + sim_below(&a->rng, KA_MAXP);
	v.ver[0] = (uint32_t)++a->next_ver;
	for (uint32_t i = 0; i < v.n && !err; i++)
		err = piece_put(a, v.gen, i, v.ver[0], false);
	if (!err)
		err = hdr_put(a, k, &v);
	if (!err)
		a->cur[k] = v;
	return err;
}

/* HSET of fields @fmask on key @k (a new hash if it is not one): fields, then a new header. */
static int hset(struct ka *a, unsigned k, unsigned fmask)
{
	struct ka_val v = a->cur[k];
	bool fresh = v.type != KA_HASH;
	int err = 0;

	if (fresh)
		v = (struct ka_val){.type = KA_HASH, .gen = a->next_gen++};
	for (uint32_t f = 0; f < KA_MAXP && !err; f++) {
		if (!(fmask & 1u << f))
			continue;
		v.ver[f] = (uint32_t)++a->next_ver;
		err = piece_put(a, v.gen, f, v.ver[f], true);
	}
	if (!err && fresh)
		err = hdr_put(a, k, &v);
	if (!err)
		a->cur[k] = v;
	return err;
}

/* ---- recovery of an image (tx_recover, obj_sweep) and the checks ---------------------------- */

struct ka_walk {
	struct ka *a;
	struct paste_pool *pool;
	struct paste_kv *kv, *sub;
	uint64_t id;
	uint8_t (*keys)[KA_UHDR + KA_KMAX];
	size_t *lens;
	unsigned n, cap;
	uint64_t live[KA_KEYS];
	unsigned nlive;
	int err;
};

static void walk_keep(struct ka_walk *w, const uint8_t *k, size_t n)
{
	if (w->n < w->cap && n <= KA_UHDR + KA_KMAX) {
		memcpy(w->keys[w->n], k, n);
		w->lens[w->n++] = n;
	}
}

static int undo_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct ka_walk *w = arg;
	const uint8_t *u = paste_pool__ref_ptr(w->pool, key);
	struct paste_kv *kv;

	walk_keep(w, u, key->len);
	if (key->len < KA_UHDR || be_get(u, 8) != w->id)
		return 0;
	kv = u[12] == 0 ? w->kv : w->sub;
	if (!u[13])
		paste_kv__del(kv, u + KA_UHDR, key->len - KA_UHDR);
	else
		w->err = raw_put(w->pool, kv, u + KA_UHDR, key->len - KA_UHDR,
		                 paste_pool__ref_ptr(w->pool, val), val->len);
	w->a->rollbacks++;
	return w->err ? 1 : 0;
}

static int live_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct ka_walk *w = arg;
	struct ka_hdr h;

	(void)key;
	if (val->len == sizeof(h) && w->nlive < KA_KEYS) {
		memcpy(&h, paste_pool__ref_ptr(w->pool, val), sizeof(h));
		if (h.magic == KA_MAGIC)
			w->live[w->nlive++] = h.gen;
	}
	return 0;
}

static int orphan_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct ka_walk *w = arg;
	const uint8_t *k = paste_pool__ref_ptr(w->pool, key);
	uint64_t gen = be_get(k, 8);
	struct paste_ref r;

	(void)val;
	if (gen == KA_LKGEN && key->len == 8 + KA_SUR + 4 &&
	    paste_kv__get(w->kv, k + 8, KA_SUR, &r) == 0)
		return 0; /* a chunk of a stored large key (obj_sweep: lkey_piece_live) */
	for (unsigned i = 0; i < w->nlive; i++)
		if (w->live[i] == gen)
			return 0;
	walk_keep(w, k, key->len);
	return 0;
}

/* paste-kv's startup on a recovered pool: rollback, then the orphan sweep. */
static int ka_startup(struct ka *a, struct paste_pool *rec, struct paste_kv *kv,
                      struct paste_kv *sub, struct paste_kv *undo)
{
	uint8_t keys[256][KA_UHDR + KA_KMAX];
	size_t lens[256];
	struct ka_walk w = {
	    .a = a, .pool = rec, .kv = kv, .sub = sub, .keys = keys, .lens = lens, .cap = 256};
	struct paste_ref mr;

	if (paste_kv__get(undo, KA_MARK, 1, &mr) == 0 && mr.len == 8) {
		w.id = be_get(paste_pool__ref_ptr(rec, &mr), 8);
		paste_kv__iterate(undo, undo_fn, &w);
		if (w.err)
			return w.err;
	} else {
		paste_kv__iterate(undo, undo_fn, &w); /* id 0: nothing undone, keys collected */
	}
	paste_pool__drain(rec);
	paste_kv__del(undo, KA_MARK, 1);
	paste_pool__drain(rec);
	for (unsigned i = 0; i < w.n; i++)
		paste_kv__del(undo, keys[i], lens[i]);
	paste_pool__drain(rec);
	w.n = 0;
	paste_kv__iterate(kv, live_fn, &w);
	paste_kv__iterate(sub, orphan_fn, &w);
	a->orphans += w.n;
	for (unsigned i = 0; i < w.n; i++)
		paste_kv__del(sub, keys[i], lens[i]);
	paste_pool__drain(rec);
	return 0;
}

/* Read key @k's value; a header whose pieces are missing is a violation. */
static void ka_read(struct ka *a, struct paste_pool *rec, struct paste_kv *kv, struct paste_kv *sub,
                    unsigned k, struct ka_val *v)
{
	struct paste_ref r;
	struct ka_hdr h;
	struct ka_piece p;
	uint8_t key[KA_KMAX], sk[KA_KMAX];
	size_t kn;

	memset(v, 0, sizeof(*v));
	kn = main_key(key, k);
	if (paste_kv__get(kv, key, kn, &r))
		return;
	for (uint32_t c = 0; is_large(k) && c < KA_KCH; c++) {
		if (paste_kv__get(sub, sk, kchunk_key(sk, k, c), &r)) {
			ka_viol(a, "large key %u: its surrogate is stored, its chunk %u is missing",
			        k, c);
			continue;
		}
		memcpy(&p, paste_pool__ref_ptr(rec, &r), sizeof(p));
		if (p.gen != KA_LKGEN || p.idx != c || p.ver != k)
			ka_viol(a, "large key %u: chunk %u holds another key's bytes", k, c);
	}
	paste_kv__get(kv, key, kn, &r);
	if (r.len != sizeof(h)) {
		ka_viol(a, "key %u: a value of %u bytes, not a header", k, r.len);
		return;
	}
	memcpy(&h, paste_pool__ref_ptr(rec, &r), sizeof(h));
	v->type = h.type;
	v->gen = h.gen;
	v->n = h.n;
	for (uint32_t i = 0; i < KA_MAXP; i++) {
		bool hash = h.type == KA_HASH;

		if (!hash && i >= h.n)
			break;
		if (paste_kv__get(sub, sk, sub_key(sk, h.gen, i, hash), &r)) {
			if (!hash)
				ka_viol(a,
				        "key %u: header of generation %llu names chunk %u, missing",
				        k, (unsigned long long)h.gen, i);
			continue;
		}
		memcpy(&p, paste_pool__ref_ptr(rec, &r), sizeof(p));
		if (p.gen != h.gen || p.idx != i || (!hash && p.ver != h.ver))
			ka_viol(a, "key %u: piece %u of generation %llu holds another value", k, i,
			        (unsigned long long)h.gen);
		v->ver[i] = hash ? p.ver : h.ver;
	}
	if (h.type == KA_BIG)
		memset(v->ver + 1, 0, sizeof(v->ver) - sizeof(v->ver[0])), v->ver[0] = h.ver;
}

static bool val_eq(const struct ka_val *x, const struct ka_val *y)
{
	return x->type == y->type &&
	       (x->type == KA_NONE ||
	        (x->gen == y->gen && x->n == y->n && !memcmp(x->ver, y->ver, sizeof(x->ver))));
}

static int count_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	(void)key, (void)val;
	++*(uint64_t *)arg;
	return 0;
}

/* One crash image: recover it, run paste-kv's startup, compare with old/new. */
static void ka_check(struct ka *a, const uint8_t *img)
{
	struct paste_pool_opts o = {.sz = sizeof(o)};
	struct paste_pool *rec;
	struct paste_kv *kv, *sub, *undo;
	struct ka_val got[KA_KEYS];
	uint64_t pieces = 0, want = 0;
	bool all_old = true, all_new = true;
	int fd, err;

	a->points++;
	unlink(a->crash_path);
	fd = open(a->crash_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, img, a->pm.size) != (ssize_t)a->pm.size) {
		if (fd >= 0)
			close(fd);
		ka_viol(a, "cannot write the crash image %s", a->crash_path);
		return;
	}
	close(fd);
	err = paste_pool__open(&rec, a->crash_path, &o);
	if (err) {
		ka_viol(a, "paste_pool__open fails: %s", paste_last_error());
		unlink(a->crash_path);
		return;
	}
	if ((err = paste_kv__open(&kv, rec, "ka.kv", NULL)) ||
	    (err = paste_kv__open(&sub, rec, "ka.sub", NULL)) ||
	    (err = paste_kv__open(&undo, rec, "ka.undo", NULL)) ||
	    (err = ka_startup(a, rec, kv, sub, undo))) {
		ka_viol(a, "opening the indexes or the startup fails: %s", paste_last_error());
		goto out;
	}
	for (unsigned k = 0; k < KA_KEYS; k++) {
		ka_read(a, rec, kv, sub, k, &got[k]);
		all_old &= val_eq(&got[k], &a->old[k]);
		all_new &= val_eq(&got[k], &a->cur[k]);
		if (!val_eq(&got[k], &a->old[k]) && !val_eq(&got[k], &a->cur[k]) &&
		    !((int)k == a->mid_absent && got[k].type == KA_NONE))
			ka_viol(a, "key %u: neither its old nor its new value (type %u gen %llu)",
			        k, got[k].type, (unsigned long long)got[k].gen);
		for (uint32_t i = 0; i < KA_MAXP; i++)
			want += got[k].type == KA_BIG ? i < got[k].n : got[k].ver[i] != 0;
		if (is_large(k) && got[k].type)
			want += KA_KCH; /* its key chunks */
	}
	if (a->group && !all_old && !all_new)
		ka_viol(a, "a multi-key write is half applied (some keys old, some new)");
	paste_kv__iterate(sub, count_fn, &pieces);
	if (pieces != want)
		ka_viol(a, "%llu pieces after the sweep, the live values name %llu",
		        (unsigned long long)pieces, (unsigned long long)want);
out:
	paste_pool__close(&rec);
	unlink(a->crash_path);
}

/* ---- the workload --------------------------------------------------------------------------- */

/* One random operation with a crash point at each of its hook calls; then verify them. */
static int ka_op(struct ka *a)
{
	unsigned k = sim_below(&a->rng, KA_KEYS), what = sim_below(&a->rng, 6);
	struct ka_val retired[KA_KEYS];
	unsigned nret = 0;
	uint64_t c0 = a->pm.calls, skip;
	int err = 0;

	memcpy(a->old, a->cur, sizeof(a->old));
	a->group = false;
	a->mid_absent = -1;
	a->pm.model = a->ops % 2 ? SIM_RANDOM_EVICT : SIM_FENCED_ONLY;
	a->pm.evict_pct = 10 + sim_below(&a->rng, 81);
	a->pm.ncap = 0;
	/* an op longer than the capture queue (the longest of its kind so far): its window starts
	 * at a random call */
	skip = a->len[what] > SIM_MAX_CAPTURES
	           ? sim_below(&a->rng, (uint32_t)(a->len[what] - SIM_MAX_CAPTURES + 1))
	           : 0;
	sim_pmem__dense(&a->pm, c0 + 1 + skip, c0 + 1 + skip + SIM_MAX_CAPTURES);
	if (what == 0) {
		a->opname = "SET big";
		err = set_big(a, k);
	} else if (what == 1 || what == 5) {
		uint8_t key[KA_KMAX];
		size_t kn;

		if (what == 5) { /* a large key deleted and stored again before the reap */
			k = KA_KEYS - 1 - sim_below(&a->rng, KA_LKEYS);
			a->mid_absent = (int)k;
		}
		a->opname = what == 5 ? "DEL+SET large key" : "DEL";
		kn = main_key(key, k);
		if (a->cur[k].type)
			err = ix_del(a, 0, key, kn);
		a->cur[k] = (struct ka_val){0};
		if (!err && what == 5)
			err = set_big(a, k);
	} else if (what == 2) {
		a->opname = "HSET one field";
		err = hset(a, k, 1u << sim_below(&a->rng, KA_MAXP));
	} else if (what == 3) {
		unsigned nk = 2 + sim_below(&a->rng, 2);
		uint8_t key[KA_KMAX];

		a->opname = "MSET (undo log)";
		a->group = true;
		tx_begin(a);
		for (unsigned i = 0; i < nk && !err;
		     i++) { /* mset(): every key logged, one fence */
			err = tx_log(a, 0, key, main_key(key, (k + i) % KA_KEYS));
		}
		for (unsigned i = 0; i < nk && !err; i++)
			err = set_big(a, (k + i) % KA_KEYS);
		tx_end(a);
	} else {
		a->opname = "HSET fields (undo log)";
		a->group = true;
		tx_begin(a);
		err = hset(a, k, 1 + sim_below(&a->rng, (1u << KA_MAXP) - 1));
		tx_end(a);
	}
	if (err)
		return err;
	for (unsigned i = 0; i < KA_KEYS; i++) /* replaced objects, reaped after the fence */
		if (a->old[i].type && a->old[i].gen != a->cur[i].gen)
			retired[nret++] = a->old[i];
	paste_pool__drain(a->pool); /* the round's fence: acknowledged */
	tx_gc(a);
	for (unsigned i = 0; i < nret; i++)
		reap(a, &retired[i]);
	for (unsigned i = 0; i < KA_KEYS; i++)
		key_reap(a, i);
	paste_pool__drain(a->pool);
	sim_pmem__dense(&a->pm, 0, 0);
	if (a->pm.calls - c0 > a->max_calls)
		a->max_calls = a->pm.calls - c0;
	a->calls += a->pm.calls - c0;
	if (a->pm.calls - c0 > a->len[what])
		a->len[what] = a->pm.calls - c0;
	for (unsigned i = 0; i < a->pm.ncap; i++)
		ka_check(a, a->pm.images[i]);
	a->pm.ncap = 0;
	a->ops++;
	return 0;
}

int sim_probe_kvapp(const struct sim_cfg *cfg, uint64_t ops)
{
	struct paste_pool_opts o = {.sz = sizeof(o),
	                            .size = 4096 + (1 << 20) + (256 << 11),
	                            .region_area = 1 << 20,
	                            .must_create = true};
	struct ka *a = calloc(1, sizeof(*a));
	char work[160], crash[160];
	int err;

	if (!a)
		return 1;
	a->rng.s = cfg->seed;
	a->next_gen = 1;
	sim_interpose__seed(cfg->seed);
	snprintf(work, sizeof(work), "%s/paste-sim-%d-kvapp.pool", cfg->dir, (int)getpid());
	snprintf(crash, sizeof(crash), "%s/paste-sim-%d-kvapp-crash.pool", cfg->dir, (int)getpid());
	a->crash_path = crash;
	unlink(work);
	err = paste_pool__open(&a->pool, work, &o);
	if (!err)
		err = paste_kv__open(&a->kv, a->pool, "ka.kv",
		                     &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 64));
	if (!err)
		err = paste_kv__open(&a->sub, a->pool, "ka.sub",
		                     &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 256));
	if (!err)
		err = paste_kv__open(&a->undo, a->pool, "ka.undo",
		                     &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 64));
	if (!err)
		err = sim_pmem__init(&a->pm, a->pool, SIM_BREAK_NONE, sim_rand(&a->rng));
	if (err) {
		printf("probe kvapp: setup failed: %s\n", paste_last_error());
		goto out;
	}
	printf("probe kvapp: paste-kv's object and undo-log protocols, %u keys, seed %llu, %llu "
	       "ops, a crash point at every flush and fence\n",
	       KA_KEYS, (unsigned long long)cfg->seed, (unsigned long long)ops);
	while (a->ops < ops && !err)
		err = ka_op(a);
	if (err)
		printf("probe kvapp: operation %llu (%s) failed: %s: %s\n",
		       (unsigned long long)a->ops, a->opname, strerror(-err), paste_last_error());
	printf(
	    "probe kvapp: %llu ops, %llu crash points of %llu hook calls (ops of up to %llu calls: "
	    "a window of %d), %llu undo entries applied, %llu orphan pieces swept, %llu "
	    "violations\n",
	    (unsigned long long)a->ops, (unsigned long long)a->points, (unsigned long long)a->calls,
	    (unsigned long long)a->max_calls, SIM_MAX_CAPTURES, (unsigned long long)a->rollbacks,
	    (unsigned long long)a->orphans, (unsigned long long)a->violations);
out:
	if (a->pool)
		paste_pool__close(&a->pool);
	sim_pmem__fini(&a->pm);
	unlink(work);
	err = err || a->violations;
	free(a);
	return err;
}
