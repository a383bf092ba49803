/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * index.c - the open path every persistent index type shares (indexes.h): find the named region,
 * tell a recovered index of this type from an empty region from something else, and say what is
 * wrong in one wording for every type. The type-specific parts (geometry, formatting a new index)
 * stay with the type.
 */
#include <errno.h>
#include <string.h>

#include "indexes.h"
#include "internal.h"

int paste_index__find(struct paste_pool *pool, const struct paste_index_type *t, const char *name,
                      bool create, void **addr, uint64_t *len, void **handle)
{
	uint64_t magic;
	void *h;
	int err;

	*handle = NULL;
	err = paste_pool__find_region(pool, name, addr, len);
	if (err == -ENOENT && !create)
		return paste_fail_quiet(
		    -ENOENT, "pool has no %s '%s': pass %s to create it, or check the name",
		    t->name, name, t->create_arg);
	if (err)
		return err;
	if (*len < sizeof(magic))
		return paste_fail(-EINVAL, "region '%s' is too small for a %s", name, t->name);
	memcpy(&magic, *addr, sizeof(magic));
	if (magic == t->magic) {
		h = paste_pool__index(pool, name);
		if (!h || t->region(h) != *addr)
			return paste_fail(
			    -EIO,
			    "%s '%s' was not recovered when the pool was opened (internal error): close and reopen the pool",
			    t->name, name);
		*handle = h;
		return 0;
	}
	if (magic != 0)
		return paste_fail(
		    -EINVAL,
		    "region '%s' holds something other than a %s (magic %#llx): use another name",
		    name, t->name, (unsigned long long)magic);
	if (!create)
		return paste_fail(-ENOENT,
		                  "region '%s' exists but holds no %s yet: pass %s to create it",
		                  name, t->name, t->create_arg);
	return 0;
}
