/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_store.c - the store interface of paste-wal: one set of calls over the pool log (--sync pmem:
 * records name payload kept in pool frames, paste_log__*) and the log file (--sync fdatasync,
 * wal_file.c). With a capacity tier (wal_tier.c) the oldest records of the pool log live in
 * segment files: the log is then tier records [tier.first, tier.end) followed by the pool log's
 * records [tier.end, next), and every call here sees both. The retention policies
 * (--retain-bytes, --retain-secs) drop the oldest records through the same interface.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wal.h"

/* This process's own log (with --queues: this worker's, in local seqs), both tiers. */
void store_local_info(struct wal *w, struct store_info *si)
{
	if (w->sync == SYNC_PMEM) {
		struct paste_log_info li;

		paste_log__info(w->log, &li, sizeof(li));
		*si = (struct store_info){li.first_seq, li.next_seq, li.records, li.bytes};
		if (w->tier.on && w->tier.first < w->tier.end) { /* the older records */
			si->first = w->tier.first;
			si->records += w->tier.end - w->tier.first;
			si->bytes += w->tier.payload;
		}
	} else {
		struct wal_file *f = &w->file;

		*si = (struct store_info){f->first_seq, f->next_seq, f->next_seq - f->first_seq,
		                          f->bytes};
	}
}

void store_info(struct wal *w, struct store_info *si)
{
	if (w->multi) /* every worker's log: one sequence space (wal_multi.c) */
		wal_multi_info(w, si);
	else
		store_local_info(w, si);
}

/* Payload length of this process's own record @seq (local). @return 0 or -ENOENT. */
int store_local_len(struct wal *w, uint64_t seq, uint64_t *len)
{
	struct paste_log_rec rec;

	if (tier_holds(w, seq)) {
		*len = tier_len(w, seq);
		return 0;
	}
	if (w->sync == SYNC_PMEM) {
		if (paste_log__get(w->log, seq, &rec))
			return -ENOENT;
		*len = rec.len;
		return 0;
	}
	if (seq < w->file.first_seq || seq >= w->file.next_seq)
		return -ENOENT;
	*len = w->file.idx[seq - w->file.base].len;
	return 0;
}

/* Payload length of record @seq. @return 0 or -ENOENT. */
int store_len(struct wal *w, uint64_t seq, uint64_t *len)
{
	if (w->multi) {
		if (!wal_multi_mine(w, seq))
			return wal_multi_len(w, seq, len);
		seq = wal_multi_local(w, seq);
	}
	return store_local_len(w, seq, len);
}

/*
 * The next contiguous bytes of the job's record at j->off: a pointer into the pool (pmem), or
 * into w->scratch after a read of at most @max bytes (file, tier). @return bytes (> 0) or -ENOENT
 * when the record is gone (truncated since the reply started), -EIO when a read failed. A record
 * destaged while its reply was being sent continues from the tier at the same offset.
 */
ssize_t store_chunk(struct wal *w, struct job *j, const uint8_t **p, size_t max)
{
	struct paste_log_rec rec;
	uint64_t seq = j->seq;
	size_t n;

	if (w->multi) {
		if (!wal_multi_mine(w, seq))
			return wal_multi_chunk(w, seq, j->off, p, max);
		seq = wal_multi_local(w, seq);
	}
	if (tier_holds(w, seq)) {
		ssize_t r;

		n = max < sizeof(w->scratch) ? max : sizeof(w->scratch);
		r = tier_read(w, seq, j->off, w->scratch, n);
		if (r <= 0)
			return r < 0 ? r : -EIO;
		*p = w->scratch;
		return r;
	}
	if (w->sync == SYNC_FDATASYNC) {
		struct wal_file *f = &w->file;
		ssize_t r;

		if (seq < f->first_seq || seq >= f->next_seq) /* local seq with --queues */
			return -ENOENT;
		n = j->len - j->off < max ? (size_t)(j->len - j->off) : max;
		if (n > sizeof(w->scratch))
			n = sizeof(w->scratch);
		r = pread(f->fd, w->scratch, n,
		          (off_t)(f->idx[seq - f->base].off + sizeof(struct wf_rec) + j->off));
		if (r <= 0)
			return -EIO;
		*p = w->scratch;
		return r;
	}
	if (paste_log__get(w->log, seq, &rec) || j->ref_idx >= rec.nrefs)
		return -ENOENT;
	while (j->off >= j->ref_base + rec.refs[j->ref_idx].len) {
		j->ref_base += rec.refs[j->ref_idx].len;
		if (++j->ref_idx >= rec.nrefs)
			return -ENOENT;
	}
	*p = (const uint8_t *)paste_pool__ref_ptr(w->pool, &rec.refs[j->ref_idx]) +
	     (j->off - j->ref_base);
	n = (size_t)(j->ref_base + rec.refs[j->ref_idx].len - j->off);
	return (ssize_t)(n > 0xffff ? 0xffff : n);
}

/* Append a record naming @refs. Takes the references (released here unless the pool log owns
 * them now). @return 0 with *seq, -ENOSPC (log or disk full), or another -errno. */
int store_append(struct wal *w, const struct paste_ref *refs, unsigned n, uint64_t len,
                 uint64_t *seq)
{
	int err;

	if (w->sync == SYNC_PMEM) {
		err = paste_log__append(w->log, refs, n, seq);
		if (!err) {
			/*
			 * The body is flushed only now, after the append read it for the record's
			 * CRC: on CPUs whose clwb evicts the line (as clflushopt does), a flush
			 * before the CRC made it read the body back from memory (issue 15: the CRC
			 * went from ~1 % to ~5 % of the server's samples). Still before the
			 * round's fence, so still before the 201.
			 */
			for (unsigned i = 0; i < n; i++)
				paste_persist(w->ctx, paste_pool__ref_ptr(w->pool, &refs[i]),
				              refs[i].len);
			if (w->multi)
				*seq = wal_multi_own(w, *seq);
			return 0;
		}
	} else {
		err = wf_append(w, refs, n, len, seq);
		if (!err && w->multi)
			*seq = wal_multi_own(w, *seq);
	}
	for (unsigned i = 0; i < n; i++)
		paste_release(w->ctx, &refs[i]);
	return err;
}

/* Drop every record <= @upto: the tier's first (durable), then the pool log's head (fenced). */
int store_truncate(struct wal *w, uint64_t upto)
{
	if (w->multi)
		return -EOPNOTSUPP; /* refused before (do_delete); no retention with --queues */
	if (w->sync == SYNC_PMEM) {
		int err = tier_truncate(w, upto);

		return err ? err : paste_log__truncate(w->log, upto);
	}
	return wf_truncate(&w->file, upto);
}

/* ---- retention ------------------------------------------------------------------------------ */

/*
 * With --queues every worker applies the retention to its own log, in its own (local) seqs: at
 * most --retain-bytes / N bytes each, records older than --retain-secs. What these see of the log.
 */
static void retain_info(struct wal *w, struct store_info *si)
{
	if (w->multi)
		store_local_info(w, si);
	else
		store_info(w, si);
}

static int retain_len(struct wal *w, uint64_t seq, uint64_t *len)
{
	return w->multi ? store_local_len(w, seq, len) : store_len(w, seq, len);
}

/* At startup: what recovery found counts as appended now. */
void retain_start(struct wal *w)
{
	struct store_info si;

	if (!w->retain.secs)
		return;
	retain_info(w, &si);
	retain_mark(w, si.first);
	w->retain.started = true;
}

/* Note that record @seq is appended now (--retain-secs): a new mark when the second changed. */
void retain_mark(struct wal *w, uint64_t seq)
{
	struct wal_retain *r = &w->retain;
	time_t t;

	if (!r->secs)
		return;
	if (w->multi && r->started) /* an acknowledged record's global seq: ours, locally */
		seq = wal_multi_local(w, seq);
	t = time(NULL);
	if (r->nmarks > r->head && r->marks[r->nmarks - 1].t >= t)
		return;
	if (r->nmarks == r->cap) {
		if (r->head) { /* drop the marks of truncated records first */
			memmove(r->marks, r->marks + r->head,
			        (r->nmarks - r->head) * sizeof(*r->marks));
			r->nmarks -= r->head;
			r->head = 0;
		}
		if (r->nmarks == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 1024;
			struct retain_mark *m = realloc(r->marks, cap * sizeof(*m));

			if (!m)
				return; /* the next second's mark covers these records (kept longer)
				         */
			r->marks = m;
			r->cap = cap;
		}
	}
	r->marks[r->nmarks++] = (struct retain_mark){seq, t};
}

/* The last record to drop so that at most --retain-bytes remain, or 0. */
static uint64_t retain_bytes_upto(struct wal *w, const struct store_info *si)
{
	uint64_t over, len, s, max = w->retain.bytes;

	if (w->multi && max)
		max = wal_multi_share(w, max);
	if (!max || si->bytes <= max)
		return 0;
	over = si->bytes - max;
	for (s = si->first; s < si->next && over; s++) {
		if (retain_len(w, s, &len))
			break;
		over = len >= over ? 0 : over - len;
	}
	return s > si->first ? s - 1 : 0;
}

/* The last record appended more than --retain-secs ago, or 0. */
static uint64_t retain_secs_upto(struct wal *w, const struct store_info *si)
{
	struct wal_retain *r = &w->retain;
	time_t limit = time(NULL) - (time_t)r->secs;
	uint64_t upto = 0;

	if (!r->secs)
		return 0;
	/* marks[i] and the next mark: records [seq_i, seq_i+1) were appended in second t_i */
	while (r->head + 1 < r->nmarks && r->marks[r->head].t < limit) {
		upto = r->marks[r->head + 1].seq - 1;
		r->head++;
	}
	if (r->head + 1 == r->nmarks && r->marks[r->head].t < limit) { /* all of them */
		upto = si->next - 1;
		r->marks[r->head].seq = si->next;
	}
	return upto >= si->first ? upto : 0;
}

/*
 * Once per tick and after every destage job: drop the oldest records beyond --retain-bytes or
 * older than --retain-secs, as a DELETE would (durable before anything else happens), with a line
 * on stderr. Not while a destage job runs (the truncation would wait for its fdatasync).
 */
void retain_apply(struct wal *w)
{
	struct store_info si;
	uint64_t a, b, upto, bytes, first;

	if ((!w->retain.bytes && !w->retain.secs) || tier_running(w))
		return;
	retain_info(w, &si);
	a = retain_bytes_upto(w, &si);
	b = retain_secs_upto(w, &si);
	upto = a > b ? a : b;
	if (!upto || upto < si.first)
		return;
	bytes = si.bytes;
	first = si.first;
	if (w->multi ? wal_multi_retain(w, upto) : store_truncate(w, upto)) {
		fprintf(stderr,
		        "paste-wal: retention: truncating up to record %" PRIu64 " failed\n", upto);
		return;
	}
	retain_info(w, &si);
	w->retain.n.truncations++;
	w->retain.n.records += si.first - first;
	w->retain.n.bytes += bytes - si.bytes;
	w->retain.quiet_records += si.first - first;
	w->retain.quiet_bytes += bytes - si.bytes;
	if (time(NULL) == w->retain.printed) /* at most one line a second */
		return;
	w->retain.printed = time(NULL);
	fprintf(stderr,
	        "paste-wal: retention: dropped %" PRIu64 " records (%" PRIu64
	        " bytes) up to record %" PRIu64 ": %s\n",
	        w->retain.quiet_records, w->retain.quiet_bytes,
	        w->multi ? wal_multi_own(w, upto) : upto,
	        upto == a ? "over --retain-bytes" : "older than --retain-secs");
	w->retain.quiet_records = w->retain.quiet_bytes = 0;
}
