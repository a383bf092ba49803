/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ptransport.h - the paste transport's own state and its three files: xsk.c (the AF_XDP socket
 * over the pool's frames), netif.c (lwIP's network interface on those rings), ptransport.c (the
 * transport table of transport.h: lwIP's TCP callbacks, open/close, the round hooks). Only these
 * files include lwIP or libxdp.
 */
#ifndef PASTE_PTRANSPORT_H
#define PASTE_PTRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <lwip/netif.h>
#include <lwip/pbuf.h>
#include <xdp/xsk.h>

#include "ctx.h"
#include "steer.h"

/* Frames kept free for TX: the fill ring is topped up only above this many free frames. */
#ifndef PASTE_TX_RESERVE
#define PASTE_TX_RESERVE 256u
#endif

/* Entries of the learned next-hop table (shared-IP mode), a power of two. */
#ifndef PASTE_NEIGH_SLOTS
#define PASTE_NEIGH_SLOTS 256u
#endif

/* An RX frame as lwIP sees it: the pbuf_custom wraps the frame in place (PBUF_REF, no copy). One
 * per frame of the pool, allocated once; its index in rxbufs is the frame index. @detached: a
 * connection took over the frame's RX hold (ptransport.c), so freeing the pbuf releases nothing. */
struct paste_rxbuf {
	struct pbuf_custom pc;
	struct paste_ctx *ctx;
	bool detached;
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

/* ctx->tp_state of the paste transport. */
struct paste_ptp {
	int ifindex;
	uint8_t mac[6];
	uint32_t mtu;
	struct paste_rxbuf *rxbufs;
	struct paste_steer *steer;
	struct paste_xsk xsk;
	struct netif netif;
	bool netif_added;
	struct paste_neigh neigh[PASTE_NEIGH_SLOTS];
};

static inline struct paste_ptp *paste_ptp(const struct paste_ctx *ctx)
{
	return (struct paste_ptp *)ctx->tp_state;
}

/* xsk.c */
int paste_xsk__open(struct paste_ctx *ctx);
void paste_xsk__close(struct paste_ctx *ctx);
/* A received frame: @len bytes at @data, in pool frame @frame (now state RX, owned by the caller).
 */
struct paste_xsk_desc {
	uint32_t frame;
	uint32_t len;
	uint8_t *data;
};
/* Take up to @max received frames off the RX ring into @out; the caller decides where they go (the
 * transport feeds them to the netif). @return entries filled. */
unsigned paste_xsk__rx_burst(struct paste_ctx *ctx, struct paste_xsk_desc *out, unsigned max);
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
/* Kernel-side counters (XDP_STATISTICS) into @st. */
void paste_xsk__kstats(struct paste_ctx *ctx, struct paste_stats *st);

/* netif.c */
int paste_netif__open(struct paste_ctx *ctx);
void paste_netif__close(struct paste_ctx *ctx);
/* Feed one received frame (frame @idx, @len bytes at @data) into lwIP. Consumes the frame. */
void paste_netif__input(struct paste_ctx *ctx, uint32_t idx, uint8_t *data, uint32_t len);
/* Wrap frame @idx (state RX) holding @len bytes at @data as a custom pbuf. */
struct pbuf *paste_netif__wrap(struct paste_ctx *ctx, uint32_t idx, uint8_t *data, uint32_t len);
/* Shared IP: if the kernel does not know @ip's MAC yet (network order), make it resolve it (a UDP
 * probe to the discard port), so lwIP's SYN (retransmitted) finds the next hop. */
void paste_netif__neigh_probe(struct paste_ctx *ctx, uint32_t ip);
/* Interface facts (MAC, MTU, first IPv4 address/netmask) for ctx->ifname. */
int paste_netif__query(struct paste_ctx *ctx);

/* ptransport.c: listen on a pcb (the fuzz harness builds listeners without a socket). */
int paste_ptp__listen_pcb(struct paste_listener *l);

#endif /* PASTE_PTRANSPORT_H */
