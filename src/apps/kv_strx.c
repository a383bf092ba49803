/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_strx.c - the rest of paste-kv's string family: SETNX, SETEX, PSETEX, GETEX, GETDEL, GETSET,
 * MSETNX, GETRANGE/SUBSTR, SETRANGE, INCRBYFLOAT, SETBIT, GETBIT, BITCOUNT, LCS. Replies and
 * error strings are Redis 7.0's.
 *
 * New values these commands compute (SETRANGE, SETBIT, INCRBYFLOAT) are written with one copy
 * into the pool (store_bytes); values taken from the request (SETNX, SETEX, GETSET, MSETNX) stay
 * where they arrived, as for SET.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define KV_STRING_MAX (512ull << 20) /* Redis' proto-max-bulk-len */

static int out_int_err(struct req *r)
{
	return out_err(r->kc, "ERR value is not an integer or out of range");
}

int cmd_setnx(struct req *r)
{
	struct str k;
	struct obj o;
	int err;

	if (check_key(r, 1) || check_value(r, arg_len(r, 2)) || refuse_write(r))
		return 0;
	if (arg_key(r, 1, &k))
		return out_err(r->kc, "ERR request too large");
	if (obj_lookup(r->d, &k, &o) == 0)
		return out_hdr(r->kc, ':', 0);
	err = store_arg(r, &k, 2, 0);
	return err ? reply_store_err(r, err) : out_hdr(r->kc, ':', 1);
}

/* SETEX key seconds value (@ms false), PSETEX key ms value. */
static int setex_generic(struct req *r, bool ms)
{
	int64_t t;
	struct str k;
	int err;

	if (!arg_ll(r, 2, &t))
		return out_int_err(r);
	if (t <= 0 || (!ms && t > INT64_MAX / 1000))
		return out_bad_expire(r);
	if (!ms)
		t *= 1000;
	if (t > INT64_MAX - (int64_t)r->d->now_ms)
		return out_bad_expire(r);
	if (check_key(r, 1) || check_value(r, arg_len(r, 3)) || refuse_write(r))
		return 0;
	if (arg_key(r, 1, &k))
		return out_err(r->kc, "ERR request too large");
	err = store_arg(r, &k, 3, r->d->now_ms + (uint64_t)t);
	return err ? reply_store_err(r, err) : out_str(r->kc, "+OK\r\n");
}

int cmd_setex(struct req *r)
{
	return setex_generic(r, false);
}

int cmd_psetex(struct req *r)
{
	return setex_generic(r, true);
}

int cmd_getex(struct req *r)
{
	uint64_t dl = 0;
	bool persist = false;
	struct str k;
	struct obj o;
	int f;

	for (unsigned i = 2; i < r->cmd->argc; i++) {
		bool ex = arg_is(r, i, "EX"), px = arg_is(r, i, "PX");
		bool exat = arg_is(r, i, "EXAT"), pxat = arg_is(r, i, "PXAT");
		int64_t v;

		if (arg_is(r, i, "PERSIST") && !dl && !persist) {
			persist = true;
		} else if ((ex || px || exat || pxat) && !dl && !persist && i + 1 < r->cmd->argc) {
			if (!arg_ll(r, ++i, &v))
				return out_int_err(r);
			if (v <= 0 || ((ex || exat) && v > INT64_MAX / 1000))
				return out_bad_expire(r);
			if (ex || exat)
				v *= 1000;
			if ((ex || px) && v > INT64_MAX - (int64_t)r->d->now_ms)
				return out_bad_expire(r);
			dl = (uint64_t)v + (ex || px ? r->d->now_ms : 0);
		} else {
			return out_err(r->kc, "ERR syntax error");
		}
	}
	f = get_str(r, 1, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, "$-1\r\n") : 0;
	if (out_obj(r->d, r->kc, &o))
		return -ENOMEM;
	if (dl && dl <= r->d->now_ms) {
		del_key(r->d, k.p, k.n);
	} else if (dl) {
		if (ttl_set(r->d, &k, dl))
			r->d->st.oom++;
		touch_key(r->d, k.p, k.n);
	} else if (persist && ttl_get(r->d, &k)) {
		ix_del(r->d, r->d->ttl, k.p, k.n);
		touch_key(r->d, k.p, k.n);
	}
	return 0;
}

int cmd_getdel(struct req *r)
{
	struct str k;
	struct obj o;
	int f = get_str(r, 1, &k, &o);

	if (f)
		return f > 0 ? out_str(r->kc, "$-1\r\n") : 0;
	if (out_obj(r->d, r->kc, &o)) /* the bytes stay valid until the round's fence */
		return -ENOMEM;
	del_key(r->d, k.p, k.n);
	return 0;
}

int cmd_getset(struct req *r)
{
	struct str k;
	struct obj o;
	int f, err;

	if (check_key(r, 1) || check_value(r, arg_len(r, 2)) || refuse_write(r))
		return 0;
	f = get_str(r, 1, &k, &o);
	if (f < 0)
		return 0;
	err = store_arg(r, &k, 2, 0);
	if (err)
		return reply_store_err(r, err);
	return f ? out_str(r->kc, "$-1\r\n") : out_obj(r->d, r->kc, &o);
}

static int msetnx(struct req *r)
{
	unsigned argc = r->cmd->argc;

	if (argc % 2 == 0)
		return out_err(r->kc, "ERR wrong number of arguments for 'msetnx' command");
	for (unsigned i = 1; i < argc; i += 2) {
		struct str k;
		struct obj o;

		arena_reset(r->d);
		if (check_key(r, i) || check_value(r, arg_len(r, i + 1)))
			return 0;
		if (arg_key(r, i, &k))
			return out_err(r->kc, "ERR request too large");
		if (obj_lookup(r->d, &k, &o) == 0)
			return out_hdr(r->kc, ':', 0);
	}
	if (refuse_write(r))
		return 0;
	for (unsigned i = 1; i < argc; i += 2) {
		struct str k;
		int err;

		arena_reset(r->d);
		if (arg_key(r, i, &k))
			return out_err(r->kc, "ERR request too large");
		err = store_arg(r, &k, i + 1, 0);
		if (err)
			return reply_store_err(r, err);
	}
	return out_hdr(r->kc, ':', 1);
}

/* Several keys: crash-atomic through the undo log (kv_tx.c). */
int cmd_msetnx(struct req *r)
{
	int err;

	tx_begin(r->d);
	err = msetnx(r);
	tx_end(r->d);
	return err;
}

int cmd_getrange(struct req *r)
{
	int64_t start, end, len;
	struct str k;
	struct obj o;
	uint8_t *buf;
	int f;

	if (!arg_ll(r, 2, &start) || !arg_ll(r, 3, &end))
		return out_int_err(r);
	f = get_str(r, 1, &k, &o);
	if (f)
		return f > 0 ? out_str(r->kc, "$0\r\n\r\n") : 0;
	len = (int64_t)o.len;
	if (start < 0 && end < 0 && start > end)
		return out_str(r->kc, "$0\r\n\r\n");
	if (start < 0)
		start = len + start;
	if (end < 0)
		end = len + end;
	if (start < 0)
		start = 0;
	if (end < 0)
		end = 0;
	if (end >= len)
		end = len - 1;
	if (start > end || len == 0)
		return out_str(r->kc, "$0\r\n\r\n");
	if (o.type == T_STR)
		return out_value(r->kc, o.p + start, (size_t)(end - start + 1));
	buf = arena_alloc(r->d, (size_t)(end - start + 1));
	if (!buf || obj_read(r->d, &o, (uint64_t)start, (uint64_t)(end - start + 1), buf))
		return out_err(r->kc, "ERR out of memory");
	return out_value(r->kc, buf, (size_t)(end - start + 1));
}

/* A string of @n bytes: @o's bytes (if @f == 0) then zeros; in the scratch. */
static uint8_t *widened(struct req *r, const struct obj *o, int f, size_t n)
{
	uint8_t *buf = arena_alloc(r->d, n ? n : 1);

	if (!buf)
		return NULL;
	memset(buf, 0, n);
	if (!f && obj_read(r->d, o, 0, o->len < n ? o->len : n, buf))
		return NULL;
	return buf;
}

int cmd_setrange(struct req *r)
{
	int64_t off;
	size_t vlen = arg_len(r, 3), n;
	const uint8_t *v;
	struct str k;
	struct obj o;
	uint8_t *buf;
	int f, err;

	if (!arg_ll(r, 2, &off))
		return out_int_err(r);
	if (off < 0)
		return out_err(r->kc, "ERR offset is out of range");
	f = get_str(r, 1, &k, &o);
	if (f < 0)
		return 0;
	if (vlen == 0)
		return out_hdr(r->kc, ':', f ? 0 : (int64_t)o.len);
	if ((uint64_t)off + vlen > KV_STRING_MAX)
		return out_err(r->kc,
		               "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
	if (refuse_write(r))
		return 0;
	n = (size_t)off + vlen;
	if (!f && o.len > n)
		n = o.len;
	buf = widened(r, &o, f, n);
	v = arg(r, 3);
	if (!buf || !v)
		return out_err(r->kc, "ERR out of memory");
	memcpy(buf + off, v, vlen);
	err = store_bytes(r, &k, buf, n, UINT64_MAX);
	return err ? reply_store_err(r, err) : out_hdr(r->kc, ':', (int64_t)n);
}

/* ---- INCRBYFLOAT --------------------------------------------------------------------------------
 */

int cmd_incrbyfloat(struct req *r)
{
	long double cur = 0, by;
	const uint8_t *a = arg(r, 2);
	char num[5600];
	struct str k;
	struct obj o;
	int f, n, err;

	if (check_key(r, 1) || refuse_write(r))
		return 0;
	f = get_str(r, 1, &k, &o);
	if (f < 0)
		return 0;
	if ((!f && (o.type != T_STR || !resp_parse_ld(o.p, o.len, &cur))) || !a ||
	    !resp_parse_ld(a, arg_len(r, 2), &by))
		return out_err(r->kc, "ERR value is not a valid float");
	cur += by;
	if (isnan(cur) || isinf(cur))
		return out_err(r->kc, "ERR increment would produce NaN or Infinity");
	n = resp_fmt_ld(num, sizeof(num), cur);
	if (n < 0)
		return out_err(r->kc, "ERR value is not a valid float");
	err = store_bytes(r, &k, num, (size_t)n, UINT64_MAX);
	return err ? reply_store_err(r, err) : out_value(r->kc, (const uint8_t *)num, (size_t)n);
}

/* ---- bits --------------------------------------------------------------------------------------
 */

static bool bit_offset(struct req *r, unsigned i, uint64_t *off)
{
	int64_t v;

	if (!arg_ll(r, i, &v) || v < 0 || (uint64_t)v >> 3 >= KV_STRING_MAX) {
		out_err(r->kc, "ERR bit offset is not an integer or out of range");
		return false;
	}
	*off = (uint64_t)v;
	return true;
}

int cmd_setbit(struct req *r)
{
	uint64_t off;
	int64_t bit;
	size_t n, byte;
	struct str k;
	struct obj o;
	uint8_t *buf, old;
	int f, err;

	if (!bit_offset(r, 2, &off))
		return 0;
	if (!arg_ll(r, 3, &bit) || (bit != 0 && bit != 1))
		return out_err(r->kc, "ERR bit is not an integer or out of range");
	f = get_str(r, 1, &k, &o);
	if (f < 0 || refuse_write(r))
		return 0;
	byte = (size_t)(off >> 3);
	n = byte + 1;
	if (!f && o.len > n)
		n = o.len;
	buf = widened(r, &o, f, n);
	if (!buf)
		return out_err(r->kc, "ERR out of memory");
	old = (uint8_t)(buf[byte] >> (7 - (off & 7)) & 1);
	buf[byte] =
	    (uint8_t)((buf[byte] & ~(1u << (7 - (off & 7)))) | (unsigned)bit << (7 - (off & 7)));
	err = store_bytes(r, &k, buf, n, UINT64_MAX);
	return err ? reply_store_err(r, err) : out_hdr(r->kc, ':', old);
}

int cmd_getbit(struct req *r)
{
	uint64_t off;
	struct str k;
	struct obj o;
	uint8_t b = 0;
	int f;

	if (!bit_offset(r, 2, &off))
		return 0;
	f = get_str(r, 1, &k, &o);
	if (f < 0)
		return 0;
	if (f || (off >> 3) >= o.len)
		return out_hdr(r->kc, ':', 0);
	if (obj_read(r->d, &o, off >> 3, 1, &b))
		return out_err(r->kc, "ERR stored value unreadable");
	return out_hdr(r->kc, ':', b >> (7 - (off & 7)) & 1);
}

/* Redis' range rule of BITCOUNT/BITPOS: negative counts from the end, clamped to [0, len-1].
 * @return false when the range is empty. */
static bool clamp_range(int64_t *start, int64_t *end, int64_t len)
{
	if (*start < 0)
		*start += len;
	if (*end < 0)
		*end += len;
	if (*start < 0)
		*start = 0;
	if (*end < 0)
		*end = 0;
	if (*end >= len)
		*end = len - 1;
	return *start <= *end;
}

/* [start, end [BYTE|BIT]] from argument @i on; @return 0, or -1 with the error replied. */
static int bit_range(struct req *r, unsigned i, int64_t *start, int64_t *end, bool *bits)
{
	unsigned argc = r->cmd->argc;

	if ((argc > i && !arg_ll(r, i, start)) || (argc > i + 1 && !arg_ll(r, i + 1, end))) {
		out_int_err(r);
		return -1;
	}
	if (argc > i + 2) {
		if (arg_is(r, i + 2, "BIT"))
			*bits = true;
		else if (!arg_is(r, i + 2, "BYTE")) {
			out_err(r->kc, "ERR syntax error");
			return -1;
		}
	}
	return 0;
}

int cmd_bitcount(struct req *r)
{
	int64_t start = 0, end = -1, len, cnt = 0;
	bool bits = false;
	const uint8_t *p;
	struct str k;
	struct obj o;
	int f;

	if (r->cmd->argc == 3 || r->cmd->argc > 5)
		return out_err(r->kc, "ERR syntax error");
	if (bit_range(r, 2, &start, &end, &bits))
		return 0;
	f = get_str(r, 1, &k, &o);
	if (f)
		return f > 0 ? out_hdr(r->kc, ':', 0) : 0;
	p = obj_bytes(r->d, &o);
	if (!p)
		return out_err(r->kc, "ERR out of memory");
	if (start < 0 && end < 0 && start > end)
		return out_hdr(r->kc, ':', 0); /* Redis 7.0: an inverted range from the end */
	len = (int64_t)o.len * (bits ? 8 : 1);
	clamp_range(&start, &end, len);
	for (int64_t i = start; i <= end && len; i++)
		cnt += bits ? p[i >> 3] >> (7 - (i & 7)) & 1 : __builtin_popcount(p[i]);
	return out_hdr(r->kc, ':', cnt);
}

/* BITPOS key bit [start [end [BYTE|BIT]]]: Redis 7.0's replies, including the position just past
 * the string for a clear bit searched without an end. */
int cmd_bitpos(struct req *r)
{
	int64_t bit, start = 0, end = -1, len, b0, b1;
	bool bits = false;
	const uint8_t *p;
	struct str k;
	struct obj o;
	int f;

	if (r->cmd->argc > 6)
		return out_err(r->kc, "ERR syntax error");
	if (!arg_ll(r, 2, &bit))
		return out_int_err(r);
	if (bit != 0 && bit != 1)
		return out_err(r->kc, "ERR The bit argument must be 1 or 0.");
	if (bit_range(r, 3, &start, &end, &bits))
		return 0;
	f = get_str(r, 1, &k, &o);
	if (f)
		return f > 0 ? out_hdr(r->kc, ':', bit ? -1 : 0) : 0;
	p = obj_bytes(r->d, &o);
	if (!p)
		return out_err(r->kc, "ERR out of memory");
	len = (int64_t)o.len * (bits ? 8 : 1);
	if (!clamp_range(&start, &end, len))
		return out_hdr(r->kc, ':', -1);
	b0 = bits ? start : start * 8;
	b1 = bits ? end : end * 8 + 7;
	for (int64_t i = b0; i <= b1; i++) {
		if (!bits && !(i & 7) && i + 7 <= b1 && p[i >> 3] == (bit ? 0 : 0xff)) {
			i += 7; /* a whole byte without the bit */
			continue;
		}
		if ((p[i >> 3] >> (7 - (i & 7)) & 1) == bit)
			return out_hdr(r->kc, ':', i);
	}
	/* No clear bit and no end given: the string is seen as padded with zeros on the right. */
	return out_hdr(r->kc, ':', !bit && r->cmd->argc < 5 ? b1 + 1 : -1);
}
