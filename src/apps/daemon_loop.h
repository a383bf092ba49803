/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon_loop.h - the event loop the daemons share (paste-echo, paste-wal, paste-kv): rounds of
 * paste_poll() until SIGTERM/SIGINT (daemon_opts.h's signal flags), the stats line on SIGUSR1, a
 * periodic tick for the program's timers, and a registry of the open connections with an idle
 * timeout (no progress for so long) and a request timeout (a request begun and not complete
 * in time: an HTTP head, a Redis command). The program embeds a struct daemon_conn in its own
 * per-connection state, adds it in on_accept, removes it in on_close, and says when a connection
 * makes progress (daemon_conn_touch) and when a request begins (daemon_conn_request).
 *
 * How a round goes: paste_poll(ctx, ms) with ms = the program's poll_timeout() (or -1), cut to
 * the time left until the next tick when there is a tick hook or a timeout; then after_poll();
 * then, once per tick_ms, the timeout scan and tick().
 */
#ifndef PASTE_DAEMON_LOOP_H
#define PASTE_DAEMON_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <paste/paste.h>

/* Embedded in the program's connection state; the loop links it into its registry. */
struct daemon_conn {
	struct paste_conn *c;
	uint64_t last_ns; /* last progress (daemon_conn_touch) */
	uint64_t req_ns;  /* the request under way began here; 0: none */
	struct daemon_conn *prev, *next;
};

enum daemon_timeout { DAEMON_TIMEOUT_REQUEST, DAEMON_TIMEOUT_IDLE };

struct daemon_loop {
	/* set by the program before daemon_loop_run() */
	const char *name; /* "paste-wal": the prefix of the loop's messages */
	struct paste_ctx *ctx;
	uint64_t idle_timeout_ms;    /* 0: none */
	uint64_t request_timeout_ms; /* 0: none */
	unsigned tick_ms;            /* the tick and the timeout scan (0: 100 ms) */
	void *app;                   /* handed to every hook */
	/* Hooks, each optional. */
	int (*poll_timeout)(void *app); /* this round's wait in ms; -1: until input or a tick */
	int (*after_poll)(void *app);   /* after every round; nonzero: stop with status 1 */
	int (*tick)(void *app);         /* once per tick_ms; nonzero: stop with status 1 */
	void (*print_stats)(void *app); /* SIGUSR1 */
	/* A connection is over a limit. Return true when it was dealt with (counted as a timeout),
	 * false to leave it (the program knows it is not stuck: a reply still leaving, say).
	 * Without this hook the connection is reset (paste_conn__abort). */
	bool (*timed_out)(struct daemon_conn *dc, enum daemon_timeout why, void *app);

	/* kept by the loop; the program reads them */
	struct daemon_conn *conns; /* open connections, newest first */
	uint32_t nconns;
	uint64_t conns_total;
	uint64_t idle_timeouts, request_timeouts;
	int fatal;                /* the program sets it (from a callback) to stop with status 1 */
	bool pool_low;            /* daemon_pool_low()'s last answer */
	uint64_t pool_checked_ns; /* and when it read the counters */
};

/* CLOCK_MONOTONIC in nanoseconds: the clock of every timeout. */
uint64_t daemon_now_ns(void);

/* Register @dc (for connection @c) as open and making progress now. */
void daemon_conn_add(struct daemon_loop *l, struct daemon_conn *dc, struct paste_conn *c);
/* Unregister @dc (from on_close). Safe on a @dc never added (zeroed). */
void daemon_conn_remove(struct daemon_loop *l, struct daemon_conn *dc);

/* The connection made progress (bytes in, a reply out) at @now. */
static inline void daemon_conn_touch(struct daemon_conn *dc, uint64_t now)
{
	dc->last_ns = now;
}

/* A request began at @since (its first byte), or none is under way (@since = 0). */
static inline void daemon_conn_request(struct daemon_conn *dc, uint64_t since)
{
	dc->req_ns = since;
}

/*
 * The daemons' one pool-headroom rule (--reserve-frames): the pool is short when fewer than
 * @reserve frames are FREE. Frames on the receive ring (FILL) do not count: they are committed to
 * receiving, and a rule that counted them would let kept data eat the ring and starve reception.
 * The counters are read at most every DAEMON_POOL_CHECK_NS while there is room; once short, at
 * every call (frames come back at any fence: a delete, a closed connection). Needs l->ctx.
 */
#define DAEMON_POOL_CHECK_NS 1000000ull
bool daemon_pool_low(struct daemon_loop *l, uint64_t reserve, uint64_t now);

/* One timeout scan at @now (daemon_loop_run() runs it every tick; tests call it directly). */
void daemon_loop_check_timeouts(struct daemon_loop *l, uint64_t now);

/* Run rounds until SIGTERM/SIGINT (@return 0), or a failed round, a hook's error or l->fatal
 * (@return 1, with a message on stderr naming what failed). */
int daemon_loop_run(struct daemon_loop *l);

/* Parse a timeout option in seconds (0 to 86400) into @ms. @return 0, or -1 after printing
 * "PROG: invalid value 'ARG' for --OPTION: seconds 0-86400" on stderr. */
int daemon_parse_timeout(const char *prog, const char *option, const char *arg, uint64_t *ms);

#endif
