/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_keep_pressure.c - paste_set_copy_pressure(): paste_keep() pins a received range in place
 * while the pool has free frames to spare, and copies ranges shorter than the threshold into a
 * packing frame while fewer frames than the limit are free (counted in kept_pressure_copied_bytes),
 * but only bytes still received: a range of a frame that holds stored data only stays in place.
 * Bytes are received for real: the kernel transport on 127.0.0.1, a TCP connection from this
 * process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <paste/index.h>
#include <paste/paste.h>
#include <paste/pool.h>

static char pool_path[128];
static struct paste_conn *accepted;

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

static int on_accept(struct paste_conn *c, void *user)
{
	accepted = c;
	return 0;
}

/* Keep [p, p+n) and say whether the reference names the same bytes in place. */
static bool keep_in_place(struct paste_ctx *ctx, const uint8_t *p, size_t n, struct paste_ref *r)
{
	const uint8_t *q;

	assert_int_equal(paste_keep(ctx, p, n, r), 0);
	q = paste_pool__ref_ptr(paste_pool(ctx), r);
	assert_non_null(q);
	assert_memory_equal(q, p, n);
	return q == p;
}

static uint64_t pressure_bytes(struct paste_ctx *ctx)
{
	struct paste_stats st;

	assert_int_equal(paste_stats(ctx, &st, sizeof(st)), 0);
	return st.kept_pressure_copied_bytes;
}

static void test_copy_pressure(void **state)
{
	struct paste_opts o = {.sz = sizeof(o), .transport = PASTE_TRANSPORT_KERNEL};
	struct paste_conn_ops ops = {.sz = sizeof(ops), .on_accept = on_accept};
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct paste_pool_info pi;
	struct paste_ref r[7];
	struct paste_stats st;
	struct paste_ctx *ctx;
	const struct paste_slot *s;
	socklen_t alen = sizeof(a);
	uint8_t msg[256];
	unsigned ns;
	int fd;

	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 1);
	o.ip = "127.0.0.1";
	o.pool_path = pool_path;
	o.pool_size = 4 << 20;
	o.ring_size = 64;
	o.batch_size = 16;
	assert_int_equal(paste_open(&ctx, &o), 0);
	assert_int_equal(paste_pool__info(paste_pool(ctx), &pi, sizeof(pi)), 0);
	assert_int_equal(paste_stats(ctx, &st, sizeof(st)), 0);

	/* errors */
	assert_int_equal(paste_set_copy_pressure(NULL, 1, 0), -EINVAL);
	assert_int_equal(paste_set_copy_pressure(ctx, 1, pi.frame_size + 1), -EINVAL);
	assert_non_null(strstr(paste_last_error(), "above the frame size"));

	/* a connection and 256 received bytes */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	assert_int_equal(paste_listen(ctx, ntohs(a.sin_port), &ops, NULL), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(send(fd, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
	for (int i = 0; i < 500 && (!accepted || paste_conn__pending(accepted) < sizeof(msg)); i++)
		paste_poll(ctx, 10);
	assert_non_null(accepted);
	assert_int_equal(paste_conn__pending(accepted), sizeof(msg));
	s = paste_conn__slots(accepted, &ns);
	assert_true(ns >= 1 && s[0].len >= 200);

	/* off (the default): in place */
	assert_true(keep_in_place(ctx, s[0].data, 16, &r[0]));
	/* always under pressure (fewer free frames than the pool has): below 64 bytes copied */
	assert_int_equal(paste_set_copy_pressure(ctx, st.frames_total, 64), 0);
	assert_false(keep_in_place(ctx, s[0].data + 16, 63, &r[1]));
	assert_int_equal(pressure_bytes(ctx), 63);
	assert_true(keep_in_place(ctx, s[0].data + 80, 64, &r[2]));
	assert_int_equal(pressure_bytes(ctx), 63);
	/* threshold 0: half a frame */
	assert_int_equal(paste_set_copy_pressure(ctx, st.frames_total, 0), 0);
	assert_false(keep_in_place(ctx, s[0].data + 144, 100, &r[3]));
	assert_int_equal(pressure_bytes(ctx), 163);
	/* no pressure: a limit of 1 free frame is never reached here; 0 turns it off */
	assert_int_equal(paste_set_copy_pressure(ctx, 1, 0), 0);
	assert_true(keep_in_place(ctx, s[0].data + 16, 8, &r[4]));
	assert_int_equal(paste_set_copy_pressure(ctx, 0, 0), 0);
	assert_true(keep_in_place(ctx, s[0].data + 24, 8, &r[5]));
	assert_int_equal(pressure_bytes(ctx), 163);

	/* the packed copies hold the bytes after the request is consumed */
	assert_int_equal(paste_conn__consume(accepted, sizeof(msg)), 0);
	paste_poll(ctx, 0);
	assert_memory_equal(paste_pool__ref_ptr(paste_pool(ctx), &r[1]), msg + 16, 63);
	assert_memory_equal(paste_pool__ref_ptr(paste_pool(ctx), &r[3]), msg + 144, 100);
	/* under pressure, bytes of a frame that holds only stored data (no longer received) stay:
	 * a second reference costs nothing there, a copy would */
	assert_int_equal(paste_set_copy_pressure(ctx, st.frames_total, 0), 0);
	assert_true(keep_in_place(ctx, paste_pool__ref_ptr(paste_pool(ctx), &r[0]), 8, &r[6]));
	assert_int_equal(pressure_bytes(ctx), 163);
	for (unsigned i = 0; i < 7; i++)
		assert_int_equal(paste_release(ctx, &r[i]), 0);
	close(fd);
	paste_close(&ctx);
}

static int setup(void **state)
{
	paste_set_print(quiet, NULL, PASTE_LOG_DEBUG);
	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-test-%d-pressure.pool",
	         (int)getpid());
	unlink(pool_path);
	return 0;
}

static int teardown(void **state)
{
	unlink(pool_path);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_copy_pressure, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
