/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pool_dax.c - device DAX as a pool (pool_dax.h): size and alignment from sysfs, an aligned
 * shared mapping, and the diagnosis of a pool file on a DAX filesystem (fsdax), which AF_XDP cannot
 * use: registering a UMEM pins its pages long-term (pin_user_pages with FOLL_LONGTERM) and the
 * kernel refuses that for fsdax mappings (mm/gup.c; device DAX is exempt, include/linux/fs.h
 * vma_is_fsdax), so XDP_UMEM_REG fails with EOPNOTSUPP (EFAULT on some kernels).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"
#include "pool_dax.h"

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000 /* linux/stat.h, 5.8 */
#endif

#define DAX_MIN_ALIGN 4096ull
#define DAX_MAX_ALIGN (1ull << 30)

const char *paste_dax__sysfs_root(void)
{
	const char *root = secure_getenv("PASTE_DAX_SYSFS");

	return root && *root ? root : "/sys";
}

/* Read one unsigned number (decimal or 0x hex, as sysfs prints) from @file. */
static int read_u64(const char *file, uint64_t *v)
{
	char buf[64], *end;
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EINVAL;
	buf[n] = 0;
	errno = 0;
	*v = strtoull(buf, &end, 0);
	if (errno || end == buf || (*end && *end != '\n'))
		return -EINVAL;
	return 0;
}

/* The alignment: the device's own (5.10+), else its region's (older kernels), else 2 MiB. */
static uint64_t probe_align(const char *dir)
{
	static const char *const names[] = {"align", "../dax_region/align",
	                                    "device/dax_region/align"};
	char file[512];
	uint64_t v;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(file, sizeof(file), "%s/%s", dir, names[i]);
		if (!read_u64(file, &v))
			return v;
	}
	return PASTE_DAX_DEFAULT_ALIGN;
}

int paste_dax__probe_at(const char *sysfs, int fd, const char *path, struct paste_dax_info *out)
{
	char dir[384], file[512];
	struct stat st;
	int err;

	if (fstat(fd, &st))
		return paste_fail(-errno, "cannot stat %s: %s", path, strerror(errno));
	if (!S_ISCHR(st.st_mode))
		return paste_fail(-ENOTSUP, "%s is not a character device, so not a device DAX",
		                  path);
	memset(out, 0, sizeof(*out));
	out->major = major(st.st_rdev);
	out->minor = minor(st.st_rdev);
	snprintf(dir, sizeof(dir), "%s/dev/char/%u:%u", sysfs ? sysfs : paste_dax__sysfs_root(),
	         out->major, out->minor);
	snprintf(file, sizeof(file), "%s/size", dir);
	err = read_u64(file, &out->size);
	if (err == -ENOENT)
		return paste_fail(-ENODEV,
		                  "%s is a character device (%u:%u) but not a device DAX (no %s): "
		                  "a pool must be a regular file or a /dev/daxX.Y node",
		                  path, out->major, out->minor, file);
	if (err)
		return paste_fail(err, "device DAX %s: cannot read its size from %s: %s", path,
		                  file, strerror(-err));
	out->align = probe_align(dir);
	if (out->align < DAX_MIN_ALIGN || out->align > DAX_MAX_ALIGN ||
	    (out->align & (out->align - 1)))
		return paste_fail(-EINVAL,
		                  "device DAX %s: alignment %" PRIu64
		                  " (from %s) is not a power of two between 4 KiB and 1 GiB",
		                  path, out->align, dir);
	if (out->size == 0)
		return paste_fail(
		    -EINVAL,
		    "device DAX %s has size 0: give it capacity (daxctl create-device / ndctl "
		    "create-namespace --size, see docs/deploying.md)",
		    path);
	if (out->size % out->align)
		return paste_fail(-EINVAL,
		                  "device DAX %s: size %" PRIu64
		                  " is not a multiple of its alignment %" PRIu64
		                  ": recreate it with a size that is (see docs/deploying.md)",
		                  path, out->size, out->align);
	return 0;
}

int paste_dax__probe(int fd, const char *path, struct paste_dax_info *out)
{
	return paste_dax__probe_at(NULL, fd, path, out);
}

int paste_dax__map(int fd, const char *path, const struct paste_dax_info *info, void **base,
                   size_t *len)
{
	size_t n = (size_t)info->size, a = (size_t)info->align;
	uint8_t *resv, *at, *m;

	if (info->size > SIZE_MAX - info->align || !a || n % a)
		return paste_fail(
		    -EINVAL, "device DAX %s: cannot map %" PRIu64 " bytes at alignment %" PRIu64,
		    path, info->size, info->align);
	/* Reserve size + align of address space, then put the device at the aligned spot in it. */
	resv = mmap(NULL, n + a, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED)
		return paste_fail(-errno,
		                  "device DAX %s: cannot reserve %zu bytes of address space: %s",
		                  path, n + a, strerror(errno));
	at = (uint8_t *)PASTE_ALIGN_UP((uintptr_t)resv, (uintptr_t)a);
	m = mmap(at, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (m == MAP_FAILED) {
		int e = errno;

		munmap(resv, n + a);
		return paste_fail(-e,
		                  "cannot map device DAX %s (%zu bytes at %zu-byte alignment): %s",
		                  path, n, a, strerror(e));
	}
	if (at > resv)
		munmap(resv, (size_t)(at - resv));
	if (resv + a > at)
		munmap(at + n, (size_t)(resv + a - at)); /* the rest of the reservation */
	*base = m;
	*len = n;
	return 0;
}

bool paste_dax__is_chardev(int fd)
{
	struct stat st;

	return !fstat(fd, &st) && S_ISCHR(st.st_mode);
}

enum paste_dax_content paste_dax__classify(const void *page, size_t len, const void *magic,
                                           size_t magic_len, size_t backup_off)
{
	const uint8_t *b = page;

	if (len >= magic_len && !memcmp(b, magic, magic_len))
		return PASTE_DAX_POOL;
	if (len >= magic_len && backup_off <= len - magic_len &&
	    !memcmp(b + backup_off, magic, magic_len))
		return PASTE_DAX_POOL;
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return PASTE_DAX_FOREIGN;
	return PASTE_DAX_BLANK;
}

/* True if the comma-separated option list @opts has "dax" or "dax=always". */
static bool opts_have_dax(const char *opts)
{
	char buf[1024], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", opts);
	for (char *o = strtok_r(buf, ",", &save); o; o = strtok_r(NULL, ",", &save))
		if (!strcmp(o, "dax") || !strcmp(o, "dax=always"))
			return true;
	return false;
}

/*
 * mountinfo lines (proc(5)): "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE
 * SUPEROPTS". The dax option is a filesystem (super block) option.
 */
bool paste_dax__mount_has_dax(const char *mountinfo, dev_t dev)
{
	char line[4096];
	bool dax = false;
	FILE *f = fopen(mountinfo ? mountinfo : "/proc/self/mountinfo", "re");

	if (!f)
		return false;
	while (!dax && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char opts[1024], super[1024], *sep;

		if (sscanf(line, "%*u %*u %u:%u %*s %*s %1023s", &maj, &min, opts) != 3 ||
		    makedev(maj, min) != dev)
			continue;
		sep = strstr(line, " - ");
		if (sep && sscanf(sep, " - %*s %*s %1023s", super) == 1 && opts_have_dax(super))
			dax = true;
		if (opts_have_dax(opts))
			dax = true;
	}
	fclose(f);
	return dax;
}

bool paste_dax__file_is_fsdax(const char *path, const char *mountinfo)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx))
		return false;
	if (!S_ISREG(stx.stx_mode))
		return false;
	if (stx.stx_attributes_mask & STATX_ATTR_DAX)
		return stx.stx_attributes & STATX_ATTR_DAX;
	return paste_dax__mount_has_dax(mountinfo, makedev(stx.stx_dev_major, stx.stx_dev_minor));
}

int paste_dax__umem_refused(const char *path, int err)
{
	const char *name = err == -EFAULT ? "EFAULT" : err == -EOPNOTSUPP ? "EOPNOTSUPP" : "error";

	if (paste_dax__file_is_fsdax(path, NULL))
		return paste_fail(
		    err,
		    "AF_XDP cannot use pool %s (%s: %s): it is a file on a DAX filesystem (fsdax, "
		    "mounted -o dax), and the kernel refuses long-term pinning of fsdax pages, "
		    "which registering a UMEM needs; put the pool on a device-DAX node "
		    "(/dev/daxX.Y, see docs/deploying.md) or on /dev/shm",
		    path, name, strerror(-err));
	return paste_fail(
	    err,
	    "the kernel refuses to register memory of pool %s for AF_XDP (%s: %s): file pages on "
	    "this "
	    "filesystem cannot be pinned long-term; put the pool on /dev/shm (tmpfs) or a "
	    "device-DAX node (/dev/daxX.Y, see docs/deploying.md)",
	    path, name, strerror(-err));
}
