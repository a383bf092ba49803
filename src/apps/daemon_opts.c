/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon_opts.c - parsing of the options shared by every libpaste-xdp program (see daemon_opts.h).
 * Every bad value gets a message naming the option and what it accepts.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_opts.h"

enum {
	OPT_IFNAME = 256,
	OPT_IP,
	OPT_PREFIX,
	OPT_PORT,
	OPT_POOL,
	OPT_POOL_SIZE,
	OPT_FRAME_SIZE,
	OPT_SHARED_IP,
	OPT_BUSY_POLL,
	OPT_QUEUE,
	OPT_XDP_MODE,
	OPT_BATCH,
	OPT_RING,
	OPT_MAX_CONNS,
	OPT_SYN_BACKLOG,
	OPT_VERBOSE,
	OPT_TRANSPORT,
	OPT_NO_PERSIST,
	OPT_FENCE_DELAY,
	OPT_ZERO_COPY,
	OPT_QUEUES,
	OPT_CPUS,
	OPT_HELP,
};

static const struct option common[] = {
    {"ifname", required_argument, NULL, OPT_IFNAME},
    {"ip", required_argument, NULL, OPT_IP},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"port", required_argument, NULL, OPT_PORT},
    {"pool", required_argument, NULL, OPT_POOL},
    {"pool-size", required_argument, NULL, OPT_POOL_SIZE},
    {"frame-size", required_argument, NULL, OPT_FRAME_SIZE},
    {"shared-ip", no_argument, NULL, OPT_SHARED_IP},
    {"busy-poll", no_argument, NULL, OPT_BUSY_POLL},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"xdp-mode", required_argument, NULL, OPT_XDP_MODE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"ring-size", required_argument, NULL, OPT_RING},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"syn-backlog", required_argument, NULL, OPT_SYN_BACKLOG},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"no-persist", no_argument, NULL, OPT_NO_PERSIST},
    {"fence-delay", required_argument, NULL, OPT_FENCE_DELAY},
    {"zero-copy", required_argument, NULL, OPT_ZERO_COPY},
    {"queues", required_argument, NULL, OPT_QUEUES},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"help", no_argument, NULL, OPT_HELP},
};

const char daemon_common_help[] =
    "Network and pool options (shared by every libpaste-xdp program):\n"
    "  --ifname IF        interface to attach to (required); run inside its network namespace\n"
    "  --ip ADDR          IPv4 address the stack answers on. Without --shared-ip it must be an\n"
    "                     address the kernel does NOT have (dedicated-IP mode: lwIP answers ARP\n"
    "                     and ping for it)\n"
    "  --prefix N         dedicated IP: subnet prefix length (default 24)\n"
    "  --port N           TCP port to listen on (1-65535)\n"
    "  --shared-ip        use the interface's own address (--ip optional): only TCP to the\n"
    "                     listening port and the stack's ephemeral ports is steered; ARP, ICMP\n"
    "                     and all other ports stay with the kernel\n"
    "  --pool PATH        pool file (default " PASTE_POOL_DEFAULT_PATH "); created if absent,\n"
    "                     reopened if present. Must be on /dev/shm (tmpfs) or a device-DAX node\n"
    "                     (/dev/daxX.Y: the pool is the whole device, formatted on first use,\n"
    "                     --pool-size ignored): the kernel refuses AF_XDP memory on ext4/xfs\n"
    "                     files and on DAX-filesystem (fsdax) files. See docs/deploying.md\n"
    "  --pool-size SIZE   size when creating, K/M/G suffixes (default 64M)\n"
    "  --frame-size N     2048 (default) or 4096, when creating\n"
    "  --busy-poll        spin on the rings instead of sleeping in poll() (lower latency, one\n"
    "                     core at 100%)\n"
    "  --queue Q          NIC RX queue to bind (default 0); with --queues, the first one\n"
    "  --queues N         run N worker processes under a supervisor, worker i on queue Q+i\n"
    "                     with its own lwIP, AF_XDP socket, event loop and fence, and slice I\n"
    "                     of the pool file (each slice --pool-size bytes, recovered by its\n"
    "                     worker); they share one XDP program and the port. The\n"
    "                     supervisor restarts a worker that dies and stops them all on\n"
    "                     SIGTERM/SIGINT; SIGUSR1 is passed to every worker. With\n"
    "                     --transport kernel|io_uring: N processes sharing the port (SO_REUSEPORT).\n"
    "                     docs/multicore.md (1-64; default: one process, no supervisor).\n"
    "                     paste-echo, paste-wal and paste-kv run workers\n"
    "  --cpus LIST        pin worker i to the i-th CPU of LIST (e.g. 0,1 or 2-5), cycling\n"
    "  --xdp-mode MODE    auto (default: native, else skb), native or skb\n"
    "  --zero-copy MODE   AF_XDP zero copy (the NIC writes frames straight into the pool):\n"
    "                     auto (default: try it, else copy mode, where the kernel copies each\n"
    "                     frame into the pool), required (fail, naming the driver and the\n"
    "                     kernel, if the NIC refuses; veth always does) or off (copy mode).\n"
    "                     Stats show zerocopy=1 when the kernel reports zero-copy mode\n"
    "  --batch N          RX frames per round (default 64)\n"
    "  --ring-size N      AF_XDP ring entries, power of two (default 4096); io_uring: the\n"
    "                     provided-buffer ring's (pool frames the kernel receives into)\n"
    "  --max-conns N      connections at once (default 4096); more are refused\n"
    "  --syn-backlog N    paste transport: half-open connections (SYN received, handshake not\n"
    "                     done) held at once (16-1048576, default 1024). Past it, as under a\n"
    "                     SYN flood, the older half are dropped without a reset to make room\n"
    "                     (counted as syn_evicted)\n"
    "  --transport T      paste (default: XDP + AF_XDP + lwIP, payload lands in the pool with\n"
    "                     no copy), kernel (ordinary kernel TCP sockets with epoll; recv() into\n"
    "                     pool frames, then flush: the path without PASTE, for comparison;\n"
    "                     --ifname is then not needed and --ip defaults to all addresses)\n"
    "                     or io_uring (the same kernel TCP through one io_uring, Linux 6.1+:\n"
    "                     multishot accept, multishot recv into pool frames of a provided-\n"
    "                     buffer ring, sends submitted with the next wait; like kernel, no\n"
    "                     --ifname, --ip optional)\n"
    "  --no-persist       flushes and fences off: only to measure what persistence costs\n"
    "  --fence-delay NS   emulated media write latency added to every fence (nanoseconds;\n"
    "                     default: the environment variable PASTE_EMU_FENCE_NS, else 0)\n"
    "  --verbose          print debug messages of the library\n"
    "  --help             this text\n";

const char *daemon_transport_name(enum paste_transport t)
{
	return t == PASTE_TRANSPORT_KERNEL     ? "kernel"
	       : t == PASTE_TRANSPORT_IO_URING ? "io_uring"
	                                       : "paste";
}

int daemon_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int daemon_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case '\0':
		break;
	default:
		return -1;
	}
	if (*end)
		end++;
	if (shift && (!strcasecmp(end, "iB") || !strcasecmp(end, "B")))
		end += strlen(end);
	if (*end || (v << shift) >> shift != v)
		return -1;
	*out = v << shift;
	return 0;
}

static int bad(const char *prog, const char *opt, const char *arg, const char *want)
{
	fprintf(stderr, "%s: invalid value '%s' for --%s: expected %s (see --help)\n", prog, arg,
	        opt, want);
	return -1;
}

/* "0,2-4" -> cpus {0, 2, 3, 4}. @return 0 or -1. */
static int parse_cpus(const char *arg, struct daemon_opts *d)
{
	const char *p = arg;

	d->ncpus = 0;
	while (*p) {
		char *end;
		long lo, hi;

		if (!isdigit((unsigned char)*p))
			return -1;
		lo = hi = strtol(p, &end, 10);
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				return -1;
			hi = strtol(end + 1, &end, 10);
		}
		if (lo > hi || hi > 4095 || (*end && (*end != ',' || !end[1])))
			return -1;
		for (long c = lo; c <= hi; c++) {
			if (d->ncpus == DAEMON_MAX_WORKERS)
				return -1;
			d->cpus[d->ncpus++] = (int)c;
		}
		p = *end ? end + 1 : end;
	}
	return d->ncpus ? 0 : -1;
}

static int common_opt(struct daemon_opts *d, int opt, const char *arg, const char *prog)
{
	struct paste_opts *o = &d->paste;
	uint64_t v;

	switch (opt) {
	case OPT_IFNAME:
		o->ifname = arg;
		return 0;
	case OPT_IP:
		o->ip = arg;
		return 0;
	case OPT_PREFIX:
		if (daemon_parse_uint(arg, 1, 32, &v))
			return bad(prog, "prefix", arg, "a prefix length 1-32");
		o->prefix_len = (uint8_t)v;
		return 0;
	case OPT_PORT:
		if (daemon_parse_uint(arg, 1, 65535, &v))
			return bad(prog, "port", arg, "a TCP port 1-65535");
		d->port = (uint16_t)v;
		return 0;
	case OPT_POOL:
		o->pool_path = arg;
		return 0;
	case OPT_POOL_SIZE:
		if (daemon_parse_size(arg, &v) || v == 0)
			return bad(prog, "pool-size", arg, "a size such as 64M or 2G");
		o->pool_size = v;
		return 0;
	case OPT_FRAME_SIZE:
		if (daemon_parse_uint(arg, 2048, 4096, &v) || (v != 2048 && v != 4096))
			return bad(prog, "frame-size", arg, "2048 or 4096");
		o->frame_size = (uint32_t)v;
		return 0;
	case OPT_SHARED_IP:
		o->shared_ip = true;
		return 0;
	case OPT_BUSY_POLL:
		o->busy_poll = true;
		return 0;
	case OPT_QUEUE:
		if (daemon_parse_uint(arg, 0, 63, &v))
			return bad(prog, "queue", arg, "a queue number 0-63");
		o->queue = (uint32_t)v;
		return 0;
	case OPT_XDP_MODE:
		if (!strcmp(arg, "auto"))
			o->xdp_mode = PASTE_XDP_AUTO;
		else if (!strcmp(arg, "native") || !strcmp(arg, "drv"))
			o->xdp_mode = PASTE_XDP_NATIVE;
		else if (!strcmp(arg, "skb") || !strcmp(arg, "generic"))
			o->xdp_mode = PASTE_XDP_SKB;
		else
			return bad(prog, "xdp-mode", arg, "auto, native or skb");
		return 0;
	case OPT_ZERO_COPY:
		if (!strcmp(arg, "auto"))
			o->zero_copy = PASTE_ZC_AUTO;
		else if (!strcmp(arg, "required"))
			o->zero_copy = PASTE_ZC_REQUIRED;
		else if (!strcmp(arg, "off"))
			o->zero_copy = PASTE_ZC_OFF;
		else
			return bad(prog, "zero-copy", arg, "auto, required or off");
		return 0;
	case OPT_BATCH:
		if (daemon_parse_uint(arg, 1, 4096, &v))
			return bad(prog, "batch", arg, "a number 1-4096");
		o->batch_size = (uint32_t)v;
		return 0;
	case OPT_RING:
		if (daemon_parse_uint(arg, 64, 32768, &v) || (v & (v - 1)))
			return bad(prog, "ring-size", arg, "a power of two 64-32768");
		o->ring_size = (uint32_t)v;
		return 0;
	case OPT_MAX_CONNS:
		if (daemon_parse_uint(arg, 1, 1000000, &v))
			return bad(prog, "max-conns", arg, "a number 1-1000000");
		o->max_conns = (uint32_t)v;
		return 0;
	case OPT_SYN_BACKLOG:
		if (daemon_parse_uint(arg, 16, 1u << 20, &v))
			return bad(prog, "syn-backlog", arg, "a number 16-1048576");
		o->syn_backlog = (uint32_t)v;
		return 0;
	case OPT_QUEUES:
		if (daemon_parse_uint(arg, 1, DAEMON_MAX_WORKERS, &v))
			return bad(prog, "queues", arg, "a number of workers 1-64");
		d->queues = (unsigned)v;
		return 0;
	case OPT_CPUS:
		if (parse_cpus(arg, d))
			return bad(prog, "cpus", arg, "a CPU list such as 0,1 or 0-3 (at most 64)");
		return 0;
	case OPT_VERBOSE:
		d->verbose = true;
		return 0;
	case OPT_NO_PERSIST:
		o->no_persist = true;
		return 0;
	case OPT_FENCE_DELAY:
		if (daemon_parse_uint(arg, 0, 100000000, &v))
			return bad(prog, "fence-delay", arg, "nanoseconds 0-100000000");
		o->fence_delay_ns = (uint32_t)v;
		return 0;
	case OPT_TRANSPORT:
		if (!strcmp(arg, "paste"))
			o->transport = PASTE_TRANSPORT_PASTE;
		else if (!strcmp(arg, "kernel"))
			o->transport = PASTE_TRANSPORT_KERNEL;
		else if (!strcmp(arg, "io_uring"))
			o->transport = PASTE_TRANSPORT_IO_URING;
		else
			return bad(prog, "transport", arg, "paste, kernel or io_uring");
		return 0;
	}
	return 1;
}

static struct option *merge(const struct option *extra)
{
	size_t n = 0, i;
	struct option *all;

	while (extra && extra[n].name)
		n++;
	all = calloc(sizeof(common) / sizeof(common[0]) + n + 1, sizeof(*all));
	if (!all)
		return NULL;
	memcpy(all, common, sizeof(common));
	for (i = 0; i < n; i++)
		all[sizeof(common) / sizeof(common[0]) + i] = extra[i];
	return all;
}

/*
 * PASTE_EMU_FENCE_NS: the emulated media latency of the slow-media experiment (issue 15), the same
 * variable the reference servers of bench/ read, so one setting applies to every server compared.
 * --fence-delay overrides it.
 */
static int env_fence_delay(struct daemon_opts *d, const char *prog)
{
	const char *env = getenv("PASTE_EMU_FENCE_NS");
	uint64_t v;

	if (!env || !*env)
		return 0;
	if (daemon_parse_uint(env, 0, 100000000, &v)) {
		fprintf(stderr, "%s: PASTE_EMU_FENCE_NS: bad value '%s': nanoseconds 0-100000000\n",
		        prog, env);
		return 2;
	}
	d->paste.fence_delay_ns = (uint32_t)v;
	/* The pool reads the same variable (paste_pool_opts.emu_fence_ns): taken here, it must not
	 * spin a second time there (a 2 ms setting measured 4 ms per request before). */
	unsetenv("PASTE_EMU_FENCE_NS");
	return 0;
}

int daemon_parse(int argc, char **argv, struct daemon_opts *d, const struct option *extra,
                 daemon_extra_fn fn, void *app, void (*usage)(FILE *out))
{
	const char *prog = argv[0];
	struct option *all = merge(extra);
	int opt, r = 0;

	if (!all)
		return 2;
	memset(d, 0, sizeof(*d));
	d->paste.sz = sizeof(d->paste);
	d->worker = -1;
	r = env_fence_delay(d, prog); /* the default of --fence-delay */
	opterr = 0;
	optind = 1;
	while (r == 0 && (opt = getopt_long(argc, argv, ":", all, NULL)) != -1) {
		if (opt == OPT_HELP) {
			usage(stdout);
			r = 1;
		} else if (opt == '?') {
			fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog,
			        argv[optind - 1]);
			r = 2;
		} else if (opt == ':') {
			fprintf(stderr, "%s: option '%s' needs a value (see --help)\n", prog,
			        argv[optind - 1]);
			r = 2;
		} else {
			int c = common_opt(d, opt, optarg, prog);

			if (c == 1)
				c = fn ? fn(opt, optarg, app) : -1;
			if (c)
				r = 2;
		}
	}
	if (r == 0 && optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[optind]);
		r = 2;
	}
	if (r == 0 && !d->paste.ifname && d->paste.transport == PASTE_TRANSPORT_PASTE) {
		fprintf(stderr, "%s: --ifname is required (see --help)\n", prog);
		r = 2;
	}
	if (r == 0 && d->queues && d->paste.queue + d->queues > DAEMON_MAX_WORKERS) {
		fprintf(stderr, "%s: --queue %u --queues %u goes beyond queue 63 (see --help)\n",
		        prog, d->paste.queue, d->queues);
		r = 2;
	}
	if (r == 0 && (d->queues || d->ncpus) && !daemon_supports_workers) {
		if (daemon_no_workers_why)
			fprintf(stderr, "%s: --queues/--cpus are not supported: %s\n", prog,
			        daemon_no_workers_why);
		else
			fprintf(
			    stderr,
			    "%s: --queues/--cpus: this program does not run worker processes yet "
			    "(paste-echo and paste-wal do; docs/multicore.md): run one process "
			    "per queue with --queue\n",
			    prog);
		r = 2;
	}
	if (r == 0 && d->ncpus && !d->queues)
		d->queues = 1; /* --cpus alone: one pinned worker */
	if (r == 0 && !d->port) {
		fprintf(stderr, "%s: --port is required (see --help)\n", prog);
		r = 2;
	}
	if (r == 0 && !d->paste.ip && !d->paste.shared_ip &&
	    d->paste.transport == PASTE_TRANSPORT_PASTE) {
		fprintf(stderr, "%s: --ip is required without --shared-ip (see --help)\n", prog);
		r = 2;
	}
	free(all);
	return r;
}

bool daemon_supports_workers;
const char *daemon_no_workers_why;
volatile sig_atomic_t daemon_got_stop, daemon_got_usr1;
struct paste_ctx *volatile daemon_sig_ctx;

static void on_signal(int sig)
{
	if (sig == SIGUSR1) {
		daemon_got_usr1 = 1;
		return;
	}
	daemon_got_stop = 1;
	if (daemon_sig_ctx)
		paste_stop(daemon_sig_ctx);
}

void daemon_install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}
