/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * testclient.c - paste-testclient: a kernel-socket load and correctness client for echo servers.
 *
 * The integration tests run it in the client namespace of the testbed against paste-echo. It opens
 * N concurrent non-blocking TCP connections, streams a deterministic, per-connection byte sequence
 * through each in random-sized writes, and checks every echoed byte. Each connection ends in one of
 * four ways (--close) so the server's handling of close, half-close, its own close and RST are all
 * exercised. One epoll loop, no threads, no library beyond libc.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSGS 20 /* per-connection error messages printed before going quiet */
#define STR(x)   #x
#define XSTR(x)  STR(x)
#define IO_BUF   (256 * 1024) /* largest single read, and scratch for writes */

enum close_mode { CLOSE_CLIENT, CLOSE_HALF, CLOSE_SERVER, CLOSE_RESET };
static const char *const mode_names[] = {"client", "half", "server", "reset"};

/* A connection's life: CONNECTING -> RUNNING -> one of OK / RESET / FAILED (fd closed). */
enum conn_state { ST_CONNECTING, ST_RUNNING, ST_OK, ST_RESET, ST_FAILED };

struct conn {
	int fd;
	unsigned id;
	enum close_mode mode;
	enum conn_state state;
	bool wr_done;     /* everything to send is sent (and SHUT_WR done for half) */
	uint64_t base;    /* payload key of this connection */
	uint64_t to_send; /* bytes this connection sends */
	uint64_t sent;
	uint64_t received; /* echoed bytes read and verified */
};

static struct {
	struct sockaddr_in addr;
	unsigned conns;
	uint64_t bytes;
	enum close_mode mode;
	bool mix;
	uint64_t seed;
	double timeout;
	uint32_t max_write;
	bool quiet;
} opt = {
    .conns = 100,
    .bytes = 1 << 20,
    .mode = CLOSE_CLIENT,
    .seed = 1,
    .timeout = 60,
    .max_write = 16384,
};

static unsigned n_msgs;
static uint64_t rng_state;
static uint8_t iobuf[IO_BUF];

/* ---- payload ------------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
	/* splitmix64 finalizer */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Byte @off of the stream of the connection whose key is @base. */
static inline uint8_t payload_byte(uint64_t base, uint64_t off)
{
	return (uint8_t)(mix64(base + off / 8) >> (8 * (off % 8)));
}

/* Write bytes [off, off+len) of the stream into @buf. */
static void payload_fill(uint64_t base, uint64_t off, uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint64_t w = mix64(base + (off + i) / 8);
		for (unsigned b = (off + i) % 8; b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(w >> (8 * b));
	}
}

/* Index of the first byte of @buf that differs from the stream at @off, or @len if none. */
static size_t payload_check(uint64_t base, uint64_t off, const uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint64_t w = mix64(base + (off + i) / 8);
		for (unsigned b = (off + i) % 8; b < 8 && i < len; b++, i++)
			if (buf[i] != (uint8_t)(w >> (8 * b)))
				return i;
	}
	return len;
}

static uint64_t rng_next(void)
{
	rng_state += 0x9e3779b97f4a7c15ull;
	return mix64(rng_state);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void conn_msg(const struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void conn_msg(const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (opt.quiet)
		return;
	if (++n_msgs > MAX_MSGS) {
		if (n_msgs == MAX_MSGS + 1)
			fprintf(stderr, "testclient: (further messages suppressed)\n");
		return;
	}
	fprintf(stderr, "testclient: conn %u (%s, sent %" PRIu64 ", verified %" PRIu64 "): ", c->id,
	        mode_names[c->mode], c->sent, c->received);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void conn_end(struct conn *c, enum conn_state st)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = st;
}

static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_fail(struct conn *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_msg(c, "FAILED: %s", msg);
	conn_end(c, ST_FAILED);
}

/* Send RST: linger {on, 0 s} makes close() abort the connection. */
static void conn_reset(struct conn *c)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) {
		conn_fail(c, "setsockopt(SO_LINGER): %s", strerror(errno));
		return;
	}
	conn_end(c, ST_RESET);
}

static int set_events(int ep, struct conn *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = c};
	return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* ---- the connection state machine --------------------------------------------------------- */

static void on_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		conn_fail(c, "connect: %s", strerror(err));
		return;
	}
	c->state = ST_RUNNING;
}

static void do_write(int ep, struct conn *c)
{
	while (c->sent < c->to_send) {
		size_t n = 1 + rng_next() % opt.max_write;
		if (n > c->to_send - c->sent)
			n = c->to_send - c->sent;
		if (n > sizeof(iobuf))
			n = sizeof(iobuf);
		payload_fill(c->base, c->sent, iobuf, n);
		ssize_t w = send(c->fd, iobuf, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == ECONNRESET || errno == EPIPE)
				conn_fail(c, "send: connection reset by the server (%s)",
				          strerror(errno));
			else
				conn_fail(c, "send: %s", strerror(errno));
			return;
		}
		c->sent += (uint64_t)w;
	}
	if (c->mode == CLOSE_RESET) {
		conn_reset(c);
		return;
	}
	if (c->mode == CLOSE_HALF && shutdown(c->fd, SHUT_WR) < 0) {
		conn_fail(c, "shutdown(SHUT_WR): %s", strerror(errno));
		return;
	}
	c->wr_done = true;
	if (set_events(ep, c, EPOLLIN | EPOLLRDHUP) < 0)
		conn_fail(c, "epoll_ctl: %s", strerror(errno));
}

static void on_eof(struct conn *c)
{
	switch (c->mode) {
	case CLOSE_HALF:
	case CLOSE_SERVER:
		if (c->received == opt.bytes)
			conn_end(c, ST_OK);
		else
			conn_fail(c, "EOF after %" PRIu64 " of %" PRIu64 " bytes", c->received,
			          opt.bytes);
		break;
	default:
		conn_fail(c,
		          "unexpected EOF from the server after %" PRIu64 " of %" PRIu64 " bytes",
		          c->received, opt.bytes);
		break;
	}
}

/* Verify @n freshly read bytes; false (and the connection failed) on a mismatch. */
static bool verify(struct conn *c, size_t n)
{
	if (c->received + n > c->sent) {
		conn_fail(c, "received %" PRIu64 " bytes but only %" PRIu64 " were sent",
		          c->received + n, c->sent);
		return false;
	}
	size_t bad = payload_check(c->base, c->received, iobuf, n);
	if (bad < n) {
		uint64_t off = c->received + bad;
		c->received = off; /* the bytes before the mismatch were good */
		conn_fail(c, "data mismatch at offset %" PRIu64 ": expected 0x%02x, got 0x%02x",
		          off, payload_byte(c->base, off), iobuf[bad]);
		return false;
	}
	c->received += n;
	return true;
}

static void do_read(struct conn *c)
{
	for (;;) {
		ssize_t r = recv(c->fd, iobuf, sizeof(iobuf), 0);
		if (r == 0) {
			on_eof(c);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == ECONNRESET)
				conn_fail(c, "connection reset by the server");
			else
				conn_fail(c, "recv: %s", strerror(errno));
			return;
		}
		if (!verify(c, (size_t)r))
			return;
		if (c->mode == CLOSE_CLIENT && c->received == opt.bytes) {
			conn_end(c, ST_OK);
			return;
		}
	}
}

static void on_event(int ep, struct conn *c, uint32_t ev)
{
	if (c->state == ST_CONNECTING) {
		on_connected(c);
		if (c->state != ST_RUNNING)
			return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		do_read(c);
	if (c->state == ST_RUNNING && !c->wr_done && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		do_write(ep, c);
}

static int conn_start(int ep, struct conn *c)
{
	struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "testclient: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) < 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, "connect: %s", strerror(errno));
		return 0;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0) {
		fprintf(stderr, "testclient: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- options ------------------------------------------------------------------------------ */

/* clang-format off */
static const char usage_text[] =
"NAME\n"
"    paste-testclient - concurrent TCP echo client that verifies every byte\n"
"\n"
"SYNOPSIS\n"
"    paste-testclient --connect IP:PORT [--conns N] [--bytes SIZE]\n"
"                     [--close client|half|server|reset | --mix] [--seed S]\n"
"                     [--timeout SEC] [--max-write N] [--quiet]\n"
"\n"
"DESCRIPTION\n"
"    Opens N non-blocking TCP connections to an echo server at once, sends SIZE bytes\n"
"    on each in writes of random size, and reads the echo back, checking every byte.\n"
"    All connections run concurrently in one epoll loop, over ordinary kernel sockets.\n"
"\n"
"    Byte i of connection c is byte (i mod 8) (little-endian) of the 64-bit word\n"
"    splitmix64(key(c) + i/8), where key(c) = splitmix64(S * 2^32 + c), so the\n"
"    expected value of every byte is known without keeping what was sent. The first\n"
"    mismatch is reported as connection, stream offset, expected and received byte.\n"
"\n"
"OPTIONS\n"
"    --connect IP:PORT   IPv4 address and port of the echo server (required).\n"
"    --conns N           Number of concurrent connections (default 100).\n"
"    --bytes SIZE        Bytes per connection; suffixes K, M, G (powers of 1024).\n"
"                        Default 1M.\n"
"    --close MODE        How each connection ends (default client):\n"
"                        client  all SIZE bytes echoed and verified, then close().\n"
"                        half    shutdown(SHUT_WR) after sending SIZE bytes, then\n"
"                                read until EOF; exactly SIZE bytes must come back.\n"
"                        server  the server closes after SIZE bytes (start it with\n"
"                                --max-bytes SIZE): read SIZE bytes, then EOF is\n"
"                                required before the timeout; then close().\n"
"                        reset   send about SIZE/2 bytes (echoed bytes read so far\n"
"                                are verified), then close() with SO_LINGER {1, 0},\n"
"                                which sends RST. Counted as reset, not as ok.\n"
"    --mix               Assign client, half, server, reset round-robin over the\n"
"                        connections (connection c gets mode c mod 4). Needs a\n"
"                        server started with --max-bytes SIZE.\n"
"    --seed S            Seed for the payload and the write sizes (default 1).\n"
"    --timeout SEC       Overall deadline in seconds (default 60); connections not\n"
"                        finished by then fail.\n"
"    --max-write N       Each send() is given a random size in [1, N] (default 16384,\n"
"                        at most 256K).\n"
"    --quiet             Print only the summary line.\n"
"    --help              This text.\n"
"\n"
"OUTPUT\n"
"    Problems go to stderr, one line per failed connection (the first " XSTR(MAX_MSGS) ").\n"
"    The summary is one line on stdout:\n"
"      testclient: conns=N ok=N failed=N reset=N bytes_sent=N bytes_verified=N elapsed=Xs\n"
"    ok counts connections that ended as their mode requires (reset ones not included);\n"
"    bytes_verified counts echoed bytes read and checked.\n"
"\n"
"    A connection fails on: a connect error; ECONNRESET or another socket error when no\n"
"    reset was asked for; a wrong byte; more bytes back than were sent; EOF too early\n"
"    (for --close client, any EOF before all bytes came back); or the deadline.\n"
"\n"
"EXIT STATUS\n"
"    0 if every connection succeeded (ok + reset == N), 1 otherwise, 2 on a usage error.\n"
"\n"
"EXAMPLE\n"
"    ip netns exec paste-cli paste-testclient --connect 10.77.0.3:7 --conns 100 --bytes 1M\n";
/* clang-format on */

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("paste-testclient: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try --help)\n", stderr);
	exit(2);
}

static bool parse_u64(const char *s, uint64_t *v, bool suffix)
{
	char *end;
	uint64_t mult = 1;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	if (suffix && *end) {
		switch (*end) {
		case 'k':
		case 'K':
			mult = 1ull << 10;
			break;
		case 'm':
		case 'M':
			mult = 1ull << 20;
			break;
		case 'g':
		case 'G':
			mult = 1ull << 30;
			break;
		default:
			return false;
		}
		end++;
		if (*end == 'i' || *end == 'B')
			end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	}
	if (*end || (x && mult > UINT64_MAX / x))
		return false;
	*v = x * mult;
	return true;
}

static void parse_connect(const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	uint64_t port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		usage_error("--connect: expected IPv4:PORT, got '%s'", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1)
		usage_error("--connect: '%s' is not an IPv4 address", host);
	if (!parse_u64(colon + 1, &port, false) || port == 0 || port > 65535)
		usage_error("--connect: bad port '%s'", colon + 1);
	opt.addr.sin_family = AF_INET;
	opt.addr.sin_port = htons((uint16_t)port);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"connect", required_argument, NULL, 'c'},
	    {"conns", required_argument, NULL, 'n'},
	    {"bytes", required_argument, NULL, 'b'},
	    {"close", required_argument, NULL, 'C'},
	    {"mix", no_argument, NULL, 'x'},
	    {"seed", required_argument, NULL, 's'},
	    {"timeout", required_argument, NULL, 't'},
	    {"max-write", required_argument, NULL, 'w'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool have_addr = false;
	uint64_t v;
	int o;

	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'c':
			parse_connect(optarg);
			have_addr = true;
			break;
		case 'n':
			if (!parse_u64(optarg, &v, false) || v == 0 || v > 1000000)
				usage_error("--conns: expected 1..1000000, got '%s'", optarg);
			opt.conns = (unsigned)v;
			break;
		case 'b':
			if (!parse_u64(optarg, &v, true) || v == 0)
				usage_error("--bytes: expected a size > 0 (K/M/G suffix), got '%s'",
				            optarg);
			opt.bytes = v;
			break;
		case 'C': {
			unsigned m;
			for (m = 0; m < 4 && strcmp(optarg, mode_names[m]); m++)
				;
			if (m == 4)
				usage_error("--close: expected client|half|server|reset, got '%s'",
				            optarg);
			opt.mode = (enum close_mode)m;
			break;
		}
		case 'x':
			opt.mix = true;
			break;
		case 's':
			if (!parse_u64(optarg, &v, false))
				usage_error("--seed: expected a number, got '%s'", optarg);
			opt.seed = v;
			break;
		case 't': {
			char *end;
			opt.timeout = strtod(optarg, &end);
			if (*end || end == optarg || !(opt.timeout > 0))
				usage_error("--timeout: expected seconds > 0, got '%s'", optarg);
			break;
		}
		case 'w':
			if (!parse_u64(optarg, &v, true) || v == 0 || v > IO_BUF)
				usage_error("--max-write: expected 1..%d, got '%s'", IO_BUF,
				            optarg);
			opt.max_write = (uint32_t)v;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs("paste-testclient: try --help\n", stderr);
			exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!have_addr)
		usage_error("--connect IP:PORT is required");
}

/* ---- main loop ---------------------------------------------------------------------------- */

static void raise_fd_limit(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = need <= rl.rlim_max ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void init_conns(struct conn *cs)
{
	for (unsigned i = 0; i < opt.conns; i++) {
		struct conn *c = &cs[i];
		c->fd = -1;
		c->id = i;
		c->mode = opt.mix ? (enum close_mode)(i % 4) : opt.mode;
		c->state = ST_CONNECTING;
		c->base = mix64((opt.seed << 32) + i);
		c->to_send = opt.bytes;
		if (c->mode == CLOSE_RESET)
			c->to_send = opt.bytes / 2 ? opt.bytes / 2 : 1;
	}
}

/* Run until every connection has ended or the deadline passes. 0, or -1 on a local error. */
static int run(struct conn *cs, double deadline)
{
	struct epoll_event evs[256];
	unsigned live = opt.conns;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0) {
		perror("testclient: epoll_create1");
		return -1;
	}
	for (unsigned i = 0; i < opt.conns; i++) {
		if (conn_start(ep, &cs[i]) < 0) {
			close(ep);
			return -1;
		}
		if (cs[i].state != ST_CONNECTING)
			live--;
	}
	while (live > 0) {
		double left = deadline - now();
		if (left <= 0)
			break;
		int n = epoll_wait(ep, evs, 256, (int)(left * 1000) + 1);
		if (n < 0 && errno != EINTR) {
			perror("testclient: epoll_wait");
			close(ep);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->fd < 0)
				continue; /* ended earlier in this batch */
			on_event(ep, c, evs[i].events);
			if (c->fd < 0)
				live--;
		}
	}
	close(ep);
	return 0;
}

static void timeout_fail(struct conn *cs)
{
	for (unsigned i = 0; i < opt.conns; i++) {
		struct conn *c = &cs[i];
		if (c->fd < 0)
			continue;
		if (c->state == ST_CONNECTING)
			conn_fail(c, "timeout (%.0f s) while connecting", opt.timeout);
		else
			conn_fail(c, "timeout (%.0f s): %s", opt.timeout,
			          !c->wr_done             ? "still sending"
			          : c->received < c->sent ? "waiting for the echo"
			                                  : "waiting for EOF from the server");
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	rng_state = mix64(opt.seed ^ 0x5851f42d4c957f2dull);
	raise_fd_limit(opt.conns + 32);

	struct conn *cs = calloc(opt.conns, sizeof(*cs));
	if (!cs) {
		perror("testclient: calloc");
		return 1;
	}
	init_conns(cs);
	if (!opt.quiet)
		fprintf(stderr,
		        "testclient: %u conns x %" PRIu64 " bytes to %s:%u, close=%s, seed %" PRIu64
		        "\n",
		        opt.conns, opt.bytes, inet_ntoa(opt.addr.sin_addr),
		        ntohs(opt.addr.sin_port), opt.mix ? "mix" : mode_names[opt.mode], opt.seed);

	double t0 = now();
	int rc = run(cs, t0 + opt.timeout);
	double elapsed = now() - t0;
	timeout_fail(cs);

	unsigned ok = 0, failed = 0, reset = 0;
	uint64_t sent = 0, verified = 0;
	for (unsigned i = 0; i < opt.conns; i++) {
		ok += cs[i].state == ST_OK;
		reset += cs[i].state == ST_RESET;
		failed += cs[i].state == ST_FAILED;
		sent += cs[i].sent;
		verified += cs[i].received;
	}
	printf("testclient: conns=%u ok=%u failed=%u reset=%u bytes_sent=%" PRIu64
	       " bytes_verified=%" PRIu64 " elapsed=%.3fs\n",
	       opt.conns, ok, failed, reset, sent, verified, elapsed);
	free(cs);
	return rc == 0 && failed == 0 && ok + reset == opt.conns ? 0 : 1;
}
