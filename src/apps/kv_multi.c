/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_multi.c - MULTI, EXEC, DISCARD, WATCH, UNWATCH, and dispatch(): every request passes here
 * so that a connection in MULTI queues it instead of running it.
 *
 * Queued requests are kept as RESP in memory (the received bytes are consumed as usual) and run
 * back to back by EXEC, with nothing else in between (one thread). All their writes are flushed
 * in EXEC's round and made durable by that round's one fence, before EXEC's reply leaves: an
 * acknowledged EXEC is durable whole. A crash during EXEC's round (before its reply) can leave
 * any prefix of its writes durable (each write is atomic on its own); the client saw no reply.
 *
 * WATCH remembers stored keys; touch_key() (every write of a key) marks the clients watching it,
 * and EXEC of a marked client replies a null array. A watched key that expires before EXEC also
 * aborts it (as Redis 7.0).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

struct watch {
	struct kconn *kc;
	uint8_t *key;
	uint32_t n;
	bool existed; /* for the expiry check at EXEC */
};

void touch_key(struct kvd *d, const uint8_t *k, size_t n)
{
	for (size_t i = 0; i < d->nwatches; i++)
		if (d->watches[i].n == n && !memcmp(d->watches[i].key, k, n))
			d->watches[i].kc->dirty = true;
}

/* FLUSHALL/FLUSHDB: the watchers of keys that exist now are touched. */
void touch_all(struct kvd *d)
{
	for (size_t i = 0; i < d->nwatches; i++) {
		struct str k = {.p = d->watches[i].key, .n = d->watches[i].n};
		struct paste_ref v;

		if (lookup(d, &k, &v) == 0)
			d->watches[i].kc->dirty = true;
	}
}

static void unwatch(struct kconn *kc)
{
	struct kvd *d = kc->d;
	size_t w = 0;

	for (size_t i = 0; i < d->nwatches; i++) {
		if (d->watches[i].kc == kc)
			free(d->watches[i].key);
		else
			d->watches[w++] = d->watches[i];
	}
	d->nwatches = w;
	kc->nwatch = 0;
	kc->dirty = false;
}

static void multi_reset(struct kconn *kc)
{
	kc->multi = kc->multi_err = false;
	kc->mq_len = 0;
	kc->mq_n = 0;
}

void multi_free(struct kvd *d, struct kconn *kc)
{
	(void)d;
	unwatch(kc);
	free(kc->mq);
	kc->mq = NULL;
	kc->mq_cap = 0;
	multi_reset(kc);
}

static int mq_add(struct kconn *kc, const void *p, size_t n)
{
	if (kc->mq_len + n > kc->mq_cap) {
		size_t cap = kc->mq_cap ? kc->mq_cap : 1024;
		uint8_t *v;

		while (cap < kc->mq_len + n)
			cap *= 2;
		v = realloc(kc->mq, cap);
		if (!v)
			return -ENOMEM;
		kc->mq = v;
		kc->mq_cap = cap;
	}
	memcpy(kc->mq + kc->mq_len, p, n);
	kc->mq_len += n;
	return 0;
}

/* Queue the request as RESP (inline requests are re-encoded). */
static int queue(struct req *r)
{
	struct kconn *kc = r->kc;
	char h[RESP_HDR_MAX];

	if (mq_add(kc, h, resp_fmt_hdr(h, '*', r->cmd->argc)))
		return -ENOMEM;
	for (unsigned i = 0; i < r->cmd->argc; i++) {
		const uint8_t *a = arg(r, i);

		if (!a || mq_add(kc, h, resp_fmt_hdr(h, '$', arg_len(r, i))) ||
		    mq_add(kc, a, arg_len(r, i)) || mq_add(kc, "\r\n", 2))
			return -ENOMEM;
	}
	kc->mq_n++;
	return out_str(kc, "+QUEUED\r\n");
}

int cmd_multi(struct req *r)
{
	if (r->kc->multi)
		return out_err(r->kc, "ERR MULTI calls can not be nested");
	multi_reset(r->kc);
	r->kc->multi = true;
	return out_str(r->kc, "+OK\r\n");
}

/* Drop the transaction without a reply (cluster mode's -CROSSSLOT at EXEC). */
void multi_abort(struct kconn *kc)
{
	multi_reset(kc);
	unwatch(kc);
}

int cmd_discard(struct req *r)
{
	if (!r->kc->multi)
		return out_err(r->kc, "ERR DISCARD without MULTI");
	multi_reset(r->kc);
	unwatch(r->kc);
	return out_str(r->kc, "+OK\r\n");
}

/* A watched key that existed at WATCH and has expired since aborts EXEC. */
static bool watched_expired(struct kvd *d, struct kconn *kc)
{
	for (size_t i = 0; i < d->nwatches; i++) {
		struct str k = {.p = d->watches[i].key, .n = d->watches[i].n};
		uint64_t dl;

		if (d->watches[i].kc != kc || !d->watches[i].existed)
			continue;
		dl = ttl_get(d, &k);
		if (dl && dl <= d->now_ms)
			return true;
	}
	return false;
}

int cmd_exec(struct req *r)
{
	struct kconn *kc = r->kc;
	struct resp_parser p;
	struct resp_seg seg;
	struct resp_buf b;
	size_t base = 0;
	int err = 0;

	if (!kc->multi)
		return out_err(kc, "ERR EXEC without MULTI");
	if (kc->multi_err) {
		multi_reset(kc);
		unwatch(kc);
		return out_str(kc,
		               "-EXECABORT Transaction discarded because of previous errors.\r\n");
	}
	if (kc->dirty || watched_expired(r->d, kc)) {
		multi_reset(kc);
		unwatch(kc);
		return out_str(kc, "*-1\r\n");
	}
	unwatch(kc);
	kc->multi = false;
	if (out_hdr(kc, '*', kc->mq_n) ||
	    resp_parser_init(&p, &(struct resp_limits){.max_bulk = UINT32_MAX,
	                                               .max_arg = UINT32_MAX,
	                                               .max_request = UINT32_MAX}))
		return -ENOMEM;
	seg = (struct resp_seg){.p = kc->mq, .len = kc->mq_len};
	resp_buf_init(&b, &seg, 1);
	tx_begin(r->d); /* crash-atomic as a whole through the undo log (kv_tx.c) */
	for (unsigned i = 0; i < kc->mq_n && !err; i++) {
		struct resp_cmd cmd;
		struct req q = {
		    .d = r->d, .kc = kc, .b = &b, .base = base, .cmd = &cmd, .queued = true};

		if (resp_parse(&p, &b, base, &cmd) != RESP_CMD) {
			err = out_err(kc, "ERR queued request unreadable");
			break;
		}
		arena_reset(r->d);
		execute(&q);
		base += cmd.len;
	}
	tx_end(r->d);
	resp_parser_free(&p);
	multi_reset(kc);
	return err;
}

int cmd_watch(struct req *r)
{
	struct kconn *kc = r->kc;

	if (kc->multi)
		return out_err(kc, "ERR WATCH inside MULTI is not allowed");
	for (unsigned i = 1; i < r->cmd->argc; i++) {
		struct paste_ref v;
		struct str k;
		uint8_t *copy;

		arena_reset(r->d);
		if (arg_key(r, i, &k))
			return -ENOMEM;
		if (r->d->nwatches == r->d->watches_cap) {
			size_t cap = r->d->watches_cap ? r->d->watches_cap * 2 : 16;
			struct watch *nv = realloc(r->d->watches, cap * sizeof(*nv));

			if (!nv)
				return out_err(kc, "ERR out of memory");
			r->d->watches = nv;
			r->d->watches_cap = cap;
		}
		copy = malloc(k.n);
		if (!copy)
			return out_err(kc, "ERR out of memory");
		memcpy(copy, k.p, k.n);
		r->d->watches[r->d->nwatches++] = (struct watch){
		    .kc = kc, .key = copy, .n = k.n, .existed = lookup(r->d, &k, &v) == 0};
		kc->nwatch++;
	}
	return out_str(kc, "+OK\r\n");
}

int cmd_unwatch(struct req *r)
{
	unwatch(r->kc);
	return out_str(r->kc, "+OK\r\n");
}

/* Run a request, or queue it while the connection is in MULTI. */
int dispatch(struct req *r)
{
	const uint8_t *name = arg(r, 0);
	size_t n = arg_len(r, 0);
	const struct command *c;

	r->d->st.cmds++;
	if (r->d->cl && cluster_redirect(r))
		return 0; /* another node's keys, or keys of several slots: answered */
	if (!r->kc->multi || !name)
		return execute(r);
	c = find_command(name, n);
	if (c &&
	    (command_fn(c) == cmd_exec || command_fn(c) == cmd_discard ||
	     command_fn(c) == cmd_multi || command_fn(c) == cmd_watch || command_fn(c) == cmd_quit))
		return execute(r);
	if (!c || !arity_ok(c, r->cmd->argc)) {
		r->kc->multi_err = true;
		return execute(r); /* replies the error */
	}
	if (c->flags & F_NOMULTI) { /* SAVE, SHUTDOWN, ...: Redis refuses them in MULTI */
		r->kc->multi_err = true;
		return out_err(r->kc, "ERR Command not allowed inside a transaction");
	}
	return queue(r);
}
