/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * chksum.c - the Internet checksum (RFC 1071) that lwIP runs over every segment it receives and
 * sends, four bytes at a time instead of two.
 *
 * Debian's liblwip verifies the TCP checksum of every received segment (CHECKSUM_CHECK_TCP is
 * compiled in and cannot be turned off: /work/shared/PROBE.md) with its 16-bit loop,
 * lwip_standard_chksum(): about 340 ns per 1220-byte segment, the largest single user-space cost
 * of the paste path in bench/profile (6 % of paste-wal's samples at 64 connections, WAL POST
 * 1280 B). liblwip calls that function through its PLT, so a definition in libpaste-xdp, which a
 * program loads before liblwip (liblwip is libpaste-xdp's dependency), takes its place for every
 * checksum lwIP computes: received segments, sent segments, ICMP. The result is the same 16-bit
 * one's complement sum, not inverted, of the bytes as they lie in memory (16-bit words loaded in
 * host order, an odd last byte as the low byte of a word padded with zero): what lwIP's own
 * algorithms return for any alignment.
 *
 * Why wider words give the same sum: the one's complement sum is the sum modulo 2^16 - 1 (with
 * 0xffff, not 0, for a non-zero multiple). A little-endian 32-bit word w0 + w1 * 2^16 is congruent
 * to w0 + w1 modulo 2^16 - 1, and folding a 64-bit accumulator to 32 bits (modulo 2^32 - 1, a
 * multiple of 2^16 - 1) keeps the residue. Four independent 64-bit accumulators of 32-bit loads
 * cannot overflow below 2^34 bytes and let the CPU add four words per cycle; unaligned loads are
 * done with memcpy (one mov on x86-64).
 */
#include <stdint.h>
#include <string.h>

#include <lwip/arch.h>

#include "internal.h"

/* lwIP 2.1's own prototype (src/core/inet_chksum.c; no header declares it). */
u16_t lwip_standard_chksum(const void *dataptr, int len);

static inline uint32_t load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint16_t paste_chksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t a = 0, b = 0, c = 0, d = 0;
	uint16_t w;

	for (; len >= 16; p += 16, len -= 16) {
		a += load32(p);
		b += load32(p + 4);
		c += load32(p + 8);
		d += load32(p + 12);
	}
	for (; len >= 4; p += 4, len -= 4)
		a += load32(p);
	if (len >= 2) {
		memcpy(&w, p, sizeof(w));
		b += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		w = 0;
		memcpy(&w, p,
		       1); /* the first byte of a word: its low byte on this little-endian CPU */
		c += w;
	}
	a = (a & 0xffffffffu) + (a >> 32) + (b & 0xffffffffu) + (b >> 32) + (c & 0xffffffffu) +
	    (c >> 32) + (d & 0xffffffffu) + (d >> 32); /* < 2^35 */
	a = (a & 0xffffffffu) + (a >> 32);
	a = (a & 0xffffffffu) + (a >> 32);
	a = (a & 0xffff) + (a >> 16);
	a = (a & 0xffff) + (a >> 16);
	return (uint16_t)a;
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* lwIP's checksum, replaced (see the top of this file); exported by src/libpaste-xdp.map. */
PASTE_EXPORT u16_t lwip_standard_chksum(const void *dataptr, int len)
{
	return len > 0 ? paste_chksum(dataptr, (size_t)len) : 0;
}
#endif
