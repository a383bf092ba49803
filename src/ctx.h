/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctx.h - the context and connection objects, shared by the event loop (ctx.c: open/close and
 * paste_poll()), the connections (conn.c: the received-piece FIFO and the slot view the
 * application reads), keep.c, and the transports behind transport.h (ptransport.c with xsk.c and
 * netif.c; ktransport.c). Nothing here names a transport: each keeps its own state behind
 * ctx->tp_state and after each connection and listener (paste_conn__tp()).
 *
 * One round of paste_poll() (the transport's hooks in transport.h):
 *   tp->poll: input -> pieces on connections -> application on_data for every ready connection
 *   -> the fence -> round hook -> tp->flush for every connection that queued data -> tp->tick
 *   -> reap closed connections -> tp->after_round (TX kick, completions, refill).
 */
#ifndef PASTE_CTX_H
#define PASTE_CTX_H

#include <stdbool.h>
#include <stdint.h>
#include <net/if.h>
#include <netinet/in.h>

#include "frames.h"
#include "internal.h"
#include "transport.h"

/* Frames kept free for TX: the fill ring is topped up only above this many free frames. */
#ifndef PASTE_TX_RESERVE
#define PASTE_TX_RESERVE 256u
#endif
/* Spare frames a pool must have beyond two rings of opts.ring_size (checked at paste_open). */
#ifndef PASTE_POOL_SPARE_FRAMES
#define PASTE_POOL_SPARE_FRAMES 256u
#endif

/* A piece of received payload: @len bytes at @off in pool frame @frame (state RX, held by the
 * connection until consumed). */
struct paste_piece {
	uint32_t frame, off, len;
};

struct paste_listener {
	struct paste_conn_ops ops;
	void *user;
	uint16_t port;
	struct paste_ctx *ctx;
	_Alignas(8) unsigned char tp[]; /* the transport's listener_size bytes */
};

/*
 * A TCP connection. Received payload is a FIFO of pieces, each still in its pool frame; @head_off
 * bytes of the first one are already consumed. The slot array mirrors the FIFO and is rebuilt when
 * the application asks for it after a change.
 */
struct paste_conn {
	struct paste_ctx *ctx;
	struct paste_listener *listener;
	void *user;
	struct paste_piece *q; /* circular FIFO of received pieces */
	uint32_t q_cap, q_head, q_len;
	uint32_t head_off; /* consumed bytes of q[q_head] */
	size_t pending;    /* unconsumed bytes in the FIFO */
	struct paste_slot *slots;
	uint32_t slots_cap;
	bool slots_valid;
	bool eof;        /* FIN received */
	bool ready;      /* on ctx->ready list */
	bool dirty;      /* queued TX data this round: the transport's flush at the end */
	bool want_write; /* a send came up short: call on_data again when space frees */
	bool want_close; /* graceful close requested: FIN at flush time */
	bool closed;     /* on ctx->dead list; on_close pending */
	bool outgoing;   /* paste_connect(): @listener is this connection's own, freed with it */
	bool connecting; /* paste_connect() under way: the transport calls paste_conn__connected */
	bool connect_cb; /* connected: on_connect(0) runs before the next on_data */
	bool connect_failed; /* dead before it connected: the reap runs on_connect(err) */
	uint64_t connect_deadline_ns;
	int close_err;
	struct paste_conn *next_ready, *next_dirty, *next_dead;
	struct paste_conn *prev, *next; /* all live connections */
	struct in_addr peer;
	uint16_t peer_port;
	_Alignas(8) unsigned char tp[]; /* the transport's conn_size bytes */
};

struct paste_ctx {
	struct paste_opts opts;
	char ifname[IF_NAMESIZE];
	uint32_t ip; /* network order; 0 = any (kernel transport without --ip) */
	uint32_t netmask;
	struct paste_pool *pool;
	uint8_t *area; /* frame area (the UMEM) */
	uint32_t frame_size;
	uint32_t frame_count;
	struct paste_frames *frames; /* the pool's allocator */
	const struct paste_transport_ops *tp;
	void *tp_state; /* the transport's, set by its init/open, freed by its close */
	bool tp_open;   /* open() succeeded: paste_close shuts connections down first */
	struct paste_listener *listeners[16];
	unsigned nlisteners;
	struct paste_conn *conns; /* all live connections */
	struct paste_conn *ready, *dirty, *dead;
	uint32_t nconns;
	uint32_t nconnecting; /* outgoing connections not yet connected (their timeouts) */
	volatile int stop;
	bool fence_needed; /* something was flushed this round */
	int (*round_hook)(struct paste_ctx *ctx, void *arg);
	void *round_arg;
	void (*work_hook)(struct paste_ctx *ctx, void *arg);
	void *work_arg;
	int wake_fd;    /* paste_set_wake_fd(), -1: none */
	bool pack_open; /* copy_threshold: pack_frame takes small payloads at pack_off */
	uint32_t pack_frame, pack_off;
	/* paste_set_copy_pressure(): while fewer than pressure_frames frames are FREE, paste_keep()
	 * of fewer than pressure_threshold bytes packs them too (0 frames: never) */
	uint32_t pressure_frames, pressure_threshold;
	struct paste_stats st; /* counters kept here; frame counts filled on demand */
};

/* spin.c: read the wake fd (paste_set_wake_fd) that a transport's wait found readable. */
void paste__drain_wake(struct paste_ctx *ctx);

/* conn.c */
void paste_conn__link(struct paste_ctx *ctx, struct paste_conn *c);
void paste_conn__unlink_free(struct paste_ctx *ctx, struct paste_conn *c);
/* After the RX batch: run on_data for ready connections. */
void paste_conns__run_ready(struct paste_ctx *ctx);
/* The transport's flush for every connection that queued data this round. */
void paste_conns__flush(struct paste_ctx *ctx);
/* Reset every connection that queued output this round (a failed round hook): nothing leaves. */
void paste_conns__abort_dirty(struct paste_ctx *ctx);
/* on_close + free for connections that ended this round. */
void paste_conns__reap(struct paste_ctx *ctx);
/* Abort every connection (paste_shutdown), and also close the listeners (paste_close). */
void paste_conns__shutdown_conns(struct paste_ctx *ctx);
void paste_conns__shutdown(struct paste_ctx *ctx);
/* Fail the outgoing connects past their deadline (-ETIMEDOUT). */
void paste_conns__connect_timers(struct paste_ctx *ctx);

#endif /* PASTE_CTX_H */
