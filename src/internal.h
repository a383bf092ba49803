/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * internal.h - what every file of the library shares: messages, error helpers, CRC32C, small
 * utilities. Nothing here is part of the public API (symbols are hidden by the version script).
 */
#ifndef PASTE_INTERNAL_H
#define PASTE_INTERNAL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <paste/paste.h>

#define PASTE_EXPORT __attribute__((visibility("default")))

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif
#define PASTE_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define likely(x)            __builtin_expect(!!(x), 1)
#define unlikely(x)          __builtin_expect(!!(x), 0)

/* ---- messages (log.c) -------------------------------------------------------------------- */

void paste_vprint(enum paste_log_level level, const char *fmt, __builtin_va_list ap);
void paste_print(enum paste_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define pr_err(...)   paste_print(PASTE_LOG_ERROR, __VA_ARGS__)
#define pr_warn(...)  paste_print(PASTE_LOG_WARN, __VA_ARGS__)
#define pr_info(...)  paste_print(PASTE_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) paste_print(PASTE_LOG_DEBUG, __VA_ARGS__)

/* Print an ERROR and evaluate to @err (a negative errno): `return paste_fail(-EINVAL, "...")`. */
int paste_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same for expected outcomes a caller handles routinely (full, absent): the message is kept for
 * paste_last_error() but printed only at DEBUG level, so back-pressure does not flood the log. */
int paste_fail_quiet(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same with a fixed message (no formatting: for misses on hot paths, such as a key lookup). */
int paste_fail_const(int err, const char *msg);

/* ---- options structs (log.c) ------------------------------------------------------------- */

/*
 * The one check of every public options struct that starts with `size_t sz` (libbpf's
 * OPTS_VALID): @in must be there, in->sz must cover at least the fields up to @min_field (those
 * every version of the struct had), and every byte past the struct this build knows must be zero
 * (a caller built against a newer header may only use new fields a newer library understands).
 * Then min(in->sz, sizeof(*@out)) bytes are copied into @out, zeroed first, so fields the caller's
 * older header lacks read as 0 ("default"). Evaluates to 0, or -EINVAL with a message naming @what.
 */
#define PASTE_OPTS_COPY(out, in, min_field, what)                                                  \
	paste_opts_copy((out), sizeof(*(out)), (in), offsetof(__typeof__(*(out)), min_field),      \
	                (what))
int paste_opts_copy(void *out, size_t out_sz, const void *in, size_t min_sz, const char *what);

/*
 * The one rule of every public info call (paste_stats, paste_pool__info, paste_log__info,
 * paste_kv__info): the caller passes sizeof its struct; it gets min(@sz, @in_sz) bytes of @in,
 * and bytes past what this library knows (a newer header) read 0. @return 0, or -EINVAL with a
 * message naming @what when @out is NULL or @sz is 0.
 */
int paste_info_copy(void *out, size_t sz, const void *in, size_t in_sz, const char *what);

/* ---- clock (spin.c) ---------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t paste_now_ns(void);

/* ---- CRC32C (crc32c.c) ------------------------------------------------------------------- */

/*
 * The Internet checksum of @len bytes at @data: their 16-bit one's complement sum as host-order
 * words (not inverted; 0 only if every byte is), what lwIP's checksum returns (src/chksum.c).
 */
uint16_t paste_chksum(const void *data, size_t len);

/* Castagnoli CRC, seed 0 for a fresh sum; chaining: crc = paste_crc32c(crc, next, len). */
uint32_t paste_crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* PASTE_INTERNAL_H */
