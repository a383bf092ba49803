/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench.h - what the files of paste-bench share (the program is described in paste-bench.c):
 *
 *   paste-bench.c   the run's state, phases and the event loop, results, main
 *   bench_opts.c    options: the manual (--help) and parsing
 *   bench_hist.c    the latency histogram (h_add() is inline here)
 *   bench_conn.c    connections: connect, send, the request schedule; error accounting
 *   bench_proto.c   the protocols: request payloads, reply parsers and checkers
 *   bench_cpu.c     CPU accounting: server, machine, client
 *
 * Build: gcc -O2 -Wall -Wextra bench/paste-bench.c bench/bench_*.c -o paste-bench -lm
 */
#ifndef PASTE_BENCH_H
#define PASTE_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- limits ------------------------------------------------------------------------------- */

#define MAX_CONNS     65536
#define MAX_DEPTH     4096
#define MAX_SIZE      (64u << 20) /* request payload */
#define MAX_EVENTS    256
#define MAX_MSGS      10          /* error messages printed before going quiet */
#define RX_MIN        (64u << 10) /* receive buffer per connection (plus one reply's payload) */
#define HTTP_HEAD_MAX (16u << 10) /* longest reply head accepted */
#define PAT_SLIDE     256         /* payloads start at one of this many offsets of the pattern */
#define KEY_LEN       16          /* "key:" and 12 digits */
#define TAG_LEN       16          /* a value starts with "v:" and the key's 14 digits */
#define FILL_DEPTH    16          /* SETs in flight per connection while filling for resp-get */
#define NS            1000000000ull

/* ---- histogram ---------------------------------------------------------------------------- */

/*
 * Log-linear (HDR style): values below H_SUB are exact; above, each power of two [2^m, 2^(m+1))
 * is split into H_HALF equal buckets. Bucket index and value range are pure arithmetic.
 */
#define H_SUB_BITS 8
#define H_SUB      (1u << H_SUB_BITS)
#define H_HALF     (H_SUB / 2)
#define H_OCTAVES  40 /* up to 2^48 ns, 78 hours */
#define H_BUCKETS  (H_SUB + H_OCTAVES * H_HALF)

struct hist {
	uint64_t n, min, max;
	double sum;
	uint64_t c[H_BUCKETS];
};

static inline unsigned h_index(uint64_t v)
{
	if (v < H_SUB)
		return (unsigned)v;
	unsigned m = 63u - (unsigned)__builtin_clzll(v); /* >= H_SUB_BITS */
	unsigned shift = m - H_SUB_BITS + 1;
	unsigned idx = H_SUB + (m - H_SUB_BITS) * H_HALF + (unsigned)((v >> shift) - H_HALF);
	return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

static inline void h_add(struct hist *h, uint64_t v)
{
	h->c[h_index(v)]++;
	h->n++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* ---- options ------------------------------------------------------------------------------ */

enum mode { M_ECHO, M_HTTP_POST, M_RESP_SET, M_RESP_GET };
extern const char *const mode_names[];

struct bench_opt {
	struct sockaddr_in addr;
	const char *target;
	enum mode mode;
	unsigned conns, depth;
	uint64_t size;
	double duration, warmup, rate, timeout;
	uint64_t requests; /* 0: run for --duration */
	uint32_t keyspace, key_start;
	bool no_fill, busy, json, quiet, key_seq;
	long server_pid; /* 0: none */
	const char *path, *cdf;
	uint64_t seed;
};
extern struct bench_opt opt;

/* ---- the run's state ---------------------------------------------------------------------- */

enum phase { PH_CONNECT, PH_FILL, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

enum kind { K_ECHO, K_POST, K_SET, K_GET };

/* A request in flight: its (due) send time, what it asked, whether it is measured. */
struct pending {
	uint64_t t;
	uint32_t key; /* key index (SET/GET) or pattern offset (echo, POST) */
	uint8_t kind;
	bool measured;
};

struct conn {
	int fd;
	unsigned id;
	bool up;          /* connected and usable */
	bool want_out;    /* EPOLLOUT registered: the send buffer is full */
	uint8_t *tx, *rx; /* requests not yet accepted by the socket; reply bytes */
	size_t tx_len, tx_off, tx_cap, rx_len, rx_cap;
	struct pending *q; /* ring of requests in flight, oldest at q_head */
	unsigned q_cap, q_head, q_n;
	uint64_t echo_done; /* bytes of the oldest echo reply verified so far */
	uint64_t next_due;  /* open loop: due time of the next request */
	uint64_t last_seq;  /* http-post: the last sequence number seen */
	uint64_t n_req, rng;
};

enum err { E_STATUS, E_SEQ, E_VALUE, E_CONN, E_PROTO, E_TIMEOUT, E_MAX };
extern const char *const err_names[];

struct bench_state {
	struct conn *c;
	int ep;
	enum phase phase;
	uint64_t t_phase;        /* when the current phase began */
	uint64_t t_start, t_end; /* the measured interval: start, due end (duration mode) */
	uint64_t t_last;         /* last reply to a measured request */
	uint64_t t_heard;  /* last reply, or the first request sent after none was in flight */
	uint64_t interval; /* open loop: ns between two requests of one connection */
	uint64_t issued, measured; /* measured requests sent, and answered */
	uint64_t outstanding;      /* requests in flight, all connections */
	uint64_t missed;           /* open loop: due in the interval but never sent */
	uint32_t fill_next;        /* resp-get: next key to SET while filling */
	uint64_t seq_next;         /* --key-order seq: keys chosen so far */
	unsigned up;               /* connections usable */
	unsigned failed_connect;   /* connections that never came up */
	uint64_t err[E_MAX], n_msgs;
	struct hist h;
	/* progress: replies and latency since the last line */
	uint64_t p_next, p_n, p_sum, p_max;
	/* CPU time at both ends of the interval */
	uint64_t srv_ticks0, srv_ticks1;
	uint64_t host0[2], host1[2]; /* whole machine: busy and softirq ticks */
	bool host_ok;
	double cli_cpu0, cli_cpu1;
	bool srv_ok;
	/* request pieces built once */
	uint8_t *pat;
	char *http_head, set_mid[32];
	size_t http_head_len, set_mid_len;
};
extern struct bench_state S;
extern volatile sig_atomic_t stop_signal;

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mix64(uint64_t x)
{
	/* splitmix64 finalizer */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline uint64_t rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

/* ---- interfaces --------------------------------------------------------------------------- */

/* bench_hist.c */
uint64_t h_percentile(const struct hist *h, double p);
void h_reset(struct hist *h);
uint64_t h_value(const struct hist *h, unsigned idx);

/* bench_opts.c */
void parse_args(int argc, char **argv);

/* bench_conn.c */
int conn_alloc(struct conn *c, unsigned id);
void conn_close(struct conn *c);
void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conn_flush(struct conn *c);
void conn_pump(struct conn *c, uint64_t now);
int conn_start(struct conn *c);
uint64_t errors_total(void);
void note(enum err e, const struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void on_connected(struct conn *c);

/* bench_proto.c */
void on_event(struct conn *c, uint32_t ev);
int payload_init(void);
void request_build(struct conn *c, enum kind kind, uint32_t key);
size_t request_max(void);

/* bench_cpu.c */
double client_cpu(void);
bool host_ticks(uint64_t t[2]);
bool server_ticks(uint64_t *ticks);

#endif /* PASTE_BENCH_H */
