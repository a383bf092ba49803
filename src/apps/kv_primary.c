/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_primary.c - paste-kv as the primary of unmodified redis-server replicas.
 *
 * A replica connects like a client and says PING, REPLCONF listening-port/capa, then PSYNC (or
 * SYNC). A full resynchronisation answers +FULLRESYNC <replid> <offset> and a bulk of an RDB
 * snapshot of the keyspace (kv_rdb_write.c), generated at once in the event loop's thread, so it
 * is exactly the state at <offset>; every write executed after it is appended to the replica's
 * output behind the snapshot. The replication stream is the write commands as RESP
 * (kv_primary_prop.c), appended to every replica's output and to the backlog (a ring of
 * --repl-backlog-size bytes) once they are executed; the bytes leave after the round's fence,
 * like replies, so a replica never sees a write the primary could still lose. Offsets count the
 * stream's bytes; a replica that reconnects with PSYNC <replid> <offset> inside the backlog gets
 * +CONTINUE and the bytes from <offset>. Replicas send REPLCONF ACK <offset> every second; WAIT
 * blocks its client (not the event loop) until enough replicas acknowledged the offset of the
 * stream when WAIT ran, or the timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "kv.h"
#include "kv_primary.h"

struct kv_primary {
	char replid[41];
	uint64_t off;     /* master_repl_offset: bytes of stream produced */
	uint8_t *bl;      /* the backlog ring */
	uint64_t bl_size; /* --repl-backlog-size */
	uint64_t bl_hist; /* bytes in it (the last bl_hist bytes of the stream) */
	size_t bl_idx;    /* where the next byte goes */
	bool active;      /* a replica attached once: the stream is produced */
	int seldb;        /* database the stream last selected (-1: select before the next) */
	bool in_multi;    /* a MULTI was propagated and its EXEC not yet */
	bool kick;        /* output queued outside a round: poll again at once */
	uint64_t getack_off;
	uint64_t last_ping_ns;
	struct kv_pconn **pcs;
	size_t npcs, pcs_cap;
	uint64_t full_syncs, partial_ok, partial_err, rdb_bytes, rdb_us;
	size_t snap_step; /* --repl-snapshot-step */
};

int kv_primary_init(struct kvd *d, uint64_t backlog_size, uint64_t snap_step)
{
	static const char hex[] = "0123456789abcdef";
	struct kv_primary *p = calloc(1, sizeof(*p));
	uint8_t rnd[20];

	if (!p)
		return -ENOMEM;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		uint64_t t = mono_ns() ^ (uint64_t)getpid() << 32;

		for (size_t i = 0; i < sizeof(rnd); i++, t = t * 6364136223846793005ull + 1)
			rnd[i] = (uint8_t)(t >> 56);
	}
	for (size_t i = 0; i < sizeof(rnd); i++) {
		p->replid[2 * i] = hex[rnd[i] >> 4];
		p->replid[2 * i + 1] = hex[rnd[i] & 15];
	}
	p->bl_size = backlog_size ? backlog_size : KV_PRIMARY_BACKLOG_DEFAULT;
	p->snap_step = snap_step ? snap_step : KV_PRIMARY_SNAP_STEP;
	p->seldb = -1;
	d->prim = p;
	return 0;
}

static void pconn_free(struct kv_pconn *pc)
{
	free(pc->held.p);
	for (unsigned i = 0; i < pc->nchans; i++)
		free(pc->chans[i]);
	free(pc->chans);
	free(pc);
}

void kv_primary_free(struct kvd *d)
{
	struct kv_primary *p = d->prim;

	if (!p)
		return;
	for (size_t i = 0; i < p->npcs; i++)
		pconn_free(p->pcs[i]);
	free(p->pcs);
	free(p->bl);
	free(p);
	d->prim = NULL;
}

struct kv_pconn **kv_primary_pconns(struct kvd *d, size_t *n)
{
	*n = d->prim ? d->prim->npcs : 0;
	return d->prim ? d->prim->pcs : NULL;
}

/* The connection's replication state, made on first use. NULL: out of memory. */
struct kv_pconn *kv_primary_pconn(struct kvd *d, struct kconn *kc)
{
	struct kv_primary *p = d->prim;
	struct kv_pconn *pc;

	if (kc->pc || !p)
		return kc->pc;
	if (p->npcs == p->pcs_cap) {
		size_t cap = p->pcs_cap ? p->pcs_cap * 2 : 8;
		struct kv_pconn **v = realloc(p->pcs, cap * sizeof(*v));

		if (!v)
			return NULL;
		p->pcs = v;
		p->pcs_cap = cap;
	}
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return NULL;
	pc->kc = kc;
	p->pcs[p->npcs++] = pc;
	kc->pc = pc;
	return pc;
}

/* on_close: forget the connection. */
void kv_primary_closed(struct kvd *d, struct kconn *kc)
{
	struct kv_primary *p = d->prim;

	if (!p || !kc->pc)
		return;
	kv_psnap_closed(d, kc->pc);
	for (size_t i = 0; i < p->npcs; i++)
		if (p->pcs[i] == kc->pc) {
			if (kc->pc->replica)
				printf("paste-kv: replica %s:%u disconnected (acknowledged offset "
				       "%" PRIu64 ")\n",
				       kc->pc->ip, kc->pc->port, kc->pc->ack_off);
			pconn_free(kc->pc);
			p->pcs[i] = p->pcs[--p->npcs];
			break;
		}
	kc->pc = NULL;
	fflush(stdout);
}

/* ---- the stream and the backlog ---------------------------------------------------------------
 */

static void backlog_add(struct kv_primary *p, const uint8_t *b, size_t n)
{
	if (n >= p->bl_size) { /* only the last bl_size bytes stay */
		b += n - p->bl_size;
		n = (size_t)p->bl_size;
	}
	while (n) {
		size_t k = (size_t)p->bl_size - p->bl_idx < n ? (size_t)p->bl_size - p->bl_idx : n;

		memcpy(p->bl + p->bl_idx, b, k);
		p->bl_idx = (p->bl_idx + k) % p->bl_size;
		p->bl_hist = p->bl_hist + k > p->bl_size ? p->bl_size : p->bl_hist + k;
		b += k;
		n -= k;
	}
}

static uint64_t backlog_first(const struct kv_primary *p)
{
	return p->off - p->bl_hist + 1; /* offset of the oldest byte held (offsets count from 1) */
}

/* Queue the stream from offset @from (inside the backlog) on @kc. */
static int backlog_send(struct kv_primary *p, struct kconn *kc, uint64_t from)
{
	uint64_t skip = from - backlog_first(p), n = p->bl_hist - skip;
	size_t at = (size_t)((p->bl_idx + p->bl_size - p->bl_hist + skip) % p->bl_size);

	while (n) {
		size_t k = (size_t)p->bl_size - at < n ? (size_t)p->bl_size - at : (size_t)n;

		if (out(kc, p->bl + at, k))
			return -ENOMEM;
		at = (at + k) % p->bl_size;
		n -= k;
	}
	return 0;
}

/* RDB bytes a snapshot writes per event-loop round (kv_primary_snap.c). */
size_t kv_primary_snap_step(const struct kvd *d)
{
	return d->prim->snap_step;
}

void kv_primary_snapshot_done(struct kvd *d, uint64_t bytes, uint64_t us)
{
	d->prim->rdb_bytes = bytes;
	d->prim->rdb_us = us;
}

/* Append @n bytes to the stream: the backlog, and every replica's output. */
int kv_primary_emit(struct kvd *d, const void *buf, size_t n)
{
	struct kv_primary *p = d->prim;

	if (!p || !p->active || !n)
		return 0;
	backlog_add(p, buf, n);
	p->off += n;
	for (size_t i = 0; i < p->npcs; i++) {
		struct kv_pconn *pc = p->pcs[i];
		struct kconn *kc = pc->kc;

		if (!pc->replica || pc->dropped || kc->closing)
			continue;
		if (pc->snap) { /* its snapshot is being written or loaded: hold the stream */
			if (kv_rbuf_add(&pc->held, buf, n) == 0 &&
			    pc->held.len <= KV_PRIMARY_OUT_MAX)
				continue;
			fprintf(stderr,
			        "paste-kv: replica %s:%u: more than %llu bytes of stream while its "
			        "snapshot is written and loaded: dropping it\n",
			        pc->ip, pc->port, (unsigned long long)KV_PRIMARY_OUT_MAX);
			pc->dropped = true;
			paste_conn__abort(kc->c);
			continue;
		}
		if (out(kc, buf, n) || kc->q.queued > KV_PRIMARY_OUT_MAX) {
			fprintf(stderr,
			        "paste-kv: replica %s:%u is %zu bytes behind (limit %llu): "
			        "dropping it; it will resynchronise when it reconnects\n",
			        pc->ip, pc->port, kc->q.queued,
			        (unsigned long long)KV_PRIMARY_OUT_MAX);
			pc->dropped = true;
			paste_conn__abort(kc->c);
			continue;
		}
		flush_out(d, kc->c, kc);
	}
	return 0;
}

static int emit_str(struct kvd *d, const char *s)
{
	return kv_primary_emit(d, s, strlen(s));
}

/* ---- SYNC, PSYNC, REPLCONF ----------------------------------------------------------------------
 */

static int activate(struct kvd *d)
{
	struct kv_primary *p = d->prim;

	if (p->active)
		return 0;
	p->bl = malloc(p->bl_size);
	if (!p->bl)
		return -ENOMEM;
	p->active = true;
	p->bl_hist = 0;
	p->bl_idx = 0;
	p->last_ping_ns = mono_ns();
	return 0;
}

static void become_replica(struct kvd *d, struct kv_pconn *pc)
{
	struct in_addr a;
	uint16_t port;

	pc->replica = true;
	if (!pc->ip[0]) {
		paste_conn__peer(pc->kc->c, &a, &port);
		inet_ntop(AF_INET, &a, pc->ip, sizeof(pc->ip));
	}
	pc->ack_ms = wall_ms();
	(void)d;
}

static int full_sync(struct req *r, struct kv_pconn *pc, bool psync)
{
	struct kvd *d = r->d;
	struct kv_primary *p = d->prim;
	struct kconn *kc = r->kc;
	struct kv_rbuf rb = {0};
	uint64_t t0 = mono_ns();
	char line[96];
	int err;

	if (activate(d))
		return out_err(kc, "ERR out of memory for the replication backlog");
	p->seldb = -1;               /* the stream selects its database before the next command */
	if (psync && pc->capa_eof) { /* written while serving (kv_primary_snap.c) */
		snprintf(line, sizeof(line), "+FULLRESYNC %s %" PRIu64 "\r\n", p->replid, p->off);
		if (out_str(kc, line))
			return -ENOMEM;
		err = kv_psnap_start(d, pc, p->off);
		if (!err) {
			become_replica(d, pc);
			p->full_syncs++;
			return 0;
		}
		if (err != -EBUSY) {
			kc->quit = true;
			return out_err(kc, "ERR cannot start the snapshot: %s", strerror(-err));
		}
		psync = false; /* one is being written: this one at once, after the line above */
	}
	err = kv_rdb_write_keyspace(d, &rb);
	if (err) {
		free(rb.p);
		fprintf(stderr, "paste-kv: cannot write the snapshot for a replica: %s\n",
		        strerror(-err));
		kc->quit = true;
		return out_err(kc, "ERR cannot write the snapshot: %s", strerror(-err));
	}
	if (psync) {
		snprintf(line, sizeof(line), "+FULLRESYNC %s %" PRIu64 "\r\n", p->replid, p->off);
		err = out_str(kc, line);
	}
	err = err || out_hdr(kc, '$', (int64_t)rb.len) || out(kc, rb.p, rb.len);
	free(rb.p);
	if (err) {
		kc->quit = true;
		return -ENOMEM;
	}
	become_replica(d, pc);
	p->full_syncs++;
	p->rdb_bytes = rb.len;
	p->rdb_us = (mono_ns() - t0) / 1000;
	printf("paste-kv: replica %s:%u full resync at offset %" PRIu64 ": snapshot %zu bytes "
	       "written in %" PRIu64 " us\n",
	       pc->ip, pc->port, p->off, rb.len, p->rdb_us);
	fflush(stdout);
	return 0;
}

/* No chained replication, and a --queues worker holds only its share of the keys. */
static int refuse_sync(struct req *r)
{
	if (replica_active(r->d))
		return out_err(r->kc,
		               "ERR paste-kv serves no replicas while it is a replica itself "
		               "(no chained replication)"),
		       1;
	if (r->d->d.queues > 1)
		return out_err(r->kc, "ERR paste-kv --queues serves no replicas (each worker holds "
		                      "only its share of the keys): run one process"),
		       1;
	return 0;
}

int cmd_sync(struct req *r)
{
	struct kv_pconn *pc = kv_primary_pconn(r->d, r->kc);

	if (refuse_sync(r))
		return 0;
	if (!pc)
		return out_err(r->kc, "ERR out of memory");
	if (pc->replica)
		return 0; /* Redis ignores SYNC from a replica that already syncs */
	if (r->kc->multi || r->queued)
		return out_err(r->kc, "ERR Replica can't be in MULTI");
	return full_sync(r, pc, false);
}

/* PSYNC replid offset: +CONTINUE when @offset is in the backlog of this replid, else full. */
int cmd_psync(struct req *r)
{
	struct kvd *d = r->d;
	struct kv_primary *p = d->prim;
	struct kv_pconn *pc = kv_primary_pconn(d, r->kc);
	const uint8_t *id = arg(r, 1);
	int64_t from;
	char line[96];

	if (refuse_sync(r))
		return 0;
	if (!pc)
		return out_err(r->kc, "ERR out of memory");
	if (pc->replica)
		return 0;
	if (r->queued)
		return out_err(r->kc, "ERR Replica can't be in MULTI");
	if (!arg_ll(r, 2, &from))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if (p->active && id && arg_len(r, 1) == 40 && !memcmp(id, p->replid, 40) && from > 0 &&
	    (uint64_t)from >= backlog_first(p) && (uint64_t)from <= p->off + 1) {
		snprintf(line, sizeof(line), "+CONTINUE %s\r\n", p->replid);
		if (out_str(r->kc, line) || backlog_send(p, r->kc, (uint64_t)from))
			return -ENOMEM;
		become_replica(d, pc);
		p->partial_ok++;
		printf("paste-kv: replica %s:%u partial resync from offset %" PRId64 " (%" PRIu64
		       " bytes of backlog)\n",
		       pc->ip, pc->port, from, p->off + 1 - (uint64_t)from);
		fflush(stdout);
		return 0;
	}
	if (!(id && arg_len(r, 1) == 1 && id[0] == '?'))
		p->partial_err++;
	return full_sync(r, pc, true);
}

static void check_waiters(struct kvd *d);

/* REPLCONF listening-port N | ip-address A | capa X... | ACK off [FACK off] | GETACK * */
int cmd_replconf(struct req *r)
{
	struct kvd *d = r->d;
	struct kv_pconn *pc;

	if (r->kc->master)
		return replica_replconf(r); /* GETACK from our own primary */
	pc = kv_primary_pconn(d, r->kc);
	if (!pc)
		return out_err(r->kc, "ERR out of memory");
	if (pc->replica && !arg_is(r, 1, "ACK"))
		return 0; /* nothing but the stream goes to a replica */
	if (r->cmd->argc % 2 == 0)
		return out_err(r->kc, "ERR syntax error");
	for (unsigned i = 1; i + 1 < r->cmd->argc; i += 2) {
		int64_t v;

		if (arg_is(r, i, "ACK")) {
			if (!arg_ll(r, i + 1, &v) || v < 0)
				return 0; /* Redis ignores a bad ACK silently */
			if ((uint64_t)v > pc->ack_off)
				pc->ack_off = (uint64_t)v;
			pc->ack_ms = wall_ms();
			if (pc->snap && pc->rdb_done) { /* it loaded the snapshot: the stream now */
				pc->snap = false;
				if (out(r->kc, pc->held.p, pc->held.len))
					r->kc->quit = true;
				free(pc->held.p);
				pc->held = (struct kv_rbuf){0};
				flush_out(d, r->kc->c, r->kc);
			}
			pc->online = pc->replica && !pc->snap;
			check_waiters(d);
			return 0; /* no reply to an ACK */
		} else if (arg_is(r, i, "listening-port")) {
			if (!arg_ll(r, i + 1, &v) || v < 0 || v > 65535)
				return out_err(r->kc,
				               "ERR value is not an integer or out of range");
			pc->port = (uint16_t)v;
		} else if (arg_is(r, i, "ip-address")) {
			uint32_t n = arg_len(r, i + 1);
			const uint8_t *a = arg(r, i + 1);

			if (!a || n >= sizeof(pc->ip))
				return out_err(r->kc, "ERR ip-address too long");
			memcpy(pc->ip, a, n);
			pc->ip[n] = 0;
		} else if (arg_is(r, i, "GETACK")) {
			return 0; /* a primary ignores it */
		} else if (arg_is(r, i, "capa")) {
			pc->capa_eof |= arg_is(r, i + 1, "eof");
		} else if (!arg_is(r, i, "rdb-only") && !arg_is(r, i, "rdb-filter-only")) {
			const uint8_t *a = arg(r, i);

			return out_err(r->kc, "ERR Unrecognized REPLCONF option: %.*s",
			               (int)(arg_len(r, i) < 64 ? arg_len(r, i) : 64),
			               a ? (const char *)a : "");
		}
	}
	return out_str(r->kc, "+OK\r\n");
}

/* ---- WAIT -------------------------------------------------------------------------------------
 */

static int64_t acked(struct kvd *d, uint64_t off)
{
	struct kv_primary *p = d->prim;
	int64_t n = 0;

	for (size_t i = 0; i < p->npcs; i++)
		n += p->pcs[i]->online && !p->pcs[i]->dropped && p->pcs[i]->ack_off >= off;
	return n;
}

static void unblock(struct kvd *d, struct kv_pconn *pc, int64_t n)
{
	struct kconn *kc = pc->kc;

	pc->waiting = false;
	kc->blocked = false;
	out_hdr(kc, ':', n);
	if (!kc->closing && flush_out(d, kc->c, kc) == 0)
		pc->resume = paste_conn__pending(kc->c) > 0; /* requests after WAIT */
}

static void check_waiters(struct kvd *d)
{
	struct kv_primary *p = d->prim;

	for (size_t i = 0; i < p->npcs; i++) {
		struct kv_pconn *pc = p->pcs[i];
		int64_t n;

		if (pc->waiting && (n = acked(d, pc->wait_off)) >= pc->wait_n)
			unblock(d, pc, n);
	}
}

/* WAIT numreplicas timeout: replicas that acknowledged the stream up to this client's last write
 * (its offset: a client that wrote nothing waits for nothing, as in Redis). */
int cmd_wait(struct req *r)
{
	struct kvd *d = r->d;
	struct kv_primary *p = d->prim;
	struct kv_pconn *pc;
	int64_t want, ms, n;

	if (!arg_ll(r, 1, &want) || !arg_ll(r, 2, &ms))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if (ms < 0)
		return out_err(r->kc, "ERR timeout is negative");
	if (!p)
		return out_hdr(r->kc, ':', 0);
	n = acked(d, r->kc->woff);
	if (n >= want || r->queued)
		return out_hdr(r->kc, ':', n);
	pc = kv_primary_pconn(d, r->kc);
	if (!pc)
		return out_err(r->kc, "ERR out of memory");
	pc->waiting = true;
	pc->wait_off = r->kc->woff;
	pc->wait_n = want;
	pc->wait_deadline_ns = ms ? mono_ns() + (uint64_t)ms * 1000000ull : 0;
	r->kc->blocked = true;
	if (p->active && p->getack_off != p->off) { /* ask the replicas for their offsets now */
		emit_str(d, "*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n");
		p->getack_off = p->off;
	}
	return 0;
}

/* ---- ROLE, INFO replication ------------------------------------------------------------------ */

static size_t replicas(const struct kv_primary *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->npcs; i++)
		n += p->pcs[i]->replica && !p->pcs[i]->dropped;
	return n;
}

int cmd_role(struct req *r)
{
	struct kv_primary *p = r->d->prim;
	struct kconn *kc = r->kc;
	char num[24];
	int err;

	if (replica_active(r->d))
		return replica_role(r);
	err = out_str(kc, "*3\r\n$6\r\nmaster\r\n") || out_hdr(kc, ':', p ? (int64_t)p->off : 0) ||
	      out_hdr(kc, '*', p ? (int64_t)replicas(p) : 0);
	for (size_t i = 0; p && i < p->npcs && !err; i++) {
		struct kv_pconn *pc = p->pcs[i];

		if (!pc->replica || pc->dropped)
			continue;
		snprintf(num, sizeof(num), "%u", pc->port);
		err = out_str(kc, "*3\r\n") ||
		      out_value(kc, (const uint8_t *)pc->ip, strlen(pc->ip)) ||
		      out_value(kc, (const uint8_t *)num, strlen(num));
		snprintf(num, sizeof(num), "%" PRIu64, pc->ack_off);
		err = err || out_value(kc, (const uint8_t *)num, strlen(num));
	}
	return err ? -ENOMEM : 0;
}

void kv_primary_info(struct kvd *d)
{
	struct kv_primary *p = d->prim;
	uint64_t now = wall_ms();
	unsigned k = 0;

	big_printf(d, "# Replication\r\nrole:master\r\nconnected_slaves:%zu\r\n",
	           p ? replicas(p) : 0);
	for (size_t i = 0; p && i < p->npcs; i++) {
		struct kv_pconn *pc = p->pcs[i];

		if (!pc->replica || pc->dropped)
			continue;
		big_printf(d,
		           "slave%u:ip=%s,port=%u,state=%s,offset=%" PRIu64 ",lag=%" PRIu64 "\r\n",
		           k++, pc->ip, pc->port, pc->online ? "online" : "send_bulk", pc->ack_off,
		           (now - pc->ack_ms) / 1000);
	}
	big_printf(d,
	           "master_failover_state:no-failover\r\nmaster_replid:%s\r\n"
	           "master_replid2:0000000000000000000000000000000000000000\r\n"
	           "master_repl_offset:%" PRIu64 "\r\nsecond_repl_offset:-1\r\n"
	           "repl_backlog_active:%d\r\nrepl_backlog_size:%" PRIu64 "\r\n"
	           "repl_backlog_first_byte_offset:%" PRIu64 "\r\nrepl_backlog_histlen:%" PRIu64
	           "\r\npaste_full_syncs:%" PRIu64 "\r\npaste_partial_syncs_ok:%" PRIu64
	           "\r\npaste_partial_syncs_err:%" PRIu64 "\r\npaste_last_snapshot_bytes:%" PRIu64
	           "\r\npaste_last_snapshot_us:%" PRIu64 "\r\n\r\n",
	           p ? p->replid : "", p ? p->off : 0, p && p->active, p ? p->bl_size : 0,
	           p && p->active ? backlog_first(p) : 0, p ? p->bl_hist : 0, p ? p->full_syncs : 0,
	           p ? p->partial_ok : 0, p ? p->partial_err : 0, p ? p->rdb_bytes : 0,
	           p ? p->rdb_us : 0);
}

/* ---- the event loop's part --------------------------------------------------------------------
 */

/* How long paste_poll may wait: WAIT deadlines and the stream's PINGs need a tick. */
int kv_primary_poll_ms(struct kvd *d)
{
	struct kv_primary *p = d->prim;

	if (!p)
		return -1;
	if (p->kick) {
		p->kick = false;
		return 0;
	}
	if (kv_psnap_busy(d))
		return 1; /* a snapshot is being written: write more soon, serve meanwhile */
	for (size_t i = 0; i < p->npcs; i++)
		if (p->pcs[i]->resume)
			return 0;
	if (p->active || p->npcs)
		return KV_PRIMARY_TICK_MS;
	return -1;
}

/* After each round: WAIT timeouts, resumed clients, the stream's PING. */
void kv_primary_tick(struct kvd *d)
{
	struct kv_primary *p = d->prim;
	uint64_t now = mono_ns();

	if (!p)
		return;
	for (size_t i = 0; i < p->npcs; i++) {
		struct kv_pconn *pc = p->pcs[i];

		if (pc->waiting && pc->wait_deadline_ns && now >= pc->wait_deadline_ns) {
			unblock(d, pc, acked(d, pc->wait_off));
			p->kick = true;
		}
	}
	for (size_t i = 0; i < p->npcs; i++) {
		struct kv_pconn *pc = p->pcs[i];

		if (pc->resume && !pc->kc->blocked) {
			pc->resume = false;
			if (!pc->kc->closing)
				on_data(pc->kc->c, d); /* its requests after WAIT */
			p->kick = true;
		}
	}
	if (kv_psnap_step(d))
		p->kick = true;
	if (p->active && replicas(p) && now - p->last_ping_ns >= KV_PRIMARY_PING_NS) {
		p->last_ping_ns = now;
		emit_str(d, "*1\r\n$4\r\nPING\r\n");
		p->kick = true;
	}
}

/* ---- propagation helpers (kv_primary_prop.c) ------------------------------------------------- */

int kv_primary_select(struct kvd *d, int db)
{
	struct kv_primary *p = d->prim;
	char cmd[64];

	if (!p || !p->active || p->seldb == db)
		return 0;
	p->seldb = db;
	snprintf(cmd, sizeof(cmd), "*2\r\n$6\r\nSELECT\r\n$%d\r\n%d\r\n", db >= 10 ? 2 : 1, db);
	return emit_str(d, cmd);
}

/* Whether the stream is being produced; *in_multi: a propagated MULTI awaits its EXEC. */
bool kv_primary_active(struct kvd *d, bool **in_multi)
{
	if (!d->prim || !d->prim->active)
		return false;
	if (in_multi)
		*in_multi = &d->prim->in_multi;
	return true;
}

/* INFO's run_id: the process's replication id (random at each start, as Redis' run_id). */
const char *kv_primary_runid(const struct kvd *d)
{
	return d->prim ? d->prim->replid : "";
}

uint64_t kv_primary_offset(const struct kvd *d)
{
	return d->prim ? d->prim->off : 0;
}

bool kv_primary_is_replica(const struct kconn *kc)
{
	return kc->pc && kc->pc->replica;
}
