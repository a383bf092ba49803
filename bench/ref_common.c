/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ref_common.c - options, log file, drain, routing and replies of the reference WAL servers
 * (see ref_common.h for what they are and why they exist).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libpmem.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ref_common.h"

volatile int ref_stop;

const char ref_opts_help[] =
    "  --ip ADDR          listen on this IPv4 address (default: every address)\n"
    "  --port N           TCP port (default 80)\n"
    "  --pool PATH        the log file to create, e.g. /dev/shm/ref.pool; it must not exist\n"
    "                     (required). Mapped with libpmem (pmem_map_file) and pre-faulted.\n"
    "  --pool-size SIZE   its size, with an optional K/M/G suffix (default 1G, at least 16M).\n"
    "                     The log is a ring: when full it wraps and overwrites the oldest\n"
    "                     records (a benchmark baseline, not a product: no recovery program).\n"
    "  --busy-poll        never sleep in the kernel: spin on the event source with a zero\n"
    "                     timeout, and set SO_BUSY_POLL (50 us) on every connection\n"
    "  --help             this text\n"
    "\n"
    "Environment:\n"
    "  PASTE_EMU_FENCE_NS  emulated media latency: spin this many nanoseconds after every\n"
    "                      drain (the slow-media experiment of issue 15; paste-wal takes the\n"
    "                      same value from --fence-delay or this variable)\n"
    "  PASTE_EMU_LINE_NS   emulated media latency per flushed cache line: every line the\n"
    "                      batch wrote back adds this many nanoseconds to its drain's spin\n"
    "                      (the pool of paste-wal reads the same variable)\n"
    "\n"
    "Protocol (the same as paste-wal's, for paste-bench --mode http-post):\n"
    "  POST /log          body (Content-Length, at most 8192 bytes) appended; after the\n"
    "                     batch's drain: 201 Created, X-Seq and Location headers, {\"seq\":N}\n"
    "  DELETE /log        200 (accepted and ignored: the ring overwrites its oldest records)\n"
    "  GET /stats         200 with {\"appended\":N,\"fences\":N,\"next_seq\":N} (fences:\n"
    "                     drains, i.e. batches made durable)\n"
    "  anything else      404 / 405; malformed heads 400 and the connection is closed\n";

static int bad(const struct ref_opts *o, const char *what, const char *arg)
{
	fprintf(stderr, "%s: %s: bad value '%s' (see --help)\n", o->prog, what, arg);
	return 2;
}

static int parse_size(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		n <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		n <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		n <<= 30;
		end++;
		break;
	}
	if (*end)
		return -1;
	*v = n;
	return 0;
}

int ref_opts_parse(struct ref_opts *o, int argc, char **argv, const char *usage)
{
	static const struct option lo[] = {
	    {"ip", required_argument, NULL, 'i'},
	    {"port", required_argument, NULL, 'p'},
	    {"pool", required_argument, NULL, 'f'},
	    {"pool-size", required_argument, NULL, 's'},
	    {"busy-poll", no_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *env = getenv("PASTE_EMU_FENCE_NS");
	uint64_t v;
	int c;

	o->port = 80;
	o->pool_size = 1ull << 30;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->ip = optarg;
			break;
		case 'p':
			if (parse_size(optarg, &v) || v == 0 || v > 65535)
				return bad(o, "--port", optarg);
			o->port = (uint16_t)v;
			break;
		case 'f':
			o->pool = optarg;
			break;
		case 's':
			if (parse_size(optarg, &v) || v < (16u << 20))
				return bad(o, "--pool-size", optarg);
			o->pool_size = v;
			break;
		case 'b':
			o->busy_poll = true;
			break;
		case 'h':
			fputs(usage, stdout);
			fputs(ref_opts_help, stdout);
			exit(0);
		default:
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", o->prog,
		        argv[optind]);
		return 2;
	}
	if (!o->pool) {
		fprintf(stderr,
		        "%s: --pool PATH is required (e.g. /dev/shm/ref.pool; see --help)\n",
		        o->prog);
		return 2;
	}
	if (env && *env) {
		if (parse_size(env, &v) || v > 100000000)
			return bad(o, "PASTE_EMU_FENCE_NS", env);
		o->fence_ns = v;
	}
	env = getenv("PASTE_EMU_LINE_NS");
	if (env && *env) {
		if (parse_size(env, &v) || v > 100000000)
			return bad(o, "PASTE_EMU_LINE_NS", env);
		o->line_ns = v;
	}
	return 0;
}

uint64_t ref_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	ref_stop = 1;
}

void ref_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int ref_log_open(struct ref_log *log, const struct ref_opts *o, const char *layout)
{
	size_t i;

	*log = (struct ref_log){.next_seq = 1, .fence_ns = o->fence_ns, .line_ns = o->line_ns};
	log->base = pmem_map_file(o->pool, o->pool_size, PMEM_FILE_CREATE | PMEM_FILE_EXCL, 0600,
	                          &log->len, &log->is_pmem);
	if (!log->base) {
		int err = errno ? errno : EIO;

		fprintf(stderr, "%s: cannot create the log %s: %s%s\n", o->prog, o->pool,
		        pmem_errormsg(),
		        err == EEXIST ? " (remove it, or give another --pool path)" : "");
		return -err;
	}
	for (i = 0; i < log->len; i += 4096) /* pre-fault: no first-touch faults while measured */
		log->base[i] = 0;
	snprintf((char *)log->base, REF_LOG_DATA_OFF, "%s log v1 (%s)\n", o->prog, layout);
	pmem_persist(log->base, REF_LOG_DATA_OFF);
	return 0;
}

void ref_log_close(struct ref_log *log)
{
	if (log->base)
		pmem_unmap(log->base, log->len);
	log->base = NULL;
}

void ref_log_drain(struct ref_log *log)
{
	pmem_drain();
	/* The slow-media experiment: the medium acknowledges the fence only after fence_ns. */
	if (log->fence_ns || log->lines) {
		uint64_t end = ref_now_ns() + log->fence_ns + log->lines * log->line_ns;

		while (ref_now_ns() < end)
			__builtin_ia32_pause();
	}
	log->lines = 0;
	log->dirty = false;
	log->drains++;
}

int ref_listen(const struct ref_opts *o)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(o->port)};
	int fd, one = 1, err;

	if (o->ip && inet_pton(AF_INET, o->ip, &a.sin_addr) != 1) {
		fprintf(stderr, "%s: --ip: '%s' is not an IPv4 address\n", o->prog, o->ip);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1024)) {
		err = errno;
		fprintf(stderr, "%s: cannot listen on %s:%u: %s\n", o->prog, o->ip ? o->ip : "*",
		        o->port, strerror(err));
		close(fd);
		return -err;
	}
	return fd;
}

void ref_sockopts(const struct ref_opts *o, int fd)
{
	int one = 1, usecs = 50;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->busy_poll)
		setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof(usecs));
}

/* "Date: ..." of the current second, cached (as paste-wal does). */
static const char *http_date(void)
{
	static char buf[64];
	static time_t last;
	time_t t = time(NULL);
	struct tm tm;

	if (t != last) {
		last = t;
		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	}
	return buf;
}

static size_t reply(const struct ref_opts *o, char *out, int status, const char *ctype,
                    const char *extra, const char *body, bool close)
{
	int n = snprintf(out, REF_REPLY_MAX,
	                 "HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\nContent-Type: %s\r\n"
	                 "Content-Length: %zu\r\n%s%s%s",
	                 status, http_reason(status), o->server, http_date(), ctype, strlen(body),
	                 extra, close ? "Connection: close\r\n\r\n" : "\r\n", body);

	return n < 0 ? 0 : (size_t)n < REF_REPLY_MAX ? (size_t)n : REF_REPLY_MAX - 1;
}

/* Decimal digits of @v into @d (no terminator). @return their number. */
static size_t put_u64(char *d, uint64_t v)
{
	char t[20];
	size_t n = 0, i;

	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		d[i] = t[n - 1 - i];
	return n;
}

static char *put(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

size_t ref_reply_created(const struct ref_opts *o, char *out, uint64_t seq, bool close)
{
	char d[20], *p = out;
	size_t nd = put_u64(d, seq);

	/* Pieces, not printf: this runs for every request (paste-wal builds its 201 the same way).
	 */
	p = put(p, "HTTP/1.1 201 Created\r\nServer: ");
	p = put(p, o->server);
	p = put(p, "\r\nDate: ");
	p = put(p, http_date());
	p = put(p, "\r\nContent-Type: application/json\r\nContent-Length: ");
	p += put_u64(p, 9 + nd);
	p = put(p, "\r\nLocation: /log/");
	memcpy(p, d, nd);
	p += nd;
	p = put(p, "\r\nX-Seq: ");
	memcpy(p, d, nd);
	p += nd;
	p = put(p, close ? "\r\nConnection: close\r\n\r\n{\"seq\":" : "\r\n\r\n{\"seq\":");
	memcpy(p, d, nd);
	p += nd;
	p = put(p, "}\n");
	return (size_t)(p - out);
}

static bool path_is(const struct http_req *r, const char *p)
{
	return r->path_len == strlen(p) && !memcmp(r->path, p, r->path_len);
}

enum ref_route ref_route(const struct ref_opts *o, const struct ref_log *log, int status,
                         const struct http_req *r, char *out, size_t *out_len)
{
	const char *text = "text/plain";
	char body[128];

	if (status < 0) {
		snprintf(body, sizeof(body), "%d %s\n", -status, http_reason(-status));
		*out_len = reply(o, out, -status, text, "", body, true);
		return REF_CLOSE;
	}
	if (path_is(r, "/log") && r->method == HTTP_M_POST) {
		if (r->content_length == 0 || r->content_length > REF_MAX_BODY) {
			*out_len = reply(o, out, r->content_length ? 413 : 400, text, "",
			                 "POST /log needs a body of 1-8192 bytes\n", true);
			return REF_CLOSE; /* the body is not read: close */
		}
		return REF_APPEND;
	}
	if (path_is(r, "/log") && r->method == HTTP_M_DELETE) {
		*out_len =
		    reply(o, out, 200, text, "", "ring log: nothing to truncate\n", !r->keep_alive);
	} else if (path_is(r, "/stats") && r->method == HTTP_M_GET) {
		snprintf(body, sizeof(body),
		         "{\"appended\":%" PRIu64 ",\"fences\":%" PRIu64 ",\"next_seq\":%" PRIu64
		         "}\n",
		         log->appended, log->drains, log->next_seq);
		*out_len = reply(o, out, 200, "application/json", "", body, !r->keep_alive);
	} else if (path_is(r, "/log") || path_is(r, "/stats")) {
		*out_len = reply(o, out, 405, text, "", "405 Method Not Allowed\n", !r->keep_alive);
	} else {
		*out_len = reply(o, out, 404, text, "", "404 Not Found\n", !r->keep_alive);
	}
	return r->keep_alive ? REF_REPLIED : REF_CLOSE;
}
