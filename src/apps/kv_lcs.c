/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_lcs.c - LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest common
 * subsequence of two strings, with Redis 7.0's dynamic programme and its walk back (so the match
 * ranges are the ones Redis reports, in the same order).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

struct lcs_opts {
	bool len, idx, withlen;
	int64_t minlen;
};

static int lcs_parse(struct req *r, struct lcs_opts *o)
{
	for (unsigned i = 3; i < r->cmd->argc; i++) {
		if (arg_is(r, i, "IDX")) {
			o->idx = true;
		} else if (arg_is(r, i, "LEN")) {
			o->len = true;
		} else if (arg_is(r, i, "WITHMATCHLEN")) {
			o->withlen = true;
		} else if (arg_is(r, i, "MINMATCHLEN") && i + 1 < r->cmd->argc) {
			if (!arg_ll(r, ++i, &o->minlen))
				return out_err(r->kc,
				               "ERR value is not an integer or out of range"),
				       -1;
			if (o->minlen < 0)
				o->minlen = 0;
		} else {
			return out_err(r->kc, "ERR syntax error"), -1;
		}
	}
	if (o->idx && o->len)
		return out_err(r->kc,
		               "ERR If you want both the length and indexes, please just use IDX."),
		       -1;
	return 0;
}

/* One of the two strings: its bytes (empty when the key is absent). @return -1 (replied). */
static int lcs_arg(struct req *r, unsigned i, const uint8_t **p, size_t *n)
{
	struct str k;
	struct obj o;

	*p = (const uint8_t *)"";
	*n = 0;
	if (arg_key(r, i, &k) || obj_lookup(r->d, &k, &o))
		return 0;
	if (!IS_STRING(o.type))
		return out_err(r->kc, "ERR The specified keys must contain string values"), -1;
	*p = obj_bytes(r->d, &o);
	*n = o.len;
	return *p ? 0 : (out_err(r->kc, "ERR out of memory"), -1);
}

int cmd_lcs(struct req *r)
{
	struct lcs_opts o = {0};
	const uint8_t *a, *b;
	size_t alen, blen;
	uint32_t *dp, idx, total, i, j, as, ae = 0, bs = 0, be = 0;
	uint8_t *res;
	size_t matches = 0;
	struct kconn *kc = r->kc;

	if (lcs_parse(r, &o) || lcs_arg(r, 1, &a, &alen) || lcs_arg(r, 2, &b, &blen))
		return 0;
	if (alen >= UINT32_MAX - 1 || blen >= UINT32_MAX - 1 ||
	    (alen + 1) * (blen + 1) > (SIZE_MAX / sizeof(uint32_t)))
		return out_err(kc, "ERR Insufficient memory, transient memory for LCS exceeds "
		                   "proto-max-bulk-len");
	dp = malloc((alen + 1) * (blen + 1) * sizeof(*dp));
	res = arena_alloc(r->d, alen + 1);
	if (!dp || !res) {
		free(dp);
		return out_err(kc, "ERR out of memory");
	}
#define LCS(x, y) dp[(size_t)(y) + (size_t)(x) * (blen + 1)]
	for (i = 0; i <= alen; i++) {
		for (j = 0; j <= blen; j++) {
			if (i == 0 || j == 0)
				LCS(i, j) = 0;
			else if (a[i - 1] == b[j - 1])
				LCS(i, j) = LCS(i - 1, j - 1) + 1;
			else
				LCS(i, j) =
				    LCS(i - 1, j) > LCS(i, j - 1) ? LCS(i - 1, j) : LCS(i, j - 1);
		}
	}
	idx = total = LCS(alen, blen);
	if (o.len) {
		free(dp);
		return out_hdr(kc, ':', idx);
	}
	res[idx] = 0;
	r->d->big_len = 0; /* the IDX reply's matches, counted first */
	as = (uint32_t)alen;
	i = (uint32_t)alen;
	j = (uint32_t)blen;
	while (i > 0 && j > 0) {
		bool emit = false;

		if (a[i - 1] == b[j - 1]) {
			res[idx - 1] = a[i - 1];
			if (as == alen) {
				as = ae = i - 1;
				bs = be = j - 1;
			} else if (as == i && bs == j) {
				as--;
				bs--;
			} else {
				emit = true;
			}
			if (as == 0 || bs == 0)
				emit = true;
			idx--;
			i--;
			j--;
		} else {
			if (LCS(i - 1, j) > LCS(i, j - 1))
				i--;
			else
				j--;
			if (as != alen)
				emit = true;
		}
		if (emit) {
			uint32_t mlen = ae - as + 1;

			if (o.idx && (o.minlen == 0 || mlen >= (uint64_t)o.minlen)) {
				char h[128];
				int n = snprintf(h, sizeof(h),
				                 "*%d\r\n*2\r\n:%u\r\n:%u\r\n*2\r\n:%u\r\n:%u\r\n",
				                 o.withlen ? 3 : 2, as, ae, bs, be);

				if (big_add(r->d, h, (size_t)n) ||
				    (o.withlen && big_printf(r->d, ":%u\r\n", mlen)))
					break;
				matches++;
			}
			as = (uint32_t)alen;
		}
	}
#undef LCS
	free(dp);
	if (!o.idx)
		return out_value(kc, res, total);
	return out_str(kc, "*4\r\n$7\r\nmatches\r\n") || out_hdr(kc, '*', (int64_t)matches) ||
	               out(kc, r->d->big, r->d->big_len) || out_str(kc, "$3\r\nlen\r\n") ||
	               out_hdr(kc, ':', total)
	           ? -ENOMEM
	           : 0;
}
