/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * unit_tmpdir.h - a scratch directory for unit tests that write files (CMocka setup/teardown):
 * unit_tmpdir_make() creates /tmp/NAME.XXXXXX into dir, unit_tmpdir_remove() deletes it with
 * everything in it. Both return 0 or -1, as CMocka's group fixtures expect.
 */
#ifndef PASTE_UNIT_TMPDIR_H
#define PASTE_UNIT_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static inline int unit_tmpdir_make(char *dir, size_t size, const char *name)
{
	snprintf(dir, size, "/tmp/%s.XXXXXX", name);
	return mkdtemp(dir) ? 0 : -1;
}

static inline int unit_tmpdir_remove(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

#endif
