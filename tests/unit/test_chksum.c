/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_chksum.c - src/chksum.c: the Internet checksum that replaces lwIP's lwip_standard_chksum()
 * agrees with an RFC 1071 16-bit reference over every length 0..300 at every alignment 0..7 and
 * random lengths up to 9000 bytes; the 0 / 0xffff cases of one's complement; and lwIP itself
 * (inet_chksum(), which calls lwip_standard_chksum through liblwip's PLT) now runs the library's
 * function: a checksum lwIP computes agrees with the reference, and the symbol the program binds
 * is the library's, so a build that lost the replacement fails here.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <lwip/inet_chksum.h>

#include "internal.h"

u16_t lwip_standard_chksum(const void *dataptr, int len);

/* RFC 1071, 16 bits at a time, words as they lie in memory (host order), odd byte padded. */
static uint16_t ref_chksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	uint16_t w;

	for (; len >= 2; p += 2, len -= 2) {
		memcpy(&w, p, 2);
		sum += w;
		sum = (sum & 0xffff) + (sum >> 16);
	}
	if (len) {
		w = 0;
		memcpy(&w, p, 1);
		sum += w;
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void every_length_and_alignment(void **state)
{
	uint8_t buf[320];
	size_t i, off, len;

	(void)state;
	srandom(7);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)random();
	for (off = 0; off < 8; off++)
		for (len = 0; len + off <= 308; len++)
			assert_int_equal(paste_chksum(buf + off, len), ref_chksum(buf + off, len));
}

static void random_long(void **state)
{
	static uint8_t buf[9100];
	int n;

	(void)state;
	srandom(11);
	for (n = 0; n < 2000; n++) {
		size_t off = (size_t)random() % 64, len = (size_t)random() % 9000, i;

		for (i = 0; i < len; i++)
			buf[off + i] = (uint8_t)random();
		assert_int_equal(paste_chksum(buf + off, len), ref_chksum(buf + off, len));
	}
}

static void ones_complement_edges(void **state)
{
	static uint8_t buf[9000];
	uint8_t two[4] = {0xff, 0xff, 0x01, 0x00};

	(void)state;
	assert_int_equal(paste_chksum(buf, sizeof(buf)), 0); /* all zero: 0 */
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(paste_chksum(buf, sizeof(buf)), 0xffff); /* never 0 for non-zero data */
	assert_int_equal(paste_chksum(buf, 1), 0x00ff);
	assert_int_equal(paste_chksum(two, 4), 0x0001); /* 0xffff + 1: the end-around carry */
	assert_int_equal(paste_chksum(two, 4), ref_chksum(two, 4));
}

static void lwip_uses_it(void **state)
{
	static uint8_t buf[1500];
	size_t i;

	(void)state;
	srandom(3);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)random();
	/* inet_chksum() inverts the sum; through lwIP's PLT it reaches the library's function */
	assert_int_equal(inet_chksum(buf + 1, 1399), (uint16_t)~ref_chksum(buf + 1, 1399));
	assert_int_equal(lwip_standard_chksum(buf, -1), 0);
	assert_ptr_equal(dlsym(RTLD_DEFAULT, "lwip_standard_chksum"), (void *)lwip_standard_chksum);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_length_and_alignment),
	    cmocka_unit_test(random_long),
	    cmocka_unit_test(ones_complement_edges),
	    cmocka_unit_test(lwip_uses_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
