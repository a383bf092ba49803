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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pool_internal.h"

/*
 * Region layout (offsets from the region start, host byte order):
 *
 *   0    struct log_super: magic, version, geometry, crc; written once, when the log is created
 *   64   head slot 0  \ struct log_head {gen, seq, off, epoch, crc}: the persistent head, written
 *   128  head slot 1  / alternately; the slot with a good crc and the higher gen is current
 *   256  data area: data_size bytes (a multiple of 64) used as a ring of records
 *
 * Records start on a 64-byte boundary: a 32-byte struct log_rec, then nrefs struct paste_ref
 * (16 bytes each), then padding up to the next 64 bytes. A record never straddles the end of the
 * data area: when it does not fit there, a wrap marker (a struct log_rec of kind LOG_KIND_WRAP
 * carrying the seq of the record that follows) is written at the tail and the record goes to
 * offset 0. Records and markers carry the epoch they were written in; the epoch is bumped at every
 * recovery, so a chain can never run from a new record into a stale one left behind by a crash.
 */
#define LOG_VERSION   1u
#define LOG_ALIGN     64u
#define LOG_HDR_SIZE  256u
#define LOG_SLOT_OFF  64u
#define LOG_KIND_REC  0x4352u /* "RC" */
#define LOG_KIND_WRAP 0x5057u /* "WP" */
#define LOG_FIRST_SEQ 1u
#define LOG_RING_MIN  64u
#define LOG_MAX_DATA  (1ull << 38) /* the volatile index keeps offsets / 64 in 32 bits */

/* Written once at creation: the magic last, in its own persist, so a magic implies the rest. */
struct log_super {
	uint64_t magic;     /* PASTE_LOG_MAGIC */
	uint32_t version;   /* LOG_VERSION */
	uint32_t hdr_size;  /* LOG_HDR_SIZE: offset of the data area */
	uint64_t data_size; /* multiple of LOG_ALIGN, <= region size - hdr_size */
	uint32_t align;     /* LOG_ALIGN */
	uint32_t crc;       /* CRC32C of this struct with crc = 0 */
};

/* One head slot (each on its own cache line). An update writes the slot that is not current. */
struct log_head {
	uint64_t gen;   /* update counter, >= 1 in a written slot */
	uint64_t seq;   /* oldest live record; the next seq when the log is empty */
	uint64_t off;   /* where that record (or a wrap marker before it) starts in the data area */
	uint32_t epoch; /* current epoch: records are written with it; recovery bumps it */
	uint32_t crc;   /* CRC32C of this struct with crc = 0 */
};

/* A record header, or a wrap marker (kind LOG_KIND_WRAP, nrefs 0, len 0, pcrc 0). */
struct log_rec {
	uint64_t seq;
	uint32_t len;   /* payload bytes: the sum of the refs' lengths */
	uint16_t nrefs; /* 1..PASTE_LOG_MAX_REFS */
	uint16_t kind;  /* LOG_KIND_REC or LOG_KIND_WRAP */
	uint32_t epoch; /* epoch of the head when it was written */
	uint32_t pcrc;  /* CRC32C of the payload bytes, refs in order */
	uint32_t crc;   /* CRC32C of this header (crc = 0) followed by the refs */
	uint32_t reserved;
	struct paste_ref refs[];
};

_Static_assert(sizeof(struct log_super) == 32, "log super is 32 bytes");
_Static_assert(sizeof(struct log_head) == 32, "log head slot is 32 bytes");
_Static_assert(LOG_SLOT_OFF + 2 * LOG_ALIGN <= LOG_HDR_SIZE, "head slots fit in the header");
_Static_assert(sizeof(struct log_rec) == 32, "log record header is 32 bytes");
_Static_assert(sizeof(struct paste_ref) == 16, "a reference is 16 bytes");
_Static_assert(PASTE_LOG_MAX_REFS <= UINT16_MAX, "nrefs fits in 16 bits");

/*
 * The volatile side. Live records occupy [head_off, tail_off) of the data area, circularly, for
 * used bytes (wrap waste included); used tells a full ring (head == tail, used == data_size) from
 * an empty one. ring[seq & (ring_cap - 1)] is the offset / LOG_ALIGN of record seq, for
 * first_seq <= seq < next_seq.
 */
struct paste_log {
	struct paste_pool *pool;
	uint8_t *region; /* the log_super */
	uint8_t *data;   /* the data area */
	uint64_t region_size, data_size;
	unsigned cur; /* current head slot */
	uint64_t gen; /* its gen */
	uint32_t epoch;
	uint64_t head_off, tail_off, used;
	uint64_t first_seq, next_seq, bytes;
	uint32_t *ring;
	uint64_t ring_cap; /* power of two */
	uint64_t recovered, dropped;
	char name[PASTE_POOL_REGION_NAME_MAX + 1];
};

/* ---- format helpers ------------------------------------------------------------------------ */

static uint64_t rec_size(unsigned nrefs)
{
	return PASTE_ALIGN_UP(sizeof(struct log_rec) + nrefs * sizeof(struct paste_ref),
	                      (uint64_t)LOG_ALIGN);
}

/* CRC of a header (crc field taken as 0) and its @nrefs refs. */
/* CRC of header @hd (its crc field taken as 0) followed by @nrefs refs at @refs. */
static uint32_t hdr_crc(const struct log_rec *hd, const struct paste_ref *refs, unsigned nrefs)
{
	struct log_rec h = *hd;

	h.crc = 0;
	return paste_crc32c(paste_crc32c(0, &h, sizeof(h)), refs, nrefs * sizeof(*refs));
}

static uint32_t rec_crc(const struct log_rec *r, unsigned nrefs)
{
	return hdr_crc(r, r->refs, nrefs);
}

static uint32_t payload_crc(const struct paste_pool *pool, const struct paste_ref *refs,
                            unsigned nrefs)
{
	uint32_t crc = 0;

	for (unsigned i = 0; i < nrefs; i++)
		crc = paste_crc32c(crc, paste_pool__ref_ptr(pool, &refs[i]), refs[i].len);
	return crc;
}

static uint32_t head_crc(const struct log_head *h)
{
	struct log_head t = *h;

	t.crc = 0;
	return paste_crc32c(0, &t, sizeof(t));
}

static uint32_t super_crc(const struct log_super *s)
{
	struct log_super t = *s;

	t.crc = 0;
	return paste_crc32c(0, &t, sizeof(t));
}

static struct log_head *log_slot(const struct paste_log *log, unsigned i)
{
	return (struct log_head *)(log->region + LOG_SLOT_OFF + i * LOG_ALIGN);
}

static struct log_rec *log_at(const struct paste_log *log, uint64_t off)
{
	return (struct log_rec *)(log->data + off);
}

static uint64_t log_count(const struct paste_log *log)
{
	return log->next_seq - log->first_seq;
}

static uint64_t ring_off(const struct paste_log *log, uint64_t seq)
{
	return (uint64_t)log->ring[seq & (log->ring_cap - 1)] * LOG_ALIGN;
}

/* Make room in the volatile index for one more record. @return 0 or -ENOMEM. */
static int ring_reserve(struct paste_log *log)
{
	uint64_t cap = log->ring_cap * 2;
	uint32_t *ring;

	if (log_count(log) < log->ring_cap)
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

/* Record that @seq (== next_seq) is at @off: the caller reserved room with ring_reserve(). */
static void ring_push(struct paste_log *log, uint64_t off)
{
	log->ring[log->next_seq & (log->ring_cap - 1)] = (uint32_t)(off / LOG_ALIGN);
	log->next_seq++;
}

/*
 * Make @seq/@off the persistent head: write the slot that is not current, persist it (flush +
 * fence). A crash tears at most that slot, and recovery then takes the other one.
 */
static void head_write(struct paste_log *log, uint64_t seq, uint64_t off, uint32_t epoch)
{
	unsigned next = log->cur ^ 1;
	struct log_head *h = log_slot(log, next);

	h->gen = log->gen + 1;
	h->seq = seq;
	h->off = off;
	h->epoch = epoch;
	h->crc = 0;
	h->crc = head_crc(h);
	paste_pool__persist(log->pool, h, sizeof(*h));
	log->cur = next;
	log->gen++;
	log->epoch = epoch;
	log->first_seq = seq;
	log->head_off = off;
}

/* Bytes from head to tail around the ring, for a log holding @count records. */
static uint64_t log_span(const struct paste_log *log, uint64_t count)
{
	uint64_t d = (log->tail_off + log->data_size - log->head_off) % log->data_size;

	return count == 0 ? 0 : d ? d : log->data_size;
}

static void log_free(void *p)
{
	struct paste_log *log = p;

	if (!log)
		return;
	free(log->ring);
	free(log);
}

static struct paste_log *log_new(struct paste_pool *pool, const char *name, void *region,
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
	struct log_head *h0 = log_slot(log, 0), *h1 = log_slot(log, 1);
	struct log_super t = {.magic = PASTE_LOG_MAGIC,
	                      .version = LOG_VERSION,
	                      .hdr_size = LOG_HDR_SIZE,
	                      .data_size = log->data_size,
	                      .align = LOG_ALIGN};

	memset(h1, 0, sizeof(*h1));
	*h0 = (struct log_head){.gen = 1, .seq = LOG_FIRST_SEQ, .off = 0, .epoch = 1};
	h0->crc = head_crc(h0);
	t.crc = super_crc(&t);
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
	log = log_new(pool, name, region, len, data_size);
	if (!log)
		return paste_fail(-ENOMEM, "log '%s': out of memory", name);
	log_format(log);
	err = paste_pool__set_index(pool, name, log, log_free);
	if (err)
		goto err_free;
	pr_info("log '%s': created, %llu-byte data area", name, (unsigned long long)data_size);
	*logp = log;
	return 0;

err_free:
	log_free(log);
	return err;
}

PASTE_EXPORT int paste_log__open(struct paste_pool *pool, const char *name, uint64_t region_size,
                                 struct paste_log **logp)
{
	struct paste_log *log;
	uint64_t len, magic;
	void *addr;
	int err;

	if (!pool || !name || !logp)
		return paste_fail(-EINVAL, "paste_log__open: pool, name and log must not be NULL");
	*logp = NULL;
	err = paste_pool__find_region(pool, name, &addr, &len);
	if (err == -ENOENT && !region_size)
		return paste_fail_quiet(-ENOENT,
		                        "pool has no log '%s': pass a region size to create it, or "
		                        "check the name",
		                        name);
	if (err == -ENOENT)
		err = paste_pool__region(pool, name, region_size, &addr, &len);
	if (err)
		return err;
	if (len < region_size)
		return paste_fail(-EINVAL,
		                  "log '%s' has a %llu-byte region, %llu were asked for: regions "
		                  "cannot grow; ask for at most %llu or use another name",
		                  name, (unsigned long long)len, (unsigned long long)region_size,
		                  (unsigned long long)len);
	memcpy(&magic, addr, sizeof(magic));
	if (magic == PASTE_LOG_MAGIC) {
		log = paste_pool__index(pool, name);
		if (!log || (void *)log->region != addr)
			return paste_fail(-EIO,
			                  "log '%s' was not recovered when the pool was opened "
			                  "(internal error): close and reopen the pool",
			                  name);
		*logp = log;
		return 0;
	}
	if (magic != 0)
		return paste_fail(-EINVAL,
		                  "region '%s' holds something other than a log (magic %#llx): "
		                  "use another name for the log",
		                  name, (unsigned long long)magic);
	if (!region_size)
		return paste_fail(-ENOENT,
		                  "region '%s' exists but holds no log yet: pass a region size "
		                  "to create it",
		                  name);
	return log_create(pool, name, addr, len, logp);
}

/* ---- append -------------------------------------------------------------------------------- */

/* Check @refs for an append; @return 0 with *len = payload bytes, or -EINVAL with a message. */
static int log_check_refs(const struct paste_log *log, const struct paste_ref *refs, unsigned nrefs,
                          uint64_t *len)
{
	const struct paste_frames *f = paste_pool__frame_alloc(log->pool);
	uint32_t frame;

	*len = 0;
	if (!refs || nrefs == 0 || nrefs > PASTE_LOG_MAX_REFS)
		return paste_fail(-EINVAL,
		                  "log '%s': cannot append a record of %u references: a record "
		                  "names 1 to %d",
		                  log->name, refs ? nrefs : 0, PASTE_LOG_MAX_REFS);
	for (unsigned i = 0; i < nrefs; i++) {
		const struct paste_ref *r = &refs[i];

		if (r->flags || !paste_pool__ref_in_frame(log->pool, r, &frame))
			return paste_fail(-EINVAL,
			                  "log '%s': reference %u ([%llu, +%u), flags %#x) is "
			                  "not a range inside one frame of the pool: append "
			                  "references made by paste_keep()",
			                  log->name, i, (unsigned long long)r->off, r->len,
			                  r->flags);
		if (f && f->state[frame] != PASTE_FRAME_KEPT)
			return paste_fail(-EINVAL,
			                  "log '%s': reference %u names frame %u, which is not "
			                  "kept: keep the bytes (paste_keep) before appending",
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
		return paste_fail(-ENOSPC,
		                  "log '%s': a record of %llu bytes can never fit in its "
		                  "%llu-byte data area: append fewer references per record or "
		                  "give the log a larger region",
		                  log->name, (unsigned long long)size,
		                  (unsigned long long)log->data_size);
	return paste_fail_quiet(
	    -ENOSPC,
	    "log '%s' is full (%llu of %llu bytes used, %llu records; %llu more "
	    "needed): truncate it or give it a larger region",
	    log->name, (unsigned long long)log->used, (unsigned long long)log->data_size,
	    (unsigned long long)log_count(log), (unsigned long long)size);
}

/* Write and flush a wrap marker at the tail: the record with @seq follows at offset 0. */
static void log_write_wrap(struct paste_log *log, uint64_t seq)
{
	struct log_rec *m = log_at(log, log->tail_off);

	*m = (struct log_rec){.seq = seq, .kind = LOG_KIND_WRAP, .epoch = log->epoch};
	m->crc = rec_crc(m, 0);
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
	size = rec_size(nrefs);
	if (size > log->data_size || log_place(log, size, &off, &wrap))
		return log_full(log, size);
	if (ring_reserve(log))
		return paste_fail(-ENOMEM, "log '%s': out of memory for the record index",
		                  log->name);
	if (wrap)
		log_write_wrap(log, log->next_seq);
	r = log_at(log, off);
	h = (struct log_rec){.seq = log->next_seq,
	                     .len = (uint32_t)len,
	                     .nrefs = (uint16_t)nrefs,
	                     .kind = LOG_KIND_REC,
	                     .epoch = log->epoch,
	                     .pcrc = payload_crc(log->pool, refs, nrefs)};
	/*
	 * A process that dies mid-append (kill -9) leaves its stores in the page cache: recovery
	 * would find a header with the expected seq and a bad checksum, a torn record. So the seq,
	 * which is what makes recovery look at the record, is stored last, in one 8-byte store,
	 * after everything else: a process crash leaves either no record or a whole one. (A power
	 * failure can still lose any unfenced line; the checksums catch that.)
	 */
	memcpy(r->refs, refs, nrefs * sizeof(*refs));
	h.crc = hdr_crc(&h, r->refs, nrefs);
	memcpy((uint8_t *)r + sizeof(r->seq), (const uint8_t *)&h + sizeof(h.seq),
	       sizeof(h) - sizeof(h.seq));
	__atomic_store_n(&r->seq, h.seq, __ATOMIC_RELEASE);
	paste_pool__flush(log->pool, r, sizeof(*r) + nrefs * sizeof(*refs));
	*seq = log->next_seq;
	ring_push(log, off);
	log->tail_off = (off + size) % log->data_size;
	log->used += size;
	log->bytes += len;
	return 0;
}

/* ---- read ---------------------------------------------------------------------------------- */

static void log_fill(const struct paste_log *log, uint64_t seq, struct paste_log_rec *rec)
{
	const struct log_rec *r = log_at(log, ring_off(log, seq));

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
		/* A miss is an answer, not a failure: say it at debug level only. */
		pr_debug("log '%s': no record %llu (%s; the log holds %llu..%llu)", log->name,
		         (unsigned long long)seq,
		         seq < log->first_seq ? "truncated" : "not written yet",
		         (unsigned long long)log->first_seq, (unsigned long long)log->next_seq - 1);
		return -ENOENT;
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

PASTE_EXPORT void paste_log__info(const struct paste_log *log, struct paste_log_info *info)
{
	memset(info, 0, sizeof(*info));
	info->first_seq = log->first_seq;
	info->next_seq = log->next_seq;
	info->records = log_count(log);
	info->bytes = log->bytes;
	info->region_size = log->region_size;
	info->region_used = LOG_HDR_SIZE + log->used;
	info->recovered = log->recovered;
	info->dropped = log->dropped;
}

/* ---- truncate ------------------------------------------------------------------------------ */

/*
 * Give back the references of record @seq after the next fence. The head that dropped it is
 * already durable, so if the deferred queue cannot grow, releasing at once is just as safe.
 */
static void log_release(struct paste_log *log, uint64_t seq)
{
	const struct log_rec *r = log_at(log, ring_off(log, seq));
	int err;

	for (unsigned i = 0; i < r->nrefs; i++) {
		err = paste_pool__ref_put_after_fence(log->pool, &r->refs[i]);
		if (err == -ENOMEM)
			err = paste_pool__ref_put(log->pool, &r->refs[i]);
		if (err)
			pr_warn("log '%s': record %llu: releasing reference %u failed (%d): frame "
			        "accounting is off",
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
	new_off = last + 1 < log->next_seq ? ring_off(log, last + 1) : log->tail_off;
	if (last + 1 == log->next_seq && log->used < log->data_size) { /* empties the log */
		memset(log_at(log, new_off), 0, LOG_ALIGN);
		paste_pool__flush(log->pool, log_at(log, new_off), LOG_ALIGN);
	}
	head_write(log, last + 1, new_off, log->epoch); /* durable: flushed and fenced */
	for (uint64_t s = first; s <= last; s++)
		log_release(log, s);
	log->used = log_span(log, log_count(log));
	return 0;
}

/* ---- recovery ------------------------------------------------------------------------------ */

static int log_check_super(const char *name, const void *addr, uint64_t len, uint64_t *data_size)
{
	const struct log_super *s = addr;

	if (len < LOG_HDR_SIZE + LOG_ALIGN || s->magic != PASTE_LOG_MAGIC)
		return paste_fail(-EBADMSG, "log '%s': region of %llu bytes holds no log header",
		                  name, (unsigned long long)len);
	if (s->version != LOG_VERSION)
		return paste_fail(-EBADMSG,
		                  "log '%s' has format version %u; this library reads version "
		                  "%u: use a matching libpaste-xdp or recreate the pool",
		                  name, s->version, LOG_VERSION);
	if (s->crc != super_crc(s))
		return paste_fail(-EBADMSG,
		                  "log '%s': header checksum mismatch: the log is corrupt; "
		                  "restore the pool file or recreate it",
		                  name);
	if (s->hdr_size != LOG_HDR_SIZE || s->align != LOG_ALIGN || s->data_size == 0 ||
	    s->data_size % LOG_ALIGN || s->data_size > len - LOG_HDR_SIZE ||
	    s->data_size > LOG_MAX_DATA)
		return paste_fail(-EBADMSG,
		                  "log '%s': header geometry does not fit its %llu-byte "
		                  "region: the log is corrupt; restore or recreate the pool",
		                  name, (unsigned long long)len);
	*data_size = s->data_size;
	return 0;
}

static bool head_valid(const struct log_head *h, uint64_t data_size)
{
	return h->gen != 0 && h->crc == head_crc(h) && h->off < data_size &&
	       h->off % LOG_ALIGN == 0 && h->epoch != 0 && h->seq != 0;
}

/* Load the current head slot: the valid one with the higher gen. @return 0 or -EBADMSG. */
static int log_load_head(struct paste_log *log)
{
	const struct log_head *h0 = log_slot(log, 0), *h1 = log_slot(log, 1);
	bool ok0 = head_valid(h0, log->data_size), ok1 = head_valid(h1, log->data_size);
	const struct log_head *h;

	if (!ok0 && !ok1)
		return paste_fail(-EBADMSG,
		                  "log '%s': both head slots are corrupt: the log cannot be "
		                  "read; restore the pool file or recreate it",
		                  log->name);
	log->cur = ok1 && (!ok0 || h1->gen > h0->gen);
	h = log_slot(log, log->cur);
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
	const struct log_rec *r = log_at(log, off);
	uint64_t size = rec_size(r->nrefs);

	if (r->kind != LOG_KIND_REC || r->seq != seq || r->nrefs == 0 ||
	    r->nrefs > PASTE_LOG_MAX_REFS || r->reserved || off + size > log->data_size ||
	    size > room || r->epoch < floor || r->epoch > log->epoch)
		return false;
	if (r->crc != rec_crc(r, r->nrefs) || !rec_refs_ok(log, r))
		return false;
	return !check_payload || r->pcrc == payload_crc(log->pool, r->refs, r->nrefs);
}

/* Is the entry at @off a wrap marker the chain may follow (same rules as a record; never at 0). */
static bool wrap_valid(const struct paste_log *log, uint64_t off, uint64_t seq, uint32_t floor)
{
	const struct log_rec *m = log_at(log, off);

	return off != 0 && m->kind == LOG_KIND_WRAP && m->seq == seq && m->nrefs == 0 &&
	       m->len == 0 && m->pcrc == 0 && !m->reserved && m->epoch >= floor &&
	       m->epoch <= log->epoch && m->crc == rec_crc(m, 0);
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
		const struct log_rec *r = log_at(log, off);
		bool is_rec = r->kind == LOG_KIND_REC;

		if ((!is_rec && r->kind != LOG_KIND_WRAP) || r->seq != seq || r->epoch < floor ||
		    r->epoch > log->epoch)
			break;
		n += is_rec;
		if (is_rec ? !rec_valid(log, off, seq, floor, log->data_size - walked, false)
		           : off == 0)
			break;
		walked += is_rec ? rec_size(r->nrefs) : log->data_size - off;
		off = is_rec ? (off + rec_size(r->nrefs)) % log->data_size : 0;
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
			mfloor = log_at(log, off)->epoch; /* the record behind a marker is as new */
			off = 0;
		}
		if (!rec_valid(log, off, log->next_seq, mfloor, log->data_size - log->used - waste,
		               check_payload))
			break;
		if (ring_reserve(log))
			return paste_fail(-ENOMEM, "log '%s': out of memory for the record index",
			                  log->name);
		r = log_at(log, off);
		ring_push(log, off);
		log->used += waste + rec_size(r->nrefs);
		log->bytes += r->len;
		floor = r->epoch;
		off = (off + rec_size(r->nrefs)) % log->data_size;
		log->tail_off = off;
	}
	log->recovered = log_count(log);
	log->dropped = log_count_cut(log, log->tail_off, log->next_seq, floor);
	return 0;
}

/* Put back the references taken for records [first_seq, @seq) and the first @nref refs of @seq. */
static void log_put_refs(struct paste_log *log, uint64_t seq, unsigned nref)
{
	for (uint64_t s = log->first_seq; s <= seq && s < log->next_seq; s++) {
		const struct log_rec *r = log_at(log, ring_off(log, s));
		unsigned n = s == seq ? nref : r->nrefs;

		for (unsigned i = 0; i < n; i++)
			paste_pool__ref_put(log->pool, &r->refs[i]);
	}
}

/* Take one frame reference per ref of every recovered record; on failure put them back. */
static int log_take_refs(struct paste_log *log)
{
	for (uint64_t s = log->first_seq; s < log->next_seq; s++) {
		const struct log_rec *r = log_at(log, ring_off(log, s));

		for (unsigned i = 0; i < r->nrefs; i++) {
			int err = paste_pool__ref_get(log->pool, &r->refs[i]);

			if (!err)
				continue;
			log_put_refs(log, s, i);
			return paste_fail(err,
			                  "log '%s': record %llu names a frame the pool cannot "
			                  "reference (%d): the pool's frame accounting is "
			                  "inconsistent; the pool was not opened",
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
		memset(log_at(log, log->tail_off), 0, LOG_ALIGN);
		paste_pool__flush(log->pool, log_at(log, log->tail_off), LOG_ALIGN);
	}
	head_write(log, log->first_seq, log->head_off, log->epoch + 1);
}

int paste_log__recover(struct paste_pool *pool, const char *name, void *addr, uint64_t len)
{
	struct paste_log *log;
	uint64_t data_size = 0;
	int err;

	err = log_check_super(name, addr, len, &data_size);
	if (err)
		return err;
	log = log_new(pool, name, addr, len, data_size);
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
	err = paste_pool__set_index(pool, name, log, log_free);
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
	log_free(log);
	return err;
}
