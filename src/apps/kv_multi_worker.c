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
 * supervisor before it forks, so it outlives any one worker). All of it happens inside the
 * workers' rounds (paste_set_work_hook, paste_set_round_hook): in its work hook (after the
 * round's callbacks, before its fence) the owner runs the requests posted to it on a stand-in
 * connection and copies each reply into its slot; the round's one fence makes their writes
 * durable with the owner's own; in the round hook (after the fence) it marks the slots DONE, so a
 * forwarded +OK is as durable as a local one. The receiving worker, in its work hook, copies the
 * replies of a connection whose whole flight has landed to its client in request order (they
 * leave in that round). A connection keeps up to KVMW_DEPTH keyed requests in flight (a
 * pipelined one for a key of its own worker meanwhile runs at once, its reply held back behind
 * theirs); a command without keys, MULTI/EXEC/WATCH and errors wait until nothing is in
 * flight. An owner runs the requests of one sender in the order they were posted (a
 * per-pair ticket; the sender publishes a round's posts at once in its round hook), so the
 * requests of one connection for one key run in its order.
 *
 * Slot states: FREE -> REQ (sender) -> RUN (owner) -> DONE (owner, after its fence) -> FREE
 * (sender). An owner that starts turns the slots its previous run left in RUN into LOST (it may
 * or may not have applied them): the sender resets the client's connection, as a crash of a
 * single server would. A sender that starts frees the DONE/LOST slots nobody waits for. The
 * slots of a pair are a ring (ticket modulo slots), so the owner finds the next one directly.
 *
 * Workers wake each other by writing to the sleeper's eventfd (made by the supervisor before the
 * fork, in every worker's poll set by paste_set_wake_fd), only one that is asleep (its "sleeping"
 * flag, set before a poll that may wait). The fd is level-triggered, so a wake written between the
 * sleeper's last look at the slots and its poll ends that poll at once: no wake is lost (with
 * SIGUSR2, which this replaced, such a wake was missed until KVMW_IDLE_MS, and each cost a signal
 * frame and sigreturn more: docs/multicore.md, "Wakeups"). docs/multicore.md ("paste-kv on N
 * queues") has the rules for multi-key commands, MULTI/EXEC and WATCH, and what this costs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kv.h"
#include "kv_multi_worker.h"
#include "kv_multi_worker_int.h"

#define KVMW_REGION "paste-kv.queues"     /* the worker count: magic, N */
#define KVMW_MAGIC  0x3153455545555150ull /* "PQUEUES1" */

struct mw *kvmw_m;

/*
 * Test hook: PASTE_KV_MW_KILL_AT=STEP[:N[:W]] makes a worker (only worker W if given) SIGKILL
 * itself the Nth time (default 1st) it reaches STEP, once per supervisor (the first worker to get
 * there; a restarted worker runs on): "posted" (a sender, right
 * after it posted a request: its owner runs it for a client that is gone), "ran" (an owner, after
 * it ran a forwarded request and before its fence and DONE: the write may or may not be durable,
 * the sender must reset the client). test_multiqueue_kv kills at both.
 */
static int kill_step;
static unsigned long kill_count;

void mw_kill_point(int step)
{
	if (kill_step == step && --kill_count == 0 && kvmw_m && cas(&kvmw_m->shm->killed, 0, 1))
		raise(SIGKILL);
}

static void work_hook(struct paste_ctx *ctx, void *arg);
static int round_hook(struct paste_ctx *ctx, void *arg);

static void kill_setup(const struct mw *m)
{
	static const char *const names[] = {"", "posted", "ran"};
	const char *v = getenv("PASTE_KV_MW_KILL_AT");
	size_t n;

	if (!v || !*v || m->shm->pub[m->me].starts != 1)
		return;
	n = strcspn(v, ":");
	for (int i = 1; i < 3; i++)
		if (strlen(names[i]) == n && !strncmp(v, names[i], n))
			kill_step = i;
	kill_count = 1;
	if (v[n] == ':') {
		char *end;

		kill_count = strtoul(v + n + 1, &end, 10);
		if (*end == ':' && strtoul(end + 1, NULL, 10) != m->me)
			kill_step = MW_KILL_OFF; /* another worker's */
	}
	if (!kill_count)
		kill_step = MW_KILL_OFF;
	if (kill_step)
		fprintf(stderr, "paste-kv: worker %u: test hook: SIGKILL at step '%s' (time %lu)\n",
		        m->me, names[kill_step], kill_count);
}

/* In the supervisor, before it forks: the shared mapping and every worker's wake eventfd (the
 * workers inherit both; a peer may wake a worker as soon as it runs). */
static unsigned slots_for(unsigned n)
{
	return 1024 / n > KVMW_SLOTS ? KVMW_SLOTS : 1024 / n < 16 ? 16 : 1024 / n;
}

int kvmw_create(unsigned n)
{
	size_t nslots = (size_t)n * n * slots_for(n);
	size_t data = (sizeof(struct mw_shm) + (size_t)n * n * sizeof(struct mw_pair) +
	               nslots * sizeof(struct mw_slot) + 4095) &
	              ~(size_t)4095; /* the headers, then the slots' data, page aligned */
	size_t len = data + nslots * KVMW_BUF;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr,
		        "paste-kv: cannot map %zu bytes of shared memory for %u workers: %s\n", len,
		        n, strerror(errno));
		return -errno;
	}
	kvmw_m = calloc(1, sizeof(*kvmw_m));
	if (!kvmw_m) {
		munmap(p, len);
		return -ENOMEM;
	}
	kvmw_m->shm = p;
	kvmw_m->data = (uint8_t *)p + data;
	kvmw_m->len = len;
	kvmw_m->n = n;
	kvmw_m->slots = slots_for(n);
	kvmw_m->shm->n = n;
	for (unsigned k = 0; k < n; k++) {
		kvmw_m->efd[k] = eventfd(0, EFD_NONBLOCK);
		if (kvmw_m->efd[k] < 0) {
			int err = -errno;

			fprintf(stderr, "paste-kv: cannot make the wake eventfd of worker %u: %s\n",
			        k, strerror(errno));
			while (k--)
				close(kvmw_m->efd[k]);
			munmap(p, len);
			free(kvmw_m);
			kvmw_m = NULL;
			return err;
		}
	}
	return 0;
}

/*
 * In a worker, once its store is open and before it serves: clean up after our previous run.
 * As an owner: a slot it left in RUN may or may not have been applied: LOST (its sender resets
 * the client); the pair's taken moves past it. As a sender: the slots posted but not yet counted
 * in posted (we died before the end of that tick) are counted now, so their owner runs them.
 */
int kvmw_start(struct kvd *d, unsigned me)
{
	struct mw *m = kvmw_m;
	uint64_t *q, len;
	void *addr;

	/* the worker count decides which worker owns a key: a pool keeps the one it was made with
	 */
	if (paste_pool__region(d->pool, KVMW_REGION, 4096, &addr, &len)) {
		fprintf(stderr, "paste-kv: worker %u: cannot open region %s: %s\n", me, KVMW_REGION,
		        paste_last_error());
		return -EIO;
	}
	q = addr;
	if (q[0] == KVMW_MAGIC && q[1] != d->d.queues) {
		fprintf(stderr,
		        "paste-kv: pool %s was written by %" PRIu64
		        " workers (this is worker %u of "
		        "%u): keys are sharded by the worker count, so start with --queues %" PRIu64
		        " or use another pool\n",
		        d->d.paste.pool_path ? d->d.paste.pool_path : PASTE_POOL_DEFAULT_PATH, q[1],
		        me, d->d.queues, q[1]);
		return -EINVAL;
	}
	if (q[0] != KVMW_MAGIC) {
		q[1] = d->d.queues;
		paste_pool__persist(d->pool, &q[1], sizeof(q[1]));
		__atomic_store_n(&q[0], KVMW_MAGIC, __ATOMIC_RELEASE);
		paste_pool__persist(d->pool, &q[0], sizeof(q[0]));
		paste_pool__drain(d->pool);
	}
	if (!m)
		return 0;
	m->me = me;
	d->mw = m;
	memset(&m->pk0, 0,
	       sizeof(m->pk0)); /* the stand-in connection's clean state (kvmw_pk_ready) */
	m->pk0.d = d;
	resp_parser_init(&m->pk0.rp, NULL); /* (no memory: the parser allocates when it parses) */
	m->pk = m->pk0;
	if (paste_set_wake_fd(d->ctx, m->efd[me])) {
		fprintf(stderr, "paste-kv: worker %u: cannot wait for its wake eventfd: %s\n", me,
		        paste_last_error());
		return -EIO;
	}
	for (unsigned s = 0; s < m->n; s++)
		for (unsigned i = 0; i < m->slots; i++) {
			struct mw_slot *x = slot(m, s, me, i);

			if (cas(&x->state, S_RUN, S_LOST)) {
				m->shm->pub[me].lost++;
				if (x->ticket > pair(m, s, me)->taken)
					pair(m, s, me)->taken = x->ticket;
			}
		}
	for (unsigned o = 0; o < m->n; o++)
		for (unsigned i = 0; i < m->slots; i++) {
			struct mw_slot *x = slot(m, me, o, i);
			struct mw_pair *p = pair(m, me, o);

			if (ld(&x->state) == S_REQ && x->ticket > p->posted)
				__atomic_store_n(&p->posted, x->ticket, __ATOMIC_RELEASE);
		}
	for (unsigned o = 0; o < m->n; o++)
		m->last[o] = pair(m, me, o)->posted;
	m->orphans = 1; /* our previous run's DONE/LOST slots: the first tick sweeps them */
	paste_set_work_hook(d->ctx, work_hook, d);
	paste_set_round_hook(d->ctx, round_hook, d);
	m->shm->pub[me].starts++;
	kill_setup(m);
	__atomic_store_n(&m->shm->pub[me].pid, (uint64_t)getpid(), __ATOMIC_RELEASE);
	return 0;
}

/*
 * Wake the workers we posted requests or published replies for this tick - only those asleep
 * (about to wait in their poll, or in it). One that is awake sees the work at its next tick. The
 * fence pairs with the one in kvmw_timeout (a Dekker handshake): either we see its "sleeping" or
 * it sees our REQ/DONE (stored before this), so a wakeup is never skipped for a worker that would
 * then sleep on it; and the eventfd keeps the wake until that worker's poll reads it, so one
 * written before the poll starts ends it at once.
 */
static void wake_all(struct mw *m)
{
	if (!m->wake_mask)
		return;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (unsigned k = 0; k < m->n; k++) {
		pid_t pid = (pid_t)__atomic_load_n(&m->shm->pub[k].pid, __ATOMIC_ACQUIRE);

		if ((m->wake_mask >> k & 1) && k != m->me && pid > 0 &&
		    __atomic_load_n(&m->shm->pub[k].sleeping, __ATOMIC_RELAXED)) {
			uint64_t one = 1;

			if (write(m->efd[k], &one, sizeof(one)) < 0 && errno != EAGAIN)
				fprintf(stderr, "paste-kv: worker %u: waking worker %u: %s\n",
				        m->me, k, strerror(errno));
			m->shm->pub[m->me].wakeups++;
		}
	}
	m->wake_mask = 0;
}

/* Publish the requests posted this tick: each pair's posted catches up with the slots filled (in
 * ticket order, all REQ already), so the owner takes them as one batch. */
static void publish_posted(struct mw *m)
{
	for (unsigned o = 0; o < m->n; o++) {
		struct mw_pair *p = pair(m, m->me, o);

		if (m->last[o] != p->posted) {
			__atomic_store_n(&p->posted, m->last[o],
			                 __ATOMIC_RELEASE); /* after the REQs */
			m->wake_mask |= 1ull << o;
		}
	}
}

/* Publish DONE for the slots run since the last fence (the caller fenced). */
static void publish_ran(struct mw *m)
{
	for (unsigned j = 0; j < m->nran; j++) {
		size_t k = (size_t)((uint8_t *)m->ran[j] - (uint8_t *)slot(m, 0, 0, 0)) /
		           sizeof(struct mw_slot) / m->slots / m->n; /* its sender */

		st(&m->ran[j]->state, S_DONE);
		m->wake_mask |= 1ull << k;
	}
	m->nran = 0;
}

/* Free my outgoing slots that no connection waits for once their owner is done with them (our
 * previous run's, closed connections'); only while there are any. */
static void sweep_orphans(struct mw *m)
{
	unsigned left = 0;

	if (!m->orphans)
		return;
	for (unsigned o = 0; o < m->n; o++)
		for (unsigned i = 0; i < m->slots; i++) {
			struct mw_slot *x = slot(m, m->me, o, i);
			uint32_t s;

			if (m->busy[o][i] || (s = ld(&x->state)) == S_FREE)
				continue;
			if (s >= S_DONE) {
				st(&x->state, S_FREE);
				m->freed = true;
			} else
				left++;
		}
	m->orphans = left;
}

/* ---- the owner's side -------------------------------------------------------------------- */

/* Copy the stand-in connection's queued output into the slot (or an error if it is too big). */
static void take_output(struct kvd *d, struct mw *m, struct kconn *pk, struct mw_slot *x)
{
	static const char big[] = "-ERR reply too large to forward from the key's worker "
	                          "(paste-kv --queues: at most 1 MiB)\r\n";
	size_t len = 0, total = 0;
	uint8_t *dst;

	for (size_t i = 0; i < pk->q.n; i++)
		total += daemon_replyq_at(&pk->q, i)->len;
	if (total > KVMW_BUF) {
		memcpy(srep(m, x, sizeof(big) - 1), big, sizeof(big) - 1);
		len = sizeof(big) - 1;
	} else {
		dst = srep(m, x, (uint32_t)total);
		for (size_t i = 0; i < pk->q.n; i++) {
			const struct daemon_rseg *it = daemon_replyq_at(&pk->q, i);

			memmove(dst + len, daemon_replyq_bytes(&pk->q, it), it->len);
			len += it->len;
		}
	}
	x->len = (uint32_t)len;
	out_drop(d, pk);
}

/*
 * Run a K_ONE request as its sender parsed it: its argv table describes the bytes after it
 * (checked: every argument and the "\r\n" after it inside them, as the parser left them), and
 * the command the sender looked up is taken as found.
 */
static void run_one(struct kvd *d, struct mw *m, struct kconn *pk, struct mw_slot *x)
{
	const uint8_t *data = sreq(m, x, x->argc, x->len);
	const struct resp_arg *av = (const struct resp_arg *)data;
	size_t tab = (size_t)x->argc * sizeof(*av);
	struct resp_seg seg = {.p = data + tab, .len = x->len};
	struct resp_cmd cmd = {.argc = x->argc, .argv = av, .len = x->len};
	struct resp_buf b;
	bool ok = x->argc >= 1 && tab + x->len <= KVMW_BUF && x->command <= ncommands();

	for (unsigned i = 0; ok && i < x->argc; i++)
		ok = (uint64_t)av[i].off + av[i].len + 2 <= x->len;
	if (!ok) {
		out_err(pk, "ERR forwarded request unreadable");
		return;
	}
	resp_buf_init(&b, &seg, 1);
	dispatch(&(struct req){.d = d,
	                       .kc = pk,
	                       .b = &b,
	                       .base = 0,
	                       .cmd = &cmd,
	                       .queued = true,
	                       .found = x->command ? command_at(x->command - 1) : NULL});
}

static void run_slot(struct kvd *d, struct mw *m, struct mw_slot *x)
{
	struct kconn *pk = &m->pk;

	kvmw_pk_ready(m, x->db);
	arena_reset(d);
	if (x->kind == K_TXN) {
		pk->mq = malloc(x->len ? x->len : 1);
		if (pk->mq) {
			memcpy(pk->mq, sreq(m, x, 0, x->len), x->len);
			pk->mq_len = pk->mq_cap = x->len;
			pk->mq_n = x->nq;
			pk->multi = true;
			d->st.cmds++;
			cmd_exec(&(struct req){.d = d, .kc = pk});
		} else {
			out_err(pk, "ERR out of memory");
		}
	} else {
		run_one(d, m, pk, x);
	}
	take_output(d, m, pk, x);
	multi_free(d, pk);
	resp_parser_free(&pk->rp);
	arena_reset(d);
	m->shm->pub[m->me].served++;
}

/*
 * The slots' headers were written by another worker (on another CPU): ask for them (for writing:
 * we store RUN and the reply, or FREE, there) a few slots ahead, so that the cache misses of a
 * batch overlap instead of one after the other. Up to all four lines: a small request's data.
 * (Generic x86-64 compiles the "for writing" to a read prefetch; PREFETCHW measured no better:
 * docs/multicore.md, "The closed loop's extra".)
 */
#define KVMW_AHEAD 8

static void prefetch_slot(const struct mw_slot *x)
{
	for (unsigned k = 0; k < sizeof(*x); k += 64)
		__builtin_prefetch((const uint8_t *)x + k, 1);
}

/*
 * The work hook: in every round, after the connections' callbacks, before the round's fence. Run
 * the requests other workers posted to us (per sender in posting order): their writes share this
 * round's fence. Hand the replies of every connection whose flight landed to it and serve what
 * its client sent on; retry the stalled ones. What this queues leaves in this round.
 */
static void work_hook(struct paste_ctx *ctx, void *arg)
{
	struct kvd *d = arg;
	struct mw *m = d->mw;
	struct mw_wait **v;
	unsigned nv;

	(void)ctx;
	__atomic_store_n(&m->shm->pub[m->me].sleeping, 0, __ATOMIC_RELAXED);
	m->shm->pub[m->me].ticks++;
	for (unsigned s = 0; s < m->n; s++) {
		struct mw_pair *p = pair(m, s, m->me);
		uint64_t posted = __atomic_load_n(&p->posted, __ATOMIC_ACQUIRE);

		if (p->taken < posted)
			d->now_ms = wall_ms(); /* once for the batch, as on_data for a client's */
		for (uint64_t t = p->taken + 1; t <= posted && t <= p->taken + KVMW_AHEAD; t++)
			prefetch_slot(slot(m, s, m->me, (unsigned)(t % m->slots)));
		while (p->taken < posted) {
			struct mw_slot *x =
			    slot(m, s, m->me, (unsigned)((p->taken + 1) % m->slots));

			if (p->taken + 1 + KVMW_AHEAD <= posted)
				prefetch_slot(
				    slot(m, s, m->me,
				         (unsigned)((p->taken + 1 + KVMW_AHEAD) % m->slots)));
			if (ld(&x->state) != S_REQ || x->ticket != p->taken + 1)
				break;        /* (cannot happen: posted counts only slots in REQ) */
			st(&x->state, S_RUN); /* (only the owner moves a slot out of REQ) */
			p->taken++;
			run_slot(d, m, x);
			m->ran[m->nran++] = x;
			mw_kill_point(MW_KILL_RAN);
		}
	}
	nv = m->nwaits;
	v = nv ? malloc(nv * sizeof(*v)) : NULL;
	if (v) { /* a snapshot: serving a connection changes the list (none is freed here: on_close
		  * runs in the round's reaping, after this) */
		memcpy(v, m->waits, nv * sizeof(*v));
		for (unsigned j = 0; j < nv; j++) /* the states the landing pass reads (prefetch) */
			for (unsigned k = 0; k < v[j]->n; k++) {
				const struct mw_ent *e = &v[j]->q[(v[j]->head + k) % KVMW_DEPTH];

				if (!e->here)
					__builtin_prefetch(slot(m, m->me, e->o, e->i), 0);
			}
		for (unsigned j = 0; j < nv; j++) {
			struct mw_wait *w = v[j];
			bool took = w->n && mw_flight_ready(m, w) && mw_land(m, w);

			if (w->kc->closing)
				continue;
			if (took) {
				w->stalled = false;
				on_data(w->c,
				        d); /* send the replies, serve what the client sent on */
			}
		}
		m->freed = false; /* the stalled ones now see every slot freed so far */
		for (unsigned j = 0; j < nv; j++) {
			struct mw_wait *w = v[j];

			if (w->kc->closing)
				continue;
			if (w->stalled && !w->n) { /* waits for a slot: try again */
				w->stalled = false;
				on_data(w->c, d);
			}
			if (!w->n && !w->stalled)
				mw_unlist(m, w);
		}
		free(v);
	}
}

/* The round hook: after the round's fence, before its output leaves. The requests run in this
 * round are durable: DONE; the ones posted in it go to their owners; wake who sleeps. */
static int round_hook(struct paste_ctx *ctx, void *arg)
{
	struct mw *m = ((struct kvd *)arg)->mw;

	(void)ctx;
	publish_ran(m);
	publish_posted(m);
	wake_all(m);
	return 0;
}

/* After every round: free orphaned slots, publish the counters INFO shows. */
void kvmw_tick(struct kvd *d)
{
	struct mw *m = d->mw;
	struct paste_kv_info ki;

	if (!m)
		return;
	sweep_orphans(m);
	paste_kv__info(d->kv, &ki, sizeof(ki));
	m->shm->pub[m->me].keys = ki.keys;
	m->shm->pub[m->me].cmds = d->st.cmds;
	m->shm->pub[m->me].conns = d->st.conns;
}

/* Is anything for us in the shared slots: a request posted to us, or a reply (DONE/LOST) at the
 * head of a connection's flight? */
static bool work_waiting(const struct mw *m)
{
	for (unsigned s = 0; s < m->n; s++) {
		const struct mw_pair *p = pair(m, s, m->me);

		if (__atomic_load_n(&p->posted, __ATOMIC_ACQUIRE) > p->taken &&
		    ld(&slot(m, s, m->me, (unsigned)((p->taken + 1) % m->slots))->state) == S_REQ)
			return true;
	}
	for (unsigned j = 0; j < m->nwaits; j++) {
		const struct mw_wait *w = m->waits[j];

		if (w->n && mw_flight_ready(m, w))
			return true;
	}
	return false;
}

/*
 * The poll's timeout: 0 while something is ready here (a stalled connection can go on) or in the
 * shared slots; else KVMW_IDLE_MS, and we are "sleeping" for the peers (wake_all) until the next
 * tick.
 */
int kvmw_timeout(const struct kvd *d)
{
	struct mw *m = d->mw;

	if (!m)
		return -1;
	for (unsigned j = 0; m->freed && j < m->nwaits; j++)
		if (m->waits[j]->stalled && !m->waits[j]->n) /* a slot came free for it */
			return 0;
	__atomic_store_n(&m->shm->pub[m->me].sleeping, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* pairs with wake_all's */
	if (work_waiting(m)) {
		__atomic_store_n(&m->shm->pub[m->me].sleeping, 0, __ATOMIC_RELAXED);
		return 0;
	}
	return KVMW_IDLE_MS;
}

/* INFO's "# Workers": every worker's published counters. */
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
		           ",lost=%" PRIu64 ",crossslot=%" PRIu64 ",conns=%" PRIu64
		           ",wakeups=%" PRIu64 "\r\n",
		           k, p->pid, p->starts, p->cmds, p->keys, p->forwarded, p->served, p->lost,
		           p->crossslot, p->conns, p->wakeups);
	}
	big_printf(d, "\r\n");
}

void kvmw_stats(const struct kvd *d)
{
	const struct mw *m = d->mw;
	const struct mw_pub *p;

	if (!m)
		return;
	p = &m->shm->pub[m->me];
	printf(" forwarded=%" PRIu64 " served_for_others=%" PRIu64 " wakeups=%" PRIu64
	       " ticks=%" PRIu64 " lost=%" PRIu64,
	       p->forwarded, p->served, p->wakeups, p->ticks, p->lost);
}
