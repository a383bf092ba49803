/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * uring.h - the io_uring transport's ring and its sockets (uring.c), used by utransport.c: one ring
 * per context (DEFER_TASKRUN + SINGLE_ISSUER), the provided-buffer ring whose buffers are pool
 * frames, the socket slot table, and the closes and cancellations that wait for the next submit.
 * The transport's behaviour (accept, recv, send, close, back-pressure) is in utransport.c.
 */
#ifndef PASTE_URING_H
#define PASTE_URING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"

#define U_BGID       7   /* the provided-buffer group */
#define U_FREE_SPARE 64u /* free frames the ring refill leaves for paste_keep's packing */
#define U_NO_FRAME   UINT32_MAX

enum u_op { U_ACCEPT = 1, U_RECV, U_SEND, U_CANCEL, U_CONNECT, U_WAKE };

/* A socket: a listener or a connection (c), or a connection's leftovers while a send runs. */
struct u_sock {
	struct paste_conn *c;
	struct paste_listener *l;
	int fd;          /* -1 once closed */
	uint32_t gen;    /* bumped when the slot is freed: older completions are stale */
	uint8_t epoch;   /* bumped per recv arm: a late cancel cannot hit a newer recv */
	bool used;       /* slot taken */
	bool recv_on;    /* a multishot recv (or the accept) is armed */
	bool cancelled;  /* its cancel is queued */
	bool paused;     /* back-pressure: PASTE_U_RCVBUF bytes unconsumed */
	bool starved;    /* the recv ended with -ENOBUFS: re-arm once frames are free */
	bool fly_on;     /* a send of fly[fly_off, fly_len) is in flight */
	bool connecting; /* paste_connect: a POLLOUT poll says when the connect ended */
	uint8_t *out, *fly;
	size_t out_len, out_cap, fly_len, fly_off, fly_cap;
};

struct u_state {
	struct io_uring ring;
	bool ring_ok;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	bool br_registered;
	uint32_t nbufs;      /* ring entries */
	uint32_t *bid_frame; /* frame behind each ring entry, or U_NO_FRAME */
	uint16_t *empty;     /* ring entries waiting for a frame */
	uint32_t nempty;
	struct u_sock *socks;
	uint32_t *free_socks, nfree, nsocks;
	int *closing; /* fds to close after the next submit */
	uint32_t nclosing;
	bool starved;
};

static inline struct u_state *ust(const struct paste_ctx *ctx)
{
	return ctx->tp_state;
}

/* A completion's user data: operation, arm (recvs), slot generation, slot. */
static inline uint64_t u_data(struct u_state *u, enum u_op op, const struct u_sock *s)
{
	return (uint64_t)op << 56 | (uint64_t)s->epoch << 48 | (uint64_t)(s->gen & 0xffff) << 32 |
	       (uint64_t)(s - u->socks);
}

/* After paste_open's pool: the slot table, the ring and its buffer ring filled with free frames.
 * On failure paste_uring__close() undoes what was done. */
int paste_uring__open(struct paste_ctx *ctx);
/* Undo paste_uring__open (also a partial one): the ring's frames go back to the allocator. */
void paste_uring__close(struct paste_ctx *ctx);
/* A submission entry (submitting what is queued if the queue is full), or NULL. */
struct io_uring_sqe *paste_uring__sqe(struct u_state *u);
/* Close @fd after the next submit (SQEs still queued may name it); close_deferred does it. */
void paste_uring__defer_close(struct u_state *u, int fd);
void paste_uring__close_deferred(struct u_state *u);
/* Cancel the request with user data @data (its own completion skipped on success). */
void paste_uring__cancel(struct u_state *u, uint64_t data);
/* A free socket slot (NULL if none), reset; sock_put frees it and bumps its generation. */
struct u_sock *paste_uring__sock_get(struct u_state *u);
void paste_uring__sock_put(struct u_state *u, struct u_sock *s);
/* Give empty ring entries free frames (FREE -> FILL). */
void paste_uring__refill(struct paste_ctx *ctx);

#endif /* PASTE_URING_H */
