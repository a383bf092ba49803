/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_pmem.c - the persistence tracker: the paste_pmem_ops the simulator installs in a pool.
 *
 * flush(addr, len) snapshots every 64-byte line of [addr, addr + len) into the pending set, as a
 * clwb would write the line back as it is at that moment. drain() applies the pending set to the
 * shadow (the media) in flush order and empties it. Stores themselves are plain CPU stores into the
 * pool's mapping; the tracker never sees them, it finds them at a crash by comparing the working
 * image with the shadow 8 bytes at a time.
 *
 * A crash is taken *before* the armed hook call takes effect; one library call can leave several
 * images (a queue, verified when the call returns). The image is the shadow, plus under
 * SIM_RANDOM_EVICT each pending line (whole, in flush order) and each dirty 8-byte word of the
 * working image, each with probability evict_pct: a line can be written back early by the cache
 * at any time, and the only store atomicity x86 promises to persistence is an aligned 8 bytes.
 * Two more random-evict variants are adversarial: every dirty word except those cleared to zero
 * (SIM_EVICT_BUT_CLEARS), or only those (SIM_EVICT_ONLY_CLEARS).
 *
 * Broken modes (enum sim_break) change what a fence or flush does, to prove that the checks catch
 * a protocol that does not make acknowledged data durable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void sim_fill(struct sim_rng *r, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len >= 8) {
		uint64_t v = sim_rand(r);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = sim_rand(r);

		memcpy(p, &v, len);
	}
}

/*
 * Two adversarial choices among random-evict outcomes, by the value a dirty word was stored with:
 * every store since the last fence reached media except the ones that cleared a word to 0
 * (@clears false: deletions lost while the insertions after them survive, the classic way a crash
 * leaves a structure fuller than it can be), or only those (@clears true: a clear or a free made
 * durable before the write it was ordered after).
 */
static void evict_by_clears(struct sim_pmem *pm, uint8_t *img, struct sim_image_info *in,
                            bool clears)
{
	static const uint8_t zero[8];

	for (uint64_t off = 0; off < pm->size; off += SIM_LINE) {
		if (!memcmp(pm->base + off, pm->shadow + off, SIM_LINE))
			continue;
		for (uint64_t w = off; w < off + SIM_LINE; w += 8) {
			if (!memcmp(pm->base + w, pm->shadow + w, 8))
				continue;
			in->words_dirty++;
			if (!memcmp(pm->base + w, zero, 8) != clears)
				continue;
			memcpy(img + w, pm->base + w, 8);
			in->words_evicted++;
		}
	}
}

/* Build the crash image from the shadow and, under random-evict, what may have leaked early. */
static void capture(struct sim_pmem *pm, bool at_drain)
{
	unsigned slot = pm->reservoir ? 0 : pm->ncap;
	struct sim_image_info *in = &pm->infos[slot];
	uint8_t *img;

	if (slot >= SIM_MAX_CAPTURES)
		return; /* the queue is full: this call is not a crash point */
	if (!pm->images[slot])
		pm->images[slot] = malloc(pm->bufsize);
	img = pm->images[slot];
	if (!img)
		return;
	memset(in, 0, sizeof(*in));
	in->call = pm->calls;
	in->at_drain = at_drain;
	in->model = pm->model;
	in->evict_pct = pm->evict_pct;
	in->lines_pending = pm->npend;
	memcpy(img, pm->shadow, pm->size);
	if (pm->model == SIM_RANDOM_EVICT &&
	    (pm->evict_pct == SIM_EVICT_BUT_CLEARS || pm->evict_pct == SIM_EVICT_ONLY_CLEARS)) {
		evict_by_clears(pm, img, in, pm->evict_pct == SIM_EVICT_ONLY_CLEARS);
	} else if (pm->model == SIM_RANDOM_EVICT) {
		for (size_t i = 0; i < pm->npend; i++) {
			if (!sim_chance(&pm->rng, pm->evict_pct))
				continue;
			memcpy(img + pm->pend[i].off, pm->pend[i].data, SIM_LINE);
			in->lines_evicted++;
		}
		for (uint64_t off = 0; off < pm->size; off += SIM_LINE) {
			if (!memcmp(pm->base + off, pm->shadow + off, SIM_LINE))
				continue;
			for (uint64_t w = off; w < off + SIM_LINE; w += 8) {
				if (!memcmp(pm->base + w, pm->shadow + w, 8))
					continue;
				in->words_dirty++;
				if (!sim_chance(&pm->rng, pm->evict_pct))
					continue;
				memcpy(img + w, pm->base + w, 8);
				in->words_evicted++;
			}
		}
	}
	pm->ncap = slot + 1;
	if (pm->on_capture)
		pm->on_capture(pm->capture_arg);
}

void sim_pmem__capture_now(struct sim_pmem *pm)
{
	capture(pm, false);
}

static void tick(struct sim_pmem *pm, bool at_drain)
{
	bool now;

	++pm->calls;
	if (pm->reservoir)
		now = sim_below(&pm->rng, (uint32_t)pm->calls) == 0;
	else
		now = pm->calls == pm->crash_at ||
		      (pm->calls >= pm->dense_lo && pm->calls < pm->dense_hi);
	if (now)
		capture(pm, at_drain);
}

static int pend_push(struct sim_pmem *pm, uint64_t off)
{
	if (pm->npend == pm->cap) {
		size_t cap = pm->cap ? pm->cap * 2 : 1024;
		struct sim_line *p = realloc(pm->pend, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		pm->pend = p;
		pm->cap = cap;
	}
	pm->pend[pm->npend].off = off;
	memcpy(pm->pend[pm->npend].data, pm->base + off, SIM_LINE);
	pm->npend++;
	return 0;
}

static void sim_flush(void *arg, const void *addr, size_t len)
{
	struct sim_pmem *pm = arg;
	const uint8_t *a = addr;
	uint64_t lo, hi;

	tick(pm, false);
	if (!len)
		return;
	if (a < pm->base || a >= pm->base + pm->size || len > (size_t)(pm->base + pm->size - a)) {
		pm->stray++;
		return;
	}
	lo = (uint64_t)(a - pm->base) & ~(uint64_t)(SIM_LINE - 1);
	hi = ((uint64_t)(a - pm->base) + len + SIM_LINE - 1) & ~(uint64_t)(SIM_LINE - 1);
	if (pm->brk == SIM_BREAK_LOSE_PAYLOAD && lo >= pm->frame_area_off)
		return;
	for (uint64_t off = lo; off < hi; off += SIM_LINE)
		if (pend_push(pm, off))
			abort(); /* out of memory in a test program: nothing sensible to do */
}

static void sim_drain(void *arg)
{
	struct sim_pmem *pm = arg;

	tick(pm, true);
	pm->drains++;
	if (pm->brk == SIM_BREAK_DRAIN_NOOP) {
		pm->npend = 0;
		return;
	}
	if (pm->brk == SIM_BREAK_SKIP_FENCE && pm->drains % 8 == 0)
		return;
	for (size_t i = 0; i < pm->npend; i++)
		memcpy(pm->shadow + pm->pend[i].off, pm->pend[i].data, SIM_LINE);
	pm->npend = 0;
}

void sim_pmem__flush(struct sim_pmem *pm, const void *addr, size_t len)
{
	sim_flush(pm, addr, len);
}

void sim_pmem__drain(struct sim_pmem *pm)
{
	sim_drain(pm);
}

/* Buffers are kept from one attach to the next (fresh ones would be page-faulted in each time). */
int sim_pmem__attach(struct sim_pmem *pm, void *base, uint64_t size, uint64_t frame_area_off,
                     enum sim_break brk, uint64_t seed)
{
	struct sim_pmem keep = *pm;

	memset(pm, 0, sizeof(*pm));
	pm->pend = keep.pend;
	pm->cap = keep.cap;
	pm->base = base;
	pm->size = size & ~(uint64_t)(SIM_LINE - 1);
	pm->frame_area_off = frame_area_off;
	pm->brk = brk;
	pm->rng.s = seed;
	pm->bufsize = keep.bufsize;
	pm->shadow = keep.shadow;
	memcpy(pm->images, keep.images, sizeof(pm->images));
	if (pm->bufsize < pm->size) {
		free(pm->shadow);
		for (unsigned i = 0; i < SIM_MAX_CAPTURES; i++) {
			free(pm->images[i]);
			pm->images[i] = NULL; /* allocated when first needed */
		}
		pm->shadow = malloc(pm->size);
		pm->bufsize = pm->size;
	}
	if (!pm->shadow) {
		sim_pmem__fini(pm);
		return -ENOMEM;
	}
	memcpy(pm->shadow, pm->base, pm->size);
	return 0;
}

int sim_pmem__init(struct sim_pmem *pm, struct paste_pool *pool, enum sim_break brk, uint64_t seed)
{
	struct paste_pool_info info;
	struct paste_pmem_ops ops = {0};
	int err;

	paste_pool__info(pool, &info, sizeof(info));
	err =
	    sim_pmem__attach(pm, paste_pool__base(pool), info.size, info.frame_area_off, brk, seed);
	if (err)
		return err;
	ops.flush = sim_flush;
	ops.drain = sim_drain;
	ops.arg = pm;
	paste_pool__set_pmem_ops(pool, &ops);
	return 0;
}

void sim_pmem__fini(struct sim_pmem *pm)
{
	free(pm->shadow);
	for (unsigned i = 0; i < SIM_MAX_CAPTURES; i++)
		free(pm->images[i]);
	free(pm->pend);
	memset(pm, 0, sizeof(*pm));
}

void sim_pmem__arm(struct sim_pmem *pm, uint64_t at, enum sim_model model, unsigned evict_pct)
{
	pm->crash_at = at;
	pm->model = model;
	pm->evict_pct = evict_pct;
}

void sim_pmem__dense(struct sim_pmem *pm, uint64_t lo, uint64_t hi)
{
	pm->dense_lo = lo;
	pm->dense_hi = hi;
}
