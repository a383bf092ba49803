/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_hash.c - paste-kv's hashes: HSET, HSETNX, HMSET, HGET, HMGET, HDEL, HLEN, HSTRLEN, HEXISTS,
 * HGETALL, HKEYS, HVALS, HINCRBY, HINCRBYFLOAT, HRANDFIELD, HSCAN.
 *
 * A hash is an object (kv_obj.c): its header in the main index, and one entry per field in the
 * piece index, gen|field -> value. A field value stays where it arrived (one reference on its
 * frame, like a SET value) and one HSET of one field is one atomic put; a new hash gets its
 * fields first and its header last, so a crash never leaves an empty or partial new hash named.
 * Listing a hash walks the piece index (cost: the index's size, not the hash's).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

/* The collection of @type at argument 1. @return 0 found, 1 absent, -1 another type (replied). */
int get_typed(struct req *r, int type, struct str *k, struct obj *o)
{
	if (arg_key(r, 1, k) || obj_lookup(r->d, k, o))
		return 1;
	if (o->type != type) {
		out_wrongtype(r->kc);
		return -1;
	}
	return 0;
}

static int get_hash(struct req *r, struct str *k, struct obj *o)
{
	return get_typed(r, T_HASH, k, o);
}

/* Field argument @i's value in the hash @gen. @return 0 with *p and *n set, or -ENOENT. */
int field_get(struct req *r, uint64_t gen, unsigned i, const uint8_t **p, size_t *n)
{
	struct paste_ref v;
	const uint8_t *f = arg(r, i);

	if (!f || sub_get(r->d, gen, f, arg_len(r, i), &v))
		return -ENOENT;
	*p = paste_pool__ref_ptr(r->d->pool, &v);
	*n = v.len ? v.len - 1 : 0;
	if (*p && v.len == 33) { /* a big string header: the value is larger than a frame */
		struct obj o;

		obj_decode(r->d, &v, &o);
		if (o.type == T_BIG) {
			*p = obj_bytes(r->d, &o);
			*n = o.len;
		}
	}
	return *p ? 0 : -ENOENT;
}

int check_field(struct req *r, unsigned f, size_t vlen)
{
	if (arg_len(r, f) + 8 > r->d->frame_size || arg_len(r, f) > r->d->max_key) {
		out_err(r->kc, "ERR hash field exceeds maximum allowed size (%u: one frame)",
		        r->d->frame_size - 8 < r->d->max_key ? r->d->frame_size - 8
		                                             : r->d->max_key);
		return -1;
	}
	return check_value(r, vlen);
}

/* Put field -> value (value: argument @vi in place, or @p and @n computed). @return 1 new, 0
 * updated. */
int field_put(struct req *r, uint64_t gen, unsigned fi, unsigned vi, const uint8_t *p, size_t n)
{
	struct paste_ref v = {0}, old;
	const uint8_t *f = arg(r, fi);
	size_t mark = r->d->arena_used;
	struct str s;
	bool fresh;
	int err;

	if (!f)
		return -ENOMEM;
	fresh = sub_get(r->d, gen, f, arg_len(r, fi), &old) != 0;
	if ((p ? n : arg_len(r, vi)) + 1 > r->d->frame_size) { /* a big string of its own */
		uint64_t g2, nc, len = p ? n : arg_len(r, vi);

		if (p)
			err = big_pieces(r->d, NULL, 0, p, n, &g2, &nc);
		else if (!r->cmd->inl && !r->queued)
			err = big_pieces(r->d, r->b, r->base + r->cmd->argv[vi].off, NULL, len, &g2,
			                 &nc);
		else
			err = big_pieces(r->d, NULL, 0, arg(r, vi), len, &g2, &nc);
		if (!err)
			err = big_header_ref(r->d, g2, len, nc, &v);
		if (!err)
			err = sub_put(r->d, gen, f, arg_len(r, fi), &v);
		r->d->arena_used = mark;
		if (err)
			return err; /* pieces without a header are swept at the next startup */
		goto put;
	}
	if (p) {
		uint8_t *buf = arena_alloc(r->d, n + 1);

		if (!buf)
			return -ENOMEM;
		memcpy(buf, p, n);
		buf[n] = '\r';
		s = (struct str){.p = buf, .n = (uint32_t)n + 1, .pool = false};
	} else if (arg_str(r, vi, &s)) {
		return -ENOMEM;
	}
	err = keep_str(r->d, &s, &v, p ? S_NEW : S_VAL);
	if (!err)
		err = sub_put(r->d, gen, f, arg_len(r, fi), &v);
	r->d->arena_used = mark;
	if (err)
		return err;
put:
	if (!fresh)
		value_retire(r->d, &old); /* its pieces go after the fence, if it had any */
	if (fresh)
		hash_count_add(r->d, gen, 1);
	return fresh;
}

/* HSET/HMSET/HSETNX body: put the pairs from argument 2; a new hash gets its header last. */
static int hash_put(struct req *r, bool nx, int64_t *added)
{
	struct str k;
	struct obj o;
	uint64_t gen;
	int f, err = 0;

	for (unsigned i = 2; i + 1 < r->cmd->argc; i += 2)
		if (check_field(r, i, arg_len(r, i + 1)))
			return -1;
	if (refuse_write(r))
		return -1;
	f = get_hash(r, &k, &o);
	if (f < 0)
		return -1;
	gen = f ? r->d->next_gen++ : o.gen;
	*added = 0;
	for (unsigned i = 2; i + 1 < r->cmd->argc && !err; i += 2) {
		const uint8_t *p;
		size_t n;
		int res;

		if (nx && field_get(r, gen, i, &p, &n) == 0)
			continue;
		res = field_put(r, gen, i, i + 1, NULL, 0);
		if (res < 0)
			err = res;
		else
			*added += res;
	}
	if (!err && f && *added)
		err = hdr_store(r->d, &k, T_HASH, gen, 0, 0, 0);
	if (err) {
		reply_store_err(r, err);
		return -1;
	}
	if (!f)
		touch_key(r->d, k.p, k.n);
	return 0;
}

int cmd_hset(struct req *r)
{
	int64_t added;
	int err;

	if (r->cmd->argc % 2)
		return out_err(r->kc, "ERR wrong number of arguments for '%s' command",
		               arg_is(r, 0, "hmset") ? "hmset" : "hset");
	if (r->cmd->argc > 4)
		tx_begin(r->d); /* several fields: crash-atomic through the undo log (kv_tx.c) */
	err = hash_put(r, false, &added);
	if (r->cmd->argc > 4)
		tx_end(r->d);
	if (err)
		return 0;
	return arg_is(r, 0, "hmset") ? out_str(r->kc, "+OK\r\n") : out_hdr(r->kc, ':', added);
}

int cmd_hsetnx(struct req *r)
{
	int64_t added;

	if (hash_put(r, true, &added))
		return 0;
	return out_hdr(r->kc, ':', added);
}

int cmd_hget(struct req *r)
{
	const uint8_t *p;
	struct str k;
	struct obj o;
	size_t n;
	int f = get_hash(r, &k, &o);

	if (f)
		return f > 0 ? out_str(r->kc, "$-1\r\n") : 0;
	if (field_get(r, o.gen, 2, &p, &n))
		return out_str(r->kc, "$-1\r\n");
	return out_value(r->kc, p, n);
}

int cmd_hmget(struct req *r)
{
	struct str k;
	struct obj o;
	int f = get_hash(r, &k, &o);

	if (f < 0 || out_hdr(r->kc, '*', r->cmd->argc - 2))
		return 0;
	for (unsigned i = 2; i < r->cmd->argc; i++) {
		const uint8_t *p;
		size_t n;

		if (f || field_get(r, o.gen, i, &p, &n)) {
			if (out_str(r->kc, "$-1\r\n"))
				return -ENOMEM;
		} else if (out_value(r->kc, p, n)) {
			return -ENOMEM;
		}
	}
	return 0;
}

int cmd_hdel(struct req *r)
{
	int64_t n = 0;
	struct str k;
	struct obj o;
	int f = get_hash(r, &k, &o);

	if (f)
		return f > 0 ? out_hdr(r->kc, ':', 0) : 0;
	for (unsigned i = 2; i < r->cmd->argc; i++) {
		const uint8_t *a = arg(r, i);
		struct paste_ref v;

		if (a && sub_get(r->d, o.gen, a, arg_len(r, i), &v) == 0)
			value_retire(r->d, &v);
		if (a && sub_del(r->d, o.gen, a, arg_len(r, i)) == 0) {
			hash_count_add(r->d, o.gen, -1);
			n++;
		}
	}
	if (n && hash_count(r->d, o.gen) == 0)
		del_key(r->d, k.p, k.n); /* Redis deletes an empty hash */
	else if (n)
		touch_key(r->d, k.p, k.n);
	return out_hdr(r->kc, ':', n);
}

int cmd_hlen(struct req *r)
{
	struct str k;
	struct obj o;
	int f = get_hash(r, &k, &o);

	if (f)
		return f > 0 ? out_hdr(r->kc, ':', 0) : 0;
	return out_hdr(r->kc, ':', (int64_t)hash_count(r->d, o.gen));
}

int cmd_hstrlen(struct req *r)
{
	const uint8_t *p;
	struct str k;
	struct obj o;
	size_t n = 0;
	int f = get_hash(r, &k, &o);

	if (f < 0)
		return 0;
	if (f || field_get(r, o.gen, 2, &p, &n))
		n = 0;
	return out_hdr(r->kc, ':', (int64_t)n);
}

int cmd_hexists(struct req *r)
{
	const uint8_t *p;
	struct str k;
	struct obj o;
	size_t n;
	int f = get_hash(r, &k, &o);

	if (f < 0)
		return 0;
	return out_hdr(r->kc, ':', !f && field_get(r, o.gen, 2, &p, &n) == 0);
}

/* ---- HINCRBY, HINCRBYFLOAT ----------------------------------------------------------------------
 */

static int hincr(struct req *r, bool flt)
{
	const uint8_t *p = NULL;
	char num[5600];
	struct str k;
	struct obj o;
	size_t n = 0;
	uint64_t gen;
	int f, res, len;

	if (check_field(r, 2, 64) || refuse_write(r))
		return 0;
	f = get_hash(r, &k, &o);
	if (f < 0)
		return 0;
	gen = f ? r->d->next_gen++ : o.gen;
	if (!f && field_get(r, gen, 2, &p, &n))
		p = NULL;
	if (flt) {
		long double cur = 0, by;
		const uint8_t *a = arg(r, 3);

		if (!a || !resp_parse_ld(a, arg_len(r, 3), &by))
			return out_err(r->kc, "ERR value is not a valid float");
		if (isinf(by))
			return out_err(r->kc, "ERR value is NaN or Infinity");
		if (p && !resp_parse_ld(p, n, &cur))
			return out_err(r->kc, "ERR hash value is not a float");
		cur += by;
		if (isnan(cur) || isinf(cur))
			return out_err(r->kc, "ERR increment would produce NaN or Infinity");
		len = resp_fmt_ld(num, sizeof(num), cur);
	} else {
		int64_t cur = 0, by;

		if (!arg_ll(r, 3, &by))
			return out_err(r->kc, "ERR value is not an integer or out of range");
		if (p && !resp_parse_ll(p, n, &cur))
			return out_err(r->kc, "ERR hash value is not an integer");
		if ((by > 0 && cur > INT64_MAX - by) || (by < 0 && cur < INT64_MIN - by))
			return out_err(r->kc, "ERR increment or decrement would overflow");
		cur += by;
		len = snprintf(num, sizeof(num), "%" PRId64, cur);
	}
	res = field_put(r, gen, 2, 0, (const uint8_t *)num, (size_t)len);
	if (res >= 0 && f)
		res = hdr_store(r->d, &k, T_HASH, gen, 0, 0, 0);
	if (res < 0)
		return reply_store_err(r, res);
	touch_key(r->d, k.p, k.n);
	return flt ? out_value(r->kc, (const uint8_t *)num, (size_t)len)
	           : out_str(r->kc, ":") || out(r->kc, num, (size_t)len) || out_str(r->kc, "\r\n");
}

int cmd_hincrby(struct req *r)
{
	return hincr(r, false);
}

int cmd_hincrbyfloat(struct req *r)
{
	return hincr(r, true);
}

/* ---- listing
 * -------------------------------------------------------------------------------------- */

static int list_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct hlist *l = arg;
	const uint8_t *k = paste_pool__ref_ptr(l->d->pool, key);
	const uint8_t *v = paste_pool__ref_ptr(l->d->pool, val);

	if (!k || !v || key->len < 8 || sub_gen(k) != l->gen)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct hfield *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n] =
	    (struct hfield){.f = k + 8, .flen = key->len - 8, .v = v, .vlen = val->len - 1};
	if (val->len == 33) { /* a big string header: gather the field's value */
		struct obj o;

		obj_decode(l->d, val, &o);
		if (o.type == T_BIG) {
			l->v[l->n].v = obj_bytes(l->d, &o);
			l->v[l->n].vlen = (uint32_t)o.len;
			if (!l->v[l->n].v)
				return -ENOMEM;
		}
	}
	l->n++;
	return 0;
}

/* All fields of the hash @gen (pointers into the pool, valid this round). Free l->v. */
int hash_list(struct kvd *d, uint64_t gen, struct hlist *l)
{
	*l = (struct hlist){.d = d, .gen = gen};
	return paste_kv__iterate(d->sub, list_fn, l);
}

static int out_fields(struct req *r, bool fields, bool values)
{
	struct hlist l;
	struct str k;
	struct obj o;
	int f = get_hash(r, &k, &o), err = 0;

	if (f)
		return f > 0 ? out_str(r->kc, "*0\r\n") : 0;
	if (hash_list(r->d, o.gen, &l)) {
		free(l.v);
		return out_err(r->kc, "ERR out of memory");
	}
	err = out_hdr(r->kc, '*', (int64_t)(l.n * (fields + values)));
	for (size_t i = 0; i < l.n && !err; i++) {
		if (fields)
			err = out_value(r->kc, l.v[i].f, l.v[i].flen);
		if (values && !err)
			err = out_value(r->kc, l.v[i].v, l.v[i].vlen);
	}
	free(l.v);
	return err;
}

int cmd_hgetall(struct req *r)
{
	return out_fields(r, true, true);
}

int cmd_hkeys(struct req *r)
{
	return out_fields(r, true, false);
}

int cmd_hvals(struct req *r)
{
	return out_fields(r, false, true);
}

/* HSCAN key cursor [MATCH pattern] [COUNT n]: the whole hash in one call (cursor 0 next). */
int cmd_hscan(struct req *r)
{
	const uint8_t *pat = NULL;
	size_t plen = 0, matched = 0;
	struct hlist l;
	struct str k;
	struct obj o;
	int64_t cur;
	int f, err;

	if (!arg_ll(r, 2, &cur) || cur < 0)
		return out_err(r->kc, "ERR invalid cursor");
	for (unsigned i = 3; i < r->cmd->argc; i += 2) {
		int64_t n;

		if (i + 1 >= r->cmd->argc)
			return out_err(r->kc, "ERR syntax error");
		if (arg_is(r, i, "MATCH")) {
			pat = arg(r, i + 1);
			plen = arg_len(r, i + 1);
		} else if (arg_is(r, i, "COUNT")) {
			if (!arg_ll(r, i + 1, &n))
				return out_err(r->kc,
				               "ERR value is not an integer or out of range");
			if (n < 1)
				return out_err(r->kc, "ERR syntax error");
		} else {
			return out_err(r->kc, "ERR syntax error");
		}
	}
	f = get_hash(r, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, "*2\r\n$1\r\n0\r\n*0\r\n") : 0;
	if (hash_list(r->d, o.gen, &l)) {
		free(l.v);
		return out_err(r->kc, "ERR out of memory");
	}
	r->d->big_len = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (pat && !resp_glob(pat, plen, l.v[i].f, l.v[i].flen))
			continue;
		if (big_bulk(r->d, l.v[i].f, l.v[i].flen) || big_bulk(r->d, l.v[i].v, l.v[i].vlen))
			break;
		matched++;
	}
	free(l.v);
	err = out_str(r->kc, "*2\r\n$1\r\n0\r\n") || out_hdr(r->kc, '*', (int64_t)matched * 2) ||
	      out(r->kc, r->d->big, r->d->big_len);
	return err ? -ENOMEM : 0;
}

/* HRANDFIELD key [count [WITHVALUES]] */
int cmd_hrandfield(struct req *r)
{
	int64_t count = 1;
	bool withvalues = false, single = r->cmd->argc == 2;
	struct hlist l;
	struct str k;
	struct obj o;
	int f, err = 0;

	if (r->cmd->argc > 4 || (r->cmd->argc == 4 && !arg_is(r, 3, "WITHVALUES")))
		return out_err(r->kc, "ERR syntax error");
	withvalues = r->cmd->argc == 4;
	if (!single && !arg_ll(r, 2, &count))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if (count == INT64_MIN || (withvalues && count < -INT64_MAX / 2))
		return out_err(r->kc, "ERR value is out of range");
	if (count < -(int64_t)(64u << 20))
		return out_err(r->kc, "ERR count is too large for paste-kv (at most 67108864)");
	f = get_hash(r, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, single ? "$-1\r\n" : "*0\r\n") : 0;
	if (hash_list(r->d, o.gen, &l) || !l.n) {
		free(l.v);
		return out_str(r->kc, single ? "$-1\r\n" : "*0\r\n");
	}
	if (single) {
		size_t i = (size_t)random() % l.n;

		err = out_value(r->kc, l.v[i].f, l.v[i].flen);
	} else if (count < 0) { /* repeats allowed */
		uint64_t n = (uint64_t)(-count);

		err = out_hdr(r->kc, '*', (int64_t)(n * (withvalues ? 2 : 1)));
		for (uint64_t j = 0; j < n && !err; j++) {
			size_t i = (size_t)random() % l.n;

			err = out_value(r->kc, l.v[i].f, l.v[i].flen);
			if (withvalues && !err)
				err = out_value(r->kc, l.v[i].v, l.v[i].vlen);
		}
	} else { /* distinct: a random subset of min(count, size) */
		size_t n = (uint64_t)count < l.n ? (size_t)count : l.n;

		for (size_t i = 0; i < n; i++) { /* partial Fisher-Yates */
			size_t j = i + (size_t)random() % (l.n - i);
			struct hfield t = l.v[i];

			l.v[i] = l.v[j];
			l.v[j] = t;
		}
		err = out_hdr(r->kc, '*', (int64_t)(n * (withvalues ? 2 : 1)));
		for (size_t i = 0; i < n && !err; i++) {
			err = out_value(r->kc, l.v[i].f, l.v[i].flen);
			if (withvalues && !err)
				err = out_value(r->kc, l.v[i].v, l.v[i].vlen);
		}
	}
	free(l.v);
	return err;
}
