/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_table.c - paste-kv's command table (names, arities and key positions as Redis 7.0 has them,
 * for COMMAND and redis-cli's hints) and the dispatch of one request to its command.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "kv_primary.h"

#define W  F_WRITE
#define R  F_READ
#define FA F_FAST
#define C(name, arity, fn, flags, first, last, step, group, summary, since)                        \
	{                                                                                          \
		name, arity, fn, flags, first, last, step, group, summary, since, "O(1)"           \
	}

static const struct command commands[] = {
    C("lindex", 3, cmd_lindex, R, 1, 1, 1, "list", "Returns an element from a list by its index.",
      "1.0.0"),
    C("llen", 2, cmd_llen, R | FA, 1, 1, 1, "list", "Returns the length of a list.", "1.0.0"),
    C("lpop", -2, cmd_lpop, W | FA, 1, 1, 1, "list",
      "Returns the first elements in a list after removing it.", "1.0.0"),
    C("lpush", -3, cmd_lpush, W | FA, 1, 1, 1, "list", "Prepends one or more elements to a list.",
      "1.0.0"),
    C("lrange", 4, cmd_lrange, R, 1, 1, 1, "list", "Returns a range of elements from a list.",
      "1.0.0"),
    C("rpop", -2, cmd_rpop, W | FA, 1, 1, 1, "list",
      "Returns and removes the last elements of a list.", "1.0.0"),
    C("rpush", -3, cmd_rpush, W | FA, 1, 1, 1, "list", "Appends one or more elements to a list.",
      "1.0.0"),
    C("sadd", -3, cmd_sadd, W | FA, 1, 1, 1, "set", "Adds one or more members to a set.", "1.0.0"),
    C("scard", 2, cmd_scard, R | FA, 1, 1, 1, "set", "Returns the number of members in a set.",
      "1.0.0"),
    C("sismember", 3, cmd_sismember, R | FA, 1, 1, 1, "set",
      "Determines whether a member belongs to a set.", "1.0.0"),
    C("smembers", 2, cmd_smembers, R, 1, 1, 1, "set", "Returns all members of a set.", "1.0.0"),
    C("spop", -2, cmd_spop, W | FA, 1, 1, 1, "set",
      "Returns one or more random members from a set after removing them.", "1.0.0"),
    C("srandmember", -2, cmd_srandmember, R, 1, 1, 1, "set",
      "Get one or multiple random members from a set.", "1.0.0"),
    C("srem", -3, cmd_srem, W | FA, 1, 1, 1, "set", "Removes one or more members from a set.",
      "1.0.0"),
    C("zadd", -4, cmd_zadd, W | FA, 1, 1, 1, "sorted-set",
      "Adds members to a sorted set (score member ...).", "1.2.0"),
    C("zcard", 2, cmd_zcard, R | FA, 1, 1, 1, "sorted-set",
      "Returns the number of members in a sorted set.", "1.2.0"),
    C("zrange", -4, cmd_zrange, R, 1, 1, 1, "sorted-set",
      "Returns members in a sorted set by rank.", "1.2.0"),
    C("zscore", 3, cmd_zscore, R | FA, 1, 1, 1, "sorted-set",
      "Returns the score of a member in a sorted set.", "1.2.0"),
    C("append", 3, cmd_append, W, 1, 1, 1, "string", "Appends a string to the value of a key.",
      "2.0.0"),
    C("bitcount", -2, cmd_bitcount, R, 1, 1, 1, "bitmap", "Counts the set bits in a string.",
      "2.6.0"),
    C("bitpos", -3, cmd_bitpos, R, 1, 1, 1, "bitmap",
      "Finds the first set (1) or clear (0) bit in a string.", "2.8.7"),
    C("asking", 1, cmd_asking, FA, 0, 0, 0, "cluster",
      "Lets the next command run on this node whatever its key's slot.", "3.0.0"),
    C("bgsave", -1, cmd_bgsave, F_ADMIN | F_NOMULTI, 0, 0, 0, "server",
      "Asynchronously saves the database(s) to disk (every write is durable already).", "1.0.0"),
    C("client", -2, cmd_client, 0, 0, 0, 0, "connection",
      "Connection commands (ID, SETNAME, GETNAME, LIST, INFO).", "2.4.0"),
    C("cluster", -2, cmd_cluster, 0, 0, 0, 0, "cluster",
      "CLUSTER SLOTS/SHARDS/NODES/INFO/KEYSLOT/MYID/COUNTKEYSINSLOT/GETKEYSINSLOT.", "3.0.0"),
    C("command", -1, cmd_command, 0, 0, 0, 0, "server",
      "Returns detailed information about all commands.", "2.8.13"),
    C("config", -2, cmd_config, F_ADMIN, 0, 0, 0, "server", "CONFIG GET/SET/RESETSTAT/REWRITE.",
      "2.0.0"),
    C("copy", -3, cmd_copy, W, 1, 2, 1, "generic", "Copies the value of a key to a new key.",
      "6.2.0"),
    C("dbsize", 1, cmd_dbsize, R | FA, 0, 0, 0, "server",
      "Returns the number of keys in the database.", "1.0.0"),
    C("decr", 2, cmd_decr, W | FA, 1, 1, 1, "string",
      "Decrements the integer value of a key by one.", "1.0.0"),
    C("decrby", 3, cmd_decrby, W | FA, 1, 1, 1, "string",
      "Decrements a number from the integer value of a key.", "1.0.0"),
    C("del", -2, cmd_del, W, 1, -1, 1, "generic", "Deletes one or more keys.", "1.0.0"),
    C("discard", 1, cmd_discard, FA, 0, 0, 0, "transactions", "Discards a transaction.", "2.0.0"),
    C("echo", 2, cmd_echo, FA, 0, 0, 0, "connection", "Returns the given string.", "1.0.0"),
    C("exec", 1, cmd_exec, 0, 0, 0, 0, "transactions", "Executes all commands in a transaction.",
      "1.2.0"),
    C("exists", -2, cmd_exists, R | FA, 1, -1, 1, "generic",
      "Determines whether one or more keys exist.", "1.0.0"),
    C("expire", -3, cmd_expire, W | FA, 1, 1, 1, "generic",
      "Sets the expiration time of a key in seconds.", "1.0.0"),
    C("expireat", -3, cmd_expireat, W | FA, 1, 1, 1, "generic",
      "Sets the expiration time of a key to a Unix timestamp.", "1.2.0"),
    C("expiretime", 2, cmd_expiretime, R | FA, 1, 1, 1, "generic",
      "Returns the expiration time of a key as a Unix timestamp.", "7.0.0"),
    C("flushall", -1, cmd_flushall, W, 0, 0, 0, "server", "Removes all keys from all databases.",
      "1.0.0"),
    C("flushdb", -1, cmd_flushdb, W, 0, 0, 0, "server",
      "Removes all keys from the current database.", "1.0.0"),
    C("function", -2, cmd_function, 0, 0, 0, 0, "scripting",
      "FUNCTION FLUSH/LIST (no functions are kept).", "7.0.0"),
    C("get", 2, cmd_get, R | FA, 1, 1, 1, "string", "Returns the string value of a key.", "1.0.0"),
    C("getbit", 3, cmd_getbit, R | FA, 1, 1, 1, "bitmap", "Returns a bit value by offset.",
      "2.2.0"),
    C("getdel", 2, cmd_getdel, W | FA, 1, 1, 1, "string",
      "Returns the string value of a key after deleting the key.", "6.2.0"),
    C("getex", -2, cmd_getex, W | FA, 1, 1, 1, "string",
      "Returns the string value of a key after setting its expiration time.", "6.2.0"),
    C("getrange", 4, cmd_getrange, R, 1, 1, 1, "string",
      "Returns a substring of the string stored at a key.", "2.4.0"),
    C("getset", 3, cmd_getset, W | FA, 1, 1, 1, "string",
      "Returns the previous string value of a key after setting it to a new value.", "1.0.0"),
    C("hdel", -3, cmd_hdel, W | FA, 1, 1, 1, "hash",
      "Deletes one or more fields and their values from a hash.", "2.0.0"),
    C("hello", -1, cmd_hello, FA, 0, 0, 0, "connection", "Handshakes with the server (protocol 2).",
      "6.0.0"),
    C("hexists", 3, cmd_hexists, R | FA, 1, 1, 1, "hash",
      "Determines whether a field exists in a hash.", "2.0.0"),
    C("hget", 3, cmd_hget, R | FA, 1, 1, 1, "hash", "Returns the value of a field in a hash.",
      "2.0.0"),
    C("hgetall", 2, cmd_hgetall, R, 1, 1, 1, "hash", "Returns all fields and values in a hash.",
      "2.0.0"),
    C("hincrby", 4, cmd_hincrby, W | FA, 1, 1, 1, "hash",
      "Increments the integer value of a field in a hash by a number.", "2.0.0"),
    C("hincrbyfloat", 4, cmd_hincrbyfloat, W | FA, 1, 1, 1, "hash",
      "Increments the floating point value of a field by a number.", "2.6.0"),
    C("hkeys", 2, cmd_hkeys, R, 1, 1, 1, "hash", "Returns all fields in a hash.", "2.0.0"),
    C("hlen", 2, cmd_hlen, R | FA, 1, 1, 1, "hash", "Returns the number of fields in a hash.",
      "2.0.0"),
    C("hmget", -3, cmd_hmget, R | FA, 1, 1, 1, "hash",
      "Returns the values of all fields in a hash.", "2.0.0"),
    C("hmset", -4, cmd_hset, W | FA, 1, 1, 1, "hash", "Sets the values of multiple fields.",
      "2.0.0"),
    C("hrandfield", -2, cmd_hrandfield, R, 1, 1, 1, "hash",
      "Returns one or more random fields from a hash.", "6.2.0"),
    C("hscan", -3, cmd_hscan, R, 1, 1, 1, "hash", "Iterates over fields and values of a hash.",
      "2.8.0"),
    C("hset", -4, cmd_hset, W | FA, 1, 1, 1, "hash",
      "Creates or modifies the value of a field in a hash.", "2.0.0"),
    C("hsetnx", 4, cmd_hsetnx, W | FA, 1, 1, 1, "hash",
      "Sets the value of a field in a hash only when the field doesn't exist.", "2.0.0"),
    C("hstrlen", 3, cmd_hstrlen, R | FA, 1, 1, 1, "hash",
      "Returns the length of the value of a field.", "3.2.0"),
    C("hvals", 2, cmd_hvals, R, 1, 1, 1, "hash", "Returns all values in a hash.", "2.0.0"),
    C("incr", 2, cmd_incr, W | FA, 1, 1, 1, "string",
      "Increments the integer value of a key by one.", "1.0.0"),
    C("incrby", 3, cmd_incrby, W | FA, 1, 1, 1, "string",
      "Increments the integer value of a key by a number.", "1.0.0"),
    C("incrbyfloat", 3, cmd_incrbyfloat, W | FA, 1, 1, 1, "string",
      "Increment the floating point value of a key by a number.", "2.6.0"),
    C("info", -1, cmd_info, 0, 0, 0, 0, "server", "Returns information about the server.", "1.0.0"),
    C("keys", 2, cmd_keys, R, 0, 0, 0, "generic", "Returns all key names that match a pattern.",
      "1.0.0"),
    C("lcs", -3, cmd_lcs, R, 1, 2, 1, "string", "Finds the longest common substring.", "7.0.0"),
    C("mget", -2, cmd_mget, R | FA, 1, -1, 1, "string",
      "Atomically returns the string values of one or more keys.", "1.0.0"),
    C("mset", -3, cmd_mset, W, 1, -1, 2, "string",
      "Atomically creates or modifies the string values of one or more keys.", "1.0.1"),
    C("memory", -2, cmd_memory, R, 0, 0, 0, "server", "MEMORY USAGE: the pool bytes a key uses.",
      "4.0.0"),
    C("msetnx", -3, cmd_msetnx, W, 1, -1, 2, "string",
      "Sets several keys only when none of them exists.", "1.0.1"),
    C("multi", 1, cmd_multi, FA, 0, 0, 0, "transactions", "Starts a transaction.", "1.2.0"),
    C("object", -2, cmd_object, R, 2, 2, 1, "generic", "OBJECT ENCODING/REFCOUNT/IDLETIME/FREQ.",
      "2.2.3"),
    C("persist", 2, cmd_persist, W | FA, 1, 1, 1, "generic",
      "Removes the expiration time of a key.", "2.2.0"),
    C("pexpire", -3, cmd_pexpire, W | FA, 1, 1, 1, "generic",
      "Sets the expiration time of a key in milliseconds.", "2.6.0"),
    C("pexpireat", -3, cmd_pexpireat, W | FA, 1, 1, 1, "generic",
      "Sets the expiration time of a key to a Unix milliseconds timestamp.", "2.6.0"),
    C("pexpiretime", 2, cmd_pexpiretime, R | FA, 1, 1, 1, "generic",
      "Returns the expiration time of a key as a Unix milliseconds timestamp.", "7.0.0"),
    C("ping", -1, cmd_ping, FA, 0, 0, 0, "connection", "Returns the server's liveliness response.",
      "1.0.0"),
    C("psetex", 4, cmd_psetex, W, 1, 1, 1, "string",
      "Sets the string value and expiration time in milliseconds of a key.", "2.6.0"),
    C("pttl", 2, cmd_pttl, R | FA, 1, 1, 1, "generic",
      "Returns the expiration time in milliseconds of a key.", "2.6.0"),
    C("quit", -1, cmd_quit, FA, 0, 0, 0, "connection", "Closes the connection.", "1.0.0"),
    C("randomkey", 1, cmd_randomkey, R, 0, 0, 0, "generic",
      "Returns a random key name from the database.", "1.0.0"),
    C("readonly", 1, cmd_asking, FA, 0, 0, 0, "cluster",
      "Accepted: paste-kv has no replicas to read from.", "3.0.0"),
    C("readwrite", 1, cmd_asking, FA, 0, 0, 0, "cluster",
      "Accepted: paste-kv has no replicas to read from.", "3.0.0"),
    C("rename", 3, cmd_rename, W, 1, 2, 1, "generic",
      "Renames a key and overwrites the destination.", "1.0.0"),
    C("renamenx", 3, cmd_renamenx, W | FA, 1, 2, 1, "generic",
      "Renames a key only when the target key name doesn't exist.", "1.0.0"),
    C("replicaof", 3, cmd_replicaof, F_ADMIN, 0, 0, 0, "server",
      "Configures a server as replica of another, or promotes it to a master.", "5.0.0"),
    C("save", 1, cmd_save, F_ADMIN | F_NOMULTI, 0, 0, 0, "server",
      "Synchronously saves the database(s) to disk (every write is durable already).", "1.0.0"),
    C("scan", -2, cmd_scan, R, 0, 0, 0, "generic", "Iterates over the key names in the database.",
      "2.8.0"),
    C("shutdown", -1, cmd_shutdown, F_ADMIN | F_NOMULTI, 0, 0, 0, "server",
      "Shuts down the server (cleanly, as SIGTERM).", "1.0.0"),
    C("select", 2, cmd_select, FA, 0, 0, 0, "connection", "Changes the selected database (0-15).",
      "2.0.0"),
    C("set", -3, cmd_set, W, 1, 1, 1, "string",
      "Sets the string value of a key, ignoring its type.", "1.0.0"),
    C("slaveof", 3, cmd_replicaof, F_ADMIN, 0, 0, 0, "server",
      "Sets a Redis server as a replica of another, or promotes it to being a master.", "1.0.0"),
    C("setbit", 4, cmd_setbit, W, 1, 1, 1, "bitmap",
      "Sets or clears the bit at offset of the string value.", "2.2.0"),
    C("setex", 4, cmd_setex, W, 1, 1, 1, "string",
      "Sets the string value and expiration time of a key.", "2.0.0"),
    C("setnx", 3, cmd_setnx, W | FA, 1, 1, 1, "string",
      "Set the string value of a key only when the key doesn't exist.", "1.0.0"),
    C("setrange", 4, cmd_setrange, W, 1, 1, 1, "string",
      "Overwrites a part of a string value with another by an offset.", "2.2.0"),
    C("sort", -2, cmd_sort, W, 1, 1, 1, "generic",
      "Sorts the elements of a list, a set or a sorted set, optionally storing the result.",
      "1.0.0"),
    C("sort_ro", -2, cmd_sort_ro, R, 1, 1, 1, "generic",
      "Returns the sorted elements of a list, a set or a sorted set.", "7.0.0"),
    C("strlen", 2, cmd_strlen, R | FA, 1, 1, 1, "string", "Returns the length of a string value.",
      "2.2.0"),
    C("substr", 4, cmd_getrange, R, 1, 1, 1, "string", "Returns a substring from a string value.",
      "1.0.0"),
    C("time", 1, cmd_time, FA, 0, 0, 0, "server", "Returns the server time.", "2.6.0"),
    C("touch", -2, cmd_exists, R | FA, 1, -1, 1, "generic",
      "Returns the number of existing keys out of those specified.", "3.2.1"),
    C("ttl", 2, cmd_ttl, R | FA, 1, 1, 1, "generic",
      "Returns the expiration time in seconds of a key.", "1.0.0"),
    C("type", 2, cmd_type, R | FA, 1, 1, 1, "generic",
      "Determines the type of value stored at a key.", "1.0.0"),
    C("unlink", -2, cmd_del, W | FA, 1, -1, 1, "generic", "Deletes one or more keys.", "4.0.0"),
    C("unwatch", 1, cmd_unwatch, FA, 0, 0, 0, "transactions", "Forgets about all watched keys.",
      "2.2.0"),
    C("watch", -2, cmd_watch, FA, 1, -1, 1, "transactions",
      "Monitors changes to keys to determine the execution of a transaction.", "2.2.0"),
    /* replication primary and Sentinel's needs (kv_primary.c, kv_pubsub.c) */
    C("psync", -3, cmd_psync, F_ADMIN, 0, 0, 0, "server",
      "A replica's request for the replication stream from an offset.", "2.8.0"),
    C("publish", 3, cmd_publish, FA, 0, 0, 0, "pubsub", "Posts a message to a channel.", "2.0.0"),
    C("replconf", -1, cmd_replconf, F_ADMIN, 0, 0, 0, "server",
      "A replica's settings and acknowledged offsets.", "3.0.0"),
    C("role", 1, cmd_role, FA, 0, 0, 0, "server", "Returns the replication role.", "2.8.12"),
    C("subscribe", -2, cmd_subscribe, 0, 0, 0, 0, "pubsub",
      "Listens for messages published to channels.", "2.0.0"),
    C("sync", 1, cmd_sync, F_ADMIN, 0, 0, 0, "server",
      "A replica's request for a full copy and the replication stream.", "1.0.0"),
    C("unsubscribe", -1, cmd_unsubscribe, 0, 0, 0, 0, "pubsub",
      "Stops listening to messages posted to channels.", "2.0.0"),
    C("wait", 3, cmd_wait, 0, 0, 0, 0, "generic",
      "Blocks until the replicas acknowledged the writes so far, or the timeout.", "3.0.0"),
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

size_t ncommands(void)
{
	return NCOMMANDS;
}

const struct command *command_at(size_t i)
{
	return &commands[i];
}

size_t command_index(const struct command *c)
{
	return (size_t)(c - commands);
}

int (*command_fn(const struct command *c))(struct req *)
{
	return c->fn;
}

bool arity_ok(const struct command *c, unsigned argc)
{
	return c->arity > 0 ? (int)argc == c->arity : (int)argc >= -c->arity;
}

static const struct command *sorted[NCOMMANDS];

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const struct command *const *)a)->name,
	              (*(const struct command *const *)b)->name);
}

const struct command *find_command(const uint8_t *name, size_t n)
{
	size_t lo = 0, hi = NCOMMANDS;
	char low[16];

	if (!sorted[0]) { /* once: the table in name order, for a binary search */
		for (size_t i = 0; i < NCOMMANDS; i++)
			sorted[i] = &commands[i];
		qsort(sorted, NCOMMANDS, sizeof(sorted[0]), by_name);
	}
	if (n >= sizeof(low))
		return NULL;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower(name[i]);
	low[n] = 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(low, sorted[mid]->name);

		if (!c)
			return sorted[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
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
	struct kv_pmark m;
	int res;

	if (!name)
		return out_err(r->kc, "ERR request too large");
	cmd = r->found ? r->found : find_command(name, n);
	if (!cmd)
		return unknown_command(r, name, n);
	if (!arity_ok(cmd, r->cmd->argc))
		return out_err(r->kc, "ERR wrong number of arguments for '%s' command", cmd->name);
	if ((cmd->flags & F_WRITE) && replica_refuses(r))
		return 0;
	kv_primary_before(r, cmd, &m);
	res = cmd->fn(r);
	kv_primary_after(r, cmd, &m); /* the replication stream (kv_primary_prop.c) */
	return res;
}
