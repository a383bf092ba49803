/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_seen.c - the set of visited states of the model checks (sim_forward.c, sim_tierpub.c): a
 * state is its bytes' 64-bit FNV-1a hash, kept in an open-addressing table that doubles at half
 * full. A collision would prune a state unseen (about 1 in 10^7 for a few million states).
 */
#include <stdio.h>
#include <stdlib.h>

#include "sim.h"

uint64_t sim_seen_hash(const void *state, size_t len)
{
	const uint8_t *p = state;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ? h : 1; /* 0 marks an empty slot */
}

static void put(uint64_t *tab, size_t cap, uint64_t h)
{
	for (size_t j = h & (cap - 1);; j = (j + 1) & (cap - 1))
		if (!tab[j]) {
			tab[j] = h;
			return;
		}
}

bool sim_seen_visit(struct sim_seen *s, uint64_t h)
{
	if (s->n * 2 >= s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1 << 16;
		uint64_t *n = calloc(ncap, sizeof(*n));

		if (!n) {
			fprintf(stderr,
			        "paste-powerfail: out of memory for the model's state set "
			        "(%zu states)\n",
			        s->n);
			exit(2);
		}
		for (size_t i = 0; i < s->cap; i++)
			if (s->tab[i])
				put(n, ncap, s->tab[i]);
		free(s->tab);
		s->tab = n;
		s->cap = ncap;
	}
	for (size_t j = h & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
		if (s->tab[j] == h)
			return false;
		if (!s->tab[j]) {
			s->tab[j] = h;
			s->n++;
			return true;
		}
	}
}

void sim_seen_free(struct sim_seen *s)
{
	free(s->tab);
	*s = (struct sim_seen){0};
}
