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

struct paste_netif;

/* An RX frame as lwIP sees it: the pbuf_custom wraps the frame in place (PBUF_REF, no copy). One
 * per frame of the pool, allocated once; its index in rxbufs is the frame index. @detached: a
 * connection took over the frame's RX hold (ptransport.c), so freeing the pbuf releases nothing. */
struct paste_rxbuf {
	struct pbuf_custom pc;
	struct paste_netif *nif;
	bool detached;
};

/*
 * The AF_XDP socket object (xsk.c): its four rings over the pool's frame area. The owner sets the
 * fields of the first block before paste_xsk__open() (or, in a test, points the rings at plain
 * memory: tests/unit/test_xsk.c); nothing in it refers to the context, so one process can hold
 * one per queue.
 */
struct paste_xsk {
	struct paste_frames *frames; /* the pool's allocator: frames move FREE/FILL/RX/TX here */
	uint8_t *area;               /* the frame area (the UMEM) */
	uint32_t frame_size, frame_count;
	uint32_t ring_size;
	struct paste_stats *st; /* rx/tx packet and byte counters, rx_invalid */

	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	uint32_t tx_pending; /* descriptors submitted since the last kick */
	/* paste_xsk__refill() keeps at most this many frames on the fill ring (0: the whole ring),
	 * plus fill_dry: learned from refills that found the ring drained (paste_xsk__refill) */
	uint32_t fill_target, fill_dry;
	bool fill_primed; /* a refill ran with fill_target set: a drained ring means something */
	/* Where the next received frame should be (a prefetch hint, see paste_xsk__rx_burst): the
	 * fill-ring index of the frame the next RX descriptor carries, if the kernel takes fill
	 * frames in order, and the data offset (headroom) of the last descriptor. */
	uint32_t rx_fill_seq;
	uint32_t rx_off;
	bool zerocopy;
	int fd;
};

/* Where and how paste_xsk__open() binds. */
struct paste_xsk_cfg {
	const char *ifname;
	uint32_t queue;
	enum paste_zero_copy zero_copy;
	bool busy_poll;
	uint32_t batch_size;   /* busy-poll budget */
	const char *pool_path; /* named in the message when the pool cannot be a UMEM */
};

struct paste_neigh {
	uint32_t ip; /* network order; 0 = empty */
	uint8_t mac[6];
};

/*
 * lwIP's network interface object (netif.c) over one paste_xsk. The owner sets the first block
 * before paste_netif__query()/paste_netif__open(). lwIP keeps its TCP state (pcb lists, timers,
 * memory pools) in process globals, so only one of these may be open per process: a process
 * serves one NIC queue on this transport (daemon_workers.c runs one per queue); the xsk object
 * below it has no such limit.
 */
struct paste_netif {
	struct paste_xsk *xsk; /* TX goes out here */
	struct paste_frames *frames;
	struct paste_stats *st; /* rx_invalid, tx_dropped, tw_recycled, syn_evicted */
	char ifname[IF_NAMESIZE];
	bool shared_ip;       /* the kernel owns the address: never ARP (netif.c) */
	bool query_addr;      /* paste_netif__query() reads ip/netmask from the interface */
	uint32_t ip, netmask; /* network order */
	uint32_t frame_size, frame_count;

	uint8_t mac[6];
	uint32_t mtu;
	struct paste_rxbuf *rxbufs; /* frame_count entries, from paste_netif__query() */
	struct netif netif;
	bool added;
	struct paste_neigh neigh[PASTE_NEIGH_SLOTS];
	uint32_t syn_backlog; /* half-open pcbs lwIP may hold (paste_opts.syn_backlog) */
	uint32_t syn_room;    /* SYNs to listeners still admitted before the next count */
};

/* ctx->tp_state of the paste transport: the three objects it wires. */
struct paste_ptp {
	int ifindex;
	struct paste_steer *steer;
	struct paste_xsk xsk;
	struct paste_netif nif;
};

static inline struct paste_ptp *paste_ptp(const struct paste_ctx *ctx)
{
	return (struct paste_ptp *)ctx->tp_state;
}

/* xsk.c */
/* Create the UMEM over x->area and bind to @cfg's queue; fills the fill ring. */
int paste_xsk__open(struct paste_xsk *x, const struct paste_xsk_cfg *cfg);
void paste_xsk__close(struct paste_xsk *x);
/* A received frame: @len bytes at @data, in pool frame @frame (now state RX, owned by the caller).
 */
struct paste_xsk_desc {
	uint32_t frame;
	uint32_t len;
	uint8_t *data;
};
/* Take up to @max received frames off the RX ring into @out; the caller decides where they go (the
 * transport feeds them to the netif). @return entries filled. */
unsigned paste_xsk__rx_burst(struct paste_xsk *x, struct paste_xsk_desc *out, unsigned max);
/* Give free frames to the fill ring, up to x->fill_target + x->fill_dry of them (keeping
 * PASTE_TX_RESERVE for TX); wake the kernel if asked. */
void paste_xsk__refill(struct paste_xsk *x);
/* Ready the frames the kernel is expected to fill next (rx_fill_seq) for its copy: the next
 * one's lines are moved to the shared cache (cldemote), the one after is fetched for writing. */
void paste_xsk__warm(struct paste_xsk *x);
/* Reclaim completed TX frames. */
void paste_xsk__complete(struct paste_xsk *x);
/* Send one frame: copy @len bytes gathered by @copy(@arg, dst) into a TX frame.
 * @return 0, -EMSGSIZE (larger than a frame), -ENOBUFS (no frame / ring full). */
int paste_xsk__tx(struct paste_xsk *x, uint32_t len, void (*copy)(const void *arg, uint8_t *dst),
                  const void *arg);
/* Kick the kernel to transmit what was submitted. */
void paste_xsk__kick(struct paste_xsk *x);
/* Wait up to @timeout_ms for RX on the socket or for @wake_fd (-1: none) to be readable (poll()).
 * @return 2 if @wake_fd was readable (the caller drains it), 1 if only the socket was, 0 on
 * timeout, or -errno. */
int paste_xsk__wait(struct paste_xsk *x, int wake_fd, int timeout_ms);
/* Kernel-side counters (XDP_STATISTICS) into @st. */
void paste_xsk__kstats(struct paste_xsk *x, struct paste_stats *st);

/* netif.c */
/* Interface facts (MAC, MTU, the IPv4 address/netmask when nif->query_addr) for nif->ifname, and
 * the per-frame pbuf descriptors. */
int paste_netif__query(struct paste_netif *nif);
/* Add the lwIP netif (one per process, see struct paste_netif). */
int paste_netif__open(struct paste_netif *nif);
/* Remove the netif and free the descriptors (also after a failed query/open). */
void paste_netif__close(struct paste_netif *nif);
/* Feed one received frame (frame @idx, @len bytes at @data) into lwIP. Consumes the frame. */
void paste_netif__input(struct paste_netif *nif, uint32_t idx, uint8_t *data, uint32_t len);
/* Wrap frame @idx (state RX) holding @len bytes at @data as a custom pbuf. */
struct pbuf *paste_netif__wrap(struct paste_netif *nif, uint32_t idx, uint8_t *data, uint32_t len);
/* Shared IP: if the kernel does not know @ip's MAC yet (network order), make it resolve it (a UDP
 * probe to the discard port), so lwIP's SYN (retransmitted) finds the next hop. */
void paste_netif__neigh_probe(struct paste_netif *nif, uint32_t ip);

/* ptransport.c: listen on a pcb (the fuzz harness builds listeners without a socket). */
int paste_ptp__listen_pcb(struct paste_listener *l);

#endif /* PASTE_PTRANSPORT_H */
