/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_multi_route.c - paste-kv --queues: where a request runs (its key's worker), forwarding it,
 * and a connection's requests in flight, whose replies leave in request order. The shared slots,
 * the owner's side and the tick are in kv_multi_worker.c; docs/multicore.md has the rules.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "kv_multi_worker.h"
#include "kv_multi_worker_int.h"

/* ---- routing --------------------------------------------------------------------------------- */

/* The one owner of the request's keys: >= 0, -1 (no keys), -2 (several owners), -3 (no
 * memory). */
static int req_owner(const struct mw *m, struct req *r, const struct command *c)
{
	int argc = (int)r->cmd->argc, step = c->step > 0 ? c->step : 1, last, o = -1;

	if (c->first <= 0)
		return -1;
	last = c->last < 0 ? argc + c->last : c->last;
	if (last >= argc)
		last = argc - 1;
	for (int i = c->first; i <= last; i += step) {
		const uint8_t *k = arg(r, (unsigned)i);
		int ko;

		if (!k)
			return -3;
		ko = (int)kvmw_owner(k, arg_len(r, (unsigned)i), m->n);
		if (o >= 0 && ko != o)
			return -2;
		o = ko;
	}
	return o;
}

static struct mw_wait *wait_of(struct paste_conn *c, struct kconn *kc)
{
	struct mw_wait *w = kc->mw;

	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return NULL;
		w->txn_owner = -1;
		kc->mw = w;
	}
	w->c = c;
	w->kc = kc;
	return w;
}

bool kvmw_stalled(const struct kconn *kc)
{
	const struct mw_wait *w = kc->mw;

	return w && w->stalled;
}

bool kvmw_pending(const struct kconn *kc)
{
	const struct mw_wait *w = kc->mw;

	return w && (w->stalled || w->n);
}

static void list(struct mw *m, struct mw_wait *w)
{
	if (w->listed)
		return;
	if (m->nwaits == m->waits_cap) {
		unsigned cap = m->waits_cap ? m->waits_cap * 2 : 64;
		struct mw_wait **v = realloc(m->waits, cap * sizeof(*v));

		if (!v)
			return; /* (then it is served again only when data arrives) */
		m->waits = v;
		m->waits_cap = cap;
	}
	w->listed = true;
	m->waits[m->nwaits++] = w;
}

void mw_unlist(struct mw *m, struct mw_wait *w)
{
	for (unsigned j = 0; w->listed && j < m->nwaits; j++)
		if (m->waits[j] == w) {
			m->waits[j] = m->waits[--m->nwaits];
			w->listed = false;
		}
}

/* The request waits, unconsumed, until the flight lands or a slot frees up. */
static int stall(struct mw *m, struct mw_wait *w)
{
	w->stalled = true;
	list(m, w);
	return KVMW_LATER;
}

/* The request was answered here (an error): it must not run. No memory for the answer: close. */
static int answered(struct kconn *kc, int err)
{
	if (err)
		kc->quit = true;
	return KVMW_DONE;
}

static int crossslot(struct mw *m, struct kconn *kc, const char *what)
{
	m->shm->pub[m->me].crossslot++;
	return answered(kc, out_err(kc,
	                            "CROSSSLOT %s on more than one worker (paste-kv --queues %u "
	                            "shards keys by hash; put related keys on one worker with a "
	                            "{hash tag})",
	                            what, m->n));
}

/* The slot of our next request toward @o (a ring: ticket modulo slots) if it is free, or -1.
 * Only we move our slots out of FREE (and back). */
static int free_slot(struct mw *m, unsigned o)
{
	unsigned i = (unsigned)((m->last[o] + 1) % m->slots);

	return !m->busy[o][i] && ld(&slot(m, m->me, o, i)->state) == S_FREE ? (int)i : -1;
}

/* An inline request is forwarded as RESP: its length so, and the copy with its argv table. */
static size_t inline_len(struct req *r)
{
	char h[RESP_HDR_MAX];
	size_t n = resp_fmt_hdr(h, '*', r->cmd->argc);

	for (unsigned i = 0; i < r->cmd->argc; i++)
		n += resp_fmt_hdr(h, '$', arg_len(r, i)) + arg_len(r, i) + 2;
	return n;
}

static void inline_copy(struct req *r, uint8_t *dst, struct resp_arg *av)
{
	uint8_t *p = dst + resp_fmt_hdr((char *)dst, '*', r->cmd->argc);

	for (unsigned i = 0; i < r->cmd->argc; i++) {
		struct resp_arg a = {.len = arg_len(r, i)};

		p += resp_fmt_hdr((char *)p, '$', a.len);
		a.off = (uint32_t)(p - dst);
		memcpy(av + i, &a, sizeof(a));
		memcpy(p, arg(r, i), a.len);
		p += a.len;
		memcpy(p, "\r\n", 2);
		p += 2;
	}
}

/* Fill slot @x with @r: the parsed request (argv table, then its bytes), or the MULTI block. */
static void fill(struct mw *m, struct mw_slot *x, struct req *r, const struct command *cmd,
                 size_t len)
{
	struct kconn *kc = r->kc;
	uint32_t argc = r->cmd ? r->cmd->argc : 0;
	uint8_t *dst = sreq(m, x, argc, (uint32_t)len);
	size_t tab = (size_t)argc * sizeof(struct resp_arg);

	if (!r->cmd) { /* the connection's MULTI block */
		memcpy(dst, kc->mq, len);
		x->kind = K_TXN;
		x->nq = kc->mq_n;
		x->command = 0;
	} else {
		if (r->cmd->inl)
			inline_copy(r, dst + tab, (struct resp_arg *)dst);
		else {
			memcpy(dst, r->cmd->argv, tab);
			resp_buf_copy(r->b, r->base, len, dst + tab);
		}
		x->kind = K_ONE;
		x->nq = 1;
		x->command = (uint32_t)command_index(cmd) + 1;
	}
	x->argc = argc;
	x->len = (uint32_t)len;
	x->db = (uint32_t)kc->db;
}

/*
 * Forward the request's bytes (@r->cmd NULL: the connection's MULTI block) to the workers in
 * @owners, after what the connection has in flight. @mode M_ONE: one reply in order; else one
 * request to every worker, replies combined (nothing else in flight then).
 */
static int forward(struct mw *m, struct req *r, struct paste_conn *c, const struct command *cmd,
                   const unsigned *owners, unsigned k, int mode)
{
	struct kconn *kc = r->kc;
	struct mw_wait *w = wait_of(c, kc);
	bool txn = r->cmd == NULL;
	size_t len = txn ? kc->mq_len : r->cmd->inl ? inline_len(r) : r->cmd->len;
	size_t tab = txn ? 0 : (size_t)r->cmd->argc * sizeof(struct resp_arg);
	int idx[KVMW_MAX];

	if (!w)
		return answered(kc, out_err(kc, "ERR out of memory"));
	if (len + tab > KVMW_BUF) {
		if (w->n)
			return stall(m, w); /* the error must not overtake the replies in flight */
		return answered(kc,
		                out_err(kc,
		                        "ERR request of %zu bytes (%u arguments) too large to "
		                        "forward to the key's worker (paste-kv --queues: at most "
		                        "%u bytes with 8 per argument)",
		                        len, txn ? 0 : r->cmd->argc, KVMW_BUF));
	}
	if (w->n + k > KVMW_DEPTH)
		return stall(m, w);
	for (unsigned j = 0; j < k; j++) {
		idx[j] = free_slot(m, owners[j]);
		if (idx[j] < 0) {
			while (j--)
				m->busy[owners[j]][idx[j]] = false;
			return stall(m, w);
		}
		m->busy[owners[j]][idx[j]] = true;
	}
	w->mode = mode;
	if (!w->n) {
		w->failed = false;
		w->sum = 0;
		w->acc_len = 0;
	}
	for (unsigned j = 0; j < k; j++) {
		struct mw_slot *x = slot(m, m->me, owners[j], (unsigned)idx[j]);

		fill(m, x, r, cmd, len);
		x->ticket = ++m->last[owners[j]]; /* posted (published at the end of the tick) */
		st(&x->state, S_REQ);
		w->q[(w->head + w->n++) % KVMW_DEPTH] =
		    (struct mw_ent){.o = (uint8_t)owners[j], .i = (uint8_t)idx[j]};
		m->shm->pub[m->me].forwarded++;
		mw_kill_point(MW_KILL_POSTED);
	}
	list(m, w);
	return KVMW_SENT;
}

/* Grow *@buf (*@cap bytes) to hold at least @need bytes: 0 or -ENOMEM (*@buf unchanged). */
static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 4096;
	uint8_t *v;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	v = realloc(*buf, c);
	if (!v)
		return -ENOMEM;
	*buf = v;
	*cap = c;
	return 0;
}

/*
 * A request for a key of ours while the connection has requests in flight: run it now (its key
 * is not one of theirs, so no order between them matters) but hold its reply back until theirs
 * have left: the output it queued is taken off the connection into the flight.
 */
static int run_held(struct mw *m, struct req *r, struct paste_conn *c)
{
	struct kconn *kc = r->kc;
	struct mw_wait *w = wait_of(c, kc);
	size_t old_n = kc->q.n, ob_len = kc->q.buf_len, queued = kc->q.queued, off = 0;
	uint32_t last_len = old_n ? daemon_replyq_at(&kc->q, old_n - 1)->len : 0;
	struct mw_ent *e;
	uint8_t *buf;

	if (!w || w->n >= KVMW_DEPTH)
		return w ? stall(m, w) : KVMW_HERE;
	dispatch(r);
	if (grow(&w->hold, &w->hold_cap, w->hold_len + kc->q.queued - queued)) {
		/* cannot hold it back: fail the connection rather than reorder */
		out_drop(r->d, kc);
		kc->quit = true;
		return KVMW_DONE;
	}
	buf = w->hold + w->hold_len;
	if (old_n) { /* out() may have grown the last item */
		struct daemon_rseg *it = daemon_replyq_at(&kc->q, old_n - 1);

		if (it->kind == RSEG_COPY && it->len > last_len) {
			memcpy(buf, kc->q.buf + it->off + last_len, it->len - last_len);
			off = it->len - last_len;
			it->len = last_len;
		}
	}
	for (size_t j = old_n; j < kc->q.n; j++) {
		const struct daemon_rseg *it = daemon_replyq_at(&kc->q, j);

		memcpy(buf + off, daemon_replyq_bytes(&kc->q, it), it->len);
		off += it->len;
	}
	kc->q.n = old_n;
	kc->q.buf_len = ob_len;
	kc->q.queued = queued;
	e = &w->q[(w->head + w->n++) % KVMW_DEPTH];
	*e = (struct mw_ent){.here = true, .len = (uint32_t)off, .off = w->hold_len};
	w->hold_len += off;
	list(m, w);
	return KVMW_DONE;
}

/* EXEC of a MULTI whose keys are all on one other worker: the whole block runs there. */
static int forward_exec(struct mw *m, struct req *r, struct paste_conn *c, struct mw_wait *w)
{
	struct kconn *kc = r->kc;
	unsigned to = (unsigned)w->txn_owner;
	int res;

	if (w->txn_owner < 0 || to == m->me)
		return KVMW_HERE;
	if (kc->nwatch) { /* the watched keys are here, the transaction's are not */
		kc->multi_err = true;
		return crossslot(m, kc, "WATCH keys and the transaction's keys are");
	} /* (EXEC then answers EXECABORT) */
	res = forward(m, &(struct req){.d = r->d, .kc = kc}, c, NULL, &to, 1, M_ONE);
	if (res == KVMW_SENT) { /* as EXEC would: the block is gone from here */
		kc->multi = kc->multi_err = false;
		kc->mq_len = 0;
		kc->mq_n = 0;
	}
	return res;
}

/* A command without keys: every worker's (fan-out), refused, or here. */
static int route_keyless(struct mw *m, struct req *r, struct paste_conn *c,
                         const struct command *cmd)
{
	int (*fn)(struct req *) = command_fn(cmd);
	int mode = fn == cmd_flushall || fn == cmd_flushdb ? M_OK
	           : fn == cmd_dbsize                      ? M_SUM
	           : fn == cmd_keys                        ? M_KEYS
	                                                   : -1;
	unsigned all[KVMW_MAX];

	if (fn == cmd_scan || fn == cmd_randomkey)
		return answered(r->kc, out_err(r->kc,
		                               "ERR %s is not supported with --queues (keys are "
		                               "sharded over %u workers; KEYS is)",
		                               cmd->name, m->n));
	if (mode < 0)
		return KVMW_HERE;
	if (r->kc->multi) {
		struct mw_wait *w = wait_of(c, r->kc);

		if (w)
			w->txn_owner = -2;
		r->kc->multi_err = true;
		return crossslot(m, r->kc,
		                 "a command of every worker's keys queued in a MULTI: keys");
	}
	for (unsigned k = 0; k < m->n; k++)
		all[k] = k;
	return forward(m, r, c, cmd, all, m->n, mode);
}

/*
 * Before a request runs (serve()): here, forwarded, or answered. @return KVMW_HERE (run it
 * here), KVMW_DONE (answered: an error), KVMW_SENT (forwarded: serve on), KVMW_LATER (leave it
 * unconsumed and stop serving the connection: it runs once what is in flight has landed, or a
 * slot is free).
 */
int kvmw_route(struct req *r, struct paste_conn *c)
{
	struct mw *m = r->d->mw;
	struct kconn *kc = r->kc;
	struct mw_wait *w = kc->mw;
	bool flying = w && w->n;
	const struct command *cmd;
	const uint8_t *name;
	int o;

	if (!m || m->n < 2 || !(name = arg(r, 0)) || !(cmd = find_command(name, arg_len(r, 0))) ||
	    !arity_ok(cmd, r->cmd->argc))
		return flying ? stall(m, w) : KVMW_HERE; /* unknown or bad: the usual error */
	r->found = cmd;                                  /* (execute() does not look it up again) */
	if (flying && (w->mode != M_ONE || cmd->first <= 0 || kc->multi))
		return stall(m, w); /* only keyed requests may overtake nothing: in order */
	if (command_fn(cmd) == cmd_multi && !kc->multi && (w = wait_of(c, kc)))
		w->txn_owner = -1;
	if (command_fn(cmd) == cmd_exec && kc->multi && !kc->multi_err && kc->mw)
		return forward_exec(m, r, c, kc->mw);
	if (cmd->first <= 0)
		return route_keyless(m, r, c, cmd);
	o = req_owner(m, r, cmd);
	if (o == -3) /* (no memory to gather a key: do not guess where it lives) */
		return flying ? stall(m, w) : answered(kc, out_err(kc, "ERR out of memory"));
	if (o == -2) {
		if (flying)
			return stall(m, w);
		if (kc->multi)
			kc->multi_err = true;
		return crossslot(m, kc, "keys of one request are");
	}
	if (kc->multi && command_fn(cmd) != cmd_watch) {
		w = wait_of(c, kc);
		if (w && w->txn_owner == -1)
			w->txn_owner = o;
		else if (w && w->txn_owner != o) {
			w->txn_owner = -2;
			kc->multi_err = true;
			return crossslot(m, kc, "the transaction's keys are");
		}
		return KVMW_HERE; /* queued here; EXEC decides where the block runs */
	}
	if (command_fn(cmd) == cmd_watch) {
		if (flying)
			return stall(m, w);
		return (unsigned)o == m->me
		           ? KVMW_HERE
		           : crossslot(m, kc, "WATCH keys of another worker: keys");
	}
	if ((unsigned)o == m->me)
		return flying ? run_held(m, r, c) : KVMW_HERE;
	return forward(m, r, c, cmd, (unsigned[]){(unsigned)o}, 1, M_ONE);
}
/* ---- the sender's side ------------------------------------------------------------------- */

static int acc_add(struct mw_wait *w, const void *p, size_t n)
{
	if (grow(&w->acc, &w->acc_cap, w->acc_len + n))
		return -ENOMEM;
	memcpy(w->acc + w->acc_len, p, n);
	w->acc_len += n;
	return 0;
}

/* One reply of a fan-out: an error is kept (the first), else combined. */
static void combine(struct mw_wait *w, const uint8_t *p, size_t n)
{
	int64_t v = 0;
	const uint8_t *eol = n ? memchr(p, '\r', n) : NULL;

	if (!n || p[0] == '-' || !eol) {
		if (!w->failed) {
			w->failed = true;
			w->acc_len = 0;
			acc_add(w, n ? p : (const uint8_t *)"-ERR no reply\r\n", n ? n : 15);
		}
		return;
	}
	if (w->failed)
		return;
	if (w->mode == M_SUM || w->mode == M_KEYS)
		resp_parse_ll(p + 1, (size_t)(eol - p - 1), &v);
	w->sum += v;
	if (w->mode == M_KEYS)
		acc_add(w, eol + 2, n - (size_t)(eol + 2 - p));
}

/* The slot of flight entry @e is done with: free (unless LOST/DONE comes later: then orphan). */
static void fl_release(struct mw *m, struct mw_ent *e)
{
	struct mw_slot *x = slot(m, m->me, e->o, e->i);
	uint32_t s;

	if (e->here)
		return; /* (its bytes go with the flight: mw_land, kvmw_conn_closed) */
	s = ld(&x->state);
	m->busy[e->o][e->i] = false;
	if (s == S_DONE || s == S_LOST) {
		st(&x->state, S_FREE); /* else the orphan sweep frees it when its owner is done */
		m->freed = true;
	} else
		m->orphans++;
}

/*
 * Has @w's whole flight landed (every forwarded entry DONE), or one of it LOST? The tick hands
 * replies to a connection only then: a flight's replies leave together (one send, one TCP
 * segment) instead of one poll round and one segment per reply as they trickle in.
 */
bool mw_flight_ready(const struct mw *m, const struct mw_wait *w)
{
	for (unsigned j = 0; j < w->n; j++) {
		const struct mw_ent *e = &w->q[(w->head + j) % KVMW_DEPTH];
		uint32_t s;

		if (e->here)
			continue;
		s = ld(&slot(m, m->me, e->o, e->i)->state);
		if (s == S_LOST)
			return true; /* the connection is reset at once */
		if (s < S_DONE)
			return false;
	}
	return true;
}

/* Take what landed of @w's flight: replies in order (or, combined, all of them). @return true if
 * anything was taken. A LOST one (its owner died running it) resets the connection. */
bool mw_land(struct mw *m, struct mw_wait *w)
{
	bool took = false, lost = false;

	if (w->mode != M_ONE) { /* every worker's reply, combined */
		for (unsigned j = 0; j < w->n; j++) {
			const struct mw_ent *e = &w->q[(w->head + j) % KVMW_DEPTH];

			if (!e->here && ld(&slot(m, m->me, e->o, e->i)->state) < S_DONE)
				return false;
		}
	}
	while (w->n) {
		struct mw_ent *e = &w->q[w->head];
		struct mw_slot *x = slot(m, m->me, e->o, e->i);
		uint32_t s = e->here ? S_DONE : ld(&x->state);

		if (s < S_DONE)
			break;
		if (e->here) {
			if (out(w->kc, w->hold + e->off, e->len))
				w->kc->quit = true;
		} else if (s == S_LOST)
			lost = true;
		else if (w->mode != M_ONE)
			combine(w, srep(m, x, x->len), x->len);
		else if (out(w->kc, srep(m, x, x->len), x->len))
			w->kc->quit = true;
		fl_release(m, e);
		w->head = (w->head + 1) % KVMW_DEPTH;
		w->n--;
		took = true;
	}
	if (!w->n)
		w->hold_len = 0;
	if (lost && !w->kc->closing) {
		while (w->n) { /* the rest is dropped with the connection */
			fl_release(m, &w->q[w->head]);
			w->head = (w->head + 1) % KVMW_DEPTH;
			w->n--;
		}
		w->kc->closing = true;
		paste_conn__abort(w->c);
		return false;
	}
	if (took && !w->n && w->mode != M_ONE) {
		int err = w->failed         ? out(w->kc, w->acc, w->acc_len)
		          : w->mode == M_OK ? out_str(w->kc, "+OK\r\n")
		          : w->mode == M_SUM
		              ? out_hdr(w->kc, ':', w->sum)
		              : out_hdr(w->kc, '*', w->sum) || out(w->kc, w->acc, w->acc_len);

		if (err)
			w->kc->quit = true;
		w->mode = M_ONE;
	}
	return took;
}

/*
 * After every poll: publish the replies run before it (its fence made them durable), run the
 * requests that arrived (per sender in posting order), hand the replies that landed to their
 * connections and serve those on, retry the stalled ones.
 */
void kvmw_conn_closed(struct kconn *kc)
{
	struct mw *m = kvmw_m;
	struct mw_wait *w = kc->mw;

	if (!w)
		return;
	if (m) {
		while (w->n) {
			fl_release(m, &w->q[w->head]);
			w->head = (w->head + 1) % KVMW_DEPTH;
			w->n--;
		}
		mw_unlist(m, w);
	}
	free(w->acc);
	free(w->hold);
	free(w);
	kc->mw = NULL;
}

/* INFO: "# Workers", every worker's published counters. */
