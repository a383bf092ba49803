/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-wal - a durable write-ahead-log server over HTTP/1.1 on libpaste-xdp (PASTE's phttpd in
 * WAL mode, as a program people run).
 *
 * POST <prefix> appends the request body to a log and answers 201 with the record's sequence
 * number; GET <prefix>/<seq> returns a record, GET <prefix>?from=&limit= a range, DELETE
 * <prefix>?upto= truncates, GET /stats reports counters as JSON. docs/paste-wal.md is the manual.
 *
 * Two ways to store, one rule for replies:
 *  - pmem (default): the body stays where the NIC (or recv()) wrote it, in pool frames:
 *    paste_conn__keep() pins those frames, paste_log__append() records references to them and
 *    store_append() flushes them (after the append's CRC read). No copy of the payload on the
 *    paste transport.
 *  - fdatasync (--sync fdatasync --log-file PATH): the body is written to an ordinary file (a
 *    record header, the bytes, a CRC32C trailer) and the file is fdatasync()ed once per round from
 *    the round hook: the path users without NVMM have.
 * Either way the library sends nothing a callback queued before the round's fence (pmem) or round
 * hook (fdatasync) has run, so a 201 never acknowledges a record that is not durable, and a round
 * of many requests costs one fence (group commit).
 *
 * With --tier-dir (pmem only), a capacity tier moves the oldest records from pool frames to
 * segment files in the background (wal_tier.c), so the pool does not fill while the disk has room.
 *
 * Connections are state machines (struct wconn, wal_conn.c): a request head is copied (bounded,
 * http.c) and consumed as it arrives; a body is kept in place whole when it is small, piece by
 * piece as it arrives when it is larger than the receive window can hold; replies (wal_reply.c)
 * go through the connection's reply queue (daemon_replyq.c) and, for records, are sent straight
 * from the pool (or read from the file or a segment) under send-buffer backpressure, resumed by
 * sequence number and offset in the next on_data(). This file: statistics, options, startup and the
 * event loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <paste/paste.h>

#include "daemon_opts.h"
#include "daemon_workers.h"
#include "wal.h"

enum {
	OPT_PATH_PREFIX = 512,
	OPT_MAX_BODY,
	OPT_LOG_NAME,
	OPT_LOG_REGION,
	OPT_RESERVE,
	OPT_SYNC,
	OPT_LOG_FILE,
	OPT_HEADER_TIMEOUT,
	OPT_IDLE_TIMEOUT,
	OPT_COPY_THRESHOLD,
	OPT_TIER_DIR,
	OPT_TIER_SIZE,
	OPT_TIER_START,
	OPT_TIER_STOP,
	OPT_RETAIN_BYTES,
	OPT_RETAIN_SECS,
	OPT_DELETE_WAIT,
};

/* ---- statistics -------------------------------------------------------------------------- */

#define WAL_STATS_MAX 80

struct kv {
	const char *name;
	uint64_t v;
};

/* Fill @t with every counter; @return how many. */
static size_t stats_collect(struct wal *w, struct kv *t, size_t max)
{
	struct paste_stats s = {0};
	struct store_info si;
	size_t n = 0;

	paste_stats(w->ctx, &s, sizeof(s));
	store_info(w, &si);
#define KV(k, x)                                                                                   \
	do {                                                                                       \
		if (n < max)                                                                       \
			t[n++] = (struct kv){k, (uint64_t)(x)};                                    \
	} while (0)
	KV("records", si.records);
	KV("bytes", si.bytes);
	KV("first_seq", si.first);
	KV("next_seq", si.next);
	KV("appended", w->n.appended);
	KV("appended_bytes", w->n.appended_bytes);
	KV("requests", w->n.requests);
	KV("replies_2xx", w->n.r2xx);
	KV("replies_4xx", w->n.r4xx);
	KV("replies_5xx", w->n.r5xx);
	KV("malformed", w->n.malformed);
	KV("too_large", w->n.too_large);
	KV("refused_full", w->n.refused_full);
	KV("refused_log", w->n.refused_log);
	KV("timeouts", w->loop.idle_timeouts + w->loop.request_timeouts);
	KV("incomplete", w->n.incomplete);
	KV("truncations", w->n.truncations);
	KV("frames_total", s.frames_total);
	KV("frames_free", s.frames_free);
	KV("frames_fill", s.frames_fill);
	KV("frames_rx", s.frames_rx);
	KV("frames_tx", s.frames_tx);
	KV("frames_kept", s.frames_kept);
	KV("fences", s.fences);
	KV("fsyncs", w->n.fsyncs);
	KV("rounds", s.rounds);
	KV("batches", w->n.batches);
	KV("batch_records", w->n.batch_records);
	KV("max_batch", w->n.max_batch);
	KV("conns_open", s.conns_open);
	KV("conns_accepted", s.conns_accepted);
	KV("rx_payload_bytes", s.rx_payload_bytes);
	KV("rx_copied_bytes", s.rx_copied_bytes);
	KV("persisted_bytes", s.persisted_bytes);
	KV("kept_bytes", s.kept_bytes);
	KV("rx_dropped", s.rx_dropped);
	KV("syn_evicted", s.syn_evicted);
	KV("zerocopy", s.zerocopy);
	KV("retain_bytes", w->retain.bytes);
	KV("retain_secs", w->retain.secs);
	KV("retention_truncations", w->retain.n.truncations);
	KV("retention_dropped_records", w->retain.n.records);
	KV("retention_dropped_bytes", w->retain.n.bytes);
	KV("stalls", w->n.stalls);
	KV("stalled", w->stalled);
	if (w->tier.on) {
		const struct wal_tier *tr = &w->tier;

		KV("pool_records", si.records - (tr->end - tr->first));
		KV("pool_bytes", si.bytes - tr->payload);
		KV("tier_records", tr->end - tr->first);
		KV("tier_bytes", tr->payload);
		KV("tier_first_seq", tr->first);
		KV("tier_file_bytes", tr->bytes);
		KV("tier_size", tr->size);
		KV("tier_segments", tr->nsegs);
		KV("tier_destaging", tr->destaging);
		KV("tier_full", tr->full);
		KV("tier_failed", tr->failed);
		KV("tier_destaged", tr->n.destaged);
		KV("tier_destaged_bytes", tr->n.destaged_bytes);
		KV("tier_jobs", tr->n.jobs);
		KV("tier_job_ms_avg", tr->n.jobs ? tr->n.job_ns_total / tr->n.jobs / 1000000 : 0);
		KV("tier_job_ms_max", tr->n.job_ns_max / 1000000);
		KV("tier_reads", tr->n.reads);
		KV("tier_read_bytes", tr->n.read_bytes);
		KV("tier_segments_deleted", tr->n.segs_deleted);
		KV("tier_recovered", tr->n.recovered);
		KV("tier_trimmed", tr->n.trimmed);
	}
#undef KV
	return n;
}

static double avg_batch(const struct wal *w)
{
	return w->n.batches ? (double)w->n.batch_records / (double)w->n.batches : 0.0;
}

/* JSON into @buf (one object, keys in a fixed order). */
void stats_json(struct wal *w, char *buf, size_t size)
{
	struct kv t[WAL_STATS_MAX];
	size_t n = stats_collect(w, t, WAL_STATS_MAX), off;

	off = (size_t)snprintf(buf, size, "{\"transport\":\"%s\",\"sync\":\"%s\",\"persist\":%s",
	                       transport_name(w), w->sync == SYNC_PMEM ? "pmem" : "fdatasync",
	                       w->no_persist ? "false" : "true");
	for (size_t i = 0; i < n && off < size; i++)
		off +=
		    (size_t)snprintf(buf + off, size - off, ",\"%s\":%" PRIu64, t[i].name, t[i].v);
	if (off < size)
		off += wal_multi_stats(w, buf + off, size - off);
	if (off < size)
		snprintf(buf + off, size - off, ",\"avg_batch\":%.2f}\n", avg_batch(w));
}

/* One "stats k=v ..." line on stdout (SIGUSR1 and at exit). */
void print_stats(struct wal *w)
{
	struct kv t[WAL_STATS_MAX];
	size_t n = stats_collect(w, t, WAL_STATS_MAX);

	printf("stats%s transport=%s", daemon_worker_tag(), transport_name(w));
	for (size_t i = 0; i < n; i++)
		printf(" %s=%" PRIu64, t[i].name, t[i].v);
	printf(" avg_batch=%.2f\n", avg_batch(w));
	fflush(stdout);
}

/* ---- options ------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-wal --ifname IF (--ip ADDR | --shared-ip) --port N [options]\n"
	    "       paste-wal --transport kernel|io_uring --port N [--ip ADDR] [options]\n"
	    "       paste-wal --transport kernel --sync fdatasync --log-file PATH --port N ...\n"
	    "\n"
	    "A durable write-ahead log served over HTTP/1.1 (keep-alive, pipelining). Every\n"
	    "POST body is made durable before its 201 reply can leave: on the paste transport\n"
	    "it stays where the NIC wrote it, in the pool file, and a log record names it; the\n"
	    "replies of one event-loop round share one fence (group commit).\n"
	    "\n"
	    "Protocol (PREFIX is /log unless --path-prefix says otherwise):\n"
	    "  POST PREFIX              append the body (Content-Length framed, 1..--max-body\n"
	    "                           bytes): 201 Created, body {\"seq\":N}, headers X-Seq and\n"
	    "                           Location. 413 too large, 507 pool or log full, 411 no\n"
	    "                           Content-Length or chunked, 400 malformed (then close)\n"
	    "  GET PREFIX/SEQ           the record's bytes (200, application/octet-stream) or 404\n"
	    "  GET PREFIX?from=S&limit=N  up to N records (default 100, max 10000) from S: for\n"
	    "                           each, a line \"SEQ LEN\\n\", LEN bytes, \"\\n\"; headers\n"
	    "                           X-First-Seq, X-Next-Seq, X-Records\n"
	    "  DELETE PREFIX?upto=S     drop every record <= S (durable before the reply;\n"
	    "                           with --queues: of every worker, 503 if one does not\n"
	    "                           within --delete-wait)\n"
	    "  GET /stats               counters as JSON (records, bytes, frames, fences,\n"
	    "                           batches, avg_batch, ...)\n"
	    "\n"
	    "%s"
	    "\n"
	    "Log options:\n"
	    "  --path-prefix P      URL path of the log (default /log)\n"
	    "  --max-body SIZE      largest body accepted, K/M suffixes (default 1M, at most 64M;\n"
	    "                       a record names at most %u received segments)\n"
	    "  --sync MODE          pmem (default): records in the pool's log region, bodies kept\n"
	    "                       in place; fdatasync: records appended to --log-file with\n"
	    "                       write() and made durable by one fdatasync() per round\n"
	    "  --log-file PATH      the log file of --sync fdatasync (created if absent; with\n"
	    "                       --queues Q, worker K's is PATH.wK)\n"
	    "  --log NAME           name of the log region in the pool (default wal.log)\n"
	    "  --log-region SIZE    its size when creating it (default: 3/4 of the pool's free\n"
	    "                       region area)\n"
	    "  --reserve-frames N   refuse bodies (507; with a tier: wait) while fewer frames\n"
	    "                       than this are free,\n"
	    "                       so that receiving never starves (default 2048; the library\n"
	    "                       itself refuses to keep below 2 x batch + 256)\n"
	    "  --copy-threshold SIZE  body pieces below SIZE are copied into shared packing\n"
	    "                       frames instead of pinning a frame each (default 0: never)\n"
	    "  --header-timeout S   close (408) a connection whose request head is not complete\n"
	    "                       S seconds after its first byte (default 10; 0: never)\n"
	    "  --idle-timeout S     reset a connection without any progress for S seconds\n"
	    "                       (default 120; 0: never)\n"
	    "\n"
	    "Capacity tier (--sync pmem only):\n"
	    "  --tier-dir DIR       move the oldest records, in log order and in the background,\n"
	    "                       from pool frames to segment files in DIR (an ordinary file\n"
	    "                       system; created if absent), fdatasync()ed before the log\n"
	    "                       points at them; their frames are then free. Reads, ranges and\n"
	    "                       DELETE cover both tiers. A pool that used a tier must be\n"
	    "                       started with the same DIR again. With --queues Q, worker\n"
	    "                       K destages its own records to DIR/wK (made if absent)\n"
	    "  --tier-size SIZE     segment bytes at most (default 1G; K/M/G/T suffixes; with\n"
	    "                       --queues, of each worker: the thresholds are per worker too)\n"
	    "  --tier-start PCT     start destaging when records hold PCT%% of the pool's frames\n"
	    "                       or of the log region (default 50); also whenever a body\n"
	    "                       waits for frames\n"
	    "  --tier-stop PCT      stop destaging below PCT%% (default 25)\n"
	    "  With a tier, a POST that finds the pool short of frames waits (its body stays\n"
	    "  unread) until destaging frees some; 507 only when the tier is full too.\n"
	    "\n"
	    "Retention (off by default; either mode, with or without a tier):\n"
	    "  --retain-bytes SIZE  drop the oldest records while the log holds more than SIZE\n"
	    "                       payload bytes (checked 4 times a second)\n"
	    "  --retain-secs S      drop records appended more than S seconds ago (records\n"
	    "                       recovered at startup count as appended then)\n"
	    "  Each drop is a truncation like DELETE, with a line on stderr and counters in\n"
	    "  /stats (retention_dropped_records, retention_dropped_bytes).\n"
	    "\n"
	    "Several queues (--queues N, see the common options): one worker process per\n"
	    "queue, each with its own log: in its own slice of the --pool file, or with\n"
	    "--sync fdatasync in its own file PATH.wK (--log-file PATH). Record N's worker\n"
	    "is (N-1) mod Q (Q = --queues), so the seqs one worker hands out step by Q; any\n"
	    "worker serves GET/HEAD of any record and ranges (in seq\n"
	    "order; X-Stable-Seq: below it no record can still appear). /stats adds a\n"
	    "\"workers\" array and totals. DELETE is applied by every worker to its own log\n"
	    "(the reply waits for all, 503 after --delete-wait S seconds, default 10, if one\n"
	    "has not: a worker that is down applies it when it runs). Every transport (the\n"
	    "kernel ones with SO_REUSEPORT workers). --retain-*: each worker drops its own\n"
	    "oldest records (at most --retain-bytes / Q bytes each). --tier-dir DIR: each\n"
	    "worker destages its own records to DIR/wK; any worker reads records from any\n"
	    "worker's segment files, and a DELETE frees both tiers of every worker.\n"
	    "--sync fdatasync: each worker fdatasync()s its own file once per round; any\n"
	    "worker reads the records of the others' files (only what they synced) and a\n"
	    "DELETE's 200 means every file's truncation is synced. A pool keeps the Q (and\n"
	    "the --sync) it was written with; keep --log-file too.\n"
	    "\n"
	    "Startup prints 'paste-wal: ready ... recovered=N first=F next=X ...' on stdout once\n"
	    "serving: N records were found valid in the pool log (or the file) after the last\n"
	    "run, whether it ended cleanly or not. SIGUSR1 prints one line 'stats k=v ...';\n"
	    "SIGTERM/SIGINT reset the open connections and shut down cleanly (the pool is\n"
	    "marked clean). paste-wal-dump lists and verifies a pool's records offline.\n"
	    "Exit status: 0 clean shutdown, 1 runtime error, 2 usage error, 3 frame accounting\n"
	    "wrong at shutdown.\n"
	    "\n"
	    "Examples (in the server namespace of scripts/testbed):\n"
	    "  paste-wal --ifname ps0 --ip 10.77.0.3 --port 80 --pool /dev/shm/wal.pool \\\n"
	    "      --pool-size 1G\n"
	    "  curl --data-binary @rec.bin http://10.77.0.3/log     -> {\"seq\":1}\n"
	    "  curl http://10.77.0.3/log/1\n"
	    "  paste-wal --transport kernel --sync fdatasync --log-file /var/tmp/wal.log \\\n"
	    "      --port 8080 --pool /dev/shm/wal-k.pool\n"
	    "  paste-wal --transport kernel --port 8080 --pool /dev/shm/wal.pool \\\n"
	    "      --pool-size 256M --tier-dir /var/tmp/wal-tier --tier-size 20G\n",
	    daemon_common_help, PASTE_LOG_MAX_REFS);
}

static int bad_value(const char *opt, const char *arg, const char *want)
{
	fprintf(stderr, "paste-wal: invalid value '%s' for --%s: expected %s (see --help)\n", arg,
	        opt, want);
	return -1;
}

static int extra_opt(int opt, const char *arg, void *app)
{
	struct wal *w = app;
	uint64_t v;

	switch (opt) {
	case OPT_PATH_PREFIX:
		if (arg[0] != '/' || strlen(arg) > 200 || strpbrk(arg, "?# \t") ||
		    arg[strlen(arg) - 1] == '/')
			return bad_value("path-prefix", arg, "a path such as /log (no trailing /)");
		w->prefix = arg;
		return 0;
	case OPT_MAX_BODY:
		if (daemon_parse_size(arg, &w->max_body) || !w->max_body ||
		    w->max_body > WAL_DISCARD_MAX)
			return bad_value("max-body", arg, "a size from 1 to 64M");
		return 0;
	case OPT_LOG_NAME:
		if (!*arg || strlen(arg) > PASTE_POOL_REGION_NAME_MAX)
			return bad_value("log", arg, "a region name of 1-31 characters");
		w->log_name = arg;
		return 0;
	case OPT_LOG_REGION:
		if (daemon_parse_size(arg, &w->log_region) || w->log_region < 8192)
			return bad_value("log-region", arg, "a size of at least 8K");
		return 0;
	case OPT_RESERVE:
		if (daemon_parse_uint(arg, 0, UINT32_MAX, &w->reserve))
			return bad_value("reserve-frames", arg, "a number of frames");
		return 0;
	case OPT_SYNC:
		if (strcmp(arg, "pmem") && strcmp(arg, "fdatasync"))
			return bad_value("sync", arg, "pmem or fdatasync");
		w->sync = strcmp(arg, "pmem") ? SYNC_FDATASYNC : SYNC_PMEM;
		return 0;
	case OPT_LOG_FILE:
		w->file.path = w->file.given = arg;
		return 0;
	case OPT_HEADER_TIMEOUT:
	case OPT_IDLE_TIMEOUT:
		return daemon_parse_timeout(
		    "paste-wal", opt == OPT_IDLE_TIMEOUT ? "idle-timeout" : "header-timeout", arg,
		    opt == OPT_IDLE_TIMEOUT ? &w->loop.idle_timeout_ms
		                            : &w->loop.request_timeout_ms);
	case OPT_TIER_DIR:
		if (!*arg)
			return bad_value("tier-dir", arg, "a directory");
		w->tier.dir = w->tier.base = arg;
		w->tier.on = true;
		return 0;
	case OPT_TIER_SIZE:
		if (daemon_parse_size(arg, &w->tier.size) || w->tier.size < (1u << 20))
			return bad_value("tier-size", arg, "a size of at least 1M");
		return 0;
	case OPT_TIER_START:
	case OPT_TIER_STOP:
		if (daemon_parse_uint(arg, 1, 100, &v))
			return bad_value(opt == OPT_TIER_START ? "tier-start" : "tier-stop", arg,
			                 "a percentage 1-100");
		*(opt == OPT_TIER_START ? &w->tier.start_pct : &w->tier.stop_pct) = v;
		return 0;
	case OPT_RETAIN_BYTES:
		if (daemon_parse_size(arg, &w->retain.bytes) || !w->retain.bytes)
			return bad_value("retain-bytes", arg, "a size of at least 1");
		return 0;
	case OPT_RETAIN_SECS:
		if (daemon_parse_uint(arg, 1, 100ull * 365 * 86400, &w->retain.secs))
			return bad_value("retain-secs", arg, "seconds, at least 1");
		return 0;
	case OPT_DELETE_WAIT:
		if (daemon_parse_uint(arg, 1, 3600, &w->delete_wait_s))
			return bad_value("delete-wait", arg, "seconds 1-3600");
		return 0;
	case OPT_COPY_THRESHOLD:
		if (daemon_parse_size(arg, &w->copy_threshold) || w->copy_threshold > 4096)
			return bad_value("copy-threshold", arg, "a size of at most 4096");
		return 0;
	}
	return -1;
}

/* ---- startup and shutdown ---------------------------------------------------------------- */

/*
 * Open (or create) the pool log; the pool recovered it already. Without --log-region a new log
 * takes 3/4 of the free region area; an existing one is always larger than that default (it was
 * carved out of the same area), so the same call reopens it.
 */
static int open_pool_log(struct wal *w)
{
	struct paste_pool_info pi;
	uint64_t size = w->log_region;

	if (!size) {
		paste_pool__info(w->pool, &pi, sizeof(pi));
		size = (pi.region_area_size - pi.region_area_used) / 4 * 3 & ~4095ull;
		if (size < 8192)
			size = 0; /* no room left: only an existing log will do */
	}
	return paste_log__open(&w->log, w->pool, w->log_name,
	                       &PASTE_OPTS_LIT(paste_log_opts, .region_size = size));
}

static void print_ready(struct wal *w, const struct daemon_opts *d)
{
	struct paste_pool_info pi;
	struct paste_log_info li = {0};
	struct paste_stats st;
	struct store_info si;

	paste_pool__info(w->pool, &pi, sizeof(pi));
	paste_stats(w->ctx, &st, sizeof(st));
	store_info(w, &si);
	if (w->sync == SYNC_PMEM)
		paste_log__info(w->log, &li, sizeof(li));
	else
		li.recovered = w->file.recovered;
	printf("paste-wal: ready%s transport=%s sync=%s persist=%d port=%u ip=%s pool=%s "
	       "recovered=%" PRIu64 " first=%" PRIu64 " next=%" PRIu64 " records=%" PRIu64
	       " bytes=%" PRIu64 " dropped=%" PRIu64 " torn_bytes=%" PRIu64
	       " was_clean=%d frames=%u kept=%u prefix=%s max_body=%" PRIu64 " zerocopy=%d",
	       daemon_worker_tag(), transport_name(w), w->sync == SYNC_PMEM ? "pmem" : "fdatasync",
	       !w->no_persist, d->port, d->paste.ip ? d->paste.ip : "(any)",
	       d->paste.pool_path ? d->paste.pool_path : PASTE_POOL_DEFAULT_PATH, li.recovered,
	       si.first, si.next, si.records, si.bytes, li.dropped, w->file.torn_bytes,
	       pi.was_clean, st.frames_total, st.frames_kept, w->prefix, w->max_body, st.zerocopy);
	if (w->tier.on) /* the pool holds [tier_end, next), the segment files [first, tier_end) */
		printf(" tier=%s tier_records=%" PRIu64 " tier_bytes=%" PRIu64 " tier_end=%" PRIu64
		       " tier_segments=%u tier_size=%" PRIu64 " tier_trimmed=%" PRIu64,
		       w->tier.dir, w->tier.end - w->tier.first, w->tier.payload, w->tier.end,
		       w->tier.nsegs, w->tier.size, w->tier.n.trimmed);
	printf("\n");
	fflush(stdout);
}

struct frame_count {
	uint64_t area_off;
	uint32_t frame_size, frame_count, distinct;
	uint8_t *named;
	bool bad;
};

static int count_frames(const struct paste_log_rec *rec, void *arg)
{
	struct frame_count *fc = arg;

	for (uint32_t i = 0; i < rec->nrefs; i++) {
		uint64_t off = rec->refs[i].off, f = (off - fc->area_off) / fc->frame_size;

		if (off < fc->area_off || f >= fc->frame_count) {
			fc->bad = true;
			continue;
		}
		fc->distinct += !fc->named[f];
		fc->named[f] = 1;
	}
	return 0;
}

/* With no connection open, no frame may be held for RX, and the kept frames must be exactly the
 * ones the log names (plus an open packing frame; none at all in fdatasync mode). */
static int check_frames(struct wal *w)
{
	struct paste_pool_info pi;
	struct paste_stats s;
	struct frame_count fc = {0};
	struct paste_log_info li;
	bool ok;

	if (paste_stats(w->ctx, &s, sizeof(s)) || s.conns_open)
		return 0;
	if (w->sync == SYNC_PMEM) {
		paste_pool__info(w->pool, &pi, sizeof(pi));
		paste_log__info(w->log, &li, sizeof(li));
		fc.area_off = pi.frame_area_off;
		fc.frame_size = pi.frame_size;
		fc.frame_count = pi.frame_count;
		fc.named = calloc(pi.frame_count, 1);
		if (!fc.named)
			return 0;
		paste_log__iterate(w->log, li.first_seq, count_frames, &fc);
		free(fc.named);
	}
	ok = !s.frames_rx && !fc.bad &&
	     (s.frames_kept == fc.distinct ||
	      (w->copy_threshold && s.frames_kept == fc.distinct + 1));
	if (ok)
		return 0;
	fprintf(stderr,
	        "paste-wal: frame accounting at shutdown: frames_rx=%u frames_kept=%u, the log "
	        "names %u frames%s\n",
	        s.frames_rx, s.frames_kept, fc.distinct, fc.bad ? " (and refs outside)" : "");
	return 3;
}

static int check_modes(struct wal *w)
{
	if (w->sync == SYNC_FDATASYNC && !w->file.path) {
		fprintf(stderr, "paste-wal: --sync fdatasync needs --log-file PATH (see --help)\n");
		return -1;
	}
	if (w->sync == SYNC_PMEM && w->file.path) {
		fprintf(stderr, "paste-wal: --log-file is only used with --sync fdatasync\n");
		return -1;
	}
	if (w->tier.on && w->sync != SYNC_PMEM) {
		fprintf(stderr, "paste-wal: --tier-dir needs --sync pmem: the log file of --sync "
		                "fdatasync is on disk already\n");
		return -1;
	}
	if (w->tier.stop_pct >= w->tier.start_pct) {
		fprintf(stderr,
		        "paste-wal: --tier-stop (%" PRIu64 ") must be below --tier-start (%" PRIu64
		        ")\n",
		        w->tier.stop_pct, w->tier.start_pct);
		return -1;
	}
	w->prefix_len = strlen(w->prefix);
	return 0;
}

/* The event loop's hooks (daemon_loop.h): while a destage job runs, come back soon to commit it
 * (its frames are wanted); a round after replies were queued outside a round must not wait. */
static int loop_wait(void *app)
{
	struct wal *w = app;

	return w->kick ? 0 : tier_running(w) ? 1 : WAL_TICK_MS;
}

static int loop_after_poll(void *app)
{
	struct wal *w = app;

	w->kick = false;
	if (w->fatal)
		return 1;
	if (tier_poll(w)) /* a destage job freed frames */
		resume_stalled(w);
	return 0;
}

static int loop_tick(void *app)
{
	struct wal *w = app;

	retain_apply(w);
	if (wal_multi_apply(w)) /* --queues: DELETEs of the other workers */
		return 1;
	resume_stalled(w);
	return 0;
}

static void loop_stats(void *app)
{
	print_stats(app);
}

/* The event loop: rounds until a signal or a fatal error. */
static int serve_loop(struct wal *w)
{
	w->loop.name = "paste-wal";
	w->loop.ctx = w->ctx;
	w->loop.tick_ms = WAL_TICK_MS;
	w->loop.app = w;
	w->loop.poll_timeout = loop_wait;
	w->loop.after_poll = loop_after_poll;
	w->loop.tick = loop_tick;
	w->loop.print_stats = loop_stats;
	w->loop.timed_out = wal_timed_out;
	return daemon_loop_run(&w->loop) || w->fatal ? 1 : 0;
}

static int start(struct wal *w, struct daemon_opts *d)
{
	struct paste_conn_ops ops = {
	    .sz = sizeof(ops),
	    .on_accept = on_accept,
	    .on_data = on_data,
	    .on_close = on_close,
	};
	int err;

	d->paste.copy_threshold = (uint32_t)w->copy_threshold;
	w->transport = d->paste.transport;
	w->no_persist = d->paste.no_persist;
	err = paste_open(&w->ctx, &d->paste);
	if (err) {
		fprintf(stderr, "paste-wal: cannot start: %s\n", paste_last_error());
		return err;
	}
	daemon_sig_ctx = w->ctx;
	w->pool = paste_pool(w->ctx);
	w->loop.ctx = w->ctx; /* daemon_pool_low() may run before the loop does */
	if (d->queues && (err = wal_multi_open(w, d->queues, (unsigned)d->worker,
	                                       d->paste.pool_path ? d->paste.pool_path
	                                                          : PASTE_POOL_DEFAULT_PATH)))
		return err;
	if (w->sync == SYNC_PMEM) {
		err = open_pool_log(w);
		if (err) {
			fprintf(stderr, "paste-wal: cannot open the log '%s': %s\n", w->log_name,
			        paste_last_error());
			return err;
		}
		err = wal_multi_tier_dir(w); /* --queues: DIR/wK */
		if (!err)
			err = tier_open(w);
		if (err)
			return err;
		wal_multi_tier_bounds(w, w->tier.first, w->tier.end);
	} else {
		err = wf_open(w);
		if (err)
			return err;
	}
	err = paste_listen(w->ctx, d->port, &ops, w);
	if (err) {
		fprintf(stderr, "paste-wal: %s\n", paste_last_error());
		return err;
	}
	err = wal_multi_apply(w); /* --queues: DELETEs made while this worker was down */
	if (err)
		return err;
	wal_multi_publish(w); /* what recovery found: the other workers may read it */
	return paste_set_round_hook(w->ctx, round_hook, w);
}

int main(int argc, char **argv)
{
	static const struct option extra[] = {
	    {"path-prefix", required_argument, NULL, OPT_PATH_PREFIX},
	    {"max-body", required_argument, NULL, OPT_MAX_BODY},
	    {"log", required_argument, NULL, OPT_LOG_NAME},
	    {"log-region", required_argument, NULL, OPT_LOG_REGION},
	    {"reserve-frames", required_argument, NULL, OPT_RESERVE},
	    {"sync", required_argument, NULL, OPT_SYNC},
	    {"log-file", required_argument, NULL, OPT_LOG_FILE},
	    {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
	    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	    {"copy-threshold", required_argument, NULL, OPT_COPY_THRESHOLD},
	    {"tier-dir", required_argument, NULL, OPT_TIER_DIR},
	    {"tier-size", required_argument, NULL, OPT_TIER_SIZE},
	    {"tier-start", required_argument, NULL, OPT_TIER_START},
	    {"tier-stop", required_argument, NULL, OPT_TIER_STOP},
	    {"retain-bytes", required_argument, NULL, OPT_RETAIN_BYTES},
	    {"retain-secs", required_argument, NULL, OPT_RETAIN_SECS},
	    {"delete-wait", required_argument, NULL, OPT_DELETE_WAIT},
	    {NULL, 0, NULL, 0},
	};
	static struct wal w = {
	    .prefix = "/log",
	    .log_name = "wal.log",
	    .max_body = 1u << 20,
	    .reserve = 2048,
	    .loop = {.request_timeout_ms = 10000, .idle_timeout_ms = 120000},
	    .delete_wait_s = WAL_TRUNC_WAIT_S,
	    .file = {.fd = -1},
	    .tier = {.dirfd = -1, .size = TIER_DEFAULT_SIZE, .start_pct = 50, .stop_pct = 25},
	};
	struct daemon_opts d;
	int r;

	daemon_supports_workers = true;
	r = daemon_parse(argc, argv, &d, extra, extra_opt, &w, usage);
	if (r)
		return r == 1 ? 0 : 2;
	if (check_modes(&w))
		return 2;
	if (daemon_workers_supervise(&d, "paste-wal", &r))
		return r;
	paste_set_print(NULL, NULL, d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	daemon_install_signals();
	if (start(&w, &d)) {
		tier_close(&w);
		wal_multi_close(&w);
		daemon_sig_ctx = NULL;
		paste_close(&w.ctx);
		return 1;
	}
	retain_start(&w); /* --retain-secs: what recovery found counts as appended now */
	print_ready(&w, &d);
	daemon_workers_ready();
	r = serve_loop(&w);
	tier_close(&w); /* commits a job in flight: its frames are free before the check */
	print_stats(&w);
	if (r == 0)
		r = check_frames(&w);
	daemon_sig_ctx = NULL;
	wal_multi_close(&w);
	paste_close(&w.ctx);
	if (w.file.fd >= 0) {
		if (!w.fatal && !w.no_persist && fdatasync(w.file.fd))
			fprintf(stderr, "paste-wal: final fdatasync failed: %s\n", strerror(errno));
		close(w.file.fd);
	}
	free(w.file.idx);
	free(w.file.path_buf);
	free(w.retain.marks);
	return r;
}
