/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctx.h - the context and connection objects, shared by the layers that make up the event loop:
 * xsk.c (AF_XDP rings over the pool), netif.c (lwIP netif on those rings), conn.c (TCP connections
 * and the slot view the application reads), ctx.c (open/close and paste_poll()).
 *
 * One round of paste_poll():
 *   xsk RX ring -> netif (frames wrapped as pbuf_custom, ethernet_input) -> lwIP TCP -> conn queues
 *   -> application on_data for every ready connection -> [fence: issue 4] -> tcp_output for every
 *   connection that queued data -> lwIP timers -> reap closed connections -> TX kick, completions,
 *   fill-ring refill.
 */
#ifndef PASTE_CTX_H
#define PASTE_CTX_H

#include <stdbool.h>
#include <stdint.h>
#include <net/if.h>

#include <lwip/netif.h>
#include <lwip/pbuf.h>
#include <xdp/xsk.h>

#include "frames.h"
#include "internal.h"
#include "steer.h"

/* Frames kept free for TX: the fill ring is topped up only above this many free frames. */
#ifndef PASTE_TX_RESERVE
#define PASTE_TX_RESERVE 256u
#endif
/* Kernel transport: unconsumed bytes per connection before reading pauses (the window analog),
 * and bytes a connection may have queued for sending. */
#ifndef PASTE_K_RCVBUF
#define PASTE_K_RCVBUF (64u << 10)
#endif
#ifndef PASTE_K_SNDBUF
#define PASTE_K_SNDBUF (256u << 10)
#endif

/* Entries of the learned next-hop table (shared-IP mode), a power of two. */
#ifndef PASTE_NEIGH_SLOTS
#define PASTE_NEIGH_SLOTS 256u
#endif

/* An RX frame as lwIP sees it: the pbuf_custom wraps the frame in place (PBUF_REF, no copy). One
 * per frame of the pool, allocated once; its index in ctx->rxbufs is the frame index. */
struct paste_rxbuf {
	struct pbuf_custom pc;
	struct paste_ctx *ctx;
};

struct paste_xsk {
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	uint32_t ring_size;
	uint32_t tx_pending; /* descriptors submitted since the last kick */
	bool zerocopy;
	int fd;
};

struct paste_neigh {
	uint32_t ip; /* network order; 0 = empty */
	uint8_t mac[6];
};

struct paste_listener {
	struct tcp_pcb *pcb;
	int fd; /* kernel transport: the listening socket, else -1 */
	struct paste_conn_ops ops;
	void *user;
	uint16_t port;
	struct paste_ctx *ctx;
};

/*
 * A TCP connection. Received payload is a FIFO of single pbufs (chains from lwIP are split on
 * arrival), each still in its pool frame; @head_off bytes of the first one are already consumed.
 * The slot array mirrors the FIFO and is rebuilt when the application asks for it after a change.
 */
struct paste_conn {
	struct paste_ctx *ctx;
	struct paste_listener *listener;
	struct tcp_pcb *pcb; /* NULL once lwIP freed it (reset/abort) or we closed it */
	void *user;
	struct pbuf **q; /* circular FIFO of received pbufs */
	uint32_t q_cap, q_head, q_len;
	uint32_t head_off; /* consumed bytes of q[q_head] */
	size_t pending;    /* unconsumed bytes in the FIFO */
	struct paste_slot *slots;
	uint32_t slots_cap;
	bool slots_valid;
	bool eof;        /* FIN received */
	bool ready;      /* on ctx->ready list */
	bool dirty;      /* queued TX data this round: tcp_output at the end */
	bool want_write; /* a send came up short: call on_data again when space frees */
	bool want_close; /* graceful close requested: FIN at flush time */
	bool closed;     /* on ctx->dead list; on_close pending */
	int close_err;
	struct paste_conn *next_ready, *next_dirty, *next_dead;
	struct paste_conn *prev, *next; /* all live connections */
	struct in_addr peer;
	uint16_t peer_port;
	/* kernel transport (fd >= 0): replies wait in @out until the end-of-round flush */
	int fd;
	uint8_t *out;
	size_t out_len, out_cap;
	bool rd_paused; /* EPOLLIN off: PASTE_K_RCVBUF bytes pending */
	bool wr_armed;  /* EPOLLOUT on: @out did not drain */
	bool starved;   /* reading paused: no free frame to recv() into */
};

struct paste_ctx {
	struct paste_opts opts;
	char ifname[IF_NAMESIZE];
	int ifindex;
	uint8_t mac[6];
	uint32_t ip; /* network order */
	uint32_t netmask;
	uint32_t mtu;
	struct paste_pool *pool;
	uint8_t *area; /* frame area (the UMEM) */
	uint32_t frame_size;
	uint32_t frame_count;
	struct paste_frames *frames; /* the pool's allocator */
	struct paste_rxbuf *rxbufs;
	struct paste_steer *steer;
	struct paste_xsk xsk;
	struct netif netif;
	bool netif_added;
	struct paste_neigh neigh[PASTE_NEIGH_SLOTS];
	struct paste_listener *listeners[16];
	unsigned nlisteners;
	struct paste_conn *conns; /* all live connections */
	struct paste_conn *ready, *dirty, *dead;
	uint32_t nconns;
	volatile int stop;
	bool kernel;  /* PASTE_TRANSPORT_KERNEL: epoll sockets instead of XDP/lwIP */
	bool starved; /* kernel: a connection paused reading for lack of free frames */
	int epfd;
	bool fence_needed; /* something was flushed this round */
	int (*round_hook)(struct paste_ctx *ctx, void *arg);
	void *round_arg;
	bool pack_open; /* copy_threshold: pack_frame takes small payloads at pack_off */
	uint32_t pack_frame, pack_off;
	struct paste_stats st; /* counters kept here; frame counts filled on demand */
};

/* xsk.c */
int paste_xsk__open(struct paste_ctx *ctx);
void paste_xsk__close(struct paste_ctx *ctx);
/* Take up to @max received frames and hand them to the netif. @return frames taken. */
unsigned paste_xsk__rx(struct paste_ctx *ctx, unsigned max);
/* Give free frames to the fill ring (keeping PASTE_TX_RESERVE for TX); wake the kernel if asked. */
void paste_xsk__refill(struct paste_ctx *ctx);
/* Reclaim completed TX frames. */
void paste_xsk__complete(struct paste_ctx *ctx);
/* Send one frame: copy @p into a TX frame. @return 0, -ENOBUFS (no frame / ring full). */
int paste_xsk__tx(struct paste_ctx *ctx, const struct pbuf *p);
/* Kick the kernel to transmit what was submitted. */
void paste_xsk__kick(struct paste_ctx *ctx);
/* Wait up to @timeout_ms for RX (poll()); @return >0 readable, 0 timeout, -errno. */
int paste_xsk__wait(struct paste_ctx *ctx, int timeout_ms);
/* Kernel-side counters (XDP_STATISTICS) into ctx->st. */
void paste_xsk__kstats(struct paste_ctx *ctx, struct paste_stats *st);

/* netif.c */
int paste_netif__open(struct paste_ctx *ctx);
void paste_netif__close(struct paste_ctx *ctx);
/* Feed one received frame (frame @idx, @len bytes at @data) into lwIP. Consumes the frame. */
void paste_netif__input(struct paste_ctx *ctx, uint32_t idx, uint8_t *data, uint32_t len);
/* Wrap frame @idx (state RX) holding @len bytes at @data as a custom pbuf. */
struct pbuf *paste_netif__wrap(struct paste_ctx *ctx, uint32_t idx, uint8_t *data, uint32_t len);
/* Interface facts (MAC, MTU, first IPv4 address/netmask) for @ifname. */
int paste_netif__query(struct paste_ctx *ctx);

/* conn.c */
int paste_conn__listen_pcb(struct paste_listener *l);
void paste_conn__mark_ready(struct paste_conn *c);
void paste_conn__mark_dirty(struct paste_conn *c);
void paste_conn__mark_dead(struct paste_conn *c, int err);
int paste_conn__q_append(struct paste_conn *c, struct pbuf *p);
void paste_conn__q_free_all(struct paste_conn *c);
void paste_conn__link(struct paste_ctx *ctx, struct paste_conn *c);
void paste_conn__unlink_free(struct paste_ctx *ctx, struct paste_conn *c);

/* ktransport.c: the same connections over kernel sockets */
int paste_k__open(struct paste_ctx *ctx);
void paste_k__close(struct paste_ctx *ctx);
int paste_k__listen(struct paste_listener *l);
/* Wait up to @ms for events and handle them (accept, recv into frames, writable). */
int paste_k__poll(struct paste_ctx *ctx, int ms);
ssize_t paste_k__send(struct paste_conn *c, const void *buf, size_t len);
void paste_k__flush(struct paste_conn *c);
void paste_k__consumed(struct paste_conn *c);
void paste_k__abort(struct paste_conn *c);
/* Resume connections paused for lack of frames once some are free again. */
void paste_k__unstarve(struct paste_ctx *ctx);
/* After the RX batch: run on_data for ready connections. */
void paste_conns__run_ready(struct paste_ctx *ctx);
/* tcp_output every connection that queued data this round. */
void paste_conns__flush(struct paste_ctx *ctx);
/* on_close + free for connections that ended this round. */
void paste_conns__reap(struct paste_ctx *ctx);
/* Abort every connection (paste_shutdown), and also close the listeners (paste_close). */
void paste_conns__shutdown_conns(struct paste_ctx *ctx);
void paste_conns__shutdown(struct paste_ctx *ctx);

#endif /* PASTE_CTX_H */
