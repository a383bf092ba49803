/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_crc32c.c - src/crc32c.c: the standard check values, chaining, and agreement of the portable
 * (slicing-by-8) and SSE4.2 paths with a bit-at-a-time reference over every length and alignment
 * that exercises the head/body/tail split, and of the three-stream SSE4.2 + PCLMULQDQ path with the
 * portable one over random lengths 0..5000 at random alignments (a wrong join constant fails).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

/* Test hooks defined in crc32c.c (not in a header: nothing else should pick a path). */
uint32_t paste_crc32c_portable(uint32_t crc, const void *buf, size_t len);
uint32_t paste_crc32c_sse42(uint32_t crc, const void *buf, size_t len);
uint32_t paste_crc32c_sse42x3(uint32_t crc, const void *buf, size_t len);
int paste_crc32c_have_sse42(void);
int paste_crc32c_have_pclmul(void);

static uint32_t crc32c_bitwise(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int i = 0; i < 8; i++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void fill_random(uint8_t *buf, size_t len, unsigned seed)
{
	srandom(seed);
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)random();
}

static void test_check_values(void **state)
{
	static const uint8_t zeros[32], ones[32] = {[0 ... 31] = 0xff};
	uint8_t inc[32];

	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	assert_int_equal(paste_crc32c(0, "123456789", 9), 0xE3069283);
	assert_int_equal(paste_crc32c_portable(0, "123456789", 9), 0xE3069283);
	assert_int_equal(paste_crc32c(0, "", 0), 0);
	assert_int_equal(paste_crc32c(0x12345678, "", 0), 0x12345678); /* empty: seed unchanged */
	/* RFC 3720 (iSCSI) B.4 test vectors. */
	assert_int_equal(paste_crc32c(0, zeros, sizeof(zeros)), 0x8A9136AA);
	assert_int_equal(paste_crc32c(0, ones, sizeof(ones)), 0x62A8AB43);
	assert_int_equal(paste_crc32c(0, inc, sizeof(inc)), 0x46DD794E);
}

static void test_chaining(void **state)
{
	uint8_t buf[1000];
	uint32_t whole;

	fill_random(buf, sizeof(buf), 1);
	whole = paste_crc32c(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut += 37) {
		uint32_t c = paste_crc32c(0, buf, cut);

		assert_int_equal(paste_crc32c(c, buf + cut, sizeof(buf) - cut), whole);
		c = paste_crc32c_portable(0, buf, cut);
		assert_int_equal(paste_crc32c_portable(c, buf + cut, sizeof(buf) - cut), whole);
	}
}

/* Every length 0..300 at every offset 0..15: the head, 8-byte body and tail loops all agree. */
static void test_paths_agree(void **state)
{
	uint8_t buf[400];
	bool sse = paste_crc32c_have_sse42();

	fill_random(buf, sizeof(buf), 2);
	for (size_t off = 0; off < 16; off++) {
		for (size_t len = 0; len <= 300; len++) {
			uint32_t ref = crc32c_bitwise(0, buf + off, len);

			assert_int_equal(paste_crc32c_portable(0, buf + off, len), ref);
			assert_int_equal(paste_crc32c(0, buf + off, len), ref);
			if (sse)
				assert_int_equal(paste_crc32c_sse42(0, buf + off, len), ref);
			if (paste_crc32c_have_pclmul())
				assert_int_equal(paste_crc32c_sse42x3(0, buf + off, len), ref);
		}
	}
}

/*
 * The three-stream path against the portable one: every length 0..5000 once at a random
 * alignment and with a random seed, then random (length, alignment, seed) triples, and every
 * block size it can pick (lengths 96..3 * 1024 + 200 at each alignment 0..7) for the join
 * constants. Also through paste_crc32c(), whatever path it chose.
 */
static void test_three_streams(void **state)
{
	size_t cap = 3 * 1024 + 512;
	uint8_t *buf = malloc(cap + 5000 + 64);
	bool x3 = paste_crc32c_have_pclmul();

	assert_non_null(buf);
	fill_random(buf, cap + 5000 + 64, 5);
	srandom(6);
	for (size_t len = 0; len <= 5000; len++) {
		size_t off = (size_t)random() % 64;
		uint32_t seed = (uint32_t)random() ^ ((uint32_t)random() << 16);
		uint32_t ref = paste_crc32c_portable(seed, buf + off, len);

		assert_int_equal(paste_crc32c(seed, buf + off, len), ref);
		if (x3)
			assert_int_equal(paste_crc32c_sse42x3(seed, buf + off, len), ref);
	}
	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)random() % 5001, off = (size_t)random() % 64;
		uint32_t seed = (uint32_t)random();
		uint32_t ref = paste_crc32c_portable(seed, buf + off, len);

		assert_int_equal(paste_crc32c(seed, buf + off, len), ref);
		if (x3)
			assert_int_equal(paste_crc32c_sse42x3(seed, buf + off, len), ref);
	}
	for (size_t off = 0; off < 8 && x3; off++)
		for (size_t len = 96; len <= 3 * 1024 + 200; len++)
			assert_int_equal(paste_crc32c_sse42x3(0, buf + off, len),
			                 paste_crc32c_portable(0, buf + off, len));
	free(buf);
}

/* A single flipped bit anywhere changes the sum (what the superblock check relies on). */
static void test_detects_bit_flips(void **state)
{
	uint8_t buf[256];
	uint32_t good;

	fill_random(buf, sizeof(buf), 3);
	good = paste_crc32c(0, buf, sizeof(buf));
	for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_not_equal(paste_crc32c(0, buf, sizeof(buf)), good);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(paste_crc32c(0, buf, sizeof(buf)), good);
}

static void test_large_buffer(void **state)
{
	size_t len = 1 << 20;
	uint8_t *buf = malloc(len + 1);

	assert_non_null(buf);
	fill_random(buf, len + 1, 4);
	assert_int_equal(paste_crc32c(0, buf + 1, len), crc32c_bitwise(0, buf + 1, len));
	assert_int_equal(paste_crc32c_portable(0, buf + 1, len), crc32c_bitwise(0, buf + 1, len));
	if (paste_crc32c_have_pclmul())
		assert_int_equal(paste_crc32c_sse42x3(0, buf + 1, len),
		                 crc32c_bitwise(0, buf + 1, len));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_values), cmocka_unit_test(test_chaining),
	    cmocka_unit_test(test_paths_agree),  cmocka_unit_test(test_detects_bit_flips),
	    cmocka_unit_test(test_large_buffer), cmocka_unit_test(test_three_streams),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
