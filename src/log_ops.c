/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log_ops.c - the persistent log's operations on an open log: append (records of references, the
 * seq stored last so a crash leaves a whole record or none), read, truncate (release the frames of
 * records before a seq, after the next fence). The format, open and recovery are in log_index.c.
 */
#include "log_internal.h"

/* ---- append -------------------------------------------------------------------------------- */

/* Check @refs for an append; @return 0 with *len = payload bytes, or -EINVAL with a message. */
static int log_check_refs(const struct paste_log *log, const struct paste_ref *refs, unsigned nrefs,
                          uint64_t *len)
{
	const struct paste_frames *f = paste_pool__frame_alloc(log->pool);
	uint32_t frame;

	*len = 0;
	if (!refs || nrefs == 0 || nrefs > PASTE_LOG_MAX_REFS)
		return paste_fail(
		    -EINVAL,
		    "log '%s': cannot append a record of %u references: a record names 1 to %d",
		    log->name, refs ? nrefs : 0, PASTE_LOG_MAX_REFS);
	for (unsigned i = 0; i < nrefs; i++) {
		const struct paste_ref *r = &refs[i];

		if (r->flags || !paste_pool__ref_in_frame(log->pool, r, &frame))
			return paste_fail(
			    -EINVAL,
			    "log '%s': reference %u ([%llu, +%u), flags %#x) is not a range inside one frame of the pool: append references made by paste_keep()",
			    log->name, i, (unsigned long long)r->off, r->len, r->flags);
		if (f && f->state[frame] != PASTE_FRAME_KEPT)
			return paste_fail(
			    -EINVAL,
			    "log '%s': reference %u names frame %u, which is not kept: keep the bytes (paste_keep) before appending",
			    log->name, i, frame);
		*len += r->len;
	}
	return 0;
}

/*
 * Where a record of @size bytes goes: 0 with *off (*wrap: a wrap marker goes at the tail first
 * and the record at 0), or -ENOSPC. Free space is [tail_off, head_off) around the ring.
 */
static int log_place(const struct paste_log *log, uint64_t size, uint64_t *off, bool *wrap)
{
	uint64_t h = log->head_off, t = log->tail_off;

	*wrap = false;
	*off = t;
	if (log->used == log->data_size)
		return -ENOSPC;
	if (t < h)
		return size <= h - t ? 0 : -ENOSPC;
	if (size <= log->data_size - t)
		return 0;
	if (size > h)
		return -ENOSPC;
	*wrap = true;
	*off = 0;
	return 0;
}

static int log_full(const struct paste_log *log, uint64_t size)
{
	if (size > log->data_size)
		return paste_fail(
		    -ENOSPC,
		    "log '%s': a record of %llu bytes can never fit in its %llu-byte data area: append fewer references per record or give the log a larger region",
		    log->name, (unsigned long long)size, (unsigned long long)log->data_size);
	return paste_fail_quiet(
	    -ENOSPC,
	    "log '%s' is full (%llu of %llu bytes used, %llu records; %llu more needed): truncate it or give it a larger region",
	    log->name, (unsigned long long)log->used, (unsigned long long)log->data_size,
	    (unsigned long long)plog_log_count(log), (unsigned long long)size);
}

/* Write and flush a wrap marker at the tail: the record with @seq follows at offset 0. */
static void log_write_wrap(struct paste_log *log, uint64_t seq)
{
	struct log_rec *m = plog_log_at(log, log->tail_off);

	*m = (struct log_rec){.seq = seq, .kind = LOG_KIND_WRAP, .epoch = log->epoch};
	m->crc = plog_rec_crc(m, 0);
	paste_pool__flush(log->pool, m, sizeof(*m));
	log->used += log->data_size - log->tail_off;
	log->tail_off = 0;
}

PASTE_EXPORT int paste_log__append(struct paste_log *log, const struct paste_ref *refs,
                                   unsigned nrefs, uint64_t *seq)
{
	uint64_t len, size, off;
	struct log_rec *r, h;
	bool wrap;
	int err;

	if (!log || !seq)
		return paste_fail(-EINVAL, "paste_log__append: log and seq must not be NULL");
	err = log_check_refs(log, refs, nrefs, &len);
	if (err)
		return err;
	size = plog_rec_size(nrefs);
	if (size > log->data_size || log_place(log, size, &off, &wrap))
		return log_full(log, size);
	if (plog_ring_reserve(log))
		return paste_fail(-ENOMEM, "log '%s': out of memory for the record index",
		                  log->name);
	if (wrap)
		log_write_wrap(log, log->next_seq);
	r = plog_log_at(log, off);
	h = (struct log_rec){.seq = log->next_seq,
	                     .len = (uint32_t)len,
	                     .nrefs = (uint16_t)nrefs,
	                     .kind = LOG_KIND_REC,
	                     .epoch = log->epoch,
	                     .pcrc = plog_payload_crc(log->pool, refs, nrefs)};
	/*
	 * A process that dies mid-append (kill -9) leaves its stores in the page cache: recovery
	 * would find a header with the expected seq and a bad checksum, a torn record. So the seq,
	 * which is what makes recovery look at the record, is stored last, in one 8-byte store,
	 * after everything else: a process crash leaves either no record or a whole one. (A power
	 * failure can still lose any unfenced line; the checksums catch that.)
	 */
	memcpy(r->refs, refs, nrefs * sizeof(*refs));
	h.crc = plog_hdr_crc(&h, r->refs, nrefs);
	memcpy((uint8_t *)r + sizeof(r->seq), (const uint8_t *)&h + sizeof(h.seq),
	       sizeof(h) - sizeof(h.seq));
	__atomic_store_n(&r->seq, h.seq, __ATOMIC_RELEASE);
	paste_pool__flush(log->pool, r, sizeof(*r) + nrefs * sizeof(*refs));
	*seq = log->next_seq;
	plog_ring_push(log, off);
	log->tail_off = (off + size) % log->data_size;
	log->used += size;
	log->bytes += len;
	/*
	 * The next record goes to the next line, which nothing has touched since the log last
	 * passed by: ask for it now, so that the next append, on the request's path to its reply,
	 * does not wait for it (issue 15: the append's stores missed every time). Asked for
	 * writing; this generic x86-64 build emits a read prefetch (prefetcht0) for it.
	 */
	__builtin_prefetch(plog_log_at(log, log->tail_off), 1);
	return 0;
}

/* ---- read ---------------------------------------------------------------------------------- */

static void log_fill(const struct paste_log *log, uint64_t seq, struct paste_log_rec *rec)
{
	const struct log_rec *r = plog_log_at(log, plog_ring_off(log, seq));

	rec->seq = seq;
	rec->len = r->len;
	rec->nrefs = r->nrefs;
	rec->refs = r->refs;
}

PASTE_EXPORT int paste_log__get(struct paste_log *log, uint64_t seq, struct paste_log_rec *rec)
{
	if (!log || !rec)
		return paste_fail(-EINVAL, "paste_log__get: log and rec must not be NULL");
	if (seq < log->first_seq || seq >= log->next_seq) {
		/* A miss is an answer, not a failure: kept for paste_last_error(), printed at
		 * debug level only. */
		return paste_fail_quiet(
		    -ENOENT, "log '%s': no record %llu (%s; the log holds %llu..%llu)", log->name,
		    (unsigned long long)seq, seq < log->first_seq ? "truncated" : "not written yet",
		    (unsigned long long)log->first_seq, (unsigned long long)log->next_seq - 1);
	}
	log_fill(log, seq, rec);
	return 0;
}

PASTE_EXPORT int paste_log__iterate(struct paste_log *log, uint64_t from_seq,
                                    int (*fn)(const struct paste_log_rec *rec, void *arg),
                                    void *arg)
{
	struct paste_log_rec rec;
	uint64_t end;
	int ret;

	if (!log || !fn)
		return paste_fail(-EINVAL, "paste_log__iterate: log and fn must not be NULL");
	end = log->next_seq; /* records appended by @fn are not visited */
	for (uint64_t s = from_seq; s < end; s++) {
		if (s < log->first_seq) /* from_seq was truncated, or @fn truncated */
			s = log->first_seq;
		if (s >= end)
			break;
		log_fill(log, s, &rec);
		ret = fn(&rec, arg);
		if (ret)
			return ret;
	}
	return 0;
}

PASTE_EXPORT int paste_log__info(const struct paste_log *log, struct paste_log_info *out, size_t sz)
{
	struct paste_log_info info = {0};

	if (!log)
		return paste_fail(-EINVAL, "paste_log__info: NULL log");
	info.first_seq = log->first_seq;
	info.next_seq = log->next_seq;
	info.records = plog_log_count(log);
	info.bytes = log->bytes;
	info.region_size = log->region_size;
	info.region_used = LOG_HDR_SIZE + log->used;
	info.recovered = log->recovered;
	info.dropped = log->dropped;
	return paste_info_copy(out, sz, &info, sizeof(info), "paste_log__info");
}

/* ---- truncate ------------------------------------------------------------------------------ */

/*
 * Give back the references of record @seq after the next fence. The head that dropped it is
 * already durable, so if the deferred queue cannot grow, releasing at once is just as safe.
 */
static void log_release(struct paste_log *log, uint64_t seq)
{
	const struct log_rec *r = plog_log_at(log, plog_ring_off(log, seq));
	int err;

	for (unsigned i = 0; i < r->nrefs; i++) {
		err = paste_pool__ref_put_after_fence(log->pool, &r->refs[i]);
		if (err == -ENOMEM)
			err = paste_pool__ref_put(log->pool, &r->refs[i]);
		if (err)
			pr_warn(
			    "log '%s': record %llu: releasing reference %u failed (%d): frame accounting is off",
			    log->name, (unsigned long long)seq, i, err);
	}
	log->bytes -= r->len;
}

PASTE_EXPORT int paste_log__truncate(struct paste_log *log, uint64_t upto_seq)
{
	uint64_t first, last, new_off;

	if (!log)
		return paste_fail(-EINVAL, "paste_log__truncate: log must not be NULL");
	first = log->first_seq;
	last = upto_seq < log->next_seq ? upto_seq : log->next_seq - 1;
	if (upto_seq < first || last < first)
		return 0;
	new_off = last + 1 < log->next_seq ? plog_ring_off(log, last + 1) : log->tail_off;
	if (last + 1 == log->next_seq && log->used < log->data_size) { /* empties the log */
		memset(plog_log_at(log, new_off), 0, LOG_ALIGN);
		paste_pool__flush(log->pool, plog_log_at(log, new_off), LOG_ALIGN);
	}
	plog_head_write(log, last + 1, new_off, log->epoch); /* durable: flushed and fenced */
	for (uint64_t s = first; s <= last; s++)
		log_release(log, s);
	log->used = plog_log_span(log, plog_log_count(log));
	return 0;
}
