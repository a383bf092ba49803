/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_rdb_read.c - read a Redis RDB snapshot (kv_rdb.h): what a redis-server primary sends a
 * replica in a full resynchronisation, and what SAVE writes.
 *
 * Decoded: the header ("REDIS" + 4-digit version), AUX fields (counted), SELECTDB, RESIZEDB,
 * EXPIRETIME / EXPIRETIME_MS, LRU/LFU hints (ignored), string values (plain, integer-encoded,
 * LZF-compressed), hashes (pairs, ziplist, listpack), lists (plain, ziplist, quicklist of
 * ziplists, quicklist of listpacks and plain nodes), sets (plain, intset), sorted sets (text or
 * binary scores, ziplist, listpack), and the EOF opcode with its CRC-64 over the whole file. The
 * packed encodings are decoded in kv_rdb_pack.c. Skipped and counted: streams (and Redis < 2.6's
 * zipmap hashes). A module type cannot be skipped without the module: the load stops with
 * -EBADMSG.
 *
 * Every read is bounds-checked against the buffer; a malformed or truncated file fails with a
 * message naming the offset. Decoded strings that are not in the buffer as they are (integers,
 * LZF, entries of a listpack) live in scratch memory freed after each key's callback.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_rdb.h"
#include "kv_rdb_priv.h"

enum {
	OP_FUNCTION2 = 0xf5,
	OP_FUNCTION = 0xf6,
	OP_MODULE_AUX = 0xf7,
	OP_IDLE = 0xf8,
	OP_FREQ = 0xf9,
	OP_AUX = 0xfa,
	OP_RESIZEDB = 0xfb,
	OP_EXPIRETIME_MS = 0xfc,
	OP_EXPIRETIME = 0xfd,
	OP_SELECTDB = 0xfe,
	OP_EOF = 0xff,
};

enum {
	T_STRING = 0,
	T_LIST = 1,
	T_SET = 2,
	T_ZSET = 3,
	T_HASH = 4,
	T_ZSET_2 = 5,
	T_MODULE = 6,
	T_MODULE_2 = 7,
	T_HASH_ZIPMAP = 9,
	T_LIST_ZIPLIST = 10,
	T_SET_INTSET = 11,
	T_ZSET_ZIPLIST = 12,
	T_HASH_ZIPLIST = 13,
	T_LIST_QUICKLIST = 14,
	T_STREAM = 15,
	T_HASH_LISTPACK = 16,
	T_ZSET_LISTPACK = 17,
	T_LIST_QUICKLIST_2 = 18,
	T_STREAM_2 = 19,
};

int rdb_bad(struct rd *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->failed)
		return -EBADMSG;
	r->failed = true;
	n = snprintf(r->err, r->errlen, "RDB offset %zu: ", r->pos);
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < r->errlen)
		vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

uint8_t *rdb_scratch(struct rd *r, size_t n)
{
	void *p;

	if (r->nscratch == r->scratch_cap) {
		size_t cap = r->scratch_cap ? r->scratch_cap * 2 : 16;
		void **v = realloc(r->scratch, cap * sizeof(*v));

		if (!v)
			return NULL;
		r->scratch = v;
		r->scratch_cap = cap;
	}
	p = malloc(n ? n : 1);
	if (p)
		r->scratch[r->nscratch++] = p;
	return p;
}

static void scratch_free(struct rd *r)
{
	while (r->nscratch)
		free(r->scratch[--r->nscratch]);
}

static int need(struct rd *r, size_t n)
{
	if (n > r->len - r->pos)
		return rdb_bad(r, "truncated (%zu more bytes needed, %zu left)", n,
		               r->len - r->pos);
	return 0;
}

static int get_u8(struct rd *r, uint8_t *v)
{
	if (need(r, 1))
		return -EBADMSG;
	*v = r->b[r->pos++];
	return 0;
}

static int get_le(struct rd *r, unsigned n, uint64_t *v)
{
	if (need(r, n))
		return -EBADMSG;
	*v = rdb_le(r->b + r->pos, n);
	r->pos += n;
	return 0;
}

/* A length; *@enc set (and the special encoding in *@v) for the 11xxxxxx string encodings. */
static int get_len_enc(struct rd *r, uint64_t *v, bool *enc)
{
	uint8_t c, t = 0;

	*enc = false;
	if (get_u8(r, &c))
		return -EBADMSG;
	switch (c >> 6) {
	case 0:
		*v = c & 0x3f;
		return 0;
	case 1:
		if (get_u8(r, &t))
			return -EBADMSG;
		*v = (uint64_t)(c & 0x3f) << 8 | t;
		return 0;
	case 2:
		if (c != 0x80 && c != 0x81)
			return rdb_bad(r, "bad length byte 0x%02x", c);
		if (need(r, c == 0x80 ? 4 : 8))
			return -EBADMSG;
		*v = rdb_be(r->b + r->pos, c == 0x80 ? 4 : 8);
		r->pos += c == 0x80 ? 4 : 8;
		return 0;
	default:
		*enc = true;
		*v = c & 0x3f;
		return 0;
	}
}

static int get_len(struct rd *r, uint64_t *v)
{
	bool enc;

	if (get_len_enc(r, v, &enc))
		return -EBADMSG;
	return enc ? rdb_bad(r, "a string encoding where a length belongs") : 0;
}

int rdb_fmt_int(struct rd *r, int64_t v, struct rdb_str *out)
{
	uint8_t *p = rdb_scratch(r, 24);

	if (!p)
		return -ENOMEM;
	out->p = p;
	out->n = (size_t)snprintf((char *)p, 24, "%" PRId64, v);
	return 0;
}

/* LZF (liblzf's format, as Redis' lzf_d.c): @in[0..@inlen) into exactly @outlen bytes. */
static int lzf(struct rd *r, const uint8_t *in, size_t inlen, uint8_t *o, size_t outlen)
{
	size_t ip = 0, op = 0;

	while (ip < inlen) {
		unsigned ctrl = in[ip++];

		if (ctrl < 32) { /* literal run of ctrl + 1 bytes */
			size_t n = ctrl + 1u;

			if (n > inlen - ip || n > outlen - op)
				return rdb_bad(r, "LZF literal runs past its end");
			memcpy(o + op, in + ip, n);
			ip += n;
			op += n;
		} else { /* back reference */
			size_t n = ctrl >> 5, back;

			if (n == 7) {
				if (ip >= inlen)
					return rdb_bad(r, "LZF data truncated");
				n += in[ip++];
			}
			if (ip >= inlen)
				return rdb_bad(r, "LZF data truncated");
			back = ((ctrl & 0x1fu) << 8) + in[ip++] + 1;
			n += 2;
			if (back > op || n > outlen - op)
				return rdb_bad(r, "LZF back reference out of range");
			for (size_t i = 0; i < n; i++, op++)
				o[op] = o[op - back];
		}
	}
	return op == outlen ? 0 : rdb_bad(r, "LZF data gives %zu bytes, %zu expected", op, outlen);
}

/* A string: in the buffer as it is, or decoded into scratch. */
static int get_str(struct rd *r, struct rdb_str *out)
{
	uint64_t v = 0, clen = 0, ulen = 0;
	bool enc;
	uint8_t *o;

	if (get_len_enc(r, &v, &enc))
		return -EBADMSG;
	if (!enc) {
		if (need(r, v))
			return -EBADMSG;
		out->p = r->b + r->pos;
		out->n = (size_t)v;
		r->pos += v;
		return 0;
	}
	switch (v) {
	case 0: /* int8, int16, int32, little endian */
	case 1:
	case 2: {
		unsigned n = 1u << v;
		uint64_t u;

		if (get_le(r, n, &u))
			return -EBADMSG;
		return rdb_fmt_int(r, n == 1 ? (int8_t)u : n == 2 ? (int16_t)u : (int32_t)u, out);
	}
	case 3: /* LZF: compressed length, uncompressed length, data */
		if (get_len(r, &clen) || get_len(r, &ulen) || need(r, clen))
			return -EBADMSG;
		if (ulen > (1ull << 32))
			return rdb_bad(r, "LZF string of %" PRIu64 " bytes", ulen);
		o = rdb_scratch(r, ulen);
		if (!o)
			return -ENOMEM;
		if (lzf(r, r->b + r->pos, clen, o, ulen))
			return -EBADMSG;
		r->pos += clen;
		out->p = o;
		out->n = ulen;
		return 0;
	default:
		return rdb_bad(r, "unknown string encoding %" PRIu64, v);
	}
}

/* ---- skipping what is not loaded ------------------------------------------------------------ */

static int skip_strs(struct rd *r, uint64_t n)
{
	struct rdb_str s;

	for (uint64_t i = 0; i < n; i++)
		if (get_str(r, &s))
			return -EBADMSG;
	return 0;
}

/* A sorted set's (type 3) score: 1-byte length and ASCII, 253 nan, 254 +inf, 255 -inf. */
static int old_double(struct rd *r, struct rdb_str *out)
{
	static const char *const special[] = {"nan", "inf", "-inf"};
	uint8_t n;

	if (get_u8(r, &n))
		return -EBADMSG;
	if (n >= 253) {
		*out =
		    (struct rdb_str){(const uint8_t *)special[n - 253], strlen(special[n - 253])};
		return 0;
	}
	if (need(r, n))
		return -EBADMSG;
	*out = (struct rdb_str){r->b + r->pos, n};
	r->pos += n;
	return 0;
}

/* A sorted set's (type 5) score: an 8-byte IEEE double, little endian. */
static int bin_double(struct rd *r, struct rdb_str *out)
{
	uint64_t u;
	double v;
	uint8_t *p = rdb_scratch(r, 32);

	if (!p)
		return -ENOMEM;
	if (get_le(r, 8, &u))
		return -EBADMSG;
	memcpy(&v, &u, 8);
	out->p = p;
	out->n = (size_t)snprintf((char *)p, 32, "%.17g", v);
	return 0;
}

static int skip_bytes(struct rd *r, size_t n)
{
	if (need(r, n))
		return -EBADMSG;
	r->pos += n;
	return 0;
}

/* A stream (types 15 and 19): listpacks, metadata, consumer groups with their pending lists. */
static int skip_stream(struct rd *r, int type)
{
	uint64_t n, groups, pel, consumers, v;

	if (get_len(r, &n) || skip_strs(r, 2 * n))
		return -EBADMSG;
	if (get_len(r, &v) || get_len(r, &v) || get_len(r, &v)) /* length, last id */
		return -EBADMSG;
	if (type == T_STREAM_2 && (get_len(r, &v) || get_len(r, &v) || get_len(r, &v) ||
	                           get_len(r, &v) || get_len(r, &v)))
		return -EBADMSG; /* first id, max deleted id, entries added */
	if (get_len(r, &groups))
		return -EBADMSG;
	for (uint64_t g = 0; g < groups; g++) {
		if (skip_strs(r, 1) || get_len(r, &v) || get_len(r, &v))
			return -EBADMSG; /* name, last delivered id */
		if (type == T_STREAM_2 && get_len(r, &v))
			return -EBADMSG; /* entries read */
		if (get_len(r, &pel))
			return -EBADMSG;
		for (uint64_t i = 0; i < pel; i++) /* 16-byte id, 8-byte time, count */
			if (skip_bytes(r, 24) || get_len(r, &v))
				return -EBADMSG;
		if (get_len(r, &consumers))
			return -EBADMSG;
		for (uint64_t c = 0; c < consumers; c++) {
			if (skip_strs(r, 1) || skip_bytes(r, 8) || get_len(r, &pel) ||
			    skip_bytes(r, pel * 16))
				return -EBADMSG;
		}
	}
	return 0;
}

static int skip_value(struct rd *r, int type)
{
	switch (type) {
	case T_HASH_ZIPMAP: /* Redis < 2.6: rewritten to a ziplist when loaded there */
		return skip_strs(r, 1);
	case T_STREAM:
	case T_STREAM_2:
		return skip_stream(r, type);
	default:
		return rdb_bad(
		    r, "value of RDB type %d cannot be read or skipped (a module's type?)", type);
	}
}

/* Elements of @n strings, then (sorted sets) each followed by its score. */
static int strs(struct rd *r, struct fields *f, uint64_t n,
                int (*score)(struct rd *r, struct rdb_str *out))
{
	struct rdb_str s;

	for (uint64_t i = 0; i < n; i++) {
		if (get_str(r, &s) || rdb_push(f, s))
			return r->failed ? -EBADMSG : -ENOMEM;
		if (score && (score(r, &s) || rdb_push(f, s)))
			return r->failed ? -EBADMSG : -ENOMEM;
	}
	return 0;
}

/* A list, set or sorted set in any encoding into @f (sorted sets: member, score, ...). @return 0,
 * -EBADMSG, -ENOMEM, or 1: not a collection type. */
static int read_coll(struct rd *r, int type, struct fields *f, enum rdb_kind *kind)
{
	struct rdb_str s;
	uint64_t n, container;

	f->n = 0;
	*kind = type == T_SET || type == T_SET_INTSET ? RDB_SET
	        : type == T_ZSET || type == T_ZSET_2 || type == T_ZSET_ZIPLIST ||
	                type == T_ZSET_LISTPACK
	            ? RDB_ZSET
	            : RDB_LIST;
	switch (type) {
	case T_LIST:
	case T_SET:
		return get_len(r, &n) ? -EBADMSG : strs(r, f, n, NULL);
	case T_ZSET:
	case T_ZSET_2:
		return get_len(r, &n) ? -EBADMSG
		                      : strs(r, f, n, type == T_ZSET ? old_double : bin_double);
	case T_SET_INTSET:
	case T_LIST_ZIPLIST:
	case T_ZSET_ZIPLIST:
	case T_ZSET_LISTPACK:
		if (get_str(r, &s))
			return -EBADMSG;
		return type == T_SET_INTSET      ? rdb_intset(r, s, f)
		       : type == T_ZSET_LISTPACK ? rdb_listpack(r, s, f)
		                                 : rdb_ziplist(r, s, f);
	case T_LIST_QUICKLIST:
	case T_LIST_QUICKLIST_2:
		if (get_len(r, &n))
			return -EBADMSG;
		for (uint64_t i = 0; i < n; i++) {
			container = 2; /* packed */
			if ((type == T_LIST_QUICKLIST_2 && get_len(r, &container)) ||
			    get_str(r, &s))
				return -EBADMSG;
			if (container == 1) { /* a plain node: one large element */
				if (rdb_push(f, s))
					return -ENOMEM;
			} else if (type == T_LIST_QUICKLIST ? rdb_ziplist(r, s, f)
			                                    : rdb_listpack(r, s, f)) {
				return r->failed ? -EBADMSG : -ENOMEM;
			}
		}
		return 0;
	default:
		return 1;
	}
}

/* ---- the file ------------------------------------------------------------------------------- */

static int read_hash(struct rd *r, int type, struct fields *f)
{
	struct rdb_str s;
	uint64_t n;

	f->n = 0;
	if (type == T_HASH) {
		if (get_len(r, &n))
			return -EBADMSG;
		for (uint64_t i = 0; i < 2 * n; i++)
			if (get_str(r, &s) || rdb_push(f, s))
				return r->failed ? -EBADMSG : -ENOMEM;
		return 0;
	}
	if (get_str(r, &s))
		return -EBADMSG;
	if (type == T_HASH_ZIPLIST ? rdb_ziplist(r, s, f) : rdb_listpack(r, s, f))
		return r->failed ? -EBADMSG : -ENOMEM;
	if (f->n % 2)
		return rdb_bad(r, "hash with an odd number of entries (%zu)", f->n);
	return 0;
}

static int header(struct rd *r, struct rdb_stats *st)
{
	if (r->len < 9 || memcmp(r->b, "REDIS", 5))
		return rdb_bad(r, "not an RDB file (no REDIS header)");
	st->version = 0;
	for (int i = 5; i < 9; i++) {
		if (r->b[i] < '0' || r->b[i] > '9')
			return rdb_bad(r, "bad RDB version");
		st->version = st->version * 10 + (unsigned)(r->b[i] - '0');
	}
	if (st->version < 1 || st->version > 10)
		return rdb_bad(r, "RDB version %u (this reader knows 1-10, Redis <= 7.0)",
		               st->version);
	r->pos = 9;
	return 0;
}

static int body(struct rd *r, rdb_entry_fn fn, void *arg, struct rdb_stats *st)
{
	struct fields f = {0};
	int64_t expire = -1;
	int db = 0, err = 0;
	uint64_t v;

	for (;;) {
		struct rdb_entry e = {0};
		struct rdb_str a, b;
		uint8_t op;

		scratch_free(r);
		if (get_u8(r, &op))
			break;
		if (op == OP_EOF) {
			size_t at = r->pos;

			st->crc_calc = rdb_crc64(0, r->b, at);
			if (st->version >= 5 && !get_le(r, 8, &st->crc_file)) {
				st->crc_checked = st->crc_file != 0;
				if (st->crc_checked && st->crc_file != st->crc_calc)
					rdb_bad(r,
					        "checksum mismatch (file %016" PRIx64
					        ", data %016" PRIx64 ")",
					        st->crc_file, st->crc_calc);
			}
			break;
		}
		switch (op) {
		case OP_AUX:
			if (get_str(r, &a) || get_str(r, &b))
				goto out;
			st->aux++;
			continue;
		case OP_SELECTDB:
			if (get_len(r, &v))
				goto out;
			db = (int)v;
			st->dbs++;
			continue;
		case OP_RESIZEDB:
			if (get_len(r, &v) || get_len(r, &v))
				goto out;
			continue;
		case OP_EXPIRETIME_MS:
			if (get_le(r, 8, &v))
				goto out;
			expire = (int64_t)v;
			continue;
		case OP_EXPIRETIME:
			if (get_le(r, 4, &v))
				goto out;
			expire = (int64_t)v * 1000;
			continue;
		case OP_FREQ:
			if (get_u8(r, &op))
				goto out;
			continue;
		case OP_IDLE:
			if (get_len(r, &v))
				goto out;
			continue;
		case OP_FUNCTION2:
			if (get_str(r, &a))
				goto out;
			continue;
		case OP_MODULE_AUX:
		case OP_FUNCTION:
			rdb_bad(
			    r, "opcode 0x%02x (module data / Redis 7.0-rc functions) not supported",
			    op);
			goto out;
		default:
			break;
		}
		e.db = db;
		e.expire_ms = expire;
		expire = -1;
		if (get_str(r, &e.key))
			goto out;
		if (op == T_STRING) {
			e.kind = RDB_STRING;
			if (get_str(r, &e.val))
				goto out;
			st->strings++;
		} else if (op == T_HASH || op == T_HASH_ZIPLIST || op == T_HASH_LISTPACK) {
			err = read_hash(r, op, &f);
			if (err)
				goto out;
			e.kind = RDB_HASH;
			e.fields = f.v;
			e.nfields = f.n;
			st->hashes++;
		} else if ((err = read_coll(r, op, &f, &e.kind)) <= 0) {
			if (err || (e.kind == RDB_ZSET && f.n % 2)) {
				err = err == -ENOMEM ? err : 0;
				if (!err)
					rdb_bad(r, "sorted set of RDB type %d unreadable", op);
				goto out;
			}
			e.fields = f.v;
			e.nfields = f.n;
			st->colls++;
		} else {
			err = 0;
			if (skip_value(r, op))
				goto out;
			st->skipped++;
			st->skipped_type[op & 31]++;
			continue;
		}
		if (e.expire_ms >= 0)
			st->expires++;
		err = fn(&e, arg);
		if (err)
			goto out;
	}
out:
	scratch_free(r);
	free(f.v);
	return err ? err : r->failed ? -EBADMSG : 0;
}

int rdb_load(const uint8_t *buf, size_t len, rdb_entry_fn fn, void *arg, struct rdb_stats *st,
             char *err, size_t errlen)
{
	struct rd r = {.b = buf, .len = len, .err = err, .errlen = errlen};
	int res;

	memset(st, 0, sizeof(*st));
	if (errlen)
		err[0] = 0;
	res = header(&r, st);
	if (!res)
		res = body(&r, fn, arg, st);
	free(r.scratch);
	return res;
}

/* ---- CRC-64 -------------------------------------------------------------------------------- */

uint64_t rdb_crc64(uint64_t crc, const void *p, size_t n)
{
	static uint64_t table[256];
	const uint8_t *b = p;

	if (!table[1]) {
		for (unsigned i = 0; i < 256; i++) {
			uint64_t c = i;

			for (int k = 0; k < 8; k++)
				c = c & 1 ? c >> 1 ^ 0x95ac9329ac4bc9b5ull : c >> 1;
			table[i] = c;
		}
	}
	for (size_t i = 0; i < n; i++)
		crc = table[(uint8_t)(crc ^ b[i])] ^ crc >> 8;
	return crc;
}
