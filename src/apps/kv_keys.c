/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_keys.c - paste-kv's keyspace and expiry commands (TTL, KEYS, SCAN, DBSIZE, FLUSHALL, ...).
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

/* ---- keyspace commands ---------------------------------------------------------------------- */

struct walk {
	struct kvd *d;
	const uint8_t *pat;
	size_t plen;
	uint64_t skip, visit, seen, matched;
	bool stopped;
	uint8_t tag; /* the database's key tag */
	int type;    /* SCAN TYPE: T_STR (any string), T_HASH, ... or -1 (any) */
};

/* Add the key to the scratch if it matches and is not expired. */
int walk_key(struct walk *w, const struct paste_ref *key, const struct paste_ref *val)
{
	const uint8_t *p = paste_pool__ref_ptr(w->d->pool, key);
	uint8_t *full = NULL;
	size_t n = key->len - 1;
	struct str k;
	uint64_t dl;
	int err;

	if (!p || !key->len || !key_in(p, key->len, w->tag))
		return 0;
	if (w->type >= 0) {
		struct obj o;

		obj_decode(w->d, val, &o);
		if ((IS_STRING(o.type) ? T_STR : o.type) != w->type)
			return 0;
	}
	k = (struct str){.p = p, .n = key->len};
	dl = ttl_get(w->d, &k);
	if (dl && dl <= w->d->now_ms)
		return 0;
	if (lkey_is(p, key->len) && !(full = lkey_bytes(w->d, p, key->len, &n)))
		return 0; /* chunks missing: not a key (yet) */
	if (w->pat && !resp_glob(w->pat, w->plen, full ? full : p, n)) {
		free(full);
		return 0;
	}
	w->matched++;
	err = big_bulk(w->d, full ? full : p, n);
	free(full);
	return err;
}

int keys_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	return walk_key(arg, key, val);
}

int scan_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct walk *w = arg;

	if (w->seen++ < w->skip)
		return 0;
	if (w->visit-- == 0) {
		w->stopped = true;
		return 1;
	}
	return walk_key(w, key, val);
}

bool is_all(const uint8_t *pat, size_t n)
{
	return n == 1 && pat[0] == '*';
}

int cmd_keys(struct req *r)
{
	struct walk w = {.d = r->d,
	                 .pat = arg(r, 1),
	                 .plen = arg_len(r, 1),
	                 .tag = db_tag(r->kc->db),
	                 .type = -1};

	if (!w.pat)
		return out_err(r->kc, "ERR request too large");
	if (is_all(w.pat, w.plen))
		w.pat = NULL;
	r->d->big_len = 0;
	if (paste_kv__iterate(r->d->kv, keys_fn, &w) < 0)
		return out_err(r->kc, "ERR out of memory");
	return out_hdr(r->kc, '*', (int64_t)w.matched) || out(r->kc, r->d->big, r->d->big_len)
	           ? -ENOMEM
	           : 0;
}

/*
 * SCAN: the cursor is a position in the index's iteration order (low KV_SCAN_POS bits) and the
 * count of deletions when it was issued (the rest). Entries never move in that order except in an
 * index compaction; a deletion moves later entries one place up, so the next call starts earlier
 * by the number of deletions since: a key present for the whole scan is never missed (it may be
 * returned twice, as Redis allows). Each call walks the index from its start (no resume point in
 * paste_kv__iterate), so each call visits at least keys / 2^KV_SCAN_CALLS entries (COUNT is a
 * hint): a full scan costs at most ~2^KV_SCAN_CALLS walks of the index.
 */
int cmd_scan(struct req *r)
{
	struct walk w = {.d = r->d, .visit = 10, .tag = db_tag(r->kc->db), .type = -1};
	uint64_t cur, pos, dels, next;
	struct paste_kv_info info;
	const uint8_t *c = arg(r, 1);
	char h[RESP_HDR_MAX + 24];
	int64_t v;

	if (!c || !resp_parse_ll(c, arg_len(r, 1), &v) || v < 0)
		return out_err(r->kc, "ERR invalid cursor");
	for (unsigned i = 2; i < r->cmd->argc; i++) {
		int64_t n;

		if (i + 1 >= r->cmd->argc)
			return out_err(r->kc, "ERR syntax error");
		if (arg_is(r, i, "COUNT")) {
			if (!arg_ll(r, ++i, &n))
				return out_err(r->kc,
				               "ERR value is not an integer or out of range");
			if (n < 1)
				return out_err(r->kc, "ERR syntax error");
			w.visit = (uint64_t)n;
		} else if (arg_is(r, i, "MATCH")) {
			w.pat = arg(r, ++i);
			w.plen = arg_len(r, i);
		} else if (arg_is(r, i, "TYPE")) {
			if (arg_is(r, ++i, "string"))
				w.type = T_STR;
			else if (arg_is(r, i, "hash"))
				w.type = T_HASH;
			else if (arg_is(r, i, "set"))
				w.type = T_SET;
			else if (arg_is(r, i, "list"))
				w.type = T_LIST;
			else if (arg_is(r, i, "zset"))
				w.type = T_ZSET;
			else
				w.visit = 0; /* no other types here: nothing matches */
		} else {
			return out_err(r->kc, "ERR syntax error");
		}
	}
	if (w.pat && is_all(w.pat, w.plen))
		w.pat = NULL;
	paste_kv__info(r->d->kv, &info, sizeof(info));
	if (w.visit && w.visit < info.keys >> KV_SCAN_CALLS)
		w.visit =
		    info.keys >> KV_SCAN_CALLS; /* COUNT is a hint: bound a full scan's cost */
	cur = (uint64_t)v;
	pos = cur & ((1ull << KV_SCAN_POS) - 1);
	dels = (r->d->del_epoch - (cur >> KV_SCAN_POS)) & ((1ull << KV_SCAN_EPOCH) - 1);
	w.skip = pos > dels ? pos - dels : 0;
	r->d->big_len = 0;
	if (w.visit == 0) { /* a TYPE that does not exist here */
		w.stopped = false;
	} else if (paste_kv__iterate(r->d->kv, scan_fn, &w) < 0) {
		return out_err(r->kc, "ERR out of memory");
	}
	next = w.stopped
	           ? (w.seen - 1) | (r->d->del_epoch & ((1ull << KV_SCAN_EPOCH) - 1)) << KV_SCAN_POS
	           : 0;
	if (w.stopped && (w.seen - 1) >> KV_SCAN_POS)
		next = 0; /* beyond what a cursor holds: end the scan */
	snprintf(h, sizeof(h), "%" PRIu64, next);
	if (out_str(r->kc, "*2\r\n") || out_hdr(r->kc, '$', (int64_t)strlen(h)) ||
	    out_str(r->kc, h) || out_str(r->kc, "\r\n") || out_hdr(r->kc, '*', (int64_t)w.matched))
		return -ENOMEM;
	return out(r->kc, r->d->big, r->d->big_len);
}

static int count_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct walk *w = arg;
	const uint8_t *p = paste_pool__ref_ptr(w->d->pool, key);

	(void)val;
	w->matched += p && key_in(p, key->len, w->tag);
	return 0;
}

int cmd_dbsize(struct req *r)
{
	struct walk w = {.d = r->d, .tag = db_tag(r->kc->db)};
	struct paste_kv_info i;

	paste_kv__info(r->d->kv, &i, sizeof(i));
	if (!r->d->multi_db) /* every key is database 0's */
		return out_hdr(r->kc, ':', r->kc->db ? 0 : (int64_t)i.keys);
	paste_kv__iterate(r->d->kv, count_fn, &w);
	return out_hdr(r->kc, ':', (int64_t)w.matched);
}
