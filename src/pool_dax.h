/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_dax.h - device DAX (/dev/daxX.Y: persistent memory from an NVDIMM namespace or a CXL region)
 * as a pool, and why a file on a DAX filesystem (fsdax) cannot be one. Used by the pool (pool.c),
 * which calls paste_dax__probe() on a character device, then paste_dax__map(), and formats the
 * device on first use (its superblock page all zeros: paste_dax__classify()).
 *
 * A device-DAX node has no file size and refuses read/write/ftruncate: its size and the alignment
 * every mapping of it must respect (offset, length and address: 4 KiB, 2 MiB or 1 GiB) are read
 * from sysfs, /sys/dev/char/MAJ:MIN/{size,align} (Documentation/ABI/testing/sysfs-bus-dax; before
 * Linux 5.10 only the region's align exists, ../dax_region/align). Tests point the sysfs root
 * elsewhere with the PASTE_DAX_SYSFS environment variable (a fake tree in a temp directory).
 */
#ifndef PASTE_POOL_DAX_H
#define PASTE_POOL_DAX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** What sysfs says about a device-DAX node. */
struct paste_dax_info {
	uint64_t size;  /**< bytes of the device */
	uint64_t align; /**< mapping alignment (power of two, 4 KiB .. 1 GiB) */
	unsigned major, minor;
};

/** Default when the kernel publishes no align attribute (the device-DAX default, PMD size). */
#define PASTE_DAX_DEFAULT_ALIGN (2ull << 20)

/** The sysfs root used by paste_dax__probe(): $PASTE_DAX_SYSFS if set (tests), else "/sys". */
const char *paste_dax__sysfs_root(void);

/**
 * Describe the character device open as @fd (@path for messages) from the sysfs tree at @sysfs
 * (NULL: paste_dax__sysfs_root()).
 * @return 0 with *out filled; -ENODEV (a character device but not a device DAX: no size attribute),
 * -EINVAL (size 0 or not a multiple of the alignment, or an impossible alignment), -ENOTSUP (@fd
 * is not a character device), or the errno of the failing stat/read. Every failure is reported
 * through paste_fail().
 */
int paste_dax__probe_at(const char *sysfs, int fd, const char *path, struct paste_dax_info *out);
int paste_dax__probe(int fd, const char *path, struct paste_dax_info *out);

/**
 * Map @info->size bytes of @fd from offset 0, shared, read-write, at an address aligned to
 * @info->align (device DAX refuses a mapping whose start or length is not). Never truncates.
 * @return 0 with *base and *len set (release with munmap/pmem_unmap), or -errno with a message.
 */
int paste_dax__map(int fd, const char *path, const struct paste_dax_info *info, void **base,
                   size_t *len);

/** True if @fd is a character device (a device-DAX candidate). */
bool paste_dax__is_chardev(int fd);

/** What the superblock page of a device holds (paste_dax__classify()). */
enum paste_dax_content {
	PASTE_DAX_BLANK,   /**< all zeros: never used, the pool formats it */
	PASTE_DAX_POOL,    /**< the pool magic in the primary or the backup superblock: open it */
	PASTE_DAX_FOREIGN, /**< anything else: refused, never formatted */
};

/**
 * Classify the @len-byte superblock page at @page: @magic (@magic_len bytes) is looked for at 0
 * and at @backup_off (a crash may have torn either copy, never both).
 */
enum paste_dax_content paste_dax__classify(const void *page, size_t len, const void *magic,
                                           size_t magic_len, size_t backup_off);

/**
 * True if the file at @path is accessed through DAX: statx() reports STATX_ATTR_DAX (Linux 5.8+);
 * on kernels that do not report the attribute, the mount of the file has the dax option in
 * @mountinfo (NULL: /proc/self/mountinfo).
 */
bool paste_dax__file_is_fsdax(const char *path, const char *mountinfo);

/** True if the mount of device @dev in the mountinfo file @mountinfo has a dax / dax=always
 * option. */
bool paste_dax__mount_has_dax(const char *mountinfo, dev_t dev);

/**
 * The message for a UMEM registration of pool @path that the kernel refused with @err (-EFAULT or
 * -EOPNOTSUPP: long-term pinning refused): names fsdax as the cause when the pool is a file on a
 * DAX filesystem, the filesystem otherwise, and the fix. @return @err (after paste_fail()).
 */
int paste_dax__umem_refused(const char *path, int err);

#endif /* PASTE_POOL_DAX_H */
