/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ptransport.c - the paste transport: XDP steering (steer.c) sends the stack's flows to an AF_XDP
 * socket whose UMEM is the pool's frame area (xsk.c), lwIP's TCP runs in this process on a netif
 * over those rings (netif.c), and this file is the table of transport.h over them: lwIP's raw-API
 * callbacks for connections and listeners, open/close, and the round's hooks.
 *
 * lwIP delivers in-order payload as pbuf chains whose pieces are the custom pbufs made in netif.c,
 * each still in its pool frame. recv() splits the chain and hands every piece to the connection as
 * {frame, offset, length}, taking over the frame's RX hold from the pbuf (see take_piece), so the
 * connection above never sees lwIP. Output is deferred to the flush: tcp_write copies the reply
 * into lwIP's send buffer at once, tcp_output (and a close's FIN) waits for the end of the round,
 * after the fence.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <lwip/etharp.h>
#include <lwip/ip4_frag.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/tcp.h>
#include <lwip/timeouts.h>

#include "paste_steer.h"
#include "ptransport.h"

struct ptp_conn {
	struct tcp_pcb *pcb; /* NULL once lwIP freed it (reset/abort) or we closed it */
};

struct ptp_listener {
	struct tcp_pcb *pcb;
};

static struct tcp_pcb **conn_pcb(struct paste_conn *c)
{
	return &((struct ptp_conn *)paste_conn__tp(c))->pcb;
}

/* ---- received payload -------------------------------------------------------------------- */

static bool in_pool(const struct paste_ctx *ctx, const void *p, uint32_t len)
{
	const uint8_t *b = p;

	return b >= ctx->area &&
	       b + len <= ctx->area + (uint64_t)ctx->frame_size * ctx->frame_count;
}

/*
 * Hand the bytes of pbuf @q to connection @c as a piece, and free @q. Our own frame pbuf (the
 * normal case) passes its RX hold on to the piece. Any other pbuf (lwIP never makes one for TCP
 * payload today, but IP reassembly or a future lwIP could) is copied into a fresh frame so every
 * piece is a pool range, and the bytes are counted. @return 0, or -ENOBUFS when no frame is free.
 */
static int take_piece(struct paste_conn *c, struct pbuf *q)
{
	struct paste_ctx *ctx = c->ctx;
	uint32_t len = q->len, idx;
	uint64_t off;
	uint8_t *dst;

	if (in_pool(ctx, q->payload, len)) {
		struct paste_rxbuf *rb;

		off = (uint64_t)((uint8_t *)q->payload - ctx->area);
		idx = (uint32_t)(off / ctx->frame_size);
		rb = &paste_ptp(ctx)->nif.rxbufs[idx];
		if (q == &rb->pc.pbuf && q->ref == 1) {
			rb->detached = true;
			pbuf_free(q);
			/* cannot fail: the caller reserved room for the whole chain */
			return paste_conn__q_append(c, idx, (uint32_t)(off % ctx->frame_size), len);
		}
	}
	if (len > ctx->frame_size || paste_frames__alloc(ctx->frames, PASTE_FRAME_RX, &idx)) {
		pbuf_free(q);
		return -ENOBUFS;
	}
	dst = ctx->area + (uint64_t)idx * ctx->frame_size;
	memcpy(dst, q->payload, len);
	ctx->st.rx_copied_bytes += len;
	pbuf_free(q);
	return paste_conn__q_append(c, idx, 0, len);
}

/* Append every piece of chain @p; lwIP keeps @p (and retries later) if this returns -ENOMEM. */
static int take_chain(struct paste_conn *c, struct pbuf *p)
{
	struct pbuf *q, *next;

	if (paste_conn__q_reserve(c, pbuf_clen(p)))
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
		if (take_piece(c, q)) { /* only when the pool is exhausted: the stream has a hole */
			if (next)
				pbuf_free(next);
			return -ENOBUFS;
		}
	}
	return 0;
}

/* ---- lwIP callbacks ---------------------------------------------------------------------- */

static void pcb_detach(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
}

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
	switch (take_chain(c, p)) {
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

	*conn_pcb(c) = NULL;
	if (c->connecting) { /* a reset answers the SYN: refused; lwIP gave up: timed out */
		paste_conn__connected(c, err == ERR_RST ? -ECONNREFUSED : -ETIMEDOUT);
		return;
	}
	paste_conn__q_free_all(c);
	paste_conn__mark_dead(c, err == ERR_RST    ? -ECONNRESET
	                         : err == ERR_ABRT ? -ECONNABORTED
	                                           : -EIO);
}

static int conn_attach(struct paste_conn *c, void *handle)
{
	struct tcp_pcb *pcb = handle;

	*conn_pcb(c) = pcb;
	tcp_arg(pcb, c);
	tcp_recv(pcb, cb_recv);
	tcp_sent(pcb, cb_sent);
	tcp_err(pcb, cb_err);
	tcp_nagle_disable(pcb);
	return 0;
}

static void conn_detach(struct paste_conn *c)
{
	pcb_detach(*conn_pcb(c));
}

static err_t cb_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct paste_listener *l = arg;
	struct in_addr peer;

	if (err != ERR_OK || !pcb)
		return ERR_VAL;
	peer.s_addr = ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip));
	if (paste_conn__accept(l, &peer, pcb->remote_port, conn_attach, conn_detach, pcb))
		return ERR_OK;
	tcp_abort(pcb);
	return ERR_ABRT;
}

int paste_ptp__listen_pcb(struct paste_listener *l)
{
	struct ptp_listener *pl = paste_listener__tp(l);
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
	pl->pcb = lpcb;
	tcp_arg(lpcb, l);
	tcp_accept(lpcb, cb_accept);
	return 0;
}

static int ptp_listen(struct paste_listener *l)
{
	struct ptp_listener *pl = paste_listener__tp(l);
	int err = paste_ptp__listen_pcb(l);

	if (!err)
		err = paste_steer__add_port(paste_ptp(l->ctx)->steer, l->port);
	if (err && pl->pcb) {
		tcp_close(pl->pcb);
		pl->pcb = NULL;
	}
	return err;
}

static void ptp_unlisten(struct paste_listener *l)
{
	struct ptp_listener *pl = paste_listener__tp(l);

	if (pl->pcb)
		tcp_close(pl->pcb);
	pl->pcb = NULL;
}

/* ---- outgoing connections ---------------------------------------------------------------- */

static err_t cb_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	paste_conn__connected(arg, err == ERR_OK ? 0 : -EIO);
	return ERR_OK;
}

/*
 * Shared IP: the replies must come back to a port the XDP program steers to us, so the local port
 * is one of the ephemeral range (the kernel's own sockets must not use it: docs/api.md). Dedicated
 * IP: every port of the address is ours, lwIP picks one.
 */
static int bind_local(struct paste_ctx *ctx, struct tcp_pcb *pcb)
{
	static uint32_t next;
	uint32_t lo = ctx->opts.ephemeral_lo, span = ctx->opts.ephemeral_hi - lo + 1u;
	ip_addr_t ip;

	ip_addr_set_ip4_u32_val(ip, ctx->ip);
	if (!ctx->opts.shared_ip)
		return tcp_bind(pcb, &ip, 0) == ERR_OK ? 0 : -EADDRINUSE;
	if (!next)
		next = (uint32_t)paste_now_ns();
	for (uint32_t i = 0; i < span; i++) {
		uint16_t port = (uint16_t)(lo + next++ % span);

		if (tcp_bind(pcb, &ip, port) == ERR_OK)
			return 0;
	}
	return -EADDRNOTAVAIL;
}

static int ptp_connect(struct paste_conn *c)
{
	struct paste_ctx *ctx = c->ctx;
	struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
	ip_addr_t peer;
	err_t e;
	int err;

	if (!pcb)
		return -ENOMEM;
	err = bind_local(ctx, pcb);
	if (err) {
		tcp_close(pcb);
		return err;
	}
	if (ctx->opts.shared_ip)
		paste_netif__neigh_probe(&paste_ptp(ctx)->nif, c->peer.s_addr);
	conn_attach(c, pcb);
	ip_addr_set_ip4_u32_val(peer, c->peer.s_addr);
	e = tcp_connect(pcb, &peer, c->peer_port, cb_connected);
	if (e != ERR_OK) {
		pcb_detach(pcb);
		tcp_abort(pcb);
		*conn_pcb(c) = NULL;
		return e == ERR_RTE ? -ENETUNREACH : e == ERR_MEM ? -ENOMEM : -EIO;
	}
	return 0;
}

/* ---- connections ------------------------------------------------------------------------- */

/* Graceful close, run at flush time so the FIN never overtakes the fence. */
static void close_pcb(struct paste_conn *c)
{
	struct tcp_pcb *pcb = *conn_pcb(c);
	size_t left = c->pending;

	/* lwIP resets instead of closing while received bytes are unacknowledged to the window. */
	for (; left; left -= left > 0xffff ? 0xffff : left)
		tcp_recved(pcb, (u16_t)(left > 0xffff ? 0xffff : left));
	paste_conn__q_free_all(c);
	pcb_detach(pcb);
	*conn_pcb(c) = NULL;
	if (tcp_close(pcb) != ERR_OK) {
		tcp_abort(pcb);
		paste_conn__mark_dead(c, -ECONNABORTED);
		return;
	}
	paste_conn__mark_dead(c, 0);
}

static void ptp_flush(struct paste_conn *c)
{
	struct tcp_pcb *pcb = *conn_pcb(c);

	if (!pcb)
		return;
	if (c->want_close)
		close_pcb(c);
	else
		tcp_output(pcb);
}

static void ptp_abort(struct paste_conn *c)
{
	struct tcp_pcb *pcb = *conn_pcb(c);

	if (!pcb)
		return;
	pcb_detach(pcb);
	tcp_abort(pcb);
	*conn_pcb(c) = NULL;
}

static void ptp_consumed(struct paste_conn *c, size_t n)
{
	struct tcp_pcb *pcb = *conn_pcb(c);

	for (size_t left = n; pcb && left;) {
		u16_t step = left > 0xffff ? 0xffff : (u16_t)left;

		tcp_recved(pcb, step);
		left -= step;
	}
}

static ssize_t ptp_send(struct paste_conn *c, const void *buf, size_t len)
{
	struct tcp_pcb *pcb = *conn_pcb(c);
	size_t room;
	err_t err;

	if (!pcb)
		return -ENOTCONN;
	room = tcp_sndbuf(pcb);
	if (tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN - 2)
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
	err = tcp_write(pcb, buf, (u16_t)len, TCP_WRITE_FLAG_COPY);
	if (err == ERR_MEM) {
		c->want_write = true;
		return 0;
	}
	if (err != ERR_OK)
		return paste_fail(-EIO, "tcp_write failed (lwIP error %d)", err);
	paste_conn__mark_dirty(c);
	return (ssize_t)len;
}

static size_t ptp_sendbuf(const struct paste_conn *c)
{
	struct tcp_pcb *pcb = *conn_pcb((struct paste_conn *)c);

	return pcb ? tcp_sndbuf(pcb) : 0;
}

/* ---- open, close ------------------------------------------------------------------------- */

static int ptp_init(struct paste_ctx *ctx)
{
	struct paste_ptp *pt = calloc(1, sizeof(*pt));

	if (!pt)
		return paste_fail(-ENOMEM, "paste_open: out of memory");
	ctx->tp_state = pt;
	pt->xsk.fd = -1;
	pt->ifindex = (int)if_nametoindex(ctx->ifname);
	if (!pt->ifindex)
		return paste_fail(
		    -ENODEV,
		    "no interface '%s' in this network namespace (ip link show lists them)",
		    ctx->ifname);
	return 0;
}

static int open_steer(struct paste_ctx *ctx)
{
	struct paste_ptp *pt = paste_ptp(ctx);
	struct paste_steer_cfg cfg = {
	    .ifindex = pt->ifindex,
	    .shared_ip = ctx->opts.shared_ip,
	    .ip = ctx->ip,
	    .eph_lo = ctx->opts.ephemeral_lo,
	    .eph_hi = ctx->opts.ephemeral_hi,
	    .mode = ctx->opts.xdp_mode,
	};

	/* Shared: the processes serving other queues of this interface use the same program. */
	return paste_steer__open_shared(&pt->steer, &cfg);
}

/*
 * How many frames the fill ring holds (xsk.c, fill_want): what the connections can have in
 * flight towards us - lwIP's receive window of each, counted in segments twice over (segments
 * shorter than the MSS) - plus two batches for new connections' SYNs and whatever else the
 * program steers here. Tied to the connections, the RX frames stay a few hundred KiB that cycle
 * through this CPU's caches at one connection, and the whole ring at 64.
 */
static uint32_t ptp_fill_target(const struct paste_ctx *ctx)
{
	uint64_t per_conn = 2 * ((TCP_WND + TCP_MSS - 1) / TCP_MSS);
	uint64_t t = 2 * (uint64_t)ctx->opts.batch_size + ctx->nconns * per_conn;

	return t < ctx->opts.ring_size ? (uint32_t)t : ctx->opts.ring_size;
}

static int ptp_open(struct paste_ctx *ctx)
{
	struct paste_ptp *pt = paste_ptp(ctx);
	struct paste_xsk_cfg xc = {
	    .ifname = ctx->ifname,
	    .queue = ctx->opts.queue,
	    .zero_copy = ctx->opts.zero_copy,
	    .busy_poll = ctx->opts.busy_poll,
	    .batch_size = ctx->opts.batch_size,
	    .pool_path = ctx->opts.pool_path,
	};
	int err;

	pt->xsk = (struct paste_xsk){
	    .frames = ctx->frames,
	    .area = ctx->area,
	    .frame_size = ctx->frame_size,
	    .frame_count = ctx->frame_count,
	    .ring_size = ctx->opts.ring_size,
	    .fill_target = ptp_fill_target(ctx),
	    .st = &ctx->st,
	    .fd = -1,
	};
	pt->nif.xsk = &pt->xsk;
	pt->nif.frames = ctx->frames;
	pt->nif.st = &ctx->st;
	snprintf(pt->nif.ifname, sizeof(pt->nif.ifname), "%s", ctx->ifname);
	pt->nif.shared_ip = ctx->opts.shared_ip;
	pt->nif.query_addr = ctx->opts.shared_ip && !ctx->opts.ip;
	pt->nif.frame_size = ctx->frame_size;
	pt->nif.frame_count = ctx->frame_count;
	pt->nif.ip = ctx->ip;
	pt->nif.netmask = ctx->netmask;
	pt->nif.syn_backlog = pt->nif.syn_room = ctx->opts.syn_backlog;
	err = paste_netif__query(&pt->nif);
	if (err)
		return err;
	ctx->ip = pt->nif.ip; /* shared-IP mode without --ip: the interface's address */
	ctx->netmask = pt->nif.netmask;
	err = open_steer(ctx);
	if (!err)
		err = paste_xsk__open(&pt->xsk, &xc);
	if (!err)
		err = paste_steer__set_xsk(pt->steer, ctx->opts.queue, pt->xsk.fd);
	if (!err)
		err = paste_netif__open(&pt->nif);
	return err;
}

/* Every pcb lwIP has not handed to us (half-open, or closing after we let go) holds no frame of
 * ours once aborted; IP reassembly and the ARP queue may: age them out. */
static void ptp_shutdown(struct paste_ctx *ctx)
{
	struct paste_ptp *pt = paste_ptp(ctx);

	if (!pt->nif.added)
		return;
	while (tcp_active_pcbs) {
		struct tcp_pcb *pcb = tcp_active_pcbs;

		tcp_arg(pcb, NULL);
		tcp_err(pcb, NULL);
		tcp_abort(pcb);
	}
	for (int i = 0; i < 2 * IP_REASS_MAXAGE + 2; i++)
		ip_reass_tmr();
	etharp_cleanup_netif(&pt->nif.netif);
	paste_xsk__kick(&pt->xsk); /* the RSTs */
}

static void ptp_close(struct paste_ctx *ctx)
{
	struct paste_ptp *pt = paste_ptp(ctx);

	if (!pt)
		return;
	paste_netif__close(&pt->nif);
	if (pt->steer && pt->xsk.fd >= 0) /* stop steering to a closing socket */
		paste_steer__clear_xsk(pt->steer, ctx->opts.queue);
	paste_steer__close_shared(&pt->steer); /* detaches if no other worker uses the program */
	paste_xsk__close(&pt->xsk);
	free(pt);
	ctx->tp_state = NULL;
}

/* ---- the round --------------------------------------------------------------------------- */

/* Frames taken off the RX ring per burst. */
#define PTP_BURST 64u

/*
 * Ask for every cache line of a received frame at once. The kernel wrote it on the sender's CPU
 * (veth runs the AF_XDP copy in the sender's softirq), and lwIP's checksum then reads it from start
 * to end: issued together, the lines arrive in parallel instead of one miss after the other while
 * the hardware prefetcher warms up.
 */
static void prefetch_frame(const struct paste_xsk_desc *d)
{
	for (uint32_t off = 0; off < d->len; off += 64)
		__builtin_prefetch(d->data + off);
}

/* Pull up to @max received frames from the socket and push each into lwIP, the next frame's lines
 * on their way while lwIP works on this one. @return frames. */
static unsigned ptp_rx(struct paste_ctx *ctx, unsigned max)
{
	struct paste_ptp *pt = paste_ptp(ctx);
	struct paste_xsk_desc d[PTP_BURST];
	unsigned total = 0, n, i;

	do {
		n = paste_xsk__rx_burst(&pt->xsk, d,
		                        max - total < PTP_BURST ? max - total : PTP_BURST);
		if (n)
			prefetch_frame(&d[0]);
		for (i = 0; i < n; i++) {
			if (i + 1 < n)
				prefetch_frame(&d[i + 1]);
			paste_netif__input(&pt->nif, d[i].frame, d[i].data, d[i].len);
		}
		total += n;
	} while (n == PTP_BURST && total < max);
	return total;
}

static int spin_rx(struct paste_ctx *ctx)
{
	struct paste_xsk *x = &paste_ptp(ctx)->xsk;

	if (xsk_ring_prod__needs_wakeup(&x->fill))
		recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	return (int)ptp_rx(ctx, ctx->opts.batch_size);
}

/* Take a batch of frames, waiting for them (up to lwIP's next timer) if there were none. */
static int ptp_poll(struct paste_ctx *ctx, int timeout_ms)
{
	int n = (int)ptp_rx(ctx, ctx->opts.batch_size);
	uint32_t t;
	int ms, r;

	if (n || timeout_ms == 0)
		return n;
	t = sys_timeouts_sleeptime();
	ms = t == SYS_TIMEOUTS_SLEEPTIME_INFINITE ? -1 : (int)t;
	if (timeout_ms >= 0 && (ms < 0 || timeout_ms < ms))
		ms = timeout_ms;
	if (ctx->opts.busy_poll)
		return paste_spin(ctx, ms, spin_rx);
	r = paste_xsk__wait(&paste_ptp(ctx)->xsk, ctx->wake_fd, ms);
	if (r < 0)
		return r;
	if (r == 2)
		paste__drain_wake(ctx);
	return (int)ptp_rx(ctx, ctx->opts.batch_size);
}

/* The round's replies leave before lwIP's timers and the reap (1 connection busy-polling: the
 * reply's sendto() is the end of the request's time in this process). */
static void ptp_kick(struct paste_ctx *ctx)
{
	paste_xsk__kick(&paste_ptp(ctx)->xsk);
}

static void ptp_tick(struct paste_ctx *ctx)
{
	sys_check_timeouts();
}

/*
 * The fill ring is refilled before the round's TX completions are taken: the frames just sent
 * (copy mode completes them within the kick) then go back on top of the LIFO free stack, and the
 * next round builds its replies in them while they are still in this CPU's cache; the fill ring,
 * which the kernel writes on the sender's CPU, gets the frames below them. The other order handed
 * the warm frames to the fill ring and built every reply in a cold frame (the reply copy was the
 * largest libc cost of paste-wal in bench/profile).
 */
static void ptp_after_round(struct paste_ctx *ctx)
{
	struct paste_xsk *x = &paste_ptp(ctx)->xsk;

	paste_xsk__kick(x); /* what the timers and closes sent since ptp_kick */
	x->fill_target = ptp_fill_target(ctx);
	paste_xsk__refill(x);
	paste_xsk__complete(x);
	paste_xsk__warm(x);
}

static void ptp_stats(struct paste_ctx *ctx, struct paste_stats *st)
{
	struct paste_ptp *pt = paste_ptp(ctx);
	uint64_t cnt[PASTE_CNT_MAX] = {0};

	paste_xsk__kstats(&pt->xsk, st);
	if (pt->steer && !paste_steer__counters(pt->steer, cnt, PASTE_CNT_MAX)) {
		st->steered = cnt[PASTE_CNT_STEERED];
		st->passed = cnt[PASTE_CNT_PASSED] + cnt[PASTE_CNT_NO_SOCKET];
	}
	st->zerocopy = pt->xsk.zerocopy;
	st->xdp_mode = pt->steer ? paste_steer__attached_mode(pt->steer) : PASTE_XDP_AUTO;
}

const struct paste_transport_ops paste_transport_xdp = {
    .name = "paste (XDP + AF_XDP + lwIP)",
    .conn_size = sizeof(struct ptp_conn),
    .listener_size = sizeof(struct ptp_listener),
    .frames_reserved = PASTE_TX_RESERVE,
    .needs_ifname = true,
    .no_loopback = true,
    .init = ptp_init,
    .open = ptp_open,
    .shutdown = ptp_shutdown,
    .close = ptp_close,
    .listen = ptp_listen,
    .unlisten = ptp_unlisten,
    .poll = ptp_poll,
    .send = ptp_send,
    .sendbuf = ptp_sendbuf,
    .consumed = ptp_consumed,
    .flush = ptp_flush,
    .abort = ptp_abort,
    .kick = ptp_kick,
    .tick = ptp_tick,
    .after_round = ptp_after_round,
    .stats = ptp_stats,
    .connect = ptp_connect,
};
