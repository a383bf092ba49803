/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * frames.h - the volatile frame allocator over the pool's frame area.
 *
 * Every frame is in exactly one state at any time, and the allocator counts frames per state, so
 * "no frame leaked" is a one-line check (counts add up and nothing is left in RX/TX). Frames come
 * back in any order (lwIP frees out-of-order segments late), so free frames are a LIFO stack of
 * indices: O(1) alloc and free, no per-packet allocation. Not persistent: at open it is rebuilt
 * from the persistent indexes (frames they name start KEPT, everything else FREE).
 */
#ifndef PASTE_FRAMES_H
#define PASTE_FRAMES_H

#include <stdbool.h>
#include <stdint.h>

enum paste_frame_state {
	PASTE_FRAME_FREE = 0, /* in the allocator */
	PASTE_FRAME_FILL,     /* on the fill ring: the kernel may write it */
	PASTE_FRAME_RX,       /* received: held by lwIP or the application */
	PASTE_FRAME_TX,       /* on the TX ring, until the completion ring returns it */
	PASTE_FRAME_KEPT,     /* named by a persistent reference (refcount in refs[]) */
	PASTE_FRAME_NSTATES,
};

struct paste_frames {
	uint32_t count;       /* frames in the area */
	uint32_t nfree;       /* entries on the free stack */
	uint32_t *free_stack; /* indices of FREE frames, top at nfree - 1 */
	uint8_t *state;       /* enum paste_frame_state per frame */
	uint16_t *refs;       /* kept-reference count per frame (KEPT only) */
	uint8_t *held;        /* KEPT frames: 1 while a received pbuf still holds it too */
	bool stack_dirty;     /* recovery marked FREE frames KEPT: rebuild the free stack */
	uint32_t n[PASTE_FRAME_NSTATES]; /* frames per state; sums to count */
};

/*
 * Set up for @count frames. @kept, if not NULL, is a bitmap (bit i = frame i) of frames that start
 * KEPT with one reference each. @return 0, -EINVAL (count 0), -ENOMEM.
 */
int paste_frames__init(struct paste_frames *f, uint32_t count, const uint64_t *kept);
void paste_frames__fini(struct paste_frames *f);

/* Take a FREE frame into state @to (not FREE). @return 0 with *idx set, -ENOSPC when none is free.
 */
int paste_frames__alloc(struct paste_frames *f, enum paste_frame_state to, uint32_t *idx);

/*
 * Move frame @idx from state @from to @to (to FREE pushes it on the free stack). @return 0, or
 * -EINVAL (and nothing changes) if @idx is out of range or the frame is not in @from: that catches
 * double frees and frames returned by the wrong path.
 */
int paste_frames__move(struct paste_frames *f, uint32_t idx, enum paste_frame_state from,
                       enum paste_frame_state to);

/*
 * Add a kept reference: RX or KEPT -> KEPT, refs+1. A frame kept while a received pbuf still holds
 * it remembers that (held), so it goes back to RX, not FREE, if every reference is dropped before
 * the pbuf is. @return 0, -EINVAL, -EOVERFLOW (65535 refs).
 */
int paste_frames__ref(struct paste_frames *f, uint32_t idx);
/* Drop a kept reference; at zero the frame becomes RX (still held) or FREE. @return 0 or -EINVAL.
 */
int paste_frames__unref(struct paste_frames *f, uint32_t idx);
/* The received pbuf holding frame @idx was freed: RX -> FREE, or KEPT stays KEPT (held cleared).
 * @return 0 or -EINVAL (the frame was not held for RX). */
int paste_frames__rx_done(struct paste_frames *f, uint32_t idx);

/* Recovery: one more reference named by a persistent index (FREE -> KEPT allowed). O(1). */
int paste_frames__recover_ref(struct paste_frames *f, uint32_t idx);
/* Recovery finished: rebuild the free stack from the states. */
void paste_frames__recover_done(struct paste_frames *f);

static inline uint32_t paste_frames__nr(const struct paste_frames *f, enum paste_frame_state s)
{
	return f->n[s];
}

/* Frame @idx holds received bytes a pbuf still holds: RX, or KEPT while held. A KEPT frame no pbuf
 * holds has only stored data (what was kept of it). */
static inline bool paste_frames__received(const struct paste_frames *f, uint32_t idx)
{
	return f->state[idx] == PASTE_FRAME_RX ||
	       (f->state[idx] == PASTE_FRAME_KEPT && f->held[idx]);
}

/* True when the per-state counts add up to count and agree with state[] (a full O(n) audit). */
bool paste_frames__audit(const struct paste_frames *f);

#endif /* PASTE_FRAMES_H */
