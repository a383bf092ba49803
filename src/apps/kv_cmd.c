/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_cmd.c - paste-kv's command table and dispatch, and the server/connection commands (PING, ECHO,
 * SELECT, COMMAND, CONFIG, INFO).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"

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

int cmd_select(struct req *r)
{
	int64_t db;

	if (!arg_ll(r, 1, &db) || db < INT32_MIN || db > INT32_MAX)
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if (db != 0)
		return out_err(r->kc, "ERR DB index is out of range");
	return out_str(r->kc, "+OK\r\n");
}

int cmd_quit(struct req *r)
{
	r->kc->quit = true;
	return out_str(r->kc, "+OK\r\n");
}

/* ---- the command table ---------------------------------------------------------------------- */

enum { F_WRITE = 1, F_READ = 2, F_FAST = 4, F_ADMIN = 8 };

struct command {
	const char *name;
	int arity; /* Redis' convention: n exactly, -n at least n */
	int (*fn)(struct req *r);
	unsigned flags;
	int first, last, step; /* key positions */
	const char *group, *summary, *since, *complexity;
};

static const struct command commands[] = {
    {"append", 3, cmd_append, F_WRITE, 1, 1, 1, "string",
     "Appends a string to the value of a key. Creates the key if it doesn't exist.", "2.0.0",
     "O(1)"},
    {"command", -1, cmd_command, 0, 0, 0, 0, "server",
     "Returns detailed information about all commands.", "2.8.13", "O(N)"},
    {"config", -2, cmd_config, F_ADMIN, 0, 0, 0, "server",
     "Returns the effective values of configuration parameters.", "2.0.0", "O(N)"},
    {"dbsize", 1, cmd_dbsize, F_READ | F_FAST, 0, 0, 0, "server",
     "Returns the number of keys in the database.", "1.0.0", "O(1)"},
    {"decr", 2, cmd_decr, F_WRITE | F_FAST, 1, 1, 1, "string",
     "Decrements the integer value of a key by one.", "1.0.0", "O(1)"},
    {"decrby", 3, cmd_decrby, F_WRITE | F_FAST, 1, 1, 1, "string",
     "Decrements a number from the integer value of a key.", "1.0.0", "O(1)"},
    {"del", -2, cmd_del, F_WRITE, 1, -1, 1, "generic", "Deletes one or more keys.", "1.0.0",
     "O(N)"},
    {"echo", 2, cmd_echo, F_FAST, 0, 0, 0, "connection", "Returns the given string.", "1.0.0",
     "O(1)"},
    {"exists", -2, cmd_exists, F_READ | F_FAST, 1, -1, 1, "generic",
     "Determines whether one or more keys exist.", "1.0.0", "O(N)"},
    {"flushall", -1, cmd_flushall, F_WRITE, 0, 0, 0, "server", "Removes all keys.", "1.0.0",
     "O(N)"},
    {"flushdb", -1, cmd_flushall, F_WRITE, 0, 0, 0, "server", "Removes all keys.", "1.0.0", "O(N)"},
    {"get", 2, cmd_get, F_READ | F_FAST, 1, 1, 1, "string", "Returns the string value of a key.",
     "1.0.0", "O(1)"},
    {"incr", 2, cmd_incr, F_WRITE | F_FAST, 1, 1, 1, "string",
     "Increments the integer value of a key by one.", "1.0.0", "O(1)"},
    {"incrby", 3, cmd_incrby, F_WRITE | F_FAST, 1, 1, 1, "string",
     "Increments the integer value of a key by a number.", "1.0.0", "O(1)"},
    {"info", -1, cmd_info, 0, 0, 0, 0, "server", "Returns information about the server.", "1.0.0",
     "O(1)"},
    {"keys", 2, cmd_keys, F_READ, 0, 0, 0, "generic", "Returns all key names that match a pattern.",
     "1.0.0", "O(N)"},
    {"mget", -2, cmd_mget, F_READ | F_FAST, 1, -1, 1, "string",
     "Atomically returns the string values of one or more keys.", "1.0.0", "O(N)"},
    {"mset", -3, cmd_mset, F_WRITE, 1, -1, 2, "string",
     "Atomically creates or modifies the string values of one or more keys.", "1.0.1", "O(N)"},
    {"ping", -1, cmd_ping, F_FAST, 0, 0, 0, "connection",
     "Returns the server's liveliness response.", "1.0.0", "O(1)"},
    {"pttl", 2, cmd_pttl, F_READ | F_FAST, 1, 1, 1, "generic",
     "Returns the expiration time in milliseconds of a key.", "2.6.0", "O(1)"},
    {"quit", -1, cmd_quit, F_FAST, 0, 0, 0, "connection", "Closes the connection.", "1.0.0",
     "O(1)"},
    {"scan", -2, cmd_scan, F_READ, 0, 0, 0, "generic",
     "Iterates over the key names in the database.", "2.8.0", "O(1) per call"},
    {"select", 2, cmd_select, F_FAST, 0, 0, 0, "connection",
     "Changes the selected database (only 0 exists).", "1.0.0", "O(1)"},
    {"set", -3, cmd_set, F_WRITE, 1, 1, 1, "string",
     "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
     "1.0.0", "O(1)"},
    {"strlen", 2, cmd_strlen, F_READ | F_FAST, 1, 1, 1, "string",
     "Returns the length of a string value.", "2.2.0", "O(1)"},
    {"ttl", 2, cmd_ttl, F_READ | F_FAST, 1, 1, 1, "generic",
     "Returns the expiration time in seconds of a key.", "1.0.0", "O(1)"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

const struct command *find_command(const uint8_t *name, size_t n)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const char *c = commands[i].name;
		size_t k = 0;

		if (strlen(c) != n)
			continue;
		while (k < n && tolower(name[k]) == c[k])
			k++;
		if (k == n)
			return &commands[i];
	}
	return NULL;
}

/* "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' " exactly as Redis 7 words it. */
int unknown_command(struct req *r, const uint8_t *name, size_t n)
{
	char args[160] = "";
	size_t alen = 0;

	for (unsigned i = 1; i < r->cmd->argc && alen < 128; i++) {
		const uint8_t *a = arg(r, i);
		int w;

		if (!a)
			break;
		w = snprintf(args + alen, sizeof(args) - alen, "'%.*s' ",
		             (int)(arg_len(r, i) < 128 - alen ? arg_len(r, i) : 128 - alen),
		             (const char *)a);
		if (w < 0 || (size_t)w >= sizeof(args) - alen)
			break;
		alen += (size_t)w;
	}
	return out_err(r->kc, "ERR unknown command '%.*s', with args beginning with: %s",
	               (int)(n < 128 ? n : 128), (const char *)name, args);
}

int execute(struct req *r)
{
	const struct command *cmd;
	const uint8_t *name = arg(r, 0);
	size_t n = arg_len(r, 0);
	int argc = (int)r->cmd->argc;

	r->d->st.cmds++;
	if (!name)
		return out_err(r->kc, "ERR request too large");
	cmd = find_command(name, n);
	if (!cmd)
		return unknown_command(r, name, n);
	if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity))
		return out_err(r->kc, "ERR wrong number of arguments for '%s' command", cmd->name);
	return cmd->fn(r);
}

/* ---- COMMAND, CONFIG, INFO ------------------------------------------------------------------ */

int command_info(struct kvd *d, const struct command *c)
{
	static const char *const fl[] = {"write", "readonly", "fast", "admin"};
	unsigned nf = 0;

	for (unsigned i = 0; i < 4; i++)
		nf += (c->flags >> i) & 1;
	if (big_printf(d, "*10\r\n") || big_bulk(d, c->name, strlen(c->name)) ||
	    big_printf(d, ":%d\r\n*%u\r\n", c->arity, nf))
		return -ENOMEM;
	for (unsigned i = 0; i < 4; i++)
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
		return out_hdr(r->kc, ':', (int64_t)NCOMMANDS);
	if (r->cmd->argc == 2 && arg_is(r, 1, "LIST")) {
		d->big_len = 0;
		for (size_t i = 0; i < NCOMMANDS; i++)
			big_bulk(d, commands[i].name, strlen(commands[i].name));
		return out_hdr(r->kc, '*', (int64_t)NCOMMANDS) || out(r->kc, d->big, d->big_len);
	}
	if (!docs && !info) {
		const uint8_t *a = arg(r, 1);

		return out_err(r->kc, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
		               (int)(arg_len(r, 1) < 128 ? arg_len(r, 1) : 128),
		               a ? (const char *)a : "");
	}
	d->big_len = 0;
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];
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

int cmd_config(struct req *r)
{
	struct kvd *d = r->d;
	char v[5][24];
	const char *params[][2] = {
	    {"save", ""},
	    {"appendonly", "no"},
	    {"databases", "1"},
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
	           "redis_mode:standalone\r\nos:Linux\r\nprocess_id:%d\r\ntcp_port:%u\r\n"
	           "transport:%s\r\nbusy_poll:%d\r\nuptime_in_seconds:%lld\r\n"
	           "connected_clients:%u\r\n\r\n",
	           (int)getpid(), d->d.port,
	           d->d.paste.transport == PASTE_TRANSPORT_KERNEL ? "kernel" : "paste",
	           d->d.paste.busy_poll, (long long)(time(NULL) - d->started), d->conns_open);
}

void info_persistence(struct kvd *d, const struct paste_stats *s)
{
	struct paste_pool_info pi;

	paste_pool__info(d->pool, &pi);
	big_printf(
	    d,
	    "# Persistence\r\nloading:0\r\naof_enabled:0\r\nrdb_changes_since_last_save:0\r\n"
	    "durability:every write fenced before its reply\r\npersist:%s\r\n"
	    "pool_path:%s\r\npool_size:%" PRIu64 "\r\npool_is_pmem:%d\r\n"
	    "pool_was_clean:%d\r\nframe_size:%u\r\nframes_total:%u\r\nframes_free:%u\r\n"
	    "frames_fill:%u\r\nframes_kept:%u\r\nreserve_frames:%" PRIu64 "\r\n"
	    "recovered_keys:%" PRIu64 "\r\nrecovered_expires:%" PRIu64 "\r\n"
	    "recovery_dropped:%" PRIu64 "\r\nstartup_expired:%" PRIu64 "\r\n"
	    "fences:%" PRIu64 "\r\npersisted_bytes:%" PRIu64 "\r\nkept_bytes:%" PRIu64
	    "\r\nkept_copied_bytes:%" PRIu64 "\r\n\r\n",
	    d->d.paste.no_persist ? "off" : "on",
	    d->d.paste.pool_path ? d->d.paste.pool_path : PASTE_POOL_DEFAULT_PATH, pi.size,
	    pi.is_pmem, pi.was_clean, pi.frame_size, s->frames_total, s->frames_free,
	    s->frames_fill, s->frames_kept, d->reserve, d->rec_kv.recovered, d->rec_ttl.recovered,
	    d->rec_kv.dropped + d->rec_ttl.dropped, d->start_expired, s->fences, s->persisted_bytes,
	    s->kept_bytes, s->kept_copied_bytes);
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
	    "\r\nvalues_copied_bytes:%" PRIu64 "\r\nvalues_computed:%" PRIu64
	    "\r\nkeys_in_place:%" PRIu64 "\r\nkeys_copied:%" PRIu64 "\r\nreplies_pinned:%" PRIu64
	    "\r\nreplies_copied:%" PRIu64 "\r\nrx_payload_bytes:%" PRIu64
	    "\r\nrx_copied_bytes:%" PRIu64 "\r\nrounds:%" PRIu64 "\r\n\r\n",
	    k->conns, k->cmds, k->hits, k->misses, k->expired, k->oom, k->proto_errors, k->skipped,
	    k->val_inplace, k->val_inplace_bytes, k->val_copied, k->val_copied_bytes,
	    k->val_computed, k->key_inplace, k->key_copied, k->pins, k->pin_copies,
	    s->rx_payload_bytes, s->rx_copied_bytes, s->rounds);
}

void info_keyspace(struct kvd *d)
{
	struct paste_kv_info i;

	paste_kv__info(d->kv, &i);
	big_printf(d, "# Keyspace\r\n");
	if (i.keys)
		big_printf(d, "db0:keys=%" PRIu64 ",expires=%" PRIu64 ",avg_ttl=0\r\n", i.keys,
		           ttl_count(d));
	big_printf(d, "capacity:%" PRIu64 "\r\nttl_capacity:%" PRIu64 "\r\n\r\n", i.capacity,
	           d->ttl_keys);
}

int cmd_info(struct req *r)
{
	static const char *const names[] = {"server", "persistence", "stats", "keyspace"};
	struct kvd *d = r->d;
	struct paste_stats s;
	bool want[4] = {r->cmd->argc == 1, r->cmd->argc == 1, r->cmd->argc == 1, r->cmd->argc == 1};

	for (unsigned k = 1; k < r->cmd->argc; k++)
		for (unsigned i = 0; i < 4; i++)
			want[i] |= arg_is(r, k, names[i]) || arg_is(r, k, "all") ||
			           arg_is(r, k, "default") || arg_is(r, k, "everything");
	paste_stats(d->ctx, &s, sizeof(s));
	d->big_len = 0;
	if (want[0])
		info_server(d);
	if (want[1])
		info_persistence(d, &s);
	if (want[2])
		info_stats(d, &s);
	if (want[3])
		info_keyspace(d);
	if (d->big_len >= 2)
		d->big_len -= 2; /* no blank line after the last section */
	return out_hdr(r->kc, '$', (int64_t)d->big_len) || out(r->kc, d->big, d->big_len) ||
	               out(r->kc, "\r\n", 2)
	           ? -ENOMEM
	           : 0;
}
