/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim.h - the power-failure simulator (paste-powerfail), shared by its files.
 *
 * The simulator runs seeded workloads on a real pool whose persistence hook (pool_internal.h,
 * struct paste_pmem_ops) it has replaced. Stores go to the pool's own mapping (the "working
 * image"); a flush snapshots the 64-byte lines it covers into a pending set and a fence applies
 * that set to a private "shadow" copy of the file (the media). At a crash point, chosen as a hook
 * call number, the media image is built (shadow, plus under the random-evict model a random subset
 * of pending lines and dirty 8-byte words), written to a fresh /dev/shm file and opened with
 * paste_pool__open(): the library's real recovery runs on it. The components (log, kv, regions)
 * then compare what was recovered with a model of the operations that were acknowledged (fenced)
 * or in flight at the crash.
 *
 *   sim_pmem.c    the persistence tracker: pending lines, shadow, crash images, broken modes
 *   sim_run.c     one workload run: pool setup, op ids and acknowledgements, crash verification
 *   sim_log.c     the log component (appends, truncates, payload in frames)
 *   sim_kv.c      the key-value component (puts, overwrites, deletes)
 *   sim_region.c  the pool's own regions and the superblock (no index needed)
 *   sim_bench.c   recovery time against index size
 *   sim_probe.c   targeted searches for one crash state (kv bucket array without an empty bucket)
 *   sim_kvapp.c   paste-kv's object and undo-log protocols on three kv indexes (--probe kvapp)
 *   sim_forward.c paste-kv --queues' forwarding protocol, model-checked under crashes
 *   sim_tierpub.c paste-wal --queues' capacity tier: publish order and peer reads, model-checked
 *   sim_seen.c    the visited-state set of the model checks (forward, tierpub)
 *   sim_interpose.c  crash points inside recovery; deterministic getrandom()
 *   sim_main.c    command line, budget per workload and model, self-check, summary
 */
#ifndef PASTE_SIM_H
#define PASTE_SIM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <paste/index.h>
#include <paste/paste.h>
#include <paste/pool.h>

#include "pool_internal.h"

/* ---- seeded random numbers (splitmix64: one word of state, good enough, reproducible) ---- */

struct sim_rng {
	uint64_t s;
};

static inline uint64_t sim_rand(struct sim_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint32_t sim_below(struct sim_rng *r, uint32_t n)
{
	return (uint32_t)(sim_rand(r) % n);
}

static inline bool sim_chance(struct sim_rng *r, unsigned pct)
{
	return sim_below(r, 100) < pct;
}

void sim_fill(struct sim_rng *r, void *buf, size_t len);

/* ---- models, broken modes, workloads ------------------------------------------------------ */

/* What may reach media besides fenced flushes. */
enum sim_model {
	SIM_FENCED_ONLY,  /* nothing unfenced: media == shadow */
	SIM_RANDOM_EVICT, /* a random subset of pending lines and dirty 8-byte words also got there
	                   */
	SIM_NMODELS,
};

/* Deliberately broken persistence, to show that the simulator notices (self-check). */
enum sim_break {
	SIM_BREAK_NONE,
	SIM_BREAK_DRAIN_NOOP,   /* fences apply nothing: flushed lines never reach media */
	SIM_BREAK_SKIP_FENCE,   /* every 8th fence does nothing (its lines wait for the next one) */
	SIM_BREAK_LOSE_PAYLOAD, /* flushes of the frame area (payload bytes) are dropped */
	SIM_NBREAKS,
};

enum sim_workload {
	SIM_WL_POOL,  /* superblock and named regions only */
	SIM_WL_LOG,   /* log appends and truncates */
	SIM_WL_KV,    /* key-value puts, overwrites, deletes */
	SIM_WL_MIXED, /* log + kv + regions in one pool, interleaved */
	SIM_NWORKLOADS,
};

extern const char *const sim_model_names[SIM_NMODELS];
extern const char *const sim_break_names[SIM_NBREAKS];
extern const char *const sim_workload_names[SIM_NWORKLOADS];

/* ---- the persistence tracker (sim_pmem.c) ----------------------------------------------- */

#define SIM_LINE              64u
#define SIM_EVICT_BUT_CLEARS  255u /* evict_pct: every dirty word except those stored as zero */
#define SIM_EVICT_ONLY_CLEARS 254u /* evict_pct: only the dirty words stored as zero */
#define SIM_MAX_CAPTURES      64   /* images one library call can leave (dense replays) */

struct sim_line {
	uint64_t off; /* from the start of the pool, a multiple of SIM_LINE */
	uint8_t data[SIM_LINE];
};

/* What one crash image was made of (filled at capture). */
struct sim_image_info {
	uint64_t call;          /* the hook call the crash was taken before (1-based) */
	bool at_drain;          /* that call was a fence (else a flush) */
	enum sim_model model;   /* eviction model of this image */
	unsigned evict_pct;     /* random-evict: chance for each pending line / dirty word, or
	                           SIM_EVICT_BUT_CLEARS / SIM_EVICT_ONLY_CLEARS */
	uint64_t lines_pending; /* flushed but not fenced at the crash */
	uint64_t lines_evicted; /* of those, written to the image */
	uint64_t words_dirty;   /* 8-byte words of the working image that differ from the shadow */
	uint64_t words_evicted; /* of those, written to the image */
};

/*
 * One tracker per working pool. Design: the shadow is the media; the pending set is an array of
 * line snapshots in flush order (a line flushed twice appears twice: the later copy wins, as a
 * later write-back would); a fence applies the array in order. Everything is in pool offsets.
 */
struct sim_pmem {
	uint8_t *base;    /* the working image: the pool's mapping */
	uint64_t size;    /* bytes tracked: the pool size */
	uint8_t *shadow;  /* the media, as fences left it */
	uint64_t bufsize; /* bytes allocated for the shadow and each image */
	struct sim_line *pend;
	size_t npend, cap;
	uint64_t calls;              /* flush + drain calls so far */
	uint64_t drains;             /* drain calls so far */
	uint64_t crash_at;           /* capture before this call (0: none armed) */
	uint64_t dense_lo, dense_hi; /* and before every call in [lo, hi) (replays) */
	bool reservoir; /* instead: capture before call i with probability 1/i, into images[0] (the
	                   image left is one of the calls, uniformly, without knowing their number)
	                 */
	/* Captured images waiting to be verified, in call order. */
	uint8_t *images[SIM_MAX_CAPTURES];
	struct sim_image_info infos[SIM_MAX_CAPTURES];
	unsigned ncap;
	enum sim_model model;
	unsigned evict_pct;
	enum sim_break brk;
	uint64_t frame_area_off; /* SIM_BREAK_LOSE_PAYLOAD drops flushes from here on */
	uint64_t stray;          /* flushes outside the pool (never expected) */
	struct sim_rng rng;      /* eviction choices */
	struct sim_image_info info;
	void (*on_capture)(void *arg); /* the run snapshots its model here */
	void *capture_arg;
};

/* Take over @pool's persistence: shadow = the pool's current contents. @return 0 or -ENOMEM. */
int sim_pmem__init(struct sim_pmem *pm, struct paste_pool *pool, enum sim_break brk, uint64_t seed);
/* Free the buffers (a tracker is reusable until then: attach/init keep them). */
void sim_pmem__fini(struct sim_pmem *pm);
/* Track the mapping [@base, @base + @size) without a pool (recovery's own writes). */
int sim_pmem__attach(struct sim_pmem *pm, void *base, uint64_t size, uint64_t frame_area_off,
                     enum sim_break brk, uint64_t seed);
void sim_pmem__flush(struct sim_pmem *pm, const void *addr, size_t len);
void sim_pmem__drain(struct sim_pmem *pm);

/*
 * Crash points inside recovery (sim_interpose.c). Recovery runs inside paste_pool__open(), before
 * a hook can be installed, through libpmem's pmem_flush/pmem_drain; the simulator interposes those
 * symbols. Arm before an open: the next pmem_map_file() is tracked (reservoir capture with @model)
 * until disarm, which @return true if an image was captured (in @pm->images[0]).
 */
void sim_interpose__arm(struct sim_pmem *pm, enum sim_model model, unsigned evict_pct,
                        uint64_t seed);
bool sim_interpose__disarm(void);
/* Restart the stream the interposed getrandom() serves (uuids, hash seeds) from @seed. */
void sim_interpose__seed(uint64_t seed);
/* Capture a crash image before hook call @at (> calls so far) with @model. */
void sim_pmem__arm(struct sim_pmem *pm, uint64_t at, enum sim_model model, unsigned evict_pct);
/* Also capture before every call in [@lo, @hi). */
void sim_pmem__dense(struct sim_pmem *pm, uint64_t lo, uint64_t hi);
/* Capture an image of the state right now (between calls), with the tracker's model. */
void sim_pmem__capture_now(struct sim_pmem *pm);

/* ---- a run: one workload on one pool, with crash points (sim_run.c) ----------------------- */

/* Counters of one (workload, model) cell of the summary. */
struct sim_stats {
	uint64_t points;     /* crash points verified */
	uint64_t failed;     /* of those, with at least one violation */
	uint64_t violations; /* invariant violations in all */
	uint64_t recoveries; /* paste_pool__open() runs on crash images and reopens */
	uint64_t records;    /* log records compared */
	uint64_t keys;       /* kv keys compared */
	uint64_t regions;    /* regions compared */
	uint64_t frames;     /* frames whose state and reference count were compared */
	uint64_t runs;       /* workload runs */
	uint64_t clean_fail; /* violations at the clean reopen at the end of a run */
	uint64_t rec_ns;     /* time spent in paste_pool__open() on crash images */
	uint64_t enospc;     /* operations refused for space (not violations) */
	uint64_t nested;     /* crash images taken inside the recovery of a crash image */
	uint64_t sessions;   /* times a run went on from a recovered crash image */
	uint64_t replayed;   /* crash points taken at every call of a rare operation, in replays */
	uint64_t
	    replay_miss;  /* replayed operations that did not do the same again (nondeterminism) */
	uint64_t kv_over; /* recovered kv indexes holding more keys than their capacity (a note) */
	uint64_t lines_evicted, words_evicted;
};

/* What the library reported through its print callback (evidence of the paths exercised). */
struct sim_events {
	uint64_t compactions; /* kv bucket-array compactions */
	uint64_t sb_backup;   /* opens that found a torn superblock and took the backup */
	uint64_t log_cut;     /* log recoveries that cut torn or invalid records */
	uint64_t kv_dropped;  /* kv recoveries that dropped torn updates */
	uint64_t errors;      /* ERROR messages */
};

extern struct sim_events sim_events;

struct sim_cfg {
	uint64_t points;
	uint64_t seed;
	unsigned workloads; /* bit per enum sim_workload */
	unsigned models;    /* bit per enum sim_model */
	enum sim_break brk;
	bool verbose;
	bool liveness;       /* after each check: operate on the recovered pool, reopen, recheck */
	unsigned nested_pct; /* crash points that also crash inside their recovery (percent) */
	unsigned adopt_pct;  /* crash points after which the run goes on from the recovered image */
	unsigned max_reports; /* violation messages printed (the rest only counted) */
	const char *dir;      /* where pool files go (/dev/shm) */
};

struct sim_run;

/* A part of the workload that owns some persistent state and a model of it. */
struct sim_component {
	const char *name;
	int (*setup)(struct sim_run *r); /* after the hook is installed: create the index */
	int (*step)(struct sim_run *r);  /* one random operation; 0 or a fatal -errno */
	/* Compare the recovered pool with the model at r->crash (acked/issued); count the frames
	 * the recovered state names into r->fc. */
	void (*check)(struct sim_run *r, struct paste_pool *rec);
	/* Liveness: operate on the recovered pool (after a clean check), then recheck exactly after
	 * a clean reopen. Optional. */
	void (*extend)(struct sim_run *r, struct paste_pool *rec);
	void (*recheck)(struct sim_run *r, struct paste_pool *rec);
	/* The run goes on from the recovered pool @pool (checked just before): what that check saw
	 * becomes the acknowledged state, as operation @op; take the recovered index handle. */
	void (*rebase)(struct sim_run *r, struct paste_pool *pool, uint64_t op);
	void (*fini)(struct sim_run *r);
};

/* The model snapshot taken at a crash: operations [0, acked) were fenced, [acked, issued) were in
 * flight (issued, not yet fenced), later ones did not exist yet. */
struct sim_crash {
	uint64_t acked, issued;
	bool closing; /* inside paste_pool__close(): the clean flag may have reached media */
	bool final;   /* the clean reopen at the end of a run (not a crash) */
	struct sim_image_info img;
};

#define SIM_MAX_COMPONENTS 3
#define SIM_MAX_RANGES     8  /* rare operations replayed per run */
#define SIM_RANGE_CALLS    48 /* crash points per replayed operation, at most */
#define SIM_MAX_REGIONS    PASTE_POOL_MAX_REGIONS

struct sim_run {
	const struct sim_cfg *cfg;
	struct sim_stats *st; /* [SIM_NMODELS] of this workload */
	enum sim_workload wl;
	enum sim_break brk;
	unsigned run_no;
	uint64_t points_left; /* crash points this run may still take */
	unsigned models;      /* models to alternate between */
	unsigned next_model;
	enum sim_model cur_model; /* model and eviction chance of the next image */
	unsigned cur_pct;
	unsigned gap;             /* mean distance between crash points, in hook calls */
	struct sim_rng rng;       /* workload choices */
	struct sim_rng crash_rng; /* crash points, models, eviction, liveness: never the workload */
	char work_path[128], crash_path[128], nested_path[128];

	struct paste_pool *pool;
	struct paste_frames *frames;
	uint8_t *base;
	uint64_t pool_size, frame_area_off, region_area_off, region_area_size;
	uint32_t frame_size, frame_count;
	uint8_t uuid[16];
	struct sim_pmem pm;

	uint64_t issued, acked; /* operation ids: [0, acked) fenced, [acked, issued) in flight */
	bool closing;
	struct sim_crash crash;                     /* the point being verified */
	struct sim_crash crashes[SIM_MAX_CAPTURES]; /* snapshots of the images in the tracker */
	unsigned last_image;                        /* the image adopt() goes on from */
	/* Rare operations (kv compactions, region creations, some index creations) get a crash
	 * point at every call: the run records their call ranges and is replayed (same seeds, so
	 * the same calls) with dense crash points. */
	bool replay, adopted, replay_over;
	bool rare; /* a component says the operation in progress is a rare one */
	struct sim_range {
		uint64_t lo, hi; /* hook calls [lo, hi) */
		bool compaction; /* it compacted the kv index (the replay must again) */
	} ranges[SIM_MAX_RANGES];
	unsigned nranges, cur_range;
	uint64_t ranges_done,
	    range_events;       /* replayed compactions, and those that compacted again */
	struct sim_pmem rec_pm; /* tracks the recovery of a crash image (sim_interpose.c) */
	bool nested;            /* checking an image taken inside that recovery */

	bool rx_open; /* the RX frame payload is being carved from */
	uint32_t rx_frame, rx_off;

	const struct sim_component *comp[SIM_MAX_COMPONENTS];
	unsigned ncomp;
	unsigned nready; /* components set up so far (the others have no state to check) */
	struct sim_log *log;
	struct sim_kv *kv;
	struct sim_regions *reg;
	const char *region_names[SIM_MAX_REGIONS]; /* every region a component may create */
	unsigned nregion_names;

	uint32_t *fc;        /* per frame: references the recovered indexes name */
	unsigned point_viol; /* violations at the current crash point */
	bool fatal;          /* the workload cannot go on (reported) */
};

/* Run workload @wl until @points crash points were verified (or one run if @points is 0). */
int sim_run_workload(const struct sim_cfg *cfg, enum sim_workload wl, enum sim_break brk,
                     uint64_t points, unsigned models, struct sim_stats st[SIM_NMODELS]);

/* Report an invariant violation at the current crash point (counted, printed up to a limit). */
void sim_violation(struct sim_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Verbose-only progress line. */
void sim_debug(struct sim_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A new operation id (call before the operation's first store). */
uint64_t sim_issue(struct sim_run *r);
/* paste_pool__drain(): everything issued so far is acknowledged when it returns. */
void sim_fence(struct sim_run *r);
/* The operation the caller issued failed and changed nothing. */
void sim_op_failed(struct sim_run *r, int err);
/* Register a region name the pool-level check accounts for. */
void sim_region_name(struct sim_run *r, const char *name);

/*
 * Put @len bytes (1..frame size) into an RX frame of the working pool, flush them and take a kept
 * reference: what a received segment the application keeps looks like. The frame is carved by
 * consecutive calls and released (rx_done) when the next one does not fit.
 * @return 0 with *ref set, or -ENOSPC when no frame is free even after a fence.
 */
int sim_payload(struct sim_run *r, const void *bytes, uint32_t len, struct paste_ref *ref);
/* The same on a recovered pool (liveness): a fresh frame per call, released after. */
int sim_payload_on(struct paste_pool *pool, const void *bytes, uint32_t len, struct paste_ref *ref);

/* Count the frame @ref names into r->fc; a violation if it is not one frame of @rec. */
void sim_count_ref(struct sim_run *r, struct paste_pool *rec, const struct paste_ref *ref,
                   const char *what);
/* Bytes @ref names in @rec, or NULL (and a violation). */
const uint8_t *sim_ref_bytes(struct sim_run *r, struct paste_pool *rec, const struct paste_ref *ref,
                             const char *what);

/* ---- components ---------------------------------------------------------------------------- */

extern const struct sim_component sim_log_component;
extern const struct sim_component sim_kv_component;
extern const struct sim_component sim_region_component;

/* ---- recovery benchmark (sim_bench.c) ------------------------------------------------------ */

int sim_bench_recovery(const struct sim_cfg *cfg, uint64_t log_records, uint64_t kv_keys);

/* ---- the visited states of a model check (sim_seen.c) ------------------------------------- */

struct sim_seen {
	uint64_t *tab;
	size_t cap, n;
};

/* A state's identity: the 64-bit hash of its bytes (zeroed padding), never 0. */
uint64_t sim_seen_hash(const void *state, size_t len);
/* true if @h was not seen before (it is now). Exits with a message when out of memory. */
bool sim_seen_visit(struct sim_seen *s, uint64_t h);
void sim_seen_free(struct sim_seen *s);

/* ---- targeted probes (sim_probe.c) --------------------------------------------------------- */

/* Search for a reachable crash state whose kv bucket array has no empty bucket (--probe kv-full).
 * @return 0 if none was found in @ops operations or every one recovered, 1 if recovery failed. */
int sim_probe_kv_full(const struct sim_cfg *cfg, uint64_t capacity, uint64_t ops);

/* paste-kv's app-level protocols (objects in a second index, the undo log) with a crash point at
 * every flush and fence of @ops operations (--probe kvapp, sim_kvapp.c). @return 0 or 1. */
int sim_probe_kvapp(const struct sim_cfg *cfg, uint64_t ops);
/* paste-kv --queues' forwarding protocol, every interleaving and crash (sim_forward.c). */
int sim_probe_forward(unsigned reqs, unsigned slots, unsigned depth, unsigned crashes);
/* paste-wal --queues --tier-dir: a destage job's publish order and reads of another worker's
 * tier, every interleaving of two workers and crashes (sim_tierpub.c). */
int sim_probe_tierpub(unsigned recs, unsigned seg, unsigned job, unsigned crashes);

#endif /* PASTE_SIM_H */
