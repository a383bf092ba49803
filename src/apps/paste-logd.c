/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-logd.c - the paste-logd program: command line, subcommands (run, export, replay, info),
 * signals and the statistics line. The forwarder is in paste-logd-fwd.c, the packet log in
 * paste-logd-log.c, export and replay in paste-logd-export.c; docs/paste-logd.md describes it all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <paste/paste.h>

#include "daemon_opts.h"
#include "logd.h"
#include "paste-logd.h"

static const char usage_text[] =
    "Usage: paste-logd --in IF --out IF --pool PATH [options]\n"
    "       paste-logd export --pool PATH [--from SEQ] [--to SEQ] > FILE.pcapng\n"
    "       paste-logd replay --pool PATH --out IF [--from SEQ] [--to SEQ]\n"
    "       paste-logd info --pool PATH\n"
    "\n"
    "paste-logd forwards every frame between two interfaces (both directions) through two AF_XDP\n"
    "sockets that share one UMEM: the frame area of a persistent pool file. A frame leaves from "
    "the\n"
    "very frame it arrived in; nothing is copied. Each frame of the selected traffic is first "
    "made\n"
    "durable in a packet log in the same pool: a record {seq, timestamp, ingress interface, "
    "length,\n"
    "frame, checksum} naming the frame is appended and flushed with the packet bytes, the batch "
    "is\n"
    "fenced, and only then are the batch's frames put on the other interface's TX ring. A frame\n"
    "stays pinned (never reused) while a record names it. Unselected traffic is forwarded without "
    "a\n"
    "record. After a crash (kill -9, power loss on real NVMM) the next start recovers the log: "
    "every\n"
    "packet that was forwarded is in it, unless the capacity policy dropped it later.\n"
    "\n"
    "Forwarding options:\n"
    "  --in IF            first interface (side 0). Both directions are forwarded.\n"
    "  --out IF           second interface (side 1).\n"
    "  --pool PATH        pool file (created if absent; on /dev/shm or device-DAX: the kernel "
    "must\n"
    "                     accept it as UMEM). Holds the packet log and the frames it names.\n"
    "  --pool-size SIZE   size when creating the pool (K/M/G suffixes; default 256M). The packet\n"
    "                     log can hold as many packets as the pool has frames, less the rings.\n"
    "  --ring-size N      AF_XDP ring size, power of two (default 2048). The pool needs 8*N "
    "frames.\n"
    "  --batch N          frames taken per socket per batch, 1-256 (default 64). One fence per "
    "batch.\n"
    "  --xdp-mode MODE    auto (native, else generic), native or skb (default auto).\n"
    "  --log WHAT         all (default), none, or match (frames matching a --match rule).\n"
    "  --match RULE       log IPv4 frames matching RULE (repeatable, up to 8; implies --log "
    "match).\n"
    "                     RULE is words, all of which must hold: tcp | udp | icmp | proto N,\n"
    "                     host A.B.C.D | net A.B.C.D/LEN (source or destination), port N (source "
    "or\n"
    "                     destination). Example: --match 'tcp port 5201' --match 'net "
    "10.1.0.0/16'.\n"
    "  --malformed WHAT   frames whose headers do not fit the frame (runts, bad IPv4 header length "
    "or\n"
    "                     total length, truncated TCP/UDP header): drop (default: counted, "
    "neither\n"
    "                     logged nor forwarded), log (logged with a malformed flag, then dropped), "
    "or\n"
    "                     forward (handled like any frame; logged under --log all).\n"
    "  --kernel-redirect  benchmark baseline: the XDP program forwards every frame itself\n"
    "                     (XDP_REDIRECT); nothing reaches the sockets, nothing is logged.\n"
    "  --busy-poll        never sleep in poll(): lower latency, one core spinning.\n"
    "  --stats-interval S print the statistics line every S seconds (default: only on SIGUSR1 and\n"
    "                     at exit).\n"
    "  -v, --verbose      more messages.\n"
    "  -h, --help         this text.\n"
    "\n"
    "Capacity policy: when free frames drop below two rings' worth, the oldest records are "
    "dropped\n"
    "(the log's head moves durably first, then their frames are reused) and counted as evicted:\n"
    "the log keeps the newest packets and forwarding never stops. Size the pool for the window "
    "you\n"
    "must keep (frames = pool size * 7/8 / 2048).\n"
    "\n"
    "Subcommands (the pool must not be in use: stop paste-logd first, or work on a copy):\n"
    "  export   write the records of [--from, --to] (sequence numbers, inclusive; default all) as\n"
    "           pcapng to standard output, with the original receive timestamps (ns) and each\n"
    "           record's seq as a packet comment. Readable by tcpdump -r and tshark.\n"
    "  replay   send the records of [--from, --to], in order, out of --out IF (packet socket).\n"
    "  info     print the log's range (seq and receive times) and what recovery found.\n"
    "\n"
    "Signals: SIGTERM/SIGINT stop cleanly (XDP programs detached); SIGUSR1 prints the statistics\n"
    "line. Statistics: rx_in/rx_out frames received per side, tx_in/tx_out frames sent per side,\n"
    "inplace TX descriptors that are the RX descriptor of a received frame (no copy),\n"
    "copied_bytes (always 0: there is no copy path), logged/unlogged, fences, evicted, "
    "malformed*,\n"
    "log_errors (selected frames the log refused: dropped, never forwarded unlogged), tx_full\n"
    "drops, frames_free/pinned/kernel, first_seq/next_seq, bpf_* (the XDP program's).\n"
    "\n"
    "Exit status: 0 after a clean stop, 1 on a runtime error, 2 on a usage error.\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

static volatile sig_atomic_t stop;
static volatile sig_atomic_t got_usr1;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		stop = 1;
}

/* ---- options --------------------------------------------------------------------------------- */

static int parse_ip(const char *s, uint32_t *ip, uint32_t *mask)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	uint64_t len = 32;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if (slash) {
		buf[slash - s] = 0;
		if (daemon_parse_uint(slash + 1, 0, 32, &len))
			return -1;
	}
	if (inet_pton(AF_INET, buf, ip) != 1)
		return -1;
	*mask = len ? htonl(~0u << (32 - len)) : 0;
	*ip &= *mask;
	if (!len) /* 0.0.0.0/0: any address; mask 0 means "no address condition" */
		*ip = 0;
	return 0;
}

static int parse_rule(const char *text, struct logd_rule_spec *r)
{
	char buf[256], *save = NULL, *w;
	uint64_t v;

	memset(r, 0, sizeof(*r));
	if (strlen(text) >= sizeof(buf))
		return -1;
	strcpy(buf, text);
	for (w = strtok_r(buf, " ,", &save); w; w = strtok_r(NULL, " ,", &save)) {
		char *arg = NULL;

		if (!strcmp(w, "tcp") || !strcmp(w, "udp") || !strcmp(w, "icmp")) {
			r->proto = w[0] == 't' ? 6 : w[0] == 'u' ? 17 : 1;
			continue;
		}
		if (strcmp(w, "proto") && strcmp(w, "host") && strcmp(w, "net") &&
		    strcmp(w, "port"))
			return -1;
		arg = strtok_r(NULL, " ,", &save);
		if (!arg)
			return -1;
		if (!strcmp(w, "proto")) {
			if (daemon_parse_uint(arg, 1, 255, &v))
				return -1;
			r->proto = (uint8_t)v;
		} else if (!strcmp(w, "port")) {
			if (daemon_parse_uint(arg, 1, 65535, &v))
				return -1;
			r->port = (uint16_t)v;
		} else if (parse_ip(arg, &r->addr, &r->mask) || (w[0] == 'h' && strchr(arg, '/'))) {
			return -1;
		}
	}
	return 0;
}

enum {
	O_IN = 512,
	O_OUT,
	O_POOL,
	O_POOL_SIZE,
	O_RING,
	O_BATCH,
	O_MODE,
	O_LOG,
	O_MATCH,
	O_MALFORMED,
	O_BUSY,
	O_KREDIR,
	O_STATS,
	O_FROM,
	O_TO
};

static const struct option long_opts[] = {
    {"in", required_argument, 0, O_IN},
    {"out", required_argument, 0, O_OUT},
    {"pool", required_argument, 0, O_POOL},
    {"pool-size", required_argument, 0, O_POOL_SIZE},
    {"ring-size", required_argument, 0, O_RING},
    {"batch", required_argument, 0, O_BATCH},
    {"xdp-mode", required_argument, 0, O_MODE},
    {"log", required_argument, 0, O_LOG},
    {"match", required_argument, 0, O_MATCH},
    {"malformed", required_argument, 0, O_MALFORMED},
    {"busy-poll", no_argument, 0, O_BUSY},
    {"kernel-redirect", no_argument, 0, O_KREDIR},
    {"stats-interval", required_argument, 0, O_STATS},
    {"from", required_argument, 0, O_FROM},
    {"to", required_argument, 0, O_TO},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

struct cmdline {
	struct logd_opts o;
	uint64_t from, to;
	bool log_set;
};

static int pick(const char *arg, const char *const *words, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(arg, words[i]))
			return i;
	return -1;
}

static int parse_one(struct cmdline *c, int opt, const char *arg)
{
	static const char *const modes[] = {"auto", "native", "skb"};
	static const char *const logs[] = {"all", "match", "none"};
	static const char *const mals[] = {"drop", "log", "forward"};
	uint64_t v;

	switch (opt) {
	case O_IN:
		c->o.in = arg;
		return 0;
	case O_OUT:
		c->o.out = arg;
		return 0;
	case O_POOL:
		c->o.pool_path = arg;
		return 0;
	case O_POOL_SIZE:
		return daemon_parse_size(arg, &c->o.pool_size);
	case O_RING:
		if (daemon_parse_uint(arg, 64, 16384, &v) || (v & (v - 1)))
			return -1;
		c->o.ring_size = (uint32_t)v;
		return 0;
	case O_BATCH:
		if (daemon_parse_uint(arg, 1, 256, &v))
			return -1;
		c->o.batch = (uint32_t)v;
		return 0;
	case O_MODE:
		return (c->o.xdp_mode = pick(arg, modes, 3)) < 0 ? -1 : 0;
	case O_LOG:
		c->log_set = true;
		return (c->o.sel_mode = pick(arg, logs, 3)) < 0 ? -1 : 0;
	case O_MATCH:
		if (c->o.nrules == LOGD_MAX_RULES || parse_rule(arg, &c->o.rules[c->o.nrules]))
			return -1;
		c->o.nrules++;
		if (!c->log_set)
			c->o.sel_mode = LOGD_SEL_RULES;
		return 0;
	case O_MALFORMED:
		if (pick(arg, mals, 3) < 0)
			return -1;
		c->o.malformed = (enum logd_malformed_policy)pick(arg, mals, 3);
		return 0;
	case O_KREDIR:
		c->o.kernel_redirect = true;
		return 0;
	case O_BUSY:
		c->o.busy_poll = true;
		return 0;
	case O_STATS:
		if (daemon_parse_uint(arg, 1, 86400, &v))
			return -1;
		c->o.stats_interval = (unsigned)v;
		return 0;
	case O_FROM:
		return daemon_parse_uint(arg, 1, UINT64_MAX, &c->from);
	case O_TO:
		return daemon_parse_uint(arg, 1, UINT64_MAX, &c->to);
	case 'v':
		c->o.verbose = true;
		return 0;
	}
	return -1;
}

/* @return 0 to run, 1 after --help, 2 on a usage error (message printed). */
static int parse(int argc, char **argv, struct cmdline *c)
{
	int opt, idx;

	c->o.pool_size = 256ull << 20;
	c->o.ring_size = 2048;
	c->o.batch = 64;
	while ((opt = getopt_long(argc, argv, "vh", long_opts, &idx)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return 1;
		}
		if (opt == '?' || parse_one(c, opt, optarg)) {
			if (opt != '?')
				fprintf(stderr,
				        "paste-logd: bad value '%s' for --%s (see --help)\n",
				        optarg, long_opts[idx].name);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "paste-logd: unexpected argument '%s' (see --help)\n",
		        argv[optind]);
		return 2;
	}
	if (!c->o.pool_path) {
		fprintf(stderr, "paste-logd: --pool PATH is required (see --help)\n");
		return 2;
	}
	if (c->o.sel_mode == LOGD_SEL_RULES && !c->o.nrules) {
		fprintf(stderr, "paste-logd: --log match needs at least one --match RULE\n");
		return 2;
	}
	return 0;
}

/* ---- run ------------------------------------------------------------------------------------- */

static void print_stats(struct logd *l)
{
	struct logd_stats s;

	logd_get_stats(l, &s);
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
	    {"rx_in", s.rx[0]},
	    {"rx_out", s.rx[1]},
	    {"tx_in", s.tx[0]},
	    {"tx_out", s.tx[1]},
	    {"rx_bytes", s.rx_bytes},
	    {"tx_bytes", s.tx_bytes},
	    {"inplace", s.inplace},
	    {"copied_bytes", s.copied_bytes},
	    {"completed", s.completed},
	    {"logged", s.logged},
	    {"unlogged", s.unlogged},
	    {"fences", s.fences},
	    {"evicted", s.evicted},
	    {"malformed", s.malformed},
	    {"malformed_logged", s.malformed_logged},
	    {"malformed_dropped", s.malformed_dropped},
	    {"no_meta", s.no_meta},
	    {"log_errors", s.log_errors},
	    {"tx_full", s.tx_full},
	    {"invalid", s.invalid},
	    {"frames_free", s.frames_free},
	    {"frames_pinned", s.frames_pinned},
	    {"frames_kernel", s.frames_kernel},
	    {"first_seq", s.first_seq},
	    {"next_seq", s.next_seq},
	    {"bpf_seen", s.bpf[LOGD_CNT_SEEN]},
	    {"bpf_selected", s.bpf[LOGD_CNT_SELECTED]},
	    {"bpf_malformed", s.bpf[LOGD_CNT_MALFORMED]},
	    {"bpf_no_meta", s.bpf[LOGD_CNT_NO_META]},
	    {"bpf_no_socket", s.bpf[LOGD_CNT_NO_SOCKET]},
	};

	printf("stats");
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		printf(" %s=%llu", f[i].name, (unsigned long long)f[i].v);
	printf("\n");
	fflush(stdout);
}

struct tick_state {
	unsigned interval, ticks;
};

static void tick(struct logd *l, void *arg)
{
	struct tick_state *t = arg;

	if (got_usr1) {
		got_usr1 = 0;
		print_stats(l);
	}
	if (t->interval && ++t->ticks >= t->interval * 10) {
		t->ticks = 0;
		print_stats(l);
	}
}

static int cmd_run(struct cmdline *c)
{
	struct tick_state ts = {.interval = c->o.stats_interval};
	struct sigaction sa = {.sa_handler = on_signal};
	struct logd *l;
	int err;

	if (!c->o.in || !c->o.out) {
		fprintf(stderr, "paste-logd: --in IF and --out IF are required (see --help)\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	err = logd_open(&c->o, &l);
	if (err) {
		fprintf(stderr, "paste-logd: not started: %s\n", strerror(-err));
		return 1;
	}
	{
		struct logd_stats s;

		logd_get_stats(l, &s);
		printf("paste-logd: ready: %s <-> %s, pool %s, log seq %llu..%llu (%u frames "
		       "pinned, %u free)\n",
		       c->o.in, c->o.out, c->o.pool_path, (unsigned long long)s.first_seq,
		       (unsigned long long)s.next_seq, s.frames_pinned, s.frames_free);
		fflush(stdout);
	}
	err = logd_run(l, &stop, tick, &ts);
	print_stats(l);
	logd_close(&l);
	if (err)
		fprintf(stderr, "paste-logd: stopped on an error: %s\n", strerror(-err));
	return err ? 1 : 0;
}

static void print_time(const char *name, uint64_t ns)
{
	printf("%s=%llu.%09llu", name, (unsigned long long)(ns / 1000000000u),
	       (unsigned long long)(ns % 1000000000u));
}

static int cmd_info(struct cmdline *c)
{
	struct paste_pool *pool;
	struct plog *log;
	struct plog_info i;
	struct plog_rec r;
	const uint8_t *b;

	if (logd_open_offline(c->o.pool_path, &pool, &log))
		return 1;
	plog_info(log, &i);
	printf("first_seq=%llu next_seq=%llu records=%llu capacity=%llu epoch=%u cut=%s",
	       (unsigned long long)i.first_seq, (unsigned long long)i.next_seq,
	       (unsigned long long)(i.next_seq - i.first_seq), (unsigned long long)i.nslots,
	       i.epoch, i.cut ? "yes" : "no");
	if (i.cut)
		printf(" cut_seq=%llu", (unsigned long long)i.cut_seq);
	if (!plog_get(log, i.first_seq, &r, &b))
		print_time(" first_time", r.ts_ns);
	if (i.next_seq > i.first_seq && !plog_get(log, i.next_seq - 1, &r, &b))
		print_time(" last_time", r.ts_ns);
	printf("\n");
	plog_close(&log);
	paste_pool__close(&pool);
	return 0;
}

int main(int argc, char **argv)
{
	struct cmdline c = {0};
	const char *cmd = NULL;
	int rc;

	if (argc > 1 && argv[1][0] != '-') {
		cmd = argv[1];
		argv[1] = argv[0];
		argc--, argv++;
		if (strcmp(cmd, "export") && strcmp(cmd, "replay") && strcmp(cmd, "info")) {
			fprintf(stderr, "paste-logd: unknown subcommand '%s' (see --help)\n", cmd);
			return 2;
		}
	}
	rc = parse(argc, argv, &c);
	if (rc)
		return rc == 1 ? 0 : 2;
	paste_set_print(NULL, NULL, c.o.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_WARN);
	if (!cmd)
		return cmd_run(&c);
	if (!strcmp(cmd, "info"))
		return cmd_info(&c);
	if (!strcmp(cmd, "export")) {
		if (isatty(STDOUT_FILENO)) {
			fprintf(stderr, "paste-logd: export writes pcapng to standard output: "
			                "redirect it to a file\n");
			return 2;
		}
		return logd_export(c.o.pool_path, c.from, c.to, STDOUT_FILENO) ? 1 : 0;
	}
	if (!c.o.out) {
		fprintf(stderr, "paste-logd: replay needs --out IF\n");
		return 2;
	}
	uint64_t sent;
	rc = logd_replay(c.o.pool_path, c.o.out, c.from, c.to, &sent);
	printf("replayed=%llu\n", (unsigned long long)sent);
	return rc ? 1 : 0;
}
