/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon_opts.h - the command-line options every libpaste-xdp program shares (--ifname, --ip,
 * --port, --pool, --pool-size, --shared-ip, --busy-poll, --queue, ...), parsed into struct
 * paste_opts, plus size parsing with K/M/G suffixes. Programs add their own options through an
 * extra table.
 */
#ifndef PASTE_DAEMON_OPTS_H
#define PASTE_DAEMON_OPTS_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <paste/paste.h>

#define DAEMON_MAX_WORKERS 64

struct daemon_opts {
	struct paste_opts paste;
	uint16_t port;
	bool verbose;
	unsigned queues;              /* --queues N: workers (0 = one process, no supervisor) */
	unsigned ncpus;               /* --cpus LIST: entries in cpus[] */
	int cpus[DAEMON_MAX_WORKERS]; /* worker i runs on cpus[i % ncpus] */
	int worker;                   /* this process's worker index; -1 without --queues */
};

/* Set to true before daemon_parse() by a program that runs daemon_workers_supervise(); the others
 * refuse --queues/--cpus with a message. */
extern bool daemon_supports_workers;
/* Optional: why this program refuses them (said in the message instead of the generic one). */
extern const char *daemon_no_workers_why;

/* Help text for the shared options, to embed in each program's --help. */
extern const char daemon_common_help[];

/* Program-specific option handler: return 0 if handled, -1 after printing an error. */
typedef int (*daemon_extra_fn)(int opt, const char *arg, void *app);

/*
 * Parse argv. @extra (terminated by a zero entry, option values >= 512) and @fn handle the
 * program's own options. @return 0 to run, 1 when --help was printed (exit 0), 2 on a usage error
 * (a message naming the bad option is already on stderr; exit 2).
 */
int daemon_parse(int argc, char **argv, struct daemon_opts *d, const struct option *extra,
                 daemon_extra_fn fn, void *app, void (*usage)(FILE *out));

/* "64M" -> 67108864. K/M/G (powers of 1024), optional "iB"/"B". @return 0 or -1. */
int daemon_parse_size(const char *s, uint64_t *out);
/* Decimal integer in [lo, hi]. @return 0 or -1. */
int daemon_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* The --transport word of @t: "paste", "kernel" or "io_uring". */
const char *daemon_transport_name(enum paste_transport t);

/*
 * Signals every daemon handles the same way: SIGTERM/SIGINT set daemon_got_stop and stop the event
 * loop of daemon_sig_ctx (set it once the context is open, NULL it before closing), SIGUSR1 sets
 * daemon_got_usr1 (print stats), SIGPIPE is ignored.
 */
extern volatile sig_atomic_t daemon_got_stop, daemon_got_usr1;
extern struct paste_ctx *volatile daemon_sig_ctx;
void daemon_install_signals(void);

#endif
