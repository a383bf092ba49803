/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_abi.c - the shared library's symbol versions (src/libpaste-xdp.map, src/compat.c): a
 * program linked against 0.1 must keep working after 0.2 changed six signatures. Loads the
 * built libpaste-xdp.so with dlopen and calls the 0.1 versions (dlvsym name@PASTE_XDP_0.1) the
 * way a 0.1 program did, then checks that the 0.2 versions see the same thing; and that the
 * default version of each changed call is the 0.2 one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <paste/index.h>
#include <paste/pool.h>

static void *lib;
static char pool_path[128];

#define SYM(var, name, ver)                                                                        \
	do {                                                                                       \
		*(void **)&(var) = dlvsym(lib, name, ver);                                         \
		if (!(var))                                                                        \
			fail_msg("%s@%s missing: %s", name, ver, dlerror());                       \
	} while (0)

static void test_v01_still_works(void **state)
{
	int (*pool_open)(struct paste_pool **, const char *, const struct paste_pool_opts *);
	void (*pool_close)(struct paste_pool **);
	int (*log_open_01)(struct paste_pool *, const char *, uint64_t, struct paste_log **);
	void (*log_info_01)(const struct paste_log *, struct paste_log_info *);
	void (*pool_info_01)(const struct paste_pool *, struct paste_pool_info *);
	int (*kv_open_01)(struct paste_pool *, const char *, uint64_t, struct paste_kv **);
	void (*kv_info_01)(const struct paste_kv *, struct paste_kv_info *);
	int (*log_open_02)(struct paste_log **, struct paste_pool *, const char *,
	                   const struct paste_log_opts *);
	int (*log_info_02)(const struct paste_log *, struct paste_log_info *, size_t);
	int (*kv_open_02)(struct paste_kv **, struct paste_pool *, const char *,
	                  const struct paste_kv_opts *);
	struct paste_pool_opts po = {.sz = sizeof(po), .size = 4 << 20, .create = true};
	struct paste_pool *pool;
	struct paste_log *log, *log2;
	struct paste_kv *kv, *kv2;
	struct paste_log_info li1, li2;
	struct paste_pool_info pi;
	struct paste_kv_info ki;

	SYM(pool_open, "paste_pool__open", "PASTE_XDP_0.1");
	SYM(pool_close, "paste_pool__close", "PASTE_XDP_0.1");
	SYM(log_open_01, "paste_log__open", "PASTE_XDP_0.1");
	SYM(log_info_01, "paste_log__info", "PASTE_XDP_0.1");
	SYM(pool_info_01, "paste_pool__info", "PASTE_XDP_0.1");
	SYM(kv_open_01, "paste_kv__open", "PASTE_XDP_0.1");
	SYM(kv_info_01, "paste_kv__info", "PASTE_XDP_0.1");
	SYM(log_open_02, "paste_log__open", "PASTE_XDP_0.2");
	SYM(log_info_02, "paste_log__info", "PASTE_XDP_0.2");
	SYM(kv_open_02, "paste_kv__open", "PASTE_XDP_0.2");

	assert_int_equal(pool_open(&pool, pool_path, &po), 0);
	pool_info_01(pool, &pi);
	assert_int_equal(pi.size, 4 << 20);
	assert_true(pi.created);
	/* 0.1 order: pool, name, size, out */
	assert_int_equal(log_open_01(pool, "l", 64 << 10, &log), 0);
	assert_int_equal(log_open_01(pool, "absent", 0, &log2), -ENOENT);
	assert_int_equal(log_open_02(&log2, pool, "l", NULL), 0);
	assert_ptr_equal(log, log2); /* the same log through both versions */
	log_info_01(log, &li1);
	assert_int_equal(log_info_02(log, &li2, sizeof(li2)), 0);
	assert_memory_equal(&li1, &li2, sizeof(li1));
	assert_int_equal(li1.region_size, 64 << 10);
	assert_int_equal(kv_open_01(pool, "k", 100, &kv), 0);
	assert_int_equal(kv_open_02(&kv2, pool, "k", NULL), 0);
	assert_ptr_equal(kv, kv2);
	kv_info_01(kv, &ki);
	assert_true(ki.capacity >= 100);
	pool_close(&pool);
}

static void test_default_is_v02(void **state)
{
	static const char *const changed[] = {"paste_log__open",      "paste_kv__open",
	                                      "paste_log_view__open", "paste_pool__info",
	                                      "paste_log__info",      "paste_kv__info"};

	for (unsigned i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
		void *def = dlsym(lib, changed[i]);

		assert_non_null(def);
		assert_ptr_equal(def, dlvsym(lib, changed[i], "PASTE_XDP_0.2"));
		assert_ptr_not_equal(def, dlvsym(lib, changed[i], "PASTE_XDP_0.1"));
	}
	/* an unchanged call has one version, 0.1 */
	assert_non_null(dlvsym(lib, "paste_pool__open", "PASTE_XDP_0.1"));
	assert_null(dlvsym(lib, "paste_pool__open", "PASTE_XDP_0.2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v01_still_works),
	    cmocka_unit_test(test_default_is_v02),
	};
	int r;

	lib = dlopen(PASTE_SO, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "test_abi: cannot load %s: %s\n", PASTE_SO, dlerror());
		return 1;
	}
	snprintf(pool_path, sizeof(pool_path), "/dev/shm/paste-test-%d-abi.pool", (int)getpid());
	unlink(pool_path);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(pool_path);
	return r;
}
