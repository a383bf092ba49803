/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon_loop.c - the daemons' shared event loop: rounds, signals, the tick, and the connection
 * registry with idle and request timeouts (daemon_loop.h).
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "daemon_loop.h"
#include "daemon_opts.h"

#define DAEMON_TICK_MS_DEFAULT 100u

uint64_t daemon_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool daemon_pool_low(struct daemon_loop *l, uint64_t reserve, uint64_t now)
{
	struct paste_stats s;

	if ((!l->pool_low && l->pool_checked_ns &&
	     now - l->pool_checked_ns < DAEMON_POOL_CHECK_NS) ||
	    paste_stats(l->ctx, &s, sizeof(s)))
		return l->pool_low;
	l->pool_checked_ns = now;
	l->pool_low = s.frames_free < reserve;
	return l->pool_low;
}

void daemon_conn_add(struct daemon_loop *l, struct daemon_conn *dc, struct paste_conn *c)
{
	dc->c = c;
	dc->last_ns = daemon_now_ns();
	dc->req_ns = 0;
	dc->prev = NULL;
	dc->next = l->conns;
	if (l->conns)
		l->conns->prev = dc;
	l->conns = dc;
	l->nconns++;
	l->conns_total++;
}

void daemon_conn_remove(struct daemon_loop *l, struct daemon_conn *dc)
{
	if (!dc->c)
		return;
	if (dc->prev)
		dc->prev->next = dc->next;
	else
		l->conns = dc->next;
	if (dc->next)
		dc->next->prev = dc->prev;
	dc->prev = dc->next = NULL;
	dc->c = NULL;
	l->nconns--;
}

static bool over(uint64_t now, uint64_t since, uint64_t limit_ms)
{
	return limit_ms && since && now > since && now - since > limit_ms * 1000000ull;
}

/* The program's verdict on @dc, or a reset when it has no hook. */
static bool time_out(struct daemon_loop *l, struct daemon_conn *dc, enum daemon_timeout why)
{
	if (l->timed_out)
		return l->timed_out(dc, why, l->app);
	paste_conn__abort(dc->c);
	return true;
}

void daemon_loop_check_timeouts(struct daemon_loop *l, uint64_t now)
{
	struct daemon_conn *dc, *next;

	if (!l->idle_timeout_ms && !l->request_timeout_ms)
		return;
	/* A hook may end the connection, never unlink it: on_close runs at the round's reap. The
	 * next pointer is taken first all the same. */
	for (dc = l->conns; dc; dc = next) {
		next = dc->next;
		if (over(now, dc->req_ns, l->request_timeout_ms) &&
		    time_out(l, dc, DAEMON_TIMEOUT_REQUEST)) {
			l->request_timeouts++;
			dc->req_ns = 0;
		} else if (over(now, dc->last_ns, l->idle_timeout_ms) &&
		           time_out(l, dc, DAEMON_TIMEOUT_IDLE)) {
			l->idle_timeouts++;
			dc->last_ns = now; /* counted once, even if the reset takes a round */
		}
	}
}

/* This round's wait: the program's, cut to what is left of the current tick. */
static int round_wait(struct daemon_loop *l, uint64_t tick_ns, uint64_t last_tick, uint64_t now)
{
	int ms = l->poll_timeout ? l->poll_timeout(l->app) : -1;
	bool timed = l->tick || l->idle_timeout_ms || l->request_timeout_ms;
	uint64_t left;

	if (!timed || ms == 0)
		return ms;
	left = now - last_tick >= tick_ns ? 0 : tick_ns - (now - last_tick);
	left = (left + 999999) / 1000000;
	if (ms < 0 || (uint64_t)ms > left)
		ms = (int)left;
	return ms;
}

int daemon_loop_run(struct daemon_loop *l)
{
	uint64_t tick_ns =
	    (uint64_t)(l->tick_ms ? l->tick_ms : DAEMON_TICK_MS_DEFAULT) * 1000000ull;
	uint64_t last_tick = daemon_now_ns(), now;
	int n;

	while (!daemon_got_stop && !l->fatal) {
		n = paste_poll(l->ctx, round_wait(l, tick_ns, last_tick, daemon_now_ns()));
		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "%s: event loop failed: %s\n", l->name, paste_last_error());
			return 1;
		}
		if (daemon_got_usr1) {
			daemon_got_usr1 = 0;
			if (l->print_stats)
				l->print_stats(l->app);
		}
		if (l->after_poll && l->after_poll(l->app))
			return 1;
		now = daemon_now_ns();
		if (now - last_tick >= tick_ns) {
			last_tick = now;
			daemon_loop_check_timeouts(l, now);
			if (l->tick && l->tick(l->app))
				return 1;
		}
	}
	return l->fatal ? 1 : 0;
}

int daemon_parse_timeout(const char *prog, const char *option, const char *arg, uint64_t *ms)
{
	uint64_t v;

	if (daemon_parse_uint(arg, 0, 86400, &v)) {
		fprintf(stderr,
		        "%s: invalid value '%s' for --%s: expected seconds 0-86400 (see --help)\n",
		        prog, arg, option);
		return -1;
	}
	*ms = v * 1000;
	return 0;
}
