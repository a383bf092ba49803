/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_pool_common.h - the on-media superblock facts the pool targets need to steer the fuzzer
 * past the superblock checksum (src/pool.c: two 2 KiB records at 0 and 2048, CRC32C at +12 over
 * the record with that field zeroed; pool_size at +16; the clean flag at +80).
 */
#ifndef PASTE_FUZZ_POOL_COMMON_H
#define PASTE_FUZZ_POOL_COMMON_H

#include <stdint.h>
#include <string.h>

#include "internal.h"

#define FZ_SB_SIZE      2048u
#define FZ_SB_BACKUP    2048u
#define FZ_SB_CRC_OFF   12u
#define FZ_SB_SIZE_OFF  16u
#define FZ_SB_CLEAN_OFF 80u

/* Recompute the CRC of the superblock record at @sb (FZ_SB_SIZE bytes). */
static inline void fz_sb_fix_crc(uint8_t *sb)
{
	uint32_t crc;

	memset(sb + FZ_SB_CRC_OFF, 0, 4);
	crc = paste_crc32c(0, sb, FZ_SB_SIZE);
	memcpy(sb + FZ_SB_CRC_OFF, &crc, 4);
}

#endif /* PASTE_FUZZ_POOL_COMMON_H */
