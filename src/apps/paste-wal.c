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
 *    paste_conn__keep() flushes and pins those frames, paste_log__append() records references to
 *    them. No copy of the payload on the paste transport.
 *  - fdatasync (--sync fdatasync --log-file PATH): the body is written to an ordinary file (a
 *    record header, the bytes, a CRC32C trailer) and the file is fdatasync()ed once per round from
 *    the round hook: the path users without NVMM have.
 * Either way the library sends nothing a callback queued before the round's fence (pmem) or round
 * hook (fdatasync) has run, so a 201 never acknowledges a record that is not durable, and a round
 * of many requests costs one fence (group commit).
 *
 * Connections are state machines (struct wconn): a request head is copied (bounded, http.c) and
 * consumed as it arrives; a body is kept in place whole when it is small, piece by piece as it
 * arrives when it is larger than the receive window can hold; replies go through a small output
 * buffer and, for records, are sent straight from the pool (or read from the file) under send-
 * buffer backpressure, resumed by sequence number and offset in the next on_data().
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
#include "http.h"

/* ---- limits -------------------------------------------------------------------------------- */

#define WAL_OUT_CAP       8192u         /* per-connection reply buffer */
#define WAL_OUT_HIGH      4096u         /* stop taking requests while this much is unsent */
#define WAL_WAIT_WHOLE    (32u << 10)   /* bodies up to this wait until pending whole */
#define WAL_DISCARD_MAX   (64ull << 20) /* refused bodies up to this are read and dropped */
#define WAL_RANGE_DEFAULT 100u
#define WAL_RANGE_MAX     10000u
#define WAL_SCRATCH       (64u << 10) /* file reads for GET in fdatasync mode */
#define WAL_TICK_MS       250
#define WAL_FULL_CHECK_NS 1000000ull /* refresh the pool-full flag at most every 1 ms */

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
};

enum wal_sync { SYNC_PMEM, SYNC_FDATASYNC };

/* ---- the fdatasync log file -------------------------------------------------------------- */

/*
 * File layout: [super, 4 KiB: magic, version, two head slots][records from WF_DATA_OFF]. A record
 * is struct wf_rec, the payload, then CRC32C(header + payload). The current head slot (valid crc,
 * higher gen) names the first live record (truncation moves it); recovery walks the records from
 * there and cuts the file at the first one that does not check out (a torn tail).
 */
#define WF_MAGIC     "PWALLOG1"
#define WF_VERSION   1u
#define WF_DATA_OFF  4096u
#define WF_SLOT0_OFF 64u
#define WF_REC_MAGIC 0x31525750u /* "PWR1" */
#define WF_REC_MAX   (1u << 30)

struct wf_super {
	char magic[8];
	uint32_t version;
	uint32_t data_off;
	uint32_t crc; /* CRC32C of the fields above */
	uint32_t pad;
};

struct wf_slot {
	uint64_t gen;
	uint64_t first_seq;
	uint64_t start_off; /* file offset of record first_seq (or the end when empty) */
	uint32_t crc;       /* CRC32C of the fields above */
	uint32_t pad;
};

struct wf_rec {
	uint32_t magic;
	uint32_t len;
	uint64_t seq;
};

struct wf_index {
	uint64_t off;
	uint32_t len;
};

struct wal_file {
	int fd;
	const char *path;
	uint64_t end; /* where the next record goes */
	uint64_t first_seq, next_seq, bytes;
	struct wf_index *idx; /* idx[seq - base], base <= first_seq */
	uint64_t base, cap;
	uint64_t gen;
	unsigned slot;
	bool dirty;         /* written since the last fdatasync */
	uint64_t punch_end; /* after the next sync: punch [WF_DATA_OFF, punch_end) */
	uint64_t recovered, torn_bytes;
};

/* ---- server state ------------------------------------------------------------------------ */

struct wconn;

struct wal {
	struct paste_ctx *ctx;
	struct paste_pool *pool;
	struct paste_log *log; /* SYNC_PMEM */
	struct wal_file file;  /* SYNC_FDATASYNC */
	enum wal_sync sync;
	enum paste_transport transport;
	const char *prefix;
	size_t prefix_len;
	const char *log_name;
	uint64_t max_body, log_region, reserve, copy_threshold;
	uint64_t header_timeout_ms, idle_timeout_ms;
	bool no_persist;
	bool full; /* fewer than @reserve frames free (the fill ring is full before this falls) */
	uint64_t full_checked_ns;
	struct wconn *conns;
	int fatal;
	char date[40];
	size_t date_len;
	time_t date_t;
	uint64_t round_appends; /* records appended in the current round */
	struct {
		uint64_t appended, appended_bytes, batches, batch_records, max_batch;
		uint64_t requests, r2xx, r4xx, r5xx, malformed, refused_full, refused_log;
		uint64_t too_large, timeouts, incomplete, fsyncs, truncations;
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
	uint8_t part; /* 0: range line "seq len\n", 1: payload, 2: after the payload */
	uint64_t seq, end;
	uint64_t off, len;
	uint32_t ref_idx; /* pmem: the reference holding byte @ref_base of the record */
	uint64_t ref_base;
};

struct wconn {
	struct wal *w;
	struct paste_conn *c;
	struct wconn *prev, *next;
	enum wstate st;
	enum route route;
	int status; /* body done: answer this error status instead of running the route */
	bool store; /* W_BODY: keep the body (else read and drop it) */
	bool keep_alive;
	bool head_only; /* HEAD: headers without the body */
	uint64_t need, got;
	unsigned nrefs; /* pieces kept so far of a large body */
	struct paste_ref *refs;
	uint64_t last_ns, head_ns;
	struct job job;
	size_t out_len;
	uint8_t out[WAL_OUT_CAP];
	struct http_req req;
	struct http_head head;
};

/* ---- small utilities --------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *transport_name(const struct wal *w)
{
	return w->transport == PASTE_TRANSPORT_KERNEL ? "kernel" : "paste";
}

/* ---- the fdatasync log file: recovery ---------------------------------------------------- */

static int wf_fail(struct wal_file *f, const char *what)
{
	int err = errno ? -errno : -EIO;

	fprintf(stderr, "paste-wal: log file %s: %s: %s\n", f->path, what, strerror(-err));
	return err;
}

static int wf_index_push(struct wal_file *f, uint64_t off, uint32_t len)
{
	uint64_t i = f->next_seq - f->base;

	if (i == f->cap) {
		uint64_t cap = f->cap ? f->cap * 2 : 1024;
		struct wf_index *n = realloc(f->idx, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		f->idx = n;
		f->cap = cap;
	}
	f->idx[i] = (struct wf_index){off, len};
	f->next_seq++;
	f->bytes += len;
	return 0;
}

static uint32_t wf_slot_crc(const struct wf_slot *s)
{
	return paste_crc32c(0, s, offsetof(struct wf_slot, crc));
}

/* Write head slot (the one not current) naming @first/@start_off; synced with the next round. */
static int wf_write_head(struct wal_file *f, uint64_t first, uint64_t start_off)
{
	struct wf_slot s = {.gen = f->gen + 1, .first_seq = first, .start_off = start_off};
	unsigned slot = f->gen ? f->slot ^ 1 : 0;

	s.crc = wf_slot_crc(&s);
	if (pwrite(f->fd, &s, sizeof(s), WF_SLOT0_OFF * (1 + slot)) !=
	    (ssize_t)sizeof(s)) /* 64, 128 */
		return wf_fail(f, "writing the head");
	f->gen = s.gen;
	f->slot = slot;
	f->dirty = true;
	return 0;
}

static int wf_create(struct wal_file *f)
{
	struct wf_super s = {.version = WF_VERSION, .data_off = WF_DATA_OFF};
	int dfd;
	char *dir, *slash;

	memcpy(s.magic, WF_MAGIC, 8);
	s.crc = paste_crc32c(0, &s, offsetof(struct wf_super, crc));
	if (ftruncate(f->fd, WF_DATA_OFF) || pwrite(f->fd, &s, sizeof(s), 0) != (ssize_t)sizeof(s))
		return wf_fail(f, "creating");
	f->gen = 0;
	if (wf_write_head(f, 1, WF_DATA_OFF) || fdatasync(f->fd))
		return wf_fail(f, "creating");
	/* The new file's name must be durable too. */
	dir = strdup(f->path);
	slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir);
	f->first_seq = f->next_seq = f->base = 1;
	f->end = WF_DATA_OFF;
	f->dirty = false;
	return 0;
}

/* Read the super and pick the current head slot. */
static int wf_load_head(struct wal_file *f, uint64_t size)
{
	struct wf_super s;
	struct wf_slot sl[2];
	int cur = -1;

	if (pread(f->fd, &s, sizeof(s), 0) != (ssize_t)sizeof(s) || memcmp(s.magic, WF_MAGIC, 8) ||
	    s.crc != paste_crc32c(0, &s, offsetof(struct wf_super, crc)) ||
	    s.version != WF_VERSION || s.data_off != WF_DATA_OFF ||
	    pread(f->fd, &sl[0], sizeof(sl[0]), WF_SLOT0_OFF) != (ssize_t)sizeof(sl[0]) ||
	    pread(f->fd, &sl[1], sizeof(sl[1]), 2 * WF_SLOT0_OFF) != (ssize_t)sizeof(sl[1])) {
		fprintf(stderr,
		        "paste-wal: %s is not a paste-wal log file (bad magic, version or "
		        "checksum): give another --log-file, or move it away to start a new log\n",
		        f->path);
		return -EBADMSG;
	}
	for (int i = 0; i < 2; i++)
		if (sl[i].gen && sl[i].crc == wf_slot_crc(&sl[i]) && sl[i].first_seq &&
		    sl[i].start_off >= WF_DATA_OFF && sl[i].start_off <= size &&
		    (cur < 0 || sl[i].gen > sl[cur].gen))
			cur = i;
	if (cur < 0) {
		fprintf(stderr, "paste-wal: %s: no valid head slot: the file is corrupt\n",
		        f->path);
		return -EBADMSG;
	}
	f->gen = sl[cur].gen;
	f->slot = (unsigned)cur;
	f->first_seq = f->next_seq = f->base = sl[cur].first_seq;
	f->end = sl[cur].start_off;
	return 0;
}

/* Check the record at f->end; on success index it and advance. @return 1 valid, 0 not. */
static int wf_check_one(struct wal_file *f, uint64_t size, uint8_t *buf, size_t bufsz)
{
	struct wf_rec h;
	uint32_t crc, want;
	uint64_t off = f->end, left;

	if (size - off < sizeof(h) + 4 ||
	    pread(f->fd, &h, sizeof(h), (off_t)off) != (ssize_t)sizeof(h) ||
	    h.magic != WF_REC_MAGIC || h.seq != f->next_seq || h.len == 0 || h.len > WF_REC_MAX ||
	    size - off - sizeof(h) - 4 < h.len)
		return 0;
	crc = paste_crc32c(0, &h, sizeof(h));
	off += sizeof(h);
	for (left = h.len; left;) {
		size_t n = left < bufsz ? (size_t)left : bufsz;

		if (pread(f->fd, buf, n, (off_t)off) != (ssize_t)n)
			return 0;
		crc = paste_crc32c(crc, buf, n);
		off += n;
		left -= n;
	}
	if (pread(f->fd, &want, 4, (off_t)off) != 4 || want != crc)
		return 0;
	if (wf_index_push(f, f->end, h.len))
		return 0;
	f->end = off + 4;
	return 1;
}

static int wf_open(struct wal *w)
{
	struct wal_file *f = &w->file;
	struct stat st;
	int err;

	f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (f->fd < 0 || fstat(f->fd, &st))
		return wf_fail(f, "cannot open");
	if (st.st_size == 0)
		return wf_create(f);
	err = wf_load_head(f, (uint64_t)st.st_size);
	if (err)
		return err;
	while (wf_check_one(f, (uint64_t)st.st_size, w->scratch, sizeof(w->scratch)))
		f->recovered++;
	if (f->end < (uint64_t)st.st_size) {
		f->torn_bytes = (uint64_t)st.st_size - f->end;
		fprintf(stderr,
		        "paste-wal: log file %s: cutting a torn tail of %" PRIu64 " bytes after "
		        "record %" PRIu64 "\n",
		        f->path, f->torn_bytes, f->next_seq - 1);
		if (ftruncate(f->fd, (off_t)f->end) || fdatasync(f->fd))
			return wf_fail(f, "cutting the torn tail");
	}
	return 0;
}

/* ---- the fdatasync log file: append, truncate, read, sync -------------------------------- */

/* pwritev all of @iov[0..@n) at @off, in IOV_MAX batches, across short writes. */
static int write_all(int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwritev(fd, iov, n < IOV_MAX ? n : IOV_MAX, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (uint64_t)w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int wf_append(struct wal *w, const struct paste_ref *refs, unsigned n, uint64_t len,
                     uint64_t *seq)
{
	struct wal_file *f = &w->file;
	struct wf_rec h = {.magic = WF_REC_MAGIC, .len = (uint32_t)len, .seq = f->next_seq};
	struct iovec iov[PASTE_LOG_MAX_REFS + 2];
	uint32_t crc = paste_crc32c(0, &h, sizeof(h));
	int err;

	iov[0] = (struct iovec){&h, sizeof(h)};
	for (unsigned i = 0; i < n; i++) {
		void *p = paste_pool__ref_ptr(w->pool, &refs[i]);

		crc = paste_crc32c(crc, p, refs[i].len);
		iov[i + 1] = (struct iovec){p, refs[i].len};
	}
	iov[n + 1] = (struct iovec){&crc, sizeof(crc)};
	err = write_all(f->fd, iov, (int)n + 2, f->end);
	if (!err)
		err = wf_index_push(f, f->end, (uint32_t)len);
	if (err) {
		if (ftruncate(f->fd, (off_t)f->end)) /* drop what was half written */
			err = -EIO;
		fprintf(stderr, "paste-wal: log file %s: append failed: %s\n", f->path,
		        strerror(-err));
		return err == -EDQUOT ? -ENOSPC : err;
	}
	*seq = f->next_seq - 1;
	f->end += sizeof(h) + len + 4;
	f->dirty = true;
	return 0;
}

static int wf_truncate(struct wal_file *f, uint64_t upto)
{
	uint64_t last = upto < f->next_seq ? upto : f->next_seq - 1;
	uint64_t start;
	int err;

	if (upto < f->first_seq || last < f->first_seq)
		return 0;
	start = last + 1 < f->next_seq ? f->idx[last + 1 - f->base].off : f->end;
	err = wf_write_head(f, last + 1, start);
	if (err)
		return err;
	for (uint64_t s = f->first_seq; s <= last; s++)
		f->bytes -= f->idx[s - f->base].len;
	f->first_seq = last + 1;
	f->punch_end = start & ~4095ull;
	if (f->first_seq - f->base > (f->next_seq - f->base) / 2) { /* compact the index */
		memmove(f->idx, f->idx + (f->first_seq - f->base),
		        (f->next_seq - f->first_seq) * sizeof(*f->idx));
		f->base = f->first_seq;
	}
	return 0;
}

/* The round's fdatasync; then give the space of truncated records back to the file system. */
static int wf_sync(struct wal *w)
{
	struct wal_file *f = &w->file;

	if (!f->dirty)
		return 0;
	f->dirty = false;
	if (!w->no_persist) {
		if (fdatasync(f->fd))
			return -errno;
		w->n.fsyncs++;
	}
	if (f->punch_end > WF_DATA_OFF) {
		fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, WF_DATA_OFF,
		          (off_t)(f->punch_end - WF_DATA_OFF)); /* best effort */
		f->punch_end = 0;
	}
	return 0;
}

/* ---- the store: pool log or file, one interface ------------------------------------------ */

struct store_info {
	uint64_t first, next, records, bytes;
};

static void store_info(struct wal *w, struct store_info *si)
{
	if (w->sync == SYNC_PMEM) {
		struct paste_log_info li;

		paste_log__info(w->log, &li);
		*si = (struct store_info){li.first_seq, li.next_seq, li.records, li.bytes};
	} else {
		struct wal_file *f = &w->file;

		*si = (struct store_info){f->first_seq, f->next_seq, f->next_seq - f->first_seq,
		                          f->bytes};
	}
}

/* Payload length of record @seq. @return 0 or -ENOENT. */
static int store_len(struct wal *w, uint64_t seq, uint64_t *len)
{
	struct paste_log_rec rec;

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

/*
 * The next contiguous bytes of the job's record at j->off: a pointer into the pool (pmem), or
 * into w->scratch after a read of at most @max bytes (file). @return bytes (> 0) or -ENOENT when
 * the record is gone (truncated since the reply started).
 */
static ssize_t store_chunk(struct wal *w, struct job *j, const uint8_t **p, size_t max)
{
	struct paste_log_rec rec;
	size_t n;

	if (w->sync == SYNC_FDATASYNC) {
		struct wal_file *f = &w->file;
		ssize_t r;

		if (j->seq < f->first_seq || j->seq >= f->next_seq)
			return -ENOENT;
		n = j->len - j->off < max ? (size_t)(j->len - j->off) : max;
		if (n > sizeof(w->scratch))
			n = sizeof(w->scratch);
		r = pread(f->fd, w->scratch, n,
		          (off_t)(f->idx[j->seq - f->base].off + sizeof(struct wf_rec) + j->off));
		if (r <= 0)
			return -EIO;
		*p = w->scratch;
		return r;
	}
	if (paste_log__get(w->log, j->seq, &rec) || j->ref_idx >= rec.nrefs)
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
static int store_append(struct wal *w, const struct paste_ref *refs, unsigned n, uint64_t len,
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
			return 0;
		}
	} else {
		err = wf_append(w, refs, n, len, seq);
	}
	for (unsigned i = 0; i < n; i++)
		paste_release(w->ctx, &refs[i]);
	return err;
}

static int store_truncate(struct wal *w, uint64_t upto)
{
	if (w->sync == SYNC_PMEM)
		return paste_log__truncate(w->log, upto);
	return wf_truncate(&w->file, upto);
}

/* ---- output ------------------------------------------------------------------------------ */

/* Hand queued reply bytes to the connection. @return false when the connection is gone. */
static bool out_flush(struct wconn *wc)
{
	size_t done = 0;

	while (done < wc->out_len) {
		ssize_t s = paste_conn__send(wc->c, wc->out + done, wc->out_len - done);

		if (s < 0) {
			wc->out_len = 0;
			return false;
		}
		if (s == 0)
			break;
		done += (size_t)s;
	}
	if (done) {
		memmove(wc->out, wc->out + done, wc->out_len - done);
		wc->out_len -= done;
	}
	return true;
}

static void out_printf(struct wconn *wc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append to the reply buffer. The callers keep replies far below its free space (OUT_HIGH). */
static void out_printf(struct wconn *wc, const char *fmt, ...)
{
	size_t room = sizeof(wc->out) - wc->out_len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf((char *)wc->out + wc->out_len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		wc->out_len += (size_t)n < room ? (size_t)n : room - 1;
}

static const char *http_date(struct wal *w)
{
	time_t t = time(NULL);
	struct tm tm;

	if (t != w->date_t) {
		w->date_t = t;
		gmtime_r(&t, &tm);
		w->date_len = strftime(w->date, sizeof(w->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	}
	return w->date;
}

/* The decimal digits of @v at @p (no terminator, at most 20); @return how many. */
static size_t put_u64(char *p, uint64_t v)
{
	static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
	                               "25262728293031323334353637383940414243444546474849"
	                               "50515253545556575859606162636465666768697071727374"
	                               "75767778798081828384858687888990919293949596979899";
	char tmp[20];
	size_t i = sizeof(tmp), n;

	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;

		v /= 100;
		tmp[--i] = pairs[d + 1];
		tmp[--i] = pairs[d];
	}
	if (v >= 10) {
		tmp[--i] = pairs[v * 2 + 1];
		tmp[--i] = pairs[v * 2];
	} else {
		tmp[--i] = (char)('0' + v);
	}
	n = sizeof(tmp) - i;
	memcpy(p, tmp + i, n);
	return n;
}

static char *put_str(char *p, const char *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* Append @n bytes to the reply buffer (cut to its free space, like out_printf). */
static void out_put(struct wconn *wc, const void *src, size_t n)
{
	size_t room = sizeof(wc->out) - wc->out_len;

	if (n >= room)
		n = room ? room - 1 : 0;
	memcpy(wc->out + wc->out_len, src, n);
	wc->out_len += n;
}

static void out_str(struct wconn *wc, const char *str)
{
	out_put(wc, str, strlen(str));
}

static void out_u64(struct wconn *wc, uint64_t v)
{
	char d[20];

	out_put(wc, d, put_u64(d, v));
}

/* Status line and headers; @extra is more header lines ("Name: value\r\n"...), or "". */
static void reply_head(struct wal *w, struct wconn *wc, int status, const char *ctype,
                       uint64_t clen, const char *extra)
{
	if (status < 300)
		w->n.r2xx++;
	else if (status < 500)
		w->n.r4xx++;
	else
		w->n.r5xx++;
	/* Pieces, not printf: this runs for every reply (a 201 per append). */
	out_str(wc, "HTTP/1.1 ");
	out_u64(wc, (uint64_t)status);
	out_str(wc, " ");
	out_str(wc, http_reason(status));
	out_str(wc, "\r\nServer: paste-wal\r\nDate: ");
	http_date(w);
	out_put(wc, w->date, w->date_len);
	out_str(wc, "\r\nContent-Type: ");
	out_str(wc, ctype);
	out_str(wc, "\r\nContent-Length: ");
	out_u64(wc, clen);
	out_str(wc, "\r\n");
	out_str(wc, extra);
	out_str(wc, !wc->keep_alive      ? "Connection: close\r\n\r\n"
	            : wc->req.minor == 0 ? "Connection: keep-alive\r\n\r\n"
	                                 : "\r\n");
}

/* A complete reply with a small body (unless HEAD). */
static void reply(struct wal *w, struct wconn *wc, int status, const char *ctype, const char *extra,
                  const char *body)
{
	size_t len = strlen(body);

	reply_head(w, wc, status, ctype, len, extra);
	if (!wc->head_only)
		out_put(wc, body, len);
}

/* An error reply: "<status> <reason>: <detail>\n" as text. */
static void reply_error(struct wal *w, struct wconn *wc, int status, const char *detail)
{
	char body[256];

	snprintf(body, sizeof(body), "%d %s: %s\n", status, http_reason(status), detail);
	reply(w, wc, status, "text/plain",
	      status == 405 ? "Allow: GET, HEAD, POST, DELETE\r\n" : "", body);
}

/* ---- statistics -------------------------------------------------------------------------- */

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
	KV("timeouts", w->n.timeouts);
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
#undef KV
	return n;
}

static double avg_batch(const struct wal *w)
{
	return w->n.batches ? (double)w->n.batch_records / (double)w->n.batches : 0.0;
}

/* JSON into @buf (one object, keys in a fixed order). */
static void stats_json(struct wal *w, char *buf, size_t size)
{
	struct kv t[48];
	size_t n = stats_collect(w, t, 48), off;

	off = (size_t)snprintf(buf, size, "{\"transport\":\"%s\",\"sync\":\"%s\",\"persist\":%s",
	                       transport_name(w), w->sync == SYNC_PMEM ? "pmem" : "fdatasync",
	                       w->no_persist ? "false" : "true");
	for (size_t i = 0; i < n && off < size; i++)
		off +=
		    (size_t)snprintf(buf + off, size - off, ",\"%s\":%" PRIu64, t[i].name, t[i].v);
	if (off < size)
		snprintf(buf + off, size - off, ",\"avg_batch\":%.2f}\n", avg_batch(w));
}

/* One "stats k=v ..." line on stdout (SIGUSR1 and at exit). */
static void print_stats(struct wal *w)
{
	struct kv t[48];
	size_t n = stats_collect(w, t, 48);

	printf("stats transport=%s", transport_name(w));
	for (size_t i = 0; i < n; i++)
		printf(" %s=%" PRIu64, t[i].name, t[i].v);
	printf(" avg_batch=%.2f\n", avg_batch(w));
	fflush(stdout);
}

/* ---- routes ------------------------------------------------------------------------------ */

/* Which handler serves @r; an error status (404, 405, 501) goes to *status. */
static enum route route_of(struct wal *w, const struct http_req *r, int *status)
{
	const char *p = r->path;
	size_t n = r->path_len;
	bool get = r->method == HTTP_M_GET || r->method == HTTP_M_HEAD;

	*status = 0;
	if (r->method == HTTP_M_OTHER) {
		*status = 501;
		return R_ERROR;
	}
	if (n == 6 && !memcmp(p, "/stats", 6)) {
		*status = get ? 0 : 405;
		return get ? R_STATS : R_ERROR;
	}
	if (n < w->prefix_len || memcmp(p, w->prefix, w->prefix_len)) {
		*status = 404;
		return R_ERROR;
	}
	p += w->prefix_len;
	n -= w->prefix_len;
	if (n == 0) {
		if (r->method == HTTP_M_POST)
			return R_APPEND;
		if (get)
			return R_GET_RANGE;
		if (r->method == HTTP_M_DELETE)
			return R_DELETE;
		*status = 405;
		return R_ERROR;
	}
	if (n < 2 || p[0] != '/' || n > 20 || strspn(p + 1, "0123456789") < n - 1) {
		*status = 404;
		return R_ERROR;
	}
	*status = get ? 0 : 405;
	return get ? R_GET_ONE : R_ERROR;
}

static void do_stats(struct wal *w, struct wconn *wc)
{
	char buf[2048];

	stats_json(w, buf, sizeof(buf));
	reply(w, wc, 200, "application/json", "", buf);
}

static void do_get_one(struct wal *w, struct wconn *wc)
{
	const struct http_req *r = &wc->req;
	uint64_t seq = 0, len;
	char hdr[64];

	for (size_t i = w->prefix_len + 1; i < r->path_len; i++)
		seq =
		    seq * 10 + (uint64_t)(r->path[i] - '0'); /* <= 20 digits: checked by route_of */
	if (store_len(w, seq, &len)) {
		reply_error(w, wc, 404, "no such record (truncated, or not written yet)");
		return;
	}
	snprintf(hdr, sizeof(hdr), "X-Seq: %" PRIu64 "\r\n", seq);
	reply_head(w, wc, 200, "application/octet-stream", len, hdr);
	if (!wc->head_only)
		wc->job =
		    (struct job){.active = true, .part = 1, .seq = seq, .end = seq + 1, .len = len};
}

/* Range body: for each record "<seq> <len>\n", the bytes, "\n". */
static void do_get_range(struct wal *w, struct wconn *wc)
{
	const struct http_req *r = &wc->req;
	uint64_t from, limit = WAL_RANGE_DEFAULT, end, total = 0, len = 0;
	struct store_info si;
	char hdr[160], line[48];

	store_info(w, &si);
	from = si.first;
	if (http_query_u64(r->query, r->query_len, "from", &from) == -2 ||
	    http_query_u64(r->query, r->query_len, "limit", &limit) == -2 ||
	    limit > WAL_RANGE_MAX) {
		reply_error(w, wc, 400, "from and limit are decimal numbers, limit at most 10000");
		return;
	}
	if (from < si.first)
		from = si.first;
	end = from >= si.next ? from : (si.next - from < limit ? si.next : from + limit);
	for (uint64_t s = from; s < end; s++) {
		store_len(w, s, &len);
		total +=
		    (uint64_t)snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 "\n", s, len) +
		    len + 1;
	}
	snprintf(hdr, sizeof(hdr),
	         "X-First-Seq: %" PRIu64 "\r\nX-Next-Seq: %" PRIu64 "\r\nX-Records: %" PRIu64
	         "\r\n",
	         from, end, end - from);
	reply_head(w, wc, 200, "application/x-paste-wal-records", total, hdr);
	if (!wc->head_only && end > from)
		wc->job = (struct job){.active = true, .range = true, .seq = from, .end = end};
}

static void do_delete(struct wal *w, struct wconn *wc)
{
	const struct http_req *r = &wc->req;
	struct store_info si;
	uint64_t upto;
	char body[160];
	int err;

	if (http_query_u64(r->query, r->query_len, "upto", &upto)) {
		reply_error(w, wc, 400, "DELETE needs ?upto=<seq> (a decimal sequence number)");
		return;
	}
	err = store_truncate(w, upto);
	if (err) {
		reply_error(w, wc, 500, "truncation failed");
		return;
	}
	w->n.truncations++;
	store_info(w, &si);
	snprintf(body, sizeof(body),
	         "{\"first_seq\":%" PRIu64 ",\"next_seq\":%" PRIu64 ",\"records\":%" PRIu64 "}\n",
	         si.first, si.next, si.records);
	reply(w, wc, 200, "application/json", "", body);
}

/* ---- record replies under backpressure --------------------------------------------------- */

/* The record a reply is streaming vanished (truncated meanwhile): the promised length cannot be
 * kept, so reset the connection. */
static enum stop job_lost(struct wconn *wc)
{
	fprintf(stderr,
	        "paste-wal: record %" PRIu64 " was truncated while being sent: connection reset\n",
	        wc->job.seq);
	wc->job.active = false;
	wc->st = W_CLOSED;
	paste_conn__abort(wc->c);
	return S_GONE;
}

/* Send the payload bytes of the job's current record. @return S_MORE when all are queued. */
static enum stop job_payload(struct wal *w, struct wconn *wc)
{
	struct job *j = &wc->job;

	while (j->off < j->len) {
		size_t room = paste_conn__sendbuf(wc->c);
		const uint8_t *p;
		ssize_t n = store_chunk(w, j, &p, room ? room : 1), s;

		if (n < 0)
			return job_lost(wc);
		s = paste_conn__send(wc->c, p, (size_t)n);
		if (s < 0)
			return S_GONE;
		j->off += (uint64_t)s;
		if (s < n)
			return S_BLOCKED; /* on_data runs again when acks free space */
	}
	return S_MORE;
}

static enum stop job_run(struct wal *w, struct wconn *wc)
{
	struct job *j = &wc->job;
	enum stop s;

	while (j->active) {
		if (wc->out_len) { /* reply bytes queued earlier go first */
			if (!out_flush(wc))
				return S_GONE;
			if (wc->out_len)
				return S_BLOCKED;
		}
		if (j->seq >= j->end) {
			j->active = false;
			break;
		}
		if (j->part == 0) {
			if (store_len(w, j->seq, &j->len))
				return job_lost(wc);
			j->off = j->ref_base = 0;
			j->ref_idx = 0;
			out_printf(wc, "%" PRIu64 " %" PRIu64 "\n", j->seq, j->len);
			j->part = 1;
			continue;
		}
		if (j->part == 1) {
			s = job_payload(w, wc);
			if (s != S_MORE)
				return s;
			j->part = 2;
		}
		if (j->range)
			out_printf(wc, "\n");
		j->seq++;
		j->part = 0;
	}
	return S_MORE;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* Answer @status and close the connection after the reply (framing lost or refused). */
static void fail_close(struct wal *w, struct wconn *wc, int status, const char *detail)
{
	wc->keep_alive = false;
	reply_error(w, wc, status, detail);
	wc->st = W_CLOSING;
}

/* The request is answered: get ready for the next head (or close). */
static void finish_request(struct wconn *wc)
{
	http_head_reset(&wc->head);
	wc->st = wc->keep_alive ? W_HEAD : W_CLOSING;
	wc->nrefs = 0;
}

/*
 * @t: the caller's on_data clock (wconn.last_ns). While the pool has room, a check every ms is
 * enough; once full, every admission checks again, since frames come back at any fence (a
 * DELETE, a closed connection): a cached "full" must not refuse the POST after a truncation.
 */
static void refresh_full(struct wal *w, uint64_t t)
{
	struct paste_stats s;

	if ((!w->full && t - w->full_checked_ns < WAL_FULL_CHECK_NS) ||
	    paste_stats(w->ctx, &s, sizeof(s)))
		return;
	w->full_checked_ns = t;
	w->full = s.frames_free < w->reserve;
}

/* A POST to the log: decide whether its body will be stored. */
static void admit_append(struct wal *w, struct wconn *wc)
{
	const struct http_req *r = &wc->req;

	refresh_full(w, wc->last_ns);
	if (!r->has_length) {
		wc->status = 411; /* no Content-Length, no Transfer-Encoding: the body is empty */
	} else if (r->content_length == 0) {
		wc->status = 400;
	} else if (r->content_length > w->max_body) {
		w->n.too_large++;
		wc->status = 413;
		if (r->expect_continue || r->content_length > WAL_DISCARD_MAX)
			fail_close(w, wc, 413, "the body is larger than --max-body");
	} else if (w->full) {
		w->n.refused_full++;
		wc->status = 507;
	} else {
		wc->store = true;
	}
	if (!r->expect_continue || wc->st != W_BODY || !wc->need)
		return;
	if (wc->store) /* the client waits for this before sending the body */
		out_printf(wc, "HTTP/1.1 100 Continue\r\n\r\n");
	else /* refused: answer now; the client then closes or sends a body we do not read */
		fail_close(w, wc, wc->status, "request refused");
}

static const char *parse_error_text(int status)
{
	switch (status) {
	case 411:
		return "chunked bodies are not accepted: send a Content-Length";
	case 417:
		return "only Expect: 100-continue is understood";
	case 501:
		return "unknown Transfer-Encoding";
	case 505:
		return "only HTTP/1.x is served";
	}
	return "malformed request head";
}

/* The head is complete: parse it and set up reading the body. */
static void begin_request(struct wal *w, struct wconn *wc)
{
	struct http_req *r = &wc->req;
	int st = http_parse(wc->head.buf, wc->head.len, r);

	w->n.requests++;
	wc->head_only = false;
	if (st) {
		w->n.malformed++;
		fail_close(w, wc, -st, parse_error_text(-st));
		return;
	}
	wc->keep_alive = r->keep_alive;
	wc->head_only = r->method == HTTP_M_HEAD;
	wc->route = route_of(w, r, &wc->status);
	wc->need = r->content_length;
	wc->got = 0;
	wc->nrefs = 0;
	wc->store = false;
	wc->st = W_BODY;
	if (wc->route == R_APPEND)
		admit_append(w, wc);
	else if (wc->need > WAL_DISCARD_MAX)
		fail_close(w, wc, 413, "request body too large");
	else if (r->expect_continue && wc->need)
		out_printf(wc, "HTTP/1.1 100 Continue\r\n\r\n");
}

/* Take bytes of the head from the connection (copied, then consumed). */
static enum stop take_head(struct wal *w, struct wconn *wc)
{
	const struct paste_slot *s;
	size_t total = 0, took;
	unsigned n, i;
	int st = 0;

	s = paste_conn__slots(wc->c, &n);
	for (i = 0; i < n && st == 0; i++) {
		if (wc->head.len == 0 && s[i].len)
			wc->head_ns = wc->last_ns; /* on_data's clock: the bytes were there */
		st = http_head_feed(&wc->head, s[i].data, s[i].len, &took);
		total += took;
	}
	if (total)
		paste_conn__consume(wc->c, total);
	if (st == 0)
		return S_NEED_DATA;
	if (st < 0) {
		w->n.malformed++;
		fail_close(w, wc, -st, "request head larger than 8 KiB");
		return S_MORE;
	}
	begin_request(w, wc);
	return S_MORE;
}

static void release_pieces(struct wal *w, struct wconn *wc)
{
	for (unsigned i = 0; i < wc->nrefs; i++)
		paste_release(w->ctx, &wc->refs[i]);
	wc->nrefs = 0;
}

/* Append the kept body and queue the 201 (or the error). */
static void commit(struct wal *w, struct wconn *wc, const struct paste_ref *refs, unsigned n)
{
	char hdr[288], digits[20], *h;
	uint64_t seq;
	size_t nd;
	int err = store_append(w, refs, n, wc->need, &seq);

	if (err == -ENOSPC) {
		w->n.refused_log++;
		reply_error(w, wc, 507, "the log is full: truncate it (DELETE ?upto=)");
		return;
	}
	if (err) {
		reply_error(w, wc, 500, "append failed");
		return;
	}
	w->n.appended++;
	w->n.appended_bytes += wc->need;
	w->round_appends++;
	nd = put_u64(digits, seq);
	h = put_str(hdr, "Location: ", 10);
	h = put_str(h, w->prefix, w->prefix_len); /* at most 200 bytes (--path-prefix) */
	*h++ = '/';
	h = put_str(h, digits, nd);
	h = put_str(h, "\r\nX-Seq: ", 9);
	h = put_str(h, digits, nd);
	put_str(h, "\r\n", 3);                                   /* with the terminator */
	reply_head(w, wc, 201, "application/json", 9 + nd, hdr); /* {"seq":N}\n */
	if (!wc->head_only) {
		out_str(wc, "{\"seq\":");
		out_put(wc, digits, nd);
		out_str(wc, "}\n");
	}
}

/* A kept piece failed (@err): drop what was kept, read the rest and answer an error. */
static void keep_failed(struct wal *w, struct wconn *wc, int err)
{
	release_pieces(w, wc);
	wc->store = false;
	if (err == -E2BIG) {
		w->n.too_large++;
		wc->status = 413; /* arrived in more pieces than a record holds */
	} else {
		w->n.refused_full++;
		wc->status = 507;
	}
}

/* Keep what is pending of a large body (in place, flushed) and consume it. */
static void take_pieces(struct wal *w, struct wconn *wc, size_t take)
{
	unsigned n;
	int err;

	refresh_full(w, wc->last_ns);
	if (!wc->refs)
		wc->refs = malloc(PASTE_LOG_MAX_REFS * sizeof(*wc->refs));
	if (!wc->refs || w->full) {
		keep_failed(w, wc, -ENOSPC);
		return;
	}
	err = paste_conn__keep(wc->c, 0, take, false, wc->refs + wc->nrefs, /* see store_append */
	                       PASTE_LOG_MAX_REFS - wc->nrefs, &n);
	if (err)
		keep_failed(w, wc, err);
	else
		wc->nrefs += n;
}

/* Run the request whose body has been read completely. */
static void end_request(struct wal *w, struct wconn *wc)
{
	if (wc->st != W_BODY)
		return; /* fail_close() already answered */
	if (wc->status)
		reply_error(w, wc, wc->status,
		            wc->status == 411   ? "POST needs a Content-Length"
		            : wc->status == 400 ? "empty body"
		            : wc->status == 413 ? "the body is larger than --max-body"
		            : wc->status == 507 ? "the pool is full: truncate the log"
		                                : "no such resource or method");
	else if (wc->route == R_APPEND)
		commit(w, wc, wc->refs, wc->nrefs);
	else if (wc->route == R_STATS)
		do_stats(w, wc);
	else if (wc->route == R_GET_ONE)
		do_get_one(w, wc);
	else if (wc->route == R_GET_RANGE)
		do_get_range(w, wc);
	else if (wc->route == R_DELETE)
		do_delete(w, wc);
	finish_request(wc);
}

static enum stop take_body(struct wal *w, struct wconn *wc)
{
	size_t pending = paste_conn__pending(wc->c);
	uint64_t left = wc->need - wc->got;
	size_t take = left < pending ? (size_t)left : pending;
	unsigned n;
	int err;

	if (wc->st != W_BODY)
		return S_MORE;
	if (wc->store && wc->got == 0 && pending >= wc->need) { /* whole: keep in place */
		err = paste_conn__keep(wc->c, 0, (size_t)wc->need, false, w->refs,
		                       PASTE_LOG_MAX_REFS, &n); /* flushed by store_append */
		paste_conn__consume(wc->c, (size_t)wc->need);
		wc->got = wc->need;
		if (err) {
			keep_failed(w, wc, err);
			end_request(w, wc);
		} else {
			commit(w, wc, w->refs, n);
			finish_request(wc);
		}
		return S_MORE;
	}
	if (left && wc->store && wc->got == 0 && wc->need <= WAL_WAIT_WHOLE)
		return S_NEED_DATA; /* small: wait until it is pending whole */
	if (left && !take)
		return S_NEED_DATA;
	if (take && wc->store)
		take_pieces(w, wc, take);
	if (take)
		paste_conn__consume(wc->c, take);
	wc->got += take;
	if (wc->got < wc->need)
		return S_NEED_DATA;
	end_request(w, wc);
	return S_MORE;
}

/* Serve as many requests as are pending, in order, until data or send space runs out. */
static enum stop serve(struct wal *w, struct wconn *wc)
{
	enum stop s;

	for (;;) {
		if (!out_flush(wc))
			return S_GONE;
		if (wc->job.active && (s = job_run(w, wc)) != S_MORE)
			return s;
		if (wc->out_len >= WAL_OUT_HIGH)
			return S_BLOCKED;
		if (wc->st == W_CLOSING) {
			if (wc->out_len)
				return S_BLOCKED;
			paste_conn__close(wc->c);
			wc->st = W_CLOSED;
			return S_GONE;
		}
		if (wc->st == W_CLOSED)
			return S_GONE;
		s = wc->st == W_HEAD ? take_head(w, wc) : take_body(w, wc);
		if (s != S_MORE)
			return s;
	}
}

/* ---- callbacks --------------------------------------------------------------------------- */

static int on_accept(struct paste_conn *c, void *user)
{
	struct wal *w = user;
	struct wconn *wc = calloc(1, sizeof(*wc));

	if (!wc)
		return -ENOMEM;
	wc->w = w;
	wc->c = c;
	wc->last_ns = now_ns();
	http_head_reset(&wc->head);
	wc->next = w->conns;
	if (w->conns)
		w->conns->prev = wc;
	w->conns = wc;
	paste_conn__set_user(c, wc);
	return 0;
}

static void on_data(struct paste_conn *c, void *user)
{
	struct wal *w = user;
	struct wconn *wc = paste_conn__user(c);

	if (!wc || wc->st == W_CLOSED)
		return;
	wc->last_ns = now_ns();
	if (serve(w, wc) != S_NEED_DATA || !paste_conn__eof(c))
		return;
	/* The peer has finished sending: nothing more will come. */
	if (wc->st == W_BODY || wc->head.len || paste_conn__pending(c)) {
		w->n.incomplete++;
		release_pieces(w, wc);
	}
	wc->st = W_CLOSING;
	serve(w, wc);
}

static void on_close(struct paste_conn *c, int err, void *user)
{
	struct wal *w = user;
	struct wconn *wc = paste_conn__user(c);

	if (!wc)
		return;
	if (wc->nrefs) { /* an unfinished large body: give its pieces back */
		w->n.incomplete++;
		release_pieces(w, wc);
	}
	if (wc->prev)
		wc->prev->next = wc->next;
	else
		w->conns = wc->next;
	if (wc->next)
		wc->next->prev = wc->prev;
	free(wc->refs);
	free(wc);
	paste_conn__set_user(c, NULL);
}

/* At the round's fence point: the fdatasync of the file (before any reply leaves) and batching
 * counters. A failed fdatasync means this round's records may not be durable: no reply may say
 * otherwise, so every connection is reset (queued replies die with it) and the server stops. */
static int round_hook(struct paste_ctx *ctx, void *arg)
{
	struct wal *w = arg;
	int err = 0;

	if (w->sync == SYNC_FDATASYNC)
		err = wf_sync(w);
	if (err) {
		fprintf(stderr,
		        "paste-wal: fdatasync of %s failed (%s): resetting every connection so "
		        "that no acknowledgement of this round leaves, and stopping\n",
		        w->file.path, strerror(-err));
		for (struct wconn *wc = w->conns; wc; wc = wc->next)
			if (wc->st != W_CLOSED) {
				wc->st = W_CLOSED;
				paste_conn__abort(wc->c);
			}
		w->fatal = 1;
		paste_stop(ctx);
	}
	if (w->round_appends) {
		w->n.batches++;
		w->n.batch_records += w->round_appends;
		if (w->round_appends > w->n.max_batch)
			w->n.max_batch = w->round_appends;
		w->round_appends = 0;
	}
	return err;
}

/* Once per tick: headers that take too long (slowloris), connections idle too long. */
static void check_timeouts(struct wal *w)
{
	uint64_t t = now_ns();
	struct wconn *wc;

	for (wc = w->conns; wc; wc = wc->next) {
		if (wc->st == W_CLOSED)
			continue;
		if (w->header_timeout_ms && wc->st == W_HEAD && wc->head.len && !wc->out_len &&
		    !wc->job.active && t - wc->head_ns > w->header_timeout_ms * 1000000ull) {
			w->n.timeouts++;
			fail_close(w, wc, 408, "the request head took too long");
			serve(w, wc);
		} else if (w->idle_timeout_ms &&
		           t - wc->last_ns > w->idle_timeout_ms * 1000000ull) {
			w->n.timeouts++;
			wc->st = W_CLOSED;
			release_pieces(w, wc);
			paste_conn__abort(wc->c);
		}
	}
}

/* ---- options ------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-wal --ifname IF (--ip ADDR | --shared-ip) --port N [options]\n"
	    "       paste-wal --transport kernel --port N [--ip ADDR] [options]\n"
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
	    "  DELETE PREFIX?upto=S     drop every record <= S (durable before the reply)\n"
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
	    "  --log-file PATH      the log file of --sync fdatasync (created if absent)\n"
	    "  --log NAME           name of the log region in the pool (default wal.log)\n"
	    "  --log-region SIZE    its size when creating it (default: 3/4 of the pool's free\n"
	    "                       region area)\n"
	    "  --reserve-frames N   refuse bodies (507) while fewer frames than this are free,\n"
	    "                       so that receiving never starves (default 2048; the library\n"
	    "                       itself refuses to keep below 2 x batch + 256)\n"
	    "  --copy-threshold SIZE  body pieces below SIZE are copied into shared packing\n"
	    "                       frames instead of pinning a frame each (default 0: never)\n"
	    "  --header-timeout S   close (408) a connection whose request head is not complete\n"
	    "                       S seconds after its first byte (default 10; 0: never)\n"
	    "  --idle-timeout S     reset a connection without any progress for S seconds\n"
	    "                       (default 120; 0: never)\n"
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
	    "      --port 8080 --pool /dev/shm/wal-k.pool\n",
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
		w->file.path = arg;
		return 0;
	case OPT_HEADER_TIMEOUT:
	case OPT_IDLE_TIMEOUT:
		if (daemon_parse_uint(arg, 0, 86400, &v))
			return bad_value(opt == OPT_IDLE_TIMEOUT ? "idle-timeout"
			                                         : "header-timeout",
			                 arg, "seconds 0-86400");
		*(opt == OPT_IDLE_TIMEOUT ? &w->idle_timeout_ms : &w->header_timeout_ms) = v * 1000;
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
		paste_pool__info(w->pool, &pi);
		size = (pi.region_area_size - pi.region_area_used) / 4 * 3 & ~4095ull;
		if (size < 8192)
			size = 0; /* no room left: only an existing log will do */
	}
	return paste_log__open(w->pool, w->log_name, size, &w->log);
}

static void print_ready(struct wal *w, const struct daemon_opts *d)
{
	struct paste_pool_info pi;
	struct paste_log_info li = {0};
	struct paste_stats st;
	struct store_info si;

	paste_pool__info(w->pool, &pi);
	paste_stats(w->ctx, &st, sizeof(st));
	store_info(w, &si);
	if (w->sync == SYNC_PMEM)
		paste_log__info(w->log, &li);
	else
		li.recovered = w->file.recovered;
	printf("paste-wal: ready transport=%s sync=%s persist=%d port=%u ip=%s pool=%s "
	       "recovered=%" PRIu64 " first=%" PRIu64 " next=%" PRIu64 " records=%" PRIu64
	       " bytes=%" PRIu64 " dropped=%" PRIu64 " torn_bytes=%" PRIu64
	       " was_clean=%d frames=%u kept=%u prefix=%s max_body=%" PRIu64 "\n",
	       transport_name(w), w->sync == SYNC_PMEM ? "pmem" : "fdatasync", !w->no_persist,
	       d->port, d->paste.ip ? d->paste.ip : "(any)",
	       d->paste.pool_path ? d->paste.pool_path : PASTE_POOL_DEFAULT_PATH, li.recovered,
	       si.first, si.next, si.records, si.bytes, li.dropped, w->file.torn_bytes,
	       pi.was_clean, st.frames_total, st.frames_kept, w->prefix, w->max_body);
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
	struct store_info si;
	bool ok;

	if (paste_stats(w->ctx, &s, sizeof(s)) || s.conns_open)
		return 0;
	if (w->sync == SYNC_PMEM) {
		paste_pool__info(w->pool, &pi);
		store_info(w, &si);
		fc.area_off = pi.frame_area_off;
		fc.frame_size = pi.frame_size;
		fc.frame_count = pi.frame_count;
		fc.named = calloc(pi.frame_count, 1);
		if (!fc.named)
			return 0;
		paste_log__iterate(w->log, si.first, count_frames, &fc);
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
	w->prefix_len = strlen(w->prefix);
	return 0;
}

/* The event loop: rounds until a signal or a fatal error. */
static int serve_loop(struct wal *w)
{
	uint64_t last_tick = now_ns();
	int n;

	while (!daemon_got_stop && !w->fatal) {
		n = paste_poll(w->ctx, WAL_TICK_MS);
		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "paste-wal: event loop failed: %s\n", strerror(-n));
			return 1;
		}
		if (daemon_got_usr1) {
			daemon_got_usr1 = 0;
			print_stats(w);
		}
		if (now_ns() - last_tick >= WAL_TICK_MS * 1000000ull) {
			last_tick = now_ns();
			check_timeouts(w);
		}
	}
	return w->fatal ? 1 : 0;
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
	if (w->sync == SYNC_PMEM) {
		err = open_pool_log(w);
		if (err) {
			fprintf(stderr, "paste-wal: cannot open the log '%s': %s\n", w->log_name,
			        paste_last_error());
			return err;
		}
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
	    {NULL, 0, NULL, 0},
	};
	static struct wal w = {
	    .prefix = "/log",
	    .log_name = "wal.log",
	    .max_body = 1u << 20,
	    .reserve = 2048,
	    .header_timeout_ms = 10000,
	    .idle_timeout_ms = 120000,
	    .file = {.fd = -1},
	};
	struct daemon_opts d;
	int r;

	r = daemon_parse(argc, argv, &d, extra, extra_opt, &w, usage);
	if (r)
		return r == 1 ? 0 : 2;
	if (check_modes(&w))
		return 2;
	paste_set_print(NULL, NULL, d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	daemon_install_signals();
	if (start(&w, &d)) {
		daemon_sig_ctx = NULL;
		paste_close(&w.ctx);
		return 1;
	}
	print_ready(&w, &d);
	r = serve_loop(&w);
	print_stats(&w);
	if (r == 0)
		r = check_frames(&w);
	daemon_sig_ctx = NULL;
	paste_close(&w.ctx);
	if (w.file.fd >= 0) {
		if (!w.fatal && !w.no_persist && fdatasync(w.file.fd))
			fprintf(stderr, "paste-wal: final fdatasync failed: %s\n", strerror(errno));
		close(w.file.fd);
	}
	free(w.file.idx);
	return r;
}
