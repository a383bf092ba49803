/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_bench.c - recovery time against index size (paste-powerfail --bench-recovery).
 *
 * A child process creates a pool, fills a log (records of 512 payload bytes, four to a frame) or
 * a key-value index (16-byte keys, 32-byte values, packed into frames), fences, and exits without
 * closing: the pool is left unclean, as after a crash. The parent then times paste_pool__open()
 * (full recovery: records and entries validated, frame allocator rebuilt), checks the counts,
 * closes cleanly and times a clean open too. No persistence hook is installed here: this measures
 * the library as it runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define BENCH_LOG_PAYLOAD 512u
#define BENCH_KLEN        16u
#define BENCH_VLEN        32u

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Packs consecutive payloads into KEPT frames of @pool. */
struct packer {
	struct paste_pool *pool;
	struct paste_frames *f;
	uint8_t *frames;
	uint32_t fs, frame, off;
	bool open;
};

static int pack(struct packer *p, const void *bytes, uint32_t len, struct paste_ref *ref)
{
	uint8_t *dst;
	int err;

	if (p->open && p->off + len > p->fs) {
		paste_frames__rx_done(p->f, p->frame);
		p->open = false;
	}
	if (!p->open) {
		err = paste_frames__alloc(p->f, PASTE_FRAME_RX, &p->frame);
		if (err)
			return err;
		p->open = true;
		p->off = 0;
	}
	dst = p->frames + (uint64_t)p->frame * p->fs + p->off;
	memcpy(dst, bytes, len);
	paste_pool__flush(p->pool, dst, len);
	ref->off = (uint64_t)(dst - (uint8_t *)paste_pool__base(p->pool));
	ref->len = len;
	ref->flags = 0;
	p->off += len;
	return paste_pool__ref_get(p->pool, ref);
}

static int fill_log(struct packer *p, uint64_t n)
{
	struct paste_log *log;
	uint8_t buf[BENCH_LOG_PAYLOAD];
	struct sim_rng rng = {42};
	int err =
	    paste_log__open(&log, p->pool, "bench.log",
	                    &PASTE_OPTS_LIT(paste_log_opts, .region_size = n * 128 + (1 << 20)));

	for (uint64_t i = 0; i < n && !err; i++) {
		struct paste_ref ref;
		uint64_t seq;

		sim_fill(&rng, buf, sizeof(buf));
		err = pack(p, buf, sizeof(buf), &ref);
		if (!err)
			err = paste_log__append(log, &ref, 1, &seq);
		if (i % 64 == 63)
			paste_pool__drain(p->pool);
	}
	return err;
}

static int fill_kv(struct packer *p, uint64_t n)
{
	struct paste_kv *kv;
	uint8_t key[BENCH_KLEN], val[BENCH_VLEN];
	struct sim_rng rng = {43};
	int err = paste_kv__open(&kv, p->pool, "bench.kv",
	                         &PASTE_OPTS_LIT(paste_kv_opts, .capacity = n + n / 4));

	for (uint64_t i = 0; i < n && !err; i++) {
		struct paste_ref kref, vref;

		sim_fill(&rng, key, sizeof(key));
		memcpy(key, &i, sizeof(i)); /* unique */
		sim_fill(&rng, val, sizeof(val));
		err = pack(p, key, sizeof(key), &kref);
		if (!err)
			err = pack(p, val, sizeof(val), &vref);
		if (!err)
			err = paste_kv__put(kv, &kref, &vref);
		if (i % 64 == 63)
			paste_pool__drain(p->pool);
	}
	return err;
}

/* Child: build the index, fence, and die without closing. */
static void build(const char *path, uint64_t size, uint64_t region, bool is_kv, uint64_t n)
{
	struct paste_pool_opts o = {
	    .sz = sizeof(o), .size = size, .region_area = region, .must_create = true};
	struct packer p = {0};
	double t0 = now_s();
	int err = paste_pool__open(&p.pool, path, &o);

	if (err)
		_exit(2);
	p.f = paste_pool__frame_alloc(p.pool);
	p.frames = paste_pool__frames(p.pool);
	p.fs = PASTE_POOL_DEFAULT_FRAME_SIZE;
	err = is_kv ? fill_kv(&p, n) : fill_log(&p, n);
	paste_pool__drain(p.pool);
	if (err) {
		fprintf(stderr, "bench: filling failed: %s: %s\n", strerror(-err),
		        paste_last_error());
		_exit(3);
	}
	printf("  built %llu %s in %.2f s\n", (unsigned long long)n, is_kv ? "keys" : "records",
	       now_s() - t0);
	fflush(stdout);
	_exit(0); /* a crash: no close, the clean flag stays 0 */
}

static int time_open(const char *path, bool is_kv, const char *what, uint64_t n, uint64_t bytes)
{
	struct paste_pool_opts o = {.sz = sizeof(o)};
	struct paste_pool *pool;
	uint64_t got = 0;
	double t0 = now_s(), dt;
	int err = paste_pool__open(&pool, path, &o);

	dt = now_s() - t0;
	if (err) {
		printf("  %s open failed: %s\n", what, paste_last_error());
		return err;
	}
	if (is_kv) {
		struct paste_kv *kv;
		struct paste_kv_info in;

		if (!paste_kv__open(&kv, pool, "bench.kv", NULL)) {
			paste_kv__info(kv, &in, sizeof(in));
			got = in.keys;
		}
	} else {
		struct paste_log *log;
		struct paste_log_info in;

		if (!paste_log__open(&log, pool, "bench.log", NULL)) {
			paste_log__info(log, &in, sizeof(in));
			got = in.records;
		}
	}
	printf("  %-7s open: %8.1f ms  %12.0f %s/s  %6.2f GB/s  (%llu of %llu recovered, %u frames "
	       "kept)\n",
	       what, dt * 1e3, (double)got / dt, is_kv ? "keys" : "records",
	       (double)bytes / dt / 1e9, (unsigned long long)got, (unsigned long long)n,
	       paste_frames__nr(paste_pool__frame_alloc(pool), PASTE_FRAME_KEPT));
	paste_pool__close(&pool);
	return got == n ? 0 : -EIO;
}

static int bench_one(const struct sim_cfg *cfg, bool is_kv, uint64_t n)
{
	uint64_t per = is_kv ? BENCH_KLEN + BENCH_VLEN : BENCH_LOG_PAYLOAD;
	uint64_t frames = n / (PASTE_POOL_DEFAULT_FRAME_SIZE / per) + 1024;
	uint64_t region = (is_kv ? (n + n / 4) * 256 : n * 128) + (8ull << 20);
	uint64_t size = 4096 + region + frames * PASTE_POOL_DEFAULT_FRAME_SIZE;
	char path[160];
	pid_t pid;
	int status, err;

	region = (region + 4095) & ~4095ull;
	snprintf(path, sizeof(path), "%s/paste-sim-%d-bench.pool", cfg->dir, (int)getpid());
	unlink(path);
	printf("%s: %llu %s, pool %.0f MiB (region area %.0f MiB)\n", is_kv ? "kv" : "log",
	       (unsigned long long)n, is_kv ? "keys" : "records", (double)size / (1 << 20),
	       (double)region / (1 << 20));
	pid = fork();
	if (pid == 0)
		build(path, size, region, is_kv, n);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		printf("  building the pool failed\n");
		unlink(path);
		return -EIO;
	}
	err = time_open(path, is_kv, "unclean", n, n * per);
	if (!err)
		err = time_open(path, is_kv, "clean", n, n * per);
	unlink(path);
	return err;
}

int sim_bench_recovery(const struct sim_cfg *cfg, uint64_t log_records, uint64_t kv_keys)
{
	int err = bench_one(cfg, false, log_records);

	if (!err)
		err = bench_one(cfg, true, kv_keys);
	return err;
}
