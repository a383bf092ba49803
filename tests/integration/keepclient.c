/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keepclient.c - paste-keepclient: the kernel-socket client of the durable-path crash test.
 *
 * It opens N non-blocking TCP connections to paste-keepserver and sends requests on each, a few in
 * flight at a time: a 4-byte big-endian length L, then L payload bytes that are a pure function of
 * (seed, connection id, request index) - see "payload" below; logcheck.c regenerates them with the
 * same code. Every reply is an 8-byte big-endian log sequence number (or all ones: the server
 * refused to keep the request). For every acknowledged request one line "seq conn idx len" is
 * appended to the ack file and flushed at once, so whatever happens to the server, the file lists
 * exactly the requests the server acknowledged as durable.
 *
 * The run ends when --duration has passed and the outstanding replies are in (or --grace expired),
 * or when the server is gone: EOF, a reset, or no reply for --stall seconds while requests are
 * outstanding (a SIGKILLed server in dedicated-IP mode leaves nobody to answer, not even with a
 * reset). Those are normal ends: the exit status is 0 unless the server broke the protocol or the
 * client could not run at all.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LEN     (1u << 20) /* the server accepts 1..1 MiB per request */
#define MAX_DEPTH   64
#define REPLY_ERROR UINT64_MAX

/* ---- payload (keep in sync with logcheck.c) ---------------------------------------------- */

/*
 * Request (conn, idx) of length len: byte i is byte i%8 of mix64(key + i/8), key a hash of (seed,
 * conn, idx); when len >= PAYLOAD_HDR the first 16 bytes are instead a header "PKP1", conn, idx,
 * len (big endian), so any payload found in the log can be identified without the ack file.
 */
#define PAYLOAD_MAGIC 0x504b5031u /* "PKP1" */
#define PAYLOAD_HDR   16u

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t payload_key(uint64_t seed, uint32_t conn, uint32_t idx)
{
	return mix64(seed ^ mix64((uint64_t)conn << 32 | idx));
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void payload_fill(uint64_t seed, uint32_t conn, uint32_t idx, uint8_t *buf, uint32_t len)
{
	uint64_t key = payload_key(seed, conn, idx);
	uint32_t i = 0;

	while (i < len) {
		uint64_t w = mix64(key + i / 8);

		for (unsigned b = i % 8; b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(w >> (8 * b));
	}
	if (len >= PAYLOAD_HDR) {
		put_be32(buf, PAYLOAD_MAGIC);
		put_be32(buf + 4, conn);
		put_be32(buf + 8, idx);
		put_be32(buf + 12, len);
	}
}

/* ---- options ------------------------------------------------------------------------------ */

static struct {
	struct sockaddr_in addr;
	unsigned conns;
	unsigned conn_base;
	double duration;
	uint32_t max_size;
	uint32_t min_size;
	uint64_t seed;
	const char *ack_file;
	unsigned depth;
	uint64_t rate; /* payload bytes per second per connection, 0 = unlimited */
	double stall;
	double grace;
	bool quiet;
} opt = {
    .conns = 4,
    .duration = 5,
    .max_size = 256 * 1024,
    .min_size = 1,
    .seed = 1,
    .depth = 4,
    .stall = 2,
    .grace = 5,
};

/* ---- connections -------------------------------------------------------------------------- */

enum conn_end { END_NONE, END_DONE, END_EOF, END_RESET, END_STALLED, END_FAILED };
static const char *const end_names[] = {"running", "done", "eof", "reset", "stalled", "failed"};

struct outstanding {
	uint32_t idx, len;
};

struct conn {
	int fd;
	uint32_t id;
	bool connected;
	enum conn_end end;
	uint64_t rng;
	uint32_t next_idx;
	uint8_t *buf; /* the request being sent: 4 + len bytes */
	size_t buf_len, buf_off;
	struct outstanding q[MAX_DEPTH];
	unsigned q_head, q_len;
	uint8_t reply[8];
	unsigned reply_len;
	uint64_t payload_started; /* payload bytes of requests started (rate limit) */
	double wait_since;        /* last reply, or when the oldest outstanding request went out */
	uint64_t acked, errors, acked_bytes;
};

static struct conn *conns;
static FILE *ack_fp;
static double t_start;
static int protocol_errors;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

/* Request sizes: half small (up to two frames), a third up to 64 KiB, the rest up to max. */
static uint32_t pick_len(struct conn *c)
{
	uint64_t r = rng_next(&c->rng);
	uint32_t lo = opt.min_size, hi;
	unsigned cls = (unsigned)(r % 100);

	if (cls < 50)
		hi = 3000;
	else if (cls < 85)
		hi = 64 * 1024;
	else
		hi = opt.max_size;
	if (hi > opt.max_size)
		hi = opt.max_size;
	if (hi < lo)
		hi = lo;
	return lo + (uint32_t)((r >> 8) % (hi - lo + 1));
}

static void conn_end(struct conn *c, enum conn_end why)
{
	if (c->end != END_NONE)
		return;
	c->end = why;
	if (c->fd >= 0) {
		if (why != END_DONE) { /* do not leave a half-sent request queued: reset */
			struct linger l = {.l_onoff = 1, .l_linger = 0};

			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		}
		close(c->fd);
		c->fd = -1;
	}
}

static int conn_open(struct conn *c)
{
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) && errno != EINPROGRESS)
		return -errno;
	return 0;
}

/* May a new request start now? (duration, pipeline depth, rate) */
static bool may_start(const struct conn *c, double now)
{
	if (now - t_start >= opt.duration || c->q_len >= opt.depth || c->buf_off < c->buf_len)
		return false;
	if (opt.rate && (double)c->payload_started > (now - t_start) * (double)opt.rate)
		return false;
	return true;
}

static void start_request(struct conn *c, double now)
{
	uint32_t len = pick_len(c);
	struct outstanding *o;

	put_be32(c->buf, len);
	payload_fill(opt.seed, c->id, c->next_idx, c->buf + 4, len);
	c->buf_len = 4 + (size_t)len;
	c->buf_off = 0;
	o = &c->q[(c->q_head + c->q_len) % MAX_DEPTH];
	o->idx = c->next_idx++;
	o->len = len;
	if (c->q_len++ == 0)
		c->wait_since = now;
	c->payload_started += len;
}

static void on_reply(struct conn *c, double now)
{
	uint64_t seq = 0;
	struct outstanding *o;

	for (int i = 0; i < 8; i++)
		seq = seq << 8 | c->reply[i];
	if (!c->q_len) {
		fprintf(stderr,
		        "keepclient: conn %u: reply %" PRIu64 " with no request outstanding\n",
		        c->id, seq);
		protocol_errors++;
		conn_end(c, END_FAILED);
		return;
	}
	o = &c->q[c->q_head];
	c->q_head = (c->q_head + 1) % MAX_DEPTH;
	c->q_len--;
	c->wait_since = now;
	if (seq == REPLY_ERROR) {
		c->errors++;
		return;
	}
	c->acked++;
	c->acked_bytes += o->len;
	fprintf(ack_fp, "%" PRIu64 " %u %u %u\n", seq, c->id, o->idx, o->len);
	fflush(ack_fp);
}

static void conn_read(struct conn *c, double now)
{
	uint8_t buf[4096];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n == 0) {
			conn_end(c, END_EOF);
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_end(c, errno == ECONNRESET ? END_RESET : END_FAILED);
			return;
		}
		for (ssize_t i = 0; i < n && c->end == END_NONE; i++) {
			c->reply[c->reply_len++] = buf[i];
			if (c->reply_len == 8) {
				c->reply_len = 0;
				on_reply(c, now);
			}
		}
		if (c->end != END_NONE)
			return;
	}
}

static void conn_write(struct conn *c, double now)
{
	for (;;) {
		if (c->buf_off == c->buf_len) {
			if (!may_start(c, now))
				return;
			start_request(c, now);
		}
		ssize_t n = send(c->fd, c->buf + c->buf_off, c->buf_len - c->buf_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_end(c, errno == ECONNRESET || errno == EPIPE ? END_RESET : END_FAILED);
			return;
		}
		c->buf_off += (size_t)n;
	}
}

static void conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		fprintf(stderr, "keepclient: conn %u: connect: %s\n", c->id, strerror(err));
		conn_end(c, END_FAILED);
		return;
	}
	c->connected = true;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-keepclient --connect IP:PORT --ack-file PATH [options]\n"
	    "\n"
	    "Sends length-prefixed requests with deterministic payloads to paste-keepserver and\n"
	    "appends 'seq conn idx len' to PATH for every request the server acknowledged.\n"
	    "\n"
	    "  --conns N        connections (default 4)\n"
	    "  --conn-base B    connection ids are B..B+N-1 (default 0); ids must be unique per\n"
	    "                   pool, so give every run on one pool its own range\n"
	    "  --duration SEC   start requests for this long (default 5)\n"
	    "  --min-size N     smallest payload (default 1)\n"
	    "  --max-size N     largest payload, at most 1048576 (default 262144)\n"
	    "  --depth N        requests in flight per connection (default 4, max %d)\n"
	    "  --rate BYTES     payload bytes per second per connection (default unlimited)\n"
	    "  --seed S         payload seed (default 1)\n"
	    "  --stall SEC      no reply for this long with requests outstanding: the server is\n"
	    "                   gone, end (default 2)\n"
	    "  --grace SEC      after the duration, wait this long for outstanding replies\n"
	    "                   (default 5)\n"
	    "  --quiet          only the summary line\n"
	    "Exit status: 0 (also when the server died), 1 protocol error or no connection, 2 "
	    "usage.\n",
	    MAX_DEPTH);
}

static int parse_addr(const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	unsigned long port;
	char *end;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || !port || port > 65535)
		return -1;
	opt.addr.sin_family = AF_INET;
	opt.addr.sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &opt.addr.sin_addr) == 1 ? 0 : -1;
}

static int parse_args(int argc, char **argv)
{
	enum {
		O_CONNECT = 256,
		O_CONNS,
		O_BASE,
		O_DURATION,
		O_MAX,
		O_MIN,
		O_SEED,
		O_ACKS,
		O_DEPTH,
		O_RATE,
		O_STALL,
		O_GRACE,
		O_QUIET,
		O_HELP
	};
	static const struct option lo[] = {
	    {"connect", required_argument, NULL, O_CONNECT},
	    {"conns", required_argument, NULL, O_CONNS},
	    {"conn-base", required_argument, NULL, O_BASE},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"max-size", required_argument, NULL, O_MAX},
	    {"min-size", required_argument, NULL, O_MIN},
	    {"seed", required_argument, NULL, O_SEED},
	    {"ack-file", required_argument, NULL, O_ACKS},
	    {"depth", required_argument, NULL, O_DEPTH},
	    {"rate", required_argument, NULL, O_RATE},
	    {"stall", required_argument, NULL, O_STALL},
	    {"grace", required_argument, NULL, O_GRACE},
	    {"quiet", no_argument, NULL, O_QUIET},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	bool have_addr = false;
	int o;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end = NULL;
		unsigned long long v = 0;
		double d = 0;

		if (o != O_CONNECT && o != O_ACKS && o != O_QUIET && o != O_HELP && optarg) {
			errno = 0;
			if (o == O_DURATION || o == O_STALL || o == O_GRACE)
				d = strtod(optarg, &end);
			else
				v = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end) {
				fprintf(stderr, "keepclient: bad number '%s' for --%s\n", optarg,
				        lo[o - O_CONNECT].name);
				return 2;
			}
		}
		switch (o) {
		case O_CONNECT:
			if (parse_addr(optarg)) {
				fprintf(stderr, "keepclient: --connect wants IPv4:PORT, not '%s'\n",
				        optarg);
				return 2;
			}
			have_addr = true;
			break;
		case O_CONNS:
			if (!v || v > 4096)
				goto range;
			opt.conns = (unsigned)v;
			break;
		case O_BASE:
			if (v > UINT32_MAX - 4096)
				goto range;
			opt.conn_base = (unsigned)v;
			break;
		case O_DURATION:
			if (d <= 0)
				goto range;
			opt.duration = d;
			break;
		case O_MAX:
			if (!v || v > MAX_LEN)
				goto range;
			opt.max_size = (uint32_t)v;
			break;
		case O_MIN:
			if (!v || v > MAX_LEN)
				goto range;
			opt.min_size = (uint32_t)v;
			break;
		case O_SEED:
			opt.seed = v;
			break;
		case O_ACKS:
			opt.ack_file = optarg;
			break;
		case O_DEPTH:
			if (!v || v > MAX_DEPTH)
				goto range;
			opt.depth = (unsigned)v;
			break;
		case O_RATE:
			opt.rate = v;
			break;
		case O_STALL:
			if (d <= 0)
				goto range;
			opt.stall = d;
			break;
		case O_GRACE:
			if (d < 0)
				goto range;
			opt.grace = d;
			break;
		case O_QUIET:
			opt.quiet = true;
			break;
		case O_HELP:
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
		continue;
	range:
		fprintf(stderr, "keepclient: value '%s' for --%s is out of range (see --help)\n",
		        optarg, lo[o - O_CONNECT].name);
		return 2;
	}
	if (optind != argc || !have_addr || !opt.ack_file) {
		fprintf(stderr, "keepclient: --connect and --ack-file are required (see --help)\n");
		return 2;
	}
	if (opt.min_size > opt.max_size) {
		fprintf(stderr, "keepclient: --min-size is larger than --max-size\n");
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pollfd *pfd;
	uint64_t acked = 0, errors = 0, bytes = 0, requests = 0;
	unsigned ends[END_FAILED + 1] = {0}, live, i, nconnected = 0;
	double now, t_end;
	int r;

	r = parse_args(argc, argv);
	if (r)
		return r == 1 ? 0 : 2;
	signal(SIGPIPE, SIG_IGN);
	ack_fp = fopen(opt.ack_file, "a");
	conns = calloc(opt.conns, sizeof(*conns));
	pfd = calloc(opt.conns, sizeof(*pfd));
	if (!ack_fp || !conns || !pfd) {
		fprintf(stderr, "keepclient: cannot open %s or allocate: %s\n", opt.ack_file,
		        strerror(errno));
		return 1;
	}
	t_start = now_s();
	t_end = t_start + opt.duration + opt.grace;
	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];

		c->id = opt.conn_base + i;
		c->rng = mix64(opt.seed * 0x100000001b3ull + c->id);
		c->buf = malloc(4 + (size_t)opt.max_size);
		if (!c->buf) {
			fprintf(stderr, "keepclient: out of memory\n");
			return 1;
		}
		r = conn_open(c);
		if (r) {
			fprintf(stderr, "keepclient: conn %u: %s\n", c->id, strerror(-r));
			conn_end(c, END_FAILED);
		}
	}
	if (!opt.quiet)
		printf("keepclient: %u conns (ids %u..%u) to %s:%u for %.1f s, sizes %u..%u, depth "
		       "%u, seed %" PRIu64 "\n",
		       opt.conns, opt.conn_base, opt.conn_base + opt.conns - 1,
		       inet_ntoa(opt.addr.sin_addr), ntohs(opt.addr.sin_port), opt.duration,
		       opt.min_size, opt.max_size, opt.depth, opt.seed);
	for (;;) {
		int timeout = 20;

		now = now_s();
		live = 0;
		for (i = 0; i < opt.conns; i++) {
			struct conn *c = &conns[i];

			if (c->end == END_NONE && c->connected) {
				bool finishing = now - t_start >= opt.duration;

				if (finishing && c->q_len == 0 && c->buf_off == c->buf_len)
					conn_end(c, END_DONE);
				else if (c->q_len && now - c->wait_since > opt.stall)
					conn_end(c, END_STALLED);
				else if (now > t_end)
					conn_end(c, END_STALLED);
			} else if (c->end == END_NONE && now - t_start > opt.stall + 1) {
				fprintf(stderr, "keepclient: conn %u: connect timed out\n", c->id);
				conn_end(c, END_FAILED);
			}
			pfd[i].fd = c->end == END_NONE ? c->fd : -1;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
			if (c->end != END_NONE)
				continue;
			live++;
			if (!c->connected || c->buf_off < c->buf_len || may_start(c, now))
				pfd[i].events |= POLLOUT;
		}
		if (!live)
			break;
		r = poll(pfd, opt.conns, timeout);
		if (r < 0 && errno != EINTR) {
			perror("keepclient: poll");
			return 1;
		}
		now = now_s();
		for (i = 0; i < opt.conns && r > 0; i++) {
			struct conn *c = &conns[i];

			if (c->end != END_NONE || !pfd[i].revents)
				continue;
			if (!c->connected) {
				conn_connected(c);
				if (c->end != END_NONE)
					continue;
				nconnected++;
			}
			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				conn_read(c, now);
			if (c->end == END_NONE && pfd[i].revents & POLLOUT)
				conn_write(c, now);
		}
	}
	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];

		acked += c->acked;
		errors += c->errors;
		bytes += c->acked_bytes;
		requests += c->next_idx;
		ends[c->end]++;
		if (!opt.quiet && c->end != END_DONE)
			printf("keepclient: conn %u: %s after %u requests, %" PRIu64 " acked, %u "
			       "outstanding\n",
			       c->id, end_names[c->end], c->next_idx, c->acked, c->q_len);
		free(c->buf);
	}
	fclose(ack_fp);
	printf("keepclient: conns=%u requests=%" PRIu64 " acked=%" PRIu64 " errors=%" PRIu64
	       " acked_bytes=%" PRIu64 " done=%u eof=%u reset=%u stalled=%u failed=%u "
	       "elapsed=%.3f\n",
	       opt.conns, requests, acked, errors, bytes, ends[END_DONE], ends[END_EOF],
	       ends[END_RESET], ends[END_STALLED], ends[END_FAILED], now_s() - t_start);
	free(conns);
	free(pfd);
	if (protocol_errors || !nconnected)
		return 1;
	return 0;
}
