/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ref-epoll.c - the reference epoll + libpmem WAL server of issue 15: what a user would write
 * today for "kernel TCP + copy into persistent memory", written as well as we can.
 *
 * One thread, level-triggered epoll. Per ready connection one recv() of up to 64 KiB into a
 * scratch buffer (DRAM); the request head is parsed (src/apps/http.c, copying only head bytes);
 * a POST body is copied straight from the scratch buffer into a record of the log with
 * pmem_memcpy_nodrain() (non-temporal stores, no fence) and checksummed on the way. When the body
 * is complete its header is written (seq last) and flushed, and the 201 is queued. After every
 * epoll_wait batch: one pmem_drain() (group commit), then one send() per connection with replies.
 * So a 201 never leaves before the record it acknowledges is durable, and the batch pays one fence.
 *
 * Record layout in the log's data area (64-byte aligned, wrapping to the start when full):
 *	struct rec { u64 seq; u32 len; u32 crc32c(body); } followed by the body.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <libpmem.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <paste/pool.h> /* paste_crc32c(): the checksum code paste-wal uses */

#include "ref_common.h"

#define EVENTS   256
#define RBUF     (64u << 10)
#define OUT_STOP (1u << 20) /* stop reading a connection whose replies pile up beyond this */

static const char usage[] =
    "Usage: ref-epoll --pool PATH [--ip ADDR] [--port N] [--pool-size SIZE] [--busy-poll]\n"
    "\n"
    "The reference epoll + libpmem write-ahead-log server of bench/compare (issue 15): kernel\n"
    "TCP, level-triggered epoll, one recv() per ready connection into a DRAM buffer, POST bodies\n"
    "copied into a libpmem-mapped log with non-temporal stores, one pmem_drain() per epoll_wait\n"
    "batch, and the batch's replies sent only after that drain. Answers like paste-wal, so\n"
    "paste-bench --mode http-post drives and checks it. Prints 'ref-epoll: ready' when it\n"
    "accepts connections; SIGINT/SIGTERM stop it and print its counters.\n"
    "\n"
    "Options:\n";

struct rec {
	uint64_t seq; /* stored last: 0 or a stale value until the record is whole */
	uint32_t len;
	uint32_t crc;
};

enum conn_state { C_HEAD, C_BODY, C_SKIP };

struct conn {
	int fd;
	enum conn_state st;
	bool closing; /* close once @out is sent */
	bool dirty;   /* on the flush list */
	bool wr_armed;
	bool rd_off;
	uint64_t left; /* body bytes still to receive (C_BODY, C_SKIP) */
	struct rec *rec;
	uint8_t *dst;
	uint32_t crc;
	bool keep_alive;
	char *out;
	size_t out_len, out_cap;
	struct conn *next_dirty;
	struct http_head h;
};

struct server {
	struct ref_opts o;
	struct ref_log log;
	int ep, lfd;
	uint64_t cur; /* append offset in the log */
	struct conn *dirty;
	uint8_t rbuf[RBUF];
	uint64_t accepted, closed, batches;
};

static int conn_events(struct server *s, struct conn *c)
{
	struct epoll_event ev = {.data.ptr = c};

	c->rd_off = c->out_len >= OUT_STOP || c->closing;
	ev.events = (c->rd_off ? 0 : EPOLLIN) | (c->wr_armed ? EPOLLOUT : 0);
	return epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct server *s, struct conn *c)
{
	/* Freed by flush_all() at the end of the batch: later events of the batch may name it. */
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	s->closed++;
	if (!c->dirty) {
		c->dirty = true;
		c->next_dirty = s->dirty;
		s->dirty = c;
	}
}

static int out_add(struct server *s, struct conn *c, const char *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
		char *o;

		while (cap < c->out_len + n)
			cap *= 2;
		o = realloc(c->out, cap);
		if (!o)
			return -ENOMEM;
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	if (!c->dirty) {
		c->dirty = true;
		c->next_dirty = s->dirty;
		s->dirty = c;
	}
	return 0;
}

/* Reserve a record of @len body bytes at the log's tail (wrapping to the start when needed). */
static struct rec *log_reserve(struct server *s, uint32_t len)
{
	uint64_t need = (sizeof(struct rec) + len + 63) & ~63ull;
	struct rec *r;

	if (s->cur + need > s->log.len)
		s->cur = REF_LOG_DATA_OFF;
	r = (struct rec *)(s->log.base + s->cur);
	s->cur += need;
	return r;
}

/* The body is in the log: write the header (seq last), flush it, queue the 201. */
static int commit(struct server *s, struct conn *c)
{
	char reply[REF_REPLY_MAX];
	uint64_t seq = s->log.next_seq++;

	c->rec->len = (uint32_t)(c->dst - (uint8_t *)(c->rec + 1));
	c->rec->crc = c->crc;
	__atomic_store_n(&c->rec->seq, seq, __ATOMIC_RELEASE);
	pmem_flush(c->rec, sizeof(*c->rec));
	ref_log_lines(&s->log, c->rec, sizeof(*c->rec));
	s->log.dirty = true;
	s->log.appended++;
	return out_add(s, c, reply, ref_reply_created(&s->o, reply, seq, !c->keep_alive));
}

/* A complete head in c->h: route it. @return <0 to close now. */
static int on_head(struct server *s, struct conn *c)
{
	struct http_req r;
	char reply[REF_REPLY_MAX];
	size_t n = 0;
	int st = http_parse(c->h.buf, c->h.len, &r);

	switch (ref_route(&s->o, &s->log, st, &r, reply, &n)) {
	case REF_APPEND:
		c->rec = log_reserve(s, (uint32_t)r.content_length);
		c->dst = (uint8_t *)(c->rec + 1);
		c->crc = 0;
		c->left = r.content_length;
		c->keep_alive = r.keep_alive;
		c->st = C_BODY;
		return 0;
	case REF_REPLIED:
		c->left = r.content_length;
		c->st = c->left ? C_SKIP : C_HEAD;
		http_head_reset(&c->h);
		return out_add(s, c, reply, n);
	case REF_CLOSE:
		c->closing = true;
		return out_add(s, c, reply, n);
	}
	return -EINVAL;
}

/* Consume @n received bytes of @c. @return <0 to close the connection at once. */
static int on_bytes(struct server *s, struct conn *c, const uint8_t *p, size_t n)
{
	while (n && !c->closing) {
		size_t take;

		if (c->st == C_HEAD) {
			int st = http_head_feed(&c->h, p, n, &take);

			p += take;
			n -= take;
			if (st < 0) {
				static const char e431[] =
				    "HTTP/1.1 431 Request Header Fields Too Large\r\n"
				    "Content-Length: 0\r\nConnection: close\r\n\r\n";

				c->closing = true;
				return out_add(s, c, e431, sizeof(e431) - 1);
			}
			if (st == 1 && on_head(s, c) < 0)
				return -ENOMEM;
			continue;
		}
		take = n < c->left ? n : (size_t)c->left;
		if (c->st == C_BODY) {
			pmem_memcpy_nodrain(c->dst, p, take);
			ref_log_lines(&s->log, c->dst, take);
			c->crc = paste_crc32c(c->crc, p, take);
			c->dst += take;
		}
		p += take;
		n -= take;
		c->left -= take;
		if (c->left)
			continue;
		if (c->st == C_BODY && commit(s, c) < 0)
			return -ENOMEM;
		if (!c->keep_alive && c->st == C_BODY)
			c->closing = true;
		c->st = C_HEAD;
		http_head_reset(&c->h);
	}
	return 0;
}

static void on_readable(struct server *s, struct conn *c)
{
	ssize_t n = recv(c->fd, s->rbuf, RBUF, 0);

	if (n > 0) {
		if (on_bytes(s, c, s->rbuf, (size_t)n) == 0) {
			if (c->closing)
				conn_events(s, c);
			return;
		}
	} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	conn_close(s, c); /* EOF, error, or out of memory */
}

static void on_accept(struct server *s)
{
	for (;;) {
		struct epoll_event ev = {.events = EPOLLIN};
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		http_head_reset(&c->h);
		ref_sockopts(&s->o, fd);
		ev.data.ptr = c;
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
			continue;
		}
		s->accepted++;
	}
}

/* Send what @c has queued; keep the rest for EPOLLOUT. */
static void conn_flush(struct server *s, struct conn *c)
{
	size_t done = 0;
	bool armed = c->wr_armed, off = c->rd_off;

	while (done < c->out_len) {
		ssize_t n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				conn_close(s, c);
				return;
			}
			break;
		}
		done += (size_t)n;
	}
	if (done && done < c->out_len)
		memmove(c->out, c->out + done, c->out_len - done);
	c->out_len -= done;
	if (!c->out_len && c->closing) {
		conn_close(s, c);
		return;
	}
	c->wr_armed = c->out_len > 0;
	if (armed != c->wr_armed || off != (c->out_len >= OUT_STOP || c->closing))
		conn_events(s, c);
}

/* After the drain: send every connection's replies. */
static void flush_all(struct server *s)
{
	struct conn *c = s->dirty, *next;

	s->dirty = NULL;
	for (; c; c = next) {
		next = c->next_dirty;
		c->dirty = false;
		if (c->fd < 0) { /* closed during the batch */
			free(c->out);
			free(c);
			continue;
		}
		conn_flush(s, c);
	}
}

static int run(struct server *s)
{
	struct epoll_event ev[EVENTS];

	while (!ref_stop) {
		int i, n = epoll_wait(s->ep, ev, EVENTS, s->o.busy_poll ? 0 : -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("ref-epoll: epoll_wait");
			return 1;
		}
		if (!n)
			continue;
		s->batches++;
		for (i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;

			if (!c) {
				on_accept(s);
				continue;
			}
			if (c->fd < 0)
				continue;
			if (ev[i].events & EPOLLOUT)
				conn_flush(s, c);
			if (c->fd >= 0 && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_readable(s, c);
		}
		if (s->log.dirty)
			ref_log_drain(&s->log); /* group commit: one fence for the whole batch */
		flush_all(s);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct server srv;
	struct server *s = &srv;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int rc;

	s->o.prog = "ref-epoll";
	s->o.server = "ref-epoll";
	rc = ref_opts_parse(&s->o, argc, argv, usage);
	if (rc)
		return rc;
	if (ref_log_open(&s->log, &s->o, "contiguous records {seq, len, crc32c} + body"))
		return 1;
	s->cur = REF_LOG_DATA_OFF;
	s->lfd = ref_listen(&s->o);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->lfd < 0 || s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev)) {
		if (s->ep < 0 || s->lfd >= 0)
			perror("ref-epoll: epoll");
		ref_log_close(&s->log);
		return 1;
	}
	ref_signals();
	printf("ref-epoll: log %s (%zu bytes, is_pmem %d), emulated latency %" PRIu64
	       " ns per fence + %" PRIu64 " ns per line, %s\n",
	       s->o.pool, s->log.len, s->log.is_pmem, s->o.fence_ns, s->o.line_ns,
	       s->o.busy_poll ? "busy-poll" : "blocking");
	printf("ref-epoll: ready on %s:%u\n", s->o.ip ? s->o.ip : "*", s->o.port);
	fflush(stdout);
	rc = run(s);
	printf("ref-epoll: %" PRIu64 " records, %" PRIu64 " drains, %" PRIu64 " batches, %" PRIu64
	       " connections accepted\n",
	       s->log.appended, s->log.drains, s->batches, s->accepted);
	ref_log_close(&s->log);
	return rc;
}
