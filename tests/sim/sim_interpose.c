/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_interpose.c - crash points inside recovery.
 *
 * Recovery writes too: the log seals its tail and moves to a new epoch, the key-value index rolls
 * torn updates back, turns stale words into tombstones, scrubs slots and may compact, and the pool
 * commits its superblock. It all happens inside paste_pool__open(), before the simulator could
 * install ops on the open pool. So while armed, this file sets the process-wide default
 * persistence ops (paste_pool__set_default_pmem_ops, chosen by every open): the mapping the next
 * open reports (ops.map) is tracked like a working pool (sim_pmem.c), and one of the flush/fence
 * calls of the open, chosen uniformly by reservoir sampling, leaves a crash image: a crash during
 * recovery, which recovery must survive again with the same guarantees. No libpmem symbol is
 * interposed.
 *
 * getrandom() is interposed the same way, from a seeded stream: the pool's uuid and the key-value
 * index's hash seed come from it, and with a random hash seed a run (which keys collide, when the
 * table compacts) could not be replayed from --seed.
 */
#define _GNU_SOURCE
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

/* The persistence ops of the opens made while armed (paste_pool__set_default_pmem_ops): the real
 * flush/drain, and the tracker sees each one once the mapping is attached. */
static void ip_map(void *arg, void *base, size_t len)
{
	if (!ip.pm || ip.attached ||
	    sim_pmem__attach(ip.pm, base, len, UINT64_MAX, SIM_BREAK_NONE, ip.seed))
		return;
	ip.pm->model = ip.model;
	ip.pm->evict_pct = ip.evict_pct;
	ip.pm->reservoir = true;
	ip.attached = true;
}

static void ip_flush(void *arg, const void *addr, size_t len)
{
	if (ip.attached)
		sim_pmem__flush(ip.pm, addr, len);
	pmem_flush(addr, len);
}

static void ip_drain(void *arg)
{
	if (ip.attached)
		sim_pmem__drain(ip.pm);
	pmem_drain();
}

static const struct paste_pmem_ops ip_ops = {ip_flush, ip_drain, NULL, ip_map};

void sim_interpose__arm(struct sim_pmem *pm, enum sim_model model, unsigned evict_pct,
                        uint64_t seed)
{
	ip.pm = pm;
	ip.attached = false;
	ip.model = model;
	ip.evict_pct = evict_pct;
	ip.seed = seed;
	paste_pool__set_default_pmem_ops(&ip_ops);
}

bool sim_interpose__disarm(void)
{
	bool captured = ip.attached && ip.pm->ncap;

	paste_pool__set_default_pmem_ops(NULL);
	ip.pm = NULL;
	ip.attached = false;
	return captured;
}
