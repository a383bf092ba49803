/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_interpose.c - crash points inside recovery.
 *
 * Recovery writes too: the log seals its tail and moves to a new epoch, the key-value index rolls
 * torn updates back, turns stale words into tombstones, scrubs slots and may compact, and the pool
 * commits its superblock. It all happens inside paste_pool__open(), through the default
 * persistence ops (libpmem's pmem_flush/pmem_drain), before the simulator could install its hook.
 * So this file defines pmem_map_file, pmem_flush and pmem_drain: the program's definitions take
 * precedence over libpmem's for the library objects linked into it, and each forwards to the real
 * one (dlsym RTLD_NEXT). While armed, the mapping made by the next pmem_map_file() is tracked like
 * a working pool (sim_pmem.c), and one of the flush/fence calls of the open, chosen uniformly by
 * reservoir sampling, leaves a crash image: a crash during recovery, which recovery must survive
 * again with the same guarantees.
 *
 * getrandom() is interposed the same way, from a seeded stream: the pool's uuid and the key-value
 * index's hash seed come from it, and with a random hash seed a run (which keys collide, when the
 * table compacts) could not be replayed from --seed.
 *
 * Only the simulator does this; the library is unchanged. A per-process default for the pmem ops
 * (or an opts field) in pool_internal.h would make the interposition unnecessary.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "sim.h"

static struct {
	struct sim_pmem *pm; /* armed tracker, or NULL */
	bool attached;
	enum sim_model model;
	unsigned evict_pct;
	uint64_t seed;
} ip;

static struct sim_rng random_stream = {0x243f6a8885a308d3ull};

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
	sim_fill(&random_stream, buf, len);
	return (ssize_t)len;
}

void sim_interpose__seed(uint64_t seed)
{
	random_stream.s = seed;
}

static void *real_sym(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (!f) {
		fprintf(stderr, "paste-powerfail: cannot find libpmem's %s: %s\n", name, dlerror());
		abort();
	}
	return f;
}

void *pmem_map_file(const char *path, size_t len, int flags, mode_t mode, size_t *mapped_lenp,
                    int *is_pmemp)
{
	static void *(*real)(const char *, size_t, int, mode_t, size_t *, int *);
	void *p;

	if (!real)
		real = (void *(*)(const char *, size_t, int, mode_t, size_t *, int *))real_sym(
		    "pmem_map_file");
	p = real(path, len, flags, mode, mapped_lenp, is_pmemp);
	if (p && ip.pm && !ip.attached && mapped_lenp &&
	    !sim_pmem__attach(ip.pm, p, *mapped_lenp, UINT64_MAX, SIM_BREAK_NONE, ip.seed)) {
		ip.pm->model = ip.model;
		ip.pm->evict_pct = ip.evict_pct;
		ip.pm->reservoir = true;
		ip.attached = true;
	}
	return p;
}

void pmem_flush(const void *addr, size_t len)
{
	static void (*real)(const void *, size_t);

	if (!real)
		real = (void (*)(const void *, size_t))real_sym("pmem_flush");
	if (ip.attached)
		sim_pmem__flush(ip.pm, addr, len);
	real(addr, len);
}

void pmem_drain(void)
{
	static void (*real)(void);

	if (!real)
		real = (void (*)(void))real_sym("pmem_drain");
	if (ip.attached)
		sim_pmem__drain(ip.pm);
	real();
}

void sim_interpose__arm(struct sim_pmem *pm, enum sim_model model, unsigned evict_pct,
                        uint64_t seed)
{
	ip.pm = pm;
	ip.attached = false;
	ip.model = model;
	ip.evict_pct = evict_pct;
	ip.seed = seed;
}

bool sim_interpose__disarm(void)
{
	bool captured = ip.attached && ip.pm->ncap;

	ip.pm = NULL;
	ip.attached = false;
	return captured;
}
