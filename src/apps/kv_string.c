/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_string.c - paste-kv's string commands (GET, SET, MSET, INCR..., APPEND, STRLEN).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"

int out_wrongtype(struct kconn *kc)
{
	return out_str(kc,
	               "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
}

/* Look up the string at argument @i. @return 0 found (*o), 1 absent, -1 another type (replied). */
int get_str(struct req *r, unsigned i, struct str *k, struct obj *o)
{
	if (arg_key(r, i, k) || obj_lookup(r->d, k, o)) {
		r->d->st.misses++;
		return 1;
	}
	if (!IS_STRING(o->type)) {
		out_wrongtype(r->kc);
		return -1;
	}
	r->d->st.hits++;
	return 0;
}

/* Store argument @i as @k's value: in place (one reference, or a big string's pieces). */
int store_arg(struct req *r, const struct str *k, unsigned i, uint64_t ttl)
{
	uint32_t n = arg_len(r, i);
	struct str v;

	if ((size_t)n + 1 <= r->d->frame_size) {
		if (arg_str(r, i, &v))
			return -ENOMEM;
		return store(r->d, k, &v, ttl, S_VAL);
	}
	if (!r->cmd->inl && !r->queued)
		return big_store(r->d, k, r->b, r->base + r->cmd->argv[i].off, NULL, n, ttl);
	return big_store(r->d, k, NULL, 0, arg(r, i), n, ttl);
}

/* Store computed bytes as @k's value (copied into the pool). */
int store_bytes(struct req *r, const struct str *k, const void *p, size_t n, uint64_t ttl)
{
	if (n + 1 <= r->d->frame_size)
		return store_new(r, k, p, n, ttl);
	if (!p)
		return -ENOMEM;
	return big_store(r->d, k, NULL, 0, p, n, ttl);
}

int cmd_get(struct req *r)
{
	struct str k;
	struct obj o;
	int f = get_str(r, 1, &k, &o);

	if (f)
		return f > 0 ? out_str(r->kc, "$-1\r\n") : 0;
	return out_obj(r->d, r->kc, &o);
}

struct set_opts {
	bool nx, xx, get, keepttl;
	uint64_t deadline; /* 0: none */
};

int parse_set_opts(struct req *r, struct set_opts *o)
{
	for (unsigned i = 3; i < r->cmd->argc; i++) {
		bool ex = arg_is(r, i, "EX"), px = arg_is(r, i, "PX");
		bool exat = arg_is(r, i, "EXAT"), pxat = arg_is(r, i, "PXAT");
		int64_t v;

		if (arg_is(r, i, "NX") && !o->xx) {
			o->nx = true;
		} else if (arg_is(r, i, "XX") && !o->nx) {
			o->xx = true;
		} else if (arg_is(r, i, "GET")) {
			o->get = true;
		} else if (arg_is(r, i, "KEEPTTL") && !o->deadline) {
			o->keepttl = true;
		} else if ((ex || px || exat || pxat) && !o->keepttl && !o->deadline &&
		           i + 1 < r->cmd->argc) {
			if (!arg_ll(r, ++i, &v))
				return out_err(r->kc,
				               "ERR value is not an integer or out of range"),
				       -1;
			if (v <= 0 || (ex || exat ? v > INT64_MAX / 1000 : false))
				return out_err(r->kc, "ERR invalid expire time in 'set' command"),
				       -1;
			o->deadline = ex     ? r->d->now_ms + (uint64_t)v * 1000
			              : px   ? r->d->now_ms + (uint64_t)v
			              : exat ? (uint64_t)v * 1000
			                     : (uint64_t)v;
		} else {
			return out_err(r->kc, "ERR syntax error"), -1;
		}
	}
	return 0;
}

int cmd_set(struct req *r)
{
	struct set_opts o = {0};
	struct obj old;
	struct str k;
	int exists, err;

	if (parse_set_opts(r, &o) || check_key(r, 1) || check_value(r, arg_len(r, 2)))
		return 0;
	if (refuse_write(r))
		return 0;
	if (arg_key(r, 1, &k))
		return out_err(r->kc, "ERR request too large");
	exists = obj_lookup(r->d, &k, &old) == 0;
	if (exists && o.get && !IS_STRING(old.type))
		return out_wrongtype(r->kc);
	if ((o.nx && exists) || (o.xx && !exists))
		return o.get && exists ? out_obj(r->d, r->kc, &old) : out_str(r->kc, "$-1\r\n");
	if (o.deadline && o.deadline <= r->d->now_ms) { /* already expired: Redis deletes */
		if (exists)
			del_key(r->d, k.p, k.n);
		return o.get && exists ? out_obj(r->d, r->kc, &old) : out_str(r->kc, "+OK\r\n");
	}
	err = store_arg(r, &k, 2, o.deadline ? o.deadline : o.keepttl ? UINT64_MAX : 0);
	if (err)
		return reply_store_err(r, err);
	if (o.get) /* the old value is released (its pieces deleted) only after the fence */
		return exists ? out_obj(r->d, r->kc, &old) : out_str(r->kc, "$-1\r\n");
	return out_str(r->kc, "+OK\r\n");
}

static int mset(struct req *r)
{
	struct paste_kv_info info;
	unsigned argc = r->cmd->argc;

	if (argc % 2 == 0)
		return out_err(r->kc, "ERR wrong number of arguments for 'mset' command");
	for (unsigned i = 1; i < argc; i += 2)
		if (check_key(r, i) || check_value(r, arg_len(r, i + 1)))
			return 0;
	paste_kv__info(r->d->kv, &info, sizeof(info));
	if (refuse_write(r))
		return 0;
	if (info.keys + argc / 2 > info.capacity) /* all or nothing where it can be told */
		return reply_store_err(r, -ENOSPC);
	for (unsigned i = 1; i < argc; i += 2) { /* the undo log: every key, one fence (kv_tx.c) */
		struct str k;
		int err;

		arena_reset(r->d);
		if (arg_key(r, i, &k))
			return out_err(r->kc, "ERR request too large");
		err = tx_prelog(r->d, r->d->kv, k.p, k.n);
		if (!err && ttl_count(r->d))
			err = tx_prelog(r->d, r->d->ttl, k.p, k.n);
		if (err)
			return reply_store_err(r, err);
	}
	for (unsigned i = 1; i < argc; i += 2) {
		struct str k, v;
		int err;

		arena_reset(r->d);
		(void)v;
		if (arg_key(r, i, &k))
			return out_err(r->kc, "ERR request too large");
		err = store_arg(r, &k, i + 1, 0);
		if (err)
			return reply_store_err(r, err);
	}
	return out_str(r->kc, "+OK\r\n");
}

/* Several keys: crash-atomic through the undo log (kv_tx.c). */
int cmd_mset(struct req *r)
{
	int err;

	tx_begin(r->d);
	err = mset(r);
	tx_end(r->d);
	return err;
}

int cmd_mget(struct req *r)
{
	if (out_hdr(r->kc, '*', r->cmd->argc - 1))
		return -ENOMEM;
	for (unsigned i = 1; i < r->cmd->argc; i++) {
		struct str k;
		struct obj o;

		arena_reset(r->d);
		if (arg_key(r, i, &k) || obj_lookup(r->d, &k, &o) || !IS_STRING(o.type)) {
			r->d->st.misses++;
			if (out_str(r->kc, "$-1\r\n"))
				return -ENOMEM;
			continue;
		}
		r->d->st.hits++;
		if (out_obj(r->d, r->kc, &o))
			return -ENOMEM;
	}
	return 0;
}

/* DEL (@del) or EXISTS: count the keys. */
int count_keys(struct req *r, bool del)
{
	int64_t n = 0;

	for (unsigned i = 1; i < r->cmd->argc; i++) {
		struct paste_ref v;
		struct str k;

		arena_reset(r->d);
		if (arg_key(r, i, &k) || lookup(r->d, &k, &v))
			continue;
		n += del ? del_key(r->d, k.p, k.n) : 1;
	}
	return out_hdr(r->kc, ':', n);
}

int cmd_del(struct req *r)
{
	return count_keys(r, true);
}

int cmd_exists(struct req *r)
{
	return count_keys(r, false);
}

/* Store a computed value (copied once into the pool). */
int store_new(struct req *r, const struct str *k, const void *p, size_t n, uint64_t ttl)
{
	uint8_t *buf = arena_alloc(r->d, n + 1);
	struct str v;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, p, n);
	buf[n] = '\r';
	v = (struct str){.p = buf, .n = (uint32_t)n + 1, .pool = false};
	return store(r->d, k, &v, ttl, S_NEW);
}

int incr_by(struct req *r, int64_t by)
{
	int64_t cur = 0;
	char num[24];
	struct str k;
	struct obj o;
	int err, n, f;

	if (check_key(r, 1) || refuse_write(r))
		return 0;
	f = get_str(r, 1, &k, &o);
	if (f < 0)
		return 0;
	if (f == 0 && (o.type != T_STR || !resp_parse_ll(o.p, o.len, &cur)))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if ((by > 0 && cur > INT64_MAX - by) || (by < 0 && cur < INT64_MIN - by))
		return out_err(r->kc, "ERR increment or decrement would overflow");
	cur += by;
	n = snprintf(num, sizeof(num), "%lld", (long long)cur);
	err = store_new(r, &k, num, (size_t)n, UINT64_MAX);
	if (err)
		return reply_store_err(r, err);
	return out_hdr(r->kc, ':', cur);
}

int cmd_incr(struct req *r)
{
	return incr_by(r, 1);
}

int cmd_decr(struct req *r)
{
	return incr_by(r, -1);
}

int cmd_incrby(struct req *r)
{
	int64_t by;

	if (!arg_ll(r, 2, &by))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	return incr_by(r, by);
}

int cmd_decrby(struct req *r)
{
	int64_t by;

	if (!arg_ll(r, 2, &by) || by == INT64_MIN)
		return out_err(r->kc, "ERR value is not an integer or out of range");
	return incr_by(r, -by);
}

int cmd_append(struct req *r)
{
	size_t alen = arg_len(r, 2);
	const uint8_t *op, *ap;
	struct str k;
	struct obj o;
	uint8_t *buf;
	int err, f;

	if (check_key(r, 1) || refuse_write(r))
		return 0;
	f = get_str(r, 1, &k, &o);
	if (f < 0)
		return 0;
	if (f > 0) { /* a new key: the value can stay where it arrived, as for SET */
		if (check_value(r, alen))
			return 0;
		err = store_arg(r, &k, 2, 0);
		return err ? reply_store_err(r, err) : out_hdr(r->kc, ':', (int64_t)alen);
	}
	if (check_value(r, o.len + alen))
		return 0;
	op = obj_bytes(r->d, &o);
	ap = arg(r, 2);
	buf = arena_alloc(r->d, o.len + alen + 1);
	if (!op || !ap || !buf)
		return out_err(r->kc, "ERR out of memory");
	memcpy(buf, op, o.len);
	memcpy(buf + o.len, ap, alen);
	err = store_bytes(r, &k, buf, o.len + alen, UINT64_MAX);
	return err ? reply_store_err(r, err) : out_hdr(r->kc, ':', (int64_t)(o.len + alen));
}

int cmd_strlen(struct req *r)
{
	struct str k;
	struct obj o;
	int f = get_str(r, 1, &k, &o);

	if (f < 0)
		return 0;
	return out_hdr(r->kc, ':', f ? 0 : (int64_t)o.len);
}
