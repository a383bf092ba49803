/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_replica.c - paste-kv as a replica of a Redis primary (--replicaof HOST PORT, REPLICAOF /
 * SLAVEOF, REPLICAOF NO ONE), over paste_connect() so it runs on every transport.
 *
 * The link is one outgoing connection driven by the event loop:
 *   PING -> +PONG, REPLCONF listening-port <port> -> +OK, REPLCONF capa psync2 -> +OK,
 *   PSYNC <replid> <offset+1> (or PSYNC ? -1 the first time) ->
 *     +FULLRESYNC <replid> <offset>: "$<len>\r\n" and an RDB of that many bytes (newlines before
 *       it are the primary's keep-alives). It is gathered in memory, every database is flushed,
 *       and its keys are loaded (kv_rdb_read.c decodes them) by running SET / HSET / PEXPIREAT
 *       through the command table, so they are stored exactly as a client's writes are;
 *     +CONTINUE [<replid>]: the primary resends what this replica had not applied.
 *   Then the command stream: the bytes run through the same read/execute loop as a client
 *   connection (kv_net.c), with the replies dropped (the connection's kconn is marked master).
 *   The offset counts the stream bytes whose commands ran. REPLCONF ACK <offset> goes to the
 *   primary every second (and when it asks with REPLCONF GETACK), queued after the loop's round
 *   returned: it leaves after the next round's fence, so every write it acknowledges is durable.
 *
 * A dropped link is retried every second with PSYNC <replid> <offset+1>. Clients may read; every
 * command flagged write is refused with -READONLY unless it comes from the link. REPLICAOF NO ONE
 * drops the link and makes the server writable again (its data stays). A restarted process serves
 * what its pool holds at once.
 *
 * The replication id, offset and stream database are kept in the pool (index "paste-kv.repl",
 * one entry), put after every round of stream commands in the same round, so the round's fence
 * makes both durable. After a clean shutdown (SIGTERM, SHUTDOWN: no round was cut short) the pool
 * holds exactly the writes up to that offset, and a restart asks PSYNC <replid> <offset+1>. After
 * a crash (the pool was not closed cleanly) the data may be ahead of the entry by the commands of
 * the round the crash cut short, and re-running those is not safe (INCR, APPEND, RPUSH ... are not
 * idempotent): the entry is ignored and the resynchronisation is full. Promotion (REPLICAOF NO
 * ONE) and a start without --replicaof delete the entry, since the data may then diverge.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define RETRY_NS   1000000000ull  /* reconnect after a drop or a failed connect */
#define ACK_NS     1000000000ull  /* REPLCONF ACK period */
#define TIMEOUT_NS 60000000000ull /* nothing from the primary this long: the link is dead */
#define MAX_RDB    (8ull << 30)
#define REPL_INDEX "paste-kv.repl"
#define REC_KEY    "link"
#define REC_LEN    52 /* replid (40) | offset (8, little endian) | stream database (4) */

enum link_state {
	L_NONE,       /* no link (waiting to connect) */
	L_CONNECTING, /* paste_connect() under way */
	L_PING,
	L_PORT,
	L_CAPA,
	L_PSYNC,
	L_RDB_LEN, /* waiting for "$<len>" */
	L_RDB,     /* receiving the RDB */
	L_STREAM,  /* applying the command stream */
};

struct kv_replica {
	struct kvd *d;
	bool enabled; /* a replica: read-only, the link is kept up */
	char host[256];
	uint16_t port;
	struct in_addr addr;
	struct paste_conn *c;
	enum link_state state;
	uint64_t next_try_ns, last_io_ns, last_ack_ns;
	bool ack_now;
	char replid[41];
	bool have_replid;
	uint64_t offset;    /* master_repl_offset: stream bytes applied */
	uint64_t link_base; /* offset when this link's stream began */
	uint64_t consumed;  /* stream bytes consumed on this link */
	int stream_db;      /* the stream's SELECT, kept over a partial resync */
	uint8_t *rdb;       /* the RDB being received */
	size_t rdb_len, rdb_got;
	uint64_t full_syncs, partial_syncs, loaded, skipped, drops, errors, acks;
	uint64_t down_since; /* wall ms the link went down (0: never up) */
	unsigned connect_fails;
	struct paste_kv *ix; /* REPL_INDEX: the durable replid and offset (NULL: none) */
	uint64_t rec_offset; /* the offset it holds */
	bool rec_valid;      /* it holds an entry */
	unsigned rec_errors;
};

static void link_drop(struct kv_replica *rp, const char *why);

static uint64_t now_ns(void)
{
	return mono_ns();
}

/* ---- the link ------------------------------------------------------------------------------- */

static const char *state_name(const struct kv_replica *rp)
{
	switch (rp->state) {
	case L_NONE:
		return "connect";
	case L_CONNECTING:
		return "connecting";
	case L_PING:
	case L_PORT:
	case L_CAPA:
	case L_PSYNC:
		return "handshake";
	case L_RDB_LEN:
	case L_RDB:
		return "sync";
	default:
		return "connected";
	}
}

static int send_str(struct kv_replica *rp, const char *s)
{
	size_t n = strlen(s);

	return paste_conn__send(rp->c, s, n) == (ssize_t)n ? 0 : -EIO;
}

static int send_cmd(struct kv_replica *rp, int argc, const char *const *argv)
{
	char buf[512];
	size_t len = (size_t)snprintf(buf, sizeof(buf), "*%d\r\n", argc);

	for (int i = 0; i < argc && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "$%zu\r\n%s\r\n",
		                        strlen(argv[i]), argv[i]);
	if (len >= sizeof(buf))
		return -E2BIG;
	return send_str(rp, buf);
}

static void send_ack(struct kv_replica *rp)
{
	char off[32];

	snprintf(off, sizeof(off), "%" PRIu64, rp->offset);
	if (!send_cmd(rp, 3, (const char *[]){"REPLCONF", "ACK", off}))
		rp->acks++;
	rp->last_ack_ns = now_ns();
	rp->ack_now = false;
}

/* One line of the handshake (consumed), without its CRLF. @return 1, 0 (incomplete), -1. */
static int read_line(struct paste_conn *c, char *line, size_t cap)
{
	unsigned n;
	const struct paste_slot *s = paste_conn__slots(c, &n);
	size_t len = 0, total = 0;

	for (unsigned i = 0; i < n; i++)
		for (uint32_t j = 0; j < s[i].len; j++) {
			uint8_t ch = s[i].data[j];

			total++;
			if (ch == '\n') {
				if (len && line[len - 1] == '\r')
					len--;
				line[len] = 0;
				paste_conn__consume(c, total);
				return 1;
			}
			if (len + 1 >= cap)
				return -1;
			line[len++] = (char)ch;
		}
	return 0;
}

/* Put the replid, offset and stream database @db in the pool (made durable by this round's
 * fence, with the writes of the stream up to that offset). */
static void record(struct kv_replica *rp, int db)
{
	struct paste_ctx *ctx = rp->d->ctx;
	struct paste_ref kr = {0}, vr = {0};
	uint8_t v[REC_LEN];
	int err;

	if (!rp->ix || !rp->have_replid || (rp->rec_valid && rp->rec_offset == rp->offset))
		return;
	memcpy(v, rp->replid, 40);
	for (int i = 0; i < 8; i++)
		v[40 + i] = (uint8_t)(rp->offset >> (8 * i));
	for (int i = 0; i < 4; i++)
		v[48 + i] = (uint8_t)((uint32_t)db >> (8 * i));
	err = paste_keep_copy(ctx, REC_KEY, strlen(REC_KEY), &kr);
	if (!err)
		err = paste_keep_copy(ctx, v, sizeof(v), &vr);
	if (!err)
		err = paste_kv__put(rp->ix, &kr, &vr);
	if (err) {
		if (kr.len)
			paste_release(ctx, &kr);
		if (vr.len)
			paste_release(ctx, &vr);
		if (rp->rec_errors++ == 0)
			fprintf(
			    stderr,
			    "paste-kv: replica: cannot keep the replication offset in the pool: "
			    "%s (a restart will resynchronise in full; free pool frames)\n",
			    paste_last_error());
		return;
	}
	rp->rec_offset = rp->offset;
	rp->rec_valid = true;
}

static void record_del(struct kv_replica *rp)
{
	if (rp->ix && paste_kv__del(rp->ix, REC_KEY, strlen(REC_KEY)) == 0)
		rp->rec_valid = false;
}

static void stream(struct kv_replica *rp, struct paste_conn *c)
{
	struct kconn *kc = paste_conn__user(c);
	size_t before = paste_conn__pending(c);

	on_data(c, rp->d); /* kv_net.c: the client loop, replies dropped (kc->master) */
	rp->consumed += before - paste_conn__pending(c);
	rp->offset = rp->link_base + rp->consumed - kc->spilled;
	record(rp, kc->db);
}

static int start_stream(struct kv_replica *rp, struct paste_conn *c, uint64_t base, int db)
{
	struct kconn *kc = paste_conn__user(c);

	kc->db = db;
	rp->link_base = rp->offset = base;
	rp->consumed = 0;
	rp->state = L_STREAM;
	rp->ack_now = true;
	rp->down_since = 0;
	rp->rec_valid = false;
	record(rp, db); /* after a full resync: the loaded RDB's offset */
	return 0;
}

/* +FULLRESYNC / +CONTINUE / an error. @return 0, or -1 to drop the link. */
static int psync_reply(struct kv_replica *rp, struct paste_conn *c, const char *line)
{
	char id[64];
	uint64_t off;

	if (sscanf(line, "+FULLRESYNC %63s %" SCNu64, id, &off) == 2 && strlen(id) == 40) {
		memcpy(rp->replid, id, 41);
		rp->have_replid = true;
		rp->offset = off;
		rp->state = L_RDB_LEN;
		rp->full_syncs++;
		printf("paste-kv: replica: full resync from %s:%u (replid %s offset %" PRIu64 ")\n",
		       rp->host, rp->port, id, off);
		fflush(stdout);
		return 0;
	}
	if (!strncmp(line, "+CONTINUE", 9)) {
		if (sscanf(line, "+CONTINUE %63s", id) == 1 && strlen(id) == 40)
			memcpy(rp->replid, id, 41);
		rp->partial_syncs++;
		printf("paste-kv: replica: partial resync from %s:%u at offset %" PRIu64 "\n",
		       rp->host, rp->port, rp->offset);
		fflush(stdout);
		return start_stream(rp, c, rp->offset, rp->stream_db);
	}
	fprintf(stderr, "paste-kv: replica: PSYNC refused by %s:%u: %s\n", rp->host, rp->port,
	        line);
	return -1;
}

static int handshake(struct kv_replica *rp, struct paste_conn *c)
{
	char line[256], port[8], off[32];
	int r;

	while ((r = read_line(c, line, sizeof(line))) == 1) {
		switch (rp->state) {
		case L_PING:
			if (!strncmp(line, "-NOAUTH", 7)) {
				fprintf(stderr,
				        "paste-kv: replica: %s:%u wants a password (AUTH is not "
				        "supported): %s\n",
				        rp->host, rp->port, line);
				return -1;
			}
			snprintf(port, sizeof(port), "%u", rp->d->d.port);
			rp->state = L_PORT;
			if (send_cmd(rp, 3, (const char *[]){"REPLCONF", "listening-port", port}))
				return -1;
			continue;
		case L_PORT:
			rp->state = L_CAPA;
			if (send_cmd(rp, 3, (const char *[]){"REPLCONF", "capa", "psync2"}))
				return -1;
			continue;
		case L_CAPA:
			rp->state = L_PSYNC;
			snprintf(off, sizeof(off), "%" PRIu64, rp->offset + 1);
			if (send_cmd(rp, 3,
			             rp->have_replid ? (const char *[]){"PSYNC", rp->replid, off}
			                             : (const char *[]){"PSYNC", "?", "-1"}))
				return -1;
			continue;
		case L_PSYNC:
			if (!line[0])
				continue; /* a keep-alive */
			if (psync_reply(rp, c, line))
				return -1;
			if (rp->state == L_STREAM)
				return 0;
			continue;
		case L_RDB_LEN: {
			unsigned long long len;

			if (!line[0])
				continue; /* the primary's keep-alive while it saves */
			if (sscanf(line, "$%llu", &len) != 1 || len > MAX_RDB) {
				fprintf(stderr,
				        "paste-kv: replica: unexpected reply before the RDB: %.60s "
				        "(a diskless EOF-marked transfer is not supported)\n",
				        line);
				return -1;
			}
			free(rp->rdb);
			rp->rdb = malloc(len ? len : 1);
			if (!rp->rdb) {
				fprintf(stderr,
				        "paste-kv: replica: no memory for a %llu-byte RDB\n", len);
				return -1;
			}
			rp->rdb_len = len;
			rp->rdb_got = 0;
			rp->state = L_RDB;
			return 0;
		}
		default:
			return 0;
		}
	}
	if (r < 0) {
		fprintf(stderr, "paste-kv: replica: a reply line from %s:%u is too long\n",
		        rp->host, rp->port);
		return -1;
	}
	return 0;
}

/* Take RDB bytes. @return 1 when the RDB is complete, 0 for more, -1 on failure. */
static int rdb_take(struct kv_replica *rp, struct paste_conn *c)
{
	unsigned n;
	const struct paste_slot *s = paste_conn__slots(c, &n);
	size_t took = 0;

	for (unsigned i = 0; i < n && rp->rdb_got < rp->rdb_len; i++) {
		size_t k =
		    s[i].len < rp->rdb_len - rp->rdb_got ? s[i].len : rp->rdb_len - rp->rdb_got;

		memcpy(rp->rdb + rp->rdb_got, s[i].data, k);
		rp->rdb_got += k;
		took += k;
	}
	if (took)
		paste_conn__consume(c, took);
	return rp->rdb_got == rp->rdb_len;
}

static void link_data(struct paste_conn *c, void *user)
{
	struct kv_replica *rp = user;

	if (c != rp->c)
		return;
	rp->last_io_ns = now_ns();
	rp->d->now_ms = wall_ms();
	if (rp->state < L_RDB && handshake(rp, c)) {
		link_drop(rp, "handshake failed");
		return;
	}
	if (rp->state == L_RDB) {
		int r = rdb_take(rp, c);

		if (r == 0)
			return;
		r = rdb_apply(rp->d, paste_conn__user(c), rp->rdb, rp->rdb_len, &rp->loaded,
		              &rp->skipped);
		free(rp->rdb);
		rp->rdb = NULL;
		if (r) {
			link_drop(rp, "RDB not loaded");
			return;
		}
		start_stream(rp, c, rp->offset, 0);
	}
	if (rp->state == L_STREAM)
		stream(rp, c);
}

static void link_connected(struct paste_conn *c, int err, void *user)
{
	struct kv_replica *rp = user;

	if (c != rp->c)
		return;
	if (err) {
		rp->c = NULL;
		rp->state = L_NONE;
		rp->next_try_ns = now_ns() + RETRY_NS;
		if (err != -ECONNABORTED && rp->connect_fails++ % 30 == 0) /* again every ~30 s */
			fprintf(stderr, "paste-kv: replica: cannot reach %s:%u: %s (retrying)\n",
			        rp->host, rp->port, paste_last_error());
		return;
	}
	rp->connect_fails = 0;
	if (on_accept(c, rp->d)) { /* the link's client state (kv_net.c) */
		link_drop(rp, "out of memory");
		return;
	}
	((struct kconn *)paste_conn__user(c))->master = true;
	rp->state = L_PING;
	rp->last_io_ns = now_ns();
	if (send_cmd(rp, 1, (const char *[]){"PING"}))
		link_drop(rp, "cannot send");
}

static void link_closed(struct paste_conn *c, int err, void *user)
{
	struct kv_replica *rp = user;
	struct kconn *kc = paste_conn__user(c);

	if (kc) {
		if (rp->state == L_STREAM)
			rp->stream_db = kc->db;
		on_close(c, err, rp->d);
	}
	if (c != rp->c)
		return;
	if (rp->state == L_STREAM || rp->state >= L_PING)
		fprintf(stderr, "paste-kv: replica: link to %s:%u lost (%s)\n", rp->host, rp->port,
		        err ? strerror(-err) : "closed by the primary");
	rp->c = NULL;
	rp->state = L_NONE;
	rp->drops++;
	rp->down_since = wall_ms();
	rp->next_try_ns = now_ns() + RETRY_NS;
	free(rp->rdb);
	rp->rdb = NULL;
}

static void link_drop(struct kv_replica *rp, const char *why)
{
	struct paste_conn *c = rp->c;

	if (!c)
		return;
	fprintf(stderr, "paste-kv: replica: dropping the link to %s:%u: %s\n", rp->host, rp->port,
	        why);
	paste_conn__abort(c); /* link_closed (or link_connected) runs at the end of the round */
}

static void link_start(struct kv_replica *rp)
{
	static const struct paste_conn_ops ops = {.sz = sizeof(ops),
	                                          .on_connect = link_connected,
	                                          .on_data = link_data,
	                                          .on_close = link_closed};
	struct paste_conn *c;

	rp->next_try_ns = now_ns() + RETRY_NS;
	if (paste_connect(rp->d->ctx, &rp->addr, rp->port, 5000, &ops, rp, &c)) {
		if (rp->connect_fails++ % 30 == 0)
			fprintf(stderr, "paste-kv: replica: cannot connect to %s:%u: %s\n",
			        rp->host, rp->port, paste_last_error());
		return;
	}
	rp->c = c;
	rp->state = L_CONNECTING;
}

/* ---- what the rest of paste-kv calls -------------------------------------------------------- */

static struct kv_replica *repl(struct kvd *d)
{
	if (!d->repl) {
		d->repl = calloc(1, sizeof(*d->repl));
		if (d->repl)
			d->repl->d = d;
	}
	return d->repl;
}

static int resolve(const char *host, struct in_addr *out)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;

	if (inet_pton(AF_INET, host, out) == 1)
		return 0;
	if (getaddrinfo(host, NULL, &hints, &ai))
		return -1;
	*out = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
	freeaddrinfo(ai);
	return 0;
}

int replica_set(struct kvd *d, const char *host, uint16_t port, char *err, size_t errlen)
{
	struct kv_replica *rp = repl(d);
	struct in_addr a;

	if (!rp)
		return snprintf(err, errlen, "out of memory"), -ENOMEM;
	if (host && d->d.queues > 1) /* the parsing of --queues may come after --replicaof */
		return snprintf(err, errlen, "not supported with --queues (run one process)"),
		       -ENOTSUP;
	if (!host) { /* REPLICAOF NO ONE */
		if (rp->enabled)
			printf("paste-kv: replica: promoted (REPLICAOF NO ONE): writable, offset "
			       "%" PRIu64 "\n",
			       rp->offset);
		fflush(stdout);
		rp->enabled = false;
		record_del(rp); /* writable now: the data may leave the primary's history */
		link_drop(rp, "REPLICAOF NO ONE");
		return 0;
	}
	if (strlen(host) >= sizeof(rp->host) || !port || resolve(host, &a))
		return snprintf(err, errlen, "cannot resolve '%s' to an IPv4 address", host),
		       -EINVAL;
	if (rp->enabled && rp->addr.s_addr == a.s_addr && rp->port == port)
		return 1; /* already */
	if (rp->enabled && rp->c)
		link_drop(rp, "a new primary was set");
	if (rp->have_replid && (rp->addr.s_addr != a.s_addr || rp->port != port))
		rp->have_replid = false; /* another primary: a full resync */
	snprintf(rp->host, sizeof(rp->host), "%s", host);
	rp->port = port;
	rp->addr = a;
	rp->enabled = true;
	rp->next_try_ns = 0;
	rp->down_since = rp->down_since ? rp->down_since : wall_ms();
	printf("paste-kv: replica of %s:%u: read-only to clients\n", host, port);
	fflush(stdout);
	return 0;
}

int replica_opt(struct kvd *d, const char *arg)
{
	char host[256], err[128];
	unsigned port;
	const char *sep = strrchr(arg, ' ') ? strrchr(arg, ' ') : strrchr(arg, ':');

	if (!sep || (size_t)(sep - arg) >= sizeof(host) || sscanf(sep + 1, "%u", &port) != 1 ||
	    !port || port > 65535) {
		fprintf(stderr, "paste-kv: --replicaof wants 'HOST PORT' or HOST:PORT, not '%s'\n",
		        arg);
		return -1;
	}
	memcpy(host, arg, (size_t)(sep - arg));
	host[sep - arg] = 0;
	if (replica_set(d, host, (uint16_t)port, err, sizeof(err)) < 0) {
		fprintf(stderr, "paste-kv: --replicaof: %s\n", err);
		return -1;
	}
	return 0;
}

int replica_recover(struct kvd *d, bool was_clean)
{
	struct kv_replica *rp = repl(d);
	struct paste_ref v;
	const uint8_t *p;
	int err;

	if (!rp) {
		fprintf(stderr, "paste-kv: out of memory for the replica state\n");
		return -ENOMEM;
	}
	/* a primary only deletes an entry left by a replica run; it makes no index */
	err = open_index(d, REPL_INDEX, rp->enabled ? 4 : 0, &rp->ix);
	if (err) {
		if (err != -ENOENT)
			fprintf(stderr,
			        "paste-kv: replica: the replication offset will not be kept "
			        "in the pool (a restart resynchronises in full)\n");
		rp->ix = NULL;
		return 0;
	}
	if (paste_kv__get(rp->ix, REC_KEY, strlen(REC_KEY), &v) ||
	    !(p = paste_pool__ref_ptr(d->pool, &v)) || v.len != REC_LEN)
		return 0;
	if (!rp->enabled || !was_clean) {
		if (rp->enabled)
			printf(
			    "paste-kv: replica: the pool was not closed cleanly: its data may be "
			    "ahead of the kept replication offset, so the resync will be full\n");
		record_del(rp);
		return 0;
	}
	memcpy(rp->replid, p, 40);
	rp->replid[40] = 0;
	rp->offset = 0;
	for (int i = 7; i >= 0; i--)
		rp->offset = rp->offset << 8 | p[40 + i];
	rp->stream_db = (int)(p[48] | p[49] << 8 | p[50] << 16 | (uint32_t)p[51] << 24);
	rp->have_replid = true;
	rp->rec_offset = rp->offset;
	rp->rec_valid = true;
	printf("paste-kv: replica: resuming replid %s at offset %" PRIu64 " (kept in the pool)\n",
	       rp->replid, rp->offset);
	return 0;
}

void replica_tick(struct kvd *d)
{
	struct kv_replica *rp = d->repl;
	uint64_t now;

	if (!rp || !rp->enabled)
		return;
	now = now_ns();
	if (!rp->c) {
		if (now >= rp->next_try_ns)
			link_start(rp);
		return;
	}
	if (rp->state >= L_PING && now - rp->last_io_ns > TIMEOUT_NS) {
		link_drop(rp, "no data from the primary for 60 s");
		return;
	}
	if (rp->state == L_STREAM && (rp->ack_now || now - rp->last_ack_ns >= ACK_NS))
		send_ack(rp);
}

int replica_poll_ms(const struct kvd *d)
{
	return d->repl && d->repl->enabled ? 100 : -1;
}

bool replica_refuses(struct req *r)
{
	if (!r->d->repl || !r->d->repl->enabled || r->kc->master)
		return false;
	out_str(r->kc, "-READONLY You can't write against a read only replica.\r\n");
	return true;
}

void replica_apply_error(struct kvd *d, const char *msg)
{
	struct kv_replica *rp = d->repl;

	if (!rp)
		return;
	if (rp->errors++ < 10)
		fprintf(stderr, "paste-kv: replica: a command from the primary failed: %.*s%s\n",
		        (int)strcspn(msg, "\r\n"), msg,
		        rp->errors == 10 ? " (further failures are only counted: INFO replication, "
		                           "paste_apply_errors)"
		                         : "");
}

void replica_free(struct kvd *d)
{
	if (!d->repl)
		return;
	free(d->repl->rdb);
	free(d->repl);
	d->repl = NULL;
}

/* ---- commands ------------------------------------------------------------------------------- */

/* REPLICAOF host port | REPLICAOF NO ONE (and SLAVEOF). */
int cmd_replicaof(struct req *r)
{
	char host[256], err[128];
	int64_t port;
	int res;

	if (r->kc->master)
		return 0;
	if (arg_is(r, 1, "no") && arg_is(r, 2, "one")) {
		replica_set(r->d, NULL, 0, err, sizeof(err));
		return out_str(r->kc, "+OK\r\n");
	}
	if (arg_len(r, 1) >= sizeof(host) || !arg(r, 1))
		return out_err(r->kc, "ERR invalid host");
	if (!arg_ll(r, 2, &port) || port < 1 || port > 65535)
		return out_err(r->kc, "ERR Invalid master port");
	memcpy(host, arg(r, 1), arg_len(r, 1));
	host[arg_len(r, 1)] = 0;
	res = replica_set(r->d, host, (uint16_t)port, err, sizeof(err));
	if (res < 0)
		return out_err(r->kc, "ERR %s", err);
	return out_str(r->kc,
	               res == 1 ? "+OK Already connected to specified master\r\n" : "+OK\r\n");
}

/* REPLCONF: GETACK from the link asks for an ACK now; anything else is acknowledged. */
int replica_replconf(struct req *r)
{
	if (r->kc->master) {
		if (arg_is(r, 1, "getack") && r->d->repl)
			r->d->repl->ack_now = true;
		return 0;
	}
	return out_str(r->kc, "+OK\r\n");
}

bool replica_active(const struct kvd *d)
{
	return d->repl && d->repl->enabled;
}

int replica_role(struct req *r)
{
	struct kv_replica *rp = r->d->repl;
	struct kconn *kc = r->kc;
	const char *st;

	if (!rp || !rp->enabled)
		return out_str(kc, "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
	st = state_name(rp);
	return out_str(kc, "*5\r\n$5\r\nslave\r\n") ||
	               out_hdr(kc, '$', (int64_t)strlen(rp->host)) || out_str(kc, rp->host) ||
	               out_str(kc, "\r\n") || out_hdr(kc, ':', rp->port) ||
	               out_hdr(kc, '$', (int64_t)strlen(st)) || out_str(kc, st) ||
	               out_str(kc, "\r\n") || out_hdr(kc, ':', (int64_t)rp->offset)
	           ? -ENOMEM
	           : 0;
}

void info_replication(struct kvd *d)
{
	struct kv_replica *rp = d->repl;
	uint64_t now = now_ns();

	if (!rp || !rp->enabled) {
		big_printf(d,
		           "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
		           "master_replid:%s\r\nmaster_repl_offset:%" PRIu64 "\r\n\r\n",
		           rp && rp->have_replid ? rp->replid
		                                 : "0000000000000000000000000000000000000000",
		           rp ? rp->offset : 0);
		return;
	}
	big_printf(d,
	           "# Replication\r\nrole:slave\r\nmaster_host:%s\r\nmaster_port:%u\r\n"
	           "master_link_status:%s\r\nmaster_last_io_seconds_ago:%lld\r\n"
	           "master_sync_in_progress:%d\r\nslave_read_repl_offset:%" PRIu64 "\r\n"
	           "slave_repl_offset:%" PRIu64 "\r\nslave_priority:100\r\nslave_read_only:1\r\n"
	           "replica_announced:1\r\nconnected_slaves:0\r\n",
	           rp->host, rp->port, rp->state == L_STREAM ? "up" : "down",
	           rp->c && rp->state >= L_PING ? (long long)((now - rp->last_io_ns) / 1000000000)
	                                        : -1ll,
	           rp->state == L_RDB_LEN || rp->state == L_RDB, rp->offset, rp->offset);
	if (rp->state != L_STREAM && rp->down_since)
		big_printf(d, "master_link_down_since_seconds:%" PRIu64 "\r\n",
		           (wall_ms() - rp->down_since) / 1000);
	big_printf(d,
	           "master_replid:%s\r\nmaster_repl_offset:%" PRIu64 "\r\n"
	           "paste_full_syncs:%" PRIu64 "\r\npaste_partial_syncs:%" PRIu64 "\r\n"
	           "paste_loaded_keys:%" PRIu64 "\r\npaste_skipped_keys:%" PRIu64 "\r\n"
	           "paste_link_drops:%" PRIu64 "\r\npaste_apply_errors:%" PRIu64 "\r\n"
	           "paste_acks:%" PRIu64 "\r\n\r\n",
	           rp->have_replid ? rp->replid : "0000000000000000000000000000000000000000",
	           rp->offset, rp->full_syncs, rp->partial_syncs, rp->loaded, rp->skipped,
	           rp->drops, rp->errors, rp->acks);
}
