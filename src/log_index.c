/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log_index.c - the persistent log (include/paste/index.h, log part): append-only records that name
 * kept payload bytes in the pool, stored in a ring of bytes inside one pool region, with dense
 * sequence numbers, O(1) lookup by sequence number, prefix truncation, and recovery at pool open.
 *
 * The log never copies payload: a record is a list of references (struct paste_ref) to bytes the
 * NIC wrote into pool frames, plus the checksum of those bytes. Appends flush the record and leave
 * the fence to the caller (one paste_pool__drain() per batch); truncation moves a persistent head
 * and is fenced on return. There is no persistent tail: recovery walks the chain of records from
 * the head and stops at the first one that does not check out. docs/log-index.md has the full
 * format, the crash-atomicity argument and the recovery algorithm.
 */
#include "log_internal.h"

/* ---- format helpers ------------------------------------------------------------------------ */

uint64_t plog_rec_size(unsigned nrefs)
{
	return PASTE_ALIGN_UP(sizeof(struct log_rec) + nrefs * sizeof(struct paste_ref),
	                      (uint64_t)LOG_ALIGN);
}

/* CRC of a header (crc field taken as 0) and its @nrefs refs. */
/* CRC of header @hd (its crc field taken as 0) followed by @nrefs refs at @refs. */
uint32_t plog_hdr_crc(const struct log_rec *hd, const struct paste_ref *refs, unsigned nrefs)
{
	struct log_rec h = *hd;

	h.crc = 0;
	return paste_crc32c(paste_crc32c(0, &h, sizeof(h)), refs, nrefs * sizeof(*refs));
}

uint32_t plog_rec_crc(const struct log_rec *r, unsigned nrefs)
{
	return plog_hdr_crc(r, r->refs, nrefs);
}

uint32_t plog_payload_crc(const struct paste_pool *pool, const struct paste_ref *refs,
                          unsigned nrefs)
{
	uint32_t crc = 0;

	for (unsigned i = 0; i < nrefs; i++)
		crc = paste_crc32c(crc, paste_pool__ref_ptr(pool, &refs[i]), refs[i].len);
	return crc;
}

uint32_t plog_head_crc(const struct log_head *h)
{
	struct log_head t = *h;

	t.crc = 0;
	return paste_crc32c(0, &t, sizeof(t));
}

uint32_t plog_super_crc(const struct log_super *s)
{
	struct log_super t = *s;

	t.crc = 0;
	return paste_crc32c(0, &t, sizeof(t));
}

struct log_head *plog_log_slot(const struct paste_log *log, unsigned i)
{
	return (struct log_head *)(log->region + LOG_SLOT_OFF + i * LOG_ALIGN);
}

struct log_rec *plog_log_at(const struct paste_log *log, uint64_t off)
{
	return (struct log_rec *)(log->data + off);
}

uint64_t plog_log_count(const struct paste_log *log)
{
	return log->next_seq - log->first_seq;
}

uint64_t plog_ring_off(const struct paste_log *log, uint64_t seq)
{
	return (uint64_t)log->ring[seq & (log->ring_cap - 1)] * LOG_ALIGN;
}

/* Make room in the volatile index for one more record. @return 0 or -ENOMEM. */
int plog_ring_reserve(struct paste_log *log)
{
	uint64_t cap = log->ring_cap * 2;
	uint32_t *ring;

	if (plog_log_count(log) < log->ring_cap)
		return 0;
	ring = malloc(cap * sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	for (uint64_t s = log->first_seq; s < log->next_seq; s++)
		ring[s & (cap - 1)] = log->ring[s & (log->ring_cap - 1)];
	free(log->ring);
	log->ring = ring;
	log->ring_cap = cap;
	return 0;
}

/* Record that @seq (== next_seq) is at @off: the caller reserved room with plog_ring_reserve(). */
void plog_ring_push(struct paste_log *log, uint64_t off)
{
	log->ring[log->next_seq & (log->ring_cap - 1)] = (uint32_t)(off / LOG_ALIGN);
	log->next_seq++;
}

/*
 * Make @seq/@off the persistent head: write the slot that is not current, persist it (flush +
 * fence). A crash tears at most that slot, and recovery then takes the other one.
 */
void plog_head_write(struct paste_log *log, uint64_t seq, uint64_t off, uint32_t epoch)
{
	unsigned next = log->cur ^ 1;
	struct log_head *h = plog_log_slot(log, next);

	h->gen = log->gen + 1;
	h->seq = seq;
	h->off = off;
	h->epoch = epoch;
	h->crc = 0;
	h->crc = plog_head_crc(h);
	paste_pool__persist(log->pool, h, sizeof(*h));
	log->cur = next;
	log->gen++;
	log->epoch = epoch;
	log->first_seq = seq;
	log->head_off = off;
}

/* Bytes from head to tail around the ring, for a log holding @count records. */
uint64_t plog_log_span(const struct paste_log *log, uint64_t count)
{
	uint64_t d = (log->tail_off + log->data_size - log->head_off) % log->data_size;

	return count == 0 ? 0 : d ? d : log->data_size;
}

void plog_log_free(void *p)
{
	struct paste_log *log = p;

	if (!log)
		return;
	free(log->ring);
	free(log);
}

struct paste_log *plog_log_new(struct paste_pool *pool, const char *name, void *region,
                               uint64_t region_size, uint64_t data_size)
{
	struct paste_log *log = calloc(1, sizeof(*log));

	if (!log)
		return NULL;
	log->ring_cap = LOG_RING_MIN;
	log->ring = calloc(log->ring_cap, sizeof(*log->ring));
	if (!log->ring) {
		free(log);
		return NULL;
	}
	log->pool = pool;
	log->region = region;
	log->data = (uint8_t *)region + LOG_HDR_SIZE;
	log->region_size = region_size;
	log->data_size = data_size;
	snprintf(log->name, sizeof(log->name), "%s", name);
	return log;
}

/* ---- creating and opening ------------------------------------------------------------------ */

/*
 * Format a zeroed (or half-formatted) region: head slot 0, a blank slot 1 and the super without
 * its magic first, persisted; then the magic, persisted. The magic is stored only then (not even
 * transiently before: a cache line can be written back at any time), so a crash before it is
 * durable leaves a region without a magic, which the next open formats again.
 */
static void log_format(struct paste_log *log)
{
	struct log_super *s = (struct log_super *)log->region;
	struct log_head *h0 = plog_log_slot(log, 0), *h1 = plog_log_slot(log, 1);
	struct log_super t = {.magic = PASTE_LOG_MAGIC,
	                      .version = LOG_VERSION,
	                      .hdr_size = LOG_HDR_SIZE,
	                      .data_size = log->data_size,
	                      .align = LOG_ALIGN};

	memset(h1, 0, sizeof(*h1));
	*h0 = (struct log_head){.gen = 1, .seq = LOG_FIRST_SEQ, .off = 0, .epoch = 1};
	h0->crc = plog_head_crc(h0);
	t.crc = plog_super_crc(&t);
	t.magic = 0;
	*s = t;
	paste_pool__flush(log->pool, h0, sizeof(*h0));
	paste_pool__flush(log->pool, h1, sizeof(*h1));
	paste_pool__persist(log->pool, s, sizeof(*s));
	s->magic = PASTE_LOG_MAGIC;
	paste_pool__persist(log->pool, s, sizeof(*s));
	log->cur = 0;
	log->gen = 1;
	log->epoch = 1;
	log->first_seq = log->next_seq = LOG_FIRST_SEQ;
}

static int log_create(struct paste_pool *pool, const char *name, void *region, uint64_t len,
                      struct paste_log **logp)
{
	uint64_t data_size = (len - LOG_HDR_SIZE) & ~(uint64_t)(LOG_ALIGN - 1);
	struct paste_log *log;
	int err;

	if (len < LOG_HDR_SIZE + LOG_ALIGN)
		return paste_fail(-EINVAL, "log '%s': region of %llu bytes is too small for a log",
		                  name, (unsigned long long)len);
	if (data_size > LOG_MAX_DATA)
		data_size = LOG_MAX_DATA;
	log = plog_log_new(pool, name, region, len, data_size);
	if (!log)
		return paste_fail(-ENOMEM, "log '%s': out of memory", name);
	log_format(log);
	err = paste_pool__set_index(pool, name, log, &paste_log_index_type);
	if (err)
		goto err_free;
	pr_info("log '%s': created, %llu-byte data area", name, (unsigned long long)data_size);
	*logp = log;
	return 0;

err_free:
	plog_log_free(log);
	return err;
}

PASTE_EXPORT int paste_log__open(struct paste_log **logp, struct paste_pool *pool, const char *name,
                                 const struct paste_log_opts *opts)
{
	struct paste_log_opts o = {0};
	struct paste_log *log;
	uint64_t len, region_size;
	void *addr;
	int err;

	if (!pool || !name || !logp)
		return paste_fail(-EINVAL, "paste_log__open: pool, name and log must not be NULL");
	*logp = NULL;
	if (opts && (err = PASTE_OPTS_COPY(&o, opts, region_size, "paste_log__open")))
		return err;
	region_size = o.region_size;
	err = paste_index__find(pool, &paste_log_index_type, name, region_size != 0, &addr, &len,
	                        (void **)&log);
	if (err == -ENOENT && region_size)
		err = paste_pool__region(pool, name, region_size, &addr, &len);
	if (err)
		return err;
	if (len < region_size)
		return paste_fail(
		    -EINVAL,
		    "log '%s' has a %llu-byte region, %llu were asked for: regions cannot grow; ask for at most %llu or use another name",
		    name, (unsigned long long)len, (unsigned long long)region_size,
		    (unsigned long long)len);
	if (log) {
		*logp = log;
		return 0;
	}
	return log_create(pool, name, addr, len, logp);
}

/* ---- recovery ------------------------------------------------------------------------------ */

static int log_check_super(const char *name, const void *addr, uint64_t len, uint64_t *data_size)
{
	const struct log_super *s = addr;

	if (len < LOG_HDR_SIZE + LOG_ALIGN || s->magic != PASTE_LOG_MAGIC)
		return paste_fail(-EBADMSG, "log '%s': region of %llu bytes holds no log header",
		                  name, (unsigned long long)len);
	if (s->version != LOG_VERSION)
		return paste_fail(
		    -EBADMSG,
		    "log '%s' has format version %u; this library reads version %u: use a matching libpaste-xdp or recreate the pool",
		    name, s->version, LOG_VERSION);
	if (s->crc != plog_super_crc(s))
		return paste_fail(
		    -EBADMSG,
		    "log '%s': header checksum mismatch: the log is corrupt; restore the pool file or recreate it",
		    name);
	if (s->hdr_size != LOG_HDR_SIZE || s->align != LOG_ALIGN || s->data_size == 0 ||
	    s->data_size % LOG_ALIGN || s->data_size > len - LOG_HDR_SIZE ||
	    s->data_size > LOG_MAX_DATA)
		return paste_fail(
		    -EBADMSG,
		    "log '%s': header geometry does not fit its %llu-byte region: the log is corrupt; restore or recreate the pool",
		    name, (unsigned long long)len);
	*data_size = s->data_size;
	return 0;
}

static bool head_valid(const struct log_head *h, uint64_t data_size)
{
	return h->gen != 0 && h->crc == plog_head_crc(h) && h->off < data_size &&
	       h->off % LOG_ALIGN == 0 && h->epoch != 0 && h->seq != 0;
}

/* Load the current head slot: the valid one with the higher gen. @return 0 or -EBADMSG. */
static int log_load_head(struct paste_log *log)
{
	const struct log_head *h0 = plog_log_slot(log, 0), *h1 = plog_log_slot(log, 1);
	bool ok0 = head_valid(h0, log->data_size), ok1 = head_valid(h1, log->data_size);
	const struct log_head *h;

	if (!ok0 && !ok1)
		return paste_fail(
		    -EBADMSG,
		    "log '%s': both head slots are corrupt: the log cannot be read; restore the pool file or recreate it",
		    log->name);
	log->cur = ok1 && (!ok0 || h1->gen > h0->gen);
	h = plog_log_slot(log, log->cur);
	log->gen = h->gen;
	log->epoch = h->epoch;
	log->first_seq = log->next_seq = h->seq;
	log->head_off = log->tail_off = h->off;
	return 0;
}

/* The refs of @r lie in frames and add up to its length. */
static bool rec_refs_ok(const struct paste_log *log, const struct log_rec *r)
{
	uint64_t len = 0;

	for (unsigned i = 0; i < r->nrefs; i++) {
		if (r->refs[i].flags || !paste_pool__ref_in_frame(log->pool, &r->refs[i], NULL))
			return false;
		len += r->refs[i].len;
	}
	return len == r->len;
}

/*
 * Is the record at @off the next one of the chain: seq @seq, epoch in [@floor, log->epoch], inside
 * the data area and within @room free bytes, checksums good (the payload's only after an unclean
 * shutdown: a clean close fenced everything). @check_payload false: header and refs only.
 */
static bool rec_valid(const struct paste_log *log, uint64_t off, uint64_t seq, uint32_t floor,
                      uint64_t room, bool check_payload)
{
	const struct log_rec *r = plog_log_at(log, off);
	uint64_t size = plog_rec_size(r->nrefs);

	if (r->kind != LOG_KIND_REC || r->seq != seq || r->nrefs == 0 ||
	    r->nrefs > PASTE_LOG_MAX_REFS || r->reserved || off + size > log->data_size ||
	    size > room || r->epoch < floor || r->epoch > log->epoch)
		return false;
	if (r->crc != plog_rec_crc(r, r->nrefs) || !rec_refs_ok(log, r))
		return false;
	return !check_payload || r->pcrc == plog_payload_crc(log->pool, r->refs, r->nrefs);
}

/* Is the entry at @off a wrap marker the chain may follow (same rules as a record; never at 0). */
static bool wrap_valid(const struct paste_log *log, uint64_t off, uint64_t seq, uint32_t floor)
{
	const struct log_rec *m = plog_log_at(log, off);

	return off != 0 && m->kind == LOG_KIND_WRAP && m->seq == seq && m->nrefs == 0 &&
	       m->len == 0 && m->pcrc == 0 && !m->reserved && m->epoch >= floor &&
	       m->epoch <= log->epoch && m->crc == plog_rec_crc(m, 0);
}

/*
 * Count the records cut off after the chain ended at @off expecting @seq: each further entry with
 * the expected seq and a plausible epoch counts (a torn record's seq usually survives); the walk
 * goes on past a record only if its header and refs check out (its payload may not), past a wrap
 * marker even if the marker's crc is bad (it carries nothing), and never further than the free
 * space. Only a report: nothing here decides what is kept.
 */
static uint64_t log_count_cut(const struct paste_log *log, uint64_t off, uint64_t seq,
                              uint32_t floor)
{
	uint64_t n = 0, walked = log->used;

	while (walked < log->data_size) {
		const struct log_rec *r = plog_log_at(log, off);
		bool is_rec = r->kind == LOG_KIND_REC;

		if ((!is_rec && r->kind != LOG_KIND_WRAP) || r->seq != seq || r->epoch < floor ||
		    r->epoch > log->epoch)
			break;
		n += is_rec;
		if (is_rec ? !rec_valid(log, off, seq, floor, log->data_size - walked, false)
		           : off == 0)
			break;
		walked += is_rec ? plog_rec_size(r->nrefs) : log->data_size - off;
		off = is_rec ? (off + plog_rec_size(r->nrefs)) % log->data_size : 0;
		seq += is_rec;
		floor = r->epoch;
	}
	return n;
}

/*
 * Walk the chain from the head: each entry must be the next record (or a wrap marker and then the
 * next record at 0). Fills the volatile index, tail_off, used and bytes. @return 0 or -ENOMEM.
 */
static int log_scan(struct paste_log *log)
{
	bool check_payload = !paste_pool__was_clean(log->pool);
	uint64_t off = log->head_off, waste;
	uint32_t floor = 0, mfloor;

	for (;;) {
		const struct log_rec *r;

		waste = 0;
		mfloor = floor;
		if (wrap_valid(log, off, log->next_seq, floor) &&
		    log->used + (log->data_size - off) < log->data_size) {
			waste = log->data_size - off;
			mfloor =
			    plog_log_at(log, off)->epoch; /* the record behind a marker is as new */
			off = 0;
		}
		if (!rec_valid(log, off, log->next_seq, mfloor, log->data_size - log->used - waste,
		               check_payload))
			break;
		if (plog_ring_reserve(log))
			return paste_fail(-ENOMEM, "log '%s': out of memory for the record index",
			                  log->name);
		r = plog_log_at(log, off);
		plog_ring_push(log, off);
		log->used += waste + plog_rec_size(r->nrefs);
		log->bytes += r->len;
		floor = r->epoch;
		off = (off + plog_rec_size(r->nrefs)) % log->data_size;
		log->tail_off = off;
	}
	log->recovered = plog_log_count(log);
	log->dropped = log_count_cut(log, log->tail_off, log->next_seq, floor);
	return 0;
}

/* Put back the references taken for records [first_seq, @seq) and the first @nref refs of @seq. */
static void log_put_refs(struct paste_log *log, uint64_t seq, unsigned nref)
{
	for (uint64_t s = log->first_seq; s <= seq && s < log->next_seq; s++) {
		const struct log_rec *r = plog_log_at(log, plog_ring_off(log, s));
		unsigned n = s == seq ? nref : r->nrefs;

		for (unsigned i = 0; i < n; i++)
			paste_pool__ref_put(log->pool, &r->refs[i]);
	}
}

/* Take one frame reference per ref of every recovered record; on failure put them back. */
static int log_take_refs(struct paste_log *log)
{
	for (uint64_t s = log->first_seq; s < log->next_seq; s++) {
		const struct log_rec *r = plog_log_at(log, plog_ring_off(log, s));

		for (unsigned i = 0; i < r->nrefs; i++) {
			int err = paste_pool__ref_get(log->pool, &r->refs[i]);

			if (!err)
				continue;
			log_put_refs(log, s, i);
			return paste_fail(
			    err,
			    "log '%s': record %llu names a frame the pool cannot reference (%d): the pool's frame accounting is inconsistent; the pool was not opened",
			    log->name, (unsigned long long)s, err);
		}
	}
	return 0;
}

/*
 * Seal the recovered chain: zero the first line of free space at the tail (so the record that was
 * cut there can never become valid again, even if its payload bytes reappear), and move to a new
 * epoch (so no new record can chain into a stale one from before the crash). Both durable here,
 * before any append of this run.
 */
static void log_seal(struct paste_log *log)
{
	if (log->used < log->data_size) {
		memset(plog_log_at(log, log->tail_off), 0, LOG_ALIGN);
		paste_pool__flush(log->pool, plog_log_at(log, log->tail_off), LOG_ALIGN);
	}
	plog_head_write(log, log->first_seq, log->head_off, log->epoch + 1);
}

static int log_recover(struct paste_pool *pool, const char *name, void *addr, uint64_t len)
{
	struct paste_log *log;
	uint64_t data_size = 0;
	int err;

	err = log_check_super(name, addr, len, &data_size);
	if (err)
		return err;
	log = plog_log_new(pool, name, addr, len, data_size);
	if (!log)
		return paste_fail(-ENOMEM, "log '%s': out of memory", name);
	err = log_load_head(log);
	if (!err)
		err = log_scan(log);
	if (err)
		goto err_free;
	err = log_take_refs(log);
	if (err)
		goto err_free;
	log_seal(log);
	err = paste_pool__set_index(pool, name, log, &paste_log_index_type);
	if (err)
		goto err_put;
	paste_print(log->dropped ? PASTE_LOG_WARN : PASTE_LOG_INFO,
	            "log '%s': recovered %llu records (seq %llu..%llu), cut %llu torn or invalid",
	            name, (unsigned long long)log->recovered, (unsigned long long)log->first_seq,
	            (unsigned long long)log->next_seq - 1, (unsigned long long)log->dropped);
	return 0;

err_put:
	log_put_refs(log, log->next_seq, 0);
err_free:
	plog_log_free(log);
	return err;
}

static const void *log_region(const void *handle)
{
	return ((const struct paste_log *)handle)->region;
}

const struct paste_index_type paste_log_index_type = {
    .magic = PASTE_LOG_MAGIC,
    .name = "log",
    .create_arg = "a region size",
    .recover = log_recover,
    .free = plog_log_free,
    .region = log_region,
};
