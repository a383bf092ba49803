/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * frames.c - the volatile frame allocator (see frames.h for the states and the contract).
 *
 * Three arrays indexed by frame number (state, kept-reference count) plus a LIFO stack of FREE
 * frame indices. Every transition checks the state the caller claims the frame is in, so a double
 * free or a frame returned by the wrong path fails with -EINVAL and changes nothing, and the
 * per-state counters stay exact: "no frame leaked" is a comparison of n[] against expectations,
 * and paste_frames__audit() recounts everything from scratch for the tests.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "frames.h"

static const char *const state_names[PASTE_FRAME_NSTATES] = {
    [PASTE_FRAME_FREE] = "FREE", [PASTE_FRAME_FILL] = "FILL", [PASTE_FRAME_RX] = "RX",
    [PASTE_FRAME_TX] = "TX",     [PASTE_FRAME_KEPT] = "KEPT",
};

static const char *state_name(unsigned s)
{
	return s < PASTE_FRAME_NSTATES ? state_names[s] : "?";
}

int paste_frames__init(struct paste_frames *f, uint32_t count, const uint64_t *kept)
{
	memset(f, 0, sizeof(*f));
	if (count == 0)
		return paste_fail(-EINVAL, "frame allocator: a pool needs at least one frame");
	f->free_stack = malloc(sizeof(*f->free_stack) * count);
	f->state = malloc(sizeof(*f->state) * count);
	f->refs = calloc(count, sizeof(*f->refs));
	f->held = calloc(count, sizeof(*f->held));
	if (!f->free_stack || !f->state || !f->refs || !f->held)
		goto err_nomem;
	f->count = count;
	/* Push from the top down so that the lowest free index is allocated first. */
	for (uint32_t i = count; i-- > 0;) {
		if (kept && (kept[i / 64] >> (i % 64) & 1)) {
			f->state[i] = PASTE_FRAME_KEPT;
			f->refs[i] = 1;
		} else {
			f->state[i] = PASTE_FRAME_FREE;
			f->free_stack[f->nfree++] = i;
		}
	}
	f->n[PASTE_FRAME_FREE] = f->nfree;
	f->n[PASTE_FRAME_KEPT] = count - f->nfree;
	return 0;

err_nomem:
	paste_frames__fini(f);
	return paste_fail(-ENOMEM, "frame allocator: out of memory for %u frames", count);
}

void paste_frames__fini(struct paste_frames *f)
{
	free(f->free_stack);
	free(f->state);
	free(f->refs);
	free(f->held);
	memset(f, 0, sizeof(*f));
}

/* Enter state @to: KEPT starts with one reference, every other state with none. */
static void frame_enter(struct paste_frames *f, uint32_t idx, enum paste_frame_state to)
{
	f->state[idx] = (uint8_t)to;
	f->refs[idx] = to == PASTE_FRAME_KEPT;
	f->held[idx] = 0;
	f->n[to]++;
	if (to == PASTE_FRAME_FREE)
		f->free_stack[f->nfree++] = idx;
}

int paste_frames__alloc(struct paste_frames *f, enum paste_frame_state to, uint32_t *idx)
{
	uint32_t i;

	if (unlikely(to == PASTE_FRAME_FREE || (unsigned)to >= PASTE_FRAME_NSTATES))
		return paste_fail(-EINVAL, "frame allocator: cannot allocate into state %u", to);
	if (unlikely(f->nfree == 0))
		return -ENOSPC; /* normal back-pressure: no message */
	i = f->free_stack[--f->nfree];
	f->n[PASTE_FRAME_FREE]--;
	frame_enter(f, i, to);
	*idx = i;
	return 0;
}

/* Take a FREE frame that is not necessarily on top out of the free stack (rare: O(nfree)). */
static void free_stack_remove(struct paste_frames *f, uint32_t idx)
{
	for (uint32_t k = f->nfree; k-- > 0;) {
		if (f->free_stack[k] == idx) {
			f->free_stack[k] = f->free_stack[--f->nfree];
			return;
		}
	}
}

int paste_frames__move(struct paste_frames *f, uint32_t idx, enum paste_frame_state from,
                       enum paste_frame_state to)
{
	if (unlikely(idx >= f->count))
		return paste_fail(-EINVAL, "frame allocator: frame %u out of range (%u frames)",
		                  idx, f->count);
	if (unlikely((unsigned)from >= PASTE_FRAME_NSTATES || (unsigned)to >= PASTE_FRAME_NSTATES))
		return paste_fail(-EINVAL, "frame allocator: bad state %u -> %u", from, to);
	if (unlikely(f->state[idx] != from))
		return paste_fail(
		    -EINVAL,
		    "frame allocator: frame %u is %s, not %s (moving to %s): double free or frame returned by the wrong path",
		    idx, state_name(f->state[idx]), state_name(from), state_name(to));
	if (from == to)
		return 0;
	if (from == PASTE_FRAME_FREE)
		free_stack_remove(f, idx);
	f->n[from]--;
	frame_enter(f, idx, to);
	return 0;
}

int paste_frames__ref(struct paste_frames *f, uint32_t idx)
{
	if (unlikely(idx >= f->count))
		return paste_fail(-EINVAL, "frame allocator: frame %u out of range (%u frames)",
		                  idx, f->count);
	if (f->state[idx] == PASTE_FRAME_RX) {
		f->n[PASTE_FRAME_RX]--;
		frame_enter(f, idx, PASTE_FRAME_KEPT);
		f->held[idx] = 1;
		return 0;
	}
	if (unlikely(f->state[idx] != PASTE_FRAME_KEPT))
		return paste_fail(-EINVAL,
		                  "frame allocator: cannot keep frame %u: it is %s, not RX or KEPT",
		                  idx, state_name(f->state[idx]));
	if (unlikely(f->refs[idx] == UINT16_MAX))
		return paste_fail(-EOVERFLOW, "frame allocator: frame %u already has %u references",
		                  idx, UINT16_MAX);
	f->refs[idx]++;
	return 0;
}

int paste_frames__unref(struct paste_frames *f, uint32_t idx)
{
	if (unlikely(idx >= f->count || f->state[idx] != PASTE_FRAME_KEPT))
		return paste_fail(-EINVAL,
		                  "frame allocator: cannot release frame %u: it is %s, not KEPT",
		                  idx, idx < f->count ? state_name(f->state[idx]) : "out of range");
	if (--f->refs[idx] == 0) {
		bool held = f->held[idx];

		f->n[PASTE_FRAME_KEPT]--;
		frame_enter(f, idx, held ? PASTE_FRAME_RX : PASTE_FRAME_FREE);
	}
	return 0;
}

int paste_frames__rx_done(struct paste_frames *f, uint32_t idx)
{
	if (likely(idx < f->count && f->state[idx] == PASTE_FRAME_RX))
		return paste_frames__move(f, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE);
	if (likely(idx < f->count && f->state[idx] == PASTE_FRAME_KEPT && f->held[idx])) {
		f->held[idx] = 0;
		return 0;
	}
	return paste_fail(
	    -EINVAL,
	    "frame allocator: frame %u released by its pbuf but it is %s%s: frame accounting is broken",
	    idx, idx < f->count ? state_name(f->state[idx]) : "out of range",
	    idx < f->count && f->state[idx] == PASTE_FRAME_KEPT ? " (not held)" : "");
}

int paste_frames__recover_ref(struct paste_frames *f, uint32_t idx)
{
	if (unlikely(idx >= f->count))
		return -EINVAL;
	if (f->state[idx] == PASTE_FRAME_FREE) {
		f->state[idx] = PASTE_FRAME_KEPT;
		f->refs[idx] = 1;
		f->n[PASTE_FRAME_FREE]--;
		f->n[PASTE_FRAME_KEPT]++;
		f->stack_dirty = true;
		return 0;
	}
	return paste_frames__ref(f, idx);
}

void paste_frames__recover_done(struct paste_frames *f)
{
	if (!f->stack_dirty)
		return;
	f->nfree = 0;
	for (uint32_t i = f->count; i-- > 0;)
		if (f->state[i] == PASTE_FRAME_FREE)
			f->free_stack[f->nfree++] = i;
	f->stack_dirty = false;
}

/* Every entry of the free stack is a FREE frame and appears once. */
static bool audit_free_stack(const struct paste_frames *f)
{
	uint64_t *seen = calloc((f->count + 63) / 64, sizeof(*seen));
	bool ok = true;

	for (uint32_t k = 0; k < f->nfree && ok; k++) {
		uint32_t i = f->free_stack[k];

		ok = i < f->count && f->state[i] == PASTE_FRAME_FREE;
		if (ok && seen) { /* without memory, skip the duplicate check */
			ok = !(seen[i / 64] >> (i % 64) & 1);
			seen[i / 64] |= 1ull << (i % 64);
		}
	}
	free(seen);
	return ok;
}

bool paste_frames__audit(const struct paste_frames *f)
{
	uint32_t n[PASTE_FRAME_NSTATES] = {0};
	uint64_t total = 0;

	for (uint32_t i = 0; i < f->count; i++) {
		uint8_t s = f->state[i];

		if (s >= PASTE_FRAME_NSTATES)
			return false;
		if ((s == PASTE_FRAME_KEPT) != (f->refs[i] != 0))
			return false;
		if (f->held[i] && s != PASTE_FRAME_KEPT)
			return false;
		n[s]++;
	}
	for (int s = 0; s < PASTE_FRAME_NSTATES; s++) {
		if (n[s] != f->n[s])
			return false;
		total += f->n[s];
	}
	return total == f->count && f->nfree == f->n[PASTE_FRAME_FREE] && audit_free_stack(f);
}
