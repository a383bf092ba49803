/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sim_main.c - paste-powerfail's command line: split the crash-point budget over the chosen
 * workloads and eviction models, run them, run the self-check, print the summary.
 *
 *   paste-powerfail --points N --seed S [--workload pool|log|kv|mixed|all]
 *                   [--model fenced-only|random-evict|both] [--verbose]
 *                   [--break drain-noop|skip-fence|lose-payload] [--self-check | --no-self-check]
 *                   [--no-liveness] [--nested PCT] [--adopt PCT] [--no-probe] [--max-reports N]
 *                   [--dir DIR]
 *   paste-powerfail --bench-recovery [--bench-log RECORDS] [--bench-kv KEYS]
 *   paste-powerfail --probe kv-full [--capacity C] [--ops N] [--seed S]
 *   paste-powerfail --probe kvapp [--ops N] [--seed S]
 *   paste-powerfail --probe forward [--ops REQUESTS] [--capacity SLOTS] [--depth N] [--crashes N]
 *   paste-powerfail --probe tierpub [--ops RECORDS] [--capacity SEG] [--depth JOB] [--crashes N]
 *
 * After the main run come the kv-full probe (sim_probe.c; unless --no-probe) and the self-check
 * (unless --no-self-check): the same workloads with a deliberately broken persistence hook (fences
 * that apply nothing, every 8th fence skipped, payload flushes dropped), each of which must produce
 * violations; a simulator that cannot see those would pass anything. Exit status 0 iff the main
 * run found no violation (crash points and clean reopens), the probe recovered every state it
 * reached, and the self-check caught every broken mode.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "sim.h"

struct sim_opts {
	struct sim_cfg cfg;
	bool self_check_only, no_self_check, no_probe, bench, probe, kvapp, forward, tierpub,
	    crashes_set;
	uint64_t bench_log, bench_kv, probe_cap, probe_ops, depth, crashes;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Library messages: errors are reported through the violation that caused them; warnings and info
 * (torn superblock, recovery timings) only with --verbose. */
struct sim_events sim_events;

static void print_cb(enum paste_log_level level, const char *msg, void *user)
{
	const bool *verbose = user;

	sim_events.compactions += strstr(msg, "compacted") != NULL;
	sim_events.sb_backup += strstr(msg, "superblock was torn") != NULL;
	sim_events.log_cut += level == PASTE_LOG_WARN && !strncmp(msg, "log '", 5) &&
	                      strstr(msg, "recovered") && !strstr(msg, ", cut 0 ");
	sim_events.kv_dropped +=
	    level == PASTE_LOG_WARN && strstr(msg, "dropped") && strstr(msg, "key-value index");
	sim_events.errors += level == PASTE_LOG_ERROR;
	if (*verbose)
		printf("  lib: %s\n", msg);
}

static int lookup(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: paste-powerfail --points N --seed S [--workload pool|log|kv|mixed|all]\n"
	    "         [--model fenced-only|random-evict|both] [--verbose]\n"
	    "         [--break drain-noop|skip-fence|lose-payload] [--self-check|--no-self-check]\n"
	    "         [--no-liveness] [--nested PCT] [--adopt PCT]\n"
	    "         [--max-reports N] [--dir DIR]\n"
	    "       paste-powerfail --bench-recovery [--bench-log RECORDS] [--bench-kv KEYS]\n"
	    "       paste-powerfail --probe kv-full|kvapp [--capacity C] [--ops N] [--seed S]\n"
	    "       paste-powerfail --probe forward [--ops REQUESTS] [--capacity SLOTS] [--depth N]\n"
	    "         [--crashes N]   (paste-kv --queues' forwarding protocol: every interleaving of\n"
	    "         a sender, an owner and up to N crashes, model-checked; then each mutation)\n"
	    "       paste-powerfail --probe tierpub [--ops RECORDS] [--capacity SEG] [--depth JOB]\n"
	    "         [--crashes N]   (paste-wal --queues --tier-dir: worker 0 destages RECORDS\n"
	    "         records in jobs of 1..JOB into segments of SEG records and takes a DELETE,\n"
	    "         worker 1 reads them, kill -9 and power failures between any two steps, up to\n"
	    "         N per path, model-checked; the real tier_peer_read on the model's files; then\n"
	    "         each mutation)\n");
}

static int parse_choice(const char *arg, unsigned *mask, const char *const *names, int n,
                        const char *all)
{
	int i;

	if (!strcmp(arg, all)) {
		*mask = (1u << n) - 1;
		return 0;
	}
	i = lookup(arg, names, n);
	if (i < 0)
		return -EINVAL;
	*mask = 1u << i;
	return 0;
}

static int parse(int argc, char **argv, struct sim_opts *o)
{
	enum {
		O_POINTS = 256,
		O_SEED,
		O_WL,
		O_MODEL,
		O_BREAK,
		O_SELF,
		O_NOSELF,
		O_NOLIVE,
		O_MAXREP,
		O_DIR,
		O_BENCH,
		O_BLOG,
		O_BKV,
		O_NESTED,
		O_ADOPT,
		O_PROBE,
		O_CAP,
		O_OPS,
		O_NOPROBE,
		O_DEPTH,
		O_CRASHES
	};
	static const struct option lo[] = {{"points", 1, 0, O_POINTS},
	                                   {"seed", 1, 0, O_SEED},
	                                   {"workload", 1, 0, O_WL},
	                                   {"model", 1, 0, O_MODEL},
	                                   {"break", 1, 0, O_BREAK},
	                                   {"self-check", 0, 0, O_SELF},
	                                   {"no-self-check", 0, 0, O_NOSELF},
	                                   {"no-liveness", 0, 0, O_NOLIVE},
	                                   {"max-reports", 1, 0, O_MAXREP},
	                                   {"dir", 1, 0, O_DIR},
	                                   {"bench-recovery", 0, 0, O_BENCH},
	                                   {"bench-log", 1, 0, O_BLOG},
	                                   {"bench-kv", 1, 0, O_BKV},
	                                   {"nested", 1, 0, O_NESTED},
	                                   {"adopt", 1, 0, O_ADOPT},
	                                   {"probe", 1, 0, O_PROBE},
	                                   {"capacity", 1, 0, O_CAP},
	                                   {"ops", 1, 0, O_OPS},
	                                   {"no-probe", 0, 0, O_NOPROBE},
	                                   {"depth", 1, 0, O_DEPTH},
	                                   {"crashes", 1, 0, O_CRASHES},
	                                   {"verbose", 0, 0, 'v'},
	                                   {"help", 0, 0, 'h'},
	                                   {0, 0, 0, 0}};
	int c, b;

	while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (c) {
		case O_POINTS:
			o->cfg.points = strtoull(optarg, NULL, 0);
			break;
		case O_SEED:
			o->cfg.seed = strtoull(optarg, NULL, 0);
			break;
		case O_WL:
			if (parse_choice(optarg, &o->cfg.workloads, sim_workload_names,
			                 SIM_NWORKLOADS, "all"))
				return -EINVAL;
			break;
		case O_MODEL:
			if (parse_choice(optarg, &o->cfg.models, sim_model_names, SIM_NMODELS,
			                 "both"))
				return -EINVAL;
			break;
		case O_BREAK:
			b = lookup(optarg, sim_break_names, SIM_NBREAKS);
			if (b < 0)
				return -EINVAL;
			o->cfg.brk = (enum sim_break)b;
			break;
		case O_SELF:
			o->self_check_only = true;
			break;
		case O_NOSELF:
			o->no_self_check = true;
			break;
		case O_NOLIVE:
			o->cfg.liveness = false;
			break;
		case O_MAXREP:
			o->cfg.max_reports = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case O_DIR:
			o->cfg.dir = optarg;
			break;
		case O_NESTED:
			o->cfg.nested_pct = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case O_ADOPT:
			o->cfg.adopt_pct = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case O_PROBE:
			if (!strcmp(optarg, "kvapp"))
				o->kvapp = true;
			else if (!strcmp(optarg, "forward"))
				o->forward = true;
			else if (!strcmp(optarg, "tierpub"))
				o->tierpub = true;
			else if (strcmp(optarg, "kv-full"))
				return -EINVAL;
			o->probe = true;
			break;
		case O_CAP:
			o->probe_cap = strtoull(optarg, NULL, 0);
			break;
		case O_OPS:
			o->probe_ops = strtoull(optarg, NULL, 0);
			break;
		case O_NOPROBE:
			o->no_probe = true;
			break;
		case O_DEPTH:
			o->depth = strtoull(optarg, NULL, 0);
			break;
		case O_CRASHES:
			o->crashes = strtoull(optarg, NULL, 0);
			o->crashes_set = true;
			break;
		case O_BENCH:
			o->bench = true;
			break;
		case O_BLOG:
			o->bench_log = strtoull(optarg, NULL, 0);
			break;
		case O_BKV:
			o->bench_kv = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			o->cfg.verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (optind != argc || (!o->bench && !o->probe && !o->self_check_only && !o->cfg.points))
		return -EINVAL;
	return 0;
}

static void add(struct sim_stats *t, const struct sim_stats *s)
{
	t->points += s->points;
	t->failed += s->failed;
	t->violations += s->violations;
	t->recoveries += s->recoveries;
	t->records += s->records;
	t->keys += s->keys;
	t->regions += s->regions;
	t->frames += s->frames;
	t->runs += s->runs;
	t->clean_fail += s->clean_fail;
	t->rec_ns += s->rec_ns;
	t->enospc += s->enospc;
	t->nested += s->nested;
	t->sessions += s->sessions;
	t->replayed += s->replayed;
	t->replay_miss += s->replay_miss;
	t->kv_over += s->kv_over;
	t->lines_evicted += s->lines_evicted;
	t->words_evicted += s->words_evicted;
}

static void row(const char *wl, const char *model, const struct sim_stats *s)
{
	printf("%-8s %-13s %7llu %6llu %10llu %10llu %9llu %8llu %7llu %10llu %8.3f\n", wl, model,
	       (unsigned long long)s->points, (unsigned long long)s->failed,
	       (unsigned long long)s->violations, (unsigned long long)s->recoveries,
	       (unsigned long long)s->records, (unsigned long long)s->keys,
	       (unsigned long long)s->regions, (unsigned long long)s->frames,
	       s->recoveries ? (double)s->rec_ns / 1e6 / (double)s->recoveries : 0.0);
}

/* The main run: @cfg->points split over the workloads; each alternates the chosen models. */
static int main_run(const struct sim_cfg *cfg, struct sim_stats st[SIM_NWORKLOADS][SIM_NMODELS],
                    struct sim_stats *total)
{
	unsigned nw = (unsigned)__builtin_popcount(cfg->workloads), k = 0;
	int err = 0;

	for (int w = 0; w < SIM_NWORKLOADS && !err; w++) {
		uint64_t pts;

		if (!(cfg->workloads & 1u << w))
			continue;
		pts = cfg->points / nw + (k++ < cfg->points % nw);
		err =
		    sim_run_workload(cfg, (enum sim_workload)w, cfg->brk, pts, cfg->models, st[w]);
	}
	printf("%-8s %-13s %7s %6s %10s %10s %9s %8s %7s %10s %8s\n", "workload", "model", "points",
	       "failed", "violations", "recoveries", "records", "keys", "regions", "frames",
	       "ms/open");
	for (int w = 0; w < SIM_NWORKLOADS; w++) {
		for (int m = 0; m < SIM_NMODELS; m++) {
			if (!(cfg->workloads & 1u << w))
				continue;
			if (cfg->models & 1u << m)
				row(sim_workload_names[w], sim_model_names[m], &st[w][m]);
			add(total, &st[w][m]); /* run counters live in the first model's cell */
		}
	}
	row("total", "", total);
	printf("runs %llu (%llu more sessions went on from a recovered crash image); clean reopen "
	       "after each run: %llu violations; crash points that also crashed inside their "
	       "recovery: %llu; operations refused for space (not errors): %llu; evicted into "
	       "images: %llu lines, %llu words\n",
	       (unsigned long long)total->runs, (unsigned long long)total->sessions,
	       (unsigned long long)total->clean_fail, (unsigned long long)total->nested,
	       (unsigned long long)total->enospc, (unsigned long long)total->lines_evicted,
	       (unsigned long long)total->words_evicted);
	printf(
	    "replays: %llu crash points at every call of a rare operation (kv compaction, region "
	    "or index creation; %llu replayed compactions did not compact again)\n",
	    (unsigned long long)total->replayed, (unsigned long long)total->replay_miss);
	printf("library events: %llu kv compactions, %llu torn superblocks taken from the backup, "
	       "%llu log recoveries cut torn records, %llu kv recoveries dropped torn updates\n",
	       (unsigned long long)sim_events.compactions, (unsigned long long)sim_events.sb_backup,
	       (unsigned long long)sim_events.log_cut, (unsigned long long)sim_events.kv_dropped);
	if (total->kv_over)
		printf(
		    "note: %llu recovered kv indexes held more keys than their capacity (a delete "
		    "and a put of another key in flight together; see docs/recovery.md)\n",
		    (unsigned long long)total->kv_over);
	return err;
}

/*
 * Every broken mode must be caught on every workload it can affect (payload flushes only matter
 * where payload lives in frames). @return the number of combinations that were NOT caught.
 */
static unsigned self_check(const struct sim_cfg *base)
{
	static const struct {
		enum sim_break brk;
		enum sim_workload wl;
		uint64_t points;
	} cases[] = {
	    {SIM_BREAK_DRAIN_NOOP, SIM_WL_POOL, 30},  {SIM_BREAK_DRAIN_NOOP, SIM_WL_LOG, 30},
	    {SIM_BREAK_DRAIN_NOOP, SIM_WL_KV, 30},    {SIM_BREAK_SKIP_FENCE, SIM_WL_POOL, 150},
	    {SIM_BREAK_SKIP_FENCE, SIM_WL_LOG, 150},  {SIM_BREAK_SKIP_FENCE, SIM_WL_KV, 150},
	    {SIM_BREAK_LOSE_PAYLOAD, SIM_WL_LOG, 30}, {SIM_BREAK_LOSE_PAYLOAD, SIM_WL_KV, 30},
	};
	struct sim_cfg cfg = *base;
	unsigned missed = 0;

	cfg.max_reports = cfg.verbose ? cfg.max_reports : 0;
	cfg.liveness = false;
	printf("self-check: a broken persistence protocol must be caught (fenced-only model)\n");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sim_stats st[SIM_NMODELS] = {0};
		bool caught;
		int err;

		if (!(cfg.workloads & 1u << cases[i].wl))
			continue;
		err = sim_run_workload(&cfg, cases[i].wl, cases[i].brk, cases[i].points,
		                       1u << SIM_FENCED_ONLY, st);
		caught = st[SIM_FENCED_ONLY].violations + st[SIM_FENCED_ONLY].clean_fail > 0;
		missed += !caught;
		printf("  %-13s %-6s %4llu points %4llu failed %5llu violations  %s%s\n",
		       sim_break_names[cases[i].brk], sim_workload_names[cases[i].wl],
		       (unsigned long long)st[SIM_FENCED_ONLY].points,
		       (unsigned long long)st[SIM_FENCED_ONLY].failed,
		       (unsigned long long)(st[SIM_FENCED_ONLY].violations +
		                            st[SIM_FENCED_ONLY].clean_fail),
		       caught ? "caught" : "NOT CAUGHT", err ? " (run aborted)" : "");
	}
	return missed;
}

int main(int argc, char **argv)
{
	static struct sim_stats st[SIM_NWORKLOADS][SIM_NMODELS];
	struct sim_opts o = {.cfg = {.seed = 1,
	                             .workloads = (1u << SIM_NWORKLOADS) - 1,
	                             .models = (1u << SIM_NMODELS) - 1,
	                             .liveness = true,
	                             .nested_pct = 30,
	                             .adopt_pct = 5,
	                             .max_reports = 20,
	                             .dir = "/dev/shm"}};
	struct sim_stats total = {0};
	unsigned missed = 0;
	int probe_fail = 0;
	double t0 = now_s();
	int err = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	paste_set_print(print_cb, &o.cfg.verbose, PASTE_LOG_INFO);
	if (o.forward)
		return sim_probe_forward(o.probe_ops ? (unsigned)o.probe_ops : 3,
		                         o.probe_cap ? (unsigned)o.probe_cap : 2,
		                         o.depth ? (unsigned)o.depth : 2,
		                         o.crashes_set ? (unsigned)o.crashes : 2);
	if (o.tierpub)
		return sim_probe_tierpub(o.probe_ops ? (unsigned)o.probe_ops : 3,
		                         o.probe_cap ? (unsigned)o.probe_cap : 2,
		                         o.depth ? (unsigned)o.depth : 2,
		                         o.crashes_set ? (unsigned)o.crashes : 2);
	if (o.kvapp)
		return sim_probe_kvapp(&o.cfg, o.probe_ops ? o.probe_ops : 2000);
	if (o.probe)
		return sim_probe_kv_full(&o.cfg, o.probe_cap ? o.probe_cap : 8,
		                         o.probe_ops ? o.probe_ops : 1000000);
	if (o.bench)
		return sim_bench_recovery(&o.cfg, o.bench_log ? o.bench_log : 100000,
		                          o.bench_kv ? o.bench_kv : 1000000)
		           ? 1
		           : 0;
	if (!o.self_check_only) {
		printf("paste-powerfail: seed %llu, %llu crash points, break %s, liveness %s\n",
		       (unsigned long long)o.cfg.seed, (unsigned long long)o.cfg.points,
		       sim_break_names[o.cfg.brk], o.cfg.liveness ? "on" : "off");
		err = main_run(&o.cfg, st, &total);
	}
	if (!o.self_check_only && !o.no_probe && o.cfg.brk == SIM_BREAK_NONE &&
	    (o.cfg.workloads & (1u << SIM_WL_KV | 1u << SIM_WL_MIXED))) {
		/* A state random crash points would need luck for (sim_probe.c): a kv bucket array
		 * with no empty bucket. 4 M ops found one in older kv_index.c at both sizes. */
		probe_fail = sim_probe_kv_full(&o.cfg, 8, 4000000);
		probe_fail += sim_probe_kv_full(&o.cfg, 16, 4000000);
	}
	if (o.self_check_only || (!o.no_self_check && o.cfg.brk == SIM_BREAK_NONE))
		missed = self_check(&o.cfg);
	printf("elapsed %.1f s\n", now_s() - t0);
	if (err)
		printf("a run stopped early: %s\n", strerror(-err));
	if (missed)
		printf("SIMULATOR SELF-CHECK FAILED: %u broken protocol(s) not detected\n", missed);
	if (!o.self_check_only)
		printf("%llu passed, %llu failed\n",
		       (unsigned long long)(total.points - total.failed),
		       (unsigned long long)total.failed);
	return err || missed || probe_fail || total.violations || total.clean_fail ? 1 : 0;
}
