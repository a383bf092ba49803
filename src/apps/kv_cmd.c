/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_cmd.c - paste-kv's command table and dispatch, and the server/connection commands (PING, ECHO,
 * SELECT, COMMAND, CONFIG, INFO).
 */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"
#include "kv_multi_worker.h"
#include "kv_primary.h"

int cmd_ping(struct req *r)
{
	const uint8_t *a;

	if (r->cmd->argc > 2)
		return out_err(r->kc, "ERR wrong number of arguments for 'ping' command");
	if (r->cmd->argc == 1)
		return out_str(r->kc, "+PONG\r\n");
	a = arg(r, 1);
	if (!a)
		return out_err(r->kc, "ERR request too large");
	return out_hdr(r->kc, '$', arg_len(r, 1)) || out(r->kc, a, arg_len(r, 1)) ||
	               out(r->kc, "\r\n", 2)
	           ? -ENOMEM
	           : 0;
}

int cmd_echo(struct req *r)
{
	const uint8_t *a = arg(r, 1);

	if (!a)
		return out_err(r->kc, "ERR request too large");
	return out_hdr(r->kc, '$', arg_len(r, 1)) || out(r->kc, a, arg_len(r, 1)) ||
	               out(r->kc, "\r\n", 2)
	           ? -ENOMEM
	           : 0;
}

/* FUNCTION FLUSH/LIST/...: no functions are kept; the test harness flushes them between tests. */
int cmd_function(struct req *r)
{
	if (arg_is(r, 1, "FLUSH"))
		return out_str(r->kc, "+OK\r\n");
	if (arg_is(r, 1, "LIST") || arg_is(r, 1, "DUMP") || arg_is(r, 1, "STATS"))
		return out_str(r->kc, arg_is(r, 1, "DUMP") ? "$-1\r\n" : "*0\r\n");
	return out_err(r->kc, "ERR functions are not supported by paste-kv");
}

/* A connection's CLIENT KILL type: "normal", "master" (our link to a primary), "replica", "pubsub".
 */
static const char *client_type(const struct kconn *kc)
{
	if (kc->master)
		return "master";
	if (kv_primary_is_replica(kc))
		return "replica";
	return kc->pc && kc->pc->nchans ? "pubsub" : "normal";
}

/*
 * CLIENT KILL <filter value> ...: filters TYPE normal|master|replica|slave|pubsub, ID n and
 * SKIPME yes|no (default yes: the caller survives), all of which must match. Redis Sentinel sends
 * CLIENT KILL TYPE normal and TYPE pubsub when it turns a primary into a replica. The matching
 * connections are reset (their on_close runs at the end of the round); the reply is how many.
 * Only this process's connections (with --queues, the worker the caller talks to).
 */
static int client_kill(struct req *r)
{
	struct kconn *kc = r->kc;
	const char *type = NULL;
	int64_t id = -1, killed = 0;
	bool skipme = true;

	if (r->cmd->argc < 4 || r->cmd->argc % 2)
		return out_err(kc,
		               "ERR syntax error (paste-kv's CLIENT KILL takes filters: TYPE t, "
		               "ID n, SKIPME yes|no)");
	for (unsigned i = 2; i + 1 < r->cmd->argc; i += 2) {
		if (arg_is(r, i, "TYPE")) {
			static const char *const types[] = {"normal", "master", "replica", "slave",
			                                    "pubsub"};

			type = NULL;
			for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
				if (arg_is(r, i + 1, types[t]))
					type = t == 3 ? "replica" : types[t];
			if (!type)
				return out_err(
				    kc, "ERR Unknown client type '%.*s'",
				    (int)(arg_len(r, i + 1) < 64 ? arg_len(r, i + 1) : 64),
				    arg(r, i + 1) ? (const char *)arg(r, i + 1) : "");
		} else if (arg_is(r, i, "ID")) {
			if (!arg_ll(r, i + 1, &id) || id < 1)
				return out_err(kc, "ERR client-id should be greater than 0");
		} else if (arg_is(r, i, "SKIPME")) {
			if (!arg_is(r, i + 1, "yes") && !arg_is(r, i + 1, "no"))
				return out_err(kc, "ERR syntax error");
			skipme = arg_is(r, i + 1, "yes");
		} else {
			return out_err(kc,
			               "ERR syntax error (paste-kv's CLIENT KILL filters are TYPE, "
			               "ID and SKIPME)");
		}
	}
	for (struct daemon_conn *dc = r->d->loop.conns; dc; dc = dc->next) {
		struct kconn *o = (struct kconn *)((char *)dc - offsetof(struct kconn, dc));

		if (o->closing || (skipme && o == kc) || (id > 0 && o->id != (uint64_t)id) ||
		    (type && strcmp(type, client_type(o))))
			continue;
		if (o == kc) { /* SKIPME no: the reply goes out, then the connection closes */
			kc->quit = true;
		} else {
			paste_conn__abort(dc->c);
			o->closing = true;
		}
		killed++;
	}
	return out_hdr(kc, ':', killed);
}

/* CLIENT ID | SETNAME name | GETNAME | LIST | INFO | KILL filters | SETINFO | NO-EVICT | NO-TOUCH |
 * REPLY ON */
int cmd_client(struct req *r)
{
	struct kconn *kc = r->kc;
	char line[256];
	int n;

	if (arg_is(r, 1, "KILL"))
		return client_kill(r);
	if (arg_is(r, 1, "ID"))
		return out_hdr(kc, ':', (int64_t)kc->id);
	if (arg_is(r, 1, "SETNAME") && r->cmd->argc == 3) {
		const uint8_t *a = arg(r, 2);
		size_t len = arg_len(r, 2);

		for (size_t i = 0; a && i < len; i++)
			if (a[i] <= ' ' || a[i] > '~')
				return out_err(
				    kc, "ERR Client names cannot contain spaces, newlines or "
				        "special characters.");
		if (!a || len >= sizeof(kc->name))
			return out_err(kc, "ERR client name too long");
		memcpy(kc->name, a, len);
		kc->name[len] = 0;
		return out_str(kc, "+OK\r\n");
	}
	if (arg_is(r, 1, "GETNAME"))
		return kc->name[0] ? out_value(kc, (const uint8_t *)kc->name, strlen(kc->name))
		                   : out_str(kc, "$-1\r\n");
	if (arg_is(r, 1, "LIST") || arg_is(r, 1, "INFO")) {
		n = snprintf(line, sizeof(line),
		             "id=%" PRIu64 " name=%s db=%d multi=%d cmd=client\n", kc->id, kc->name,
		             kc->db, kc->multi ? (int)kc->mq_n : -1);
		return out_value(kc, (const uint8_t *)line, (size_t)n);
	}
	if (arg_is(r, 1, "SETINFO") || arg_is(r, 1, "NO-EVICT") || arg_is(r, 1, "NO-TOUCH") ||
	    (arg_is(r, 1, "REPLY") && r->cmd->argc == 3 && arg_is(r, 2, "ON")))
		return out_str(kc, "+OK\r\n");
	return out_err(kc, "ERR unknown subcommand or wrong number of arguments for 'CLIENT'");
}

/* HELLO [2 [AUTH u p] [SETNAME n]]: RESP2 only. */
int cmd_hello(struct req *r)
{
	struct kconn *kc = r->kc;
	int64_t ver = 2;

	if (r->cmd->argc >= 2 && !arg_ll(r, 1, &ver))
		return out_err(kc, "ERR Protocol version is not an integer or out of range");
	if (ver != 2)
		return out_str(kc, "-NOPROTO unsupported protocol version\r\n");
	for (unsigned i = 2; i < r->cmd->argc; i++) {
		if (arg_is(r, i, "SETNAME") && i + 1 < r->cmd->argc) {
			size_t len = arg_len(r, i + 1);
			const uint8_t *a = arg(r, ++i);

			if (a && len < sizeof(kc->name)) {
				memcpy(kc->name, a, len);
				kc->name[len] = 0;
			}
		} else if (arg_is(r, i, "AUTH") && i + 2 < r->cmd->argc) {
			i += 2;
		} else {
			return out_err(kc, "ERR Syntax error in HELLO option");
		}
	}
	return out_str(kc, "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n"
	                   "$5\r\nproto\r\n:2\r\n$2\r\nid\r\n") ||
	               out_hdr(kc, ':', (int64_t)kc->id) ||
	               out_str(kc, kc->d->cl ? "$4\r\nmode\r\n$7\r\ncluster\r\n"
	                                     : "$4\r\nmode\r\n$10\r\nstandalone\r\n") ||
	               out_str(kc, "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n")
	           ? -ENOMEM
	           : 0;
}

int cmd_time(struct req *r)
{
	struct timespec ts;
	char a[24], b[24];
	int na, nb;

	clock_gettime(CLOCK_REALTIME, &ts);
	na = snprintf(a, sizeof(a), "%lld", (long long)ts.tv_sec);
	nb = snprintf(b, sizeof(b), "%ld", ts.tv_nsec / 1000);
	return out_str(r->kc, "*2\r\n") || out_value(r->kc, (const uint8_t *)a, (size_t)na) ||
	               out_value(r->kc, (const uint8_t *)b, (size_t)nb)
	           ? -ENOMEM
	           : 0;
}

/* MEMORY USAGE key: the pool bytes the key's references name (key, value or header, pieces). */
int cmd_memory(struct req *r)
{
	struct str k;
	struct obj o;
	uint64_t n;

	if (!arg_is(r, 1, "USAGE") || r->cmd->argc < 3)
		return out_err(r->kc, "ERR unknown subcommand or wrong number of arguments for "
		                      "'MEMORY'");
	if (arg_key(r, 2, &k) || obj_lookup(r->d, &k, &o))
		return out_str(r->kc, "$-1\r\n");
	n = k.n + o.ref.len + 2 * sizeof(struct paste_ref);
	if (o.type == T_BIG)
		n += o.len + o.n * (12 + 2 * sizeof(struct paste_ref));
	else if (!IS_STRING(o.type))
		n += hash_count(r->d, o.gen) * (16 + 2 * sizeof(struct paste_ref));
	return out_hdr(r->kc, ':', (int64_t)n);
}

int cmd_quit(struct req *r)
{
	r->kc->quit = true;
	return out_str(r->kc, "+OK\r\n");
}

/* SAVE, BGSAVE: every acknowledged write is durable already (the round's fence); nothing to do. */
int cmd_save(struct req *r)
{
	return out_str(r->kc, "+OK\r\n");
}

int cmd_bgsave(struct req *r)
{
	if (r->cmd->argc > 2 || (r->cmd->argc == 2 && !arg_is(r, 1, "SCHEDULE")))
		return out_err(r->kc, "ERR syntax error");
	return out_str(r->kc, "+Background saving started\r\n");
}

/* SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: a clean shutdown, as SIGTERM (nothing to save: every
 * write is durable). As in Redis, a successful SHUTDOWN sends no reply. */
int cmd_shutdown(struct req *r)
{
	for (unsigned i = 1; i < r->cmd->argc; i++)
		if (!arg_is(r, i, "NOSAVE") && !arg_is(r, i, "SAVE") && !arg_is(r, i, "NOW") &&
		    !arg_is(r, i, "FORCE"))
			return out_err(r->kc, "ERR syntax error");
	daemon_got_stop = 1;
	r->kc->quit = true;
	return 0;
}

/* ---- COMMAND, CONFIG, INFO ------------------------------------------------------------------ */

int command_info(struct kvd *d, const struct command *c)
{
	static const char *const fl[] = {"write", "readonly", "fast", "admin", "no_multi"};
	unsigned nf = 0;

	for (unsigned i = 0; i < 5; i++)
		nf += (c->flags >> i) & 1;
	if (big_printf(d, "*10\r\n") || big_bulk(d, c->name, strlen(c->name)) ||
	    big_printf(d, ":%d\r\n*%u\r\n", c->arity, nf))
		return -ENOMEM;
	for (unsigned i = 0; i < 5; i++)
		if ((c->flags >> i) & 1 && big_printf(d, "+%s\r\n", fl[i]))
			return -ENOMEM;
	return big_printf(d, ":%d\r\n:%d\r\n:%d\r\n*0\r\n*0\r\n*0\r\n*0\r\n", c->first, c->last,
	                  c->step);
}

int command_docs(struct kvd *d, const struct command *c)
{
	if (big_bulk(d, c->name, strlen(c->name)) || big_printf(d, "*10\r\n") ||
	    big_bulk(d, "summary", 7) || big_bulk(d, c->summary, strlen(c->summary)) ||
	    big_bulk(d, "since", 5) || big_bulk(d, c->since, strlen(c->since)) ||
	    big_bulk(d, "group", 5) || big_bulk(d, c->group, strlen(c->group)) ||
	    big_bulk(d, "complexity", 10) || big_bulk(d, c->complexity, strlen(c->complexity)) ||
	    big_bulk(d, "arguments", 9) || big_printf(d, "*0\r\n"))
		return -ENOMEM;
	return 0;
}

/* COMMAND [COUNT | LIST | INFO name... | DOCS name...]: enough for redis-cli's help and hints. */
int cmd_command(struct req *r)
{
	struct kvd *d = r->d;
	bool docs = r->cmd->argc >= 2 && arg_is(r, 1, "DOCS");
	bool info = r->cmd->argc == 1 || arg_is(r, 1, "INFO");
	unsigned n = 0;

	if (r->cmd->argc == 2 && arg_is(r, 1, "COUNT"))
		return out_hdr(r->kc, ':', (int64_t)ncommands());
	if (r->cmd->argc == 2 && arg_is(r, 1, "LIST")) {
		d->big_len = 0;
		for (size_t i = 0; i < ncommands(); i++)
			big_bulk(d, (*command_at(i)).name, strlen((*command_at(i)).name));
		return out_hdr(r->kc, '*', (int64_t)ncommands()) || out(r->kc, d->big, d->big_len);
	}
	if (!docs && !info) {
		const uint8_t *a = arg(r, 1);

		return out_err(r->kc, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
		               (int)(arg_len(r, 1) < 128 ? arg_len(r, 1) : 128),
		               a ? (const char *)a : "");
	}
	d->big_len = 0;
	for (size_t i = 0; i < ncommands(); i++) {
		const struct command *c = &(*command_at(i));
		bool want = r->cmd->argc <= 2;

		for (unsigned k = 2; k < r->cmd->argc && !want; k++)
			want = arg_is(r, k, c->name);
		if (!want)
			continue;
		if (docs ? command_docs(d, c) : command_info(d, c))
			return -ENOMEM;
		n++;
	}
	/* COMMAND INFO of unknown names gives nil entries, like Redis */
	for (unsigned k = 2; info && k < r->cmd->argc; k++) {
		const uint8_t *a = arg(r, k);

		if (a && !find_command(a, arg_len(r, k))) {
			big_printf(d, "*-1\r\n");
			n++;
		}
	}
	return out_hdr(r->kc, '*', docs ? 2 * (int64_t)n : (int64_t)n) ||
	               out(r->kc, d->big, d->big_len)
	           ? -ENOMEM
	           : 0;
}

/* A memory size as CONFIG SET takes it ("100", "1mb", "2gb"). */
static bool memtoll(const uint8_t *a, size_t n)
{
	size_t i = 0;

	while (i < n && a[i] >= '0' && a[i] <= '9')
		i++;
	if (i == 0)
		return false;
	if (i == n)
		return true;
	return n - i <= 2 && strchr("kmgKMG", a[i]) &&
	       (n - i == 1 || a[i + 1] == 'b' || a[i + 1] == 'B');
}

/*
 * CONFIG SET name value ...: nothing here is tunable at run time; the harnesses' settings are
 * accepted (+OK) and ignored, except that a memory size that does not parse is refused as Redis
 * refuses it.
 */
static int config_set(struct req *r)
{
	if (r->cmd->argc < 4 || r->cmd->argc % 2)
		return out_err(r->kc, "ERR wrong number of arguments for 'config|set' command");
	for (unsigned i = 2; i + 1 < r->cmd->argc; i += 2) {
		const uint8_t *v = arg(r, i + 1);

		if ((arg_is(r, i, "maxmemory") || arg_is(r, i, "proto-max-bulk-len")) &&
		    (!v || !memtoll(v, arg_len(r, i + 1)))) {
			const uint8_t *name = arg(r, i);

			return out_err(
			    r->kc,
			    "ERR CONFIG SET failed (possibly related to argument '%.*s') - "
			    "argument couldn't be parsed into an integer",
			    (int)arg_len(r, i), name ? (const char *)name : "");
		}
	}
	return out_str(r->kc, "+OK\r\n");
}

int cmd_config(struct req *r)
{
	struct kvd *d = r->d;
	char v[5][24];
	const char *params[][2] = {
	    {"save", ""},
	    {"appendonly", "no"},
	    {"databases", "16"},
	    {"maxmemory", "0"},
	    {"proto-max-bulk-len", v[0]},
	    {"paste-max-value", v[1]},
	    {"paste-max-key", v[2]},
	    {"paste-max-request", v[3]},
	    {"paste-keys", v[4]},
	};
	unsigned n = 0;

	snprintf(v[0], sizeof(v[0]), "%" PRIu64, d->lim.max_bulk);
	snprintf(v[1], sizeof(v[1]), "%u", d->max_value);
	snprintf(v[2], sizeof(v[2]), "%u", d->max_key);
	snprintf(v[3], sizeof(v[3]), "%u", d->lim.max_request);
	snprintf(v[4], sizeof(v[4]), "%" PRIu64, d->keys);
	if (arg_is(r, 1, "SET"))
		return config_set(r);
	if (arg_is(r, 1, "RESETSTAT") || arg_is(r, 1, "REWRITE"))
		return out_str(r->kc, "+OK\r\n");
	if (!arg_is(r, 1, "GET")) {
		const uint8_t *a = arg(r, 1);

		return out_err(r->kc, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
		               (int)(arg_len(r, 1) < 128 ? arg_len(r, 1) : 128),
		               a ? (const char *)a : "");
	}
	if (r->cmd->argc < 3)
		return out_err(r->kc, "ERR wrong number of arguments for 'config|get' command");
	d->big_len = 0;
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		bool want = false;

		for (unsigned k = 2; k < r->cmd->argc && !want; k++) {
			const uint8_t *pat = arg(r, k);
			uint8_t low[128];
			size_t pl = arg_len(r, k) < sizeof(low) ? arg_len(r, k) : sizeof(low);

			for (size_t j = 0; pat && j < pl; j++)
				low[j] = (uint8_t)tolower(pat[j]);
			want = pat && resp_glob(low, pl, (const uint8_t *)params[i][0],
			                        strlen(params[i][0]));
		}
		if (!want)
			continue;
		big_bulk(d, params[i][0], strlen(params[i][0]));
		big_bulk(d, params[i][1], strlen(params[i][1]));
		n += 2;
	}
	return out_hdr(r->kc, '*', n) || out(r->kc, d->big, d->big_len) ? -ENOMEM : 0;
}

void info_server(struct kvd *d)
{
	big_printf(d,
	           "# Server\r\nredis_version:7.0.0\r\npaste_kv_version:" KV_VERSION "\r\n"
	           "redis_mode:%s\r\nos:Linux\r\nprocess_id:%d\r\ntcp_port:%u\r\n"
	           "transport:%s\r\nbusy_poll:%d\r\nuptime_in_seconds:%lld\r\n"
	           "connected_clients:%u\r\nmem_allocator:libc\r\n\r\n",
	           d->cl ? "cluster" : "standalone", (int)getpid(), d->d.port,
	           "redis_mode:standalone\r\nos:Linux\r\nprocess_id:%d\r\nrun_id:%s\r\n"
	           "tcp_port:%u\r\n"
	           "transport:%s\r\nbusy_poll:%d\r\nuptime_in_seconds:%lld\r\n"
	           "connected_clients:%u\r\nmem_allocator:libc\r\n\r\n",
	           (int)getpid(), kv_primary_runid(d), d->d.port,
	           daemon_transport_name(d->d.paste.transport), d->d.paste.busy_poll,
	           (long long)(time(NULL) - d->started), d->conns_open);
}

void info_persistence(struct kvd *d, const struct paste_stats *s)
{
	struct paste_pool_info pi;

	paste_pool__info(d->pool, &pi, sizeof(pi));
	big_printf(
	    d,
	    "# Persistence\r\nloading:0\r\naof_enabled:0\r\nrdb_changes_since_last_save:0\r\n"
	    "durability:every write fenced before its reply\r\npersist:%s\r\n"
	    "pool_path:%s\r\npool_size:%" PRIu64 "\r\npool_is_pmem:%d\r\n"
	    "pool_was_clean:%d\r\nframe_size:%u\r\nframes_total:%u\r\nframes_free:%u\r\n"
	    "frames_fill:%u\r\nfill_dry:%" PRIu64 "\r\nframes_kept:%u\r\nreserve_frames:%" PRIu64
	    "\r\n"
	    "pressure_frames:%" PRIu64 "\r\npool_pressure:%d\r\n"
	    "recovered_keys:%" PRIu64 "\r\nrecovered_expires:%" PRIu64 "\r\n"
	    "recovery_dropped:%" PRIu64 "\r\nstartup_expired:%" PRIu64 "\r\n"
	    "fences:%" PRIu64 "\r\npersisted_bytes:%" PRIu64 "\r\nkept_bytes:%" PRIu64
	    "\r\nkept_copied_bytes:%" PRIu64 "\r\nkept_pressure_copied_bytes:%" PRIu64 "\r\n\r\n",
	    d->d.paste.no_persist ? "off" : "on",
	    d->d.paste.pool_path ? d->d.paste.pool_path : PASTE_POOL_DEFAULT_PATH, pi.size,
	    pi.is_pmem, pi.was_clean, pi.frame_size, s->frames_total, s->frames_free,
	    s->frames_fill, s->fill_dry, s->frames_kept, d->reserve, d->pressure_frames,
	    s->frames_free < d->pressure_frames, d->rec_kv.recovered, d->rec_ttl.recovered,
	    d->rec_kv.dropped + d->rec_ttl.dropped, d->start_expired, s->fences, s->persisted_bytes,
	    s->kept_bytes, s->kept_copied_bytes, s->kept_pressure_copied_bytes);
}

void info_stats(struct kvd *d, const struct paste_stats *s)
{
	const struct kv_stats *k = &d->st;

	big_printf(
	    d,
	    "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\ntotal_commands_processed:%" PRIu64
	    "\r\nkeyspace_hits:%" PRIu64 "\r\nkeyspace_misses:%" PRIu64 "\r\nexpired_keys:%" PRIu64
	    "\r\nrejected_oom:%" PRIu64 "\r\nprotocol_errors:%" PRIu64
	    "\r\nskipped_requests:%" PRIu64 "\r\nvalues_in_place:%" PRIu64
	    "\r\nvalues_in_place_bytes:%" PRIu64 "\r\nvalues_copied:%" PRIu64
	    "\r\nvalues_copied_bytes:%" PRIu64 "\r\nvalues_packed:%" PRIu64
	    "\r\nvalues_packed_bytes:%" PRIu64 "\r\nkeys_packed:%" PRIu64
	    "\r\nvalues_computed:%" PRIu64 "\r\nkeys_in_place:%" PRIu64 "\r\nkeys_copied:%" PRIu64
	    "\r\nreplies_pinned:%" PRIu64 "\r\nreplies_copied:%" PRIu64
	    "\r\nrx_payload_bytes:%" PRIu64 "\r\nrx_copied_bytes:%" PRIu64 "\r\nrounds:%" PRIu64
	    "\r\nbig_values:%" PRIu64 "\r\nbig_pieces_in_place:%" PRIu64
	    "\r\nbig_pieces_copied:%" PRIu64 "\r\nlarge_requests_kept:%" PRIu64
	    "\r\nlarge_request_bytes_kept:%" PRIu64 "\r\nexpired_keys_active:%" PRIu64
	    "\r\ntransactions_logged:%" PRIu64 "\r\nundo_entries:%" PRIu64
	    "\r\nzerocopy:%d\r\n\r\n",
	    k->conns, k->cmds, k->hits, k->misses, k->expired + k->expired_active, k->oom,
	    k->proto_errors, k->skipped, k->val_inplace, k->val_inplace_bytes, k->val_copied,
	    k->val_copied_bytes, k->val_packed, k->val_packed_bytes, k->key_packed, k->val_computed,
	    k->key_inplace, k->key_copied, k->pins, k->pin_copies, s->rx_payload_bytes,
	    s->rx_copied_bytes, s->rounds, k->val_big, k->pieces_inplace, k->pieces_copied,
	    k->spills, k->spill_bytes, k->expired_active, d->tx.txs, d->tx.entries, s->zerocopy);
}

void info_keyspace(struct kvd *d)
{
	struct paste_kv_info i;

	paste_kv__info(d->kv, &i, sizeof(i));
	big_printf(d, "# Keyspace\r\n");
	if (i.keys)
		big_printf(d, "db0:keys=%" PRIu64 ",expires=%" PRIu64 ",avg_ttl=0\r\n", i.keys,
		           ttl_count(d));
	big_printf(d, "capacity:%" PRIu64 "\r\nttl_capacity:%" PRIu64 "\r\n\r\n", i.capacity,
	           d->ttl_keys);
}

int cmd_info(struct req *r)
{
	static const char *const names[] = {"server",   "persistence", "stats",
	                                    "keyspace", "cluster",     "replication"};
	struct kvd *d = r->d;
	struct paste_stats s;
	enum { N = sizeof(names) / sizeof(names[0]) };
	bool want[N];

	for (unsigned i = 0; i < N; i++)
		want[i] = r->cmd->argc == 1;
	for (unsigned k = 1; k < r->cmd->argc; k++)
		for (unsigned i = 0; i < N; i++)
			want[i] |= arg_is(r, k, names[i]) || arg_is(r, k, "all") ||
			           arg_is(r, k, "default") || arg_is(r, k, "everything");
	paste_stats(d->ctx, &s, sizeof(s));
	d->big_len = 0;
	if (want[0])
		info_server(d);
	if (want[1])
		info_persistence(d, &s);
	if (want[2]) {
		info_stats(d, &s);
		kvmw_info(d); /* --queues: every worker's counters */
	}
	if (want[5] && replica_active(d))
		info_replication(d); /* kv_replica.c: following a primary */
	else if (want[5])
		kv_primary_info(d); /* kv_primary.c: a primary, with or without replicas */
	if (want[4])
		info_cluster(d);
	if (want[3])
		info_keyspace(d);
	if (d->big_len >= 2)
		d->big_len -= 2; /* no blank line after the last section */
	return out_hdr(r->kc, '$', (int64_t)d->big_len) || out(r->kc, d->big, d->big_len) ||
	               out(r->kc, "\r\n", 2)
	           ? -ENOMEM
	           : 0;
}
