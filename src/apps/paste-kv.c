/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-kv - a durable key-value server that speaks the Redis protocol (RESP2 and inline), on the
 * public libpaste-xdp API only.
 *
 * Values stay where they arrived: SET keeps the value's bytes in the pool frame the NIC (or
 * recv()) wrote them to (paste_keep + paste_persist), and the persistent key-value index
 * (paste/index.h) names them; a value split over two segments is copied once into a packing frame
 * (paste_keep_copy). INCR/DECR/APPEND results are new bytes, written with paste_keep_copy. Every
 * write of a round is made durable by the round's one fence before any reply of the round leaves
 * (paste_poll), so +OK always means durable. Overwritten and deleted values are released by the
 * index after that fence.
 *
 * Stored form (private to this program): every key and value reference covers the string's bytes
 * plus the one byte after them ('\r' in RESP framing, or one added when the string is copied), so
 * an empty string is still a non-empty reference. Expiry deadlines live in a second index
 * ("paste-kv.ttl": key -> 8-byte absolute Unix time in ms); expired keys are deleted lazily when
 * touched, and at startup. docs/paste-kv.md has the design, the limits and measurements.
 *
 * Output: "paste-kv: recovered ..." and "paste-kv: ready ..." on stdout; SIGUSR1 prints a
 * "stats ..." line; SIGTERM/SIGINT shut down cleanly. Exit: 0 clean, 1 runtime error, 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <paste/paste.h>

#include "daemon_opts.h"
#include "resp.h"

/* ---- tunables -------------------------------------------------------------------------------- */

#ifndef KV_INLINE_REPLY
#define KV_INLINE_REPLY 512u /* values up to this are copied into the reply buffer, not queued */
#endif
#ifndef KV_OUT_HIGH
#define KV_OUT_HIGH (256u << 10) /* queued reply bytes above which a connection stops reading */
#endif
#ifndef KV_REFRESH_NS
#define KV_REFRESH_NS 1000000ull /* how often the free-frame count is refreshed */
#endif
#define KV_INDEX       "paste-kv"
#define KV_TTL_INDEX   "paste-kv.ttl"
#define KV_BYTES_KEY   80u /* index region bytes per key (buckets at 75 % load + 64 B entry) */
#define KV_SCAN_POS    40  /* SCAN cursor: position bits ... */
#define KV_SCAN_EPOCH  23  /* ... and deletion-count bits above them (cursor < 2^63) */
#define KV_SCAN_CALLS  8   /* a full SCAN takes at most about 2^8 calls, whatever COUNT says */
#define KV_FLUSH_BATCH 1024u
#define KV_VERSION     "0.1.0"

enum {
	OPT_KEYS = 512,
	OPT_TTL_KEYS,
	OPT_MAX_KEY,
	OPT_MAX_VALUE,
	OPT_MAX_REQUEST,
	OPT_MAX_BULK,
	OPT_RESERVE,
	OPT_COPY_THRESHOLD,
};

struct kv_stats {
	uint64_t cmds, conns, hits, misses, expired, oom, proto_errors, skipped;
	uint64_t val_inplace, val_inplace_bytes, val_copied, val_copied_bytes, val_computed;
	uint64_t key_inplace, key_copied, pins, pin_copies;
};

struct kvd {
	struct paste_ctx *ctx;
	struct paste_pool *pool;
	struct paste_kv *kv, *ttl;
	struct daemon_opts d;
	/* options */
	uint64_t keys, ttl_keys, reserve, copy_threshold;
	uint32_t max_key, max_value, frame_size;
	struct resp_limits lim;
	/* state */
	bool low;         /* fewer free frames than reserve: writes get -OOM */
	uint64_t now_ms;  /* wall clock for expiry, once per on_data */
	uint64_t refresh; /* monotonic ns of the last free-frame refresh */
	uint64_t del_epoch;
	time_t started;
	struct paste_kv_info rec_kv, rec_ttl; /* what the open recovered */
	uint64_t start_expired, start_orphans;
	uint32_t conns_open;
	struct kv_stats st;
	/* per-request scratch: arguments gathered from several segments, computed values */
	uint8_t *arena;
	size_t arena_cap, arena_used;
	/* growable scratch for KEYS/SCAN/INFO/COMMAND replies */
	char *big;
	size_t big_len, big_cap;
};

/* One queued piece of a connection's output. */
enum { OI_BUF, OI_POOL, OI_PIN };

struct oitem {
	uint8_t kind;     /* OI_BUF: ob[off..]; OI_POOL: p (valid this round); OI_PIN: p, pinned */
	uint32_t len;     /* bytes still to send */
	size_t off;       /* OI_BUF */
	const uint8_t *p; /* OI_POOL, OI_PIN */
	struct paste_ref pin; /* OI_PIN: our reference, released once sent */
};

struct kconn {
	struct resp_parser rp;
	bool quit;    /* close once the output is out */
	bool closing; /* paste_conn__close() called */
	bool waiting; /* the parser needs more bytes */
	uint8_t *ob;
	size_t ob_len, ob_cap;
	struct oitem *oi;
	size_t oi_head, oi_n, oi_cap;
	size_t queued;
	struct resp_seg *segs;
	unsigned segs_cap;
};

/* A request being executed. */
struct req {
	struct kvd *d;
	struct kconn *kc;
	struct resp_buf *b;
	size_t base;
	const struct resp_cmd *cmd;
};

/* A key or value as stored: @n bytes at @p, the string plus its trailing byte. @pool: @p lies in
 * a received slot (can be kept in place); otherwise it must be copied into the pool. */
struct str {
	const uint8_t *p;
	uint32_t n;
	bool pool;
};

/* ---- time, scratch ------------------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

static uint8_t *arena_alloc(struct kvd *d, size_t n)
{
	uint8_t *p;

	if (n > d->arena_cap - d->arena_used)
		return NULL;
	p = d->arena + d->arena_used;
	d->arena_used += n;
	return p;
}

static int big_reserve(struct kvd *d, size_t more)
{
	size_t cap = d->big_cap ? d->big_cap : 4096;
	char *p;

	if (d->big_len + more <= d->big_cap)
		return 0;
	while (cap < d->big_len + more)
		cap *= 2;
	p = realloc(d->big, cap);
	if (!p)
		return -ENOMEM;
	d->big = p;
	d->big_cap = cap;
	return 0;
}

static int big_add(struct kvd *d, const void *p, size_t n)
{
	if (big_reserve(d, n))
		return -ENOMEM;
	memcpy(d->big + d->big_len, p, n);
	d->big_len += n;
	return 0;
}

static int big_printf(struct kvd *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || big_reserve(d, (size_t)n + 1))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(d->big + d->big_len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	d->big_len += (size_t)n;
	return 0;
}

/* A bulk string into the scratch. */
static int big_bulk(struct kvd *d, const void *p, size_t n)
{
	char h[RESP_HDR_MAX];

	if (big_add(d, h, resp_fmt_hdr(h, '$', (int64_t)n)) || big_add(d, p, n))
		return -ENOMEM;
	return big_add(d, "\r\n", 2);
}

/* ---- output ------------------------------------------------------------------------------ */

static int oi_push(struct kconn *kc, const struct oitem *it)
{
	if (kc->oi_head + kc->oi_n == kc->oi_cap) {
		if (kc->oi_head) { /* slide down before growing */
			memmove(kc->oi, kc->oi + kc->oi_head, kc->oi_n * sizeof(*kc->oi));
			kc->oi_head = 0;
		} else {
			size_t cap = kc->oi_cap ? kc->oi_cap * 2 : 16;
			struct oitem *v = realloc(kc->oi, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			kc->oi = v;
			kc->oi_cap = cap;
		}
	}
	kc->oi[kc->oi_head + kc->oi_n++] = *it;
	kc->queued += it->len;
	return 0;
}

static int ob_reserve(struct kconn *kc, size_t more)
{
	size_t cap = kc->ob_cap ? kc->ob_cap : 4096;
	uint8_t *p;

	if (kc->ob_len + more <= kc->ob_cap)
		return 0;
	while (cap < kc->ob_len + more)
		cap *= 2;
	p = realloc(kc->ob, cap);
	if (!p)
		return -ENOMEM;
	kc->ob = p;
	kc->ob_cap = cap;
	return 0;
}

/* Queue @n bytes (copied). */
static int out(struct kconn *kc, const void *p, size_t n)
{
	struct oitem *last = kc->oi_n ? &kc->oi[kc->oi_head + kc->oi_n - 1] : NULL;

	if (!n)
		return 0;
	if (ob_reserve(kc, n))
		return -ENOMEM;
	memcpy(kc->ob + kc->ob_len, p, n);
	if (last && last->kind == OI_BUF && last->off + last->len == kc->ob_len &&
	    (uint64_t)last->len + n <= UINT32_MAX) {
		last->len += (uint32_t)n;
		kc->queued += n;
	} else {
		struct oitem it = {.kind = OI_BUF, .len = (uint32_t)n, .off = kc->ob_len};

		if (oi_push(kc, &it))
			return -ENOMEM;
	}
	kc->ob_len += n;
	return 0;
}

static int out_str(struct kconn *kc, const char *s)
{
	return out(kc, s, strlen(s));
}

static int out_hdr(struct kconn *kc, char type, int64_t n)
{
	char h[RESP_HDR_MAX];

	return out(kc, h, resp_fmt_hdr(h, type, n));
}

/* "-<msg>\r\n" with CR/LF in the message turned into spaces, as Redis does. */
static int out_err(struct kconn *kc, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *q = msg; *q; q++)
		if (*q == '\r' || *q == '\n')
			*q = ' ';
	return out(kc, "-", 1) || out_str(kc, msg) || out(kc, "\r\n", 2) ? -ENOMEM : 0;
}

/* A bulk reply of @n bytes of a stored value at @p (inside a kept frame). */
static int out_value(struct kconn *kc, const uint8_t *p, size_t n)
{
	struct oitem it = {.kind = OI_POOL, .len = (uint32_t)n, .p = p};

	if (out_hdr(kc, '$', (int64_t)n))
		return -ENOMEM;
	if (n <= KV_INLINE_REPLY) {
		if (out(kc, p, n))
			return -ENOMEM;
	} else if (oi_push(kc, &it)) {
		return -ENOMEM;
	}
	return out(kc, "\r\n", 2);
}

static void oi_pop(struct kvd *d, struct kconn *kc)
{
	struct oitem *it = &kc->oi[kc->oi_head];

	if (it->kind == OI_PIN)
		paste_release(d->ctx, &it->pin);
	kc->oi_head++;
	if (--kc->oi_n == 0) {
		kc->oi_head = 0;
		kc->ob_len = 0;
	}
}

/*
 * Send what the send buffer takes. Stops only when a send takes nothing, which always re-arms
 * on_data (a short non-zero send did not, before libpaste-xdp 2a64ddb). @return 0, or -1 when the
 * connection is gone.
 */
static int flush_out(struct kvd *d, struct paste_conn *c, struct kconn *kc)
{
	while (kc->oi_n) {
		struct oitem *it = &kc->oi[kc->oi_head];
		const uint8_t *p = it->kind == OI_BUF ? kc->ob + it->off : it->p;
		ssize_t w = paste_conn__send(c, p, it->len);

		if (w < 0)
			return -1;
		kc->queued -= (size_t)w;
		it->len -= (uint32_t)w;
		if (it->kind == OI_BUF)
			it->off += (size_t)w;
		else
			it->p += w;
		if (w == 0)
			return 0; /* full: on_data runs again when space frees up */
		if (!it->len)
			oi_pop(d, kc);
	}
	return 0;
}

/*
 * End of on_data: value bytes still queued must outlive this round (a DEL or overwrite releases
 * them after the round's fence), so take our own reference to each; if that fails, copy them.
 */
static void pin_queued(struct kvd *d, struct kconn *kc)
{
	for (size_t i = 0; i < kc->oi_n; i++) {
		struct oitem *it = &kc->oi[kc->oi_head + i];

		if (it->kind != OI_POOL)
			continue;
		if (paste_keep(d->ctx, it->p, it->len, &it->pin) == 0) {
			it->p =
			    paste_pool__ref_ptr(d->pool, &it->pin); /* copy_threshold may copy */
			it->kind = OI_PIN;
			d->st.pins++;
			continue;
		}
		if (ob_reserve(kc, it->len) == 0) { /* copy: the bytes are still valid now */
			memcpy(kc->ob + kc->ob_len, it->p, it->len);
			it->off = kc->ob_len;
			kc->ob_len += it->len;
			it->kind = OI_BUF;
			d->st.pin_copies++;
		}
	}
}

static void out_drop(struct kvd *d, struct kconn *kc)
{
	while (kc->oi_n)
		oi_pop(d, kc);
	kc->queued = 0;
}

/* ---- arguments --------------------------------------------------------------------------- */

static uint32_t arg_len(const struct req *r, unsigned i)
{
	return r->cmd->argv[i].len;
}

/* Argument @i as contiguous bytes (in place, or gathered into the arena). NULL: no room. */
static const uint8_t *arg(struct req *r, unsigned i)
{
	struct kconn *kc = r->kc;
	uint32_t n = arg_len(r, i);
	const uint8_t *q;
	uint8_t *tmp;

	if (r->cmd->inl)
		return kc->rp.line + r->cmd->argv[i].off;
	q = resp_buf_contig(r->b, r->base + r->cmd->argv[i].off, n);
	if (q)
		return q;
	tmp = arena_alloc(r->d, n);
	if (!tmp)
		return NULL;
	resp_buf_copy(r->b, r->base + r->cmd->argv[i].off, n, tmp);
	return tmp;
}

static bool arg_is(struct req *r, unsigned i, const char *word)
{
	size_t n = strlen(word);
	const uint8_t *a;

	if (arg_len(r, i) != n)
		return false;
	a = arg(r, i);
	for (size_t k = 0; a && k < n; k++)
		if (tolower(a[k]) != tolower((unsigned char)word[k]))
			return false;
	return a != NULL;
}

static bool arg_ll(struct req *r, unsigned i, int64_t *v)
{
	const uint8_t *a = arg(r, i);

	return a && resp_parse_ll(a, arg_len(r, i), v);
}

/*
 * Argument @i in stored form: its bytes and the one after them. In a RESP request that byte is the
 * framing '\r' and the whole range may lie in one received slot; otherwise gather it.
 */
static int arg_str(struct req *r, unsigned i, struct str *s)
{
	uint32_t n = arg_len(r, i);
	const uint8_t *q = NULL;
	uint8_t *tmp;

	if (!r->cmd->inl)
		q = resp_buf_contig(r->b, r->base + r->cmd->argv[i].off, (size_t)n + 1);
	if (q) {
		*s = (struct str){.p = q, .n = n + 1, .pool = true};
		return 0;
	}
	tmp = arena_alloc(r->d, (size_t)n + 1);
	if (!tmp)
		return -ENOMEM;
	if (r->cmd->inl)
		memcpy(tmp, r->kc->rp.line + r->cmd->argv[i].off, n);
	else
		resp_buf_copy(r->b, r->base + r->cmd->argv[i].off, n, tmp);
	tmp[n] = '\r';
	*s = (struct str){.p = tmp, .n = n + 1, .pool = false};
	return 0;
}

/* ---- the store --------------------------------------------------------------------------- */

static uint64_t ttl_count(const struct kvd *d)
{
	struct paste_kv_info i;

	paste_kv__info(d->ttl, &i);
	return i.keys;
}

/* The deadline of @k (ms), or 0 when it has none. */
static uint64_t ttl_get(struct kvd *d, const struct str *k)
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

static bool del_key(struct kvd *d, const uint8_t *k, size_t n)
{
	bool gone = paste_kv__del(d->kv, k, n) == 0;

	if (gone)
		d->del_epoch++;
	if (ttl_count(d))
		paste_kv__del(d->ttl, k, n);
	return gone;
}

/* Look @k up; an expired key is deleted and reported absent. @return 0 or -ENOENT. */
static int lookup(struct kvd *d, const struct str *k, struct paste_ref *val)
{
	uint64_t dl;

	if (paste_kv__get(d->kv, k->p, k->n, val))
		return -ENOENT;
	dl = ttl_get(d, k);
	if (dl && dl <= d->now_ms) {
		del_key(d, k->p, k->n);
		d->st.expired++;
		return -ENOENT;
	}
	return 0;
}

/* Pointer to a stored string and its length (without the trailing byte). */
static const uint8_t *val_bytes(struct kvd *d, const struct paste_ref *ref, size_t *n)
{
	const uint8_t *p = paste_pool__ref_ptr(d->pool, ref);

	*n = p && ref->len ? ref->len - 1 : 0;
	return p;
}

enum str_kind { S_KEY, S_VAL, S_NEW /* a computed value */ };

/* Make a reference of @s: in place when it lies in a received slot, else one copy. */
static int keep_str(struct kvd *d, const struct str *s, struct paste_ref *ref, enum str_kind kind)
{
	int err;

	if (s->pool) {
		err = paste_keep(d->ctx, s->p, s->n, ref);
		if (!err)
			err = paste_persist(d->ctx, s->p, s->n);
	} else {
		err = paste_keep_copy(d->ctx, s->p, s->n, ref);
	}
	if (err)
		return err;
	if (kind == S_NEW) {
		d->st.val_computed++;
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

static void release(struct kvd *d, struct paste_ref *ref)
{
	if (ref->len)
		paste_release(d->ctx, ref);
	ref->len = 0;
}

/* Set the expiry of @k to @ms (absolute). @return 0 or a negative errno. */
static int ttl_set(struct kvd *d, const struct str *k, uint64_t ms)
{
	struct paste_ref kr = {0}, vr = {0};
	int err = keep_str(d, k, &kr, S_KEY);

	if (!err)
		err = paste_keep_copy(d->ctx, &ms, 8, &vr);
	if (!err)
		err = paste_kv__put(d->ttl, &kr, &vr);
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
static int store(struct kvd *d, const struct str *k, const struct str *v, uint64_t ttl,
                 enum str_kind vkind)
{
	struct paste_ref kr = {0}, vr = {0};
	int err = keep_str(d, v, &vr, vkind);

	if (!err)
		err = keep_str(d, k, &kr, S_KEY);
	if (!err)
		err = paste_kv__put(d->kv, &kr, &vr);
	if (err) {
		release(d, &kr);
		release(d, &vr);
		return err;
	}
	if (ttl == 0 && ttl_count(d))
		paste_kv__del(d->ttl, k->p, k->n);
	else if (ttl && ttl != UINT64_MAX && ttl_set(d, k, ttl))
		return -ENOSPC; /* stored, but without its expiry: report it */
	return 0;
}

static int reply_store_err(struct req *r, int err)
{
	if (err == -ENOSPC || err == -ENOMEM) {
		r->d->st.oom++;
		return out_str(r->kc,
		               "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
	}
	return out_err(r->kc, "ERR store failed: %s", strerror(-err));
}

static bool refuse_write(struct req *r)
{
	if (!r->d->low)
		return false;
	reply_store_err(r, -ENOSPC);
	return true;
}

/* ---- string commands ------------------------------------------------------------------------ */

static int check_key(struct req *r, unsigned i)
{
	if (arg_len(r, i) <= r->d->max_key)
		return 0;
	out_err(r->kc, "ERR key exceeds maximum allowed size (max-key %u)", r->d->max_key);
	return -1;
}

static int check_value(struct req *r, size_t n)
{
	if (n <= r->d->max_value)
		return 0;
	out_err(r->kc, "ERR string exceeds maximum allowed size (max-value %u)", r->d->max_value);
	return -1;
}

static int cmd_get(struct req *r)
{
	struct paste_ref v;
	const uint8_t *p;
	struct str k;
	size_t n;

	if (arg_str(r, 1, &k) || lookup(r->d, &k, &v)) {
		r->d->st.misses++;
		return out_str(r->kc, "$-1\r\n");
	}
	r->d->st.hits++;
	p = val_bytes(r->d, &v, &n);
	return p ? out_value(r->kc, p, n) : out_err(r->kc, "ERR stored value unreadable");
}

struct set_opts {
	bool nx, xx, get, keepttl;
	uint64_t deadline; /* 0: none */
};

static int parse_set_opts(struct req *r, struct set_opts *o)
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

static int cmd_set(struct req *r)
{
	struct set_opts o = {0};
	struct paste_ref old;
	struct str k, v;
	bool exists;
	int err;

	if (parse_set_opts(r, &o) || check_key(r, 1) || check_value(r, arg_len(r, 2)))
		return 0;
	if (refuse_write(r))
		return 0;
	if (arg_str(r, 1, &k) || arg_str(r, 2, &v))
		return out_err(r->kc, "ERR request too large");
	exists = lookup(r->d, &k, &old) == 0;
	if ((o.nx && exists) || (o.xx && !exists)) {
		if (o.get && exists) {
			size_t n;
			const uint8_t *p = val_bytes(r->d, &old, &n);

			return out_value(r->kc, p, n);
		}
		return out_str(r->kc, "$-1\r\n");
	}
	if (o.deadline && o.deadline <= r->d->now_ms) { /* already expired: Redis deletes */
		if (exists)
			del_key(r->d, k.p, k.n);
		return out_str(r->kc, "+OK\r\n");
	}
	err = store(r->d, &k, &v, o.deadline ? o.deadline : o.keepttl ? UINT64_MAX : 0, S_VAL);
	if (err)
		return reply_store_err(r, err);
	if (o.get && exists) {
		size_t n;
		const uint8_t *p = val_bytes(r->d, &old, &n); /* released only after the fence */

		return out_value(r->kc, p, n);
	}
	return out_str(r->kc, o.get ? "$-1\r\n" : "+OK\r\n");
}

static int cmd_mset(struct req *r)
{
	struct paste_kv_info info;
	unsigned argc = r->cmd->argc;

	if (argc % 2 == 0)
		return out_err(r->kc, "ERR wrong number of arguments for 'mset' command");
	for (unsigned i = 1; i < argc; i += 2)
		if (check_key(r, i) || check_value(r, arg_len(r, i + 1)))
			return 0;
	paste_kv__info(r->d->kv, &info);
	if (refuse_write(r))
		return 0;
	if (info.keys + argc / 2 > info.capacity) /* all or nothing where it can be told */
		return reply_store_err(r, -ENOSPC);
	for (unsigned i = 1; i < argc; i += 2) {
		struct str k, v;
		int err;

		r->d->arena_used = 0;
		if (arg_str(r, i, &k) || arg_str(r, i + 1, &v))
			return out_err(r->kc, "ERR request too large");
		err = store(r->d, &k, &v, 0, S_VAL);
		if (err)
			return reply_store_err(r, err);
	}
	return out_str(r->kc, "+OK\r\n");
}

static int cmd_mget(struct req *r)
{
	if (out_hdr(r->kc, '*', r->cmd->argc - 1))
		return -ENOMEM;
	for (unsigned i = 1; i < r->cmd->argc; i++) {
		struct paste_ref v;
		struct str k;
		size_t n;
		const uint8_t *p;

		r->d->arena_used = 0;
		if (arg_str(r, i, &k) || lookup(r->d, &k, &v)) {
			r->d->st.misses++;
			if (out_str(r->kc, "$-1\r\n"))
				return -ENOMEM;
			continue;
		}
		r->d->st.hits++;
		p = val_bytes(r->d, &v, &n);
		if (out_value(r->kc, p, n))
			return -ENOMEM;
	}
	return 0;
}

/* DEL (@del) or EXISTS: count the keys. */
static int count_keys(struct req *r, bool del)
{
	int64_t n = 0;

	for (unsigned i = 1; i < r->cmd->argc; i++) {
		struct paste_ref v;
		struct str k;

		r->d->arena_used = 0;
		if (arg_str(r, i, &k) || lookup(r->d, &k, &v))
			continue;
		n += del ? del_key(r->d, k.p, k.n) : 1;
	}
	return out_hdr(r->kc, ':', n);
}

static int cmd_del(struct req *r)
{
	return count_keys(r, true);
}

static int cmd_exists(struct req *r)
{
	return count_keys(r, false);
}

/* Store a computed value (copied once into the pool). */
static int store_new(struct req *r, const struct str *k, const void *p, size_t n, uint64_t ttl)
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

static int incr_by(struct req *r, int64_t by)
{
	struct paste_ref old;
	int64_t cur = 0;
	char num[24];
	struct str k;
	int err, n;

	if (check_key(r, 1) || refuse_write(r))
		return 0;
	if (arg_str(r, 1, &k))
		return out_err(r->kc, "ERR request too large");
	if (lookup(r->d, &k, &old) == 0) {
		size_t len;
		const uint8_t *p = val_bytes(r->d, &old, &len);

		if (!p || !resp_parse_ll(p, len, &cur))
			return out_err(r->kc, "ERR value is not an integer or out of range");
	}
	if ((by > 0 && cur > INT64_MAX - by) || (by < 0 && cur < INT64_MIN - by))
		return out_err(r->kc, "ERR increment or decrement would overflow");
	cur += by;
	n = snprintf(num, sizeof(num), "%lld", (long long)cur);
	err = store_new(r, &k, num, (size_t)n, UINT64_MAX);
	if (err)
		return reply_store_err(r, err);
	return out_hdr(r->kc, ':', cur);
}

static int cmd_incr(struct req *r)
{
	return incr_by(r, 1);
}

static int cmd_decr(struct req *r)
{
	return incr_by(r, -1);
}

static int cmd_incrby(struct req *r)
{
	int64_t by;

	if (!arg_ll(r, 2, &by))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	return incr_by(r, by);
}

static int cmd_decrby(struct req *r)
{
	int64_t by;

	if (!arg_ll(r, 2, &by) || by == INT64_MIN)
		return out_err(r->kc, "ERR value is not an integer or out of range");
	return incr_by(r, -by);
}

static int cmd_append(struct req *r)
{
	struct paste_ref old;
	size_t olen = 0, alen = arg_len(r, 2);
	const uint8_t *op = NULL, *ap;
	struct str k, v;
	uint8_t *buf;
	int err;

	if (check_key(r, 1) || refuse_write(r))
		return 0;
	if (arg_str(r, 1, &k))
		return out_err(r->kc, "ERR request too large");
	if (lookup(r->d, &k, &old) == 0)
		op = val_bytes(r->d, &old, &olen);
	if (check_value(r, olen + alen))
		return 0;
	if (!op) { /* a new key: the value can stay where it arrived, as for SET */
		if (arg_str(r, 2, &v))
			return out_err(r->kc, "ERR request too large");
		err = store(r->d, &k, &v, 0, S_VAL);
		return err ? reply_store_err(r, err) : out_hdr(r->kc, ':', (int64_t)alen);
	}
	ap = arg(r, 2);
	buf = arena_alloc(r->d, olen + alen);
	if (!ap || !buf)
		return out_err(r->kc, "ERR request too large");
	memcpy(buf, op, olen);
	memcpy(buf + olen, ap, alen);
	err = store_new(r, &k, buf, olen + alen, UINT64_MAX);
	return err ? reply_store_err(r, err) : out_hdr(r->kc, ':', (int64_t)(olen + alen));
}

static int cmd_strlen(struct req *r)
{
	struct paste_ref v;
	struct str k;

	if (arg_str(r, 1, &k) || lookup(r->d, &k, &v))
		return out_hdr(r->kc, ':', 0);
	return out_hdr(r->kc, ':', (int64_t)v.len - 1);
}

/* TTL (@ms false) / PTTL. */
static int ttl_reply(struct req *r, bool ms)
{
	struct paste_ref v;
	struct str k;
	uint64_t dl;

	if (arg_str(r, 1, &k) || lookup(r->d, &k, &v))
		return out_hdr(r->kc, ':', -2);
	dl = ttl_get(r->d, &k);
	if (!dl)
		return out_hdr(r->kc, ':', -1);
	dl -= r->d->now_ms;
	return out_hdr(r->kc, ':', ms ? (int64_t)dl : (int64_t)((dl + 500) / 1000));
}

static int cmd_ttl(struct req *r)
{
	return ttl_reply(r, false);
}

static int cmd_pttl(struct req *r)
{
	return ttl_reply(r, true);
}

/* ---- keyspace commands ---------------------------------------------------------------------- */

struct walk {
	struct kvd *d;
	const uint8_t *pat;
	size_t plen;
	uint64_t skip, visit, seen, matched;
	bool stopped;
};

/* Add the key to the scratch if it matches and is not expired. */
static int walk_key(struct walk *w, const struct paste_ref *key)
{
	const uint8_t *p = paste_pool__ref_ptr(w->d->pool, key);
	struct str k;
	uint64_t dl;

	if (!p || !key->len)
		return 0;
	k = (struct str){.p = p, .n = key->len};
	if (w->pat && !resp_glob(w->pat, w->plen, p, key->len - 1))
		return 0;
	dl = ttl_get(w->d, &k);
	if (dl && dl <= w->d->now_ms)
		return 0;
	w->matched++;
	return big_bulk(w->d, p, key->len - 1);
}

static int keys_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	return walk_key(arg, key);
}

static int scan_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct walk *w = arg;

	if (w->seen++ < w->skip)
		return 0;
	if (w->visit-- == 0) {
		w->stopped = true;
		return 1;
	}
	return walk_key(w, key);
}

static bool is_all(const uint8_t *pat, size_t n)
{
	return n == 1 && pat[0] == '*';
}

static int cmd_keys(struct req *r)
{
	struct walk w = {.d = r->d, .pat = arg(r, 1), .plen = arg_len(r, 1)};

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
static int cmd_scan(struct req *r)
{
	struct walk w = {.d = r->d, .visit = 10};
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
			if (!arg_is(r, ++i, "string"))
				w.visit = 0; /* only strings here: nothing matches */
		} else {
			return out_err(r->kc, "ERR syntax error");
		}
	}
	if (w.pat && is_all(w.pat, w.plen))
		w.pat = NULL;
	paste_kv__info(r->d->kv, &info);
	if (w.visit && w.visit < info.keys >> KV_SCAN_CALLS)
		w.visit =
		    info.keys >> KV_SCAN_CALLS; /* COUNT is a hint: bound a full scan's cost */
	cur = (uint64_t)v;
	pos = cur & ((1ull << KV_SCAN_POS) - 1);
	dels = (r->d->del_epoch - (cur >> KV_SCAN_POS)) & ((1ull << KV_SCAN_EPOCH) - 1);
	w.skip = pos > dels ? pos - dels : 0;
	r->d->big_len = 0;
	if (w.visit == 0) { /* TYPE other than string */
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

static int cmd_dbsize(struct req *r)
{
	struct paste_kv_info i;

	paste_kv__info(r->d->kv, &i);
	return out_hdr(r->kc, ':', (int64_t)i.keys);
}

struct batch {
	struct kvd *d;
	uint8_t *buf;
	size_t len, cap;
	unsigned n;
};

static int collect_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
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
static uint64_t flush_index(struct kvd *d, struct paste_kv *kv)
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
			pass += paste_kv__del(kv, bt.buf + o + 4, n) == 0;
			o += 4 + n;
		}
		total += pass;
	} while (bt.n && pass);
	free(bt.buf);
	return total;
}

static int cmd_flushall(struct req *r)
{
	if (r->cmd->argc > 2 ||
	    (r->cmd->argc == 2 && !arg_is(r, 1, "ASYNC") && !arg_is(r, 1, "SYNC")))
		return out_err(r->kc, "ERR syntax error");
	r->d->del_epoch += flush_index(r->d, r->d->kv);
	flush_index(r->d, r->d->ttl);
	return out_str(r->kc, "+OK\r\n");
}

/* ---- connection and server commands --------------------------------------------------------- */

static int cmd_ping(struct req *r)
{
	const uint8_t *a;

	if (r->cmd->argc > 2)
		return out_err(r->kc, "ERR wrong number of arguments for 'ping' command");
	if (r->cmd->argc == 1)
		return out_str(r->kc, "+PONG\r\n");
	a = arg(r, 1);
	if (!a)
		return out_err(r->kc, "ERR request too large");
	return out_hdr(r->kc, '$', arg_len(r, 1)) || out(r->kc, a, arg_len(r, 1)) ||
	               out(r->kc, "\r\n", 2)
	           ? -ENOMEM
	           : 0;
}

static int cmd_echo(struct req *r)
{
	const uint8_t *a = arg(r, 1);

	if (!a)
		return out_err(r->kc, "ERR request too large");
	return out_hdr(r->kc, '$', arg_len(r, 1)) || out(r->kc, a, arg_len(r, 1)) ||
	               out(r->kc, "\r\n", 2)
	           ? -ENOMEM
	           : 0;
}

static int cmd_select(struct req *r)
{
	int64_t db;

	if (!arg_ll(r, 1, &db) || db < INT32_MIN || db > INT32_MAX)
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if (db != 0)
		return out_err(r->kc, "ERR DB index is out of range");
	return out_str(r->kc, "+OK\r\n");
}

static int cmd_quit(struct req *r)
{
	r->kc->quit = true;
	return out_str(r->kc, "+OK\r\n");
}

static int cmd_info(struct req *r);
static int cmd_command(struct req *r);
static int cmd_config(struct req *r);

/* ---- the command table ---------------------------------------------------------------------- */

enum { F_WRITE = 1, F_READ = 2, F_FAST = 4, F_ADMIN = 8 };

struct command {
	const char *name;
	int arity; /* Redis' convention: n exactly, -n at least n */
	int (*fn)(struct req *r);
	unsigned flags;
	int first, last, step; /* key positions */
	const char *group, *summary, *since, *complexity;
};

static const struct command commands[] = {
    {"append", 3, cmd_append, F_WRITE, 1, 1, 1, "string",
     "Appends a string to the value of a key. Creates the key if it doesn't exist.", "2.0.0",
     "O(1)"},
    {"command", -1, cmd_command, 0, 0, 0, 0, "server",
     "Returns detailed information about all commands.", "2.8.13", "O(N)"},
    {"config", -2, cmd_config, F_ADMIN, 0, 0, 0, "server",
     "Returns the effective values of configuration parameters.", "2.0.0", "O(N)"},
    {"dbsize", 1, cmd_dbsize, F_READ | F_FAST, 0, 0, 0, "server",
     "Returns the number of keys in the database.", "1.0.0", "O(1)"},
    {"decr", 2, cmd_decr, F_WRITE | F_FAST, 1, 1, 1, "string",
     "Decrements the integer value of a key by one.", "1.0.0", "O(1)"},
    {"decrby", 3, cmd_decrby, F_WRITE | F_FAST, 1, 1, 1, "string",
     "Decrements a number from the integer value of a key.", "1.0.0", "O(1)"},
    {"del", -2, cmd_del, F_WRITE, 1, -1, 1, "generic", "Deletes one or more keys.", "1.0.0",
     "O(N)"},
    {"echo", 2, cmd_echo, F_FAST, 0, 0, 0, "connection", "Returns the given string.", "1.0.0",
     "O(1)"},
    {"exists", -2, cmd_exists, F_READ | F_FAST, 1, -1, 1, "generic",
     "Determines whether one or more keys exist.", "1.0.0", "O(N)"},
    {"flushall", -1, cmd_flushall, F_WRITE, 0, 0, 0, "server", "Removes all keys.", "1.0.0",
     "O(N)"},
    {"flushdb", -1, cmd_flushall, F_WRITE, 0, 0, 0, "server", "Removes all keys.", "1.0.0", "O(N)"},
    {"get", 2, cmd_get, F_READ | F_FAST, 1, 1, 1, "string", "Returns the string value of a key.",
     "1.0.0", "O(1)"},
    {"incr", 2, cmd_incr, F_WRITE | F_FAST, 1, 1, 1, "string",
     "Increments the integer value of a key by one.", "1.0.0", "O(1)"},
    {"incrby", 3, cmd_incrby, F_WRITE | F_FAST, 1, 1, 1, "string",
     "Increments the integer value of a key by a number.", "1.0.0", "O(1)"},
    {"info", -1, cmd_info, 0, 0, 0, 0, "server", "Returns information about the server.", "1.0.0",
     "O(1)"},
    {"keys", 2, cmd_keys, F_READ, 0, 0, 0, "generic", "Returns all key names that match a pattern.",
     "1.0.0", "O(N)"},
    {"mget", -2, cmd_mget, F_READ | F_FAST, 1, -1, 1, "string",
     "Atomically returns the string values of one or more keys.", "1.0.0", "O(N)"},
    {"mset", -3, cmd_mset, F_WRITE, 1, -1, 2, "string",
     "Atomically creates or modifies the string values of one or more keys.", "1.0.1", "O(N)"},
    {"ping", -1, cmd_ping, F_FAST, 0, 0, 0, "connection",
     "Returns the server's liveliness response.", "1.0.0", "O(1)"},
    {"pttl", 2, cmd_pttl, F_READ | F_FAST, 1, 1, 1, "generic",
     "Returns the expiration time in milliseconds of a key.", "2.6.0", "O(1)"},
    {"quit", -1, cmd_quit, F_FAST, 0, 0, 0, "connection", "Closes the connection.", "1.0.0",
     "O(1)"},
    {"scan", -2, cmd_scan, F_READ, 0, 0, 0, "generic",
     "Iterates over the key names in the database.", "2.8.0", "O(1) per call"},
    {"select", 2, cmd_select, F_FAST, 0, 0, 0, "connection",
     "Changes the selected database (only 0 exists).", "1.0.0", "O(1)"},
    {"set", -3, cmd_set, F_WRITE, 1, 1, 1, "string",
     "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
     "1.0.0", "O(1)"},
    {"strlen", 2, cmd_strlen, F_READ | F_FAST, 1, 1, 1, "string",
     "Returns the length of a string value.", "2.2.0", "O(1)"},
    {"ttl", 2, cmd_ttl, F_READ | F_FAST, 1, 1, 1, "generic",
     "Returns the expiration time in seconds of a key.", "1.0.0", "O(1)"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const uint8_t *name, size_t n)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const char *c = commands[i].name;
		size_t k = 0;

		if (strlen(c) != n)
			continue;
		while (k < n && tolower(name[k]) == c[k])
			k++;
		if (k == n)
			return &commands[i];
	}
	return NULL;
}

/* "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' " exactly as Redis 7 words it. */
static int unknown_command(struct req *r, const uint8_t *name, size_t n)
{
	char args[160] = "";
	size_t alen = 0;

	for (unsigned i = 1; i < r->cmd->argc && alen < 128; i++) {
		const uint8_t *a = arg(r, i);
		int w;

		if (!a)
			break;
		w = snprintf(args + alen, sizeof(args) - alen, "'%.*s' ",
		             (int)(arg_len(r, i) < 128 - alen ? arg_len(r, i) : 128 - alen),
		             (const char *)a);
		if (w < 0 || (size_t)w >= sizeof(args) - alen)
			break;
		alen += (size_t)w;
	}
	return out_err(r->kc, "ERR unknown command '%.*s', with args beginning with: %s",
	               (int)(n < 128 ? n : 128), (const char *)name, args);
}

static int execute(struct req *r)
{
	const struct command *cmd;
	const uint8_t *name = arg(r, 0);
	size_t n = arg_len(r, 0);
	int argc = (int)r->cmd->argc;

	r->d->st.cmds++;
	if (!name)
		return out_err(r->kc, "ERR request too large");
	cmd = find_command(name, n);
	if (!cmd)
		return unknown_command(r, name, n);
	if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity))
		return out_err(r->kc, "ERR wrong number of arguments for '%s' command", cmd->name);
	return cmd->fn(r);
}

/* ---- COMMAND, CONFIG, INFO ------------------------------------------------------------------ */

static int command_info(struct kvd *d, const struct command *c)
{
	static const char *const fl[] = {"write", "readonly", "fast", "admin"};
	unsigned nf = 0;

	for (unsigned i = 0; i < 4; i++)
		nf += (c->flags >> i) & 1;
	if (big_printf(d, "*10\r\n") || big_bulk(d, c->name, strlen(c->name)) ||
	    big_printf(d, ":%d\r\n*%u\r\n", c->arity, nf))
		return -ENOMEM;
	for (unsigned i = 0; i < 4; i++)
		if ((c->flags >> i) & 1 && big_printf(d, "+%s\r\n", fl[i]))
			return -ENOMEM;
	return big_printf(d, ":%d\r\n:%d\r\n:%d\r\n*0\r\n*0\r\n*0\r\n*0\r\n", c->first, c->last,
	                  c->step);
}

static int command_docs(struct kvd *d, const struct command *c)
{
	if (big_bulk(d, c->name, strlen(c->name)) || big_printf(d, "*10\r\n") ||
	    big_bulk(d, "summary", 7) || big_bulk(d, c->summary, strlen(c->summary)) ||
	    big_bulk(d, "since", 5) || big_bulk(d, c->since, strlen(c->since)) ||
	    big_bulk(d, "group", 5) || big_bulk(d, c->group, strlen(c->group)) ||
	    big_bulk(d, "complexity", 10) || big_bulk(d, c->complexity, strlen(c->complexity)) ||
	    big_bulk(d, "arguments", 9) || big_printf(d, "*0\r\n"))
		return -ENOMEM;
	return 0;
}

/* COMMAND [COUNT | LIST | INFO name... | DOCS name...]: enough for redis-cli's help and hints. */
static int cmd_command(struct req *r)
{
	struct kvd *d = r->d;
	bool docs = r->cmd->argc >= 2 && arg_is(r, 1, "DOCS");
	bool info = r->cmd->argc == 1 || arg_is(r, 1, "INFO");
	unsigned n = 0;

	if (r->cmd->argc == 2 && arg_is(r, 1, "COUNT"))
		return out_hdr(r->kc, ':', (int64_t)NCOMMANDS);
	if (r->cmd->argc == 2 && arg_is(r, 1, "LIST")) {
		d->big_len = 0;
		for (size_t i = 0; i < NCOMMANDS; i++)
			big_bulk(d, commands[i].name, strlen(commands[i].name));
		return out_hdr(r->kc, '*', (int64_t)NCOMMANDS) || out(r->kc, d->big, d->big_len);
	}
	if (!docs && !info) {
		const uint8_t *a = arg(r, 1);

		return out_err(r->kc, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
		               (int)(arg_len(r, 1) < 128 ? arg_len(r, 1) : 128),
		               a ? (const char *)a : "");
	}
	d->big_len = 0;
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];
		bool want = r->cmd->argc <= 2;

		for (unsigned k = 2; k < r->cmd->argc && !want; k++)
			want = arg_is(r, k, c->name);
		if (!want)
			continue;
		if (docs ? command_docs(d, c) : command_info(d, c))
			return -ENOMEM;
		n++;
	}
	/* COMMAND INFO of unknown names gives nil entries, like Redis */
	for (unsigned k = 2; info && k < r->cmd->argc; k++) {
		const uint8_t *a = arg(r, k);

		if (a && !find_command(a, arg_len(r, k))) {
			big_printf(d, "*-1\r\n");
			n++;
		}
	}
	return out_hdr(r->kc, '*', docs ? 2 * (int64_t)n : (int64_t)n) ||
	               out(r->kc, d->big, d->big_len)
	           ? -ENOMEM
	           : 0;
}

static int cmd_config(struct req *r)
{
	struct kvd *d = r->d;
	char v[5][24];
	const char *params[][2] = {
	    {"save", ""},
	    {"appendonly", "no"},
	    {"databases", "1"},
	    {"maxmemory", "0"},
	    {"proto-max-bulk-len", v[0]},
	    {"paste-max-value", v[1]},
	    {"paste-max-key", v[2]},
	    {"paste-max-request", v[3]},
	    {"paste-keys", v[4]},
	};
	unsigned n = 0;

	snprintf(v[0], sizeof(v[0]), "%" PRIu64, d->lim.max_bulk);
	snprintf(v[1], sizeof(v[1]), "%u", d->max_value);
	snprintf(v[2], sizeof(v[2]), "%u", d->max_key);
	snprintf(v[3], sizeof(v[3]), "%u", d->lim.max_request);
	snprintf(v[4], sizeof(v[4]), "%" PRIu64, d->keys);
	if (!arg_is(r, 1, "GET")) {
		const uint8_t *a = arg(r, 1);

		return out_err(r->kc, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
		               (int)(arg_len(r, 1) < 128 ? arg_len(r, 1) : 128),
		               a ? (const char *)a : "");
	}
	if (r->cmd->argc < 3)
		return out_err(r->kc, "ERR wrong number of arguments for 'config|get' command");
	d->big_len = 0;
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		bool want = false;

		for (unsigned k = 2; k < r->cmd->argc && !want; k++) {
			const uint8_t *pat = arg(r, k);
			uint8_t low[128];
			size_t pl = arg_len(r, k) < sizeof(low) ? arg_len(r, k) : sizeof(low);

			for (size_t j = 0; pat && j < pl; j++)
				low[j] = (uint8_t)tolower(pat[j]);
			want = pat && resp_glob(low, pl, (const uint8_t *)params[i][0],
			                        strlen(params[i][0]));
		}
		if (!want)
			continue;
		big_bulk(d, params[i][0], strlen(params[i][0]));
		big_bulk(d, params[i][1], strlen(params[i][1]));
		n += 2;
	}
	return out_hdr(r->kc, '*', n) || out(r->kc, d->big, d->big_len) ? -ENOMEM : 0;
}

static void info_server(struct kvd *d)
{
	big_printf(d,
	           "# Server\r\nredis_version:7.0.0\r\npaste_kv_version:" KV_VERSION "\r\n"
	           "redis_mode:standalone\r\nos:Linux\r\nprocess_id:%d\r\ntcp_port:%u\r\n"
	           "transport:%s\r\nbusy_poll:%d\r\nuptime_in_seconds:%lld\r\n"
	           "connected_clients:%u\r\n\r\n",
	           (int)getpid(), d->d.port,
	           d->d.paste.transport == PASTE_TRANSPORT_KERNEL ? "kernel" : "paste",
	           d->d.paste.busy_poll, (long long)(time(NULL) - d->started), d->conns_open);
}

static void info_persistence(struct kvd *d, const struct paste_stats *s)
{
	struct paste_pool_info pi;

	paste_pool__info(d->pool, &pi);
	big_printf(
	    d,
	    "# Persistence\r\nloading:0\r\naof_enabled:0\r\nrdb_changes_since_last_save:0\r\n"
	    "durability:every write fenced before its reply\r\npersist:%s\r\n"
	    "pool_path:%s\r\npool_size:%" PRIu64 "\r\npool_is_pmem:%d\r\n"
	    "pool_was_clean:%d\r\nframe_size:%u\r\nframes_total:%u\r\nframes_free:%u\r\n"
	    "frames_fill:%u\r\nframes_kept:%u\r\nreserve_frames:%" PRIu64 "\r\n"
	    "recovered_keys:%" PRIu64 "\r\nrecovered_expires:%" PRIu64 "\r\n"
	    "recovery_dropped:%" PRIu64 "\r\nstartup_expired:%" PRIu64 "\r\n"
	    "fences:%" PRIu64 "\r\npersisted_bytes:%" PRIu64 "\r\nkept_bytes:%" PRIu64
	    "\r\nkept_copied_bytes:%" PRIu64 "\r\n\r\n",
	    d->d.paste.no_persist ? "off" : "on",
	    d->d.paste.pool_path ? d->d.paste.pool_path : PASTE_POOL_DEFAULT_PATH, pi.size,
	    pi.is_pmem, pi.was_clean, pi.frame_size, s->frames_total, s->frames_free,
	    s->frames_fill, s->frames_kept, d->reserve, d->rec_kv.recovered, d->rec_ttl.recovered,
	    d->rec_kv.dropped + d->rec_ttl.dropped, d->start_expired, s->fences, s->persisted_bytes,
	    s->kept_bytes, s->kept_copied_bytes);
}

static void info_stats(struct kvd *d, const struct paste_stats *s)
{
	const struct kv_stats *k = &d->st;

	big_printf(
	    d,
	    "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\ntotal_commands_processed:%" PRIu64
	    "\r\nkeyspace_hits:%" PRIu64 "\r\nkeyspace_misses:%" PRIu64 "\r\nexpired_keys:%" PRIu64
	    "\r\nrejected_oom:%" PRIu64 "\r\nprotocol_errors:%" PRIu64
	    "\r\nskipped_requests:%" PRIu64 "\r\nvalues_in_place:%" PRIu64
	    "\r\nvalues_in_place_bytes:%" PRIu64 "\r\nvalues_copied:%" PRIu64
	    "\r\nvalues_copied_bytes:%" PRIu64 "\r\nvalues_computed:%" PRIu64
	    "\r\nkeys_in_place:%" PRIu64 "\r\nkeys_copied:%" PRIu64 "\r\nreplies_pinned:%" PRIu64
	    "\r\nreplies_copied:%" PRIu64 "\r\nrx_payload_bytes:%" PRIu64
	    "\r\nrx_copied_bytes:%" PRIu64 "\r\nrounds:%" PRIu64 "\r\nzerocopy:%d\r\n\r\n",
	    k->conns, k->cmds, k->hits, k->misses, k->expired, k->oom, k->proto_errors, k->skipped,
	    k->val_inplace, k->val_inplace_bytes, k->val_copied, k->val_copied_bytes,
	    k->val_computed, k->key_inplace, k->key_copied, k->pins, k->pin_copies,
	    s->rx_payload_bytes, s->rx_copied_bytes, s->rounds, s->zerocopy);
}

static void info_keyspace(struct kvd *d)
{
	struct paste_kv_info i;

	paste_kv__info(d->kv, &i);
	big_printf(d, "# Keyspace\r\n");
	if (i.keys)
		big_printf(d, "db0:keys=%" PRIu64 ",expires=%" PRIu64 ",avg_ttl=0\r\n", i.keys,
		           ttl_count(d));
	big_printf(d, "capacity:%" PRIu64 "\r\nttl_capacity:%" PRIu64 "\r\n\r\n", i.capacity,
	           d->ttl_keys);
}

static int cmd_info(struct req *r)
{
	static const char *const names[] = {"server", "persistence", "stats", "keyspace"};
	struct kvd *d = r->d;
	struct paste_stats s;
	bool want[4] = {r->cmd->argc == 1, r->cmd->argc == 1, r->cmd->argc == 1, r->cmd->argc == 1};

	for (unsigned k = 1; k < r->cmd->argc; k++)
		for (unsigned i = 0; i < 4; i++)
			want[i] |= arg_is(r, k, names[i]) || arg_is(r, k, "all") ||
			           arg_is(r, k, "default") || arg_is(r, k, "everything");
	paste_stats(d->ctx, &s, sizeof(s));
	d->big_len = 0;
	if (want[0])
		info_server(d);
	if (want[1])
		info_persistence(d, &s);
	if (want[2])
		info_stats(d, &s);
	if (want[3])
		info_keyspace(d);
	if (d->big_len >= 2)
		d->big_len -= 2; /* no blank line after the last section */
	return out_hdr(r->kc, '$', (int64_t)d->big_len) || out(r->kc, d->big, d->big_len) ||
	               out(r->kc, "\r\n", 2)
	           ? -ENOMEM
	           : 0;
}

/* ---- connections -------------------------------------------------------------------------- */

static int on_accept(struct paste_conn *c, void *user)
{
	struct kvd *d = user;
	struct kconn *kc = calloc(1, sizeof(*kc));

	if (!kc)
		return -ENOMEM;
	resp_parser_init(&kc->rp, &d->lim);
	paste_conn__set_user(c, kc);
	d->st.conns++;
	d->conns_open++;
	return 0;
}

/* The connection's pending bytes as parser segments. */
static int view(struct paste_conn *c, struct kconn *kc, struct resp_buf *b)
{
	unsigned n;
	const struct paste_slot *s = paste_conn__slots(c, &n);

	if (n > kc->segs_cap) {
		struct resp_seg *v = realloc(kc->segs, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		kc->segs = v;
		kc->segs_cap = n;
	}
	for (unsigned i = 0; i < n; i++)
		kc->segs[i] = (struct resp_seg){.p = s[i].data, .len = s[i].len};
	resp_buf_init(b, kc->segs, n);
	return 0;
}

static void skipped_reply(struct kvd *d, struct kconn *kc, const struct resp_cmd *cmd)
{
	d->st.skipped++;
	if (cmd->why == RESP_SKIP_ARG)
		out_err(kc, "ERR string exceeds maximum allowed size (max-value %u)", d->max_value);
	else
		out_err(kc, "ERR request exceeds maximum allowed size (max-request %u)",
		        d->lim.max_request);
}

/* Run the pending requests. @return bytes to consume; kc->waiting when a request is partial. */
static size_t serve(struct kvd *d, struct paste_conn *c, struct kconn *kc)
{
	struct resp_buf b;
	size_t base = 0;

	kc->waiting = false;
	if (view(c, kc, &b))
		return 0;
	while (!kc->quit) {
		struct resp_cmd cmd;
		struct req r = {.d = d, .kc = kc, .b = &b, .cmd = &cmd};
		int res;

		if (kc->queued >= KV_OUT_HIGH && (flush_out(d, c, kc) || kc->queued >= KV_OUT_HIGH))
			break; /* the peer does not read: stop reading it */
		res = resp_parse(&kc->rp, &b, base, &cmd);
		r.base = base;
		d->arena_used = 0;
		switch (res) {
		case RESP_AGAIN:
			kc->waiting = true;
			return base;
		case RESP_CMD:
			execute(&r);
			break;
		case RESP_SKIPPED:
			skipped_reply(d, kc, &cmd);
			break;
		case RESP_ERROR:
			d->st.proto_errors++;
			out_err(kc, "ERR %s", cmd.err);
			kc->quit = true;
			break;
		case RESP_EMPTY:
		case RESP_SKIP:
			break;
		default: /* -ENOMEM */
			out_err(kc, "ERR out of memory");
			kc->quit = true;
			break;
		}
		base += cmd.len;
	}
	return base;
}

static void on_data(struct paste_conn *c, void *user)
{
	struct kvd *d = user;
	struct kconn *kc = paste_conn__user(c);
	size_t done;

	if (kc->closing)
		return;
	d->now_ms = wall_ms();
	if (flush_out(d, c, kc))
		return;
	if (!kc->quit && kc->queued < KV_OUT_HIGH) {
		done = serve(d, c, kc);
		if (done)
			paste_conn__consume(c, done);
		if (flush_out(d, c, kc))
			return;
		pin_queued(d, kc);
	}
	if (kc->queued)
		return; /* on_data runs again when the send buffer has room */
	if (kc->quit || (paste_conn__eof(c) && (kc->waiting || !paste_conn__pending(c)))) {
		paste_conn__close(c);
		kc->closing = true;
	}
}

static void on_close(struct paste_conn *c, int err, void *user)
{
	struct kvd *d = user;
	struct kconn *kc = paste_conn__user(c);

	if (!kc)
		return;
	out_drop(d, kc);
	resp_parser_free(&kc->rp);
	free(kc->ob);
	free(kc->oi);
	free(kc->segs);
	free(kc);
	d->conns_open--;
}

/* ---- startup --------------------------------------------------------------------------------- */

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

/* Open index @name; create it for @cap keys if it does not exist. */
static int open_index(struct kvd *d, const char *name, uint64_t cap, struct paste_kv **kv)
{
	int err;

	paste_set_print(quiet, NULL, PASTE_LOG_ERROR); /* absent is not an error here */
	err = paste_kv__open(d->pool, name, 0, kv);
	paste_set_print(NULL, NULL, d->d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	if (err == -ENOENT)
		err = paste_kv__open(d->pool, name, cap, kv);
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
static int sweep_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
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
static void sweep(struct kvd *d)
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

static int open_store(struct kvd *d)
{
	struct paste_pool_info pi;
	uint64_t room;

	d->pool = paste_pool(d->ctx);
	paste_pool__info(d->pool, &pi);
	d->frame_size = pi.frame_size;
	if (!d->max_value)
		d->max_value = pi.frame_size - 1;
	if (d->max_value > pi.frame_size - 1 || d->max_key > pi.frame_size - 1) {
		fprintf(stderr,
		        "paste-kv: --max-value and --max-key must be at most %u (frame size - 1): "
		        "a stored string is one reference inside one frame\n",
		        pi.frame_size - 1);
		return -EINVAL;
	}
	room = pi.region_area_size - pi.region_area_used;
	room = room > (64u << 10) ? room - (64u << 10) : 0;
	if (!d->keys)
		d->keys = room * 4 / 5 / KV_BYTES_KEY;
	if (!d->ttl_keys)
		d->ttl_keys = d->keys / 4 ? d->keys / 4 : 1;
	if (!d->keys || open_index(d, KV_INDEX, d->keys, &d->kv) ||
	    open_index(d, KV_TTL_INDEX, d->ttl_keys, &d->ttl)) {
		if (!d->keys)
			fprintf(stderr,
			        "paste-kv: no room for an index in the pool's region area\n");
		return -ENOSPC;
	}
	paste_kv__info(d->kv, &d->rec_kv);
	paste_kv__info(d->ttl, &d->rec_ttl);
	d->keys = d->rec_kv.capacity;
	d->ttl_keys = d->rec_ttl.capacity;
	sweep(d);
	printf("paste-kv: recovered keys=%" PRIu64 " expires=%" PRIu64 " dropped=%" PRIu64
	       " expired_at_start=%" PRIu64 " orphan_expires=%" PRIu64
	       " pool_was_clean=%d pool_created=%d capacity=%" PRIu64 " ttl_capacity=%" PRIu64 "\n",
	       d->rec_kv.keys, d->rec_ttl.keys, d->rec_kv.dropped + d->rec_ttl.dropped,
	       d->start_expired, d->start_orphans, pi.was_clean, pi.created, d->keys, d->ttl_keys);
	return 0;
}

/* ---- options, signals, main ------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-kv --ifname IF (--ip ADDR | --shared-ip) --port N [options]\n"
	    "       paste-kv --transport kernel --port N [options]\n"
	    "\n"
	    "A durable key-value server speaking the Redis protocol (RESP2 and inline). Values\n"
	    "stay in the pool frames they arrived in, named by a persistent index; every write\n"
	    "is durable before its reply leaves. Commands: PING ECHO SET(EX PX EXAT PXAT NX XX\n"
	    "GET KEEPTTL) GET DEL EXISTS MGET MSET INCR DECR INCRBY DECRBY APPEND STRLEN TTL\n"
	    "PTTL DBSIZE FLUSHALL FLUSHDB KEYS SCAN INFO COMMAND CONFIG GET SELECT 0 QUIT.\n"
	    "\n"
	    "%s"
	    "\n"
	    "Store options:\n"
	    "  --keys N             key capacity when creating the index (default: what 80%%\n"
	    "                       of the pool's free region area holds, ~80 bytes a key)\n"
	    "  --ttl-keys N         capacity of the expiry index (default keys/4)\n"
	    "  --max-value SIZE     longest value (default and maximum: frame size - 1)\n"
	    "  --max-key SIZE       longest key (default 512, at most frame size - 1)\n"
	    "  --max-request SIZE   largest request kept pending whole; larger ones are\n"
	    "                       skipped with an error (default 48K, at most 60K)\n"
	    "  --max-bulk SIZE      a bulk length above this is a protocol error and closes\n"
	    "                       the connection, like Redis' proto-max-bulk-len (default 512K)\n"
	    "  --reserve-frames N   writes get -OOM while fewer frames are free (default 1/8\n"
	    "                       of the frames, at least 512)\n"
	    "  --copy-threshold SIZE  values and keys shorter than SIZE are copied into packing\n"
	    "                       frames instead of pinning the frame they arrived in\n"
	    "                       (default 0: always in place)\n"
	    "\n"
	    "Signals: SIGUSR1 prints a 'stats ...' line; SIGTERM/SIGINT shut down cleanly.\n"
	    "Output: 'paste-kv: recovered ...' then 'paste-kv: ready ...' on stdout.\n"
	    "Exit status: 0 clean shutdown, 1 runtime error, 2 usage error.\n"
	    "\n"
	    "Example (inside the server namespace of scripts/testbed):\n"
	    "  paste-kv --ifname ps0 --ip 10.77.0.3 --port 6379 --pool /dev/shm/kv.pool \\\n"
	    "           --pool-size 1G\n",
	    daemon_common_help);
}

static int extra_opt(int opt, const char *arg, void *app)
{
	struct kvd *d = app;
	uint64_t v;

	switch (opt) {
	case OPT_KEYS:
	case OPT_TTL_KEYS:
		if (daemon_parse_uint(arg, 1, 1ull << 27, &v))
			break;
		*(opt == OPT_KEYS ? &d->keys : &d->ttl_keys) = v;
		return 0;
	case OPT_MAX_KEY:
	case OPT_MAX_VALUE:
		if (daemon_parse_size(arg, &v) || v < 1 || v > 4095)
			break;
		*(opt == OPT_MAX_KEY ? &d->max_key : &d->max_value) = (uint32_t)v;
		return 0;
	case OPT_MAX_REQUEST:
		if (daemon_parse_size(arg, &v) || v < 1024 || v > (60u << 10))
			break;
		d->lim.max_request = (uint32_t)v;
		return 0;
	case OPT_MAX_BULK:
		if (daemon_parse_size(arg, &v) || v < 1 || v > (1ull << 40))
			break;
		d->lim.max_bulk = v;
		return 0;
	case OPT_RESERVE:
		if (daemon_parse_uint(arg, 0, UINT32_MAX, &d->reserve))
			break;
		return 0;
	case OPT_COPY_THRESHOLD:
		if (daemon_parse_size(arg, &d->copy_threshold) || d->copy_threshold > 4096)
			break;
		return 0;
	default:
		return -1;
	}
	fprintf(stderr, "paste-kv: invalid value '%s' for an option (see --help)\n", arg);
	return -1;
}

static void print_stats(struct kvd *d)
{
	struct paste_kv_info i;
	struct paste_stats s;
	const struct kv_stats *k = &d->st;

	if (paste_stats(d->ctx, &s, sizeof(s)))
		return;
	paste_kv__info(d->kv, &i);
	printf("stats keys=%" PRIu64 " cmds=%" PRIu64 " conns_open=%u conns=%" PRIu64
	       " hits=%" PRIu64 " misses=%" PRIu64 " expired=%" PRIu64 " oom=%" PRIu64
	       " proto_errors=%" PRIu64 " skipped=%" PRIu64 " val_inplace=%" PRIu64
	       " val_inplace_bytes=%" PRIu64 " val_copied=%" PRIu64 " val_copied_bytes=%" PRIu64
	       " val_computed=%" PRIu64 " key_inplace=%" PRIu64 " key_copied=%" PRIu64
	       " pins=%" PRIu64 " fences=%" PRIu64 " rounds=%" PRIu64 " rx_payload_bytes=%" PRIu64
	       " rx_copied_bytes=%" PRIu64 " frames_total=%u frames_free=%u frames_fill=%u"
	       " frames_rx=%u frames_tx=%u frames_kept=%u\n",
	       i.keys, k->cmds, d->conns_open, k->conns, k->hits, k->misses, k->expired, k->oom,
	       k->proto_errors, k->skipped, k->val_inplace, k->val_inplace_bytes, k->val_copied,
	       k->val_copied_bytes, k->val_computed, k->key_inplace, k->key_copied, k->pins,
	       s.fences, s.rounds, s.rx_payload_bytes, s.rx_copied_bytes, s.frames_total,
	       s.frames_free, s.frames_fill, s.frames_rx, s.frames_tx, s.frames_kept);
	fflush(stdout);
}

/* Writes are refused while the pool runs short of frames (refreshed at most every ms). */
static void refresh_low(struct kvd *d)
{
	uint64_t now = mono_ns();
	struct paste_stats s;

	if (now - d->refresh < KV_REFRESH_NS || paste_stats(d->ctx, &s, sizeof(s)))
		return;
	d->refresh = now;
	d->low = (uint64_t)s.frames_free + s.frames_fill < d->reserve;
}

static int run(struct kvd *d)
{
	while (!daemon_got_stop) {
		int n = paste_poll(d->ctx, -1);

		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "paste-kv: event loop failed: %s\n", paste_last_error());
			return 1;
		}
		refresh_low(d);
		if (daemon_got_usr1) {
			daemon_got_usr1 = 0;
			print_stats(d);
		}
	}
	return 0;
}

static int setup(struct kvd *d)
{
	struct paste_stats st;

	d->d.paste.copy_threshold = (uint32_t)d->copy_threshold;
	if (paste_open(&d->ctx, &d->d.paste)) {
		fprintf(stderr, "paste-kv: cannot start: %s\n", paste_last_error());
		return 1;
	}
	daemon_sig_ctx = d->ctx;
	if (open_store(d))
		return 1;
	d->lim.max_arg = d->max_value > d->max_key ? d->max_value : d->max_key;
	if (!d->lim.max_request)
		d->lim.max_request = 48u << 10;
	if (!d->lim.max_bulk)
		d->lim.max_bulk = 512u << 10;
	d->arena_cap = 2 * (size_t)d->lim.max_request + 2 * (size_t)d->lim.max_arg + 4096;
	d->arena = malloc(d->arena_cap);
	if (!d->arena)
		return 1;
	paste_stats(d->ctx, &st, sizeof(st));
	if (!d->reserve)
		d->reserve = st.frames_total / 8 > 512 ? st.frames_total / 8 : 512;
	d->started = time(NULL);
	if (paste_listen(d->ctx, d->d.port,
	                 &(struct paste_conn_ops){.sz = sizeof(struct paste_conn_ops),
	                                          .on_accept = on_accept,
	                                          .on_data = on_data,
	                                          .on_close = on_close},
	                 d)) {
		fprintf(stderr, "paste-kv: %s\n", paste_last_error());
		return 1;
	}
	printf("paste-kv: ready transport=%s ifname=%s ip=%s port=%u busy_poll=%d pool=%s "
	       "frames=%u frame_size=%u max_value=%u max_key=%u max_request=%u reserve=%" PRIu64
	       " zerocopy=%d\n",
	       d->d.paste.transport == PASTE_TRANSPORT_KERNEL ? "kernel" : "paste",
	       d->d.paste.ifname ? d->d.paste.ifname : "-", d->d.paste.ip ? d->d.paste.ip : "-",
	       d->d.port, d->d.paste.busy_poll,
	       d->d.paste.pool_path ? d->d.paste.pool_path : PASTE_POOL_DEFAULT_PATH,
	       st.frames_total, d->frame_size, d->max_value, d->max_key, d->lim.max_request,
	       d->reserve, st.zerocopy);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option extra[] = {
	    {"keys", required_argument, NULL, OPT_KEYS},
	    {"ttl-keys", required_argument, NULL, OPT_TTL_KEYS},
	    {"max-key", required_argument, NULL, OPT_MAX_KEY},
	    {"max-value", required_argument, NULL, OPT_MAX_VALUE},
	    {"max-request", required_argument, NULL, OPT_MAX_REQUEST},
	    {"max-bulk", required_argument, NULL, OPT_MAX_BULK},
	    {"reserve-frames", required_argument, NULL, OPT_RESERVE},
	    {"copy-threshold", required_argument, NULL, OPT_COPY_THRESHOLD},
	    {NULL, 0, NULL, 0},
	};
	static struct kvd d = {.max_key = 512};
	int r;

	r = daemon_parse(argc, argv, &d.d, extra, extra_opt, &d, usage);
	if (r)
		return r == 1 ? 0 : 2;
	paste_set_print(NULL, NULL, d.d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	daemon_install_signals();
	r = setup(&d);
	if (!r)
		r = run(&d);
	if (d.ctx) {
		print_stats(&d);
		daemon_sig_ctx = NULL;
		paste_close(&d.ctx);
	}
	free(d.arena);
	free(d.big);
	if (!r)
		printf("paste-kv: clean shutdown\n");
	return r;
}
