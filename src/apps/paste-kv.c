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

#include "daemon_workers.h"
#include "kv.h"
#include "kv_multi_worker.h"
#include "kv_primary.h"

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
	    "                       value or key larger than a frame, one per hash field\n"
	    "                       (default: keys)\n"
	    "  --undo-keys N        capacity of the undo log that makes EXEC, MSET, MSETNX\n"
	    "                       and HSET of several fields crash-atomic: one entry per\n"
	    "                       key or field a transaction changes (default keys/8,\n"
	    "                       at most 65536; less if an older pool lacks the room)\n"
	    "  --max-value SIZE     longest value (default 512M, Redis' limit)\n"
	    "  --max-key SIZE       longest key (default 512M, as values; at most 512M). A key\n"
	    "                       longer than frame size - 16 is kept as values larger than\n"
	    "                       a frame are: in the frames it arrived in, as pieces in the\n"
	    "                       piece index, named by a 26-byte hash surrogate. Hash\n"
	    "                       fields and set members stay within one frame (at most\n"
	    "                       frame size - 8), list elements too (frame size - 1)\n"
	    "  --max-request SIZE   largest request (all its arguments); larger ones are\n"
	    "                       skipped with an error (default 1G). A request is received\n"
	    "                       in place: its frames are kept as they arrive\n"
	    "  --max-bulk SIZE      a bulk length above this is a protocol error and closes\n"
	    "                       the connection, like Redis' proto-max-bulk-len (default 512M)\n"
	    "  --reserve-frames N   writes get -OOM while fewer frames are free (default 1/8\n"
	    "                       of the frames, at least 512)\n"
	    "  --copy-threshold SIZE  values and keys shorter than SIZE are copied into packing\n"
	    "                       frames instead of pinning the frame they arrived in\n"
	    "                       (default 0: in place while the pool has frames to spare)\n"
	    "  --pressure-frames N  while fewer than N frames are free, values, keys and\n"
	    "                       pieces shorter than half a frame are copied into packing\n"
	    "                       frames instead of pinning the frame they arrived in, so\n"
	    "                       small values received one per segment do not fill the pool\n"
	    "                       while their live bytes are few (default: twice\n"
	    "                       --reserve-frames, so packing starts before writes get -OOM;\n"
	    "                       0: never, always in place)\n"
	    "\n"
	    "  --idle-timeout S     reset a connection without any progress for S seconds\n"
	    "                       (default 0: never, like Redis' timeout 0)\n"
	    "  --request-timeout S  reset a connection whose request (command) is not complete\n"
	    "                       S seconds after its first byte (default 0: never)\n"
	    "Cluster options (docs/paste-kv.md, \"Cluster mode\"):\n"
	    "  --cluster-config FILE  serve as one node of a Redis Cluster whose static slot\n"
	    "                       map is FILE, the same file on every node. Lines:\n"
	    "                         node ID ADDRESS PORT RANGE...\n"
	    "                       ID: 40 hex digits; ADDRESS: the numeric IPv4/IPv6\n"
	    "                       address clients reach the node at; PORT: its port;\n"
	    "                       RANGE: a slot 0-16383 or FIRST-LAST; '#' starts a\n"
	    "                       comment. Each slot belongs to at most one node. Keys\n"
	    "                       of other nodes' slots get -MOVED slot addr:port, keys\n"
	    "                       of several slots -CROSSSLOT; CLUSTER SLOTS, SHARDS,\n"
	    "                       NODES, INFO, KEYSLOT, MYID, COUNTKEYSINSLOT and\n"
	    "                       GETKEYSINSLOT answer as Redis 7's do. The map changes\n"
	    "                       only by editing FILE and restarting the nodes\n"
	    "  --cluster-id ID      which line of FILE is this node (default: the line whose\n"
	    "                       PORT is --port and, if --ip is given, whose ADDRESS is\n"
	    "                       --ip)\n"
	    "Replication:\n"
	    "  --replicaof 'HOST PORT'  (or HOST:PORT) follow a Redis primary: load its\n"
	    "                       snapshot, apply its command stream (each write durable\n"
	    "                       in the pool before it is acknowledged), refuse writes from\n"
	    "                       clients with -READONLY. REPLICAOF NO ONE promotes it\n"
	    "                       (docs/paste-kv.md, \"Replica mode\")\n"
	    "Several queues (--queues N, see the common options): one worker process per\n"
	    "queue, each with its own store in its own slice of the --pool file. Keys are\n"
	    "sharded: a key belongs to worker hash(key) mod N (the hash of its {tag} when it\n"
	    "has one, as in Redis Cluster); a request for another worker's key is forwarded\n"
	    "to it through shared memory and answered once it is durable there. A request or\n"
	    "a MULTI whose keys are on several workers gets -CROSSSLOT (EXECABORT); FLUSHALL,\n"
	    "FLUSHDB, DBSIZE and KEYS cover every worker; SCAN and RANDOMKEY are refused.\n"
	    "Forwarded requests and replies are at most 1 MiB. INFO shows '# Workers'.\n"
	    "docs/multicore.md (\"paste-kv on N queues\").\n"
	    "Replication (paste-kv as the primary of redis-server replicas: SYNC/PSYNC,\n"
	    "WAIT, ROLE, INFO replication; docs/paste-kv.md, \"Replication\"):\n"
	    "  --repl-backlog-size SIZE  bytes of the replication stream kept for replicas\n"
	    "                       that reconnect (PSYNC continues inside it; default 1M,\n"
	    "                       16K-1G). Made when the first replica attaches.\n"
	    "  --repl-snapshot-step SIZE  a replica's full resync writes its RDB snapshot\n"
	    "                       while serving, this many bytes per event-loop round\n"
	    "                       (default 256K, 1K-64M): smaller keeps rounds shorter\n"
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
		if (daemon_parse_size(arg, &v) || v < 1 || v > (512u << 20))
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
	case OPT_REPL_BACKLOG:
		if (daemon_parse_size(arg, &v) || v < (16u << 10) || v > (1u << 30))
			break;
		d->repl_backlog = v;
		return 0;
	case OPT_REPL_SNAP_STEP:
		if (daemon_parse_size(arg, &v) || v < 1024 || v > (64u << 20))
			break;
		d->repl_snap_step = v;
		return 0;
	case OPT_IDLE_TIMEOUT:
		return daemon_parse_timeout("paste-kv", "idle-timeout", arg,
		                            &d->loop.idle_timeout_ms);
	case OPT_REQUEST_TIMEOUT:
		return daemon_parse_timeout("paste-kv", "request-timeout", arg,
		                            &d->loop.request_timeout_ms);
	case OPT_PRESSURE_FRAMES:
		if (daemon_parse_uint(arg, 0, UINT32_MAX, &d->pressure_frames))
			break;
		return 0;
	case OPT_COPY_THRESHOLD:
		if (daemon_parse_size(arg, &d->copy_threshold) || d->copy_threshold > 4096)
			break;
		return 0;
	case OPT_CLUSTER_CONFIG:
		d->cluster_config = arg;
		return 0;
	case OPT_CLUSTER_ID:
		d->cluster_id = arg;
		return 0;
	case OPT_REPLICAOF:
		return replica_opt(d, arg);
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
	       " val_packed=%" PRIu64 " key_packed=%" PRIu64 " pressure_copied_bytes=%" PRIu64
	       " val_computed=%" PRIu64 " key_inplace=%" PRIu64 " key_copied=%" PRIu64
	       " pins=%" PRIu64 " fences=%" PRIu64 " rounds=%" PRIu64 " rx_payload_bytes=%" PRIu64
	       " rx_copied_bytes=%" PRIu64 " frames_total=%u frames_free=%u frames_fill=%u"
	       " frames_rx=%u frames_tx=%u frames_kept=%u timeouts=%" PRIu64,
	       i.keys, k->cmds, d->conns_open, k->conns, k->hits, k->misses, k->expired, k->oom,
	       k->proto_errors, k->skipped, k->val_inplace, k->val_inplace_bytes, k->val_copied,
	       k->val_copied_bytes, k->val_packed, k->key_packed, s.kept_pressure_copied_bytes,
	       k->val_computed, k->key_inplace, k->key_copied, k->pins, s.fences, s.rounds,
	       s.rx_payload_bytes, s.rx_copied_bytes, s.frames_total, s.frames_free, s.frames_fill,
	       s.frames_rx, s.frames_tx, s.frames_kept,
	       d->loop.idle_timeouts + d->loop.request_timeouts);
	kvmw_stats(d); /* --queues: the forwarding counters */
	printf("\n");
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
	obj_reap(d);        /* after the round's fence: pieces of replaced objects */
	tx_gc(d);           /* and the undo entries of committed transactions */
	expire_cycle(d);    /* active expiry, every 100 ms */
	replica_tick(d);    /* --replicaof: the link, its ACKs (after the round's fence) */
	kvmw_tick(d);       /* --queues: forwarded requests and replies (after the reaping above:
	                     * what they retire is reaped after the next fence) */
	kv_primary_tick(d); /* WAIT timeouts, a snapshot being written, the stream's PING */
	return 0;
}

static void stats_hook(void *app)
{
	print_stats(app);
}

/* How long a round may wait: the shortest of what replica mode, --queues and the replication
 * primary need (-1: no limit). */
static int poll_ms(void *app)
{
	struct kvd *d = app;
	int t[] = {replica_poll_ms(d), kvmw_timeout(d), kv_primary_poll_ms(d)}, ms = -1;

	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i] >= 0 && (ms < 0 || t[i] < ms))
			ms = t[i];
	return ms;
}

static int run(struct kvd *d)
{
	d->loop.name = "paste-kv";
	d->loop.ctx = d->ctx;
	d->loop.app = d;
	d->loop.poll_timeout = poll_ms;
	d->loop.after_poll = after_round;
	d->loop.print_stats = stats_hook;
	return daemon_loop_run(&d->loop);
}

static int setup(struct kvd *d)
{
	struct paste_stats st;

	d->d.paste.copy_threshold = (uint32_t)d->copy_threshold;
	if (cluster_load(d))
		return 1;
	if (paste_open(&d->ctx, &d->d.paste)) {
		fprintf(stderr, "paste-kv: cannot start: %s\n", paste_last_error());
		return 1;
	}
	daemon_sig_ctx = d->ctx;
	if (open_store(d) || cluster_open(d))
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
	if (d->pressure_frames == KV_PRESSURE_AUTO)
		d->pressure_frames = 2 * d->reserve < UINT32_MAX ? 2 * d->reserve : UINT32_MAX;
	if (paste_set_copy_pressure(d->ctx, (uint32_t)d->pressure_frames, 0)) {
		fprintf(stderr, "paste-kv: %s\n", paste_last_error());
		return 1;
	}
	d->started = time(NULL);
	if (kv_primary_init(d, d->repl_backlog, d->repl_snap_step)) {
		fprintf(stderr, "paste-kv: out of memory for the replication state\n");
		return 1;
	}
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
	       " pressure_frames=%" PRIu64 " zerocopy=%d\n",
	       daemon_transport_name(d->d.paste.transport),
	       d->d.paste.ifname ? d->d.paste.ifname : "-", d->d.paste.ip ? d->d.paste.ip : "-",
	       d->d.port, d->d.paste.busy_poll,
	       d->d.paste.pool_path ? d->d.paste.pool_path : PASTE_POOL_DEFAULT_PATH,
	       st.frames_total, d->frame_size, d->max_value, d->max_key, d->lim.max_request,
	       d->reserve, d->pressure_frames, st.zerocopy);
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
	    {"pressure-frames", required_argument, NULL, OPT_PRESSURE_FRAMES},
	    {"cluster-config", required_argument, NULL, OPT_CLUSTER_CONFIG},
	    {"cluster-id", required_argument, NULL, OPT_CLUSTER_ID},
	    {"replicaof", required_argument, NULL, OPT_REPLICAOF},
	    {"repl-backlog-size", required_argument, NULL, OPT_REPL_BACKLOG},
	    {"repl-snapshot-step", required_argument, NULL, OPT_REPL_SNAP_STEP},
	    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
	    {NULL, 0, NULL, 0},
	};
	static struct kvd d = {.max_key = 512u << 20, .pressure_frames = KV_PRESSURE_AUTO};
	int r;

	daemon_supports_workers = true;
	r = daemon_parse(argc, argv, &d.d, extra, extra_opt, &d, usage);
	if (r)
		return r == 1 ? 0 : 2;
	if (d.d.queues > 1 && (d.cluster_config || d.repl)) {
		fprintf(stderr,
		        "paste-kv: --queues %u cannot be combined with %s yet: run one process "
		        "per node (docs/multicore.md)\n",
		        d.d.queues, d.cluster_config ? "--cluster-config" : "--replicaof");
		return 2;
	}
	if (d.d.queues > 1 && kvmw_create(d.d.queues))
		return 1;
	if (daemon_workers_supervise(&d.d, "paste-kv", &r))
		return r;
	paste_set_print(NULL, NULL, d.d.verbose ? PASTE_LOG_DEBUG : PASTE_LOG_INFO);
	daemon_install_signals();
	r = setup(&d);
	if (!r && d.d.worker >= 0) {
		r = kvmw_start(&d, (unsigned)d.d.worker) ? 1 : 0;
		if (!r)
			daemon_workers_ready();
	}
	if (!r)
		r = run(&d);
	if (d.ctx) {
		print_stats(&d);
		daemon_sig_ctx = NULL;
		paste_close(&d.ctx);
	}
	kv_primary_free(&d);
	arena_reset(&d);
	cluster_close(&d);
	free(d.arena);
	free(d.extra);
	free(d.hc);
	free(d.dead);
	free(d.watches);
	free(d.tx.seen);
	free(d.tx.gc);
	free(d.lk_new);
	free(d.lk_dead);
	free(d.big);
	replica_free(&d);
	if (!r)
		printf("paste-kv: clean shutdown\n");
	return r;
}
