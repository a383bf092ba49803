/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * http.h - a bounded, incremental HTTP/1.1 request-head parser for paste-wal (pure functions: no
 * I/O, no allocation, no global state; a fuzzer can drive it directly).
 *
 * A request head arrives as bytes that may be split anywhere (over TCP segments, pool slots and
 * rounds). The caller feeds every piece to http_head_feed(), which copies bytes into a fixed
 * buffer only up to the end of the head (the blank line) and says how many it took: the body and
 * any pipelined request behind it are never copied and stay where they are (in the pool). Once the
 * head is complete, http_parse() validates it and extracts what a server needs to frame the
 * message: method, target, Content-Length, keep-alive, Expect: 100-continue.
 *
 *	struct http_head h;
 *	struct http_req r;
 *	size_t took;
 *	http_head_reset(&h);
 *	for each piece p[0..n) of received bytes:
 *		int st = http_head_feed(&h, p, n, &took);	// consume(took)
 *		if (st < 0) reply(-st) and close;		// 431: head too large
 *		if (st == 1) { st = http_parse(h.buf, h.len, &r); ... break; }
 *
 * What is rejected (the status to answer with, then close: the message framing is unknown):
 *  - 400: a malformed request line or header line, bare CR or LF, NUL or other control bytes, a
 *    header line that starts with whitespace (obsolete folding), whitespace before a colon, a
 *    Content-Length that is not all digits, negative, larger than 2^62, given twice or as a list,
 *    an HTTP/1.1 request without exactly one Host;
 *  - 411: Transfer-Encoding whose last coding is chunked (this server takes only Content-Length
 *    framed bodies: "send a Content-Length"); 501: any other Transfer-Encoding;
 *  - 417: an Expect other than 100-continue; 431: a head longer than HTTP_HEAD_MAX;
 *  - 505: an HTTP major version other than 1.
 * Which methods and targets exist is the application's business (404/405/501).
 */
#ifndef PASTE_APPS_HTTP_H
#define PASTE_APPS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest request head accepted (request line + headers + blank line), in bytes. */
#ifndef HTTP_HEAD_MAX
#define HTTP_HEAD_MAX 8192u
#endif
/* The largest Content-Length value accepted by the parser (the application has its own limit). */
#define HTTP_CONTENT_LENGTH_MAX (1ull << 62)

enum http_method {
	HTTP_M_OTHER = 0, /* a valid token this parser does not name: answer 501 */
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_OPTIONS,
};

/*
 * The head being received. @buf holds @len bytes; @state is the end-of-head scanner: 0 inside a
 * line, 1 after a line's LF, 2 after CR following such an LF.
 */
struct http_head {
	uint32_t len;
	uint8_t state;
	bool done; /* the blank line that ends the head is in @buf */
	char buf[HTTP_HEAD_MAX];
};

/* A parsed request head. Pointers point into the buffer given to http_parse(). */
struct http_req {
	enum http_method method;
	const char *target; /* request-target as sent: origin-form "/path?query", or "*" */
	size_t target_len;
	const char *path; /* the target without its query */
	size_t path_len;
	const char *query; /* after '?', or NULL when there is none */
	size_t query_len;
	uint8_t minor;           /* HTTP/1.<minor> */
	bool has_length;         /* Content-Length given */
	uint64_t content_length; /* 0 when absent */
	bool keep_alive;         /* the connection stays open after this request */
	bool expect_continue;    /* Expect: 100-continue */
	uint32_t head_len;       /* bytes of the head, blank line included */
};

/* Start a new head (after the previous request's head and body). */
void http_head_reset(struct http_head *h);

/*
 * Take the bytes of @p[0..@n) that belong to the head being received, copying them into h->buf.
 * @return 1 when the head is complete (*taken bytes end with its blank line; the rest of @p is
 * the body or the next request), 0 when every byte was taken and more are needed, -431 when the
 * head would exceed HTTP_HEAD_MAX (*taken is then the bytes that fit). Calling it again after 1
 * takes nothing and returns 1.
 */
int http_head_feed(struct http_head *h, const void *p, size_t n, size_t *taken);

/*
 * Validate the complete head @buf[0..@len) (ending with its blank line) and fill @req.
 * @return 0, or the negated HTTP status to reply with (-400, -411, -417, -501, -505; see above).
 */
int http_parse(const char *buf, size_t len, struct http_req *req);

/* The reason phrase of @status ("Created"), "Unknown" for codes this file does not name. */
const char *http_reason(int status);

/*
 * Find "@name=<decimal>" in @query[0..@len) (pairs separated by '&').
 * @return 0 with *val set, -1 when the name is absent, -2 when present but not a decimal number
 * in [0, 2^64) (empty, a sign, other characters, overflow).
 */
int http_query_u64(const char *query, size_t len, const char *name, uint64_t *val);

#endif /* PASTE_APPS_HTTP_H */
