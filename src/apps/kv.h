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

#include "daemon_opts.h"
#include "resp.h"

/* ---- tunables -------------------------------------------------------------------------------- */

#ifndef KV_INLINE_REPLY
#define KV_INLINE_REPLY 512u /* values up to this are copied into the reply buffer, not queued */
#endif
#ifndef KV_OUT_HIGH
#define KV_OUT_HIGH (256u << 10) /* queued reply bytes above which a connection stops reading */
#endif
#ifndef KV_REFRESH_NS
#define KV_REFRESH_NS 1000000ull /* how often the free-frame count is refreshed */
#endif
#define KV_INDEX       "paste-kv"
#define KV_TTL_INDEX   "paste-kv.ttl"
#define KV_BYTES_KEY   80u /* index region bytes per key (buckets at 75 % load + 64 B entry) */
#define KV_SCAN_POS    40  /* SCAN cursor: position bits ... */
#define KV_SCAN_EPOCH  23  /* ... and deletion-count bits above them (cursor < 2^63) */
#define KV_SCAN_CALLS  8   /* a full SCAN takes at most about 2^8 calls, whatever COUNT says */
#define KV_FLUSH_BATCH 1024u
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
};

struct kv_stats {
	uint64_t cmds, conns, hits, misses, expired, oom, proto_errors, skipped;
	uint64_t val_inplace, val_inplace_bytes, val_copied, val_copied_bytes, val_computed;
	uint64_t key_inplace, key_copied, pins, pin_copies;
};

struct kvd {
	struct paste_ctx *ctx;
	struct paste_pool *pool;
	struct paste_kv *kv, *ttl;
	struct daemon_opts d;
	/* options */
	uint64_t keys, ttl_keys, reserve, copy_threshold;
	uint32_t max_key, max_value, frame_size;
	struct resp_limits lim;
	/* state */
	bool low;         /* fewer free frames than reserve: writes get -OOM */
	uint64_t now_ms;  /* wall clock for expiry, once per on_data */
	uint64_t refresh; /* monotonic ns of the last free-frame refresh */
	uint64_t del_epoch;
	time_t started;
	struct paste_kv_info rec_kv, rec_ttl; /* what the open recovered */
	uint64_t start_expired, start_orphans;
	uint32_t conns_open;
	struct kv_stats st;
	/* per-request scratch: arguments gathered from several segments, computed values */
	uint8_t *arena;
	size_t arena_cap, arena_used;
	/* growable scratch for KEYS/SCAN/INFO/COMMAND replies */
	char *big;
	size_t big_len, big_cap;
};

/* One queued piece of a connection's output. */
enum { OI_BUF, OI_POOL, OI_PIN };

struct oitem {
	uint8_t kind;     /* OI_BUF: ob[off..]; OI_POOL: p (valid this round); OI_PIN: p, pinned */
	uint32_t len;     /* bytes still to send */
	size_t off;       /* OI_BUF */
	const uint8_t *p; /* OI_POOL, OI_PIN */
	struct paste_ref pin; /* OI_PIN: our reference, released once sent */
};

struct kconn {
	struct resp_parser rp;
	bool quit;    /* close once the output is out */
	bool closing; /* paste_conn__close() called */
	bool waiting; /* the parser needs more bytes */
	uint8_t *ob;
	size_t ob_len, ob_cap;
	struct oitem *oi;
	size_t oi_head, oi_n, oi_cap;
	size_t queued;
	struct resp_seg *segs;
	unsigned segs_cap;
};

/* A request being executed. */
struct req {
	struct kvd *d;
	struct kconn *kc;
	struct resp_buf *b;
	size_t base;
	const struct resp_cmd *cmd;
};

/* A key or value as stored: @n bytes at @p, the string plus its trailing byte. @pool: @p lies in
 * a received slot (can be kept in place); otherwise it must be copied into the pool. */
struct str {
	const uint8_t *p;
	uint32_t n;
	bool pool;
};

enum str_kind { S_KEY, S_VAL, S_NEW /* a computed value */ };

struct walk;
struct set_opts;
struct command;
struct batch;
struct sweep;

/* kv_net.c */
uint64_t mono_ns(void);
uint64_t wall_ms(void);
uint8_t *arena_alloc(struct kvd *d, size_t n);
int big_reserve(struct kvd *d, size_t more);
int big_add(struct kvd *d, const void *p, size_t n);
int big_printf(struct kvd *d, const char *fmt, ...);
int big_bulk(struct kvd *d, const void *p, size_t n);
int oi_push(struct kconn *kc, const struct oitem *it);
int ob_reserve(struct kconn *kc, size_t more);
int out(struct kconn *kc, const void *p, size_t n);
int out_str(struct kconn *kc, const char *s);
int out_hdr(struct kconn *kc, char type, int64_t n);
int out_err(struct kconn *kc, const char *fmt, ...);
int out_value(struct kconn *kc, const uint8_t *p, size_t n);
void oi_pop(struct kvd *d, struct kconn *kc);
int flush_out(struct kvd *d, struct paste_conn *c, struct kconn *kc);
void pin_queued(struct kvd *d, struct kconn *kc);
void out_drop(struct kvd *d, struct kconn *kc);
uint32_t arg_len(const struct req *r, unsigned i);
const uint8_t *arg(struct req *r, unsigned i);
bool arg_is(struct req *r, unsigned i, const char *word);
bool arg_ll(struct req *r, unsigned i, int64_t *v);
int arg_str(struct req *r, unsigned i, struct str *s);
int on_accept(struct paste_conn *c, void *user);
int view(struct paste_conn *c, struct kconn *kc, struct resp_buf *b);
void skipped_reply(struct kvd *d, struct kconn *kc, const struct resp_cmd *cmd);
size_t serve(struct kvd *d, struct paste_conn *c, struct kconn *kc);
void on_data(struct paste_conn *c, void *user);
void on_close(struct paste_conn *c, int err, void *user);

/* kv_db.c */
uint64_t ttl_count(const struct kvd *d);
uint64_t ttl_get(struct kvd *d, const struct str *k);
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
void quiet(enum paste_log_level level, const char *msg, void *user);
int open_index(struct kvd *d, const char *name, uint64_t cap, struct paste_kv **kv);
int sweep_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg);
void sweep(struct kvd *d);
int open_store(struct kvd *d);

/* kv_string.c */
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

/* kv_keys.c */
int ttl_reply(struct req *r, bool ms);
int cmd_ttl(struct req *r);
int cmd_pttl(struct req *r);
int walk_key(struct walk *w, const struct paste_ref *key);
int keys_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg);
int scan_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg);
bool is_all(const uint8_t *pat, size_t n);
int cmd_keys(struct req *r);
int cmd_scan(struct req *r);
int cmd_dbsize(struct req *r);

/* kv_cmd.c */
int cmd_ping(struct req *r);
int cmd_echo(struct req *r);
int cmd_select(struct req *r);
int cmd_quit(struct req *r);
const struct command *find_command(const uint8_t *name, size_t n);
int unknown_command(struct req *r, const uint8_t *name, size_t n);
int execute(struct req *r);
int command_info(struct kvd *d, const struct command *c);
int command_docs(struct kvd *d, const struct command *c);
int cmd_command(struct req *r);
int cmd_config(struct req *r);
void info_server(struct kvd *d);
void info_persistence(struct kvd *d, const struct paste_stats *s);
void info_stats(struct kvd *d, const struct paste_stats *s);
void info_keyspace(struct kvd *d);
int cmd_info(struct req *r);

#endif
