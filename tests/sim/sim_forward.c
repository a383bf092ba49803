/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_forward.c - paste-kv --queues' forwarding protocol under crashes of either worker and of
 * everything (paste-powerfail --probe forward).
 *
 * An exhaustive model check, not a run of the daemon: the steps of src/apps/kv_multi_worker.c and
 * kv_multi_route.c are restated here, one shared-memory store per step, and every interleaving of
 * a sender worker S, an owner worker O and crashes is explored (depth-first, states deduplicated
 * by a hash). One client connection on S sends FW_REQS pipelined writes for keys O owns (keys
 * A, B, A), at most FW_DEPTH in flight, through a ring of FW_SLOTS slots (so the ring wraps).
 *
 *  sender: post1 (slot filled, ticket = last + 1 where last is the sender's own count of the
 *          slots it filled, state REQ; any number of post1 may come before a post2), post2
 *          (posted = last: the requests posted in a round published as one batch, at the round's
 *          end); land
 *          (mw_land: replies of DONE slots in request order; a LOST one aborts the connection and
 *          the replies queued in the same pass are dropped with it); orphan sweep (a slot no
 *          connection waits for that is DONE or LOST goes FREE); the client may reconnect after a
 *          reset and send its remaining requests;
 *  owner:  take1 (REQ -> RUN of the slot of ticket taken + 1: a plain store in the daemon, since
 *          only the owner moves a slot out of REQ), take2 (taken++), run (the
 *          write is applied to the owner's store, not yet durable), fence (the poll: everything
 *          applied is durable), publish (the slots run before that fence go DONE);
 *  crashes (at most FW_CRASHES per path, at any point between two steps):
 *          owner kill -9: of the writes applied since its last fence any per-key prefix is on media
 *            (the index commits a put in one store; a later put of a key contains the earlier
 *            ones here since writes append); its restart (kvmw_start) turns RUN slots into LOST and
 *            moves taken past them;
 *          sender kill -9: its client's connection is reset; its restart counts the slots it left
 *            in REQ past posted (kvmw_start; last starts there) and its sweep frees DONE/LOST
 *            slots;
 *          power failure: both die, the shared mapping is gone (a fresh one at restart), the owner
 *            keeps what its media holds (as above).
 *
 * Checked in every state: each write is in its key's store at most once (nothing applied twice)
 * and a key's writes are in the connection's order; a reply reaches the client only when its write
 * is durable on the owner, and every acknowledged write stays durable through every later crash.
 * In every state without a next step (both workers up, nothing left to do): no request is still in
 * flight (each was acknowledged or its client reset) and every slot is FREE (none leaked).
 *
 * What a LOST slot means (counted and printed): its write may or may not be on the owner's media
 * and the client got no reply for it (nor for the rest of the connection's requests in flight: the
 * connection is reset) - as a crash of one paste-kv process. Unlike one process, requests of the
 * reset connection posted behind the LOST one still run at the owner: a later unacknowledged
 * write can be durable while an earlier one is not ("gaps" below); acknowledged writes never have
 * a gap before them that a reply claimed (a reply is for one write, and it is durable).
 *
 * --probe forward also runs each mutation below and fails unless every one is caught.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define FW_MAXREQ  6
#define FW_MAXSLOT 4
#define FW_KEYS    2
#define FW_MAXLIST (FW_MAXREQ + 1) /* room for one duplicate */

/* The size of the check (sim_probe_forward's arguments). */
static unsigned FW_REQS = 3, FW_SLOTS = 2, FW_DEPTH = 2, FW_CRASHES = 2;

enum { S_FREE, S_REQ, S_RUN, S_DONE, S_LOST };
enum { C_UNSENT, C_FLIGHT, C_ACKED, C_RESET };

enum fw_mut {
	MUT_NONE,
	MUT_DONE_BEFORE_FENCE, /* owner publishes DONE right after running, before the fence */
	MUT_RERUN_LOST,        /* owner restart puts RUN slots back to REQ (run again) */
	MUT_ACK_LOST,          /* sender answers a LOST slot as if it were DONE */
	MUT_NO_TAKEN_FIX,      /* owner restart leaves taken behind a LOST slot */
	MUT_NO_POSTED_FIX,     /* sender restart does not count a slot it left in REQ */
	MUT_POSTED_FIRST,      /* sender advances posted before the slot is REQ */
	MUT_N
};

static const char *const mut_names[MUT_N] = {
    "none",         "done-before-fence", "rerun-lost",   "ack-lost",
    "no-taken-fix", "no-posted-fix",     "posted-first",
};

struct fw_slot {
	uint8_t state, ticket, req;
};

struct fw_list {
	uint8_t n, id[FW_MAXLIST];
};

/* Everything a path's future depends on; zeroed padding, compared and hashed as bytes. */
struct fw_state {
	struct fw_slot slot[FW_MAXSLOT];
	uint8_t posted, taken;
	/* sender */
	uint8_t s_up, conn, last;  /* last: ticket of the newest slot filled (posted lags it) */
	uint8_t q[FW_MAXSLOT], qn; /* slots the connection waits for, in request order */
	uint8_t busy[FW_MAXSLOT];
	/* owner */
	uint8_t o_up, tk; /* tk: slot between take1 and take2, +1 */
	uint8_t ran[FW_MAXSLOT], nran, ran_fenced[FW_MAXSLOT];
	uint8_t pq[FW_MAXSLOT], npq; /* slots taken but not yet run, in taking order */
	struct fw_list vol[FW_KEYS], dur[FW_KEYS];
	/* client */
	uint8_t st[FW_MAXREQ], next;
	uint8_t crashes;
};

static const uint8_t req_key[FW_MAXREQ] = {0, 1, 0, 0, 1, 0}; /* A B A A B A */

struct fw {
	enum fw_mut mut;
	const char *path[256]; /* the steps to the state being explored */
	unsigned depth;
	char trace[2048]; /* the path to the first violation */
	struct sim_seen seen;
	uint64_t states, terminals, violations, lost_seen, reset_applied, reset_absent, gaps;
	char first[256];
};

static void viol(struct fw *f, const char *fmt, const char *what)
{
	size_t at = 0;

	if (f->violations++)
		return;
	snprintf(f->first, sizeof(f->first), fmt, what);
	for (unsigned i = 0; i < f->depth && at < sizeof(f->trace) - 32; i++)
		at += (size_t)snprintf(f->trace + at, sizeof(f->trace) - at, "%s%s", i ? " " : "",
		                       f->path[i]);
}

static bool in_list(const struct fw_list *l, uint8_t id)
{
	for (unsigned i = 0; i < l->n; i++)
		if (l->id[i] == id)
			return true;
	return false;
}

static void check(struct fw *f, const struct fw_state *s)
{
	for (unsigned k = 0; k < FW_KEYS; k++)
		for (int d = 0; d < 2; d++) {
			const struct fw_list *l = d ? &s->dur[k] : &s->vol[k];

			for (unsigned i = 1; i < l->n; i++) {
				for (unsigned j = 0; j < i; j++)
					if (l->id[j] == l->id[i])
						viol(f, "a write was applied twice (%s)",
						     mut_names[f->mut]);
				if (l->id[i] < l->id[i - 1])
					viol(
					    f,
					    "a key's writes are out of the connection's order (%s)",
					    mut_names[f->mut]);
			}
		}
	for (unsigned r = 0; r < FW_REQS; r++)
		if (s->st[r] == C_ACKED && !in_list(&s->dur[req_key[r]], (uint8_t)r))
			viol(f, "an acknowledged write is not durable on the owner (%s)",
			     mut_names[f->mut]);
}

/* The owner's media after a crash: the durable writes plus, per key, a prefix of the rest. */
static void crash_media(struct fw_state *s, unsigned choice)
{
	for (unsigned k = 0; k < FW_KEYS; k++) {
		unsigned extra = s->vol[k].n - s->dur[k].n, take = choice % (extra + 1);

		choice /= extra + 1;
		s->dur[k].n = (uint8_t)(s->dur[k].n + take);
		memcpy(s->dur[k].id, s->vol[k].id, sizeof(s->dur[k].id));
		memset(s->dur[k].id + s->dur[k].n, 0, FW_MAXLIST - s->dur[k].n);
		s->vol[k] = s->dur[k];
	}
}

static unsigned media_choices(const struct fw_state *s)
{
	unsigned n = 1;

	for (unsigned k = 0; k < FW_KEYS; k++)
		n *= (unsigned)(s->vol[k].n - s->dur[k].n) + 1;
	return n;
}

static void reset_client(struct fw_state *s)
{
	for (unsigned r = 0; r < FW_REQS; r++)
		if (s->st[r] == C_FLIGHT)
			s->st[r] = C_RESET;
	for (unsigned i = 0; i < s->qn; i++)
		s->busy[s->q[i]] = 0;
	s->qn = 0;
	s->conn = 0;
}

static void owner_down(struct fw_state *s)
{
	s->o_up = 0;
	s->tk = 0;
	s->nran = 0;
	memset(s->ran, 0, sizeof(s->ran));
	memset(s->ran_fenced, 0, sizeof(s->ran_fenced));
	memset(s->pq, 0, sizeof(s->pq));
	s->npq = 0;
}

static void sender_down(struct fw_state *s)
{
	reset_client(s);
	memset(s->busy, 0, sizeof(s->busy));
	s->s_up = 0;
	s->last = 0; /* the process's memory: recomputed at restart */
}

static void explore(struct fw *f, const struct fw_state *s);

static void go(struct fw *f, struct fw_state *n, const char *step)
{
	if (f->depth < 256)
		f->path[f->depth] = step;
	f->depth++;
	check(f, n);
	explore(f, n);
	f->depth--;
}

static void terminal(struct fw *f, const struct fw_state *s)
{
	f->terminals++;
	for (unsigned r = 0; r < FW_REQS; r++) {
		if (s->st[r] == C_FLIGHT)
			viol(f, "a request is stuck in flight with nothing left to run it (%s)",
			     mut_names[f->mut]);
		if (s->st[r] == C_RESET) {
			if (in_list(&s->dur[req_key[r]], (uint8_t)r))
				f->reset_applied++;
			else
				f->reset_absent++;
			for (unsigned l = r + 1; l < FW_REQS; l++)
				if (!in_list(&s->dur[req_key[r]], (uint8_t)r) &&
				    in_list(&s->dur[req_key[l]], (uint8_t)l))
					f->gaps++;
		}
	}
	for (unsigned i = 0; i < FW_SLOTS; i++)
		if (s->slot[i].state != S_FREE)
			viol(f, "a slot leaked (not FREE when nothing is left to do) (%s)",
			     mut_names[f->mut]);
}

/* A reply reaches the client: a pipelining client takes it for its oldest unanswered request. */
static void ack(struct fw *f, struct fw_state *n, uint8_t r)
{
	for (unsigned e = 0; e < r; e++)
		if (n->st[e] == C_FLIGHT)
			viol(
			    f,
			    "a reply reached the client before the reply to an earlier request (%s)",
			    mut_names[f->mut]);
	n->st[r] = C_ACKED;
}

/* mw_land for the connection: replies in request order; a LOST one aborts the connection. */
static bool land(struct fw *f, const struct fw_state *s, struct fw_state *n)
{
	uint8_t acked[FW_MAXREQ];
	unsigned na = 0;
	bool lost = false, took = false;

	*n = *s;
	while (n->qn) {
		struct fw_slot *x = &n->slot[n->q[0]];

		if (x->state < S_DONE)
			break;
		if (x->state == S_LOST && f->mut != MUT_ACK_LOST) {
			lost = true;
			f->lost_seen++;
		} else if (!lost) {
			acked[na++] = x->req;
		}
		n->st[x->req] = C_RESET; /* until acknowledged below */
		n->busy[n->q[0]] = 0;
		x->state = S_FREE;
		memmove(n->q, n->q + 1, n->qn - 1);
		n->q[--n->qn] = 0;
		took = true;
	}
	if (!took)
		return false;
	if (lost) {
		reset_client(n);
		return true;
	}
	for (unsigned i = 0; i < na; i++) {
		if (!in_list(&n->dur[req_key[acked[i]]], acked[i]))
			viol(f, "a reply left before its write was durable (%s)",
			     mut_names[f->mut]);
		ack(f, n, acked[i]);
	}
	return true;
}

static void explore(struct fw *f, const struct fw_state *s)
{
	struct fw_state n;
	bool any = false;

	if (!sim_seen_visit(&f->seen, sim_seen_hash(s, sizeof(*s))))
		return;
	f->states++;
	if (f->violations && f->mut != MUT_NONE)
		return; /* caught: enough */

	/* ---- sender ---- */
	if (s->s_up) {
		unsigned i = (unsigned)(s->last + 1) % FW_SLOTS;
		bool unposted = s->last != s->posted;

		if (f->mut == MUT_POSTED_FIRST) /* a slot filled but not REQ yet (busy and FREE) */
			for (unsigned j = 0; j < FW_SLOTS; j++)
				unposted |= s->busy[j] && s->slot[j].state == S_FREE;
		if (s->conn && s->next < FW_REQS && s->qn < FW_DEPTH && !s->busy[i] &&
		    s->slot[i].state == S_FREE) { /* post1 */
			n = *s;
			n.slot[i] = (struct fw_slot){S_REQ, (uint8_t)(s->last + 1), s->next};
			n.busy[i] = 1;
			n.q[n.qn++] = (uint8_t)i;
			n.st[s->next] = C_FLIGHT;
			n.next++;
			n.last++;
			if (f->mut == MUT_POSTED_FIRST) { /* posted first, the slot a step later */
				n.slot[i].state = S_FREE;
				n.posted = n.slot[i].ticket;
			}
			any = true;
			go(f, &n, "post1");
		}
		if (unposted) { /* post2: the round's posts published */
			n = *s;
			if (f->mut == MUT_POSTED_FIRST) {
				for (unsigned j = 0; j < FW_SLOTS; j++)
					if (n.busy[j] && n.slot[j].state == S_FREE)
						n.slot[j].state = S_REQ;
			} else {
				n.posted = s->last;
			}
			any = true;
			go(f, &n, "post2");
		}
		if (land(f, s, &n)) {
			any = true;
			go(f, &n, "land");
		}
		for (unsigned j = 0; j < FW_SLOTS; j++)
			if (!s->busy[j] && s->slot[j].state >= S_DONE) { /* orphan sweep */
				n = *s;
				n.slot[j].state = S_FREE;
				any = true;
				go(f, &n, "sweep");
			}
		if (!s->conn && s->next < FW_REQS) { /* the client reconnects */
			n = *s;
			n.conn = 1;
			any = true;
			go(f, &n, "reconnect");
		}
	} else { /* restart (kvmw_start as a sender) */
		n = *s;
		n.s_up = 1;
		for (unsigned j = 0; j < FW_SLOTS; j++)
			if (f->mut != MUT_NO_POSTED_FIX && n.slot[j].state == S_REQ &&
			    n.slot[j].ticket > n.posted)
				n.posted = n.slot[j].ticket;
		n.last = n.posted;
		any = true;
		go(f, &n, "S-restart");
	}

	/* ---- owner ---- */
	if (s->o_up) {
		unsigned i = (unsigned)(s->taken + 1) % FW_SLOTS;

		if (!s->tk && s->taken < s->posted && s->slot[i].state == S_REQ &&
		    s->slot[i].ticket == s->taken + 1) { /* take1: REQ -> RUN */
			n = *s;
			n.slot[i].state = S_RUN;
			n.tk = (uint8_t)(i + 1);
			any = true;
			go(f, &n, "take1");
		}
		if (s->tk) { /* take2: taken++ */
			n = *s;
			n.taken++;
			n.pq[n.npq++] = (uint8_t)(s->tk - 1);
			n.tk = 0;
			any = true;
			go(f, &n, "take2");
		}
		if (s->npq) { /* run the oldest taken: the write, not yet durable */
			unsigned j = s->pq[0];
			struct fw_list *l;

			n = *s;
			l = &n.vol[req_key[n.slot[j].req]];
			if (l->n < FW_MAXLIST)
				l->id[l->n++] = n.slot[j].req;
			memmove(n.pq, n.pq + 1, n.npq - 1);
			n.pq[--n.npq] = 0;
			n.ran[n.nran] = (uint8_t)j;
			n.ran_fenced[n.nran++] = 0;
			if (f->mut == MUT_DONE_BEFORE_FENCE)
				n.ran_fenced[n.nran - 1] = 1;
			any = true;
			go(f, &n, "run");
		}
		if (memcmp(s->vol, s->dur, sizeof(s->vol)) ||
		    (s->nran && !s->ran_fenced[s->nran - 1])) { /* the poll's fence */
			n = *s;
			memcpy(n.dur, n.vol, sizeof(n.dur));
			memset(n.ran_fenced, 1, n.nran);
			any = true;
			go(f, &n, "fence");
		}
		if (s->nran && s->ran_fenced[0]) { /* publish DONE, oldest first */
			n = *s;
			n.slot[n.ran[0]].state = S_DONE;
			memmove(n.ran, n.ran + 1, n.nran - 1);
			memmove(n.ran_fenced, n.ran_fenced + 1, n.nran - 1);
			n.nran--;
			n.ran[n.nran] = n.ran_fenced[n.nran] = 0;
			any = true;
			go(f, &n, "publish");
		}
	} else { /* restart (kvmw_start as an owner) */
		n = *s;
		n.o_up = 1;
		for (unsigned j = 0; j < FW_SLOTS; j++)
			if (n.slot[j].state == S_RUN) {
				if (f->mut == MUT_RERUN_LOST) {
					n.slot[j].state = S_REQ;
					if (n.slot[j].ticket <= n.taken)
						n.taken = (uint8_t)(n.slot[j].ticket - 1);
				} else {
					n.slot[j].state = S_LOST;
					if (f->mut != MUT_NO_TAKEN_FIX &&
					    n.slot[j].ticket > n.taken)
						n.taken = n.slot[j].ticket;
				}
			}
		any = true;
		go(f, &n, "O-restart");
	}

	if (!any)
		terminal(f, s);

	/* ---- crashes ---- */
	if (s->crashes >= FW_CRASHES)
		return;
	if (s->o_up)
		for (unsigned c = 0; c < media_choices(s); c++) { /* owner kill -9 */
			n = *s;
			n.crashes++;
			crash_media(&n, c);
			owner_down(&n);
			go(f, &n, "O-kill");
		}
	if (s->s_up) { /* sender kill -9 */
		n = *s;
		n.crashes++;
		sender_down(&n);
		go(f, &n, "S-kill");
	}
	if (s->o_up && s->s_up)
		for (unsigned c = 0; c < media_choices(s); c++) { /* power failure: everything */
			n = *s;
			n.crashes++;
			crash_media(&n, c);
			owner_down(&n);
			sender_down(&n);
			memset(n.slot, 0, sizeof(n.slot));
			n.posted = n.taken = 0;
			go(f, &n, "power");
		}
}

static void run(struct fw *f)
{
	struct fw_state s0;

	memset(&s0, 0, sizeof(s0));
	s0.s_up = s0.o_up = s0.conn = 1;
	explore(f, &s0);
	sim_seen_free(&f->seen);
}

int sim_probe_forward(unsigned reqs, unsigned slots, unsigned depth, unsigned crashes)
{
	struct fw f = {.mut = MUT_NONE};
	int fail = 0;

	if (reqs < 1 || reqs > FW_MAXREQ || slots < 1 || slots > FW_MAXSLOT || depth < 1 ||
	    depth > slots || crashes > 8) {
		fprintf(stderr,
		        "paste-powerfail: --probe forward: want --ops 1..%d requests, --capacity "
		        "1..%d slots, --depth 1..slots, --crashes 0..8\n",
		        FW_MAXREQ, FW_MAXSLOT);
		return 2;
	}
	FW_REQS = reqs;
	FW_SLOTS = slots;
	FW_DEPTH = depth;
	FW_CRASHES = crashes;

	run(&f);
	printf(
	    "forward: %u requests (keys A B A A B A), %u slots, %u in flight, up to %u crashes "
	    "(owner, sender, power): %llu states, %llu final; %llu LOST slots seen; reset writes "
	    "durable %llu, absent %llu, later write durable after an absent one %llu; "
	    "%llu violations%s%s\n",
	    FW_REQS, FW_SLOTS, FW_DEPTH, FW_CRASHES, (unsigned long long)f.states,
	    (unsigned long long)f.terminals, (unsigned long long)f.lost_seen,
	    (unsigned long long)f.reset_applied, (unsigned long long)f.reset_absent,
	    (unsigned long long)f.gaps, (unsigned long long)f.violations, f.violations ? ": " : "",
	    f.first);
	if (f.violations || !f.lost_seen || !f.reset_applied || !f.reset_absent)
		fail = 1;
	if (!f.violations && fail)
		printf(
		    "forward: too small to mean anything: it reached no LOST slot, or no reset write "
		    "both durable and absent (give it --crashes 1 or more)\n");
	for (int m = MUT_NONE + 1; m < MUT_N; m++) {
		struct fw g = {.mut = (enum fw_mut)m};

		run(&g);
		printf("forward: mutation %-17s %s%s\n", mut_names[m],
		       g.violations ? "caught: " : "NOT CAUGHT", g.violations ? g.first : "");
		if (!g.violations)
			fail = 1;
	}
	if (f.violations)
		printf("forward: the first violation's path: %s\n", f.trace);
	printf("forward: %s\n", fail ? "FAILED" : "ok");
	return fail;
}
