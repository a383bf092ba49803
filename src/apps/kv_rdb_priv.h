/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_rdb_priv.h - what the two files of the RDB reader share: the cursor over the file
 * (kv_rdb_read.c) and the decoders of packed encodings (kv_rdb_pack.c: ziplist, listpack, intset).
 */
#ifndef PASTE_KV_RDB_PRIV_H
#define PASTE_KV_RDB_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_rdb.h"

/* The cursor: every read is checked against @len; decoded strings live in @scratch until the
 * current key's callback returned. */
struct rd {
	const uint8_t *b;
	size_t len, pos;
	char *err;
	size_t errlen;
	bool failed;
	void **scratch; /* freed after each key */
	size_t nscratch, scratch_cap;
};

/* Decoded elements of one key. */
struct fields {
	struct rdb_str *v;
	size_t n, cap;
};

/* kv_rdb_read.c: fail with a message naming the offset (-EBADMSG); scratch memory; an integer as
 * decimal text in scratch. */
int rdb_bad(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint8_t *rdb_scratch(struct rd *r, size_t n);
int rdb_fmt_int(struct rd *r, int64_t v, struct rdb_str *out);

/* @n bytes at @p, little / big endian. */
static inline uint64_t rdb_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline uint64_t rdb_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* kv_rdb_pack.c: append the entries of a packed blob @z to @f. @return 0, -EBADMSG, -ENOMEM. */
int rdb_push(struct fields *f, struct rdb_str s);
int rdb_ziplist(struct rd *r, struct rdb_str z, struct fields *f);
int rdb_listpack(struct rd *r, struct rdb_str z, struct fields *f);
int rdb_intset(struct rd *r, struct rdb_str z, struct fields *f);

#endif
