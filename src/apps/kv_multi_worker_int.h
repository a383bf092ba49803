/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_multi_worker_int.h - what kv_multi_worker.c (the shared mapping, the owner's side, the tick)
 * and kv_multi_route.c (routing, a connection's flight) share: the layout of the shared slots and
 * the worker's own state. docs/multicore.md ("paste-kv on N queues").
 */
#ifndef PASTE_KV_MULTI_WORKER_INT_H
#define PASTE_KV_MULTI_WORKER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "daemon_opts.h"
#include "kv.h"

#define KVMW_SLOTS   256        /* per (sender, owner) pair, at most (1024 / workers, >= 16) */
#define KVMW_SLOT    (1u << 20) /* a slot's data: the request (argv table, bytes), later the reply */
#define KVMW_DEPTH   16         /* requests in flight per connection */
#define KVMW_IDLE_MS 5
#define KVMW_MAX     DAEMON_MAX_WORKERS

enum { S_FREE, S_REQ, S_RUN, S_DONE, S_LOST };
enum { K_ONE, K_TXN };               /* one request; a MULTI block run by EXEC */
enum { M_ONE, M_OK, M_SUM, M_KEYS }; /* replies in order; or combined (a command of all) */

/*
 * A slot's header. The headers are one dense array (256 bytes each: four cache lines), apart from
 * the slots' data (KVMW_SLOT bytes each, a page or more apart): the states a sender's landing
 * pass and an owner's take read every round stay in a few cache lines and TLB entries, and a
 * small request or reply (a SET of a 64-byte value, +OK, a GET's value up to about 200 bytes)
 * travels in the header's own lines (@inl) instead of another page.
 *
 * A request's data: K_ONE: the parsed request as the sender's parser left it, argc struct
 * resp_arg (offsets from the request's first byte, lengths), then its @len bytes in RESP (the
 * owner runs it without parsing it again; every argument is followed by its "\r\n"). K_TXN: the
 * MULTI block's @len bytes (RESP, @nq requests), argc 0. It is in @inl if it fits (argc x 8 +
 * len <= KVMW_INL), else at sbuf(). The reply's @len bytes likewise (in @inl if len <= KVMW_INL).
 */
#define KVMW_INL 216

struct mw_slot {
	uint32_t state, kind;
	uint32_t db, nq;  /* the sender's SELECT; K_TXN: requests in the block */
	uint32_t len;     /* request bytes (after the argv table), then reply bytes */
	uint32_t argc;    /* K_ONE: entries of the argv table */
	uint64_t ticket;  /* the pair's posted count when it was posted */
	uint32_t command; /* K_ONE: command_at() index of the sender's lookup, + 1 (0: none) */
	uint32_t pad;
	uint8_t inl[KVMW_INL]; /* a small request's or reply's data */
};

#define KVMW_BUF KVMW_SLOT /* a slot's data bytes */
_Static_assert(sizeof(struct mw_slot) == 256, "a slot header is four cache lines");

/* Each worker's page: who runs it, and its counters (INFO's "# Workers"). */
struct mw_pub {
	uint64_t pid, starts, cmds, keys, forwarded, served, lost, crossslot, conns;
	uint64_t wakeups;  /* wakes (eventfd writes) this worker sent to sleeping peers */
	uint64_t ticks;    /* its event loop's rounds (kvmw_tick calls) */
	uint32_t sleeping; /* about to wait in its poll: a peer with work for it must signal it */
	uint32_t pad32;
	uint8_t pad[128 - 12 * 8];
};

/* A (sender, owner) pair: requests posted (sender) and taken (owner), in ticket order. */
struct mw_pair {
	uint64_t posted, taken;
	uint8_t pad[48];
};

struct mw_shm {
	uint32_t n;
	uint32_t killed; /* the test hook fired (once per supervisor) */
	uint32_t pad[30];
	struct mw_pub pub[KVMW_MAX];
	/* then n x n pairs, then n x n x slots (per pair) slots, both [sender][owner] */
};

/* An entry of a connection's flight: a forwarded request (owner, slot), or the reply of one
 * run here meanwhile (its bytes, held back so that the replies leave in order). */
struct mw_ent {
	uint8_t o, i;
	bool here;
	uint32_t len;
	size_t off; /* here: the reply's bytes at mw_wait.hold + off */
};

/* A connection's requests in flight (replies go out in this order) and what it waits for. */
struct mw_wait {
	struct paste_conn *c;
	struct kconn *kc;
	int mode; /* M_ONE, or how a command of every worker's keys combines its replies */
	struct mw_ent q[KVMW_DEPTH];
	unsigned head, n;
	bool stalled; /* a request waits (for the flight to land, or for a slot): do not serve */
	bool listed;  /* in mw.waits */
	bool failed;  /* a combined reply was an error (the first one is kept in acc) */
	int64_t sum;
	uint8_t *acc; /* M_KEYS: the elements; else the first error */
	size_t acc_len, acc_cap;
	int txn_owner; /* MULTI: the one owner of the queued keys (-1 none yet, -2 several) */
	uint8_t *hold; /* the held replies' bytes (emptied when the flight is) */
	size_t hold_len, hold_cap;
};

struct mw {
	struct mw_shm *shm;
	int efd[KVMW_MAX]; /* each worker's wake eventfd (in its poll set: paste_set_wake_fd) */
	uint8_t *data;     /* the slots' data */
	size_t len;
	unsigned n, me, slots;
	bool busy[KVMW_MAX][KVMW_SLOTS];            /* my outgoing slots in a connection's flight */
	struct mw_slot *ran[KVMW_MAX * KVMW_SLOTS]; /* run since the last poll: not DONE yet */
	unsigned nran;
	uint64_t wake_mask;      /* workers that may have work from us (woken if asleep) */
	uint64_t last[KVMW_MAX]; /* per owner: the ticket of my newest REQ slot; the pair's
	                          * posted catches up at the end of the tick (one batch) */
	bool freed;              /* a slot of mine went FREE since the stalled connections tried */
	unsigned orphans;        /* my outgoing slots no connection waits for any more, not FREE yet
	                          * (the tick's sweep frees them when their owner is done) */
	struct mw_wait **waits;  /* connections with requests in flight or stalled */
	unsigned nwaits, waits_cap;
	struct kconn pk;  /* the stand-in connection forwarded requests run on (its reply queue's
	                   * buffers are kept from one request to the next) */
	struct kconn pk0; /* its clean state (kvmw_pk_ready) */
};

extern struct mw *kvmw_m; /* this process's (NULL without --queues) */

static inline uint32_t ld(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void st(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline bool cas(uint32_t *p, uint32_t from, uint32_t to)
{
	return __atomic_compare_exchange_n(p, &from, to, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static inline struct mw_pair *pair(const struct mw *m, unsigned sender, unsigned owner)
{
	return (struct mw_pair *)((uint8_t *)m->shm + sizeof(struct mw_shm)) + sender * m->n +
	       owner;
}

static inline struct mw_slot *slot(const struct mw *m, unsigned sender, unsigned owner, unsigned i)
{
	struct mw_slot *base = (struct mw_slot *)pair(m, m->n, 0); /* just after the pairs */

	return base + ((size_t)sender * m->n + owner) * m->slots + i;
}

/* Slot @x's data pages (after the headers, page aligned: kvmw_create). */
static inline uint8_t *sbuf(const struct mw *m, const struct mw_slot *x)
{
	return m->data + (size_t)(x - slot(m, 0, 0, 0)) * KVMW_BUF;
}

/* Where the data of a request of @argc arguments (0: K_TXN) and @len bytes is, or goes. */
static inline uint8_t *sreq(const struct mw *m, struct mw_slot *x, uint32_t argc, uint32_t len)
{
	return (size_t)argc * sizeof(struct resp_arg) + len <= KVMW_INL ? x->inl : sbuf(m, x);
}

/* Where a reply of @len bytes is, or goes. */
static inline uint8_t *srep(const struct mw *m, struct mw_slot *x, uint32_t len)
{
	return len <= KVMW_INL ? x->inl : sbuf(m, x);
}

/* The worker (of @workers) that owns key @k (@n bytes): FNV-1a (64 bits) of the key, or of its
 * {hash tag}: the bytes between its first '{' and the next '}', when there are any. */
static inline unsigned kvmw_owner(const uint8_t *k, size_t n, unsigned workers)
{
	uint64_t h = 14695981039346656037ull;
	const uint8_t *open = memchr(k, '{', n), *close;

	if (open && (close = memchr(open + 1, '}', n - (size_t)(open + 1 - k))) &&
	    close > open + 1) {
		n = (size_t)(close - open - 1);
		k = open + 1;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return (unsigned)(h % workers);
}

/* Do the bytes [@from, @to) of the stand-in connection differ from its clean state's? */
static inline bool kvmw_pk_differs(const struct mw *m, size_t from, size_t to)
{
	return memcmp((const uint8_t *)&m->pk + from, (const uint8_t *)&m->pk0 + from, to - from);
}

/*
 * The stand-in connection as a forwarded request finds it (kv_multi_worker.c, run_slot): its clean
 * state (m->pk0: zero, this worker's, its parser initialised) but for its reply queue (its buffers
 * kept, empty) and the sender's database @db. A request that left anything else changed (a MULTI
 * block, a flag) gets it rebuilt; after a plain one it is still clean, which is found by reading
 * it, not by zeroing its ~600 bytes again: those stores, right behind the previous request's (its
 * index entry, the flushes), waited for them to drain, ~0.08 us per SET with 2 workers
 * (docs/multicore.md, "The owner's store of a forwarded SET"). test_kv_route checks it.
 */
static inline void kvmw_pk_ready(struct mw *m, uint32_t db)
{
	struct kconn *pk = &m->pk;
	size_t q = offsetof(struct kconn, q), q_end = q + sizeof(pk->q);
	size_t b = offsetof(struct kconn, db), b_end = b + sizeof(pk->db);

	_Static_assert(offsetof(struct kconn, q) < offsetof(struct kconn, db), "q before db");
	if (kvmw_pk_differs(m, 0, q) || kvmw_pk_differs(m, q_end, b) ||
	    kvmw_pk_differs(m, b_end, sizeof(*pk))) {
		struct daemon_replyq keep = pk->q;

		*pk = m->pk0;
		pk->q = keep;
	}
	pk->db = (int)db;
}

/* kv_multi_worker.c: the test hook PASTE_KV_MW_KILL_AT=STEP[:N] (docs/multicore.md) */
enum { MW_KILL_OFF, MW_KILL_POSTED, MW_KILL_RAN };
void mw_kill_point(int step);

/* kv_multi_route.c */
bool mw_flight_ready(const struct mw *m, const struct mw_wait *w);
bool mw_land(struct mw *m, struct mw_wait *w);
void mw_unlist(struct mw *m, struct mw_wait *w);

#endif
