/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_expire.c - paste-kv's expiry commands (EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT,
 * PERSIST, TTL, PTTL, EXPIRETIME, PEXPIRETIME) and active expiry.
 *
 * Deadlines live in the persistent expiry index (key -> 8-byte absolute Unix time in ms), so they
 * are durable like the values (the round's fence before the reply). Expiry is lazy (a key found
 * expired when touched is deleted) and active: every KV_EXPIRE_NS the server deletes up to
 * KV_EXPIRE_BATCH expired keys, as Redis' active expire cycle does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "kv_primary.h"

#ifndef KV_EXPIRE_NS
#define KV_EXPIRE_NS 100000000ull /* active expiry: every 100 ms */
#endif
#define KV_EXPIRE_BATCH 256u

enum { EX_NX = 1, EX_XX = 2, EX_GT = 4, EX_LT = 8 };

/* Redis' "ERR invalid expire time in '<cmd>' command". */
int out_bad_expire(struct req *r)
{
	char name[32];
	size_t n = arg_len(r, 0) < sizeof(name) - 1 ? arg_len(r, 0) : sizeof(name) - 1;
	const uint8_t *a = arg(r, 0);

	for (size_t i = 0; a && i < n; i++)
		name[i] = (char)(a[i] | 0x20);
	name[a ? n : 0] = 0;
	return out_err(r->kc, "ERR invalid expire time in '%s' command", name);
}

/* The options after the time (EXPIRE key t [NX|XX|GT|LT ...]). @return flags, or -1 (replied). */
static int expire_flags(struct req *r, unsigned from)
{
	int f = 0;

	for (unsigned i = from; i < r->cmd->argc; i++) {
		if (arg_is(r, i, "NX")) {
			f |= EX_NX;
		} else if (arg_is(r, i, "XX")) {
			f |= EX_XX;
		} else if (arg_is(r, i, "GT")) {
			f |= EX_GT;
		} else if (arg_is(r, i, "LT")) {
			f |= EX_LT;
		} else {
			const uint8_t *a = arg(r, i);

			out_err(r->kc, "ERR Unsupported option %.*s", a ? (int)arg_len(r, i) : 0,
			        a ? (const char *)a : "");
			return -1;
		}
	}
	if ((f & EX_NX) && (f & (EX_XX | EX_GT | EX_LT))) {
		out_err(r->kc,
		        "ERR NX and XX, GT or LT options at the same time are not compatible");
		return -1;
	}
	if ((f & EX_GT) && (f & EX_LT)) {
		out_err(r->kc, "ERR GT and LT options at the same time are not compatible");
		return -1;
	}
	return f;
}

/* EXPIRE family: @ms the unit is milliseconds; @at the time is absolute. */
static int expire_generic(struct req *r, bool ms, bool at)
{
	int64_t when, base = at ? 0 : (int64_t)r->d->now_ms;
	struct paste_ref v;
	uint64_t cur;
	struct str k;
	int f = expire_flags(r, 3);

	if (f < 0)
		return 0;
	if (!arg_ll(r, 2, &when))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if (!ms) {
		if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000)
			return out_bad_expire(r);
		when *= 1000;
	}
	if (when > INT64_MAX - base)
		return out_bad_expire(r);
	when += base;
	if (arg_key(r, 1, &k) || lookup(r->d, &k, &v))
		return out_hdr(r->kc, ':', 0);
	cur = ttl_get(r->d, &k);
	if (((f & EX_NX) && cur) || ((f & EX_XX) && !cur) ||
	    ((f & EX_GT) && (!cur || when <= (int64_t)cur)) ||
	    ((f & EX_LT) && cur && when >= (int64_t)cur))
		return out_hdr(r->kc, ':', 0);
	if (refuse_write(r))
		return 0;
	if (when <= (int64_t)r->d->now_ms) {
		del_key(r->d, k.p, k.n);
		return out_hdr(r->kc, ':', 1);
	}
	if (ttl_set(r->d, &k, (uint64_t)when))
		return reply_store_err(r, -ENOSPC);
	touch_key(r->d, k.p, k.n);
	return out_hdr(r->kc, ':', 1);
}

int cmd_expire(struct req *r)
{
	return expire_generic(r, false, false);
}

int cmd_pexpire(struct req *r)
{
	return expire_generic(r, true, false);
}

int cmd_expireat(struct req *r)
{
	return expire_generic(r, false, true);
}

int cmd_pexpireat(struct req *r)
{
	return expire_generic(r, true, true);
}

int cmd_persist(struct req *r)
{
	struct paste_ref v;
	struct str k;

	if (arg_key(r, 1, &k) || lookup(r->d, &k, &v) || !ttl_get(r->d, &k))
		return out_hdr(r->kc, ':', 0);
	ix_del(r->d, r->d->ttl, k.p, k.n);
	touch_key(r->d, k.p, k.n);
	return out_hdr(r->kc, ':', 1);
}

/* TTL, PTTL (@abs false), EXPIRETIME, PEXPIRETIME (@abs true). */
static int ttl_generic(struct req *r, bool ms, bool abs)
{
	struct paste_ref v;
	struct str k;
	uint64_t dl;
	int64_t t;

	if (arg_key(r, 1, &k) || lookup(r->d, &k, &v))
		return out_hdr(r->kc, ':', -2);
	dl = ttl_get(r->d, &k);
	if (!dl)
		return out_hdr(r->kc, ':', -1);
	if (abs)
		return out_hdr(r->kc, ':', ms ? (int64_t)dl : (int64_t)(dl / 1000));
	t = (int64_t)(dl - r->d->now_ms);
	if (t < 0)
		t = 0;
	return out_hdr(r->kc, ':', ms ? t : (t + 500) / 1000);
}

int cmd_ttl(struct req *r)
{
	return ttl_generic(r, false, false);
}

int cmd_pttl(struct req *r)
{
	return ttl_generic(r, true, false);
}

int cmd_expiretime(struct req *r)
{
	return ttl_generic(r, false, true);
}

int cmd_pexpiretime(struct req *r)
{
	return ttl_generic(r, true, true);
}

/* ---- active expiry --------------------------------------------------------------------------- */

struct expired {
	struct kvd *d;
	struct batch bt;
};

static int expired_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct expired *e = arg;
	const void *v = paste_pool__ref_ptr(e->d->pool, val);
	uint64_t dl = 0;

	if (v && val->len == 8)
		memcpy(&dl, v, 8);
	if (dl > e->d->now_ms)
		return 0;
	return collect_fn(key, val, &e->bt) || e->bt.n >= KV_EXPIRE_BATCH;
}

/* Delete up to KV_EXPIRE_BATCH expired keys; called from the event loop between rounds. */
void expire_cycle(struct kvd *d)
{
	uint64_t now = mono_ns();
	struct expired e = {.d = d};

	if (now - d->expire_last < KV_EXPIRE_NS || !ttl_count(d))
		return;
	d->expire_last = now;
	d->now_ms = wall_ms();
	e.bt = (struct batch){.d = d, .cap = (size_t)KV_EXPIRE_BATCH * (4 + d->frame_size)};
	e.bt.buf = malloc(e.bt.cap);
	if (!e.bt.buf)
		return;
	paste_kv__iterate(d->ttl, expired_fn, &e);
	for (size_t o = 0; o < e.bt.len;) {
		uint32_t n;

		memcpy(&n, e.bt.buf + o, 4);
		arena_reset(d);
		kv_primary_expired(d, e.bt.buf + o + 4, n); /* DEL to the replicas */
		if (del_key(d, e.bt.buf + o + 4, n))
			d->st.expired_active++;
		else
			paste_kv__del(d->ttl, e.bt.buf + o + 4, n);
		o += 4 + n;
	}
	free(e.bt.buf);
}
