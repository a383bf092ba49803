/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_resp.c - libFuzzer target for the RESP2 request parser (src/apps/resp.h).
 *
 * Input: [flags][ncut][ncut piece lengths][stream]. flags bit 0 selects tiny limits (so the
 * skip paths for too long arguments and requests are reached with small inputs). The stream is
 * parsed twice, as a server sees it: once arriving whole, once arriving in pieces of the given
 * lengths (cycled, at most MAX_ARRIVALS), each piece its own segment of the resp_buf, consumed
 * bytes dropped from the front after every result. Checked: results stay inside the bytes given,
 * argument bytes read back the same through resp_arg_bytes() whether contiguous or copied, and
 * both runs produce the same requests, skips and errors (RESP_SKIP chunks excepted: their sizes
 * depend on what has arrived).
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "resp.h"

#define MAX_CUTS     16
#define MAX_ARRIVALS 64
#define MAX_EVENTS   256

struct digest {
	uint64_t h;
	unsigned events;
	bool error;
};

static void mix(struct digest *d, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		d->h = (d->h ^ *b++) * 1099511628211ull;
}

static void on_cmd(struct digest *d, const struct resp_parser *p, struct resp_buf *b, size_t base,
                   const struct resp_cmd *cmd)
{
	static uint8_t tmp[64 << 10];
	const uint8_t *a0 = NULL;
	uint32_t l0 = 0;

	FZ_CHECK(cmd->argc >= 1 && cmd->argv);
	mix(d, &cmd->argc, sizeof(cmd->argc));
	for (unsigned i = 0; i < cmd->argc; i++) {
		const struct resp_arg *a = &cmd->argv[i];
		const uint8_t *q;

		if (cmd->inl)
			FZ_CHECK((uint64_t)a->off + a->len <= p->line_cap);
		else
			FZ_CHECK(a->off + (uint64_t)a->len <= cmd->len &&
			         base + cmd->len <= b->len);
		FZ_CHECK(a->len <= sizeof(tmp));
		q = resp_arg_bytes(p, b, base, cmd, i, tmp);
		FZ_CHECK(q != NULL);
		mix(d, &a->len, sizeof(a->len));
		mix(d, q, a->len);
		if (i == 0) {
			a0 = q;
			l0 = a->len;
		} else if (i == 1) {
			int64_t v;

			(void)resp_parse_ll(q, a->len, &v);
			if (l0 <= 64 && a->len <= 64)
				(void)resp_glob(a0, l0, q, a->len);
		}
	}
}

/* Parse what is in @b from 0; @return bytes consumed. Stops after an error. */
static size_t parse_view(struct resp_parser *p, struct resp_buf *b, struct digest *d)
{
	size_t local = 0;

	while (!d->error && d->events < MAX_EVENTS) {
		struct resp_cmd cmd;
		int r = resp_parse(p, b, local, &cmd);

		FZ_CHECK(r >= 0 || r == -ENOMEM);
		if (r < 0 || r == RESP_AGAIN)
			break;
		FZ_CHECK(local + cmd.len <= b->len);
		FZ_CHECK(cmd.len > 0 || r == RESP_ERROR);
		if (r != RESP_SKIP) {
			d->events++;
			mix(d, &r, sizeof(r));
		}
		if (r == RESP_CMD)
			on_cmd(d, p, b, local, &cmd);
		else if (r == RESP_SKIPPED)
			mix(d, &cmd.why, sizeof(cmd.why));
		else if (r == RESP_ERROR) {
			FZ_CHECK(cmd.err != NULL);
			mix(d, cmd.err, strlen(cmd.err));
			d->error = true;
		}
		local += cmd.len;
	}
	return local;
}

/* Bytes arrive in pieces ending at ends[0..m); after each arrival parse what is pending. */
static void run(const uint8_t *data, const size_t *ends, unsigned m, const struct resp_limits *lim,
                struct digest *d)
{
	struct resp_seg segs[MAX_ARRIVALS + 1];
	struct resp_parser p;
	size_t base = 0;

	memset(d, 0, sizeof(*d));
	FZ_CHECK(resp_parser_init(&p, lim) == 0);
	for (unsigned k = 0; k < m && !d->error && d->events < MAX_EVENTS; k++) {
		struct resp_buf b;
		unsigned ns = 0;

		for (unsigned j = 0; j <= k; j++) {
			size_t lo = j ? ends[j - 1] : 0, hi = ends[j];

			if (hi <= base)
				continue;
			if (lo < base)
				lo = base;
			segs[ns++] = (struct resp_seg){data + lo, hi - lo};
		}
		resp_buf_init(&b, segs, ns);
		base += parse_view(&p, &b, d);
	}
	resp_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct resp_limits tiny = {.max_bulk = 64, .max_arg = 16, .max_request = 128};
	struct fz f = {data, size};
	uint8_t flags = fz_u8(&f);
	unsigned ncut = fz_u8(&f) % (MAX_CUTS + 1), m = 0;
	size_t got, ends[MAX_ARRIVALS + 1], whole_end, at = 0;
	const uint8_t *cut = fz_bytes(&f, ncut, &got);
	const struct resp_limits *lim = flags & 1 ? &tiny : NULL;
	struct digest whole, split;

	ncut = (unsigned)got;
	whole_end = f.n;
	run(f.p, &whole_end, 1, lim, &whole);
	while (at < f.n && m < MAX_ARRIVALS) {
		at += ncut ? (size_t)cut[m % ncut] + 1 : f.n;
		if (at > f.n || m == MAX_ARRIVALS - 1)
			at = f.n;
		ends[m++] = at;
	}
	if (!m)
		ends[m++] = 0;
	run(f.p, ends, m, lim, &split);
	FZ_CHECK(whole.events == split.events);
	FZ_CHECK(whole.h == split.h);
	return 0;
}
