/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * logcheck.c - paste-logcheck: offline checker of the durable-path crash test.
 *
 * Run with no server on the pool: it opens the pool (which runs recovery, as a restarted server
 * would), looks up the log paste-keepserver writes, and checks it against the ack file that
 * paste-keepclient wrote ("seq conn idx len" per acknowledged request):
 *
 *  - the log is dense: records first..next-1, each seq once, in order, record count agrees;
 *  - every record is well formed (1..PASTE_LOG_MAX_REFS refs, each inside one frame, lengths add
 *    up) and no two records name overlapping bytes;
 *  - every record's payload is a payload the client sent (the generator below is keepclient.c's),
 *    and no request appears twice;
 *  - every acknowledged seq is in the log, and its record holds exactly that request's bytes;
 *  - frame accounting after recovery: the KEPT frames are exactly the frames the records name, each
 *    with as many references as record refs name it, every other frame FREE, and
 *    paste_frames__audit() holds.
 *
 * The pool is left as found: unless --close is given, a pool that was not shut down cleanly is not
 * marked clean, so the next server open still does crash recovery. Exit status 0 iff every check
 * holds; 1 on a failed check or when the pool/log cannot be opened; 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <paste/paste.h> /* paste/index.h, paste/pool.h, messages */

#include "../../src/pool_internal.h" /* the pool's frame allocator (frames.h) */

#define MAX_REQ    (1u << 20)
#define MAX_DEPTH  64 /* keepclient.c: requests in flight per connection, at most */
#define MAX_ERRORS 20 /* messages printed before going quiet */

/* ---- payload (keep in sync with keepclient.c) -------------------------------------------- */

#define PAYLOAD_MAGIC 0x504b5031u /* "PKP1" */
#define PAYLOAD_HDR   16u

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t payload_key(uint64_t seed, uint32_t conn, uint32_t idx)
{
	return mix64(seed ^ mix64((uint64_t)conn << 32 | idx));
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* True if @buf (@len bytes) is exactly request (conn, idx) of length @len. */
static bool payload_matches(uint64_t seed, uint32_t conn, uint32_t idx, const uint8_t *buf,
                            uint32_t len)
{
	uint64_t key = payload_key(seed, conn, idx);
	uint32_t i = 0;

	if (len >= PAYLOAD_HDR) {
		if (get_be32(buf) != PAYLOAD_MAGIC || get_be32(buf + 4) != conn ||
		    get_be32(buf + 8) != idx || get_be32(buf + 12) != len)
			return false;
		i = PAYLOAD_HDR;
	}
	while (i < len) {
		uint64_t w = mix64(key + i / 8);

		for (unsigned b = i % 8; b < 8 && i < len; b++, i++)
			if (buf[i] != (uint8_t)(w >> (8 * b)))
				return false;
	}
	return true;
}

/* ---- state -------------------------------------------------------------------------------- */

enum rec_kind { R_MISSING = 0, R_KNOWN, R_SMALL, R_BAD };

struct rec_id {
	uint32_t conn, idx, len;
	uint8_t kind;
	bool acked;
	uint8_t small[PAYLOAD_HDR]; /* R_SMALL: the bytes, identified later */
};

struct span {
	uint64_t off;
	uint32_t len;
	uint64_t seq;
};

static struct {
	const char *pool_path, *acks_path, *log_name;
	uint64_t seed;
	bool close_pool, quiet;
} opt = {.log_name = "keep.log", .seed = 1};

static struct paste_pool *pool;
static struct paste_pool_info pinfo;
static struct paste_log_info linfo;
static struct rec_id *recs; /* by seq - first */
static uint64_t nrecs;
static uint32_t *frame_refs; /* references the records name, per frame */
static struct span *spans;
static size_t nspans, spans_cap;
static uint8_t *payload;
static unsigned errors;
static uint64_t expect_seq, total_refs, total_bytes, hdr_records, small_records;

/* Request ids seen: open addressing over (conn << 32 | idx) + 1, value seq. */
static uint64_t *ids_key, *ids_seq;
static size_t ids_cap;

static void error(const char *fmt, ...)
{
	va_list ap;

	if (errors++ >= MAX_ERRORS)
		return;
	va_start(ap, fmt);
	fputs("logcheck: FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Remember request (conn, idx) at @seq. @return the seq it was already at, or UINT64_MAX. */
static uint64_t ids_put(uint32_t conn, uint32_t idx, uint64_t seq)
{
	uint64_t key = ((uint64_t)conn << 32 | idx) + 1;
	size_t i = (size_t)mix64(key) & (ids_cap - 1);

	while (ids_key[i]) {
		if (ids_key[i] == key)
			return ids_seq[i];
		i = (i + 1) & (ids_cap - 1);
	}
	ids_key[i] = key;
	ids_seq[i] = seq;
	return UINT64_MAX;
}

/* ---- the log ------------------------------------------------------------------------------ */

static int check_record(const struct paste_log_rec *rec, void *arg)
{
	struct rec_id *id;
	uint64_t sum = 0, at = 0;
	bool ok = true;

	if (rec->seq != expect_seq) {
		error("record %" PRIu64 " where %" PRIu64 " was expected: the log is not dense",
		      rec->seq, expect_seq);
		if (rec->seq < linfo.first_seq || rec->seq >= linfo.next_seq)
			return 0;
	}
	expect_seq = rec->seq + 1;
	id = &recs[rec->seq - linfo.first_seq];
	if (id->kind != R_MISSING) {
		error("record %" PRIu64 " returned twice by the iteration", rec->seq);
		return 0;
	}
	id->kind = R_BAD;
	if (rec->nrefs == 0 || rec->nrefs > PASTE_LOG_MAX_REFS || !rec->len || rec->len > MAX_REQ) {
		error("record %" PRIu64 ": %u refs, %" PRIu64 " bytes: not a request keepserver "
		      "logs",
		      rec->seq, rec->nrefs, rec->len);
		return 0;
	}
	for (uint32_t i = 0; i < rec->nrefs; i++) {
		const struct paste_ref *r = &rec->refs[i];
		uint32_t frame;
		const void *p;

		if (!paste_pool__ref_in_frame(pool, r, &frame) || r->flags) {
			error("record %" PRIu64 " ref %u [%" PRIu64
			      ", +%u) flags %u: not inside one "
			      "frame",
			      rec->seq, i, r->off, r->len, r->flags);
			ok = false;
			continue;
		}
		sum += r->len;
		if (sum > rec->len) {
			ok = false;
			continue;
		}
		p = paste_pool__ref_ptr(pool, r);
		if (!p) {
			error("record %" PRIu64 " ref %u: paste_pool__ref_ptr failed", rec->seq, i);
			ok = false;
			continue;
		}
		memcpy(payload + at, p, r->len);
		at += r->len;
		frame_refs[frame]++;
		total_refs++;
		if (nspans == spans_cap) {
			spans_cap = spans_cap ? spans_cap * 2 : 4096;
			spans = realloc(spans, spans_cap * sizeof(*spans));
			if (!spans) {
				fprintf(stderr, "logcheck: out of memory\n");
				exit(1);
			}
		}
		spans[nspans++] = (struct span){r->off, r->len, rec->seq};
	}
	if (!ok)
		return 0;
	if (sum != rec->len) {
		error("record %" PRIu64 ": refs add up to %" PRIu64
		      " bytes, the record says %" PRIu64,
		      rec->seq, sum, rec->len);
		return 0;
	}
	total_bytes += rec->len;
	id->len = (uint32_t)rec->len;
	if (rec->len < PAYLOAD_HDR) { /* no header: identified from the acks or by search */
		memcpy(id->small, payload, rec->len);
		id->kind = R_SMALL;
		small_records++;
		return 0;
	}
	id->conn = get_be32(payload + 4);
	id->idx = get_be32(payload + 8);
	if (!payload_matches(opt.seed, id->conn, id->idx, payload, id->len)) {
		error("record %" PRIu64 " (%" PRIu64
		      " bytes): content was never sent by the client "
		      "(header conn %u idx %u len %u)",
		      rec->seq, rec->len, id->conn, id->idx, get_be32(payload + 12));
		return 0;
	}
	id->kind = R_KNOWN;
	hdr_records++;
	return 0;
}

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static void check_overlaps(void)
{
	qsort(spans, nspans, sizeof(*spans), cmp_span);
	for (size_t i = 1; i < nspans; i++)
		if (spans[i].off < spans[i - 1].off + spans[i - 1].len)
			error("records %" PRIu64 " and %" PRIu64 " name overlapping bytes at pool "
			      "offset %" PRIu64,
			      spans[i - 1].seq, spans[i].seq, spans[i].off);
}

/* ---- the acks ----------------------------------------------------------------------------- */

static uint64_t nacks, max_conn_seen;
static uint32_t min_conn_seen = UINT32_MAX;

static void check_acks(struct paste_log *log)
{
	FILE *f = fopen(opt.acks_path, "r");
	char line[256];
	unsigned long lineno = 0;

	if (!f) {
		error("cannot open the ack file %s: %s", opt.acks_path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		uint64_t seq;
		uint32_t conn, idx, len;
		struct paste_log_rec rec;
		struct rec_id *id;
		char extra;

		lineno++;
		if (sscanf(line, "%" SCNu64 " %" SCNu32 " %" SCNu32 " %" SCNu32 " %c", &seq, &conn,
		           &idx, &len, &extra) != 4) {
			error("%s:%lu: not 'seq conn idx len': %s", opt.acks_path, lineno, line);
			continue;
		}
		nacks++;
		if (conn > max_conn_seen)
			max_conn_seen = conn;
		if (conn < min_conn_seen)
			min_conn_seen = conn;
		if (seq < linfo.first_seq || seq >= linfo.next_seq) {
			error("acked seq %" PRIu64 " (conn %u idx %u, %u bytes) is not in the log "
			      "(records %" PRIu64 "..%" PRIu64 ")",
			      seq, conn, idx, len, linfo.first_seq, linfo.next_seq - 1);
			continue;
		}
		id = &recs[seq - linfo.first_seq];
		if (id->acked) {
			error("seq %" PRIu64 " acknowledged twice (ack file line %lu)", seq,
			      lineno);
			continue;
		}
		id->acked = true;
		if (paste_log__get(log, seq, &rec) || rec.seq != seq || rec.len != len) {
			error("acked seq %" PRIu64
			      ": paste_log__get does not return it with %u bytes",
			      seq, len);
			continue;
		}
		if (id->kind == R_SMALL && id->len == len &&
		    payload_matches(opt.seed, conn, idx, id->small, len)) {
			id->conn = conn;
			id->idx = idx;
			id->kind = R_KNOWN;
		}
		if (id->kind != R_KNOWN || id->conn != conn || id->idx != idx || id->len != len) {
			error("acked seq %" PRIu64 " (conn %u idx %u, %u bytes) holds other bytes: "
			      "%s conn %u idx %u len %u",
			      seq, conn, idx, len,
			      id->kind == R_KNOWN   ? "request"
			      : id->kind == R_SMALL ? "unidentified small payload,"
			                            : "invalid record,",
			      id->conn, id->idx, id->len);
		}
	}
	fclose(f);
}

/* A small record nobody acknowledged: find the request it is (it must be one the client sent). */
static bool identify_small(struct rec_id *id, const uint32_t *max_idx)
{
	for (uint32_t conn = min_conn_seen; conn <= max_conn_seen; conn++) {
		uint32_t hi = max_idx[conn - min_conn_seen] + MAX_DEPTH;

		for (uint32_t idx = 0; idx <= hi; idx++) {
			if (payload_matches(opt.seed, conn, idx, id->small, id->len)) {
				id->conn = conn;
				id->idx = idx;
				id->kind = R_KNOWN;
				return true;
			}
		}
	}
	return false;
}

/* Every record identified, no request twice. */
static uint64_t check_identities(void)
{
	uint32_t *max_idx = NULL;
	uint64_t searched = 0;

	for (uint64_t i = 0; i < nrecs; i++) {
		if (recs[i].kind == R_KNOWN) {
			if (recs[i].conn > max_conn_seen)
				max_conn_seen = recs[i].conn;
			if (recs[i].conn < min_conn_seen)
				min_conn_seen = recs[i].conn;
		}
	}
	if (min_conn_seen <= max_conn_seen && max_conn_seen - min_conn_seen < (1u << 24)) {
		max_idx = calloc(max_conn_seen - min_conn_seen + 1, sizeof(*max_idx));
		for (uint64_t i = 0; max_idx && i < nrecs; i++)
			if (recs[i].kind == R_KNOWN &&
			    recs[i].idx > max_idx[recs[i].conn - min_conn_seen])
				max_idx[recs[i].conn - min_conn_seen] = recs[i].idx;
	}
	for (uint64_t i = 0; i < nrecs; i++) {
		struct rec_id *id = &recs[i];

		if (id->kind == R_SMALL) {
			searched++;
			if (!max_idx || !identify_small(id, max_idx))
				error("record %" PRIu64
				      " (%u bytes): content was never sent by the "
				      "client",
				      linfo.first_seq + i, id->len);
		}
		if (id->kind == R_KNOWN) {
			uint64_t was = ids_put(id->conn, id->idx, linfo.first_seq + i);

			if (was != UINT64_MAX)
				error("request conn %u idx %u is in the log twice: records %" PRIu64
				      " and %" PRIu64,
				      id->conn, id->idx, was, linfo.first_seq + i);
		}
	}
	free(max_idx);
	return searched;
}

/* ---- frames ------------------------------------------------------------------------------- */

static uint32_t check_frames(void)
{
	struct paste_frames *f = paste_pool__frame_alloc(pool);
	uint32_t named = 0;

	if (f->count != pinfo.frame_count)
		error("allocator has %u frames, the pool %u", f->count, pinfo.frame_count);
	for (uint32_t i = 0; i < f->count && i < pinfo.frame_count; i++) {
		if (frame_refs[i]) {
			named++;
			if (f->state[i] != PASTE_FRAME_KEPT || f->refs[i] != frame_refs[i])
				error(
				    "frame %u: named %u times by the log, but the allocator has it "
				    "in state %u with %u references",
				    i, frame_refs[i], f->state[i], f->refs[i]);
		} else if (f->state[i] != PASTE_FRAME_FREE) {
			error("frame %u: named by no record, but the allocator has it in state %u "
			      "with %u references (leak)",
			      i, f->state[i], f->refs[i]);
		}
	}
	if (paste_frames__nr(f, PASTE_FRAME_KEPT) != named)
		error("allocator counts %u KEPT frames, the log names %u",
		      paste_frames__nr(f, PASTE_FRAME_KEPT), named);
	if (paste_frames__nr(f, PASTE_FRAME_FILL) || paste_frames__nr(f, PASTE_FRAME_RX) ||
	    paste_frames__nr(f, PASTE_FRAME_TX))
		error("after recovery, frames in FILL/RX/TX: %u/%u/%u",
		      paste_frames__nr(f, PASTE_FRAME_FILL), paste_frames__nr(f, PASTE_FRAME_RX),
		      paste_frames__nr(f, PASTE_FRAME_TX));
	if (!paste_frames__audit(f))
		error("paste_frames__audit failed");
	return named;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-logcheck --pool PATH --acks FILE [--seed S] [--log NAME] [--close]\n"
	    "\n"
	    "Offline check of paste-keepserver's log against paste-keepclient's ack file. Run it\n"
	    "with no server on the pool: opening the pool runs recovery.\n"
	    "\n"
	    "  --seed S     the clients' payload seed (default 1)\n"
	    "  --log NAME   log region name (default keep.log)\n"
	    "  --close      close the pool (marks it cleanly shut down); by default a pool that\n"
	    "               was not shut down cleanly is left that way\n"
	    "  --quiet      only the summary line\n"
	    "Exit status: 0 all checks hold, 1 a check failed, 2 usage.\n");
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"pool", required_argument, NULL, 'p'}, {"acks", required_argument, NULL, 'a'},
	    {"seed", required_argument, NULL, 's'}, {"log", required_argument, NULL, 'l'},
	    {"close", no_argument, NULL, 'c'},      {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	int o;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end;

		switch (o) {
		case 'p':
			opt.pool_path = optarg;
			break;
		case 'a':
			opt.acks_path = optarg;
			break;
		case 's':
			errno = 0;
			opt.seed = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end) {
				fprintf(stderr, "logcheck: bad --seed '%s'\n", optarg);
				return 2;
			}
			break;
		case 'l':
			opt.log_name = optarg;
			break;
		case 'c':
			opt.close_pool = true;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !opt.pool_path || !opt.acks_path) {
		fprintf(stderr, "logcheck: --pool and --acks are required (see --help)\n");
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct paste_pool_opts po = {.sz = sizeof(po)};
	struct paste_log *log;
	uint64_t unacked = 0, searched;
	uint32_t named;
	int r;

	r = parse_args(argc, argv);
	if (r)
		return r == 1 ? 0 : 2;
	paste_set_print(NULL, NULL, opt.quiet ? PASTE_LOG_WARN : PASTE_LOG_INFO);
	r = paste_pool__open(&pool, opt.pool_path, &po);
	if (r) {
		fprintf(stderr, "logcheck: cannot open pool %s: %s\n", opt.pool_path,
		        paste_last_error());
		return 1;
	}
	paste_pool__info(pool, &pinfo, sizeof(pinfo));
	r = paste_log__open(&log, pool, opt.log_name, NULL);
	if (r) {
		fprintf(stderr, "logcheck: no log '%s' in %s: %s\n", opt.log_name, opt.pool_path,
		        paste_last_error());
		return 1;
	}
	paste_log__info(log, &linfo, sizeof(linfo));
	if (linfo.next_seq < linfo.first_seq || linfo.next_seq - linfo.first_seq > (1ull << 32)) {
		fprintf(stderr, "logcheck: FAIL: log bounds first=%" PRIu64 " next=%" PRIu64 "\n",
		        linfo.first_seq, linfo.next_seq);
		return 1;
	}
	nrecs = linfo.next_seq - linfo.first_seq;
	for (ids_cap = 1024; ids_cap < 2 * nrecs; ids_cap *= 2)
		;
	recs = calloc(nrecs ? nrecs : 1, sizeof(*recs));
	frame_refs = calloc(pinfo.frame_count, sizeof(*frame_refs));
	payload = malloc(MAX_REQ);
	ids_key = calloc(ids_cap, sizeof(*ids_key));
	ids_seq = calloc(ids_cap, sizeof(*ids_seq));
	if (!recs || !frame_refs || !payload || !ids_key || !ids_seq) {
		fprintf(stderr, "logcheck: out of memory\n");
		return 1;
	}

	expect_seq = linfo.first_seq;
	r = paste_log__iterate(log, linfo.first_seq, check_record, NULL);
	if (r)
		error("paste_log__iterate returned %d", r);
	if (expect_seq != linfo.next_seq)
		error("iteration ended at %" PRIu64 ", the log says next=%" PRIu64, expect_seq,
		      linfo.next_seq);
	for (uint64_t i = 0; i < nrecs; i++)
		if (recs[i].kind == R_MISSING) {
			error("record %" PRIu64 " is missing from the iteration",
			      linfo.first_seq + i);
		}
	if (linfo.records != nrecs)
		error("the log says %" PRIu64 " records, first..next holds %" PRIu64, linfo.records,
		      nrecs);
	if (linfo.bytes != total_bytes)
		error("the log says %" PRIu64 " payload bytes, the records add up to %" PRIu64,
		      linfo.bytes, total_bytes);
	check_overlaps();
	check_acks(log);
	searched = check_identities();
	for (uint64_t i = 0; i < nrecs; i++)
		unacked += !recs[i].acked;
	named = check_frames();

	printf("logcheck: %s pool=%s was_clean=%d log first=%" PRIu64 " next=%" PRIu64
	       " records=%" PRIu64 " recovered=%" PRIu64 " dropped=%" PRIu64 " bytes=%" PRIu64
	       " acked=%" PRIu64 " unacked=%" PRIu64 " small=%" PRIu64 " searched=%" PRIu64
	       " refs=%" PRIu64 " frames_kept=%u errors=%u\n",
	       errors ? "FAIL" : "OK", opt.pool_path, pinfo.was_clean, linfo.first_seq,
	       linfo.next_seq, nrecs, linfo.recovered, linfo.dropped, total_bytes, nacks, unacked,
	       small_records, searched, total_refs, named, errors);
	free(recs);
	free(frame_refs);
	free(payload);
	free(ids_key);
	free(ids_seq);
	free(spans);
	if (opt.close_pool || pinfo.was_clean)
		paste_pool__close(&pool);
	/* else: exit without closing, so the pool stays marked as not shut down cleanly */
	return errors ? 1 : 0;
}
