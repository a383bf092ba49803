/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_region.c - the pool's own durable state: named regions (the superblock's table, committed
 * through the backup copy) and plain flushed stores into them. Needs no index, so it also tests the
 * simulator itself before the indexes exist.
 *
 * Model: a region creation is acknowledged when paste_pool__region() returns (it persists the
 * zero fill and the superblock); a write is acknowledged by the next fence. After a crash, every
 * acknowledged region is there with its offset and size, an in-flight one may be, later ones are
 * not; a region's bytes are the zero fill plus the acknowledged writes, except that a byte an
 * in-flight write covered may hold that write's value instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_NREG 6

struct sim_reg {
	char name[16];
	uint64_t op;        /* the creating operation */
	uint64_t off, size; /* as the working pool created it */
	bool made;
};

struct sim_rwrite {
	uint64_t op;
	unsigned reg;
	uint32_t off, len;
	uint8_t *bytes;
};

struct sim_regions {
	struct sim_reg reg[SIM_NREG];
	unsigned nreg;
	struct sim_rwrite *w;
	size_t nw, capw;
	uint8_t *exp; /* scratch: expected contents of one region */
};

static int reg_setup(struct sim_run *r)
{
	struct sim_regions *g = calloc(1, sizeof(*g));

	if (!g)
		return -1;
	r->reg = g;
	for (unsigned i = 0; i < SIM_NREG; i++) {
		snprintf(g->reg[i].name, sizeof(g->reg[i].name), "sim.r%u", i);
		sim_region_name(r, g->reg[i].name);
	}
	return 0;
}

static void reg_fini(struct sim_run *r)
{
	struct sim_regions *g = r->reg;

	for (size_t i = 0; g && i < g->nw; i++)
		free(g->w[i].bytes);
	if (g) {
		free(g->w);
		free(g->exp);
	}
	free(g);
	r->reg = NULL;
}

static int reg_create(struct sim_run *r)
{
	struct sim_regions *g = r->reg;
	struct sim_reg *m = &g->reg[g->nreg];
	uint64_t size = 4096ull * (1 + sim_below(&r->rng, 4)) - sim_below(&r->rng, 100), len;
	void *addr;
	int err;

	sim_fence(r); /* the creation alone is in flight */
	m->op = sim_issue(r);
	r->rare = true; /* a superblock update: replayed with a crash at each call */
	err = paste_pool__region(r->pool, m->name, size, &addr, &len);
	if (err == -ENOSPC) {
		sim_op_failed(r, err);
		return 0;
	}
	if (err) {
		sim_violation(r, "paste_pool__region(%s, %llu) fails: %d", m->name,
		              (unsigned long long)size, err);
		return err;
	}
	r->acked = r->issued; /* durable when it returns */
	m->off = (uint64_t)((uint8_t *)addr - r->base);
	m->size = len;
	m->made = true;
	g->nreg++;
	for (uint64_t i = 0; i < len; i++) {
		if (((uint8_t *)addr)[i]) {
			sim_violation(r, "new region %s is not zero-filled at byte %llu", m->name,
			              (unsigned long long)i);
			break;
		}
	}
	return 0;
}

static int reg_write(struct sim_run *r)
{
	struct sim_regions *g = r->reg;
	struct sim_rwrite w;

	if (g->nw == g->capw) {
		size_t cap = g->capw ? g->capw * 2 : 256;
		struct sim_rwrite *p = realloc(g->w, cap * sizeof(*p));

		if (!p)
			return -1;
		g->w = p;
		g->capw = cap;
	}
	w.reg = sim_below(&r->rng, g->nreg);
	w.len = 1 + sim_below(&r->rng, sim_chance(&r->rng, 10) ? 1500 : 200);
	w.off = sim_below(&r->rng, (uint32_t)(g->reg[w.reg].size - w.len + 1));
	w.bytes = malloc(w.len);
	if (!w.bytes)
		return -1;
	sim_fill(&r->rng, w.bytes, w.len);
	w.op = sim_issue(r);
	memcpy(r->base + g->reg[w.reg].off + w.off, w.bytes, w.len);
	paste_pool__flush(r->pool, r->base + g->reg[w.reg].off + w.off, w.len);
	g->w[g->nw++] = w;
	return 0;
}

static int reg_step(struct sim_run *r)
{
	struct sim_regions *g = r->reg;

	if (g->nreg == 0 || (g->nreg < SIM_NREG && sim_chance(&r->rng, 4)))
		return reg_create(r);
	return reg_write(r);
}

/* Could an in-flight write have left @v at byte @i of region @k? */
static bool inflight_byte(const struct sim_run *r, unsigned k, uint64_t i, uint8_t v)
{
	const struct sim_regions *g = r->reg;

	for (size_t j = 0; j < g->nw && g->w[j].op < r->crash.issued; j++) {
		const struct sim_rwrite *w = &g->w[j];

		if (w->op >= r->crash.acked && w->reg == k && i >= w->off && i < w->off + w->len &&
		    w->bytes[i - w->off] == v)
			return true;
	}
	return false;
}

static void reg_check_bytes(struct sim_run *r, unsigned k, const uint8_t *got)
{
	struct sim_regions *g = r->reg;
	const struct sim_reg *m = &g->reg[k];
	uint64_t bad = 0, first = 0;
	uint8_t *exp = realloc(g->exp, m->size);

	if (!exp)
		return;
	g->exp = exp;
	memset(exp, 0, m->size);
	for (size_t j = 0; j < g->nw && g->w[j].op < r->crash.acked; j++)
		if (g->w[j].reg == k)
			memcpy(exp + g->w[j].off, g->w[j].bytes, g->w[j].len);
	for (uint64_t i = 0; i < m->size; i++) {
		if (got[i] == exp[i] || inflight_byte(r, k, i, got[i]))
			continue;
		if (!bad++)
			first = i;
	}
	if (bad)
		sim_violation(r,
		              "region %s: %llu bytes neither acknowledged nor in flight, first at "
		              "%llu: expected 0x%02x, found 0x%02x",
		              m->name, (unsigned long long)bad, (unsigned long long)first,
		              exp[first], got[first]);
}

static void reg_check(struct sim_run *r, struct paste_pool *rec)
{
	struct sim_regions *g = r->reg;

	for (unsigned k = 0; k < g->nreg; k++) {
		const struct sim_reg *m = &g->reg[k];
		uint64_t len;
		void *addr;
		bool found = !paste_pool__find_region(rec, m->name, &addr, &len);

		if (!found && m->op < r->crash.acked)
			sim_violation(r, "acknowledged region %s is missing", m->name);
		if (found && m->op >= r->crash.issued)
			sim_violation(r, "region %s exists before it was created", m->name);
		if (!found || m->op >= r->crash.issued)
			continue;
		if ((uint64_t)((uint8_t *)addr - (uint8_t *)paste_pool__base(rec)) != m->off ||
		    len != m->size) {
			sim_violation(
			    r, "region %s is at %llu (+%llu), was created at %llu (+%llu)", m->name,
			    (unsigned long long)((uint8_t *)addr -
			                         (uint8_t *)paste_pool__base(rec)),
			    (unsigned long long)len, (unsigned long long)m->off,
			    (unsigned long long)m->size);
			continue;
		}
		reg_check_bytes(r, k, addr);
		r->st[r->crash.img.model].regions++;
	}
}

/* The regions found, with their whole current contents as one write each (as @op). */
static void reg_rebase(struct sim_run *r, struct paste_pool *pool, uint64_t op)
{
	struct sim_regions *g = r->reg;
	struct sim_rwrite *w = calloc(SIM_NREG, sizeof(*w));
	size_t n = 0;

	if (!w) {
		r->fatal = true;
		return;
	}
	for (unsigned k = 0; k < g->nreg; k++) {
		uint64_t len;
		void *addr;

		if (paste_pool__find_region(pool, g->reg[k].name, &addr, &len)) {
			g->nreg =
			    k; /* an in-flight creation (always the last) that did not survive */
			break;
		}
		w[n].op = op;
		w[n].reg = k;
		w[n].off = 0;
		w[n].len = (uint32_t)len;
		w[n].bytes = malloc(len);
		if (!w[n].bytes) {
			r->fatal = true;
			break;
		}
		memcpy(w[n++].bytes, addr, len);
	}
	for (size_t i = 0; i < g->nw; i++)
		free(g->w[i].bytes);
	free(g->w);
	g->w = w;
	g->nw = n;
	g->capw = SIM_NREG;
}

const struct sim_component sim_region_component = {
    .name = "regions",
    .setup = reg_setup,
    .step = reg_step,
    .check = reg_check,
    .recheck = reg_check,
    .rebase = reg_rebase,
    .fini = reg_fini,
};
