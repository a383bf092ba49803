/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_hist.c - paste-bench's latency histogram: bucket bounds, reset and percentiles (recording,
 * h_add(), is inline in bench.h: it runs for every reply).
 */
#define _GNU_SOURCE
#include "bench.h"

/* Lowest value of bucket @idx, and (through @width) how many values it holds. */
static uint64_t h_lowest(unsigned idx, uint64_t *width)
{
	if (idx < H_SUB) {
		*width = 1;
		return idx;
	}
	unsigned shift = (idx - H_SUB) / H_HALF + 1, sub = (idx - H_SUB) % H_HALF;
	*width = 1ull << shift;
	return (uint64_t)(H_HALF + sub) << shift;
}

void h_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

/* A bucket's representative value: its middle, within the observed [min, max]. */
uint64_t h_value(const struct hist *h, unsigned idx)
{
	uint64_t w, v = h_lowest(idx, &w) + (w - 1) / 2;
	if (v < h->min)
		v = h->min;
	if (v > h->max)
		v = h->max;
	return v;
}

/* The value at percentile @p (0..100]: the smallest v with at least p % of values <= v. */
uint64_t h_percentile(const struct hist *h, double p)
{
	if (!h->n)
		return 0;
	if (p >= 100)
		return h->max;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->c[i];
		if (seen >= rank)
			return h_value(h, i);
	}
	return h->max;
}
