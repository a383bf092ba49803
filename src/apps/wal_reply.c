/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_reply.c - paste-wal's replies: the per-connection reply queue (daemon_replyq.h), status
 * lines and headers built by pieces, the routes (append is in wal_conn.c), and record replies (GET
 * one, GET range) streamed from either store or tier under send-buffer backpressure, resumed by
 * sequence number and offset; the part of a pool chunk the send buffer did not take waits in the
 * queue under its own reference.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wal.h"

/* ---- output: the connection's reply queue (daemon_replyq.h) ------------------------------ */

/* Hand queued reply bytes to the connection. @return false when the connection is gone. */
bool out_flush(struct wconn *wc)
{
	return daemon_replyq_flush(&wc->q, wc->c, wc->w->ctx) == 0;
}

/* End of a callback: record bytes still queued by pointer get the queue's own reference, so a
 * truncation after the round's fence cannot free them under the reply. */
void out_pin(struct wconn *wc)
{
	if (wc->q.n)
		daemon_replyq_pin(&wc->q, wc->w->ctx, wc->w->pool);
}

/* Append to the reply queue (copied). Without memory the connection is reset (serve). */
void out_put(struct wconn *wc, const void *src, size_t n)
{
	if (daemon_replyq_copy(&wc->q, src, n))
		wc->oom = true;
}

void out_printf(struct wconn *wc, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		out_put(wc, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
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

char *put_str(char *p, const char *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* A reply head is put together here and queued with one copy (this runs for every reply: a 201
 * per append). A piece that does not fit queues what is there first, so any length works. */
struct head_buf {
	size_t n;
	char b[1024];
};

static void hb_put(struct wconn *wc, struct head_buf *h, const void *p, size_t n)
{
	if (n > sizeof(h->b) - h->n) {
		out_put(wc, h->b, h->n);
		h->n = 0;
		if (n > sizeof(h->b)) {
			out_put(wc, p, n);
			return;
		}
	}
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void hb_str(struct wconn *wc, struct head_buf *h, const char *str)
{
	hb_put(wc, h, str, strlen(str));
}

static void hb_u64(struct wconn *wc, struct head_buf *h, uint64_t v)
{
	char d[20];

	hb_put(wc, h, d, daemon_put_u64(d, v));
}

/* Status line and headers; @extra is more header lines ("Name: value\r\n"...), or "". */
void reply_head(struct wal *w, struct wconn *wc, int status, const char *ctype, uint64_t clen,
                const char *extra)
{
	struct head_buf h;

	h.n = 0;
	if (status < 300)
		w->n.r2xx++;
	else if (status < 500)
		w->n.r4xx++;
	else
		w->n.r5xx++;
	/* Pieces, not printf: daemon_put_u64 for the numbers */
	hb_str(wc, &h, "HTTP/1.1 ");
	hb_u64(wc, &h, (uint64_t)status);
	hb_str(wc, &h, " ");
	hb_str(wc, &h, http_reason(status));
	hb_str(wc, &h, "\r\nServer: paste-wal\r\nDate: ");
	http_date(w);
	hb_put(wc, &h, w->date, w->date_len);
	hb_str(wc, &h, "\r\nContent-Type: ");
	hb_str(wc, &h, ctype);
	hb_str(wc, &h, "\r\nContent-Length: ");
	hb_u64(wc, &h, clen);
	hb_str(wc, &h, "\r\n");
	hb_str(wc, &h, extra);
	hb_str(wc, &h,
	       !wc->keep_alive      ? "Connection: close\r\n\r\n"
	       : wc->req.minor == 0 ? "Connection: keep-alive\r\n\r\n"
	                            : "\r\n");
	out_put(wc, h.b, h.n);
}

/* A complete reply with a small body (unless HEAD). */
void reply(struct wal *w, struct wconn *wc, int status, const char *ctype, const char *extra,
           const char *body)
{
	size_t len = strlen(body);

	reply_head(w, wc, status, ctype, len, extra);
	if (!wc->head_only)
		out_put(wc, body, len);
}

/* An error reply: "<status> <reason>: <detail>\n" as text. */
void reply_error(struct wal *w, struct wconn *wc, int status, const char *detail)
{
	char body[256];

	snprintf(body, sizeof(body), "%d %s: %s\n", status, http_reason(status), detail);
	reply(w, wc, status, "text/plain",
	      status == 405 ? "Allow: GET, HEAD, POST, DELETE\r\n" : "", body);
}

/* ---- routes ------------------------------------------------------------------------------ */

/* Which handler serves @r; an error status (404, 405, 501) goes to *status. */
enum route route_of(struct wal *w, const struct http_req *r, int *status)
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

void do_stats(struct wal *w, struct wconn *wc)
{
	char buf[16384]; /* about 2 KiB with a tier, ~250 bytes per worker with --queues (~400 with
	                    a tier) */

	stats_json(w, buf, sizeof(buf));
	reply(w, wc, 200, "application/json", "", buf);
}

void do_get_one(struct wal *w, struct wconn *wc)
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

/* The record after @seq in a range reply: the next one (--queues: the next that exists among
 * the workers' records as the range began, or @end). */
static uint64_t range_after(struct wal *w, struct wconn *wc, uint64_t seq, uint64_t end)
{
	uint64_t g;

	if (!w->multi)
		return seq + 1;
	g = wal_multi_next(w, seq + 1, wc->range_lim);
	return g && g < end ? g : end;
}

/*
 * --queues: the records that exist at or after from (in global seq order, up to limit), each
 * worker's below its next as of now; X-Next-Seq is after the last one; X-Stable-Seq says below
 * which seq no record can appear later (a worker behind the others may still fill a gap).
 */
static void get_range_multi(struct wal *w, struct wconn *wc, uint64_t from, uint64_t limit)
{
	uint64_t s, end, n = 0, total = 0, len = 0, first;
	char hdr[200], line[48];

	wal_multi_snap(w, wc->range_lim);
	first = s = wal_multi_next(w, from, wc->range_lim);
	end = from;
	while (s && n < limit) {
		if (store_len(w, s, &len))
			len = 0; /* gone meanwhile: the stream will say so (reset) */
		total +=
		    (uint64_t)snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 "\n", s, len) +
		    len + 1;
		n++;
		end = s + 1;
		s = wal_multi_next(w, s + 1, wc->range_lim);
	}
	snprintf(hdr, sizeof(hdr),
	         "X-First-Seq: %" PRIu64 "\r\nX-Next-Seq: %" PRIu64 "\r\nX-Records: %" PRIu64
	         "\r\nX-Stable-Seq: %" PRIu64 "\r\n",
	         n ? first : from, end, n, wal_multi_stable(w));
	reply_head(w, wc, 200, "application/x-paste-wal-records", total, hdr);
	if (!wc->head_only && n)
		wc->job = (struct job){.active = true, .range = true, .seq = first, .end = end};
}

/* Range body: for each record "<seq> <len>\n", the bytes, "\n". */
void do_get_range(struct wal *w, struct wconn *wc)
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
	if (w->multi) {
		get_range_multi(w, wc, from, limit);
		return;
	}
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

static void delete_reply(struct wal *w, struct wconn *wc);

void do_delete(struct wal *w, struct wconn *wc)
{
	const struct http_req *r = &wc->req;
	uint64_t upto;
	int err;

	if (http_query_u64(r->query, r->query_len, "upto", &upto)) {
		reply_error(w, wc, 400, "DELETE needs ?upto=<seq> (a decimal sequence number)");
		return;
	}
	if (w->multi) { /* our log now; the reply waits for the others (job_trunc) */
		if (wal_multi_truncate(w, upto)) {
			reply_error(w, wc, 500, "truncation failed");
			return;
		}
		wc->job = (struct job){.active = true,
		                       .trunc = true,
		                       .end = upto,
		                       .off = daemon_now_ns() + w->delete_wait_s * 1000000000ull};
		return;
	}
	err = store_truncate(w, upto);
	if (err) {
		reply_error(w, wc, 500, "truncation failed");
		return;
	}
	w->n.truncations++;
	delete_reply(w, wc);
}

/* A DELETE's reply: what is left. */
static void delete_reply(struct wal *w, struct wconn *wc)
{
	struct store_info si;
	char body[160];

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

/* @p (a chunk of record @seq from store_chunk) lies in our pool's frames, under the log's
 * references: the reply queue may borrow it. File and tier chunks are in w->scratch, another
 * worker's record in wal_multi's buffer: both are reused, so they are copied. */
static bool chunk_in_pool(const struct wal *w, uint64_t seq, const uint8_t *p)
{
	return w->sync == SYNC_PMEM && p != w->scratch && (!w->multi || wal_multi_mine(w, seq));
}

/* Send the payload bytes of the job's current record; the part of a chunk the send buffer does
 * not take waits in the reply queue (pool bytes borrowed, then pinned by out_pin() at the end of
 * the callback). @return S_MORE when all are sent or queued. */
static enum stop job_payload(struct wal *w, struct wconn *wc)
{
	struct job *j = &wc->job;

	while (j->off < j->len) {
		size_t room;
		const uint8_t *p;
		ssize_t n, t;

		if (wc->q.n)
			return S_BLOCKED; /* on_data runs again when acks free space */
		room = paste_conn__sendbuf(wc->c);
		n = store_chunk(w, j, &p, room ? room : 1);
		if (n < 0)
			return job_lost(wc);
		t = daemon_replyq_send(&wc->q, wc->c, p, (size_t)n, chunk_in_pool(w, j->seq, p));
		if (t < 0)
			return S_GONE;
		j->off += (uint64_t)t;
		if (t < n) {
			wc->oom = true; /* serve() resets the connection */
			return S_BLOCKED;
		}
	}
	return S_MORE;
}

/* --queues: a DELETE waits (its connection is served again every tick) until every worker has
 * truncated its log, then replies; 503 if one has not within --delete-wait. */
static enum stop job_trunc(struct wal *w, struct wconn *wc)
{
	struct job *j = &wc->job;
	unsigned late;
	char msg[200];

	if (wal_multi_truncated(w, j->end, &late)) {
		j->active = false;
		delete_reply(w, wc);
		return S_MORE;
	}
	if (daemon_now_ns() > j->off) {
		j->active = false;
		snprintf(msg, sizeof(msg),
		         "worker %u has not applied the truncation within %" PRIu64
		         " s (is it down?); it will when it runs: repeat the DELETE to wait for it",
		         late, w->delete_wait_s);
		reply_error(w, wc, 503, msg);
		return S_MORE;
	}
	if (!wc->stalled) { /* resume_stalled() serves us again on the next tick */
		wc->stalled = true;
		w->stalled++;
	}
	return S_BLOCKED;
}

enum stop job_run(struct wal *w, struct wconn *wc)
{
	struct job *j = &wc->job;
	enum stop s;

	while (j->active) {
		if (wc->q.n) { /* reply bytes queued earlier go first */
			if (!out_flush(wc))
				return S_GONE;
			if (wc->q.n)
				return S_BLOCKED;
		}
		if (j->trunc) { /* the reply (once every worker truncated) goes out now */
			s = job_trunc(w, wc);
			if (s != S_MORE)
				return s;
			return out_flush(wc) ? S_MORE : S_GONE;
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
		j->seq = range_after(w, wc, j->seq, j->end);
		j->part = 0;
	}
	return S_MORE;
}
