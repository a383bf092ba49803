/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_probe.c - targeted searches for one kind of crash state, where random crash points would
 * need luck (paste-powerfail --probe kv-full [--capacity C] [--ops N]).
 *
 * kv-full: the key-value index keeps at most 7/8 of its buckets non-empty, so a probe always ends
 * and recovery can start its cluster walk at an empty bucket. A delete at the end of a cluster
 * empties buckets (one 8-byte store each) and a later insert of another key may fill a bucket that
 * was empty; if both are in one batch (no fence between), the 8-byte failure model lets the
 * insert's store reach media without the delete's. The probe runs random puts and deletes on a
 * small index and after every operation asks whether some such crash state has every bucket
 * non-empty: every bucket non-empty either in the shadow (the last fence) or in the working image.
 * If so it builds exactly that state (every dirty word reaches media except those stored as zero:
 * SIM_EVICT_BUT_CLEARS) and opens it. A recovery that fails is a violation: the pool cannot be
 * opened at all. The bucket array is found by the documented layout (docs/kv-index.md: nbuckets
 * at offset 24 of the header, buckets at 4096).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

#define PROBE_KEYS      64
#define PROBE_KV_NB_OFF 24   /* struct kv_super: nbuckets */
#define PROBE_KV_BKT    4096 /* bucket array offset */

struct probe {
	struct paste_pool *pool;
	struct paste_kv *kv;
	struct paste_frames *frames;
	struct sim_pmem pm;
	struct sim_rng rng;
	uint8_t key[PROBE_KEYS][16];
	bool live[PROBE_KEYS];
	const uint64_t *buckets; /* working */
	uint64_t nb, boff;       /* bucket count, pool offset of the bucket array */
};

/* Put key @k with a fresh 16-byte value (key and value kept in one RX frame). */
static int probe_put(struct probe *p, unsigned k)
{
	uint8_t *fb = paste_pool__frames(p->pool), *base = paste_pool__base(p->pool), v[16];
	struct paste_ref kr, vr;
	uint32_t idx;
	int err;

	if (paste_frames__alloc(p->frames, PASTE_FRAME_RX, &idx)) {
		paste_pool__drain(p->pool);
		return -ENOSPC;
	}
	sim_fill(&p->rng, v, sizeof(v));
	memcpy(fb + idx * 2048ull, p->key[k], 16);
	memcpy(fb + idx * 2048ull + 64, v, 16);
	paste_pool__flush(p->pool, fb + idx * 2048ull, 128);
	kr = (struct paste_ref){.off = (uint64_t)(fb + idx * 2048ull - base), .len = 16};
	vr = kr;
	vr.off += 64;
	paste_pool__ref_get(p->pool, &kr);
	paste_pool__ref_get(p->pool, &vr);
	err = paste_kv__put(p->kv, &kr, &vr);
	paste_frames__rx_done(p->frames, idx);
	if (err) {
		paste_pool__ref_put(p->pool, &kr);
		paste_pool__ref_put(p->pool, &vr);
	}
	return err;
}

/* Could a crash now leave every bucket non-empty? */
static bool all_covered(const struct probe *p)
{
	const uint64_t *sb = (const uint64_t *)(p->pm.shadow + p->boff);

	for (uint64_t b = 0; b < p->nb; b++)
		if (!p->buckets[b] && !sb[b])
			return false;
	return true;
}

/* Recover that crash state. @return 0 if it opens, else the error. */
static int probe_open(struct probe *p, const char *path, uint64_t *keys)
{
	struct paste_pool_opts o = {.sz = sizeof(o)};
	struct paste_pool *rec;
	struct paste_kv_info in;
	struct paste_kv *kv;
	int fd, err;

	p->pm.model = SIM_RANDOM_EVICT;
	p->pm.evict_pct = SIM_EVICT_BUT_CLEARS;
	p->pm.ncap = 0;
	sim_pmem__capture_now(&p->pm);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, p->pm.images[0], p->pm.size) != (ssize_t)p->pm.size) {
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	close(fd);
	err = paste_pool__open(&rec, path, &o);
	if (!err) {
		*keys = 0;
		if (!paste_kv__open(&kv, rec, "probe.kv", NULL)) {
			paste_kv__info(kv, &in, sizeof(in));
			*keys = in.keys;
		}
		paste_pool__close(&rec);
	}
	unlink(path);
	return err;
}

static int probe_setup(struct probe *p, const char *path, uint64_t capacity)
{
	struct paste_pool_opts o = {.sz = sizeof(o),
	                            .size = 4096 + (1 << 20) + (1024 << 11),
	                            .region_area = 1 << 20,
	                            .must_create = true};
	uint64_t len;
	void *region;
	int err;

	unlink(path);
	err = paste_pool__open(&p->pool, path, &o);
	if (!err)
		err = paste_kv__open(&p->kv, p->pool, "probe.kv",
		                     &PASTE_OPTS_LIT(paste_kv_opts, .capacity = capacity));
	if (!err)
		err = paste_pool__find_region(p->pool, "probe.kv", &region, &len);
	if (!err)
		err = sim_pmem__init(&p->pm, p->pool, SIM_BREAK_NONE, sim_rand(&p->rng));
	if (err)
		return err;
	memcpy(&p->nb, (uint8_t *)region + PROBE_KV_NB_OFF, sizeof(p->nb));
	p->buckets = (const uint64_t *)((uint8_t *)region + PROBE_KV_BKT);
	p->boff =
	    (uint64_t)((uint8_t *)region - (uint8_t *)paste_pool__base(p->pool)) + PROBE_KV_BKT;
	p->frames = paste_pool__frame_alloc(p->pool);
	for (unsigned i = 0; i < PROBE_KEYS; i++) {
		sim_fill(&p->rng, p->key[i], 16);
		p->key[i][0] = (uint8_t)i;
	}
	return 0;
}

int sim_probe_kv_full(const struct sim_cfg *cfg, uint64_t capacity, uint64_t ops)
{
	struct probe *p = calloc(1, sizeof(*p));
	char work[160], crash[160];
	uint64_t found = 0, over = 0, keys = 0, i;
	int err = 0, bad = 0;

	if (!p)
		return 1;
	p->rng.s = cfg->seed;
	sim_interpose__seed(cfg->seed);
	snprintf(work, sizeof(work), "%s/paste-sim-%d-probe.pool", cfg->dir, (int)getpid());
	snprintf(crash, sizeof(crash), "%s/paste-sim-%d-probe-crash.pool", cfg->dir, (int)getpid());
	if (probe_setup(p, work, capacity)) {
		printf("probe kv-full: setup failed: %s\n", paste_last_error());
		free(p);
		return 1;
	}
	printf(
	    "probe kv-full: capacity %llu (%llu buckets), %llu keys, seed %llu, up to %llu ops\n",
	    (unsigned long long)capacity, (unsigned long long)p->nb, (unsigned long long)PROBE_KEYS,
	    (unsigned long long)cfg->seed, (unsigned long long)ops);
	for (i = 0; i < ops && !bad; i++) {
		unsigned k = sim_below(&p->rng, PROBE_KEYS);

		if (!p->live[k])
			p->live[k] = !probe_put(p, k);
		else if (!paste_kv__del(p->kv, p->key[k], 16))
			p->live[k] = false;
		if (all_covered(p)) {
			found++;
			err = probe_open(p, crash, &keys);
			bad = err != 0;
			over += !err && keys > capacity;
		}
		if (sim_chance(&p->rng, 30))
			paste_pool__drain(p->pool);
	}
	if (bad)
		printf(
		    "VIOLATION [probe kv-full, op %llu]: a crash state with every bucket non-empty "
		    "(a delete's emptying store lost, a later insert's store durable, same batch) "
		    "does not open: %s: %s\n",
		    (unsigned long long)i, strerror(-err), paste_last_error());
	printf("probe kv-full: %llu ops, %llu crash states with every bucket non-empty (%llu "
	       "recovered with more keys than the capacity), %s\n",
	       (unsigned long long)i, (unsigned long long)found, (unsigned long long)over,
	       bad ? "1 failed to open" : "all opened");
	paste_pool__close(&p->pool);
	sim_pmem__fini(&p->pm);
	unlink(work);
	free(p);
	return bad;
}
