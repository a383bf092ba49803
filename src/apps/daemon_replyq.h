/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon_replyq.h - a connection's reply queue, shared by the daemons: segments sent in order,
 * each either
 *   COPY   bytes copied into the queue's own buffer (headers, small values, scratch),
 *   BORROW bytes that live in the pool and stay valid until the end of this callback (a value
 *          found in an index: no copy while the reply leaves in the same round), or
 *   PIN    pool bytes the queue holds its own reference to (paste_keep), released once sent,
 *          so a reply can outlive the round in which a DEL or overwrite released the data.
 * At the end of a callback the program calls daemon_replyq_pin(): every BORROW segment still
 * queued is pinned (or, if no reference can be taken, copied while it is still valid).
 * daemon_replyq_flush() sends what the send buffer takes and stops at the first send that takes
 * nothing (the connection's on_data runs again when space frees up); daemon_replyq_drop()
 * releases everything (connection closed). A reference is released exactly once: when its
 * segment is fully sent or dropped.
 */
#ifndef PASTE_DAEMON_REPLYQ_H
#define PASTE_DAEMON_REPLYQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <paste/paste.h>
#include <paste/pool.h>

enum daemon_rseg_kind { RSEG_COPY, RSEG_BORROW, RSEG_PIN };

struct daemon_rseg {
	uint8_t kind;         /* enum daemon_rseg_kind */
	uint32_t len;         /* bytes still to send */
	size_t off;           /* RSEG_COPY: at buf + off */
	const uint8_t *p;     /* RSEG_BORROW, RSEG_PIN */
	struct paste_ref pin; /* RSEG_PIN: the queue's reference, released once sent */
};

/* What the queue calls (NULL: the library's paste_conn__send, paste_keep, paste_release,
 * paste_pool__ref_ptr). Tests plug fakes in here. */
struct daemon_replyq_io {
	ssize_t (*send)(struct paste_conn *c, const void *p, size_t n);
	int (*keep)(struct paste_ctx *ctx, const void *p, size_t n, struct paste_ref *ref);
	int (*release)(struct paste_ctx *ctx, const struct paste_ref *ref);
	void *(*ref_ptr)(const struct paste_pool *pool, const struct paste_ref *ref);
};

struct daemon_replyq {
	uint8_t *buf; /* COPY bytes; reset when the queue empties */
	size_t buf_len, buf_cap;
	struct daemon_rseg *seg; /* seg[head .. head+n) are queued, oldest first */
	size_t head, n, cap;
	size_t queued; /* bytes queued in all segments */
	uint64_t pins, pin_copies,
	    releases; /* references taken, BORROWs copied, references given back */
	const struct daemon_replyq_io *io; /* NULL: the library */
};

/* Queue @n bytes, copied (appended to the last segment when it is a COPY segment that ends at the
 * end of the buffer). @return 0 or -ENOMEM (nothing queued). */
int daemon_replyq_copy(struct daemon_replyq *q, const void *p, size_t n);
/* Queue @n pool bytes at @p by pointer, valid until daemon_replyq_pin() (end of this callback).
 * @return 0, -EINVAL (@n over 4 GiB), or -ENOMEM. */
int daemon_replyq_borrow(struct daemon_replyq *q, const void *p, size_t n);
/* Send @n bytes at @p at once when nothing is queued before them, and queue the rest of what the
 * send buffer did not take (all of it when the queue is not empty: order is kept): borrowed when
 * @borrow (pool bytes valid until daemon_replyq_pin() at the end of this callback), else copied.
 * Bytes of a received slot must be pinned before the slot is consumed (consuming can free the
 * frame). @return the bytes taken, sent or queued: @n, or fewer when the rest could not be queued
 * (no memory); -ENOTCONN when the connection is gone (nothing taken). */
ssize_t daemon_replyq_send(struct daemon_replyq *q, struct paste_conn *c, const void *p, size_t n,
                           bool borrow);
/* Append a segment as is (kind, len, off/p/pin filled by the caller). @return 0 or -ENOMEM. */
int daemon_replyq_push(struct daemon_replyq *q, const struct daemon_rseg *s);
/* Room for @more COPY bytes in the buffer. @return 0 or -ENOMEM. */
int daemon_replyq_reserve(struct daemon_replyq *q, size_t more);
/* The i-th queued segment (0: the oldest) and its bytes. */
static inline struct daemon_rseg *daemon_replyq_at(struct daemon_replyq *q, size_t i)
{
	return &q->seg[q->head + i];
}
static inline const uint8_t *daemon_replyq_bytes(const struct daemon_replyq *q,
                                                 const struct daemon_rseg *s)
{
	return s->kind == RSEG_COPY ? q->buf + s->off : s->p;
}
/* End of the callback: pin every BORROW segment (a reference of the queue's own, the pointer
 * moved to where the reference names: copy_threshold may have copied); copy one into the buffer
 * when no reference can be taken. A BORROW neither pinned nor copied (no memory) stays BORROW:
 * @return the number of those (0 normally). */
size_t daemon_replyq_pin(struct daemon_replyq *q, struct paste_ctx *ctx,
                         const struct paste_pool *pool);
/* Send what the send buffer takes, releasing each PIN once its segment is out. @return 0 (all
 * sent, or a send took nothing: on_data runs again when space frees up), or -1 when the connection
 * is gone (a send failed; the queue is left for daemon_replyq_drop()). */
int daemon_replyq_flush(struct daemon_replyq *q, struct paste_conn *c, struct paste_ctx *ctx);
/* Remove the oldest segment (releasing its reference). */
void daemon_replyq_pop(struct daemon_replyq *q, struct paste_ctx *ctx);
/* Remove every segment (releasing every reference): the connection closed, or replies are not
 * wanted. The memory stays for reuse. */
void daemon_replyq_drop(struct daemon_replyq *q, struct paste_ctx *ctx);
/* Drop, then free the memory. */
void daemon_replyq_free(struct daemon_replyq *q, struct paste_ctx *ctx);

/* The decimal digits of @v at @p (no terminator, at most 20 bytes), for replies. @return how
 * many. */
size_t daemon_put_u64(char *p, uint64_t v);

#endif
