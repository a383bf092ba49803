/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_daemon_loop.c - src/apps/daemon_loop.c, the daemons' event loop: the connection registry
 * (add, remove in any order, counts), the timeout scan (idle and request limits, the program's
 * verdict hook, the default reset, a limit of 0 meaning never), and daemon_loop_run() over a real
 * context on the kernel transport: the tick and after_poll hooks, SIGUSR1's stats hook, stop on
 * the stop flag, status 1 on a hook's error or l->fatal, and an idle connection reset by the
 * default verdict (the peer sees the connection end); the pool-headroom rule.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <paste/paste.h>

#include "daemon_loop.h"
#include "daemon_opts.h"

#define MS 1000000ull

/* ---- registry and timeout scan, without a context -------------------------------------------- */

static struct {
	unsigned idle, request;
	bool verdict;
	struct daemon_conn *last;
} seen;

static bool verdict(struct daemon_conn *dc, enum daemon_timeout why, void *app)
{
	assert_ptr_equal(app, &seen);
	if (why == DAEMON_TIMEOUT_IDLE)
		seen.idle++;
	else
		seen.request++;
	seen.last = dc;
	return seen.verdict;
}

static void test_registry(void **state)
{
	struct daemon_loop l = {0};
	struct daemon_conn a = {0}, b = {0}, c = {0}, never = {0};
	struct paste_conn *pa = (struct paste_conn *)&a, *pb = (struct paste_conn *)&b;

	daemon_conn_add(&l, &a, pa);
	daemon_conn_add(&l, &b, pb);
	daemon_conn_add(&l, &c, (struct paste_conn *)&c);
	assert_int_equal(l.nconns, 3);
	assert_int_equal(l.conns_total, 3);
	assert_ptr_equal(l.conns, &c); /* newest first */
	assert_ptr_equal(a.c, pa);
	assert_true(a.last_ns > 0);
	assert_int_equal(a.req_ns, 0);
	daemon_conn_remove(&l, &b); /* the middle */
	assert_ptr_equal(c.next, &a);
	assert_ptr_equal(a.prev, &c);
	daemon_conn_remove(&l, &b); /* twice: nothing happens */
	daemon_conn_remove(&l, &never);
	assert_int_equal(l.nconns, 2);
	daemon_conn_remove(&l, &c); /* the head */
	assert_ptr_equal(l.conns, &a);
	assert_null(a.prev);
	daemon_conn_remove(&l, &a);
	assert_null(l.conns);
	assert_int_equal(l.nconns, 0);
	assert_int_equal(l.conns_total, 3);
}

static void test_timeouts(void **state)
{
	struct daemon_loop l = {
	    .idle_timeout_ms = 100, .request_timeout_ms = 10, .timed_out = verdict, .app = &seen};
	struct daemon_conn a = {0}, b = {0};
	uint64_t t0;

	memset(&seen, 0, sizeof(seen));
	daemon_conn_add(&l, &a, (struct paste_conn *)&a);
	daemon_conn_add(&l, &b, (struct paste_conn *)&b);
	t0 = a.last_ns;
	daemon_conn_touch(&a, t0);
	daemon_conn_touch(&b, t0);

	/* Within every limit: no call. */
	daemon_loop_check_timeouts(&l, t0 + 50 * MS);
	assert_int_equal(seen.idle + seen.request, 0);

	/* A request begun at t0 is over its 10 ms; the program says "not stuck": not counted, and
	 * the idle limit is not reached yet. */
	daemon_conn_request(&a, t0);
	daemon_loop_check_timeouts(&l, t0 + 50 * MS);
	assert_int_equal(seen.request, 1);
	assert_ptr_equal(seen.last, &a);
	assert_int_equal(l.request_timeouts, 0);
	assert_int_equal(a.req_ns, t0);

	/* Now it acts: counted once, the request is over. */
	seen.verdict = true;
	daemon_loop_check_timeouts(&l, t0 + 60 * MS);
	assert_int_equal(seen.request, 2);
	assert_int_equal(l.request_timeouts, 1);
	assert_int_equal(a.req_ns, 0);
	daemon_loop_check_timeouts(&l, t0 + 70 * MS);
	assert_int_equal(seen.request, 2);

	/* Idle: b made progress at t0 + 80 ms, a did not: only a is over 100 ms at t0 + 150. */
	daemon_conn_touch(&b, t0 + 80 * MS);
	daemon_loop_check_timeouts(&l, t0 + 150 * MS);
	assert_int_equal(seen.idle, 1);
	assert_ptr_equal(seen.last, &a);
	assert_int_equal(l.idle_timeouts, 1);
	/* Counted once even though on_close has not run yet. */
	daemon_loop_check_timeouts(&l, t0 + 160 * MS);
	assert_int_equal(seen.idle, 1);

	/* Limits of 0: never. */
	l.idle_timeout_ms = l.request_timeout_ms = 0;
	daemon_conn_request(&b, t0);
	daemon_loop_check_timeouts(&l, t0 + 3600000 * MS);
	assert_int_equal(seen.idle + seen.request, 3);
	daemon_conn_remove(&l, &a);
	daemon_conn_remove(&l, &b);
}

static void test_parse_timeout(void **state)
{
	uint64_t ms = 7;

	assert_int_equal(daemon_parse_timeout("t", "idle-timeout", "30", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(daemon_parse_timeout("t", "idle-timeout", "0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(daemon_parse_timeout("t", "idle-timeout", "86401", &ms), -1);
	assert_int_equal(daemon_parse_timeout("t", "idle-timeout", "-1", &ms), -1);
	assert_int_equal(daemon_parse_timeout("t", "idle-timeout", "1s", &ms), -1);
	assert_int_equal(ms, 0); /* untouched on error */
}

/* ---- daemon_loop_run over a context -----------------------------------------------------------
 */

static char pool_path[128];
static struct paste_ctx *ctx;
static struct {
	unsigned ticks, polls, stats, stop_after;
	int tick_ret;
	bool set_fatal;
	struct daemon_loop *l;
} run;

static int on_tick(void *app)
{
	run.ticks++;
	if (run.stop_after && run.ticks >= run.stop_after)
		daemon_got_stop = 1;
	return run.tick_ret;
}

static int on_after_poll(void *app)
{
	run.polls++;
	if (run.set_fatal)
		run.l->fatal = 1;
	return 0;
}

static void on_stats(void *app)
{
	run.stats++;
}

static int setup_ctx(void **state)
{
	struct paste_opts o = {.sz = sizeof(o)};

	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-test-%d-loop.pool", (int)getpid());
	unlink(pool_path);
	o.transport = PASTE_TRANSPORT_KERNEL;
	o.ip = "127.0.0.1";
	o.pool_path = pool_path;
	o.pool_size = 4 << 20;
	o.ring_size = 64;
	o.batch_size = 16;
	assert_int_equal(paste_open(&ctx, &o), 0);
	memset(&run, 0, sizeof(run));
	daemon_got_stop = 0;
	daemon_got_usr1 = 0;
	return 0;
}

static int teardown_ctx(void **state)
{
	paste_close(&ctx);
	unlink(pool_path);
	daemon_got_stop = 0;
	return 0;
}

static void loop_init(struct daemon_loop *l)
{
	*l = (struct daemon_loop){.name = "test", .ctx = ctx, .tick_ms = 5};
	l->tick = on_tick;
	l->after_poll = on_after_poll;
	l->print_stats = on_stats;
	run.l = l;
}

static void test_run_ticks_and_stop(void **state)
{
	struct daemon_loop l;

	loop_init(&l);
	run.stop_after = 3;
	daemon_got_usr1 = 1; /* SIGUSR1 arrived: the stats hook runs once, the flag is cleared */
	assert_int_equal(daemon_loop_run(&l), 0);
	assert_int_equal(run.ticks, 3);
	assert_true(run.polls >= 3);
	assert_int_equal(run.stats, 1);
	assert_int_equal(daemon_got_usr1, 0);
}

static void test_run_errors(void **state)
{
	struct daemon_loop l;

	loop_init(&l);
	run.tick_ret = -EIO; /* a tick hook's error stops the loop with status 1 */
	assert_int_equal(daemon_loop_run(&l), 1);
	assert_int_equal(run.ticks, 1);

	memset(&run, 0, sizeof(run));
	loop_init(&l);
	run.set_fatal = true; /* so does l->fatal, set from a callback */
	assert_int_equal(daemon_loop_run(&l), 1);
	assert_int_equal(run.polls, 1);
}

/* The pool-headroom rule: fewer than reserve FREE frames; cached while there is room, re-read at
 * every call while short. */
static void test_pool_low(void **state)
{
	struct daemon_loop l = {.ctx = ctx};
	struct paste_stats st;
	uint64_t t0 = daemon_now_ns();

	assert_int_equal(paste_stats(ctx, &st, sizeof(st)), 0);
	assert_true(st.frames_free > 10);
	assert_false(daemon_pool_low(&l, st.frames_free, t0)); /* exactly the free count: room */
	/* within the check interval the answer is the cached one, even for a larger reserve */
	assert_false(daemon_pool_low(&l, st.frames_free + 1, t0 + 1000));
	assert_true(daemon_pool_low(&l, st.frames_free + 1, t0 + DAEMON_POOL_CHECK_NS));
	/* short: every call reads again */
	assert_false(daemon_pool_low(&l, 10, t0 + DAEMON_POOL_CHECK_NS + 1));
	assert_false(daemon_pool_low(&l, 0, t0 + 2 * DAEMON_POOL_CHECK_NS));
}

static int acc_accept(struct paste_conn *c, void *user)
{
	struct daemon_loop *l = user;
	struct daemon_conn *dc = calloc(1, sizeof(*dc));

	if (!dc)
		return -ENOMEM;
	daemon_conn_add(l, dc, c);
	paste_conn__set_user(c, dc);
	return 0;
}

static void acc_data(struct paste_conn *c, void *user)
{
}

static void acc_close(struct paste_conn *c, int err, void *user)
{
	struct daemon_conn *dc = paste_conn__user(c);

	daemon_conn_remove(user, dc);
	free(dc);
	daemon_got_stop = 1; /* the reset connection is gone: the test is done */
}

static void test_run_idle_reset(void **state)
{
	struct paste_conn_ops ops = {
	    .sz = sizeof(ops), .on_accept = acc_accept, .on_data = acc_data, .on_close = acc_close};
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	struct daemon_loop l;
	struct pollfd pfd;
	char b;
	int fd;

	loop_init(&l);
	l.tick = NULL;
	l.idle_timeout_ms = 50;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	assert_int_equal(paste_listen(ctx, ntohs(a.sin_port), &ops, &l), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	/* The client sends nothing: the default verdict resets it after 50 ms; on_close stops the
	 * loop. (A loop that never timed out would run until ctest's timeout.) */
	assert_int_equal(daemon_loop_run(&l), 0);
	assert_int_equal(l.idle_timeouts, 1);
	assert_int_equal(l.nconns, 0);
	assert_int_equal(l.conns_total, 1);
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_true(recv(fd, &b, 1, 0) <= 0); /* reset (or EOF): the server side is gone */
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_registry),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_parse_timeout),
	    cmocka_unit_test_setup_teardown(test_run_ticks_and_stop, setup_ctx, teardown_ctx),
	    cmocka_unit_test_setup_teardown(test_run_errors, setup_ctx, teardown_ctx),
	    cmocka_unit_test_setup_teardown(test_run_idle_reset, setup_ctx, teardown_ctx),
	    cmocka_unit_test_setup_teardown(test_pool_low, setup_ctx, teardown_ctx),
	};

	paste_set_print(NULL, NULL, PASTE_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
