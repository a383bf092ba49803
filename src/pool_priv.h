/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_priv.h - the pool's own structures, shared by its two files: pool.c (the file, superblock,
 * regions, flush/fence) and pool_state.c (the volatile state rebuilt at every open: frame
 * allocator, references, after-fence hooks, index handles, and the index-type registry recovery
 * dispatches through). Nothing outside these two files includes it.
 */
#ifndef PASTE_POOL_PRIV_H
#define PASTE_POOL_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <paste/pool.h>

#include "frames.h"
#include "pool_internal.h"

#define POOL_MAGIC           "PASTEPL" /* with its NUL: 8 bytes */
#define POOL_VERSION         1u
#define POOL_PAGE            4096u
#define POOL_SB_AREA         4096u /* the superblock page; the region area starts after it */
#define POOL_SB_BACKUP_OFF   2048u /* the backup copy of the superblock record */
#define POOL_MIN_FRAMES      64u
#define POOL_MIN_REGION_AREA (1ull << 20)

/* One named region: [off, off + size) of the file, inside the region area. */
struct pool_region {
	char name[PASTE_POOL_REGION_NAME_MAX + 1]; /* NUL terminated */
	uint64_t off;
	uint64_t size; /* a multiple of 4 KiB, > 0 */
};

/*
 * The on-media superblock record (2 KiB; two copies in the first page). crc is the CRC32C of the
 * whole record with crc = 0. Every field is checked at open; reserved bytes are zero.
 */
struct pool_sb {
	char magic[8];             /* POOL_MAGIC */
	uint32_t version;          /* POOL_VERSION */
	uint32_t crc;              /* paste_crc32c over the record, this field zeroed */
	uint64_t pool_size;        /* bytes of the file the pool uses (the file may be larger) */
	uint32_t frame_size;       /* 2048 or 4096 */
	uint32_t frame_count;      /* >= POOL_MIN_FRAMES */
	uint64_t region_area_off;  /* POOL_SB_AREA */
	uint64_t region_area_size; /* multiple of POOL_PAGE */
	uint64_t region_area_used; /* bump pointer: regions fill [off, off + used) */
	uint64_t frame_area_off;   /* page aligned, >= region area end */
	uint8_t uuid[16];          /* random (v4), set at creation */
	uint32_t clean;            /* 1: the last user closed the pool; 0 while open */
	uint32_t nregions;         /* entries used in regions[] */
	struct pool_region regions[PASTE_POOL_MAX_REGIONS];
	uint32_t slice; /* sliced file: this pool's slice number (0 otherwise) */
	uint32_t pad;
	uint64_t
	    slice_stride; /* sliced file: bytes between slices; 0: not sliced (older files too) */
	uint8_t reserved[2048 - 88 - 16 - PASTE_POOL_MAX_REGIONS * sizeof(struct pool_region)];
};
_Static_assert(sizeof(struct pool_sb) == 2048, "superblock record is 2 KiB");
_Static_assert(offsetof(struct pool_sb, regions) == 88, "superblock header is 88 bytes");

struct pool_hook {
	void (*fn)(void *arg);
	void *arg;
};

struct pool_index {
	char name[PASTE_POOL_REGION_NAME_MAX + 1];
	void *handle;
	const struct paste_index_type *type;
};

struct paste_pool {
	uint8_t *base;     /* the mapping; the superblock is at base */
	size_t map_len;    /* bytes mapped (>= sb.pool_size) */
	int fd;            /* holds the OFD write lock (whole file, or the slice) while open */
	uint64_t off;      /* sliced: file offset of the slice (slice x stride); 0 otherwise */
	uint64_t stride;   /* sliced: bytes between slices; 0: the whole file is the pool */
	bool is_pmem;      /* from pmem_map_file */
	bool created;      /* this open created the file (unlinked again if the open fails) */
	bool was_clean;    /* clean flag found at open */
	bool dax_new;      /* device DAX formatted by this open (never unlinked, unlike created) */
	struct pool_sb sb; /* working copy of the superblock; sb_commit() makes it durable */
	/* volatile state, rebuilt at every open */
	struct paste_frames frames; /* who holds each frame; KEPT counts rebuilt from the indexes */
	bool recovering;            /* index recovery runs: ref_get accepts FREE frames */
	bool flushed;               /* flushes since the last drain */
	uintptr_t pend_line;        /* a line flush_append left to write back (0: none) */
	struct paste_pmem_ops
	    ops;               /* flush/drain: chosen at open (pool_persist.c), libpmem's default */
	uint32_t emu_fence_ns; /* emulated media: spin per drain ... */
	uint32_t emu_line_ns;  /* ... plus per line flushed since the last drain */
	uint64_t emu_lines;    /* lines flushed since the last drain (emulation on only) */
	struct pool_hook hooks[8]; /* run after every drain */
	unsigned nhooks;
	struct paste_ref *deferred; /* references to release after the next drain */
	size_t ndeferred, deferred_cap;
	struct pool_index indexes[PASTE_POOL_MAX_REGIONS];
	char path[];
};

/* Options after defaults; sz-checked copy of the caller's struct. */
struct pool_cfg {
	uint64_t size;
	uint32_t frame_size;
	uint64_t region_area;
	bool create, must_create, check_umem;
	bool sliced;
	uint32_t slice;
	uint32_t emu_fence_ns, emu_line_ns;
};

/* pool_file.c: the superblock's checksum and validity; open and lock the file or its slice (sets
 * p->fd, p->created and, sliced, p->off and p->stride). */
uint32_t paste_pool__sb_crc(const struct pool_sb *sb);
bool paste_pool__sb_intact(const struct pool_sb *sb);
int paste_pool__open_file(struct paste_pool *p, const struct pool_cfg *cfg);
/* A new pool on hugetlbfs: -EINVAL (with a message) unless @size is a multiple of its pages. */
int paste_pool__hugetlb_check(struct paste_pool *p, uint64_t size);

/* pool_state.c: rebuild the frame allocator from the indexes (at open), and free it (at close). */
int paste_pool__recover(struct paste_pool *p);
void paste_pool__free_volatile(struct paste_pool *p);

/* pool_persist.c: give a pool being opened the persistence ops of the moment (libpmem's unless a
 * test replaced them with paste_pool__set_default_pmem_ops). */
void paste_pool__default_ops(struct paste_pool *pool);

#endif /* PASTE_POOL_PRIV_H */
