/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_keyspace.c - paste-kv's generic key commands: TYPE, RENAME, RENAMENX, COPY, UNLINK, TOUCH,
 * RANDOMKEY, OBJECT, SELECT, and the database tag of keys.
 *
 * Databases: a key's stored form ends with one tag byte ('\r' for database 0, 0x80 + n for
 * database n), so SELECT 0-15 costs nothing in the index and database 0 keeps the zero-copy form.
 * RENAME and COPY of a string take another reference on the same bytes (no copy); COPY of a big
 * string or a hash references each piece again under a new generation.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

/* TYPE's reply for type @t. */
const char *type_reply(int t)
{
	switch (t) {
	case T_HASH:
		return "+hash\r\n";
	case T_SET:
		return "+set\r\n";
	case T_LIST:
		return "+list\r\n";
	case T_ZSET:
		return "+zset\r\n";
	default:
		return "+string\r\n";
	}
}

int cmd_type(struct req *r)
{
	struct str k;
	struct obj o;

	if (arg_key(r, 1, &k) || obj_lookup(r->d, &k, &o))
		return out_str(r->kc, "+none\r\n");
	return out_str(r->kc, type_reply(o.type));
}

/* Another reference on the bytes @ref names (a string value or an object header). */
static int ref_again(struct kvd *d, const struct paste_ref *ref, struct paste_ref *out)
{
	const uint8_t *p = paste_pool__ref_ptr(d->pool, ref);

	return p ? paste_keep(d->ctx, p, ref->len, out) : -EINVAL;
}

/* Store @dst -> the value @o names (shared bytes), with deadline @ttl (0: none). */
static int link_value(struct kvd *d, const struct str *dst, const struct obj *o, uint64_t ttl)
{
	const uint8_t *p = paste_pool__ref_ptr(d->pool, &o->ref);
	struct str v = {.p = p, .n = o->ref.len, .pool = true};

	if (!p)
		return -EINVAL;
	return store(d, dst, &v, ttl, S_NEW);
}

static int rename_generic(struct req *r, bool nx)
{
	struct str src, dst;
	struct obj o, other;
	uint64_t ttl;
	int err;

	if (arg_key(r, 1, &src) || arg_key(r, 2, &dst))
		return out_err(r->kc, "ERR request too large");
	if (obj_lookup(r->d, &src, &o))
		return out_err(r->kc, "ERR no such key");
	if (src.n == dst.n && !memcmp(src.p, dst.p, src.n))
		return nx ? out_hdr(r->kc, ':', 0) : out_str(r->kc, "+OK\r\n");
	if (nx && obj_lookup(r->d, &dst, &other) == 0)
		return out_hdr(r->kc, ':', 0);
	if (refuse_write(r))
		return 0;
	ttl = ttl_get(r->d, &src);
	err = link_value(r->d, &dst, &o, ttl);
	if (err)
		return reply_store_err(r, err);
	del_key_ex(r->d, src.p, src.n, false); /* the object now belongs to dst */
	return nx ? out_hdr(r->kc, ':', 1) : out_str(r->kc, "+OK\r\n");
}

int cmd_rename(struct req *r)
{
	return rename_generic(r, false);
}

int cmd_renamenx(struct req *r)
{
	return rename_generic(r, true);
}

struct piece {
	const uint8_t *sk; /* the sub-key after the generation (in the pool) */
	uint32_t skn;
	struct paste_ref val;
};

struct pieces {
	struct kvd *d;
	uint64_t gen;
	struct piece *v;
	size_t n, cap;
};

static int piece_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct pieces *l = arg;
	const uint8_t *k = paste_pool__ref_ptr(l->d->pool, key);

	if (!k || key->len < 8 || sub_gen(k) != l->gen)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct piece *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct piece){.sk = k + 8, .skn = key->len - 8, .val = *val};
	return 0;
}

/* Piece @p again under generation @to: its value referenced again (a field's big string cloned). */
static int copy_piece(struct kvd *d, uint64_t to, const struct piece *p, bool fields)
{
	struct paste_ref v;
	size_t mark = d->arena_used;
	struct obj o;
	int err;

	obj_decode(d, &p->val, &o);
	if (fields && o.type == T_BIG)
		err = big_clone(d, &o, &v);
	else
		err = ref_again(d, &p->val, &v);
	if (!err)
		err = sub_put(d, to, p->sk, p->skn, &v);
	d->arena_used = mark;
	return err;
}

/*
 * A new object with the same pieces as @o, each referenced again (no byte copied). The pieces are
 * listed first and put afterwards: the piece index is not changed while it is walked.
 */
static int copy_object(struct kvd *d, const struct str *dst, const struct obj *o, uint64_t ttl)
{
	struct pieces l = {.d = d, .gen = o->gen};
	uint64_t to;
	int err;

	if (o->type == T_STR)
		return link_value(d, dst, o, ttl);
	to = d->next_gen++;
	err = paste_kv__iterate(d->sub, piece_fn, &l);
	for (size_t i = 0; i < l.n && !err; i++)
		err = copy_piece(d, to, &l.v[i], o->type != T_BIG);
	free(l.v);
	if (err)
		return err; /* the pieces copied so far are swept at the next startup */
	if (!IS_STRING(o->type))
		hash_count_add(d, to, (int64_t)hash_count(d, o->gen));
	if (o->type == T_LIST)
		hash_count_add(d, to ^ LIST_HEAD_BIT,
		               (int64_t)hash_count(d, o->gen ^ LIST_HEAD_BIT));
	return hdr_store(d, dst, o->type, to, o->len, o->n, ttl);
}

int cmd_copy(struct req *r)
{
	struct str src, dst;
	struct obj o, other;
	bool replace = false;
	int db = r->kc->db, err;

	for (unsigned i = 3; i < r->cmd->argc; i++) {
		int64_t v;

		if (arg_is(r, i, "REPLACE")) {
			replace = true;
		} else if (arg_is(r, i, "DB") && i + 1 < r->cmd->argc) {
			if (!arg_ll(r, ++i, &v))
				return out_err(r->kc,
				               "ERR value is not an integer or out of range");
			if (v < 0 || v >= KV_DBS)
				return out_err(r->kc, "ERR DB index is out of range");
			db = (int)v;
			if (db)
				r->d->multi_db = true;
		} else {
			return out_err(r->kc, "ERR syntax error");
		}
	}
	if (arg_key(r, 1, &src) || arg_key_db(r, 2, db, &dst))
		return out_err(r->kc, "ERR request too large");
	if (src.n == dst.n && !memcmp(src.p, dst.p, src.n))
		return out_err(r->kc, "ERR source and destination objects are the same");
	if (obj_lookup(r->d, &src, &o))
		return out_hdr(r->kc, ':', 0);
	if (obj_lookup(r->d, &dst, &other) == 0 && !replace)
		return out_hdr(r->kc, ':', 0);
	if (refuse_write(r))
		return 0;
	err = copy_object(r->d, &dst, &o, ttl_get(r->d, &src));
	return err ? reply_store_err(r, err) : out_hdr(r->kc, ':', 1);
}

/* ---- RANDOMKEY ------------------------------------------------------------------------------- */

struct pick {
	struct kvd *d;
	uint8_t tag;
	uint64_t skip;
	struct paste_ref key;
	bool found;
};

static int pick_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct pick *p = arg;
	const uint8_t *k = paste_pool__ref_ptr(p->d->pool, key);

	(void)val;
	if (!k || !key_in(k, key->len, p->tag))
		return 0;
	p->key = *key;
	p->found = true;
	return p->skip-- == 0;
}

int cmd_randomkey(struct req *r)
{
	for (int tries = 0; tries < 100; tries++) {
		struct pick p = {.d = r->d, .tag = db_tag(r->kc->db)};
		struct paste_kv_info i;
		struct paste_ref v;
		struct str k;
		uint8_t *full;
		size_t n;

		paste_kv__info(r->d->kv, &i, sizeof(i));
		if (!i.keys)
			break;
		p.skip = (uint64_t)random() % i.keys;
		paste_kv__iterate(r->d->kv, pick_fn, &p);
		if (!p.found)
			break;
		k = (struct str){.p = paste_pool__ref_ptr(r->d->pool, &p.key), .n = p.key.len};
		if (lookup(r->d, &k, &v))
			continue;
		if (!lkey_is(k.p, k.n))
			return out_value(r->kc, k.p, k.n - 1);
		full = lkey_bytes(r->d, k.p, k.n, &n); /* a large key: its chunks */
		if (full) {
			int err = out_value(r->kc, full, n);

			free(full);
			return err;
		}
	}
	return out_str(r->kc, "$-1\r\n");
}

/* ---- OBJECT, SELECT ----------------------------------------------------------------------------
 */

int cmd_object(struct req *r)
{
	struct str k;
	struct obj o;

	if (arg_is(r, 1, "HELP"))
		return out_str(r->kc, "*1\r\n+OBJECT <subcommand> [<arg> ...]\r\n");
	if (r->cmd->argc != 3)
		return out_err(r->kc, "ERR wrong number of arguments for 'object' command");
	if (arg_key(r, 2, &k) || obj_lookup(r->d, &k, &o))
		return out_str(r->kc, "$-1\r\n");
	if (arg_is(r, 1, "ENCODING")) {
		int64_t v;

		if (o.type == T_LIST)
			return out_value(r->kc, (const uint8_t *)"quicklist", 9);
		if (!IS_STRING(o.type))
			return out_value(r->kc, (const uint8_t *)"hashtable", 9);
		if (o.type == T_STR && resp_parse_ll(o.p, o.len, &v))
			return out_value(r->kc, (const uint8_t *)"int", 3);
		return out_value(r->kc, (const uint8_t *)(o.len <= 44 ? "embstr" : "raw"),
		                 o.len <= 44 ? 6 : 3);
	}
	if (arg_is(r, 1, "REFCOUNT") || arg_is(r, 1, "IDLETIME") || arg_is(r, 1, "FREQ"))
		return out_hdr(r->kc, ':', arg_is(r, 1, "REFCOUNT") ? 1 : 0);
	return out_err(r->kc, "ERR unknown subcommand or wrong number of arguments for 'OBJECT'");
}

int cmd_select(struct req *r)
{
	int64_t db;

	if (!arg_ll(r, 1, &db))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if (db < 0 || db >= KV_DBS)
		return out_err(r->kc, "ERR DB index is out of range");
	r->kc->db = (int)db;
	if (db)
		r->d->multi_db = true;
	return out_str(r->kc, "+OK\r\n");
}
