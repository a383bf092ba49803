/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_pool_dax.c - src/pool_dax.c and the device-DAX path of paste_pool__open(), without a real
 * device DAX (none exists on these machines):
 *
 *  - the probe against a fake sysfs tree in a temp directory (the kernel's layout,
 *    Documentation/ABI/testing/sysfs-bus-dax: /sys/dev/char/MAJ:MIN -> .../daxX.Y with size and
 *    align, the region's align in ../dax_region), for a character device made with mknod;
 *  - the aligned shared mapping on a stand-in (a tmpfs file): address aligned, no truncation,
 *    stores reach the file;
 *  - paste_pool__open() on a character-device stand-in: a node with /dev/zero's numbers, which maps
 *    shared as zero-filled shmem, described by the fake sysfs (PASTE_DAX_SYSFS). It is formatted on
 *    first use, works as a pool and as a UMEM, and is never unlinked; it is not persistent (a new
 *    mapping of /dev/zero reads zeros again), which the test relies on to check the blank-device
 *    path on reopen.
 *  - the fsdax diagnosis: mountinfo parsing on a fake file, and the UMEM-refused message on tmpfs.
 * mknod needs root (CAP_MKNOD): the tests that need a node skip without it.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <cmocka.h>

#include <paste/paste.h>
#include <paste/pool.h>

#include "pool_dax.h"

#define MiB (1ull << 20)

static char tmp[64];    /* the temp directory of one test */
static char sysfs[128]; /* tmp/sys: the fake sysfs root */
static char node[128];  /* tmp/dax9.0: the character-device stand-in */
static dev_t node_rdev; /* its numbers */
static bool have_node;  /* mknod worked (root) */

static void assert_error_has(const char *what)
{
	if (!strstr(paste_last_error(), what))
		fail_msg("error \"%s\" lacks \"%s\"", paste_last_error(), what);
}

static void put(const char *rel, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void mkdirs(const char *rel)
{
	char p[512], cmd[600];

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
	assert_int_equal(system(cmd), 0);
}

/*
 * The kernel's layout: the device directory under its region, reached from /sys/dev/char/M:m by a
 * symlink. @size/@align NULL leave the attribute out; @region_align the region's.
 */
static void fake_dax(const char *size, const char *align, const char *region_align)
{
	char link[512], target[512];

	mkdirs("sys/devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax_region");
	mkdirs("sys/devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax9.0");
	mkdirs("sys/dev/char");
	if (size)
		put("sys/devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax9.0/size", size);
	if (align)
		put("sys/devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax9.0/align", align);
	if (region_align)
		put("sys/devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax_region/align",
		    region_align);
	snprintf(link, sizeof(link), "%s/dev/char/%u:%u", sysfs, major(node_rdev),
	         minor(node_rdev));
	snprintf(target, sizeof(target),
	         "../../devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax9.0");
	unlink(link);
	assert_int_equal(symlink(target, link), 0);
}

static int setup(void **state)
{
	snprintf(tmp, sizeof(tmp), "/tmp/paste-dax-test-XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	snprintf(sysfs, sizeof(sysfs), "%s/sys", tmp);
	snprintf(node, sizeof(node), "%s/dax9.0", tmp);
	node_rdev = makedev(1, 5); /* /dev/zero's numbers: maps as zero-filled shared memory */
	have_node = mknod(node, S_IFCHR | 0600, node_rdev) == 0;
	setenv("PASTE_DAX_SYSFS", sysfs, 1);
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int teardown(void **state)
{
	unsetenv("PASTE_DAX_SYSFS");
	return nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int open_node(void)
{
	int fd;

	if (!have_node)
		skip();
	fd = open(node, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* ---- probe ------------------------------------------------------------------------------- */

static void test_probe_device_attrs(void **state)
{
	struct paste_dax_info d;
	int fd = open_node();

	fake_dax("68719476736\n", "2097152\n", "4096\n");
	assert_int_equal(paste_dax__probe(fd, node, &d), 0);
	assert_int_equal(d.size, 64ull << 30);
	assert_int_equal(d.align, 2 * MiB); /* the device's own align wins over the region's */
	assert_int_equal(d.major, 1);
	assert_int_equal(d.minor, 5);
	/* A 1 GiB-aligned device, hex as some attributes print. */
	fake_dax("0x80000000\n", "1073741824\n", NULL);
	assert_int_equal(paste_dax__probe_at(sysfs, fd, node, &d), 0);
	assert_int_equal(d.size, 2ull << 30);
	assert_int_equal(d.align, 1ull << 30);
	close(fd);
}

static void test_probe_align_fallbacks(void **state)
{
	char p[512];
	struct paste_dax_info d;
	int fd = open_node();

	/* Before 5.10 only the region says: ../dax_region/align, reached through the symlink. */
	fake_dax("8388608", NULL, "4096");
	assert_int_equal(paste_dax__probe(fd, node, &d), 0);
	assert_int_equal(d.align, 4096);
	/* Nothing says: the device-DAX default, 2 MiB. */
	snprintf(p, sizeof(p),
	         "%s/devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax_region/align", sysfs);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(paste_dax__probe(fd, node, &d), 0);
	assert_int_equal(d.align, PASTE_DAX_DEFAULT_ALIGN);
	close(fd);
}

static void test_probe_refusals(void **state)
{
	struct paste_dax_info d;
	char file[256];
	int fd = open_node(), rfd;

	/* A character device sysfs knows nothing DAX about (as /dev/zero itself): not a device DAX.
	 */
	mkdirs("sys/dev/char");
	assert_int_equal(paste_dax__probe(fd, node, &d), -ENODEV);
	assert_error_has("not a device DAX");
	assert_error_has(node);
	fake_dax("0", "2097152", NULL);
	assert_int_equal(paste_dax__probe(fd, node, &d), -EINVAL);
	assert_error_has("size 0");
	fake_dax("3145728", "2097152", NULL); /* 3 MiB at 2 MiB alignment */
	assert_int_equal(paste_dax__probe(fd, node, &d), -EINVAL);
	assert_error_has("not a multiple of its alignment");
	fake_dax("4194304", "3000", NULL);
	assert_int_equal(paste_dax__probe(fd, node, &d), -EINVAL);
	assert_error_has("power of two");
	fake_dax("lots", "2097152", NULL);
	assert_int_equal(paste_dax__probe(fd, node, &d), -EINVAL);
	assert_error_has("cannot read its size");
	close(fd);
	/* A regular file is not a device DAX. */
	snprintf(file, sizeof(file), "%s/plain", tmp);
	rfd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(rfd >= 0);
	assert_false(paste_dax__is_chardev(rfd));
	assert_int_equal(paste_dax__probe(rfd, file, &d), -ENOTSUP);
	close(rfd);
}

/* ---- mapping ----------------------------------------------------------------------------- */

/* Map a tmpfs file as the device through the same function: aligned, shared, never truncated. */
static void map_standin(uint64_t size, uint64_t align)
{
	struct paste_dax_info d = {.size = size, .align = align};
	char file[128], byte = 0;
	struct stat st;
	size_t len;
	void *base;
	int fd;

	snprintf(file, sizeof(file), "/dev/shm/paste-dax-test-%d.pool", (int)getpid());
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	unlink(file);
	assert_int_equal(ftruncate(fd, (off_t)(size + 4096)),
	                 0); /* sparse, larger than the "device" */
	assert_int_equal(paste_dax__map(fd, file, &d, &base, &len), 0);
	assert_int_equal(len, size);
	assert_int_equal((uintptr_t)base % align, 0);
	((char *)base)[len - 1] = 'z'; /* shared: the store is in the file */
	assert_int_equal(pread(fd, &byte, 1, (off_t)(len - 1)), 1);
	assert_int_equal(byte, 'z');
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, size + 4096); /* never truncated */
	assert_int_equal(munmap(base, len), 0);
	close(fd);
}

static void test_map_aligned(void **state)
{
	map_standin(8 * MiB, 2 * MiB);
	map_standin(1ull << 30, 1ull << 30); /* 1 GiB pages: the address too is 1 GiB aligned */
	map_standin(8 * MiB + 4096, 4096);
}

static void test_map_refusals(void **state)
{
	struct paste_dax_info d = {.size = 3 * MiB, .align = 2 * MiB};
	size_t len;
	void *base;

	assert_int_equal(paste_dax__map(-1, "x", &d, &base, &len), -EINVAL); /* not a multiple */
	d.size = 2 * MiB;
	assert_int_equal(paste_dax__map(-1, "/dev/dax7.7", &d, &base, &len), -EBADF);
	assert_error_has("/dev/dax7.7");
}

/* ---- the pool on a character device -------------------------------------------------------- */

static int open_dev_pool(struct paste_pool **p, bool create, bool must_create, bool check_umem)
{
	struct paste_pool_opts o = {.sz = sizeof(o),
	                            .create = create,
	                            .must_create = must_create,
	                            .check_umem = check_umem};

	return paste_pool__open(p, node, &o);
}

static bool have_af_xdp(void)
{
	int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void test_pool_on_device(void **state)
{
	struct paste_pool_info info;
	struct paste_pool *p;
	struct stat st;
	uint64_t len;
	void *r;
	int fd = open_node();

	close(fd);
	fake_dax("67108864", "2097152", NULL);
	/* Blank and create: formatted in place, the whole device, mapped 2 MiB aligned. */
	assert_int_equal(open_dev_pool(&p, true, false, have_af_xdp()), 0);
	paste_pool__info(p, &info, sizeof(info));
	assert_true(info.created);
	assert_true(info.is_pmem);
	assert_true(info.size <= 64 * MiB && info.size > 60 * MiB);
	assert_int_equal(info.frame_size, PASTE_POOL_DEFAULT_FRAME_SIZE);
	assert_int_equal((uintptr_t)paste_pool__base(p) % (2 * MiB), 0);
	assert_int_equal(paste_pool__region(p, "dax.test", 4096, &r, &len), 0);
	memset(r, 0xab, len);
	paste_pool__persist(p, r, len);
	paste_pool__close(&p);
	assert_int_equal(stat(node, &st), 0); /* the node is never unlinked or replaced */
	assert_true(S_ISCHR(st.st_mode));
	/* The stand-in is not persistent, so it reads blank again: without create that is refused.
	 */
	assert_int_equal(open_dev_pool(&p, false, false, false), -ENOENT);
	assert_null(p);
	assert_error_has("holds no pool yet");
	/* must_create on a device: it exists (a node cannot be created by the pool). */
	assert_int_equal(open_dev_pool(&p, true, true, false), -EEXIST);
	/* A failed open (bad sysfs) leaves the node alone. */
	fake_dax("0", "2097152", NULL);
	assert_int_equal(open_dev_pool(&p, true, false, false), -EINVAL);
	assert_int_equal(stat(node, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	/* The real /dev/zero numbers with no DAX sysfs entry: not a device DAX. */
	setenv("PASTE_DAX_SYSFS", "/sys", 1);
	assert_int_equal(open_dev_pool(&p, true, false, false), -ENODEV);
	assert_error_has("not a device DAX");
	setenv("PASTE_DAX_SYSFS", sysfs, 1);
	assert_int_equal(stat(node, &st), 0);
}

/* ---- fsdax ------------------------------------------------------------------------------- */

static void test_mountinfo_dax(void **state)
{
	char mi[128];
	dev_t pmem = makedev(259, 3), other = makedev(8, 1);

	snprintf(mi, sizeof(mi), "%s/mountinfo", tmp);
	put("mountinfo", "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
	                 "40 22 259:3 / /mnt/pmem rw,relatime shared:20 - xfs /dev/pmem0 "
	                 "rw,attr2,dax=always,inode64\n");
	assert_true(paste_dax__mount_has_dax(mi, pmem));
	assert_false(paste_dax__mount_has_dax(mi, other));
	put("mountinfo", "40 22 259:3 / /mnt/pmem rw,relatime - ext4 /dev/pmem0 rw,dax\n");
	assert_true(paste_dax__mount_has_dax(mi, pmem));
	/* dax=inode: only files with the DAX flag are DAX; statx says which, the mount does not. */
	put("mountinfo", "40 22 259:3 / /mnt/pmem rw - xfs /dev/pmem0 rw,dax=inode\n");
	assert_false(paste_dax__mount_has_dax(mi, pmem));
	put("mountinfo", "40 22 259:3 / /mnt/pmem rw - xfs /dev/pmem0 rw,dax=never\n");
	assert_false(paste_dax__mount_has_dax(mi, pmem));
	assert_false(paste_dax__mount_has_dax("/nonexistent/mountinfo", pmem));
}

static void test_umem_refused_message(void **state)
{
	char file[128];
	int fd;

	snprintf(file, sizeof(file), "/dev/shm/paste-dax-test-%d.pool", (int)getpid());
	fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_false(paste_dax__file_is_fsdax(file, NULL)); /* tmpfs */
	assert_int_equal(paste_dax__umem_refused(file, -EFAULT), -EFAULT);
	assert_error_has(file);
	assert_error_has("EFAULT");
	assert_error_has("/dev/shm");
	assert_error_has("device-DAX");
	assert_null(strstr(paste_last_error(), "fsdax"));
	assert_int_equal(paste_dax__umem_refused(file, -EOPNOTSUPP), -EOPNOTSUPP);
	assert_error_has("EOPNOTSUPP");
	unlink(file);
}

/* Format only what was never used; open what has a pool magic in either copy; refuse the rest. */
static void test_classify(void **state)
{
	static uint8_t page[4096];
	const char magic[8] = "PASTEPL";

	assert_int_equal(paste_dax__classify(page, sizeof(page), magic, 8, 2048), PASTE_DAX_BLANK);
	page[4095] = 1; /* one stray byte anywhere in the page: somebody's data */
	assert_int_equal(paste_dax__classify(page, sizeof(page), magic, 8, 2048),
	                 PASTE_DAX_FOREIGN);
	memset(page, 0, sizeof(page));
	memcpy(page + 100, "PASTEPL", 8); /* the magic in the wrong place is not a pool */
	assert_int_equal(paste_dax__classify(page, sizeof(page), magic, 8, 2048),
	                 PASTE_DAX_FOREIGN);
	memcpy(page, magic, 8);
	assert_int_equal(paste_dax__classify(page, sizeof(page), magic, 8, 2048), PASTE_DAX_POOL);
	memset(page, 0, 2048); /* primary torn to zeros, backup intact: a pool, never reformatted */
	memcpy(page + 2048, magic, 8);
	assert_int_equal(paste_dax__classify(page, sizeof(page), magic, 8, 2048), PASTE_DAX_POOL);
	memset(page, 0xff, 2048); /* primary torn to garbage, backup intact */
	assert_int_equal(paste_dax__classify(page, sizeof(page), magic, 8, 2048), PASTE_DAX_POOL);
	memset(page, 0, sizeof(page));
}

static void quiet(enum paste_log_level level, const char *msg, void *user)
{
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_probe_device_attrs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_probe_align_fallbacks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_probe_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_aligned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_on_device, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mountinfo_dax, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_umem_refused_message, setup, teardown),
	    cmocka_unit_test(test_classify),
	};

	paste_set_print(quiet, NULL, PASTE_LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
