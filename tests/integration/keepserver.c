/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keepserver.c - paste-keepserver: the durable server of the crash test, on the public API only.
 *
 * Protocol, per connection: a request is a 4-byte big-endian length L (1..1 MiB) and L payload
 * bytes; the reply is the 8-byte big-endian sequence number of the log record that names the
 * payload, or all ones when the server refused to keep it (pool or log full, or more pieces than a
 * record holds). A length of 0 or above 1 MiB closes the connection.
 *
 * The payload is never copied (unless --copy-threshold asks for packing): paste_conn__keep() takes
 * references to the received frames and flushes them, paste_log__append() records them, and the
 * reply is queued in the same round - paste_poll() fences once before anything queued leaves, so a
 * reply only ever acknowledges a durable record.
 *
 * A request that fits the receive window comfortably (header + payload <= WAIT_WHOLE) waits until
 * it is pending whole, then is kept with one paste_conn__keep(c, 4, L) and consumed. A larger one
 * cannot be pending whole (lwIP's receive window is 64 KiB and only consuming reopens it), so its
 * bytes are kept piece by piece as they arrive and consumed at once; the record is appended when
 * the last piece is in. Pieces kept for a request that never completes are released when the
 * connection ends; a crash leaves them unnamed, so recovery frees their frames.
 *
 * Frames kept are never given back here (nothing truncates the log), so the pool fills: below
 * --reserve-frames frames free or on the fill ring the server refuses new requests (error reply,
 * bytes consumed) instead of starving its own receive path.
 *
 * Output: "keepserver: ready recovered=N first=X next=Y ..." on stdout once serving; SIGUSR1 prints
 * a "stats ..." line; SIGTERM/SIGINT shut down. Exit status: 0 clean, 1 runtime error, 2 usage,
 * 3 frame accounting wrong at a quiescent shutdown.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <paste/paste.h>

#include "daemon_opts.h"

#define MAX_REQ     (1u << 20)
#define WAIT_WHOLE  (32u * 1024) /* header + payload up to this: wait until pending whole */
#define OUT_CAP     4096u        /* queued reply bytes before the connection stops reading */
#define REPLY_ERROR UINT64_MAX
#define LOG_NAME    "keep.log"

enum { OPT_LOG_REGION = 512, OPT_RESERVE, OPT_COPY_THRESHOLD };

struct ks {
	struct paste_ctx *ctx;
	struct paste_log *log;
	uint64_t log_region;
	uint64_t reserve;
	uint64_t copy_threshold;
	bool full; /* refreshed at every on_data */
	uint64_t records, record_bytes, errors, refused_full, refused_log, refused_refs;
	uint64_t malformed, incomplete;
};

enum kstate { K_HDR, K_BODY, K_DISCARD };

struct kconn {
	enum kstate st;
	bool closing;
	uint32_t need, got; /* K_BODY/K_DISCARD: payload length, bytes taken so far */
	unsigned nrefs;     /* K_BODY: references kept so far */
	size_t out_len;
	uint8_t out[OUT_CAP + 8];
	struct paste_ref refs[PASTE_LOG_MAX_REFS];
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-keepserver --ifname IF (--ip ADDR | --shared-ip) --port N [options]\n"
	    "\n"
	    "Durable server of the crash test: every request (4-byte big-endian length L, then\n"
	    "L bytes, L = 1..1 MiB) is kept in place in the pool and appended to the log\n"
	    "'" LOG_NAME "'; the 8-byte big-endian reply is the record's sequence number\n"
	    "(all ones: refused). Replies leave only after the round's fence.\n"
	    "\n"
	    "%s"
	    "\n"
	    "Keep options:\n"
	    "  --log-region SIZE      log region size when creating it (default 8M)\n"
	    "  --reserve-frames N     refuse requests when fewer frames than this are free or\n"
	    "                         on the fill ring (default 2048)\n"
	    "  --copy-threshold SIZE  pieces below SIZE are copied into packing frames\n"
	    "                         (default 0: never)\n"
	    "\n"
	    "Output: 'keepserver: ready recovered=N first=X next=Y ...' on stdout once serving;\n"
	    "SIGUSR1 prints 'stats ...'; SIGTERM/SIGINT shut down.\n"
	    "Exit status: 0 clean, 1 runtime error, 2 usage, 3 frame accounting wrong.\n",
	    daemon_common_help);
}

static int extra_opt(int opt, const char *arg, void *app)
{
	struct ks *ks = app;

	switch (opt) {
	case OPT_LOG_REGION:
		if (daemon_parse_size(arg, &ks->log_region) || ks->log_region < 4096)
			break;
		return 0;
	case OPT_RESERVE:
		if (daemon_parse_uint(arg, 0, UINT32_MAX, &ks->reserve))
			break;
		return 0;
	case OPT_COPY_THRESHOLD:
		if (daemon_parse_size(arg, &ks->copy_threshold) || ks->copy_threshold > 65536)
			break;
		return 0;
	default:
		return -1;
	}
	fprintf(stderr, "paste-keepserver: invalid value '%s' (see --help)\n", arg);
	return -1;
}

/* ---- per connection ---------------------------------------------------------------------- */

static void release_refs(struct ks *ks, struct paste_ref *refs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (paste_release(ks->ctx, &refs[i]))
			fprintf(stderr, "keepserver: release of a kept reference failed: %s\n",
			        paste_last_error());
}

/* Send queued replies. @return false if the connection is gone. */
static bool flush_out(struct paste_conn *c, struct kconn *kc)
{
	ssize_t w;

	if (!kc->out_len)
		return true;
	w = paste_conn__send(c, kc->out, kc->out_len);
	if (w < 0)
		return false;
	memmove(kc->out, kc->out + w, kc->out_len - (size_t)w);
	kc->out_len -= (size_t)w;
	return true;
}

static void queue_reply(struct ks *ks, struct kconn *kc, uint64_t seq)
{
	for (int i = 0; i < 8; i++)
		kc->out[kc->out_len++] = (uint8_t)(seq >> (56 - 8 * i));
	if (seq == REPLY_ERROR)
		ks->errors++;
}

/* Append the kept pieces as one record and queue the reply; on failure release them. */
static void commit(struct ks *ks, struct kconn *kc, struct paste_ref *refs, unsigned n,
                   uint32_t len)
{
	uint64_t seq;
	int err = paste_log__append(ks->log, refs, n, &seq);

	if (err) {
		if (err == -ENOSPC)
			ks->refused_log++;
		else
			fprintf(stderr, "keepserver: log append failed: %s\n", paste_last_error());
		release_refs(ks, refs, n);
		queue_reply(ks, kc, REPLY_ERROR);
		return;
	}
	ks->records++;
	ks->record_bytes += len;
	queue_reply(ks, kc, seq);
}

/* The first 4 pending bytes (they may span slots). */
static uint32_t peek_len(struct paste_conn *c)
{
	const struct paste_slot *s;
	unsigned n, i, k = 0;
	uint32_t v = 0;

	s = paste_conn__slots(c, &n);
	for (i = 0; i < n && k < 4; i++)
		for (uint32_t j = 0; j < s[i].len && k < 4; j++, k++)
			v = v << 8 | s[i].data[j];
	return v;
}

enum stop_reason { NEED_DATA, BACKPRESSURE, GONE };

/* Count why paste_conn__keep() refused (more pieces than a record holds, no packing frame). */
static void keep_err(struct ks *ks, int err)
{
	if (err == -E2BIG)
		ks->refused_refs++;
	else if (err == -ENOSPC)
		ks->refused_full++;
	else
		fprintf(stderr, "keepserver: paste_conn__keep failed: %s\n", paste_last_error());
}

static enum stop_reason serve_requests(struct ks *ks, struct paste_conn *c, struct kconn *kc)
{
	for (;;) {
		size_t pending = paste_conn__pending(c);
		unsigned n;
		int err;

		if (kc->out_len >= OUT_CAP) {
			if (!flush_out(c, kc))
				return GONE;
			if (kc->out_len >= OUT_CAP)
				return BACKPRESSURE; /* on_data runs again when acks free space */
		}
		if (kc->st == K_HDR) {
			uint32_t len;

			if (pending < 4)
				return NEED_DATA;
			len = peek_len(c);
			if (len == 0 || len > MAX_REQ) {
				ks->malformed++;
				fprintf(stderr,
				        "keepserver: request length %" PRIu32 " is not in "
				        "1..%u: closing the connection\n",
				        len, MAX_REQ);
				flush_out(c, kc);
				paste_conn__close(c);
				kc->closing = true;
				return GONE;
			}
			if (pending >= 4 + (size_t)len) { /* whole: keep in place, no copy */
				if (ks->full) {
					ks->refused_full++;
					queue_reply(ks, kc, REPLY_ERROR);
				} else {
					err = paste_conn__keep(c, 4, len, true, kc->refs,
					                       PASTE_LOG_MAX_REFS, &n);
					if (err) {
						keep_err(ks, err);
						queue_reply(ks, kc, REPLY_ERROR);
					} else {
						commit(ks, kc, kc->refs, n, len);
					}
				}
				paste_conn__consume(c, 4 + (size_t)len);
				continue;
			}
			if (4 + (size_t)len <= WAIT_WHOLE)
				return NEED_DATA; /* the rest is on its way; pending stays */
			/* Too large to be pending whole: keep it piece by piece. */
			paste_conn__consume(c, 4);
			kc->st = ks->full ? K_DISCARD : K_BODY;
			ks->refused_full += ks->full;
			kc->need = len;
			kc->got = 0;
			kc->nrefs = 0;
			continue;
		}
		/* K_BODY / K_DISCARD */
		size_t take = kc->need - kc->got;

		if (take > pending)
			take = pending;
		if (!take)
			return NEED_DATA;
		if (kc->st == K_BODY && ks->full) {
			ks->refused_full++;
			release_refs(ks, kc->refs, kc->nrefs);
			kc->nrefs = 0;
			kc->st = K_DISCARD;
		}
		if (kc->st == K_BODY) {
			err = paste_conn__keep(c, 0, take, true, kc->refs + kc->nrefs,
			                       PASTE_LOG_MAX_REFS - kc->nrefs, &n);
			if (err) {
				keep_err(ks, err);
				release_refs(ks, kc->refs, kc->nrefs);
				kc->nrefs = 0;
				kc->st = K_DISCARD;
			} else {
				kc->nrefs += n;
			}
		}
		paste_conn__consume(c, take);
		kc->got += (uint32_t)take;
		if (kc->got < kc->need)
			return NEED_DATA;
		if (kc->st == K_BODY)
			commit(ks, kc, kc->refs, kc->nrefs, kc->need);
		else
			queue_reply(ks, kc, REPLY_ERROR);
		kc->nrefs = 0;
		kc->st = K_HDR;
	}
}

static void refresh_full(struct ks *ks)
{
	struct paste_stats st;

	if (paste_stats(ks->ctx, &st, sizeof(st)))
		return;
	ks->full = (uint64_t)st.frames_free + st.frames_fill < ks->reserve;
}

static int on_accept(struct paste_conn *c, void *user)
{
	struct kconn *kc = calloc(1, sizeof(*kc));

	if (!kc)
		return -ENOMEM;
	paste_conn__set_user(c, kc);
	return 0;
}

static void on_data(struct paste_conn *c, void *user)
{
	struct ks *ks = user;
	struct kconn *kc = paste_conn__user(c);
	enum stop_reason why;

	if (kc->closing)
		return;
	refresh_full(ks);
	if (!flush_out(c, kc))
		return;
	why = serve_requests(ks, c, kc);
	if (why == GONE || !flush_out(c, kc))
		return;
	/* The peer is done: close once every reply is queued; an unfinished request is dropped. */
	if (paste_conn__eof(c) && why == NEED_DATA && kc->out_len == 0) {
		if (paste_conn__pending(c))
			kc->st = K_DISCARD; /* counted as incomplete in on_close */
		paste_conn__close(c);
		kc->closing = true;
	}
}

static void on_close(struct paste_conn *c, int err, void *user)
{
	struct ks *ks = user;
	struct kconn *kc = paste_conn__user(c);

	if (!kc)
		return;
	if (kc->st != K_HDR) /* ended inside a request */
		ks->incomplete++;
	release_refs(ks, kc->refs, kc->nrefs); /* an unfinished large request's pieces */
	free(kc);
}

/* ---- reporting ------------------------------------------------------------------------------ */

static void print_stats(struct ks *ks)
{
	struct paste_log_info li;
	struct paste_stats s;

	if (paste_stats(ks->ctx, &s, sizeof(s)))
		return;
	paste_log__info(ks->log, &li, sizeof(li));
	printf("stats records=%" PRIu64 " record_bytes=%" PRIu64 " errors=%" PRIu64
	       " refused_full=%" PRIu64 " refused_log=%" PRIu64 " refused_refs=%" PRIu64
	       " malformed=%" PRIu64 " incomplete=%" PRIu64 " log_first=%" PRIu64
	       " log_next=%" PRIu64 " log_used=%" PRIu64 " log_size=%" PRIu64
	       " conns_open=%u conns_accepted=%" PRIu64 " rx_packets=%" PRIu64
	       " rx_dropped=%" PRIu64 " rx_payload_bytes=%" PRIu64 " rx_copied_bytes=%" PRIu64
	       " kept_bytes=%" PRIu64 " kept_copied_bytes=%" PRIu64 " persisted_bytes=%" PRIu64
	       " fences=%" PRIu64 " rounds=%" PRIu64
	       " frames_total=%u frames_free=%u frames_fill=%u frames_rx=%u"
	       " frames_tx=%u frames_kept=%u\n",
	       ks->records, ks->record_bytes, ks->errors, ks->refused_full, ks->refused_log,
	       ks->refused_refs, ks->malformed, ks->incomplete, li.first_seq, li.next_seq,
	       li.region_used, li.region_size, s.conns_open, s.conns_accepted, s.rx_packets,
	       s.rx_dropped, s.rx_payload_bytes, s.rx_copied_bytes, s.kept_bytes,
	       s.kept_copied_bytes, s.persisted_bytes, s.fences, s.rounds, s.frames_total,
	       s.frames_free, s.frames_fill, s.frames_rx, s.frames_tx, s.frames_kept);
	fflush(stdout);
}

struct frame_count {
	uint64_t area_off;
	uint32_t frame_size, frame_count;
	uint8_t *named;
	uint32_t distinct;
	bool bad;
};

static int count_frames(const struct paste_log_rec *rec, void *arg)
{
	struct frame_count *fc = arg;

	for (uint32_t i = 0; i < rec->nrefs; i++) {
		uint64_t off = rec->refs[i].off;
		uint64_t f = (off - fc->area_off) / fc->frame_size;

		if (off < fc->area_off || f >= fc->frame_count) {
			fc->bad = true;
			continue;
		}
		fc->distinct += !fc->named[f];
		fc->named[f] = 1;
	}
	return 0;
}

/*
 * Quiescent (no connection open): no frame may be held for RX, and every kept frame must be one
 * the log names (one more with packing: the open packing frame holds itself).
 */
static int check_frames(struct ks *ks)
{
	struct paste_pool_info pi;
	struct paste_log_info li;
	struct paste_stats s;
	struct frame_count fc = {0};
	int r = 0;

	if (paste_stats(ks->ctx, &s, sizeof(s)) || s.conns_open)
		return 0;
	paste_pool__info(paste_pool(ks->ctx), &pi, sizeof(pi));
	paste_log__info(ks->log, &li, sizeof(li));
	fc.area_off = pi.frame_area_off;
	fc.frame_size = pi.frame_size;
	fc.frame_count = pi.frame_count;
	fc.named = calloc(pi.frame_count, 1);
	if (!fc.named)
		return 0;
	paste_log__iterate(ks->log, li.first_seq, count_frames, &fc);
	free(fc.named);
	if (s.frames_rx || fc.bad ||
	    !(s.frames_kept == fc.distinct ||
	      (ks->copy_threshold && s.frames_kept == fc.distinct + 1))) {
		fprintf(stderr,
		        "keepserver: frame accounting: frames_rx=%u frames_kept=%u, the log names "
		        "%u frames%s\n",
		        s.frames_rx, s.frames_kept, fc.distinct,
		        fc.bad ? " (and refs outside)" : "");
		r = 3;
	}
	return r;
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option extra[] = {
	    {"log-region", required_argument, NULL, OPT_LOG_REGION},
	    {"reserve-frames", required_argument, NULL, OPT_RESERVE},
	    {"copy-threshold", required_argument, NULL, OPT_COPY_THRESHOLD},
	    {NULL, 0, NULL, 0},
	};
	struct paste_conn_ops ops = {
	    .sz = sizeof(ops),
	    .on_accept = on_accept,
	    .on_data = on_data,
	    .on_close = on_close,
	};
	struct ks ks = {.log_region = 8u << 20, .reserve = 2048};
	struct paste_pool_info pi;
	struct paste_log_info li;
	struct paste_stats st;
	struct daemon_opts d;
	int r = 0, err, n;

	r = daemon_parse(argc, argv, &d, extra, extra_opt, &ks, usage);
	if (r)
		return r == 1 ? 0 : 2;
	d.paste.copy_threshold = (uint32_t)ks.copy_threshold;
	paste_set_print(NULL, NULL, d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	daemon_install_signals();
	err = paste_open(&ks.ctx, &d.paste);
	if (err) {
		fprintf(stderr, "keepserver: cannot start: %s\n", paste_last_error());
		return 1;
	}
	daemon_sig_ctx = ks.ctx;
	err = paste_log__open(&ks.log, paste_pool(ks.ctx), LOG_NAME,
	                      &PASTE_OPTS_LIT(paste_log_opts, .region_size = ks.log_region));
	if (!err)
		err = paste_listen(ks.ctx, d.port, &ops, &ks);
	if (err) {
		fprintf(stderr, "keepserver: %s\n", paste_last_error());
		daemon_sig_ctx = NULL;
		paste_close(&ks.ctx);
		return 1;
	}
	paste_log__info(ks.log, &li, sizeof(li));
	paste_pool__info(paste_pool(ks.ctx), &pi, sizeof(pi));
	paste_stats(ks.ctx, &st, sizeof(st));
	printf("keepserver: ready recovered=%" PRIu64 " first=%" PRIu64 " next=%" PRIu64
	       " records=%" PRIu64 " dropped=%" PRIu64 " bytes=%" PRIu64
	       " was_clean=%d frames=%u kept=%u xdp_mode=%s zerocopy=%d port=%u\n",
	       li.recovered, li.first_seq, li.next_seq, li.records, li.dropped, li.bytes,
	       pi.was_clean, st.frames_total, st.frames_kept,
	       st.xdp_mode == PASTE_XDP_NATIVE ? "native" : "skb", st.zerocopy, d.port);
	fflush(stdout);
	while (!daemon_got_stop) {
		n = paste_poll(ks.ctx, -1);
		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "keepserver: event loop failed: %s\n", strerror(-n));
			r = 1;
			break;
		}
		if (daemon_got_usr1) {
			daemon_got_usr1 = 0;
			print_stats(&ks);
		}
	}
	print_stats(&ks);
	if (!r)
		r = check_frames(&ks);
	daemon_sig_ctx = NULL;
	paste_close(&ks.ctx);
	return r;
}
