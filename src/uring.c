/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * uring.c - the ring under the io_uring transport (uring.h): set-up and teardown, the
 * provided-buffer ring whose buffers are pool frames (a frame is FILL while the kernel may write
 * it; an entry whose frame was received is refilled with a FREE frame, never with one the
 * application still holds), the socket slot table, and closes/cancellations queued for the next
 * submit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uring.h"
#include "uring_abi.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define U_SQ_ENTRIES 1024u
#define U_BUFS_MAX   32768u /* provided-buffer ring entries: bid is 16 bits */

struct io_uring_sqe *paste_uring__sqe(struct u_state *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) { /* the submission queue is full: hand what is queued to the kernel */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

/* Close @fd after the next submit: SQEs still queued may name it. */
void paste_uring__defer_close(struct u_state *u, int fd)
{
	if (fd < 0)
		return;
	if (u->nclosing == u->nsocks) { /* cannot happen: one fd per slot */
		io_uring_submit(&u->ring);
		while (u->nclosing)
			close(u->closing[--u->nclosing]);
	}
	u->closing[u->nclosing++] = fd;
}

void paste_uring__close_deferred(struct u_state *u)
{
	while (u->nclosing)
		close(u->closing[--u->nclosing]);
}

void paste_uring__cancel(struct u_state *u, uint64_t data)
{
	struct io_uring_sqe *sqe = paste_uring__sqe(u);

	if (!sqe)
		return; /* the ring is unusable; close() ends the request with the ring */
	io_uring_prep_cancel64(sqe, data, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)U_CANCEL << 56);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

struct u_sock *paste_uring__sock_get(struct u_state *u)
{
	struct u_sock *s;

	if (!u->nfree)
		return NULL;
	s = &u->socks[u->free_socks[--u->nfree]];
	s->used = true;
	s->fd = -1;
	s->c = NULL;
	s->l = NULL;
	s->recv_on = s->cancelled = s->paused = s->starved = s->fly_on = s->connecting = false;
	s->out_len = s->fly_len = s->fly_off = 0;
	return s;
}

void paste_uring__sock_put(struct u_state *u, struct u_sock *s)
{
	s->used = false;
	s->gen++;
	s->c = NULL;
	s->l = NULL;
	u->free_socks[u->nfree++] = (uint32_t)(s - u->socks);
}

/* Give empty ring entries free frames (FREE -> FILL): the kernel may write them from now on. */
void paste_uring__refill(struct paste_ctx *ctx)
{
	struct u_state *u = ust(ctx);
	int added = 0;

	while (u->nempty && paste_frames__nr(ctx->frames, PASTE_FRAME_FREE) > U_FREE_SPARE) {
		uint16_t bid = u->empty[u->nempty - 1];
		uint32_t idx;

		if (paste_frames__alloc(ctx->frames, PASTE_FRAME_FILL, &idx))
			break;
		u->nempty--;
		u->bid_frame[bid] = idx;
		io_uring_buf_ring_add(u->br, ctx->area + (uint64_t)idx * ctx->frame_size,
		                      ctx->frame_size, bid, io_uring_buf_ring_mask(u->nbufs),
		                      added++);
	}
	if (added)
		io_uring_buf_ring_advance(u->br, added);
}

static int u_setup_ring(struct paste_ctx *ctx, struct u_state *u)
{
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER |
	                                     IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
	                                     IORING_SETUP_CQSIZE,
	                            .cq_entries = 16 * U_SQ_ENTRIES};
	struct io_uring_buf_reg reg = {.bgid = U_BGID};
	int r;

	r = io_uring_queue_init_params(U_SQ_ENTRIES, &u->ring, &p);
	if (r < 0)
		return paste_fail(r,
		                  "io_uring transport: io_uring_queue_init (DEFER_TASKRUN, "
		                  "SINGLE_ISSUER): %s (needs Linux 6.1 or later, and io_uring not "
		                  "disabled by the kernel.io_uring_disabled sysctl or a seccomp "
		                  "filter; --transport kernel works without it)",
		                  strerror(-r));
	u->ring_ok = true;
	/* The ring entries: opts.ring_size (as the AF_XDP fill ring), at most a quarter of the
	 * pool's frames so kept bytes do not starve it at once. */
	u->nbufs = ctx->opts.ring_size < U_BUFS_MAX ? ctx->opts.ring_size : U_BUFS_MAX;
	while (u->nbufs > 8 && u->nbufs > ctx->frame_count / 4)
		u->nbufs /= 2;
	u->br_bytes = u->nbufs * sizeof(struct io_uring_buf);
	u->br = mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->br == MAP_FAILED) {
		u->br = NULL;
		return paste_fail(-errno, "io_uring transport: mmap of the buffer ring: %s",
		                  strerror(errno));
	}
	io_uring_buf_ring_init(u->br);
	reg.ring_addr = (uint64_t)(uintptr_t)u->br;
	reg.ring_entries = u->nbufs;
	r = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (r < 0)
		return paste_fail(r,
		                  "io_uring transport: registering the provided-buffer ring: %s "
		                  "(needs Linux 5.19 or later)",
		                  strerror(-r));
	u->br_registered = true;
	return 0;
}

int paste_uring__open(struct paste_ctx *ctx)
{
	struct u_state *u = ust(ctx);
	uint32_t i;
	int err;

	u->nsocks = ctx->opts.max_conns * 2 + 32; /* + closing connections and listeners */
	u->socks = calloc(u->nsocks, sizeof(*u->socks));
	u->free_socks = calloc(u->nsocks, sizeof(*u->free_socks));
	u->closing = calloc(u->nsocks, sizeof(*u->closing));
	if (!u->socks || !u->free_socks || !u->closing)
		return paste_fail(-ENOMEM, "paste_open: out of memory for %u sockets", u->nsocks);
	for (i = 0; i < u->nsocks; i++)
		u->free_socks[u->nfree++] = u->nsocks - 1 - i;
	err = u_setup_ring(ctx, u);
	if (err)
		return err;
	u->bid_frame = calloc(u->nbufs, sizeof(*u->bid_frame));
	u->empty = calloc(u->nbufs, sizeof(*u->empty));
	if (!u->bid_frame || !u->empty)
		return paste_fail(-ENOMEM, "paste_open: out of memory");
	for (i = 0; i < u->nbufs; i++) {
		u->bid_frame[i] = U_NO_FRAME;
		u->empty[u->nempty++] = (uint16_t)(u->nbufs - 1 - i);
	}
	/* Fault the frame area in now, as the kernel transport does (first-touch page faults). */
	if (madvise(ctx->area, (size_t)ctx->frame_count * ctx->frame_size, MADV_POPULATE_WRITE))
		pr_info("io_uring transport: pool pages not pre-faulted (%s)", strerror(errno));
	paste_uring__refill(ctx);
	if (u->nempty == u->nbufs)
		return paste_fail(-ENOSPC,
		                  "io_uring transport: no free pool frame for the receive ring "
		                  "(%u frames free): use a larger pool or release kept bytes",
		                  paste_frames__nr(ctx->frames, PASTE_FRAME_FREE));
	pr_info("io_uring transport: multishot recv into %u pool frames of a provided-buffer ring "
	        "(DEFER_TASKRUN)",
	        u->nbufs);
	return 0;
}

void paste_uring__close(struct paste_ctx *ctx)
{
	struct u_state *u = ust(ctx);
	uint32_t i;

	if (!u)
		return;
	if (u->ring_ok)
		io_uring_queue_exit(&u->ring); /* ends every request: the kernel writes no frame */
	paste_uring__close_deferred(u);
	for (i = 0; u->socks && i < u->nsocks; i++) {
		if (u->socks[i].used && u->socks[i].fd >= 0)
			close(u->socks[i].fd);
		free(u->socks[i].out);
		free(u->socks[i].fly);
	}
	for (i = 0; u->bid_frame && i < u->nbufs; i++)
		if (u->bid_frame[i] != U_NO_FRAME)
			paste_frames__move(ctx->frames, u->bid_frame[i], PASTE_FRAME_FILL,
			                   PASTE_FRAME_FREE);
	if (u->br)
		munmap(u->br, u->br_bytes);
	free(u->bid_frame);
	free(u->empty);
	free(u->socks);
	free(u->free_socks);
	free(u->closing);
	free(u);
	ctx->tp_state = NULL;
}
