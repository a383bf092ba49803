/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_multi_worker.c - paste-kv on N queues (--queues N): key-sharded workers that forward a
 * request to the key's owner through shared memory.
 *
 * Worker k owns the keys whose routing hash is k modulo N (the hash of the key's bytes, or of the
 * part between the first '{' and the next '}' when that is not empty: Redis Cluster's hash tags,
 * so related keys can be put on one worker). Each worker keeps its keys in its own index in its
 * own slice of the pool file, exactly as a single paste-kv does: only the owner ever reads or
 * writes a key, so per-key order is the owner's execution order and nothing in the pool is shared.
 *
 * A request for another worker's key is copied into a slot of the shared mapping (made by the
 * supervisor before it forks, so it outlives any one worker) and the connection stops reading
 * until the reply is back. The owner runs it on a stand-in connection between two of its polls,
 * copies the reply into the slot, and marks the slot DONE only after its next poll returned:
 * that poll's fence made the request's writes durable, so a forwarded +OK is as durable as a
 * local one. The receiving worker copies the reply to its client and serves the connection on.
 *
 * Slot states: FREE -> REQ (sender) -> RUN (owner) -> DONE (owner, after its fence) -> FREE
 * (sender). An owner that starts turns the slots its previous run left in RUN into LOST (it may
 * or may not have applied them): the sender resets the client's connection, as a crash of a
 * single server would. A sender that starts frees the DONE/LOST slots nobody waits for.
 *
 * Workers wake each other with SIGUSR2 (the poll returns EINTR); a missed signal costs at most
 * KVMW_IDLE_MS, the poll timeout while nothing else is due. docs/multicore.md ("paste-kv on N
 * queues") has the rules for multi-key commands, MULTI/EXEC and WATCH, and what this costs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kv.h"
#include "kv_multi_worker.h"

#define KVMW_SLOTS   16         /* per (sender, owner) pair */
#define KVMW_SLOT    (1u << 20) /* a slot: header, then the request, later the reply */
#define KVMW_IDLE_MS 5
#define KVMW_MAX     DAEMON_MAX_WORKERS

enum { S_FREE, S_REQ, S_RUN, S_DONE, S_LOST };
enum { K_ONE, K_TXN };                          /* one request; a MULTI block run by EXEC */
enum { M_ONE, M_OK, M_SUM, M_KEYS, M_BLOCKED }; /* how the replies of a wait combine */

struct mw_slot {
	uint32_t state, kind;
	uint32_t db, nq; /* the sender's SELECT; K_TXN: requests in the block */
	uint32_t len;    /* request bytes, then reply bytes */
	uint32_t pad;
	uint64_t ticket;
	uint8_t buf[KVMW_SLOT - 32];
};

/* Each worker's page: who runs it, and its counters (INFO's "# Workers"). */
struct mw_pub {
	uint64_t pid, starts, cmds, keys, forwarded, served, lost, crossslot, conns;
	uint8_t pad[128 - 9 * 8];
};

struct mw_shm {
	uint32_t n;
	uint32_t pad[31];
	struct mw_pub pub[KVMW_MAX];
	/* then n x n x KVMW_SLOTS slots, [sender][owner][i] */
};

/* A connection waiting for forwarded replies (or for a free slot: M_BLOCKED). */
struct mw_wait {
	struct paste_conn *c;
	struct kconn *kc;
	int mode;
	unsigned pending;
	bool failed; /* a reply was an error (M_OK, M_SUM: the first one is kept) */
	int64_t sum;
	uint8_t *acc; /* M_KEYS: the elements; M_OK/M_SUM: the first error */
	size_t acc_len, acc_cap;
	int txn_owner; /* MULTI: the one owner of the queued keys (-1 none yet, -2 several) */
};

struct mw {
	struct mw_shm *shm;
	size_t len;
	unsigned n, me;
	uint64_t ticket;
	struct mw_wait *waiter[KVMW_MAX][KVMW_SLOTS]; /* my outgoing slots */
	struct mw_slot *ran[KVMW_MAX * KVMW_SLOTS];   /* run since the last poll: not DONE yet */
	unsigned nran;
	struct mw_wait **blocked; /* connections that found no free slot */
	unsigned nblocked, blocked_cap;
};

static struct mw *M;
static volatile sig_atomic_t woken;

static uint32_t ld(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static bool cas(uint32_t *p, uint32_t from, uint32_t to)
{
	return __atomic_compare_exchange_n(p, &from, to, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static struct mw_slot *slot(const struct mw *m, unsigned sender, unsigned owner, unsigned i)
{
	uint8_t *base = (uint8_t *)m->shm + sizeof(struct mw_shm);

	return (struct mw_slot *)(base + (((size_t)sender * m->n + owner) * KVMW_SLOTS + i) *
	                                     sizeof(struct mw_slot));
}

static void on_wake(int sig)
{
	(void)sig;
	woken = 1;
}

/* In the supervisor, before it forks: the shared mapping, and SIGUSR2 caught (the workers inherit
 * both; a peer may signal a worker as soon as it runs). */
int kvmw_create(unsigned n)
{
	struct sigaction sa = {.sa_handler = on_wake, .sa_flags = SA_RESTART};
	size_t len = sizeof(struct mw_shm) + (size_t)n * n * KVMW_SLOTS * sizeof(struct mw_slot);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr,
		        "paste-kv: cannot map %zu bytes of shared memory for %u workers: %s\n", len,
		        n, strerror(errno));
		return -errno;
	}
	M = calloc(1, sizeof(*M));
	if (!M) {
		munmap(p, len);
		return -ENOMEM;
	}
	M->shm = p;
	M->len = len;
	M->n = n;
	M->shm->n = n;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	return 0;
}

/* In a worker, once it serves: publish who we are and clean up after our previous run. */
int kvmw_start(struct kvd *d, unsigned me)
{
	struct mw *m = M;

	if (!m)
		return 0;
	m->me = me;
	d->mw = m;
	for (unsigned s = 0; s < m->n; s++)
		for (unsigned i = 0; i < KVMW_SLOTS; i++) {
			struct mw_slot *x = slot(m, s, me, i);

			if (cas(&x->state, S_RUN, S_LOST)) /* our previous run died running it */
				m->shm->pub[me].lost++;
		}
	for (unsigned o = 0; o < m->n; o++)
		for (unsigned i = 0; i < KVMW_SLOTS; i++) {
			struct mw_slot *x = slot(m, me, o, i);

			if (!cas(&x->state, S_DONE, S_FREE))
				cas(&x->state, S_LOST, S_FREE);
		}
	m->shm->pub[me].starts++;
	__atomic_store_n(&m->shm->pub[me].pid, (uint64_t)getpid(), __ATOMIC_RELEASE);
	return 0;
}

static void wake(struct mw *m, unsigned k)
{
	pid_t pid = (pid_t)__atomic_load_n(&m->shm->pub[k].pid, __ATOMIC_ACQUIRE);

	if (k != m->me && pid > 0)
		kill(pid, SIGUSR2);
}

/* ---- routing --------------------------------------------------------------------------------- */

/* The worker that owns key @k (@n bytes): FNV-1a of the key, or of its {hash tag}. */
static unsigned owner_of(const struct mw *m, const uint8_t *k, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	const uint8_t *open = memchr(k, '{', n), *close;

	if (open && (close = memchr(open + 1, '}', n - (size_t)(open + 1 - k))) &&
	    close > open + 1) {
		n = (size_t)(close - open - 1);
		k = open + 1;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return (unsigned)(h % m->n);
}

/* The one owner of the request's keys: >= 0, -1 (no keys), -2 (several owners), -3 (no
 * memory). */
static int req_owner(const struct mw *m, struct req *r, const struct command *c)
{
	int argc = (int)r->cmd->argc, last, o = -1;

	if (c->first <= 0)
		return -1;
	last = c->last < 0 ? argc + c->last : c->last;
	for (int i = c->first; i <= last && i<argc; i += c->step> 0 ? c->step : 1) {
		const uint8_t *k = arg(r, (unsigned)i);
		int ko;

		if (!k)
			return -3;
		ko = (int)owner_of(m, k, arg_len(r, (unsigned)i));
		if (o >= 0 && ko != o)
			return -2;
		o = ko;
	}
	return o;
}

static struct mw_wait *wait_of(struct paste_conn *c, struct kconn *kc)
{
	if (!kc->mw) {
		struct mw_wait *w = calloc(1, sizeof(*w));

		if (!w)
			return NULL;
		w->txn_owner = -1;
		kc->mw = w;
	}
	((struct mw_wait *)kc->mw)->c = c;
	((struct mw_wait *)kc->mw)->kc = kc;
	return kc->mw;
}

bool kvmw_busy(const struct kconn *kc)
{
	const struct mw_wait *w = kc->mw;

	return w && (w->pending || w->mode == M_BLOCKED);
}

static int crossslot(struct mw *m, struct kconn *kc, const char *what)
{
	m->shm->pub[m->me].crossslot++;
	return out_err(kc,
	               "CROSSSLOT %s on more than one worker (paste-kv --queues %u shards keys "
	               "by hash; put related keys on one worker with a {hash tag})",
	               what, m->n);
}

/* A free slot of ours toward @o, or -1. Only we move our slots out of FREE (and back). */
static int free_slot(struct mw *m, unsigned o)
{
	for (unsigned i = 0; i < KVMW_SLOTS; i++)
		if (!m->waiter[o][i] && ld(&slot(m, m->me, o, i)->state) == S_FREE)
			return (int)i;
	return -1;
}

static void post(struct mw *m, struct mw_wait *w, unsigned o, unsigned i, int kind, int db,
                 unsigned nq)
{
	struct mw_slot *x = slot(m, m->me, o, i);

	x->kind = (uint32_t)kind;
	x->db = (uint32_t)db;
	x->nq = nq;
	x->ticket = ++m->ticket;
	m->waiter[o][i] = w;
	w->pending++;
	m->shm->pub[m->me].forwarded++;
	st(&x->state, S_REQ);
	wake(m, o);
}

static void block(struct mw *m, struct mw_wait *w)
{
	if (w->mode == M_BLOCKED)
		return;
	if (m->nblocked == m->blocked_cap) {
		unsigned cap = m->blocked_cap ? m->blocked_cap * 2 : 16;
		struct mw_wait **v = realloc(m->blocked, cap * sizeof(*v));

		if (!v)
			return; /* retried when the connection's next data arrives */
		m->blocked = v;
		m->blocked_cap = cap;
	}
	w->mode = M_BLOCKED;
	m->blocked[m->nblocked++] = w;
}

/* An inline request is forwarded as RESP: its length so, and the copy. */
static size_t inline_len(struct req *r)
{
	char h[RESP_HDR_MAX];
	size_t n = resp_fmt_hdr(h, '*', r->cmd->argc);

	for (unsigned i = 0; i < r->cmd->argc; i++)
		n += resp_fmt_hdr(h, '$', arg_len(r, i)) + arg_len(r, i) + 2;
	return n;
}

static void inline_copy(struct req *r, uint8_t *dst)
{
	dst += resp_fmt_hdr((char *)dst, '*', r->cmd->argc);
	for (unsigned i = 0; i < r->cmd->argc; i++) {
		dst += resp_fmt_hdr((char *)dst, '$', arg_len(r, i));
		memcpy(dst, arg(r, i), arg_len(r, i));
		dst += arg_len(r, i);
		memcpy(dst, "\r\n", 2);
		dst += 2;
	}
}

/* Every slot we need toward @o (one, or one per worker for a fan-out) is free: claim them all or
 * none. */
static bool claim(struct mw *m, const unsigned *owners, unsigned k, int *idx)
{
	for (unsigned j = 0; j < k; j++) {
		idx[j] = free_slot(m, owners[j]);
		if (idx[j] < 0) {
			while (j--)
				m->waiter[owners[j]][idx[j]] =
				    NULL; /* (never posted: still FREE) */
			return false;
		}
		m->waiter[owners[j]][idx[j]] = (struct mw_wait *)1; /* reserved */
	}
	return true;
}

/* Forward the request's bytes (or the MULTI block) to the workers in @owners. */
static int forward(struct mw *m, struct req *r, struct paste_conn *c, const unsigned *owners,
                   unsigned k, int mode)
{
	struct kconn *kc = r->kc;
	struct mw_wait *w = wait_of(c, kc);
	bool txn = mode == M_ONE && r->cmd == NULL;
	size_t len = txn ? kc->mq_len : r->cmd->inl ? inline_len(r) : r->cmd->len;
	int idx[KVMW_MAX];

	if (!w)
		return out_err(kc, "ERR out of memory") ? KVMW_HERE : KVMW_DONE;
	if (len > sizeof(((struct mw_slot *)0)->buf)) {
		out_err(kc,
		        "ERR request of %zu bytes too large to forward to the key's worker "
		        "(paste-kv --queues: at most %zu)",
		        len, sizeof(((struct mw_slot *)0)->buf));
		return KVMW_DONE;
	}
	if (!claim(m, owners, k, idx)) {
		block(m, w);
		return KVMW_LATER;
	}
	if (w->mode == M_BLOCKED)
		w->mode = M_ONE; /* (taken off the blocked list by the tick) */
	w->mode = mode;
	w->failed = false;
	w->sum = 0;
	w->acc_len = 0;
	for (unsigned j = 0; j < k; j++) {
		struct mw_slot *x = slot(m, m->me, owners[j], (unsigned)idx[j]);

		if (txn)
			memcpy(x->buf, kc->mq, len);
		else if (r->cmd->inl)
			inline_copy(r, x->buf);
		else
			resp_buf_copy(r->b, r->base, len, x->buf);
		x->len = (uint32_t)len;
		post(m, w, owners[j], (unsigned)idx[j], txn ? K_TXN : K_ONE, kc->db,
		     txn ? kc->mq_n : 1);
	}
	return KVMW_SENT;
}

/*
 * Before a request runs (serve()): here, forwarded, or answered. @return KVMW_HERE (run it
 * here), KVMW_DONE (answered: an error), KVMW_SENT (forwarded: stop serving the connection until
 * the reply is back), KVMW_LATER (no free slot: leave it unconsumed, retried by the tick).
 */
int kvmw_route(struct req *r, struct paste_conn *c)
{
	struct mw *m = r->d->mw;
	struct kconn *kc = r->kc;
	const struct command *cmd;
	const uint8_t *name;
	unsigned all[KVMW_MAX];
	int o;

	if (!m || m->n < 2 || !(name = arg(r, 0)) || !(cmd = find_command(name, arg_len(r, 0))) ||
	    !arity_ok(cmd, r->cmd->argc))
		return KVMW_HERE; /* unknown or bad: the usual error, here */
	for (unsigned k = 0; k < m->n; k++)
		all[k] = k;
	if (command_fn(cmd) == cmd_multi && !kc->multi && wait_of(c, kc))
		((struct mw_wait *)kc->mw)->txn_owner = -1;
	if (command_fn(cmd) == cmd_exec && kc->multi && !kc->multi_err && kc->mw) {
		struct mw_wait *w = kc->mw;
		unsigned to = (unsigned)w->txn_owner;
		int res;

		if (w->txn_owner < 0 || to == m->me)
			return KVMW_HERE;
		if (kc->nwatch) { /* the watched keys are here, the transaction's are not */
			crossslot(m, kc, "WATCH keys and the transaction's keys are");
			kc->multi_err = true;
			return KVMW_DONE; /* EXEC then answers EXECABORT */
		}
		res = forward(m, &(struct req){.d = r->d, .kc = kc}, c, &to, 1, M_ONE);
		if (res == KVMW_SENT) { /* as EXEC would: the block is gone from here */
			kc->multi = kc->multi_err = false;
			kc->mq_len = 0;
			kc->mq_n = 0;
		}
		return res;
	}
	if (cmd->first <= 0) {
		int fn = command_fn(cmd) == cmd_flushall || command_fn(cmd) == cmd_flushdb ? M_OK
		         : command_fn(cmd) == cmd_dbsize                                   ? M_SUM
		         : command_fn(cmd) == cmd_keys                                     ? M_KEYS
		                                                                           : -1;

		if (command_fn(cmd) == cmd_scan || command_fn(cmd) == cmd_randomkey)
			return out_err(
			           kc,
			           "ERR %s is not supported with --queues (keys are sharded over "
			           "%u workers; KEYS is)",
			           cmd->name, m->n)
			           ? KVMW_HERE
			           : KVMW_DONE;
		if (fn < 0)
			return KVMW_HERE;
		if (kc->multi) {
			((struct mw_wait *)wait_of(c, kc))->txn_owner = -2;
			crossslot(m, kc, "a command of every worker's keys queued with others");
			kc->multi_err = true;
			return KVMW_DONE;
		}
		return forward(m, r, c, all, m->n, fn);
	}
	o = req_owner(m, r, cmd);
	if (o == -3)
		return KVMW_HERE;
	if (o == -2) {
		if (kc->multi)
			kc->multi_err = true;
		crossslot(m, kc, "keys of one request are");
		return KVMW_DONE;
	}
	if (kc->multi && command_fn(cmd) != cmd_watch) {
		struct mw_wait *w = wait_of(c, kc);

		if (w && w->txn_owner == -1)
			w->txn_owner = o;
		else if (w && w->txn_owner != o) {
			w->txn_owner = -2;
			kc->multi_err = true;
			crossslot(m, kc, "the transaction's keys are");
			return KVMW_DONE;
		}
		return KVMW_HERE; /* queued here; EXEC decides where the block runs */
	}
	if ((unsigned)o == m->me)
		return KVMW_HERE;
	if (command_fn(cmd) == cmd_watch) {
		crossslot(m, kc, "WATCH keys of another worker: keys");
		return KVMW_DONE;
	}
	return forward(m, r, c, (unsigned[]){(unsigned)o}, 1, M_ONE);
}

/* ---- the owner's side -------------------------------------------------------------------- */

/* Copy the stand-in connection's queued output into the slot (or an error if it is too big). */
static void take_output(struct kvd *d, struct kconn *pk, struct mw_slot *x)
{
	size_t len = 0, cap = sizeof(x->buf);
	static const char big[] = "-ERR reply too large to forward from the key's worker "
	                          "(paste-kv --queues: at most 1 MiB)\r\n";

	for (size_t i = 0; i < pk->oi_n; i++) {
		const struct oitem *it = &pk->oi[pk->oi_head + i];
		const uint8_t *p = it->kind == OI_BUF ? pk->ob + it->off : it->p;

		if (len + it->len > cap) {
			memcpy(x->buf, big, sizeof(big) - 1);
			len = sizeof(big) - 1;
			break;
		}
		memcpy(x->buf + len, p, it->len);
		len += it->len;
	}
	x->len = (uint32_t)len;
	out_drop(d, pk);
}

static void run_slot(struct kvd *d, struct mw *m, struct mw_slot *x)
{
	static const struct resp_limits lim = {
	    .max_bulk = UINT32_MAX, .max_arg = UINT32_MAX, .max_request = UINT32_MAX};
	struct kconn pk = {.d = d, .db = (int)x->db};
	struct resp_seg seg = {.p = x->buf, .len = x->len};
	struct resp_cmd cmd;
	struct resp_buf b;

	d->now_ms = wall_ms();
	arena_reset(d);
	if (resp_parser_init(&pk.rp, &lim)) {
		out_err(&pk, "ERR out of memory");
	} else if (x->kind == K_TXN) {
		pk.mq = malloc(x->len ? x->len : 1);
		if (pk.mq) {
			memcpy(pk.mq, x->buf, x->len);
			pk.mq_len = pk.mq_cap = x->len;
			pk.mq_n = x->nq;
			pk.multi = true;
			d->st.cmds++;
			cmd_exec(&(struct req){.d = d, .kc = &pk});
		} else {
			out_err(&pk, "ERR out of memory");
		}
	} else {
		resp_buf_init(&b, &seg, 1);
		if (resp_parse(&pk.rp, &b, 0, &cmd) == RESP_CMD)
			dispatch(&(struct req){
			    .d = d, .kc = &pk, .b = &b, .base = 0, .cmd = &cmd, .queued = true});
		else
			out_err(&pk, "ERR forwarded request unreadable");
	}
	take_output(d, &pk, x);
	multi_free(d, &pk);
	resp_parser_free(&pk.rp);
	free(pk.ob);
	free(pk.oi);
	arena_reset(d);
	m->shm->pub[m->me].served++;
}

/* ---- the sender's side ------------------------------------------------------------------- */

static int acc_add(struct mw_wait *w, const void *p, size_t n)
{
	if (w->acc_len + n > w->acc_cap) {
		size_t cap = w->acc_cap ? w->acc_cap : 4096;
		uint8_t *v;

		while (cap < w->acc_len + n)
			cap *= 2;
		v = realloc(w->acc, cap);
		if (!v)
			return -ENOMEM;
		w->acc = v;
		w->acc_cap = cap;
	}
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

/* Every reply is in: queue the answer and serve the connection on. */
static void finish(struct kvd *d, struct mw_wait *w)
{
	struct kconn *kc = w->kc;
	int err = 0;

	if (w->mode == M_ONE)
		err = 0; /* already queued */
	else if (w->failed)
		err = out(kc, w->acc, w->acc_len);
	else if (w->mode == M_OK)
		err = out_str(kc, "+OK\r\n");
	else if (w->mode == M_SUM)
		err = out_hdr(kc, ':', w->sum);
	else
		err = out_hdr(kc, '*', w->sum) || out(kc, w->acc, w->acc_len);
	if (err)
		kc->quit = true;
	w->mode = M_ONE;
	w->acc_len = 0;
	on_data(w->c, d); /* send it and run what the client pipelined after it */
}

static void reply_in(struct kvd *d, struct mw *m, unsigned o, unsigned i)
{
	struct mw_slot *x = slot(m, m->me, o, i);
	struct mw_wait *w = m->waiter[o][i];
	uint32_t s = ld(&x->state);

	if (s != S_DONE && s != S_LOST)
		return;
	m->waiter[o][i] = NULL;
	st(&x->state, S_FREE);
	if (w && s == S_LOST) { /* the owner died running it: the outcome is unknown */
		w->pending--;
		if (!w->kc->closing) {
			w->kc->closing = true;
			paste_conn__abort(w->c); /* (on_close may free w) */
		}
		return;
	}
	if (w) {
		if (w->mode == M_ONE) {
			if (out(w->kc, x->buf, x->len))
				w->kc->quit = true;
		} else {
			combine(w, x->buf, x->len);
		}
		w->pending--;
	}
	if (w && !w->pending && !w->kc->closing)
		finish(d, w);
}

/*
 * After every poll: publish the replies run before it (its fence made them durable), run the
 * requests that arrived, take the replies of ours, retry the blocked connections.
 */
void kvmw_tick(struct kvd *d)
{
	struct mw *m = d->mw;
	struct paste_kv_info ki;

	if (!m)
		return;
	woken = 0;
	for (unsigned j = 0; j < m->nran; j++) {
		struct mw_slot *x = m->ran[j];
		unsigned sender =
		    (unsigned)(((uint8_t *)x - ((uint8_t *)m->shm + sizeof(struct mw_shm))) /
		               sizeof(struct mw_slot) / KVMW_SLOTS / m->n);

		st(&x->state, S_DONE);
		wake(m, sender);
	}
	m->nran = 0;
	for (unsigned s = 0; s < m->n; s++)
		for (unsigned i = 0; i < KVMW_SLOTS; i++) {
			struct mw_slot *x = slot(m, s, m->me, i);

			if (ld(&x->state) == S_REQ && cas(&x->state, S_REQ, S_RUN)) {
				run_slot(d, m, x);
				m->ran[m->nran++] = x;
			}
		}
	for (unsigned o = 0; o < m->n; o++)
		for (unsigned i = 0; i < KVMW_SLOTS; i++)
			if (m->waiter[o][i] || ld(&slot(m, m->me, o, i)->state) >= S_DONE)
				reply_in(d, m, o, i);
	if (m->nblocked) {
		unsigned n = m->nblocked;
		struct mw_wait **v = malloc(n * sizeof(*v));

		if (v) {
			memcpy(v, m->blocked, n * sizeof(*v));
			m->nblocked = 0;
			for (unsigned j = 0; j < n; j++) {
				if (v[j]->mode == M_BLOCKED)
					v[j]->mode = M_ONE;
				on_data(v[j]->c, d);
			}
			free(v);
		}
	}
	paste_kv__info(d->kv, &ki);
	m->shm->pub[m->me].keys = ki.keys;
	m->shm->pub[m->me].cmds = d->st.cmds;
	m->shm->pub[m->me].conns = d->st.conns;
}

/* The poll's timeout: 0 while replies wait for a fence or connections for a slot. */
int kvmw_timeout(const struct kvd *d)
{
	const struct mw *m = d->mw;

	if (!m)
		return -1;
	return m->nran || m->nblocked || woken ? 0 : KVMW_IDLE_MS;
}

/* The connection is gone: forget it (its forwarded requests still run; their replies are
 * dropped). */
void kvmw_conn_closed(struct kconn *kc)
{
	struct mw *m = M;
	struct mw_wait *w = kc->mw;

	if (!w)
		return;
	if (m) {
		for (unsigned o = 0; o < m->n; o++)
			for (unsigned i = 0; i < KVMW_SLOTS; i++)
				if (m->waiter[o][i] == w)
					m->waiter[o][i] = NULL;
		for (unsigned j = 0; j < m->nblocked; j++)
			if (m->blocked[j] == w)
				m->blocked[j--] = m->blocked[--m->nblocked];
	}
	free(w->acc);
	free(w);
	kc->mw = NULL;
}

/* INFO: "# Workers", every worker's published counters. */
void kvmw_info(struct kvd *d)
{
	const struct mw *m = d->mw;

	if (!m)
		return;
	big_printf(d, "# Workers\r\nworkers:%u\r\nworker:%u\r\n", m->n, m->me);
	for (unsigned k = 0; k < m->n; k++) {
		const struct mw_pub *p = &m->shm->pub[k];

		big_printf(d,
		           "worker%u:pid=%" PRIu64 ",starts=%" PRIu64 ",cmds=%" PRIu64
		           ",keys=%" PRIu64 ",forwarded=%" PRIu64 ",served_for_others=%" PRIu64
		           ",lost=%" PRIu64 ",crossslot=%" PRIu64 ",conns=%" PRIu64 "\r\n",
		           k, p->pid, p->starts, p->cmds, p->keys, p->forwarded, p->served, p->lost,
		           p->crossslot, p->conns);
	}
	big_printf(d, "\r\n");
}
