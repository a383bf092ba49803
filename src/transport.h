/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * transport.h - the one interface between the event loop (ctx.c, conn.c, keep.c) and a transport.
 *
 * A transport moves TCP payload between the network and pool frames. Three implement it:
 * ptransport.c (XDP steering + AF_XDP rings over the pool + lwIP's TCP, in this process),
 * ktransport.c (the kernel's TCP behind epoll, recv() into pool frames) and utransport.c (the
 * kernel's TCP through io_uring, multishot recv into a provided-buffer ring of pool frames).
 * Everything above sees only this table: connections hold neutral pieces {frame, offset, length} of
 * received bytes, the round calls the hooks below in a fixed order, and no file outside a transport
 * asks which one is running. Adding a transport is one new file defining a table like these, plus
 * one line in the transports[] table of ctx.c and a value in enum paste_transport
 * (docs/architecture.md walks through it).
 *
 * The calls the round makes, in order (ctx.c, paste_poll()):
 *   poll(timeout)   wait up to timeout for input and turn it into pieces on connections
 *                   (paste_conn__q_append) and accepted connections (paste_conn__accept)
 *   [the application's on_data for ready connections; the fence; the round hook]
 *   flush(c)        for every connection that queued output (send()) or a close this round
 *   kick()          put what the flush queued on the wire now, before the timers and the reap
 *   tick()          timers of the transport's stack (may end connections: before the reap)
 *   [on_close + free for connections that ended]
 *   after_round()   put transmitted output on the wire, recycle frames
 */
#ifndef PASTE_TRANSPORT_H
#define PASTE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <paste/paste.h>

struct paste_ctx;
struct paste_conn;
struct paste_listener;
struct in_addr;

struct paste_transport_ops {
	const char *name;
	/* Bytes of transport state after each struct paste_conn / paste_listener (paste_conn__tp(),
	 * paste_listener__tp()), zeroed at allocation. */
	size_t conn_size;
	size_t listener_size;
	/* Free frames the transport needs to keep receiving and sending: paste_keep() refuses to
	 * keep a frame below this plus two batches. */
	uint32_t frames_reserved;
	/* paste_opts.ifname is required (else ignored), and an address (ip, or shared_ip) too; else
	 * without ip the transport listens on every address. */
	bool needs_ifname;
	/* No loopback path: paste_connect() refuses the stack's own address and 127/8 (lwIP's
	 * loopback output aborts in Debian's multi-threaded build). */
	bool no_loopback;
	/* Check the transport's options before the pool opens (optional). */
	int (*init)(struct paste_ctx *ctx);
	/* After the pool opened: sockets, rings, stack. On failure close() undoes what was done. */
	int (*open)(struct paste_ctx *ctx);
	/* Every connection was aborted: drop what the stack still holds (optional). */
	void (*shutdown)(struct paste_ctx *ctx);
	/* Undo open(), also a partial one. */
	void (*close)(struct paste_ctx *ctx);
	/* Listen on l->port; unlisten() undoes it (paste_close). */
	int (*listen)(struct paste_listener *l);
	void (*unlisten)(struct paste_listener *l);
	/* Take input, waiting up to @timeout_ms (-1 = for ever, 0 = not at all) when there is none.
	 * @return >0 input handled, 0 none, -EINTR, or another -errno with paste_last_error set. */
	int (*poll)(struct paste_ctx *ctx, int timeout_ms);
	/* Queue up to @len bytes for the end-of-round flush. @return bytes taken (short: set
	 * c->want_write, and mark the connection ready when space frees), or -errno. */
	ssize_t (*send)(struct paste_conn *c, const void *buf, size_t len);
	size_t (*sendbuf)(const struct paste_conn *c);
	/* The application consumed @n bytes (the pieces are already released): reopen the window.
	 */
	void (*consumed)(struct paste_conn *c, size_t n);
	/* End of round, after the fence: send what was queued; FIN when c->want_close. */
	void (*flush)(struct paste_conn *c);
	/* Reset the connection's handle now (no FIN); called again on a dead one, do nothing then.
	 * The caller releases the pieces and marks the connection dead. */
	void (*abort)(struct paste_conn *c);
	/* The connection is being freed: free what the transport allocated for it (optional). */
	void (*conn_free)(struct paste_conn *c);
	/* Right after the round's flushes: start transmitting what they queued (optional). The
	 * replies are the round's latency, so they leave before the timers and the reap run;
	 * after_round() sends whatever those add. */
	void (*kick)(struct paste_ctx *ctx);
	/* Timers, after the flush (optional). */
	void (*tick)(struct paste_ctx *ctx);
	/* After the reap: transmit, take completions, refill receive buffers (optional). */
	void (*after_round)(struct paste_ctx *ctx);
	/* Start an active open of @c to c->peer:c->peer_port (paste_connect; optional: without it
	 * the transport has none). The result goes to paste_conn__connected(). @return 0 (under
	 * way, or already connected) or -errno (nothing to undo). */
	int (*connect)(struct paste_conn *c);
	/* paste_set_wake_fd(): add @fd to what poll() waits for (optional: a transport that
	 * waits on ctx->wake_fd itself at each poll needs none). @return 0 or -errno (with
	 * paste_last_error set). */
	int (*wake_fd)(struct paste_ctx *ctx, int fd);
	/* Transport counters into @st (optional). */
	void (*stats)(struct paste_ctx *ctx, struct paste_stats *st);
};

extern const struct paste_transport_ops paste_transport_xdp;      /* ptransport.c */
extern const struct paste_transport_ops paste_transport_kernel;   /* ktransport.c */
extern const struct paste_transport_ops paste_transport_io_uring; /* utransport.c */

/* ---- what conn.c offers a transport ---------------------------------------------------------- */

/*
 * The one accept path. Allocate a connection for listener @l (refused past max_conns), let the
 * transport attach its handle through @attach (may be NULL; its return < 0 refuses), and ask the
 * application (on_accept). Counts conns_accepted/conns_refused. @return the connection, or NULL:
 * refused, and the caller resets its handle (@detach, if given, was already called when on_accept
 * refused after @attach).
 */
struct paste_conn *paste_conn__accept(struct paste_listener *l, const struct in_addr *peer,
                                      uint16_t peer_port,
                                      int (*attach)(struct paste_conn *c, void *handle),
                                      void (*detach)(struct paste_conn *c), void *handle);

/* The active open of @c ended: @err 0 (connected: on_connect(0) runs in the round), or -errno
 * (the transport has already dropped its handle; the reap runs on_connect(err) and frees @c). */
void paste_conn__connected(struct paste_conn *c, int err);

/* Room for @n more pieces without allocating (0 or -ENOMEM): then q_append cannot fail. */
int paste_conn__q_reserve(struct paste_conn *c, uint32_t n);
/* Append @len received bytes at @off in frame @frame (state RX, held by this connection from now
 * on: released with paste_frames__rx_done once consumed). @return 0 or -ENOMEM. */
int paste_conn__q_append(struct paste_conn *c, uint32_t frame, uint32_t off, uint32_t len);
/* Release every queued piece. */
void paste_conn__q_free_all(struct paste_conn *c);
void paste_conn__mark_ready(struct paste_conn *c);
void paste_conn__mark_dirty(struct paste_conn *c);
void paste_conn__mark_dead(struct paste_conn *c, int err);

/* The transport's state of a connection / listener (conn_size / listener_size bytes). */
void *paste_conn__tp(struct paste_conn *c);
void *paste_listener__tp(struct paste_listener *l);

/* ktransport.c: a non-blocking kernel TCP socket bound to the context's address (if any) with a
 * connect to c->peer:c->peer_port under way (both kernel-socket transports). @return fd or -errno.
 */
int paste_k__connect_fd(const struct paste_conn *c);

/* spin.c: spin until @fn returns non-zero, ctx->stop is set, the wake fd (paste_set_wake_fd) is
 * readable (it is then reset; looked at here only for a transport without a wake_fd op, whose
 * @fn does not see it) or @ms pass (-1: for ever). @return fn's last result. The busy-poll wait
 * of every transport. */
int paste_spin(struct paste_ctx *ctx, int ms, int (*fn)(struct paste_ctx *ctx));

#endif /* PASTE_TRANSPORT_H */
