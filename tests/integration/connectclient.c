/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * connectclient.c - paste-connectclient: paste_connect() from the stack to a TCP echo server, on
 * the public API only (the integration test test_connect.sh drives it on every transport).
 *
 * Opens a context with the shared options (--transport, --ifname, --ip, --shared-ip, --pool ...),
 * connects to --connect IP:PORT with --connect-timeout MS, and then:
 *   --expect ok       sends --bytes N bytes of a seeded pattern, reads the echo back, checks every
 *                     byte, closes; exit 0 only if all N came back identical.
 *   --expect refused  exit 0 only if on_connect reported -ECONNREFUSED.
 *   --expect timeout  exit 0 only if on_connect reported -ETIMEDOUT (or -EHOSTUNREACH).
 *   --expect invalid  exit 0 only if paste_connect itself returned -EINVAL (a peer the transport
 *                     cannot reach, such as the stack's own address).
 * Prints "connectclient: result=<errno name or ok> ..." and paste_last_error() on failure.
 * Exit status: 0 as expected, 1 not as expected, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <paste/paste.h>

#include "daemon_opts.h"

enum { OPT_CONNECT = 512, OPT_BYTES, OPT_EXPECT, OPT_CTIMEOUT };

struct cc {
	struct in_addr addr;
	uint16_t port;
	uint64_t bytes, sent, echoed;
	uint64_t timeout_ms;
	const char *expect;
	int result;    /* on_connect's err; 1 until it ran */
	bool mismatch; /* an echoed byte differed */
	bool done;     /* closed (on_close) or failed (on_connect < 0) */
	int close_err;
};

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 2654435761u >> 13);
}

static void pump(struct paste_conn *c, struct cc *cc)
{
	uint8_t buf[16384];

	while (cc->sent < cc->bytes) {
		size_t n = cc->bytes - cc->sent < sizeof(buf) ? cc->bytes - cc->sent : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(cc->sent + i);
		w = paste_conn__send(c, buf, n);
		if (w <= 0)
			return;
		cc->sent += (uint64_t)w;
	}
}

static void on_connect(struct paste_conn *c, int err, void *user)
{
	struct cc *cc = user;

	cc->result = err;
	if (err) {
		cc->done = true;
		return;
	}
	pump(c, cc);
	if (!cc->bytes)
		paste_conn__close(c);
}

static void on_data(struct paste_conn *c, void *user)
{
	struct cc *cc = user;
	unsigned n;
	const struct paste_slot *s = paste_conn__slots(c, &n);

	for (unsigned i = 0; i < n; i++) {
		for (uint32_t j = 0; j < s[i].len; j++)
			if (s[i].data[j] != pattern(cc->echoed + j))
				cc->mismatch = true;
		cc->echoed += s[i].len;
	}
	paste_conn__consume(c, paste_conn__pending(c));
	pump(c, cc);
	if (cc->echoed >= cc->bytes || paste_conn__eof(c))
		paste_conn__close(c);
}

static void on_close(struct paste_conn *c, int err, void *user)
{
	struct cc *cc = user;

	cc->close_err = err;
	cc->done = true;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-connectclient --connect IP:PORT [--expect ok|refused|timeout|invalid]\n"
	    "                           [--bytes N] [--connect-timeout MS] [shared options]\n"
	    "\n"
	    "Connects from the stack (paste_connect) to a TCP echo server and checks the result.\n"
	    "  --connect IP:PORT      the peer\n"
	    "  --expect WHAT          ok (default): N bytes echoed back identical; refused:\n"
	    "                         the connect is refused; timeout: it times out;\n"
	    "                         invalid: paste_connect refuses the peer (-EINVAL)\n"
	    "  --bytes N              bytes to send and read back (K/M suffixes; default 64K)\n"
	    "  --connect-timeout MS   paste_connect's timeout (default 5000)\n"
	    "Exit status: 0 as expected, 1 not, 2 usage. (--port is required by the shared\n"
	    "options and not used.)\n\n%s",
	    daemon_common_help);
}

static int extra(int opt, const char *arg, void *app)
{
	struct cc *cc = app;
	char ip[64];
	const char *colon;
	uint64_t v;

	switch (opt) {
	case OPT_CONNECT:
		colon = strrchr(arg, ':');
		if (!colon || (size_t)(colon - arg) >= sizeof(ip) ||
		    daemon_parse_uint(colon + 1, 1, 65535, &v))
			goto bad;
		memcpy(ip, arg, (size_t)(colon - arg));
		ip[colon - arg] = 0;
		if (inet_pton(AF_INET, ip, &cc->addr) != 1)
			goto bad;
		cc->port = (uint16_t)v;
		return 0;
	case OPT_BYTES:
		return daemon_parse_size(arg, &cc->bytes) ? (fprintf(stderr, "bad --bytes\n"), -1)
		                                          : 0;
	case OPT_CTIMEOUT:
		return daemon_parse_uint(arg, 1, 600000, &cc->timeout_ms)
		           ? (fprintf(stderr, "bad --connect-timeout\n"), -1)
		           : 0;
	case OPT_EXPECT:
		if (strcmp(arg, "ok") && strcmp(arg, "refused") && strcmp(arg, "timeout") &&
		    strcmp(arg, "invalid"))
			return fprintf(stderr, "--expect: ok, refused, timeout or invalid\n"), -1;
		cc->expect = arg;
		return 0;
	}
	return -1;
bad:
	fprintf(stderr, "--connect: want IPv4:PORT, got '%s'\n", arg);
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"connect", required_argument, NULL, OPT_CONNECT},
	    {"bytes", required_argument, NULL, OPT_BYTES},
	    {"expect", required_argument, NULL, OPT_EXPECT},
	    {"connect-timeout", required_argument, NULL, OPT_CTIMEOUT},
	    {0},
	};
	struct cc cc = {.bytes = 64 << 10, .timeout_ms = 5000, .expect = "ok", .result = 1};
	struct paste_conn_ops ops = {
	    .sz = sizeof(ops), .on_connect = on_connect, .on_data = on_data, .on_close = on_close};
	struct daemon_opts d;
	struct paste_ctx *ctx;
	bool ok;
	int r;

	r = daemon_parse(argc, argv, &d, opts, extra, &cc, usage);
	if (r)
		return r == 1 ? 0 : 2;
	if (!cc.port) {
		fprintf(stderr, "paste-connectclient: --connect IP:PORT is required\n");
		return 2;
	}
	if (paste_open(&ctx, &d.paste))
		return 1;
	daemon_install_signals();
	daemon_sig_ctx = ctx;
	r = paste_connect(ctx, &cc.addr, cc.port, (int)cc.timeout_ms, &ops, &cc, NULL);
	if (r) {
		fprintf(stderr, "paste-connectclient: %s\n", paste_last_error());
		cc.result = r;
		cc.done = true;
	}
	while (!cc.done && !daemon_got_stop)
		if (paste_poll(ctx, 100) < 0 && errno != EINTR)
			break;
	if (!strcmp(cc.expect, "ok"))
		ok = cc.result == 0 && cc.echoed == cc.bytes && !cc.mismatch && cc.close_err == 0;
	else if (!strcmp(cc.expect, "refused"))
		ok = cc.result == -ECONNREFUSED;
	else if (!strcmp(cc.expect, "invalid"))
		ok = cc.result == -EINVAL;
	else
		ok = cc.result == -ETIMEDOUT || cc.result == -EHOSTUNREACH;
	printf("connectclient: result=%s sent=%llu echoed=%llu mismatch=%d close_err=%d\n",
	       cc.result == 0   ? "ok"
	       : cc.result == 1 ? "none"
	                        : strerror(-cc.result),
	       (unsigned long long)cc.sent, (unsigned long long)cc.echoed, cc.mismatch,
	       cc.close_err);
	if (cc.result < 0)
		printf("connectclient: last_error: %s\n", paste_last_error());
	daemon_sig_ctx = NULL;
	paste_close(&ctx);
	return ok ? 0 : 1;
}
