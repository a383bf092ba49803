/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ktransport.c - the same connections over ordinary kernel TCP sockets (PASTE_TRANSPORT_KERNEL).
 *
 * The path a server without PASTE has: the kernel's TCP, epoll, and one recv() per frame straight
 * into a pool frame (the kernel copies the payload from its socket buffer into the pool). Each
 * received chunk is wrapped as the same custom pbuf the AF_XDP path uses and appended to the
 * connection's FIFO, so the application sees the same slots and the same persist/keep/fence rules,
 * and a benchmark of the two transports compares only the network path.
 *
 * Replies are copied into a per-connection buffer and written at the end-of-round flush, after the
 * fence, as on the paste path. Back-pressure: reading a connection pauses while PASTE_K_RCVBUF
 * bytes are unconsumed (lwIP's window plays that role on the paste path), and send() accepts at
 * most PASTE_K_SNDBUF queued bytes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctx.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define K_EVENTS       256
#define K_LISTENER_TAG 1ull /* low bit of epoll data marks a listener */

int paste_k__open(struct paste_ctx *ctx)
{
	ctx->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ctx->epfd < 0)
		return paste_fail(-errno, "epoll_create1: %s", strerror(errno));
	/*
	 * Fault the frame area in now. The paste transport gets this from registering the pool as
	 * UMEM (the kernel pins every page); without it each frame recv() touches for the first
	 * time costs a page fault (issue 15: ~8 % of the server's samples at 64 connections).
	 * Best effort: kernels before 5.14 lack MADV_POPULATE_WRITE and fault on first use.
	 */
	if (madvise(ctx->area, (size_t)ctx->frame_count * ctx->frame_size, MADV_POPULATE_WRITE))
		pr_info("kernel transport: pool pages not pre-faulted (%s): the first use of each "
		        "frame page faults",
		        strerror(errno));
	ctx->kernel = true;
	pr_info(
	    "kernel transport: epoll sockets, received bytes copied into pool frames by recv()");
	return 0;
}

void paste_k__close(struct paste_ctx *ctx)
{
	if (ctx->epfd > 0)
		close(ctx->epfd);
	ctx->epfd = -1;
}

static void k_sockopts(struct paste_ctx *ctx, int fd)
{
	int one = 1, usecs = 50;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ctx->opts.busy_poll)
		setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof(usecs));
}

int paste_k__listen(struct paste_listener *l)
{
	struct paste_ctx *ctx = l->ctx;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(l->port)};
	struct epoll_event ev = {.events = EPOLLIN};
	int fd, one = 1, err;

	a.sin_addr.s_addr = ctx->ip; /* 0 = every address */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1024)) {
		err = -errno;
		close(fd);
		return err;
	}
	ev.data.u64 = (uint64_t)(uintptr_t)l | K_LISTENER_TAG;
	if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		err = -errno;
		close(fd);
		return err;
	}
	l->fd = fd;
	return 0;
}

static void k_events(struct paste_conn *c)
{
	struct epoll_event ev = {.data.ptr = c};

	ev.events = (c->rd_paused ? 0 : EPOLLIN | EPOLLRDHUP) | (c->wr_armed ? EPOLLOUT : 0);
	epoll_ctl(c->ctx->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void k_accept_one(struct paste_listener *l, int fd, const struct sockaddr_in *peer)
{
	struct paste_ctx *ctx = l->ctx;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
	struct paste_conn *c = ctx->nconns < ctx->opts.max_conns ? calloc(1, sizeof(*c)) : NULL;

	if (!c)
		goto refuse;
	c->ctx = ctx;
	c->listener = l;
	c->fd = fd;
	c->peer = peer->sin_addr;
	c->peer_port = ntohs(peer->sin_port);
	ev.data.ptr = c;
	if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		free(c);
		goto refuse;
	}
	k_sockopts(ctx, fd);
	paste_conn__link(ctx, c);
	if (l->ops.on_accept && l->ops.on_accept(c, l->user) < 0) {
		c->fd = -1;
		paste_conn__unlink_free(ctx, c);
		goto refuse;
	}
	ctx->st.conns_accepted++;
	return;
refuse:
	ctx->st.conns_refused++;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0}, sizeof(struct linger));
	close(fd); /* RST, like lwIP's refusal */
}

static void k_accept(struct paste_listener *l)
{
	struct sockaddr_in peer;
	socklen_t len;
	int fd;

	for (;;) {
		len = sizeof(peer);
		fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a connection that died in the backlog */
		k_accept_one(l, fd, &peer);
	}
}

/* Read into fresh pool frames until the socket is empty or the connection has enough pending. */
static void k_read(struct paste_conn *c)
{
	struct paste_ctx *ctx = c->ctx;
	uint32_t idx;
	ssize_t n;

	while (!c->closed && c->pending < PASTE_K_RCVBUF) {
		uint8_t *frame;

		if (paste_frames__alloc(ctx->frames, PASTE_FRAME_RX, &idx)) {
			ctx->st
			    .rx_dropped++; /* pool exhausted: leave it in the socket, retry later */
			return;
		}
		frame = ctx->area + (uint64_t)idx * ctx->frame_size;
		n = recv(c->fd, frame, ctx->frame_size, MSG_DONTWAIT);
		if (n <= 0) {
			paste_frames__move(ctx->frames, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE);
			if (n == 0) {
				c->eof = true;
				c->rd_paused = true;
				k_events(c);
				paste_conn__mark_ready(c);
			} else if (errno != EAGAIN && errno != EINTR) {
				paste_k__abort(c);
				c->close_err = errno == ECONNRESET ? -ECONNRESET : -EIO;
			}
			return;
		}
		ctx->st.rx_packets++;
		ctx->st.rx_bytes += (uint64_t)n;
		if (paste_conn__q_append(c, paste_netif__wrap(ctx, idx, frame, (uint32_t)n))) {
			paste_k__abort(c);
			return;
		}
		paste_conn__mark_ready(c);
		/*
		 * A short read emptied the socket (as far as anyone can tell): stop here instead of
		 * paying a recv() that returns EAGAIN; epoll is level-triggered and reports the
		 * socket again if more has arrived (issue 15: one recv per request, not two).
		 */
		if ((uint32_t)n < ctx->frame_size)
			break;
	}
	if (!c->rd_paused && c->pending >= PASTE_K_RCVBUF) {
		c->rd_paused = true;
		k_events(c);
	}
}

void paste_k__unstarve(struct paste_ctx *ctx)
{
	struct paste_conn *c;

	if (!ctx->starved || paste_frames__nr(ctx->frames, PASTE_FRAME_FREE) < 64)
		return;
	ctx->starved = false;
	for (c = ctx->conns; c; c = c->next) {
		if (c->starved && c->fd >= 0) {
			c->starved = false;
			c->rd_paused = c->pending >= PASTE_K_RCVBUF;
			k_events(c);
		}
	}
}

void paste_k__consumed(struct paste_conn *c)
{
	if (c->rd_paused && !c->starved && !c->eof && c->pending < PASTE_K_RCVBUF / 2) {
		c->rd_paused = false;
		k_events(c);
	}
}

static void k_write(struct paste_conn *c)
{
	size_t done = 0;
	ssize_t n = 0;

	while (done < c->out_len) {
		n = send(c->fd, c->out + done, c->out_len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		done += (size_t)n;
		c->ctx->st.tx_packets++;
		c->ctx->st.tx_bytes += (uint64_t)n;
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR && done < c->out_len) {
		paste_k__abort(c);
		c->close_err = -ECONNRESET;
		return;
	}
	if (done && done < c->out_len)
		memmove(c->out, c->out + done, c->out_len - done);
	c->out_len -= done;
	if (done && c->want_write) {
		c->want_write = false;
		paste_conn__mark_ready(c);
	}
	if (c->wr_armed != (c->out_len > 0)) {
		c->wr_armed = c->out_len > 0;
		k_events(c);
	}
}

ssize_t paste_k__send(struct paste_conn *c, const void *buf, size_t len)
{
	size_t room = PASTE_K_SNDBUF - c->out_len;

	if (c->closed || c->want_close)
		return -ENOTCONN;
	if (len > room) {
		len = room;
		c->want_write = true;
	}
	if (!len)
		return 0;
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		uint8_t *o;

		while (cap < c->out_len + len)
			cap *= 2;
		o = realloc(c->out, cap);
		if (!o)
			return -ENOMEM;
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	paste_conn__mark_dirty(c);
	return (ssize_t)len;
}

/* End of round (after the fence): write what the callbacks queued; FIN once it is all out. */
void paste_k__flush(struct paste_conn *c)
{
	if (c->closed)
		return;
	k_write(c);
	if (c->closed || !c->want_close || c->out_len)
		return;
	paste_conn__q_free_all(c);
	epoll_ctl(c->ctx->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -2; /* closed: still a kernel connection until reaped */
	paste_conn__mark_dead(c, 0);
}

void paste_k__abort(struct paste_conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(c->ctx->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0},
		           sizeof(struct linger));
		close(c->fd);
		c->fd = -2;
	}
	paste_conn__q_free_all(c);
	paste_conn__mark_dead(c, -ECONNABORTED);
}

/* A paused connection reported an error: reset it instead of polling it forever. */
static bool k_failed(struct paste_conn *c)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) || !e)
		return false;
	paste_k__abort(c);
	c->close_err = -ECONNRESET;
	return true;
}

int paste_k__poll(struct paste_ctx *ctx, int ms)
{
	struct epoll_event ev[K_EVENTS];
	int n, i;

	n = epoll_wait(ctx->epfd, ev, K_EVENTS, ms);
	if (n < 0)
		return errno == EINTR ? -EINTR
		                      : paste_fail(-errno, "epoll_wait: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		struct paste_conn *c;

		if (ev[i].data.u64 & K_LISTENER_TAG) {
			k_accept(
			    (struct paste_listener *)(uintptr_t)(ev[i].data.u64 & ~K_LISTENER_TAG));
			continue;
		}
		c = ev[i].data.ptr;
		if (c->closed || c->fd < 0)
			continue;
		if ((ev[i].events & (EPOLLERR | EPOLLHUP)) && c->rd_paused && k_failed(c))
			continue;
		if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			k_read(c);
		if (!c->closed && c->fd >= 0 && (ev[i].events & EPOLLOUT))
			paste_k__flush(c);
	}
	return n;
}
