/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon_workers.c - the supervisor behind --queues N / --cpus LIST (daemon_workers.h).
 *
 * The supervisor opens nothing of the library: it holds no XDP program, socket or pool, so the
 * workers alone decide when the shared steering program goes (the last one to close detaches it,
 * src/steer_share.c). It waits on a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGUSR1) and on a pipe the
 * workers write their index to once ready. A worker that dies is forked again after a pause that
 * grows with consecutive quick failures; five failures in a row within 2 s of starting stop
 * everything (a worker that cannot start will not start by retrying). Workers get
 * PR_SET_PDEATHSIG=SIGTERM, so a killed supervisor does not leave them serving unsupervised.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_loop.h"
#include "daemon_workers.h"

#define QUICK_FAIL_NS   2000000000ull /* a worker that dies this soon after starting failed */
#define MAX_QUICK_FAILS 5
#define STOP_GRACE_S    30 /* SIGKILL a worker still there this long after SIGTERM */

struct worker {
	pid_t pid;           /* 0: not running */
	uint64_t started;    /* CLOCK_MONOTONIC ns */
	uint64_t restart_at; /* not running: fork again at this time (0: not scheduled) */
	unsigned quick_fails;
	bool ready;
};

struct sup {
	struct daemon_opts *d;
	const char *prog;
	struct worker w[DAEMON_MAX_WORKERS];
	sigset_t mask, old_mask;
	int sfd, ready_rd, ready_wr;
	bool all_ready_said, stopping;
	int worst; /* highest exit status seen while stopping */
};

static int ready_fd = -1; /* in a worker: the pipe to the supervisor */
static char tag[24];
static int worker_index = -1;

const char *daemon_worker_tag(void)
{
	return tag;
}

void daemon_workers_ready(void)
{
	if (ready_fd >= 0) {
		unsigned char b = (unsigned char)worker_index;

		if (write(ready_fd, &b, 1) != 1)
			fprintf(stderr, "worker: cannot tell the supervisor it is ready: %s\n",
			        strerror(errno));
	}
}

/* In the child: become worker @i and return to the daemon's main. */
static void become_worker(struct sup *s, int i, pid_t sup_pid)
{
	struct daemon_opts *d = s->d;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != sup_pid)
		_exit(1); /* the supervisor died before the line above */
	sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
	close(s->sfd);
	close(s->ready_rd);
	ready_fd = s->ready_wr;
	snprintf(tag, sizeof(tag), " worker=%d", i);
	worker_index = i;
	d->worker = i;
	d->paste.queue += (uint32_t)i;
	d->paste.pool_sliced = true; /* one pool file, slice i */
	d->paste.pool_slice = (uint32_t)i;
	if (d->paste.transport != PASTE_TRANSPORT_PASTE)
		d->paste.reuse_port = true;
	if (d->ncpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(d->cpus[i % d->ncpus], &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			fprintf(stderr,
			        "%s: worker %d: cannot pin to CPU %d: %s (running unpinned)\n",
			        s->prog, i, d->cpus[i % d->ncpus], strerror(errno));
	}
}

/* Fork worker @i. @return true in the child. */
static bool spawn(struct sup *s, int i)
{
	pid_t sup_pid = getpid(), pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		become_worker(s, i, sup_pid);
		return true;
	}
	s->w[i].restart_at = 0;
	if (pid < 0) {
		fprintf(stderr, "%s: cannot fork worker %d: %s (retrying)\n", s->prog, i,
		        strerror(errno));
		s->w[i].restart_at = daemon_now_ns() + 1000000000ull;
		return false;
	}
	s->w[i].pid = pid;
	s->w[i].started = daemon_now_ns();
	s->w[i].ready = false;
	return false;
}

static void describe(int status, char *buf, size_t n)
{
	if (WIFSIGNALED(status))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	else
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
}

/* Reap every child that ended; schedule restarts. @return -1 to give up. */
static int reap(struct sup *s)
{
	int status, gave_up = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		char why[96];
		int i;

		for (i = 0; i < (int)s->d->queues && s->w[i].pid != pid; i++)
			;
		if (i == (int)s->d->queues)
			continue;
		s->w[i].pid = 0;
		describe(status, why, sizeof(why));
		if (s->stopping) {
			int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;

			if (code > s->worst)
				s->worst = code;
			if (code)
				fprintf(stderr, "%s: worker %d (pid %d) %s\n", s->prog, i, pid,
				        why);
			continue;
		}
		if (daemon_now_ns() - s->w[i].started < QUICK_FAIL_NS)
			s->w[i].quick_fails++;
		else
			s->w[i].quick_fails = 0;
		if (s->w[i].quick_fails >= MAX_QUICK_FAILS) {
			fprintf(
			    stderr,
			    "%s: worker %d (pid %d) %s, %u times within 2 s of starting: giving "
			    "up, stopping every worker (see the worker's messages above)\n",
			    s->prog, i, pid, why, s->w[i].quick_fails);
			gave_up = -1;
			continue;
		}
		fprintf(stderr, "%s: worker %d (pid %d) %s: restarting it\n", s->prog, i, pid, why);
		s->w[i].restart_at = daemon_now_ns() + 100000000ull * (1u << s->w[i].quick_fails);
	}
	return gave_up;
}

static void signal_all(struct sup *s, int sig)
{
	for (unsigned i = 0; i < s->d->queues; i++)
		if (s->w[i].pid)
			kill(s->w[i].pid, sig);
}

static unsigned running(const struct sup *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->d->queues; i++)
		n += s->w[i].pid != 0;
	return n;
}

static void note_ready(struct sup *s)
{
	unsigned char b[64];
	ssize_t n = read(s->ready_rd, b, sizeof(b));

	for (ssize_t k = 0; k < n; k++) {
		unsigned i = b[k], all = 0;

		if (i >= s->d->queues)
			continue;
		s->w[i].ready = true;
		if (s->all_ready_said)
			printf("%s: worker %u ready again (pid %d)\n", s->prog, i, s->w[i].pid);
		for (unsigned j = 0; j < s->d->queues; j++)
			all += s->w[j].ready;
		if (!s->all_ready_said && all == s->d->queues) {
			s->all_ready_said = true;
			printf("%s: supervisor ready workers=%u pids=", s->prog, s->d->queues);
			for (unsigned j = 0; j < s->d->queues; j++)
				printf("%s%d", j ? "," : "", s->w[j].pid);
			printf("\n");
		}
		fflush(stdout);
	}
}

/* Wait up to @ms for a signal or a ready byte. @return the signal, 0 if none, -1 to give up. */
static int wait_event(struct sup *s, int ms)
{
	struct pollfd p[2] = {{.fd = s->sfd, .events = POLLIN},
	                      {.fd = s->ready_rd, .events = POLLIN}};
	struct signalfd_siginfo si;

	if (poll(p, 2, ms) <= 0)
		return 0;
	if (p[1].revents & POLLIN)
		note_ready(s);
	if (!(p[0].revents & POLLIN) || read(s->sfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	if (si.ssi_signo == SIGCHLD)
		return reap(s) < 0 ? -1 : SIGCHLD;
	return (int)si.ssi_signo;
}

/* @return true in a (re)started worker. */
static bool run(struct sup *s)
{
	for (;;) {
		uint64_t t = daemon_now_ns(), next = 0;
		int sig, ms = -1;

		for (unsigned i = 0; i < s->d->queues; i++) {
			if (!s->w[i].pid && s->w[i].restart_at && s->w[i].restart_at <= t) {
				if (spawn(s, (int)i))
					return true;
			}
			if (!s->w[i].pid && s->w[i].restart_at &&
			    (!next || s->w[i].restart_at < next))
				next = s->w[i].restart_at;
		}
		if (next)
			ms = (int)((next - t) / 1000000 + 1);
		sig = wait_event(s, ms);
		if (sig == SIGUSR1)
			signal_all(s, SIGUSR1);
		if (sig == SIGTERM || sig == SIGINT || sig < 0) {
			s->worst = sig < 0 ? 1 : 0;
			return false;
		}
	}
}

static void stop(struct sup *s)
{
	uint64_t deadline = daemon_now_ns() + STOP_GRACE_S * 1000000000ull;
	bool killed = false;

	s->stopping = true;
	signal_all(s, SIGTERM);
	while (running(s)) {
		if (!killed && daemon_now_ns() > deadline) {
			fprintf(stderr, "%s: workers still running %d s after SIGTERM: SIGKILL\n",
			        s->prog, STOP_GRACE_S);
			signal_all(s, SIGKILL);
			killed = true;
		}
		wait_event(s, 200);
		reap(s);
	}
}

bool daemon_workers_supervise(struct daemon_opts *d, const char *prog, int *exit_code)
{
	static struct sup s; /* a worker keeps its copy after fork: nothing in it is freed */
	int fds[2];

	if (!d->queues)
		return false;
	memset(&s, 0, sizeof(s));
	s.d = d;
	s.prog = prog;
	sigemptyset(&s.mask);
	sigaddset(&s.mask, SIGCHLD);
	sigaddset(&s.mask, SIGTERM);
	sigaddset(&s.mask, SIGINT);
	sigaddset(&s.mask, SIGUSR1);
	if (pipe(fds) || sigprocmask(SIG_BLOCK, &s.mask, &s.old_mask) ||
	    (s.sfd = signalfd(-1, &s.mask, SFD_CLOEXEC)) < 0) {
		fprintf(stderr, "%s: cannot set up the supervisor: %s\n", prog, strerror(errno));
		*exit_code = 1;
		return true;
	}
	s.ready_rd = fds[0];
	s.ready_wr = fds[1];
	printf("%s: supervisor pid %d starting %u workers\n", prog, (int)getpid(), d->queues);
	for (unsigned i = 0; i < d->queues; i++)
		if (spawn(&s, (int)i))
			return false;
	if (run(&s))
		return false;
	stop(&s);
	printf("%s: supervisor: every worker stopped\n", prog);
	fflush(stdout);
	*exit_code = s.worst;
	return true;
}
