/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_kv.c - the key-value component: puts of new keys, overwrites and deletes over a small key
 * space, keys and values received into frames (as sim_log.c's payload), reads checked live.
 *
 * Model at a crash (acked A, issued I): for each key, the acknowledged state is the result of its
 * last operation < A (absent if none); each of its operations in [A, I) is an in-flight state. The
 * recovered index must map every key to its acknowledged state or to one of its in-flight states,
 * with the exact value bytes; keys never put do not appear; no key appears twice; get() agrees
 * with iterate(). The keys' first byte is their number, so a recovered key is identified at once.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_KV_NAME   "sim.kv"
#define SIM_KV_KEYS   64 /* most keys a run uses */
#define SIM_KV_KEYMAX 40
#define SIM_KV_VALMAX 1800
#define SIM_KV_LIVE   0xff /* first byte of the key the liveness check adds */

struct sim_kvop {
	uint64_t op;
	uint16_t key;
	bool del;
	uint32_t len;
	uint8_t *val;
};

/* A key's value as seen by a check: the op index of the put, or NONE (absent). */
#define NONE ((size_t)-1)

struct sim_kv {
	struct paste_kv *kv;
	uint64_t capacity; /* small ones make dense tables: long probes, tombstones, compactions */
	unsigned
	    nkeys; /* key space of this run: up to capacity + 16 (then puts meet a full index) */
	unsigned del_pct; /* share of deletes */
	uint8_t key[SIM_KV_KEYS][SIM_KV_KEYMAX];
	uint8_t klen[SIM_KV_KEYS];
	struct sim_kvop *ops;
	size_t nops, cap;
	size_t cur[SIM_KV_KEYS]; /* working state */
	/* the last check: what each key held, and the liveness changes made after it */
	size_t obs[SIM_KV_KEYS];
	bool seen[SIM_KV_KEYS];
	size_t last_acked[SIM_KV_KEYS]; /* per key: its last operation < acked, or NONE */
	struct paste_ref seen_val[SIM_KV_KEYS];
	int over_key, del_key; /* liveness: overwritten / deleted key, or -1 */
	uint32_t over_len, live_klen, live_vlen;
	uint8_t over_val[256], live_key[SIM_KV_KEYMAX], live_val[256];
	bool live;
	uint8_t buf[SIM_KV_VALMAX];
};

static int kv_setup(struct sim_run *r)
{
	struct sim_kv *k = calloc(1, sizeof(*k));
	int err;

	if (!k)
		return -1;
	static const uint64_t caps[] = {16, 40, 64, 128};

	r->kv = k;
	k->capacity = caps[sim_below(&r->rng, 4)];
	k->nkeys = (unsigned)(k->capacity / 2) + sim_below(&r->rng, (uint32_t)k->capacity / 2 + 17);
	if (k->nkeys > SIM_KV_KEYS)
		k->nkeys = SIM_KV_KEYS;
	k->del_pct = 15 + sim_below(&r->rng, 31);
	if (sim_chance(&r->rng, 30)) { /* key turnover in a full, small table: tombstones pile up */
		k->capacity = 16;
		k->nkeys = SIM_KV_KEYS;
		k->del_pct = 45;
	}
	for (unsigned i = 0; i < SIM_KV_KEYS; i++) {
		k->klen[i] = (uint8_t)(1 + sim_below(&r->rng, SIM_KV_KEYMAX));
		sim_fill(&r->rng, k->key[i], k->klen[i]);
		k->key[i][0] = (uint8_t)i;
		k->cur[i] = NONE;
	}
	sim_region_name(r, SIM_KV_NAME);
	sim_issue(r);
	err = paste_kv__open(&k->kv, r->pool, SIM_KV_NAME,
	                     &PASTE_OPTS_LIT(paste_kv_opts, .capacity = k->capacity));
	if (err)
		sim_violation(r, "paste_kv__open (create) fails: %d", err);
	return err;
}

static void kv_fini(struct sim_run *r)
{
	struct sim_kv *k = r->kv;

	for (size_t i = 0; k && i < k->nops; i++)
		free(k->ops[i].val);
	if (k)
		free(k->ops);
	free(k);
	r->kv = NULL;
}

static struct sim_kvop *new_op(struct sim_kv *k)
{
	if (k->nops == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 256;
		struct sim_kvop *p = realloc(k->ops, cap * sizeof(*p));

		if (!p)
			return NULL;
		k->ops = p;
		k->cap = cap;
	}
	memset(&k->ops[k->nops], 0, sizeof(k->ops[0]));
	return &k->ops[k->nops];
}

static int kv_put(struct sim_run *r, unsigned key)
{
	struct sim_kv *k = r->kv;
	struct sim_kvop *o = new_op(k);
	struct paste_ref kref, vref;
	uint32_t vlen = 1 + sim_below(&r->rng, sim_chance(&r->rng, 10) ? SIM_KV_VALMAX : 400);
	int err;

	if (!o)
		return -1;
	sim_fill(&r->rng, k->buf, vlen);
	err = sim_payload(r, k->key[key], k->klen[key], &kref);
	if (!err) {
		err = sim_payload(r, k->buf, vlen, &vref);
		if (err)
			paste_pool__ref_put(r->pool, &kref);
	}
	if (err) {
		sim_op_failed(r, err);
		return err == -ENOSPC ? 0 : err;
	}
	o->op = sim_issue(r);
	err = paste_kv__put(k->kv, &kref, &vref);
	if (err) {
		paste_pool__ref_put(r->pool, &kref);
		paste_pool__ref_put(r->pool, &vref);
		sim_op_failed(r, err);
		if (err == -ENOSPC)
			return 0;
		sim_violation(r, "paste_kv__put fails: %d", err);
		return err;
	}
	o->key = (uint16_t)key;
	o->len = vlen;
	o->val = malloc(vlen);
	if (!o->val)
		return -1;
	memcpy(o->val, k->buf, vlen);
	k->cur[key] = k->nops++;
	return 0;
}

static int kv_del(struct sim_run *r, unsigned key)
{
	struct sim_kv *k = r->kv;
	struct sim_kvop *o = new_op(k);
	int err;

	if (!o)
		return -1;
	o->op = sim_issue(r);
	err = paste_kv__del(k->kv, k->key[key], k->klen[key]);
	if (err == -ENOENT && k->cur[key] == NONE)
		return 0; /* nothing to delete: no state change */
	if (err || k->cur[key] == NONE) {
		sim_violation(r, "working kv: del of key %u returns %d, the key is %s", key, err,
		              k->cur[key] == NONE ? "absent" : "present");
		return err ? err : -1;
	}
	o->key = (uint16_t)key;
	o->del = true;
	k->nops++;
	k->cur[key] = NONE;
	return 0;
}

/* Working pool: get() agrees with the model (a functional check, no crash involved). */
static void kv_get(struct sim_run *r, unsigned key)
{
	struct sim_kv *k = r->kv;
	struct paste_ref v;
	int err = paste_kv__get(k->kv, k->key[key], k->klen[key], &v);
	const struct sim_kvop *o = k->cur[key] == NONE ? NULL : &k->ops[k->cur[key]];
	const uint8_t *p;

	if (!o && err == -ENOENT)
		return;
	p = err ? NULL : paste_pool__ref_ptr(r->pool, &v);
	if (!o || !p || v.len != o->len || memcmp(p, o->val, o->len))
		sim_violation(r, "working kv: get of key %u returns %d%s", key, err,
		              o ? ", not the value last put" : ", the key was deleted");
}

static int kv_step(struct sim_run *r)
{
	struct sim_kv *k = r->kv;
	unsigned key = sim_below(&r->rng, k->nkeys), x = sim_below(&r->rng, 100);

	if (x < 12) {
		kv_get(r, key);
		return 0;
	}
	return x < 12 + k->del_pct ? kv_del(r, key) : kv_put(r, key);
}

/* ---- checks --------------------------------------------------------------------------------- */

struct kv_walk {
	struct sim_run *r;
	struct paste_pool *pool;
	uint64_t n;
	bool exact;
	bool live_seen;
};

/* The key number of @kb, or -1 (or SIM_KV_LIVE for the liveness key). */
static int key_id(const struct sim_kv *k, const uint8_t *kb, uint32_t klen)
{
	if (!klen)
		return -1;
	if (kb[0] == SIM_KV_LIVE && k->live && klen == k->live_klen &&
	    !memcmp(kb, k->live_key, klen))
		return SIM_KV_LIVE;
	if (kb[0] >= SIM_KV_KEYS || klen != k->klen[kb[0]] || memcmp(kb, k->key[kb[0]], klen))
		return -1;
	return kb[0];
}

/* May @key hold the value of put @i at this crash? Its acknowledged state or an in-flight one. */
static bool allowed(const struct sim_run *r, unsigned key, size_t i)
{
	const struct sim_kv *k = r->kv;

	if (k->ops[i].op >= r->crash.issued || k->ops[i].key != key || k->ops[i].del)
		return false;
	return k->ops[i].op >= r->crash.acked || k->last_acked[key] == i;
}

static bool match_val(const struct sim_kvop *o, const uint8_t *vb, const struct paste_ref *v)
{
	return vb && v->len == o->len && !memcmp(vb, o->val, o->len);
}

/* Expected value of @key after the liveness changes (exact recheck): data and length. */
static bool exact_val(const struct sim_kv *k, int key, const uint8_t **p, uint32_t *len)
{
	if (key == SIM_KV_LIVE) {
		*p = k->live_val;
		*len = k->live_vlen;
		return k->live;
	}
	if (key == k->del_key)
		return false;
	if (key == k->over_key) {
		*p = k->over_val;
		*len = k->over_len;
		return true;
	}
	if (!k->seen[key])
		return false;
	*p = k->ops[k->obs[key]].val;
	*len = k->ops[k->obs[key]].len;
	return true;
}

static void walk_exact(struct kv_walk *w, int id, const uint8_t *vb, const struct paste_ref *v)
{
	const struct sim_kv *k = w->r->kv;
	const uint8_t *p;
	uint32_t len;

	if (id < 0 || !exact_val(k, id, &p, &len) || !vb || v->len != len || memcmp(vb, p, len))
		sim_violation(w->r,
		              "after reopen, key %d holds other than what was seen or put "
		              "after recovery",
		              id);
	if (id == SIM_KV_LIVE)
		w->live_seen = true;
}

static int walk_cb(const struct paste_ref *kref, const struct paste_ref *vref, void *arg)
{
	struct kv_walk *w = arg;
	struct sim_run *r = w->r;
	struct sim_kv *k = r->kv;
	const uint8_t *kb = sim_ref_bytes(r, w->pool, kref, "a kv key");
	const uint8_t *vb = sim_ref_bytes(r, w->pool, vref, "a kv value");
	int id = kb ? key_id(k, kb, kref->len) : -1;
	size_t i;

	w->n++;
	sim_count_ref(r, w->pool, kref, "a kv key");
	sim_count_ref(r, w->pool, vref, "a kv value");
	if (w->exact) {
		walk_exact(w, id, vb, vref);
		return 0;
	}
	if (id < 0 || id == SIM_KV_LIVE) {
		sim_violation(r, "recovered key (%u bytes) was never put", kref->len);
		return 0;
	}
	if (k->seen[id]) {
		sim_violation(r, "key %d appears twice", id);
		return 0;
	}
	for (i = 0; i < k->nops; i++)
		if (allowed(r, (unsigned)id, i) && match_val(&k->ops[i], vb, vref))
			break;
	if (i == k->nops) {
		sim_violation(r,
		              "key %d holds a value (%u bytes) that is neither its acknowledged "
		              "nor an in-flight one",
		              id, vref->len);
		return 0;
	}
	k->seen[id] = true;
	k->obs[id] = i;
	k->seen_val[id] = *vref;
	return 0;
}

/* A key not recovered must be allowed to be absent: never put, deleted, or deleted in flight. */
static void check_absent(struct sim_run *r, unsigned key)
{
	const struct sim_kv *k = r->kv;
	bool absent_ok = true;

	for (size_t j = 0; j < k->nops && k->ops[j].op < r->crash.issued; j++) {
		if (k->ops[j].key != key)
			continue;
		if (k->ops[j].op < r->crash.acked)
			absent_ok = k->ops[j].del;
		else if (k->ops[j].del)
			return;
	}
	if (!absent_ok)
		sim_violation(r, "acknowledged key %u is missing", key);
}

static struct paste_kv *open_kv(struct sim_run *r, struct paste_pool *pool)
{
	struct paste_kv *kv;
	int err = paste_kv__open(&kv, pool, SIM_KV_NAME,
	                         &PASTE_OPTS_LIT(paste_kv_opts, .capacity = r->kv->capacity));

	if (err) {
		sim_violation(r, "paste_kv__open fails after recovery: %d: %s", err,
		              paste_last_error());
		return NULL;
	}
	return kv;
}

/* get() agrees with iterate() for every key. */
static void check_get(struct sim_run *r, struct paste_kv *kv)
{
	struct sim_kv *k = r->kv;

	for (unsigned i = 0; i < SIM_KV_KEYS; i++) {
		struct paste_ref v;
		int err = paste_kv__get(kv, k->key[i], k->klen[i], &v);

		if (k->seen[i] ? err || v.off != k->seen_val[i].off || v.len != k->seen_val[i].len
		               : err != -ENOENT)
			sim_violation(r, "get(key %u) returns %d, iterate %s it", i, err,
			              k->seen[i] ? "found" : "did not find");
	}
}

static void kv_check(struct sim_run *r, struct paste_pool *rec)
{
	struct sim_kv *k = r->kv;
	struct paste_kv *kv = open_kv(r, rec);
	struct kv_walk w = {.r = r, .pool = rec};
	struct paste_kv_info in;
	uint64_t nseen = 0;

	memset(k->seen, 0, sizeof(k->seen));
	for (unsigned i = 0; i < SIM_KV_KEYS; i++)
		k->last_acked[i] = NONE;
	for (size_t j = 0; j < k->nops && k->ops[j].op < r->crash.acked; j++)
		k->last_acked[k->ops[j].key] = j;
	k->live = false;
	k->over_key = k->del_key = -1;
	if (!kv)
		return;
	paste_kv__iterate(kv, walk_cb, &w);
	for (unsigned i = 0; i < SIM_KV_KEYS; i++) {
		if (!k->seen[i])
			check_absent(r, i);
		nseen += k->seen[i];
	}
	check_get(r, kv);
	paste_kv__info(kv, &in, sizeof(in));
	if (in.keys != w.n)
		sim_violation(r, "kv info says %llu keys, iterate found %llu",
		              (unsigned long long)in.keys, (unsigned long long)w.n);
	if (in.keys > in.capacity) { /* per-key atomicity allows it: a note, not a violation */
		r->st[r->crash.img.model].kv_over++;
		sim_debug(r, "  note: the recovered kv holds %llu keys, capacity %llu",
		          (unsigned long long)in.keys, (unsigned long long)in.capacity);
	}
	r->st[r->crash.img.model].keys += nseen;
}

/* Liveness: a new key, an overwrite and a delete on the recovered index. */
static void kv_extend(struct sim_run *r, struct paste_pool *rec)
{
	struct sim_kv *k = r->kv;
	struct paste_kv *kv = open_kv(r, rec);
	struct paste_ref kref, vref;
	struct paste_kv_info in;
	int err;

	if (!kv)
		return;
	for (unsigned i = 0; i < SIM_KV_KEYS; i++) {
		if (!k->seen[i])
			continue;
		if (k->over_key < 0) {
			k->over_key = (int)i;
			k->over_len = 1 + sim_below(&r->crash_rng, sizeof(k->over_val));
			sim_fill(&r->crash_rng, k->over_val, k->over_len);
			if (sim_payload_on(rec, k->key[i], k->klen[i], &kref) ||
			    sim_payload_on(rec, k->over_val, k->over_len, &vref) ||
			    paste_kv__put(kv, &kref, &vref))
				sim_violation(r, "overwrite of key %u after recovery fails", i);
		} else if (k->del_key < 0) {
			k->del_key = (int)i;
			err = paste_kv__del(kv, k->key[i], k->klen[i]);
			if (err)
				sim_violation(r, "del of key %u after recovery fails: %d", i, err);
		}
	}
	k->live_klen = 1 + sim_below(&r->crash_rng, SIM_KV_KEYMAX);
	sim_fill(&r->crash_rng, k->live_key, k->live_klen);
	k->live_key[0] = SIM_KV_LIVE;
	k->live_vlen = 1 + sim_below(&r->crash_rng, sizeof(k->live_val));
	sim_fill(&r->crash_rng, k->live_val, k->live_vlen);
	if (sim_payload_on(rec, k->live_key, k->live_klen, &kref) ||
	    sim_payload_on(rec, k->live_val, k->live_vlen, &vref))
		return;
	err = paste_kv__put(kv, &kref, &vref);
	paste_kv__info(kv, &in, sizeof(in));
	if (err == -ENOSPC && in.keys >= in.capacity) { /* full: a right answer */
		paste_pool__ref_put(rec, &kref);
		paste_pool__ref_put(rec, &vref);
	} else if (err) {
		sim_violation(r, "put of a new key after recovery fails: %d", err);
	}
	k->live = !err;
}

static void kv_recheck(struct sim_run *r, struct paste_pool *rec)
{
	struct sim_kv *k = r->kv;
	struct paste_kv *kv = open_kv(r, rec);
	struct kv_walk w = {.r = r, .pool = rec, .exact = true};
	uint64_t want = k->live;

	if (!kv)
		return;
	paste_kv__iterate(kv, walk_cb, &w);
	for (unsigned i = 0; i < SIM_KV_KEYS; i++)
		want += (int)i == k->over_key || (k->seen[i] && (int)i != k->del_key);
	if (w.n != want || (k->live && !w.live_seen))
		sim_violation(r, "after reopen the kv has %llu keys, expected %llu",
		              (unsigned long long)w.n, (unsigned long long)want);
}

/* The keys the last check saw, with those values, become the history (one put each, as @op). */
static void kv_rebase(struct sim_run *r, struct paste_pool *pool, uint64_t op)
{
	struct sim_kv *k = r->kv;
	struct sim_kvop *ops = calloc(SIM_KV_KEYS, sizeof(*ops));
	size_t n = 0;

	k->kv = open_kv(r, pool);
	if (!k->kv || !ops) {
		free(ops);
		r->fatal = true;
		return;
	}
	for (unsigned i = 0; i < SIM_KV_KEYS; i++) {
		k->cur[i] = NONE;
		if (!k->seen[i])
			continue;
		ops[n] = k->ops[k->obs[i]];
		ops[n].op = op;
		k->ops[k->obs[i]].val = NULL; /* moved */
		k->cur[i] = n++;
	}
	for (size_t i = 0; i < k->nops; i++)
		free(k->ops[i].val);
	free(k->ops);
	k->ops = ops;
	k->nops = n;
	k->cap = SIM_KV_KEYS;
}

const struct sim_component sim_kv_component = {
    .name = "kv",
    .setup = kv_setup,
    .step = kv_step,
    .check = kv_check,
    .extend = kv_extend,
    .recheck = kv_recheck,
    .rebase = kv_rebase,
    .fini = kv_fini,
};
