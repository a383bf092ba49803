/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste/paste.h - libpaste-xdp: a TCP server whose received bytes stay where the NIC wrote them.
 *
 * An XDP program steers the server's TCP flows to an AF_XDP socket whose UMEM is the frame area of
 * a persistent pool file (paste/pool.h). lwIP runs TCP in the caller's thread and hands in-order
 * payload to the application as slots that point into the pool: no copy between the network and
 * the pool.
 *
 * A minimal server (an echo, see src/apps/paste-echo.c for the full one):
 *
 *	static void on_data(struct paste_conn *c, void *user)
 *	{
 *		unsigned n;
 *		const struct paste_slot *s = paste_conn__slots(c, &n);
 *		for (unsigned i = 0; i < n; i++) {
 *			ssize_t w = paste_conn__send(c, s[i].data, s[i].len);
 *			if (w <= 0)
 *				break;
 *			paste_conn__consume(c, w);	// the rest is offered again later
 *			if ((size_t)w < s[i].len)
 *				break;
 *		}
 *		if (paste_conn__eof(c) && paste_conn__pending(c) == 0)
 *			paste_conn__close(c);
 *	}
 *
 *	struct paste_opts o = { .sz = sizeof(o), .ifname = "veth1", .ip = "10.0.0.2" };
 *	struct paste_ctx *ctx;
 *	struct paste_conn_ops ops = { .sz = sizeof(ops), .on_data = on_data };
 *	if (paste_open(&ctx, &o) || paste_listen(ctx, 7, &ops, NULL))
 *		exit(1);
 *	paste_run(ctx);		// until paste_stop(ctx), e.g. from a signal handler
 *	paste_close(&ctx);
 *
 * Naming: functions on the context are paste_<verb>(); on other objects paste_<object>__<verb>().
 * Errors: int functions return 0 (or a count) on success and a negative errno on failure, and every
 * failure leaves a human-readable message through the print callback (paste_set_print()) that says
 * what failed and what to do. Pointer getters never fail on valid handles.
 *
 * Threads: a context and everything reached from it belong to the thread that opened it. lwIP keeps
 * global state, so a process runs one context; scale out with one process per NIC queue: processes
 * on different queues of one interface share one XDP program (the first attaches it, the others
 * join it, the last to close detaches it; docs/multicore.md).
 */
#ifndef PASTE_PASTE_H
#define PASTE_PASTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>

#include <paste/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- messages ---------------------------------------------------------------------------- */

enum paste_log_level {
	PASTE_LOG_ERROR = 0,
	PASTE_LOG_WARN,
	PASTE_LOG_INFO,
	PASTE_LOG_DEBUG,
};

/** Receives every message the library prints; @msg has no trailing newline. */
typedef void (*paste_print_fn)(enum paste_log_level level, const char *msg, void *user);

/**
 * Route messages to @fn (NULL: the default, which writes ERROR/WARN/INFO to stderr) and set the
 * most verbose level delivered. Process-wide.
 */
void paste_set_print(paste_print_fn fn, void *user, enum paste_log_level max_level);

/** The last ERROR message printed by this thread ("" if none). */
const char *paste_last_error(void);

/* ---- context ----------------------------------------------------------------------------- */

struct paste_ctx;
struct paste_conn;

/** How the XDP program is attached. */
enum paste_xdp_mode {
	PASTE_XDP_AUTO = 0, /**< native (driver) mode, falling back to SKB (generic) mode */
	PASTE_XDP_NATIVE,
	PASTE_XDP_SKB,
};

/**
 * Whether the AF_XDP socket is bound in zero-copy mode (the NIC writes frames straight into the
 * pool) or copy mode (the kernel copies each frame into the pool; veth has only this mode).
 */
enum paste_zero_copy {
	PASTE_ZC_AUTO = 0, /**< try zero copy, fall back to copy mode if the driver refuses */
	PASTE_ZC_REQUIRED, /**< zero copy or paste_open() fails (-EOPNOTSUPP, or the bind errno) */
	PASTE_ZC_OFF,      /**< copy mode only */
};

/**
 * The network path under the same API. PASTE: XDP + AF_XDP + lwIP, payload lands in pool frames
 * with no copy. KERNEL: ordinary kernel TCP sockets (epoll), bound to @ip (or all addresses) in the
 * current network namespace; each recv() goes straight into a pool frame, so the application sees
 * the same slots and the same persist/keep/fence rules: the copy-to-NVMM path users have today, for
 * side-by-side comparison. ifname and the XDP options are ignored on the kernel transport.
 * IO_URING: the same kernel TCP driven by one io_uring (Linux 6.1+): multishot accept, multishot
 * recv into a provided-buffer ring whose buffers are pool frames (the kernel's one copy lands in
 * the pool), sends submitted with the next wait; ifname and the XDP options are ignored too.
 */
enum paste_transport {
	PASTE_TRANSPORT_PASTE = 0,
	PASTE_TRANSPORT_KERNEL,
	PASTE_TRANSPORT_IO_URING, /**< kernel TCP through io_uring: multishot recv into pool frames
	                           */
};

/**
 * Options for paste_open(). Zero means "default" for every field.
 *
 * Address modes:
 *  - dedicated IP (default): @ip is an address the kernel does not have on @ifname; the XDP program
 *    steers all IPv4 to it and ARP for it to the stack, and lwIP answers ARP and ping itself.
 *  - shared IP (@shared_ip): the stack uses @ifname's own address (@ip may be NULL to take the
 * first IPv4 address of the interface); only TCP to the listening ports and to the stack's
 * ephemeral port range is steered. ARP, ICMP and every other port stay with the kernel.
 */
struct paste_opts {
	size_t sz;          /**< sizeof(struct paste_opts) */
	const char *ifname; /**< required: the interface to attach to */
	uint32_t queue;     /**< NIC RX queue to bind (default 0) */
	const char *ip;     /**< IPv4 address (dotted quad) the stack answers on */
	uint8_t prefix_len; /**< dedicated IP: subnet prefix length (default 24) */
	bool shared_ip;     /**< see above */
	enum paste_xdp_mode xdp_mode;
	const char *pool_path; /**< default PASTE_POOL_DEFAULT_PATH; created if absent */
	uint64_t pool_size;    /**< size when creating (default PASTE_POOL_DEFAULT_SIZE) */
	uint32_t frame_size;   /**< 2048 (default) or 4096, when creating */
	bool busy_poll;        /**< spin instead of sleeping in poll(); SO_PREFER_BUSY_POLL */
	uint32_t batch_size;   /**< RX descriptors taken per round (default 64) */
	uint32_t ring_size;    /**< AF_XDP ring entries, power of two (default 4096) */
	uint32_t max_conns;    /**< connections accepted at once (default 4096) */
	uint16_t ephemeral_lo; /**< shared IP: the stack's own port range (default 49152-65535) */
	uint16_t ephemeral_hi;
	bool force_copy; /**< same as zero_copy = PASTE_ZC_OFF (kept for older callers) */
	enum paste_transport
	    transport;   /**< PASTE_TRANSPORT_PASTE (default), _KERNEL or _IO_URING */
	bool no_persist; /**< flushes and fences become no-ops: only to measure what persistence
	                      costs (nothing is durable, recovery after a crash may drop data) */
	uint32_t fence_delay_ns; /**< emulated media write latency added to every fence (0: none) */
	uint32_t copy_threshold; /**< paste_keep() of fewer bytes copies them into a packing frame
	                              instead of pinning the frame they arrived in (0: never) */
	enum paste_zero_copy zero_copy; /**< PASTE_ZC_AUTO (default), _REQUIRED or _OFF */
	bool reuse_port;  /**< kernel transport: SO_REUSEPORT on listening sockets, so N worker
	                       processes share a port (the kernel spreads connections over them) */
	bool pool_sliced; /**< use slice @pool_slice of @pool_path (paste_pool_opts.sliced): one
	                       pool file shared by worker processes, one slice each */
	uint32_t pool_slice;
	uint32_t syn_backlog; /**< paste transport: half-open (SYN_RCVD) connections lwIP may hold
	                           (default 1024, at least 16); a SYN to a listener past it first
	                           drops the older half of them (paste_stats.syn_evicted) */
};

/**
 * Open a context: open or create the pool, attach the XDP program to @opts->ifname (replacing a
 * stale one of ours left by a killed process), or join the one another running process of ours
 * attached for another queue of the interface (same address and IP mode), create the AF_XDP socket
 * over the pool's frame area, and bring up lwIP on it.
 * @return 0; -EINVAL (bad option), -ENODEV (no such interface), -EBUSY (another XDP program that is
 * not ours is attached, or ours serving another address; or the queue already has a socket),
 * -EFAULT (the pool's memory cannot be a UMEM), -EOPNOTSUPP (zero copy required but the driver has
 * no zero-copy AF_XDP; other refusals of the zero-copy bind keep their errno), -EPERM (needs root /
 * CAP_NET_ADMIN+CAP_BPF), pool errors (see paste_pool__open()), or another negative errno.
 */
int paste_open(struct paste_ctx **ctx, const struct paste_opts *opts);

/**
 * Quiesce: abort every connection and drop every packet the TCP/IP stack still holds (half-open
 * connections, IP fragments awaiting reassembly, packets queued for ARP), so that afterwards
 * paste_stats() shows frames_rx == 0 unless the application itself holds frames. The context stays
 * open (listeners included). paste_close() does this first. @return 0.
 */
int paste_shutdown(struct paste_ctx *ctx);

/** Abort every connection, detach the XDP program, close the socket and pool; *ctx = NULL. */
void paste_close(struct paste_ctx **ctx);

/**
 * One round of the event loop: wait up to @timeout_ms for traffic (0: do not wait, -1: wait until
 * something happens; the wait is also bounded by lwIP's next timer), then take up to batch_size
 * received frames, run TCP and the application callbacks, send what they queued, and refill.
 * @return the number of frames received (>= 0), -EINTR when interrupted by a signal, or -errno.
 */
int paste_poll(struct paste_ctx *ctx, int timeout_ms);

/** paste_poll() until paste_stop(). @return 0 after a stop, or the error that ended the loop. */
int paste_run(struct paste_ctx *ctx);

/** Make paste_run() return after its current round. Async-signal-safe. */
void paste_stop(struct paste_ctx *ctx);

/**
 * Call @fn once per round at the fence point: after the round's fence, before anything the
 * callbacks queued is sent (e.g. to fdatasync a file the callbacks appended to). A negative return
 * means the round is not durable: the library resets every connection that queued output (a reply
 * or a close) this round, so no acknowledgement of it leaves, and warns; their on_close runs with
 * -ECONNABORTED. NULL removes the hook. @return 0.
 */
int paste_set_round_hook(struct paste_ctx *ctx, int (*fn)(struct paste_ctx *ctx, void *arg),
                         void *arg);

/**
 * Call @fn once per round after the connections' callbacks and before the round's fence: for work
 * the application does in the round outside a connection's callbacks (e.g. requests another
 * process handed over through shared memory). It may do what a callback does (send on any
 * connection, flush pool bytes): the round's fence covers what it flushed and what it queued
 * leaves in this round, after that fence. NULL removes the hook. @return 0.
 */
int paste_set_work_hook(struct paste_ctx *ctx, void (*fn)(struct paste_ctx *ctx, void *arg),
                        void *arg);

/**
 * Also wait for @fd in paste_poll(): a poll that would wait for input returns (a round with no
 * input) as soon as @fd is readable, and the library then reads 8 bytes from it to reset it. For
 * an eventfd (EFD_NONBLOCK) that another process or thread writes to wake this context, e.g. when
 * it handed work over through shared memory (paste_set_work_hook). The fd is level-triggered: a
 * write that comes before the poll starts is not lost, the poll returns at once. Set once, after
 * paste_open(); the application owns @fd and closes it after paste_close(). @return 0, -EINVAL (@fd
 * < 0), -EBUSY (already set), or -errno with paste_last_error() set (the transport could not add
 * it to its wait set).
 */
int paste_set_wake_fd(struct paste_ctx *ctx, int fd);

/** The context's pool (for persistent indexes and offline tools). */
struct paste_pool *paste_pool(struct paste_ctx *ctx);

/* ---- connections ------------------------------------------------------------------------- */

/**
 * One piece of a connection's in-order received payload. The bytes lie inside the pool's frame
 * area:
 * @data == frame base + @offset, and the frame is frame number @frame of the pool.
 */
struct paste_slot {
	uint8_t *data;   /**< first byte (inside the pool) */
	uint32_t frame;  /**< frame index in the pool's frame area ("buffer") */
	uint32_t offset; /**< byte offset of @data inside that frame */
	uint32_t len;    /**< bytes */
};

/**
 * Callbacks for a listening port. All run in paste_poll()'s thread; any may be NULL.
 * on_accept returns 0 to accept, or a negative errno to refuse (the connection is reset).
 * on_data runs once per round for every connection with new data or a new end-of-stream; payload
 * that is not consumed stays and is offered again, with whatever arrives later appended.
 * on_close runs once when the connection is gone: @err is 0 after a graceful close, -ECONNRESET
 * when the peer reset it, -ECONNABORTED when it was aborted locally. The handle is invalid after
 * it.
 */
struct paste_conn_ops {
	size_t sz; /**< sizeof(struct paste_conn_ops) */
	int (*on_accept)(struct paste_conn *conn, void *user);
	void (*on_data)(struct paste_conn *conn, void *user);
	void (*on_close)(struct paste_conn *conn, int err, void *user);
	/**
	 * Outgoing connections (paste_connect()) only: runs once when the connect ends. @err 0:
	 * connected, send and receive from now on (on_data/on_close as for accepted connections).
	 * @err < 0: the connect failed (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -ENETUNREACH,
	 * -ECONNABORTED if aborted, or another errno; paste_last_error() says which peer and why);
	 * the handle is invalid after this call and on_close does not run.
	 */
	void (*on_connect)(struct paste_conn *conn, int err, void *user);
};

/**
 * Listen on TCP @port of the stack's address. @user is passed to every callback.
 * @return 0; -EADDRINUSE, -EINVAL (port 0 or ops NULL), -ENOSPC (too many listeners), -ENOMEM.
 */
int paste_listen(struct paste_ctx *ctx, uint16_t port, const struct paste_conn_ops *ops,
                 void *user);

/**
 * Open a TCP connection from the stack to @addr:@port (active open), on every transport: the
 * paste transport connects from lwIP (dedicated IP: lwIP resolves the peer by ARP; shared IP: the
 * local port is taken from the ephemeral range paste_opts.ephemeral_lo..hi that the XDP program
 * steers to the stack, and the next hop from the kernel's neighbour table, which a UDP probe fills
 * if the peer is unknown), the kernel and io_uring transports with a kernel socket bound to the
 * context's address (if it has one). The result arrives in @ops->on_connect (required) from
 * paste_poll(): 0, or a negative errno after which the handle is gone. A connect still pending
 * after @timeout_ms (<= 0: 10 s) fails with -ETIMEDOUT. paste_conn__send() refuses (-ENOTCONN)
 * until on_connect(0) ran. @user is passed to every callback; *@conn (may be NULL) gets the handle.
 * @return 0 (connect under way), -EINVAL (no address, port 0, no on_connect), -EOPNOTSUPP, -ENOMEM,
 * or the errno of a connect that failed at once (e.g. -ENETUNREACH), with paste_last_error set.
 */
int paste_connect(struct paste_ctx *ctx, const struct in_addr *addr, uint16_t port, int timeout_ms,
                  const struct paste_conn_ops *ops, void *user, struct paste_conn **conn);

/** The connection's pending in-order payload, as *n slots (valid until the callback returns). */
const struct paste_slot *paste_conn__slots(struct paste_conn *conn, unsigned *n);

/** Bytes of pending (unconsumed) payload. */
size_t paste_conn__pending(const struct paste_conn *conn);

/** True once the peer has finished sending (FIN received) - after the pending bytes, no more. */
bool paste_conn__eof(const struct paste_conn *conn);

/**
 * Mark the first @n pending bytes as consumed: their frames go back to the pool when no longer
 * referenced, and the TCP window reopens. @return 0, or -EINVAL if @n > pending.
 */
int paste_conn__consume(struct paste_conn *conn, size_t n);

/**
 * Queue up to @len bytes for sending (copied into the TCP send buffer). They leave at the end of
 * the round. @return bytes queued (may be less than @len, or 0 when the send buffer is full: the
 * connection's on_data runs again when space frees up), -ENOTCONN after close, -ENOMEM.
 */
ssize_t paste_conn__send(struct paste_conn *conn, const void *buf, size_t len);

/** Free space in the send buffer, in bytes. */
size_t paste_conn__sendbuf(const struct paste_conn *conn);

/**
 * Graceful close: queued data is still sent, then FIN. Pending payload is dropped. on_close(0) runs
 * at the end of the round. @return 0 or -ENOTCONN if already closing.
 */
int paste_conn__close(struct paste_conn *conn);

/** Reset the connection (RST). on_close(-ECONNABORTED) runs at the end of the round. */
void paste_conn__abort(struct paste_conn *conn);

/** Application pointer attached to the connection (NULL until set). */
void paste_conn__set_user(struct paste_conn *conn, void *user);
void *paste_conn__user(const struct paste_conn *conn);

/** Peer address and port (host byte order port). */
void paste_conn__peer(const struct paste_conn *conn, struct in_addr *addr, uint16_t *port);

/* ---- durable payload: persist, keep, release (the Pring/Pbuf API) ---------------------- */

/*
 * The data path of a durable server: in on_data, for the bytes of a request it wants to keep,
 *
 *	struct paste_ref refs[8];
 *	unsigned nrefs;
 *	paste_conn__keep(c, 0, body_len, true, refs, 8, &nrefs);  // flush + keep, no copy
 *	paste_log__append(log, refs, nrefs, &seq);                // record, flushed
 *	paste_conn__consume(c, body_len);
 *	paste_conn__send(c, reply, reply_len);                    // leaves after the fence
 *
 * At the end of the round paste_poll() issues ONE fence (paste_pool__drain) for everything flushed
 * in the round, and only then sends what the callbacks queued. So a reply never acknowledges bytes
 * that are not yet durable, and a round of many requests costs one fence (group commit).
 * References are pool offsets (struct paste_ref in paste/index.h): valid across restarts.
 */

#include <paste/index.h>

/**
 * Write back the cache lines of [addr, addr+len) (inside the pool) without a fence; the round's
 * fence makes them durable. @return 0 or -EINVAL (not inside the pool).
 */
int paste_persist(struct paste_ctx *ctx, const void *addr, size_t len);

/**
 * Keep [addr, addr+len): it must lie inside one received frame still held (a slot the application
 * has not consumed) or one already kept. The frame is not recycled until every reference to it is
 * released (several ranges of one frame are reference counted). With copy_threshold set and len
 * below it, the bytes are copied (and flushed) into a packing frame instead.
 * @return 0 with *ref set; -EINVAL (not a held frame range), -ENOSPC (no frame for packing).
 */
int paste_keep(struct paste_ctx *ctx, const void *addr, size_t len, struct paste_ref *ref);

/**
 * Copy policy under pool pressure: while fewer than @free_below frames are free (in the allocator:
 * not on the fill ring, not received, not kept), paste_keep() of fewer than @threshold bytes copies
 * them into a packing frame, as copy_threshold does always, instead of pinning the frame they
 * arrived in (only bytes of a frame still received: a range of stored data, e.g. a reply pinning a
 * stored value, stays where it is: its frame is pinned already). A pool whose frames each hold a
 * few live bytes (small values received one per segment) then keeps taking writes until its live
 * data, packed, fills it. While more frames are free, paste_keep() stays zero-copy. @free_below 0
 * turns it off (the default); @threshold 0 means half the frame size (a shorter range pins a frame
 * at most half used). Ranges copied this way are counted in paste_stats'
 * kept_pressure_copied_bytes.
 * @return 0 or -EINVAL (NULL context, @threshold above the frame size).
 */
int paste_set_copy_pressure(struct paste_ctx *ctx, uint32_t free_below, uint32_t threshold);

/**
 * Copy @len bytes from anywhere (e.g. a value that arrived split over two segments) into a packing
 * frame, flush them, and keep them: the one copy for data that cannot stay where it arrived.
 * @len must be at most the frame size. @return 0 with *ref set; -EINVAL (len 0 or too large),
 * -ENOSPC (no free frame).
 */
int paste_keep_copy(struct paste_ctx *ctx, const void *src, size_t len, struct paste_ref *ref);

/**
 * Keep bytes [off, off+len) of the connection's pending payload, which may span several slots:
 * one reference per slot piece is written to @refs (at most @max; *n gets the count). With
 * @persist, the bytes are also flushed. Does not consume.
 * @return 0; -EINVAL (range beyond pending), -E2BIG (more than @max pieces; nothing kept).
 */
int paste_conn__keep(struct paste_conn *conn, size_t off, size_t len, bool persist,
                     struct paste_ref *refs, unsigned max, unsigned *n);

/**
 * Give a reference back (its frame is recycled when no reference is left).
 * @return 0, or -EINVAL for a reference the pool does not hold (unknown, or released twice).
 */
int paste_release(struct paste_ctx *ctx, const struct paste_ref *ref);

/* ---- statistics -------------------------------------------------------------------------- */

/**
 * Counters. Frames are always in exactly one place:
 * frames_total == frames_free + frames_fill + frames_rx + frames_tx + frames_kept.
 */
struct paste_stats {
	uint64_t rx_packets; /**< frames taken from the RX ring */
	uint64_t rx_bytes;
	uint64_t tx_packets; /**< frames put on the TX ring */
	uint64_t tx_bytes;
	uint64_t rx_dropped; /**< kernel: dropped for lack of fill/RX ring space (XDP_STATISTICS) */
	uint64_t rx_invalid; /**< kernel + stack: invalid descriptors or malformed frames */
	uint64_t tx_dropped; /**< frames not sent: no free frame, ring full, or no next hop */
	uint64_t rx_payload_bytes; /**< payload bytes handed to applications */
	uint64_t rx_copied_bytes;  /**< of which copied into the pool (0 on the zero-copy path) */
	uint64_t steered;          /**< XDP program: frames redirected to the socket */
	uint64_t passed;           /**< XDP program: frames left to the kernel */
	uint64_t rounds;           /**< paste_poll() rounds that did work */
	uint64_t conns_accepted;
	uint64_t conns_refused; /**< over max_conns or refused by on_accept */
	uint32_t conns_open;
	uint32_t frames_total;
	uint32_t frames_free;         /**< in the allocator */
	uint32_t frames_fill;         /**< given to the kernel on the fill ring */
	uint32_t frames_rx;           /**< received, held by the stack or the application */
	uint32_t frames_tx;           /**< on the TX or completion ring */
	uint32_t frames_kept;         /**< kept by the application (persistent references) */
	uint64_t fences;              /**< fences issued (at most one per round) */
	uint64_t persisted_bytes;     /**< bytes flushed by paste_persist()/paste_conn__keep() */
	uint64_t kept_bytes;          /**< bytes turned into references by paste_keep() */
	uint64_t kept_copied_bytes;   /**< of which copied into packing frames (copy_threshold) */
	bool zerocopy;                /**< the kernel says: zero-copy mode (XDP_OPTIONS) */
	enum paste_xdp_mode xdp_mode; /**< the mode the program is attached in */
	uint64_t tw_recycled;         /**< SYNs that ended a TIME-WAIT of the same 4-tuple */
	uint64_t kept_pressure_copied_bytes; /**< of kept_copied_bytes: copied because the pool was
	                                          short of free frames (paste_set_copy_pressure) */
	uint64_t syn_evicted; /**< half-open connections dropped to make room for new SYNs
	                           (paste_opts.syn_backlog; a SYN flood) */
	uint64_t fill_dry; /**< refills that found the fill ring drained: each deepened it for good
	                        (paste transport; docs/packet-path.md, "Fill ring depth") */
};

/** Fill @st (@sz = sizeof(*st)). @return 0 or -EINVAL. */
int paste_stats(struct paste_ctx *ctx, struct paste_stats *st, size_t sz);

#ifdef __cplusplus
}
#endif
#endif /* PASTE_PASTE_H */
