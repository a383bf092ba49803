/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal.h - what the parts of paste-wal share: its limits, the server and connection state, and the
 * interfaces between the parts:
 *
 *   paste-wal.c   options, startup, statistics, the event loop, main
 *   wal_conn.c    connections: requests, bodies, admission, callbacks, the round hook
 *   wal_reply.c   replies: the reply queue, routes, record replies under backpressure
 *   wal_store.c   the store interface over the pool log (--sync pmem) and the log file
 *   wal_file.c    the fdatasync log file (--sync fdatasync)
 *   wal_tier.c    the capacity tier: oldest pool records destaged to segment files
 *   wal_multi.c   --queues N: one sequence space over the workers' logs, reads of the others'
 *   wal_tier_peer.c  --queues N with a tier: reads of records another worker destaged
 *   wal_file_peer.c  --queues N with --sync fdatasync: reads of another worker's log file
 *
 * One thread owns all of it (the library's rule), except the tier's destage thread, which only
 * writes and syncs segment files from a job the event loop hands it (wal_tier.c says how).
 */
#ifndef PASTE_WAL_H
#define PASTE_WAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <paste/paste.h>

#include "daemon_loop.h"
#include "daemon_opts.h"
#include "daemon_replyq.h"
#include "http.h"
#include "wal_seg.h"

/* ---- limits -------------------------------------------------------------------------------- */

#define WAL_OUT_HIGH      4096u         /* stop taking requests while this much is unsent */
#define WAL_WAIT_WHOLE    (32u << 10)   /* bodies up to this wait until pending whole */
#define WAL_DISCARD_MAX   (64ull << 20) /* refused bodies up to this are read and dropped */
#define WAL_RANGE_DEFAULT 100u
#define WAL_RANGE_MAX     10000u
#define WAL_SCRATCH       (64u << 10) /* file reads for GET in fdatasync mode */
#define WAL_TICK_MS       250
#define WAL_MAX_QUEUES    64 /* --queues: DAEMON_MAX_WORKERS */
#define WAL_TRUNC_WAIT_S  10 /* --queues: --delete-wait default */

enum wal_sync { SYNC_PMEM, SYNC_FDATASYNC };

/* ---- the fdatasync log file -------------------------------------------------------------- */

/*
 * File layout: [super, 4 KiB: magic, version, two head slots][records from WF_DATA_OFF]. A record
 * is struct wf_rec, the payload, then CRC32C(header + payload). The current head slot (valid crc,
 * higher gen) names the first live record (truncation moves it); recovery walks the records from
 * there and cuts the file at the first one that does not check out (a torn tail).
 */
struct wf_index {
	uint64_t off;
	uint32_t len;
};

struct wal_file {
	int fd;
	const char *path;  /* this process's file (with --queues: base.wK) */
	const char *given; /* --log-file as given */
	char *path_buf;    /* --queues: path, allocated */
	uint64_t end;      /* where the next record goes */
	uint64_t first_seq, next_seq, bytes;
	struct wf_index *idx; /* idx[seq - base], base <= first_seq */
	uint64_t base, cap;
	uint64_t gen;
	unsigned slot;
	bool dirty;         /* written since the last fdatasync */
	int err;            /* a failed fdatasync (sticky: what it should have synced is lost) */
	uint64_t punch_end; /* after the next sync: punch [WF_DATA_OFF, punch_end) */
	uint64_t recovered, torn_bytes;
};

/* ---- the capacity tier (wal_tier.c) ------------------------------------------------------ */

#define TIER_SEG_MAX      (64ull << 20) /* a segment file grows to about this */
#define TIER_JOB_RECORDS  8192u         /* at most this many records per destage job */
#define TIER_JOB_BYTES    (8ull << 20)  /* and at most this much payload */
#define TIER_DEFAULT_SIZE (1ull << 30)

/* One segment file: records [first, end) of the log, in order, @size bytes. */
struct tier_seg {
	uint64_t first, end, size;
	int fd;
};

/* Where a tier record is: segment number @seg (segs[seg - seg_base]), file offset, payload. */
struct tier_ix {
	uint64_t off;
	uint32_t len;
	uint32_t seg;
};

/* A destage job: records [first, end) go to @fd at @off; the thread sets @err and @done. */
struct tier_job {
	uint64_t first, end, off, bytes, payload;
	int fd;
	bool new_file;          /* the segment was created for this job: sync the directory too */
	uint32_t *nrefs;        /* per record */
	struct paste_ref *refs; /* every record's references, in order */
	struct iovec *iov;      /* the thread's: iov_cap entries, then headers and CRCs */
	size_t rec_cap, ref_cap, iov_cap;
	int err;     /* the thread's result */
	uint64_t ns; /* how long the thread took */
};

struct wal_tier {
	const char *dir;  /* this process's segment directory (with --queues: base/wK) */
	const char *base; /* --tier-dir as given */
	char *dir_buf;    /* --queues: dir, allocated */
	uint64_t size;    /* --tier-size: segment bytes at most */
	uint64_t start_pct, stop_pct; /* destage from start_pct pool fill down to stop_pct */
	bool on;                      /* --tier-dir given */
	bool destaging;               /* between the start and the stop threshold */
	bool failed; /* a segment write or sync failed: no more destaging (message printed) */
	bool full;   /* the last job did not fit in --tier-size */
	int dirfd;
	volatile uint64_t *head; /* persistent (pool region): first tier record, 0 = tier empty */
	uint64_t first, end;     /* tier records [first, end); end is the pool log's first */
	uint64_t bytes;          /* segment file bytes (what --tier-size bounds) */
	uint64_t payload;        /* payload bytes of the live tier records */
	struct tier_ix *ix;      /* ix[seq - ix_base] for first <= seq < end */
	uint64_t ix_base, ix_cap;
	struct tier_seg *segs; /* segs[i] is segment number seg_base + i; the last takes appends */
	uint32_t nsegs, seg_base;
	/* the destage thread: owns @job while @busy; hands it back with @done */
	pthread_t thread;
	bool thread_up;
	int kill_step;       /* test hook (PASTE_WAL_TIER_KILL_AT, wal_tier.c): 0 = off */
	unsigned kill_count; /* kill when the step is reached this many times */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool busy, done, quit;
	struct tier_job job;
	struct {
		uint64_t destaged, destaged_bytes, jobs, reads, read_bytes, segs_deleted;
		uint64_t recovered, trimmed, job_ns_max, job_ns_total;
	} n;
};

/* A read-only view of another worker's segment files (wal_tier_peer.c: the segment read last)
 * or log file (wal_file_peer.c; dirfd unused): the offsets of its records first.. as far as they
 * were walked. */
struct tier_peer {
	int dirfd, fd;
	uint64_t first;     /* the open segment's first record */
	uint64_t *off;      /* off[i]: record first + i */
	uint64_t noff, cap; /* known offsets, room */
};

/* ---- retention (wal_store.c) -------------------------------------------------------------- */

/* Records from @seq on were appended at or after @t (seconds, CLOCK_REALTIME): one mark per
 * second with appends; the records a restart recovered are marked with the startup time. */
struct retain_mark {
	uint64_t seq;
	time_t t;
};

struct wal_retain {
	uint64_t bytes, secs; /* --retain-bytes, --retain-secs (0: off) */
	struct retain_mark *marks;
	size_t nmarks, cap, head;            /* live marks: [head, nmarks) */
	time_t printed;                      /* the last line on stderr */
	bool started;                        /* retain_start() ran: marks get appended seqs */
	uint64_t quiet_records, quiet_bytes; /* dropped since */
	struct {
		uint64_t records, bytes, truncations;
	} n;
};

/* ---- server state ------------------------------------------------------------------------ */

struct wconn;
struct wal_multi;

struct wal {
	struct paste_ctx *ctx;
	struct paste_pool *pool;
	struct paste_log *log; /* SYNC_PMEM */
	struct wal_file file;  /* SYNC_FDATASYNC */
	struct wal_tier tier;  /* SYNC_PMEM with --tier-dir */
	struct wal_retain retain;
	struct wal_multi *multi; /* --queues N (wal_multi.c), else NULL */
	enum wal_sync sync;
	enum paste_transport transport;
	const char *prefix;
	size_t prefix_len;
	const char *log_name;
	uint64_t max_body, log_region, reserve, copy_threshold;
	uint64_t delete_wait_s; /* --queues: --delete-wait */
	bool no_persist;
	bool full; /* fewer than @reserve frames free (the fill ring is full before this falls) */
	struct daemon_loop loop; /* the event loop and the connection registry (daemon_loop.h) */
	unsigned stalled;        /* connections waiting for the tier to free frames */
	bool kick; /* the next paste_poll() must not wait (replies queued outside a round) */
	int fatal;
	char date[40];
	size_t date_len;
	time_t date_t;
	uint64_t round_appends; /* records appended in the current round */
	struct {
		uint64_t appended, appended_bytes, batches, batch_records, max_batch;
		uint64_t requests, r2xx, r4xx, r5xx, malformed, refused_full, refused_log;
		uint64_t too_large, incomplete, fsyncs, truncations, stalls;
	} n;
	struct paste_ref refs[PASTE_LOG_MAX_REFS]; /* a whole body's references */
	uint8_t scratch[WAL_SCRATCH];
};

enum wstate { W_HEAD, W_BODY, W_CLOSING, W_CLOSED };
enum route { R_ERROR, R_APPEND, R_GET_ONE, R_GET_RANGE, R_DELETE, R_STATS };
enum stop { S_MORE, S_NEED_DATA, S_BLOCKED, S_GONE };

/* A record reply in progress: resumed by (seq, off), never by pointer (truncation may free it). */
struct job {
	bool active, range;
	bool trunc;   /* --queues: a DELETE waiting for every worker to truncate up to @end, until
	                 @off (CLOCK_MONOTONIC ns) */
	uint8_t part; /* 0: range line "seq len\n", 1: payload, 2: after the payload */
	uint64_t seq, end;
	uint64_t off, len;
	uint32_t ref_idx; /* pmem: the reference holding byte @ref_base of the record */
	uint64_t ref_base;
};

struct wconn {
	struct wal *w;
	struct paste_conn *c;
	struct daemon_conn dc; /* in w->loop.conns: timeouts */
	enum wstate st;
	enum route route;
	int status; /* body done: answer this error status instead of running the route */
	bool store; /* W_BODY: keep the body (else read and drop it) */
	bool keep_alive;
	bool head_only; /* HEAD: headers without the body */
	bool stalled;   /* a body waits for the tier to free pool frames (see tier_stall) */
	uint64_t need, got;
	unsigned nrefs; /* pieces kept so far of a large body */
	struct paste_ref *refs;
	struct job job;
	uint64_t range_lim[WAL_MAX_QUEUES]; /* --queues: each worker's next when the range began */
	struct daemon_replyq q;             /* replies not yet taken by the send buffer, in order */
	bool oom; /* a reply could not be queued: the connection is reset */
	struct http_req req;
	struct http_head head;
};

static inline struct wconn *wal_conn_of(struct daemon_conn *dc)
{
	return (struct wconn *)((char *)dc - offsetof(struct wconn, dc));
}

/* ---- interfaces ---------------------------------------------------------------------------- */

static inline const char *transport_name(const struct wal *w)
{
	return daemon_transport_name(w->transport);
}

/* wal_file.c */
int write_all(int fd, struct iovec *iov, int n, uint64_t off);
int wf_open(struct wal *w);
int wf_append(struct wal *w, const struct paste_ref *refs, unsigned n, uint64_t len, uint64_t *seq);
int wf_truncate(struct wal_file *f, uint64_t upto);
int wf_sync(struct wal *w);
uint64_t wf_first_off(const struct wal_file *f);

/* wal_store.c: the log, whichever store (and tier) holds it */
struct store_info {
	uint64_t first, next, records, bytes;
};
void store_info(struct wal *w, struct store_info *si);
int store_len(struct wal *w, uint64_t seq, uint64_t *len);
ssize_t store_chunk(struct wal *w, struct job *j, const uint8_t **p, size_t max);
int store_append(struct wal *w, const struct paste_ref *refs, unsigned n, uint64_t len,
                 uint64_t *seq);
int store_truncate(struct wal *w, uint64_t upto);
void store_local_info(struct wal *w, struct store_info *si);
int store_local_len(struct wal *w, uint64_t seq, uint64_t *len);
void retain_start(struct wal *w);
void retain_mark(struct wal *w, uint64_t seq);
void retain_apply(struct wal *w);

/* wal_tier.c */
int tier_open(struct wal *w);
void tier_close(struct wal *w);
bool tier_poll(struct wal *w);
bool tier_can_take(struct wal *w);
bool tier_running(struct wal *w);
bool tier_holds(const struct wal *w, uint64_t seq);
uint64_t tier_len(const struct wal *w, uint64_t seq);
ssize_t tier_read(struct wal *w, uint64_t seq, uint64_t off, void *buf, size_t n);
int tier_truncate(struct wal *w, uint64_t upto);

/* wal_tier_peer.c */
int tier_peer_read(struct tier_peer *p, const char *dir, uint64_t seq, void *buf, size_t cap,
                   uint32_t *len);
void tier_peer_close(struct tier_peer *p);
int peer_index_start(struct tier_peer *p, uint64_t first, uint64_t off);
int peer_index_read(struct tier_peer *p, uint64_t seq, void *buf, size_t cap, uint32_t *len);

/* wal_file_peer.c */
int file_peer_read(struct tier_peer *p, const char *path, uint64_t first, uint64_t first_off,
                   uint64_t seq, void *buf, size_t cap, uint32_t *len);

/* wal_reply.c */
bool out_flush(struct wconn *wc);
void out_pin(struct wconn *wc);
void out_printf(struct wconn *wc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void out_put(struct wconn *wc, const void *src, size_t n);
char *put_str(char *p, const char *src, size_t n);
void reply_head(struct wal *w, struct wconn *wc, int status, const char *ctype, uint64_t clen,
                const char *extra);
void reply(struct wal *w, struct wconn *wc, int status, const char *ctype, const char *extra,
           const char *body);
void reply_error(struct wal *w, struct wconn *wc, int status, const char *detail);
enum route route_of(struct wal *w, const struct http_req *r, int *status);
void do_stats(struct wal *w, struct wconn *wc);
void do_get_one(struct wal *w, struct wconn *wc);
void do_get_range(struct wal *w, struct wconn *wc);
void do_delete(struct wal *w, struct wconn *wc);
enum stop job_run(struct wal *w, struct wconn *wc);

/* wal_conn.c */
int on_accept(struct paste_conn *c, void *user);
void on_data(struct paste_conn *c, void *user);
void on_close(struct paste_conn *c, int err, void *user);
int round_hook(struct paste_ctx *ctx, void *arg);
/* daemon_loop's verdict hook: a head too slow (408), or no progress for too long (reset). */
bool wal_timed_out(struct daemon_conn *dc, enum daemon_timeout why, void *app);
void resume_stalled(struct wal *w);
enum stop serve(struct wal *w, struct wconn *wc);

/* wal_multi.c */
int wal_multi_open(struct wal *w, unsigned queues, unsigned worker, const char *path);
void wal_multi_close(struct wal *w);
void wal_multi_publish(struct wal *w);
int wal_multi_apply(struct wal *w);
int wal_multi_truncate(struct wal *w, uint64_t g);
int wal_multi_retain(struct wal *w, uint64_t upto);
uint64_t wal_multi_share(const struct wal *w, uint64_t bytes);
bool wal_multi_truncated(struct wal *w, uint64_t g, unsigned *late);
void wal_multi_info(struct wal *w, struct store_info *si);
uint64_t wal_gseq(const struct wal *w, unsigned k, uint64_t l);
uint64_t wal_multi_next(struct wal *w, uint64_t from, const uint64_t *lim);
void wal_multi_snap(struct wal *w, uint64_t *lim);
uint64_t wal_multi_stable(struct wal *w);
bool wal_multi_mine(const struct wal *w, uint64_t g);
uint64_t wal_multi_own(const struct wal *w, uint64_t l);
uint64_t wal_multi_local(const struct wal *w, uint64_t g);
int wal_multi_len(struct wal *w, uint64_t g, uint64_t *len);
ssize_t wal_multi_chunk(struct wal *w, uint64_t g, uint64_t off, const uint8_t **p, size_t max);
size_t wal_multi_stats(struct wal *w, char *buf, size_t size);
int wal_multi_tier_dir(struct wal *w);
void wal_multi_tier_bounds(struct wal *w, uint64_t first, uint64_t end);
void wal_multi_pool_first(struct wal *w);
bool wal_multi_hook(const struct wal *w, unsigned worker);

/* paste-wal.c */
void stats_json(struct wal *w, char *buf, size_t size);
void print_stats(struct wal *w);

#endif /* PASTE_WAL_H */
