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
 * docs/multicore.md ("paste-wal on N queues") gives the order's cost and the limits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
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
};

struct wal_peer {
	struct paste_pool_view *pv;
	struct paste_log_view *lv;
	const struct wal_pub *pub;
	uint64_t tried; /* daemon_now_ns() of the last failed attempt to map it (0: none) */
};

struct wal_multi {
	unsigned n, me;
	struct wal_pub *pub;
	struct wal_peer peer[WAL_MAX_QUEUES];
	uint8_t *buf; /* the peer record being sent */
	uint64_t buf_seq;
	uint32_t buf_len;
	uint64_t peer_reads, peer_lost;
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
	m->pub->queues = queues;
	m->pub->worker = worker;
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
		struct paste_log_info li;

		paste_log__info(w->log, &li, sizeof(li));
		if (upto >= li.first_seq) {
			st(&m->pub->first, upto + 1 < li.next_seq ? upto + 1 : li.next_seq);
			err = paste_log__truncate(w->log, upto);
			if (err) {
				fprintf(stderr,
				        "paste-wal: worker %u: truncating up to record %" PRIu64
				        " failed: %s\n",
				        m->me, g, paste_last_error());
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
	struct paste_log_info li;
	int err;

	paste_log__info(w->log, &li, sizeof(li));
	st(&w->multi->pub->first, upto + 1 < li.next_seq ? upto + 1 : li.next_seq);
	err = paste_log__truncate(w->log, upto);
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
	struct paste_log_info li;

	paste_log__info(w->log, &li, sizeof(li));
	m->pub->records = li.records;
	m->pub->bytes = li.bytes;
	m->pub->appended = w->n.appended;
	m->pub->appended_bytes = w->n.appended_bytes;
	m->pub->requests = w->n.requests;
	m->pub->r4xx = w->n.r4xx;
	m->pub->r5xx = w->n.r5xx;
	m->pub->peer_reads = m->peer_reads;
	st(&m->pub->first, li.first_seq);
}

/* Only after a fence (the round hook, startup): every record below next is durable. A record
 * appended in the current round is not yet: next must not name it before the round's fence. */
void wal_multi_publish(struct wal *w)
{
	struct paste_log_info li;

	if (!w->multi)
		return;
	publish_counters(w);
	paste_log__info(w->log, &li, sizeof(li));
	st(&w->multi->pub->next, li.next_seq);
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
	if (p->lv)
		return p->pub;
	now = daemon_now_ns();
	if (!force && p->tried && now - p->tried < WAL_PEER_RETRY_NS)
		return NULL;
	p->tried = now;
	if (!p->pv && paste_pool_view__open(&p->pv, w->pool, k))
		return NULL;
	p->pub = paste_pool_view__region(p->pv, WAL_PUB_NAME, NULL);
	if (!p->pub || ld(&p->pub->magic) != WAL_PUB_MAGIC || p->pub->queues != m->n ||
	    paste_log_view__open(&p->lv, p->pv, w->log_name)) {
		paste_pool_view__close(&p->pv); /* its regions may come later: map again */
		p->pub = NULL;
		return NULL;
	}
	return p->pub;
}

/* Worker k's committed local records [*first, *next); false when it has none to show. @force:
 * look for a peer not mapped yet even if it was not there a moment ago (peer_pub). */
static bool bounds(struct wal *w, unsigned k, uint64_t *first, uint64_t *next, bool force)
{
	const struct wal_pub *pub = peer_pub(w, k, force);

	if (!pub)
		return false;
	if (k == w->multi->me) {
		struct paste_log_info li;

		paste_log__info(w->log, &li,
		                sizeof(li)); /* our own: everything appended is readable */
		*first = li.first_seq;
		*next = li.next_seq;
	} else {
		*first = ld((uint64_t *)&pub->first);
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
			struct paste_log_info li;

			paste_log__info(w->log, &li, sizeof(li));
			si->records += li.records;
			si->bytes += li.bytes;
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

int wal_multi_len(struct wal *w, uint64_t g, uint64_t *len)
{
	struct wal_multi *m = w->multi;
	unsigned k = g ? owner(m, g) : 0;
	uint64_t f, n;
	uint32_t l32;

	if (!g || !bounds(w, k, &f, &n, true) ||
	    paste_log_view__len(m->peer[k].lv, local(m, g), f, n, &l32))
		return -ENOENT;
	*len = l32;
	return 0;
}

/* Bytes of another worker's record @g from @off: the whole record is copied (and checked) into
 * the buffer once, then served from there. -ENOENT when it is gone. */
ssize_t wal_multi_chunk(struct wal *w, uint64_t g, uint64_t off, const uint8_t **p, size_t max)
{
	struct wal_multi *m = w->multi;
	unsigned k = owner(m, g);
	uint64_t f, n, l = local(m, g);
	size_t left;

	if (m->buf_seq != g) {
		m->buf_seq = 0;
		if (!bounds(w, k, &f, &n, true) ||
		    paste_log_view__read(m->peer[k].lv, l, f, n, m->buf, w->max_body,
		                         &m->buf_len) ||
		    ld((uint64_t *)&m->peer[k].pub->first) > l) {
			m->peer_lost++;
			return -ENOENT;
		}
		m->buf_seq = g;
		m->peer_reads++;
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
	uint64_t tot[3] = {0};
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
		off += (size_t)snprintf(
		    buf + off, size - off,
		    "%s{\"worker\":%u,\"pid\":%" PRIu64 ",\"starts\":%" PRIu64
		    ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"appended\":%" PRIu64
		    ",\"requests\":%" PRIu64 ",\"peer_reads\":%" PRIu64 ",\"first_seq\":%" PRIu64
		    ",\"next_seq\":%" PRIu64 ",\"truncated_upto\":%" PRIu64 "}",
		    k ? "," : "", k, pub->pid, pub->starts, pub->records, pub->bytes, pub->appended,
		    pub->requests, pub->peer_reads, wal_gseq(w, k, ld((uint64_t *)&pub->first)),
		    wal_gseq(w, k, ld((uint64_t *)&pub->next)), ld((uint64_t *)&pub->trunc_done));
	}
	if (off < size)
		off +=
		    (size_t)snprintf(buf + off, size - off,
		                     "],\"total_appended\":%" PRIu64 ",\"total_requests\":%" PRIu64
		                     ",\"total_records\":%" PRIu64 ",\"peer_lost\":%" PRIu64,
		                     tot[0], tot[1], tot[2], m->peer_lost);
	return off < size ? off : size - 1;
}
