/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_errors.c - the error and options contract of the public API (paste.h, pool.h, index.h):
 * every public int function that fails returns a negative errno and leaves a message in
 * paste_last_error() that says what failed; every options struct is checked the same way (.sz too
 * small, or bytes set past the struct this library knows). Drives each call into its failures
 * without a NIC: the kernel transport on 127.0.0.1, a real TCP connection from this process, a
 * 4 MiB pool on /dev/shm. The connection calls and the failing round hook run again on the
 * io_uring transport.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

#include <paste/index.h>
#include <paste/paste.h>
#include <paste/pool.h>

static char pool_path[128];
static struct paste_conn *accepted;
static enum paste_transport transport = PASTE_TRANSPORT_KERNEL; /* of kernel_opts() */

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

/* @call failed with @err and left a message containing @what (a different one than before). */
#define EXPECT_FAIL(call, err, what)                                                               \
	do {                                                                                       \
		paste_fail_reset();                                                                \
		int r_ = (call);                                                                   \
		if (r_ != (err))                                                                   \
			fail_msg("%s: %d, not %d: %s", #call, r_, (err), paste_last_error());      \
		if (!strstr(paste_last_error(), (what)))                                           \
			fail_msg("%s: message \"%s\" lacks \"%s\"", #call, paste_last_error(),     \
			         (what));                                                          \
	} while (0)

/* Put a known marker into the last error, so a call that fails silently is caught. */
static void paste_fail_reset(void)
{
	struct paste_pool *p;
	struct paste_pool_opts o = {.sz = 1};

	assert_int_equal(paste_pool__open(&p, "/nonexistent/marker", &o), -EINVAL);
	assert_non_null(strstr(paste_last_error(), "marker"));
}

static int setup(void **state)
{
	paste_set_print(quiet, NULL, PASTE_LOG_DEBUG);
	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-test-%d-errors.pool", (int)getpid());
	unlink(pool_path);
	return 0;
}

static int teardown(void **state)
{
	unlink(pool_path);
	transport = PASTE_TRANSPORT_KERNEL;
	accepted = NULL;
	return 0;
}

static struct paste_opts kernel_opts(void)
{
	struct paste_opts o = {.sz = sizeof(o)};

	o.transport = transport;
	o.ip = "127.0.0.1";
	o.pool_path = pool_path;
	o.pool_size = 4 << 20;
	o.ring_size = 64;
	o.batch_size = 16;
	return o;
}

static void test_open_opts(void **state)
{
	struct {
		struct paste_opts o;
		uint64_t newer; /* a field of a future library */
	} big;
	struct paste_opts o = kernel_opts();
	struct paste_ctx *ctx = (struct paste_ctx *)1;

	EXPECT_FAIL(paste_open(NULL, &o), -EINVAL, "NULL context");
	EXPECT_FAIL(paste_open(&ctx, NULL), -EINVAL, "options missing");
	assert_null(ctx);
	o.sz = 4;
	EXPECT_FAIL(paste_open(&ctx, &o), -EINVAL, ".sz is 4");
	o = kernel_opts();
	big.o = o;
	big.o.sz = sizeof(big);
	big.newer = 1;
	EXPECT_FAIL(paste_open(&ctx, &big.o), -EINVAL, "newer than this library");
	big.newer = 0; /* zero bytes past the struct are fine */
	assert_int_equal(paste_open(&ctx, &big.o), 0);
	paste_close(&ctx);
	o.transport = (enum paste_transport)42;
	EXPECT_FAIL(paste_open(&ctx, &o), -EINVAL, "unknown transport 42");
	o = kernel_opts();
	o.ring_size = 100;
	EXPECT_FAIL(paste_open(&ctx, &o), -EINVAL, "power of two");
	o = kernel_opts();
	o.ip = "10.0.0.300";
	EXPECT_FAIL(paste_open(&ctx, &o), -EINVAL, "not an IPv4 address");
	o = kernel_opts();
	o.transport = PASTE_TRANSPORT_PASTE;
	o.ifname = NULL;
	EXPECT_FAIL(paste_open(&ctx, &o), -EINVAL, "interface name is required");
	o.ifname = "nosuchif0";
	EXPECT_FAIL(paste_open(&ctx, &o), -ENODEV, "no interface 'nosuchif0'");
}

static void test_pool_opts(void **state)
{
	struct {
		struct paste_pool_opts o;
		uint32_t newer;
	} big = {.o = {.sz = sizeof(big), .create = true}, .newer = 7};
	struct paste_pool *p;

	EXPECT_FAIL(paste_pool__open(NULL, pool_path, NULL), -EINVAL, "pool is NULL");
	EXPECT_FAIL(paste_pool__open(&p, pool_path, &big.o), -EINVAL, "newer than this library");
	big.o.sz = 2;
	EXPECT_FAIL(paste_pool__open(&p, pool_path, &big.o), -EINVAL, ".sz is 2");
	EXPECT_FAIL(paste_pool__open(&p, pool_path, NULL), -ENOENT, pool_path);
}

static int on_accept(struct paste_conn *c, void *user)
{
	accepted = c;
	return 0;
}

static void test_ctx_calls(void **state)
{
	struct paste_conn_ops ops = {.sz = sizeof(ops), .on_accept = on_accept};
	struct paste_opts o = kernel_opts();
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct paste_ref ref = {0}, refs[2];
	struct paste_ctx *ctx;
	struct paste_stats st;
	uint8_t local[64] = {0};
	socklen_t alen = sizeof(a);
	uint16_t port = 0;
	unsigned n;
	int fd;

	assert_int_equal(paste_open(&ctx, &o), 0);
	EXPECT_FAIL(paste_listen(ctx, 0, &ops, NULL), -EINVAL, "paste_listen");
	ops.sz = 0;
	EXPECT_FAIL(paste_listen(ctx, 4242, &ops, NULL), -EINVAL, ".sz is 0");
	ops.sz = sizeof(ops);
	/* a free port: bind one with the kernel, release it, listen there */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	port = ntohs(a.sin_port);
	close(fd);
	assert_int_equal(paste_listen(ctx, port, &ops, NULL), 0);
	EXPECT_FAIL(paste_listen(ctx, port, &ops, NULL), -EADDRINUSE, "port");
	EXPECT_FAIL(paste_stats(ctx, NULL, 0), -EINVAL, "paste_stats");
	assert_int_equal(paste_stats(ctx, &st, sizeof(st)), 0);
	EXPECT_FAIL(paste_persist(ctx, local, sizeof(local)), -EINVAL, "not inside the pool");
	EXPECT_FAIL(paste_keep(ctx, local, sizeof(local), &ref), -EINVAL, "not inside the pool");
	EXPECT_FAIL(paste_keep_copy(ctx, local, 0, &ref), -EINVAL, "paste_keep_copy");
	ref.off = 1;
	ref.len = 8;
	EXPECT_FAIL(paste_release(ctx, &ref), -EINVAL, "reference");

	/* a real connection, for the connection calls */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	for (int i = 0; i < 500 && !accepted; i++)
		paste_poll(ctx, 10);
	assert_non_null(accepted);
	EXPECT_FAIL(paste_conn__consume(accepted, 1), -EINVAL, "1 bytes asked, 0 pending");
	EXPECT_FAIL(paste_conn__keep(accepted, 0, 1, false, refs, 2, &n), -EINVAL, "not pending");
	assert_int_equal(paste_conn__close(accepted), 0);
	EXPECT_FAIL(paste_conn__close(accepted), -ENOTCONN, "already closed");
	EXPECT_FAIL(paste_conn__send(accepted, "x", 1), -ENOTCONN, "paste_conn__send");
	paste_poll(ctx, 0);
	close(fd);
	paste_close(&ctx);
}

static void on_data_reply(struct paste_conn *c, void *user)
{
	paste_conn__consume(c, paste_conn__pending(c));
	assert_int_equal(paste_conn__send(c, "reply", 5), 5);
}

static int failing_hook(struct paste_ctx *ctx, void *arg)
{
	(*(int *)arg)++;
	return -EIO;
}

/* A failing round hook: the reply queued in that round never leaves, the connection is reset. */
static void test_failing_round_hook(void **state)
{
	struct paste_conn_ops ops = {.sz = sizeof(ops), .on_data = on_data_reply};
	struct paste_opts o = kernel_opts();
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	struct paste_ctx *ctx;
	struct paste_stats st;
	int fd, calls = 0;
	char buf[16];
	ssize_t n = 1;

	assert_int_equal(paste_open(&ctx, &o), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	assert_int_equal(paste_listen(ctx, ntohs(a.sin_port), &ops, NULL), 0);
	assert_int_equal(paste_set_round_hook(ctx, failing_hook, &calls), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(send(fd, "x", 1, 0), 1);
	for (int i = 0; i < 500; i++) {
		paste_poll(ctx, 10);
		assert_int_equal(paste_stats(ctx, &st, sizeof(st)), 0);
		if (st.conns_accepted && !st.conns_open)
			break;
	}
	assert_true(calls > 0);
	assert_int_equal(st.conns_accepted, 1);
	assert_int_equal(st.conns_open, 0); /* reset */
	assert_int_equal(st.tx_bytes, 0);   /* the reply never left */
	n = recv(fd, buf, sizeof(buf), 0);
	assert_true(n <= 0); /* a reset (or EOF), never "reply" */
	close(fd);
	paste_close(&ctx);
}

/* The same on the io_uring transport (multishot accept and recv, sends after the fence). */
static void test_ctx_calls_uring(void **state)
{
	transport = PASTE_TRANSPORT_IO_URING;
	test_ctx_calls(state);
}

static void test_failing_round_hook_uring(void **state)
{
	transport = PASTE_TRANSPORT_IO_URING;
	test_failing_round_hook(state);
}

static void test_index_calls(void **state)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .size = 4 << 20, .create = true};
	struct paste_pool *p;
	struct paste_log *log;
	struct paste_kv *kv, *other;

	assert_int_equal(paste_pool__open(&p, pool_path, &o), 0);
	EXPECT_FAIL(paste_log__open(p, "nolog", 0, &log), -ENOENT, "pool has no log 'nolog'");
	EXPECT_FAIL(paste_kv__open(p, "nokv", 0, &other), -ENOENT, "pool has no key-value index");
	assert_int_equal(paste_log__open(p, "l", 64 << 10, &log), 0);
	EXPECT_FAIL(paste_kv__open(p, "l", 100, &other), -EINVAL,
	            "something other than a key-value");
	EXPECT_FAIL(paste_log__open(p, "l", 1 << 20, &log), -EINVAL, "cannot grow");
	assert_int_equal(paste_kv__open(p, "k", 100, &kv), 0);
	EXPECT_FAIL(paste_log__open(p, "k", 4096, &log), -EINVAL, "something other than a log");
	EXPECT_FAIL(paste_kv__open(p, "k", 1000, &other), -EINVAL, "holds at most");
	EXPECT_FAIL(paste_kv__del(kv, "nokey", 5), -ENOENT, "no such key");
	paste_pool__close(&p);
	/* reopened: the recovered handles come back through the shared open path */
	o.create = false;
	assert_int_equal(paste_pool__open(&p, pool_path, &o), 0);
	assert_int_equal(paste_log__open(p, "l", 0, &log), 0);
	assert_int_equal(paste_kv__open(p, "k", 0, &kv), 0);
	paste_pool__close(&p);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_open_opts),
	    T(test_pool_opts),
	    T(test_ctx_calls),
	    T(test_failing_round_hook),
	    T(test_index_calls),
	    T(test_ctx_calls_uring),
	    T(test_failing_round_hook_uring),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
