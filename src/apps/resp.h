/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * resp.h - the Redis protocol (RESP2) for paste-kv: an incremental request parser over received
 * bytes that lie in several segments, reply encoders, Redis' strict integer parsing and its glob
 * matching. Pure: no I/O, no library calls; every function is bounded by the limits it is given.
 *
 * The parser never copies a bulk argument. It walks the pending bytes where they are (the slots
 * of a connection), keeps its state between calls (a request split over segments or rounds just
 * resumes), and describes each argument by its offset and length from the request's first byte.
 * Only inline requests (telnet style, one line) are copied, into the parser's own line buffer,
 * because their arguments may be quoted and escaped.
 *
 *	struct resp_parser p;
 *	resp_parser_init(&p, &limits);
 *	for (;;) {
 *		struct resp_buf b;		// the pending bytes, as segments
 *		resp_buf_init(&b, segs, nsegs);
 *		struct resp_cmd cmd;
 *		switch (resp_parse(&p, &b, base, &cmd)) {
 *		case RESP_CMD: ... execute cmd.argv[0..argc) ...; base += cmd.len; break;
 *		case RESP_AGAIN: wait for more bytes (nothing before base is needed again)
 *		...
 *		}
 *	}
 *
 * A request larger than the limits is not kept pending whole: the parser skips it (RESP_SKIP
 * hands the caller bytes it may consume at once, RESP_SKIPPED ends it) so the connection stays
 * usable. Malformed input is RESP_ERROR with the message Redis gives; the caller replies it and
 * closes, as Redis does.
 */
#ifndef PASTE_RESP_H
#define PASTE_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest multibulk count Redis 6 accepts; larger counts are a protocol error. */
#define RESP_MAX_MULTIBULK (1024 * 1024)
/* Digits in a length line (a signed 64-bit value has at most 19). */
#define RESP_MAX_DIGITS 19
/* Longest inline request line (Redis' PROTO_INLINE_MAX_SIZE). */
#define RESP_INLINE_MAX (64 * 1024)
/* Room for any one reply header or integer reply ("$-9223372036854775808\r\n"). */
#define RESP_HDR_MAX 24

/* One piece of the input: @len bytes at @p. */
struct resp_seg {
	const uint8_t *p;
	size_t len;
};

/* The input: the segments in order, and a cache that makes forward seeks cheap. */
struct resp_buf {
	const struct resp_seg *seg;
	unsigned nseg;
	size_t len;    /* total bytes */
	unsigned ci;   /* seek cache: segment index ... */
	size_t cstart; /* ... and the offset of its first byte */
};

void resp_buf_init(struct resp_buf *b, const struct resp_seg *seg, unsigned nseg);

/* Pointer to [off, off + len) if it lies inside one segment, else NULL. */
const uint8_t *resp_buf_contig(struct resp_buf *b, size_t off, size_t len);

/* Copy [off, off + len) (which must be inside the buffer) to @dst. */
void resp_buf_copy(struct resp_buf *b, size_t off, size_t len, uint8_t *dst);

/* Byte at @off (inside the buffer). */
uint8_t resp_buf_byte(struct resp_buf *b, size_t off);

/* Limits; a zero field takes the default named beside it. */
struct resp_limits {
	uint64_t max_bulk;    /* longer bulk length: protocol error (default 512 KiB) */
	uint32_t max_arg;     /* longer argument: the request is skipped (default 4096) */
	uint32_t max_request; /* larger request: skipped; inline longer: error (default 48 KiB) */
};

/* One argument: bytes [off, off + len) from the request's first byte, or of the line buffer. */
struct resp_arg {
	uint32_t off;
	uint32_t len;
};

enum resp_skip_why {
	RESP_SKIP_ARG = 1, /* an argument longer than max_arg */
	RESP_SKIP_REQ,     /* the request is larger than max_request */
};

/* A parsed request; argv is the parser's, valid until the next resp_parse(). */
struct resp_cmd {
	unsigned argc;
	const struct resp_arg *argv;
	bool inl;        /* inline request: the arguments are in resp_parser.line, not the input */
	size_t len;      /* bytes from base this result covers (to consume, or to skip) */
	int why;         /* RESP_SKIPPED: enum resp_skip_why */
	uint64_t big;    /* RESP_SKIPPED: the length that was too large */
	const char *err; /* RESP_ERROR: message without the leading "-ERR " */
};

enum resp_result {
	RESP_AGAIN = 0, /* incomplete: call again with the same base once more bytes arrived */
	RESP_CMD,       /* a whole request */
	RESP_EMPTY,     /* nothing to execute ("*0\r\n", an empty line): consume len */
	RESP_SKIP,      /* a too large request continues: consume len, call again (base += len) */
	RESP_SKIPPED,   /* the too large request ended at len: reply an error, continue */
	RESP_ERROR,     /* malformed: reply "-ERR <err>" and close the connection */
};

/* Internal states of the multibulk parser. */
enum resp_state {
	RS_START = 0,
	RS_COUNT,    /* digits after '*' */
	RS_COUNT_LF, /* '\r' seen, '\n' expected */
	RS_DOLLAR,   /* '$' expected */
	RS_BULK_LEN, /* digits after '$' */
	RS_BULK_LF,
	RS_BULK_DATA, /* the argument's bytes */
	RS_BULK_CR,   /* "\r\n" after them */
	RS_BULK_CRLF_LF,
};

struct resp_parser {
	struct resp_limits lim;
	enum resp_state st;
	size_t pos; /* bytes of the current request parsed, from base */
	/* number being read */
	uint64_t num;
	unsigned ndig;
	bool neg, zero;
	/* multibulk */
	uint64_t count, done; /* arguments announced, finished */
	uint64_t bulk, left;  /* current argument's length, bytes of it still to pass */
	size_t req;           /* bytes the request needs so far (for max_request) */
	bool skip;            /* skipping a too large request */
	int why;
	uint64_t big;
	/* arguments */
	struct resp_arg *argv;
	uint32_t argc, argv_cap;
	/* inline requests */
	uint8_t *line;
	uint32_t line_cap;
	char err[64];
};

/* Set up @p with @lim (NULL: defaults). @return 0 or -ENOMEM. */
int resp_parser_init(struct resp_parser *p, const struct resp_limits *lim);
void resp_parser_free(struct resp_parser *p);
/* Forget a partly parsed request (the connection dropped its bytes). */
void resp_parser_reset(struct resp_parser *p);

/* Parse the next request starting at @base of @b. @return enum resp_result, or -ENOMEM. */
int resp_parse(struct resp_parser *p, struct resp_buf *b, size_t base, struct resp_cmd *cmd);

/*
 * The bytes of argument @i: a pointer into the input when they are contiguous there (or into the
 * line buffer for inline requests), else copied to @tmp (at least argv[i].len bytes).
 */
const uint8_t *resp_arg_bytes(const struct resp_parser *p, struct resp_buf *b, size_t base,
                              const struct resp_cmd *cmd, unsigned i, uint8_t *tmp);

/* ---- replies ------------------------------------------------------------------------------ */

/* "<type><n>\r\n", e.g. resp_fmt_hdr(buf, '$', 5) -> "$5\r\n". @return bytes written. */
size_t resp_fmt_hdr(char *dst, char type, int64_t n);

/* ---- values ------------------------------------------------------------------------------- */

/*
 * Redis' string2ll: an optional '-', then "0" or a digit 1-9 followed by digits, nothing else,
 * within the range of int64_t. @return true with *v set.
 */
bool resp_parse_ll(const uint8_t *s, size_t len, int64_t *v);

/*
 * Redis' string2ld: the whole of s[0, len) is one long double (strtold), no leading or trailing
 * space, no NUL inside, not NaN, not out of range. @return true with *v set.
 */
bool resp_parse_ld(const uint8_t *s, size_t len, long double *v);

/*
 * Redis' ld2string in its human-friendly form (INCRBYFLOAT, HINCRBYFLOAT): "%.17Lf" without
 * trailing zeros or a trailing '.', "-0" as "0", "inf"/"-inf". @return length, or -1 (no room).
 */
int resp_fmt_ld(char *buf, size_t cap, long double v);

/* Redis' glob match (*, ?, [abc], [^a], [a-z], \x), case sensitive. */
bool resp_glob(const uint8_t *pat, size_t plen, const uint8_t *s, size_t slen);

#endif
