/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon_replyq.c - the daemons' reply queue (daemon_replyq.h): copy segments in a growing buffer,
 * borrowed pool bytes pinned at the end of the callback, references released once sent.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_replyq.h"

static ssize_t q_send(const struct daemon_replyq *q, struct paste_conn *c, const void *p, size_t n)
{
	return q->io && q->io->send ? q->io->send(c, p, n) : paste_conn__send(c, p, n);
}

static int q_keep(const struct daemon_replyq *q, struct paste_ctx *ctx, const void *p, size_t n,
                  struct paste_ref *ref)
{
	return q->io && q->io->keep ? q->io->keep(ctx, p, n, ref) : paste_keep(ctx, p, n, ref);
}

static void q_release(struct daemon_replyq *q, struct paste_ctx *ctx, const struct paste_ref *ref)
{
	if (q->io && q->io->release)
		q->io->release(ctx, ref);
	else
		paste_release(ctx, ref);
	q->releases++;
}

static void *q_ref_ptr(const struct daemon_replyq *q, const struct paste_pool *pool,
                       const struct paste_ref *ref)
{
	return q->io && q->io->ref_ptr ? q->io->ref_ptr(pool, ref) : paste_pool__ref_ptr(pool, ref);
}

int daemon_replyq_push(struct daemon_replyq *q, const struct daemon_rseg *s)
{
	if (q->head + q->n == q->cap) {
		if (q->head) { /* slide down before growing */
			memmove(q->seg, q->seg + q->head, q->n * sizeof(*q->seg));
			q->head = 0;
		} else {
			size_t cap = q->cap ? q->cap * 2 : 16;
			struct daemon_rseg *v = realloc(q->seg, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			q->seg = v;
			q->cap = cap;
		}
	}
	q->seg[q->head + q->n++] = *s;
	q->queued += s->len;
	return 0;
}

int daemon_replyq_reserve(struct daemon_replyq *q, size_t more)
{
	size_t cap = q->buf_cap ? q->buf_cap : 4096;
	uint8_t *p;

	if (q->buf_len + more <= q->buf_cap)
		return 0;
	while (cap < q->buf_len + more)
		cap *= 2;
	p = realloc(q->buf, cap);
	if (!p)
		return -ENOMEM;
	q->buf = p;
	q->buf_cap = cap;
	return 0;
}

int daemon_replyq_copy(struct daemon_replyq *q, const void *p, size_t n)
{
	struct daemon_rseg *last = q->n ? daemon_replyq_at(q, q->n - 1) : NULL;

	if (!n)
		return 0;
	if (daemon_replyq_reserve(q, n))
		return -ENOMEM;
	memcpy(q->buf + q->buf_len, p, n);
	if (last && last->kind == RSEG_COPY && last->off + last->len == q->buf_len &&
	    (uint64_t)last->len + n <= UINT32_MAX) {
		last->len += (uint32_t)n;
		q->queued += n;
	} else {
		struct daemon_rseg s = {.kind = RSEG_COPY, .len = (uint32_t)n, .off = q->buf_len};

		if (n > UINT32_MAX || daemon_replyq_push(q, &s))
			return -ENOMEM;
	}
	q->buf_len += n;
	return 0;
}

int daemon_replyq_borrow(struct daemon_replyq *q, const void *p, size_t n)
{
	struct daemon_rseg s = {.kind = RSEG_BORROW, .len = (uint32_t)n, .p = p};

	if (n > UINT32_MAX)
		return -EINVAL;
	if (!n)
		return 0;
	return daemon_replyq_push(q, &s);
}

ssize_t daemon_replyq_send(struct daemon_replyq *q, struct paste_conn *c, const void *p, size_t n,
                           bool borrow)
{
	ssize_t w = 0;
	int err;

	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	if (!q->n && n) {
		w = q_send(q, c, p, n);
		if (w < 0)
			return -ENOTCONN;
	}
	if ((size_t)w == n)
		return w;
	if (borrow)
		err = daemon_replyq_borrow(q, (const uint8_t *)p + w, n - (size_t)w);
	else
		err = daemon_replyq_copy(q, (const uint8_t *)p + w, n - (size_t)w);
	return err ? w : (ssize_t)n;
}

size_t daemon_replyq_pin(struct daemon_replyq *q, struct paste_ctx *ctx,
                         const struct paste_pool *pool)
{
	size_t left = 0;

	for (size_t i = 0; i < q->n; i++) {
		struct daemon_rseg *s = daemon_replyq_at(q, i);

		if (s->kind != RSEG_BORROW)
			continue;
		if (q_keep(q, ctx, s->p, s->len, &s->pin) == 0) {
			s->p = q_ref_ptr(q, pool, &s->pin); /* copy_threshold may copy */
			s->kind = RSEG_PIN;
			q->pins++;
			continue;
		}
		if (daemon_replyq_reserve(q, s->len) == 0) { /* copy: still valid now */
			memcpy(q->buf + q->buf_len, s->p, s->len);
			s->off = q->buf_len;
			q->buf_len += s->len;
			s->kind = RSEG_COPY;
			q->pin_copies++;
			continue;
		}
		left++;
	}
	return left;
}

void daemon_replyq_pop(struct daemon_replyq *q, struct paste_ctx *ctx)
{
	struct daemon_rseg *s = daemon_replyq_at(q, 0);

	if (s->kind == RSEG_PIN)
		q_release(q, ctx, &s->pin);
	q->queued -= s->len;
	q->head++;
	if (--q->n == 0) {
		q->head = 0;
		q->buf_len = 0;
	}
}

int daemon_replyq_flush(struct daemon_replyq *q, struct paste_conn *c, struct paste_ctx *ctx)
{
	while (q->n) {
		struct daemon_rseg *s = daemon_replyq_at(q, 0);
		ssize_t w = q_send(q, c, daemon_replyq_bytes(q, s), s->len);

		if (w < 0)
			return -1;
		q->queued -= (size_t)w;
		s->len -= (uint32_t)w;
		if (s->kind == RSEG_COPY)
			s->off += (size_t)w;
		else
			s->p += w;
		if (w == 0)
			return 0; /* full: on_data runs again when space frees up */
		if (!s->len)
			daemon_replyq_pop(q, ctx);
	}
	return 0;
}

void daemon_replyq_drop(struct daemon_replyq *q, struct paste_ctx *ctx)
{
	while (q->n)
		daemon_replyq_pop(q, ctx);
	q->queued = 0;
}

void daemon_replyq_free(struct daemon_replyq *q, struct paste_ctx *ctx)
{
	daemon_replyq_drop(q, ctx);
	free(q->buf);
	free(q->seg);
	q->buf = NULL;
	q->seg = NULL;
	q->buf_len = q->buf_cap = q->head = q->cap = 0;
}

/* The decimal digits of @v at @p (no terminator, at most 20); @return how many. The digits are
 * written in place, last first: a copy out of a scratch buffer of byte stores stalled on store
 * forwarding (it showed in the profile of paste-wal's every 201). paste-wal's and paste-kv's
 * replies both use it. */
size_t daemon_put_u64(char *p, uint64_t v)
{
	static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
	                               "25262728293031323334353637383940414243444546474849"
	                               "50515253545556575859606162636465666768697071727374"
	                               "75767778798081828384858687888990919293949596979899";
	size_t n = 1;
	char *e;

	for (uint64_t t = v; t >= 10; t /= 10)
		n++;
	e = p + n;
	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;

		v /= 100;
		*--e = pairs[d + 1];
		*--e = pairs[d];
	}
	if (v >= 10) {
		*--e = pairs[v * 2 + 1];
		*--e = pairs[v * 2];
	} else {
		*--e = (char)('0' + v);
	}
	return n;
}
