/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_rdb.h - a reader of Redis' RDB snapshot format (versions 1-10; Redis 7.0 writes 10), for
 * paste-kv as a replica (kv_replica.c) and for its unit test. It knows nothing of paste-kv: it
 * hands each string, hash, list, set and sorted set to a callback, decoded; streams are skipped
 * and counted. See kv_rdb_read.c for what is decoded.
 */
#ifndef PASTE_KV_RDB_H
#define PASTE_KV_RDB_H

#include <stddef.h>
#include <stdint.h>

enum rdb_kind { RDB_STRING, RDB_HASH, RDB_LIST, RDB_SET, RDB_ZSET };

/* One byte string, valid during the callback. */
struct rdb_str {
	const uint8_t *p;
	size_t n;
};

struct rdb_entry {
	int db; /* SELECTDB */
	/* RDB_STRING: @val; RDB_HASH: @fields (field, value, ...); RDB_LIST: the elements in
	 * order; RDB_SET: the members; RDB_ZSET: (member, score as text, ...) */
	enum rdb_kind kind;
	struct rdb_str key, val;
	struct rdb_str *fields;
	size_t nfields;    /* entries of @fields: twice the number of pairs */
	int64_t expire_ms; /* absolute Unix time in ms, or -1: none */
};

struct rdb_stats {
	unsigned version;
	uint64_t strings, hashes, colls, expires, aux, dbs; /* colls: lists, sets, sorted sets */
	uint64_t skipped;                                   /* keys of types not loaded */
	uint64_t skipped_type[32];                          /* ... by RDB type byte (0-31) */
	uint64_t crc_file, crc_calc;
	int crc_checked; /* 0: the file has no checksum (0, rdbchecksum no) */
};

/* @return 0 to go on, or a negative errno that stops the load (returned by rdb_load). */
typedef int (*rdb_entry_fn)(const struct rdb_entry *e, void *arg);

/*
 * Parse the RDB in @buf[0..@len) and call @fn for every key but streams, in file order.
 * @return 0 (whole file read, checksum right), -EBADMSG (malformed, truncated, bad checksum,
 * a type that cannot be skipped: @err says what and at which offset), -ENOMEM, or @fn's error.
 */
int rdb_load(const uint8_t *buf, size_t len, rdb_entry_fn fn, void *arg, struct rdb_stats *st,
             char *err, size_t errlen);

/* Redis' CRC-64 (Jones polynomial, reflected, as crc64.c): @crc 0 to start. */
uint64_t rdb_crc64(uint64_t crc, const void *p, size_t n);

#endif
