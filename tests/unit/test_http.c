/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_http.c - src/apps/http.c, paste-wal's request-head parser: valid heads, pipelined requests,
 * a head split at every byte (and fed byte by byte), malformed request lines and header lines,
 * heads over the size limit, bad Content-Length, Transfer-Encoding, Expect, Host rules, query
 * parsing, and random input that must never be read or written out of bounds (run it under the
 * PASTE_SANITIZE build).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http.h"

/* Feed all of @s in one piece; parse when complete. @return http_parse()'s result, or 1 when the
 * head is incomplete, or the feed's error. *took gets the bytes the feed took. */
static int feed_parse(struct http_head *h, const char *s, size_t len, struct http_req *r,
                      size_t *took)
{
	int st;

	http_head_reset(h);
	st = http_head_feed(h, s, len, took);
	if (st != 1)
		return st == 0 ? 1 : st;
	return http_parse(h->buf, h->len, r);
}

static int parse_str(const char *s, struct http_req *r)
{
	static struct http_head h;
	size_t took;

	return feed_parse(&h, s, strlen(s), r, &took);
}

static void test_valid_get(void **state)
{
	struct http_req r;

	assert_int_equal(parse_str("GET /log/42?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
	assert_int_equal(r.method, HTTP_M_GET);
	assert_int_equal(r.target_len, 11);
	assert_memory_equal(r.path, "/log/42", 7);
	assert_int_equal(r.path_len, 7);
	assert_non_null(r.query);
	assert_int_equal(r.query_len, 3);
	assert_memory_equal(r.query, "x=1", 3);
	assert_int_equal(r.minor, 1);
	assert_true(r.keep_alive);
	assert_false(r.has_length);
	assert_int_equal(r.content_length, 0);
	assert_false(r.expect_continue);
}

static void test_valid_post(void **state)
{
	struct http_req r;
	const char *s = "POST /log HTTP/1.1\r\nHost: a\r\ncontent-LENGTH:  1280 \r\n"
	                "Connection: keep-alive, Close\r\nExpect: 100-Continue\r\n\r\n";

	assert_int_equal(parse_str(s, &r), 0);
	assert_int_equal(r.method, HTTP_M_POST);
	assert_null(r.query);
	assert_true(r.has_length);
	assert_int_equal(r.content_length, 1280);
	assert_false(r.keep_alive); /* close wins */
	assert_true(r.expect_continue);
	assert_int_equal(r.head_len, strlen(s));
}

static void test_versions_and_keepalive(void **state)
{
	struct http_req r;

	assert_int_equal(parse_str("GET / HTTP/1.0\r\n\r\n", &r), 0); /* no Host needed */
	assert_false(r.keep_alive);
	assert_int_equal(parse_str("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), 0);
	assert_true(r.keep_alive);
	assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &r),
	                 0);
	assert_false(r.keep_alive);
	assert_int_equal(parse_str("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &r), -505);
	assert_int_equal(parse_str("GET * HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
	assert_int_equal(parse_str("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
	assert_int_equal(r.method, HTTP_M_OTHER);
	/* One empty line before the request line is tolerated. */
	assert_int_equal(parse_str("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
	assert_int_equal(r.method, HTTP_M_GET);
}

static void test_pipelined(void **state)
{
	static const char s[] = "POST /log HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
	                        "GET /log/1 HTTP/1.1\r\nHost: a\r\n\r\n"
	                        "DELETE /log?upto=1 HTTP/1.1\r\nHost: a\r\n\r\n";
	static struct http_head h;
	struct http_req r;
	size_t off = 0, took;
	enum http_method want[] = {HTTP_M_POST, HTTP_M_GET, HTTP_M_DELETE};

	for (int i = 0; i < 3; i++) {
		assert_int_equal(feed_parse(&h, s + off, sizeof(s) - 1 - off, &r, &took), 0);
		assert_int_equal(took, r.head_len);
		assert_int_equal(r.method, want[i]);
		off += took + r.content_length; /* the body is never copied */
		if (i == 0)
			assert_memory_equal(s + off - 3, "abc", 3);
	}
	assert_int_equal(off, sizeof(s) - 1);
}

/* The same head split into two pieces at every byte, and fed one byte at a time. */
static void test_split_everywhere(void **state)
{
	static const char s[] = "POST /log?a=1 HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n"
	                        "X-Long: 0123456789abcdef\r\n\r\nhello";
	size_t head = strstr(s, "\r\n\r\n") + 4 - s, took, t2;
	static struct http_head h;
	struct http_req r;

	for (size_t cut = 0; cut <= sizeof(s) - 1; cut++) {
		int st;

		http_head_reset(&h);
		st = http_head_feed(&h, s, cut, &took);
		assert_int_equal(st, cut >= head ? 1 : 0);
		if (st == 0) {
			assert_int_equal(took, cut);
			st = http_head_feed(&h, s + cut, sizeof(s) - 1 - cut, &t2);
			took += t2;
		}
		assert_int_equal(st, 1);
		assert_int_equal(took, head);
		assert_int_equal(http_parse(h.buf, h.len, &r), 0);
		assert_int_equal(r.content_length, 5);
		assert_int_equal(http_head_feed(&h, "x", 1, &t2), 1); /* complete: takes nothing */
		assert_int_equal(t2, 0);
	}
	http_head_reset(&h);
	for (size_t i = 0; i < head; i++) {
		assert_int_equal(http_head_feed(&h, s + i, 1, &took), i + 1 == head ? 1 : 0);
		assert_int_equal(took, 1);
	}
	assert_int_equal(http_parse(h.buf, h.len, &r), 0);
	assert_memory_equal(r.path, "/log", 4);
}

static void test_malformed_request_lines(void **state)
{
	static const char *const bad[] = {
	    "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",           /* two spaces */
	    "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",           /* trailing space */
	    " GET / HTTP/1.1\r\nHost: a\r\n\r\n",           /* leading space */
	    "GET /\r\nHost: a\r\n\r\n",                     /* no version */
	    "GET / HTTP/1.x\r\nHost: a\r\n\r\n",            /* bad version */
	    "GET / HTTP/11\r\nHost: a\r\n\r\n",             /* bad version */
	    "GET / http/1.1\r\nHost: a\r\n\r\n",            /* lower-case protocol name */
	    "GET log HTTP/1.1\r\nHost: a\r\n\r\n",          /* not origin-form */
	    "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",            /* not a token */
	    "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",       /* control byte in the target */
	    "GET / HTTP/1.1\nHost: a\r\n\r\n",              /* bare LF */
	    "GET / HTTP/1.1\r\nHost: a\n\n",                /* bare LFs end the head */
	    "GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n",          /* bare CR */
	    "GET / HTTP/1.1\r\nHost : a\r\n\r\n",           /* space before the colon */
	    "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", /* obs-fold */
	    "GET / HTTP/1.1\r\n: empty\r\n\r\n",            /* empty field name */
	    "GET / HTTP/1.1\r\nHost a\r\n\r\n",             /* no colon */
	    "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",        /* DEL in a value */
	    "GET / HTTP/1.1\r\n\r\n",                       /* HTTP/1.1 without Host */
	    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", /* two Hosts */
	    "\r\n\r\n",                                     /* nothing */
	    "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",    /* two empty lines first */
	    "AVERYVERYVERYVERYVERYVERYLONGMETHOD / HTTP/1.1\r\nHost: a\r\n\r\n",
	};
	struct http_req r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = parse_str(bad[i], &r);

		if (st != -400)
			fail_msg("case %zu: got %d, want -400", i, st);
	}
	/* A NUL inside a line (strlen-free input). */
	{
		static const char s[] = "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n";
		static struct http_head h;
		size_t took;

		assert_int_equal(feed_parse(&h, s, sizeof(s) - 1, &r, &took), -400);
	}
}

static void test_huge_head(void **state)
{
	static struct http_head h;
	static char big[HTTP_HEAD_MAX + 100];
	struct http_req r;
	size_t took, n;

	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(big + n, 'a', sizeof(big) - n);
	http_head_reset(&h);
	assert_int_equal(http_head_feed(&h, big, sizeof(big), &took), -431);
	assert_int_equal(took, HTTP_HEAD_MAX);
	/* Fed in pieces, the limit holds at the same byte. */
	http_head_reset(&h);
	assert_int_equal(http_head_feed(&h, big, 5000, &took), 0);
	assert_int_equal(http_head_feed(&h, big + 5000, sizeof(big) - 5000, &took), -431);
	assert_int_equal(took, HTTP_HEAD_MAX - 5000);
	/* Exactly HTTP_HEAD_MAX bytes is still fine. */
	memcpy(big + HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
	http_head_reset(&h);
	assert_int_equal(http_head_feed(&h, big, sizeof(big), &took), 1);
	assert_int_equal(took, HTTP_HEAD_MAX);
	assert_int_equal(http_parse(h.buf, h.len, &r), 0);
}

static void test_content_length(void **state)
{
	static const struct {
		const char *v;
		int st;
		uint64_t len;
	} t[] = {
	    {"0", 0, 0},
	    {"1048576", 0, 1048576},
	    {"007", 0, 7},
	    {"4611686018427387904", 0, 1ull << 62},
	    {"4611686018427387905", -400, 0},
	    {"99999999999999999999", -400, 0},
	    {"-1", -400, 0},
	    {"+5", -400, 0},
	    {"5, 5", -400, 0},
	    {"1 2", -400, 0},
	    {"0x10", -400, 0},
	    {"", -400, 0},
	    {"12a", -400, 0},
	};
	char buf[256];
	struct http_req r;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int st;

		snprintf(buf, sizeof(buf),
		         "POST /log HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", t[i].v);
		st = parse_str(buf, &r);
		if (st != t[i].st)
			fail_msg("Content-Length '%s': got %d, want %d", t[i].v, st, t[i].st);
		if (!st)
			assert_int_equal(r.content_length, t[i].len);
	}
	assert_int_equal(parse_str("POST /log HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
	                           "Content-Length: 5\r\n\r\n",
	                           &r),
	                 -400); /* duplicates refused, even equal ones */
}

static void test_transfer_encoding_and_expect(void **state)
{
	struct http_req r;

	assert_int_equal(parse_str("POST /log HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	                           "\r\n",
	                           &r),
	                 -411);
	assert_int_equal(parse_str("POST /log HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, "
	                           "Chunked\r\n\r\n",
	                           &r),
	                 -411);
	assert_int_equal(
	    parse_str("POST /log HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &r),
	    -501);
	assert_int_equal(parse_str("POST /log HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
	                           "Transfer-Encoding: chunked\r\n\r\n",
	                           &r),
	                 -411); /* both: never trust the length */
	assert_int_equal(parse_str("POST /log HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n", &r),
	                 -417);
}

static void test_query(void **state)
{
	const char *q = "from=10&limit=5&x=&big=18446744073709551615&over=18446744073709551616";
	uint64_t v = 0;

	assert_int_equal(http_query_u64(q, strlen(q), "from", &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(http_query_u64(q, strlen(q), "limit", &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(http_query_u64(q, strlen(q), "x", &v), -2);
	assert_int_equal(http_query_u64(q, strlen(q), "big", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(http_query_u64(q, strlen(q), "over", &v), -2);
	assert_int_equal(http_query_u64(q, strlen(q), "upto", &v), -1);
	assert_int_equal(http_query_u64(q, strlen(q), "fro", &v), -1);
	assert_int_equal(http_query_u64(q, 7, "from", &v), 0); /* bounded by the length */
	assert_int_equal(v, 10);
	assert_int_equal(http_query_u64(NULL, 0, "from", &v), -1);
	assert_int_equal(http_query_u64("from=-1", 7, "from", &v), -2);
	assert_string_equal(http_reason(201), "Created");
	assert_string_equal(http_reason(599), "Unknown");
}

/* Random bytes (from an alphabet rich in the characters the parser cares about): never a crash,
 * never a result other than the documented ones. */
static void test_random(void **state)
{
	static const char alpha[] =
	    "GETPOST /:\r\n\t ,;0123456789HTtp.1-Content-LengthHost\x00\x7f\xff";
	static struct http_head h;
	static char buf[512];
	struct http_req r;
	size_t took;

	srandom(1);
	for (int it = 0; it < 200000; it++) {
		size_t n = (size_t)random() % sizeof(buf);
		int st;

		if (it % 2) /* half of them start with a plausible request line */
			memcpy(buf, "POST /log HTTP/1.1\r\n", n < 20 ? n : 20);
		for (size_t i = it % 2 ? 20 : 0; i < n; i++)
			buf[i] = alpha[(size_t)random() % (sizeof(alpha) - 1)];
		http_head_reset(&h);
		st = http_head_feed(&h, buf, n, &took);
		assert_true(took <= n);
		if (st == 1) {
			st = http_parse(h.buf, h.len, &r);
			assert_true(st == 0 || st == -400 || st == -411 || st == -417 ||
			            st == -501 || st == -505);
		}
	}
}

/* The head scanner's state carries across pieces: "\n" then "\r\n" in separate feeds ends the
 * head, "\n" "\r" "x" does not, and a LF split from the rest of a line is not an end. */
static void test_head_end_across_pieces(void **state)
{
	static const char *const pieces[][4] = {
	    {"GET / HTTP/1.1\r\nHost: a\r", "\n", "\r", "\n"},
	    {"GET / HTTP/1.1\r\nHost: a\r\n", "\r", "\n", NULL},
	    {"GET / HTTP/1.1\r\nHost: a\r\n\r", "\n", NULL, NULL},
	};
	struct http_head h;
	size_t took;

	(void)state;
	for (size_t t = 0; t < sizeof(pieces) / sizeof(pieces[0]); t++) {
		size_t total = 0;
		int st = 0;

		http_head_reset(&h);
		for (size_t k = 0; k < 4 && pieces[t][k]; k++) {
			size_t n = strlen(pieces[t][k]);

			st = http_head_feed(&h, pieces[t][k], n, &took);
			assert_int_equal(took, n);
			total += n;
			assert_int_equal(st, k + 1 < 4 && pieces[t][k + 1] ? 0 : 1);
		}
		assert_int_equal(h.len, total);
	}
	http_head_reset(&h); /* LF CR x: not the end; the line continues */
	assert_int_equal(http_head_feed(&h, "GET / HTTP/1.1\r\n", 16, &took), 0);
	assert_int_equal(http_head_feed(&h, "\rx\n", 3, &took), 0);
	assert_int_equal(took, 3);
	assert_false(h.done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_get),
	    cmocka_unit_test(test_valid_post),
	    cmocka_unit_test(test_versions_and_keepalive),
	    cmocka_unit_test(test_pipelined),
	    cmocka_unit_test(test_split_everywhere),
	    cmocka_unit_test(test_malformed_request_lines),
	    cmocka_unit_test(test_huge_head),
	    cmocka_unit_test(test_content_length),
	    cmocka_unit_test(test_transfer_encoding_and_expect),
	    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_head_end_across_pieces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
