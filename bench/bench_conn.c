/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_conn.c - paste-bench's connections: error accounting, non-blocking connect, the send buffer
 * and the per-connection request schedule (closed or open loop).
 */
#define _GNU_SOURCE
#include "bench.h"

const char *const err_names[] = {"status", "seq", "value", "conn", "protocol", "timeout"};

/* Count an error of class @e and describe the first few. */
void note(enum err e, const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	S.err[e]++;
	if (opt.quiet || ++S.n_msgs > MAX_MSGS) {
		if (!opt.quiet && S.n_msgs == MAX_MSGS + 1)
			fprintf(stderr, "paste-bench: (further error messages suppressed)\n");
		return;
	}
	fprintf(stderr, "paste-bench: %s error", err_names[e]);
	if (c)
		fprintf(stderr, " on conn %u (request %" PRIu64 ")", c->id, c->n_req - c->q_n + 1);
	fputs(": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

uint64_t errors_total(void)
{
	uint64_t n = 0;
	for (unsigned e = 0; e < E_MAX; e++)
		n += S.err[e];
	return n;
}

/* ---- connections -------------------------------------------------------------------------- */

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->up)
		S.up--;
	c->up = false;
	S.outstanding -= c->q_n;
	c->q_n = 0;
}

void conn_fail(struct conn *c, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	note(E_CONN, c, "%s", msg);
	conn_close(c);
}

static void conn_events(struct conn *c, bool out)
{
	struct epoll_event e = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

	if (c->want_out == out)
		return;
	c->want_out = out;
	if (epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
		conn_fail(c, "epoll_ctl: %s", strerror(errno));
}

/* Hand the send buffer to the socket; wait for EPOLLOUT if it takes only part. */
void conn_flush(struct conn *c)
{
	while (c->up && c->tx_off < c->tx_len) {
		ssize_t w = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				conn_events(c, true);
				return;
			}
			conn_fail(c, "send: %s", strerror(errno));
			return;
		}
		c->tx_off += (size_t)w;
	}
	if (c->up) {
		c->tx_off = c->tx_len = 0;
		conn_events(c, false);
	}
}

/* Which request comes next, if one may be sent now: false when none. */
static bool next_request(struct conn *c, enum kind *kind, uint32_t *key)
{
	switch (S.phase) {
	case PH_FILL:
		if (S.fill_next >= opt.keyspace)
			return false;
		*kind = K_SET;
		*key = S.fill_next++;
		return true;
	case PH_WARMUP:
	case PH_MEASURE:
		break;
	default:
		return false;
	}
	if (S.phase == PH_MEASURE && opt.requests && S.issued >= opt.requests)
		return false;
	switch (opt.mode) {
	case M_ECHO:
	case M_HTTP_POST:
		*kind = opt.mode == M_ECHO ? K_ECHO : K_POST;
		*key = (uint32_t)((c->id * 131u + c->n_req * 17u) % PAT_SLIDE);
		break;
	default:
		*kind = opt.mode == M_RESP_SET ? K_SET : K_GET;
		if (opt.key_seq)
			*key = (uint32_t)((opt.key_start + S.seq_next++) % opt.keyspace);
		else
			*key = (uint32_t)(rng_next(&c->rng) % opt.keyspace);
		break;
	}
	return true;
}

/* Queue as many requests as the connection may have in flight (closed loop), or as are due
 * (open loop), then send them. */
void conn_pump(struct conn *c, uint64_t now)
{
	bool open = opt.rate > 0 && (S.phase == PH_WARMUP || S.phase == PH_MEASURE);
	enum kind kind;
	uint32_t key;

	unsigned limit = S.phase == PH_FILL ? FILL_DEPTH : opt.depth;

	while (c->up && c->q_n < limit) {
		uint64_t t = now;
		if (open) {
			if (c->next_due > now)
				break;
			t = c->next_due;
			if (S.phase == PH_MEASURE && !opt.requests && t >= S.t_end)
				break;
		}
		if (!next_request(c, &kind, &key))
			break;
		if (open)
			c->next_due += S.interval;
		struct pending *p = &c->q[(c->q_head + c->q_n) % c->q_cap];
		*p = (struct pending){.t = t, .key = key, .kind = (uint8_t)kind};
		p->measured = S.phase == PH_MEASURE && t >= S.t_start;
		S.issued += p->measured;
		if (S.outstanding == 0)
			S.t_heard = now;
		c->q_n++;
		c->n_req++;
		S.outstanding++;
		request_build(c, kind, key);
	}
	conn_flush(c);
}

int conn_alloc(struct conn *c, unsigned id)
{
	c->fd = -1;
	c->id = id;
	c->q_cap = opt.depth > FILL_DEPTH ? opt.depth : FILL_DEPTH;
	c->tx_cap = (size_t)c->q_cap * request_max() + 64;
	c->rx_cap = RX_MIN + (opt.mode == M_ECHO ? 0 : opt.size);
	c->tx = malloc(c->tx_cap);
	c->rx = malloc(c->rx_cap);
	c->q = calloc(c->q_cap, sizeof(*c->q));
	c->rng = mix64((opt.seed << 20) ^ id);
	return c->tx && c->rx && c->q ? 0 : -1;
}

int conn_start(struct conn *c)
{
	struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "paste-bench: socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->want_out = true;
	if (epoll_ctl(S.ep, EPOLL_CTL_ADD, c->fd, &e) < 0) {
		fprintf(stderr, "paste-bench: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) < 0 &&
	    errno != EINPROGRESS) {
		S.failed_connect++;
		conn_fail(c, "connect to %s: %s", opt.target, strerror(errno));
	}
	return 0;
}

void on_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		S.failed_connect++;
		conn_fail(c, "connect to %s: %s", opt.target, strerror(err));
		return;
	}
	c->up = true;
	S.up++;
	conn_events(c, false);
}
