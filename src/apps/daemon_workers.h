/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daemon_workers.h - the supervisor behind --queues N / --cpus LIST, shared by the daemons.
 *
 * One worker process per NIC queue: lwIP keeps its state in globals, so a worker is a process with
 * its own lwIP, AF_XDP socket, event loop, fence and pool file. The supervisor forks them, restarts
 * one that dies, passes SIGUSR1 on and stops them all on SIGTERM/SIGINT. docs/multicore.md.
 */
#ifndef PASTE_DAEMON_WORKERS_H
#define PASTE_DAEMON_WORKERS_H

#include <stdbool.h>

#include "daemon_opts.h"

/*
 * Without --queues: returns false at once and changes nothing (one process, as before). With it:
 * forks the workers. In a worker it returns false with @d set for that worker (d->worker, the queue
 * d->paste.queue + worker, its own pool file, SO_REUSEPORT on the kernel transport, pinned to its
 * CPU): the caller goes on as a single-process daemon. In the supervisor it returns true once every
 * worker has stopped, with the exit status for the program in *@exit_code (0 if every worker
 * exited 0, else the highest status; 1 if the workers kept failing at start).
 */
bool daemon_workers_supervise(struct daemon_opts *d, const char *prog, int *exit_code);

/* A worker tells the supervisor it is serving (after its own "ready" line). No-op otherwise. */
void daemon_workers_ready(void);

/* " worker=I" in a worker, "" otherwise: for stats lines. */
const char *daemon_worker_tag(void);

#endif
