/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_log.c - the log component: appends whose payload sits in received frames, truncates.
 *
 * An append is what the event loop does with received bytes: segments land in an RX frame, are
 * flushed and kept (paste_pool__ref_get), the log takes the references, and the frame's pbuf hold
 * goes away (rx_done) later. A record is acknowledged by the next fence. A truncate is preceded by
 * a fence (the application truncates what it has seen acknowledged) and is durable when it
 * returns.
 *
 * Model at a crash (acked A, issued I; T_ack / T_all = highest truncate point among operations
 * < A / < I): the recovered records are dense and in order; each is a record that was issued, with
 * its exact bytes; none has seq <= T_ack; every acknowledged record with seq > T_all is there; the
 * next sequence number is above every acknowledged record (no seq is ever reused).
 *
 * Half of the runs add paste-wal's capacity tier (src/apps/wal_tier.c) on top: a "destage" moves
 * the oldest records to a file (modelled: the copy is synced, so it survives any crash) and then
 * switches them as paste-wal does - if the tier was empty, the tier word in region "sim.log.tier"
 * gets the first destaged seq (one 8-byte store, persisted), then the pool log's head moves past
 * them (paste_log__truncate). A truncate stores the tier word (the new first, or 0 when the tier
 * empties) before it truncates the pool log. The log is then the tier range [word, pool first)
 * followed by the pool log, and every check above applies to that union; in addition, a record of
 * the recovered tier range must have had its file copy made before the crash (never switched
 * without one), and the word must not point past the pool log's first record.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_LOG_NAME    "sim.log"
#define SIM_LOG_MAXREFS 12
#define SIM_LOG_MAXSEG  1500u
#define SIM_LOG_BUF     (SIM_LOG_MAXREFS * SIM_LOG_MAXSEG)
#define SIM_TIER_NAME   "sim.log.tier"
#define SIM_TIER_MAGIC  0x3152454954574150ull /* as paste-wal's tier region (wal_seg.h) */

struct sim_lrec {
	uint64_t op, seq;
	uint32_t len;
	uint8_t *bytes;
	uint64_t file_op; /* tier: the destage that copied it to the file (0: none) */
};

struct sim_trunc {
	uint64_t op, upto;
};

struct sim_log {
	struct paste_log *log;
	uint64_t region;     /* region size: small ones make the ring wrap and fill up */
	unsigned fresh_ops;  /* operations left in which a new session truncates more often: the
	                        head then moves over what the last recovery cut and sealed */
	uint64_t base_seq;   /* next_seq of the new log */
	uint64_t first;      /* working: oldest seq not truncated (tier included) */
	bool tier;           /* this run destages to a modelled tier (see the top) */
	uint64_t *tier_word; /* {magic, first} in region SIM_TIER_NAME: [1] is the tier's first */
	uint64_t pool_first; /* working: the pool log's first seq (the tier's end) */
	size_t obs_tier;     /* the last check saw this many tier records first in obs[] */
	struct sim_lrec *rec;
	size_t nrec, caprec;
	struct sim_trunc *tr;
	size_t ntr, captr;
	uint8_t buf[SIM_LOG_BUF];
	/* what the last check saw (liveness): indices into rec[], then one appended record */
	size_t *obs;
	size_t nobs, capobs;
	bool live;
	uint64_t live_seq;
	uint32_t live_len;
	uint8_t live_bytes[256];
};

static int grow(void **p, size_t *cap, size_t n, size_t elem)
{
	void *q;

	if (n < *cap)
		return 0;
	q = realloc(*p, (*cap ? *cap * 2 : 256) * elem);
	if (!q)
		return -1;
	*p = q;
	*cap = *cap ? *cap * 2 : 256;
	return 0;
}

static int log_setup(struct sim_run *r)
{
	struct sim_log *l = calloc(1, sizeof(*l));
	struct paste_log_info in;
	int err;

	if (!l)
		return -1;
	static const uint64_t sizes[] = {4096, 8192, 16384, 65536};

	r->log = l;
	l->region = sizes[sim_below(&r->rng, 4)];
	sim_region_name(r, SIM_LOG_NAME);
	sim_issue(r); /* creating the log is an operation; nothing depends on its id */
	err = paste_log__open(&l->log, r->pool, SIM_LOG_NAME,
	                      &PASTE_OPTS_LIT(paste_log_opts, .region_size = l->region));
	if (err) {
		sim_violation(r, "paste_log__open (create) fails: %d", err);
		return err;
	}
	paste_log__info(l->log, &in, sizeof(in));
	l->base_seq = in.next_seq;
	l->first = l->pool_first = in.first_seq;
	l->tier = sim_chance(&r->rng, 50);
	if (l->tier) {
		uint64_t len;
		void *addr;

		sim_region_name(r, SIM_TIER_NAME);
		sim_issue(r);
		err = paste_pool__region(r->pool, SIM_TIER_NAME, 4096, &addr, &len);
		if (err) {
			sim_violation(r, "creating the tier region fails: %d", err);
			return err;
		}
		l->tier_word = addr;
		l->tier_word[1] = 0;
		paste_pool__persist(r->pool, &l->tier_word[1], 8);
		l->tier_word[0] = SIM_TIER_MAGIC;
		paste_pool__persist(r->pool, &l->tier_word[0], 8);
	}
	if (in.records || in.first_seq != in.next_seq)
		sim_violation(r, "a new log is not empty: %llu records, seq %llu..%llu",
		              (unsigned long long)in.records, (unsigned long long)in.first_seq,
		              (unsigned long long)in.next_seq);
	return 0;
}

static void log_fini(struct sim_run *r)
{
	struct sim_log *l = r->log;

	for (size_t i = 0; l && i < l->nrec; i++)
		free(l->rec[i].bytes);
	if (l) {
		free(l->rec);
		free(l->tr);
		free(l->obs);
	}
	free(l);
	r->log = NULL;
}

static uint64_t last_seq(const struct sim_log *l)
{
	return l->nrec ? l->rec[l->nrec - 1].seq : l->base_seq - 1;
}

static int log_truncate(struct sim_run *r, uint64_t upto)
{
	struct sim_log *l = r->log;
	int err;

	if (grow((void **)&l->tr, &l->captr, l->ntr, sizeof(*l->tr)))
		return -1;
	sim_fence(r);
	l->tr[l->ntr].op = sim_issue(r);
	l->tr[l->ntr].upto = upto;
	if (l->tier && l->tier_word[1] && upto >= l->tier_word[1]) { /* as tier_truncate() */
		__atomic_store_n(&l->tier_word[1], upto + 1 < l->pool_first ? upto + 1 : 0,
		                 __ATOMIC_RELEASE);
		paste_pool__persist(r->pool, &l->tier_word[1], 8);
	}
	err = paste_log__truncate(l->log, upto);
	if (err) {
		sim_violation(r, "paste_log__truncate(%llu) fails: %d", (unsigned long long)upto,
		              err);
		return err;
	}
	r->acked = r->issued; /* durable when it returns */
	l->ntr++;
	if (upto >= l->first)
		l->first = upto + 1;
	if (upto >= l->pool_first)
		l->pool_first = upto + 1;
	return 0;
}

static const struct sim_lrec *find_seq(const struct sim_log *l, uint64_t seq);

/* Tier: copy the @k oldest pool records to the (modelled, synced) file, then switch them. */
static int log_destage(struct sim_run *r, uint64_t k)
{
	struct sim_log *l = r->log;
	uint64_t first = l->pool_first, end = first + k, op;
	int err;

	if (end > last_seq(l) + 1)
		end = last_seq(l) + 1;
	if (end <= first)
		return 0;
	sim_fence(r); /* paste-wal destages only records whose round has fenced */
	op = sim_issue(r);
	for (uint64_t s = first; s < end; s++) {
		struct sim_lrec *m = (struct sim_lrec *)find_seq(l, s);

		if (m)
			m->file_op = op; /* written and fdatasync()ed by the destage thread */
	}
	if (!l->tier_word[1]) { /* the tier was empty: it starts here (one 8-byte store) */
		__atomic_store_n(&l->tier_word[1], first, __ATOMIC_RELEASE);
		paste_pool__persist(r->pool, &l->tier_word[1], 8);
	}
	err = paste_log__truncate(l->log, end - 1); /* the switch */
	if (err) {
		sim_violation(r, "paste_log__truncate(%llu) for a destage fails: %d",
		              (unsigned long long)(end - 1), err);
		return err;
	}
	r->acked = r->issued;
	l->pool_first = end;
	return 0;
}

/* Make room (log region or frames full): drop everything appended so far. */
static int log_reclaim(struct sim_run *r)
{
	return log_truncate(r, last_seq(r->log));
}

static void put_refs(struct sim_run *r, const struct paste_ref *refs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		paste_pool__ref_put(r->pool, &refs[i]);
}

static int log_append(struct sim_run *r)
{
	struct sim_log *l = r->log;
	struct paste_ref refs[SIM_LOG_MAXREFS];
	unsigned n = sim_chance(&r->rng, 10) ? 1 + sim_below(&r->rng, SIM_LOG_MAXREFS)
	                                     : 1 + sim_below(&r->rng, 3);
	uint32_t len = 0;
	struct sim_lrec *m;
	uint64_t seq;
	int err;

	if (grow((void **)&l->rec, &l->caprec, l->nrec, sizeof(*l->rec)))
		return -1;
	for (unsigned i = 0; i < n; i++) {
		uint32_t sl =
		    1 + sim_below(&r->rng, sim_chance(&r->rng, 10) ? SIM_LOG_MAXSEG : 300);

		sim_fill(&r->rng, l->buf + len, sl);
		err = sim_payload(r, l->buf + len, sl, &refs[i]);
		if (err) {
			put_refs(r, refs, i);
			sim_op_failed(r, err);
			return err == -ENOSPC ? log_reclaim(r) : err;
		}
		len += sl;
	}
	m = &l->rec[l->nrec];
	m->op = sim_issue(r);
	err = paste_log__append(l->log, refs, n, &seq);
	if (err) {
		put_refs(r, refs, n);
		sim_op_failed(r, err);
		if (err == -ENOSPC)
			return log_reclaim(r);
		sim_violation(r, "paste_log__append fails: %d", err);
		return err;
	}
	if (seq != last_seq(l) + 1)
		sim_violation(r, "append got seq %llu, expected %llu", (unsigned long long)seq,
		              (unsigned long long)(last_seq(l) + 1));
	m->seq = seq;
	m->len = len;
	m->bytes = malloc(len);
	if (!m->bytes)
		return -1;
	memcpy(m->bytes, l->buf, len);
	l->nrec++;
	return 0;
}

static const struct sim_lrec *find_seq(const struct sim_log *l, uint64_t seq)
{
	size_t lo = 0, hi = l->nrec;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->rec[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->nrec && l->rec[lo].seq == seq ? &l->rec[lo] : NULL;
}

/* Do the bytes @rec's refs name in @pool equal @len bytes at @want? */
static bool same_bytes(struct sim_run *r, struct paste_pool *pool, const struct paste_log_rec *rec,
                       const uint8_t *want, uint64_t len)
{
	uint64_t pos = 0;

	if (rec->len != len)
		return false;
	for (uint32_t i = 0; i < rec->nrefs; i++) {
		const uint8_t *p = sim_ref_bytes(r, pool, &rec->refs[i], "a log record");

		if (!p || pos + rec->refs[i].len > len || memcmp(p, want + pos, rec->refs[i].len))
			return false;
		pos += rec->refs[i].len;
	}
	return pos == len;
}

/* Working pool: read back a random live record (a functional check, no crash involved). */
static void log_read_back(struct sim_run *r)
{
	struct sim_log *l = r->log;
	struct paste_log_rec rec;
	const struct sim_lrec *m;
	uint64_t seq;

	if (last_seq(l) < l->pool_first)
		return;
	seq = l->pool_first + sim_below(&r->rng, (uint32_t)(last_seq(l) - l->pool_first + 1));
	m = find_seq(l, seq);
	if (!m)
		return;
	if (paste_log__get(l->log, seq, &rec) || rec.seq != seq ||
	    !same_bytes(r, r->pool, &rec, m->bytes, m->len))
		sim_violation(r, "working log: record %llu does not read back as appended",
		              (unsigned long long)seq);
}

static int log_step(struct sim_run *r)
{
	struct sim_log *l = r->log;
	bool fresh = l->fresh_ops && l->fresh_ops--; /* just after a recovery: truncate more */

	if (sim_chance(&r->rng, 5))
		log_read_back(r);
	if (l->tier && sim_chance(&r->rng, 12))
		return log_destage(r, 1 + sim_below(&r->rng, 8));
	if (sim_chance(&r->rng, fresh ? 30 : 7) && last_seq(l) >= l->first) {
		uint64_t span = last_seq(l) - l->first + 2;
		uint64_t upto = sim_chance(&r->rng, fresh ? 70 : 20)
		                    ? last_seq(l)
		                    : l->first - 1 + sim_below(&r->rng, (uint32_t)span);

		return log_truncate(r, upto);
	}
	return log_append(r);
}

/* ---- checks --------------------------------------------------------------------------------- */

struct log_walk {
	struct sim_run *r;
	struct paste_pool *pool;
	struct sim_log *l;
	uint64_t t_ack, prev, n, bytes;
	bool exact; /* recheck: compare with what the last check saw (+ the liveness record) */
};

static void obs_push(struct sim_log *l, size_t idx)
{
	if (grow((void **)&l->obs, &l->capobs, l->nobs, sizeof(*l->obs)))
		return;
	l->obs[l->nobs++] = idx;
}

static void count_refs(struct sim_run *r, struct paste_pool *pool, const struct paste_log_rec *rec)
{
	for (uint32_t i = 0; i < rec->nrefs; i++)
		sim_count_ref(r, pool, &rec->refs[i], "a log record");
}

static int walk_exact(struct log_walk *w, const struct paste_log_rec *rec)
{
	struct sim_log *l = w->l;
	bool ok;

	if (w->n < l->nobs) {
		const struct sim_lrec *m = &l->rec[l->obs[w->n]];

		ok = rec->seq == m->seq && same_bytes(w->r, w->pool, rec, m->bytes, m->len);
	} else {
		ok = w->n == l->nobs && l->live && rec->seq == l->live_seq &&
		     same_bytes(w->r, w->pool, rec, l->live_bytes, l->live_len);
	}
	if (!ok)
		sim_violation(w->r,
		              "after reopen, log record #%llu (seq %llu) is not the one seen "
		              "before or appended after recovery",
		              (unsigned long long)w->n, (unsigned long long)rec->seq);
	count_refs(w->r, w->pool, rec);
	w->n++;
	return 0;
}

static int walk_cb(const struct paste_log_rec *rec, void *arg)
{
	struct log_walk *w = arg;
	struct sim_run *r = w->r;
	const struct sim_lrec *m;

	if (w->exact)
		return walk_exact(w, rec);
	if (w->n && rec->seq != w->prev + 1)
		sim_violation(r, "recovered records are not dense: seq %llu follows %llu",
		              (unsigned long long)rec->seq, (unsigned long long)w->prev);
	w->prev = rec->seq;
	w->n++;
	w->bytes += rec->len;
	count_refs(r, w->pool, rec);
	m = find_seq(w->l, rec->seq);
	if (!m || m->op >= r->crash.issued) {
		sim_violation(r, "recovered record seq %llu (%llu bytes) was never appended",
		              (unsigned long long)rec->seq, (unsigned long long)rec->len);
		return 0;
	}
	if (rec->seq <= w->t_ack)
		sim_violation(r, "record %llu is back although a truncate to %llu was acknowledged",
		              (unsigned long long)rec->seq, (unsigned long long)w->t_ack);
	if (!same_bytes(r, w->pool, rec, m->bytes, m->len))
		sim_violation(r,
		              "recovered record %llu has other bytes than appended (%llu vs "
		              "%u bytes, %u refs)%s",
		              (unsigned long long)rec->seq, (unsigned long long)rec->len, m->len,
		              rec->nrefs, m->op < r->crash.acked ? " (acknowledged)" : "");
	obs_push(w->l, (size_t)(m - w->l->rec));
	return 0;
}

static struct paste_log *open_log(struct sim_run *r, struct paste_pool *pool)
{
	struct paste_log *log;
	int err = paste_log__open(&log, pool, SIM_LOG_NAME,
	                          &PASTE_OPTS_LIT(paste_log_opts, .region_size = r->log->region));

	if (err) {
		sim_violation(r, "paste_log__open fails after recovery: %d: %s", err,
		              paste_last_error());
		return NULL;
	}
	return log;
}

/* Truncate points: highest upto among truncates with op < @lim. */
static uint64_t trunc_upto(const struct sim_log *l, uint64_t lim)
{
	uint64_t t = l->base_seq - 1;

	for (size_t i = 0; i < l->ntr && l->tr[i].op < lim; i++)
		if (l->tr[i].upto > t)
			t = l->tr[i].upto;
	return t;
}

/* Every acknowledged record above the highest issued truncate is in [lo, lo + n). */
static void check_present(struct sim_run *r, const struct sim_log *l, uint64_t t_all, uint64_t lo,
                          uint64_t n)
{
	uint64_t need_lo = 0, need_hi = 0;
	bool need = false;

	for (size_t i = 0; i < l->nrec && l->rec[i].op < r->crash.acked; i++) {
		if (l->rec[i].seq <= t_all)
			continue;
		if (!need)
			need_lo = l->rec[i].seq;
		need_hi = l->rec[i].seq;
		need = true;
	}
	if (need && (!n || lo > need_lo || lo + n - 1 < need_hi))
		sim_violation(r,
		              "acknowledged records %llu..%llu must survive; recovered %llu "
		              "records from %llu",
		              (unsigned long long)need_lo, (unsigned long long)need_hi,
		              (unsigned long long)n, (unsigned long long)lo);
}

/* The recovered tier word (0: no tier, or empty; also before the region got its magic). */
static uint64_t *tier_word_of(struct paste_pool *pool)
{
	uint64_t len;
	void *addr;

	if (paste_pool__find_region(pool, SIM_TIER_NAME, &addr, &len) || len < 16 ||
	    ((uint64_t *)addr)[0] != SIM_TIER_MAGIC)
		return NULL;
	return addr;
}

/* Tier: the recovered range [word, pool first) must be records whose file copy was made before
 * the crash. Walks them as the first records of @w. @return how many. */
static uint64_t check_tier(struct sim_run *r, struct paste_pool *rec,
                           const struct paste_log_info *in, struct log_walk *w)
{
	struct sim_log *l = r->log;
	uint64_t *word = tier_word_of(rec), t = word ? word[1] : 0;

	if (!t)
		return 0;
	if (t > in->first_seq) {
		sim_violation(r, "the tier word says %llu, past the pool log's first record %llu",
		              (unsigned long long)t, (unsigned long long)in->first_seq);
		return 0;
	}
	for (uint64_t s = t; s < in->first_seq; s++) {
		const struct sim_lrec *m = find_seq(l, s);

		if (!m || m->op >= r->crash.issued) {
			sim_violation(r, "tier record %llu was never appended",
			              (unsigned long long)s);
			continue;
		}
		if (!m->file_op || m->file_op >= r->crash.issued)
			sim_violation(r,
			              "record %llu is in the recovered tier range, but its file "
			              "copy was not made before the crash (switched without one)",
			              (unsigned long long)s);
		if (s <= w->t_ack)
			sim_violation(r,
			              "tier record %llu is back although a truncate to %llu was "
			              "acknowledged",
			              (unsigned long long)s, (unsigned long long)w->t_ack);
		obs_push(l, (size_t)(m - l->rec));
		w->prev = s;
		w->n++;
	}
	return w->n;
}

static void log_check(struct sim_run *r, struct paste_pool *rec)
{
	struct sim_log *l = r->log;
	struct paste_log *log = open_log(r, rec);
	struct log_walk w = {.r = r, .pool = rec, .l = l};
	struct paste_log_info in;
	uint64_t lo, first, ntier = 0, max_acked = l->base_seq - 1;

	l->nobs = 0;
	l->live = false;
	if (!log)
		return;
	w.t_ack = trunc_upto(l, r->crash.acked);
	paste_log__info(log, &in, sizeof(in));
	if (l->tier)
		ntier = check_tier(r, rec, &in, &w);
	l->obs_tier = (size_t)ntier;
	paste_log__iterate(log, 0, walk_cb, &w);
	lo = w.n ? w.prev + 1 - w.n : 0;
	first = ntier ? lo : in.first_seq; /* of the whole log: the tier's first, if it has one */
	check_present(r, l, trunc_upto(l, r->crash.issued), lo, w.n);
	for (size_t i = 0; i < l->nrec && l->rec[i].op < r->crash.acked; i++)
		max_acked = l->rec[i].seq;
	if (in.records != w.n - ntier ||
	    (w.n > ntier && (in.first_seq != lo + ntier || in.next_seq != w.prev + 1)) ||
	    (w.n == ntier && in.first_seq != in.next_seq))
		sim_violation(r,
		              "log info says %llu records, seq %llu..%llu; iterate found %llu "
		              "from %llu",
		              (unsigned long long)in.records, (unsigned long long)in.first_seq,
		              (unsigned long long)in.next_seq, (unsigned long long)w.n,
		              (unsigned long long)lo);
	if (first <= w.t_ack || first > trunc_upto(l, r->crash.issued) + 1)
		sim_violation(
		    r,
		    "the log starts at %llu: a truncate to %llu was acknowledged and none "
		    "went past %llu (records lost at the head)",
		    (unsigned long long)first, (unsigned long long)w.t_ack,
		    (unsigned long long)trunc_upto(l, r->crash.issued));
	if (in.bytes != w.bytes)
		sim_violation(r, "log info says %llu payload bytes, the records name %llu",
		              (unsigned long long)in.bytes, (unsigned long long)w.bytes);
	if (in.next_seq <= max_acked || in.next_seq <= w.t_ack)
		sim_violation(r,
		              "next seq %llu would reuse an acknowledged seq (last acked %llu, "
		              "truncated to %llu)",
		              (unsigned long long)in.next_seq, (unsigned long long)max_acked,
		              (unsigned long long)w.t_ack);
	r->st[r->crash.img.model].records += w.n;
}

/* Liveness: append one record to the recovered log. */
static void log_extend(struct sim_run *r, struct paste_pool *rec)
{
	struct sim_log *l = r->log;
	struct paste_log *log = open_log(r, rec);
	struct paste_log_info in;
	struct paste_ref ref;
	uint64_t seq;
	int err;

	if (!log)
		return;
	paste_log__info(log, &in, sizeof(in));
	l->live_len = 1 + sim_below(&r->crash_rng, sizeof(l->live_bytes));
	sim_fill(&r->crash_rng, l->live_bytes, l->live_len);
	if (sim_payload_on(rec, l->live_bytes, l->live_len, &ref))
		return;
	err = paste_log__append(log, &ref, 1, &seq);
	if (err == -ENOSPC) {
		paste_pool__ref_put(rec, &ref);
		return;
	}
	if (err || seq != in.next_seq) {
		sim_violation(r, "append after recovery: %d, seq %llu (next_seq was %llu)", err,
		              (unsigned long long)seq, (unsigned long long)in.next_seq);
		return;
	}
	l->live = true;
	l->live_seq = seq;
}

static void log_recheck(struct sim_run *r, struct paste_pool *rec)
{
	struct sim_log *l = r->log;
	struct paste_log *log = open_log(r, rec);
	struct log_walk w = {.r = r, .pool = rec, .l = l, .exact = true, .n = l->obs_tier};

	if (!log)
		return;
	paste_log__iterate(log, 0, walk_cb, &w);
	if (w.n != l->nobs + l->live)
		sim_violation(r, "after reopen the log has %llu records, expected %llu",
		              (unsigned long long)w.n, (unsigned long long)(l->nobs + l->live));
}

/* Keep the records the last check saw (in order, as operation @op); the log starts over there. */
static void log_rebase(struct sim_run *r, struct paste_pool *pool, uint64_t op)
{
	struct sim_log *l = r->log;
	struct paste_log_info in;
	size_t n = 0, j = 0;

	l->log = open_log(r, pool);
	if (!l->log) {
		r->fatal = true;
		return;
	}
	paste_log__info(l->log, &in, sizeof(in));
	for (size_t i = 0; i < l->nrec; i++) {
		if (j < l->nobs && l->obs[j] == i) {
			l->rec[n] = l->rec[i];
			l->rec[n].op = op;
			/* the tier's records keep their file copy; the pool's need none */
			l->rec[n++].file_op = j < l->obs_tier ? op : 0;
			j++;
		} else {
			free(l->rec[i].bytes);
		}
	}
	l->nrec = n;
	l->ntr = 0;
	l->pool_first = in.first_seq;
	l->first = l->obs_tier ? l->rec[0].seq : in.first_seq;
	l->base_seq = l->first; /* what lies below counts as truncated */
	l->nobs = 0;
	l->obs_tier = 0;
	if (l->tier) {
		l->tier_word = tier_word_of(pool);
		l->tier = l->tier_word != NULL; /* the crash came before the region was made */
	}
	l->fresh_ops = 16;
}

const struct sim_component sim_log_component = {
    .name = "log",
    .setup = log_setup,
    .step = log_step,
    .check = log_check,
    .extend = log_extend,
    .recheck = log_recheck,
    .rebase = log_rebase,
    .fini = log_fini,
};
