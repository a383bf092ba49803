/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * resp.c - RESP2 for paste-kv (see resp.h): the incremental, bounded request parser that reads
 * bulk arguments where they arrived, reply header encoding, Redis' integer parsing and glob
 * matching. The error texts are Redis' own (networking.c), so clients see what they expect.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_replyq.h"
#include "resp.h"

#define DEF_MAX_BULK    (512u << 10)
#define DEF_MAX_ARG     4096u
#define DEF_MAX_REQUEST (48u << 10)
#define MIN_BULK_BYTES  6u      /* "$0\r\n\r\n": no argument takes fewer bytes */
#define GO_ON           (-4096) /* internal: keep parsing (not a result, not an errno) */

/* ---- the input ------------------------------------------------------------------------------ */

void resp_buf_init(struct resp_buf *b, const struct resp_seg *seg, unsigned nseg)
{
	b->seg = seg;
	b->nseg = nseg;
	b->len = 0;
	for (unsigned i = 0; i < nseg; i++)
		b->len += seg[i].len;
	b->ci = 0;
	b->cstart = 0;
}

/* The segment holding @off (off < len), and the offset inside it. */
static unsigned buf_seek(struct resp_buf *b, size_t off, size_t *so)
{
	if (off < b->cstart) {
		b->ci = 0;
		b->cstart = 0;
	}
	while (b->ci < b->nseg && off >= b->cstart + b->seg[b->ci].len) {
		b->cstart += b->seg[b->ci].len;
		b->ci++;
	}
	*so = off - b->cstart;
	return b->ci;
}

const uint8_t *resp_buf_contig(struct resp_buf *b, size_t off, size_t len)
{
	size_t so;
	unsigned si;

	if (off > b->len || len > b->len - off)
		return NULL;
	if (!len)
		return (const uint8_t *)"";
	si = buf_seek(b, off, &so);
	if (si >= b->nseg || so + len > b->seg[si].len)
		return NULL;
	return b->seg[si].p + so;
}

void resp_buf_copy(struct resp_buf *b, size_t off, size_t len, uint8_t *dst)
{
	while (len) {
		size_t so, n;
		unsigned si = buf_seek(b, off, &so);

		if (si >= b->nseg)
			return;
		n = b->seg[si].len - so;
		if (n > len)
			n = len;
		memcpy(dst, b->seg[si].p + so, n);
		dst += n;
		off += n;
		len -= n;
	}
}

uint8_t resp_buf_byte(struct resp_buf *b, size_t off)
{
	size_t so;
	unsigned si = buf_seek(b, off, &so);

	return si < b->nseg ? b->seg[si].p[so] : 0;
}

/* ---- parser state ---------------------------------------------------------------------------- */

int resp_parser_init(struct resp_parser *p, const struct resp_limits *lim)
{
	memset(p, 0, sizeof(*p));
	if (lim)
		p->lim = *lim;
	if (!p->lim.max_bulk)
		p->lim.max_bulk = DEF_MAX_BULK;
	if (!p->lim.max_arg)
		p->lim.max_arg = DEF_MAX_ARG;
	if (!p->lim.max_request)
		p->lim.max_request = DEF_MAX_REQUEST;
	return 0;
}

void resp_parser_free(struct resp_parser *p)
{
	free(p->argv);
	free(p->line);
	p->argv = NULL;
	p->line = NULL;
	p->argv_cap = p->line_cap = 0;
}

static void num_reset(struct resp_parser *p)
{
	p->num = 0;
	p->ndig = 0;
	p->neg = p->zero = false;
}

void resp_parser_reset(struct resp_parser *p)
{
	p->st = RS_START;
	p->pos = 0;
	p->count = p->done = p->bulk = p->left = 0;
	p->req = 0;
	p->skip = false;
	p->why = 0;
	p->big = 0;
	p->argc = 0;
	num_reset(p);
}

static int argv_reserve(struct resp_parser *p, uint64_t n)
{
	struct resp_arg *v;
	uint32_t cap = p->argv_cap ? p->argv_cap : 8;

	if (n <= p->argv_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	v = realloc(p->argv, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	p->argv = v;
	p->argv_cap = cap;
	return 0;
}

/*
 * One byte of a length line. @return 1 taken, 0 the line's '\r', -1 not a valid number (Redis'
 * string2ll: "0", or an optional '-' and a digit 1-9 then digits).
 */
static int num_feed(struct resp_parser *p, uint8_t c)
{
	if (c == '\r')
		return p->ndig ? 0 : -1;
	if (c == '-' && !p->ndig && !p->neg) {
		p->neg = true;
		return 1;
	}
	if (c < '0' || c > '9' || p->zero || p->ndig >= RESP_MAX_DIGITS)
		return -1;
	if (c == '0' && !p->ndig) {
		if (p->neg)
			return -1;
		p->zero = true;
	}
	p->ndig++;
	p->num = p->num * 10 + (uint64_t)(c - '0');
	return 1;
}

static int fail(struct resp_parser *p, struct resp_cmd *cmd, const char *msg)
{
	snprintf(p->err, sizeof(p->err), "%s", msg);
	cmd->err = p->err;
	resp_parser_reset(p);
	return RESP_ERROR;
}

/* A request ended at pos: the command, or the end of a skipped one. */
static int finish(struct resp_parser *p, struct resp_cmd *cmd)
{
	int r = p->skip ? RESP_SKIPPED : RESP_CMD;

	cmd->len = p->pos;
	cmd->argc = p->skip ? 0 : p->argc;
	cmd->argv = p->argv;
	cmd->why = p->why;
	cmd->big = p->big;
	resp_parser_reset(p);
	return r;
}

/* Out of input: a skipped request hands over what it passed; anything else waits. */
static int need_more(struct resp_parser *p, struct resp_cmd *cmd)
{
	if (!p->skip || !p->pos)
		return RESP_AGAIN;
	cmd->len = p->pos;
	p->pos = 0;
	return RESP_SKIP;
}

static void start_skip(struct resp_parser *p, int why, uint64_t big)
{
	if (p->skip)
		return;
	p->skip = true;
	p->why = why;
	p->big = big;
}

/* The multibulk count is read ('\n' seen): set up the arguments. */
static int got_count(struct resp_parser *p, struct resp_cmd *cmd)
{
	uint64_t max_args = p->lim.max_request / MIN_BULK_BYTES;

	if (p->num > RESP_MAX_MULTIBULK && !p->neg)
		return fail(p, cmd, "Protocol error: invalid multibulk length");
	if (p->neg || p->num == 0) { /* "*0", "*-1": nothing to run (as Redis) */
		cmd->len = p->pos;
		resp_parser_reset(p);
		return RESP_EMPTY;
	}
	p->count = p->num;
	p->req = p->pos;
	if (p->count > max_args)
		start_skip(p, RESP_SKIP_REQ, p->count * MIN_BULK_BYTES);
	else if (argv_reserve(p, p->count))
		return -ENOMEM;
	p->st = RS_DOLLAR;
	return GO_ON;
}

/* A bulk length is read ('\n' seen). @return GO_ON, else a result. */
static int got_bulk_len(struct resp_parser *p, struct resp_cmd *cmd)
{
	if (p->neg || p->num > p->lim.max_bulk)
		return fail(p, cmd, "Protocol error: invalid bulk length");
	p->bulk = p->left = p->num;
	p->req += 1 + p->ndig + 2 + p->bulk + 2;
	if (p->bulk > p->lim.max_arg)
		start_skip(p, RESP_SKIP_ARG, p->bulk);
	else if (p->req > p->lim.max_request)
		start_skip(p, RESP_SKIP_REQ, p->req);
	if (!p->skip) {
		p->argv[p->argc].off = (uint32_t)p->pos;
		p->argv[p->argc].len = (uint32_t)p->bulk;
		p->argc++;
	}
	p->st = RS_BULK_DATA;
	return GO_ON;
}

/* One byte of a length line in state @st; moves on at its end. @return GO_ON or a result. */
static int length_byte(struct resp_parser *p, struct resp_cmd *cmd, uint8_t c)
{
	const char *bad = p->st == RS_COUNT || p->st == RS_COUNT_LF
	                      ? "Protocol error: invalid multibulk length"
	                      : "Protocol error: invalid bulk length";
	int r;

	if (p->st == RS_COUNT_LF || p->st == RS_BULK_LF) {
		if (c != '\n')
			return fail(p, cmd, bad);
		p->pos++;
		return p->st == RS_COUNT_LF ? got_count(p, cmd) : got_bulk_len(p, cmd);
	}
	r = num_feed(p, c);
	if (r < 0)
		return fail(p, cmd, bad);
	p->pos++;
	if (r == 0)
		p->st = p->st == RS_COUNT ? RS_COUNT_LF : RS_BULK_LF;
	return GO_ON;
}

static int parse_multibulk(struct resp_parser *p, struct resp_buf *b, size_t base,
                           struct resp_cmd *cmd)
{
	for (;;) {
		size_t at = base + p->pos;
		uint8_t c;
		int r;

		if (p->st == RS_BULK_DATA) {
			size_t avail = b->len > at ? b->len - at : 0;

			if (avail < p->left) {
				p->pos += avail;
				p->left -= avail;
				return need_more(p, cmd);
			}
			p->pos += p->left;
			p->left = 0;
			p->st = RS_BULK_CR;
			continue;
		}
		if (at >= b->len)
			return need_more(p, cmd);
		c = resp_buf_byte(b, at);
		switch (p->st) {
		case RS_DOLLAR:
			if (c != '$') {
				char msg[48];

				snprintf(msg, sizeof(msg), "Protocol error: expected '$', got '%c'",
				         c == '\r' || c == '\n' || c == 0 ? ' ' : c);
				return fail(p, cmd, msg);
			}
			p->pos++;
			num_reset(p);
			p->st = RS_BULK_LEN;
			break;
		case RS_BULK_CR:
		case RS_BULK_CRLF_LF:
			if (c != (p->st == RS_BULK_CR ? '\r' : '\n'))
				return fail(p, cmd,
				            "Protocol error: bulk data not followed by CRLF");
			p->pos++;
			if (p->st == RS_BULK_CR) {
				p->st = RS_BULK_CRLF_LF;
				break;
			}
			if (++p->done == p->count)
				return finish(p, cmd);
			p->st = RS_DOLLAR;
			break;
		default: /* RS_COUNT*, RS_BULK_LEN, RS_BULK_LF */
			r = length_byte(p, cmd, c);
			if (r != GO_ON)
				return r;
			break;
		}
	}
}

/* ---- inline requests ----------------------------------------------------------------------- */

static bool is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static uint8_t hex_val(uint8_t c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static uint8_t unescape(uint8_t c)
{
	switch (c) {
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	case 'b':
		return '\b';
	case 'a':
		return '\a';
	default:
		return c;
	}
}

/*
 * One quoted argument of Redis' sdssplitargs, unescaped in place: @s[*i] is just past the opening
 * quote; *w is where the output goes (never ahead of *i). @return false for unbalanced quotes.
 */
static bool split_quoted(uint8_t *s, size_t n, size_t *i, size_t *w, bool dq)
{
	while (*i < n) {
		uint8_t c = s[*i];

		if (dq && c == '\\' && *i + 3 < n && s[*i + 1] == 'x' && is_hex(s[*i + 2]) &&
		    is_hex(s[*i + 3])) {
			s[(*w)++] = (uint8_t)(hex_val(s[*i + 2]) * 16 + hex_val(s[*i + 3]));
			*i += 4;
		} else if (dq && c == '\\' && *i + 1 < n) {
			s[(*w)++] = unescape(s[*i + 1]);
			*i += 2;
		} else if (!dq && c == '\\' && *i + 1 < n && s[*i + 1] == '\'') {
			s[(*w)++] = '\'';
			*i += 2;
		} else if (c == (dq ? '"' : '\'')) {
			(*i)++;
			/* the closing quote must be followed by a space or the end */
			return *i == n || is_space(s[*i]);
		} else {
			s[(*w)++] = c;
			(*i)++;
		}
	}
	return false;
}

/* Split the line s[0, n) into arguments (in place). @return argc, or -1 (unbalanced quotes). */
static int split_args(struct resp_parser *p, uint8_t *s, size_t n)
{
	size_t i = 0, w = 0;

	p->argc = 0;
	for (;;) {
		size_t start;

		while (i < n && is_space(s[i]))
			i++;
		if (i == n)
			return (int)p->argc;
		start = w;
		while (i < n && !is_space(s[i])) {
			if (s[i] == '"' || s[i] == '\'') {
				bool dq = s[i] == '"';

				i++;
				if (!split_quoted(s, n, &i, &w, dq))
					return -1;
				break;
			}
			s[w++] = s[i++];
		}
		if (i < n && !is_space(s[i]))
			return -1;
		p->argv[p->argc].off = (uint32_t)start;
		p->argv[p->argc].len = (uint32_t)(w - start);
		p->argc++;
	}
}

/* Find '\n' in [from, to) of @b. @return its offset or SIZE_MAX. */
static size_t find_lf(struct resp_buf *b, size_t from, size_t to)
{
	while (from < to) {
		size_t so;
		unsigned si = buf_seek(b, from, &so);
		size_t n = b->seg[si].len - so;
		const uint8_t *q;

		if (n > to - from)
			n = to - from;
		q = memchr(b->seg[si].p + so, '\n', n);
		if (q)
			return from + (size_t)(q - (b->seg[si].p + so));
		from += n;
	}
	return SIZE_MAX;
}

static int parse_inline(struct resp_parser *p, struct resp_buf *b, size_t base,
                        struct resp_cmd *cmd)
{
	size_t lim = p->lim.max_request < RESP_INLINE_MAX ? p->lim.max_request : RESP_INLINE_MAX;
	size_t avail = b->len - base, nl, n;
	const uint8_t *z;
	int argc;

	nl = find_lf(b, base, base + (avail < lim ? avail : lim));
	if (nl == SIZE_MAX)
		return avail >= lim ? fail(p, cmd, "Protocol error: too big inline request")
		                    : RESP_AGAIN;
	n = nl - base;
	if (n + 1 > p->line_cap) {
		uint8_t *l = realloc(p->line, n + 1);

		if (!l)
			return -ENOMEM;
		p->line = l;
		p->line_cap = (uint32_t)(n + 1);
	}
	resp_buf_copy(b, base, n, p->line);
	z = memchr(p->line, 0, n); /* Redis reads the line as a C string */
	if (z)
		n = (size_t)(z - p->line);
	if (n && p->line[n - 1] == '\r')
		n--;
	if (argv_reserve(p, n / 2 + 1))
		return -ENOMEM;
	argc = split_args(p, p->line, n);
	if (argc < 0)
		return fail(p, cmd, "Protocol error: unbalanced quotes in request");
	cmd->len = nl - base + 1;
	cmd->argc = (unsigned)argc;
	cmd->argv = p->argv;
	cmd->inl = true;
	p->argc = 0;
	return argc ? RESP_CMD : RESP_EMPTY;
}

int resp_parse(struct resp_parser *p, struct resp_buf *b, size_t base, struct resp_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	if (p->st == RS_START) {
		if (base >= b->len)
			return RESP_AGAIN;
		if (resp_buf_byte(b, base) != '*')
			return parse_inline(p, b, base, cmd);
		resp_parser_reset(p);
		p->pos = 1;
		p->st = RS_COUNT;
	}
	return parse_multibulk(p, b, base, cmd);
}

const uint8_t *resp_arg_bytes(const struct resp_parser *p, struct resp_buf *b, size_t base,
                              const struct resp_cmd *cmd, unsigned i, uint8_t *tmp)
{
	const struct resp_arg *a = &cmd->argv[i];
	const uint8_t *q;

	if (cmd->inl)
		return p->line + a->off;
	q = resp_buf_contig(b, base + a->off, a->len);
	if (q)
		return q;
	resp_buf_copy(b, base + a->off, a->len, tmp);
	return tmp;
}

/* ---- replies and values ---------------------------------------------------------------------- */

/* "<type><n>\r\n" (at most RESP_HDR_MAX bytes), by hand: a GET reply's header is built for every
 * request, and snprintf's format machinery was most of its cost in the 1-connection profile. */
size_t resp_fmt_hdr(char *dst, char type, int64_t n)
{
	size_t len = 0;

	dst[len++] = type;
	if (n < 0)
		dst[len++] = '-';
	len += daemon_put_u64(dst + len, n < 0 ? 0 - (uint64_t)n : (uint64_t)n);
	dst[len++] = '\r';
	dst[len++] = '\n';
	return len;
}

bool resp_parse_ll(const uint8_t *s, size_t len, int64_t *v)
{
	uint64_t acc = 0, lim;
	bool neg = false;
	size_t i = 0;

	if (len == 0 || len > 20)
		return false;
	if (len == 1 && s[0] == '0') {
		*v = 0;
		return true;
	}
	if (s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == len || s[i] < '1' || s[i] > '9')
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (acc > (lim - (uint64_t)(s[i] - '0')) / 10)
			return false;
		acc = acc * 10 + (uint64_t)(s[i] - '0');
	}
	*v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
	return true;
}

/* One [...] class at pat[*pi] (just past '['); advances *pi past the ']'. */
static bool glob_class(const uint8_t *pat, size_t plen, size_t *pi, uint8_t c)
{
	size_t i = *pi;
	bool neg = false, match = false;

	if (i < plen && pat[i] == '^') {
		neg = true;
		i++;
	}
	for (; i < plen && pat[i] != ']'; i++) {
		if (pat[i] == '\\' && i + 1 < plen) {
			i++;
			match |= pat[i] == c;
		} else if (i + 2 < plen && pat[i + 1] == '-' && pat[i + 2] != ']') {
			uint8_t lo = pat[i], hi = pat[i + 2];

			if (lo > hi) {
				uint8_t t = lo;

				lo = hi;
				hi = t;
			}
			match |= c >= lo && c <= hi;
			i += 2;
		} else {
			match |= pat[i] == c;
		}
	}
	*pi = i < plen ? i + 1 : i; /* an unterminated class ends the pattern, as in Redis */
	return neg ? !match : match;
}

bool resp_glob(const uint8_t *pat, size_t plen, const uint8_t *s, size_t slen)
{
	size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;

	while (si < slen) {
		if (pi < plen && pat[pi] == '*') {
			while (pi < plen && pat[pi] == '*')
				pi++;
			if (pi == plen)
				return true;
			star_p = pi;
			star_s = si;
			continue;
		}
		if (pi < plen) {
			size_t np = pi + 1;
			bool ok;

			if (pat[pi] == '?') {
				ok = true;
			} else if (pat[pi] == '[') {
				ok = glob_class(pat, plen, &np, s[si]);
			} else if (pat[pi] == '\\' && pi + 1 < plen) {
				ok = pat[pi + 1] == s[si];
				np = pi + 2;
			} else {
				ok = pat[pi] == s[si];
			}
			if (ok) {
				pi = np;
				si++;
				continue;
			}
		}
		if (star_p == SIZE_MAX)
			return false;
		pi = star_p; /* backtrack: the last '*' takes one more byte */
		si = ++star_s;
	}
	while (pi < plen && pat[pi] == '*')
		pi++;
	return pi == plen;
}

/* Redis' string2ld: the whole string is one long double, no spaces, not NaN. */
bool resp_parse_ld(const uint8_t *s, size_t n, long double *v)
{
	char buf[5600];
	char *end;

	if (n == 0 || n >= sizeof(buf) || isspace(s[0]) || isspace(s[n - 1]))
		return false;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (strlen(buf) != n)
		return false;
	errno = 0;
	*v = strtold(buf, &end);
	return *end == 0 && errno != ERANGE && !isnan(*v);
}

/* Redis' ld2string in human-friendly form: "%.17Lf" without trailing zeros. @return length. */
int resp_fmt_ld(char *buf, size_t cap, long double v)
{
	int n;

	if (isinf(v))
		return snprintf(buf, cap, v > 0 ? "inf" : "-inf");
	n = snprintf(buf, cap, "%.17Lf", v);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	if (strchr(buf, '.')) {
		while (n > 0 && buf[n - 1] == '0')
			n--;
		if (n > 0 && buf[n - 1] == '.')
			n--;
	}
	if (n == 2 && buf[0] == '-' && buf[1] == '0')
		n = snprintf(buf, cap, "0");
	buf[n] = 0;
	return n;
}
