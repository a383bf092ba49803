/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-logd.h - the pieces of paste-logd (src/apps/paste-logd*.c) and what they share:
 *
 *   paste-logd.c         command line, subcommands, signals, statistics
 *   paste-logd-log.c     the packet log: records naming pool frames, recovery, truncation
 *   paste-logd-fwd.c     the forwarder: two AF_XDP sockets on one UMEM (the pool's frame area), the
 *                        XDP program (bpf/logd.bpf.c), the batch loop (log, fence, then transmit)
 *   paste-logd-export.c  pcapng export and replay of logged packets
 *
 * paste-logd uses only the public pool API (paste/pool.h): the pool file, a named region for the
 * packet log, the frame area as UMEM, flush/drain and CRC32C. It keeps its own volatile frame
 * allocator, rebuilt from the packet log at start (a frame is pinned iff a live record names it).
 */
#ifndef PASTE_LOGD_H
#define PASTE_LOGD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <paste/pool.h>

/* ---- the packet log (paste-logd-log.c) ------------------------------------------------------ */

#define PLOG_REGION "logd.pktlog"

struct plog;

/* One logged packet. The bytes are [frame * frame_size + off, + len) of the frame area. */
struct plog_rec {
	uint64_t seq;
	uint64_t ts_ns;   /* CLOCK_REALTIME when the batch was received */
	uint32_t frame;   /* frame index in the pool's frame area */
	uint16_t off;     /* offset of the packet in its frame */
	uint16_t len;     /* packet bytes */
	uint32_t ifindex; /* ingress interface */
	uint32_t flags;   /* PLOG_F_* */
};
#define PLOG_F_MALFORMED 1u /* the XDP program found headers that do not fit the frame */

struct plog_info {
	uint64_t first_seq, next_seq; /* live records are [first_seq, next_seq) */
	uint64_t nslots;              /* capacity in records */
	uint32_t epoch;
	uint64_t recovered; /* live records found at open */
	bool cut;           /* recovery stopped at a record that did not check out */
	uint64_t cut_seq;   /* ... with this seq */
};

/*
 * Open the packet log of @pool (region PLOG_REGION), creating it for @nslots records (a power of
 * two
 * >= the pool's frame count is used) if @create and absent, and recover it: the live records are
 * the chain from the persistent head whose checksums (record and packet bytes) hold and whose
 * epochs do not go back. @writable: start a new epoch (persisted) so records of this run can never
 * chain into stale ones. @return 0, -ENOENT (no log and !create), -EBADMSG (not a packet log /
 * corrupt header), -EINVAL (geometry does not match the pool), -ENOSPC/-ENOMEM.
 */
int plog_open(struct paste_pool *pool, bool create, bool writable, struct plog **log);
void plog_close(struct plog **log);

/* Refuse (-EINVAL, message on stderr) a pool whose region area holds anything but a packet log:
 * paste-logd owns every frame of its pool, so it must never run on another program's pool. */
int plog_check_pool(struct paste_pool *pool, const char *path);
void plog_info(const struct plog *log, struct plog_info *info);

/* Append @r (its seq is assigned, returned in *seq): writes and flushes the record and the packet
 * bytes, no fence. @return 0, -ENOSPC (every slot holds a live record: truncate first), -EINVAL. */
int plog_append(struct plog *log, const struct plog_rec *r, uint64_t *seq);

/* Read record @seq. @return 0 with *r and *bytes set, or -ENOENT (not live). */
int plog_get(const struct plog *log, uint64_t seq, struct plog_rec *r, const uint8_t **bytes);

/* Drop the records before @seq: the head moves durably (flushed and fenced), then @release is
 * called for each dropped record's frame. @return the number of records dropped. */
uint64_t plog_truncate(struct plog *log, uint64_t seq, void (*release)(void *arg, uint32_t frame),
                       void *arg);

/* ---- the forwarder (paste-logd-fwd.c) -------------------------------------------------------- */

enum logd_malformed_policy {
	LOGD_MALFORMED_DROP = 0, /* dropped, counted, not logged */
	LOGD_MALFORMED_LOG,      /* logged (flagged), then dropped */
	LOGD_MALFORMED_FORWARD,  /* handled like any other frame (logged under --log all) */
};

struct logd_rule_spec {
	uint32_t addr, mask; /* network order */
	uint16_t port;
	uint8_t proto;
};

struct logd_opts {
	const char *in, *out, *pool_path;
	uint64_t pool_size;
	uint32_t ring_size, batch;
	int xdp_mode; /* 0 auto (native, then skb), 1 native, 2 skb */
	int sel_mode; /* enum logd_mode (bpf/logd.h) */
	unsigned nrules;
	struct logd_rule_spec rules[8];
	enum logd_malformed_policy malformed;
	bool busy_poll, verbose;
	bool
	    kernel_redirect; /* benchmark baseline: XDP_REDIRECT in the kernel, no AF_XDP, no log */
	unsigned stats_interval; /* seconds, 0 = only on SIGUSR1 and exit */
};

struct logd_stats {
	uint64_t rx[2], tx[2]; /* per side: frames received, frames put on the TX ring */
	uint64_t rx_bytes, tx_bytes;
	uint64_t inplace;      /* TX descriptors whose address is the RX descriptor's: no copy */
	uint64_t copied_bytes; /* bytes paste-logd copied to forward (the design makes none) */
	uint64_t completed;    /* TX completions (frame returned by the kernel) */
	uint64_t logged, unlogged; /* forwarded with / without a record */
	uint64_t fences;           /* paste_pool__drain() calls: one per batch that logged */
	uint64_t evicted;          /* oldest records dropped to free frames (capacity policy) */
	uint64_t malformed, malformed_logged, malformed_dropped;
	uint64_t no_meta;    /* frames without the XDP verdict (logged, safe side) */
	uint64_t log_errors; /* selected frames the log refused: dropped, never forwarded */
	uint64_t tx_full;    /* dropped: TX ring full */
	uint64_t invalid;    /* descriptors naming a frame the kernel did not own: ignored */
	uint32_t frames_free, frames_pinned, frames_kernel;
	uint64_t first_seq, next_seq;
	uint64_t bpf[8]; /* bpf/logd.h counters */
};

struct logd;
int logd_open(const struct logd_opts *o, struct logd **l);
/* Run until *stop becomes non-zero; calls @tick about every 100 ms. @return 0 or -errno. */
int logd_run(struct logd *l, volatile sig_atomic_t *stop, void (*tick)(struct logd *l, void *arg),
             void *arg);
void logd_get_stats(struct logd *l, struct logd_stats *st);
void logd_close(struct logd **l);

/* ---- export and replay (paste-logd-export.c) ------------------------------------------------- */

int logd_export(const char *pool_path, uint64_t from, uint64_t to, int fd);
int logd_replay(const char *pool_path, const char *ifname, uint64_t from, uint64_t to,
                uint64_t *sent);
/* Open @path (must exist) for offline reading and its packet log. @return 0 or -errno (message on
 * stderr). */
int logd_open_offline(const char *path, struct paste_pool **pool, struct plog **log);

#endif
