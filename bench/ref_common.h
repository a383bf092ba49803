/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ref_common.h - what the two reference WAL servers (bench/ref-epoll.c, bench/ref-uring.c) share:
 * options, the libpmem-mapped log file, the one drain per batch (with the emulated media latency
 * of the slow-media experiment), the HTTP request routing and the replies.
 *
 * The reference servers are the baseline of issue 15: small, independent servers of the kind a
 * user would write today without libpaste-xdp (kernel TCP sockets, a log in a libpmem mapping on
 * /dev/shm, group commit: one pmem_drain per event-loop batch, replies sent only after it). They
 * answer POST /log exactly as paste-wal does (201, X-Seq, Location, {"seq":N}), so paste-bench
 * checks their replies the same way. They use the project's HTTP head parser (src/apps/http.c)
 * and paste_crc32c(), the code paste-wal uses, so a comparison is about the network and
 * persistence path, not about parsing or checksum code.
 *
 * The log is a benchmark ring, not a product: when the data area is full, appending wraps to its
 * start and overwrites the oldest records (no index, no truncation, no recovery program). Every
 * record carries its sequence number (stored last) and a CRC32C of its body, so that one drain per
 * batch is enough for a reader to tell a whole record from a torn one after a crash.
 */
#ifndef PASTE_BENCH_REF_COMMON_H
#define PASTE_BENCH_REF_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define REF_MAX_BODY  8192u /* larger POST bodies get 413 (the io_uring server's piece limit) */
#define REF_REPLY_MAX 512u  /* the longest reply a request can produce */

struct ref_opts {
	const char *ip;   /* address to listen on (default every address) */
	uint16_t port;    /* default 80 */
	const char *pool; /* log file (created; must not exist) */
	uint64_t pool_size;
	bool busy_poll;     /* spin instead of sleeping in the kernel */
	uint64_t fence_ns;  /* emulated media latency after every drain (PASTE_EMU_FENCE_NS) */
	uint64_t line_ns;   /* ... and per cache line flushed since the last (PASTE_EMU_LINE_NS) */
	const char *prog;   /* program name for messages */
	const char *server; /* Server: header value */
};

/*
 * Parse the command line (prints @usage for --help and exits). @return 0, or 2 after printing
 * what is wrong.
 */
int ref_opts_parse(struct ref_opts *o, int argc, char **argv, const char *usage);

/* The options text both servers share (for their --help). */
extern const char ref_opts_help[];

/* The log: a file mapped with pmem_map_file; @base + REF_LOG_DATA_OFF onward is the data area. */
struct ref_log {
	uint8_t *base;
	size_t len;
	int is_pmem;
	uint64_t next_seq;
	uint64_t fence_ns;
	uint64_t line_ns;  /* emulated latency per flushed line, paid at the next drain */
	uint64_t lines;    /* lines flushed since the last drain (counted only with line_ns) */
	bool dirty;        /* flushed since the last drain */
	uint64_t drains;   /* batches made durable */
	uint64_t appended; /* records */
};

#define REF_LOG_DATA_OFF 4096u

/*
 * Create the log file @o->pool of @o->pool_size bytes, map it with libpmem and pre-fault it (so
 * the benchmark does not measure first-touch page faults). @return 0 or -errno (message printed).
 */
int ref_log_open(struct ref_log *log, const struct ref_opts *o, const char *layout);
void ref_log_close(struct ref_log *log);

/*
 * Count the cache lines of [@p, @p + @len) that the batch writes back (for PASTE_EMU_LINE_NS: the
 * slow-media experiment charges every flushed line at the next drain, as libpaste-xdp's pool does).
 * Call it for every pmem_flush() / pmem_memcpy_nodrain() of log bytes.
 */
static inline void ref_log_lines(struct ref_log *log, const void *p, size_t len)
{
	if (log->line_ns && len) {
		uintptr_t a = (uintptr_t)p;

		log->lines += ((a + len + 63) >> 6) - (a >> 6);
	}
}

/* The one drain of a batch (sfence after the batch's flushes), then the emulated media latency. */
void ref_log_drain(struct ref_log *log);

/* Listening TCP socket on @o->ip:@o->port (non-blocking). @return fd or -errno (message printed).
 */
int ref_listen(const struct ref_opts *o);

/* TCP_NODELAY (and SO_BUSY_POLL with --busy-poll) on an accepted socket. */
void ref_sockopts(const struct ref_opts *o, int fd);

/* What to do with a parsed request head. */
enum ref_route {
	REF_APPEND,  /* POST /log with a body: receive it into the log, then ref_reply_created() */
	REF_REPLIED, /* a reply is in @out (200/4xx); skip the body (if any), keep the connection */
	REF_CLOSE,   /* a reply is in @out; send it and close the connection */
};

/*
 * Route the request @r (head already parsed by http_parse(); @status is its result, 0 or a
 * negated HTTP status). Writes a reply to @out (REF_REPLY_MAX bytes) with *@out_len when it is not
 * an append.
 */
enum ref_route ref_route(const struct ref_opts *o, const struct ref_log *log, int status,
                         const struct http_req *r, char *out, size_t *out_len);

/* Write the 201 of record @seq (the bytes paste-wal sends, but Server:) into @out; @return length.
 */
size_t ref_reply_created(const struct ref_opts *o, char *out, uint64_t seq, bool close);

/* Monotonic nanoseconds. */
uint64_t ref_now_ns(void);

/* Set by SIGINT/SIGTERM: the servers leave their loop and print their counters. */
extern volatile int ref_stop;
void ref_signals(void);

#endif /* PASTE_BENCH_REF_COMMON_H */
