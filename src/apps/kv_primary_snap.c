/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_primary_snap.c - a replica's full resynchronisation while paste-kv keeps serving.
 *
 * At the snapshot's point (offset X of the stream) the names of all keys are gathered (one walk
 * of the key index; no value is read) with the pieces of every collection (kv_rdb_write_begin).
 * From then on the RDB is written a few hundred keys per event-loop round, each key as it is at
 * that moment. That is still the state at X because of copy-on-write at key granularity: before a
 * write command runs, every key it names that is not written yet is written first
 * (kv_psnap_cow, from execute()); a key that expires is written before its deletion
 * (kv_psnap_key); FLUSHALL, FLUSHDB, COPY (which may name another database) and any write
 * without key positions write all remaining keys first. Keys created after X are not in the
 * snapshot: they are in the stream. The stream from X is held for the replica meanwhile (at
 * most 256 MiB, as Redis' replica output limit) and follows once the replica acknowledged an
 * offset after the RDB, i.e. loaded it, as Redis does after a diskless transfer: the replica finds
 * the end of the RDB by its last 40 bytes, so nothing may follow them in the same read.
 *
 * The RDB goes out as Redis' diskless format: "$EOF:<40 random characters>\r\n", the file, the
 * same 40 characters. One such snapshot runs at a time; another replica that needs a full
 * resynchronisation meanwhile gets a snapshot written at once (kv_rdb_write_keyspace).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kv.h"
#include "kv_primary.h"

#define SNAP_QUEUE_MAX (4u << 20) /* no more while the replica has this much unsent */

struct kv_psnap {
	struct kv_pconn *pc;
	struct kv_rdb_snap *rs;
	uint64_t off; /* the snapshot's point in the stream */
	uint64_t crc, bytes, t0;
	char mark[41];
	uint8_t *names; /* key names (stored form), back to back */
	size_t names_len, names_cap;
	uint64_t *keys; /* (offset << 16 | length << 1 | written) into names */
	size_t nkeys, keys_cap, next, left;
	uint32_t *ht; /* open addressing: index + 1 into keys */
	size_t ht_cap;
	uint64_t cow; /* keys written ahead of a command */
};

static struct kv_psnap *active_snap; /* one at a time (the event loop's thread only) */

static uint64_t hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

struct gather {
	struct kvd *d;
	struct kv_psnap *s;
	int err;
};

static int names_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct gather *g = arg;
	struct kv_psnap *s = g->s;
	const uint8_t *p = paste_pool__ref_ptr(g->d->pool, key);

	(void)val;
	if (!p || !key->len)
		return 0;
	if (s->names_len + key->len > s->names_cap) {
		size_t cap = s->names_cap ? s->names_cap * 2 : 1u << 16;
		uint8_t *v;

		while (cap < s->names_len + key->len)
			cap *= 2;
		v = realloc(s->names, cap);
		if (!v)
			return g->err = -ENOMEM;
		s->names = v;
		s->names_cap = cap;
	}
	if (s->nkeys == s->keys_cap) {
		size_t cap = s->keys_cap ? s->keys_cap * 2 : 1024;
		uint64_t *v = realloc(s->keys, cap * sizeof(*v));

		if (!v)
			return g->err = -ENOMEM;
		s->keys = v;
		s->keys_cap = cap;
	}
	memcpy(s->names + s->names_len, p, key->len);
	s->keys[s->nkeys++] = (uint64_t)s->names_len << 16 | (uint64_t)key->len << 1;
	s->names_len += key->len;
	return 0;
}

static const uint8_t *name_of(const struct kv_psnap *s, size_t i, size_t *n)
{
	*n = (size_t)(s->keys[i] >> 1) & 0x7FFF;
	return s->names + (s->keys[i] >> 16);
}

static int index_names(struct kv_psnap *s)
{
	s->ht_cap = 16;
	while (s->ht_cap < s->nkeys * 2)
		s->ht_cap *= 2;
	s->ht = calloc(s->ht_cap, sizeof(*s->ht));
	if (!s->ht)
		return -ENOMEM;
	for (size_t i = 0; i < s->nkeys; i++) {
		size_t n;
		const uint8_t *k = name_of(s, i, &n);
		size_t h = (size_t)hash(k, n) & (s->ht_cap - 1);

		while (s->ht[h])
			h = (h + 1) & (s->ht_cap - 1);
		s->ht[h] = (uint32_t)i + 1;
	}
	s->left = s->nkeys;
	return 0;
}

static long find(const struct kv_psnap *s, const uint8_t *k, size_t n)
{
	size_t h = (size_t)hash(k, n) & (s->ht_cap - 1);

	for (; s->ht[h]; h = (h + 1) & (s->ht_cap - 1)) {
		size_t i = s->ht[h] - 1, m;
		const uint8_t *q = name_of(s, i, &m);

		if (m == n && !memcmp(q, k, n))
			return (long)i;
	}
	return -1;
}

static void snap_free(struct kv_psnap *s)
{
	if (!s)
		return;
	kv_rdb_write_free(s->rs);
	free(s->names);
	free(s->keys);
	free(s->ht);
	if (active_snap == s)
		active_snap = NULL;
	free(s);
}

/* Queue @b's bytes on the replica (part of the RDB: counted in its CRC). */
static int send_rdb(struct kvd *d, struct kv_psnap *s, struct kv_rbuf *b)
{
	struct kconn *kc = s->pc->kc;

	s->crc = kv_rdb_write_crc64(s->crc, b->p, b->len);
	s->bytes += b->len;
	if (out(kc, b->p, b->len))
		return -ENOMEM;
	b->len = 0;
	if (!kc->closing)
		flush_out(d, kc->c, kc);
	return 0;
}

/* The snapshot cannot be finished: drop the replica (it reconnects and tries again). */
static void snap_fail(struct kvd *d, struct kv_psnap *s, const char *why)
{
	struct kv_pconn *pc = s->pc;

	(void)d;
	fprintf(stderr, "paste-kv: replica %s:%u: full resync failed: %s\n", pc->ip, pc->port, why);
	pc->dropped = true;
	pc->snap = false;
	paste_conn__abort(pc->kc->c);
	snap_free(s);
}

static int write_one(struct kv_psnap *s, size_t i, struct kv_rbuf *b)
{
	size_t n;
	const uint8_t *k = name_of(s, i, &n);

	if (s->keys[i] & 1)
		return 0;
	s->keys[i] |= 1;
	s->left--;
	return kv_rdb_write_key(s->rs, k, n, b);
}

static void write_all(struct kvd *d, struct kv_psnap *s, struct kv_rbuf *b)
{
	for (size_t i = 0; i < s->nkeys; i++)
		if (write_one(s, i, b) ||
		    (b->len >= kv_primary_snap_step(d) && send_rdb(d, s, b))) {
			snap_fail(d, s, "out of memory");
			return;
		}
}

/*
 * Start the snapshot at offset @off for @pc (after its +FULLRESYNC line). @return 0, -EBUSY (one
 * is running: the caller writes one at once instead), or -ENOMEM.
 */
int kv_psnap_start(struct kvd *d, struct kv_pconn *pc, uint64_t off)
{
	static const char al[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	struct kv_psnap *s;
	struct gather g = {.d = d};
	struct kv_rbuf b = {0};
	uint8_t rnd[40];
	char hdr[64];
	int err;

	if (active_snap)
		return -EBUSY;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	g.s = s;
	s->pc = pc;
	s->off = off;
	s->t0 = mono_ns();
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (uint8_t)(s->t0 >> (i % 8 * 8)) + (uint8_t)i * 31;
	for (size_t i = 0; i < 40; i++)
		s->mark[i] = al[rnd[i] % (sizeof(al) - 1)];
	paste_kv__iterate(d->kv, names_fn, &g);
	err = g.err;
	if (!err)
		err = index_names(s);
	if (!err)
		err = kv_rdb_write_begin(d, &s->rs, &b);
	snprintf(hdr, sizeof(hdr), "$EOF:%s\r\n", s->mark);
	if (!err && out_str(pc->kc, hdr))
		err = -ENOMEM;
	active_snap = s;
	pc->snap = true;
	if (!err)
		err = send_rdb(d, s, &b);
	free(b.p);
	if (err) {
		active_snap = NULL;
		pc->snap = false;
		snap_free(s);
		return err;
	}
	return 0;
}

bool kv_psnap_busy(const struct kvd *d)
{
	(void)d;
	return active_snap != NULL;
}

/* Before a write command: write the keys it names (or all) if they are not written yet. */
void kv_psnap_cow(struct req *r, const struct command *cmd)
{
	struct kv_psnap *s = active_snap;
	int (*fn)(struct req *) = command_fn(cmd);
	struct kv_rbuf b = {0};
	int last;

	if (!s || !(cmd->flags & F_WRITE))
		return;
	if (cmd->first <= 0 || fn == cmd_copy || fn == cmd_flushall || fn == cmd_flushdb) {
		write_all(r->d, s, &b);
	} else {
		last = cmd->last < 0 ? (int)r->cmd->argc + cmd->last : cmd->last;
		for (int i = cmd->first; i <= last && i < (int)r->cmd->argc; i += cmd->step) {
			struct str k;
			long at;

			if (arg_key(r, (unsigned)i, &k))
				continue;
			at = find(s, k.p, k.n);
			if (at >= 0 && !(s->keys[at] & 1)) {
				s->cow++;
				if (write_one(s, (size_t)at, &b)) {
					snap_fail(r->d, s, "out of memory");
					break;
				}
			}
		}
	}
	if (active_snap == s && b.len && send_rdb(r->d, s, &b))
		snap_fail(r->d, s, "out of memory");
	free(b.p);
}

/* Key @k (stored form) is about to be deleted by expiry: write it first. */
void kv_psnap_key(struct kvd *d, const uint8_t *k, size_t n)
{
	struct kv_psnap *s = active_snap;
	struct kv_rbuf b = {0};
	long at;

	if (!s || (at = find(s, k, n)) < 0 || (s->keys[at] & 1))
		return;
	if (write_one(s, (size_t)at, &b) || send_rdb(d, s, &b))
		snap_fail(d, s, "out of memory");
	free(b.p);
}

/*
 * From the event loop: write the next keys (at most --repl-snapshot-step bytes of RDB, and only
 * while the replica reads), or finish. @return 1 when more can be written at once, else 0.
 */
int kv_psnap_step(struct kvd *d)
{
	struct kv_psnap *s = active_snap;
	struct kconn *kc;
	struct kv_rbuf b = {0};
	int more = 0;

	if (!s)
		return 0;
	kc = s->pc->kc;
	if (kc->q.queued > SNAP_QUEUE_MAX)
		return 0;
	while (s->next < s->nkeys && b.len < kv_primary_snap_step(d))
		if (write_one(s, s->next++, &b)) {
			free(b.p);
			snap_fail(d, s, "out of memory, or a piece of a value is missing");
			return 0;
		}
	if (s->next < s->nkeys) {
		more = send_rdb(d, s, &b) == 0;
	} else if (kv_rdb_write_end(s->rs, &b, s->crc) || out(kc, b.p, b.len) ||
	           out(kc, s->mark, 40)) {
		snap_fail(d, s, "out of memory");
	} else {
		s->bytes += b.len + 40;
		printf("paste-kv: replica %s:%u full resync at offset %" PRIu64 ": snapshot of %zu "
		       "keys, %" PRIu64 " bytes, written in %" PRIu64 " ms while serving (%" PRIu64
		       " keys written ahead of a write)\n",
		       s->pc->ip, s->pc->port, s->off, s->nkeys, s->bytes,
		       (mono_ns() - s->t0) / 1000000, s->cow);
		fflush(stdout);
		s->pc->rdb_done = true; /* the stream follows its first ACK (kv_primary.c) */
		kv_primary_snapshot_done(d, s->bytes, (mono_ns() - s->t0) / 1000);
		if (!kc->closing)
			flush_out(d, kc->c, kc);
		snap_free(s);
	}
	free(b.p);
	return more;
}

void kv_psnap_closed(struct kvd *d, struct kv_pconn *pc)
{
	(void)d;
	if (active_snap && active_snap->pc == pc) {
		pc->snap = false;
		snap_free(active_snap);
	}
}
