/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_opts.c - paste-bench's options: the manual (--help), parsing and checking the command line.
 */
#define _GNU_SOURCE
#include "bench.h"

const char *const mode_names[] = {"echo", "http-post", "resp-set", "resp-get"};

struct bench_opt opt = {
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

void parse_args(int argc, char **argv)
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
