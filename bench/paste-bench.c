/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-bench.c - paste-bench: the load generator of libpaste-xdp's benchmarks (issue 7).
 *
 * It plays the client host: ordinary kernel TCP sockets, one epoll loop, one thread, no library
 * beyond libc. It drives an echo server (paste-echo), an HTTP write-ahead log (paste-wal) or a
 * Redis-protocol store (paste-kv, redis-server) over N connections with D requests in flight on
 * each, closed loop (a reply releases the next request) or open loop at a fixed rate, and checks
 * every reply: echoed bytes, the HTTP status and per-connection order of the log's sequence
 * numbers, +OK, and for GET the value byte for byte.
 *
 * Latency is recorded in a log-linear histogram (exact below 256 ns, then 128 buckets per power
 * of two: under 0.8 % error, a fixed 43 KiB array, nothing allocated per request). In open loop
 * every request has an intended send time on a fixed schedule, and its latency is measured from
 * that time, not from when the socket accepted it: a stalled server shows as latency (coordinated
 * omission is not hidden), and requests the schedule wanted but could not send are reported.
 *
 * What is measured: requests whose (intended) send time falls in the measured interval, which
 * starts after the warm-up and ends after --duration seconds or --requests requests; throughput
 * is those requests over the time from the start to the last of their replies. Server CPU time
 * comes from /proc/PID/stat (utime + stime, clock ticks) read at both ends of that interval.
 */
#define _GNU_SOURCE
#include "bench.h"

struct bench_state S;
volatile sig_atomic_t stop_signal;

static const char *const phase_names[] = {"connect", "fill", "warmup", "measure", "drain", "done"};

/* ---- phases and the loop ------------------------------------------------------------------ */

static void pump_all(uint64_t now)
{
	for (unsigned i = 0; i < opt.conns; i++)
		if (S.c[i].up)
			conn_pump(&S.c[i], now);
}

static void phase_enter(enum phase ph, uint64_t now)
{
	S.phase = ph;
	S.t_phase = now;
	if (ph == PH_WARMUP || (ph == PH_MEASURE && opt.warmup == 0)) {
		for (unsigned i = 0; i < opt.conns; i++) /* open loop: start the schedule */
			S.c[i].next_due =
			    now + (uint64_t)((double)i * 1e9 / (opt.rate > 0 ? opt.rate : 1));
	}
	if (ph == PH_MEASURE) {
		S.t_start = S.t_last = now;
		S.t_end = now + (uint64_t)(opt.duration * 1e9);
		h_reset(&S.h);
		S.srv_ok = opt.server_pid && server_ticks(&S.srv_ticks0);
		S.cli_cpu0 = client_cpu();
		S.host_ok = host_ticks(S.host0);
	}
	if (ph == PH_DONE) {
		if (S.srv_ok)
			S.srv_ok = server_ticks(&S.srv_ticks1);
		S.cli_cpu1 = client_cpu();
		S.host_ok = S.host_ok && host_ticks(S.host1);
	}
	if (ph == PH_FILL || ph == PH_WARMUP || ph == PH_MEASURE)
		pump_all(now);
}

/* Open loop: requests due but never sent by the end of the interval. */
static void count_missed(void)
{
	for (unsigned i = 0; opt.rate > 0 && !opt.requests && i < opt.conns; i++) {
		const struct conn *c = &S.c[i];
		if (c->next_due < S.t_end)
			S.missed += (S.t_end - c->next_due + S.interval - 1) / S.interval;
	}
}

/* Move to the next phase when the current one is over. */
static void phase_step(uint64_t now)
{
	switch (S.phase) {
	case PH_CONNECT:
		if (S.up + S.failed_connect == opt.conns && S.up > 0)
			phase_enter(opt.mode == M_RESP_GET && !opt.no_fill ? PH_FILL
			            : opt.warmup > 0                       ? PH_WARMUP
			                                                   : PH_MEASURE,
			            now);
		else if (S.failed_connect == opt.conns ||
		         now - S.t_phase > (uint64_t)(opt.timeout * 1e9))
			phase_enter(PH_DONE, now);
		break;
	case PH_FILL:
		if (S.fill_next >= opt.keyspace && S.outstanding == 0)
			phase_enter(opt.warmup > 0 ? PH_WARMUP : PH_MEASURE, now);
		break;
	case PH_WARMUP:
		if (now - S.t_phase >= (uint64_t)(opt.warmup * 1e9))
			phase_enter(PH_MEASURE, now);
		break;
	case PH_MEASURE:
		if (opt.requests ? S.issued >= opt.requests : now >= S.t_end) {
			if (opt.rate > 0)
				pump_all(now); /* whatever was due before the end */
			count_missed();
			phase_enter(PH_DRAIN, now);
		}
		break;
	case PH_DRAIN:
		if (S.outstanding == 0)
			phase_enter(PH_DONE, now);
		else if (now - S.t_phase > (uint64_t)(opt.timeout * 1e9)) {
			note(E_TIMEOUT, NULL,
			     "%" PRIu64 " request(s) unanswered %.1f s after the end",
			     S.outstanding, opt.timeout);
			phase_enter(PH_DONE, now);
		}
		break;
	case PH_DONE:
		break;
	}
	if (S.phase != PH_CONNECT && S.phase != PH_DONE && S.phase != PH_DRAIN && S.outstanding &&
	    now - S.t_heard > (uint64_t)(opt.timeout * 1e9)) {
		note(E_TIMEOUT, NULL, "no reply for %.1f s with %" PRIu64 " request(s) in flight",
		     opt.timeout, S.outstanding);
		phase_enter(PH_DONE, now);
	}
	if (S.phase != PH_CONNECT && S.phase != PH_DONE && S.up == 0) {
		note(E_CONN, NULL, "no connection left");
		phase_enter(PH_DONE, now);
	}
}

static void progress(uint64_t now)
{
	if (now < S.p_next)
		return;
	if (!opt.quiet && S.phase != PH_CONNECT)
		fprintf(stderr,
		        "paste-bench: %-7s %6.1fs %9" PRIu64 " rep/s  mean %8.1f us  max %9.1f us  "
		        "errors %" PRIu64 "\n",
		        phase_names[S.phase], (double)(now - S.t_phase) / 1e9, S.p_n,
		        S.p_n ? (double)S.p_sum / (double)S.p_n / 1e3 : 0.0, (double)S.p_max / 1e3,
		        errors_total());
	S.p_n = S.p_sum = S.p_max = 0;
	S.p_next = now + NS;
}

/* How long epoll may sleep: until the next phase deadline, progress line or due request. */
static int64_t wait_ns(uint64_t now)
{
	uint64_t until = S.p_next;

	if (opt.busy)
		return 0;
	if (S.phase == PH_WARMUP && S.t_phase + (uint64_t)(opt.warmup * 1e9) < until)
		until = S.t_phase + (uint64_t)(opt.warmup * 1e9);
	if (S.phase == PH_MEASURE && !opt.requests && S.t_end < until)
		until = S.t_end;
	if (opt.rate > 0 && (S.phase == PH_WARMUP || S.phase == PH_MEASURE))
		for (unsigned i = 0; i < opt.conns; i++)
			if (S.c[i].up && S.c[i].q_n < opt.depth && S.c[i].next_due < until)
				until = S.c[i].next_due;
	return until > now ? (int64_t)(until - now) : 0;
}

static int run(void)
{
	struct epoll_event evs[MAX_EVENTS];

	S.ep = epoll_create1(EPOLL_CLOEXEC);
	if (S.ep < 0)
		return perror("paste-bench: epoll_create1"), -1;
	S.interval = opt.rate > 0 ? (uint64_t)((double)opt.conns * 1e9 / opt.rate) : 0;
	if (opt.rate > 0 && S.interval == 0)
		S.interval = 1;
	S.t_phase = now_ns();
	S.p_next = S.t_phase + NS;
	for (unsigned i = 0; i < opt.conns; i++)
		if (conn_start(&S.c[i]) < 0)
			return -1;
	while (S.phase != PH_DONE) {
		uint64_t now = now_ns();
		if (stop_signal > 1) /* a second signal: stop waiting for replies */
			phase_enter(PH_DONE, now);
		else if (stop_signal && S.phase < PH_DRAIN) {
			S.t_end = now;
			phase_enter(S.phase == PH_MEASURE ? PH_DRAIN : PH_DONE, now);
		}
		phase_step(now);
		if (opt.rate > 0 && (S.phase == PH_WARMUP || S.phase == PH_MEASURE))
			pump_all(now);
		progress(now);
		int64_t w = wait_ns(now);
		struct timespec ts = {.tv_sec = w / (int64_t)NS, .tv_nsec = w % (int64_t)NS};
		int n = epoll_pwait2(S.ep, evs, MAX_EVENTS, &ts, NULL);
		if (n < 0 && errno != EINTR)
			return perror("paste-bench: epoll_pwait2"), -1;
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
	}
	return 0;
}

/* ---- results ------------------------------------------------------------------------------ */

struct result {
	double secs, rps, mbps, cli_us, srv_us, srv_util, host_us, softirq_us;
	double lat[7]; /* min p50 p90 p99 p99.9 max mean, microseconds */
};

static void result_make(struct result *r)
{
	static const double pcts[] = {50, 90, 99, 99.9};
	double tick = (double)sysconf(_SC_CLK_TCK);

	memset(r, 0, sizeof(*r));
	r->secs = (double)(S.t_last - S.t_start) / 1e9;
	if (r->secs > 0) {
		r->rps = (double)S.measured / r->secs;
		r->mbps = r->rps * (double)opt.size / 1e6;
	}
	r->lat[0] = S.h.n ? (double)S.h.min / 1e3 : 0;
	for (unsigned i = 0; i < 4; i++)
		r->lat[1 + i] = (double)h_percentile(&S.h, pcts[i]) / 1e3;
	r->lat[5] = (double)S.h.max / 1e3;
	r->lat[6] = S.h.n ? S.h.sum / (double)S.h.n / 1e3 : 0;
	if (S.measured) {
		r->cli_us = (S.cli_cpu1 - S.cli_cpu0) * 1e6 / (double)S.measured;
		if (S.host_ok) {
			r->host_us =
			    (double)(S.host1[0] - S.host0[0]) / tick * 1e6 / (double)S.measured;
			r->softirq_us =
			    (double)(S.host1[1] - S.host0[1]) / tick * 1e6 / (double)S.measured;
		}
		if (S.srv_ok) {
			double s = (double)(S.srv_ticks1 - S.srv_ticks0) / tick;
			r->srv_us = s * 1e6 / (double)S.measured;
			r->srv_util = r->secs > 0 ? s / r->secs : 0;
		}
	}
}

static void print_text(const struct result *r)
{
	printf("paste-bench: %s %s, %u conn(s) x pipeline %u, %" PRIu64 " B, %s, %s\n",
	       mode_names[opt.mode], opt.target, opt.conns, opt.depth, opt.size,
	       opt.rate > 0 ? "open loop" : "closed loop", opt.busy ? "busy" : "blocking");
	printf("requests   %" PRIu64 " in %.3f s: %.1f req/s, %.2f MB/s\n", S.measured, r->secs,
	       r->rps, r->mbps);
	if (opt.rate > 0)
		printf("open loop  %.1f req/s offered, %" PRIu64 " due requests never sent\n",
		       opt.rate, S.missed);
	printf("latency us min %.1f p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f mean %.1f\n",
	       r->lat[0], r->lat[1], r->lat[2], r->lat[3], r->lat[4], r->lat[5], r->lat[6]);
	printf("cpu        client %.2f us/req", r->cli_us);
	if (S.srv_ok)
		printf(", server %.2f us/req (%.0f %% of a core)", r->srv_us, r->srv_util * 100);
	else if (opt.server_pid)
		printf(", server: /proc/%ld/stat unreadable at the end", opt.server_pid);
	if (S.host_ok)
		printf("\nhost cpu   %.2f us/req busy, %.2f us/req softirq (whole machine)",
		       r->host_us, r->softirq_us);
	printf("\nerrors     %" PRIu64, errors_total());
	for (unsigned e = 0; e < E_MAX; e++)
		printf(" %s=%" PRIu64, err_names[e], S.err[e]);
	putchar('\n');
}

static void print_json(const struct result *r)
{
	static const char *const lat_names[] = {"min", "p50", "p90", "p99", "p99_9", "max", "mean"};

	printf("{\"mode\":\"%s\",\"target\":\"%s\",\"conns\":%u,\"pipeline\":%u,\"size\":%" PRIu64
	       ",\"loop\":\"%s\",\"rate\":%.1f,\"busy\":%s,",
	       mode_names[opt.mode], opt.target, opt.conns, opt.depth, opt.size,
	       opt.rate > 0 ? "open" : "closed", opt.rate, opt.busy ? "true" : "false");
	printf("\"requests\":%" PRIu64
	       ",\"seconds\":%.6f,\"rps\":%.1f,\"mbps\":%.3f,\"missed\":%" PRIu64
	       ",\"latency_us\":{",
	       S.measured, r->secs, r->rps, r->mbps, S.missed);
	for (unsigned i = 0; i < 7; i++)
		printf("%s\"%s\":%.2f", i ? "," : "", lat_names[i], r->lat[i]);
	printf("},\"client_cpu_us_per_req\":%.3f,", r->cli_us);
	if (S.srv_ok)
		printf("\"server_cpu_us_per_req\":%.3f,\"server_cpu_util\":%.4f,", r->srv_us,
		       r->srv_util);
	else
		printf("\"server_cpu_us_per_req\":null,\"server_cpu_util\":null,");
	if (S.host_ok)
		printf("\"host_cpu_us_per_req\":%.3f,\"host_softirq_us_per_req\":%.3f,", r->host_us,
		       r->softirq_us);
	printf("\"errors\":{\"total\":%" PRIu64, errors_total());
	for (unsigned e = 0; e < E_MAX; e++)
		printf(",\"%s\":%" PRIu64, err_names[e], S.err[e]);
	printf("}}\n");
}

/* Cumulative distribution: one line per non-empty bucket, "usec fraction". */
static int write_cdf(const char *path)
{
	FILE *f = fopen(path, "w");
	uint64_t seen = 0;

	if (!f)
		return -1;
	fprintf(f, "# latency_us fraction_at_or_below (paste-bench %s, %" PRIu64 " requests)\n",
	        mode_names[opt.mode], S.h.n);
	for (unsigned i = 0; i < H_BUCKETS && S.h.n; i++) {
		if (!S.h.c[i])
			continue;
		seen += S.h.c[i];
		fprintf(f, "%.3f %.6f\n", (double)h_value(&S.h, i) / 1e3,
		        (double)seen / (double)S.h.n);
	}
	return fclose(f);
}

/* ---- main --------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	stop_signal++;
}

static void raise_fd_limit(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = need <= rl.rlim_max ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	struct result r;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	raise_fd_limit(opt.conns + 32);
	h_reset(&S.h);
	S.c = calloc(opt.conns, sizeof(*S.c));
	if (!S.c || payload_init() < 0) {
		perror("paste-bench: out of memory");
		return 1;
	}
	for (unsigned i = 0; i < opt.conns; i++)
		if (conn_alloc(&S.c[i], i) < 0) {
			perror("paste-bench: out of memory");
			return 1;
		}
	if (run() < 0)
		return 1;
	if (S.t_start == 0)
		note(E_CONN, NULL, "%u of %u connection(s) up after %.1f s: nothing measured", S.up,
		     opt.conns, opt.timeout);
	result_make(&r);
	if (opt.json)
		print_json(&r);
	else
		print_text(&r);
	if (opt.cdf && write_cdf(opt.cdf) < 0) {
		fprintf(stderr, "paste-bench: %s: %s\n", opt.cdf, strerror(errno));
		return 1;
	}
	return errors_total() ? 1 : 0;
}
