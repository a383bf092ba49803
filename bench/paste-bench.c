/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-bench.c - paste-bench: the load generator of libpaste-xdp's benchmarks (issue 7).
 *
 * It plays the client host: ordinary kernel TCP sockets, one epoll loop, one thread, no library
 * beyond libc. It drives an echo server (paste-echo), an HTTP write-ahead log (paste-wal) or a
 * Redis-protocol store (paste-kv, redis-server) over N connections with D requests in flight on
 * each, closed loop (a reply releases the next request) or open loop at a fixed rate, and checks
 * every reply: echoed bytes, the HTTP status and per-connection order of the log's sequence
 * numbers, +OK, and for GET the value byte for byte.
 *
 * Latency is recorded in a log-linear histogram (exact below 256 ns, then 128 buckets per power
 * of two: under 0.8 % error, a fixed 43 KiB array, nothing allocated per request). In open loop
 * every request has an intended send time on a fixed schedule, and its latency is measured from
 * that time, not from when the socket accepted it: a stalled server shows as latency (coordinated
 * omission is not hidden), and requests the schedule wanted but could not send are reported.
 *
 * What is measured: requests whose (intended) send time falls in the measured interval, which
 * starts after the warm-up and ends after --duration seconds or --requests requests; throughput
 * is those requests over the time from the start to the last of their replies. Server CPU time
 * comes from /proc/PID/stat (utime + stime, clock ticks) read at both ends of that interval.
 */
#define _GNU_SOURCE
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

static unsigned h_index(uint64_t v)
{
	if (v < H_SUB)
		return (unsigned)v;
	unsigned m = 63u - (unsigned)__builtin_clzll(v); /* >= H_SUB_BITS */
	unsigned shift = m - H_SUB_BITS + 1;
	unsigned idx = H_SUB + (m - H_SUB_BITS) * H_HALF + (unsigned)((v >> shift) - H_HALF);
	return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

/* Lowest value of bucket @idx, and (through @width) how many values it holds. */
static uint64_t h_lowest(unsigned idx, uint64_t *width)
{
	if (idx < H_SUB) {
		*width = 1;
		return idx;
	}
	unsigned shift = (idx - H_SUB) / H_HALF + 1, sub = (idx - H_SUB) % H_HALF;
	*width = 1ull << shift;
	return (uint64_t)(H_HALF + sub) << shift;
}

static void h_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static void h_add(struct hist *h, uint64_t v)
{
	h->c[h_index(v)]++;
	h->n++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* A bucket's representative value: its middle, within the observed [min, max]. */
static uint64_t h_value(const struct hist *h, unsigned idx)
{
	uint64_t w, v = h_lowest(idx, &w) + (w - 1) / 2;
	if (v < h->min)
		v = h->min;
	if (v > h->max)
		v = h->max;
	return v;
}

/* The value at percentile @p (0..100]: the smallest v with at least p % of values <= v. */
static uint64_t h_percentile(const struct hist *h, double p)
{
	if (!h->n)
		return 0;
	if (p >= 100)
		return h->max;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->c[i];
		if (seen >= rank)
			return h_value(h, i);
	}
	return h->max;
}

/* ---- options ------------------------------------------------------------------------------ */

enum mode { M_ECHO, M_HTTP_POST, M_RESP_SET, M_RESP_GET };
static const char *const mode_names[] = {"echo", "http-post", "resp-set", "resp-get"};

static struct {
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
} opt = {
    .mode = M_ECHO,
    .conns = 1,
    .depth = 1,
    .size = 64,
    .duration = 10,
    .warmup = 1,
    .timeout = 10,
    .keyspace = 10000,
    .path = "/log",
    .seed = 1,
};

/* clang-format off */
static const char usage_text[] =
"NAME\n"
"    paste-bench - TCP load generator for paste-echo, paste-wal, paste-kv and Redis\n"
"\n"
"SYNOPSIS\n"
"    paste-bench --connect IP:PORT [--mode MODE] [--conns N] [--pipeline D]\n"
"                [--size BYTES] [--duration SEC | --requests N] [--warmup SEC]\n"
"                [--rate R] [--busy] [--server-pid PID] [--keyspace N] [--no-fill]\n"
"                [--key-order uniform|seq] [--key-start K] [--path P] [--timeout SEC]\n"
"                [--cdf FILE] [--seed S] [--json] [--quiet]\n"
"\n"
"DESCRIPTION\n"
"    Opens N TCP connections over ordinary kernel sockets (non-blocking, TCP_NODELAY,\n"
"    one epoll loop in one thread) and keeps D requests in flight on each. Every reply\n"
"    is checked; latency goes into a log-linear histogram (relative error < 0.8 %).\n"
"\n"
"    Closed loop (default): each reply releases the connection's next request, so the\n"
"    offered load adapts to the server. Open loop (--rate R): requests are due on a\n"
"    fixed schedule, R per second over all connections (connection c sends at\n"
"    t0 + (c + k*N)/R); a request's latency runs from its due time, so a stall shows\n"
"    as latency instead of as fewer samples. A connection with D requests in flight\n"
"    sends late; requests still not sent when the run ends are reported as missed.\n"
"\n"
"    Measured are the requests whose (due) send time falls after the warm-up and\n"
"    before the end (--duration, or once --requests have been sent); throughput is\n"
"    their number over the time from the start to their last reply.\n"
"\n"
"MODES\n"
"    echo       send BYTES of a known pattern, expect the same BYTES back (paste-echo).\n"
"    http-post  POST P (default /log) with a body of BYTES, HTTP/1.1 keep-alive,\n"
"               pipelined; expect status 201 and a sequence number (X-Seq header or\n"
"               {\"seq\":N} body) larger than the previous one on the same connection\n"
"               (paste-wal).\n"
"    resp-set   RESP2 SET key value: keys \"key:\" + 12 digits, drawn uniformly from\n"
"               --keyspace (or in sequence: --key-order seq); expect +OK. The value\n"
"               of key k is a function of k and BYTES (\"v:\" + k in 14 digits, then\n"
"               a slice of a fixed pattern), so any later GET of k can be checked.\n"
"    resp-get   RESP2 GET key, uniform over --keyspace (or --key-order seq); first\n"
"               SETs every key of the keyspace (unless --no-fill); expect exactly the\n"
"               value of that key, byte for byte. A miss ($-1) is an error.\n"
"\n"
"OPTIONS\n"
"    --connect IP:PORT  IPv4 address and port of the server (required).\n"
"    --mode MODE        echo (default), http-post, resp-set or resp-get.\n"
"    --conns N          concurrent connections (default 1).\n"
"    --pipeline D       requests in flight per connection (default 1, at most 4096).\n"
"    --size BYTES       payload: echo bytes, POST body, SET/GET value (default 64;\n"
"                       suffix K or M, powers of 1024).\n"
"    --duration SEC     length of the measured interval (default 10).\n"
"    --requests N       measure N requests instead of a duration.\n"
"    --warmup SEC       load before measuring, not recorded (default 1; 0 for none).\n"
"    --rate R           open loop at R requests/s in total (default: closed loop).\n"
"    --busy             poll epoll with a zero timeout instead of sleeping in it\n"
"                       (one core at 100 %; for the busy-poll comparisons).\n"
"    --server-pid PID   report the server's CPU time per request: utime + stime of\n"
"                       /proc/PID/stat over the measured interval (10 ms ticks).\n"
"    --keyspace N       number of distinct keys for resp-set/resp-get (default 10000).\n"
"    --no-fill          resp-get: do not SET the keyspace first (it must already hold\n"
"                       the values resp-set writes for the same --size).\n"
"    --key-order ORDER  how resp-set and resp-get choose keys after the fill:\n"
"                       uniform (default: drawn uniformly from --keyspace) or seq\n"
"                       (K, K+1, K+2, ... in the order the requests are sent over all\n"
"                       connections, warm-up included, wrapping to 0 after keyspace-1).\n"
"                       With --requests N and --warmup 0, resp-set --key-order seq\n"
"                       writes exactly the N distinct keys K..K+N-1 (N <= keyspace):\n"
"                       a fill that resumes where the previous one stopped.\n"
"    --key-start K      the first key of --key-order seq (default 0, below --keyspace).\n"
"    --path P           URL path for http-post (default /log).\n"
"    --timeout SEC      connect timeout; longest wait for a reply while requests are\n"
"                       in flight, and for the replies still due at the end\n"
"                       (default 10). Unanswered requests are timeout errors.\n"
"    --cdf FILE         write the latency distribution: lines \"usec fraction\"\n"
"                       (fraction of measured requests at or below usec), for plots.\n"
"    --seed S           seed of the key choice and payload pattern (default 1).\n"
"    --json             print the result as one JSON object on stdout.\n"
"    --quiet            no progress lines and no per-error messages.\n"
"    --help             this text.\n"
"\n"
"OUTPUT\n"
"    Each second, one progress line on stderr: phase, time, replies/s, mean and max\n"
"    latency of that second, errors so far. At the end on stdout (or --json):\n"
"    throughput (req/s, and MB/s of payload = requests x BYTES / 10^6 / s), latency\n"
"    min/p50/p90/p99/p99.9/max/mean in microseconds, client CPU per request and, with\n"
"    --server-pid, server CPU per request and utilisation; the whole machine's busy\n"
"    and softirq CPU per request (/proc/stat: everything that runs, the server's\n"
"    packet processing in softirq included, but also any other load); and the\n"
"    error counts:\n"
"      status    HTTP status not 201, or a RESP error reply (-ERR ...)\n"
"      seq       an X-Seq not larger than the previous one on the connection\n"
"      value     echoed bytes or a GET value not what was sent or SET, or a miss\n"
"      conn      connect failure, reset, or EOF from the server\n"
"      protocol  a reply that cannot be parsed\n"
"      timeout   no reply for --timeout seconds while requests were in flight\n"
"    The first 10 errors are described on stderr (unless --quiet).\n"
"\n"
"EXIT STATUS\n"
"    0 if no error was counted, 1 otherwise, 2 on a usage error.\n"
"\n"
"EXAMPLES\n"
"    ip netns exec paste-cli paste-bench --mode http-post --connect 10.77.0.3:80 \\\n"
"        --conns 64 --size 1280 --duration 10 --server-pid $(pidof paste-wal)\n"
"    paste-bench --mode resp-get --connect 127.0.0.1:6379 --conns 50 --size 1K\n"
"    paste-bench --mode echo --connect 10.77.0.3:7 --rate 20000 --conns 4 --cdf e.cdf\n";
/* clang-format on */

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("paste-bench: ", stderr);
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
	if (suffix && (*end == 'k' || *end == 'K'))
		mult = 1ull << 10, end++;
	else if (suffix && (*end == 'm' || *end == 'M'))
		mult = 1ull << 20, end++;
	if (mult > 1 && *end == 'i' && end[1] == 'B')
		end += 2;
	else if (mult > 1 && *end == 'B')
		end++;
	if (*end || (x && mult > UINT64_MAX / x))
		return false;
	*v = x * mult;
	return true;
}

static double parse_secs(const char *name, const char *s, bool zero_ok)
{
	char *end;
	double v = strtod(s, &end);

	if (*end || end == s || !isfinite(v) || v < 0 || (!zero_ok && v == 0))
		usage_error("%s: expected seconds%s, got '%s'", name, zero_ok ? " >= 0" : " > 0",
		            s);
	return v;
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
	opt.target = s;
}

static uint64_t parse_range(const char *name, const char *s, uint64_t lo, uint64_t hi, bool sfx)
{
	uint64_t v;

	if (!parse_u64(s, &v, sfx) || v < lo || v > hi)
		usage_error("%s: expected %" PRIu64 "..%" PRIu64 "%s, got '%s'", name, lo, hi,
		            sfx ? " (K/M suffix)" : "", s);
	return v;
}

static void parse_mode(const char *s)
{
	for (unsigned m = 0; m < sizeof(mode_names) / sizeof(mode_names[0]); m++)
		if (!strcmp(s, mode_names[m])) {
			opt.mode = (enum mode)m;
			return;
		}
	usage_error("--mode: expected echo, http-post, resp-set or resp-get, got '%s'", s);
}

static void parse_rate(const char *s)
{
	char *end;

	opt.rate = strtod(s, &end);
	if (*end || end == s || !isfinite(opt.rate) || opt.rate <= 0 || opt.rate > 1e9)
		usage_error("--rate: expected requests/s in (0, 1e9], got '%s'", s);
}

static void parse_pid(const char *s)
{
	char path[64];

	opt.server_pid = (long)parse_range("--server-pid", s, 1, 1u << 30, false);
	snprintf(path, sizeof(path), "/proc/%ld/stat", opt.server_pid);
	if (access(path, R_OK))
		usage_error("--server-pid: cannot read %s: %s", path, strerror(errno));
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"connect", required_argument, NULL, 'c'},
	    {"mode", required_argument, NULL, 'm'},
	    {"conns", required_argument, NULL, 'n'},
	    {"pipeline", required_argument, NULL, 'p'},
	    {"size", required_argument, NULL, 's'},
	    {"duration", required_argument, NULL, 'd'},
	    {"requests", required_argument, NULL, 'r'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"rate", required_argument, NULL, 'R'},
	    {"busy", no_argument, NULL, 'b'},
	    {"server-pid", required_argument, NULL, 'P'},
	    {"keyspace", required_argument, NULL, 'k'},
	    {"no-fill", no_argument, NULL, 'F'},
	    {"key-order", required_argument, NULL, 'O'},
	    {"key-start", required_argument, NULL, 'K'},
	    {"path", required_argument, NULL, 'u'},
	    {"timeout", required_argument, NULL, 't'},
	    {"cdf", required_argument, NULL, 'C'},
	    {"seed", required_argument, NULL, 'S'},
	    {"json", no_argument, NULL, 'j'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int o;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'c':
			parse_connect(optarg);
			break;
		case 'm':
			parse_mode(optarg);
			break;
		case 'n':
			opt.conns = (unsigned)parse_range("--conns", optarg, 1, MAX_CONNS, false);
			break;
		case 'p':
			opt.depth =
			    (unsigned)parse_range("--pipeline", optarg, 1, MAX_DEPTH, false);
			break;
		case 's':
			opt.size = parse_range("--size", optarg, 1, MAX_SIZE, true);
			break;
		case 'd':
			opt.duration = parse_secs("--duration", optarg, false);
			break;
		case 'r':
			opt.requests = parse_range("--requests", optarg, 1, UINT64_MAX / 2, true);
			break;
		case 'w':
			opt.warmup = parse_secs("--warmup", optarg, true);
			break;
		case 'R':
			parse_rate(optarg);
			break;
		case 'b':
			opt.busy = true;
			break;
		case 'P':
			parse_pid(optarg);
			break;
		case 'k':
			opt.keyspace =
			    (uint32_t)parse_range("--keyspace", optarg, 1, UINT32_MAX, true);
			break;
		case 'F':
			opt.no_fill = true;
			break;
		case 'O':
			if (!strcmp(optarg, "seq"))
				opt.key_seq = true;
			else if (!strcmp(optarg, "uniform"))
				opt.key_seq = false;
			else
				usage_error("--key-order: expected uniform or seq, got '%s'",
				            optarg);
			break;
		case 'K':
			opt.key_start =
			    (uint32_t)parse_range("--key-start", optarg, 0, UINT32_MAX - 1, true);
			break;
		case 'u':
			if (optarg[0] != '/' || strpbrk(optarg, " \r\n"))
				usage_error("--path: expected an absolute URL path, got '%s'",
				            optarg);
			opt.path = optarg;
			break;
		case 't':
			opt.timeout = parse_secs("--timeout", optarg, false);
			break;
		case 'C':
			opt.cdf = optarg;
			break;
		case 'S':
			opt.seed = parse_range("--seed", optarg, 0, UINT64_MAX, false);
			break;
		case 'j':
			opt.json = true;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs("paste-bench: try --help\n", stderr);
			exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!opt.target)
		usage_error("--connect IP:PORT is required");
	if (opt.key_start >= opt.keyspace)
		usage_error("--key-start %" PRIu32 " must be below --keyspace %" PRIu32,
		            opt.key_start, opt.keyspace);
}

/* ---- the run's state ---------------------------------------------------------------------- */

enum phase { PH_CONNECT, PH_FILL, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };
static const char *const phase_names[] = {"connect", "fill", "warmup", "measure", "drain", "done"};

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
static const char *const err_names[] = {"status", "seq", "value", "conn", "protocol", "timeout"};

static struct {
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
} S;

static volatile sig_atomic_t stop_signal;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static uint64_t mix64(uint64_t x)
{
	/* splitmix64 finalizer */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

static void note(enum err e, const struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Count an error of class @e and describe the first few. */
static void note(enum err e, const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	S.err[e]++;
	if (opt.quiet || ++S.n_msgs > MAX_MSGS) {
		if (!opt.quiet && S.n_msgs == MAX_MSGS + 1)
			fprintf(stderr, "paste-bench: (further error messages suppressed)\n");
		return;
	}
	fprintf(stderr, "paste-bench: %s error", err_names[e]);
	if (c)
		fprintf(stderr, " on conn %u (request %" PRIu64 ")", c->id, c->n_req - c->q_n + 1);
	fputs(": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t errors_total(void)
{
	uint64_t n = 0;
	for (unsigned e = 0; e < E_MAX; e++)
		n += S.err[e];
	return n;
}

/* ---- payloads ----------------------------------------------------------------------------- */

/* Write @v as exactly @width decimal digits (leading zeros, high digits dropped). */
static void put_digits(char *dst, unsigned width, uint64_t v)
{
	while (width--) {
		dst[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

static void key_make(uint32_t k, char *dst)
{
	memcpy(dst, "key:", 4);
	put_digits(dst + 4, KEY_LEN - 4, k);
}

/* The value of key @k: "v:" and k in 14 digits, then a slice of the pattern chosen by k. */
static void value_make(uint32_t k, uint8_t *dst)
{
	const uint8_t *src = S.pat + k % PAT_SLIDE;

	if (opt.size < TAG_LEN) {
		memcpy(dst, src, opt.size);
		return;
	}
	dst[0] = 'v';
	dst[1] = ':';
	put_digits((char *)dst + 2, TAG_LEN - 2, k);
	memcpy(dst + TAG_LEN, src + TAG_LEN, opt.size - TAG_LEN);
}

static bool value_ok(uint32_t k, const uint8_t *p)
{
	const uint8_t *src = S.pat + k % PAT_SLIDE;
	char tag[TAG_LEN];

	if (opt.size < TAG_LEN)
		return !memcmp(p, src, opt.size);
	tag[0] = 'v';
	tag[1] = ':';
	put_digits(tag + 2, TAG_LEN - 2, k);
	return !memcmp(p, tag, TAG_LEN) && !memcmp(p + TAG_LEN, src + TAG_LEN, opt.size - TAG_LEN);
}

/* Largest request of the mode, in bytes. */
static size_t request_max(void)
{
	switch (opt.mode) {
	case M_ECHO:
		return opt.size;
	case M_HTTP_POST:
		return S.http_head_len + opt.size;
	default:
		return 4 + 9 + 5 + KEY_LEN + S.set_mid_len + opt.size + 2; /* the SET */
	}
}

static int payload_init(void)
{
	uint64_t s = opt.seed ^ 0x5851f42d4c957f2dull;
	size_t len = opt.size + PAT_SLIDE;

	S.pat = malloc(len);
	if (!S.pat)
		return -1;
	for (size_t i = 0; i < len; i++)
		S.pat[i] = (uint8_t)rng_next(&s);
	if (opt.mode == M_HTTP_POST) {
		int n = asprintf(&S.http_head,
		                 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: "
		                 "application/octet-stream\r\nContent-Length: %" PRIu64 "\r\n\r\n",
		                 opt.path, opt.target, opt.size);
		if (n < 0)
			return -1;
		S.http_head_len = (size_t)n;
	}
	S.set_mid_len =
	    (size_t)snprintf(S.set_mid, sizeof(S.set_mid), "\r\n$%" PRIu64 "\r\n", opt.size);
	return 0;
}

/* Append request @kind for @key to the connection's send buffer. */
static void request_build(struct conn *c, enum kind kind, uint32_t key)
{
	uint8_t *p = c->tx + c->tx_len;

	switch (kind) {
	case K_ECHO:
		memcpy(p, S.pat + key, opt.size);
		p += opt.size;
		break;
	case K_POST:
		memcpy(p, S.http_head, S.http_head_len);
		memcpy(p + S.http_head_len, S.pat + key, opt.size);
		p += S.http_head_len + opt.size;
		break;
	case K_SET:
		memcpy(p, "*3\r\n$3\r\nSET\r\n$16\r\n", 18);
		key_make(key, (char *)p + 18);
		p += 18 + KEY_LEN;
		memcpy(p, S.set_mid, S.set_mid_len);
		p += S.set_mid_len;
		value_make(key, p);
		memcpy(p + opt.size, "\r\n", 2);
		p += opt.size + 2;
		break;
	case K_GET:
		memcpy(p, "*2\r\n$3\r\nGET\r\n$16\r\n", 18);
		key_make(key, (char *)p + 18);
		memcpy(p + 18 + KEY_LEN, "\r\n", 2);
		p += 18 + KEY_LEN + 2;
		break;
	}
	c->tx_len = (size_t)(p - c->tx);
}

/* ---- connections -------------------------------------------------------------------------- */

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->up)
		S.up--;
	c->up = false;
	S.outstanding -= c->q_n;
	c->q_n = 0;
}

static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_fail(struct conn *c, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	note(E_CONN, c, "%s", msg);
	conn_close(c);
}

static void conn_events(struct conn *c, bool out)
{
	struct epoll_event e = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

	if (c->want_out == out)
		return;
	c->want_out = out;
	if (epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
		conn_fail(c, "epoll_ctl: %s", strerror(errno));
}

/* Hand the send buffer to the socket; wait for EPOLLOUT if it takes only part. */
static void conn_flush(struct conn *c)
{
	while (c->up && c->tx_off < c->tx_len) {
		ssize_t w = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				conn_events(c, true);
				return;
			}
			conn_fail(c, "send: %s", strerror(errno));
			return;
		}
		c->tx_off += (size_t)w;
	}
	if (c->up) {
		c->tx_off = c->tx_len = 0;
		conn_events(c, false);
	}
}

/* Which request comes next, if one may be sent now: false when none. */
static bool next_request(struct conn *c, enum kind *kind, uint32_t *key)
{
	switch (S.phase) {
	case PH_FILL:
		if (S.fill_next >= opt.keyspace)
			return false;
		*kind = K_SET;
		*key = S.fill_next++;
		return true;
	case PH_WARMUP:
	case PH_MEASURE:
		break;
	default:
		return false;
	}
	if (S.phase == PH_MEASURE && opt.requests && S.issued >= opt.requests)
		return false;
	switch (opt.mode) {
	case M_ECHO:
	case M_HTTP_POST:
		*kind = opt.mode == M_ECHO ? K_ECHO : K_POST;
		*key = (uint32_t)((c->id * 131u + c->n_req * 17u) % PAT_SLIDE);
		break;
	default:
		*kind = opt.mode == M_RESP_SET ? K_SET : K_GET;
		if (opt.key_seq)
			*key = (uint32_t)((opt.key_start + S.seq_next++) % opt.keyspace);
		else
			*key = (uint32_t)(rng_next(&c->rng) % opt.keyspace);
		break;
	}
	return true;
}

/* Queue as many requests as the connection may have in flight (closed loop), or as are due
 * (open loop), then send them. */
static void conn_pump(struct conn *c, uint64_t now)
{
	bool open = opt.rate > 0 && (S.phase == PH_WARMUP || S.phase == PH_MEASURE);
	enum kind kind;
	uint32_t key;

	unsigned limit = S.phase == PH_FILL ? FILL_DEPTH : opt.depth;

	while (c->up && c->q_n < limit) {
		uint64_t t = now;
		if (open) {
			if (c->next_due > now)
				break;
			t = c->next_due;
			if (S.phase == PH_MEASURE && !opt.requests && t >= S.t_end)
				break;
		}
		if (!next_request(c, &kind, &key))
			break;
		if (open)
			c->next_due += S.interval;
		struct pending *p = &c->q[(c->q_head + c->q_n) % c->q_cap];
		*p = (struct pending){.t = t, .key = key, .kind = (uint8_t)kind};
		p->measured = S.phase == PH_MEASURE && t >= S.t_start;
		S.issued += p->measured;
		if (S.outstanding == 0)
			S.t_heard = now;
		c->q_n++;
		c->n_req++;
		S.outstanding++;
		request_build(c, kind, key);
	}
	conn_flush(c);
}

static int conn_alloc(struct conn *c, unsigned id)
{
	c->fd = -1;
	c->id = id;
	c->q_cap = opt.depth > FILL_DEPTH ? opt.depth : FILL_DEPTH;
	c->tx_cap = (size_t)c->q_cap * request_max() + 64;
	c->rx_cap = RX_MIN + (opt.mode == M_ECHO ? 0 : opt.size);
	c->tx = malloc(c->tx_cap);
	c->rx = malloc(c->rx_cap);
	c->q = calloc(c->q_cap, sizeof(*c->q));
	c->rng = mix64((opt.seed << 20) ^ id);
	return c->tx && c->rx && c->q ? 0 : -1;
}

static int conn_start(struct conn *c)
{
	struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "paste-bench: socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->want_out = true;
	if (epoll_ctl(S.ep, EPOLL_CTL_ADD, c->fd, &e) < 0) {
		fprintf(stderr, "paste-bench: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) < 0 &&
	    errno != EINPROGRESS) {
		S.failed_connect++;
		conn_fail(c, "connect to %s: %s", opt.target, strerror(errno));
	}
	return 0;
}

static void on_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		S.failed_connect++;
		conn_fail(c, "connect to %s: %s", opt.target, strerror(err));
		return;
	}
	c->up = true;
	S.up++;
	conn_events(c, false);
}

/* ---- replies ------------------------------------------------------------------------------ */

/* Parse an unsigned decimal of at most 19 digits at p[0..n); -1 if none. */
static int64_t parse_dec(const uint8_t *p, size_t n, size_t *used)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && i < 19 && p[i] >= '0' && p[i] <= '9')
		v = v * 10 + (uint64_t)(p[i++] - '0');
	*used = i;
	return i ? (int64_t)v : -1;
}

/* Header @name (lower case, with ':') on the line [p, e)? Then its value's start. */
static const uint8_t *header_value(const uint8_t *p, const uint8_t *e, const char *name)
{
	size_t n = strlen(name);

	if ((size_t)(e - p) < n || strncasecmp((const char *)p, name, n))
		return NULL;
	p += n;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* One HTTP reply at the start of p[0..n): its length, 0 if incomplete, -1 if malformed. */
static ssize_t http_reply(struct conn *c, const uint8_t *p, size_t n, int *status, int64_t *seq)
{
	const uint8_t *end = memmem(p, n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX, "\r\n\r\n", 4);
	int64_t clen = -1;
	size_t used;

	if (!end)
		return n >= HTTP_HEAD_MAX ? -1 : 0;
	if (n < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ')
		return -1;
	*status = (int)parse_dec(p + 9, 3, &used);
	*seq = -1;
	/* Every line of the head, the status line included, ends in CRLF at or before end + 2. */
	for (const uint8_t *l = (const uint8_t *)memmem(p, (size_t)(end + 2 - p), "\r\n", 2) + 2;
	     l < end + 2;) {
		const uint8_t *le = memmem(l, (size_t)(end + 2 - l), "\r\n", 2), *v;
		if ((v = header_value(l, le, "content-length:")))
			clen = parse_dec(v, (size_t)(le - v), &used);
		else if ((v = header_value(l, le, "x-seq:")))
			*seq = parse_dec(v, (size_t)(le - v), &used);
		l = le + 2;
	}
	size_t head = (size_t)(end + 4 - p);
	if (clen < 0 || (uint64_t)clen > c->rx_cap - head)
		return -1;
	if (n < head + (size_t)clen)
		return 0;
	if (*seq < 0) { /* {"seq":N} in the body */
		const uint8_t *b = memmem(end + 4, (size_t)clen, "\"seq\":", 6);
		if (b)
			*seq = parse_dec(b + 6, (size_t)(p + head + clen - b - 6), &used);
	}
	return (ssize_t)(head + (size_t)clen);
}

/* One RESP2 reply: its length, 0 if incomplete, -1 if malformed. *bulk is the bulk length
 * ('$' replies, -1 for a nil), *line the first line's end. */
static ssize_t resp_reply(const uint8_t *p, size_t n, int64_t *bulk, size_t *line, size_t cap)
{
	const uint8_t *nl = memchr(p, '\n', n < 1024 ? n : 1024);
	size_t used;

	if (!nl)
		return n >= 1024 ? -1 : 0;
	if (nl == p || nl[-1] != '\r')
		return -1;
	*line = (size_t)(nl - p) + 1;
	switch (p[0]) {
	case '+':
	case '-':
	case ':':
		return (ssize_t)*line;
	case '$':
		if (p[1] == '-' && p[2] == '1' && *line == 5) {
			*bulk = -1;
			return 5;
		}
		*bulk = parse_dec(p + 1, *line - 3, &used);
		if (*bulk < 0 || used != *line - 3 || (uint64_t)*bulk + *line + 2 > cap)
			return -1;
		if (n < *line + (uint64_t)*bulk + 2)
			return 0;
		return (ssize_t)(*line + (size_t)*bulk + 2);
	default:
		return -1;
	}
}

/* A reply to @q has arrived: record its latency. */
static void complete(struct conn *c, const struct pending *q, uint64_t now)
{
	uint64_t lat = now > q->t ? now - q->t : 0;

	c->q_head = (c->q_head + 1) % c->q_cap;
	c->q_n--;
	S.outstanding--;
	S.t_heard = now;
	S.p_n++;
	S.p_sum += lat;
	if (lat > S.p_max)
		S.p_max = lat;
	if (q->measured) {
		h_add(&S.h, lat);
		S.measured++;
		S.t_last = now;
	}
}

/* Check the HTTP reply to @q. */
static void check_http(struct conn *c, int status, int64_t seq)
{
	if (status != 201) {
		note(E_STATUS, c, "HTTP status %d, expected 201", status);
		return;
	}
	if (seq < 0) {
		note(E_PROTO, c, "201 without a sequence number (X-Seq or {\"seq\":N})");
		return;
	}
	if ((uint64_t)seq <= c->last_seq)
		note(E_SEQ, c, "seq %" PRId64 " after %" PRIu64 " on the same connection", seq,
		     c->last_seq);
	c->last_seq = (uint64_t)seq;
}

/* Check the RESP reply @p (@len bytes, first line @line bytes) to @q. */
static void check_resp(struct conn *c, const struct pending *q, const uint8_t *p, size_t line,
                       int64_t bulk)
{
	if (p[0] == '-') {
		note(E_STATUS, c, "%s: %.*s", q->kind == K_SET ? "SET" : "GET", (int)line - 2, p);
		return;
	}
	if (q->kind == K_SET) {
		if (line != 5 || memcmp(p, "+OK", 3))
			note(E_PROTO, c, "SET: expected +OK, got %.*s", (int)line - 2, p);
		return;
	}
	if (p[0] != '$')
		note(E_PROTO, c, "GET: expected a bulk string, got %.*s", (int)line - 2, p);
	else if (bulk < 0)
		note(E_VALUE, c, "GET key:%012u: nil (the key was SET before)", q->key);
	else if ((uint64_t)bulk != opt.size)
		note(E_VALUE, c, "GET key:%012u: %" PRId64 " bytes, expected %" PRIu64, q->key,
		     bulk, opt.size);
	else if (!value_ok(q->key, p + line))
		note(E_VALUE, c, "GET key:%012u: value differs from the one SET", q->key);
}

/* Verify echoed bytes against the requests in flight; complete each one whose echo is whole. */
static size_t take_echo(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
	size_t done = 0;

	while (done < n && c->q_n) {
		const struct pending *q = &c->q[c->q_head];
		size_t k = opt.size - c->echo_done;
		if (k > n - done)
			k = n - done;
		if (memcmp(p + done, S.pat + q->key + c->echo_done, k)) {
			size_t i = 0;
			while (p[done + i] == S.pat[q->key + c->echo_done + i])
				i++;
			note(E_VALUE, c,
			     "echo byte %" PRIu64 " of the reply is 0x%02x, sent 0x%02x",
			     c->echo_done + i, p[done + i], S.pat[q->key + c->echo_done + i]);
			conn_close(c);
			return n;
		}
		done += k;
		c->echo_done += k;
		if (c->echo_done == opt.size) {
			c->echo_done = 0;
			complete(c, q, now);
		}
	}
	if (done < n) {
		note(E_PROTO, c, "%zu bytes more than were sent", n - done);
		conn_close(c);
		return n;
	}
	return done;
}

/* Take every whole reply at the start of the receive buffer; return the bytes used. */
static size_t take_replies(struct conn *c, uint64_t now)
{
	const uint8_t *p = c->rx;
	size_t n = c->rx_len, used = 0;

	if (opt.mode == M_ECHO)
		return take_echo(c, p, n, now);
	while (c->up && used < n) {
		const struct pending *q = &c->q[c->q_head];
		int64_t seq = -1, bulk = 0;
		size_t line = 0;
		int status = 0;
		ssize_t r;
		if (!c->q_n) {
			note(E_PROTO, c, "%zu bytes without a request in flight", n - used);
			conn_close(c);
			return n;
		}
		if (q->kind == K_POST)
			r = http_reply(c, p + used, n - used, &status, &seq);
		else
			r = resp_reply(p + used, n - used, &bulk, &line, c->rx_cap);
		if (r == 0)
			break;
		if (r < 0) {
			note(E_PROTO, c, "malformed reply: %.*s",
			     (int)((n - used) < 60 ? n - used : 60), p + used);
			conn_close(c);
			return n;
		}
		if (q->kind == K_POST)
			check_http(c, status, seq);
		else
			check_resp(c, q, p + used, line, bulk);
		complete(c, q, now);
		used += (size_t)r;
	}
	return used;
}

static void on_readable(struct conn *c)
{
	ssize_t r = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);

	if (r == 0) {
		conn_fail(c, "the server closed the connection with %u request(s) in flight",
		          c->q_n);
		return;
	}
	if (r < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			conn_fail(c, "recv: %s", strerror(errno));
		return;
	}
	c->rx_len += (size_t)r;
	size_t used = take_replies(c, now_ns());
	if (!c->up)
		return;
	c->rx_len -= used;
	if (c->rx_len && used)
		memmove(c->rx, c->rx + used, c->rx_len);
	if (opt.rate == 0 || S.phase == PH_FILL)
		conn_pump(c, now_ns());
}

static void on_event(struct conn *c, uint32_t ev)
{
	if (c->fd < 0)
		return;
	if (!c->up) {
		on_connected(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(c);
	if (c->up && (ev & EPOLLOUT))
		conn_flush(c);
}

/* ---- CPU time ----------------------------------------------------------------------------- */

/* utime + stime of the server, in clock ticks; false if it cannot be read. */
static bool server_ticks(uint64_t *ticks)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", opt.server_pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	/* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
	 */
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return false;
	*ticks = ut + st;
	return true;
}

/* Busy (all but idle and iowait) and softirq ticks of the whole machine, from /proc/stat. */
static bool host_ticks(uint64_t t[2])
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return false;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
	           &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 7)
		return false;
	/* user nice system idle iowait irq softirq steal */
	t[0] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	t[1] = v[6];
	return true;
}

static double client_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- phases and the loop ------------------------------------------------------------------ */

static void pump_all(uint64_t now)
{
	for (unsigned i = 0; i < opt.conns; i++)
		if (S.c[i].up)
			conn_pump(&S.c[i], now);
}

static void phase_enter(enum phase ph, uint64_t now)
{
	S.phase = ph;
	S.t_phase = now;
	if (ph == PH_WARMUP || (ph == PH_MEASURE && opt.warmup == 0)) {
		for (unsigned i = 0; i < opt.conns; i++) /* open loop: start the schedule */
			S.c[i].next_due =
			    now + (uint64_t)((double)i * 1e9 / (opt.rate > 0 ? opt.rate : 1));
	}
	if (ph == PH_MEASURE) {
		S.t_start = S.t_last = now;
		S.t_end = now + (uint64_t)(opt.duration * 1e9);
		h_reset(&S.h);
		S.srv_ok = opt.server_pid && server_ticks(&S.srv_ticks0);
		S.cli_cpu0 = client_cpu();
		S.host_ok = host_ticks(S.host0);
	}
	if (ph == PH_DONE) {
		if (S.srv_ok)
			S.srv_ok = server_ticks(&S.srv_ticks1);
		S.cli_cpu1 = client_cpu();
		S.host_ok = S.host_ok && host_ticks(S.host1);
	}
	if (ph == PH_FILL || ph == PH_WARMUP || ph == PH_MEASURE)
		pump_all(now);
}

/* Open loop: requests due but never sent by the end of the interval. */
static void count_missed(void)
{
	for (unsigned i = 0; opt.rate > 0 && !opt.requests && i < opt.conns; i++) {
		const struct conn *c = &S.c[i];
		if (c->next_due < S.t_end)
			S.missed += (S.t_end - c->next_due + S.interval - 1) / S.interval;
	}
}

/* Move to the next phase when the current one is over. */
static void phase_step(uint64_t now)
{
	switch (S.phase) {
	case PH_CONNECT:
		if (S.up + S.failed_connect == opt.conns && S.up > 0)
			phase_enter(opt.mode == M_RESP_GET && !opt.no_fill ? PH_FILL
			            : opt.warmup > 0                       ? PH_WARMUP
			                                                   : PH_MEASURE,
			            now);
		else if (S.failed_connect == opt.conns ||
		         now - S.t_phase > (uint64_t)(opt.timeout * 1e9))
			phase_enter(PH_DONE, now);
		break;
	case PH_FILL:
		if (S.fill_next >= opt.keyspace && S.outstanding == 0)
			phase_enter(opt.warmup > 0 ? PH_WARMUP : PH_MEASURE, now);
		break;
	case PH_WARMUP:
		if (now - S.t_phase >= (uint64_t)(opt.warmup * 1e9))
			phase_enter(PH_MEASURE, now);
		break;
	case PH_MEASURE:
		if (opt.requests ? S.issued >= opt.requests : now >= S.t_end) {
			if (opt.rate > 0)
				pump_all(now); /* whatever was due before the end */
			count_missed();
			phase_enter(PH_DRAIN, now);
		}
		break;
	case PH_DRAIN:
		if (S.outstanding == 0)
			phase_enter(PH_DONE, now);
		else if (now - S.t_phase > (uint64_t)(opt.timeout * 1e9)) {
			note(E_TIMEOUT, NULL,
			     "%" PRIu64 " request(s) unanswered %.1f s after the end",
			     S.outstanding, opt.timeout);
			phase_enter(PH_DONE, now);
		}
		break;
	case PH_DONE:
		break;
	}
	if (S.phase != PH_CONNECT && S.phase != PH_DONE && S.phase != PH_DRAIN && S.outstanding &&
	    now - S.t_heard > (uint64_t)(opt.timeout * 1e9)) {
		note(E_TIMEOUT, NULL, "no reply for %.1f s with %" PRIu64 " request(s) in flight",
		     opt.timeout, S.outstanding);
		phase_enter(PH_DONE, now);
	}
	if (S.phase != PH_CONNECT && S.phase != PH_DONE && S.up == 0) {
		note(E_CONN, NULL, "no connection left");
		phase_enter(PH_DONE, now);
	}
}

static void progress(uint64_t now)
{
	if (now < S.p_next)
		return;
	if (!opt.quiet && S.phase != PH_CONNECT)
		fprintf(stderr,
		        "paste-bench: %-7s %6.1fs %9" PRIu64 " rep/s  mean %8.1f us  max %9.1f us  "
		        "errors %" PRIu64 "\n",
		        phase_names[S.phase], (double)(now - S.t_phase) / 1e9, S.p_n,
		        S.p_n ? (double)S.p_sum / (double)S.p_n / 1e3 : 0.0, (double)S.p_max / 1e3,
		        errors_total());
	S.p_n = S.p_sum = S.p_max = 0;
	S.p_next = now + NS;
}

/* How long epoll may sleep: until the next phase deadline, progress line or due request. */
static int64_t wait_ns(uint64_t now)
{
	uint64_t until = S.p_next;

	if (opt.busy)
		return 0;
	if (S.phase == PH_WARMUP && S.t_phase + (uint64_t)(opt.warmup * 1e9) < until)
		until = S.t_phase + (uint64_t)(opt.warmup * 1e9);
	if (S.phase == PH_MEASURE && !opt.requests && S.t_end < until)
		until = S.t_end;
	if (opt.rate > 0 && (S.phase == PH_WARMUP || S.phase == PH_MEASURE))
		for (unsigned i = 0; i < opt.conns; i++)
			if (S.c[i].up && S.c[i].q_n < opt.depth && S.c[i].next_due < until)
				until = S.c[i].next_due;
	return until > now ? (int64_t)(until - now) : 0;
}

static int run(void)
{
	struct epoll_event evs[MAX_EVENTS];

	S.ep = epoll_create1(EPOLL_CLOEXEC);
	if (S.ep < 0)
		return perror("paste-bench: epoll_create1"), -1;
	S.interval = opt.rate > 0 ? (uint64_t)((double)opt.conns * 1e9 / opt.rate) : 0;
	if (opt.rate > 0 && S.interval == 0)
		S.interval = 1;
	S.t_phase = now_ns();
	S.p_next = S.t_phase + NS;
	for (unsigned i = 0; i < opt.conns; i++)
		if (conn_start(&S.c[i]) < 0)
			return -1;
	while (S.phase != PH_DONE) {
		uint64_t now = now_ns();
		if (stop_signal > 1) /* a second signal: stop waiting for replies */
			phase_enter(PH_DONE, now);
		else if (stop_signal && S.phase < PH_DRAIN) {
			S.t_end = now;
			phase_enter(S.phase == PH_MEASURE ? PH_DRAIN : PH_DONE, now);
		}
		phase_step(now);
		if (opt.rate > 0 && (S.phase == PH_WARMUP || S.phase == PH_MEASURE))
			pump_all(now);
		progress(now);
		int64_t w = wait_ns(now);
		struct timespec ts = {.tv_sec = w / (int64_t)NS, .tv_nsec = w % (int64_t)NS};
		int n = epoll_pwait2(S.ep, evs, MAX_EVENTS, &ts, NULL);
		if (n < 0 && errno != EINTR)
			return perror("paste-bench: epoll_pwait2"), -1;
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
	}
	return 0;
}

/* ---- results ------------------------------------------------------------------------------ */

struct result {
	double secs, rps, mbps, cli_us, srv_us, srv_util, host_us, softirq_us;
	double lat[7]; /* min p50 p90 p99 p99.9 max mean, microseconds */
};

static void result_make(struct result *r)
{
	static const double pcts[] = {50, 90, 99, 99.9};
	double tick = (double)sysconf(_SC_CLK_TCK);

	memset(r, 0, sizeof(*r));
	r->secs = (double)(S.t_last - S.t_start) / 1e9;
	if (r->secs > 0) {
		r->rps = (double)S.measured / r->secs;
		r->mbps = r->rps * (double)opt.size / 1e6;
	}
	r->lat[0] = S.h.n ? (double)S.h.min / 1e3 : 0;
	for (unsigned i = 0; i < 4; i++)
		r->lat[1 + i] = (double)h_percentile(&S.h, pcts[i]) / 1e3;
	r->lat[5] = (double)S.h.max / 1e3;
	r->lat[6] = S.h.n ? S.h.sum / (double)S.h.n / 1e3 : 0;
	if (S.measured) {
		r->cli_us = (S.cli_cpu1 - S.cli_cpu0) * 1e6 / (double)S.measured;
		if (S.host_ok) {
			r->host_us =
			    (double)(S.host1[0] - S.host0[0]) / tick * 1e6 / (double)S.measured;
			r->softirq_us =
			    (double)(S.host1[1] - S.host0[1]) / tick * 1e6 / (double)S.measured;
		}
		if (S.srv_ok) {
			double s = (double)(S.srv_ticks1 - S.srv_ticks0) / tick;
			r->srv_us = s * 1e6 / (double)S.measured;
			r->srv_util = r->secs > 0 ? s / r->secs : 0;
		}
	}
}

static void print_text(const struct result *r)
{
	printf("paste-bench: %s %s, %u conn(s) x pipeline %u, %" PRIu64 " B, %s, %s\n",
	       mode_names[opt.mode], opt.target, opt.conns, opt.depth, opt.size,
	       opt.rate > 0 ? "open loop" : "closed loop", opt.busy ? "busy" : "blocking");
	printf("requests   %" PRIu64 " in %.3f s: %.1f req/s, %.2f MB/s\n", S.measured, r->secs,
	       r->rps, r->mbps);
	if (opt.rate > 0)
		printf("open loop  %.1f req/s offered, %" PRIu64 " due requests never sent\n",
		       opt.rate, S.missed);
	printf("latency us min %.1f p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f mean %.1f\n",
	       r->lat[0], r->lat[1], r->lat[2], r->lat[3], r->lat[4], r->lat[5], r->lat[6]);
	printf("cpu        client %.2f us/req", r->cli_us);
	if (S.srv_ok)
		printf(", server %.2f us/req (%.0f %% of a core)", r->srv_us, r->srv_util * 100);
	else if (opt.server_pid)
		printf(", server: /proc/%ld/stat unreadable at the end", opt.server_pid);
	if (S.host_ok)
		printf("\nhost cpu   %.2f us/req busy, %.2f us/req softirq (whole machine)",
		       r->host_us, r->softirq_us);
	printf("\nerrors     %" PRIu64, errors_total());
	for (unsigned e = 0; e < E_MAX; e++)
		printf(" %s=%" PRIu64, err_names[e], S.err[e]);
	putchar('\n');
}

static void print_json(const struct result *r)
{
	static const char *const lat_names[] = {"min", "p50", "p90", "p99", "p99_9", "max", "mean"};

	printf("{\"mode\":\"%s\",\"target\":\"%s\",\"conns\":%u,\"pipeline\":%u,\"size\":%" PRIu64
	       ",\"loop\":\"%s\",\"rate\":%.1f,\"busy\":%s,",
	       mode_names[opt.mode], opt.target, opt.conns, opt.depth, opt.size,
	       opt.rate > 0 ? "open" : "closed", opt.rate, opt.busy ? "true" : "false");
	printf("\"requests\":%" PRIu64
	       ",\"seconds\":%.6f,\"rps\":%.1f,\"mbps\":%.3f,\"missed\":%" PRIu64
	       ",\"latency_us\":{",
	       S.measured, r->secs, r->rps, r->mbps, S.missed);
	for (unsigned i = 0; i < 7; i++)
		printf("%s\"%s\":%.2f", i ? "," : "", lat_names[i], r->lat[i]);
	printf("},\"client_cpu_us_per_req\":%.3f,", r->cli_us);
	if (S.srv_ok)
		printf("\"server_cpu_us_per_req\":%.3f,\"server_cpu_util\":%.4f,", r->srv_us,
		       r->srv_util);
	else
		printf("\"server_cpu_us_per_req\":null,\"server_cpu_util\":null,");
	if (S.host_ok)
		printf("\"host_cpu_us_per_req\":%.3f,\"host_softirq_us_per_req\":%.3f,", r->host_us,
		       r->softirq_us);
	printf("\"errors\":{\"total\":%" PRIu64, errors_total());
	for (unsigned e = 0; e < E_MAX; e++)
		printf(",\"%s\":%" PRIu64, err_names[e], S.err[e]);
	printf("}}\n");
}

/* Cumulative distribution: one line per non-empty bucket, "usec fraction". */
static int write_cdf(const char *path)
{
	FILE *f = fopen(path, "w");
	uint64_t seen = 0;

	if (!f)
		return -1;
	fprintf(f, "# latency_us fraction_at_or_below (paste-bench %s, %" PRIu64 " requests)\n",
	        mode_names[opt.mode], S.h.n);
	for (unsigned i = 0; i < H_BUCKETS && S.h.n; i++) {
		if (!S.h.c[i])
			continue;
		seen += S.h.c[i];
		fprintf(f, "%.3f %.6f\n", (double)h_value(&S.h, i) / 1e3,
		        (double)seen / (double)S.h.n);
	}
	return fclose(f);
}

/* ---- main --------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	stop_signal++;
}

static void raise_fd_limit(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = need <= rl.rlim_max ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	struct result r;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	raise_fd_limit(opt.conns + 32);
	h_reset(&S.h);
	S.c = calloc(opt.conns, sizeof(*S.c));
	if (!S.c || payload_init() < 0) {
		perror("paste-bench: out of memory");
		return 1;
	}
	for (unsigned i = 0; i < opt.conns; i++)
		if (conn_alloc(&S.c[i], i) < 0) {
			perror("paste-bench: out of memory");
			return 1;
		}
	if (run() < 0)
		return 1;
	if (S.t_start == 0)
		note(E_CONN, NULL, "%u of %u connection(s) up after %.1f s: nothing measured", S.up,
		     opt.conns, opt.timeout);
	result_make(&r);
	if (opt.json)
		print_json(&r);
	else
		print_text(&r);
	if (opt.cdf && write_cdf(opt.cdf) < 0) {
		fprintf(stderr, "paste-bench: %s: %s\n", opt.cdf, strerror(errno));
		return 1;
	}
	return errors_total() ? 1 : 0;
}
