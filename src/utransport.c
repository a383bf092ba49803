/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * utransport.c - the same connections over kernel TCP driven by io_uring
 * (PASTE_TRANSPORT_IO_URING).
 *
 * One ring per context, set up with DEFER_TASKRUN + SINGLE_ISSUER (completion work runs only when
 * the event loop enters the ring). A multishot accept per listener; per connection one multishot
 * recv that takes its buffers from a provided-buffer ring whose buffers are pool frames: the
 * kernel's one copy (socket -> user memory) lands in the pool, and the frame becomes a piece of the
 * connection as on the other transports. A frame the application keeps stays where it is; the ring
 * slot it came from is refilled with a free frame (u_refill), so the ring never hands out a frame
 * the application still holds.
 *
 * Replies are copied into a per-connection buffer and leave at the end-of-round flush (after the
 * fence) as one send per connection, submitted together with the next wait (one io_uring_enter per
 * round). Sends take a completion: it tells when the buffer may be reused and how many bytes are
 * still unsent (the back-pressure of send()); see docs/architecture.md for why CQE_SKIP_SUCCESS is
 * used only where nothing depends on the completion (cancellations).
 *
 * Back-pressure as on the kernel transport: reading a connection pauses (its multishot recv is
 * cancelled) while PASTE_U_RCVBUF bytes are unconsumed and resumes below half of that; send()
 * accepts at most PASTE_U_SNDBUF unsent bytes. When the buffer ring runs dry (no free frame) the
 * kernel ends the connection's recv with -ENOBUFS; it is re-armed once frames are free again.
 *
 * Sockets live in a slot table of their own: a completion names a slot and its generation, so a
 * completion of a connection that is gone is recognised (its buffer goes back to the ring), and a
 * slot outlives its connection while a send still uses the slot's buffer. File descriptors are
 * closed only after the SQEs naming them were submitted (u_defer_close), so a number the process
 * reuses can never receive another connection's bytes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uring.h"

#ifndef PASTE_U_RCVBUF
#define PASTE_U_RCVBUF (64u << 10)
#endif
#ifndef PASTE_U_SNDBUF
#define PASTE_U_SNDBUF (256u << 10)
#endif

struct u_conn {
	uint32_t sock;
};

struct u_listener {
	uint32_t sock;
};

static struct u_sock *usock(struct paste_conn *c)
{
	return &ust(c->ctx)->socks[((struct u_conn *)paste_conn__tp(c))->sock];
}

static int u_init(struct paste_ctx *ctx)
{
	struct u_state *u = calloc(1, sizeof(*u));

	if (!u)
		return paste_fail(-ENOMEM, "paste_open: out of memory");
	ctx->tp_state = u;
	return 0;
}

static void u_arm_accept(struct u_state *u, struct u_sock *s)
{
	struct io_uring_sqe *sqe = paste_uring__sqe(u);

	if (!sqe)
		return;
	io_uring_prep_multishot_accept(sqe, s->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, u_data(u, U_ACCEPT, s));
	s->recv_on = true;
}

static int u_listen(struct paste_listener *l)
{
	struct paste_ctx *ctx = l->ctx;
	struct u_state *u = ust(ctx);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(l->port)};
	struct u_sock *s;
	int fd, one = 1, err;

	a.sin_addr.s_addr = ctx->ip; /* 0 = every address */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((ctx->opts.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1024)) {
		err = -errno;
		close(fd);
		return err;
	}
	s = paste_uring__sock_get(u);
	if (!s) {
		close(fd);
		return -EMFILE;
	}
	s->fd = fd;
	s->l = l;
	((struct u_listener *)paste_listener__tp(l))->sock = (uint32_t)(s - u->socks);
	u_arm_accept(u, s);
	return 0;
}

static void u_unlisten(struct paste_listener *l)
{
	struct u_state *u = ust(l->ctx);
	struct u_sock *s = &u->socks[((struct u_listener *)paste_listener__tp(l))->sock];

	if (!s->used || s->l != l)
		return;
	if (s->recv_on)
		paste_uring__cancel(u, u_data(u, U_ACCEPT, s));
	paste_uring__defer_close(u, s->fd);
	paste_uring__sock_put(u, s); /* later accept completions are stale: their fds are closed */
}

static void u_arm_recv(struct u_state *u, struct u_sock *s)
{
	struct io_uring_sqe *sqe;

	if (s->recv_on || s->fd < 0 || !s->c || s->c->closed || s->c->eof || s->paused ||
	    s->starved)
		return;
	sqe = paste_uring__sqe(u);
	if (!sqe)
		return;
	s->epoch++;
	io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = U_BGID;
	io_uring_sqe_set_data64(sqe, u_data(u, U_RECV, s));
	s->recv_on = true;
	s->cancelled = false;
}

/* Stop the connection's recv (back-pressure, close): its last completion says when it ended. */
static void u_stop_recv(struct u_state *u, struct u_sock *s)
{
	if (s->recv_on && !s->cancelled) {
		paste_uring__cancel(u, u_data(u, U_RECV, s));
		s->cancelled = true;
	}
}

static int u_attach(struct paste_conn *c, void *handle)
{
	struct u_state *u = ust(c->ctx);
	struct u_sock *s = handle;
	int one = 1, usecs = 50;

	s->c = c;
	((struct u_conn *)paste_conn__tp(c))->sock = (uint32_t)(s - u->socks);
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->ctx->opts.busy_poll)
		setsockopt(s->fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof(usecs));
	u_arm_recv(u, s);
	return 0;
}

static void u_reset_fd(int fd)
{
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0}, sizeof(struct linger));
	close(fd); /* RST, like lwIP's refusal */
}

static void u_on_accept(struct paste_ctx *ctx, struct u_sock *ls, struct io_uring_cqe *cqe)
{
	struct u_state *u = ust(ctx);
	struct sockaddr_in peer = {0};
	socklen_t len = sizeof(peer);
	struct u_sock *s;

	if (!(cqe->flags & IORING_CQE_F_MORE) && ls) {
		ls->recv_on = false;
		u_arm_accept(u, ls); /* the multishot accept ended (e.g. an error): again */
	}
	if (cqe->res < 0)
		return;
	if (!ls) { /* the listener is gone */
		close(cqe->res);
		return;
	}
	s = paste_uring__sock_get(u);
	if (!s) {
		ctx->st.conns_refused++;
		u_reset_fd(cqe->res);
		return;
	}
	s->fd = cqe->res;
	getpeername(s->fd, (struct sockaddr *)&peer, &len);
	if (paste_conn__accept(ls->l, &peer.sin_addr, ntohs(peer.sin_port), u_attach, NULL, s))
		return;
	u_reset_fd(s->fd);
	paste_uring__sock_put(u, s);
}

/* The connection failed with @err: reset it and let it be reaped. */
static void u_fail(struct paste_conn *c, int err);

/* One received chunk in ring entry @bid: a piece of the connection, or back to the allocator. */
static void u_take_buffer(struct paste_ctx *ctx, struct u_sock *s, unsigned bid, int res)
{
	struct u_state *u = ust(ctx);
	uint32_t idx = u->bid_frame[bid];
	struct paste_conn *c = s ? s->c : NULL;

	u->bid_frame[bid] = U_NO_FRAME;
	u->empty[u->nempty++] = (uint16_t)bid;
	if (idx == U_NO_FRAME)
		return;
	if (res <= 0 || !c || c->closed) {
		paste_frames__move(ctx->frames, idx, PASTE_FRAME_FILL, PASTE_FRAME_FREE);
		return;
	}
	paste_frames__move(ctx->frames, idx, PASTE_FRAME_FILL, PASTE_FRAME_RX);
	ctx->st.rx_packets++;
	ctx->st.rx_bytes += (uint64_t)res;
	if (paste_conn__q_append(c, idx, 0, (uint32_t)res)) {
		paste_frames__move(ctx->frames, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE);
		u_fail(c, -ECONNABORTED);
		return;
	}
	paste_conn__mark_ready(c);
	if (c->pending >= PASTE_U_RCVBUF && !s->paused) {
		s->paused = true;
		u_stop_recv(u, s);
	}
}

static void u_on_recv(struct paste_ctx *ctx, struct u_sock *s, struct io_uring_cqe *cqe)
{
	struct u_state *u = ust(ctx);
	struct paste_conn *c = s ? s->c : NULL;
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (cqe->flags & IORING_CQE_F_BUFFER)
		u_take_buffer(ctx, s, cqe->flags >> IORING_CQE_BUFFER_SHIFT, cqe->res);
	if (!s || more)
		return;
	s->recv_on = false;
	s->cancelled = false;
	if (!c || c->closed)
		return;
	if (cqe->res == 0) { /* FIN */
		c->eof = true;
		paste_conn__mark_ready(c);
		return;
	}
	if (cqe->res == -ENOBUFS) { /* the ring ran dry: re-armed when frames are free */
		ctx->st.rx_dropped++;
		s->starved = true;
		u->starved = true;
		return;
	}
	if (cqe->res < 0 && cqe->res != -ECANCELED) {
		u_fail(c, cqe->res == -ECONNRESET ? -ECONNRESET : -EIO);
		return;
	}
	u_arm_recv(u, s); /* cancelled (resumed since) or ended early */
}

static void u_submit_send(struct u_state *u, struct u_sock *s)
{
	struct io_uring_sqe *sqe = paste_uring__sqe(u);

	if (!sqe) {
		u_fail(s->c, -EIO);
		return;
	}
	io_uring_prep_send(sqe, s->fd, s->fly + s->fly_off, s->fly_len - s->fly_off,
	                   MSG_WAITALL | MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, u_data(u, U_SEND, s));
	s->fly_on = true;
}

static void u_on_send(struct paste_ctx *ctx, struct u_sock *s, struct io_uring_cqe *cqe)
{
	struct u_state *u = ust(ctx);
	struct paste_conn *c;

	if (!s)
		return;
	c = s->c;
	s->fly_on = false;
	if (cqe->res > 0) {
		ctx->st.tx_packets++;
		ctx->st.tx_bytes += (uint64_t)cqe->res;
		s->fly_off += (size_t)cqe->res;
	}
	if (!c) { /* the connection was freed while this send ran: the slot goes now */
		paste_uring__sock_put(u, s);
		return;
	}
	if (c->closed)
		return;
	if (cqe->res <= 0) {
		u_fail(c, cqe->res == -EPIPE || cqe->res == 0 ? -ECONNRESET : cqe->res);
		return;
	}
	if (s->fly_off < s->fly_len) { /* short (a signal, or a reset racing): the rest */
		u_submit_send(u, s);
		return;
	}
	s->fly_len = s->fly_off = 0;
	if (c->want_write) {
		c->want_write = false;
		paste_conn__mark_ready(c);
	}
	if (s->out_len || c->want_close)
		paste_conn__mark_dirty(c);
}

/* Reset the connection now (RST), if it is still open. */
static void u_abort(struct paste_conn *c)
{
	struct u_state *u = ust(c->ctx);
	struct u_sock *s = usock(c);

	if (s->fd < 0)
		return;
	/*
	 * RST now: the requests still armed hold the socket open past close(), but a connect() to
	 * AF_UNSPEC disconnects a TCP socket at once (tcp_disconnect: RST to the peer). The fd is
	 * closed after the next submit; the cancelled requests let the socket go then.
	 */
	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0}, sizeof(struct linger));
	connect(s->fd, &(struct sockaddr){.sa_family = AF_UNSPEC}, sizeof(struct sockaddr));
	u_stop_recv(u, s);
	if (s->fly_on)
		paste_uring__cancel(u, u_data(u, U_SEND, s));
	if (s->connecting)
		paste_uring__cancel(u, u_data(u, U_CONNECT, s));
	s->connecting = false;
	paste_uring__defer_close(u, s->fd);
	s->fd = -1;
}

static void u_fail(struct paste_conn *c, int err)
{
	u_abort(c);
	paste_conn__q_free_all(c);
	paste_conn__mark_dead(c, err);
}

static void u_conn_free(struct paste_conn *c)
{
	struct u_state *u = ust(c->ctx);
	struct u_sock *s = usock(c);

	if (s->c != c)
		return;
	s->c = NULL;
	if (s->fd >= 0) { /* not closed by flush or abort (cannot happen: be safe) */
		paste_uring__defer_close(u, s->fd);
		s->fd = -1;
	}
	if (!s->fly_on)
		paste_uring__sock_put(u, s);
}

static ssize_t u_send(struct paste_conn *c, const void *buf, size_t len)
{
	struct u_sock *s = usock(c);
	size_t room = PASTE_U_SNDBUF - s->out_len - (s->fly_len - s->fly_off);

	if (len > room) {
		len = room;
		c->want_write = true;
	}
	if (!len)
		return 0;
	if (s->out_len + len > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 4096;
		uint8_t *o;

		while (cap < s->out_len + len)
			cap *= 2;
		o = realloc(s->out, cap);
		if (!o)
			return paste_fail(-ENOMEM, "paste_conn__send: out of memory for %zu bytes",
			                  cap);
		s->out = o;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, buf, len);
	s->out_len += len;
	paste_conn__mark_dirty(c);
	return (ssize_t)len;
}

static size_t u_sendbuf(const struct paste_conn *c)
{
	struct u_sock *s = usock((struct paste_conn *)c);

	return PASTE_U_SNDBUF - s->out_len - (s->fly_len - s->fly_off);
}

static void u_consumed(struct paste_conn *c, size_t n)
{
	struct u_sock *s = usock(c);

	if (s->paused && c->pending < PASTE_U_RCVBUF / 2) {
		s->paused = false;
		u_arm_recv(ust(c->ctx), s);
	}
}

/* End of round (after the fence): send what the callbacks queued; FIN once it is all out. */
static void u_flush(struct paste_conn *c)
{
	struct u_state *u = ust(c->ctx);
	struct u_sock *s = usock(c);

	if (c->closed || s->fd < 0)
		return;
	if (!s->fly_on && s->out_len) { /* the queued bytes become the send in flight */
		uint8_t *b = s->fly;
		size_t cap = s->fly_cap;

		s->fly = s->out;
		s->fly_cap = s->out_cap;
		s->fly_len = s->out_len;
		s->fly_off = 0;
		s->out = b;
		s->out_cap = cap;
		s->out_len = 0;
		u_submit_send(u, s);
	}
	if (c->closed || !c->want_close || s->out_len || s->fly_on)
		return;
	/* Everything is out: FIN now (shutdown: the armed recv holds the socket open past close()),
	 * then the recv is cancelled and the fd closed after the next submit. */
	paste_conn__q_free_all(c);
	shutdown(s->fd, SHUT_WR);
	u_stop_recv(u, s);
	paste_uring__defer_close(u, s->fd);
	s->fd = -1;
	paste_conn__mark_dead(c, 0);
}

/* Active open: a non-blocking connect() from the context's address, then one POLLOUT poll in the
 * ring reports its end (u_on_connect). */
static int u_connect(struct paste_conn *c)
{
	struct u_state *u = ust(c->ctx);
	struct io_uring_sqe *sqe;
	struct u_sock *s;
	int fd = paste_k__connect_fd(c);

	if (fd < 0)
		return fd;
	s = paste_uring__sock_get(u);
	sqe = s ? paste_uring__sqe(u) : NULL;
	if (!sqe) {
		if (s)
			paste_uring__sock_put(u, s);
		close(fd);
		return -EMFILE;
	}
	s->fd = fd;
	s->c = c;
	s->connecting = true;
	((struct u_conn *)paste_conn__tp(c))->sock = (uint32_t)(s - u->socks);
	io_uring_prep_poll_add(sqe, fd, POLLOUT);
	io_uring_sqe_set_data64(sqe, u_data(u, U_CONNECT, s));
	return 0;
}

static void u_on_connect(struct u_sock *s)
{
	struct paste_conn *c = s ? s->c : NULL;
	int e = 0, fl;
	socklen_t len = sizeof(e);

	if (!c || !s->connecting || s->fd < 0)
		return;
	s->connecting = false;
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &len))
		e = errno;
	if (e) {
		u_abort(c);
		paste_conn__connected(c, -e);
		return;
	}
	fl =
	    fcntl(s->fd, F_GETFL); /* blocking again: the ring's recv and send wait in the kernel */
	if (fl >= 0)
		fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK);
	u_attach(c, s);
	paste_conn__connected(c, 0);
}

/* A one-shot poll of the wake fd (paste_set_wake_fd: the transport's wake_fd op), armed again
 * after each completion: the ring's wait ends with a completion when the fd becomes readable. */
static int u_arm_wake(struct paste_ctx *ctx, int fd)
{
	struct io_uring_sqe *sqe = paste_uring__sqe(ust(ctx));

	if (!sqe)
		return paste_fail(-EBUSY, "io_uring: no submission entry for the wake fd's poll");
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, (uint64_t)U_WAKE << 56);
	return 0;
}

static void u_on_cqe(struct paste_ctx *ctx, struct io_uring_cqe *cqe)
{
	struct u_state *u = ust(ctx);
	uint64_t d = io_uring_cqe_get_data64(cqe);
	enum u_op op = (enum u_op)(d >> 56);
	uint32_t i = (uint32_t)d;
	struct u_sock *s = NULL;

	if (op == U_CANCEL)
		return;     /* a cancel that found nothing (its request had ended): nothing to do */
	if (op == U_WAKE) { /* the wake fd was readable: reset it, watch it again */
		paste__drain_wake(ctx);
		u_arm_wake(ctx, ctx->wake_fd);
		return;
	}
	if (i < u->nsocks && u->socks[i].used && (u->socks[i].gen & 0xffff) == ((d >> 32) & 0xffff))
		s = &u->socks[i];
	/* a recv completion of an earlier arm of this slot: its buffer only */
	if (s && op == U_RECV && (uint8_t)(d >> 48) != s->epoch) {
		if (cqe->flags & IORING_CQE_F_BUFFER)
			u_take_buffer(ctx, NULL, cqe->flags >> IORING_CQE_BUFFER_SHIFT, 0);
		return;
	}
	switch (op) {
	case U_ACCEPT:
		u_on_accept(ctx, s && s->l ? s : NULL, cqe);
		break;
	case U_RECV:
		u_on_recv(ctx, s, cqe);
		break;
	case U_SEND:
		u_on_send(ctx, s, cqe);
		break;
	case U_CONNECT:
		u_on_connect(s);
		break;
	default:
		break;
	}
}

/* Enter the ring once: submit what the round queued, wait up to @ms (-1: for ever) for a
 * completion, handle every completion there is. */
static int u_enter(struct paste_ctx *ctx, int ms)
{
	struct u_state *u = ust(ctx);
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int r;

	if (u->nclosing) { /* submit the SQEs naming them, close, then wait */
		io_uring_submit(&u->ring);
		paste_uring__close_deferred(u);
	}
	if (ms == 0) {
		r = io_uring_submit_and_get_events(&u->ring);
	} else if (ms < 0) {
		r = io_uring_submit_and_wait(&u->ring, 1);
	} else {
		struct __kernel_timespec ts = {.tv_sec = ms / 1000,
		                               .tv_nsec = (long long)(ms % 1000) * 1000000};

		r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
	}
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		return paste_fail(r, "io_uring_enter: %s", strerror(-r));
	io_uring_for_each_cqe(&u->ring, head, cqe)
	{
		u_on_cqe(ctx, cqe);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
	if (u->nempty)
		paste_uring__refill(ctx);
	if (!n && r == -EINTR)
		return -EINTR;
	return (int)n;
}

static int u_spin_once(struct paste_ctx *ctx)
{
	return u_enter(ctx, 0);
}

/*
 * Wait for and handle completions (spinning on the completion queue with --busy-poll). A spin
 * "for ever" returns after U_SPIN_MS without input: a signal handler that only sets a flag (a
 * daemon's SIGUSR1) interrupts no system call while spinning, so the caller's loop must get to
 * look at its flags.
 */
#define U_SPIN_MS 50
static int u_poll(struct paste_ctx *ctx, int timeout_ms)
{
	if (!ctx->opts.busy_poll || timeout_ms == 0)
		return u_enter(ctx, timeout_ms);
	return paste_spin(ctx, timeout_ms < 0 || timeout_ms > U_SPIN_MS ? U_SPIN_MS : timeout_ms,
	                  u_spin_once);
}

/* Refill the ring with frames released this round; resume recvs that found it empty. */
static void u_after_round(struct paste_ctx *ctx)
{
	struct u_state *u = ust(ctx);
	uint32_t i;

	if (u->nempty)
		paste_uring__refill(ctx);
	if (!u->starved || u->nempty == u->nbufs) /* nothing to receive into yet */
		return;
	u->starved = false;
	for (i = 0; i < u->nsocks; i++) {
		struct u_sock *s = &u->socks[i];

		if (s->used && s->starved) {
			s->starved = false;
			u_arm_recv(u, s);
		}
	}
}

const struct paste_transport_ops paste_transport_io_uring = {
    .name = "io_uring (kernel sockets)",
    .conn_size = sizeof(struct u_conn),
    .listener_size = sizeof(struct u_listener),
    .frames_reserved = U_FREE_SPARE,
    .needs_ifname = false,
    .init = u_init,
    .open = paste_uring__open,
    .close = paste_uring__close,
    .listen = u_listen,
    .unlisten = u_unlisten,
    .poll = u_poll,
    .wake_fd = u_arm_wake,
    .send = u_send,
    .sendbuf = u_sendbuf,
    .consumed = u_consumed,
    .flush = u_flush,
    .abort = u_abort,
    .conn_free = u_conn_free,
    .after_round = u_after_round,
    .connect = u_connect,
};
