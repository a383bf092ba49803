/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_multi.c - paste-wal on N queues (--queues N): one worker process per queue, each with its
 * own log in its own slice of the pool file, and one sequence space that clients see.
 *
 * Record identifiers: worker k's local record l (its log's seq, from 1) is the global seq
 *     g = (l - 1) * N + k + 1,     k = (g - 1) % N,     l = (g - 1) / N + 1
 * so GET /log/<g> names exactly one record of exactly one worker, allocated with no coordination
 * (no shared counter, no cross-process atomics on the append path). N is recorded in every
 * slice's "wal.pub" region; a restart with another N is refused (the ids would change meaning).
 *
 * Reading another worker's records: each worker maps the other slices read-only
 * (paste_pool_view) and reads their logs with paste_log_view, trusting only what the owner
 * published in its "wal.pub" region: next (its log's next seq, stored after the round's fence, so
 * every record below it is durable) and first (stored before the owner truncates). Records of a
 * dead worker stay readable from the others (they are in the file).
 *
 * DELETE ?upto=G: every worker's log must drop its records <= G, and only a log's owner may
 * truncate it. The worker that got the request stores G in its own page (trunc_req, persisted) and
 * truncates its own log; every worker looks at the others' trunc_req on every tick (and when it
 * starts) and truncates its own log up to the highest, then stores it in its trunc_done. The
 * DELETE's reply waits until every worker's trunc_done >= G (each truncation is durable before
 * that store), or answers 503 after --delete-wait seconds (a worker that is down applies it when it
 * starts again).
 *
 * With --tier-dir each worker destages its own records to its own directory DIR/wK (wal_tier.c)
 * and publishes its tier's bounds [tier_first, tier_end) next to the pool log's: the tier's end
 * before its pool head moves past a destaged job (and the pool log's first right after, before
 * the frames are released), the tier's new first before a truncation drops anything. So every
 * committed record is inside a published range whose copy is still there; a reader copies the
 * record from the pool view or the peer's segment files (wal_tier_peer.c), checks it (header,
 * CRC32C) and re-checks the published first after the copy.
 *
 * With --sync fdatasync --log-file PATH each worker appends to its own log file PATH.wK
 * (wal_file.c) and publishes, after the round's fdatasync, the same first and next, plus the file
 * offset of its first record; a reader walks the peer's file from there (wal_file_peer.c), copies
 * and checks the record and re-checks first, as above. Truncation: the head slot is written and
 * fdatasync()ed before trunc_done says so.
 *
 * docs/multicore.md ("paste-wal on N queues") gives the order's cost and the limits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wal.h"

#define WAL_PUB_MAGIC     0x314255504c415750ull /* "PWALPUB1" */
#define WAL_PUB_NAME      "wal.pub"
#define WAL_PEER_RETRY_NS 100000000ull /* a peer not mapped yet: look again after 100 ms */

/* The page each worker publishes in its slice (region "wal.pub"); others read it. */
struct wal_pub {
	uint64_t magic;
	uint32_t queues, worker;
	uint64_t first, next; /* local seqs: records [first, next) are committed */
	uint64_t pid, starts;
	uint64_t records, bytes, appended, appended_bytes, requests, peer_reads, r4xx, r5xx;
	uint64_t trunc_req;  /* DELETE ?upto= asked of every worker (global seq; only grows) */
	uint64_t trunc_done; /* the highest trunc_req of any worker applied to this log */
	/* --tier-dir: local records [tier_first, tier_end) are in DIR/wK (equal: none) */
	uint64_t tier_first, tier_end;
	uint64_t tier_records, tier_bytes, tier_destaged, tier_reads, tier_segments;
	uint64_t peer_tier_reads; /* records read from another worker's segment files */
	uint64_t file_first_off;  /* --sync fdatasync: file offset of record first */
	uint32_t sync; /* enum wal_sync: where the records are (0, pmem, in older pools) */
	uint32_t pad;
	uint64_t fsyncs; /* --sync fdatasync: fdatasync() calls (group commits) */
};

struct wal_peer {
	struct paste_pool_view *pv;
	struct paste_log_view *lv;
	const struct wal_pub *pub;
	struct tier_peer tp; /* its segment files (--tier-dir) */
	char *tdir;          /* DIR/wK */
	struct tier_peer fp; /* its log file (--sync fdatasync) */
	char *fpath;         /* PATH.wK */
	uint64_t tried;      /* daemon_now_ns() of the last failed attempt to map it (0: none) */
};

struct wal_multi {
	unsigned n, me;
	struct wal_pub *pub;
	struct wal_peer peer[WAL_MAX_QUEUES];
	uint8_t *buf; /* the peer record being sent */
	uint64_t buf_seq;
	uint32_t buf_len;
	uint64_t peer_reads, peer_lost, peer_tier_reads;
};

static const struct wal_pub *peer_pub(struct wal *w, unsigned k, bool force);
static void publish_counters(struct wal *w);

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

uint64_t wal_gseq(const struct wal *w, unsigned k, uint64_t l)
{
	return w->multi ? (l - 1) * w->multi->n + k + 1 : l;
}

static unsigned owner(const struct wal_multi *m, uint64_t g)
{
	return (unsigned)((g - 1) % m->n);
}

static uint64_t local(const struct wal_multi *m, uint64_t g)
{
	return (g - 1) / m->n + 1;
}

int wal_multi_open(struct wal *w, unsigned queues, unsigned worker, const char *path)
{
	struct wal_multi *m = calloc(1, sizeof(*m));
	uint64_t len;
	void *addr;
	int err;

	if (!m || !(m->buf = malloc(w->max_body))) {
		free(m);
		fprintf(stderr, "paste-wal: out of memory\n");
		return -ENOMEM;
	}
	m->n = queues;
	m->me = worker;
	for (unsigned k = 0; k < WAL_MAX_QUEUES; k++) {
		m->peer[k].tp = (struct tier_peer){.dirfd = -1, .fd = -1};
		m->peer[k].fp = (struct tier_peer){.dirfd = -1, .fd = -1};
	}
	w->multi = m;
	err = paste_pool__region(w->pool, WAL_PUB_NAME, 4096, &addr, &len);
	if (err) {
		fprintf(stderr, "paste-wal: worker %u: cannot open region %s: %s\n", worker,
		        WAL_PUB_NAME, paste_last_error());
		return err;
	}
	m->pub = addr;
	if (m->pub->magic == WAL_PUB_MAGIC &&
	    (m->pub->queues != queues || m->pub->worker != worker)) {
		fprintf(stderr,
		        "paste-wal: pool %s was written by %u workers (this is worker %u of %u): "
		        "record ids encode the worker count, so start with --queues %u or use "
		        "another pool\n",
		        path, m->pub->queues, worker, queues, m->pub->queues);
		return -EINVAL;
	}
	if (m->pub->magic == WAL_PUB_MAGIC && m->pub->sync != (uint32_t)w->sync) {
		fprintf(
		    stderr,
		    "paste-wal: worker %u: pool %s was used with --queues and --sync %s: this "
		    "worker's records are there, so start with that --sync again or use another "
		    "pool\n",
		    worker, path, m->pub->sync == SYNC_PMEM ? "pmem" : "fdatasync");
		return -EINVAL;
	}
	if (w->sync == SYNC_FDATASYNC) { /* this worker's log file: PATH.wK */
		if (asprintf(&w->file.path_buf, "%s.w%u", w->file.given, worker) < 0) {
			w->file.path_buf = NULL;
			fprintf(stderr, "paste-wal: out of memory\n");
			return -ENOMEM;
		}
		w->file.path = w->file.path_buf;
	}
	m->pub->queues = queues;
	m->pub->worker = worker;
	m->pub->sync = (uint32_t)w->sync;
	m->pub->pid = (uint64_t)getpid();
	m->pub->starts++;
	st(&m->pub->magic, WAL_PUB_MAGIC);
	paste_pool__persist(w->pool, m->pub, sizeof(*m->pub));
	return 0;
}

void wal_multi_close(struct wal *w)
{
	struct wal_multi *m = w->multi;

	if (!m)
		return;
	for (unsigned k = 0; k < m->n; k++) {
		paste_log_view__close(&m->peer[k].lv);
		paste_pool_view__close(&m->peer[k].pv);
		tier_peer_close(&m->peer[k].tp);
		free(m->peer[k].tdir);
		tier_peer_close(&m->peer[k].fp);
		free(m->peer[k].fpath);
	}
	free(m->buf);
	free(m);
	w->multi = NULL;
}

/* Worker k's last local record <= global @g (0: none). */
static uint64_t local_upto(const struct wal_multi *m, unsigned k, uint64_t g)
{
	return g >= k + 1 ? (g - k - 1) / m->n + 1 : 0;
}

/*
 * --sync fdatasync: drop our own records up to local @upto from our log file. Readers are told
 * first (the new first record's offset, then first); the head slot is fdatasync()ed here, so the
 * truncation is durable when this returns (trunc_done may say so). A failed fdatasync is sticky
 * (wf_sync): the round hook then resets every connection and the server stops.
 */
static int own_truncate_file(struct wal *w, uint64_t upto)
{
	struct wal_file *f = &w->file;
	uint64_t nf = upto + 1 < f->next_seq ? upto + 1 : f->next_seq;
	int err;

	if (upto < f->first_seq)
		return 0;
	st(&w->multi->pub->file_first_off, nf < f->next_seq ? f->idx[nf - f->base].off : f->end);
	st(&w->multi->pub->first, nf);
	err = wf_truncate(f, upto);
	if (!err && (err = wf_sync(w)))
		fprintf(stderr, "paste-wal: log file %s: fdatasync after a truncation: %s\n",
		        f->path, strerror(-err));
	return err;
}

/*
 * Drop our own records up to local @upto from both tiers. Readers on other workers are told
 * first: the tier's new first (tier_truncate, via wal_multi_tier_bounds) before a segment is
 * deleted, the pool log's before its head moves; both truncations are durable when this returns.
 */
static int own_truncate(struct wal *w, uint64_t upto)
{
	struct paste_log_info li;
	int err;

	if (w->sync == SYNC_FDATASYNC)
		return own_truncate_file(w, upto);
	err = tier_truncate(w, upto);
	if (err)
		return err;
	paste_log__info(w->log, &li, sizeof(li));
	if (upto < li.first_seq)
		return 0;
	st(&w->multi->pub->first, upto + 1 < li.next_seq ? upto + 1 : li.next_seq);
	return paste_log__truncate(w->log, upto);
}

/*
 * Every tick, at startup and after a DELETE here: apply the highest truncation any worker asked
 * for to our own log (first published before the truncation, which is durable when it returns),
 * then say so in trunc_done. @return 0 or the truncation's error.
 */
int wal_multi_apply(struct wal *w)
{
	struct wal_multi *m = w->multi;
	uint64_t g = 0, upto;
	int err;

	if (!m)
		return 0;
	for (unsigned k = 0; k < m->n; k++) {
		const struct wal_pub *pub = k == m->me ? m->pub : peer_pub(w, k, false);

		if (pub && ld((uint64_t *)&pub->trunc_req) > g)
			g = ld((uint64_t *)&pub->trunc_req);
	}
	if (g <= m->pub->trunc_done)
		return 0;
	upto = local_upto(m, m->me, g);
	if (upto) {
		struct store_info si;

		store_local_info(w, &si);
		if (upto >= si.first) {
			err = own_truncate(w, upto);
			if (err) {
				fprintf(stderr,
				        "paste-wal: worker %u: truncating up to record %" PRIu64
				        " failed: %s\n",
				        m->me, g,
				        w->sync == SYNC_PMEM ? paste_last_error() : strerror(-err));
				return err;
			}
			w->n.truncations++;
		}
	}
	publish_counters(
	    w); /* records, bytes, first as they are now (may be mid-round: not next) */
	st(&m->pub->trunc_done, g);
	paste_pool__persist(w->pool, &m->pub->trunc_done, sizeof(m->pub->trunc_done));
	return 0;
}

/* --retain-*: drop our own records up to local @upto (first published before the truncation,
 * which is durable when it returns; readers of our log re-check first after a copy). */
int wal_multi_retain(struct wal *w, uint64_t upto)
{
	int err = own_truncate(w, upto);

	if (err)
		fprintf(stderr, "paste-wal: worker %u: retention: %s\n", w->multi->me,
		        paste_last_error());
	publish_counters(w);
	return err;
}

/* --retain-bytes with --queues: each worker's share. */
uint64_t wal_multi_share(const struct wal *w, uint64_t bytes)
{
	return bytes / w->multi->n ? bytes / w->multi->n : 1;
}

/* DELETE ?upto=@g arrived here: ask every worker (durably), and do our own part at once. */
int wal_multi_truncate(struct wal *w, uint64_t g)
{
	struct wal_multi *m = w->multi;

	if (g > m->pub->trunc_req) {
		st(&m->pub->trunc_req, g);
		paste_pool__persist(w->pool, &m->pub->trunc_req, sizeof(m->pub->trunc_req));
	}
	return wal_multi_apply(w);
}

/* Has every worker applied a truncation up to @g? Else *@late is one that has not. */
bool wal_multi_truncated(struct wal *w, uint64_t g, unsigned *late)
{
	struct wal_multi *m = w->multi;

	for (unsigned k = 0; k < m->n; k++) {
		const struct wal_pub *pub = peer_pub(w, k, false);

		if (!pub || ld((uint64_t *)&pub->trunc_done) < g) {
			*late = k;
			return false;
		}
	}
	return true;
}

/* Counters and first (not next): safe at any time, also in the middle of a round. */
static void publish_counters(struct wal *w)
{
	struct wal_multi *m = w->multi;
	const struct wal_tier *t = &w->tier;
	struct paste_log_info li;
	struct store_info si;
	uint64_t first;

	if (w->sync == SYNC_PMEM) {
		paste_log__info(w->log, &li, sizeof(li));
		first = li.first_seq; /* the pool log's (a tier's records are below) */
	} else {
		first = w->file.first_seq;
		st(&m->pub->file_first_off, wf_first_off(&w->file)); /* before first */
	}
	store_local_info(w, &si); /* both tiers */
	m->pub->records = si.records;
	m->pub->bytes = si.bytes;
	m->pub->tier_records = t->on ? t->end - t->first : 0;
	m->pub->tier_bytes = t->on ? t->payload : 0;
	m->pub->tier_destaged = t->n.destaged;
	m->pub->tier_reads = t->n.reads;
	m->pub->tier_segments = t->nsegs;
	m->pub->peer_tier_reads = m->peer_tier_reads;
	m->pub->appended = w->n.appended;
	m->pub->appended_bytes = w->n.appended_bytes;
	m->pub->requests = w->n.requests;
	m->pub->r4xx = w->n.r4xx;
	m->pub->r5xx = w->n.r5xx;
	m->pub->peer_reads = m->peer_reads;
	m->pub->fsyncs = w->n.fsyncs;
	st(&m->pub->first, first);
}

/* Only after a fence (the round hook, startup): every record below next is durable. A record
 * appended in the current round is not yet: next must not name it before the round's fence. */
void wal_multi_publish(struct wal *w)
{
	struct store_info si;

	if (!w->multi)
		return;
	publish_counters(w);
	store_local_info(w, &si);
	st(&w->multi->pub->next, si.next);
}

/*
 * Worker k's published page (mapping its slice on first use), or NULL (not started yet). A failed
 * attempt is repeated at most every WAL_PEER_RETRY_NS, unless @force: a request for one of k's
 * records always looks again. (A peer that was not there a moment ago may have started, appended
 * and acknowledged since: with a plain time throttle, every GET of its records within that
 * interval answered 404, which test_multiqueue_wal saw with the kernel transport, whose workers
 * start and serve within the same second.)
 */
static const struct wal_pub *peer_pub(struct wal *w, unsigned k, bool force)
{
	struct wal_multi *m = w->multi;
	struct wal_peer *p = &m->peer[k];
	uint64_t now;

	if (k == m->me)
		return m->pub;
	if (p->pub)
		return p->pub;
	now = daemon_now_ns();
	if (!force && p->tried && now - p->tried < WAL_PEER_RETRY_NS)
		return NULL;
	p->tried = now;
	if (!p->pv && paste_pool_view__open(&p->pv, w->pool, k))
		return NULL;
	p->pub = paste_pool_view__region(p->pv, WAL_PUB_NAME, NULL);
	if (!p->pub || ld(&p->pub->magic) != WAL_PUB_MAGIC || p->pub->queues != m->n ||
	    p->pub->sync != (uint32_t)w->sync ||
	    (w->sync == SYNC_PMEM && paste_log_view__open(&p->lv, p->pv, w->log_name))) {
		paste_pool_view__close(&p->pv); /* its regions may come later: map again */
		p->pub = NULL;
		return NULL;
	}
	return p->pub;
}

/*
 * A peer's first live record: its tier's first, or its pool log's while its tier is empty. The
 * loads go against the owner's stores (a commit stores tier_first, tier_end, then first): first,
 * then tier_end, then tier_first, so that a new first comes with the bounds stored before it. In
 * the other order, bounds from before the first job of an empty tier and first from after it
 * made that job's records look dropped, and peer_fetch answered 404 without a second look
 * (sim/tierpub).
 */
static uint64_t live_first(const struct wal_pub *pub)
{
	uint64_t f = ld((uint64_t *)&pub->first);
	uint64_t te = ld((uint64_t *)&pub->tier_end); /* see wal_multi_tier_bounds */
	uint64_t tf = ld((uint64_t *)&pub->tier_first);

	return tf && tf < te ? tf : f;
}

/* Worker k's committed local records [*first, *next); false when it has none to show. @force:
 * look for a peer not mapped yet even if it was not there a moment ago (peer_pub). */
static bool bounds(struct wal *w, unsigned k, uint64_t *first, uint64_t *next, bool force)
{
	const struct wal_pub *pub = peer_pub(w, k, force);

	if (!pub)
		return false;
	if (k == w->multi->me) {
		struct store_info si;

		store_local_info(w, &si); /* our own: everything appended is readable */
		*first = si.first;
		*next = si.next;
	} else {
		*first = live_first(pub);
		*next = ld((uint64_t *)&pub->next);
	}
	return *first && *first < *next;
}

void wal_multi_info(struct wal *w, struct store_info *si)
{
	struct wal_multi *m = w->multi;
	uint64_t f, n;

	*si = (struct store_info){0};
	for (unsigned k = 0; k < m->n; k++) {
		const struct wal_pub *pub = peer_pub(w, k, false);

		if (k == m->me) {
			struct store_info own;

			store_local_info(w, &own);
			si->records += own.records;
			si->bytes += own.bytes;
		} else if (pub) {
			si->records += pub->records;
			si->bytes += pub->bytes;
		}
		if (!bounds(w, k, &f, &n, false))
			continue;
		if (!si->first || wal_gseq(w, k, f) < si->first)
			si->first = wal_gseq(w, k, f);
		if (wal_gseq(w, k, n - 1) + 1 > si->next)
			si->next = wal_gseq(w, k, n - 1) + 1;
	}
	if (!si->first)
		si->first = si->next = 1;
}

/* The first record g >= @from (below each worker's @lim[k], local; 0 = no limit), or 0. */
uint64_t wal_multi_next(struct wal *w, uint64_t from, const uint64_t *lim)
{
	struct wal_multi *m = w->multi;
	uint64_t best = 0, f, n, l;

	for (unsigned k = 0; k < m->n; k++) {
		if (!bounds(w, k, &f, &n, false))
			continue;
		if (lim && lim[k] < n)
			n = lim[k];
		l = from <= k + 1 ? 1 : (from - k - 2) / m->n + 2; /* ceil((from-k-1)/N) + 1 */
		if (l < f)
			l = f;
		if (l < n && (!best || wal_gseq(w, k, l) < best))
			best = wal_gseq(w, k, l);
	}
	return best;
}

/* Snapshot of every worker's local next (for a range reply's fixed set of records). */
void wal_multi_snap(struct wal *w, uint64_t *lim)
{
	uint64_t f, n;

	for (unsigned k = 0; k < w->multi->n; k++)
		lim[k] = bounds(w, k, &f, &n, true) ? n : 0;
}

/* Below it, no record can appear later: min over workers of their next global seq. */
uint64_t wal_multi_stable(struct wal *w)
{
	uint64_t f, n, s = 0, g;

	for (unsigned k = 0; k < w->multi->n; k++) {
		if (!bounds(w, k, &f, &n, false))
			n = f = 1;
		g = wal_gseq(w, k, n);
		if (!s || g < s)
			s = g;
	}
	return s;
}

/* The global seq of this worker's local record @l. */
uint64_t wal_multi_own(const struct wal *w, uint64_t l)
{
	return wal_gseq(w, w->multi->me, l);
}

uint64_t wal_multi_local(const struct wal *w, uint64_t g)
{
	return g ? local(w->multi, g) : 0;
}

bool wal_multi_mine(const struct wal *w, uint64_t g)
{
	return g && owner(w->multi, g) == w->multi->me;
}

/*
 * Copy worker k's local record @l whole into the buffer, checked: from its pool log (read-only
 * view) or from its segment files, whichever the bounds it published say has it, then re-check
 * that it was not truncated meanwhile. A record destaged or truncated between the look at the
 * bounds and the copy fails its check: one more look. @return 0 or -ENOENT.
 */
static int peer_fetch(struct wal *w, unsigned k, uint64_t l)
{
	struct wal_multi *m = w->multi;
	struct wal_peer *p = &m->peer[k];

	for (int pass = 0; pass < 2; pass++) {
		const struct wal_pub *pub = peer_pub(w, k, true);
		uint64_t te, pf, pn;

		if (!pub)
			return -ENOENT;
		te = ld((uint64_t *)&pub->tier_end);
		pf = ld((uint64_t *)&pub->first);
		pn = ld((uint64_t *)&pub->next);
		if (!pf || l >= pn || l < live_first(pub))
			return -ENOENT;
		if (w->sync == SYNC_FDATASYNC) {
			uint64_t fo = ld((uint64_t *)&pub->file_first_off);

			if (!p->fpath && asprintf(&p->fpath, "%s.w%u", w->file.given, k) < 0) {
				p->fpath = NULL;
				return -ENOENT;
			}
			if (!file_peer_read(&p->fp, p->fpath, pf, fo, l, m->buf, w->max_body,
			                    &m->buf_len) &&
			    ld((uint64_t *)&pub->first) <= l)
				break;
		} else if (l >= pf) {
			if (!paste_log_view__read(p->lv, l, pf, pn, m->buf, w->max_body,
			                          &m->buf_len) &&
			    ld((uint64_t *)&pub->first) <= l)
				break;
		} else if (l < te && w->tier.on) {
			if (!p->tdir && asprintf(&p->tdir, "%s/w%u", w->tier.base, k) < 0) {
				p->tdir = NULL;
				return -ENOENT;
			}
			if (!tier_peer_read(&p->tp, p->tdir, l, m->buf, w->max_body, &m->buf_len) &&
			    live_first(pub) <= l) {
				m->peer_tier_reads++;
				break;
			}
		}
		if (pass)
			return -ENOENT;
	}
	m->peer_reads++;
	return 0;
}

int wal_multi_len(struct wal *w, uint64_t g, uint64_t *len)
{
	struct wal_multi *m = w->multi;
	unsigned k = g ? owner(m, g) : 0;
	uint64_t f, n, pf, l = local(m, g);
	uint32_t l32;

	if (!g || !bounds(w, k, &f, &n, true))
		return -ENOENT;
	pf = ld((uint64_t *)&m->peer[k].pub->first);
	if (w->sync == SYNC_PMEM && l >= pf &&
	    !paste_log_view__len(m->peer[k].lv, l, pf, n, &l32)) {
		*len = l32;
		return 0;
	}
	m->buf_seq = 0; /* a tier or file record: its length is known once it is read */
	if (peer_fetch(w, k, l))
		return -ENOENT;
	m->buf_seq = g;
	*len = m->buf_len;
	return 0;
}

/* Bytes of another worker's record @g from @off: the whole record is copied (and checked) into
 * the buffer once, then served from there. -ENOENT when it is gone. */
ssize_t wal_multi_chunk(struct wal *w, uint64_t g, uint64_t off, const uint8_t **p, size_t max)
{
	struct wal_multi *m = w->multi;
	size_t left;

	if (m->buf_seq != g) {
		m->buf_seq = 0;
		if (peer_fetch(w, owner(m, g), local(m, g))) {
			m->peer_lost++;
			return -ENOENT;
		}
		m->buf_seq = g;
	}
	if (off >= m->buf_len)
		return -ENOENT;
	left = m->buf_len - off;
	*p = m->buf + off;
	return (ssize_t)(left < max ? left : max);
}

/* /stats: the workers' own counters and their totals, as JSON members (",\"workers\":[...]"). */
size_t wal_multi_stats(struct wal *w, char *buf, size_t size)
{
	struct wal_multi *m = w->multi;
	uint64_t tot[7] = {0};
	size_t off = 0;

	if (!m)
		return 0;
	publish_counters(w); /* our own counters as of now (mid-round: not next) */
	off +=
	    (size_t)snprintf(buf, size, ",\"queues\":%u,\"worker\":%u,\"workers\":[", m->n, m->me);
	for (unsigned k = 0; k < m->n && off < size; k++) {
		const struct wal_pub *pub = peer_pub(w, k, true);

		if (!pub) {
			off += (size_t)snprintf(buf + off, size - off,
			                        "%s{\"worker\":%u,\"up\":false}", k ? "," : "", k);
			continue;
		}
		tot[0] += pub->appended;
		tot[1] += pub->requests;
		tot[2] += pub->records;
		tot[3] += pub->tier_records;
		tot[4] += pub->tier_bytes;
		tot[5] += pub->tier_destaged;
		tot[6] += pub->fsyncs;
		off += (size_t)snprintf(
		    buf + off, size - off,
		    "%s{\"worker\":%u,\"pid\":%" PRIu64 ",\"starts\":%" PRIu64
		    ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"appended\":%" PRIu64
		    ",\"requests\":%" PRIu64 ",\"peer_reads\":%" PRIu64 ",\"first_seq\":%" PRIu64
		    ",\"next_seq\":%" PRIu64 ",\"truncated_upto\":%" PRIu64,
		    k ? "," : "", k, pub->pid, pub->starts, pub->records, pub->bytes, pub->appended,
		    pub->requests, pub->peer_reads, wal_gseq(w, k, live_first(pub)),
		    wal_gseq(w, k, ld((uint64_t *)&pub->next)), ld((uint64_t *)&pub->trunc_done));
		if (w->tier.on && off < size)
			off += (size_t)snprintf(
			    buf + off, size - off,
			    ",\"tier_records\":%" PRIu64 ",\"tier_bytes\":%" PRIu64
			    ",\"tier_destaged\":%" PRIu64 ",\"tier_reads\":%" PRIu64
			    ",\"tier_segments\":%" PRIu64 ",\"peer_tier_reads\":%" PRIu64,
			    pub->tier_records, pub->tier_bytes, pub->tier_destaged, pub->tier_reads,
			    pub->tier_segments, pub->peer_tier_reads);
		if (w->sync == SYNC_FDATASYNC && off < size)
			off += (size_t)snprintf(buf + off, size - off, ",\"fsyncs\":%" PRIu64,
			                        pub->fsyncs);
		if (off < size)
			off += (size_t)snprintf(buf + off, size - off, "}");
	}
	if (off < size)
		off +=
		    (size_t)snprintf(buf + off, size - off,
		                     "],\"total_appended\":%" PRIu64 ",\"total_requests\":%" PRIu64
		                     ",\"total_records\":%" PRIu64 ",\"peer_lost\":%" PRIu64,
		                     tot[0], tot[1], tot[2], m->peer_lost);
	if (w->tier.on && off < size)
		off += (size_t)snprintf(buf + off, size - off,
		                        ",\"total_tier_records\":%" PRIu64
		                        ",\"total_tier_bytes\":%" PRIu64
		                        ",\"total_tier_destaged\":%" PRIu64,
		                        tot[3], tot[4], tot[5]);
	if (w->sync == SYNC_FDATASYNC && off < size)
		off +=
		    (size_t)snprintf(buf + off, size - off, ",\"total_fsyncs\":%" PRIu64, tot[6]);
	return off < size ? off : size - 1;
}

/* --tier-dir with --queues: this worker's segments go to DIR/wK (made here, DIR too). */
int wal_multi_tier_dir(struct wal *w)
{
	struct wal_tier *t = &w->tier;

	if (!w->multi || !t->on)
		return 0;
	if (mkdir(t->base, 0755) && errno != EEXIST) {
		fprintf(stderr, "paste-wal: cannot create the tier directory %s: %s\n", t->base,
		        strerror(errno));
		return -errno;
	}
	if (asprintf(&t->dir_buf, "%s/w%u", t->base, w->multi->me) < 0) {
		t->dir_buf = NULL;
		fprintf(stderr, "paste-wal: out of memory\n");
		return -ENOMEM;
	}
	t->dir = t->dir_buf;
	return 0;
}

/*
 * Our tier's records are [first, end) now (first == end: none). tier_first is stored before
 * tier_end and live_first() loads them the other way round: a reader that sees the new end sees
 * the new first. The other order let a tier that starts again after a DELETE emptied it (or a
 * restart found it empty) show [old first, new end) for a moment: records a DELETE dropped
 * looked live, and a reader holding a deleted segment open served one (sim/tierpub).
 */
void wal_multi_tier_bounds(struct wal *w, uint64_t first, uint64_t end)
{
	if (!w->multi)
		return;
	st(&w->multi->pub->tier_first, first);
	st(&w->multi->pub->tier_end, end);
}

/* Our pool log's head moved (a destage job): before its frames are released. */
void wal_multi_pool_first(struct wal *w)
{
	struct paste_log_info li;

	if (!w->multi)
		return;
	paste_log__info(w->log, &li, sizeof(li));
	st(&w->multi->pub->first, li.first_seq);
}

/* The tier's test hook with a worker (PASTE_WAL_TIER_KILL_AT=STEP:N:W): armed in worker W on the
 * first start of its slice only, so that its restart does not kill itself again. */
bool wal_multi_hook(const struct wal *w, unsigned worker)
{
	return w->multi && w->multi->me == worker && w->multi->pub->starts == 1;
}
