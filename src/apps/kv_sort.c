/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_sort.c - SORT and SORT_RO: the elements of a list, set or sorted set, sorted numerically (as
 * doubles; ties by their bytes) or with ALPHA by their bytes, ASC or DESC, LIMIT offset count,
 * BY pattern (weights from the string keys the pattern names, '*' replaced by the element; a
 * pattern without '*' does not sort), GET pattern (repeatable; '#' is the element itself) and
 * STORE destination (a new list, or the destination deleted when the result is empty).
 * Not supported: hash fields in patterns ("key->field"), which get an error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

struct sort_el {
	const uint8_t *p; /* the element */
	size_t n;
	const uint8_t *by; /* ALPHA with BY: the weight's bytes (NULL: missing) */
	size_t byn;
	long double w; /* numeric weight */
};

struct sort_opts {
	bool desc, alpha, nosort, store;
	int64_t off, cnt;
	unsigned by, st; /* argument index of BY's pattern, of STORE's key (0: none) */
	unsigned get[64];
	unsigned nget;
};

static bool sort_desc, sort_by; /* for the qsort comparators */

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	return c ? c : (an > bn) - (an < bn);
}

static int sort_cmp_num(const void *x, const void *y)
{
	const struct sort_el *a = x, *b = y;
	int c = a->w < b->w ? -1 : a->w > b->w ? 1 : cmp_bytes(a->p, a->n, b->p, b->n);

	return sort_desc ? -c : c;
}

static int sort_cmp_alpha(const void *x, const void *y)
{
	const struct sort_el *a = x, *b = y;
	int c;

	if (sort_by) /* as Redis: a missing weight sorts first, equal weights are not ordered */
		c = !a->by   ? (b->by ? -1 : 0)
		    : !b->by ? 1
		             : cmp_bytes(a->by, a->byn, b->by, b->byn);
	else
		c = cmp_bytes(a->p, a->n, b->p, b->n);
	return sort_desc ? -c : c;
}

/*
 * The string value of the key @pat names with its first '*' replaced by @el (NULL: no such key,
 * not a string, or a key longer than lkey_inline()). In the arena.
 */
static const uint8_t *pat_value(struct req *r, unsigned pi, const uint8_t *el, size_t n, size_t *vn)
{
	const uint8_t *pat = arg(r, pi), *star;
	size_t plen = arg_len(r, pi), kn;
	uint8_t *key;
	struct str k;
	struct obj o;

	if (!pat || !(star = memchr(pat, '*', plen)))
		return NULL;
	kn = plen - 1 + n;
	if (kn > lkey_inline(r->d) || !(key = arena_alloc(r->d, kn + 1)))
		return NULL;
	memcpy(key, pat, (size_t)(star - pat));
	memcpy(key + (star - pat), el, n);
	memcpy(key + (star - pat) + n, star + 1, plen - (size_t)(star - pat) - 1);
	key[kn] = db_tag(r->kc->db);
	k = (struct str){.p = key, .n = (uint32_t)kn + 1};
	if (obj_lookup(r->d, &k, &o) || !IS_STRING(o.type))
		return NULL;
	*vn = o.len;
	return obj_bytes(r->d, &o);
}

static int parse_sort(struct req *r, struct sort_opts *o, bool ro)
{
	o->off = 0;
	o->cnt = -1;
	for (unsigned i = 2; i < r->cmd->argc; i++) {
		bool more = i + 1 < r->cmd->argc;

		if (arg_is(r, i, "ASC")) {
			o->desc = false;
		} else if (arg_is(r, i, "DESC")) {
			o->desc = true;
		} else if (arg_is(r, i, "ALPHA")) {
			o->alpha = true;
		} else if (arg_is(r, i, "LIMIT") && i + 2 < r->cmd->argc) {
			if (!arg_ll(r, i + 1, &o->off) || !arg_ll(r, i + 2, &o->cnt))
				return out_err(r->kc,
				               "ERR value is not an integer or out of range"),
				       -1;
			i += 2;
		} else if (arg_is(r, i, "STORE") && more && !ro) {
			o->st = ++i;
		} else if (arg_is(r, i, "BY") && more) {
			o->by = ++i;
			o->nosort = !memchr(arg(r, i), '*', arg_len(r, i));
		} else if (arg_is(r, i, "GET") && more && o->nget < 64) {
			o->get[o->nget++] = ++i;
		} else {
			return out_err(r->kc, "ERR syntax error"), -1;
		}
	}
	for (unsigned g = 0; g < o->nget + !!o->by; g++) {
		unsigned pi = g < o->nget ? o->get[g] : o->by;
		const uint8_t *p = arg(r, pi);

		if (p && arg_len(r, pi) > 2 && memmem(p, arg_len(r, pi), "->", 2))
			return out_err(r->kc, "ERR SORT patterns with hash fields ('->') are not "
			                      "supported by paste-kv"),
			       -1;
	}
	return 0;
}

/* The elements of @o (list, set or sorted set) into *v (malloc'ed, *n of them). */
static int sort_source(struct req *r, const struct obj *o, struct sort_el **v, size_t *n)
{
	struct hlist l = {0};

	*v = NULL;
	*n = 0;
	if (o->type == T_LIST) {
		uint64_t cnt = hash_count(r->d, o->gen);

		*v = calloc(cnt ? cnt : 1, sizeof(**v));
		if (!*v)
			return -ENOMEM;
		for (uint64_t i = 0; i < cnt; i++)
			if (list_at(r->d, o->gen, i, &(*v)[*n].p, &(*v)[*n].n) == 0)
				(*n)++;
		return 0;
	}
	if (hash_list(r->d, o->gen, &l)) {
		free(l.v);
		return -ENOMEM;
	}
	*v = calloc(l.n ? l.n : 1, sizeof(**v));
	for (size_t i = 0; *v && i < l.n; i++)
		(*v)[(*n)++] = (struct sort_el){.p = l.v[i].f, .n = l.v[i].flen};
	free(l.v);
	return *v ? 0 : -ENOMEM;
}

/* Weights: the element's own value, or BY's; -EINVAL when one is not a number. */
static int sort_weights(struct req *r, const struct sort_opts *so, struct sort_el *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = v[i].p;
		size_t len = v[i].n;
		char buf[128], *end;

		if (so->by) {
			p = pat_value(r, so->by, v[i].p, v[i].n, &len);
			v[i].by = p;
			v[i].byn = len;
		}
		if (so->alpha)
			continue;
		v[i].w = 0;
		if (!p)
			continue; /* a missing weight counts as 0 */
		if (len >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, p, len);
		buf[len] = 0;
		v[i].w = strtold(buf, &end);
		if (*end || isnan(v[i].w))
			return -EINVAL;
	}
	return 0;
}

/* The result: @v[from, from + cnt) through the GET patterns; replied or stored. */
static int sort_result(struct req *r, const struct sort_opts *so, struct sort_el *v, size_t from,
                       size_t cnt)
{
	size_t per = so->nget ? so->nget : 1, total = cnt * per, k = 0;
	struct hfield *out = calloc(total ? total : 1, sizeof(*out));
	struct str dst;
	int err = 0;

	if (!out)
		return out_err(r->kc, "ERR out of memory");
	for (size_t i = from; i < from + cnt; i++)
		for (size_t g = 0; g < per; g++, k++) {
			const uint8_t *gp = so->nget ? arg(r, so->get[g]) : NULL;
			size_t vn = 0;

			if (!gp || (arg_len(r, so->get[g]) == 1 && gp[0] == '#')) {
				out[k] = (struct hfield){.f = v[i].p, .flen = (uint32_t)v[i].n};
				continue;
			}
			out[k].f = pat_value(r, so->get[g], v[i].p, v[i].n, &vn);
			out[k].flen = (uint32_t)vn;
		}
	if (!so->st) {
		err = out_hdr(r->kc, '*', (int64_t)total);
		for (k = 0; k < total && !err; k++)
			err = out[k].f ? out_value(r->kc, out[k].f, out[k].flen)
			               : out_str(r->kc, "$-1\r\n");
		free(out);
		return err;
	}
	for (k = 0; k < total; k++)
		if (!out[k].f) /* a missing GET value is stored as an empty string */
			out[k] = (struct hfield){.f = (const uint8_t *)"", .flen = 0};
	if (arg_key(r, so->st, &dst))
		err = -ENOMEM;
	else if (!total)
		del_key(r->d, dst.p, dst.n);
	else if (!refuse_write(r))
		err = list_create(r->d, &dst, out, total);
	else
		err = 1; /* refused: replied */
	free(out);
	if (err)
		return err > 0 ? 0 : reply_store_err(r, err);
	touch_key(r->d, dst.p, dst.n);
	return out_hdr(r->kc, ':', (int64_t)total);
}

static int sort_generic(struct req *r, bool ro)
{
	struct sort_opts so = {0};
	struct sort_el *v = NULL;
	struct str k;
	struct obj o;
	size_t n = 0, from, cnt;
	int err;

	if (parse_sort(r, &so, ro))
		return 0;
	if (arg_key(r, 1, &k))
		return out_err(r->kc, "ERR request too large");
	if (obj_lookup(r->d, &k, &o) == 0) {
		if (o.type != T_LIST && o.type != T_SET && o.type != T_ZSET)
			return out_wrongtype(r->kc);
		if (sort_source(r, &o, &v, &n))
			return out_err(r->kc, "ERR out of memory");
	}
	err = so.nosort ? 0 : sort_weights(r, &so, v, n);
	if (err) {
		free(v);
		return out_err(r->kc, "ERR One or more scores can't be converted into double");
	}
	sort_desc = so.desc;
	sort_by = so.by != 0;
	if (!so.nosort && n > 1)
		qsort(v, n, sizeof(*v), so.alpha ? sort_cmp_alpha : sort_cmp_num);
	else if (so.desc) /* not sorted, DESC: a list from its tail, as Redis */
		for (size_t i = 0; i < n / 2; i++) {
			struct sort_el t = v[i];

			v[i] = v[n - 1 - i];
			v[n - 1 - i] = t;
		}
	from = so.off < 0 ? 0 : (size_t)so.off > n ? n : (size_t)so.off;
	cnt = so.cnt < 0 || (uint64_t)so.cnt > n - from ? n - from : (size_t)so.cnt;
	err = sort_result(r, &so, v, from, cnt);
	free(v);
	return err;
}

int cmd_sort(struct req *r)
{
	return sort_generic(r, false);
}

int cmd_sort_ro(struct req *r)
{
	return sort_generic(r, true);
}
