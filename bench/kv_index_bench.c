/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_index_bench.c - how the persistent key-value index (src/kv_index.c) does at scale: N keys
 * with M-byte values in a pool under /dev/shm sized for them. Reports index creation time, insert
 * rate (one paste_pool__drain() per batch, as paste_poll() does), update rate, random get rate,
 * region bytes per key, and reopen time with recovery after a clean close and after a crash
 * (unclean: every key and value checksum is verified).
 *
 * Keys and values are written into pool frames taken from the pool's allocator and kept with
 * paste_pool__ref_get(), as paste_keep() does after a receive; several share one frame. That setup
 * is timed separately: it stands for the network.
 *
 *   kv_index_bench [keys (10000000)] [value bytes (32)] [batch (64)] [pool dir (/dev/shm)]
 *
 * Links against the library's objects (it uses the pool internals): see docs/kv-index.md.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <paste/index.h>
#include <paste/pool.h>

#include "internal.h"
#include "pool_internal.h"

#define KEY_LEN 16 /* "key:" + 12 digits */

struct bench {
	uint64_t n;
	uint32_t vlen, batch;
	char path[256];
	struct paste_pool *pool;
	struct paste_kv *kv;
	struct paste_ref *keys, *vals;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "kv_index_bench: %s failed: %s (%s)\n", what, strerror(-err),
	        paste_last_error());
	exit(1);
}

static void format_key(char *k, uint64_t i)
{
	memcpy(k, "key:", 4);
	for (int d = KEY_LEN - 1; d >= 4; d--, i /= 10)
		k[d] = (char)('0' + i % 10);
}

/* Pool big enough for the index (about 77 bytes a key) and the packed keys and values. */
static int bench_pool(struct bench *b)
{
	uint64_t pair = PASTE_ALIGN_UP(KEY_LEN, 8) + PASTE_ALIGN_UP(b->vlen, 8ull);
	uint64_t per_frame = 2048 / pair, frames = b->n / per_frame + 1024;
	uint64_t region = 2 * 4096 + (b->n * 4 / 3 + 16) * 8 + (b->n + b->n / 32 + 64) * 64;
	struct paste_pool_opts o = {.sz = sizeof(o), .frame_size = 2048, .must_create = true};

	if (per_frame == 0) {
		fprintf(stderr,
		        "kv_index_bench: a key and a value must fit in one 2048-byte frame\n");
		exit(2);
	}
	o.region_area = PASTE_ALIGN_UP(region + (1 << 20), 4096ull);
	o.size = 4096 + o.region_area + frames * 2048;
	unlink(b->path);
	printf("pool %s: %.1f MiB (%.1f MiB region area, %llu frames)\n", b->path,
	       (double)o.size / (1 << 20), (double)o.region_area / (1 << 20),
	       (unsigned long long)frames);
	return paste_pool__open(&b->pool, b->path, &o);
}

/* Write every key and value into RX frames and keep them (the "network" part). */
static void bench_fill_frames(struct bench *b)
{
	struct paste_frames *f = paste_pool__frame_alloc(b->pool);
	uint8_t *area = paste_pool__frames(b->pool);
	uint64_t base = (uint64_t)(area - (uint8_t *)paste_pool__base(b->pool));
	uint32_t frame = UINT32_MAX, off = 2048;
	int err;

	for (uint64_t i = 0; i < b->n; i++) {
		uint32_t need =
		    (uint32_t)(PASTE_ALIGN_UP(KEY_LEN, 8) + PASTE_ALIGN_UP(b->vlen, 8u));
		uint8_t *p;

		if (off + need > 2048) {
			if (frame != UINT32_MAX)
				paste_frames__rx_done(f, frame);
			err = paste_frames__alloc(f, PASTE_FRAME_RX, &frame);
			if (err)
				die("frame alloc", err);
			off = 0;
		}
		p = area + (uint64_t)frame * 2048 + off;
		format_key((char *)p, i);
		memset(p + KEY_LEN, 'a' + (int)(i % 26), b->vlen);
		memcpy(p + KEY_LEN, &i, b->vlen < 8 ? b->vlen : 8);
		b->keys[i] =
		    (struct paste_ref){.off = base + (uint64_t)frame * 2048 + off, .len = KEY_LEN};
		b->vals[i] = (struct paste_ref){.off = b->keys[i].off + KEY_LEN, .len = b->vlen};
		paste_pool__flush(b->pool, p, KEY_LEN + b->vlen);
		if ((err = paste_pool__ref_get(b->pool, &b->keys[i])) ||
		    (err = paste_pool__ref_get(b->pool, &b->vals[i])))
			die("ref_get", err);
		off += need;
	}
	paste_frames__rx_done(f, frame);
	paste_pool__drain(b->pool);
}

static void bench_insert(struct bench *b)
{
	double t0 = now_s(), dt;
	int err;

	for (uint64_t i = 0; i < b->n; i++) {
		err = paste_kv__put(b->kv, &b->keys[i], &b->vals[i]);
		if (err)
			die("put", err);
		if ((i + 1) % b->batch == 0)
			paste_pool__drain(b->pool);
	}
	paste_pool__drain(b->pool);
	dt = now_s() - t0;
	printf("insert:  %llu keys in %.3f s: %.0f inserts/s (%.0f ns each, fence every %u)\n",
	       (unsigned long long)b->n, dt, (double)b->n / dt, dt * 1e9 / (double)b->n, b->batch);
}

/* Overwrite n/10 random keys with their own value again (a new kept reference each time). */
static void bench_update(struct bench *b)
{
	uint64_t m = b->n / 10 ? b->n / 10 : 1, x = 88172645463325252ull;
	double t0 = now_s(), dt;
	int err;

	for (uint64_t j = 0; j < m; j++) {
		uint64_t i;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		i = x % b->n;
		if ((err = paste_pool__ref_get(b->pool, &b->keys[i])) ||
		    (err = paste_pool__ref_get(b->pool, &b->vals[i])))
			die("ref_get", err);
		err = paste_kv__put(b->kv, &b->keys[i], &b->vals[i]);
		if (err)
			die("update", err);
		if ((j + 1) % b->batch == 0)
			paste_pool__drain(b->pool);
	}
	paste_pool__drain(b->pool);
	paste_pool__drain(b->pool); /* replaced slots: zeroed, then free */
	dt = now_s() - t0;
	printf("update:  %llu random overwrites in %.3f s: %.0f updates/s (%.0f ns each)\n",
	       (unsigned long long)m, dt, (double)m / dt, dt * 1e9 / (double)m);
}

static void bench_get(struct bench *b)
{
	uint64_t x = 0x9e3779b97f4a7c15ull, m = b->n;
	struct paste_ref v;
	char key[KEY_LEN];
	double t0 = now_s(), dt;

	for (uint64_t j = 0; j < m; j++) {
		uint64_t i;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		i = x % b->n;
		format_key(key, i);
		if (paste_kv__get(b->kv, key, KEY_LEN, &v) || v.off != b->vals[i].off)
			die("get (wrong value)", -EIO);
	}
	dt = now_s() - t0;
	printf("get:     %llu random gets in %.3f s: %.0f gets/s (%.0f ns each)\n",
	       (unsigned long long)m, dt, (double)m / dt, dt * 1e9 / (double)m);
}

/* Reopen the pool (recovery runs inside paste_pool__open) and check the key count. */
static double bench_reopen(struct bench *b, const char *what)
{
	struct paste_pool_opts o = {.sz = sizeof(o)};
	struct paste_kv_info info;
	double t0 = now_s(), dt;
	int err;

	err = paste_pool__open(&b->pool, b->path, &o);
	if (err)
		die("reopen", err);
	dt = now_s() - t0;
	err = paste_kv__open(&b->kv, b->pool, "kv", NULL);
	if (err)
		die("kv open", err);
	paste_kv__info(b->kv, &info, sizeof(info));
	if (info.keys != b->n || info.dropped)
		die("recovery (key count)", -EIO);
	printf("reopen:  %s: %.3f s (%.0f ns a key), %llu keys recovered\n", what, dt,
	       dt * 1e9 / (double)b->n, (unsigned long long)info.recovered);
	return dt;
}

/* Leave the pool as a crash would: a child opens it and exits without closing. */
static void bench_crash(struct bench *b)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		struct paste_pool_opts o = {.sz = sizeof(o)};
		struct paste_pool *p;

		paste_set_print(NULL, NULL, PASTE_LOG_WARN);
		_exit(paste_pool__open(&p, b->path, &o) ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		die("crash child", -EIO);
}

int main(int argc, char **argv)
{
	struct bench b = {.n = 10000000, .vlen = 32, .batch = 64};
	const char *dir = "/dev/shm";
	uint64_t rlen;
	void *raddr;
	double t0;
	int err;

	if (argc > 1)
		b.n = strtoull(argv[1], NULL, 0);
	if (argc > 2)
		b.vlen = (uint32_t)strtoul(argv[2], NULL, 0);
	if (argc > 3)
		b.batch = (uint32_t)strtoul(argv[3], NULL, 0);
	if (argc > 4)
		dir = argv[4];
	if (!b.n || !b.vlen || !b.batch) {
		fprintf(stderr, "usage: %s [keys] [value bytes] [batch] [pool dir]\n", argv[0]);
		return 2;
	}
	snprintf(b.path, sizeof(b.path), "%s/kv-bench-%d.pool", dir, (int)getpid());
	b.keys = malloc(b.n * sizeof(*b.keys));
	b.vals = malloc(b.n * sizeof(*b.vals));
	if (!b.keys || !b.vals)
		die("malloc", -ENOMEM);
	printf("kv_index_bench: %llu keys of %d bytes, %u-byte values, fence every %u puts\n",
	       (unsigned long long)b.n, KEY_LEN, b.vlen, b.batch);
	paste_set_print(NULL, NULL, PASTE_LOG_WARN);
	t0 = now_s();
	if ((err = bench_pool(&b)))
		die("pool create", err);
	printf("pool:    created in %.3f s\n", now_s() - t0);
	t0 = now_s();
	if ((err = paste_kv__open(&b.kv, b.pool, "kv",
	                          &PASTE_OPTS_LIT(paste_kv_opts, .capacity = b.n))))
		die("kv create", err);
	printf("create:  index for %llu keys in %.3f s\n", (unsigned long long)b.n, now_s() - t0);
	t0 = now_s();
	bench_fill_frames(&b);
	printf("frames:  %llu keys and values written and kept in %.3f s (not part of the index)\n",
	       (unsigned long long)b.n, now_s() - t0);
	bench_insert(&b);
	bench_update(&b);
	bench_get(&b);
	if ((err = paste_pool__find_region(b.pool, "kv", &raddr, &rlen)))
		die("find region", err);
	printf("space:   region %.1f MiB: %.1f bytes a key\n", (double)rlen / (1 << 20),
	       (double)rlen / (double)b.n);
	paste_pool__close(&b.pool);
	bench_reopen(&b, "after a clean close (entry checksums only)");
	paste_pool__close(&b.pool);
	bench_crash(&b);
	bench_reopen(&b, "after a crash (entry, key and value checksums)");
	bench_get(&b);
	paste_pool__close(&b.pool);
	unlink(b.path);
	free(b.keys);
	free(b.vals);
	return 0;
}
