/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * http.c - the request-head parser of paste-wal (see http.h): an end-of-head scanner that copies
 * only the head, and a strict single-pass validator of the copied head (RFC 9110/9112 subset: what
 * an origin server needs to frame requests safely). Every loop is bounded by the head's length,
 * which is bounded by HTTP_HEAD_MAX.
 */
#include <string.h>

#include "http.h"

/* ---- end-of-head scanner ----------------------------------------------------------------- */

void http_head_reset(struct http_head *h)
{
	h->len = 0;
	h->state = 0;
	h->done = false;
}

/*
 * The head ends at an empty line: LF LF or LF CR LF (CRLF CRLF in a well-formed head). Bare LFs
 * end lines here so that a client using them gets a 400 at once instead of waiting for a timeout;
 * http_parse() rejects them.
 */
int http_head_feed(struct http_head *h, const void *p, size_t n, size_t *taken)
{
	const uint8_t *b = p;
	size_t i = 0;

	*taken = 0;
	if (h->done)
		return 1;
	while (i < n) {
		size_t room = HTTP_HEAD_MAX - h->len;

		if (room == 0) {
			*taken = i;
			return -431;
		}
		if (h->state == 0) {
			/*
			 * Not right after a LF: nothing before the next LF can end the head, so the
			 * bytes up to and including it are copied in one piece (this runs for every
			 * request; the byte loop below was paste-wal's largest parser cost).
			 */
			size_t m = n - i < room ? n - i : room;
			const uint8_t *lf = memchr(b + i, '\n', m);
			size_t k = lf ? (size_t)(lf - (b + i)) + 1 : m;

			memcpy(h->buf + h->len, b + i, k);
			h->len += (uint32_t)k;
			i += k;
			if (lf)
				h->state = 1;
			continue;
		}
		/* After a LF: a LF, or CR then LF, ends the head. */
		uint8_t c = b[i++];

		h->buf[h->len++] = (char)c;
		if (c == '\n') {
			h->done = true;
			*taken = i;
			return 1;
		}
		h->state = c == '\r' && h->state == 1 ? 2 : 0;
	}
	*taken = n;
	return 0;
}

/* ---- character classes ------------------------------------------------------------------- */

/* tchar (RFC 9110 5.6.2) */
static bool is_tchar(unsigned char c)
{
	/* A bit per byte value below 128: ALPHA, DIGIT and !#$%&'*+-.^_`|~ (no strchr per byte) */
	static const uint64_t set[2] = {0x03ff6cfa00000000ull, 0x57ffffffc7fffffeull};

	return c < 128 && (set[c >> 6] >> (c & 63)) & 1;
}

/* field-value bytes: VCHAR, obs-text, SP, HTAB */
static bool is_vbyte(unsigned char c)
{
	return c == ' ' || c == '\t' || (c > 0x20 && c != 0x7f);
}

static bool ieq(const char *a, size_t alen, const char *lit)
{
	size_t i;

	if (alen != strlen(lit))
		return false;
	for (i = 0; i < alen; i++) {
		char c = a[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return false;
	}
	return true;
}

/* ---- request line ------------------------------------------------------------------------ */

static enum http_method method_of(const char *m, size_t len)
{
	static const struct {
		const char *name;
		enum http_method m;
	} t[] = {
	    {"GET", HTTP_M_GET}, {"HEAD", HTTP_M_HEAD},     {"POST", HTTP_M_POST},
	    {"PUT", HTTP_M_PUT}, {"DELETE", HTTP_M_DELETE}, {"OPTIONS", HTTP_M_OPTIONS},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (len == strlen(t[i].name) && !memcmp(m, t[i].name, len))
			return t[i].m; /* methods are case-sensitive */
	return HTTP_M_OTHER;
}

/* "METHOD SP target SP HTTP/1.x" in @l[0..@len), no CR/LF. @return 0 or -status. */
static int parse_request_line(const char *l, size_t len, struct http_req *r)
{
	size_t i = 0, m, t0;

	while (i < len && is_tchar((unsigned char)l[i]))
		i++;
	if (i == 0 || i > 32 || i >= len || l[i] != ' ')
		return -400;
	m = i;
	r->method = method_of(l, m);
	t0 = ++i;
	while (i < len && (unsigned char)l[i] > 0x20 && (unsigned char)l[i] < 0x7f)
		i++;
	if (i == t0 || i >= len || l[i] != ' ')
		return -400;
	r->target = l + t0;
	r->target_len = i - t0;
	if (r->target[0] != '/' && !(r->target_len == 1 && r->target[0] == '*'))
		return -400; /* origin-form or asterisk-form only */
	i++;
	if (len - i != 8 || memcmp(l + i, "HTTP/", 5) || l[i + 5] < '0' || l[i + 5] > '9' ||
	    l[i + 6] != '.' || l[i + 7] < '0' || l[i + 7] > '9')
		return -400;
	if (l[i + 5] != '1')
		return -505;
	r->minor = (uint8_t)(l[i + 7] - '0');
	r->path = r->target;
	r->path_len = r->target_len;
	r->query = memchr(r->target, '?', r->target_len);
	if (r->query) {
		r->path_len = (size_t)(r->query - r->target);
		r->query++;
		r->query_len = r->target_len - r->path_len - 1;
	}
	return 0;
}

/* ---- header fields ----------------------------------------------------------------------- */

struct hstate {
	unsigned hosts, lengths;
	bool te, te_chunked, conn_close, conn_keep;
	int expect; /* 0 none, 1 100-continue, -417 other */
};

/* 1*DIGIT, at most HTTP_CONTENT_LENGTH_MAX. */
static int parse_length(const char *v, size_t len, uint64_t *out)
{
	uint64_t x = 0;

	if (len == 0 || len > 19)
		return -400;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -400;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > HTTP_CONTENT_LENGTH_MAX)
		return -400;
	*out = x;
	return 0;
}

/* Call @fn for each comma-separated element (trimmed, non-empty) of @v[0..@len). */
static void each_token(const char *v, size_t len, void (*fn)(const char *t, size_t n, void *a),
                       void *arg)
{
	size_t i = 0;

	while (i < len) {
		size_t s, e;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s)
			fn(v + s, e - s, arg);
	}
}

static void conn_token(const char *t, size_t n, void *arg)
{
	struct hstate *hs = arg;

	if (ieq(t, n, "close"))
		hs->conn_close = true;
	else if (ieq(t, n, "keep-alive"))
		hs->conn_keep = true;
}

static void te_token(const char *t, size_t n, void *arg)
{
	struct hstate *hs = arg;

	/* Only the last coding matters for framing; remember whether it was chunked. */
	hs->te_chunked = ieq(t, n, "chunked");
}

/* One "name: value" line @l[0..@len) (no CRLF). @return 0 or -status. */
static int parse_field(const char *l, size_t len, struct hstate *hs, struct http_req *r)
{
	size_t i = 0, vs, ve;
	const char *name = l;

	while (i < len && is_tchar((unsigned char)l[i]))
		i++;
	if (i == 0 || i >= len || l[i] != ':')
		return -400; /* empty name, bad byte, or whitespace before the colon */
	size_t nlen = i++;
	for (size_t k = i; k < len; k++)
		if (!is_vbyte((unsigned char)l[k]))
			return -400;
	vs = i;
	while (vs < len && (l[vs] == ' ' || l[vs] == '\t'))
		vs++;
	ve = len;
	while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
		ve--;
	if (ieq(name, nlen, "content-length")) {
		if (hs->lengths++)
			return -400; /* duplicates are a request-smuggling vector: refuse */
		r->has_length = true;
		return parse_length(l + vs, ve - vs, &r->content_length);
	}
	if (ieq(name, nlen, "transfer-encoding")) {
		hs->te = true;
		each_token(l + vs, ve - vs, te_token, hs);
	} else if (ieq(name, nlen, "connection")) {
		each_token(l + vs, ve - vs, conn_token, hs);
	} else if (ieq(name, nlen, "host")) {
		hs->hosts++;
	} else if (ieq(name, nlen, "expect")) {
		hs->expect = ieq(l + vs, ve - vs, "100-continue") ? 1 : -417;
	}
	return 0;
}

/* ---- the head ---------------------------------------------------------------------------- */

/* Next CRLF-terminated line starting at @*pos of @buf[0..@len). @return its length, or -1. */
static long next_line(const char *buf, size_t len, size_t *pos)
{
	const char *s = buf + *pos;
	const char *lf = memchr(s, '\n', len - *pos);
	size_t n;

	if (!lf || lf == s || lf[-1] != '\r')
		return -1; /* no LF, or a bare LF */
	n = (size_t)(lf - s) - 1;
	if (memchr(s, '\r', n) || memchr(s, '\0', n))
		return -1; /* bare CR or NUL inside the line */
	*pos += n + 2;
	return (long)n;
}

int http_parse(const char *buf, size_t len, struct http_req *req)
{
	struct hstate hs = {0};
	size_t pos = 0;
	long n;
	int err;

	memset(req, 0, sizeof(*req));
	if (len < 4 || len > HTTP_HEAD_MAX || memcmp(buf + len - 4, "\r\n\r\n", 4))
		return -400;
	if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
		pos = 2; /* one empty line before the request line is tolerated (RFC 9112 2.2) */
	n = next_line(buf, len, &pos);
	if (n <= 0)
		return -400;
	err = parse_request_line(buf + pos - (size_t)n - 2, (size_t)n, req);
	if (err)
		return err;
	for (;;) {
		size_t start = pos;

		n = next_line(buf, len, &pos);
		if (n < 0)
			return -400;
		if (n == 0)
			break; /* the blank line */
		if (buf[start] == ' ' || buf[start] == '\t')
			return -400; /* obsolete line folding */
		err = parse_field(buf + start, (size_t)n, &hs, req);
		if (err)
			return err;
	}
	if (pos != len)
		return -400;
	req->head_len = (uint32_t)len;
	if (req->minor >= 1 && hs.hosts != 1)
		return -400;
	if (hs.hosts > 1)
		return -400;
	if (hs.te)
		return hs.te_chunked ? -411 : -501;
	if (hs.expect < 0)
		return hs.expect;
	req->expect_continue = hs.expect == 1;
	req->keep_alive = req->minor >= 1 ? !hs.conn_close : hs.conn_keep && !hs.conn_close;
	return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

const char *http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 417:
		return "Expectation Failed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	case 507:
		return "Insufficient Storage";
	}
	return "Unknown";
}

int http_query_u64(const char *q, size_t len, const char *name, uint64_t *val)
{
	size_t nlen = strlen(name), i = 0;

	while (q && i < len) {
		size_t e = i;

		while (e < len && q[e] != '&')
			e++;
		if (e - i > nlen && q[i + nlen] == '=' && !memcmp(q + i, name, nlen)) {
			uint64_t x = 0;
			size_t k = i + nlen + 1;

			if (k == e)
				return -2;
			for (; k < e; k++) {
				unsigned d = (unsigned)(q[k] - '0');

				if (d > 9 || x > (UINT64_MAX - d) / 10)
					return -2;
				x = x * 10 + d;
			}
			*val = x;
			return 0;
		}
		i = e + 1;
	}
	return -1;
}
