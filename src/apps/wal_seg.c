/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * wal_seg.c - segment files of paste-wal's capacity tier: names, listing, record checks (shared by
 * paste-wal and paste-wal-dump; see wal_seg.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <paste/pool.h>

#include "wal_seg.h"

void seg_name(char *buf, size_t n, uint64_t first)
{
	snprintf(buf, n, "seg-%020" PRIu64 ".pwt", first);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int seg_list(int dirfd, uint64_t **out, size_t *n)
{
	int fd = dup(dirfd), err = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	uint64_t *v = NULL, first;
	size_t cap = 0;
	char tail[8];

	*n = 0;
	*out = NULL;
	if (!d) {
		err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	rewinddir(
	    d); /* the dup shares the offset of @dirfd: an earlier listing left it at the end */
	while ((e = readdir(d))) {
		if (strlen(e->d_name) != 28 ||
		    sscanf(e->d_name, "seg-%20" SCNu64 "%7s", &first, tail) != 2 ||
		    strcmp(tail, ".pwt"))
			continue;
		if (*n == cap) {
			uint64_t *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));

			if (!nv) {
				err = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[(*n)++] = first;
	}
	closedir(d);
	if (err) {
		free(v);
		*n = 0;
		return err;
	}
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_u64);
	*out = v;
	return 0;
}

uint32_t wf_slot_crc(const struct wf_slot *s)
{
	return paste_crc32c(0, s, offsetof(struct wf_slot, crc));
}

int wf_head_read(int fd, uint64_t size, struct wf_slot *head, unsigned *slot)
{
	struct wf_super s;
	struct wf_slot sl[2];
	int cur = -1;

	if (pread(fd, &s, sizeof(s), 0) != (ssize_t)sizeof(s) || memcmp(s.magic, WF_MAGIC, 8) ||
	    s.crc != paste_crc32c(0, &s, offsetof(struct wf_super, crc)) ||
	    s.version != WF_VERSION || s.data_off != WF_DATA_OFF ||
	    pread(fd, &sl[0], sizeof(sl[0]), WF_SLOT0_OFF) != (ssize_t)sizeof(sl[0]) ||
	    pread(fd, &sl[1], sizeof(sl[1]), 2 * WF_SLOT0_OFF) != (ssize_t)sizeof(sl[1]))
		return -EBADMSG;
	for (int i = 0; i < 2; i++)
		if (sl[i].gen && sl[i].crc == wf_slot_crc(&sl[i]) && sl[i].first_seq &&
		    sl[i].start_off >= WF_DATA_OFF && sl[i].start_off <= size &&
		    (cur < 0 || sl[i].gen > sl[cur].gen))
			cur = i;
	if (cur < 0)
		return -EUCLEAN;
	*head = sl[cur];
	*slot = (unsigned)cur;
	return 0;
}

uint32_t seg_check(int fd, uint64_t size, uint64_t off, uint64_t seq, bool payload, void *buf,
                   size_t bufsz, uint32_t *copy)
{
	struct wf_rec h;
	uint32_t crc, want, pcrc = 0;
	uint64_t left, o;

	if (size - off < SEG_REC_OVER || pread(fd, &h, sizeof(h), (off_t)off) != sizeof(h) ||
	    h.magic != WF_REC_MAGIC || h.seq != seq || !h.len || h.len > WF_REC_MAX ||
	    size - off - SEG_REC_OVER < h.len || (copy && h.len > bufsz))
		return 0;
	if (!payload)
		return h.len;
	crc = paste_crc32c(0, &h, sizeof(h));
	o = off + sizeof(h);
	for (left = h.len; left;) {
		size_t n = left < bufsz ? (size_t)left : bufsz;

		if (pread(fd, buf, n, (off_t)o) != (ssize_t)n)
			return 0;
		crc = paste_crc32c(crc, buf, n);
		if (copy)
			pcrc = paste_crc32c(pcrc, buf, n);
		o += n;
		left -= n;
	}
	if (pread(fd, &want, 4, (off_t)o) != 4 || want != crc)
		return 0;
	if (copy)
		*copy = pcrc;
	return h.len;
}
