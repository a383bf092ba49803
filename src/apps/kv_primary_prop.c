/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_primary_prop.c - what a write puts in the replication stream (kv_primary.c).
 *
 * execute() calls kv_primary_before() and kv_primary_after() around every command. A write
 * command whose reply is not an error is propagated as the command it was (its arguments as RESP,
 * read from the received bytes), after a SELECT when its database is not the stream's, between
 * MULTI and EXEC when EXEC ran it. Commands whose effect depends on the clock or on chance are
 * rewritten into what they did, as Redis rewrites them: relative expiries become absolute
 * (SET EX/PX and SETEX/PSETEX -> SET ... PXAT, EXPIRE/PEXPIRE -> PEXPIREAT, GETEX -> PEXPIREAT or
 * PERSIST), INCRBYFLOAT -> SET ... KEEPTTL, HINCRBYFLOAT -> HSET, SPOP -> SREM of the members it
 * popped (read back from its reply). A key that expires on the primary (lazily or actively) is
 * propagated as DEL, before the command that found it expired. Replies to a replica's own
 * commands are discarded: its connection carries the stream.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "kv_primary.h"

/* ---- the reply a command queued ------------------------------------------------------------- */

void kv_primary_before(struct req *r, const struct command *cmd, struct kv_pmark *m)
{
	struct kconn *kc = r->kc;

	kv_psnap_cow(r, cmd); /* a snapshot being written gets the keys it names first */
	m->rel = kc->q.n;
	m->ob_len = kc->q.buf_len;
	m->last = kc->q.n ? daemon_replyq_at(&kc->q, kc->q.n - 1)->len : 0;
	m->reply = NULL;
	m->reply_len = 0;
}

/* Call @fn on each run of reply bytes queued since @m, in order, until it returns non-zero. */
static int reply_walk(struct kconn *kc, const struct kv_pmark *m,
                      int (*fn)(const uint8_t *p, size_t n, void *arg), void *arg)
{
	size_t i = m->rel;
	int r;

	if (i && i <= kc->q.n) { /* the last item before the command may have grown */
		const struct daemon_rseg *it = daemon_replyq_at(&kc->q, i - 1);

		if (it->kind == RSEG_COPY && it->len > m->last &&
		    (r = fn(kc->q.buf + it->off + m->last, it->len - m->last, arg)))
			return r;
	}
	for (; i < kc->q.n; i++) {
		const struct daemon_rseg *it = daemon_replyq_at(&kc->q, i);

		r = fn(daemon_replyq_bytes(&kc->q, it), it->len, arg);
		if (r)
			return r;
	}
	return 0;
}

static int first_fn(const uint8_t *p, size_t n, void *arg)
{
	if (!n)
		return 0;
	*(uint8_t *)arg = p[0];
	return 1;
}

static int gather_fn(const uint8_t *p, size_t n, void *arg)
{
	return kv_rbuf_add(arg, p, n) ? -1 : 0;
}

/* Drop what the command queued (a replica's connection carries only the stream). */
static void reply_discard(struct kconn *kc, const struct kv_pmark *m)
{
	size_t drop = 0;

	if (m->rel > kc->q.n)
		return;
	if (m->rel) {
		struct daemon_rseg *it = daemon_replyq_at(&kc->q, m->rel - 1);

		if (it->kind == RSEG_COPY && it->len > m->last) {
			drop += it->len - m->last;
			it->len = m->last;
		}
	}
	for (size_t i = m->rel; i < kc->q.n; i++)
		drop += daemon_replyq_at(&kc->q, i)->len;
	kc->q.n = m->rel;
	if (!kc->q.n)
		kc->q.head = 0;
	kc->q.buf_len = m->ob_len;
	kc->q.queued -= drop;
}

/* Parse bulk strings of a reply: "$n\r\n<n bytes>\r\n" or "*k\r\n" then k of them. Calls @fn. */
static int reply_bulks(const uint8_t *p, size_t n, int (*fn)(const uint8_t *, size_t, void *),
                       void *arg)
{
	size_t at = 0;
	long k = 1;

	if (n && p[0] == '*') {
		k = strtol((const char *)p + 1, NULL, 10);
		while (at < n && p[at] != '\n')
			at++;
		at++;
	}
	for (; k > 0 && at < n; k--) {
		long len;

		if (p[at] != '$')
			return -EINVAL;
		len = strtol((const char *)p + at + 1, NULL, 10);
		while (at < n && p[at] != '\n')
			at++;
		at++;
		if (len < 0 || at + (size_t)len > n)
			return -EINVAL;
		if (fn(p + at, (size_t)len, arg))
			return -ENOMEM;
		at += (size_t)len + 2;
	}
	return 0;
}

/* ---- building the propagated command --------------------------------------------------------- */

struct out_cmd {
	struct kv_rbuf b;
	unsigned n;
	int err;
};

static int add_bytes(const uint8_t *p, size_t n, void *arg)
{
	struct out_cmd *o = arg;
	char h[32];

	if (kv_rbuf_add(&o->b, h, (size_t)snprintf(h, sizeof(h), "$%zu\r\n", n)) ||
	    kv_rbuf_add(&o->b, p, n) || kv_rbuf_add(&o->b, "\r\n", 2))
		o->err = -ENOMEM;
	o->n++;
	return o->err;
}

static void add_word(struct out_cmd *o, const char *w)
{
	add_bytes((const uint8_t *)w, strlen(w), o);
}

static void add_num(struct out_cmd *o, int64_t v)
{
	char num[24];

	add_bytes((const uint8_t *)num, (size_t)snprintf(num, sizeof(num), "%" PRId64, v), o);
}

/* Argument @i of the request, copied from where it was received. */
static void add_arg(struct req *r, struct out_cmd *o, unsigned i)
{
	uint32_t n = arg_len(r, i);
	char h[32];

	if (kv_rbuf_add(&o->b, h, (size_t)snprintf(h, sizeof(h), "$%u\r\n", n)) ||
	    kv_rbuf_add(&o->b, NULL, n)) {
		o->err = -ENOMEM;
		return;
	}
	if (r->cmd->inl)
		memcpy(o->b.p + o->b.len - n, r->kc->rp.line + r->cmd->argv[i].off, n);
	else
		resp_buf_copy(r->b, r->base + r->cmd->argv[i].off, n, o->b.p + o->b.len - n);
	if (kv_rbuf_add(&o->b, "\r\n", 2))
		o->err = -ENOMEM;
	o->n++;
}

static void add_args(struct req *r, struct out_cmd *o, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to && !o->err; i++)
		add_arg(r, o, i);
}

/* Absolute Unix ms for a relative "@unit_ms * argument @i" (the clock the command used). */
static bool abs_ms(struct req *r, unsigned i, int64_t unit_ms, int64_t *at)
{
	int64_t v;

	if (!arg_ll(r, i, &v))
		return false;
	*at = (int64_t)r->d->now_ms + v * unit_ms;
	return true;
}

/* SET key value [EX s|PX ms|...]: relative expiries become PXAT. */
static void prop_set(struct req *r, struct out_cmd *o)
{
	add_args(r, o, 0, 3);
	for (unsigned i = 3; i < r->cmd->argc && !o->err; i++) {
		bool ex = arg_is(r, i, "EX"), px = arg_is(r, i, "PX");
		int64_t at;

		if ((ex || px) && i + 1 < r->cmd->argc && abs_ms(r, i + 1, ex ? 1000 : 1, &at)) {
			add_word(o, "PXAT");
			add_num(o, at);
			i++;
		} else {
			add_arg(r, o, i);
		}
	}
}

/* SETEX key s value, PSETEX key ms value -> SET key value PXAT at. */
static void prop_setex(struct req *r, struct out_cmd *o, int64_t unit)
{
	int64_t at = 0;

	abs_ms(r, 2, unit, &at);
	add_word(o, "SET");
	add_arg(r, o, 1);
	add_arg(r, o, 3);
	add_word(o, "PXAT");
	add_num(o, at);
}

/* EXPIRE key s [flag], PEXPIRE key ms [flag] -> PEXPIREAT key at [flag] (when it did set). */
static void prop_expire(struct req *r, struct out_cmd *o, int64_t unit, uint8_t first)
{
	int64_t at = 0;

	if (first != ':' || !abs_ms(r, 2, unit, &at))
		return;
	add_word(o, "PEXPIREAT");
	add_arg(r, o, 1);
	add_num(o, at);
	add_args(r, o, 3, r->cmd->argc);
}

/* GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST] -> PEXPIREAT key at, or PERSIST key. */
static void prop_getex(struct req *r, struct out_cmd *o, const struct kv_pmark *m)
{
	int64_t at;

	if (r->cmd->argc < 3 || (m->reply_len >= 3 && !memcmp(m->reply, "$-1", 3)))
		return; /* no option, or no key: nothing changed */
	if (arg_is(r, 2, "PERSIST")) {
		add_word(o, "PERSIST");
		add_arg(r, o, 1);
		return;
	}
	if (r->cmd->argc < 4)
		return;
	if (arg_is(r, 2, "EX") || arg_is(r, 2, "PX")) {
		if (!abs_ms(r, 3, arg_is(r, 2, "EX") ? 1000 : 1, &at))
			return;
	} else if (arg_ll(r, 3, &at)) {
		at = arg_is(r, 2, "EXAT") ? at * 1000 : at;
	} else {
		return;
	}
	add_word(o, "PEXPIREAT");
	add_arg(r, o, 1);
	add_num(o, at);
}

static int srem_member(const uint8_t *p, size_t n, void *arg)
{
	return add_bytes(p, n, arg);
}

/* What the command did, as the command to send (o->n == 0: nothing to send). */
static void rewrite(struct req *r, const struct command *cmd, struct kv_pmark *m, uint8_t first,
                    struct out_cmd *o)
{
	int (*fn)(struct req *) = command_fn(cmd);
	bool need_reply =
	    fn == cmd_getex || fn == cmd_incrbyfloat || fn == cmd_hincrbyfloat || fn == cmd_spop;

	if (need_reply) {
		struct kv_rbuf b = {0};

		if (reply_walk(r->kc, m, gather_fn, &b) < 0) {
			free(b.p);
			o->err = -ENOMEM;
			return;
		}
		m->reply = b.p;
		m->reply_len = b.len;
	}
	if (fn == cmd_set)
		prop_set(r, o);
	else if (fn == cmd_setex || fn == cmd_psetex)
		prop_setex(r, o, fn == cmd_setex ? 1000 : 1);
	else if (fn == cmd_expire || fn == cmd_pexpire)
		prop_expire(r, o, fn == cmd_expire ? 1000 : 1, first);
	else if (fn == cmd_getex)
		prop_getex(r, o, m);
	else if (fn == cmd_incrbyfloat || fn == cmd_hincrbyfloat) {
		struct out_cmd v = {0};

		/* the new value is the reply's bulk */
		if (reply_bulks(m->reply, m->reply_len, add_bytes, &v) == 0 && v.n == 1) {
			add_word(o, fn == cmd_incrbyfloat ? "SET" : "HSET");
			add_args(r, o, 1, fn == cmd_incrbyfloat ? 2 : 3);
			if (!o->err && kv_rbuf_add(&o->b, v.b.p, v.b.len))
				o->err = -ENOMEM;
			o->n++;
			if (fn == cmd_incrbyfloat)
				add_word(o, "KEEPTTL");
		}
		free(v.b.p);
	} else if (fn == cmd_spop) {
		add_word(o, "SREM");
		add_arg(r, o, 1);
		if (reply_bulks(m->reply, m->reply_len, srem_member, o) || o->n < 3)
			o->n = 0; /* nothing popped */
	} else {
		add_args(r, o, 0, r->cmd->argc);
	}
}

static int emit_cmd(struct kvd *d, const struct out_cmd *o)
{
	char h[24];

	return kv_primary_emit(d, h, (size_t)snprintf(h, sizeof(h), "*%u\r\n", o->n)) ||
	       kv_primary_emit(d, o->b.p, o->b.len);
}

void kv_primary_after(struct req *r, const struct command *cmd, struct kv_pmark *m)
{
	struct kvd *d = r->d;
	int (*fn)(struct req *) = command_fn(cmd);
	struct out_cmd o = {0};
	uint8_t first = 0;
	bool *in_multi;

	if (kv_primary_is_replica(r->kc) && fn != cmd_psync && fn != cmd_sync &&
	    fn != cmd_replconf) { /* REPLCONF never replies to a replica (and may queue stream) */
		reply_discard(r->kc, m);
		return;
	}
	if (!kv_primary_active(d, &in_multi))
		return;
	if (fn == cmd_exec) {
		if (*in_multi)
			kv_primary_emit(d, "*1\r\n$4\r\nEXEC\r\n", 14);
		*in_multi = false;
		return;
	}
	if (!(cmd->flags & F_WRITE))
		return;
	reply_walk(r->kc, m, first_fn, &first);
	if (first == '-')
		return; /* refused: nothing changed */
	rewrite(r, cmd, m, first, &o);
	if (!o.err && o.n) {
		kv_primary_select(d, r->kc->db);
		if (r->queued && !*in_multi) {
			kv_primary_emit(d, "*1\r\n$5\r\nMULTI\r\n", 15);
			*in_multi = true;
		}
		emit_cmd(d, &o);
		r->kc->woff = kv_primary_offset(d);
	} else if (o.err) {
		fprintf(stderr, "paste-kv: out of memory propagating '%s' to the replicas\n",
		        cmd->name);
	}
	free(o.b.p);
	free(m->reply);
	m->reply = NULL;
}

/* A key of the stored form @k (its last byte the database tag) expires: DEL on the replicas.
 * Called before it is deleted. */
void kv_primary_expired(struct kvd *d, const uint8_t *k, size_t n)
{
	struct out_cmd o = {0};
	uint8_t tag;

	if (!n || !kv_primary_active(d, NULL))
		return;
	kv_psnap_key(d, k, n); /* a snapshot being written gets it first */
	tag = k[n - 1];
	kv_primary_select(d, tag == '\r' ? 0 : tag - 0x80);
	add_word(&o, "DEL");
	add_bytes(k, n - 1, &o);
	if (!o.err)
		emit_cmd(d, &o);
	free(o.b.p);
}
