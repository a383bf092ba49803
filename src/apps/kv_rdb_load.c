/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_rdb_load.c - load a primary's RDB snapshot into paste-kv (a replica's full
 * resynchronisation, kv_replica.c): every database is flushed, then each key the reader
 * (kv_rdb_read.c) decodes is stored by running SET, HSET, RPUSH, SADD or ZADD (HSET_BATCH
 * pairs a call) and PEXPIREAT through the command table as the link's client, so it is kept,
 * flushed and fenced exactly as a client's write is. Keys already expired are not loaded; keys of
 * types the reader skips are counted and reported.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "kv_rdb.h"

#define HSET_BATCH 64 /* pairs (field value, score member) or 2x elements per command */

/* A request built in memory. */
struct rdb_loader {
	struct kvd *d;
	uint8_t *cmd;
	size_t cmd_len, cmd_cap;
	uint64_t loaded, skipped;
};

/* ---- requests built in memory --------------------------------------------------------------- */

static int cmd_add(struct rdb_loader *rp, const void *p, size_t n)
{
	if (rp->cmd_len + n > rp->cmd_cap) {
		size_t cap = rp->cmd_cap ? rp->cmd_cap : 4096;
		uint8_t *v;

		while (cap < rp->cmd_len + n)
			cap *= 2;
		v = realloc(rp->cmd, cap);
		if (!v)
			return -ENOMEM;
		rp->cmd = v;
		rp->cmd_cap = cap;
	}
	memcpy(rp->cmd + rp->cmd_len, p, n);
	rp->cmd_len += n;
	return 0;
}

static int cmd_arg(struct rdb_loader *rp, const void *p, size_t n)
{
	char h[32];
	int k = snprintf(h, sizeof(h), "$%zu\r\n", n);

	return cmd_add(rp, h, (size_t)k) || cmd_add(rp, p, n) || cmd_add(rp, "\r\n", 2) ? -ENOMEM
	                                                                                : 0;
}

static int cmd_start(struct rdb_loader *rp, size_t argc)
{
	char h[32];
	int k = snprintf(h, sizeof(h), "*%zu\r\n", argc);

	rp->cmd_len = 0;
	return cmd_add(rp, h, (size_t)k);
}

/* Run the request in rp->cmd as the link's client (its reply dropped). */
static int cmd_run(struct rdb_loader *rp, struct kconn *kc)
{
	struct resp_parser p;
	struct resp_seg seg = {.p = rp->cmd, .len = rp->cmd_len};
	struct resp_cmd cmd;
	struct resp_buf b;
	int err = 0;

	if (resp_parser_init(&p, &(struct resp_limits){.max_bulk = UINT32_MAX,
	                                               .max_arg = UINT32_MAX,
	                                               .max_request = UINT32_MAX}))
		return -ENOMEM;
	resp_buf_init(&b, &seg, 1);
	if (resp_parse(&p, &b, 0, &cmd) == RESP_CMD) {
		struct req q = {
		    .d = rp->d, .kc = kc, .b = &b, .base = 0, .cmd = &cmd, .queued = true};

		arena_reset(rp->d);
		execute(&q);
	} else {
		err = -EINVAL;
	}
	resp_parser_free(&p);
	out_drop(rp->d, kc);
	arena_reset(rp->d);
	return err;
}

/* ---- loading the RDB ------------------------------------------------------------------------ */

struct load {
	struct rdb_loader *rp;
	struct kconn *kc;
	uint64_t now_ms;
};

/* A hash, list, set or sorted set: HSET / RPUSH / SADD / ZADD of up to HSET_BATCH pairs (or
 * 2 * HSET_BATCH elements) a call. */
static int load_coll(struct load *l, const struct rdb_entry *e)
{
	static const char *const verb[] = {
	    [RDB_HASH] = "HSET", [RDB_LIST] = "RPUSH", [RDB_SET] = "SADD", [RDB_ZSET] = "ZADD"};
	const char *v = verb[e->kind];

	for (size_t i = 0; i < e->nfields; i += 2 * HSET_BATCH) {
		size_t n = e->nfields - i < 2 * HSET_BATCH ? e->nfields - i : 2 * HSET_BATCH;

		if (cmd_start(l->rp, 2 + n) || cmd_arg(l->rp, v, strlen(v)) ||
		    cmd_arg(l->rp, e->key.p, e->key.n))
			return -ENOMEM;
		for (size_t j = 0; j < n;
		     j++) { /* ZADD wants score member: the RDB has member score */
			size_t k = e->kind == RDB_ZSET ? i + (j ^ 1) : i + j;

			if (cmd_arg(l->rp, e->fields[k].p, e->fields[k].n))
				return -ENOMEM;
		}
		if (cmd_run(l->rp, l->kc))
			return -EINVAL;
	}
	return 0;
}

static int load_entry(const struct rdb_entry *e, void *arg)
{
	struct load *l = arg;
	struct rdb_loader *rp = l->rp;
	char ms[32];

	if (e->expire_ms >= 0 && (uint64_t)e->expire_ms <= l->now_ms)
		return 0; /* expired already: the primary deletes it too */
	if (e->db < 0 || e->db >= KV_DBS) {
		rp->skipped++;
		fprintf(stderr, "paste-kv: replica: a key of database %d skipped (0-%d only)\n",
		        e->db, KV_DBS - 1);
		return 0;
	}
	l->kc->db = e->db;
	if (e->kind == RDB_STRING) {
		if (cmd_start(rp, 3) || cmd_arg(rp, "SET", 3) || cmd_arg(rp, e->key.p, e->key.n) ||
		    cmd_arg(rp, e->val.p, e->val.n))
			return -ENOMEM;
		if (cmd_run(rp, l->kc))
			return -EINVAL;
	} else if (load_coll(l, e)) {
		return -ENOMEM;
	}
	if (e->expire_ms >= 0) {
		int k = snprintf(ms, sizeof(ms), "%" PRId64, e->expire_ms);

		if (cmd_start(rp, 3) || cmd_arg(rp, "PEXPIREAT", 9) ||
		    cmd_arg(rp, e->key.p, e->key.n) || cmd_arg(rp, ms, (size_t)k))
			return -ENOMEM;
		if (cmd_run(rp, l->kc))
			return -EINVAL;
	}
	rp->loaded++;
	return 0;
}

/* The whole RDB is in: flush every database, load it. @return 0 or -errno (message printed). */
int rdb_apply(struct kvd *d, struct kconn *kc, const uint8_t *rdb, size_t len, uint64_t *loaded,
              uint64_t *skipped)
{
	struct rdb_loader rl = {.d = d};
	struct load l = {.rp = &rl, .kc = kc, .now_ms = wall_ms()};
	struct rdb_stats st;
	char err[256];
	int r;

	if (cmd_start(&rl, 1) || cmd_arg(&rl, "FLUSHALL", 8) || cmd_run(&rl, kc)) {
		free(rl.cmd);
		return -ENOMEM;
	}
	r = rdb_load(rdb, len, load_entry, &l, &st, err, sizeof(err));
	free(rl.cmd);
	kc->db = 0;
	*loaded = rl.loaded;
	*skipped = rl.skipped + st.skipped;
	if (r) {
		fprintf(stderr, "paste-kv: replica: the primary's RDB cannot be loaded: %s\n",
		        r == -EBADMSG ? err : strerror(-r));
		return r;
	}
	for (int t = 0; t < 32; t++)
		if (st.skipped_type[t])
			fprintf(stderr,
			        "paste-kv: replica: warning: %" PRIu64
			        " keys of RDB type %d not loaded (streams are not supported)\n",
			        st.skipped_type[t], t);
	printf("paste-kv: replica: loaded %" PRIu64 " keys (%" PRIu64 " strings, %" PRIu64
	       " hashes, %" PRIu64 " lists/sets/sorted sets, %" PRIu64
	       " with expiry) from a %zu-byte RDB version %u%s, %" PRIu64 " skipped\n",
	       rl.loaded, st.strings, st.hashes, st.colls, st.expires, len, st.version,
	       st.crc_checked ? " (checksum right)" : " (no checksum)", *skipped);
	fflush(stdout);
	return 0;
}
