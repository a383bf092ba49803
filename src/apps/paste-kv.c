/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-kv - a durable key-value server that speaks the Redis protocol (RESP2 and inline), on the
 * public libpaste-xdp API only.
 *
 * Values stay where they arrived: SET keeps the value's bytes in the pool frame the NIC (or
 * recv()) wrote them to (paste_keep + paste_persist), and the persistent key-value index
 * (paste/index.h) names them; a value split over two segments is copied once into a packing frame
 * (paste_keep_copy). INCR/DECR/APPEND results are new bytes, written with paste_keep_copy. Every
 * write of a round is made durable by the round's one fence before any reply of the round leaves
 * (paste_poll), so +OK always means durable. Overwritten and deleted values are released by the
 * index after that fence.
 *
 * Stored form (private to this program): every key and value reference covers the string's bytes
 * plus the one byte after them ('\r' in RESP framing, or one added when the string is copied), so
 * an empty string is still a non-empty reference. Expiry deadlines live in a second index
 * ("paste-kv.ttl": key -> 8-byte absolute Unix time in ms); expired keys are deleted lazily when
 * touched, and at startup. docs/paste-kv.md has the design, the limits and measurements.
 *
 * Output: "paste-kv: recovered ..." and "paste-kv: ready ..." on stdout; SIGUSR1 prints a
 * "stats ..." line; SIGTERM/SIGINT shut down cleanly. Exit: 0 clean, 1 runtime error, 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <paste/paste.h>

#include "kv.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: paste-kv --ifname IF (--ip ADDR | --shared-ip) --port N [options]\n"
	    "       paste-kv --transport kernel|io_uring --port N [options]\n"
	    "\n"
	    "A durable key-value server speaking the Redis protocol (RESP2 and inline). Values\n"
	    "stay in the pool frames they arrived in, named by a persistent index; every write\n"
	    "is durable before its reply leaves. Values of any size (a large value is a list\n"
	    "of references to the frames it arrived in), strings, expiry, keyspace commands,\n"
	    "hashes, MULTI/EXEC/WATCH, SELECT 0-15; 'COMMAND LIST' (or docs/paste-kv.md)\n"
	    "lists the commands.\n"
	    "\n"
	    "%s"
	    "\n"
	    "Store options:\n"
	    "  --keys N             key capacity when creating the index (default: what 40%%\n"
	    "                       of the pool's free region area holds, ~80 bytes a key)\n"
	    "  --ttl-keys N         capacity of the expiry index (default keys/4)\n"
	    "  --sub-keys N         capacity of the piece index: one entry per piece of a\n"
	    "                       value larger than a frame, one per hash field\n"
	    "                       (default: keys)\n"
	    "  --undo-keys N        capacity of the undo log that makes EXEC, MSET, MSETNX\n"
	    "                       and HSET of several fields crash-atomic: one entry per\n"
	    "                       key or field a transaction changes (default keys/8,\n"
	    "                       at most 65536; less if an older pool lacks the room)\n"
	    "  --max-value SIZE     longest value (default 512M, Redis' limit)\n"
	    "  --max-key SIZE       longest key (default 512, at most frame size - 1)\n"
	    "  --max-request SIZE   largest request (all its arguments); larger ones are\n"
	    "                       skipped with an error (default 1G). A request is received\n"
	    "                       in place: its frames are kept as they arrive\n"
	    "  --max-bulk SIZE      a bulk length above this is a protocol error and closes\n"
	    "                       the connection, like Redis' proto-max-bulk-len (default 512M)\n"
	    "  --reserve-frames N   writes get -OOM while fewer frames are free (default 1/8\n"
	    "                       of the frames, at least 512)\n"
	    "  --copy-threshold SIZE  values and keys shorter than SIZE are copied into packing\n"
	    "                       frames instead of pinning the frame they arrived in\n"
	    "                       (default 0: always in place)\n"
	    "\n"
	    "  --idle-timeout S     reset a connection without any progress for S seconds\n"
	    "                       (default 0: never, like Redis' timeout 0)\n"
	    "  --request-timeout S  reset a connection whose request (command) is not complete\n"
	    "                       S seconds after its first byte (default 0: never)\n"
	    "\n"
	    "Signals: SIGUSR1 prints a 'stats ...' line; SIGTERM/SIGINT shut down cleanly.\n"
	    "Output: 'paste-kv: recovered ...' then 'paste-kv: ready ...' on stdout.\n"
	    "Exit status: 0 clean shutdown, 1 runtime error, 2 usage error.\n"
	    "\n"
	    "Example (inside the server namespace of scripts/testbed):\n"
	    "  paste-kv --ifname ps0 --ip 10.77.0.3 --port 6379 --pool /dev/shm/kv.pool \\\n"
	    "           --pool-size 1G\n",
	    daemon_common_help);
}

static int extra_opt(int opt, const char *arg, void *app)
{
	struct kvd *d = app;
	uint64_t v;

	switch (opt) {
	case OPT_KEYS:
	case OPT_TTL_KEYS:
	case OPT_SUB_KEYS:
	case OPT_UNDO_KEYS:
		if (daemon_parse_uint(arg, 1, 1ull << 27, &v))
			break;
		*(opt == OPT_KEYS       ? &d->keys
		  : opt == OPT_TTL_KEYS ? &d->ttl_keys
		  : opt == OPT_SUB_KEYS ? &d->sub_keys
		                        : &d->undo_keys) = v;
		return 0;
	case OPT_MAX_KEY:
		if (daemon_parse_size(arg, &v) || v < 1 || v > 4095)
			break;
		d->max_key = (uint32_t)v;
		return 0;
	case OPT_MAX_VALUE:
		if (daemon_parse_size(arg, &v) || v < 1 || v > (512u << 20))
			break;
		d->max_value = (uint32_t)v;
		return 0;
	case OPT_MAX_REQUEST:
		if (daemon_parse_size(arg, &v) || v < 1024 || v > (1u << 30))
			break;
		d->lim.max_request = (uint32_t)v;
		return 0;
	case OPT_MAX_BULK:
		if (daemon_parse_size(arg, &v) || v < 1 || v > (1ull << 40))
			break;
		d->lim.max_bulk = v;
		return 0;
	case OPT_RESERVE:
		if (daemon_parse_uint(arg, 0, UINT32_MAX, &d->reserve))
			break;
		return 0;
	case OPT_IDLE_TIMEOUT:
		return daemon_parse_timeout("paste-kv", "idle-timeout", arg,
		                            &d->loop.idle_timeout_ms);
	case OPT_REQUEST_TIMEOUT:
		return daemon_parse_timeout("paste-kv", "request-timeout", arg,
		                            &d->loop.request_timeout_ms);
	case OPT_COPY_THRESHOLD:
		if (daemon_parse_size(arg, &d->copy_threshold) || d->copy_threshold > 4096)
			break;
		return 0;
	default:
		return -1;
	}
	fprintf(stderr, "paste-kv: invalid value '%s' for an option (see --help)\n", arg);
	return -1;
}

static void print_stats(struct kvd *d)
{
	struct paste_kv_info i;
	struct paste_stats s;
	const struct kv_stats *k = &d->st;

	if (paste_stats(d->ctx, &s, sizeof(s)))
		return;
	paste_kv__info(d->kv, &i, sizeof(i));
	printf("stats keys=%" PRIu64 " cmds=%" PRIu64 " conns_open=%u conns=%" PRIu64
	       " hits=%" PRIu64 " misses=%" PRIu64 " expired=%" PRIu64 " oom=%" PRIu64
	       " proto_errors=%" PRIu64 " skipped=%" PRIu64 " val_inplace=%" PRIu64
	       " val_inplace_bytes=%" PRIu64 " val_copied=%" PRIu64 " val_copied_bytes=%" PRIu64
	       " val_computed=%" PRIu64 " key_inplace=%" PRIu64 " key_copied=%" PRIu64
	       " pins=%" PRIu64 " fences=%" PRIu64 " rounds=%" PRIu64 " rx_payload_bytes=%" PRIu64
	       " rx_copied_bytes=%" PRIu64 " frames_total=%u frames_free=%u frames_fill=%u"
	       " frames_rx=%u frames_tx=%u frames_kept=%u timeouts=%" PRIu64 "\n",
	       i.keys, k->cmds, d->conns_open, k->conns, k->hits, k->misses, k->expired, k->oom,
	       k->proto_errors, k->skipped, k->val_inplace, k->val_inplace_bytes, k->val_copied,
	       k->val_copied_bytes, k->val_computed, k->key_inplace, k->key_copied, k->pins,
	       s.fences, s.rounds, s.rx_payload_bytes, s.rx_copied_bytes, s.frames_total,
	       s.frames_free, s.frames_fill, s.frames_rx, s.frames_tx, s.frames_kept,
	       d->loop.idle_timeouts + d->loop.request_timeouts);
	fflush(stdout);
}

/* Writes are refused while the pool runs short of frames (refreshed at most every ms). */
static void refresh_low(struct kvd *d)
{
	d->low = daemon_pool_low(&d->loop, d->reserve, daemon_now_ns()); /* the daemons' rule */
}

/* After every round (daemon_loop.h's after_poll). */
static int after_round(void *app)
{
	struct kvd *d = app;

	refresh_low(d);
	obj_reap(d);     /* after the round's fence: pieces of replaced objects */
	tx_gc(d);        /* and the undo entries of committed transactions */
	expire_cycle(d); /* active expiry, every 100 ms */
	return 0;
}

static void stats_hook(void *app)
{
	print_stats(app);
}

static int run(struct kvd *d)
{
	d->loop.name = "paste-kv";
	d->loop.ctx = d->ctx;
	d->loop.app = d;
	d->loop.after_poll = after_round;
	d->loop.print_stats = stats_hook;
	return daemon_loop_run(&d->loop);
}

static int setup(struct kvd *d)
{
	struct paste_stats st;

	d->d.paste.copy_threshold = (uint32_t)d->copy_threshold;
	if (paste_open(&d->ctx, &d->d.paste)) {
		fprintf(stderr, "paste-kv: cannot start: %s\n", paste_last_error());
		return 1;
	}
	daemon_sig_ctx = d->ctx;
	if (open_store(d))
		return 1;
	d->lim.max_arg = d->max_value > d->max_key ? d->max_value : d->max_key;
	if (!d->lim.max_request)
		d->lim.max_request = 1u << 30;
	if (!d->lim.max_bulk)
		d->lim.max_bulk = 512u << 20;
	d->arena_cap = KV_ARENA;
	d->arena = malloc(d->arena_cap);
	if (!d->arena)
		return 1;
	paste_stats(d->ctx, &st, sizeof(st));
	if (!d->reserve)
		d->reserve = st.frames_total / 8 > 512 ? st.frames_total / 8 : 512;
	d->started = time(NULL);
	if (paste_listen(d->ctx, d->d.port,
	                 &(struct paste_conn_ops){.sz = sizeof(struct paste_conn_ops),
	                                          .on_accept = on_accept,
	                                          .on_data = on_data,
	                                          .on_close = on_close},
	                 d)) {
		fprintf(stderr, "paste-kv: %s\n", paste_last_error());
		return 1;
	}
	printf("paste-kv: ready transport=%s ifname=%s ip=%s port=%u busy_poll=%d pool=%s "
	       "frames=%u frame_size=%u max_value=%u max_key=%u max_request=%u reserve=%" PRIu64
	       " zerocopy=%d\n",
	       daemon_transport_name(d->d.paste.transport),
	       d->d.paste.ifname ? d->d.paste.ifname : "-", d->d.paste.ip ? d->d.paste.ip : "-",
	       d->d.port, d->d.paste.busy_poll,
	       d->d.paste.pool_path ? d->d.paste.pool_path : PASTE_POOL_DEFAULT_PATH,
	       st.frames_total, d->frame_size, d->max_value, d->max_key, d->lim.max_request,
	       d->reserve, st.zerocopy);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option extra[] = {
	    {"keys", required_argument, NULL, OPT_KEYS},
	    {"ttl-keys", required_argument, NULL, OPT_TTL_KEYS},
	    {"sub-keys", required_argument, NULL, OPT_SUB_KEYS},
	    {"undo-keys", required_argument, NULL, OPT_UNDO_KEYS},
	    {"max-key", required_argument, NULL, OPT_MAX_KEY},
	    {"max-value", required_argument, NULL, OPT_MAX_VALUE},
	    {"max-request", required_argument, NULL, OPT_MAX_REQUEST},
	    {"max-bulk", required_argument, NULL, OPT_MAX_BULK},
	    {"reserve-frames", required_argument, NULL, OPT_RESERVE},
	    {"copy-threshold", required_argument, NULL, OPT_COPY_THRESHOLD},
	    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
	    {NULL, 0, NULL, 0},
	};
	static struct kvd d = {.max_key = 512};
	int r;

	daemon_no_workers_why =
	    "any key can arrive on any worker, and paste-kv's index is not shared between worker "
	    "processes yet (neither a shared index with compare-and-swap updates nor key-sharded "
	    "workers is built: docs/multicore.md, \"paste-kv\"); run one paste-kv process";
	r = daemon_parse(argc, argv, &d.d, extra, extra_opt, &d, usage);
	if (r)
		return r == 1 ? 0 : 2;
	paste_set_print(NULL, NULL, d.d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	daemon_install_signals();
	r = setup(&d);
	if (!r)
		r = run(&d);
	if (d.ctx) {
		print_stats(&d);
		daemon_sig_ctx = NULL;
		paste_close(&d.ctx);
	}
	arena_reset(&d);
	free(d.arena);
	free(d.extra);
	free(d.hc);
	free(d.dead);
	free(d.watches);
	free(d.tx.seen);
	free(d.tx.gc);
	free(d.big);
	if (!r)
		printf("paste-kv: clean shutdown\n");
	return r;
}
