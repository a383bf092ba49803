/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * crc32c.c - CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the pool
 * superblock and of every persistent index record.
 *
 * Two implementations with one convention (the running value is inverted on entry and exit, so
 * paste_crc32c(paste_crc32c(0, a), b) == paste_crc32c(0, a || b), and "123456789" sums to
 * 0xE3069283): a portable slicing-by-8 table walk, and the SSE4.2 crc32 instruction on x86-64.
 * The choice is made once, at the first call, from cpuid (__builtin_cpu_supports); after that a
 * call costs a pthread_once check and one indirect call. The portable path is always built and is
 * what other CPUs run.
 *
 * The crc32 instruction has a latency of about three cycles but can start one per cycle, so one
 * serial chain runs at a third of its speed. With PCLMULQDQ as well, buffers of 96 bytes and more
 * are cut into blocks of three equal streams of k bytes (k a multiple of 8, at most
 * CRC32C_KMAX) run side by side, the second and third from 0, and joined at the end of the block:
 * for raw (not inverted) states, crc(A || B || C) = crc(A) * x^(16k) + crc(B) * x^(8k) + crc(C)
 * mod P. A multiplication by x^n mod P is a carry-less multiply by the constant x^(n-33) mod P
 * followed by one crc32 of the 64-bit product (which multiplies by x^32, reduces mod P, and
 * makes up the one bit the bit-reflected product is off by); the constants for every k are made
 * at the first call.
 */
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <wmmintrin.h>
#endif

#include "internal.h"

#define CRC32C_POLY 0x82F63B78u /* reflected 0x1EDC6F41 */

typedef uint32_t (*crc32c_fn)(uint32_t crc, const void *buf, size_t len);

/* Test hooks: both paths are reachable from tests/unit/test_crc32c.c (not in any header). */
uint32_t paste_crc32c_portable(uint32_t crc, const void *buf, size_t len);
uint32_t paste_crc32c_sse42(uint32_t crc, const void *buf, size_t len);
uint32_t paste_crc32c_sse42x3(uint32_t crc, const void *buf, size_t len);
int paste_crc32c_have_sse42(void);
int paste_crc32c_have_pclmul(void);

/* table[k][b]: CRC of byte b followed by k zero bytes (slicing-by-8). */
static uint32_t table[8][256];
static crc32c_fn crc32c_impl;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_make_table(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t c = b;

		for (int i = 0; i < 8; i++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
		table[0][b] = c;
	}
	for (uint32_t b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xff];
}

static uint32_t crc32c_portable_raw(uint32_t c, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
		len--;
	}
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8); /* little-endian load */
		w ^= c;
		c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
		    table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
		    table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
	}
	while (len--)
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42_raw(uint32_t c, const uint8_t *p,
                                                                   size_t len)
{
	uint64_t c64;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8(c, *p++);
		len--;
	}
	c64 = c;
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c64 = _mm_crc32_u64(c64, w);
	}
	c = (uint32_t)c64;
	while (len--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}

#define CRC32C_KMAX 1024u /* bytes per stream in one block of the three-stream path */
#define CRC32C_MIN3 96u   /* shorter buffers: one chain (the join would cost more) */

/* shift[j][0]: x^(128(j+1) - 33) mod P, shift[j][1]: x^(64(j+1) - 33) mod P (bit-reflected):
 * for k = 8(j+1) bytes per stream, multiply the first stream by x^(16k) and the second by x^(8k).
 */
static uint32_t shift[CRC32C_KMAX / 8][2];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static void crc32c_make_shift(void)
{
	uint32_t c = 0x80000000u; /* x^0 */

	for (uint32_t n = 0; n <= 128 * (CRC32C_KMAX / 8) - 33; n++) {
		if (n % 64 == 31 && (n + 33) / 64 <= CRC32C_KMAX / 8) /* n = 64m - 33, m >= 1 */
			shift[(n + 33) / 64 - 1][1] = c;
		if (n % 128 == 95) /* n = 128m - 33 */
			shift[(n + 33) / 128 - 1][0] = c;
		c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1))); /* times x */
	}
}

__attribute__((target("sse4.2,pclmul"))) static uint32_t crc32c_x3_raw(uint32_t c, const uint8_t *p,
                                                                       size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8(c, *p++);
		len--;
	}
	while (len >= CRC32C_MIN3) {
		size_t k = len / 24 * 8;
		uint64_t a = c, b = 0, d = 0;
		__m128i va, vb;

		if (k > CRC32C_KMAX)
			k = CRC32C_KMAX;
		for (size_t i = 0; i < k; i += 8) {
			uint64_t wa, wb, wd;

			memcpy(&wa, p + i, 8);
			memcpy(&wb, p + k + i, 8);
			memcpy(&wd, p + 2 * k + i, 8);
			a = _mm_crc32_u64(a, wa);
			b = _mm_crc32_u64(b, wb);
			d = _mm_crc32_u64(d, wd);
		}
		va = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)a),
		                          _mm_cvtsi32_si128((int)shift[k / 8 - 1][0]), 0);
		vb = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)b),
		                          _mm_cvtsi32_si128((int)shift[k / 8 - 1][1]), 0);
		c = (uint32_t)_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(va, vb))) ^
		    (uint32_t)d;
		p += 3 * k;
		len -= 3 * k;
	}
	return crc32c_sse42_raw(c, p, len);
}

int paste_crc32c_have_sse42(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
}

int paste_crc32c_have_pclmul(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
}

uint32_t paste_crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
	return ~crc32c_sse42_raw(~crc, buf, len);
}

uint32_t paste_crc32c_sse42x3(uint32_t crc, const void *buf, size_t len)
{
	if (len < CRC32C_MIN3)
		return ~crc32c_sse42_raw(~crc, buf, len);
	pthread_once(&shift_once, crc32c_make_shift);
	return ~crc32c_x3_raw(~crc, buf, len);
}
#else
int paste_crc32c_have_sse42(void)
{
	return 0;
}

int paste_crc32c_have_pclmul(void)
{
	return 0;
}

uint32_t paste_crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
	return paste_crc32c_portable(crc, buf, len);
}

uint32_t paste_crc32c_sse42x3(uint32_t crc, const void *buf, size_t len)
{
	return paste_crc32c_portable(crc, buf, len);
}
#endif

uint32_t paste_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc32c_once, crc32c_make_table);
	return ~crc32c_portable_raw(~crc, buf, len);
}

static void crc32c_choose(void)
{
	crc32c_impl = paste_crc32c_have_pclmul()  ? paste_crc32c_sse42x3
	              : paste_crc32c_have_sse42() ? paste_crc32c_sse42
	                                          : paste_crc32c_portable;
}

PASTE_EXPORT uint32_t paste_crc32c(uint32_t crc, const void *buf, size_t len)
{
	static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

	pthread_once(&choose_once, crc32c_choose); /* after the first call: one load and compare */
	return crc32c_impl(crc, buf, len);
}
