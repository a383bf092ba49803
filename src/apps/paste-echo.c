/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-echo - a TCP echo server on libpaste-xdp, written against the public API only.
 *
 * It echoes every byte straight from the pool slots it was received in. What the send buffer does
 * not take waits in the connection's reply queue (daemon_replyq.c) under a reference to its pool
 * frame, and no new bytes are taken until that is sent: unread bytes keep the TCP window closed,
 * which is the back-pressure. It closes after the peer's FIN once everything is echoed, or after
 * --max-bytes. The event loop, signals and the idle timeout are the daemons' shared core
 * (daemon_loop.c). SIGUSR1 prints a `stats ...` line;
 * SIGTERM/SIGINT shut down cleanly. Used by the integration tests and as the smallest example of
 * the API.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <paste/paste.h>

#include "daemon_loop.h"
#include "daemon_opts.h"
#include "daemon_replyq.h"
#include "daemon_workers.h"

enum { OPT_MAX_BYTES = 512, OPT_IDLE_TIMEOUT };

struct echo {
	struct paste_ctx *ctx;
	const struct paste_pool *pool;
	uint64_t max_bytes; /* 0 = unlimited */
	struct daemon_loop loop;
};

struct echo_conn {
	struct daemon_conn dc;  /* first: the loop's registry entry */
	struct daemon_replyq q; /* echoed bytes the send buffer has not taken yet */
	uint64_t echoed;        /* bytes sent or queued */
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-echo --ifname IF (--ip ADDR | --shared-ip) --port N [options]\n"
	    "\n"
	    "A TCP echo server on libpaste-xdp: an XDP program steers the port's traffic to an\n"
	    "AF_XDP socket whose frames live in the pool file, lwIP runs TCP in this process, and\n"
	    "every byte is echoed from the pool frame it arrived in.\n"
	    "\n"
	    "%s"
	    "\n"
	    "Echo options:\n"
	    "  --max-bytes SIZE   close each connection after echoing SIZE bytes (K/M/G)\n"
	    "  --idle-timeout S   reset a connection that neither sent nor took bytes for S\n"
	    "                     seconds (default 0: never; counted as timeouts=)\n"
	    "\n"
	    "Signals: SIGUSR1 prints one line 'stats key=value ...'; SIGTERM/SIGINT shut down,\n"
	    "print the final stats and detach the XDP program.\n"
	    "Output: 'paste-echo: ready ...' on stdout once serving.\n"
	    "Exit status: 0 clean shutdown, 1 runtime error, 2 usage error, 3 frames leaked.\n"
	    "\n"
	    "Example (inside the server namespace of scripts/testbed):\n"
	    "  paste-echo --ifname ps0 --ip 10.77.0.3 --port 7 --pool /dev/shm/echo.pool\n",
	    daemon_common_help);
}

static int extra_opt(int opt, const char *arg, void *app)
{
	struct echo *e = app;

	if (opt == OPT_MAX_BYTES) {
		if (daemon_parse_size(arg, &e->max_bytes) || !e->max_bytes) {
			fprintf(stderr,
			        "paste-echo: invalid value '%s' for --max-bytes: expected a "
			        "size such as 256K (see --help)\n",
			        arg);
			return -1;
		}
		return 0;
	}
	if (opt == OPT_IDLE_TIMEOUT)
		return daemon_parse_timeout("paste-echo", "idle-timeout", arg,
		                            &e->loop.idle_timeout_ms);
	return -1;
}

static int on_accept(struct paste_conn *c, void *user)
{
	struct echo *e = user;
	struct echo_conn *ec = calloc(1, sizeof(*ec));

	if (!ec)
		return -ENOMEM;
	daemon_conn_add(&e->loop, &ec->dc, c);
	paste_conn__set_user(c, ec);
	return 0;
}

static void on_data(struct paste_conn *c, void *user)
{
	struct echo *e = user;
	struct echo_conn *ec = paste_conn__user(c);
	const struct paste_slot *s;
	unsigned n, i;

	daemon_conn_touch(&ec->dc, daemon_now_ns());
	if (daemon_replyq_flush(&ec->q, c, e->ctx))
		return; /* the connection is gone: on_close drops the queue */
	s = paste_conn__slots(c, &n);
	for (i = 0; i < n && !ec->q.n; i++) { /* new bytes only once the queue is empty */
		size_t len = s[i].len;
		ssize_t t;

		if (e->max_bytes && len > e->max_bytes - ec->echoed)
			len = e->max_bytes - ec->echoed;
		t = len ? daemon_replyq_send(&ec->q, c, s[i].data, len, true) : 0;
		if (t <= 0)
			break;
		/* the rest: pinned (or copied) while the slot still holds its frame */
		if (ec->q.n && daemon_replyq_pin(&ec->q, e->ctx, e->pool)) {
			fprintf(stderr, "paste-echo: no memory to hold unsent bytes: connection "
			                "reset\n");
			paste_conn__abort(c);
			return;
		}
		paste_conn__consume(c, (size_t)t);
		ec->echoed += (uint64_t)t;
		if ((size_t)t < len)
			break; /* no memory to queue the rest: it stays pending */
	}
	if (!ec->q.n && ((e->max_bytes && ec->echoed >= e->max_bytes) ||
	                 (paste_conn__eof(c) && paste_conn__pending(c) == 0)))
		paste_conn__close(c);
}

static void on_close(struct paste_conn *c, int err, void *user)
{
	struct echo *e = user;
	struct echo_conn *ec = paste_conn__user(c);

	if (!ec)
		return;
	daemon_replyq_free(&ec->q, e->ctx);
	daemon_conn_remove(&e->loop, &ec->dc);
	free(ec);
}

static void print_stats(void *app)
{
	static const char *const modes[] = {"none", "native", "skb"};
	struct echo *e = app;
	struct paste_stats s;

	if (paste_stats(e->ctx, &s, sizeof(s)))
		return;
	printf("stats%s rx_packets=%" PRIu64 " tx_packets=%" PRIu64 " rx_dropped=%" PRIu64
	       " rx_invalid=%" PRIu64 " tx_dropped=%" PRIu64 " rx_payload_bytes=%" PRIu64
	       " rx_copied_bytes=%" PRIu64 " steered=%" PRIu64 " passed=%" PRIu64
	       " conns_open=%u conns_accepted=%" PRIu64 " conns_refused=%" PRIu64
	       " frames_total=%u frames_free=%u frames_fill=%u frames_rx=%u frames_tx=%u"
	       " frames_kept=%u xdp_mode=%s zerocopy=%d timeouts=%" PRIu64 " syn_evicted=%" PRIu64
	       "\n",
	       daemon_worker_tag(), s.rx_packets, s.tx_packets, s.rx_dropped, s.rx_invalid,
	       s.tx_dropped, s.rx_payload_bytes, s.rx_copied_bytes, s.steered, s.passed,
	       s.conns_open, s.conns_accepted, s.conns_refused, s.frames_total, s.frames_free,
	       s.frames_fill, s.frames_rx, s.frames_tx, s.frames_kept, modes[s.xdp_mode],
	       s.zerocopy, e->loop.idle_timeouts, s.syn_evicted);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option extra[] = {
	    {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
	    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	    {NULL, 0, NULL, 0},
	};
	struct paste_conn_ops ops = {
	    .sz = sizeof(ops),
	    .on_accept = on_accept,
	    .on_data = on_data,
	    .on_close = on_close,
	};
	struct echo e = {0};
	struct daemon_opts d;
	struct paste_stats st;
	int r, err;

	daemon_supports_workers = true;
	r = daemon_parse(argc, argv, &d, extra, extra_opt, &e, usage);
	if (r)
		return r == 1 ? 0 : 2;
	if (daemon_workers_supervise(&d, "paste-echo", &r))
		return r;
	paste_set_print(NULL, NULL, d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	daemon_install_signals();
	err = paste_open(&e.ctx, &d.paste);
	if (err) {
		fprintf(stderr, "paste-echo: cannot start: %s\n", paste_last_error());
		return 1;
	}
	daemon_sig_ctx = e.ctx;
	e.pool = paste_pool(e.ctx);
	err = paste_listen(e.ctx, d.port, &ops, &e);
	if (err) {
		fprintf(stderr, "paste-echo: %s\n", paste_last_error());
		paste_close(&e.ctx);
		return 1;
	}
	paste_stats(e.ctx, &st, sizeof(st));
	printf("paste-echo: ready%s transport=%s ifname=%s ip=%s port=%u xdp_mode=%s zerocopy=%d "
	       "pool=%s frames=%u\n",
	       daemon_worker_tag(), daemon_transport_name(d.paste.transport),
	       d.paste.ifname ? d.paste.ifname : "-", d.paste.ip ? d.paste.ip : "-", d.port,
	       d.paste.transport != PASTE_TRANSPORT_PASTE ? "-"
	       : st.xdp_mode == PASTE_XDP_NATIVE          ? "native"
	                                                  : "skb",
	       st.zerocopy, d.paste.pool_path ? d.paste.pool_path : PASTE_POOL_DEFAULT_PATH,
	       st.frames_total);
	fflush(stdout);
	daemon_workers_ready();
	e.loop.name = "paste-echo";
	e.loop.ctx = e.ctx;
	e.loop.app = &e;
	e.loop.print_stats = print_stats;
	r = daemon_loop_run(&e.loop);
	paste_shutdown(
	    e.ctx); /* connections and whatever lwIP still holds: now frames_rx must be 0 */
	print_stats(&e);
	paste_stats(e.ctx, &st, sizeof(st));
	if (r == 0 && st.conns_open == 0 && (st.frames_rx || st.frames_kept)) {
		fprintf(stderr,
		        "paste-echo: %u received frames still held with no connection open: "
		        "frame leak\n",
		        st.frames_rx + st.frames_kept);
		r = 3;
	}
	daemon_sig_ctx = NULL;
	paste_close(&e.ctx);
	return r;
}
