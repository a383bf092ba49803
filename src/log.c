/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log.c - the library's one way to say what went wrong: messages go to a print callback settable by
 * the application (paste_set_print), the last error of each thread is kept for paste_last_error().
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static paste_print_fn print_fn;
static void *print_user;
static enum paste_log_level print_max = PASTE_LOG_INFO;
static __thread char last_error[512];

PASTE_EXPORT void paste_set_print(paste_print_fn fn, void *user, enum paste_log_level max_level)
{
	print_fn = fn;
	print_user = user;
	print_max = max_level;
}

PASTE_EXPORT const char *paste_last_error(void)
{
	return last_error;
}

static void vprint(enum paste_log_level level, bool record, const char *fmt, va_list ap)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (record)
		memcpy(last_error, msg, sizeof(last_error));
	if (level > print_max)
		return;
	if (print_fn)
		print_fn(level, msg, print_user);
	else
		fprintf(stderr, "libpaste-xdp: %s: %s\n", names[level], msg);
}

void paste_vprint(enum paste_log_level level, const char *fmt, va_list ap)
{
	vprint(level, level == PASTE_LOG_ERROR, fmt, ap);
}

void paste_print(enum paste_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	paste_vprint(level, fmt, ap);
	va_end(ap);
}

int paste_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	paste_vprint(PASTE_LOG_ERROR, fmt, ap);
	va_end(ap);
	return err;
}

int paste_fail_quiet(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint(PASTE_LOG_DEBUG, true, fmt, ap);
	va_end(ap);
	return err;
}

int paste_fail_const(int err, const char *msg)
{
	size_t n = strnlen(msg, sizeof(last_error) - 1);

	if (print_max >= PASTE_LOG_DEBUG)
		return paste_fail_quiet(err, "%s", msg);
	memcpy(last_error, msg, n);
	last_error[n] = '\0';
	return err;
}

int paste_info_copy(void *out, size_t sz, const void *in, size_t in_sz, const char *what)
{
	if (!out || !sz)
		return paste_fail(-EINVAL,
		                  "%s: need an output struct and its size (pass sizeof the struct)",
		                  what);
	memcpy(out, in, sz < in_sz ? sz : in_sz);
	if (sz > in_sz)
		memset((unsigned char *)out + in_sz, 0, sz - in_sz);
	return 0;
}

int paste_opts_copy(void *out, size_t out_sz, const void *in, size_t min_sz, const char *what)
{
	size_t sz;

	if (!in)
		return paste_fail(-EINVAL, "%s: options missing: pass a struct with .sz set", what);
	memcpy(&sz, in, sizeof(sz));
	if (sz < min_sz || sz < sizeof(size_t))
		return paste_fail(-EINVAL,
		                  "%s: options .sz is %zu: set .sz = sizeof(the options struct)",
		                  what, sz);
	for (size_t i = out_sz; i < sz; i++)
		if (((const unsigned char *)in)[i])
			return paste_fail(
			    -EINVAL,
			    "%s: options newer than this library are set (byte %zu of %zu): upgrade libpaste-xdp or leave them zero",
			    what, i, sz);
	memset(out, 0, out_sz);
	memcpy(out, in, sz < out_sz ? sz : out_sz);
	return 0;
}
