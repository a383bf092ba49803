/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_ktransport.c - the kernel transport (src/ktransport.c) under the context's round
 * (src/ctx.c), and the same on the io_uring transport (src/utransport.c), with real TCP on
 * 127.0.0.1 and a 4 MiB pool on /dev/shm: received bytes reach
 * on_data as slots inside the pool's frame area and go back to the allocator when consumed; a
 * reply queued in on_data has not left when the round hook runs (the "no reply before durable"
 * order: on_data, fence, round hook, flush) and has left when paste_poll() returns; the peer's
 * FIN shows as eof; a graceful close gives the peer EOF after the queued bytes, an abort gives it
 * a reset; on_close runs once per connection and the counters return to zero; two contexts serve
 * at once in one process; a wake fd (paste_set_wake_fd) ends a waiting poll, also when it was
 * written before the poll began, and is reset by it.
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
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <paste/paste.h>
#include <paste/pool.h>

static char pool_path[128];
static enum paste_transport transport; /* of the next setup */
static bool busy;                      /* of the next setup: paste_opts.busy_poll */
static struct paste_ctx *ctx;
static struct sockaddr_in addr = {.sin_family = AF_INET};

static struct {
	struct paste_conn *conn;
	unsigned data_calls, closes, hook_calls;
	unsigned work_calls, work_data_calls; /* work hook: its calls; on_data calls when it sent */
	bool work_sent, work_before_round;    /* it sent "W"; it ran before that round's hook */
	bool echo, saw_eof, slots_in_pool, hook_saw_reply;
	int cli;            /* the client socket the round hook peeks at */
	size_t sent_round;  /* echoed in this round's on_data */
	size_t sent_before; /* echoed in earlier rounds */
	int close_err;      /* on_close's @err */
	char got[256];      /* what on_data received */
	size_t got_len;
	enum { KEEP_OPEN, CLOSE, ABORT } then;
} t;

static int on_accept(struct paste_conn *c, void *user)
{
	t.conn = c;
	return 0;
}

static void on_data(struct paste_conn *c, void *user)
{
	uint8_t *lo = paste_pool__frames(paste_pool(ctx));
	struct paste_pool_info pi;
	const struct paste_slot *s;
	unsigned n;

	assert_int_equal(paste_pool__info(paste_pool(ctx), &pi, sizeof(pi)), 0);
	t.data_calls++;
	s = paste_conn__slots(c, &n);
	t.slots_in_pool = true;
	for (unsigned i = 0; i < n; i++) {
		if (s[i].data < lo ||
		    s[i].data + s[i].len > lo + (uint64_t)pi.frame_size * pi.frame_count)
			t.slots_in_pool = false;
		assert_true(t.got_len + s[i].len <= sizeof(t.got));
		memcpy(t.got + t.got_len, s[i].data, s[i].len);
		t.got_len += s[i].len;
		if (t.echo) {
			assert_int_equal(paste_conn__send(c, s[i].data, s[i].len),
			                 (ssize_t)s[i].len);
			t.sent_round += s[i].len;
		}
	}
	assert_int_equal(paste_conn__consume(c, paste_conn__pending(c)), 0);
	if (paste_conn__eof(c))
		t.saw_eof = true;
	if (t.then == CLOSE)
		assert_int_equal(paste_conn__close(c), 0);
	else if (t.then == ABORT)
		paste_conn__abort(c);
}

static void on_close(struct paste_conn *c, int err, void *user)
{
	t.closes++;
	t.close_err = err;
	t.conn = NULL;
}

/* After the fence, before the flush: the peer may hold what earlier rounds sent, never a byte
 * of this round's replies. */
static int round_hook(struct paste_ctx *c, void *arg)
{
	int avail = 0;

	t.hook_calls++;
	if (t.cli >= 0 && t.sent_round) {
		assert_int_equal(ioctl(t.cli, FIONREAD, &avail), 0);
		if ((size_t)avail > t.sent_before)
			t.hook_saw_reply = true;
	}
	t.sent_before += t.sent_round;
	t.sent_round = 0;
	return 0;
}

/* The work hook: every round, after the callbacks, before the fence. Once data has arrived it
 * sends "W" on the connection (as paste-kv --queues hands over a forwarded reply). */
static void work_hook(struct paste_ctx *c, void *arg)
{
	t.work_calls++;
	t.work_before_round = t.work_calls == t.hook_calls + 1; /* this round's hook not run yet */
	if (t.conn && t.got_len && !t.work_sent) {
		assert_int_equal(paste_conn__send(t.conn, "W", 1), 1);
		t.work_sent = true;
		t.work_data_calls = t.data_calls;
		t.sent_round += 1;
	}
}

/* Rounds until @cond holds (at most ~10 s). */
#define POLL_UNTIL(cond)                                                                           \
	do {                                                                                       \
		for (int i_ = 0; i_ < 1000 && !(cond); i_++)                                       \
			assert_true(paste_poll(ctx, 10) >= 0);                                     \
		assert_true(cond);                                                                 \
	} while (0)

static int connect_client(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	t.cli = fd;
	return fd;
}

/* Read exactly @len bytes (or until EOF/error) within ~10 s, running rounds meanwhile (the
 * io_uring transport submits a round's sends with the next round's wait). @return bytes, -errno. */
static ssize_t read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;

	for (int i = 0; i < 1000 && got < len; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		assert_true(paste_poll(ctx, 0) >= 0);
		if (poll(&p, 1, 10) != 1)
			continue;
		r = recv(fd, buf + got, len - got, 0);
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return got < len && got == 0 ? -ETIMEDOUT : (ssize_t)got;
}

static int setup(void **state)
{
	struct paste_opts o = {.sz = sizeof(o)};
	struct paste_conn_ops ops = {
	    .sz = sizeof(ops), .on_accept = on_accept, .on_data = on_data, .on_close = on_close};
	socklen_t alen = sizeof(addr);
	int fd;

	memset(&t, 0, sizeof(t));
	t.cli = -1;
	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-test-%d-ktp.pool", (int)getpid());
	unlink(pool_path);
	o.transport = transport;
	o.busy_poll = busy;
	o.ip = "127.0.0.1";
	o.pool_path = pool_path;
	o.pool_size = 4 << 20;
	o.ring_size = 64;
	o.batch_size = 16;
	assert_int_equal(paste_open(&ctx, &o), 0);
	assert_int_equal(paste_set_round_hook(ctx, round_hook, NULL), 0);
	/* a free port: bind one with the kernel, release it, listen there */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &alen), 0);
	close(fd);
	assert_int_equal(paste_listen(ctx, ntohs(addr.sin_port), &ops, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	struct paste_stats st;

	if (t.cli >= 0)
		close(t.cli);
	assert_int_equal(paste_stats(ctx, &st, sizeof(st)), 0);
	assert_int_equal(st.frames_rx + st.frames_kept, 0); /* every received frame came back */
	paste_close(&ctx);
	unlink(pool_path);
	return 0;
}

static void test_echo_round_order(void **state)
{
	const char msg[] = "hello, kernel transport";
	struct paste_stats st;
	char back[sizeof(msg)];
	int fd = connect_client();

	t.echo = true;
	assert_int_equal(send(fd, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
	POLL_UNTIL(t.got_len == sizeof(msg));
	assert_memory_equal(t.got, msg, sizeof(msg));
	assert_true(t.slots_in_pool); /* the bytes were in pool frames */
	assert_true(t.hook_calls > 0);
	assert_int_equal(t.sent_before, sizeof(msg)); /* the hook ran in the rounds that echoed */
	assert_false(t.hook_saw_reply);               /* nothing left before the round hook */
	assert_int_equal(read_all(fd, back, sizeof(back)), (ssize_t)sizeof(back));
	assert_memory_equal(back, msg, sizeof(msg));
	assert_int_equal(paste_stats(ctx, &st, sizeof(st)), 0);
	assert_int_equal(st.rx_payload_bytes, sizeof(msg));
	assert_int_equal(st.conns_open, 1);
	assert_int_equal(st.conns_accepted, 1);
	assert_int_equal(st.frames_rx, 0); /* consumed: back to the allocator */
}

/* What the work hook queues leaves in its round, after the fence (not before the round hook),
 * and the hook runs once per round, after that round's on_data. */
static void test_work_hook(void **state)
{
	const char msg[] = "ping";
	char back[1];
	int fd = connect_client();

	assert_int_equal(paste_set_work_hook(ctx, work_hook, NULL), 0);
	assert_int_equal(send(fd, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
	POLL_UNTIL(t.work_sent);
	assert_true(t.work_data_calls > 0);           /* on_data ran before it, in the same round */
	assert_true(t.work_before_round);             /* before the round hook of that round */
	assert_int_equal(t.work_calls, t.hook_calls); /* one call per round */
	assert_false(t.hook_saw_reply);               /* "W" had not left when the round hook ran */
	assert_int_equal(t.sent_before, 1);
	assert_int_equal(read_all(fd, back, sizeof(back)), 1);
	assert_int_equal(back[0], 'W');
	assert_int_equal(paste_set_work_hook(ctx, NULL, NULL), 0); /* removed: no more calls */
	t.work_calls = 0;
	assert_true(paste_poll(ctx, 0) >= 0);
	assert_int_equal(t.work_calls, 0);
}

static void test_eof_then_close(void **state)
{
	char b[8];
	int fd = connect_client();

	t.echo = true;
	t.then = CLOSE;
	assert_int_equal(send(fd, "bye", 3, 0), 3);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	POLL_UNTIL(t.closes == 1);
	assert_true(t.saw_eof || t.got_len == 3);
	assert_int_equal(t.close_err, 0);
	/* the queued echo first, then EOF */
	assert_int_equal(read_all(fd, b, sizeof(b)), 3);
	assert_memory_equal(b, "bye", 3);
}

static void test_abort_resets(void **state)
{
	struct paste_stats st;
	char b[8];
	int fd = connect_client();

	t.then = ABORT;
	assert_int_equal(send(fd, "x", 1, 0), 1);
	POLL_UNTIL(t.closes == 1);
	assert_int_equal(read_all(fd, b, sizeof(b)), -ECONNRESET);
	assert_int_equal(paste_stats(ctx, &st, sizeof(st)), 0);
	assert_int_equal(st.conns_open, 0);
}

/* Two contexts in one process (each its own pool, listener and transport state): both serve at
 * once, rounds interleaved. The kernel-socket transports keep no process-wide state. */
static void echo_data(struct paste_conn *c, void *user)
{
	const struct paste_slot *s;
	unsigned n;

	s = paste_conn__slots(c, &n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(paste_conn__send(c, s[i].data, s[i].len), (ssize_t)s[i].len);
	assert_int_equal(paste_conn__consume(c, paste_conn__pending(c)), 0);
	(*(unsigned *)user)++;
}

static void test_two_contexts(void **state)
{
	struct paste_conn_ops ops = {.sz = sizeof(ops), .on_data = echo_data};
	struct paste_opts o = {.sz = sizeof(o)};
	struct sockaddr_in a2 = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a2);
	struct paste_ctx *ctx2;
	char path2[160], b1[4] = {0}, b2[4] = {0};
	unsigned calls1 = 0, calls2 = 0;
	int fd1, fd2, fd;

	snprintf(path2, sizeof(path2), "%s.2", pool_path);
	unlink(path2);
	o.transport = transport;
	o.busy_poll = busy;
	o.ip = "127.0.0.1";
	o.pool_path = path2;
	o.pool_size = 4 << 20;
	o.ring_size = 64;
	o.batch_size = 16;
	assert_int_equal(paste_open(&ctx2, &o), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a2.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a2, sizeof(a2)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a2, &alen), 0);
	close(fd);
	assert_int_equal(paste_listen(ctx2, ntohs(a2.sin_port), &ops, &calls2), 0);
	/* the first context's listener echoes too, with its own counter */
	t.echo = true;
	fd1 = connect_client();
	fd2 = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd2, (struct sockaddr *)&a2, sizeof(a2)), 0);
	assert_int_equal(send(fd1, "one", 3, 0), 3);
	assert_int_equal(send(fd2, "two", 3, 0), 3);
	for (int i = 0; i < 1000 && (recv(fd1, b1, 3, MSG_PEEK | MSG_DONTWAIT) < 3 ||
	                             recv(fd2, b2, 3, MSG_PEEK | MSG_DONTWAIT) < 3);
	     i++) {
		assert_true(paste_poll(ctx, 5) >= 0);
		assert_true(paste_poll(ctx2, 5) >= 0);
	}
	assert_memory_equal(b1, "one", 3);
	assert_memory_equal(b2, "two", 3);
	calls1 = t.data_calls;
	assert_true(calls1 >= 1 && calls2 >= 1);
	close(fd2);
	paste_close(&ctx2);
	unlink(path2);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* paste_poll(ctx, @ms) with nothing but the wake fd to come: its seconds. */
static double timed_poll(int ms)
{
	double t0 = now_s();

	assert_true(paste_poll(ctx, ms) >= 0);
	return now_s() - t0;
}

/*
 * paste_set_wake_fd: a wake written before the poll starts (the sleep/wake race of paste-kv's
 * workers: the peer writes after our last look at the shared slots, before our poll) ends the
 * poll at once; one written by another process while the poll waits ends it too; the poll reads
 * the fd, so the next poll waits again. (A lost wake would wait out the 20 s timeouts; the bounds
 * are far from both sides so that a loaded machine does not fail the test.)
 */
static void test_wake_fd(void **state)
{
	uint64_t one = 1, v;
	int e = eventfd(0, EFD_NONBLOCK);
	pid_t pid;
	int st;

	assert_true(e >= 0);
	assert_int_equal(paste_set_wake_fd(ctx, -1), -EINVAL);
	assert_int_equal(paste_set_wake_fd(ctx, e), 0);
	assert_int_equal(paste_set_wake_fd(ctx, e), -EBUSY);
	assert_true(timed_poll(200) >= 0.15); /* nothing written: it waits its timeout */
	assert_int_equal(write(e, &one, sizeof(one)), sizeof(one));
	assert_true(timed_poll(20000) < 10.0);        /* written before the poll: not lost */
	assert_int_equal(read(e, &v, sizeof(v)), -1); /* the poll reset it */
	assert_int_equal(errno, EAGAIN);
	assert_true(timed_poll(200) >= 0.15); /* and the next poll waits again */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* another process wakes us while we wait */
		usleep(100000);
		_exit(write(e, &one, sizeof(one)) == sizeof(one) ? 0 : 1);
	}
	assert_true(timed_poll(20000) < 10.0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	paste_close(&ctx); /* (the fd stays the caller's) */
	assert_int_equal(write(e, &one, sizeof(one)), sizeof(one));
	close(e);
	setup(state); /* teardown's context */
}

/*
 * The same with busy_poll: the spin's own polls (epoll_wait(0), the ring's completions) see the
 * wake fd, which is why paste_spin does not look at it itself on these transports. A wake
 * written before the poll ends it and is reset; one written while it spins ends it (the kernel
 * transport spins for the whole timeout otherwise) and is reset (io_uring's spin returns every
 * 50 ms anyway: there the wake must be read by a later poll).
 */
static bool wake_pending(int e)
{
	struct pollfd p = {.fd = e, .events = POLLIN};

	return poll(&p, 1, 0) == 1;
}

static void test_wake_fd_busy(void **state)
{
	uint64_t one = 1;
	int e = eventfd(0, EFD_NONBLOCK), st;
	double t0;
	pid_t pid;

	paste_close(&ctx);
	busy = true;
	setup(state);
	busy = false;
	assert_true(e >= 0);
	assert_int_equal(paste_set_wake_fd(ctx, e), 0);
	assert_int_equal(write(e, &one, sizeof(one)), sizeof(one));
	assert_true(timed_poll(20000) < 10.0);
	assert_false(wake_pending(e));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		usleep(100000);
		_exit(write(e, &one, sizeof(one)) == sizeof(one) ? 0 : 1);
	}
	assert_true(timed_poll(5000) < 4.0); /* the wake (or io_uring's 50 ms) ends the spin */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	t0 = now_s();
	while (wake_pending(e) && now_s() - t0 < 10.0) /* io_uring: its completion is due */
		assert_true(paste_poll(ctx, 5000) >= 0);
	assert_false(wake_pending(e));
	paste_close(&ctx);
	close(e);
	setup(state); /* teardown's context */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_echo_round_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_work_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_eof_then_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_resets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_contexts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wake_fd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wake_fd_busy, setup, teardown),
	};

	int r;

	paste_set_print(NULL, NULL, PASTE_LOG_ERROR);
	transport = PASTE_TRANSPORT_KERNEL;
	r = cmocka_run_group_tests_name("kernel", tests, NULL, NULL);
	/* the same contract on the io_uring transport (kernel sockets too) */
	transport = PASTE_TRANSPORT_IO_URING;
	return r | cmocka_run_group_tests_name("io_uring", tests, NULL, NULL);
}
