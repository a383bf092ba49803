/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste/pool.h - the persistent pool file.
 *
 * A pool is one file (on /dev/shm here; a device-DAX path or DAX file on real NVMM) mapped with
 * libpmem. It holds, in order:
 *
 *   [ superblock, 4 KiB ][ region area: named regions for persistent indexes ][ frame area ]
 *
 * The frame area is page aligned and is registered whole as the AF_XDP UMEM, so received frames are
 * already in the pool. The superblock records magic, version, geometry (pool size, frame size,
 * frame count, region area size), a uuid, a clean-shutdown flag and a CRC32C over all of it;
 * opening checks every field and refuses a mismatched, truncated or corrupt file with a message
 * naming the cause.
 *
 * Typical use (paste_open() does this for you; open a pool directly for offline tools):
 *
 *	struct paste_pool_opts o = { .sz = sizeof(o), .size = 64 << 20, .create = true };
 *	struct paste_pool *pool;
 *	int err = paste_pool__open(&pool, "/dev/shm/my.pool", &o);
 *	if (err)
 *		return err;	// a message went through paste_set_print()'s callback
 *	void *idx;
 *	uint64_t n;
 *	err = paste_pool__region(pool, "wal.log", 1 << 20, &idx, &n);
 *	...
 *	paste_pool__close(&pool);	// marks the pool cleanly shut down
 *
 * Frame allocation state is not stored in the pool: it is volatile and rebuilt at open from the
 * persistent indexes that name frames (a frame is in use iff an index names it).
 *
 * Every int function returns 0 or a negative errno. Not thread safe: one thread per pool.
 */
#ifndef PASTE_POOL_H
#define PASTE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct paste_pool;

/** Default pool file. */
#define PASTE_POOL_DEFAULT_PATH "/dev/shm/paste.pool"
/** Default pool size when creating (64 MiB). */
#define PASTE_POOL_DEFAULT_SIZE (64ull << 20)
/** Default frame size (bytes); 2048 or 4096 are accepted. */
#define PASTE_POOL_DEFAULT_FRAME_SIZE 2048u
/** Maximum number of named regions. */
#define PASTE_POOL_MAX_REGIONS 16
/** Longest region name, without the terminating NUL. */
#define PASTE_POOL_REGION_NAME_MAX 31

/** Options for paste_pool__open(). Zero fields take the defaults. */
struct paste_pool_opts {
	size_t sz;           /**< sizeof(struct paste_pool_opts): lets the struct grow */
	uint64_t size;       /**< file size when creating (0: the default); device DAX: all of it */
	uint32_t frame_size; /**< 2048 or 4096 when creating; when opening, 0 = accept the file's */
	uint64_t region_area; /**< bytes for named regions when creating; 0 = size / 8 (>= 1 MiB) */
	bool create;          /**< create the file if it does not exist */
	bool must_create;     /**< fail with -EEXIST if it exists */
	bool check_umem; /**< try XDP_UMEM_REG on the frame area and fail with a clear message if
	                      the kernel refuses (e.g. -EFAULT on ext4) */
	/** Emulated slow media, for experiments (0: off; the environment variables
	 *  PASTE_EMU_FENCE_NS and PASTE_EMU_LINE_NS set them when these are 0): every fence
	 *  (drain) of this pool spins emu_fence_ns plus emu_line_ns per 64-byte line flushed since
	 *  the previous fence. Applies to every durable write: persisted payload, log and
	 *  key-value updates, the superblock, recovery. */
	uint32_t emu_fence_ns;
	uint32_t emu_line_ns;
	/** One slice of a pool file shared by worker processes (docs/multicore.md): with @sliced
	 *  the pool is bytes [slice x stride, (slice + 1) x stride) of the file, stride being @size
	 *  rounded up to 2 MiB, or the stride slice 0 records once it exists. Each slice is a
	 *  complete pool (superblock, regions, frames), created on its first open (the file grows),
	 *  locked with a byte-range lock (other slices stay free; an open of the whole file
	 *  conflicts with every slice) and recovered on its own. A file made without slices
	 *  cannot be opened as slices (-EINVAL). */
	bool sliced;
	uint32_t slice;
};

/**
 * An options struct literal with .sz set, for an argument:
 * paste_log__open(&log, pool, "wal", &PASTE_OPTS_LIT(paste_log_opts, .region_size = 1 << 20)).
 */
#define PASTE_OPTS_LIT(type, ...) ((struct type){.sz = sizeof(struct type), __VA_ARGS__})

/** Read-only facts about an open pool. */
struct paste_pool_info {
	uint64_t size;            /**< file size in bytes */
	uint32_t frame_size;      /**< bytes per frame */
	uint32_t frame_count;     /**< frames in the frame area */
	uint64_t frame_area_off;  /**< file offset of frame 0 (page aligned) */
	uint64_t region_area_off; /**< file offset of the region area */
	uint64_t region_area_size;
	uint64_t region_area_used;
	uint8_t uuid[16];
	bool created;          /**< this open created the file */
	bool was_clean;        /**< the previous user closed it cleanly */
	bool is_pmem;          /**< libpmem reports real persistent memory (false on /dev/shm) */
	uint32_t slice;        /**< slice number (0 in a file without slices) */
	uint64_t slice_stride; /**< bytes between slices; 0: a file without slices */
};

/**
 * Open (or create) a pool file.
 * @return 0; -ENOENT (absent and !create), -EEXIST (must_create), -EINVAL (bad option or geometry
 * mismatch), -EBADMSG (bad magic/checksum/version: not a pool or corrupt), -EFBIG/-ENOSPC (size),
 * -EFAULT or -EOPNOTSUPP (the kernel refuses to register this memory as UMEM: a disk or fsdax
 * file; use /dev/shm or device DAX), -ENODEV (a character device that is not a device DAX), or the
 * errno of the failing system call. A device-DAX node (/dev/daxX.Y) is mapped whole at its sysfs
 * alignment and never truncated; with create, one whose first 4 KiB are zero is formatted, one
 * holding something that is not a pool is refused (-EBADMSG).
 */
int paste_pool__open(struct paste_pool **pool, const char *path,
                     const struct paste_pool_opts *opts);

/** Mark the pool cleanly shut down, flush the superblock, unmap, and set *pool to NULL. */
void paste_pool__close(struct paste_pool **pool);

/**
 * Fill *info; @sz is sizeof(*info) as the caller was built (like paste_stats(): a smaller struct of
 * an older header gets its prefix). @return 0, or -EINVAL (NULL pool or info, @sz 0).
 */
int paste_pool__info(const struct paste_pool *pool, struct paste_pool_info *info, size_t sz);

/** Base address of the frame area (page aligned); frame i is at base + i * frame_size. */
void *paste_pool__frames(const struct paste_pool *pool);

/** Base address of the whole mapping (the superblock); pool offsets are relative to it. */
void *paste_pool__base(const struct paste_pool *pool);

/**
 * Find the region called @name, or reserve @size bytes (rounded up to 4 KiB) for it if it does not
 * exist. A new region is zero-filled and persisted before it is recorded.
 * @return 0 with *addr and *len set; -ENOSPC when the region area or table is full; -EINVAL for a
 * bad name or an existing region smaller than @size.
 */
int paste_pool__region(struct paste_pool *pool, const char *name, uint64_t size, void **addr,
                       uint64_t *len);

/** Write back the cache lines of [addr, addr+len) (clwb/clflushopt), no fence. */
void paste_pool__flush(struct paste_pool *pool, const void *addr, size_t len);

/**
 * paste_pool__flush for bytes appended to a region that later appends continue (a packing frame):
 * the last cache line of [addr, addr+len), when the range ends inside it, is not written back now
 * but at the next flush_append that does not continue it, or before the next drain or persist
 * (the fence flushes it first), so it is durable at the same fence as with paste_pool__flush.
 * Why: on some CPUs (measured on this project's VM) a store to a line whose write-back a clwb
 * has just started waits for it (~140 ns): appends of small records that each flush their lines
 * would pay that once per record. One pending line per pool.
 */
void paste_pool__flush_append(struct paste_pool *pool, const void *addr, size_t len);

/** Fence: every earlier flush is durable when this returns. Then releases what the fenced
 * operations replaced (index references and slots queued to be freed after the fence). */
void paste_pool__drain(struct paste_pool *pool);

/** True if anything was flushed (or queued for release) since the last drain. */
bool paste_pool__needs_drain(const struct paste_pool *pool);

/** flush + drain. */
void paste_pool__persist(struct paste_pool *pool, const void *addr, size_t len);

/** CRC32C (Castagnoli) of buf, the checksum the pool's indexes use (SSE4.2 and PCLMULQDQ where
 * the CPU has them). Chainable: paste_crc32c(paste_crc32c(0, a), b) == paste_crc32c(0, a || b);
 * seed 0 for a fresh sum. */
uint32_t paste_crc32c(uint32_t crc, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* PASTE_POOL_H */
