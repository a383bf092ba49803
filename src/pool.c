/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool.c - the persistent pool file (include/paste/pool.h): create, validate, map, named regions.
 * The flush/fence primitives everything durable goes through are in pool_persist.c.
 *
 * File layout (all offsets from the start of the file, little-endian):
 *
 *   0      superblock page (4 KiB): the superblock record (2 KiB) at 0, its backup at 2 KiB
 *   4 KiB  region area: named regions, allocated bump-style in 4 KiB multiples, never freed
 *   ...    frame area: page aligned, frame_count frames of frame_size bytes up to the end of the
 *          pool; registered whole as the AF_XDP UMEM
 *
 * Durability (the flush/fence primitives are in pool_persist.c). The pool is mapped with libpmem
 * (pmem_map_file) and every durable write goes through pmem_flush (clwb/clflushopt) + pmem_drain
 * (sfence), also when libpmem says !is_pmem: on /dev/shm (tmpfs) the mapping is the page cache
 * itself, so flushing cache lines is all there is to do, and pmem_msync would only add a system
 * call per fence for nothing. Data on tmpfs survives process crashes, not reboots; on real NVMM
 * (device-DAX, or a DAX file) the same calls make it survive power loss. A pool on a disk
 * filesystem without DAX gets a warning: flushes never reach the disk.
 *
 * Superblock updates (clean flag at open and close, a new region) are made crash-atomic with the
 * backup copy: the new record is written and persisted to the backup first, then to the primary.
 * A crash tears at most one of the two, so at open a primary with a bad CRC but a good backup is a
 * torn update: the backup is taken (with a warning). Both bad means corruption: -EBADMSG.
 *
 * A pool is used by one open at a time: the open holds an OFD write lock (fcntl F_OFD_SETLK) on the
 * file until close (a crashed process releases it), and a second open gets -EBUSY. A file can hold
 * slices instead (paste_pool_opts.sliced, one per worker process): each slice is a complete pool
 * at slice x stride, locked on its byte range only; an open of the whole file locks all of it.
 *
 * Device DAX (/dev/daxX.Y, pool_dax.c): the pool is the whole device, mapped at its sysfs
 * alignment, never created or truncated; a device whose superblock page is all zeros is formatted
 * on first use (with create), one with a pool superblock is opened like a file, anything else is
 * refused and left alone.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <libpmem.h>
#include <linux/if_xdp.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <paste/pool.h>

#include "internal.h"
#include "pool_dax.h" /* device DAX (issue 14) */
#include "pool_internal.h"
#include "pool_priv.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

/* ---- superblock ------------------------------------------------------------------------- */

/* Record @p->sb in both copies: backup first, then the primary, each persisted. */
static void sb_commit(struct paste_pool *p)
{
	p->sb.crc = paste_pool__sb_crc(&p->sb);
	memcpy(p->base + POOL_SB_BACKUP_OFF, &p->sb, sizeof(p->sb));
	paste_pool__persist(p, p->base + POOL_SB_BACKUP_OFF, sizeof(p->sb));
	memcpy(p->base, &p->sb, sizeof(p->sb));
	paste_pool__persist(p, p->base, sizeof(p->sb));
}

static bool region_name_ok(const char *name)
{
	size_t n = strnlen(name, PASTE_POOL_REGION_NAME_MAX + 1);

	if (n == 0 || n > PASTE_POOL_REGION_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] > '~')
			return false;
	return true;
}

/* The regions of a checksummed superblock: named, aligned, inside the used area, disjoint. */
static const char *sb_check_regions(const struct pool_sb *sb)
{
	uint64_t lo = sb->region_area_off, hi = lo + sb->region_area_used;

	if (sb->nregions > PASTE_POOL_MAX_REGIONS)
		return "region count out of range";
	for (uint32_t i = 0; i < sb->nregions; i++) {
		const struct pool_region *r = &sb->regions[i];

		if (!memchr(r->name, 0, sizeof(r->name)) || !region_name_ok(r->name))
			return "a region has an invalid name";
		if (r->size == 0 || r->off % POOL_PAGE || r->size % POOL_PAGE || r->off < lo ||
		    r->off > hi || r->size > hi - r->off)
			return "a region lies outside the region area";
		for (uint32_t j = 0; j < i; j++) {
			const struct pool_region *q = &sb->regions[j];

			if (r->off < q->off + q->size && q->off < r->off + r->size)
				return "two regions overlap";
			if (!strcmp(r->name, q->name))
				return "two regions have the same name";
		}
	}
	return NULL;
}

/* Geometry of a checksummed superblock; @return NULL or what is wrong. */
static const char *sb_check_geometry(const struct pool_sb *sb)
{
	uint64_t region_end = sb->region_area_off + sb->region_area_size;

	if (sb->frame_size != 2048 && sb->frame_size != 4096)
		return "frame size is neither 2048 nor 4096";
	if (sb->frame_count < POOL_MIN_FRAMES)
		return "too few frames";
	if (sb->region_area_off != POOL_SB_AREA || sb->region_area_size % POOL_PAGE ||
	    sb->region_area_size > sb->pool_size || sb->region_area_used > sb->region_area_size ||
	    sb->region_area_used % POOL_PAGE)
		return "region area out of place";
	if (sb->frame_area_off % POOL_PAGE || sb->frame_area_off < region_end ||
	    sb->frame_area_off > sb->pool_size ||
	    (uint64_t)sb->frame_count * sb->frame_size > sb->pool_size - sb->frame_area_off)
		return "frame area does not fit in the pool";
	return sb_check_regions(sb);
}

/* ---- creating ---------------------------------------------------------------------------- */

/* Fill @sb with the geometry of a new pool from @cfg. */
static int pool_layout(struct pool_sb *sb, const char *path, const struct pool_cfg *cfg)
{
	uint64_t region = cfg->region_area, min, frames;

	if (cfg->size > (uint64_t)INT64_MAX)
		return paste_fail(-EFBIG, "cannot create pool %s: %llu bytes is too large", path,
		                  (unsigned long long)cfg->size);
	if (!region)
		region =
		    cfg->size / 8 > POOL_MIN_REGION_AREA ? cfg->size / 8 : POOL_MIN_REGION_AREA;
	if (region > cfg->size)
		return paste_fail(
		    -EINVAL,
		    "cannot create pool %s: region area (%llu bytes) larger than the pool (%llu bytes)",
		    path, (unsigned long long)region, (unsigned long long)cfg->size);
	region = PASTE_ALIGN_UP(region, (uint64_t)POOL_PAGE);
	min = POOL_SB_AREA + region + (uint64_t)POOL_MIN_FRAMES * cfg->frame_size;
	if (cfg->size < min)
		return paste_fail(
		    -EINVAL,
		    "cannot create pool %s: %llu bytes is too small: superblock (4 KiB) + region area (%llu) + %u frames of %u bytes need %llu; give a larger size or a smaller region_area",
		    path, (unsigned long long)cfg->size, (unsigned long long)region,
		    POOL_MIN_FRAMES, cfg->frame_size, (unsigned long long)min);
	frames = (cfg->size - POOL_SB_AREA - region) / cfg->frame_size;
	if (frames > UINT32_MAX)
		return paste_fail(
		    -EFBIG,
		    "cannot create pool %s: %llu bytes is too large (at most 2^32-1 frames of %u bytes)",
		    path, (unsigned long long)cfg->size, cfg->frame_size);
	memset(sb, 0, sizeof(*sb));
	memcpy(sb->magic, POOL_MAGIC, sizeof(sb->magic));
	sb->version = POOL_VERSION;
	sb->frame_size = cfg->frame_size;
	sb->frame_count = (uint32_t)frames;
	sb->region_area_off = POOL_SB_AREA;
	sb->region_area_size = region;
	sb->frame_area_off = POOL_SB_AREA + region;
	sb->pool_size = sb->frame_area_off + frames * cfg->frame_size; /* rounded down to frames */
	sb->clean = 1;
	if (getrandom(sb->uuid, sizeof(sb->uuid), 0) != sizeof(sb->uuid))
		return paste_fail(-errno, "cannot create pool %s: getrandom: %s", path,
		                  strerror(errno));
	sb->uuid[6] = (sb->uuid[6] & 0x0f) | 0x40; /* version 4 */
	sb->uuid[8] = (sb->uuid[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	return 0;
}

/* Give the new, empty file its size (allocated, so the frames never hit ENOSPC later). */
static int pool_size_file(struct paste_pool *p, uint64_t size)
{
	int e = posix_fallocate(p->fd, (off_t)p->off, (off_t)size);

	if (e == EOPNOTSUPP || e == EINVAL) {
		struct stat st;

		e = fstat(p->fd, &st) ? errno : 0;
		if (!e && (uint64_t)st.st_size < p->off + size)
			e = ftruncate(p->fd, (off_t)(p->off + size)) ? errno : 0;
	}
	if (e == ENOSPC || e == EFBIG)
		return paste_fail(
		    -e,
		    "cannot create pool %s: %llu bytes do not fit on its filesystem (%s): free space (on hugetlbfs: reserve pages, /proc/sys/vm/nr_hugepages) or choose a smaller size",
		    p->path, (unsigned long long)size, strerror(e));
	if (e)
		return paste_fail(-e, "cannot create pool %s: sizing the file to %llu bytes: %s",
		                  p->path, (unsigned long long)size, strerror(e));
	return 0;
}

/* ---- opening ----------------------------------------------------------------------------- */

/* A nanosecond count from the environment (0 if unset or not a number below 1 s). */
static uint32_t env_ns(const char *name)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return 0;
	n = strtoul(v, &end, 10);
	if (*end || n >= 1000000000ul) {
		pr_warn("%s=%s ignored: expected nanoseconds below 1000000000", name, v);
		return 0;
	}
	return (uint32_t)n;
}

static int pool_cfg_from_opts(struct pool_cfg *cfg, const char *path,
                              const struct paste_pool_opts *opts)
{
	struct paste_pool_opts o = {0};
	char what[PATH_MAX + 8];

	snprintf(what, sizeof(what), "pool %s", path);
	if (opts && PASTE_OPTS_COPY(&o, opts, size, what))
		return -EINVAL;
	cfg->size = o.size ? o.size : PASTE_POOL_DEFAULT_SIZE;
	cfg->frame_size = o.frame_size;
	cfg->region_area = o.region_area;
	cfg->create = o.create || o.must_create;
	cfg->must_create = o.must_create;
	cfg->check_umem = o.check_umem;
	cfg->sliced = o.sliced;
	cfg->slice = o.slice;
	cfg->emu_fence_ns = o.emu_fence_ns ? o.emu_fence_ns : env_ns("PASTE_EMU_FENCE_NS");
	cfg->emu_line_ns = o.emu_line_ns ? o.emu_line_ns : env_ns("PASTE_EMU_LINE_NS");
	if (cfg->emu_fence_ns || cfg->emu_line_ns)
		pr_warn("pool %s: emulating slow media: %u ns per fence + %u ns per flushed line",
		        path, cfg->emu_fence_ns, cfg->emu_line_ns);
	if (cfg->frame_size && cfg->frame_size != 2048 && cfg->frame_size != 4096)
		return paste_fail(-EINVAL,
		                  "pool %s: frame size %u is not supported: use 2048 or 4096", path,
		                  cfg->frame_size);
	return 0;
}

/* Map the whole file through our descriptor; warn when flushes cannot make data durable. */
static int pool_map(struct paste_pool *p)
{
	char fdpath[64];
	struct statfs fs;
	struct stat st;
	int is_pmem = 0;

	if (fstat(p->fd, &st))
		return paste_fail(-errno, "cannot stat pool %s: %s", p->path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
		return paste_fail(-EINVAL, "pool %s is neither a regular file nor a device-DAX",
		                  p->path);
	if (S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size < p->off + (p->stride ? p->stride : POOL_SB_AREA))
		return paste_fail(
		    -EBADMSG,
		    "%s is not a paste pool%s: %lld bytes, too short for it: check the path, or remove the file",
		    p->path, p->stride ? " with this slice" : "", (long long)st.st_size);
	if (p->stride && !S_ISREG(st.st_mode))
		return paste_fail(
		    -EINVAL,
		    "pool %s: slices (one per worker) need a regular file (/dev/shm), not a device",
		    p->path);
	if (S_ISCHR(st.st_mode)) { /* device DAX (issue 14): sysfs size, aligned mapping */
		struct paste_dax_info dax;
		int err = paste_dax__probe(p->fd, p->path, &dax);

		if (!err)
			err = paste_dax__map(p->fd, p->path, &dax, (void **)&p->base, &p->map_len);
		p->is_pmem = !err;
		if (!err && p->ops.map)
			p->ops.map(p->ops.arg, p->base, p->map_len);
		return err;
	}
	if (p->stride) { /* one slice: mapped at its offset */
		p->base =
		    mmap(NULL, p->stride, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, (off_t)p->off);
		if (p->base == MAP_FAILED) {
			p->base = NULL;
			return paste_fail(-errno, "cannot map pool %s: %s", p->path,
			                  strerror(errno));
		}
		p->map_len = p->stride;
		is_pmem = pmem_is_pmem(p->base, p->map_len);
	} else {
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d",
		         p->fd); /* the inode we locked */
		p->base = pmem_map_file(fdpath, 0, 0, 0, &p->map_len, &is_pmem);
		if (!p->base)
			return paste_fail(-errno, "cannot map pool %s: %s", p->path,
			                  pmem_errormsg());
	}
	p->is_pmem = is_pmem;
	if (p->ops.map)
		p->ops.map(p->ops.arg, p->base, p->map_len);
	if (is_pmem || fstatfs(p->fd, &fs) || fs.f_type == TMPFS_MAGIC ||
	    fs.f_type == HUGETLBFS_MAGIC || S_ISCHR(st.st_mode))
		return 0;
	pr_warn(
	    "pool %s is on a filesystem without DAX: cache flushes do not reach the disk, so its data survives process crashes but not a power loss or kernel crash",
	    p->path);
	return 0;
}

static int pool_create(struct paste_pool *p, const struct pool_cfg *cfg)
{
	struct pool_cfg c = *cfg;
	char slice[24];
	int err;

	if (!c.frame_size)
		c.frame_size = PASTE_POOL_DEFAULT_FRAME_SIZE;
	if (p->stride)
		c.size = p->stride;
	err = paste_pool__hugetlb_check(p, c.size);
	if (!err)
		err = pool_layout(&p->sb, p->path, &c);
	p->sb.slice = c.slice;
	p->sb.slice_stride = p->stride;
	if (!err)
		err = pool_size_file(p, p->sb.pool_size);
	if (!err)
		err = pool_map(p);
	if (err)
		return err;
	/* The file reads as zeros; the superblock goes last so a crash leaves no valid pool. */
	sb_commit(p);
	slice[0] = '\0';
	if (p->stride)
		snprintf(slice, sizeof(slice), " slice %u", p->sb.slice);
	pr_info("created pool %s%s: %llu bytes, %u frames of %u bytes, %llu-byte region area",
	        p->path, slice, (unsigned long long)p->sb.pool_size, p->sb.frame_count,
	        p->sb.frame_size, (unsigned long long)p->sb.region_area_size);
	return 0;
}

/* Why neither superblock copy is usable, judged from the primary. */
static int pool_diagnose_sb(const struct paste_pool *p)
{
	static const uint8_t zero[POOL_SB_AREA];
	const struct pool_sb *prim = (const void *)p->base;

	if (memcmp(prim->magic, POOL_MAGIC, sizeof(prim->magic)))
		return paste_fail(
		    -EBADMSG,
		    "%s is not a paste pool (no pool superblock at offset 0%s): check the path, or remove the file to create a new pool",
		    p->path,
		    !memcmp(p->base, zero, POOL_SB_AREA)
		        ? "; it is all zeros: a creation interrupted by a crash?"
		        : "");
	if (prim->version != POOL_VERSION)
		return paste_fail(
		    -EBADMSG,
		    "pool %s has format version %u; this library reads version %u: use a matching libpaste-xdp or recreate the pool",
		    p->path, prim->version, POOL_VERSION);
	return paste_fail(
	    -EBADMSG, "pool %s: superblock checksum mismatch: corrupt pool; restore or recreate",
	    p->path);
}

/*
 * Take the primary superblock if it is intact, else the backup: a crash can tear one copy (even
 * its magic: memcpy stores in any order), never both.
 */
static int pool_load_sb(struct paste_pool *p)
{
	const struct pool_sb *prim = (const void *)p->base;
	const struct pool_sb *backup = (const void *)(p->base + POOL_SB_BACKUP_OFF);

	if (p->map_len < POOL_SB_AREA)
		return paste_fail(-EBADMSG,
		                  "%s is not a paste pool: %zu bytes, smaller than a superblock",
		                  p->path, p->map_len);
	if (paste_pool__sb_intact(prim)) {
		p->sb = *prim;
		return 0;
	}
	if (!paste_pool__sb_intact(backup))
		return pool_diagnose_sb(p);
	pr_warn(
	    "pool %s: the superblock was torn by a crash during an update; using its backup copy",
	    p->path);
	p->sb = *backup;
	return 0;
}

static int pool_load(struct paste_pool *p, const struct pool_cfg *cfg)
{
	const char *why;
	int err;

	err = p->base ? 0 : pool_map(p); /* device DAX: pool_open_dax mapped it */
	if (!err)
		err = pool_load_sb(p);
	if (err)
		return err;
	if (p->sb.pool_size > p->map_len)
		return paste_fail(
		    -EBADMSG,
		    "pool %s is truncated: file is %zu bytes, superblock says %llu: restore the file or recreate the pool",
		    p->path, p->map_len, (unsigned long long)p->sb.pool_size);
	why = sb_check_geometry(&p->sb);
	if (why)
		return paste_fail(-EBADMSG, "pool %s: corrupt superblock (%s): restore or recreate",
		                  p->path, why);
	if (p->stride && (p->sb.slice != cfg->slice || p->sb.slice_stride != p->stride))
		return paste_fail(
		    -EBADMSG,
		    "pool %s: the superblock at slice %u's place says slice %u, stride "
		    "%llu (expected stride %llu): the slices were made with another "
		    "size; give the same --pool-size as when they were made",
		    p->path, cfg->slice, p->sb.slice, (unsigned long long)p->sb.slice_stride,
		    (unsigned long long)p->stride);
	if (cfg->frame_size && cfg->frame_size != p->sb.frame_size)
		return paste_fail(
		    -EINVAL,
		    "pool %s has %u-byte frames, %u-byte frames were requested: ask for %u (or 0), or recreate the pool",
		    p->path, p->sb.frame_size, cfg->frame_size, p->sb.frame_size);
	return 0;
}

/*
 * Device DAX (issue 14): map it, format it if its superblock page is all zeros (first use), else
 * load it as a pool. Not "created": a failed open must never unlink a device node.
 */
static int pool_open_dax(struct paste_pool *p, const struct pool_cfg *cfg)
{
	struct pool_cfg c = *cfg;
	enum paste_dax_content content;
	int err = pool_map(p);

	if (err)
		return err;
	content = paste_dax__classify(p->base, POOL_SB_AREA, POOL_MAGIC, 8, POOL_SB_BACKUP_OFF);
	if (content == PASTE_DAX_POOL)
		return pool_load(p, cfg);
	if (content == PASTE_DAX_FOREIGN)
		return paste_fail(-EBADMSG,
		                  "device DAX %s holds data that is not a paste pool: refusing to "
		                  "format it; if nothing on it is needed, zero its first 4 KiB "
		                  "(docs/deploying.md shows how) and open it again",
		                  p->path);
	if (!cfg->create)
		return paste_fail(
		    -ENOENT, "device DAX %s holds no pool yet: open it with create to format it",
		    p->path);
	c.size = p->map_len; /* the whole device */
	c.frame_size = c.frame_size ? c.frame_size : PASTE_POOL_DEFAULT_FRAME_SIZE;
	err = pool_layout(&p->sb, p->path, &c);
	if (err)
		return err;
	sb_commit(p);
	p->dax_new = true;
	pr_info("formatted device DAX %s as a pool: %llu bytes, %u frames of %u bytes", p->path,
	        (unsigned long long)p->sb.pool_size, p->sb.frame_count, p->sb.frame_size);
	return 0;
}

/* Register the frame area as a UMEM on a throwaway AF_XDP socket, as the XSK glue will. */
static int pool_check_umem(const struct paste_pool *p)
{
	struct xdp_umem_reg mr = {
	    .addr = (uintptr_t)(p->base + p->sb.frame_area_off),
	    .len = (uint64_t)p->sb.frame_count * p->sb.frame_size,
	    .chunk_size = p->sb.frame_size,
	    .headroom = 0,
	};
	int fd, err;

	fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0 && (errno == EPERM || errno == EACCES))
		return paste_fail(
		    -errno,
		    "cannot check pool %s as a UMEM: creating an AF_XDP socket needs root or CAP_NET_RAW",
		    p->path);
	if (fd < 0 && errno == EAFNOSUPPORT)
		return paste_fail(
		    -errno,
		    "cannot check pool %s as a UMEM: this kernel has no AF_XDP (CONFIG_XDP_SOCKETS)",
		    p->path);
	if (fd < 0)
		return paste_fail(-errno, "cannot check pool %s as a UMEM: socket(AF_XDP): %s",
		                  p->path, strerror(errno));
	err = setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof(mr)) ? -errno : 0;
	close(fd);
	if (err == -EFAULT || err == -EOPNOTSUPP) /* fsdax or a disk filesystem (issue 14) */
		return paste_dax__umem_refused(p->path, err);
	if (err == -ENOBUFS || err == -ENOMEM || err == -EPERM)
		return paste_fail(
		    err,
		    "cannot register %llu bytes of pool %s for AF_XDP (%s): the locked-memory limit is too low: raise ulimit -l or run with CAP_IPC_LOCK",
		    (unsigned long long)mr.len, p->path, strerror(-err));
	if (err)
		return paste_fail(
		    err,
		    "the kernel refuses pool %s as a UMEM (%s): frame area of %llu bytes in %u-byte chunks",
		    p->path, strerror(-err), (unsigned long long)mr.len, mr.chunk_size);
	return 0;
}

/* ---- public API -------------------------------------------------------------------------- */

int paste_pool__open_registered(struct paste_pool **pool, const char *path,
                                const struct paste_pool_opts *opts)
{
	struct paste_pool *p;
	struct pool_cfg cfg;
	int err;

	if (!pool)
		return paste_fail(-EINVAL, "paste_pool__open: pool is NULL");
	*pool = NULL;
	if (!path)
		path = PASTE_POOL_DEFAULT_PATH;
	err = pool_cfg_from_opts(&cfg, path, opts);
	if (err)
		return err;
	p = calloc(1, sizeof(*p) + strlen(path) + 1);
	if (!p)
		return paste_fail(-ENOMEM, "pool %s: out of memory", path);
	strcpy(p->path, path);
	p->fd = -1;
	paste_pool__default_ops(p);
	p->emu_fence_ns = cfg.emu_fence_ns;
	p->emu_line_ns = cfg.emu_line_ns;

	err = paste_pool__open_file(p, &cfg);
	if (err)
		goto err_close;
	if (!p->created && paste_dax__is_chardev(p->fd)) /* device DAX (issue 14) */
		err = pool_open_dax(p, &cfg);
	else
		err = p->created ? pool_create(p, &cfg) : pool_load(p, &cfg);
	if (err)
		goto err_unmap;
	if (cfg.check_umem) {
		err = pool_check_umem(p);
		if (err)
			goto err_unmap;
	}
	p->was_clean = p->sb.clean;
	err = paste_pool__recover(p);
	if (err)
		goto err_unmap;
	p->sb.clean = 0;
	sb_commit(p);
	*pool = p;
	return 0;

err_unmap:
	paste_pool__free_volatile(p);
	if (p->base)
		pmem_unmap(p->base, p->map_len);
err_close:
	if (p->created && !p->stride)
		unlink(p->path); /* ours, made by O_EXCL: leave nothing half made behind */
	if (p->fd >= 0)
		close(p->fd);
	free(p);
	return err;
}

PASTE_EXPORT void paste_pool__close(struct paste_pool **pool)
{
	struct paste_pool *p = pool ? *pool : NULL;

	if (!p)
		return;
	paste_pool__drain(p); /* deferred releases, index hooks */
	p->sb.clean = 1;
	sb_commit(p);
	paste_pool__free_volatile(p);
	pmem_unmap(p->base, p->map_len);
	close(p->fd);
	free(p);
	*pool = NULL;
}

PASTE_EXPORT int paste_pool__info(const struct paste_pool *pool, struct paste_pool_info *out,
                                  size_t sz)
{
	struct paste_pool_info info = {0};
	const struct pool_sb *sb;

	if (!pool)
		return paste_fail(-EINVAL, "paste_pool__info: NULL pool");
	sb = &pool->sb;
	info.size = sb->pool_size;
	info.frame_size = sb->frame_size;
	info.frame_count = sb->frame_count;
	info.frame_area_off = sb->frame_area_off;
	info.region_area_off = sb->region_area_off;
	info.region_area_size = sb->region_area_size;
	info.region_area_used = sb->region_area_used;
	memcpy(info.uuid, sb->uuid, sizeof(info.uuid));
	info.created = pool->created || pool->dax_new; /* device DAX (issue 14) */
	info.was_clean = pool->was_clean;
	info.is_pmem = pool->is_pmem;
	info.slice = sb->slice;
	info.slice_stride = sb->slice_stride;
	return paste_info_copy(out, sz, &info, sizeof(info), "paste_pool__info");
}

PASTE_EXPORT void *paste_pool__frames(const struct paste_pool *pool)
{
	return pool->base + pool->sb.frame_area_off;
}

PASTE_EXPORT void *paste_pool__base(const struct paste_pool *pool)
{
	return pool->base;
}

static struct pool_region *region_find(struct paste_pool *p, const char *name)
{
	for (uint32_t i = 0; i < p->sb.nregions; i++)
		if (!strcmp(p->sb.regions[i].name, name))
			return &p->sb.regions[i];
	return NULL;
}

/* Reserve, zero and record a new region of @size bytes, rounded up to 4 KiB. */
static int region_add(struct paste_pool *p, const char *name, uint64_t size)
{
	struct pool_sb *sb = &p->sb;
	struct pool_region *r;

	if (sb->nregions >= PASTE_POOL_MAX_REGIONS)
		return paste_fail(
		    -ENOSPC,
		    "pool %s: cannot add region '%s': the region table is full (%d regions); recreate the pool",
		    p->path, name, PASTE_POOL_MAX_REGIONS);
	if (size > sb->region_area_size - sb->region_area_used)
		return paste_fail(
		    -ENOSPC,
		    "pool %s: cannot add region '%s' of %llu bytes: %llu of the %llu-byte region area are free; recreate the pool with a larger region_area",
		    p->path, name, (unsigned long long)size,
		    (unsigned long long)(sb->region_area_size - sb->region_area_used),
		    (unsigned long long)sb->region_area_size);
	size = PASTE_ALIGN_UP(size, (uint64_t)POOL_PAGE); /* still fits: the free space is too */
	r = &sb->regions[sb->nregions];
	memset(r, 0, sizeof(*r));
	strcpy(r->name, name);
	r->off = sb->region_area_off + sb->region_area_used;
	r->size = size;
	memset(p->base + r->off, 0, size); /* zeroed and persisted before it is recorded */
	paste_pool__persist(p, p->base + r->off, size);
	sb->nregions++;
	sb->region_area_used += size;
	sb_commit(p);
	return 0;
}

PASTE_EXPORT int paste_pool__region(struct paste_pool *pool, const char *name, uint64_t size,
                                    void **addr, uint64_t *len)
{
	struct pool_region *r;
	int err;

	if (!name || !region_name_ok(name))
		return paste_fail(
		    -EINVAL,
		    "pool %s: bad region name '%.40s': use 1 to %d printable characters without spaces",
		    pool->path, name ? name : "(null)", PASTE_POOL_REGION_NAME_MAX);
	r = region_find(pool, name);
	if (!r && size == 0)
		return paste_fail(-ENOENT, "pool %s has no region '%s'", pool->path, name);
	if (!r) {
		err = region_add(pool, name, size);
		if (err)
			return err;
		r = region_find(pool, name);
	} else if (r->size < size) {
		return paste_fail(
		    -EINVAL,
		    "pool %s: region '%s' has %llu bytes, %llu were asked for: regions cannot grow; recreate the pool",
		    pool->path, name, (unsigned long long)r->size, (unsigned long long)size);
	}
	*addr = pool->base + r->off;
	*len = r->size;
	return 0;
}

int paste_pool__find_region(struct paste_pool *pool, const char *name, void **addr, uint64_t *len)
{
	struct pool_region *r = region_find(pool, name);

	if (!r)
		return -ENOENT;
	*addr = pool->base + r->off;
	*len = r->size;
	return 0;
}
