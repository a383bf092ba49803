/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_conn.c - paste-wal's connections: a state machine per connection (struct wconn) that copies
 * a bounded request head, keeps a POST body in place (whole, or piece by piece when larger than
 * the receive window), admits or refuses it (507 when the pool cannot take it and the tier cannot
 * make room), and runs the route once the body is read. The library's callbacks and the round
 * hook live here too.
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
 * @t: the caller's on_data clock (wconn.dc.last_ns). While the pool has room, a check every ms is
 * enough; once full, every admission checks again, since frames come back at any fence (a
 * DELETE, a closed connection): a cached "full" must not refuse the POST after a truncation.
 */
static void refresh_full(struct wal *w, uint64_t t)
{
	w->full = daemon_pool_low(&w->loop, w->reserve, t); /* the daemons' one rule */
}

/* A POST to the log: decide whether its body will be stored. */
static void admit_append(struct wal *w, struct wconn *wc)
{
	const struct http_req *r = &wc->req;

	refresh_full(w, wc->dc.last_ns);
	if (!r->has_length) {
		wc->status = 411; /* no Content-Length, no Transfer-Encoding: the body is empty */
	} else if (r->content_length == 0) {
		wc->status = 400;
	} else if (r->content_length > w->max_body) {
		w->n.too_large++;
		wc->status = 413;
		if (r->expect_continue || r->content_length > WAL_DISCARD_MAX)
			fail_close(w, wc, 413, "the body is larger than --max-body");
	} else if (w->full && !tier_can_take(w)) {
		w->n.refused_full++;
		wc->status = 507;
	} else { /* when the pool is full but the tier can make room, take_body waits */
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
			daemon_conn_request(&wc->dc, wc->dc.last_ns); /* on_data's clock */
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
	retain_mark(w, seq);
	w->n.appended++;
	w->n.appended_bytes += wc->need;
	w->round_appends++;
	nd = daemon_put_u64(digits, seq);
	h = put_str(hdr, "Location: ", 10);
	h = put_str(h, w->prefix, w->prefix_len); /* at most 200 bytes (--path-prefix) */
	*h++ = '/';
	h = put_str(h, digits, nd);
	h = put_str(h, "\r\nX-Seq: ", 9);
	h = put_str(h, digits, nd);
	put_str(h, "\r\n", 3);                                   /* with the terminator */
	reply_head(w, wc, 201, "application/json", 9 + nd, hdr); /* {"seq":N}\n */
	if (!wc->head_only) {
		h = put_str(hdr, "{\"seq\":", 7);
		h = put_str(h, digits, nd);
		h = put_str(h, "}\n", 2);
		out_put(wc, hdr, (size_t)(h - hdr));
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

	refresh_full(w, wc->dc.last_ns);
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
		            : wc->status == 507 && w->tier.on
		                ? "the pool and the capacity tier are full: truncate the log"
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

/*
 * The pool is short of frames but the capacity tier can make room: leave the body where it is
 * (pending, unconsumed) until a destage job frees frames and resume_stalled() serves the
 * connection again, instead of refusing it. @return true when the connection waits.
 */
static bool tier_stall(struct wal *w, struct wconn *wc)
{
	if (!w->tier.on)
		return false;
	refresh_full(w, wc->dc.last_ns);
	if (!w->full || !tier_can_take(w))
		return false;
	if (!wc->stalled) {
		wc->stalled = true;
		w->stalled++;
		w->n.stalls++;
	}
	return true;
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
	if (wc->store && tier_stall(w, wc))
		return S_NEED_DATA;
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
static enum stop serve_requests(struct wal *w, struct wconn *wc)
{
	enum stop s;

	for (;;) {
		if (!out_flush(wc))
			return S_GONE;
		if (wc->job.active && (s = job_run(w, wc)) != S_MORE)
			return s;
		if (wc->oom)
			return S_GONE;
		if (wc->q.queued >= WAL_OUT_HIGH)
			return S_BLOCKED;
		if (wc->st == W_CLOSING) {
			if (wc->q.n)
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

/* serve_requests(), then what every callback that served a connection owes its reply queue:
 * reset the connection when a reply could not be queued, else pin what is queued by pointer. */
enum stop serve(struct wal *w, struct wconn *wc)
{
	enum stop s = serve_requests(w, wc);

	if (wc->oom && wc->st != W_CLOSED) {
		fprintf(stderr, "paste-wal: no memory to queue a reply: connection reset\n");
		wc->st = W_CLOSED;
		paste_conn__abort(wc->c);
		return S_GONE;
	}
	out_pin(wc);
	return s;
}

/* ---- callbacks --------------------------------------------------------------------------- */

int on_accept(struct paste_conn *c, void *user)
{
	struct wal *w = user;
	struct wconn *wc = calloc(1, sizeof(*wc));

	if (!wc)
		return -ENOMEM;
	wc->w = w;
	wc->c = c;
	http_head_reset(&wc->head);
	daemon_conn_add(&w->loop, &wc->dc, c);
	paste_conn__set_user(c, wc);
	return 0;
}

/* Serve @wc; when it needs data the peer will never send, close it. */
static void serve_conn(struct wal *w, struct wconn *wc)
{
	struct paste_conn *c = wc->c;

	daemon_conn_touch(&wc->dc, daemon_now_ns());
	if (serve(w, wc) != S_NEED_DATA || !paste_conn__eof(c) || wc->stalled)
		return;
	/* The peer has finished sending: nothing more will come. */
	if (wc->st == W_BODY || wc->head.len || paste_conn__pending(c)) {
		w->n.incomplete++;
		release_pieces(w, wc);
	}
	wc->st = W_CLOSING;
	serve(w, wc);
}

void on_data(struct paste_conn *c, void *user)
{
	struct wal *w = user;
	struct wconn *wc = paste_conn__user(c);

	if (wc && wc->st != W_CLOSED)
		serve_conn(w, wc);
}

/*
 * Outside a round, after a destage job freed frames (and on every tick): serve the connections
 * whose bodies waited. Their appends are fenced here, before the next round can send the replies,
 * and that round must not wait for traffic (w->kick).
 */
void resume_stalled(struct wal *w)
{
	struct wconn *wc;

	if (!w->stalled)
		return;
	for (struct daemon_conn *dc = w->loop.conns; dc; dc = dc->next) {
		wc = wal_conn_of(dc);
		if (!wc->stalled)
			continue;
		wc->stalled = false;
		w->stalled--;
		if (wc->st != W_CLOSED)
			serve_conn(w, wc);
	}
	paste_pool__drain(w->pool);
	w->kick = true;
}

void on_close(struct paste_conn *c, int err, void *user)
{
	struct wal *w = user;
	struct wconn *wc = paste_conn__user(c);

	if (!wc)
		return;
	if (wc->stalled)
		w->stalled--;
	if (wc->nrefs) { /* an unfinished large body: give its pieces back */
		w->n.incomplete++;
		release_pieces(w, wc);
	}
	daemon_conn_remove(&w->loop, &wc->dc);
	daemon_replyq_free(&wc->q, w->ctx);
	free(wc->refs);
	free(wc);
	paste_conn__set_user(c, NULL);
}

/* At the round's fence point: the fdatasync of the file (before any reply leaves) and batching
 * counters. A failed fdatasync means this round's records may not be durable: no reply may say
 * otherwise, so every connection is reset (queued replies die with it) and the server stops. */
int round_hook(struct paste_ctx *ctx, void *arg)
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
		for (struct daemon_conn *dc = w->loop.conns; dc; dc = dc->next) {
			struct wconn *wc = wal_conn_of(dc);

			if (wc->st != W_CLOSED) {
				wc->st = W_CLOSED;
				paste_conn__abort(wc->c);
			}
		}
		w->fatal = 1;
		paste_stop(ctx);
	}
	if (!err)
		wal_multi_publish(w); /* after the fence: the others may read what we appended */
	if (w->round_appends) {
		w->n.batches++;
		w->n.batch_records += w->round_appends;
		if (w->round_appends > w->n.max_batch)
			w->n.max_batch = w->round_appends;
		w->round_appends = 0;
	}
	return err;
}

/*
 * daemon_loop's verdict on a connection over a limit (once per tick). A head that takes too long
 * (slowloris) is answered 408 and closed, unless a reply or a job is still under way for it; a
 * connection without progress for the idle time is reset.
 */
bool wal_timed_out(struct daemon_conn *dc, enum daemon_timeout why, void *app)
{
	struct wal *w = app;
	struct wconn *wc = wal_conn_of(dc);

	if (wc->st == W_CLOSED)
		return false;
	if (why == DAEMON_TIMEOUT_REQUEST) {
		if (wc->st != W_HEAD || !wc->head.len || wc->q.n || wc->job.active)
			return false;
		fail_close(w, wc, 408, "the request head took too long");
		serve(w, wc);
		return true;
	}
	wc->st = W_CLOSED;
	release_pieces(w, wc);
	paste_conn__abort(wc->c);
	return true;
}
