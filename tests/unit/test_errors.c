/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_errors.c - the error and options contract of the public API (paste.h, pool.h, index.h):
 * every public int function that fails returns a negative errno and leaves a message in
 * paste_last_error() that says what failed; every options struct is checked the same way (.sz too
 * small, or bytes set past the struct this library knows). Drives each call into its failures
 * without a NIC: the kernel transport on 127.0.0.1, a real TCP connection from this process, a
 * 4 MiB pool on /dev/shm. The connection calls and the failing round hook run again on the
 * io_uring transport. Covered: every public int function with a failure a caller can provoke
 * (bad arguments, options, absent or full indexes, regions, info sizes, views of an unsliced
 * pool). Not driven here: paste_poll()/paste_run() fail only when the transport's wait fails (an
 * epoll/io_uring/poll error, not reachable from outside); paste_shutdown(),
 * paste_set_round_hook() and paste_log__truncate() on a valid object always succeed; the
 * -ENOMEM paths (malloc failing).
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
	EXPECT_FAIL(paste_stats(NULL, &st, sizeof(st)), -EINVAL, "NULL context");
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
	EXPECT_FAIL(paste_log__open(&log, p, "nolog", NULL), -ENOENT, "pool has no log 'nolog'");
	EXPECT_FAIL(paste_kv__open(&other, p, "nokv", NULL), -ENOENT,
	            "pool has no key-value index");
	assert_int_equal(
	    paste_log__open(&log, p, "l", &PASTE_OPTS_LIT(paste_log_opts, .region_size = 64 << 10)),
	    0);
	EXPECT_FAIL(paste_kv__open(&other, p, "l", &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 100)),
	            -EINVAL, "something other than a key-value");
	EXPECT_FAIL(
	    paste_log__open(&log, p, "l", &PASTE_OPTS_LIT(paste_log_opts, .region_size = 1 << 20)),
	    -EINVAL, "cannot grow");
	assert_int_equal(
	    paste_kv__open(&kv, p, "k", &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 100)), 0);
	EXPECT_FAIL(
	    paste_log__open(&log, p, "k", &PASTE_OPTS_LIT(paste_log_opts, .region_size = 4096)),
	    -EINVAL, "something other than a log");
	EXPECT_FAIL(
	    paste_kv__open(&other, p, "k", &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 1000)),
	    -EINVAL, "holds at most");
	EXPECT_FAIL(paste_kv__del(kv, "nokey", 5), -ENOENT, "no such key");
	paste_pool__close(&p);
	/* reopened: the recovered handles come back through the shared open path */
	o.create = false;
	assert_int_equal(paste_pool__open(&p, pool_path, &o), 0);
	assert_int_equal(paste_log__open(&log, p, "l", NULL), 0);
	assert_int_equal(paste_kv__open(&kv, p, "k", NULL), 0);
	paste_pool__close(&p);
}

static int never(const struct paste_log_rec *rec, void *arg)
{
	return 1;
}

/* The options structs of the log and key-value opens, checked like every other one. */
static void test_index_opts(void **state)
{
	struct paste_pool_opts o = {.sz = sizeof(o), .size = 4 << 20, .create = true};
	struct {
		struct paste_log_opts o;
		uint64_t newer;
	} lbig = {.o = {.sz = sizeof(lbig), .region_size = 64 << 10}, .newer = 1};
	struct {
		struct paste_kv_opts o;
		uint64_t newer;
	} kbig = {.o = {.sz = sizeof(kbig), .capacity = 100}, .newer = 1};
	struct paste_log_opts lo = {.sz = 4, .region_size = 64 << 10};
	struct paste_kv_opts ko = {.sz = 4, .capacity = 100};
	struct paste_pool *p;
	struct paste_log *log = (struct paste_log *)1;
	struct paste_kv *kv = (struct paste_kv *)1;

	assert_int_equal(paste_pool__open(&p, pool_path, &o), 0);
	EXPECT_FAIL(paste_log__open(&log, p, "l", &lo), -EINVAL, ".sz is 4");
	assert_null(log); /* the out-parameter is cleared on failure */
	EXPECT_FAIL(paste_log__open(&log, p, "l", &lbig.o), -EINVAL, "newer than this library");
	EXPECT_FAIL(paste_log__open(NULL, p, "l", NULL), -EINVAL, "paste_log__open");
	EXPECT_FAIL(paste_kv__open(&kv, p, "k", &ko), -EINVAL, ".sz is 4");
	assert_null(kv);
	EXPECT_FAIL(paste_kv__open(&kv, p, "k", &kbig.o), -EINVAL, "newer than this library");
	EXPECT_FAIL(paste_kv__open(&kv, NULL, "k", NULL), -EINVAL, "paste_kv__open");
	/* zero past the struct: accepted (a newer caller that sets nothing new) */
	lbig.newer = 0;
	kbig.newer = 0;
	assert_int_equal(paste_log__open(&log, p, "l", &lbig.o), 0);
	assert_int_equal(paste_kv__open(&kv, p, "k", &kbig.o), 0);
	paste_pool__close(&p);
}

/* Every failure of the index operations, the info calls and the pool's region and view calls. */
static void test_index_ops(void **state)
{
	struct paste_opts o = kernel_opts();
	struct paste_ctx *ctx;
	struct paste_pool *p;
	struct paste_pool_view *pv = (struct paste_pool_view *)1;
	struct paste_log_view *lv = (struct paste_log_view *)1;
	struct paste_log *log;
	struct paste_kv *kv;
	struct paste_ref val, bad = {.off = 8, .len = 8};
	static struct paste_ref many[PASTE_LOG_MAX_REFS];
	struct paste_log_info li;
	struct paste_kv_info ki;
	struct paste_pool_info pi;
	struct paste_log_rec rec;
	uint64_t seq, len, prefix[2] = {77, 77};
	void *addr;
	char k[8];

	assert_int_equal(paste_open(&ctx, &o), 0);
	p = paste_pool(ctx);
	assert_int_equal(paste_keep_copy(ctx, "value", 5, &val), 0);

	/* the log */
	assert_int_equal(
	    paste_log__open(&log, p, "l", &PASTE_OPTS_LIT(paste_log_opts, .region_size = 4096)), 0);
	EXPECT_FAIL(paste_log__append(NULL, &val, 1, &seq), -EINVAL, "paste_log__append");
	EXPECT_FAIL(paste_log__append(log, &val, 0, &seq), -EINVAL, "1 to");
	EXPECT_FAIL(paste_log__append(log, &bad, 1, &seq), -EINVAL, "not a range inside one frame");
	for (unsigned i = 0; i < PASTE_LOG_MAX_REFS; i++)
		many[i] = val;
	EXPECT_FAIL(paste_log__append(log, many, PASTE_LOG_MAX_REFS, &seq), -ENOSPC,
	            "can never fit");
	EXPECT_FAIL(paste_log__get(log, 1, &rec), -ENOENT, "no record 1");
	EXPECT_FAIL(paste_log__get(NULL, 1, &rec), -EINVAL, "paste_log__get");
	EXPECT_FAIL(paste_log__iterate(log, 0, NULL, NULL), -EINVAL, "paste_log__iterate");
	assert_int_equal(paste_log__iterate(log, 0, never, NULL), 0); /* empty: fn never runs */
	EXPECT_FAIL(paste_log__truncate(NULL, 1), -EINVAL, "paste_log__truncate");
	EXPECT_FAIL(paste_log__info(NULL, &li, sizeof(li)), -EINVAL, "NULL log");
	EXPECT_FAIL(paste_log__info(log, NULL, sizeof(li)), -EINVAL, "paste_log__info");
	EXPECT_FAIL(paste_log__info(log, &li, 0), -EINVAL, "its size");
	/* an older, smaller struct gets its prefix and nothing past it */
	assert_int_equal(paste_log__info(log, (struct paste_log_info *)prefix, 8), 0);
	assert_int_equal(prefix[0], 1); /* first_seq of an empty log */
	assert_int_equal(prefix[1], 77);

	/* the key-value index: room for 4 keys */
	assert_int_equal(paste_kv__open(&kv, p, "k", &PASTE_OPTS_LIT(paste_kv_opts, .capacity = 4)),
	                 0);
	EXPECT_FAIL(paste_kv__put(NULL, &val, &val), -EINVAL, "paste_kv__put");
	EXPECT_FAIL(paste_kv__put(kv, NULL, &val), -EINVAL, "reference is NULL");
	EXPECT_FAIL(paste_kv__get(kv, "nokey", 5, &val), -ENOENT, "no such key");
	EXPECT_FAIL(paste_kv__get(NULL, "nokey", 5, &val), -EINVAL, "paste_kv__get");
	EXPECT_FAIL(paste_kv__iterate(kv, NULL, NULL), -EINVAL, "paste_kv__iterate");
	EXPECT_FAIL(paste_kv__info(NULL, &ki, sizeof(ki)), -EINVAL, "NULL index");
	EXPECT_FAIL(paste_kv__info(kv, &ki, 0), -EINVAL, "paste_kv__info");
	assert_int_equal(paste_kv__info(kv, &ki, sizeof(ki)), 0);
	/* fill it: the put past its capacity says so and changes nothing */
	int err = 0;
	uint64_t put = 0;

	for (uint64_t i = 0; i <= ki.capacity && !err; i++) {
		struct paste_ref kr, v;

		snprintf(k, sizeof(k), "key%u", (unsigned)i);
		assert_int_equal(paste_keep_copy(ctx, k, strlen(k), &kr), 0);
		assert_int_equal(paste_keep_copy(ctx, "v", 1, &v), 0);
		paste_fail_reset();
		err = paste_kv__put(kv, &kr, &v);
		put += !err;
	}
	assert_int_equal(err, -ENOSPC);
	assert_non_null(strstr(paste_last_error(), "key-value index 'k'"));
	assert_int_equal(put, ki.capacity);
	assert_int_equal(paste_kv__info(kv, &ki, sizeof(ki)), 0);
	assert_int_equal(ki.keys, put);

	/* the pool */
	paste_fail_reset();
	assert_null(paste_pool__ref_ptr(p, &(struct paste_ref){.off = 1ull << 40, .len = 1}));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(paste_last_error(), "is not inside the pool"));
	assert_non_null(paste_pool__ref_ptr(p, &val));
	EXPECT_FAIL(paste_pool__info(NULL, &pi, sizeof(pi)), -EINVAL, "NULL pool");
	EXPECT_FAIL(paste_pool__info(p, &pi, 0), -EINVAL, "paste_pool__info");
	EXPECT_FAIL(paste_pool__region(p, "no region", 0, &addr, &len), -EINVAL, "bad region name");
	EXPECT_FAIL(paste_pool__region(p, "absent", 0, &addr, &len), -ENOENT, "no region 'absent'");
	EXPECT_FAIL(paste_pool__region(p, "l", 1 << 20, &addr, &len), -EINVAL, "cannot grow");
	EXPECT_FAIL(paste_pool__region(p, "huge", 1ull << 40, &addr, &len), -ENOSPC, "huge");
	EXPECT_FAIL(paste_pool_view__open(&pv, p, 0), -EINVAL, "not sliced");
	EXPECT_FAIL(paste_log_view__open(&lv, NULL, "l"), -EINVAL, "paste_log_view__open");
	EXPECT_FAIL(paste_log_view__read(NULL, 1, 1, 2, NULL, 0, NULL), -EINVAL,
	            "paste_log_view__read");
	EXPECT_FAIL(paste_log_view__len(NULL, 1, 1, 2, NULL), -EINVAL, "paste_log_view__len");
	paste_close(&ctx);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_open_opts),          T(test_pool_opts),       T(test_ctx_calls),
	    T(test_failing_round_hook), T(test_index_calls),     T(test_index_opts),
	    T(test_index_ops),          T(test_ctx_calls_uring), T(test_failing_round_hook_uring),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
