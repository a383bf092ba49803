/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ktransport.c - the same connections over ordinary kernel TCP sockets (PASTE_TRANSPORT_KERNEL).
 *
 * The path a server without PASTE has: the kernel's TCP, epoll, and one recv() per frame straight
 * into a pool frame (the kernel copies the payload from its socket buffer into the pool). Each
 * received chunk is appended to the connection's FIFO as a piece of that frame, as the AF_XDP path
 * does, so the application sees the same slots and the same persist/keep/fence rules, and a
 * benchmark of the two transports compares only the network path. One of the two tables of
 * transport.h; nothing here knows lwIP.
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
#define K_WAKE_DATA    0ull /* epoll data of the wake fd (no connection or listener is NULL) */

/* Unconsumed bytes per connection before reading pauses (the window analog), and bytes a
 * connection may have queued for sending. */
#ifndef PASTE_K_RCVBUF
#define PASTE_K_RCVBUF (64u << 10)
#endif
#ifndef PASTE_K_SNDBUF
#define PASTE_K_SNDBUF (256u << 10)
#endif

/* ctx->tp_state */
struct k_state {
	int epfd;
	bool starved; /* a connection paused reading for lack of free frames */
};

/* after each struct paste_conn: replies wait in @out until the end-of-round flush */
struct k_conn {
	int fd; /* -2 once closed */
	uint8_t *out;
	size_t out_len, out_cap;
	bool rd_paused;  /* EPOLLIN off: PASTE_K_RCVBUF bytes pending */
	bool wr_armed;   /* EPOLLOUT on: @out did not drain */
	bool starved;    /* reading paused: no free frame to recv() into */
	bool connecting; /* paste_connect: EPOLLOUT says when the connect ended */
};

struct k_listener {
	int fd;
};

static struct k_state *kst(const struct paste_ctx *ctx)
{
	return ctx->tp_state;
}

static struct k_conn *kc(struct paste_conn *c)
{
	return paste_conn__tp(c);
}

static int k_init(struct paste_ctx *ctx)
{
	struct k_state *k = calloc(1, sizeof(*k));

	if (!k)
		return paste_fail(-ENOMEM, "paste_open: out of memory");
	k->epfd = -1;
	ctx->tp_state = k;
	return 0;
}

static int k_open(struct paste_ctx *ctx)
{
	struct k_state *k = kst(ctx);

	k->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (k->epfd < 0)
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
	pr_info(
	    "kernel transport: epoll sockets, received bytes copied into pool frames by recv()");
	return 0;
}

static void k_close(struct paste_ctx *ctx)
{
	struct k_state *k = kst(ctx);

	if (!k)
		return;
	if (k->epfd >= 0)
		close(k->epfd);
	free(k);
	ctx->tp_state = NULL;
}

static void k_sockopts(struct paste_ctx *ctx, int fd)
{
	int one = 1, usecs = 50;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ctx->opts.busy_poll)
		setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof(usecs));
}

static int k_listen(struct paste_listener *l)
{
	struct paste_ctx *ctx = l->ctx;
	struct k_listener *kl = paste_listener__tp(l);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(l->port)};
	struct epoll_event ev = {.events = EPOLLIN};
	int fd, one = 1, err;

	a.sin_addr.s_addr = ctx->ip; /* 0 = every address */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ctx->opts.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) {
		err = -errno;
		close(fd);
		return err;
	}
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1024)) {
		err = -errno;
		close(fd);
		return err;
	}
	ev.data.u64 = (uint64_t)(uintptr_t)l | K_LISTENER_TAG;
	if (epoll_ctl(kst(ctx)->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		err = -errno;
		close(fd);
		return err;
	}
	kl->fd = fd;
	return 0;
}

static void k_unlisten(struct paste_listener *l)
{
	struct k_listener *kl = paste_listener__tp(l);

	if (kl->fd >= 0)
		close(kl->fd);
	kl->fd = -1;
}

static void k_events(struct paste_conn *c)
{
	struct k_conn *k = kc(c);
	struct epoll_event ev = {.data.ptr = c};

	ev.events = (k->rd_paused ? 0 : EPOLLIN | EPOLLRDHUP) | (k->wr_armed ? EPOLLOUT : 0);
	epoll_ctl(kst(c->ctx)->epfd, EPOLL_CTL_MOD, k->fd, &ev);
}

static int k_attach(struct paste_conn *c, void *handle)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
	int fd = (int)(intptr_t)handle;

	if (epoll_ctl(kst(c->ctx)->epfd, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	kc(c)->fd = fd;
	k_sockopts(c->ctx, fd);
	return 0;
}

static void k_accept_one(struct paste_listener *l, int fd, const struct sockaddr_in *peer)
{
	if (paste_conn__accept(l, &peer->sin_addr, ntohs(peer->sin_port), k_attach, NULL,
	                       (void *)(intptr_t)fd))
		return;
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
		fd = accept4(((struct k_listener *)paste_listener__tp(l))->fd,
		             (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a connection that died in the backlog */
		k_accept_one(l, fd, &peer);
	}
}

static void k_abort(struct paste_conn *c);

int paste_k__connect_fd(const struct paste_conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = c->ctx->ip};
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (c->ctx->ip && bind(fd, (struct sockaddr *)&a, sizeof(a)))
		goto fail;
	a.sin_addr = c->peer;
	a.sin_port = htons(c->peer_port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

/* Active open: a non-blocking connect from the context's address; EPOLLOUT reports the end. */
static int k_connect(struct paste_conn *c)
{
	struct k_conn *k = kc(c);
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	int fd = paste_k__connect_fd(c), err;

	if (fd < 0)
		return fd;
	if (epoll_ctl(kst(c->ctx)->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		err = -errno;
		close(fd);
		return err;
	}
	k->fd = fd;
	k->connecting = true;
	k_sockopts(c->ctx, fd);
	return 0;
}

/* The connect of @c ended (EPOLLOUT or an error): connected, or failed with SO_ERROR. */
static void k_connect_done(struct paste_conn *c)
{
	struct k_conn *k = kc(c);
	int e = 0;
	socklen_t len = sizeof(e);

	k->connecting = false;
	if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &e, &len))
		e = errno;
	if (e) {
		k_abort(c);
		paste_conn__connected(c, -e);
		return;
	}
	k_events(c); /* EPOLLIN from now on */
	paste_conn__connected(c, 0);
}

/* Reset the socket now (RST), if it is still open. */
static void k_abort(struct paste_conn *c)
{
	struct k_conn *k = kc(c);

	if (k->fd < 0)
		return;
	epoll_ctl(kst(c->ctx)->epfd, EPOLL_CTL_DEL, k->fd, NULL);
	setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0}, sizeof(struct linger));
	close(k->fd);
	k->fd = -2;
}

/* The connection failed with @err: reset it and let it be reaped. */
static void k_fail(struct paste_conn *c, int err)
{
	k_abort(c);
	paste_conn__q_free_all(c);
	paste_conn__mark_dead(c, err);
}

/* Read into fresh pool frames until the socket is empty or the connection has enough pending. */
static void k_read(struct paste_conn *c)
{
	struct paste_ctx *ctx = c->ctx;
	struct k_conn *k = kc(c);
	uint32_t idx;
	ssize_t n;

	while (!c->closed && c->pending < PASTE_K_RCVBUF) {
		uint8_t *frame;

		if (paste_frames__alloc(ctx->frames, PASTE_FRAME_RX, &idx)) {
			/* pool exhausted: leave it in the socket, retry later */
			ctx->st.rx_dropped++;
			return;
		}
		frame = ctx->area + (uint64_t)idx * ctx->frame_size;
		n = recv(k->fd, frame, ctx->frame_size, MSG_DONTWAIT);
		if (n <= 0) {
			paste_frames__move(ctx->frames, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE);
			if (n == 0) {
				c->eof = true;
				k->rd_paused = true;
				k_events(c);
				paste_conn__mark_ready(c);
			} else if (errno != EAGAIN && errno != EINTR) {
				k_fail(c, errno == ECONNRESET ? -ECONNRESET : -EIO);
			}
			return;
		}
		ctx->st.rx_packets++;
		ctx->st.rx_bytes += (uint64_t)n;
		if (paste_conn__q_append(c, idx, 0, (uint32_t)n)) {
			paste_frames__move(ctx->frames, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE);
			k_fail(c, -ECONNABORTED);
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
	if (!k->rd_paused && c->pending >= PASTE_K_RCVBUF) {
		k->rd_paused = true;
		k_events(c);
	}
}

/* Resume connections paused for lack of frames once some are free again. */
static void k_after_round(struct paste_ctx *ctx)
{
	struct paste_conn *c;

	if (!kst(ctx)->starved || paste_frames__nr(ctx->frames, PASTE_FRAME_FREE) < 64)
		return;
	kst(ctx)->starved = false;
	for (c = ctx->conns; c; c = c->next) {
		struct k_conn *k = kc(c);

		if (k->starved && k->fd >= 0) {
			k->starved = false;
			k->rd_paused = c->pending >= PASTE_K_RCVBUF;
			k_events(c);
		}
	}
}

static void k_consumed(struct paste_conn *c, size_t n)
{
	struct k_conn *k = kc(c);

	if (k->rd_paused && !k->starved && !c->eof && c->pending < PASTE_K_RCVBUF / 2) {
		k->rd_paused = false;
		k_events(c);
	}
}

static void k_write(struct paste_conn *c)
{
	struct k_conn *k = kc(c);
	size_t done = 0;
	ssize_t n = 0;

	while (done < k->out_len) {
		n = send(k->fd, k->out + done, k->out_len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		done += (size_t)n;
		c->ctx->st.tx_packets++;
		c->ctx->st.tx_bytes += (uint64_t)n;
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR && done < k->out_len) {
		k_fail(c, -ECONNRESET);
		return;
	}
	if (done && done < k->out_len)
		memmove(k->out, k->out + done, k->out_len - done);
	k->out_len -= done;
	if (done && c->want_write) {
		c->want_write = false;
		paste_conn__mark_ready(c);
	}
	if (k->wr_armed != (k->out_len > 0)) {
		k->wr_armed = k->out_len > 0;
		k_events(c);
	}
}

static ssize_t k_send(struct paste_conn *c, const void *buf, size_t len)
{
	struct k_conn *k = kc(c);
	size_t room = PASTE_K_SNDBUF - k->out_len;

	if (len > room) {
		len = room;
		c->want_write = true;
	}
	if (!len)
		return 0;
	if (k->out_len + len > k->out_cap) {
		size_t cap = k->out_cap ? k->out_cap : 4096;
		uint8_t *o;

		while (cap < k->out_len + len)
			cap *= 2;
		o = realloc(k->out, cap);
		if (!o)
			return paste_fail(-ENOMEM, "paste_conn__send: out of memory for %zu bytes",
			                  cap);
		k->out = o;
		k->out_cap = cap;
	}
	memcpy(k->out + k->out_len, buf, len);
	k->out_len += len;
	paste_conn__mark_dirty(c);
	return (ssize_t)len;
}

static size_t k_sendbuf(const struct paste_conn *c)
{
	return PASTE_K_SNDBUF - kc((struct paste_conn *)c)->out_len;
}

/* End of round (after the fence): write what the callbacks queued; FIN once it is all out. */
static void k_flush(struct paste_conn *c)
{
	struct k_conn *k = kc(c);

	if (c->closed)
		return;
	k_write(c);
	if (c->closed || !c->want_close || k->out_len)
		return;
	paste_conn__q_free_all(c);
	epoll_ctl(kst(c->ctx)->epfd, EPOLL_CTL_DEL, k->fd, NULL);
	close(k->fd);
	k->fd = -2; /* closed: still a connection until reaped */
	paste_conn__mark_dead(c, 0);
}

static void k_conn_free(struct paste_conn *c)
{
	free(kc(c)->out);
}

/* A paused connection reported an error: reset it instead of polling it forever. */
static bool k_failed(struct paste_conn *c)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(kc(c)->fd, SOL_SOCKET, SO_ERROR, &e, &len) || !e)
		return false;
	k_fail(c, -ECONNRESET);
	return true;
}

/* Wait up to @ms for events and handle them (accept, recv into frames, writable). */
static int k_poll_once(struct paste_ctx *ctx, int ms)
{
	struct epoll_event ev[K_EVENTS];
	int n, i;

	n = epoll_wait(kst(ctx)->epfd, ev, K_EVENTS, ms);
	if (n < 0)
		return errno == EINTR ? -EINTR
		                      : paste_fail(-errno, "epoll_wait: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		struct paste_conn *c;

		if (ev[i].data.u64 == K_WAKE_DATA) {
			paste__drain_wake(ctx);
			continue;
		}
		if (ev[i].data.u64 & K_LISTENER_TAG) {
			k_accept(
			    (struct paste_listener *)(uintptr_t)(ev[i].data.u64 & ~K_LISTENER_TAG));
			continue;
		}
		c = ev[i].data.ptr;
		if (c->closed || kc(c)->fd < 0)
			continue;
		if (kc(c)->connecting) {
			k_connect_done(c);
			continue;
		}
		if ((ev[i].events & (EPOLLERR | EPOLLHUP)) && kc(c)->rd_paused && k_failed(c))
			continue;
		if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			k_read(c);
		if (!c->closed && kc(c)->fd >= 0 && (ev[i].events & EPOLLOUT))
			k_flush(c);
	}
	return n;
}

/* paste_set_wake_fd(): the fd joins the epoll set (level-triggered, like the sockets). */
static int k_wake_fd(struct paste_ctx *ctx, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = K_WAKE_DATA};

	if (epoll_ctl(kst(ctx)->epfd, EPOLL_CTL_ADD, fd, &ev))
		return paste_fail(-errno, "adding the wake fd %d to epoll: %s", fd,
		                  strerror(errno));
	return 0;
}

static int k_spin_once(struct paste_ctx *ctx)
{
	return k_poll_once(ctx, 0);
}

/* Wait for and handle socket events (spinning with --busy-poll). */
static int k_poll(struct paste_ctx *ctx, int timeout_ms)
{
	if (!ctx->opts.busy_poll || timeout_ms == 0)
		return k_poll_once(ctx, timeout_ms);
	return paste_spin(ctx, timeout_ms, k_spin_once);
}

const struct paste_transport_ops paste_transport_kernel = {
    .name = "kernel (epoll sockets)",
    .conn_size = sizeof(struct k_conn),
    .listener_size = sizeof(struct k_listener),
    .frames_reserved = 0,
    .needs_ifname = false,
    .init = k_init,
    .open = k_open,
    .close = k_close,
    .listen = k_listen,
    .unlisten = k_unlisten,
    .poll = k_poll,
    .wake_fd = k_wake_fd,
    .send = k_send,
    .sendbuf = k_sendbuf,
    .consumed = k_consumed,
    .flush = k_flush,
    .abort = k_abort,
    .conn_free = k_conn_free,
    .after_round = k_after_round,
    .connect = k_connect,
};
