/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_tier.c - paste-wal's capacity tier (--tier-dir): the oldest records of the pool log move, in
 * log order and in the background, from pool frames to segment files on an ordinary file system,
 * so the pool stays the fast durable tier for the newest records and fills only when the tier is
 * full too.
 *
 * The log is then two ranges: tier records [first, end) in segment files, and the pool log's
 * records [end, next). What says where a record lives is persistent and switched atomically:
 *  - the pool log's head (its first record, two checksummed slots, paste_log__truncate) is @end;
 *  - an 8-byte word in the pool region "<log>.tier" is @first, or 0 while the tier is empty.
 * Destaging one job (up to TIER_JOB_RECORDS records from the pool log's head):
 *  1. the event loop snapshots the records' references and hands the job to the destage thread;
 *  2. the thread writes each record to the current segment file (struct wf_rec, payload, CRC32C
 *     of both: the log file's record format), fdatasync()s it, and the directory when the file is
 *     new; the event loop goes on serving meanwhile (nothing on the request path waits for it);
 *  3. the event loop, after a round, sees the job done: if the tier was empty it stores the job's
 *     first seq as the tier's first (one 8-byte store, persisted), then moves the pool log's head
 *     past the job (persisted and fenced), then drains once more, which releases the frames.
 * A crash before 3 leaves the records in the pool (the file copy is cut at recovery); after the
 * head moved, every destaged record is named by the tier range and has a synced file copy. So a
 * record is always named either by the pool log (its frames) or by the tier (a synced file copy),
 * never neither, and never served twice. Recovery (tier_open) reads every segment, checks every
 * record of [first, end) against its CRC32C, refuses to start if one is missing or bad, deletes
 * segments below @first and cuts copies at or above @end (a job whose head move never happened).
 *
 * DELETE (tier_truncate) waits for a running job and commits it, then stores the new first (0 when
 * it empties the tier) before the pool log is truncated, and deletes whole dead segments after.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal.h"
#include "wal_seg.h"

#define TIER_REC_OVER SEG_REC_OVER

enum { JOB_IDLE, JOB_RUNNING, JOB_DONE };

/*
 * Test hook: PASTE_WAL_TIER_KILL_AT=STEP[:N] makes the process SIGKILL itself the Nth time (default
 * 1st) a destage job reaches STEP: "written" (segment written, not synced), "synced" (segment and
 * directory synced, nothing switched), "tiered" (the tier word stored for an empty tier, the pool
 * head not moved), "switched" (pool head moved, frames not yet released), "released" (frames
 * released, the tier's index not yet updated). test_wal_tier.sh kills at every step this way.
 * With --queues, STEP:N:W arms it in worker W only, and only on its slice's first start (its
 * restart must not kill itself again; test_multiqueue_wal_tier.sh).
 */
enum { KILL_OFF, KILL_WRITTEN, KILL_SYNCED, KILL_TIERED, KILL_SWITCHED, KILL_RELEASED };
static const char *const kill_names[] = {"", "written", "synced", "tiered", "switched", "released"};

static void kill_point(struct wal_tier *t, int step)
{
	if (t->kill_step == step && __atomic_sub_fetch(&t->kill_count, 1, __ATOMIC_RELAXED) == 0)
		raise(SIGKILL);
}

static void kill_setup(struct wal *w, struct wal_tier *t)
{
	const char *v = getenv("PASTE_WAL_TIER_KILL_AT");
	const char *wk;
	size_t n;

	if (!v || !*v)
		return;
	wk = strchr(v, ':') ? strchr(strchr(v, ':') + 1, ':') : NULL;
	if (wk && !wal_multi_hook(w, (unsigned)strtoul(wk + 1, NULL, 10)))
		return; /* another worker's, or this worker's restart */
	n = strcspn(v, ":");
	for (int i = 1; i < (int)(sizeof(kill_names) / sizeof(kill_names[0])); i++)
		if (strlen(kill_names[i]) == n && !strncmp(v, kill_names[i], n))
			t->kill_step = i;
	t->kill_count = v[n] == ':' ? (unsigned)strtoul(v + n + 1, NULL, 10) : 1;
	if (!t->kill_step || !t->kill_count)
		t->kill_step = KILL_OFF;
	fprintf(stderr, "paste-wal: tier test hook: SIGKILL at step '%s' (time %u)\n",
	        kill_names[t->kill_step], t->kill_count);
}

static int tier_fail(const struct wal_tier *t, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tier_fail(const struct wal_tier *t, int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "paste-wal: tier %s: ", t->dir ? t->dir : "(none)");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return err;
}

/* The persistent first: one aligned 8-byte store, then flush + fence. */
static void head_store(struct wal *w, uint64_t first)
{
	__atomic_store_n(w->tier.head, first, __ATOMIC_RELEASE);
	paste_pool__persist(w->pool, (const void *)w->tier.head, sizeof(*w->tier.head));
}

static int job_state(struct wal_tier *t)
{
	int s;

	pthread_mutex_lock(&t->mu);
	s = t->busy ? JOB_RUNNING : t->done ? JOB_DONE : JOB_IDLE;
	pthread_mutex_unlock(&t->mu);
	return s;
}

/* ---- the record index ------------------------------------------------------------------- */

static int ix_push(struct wal_tier *t, uint64_t seq, uint64_t off, uint32_t len, uint32_t seg)
{
	uint64_t i = seq - t->ix_base;

	if (i >= t->ix_cap && t->first > t->ix_base) { /* compact: drop truncated entries */
		memmove(t->ix, t->ix + (t->first - t->ix_base), (seq - t->first) * sizeof(*t->ix));
		t->ix_base = t->first;
		i = seq - t->ix_base;
	}
	if (i >= t->ix_cap) {
		uint64_t cap = t->ix_cap ? t->ix_cap * 2 : 4096;
		struct tier_ix *n;

		while (cap <= i)
			cap *= 2;
		n = realloc(t->ix, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->ix = n;
		t->ix_cap = cap;
	}
	t->ix[i] = (struct tier_ix){off, len, seg};
	return 0;
}

static const struct tier_ix *ix_at(const struct wal_tier *t, uint64_t seq)
{
	return &t->ix[seq - t->ix_base];
}

static int seg_add(struct wal_tier *t, uint64_t first, uint64_t end, uint64_t size, int fd)
{
	struct tier_seg *n = realloc(t->segs, (t->nsegs + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	t->segs = n;
	t->segs[t->nsegs++] = (struct tier_seg){first, end, size, fd};
	return 0;
}

/* Close and delete the oldest @k segments. */
static void seg_drop(struct wal_tier *t, uint32_t k)
{
	char name[64];

	for (uint32_t i = 0; i < k; i++) {
		seg_name(name, sizeof(name), t->segs[i].first);
		close(t->segs[i].fd);
		if (unlinkat(t->dirfd, name, 0) && errno != ENOENT)
			tier_fail(t, 0, "cannot delete %s: %s (delete it by hand)", name,
			          strerror(errno));
		t->bytes -= t->segs[i].size;
		t->n.segs_deleted++;
	}
	memmove(t->segs, t->segs + k, (t->nsegs - k) * sizeof(*t->segs));
	t->nsegs -= k;
	t->seg_base += k;
}

/* ---- the destage thread ----------------------------------------------------------------- */

/* Write the job's records at j->off and sync. Runs in the destage thread: it touches only the
 * job, the file and pool bytes the log keeps alive until the event loop commits the job. */
static int job_write(struct wal *w, struct tier_job *j)
{
	struct wal_tier *t = &w->tier;
	uint64_t nrec = j->end - j->first;
	size_t niov = 0, r = 0;
	struct wf_rec *hdrs = (struct wf_rec *)(j->iov + j->iov_cap);
	uint32_t *crcs = (uint32_t *)(hdrs + j->rec_cap);
	int err;

	for (uint64_t i = 0; i < nrec; i++) {
		uint32_t crc, len = 0;

		for (uint32_t k = 0; k < j->nrefs[i]; k++)
			len += j->refs[r + k].len;
		hdrs[i] = (struct wf_rec){.magic = WF_REC_MAGIC, .len = len, .seq = j->first + i};
		crc = paste_crc32c(0, &hdrs[i], sizeof(hdrs[i]));
		j->iov[niov++] = (struct iovec){&hdrs[i], sizeof(hdrs[i])};
		for (uint32_t k = 0; k < j->nrefs[i]; k++, r++) {
			void *p = paste_pool__ref_ptr(w->pool, &j->refs[r]);

			crc = paste_crc32c(crc, p, j->refs[r].len);
			j->iov[niov++] = (struct iovec){p, j->refs[r].len};
		}
		crcs[i] = crc;
		j->iov[niov++] = (struct iovec){&crcs[i], sizeof(crcs[i])};
	}
	err = write_all(j->fd, j->iov, (int)niov, j->off);
	if (err)
		return err;
	kill_point(t, KILL_WRITTEN);
	if (!w->no_persist && fdatasync(j->fd))
		return -errno;
	if (j->new_file && !w->no_persist && fsync(t->dirfd))
		return -errno;
	kill_point(t, KILL_SYNCED);
	return 0;
}

static void *destage_main(void *arg)
{
	struct wal *w = arg;
	struct wal_tier *t = &w->tier;

	pthread_mutex_lock(&t->mu);
	for (;;) {
		uint64_t t0;
		int err;

		while (!t->busy && !t->quit)
			pthread_cond_wait(&t->cv, &t->mu);
		if (!t->busy)
			break;
		pthread_mutex_unlock(&t->mu);
		t0 = daemon_now_ns();
		err = job_write(w, &t->job);
		pthread_mutex_lock(&t->mu);
		t->job.err = err;
		t->job.ns = daemon_now_ns() - t0;
		t->busy = false;
		t->done = true;
		pthread_cond_broadcast(&t->cv);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* ---- the event loop's side: start jobs, commit them ------------------------------------- */

static bool job_grow(struct tier_job *j, size_t recs, size_t refs)
{
	if (recs > j->rec_cap || refs > j->ref_cap) {
		size_t rc = recs > j->rec_cap ? recs * 2 : j->rec_cap;
		size_t fc = refs > j->ref_cap ? refs * 2 : j->ref_cap;
		uint32_t *nr = realloc(j->nrefs, rc * sizeof(*nr));
		struct paste_ref *rf;
		struct iovec *iov;

		if (!nr)
			return false;
		j->nrefs = nr;
		rf = realloc(j->refs, fc * sizeof(*rf));
		if (!rf)
			return false;
		j->refs = rf;
		/* iovecs (2 per record + 1 per ref), then the headers and CRCs they point at */
		iov = realloc(j->iov, (2 * rc + fc) * sizeof(*iov) +
		                          rc * (sizeof(struct wf_rec) + sizeof(uint32_t)));
		if (!iov)
			return false;
		j->iov = iov;
		j->iov_cap = 2 * rc + fc;
		j->rec_cap = rc;
		j->ref_cap = fc;
	}
	return true;
}

/*
 * Pool fill in percent: frames kept for records, or the log region, whichever is fuller. Also
 * what a job must take to get below --tier-stop: *frames references (about one frame each) and
 * *region bytes of log records.
 */
static uint64_t pool_fill(struct wal *w, uint64_t *frames, uint64_t *region)
{
	struct paste_stats s;
	struct paste_log_info li;
	uint64_t f = 0, g, stop = w->tier.stop_pct, keep;

	*frames = *region = 0;
	if (!paste_stats(w->ctx, &s, sizeof(s)) && s.frames_total) {
		f = (uint64_t)s.frames_kept * 100 / s.frames_total;
		keep = (uint64_t)s.frames_total * stop / 100;
		*frames = s.frames_kept > keep ? s.frames_kept - keep : 0;
	}
	paste_log__info(w->log, &li, sizeof(li));
	g = li.region_size ? li.region_used * 100 / li.region_size : 0;
	keep = li.region_size * stop / 100;
	*region = li.region_used > keep ? li.region_used - keep : 0;
	return f > g ? f : g;
}

/* A segment to append the job to: the last one, or a new file once it has TIER_SEG_MAX. */
static int job_segment(struct wal_tier *t, struct tier_job *j)
{
	struct tier_seg *last = t->nsegs ? &t->segs[t->nsegs - 1] : NULL;
	char name[64];
	int fd, err;

	j->new_file = !last || last->size >= TIER_SEG_MAX || last->end != j->first;
	if (!j->new_file) {
		j->fd = last->fd;
		j->off = last->size;
		return 0;
	}
	seg_name(name, sizeof(name), j->first);
	fd = openat(t->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return tier_fail(t, -errno, "cannot create segment %s: %s", name, strerror(errno));
	err = seg_add(t, j->first, j->first, 0, fd);
	if (err) {
		close(fd);
		return err;
	}
	j->fd = fd;
	j->off = 0;
	return 0;
}

/* Take the oldest pool records into a job and start the thread on it, if destaging is due. */
static void job_start(struct wal *w)
{
	struct wal_tier *t = &w->tier;
	struct tier_job *j = &t->job;
	struct paste_log_info li;
	struct paste_log_rec rec;
	uint64_t want_frames, want_region, fill = pool_fill(w, &want_frames, &want_region), seq;
	uint64_t region = 0;
	size_t nref = 0;

	if (fill >= t->start_pct || w->stalled || w->full)
		t->destaging = true;
	else if (fill <= t->stop_pct)
		t->destaging = false;
	if (!t->destaging)
		return;
	paste_log__info(w->log, &li, sizeof(li));
	j->first = li.first_seq;
	j->bytes = j->payload = 0;
	/* The oldest records, up to the job's bounds, and no more than it takes to reach the stop
	 * threshold: the newest records stay in the pool (at least one record when a body waits).
	 */
	for (seq = li.first_seq;
	     seq < li.next_seq && seq - li.first_seq < TIER_JOB_RECORDS &&
	     j->payload < TIER_JOB_BYTES &&
	     (seq == li.first_seq || nref < want_frames || region < want_region);
	     seq++) {
		if (paste_log__get(w->log, seq, &rec))
			break;
		if (t->bytes + j->bytes + rec.len + TIER_REC_OVER > t->size)
			break;
		if (!job_grow(j, seq - li.first_seq + 1, nref + rec.nrefs))
			break;
		memcpy(j->refs + nref, rec.refs, rec.nrefs * sizeof(*rec.refs));
		j->nrefs[seq - li.first_seq] = rec.nrefs;
		nref += rec.nrefs;
		region += (32 + 16 * rec.nrefs + 63) & ~63u; /* its size in the log region */
		j->bytes += rec.len + TIER_REC_OVER;
		j->payload += rec.len;
	}
	j->end = seq;
	t->full = j->end == j->first && seq < li.next_seq; /* the oldest record does not fit */
	if (j->end == j->first)
		return;
	if (job_segment(t, j)) {
		t->failed = true;
		return;
	}
	pthread_mutex_lock(&t->mu);
	t->busy = true;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

/* The thread finished the job: switch the records to their file copies and free their frames.
 * @return true when frames were freed. */
static bool job_commit(struct wal *w)
{
	struct wal_tier *t = &w->tier;
	struct tier_job *j = &t->job;
	struct tier_seg *sg = &t->segs[t->nsegs - 1];
	struct paste_log_info li;
	uint64_t off = j->off;
	size_t r = 0;
	int err;

	pthread_mutex_lock(&t->mu);
	t->done = false;
	pthread_mutex_unlock(&t->mu);
	t->n.jobs++;
	t->n.job_ns_total += j->ns;
	if (j->ns > t->n.job_ns_max)
		t->n.job_ns_max = j->ns;
	paste_log__info(w->log, &li, sizeof(li));
	if (j->err || li.first_seq != j->first) {
		if (!j->err)
			j->err = -ESTALE;
		tier_fail(t, 0,
		          "destaging records %" PRIu64 "..%" PRIu64 " failed (%s): destaging "
		          "stops; the records stay in the pool, which refuses appends (507) once "
		          "full; fix the file system and restart",
		          j->first, j->end - 1, strerror(-j->err));
		if (ftruncate(j->fd, (off_t)j->off)) /* drop the partial copy; recovery would too */
			t->n.trimmed++;
		t->failed = true;
		return false;
	}
	if (t->first == t->end) { /* the tier was empty: it starts at this job */
		t->first = t->end = t->ix_base = j->first;
		head_store(w, j->first);
		kill_point(t, KILL_TIERED);
	}
	wal_multi_tier_bounds(w, t->first, j->end);    /* --queues: readers find the copies */
	err = paste_log__truncate(w->log, j->end - 1); /* the switch: persisted and fenced */
	if (err) {
		tier_fail(t, 0, "cannot move the pool log's head (%s): destaging stops",
		          strerror(-err));
		t->failed = true;
		return false;
	}
	wal_multi_pool_first(w); /* --queues: before the frames can be reused */
	kill_point(t, KILL_SWITCHED);
	paste_pool__drain(w->pool); /* the fence after which the frames are released */
	kill_point(t, KILL_RELEASED);
	for (uint64_t s = j->first; s < j->end; s++) {
		uint32_t len = 0;

		for (uint32_t k = 0; k < j->nrefs[s - j->first]; k++)
			len += j->refs[r++].len;
		if (ix_push(t, s, off, len, t->seg_base + t->nsegs - 1)) {
			/* The head moved: the records are in the tier, but not indexed. */
			tier_fail(t, 0, "out of memory for the tier index: stopping");
			w->fatal = 1;
			paste_stop(w->ctx);
			return true;
		}
		off += len + TIER_REC_OVER;
	}
	sg->end = j->end;
	sg->size = j->off + j->bytes;
	t->bytes += j->bytes;
	t->payload += j->payload;
	t->end = j->end;
	t->n.destaged += j->end - j->first;
	t->n.destaged_bytes += j->payload;
	return true;
}

/* Wait for a running job and commit it. */
static bool tier_quiesce(struct wal *w)
{
	struct wal_tier *t = &w->tier;

	if (!t->thread_up)
		return false;
	pthread_mutex_lock(&t->mu);
	while (t->busy)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	return job_state(t) == JOB_DONE && job_commit(w);
}

bool tier_poll(struct wal *w)
{
	struct wal_tier *t = &w->tier;
	bool freed = false;
	int s;

	if (!t->on || !t->thread_up)
		return false;
	s = job_state(t);
	if (s == JOB_DONE) {
		freed = job_commit(w);
		retain_apply(w); /* before the next job, which would destage what it drops */
	}
	if (s != JOB_RUNNING && !t->failed && !w->fatal)
		job_start(w);
	return freed;
}

bool tier_can_take(struct wal *w)
{
	struct wal_tier *t = &w->tier;
	struct paste_log_info li;

	if (!t->on || t->failed || t->full)
		return false;
	if (job_state(t) != JOB_IDLE)
		return true;
	paste_log__info(w->log, &li, sizeof(li));
	return li.records > 0;
}

bool tier_running(struct wal *w)
{
	return w->tier.thread_up && job_state(&w->tier) == JOB_RUNNING;
}

/* ---- reads and truncation --------------------------------------------------------------- */

bool tier_holds(const struct wal *w, uint64_t seq)
{
	return w->tier.on && seq >= w->tier.first && seq < w->tier.end;
}

uint64_t tier_len(const struct wal *w, uint64_t seq)
{
	return ix_at(&w->tier, seq)->len;
}

ssize_t tier_read(struct wal *w, uint64_t seq, uint64_t off, void *buf, size_t n)
{
	struct wal_tier *t = &w->tier;
	const struct tier_ix *e = ix_at(t, seq);
	const struct tier_seg *sg = &t->segs[e->seg - t->seg_base];
	ssize_t r;

	if (off >= e->len)
		return 0;
	if (n > e->len - off)
		n = (size_t)(e->len - off);
	r = pread(sg->fd, buf, n, (off_t)(e->off + sizeof(struct wf_rec) + off));
	if (r <= 0) {
		tier_fail(t, 0, "reading record %" PRIu64 ": %s", seq,
		          r < 0 ? strerror(errno) : "short file");
		return -EIO;
	}
	if (off == 0)
		t->n.reads++;
	t->n.read_bytes += (uint64_t)r;
	return r;
}

/* Drop tier records below @first (durable before the caller truncates the pool log). */
int tier_truncate(struct wal *w, uint64_t upto)
{
	struct wal_tier *t = &w->tier;
	uint64_t first;
	uint32_t k = 0;

	if (!t->on)
		return 0;
	tier_quiesce(w);
	if (t->first == t->end && *t->head) {
		/* An empty tier whose word still names a record: a crash between a job's word store
		 * and its pool head move left it, and recovery kept it (it was the pool's first).
		 * The pool log is about to drop records from there on: with the word left, the next
		 * start would look for them in the tier and refuse (sim/tierpub found it). */
		head_store(w, 0);
		return 0;
	}
	if (t->first == t->end || upto < t->first)
		return 0;
	first = upto + 1 < t->end ? upto + 1 : t->end;
	wal_multi_tier_bounds(w, first, t->end); /* --queues: readers stop before it drops them */
	head_store(w, first < t->end ? first : 0);
	for (uint64_t s = t->first; s < first; s++)
		t->payload -= ix_at(t, s)->len;
	t->first = first;
	while (k < t->nsegs && t->segs[k].end <= first)
		k++;
	seg_drop(t, k);
	if (t->first == t->end)
		t->ix_base = t->first;
	t->full = false;
	return 0;
}

/* ---- recovery ----------------------------------------------------------------------------- */

/* Recover one segment: index its records of [first, @pool_first), cut what lies at or above. */
static int seg_recover(struct wal *w, uint64_t sfirst, uint64_t pool_first)
{
	struct wal_tier *t = &w->tier;
	char name[64];
	struct stat st;
	uint64_t off = 0, seq = sfirst;
	uint32_t len, segno = t->seg_base + t->nsegs;
	int fd, err;

	seg_name(name, sizeof(name), sfirst);
	if (!*t->head || sfirst >= pool_first) { /* nothing in it is a tier record */
		unlinkat(t->dirfd, name, 0);
		t->n.trimmed++;
		return 0;
	}
	fd = openat(t->dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		return tier_fail(t, -errno, "cannot open %s: %s", name, strerror(errno));
	while (seq < pool_first &&
	       (len = seg_check(fd, (uint64_t)st.st_size, off, seq, seq >= t->first, w->scratch,
	                        sizeof(w->scratch), NULL))) {
		if (seq >= t->first) {
			if (seq != t->end)
				break; /* a gap before it: reported by the caller */
			err = ix_push(t, seq, off, len, segno);
			if (err) {
				close(fd);
				return err;
			}
			t->end++;
			t->payload += len;
			t->n.recovered++;
		}
		off += len + TIER_REC_OVER;
		seq++;
	}
	if (off < (uint64_t)st.st_size && seq >= pool_first) { /* copies the pool still has */
		if (ftruncate(fd, (off_t)off)) {
			close(fd);
			return tier_fail(t, -errno, "cannot cut %s: %s", name, strerror(errno));
		}
		t->n.trimmed++;
		st.st_size = (off_t)off;
	}
	if (seq <= t->first) { /* only dead records */
		close(fd);
		unlinkat(t->dirfd, name, 0);
		return 0;
	}
	err = seg_add(t, sfirst, seq, (uint64_t)st.st_size, fd);
	if (err) {
		close(fd);
		return err;
	}
	t->bytes += (uint64_t)st.st_size;
	return 0;
}

static int tier_scan(struct wal *w, uint64_t pool_first)
{
	struct wal_tier *t = &w->tier;
	uint64_t *v = NULL;
	size_t n;
	int err = seg_list(t->dirfd, &v, &n);

	if (err)
		return tier_fail(t, err, "cannot list the directory: %s", strerror(-err));
	for (size_t i = 0; i < n && !err; i++)
		err = seg_recover(w, v[i], pool_first);
	free(v);
	if (!err && t->end != pool_first)
		err = tier_fail(t, -EBADMSG,
		                "records %" PRIu64 "..%" PRIu64 " of the log should be in its "
		                "segment files, but record %" PRIu64 " is missing or fails its "
		                "checksum: the tier is damaged. Restore the directory, or move "
		                "the pool and the directory away to start a new log",
		                t->first, pool_first - 1, t->end);
	return err;
}

static int region_open(struct wal *w, struct tier_region **reg)
{
	char name[PASTE_POOL_REGION_NAME_MAX + 8];
	uint64_t len;
	void *addr;
	int err;

	if (snprintf(name, sizeof(name), "%s.tier", w->log_name) > PASTE_POOL_REGION_NAME_MAX) {
		fprintf(stderr,
		        "paste-wal: --log name '%s' is too long for the tier's region "
		        "'<log>.tier' (at most 26 characters)\n",
		        w->log_name);
		return -EINVAL;
	}
	err = paste_pool__region(w->pool, name, TIER_REGION_SIZE, &addr, &len);
	if (err) {
		fprintf(stderr, "paste-wal: cannot open the tier's pool region '%s': %s\n", name,
		        paste_last_error());
		return err;
	}
	*reg = addr;
	if ((*reg)->magic != TIER_MAGIC) { /* new (zero-filled) */
		(*reg)->first = 0;
		paste_pool__persist(w->pool, &(*reg)->first, sizeof((*reg)->first));
		(*reg)->magic = TIER_MAGIC;
		paste_pool__persist(w->pool, &(*reg)->magic, sizeof((*reg)->magic));
	}
	return 0;
}

int tier_open(struct wal *w)
{
	struct wal_tier *t = &w->tier;
	struct tier_region *reg;
	struct paste_log_info li;
	int err = region_open(w, &reg);

	if (err)
		return t->on ? err : 0; /* without a tier, only a used one matters */
	t->head = &reg->first;
	paste_log__info(w->log, &li, sizeof(li));
	t->first = t->end = t->ix_base = li.first_seq;
	if (!t->on) {
		if (!*t->head || *t->head == li.first_seq)
			return 0;
		fprintf(stderr,
		        "paste-wal: records %" PRIu64 "..%" PRIu64 " of log '%s' are in a "
		        "capacity tier (segment files): start with --tier-dir naming its "
		        "directory\n",
		        *t->head, li.first_seq - 1, w->log_name);
		return -EEXIST;
	}
	if (*t->head > li.first_seq)
		return tier_fail(t, -EBADMSG,
		                 "the pool says the tier starts at record %" PRIu64 ", after the "
		                 "pool log's first record %" PRIu64 ": the pool is corrupt",
		                 *t->head, li.first_seq);
	if (mkdir(t->dir, 0755) && errno != EEXIST)
		return tier_fail(t, -errno, "cannot create the directory: %s", strerror(errno));
	t->dirfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0)
		return tier_fail(t, -errno, "cannot open the directory: %s", strerror(errno));
	if (flock(t->dirfd, LOCK_EX | LOCK_NB))
		return tier_fail(t, -errno,
		                 "cannot lock the directory (%s): another paste-wal uses it",
		                 strerror(errno));
	if (*t->head)
		t->first = t->end = t->ix_base = *t->head;
	kill_setup(w, t);
	err = tier_scan(w, li.first_seq);
	if (err)
		return err;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	err = pthread_create(&t->thread, NULL, destage_main, w);
	if (err)
		return tier_fail(t, -err, "cannot start the destage thread: %s", strerror(err));
	t->thread_up = true;
	return 0;
}

void tier_close(struct wal *w)
{
	struct wal_tier *t = &w->tier;

	if (t->thread_up) {
		tier_quiesce(w);
		pthread_mutex_lock(&t->mu);
		t->quit = true;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->thread, NULL);
		t->thread_up = false;
	}
	for (uint32_t i = 0; i < t->nsegs; i++)
		close(t->segs[i].fd);
	t->nsegs = 0;
	if (t->on && t->dirfd >= 0)
		close(t->dirfd);
	free(t->segs);
	free(t->ix);
	free(t->dir_buf);
	free(t->job.nrefs);
	free(t->job.refs);
	free(t->job.iov);
}
