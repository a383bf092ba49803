/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_cpu.c - paste-bench's CPU accounting: the server's utime + stime from /proc/PID/stat, the
 * whole machine's busy and softirq ticks from /proc/stat, the client's own rusage.
 */
#define _GNU_SOURCE
#include "bench.h"

/* ---- CPU time ----------------------------------------------------------------------------- */

/* utime + stime of the server, in clock ticks; false if it cannot be read. */
bool server_ticks(uint64_t *ticks)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", opt.server_pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	/* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
	 */
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return false;
	*ticks = ut + st;
	return true;
}

/* Busy (all but idle and iowait) and softirq ticks of the whole machine, from /proc/stat. */
bool host_ticks(uint64_t t[2])
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return false;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
	           &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 7)
		return false;
	/* user nice system idle iowait irq softirq steal */
	t[0] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	t[1] = v[6];
	return true;
}

double client_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
