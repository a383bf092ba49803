/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_multi_worker.h - paste-kv --queues N: key-sharded workers forwarding requests to the key's
 * owner through shared memory (kv_multi_worker.c, docs/multicore.md "paste-kv on N queues").
 */
#ifndef PASTE_KV_MULTI_WORKER_H
#define PASTE_KV_MULTI_WORKER_H

#include <stdbool.h>

struct kvd;
struct kconn;
struct req;
struct paste_conn;

enum { KVMW_HERE, KVMW_DONE, KVMW_SENT, KVMW_LATER };

/* Supervisor, before the fork: the shared slots for @n workers. 0 or -errno (with a message). */
int kvmw_create(unsigned n);
/* Worker @me, once its store is open: join (no-op without kvmw_create). */
int kvmw_start(struct kvd *d, unsigned me);
/* serve(), before a request runs: KVMW_HERE, KVMW_DONE (answered), KVMW_SENT (forwarded),
 * KVMW_LATER (left unconsumed: stop serving the connection for now). */
int kvmw_route(struct req *r, struct paste_conn *c);
/* A request of the connection waits (for its requests in flight, or a slot): do not serve it. */
bool kvmw_stalled(const struct kconn *kc);
/* It has requests in flight or waiting: do not close it yet. */
bool kvmw_pending(const struct kconn *kc);
/* After every paste_poll(), and its timeout. */
void kvmw_tick(struct kvd *d);
int kvmw_timeout(const struct kvd *d);
void kvmw_conn_closed(struct kconn *kc);
/* INFO's "# Workers" section. */
void kvmw_info(struct kvd *d);
/* The SIGUSR1 stats line's forwarding counters (nothing without --queues). */
void kvmw_stats(const struct kvd *d);

#endif
