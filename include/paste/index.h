/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste/index.h - persistent references and the persistent indexes that hold them.
 *
 * A reference names bytes in the pool by file offset and length, so it stays valid across restarts.
 * The application makes one with paste_keep() from a received slot (the frame is then not
 * recycled); an index that takes a reference owns it, and gives it back (paste frame released) when
 * the record or key is truncated, overwritten or deleted.
 *
 * Two indexes live in named pool regions:
 *  - the log: append-only records {seq, refs, length, crc32c}; dense sequence numbers; a record is
 *    valid only if its checksum (over the record and the payload bytes it names) holds, so a torn
 *    append is detected and dropped at recovery, with everything after it;
 *  - the key-value index: a persistent hash table whose entries name a key and a value in the pool;
 *    updates are out of place and committed by one 8-byte store.
 *
 * Durability: appends and puts flush what they write (no fence). The fence is paste_pool__drain()
 * (paste_poll() issues one per round); an operation is durable once a drain has returned after it.
 * Frames and entry slots that an operation frees are recycled only after the next drain, so a crash
 * can never leave a durable record naming a reused frame.
 *
 * Recovery happens in paste_pool__open(): every index region of the pool is checked and the frame
 * allocator is rebuilt from the references the valid records and entries hold (a frame is in use
 * iff an index names it). paste_log__open()/paste_kv__open() then return the recovered index.
 *
 * All int functions return 0 or a negative errno, with a message through paste_set_print().
 */
#ifndef PASTE_INDEX_H
#define PASTE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <paste/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes in the pool: [off, off + len) of the pool file. Stable across restarts. */
struct paste_ref {
	uint64_t off;
	uint32_t len;
	uint32_t flags; /**< reserved, 0 */
};

/** Pointer to the bytes @ref names, or NULL (errno EINVAL, and a message in paste_last_error())
 *  if it is not inside the pool. */
void *paste_pool__ref_ptr(const struct paste_pool *pool, const struct paste_ref *ref);

/* ---- log --------------------------------------------------------------------------------- */

struct paste_log;

/** Maximum references in one log record (a 1 MiB body in 1448-byte segments needs 725). */
#define PASTE_LOG_MAX_REFS 1024

/** One record, as returned by get/iterate. @refs points into the log region: do not write it. */
struct paste_log_rec {
	uint64_t seq;
	uint64_t len; /**< payload bytes (sum of refs' lengths) */
	uint32_t nrefs;
	const struct paste_ref *refs;
};

struct paste_log_opts {
	size_t sz;            /**< sizeof(struct paste_log_opts) */
	uint64_t region_size; /**< create the log with this many bytes if absent; 0: open only */
};

/**
 * Open the log in region @name into *@log. @opts NULL (or .region_size 0): it must exist
 * (-ENOENT otherwise); else it is created with .region_size bytes if absent, and an existing one
 * smaller than that is refused (-EINVAL). The pool recovered it at open. Options are checked
 * like every opts struct (.sz set, unknown trailing bytes zero).
 */
int paste_log__open(struct paste_log **log, struct paste_pool *pool, const char *name,
                    const struct paste_log_opts *opts);

/**
 * Append a record naming @refs (1..PASTE_LOG_MAX_REFS; each must lie in the pool's frame area and
 * be kept). The log takes ownership of one kept reference per ref. Flushes the record (no fence).
 * @return 0 with *seq set; -ENOSPC when the region is full (nothing written; truncate, or use a
 * larger region); -EINVAL for a bad ref.
 */
int paste_log__append(struct paste_log *log, const struct paste_ref *refs, unsigned nrefs,
                      uint64_t *seq);

/** Read record @seq. @return 0, or -ENOENT if it was truncated or not written yet. */
int paste_log__get(struct paste_log *log, uint64_t seq, struct paste_log_rec *rec);

/**
 * Call @fn for each record from @from_seq on, in order, until it returns non-zero (which is then
 * returned) or the log ends (0).
 */
int paste_log__iterate(struct paste_log *log, uint64_t from_seq,
                       int (*fn)(const struct paste_log_rec *rec, void *arg), void *arg);

/**
 * Drop every record with seq <= @upto_seq. Durable (flushed and fenced) when it returns; their
 * references are released after that fence. @return 0 (also when nothing was there to drop).
 */
int paste_log__truncate(struct paste_log *log, uint64_t upto_seq);

struct paste_log_info {
	uint64_t first_seq; /**< oldest record still in the log (== next_seq when empty) */
	uint64_t next_seq;  /**< sequence number the next append gets */
	uint64_t records;
	uint64_t bytes; /**< payload bytes named by the records */
	uint64_t region_size, region_used;
	uint64_t recovered,
	    dropped; /**< at the last open: valid records, torn/invalid ones cut off */
};
/** Fill *info; @sz is sizeof(*info). @return 0, or -EINVAL (NULL log or info, @sz 0). */
int paste_log__info(const struct paste_log *log, struct paste_log_info *info, size_t sz);

/* ---- read-only views for another process (log_view.c) ------------------------------------ */

/*
 * A slice of a sliced pool file (paste_pool_opts.sliced) mapped read-only, and a log in it read
 * while its owner (another process) appends and truncates: the workers of a multi-queue daemon
 * read each other's records this way. The owner never waits for a view. A view trusts only
 * records [first, next) that the caller knows are committed (the owner publishes them after its
 * fence) and checks every record it reads (seq, header CRC, payload CRC); after a read the caller
 * must re-check that the owner's first seq is still <= seq (a record truncated meanwhile may have
 * had its frames reused). Offsets are cached; a view is used by one thread.
 */
struct paste_pool_view;
struct paste_log_view;
/** Map slice @slice of the file @pool (an open slice of it) is in, read-only. -ENOENT: the slice
 *  does not exist (yet); -EINVAL: @pool is not a slice. */
int paste_pool_view__open(struct paste_pool_view **view, const struct paste_pool *pool,
                          uint32_t slice);
void paste_pool_view__close(struct paste_pool_view **view);
/** The region @name of the viewed slice (read-only), with its size, or NULL. */
const void *paste_pool_view__region(const struct paste_pool_view *view, const char *name,
                                    uint64_t *size);
int paste_log_view__open(struct paste_log_view **view, const struct paste_pool_view *pv,
                         const char *name);
void paste_log_view__close(struct paste_log_view **view);
/** Copy record @seq's payload (at most @cap bytes) to @buf. -ENOENT: not in [first, next), or
 *  gone (truncated); -EMSGSIZE: larger than @cap. */
int paste_log_view__read(struct paste_log_view *view, uint64_t seq, uint64_t first, uint64_t next,
                         void *buf, size_t cap, uint32_t *len);
/** Payload length of record @seq (same rules, without the payload check). */
int paste_log_view__len(struct paste_log_view *view, uint64_t seq, uint64_t first, uint64_t next,
                        uint32_t *len);

/* ---- key-value index --------------------------------------------------------------------- */

struct paste_kv;

struct paste_kv_opts {
	size_t sz;         /**< sizeof(struct paste_kv_opts) */
	uint64_t capacity; /**< create the index for this many keys if absent; 0: open only */
};

/**
 * Open the key-value index in region @name into *@kv. @opts NULL (or .capacity 0): it must exist
 * (-ENOENT otherwise); else it is created for .capacity keys if absent, and an existing one with
 * less room is refused (-EINVAL). The region holds a bucket array and fixed-size entries (see
 * docs/kv-index.md for sizes).
 */
int paste_kv__open(struct paste_kv **kv, struct paste_pool *pool, const char *name,
                   const struct paste_kv_opts *opts);

/**
 * Insert or replace: the key is the bytes @key names, the value the bytes @val names. The index
 * takes ownership of one kept reference of each. A replaced entry's references are released after
 * the next fence. Atomic under a crash: after recovery the key maps to the old or the new value,
 * never a mix.
 * @return 0; -ENOSPC when the index is full (nothing changed); -EINVAL for a bad ref.
 */
int paste_kv__put(struct paste_kv *kv, const struct paste_ref *key, const struct paste_ref *val);

/**
 * paste_kv__put() from the caller's copy of the bytes: @key_bytes are the @key->len bytes @key
 * names and @data_crc is paste_kv__data_crc() of the key and value bytes. A caller that has just
 * copied key and value into the pool (paste_keep_copy) passes its source, still in its cache:
 * the index then reads neither copy again (their lines were just flushed, so such a read waits
 * for the write-back). A wrong CRC would make recovery drop the entry, a wrong key misfile it:
 * builds without NDEBUG check both against the pool bytes (-EINVAL).
 * @return as paste_kv__put(); -EINVAL also for a NULL @key_bytes.
 */
int paste_kv__put_src(struct paste_kv *kv, const struct paste_ref *key, const struct paste_ref *val,
                      const void *key_bytes, uint32_t data_crc);

/** The data CRC an entry of key @key (@klen bytes) and value @val (@vlen bytes) records: CRC32C of
 * the key bytes, then the value bytes (docs/kv-index.md). */
uint32_t paste_kv__data_crc(const void *key, size_t klen, const void *val, size_t vlen);

/** Look up @klen bytes at @key. @return 0 with *val set, or -ENOENT. */
int paste_kv__get(struct paste_kv *kv, const void *key, size_t klen, struct paste_ref *val);

/** Delete; the references are released after the next fence. @return 0 or -ENOENT. */
int paste_kv__del(struct paste_kv *kv, const void *key, size_t klen);

/** Call @fn for every key until it returns non-zero (returned). Order unspecified. */
int paste_kv__iterate(struct paste_kv *kv,
                      int (*fn)(const struct paste_ref *key, const struct paste_ref *val,
                                void *arg),
                      void *arg);

struct paste_kv_info {
	uint64_t keys, capacity;
	uint64_t recovered, dropped; /**< at the last open */
};
/** Fill *info; @sz is sizeof(*info). @return 0, or -EINVAL (NULL kv or info, @sz 0). */
int paste_kv__info(const struct paste_kv *kv, struct paste_kv_info *info, size_t sz);

#ifdef __cplusplus
}
#endif
#endif /* PASTE_INDEX_H */
