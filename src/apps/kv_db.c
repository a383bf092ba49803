/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_db.c - paste-kv's store: keys and values as persistent references, expiry deadlines, lookups
 * with lazy expiry, opening and sweeping the indexes at startup.
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
#include "kv_primary.h"

uint64_t ttl_count(const struct kvd *d)
{
	struct paste_kv_info i;

	paste_kv__info(d->ttl, &i, sizeof(i));
	return i.keys;
}

/* The deadline of @k (ms), or 0 when it has none. */
uint64_t ttl_get(struct kvd *d, const struct str *k)
{
	struct paste_ref ref;
	uint64_t ms = 0;
	const void *p;

	if (!ttl_count(d) || paste_kv__get(d->ttl, k->p, k->n, &ref) || ref.len != 8)
		return 0;
	p = paste_pool__ref_ptr(d->pool, &ref);
	if (p)
		memcpy(&ms, p, 8);
	return ms;
}

/* The object @k names now, if it is one (to retire it once replaced or deleted). */
static bool old_obj(struct kvd *d, const uint8_t *k, size_t n, struct obj *o)
{
	struct paste_ref ref;

	if (!d->have_objs || paste_kv__get(d->kv, k, n, &ref))
		return false;
	obj_decode(d, &ref, o);
	return o->type != T_STR;
}

/* Delete @k (and its expiry); @retire: its object's pieces go too (not when renamed). */
bool del_key_ex(struct kvd *d, const uint8_t *k, size_t n, bool retire)
{
	struct obj o;
	bool obj = retire && old_obj(d, k, n, &o);
	bool gone = ix_del(d, d->kv, k, n) == 0;

	if (gone && obj)
		obj_retire(d, &o);
	if (gone)
		lkey_retire(d, k, n); /* a large key's chunks (also when renamed) */
	touch_key(d, k, n);

	if (gone)
		d->del_epoch++;
	if (ttl_count(d))
		ix_del(d, d->ttl, k, n);
	return gone;
}

bool del_key(struct kvd *d, const uint8_t *k, size_t n)
{
	return del_key_ex(d, k, n, true);
}

/* Look @k up; an expired key is deleted and reported absent. @return 0 or -ENOENT. */
int lookup(struct kvd *d, const struct str *k, struct paste_ref *val)
{
	uint64_t dl;

	if (paste_kv__get(d->kv, k->p, k->n, val))
		return -ENOENT;
	dl = ttl_get(d, k);
	if (dl && dl <= d->now_ms) {
		kv_primary_expired(d, k->p, k->n); /* DEL to the replicas */
		del_key(d, k->p, k->n);
		d->st.expired++;
		return -ENOENT;
	}
	return 0;
}

/* Pointer to a stored string and its length (without the trailing byte). */
const uint8_t *val_bytes(struct kvd *d, const struct paste_ref *ref, size_t *n)
{
	const uint8_t *p = paste_pool__ref_ptr(d->pool, ref);

	*n = p && ref->len ? ref->len - 1 : 0;
	return p;
}

/*
 * Make a reference of @s: in place when it lies in a received slot (unless the copy policy packs
 * it: --copy-threshold, or the pool under pressure), else one copy.
 */
int keep_str(struct kvd *d, const struct str *s, struct paste_ref *ref, enum str_kind kind)
{
	bool packed = false;
	int err;

	if (s->pool) {
		err = paste_keep(d->ctx, s->p, s->n, ref);
		packed = !err && paste_pool__ref_ptr(d->pool, ref) != s->p;
		if (!err && !packed) /* a packed copy was flushed where it went */
			err = paste_persist(d->ctx, s->p, s->n);
	} else {
		err = paste_keep_copy(d->ctx, s->p, s->n, ref);
	}
	if (err)
		return err;
	if (kind == S_NEW) {
		d->st.val_computed++;
	} else if (kind == S_VAL && packed) {
		d->st.val_packed++;
		d->st.val_packed_bytes += s->n - 1;
	} else if (kind == S_KEY && packed) {
		d->st.key_packed++;
	} else if (kind == S_VAL && s->pool) {
		d->st.val_inplace++;
		d->st.val_inplace_bytes += s->n - 1;
	} else if (kind == S_VAL) {
		d->st.val_copied++;
		d->st.val_copied_bytes += s->n - 1;
	} else if (s->pool) {
		d->st.key_inplace++;
	} else {
		d->st.key_copied++;
	}
	return 0;
}

void release(struct kvd *d, struct paste_ref *ref)
{
	if (ref->len)
		paste_release(d->ctx, ref);
	ref->len = 0;
}

/* Set the expiry of @k to @ms (absolute). @return 0 or a negative errno. */
int ttl_set(struct kvd *d, const struct str *k, uint64_t ms)
{
	struct paste_ref kr = {0}, vr = {0};
	int err = keep_str(d, k, &kr, S_KEY);

	if (!err)
		err = paste_keep_copy(d->ctx, &ms, 8, &vr);
	if (!err)
		err = ix_put(d, d->ttl, &kr, &vr);
	if (err) {
		release(d, &kr);
		release(d, &vr);
	}
	return err;
}

/*
 * Store @k -> @v (both in stored form); @ttl: 0 drop any expiry, UINT64_MAX keep it, else the new
 * deadline. @vkind: S_VAL (from the request) or S_NEW (computed).
 * @return 0, -ENOSPC (pool or index full: nothing changed for this key) or another errno.
 */
int store(struct kvd *d, const struct str *k, const struct str *v, uint64_t ttl,
          enum str_kind vkind)
{
	struct paste_ref kr = {0}, vr = {0};
	struct obj o;
	bool obj = old_obj(d, k->p, k->n, &o);
	int err = lkey_make(d, k); /* a new large key's chunks, before its surrogate */
	/* the index reads the key and the data CRC from the bytes as they are here (a forwarded
	 * request's, in its slot: in the cache), not from their copies in the pool, whose lines
	 * keep_str has just flushed (a read then waits for their write-back) */
	uint32_t crc = paste_kv__data_crc(k->p, k->n, v->p, v->n);

	if (!err)
		err = keep_str(d, v, &vr, vkind);
	if (!err)
		err = keep_str(d, k, &kr, S_KEY);
	if (!err)
		err = ix_put_src(d, d->kv, &kr, &vr, k->p, crc);
	if (err) {
		release(d, &kr);
		release(d, &vr);
		lkey_retire(d, k->p, k->n); /* chunks just put go, unless the key is stored */
		return err;
	}
	if (obj)
		obj_retire(d, &o);
	touch_key(d, k->p, k->n);
	if (ttl == 0 && ttl_count(d))
		ix_del(d, d->ttl, k->p, k->n);
	else if (ttl && ttl != UINT64_MAX && ttl_set(d, k, ttl))
		return -ENOSPC; /* stored, but without its expiry: report it */
	return 0;
}

int reply_store_err(struct req *r, int err)
{
	if (err == -ENOSPC || err == -ENOMEM) {
		r->d->st.oom++;
		return out_str(r->kc,
		               "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
	}
	return out_err(r->kc, "ERR store failed: %s", strerror(-err));
}

bool refuse_write(struct req *r)
{
	if (!r->d->low)
		return false;
	reply_store_err(r, -ENOSPC);
	return true;
}

/* ---- string commands ------------------------------------------------------------------------ */

int check_key(struct req *r, unsigned i)
{
	if (arg_len(r, i) <= r->d->max_key)
		return 0;
	out_err(r->kc, "ERR key exceeds maximum allowed size (max-key %u)", r->d->max_key);
	return -1;
}

int check_value(struct req *r, size_t n)
{
	if (n <= r->d->max_value)
		return 0;
	out_err(r->kc, "ERR string exceeds maximum allowed size (max-value %u)", r->d->max_value);
	return -1;
}

int collect_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct batch *bt = arg;
	const uint8_t *p = paste_pool__ref_ptr(bt->d->pool, key);

	if (bt->len + 4 + key->len > bt->cap)
		return 1;
	memcpy(bt->buf + bt->len, &key->len, 4);
	memcpy(bt->buf + bt->len + 4, p, key->len);
	bt->len += 4 + key->len;
	return ++bt->n == KV_FLUSH_BATCH;
}

/* Delete every key of @kv, KV_FLUSH_BATCH at a time. @return keys deleted. */
uint64_t flush_index(struct kvd *d, struct paste_kv *kv)
{
	struct batch bt = {.d = d, .cap = (size_t)KV_FLUSH_BATCH * (4 + d->frame_size)};
	uint64_t total = 0, pass;

	bt.buf = malloc(bt.cap);
	if (!bt.buf)
		return 0;
	do {
		bt.len = 0;
		bt.n = 0;
		pass = 0;
		paste_kv__iterate(kv, collect_fn, &bt);
		for (size_t o = 0; o < bt.len;) {
			uint32_t n;

			memcpy(&n, bt.buf + o, 4);
			pass += ix_del(d, kv, bt.buf + o + 4, n) == 0;
			o += 4 + n;
		}
		total += pass;
	} while (bt.n && pass);
	free(bt.buf);
	return total;
}

/* Every key of every database, their expiries and their objects' pieces. */
static void flush_all(struct kvd *d)
{
	d->del_epoch += flush_index(d, d->kv);
	flush_index(d, d->ttl);
	flush_index(d, d->sub);
	free(d->hc);
	d->hc = NULL;
	d->hc_cap = d->hc_used = 0;
	d->dead_n = 0;
	d->have_objs = false;
}

static int flush_args(struct req *r)
{
	if (r->cmd->argc > 2 ||
	    (r->cmd->argc == 2 && !arg_is(r, 1, "ASYNC") && !arg_is(r, 1, "SYNC")))
		return out_err(r->kc, "ERR syntax error"), -1;
	return 0;
}

int cmd_flushall(struct req *r)
{
	if (flush_args(r))
		return 0;
	touch_all(r->d);
	flush_all(r->d);
	return out_str(r->kc, "+OK\r\n");
}

struct tagged {
	struct batch bt;
	uint8_t tag;
};

static int tagged_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct tagged *t = arg;
	const uint8_t *p = paste_pool__ref_ptr(t->bt.d->pool, key);

	if (!p || !key_in(p, key->len, t->tag))
		return 0;
	return collect_fn(key, val, &t->bt);
}

int cmd_flushdb(struct req *r)
{
	struct kvd *d = r->d;
	struct tagged t = {.bt = {.d = d, .cap = (size_t)KV_FLUSH_BATCH * (4 + d->frame_size)},
	                   .tag = db_tag(r->kc->db)};
	uint64_t pass;

	if (flush_args(r))
		return 0;
	touch_all(d);
	if (!d->multi_db) {
		if (!r->kc->db)
			flush_all(d);
		return out_str(r->kc, "+OK\r\n");
	}
	t.bt.buf = malloc(t.bt.cap);
	if (!t.bt.buf)
		return out_err(r->kc, "ERR out of memory");
	do {
		t.bt.len = 0;
		t.bt.n = 0;
		pass = 0;
		paste_kv__iterate(d->kv, tagged_fn, &t);
		for (size_t o = 0; o < t.bt.len;) {
			uint32_t n;

			memcpy(&n, t.bt.buf + o, 4);
			pass += del_key(d, t.bt.buf + o + 4, n);
			o += 4 + n;
		}
	} while (t.bt.n && pass);
	free(t.bt.buf);
	return out_str(r->kc, "+OK\r\n");
}

/* ---- connection and server commands --------------------------------------------------------- */

/* ---- startup --------------------------------------------------------------------------------- */

void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

/* Open index @name; create it for @cap keys if it does not exist. */
int open_index(struct kvd *d, const char *name, uint64_t cap, struct paste_kv **kv)
{
	int err;

	paste_set_print(quiet, NULL, PASTE_LOG_ERROR); /* absent is not an error here */
	err = paste_kv__open(kv, d->pool, name, NULL);
	paste_set_print(NULL, NULL, d->d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	if (err == -ENOENT && !cap)
		return err; /* open only */
	if (err == -ENOENT)
		err = paste_kv__open(kv, d->pool, name,
		                     &PASTE_OPTS_LIT(paste_kv_opts, .capacity = cap));
	if (err)
		fprintf(stderr, "paste-kv: cannot open index '%s': %s\n", name, paste_last_error());
	return err;
}

struct sweep {
	struct kvd *d;
	struct batch bt;
	uint64_t expired, orphans;
};

/* Collect TTL entries whose key is gone or whose deadline passed. */
int sweep_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct sweep *s = arg;
	const uint8_t *k = paste_pool__ref_ptr(s->d->pool, key);
	const void *v = paste_pool__ref_ptr(s->d->pool, val);
	struct paste_ref cur;
	uint64_t dl = 0;
	bool orphan, exp;

	if (v && val->len == 8)
		memcpy(&dl, v, 8);
	orphan = paste_kv__get(s->d->kv, k, key->len, &cur) != 0;
	exp = dl <= s->d->now_ms;
	if (!orphan && !exp)
		return 0;
	s->orphans += orphan;
	s->expired += !orphan;
	return collect_fn(key, val, &s->bt);
}

/* Startup: drop expired keys and TTL entries left without a key by a crash between two puts. */
void sweep(struct kvd *d)
{
	struct sweep s = {.d = d,
	                  .bt = {.d = d, .cap = (size_t)KV_FLUSH_BATCH * (4 + d->frame_size)}};
	uint64_t pass;

	s.bt.buf = malloc(s.bt.cap);
	if (!s.bt.buf)
		return;
	d->now_ms = wall_ms();
	do {
		s.bt.len = 0;
		s.bt.n = 0;
		pass = 0;
		paste_kv__iterate(d->ttl, sweep_fn, &s);
		for (size_t o = 0; o < s.bt.len;) {
			uint32_t n;

			memcpy(&n, s.bt.buf + o, 4);
			paste_kv__del(d->kv, s.bt.buf + o + 4, n);
			pass += paste_kv__del(d->ttl, s.bt.buf + o + 4, n) == 0;
			o += 4 + n;
		}
	} while (s.bt.n && pass);
	free(s.bt.buf);
	paste_pool__drain(d->pool);
	d->start_expired = s.expired;
	d->start_orphans = s.orphans;
}

int open_store(struct kvd *d)
{
	struct paste_pool_info pi;
	uint64_t room;

	d->pool = paste_pool(d->ctx);
	paste_pool__info(d->pool, &pi, sizeof(pi));
	d->frame_size = pi.frame_size;
	d->pool_size = pi.size;
	if (!d->max_value)
		d->max_value = 512u << 20;
	room = pi.region_area_size - pi.region_area_used;
	room = room > (64u << 10) ? room - (64u << 10) : 0;
	if (!d->keys)
		d->keys = room * 2 / 5 / KV_BYTES_KEY;
	if (!d->ttl_keys)
		d->ttl_keys = d->keys / 4 ? d->keys / 4 : 1;
	if (!d->sub_keys)
		d->sub_keys = d->keys;
	if (!d->keys || open_index(d, KV_INDEX, d->keys, &d->kv) ||
	    open_index(d, KV_TTL_INDEX, d->ttl_keys, &d->ttl) ||
	    open_index(d, KV_SUB_INDEX, d->sub_keys, &d->sub)) {
		if (!d->keys)
			fprintf(stderr,
			        "paste-kv: no room for an index in the pool's region area\n");
		return -ENOSPC;
	}
	paste_kv__info(d->kv, &d->rec_kv, sizeof(d->rec_kv));
	paste_kv__info(d->ttl, &d->rec_ttl, sizeof(d->rec_ttl));
	d->keys = d->rec_kv.capacity;
	d->ttl_keys = d->rec_ttl.capacity;
	if (!d->undo_keys) /* what the room left by the defaults above holds, at most 64 Ki */
		d->undo_keys = d->keys / 8 < 256 ? 256 : d->keys / 8 > 65536 ? 65536 : d->keys / 8;
	if (tx_recover(d)) /* before the sweeps: it may put back keys and pieces */
		return -EIO;
	if (replica_recover(d, pi.was_clean))
		return -EIO;
	sweep(d);
	if (obj_sweep(d)) {
		fprintf(stderr, "paste-kv: out of memory while checking the stored objects\n");
		return -ENOMEM;
	}
	printf("paste-kv: recovered keys=%" PRIu64 " expires=%" PRIu64 " dropped=%" PRIu64
	       " pieces=%" PRIu64 " orphan_pieces=%" PRIu64 " expired_at_start=%" PRIu64
	       " orphan_expires=%" PRIu64 " tx_undone=%" PRIu64
	       " pool_was_clean=%d pool_created=%d capacity=%" PRIu64 " ttl_capacity=%" PRIu64 "\n",
	       d->rec_kv.keys, d->rec_ttl.keys, d->rec_kv.dropped + d->rec_ttl.dropped,
	       sub_count(d), d->start_orphan_pieces, d->start_expired, d->start_orphans,
	       d->tx.undone, pi.was_clean, pi.created, d->keys, d->ttl_keys);
	return 0;
}

/* ---- options, signals, main ------------------------------------------------------------------ */
