/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_proto.c - paste-bench's protocols: request payloads (echo pattern, HTTP POST, RESP SET/GET
 * with keys and values a function of the key) and the reply parsers and checkers, per connection.
 */
#define _GNU_SOURCE
#include "bench.h"

/* ---- payloads ----------------------------------------------------------------------------- */

/* Write @v as exactly @width decimal digits (leading zeros, high digits dropped). */
static void put_digits(char *dst, unsigned width, uint64_t v)
{
	while (width--) {
		dst[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

static void key_make(uint32_t k, char *dst)
{
	memcpy(dst, "key:", 4);
	put_digits(dst + 4, KEY_LEN - 4, k);
}

/* The value of key @k: "v:" and k in 14 digits, then a slice of the pattern chosen by k. */
static void value_make(uint32_t k, uint8_t *dst)
{
	const uint8_t *src = S.pat + k % PAT_SLIDE;

	if (opt.size < TAG_LEN) {
		memcpy(dst, src, opt.size);
		return;
	}
	dst[0] = 'v';
	dst[1] = ':';
	put_digits((char *)dst + 2, TAG_LEN - 2, k);
	memcpy(dst + TAG_LEN, src + TAG_LEN, opt.size - TAG_LEN);
}

static bool value_ok(uint32_t k, const uint8_t *p)
{
	const uint8_t *src = S.pat + k % PAT_SLIDE;
	char tag[TAG_LEN];

	if (opt.size < TAG_LEN)
		return !memcmp(p, src, opt.size);
	tag[0] = 'v';
	tag[1] = ':';
	put_digits(tag + 2, TAG_LEN - 2, k);
	return !memcmp(p, tag, TAG_LEN) && !memcmp(p + TAG_LEN, src + TAG_LEN, opt.size - TAG_LEN);
}

/* Largest request of the mode, in bytes. */
size_t request_max(void)
{
	switch (opt.mode) {
	case M_ECHO:
		return opt.size;
	case M_HTTP_POST:
		return S.http_head_len + opt.size;
	default:
		return 4 + 9 + 5 + KEY_LEN + S.set_mid_len + opt.size + 2; /* the SET */
	}
}

int payload_init(void)
{
	uint64_t s = opt.seed ^ 0x5851f42d4c957f2dull;
	size_t len = opt.size + PAT_SLIDE;

	S.pat = malloc(len);
	if (!S.pat)
		return -1;
	for (size_t i = 0; i < len; i++)
		S.pat[i] = (uint8_t)rng_next(&s);
	if (opt.mode == M_HTTP_POST) {
		int n = asprintf(&S.http_head,
		                 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: "
		                 "application/octet-stream\r\nContent-Length: %" PRIu64 "\r\n\r\n",
		                 opt.path, opt.target, opt.size);
		if (n < 0)
			return -1;
		S.http_head_len = (size_t)n;
	}
	S.set_mid_len =
	    (size_t)snprintf(S.set_mid, sizeof(S.set_mid), "\r\n$%" PRIu64 "\r\n", opt.size);
	return 0;
}

/* Append request @kind for @key to the connection's send buffer. */
void request_build(struct conn *c, enum kind kind, uint32_t key)
{
	uint8_t *p = c->tx + c->tx_len;

	switch (kind) {
	case K_ECHO:
		memcpy(p, S.pat + key, opt.size);
		p += opt.size;
		break;
	case K_POST:
		memcpy(p, S.http_head, S.http_head_len);
		memcpy(p + S.http_head_len, S.pat + key, opt.size);
		p += S.http_head_len + opt.size;
		break;
	case K_SET:
		memcpy(p, "*3\r\n$3\r\nSET\r\n$16\r\n", 18);
		key_make(key, (char *)p + 18);
		p += 18 + KEY_LEN;
		memcpy(p, S.set_mid, S.set_mid_len);
		p += S.set_mid_len;
		value_make(key, p);
		memcpy(p + opt.size, "\r\n", 2);
		p += opt.size + 2;
		break;
	case K_GET:
		memcpy(p, "*2\r\n$3\r\nGET\r\n$16\r\n", 18);
		key_make(key, (char *)p + 18);
		memcpy(p + 18 + KEY_LEN, "\r\n", 2);
		p += 18 + KEY_LEN + 2;
		break;
	}
	c->tx_len = (size_t)(p - c->tx);
}

/* ---- replies ------------------------------------------------------------------------------ */

/* Parse an unsigned decimal of at most 19 digits at p[0..n); -1 if none. */
static int64_t parse_dec(const uint8_t *p, size_t n, size_t *used)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && i < 19 && p[i] >= '0' && p[i] <= '9')
		v = v * 10 + (uint64_t)(p[i++] - '0');
	*used = i;
	return i ? (int64_t)v : -1;
}

/* Header @name (lower case, with ':') on the line [p, e)? Then its value's start. */
static const uint8_t *header_value(const uint8_t *p, const uint8_t *e, const char *name)
{
	size_t n = strlen(name);

	if ((size_t)(e - p) < n || strncasecmp((const char *)p, name, n))
		return NULL;
	p += n;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* One HTTP reply at the start of p[0..n): its length, 0 if incomplete, -1 if malformed. */
static ssize_t http_reply(struct conn *c, const uint8_t *p, size_t n, int *status, int64_t *seq)
{
	const uint8_t *end = memmem(p, n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX, "\r\n\r\n", 4);
	int64_t clen = -1;
	size_t used;

	if (!end)
		return n >= HTTP_HEAD_MAX ? -1 : 0;
	if (n < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ')
		return -1;
	*status = (int)parse_dec(p + 9, 3, &used);
	*seq = -1;
	/* Every line of the head, the status line included, ends in CRLF at or before end + 2. */
	for (const uint8_t *l = (const uint8_t *)memmem(p, (size_t)(end + 2 - p), "\r\n", 2) + 2;
	     l < end + 2;) {
		const uint8_t *le = memmem(l, (size_t)(end + 2 - l), "\r\n", 2), *v;
		if ((v = header_value(l, le, "content-length:")))
			clen = parse_dec(v, (size_t)(le - v), &used);
		else if ((v = header_value(l, le, "x-seq:")))
			*seq = parse_dec(v, (size_t)(le - v), &used);
		l = le + 2;
	}
	size_t head = (size_t)(end + 4 - p);
	if (clen < 0 || (uint64_t)clen > c->rx_cap - head)
		return -1;
	if (n < head + (size_t)clen)
		return 0;
	if (*seq < 0) { /* {"seq":N} in the body */
		const uint8_t *b = memmem(end + 4, (size_t)clen, "\"seq\":", 6);
		if (b)
			*seq = parse_dec(b + 6, (size_t)(p + head + clen - b - 6), &used);
	}
	return (ssize_t)(head + (size_t)clen);
}

/* One RESP2 reply: its length, 0 if incomplete, -1 if malformed. *bulk is the bulk length
 * ('$' replies, -1 for a nil), *line the first line's end. */
static ssize_t resp_reply(const uint8_t *p, size_t n, int64_t *bulk, size_t *line, size_t cap)
{
	const uint8_t *nl = memchr(p, '\n', n < 1024 ? n : 1024);
	size_t used;

	if (!nl)
		return n >= 1024 ? -1 : 0;
	if (nl == p || nl[-1] != '\r')
		return -1;
	*line = (size_t)(nl - p) + 1;
	switch (p[0]) {
	case '+':
	case '-':
	case ':':
		return (ssize_t)*line;
	case '$':
		if (p[1] == '-' && p[2] == '1' && *line == 5) {
			*bulk = -1;
			return 5;
		}
		*bulk = parse_dec(p + 1, *line - 3, &used);
		if (*bulk < 0 || used != *line - 3 || (uint64_t)*bulk + *line + 2 > cap)
			return -1;
		if (n < *line + (uint64_t)*bulk + 2)
			return 0;
		return (ssize_t)(*line + (size_t)*bulk + 2);
	default:
		return -1;
	}
}

/* A reply to @q has arrived: record its latency. */
static void complete(struct conn *c, const struct pending *q, uint64_t now)
{
	uint64_t lat = now > q->t ? now - q->t : 0;

	c->q_head = (c->q_head + 1) % c->q_cap;
	c->q_n--;
	S.outstanding--;
	S.t_heard = now;
	S.p_n++;
	S.p_sum += lat;
	if (lat > S.p_max)
		S.p_max = lat;
	if (q->measured) {
		h_add(&S.h, lat);
		S.measured++;
		S.t_last = now;
	}
}

/* Check the HTTP reply to @q. */
static void check_http(struct conn *c, int status, int64_t seq)
{
	if (status != 201) {
		note(E_STATUS, c, "HTTP status %d, expected 201", status);
		return;
	}
	if (seq < 0) {
		note(E_PROTO, c, "201 without a sequence number (X-Seq or {\"seq\":N})");
		return;
	}
	if ((uint64_t)seq <= c->last_seq)
		note(E_SEQ, c, "seq %" PRId64 " after %" PRIu64 " on the same connection", seq,
		     c->last_seq);
	c->last_seq = (uint64_t)seq;
}

/* Check the RESP reply @p (@len bytes, first line @line bytes) to @q. */
static void check_resp(struct conn *c, const struct pending *q, const uint8_t *p, size_t line,
                       int64_t bulk)
{
	if (p[0] == '-') {
		note(E_STATUS, c, "%s: %.*s", q->kind == K_SET ? "SET" : "GET", (int)line - 2, p);
		return;
	}
	if (q->kind == K_SET) {
		if (line != 5 || memcmp(p, "+OK", 3))
			note(E_PROTO, c, "SET: expected +OK, got %.*s", (int)line - 2, p);
		return;
	}
	if (p[0] != '$')
		note(E_PROTO, c, "GET: expected a bulk string, got %.*s", (int)line - 2, p);
	else if (bulk < 0)
		note(E_VALUE, c, "GET key:%012u: nil (the key was SET before)", q->key);
	else if ((uint64_t)bulk != opt.size)
		note(E_VALUE, c, "GET key:%012u: %" PRId64 " bytes, expected %" PRIu64, q->key,
		     bulk, opt.size);
	else if (!value_ok(q->key, p + line))
		note(E_VALUE, c, "GET key:%012u: value differs from the one SET", q->key);
}

/* Verify echoed bytes against the requests in flight; complete each one whose echo is whole. */
static size_t take_echo(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
	size_t done = 0;

	while (done < n && c->q_n) {
		const struct pending *q = &c->q[c->q_head];
		size_t k = opt.size - c->echo_done;
		if (k > n - done)
			k = n - done;
		if (memcmp(p + done, S.pat + q->key + c->echo_done, k)) {
			size_t i = 0;
			while (p[done + i] == S.pat[q->key + c->echo_done + i])
				i++;
			note(E_VALUE, c,
			     "echo byte %" PRIu64 " of the reply is 0x%02x, sent 0x%02x",
			     c->echo_done + i, p[done + i], S.pat[q->key + c->echo_done + i]);
			conn_close(c);
			return n;
		}
		done += k;
		c->echo_done += k;
		if (c->echo_done == opt.size) {
			c->echo_done = 0;
			complete(c, q, now);
		}
	}
	if (done < n) {
		note(E_PROTO, c, "%zu bytes more than were sent", n - done);
		conn_close(c);
		return n;
	}
	return done;
}

/* Take every whole reply at the start of the receive buffer; return the bytes used. */
static size_t take_replies(struct conn *c, uint64_t now)
{
	const uint8_t *p = c->rx;
	size_t n = c->rx_len, used = 0;

	if (opt.mode == M_ECHO)
		return take_echo(c, p, n, now);
	while (c->up && used < n) {
		const struct pending *q = &c->q[c->q_head];
		int64_t seq = -1, bulk = 0;
		size_t line = 0;
		int status = 0;
		ssize_t r;
		if (!c->q_n) {
			note(E_PROTO, c, "%zu bytes without a request in flight", n - used);
			conn_close(c);
			return n;
		}
		if (q->kind == K_POST)
			r = http_reply(c, p + used, n - used, &status, &seq);
		else
			r = resp_reply(p + used, n - used, &bulk, &line, c->rx_cap);
		if (r == 0)
			break;
		if (r < 0) {
			note(E_PROTO, c, "malformed reply: %.*s",
			     (int)((n - used) < 60 ? n - used : 60), p + used);
			conn_close(c);
			return n;
		}
		if (q->kind == K_POST)
			check_http(c, status, seq);
		else
			check_resp(c, q, p + used, line, bulk);
		complete(c, q, now);
		used += (size_t)r;
	}
	return used;
}

static void on_readable(struct conn *c)
{
	ssize_t r = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);

	if (r == 0) {
		conn_fail(c, "the server closed the connection with %u request(s) in flight",
		          c->q_n);
		return;
	}
	if (r < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			conn_fail(c, "recv: %s", strerror(errno));
		return;
	}
	c->rx_len += (size_t)r;
	size_t used = take_replies(c, now_ns());
	if (!c->up)
		return;
	c->rx_len -= used;
	if (c->rx_len && used)
		memmove(c->rx, c->rx + used, c->rx_len);
	if (opt.rate == 0 || S.phase == PH_FILL)
		conn_pump(c, now_ns());
}

void on_event(struct conn *c, uint32_t ev)
{
	if (c->fd < 0)
		return;
	if (!c->up) {
		on_connected(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(c);
	if (c->up && (ev & EPOLLOUT))
		conn_flush(c);
}
