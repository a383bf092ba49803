/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv.h - what the files of paste-kv share: the server and connection state, the request being
 * executed, and the functions one file calls in another. See paste-kv.c for the overview.
 */
#ifndef PASTE_KV_H
#define PASTE_KV_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <paste/paste.h>

#include "daemon_loop.h"
#include "daemon_opts.h"
#include "daemon_replyq.h"
#include "resp.h"

/* ---- tunables -------------------------------------------------------------------------------- */

#ifndef KV_INLINE_REPLY
#define KV_INLINE_REPLY 512u /* values up to this are copied into the reply buffer, not queued */
#endif
#ifndef KV_OUT_HIGH
#define KV_OUT_HIGH (256u << 10) /* queued reply bytes above which a connection stops reading */
#endif
#define KV_INDEX       "paste-kv"
#define KV_TTL_INDEX   "paste-kv.ttl"
#define KV_SUB_INDEX   "paste-kv.sub"  /* pieces of big strings and hash fields (kv_obj.c) */
#define KV_UNDO_INDEX  "paste-kv.undo" /* multi-key writes' undo log (kv_tx.c) */
#define KV_ARENA       (256u << 10)    /* per-request scratch; larger needs are malloc'ed */
#define KV_SPILL       (32u << 10)     /* a partial request this large is kept and consumed */
#define KV_DBS         16              /* SELECT 0..15 */
#define KV_BYTES_KEY   80u /* index region bytes per key (buckets at 75 % load + 64 B entry) */
#define KV_SCAN_POS    40  /* SCAN cursor: position bits ... */
#define KV_SCAN_EPOCH  23  /* ... and deletion-count bits above them (cursor < 2^63) */
#define KV_SCAN_CALLS  8   /* a full SCAN takes at most about 2^8 calls, whatever COUNT says */
#define KV_FLUSH_BATCH 1024u
#define KV_PIECE_PFX   32u /* longest sub-key prefix before a chunk number (kv_lkey.c) */
#define KV_VERSION     "0.1.0"

enum {
	OPT_KEYS = 512,
	OPT_TTL_KEYS,
	OPT_MAX_KEY,
	OPT_MAX_VALUE,
	OPT_MAX_REQUEST,
	OPT_MAX_BULK,
	OPT_RESERVE,
	OPT_COPY_THRESHOLD,
	OPT_SUB_KEYS,
	OPT_UNDO_KEYS,
	OPT_CLUSTER_CONFIG,
	OPT_CLUSTER_ID,
	OPT_REPLICAOF,
	OPT_REPL_BACKLOG,
	OPT_REPL_SNAP_STEP,
	OPT_IDLE_TIMEOUT,
	OPT_REQUEST_TIMEOUT,
	OPT_PRESSURE_FRAMES,
};

struct kv_stats {
	uint64_t cmds, conns, hits, misses, expired, oom, proto_errors, skipped;
	uint64_t val_inplace, val_inplace_bytes, val_copied, val_copied_bytes, val_computed;
	uint64_t key_inplace, key_copied, pins, pin_copies;
	uint64_t val_packed, val_packed_bytes, key_packed; /* received, copied by the copy policy */
	uint64_t val_big, pieces_inplace, pieces_copied, spills, spill_bytes, expired_active;
};

/* Value types (kv_obj.c): a plain string (one reference), or an object header. */
enum { T_STR = 0, T_BIG = 1, T_HASH = 2, T_SET = 3, T_LIST = 4, T_ZSET = 5 };
#define IS_STRING(t)  ((t) == T_STR || (t) == T_BIG)
#define LIST_HEAD_BIT (1ull << 63) /* hash_count(gen ^ this): a list's first position */

struct obj {
	int type;
	uint64_t gen; /* T_BIG, T_HASH */
	uint64_t len; /* string bytes (T_STR, T_BIG) */
	uint64_t n;   /* T_BIG: chunks */
	struct paste_ref ref;
	const uint8_t *p; /* T_STR: the bytes */
};

/* Keys gathered while iterating an index (deleted afterwards). */
struct batch {
	struct kvd *d;
	uint8_t *buf;
	size_t len, cap;
	unsigned n;
};

/* Multi-key write in progress (kv_tx.c). */
struct kv_tx {
	unsigned depth; /* tx_begin() nesting */
	bool logged;    /* the marker is in the undo log */
	bool unfenced;  /* entries logged since the last fence: fence before the next change */
	uint64_t id, seq, gen0;
	uint64_t *seen; /* (hash, gc offset) pairs: (index, key) already logged */
	size_t seen_cap;
	uint8_t *gc; /* undo keys to delete after the round's fence: [len 4][key] */
	size_t gc_len, gc_cap;
	uint64_t txs, entries, undone; /* stats */
};

#define KV_PRESSURE_AUTO UINT64_MAX /* --pressure-frames not given: twice the reserve */

struct kvd {
	struct paste_ctx *ctx;
	struct paste_pool *pool;
	struct paste_kv *kv, *ttl, *sub, *undo;
	struct mw *mw; /* --queues: the other workers (kv_multi_worker.c); NULL otherwise */
	struct daemon_opts d;
	struct daemon_loop loop; /* the daemons' event loop, connection registry, timeouts */
	/* options */
	uint64_t keys, ttl_keys, sub_keys, undo_keys, reserve, copy_threshold;
	/* pack small received strings below this many free frames (default KV_PRESSURE_AUTO) */
	uint64_t pressure_frames;
	uint32_t max_key, max_value, frame_size;
	uint64_t pool_size; /* bytes of the pool's mapping (out_value: pool bytes or scratch) */
	struct resp_limits lim;
	/* state */
	bool low;        /* daemon_pool_low(): fewer FREE frames than reserve: writes get -OOM */
	uint64_t now_ms; /* wall clock for expiry, once per on_data */
	uint64_t del_epoch;
	time_t started;
	struct paste_kv_info rec_kv, rec_ttl; /* what the open recovered */
	uint64_t start_expired, start_orphans, start_orphan_pieces;
	/* objects (kv_obj.c) */
	uint64_t next_gen;
	bool have_objs;
	bool multi_db; /* a key of a database other than 0 may exist */
	uint64_t *hc;  /* hash field counts: open addressing, pairs (gen, count) */
	size_t hc_cap, hc_used;
	struct obj *dead; /* retired this round: pieces deleted after the fence */
	size_t dead_n, dead_cap;
	uint64_t next_client_id;
	uint64_t expire_last;         /* monotonic ns of the last active expiry cycle */
	struct watch *watches;        /* WATCH: all clients' watched keys (kv_multi.c) */
	size_t nwatches, watches_cap; /* active expiry: where the last cycle stopped */
	uint32_t conns_open;
	struct kv_stats st;
	struct kv_tx tx;
	/* large keys (kv_lkey.c): new ones of this request, and deleted ones to reap */
	struct lk_new *lk_new;
	size_t lk_new_n, lk_new_cap;
	uint8_t *lk_dead; /* surrogates, LK_LEN bytes each */
	size_t lk_dead_n, lk_dead_cap;
	/* per-request scratch: arguments gathered from several segments, computed values */
	uint8_t *arena;
	size_t arena_cap, arena_used;
	void **extra; /* larger scratch, freed by arena_reset() */
	size_t extra_n, extra_cap;
	struct kv_replica *repl; /* --replicaof / REPLICAOF (kv_replica.c); NULL: never set */
	/* growable scratch for KEYS/SCAN/INFO/COMMAND replies */
	char *big;
	size_t big_len, big_cap;
	/* cluster mode (kv_cluster.c): NULL without --cluster-config */
	struct kv_cluster *cl;
	const char *cluster_config, *cluster_id;
	uint64_t cl_moved;       /* requests answered -MOVED/-CLUSTERDOWN */
	struct kv_primary *prim; /* replication primary (kv_primary.c) */
	uint64_t repl_backlog;   /* --repl-backlog-size */
	uint64_t repl_snap_step; /* --repl-snapshot-step */
};

struct kconn {
	struct daemon_conn dc; /* in d->loop's registry: idle and request timeouts */
	struct kvd *d;
	struct resp_parser rp;
	bool quit;              /* close once the output is out */
	bool closing;           /* paste_conn__close() called */
	bool waiting;           /* the parser needs more bytes */
	struct daemon_replyq q; /* the replies, in order (daemon_replyq.h) */
	struct resp_seg *segs;
	unsigned segs_cap;
	/* a large request being received: its first bytes, kept in the pool and consumed */
	struct paste_ref *spill;
	unsigned nspill, spill_cap;
	size_t spilled;
	bool spill_done; /* the request they began has run */
	/* MULTI / WATCH (kv_multi.c) */
	bool multi, multi_err;
	uint8_t *mq; /* queued requests, as RESP */
	size_t mq_len, mq_cap;
	unsigned mq_n;
	struct watch *watch;
	unsigned nwatch;
	bool dirty;
	uint64_t id;
	char name[64];
	int db; /* SELECT */
	/* cluster mode: slot + 1 of the keys queued in MULTI (0: none yet), keys of several slots
	 * queued, ASKING given for the next command */
	int cl_slot1;
	bool cl_cross, cl_asking;
	bool master; /* the replication link to our primary: writes allowed, replies dropped */
	void *mw;    /* --queues: forwarded requests in flight (kv_multi_worker.c) */

	/* replication primary (kv_primary.c) */
	struct paste_conn *c; /* the connection (set by on_accept) */
	struct kv_pconn *pc;  /* replica, WAIT, SUBSCRIBE state, or NULL */
	bool blocked;         /* in WAIT: run no request until it ends */
	uint64_t woff;        /* replication offset after its last write (WAIT waits for it) */
};

/* A request being executed. */
struct req {
	struct kvd *d;
	struct kconn *kc;
	struct resp_buf *b;
	size_t base;
	const struct resp_cmd *cmd;
	bool queued; /* run by EXEC: the arguments are in memory, not in received frames */
	const struct command *found; /* the command argument 0 names, if known (else looked up) */
};

/* A key or value as stored: @n bytes at @p, the string plus its trailing byte. @pool: @p lies in
 * a received slot (can be kept in place); otherwise it must be copied into the pool. */
struct str {
	const uint8_t *p;
	uint32_t n;
	bool pool;
};

enum str_kind { S_KEY, S_VAL, S_NEW /* a computed value */ };

enum { F_WRITE = 1, F_READ = 2, F_FAST = 4, F_ADMIN = 8, F_NOMULTI = 16 };

struct command {
	const char *name;
	int arity; /* Redis' convention: n exactly, -n at least n */
	int (*fn)(struct req *r);
	unsigned flags;
	int first, last, step; /* key positions */
	const char *group, *summary, *since, *complexity;
};

struct hfield {
	const uint8_t *f, *v;
	uint32_t flen, vlen;
};

struct hlist {
	struct kvd *d;
	uint64_t gen;
	struct hfield *v;
	size_t n, cap;
};

struct walk;
struct watch;
struct set_opts;
struct command;
struct batch;
struct sweep;

/* kv_cmd.c */
int cmd_ping(struct req *r);
int cmd_echo(struct req *r);
int cmd_function(struct req *r);
int cmd_client(struct req *r);
int cmd_hello(struct req *r);
int cmd_time(struct req *r);
int cmd_memory(struct req *r);
int cmd_quit(struct req *r);
int cmd_save(struct req *r);
int cmd_bgsave(struct req *r);
int cmd_shutdown(struct req *r);
int command_info(struct kvd *d, const struct command *c);
int command_docs(struct kvd *d, const struct command *c);
int cmd_command(struct req *r);
int cmd_config(struct req *r);
void info_server(struct kvd *d);
void info_persistence(struct kvd *d, const struct paste_stats *s);
void info_stats(struct kvd *d, const struct paste_stats *s);
void info_keyspace(struct kvd *d);
int cmd_info(struct req *r);

/* kv_cluster.c */
int cluster_load(struct kvd *d);
int cluster_open(struct kvd *d);
void cluster_close(struct kvd *d);
int cluster_redirect(struct req *r);
int cmd_cluster(struct req *r);
int cmd_asking(struct req *r);
void info_cluster(struct kvd *d);

/* kv_db.c */
uint64_t ttl_count(const struct kvd *d);
uint64_t ttl_get(struct kvd *d, const struct str *k);
bool del_key_ex(struct kvd *d, const uint8_t *k, size_t n, bool retire);
bool del_key(struct kvd *d, const uint8_t *k, size_t n);
int lookup(struct kvd *d, const struct str *k, struct paste_ref *val);
const uint8_t *val_bytes(struct kvd *d, const struct paste_ref *ref, size_t *n);
int keep_str(struct kvd *d, const struct str *s, struct paste_ref *ref, enum str_kind kind);
void release(struct kvd *d, struct paste_ref *ref);
int ttl_set(struct kvd *d, const struct str *k, uint64_t ms);
int store(struct kvd *d, const struct str *k, const struct str *v, uint64_t ttl,
          enum str_kind vkind);
int reply_store_err(struct req *r, int err);
bool refuse_write(struct req *r);
int check_key(struct req *r, unsigned i);
int check_value(struct req *r, size_t n);
int collect_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg);
uint64_t flush_index(struct kvd *d, struct paste_kv *kv);
int cmd_flushall(struct req *r);
int cmd_flushdb(struct req *r);
void quiet(enum paste_log_level level, const char *msg, void *user);
/* Open index @name, created for @cap keys if absent (@cap 0: open only, -ENOENT quietly). */
int open_index(struct kvd *d, const char *name, uint64_t cap, struct paste_kv **kv);
int sweep_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg);
void sweep(struct kvd *d);
int open_store(struct kvd *d);

/* kv_expire.c */
int out_bad_expire(struct req *r);
int cmd_expire(struct req *r);
int cmd_pexpire(struct req *r);
int cmd_expireat(struct req *r);
int cmd_pexpireat(struct req *r);
int cmd_persist(struct req *r);
int cmd_ttl(struct req *r);
int cmd_pttl(struct req *r);
int cmd_expiretime(struct req *r);
int cmd_pexpiretime(struct req *r);
void expire_cycle(struct kvd *d);

/* kv_hash.c */
int get_typed(struct req *r, int type, struct str *k, struct obj *o);
int field_get(struct req *r, uint64_t gen, unsigned i, const uint8_t **p, size_t *n);
int check_field(struct req *r, unsigned f, size_t vlen);
int field_put(struct req *r, uint64_t gen, unsigned fi, unsigned vi, const uint8_t *p, size_t n);
int cmd_hset(struct req *r);
int cmd_hsetnx(struct req *r);
int cmd_hget(struct req *r);
int cmd_hmget(struct req *r);
int cmd_hdel(struct req *r);
int cmd_hlen(struct req *r);
int cmd_hstrlen(struct req *r);
int cmd_hexists(struct req *r);
int cmd_hincrby(struct req *r);
int cmd_hincrbyfloat(struct req *r);
int hash_list(struct kvd *d, uint64_t gen, struct hlist *l);
int cmd_hgetall(struct req *r);
int cmd_hkeys(struct req *r);
int cmd_hvals(struct req *r);
int cmd_hscan(struct req *r);
int cmd_hrandfield(struct req *r);

/* kv_keys.c */
int walk_key(struct walk *w, const struct paste_ref *key, const struct paste_ref *val);
int keys_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg);
int scan_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg);
bool is_all(const uint8_t *pat, size_t n);
int cmd_keys(struct req *r);
int cmd_scan(struct req *r);
int cmd_dbsize(struct req *r);

/* kv_keyspace.c */
const char *type_reply(int t);
int cmd_type(struct req *r);
int cmd_rename(struct req *r);
int cmd_renamenx(struct req *r);
int cmd_copy(struct req *r);
int cmd_randomkey(struct req *r);
int cmd_object(struct req *r);
int cmd_select(struct req *r);

/* kv_lcs.c */
int cmd_lcs(struct req *r);

/* kv_lkey.c */
uint32_t lkey_inline(const struct kvd *d);
bool lkey_is(const uint8_t *k, size_t n);
int key_db(const uint8_t *k, size_t n);
int lkey_arg(struct req *r, unsigned i, int db, struct str *s);
int lkey_make(struct kvd *d, const struct str *k);
void lkey_retire(struct kvd *d, const uint8_t *k, size_t n);
void lkey_reap(struct kvd *d);
void lkey_forget(struct kvd *d);
uint8_t *lkey_bytes(struct kvd *d, const uint8_t *k, size_t n, size_t *len);
bool lkey_piece_live(struct kvd *d, const uint8_t *sk, size_t n);
bool key_in(const uint8_t *k, size_t n, uint8_t tag);

/* kv_list.c */
int cmd_lpush(struct req *r);
int cmd_rpush(struct req *r);
int cmd_lpop(struct req *r);
int cmd_rpop(struct req *r);
int cmd_llen(struct req *r);
int cmd_lrange(struct req *r);
int cmd_lindex(struct req *r);
int list_at(struct kvd *d, uint64_t gen, uint64_t i, const uint8_t **p, size_t *n);
int list_create(struct kvd *d, const struct str *k, const struct hfield *el, size_t cnt);

/* kv_multi.c */
void touch_key(struct kvd *d, const uint8_t *k, size_t n);
void touch_all(struct kvd *d);
void multi_free(struct kvd *d, struct kconn *kc);
int cmd_multi(struct req *r);
int cmd_discard(struct req *r);
int cmd_exec(struct req *r);
int cmd_watch(struct req *r);
int cmd_unwatch(struct req *r);
int dispatch(struct req *r);
void multi_abort(struct kconn *kc);

/* kv_net.c */
uint64_t mono_ns(void);
uint64_t wall_ms(void);
uint8_t *arena_alloc(struct kvd *d, size_t n);
void arena_reset(struct kvd *d);
int big_reserve(struct kvd *d, size_t more);
int big_add(struct kvd *d, const void *p, size_t n);
int big_printf(struct kvd *d, const char *fmt, ...);
int big_bulk(struct kvd *d, const void *p, size_t n);
int out(struct kconn *kc, const void *p, size_t n);
int out_str(struct kconn *kc, const char *s);
int out_hdr(struct kconn *kc, char type, int64_t n);
int out_err(struct kconn *kc, const char *fmt, ...);
int out_value(struct kconn *kc, const uint8_t *p, size_t n);
int out_piece(struct kconn *kc, const uint8_t *p, size_t n);
int flush_out(struct kvd *d, struct paste_conn *c, struct kconn *kc);
void pin_queued(struct kvd *d, struct kconn *kc);
void out_drop(struct kvd *d, struct kconn *kc);
uint32_t arg_len(const struct req *r, unsigned i);
const uint8_t *arg(struct req *r, unsigned i);
bool arg_is(struct req *r, unsigned i, const char *word);
bool arg_ll(struct req *r, unsigned i, int64_t *v);
int arg_str(struct req *r, unsigned i, struct str *s);
uint8_t db_tag(int db);
int arg_key(struct req *r, unsigned i, struct str *s);
int arg_key_db(struct req *r, unsigned i, int db, struct str *s);
int on_accept(struct paste_conn *c, void *user);
int view(struct paste_conn *c, struct kconn *kc, struct resp_buf *b);
void skipped_reply(struct kvd *d, struct kconn *kc, const struct resp_cmd *cmd);
size_t serve(struct kvd *d, struct paste_conn *c, struct kconn *kc);
void on_data(struct paste_conn *c, void *user);
void on_close(struct paste_conn *c, int err, void *user);

/* kv_obj.c */
void obj_decode(struct kvd *d, const struct paste_ref *ref, struct obj *o);
int obj_lookup(struct kvd *d, const struct str *k, struct obj *o);
uint64_t sub_gen(const uint8_t *key);
int sub_put(struct kvd *d, uint64_t gen, const void *sk, size_t skn, struct paste_ref *val);
int sub_get(struct kvd *d, uint64_t gen, const void *sk, size_t skn, struct paste_ref *val);
int sub_del(struct kvd *d, uint64_t gen, const void *sk, size_t skn);
uint64_t sub_count(struct kvd *d);
int hdr_store(struct kvd *d, const struct str *k, int type, uint64_t gen, uint64_t len, uint64_t n,
              uint64_t ttl);
int pieces_put(struct kvd *d, uint64_t gen, const uint8_t *pfx, size_t pfxn, struct resp_buf *b,
               size_t off, const uint8_t *p, size_t n, uint64_t *nchunks);
void pieces_del(struct kvd *d, uint64_t gen, const uint8_t *pfx, size_t pfxn, uint64_t n);
int piece_get(struct kvd *d, uint64_t gen, const uint8_t *pfx, size_t pfxn, uint64_t i,
              const uint8_t **p, size_t *n);
int big_pieces(struct kvd *d, struct resp_buf *b, size_t off, const uint8_t *p, size_t n,
               uint64_t *gen, uint64_t *nchunks);
int big_header_ref(struct kvd *d, uint64_t gen, uint64_t len, uint64_t n, struct paste_ref *ref);
int big_store(struct kvd *d, const struct str *k, struct resp_buf *b, size_t off, const uint8_t *p,
              size_t n, uint64_t ttl);
int big_clone(struct kvd *d, const struct obj *o, struct paste_ref *hdr);
void value_retire(struct kvd *d, const struct paste_ref *v);
int big_chunk(struct kvd *d, const struct obj *o, uint64_t i, const uint8_t **p, size_t *n);
int obj_read(struct kvd *d, const struct obj *o, uint64_t off, uint64_t n, uint8_t *dst);
const uint8_t *obj_bytes(struct kvd *d, const struct obj *o);
int out_obj(struct kvd *d, struct kconn *kc, const struct obj *o);
uint64_t hash_count(struct kvd *d, uint64_t gen);
void hash_count_add(struct kvd *d, uint64_t gen, int64_t delta);
void obj_retire(struct kvd *d, const struct obj *o);
void obj_reap(struct kvd *d);
int obj_sweep(struct kvd *d);

/* kv_tx.c */
void tx_begin(struct kvd *d);
void tx_end(struct kvd *d);
void tx_gc(struct kvd *d);
int tx_recover(struct kvd *d);
int tx_prelog(struct kvd *d, struct paste_kv *kv, const uint8_t *k, size_t n);
int ix_put(struct kvd *d, struct paste_kv *kv, struct paste_ref *kr, struct paste_ref *vr);
int ix_put_src(struct kvd *d, struct paste_kv *kv, struct paste_ref *kr, struct paste_ref *vr,
               const uint8_t *k, uint32_t crc);
int ix_del(struct kvd *d, struct paste_kv *kv, const void *k, size_t n);

/* kv_rdb_load.c */
int rdb_apply(struct kvd *d, struct kconn *kc, const uint8_t *rdb, size_t len, uint64_t *loaded,
              uint64_t *skipped);

/* kv_replica.c */
int replica_opt(struct kvd *d, const char *arg);
int replica_set(struct kvd *d, const char *host, uint16_t port, char *err, size_t errlen);
/* Startup, after the indexes: the replication id and offset kept in the pool, used after a clean
 * shutdown (@was_clean) when a replica, else deleted. */
int replica_recover(struct kvd *d, bool was_clean);
void replica_tick(struct kvd *d);
int replica_poll_ms(const struct kvd *d);
bool replica_refuses(struct req *r);
void replica_apply_error(struct kvd *d, const char *msg);
void replica_free(struct kvd *d);
int cmd_replicaof(struct req *r);
int replica_replconf(struct req *r); /* REPLCONF on the link to our primary */
int replica_role(struct req *r);     /* ROLE while following a primary */
bool replica_active(const struct kvd *d);
void info_replication(struct kvd *d);

/* kv_set.c */
int cmd_sadd(struct req *r);
int cmd_srem(struct req *r);
int cmd_scard(struct req *r);
int cmd_zcard(struct req *r);
int cmd_sismember(struct req *r);
int cmd_smembers(struct req *r);
int cmd_srandmember(struct req *r);
int cmd_spop(struct req *r);
int cmd_zadd(struct req *r);
int cmd_zscore(struct req *r);
int cmd_zrange(struct req *r);

/* kv_sort.c */
int cmd_sort(struct req *r);
int cmd_sort_ro(struct req *r);

/* kv_string.c */
int out_wrongtype(struct kconn *kc);
int get_str(struct req *r, unsigned i, struct str *k, struct obj *o);
int store_arg(struct req *r, const struct str *k, unsigned i, uint64_t ttl);
int store_bytes(struct req *r, const struct str *k, const void *p, size_t n, uint64_t ttl);
int cmd_get(struct req *r);
int parse_set_opts(struct req *r, struct set_opts *o);
int cmd_set(struct req *r);
int cmd_mset(struct req *r);
int cmd_mget(struct req *r);
int count_keys(struct req *r, bool del);
int cmd_del(struct req *r);
int cmd_exists(struct req *r);
int store_new(struct req *r, const struct str *k, const void *p, size_t n, uint64_t ttl);
int incr_by(struct req *r, int64_t by);
int cmd_incr(struct req *r);
int cmd_decr(struct req *r);
int cmd_incrby(struct req *r);
int cmd_decrby(struct req *r);
int cmd_append(struct req *r);
int cmd_strlen(struct req *r);

/* kv_strx.c */
int cmd_setnx(struct req *r);
int cmd_setex(struct req *r);
int cmd_psetex(struct req *r);
int cmd_getex(struct req *r);
int cmd_getdel(struct req *r);
int cmd_getset(struct req *r);
int cmd_msetnx(struct req *r);
int cmd_getrange(struct req *r);
int cmd_setrange(struct req *r);
int cmd_incrbyfloat(struct req *r);
int cmd_setbit(struct req *r);
int cmd_getbit(struct req *r);
int cmd_bitcount(struct req *r);
int cmd_bitpos(struct req *r);

/* kv_table.c */
size_t ncommands(void);
const struct command *command_at(size_t i);
size_t command_index(const struct command *c); /* command_at(command_index(c)) == c */
int (*command_fn(const struct command *c))(struct req *);
bool arity_ok(const struct command *c, unsigned argc);
const struct command *find_command(const uint8_t *name, size_t n);
int unknown_command(struct req *r, const uint8_t *name, size_t n);
int execute(struct req *r);

#endif
