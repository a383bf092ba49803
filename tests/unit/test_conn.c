/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_conn.c - src/conn.c and src/keep.c over a fake transport (the table of src/transport.h with
 * stubs that record what the connection layer asked for): the one accept path (max_conns and
 * on_accept refusals, counters, the transport's attach/detach), received pieces as slots, consume
 * releasing exactly the frames it finished, keep/release on a piece, send/close/flush/reap, and a
 * failed round resetting the connections that queued output. Every test ends with no frame RX or
 * KEPT and the allocator audit passing. The fake is also the smallest example of a transport.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <paste/paste.h>
#include <paste/pool.h>

#include "ctx.h"
#include "pool_internal.h"

/* ---- the fake transport -----------------------------------------------------------------------
 */

struct fake_conn {
	int handle;
	bool attached, detached, aborted;
	size_t consumed, sent, flushed;
};

static struct {
	size_t sendbuf;
	int attach_err;
	int connect_err;
} fake;

static int fake_listen(struct paste_listener *l)
{
	return 0;
}

static void fake_unlisten(struct paste_listener *l)
{
}

static int fake_poll(struct paste_ctx *ctx, int timeout_ms)
{
	return 0;
}

static ssize_t fake_send(struct paste_conn *c, const void *buf, size_t len)
{
	struct fake_conn *f = paste_conn__tp(c);

	f->sent += len;
	paste_conn__mark_dirty(c);
	return (ssize_t)len;
}

static size_t fake_sendbuf(const struct paste_conn *c)
{
	return fake.sendbuf;
}

static void fake_consumed(struct paste_conn *c, size_t n)
{
	((struct fake_conn *)paste_conn__tp(c))->consumed += n;
}

static void fake_flush(struct paste_conn *c)
{
	struct fake_conn *f = paste_conn__tp(c);

	f->flushed = f->sent;
	if (c->want_close) {
		paste_conn__q_free_all(c);
		paste_conn__mark_dead(c, 0);
	}
}

static void fake_abort(struct paste_conn *c)
{
	((struct fake_conn *)paste_conn__tp(c))->aborted = true;
}

static int fake_connects;

static int fake_connect(struct paste_conn *c)
{
	fake_connects++;
	return fake.connect_err;
}

static int fake_attach(struct paste_conn *c, void *handle)
{
	struct fake_conn *f = paste_conn__tp(c);

	if (fake.attach_err)
		return fake.attach_err;
	f->handle = *(int *)handle;
	f->attached = true;
	return 0;
}

static void fake_detach(struct paste_conn *c)
{
	((struct fake_conn *)paste_conn__tp(c))->detached = true;
}

static const struct paste_transport_ops fake_ops = {
    .name = "fake",
    .conn_size = sizeof(struct fake_conn),
    .listener_size = 0,
    .frames_reserved = 8,
    .listen = fake_listen,
    .unlisten = fake_unlisten,
    .poll = fake_poll,
    .send = fake_send,
    .sendbuf = fake_sendbuf,
    .consumed = fake_consumed,
    .flush = fake_flush,
    .abort = fake_abort,
    .connect = fake_connect,
};

/* ---- a context over a real pool, wired to the fake --------------------------------------------
 */

static char pool_path[128];
static struct paste_ctx *ctx;
static struct paste_listener *lst;
static int refuse_next, closes, last_close_err;
static struct paste_conn *last_accepted;

static int on_accept(struct paste_conn *c, void *user)
{
	if (refuse_next) {
		refuse_next = 0;
		return -EPERM;
	}
	last_accepted = c;
	return 0;
}

static void on_close(struct paste_conn *c, int err, void *user)
{
	closes++;
	last_close_err = err;
}

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

static int setup(void **state)
{
	struct paste_pool_opts po = {.sz = sizeof(po), .size = 4 << 20, .create = true};
	struct paste_pool_info info;

	paste_set_print(quiet, NULL, PASTE_LOG_DEBUG);
	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-test-%d-conn.pool", (int)getpid());
	unlink(pool_path);
	ctx = calloc(1, sizeof(*ctx));
	assert_non_null(ctx);
	assert_int_equal(paste_pool__open(&ctx->pool, pool_path, &po), 0);
	paste_pool__info(ctx->pool, &info, sizeof(info));
	ctx->area = paste_pool__frames(ctx->pool);
	ctx->frame_size = info.frame_size;
	ctx->frame_count = info.frame_count;
	ctx->frames = paste_pool__frame_alloc(ctx->pool);
	ctx->tp = &fake_ops;
	ctx->opts.max_conns = 2;
	ctx->opts.batch_size = 4;
	lst = calloc(1, sizeof(*lst));
	assert_non_null(lst);
	lst->ops = (struct paste_conn_ops){
	    .sz = sizeof(lst->ops), .on_accept = on_accept, .on_close = on_close};
	lst->ctx = ctx;
	ctx->listeners[ctx->nlisteners++] = lst;
	memset(&fake, 0, sizeof(fake));
	fake.sendbuf = 1000;
	refuse_next = closes = last_close_err = 0;
	last_accepted = NULL;
	return 0;
}

/* Shut everything down and check that no frame is left held. */
static int teardown(void **state)
{
	paste_conns__shutdown(ctx);
	assert_int_equal(ctx->nconns, 0);
	assert_int_equal(paste_frames__nr(ctx->frames, PASTE_FRAME_RX), 0);
	assert_int_equal(paste_frames__nr(ctx->frames, PASTE_FRAME_KEPT), 0);
	assert_true(paste_frames__audit(ctx->frames));
	paste_pool__close(&ctx->pool);
	free(ctx);
	unlink(pool_path);
	return 0;
}

static struct paste_conn *accept_one(int handle)
{
	struct in_addr peer = {.s_addr = 0x0100007f};

	return paste_conn__accept(lst, &peer, 4242, fake_attach, fake_detach, &handle);
}

/* A received frame holding @text at @off: RX, owned by whoever queues it. */
static uint32_t rx_frame(const char *text, uint32_t off)
{
	uint32_t idx;

	assert_int_equal(paste_frames__alloc(ctx->frames, PASTE_FRAME_RX, &idx), 0);
	memcpy(ctx->area + (uint64_t)idx * ctx->frame_size + off, text, strlen(text));
	return idx;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_accept_path(void **state)
{
	struct paste_conn *a, *b;
	struct fake_conn *f;
	uint16_t port;

	a = accept_one(7);
	assert_non_null(a);
	f = paste_conn__tp(a);
	assert_true(f->attached);
	assert_int_equal(f->handle, 7);
	paste_conn__peer(a, NULL, &port);
	assert_int_equal(port, 4242);
	refuse_next = 1; /* the application refuses: detached, freed, counted */
	assert_null(accept_one(8));
	fake.attach_err = -EMFILE; /* the transport cannot attach: counted, on_accept not asked */
	assert_null(accept_one(9));
	fake.attach_err = 0;
	b = accept_one(10);
	assert_non_null(b);
	assert_null(accept_one(11)); /* max_conns = 2 */
	assert_int_equal(ctx->st.conns_accepted, 2);
	assert_int_equal(ctx->st.conns_refused, 3);
	assert_int_equal(ctx->nconns, 2);
}

static void test_pieces_and_consume(void **state)
{
	struct paste_conn *c = accept_one(1);
	const struct paste_slot *s;
	uint32_t f1 = rx_frame("hello ", 100), f2 = rx_frame("world", 0);
	unsigned n;

	assert_int_equal(paste_conn__q_append(c, f1, 100, 6), 0);
	assert_int_equal(paste_conn__q_append(c, f2, 0, 5), 0);
	assert_int_equal(paste_conn__pending(c), 11);
	assert_int_equal(ctx->st.rx_payload_bytes, 11);
	s = paste_conn__slots(c, &n);
	assert_int_equal(n, 2);
	assert_int_equal(s[0].frame, f1);
	assert_int_equal(s[0].offset, 100);
	assert_int_equal(s[0].len, 6);
	assert_memory_equal(s[0].data, "hello ", 6);
	assert_memory_equal(s[1].data, "world", 5);
	/* consume into the second piece: only the first frame is released */
	assert_int_equal(paste_conn__consume(c, 8), 0);
	assert_int_equal(((struct fake_conn *)paste_conn__tp(c))->consumed, 8);
	assert_int_equal(paste_frames__nr(ctx->frames, PASTE_FRAME_RX), 1);
	s = paste_conn__slots(c, &n);
	assert_int_equal(n, 1);
	assert_int_equal(s[0].offset, 2);
	assert_int_equal(s[0].len, 3);
	assert_memory_equal(s[0].data, "rld", 3);
	assert_int_equal(paste_conn__consume(c, 4), -EINVAL);
	assert_non_null(strstr(paste_last_error(), "4 bytes asked, 3 pending"));
	/* the rest is released when the connection goes (teardown checks nothing is RX) */
}

static void test_keep_outlives_consume(void **state)
{
	struct paste_conn *c = accept_one(1);
	uint32_t f = rx_frame("durable bytes", 0);
	struct paste_ref refs[2];
	unsigned n = 0;

	assert_int_equal(paste_conn__q_append(c, f, 0, 13), 0);
	assert_int_equal(paste_conn__keep(c, 0, 7, true, refs, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_true(ctx->fence_needed); /* persist asked for the round's fence */
	assert_int_equal(paste_conn__consume(c, 13), 0);
	assert_int_equal(paste_frames__nr(ctx->frames, PASTE_FRAME_KEPT), 1); /* still kept */
	assert_memory_equal(paste_pool__ref_ptr(ctx->pool, &refs[0]), "durable", 7);
	assert_int_equal(paste_release(ctx, &refs[0]), 0);
	assert_int_equal(paste_frames__nr(ctx->frames, PASTE_FRAME_KEPT), 0);
}

static void test_send_close_reap(void **state)
{
	struct paste_conn *c = accept_one(1);
	struct fake_conn *f = paste_conn__tp(c);

	assert_int_equal(paste_conn__sendbuf(c), 1000);
	assert_int_equal(paste_conn__send(c, "abc", 3), 3);
	assert_int_equal(paste_conn__close(c), 0);
	assert_int_equal(paste_conn__sendbuf(c), 0);
	assert_int_equal(paste_conn__send(c, "x", 1), -ENOTCONN);
	assert_int_equal(f->flushed, 0); /* nothing leaves before the end of the round */
	paste_conns__flush(ctx);
	assert_int_equal(f->flushed, 3);
	paste_conns__reap(ctx);
	assert_int_equal(closes, 1);
	assert_int_equal(last_close_err, 0);
	assert_int_equal(ctx->nconns, 0);
}

static void test_failed_round_resets_dirty(void **state)
{
	struct paste_conn *busy = accept_one(1), *idle = accept_one(2);
	struct fake_conn *fb = paste_conn__tp(busy), *fi = paste_conn__tp(idle);

	assert_int_equal(paste_conn__send(busy, "reply", 5), 5);
	paste_conns__abort_dirty(ctx);
	paste_conns__flush(ctx);
	assert_true(fb->aborted);
	assert_int_equal(fb->flushed, 0); /* the reply never went out */
	assert_false(fi->aborted);
	paste_conns__reap(ctx);
	assert_int_equal(closes, 1);
	assert_int_equal(last_close_err, -ECONNABORTED);
	assert_int_equal(ctx->nconns, 1);
}

/* ---- outgoing connections (paste_connect) -------------------------------------------------- */

static int connects, last_connect_err;

static void on_connect(struct paste_conn *c, int err, void *user)
{
	connects++;
	last_connect_err = err;
	assert_ptr_equal(user, &connects);
}

static const struct paste_conn_ops out_ops = {
    .sz = sizeof(out_ops), .on_connect = on_connect, .on_close = on_close};

static struct paste_conn *connect_one(int timeout_ms)
{
	struct in_addr peer = {.s_addr = 0x0100007f};
	struct paste_conn *c = NULL;

	connects = 0;
	last_connect_err = 1;
	fake_connects = 0;
	assert_int_equal(paste_connect(ctx, &peer, 6379, timeout_ms, &out_ops, &connects, &c), 0);
	assert_non_null(c);
	assert_int_equal(fake_connects, 1);
	assert_int_equal(ctx->nconnecting, 1);
	return c;
}

static void test_connect_ok(void **state)
{
	struct paste_conn *c = connect_one(1000);
	struct in_addr a;
	uint16_t port;

	assert_int_equal(paste_conn__send(c, "x", 1), -ENOTCONN); /* not before on_connect(0) */
	assert_int_equal(paste_conn__sendbuf(c), 0);
	paste_conns__run_ready(ctx);
	assert_int_equal(connects, 0);
	paste_conn__connected(c, 0);
	assert_int_equal(ctx->nconnecting, 0);
	paste_conns__run_ready(ctx);
	assert_int_equal(connects, 1);
	assert_int_equal(last_connect_err, 0);
	paste_conn__peer(c, &a, &port);
	assert_int_equal(a.s_addr, 0x0100007f);
	assert_int_equal(port, 6379);
	assert_int_equal(paste_conn__send(c, "PING", 4), 4);
	assert_int_equal(paste_conn__close(c), 0);
	paste_conns__flush(ctx);
	paste_conns__reap(ctx);
	assert_int_equal(connects, 1); /* once */
	assert_int_equal(closes, 1);   /* a connected connection ends with on_close */
	assert_int_equal(ctx->nconns, 0);
}

static void test_connect_refused(void **state)
{
	struct paste_conn *c = connect_one(1000);

	paste_conn__connected(c, -ECONNREFUSED);
	paste_conns__run_ready(ctx);
	paste_conns__reap(ctx);
	assert_int_equal(connects, 1);
	assert_int_equal(last_connect_err, -ECONNREFUSED);
	assert_int_equal(closes, 0); /* on_connect(err) instead of on_close */
	assert_int_equal(ctx->nconns, 0);
	assert_int_equal(ctx->nconnecting, 0);
	assert_non_null(strstr(paste_last_error(), "127.0.0.1:6379"));
	assert_non_null(strstr(paste_last_error(), "refused"));
}

static void test_connect_timeout(void **state)
{
	struct paste_conn *c = connect_one(1);
	struct fake_conn *f = paste_conn__tp(c);

	paste_conns__connect_timers(ctx);
	usleep(20000);
	paste_conns__connect_timers(ctx);
	assert_true(f->aborted); /* the transport dropped its handle */
	paste_conns__reap(ctx);
	assert_int_equal(last_connect_err, -ETIMEDOUT);
	assert_int_equal(closes, 0);
	assert_int_equal(ctx->nconns, 0);
	assert_non_null(strstr(paste_last_error(), "timed out"));
}

static void test_connect_abort(void **state)
{
	struct paste_conn *c = connect_one(1000);

	paste_conn__abort(c);
	paste_conn__connected(c, 0); /* a late result of the transport is ignored */
	paste_conns__run_ready(ctx);
	paste_conns__reap(ctx);
	assert_int_equal(connects, 1);
	assert_int_equal(last_connect_err, -ECONNABORTED);
	assert_int_equal(ctx->nconns, 0);
	assert_int_equal(ctx->nconnecting, 0);
}

static void test_connect_errors(void **state)
{
	struct in_addr peer = {.s_addr = 0x0100007f}, none = {0};
	struct paste_conn_ops no_cb = {.sz = sizeof(no_cb), .on_close = on_close};
	struct paste_conn *c = (struct paste_conn *)1;

	fake.connect_err = -ENETUNREACH;
	assert_int_equal(paste_connect(ctx, &peer, 1, 0, &out_ops, &connects, &c), -ENETUNREACH);
	assert_null(c);
	assert_non_null(strstr(paste_last_error(), "network unreachable"));
	fake.connect_err = 0;
	assert_int_equal(paste_connect(ctx, &peer, 1, 0, &no_cb, NULL, NULL), -EINVAL);
	assert_int_equal(paste_connect(ctx, &none, 1, 0, &out_ops, NULL, NULL), -EINVAL);
	assert_int_equal(paste_connect(ctx, &peer, 0, 0, &out_ops, NULL, NULL), -EINVAL);
	assert_int_equal(ctx->nconns, 0);
	assert_int_equal(ctx->nconnecting, 0);
}

/* ---- the order of a round (paste_poll) ---------------------------------------------------- */

static char order[16];

static void note(char c)
{
	size_t n = strlen(order);

	if (n + 1 < sizeof(order))
		order[n] = c;
}

static void rec_fence(void *arg)
{
	note('F');
}

static void rec_flush(struct paste_conn *c)
{
	note('f');
	fake_flush(c);
}

static void rec_kick(struct paste_ctx *c)
{
	note('k');
}

static void rec_tick(struct paste_ctx *c)
{
	note('t');
}

static void rec_after_round(struct paste_ctx *c)
{
	note('a');
}

/* The reply's kick comes right after the flush, which comes after the fence; the timers and the
 * rest of the round follow it. */
static void test_round_order(void **state)
{
	struct paste_transport_ops ops = fake_ops;
	struct paste_conn *c = accept_one(1);
	uint32_t f = rx_frame("a durable request", 0);
	struct paste_ref ref;
	unsigned n = 0;

	ops.flush = rec_flush;
	ops.kick = rec_kick;
	ops.tick = rec_tick;
	ops.after_round = rec_after_round;
	ctx->tp = &ops;
	memset(order, 0, sizeof(order));
	assert_int_equal(paste_pool__add_drain_hook(ctx->pool, rec_fence, NULL), 0);
	assert_int_equal(paste_conn__q_append(c, f, 0, 17), 0);
	assert_int_equal(paste_conn__keep(c, 0, 17, true, &ref, 1, &n), 0);
	assert_int_equal(paste_conn__consume(c, 17), 0);
	assert_int_equal(paste_conn__send(c, "reply", 5), 5);
	assert_int_equal(paste_poll(ctx, 0), 0);
	assert_string_equal(order, "Ffkta");
	assert_int_equal(((struct fake_conn *)paste_conn__tp(c))->flushed, 5);
	paste_pool__del_drain_hook(ctx->pool, rec_fence, NULL);
	assert_int_equal(paste_release(ctx, &ref), 0);
	ctx->tp = &fake_ops;
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_accept_path),
	    T(test_pieces_and_consume),
	    T(test_keep_outlives_consume),
	    T(test_send_close_reap),
	    T(test_failed_round_resets_dirty),
	    T(test_round_order),
	    T(test_connect_ok),
	    T(test_connect_refused),
	    T(test_connect_timeout),
	    T(test_connect_abort),
	    T(test_connect_errors),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
