/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_primary.h - paste-kv as a replication primary that unmodified redis-server replicas follow:
 * the replication stream and its backlog, SYNC/PSYNC/REPLCONF, WAIT, ROLE, INFO replication
 * (kv_primary.c), what a write propagates (kv_primary_prop.c), the RDB snapshot
 * (kv_rdb_write.c) and the PUBLISH/SUBSCRIBE that Sentinel uses (kv_pubsub.c).
 * docs/paste-kv.md, "Replication", has the design.
 */
#ifndef PASTE_KV_PRIMARY_H
#define PASTE_KV_PRIMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvd;
struct kconn;
struct req;
struct command;

#define KV_PRIMARY_BACKLOG_DEFAULT (1u << 20)     /* --repl-backlog-size, as Redis' default */
#define KV_PRIMARY_OUT_MAX         (256ull << 20) /* a replica further behind is dropped */
#define KV_PRIMARY_PING_NS         2000000000ull /* PING in the stream (repl-ping-replica-period) */
#define KV_PRIMARY_TICK_MS         100           /* event loop wake-up while replicating */
#define KV_PRIMARY_SNAP_STEP       (256u << 10) /* --repl-snapshot-step default: RDB bytes per round */

/* A growable byte buffer (the RDB being written, a command being propagated). */
struct kv_rbuf {
	uint8_t *p;
	size_t len, cap;
};

int kv_rbuf_add(struct kv_rbuf *b, const void *p, size_t n);

/* Where a command's reply begins in its connection's output queue. */
struct kv_pmark {
	size_t rel;     /* reply-queue segments queued before the command */
	size_t ob_len;  /* bytes in the output buffer before it */
	uint32_t last;  /* length of the last item before it */
	uint8_t *reply; /* the reply as one buffer, once collected (malloc'ed) */
	size_t reply_len;
};

/* Replication state of one connection: a replica, a client blocked in WAIT, a subscriber. */
struct kv_pconn {
	struct kconn *kc;
	bool replica;  /* SYNC/PSYNC done: the connection gets the stream */
	bool online;   /* the replica acknowledged an offset (its snapshot is loaded) */
	bool snap;     /* its snapshot is being written: the stream waits in the backlog */
	bool capa_eof; /* REPLCONF capa eof: takes an RDB of unknown length ($EOF:<mark>) */
	bool rdb_done; /* its snapshot is out: the stream follows its first ACK (it loaded it) */
	struct kv_rbuf held; /* the stream since its snapshot's point, until then */
	bool dropped;        /* too far behind: aborted, waiting for on_close */
	bool waiting;        /* WAIT: blocked */
	bool resume;         /* WAIT ended: serve its pending input from the event loop */
	uint16_t port;       /* REPLCONF listening-port */
	char ip[48];
	uint64_t ack_off, ack_ms;
	uint64_t wait_off, wait_deadline_ns;
	int64_t wait_n;
	char **chans; /* SUBSCRIBE (kv_pubsub.c) */
	unsigned nchans;
};

/* kv_primary.c */
struct kv_pconn **kv_primary_pconns(struct kvd *d, size_t *n);
struct kv_pconn *kv_primary_pconn(struct kvd *d, struct kconn *kc);
int kv_primary_init(struct kvd *d, uint64_t backlog_size, uint64_t snap_step);
size_t kv_primary_snap_step(const struct kvd *d);
void kv_primary_free(struct kvd *d);
void kv_primary_closed(struct kvd *d, struct kconn *kc);
int kv_primary_poll_ms(struct kvd *d);
void kv_primary_tick(struct kvd *d);
int kv_primary_emit(struct kvd *d, const void *p, size_t n);
void kv_primary_info(struct kvd *d);
int cmd_sync(struct req *r);
int cmd_psync(struct req *r);
int cmd_replconf(struct req *r);
int cmd_wait(struct req *r);
int cmd_role(struct req *r);

/* kv_primary_prop.c: called around every command by execute() */
void kv_primary_before(struct req *r, const struct command *cmd, struct kv_pmark *m);
void kv_primary_after(struct req *r, const struct command *cmd, struct kv_pmark *m);
void kv_primary_expired(struct kvd *d, const uint8_t *k, size_t n);
int kv_primary_select(struct kvd *d, int db);
uint64_t kv_primary_offset(const struct kvd *d);
const char *kv_primary_runid(const struct kvd *d);
bool kv_primary_active(struct kvd *d, bool **in_multi);
bool kv_primary_is_replica(const struct kconn *kc);

/* kv_rdb_write.c */
struct kv_rdb_snap;
uint64_t kv_rdb_write_crc64(uint64_t crc, const void *p, size_t n);
int kv_rdb_write_keyspace(struct kvd *d, struct kv_rbuf *b);
int kv_rdb_write_begin(struct kvd *d, struct kv_rdb_snap **s, struct kv_rbuf *b);
int kv_rdb_write_key(struct kv_rdb_snap *s, const uint8_t *k, size_t n, struct kv_rbuf *b);
int kv_rdb_write_end(struct kv_rdb_snap *s, struct kv_rbuf *b, uint64_t crc);
void kv_rdb_write_free(struct kv_rdb_snap *s);

/* kv_primary_snap.c: a full resynchronisation's snapshot, written while serving */
struct kv_psnap;
int kv_psnap_start(struct kvd *d, struct kv_pconn *pc, uint64_t off);
bool kv_psnap_busy(const struct kvd *d);
void kv_psnap_cow(struct req *r, const struct command *cmd);
void kv_psnap_key(struct kvd *d, const uint8_t *k, size_t n);
int kv_psnap_step(struct kvd *d);
void kv_psnap_closed(struct kvd *d, struct kv_pconn *pc);
void kv_primary_snapshot_done(struct kvd *d, uint64_t bytes, uint64_t us);

/* kv_pubsub.c */
int cmd_publish(struct req *r);
int cmd_subscribe(struct req *r);
int cmd_unsubscribe(struct req *r);

#endif
