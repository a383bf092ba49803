/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_list.c - lists: LPUSH, RPUSH, LPOP, RPOP (with count), LLEN, LRANGE, LINDEX.
 *
 * A list is a collection (kv_obj.c): a header, and one piece per element, gen|position ->
 * element, where positions are consecutive 8-byte big-endian numbers (a new list starts at
 * 2^62; LPUSH takes the one before the first, RPUSH the one after the last). A push or pop of
 * one element is one atomic put or delete, the element's bytes stay where they arrived, and the
 * first position and the count are kept in memory (rebuilt at startup from the pieces).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define LIST_START (1ull << 62)

static void pos_key(uint8_t *b, uint64_t pos)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(pos >> (56 - 8 * i));
}

static uint64_t list_head(struct kvd *d, uint64_t gen)
{
	uint64_t h = hash_count(d, gen ^ LIST_HEAD_BIT);

	return h ? h : LIST_START;
}

static void set_head(struct kvd *d, uint64_t gen, uint64_t h)
{
	hash_count_add(d, gen ^ LIST_HEAD_BIT, (int64_t)(h - hash_count(d, gen ^ LIST_HEAD_BIT)));
}

/* Element at @pos. @return 0 with *p and *n set, or -ENOENT. */
static int elem_get(struct kvd *d, uint64_t gen, uint64_t pos, const uint8_t **p, size_t *n)
{
	struct paste_ref v;
	size_t mark = d->arena_used;
	uint8_t b[8];
	int err;

	pos_key(b, pos);
	err = sub_get(d, gen, b, 8, &v);
	d->arena_used = mark;
	if (err)
		return -ENOENT;
	*p = paste_pool__ref_ptr(d->pool, &v);
	*n = v.len ? v.len - 1 : 0;
	return *p ? 0 : -ENOENT;
}

static int push(struct req *r, bool left)
{
	struct str k;
	struct obj o;
	uint64_t gen, head, count;
	int f, err = 0;

	for (unsigned i = 2; i < r->cmd->argc; i++)
		if (arg_len(r, i) + 1 > r->d->frame_size)
			return out_err(r->kc, "ERR list element exceeds maximum allowed size (%u)",
			               r->d->frame_size - 1);
	if (refuse_write(r))
		return 0;
	f = get_typed(r, T_LIST, &k, &o);
	if (f < 0)
		return 0;
	gen = f ? r->d->next_gen++ : o.gen;
	head = list_head(r->d, gen);
	count = hash_count(r->d, gen);
	for (unsigned i = 2; i < r->cmd->argc && !err; i++) {
		uint64_t pos = left ? head - 1 : head + count;
		struct paste_ref v = {0};
		size_t mark = r->d->arena_used;
		uint8_t b[8];
		struct str s;

		pos_key(b, pos);
		err = arg_str(r, i, &s);
		if (!err)
			err = keep_str(r->d, &s, &v, S_VAL);
		if (!err)
			err = sub_put(r->d, gen, b, 8, &v);
		r->d->arena_used = mark;
		if (err)
			break;
		count++;
		if (left)
			head--;
	}
	hash_count_add(r->d, gen, (int64_t)(count - hash_count(r->d, gen)));
	set_head(r->d, gen, head);
	if (!err && f)
		err = hdr_store(r->d, &k, T_LIST, gen, 0, 0, 0);
	if (err)
		return reply_store_err(r, err);
	touch_key(r->d, k.p, k.n);
	return out_hdr(r->kc, ':', (int64_t)count);
}

int cmd_lpush(struct req *r)
{
	return push(r, true);
}

int cmd_rpush(struct req *r)
{
	return push(r, false);
}

/* LPOP/RPOP key [count] */
static int pop(struct req *r, bool left)
{
	bool single = r->cmd->argc == 2;
	int64_t want = 1;
	struct str k;
	struct obj o;
	uint64_t head, count, n;
	int f, err = 0;

	if (r->cmd->argc > 3)
		return out_err(r->kc, "ERR wrong number of arguments for '%s' command",
		               left ? "lpop" : "rpop");
	if (!single && (!arg_ll(r, 2, &want) || want < 0))
		return out_err(r->kc, "ERR value is out of range, must be positive");
	f = get_typed(r, T_LIST, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, single ? "$-1\r\n" : "*-1\r\n") : 0;
	head = list_head(r->d, o.gen);
	count = hash_count(r->d, o.gen);
	n = (uint64_t)want < count ? (uint64_t)want : count;
	if (!single)
		err = out_hdr(r->kc, '*', (int64_t)n);
	for (uint64_t i = 0; i < n && !err; i++) {
		uint64_t pos = left ? head : head + count - 1;
		const uint8_t *p;
		size_t len;
		uint8_t b[8];

		if (elem_get(r->d, o.gen, pos, &p, &len) == 0)
			err = out_value(r->kc, p, len); /* valid until the fence */
		else
			err = out_str(r->kc, "$-1\r\n");
		pos_key(b, pos);
		sub_del(r->d, o.gen, b, 8);
		count--;
		if (left)
			head++;
	}
	hash_count_add(r->d, o.gen, (int64_t)(count - hash_count(r->d, o.gen)));
	set_head(r->d, o.gen, head);
	if (!count)
		del_key(r->d, k.p, k.n);
	else if (n)
		touch_key(r->d, k.p, k.n);
	return err;
}

int cmd_lpop(struct req *r)
{
	return pop(r, true);
}

int cmd_rpop(struct req *r)
{
	return pop(r, false);
}

int cmd_llen(struct req *r)
{
	struct str k;
	struct obj o;
	int f = get_typed(r, T_LIST, &k, &o);

	if (f)
		return f > 0 ? out_hdr(r->kc, ':', 0) : 0;
	return out_hdr(r->kc, ':', (int64_t)hash_count(r->d, o.gen));
}

int cmd_lrange(struct req *r)
{
	int64_t start, stop, len;
	uint64_t head;
	struct str k;
	struct obj o;
	int f, err;

	if (!arg_ll(r, 2, &start) || !arg_ll(r, 3, &stop))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	f = get_typed(r, T_LIST, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, "*0\r\n") : 0;
	head = list_head(r->d, o.gen);
	len = (int64_t)hash_count(r->d, o.gen);
	if (start < 0)
		start += len;
	if (stop < 0)
		stop += len;
	if (start < 0)
		start = 0;
	if (stop >= len)
		stop = len - 1;
	if (start > stop)
		return out_str(r->kc, "*0\r\n");
	err = out_hdr(r->kc, '*', stop - start + 1);
	for (int64_t i = start; i <= stop && !err; i++) {
		const uint8_t *p;
		size_t n;

		err = elem_get(r->d, o.gen, head + (uint64_t)i, &p, &n) ? out_str(r->kc, "$-1\r\n")
		                                                        : out_value(r->kc, p, n);
	}
	return err;
}

int cmd_lindex(struct req *r)
{
	int64_t i, len;
	const uint8_t *p;
	struct str k;
	struct obj o;
	size_t n;
	int f;

	if (!arg_ll(r, 2, &i))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	f = get_typed(r, T_LIST, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, "$-1\r\n") : 0;
	len = (int64_t)hash_count(r->d, o.gen);
	if (i < 0)
		i += len;
	if (i < 0 || i >= len ||
	    elem_get(r->d, o.gen, list_head(r->d, o.gen) + (uint64_t)i, &p, &n))
		return out_str(r->kc, "$-1\r\n");
	return out_value(r->kc, p, n);
}

/* Element @i (from the head) of list @gen. @return 0 with *p and *n set, or -ENOENT. */
int list_at(struct kvd *d, uint64_t gen, uint64_t i, const uint8_t **p, size_t *n)
{
	return elem_get(d, gen, list_head(d, gen) + i, p, n);
}

/* Store @k -> a new list of the @cnt elements @el (copied). @return 0 or a negative errno. */
int list_create(struct kvd *d, const struct str *k, const struct hfield *el, size_t cnt)
{
	uint64_t gen = d->next_gen++;
	size_t n = 0;
	int err = 0;

	for (size_t i = 0; i < cnt && !err; i++) {
		struct paste_ref v = {0};
		size_t mark = d->arena_used;
		uint8_t b[8], *buf = arena_alloc(d, el[i].flen + 1);

		if (!buf) {
			err = -ENOMEM;
			break;
		}
		memcpy(buf, el[i].f, el[i].flen);
		buf[el[i].flen] = '\r';
		pos_key(b, LIST_START + i);
		err = paste_keep_copy(d->ctx, buf, el[i].flen + 1, &v);
		if (!err)
			err = sub_put(d, gen, b, 8, &v);
		d->arena_used = mark;
		if (!err)
			n++;
	}
	if (!err) {
		hash_count_add(d, gen, (int64_t)cnt);
		set_head(d, gen, LIST_START);
		err = hdr_store(d, k, T_LIST, gen, 0, 0, 0);
	}
	if (err) { /* nothing names these pieces: delete them */
		for (size_t i = 0; i < n; i++) {
			uint8_t b[8];
			size_t mark = d->arena_used;

			pos_key(b, LIST_START + i);
			sub_del(d, gen, b, 8);
			d->arena_used = mark;
		}
		hash_count_add(d, gen, -(int64_t)hash_count(d, gen));
	}
	return err;
}
