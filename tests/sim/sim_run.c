/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_run.c - one workload run with crash points, and the checks every recovered pool gets.
 *
 * A run creates a small pool, fills the unused region area and the frame area with random bytes
 * (so "zeroed before it is recorded" and "checksummed before it is trusted" are put to the test),
 * installs the tracker (sim_pmem.c) and drives its components with random operations in batches
 * that end in paste_pool__drain(). Operation ids are issued just before the library call that can
 * make an operation visible; a fence acknowledges everything issued before it.
 *
 * Crash points are hook call numbers drawn with a random gap. The tracker captures the image
 * inside the hook and the run snapshots (acked, issued); the image is verified as soon as the
 * library call in progress returns (no recovery runs re-entrantly inside the library), then the
 * workload goes on: one run yields many crash points without replaying it from the start.
 *
 * Verification of an image: write it to a fresh file, paste_pool__open() it (real recovery), the
 * pool-level checks (geometry, uuid, clean flag, region accounting), each component's check
 * against the model, and the frame accounting (the allocator's KEPT frames are exactly those the
 * recovered records and entries name, with those reference counts; everything else FREE). With
 * liveness on, the components then operate on the recovered pool, it is closed and reopened, and
 * the result must be exactly what they observed plus what they did.
 *
 * At the end of a run the working pool is closed (crash points can fall inside the close) and
 * reopened without a crash: everything must be there (a zero here also validates the model).
 *
 * Three ways past "one crash, one recovery": some opens of crash images are tracked themselves
 * (sim_interpose.c) and leave an image from inside their recovery, which must recover the same
 * (nested); after some points the run goes on from the recovered image as a second session
 * (adopt); and operations that compacted the kv index are replayed, same seeds, with a crash point
 * at each of their calls (the workload stream never depends on crash choices, so a replay makes
 * the same calls).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sim.h"

#define SIM_REGION_AREA (512ull << 10)
#define SIM_FRAMES      256u
#define SIM_FRAME_SIZE  2048u
#define SIM_POOL_SIZE   (4096ull + SIM_REGION_AREA + (uint64_t)SIM_FRAMES * SIM_FRAME_SIZE)

const char *const sim_model_names[SIM_NMODELS] = {"fenced-only", "random-evict"};
const char *const sim_break_names[SIM_NBREAKS] = {"none", "drain-noop", "skip-fence",
                                                  "lose-payload"};
const char *const sim_workload_names[SIM_NWORKLOADS] = {"pool", "log", "kv", "mixed"};

static unsigned reports; /* violation messages printed so far (all runs) */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- reporting ----------------------------------------------------------------------------- */

static const char *evict_name(const struct sim_image_info *in)
{
	static char buf[16];

	if (in->model != SIM_RANDOM_EVICT)
		return "none";
	if (in->evict_pct == SIM_EVICT_BUT_CLEARS)
		return "all but clears";
	if (in->evict_pct == SIM_EVICT_ONLY_CLEARS)
		return "only clears";
	snprintf(buf, sizeof(buf), "%u%%", in->evict_pct);
	return buf;
}

static void where(struct sim_run *r, char *buf, size_t len)
{
	const struct sim_crash *c = &r->crash;

	if (c->final)
		snprintf(buf, len, "%s run %u: clean reopen, %llu ops", sim_workload_names[r->wl],
		         r->run_no, (unsigned long long)c->issued);
	else
		snprintf(buf, len,
		         "%s/%s%s%s run %u%s: crash before hook call %llu (%s), evict %s, ops "
		         "acked %llu issued %llu%s",
		         sim_workload_names[r->wl], sim_model_names[c->img.model],
		         r->brk ? " break=" : "", r->brk ? sim_break_names[r->brk] : "", r->run_no,
		         r->replay ? " (replay)" : "", (unsigned long long)c->img.call,
		         c->img.at_drain ? "fence" : "flush", evict_name(&c->img),
		         (unsigned long long)c->acked, (unsigned long long)c->issued,
		         c->closing ? ", inside close" : "");
	if (r->nested) {
		size_t n = strlen(buf);

		snprintf(buf + n, len - n, "; then a crash inside its recovery before call %llu",
		         (unsigned long long)r->rec_pm.infos[0].call);
	}
}

void sim_violation(struct sim_run *r, const char *fmt, ...)
{
	char msg[512], at[256];
	va_list ap;

	r->point_viol++;
	if (reports >= r->cfg->max_reports && !r->cfg->verbose) {
		if (reports++ == r->cfg->max_reports && reports > 1)
			printf("(further violations are counted, not printed; --verbose prints "
			       "all)\n");
		return;
	}
	reports++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	where(r, at, sizeof(at));
	printf("VIOLATION [%s]: %s\n", at, msg);
}

void sim_debug(struct sim_run *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->cfg->verbose)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- operations ---------------------------------------------------------------------------- */

uint64_t sim_issue(struct sim_run *r)
{
	return r->issued++;
}

void sim_fence(struct sim_run *r)
{
	uint64_t issued = r->issued;

	paste_pool__drain(r->pool);
	r->acked = issued;
}

void sim_op_failed(struct sim_run *r, int err)
{
	if (err == -ENOSPC)
		r->st[SIM_FENCED_ONLY].enospc++;
}

void sim_region_name(struct sim_run *r, const char *name)
{
	for (unsigned i = 0; i < r->nregion_names; i++)
		if (!strcmp(r->region_names[i], name))
			return;
	if (r->nregion_names < SIM_MAX_REGIONS)
		r->region_names[r->nregion_names++] = name;
}

static void rx_release(struct sim_run *r)
{
	int err;

	if (!r->rx_open)
		return;
	r->rx_open = false;
	err = paste_frames__rx_done(r->frames, r->rx_frame);
	if (err) {
		sim_violation(r, "working pool: rx_done of frame %u failed (%d): frame accounting",
		              r->rx_frame, err);
		r->fatal = true;
	}
}

int sim_payload(struct sim_run *r, const void *bytes, uint32_t len, struct paste_ref *ref)
{
	uint8_t *dst;
	int err;

	if (r->rx_open && r->rx_off + len > r->frame_size)
		rx_release(r);
	if (!r->rx_open) {
		err = paste_frames__alloc(r->frames, PASTE_FRAME_RX, &r->rx_frame);
		if (err == -ENOSPC) {
			sim_fence(r); /* releases what fenced overwrites and truncates freed */
			err = paste_frames__alloc(r->frames, PASTE_FRAME_RX, &r->rx_frame);
		}
		if (err)
			return err;
		r->rx_open = true;
		r->rx_off = sim_below(&r->rng, 64); /* headers before the payload */
		if (r->rx_off + len > r->frame_size)
			r->rx_off = 0;
	}
	dst = r->base + r->frame_area_off + (uint64_t)r->rx_frame * r->frame_size + r->rx_off;
	memcpy(dst, bytes, len);
	paste_pool__flush(r->pool, dst, len);
	ref->off = (uint64_t)(dst - r->base);
	ref->len = len;
	ref->flags = 0;
	err = paste_pool__ref_get(r->pool, ref);
	if (err) {
		sim_violation(r, "working pool: ref_get of an RX frame failed (%d)", err);
		r->fatal = true;
		return err;
	}
	r->rx_off += len + sim_below(&r->rng, 24);
	if (sim_chance(&r->rng, 5))
		rx_release(r); /* a short segment ends the frame */
	return 0;
}

int sim_payload_on(struct paste_pool *pool, const void *bytes, uint32_t len, struct paste_ref *ref)
{
	struct paste_frames *f = paste_pool__frame_alloc(pool);
	struct paste_pool_info info;
	uint32_t idx;
	uint8_t *dst;
	int err;

	paste_pool__info(pool, &info, sizeof(info));
	err = paste_frames__alloc(f, PASTE_FRAME_RX, &idx);
	if (err)
		return err;
	dst = (uint8_t *)paste_pool__frames(pool) + (uint64_t)idx * info.frame_size;
	memcpy(dst, bytes, len);
	paste_pool__flush(pool, dst, len);
	ref->off = (uint64_t)(dst - (uint8_t *)paste_pool__base(pool));
	ref->len = len;
	ref->flags = 0;
	err = paste_pool__ref_get(pool, ref);
	paste_frames__rx_done(f, idx);
	return err;
}

/* ---- checks shared by the components ------------------------------------------------------- */

void sim_count_ref(struct sim_run *r, struct paste_pool *rec, const struct paste_ref *ref,
                   const char *what)
{
	uint32_t frame;

	if (!paste_pool__ref_in_frame(rec, ref, &frame)) {
		sim_violation(r, "%s names [%llu, +%u), not a range inside one frame", what,
		              (unsigned long long)ref->off, ref->len);
		return;
	}
	r->fc[frame]++;
}

const uint8_t *sim_ref_bytes(struct sim_run *r, struct paste_pool *rec, const struct paste_ref *ref,
                             const char *what)
{
	const uint8_t *p = paste_pool__ref_ptr(rec, ref);

	if (!p)
		sim_violation(r, "%s names [%llu, +%u), outside the pool", what,
		              (unsigned long long)ref->off, ref->len);
	return p;
}

static const char *state_name(unsigned s)
{
	static const char *const n[] = {"FREE", "FILL", "RX", "TX", "KEPT"};

	return s < PASTE_FRAME_NSTATES ? n[s] : "?";
}

/* The recovered allocator holds exactly the references the recovered indexes name. */
static void check_frames(struct sim_run *r, struct paste_pool *rec)
{
	const struct paste_frames *f = paste_pool__frame_alloc(rec);
	unsigned bad = 0;

	if (!paste_frames__audit(f))
		sim_violation(r, "frame allocator audit fails after recovery");
	for (uint32_t i = 0; i < f->count && i < r->frame_count; i++) {
		bool ok = r->fc[i] ? f->state[i] == PASTE_FRAME_KEPT && f->refs[i] == r->fc[i]
		                   : f->state[i] == PASTE_FRAME_FREE;

		if (ok)
			continue;
		if (bad++ < 3)
			sim_violation(r,
			              "frame %u is %s with %u references, the recovered indexes "
			              "name it %u times%s",
			              i, state_name(f->state[i]), f->refs[i], r->fc[i],
			              r->fc[i] ? " (free while referenced, or miscounted)"
			                       : " (lost: not free, nothing names it)");
	}
	if (bad > 3)
		sim_violation(r, "... %u frames wrong in all", bad);
	r->st[r->crash.img.model].frames += f->count;
}

/* Geometry, identity, the clean flag, and that the region area holds only known regions. */
static void check_pool(struct sim_run *r, struct paste_pool *rec)
{
	struct paste_pool_info in;
	uint64_t used = 0;

	paste_pool__info(rec, &in, sizeof(in));
	if (in.size != r->pool_size || in.frame_size != r->frame_size ||
	    in.frame_count != r->frame_count || memcmp(in.uuid, r->uuid, sizeof(in.uuid)))
		sim_violation(r, "recovered superblock differs: size %llu frames %u x %u",
		              (unsigned long long)in.size, in.frame_count, in.frame_size);
	if (r->crash.final && !in.was_clean)
		sim_violation(r, "a cleanly closed pool reopens as not clean");
	if (!r->crash.final && !r->crash.closing && in.was_clean)
		sim_violation(r, "the clean flag is set after a crash while the pool was open");
	for (unsigned i = 0; i < r->nregion_names; i++) {
		void *addr;
		uint64_t len;

		if (!paste_pool__find_region(rec, r->region_names[i], &addr, &len))
			used += len;
	}
	if (used != in.region_area_used)
		sim_violation(r,
		              "the region area has %llu bytes in use, the known regions found "
		              "account for %llu",
		              (unsigned long long)in.region_area_used, (unsigned long long)used);
}

static int open_quiet(struct sim_run *r, struct paste_pool **pool, const char *path)
{
	struct paste_pool_opts o = {.sz = sizeof(o)};
	struct sim_stats *st = &r->st[r->crash.img.model];
	uint64_t t0 = now_ns();
	int err = paste_pool__open(pool, path, &o);

	st->rec_ns += now_ns() - t0;
	st->recoveries++;
	if (err)
		sim_violation(r, "paste_pool__open fails on the %s image: %s: %s",
		              r->crash.final ? "closed" : "crash", strerror(-err),
		              paste_last_error());
	return err;
}

static void check_components(struct sim_run *r, struct paste_pool *rec, bool again)
{
	memset(r->fc, 0, sizeof(*r->fc) * r->frame_count);
	for (unsigned i = 0; i < r->nready; i++) {
		if (!again)
			r->comp[i]->check(r, rec);
		else if (r->comp[i]->recheck)
			r->comp[i]->recheck(r, rec);
	}
	check_frames(r, rec);
}

static int write_image(const char *path, const uint8_t *buf, uint64_t len);
static void check_opened(struct sim_run *r, struct paste_pool *rec, const char *path);
static void check_recovered(struct sim_run *r, const char *path, bool may_nest);

/* The recovery of a crash image was itself interrupted: recover that image, check it the same. */
static void check_nested(struct sim_run *r)
{
	int err = write_image(r->nested_path, r->rec_pm.images[0], r->rec_pm.size);

	if (err) {
		fprintf(stderr, "paste-powerfail: cannot write %s: %s\n", r->nested_path,
		        strerror(-err));
		return;
	}
	r->nested = true;
	check_recovered(r, r->nested_path, false);
	r->nested = false;
	r->st[r->crash.img.model].nested++;
	unlink(r->nested_path);
}

/*
 * Open @path (recovery), check it, and with liveness on operate, reopen and recheck. With
 * @may_nest, some opens are tracked and also leave an image from inside their recovery.
 */
static void check_recovered(struct sim_run *r, const char *path, bool may_nest)
{
	bool nest = may_nest && sim_chance(&r->crash_rng, r->cfg->nested_pct), captured = false;
	struct paste_pool *rec;
	int err;

	if (nest)
		sim_interpose__arm(&r->rec_pm, r->crash.img.model, r->crash.img.evict_pct,
		                   sim_rand(&r->crash_rng));
	err = open_quiet(r, &rec, path);
	if (nest)
		captured = sim_interpose__disarm();
	if (!err)
		check_opened(r, rec, path);
	if (captured && !r->point_viol)
		check_nested(r);
}

static void check_opened(struct sim_run *r, struct paste_pool *rec, const char *path)
{
	check_pool(r, rec);
	check_components(r, rec, false);
	if (r->cfg->liveness && !r->point_viol) {
		for (unsigned i = 0; i < r->nready; i++)
			if (r->comp[i]->extend)
				r->comp[i]->extend(r, rec);
		paste_pool__close(&rec);
		if (open_quiet(r, &rec, path))
			return;
		check_components(r, rec, true);
	}
	paste_pool__close(&rec);
}

/* ---- crash points -------------------------------------------------------------------------- */

/* Model and eviction chance of the next image. */
static void next_model(struct sim_run *r)
{
	static const unsigned pcts[] = {
	    2, 10, 50, 90, 100, SIM_EVICT_BUT_CLEARS, SIM_EVICT_ONLY_CLEARS};
	enum sim_model m;

	do
		m = (enum sim_model)(r->next_model++ % SIM_NMODELS);
	while (!(r->models & 1u << m));
	r->cur_model = m;
	r->cur_pct = pcts[sim_below(&r->crash_rng, ARRAY_SIZE(pcts))];
	r->pm.model = r->cur_model;
	r->pm.evict_pct = r->cur_pct;
}

static void arm_next(struct sim_run *r, bool first)
{
	uint64_t at = r->pm.calls + 1 + sim_below(&r->crash_rng, 2 * r->gap);

	if (first && sim_chance(&r->crash_rng, 15))
		at = 1 + sim_below(&r->crash_rng, 24); /* inside index creation */
	if (!r->points_left || r->replay)
		at = 0;
	sim_pmem__arm(&r->pm, at, r->cur_model, r->cur_pct);
}

static void on_capture(void *arg)
{
	struct sim_run *r = arg;
	struct sim_crash *c = &r->crashes[r->pm.ncap - 1];

	c->acked = r->acked;
	c->issued = r->issued;
	c->closing = r->closing;
	c->final = false;
	c->img = r->pm.infos[r->pm.ncap - 1];
	next_model(r);
}

static int write_image(const char *path, const uint8_t *buf, uint64_t len)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int err = w < 0 ? -errno : -EIO;

			close(fd);
			return err;
		}
		buf += w;
		len -= (uint64_t)w;
	}
	return close(fd) ? -errno : 0;
}

/* Verify image @i of the tracker (snapshot r->crashes[i]). @return true without violations. */
static bool verify_point(struct sim_run *r, unsigned i)
{
	struct sim_stats *st;
	int err;

	r->crash = r->crashes[i];
	st = &r->st[r->crash.img.model];
	r->point_viol = 0;
	err = write_image(r->crash_path, r->pm.images[i], r->pm.size);
	if (err) {
		fprintf(stderr, "paste-powerfail: cannot write %s: %s\n", r->crash_path,
		        strerror(-err));
		r->fatal = true;
		return false;
	}
	sim_debug(r,
	          "  point: call %llu (%s) %s evict %s: acked %llu issued %llu, %llu lines "
	          "pending (%llu evicted), %llu dirty words (%llu evicted)%s",
	          (unsigned long long)r->crash.img.call, r->crash.img.at_drain ? "fence" : "flush",
	          sim_model_names[r->crash.img.model], evict_name(&r->crash.img),
	          (unsigned long long)r->crash.acked, (unsigned long long)r->crash.issued,
	          (unsigned long long)r->crash.img.lines_pending,
	          (unsigned long long)r->crash.img.lines_evicted,
	          (unsigned long long)r->crash.img.words_dirty,
	          (unsigned long long)r->crash.img.words_evicted, r->replay ? " (replay)" : "");
	check_recovered(r, r->crash_path, true);
	unlink(r->crash_path);
	st->points++;
	st->replayed += r->replay;
	st->violations += r->point_viol;
	st->failed += r->point_viol != 0;
	st->lines_evicted += r->crash.img.lines_evicted;
	st->words_evicted += r->crash.img.words_evicted;
	r->points_left--;
	return r->point_viol == 0;
}

/* Verify the images the tracker captured (between library calls, never inside one). @return true
 * if the last one was verified without violations. */
static bool after(struct sim_run *r)
{
	unsigned n = r->pm.ncap;
	bool ok = false;

	if (!n)
		return false;
	r->pm.ncap = 0;
	for (unsigned i = 0; i < n && r->points_left && !r->fatal; i++)
		ok = verify_point(r, i);
	r->last_image = n - 1;
	arm_next(r, false);
	return ok;
}

/* ---- one run ------------------------------------------------------------------------------- */

static void track(struct sim_run *r)
{
	r->pm.on_capture = on_capture;
	r->pm.capture_arg = r;
}

static void learn_geometry(struct sim_run *r)
{
	struct paste_pool_info in;

	paste_pool__info(r->pool, &in, sizeof(in));
	r->frames = paste_pool__frame_alloc(r->pool);
	r->base = paste_pool__base(r->pool);
	r->pool_size = in.size;
	r->frame_area_off = in.frame_area_off;
	r->region_area_off = in.region_area_off;
	r->region_area_size = in.region_area_size;
	r->frame_size = in.frame_size;
	r->frame_count = in.frame_count;
	memcpy(r->uuid, in.uuid, sizeof(r->uuid));
}

/* Random bytes where nothing was written yet: the free region area and every frame. */
static void prefill(struct sim_run *r)
{
	struct paste_pool_info in;

	paste_pool__info(r->pool, &in, sizeof(in));
	sim_fill(&r->rng, r->base + in.region_area_off + in.region_area_used,
	         in.region_area_size - in.region_area_used);
	sim_fill(&r->rng, r->base + in.frame_area_off, (uint64_t)in.frame_count * in.frame_size);
}

static int open_work(struct sim_run *r)
{
	struct paste_pool_opts o = {.sz = sizeof(o),
	                            .size = SIM_POOL_SIZE,
	                            .frame_size = SIM_FRAME_SIZE,
	                            .region_area = SIM_REGION_AREA,
	                            .must_create = true};
	int err;

	unlink(r->work_path);
	err = paste_pool__open(&r->pool, r->work_path, &o);
	if (err) {
		fprintf(stderr, "paste-powerfail: cannot create %s: %s\n", r->work_path,
		        paste_last_error());
		return err;
	}
	learn_geometry(r);
	prefill(r);
	return 0;
}

/*
 * A second session: drop the working pool and go on from the crash image just verified (still in
 * the tracker), recovered again, with what its check sees as the acknowledged state. Crashes of
 * this session then test what recovery left behind (new log epoch, rebuilt slot maps, ...).
 */
static void adopt(struct sim_run *r)
{
	struct paste_pool_opts o = {.sz = sizeof(o)};
	uint64_t op;
	int err;

	r->pm.crash_at = 0;
	r->crash = r->crashes[r->last_image];
	r->rx_open = false; /* its frame belongs to the pool that goes away */
	paste_pool__close(&r->pool);
	err = write_image(r->work_path, r->pm.images[r->last_image], r->pm.size);
	if (!err)
		err = paste_pool__open(&r->pool, r->work_path, &o);
	if (err) {
		sim_violation(r, "the crash image does not open a second time: %s", strerror(-err));
		r->fatal = true;
		return;
	}
	learn_geometry(r);
	r->point_viol = 0;
	memset(r->fc, 0, sizeof(*r->fc) * r->frame_count);
	for (unsigned i = 0; i < r->nready; i++)
		r->comp[i]->check(r, r->pool);
	if (r->point_viol) {
		sim_violation(r, "recovering the same crash image again gives another result");
		r->fatal = true;
		return;
	}
	op = sim_issue(r);
	for (unsigned i = 0; i < r->nready; i++)
		r->comp[i]->rebase(r, r->pool, op);
	r->acked = r->issued;
	if (sim_pmem__init(&r->pm, r->pool, r->brk, sim_rand(&r->crash_rng))) {
		r->fatal = true;
		return;
	}
	track(r);
	arm_next(r, false);
	r->adopted = true;
	r->st[SIM_FENCED_ONLY].sessions++;
	sim_debug(r, "  new session from the crash image (op %llu)", (unsigned long long)op);
}

/* After an operation: verify a captured image; sometimes go on from it, more often when its
 * recovery had to cut torn log records (what is left behind them is what a second session can
 * trip over). */
static void step_done(struct sim_run *r)
{
	uint64_t cut = sim_events.log_cut;
	bool ok = after(r);
	unsigned pct = sim_events.log_cut != cut ? 10 * r->cfg->adopt_pct : r->cfg->adopt_pct;

	if (ok && !r->crash.closing && !r->fatal && !r->replay && sim_chance(&r->crash_rng, pct))
		adopt(r);
}

/* The operation spanning calls (@c0, now] was rare (or compacted the kv index): note it for a
 * replay. */
static void note_rare(struct sim_run *r, uint64_t c0, uint64_t k0)
{
	bool compaction = sim_events.compactions != k0;
	struct sim_range *g = &r->ranges[r->nranges];

	if (!(compaction || r->rare) || r->replay || r->adopted || r->nranges == SIM_MAX_RANGES ||
	    r->pm.calls == c0) {
		r->rare = false;
		return;
	}
	r->rare = false;
	g->lo = c0 + 1;
	g->hi = r->pm.calls + 1;
	if (g->hi > g->lo + SIM_RANGE_CALLS)
		g->hi = g->lo + SIM_RANGE_CALLS;
	g->compaction = compaction;
	r->nranges++;
}

/* Replay: crash at every call of the current range; @return false when all were done. */
static bool replay_next(struct sim_run *r, uint64_t k0)
{
	const struct sim_range *g = &r->ranges[r->cur_range];

	if (r->pm.calls + 1 < g->hi) /* hi is one past the op's last call */
		return true;
	if (g->compaction) {
		r->ranges_done++;
		r->range_events += sim_events.compactions != k0;
		if (sim_events.compactions == k0)
			sim_debug(r, "  replay: calls %llu..%llu did not compact this time",
			          (unsigned long long)g->lo, (unsigned long long)g->hi);
	}
	if (++r->cur_range >= r->nranges)
		return false;
	sim_pmem__dense(&r->pm, r->ranges[r->cur_range].lo, r->ranges[r->cur_range].hi);
	return true;
}

/* After an operation (or a component's setup) that started at call @c0 with @k0 compactions. */
static void op_done(struct sim_run *r, uint64_t c0, uint64_t k0)
{
	note_rare(r, c0, k0);
	if (r->replay && !r->replay_over && !replay_next(r, k0))
		r->replay_over = true;
}

static const struct sim_component *pick(struct sim_run *r)
{
	static const unsigned weight[] = {45, 40, 15}; /* log, kv, regions in the mixed workload */
	unsigned x = sim_below(&r->rng, 100), acc = 0;

	if (r->ncomp == 1)
		return r->comp[0];
	for (unsigned i = 0; i < r->ncomp; i++) {
		acc += weight[i];
		if (x < acc)
			return r->comp[i];
	}
	return r->comp[r->ncomp - 1];
}

static void run_ops(struct sim_run *r)
{
	unsigned nops = 40 + sim_below(&r->rng, 360), batch = 1;

	for (unsigned i = 0; i < nops && !r->fatal && r->points_left; i++) {
		uint64_t c0 = r->pm.calls, k0 = sim_events.compactions;

		if (pick(r)->step(r))
			r->fatal = true;
		op_done(r, c0, k0);
		step_done(r);
		if (r->replay_over)
			break;
		if (--batch == 0) {
			sim_fence(r);
			step_done(r);
			batch = sim_chance(&r->rng, 10) ? 1 + sim_below(&r->rng, 40)
			                                : 1 + sim_below(&r->rng, 8);
		}
	}
}

static void close_work(struct sim_run *r)
{
	rx_release(r);
	sim_fence(r);
	after(r);
	r->closing = true;
	paste_pool__close(&r->pool);
	r->closing = false;
	after(r);
}

static int run_once(struct sim_run *r)
{
	uint32_t *fc;
	int err;

	r->issued = r->acked = 0;
	r->nregion_names = 0;
	r->adopted = false;
	r->cur_range = 0;
	r->range_events = r->ranges_done = 0;
	r->replay_over = r->rare = false;
	if (!r->replay)
		r->nranges = 0;
	r->rx_open = false;
	r->fatal = false;
	err = open_work(r);
	if (err)
		return err;
	fc = calloc(r->frame_count, sizeof(*fc));
	err = fc ? sim_pmem__init(&r->pm, r->pool, r->brk, sim_rand(&r->crash_rng)) : -ENOMEM;
	if (err) { /* the tracker's buffers are freed with the run */
		free(fc);
		paste_pool__close(&r->pool);
		return err;
	}
	r->fc = fc;
	track(r);
	arm_next(r, true);
	if (r->replay)
		sim_pmem__dense(&r->pm, r->ranges[0].lo, r->ranges[0].hi);
	for (r->nready = 0; r->nready < r->ncomp && !r->fatal;) {
		uint64_t c0 = r->pm.calls, k0 = sim_events.compactions;

		if (r->comp[r->nready++]->setup(r))
			r->fatal = true;
		r->rare = sim_chance(&r->crash_rng, 20); /* index creation, densely, in some runs */
		op_done(r, c0, k0);
		after(r);
	}
	sim_fence(r);
	after(r);
	if (!r->replay_over)
		run_ops(r);
	close_work(r);
	if (r->pm.stray)
		sim_violation(r, "%llu flushes outside the pool", (unsigned long long)r->pm.stray);
	memset(&r->crash, 0, sizeof(r->crash));
	r->crash.acked = r->crash.issued = r->issued;
	r->crash.final = true;
	r->point_viol = 0;
	check_recovered(r, r->work_path, false);
	r->st[SIM_FENCED_ONLY].clean_fail += r->point_viol;
	for (unsigned i = 0; i < r->ncomp; i++)
		r->comp[i]->fini(r);
	free(r->fc);
	r->fc = NULL;
	unlink(r->work_path);
	return r->fatal ? -EIO : 0;
}

static void set_components(struct sim_run *r)
{
	r->ncomp = 0;
	if (r->wl == SIM_WL_LOG || r->wl == SIM_WL_MIXED)
		r->comp[r->ncomp++] = &sim_log_component;
	if (r->wl == SIM_WL_KV || r->wl == SIM_WL_MIXED)
		r->comp[r->ncomp++] = &sim_kv_component;
	if (r->wl == SIM_WL_POOL || r->wl == SIM_WL_MIXED)
		r->comp[r->ncomp++] = &sim_region_component;
}

/*
 * Each run's streams depend only on (seed, workload, break mode, run number). A replay gets the
 * same workload stream (and getrandom() stream: same uuid, same hash seed), so it makes the same
 * calls, and another stream for its crash choices.
 */
static uint64_t mix(uint64_t a, uint64_t b)
{
	struct sim_rng t = {a ^ b * 0x9e3779b97f4a7c15ull};

	return sim_rand(&t);
}

static void seed_run(struct sim_run *r, bool replay)
{
	r->rng.s = mix(mix(mix(r->cfg->seed, 1 + r->wl), 1 + r->brk), 1 + r->run_no);
	r->crash_rng.s = sim_rand(&r->rng) ^ 0x5deece66dull ^ (replay ? 0x9e3779b97f4a7c15ull : 0);
	sim_interpose__seed(sim_rand(&r->rng));
	/* Mostly sparse crash points; some runs take nearly every call (dense coverage of
	 * whatever multi-step operation they contain). */
	r->gap = sim_chance(&r->crash_rng, 10) ? 1 : 2 + sim_below(&r->crash_rng, 48);
}

int sim_run_workload(const struct sim_cfg *cfg, enum sim_workload wl, enum sim_break brk,
                     uint64_t points, unsigned models, struct sim_stats st[SIM_NMODELS])
{
	struct sim_run *r = calloc(1, sizeof(*r));
	unsigned max_runs = (unsigned)(points * 4 + 16);
	int err = 0;

	if (!r)
		return -ENOMEM;
	r->cfg = cfg;
	r->st = st;
	r->wl = wl;
	r->brk = brk;
	r->models = models;
	r->points_left = points;
	snprintf(r->work_path, sizeof(r->work_path), "%s/paste-sim-%d-work.pool", cfg->dir,
	         (int)getpid());
	snprintf(r->crash_path, sizeof(r->crash_path), "%s/paste-sim-%d-crash.pool", cfg->dir,
	         (int)getpid());
	snprintf(r->nested_path, sizeof(r->nested_path), "%s/paste-sim-%d-nested.pool", cfg->dir,
	         (int)getpid());
	set_components(r);
	next_model(r);
	for (r->run_no = 0; r->points_left && r->run_no < max_runs; r->run_no++) {
		seed_run(r, false);
		sim_debug(r, "%s run %u: crash gap ~%u calls, %llu points left",
		          sim_workload_names[wl], r->run_no, r->gap,
		          (unsigned long long)r->points_left);
		err = run_once(r);
		st[SIM_FENCED_ONLY].runs++;
		if (!err && r->nranges && r->points_left) {
			seed_run(r, true);
			r->replay = true;
			sim_debug(r, "%s run %u: replay of %u rare operations",
			          sim_workload_names[wl], r->run_no, r->nranges);
			err = run_once(r);
			r->replay = false;
			st[SIM_FENCED_ONLY].replay_miss += r->ranges_done - r->range_events;
		}
		if (err)
			break;
	}
	unlink(r->crash_path);
	sim_pmem__fini(&r->pm);
	sim_pmem__fini(&r->rec_pm);
	free(r);
	return err;
}
