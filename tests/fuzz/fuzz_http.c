/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_http.c - libFuzzer target for the HTTP request-head parser (src/apps/http.h).
 *
 * Input: [ncut][ncut piece lengths][stream]. The stream is a sequence of pipelined request heads
 * (and whatever follows them); it is fed to http_head_feed() twice: whole, and in pieces of the
 * given lengths (cycled). Checked: both feeds agree on every head (status, length, bytes) - a
 * head's framing must not depend on how TCP cut it; *taken never exceeds what was offered; a
 * complete head ends with its blank line; http_parse() of each complete head stays inside the
 * buffer and gives the same verdict twice; its pointers lie in the head.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "http.h"

#define MAX_CUTS  16
#define MAX_HEADS 8

struct feed_result {
	int st[MAX_HEADS];
	uint32_t len[MAX_HEADS];
	uint32_t crc[MAX_HEADS];
	unsigned nheads;
};

static uint32_t hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *b++) * 16777619u;
	return h;
}

static void check_req(const char *buf, size_t len, const struct http_req *r)
{
	FZ_CHECK(r->target >= buf && r->target + r->target_len <= buf + len);
	FZ_CHECK(r->path >= buf && r->path + r->path_len <= buf + len);
	if (r->query)
		FZ_CHECK(r->query >= buf && r->query + r->query_len <= buf + len);
	FZ_CHECK(r->head_len == len);
	FZ_CHECK(r->content_length <= HTTP_CONTENT_LENGTH_MAX);
	FZ_CHECK(r->has_length || r->content_length == 0);
}

/* A complete head: parse it (twice: the parser is pure) and poke at the query. */
static void parse_head(const struct http_head *h)
{
	struct http_req r1, r2;
	uint64_t v;
	char *copy = malloc(h->len ? h->len : 1);
	int st;

	FZ_CHECK(copy);
	memcpy(copy, h->buf, h->len); /* exactly the head: ASan sees any read past its end */
	st = http_parse(copy, h->len, &r1);
	FZ_CHECK(st == 0 || (st <= -400 && st >= -599));
	FZ_CHECK(http_reason(st ? -st : 200) != NULL);
	FZ_CHECK(http_parse(copy, h->len, &r2) == st);
	if (st == 0) {
		check_req(copy, h->len, &r1);
		FZ_CHECK(r1.content_length == r2.content_length && r1.method == r2.method);
		if (r1.query) {
			int q = http_query_u64(r1.query, r1.query_len, "seq", &v);

			FZ_CHECK(q == 0 || q == -1 || q == -2);
			q = http_query_u64(r1.query, r1.query_len, "", &v);
			FZ_CHECK(q == 0 || q == -1 || q == -2);
		}
	}
	free(copy);
}

/* Feed @data in pieces of @cut lengths (0 cuts: whole); record every head. */
static void feed(const uint8_t *data, size_t n, const uint8_t *cut, unsigned ncut,
                 struct feed_result *out, bool parse)
{
	static struct http_head h;
	size_t off = 0;
	unsigned k = 0;

	memset(out, 0, sizeof(*out));
	http_head_reset(&h);
	while (off < n && out->nheads < MAX_HEADS) {
		size_t piece = ncut ? (size_t)cut[k++ % ncut] + 1 : n - off, took = 0;
		int st;

		if (piece > n - off)
			piece = n - off;
		st = http_head_feed(&h, data + off, piece, &took);
		FZ_CHECK(took <= piece);
		FZ_CHECK(h.len <= HTTP_HEAD_MAX);
		FZ_CHECK(st == 0 || st == 1 || st == -431);
		if (st == 0)
			FZ_CHECK(took == piece);
		off += took;
		if (st == 0)
			continue;
		if (st == 1) {
			size_t again = 0;

			FZ_CHECK(h.len >= 2 && h.buf[h.len - 1] == '\n');
			FZ_CHECK(http_head_feed(&h, data, n, &again) == 1 && again == 0);
			if (parse)
				parse_head(&h);
		}
		out->st[out->nheads] = st;
		out->len[out->nheads] = h.len;
		out->crc[out->nheads] = hash(h.buf, h.len);
		out->nheads++;
		if (st < 0)
			break; /* 431: the connection closes */
		http_head_reset(&h);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	unsigned ncut = fz_u8(&f) % (MAX_CUTS + 1);
	size_t got;
	const uint8_t *cut = fz_bytes(&f, ncut, &got);
	struct feed_result whole, split;

	ncut = (unsigned)got;
	feed(f.p, f.n, NULL, 0, &whole, true);
	feed(f.p, f.n, cut, ncut, &split, false);
	FZ_CHECK(whole.nheads == split.nheads);
	for (unsigned i = 0; i < whole.nheads; i++) {
		FZ_CHECK(whole.st[i] == split.st[i]);
		FZ_CHECK(whole.len[i] == split.len[i]);
		FZ_CHECK(whole.crc[i] == split.crc[i]);
	}
	return 0;
}
