/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-wal-dump - offline lister and checker of the records paste-wal keeps in a pool (no
 * network, public API only).
 *
 * It opens the pool the way the server does, so recovery runs: every log record whose checksum
 * (over the record and the payload bytes it names) does not hold is cut off with everything after
 * it, and what survives is listed - one line per record with its sequence number, length, number
 * of references and the CRC32C of its payload - or, with --raw, the payloads themselves are written
 * to stdout back to back. --verify adds structural checks of every record. The pool is locked
 * while open, so this refuses to run on a pool a live server holds.
 *
 * With --log-file, it reads the log file of paste-wal --sync fdatasync instead (read only: a
 * torn tail is reported, not cut), with the same listing and --raw.
 *
 * With --tier-dir, the records of the capacity tier (docs/paste-wal.md) come first: the range
 * [tier first, pool log first) named by the pool region "<log>.tier", read from the segment files
 * in the directory (read only) and each checked against its CRC32C.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <paste/index.h>
#include <paste/paste.h>

#include "wal_seg.h"

struct dump {
	const char *pool_path, *log_name, *tier_dir, *log_file;
	char *log_file_buf; /* --log-file with --slice K: PATH.wK */
	uint64_t from, limit;
	uint64_t slice; /* --slice: one worker's slice of a sliced pool (paste-wal --queues) */
	bool sliced;
	bool verify, raw, quiet, verbose;
	struct paste_pool *pool;
	struct paste_pool_info pi;
	uint64_t listed, bytes, problems, expect_seq;
	struct span *spans; /* --verify: every referenced byte range */
	size_t nspans, cap;
	uint64_t tier_first, tier_end, tier_listed; /* tier records [first, end) */
	uint64_t expect_tier;                       /* the next tier record the files must have */
};

#define TIER_MAGIC    0x3152454954574150ull /* paste-wal's "<log>.tier" region */
#define SEG_REC_MAGIC 0x31525750u           /* "PWR1": {magic, len, seq}, payload, CRC32C */

struct span {
	uint64_t off, len, seq;
};

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		crc_table[i] = c;
	}
}

/* CRC32C (Castagnoli), chainable, seed 0: the checksum paste-wal and the log use. */
static uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-wal-dump --pool PATH [--slice K] [--log NAME] [--tier-dir DIR] [--from SEQ]\n"
	    "                      [--limit N] [--verify] [--raw] [--quiet] [--verbose]\n"
	    "       paste-wal-dump --log-file PATH [--slice K] [--from SEQ] [--limit N] [--raw]\n"
	    "                      [--quiet]\n"
	    "\n"
	    "List, check or extract the records of a paste-wal log, offline. The pool is\n"
	    "opened as the server opens it: recovery runs (and is written back), so a record\n"
	    "whose checksum over its payload does not hold is cut off with every record after\n"
	    "it - every record listed passed that check. The pool must not be in use: a\n"
	    "running paste-wal holds its lock.\n"
	    "\n"
	    "  --pool PATH    the pool file (this or --log-file is required)\n"
	    "  --log-file PATH  the log file of paste-wal --sync fdatasync instead of a pool:\n"
	    "                 read only (a torn tail after a crash is reported on stderr and\n"
	    "                 left for paste-wal to cut); each record is checked against its\n"
	    "                 CRC32C. Summary: 'paste-wal-dump: log_file=PATH first=F next=X\n"
	    "                 records=N bytes=B listed=L listed_bytes=LB torn_bytes=T'.\n"
	    "                 With --slice K: worker K's file PATH.wK of paste-wal --queues Q\n"
	    "                 --sync fdatasync --log-file PATH (seqs as with a pool's slice)\n"
	    "  --slice K      the slice of worker K of a pool written by paste-wal --queues Q\n"
	    "                 (one log per worker): its records are listed with the worker's\n"
	    "                 own seqs L; the seq clients saw is (L - 1) * Q + K + 1. The\n"
	    "                 workers must be stopped (each holds its slice's lock)\n"
	    "  --log NAME     the log region (default wal.log)\n"
	    "  --tier-dir DIR the capacity tier of that log (paste-wal --tier-dir): its\n"
	    "                 records come first, read from the segment files (read only),\n"
	    "                 each checked against its CRC32C; a missing or bad one is a\n"
	    "                 problem. Without it, records in a tier are not listed (said on\n"
	    "                 stderr). With --slice K, DIR is the --tier-dir given to\n"
	    "                 paste-wal --queues and worker K's tier, DIR/wK, is read\n"
	    "  --from SEQ     first record to show (default: the oldest)\n"
	    "  --limit N      at most N records (default: all)\n"
	    "  --verify       also check every record: references inside the frame area and\n"
	    "                 each within one frame, lengths adding up, sequence numbers dense,\n"
	    "                 no two references naming the same bytes, nothing cut by recovery\n"
	    "                 after a clean stop (after a crash, the appends that were in\n"
	    "                 flight may be cut: reported, not a problem)\n"
	    "  --raw          write the payloads to stdout, back to back, in sequence order\n"
	    "                 (the listing goes to stderr then, unless --quiet)\n"
	    "  --quiet        no per-record lines (the summary line is still printed)\n"
	    "  --verbose      print the library's messages, recovery details included\n"
	    "\n"
	    "Output: one line per record 'SEQ LEN NREFS CRC32C' (NREFS 0: a tier record),\n"
	    "then a summary line 'paste-wal-dump: log=NAME first=F next=X records=N bytes=B\n"
	    "listed=L listed_bytes=LB recovered=R dropped=D was_clean=C problems=P\n"
	    "tier_records=TR tier_listed=TL' (records and bytes: the pool log's; the tier's\n"
	    "are [first, first + TR)).\n"
	    "Exit status: 0 fine, 1 the pool or log cannot be read or --verify found problems\n"
	    "(each one named on stderr), 2 usage error.\n"
	    "\n"
	    "Example: paste-wal-dump --pool /dev/shm/wal.pool --from 42 --limit 1 --raw > rec42\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t *v)
{
	char *end = NULL;

	errno = 0;
	if (s && *s >= '0' && *s <= '9') {
		*v = strtoull(s, &end, 10);
		if (!errno && !*end)
			return 0;
	}
	fprintf(stderr, "paste-wal-dump: invalid value '%s' for --%s: expected a number\n", s, opt);
	return -1;
}

/* @return 0 to run, 1 after --help, 2 on a usage error. */
static int parse_args(int argc, char **argv, struct dump *d)
{
	static const struct option opts[] = {
	    {"pool", required_argument, NULL, 'p'},
	    {"log", required_argument, NULL, 'l'},
	    {"from", required_argument, NULL, 'f'},
	    {"limit", required_argument, NULL, 'n'},
	    {"verify", no_argument, NULL, 'v'},
	    {"raw", no_argument, NULL, 'r'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"tier-dir", required_argument, NULL, 't'},
	    {"slice", required_argument, NULL, 's'},
	    {"log-file", required_argument, NULL, 'F'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			d->pool_path = optarg;
			break;
		case 'l':
			d->log_name = optarg;
			break;
		case 't':
			d->tier_dir = optarg;
			break;
		case 'F':
			d->log_file = optarg;
			break;
		case 'f':
			if (parse_u64("from", optarg, &d->from))
				return 2;
			break;
		case 's':
			if (parse_u64("slice", optarg, &d->slice))
				return 2;
			if (d->slice > 63) {
				fprintf(stderr,
				        "paste-wal-dump: --slice %" PRIu64
				        " is beyond the last worker (63)\n",
				        d->slice);
				return 2;
			}
			d->sliced = true;
			break;
		case 'n':
			if (parse_u64("limit", optarg, &d->limit))
				return 2;
			break;
		case 'v':
			d->verify = true;
			break;
		case 'r':
			d->raw = true;
			break;
		case 'q':
			d->quiet = true;
			break;
		case 'V':
			d->verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			fprintf(stderr, "paste-wal-dump: %s option '%s' (see --help)\n",
			        c == ':' ? "missing value for" : "unknown", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc || !d->pool_path == !d->log_file) {
		fprintf(stderr, "paste-wal-dump: %s (see --help)\n",
		        optind < argc ? "unexpected argument"
		        : d->log_file ? "give --pool or --log-file, not both"
		                      : "--pool PATH or --log-file PATH is required");
		return 2;
	}
	return 0;
}

static void problem(struct dump *d, uint64_t seq, const char *what)
{
	d->problems++;
	fprintf(stderr, "paste-wal-dump: record %" PRIu64 ": %s\n", seq, what);
}

/* --verify: structure of one record; remembers its byte ranges for the overlap check. */
static void verify_rec(struct dump *d, const struct paste_log_rec *rec)
{
	uint64_t sum = 0, area = d->pi.frame_area_off;
	uint64_t end = area + (uint64_t)d->pi.frame_size * d->pi.frame_count;

	if (rec->seq != d->expect_seq)
		problem(d, rec->seq, "sequence numbers are not dense");
	d->expect_seq = rec->seq + 1;
	if (rec->nrefs == 0 || rec->nrefs > PASTE_LOG_MAX_REFS)
		problem(d, rec->seq, "bad number of references");
	for (uint32_t i = 0; i < rec->nrefs; i++) {
		const struct paste_ref *r = &rec->refs[i];

		sum += r->len;
		if (r->off < area || r->off >= end || r->len == 0 || r->len > end - r->off)
			problem(d, rec->seq, "a reference lies outside the frame area");
		else if ((r->off - area) / d->pi.frame_size !=
		         (r->off + r->len - 1 - area) / d->pi.frame_size)
			problem(d, rec->seq, "a reference crosses a frame boundary");
		if (d->nspans == d->cap) {
			size_t cap = d->cap ? d->cap * 2 : 4096;
			struct span *s = realloc(d->spans, cap * sizeof(*s));

			if (!s) {
				problem(d, rec->seq, "out of memory for the overlap check");
				continue;
			}
			d->spans = s;
			d->cap = cap;
		}
		d->spans[d->nspans++] = (struct span){r->off, r->len, rec->seq};
	}
	if (sum != rec->len)
		problem(d, rec->seq, "reference lengths do not add up to the record length");
}

static int by_off(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static void verify_overlaps(struct dump *d)
{
	if (d->nspans < 2) /* (an empty log has no spans at all: spans is NULL) */
		return;
	qsort(d->spans, d->nspans, sizeof(*d->spans), by_off);
	for (size_t i = 1; i < d->nspans; i++)
		if (d->spans[i - 1].off + d->spans[i - 1].len > d->spans[i].off)
			problem(d, d->spans[i].seq, "names bytes another record names too");
}

static int each_rec(const struct paste_log_rec *rec, void *arg)
{
	struct dump *d = arg;
	FILE *list = d->raw ? stderr : stdout;
	uint32_t crc = 0;

	if (d->limit && d->listed == d->limit)
		return 1;
	for (uint32_t i = 0; i < rec->nrefs; i++) {
		const void *p = paste_pool__ref_ptr(d->pool, &rec->refs[i]);

		if (!p) {
			problem(d, rec->seq, "a reference is not inside the pool");
			continue;
		}
		crc = crc32c(crc, p, rec->refs[i].len);
		if (d->raw && fwrite(p, 1, rec->refs[i].len, stdout) != rec->refs[i].len)
			return -EIO;
	}
	if (d->verify)
		verify_rec(d, rec);
	if (!d->quiet)
		fprintf(list, "%" PRIu64 " %" PRIu64 " %u %08x\n", rec->seq, rec->len, rec->nrefs,
		        crc);
	d->listed++;
	d->bytes += rec->len;
	return 0;
}

/* ---- the capacity tier ------------------------------------------------------------------- */

static void quiet_print(enum paste_log_level level, const char *msg, void *user)
{
	(void)level, (void)msg, (void)user;
}

/* The tier's first record from the pool region "<log>.tier" (0: no tier, or it is empty). */
static uint64_t tier_head(struct dump *d)
{
	char name[PASTE_POOL_REGION_NAME_MAX + 8];
	uint64_t len, w[2];
	void *addr;
	int err;

	if (snprintf(name, sizeof(name), "%s.tier", d->log_name) > PASTE_POOL_REGION_NAME_MAX)
		return 0;
	paste_set_print(quiet_print, NULL, PASTE_LOG_ERROR); /* absent is an answer */
	err = paste_pool__region(d->pool, name, 0, &addr, &len);
	paste_set_print(NULL, NULL, d->verbose ? PASTE_LOG_DEBUG : PASTE_LOG_WARN);
	if (err || len < sizeof(w))
		return 0;
	memcpy(w, addr, sizeof(w));
	return w[0] == TIER_MAGIC ? w[1] : 0;
}

/* One tier record: listed (and written with --raw) if --from/--limit want it. */
static int tier_rec(struct dump *d, uint64_t seq, const uint8_t *p, uint32_t len, uint32_t crc)
{
	FILE *list = d->raw ? stderr : stdout;

	if (seq < d->from || (d->limit && d->listed == d->limit))
		return 0;
	if (d->raw && fwrite(p, 1, len, stdout) != len)
		return -EIO;
	if (d->verify && seq != d->expect_seq)
		problem(d, seq, "sequence numbers are not dense");
	d->expect_seq = seq + 1;
	if (!d->quiet)
		fprintf(list, "%" PRIu64 " %u 0 %08x\n", seq, len, crc);
	d->listed++;
	d->tier_listed++;
	d->bytes += len;
	return 0;
}

/* Walk segment @first of the tier; records of [tier_first, tier_end) go to tier_rec(). */
static int tier_seg(struct dump *d, int dfd, uint64_t first, uint8_t **buf, size_t *cap)
{
	char name[64];
	struct wf_rec h;
	struct stat st;
	uint64_t off = 0;
	uint32_t len, crc;
	int fd, err = 0;

	seg_name(name, sizeof(name), first);
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "paste-wal-dump: cannot open %s/%s: %s\n", d->tier_dir, name,
		        strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (uint64_t seq = first; seq < d->tier_end && !err; seq++) {
		if (pread(fd, &h, sizeof(h), (off_t)off) != sizeof(h) || h.len > WF_REC_MAX)
			break;
		if (h.len > *cap) {
			uint8_t *n = realloc(*buf, h.len);

			if (!n)
				break;
			*buf = n;
			*cap = h.len;
		}
		len = seg_check(fd, (uint64_t)st.st_size, off, seq, true, *buf, *cap, &crc);
		if (!len)
			break;
		off += len + SEG_REC_OVER;
		if (seq < d->tier_first)
			continue; /* truncated: the segment still holds it */
		if (seq == d->expect_tier)
			d->expect_tier = seq + 1;
		err = tier_rec(d, seq, *buf, len, crc);
	}
	close(fd);
	return err;
}

/* List the tier's records [tier_first, tier_end) from the segment files in --tier-dir. */
static void tier_list(struct dump *d)
{
	int dfd = open(d->tier_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;
	uint64_t *v = NULL;
	size_t n = 0, bcap = 0;
	uint8_t *buf = NULL;

	err = dfd < 0 ? -errno : seg_list(dfd, &v, &n);
	if (err) {
		fprintf(stderr, "paste-wal-dump: cannot read the tier directory %s: %s\n",
		        d->tier_dir, strerror(-err));
		d->problems++;
		if (dfd >= 0)
			close(dfd);
		return;
	}
	d->expect_tier = d->tier_first;
	for (size_t i = 0; i < n && v[i] < d->tier_end; i++)
		if (tier_seg(d, dfd, v[i], &buf, &bcap) == -EIO)
			break;
	if (d->expect_tier != d->tier_end)
		problem(d, d->expect_tier,
		        "a tier record is missing from the segment files or fails its checksum");
	free(buf);
	free(v);
	close(dfd);
}

static int run(struct dump *d)
{
	struct paste_pool_opts po = {
	    .sz = sizeof(po), .sliced = d->sliced, .slice = (uint32_t)d->slice};
	struct paste_log *log;
	struct paste_log_info li;
	int err;

	err = paste_pool__open(&d->pool, d->pool_path, &po);
	if (err) {
		fprintf(stderr, "paste-wal-dump: cannot open pool %s: %s\n", d->pool_path,
		        paste_last_error());
		return 1;
	}
	paste_pool__info(d->pool, &d->pi, sizeof(d->pi));
	err = paste_log__open(&log, d->pool, d->log_name, NULL);
	if (err) {
		fprintf(stderr, "paste-wal-dump: pool %s has no log '%s': %s\n", d->pool_path,
		        d->log_name, paste_last_error());
		paste_pool__close(&d->pool);
		return 1;
	}
	paste_log__info(log, &li, sizeof(li));
	d->tier_first = tier_head(d);
	d->tier_end = d->tier_first ? li.first_seq : 0;
	if (d->tier_first > li.first_seq) {
		problem(d, d->tier_first, "the tier starts after the pool log's first record");
		d->tier_first = d->tier_end = 0;
	}
	d->expect_seq = d->from > li.first_seq ? d->from : li.first_seq;
	if (d->tier_first < d->tier_end && d->tier_dir) {
		char *wdir = NULL;

		if (d->sliced) { /* paste-wal --queues: worker K's segments are in DIR/wK */
			if (asprintf(&wdir, "%s/w%" PRIu64, d->tier_dir, d->slice) < 0) {
				fprintf(stderr, "paste-wal-dump: out of memory\n");
				paste_pool__close(&d->pool);
				return 1;
			}
			d->tier_dir = wdir;
		}
		d->expect_seq = d->from > d->tier_first ? d->from : d->tier_first;
		tier_list(d);
		free(wdir);
	} else if (d->tier_first < d->tier_end) {
		fprintf(stderr,
		        "paste-wal-dump: records %" PRIu64 "..%" PRIu64 " are in the capacity "
		        "tier: give --tier-dir DIR to list them\n",
		        d->tier_first, d->tier_end - 1);
	}
	err = paste_log__iterate(log, d->from, each_rec, d);
	if (err < 0) {
		fprintf(stderr, "paste-wal-dump: writing payloads failed: %s\n", strerror(-err));
		d->problems++;
	}
	if (fflush(stdout))
		d->problems++;
	if (d->verify) {
		verify_overlaps(d);
		/* After a clean stop nothing may be cut. After a crash, recovery cuts an append
		 * that was in flight when the process died (its header written, its checksum not
		 * yet): never acknowledged, since a reply leaves only after the record's fence. */
		if (li.dropped && d->pi.was_clean)
			problem(d, li.next_seq, "recovery cut off invalid (torn) records at open");
		else if (li.dropped)
			fprintf(stderr,
			        "paste-wal-dump: record %" PRIu64 ": recovery cut %" PRIu64
			        " torn record(s) after an unclean stop (appends in flight, never"
			        " acknowledged)\n",
			        li.next_seq, li.dropped);
	}
	fprintf(d->raw ? stderr : stdout,
	        "paste-wal-dump: log=%s first=%" PRIu64 " next=%" PRIu64 " records=%" PRIu64
	        " bytes=%" PRIu64 " listed=%" PRIu64 " listed_bytes=%" PRIu64 " recovered=%" PRIu64
	        " dropped=%" PRIu64 " was_clean=%d problems=%" PRIu64 " tier_records=%" PRIu64
	        " tier_listed=%" PRIu64 "\n",
	        d->log_name, d->tier_first < d->tier_end ? d->tier_first : li.first_seq,
	        li.next_seq, li.records, li.bytes, d->listed, d->bytes, li.recovered, li.dropped,
	        d->pi.was_clean, d->problems, d->tier_end - d->tier_first, d->tier_listed);
	paste_pool__close(&d->pool);
	return d->problems ? 1 : 0;
}

/* --log-file: the records of paste-wal's fdatasync log file, from its head slot to the first one
 * that does not check out. */
static int file_run(struct dump *d)
{
	uint64_t off, seq, size, nbytes = 0, first;
	size_t cap = 0;
	uint8_t *buf = NULL;
	struct wf_slot h;
	struct stat st;
	unsigned slot;
	int fd, err;

	if (d->sliced) { /* paste-wal --queues: worker K's file is PATH.wK */
		if (asprintf(&d->log_file_buf, "%s.w%" PRIu64, d->log_file, d->slice) < 0) {
			d->log_file_buf = NULL;
			fprintf(stderr, "paste-wal-dump: out of memory\n");
			return 1;
		}
		d->log_file = d->log_file_buf; /* for the rest of the run */
	}
	fd = open(d->log_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "paste-wal-dump: cannot open %s: %s\n", d->log_file,
		        strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	size = (uint64_t)st.st_size;
	err = wf_head_read(fd, size, &h, &slot);
	if (err) {
		fprintf(stderr, "paste-wal-dump: %s: %s\n", d->log_file,
		        err == -EBADMSG
		            ? "not a paste-wal log file (bad magic, version or checksum)"
		            : "no valid head slot: the file is corrupt");
		close(fd);
		return 1;
	}
	first = h.first_seq;
	d->expect_seq = d->from > first ? d->from : first;
	for (seq = first, off = h.start_off;; seq++) {
		struct wf_rec r;
		uint32_t len, crc = 0;

		if (pread(fd, &r, sizeof(r), (off_t)off) != (ssize_t)sizeof(r) ||
		    r.magic != WF_REC_MAGIC || r.seq != seq || !r.len || r.len > WF_REC_MAX)
			break;
		if (r.len > cap) {
			uint8_t *n = realloc(buf, r.len);

			if (!n) {
				fprintf(stderr, "paste-wal-dump: out of memory\n");
				d->problems++;
				break;
			}
			buf = n;
			cap = r.len;
		}
		len = seg_check(fd, size, off, seq, true, buf, cap, &crc);
		if (!len)
			break;
		if (tier_rec(d, seq, buf, len, crc)) {
			fprintf(stderr, "paste-wal-dump: writing payloads failed\n");
			d->problems++;
			break;
		}
		nbytes += len;
		off += len + SEG_REC_OVER;
	}
	if (off < size)
		fprintf(stderr,
		        "paste-wal-dump: %s: %" PRIu64 " bytes after record %" PRIu64
		        " do not check out (a torn tail: paste-wal cuts it at its next start)\n",
		        d->log_file, size - off, seq - 1);
	if (fflush(stdout))
		d->problems++;
	fprintf(d->raw ? stderr : stdout,
	        "paste-wal-dump: log_file=%s first=%" PRIu64 " next=%" PRIu64 " records=%" PRIu64
	        " bytes=%" PRIu64 " listed=%" PRIu64 " listed_bytes=%" PRIu64 " torn_bytes=%" PRIu64
	        " problems=%" PRIu64 "\n",
	        d->log_file, first, seq, seq - first, nbytes, d->listed, d->bytes,
	        off < size ? size - off : 0, d->problems);
	free(buf);
	close(fd);
	return d->problems ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct dump d = {.log_name = "wal.log"};
	int r;

	r = parse_args(argc, argv, &d);
	if (r)
		return r == 1 ? 0 : 2;
	crc_init();
	paste_set_print(NULL, NULL, d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_WARN);
	r = d.log_file ? file_run(&d) : run(&d);
	free(d.spans);
	free(d.log_file_buf);
	return r;
}
