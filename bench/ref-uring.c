/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ref-uring.c - the reference io_uring + libpmem WAL server of issue 15: the best a user can do
 * today with kernel TCP, where the kernel's one copy lands in persistent memory.
 *
 * One thread, one ring set up with DEFER_TASKRUN + SINGLE_ISSUER (completion work runs only when
 * this thread asks for events). A multishot accept; per connection one multishot recv that picks
 * its buffers from a provided-buffer ring whose buffers lie inside the libpmem-mapped log, so the
 * kernel's copy (socket -> user memory) writes the request straight into the log: request heads
 * are parsed from there (their bytes copied into a small DRAM buffer), bodies stay where the
 * kernel put them. A record is a descriptor naming the pieces of its body in those buffers
 * (flushed with clwb, checksummed), written seq last. After every batch of completions: one
 * pmem_drain(), then the replies, as sends with IOSQE_CQE_SKIP_SUCCESS (no completion unless one
 * fails), submitted together with the wait for the next batch (one io_uring_enter per batch).
 *
 * Log layout (after the 4 KiB header): a ring of 64-byte descriptors (1/16 of the data area), then
 * receive buffers of BUF_SIZE bytes handed to the kernel in order, wrapping when the end is
 * reached (the oldest records are then overwritten: a benchmark ring, see ref_common.h).
 *
 * Reply memory: replies are copied into a 16 MiB DRAM ring and sent from there. With
 * CQE_SKIP_SUCCESS this server never learns when a send is done; one that could not complete at
 * submission (socket buffer full) must finish before the ring wraps over it, i.e. within 16 MiB of
 * later replies (~80 k requests). A client that stops reading for that long could receive wrong
 * bytes: acceptable for a benchmark server, not for a product (which would take the completion).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <libpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <paste/pool.h> /* paste_crc32c(): the checksum code paste-wal uses */

#include "ref_common.h"

#include "../src/uring_abi.h" /* ABI constants liburing 2.3 lacks */

#define RING_ENTRIES 1024
#define BUF_SIZE     2048u /* one receive buffer (as a paste pool frame) */
#define NBUFS        4096u /* entries of the provided-buffer ring (a power of two) */
#define BGID         1
#define PIECES       5 /* body pieces a descriptor names */
#define SLAB         (16u << 20)
#define MAX_CONNS    65536u

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_SHUT };

/* Body bytes in the buffer area: buffer number, offset in it, length (may span buffers). */
struct piece {
	uint32_t off;
	uint16_t boff;
	uint16_t len;
};

/* A record: 64 bytes in the descriptor ring. */
struct desc {
	uint64_t seq; /* stored last */
	uint32_t len;
	uint32_t crc;
	uint32_t npieces;
	uint32_t pad;
	struct piece p[PIECES];
};
_Static_assert(sizeof(struct desc) == 64, "a descriptor is one cache line");

enum conn_state { C_HEAD, C_BODY, C_SKIP };

struct conn {
	int fd;
	uint32_t gen;
	enum conn_state st;
	bool used, closing, dirty, keep_alive;
	uint64_t left, body_len;
	struct desc d; /* the record being received (copied to the log when whole) */
	uint8_t *run;  /* contiguous copy when the body came in more than PIECES pieces */
	char *out;
	size_t out_len, out_cap;
	struct conn *next_dirty;
	struct http_head h;
};

struct server {
	struct ref_opts o;
	struct ref_log log;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	int lfd;
	uint8_t *bufs; /* buffer area in the log */
	uint32_t nbuf_area, next_buf;
	uint8_t **bid_addr; /* where each ring slot's buffer currently is */
	unsigned refill;
	struct desc *descs;
	uint64_t ndesc;
	uint8_t *slab;
	size_t slab_pos;
	struct conn *conns;
	uint32_t *free_slots, nfree;
	struct conn *dirty;
	int close_fds[1024];
	unsigned nclose;
	uint64_t accepted, batches, enobufs;
};

static uint64_t ud(enum op op, struct server *s, struct conn *c)
{
	uint64_t slot = c ? (uint64_t)(c - s->conns) : 0, gen = c ? c->gen & 0xffffff : 0;

	return (uint64_t)op << 56 | gen << 32 | slot;
}

static struct io_uring_sqe *sqe_get(struct server *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	if (!sqe) { /* full: submit what is queued (sends after the drain only, see run()) */
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

static void arm_accept(struct server *s)
{
	struct io_uring_sqe *sqe = sqe_get(s);

	io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, s, NULL));
}

static void arm_recv(struct server *s, struct conn *c)
{
	struct io_uring_sqe *sqe = sqe_get(s);

	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud(OP_RECV, s, c));
}

static void mark_dirty(struct server *s, struct conn *c)
{
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
	mark_dirty(s, c);
	return 0;
}

/* The connection is done: its fd is closed after the next submit (queued SQEs may name it). */
static void conn_end(struct server *s, struct conn *c)
{
	if (!c->used || c->fd < 0)
		return;
	if (s->nclose == sizeof(s->close_fds) / sizeof(s->close_fds[0])) {
		io_uring_submit(&s->ring);
		while (s->nclose)
			close(s->close_fds[--s->nclose]);
	}
	s->close_fds[s->nclose++] = c->fd;
	c->fd = -1;
	mark_dirty(s, c); /* freed by flush_all() */
}

static void conn_free(struct server *s, struct conn *c)
{
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	c->used = false;
	c->gen++;
	s->free_slots[s->nfree++] = (uint32_t)(c - s->conns);
}

static uint8_t *piece_addr(struct server *s, const struct piece *p)
{
	return s->bufs + (uint64_t)p->off * BUF_SIZE + p->boff;
}

/* Take @n contiguous buffers from the buffer area (for a body that came in too many pieces). */
static uint8_t *take_run(struct server *s, uint32_t n)
{
	uint8_t *p;

	if (s->next_buf + n > s->nbuf_area)
		s->next_buf = 0;
	p = s->bufs + (uint64_t)s->next_buf * BUF_SIZE;
	s->next_buf += n;
	return p;
}

/* @len body bytes at @p (inside a receive buffer in the log). */
static void body_piece(struct server *s, struct conn *c, uint8_t *p, size_t len)
{
	struct desc *d = &c->d;
	uint64_t off = (uint64_t)(p - s->bufs);

	d->crc = paste_crc32c(d->crc, p, len);
	if (!c->run && d->npieces == PIECES) { /* rare: gather what came so far into one run */
		uint32_t i, at = 0;

		c->run = take_run(s, (uint32_t)((c->body_len + BUF_SIZE - 1) / BUF_SIZE));
		for (i = 0; i < PIECES; i++) {
			pmem_memcpy_nodrain(c->run + at, piece_addr(s, &d->p[i]), d->p[i].len);
			ref_log_lines(&s->log, c->run + at, d->p[i].len);
			at += d->p[i].len;
		}
		d->npieces = 1;
		d->p[0] = (struct piece){.off = (uint32_t)((c->run - s->bufs) / BUF_SIZE),
		                         .len = (uint16_t)at};
	}
	if (c->run) {
		pmem_memcpy_nodrain(c->run + d->len, p, len);
		ref_log_lines(&s->log, c->run + d->len, len);
		d->p[0].len = (uint16_t)(d->p[0].len + len);
	} else {
		pmem_flush(p, len); /* the kernel's copy: ordinary stores, still in the cache */
		ref_log_lines(&s->log, p, len);
		d->p[d->npieces++] = (struct piece){.off = (uint32_t)(off / BUF_SIZE),
		                                    .boff = (uint16_t)(off % BUF_SIZE),
		                                    .len = (uint16_t)len};
	}
	d->len += (uint32_t)len;
}

/* The body is whole: write its descriptor (seq last), flush it, queue the 201. */
static int commit(struct server *s, struct conn *c)
{
	char reply[REF_REPLY_MAX];
	uint64_t seq = s->log.next_seq++;
	struct desc *d = &s->descs[seq % s->ndesc];

	memcpy((uint8_t *)d + 8, (uint8_t *)&c->d + 8, sizeof(*d) - 8);
	__atomic_store_n(&d->seq, seq, __ATOMIC_RELEASE);
	pmem_flush(d, sizeof(*d));
	ref_log_lines(&s->log, d, sizeof(*d));
	s->log.dirty = true;
	s->log.appended++;
	c->run = NULL;
	return out_add(s, c, reply, ref_reply_created(&s->o, reply, seq, !c->keep_alive));
}

static int on_head(struct server *s, struct conn *c)
{
	struct http_req r;
	char reply[REF_REPLY_MAX];
	size_t n = 0;
	int st = http_parse(c->h.buf, c->h.len, &r);

	switch (ref_route(&s->o, &s->log, st, &r, reply, &n)) {
	case REF_APPEND:
		memset(&c->d, 0, sizeof(c->d));
		c->left = c->body_len = r.content_length;
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

/* @n bytes the kernel put at @p (a receive buffer in the log). @return <0 to end the connection. */
static int on_bytes(struct server *s, struct conn *c, uint8_t *p, size_t n)
{
	while (n && !c->closing) {
		size_t take;

		if (c->st == C_HEAD) {
			int st = http_head_feed(&c->h, p, n, &take);

			p += take;
			n -= take;
			if (st < 0)
				return -EMSGSIZE;
			if (st == 1 && on_head(s, c) < 0)
				return -ENOMEM;
			continue;
		}
		take = n < c->left ? n : (size_t)c->left;
		if (c->st == C_BODY)
			body_piece(s, c, p, take);
		p += take;
		n -= take;
		c->left -= take;
		if (c->left)
			continue;
		if (c->st == C_BODY) {
			if (commit(s, c) < 0)
				return -ENOMEM;
			if (!c->keep_alive)
				c->closing = true;
		}
		c->st = C_HEAD;
		http_head_reset(&c->h);
	}
	return 0;
}

/* Give ring slot @bid a fresh buffer: the next one of the log's buffer area. */
static void refill(struct server *s, unsigned bid)
{
	uint8_t *b;

	if (s->next_buf >= s->nbuf_area)
		s->next_buf = 0;
	b = s->bufs + (uint64_t)s->next_buf++ * BUF_SIZE;
	s->bid_addr[bid] = b;
	io_uring_buf_ring_add(s->br, b, BUF_SIZE, (unsigned short)bid,
	                      io_uring_buf_ring_mask(NBUFS), (int)s->refill++);
}

static void on_recv(struct server *s, struct conn *c, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		if (cqe->res > 0 && c && c->fd >= 0 &&
		    on_bytes(s, c, s->bid_addr[bid], (size_t)cqe->res) < 0)
			conn_end(s, c);
		refill(s, bid); /* the bytes stay in the log; the slot gets the next buffer */
	}
	if (!c || c->fd < 0)
		return;
	if (cqe->res == -ENOBUFS) { /* the ring ran dry: re-arm after this batch's refill */
		s->enobufs++;
		if (!more)
			arm_recv(s, c);
		return;
	}
	if (cqe->res <= 0 && !more)
		conn_end(s, c); /* EOF or error */
	else if (!more)
		arm_recv(s, c);
}

static void on_accept(struct server *s, struct io_uring_cqe *cqe)
{
	struct conn *c;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_accept(s);
	if (cqe->res < 0)
		return;
	if (!s->nfree) {
		close(cqe->res);
		return;
	}
	c = &s->conns[s->free_slots[--s->nfree]];
	c->used = true;
	c->fd = cqe->res;
	c->st = C_HEAD;
	c->closing = c->dirty = false;
	c->run = NULL;
	http_head_reset(&c->h);
	ref_sockopts(&s->o, c->fd);
	arm_recv(s, c);
	s->accepted++;
}

static void on_cqe(struct server *s, struct io_uring_cqe *cqe)
{
	uint64_t u = io_uring_cqe_get_data64(cqe);
	enum op op = (enum op)(u >> 56);
	struct conn *c = &s->conns[(uint32_t)u];

	if (op != OP_ACCEPT && (!c->used || (c->gen & 0xffffff) != ((u >> 32) & 0xffffff)))
		c = NULL; /* a completion of a connection that is gone */
	switch (op) {
	case OP_ACCEPT:
		on_accept(s, cqe);
		break;
	case OP_RECV:
		on_recv(s, c, cqe);
		break;
	case OP_SEND: /* only failures complete (CQE_SKIP_SUCCESS) */
		if (c && cqe->res < 0)
			conn_end(s, c);
		break;
	case OP_SHUT: /* the reply is out and the FIN sent (or the send failed): close */
		if (c)
			conn_end(s, c);
		break;
	}
}

/* After the drain: one send per connection with replies (no completion when it succeeds). */
static void flush_all(struct server *s)
{
	struct conn *c = s->dirty, *next;

	s->dirty = NULL;
	for (; c; c = next) {
		struct io_uring_sqe *sqe;
		uint8_t *p;

		next = c->next_dirty;
		c->dirty = false;
		if (c->fd < 0) {
			conn_free(s, c);
			continue;
		}
		if (!c->out_len)
			continue;
		if (s->slab_pos + c->out_len > SLAB)
			s->slab_pos = 0;
		p = s->slab + s->slab_pos;
		memcpy(p, c->out, c->out_len);
		s->slab_pos += (c->out_len + 63) & ~(size_t)63;
		sqe = sqe_get(s);
		io_uring_prep_send(sqe, c->fd, p, c->out_len, MSG_WAITALL | MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, ud(OP_SEND, s, c));
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		c->out_len = 0;
		if (c->closing) {
			/*
			 * FIN (and the end of the multishot recv) once the reply is out. The fd
			 * stays open until this completes: a linked request looks its fd up when it
			 * is issued, after the send, not when it is submitted.
			 */
			sqe->flags |= IOSQE_IO_LINK;
			sqe = sqe_get(s);
			io_uring_prep_shutdown(sqe, c->fd, SHUT_RDWR);
			io_uring_sqe_set_data64(sqe, ud(OP_SHUT, s, c));
		}
	}
}

static int run(struct server *s)
{
	while (!ref_stop) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int r = s->o.busy_poll ? io_uring_submit_and_get_events(&s->ring)
		                       : io_uring_submit_and_wait(&s->ring, 1);

		while (s->nclose) /* their SQEs are issued: the fd numbers may be reused now */
			close(s->close_fds[--s->nclose]);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
			fprintf(stderr, "ref-uring: io_uring_enter: %s\n", strerror(-r));
			return 1;
		}
		io_uring_for_each_cqe(&s->ring, head, cqe)
		{
			on_cqe(s, cqe);
			n++;
		}
		if (!n)
			continue;
		io_uring_cq_advance(&s->ring, n);
		s->batches++;
		if (s->refill) {
			io_uring_buf_ring_advance(s->br, (int)s->refill);
			s->refill = 0;
		}
		if (s->log.dirty)
			ref_log_drain(&s->log); /* group commit: one fence for the batch */
		flush_all(s);
	}
	return 0;
}

static int setup_ring(struct server *s)
{
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER |
	                                     IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
	                            .cq_entries = 16 * RING_ENTRIES};
	struct io_uring_buf_reg reg = {.ring_entries = NBUFS, .bgid = BGID};
	int r;

	p.flags |= IORING_SETUP_CQSIZE;
	r = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &p);
	if (r < 0) {
		fprintf(stderr,
		        "ref-uring: io_uring_queue_init (DEFER_TASKRUN, SINGLE_ISSUER): %s "
		        "(needs Linux 6.1 or later)\n",
		        strerror(-r));
		return r;
	}
	s->br = mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
	             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->br == MAP_FAILED)
		return -errno;
	io_uring_buf_ring_init(s->br);
	reg.ring_addr = (uint64_t)(uintptr_t)s->br;
	r = io_uring_register_buf_ring(&s->ring, &reg, 0);
	if (r < 0) {
		fprintf(stderr,
		        "ref-uring: registering the provided-buffer ring: %s (needs Linux "
		        "5.19 or later)\n",
		        strerror(-r));
		return r;
	}
	for (unsigned i = 0; i < NBUFS; i++)
		refill(s, i);
	io_uring_buf_ring_advance(s->br, (int)s->refill);
	s->refill = 0;
	return 0;
}

static int setup(struct server *s)
{
	uint64_t area = s->log.len - REF_LOG_DATA_OFF, dbytes = (area / 16) & ~(uint64_t)4095;

	s->descs = (struct desc *)(s->log.base + REF_LOG_DATA_OFF);
	s->ndesc = dbytes / sizeof(struct desc);
	s->bufs = s->log.base + REF_LOG_DATA_OFF + dbytes;
	s->nbuf_area = (uint32_t)((area - dbytes) / BUF_SIZE);
	if (s->nbuf_area < 4 * NBUFS) {
		fprintf(stderr, "ref-uring: --pool-size too small for %u receive buffers\n", NBUFS);
		return -EINVAL;
	}
	s->bid_addr = calloc(NBUFS, sizeof(*s->bid_addr));
	s->slab = malloc(SLAB);
	s->conns = calloc(MAX_CONNS, sizeof(*s->conns));
	s->free_slots = calloc(MAX_CONNS, sizeof(*s->free_slots));
	if (!s->bid_addr || !s->slab || !s->conns || !s->free_slots) {
		fprintf(stderr, "ref-uring: out of memory\n");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < MAX_CONNS; i++)
		s->free_slots[s->nfree++] = MAX_CONNS - 1 - i;
	s->lfd = ref_listen(&s->o);
	if (s->lfd < 0)
		return s->lfd;
	if (setup_ring(s))
		return -EIO;
	arm_accept(s);
	return 0;
}

static const char usage[] =
    "Usage: ref-uring --pool PATH [--ip ADDR] [--port N] [--pool-size SIZE] [--busy-poll]\n"
    "\n"
    "The reference io_uring + libpmem write-ahead-log server of bench/compare (issue 15):\n"
    "kernel TCP through one io_uring (DEFER_TASKRUN + SINGLE_ISSUER), multishot accept,\n"
    "multishot recv into a provided-buffer ring whose 2 KiB buffers lie inside the\n"
    "libpmem-mapped log (the kernel's one copy lands in the log; bodies stay there), one\n"
    "pmem_drain() per completion batch, replies sent after it with IOSQE_CQE_SKIP_SUCCESS.\n"
    "With --busy-poll the loop asks for completions without waiting. Answers like paste-wal,\n"
    "so paste-bench --mode http-post drives and checks it. Prints 'ref-uring: ready' when it\n"
    "accepts connections; SIGINT/SIGTERM stop it and print its counters. Needs Linux 6.1+.\n"
    "\n"
    "Options:\n";

int main(int argc, char **argv)
{
	static struct server srv;
	struct server *s = &srv;
	int rc;

	s->o.prog = "ref-uring";
	s->o.server = "ref-uring";
	rc = ref_opts_parse(&s->o, argc, argv, usage);
	if (rc)
		return rc;
	if (ref_log_open(&s->log, &s->o,
	                 "64-byte descriptors {seq, len, crc32c, pieces}, then "
	                 "2 KiB receive buffers"))
		return 1;
	if (setup(s)) {
		ref_log_close(&s->log);
		return 1;
	}
	ref_signals();
	printf("ref-uring: log %s (%zu bytes, is_pmem %d; %u receive buffers of %u bytes in it, "
	       "%u in the ring), emulated latency %" PRIu64 " ns per fence + %" PRIu64
	       " ns per line, %s\n",
	       s->o.pool, s->log.len, s->log.is_pmem, s->nbuf_area, BUF_SIZE, NBUFS, s->o.fence_ns,
	       s->o.line_ns, s->o.busy_poll ? "busy-poll" : "blocking");
	printf("ref-uring: ready on %s:%u\n", s->o.ip ? s->o.ip : "*", s->o.port);
	fflush(stdout);
	rc = run(s);
	printf("ref-uring: %" PRIu64 " records, %" PRIu64 " drains, %" PRIu64 " batches, %" PRIu64
	       " connections accepted, %" PRIu64 " ENOBUFS\n",
	       s->log.appended, s->log.drains, s->batches, s->accepted, s->enobufs);
	io_uring_queue_exit(&s->ring);
	ref_log_close(&s->log);
	return rc;
}
