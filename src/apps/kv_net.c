/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_net.c - paste-kv networking: scratch memory, replies (onto the daemons' reply queue,
 * daemon_replyq.h), request arguments, and the per-connection read/execute/reply loop
 * (on_accept/on_data/on_close).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"
#include "kv_multi_worker.h"
#include "kv_primary.h"

/* ---- time, scratch ------------------------------------------------------------------------- */

uint64_t mono_ns(void)
{
	return daemon_now_ns(); /* the daemons' one clock */
}

uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* Scratch for the request being executed: the arena, or (larger needs) the heap. */
uint8_t *arena_alloc(struct kvd *d, size_t n)
{
	uint8_t *p;

	if (n <= d->arena_cap - d->arena_used) {
		p = d->arena + d->arena_used;
		d->arena_used += n;
		return p;
	}
	if (d->extra_n == d->extra_cap) {
		size_t cap = d->extra_cap ? d->extra_cap * 2 : 8;
		void **v = realloc(d->extra, cap * sizeof(*v));

		if (!v)
			return NULL;
		d->extra = v;
		d->extra_cap = cap;
	}
	p = malloc(n);
	if (p)
		d->extra[d->extra_n++] = p;
	return p;
}

void arena_reset(struct kvd *d)
{
	while (d->extra_n)
		free(d->extra[--d->extra_n]);
	d->arena_used = 0;
	lkey_forget(d);
}

int big_reserve(struct kvd *d, size_t more)
{
	size_t cap = d->big_cap ? d->big_cap : 4096;
	char *p;

	if (d->big_len + more <= d->big_cap)
		return 0;
	while (cap < d->big_len + more)
		cap *= 2;
	p = realloc(d->big, cap);
	if (!p)
		return -ENOMEM;
	d->big = p;
	d->big_cap = cap;
	return 0;
}

int big_add(struct kvd *d, const void *p, size_t n)
{
	if (big_reserve(d, n))
		return -ENOMEM;
	memcpy(d->big + d->big_len, p, n);
	d->big_len += n;
	return 0;
}

int big_printf(struct kvd *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || big_reserve(d, (size_t)n + 1))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(d->big + d->big_len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	d->big_len += (size_t)n;
	return 0;
}

/* A bulk string into the scratch. */
int big_bulk(struct kvd *d, const void *p, size_t n)
{
	char h[RESP_HDR_MAX];

	if (big_add(d, h, resp_fmt_hdr(h, '$', (int64_t)n)) || big_add(d, p, n))
		return -ENOMEM;
	return big_add(d, "\r\n", 2);
}

/* ---- output: the connection's reply queue (daemon_replyq.h) ----------------------------- */

/* Queue @n bytes (copied). */
int out(struct kconn *kc, const void *p, size_t n)
{
	return daemon_replyq_copy(&kc->q, p, n);
}

int out_str(struct kconn *kc, const char *s)
{
	if (kc->master && s[0] == '-') /* an error reply (-OOM, -READONLY...) to the primary */
		replica_apply_error(kc->d, s + 1);
	return out(kc, s, strlen(s));
}

int out_hdr(struct kconn *kc, char type, int64_t n)
{
	char h[RESP_HDR_MAX];

	return out(kc, h, resp_fmt_hdr(h, type, n));
}

/* "-<msg>\r\n" with CR/LF in the message turned into spaces, as Redis does. */
int out_err(struct kconn *kc, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *q = msg; *q; q++)
		if (*q == '\r' || *q == '\n')
			*q = ' ';
	if (kc->master)
		replica_apply_error(kc->d, msg);
	return out(kc, "-", 1) || out_str(kc, msg) || out(kc, "\r\n", 2) ? -ENOMEM : 0;
}

/* @p..@p+n lies in the pool file's mapping (else it is scratch memory: the arena, reset after
 * each request, so it cannot be queued by pointer). */
static bool in_pool(const struct kvd *d, const uint8_t *p, size_t n)
{
	const uint8_t *base = d->pool ? paste_pool__base(d->pool) : NULL;

	return base && p >= base && (uint64_t)(p - base) + n <= d->pool_size;
}

/* A bulk reply of @n bytes of a stored value at @p (inside a kept frame, or scratch: copied). */
int out_value(struct kconn *kc, const uint8_t *p, size_t n)
{
	if (out_hdr(kc, '$', (int64_t)n) || out_piece(kc, p, n))
		return -ENOMEM;
	return out(kc, "\r\n", 2);
}

/* Queue @n bytes at @p (pool bytes valid this round: borrowed, pinned by pin_queued) without a
 * header; small or scratch bytes are copied. */
int out_piece(struct kconn *kc, const uint8_t *p, size_t n)
{
	if (n <= KV_INLINE_REPLY || !in_pool(kc->d, p, n))
		return out(kc, p, n);
	return daemon_replyq_borrow(&kc->q, p, n) ? -ENOMEM : 0;
}

/*
 * Send what the send buffer takes. Stops only when a send takes nothing, which always re-arms
 * on_data (a short non-zero send did not, before libpaste-xdp 2a64ddb). @return 0, or -1 when the
 * connection is gone.
 */
int flush_out(struct kvd *d, struct paste_conn *c, struct kconn *kc)
{
	if (kc->master) { /* the replication link: the primary gets no replies */
		out_drop(d, kc);
		return 0;
	}
	return daemon_replyq_flush(&kc->q, c, d->ctx);
}

/*
 * End of on_data: value bytes still queued must outlive this round (a DEL or overwrite releases
 * them after the round's fence), so take our own reference to each; if that fails, copy them.
 */
void pin_queued(struct kvd *d, struct kconn *kc)
{
	uint64_t pins = kc->q.pins, copies = kc->q.pin_copies;

	daemon_replyq_pin(&kc->q, d->ctx, d->pool);
	d->st.pins += kc->q.pins - pins;
	d->st.pin_copies += kc->q.pin_copies - copies;
}

void out_drop(struct kvd *d, struct kconn *kc)
{
	daemon_replyq_drop(&kc->q, d->ctx);
}

/* ---- arguments --------------------------------------------------------------------------- */

uint32_t arg_len(const struct req *r, unsigned i)
{
	return r->cmd->argv[i].len;
}

/* Argument @i as contiguous bytes (in place, or gathered into the arena). NULL: no room. */
const uint8_t *arg(struct req *r, unsigned i)
{
	struct kconn *kc = r->kc;
	uint32_t n = arg_len(r, i);
	const uint8_t *q;
	uint8_t *tmp;

	if (r->cmd->inl)
		return kc->rp.line + r->cmd->argv[i].off;
	q = resp_buf_contig(r->b, r->base + r->cmd->argv[i].off, n);
	if (q)
		return q;
	tmp = arena_alloc(r->d, n);
	if (!tmp)
		return NULL;
	resp_buf_copy(r->b, r->base + r->cmd->argv[i].off, n, tmp);
	return tmp;
}

bool arg_is(struct req *r, unsigned i, const char *word)
{
	size_t n = strlen(word);
	const uint8_t *a;

	if (arg_len(r, i) != n)
		return false;
	a = arg(r, i);
	for (size_t k = 0; a && k < n; k++)
		if (tolower(a[k]) != tolower((unsigned char)word[k]))
			return false;
	return a != NULL;
}

bool arg_ll(struct req *r, unsigned i, int64_t *v)
{
	const uint8_t *a = arg(r, i);

	return a && resp_parse_ll(a, arg_len(r, i), v);
}

/*
 * Argument @i in stored form: its bytes and the one after them. In a RESP request that byte is the
 * framing '\r' and the whole range may lie in one received slot; otherwise gather it.
 */
int arg_str(struct req *r, unsigned i, struct str *s)
{
	uint32_t n = arg_len(r, i);
	const uint8_t *q = NULL;
	uint8_t *tmp;

	if (!r->cmd->inl)
		q = resp_buf_contig(r->b, r->base + r->cmd->argv[i].off, (size_t)n + 1);
	if (q) {
		*s = (struct str){.p = q, .n = n + 1, .pool = !r->queued};
		return 0;
	}
	tmp = arena_alloc(r->d, (size_t)n + 1);
	if (!tmp)
		return -ENOMEM;
	if (r->cmd->inl)
		memcpy(tmp, r->kc->rp.line + r->cmd->argv[i].off, n);
	else
		resp_buf_copy(r->b, r->base + r->cmd->argv[i].off, n, tmp);
	tmp[n] = '\r';
	*s = (struct str){.p = tmp, .n = n + 1, .pool = false};
	return 0;
}

/* The tag byte a key of database @db is stored with ('\r' for 0: the RESP framing byte). */
uint8_t db_tag(int db)
{
	return db ? (uint8_t)(0x80 + db) : '\r';
}

/* Argument @i as a key of the connection's database, in stored form. */
int arg_key(struct req *r, unsigned i, struct str *s)
{
	return arg_key_db(r, i, r->kc->db, s);
}

/* Argument @i as a key of database @db, in stored form. */
int arg_key_db(struct req *r, unsigned i, int db, struct str *s)
{
	uint32_t n = arg_len(r, i);
	const uint8_t *a;
	uint8_t *tmp;

	if (n > lkey_inline(r->d))
		return lkey_arg(r, i, db, s);
	if (!db)
		return arg_str(r, i, s);
	a = arg(r, i);
	tmp = arena_alloc(r->d, (size_t)n + 1);
	if (!a || !tmp)
		return -ENOMEM;
	memcpy(tmp, a, n);
	tmp[n] = db_tag(db);
	*s = (struct str){.p = tmp, .n = n + 1, .pool = false};
	return 0;
}

/* ---- the store --------------------------------------------------------------------------- */

/* ---- connections -------------------------------------------------------------------------- */

int on_accept(struct paste_conn *c, void *user)
{
	struct kvd *d = user;
	struct kconn *kc = calloc(1, sizeof(*kc));

	if (!kc)
		return -ENOMEM;
	kc->d = d;
	kc->id = ++d->next_client_id;
	kc->c = c;
	resp_parser_init(&kc->rp, &d->lim);
	paste_conn__set_user(c, kc);
	daemon_conn_add(&d->loop, &kc->dc, c);
	d->st.conns++;
	d->conns_open++;
	return 0;
}

/* The connection's pending bytes as parser segments. */
int view(struct paste_conn *c, struct kconn *kc, struct resp_buf *b)
{
	unsigned n;
	const struct paste_slot *s = paste_conn__slots(c, &n);
	unsigned k = kc->nspill;

	if (n + k > kc->segs_cap) {
		struct resp_seg *v = realloc(kc->segs, (n + k) * sizeof(*v));

		if (!v)
			return -ENOMEM;
		kc->segs = v;
		kc->segs_cap = n + k;
	}
	for (unsigned i = 0; i < k; i++) /* a large request's first bytes, kept */
		kc->segs[i] = (struct resp_seg){
		    .p = paste_pool__ref_ptr(kc->d->pool, &kc->spill[i]), .len = kc->spill[i].len};
	for (unsigned i = 0; i < n; i++)
		kc->segs[k + i] = (struct resp_seg){.p = s[i].data, .len = s[i].len};
	resp_buf_init(b, kc->segs, n + k);
	return 0;
}

void skipped_reply(struct kvd *d, struct kconn *kc, const struct resp_cmd *cmd)
{
	d->st.skipped++;
	if (cmd->why == RESP_SKIP_ARG)
		out_err(kc, "ERR string exceeds maximum allowed size (max-value %u)", d->max_value);
	else
		out_err(kc, "ERR request exceeds maximum allowed size (max-request %u)",
		        d->lim.max_request);
}

/*
 * A request too large to wait pending whole (lwIP's window, the kernel transport's receive
 * budget): keep its bytes received so far where they are (references on their frames) and
 * consume them, so more can arrive. The parser goes on unchanged: view() puts the kept bytes
 * first. @return 0, or -1 (no pool room: the connection is closed with an error).
 */
static int spill(struct kvd *d, struct paste_conn *c, struct kconn *kc, size_t base)
{
	size_t pend = paste_conn__pending(c), off = kc->spilled ? 0 : base;
	unsigned max = 0, n = 0;
	const struct paste_slot *s = paste_conn__slots(c, &max);

	if (pend <= off)
		return 0;
	if (kc->nspill + max > kc->spill_cap) {
		unsigned cap = (kc->nspill + max) * 2;
		struct paste_ref *v = realloc(kc->spill, cap * sizeof(*v));

		(void)s;
		if (!v)
			return -1;
		kc->spill = v;
		kc->spill_cap = cap;
	}
	if (paste_conn__keep(c, off, pend - off, false, kc->spill + kc->nspill,
	                     kc->spill_cap - kc->nspill, &n)) {
		for (unsigned i = 0; i < n; i++)
			paste_release(d->ctx, &kc->spill[kc->nspill + i]);
		d->st.oom++;
		out_err(kc, "ERR no pool room to receive a request this large");
		kc->quit = true;
		return -1;
	}
	kc->nspill += n;
	kc->spilled += pend - off;
	d->st.spills++;
	d->st.spill_bytes += pend - off;
	paste_conn__consume(c, pend);
	return 0;
}

/* The request the kept bytes began is done: drop our references (stored values hold theirs). */
static void spill_drop(struct kvd *d, struct kconn *kc)
{
	for (unsigned i = 0; i < kc->nspill; i++)
		paste_release(d->ctx, &kc->spill[i]);
	kc->nspill = 0;
	kc->spilled = 0;
	kc->spill_done = false;
}

/* Run the pending requests. @return bytes to consume; kc->waiting when a request is partial. */
size_t serve(struct kvd *d, struct paste_conn *c, struct kconn *kc)
{
	struct resp_buf b;
	size_t base = 0;

	kc->waiting = false;
	if (view(c, kc, &b))
		return 0;
	while (!kc->quit) {
		struct resp_cmd cmd;
		struct req r = {.d = d, .kc = kc, .b = &b, .cmd = &cmd};
		int res;

		if (kc->blocked)
			break; /* WAIT: the requests after it wait (kv_primary.c) */
		if (kc->q.queued >= KV_OUT_HIGH &&
		    (flush_out(d, c, kc) || kc->q.queued >= KV_OUT_HIGH))
			break; /* the peer does not read: stop reading it */
		res = resp_parse(&kc->rp, &b, base, &cmd);
		r.base = base;
		arena_reset(d);
		switch (res) {
		case RESP_AGAIN:
			kc->waiting = true;
			/* the partial request is large: keep it and consume it (unless a kept one
			 * just ended: its references go first, at the end of on_data) */
			if (!kc->spill_done && b.len - base >= KV_SPILL) {
				spill(d, c, kc, base);
				return 0; /* consumed by spill() */
			}
			return base > kc->spilled ? base - kc->spilled : 0;
		case RESP_CMD:
			switch (d->mw ? kvmw_route(&r, c) : KVMW_HERE) {
			case KVMW_HERE:
				dispatch(&r);
				break;
			case KVMW_LATER: /* no free slot: leave it pending, retried */
				return base > kc->spilled ? base - kc->spilled : 0;
			}
			break;
		case RESP_SKIPPED:
			skipped_reply(d, kc, &cmd);
			break;
		case RESP_ERROR:
			d->st.proto_errors++;
			out_err(kc, "ERR %s", cmd.err);
			kc->quit = true;
			break;
		case RESP_EMPTY:
		case RESP_SKIP:
			break;
		default: /* -ENOMEM */
			out_err(kc, "ERR out of memory");
			kc->quit = true;
			break;
		}
		base += cmd.len;
		if (kc->spilled && base >= kc->spilled)
			kc->spill_done = true;
	}
	return base > kc->spilled ? base - kc->spilled : 0;
}

void on_data(struct paste_conn *c, void *user)
{
	struct kvd *d = user;
	struct kconn *kc = paste_conn__user(c);
	size_t done;

	if (kc->closing)
		return;
	d->now_ms = wall_ms();
	if (flush_out(d, c, kc) || (kc->mw && kvmw_stalled(kc)))
		return;
	while (!kc->quit && kc->q.queued < KV_OUT_HIGH) {
		bool again;

		done = serve(d, c, kc);
		if (done)
			paste_conn__consume(c, done);
		if (flush_out(d, c, kc))
			return;
		pin_queued(d, kc);
		/* a large request ran: drop our references on its bytes; a large one right after it
		 * must be kept now (the transport may not call again while so much is pending) */
		again = kc->spill_done && kc->waiting;
		if (kc->spill_done)
			spill_drop(d, kc);
		if (!again)
			break;
	}
	/* progress now; a request begun and not complete is timed from its first bytes */
	daemon_conn_touch(&kc->dc, daemon_now_ns());
	if (!(kc->waiting && (paste_conn__pending(c) || kc->spilled)))
		daemon_conn_request(&kc->dc, 0);
	else if (!kc->dc.req_ns)
		daemon_conn_request(&kc->dc, kc->dc.last_ns);
	if (kc->q.queued || (kc->mw && kvmw_pending(kc)))
		return; /* on_data runs again when the send buffer has room (or the reply is in) */
	if (kc->quit || (paste_conn__eof(c) && (kc->waiting || !paste_conn__pending(c)))) {
		paste_conn__close(c);
		kc->closing = true;
	}
}

void on_close(struct paste_conn *c, int err, void *user)
{
	struct kvd *d = user;
	struct kconn *kc = paste_conn__user(c);

	if (!kc)
		return;
	kv_primary_closed(d, kc);
	out_drop(d, kc);
	spill_drop(d, kc);
	multi_free(d, kc);
	kvmw_conn_closed(kc);
	resp_parser_free(&kc->rp);
	daemon_replyq_free(&kc->q, d->ctx);
	free(kc->segs);
	free(kc->spill);
	daemon_conn_remove(&d->loop, &kc->dc);
	free(kc);
	d->conns_open--;
}
