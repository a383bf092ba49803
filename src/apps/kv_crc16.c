/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_crc16.c - Redis Cluster's key hash: CRC16 (polynomial 0x1021, initial value 0, no reflection,
 * no final XOR: the "XMODEM" variant; CRC16 of "123456789" is 0x31C3) of the key, or of its hash
 * tag, modulo 16384. Written from the CRC's definition; tests/unit/test_kv_crc16.c checks the
 * check value and the hash-tag rules, tests/integration/test_kv_cluster.sh compares the slots of
 * many keys with a real redis-server's CLUSTER KEYSLOT.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kv_cluster.h"

static uint16_t crc_table[256];

/* The table: the CRC of each byte value alone, one shift-and-XOR step per bit. */
static void crc_init(void)
{
	for (unsigned b = 0; b < 256; b++) {
		uint16_t c = (uint16_t)(b << 8);

		for (int i = 0; i < 8; i++)
			c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
		crc_table[b] = c;
	}
}

uint16_t kv_crc16(const uint8_t *p, size_t n)
{
	uint16_t c = 0;

	if (!crc_table[1])
		crc_init();
	for (size_t i = 0; i < n; i++)
		c = (uint16_t)((c << 8) ^ crc_table[(uint8_t)((c >> 8) ^ p[i])]);
	return c;
}

/*
 * The slot of a key: if the key holds a '{' followed later by a '}' with at least one byte
 * between them, only the bytes between the first '{' and the first '}' after it are hashed
 * ("{user}:a" and "{user}:b" share a slot; "{}x" and "x{" hash whole).
 */
unsigned kv_key_slot(const uint8_t *k, size_t n)
{
	const uint8_t *open = memchr(k, '{', n);

	if (open) {
		size_t s = (size_t)(open - k) + 1;
		const uint8_t *close = s < n ? memchr(k + s, '}', n - s) : NULL;

		if (close && close > k + s)
			return kv_crc16(k + s, (size_t)(close - (k + s))) & (KV_SLOTS - 1);
	}
	return kv_crc16(k, n) & (KV_SLOTS - 1);
}
