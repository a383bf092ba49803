/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conn.c - TCP connections as the application sees them, whatever the transport: the FIFO of
 * received pieces, the slot view, the lists of the round, the one accept path.
 *
 * A transport (transport.h) appends each received chunk as a piece {frame, offset, length} that is
 * still in its pool frame; nothing is copied. The application sees the FIFO as slots {data, frame,
 * offset, len}, consumes a prefix when it is done with it (that releases the frames and lets the
 * transport reopen its window), and leaves the rest for the next round: a request split over
 * segments or rounds is just more slots.
 *
 * Everything that would send is deferred to the end of the round (paste_conns__flush): data queued
 * by paste_conn__send() and FINs from paste_conn__close(). That is the hook the durable layer
 * needs: its fence runs before the flush, so no reply leaves before the bytes it acknowledges are
 * persistent. Connections that end (reset, abort, close) go on a dead list and are freed after
 * their on_close.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

/* ---- lists ------------------------------------------------------------------------------- */

void paste_conn__mark_ready(struct paste_conn *c)
{
	if (c->ready || c->closed)
		return;
	c->ready = true;
	c->next_ready = c->ctx->ready;
	c->ctx->ready = c;
}

void paste_conn__mark_dirty(struct paste_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->next_dirty = c->ctx->dirty;
	c->ctx->dirty = c;
}

void paste_conn__mark_dead(struct paste_conn *c, int err)
{
	if (c->closed)
		return;
	c->closed = true;
	c->close_err = err;
	c->next_dead = c->ctx->dead;
	c->ctx->dead = c;
}

void *paste_conn__tp(struct paste_conn *c)
{
	return c->tp;
}

void *paste_listener__tp(struct paste_listener *l)
{
	return l->tp;
}

/* ---- the received-piece FIFO ------------------------------------------------------------- */

int paste_conn__q_reserve(struct paste_conn *c, uint32_t more)
{
	uint32_t cap = c->q_cap ? c->q_cap : 16, i;
	struct paste_piece *nq;

	if (c->q_len + more <= c->q_cap)
		return 0;
	while (cap < c->q_len + more)
		cap *= 2;
	nq = malloc(cap * sizeof(*nq));
	if (!nq)
		return -ENOMEM;
	for (i = 0; i < c->q_len; i++)
		nq[i] = c->q[(c->q_head + i) % c->q_cap];
	free(c->q);
	c->q = nq;
	c->q_cap = cap;
	c->q_head = 0;
	return 0;
}

int paste_conn__q_append(struct paste_conn *c, uint32_t frame, uint32_t off, uint32_t len)
{
	if (paste_conn__q_reserve(c, 1))
		return -ENOMEM;
	c->q[(c->q_head + c->q_len) % c->q_cap] = (struct paste_piece){frame, off, len};
	c->q_len++;
	c->pending += len;
	c->ctx->st.rx_payload_bytes += len;
	c->slots_valid = false;
	return 0;
}

void paste_conn__q_free_all(struct paste_conn *c)
{
	while (c->q_len) {
		paste_frames__rx_done(c->ctx->frames, c->q[c->q_head].frame);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	c->pending = 0;
	c->head_off = 0;
	c->slots_valid = false;
}

/* ---- accept ------------------------------------------------------------------------------ */

void paste_conn__link(struct paste_ctx *ctx, struct paste_conn *c)
{
	c->next = ctx->conns;
	if (ctx->conns)
		ctx->conns->prev = c;
	ctx->conns = c;
	ctx->nconns++;
}

void paste_conn__unlink_free(struct paste_ctx *ctx, struct paste_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		ctx->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctx->nconns--;
	if (c->connecting)
		ctx->nconnecting--;
	if (ctx->tp->conn_free)
		ctx->tp->conn_free(c);
	paste_conn__q_free_all(c);
	free(c->q);
	free(c->slots);
	if (c->outgoing)
		free(c->listener);
	free(c);
}

struct paste_conn *paste_conn__accept(struct paste_listener *l, const struct in_addr *peer,
                                      uint16_t peer_port,
                                      int (*attach)(struct paste_conn *c, void *handle),
                                      void (*detach)(struct paste_conn *c), void *handle)
{
	struct paste_ctx *ctx = l->ctx;
	struct paste_conn *c = NULL;

	if (ctx->nconns < ctx->opts.max_conns)
		c = calloc(1, sizeof(*c) + ctx->tp->conn_size);
	if (!c)
		goto refuse;
	c->ctx = ctx;
	c->listener = l;
	c->peer = *peer;
	c->peer_port = peer_port;
	if (attach && attach(c, handle) < 0) {
		free(c);
		goto refuse;
	}
	paste_conn__link(ctx, c);
	if (l->ops.on_accept && l->ops.on_accept(c, l->user) < 0) {
		if (detach)
			detach(c);
		paste_conn__unlink_free(ctx, c);
		goto refuse;
	}
	ctx->st.conns_accepted++;
	return c;
refuse:
	ctx->st.conns_refused++;
	return NULL;
}

/* ---- the round --------------------------------------------------------------------------- */

void paste_conns__run_ready(struct paste_ctx *ctx)
{
	struct paste_conn *c = ctx->ready, *next;

	ctx->ready = NULL;
	for (; c; c = next) {
		next = c->next_ready;
		c->ready = false;
		if (c->connect_cb && !c->closed) {
			c->connect_cb = false;
			c->listener->ops.on_connect(c, 0, c->listener->user);
			if (!c->pending && !c->eof)
				continue;
		}
		if (!c->closed && c->listener->ops.on_data)
			c->listener->ops.on_data(c, c->listener->user);
	}
}

void paste_conns__flush(struct paste_ctx *ctx)
{
	struct paste_conn *c = ctx->dirty, *next;

	ctx->dirty = NULL;
	for (; c; c = next) {
		next = c->next_dirty;
		c->dirty = false;
		ctx->tp->flush(c);
	}
}

void paste_conns__reap(struct paste_ctx *ctx)
{
	struct paste_conn *c, *next, **pp;

	if (!ctx->dead)
		return;
	for (pp = &ctx->ready; *pp;) { /* a dead connection may still be queued as ready */
		if ((*pp)->closed) {
			(*pp)->ready = false;
			*pp = (*pp)->next_ready;
		} else {
			pp = &(*pp)->next_ready;
		}
	}
	c = ctx->dead;
	ctx->dead = NULL;
	for (; c; c = next) {
		next = c->next_dead;
		if (c->connect_failed)
			c->listener->ops.on_connect(c, c->close_err, c->listener->user);
		else if (c->listener->ops.on_close)
			c->listener->ops.on_close(c, c->close_err, c->listener->user);
		paste_conn__unlink_free(ctx, c);
	}
}

static void conn_abort(struct paste_conn *c)
{
	if (c->connecting && !c->closed) {
		c->ctx->tp->abort(c);
		paste_conn__connected(c, -ECONNABORTED);
		return;
	}
	c->ctx->tp->abort(c);
	paste_conn__q_free_all(c);
	paste_conn__mark_dead(c, -ECONNABORTED);
}

void paste_conns__abort_dirty(struct paste_ctx *ctx)
{
	struct paste_conn *c = ctx->dirty, *next;

	ctx->dirty = NULL;
	for (; c; c = next) {
		next = c->next_dirty;
		c->dirty = false;
		conn_abort(c);
	}
}

void paste_conns__shutdown_conns(struct paste_ctx *ctx)
{
	struct paste_conn *c;

	for (c = ctx->conns; c; c = c->next)
		conn_abort(c);
	ctx->dirty = NULL;
}

void paste_conns__shutdown(struct paste_ctx *ctx)
{
	unsigned i;

	paste_conns__shutdown_conns(ctx);
	paste_conns__reap(ctx);
	for (i = 0; i < ctx->nlisteners; i++) {
		ctx->tp->unlisten(ctx->listeners[i]);
		free(ctx->listeners[i]);
	}
	ctx->nlisteners = 0;
}

/* ---- outgoing connections ------------------------------------------------------------------ */

static const char *connect_why(int err)
{
	switch (err) {
	case -ECONNREFUSED:
		return "connection refused (nothing listens on that port, or a firewall rejects it)";
	case -ETIMEDOUT:
		return "timed out (no answer: is the peer up, and reachable from this address?)";
	case -EHOSTUNREACH:
		return "host unreachable (no ARP answer from it on this link)";
	case -ENETUNREACH:
		return "network unreachable (no route to it from this address)";
	case -ECONNABORTED:
		return "aborted before it connected";
	default:
		return strerror(-err);
	}
}

static int connect_fail(const struct paste_conn *c, int err)
{
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &c->peer, ip, sizeof(ip));
	return paste_fail(err, "paste_connect to %s:%u: %s", ip, c->peer_port, connect_why(err));
}

void paste_conn__connected(struct paste_conn *c, int err)
{
	if (!c->connecting || c->closed)
		return;
	c->connecting = false;
	c->ctx->nconnecting--;
	if (!err) {
		c->connect_cb = true;
		paste_conn__mark_ready(c);
		return;
	}
	if (err != -ECONNABORTED)
		connect_fail(c, err);
	paste_conn__q_free_all(c);
	c->connect_failed = true;
	paste_conn__mark_dead(c, err);
}

void paste_conns__connect_timers(struct paste_ctx *ctx)
{
	uint64_t now;

	if (!ctx->nconnecting)
		return;
	now = paste_now_ns();
	for (struct paste_conn *c = ctx->conns; c; c = c->next) {
		if (!c->connecting || c->closed || now < c->connect_deadline_ns)
			continue;
		ctx->tp->abort(c);
		paste_conn__connected(c, -ETIMEDOUT);
	}
}

PASTE_EXPORT int paste_connect(struct paste_ctx *ctx, const struct in_addr *addr, uint16_t port,
                               int timeout_ms, const struct paste_conn_ops *ops, void *user,
                               struct paste_conn **conn)
{
	struct paste_listener *l;
	struct paste_conn *c;
	int err;

	if (conn)
		*conn = NULL;
	if (!ctx || !addr || !addr->s_addr || !port || !ops)
		return paste_fail(-EINVAL, "paste_connect: need a context, a peer address, a port "
		                           "(1-65535) and ops with .sz and .on_connect set");
	if (!ctx->tp->connect)
		return paste_fail(-EOPNOTSUPP, "paste_connect: the %s transport cannot connect",
		                  ctx->tp->name);
	if (ctx->tp->no_loopback &&
	    (addr->s_addr == ctx->ip || (ntohl(addr->s_addr) >> 24) == 127)) {
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, addr, ip, sizeof(ip));
		return paste_fail(
		    -EINVAL,
		    "paste_connect to %s:%u: the peer is this stack's own address or a "
		    "loopback address (the %s transport has no loopback path: use the "
		    "kernel transport for local peers)",
		    ip, port, ctx->tp->name);
	}
	if (ctx->nconns >= ctx->opts.max_conns)
		return paste_fail(-ENOSPC, "paste_connect: %u connections open (max_conns)",
		                  ctx->nconns);
	l = calloc(1, sizeof(*l) + ctx->tp->listener_size);
	if (!l)
		return paste_fail(-ENOMEM, "paste_connect: out of memory");
	err = PASTE_OPTS_COPY(&l->ops, ops, sz, "paste_connect");
	if (!err && !l->ops.on_connect)
		err = paste_fail(-EINVAL, "paste_connect: ops.on_connect is required");
	c = err ? NULL : calloc(1, sizeof(*c) + ctx->tp->conn_size);
	if (!c) {
		free(l);
		return err ? err : paste_fail(-ENOMEM, "paste_connect: out of memory");
	}
	l->user = user;
	l->ctx = ctx;
	c->ctx = ctx;
	c->listener = l;
	c->outgoing = true;
	c->peer = *addr;
	c->peer_port = port;
	c->connect_deadline_ns =
	    paste_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000) * 1000000ull;
	paste_conn__link(ctx, c);
	c->connecting = true;
	ctx->nconnecting++;
	err = ctx->tp->connect(c);
	if (err) {
		connect_fail(c, err);
		paste_conn__unlink_free(ctx, c);
		return err;
	}
	if (conn)
		*conn = c;
	return 0;
}

/* ---- public API -------------------------------------------------------------------------- */

PASTE_EXPORT int paste_listen(struct paste_ctx *ctx, uint16_t port,
                              const struct paste_conn_ops *ops, void *user)
{
	struct paste_listener *l;
	int err;

	struct paste_conn_ops o;

	if (!ctx || !port || !ops)
		return paste_fail(
		    -EINVAL, "paste_listen: need a context, a port (1-65535) and ops with .sz set");
	err = PASTE_OPTS_COPY(&o, ops, sz, "paste_listen");
	if (err)
		return err;
	if (ctx->nlisteners == ARRAY_SIZE(ctx->listeners))
		return paste_fail(-ENOSPC, "paste_listen: at most %zu listening ports",
		                  ARRAY_SIZE(ctx->listeners));
	l = calloc(1, sizeof(*l) + ctx->tp->listener_size);
	if (!l)
		return paste_fail(-ENOMEM, "paste_listen: out of memory");
	l->ops = o;
	l->user = user;
	l->port = port;
	l->ctx = ctx;
	err = ctx->tp->listen(l);
	if (err) {
		free(l);
		return paste_fail(err, "listening on TCP port %u failed: %s", port, strerror(-err));
	}
	ctx->listeners[ctx->nlisteners++] = l;
	pr_info("listening on TCP port %u", port);
	return 0;
}

PASTE_EXPORT const struct paste_slot *paste_conn__slots(struct paste_conn *c, unsigned *n)
{
	struct paste_ctx *ctx = c->ctx;
	uint32_t i;

	if (!c->slots_valid) {
		if (c->slots_cap < c->q_len) {
			struct paste_slot *s = realloc(c->slots, c->q_cap * sizeof(*s));

			if (!s) {
				*n = 0;
				paste_fail(-ENOMEM, "paste_conn__slots: out of memory for %u slots",
				           c->q_cap);
				return NULL;
			}
			c->slots = s;
			c->slots_cap = c->q_cap;
		}
		for (i = 0; i < c->q_len; i++) {
			const struct paste_piece *q = &c->q[(c->q_head + i) % c->q_cap];
			uint32_t skip = i ? 0 : c->head_off;

			c->slots[i].frame = q->frame;
			c->slots[i].offset = q->off + skip;
			c->slots[i].len = q->len - skip;
			c->slots[i].data =
			    ctx->area + (uint64_t)q->frame * ctx->frame_size + q->off + skip;
		}
		c->slots_valid = true;
	}
	*n = c->q_len;
	return c->slots;
}

PASTE_EXPORT size_t paste_conn__pending(const struct paste_conn *c)
{
	return c->pending;
}

PASTE_EXPORT bool paste_conn__eof(const struct paste_conn *c)
{
	return c->eof;
}

PASTE_EXPORT int paste_conn__consume(struct paste_conn *c, size_t n)
{
	size_t left = n;

	if (n > c->pending)
		return paste_fail(-EINVAL, "paste_conn__consume: %zu bytes asked, %zu pending", n,
		                  c->pending);
	while (left) {
		const struct paste_piece *q = &c->q[c->q_head];
		uint32_t avail = q->len - c->head_off;
		uint32_t take = left < avail ? (uint32_t)left : avail;

		c->head_off += take;
		left -= take;
		if (c->head_off == q->len) {
			paste_frames__rx_done(c->ctx->frames, q->frame);
			c->q_head = (c->q_head + 1) % c->q_cap;
			c->q_len--;
			c->head_off = 0;
		}
	}
	c->pending -= n;
	c->slots_valid = false;
	c->ctx->tp->consumed(c, n);
	return 0;
}

PASTE_EXPORT ssize_t paste_conn__send(struct paste_conn *c, const void *buf, size_t len)
{
	if (c->closed || c->want_close || c->connecting)
		return paste_fail_quiet(-ENOTCONN, "paste_conn__send: the connection is %s",
		                        c->connecting
		                            ? "still connecting: send after on_connect(0)"
		                            : "closed or closing: nothing more can be sent");
	return c->ctx->tp->send(c, buf, len);
}

PASTE_EXPORT size_t paste_conn__sendbuf(const struct paste_conn *c)
{
	if (c->closed || c->want_close || c->connecting)
		return 0;
	return c->ctx->tp->sendbuf(c);
}

PASTE_EXPORT int paste_conn__close(struct paste_conn *c)
{
	if (c->closed || c->want_close)
		return paste_fail_quiet(
		    -ENOTCONN, "paste_conn__close: the connection is already closed or closing");
	c->want_close = true;
	paste_conn__mark_dirty(c);
	return 0;
}

PASTE_EXPORT void paste_conn__abort(struct paste_conn *c)
{
	conn_abort(c);
}

PASTE_EXPORT void paste_conn__set_user(struct paste_conn *c, void *user)
{
	c->user = user;
}

PASTE_EXPORT void *paste_conn__user(const struct paste_conn *c)
{
	return c->user;
}

PASTE_EXPORT void paste_conn__peer(const struct paste_conn *c, struct in_addr *addr, uint16_t *port)
{
	if (addr)
		*addr = c->peer;
	if (port)
		*port = c->peer_port;
}
