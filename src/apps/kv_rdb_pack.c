/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_rdb_pack.c - the RDB reader's decoders of Redis' packed encodings: ziplist (Redis 2.6-6.2's
 * small hashes, lists and sorted sets, and the nodes of old quicklists), listpack (Redis 7's) and
 * intset (small sets of integers). Every read is bounded by the blob; integers become decimal
 * text (scratch memory of the reader).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_rdb_priv.h"

/* ---- hashes in a ziplist or a listpack ------------------------------------------------------ */

int rdb_push(struct fields *f, struct rdb_str s)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct rdb_str *v = realloc(f->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = s;
	return 0;
}

/* Entries of ziplist @z (Redis 2.6-6.2's small hashes): prevlen, encoding, data; 0xff ends. */
int rdb_ziplist(struct rd *r, struct rdb_str z, struct fields *f)
{
	const uint8_t *p = z.p, *end = z.p + z.n;

	if (z.n < 11)
		return rdb_bad(r, "ziplist of %zu bytes", z.n);
	p += 10; /* zlbytes, zltail, zllen */
	while (p < end && *p != 0xff) {
		struct rdb_str s;
		uint8_t e;
		int64_t iv;
		size_t n = 0;
		int ib = 0;

		p += *p == 0xfe ? 5 : 1; /* prevlen */
		if (p >= end)
			break;
		e = *p++;
		if ((e >> 6) == 0) {
			n = e & 0x3f;
		} else if ((e >> 6) == 1) {
			if (p >= end)
				break;
			n = (size_t)(e & 0x3f) << 8 | *p++;
		} else if (e == 0x80) {
			if (end - p < 4)
				break;
			n = (size_t)rdb_be(p, 4);
			p += 4;
		} else if (e == 0xc0) {
			ib = 2;
		} else if (e == 0xd0) {
			ib = 4;
		} else if (e == 0xe0) {
			ib = 8;
		} else if (e == 0xf0) {
			ib = 3;
		} else if (e == 0xfe) {
			ib = 1;
		} else if (e >= 0xf1 && e <= 0xfd) {
			ib = -1;
		} else {
			return rdb_bad(r, "ziplist entry encoding 0x%02x", e);
		}
		if (ib > 0) {
			uint64_t u;

			if (end - p < ib)
				break;
			u = rdb_le(p, (unsigned)ib);
			iv = ib == 1   ? (int8_t)u
			     : ib == 2 ? (int16_t)u
			     : ib == 3 ? (int64_t)(u << 40) >> 40
			     : ib == 4 ? (int32_t)u
			               : (int64_t)u;
			p += ib;
		} else if (ib < 0) {
			iv = (e & 0x0f) - 1;
		}
		if (ib) {
			if (rdb_fmt_int(r, iv, &s) || rdb_push(f, s))
				return -ENOMEM;
			continue;
		}
		if ((size_t)(end - p) < n)
			break;
		if (rdb_push(f, (struct rdb_str){p, n}))
			return -ENOMEM;
		p += n;
	}
	if (p >= end || *p != 0xff)
		return rdb_bad(r, "ziplist truncated");
	return 0;
}

/* Bytes of a listpack entry's back-length for an entry of @n bytes. */
static size_t lp_backlen(size_t n)
{
	return n <= 127 ? 1 : n < 16383 ? 2 : n < 2097151 ? 3 : n < 268435455 ? 4 : 5;
}

/* Entries of listpack @z (Redis 7's small hashes): encoding, data, back-length; 0xff ends. */
int rdb_listpack(struct rd *r, struct rdb_str z, struct fields *f)
{
	const uint8_t *p = z.p, *end = z.p + z.n;

	if (z.n < 7)
		return rdb_bad(r, "listpack of %zu bytes", z.n);
	p += 6; /* total bytes, element count */
	while (p < end && *p != 0xff) {
		const uint8_t *start = p;
		uint8_t e = *p++;
		size_t n = 0, hdr;
		int ib = 0;
		int64_t iv = 0;
		struct rdb_str s;

		if (!(e & 0x80)) { /* 0xxxxxxx: 7-bit unsigned */
			ib = -1;
			iv = e & 0x7f;
		} else if ((e & 0xc0) == 0x80) { /* 10xxxxxx: string up to 63 */
			n = e & 0x3f;
		} else if ((e & 0xe0) == 0xc0) { /* 110xxxxx: 13-bit signed */
			if (p >= end)
				break;
			ib = -1;
			iv = (int64_t)((uint64_t)(e & 0x1f) << 8 | *p++);
			if (iv >= 1 << 12)
				iv -= 1 << 13;
		} else if ((e & 0xf0) == 0xe0) { /* 1110xxxx: string up to 4095 */
			if (p >= end)
				break;
			n = (size_t)(e & 0x0f) << 8 | *p++;
		} else if (e == 0xf0) { /* 32-bit string length */
			if (end - p < 4)
				break;
			n = (size_t)rdb_le(p, 4);
			p += 4;
		} else if (e >= 0xf1 && e <= 0xf4) {
			ib = e == 0xf1 ? 2 : e == 0xf2 ? 3 : e == 0xf3 ? 4 : 8;
		} else {
			return rdb_bad(r, "listpack entry encoding 0x%02x", e);
		}
		if (ib > 0) {
			uint64_t u;

			if (end - p < ib)
				break;
			u = rdb_le(p, (unsigned)ib);
			iv = ib == 2   ? (int16_t)u
			     : ib == 3 ? (int64_t)(u << 40) >> 40
			     : ib == 4 ? (int32_t)u
			               : (int64_t)u;
			p += ib;
		}
		if (ib) {
			if (rdb_fmt_int(r, iv, &s) || rdb_push(f, s))
				return -ENOMEM;
		} else {
			if ((size_t)(end - p) < n)
				break;
			if (rdb_push(f, (struct rdb_str){p, n}))
				return -ENOMEM;
			p += n;
		}
		hdr = (size_t)(p - start);
		if ((size_t)(end - p) < lp_backlen(hdr))
			break;
		p += lp_backlen(hdr);
	}
	if (p >= end || *p != 0xff)
		return rdb_bad(r, "listpack truncated");
	return 0;
}

/* Members of intset @z: encoding (2, 4 or 8 bytes), count, then the integers, little endian. */
int rdb_intset(struct rd *r, struct rdb_str z, struct fields *f)
{
	uint64_t enc, n;
	struct rdb_str s;

	if (z.n < 8)
		return rdb_bad(r, "intset of %zu bytes", z.n);
	enc = rdb_le(z.p, 4);
	n = rdb_le(z.p + 4, 4);
	if ((enc != 2 && enc != 4 && enc != 8) || n > (z.n - 8) / enc)
		return rdb_bad(r, "intset header (encoding %" PRIu64 ", %" PRIu64 " members)", enc,
		               n);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t u = rdb_le(z.p + 8 + i * enc, (unsigned)enc);
		int64_t v = enc == 2 ? (int16_t)u : enc == 4 ? (int32_t)u : (int64_t)u;

		if (rdb_fmt_int(r, v, &s) || rdb_push(f, s))
			return -ENOMEM;
	}
	return 0;
}
