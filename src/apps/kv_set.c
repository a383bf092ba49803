/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_set.c - sets (SADD, SREM, SMEMBERS, SCARD, SISMEMBER, SRANDMEMBER, SPOP) and a minimal
 * sorted set (ZADD score member ..., ZCARD, ZSCORE, ZRANGE by rank [WITHSCORES]).
 *
 * Both are collections like hashes (kv_hash.c): a header, and one piece per member in the piece
 * index (gen|member -> empty value for a set, -> the score's text for a sorted set), so adding
 * one member is one atomic put and the members are durable before the reply. ZRANGE sorts the
 * members when asked (no persistent order is kept).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

/* Add the members (args @from, @step apart; values: scores at @from - 1 for a sorted set). */
static int coll_add(struct req *r, int type, unsigned from, unsigned step, int64_t *added)
{
	struct str k;
	struct obj o;
	uint64_t gen;
	int f, err = 0;

	for (unsigned i = from; i < r->cmd->argc; i += step)
		if (check_field(r, i, type == T_ZSET ? arg_len(r, i - 1) : 0))
			return -1;
	if (refuse_write(r))
		return -1;
	f = get_typed(r, type, &k, &o);
	if (f < 0)
		return -1;
	gen = f ? r->d->next_gen++ : o.gen;
	*added = 0;
	for (unsigned i = from; i < r->cmd->argc && !err; i += step) {
		int res = type == T_ZSET ? field_put(r, gen, i, i - 1, NULL, 0)
		                         : field_put(r, gen, i, 0, (const uint8_t *)"", 0);

		if (res < 0)
			err = res;
		else
			*added += res;
	}
	if (!err && f && *added)
		err = hdr_store(r->d, &k, type, gen, 0, 0, 0);
	if (err) {
		reply_store_err(r, err);
		return -1;
	}
	touch_key(r->d, k.p, k.n);
	return 0;
}

int cmd_sadd(struct req *r)
{
	int64_t added;

	return coll_add(r, T_SET, 2, 1, &added) ? 0 : out_hdr(r->kc, ':', added);
}

/* Remove members (args from 2); the key goes with the last one. @return removed, or -1. */
static int64_t coll_rem(struct req *r, int type)
{
	int64_t n = 0;
	struct str k;
	struct obj o;
	int f = get_typed(r, type, &k, &o);

	if (f)
		return f > 0 ? 0 : -1;
	for (unsigned i = 2; i < r->cmd->argc; i++) {
		const uint8_t *a = arg(r, i);

		if (a && sub_del(r->d, o.gen, a, arg_len(r, i)) == 0) {
			hash_count_add(r->d, o.gen, -1);
			n++;
		}
	}
	if (n && hash_count(r->d, o.gen) == 0)
		del_key(r->d, k.p, k.n);
	else if (n)
		touch_key(r->d, k.p, k.n);
	return n;
}

int cmd_srem(struct req *r)
{
	int64_t n = coll_rem(r, T_SET);

	return n < 0 ? 0 : out_hdr(r->kc, ':', n);
}

static int coll_card(struct req *r, int type)
{
	struct str k;
	struct obj o;
	int f = get_typed(r, type, &k, &o);

	if (f)
		return f > 0 ? out_hdr(r->kc, ':', 0) : 0;
	return out_hdr(r->kc, ':', (int64_t)hash_count(r->d, o.gen));
}

int cmd_scard(struct req *r)
{
	return coll_card(r, T_SET);
}

int cmd_zcard(struct req *r)
{
	return coll_card(r, T_ZSET);
}

int cmd_sismember(struct req *r)
{
	const uint8_t *p;
	struct str k;
	struct obj o;
	size_t n;
	int f = get_typed(r, T_SET, &k, &o);

	if (f < 0)
		return 0;
	return out_hdr(r->kc, ':', !f && field_get(r, o.gen, 2, &p, &n) == 0);
}

int cmd_smembers(struct req *r)
{
	struct hlist l;
	struct str k;
	struct obj o;
	int f = get_typed(r, T_SET, &k, &o), err;

	if (f)
		return f > 0 ? out_str(r->kc, "*0\r\n") : 0;
	if (hash_list(r->d, o.gen, &l)) {
		free(l.v);
		return out_err(r->kc, "ERR out of memory");
	}
	err = out_hdr(r->kc, '*', (int64_t)l.n);
	for (size_t i = 0; i < l.n && !err; i++)
		err = out_value(r->kc, l.v[i].f, l.v[i].flen);
	free(l.v);
	return err;
}

/* SRANDMEMBER key [count] (@pop false), SPOP key [count]. */
static int set_random(struct req *r, bool pop)
{
	bool single = r->cmd->argc == 2;
	int64_t count = 1;
	struct hlist l;
	struct str k;
	struct obj o;
	size_t n;
	int f, err = 0;

	if (r->cmd->argc > 3)
		return out_err(r->kc, "ERR syntax error");
	if (!single && !arg_ll(r, 2, &count))
		return out_err(r->kc, "ERR value is out of range, must be positive");
	if (!single && (count == INT64_MIN || (pop && count < 0)))
		return out_err(r->kc, "ERR value is out of range, must be positive");
	if (count < -(int64_t)(64u << 20))
		return out_err(r->kc, "ERR count is too large for paste-kv (at most 67108864)");
	f = get_typed(r, T_SET, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, single ? "$-1\r\n" : "*0\r\n") : 0;
	if (hash_list(r->d, o.gen, &l) || !l.n) {
		free(l.v);
		return out_str(r->kc, single ? "$-1\r\n" : "*0\r\n");
	}
	if (count < 0) { /* repeats allowed */
		err = out_hdr(r->kc, '*', -count);
		for (int64_t j = 0; j < -count && !err; j++) {
			size_t i = (size_t)random() % l.n;

			err = out_value(r->kc, l.v[i].f, l.v[i].flen);
		}
		free(l.v);
		return err;
	}
	n = (uint64_t)count < l.n ? (size_t)count : l.n;
	for (size_t i = 0; i < n; i++) { /* partial Fisher-Yates */
		size_t j = i + (size_t)random() % (l.n - i);
		struct hfield t = l.v[i];

		l.v[i] = l.v[j];
		l.v[j] = t;
	}
	if (!single)
		err = out_hdr(r->kc, '*', (int64_t)n);
	for (size_t i = 0; i < n && !err; i++) {
		err = out_value(r->kc, l.v[i].f, l.v[i].flen); /* valid until the fence */
		if (pop && !err && sub_del(r->d, o.gen, l.v[i].f, l.v[i].flen) == 0)
			hash_count_add(r->d, o.gen, -1);
	}
	free(l.v);
	if (pop && n) {
		if (hash_count(r->d, o.gen) == 0)
			del_key(r->d, k.p, k.n);
		else
			touch_key(r->d, k.p, k.n);
	}
	return err;
}

int cmd_srandmember(struct req *r)
{
	return set_random(r, false);
}

int cmd_spop(struct req *r)
{
	return set_random(r, true);
}

/* ---- sorted sets (minimal) ------------------------------------------------------------------- */

int cmd_zadd(struct req *r)
{
	int64_t added;

	if (r->cmd->argc % 2)
		return out_err(r->kc, "ERR syntax error");
	for (unsigned i = 2; i < r->cmd->argc; i += 2) {
		long double v;
		const uint8_t *a = arg(r, i);

		if (!a || !resp_parse_ld(a, arg_len(r, i), &v))
			return out_err(r->kc, "ERR value is not a valid float");
	}
	return coll_add(r, T_ZSET, 3, 2, &added) ? 0 : out_hdr(r->kc, ':', added);
}

int cmd_zscore(struct req *r)
{
	const uint8_t *p;
	struct str k;
	struct obj o;
	size_t n;
	int f = get_typed(r, T_ZSET, &k, &o);

	if (f)
		return f > 0 ? out_str(r->kc, "$-1\r\n") : 0;
	if (field_get(r, o.gen, 2, &p, &n))
		return out_str(r->kc, "$-1\r\n");
	return out_value(r->kc, p, n);
}

static int by_score(const void *a, const void *b)
{
	const struct hfield *x = a, *y = b;
	long double sx = strtold((const char *)x->v, NULL), sy = strtold((const char *)y->v, NULL);
	int c;

	if (sx != sy)
		return sx < sy ? -1 : 1;
	c = memcmp(x->f, y->f, x->flen < y->flen ? x->flen : y->flen);
	return c ? c : (x->flen > y->flen) - (x->flen < y->flen);
}

/* ZRANGE key start stop [WITHSCORES]: by rank only. */
int cmd_zrange(struct req *r)
{
	int64_t start, stop, len;
	bool ws = r->cmd->argc == 5 && arg_is(r, 4, "WITHSCORES");
	struct hlist l;
	struct str k;
	struct obj o;
	int f, err;

	if (r->cmd->argc > 5 || (r->cmd->argc == 5 && !ws))
		return out_err(r->kc, "ERR syntax error");
	if (!arg_ll(r, 2, &start) || !arg_ll(r, 3, &stop))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	f = get_typed(r, T_ZSET, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, "*0\r\n") : 0;
	if (hash_list(r->d, o.gen, &l)) {
		free(l.v);
		return out_err(r->kc, "ERR out of memory");
	}
	if (l.n) /* scores end with '\r': strtold stops there */
		qsort(l.v, l.n, sizeof(*l.v), by_score);
	len = (int64_t)l.n;
	if (start < 0)
		start += len;
	if (stop < 0)
		stop += len;
	if (start < 0)
		start = 0;
	if (stop >= len)
		stop = len - 1;
	if (start > stop) {
		free(l.v);
		return out_str(r->kc, "*0\r\n");
	}
	err = out_hdr(r->kc, '*', (stop - start + 1) * (ws ? 2 : 1));
	for (int64_t i = start; i <= stop && !err; i++) {
		err = out_value(r->kc, l.v[i].f, l.v[i].flen);
		if (ws && !err)
			err = out_value(r->kc, l.v[i].v, l.v[i].vlen);
	}
	free(l.v);
	return err;
}
