/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_resp.c - the RESP2 parser of paste-kv (src/apps/resp.c): whole requests, requests split at
 * every byte boundary and delivered a piece at a time, pipelines, inline requests with quoting,
 * every malformed input the server must refuse (with Redis' own messages), too large requests that
 * are skipped without being buffered, that bulk arguments are never copied, a randomized run over
 * mutated streams, and the integer, glob and reply helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "resp.h"

#define MAX_SEGS 4096

/* A stream delivered as segments, the way a connection's slots present it. */
struct feed {
	const uint8_t *data;
	size_t len;
	size_t cut[MAX_SEGS]; /* segment boundaries */
	unsigned ncut;
	struct resp_seg seg[MAX_SEGS];
};

/* What a run saw: requests joined as "a|b|c", one per line; errors as "E:msg", skips as "S". */
struct seen {
	char text[1 << 16];
	size_t len;
	unsigned cmds, skips, empties;
	const char *err;
};

static void seen_add(struct seen *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	s->len += (size_t)vsnprintf(s->text + s->len, sizeof(s->text) - s->len, fmt, ap);
	va_end(ap);
}

/* Segments covering data[0, upto): pieces [cut[i-1], cut[i]). */
static unsigned build(struct feed *f, size_t upto)
{
	size_t prev = 0;
	unsigned n = 0;

	for (unsigned i = 0; i <= f->ncut; i++) {
		size_t end = i < f->ncut ? f->cut[i] : f->len;

		if (end > upto)
			end = upto;
		if (end > prev)
			f->seg[n++] = (struct resp_seg){.p = f->data + prev, .len = end - prev};
		prev = end;
		if (prev == upto)
			break;
	}
	return n;
}

static void record(struct seen *s, struct resp_parser *p, struct resp_buf *b, size_t base,
                   const struct resp_cmd *cmd)
{
	uint8_t tmp[8192];

	for (unsigned i = 0; i < cmd->argc; i++) {
		const uint8_t *a = resp_arg_bytes(p, b, base, cmd, i, tmp);

		assert_true(cmd->argv[i].len < sizeof(tmp));
		if (!cmd->inl)
			assert_true(base + cmd->argv[i].off + cmd->argv[i].len <= b->len);
		seen_add(s, "%s%.*s", i ? "|" : "", (int)cmd->argv[i].len, (const char *)a);
	}
	seen_add(s, "\n");
}

/*
 * Deliver the stream one segment more at a time (as rounds do); parse all that is complete each
 * time, consuming from the front like the server. Stops at the first error.
 */
static void run(struct feed *f, const struct resp_limits *lim, struct seen *s)
{
	struct resp_parser p;
	size_t base = 0;

	memset(s, 0, sizeof(*s));
	assert_int_equal(resp_parser_init(&p, lim), 0);
	for (unsigned k = 0; k <= f->ncut && !s->err; k++) {
		size_t upto = k < f->ncut ? f->cut[k] : f->len;
		struct resp_buf b;
		/* the consumed prefix is gone: the view starts at base */
		unsigned n = build(f, upto), first = 0;
		size_t skipped = 0, local;

		while (first < n && skipped + f->seg[first].len <= base) {
			skipped += f->seg[first].len;
			first++;
		}
		if (first < n && base > skipped) {
			f->seg[first].p += base - skipped;
			f->seg[first].len -= base - skipped;
		}
		resp_buf_init(&b, f->seg + first, n - first);
		local = 0;
		for (;;) {
			struct resp_cmd cmd;
			int r = resp_parse(&p, &b, local, &cmd);

			assert_true(r >= 0);
			assert_true(local + cmd.len <= b.len);
			if (r == RESP_AGAIN)
				break;
			if (r == RESP_CMD) {
				s->cmds++;
				record(s, &p, &b, local, &cmd);
			} else if (r == RESP_SKIPPED) {
				s->skips++;
				seen_add(s, "S%d\n", cmd.why);
			} else if (r == RESP_EMPTY) {
				s->empties++;
			} else if (r == RESP_ERROR) {
				s->err = cmd.err;
				seen_add(s, "E:%s\n", cmd.err);
				break;
			}
			local += cmd.len;
		}
		base += local;
	}
	if (s->err) { /* keep the message past the parser's life */
		static char keep[64];

		snprintf(keep, sizeof(keep), "%s", s->err);
		s->err = keep;
	}
	resp_parser_free(&p);
}

static void feed_init(struct feed *f, const void *data, size_t len)
{
	f->data = data;
	f->len = len;
	f->ncut = 0;
}

/* ---- whole and split requests ------------------------------------------------------------- */

static const char pipeline[] = "*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$5\r\nhello\r\n"
                               "*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n"
                               "*1\r\n$4\r\nPING\r\n"
                               "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
                               "PING inline\r\n"
                               "*3\r\n$3\r\nSET\r\n$4\r\nb\r\nx\r\n$2\r\n\r\n\r\n";
static const char pipeline_seen[] = "SET|foo|hello\nGET|foo\nPING\nECHO|\nPING|inline\n"
                                    "SET|b\r\nx|\r\n\n";

static void test_whole(void **state)
{
	struct feed f;
	struct seen s;

	feed_init(&f, pipeline, strlen(pipeline));
	run(&f, NULL, &s);
	assert_null(s.err);
	assert_string_equal(s.text, pipeline_seen);
	assert_int_equal(s.cmds, 6);
}

static void test_split_everywhere(void **state)
{
	size_t len = strlen(pipeline);
	struct feed f;
	struct seen s;

	for (size_t i = 1; i < len; i++) { /* two pieces, cut at every byte */
		feed_init(&f, pipeline, len);
		f.cut[0] = i;
		f.ncut = 1;
		run(&f, NULL, &s);
		assert_null(s.err);
		assert_string_equal(s.text, pipeline_seen);
	}
	for (size_t i = 1; i < len; i++) { /* three pieces */
		for (size_t j = i + 1; j < len; j += 3) {
			feed_init(&f, pipeline, len);
			f.cut[0] = i;
			f.cut[1] = j;
			f.ncut = 2;
			run(&f, NULL, &s);
			assert_string_equal(s.text, pipeline_seen);
		}
	}
	feed_init(&f, pipeline, len); /* one byte per segment, one segment per round */
	for (size_t i = 1; i < len; i++)
		f.cut[f.ncut++] = i;
	run(&f, NULL, &s);
	assert_string_equal(s.text, pipeline_seen);
}

/* A bulk argument is never copied: its bytes are found where they lie in the input. */
static void test_no_copy(void **state)
{
	static const char in[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n";
	struct resp_seg seg[2] = {{(const uint8_t *)in, 20}, {(const uint8_t *)in + 20, 0}};
	struct resp_parser p;
	struct resp_buf b;
	struct resp_cmd cmd;
	uint8_t tmp[16];
	const uint8_t *v;

	seg[1].len = strlen(in) - 20;
	resp_parser_init(&p, NULL);
	resp_buf_init(&b, seg, 2);
	assert_int_equal(resp_parse(&p, &b, 0, &cmd), RESP_CMD);
	assert_int_equal(cmd.argc, 3);
	assert_int_equal(cmd.len, strlen(in));
	v = resp_arg_bytes(&p, &b, 0, &cmd, 2, tmp);
	assert_ptr_equal(v, (const uint8_t *)in + 25); /* in place: the second segment */
	assert_ptr_equal(resp_buf_contig(&b, cmd.argv[2].off, cmd.argv[2].len + 1), v);
	/* straddling bytes are not contiguous; they are gathered only on request */
	assert_null(resp_buf_contig(&b, 18, 4));
	resp_parser_free(&p);
}

/* ---- inline -------------------------------------------------------------------------------- */

static void expect(const char *in, const struct resp_limits *lim, const char *want)
{
	struct feed f;
	struct seen s;

	feed_init(&f, in, strlen(in));
	run(&f, lim, &s);
	if (strcmp(s.text, want))
		fail_msg("input %s: got '%s', want '%s'", in, s.text, want);
}

static void test_inline(void **state)
{
	expect("SET foo bar\r\n", NULL, "SET|foo|bar\n");
	expect("  GET\tfoo  \n", NULL, "GET|foo\n");
	expect("SET \"a b\" 'c d'\r\n", NULL, "SET|a b|c d\n");
	expect("ECHO \"\\x41\\n\\\"\"\r\n", NULL, "ECHO|A\n\"\n");
	expect("ECHO 'it\\'s'\r\n", NULL, "ECHO|it's\n");
	expect("ECHO \"\"\r\n", NULL, "ECHO|\n");
	expect("\r\n\nPING\r\n", NULL, "PING\n");
	expect("ECHO \"abc\r\n", NULL, "E:Protocol error: unbalanced quotes in request\n");
	expect("ECHO \"abc\"x\r\n", NULL, "E:Protocol error: unbalanced quotes in request\n");
	expect("ECHO 'abc\r\n", NULL, "E:Protocol error: unbalanced quotes in request\n");
	expect("PING", NULL, ""); /* waits for the end of the line */
}

static void test_inline_too_big(void **state)
{
	struct resp_limits lim = {.max_request = 1024};
	char *line = malloc(4096), want[1002];

	memset(line, 'a', 4095);
	line[4095] = 0;
	expect(line, &lim, "E:Protocol error: too big inline request\n");
	memcpy(line + 1000, "\r\n", 3); /* a line within the limit is fine */
	memcpy(want, line, 1000);
	memcpy(want + 1000, "\n", 2);
	expect(line, &lim, want);
	free(line);
}

/* ---- malformed ----------------------------------------------------------------------------- */

static void test_malformed(void **state)
{
	const char *mb = "E:Protocol error: invalid multibulk length\n";
	const char *bl = "E:Protocol error: invalid bulk length\n";
	const char *crlf = "E:Protocol error: bulk data not followed by CRLF\n";

	expect("*abc\r\n", NULL, mb);
	expect("*3x\r\n", NULL, mb);
	expect("*3\n", NULL, mb);
	expect("*3\rX", NULL, mb);
	expect("*03\r\n", NULL, mb);
	expect("*\r\n", NULL, mb);
	expect("*2000000\r\n", NULL, mb);
	expect("*99999999999999999999999\r\n", NULL, mb);
	expect("*-1\r\n*1\r\n$4\r\nPING\r\n", NULL, "PING\n"); /* null multibulk: ignored */
	expect("*0\r\n", NULL, "");
	expect("*2\r\n$3\r\nGET\r\n:5\r\n", NULL, "E:Protocol error: expected '$', got ':'\n");
	expect("*1\r\n*1\r\n$4\r\nPING\r\n", NULL, "E:Protocol error: expected '$', got '*'\n");
	expect("*1\r\n\r\n", NULL, "E:Protocol error: expected '$', got ' '\n");
	expect("*1\r\n$-1\r\n", NULL, bl);
	expect("*1\r\n$-5\r\n", NULL, bl);
	expect("*1\r\n$03\r\nabc\r\n", NULL, bl);
	expect("*1\r\n$3x\r\nabc\r\n", NULL, bl);
	expect("*1\r\n$\r\n", NULL, bl);
	expect("*1\r\n$536870912\r\n", NULL, bl); /* 512 MiB claim */
	expect("*1\r\n$9223372036854775807\r\n", NULL, bl);
	expect("*1\r\n$3\r\nabcXY", NULL, crlf);
	expect("*1\r\n$3\r\nabc\rX", NULL, crlf);
	expect("*1\r\n$3\r\nabcd\r\n", NULL, crlf);
	expect("*2\r\n$3\r\nabc\r\n", NULL, ""); /* incomplete: waits */
}

/* Deeply nested arrays are refused at the first nested header, whatever the depth. */
static void test_deep_nesting(void **state)
{
	size_t n = 100000;
	char *in = malloc(n * 4 + 1);

	for (size_t i = 0; i < n; i++)
		memcpy(in + 4 * i, "*1\r\n", 4);
	in[n * 4] = 0;
	expect(in, NULL, "E:Protocol error: expected '$', got '*'\n");
	free(in);
}

/* ---- too large requests ---------------------------------------------------------------------- */

static void test_skip_big_arg(void **state)
{
	struct resp_limits lim = {.max_arg = 100, .max_request = 1024, .max_bulk = 1 << 20};
	size_t vlen = 300000, len;
	char *in = malloc(vlen + 256);
	struct feed f;
	struct seen s;

	len = (size_t)sprintf(in, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%zu\r\n", vlen);
	memset(in + len, 'v', vlen);
	len += vlen;
	len += (size_t)sprintf(in + len, "\r\n*1\r\n$4\r\nPING\r\n");
	feed_init(&f, in, len);
	for (size_t c = 1448; c < len; c += 1448) /* segments as TCP delivers them */
		f.cut[f.ncut++] = c;
	run(&f, &lim, &s);
	assert_null(s.err);
	assert_string_equal(s.text, "S1\nPING\n");
	free(in);
}

static void test_skip_big_request(void **state)
{
	struct resp_limits lim = {.max_arg = 100, .max_request = 1024};
	char *in = malloc(64 << 10);
	size_t len = (size_t)sprintf(in, "*1001\r\n$4\r\nMSET\r\n");
	struct feed f;
	struct seen s;

	for (int i = 0; i < 500; i++)
		len += (size_t)sprintf(in + len, "$4\r\nk%03d\r\n$2\r\nvv\r\n", i);
	len += (size_t)sprintf(in + len, "*1\r\n$4\r\nPING\r\n");
	feed_init(&f, in, len);
	for (size_t c = 100; c < len; c += 100)
		f.cut[f.ncut++] = c;
	run(&f, &lim, &s);
	assert_string_equal(s.text, "S2\nPING\n");
	/* a count that can never fit is skipped as it streams by, not buffered */
	expect("*5000\r\n", &lim, "");
	free(in);
}

/* ---- randomized ------------------------------------------------------------------------------ */

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Mutated pipelines in random segments: never a crash, never a length beyond the input. */
static void test_random(void **state)
{
	static const char bytes[] = "*$\r\n-0123456789ab \"'\\";
	size_t base_len = strlen(pipeline);
	uint8_t buf[512];
	struct feed f;
	struct seen s;

	for (int it = 0; it < 20000; it++) {
		size_t len = base_len;
		struct resp_limits lim = {.max_arg = 8, .max_request = 64, .max_bulk = 1000};

		memcpy(buf, pipeline, len);
		for (int m = (int)(next_rand() % 4); m >= 0; m--)
			buf[next_rand() % len] = (uint8_t)bytes[next_rand() % (sizeof(bytes) - 1)];
		feed_init(&f, buf, len);
		for (size_t c = 1 + next_rand() % 7; c < len; c += 1 + next_rand() % 9)
			f.cut[f.ncut++] = c;
		run(&f, it % 2 ? &lim : NULL, &s);
	}
}

/* ---- helpers --------------------------------------------------------------------------------- */

static bool ll(const char *s, int64_t *v)
{
	return resp_parse_ll((const uint8_t *)s, strlen(s), v);
}

static void test_parse_ll(void **state)
{
	int64_t v;

	assert_true(ll("0", &v) && v == 0);
	assert_true(ll("42", &v) && v == 42);
	assert_true(ll("-42", &v) && v == -42);
	assert_true(ll("9223372036854775807", &v) && v == INT64_MAX);
	assert_true(ll("-9223372036854775808", &v) && v == INT64_MIN);
	assert_false(ll("9223372036854775808", &v));
	assert_false(ll("-9223372036854775809", &v));
	assert_false(ll("", &v));
	assert_false(ll("-", &v));
	assert_false(ll("-0", &v));
	assert_false(ll("01", &v));
	assert_false(ll("+1", &v));
	assert_false(ll(" 1", &v));
	assert_false(ll("1 ", &v));
	assert_false(ll("1.5", &v));
	assert_false(ll("abc", &v));
}

static bool glob(const char *p, const char *s)
{
	return resp_glob((const uint8_t *)p, strlen(p), (const uint8_t *)s, strlen(s));
}

static void test_glob(void **state)
{
	assert_true(glob("*", ""));
	assert_true(glob("*", "anything"));
	assert_true(glob("key:*", "key:123"));
	assert_false(glob("key:*", "kex:123"));
	assert_true(glob("h?llo", "hello"));
	assert_false(glob("h?llo", "hllo"));
	assert_true(glob("h[ae]llo", "hallo"));
	assert_false(glob("h[ae]llo", "hillo"));
	assert_true(glob("h[^e]llo", "hallo"));
	assert_false(glob("h[^e]llo", "hello"));
	assert_true(glob("h[a-c]llo", "hbllo"));
	assert_false(glob("h[a-c]llo", "hdllo"));
	assert_true(glob("h\\*llo", "h*llo"));
	assert_false(glob("h\\*llo", "hallo"));
	assert_true(glob("*a*b*c*", "xxaxxbxxcxx"));
	assert_false(glob("*a*b*c*", "xxaxxcxxbxx"));
	assert_true(glob("a**b", "ab"));
	assert_false(glob("", "a"));
	assert_true(glob("", ""));
}

static void test_fmt(void **state)
{
	char b[RESP_HDR_MAX];

	assert_int_equal(resp_fmt_hdr(b, '$', 5), 4);
	assert_memory_equal(b, "$5\r\n", 4);
	assert_int_equal(resp_fmt_hdr(b, ':', INT64_MIN), 23);
	assert_memory_equal(b, ":-9223372036854775808\r\n", 23);
	assert_int_equal(resp_fmt_hdr(b, '*', -1), 5);
	assert_memory_equal(b, "*-1\r\n", 5);
	assert_int_equal(resp_fmt_hdr(b, ':', 0), 4);
	assert_memory_equal(b, ":0\r\n", 4);
	assert_int_equal(resp_fmt_hdr(b, '$', 1024), 7);
	assert_memory_equal(b, "$1024\r\n", 7);
	assert_int_equal(resp_fmt_hdr(b, ':', INT64_MAX), 22);
	assert_memory_equal(b, ":9223372036854775807\r\n", 22);
}

static bool ld(const char *s, long double *v)
{
	return resp_parse_ld((const uint8_t *)s, strlen(s), v);
}

static void test_parse_ld(void **state)
{
	long double v;

	assert_true(ld("1.5", &v) && v == 1.5L);
	assert_true(ld("-10", &v) && v == -10.0L);
	assert_true(ld("3.0e3", &v) && v == 3000.0L);
	assert_true(ld("+inf", &v) && isinf(v)); /* parsed; the commands refuse it */
	assert_false(ld("nan", &v));
	assert_false(ld("", &v));
	assert_false(ld(" 1", &v));
	assert_false(ld("1 ", &v));
	assert_false(ld("1x", &v));
	assert_false(resp_parse_ld((const uint8_t *)"1\0002", 3, &v)); /* NUL inside */
	assert_false(ld("1e99999", &v));
}

static const char *fmt_ld(long double v)
{
	static char buf[5600];

	assert_true(resp_fmt_ld(buf, sizeof(buf), v) >= 0);
	return buf;
}

static void test_fmt_ld(void **state)
{
	assert_string_equal(fmt_ld(10.5L), "10.5");
	assert_string_equal(fmt_ld(3010.5L), "3010.5");
	assert_string_equal(fmt_ld(1.0L), "1");
	assert_string_equal(fmt_ld(-0.0L), "0");
	assert_string_equal(fmt_ld(17179869185.5L), "17179869185.5");
	assert_string_equal(fmt_ld(1.23L), "1.23");
	assert_string_equal(fmt_ld(-1.1L), "-1.1");
	assert_string_equal(fmt_ld(5.0e3L), "5000");
	assert_string_equal(fmt_ld(1.0L / 0.0L), "inf");
}

/* Inline lines are limited to Redis' 64 KiB whatever the request limit (large requests are fine).
 */
static void test_inline_limit(void **state)
{
	struct resp_limits lim = {.max_request = 1u << 30, .max_arg = 1u << 29};
	size_t n = RESP_INLINE_MAX + 10;
	char *line = malloc(n + 1);

	memset(line, 'a', n);
	line[n] = 0;
	expect(line, &lim, "E:Protocol error: too big inline request\n");
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole),
	    cmocka_unit_test(test_split_everywhere),
	    cmocka_unit_test(test_no_copy),
	    cmocka_unit_test(test_inline),
	    cmocka_unit_test(test_inline_too_big),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_skip_big_arg),
	    cmocka_unit_test(test_skip_big_request),
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_parse_ll),
	    cmocka_unit_test(test_glob),
	    cmocka_unit_test(test_fmt),
	    cmocka_unit_test(test_parse_ld),
	    cmocka_unit_test(test_fmt_ld),
	    cmocka_unit_test(test_inline_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
