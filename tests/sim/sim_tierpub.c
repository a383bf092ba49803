/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_tierpub.c - paste-wal --queues N --tier-dir: the publish order of a destage job and the
 * reads of another worker's tier, under kill -9 of either worker and power failures
 * (paste-powerfail --probe tierpub).
 *
 * An exhaustive model check, not a run of the daemon (as sim_forward.c): the steps of
 * src/apps/wal_tier.c (job_start, job_write, job_commit, tier_open's recovery), wal_multi.c
 * (wal_multi_tier_bounds, wal_multi_pool_first, peer_fetch, live_first) and wal_tier_peer.c
 * (tier_peer_read: its cached segment, the re-lookup) are restated here, one persistent or shared
 * store per step, and every interleaving of two workers' steps and crashes is explored
 * (depth-first, states deduplicated by a hash). Worker 0 owns a log of RECS records (all
 * acknowledged: durable in its pool log at the start), destages them in jobs of 1..JOB records into
 * segment files of at most SEG records and may get one DELETE ?upto=RECS-1; worker 1 reads worker
 * 0's records (two reads, any record each, any time). (Worker 1 destaging its own log would only
 * add interleavings of steps independent of these.)
 *
 *  owner (event loop and destage thread):
 *    start     a job takes the pool log's oldest records; a new segment file when the last one is
 *              full (or there is none): its directory entry exists, not durable;
 *    write     the thread writes the records (page cache: visible to readers, not durable);
 *    sync      fdatasync: the file's records are durable;
 *    dirsync   fsync of the directory when the file is new: its name is durable, and so are the
 *              directory's earlier unlinks;
 *    commit    one step each: the tier word (only when the tier was empty: stored, flushed and
 *              fenced), the published tier_first, the published tier_end, the pool log's head
 *              (persisted and fenced), the published pool first, the drain (frames released);
 *    reuse     a released frame is taken by a new append (its old bytes are gone);
 *    delete    (tier_truncate, own_truncate; nothing else of the owner in between) the new
 *              tier_first published, the tier word switched (0 when the tier empties, and when it
 *              was empty already), whole segments below unlinked, the pool first published, the
 *              head moved, the frames released; a crash leaves it requested (trunc_req) and the
 *              restart does it again;
 *    stop and start (once per path, while idle; not a crash).
 *  reader (the other worker, peer_fetch): two passes of: load tier_end, load first, live_first's
 *    three loads (first, tier_end, tier_first), then the pool view's copy (checked: header and
 *    CRC32C, so reused frames fail) or tier_peer_read (atomic here: list and open the segment
 *    with the highest first <= the record, or keep the cached one; walk and check; once more
 *    after a re-lookup), then the re-check of the published first / live_first;
 *  crashes (at most CRASHES per path, between any two steps):
 *    kill -9 of a worker: its memory, its destage job and its reader's read are gone; the page
 *      cache (segment bytes written, names made, unlinks) and every store to the pool file stay;
 *    power failure: both workers; a segment file keeps its synced records and any prefix of the
 *      unsynced ones, possibly with a torn record after them; a file whose name was not synced
 *      may be gone, one whose unlink was not may be back; the tier word keeps what was fenced;
 *      each field of the published page is its last value or what it was when the worker last
 *      started (the page is persisted only then: its fields are stored, never flushed);
 *    restart: recovery as tier_open (files sorted; a file wholly at or above the pool head, or
 *      any file when the tier word is 0, is deleted; records [tier word, pool head) are walked
 *      and must all check out; copies at or above the pool head are cut), then the tier bounds
 *      are published, then the pool first; then the worker serves.
 *
 * Checked: at every restart, every record not dropped by a DELETE is either in the pool log with
 * its frames intact or in the recovered tier range with a copy that checks out, and the tier
 * range ends exactly at the pool head (so none is lost, none named twice, the start is not
 * refused); in every state where the owner's page is not a power failure's leftover, every record
 * not being dropped is where the page would send a reader (at or above the published first:
 * frames intact; below: inside [live_first, tier_end) and in the segment a listing finds); every
 * read returns the record's bytes or a miss, never other bytes; a miss only for a record a DELETE
 * drops or if the owner's page was a power failure's leftover during the read (counted: until
 * the owner restarts, a peer can 404 a record that exists); never a record whose DELETE was done.
 * In a final state every record is in the tier. --probe tierpub then runs each mutation (without
 * the page invariant: a reader or a recovery must see it) and fails unless every one is caught.
 *
 * The reader's tier lookup also runs for real (real_read): for each new combination of the
 * owner's segment files, the reader's cached segment and the record, the files are written in the
 * segment format to a directory in /dev/shm and wal_tier_peer.c's tier_peer_read must give the
 * model's answer, the record's bytes and the model's cached segment.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "wal.h"
#include "wal_seg.h"

#define TP_MAXREC  5
#define TP_FILES   8
#define TP_W       2
#define TP_READS   2
#define TP_MAXSEG  4
#define TP_MAXJOB  3
#define TP_MAXPATH 256

static unsigned TP_RECS = 3, TP_SEG = 2, TP_JOB = 2, TP_CRASHES = 2;

enum tp_mut {
	MUT_NONE,
	MUT_TE_AFTER_HEAD,  /* tier_end/tier_first published after the head move and pool first */
	MUT_REL_BEFORE_1ST, /* the drain (frames released) before the pool first is published */
	MUT_NO_FDATASYNC,   /* the segment's fdatasync dropped */
	MUT_NO_DIRSYNC,     /* the directory's fsync after a new segment dropped */
	MUT_TIERWORD_NOFL,  /* the tier word stored but not flushed/fenced */
	MUT_NO_RELOOKUP,    /* tier_peer_read keeps its cached segment (no second pass) */
	MUT_TRUST_COPY,     /* the pool copy neither checked (CRC) nor re-checked against first */
	MUT_DEL_UNLINK_1ST, /* DELETE: segments deleted before the tier word is switched */
	MUT_STALE_WORD,     /* DELETE leaves an empty tier's word naming a record (the old code) */
	MUT_TE_BEFORE_TF,   /* the bounds' old order: tier_end stored before tier_first; live_first
	                       loads tier_first, tier_end, first (before the fix) */
	MUT_N
};

static const char *const mut_names[MUT_N] = {
    "none",          "te-after-head", "release-before-first", "no-fdatasync",     "no-dir-fsync",
    "tierword-nofl", "no-relookup",   "trust-copy",           "del-unlink-first", "stale-tierword",
    "te-before-tf",
};

/* The commit's steps, in wal_tier.c's order (job_commit) or a mutation's. */
enum { A_TW, A_TE, A_TF, A_HEAD, A_FIRST, A_REL, A_N };
static const char *const act_names[A_N] = {"c-tierword", "c-tier_end", "c-tier_first",
                                           "c-head",     "c-first",    "c-release"};

enum { J_NONE, J_STARTED, J_WRITTEN, J_SYNCED, J_DONE, J_COMMIT };
enum { UP_DOWN, UP_RECOVERED, UP_BOUNDS, UP_SERVING };
/* DELETE (tier_truncate, then own_truncate), on the event loop: nothing else of the owner runs
 * between its steps. A crash leaves it requested (trunc_req is persisted first); the restarted
 * worker does it again. */
enum { D_NONE, D_REQ, D_TIERWORD, D_UNLINK, D_POOL, D_HEAD, D_REL, D_DONE };
enum {
	R_IDLE,
	R_LD_TE,
	R_LD_PF,
	R_LD_LF,
	R_LD_LF2,
	R_LD_LF3,
	R_POOL,
	R_POOL_CHK,
	R_TIER,
	R_TIER_CHK
};

/* One segment file (an inode: a reader's open descriptor keeps it after its name is gone). */
struct tp_file {
	uint8_t first; /* its name: seg-<first> */
	uint8_t n;     /* records first, first+1, ... in the page cache, each checking out */
	uint8_t s;     /* of those, durable (fdatasync'd) */
	uint8_t dur;   /* the name is durable (directory synced); once gone: the unlink is not */
	uint8_t gone;  /* unlinked */
	uint8_t torn;  /* a torn record after the n (left by a power failure) */
};

struct tp_own {
	uint8_t nrec;         /* its records: 1..nrec */
	uint8_t up, stale;    /* stale: the page is what media kept through a power failure */
	uint8_t ph;           /* the pool log's head: its first record (persisted, fenced) */
	uint8_t tw_v, tw_d;   /* the tier word: as stored, as on media */
	uint8_t tfirst, tend; /* memory: tier records [tfirst, tend) */
	uint8_t job, act, jf, je, jfile, jnew;
	uint8_t pub_tf, pub_te, pub_first; /* the page "wal.pub" */
	uint8_t per_tf, per_te, per_first; /* the page as persisted at the last start */
	uint8_t released, reused;          /* bit per record */
	uint8_t del, dfirst; /* DELETE ?upto=nrec-1: its step (D_*), the tier's new first */
	uint8_t nfiles;
	struct tp_file f[TP_FILES];
};

struct tp_rd {
	uint8_t ph, l, pass, te, pf, lf, wrong, stale, left, cfile, cfirst;
	uint8_t after_del; /* the read began after the owner's DELETE was done */
	uint8_t lf1, lf2;  /* live_first's first two loads (see R_LD_LF) */
};

struct tp_state {
	struct tp_own o[TP_W];
	struct tp_rd r[TP_W]; /* r[k] is worker k's reader, of worker 1 - k's records */
	uint8_t crashes;
	uint8_t restarted; /* worker 0 was stopped (SIGTERM) and started again: once per path */
};

struct tp {
	enum tp_mut mut;
	bool no_page_check; /* mutations: caught by what a reader or a recovery sees, not by the
	                       page invariant alone */
	const char *path[TP_MAXPATH];
	unsigned depth;
	char trace[4096];
	char first[256];
	struct sim_seen seen;
	uint64_t states, terminals, violations, recoveries, cuts, reads_pool, reads_tier, relookups,
	    stale_miss, full, steps, deletes, del_miss;
	/* The real reader (wal_tier_peer.c, wal_seg.c) on the model's files, once per distinct
	 * (files, cached segment, record): how often it ran, and disagreed. */
	struct sim_seen real_seen;
	char real_dir[128];
	uint64_t real_reads, real_disagree;
};

static uint8_t order[MUT_N][A_N];

static void viol(struct tp *t, const char *fmt, unsigned k, unsigned l)
{
	size_t at = 0;

	if (t->violations++)
		return;
	snprintf(t->first, sizeof(t->first), fmt, k, l);
	for (unsigned i = 0; i < t->depth && i < TP_MAXPATH && at < sizeof(t->trace) - 32; i++)
		at += (size_t)snprintf(t->trace + at, sizeof(t->trace) - at, "%s%s", i ? " " : "",
		                       t->path[i]);
}

static uint8_t bit(unsigned l)
{
	return (uint8_t)(1u << l);
}

/* The segment a listing finds for record @l (highest first <= l among the names), or -1. */
static int locate(const struct tp_own *o, unsigned l)
{
	int best = -1;

	for (unsigned i = 0; i < o->nfiles; i++)
		if (!o->f[i].gone && o->f[i].first <= l &&
		    (best < 0 || o->f[i].first > o->f[best].first))
			best = (int)i;
	return best;
}

/* Does file @i hold record @l, checking out, with every record before it (the walk)? */
static bool file_has(const struct tp_own *o, int i, unsigned l)
{
	return i >= 0 && l >= o->f[i].first && l - o->f[i].first < o->f[i].n;
}

static unsigned live_first(const struct tp_own *o)
{
	return o->pub_tf && o->pub_tf < o->pub_te ? o->pub_tf : o->pub_first;
}

/* Record @l may be gone: a DELETE that drops it was requested. */
static bool dropped(const struct tp_own *o, unsigned l)
{
	return o->del != D_NONE && l + 1 <= o->nrec;
}

/* The page sends a reader of @l to the pool at or above first, else to the tier: is it there? */
static void check(struct tp *t, const struct tp_state *s)
{
	for (unsigned k = 0; k < TP_W && !t->no_page_check; k++) {
		const struct tp_own *o = &s->o[k];

		if (o->stale)
			continue;
		for (unsigned l = 1; l <= o->nrec; l++) {
			if (dropped(o, l)) /* anywhere, or nowhere: what a reader gets is checked */
				continue;
			if (l < live_first(o))
				viol(t, "worker %u's page says record %u is not there (live_first)",
				     k, l);
			else if (l >= o->pub_first
			             ? (o->reused & bit(l)) != 0
			             : l >= o->pub_te || !file_has(o, locate(o, l), l))
				viol(
				    t,
				    "worker %u's page sends a reader of record %u to a copy that is "
				    "not there",
				    k, l);
		}
	}
}

static void explore(struct tp *t, const struct tp_state *s);

static void go(struct tp *t, struct tp_state *n, const char *step)
{
	if (t->depth < TP_MAXPATH)
		t->path[t->depth] = step;
	t->steps++;
	t->depth++;
	check(t, n);
	explore(t, n);
	t->depth--;
}

/* The read of worker k's reader ends: the record's bytes, other bytes, or a miss. */
static void finish(struct tp *t, struct tp_state *n, unsigned k, bool ok, bool tier)
{
	struct tp_rd *r = &n->r[k];

	const struct tp_own *o = &n->o[1 - k];

	if (ok && r->wrong)
		viol(t, "worker %u's reader got other bytes for record %u", k, r->l);
	else if (ok && r->after_del && dropped(o, r->l) && !r->stale)
		viol(t, "worker %u's reader got record %u after a DELETE of it was done", k, r->l);
	else if (!ok && dropped(o, r->l))
		t->del_miss++;
	else if (!ok && !r->stale)
		viol(t, "worker %u's reader missed record %u, which is committed", k, r->l);
	else if (!ok)
		t->stale_miss++;
	else if (tier)
		t->reads_tier++;
	else
		t->reads_pool++;
	r->ph = R_IDLE;
	r->left--;
	r->l = r->pass = r->te = r->pf = r->lf = r->wrong = r->stale = r->after_del = 0;
}

/* A pass failed: the second looks at the bounds again, after it the read misses. */
static void pass_end(struct tp *t, struct tp_state *n, unsigned k)
{
	struct tp_rd *r = &n->r[k];

	if (!r->pass) {
		r->pass = 1;
		r->ph = R_LD_TE;
		r->te = r->pf = r->lf = r->wrong = 0;
	} else {
		finish(t, n, k, false, false);
	}
}

/* tier_peer_read, atomic: the cached segment (opened earlier, maybe unlinked since) or a new
 * listing; walk and check; on a failure one more listing. */
static bool model_tier_read(struct tp *t, const struct tp_own *o, struct tp_rd *r, unsigned l)
{
	for (unsigned pass = 0; pass < 2; pass++) {
		if (pass && t->mut == MUT_NO_RELOOKUP)
			break;
		if (pass || !r->cfile || l < r->cfirst) {
			int i = locate(o, l);

			if (pass)
				t->relookups++;
			if (i < 0)
				return false;
			r->cfile = (uint8_t)(i + 1);
			r->cfirst = o->f[i].first;
		}
		if (file_has(o, r->cfile - 1, l))
			return true;
	}
	return false;
}

/* ---- the real reader on the model's files --------------------------------------------------- */

/* Record @seq's payload: its own length and bytes, so that any other record's differ. */
static uint32_t rec_bytes(unsigned seq, uint8_t *buf)
{
	uint32_t len = 5 + 3 * seq;

	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seq * 31 + i);
	return len;
}

/* Write file @f in the segment format at @name under @dirfd (a torn record: header and payload
 * without its CRC). @return an open descriptor or -1. */
static int real_file(int dirfd, const char *name, const struct tp_file *f)
{
	uint8_t buf[512];
	size_t at = 0;
	int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	for (unsigned i = 0; i < f->n + f->torn; i++) {
		struct wf_rec h = {.magic = WF_REC_MAGIC, .seq = f->first + i};
		uint32_t crc;

		h.len = rec_bytes(f->first + i, buf + at + sizeof(h));
		memcpy(buf + at, &h, sizeof(h));
		crc = paste_crc32c(0, buf + at, sizeof(h) + h.len);
		at += sizeof(h) + h.len;
		if (i < f->n) {
			memcpy(buf + at, &crc, 4);
			at += 4;
		}
	}
	if (write(fd, buf, at) != (ssize_t)at) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Lay the owner's segment files out in t->real_dir, open the reader's cached one (an unlinked
 * inode if the model's is gone), run tier_peer_read for record @l and compare with the model's
 * answer @ok and cache @r (after the model's read). Once per distinct combination. */
static void real_read(struct tp *t, const struct tp_own *o, const struct tp_rd *before,
                      const struct tp_rd *r, unsigned l, bool ok)
{
	uint8_t key[TP_FILES * 3 + 8] = {0}, want[512], got[512];
	struct tier_peer p = {.dirfd = -1, .fd = -1};
	char name[64];
	size_t at = 0;
	uint32_t len = 0;
	int dirfd, err;
	bool real_ok;

	for (unsigned i = 0; i < o->nfiles; i++)
		if (!o->f[i].gone) {
			key[at++] = o->f[i].first;
			key[at++] = o->f[i].n;
			key[at++] = o->f[i].torn;
		}
	at = TP_FILES * 3;
	if (before->cfile) {
		const struct tp_file *c = &o->f[before->cfile - 1];

		key[at++] = c->first;
		key[at++] = c->n;
		key[at++] = c->torn;
		key[at++] = c->gone;
		key[at++] = before->cfirst;
	}
	key[TP_FILES * 3 + 7] = (uint8_t)l;
	if (!sim_seen_visit(&t->real_seen, sim_seen_hash(key, sizeof(key))))
		return;
	t->real_reads++;
	dirfd = open(t->real_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		goto fail;
	for (unsigned i = 1; i <= TP_MAXREC + 1; i++) { /* the names: exactly the model's */
		seg_name(name, sizeof(name), i);
		unlinkat(dirfd, name, 0);
	}
	for (unsigned i = 0; i < o->nfiles; i++) {
		int fd;

		if (o->f[i].gone)
			continue;
		seg_name(name, sizeof(name), o->f[i].first);
		fd = real_file(dirfd, name, &o->f[i]);
		if (fd < 0)
			goto fail;
		if (before->cfile == i + 1)
			p.fd = fd;
		else
			close(fd);
	}
	if (before->cfile && o->f[before->cfile - 1].gone) { /* open, then unlinked */
		p.fd = real_file(dirfd, "unlinked.tmp", &o->f[before->cfile - 1]);
		unlinkat(dirfd, "unlinked.tmp", 0);
		if (p.fd < 0)
			goto fail;
	}
	if (p.fd >= 0) {
		p.off = malloc(4096 * sizeof(*p.off));
		if (!p.off)
			goto fail;
		p.cap = 4096;
		p.off[0] = 0;
		p.noff = 1;
		p.first = before->cfirst;
	}
	err = tier_peer_read(&p, t->real_dir, l, got, sizeof(got), &len);
	real_ok = !err;
	if (real_ok != ok || (ok && (len != rec_bytes(l, want) || memcmp(got, want, len))) ||
	    (ok && p.first != r->cfirst)) {
		t->real_disagree++;
		viol(t,
		     "wal_tier_peer.c and the model disagree on worker %u's record %u (the real "
		     "reader: other bytes, another answer or another cached segment)",
		     0, l);
	}
	tier_peer_close(&p);
	close(dirfd);
	return;
fail:
	tier_peer_close(&p);
	if (dirfd >= 0)
		close(dirfd);
	fprintf(stderr, "paste-powerfail: tierpub: cannot lay out segment files in %s\n",
	        t->real_dir);
	exit(2);
}

static void reader_steps(struct tp *t, const struct tp_state *s, unsigned k)
{
	const struct tp_own *o = &s->o[1 - k];
	const struct tp_rd *r = &s->r[k];
	struct tp_state n;

	if (s->o[k].up != UP_SERVING)
		return;
	if (r->ph == R_IDLE) {
		if (!r->left)
			return;
		for (unsigned l = 1; l <= o->nrec; l++) {
			n = *s;
			n.r[k].l = (uint8_t)l;
			n.r[k].ph = R_LD_TE;
			n.r[k].stale = o->stale;
			n.r[k].after_del = o->del == D_DONE;
			go(t, &n, k ? "r1-get" : "r0-get");
		}
		return;
	}
	n = *s;
	n.r[k].stale |= o->stale;
	switch (r->ph) {
	case R_LD_TE:
		n.r[k].te = o->pub_te;
		n.r[k].ph = R_LD_PF;
		break;
	case R_LD_PF:
		n.r[k].pf = o->pub_first;
		n.r[k].ph = R_LD_LF;
		break;
	case R_LD_LF: /* live_first: first, tier_end, tier_first (before the fix: tier_first,
	               * tier_end, first) */
		n.r[k].lf1 = t->mut == MUT_TE_BEFORE_TF ? o->pub_tf : o->pub_first;
		n.r[k].ph = R_LD_LF2;
		break;
	case R_LD_LF2:
		n.r[k].lf2 = o->pub_te;
		n.r[k].ph = R_LD_LF3;
		break;
	case R_LD_LF3: {
		unsigned tf = t->mut == MUT_TE_BEFORE_TF ? r->lf1 : o->pub_tf;
		unsigned te = r->lf2;
		unsigned first = t->mut == MUT_TE_BEFORE_TF ? o->pub_first : r->lf1;

		n.r[k].lf = (uint8_t)(tf && tf < te ? tf : first);
		n.r[k].lf1 = n.r[k].lf2 = 0;
		if (!r->pf || r->l < n.r[k].lf)
			finish(t, &n, k, false, false);
		else if (r->l >= r->pf)
			n.r[k].ph = R_POOL;
		else if (r->l < r->te)
			n.r[k].ph = R_TIER;
		else
			pass_end(t, &n, k);
		break;
	}
	case R_POOL: /* paste_log_view__read: header and CRC32C of what it copied */
		if (t->mut == MUT_TRUST_COPY) {
			n.r[k].wrong = (o->reused & bit(r->l)) != 0;
			finish(t, &n, k, true, false);
		} else if (o->reused & bit(r->l)) {
			pass_end(t, &n, k);
		} else {
			n.r[k].ph = R_POOL_CHK;
		}
		break;
	case R_POOL_CHK: /* the record was not truncated (first) while it was copied */
		if (o->pub_first <= r->l)
			finish(t, &n, k, true, false);
		else
			pass_end(t, &n, k);
		break;
	case R_TIER: {
		bool ok = model_tier_read(t, o, &n.r[k], r->l);

		if (t->mut == MUT_NONE)
			real_read(t, o, r, &n.r[k], r->l, ok);
		if (ok)
			n.r[k].ph = R_TIER_CHK;
		else
			pass_end(t, &n, k);
		break;
	}
	case R_TIER_CHK:
		if (live_first(o) <= r->l)
			finish(t, &n, k, true, true);
		else
			pass_end(t, &n, k);
		break;
	}
	go(t, &n, k ? "r1-step" : "r0-step");
}

/* One commit step (job_commit), in the order of the mutation. */
static void commit_act(struct tp *t, struct tp_own *o, unsigned a)
{
	switch (a) {
	case A_TW:
		if (o->tfirst == o->tend) { /* the tier was empty: it starts at this job */
			o->tfirst = o->tend = o->jf;
			o->tw_v = o->jf;
			if (t->mut != MUT_TIERWORD_NOFL)
				o->tw_d = o->jf;
		}
		break;
	case A_TE:
		o->pub_te = o->je;
		break;
	case A_TF:
		o->pub_tf = o->tfirst;
		break;
	case A_HEAD:
		o->ph = o->je;
		break;
	case A_FIRST:
		o->pub_first = o->je;
		break;
	case A_REL:
		for (unsigned l = o->jf; l < o->je; l++)
			o->released |= bit(l);
		break;
	}
}

/* One step of DELETE ?upto=U (U = nrec - 1): tier_truncate (tier_first published, the tier word
 * switched, whole segments below it unlinked), then the pool log's part (first published, head
 * moved, frames released). */
static void delete_step(struct tp *t, const struct tp_state *s, unsigned k)
{
	const struct tp_own *o = &s->o[k];
	unsigned u = o->nrec - 1u;
	struct tp_state n = *s;
	struct tp_own *m = &n.o[k];
	unsigned step = o->del;
	const char *name = "d-done";

	if (t->mut == MUT_DEL_UNLINK_1ST && (step == D_TIERWORD || step == D_UNLINK))
		step = step == D_TIERWORD ? D_UNLINK : D_TIERWORD;
	switch (step) {
	case D_REQ: /* wal_multi_tier_bounds(first', end) */
		if (o->tfirst < o->tend && u >= o->tfirst) {
			m->dfirst = (uint8_t)(u + 1 < o->tend ? u + 1 : o->tend);
			m->pub_te = o->tend;
			m->pub_tf = m->dfirst;
			m->del = D_TIERWORD;
			name = "d-tier_first";
		} else {
			m->del = D_POOL;
			name = "d-no-tier";
			if (o->tfirst == o->tend && o->tw_v && t->mut != MUT_STALE_WORD) {
				/* an empty tier's word left by a crash between its store and the
				 * pool head's move: 0 before the pool log drops records from there
				 */
				m->tw_v = m->tw_d = 0;
				name = "d-tierword0";
			}
		}
		break;
	case D_TIERWORD: /* head_store: persisted */
		m->tw_v = m->tw_d = o->dfirst < o->tend ? o->dfirst : 0;
		m->tfirst = o->dfirst;
		if (m->tfirst == m->tend)
			m->tfirst = m->tend = o->tend;
		name = "d-tierword";
		break;
	case D_UNLINK: /* seg_drop: whole segments below the new first */
		for (unsigned i = 0; i < o->nfiles; i++)
			if (!o->f[i].gone && o->f[i].first + o->f[i].n <= o->dfirst)
				m->f[i].gone = 1;
		name = "d-unlink";
		break;
	case D_POOL: /* own_truncate: first published */
		if (u >= o->ph) {
			m->pub_first = (uint8_t)(u + 1);
			m->del = D_HEAD;
			name = "d-first";
		} else {
			m->del = D_DONE;
			t->deletes++;
		}
		break;
	case D_HEAD: /* paste_log__truncate: persisted and fenced */
		m->ph = (uint8_t)(u + 1);
		m->del = D_REL;
		name = "d-head";
		break;
	case D_REL: /* the drain: their frames released */
		for (unsigned l = 1; l <= u; l++)
			m->released |= bit(l);
		m->del = D_DONE;
		t->deletes++;
		name = "d-release";
		break;
	}
	if (o->del == D_TIERWORD)
		m->del = D_UNLINK;
	else if (o->del == D_UNLINK)
		m->del = D_POOL;
	go(t, &n, name);
}

static void owner_steps(struct tp *t, const struct tp_state *s, unsigned k)
{
	static const char *const names[TP_W][8] = {
	    {"w0-start", "w0-write", "w0-sync", "w0-dirsync", "w0-reuse"},
	    {"w1-start", "w1-write", "w1-sync", "w1-dirsync", "w1-reuse"}};
	const struct tp_own *o = &s->o[k];
	struct tp_state n;
	struct tp_own *m = &n.o[k];

	if (o->up != UP_SERVING)
		return;
	if (o->del != D_NONE && o->del != D_DONE) { /* DELETE: nothing else on the event loop */
		delete_step(t, s, k);
		return;
	}
	if (o->job == J_NONE && o->del == D_NONE && o->nrec >= 2) { /* DELETE ?upto=nrec-1 */
		n = *s;
		m->del = D_REQ;
		go(t, &n, "w0-delete");
	}
	if (o->job == J_NONE && o->ph <= o->nrec) { /* job_start and job_segment */
		int last = -1;

		for (unsigned i = 0; i < o->nfiles; i++)
			if (!o->f[i].gone && (last < 0 || o->f[i].first > o->f[last].first))
				last = (int)i;
		for (unsigned c = 1; c <= TP_JOB && o->ph + c <= o->nrec + 1u; c++) {
			bool nf = last < 0 || o->f[last].n >= TP_SEG ||
			          o->f[last].first + o->f[last].n != o->ph;

			n = *s;
			m->jf = o->ph;
			m->je = (uint8_t)(o->ph + c);
			m->jnew = nf;
			if (nf) {
				if (o->nfiles == TP_FILES) {
					t->full++;
					return;
				}
				m->f[m->nfiles] = (struct tp_file){.first = o->ph};
				m->jfile = m->nfiles++;
			} else {
				m->jfile = (uint8_t)last;
			}
			m->job = J_STARTED;
			go(t, &n, names[k][0]);
		}
	}
	n = *s;
	switch (o->job) {
	case J_STARTED: /* job_write: pwritev */
		m->f[o->jfile].n = (uint8_t)(m->f[o->jfile].n + o->je - o->jf);
		m->job = J_WRITTEN;
		go(t, &n, names[k][1]);
		break;
	case J_WRITTEN:
		if (t->mut != MUT_NO_FDATASYNC)
			m->f[o->jfile].s = m->f[o->jfile].n;
		m->job = J_SYNCED;
		go(t, &n, names[k][2]);
		break;
	case J_SYNCED:
		if (o->jnew && t->mut != MUT_NO_DIRSYNC) {
			m->f[o->jfile].dur = 1;
			for (unsigned i = 0; i < o->nfiles; i++)
				if (o->f[i]
				        .gone) /* the directory's earlier unlinks are durable too */
					m->f[i].dur = 0;
		}
		m->job = J_DONE;
		go(t, &n, names[k][3]);
		break;
	case J_DONE:
	case J_COMMIT: {
		unsigned a = order[t->mut][o->act];

		commit_act(t, m, a);
		m->job = J_COMMIT;
		if (++m->act == A_N) {
			m->job = J_NONE;
			m->act = 0;
			m->tend = o->je;
			m->jf = m->je = m->jfile = m->jnew = 0;
		}
		go(t, &n, act_names[a]);
		break;
	}
	}
	if (o->released & ~o->reused) { /* a new append takes the oldest released frame */
		unsigned l = (unsigned)__builtin_ctz(o->released & ~o->reused);

		n = *s;
		m->reused |= bit(l);
		go(t, &n, names[k][4]);
	}
}

static void worker_down(struct tp_state *n, unsigned k)
{
	struct tp_own *o = &n->o[k];

	o->up = UP_DOWN;
	o->job = o->act = o->jf = o->je = o->jfile = o->jnew = 0;
	o->tfirst = o->tend = 0;
	if (o->del != D_NONE && o->del != D_DONE)
		o->del = D_REQ; /* trunc_req is durable: the restart applies it again */
	o->dfirst = 0;
	n->r[k] = (struct tp_rd){.left = n->r[k].left};
}

/* tier_open: recovery of worker k's tier against its pool log. false: it refuses to start. */
static bool recover(struct tp *t, struct tp_state *n, unsigned k)
{
	struct tp_own *o = &n->o[k];
	uint8_t idx[TP_FILES];
	unsigned nf = 0;

	t->recoveries++;
	o->per_tf = o->pub_tf; /* wal_multi_open persists the page */
	o->per_te = o->pub_te;
	o->per_first = o->pub_first;
	for (unsigned l = o->ph; l <= o->nrec; l++)
		if (o->reused & bit(l)) {
			viol(
			    t,
			    "worker %u lost record %u: the pool log names it, its frames were reused",
			    k, l);
			return false;
		}
	if (o->tw_v > o->ph) {
		viol(t, "worker %u: the tier word %u is after the pool head", k, o->tw_v);
		return false;
	}
	o->tfirst = o->tend = o->tw_v ? o->tw_v : o->ph;
	for (unsigned i = 0; i < o->nfiles; i++) /* seg_list: sorted names */
		if (!o->f[i].gone) {
			unsigned j = nf++;

			while (j && o->f[idx[j - 1]].first > o->f[i].first) {
				idx[j] = idx[j - 1];
				j--;
			}
			idx[j] = (uint8_t)i;
		}
	for (unsigned x = 0; x < nf; x++) { /* seg_recover */
		struct tp_file *f = &o->f[idx[x]];
		unsigned seq = f->first, i = 0;

		if (!o->tw_v || f->first >= o->ph) {
			f->gone = 1;
			continue;
		}
		while (seq < o->ph && i < f->n) {
			if (seq >= o->tfirst) {
				if (seq != o->tend)
					break;
				o->tend++;
			}
			i++;
			seq++;
		}
		if ((i < f->n || f->torn) && seq >= o->ph) { /* copies the pool still has: cut */
			f->n = (uint8_t)i;
			f->s = f->s < i ? f->s : (uint8_t)i;
			f->torn = 0;
			t->cuts++;
		}
		if (seq <= o->tfirst)
			f->gone = 1;
	}
	if (o->tfirst > 1 && !dropped(o, o->tfirst - 1u)) { /* only a DELETE drops records */
		viol(t, "worker %u's recovery dropped records 1..%u (an acknowledged record lost)",
		     k, o->tfirst - 1u);
		return false;
	}
	if (o->tend != o->ph) {
		viol(
		    t,
		    "worker %u's recovery refuses to start: record %u should be in the tier and is "
		    "not",
		    k, o->tend);
		return false;
	}
	for (unsigned l = 1; l < o->ph; l++)
		o->released |= bit(l); /* the pool's recovery frees frames no record names */
	o->up = UP_RECOVERED;
	return true;
}

/* Power failure: enumerate what media kept (choice @c, mixed radix over the choices). */
static unsigned media_choices(const struct tp_state *s, unsigned k)
{
	const struct tp_own *o = &s->o[k];
	unsigned n = (o->pub_tf != o->per_tf ? 2 : 1) * (o->pub_te != o->per_te ? 2 : 1) *
	             (o->pub_first != o->per_first ? 2 : 1);

	for (unsigned i = 0; i < o->nfiles; i++)
		if (!o->f[i].gone)
			n *= 2u * (o->f[i].n - o->f[i].s) + 1;
		else if (o->f[i].dur)
			n *= 2; /* the unlink was not synced: the name may be back */
	return n;
}

static void media(struct tp_state *n, unsigned k, unsigned c)
{
	struct tp_own *o = &n->o[k];
	unsigned w = 0;

	if (o->pub_tf != o->per_tf) {
		o->pub_tf = c % 2 ? o->per_tf : o->pub_tf;
		c /= 2;
	}
	if (o->pub_te != o->per_te) {
		o->pub_te = c % 2 ? o->per_te : o->pub_te;
		c /= 2;
	}
	if (o->pub_first != o->per_first) {
		o->pub_first = c % 2 ? o->per_first : o->pub_first;
		c /= 2;
	}
	for (unsigned i = 0; i < o->nfiles; i++) {
		struct tp_file f = o->f[i];
		unsigned u = f.n - f.s, ch = 2 * u + 1, x;

		if (f.gone) {
			if (f.dur && c % 2) { /* back, with its synced records */
				f.gone = 0;
				f.n = f.s;
				f.torn = 0;
				o->f[w++] = f;
			}
			if (f.dur)
				c /= 2;
			continue;
		}
		x = c % ch; /* 0..u: s + x records; u+1..2u: s + x-u-1 records, then a torn one */
		c /= ch;
		f.torn = x > u;
		f.n = (uint8_t)(f.s + (x > u ? x - u - 1 : x));
		f.s = f.n;
		if (f.dur)
			o->f[w++] = f;
	}
	o->nfiles = (uint8_t)w;
	memset(o->f + w, 0, (TP_FILES - w) * sizeof(o->f[0]));
	o->tw_v = o->tw_d;
	o->stale = 1;
}

static void power(struct tp *t, const struct tp_state *s)
{
	unsigned c0 = media_choices(s, 0), c1 = media_choices(s, 1);

	for (unsigned a = 0; a < c0; a++)
		for (unsigned b = 0; b < c1; b++) {
			struct tp_state n = *s;

			n.crashes++;
			media(&n, 0, a);
			media(&n, 1, b);
			worker_down(&n, 0);
			worker_down(&n, 1);
			go(t, &n, "power");
		}
}

static void terminal(struct tp *t, const struct tp_state *s)
{
	t->terminals++;
	for (unsigned k = 0; k < TP_W; k++)
		if (s->o[k].ph != s->o[k].nrec + 1 || s->o[k].tend != s->o[k].nrec + 1 ||
		    s->r[k].left)
			viol(t, "worker %u stopped with work left (record %u not destaged)", k,
			     s->o[k].ph);
}

static void explore(struct tp *t, const struct tp_state *s)
{
	uint64_t steps;
	struct tp_state n;
	bool any = false;

	if (!sim_seen_visit(&t->seen, sim_seen_hash(s, sizeof(*s))))
		return;
	t->states++;
	if (t->violations && t->mut != MUT_NONE)
		return; /* caught: enough */
	steps = t->steps;
	for (unsigned k = 0; k < TP_W; k++) {
		const struct tp_own *o = &s->o[k];

		if (o->up == UP_DOWN) {
			n = *s;
			if (recover(t, &n, k))
				go(t, &n, k ? "w1-recover" : "w0-recover");
			any = true;
		} else if (o->up == UP_RECOVERED) { /* wal_multi_tier_bounds */
			n = *s;
			n.o[k].pub_te = o->tend;
			n.o[k].pub_tf = o->tfirst;
			n.o[k].up = UP_BOUNDS;
			go(t, &n, k ? "w1-bounds" : "w0-bounds");
			any = true;
		} else if (o->up == UP_BOUNDS) { /* wal_multi_publish: the pool first */
			n = *s;
			n.o[k].pub_first = o->ph;
			n.o[k].stale = 0;
			n.o[k].up = UP_SERVING;
			go(t, &n, k ? "w1-publish" : "w0-publish");
			any = true;
		}
		owner_steps(t, s, k);
		reader_steps(t, s, k);
	}
	if (!any && t->steps == steps)
		terminal(t, s);
	if (!s->restarted && s->o[0].up == UP_SERVING && s->o[0].job == J_NONE &&
	    (s->o[0].del == D_NONE || s->o[0].del == D_DONE)) {
		/* SIGTERM (tier_close commits what runs: here nothing) and a start: not a crash */
		n = *s;
		n.restarted = 1;
		worker_down(&n, 0);
		go(t, &n, "w0-restart");
	}
	if (s->crashes >= TP_CRASHES)
		return;
	for (unsigned k = 0; k < TP_W; k++)
		if (s->o[k].up != UP_DOWN) { /* kill -9 of worker k */
			n = *s;
			n.crashes++;
			worker_down(&n, k);
			go(t, &n, k ? "w1-kill" : "w0-kill");
		}
	power(t, s);
}

static void run(struct tp *t)
{
	struct tp_state s0;

	memset(&s0, 0, sizeof(s0));
	for (unsigned k = 0; k < TP_W; k++) {
		struct tp_own *o = &s0.o[k];

		o->nrec = k ? 0 : (uint8_t)TP_RECS; /* worker 0 destages, worker 1 reads it */
		o->up = UP_SERVING;
		o->ph = 1;
		o->tfirst = o->tend = 1;
		o->pub_tf = o->pub_te = o->pub_first = 1;
		o->per_tf = o->per_te = o->per_first = 1;
		s0.r[k].left = k ? TP_READS : 0;
	}
	if (t->mut == MUT_NONE) {
		snprintf(t->real_dir, sizeof(t->real_dir), "/dev/shm/paste-sim-%d-tierpub",
		         (int)getpid());
		if (mkdir(t->real_dir, 0700) && errno != EEXIST) {
			fprintf(stderr, "paste-powerfail: tierpub: cannot create %s: %s\n",
			        t->real_dir, strerror(errno));
			exit(2);
		}
	}
	explore(t, &s0);
	sim_seen_free(&t->seen);
	sim_seen_free(&t->real_seen);
	if (t->mut == MUT_NONE) {
		int dirfd = open(t->real_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		char name[64];

		for (unsigned i = 1; dirfd >= 0 && i <= TP_MAXREC + 1; i++) {
			seg_name(name, sizeof(name), i);
			unlinkat(dirfd, name, 0);
		}
		if (dirfd >= 0)
			close(dirfd);
		rmdir(t->real_dir);
	}
}

static void set_orders(void)
{
	static const uint8_t base[A_N] = {A_TW, A_TF, A_TE, A_HEAD, A_FIRST, A_REL};
	static const uint8_t te_late[A_N] = {A_TW, A_HEAD, A_FIRST, A_TF, A_TE, A_REL};
	static const uint8_t rel_early[A_N] = {A_TW, A_TF, A_TE, A_HEAD, A_REL, A_FIRST};
	static const uint8_t te_tf[A_N] = {A_TW, A_TE, A_TF, A_HEAD, A_FIRST, A_REL};

	for (int m = 0; m < MUT_N; m++)
		memcpy(order[m], base, A_N);
	memcpy(order[MUT_TE_AFTER_HEAD], te_late, A_N);
	memcpy(order[MUT_REL_BEFORE_1ST], rel_early, A_N);
	memcpy(order[MUT_TE_BEFORE_TF], te_tf, A_N);
}

int sim_probe_tierpub(unsigned recs, unsigned seg, unsigned job, unsigned crashes)
{
	struct tp t = {.mut = MUT_NONE};
	unsigned caught = 0;
	int fail = 0;

	if (recs < 1 || recs > TP_MAXREC || seg < 1 || seg > TP_MAXSEG || job < 1 ||
	    job > TP_MAXJOB || crashes > 4) {
		fprintf(stderr,
		        "paste-powerfail: --probe tierpub: want --ops 1..%d records per worker, "
		        "--capacity 1..%d records per segment, --depth 1..%d records per job, "
		        "--crashes 0..4\n",
		        TP_MAXREC, TP_MAXSEG, TP_MAXJOB);
		return 2;
	}
	TP_RECS = recs;
	TP_SEG = seg;
	TP_JOB = job;
	TP_CRASHES = crashes;
	set_orders();
	run(&t);
	printf(
	    "tierpub: worker 0 destages %u records (segments of %u, jobs of 1..%u records), "
	    "worker 1 reads them (%u reads), up to %u crashes (kill -9 of either worker, power failure): "
	    "%llu states, %llu final, %llu recoveries (%llu cut copies); reads: %llu from the "
	    "pool, %llu from the tier (%llu re-lookups), %llu misses while a page was a power "
	    "failure's leftover, %llu of records a DELETE drops (%llu DELETE completions); the real tier_peer_read on %llu distinct file layouts: %llu "
	    "disagreements; %llu violations%s%s\n",
	    TP_RECS, TP_SEG, TP_JOB, TP_READS, TP_CRASHES, (unsigned long long)t.states,
	    (unsigned long long)t.terminals, (unsigned long long)t.recoveries,
	    (unsigned long long)t.cuts, (unsigned long long)t.reads_pool,
	    (unsigned long long)t.reads_tier, (unsigned long long)t.relookups,
	    (unsigned long long)t.stale_miss, (unsigned long long)t.del_miss,
	    (unsigned long long)t.deletes, (unsigned long long)t.real_reads,
	    (unsigned long long)t.real_disagree, (unsigned long long)t.violations,
	    t.violations ? ": " : "", t.first);
	if (t.full)
		printf(
		    "tierpub: %llu job starts found the model's file table full (not explored)\n",
		    (unsigned long long)t.full);
	if (t.violations)
		printf("tierpub: the first violation's path: %s\n", t.trace);
	if (t.violations || !t.terminals || !t.reads_tier || !t.reads_pool || !t.relookups ||
	    !t.real_reads || !t.deletes) {
		fail = 1;
		if (!t.violations)
			printf(
			    "tierpub: too small to mean anything: no final state, or no read from "
			    "each tier, or no re-lookup, or no DELETE (give it --ops 2 --capacity 1 or more)\n");
	}
	for (int m = MUT_NONE + 1; m < MUT_N; m++) {
		struct tp g = {.mut = (enum tp_mut)m, .no_page_check = true};

		run(&g);
		caught += g.violations > 0;
		printf("tierpub: mutation %-21s %s%s (%llu states)\n", mut_names[m],
		       g.violations ? "caught: " : "NOT CAUGHT", g.violations ? g.first : "",
		       (unsigned long long)g.states);
		if (!g.violations)
			fail = 1;
	}
	printf("tierpub: mutations caught %u/%d\n", caught, MUT_N - 1);
	printf("tierpub: %s\n", fail ? "FAILED" : "ok");
	return fail;
}
