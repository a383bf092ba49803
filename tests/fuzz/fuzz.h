/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz share: a cursor that takes structured values
 * from the fuzzer's bytes (running dry yields zeros, so every input is a valid program), a check
 * that aborts with a message (a crash the fuzzer records), and the library's messages silenced.
 *
 * Each target defines LLVMFuzzerTestOneInput(). Built with clang -fsanitize=fuzzer it is a
 * fuzzer; linked with replay_main.c (any compiler) it replays files and directories, which is how
 * ctest runs the committed corpus and regressions (fuzz-replay/<target>).
 */
#ifndef PASTE_FUZZ_H
#define PASTE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <paste/paste.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fuzzer's bytes, consumed front to back. */
struct fz {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fz_u8(struct fz *f)
{
	uint8_t v = 0;

	if (f->n) {
		v = *f->p++;
		f->n--;
	}
	return v;
}

static inline uint16_t fz_u16(struct fz *f)
{
	uint16_t lo = fz_u8(f);

	return (uint16_t)(lo | (uint16_t)fz_u8(f) << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t lo = fz_u16(f);

	return lo | (uint32_t)fz_u16(f) << 16;
}

/* Up to @want bytes; *got tells how many. */
static inline const uint8_t *fz_bytes(struct fz *f, size_t want, size_t *got)
{
	const uint8_t *p = f->p;

	*got = want < f->n ? want : f->n;
	f->p += *got;
	f->n -= *got;
	return p;
}

/* An invariant the target checks: print and abort (libFuzzer saves the input as a crash). */
#define FZ_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__,  \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static inline void fz_quiet_cb(enum paste_log_level level, const char *msg, void *user)
{
}

/* Silence the library unless PASTE_FUZZ_VERBOSE is set (messages slow the fuzzer down). */
static inline void fz_quiet(void)
{
	if (!getenv("PASTE_FUZZ_VERBOSE"))
		paste_set_print(fz_quiet_cb, NULL, PASTE_LOG_ERROR);
}

#endif /* PASTE_FUZZ_H */
