/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conn.c - TCP connections: lwIP's raw-API callbacks on one side, the application's slot view on
 * the other.
 *
 * lwIP delivers in-order payload as pbuf chains whose pieces are the custom pbufs made in netif.c,
 * each still in its pool frame. recv() splits the chain into single pbufs and appends them to the
 * connection's FIFO; nothing is copied. The application sees the FIFO as slots {data, frame,
 * offset, len}, consumes a prefix when it is done with it (that frees the frames and reopens the
 * TCP window), and leaves the rest for the next round: a request split over segments or rounds is
 * just more slots.
 *
 * Everything that would send is deferred to the end of the round (paste_conns__flush): data queued
 * by paste_conn__send() and FINs from paste_conn__close(). That is the hook the durable layer
 * needs: its fence runs before the flush, so no reply leaves before the bytes it acknowledges are
 * persistent. Connections that end (reset, abort, close) go on a dead list and are freed after
 * their on_close.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lwip/tcp.h>

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

/* ---- the received-payload FIFO ----------------------------------------------------------- */

static int q_reserve(struct paste_conn *c, uint32_t more)
{
	uint32_t cap = c->q_cap ? c->q_cap : 16, i;
	struct pbuf **nq;

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

static bool in_pool(const struct paste_ctx *ctx, const void *p, uint32_t len)
{
	const uint8_t *b = p;

	return b >= ctx->area &&
	       b + len <= ctx->area + (uint64_t)ctx->frame_size * ctx->frame_count;
}

/*
 * A pbuf whose bytes are not in a pool frame (lwIP never makes one for TCP payload today, but IP
 * reassembly or a future lwIP could): copy it into a fresh frame so every slot is a pool range, and
 * count the bytes. Returns the pbuf to queue (maybe @q itself), or NULL if no frame is free.
 */
static struct pbuf *to_pool(struct paste_ctx *ctx, struct pbuf *q)
{
	uint32_t idx;
	uint8_t *dst;
	struct pbuf *np;

	if (in_pool(ctx, q->payload, q->len))
		return q;
	if (q->len > ctx->frame_size || paste_frames__alloc(ctx->frames, PASTE_FRAME_RX, &idx))
		return NULL;
	dst = ctx->area + (uint64_t)idx * ctx->frame_size;
	memcpy(dst, q->payload, q->len);
	np = paste_netif__wrap(ctx, idx, dst, q->len);
	ctx->st.rx_copied_bytes += q->len;
	pbuf_free(q);
	return np;
}

void paste_conn__q_free_all(struct paste_conn *c)
{
	while (c->q_len) {
		pbuf_free(c->q[c->q_head]);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	c->pending = 0;
	c->head_off = 0;
	c->slots_valid = false;
}

/* Append every piece of chain @p; lwIP keeps @p (and retries later) if this fails. */
int paste_conn__q_append(struct paste_conn *c, struct pbuf *p)
{
	struct pbuf *q, *next, *np;

	if (q_reserve(c, pbuf_clen(p)))
		return -ENOMEM;
	for (q = p; q; q = next) {
		next = q->next;
		if (next) {
			pbuf_ref(next); /* dechain drops the chain's reference to next */
			pbuf_dechain(q);
		}
		if (q->len == 0) {
			pbuf_free(q);
			continue;
		}
		np = to_pool(c->ctx, q);
		if (!np) { /* only when the pool is exhausted: the stream has a hole now */
			pbuf_free(q);
			if (next)
				pbuf_free(next);
			return -ENOBUFS;
		}
		q = np;
		c->ctx->st.rx_payload_bytes += q->len;
		c->pending += q->len;
		c->q[(c->q_head + c->q_len) % c->q_cap] = q;
		c->q_len++;
	}
	c->slots_valid = false;
	return 0;
}

/* ---- lwIP callbacks ---------------------------------------------------------------------- */

static err_t cb_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct paste_conn *c = arg;

	if (!p) {
		c->eof = true;
		paste_conn__mark_ready(c);
		return ERR_OK;
	}
	if (err != ERR_OK || c->closed) {
		tcp_recved(pcb, p->tot_len);
		pbuf_free(p);
		return ERR_OK;
	}
	switch (paste_conn__q_append(c, p)) {
	case 0:
		break;
	case -ENOMEM:
		return ERR_MEM; /* lwIP holds p as refused data and offers it again */
	default:
		pr_warn("pool exhausted while receiving: connection aborted");
		tcp_abort(pcb); /* runs cb_err */
		return ERR_ABRT;
	}
	paste_conn__mark_ready(c);
	return ERR_OK;
}

static err_t cb_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct paste_conn *c = arg;

	if (c->want_write) {
		c->want_write = false;
		paste_conn__mark_ready(c);
	}
	return ERR_OK;
}

/* lwIP already freed the pcb (reset received, or aborted by a timer). */
static void cb_err(void *arg, err_t err)
{
	struct paste_conn *c = arg;

	c->pcb = NULL;
	paste_conn__q_free_all(c);
	paste_conn__mark_dead(c, err == ERR_RST    ? -ECONNRESET
	                         : err == ERR_ABRT ? -ECONNABORTED
	                                           : -EIO);
}

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
	paste_conn__q_free_all(c);
	free(c->q);
	free(c->slots);
	free(c->out);
	free(c);
}

static void pcb_detach(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
}

static err_t cb_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct paste_listener *l = arg;
	struct paste_ctx *ctx = l->ctx;
	struct paste_conn *c;

	if (err != ERR_OK || !pcb)
		return ERR_VAL;
	c = ctx->nconns < ctx->opts.max_conns ? calloc(1, sizeof(*c)) : NULL;
	if (!c)
		goto refuse;
	c->fd = -1;
	c->ctx = ctx;
	c->listener = l;
	c->pcb = pcb;
	c->peer.s_addr = ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip));
	c->peer_port = pcb->remote_port;
	paste_conn__link(ctx, c);
	tcp_arg(pcb, c);
	tcp_recv(pcb, cb_recv);
	tcp_sent(pcb, cb_sent);
	tcp_err(pcb, cb_err);
	tcp_nagle_disable(pcb);
	if (l->ops.on_accept && l->ops.on_accept(c, l->user) < 0) {
		pcb_detach(pcb);
		paste_conn__unlink_free(ctx, c);
		goto refuse;
	}
	ctx->st.conns_accepted++;
	return ERR_OK;
refuse:
	ctx->st.conns_refused++;
	tcp_abort(pcb);
	return ERR_ABRT;
}

int paste_conn__listen_pcb(struct paste_listener *l)
{
	struct tcp_pcb *pcb, *lpcb;
	ip_addr_t ip;
	err_t err;

	pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
	if (!pcb)
		return -ENOMEM;
	ip_addr_set_ip4_u32_val(ip, l->ctx->ip);
	err = tcp_bind(pcb, &ip, l->port);
	if (err != ERR_OK) {
		tcp_close(pcb);
		return err == ERR_USE ? -EADDRINUSE : -EINVAL;
	}
	lpcb = tcp_listen_with_backlog_and_err(pcb, TCP_DEFAULT_LISTEN_BACKLOG, &err);
	if (!lpcb) {
		tcp_close(pcb);
		return -ENOMEM;
	}
	l->pcb = lpcb;
	tcp_arg(lpcb, l);
	tcp_accept(lpcb, cb_accept);
	return 0;
}

/* ---- the round --------------------------------------------------------------------------- */

void paste_conns__run_ready(struct paste_ctx *ctx)
{
	struct paste_conn *c = ctx->ready, *next;

	ctx->ready = NULL;
	for (; c; c = next) {
		next = c->next_ready;
		c->ready = false;
		if (!c->closed && c->listener->ops.on_data)
			c->listener->ops.on_data(c, c->listener->user);
	}
}

/* Graceful close, run at flush time so the FIN never overtakes the fence. */
static void close_pcb(struct paste_conn *c)
{
	struct tcp_pcb *pcb = c->pcb;
	size_t left = c->pending;

	/* lwIP resets instead of closing while received bytes are unacknowledged to the window. */
	for (; left; left -= left > 0xffff ? 0xffff : left)
		tcp_recved(pcb, (u16_t)(left > 0xffff ? 0xffff : left));
	paste_conn__q_free_all(c);
	pcb_detach(pcb);
	c->pcb = NULL;
	if (tcp_close(pcb) != ERR_OK) {
		tcp_abort(pcb);
		paste_conn__mark_dead(c, -ECONNABORTED);
		return;
	}
	paste_conn__mark_dead(c, 0);
}

void paste_conns__flush(struct paste_ctx *ctx)
{
	struct paste_conn *c = ctx->dirty, *next;

	ctx->dirty = NULL;
	for (; c; c = next) {
		next = c->next_dirty;
		c->dirty = false;
		if (c->fd >= 0) {
			paste_k__flush(c);
			continue;
		}
		if (!c->pcb)
			continue;
		if (c->want_close)
			close_pcb(c);
		else
			tcp_output(c->pcb);
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
		if (c->listener->ops.on_close)
			c->listener->ops.on_close(c, c->close_err, c->listener->user);
		paste_conn__unlink_free(ctx, c);
	}
}

void paste_conns__shutdown_conns(struct paste_ctx *ctx)
{
	struct paste_conn *c;

	for (c = ctx->conns; c; c = c->next) {
		if (c->fd >= 0)
			paste_k__abort(c);
		if (c->pcb) {
			pcb_detach(c->pcb);
			tcp_abort(c->pcb);
			c->pcb = NULL;
		}
		paste_conn__q_free_all(c);
		paste_conn__mark_dead(c, -ECONNABORTED);
	}
	ctx->dirty = NULL;
}

void paste_conns__shutdown(struct paste_ctx *ctx)
{
	unsigned i;

	paste_conns__shutdown_conns(ctx);
	paste_conns__reap(ctx);
	for (i = 0; i < ctx->nlisteners; i++) {
		if (ctx->listeners[i]->pcb)
			tcp_close(ctx->listeners[i]->pcb);
		if (ctx->listeners[i]->fd >= 0)
			close(ctx->listeners[i]->fd);
		free(ctx->listeners[i]);
	}
	ctx->nlisteners = 0;
}

/* ---- public API -------------------------------------------------------------------------- */

PASTE_EXPORT int paste_listen(struct paste_ctx *ctx, uint16_t port,
                              const struct paste_conn_ops *ops, void *user)
{
	struct paste_listener *l;
	int err;

	if (!ctx || !port || !ops || ops->sz < sizeof(size_t))
		return paste_fail(-EINVAL, "paste_listen: need a context, a port (1-65535) and ops "
		                           "with .sz set");
	if (ctx->nlisteners == ARRAY_SIZE(ctx->listeners))
		return paste_fail(-ENOSPC, "paste_listen: at most %zu listening ports",
		                  ARRAY_SIZE(ctx->listeners));
	l = calloc(1, sizeof(*l));
	if (!l)
		return paste_fail(-ENOMEM, "paste_listen: out of memory");
	memcpy(&l->ops, ops, ops->sz < sizeof(l->ops) ? ops->sz : sizeof(l->ops));
	l->user = user;
	l->port = port;
	l->ctx = ctx;
	l->fd = -1;
	if (ctx->kernel) {
		err = paste_k__listen(l);
	} else {
		err = paste_conn__listen_pcb(l);
		if (!err)
			err = paste_steer__add_port(ctx->steer, port);
	}
	if (err) {
		if (l->pcb)
			tcp_close(l->pcb);
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
				return NULL;
			}
			c->slots = s;
			c->slots_cap = c->q_cap;
		}
		for (i = 0; i < c->q_len; i++) {
			struct pbuf *q = c->q[(c->q_head + i) % c->q_cap];
			uint32_t skip = i ? 0 : c->head_off;
			uint64_t off = (uint64_t)((uint8_t *)q->payload + skip - ctx->area);

			c->slots[i].data = (uint8_t *)q->payload + skip;
			c->slots[i].frame = (uint32_t)(off / ctx->frame_size);
			c->slots[i].offset = (uint32_t)(off % ctx->frame_size);
			c->slots[i].len = q->len - skip;
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
		struct pbuf *q = c->q[c->q_head];
		uint32_t avail = q->len - c->head_off;
		uint32_t take = left < avail ? (uint32_t)left : avail;

		c->head_off += take;
		left -= take;
		if (c->head_off == q->len) {
			pbuf_free(q);
			c->q_head = (c->q_head + 1) % c->q_cap;
			c->q_len--;
			c->head_off = 0;
		}
	}
	c->pending -= n;
	c->slots_valid = false;
	if (c->fd >= 0)
		paste_k__consumed(c);
	for (left = n; c->pcb && left;) {
		u16_t step = left > 0xffff ? 0xffff : (u16_t)left;

		tcp_recved(c->pcb, step);
		left -= step;
	}
	return 0;
}

PASTE_EXPORT ssize_t paste_conn__send(struct paste_conn *c, const void *buf, size_t len)
{
	size_t room;
	err_t err;

	if (c->fd >= 0)
		return paste_k__send(c, buf, len);
	if (!c->pcb || c->closed || c->want_close)
		return -ENOTCONN;
	room = tcp_sndbuf(c->pcb);
	if (tcp_sndqueuelen(c->pcb) >= TCP_SND_QUEUELEN - 2)
		room = 0;
	if (len > 0xffff) {
		len = 0xffff;
		c->want_write = true; /* short: offered again when the send buffer has room */
	}
	if (len > room) {
		len = room;
		c->want_write = true; /* short: on_data runs again when acks free space */
	}
	if (!len)
		return 0;
	err = tcp_write(c->pcb, buf, (u16_t)len, TCP_WRITE_FLAG_COPY);
	if (err == ERR_MEM) {
		c->want_write = true;
		return 0;
	}
	if (err != ERR_OK)
		return paste_fail(-EIO, "tcp_write failed (lwIP error %d)", err);
	paste_conn__mark_dirty(c);
	return (ssize_t)len;
}

PASTE_EXPORT size_t paste_conn__sendbuf(const struct paste_conn *c)
{
	if (c->fd >= 0)
		return c->closed || c->want_close ? 0 : PASTE_K_SNDBUF - c->out_len;
	return c->pcb && !c->want_close ? tcp_sndbuf(c->pcb) : 0;
}

PASTE_EXPORT int paste_conn__close(struct paste_conn *c)
{
	if ((!c->pcb && c->fd < 0) || c->closed || c->want_close)
		return -ENOTCONN;
	c->want_close = true;
	paste_conn__mark_dirty(c);
	return 0;
}

PASTE_EXPORT void paste_conn__abort(struct paste_conn *c)
{
	if (c->fd >= 0)
		paste_k__abort(c);
	if (c->pcb) {
		pcb_detach(c->pcb);
		tcp_abort(c->pcb);
		c->pcb = NULL;
	}
	paste_conn__q_free_all(c);
	paste_conn__mark_dead(c, -ECONNABORTED);
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
