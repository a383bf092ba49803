/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log_view.c - read-only views for another process: one slice of a sliced pool file mapped
 * read-only (paste_pool_view), and the log in one of its regions read while its owner appends and
 * truncates (paste_log_view). The workers of a multi-queue paste-wal use them to serve each
 * other's records (docs/multicore.md, "paste-wal on N queues").
 *
 * The owner never waits for a reader and a reader never writes. A reader trusts only what the
 * caller says is committed (records [first, next) the owner published after its fence) and checks
 * every byte it takes: a record header must have its seq, kind and CRC; the payload copied out must
 * match the record's payload CRC. A record the owner truncated (and whose frames it reused) while
 * it was being read fails these checks, or the caller's re-check of the owner's first seq after
 * the copy (paste_log_view__read ends with an acquire fence for that).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log_internal.h"
#include "pool_priv.h"

struct paste_pool_view {
	uint8_t *base;
	size_t len;
	struct pool_sb sb;
};

struct paste_log_view {
	const struct paste_pool_view *pv;
	const uint8_t *region, *data;
	uint64_t data_size;
	uint64_t *offs; /* offs[seq - cbase]: where record seq starts, cbase <= seq < cnext */
	uint64_t cbase, cnext, cap;
	struct log_rec *hdr; /* a copy of the record header being read, with its refs */
};

/* A good superblock copy of the pool at @off of @fd: the primary, else the backup. */
static int view_sb(int fd, uint64_t off, struct pool_sb *sb)
{
	for (unsigned copy = 0; copy < 2; copy++) {
		if (pread(fd, sb, sizeof(*sb), (off_t)(off + copy * POOL_SB_BACKUP_OFF)) ==
		        (ssize_t)sizeof(*sb) &&
		    paste_pool__sb_intact(sb))
			return 0;
	}
	return -ENOENT;
}

PASTE_EXPORT int paste_pool_view__open(struct paste_pool_view **view, const struct paste_pool *pool,
                                       uint32_t slice)
{
	const char *path = pool->path;
	struct paste_pool_view *v;
	uint64_t off;
	int fd, err;

	*view = NULL;
	if (!pool->stride)
		return paste_fail(-EINVAL, "pool view: pool %s is not sliced", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return paste_fail(-errno, "pool view: cannot open %s: %s", path, strerror(errno));
	v = calloc(1, sizeof(*v));
	off = (uint64_t)slice * pool->stride;
	err = v ? view_sb(fd, off, &v->sb) : -ENOMEM;
	if (!err && (v->sb.slice != slice || v->sb.slice_stride != pool->stride))
		err = -EINVAL;
	if (!err) {
		v->len = v->sb.pool_size;
		v->base = mmap(NULL, v->len, PROT_READ, MAP_SHARED, fd, (off_t)off);
		if (v->base == MAP_FAILED)
			err = -errno;
	}
	close(fd);
	if (err) {
		free(v);
		if (err == -ENOENT) /* expected while that worker starts: no ERROR line */
			return paste_fail_quiet(err,
			                        "pool view: slice %u of %s does not exist yet "
			                        "(its worker has not started)",
			                        slice, path);
		return paste_fail(err, "pool view: slice %u of %s %s", slice, path,
		                  err == -EINVAL ? "is not a slice of a sliced pool"
		                                 : "cannot be mapped");
	}
	*view = v;
	return 0;
}

PASTE_EXPORT void paste_pool_view__close(struct paste_pool_view **view)
{
	if (!view || !*view)
		return;
	munmap((*view)->base, (*view)->len);
	free(*view);
	*view = NULL;
}

PASTE_EXPORT const void *paste_pool_view__region(const struct paste_pool_view *v, const char *name,
                                                 uint64_t *size)
{
	for (uint32_t i = 0; i < v->sb.nregions && i < PASTE_POOL_MAX_REGIONS; i++) {
		const struct pool_region *r = &v->sb.regions[i];

		if (!strncmp(r->name, name, sizeof(r->name)) && r->off < v->len &&
		    r->size <= v->len - r->off) {
			if (size)
				*size = r->size;
			return v->base + r->off;
		}
	}
	return NULL;
}

PASTE_EXPORT int paste_log_view__open(struct paste_log_view **view,
                                      const struct paste_pool_view *pv, const char *name)
{
	const struct log_super *s;
	struct paste_log_view *v;
	uint64_t size;

	if (!view || !pv || !name)
		return paste_fail(
		    -EINVAL, "paste_log_view__open: view, pool view and name must not be NULL");
	*view = NULL;
	s = paste_pool_view__region(pv, name, &size);
	if (!s || s->magic != PASTE_LOG_MAGIC || s->crc != plog_super_crc(s) ||
	    s->hdr_size != LOG_HDR_SIZE || s->data_size > size - LOG_HDR_SIZE)
		return paste_fail(-ENOENT, "log view: no log '%s' in slice %u", name, pv->sb.slice);
	v = calloc(1, sizeof(*v));
	if (!v || !(v->hdr = malloc(sizeof(struct log_rec) +
	                            PASTE_LOG_MAX_REFS * sizeof(struct paste_ref)))) {
		free(v);
		return paste_fail(-ENOMEM, "log view: out of memory");
	}
	v->pv = pv;
	v->region = (const uint8_t *)s;
	v->data = v->region + LOG_HDR_SIZE;
	v->data_size = s->data_size;
	*view = v;
	return 0;
}

PASTE_EXPORT void paste_log_view__close(struct paste_log_view **view)
{
	if (!view || !*view)
		return;
	free((*view)->offs);
	free((*view)->hdr);
	free(*view);
	*view = NULL;
}

/* Copy the header (and refs) at @off; is it a good record @seq, or a wrap marker before it? */
static bool view_hdr(struct paste_log_view *v, uint64_t off, uint64_t seq, bool *wrap)
{
	const struct log_rec *r = (const struct log_rec *)(v->data + off);
	struct log_rec *h = v->hdr;

	if (off + sizeof(*r) > v->data_size)
		return false;
	memcpy(h, r, sizeof(*h));
	*wrap = h->kind == LOG_KIND_WRAP;
	if (h->seq != seq)
		return false;
	if (*wrap)
		return off != 0 && h->nrefs == 0;
	if (h->kind != LOG_KIND_REC || !h->nrefs || h->nrefs > PASTE_LOG_MAX_REFS ||
	    off + plog_rec_size(h->nrefs) > v->data_size)
		return false;
	memcpy(h->refs, r->refs, h->nrefs * sizeof(struct paste_ref));
	return h->crc == plog_rec_crc(h, h->nrefs);
}

/* Start over from the owner's current head slot (the good one with the higher gen). */
static int view_reset(struct paste_log_view *v)
{
	struct log_head h[2];
	int cur = -1;

	memcpy(h, v->region + LOG_SLOT_OFF, sizeof(h[0]));
	memcpy(&h[1], v->region + LOG_SLOT_OFF + LOG_ALIGN, sizeof(h[1]));
	for (int i = 0; i < 2; i++)
		if (h[i].gen && h[i].crc == plog_head_crc(&h[i]) && h[i].off < v->data_size &&
		    (cur < 0 || h[i].gen > h[cur].gen))
			cur = i;
	if (cur < 0)
		return -EAGAIN;
	v->cbase = v->cnext = h[cur].seq;
	if (!v->cap && !(v->offs = malloc((v->cap = 1024) * sizeof(*v->offs))))
		return -ENOMEM;
	v->offs[0] = h[cur].off; /* where cnext starts (not yet checked) */
	return 0;
}

/* Extend the offsets up to @next, walking the owner's records. */
static int view_walk(struct paste_log_view *v, uint64_t next)
{
	uint64_t off = v->offs[v->cnext - v->cbase];
	bool wrap;

	while (v->cnext < next) {
		if (!view_hdr(v, off, v->cnext, &wrap))
			return -EAGAIN;
		if (wrap) {
			off = 0;
			continue;
		}
		if (v->cnext + 1 - v->cbase >= v->cap) {
			uint64_t *n = realloc(v->offs, 2 * v->cap * sizeof(*n));

			if (!n)
				return -ENOMEM;
			v->offs = n;
			v->cap *= 2;
		}
		v->offs[v->cnext - v->cbase] = off;
		off += plog_rec_size(v->hdr->nrefs);
		if (off >= v->data_size)
			off = 0;
		v->cnext++;
		v->offs[v->cnext - v->cbase] = off;
	}
	return 0;
}

/* Find record @seq of [first, next): its offset. */
static int view_find(struct paste_log_view *v, uint64_t seq, uint64_t first, uint64_t next,
                     uint64_t *off)
{
	int err = 0;

	for (int attempt = 0; attempt < 3; attempt++) {
		if (!v->cap || v->cbase > seq || v->cnext < first)
			err = view_reset(v);
		if (!err && v->cbase < first) { /* drop what the owner truncated */
			uint64_t drop = (first < v->cnext ? first : v->cnext) - v->cbase;

			memmove(v->offs, v->offs + drop,
			        (v->cnext - v->cbase - drop + 1) * sizeof(*v->offs));
			v->cbase += drop;
		}
		if (!err && v->cbase <= seq)
			err = view_walk(v, next);
		if (!err && v->cbase <= seq && seq < v->cnext) {
			*off = v->offs[seq - v->cbase];
			return 0;
		}
		if (err == -ENOMEM)
			return err;
		v->cap ? (void)view_reset(v)
		       : (void)0; /* the owner moved on: read its head again */
		err = 0;
	}
	return -ENOENT;
}

/* A read that found nothing: kept for paste_last_error(), printed at debug level only (a record
 * truncated by its owner meanwhile is routine). */
static int view_miss(const struct paste_log_view *v, uint64_t seq, int err)
{
	if (err == -EMSGSIZE)
		return paste_fail_quiet(
		    err, "log view: record %llu of slice %u is larger than the buffer",
		    (unsigned long long)seq, v->pv->sb.slice);
	if (err != -ENOENT)
		return err; /* -ENOMEM, with its message */
	return paste_fail_quiet(err,
	                        "log view: no record %llu in slice %u (outside [first, next), or "
	                        "truncated by its owner meanwhile)",
	                        (unsigned long long)seq, v->pv->sb.slice);
}

static int view_read(struct paste_log_view *v, uint64_t seq, uint64_t first, uint64_t next,
                     void *buf, size_t cap, uint32_t *len)
{
	const struct paste_pool_view *pv = v->pv;
	uint64_t off, total = 0;
	uint32_t crc = 0;
	bool wrap;
	int err;

	if (seq < first || seq >= next)
		return -ENOENT;
	err = view_find(v, seq, first, next, &off);
	if (err)
		return err;
	if (!view_hdr(v, off, seq, &wrap) || wrap)
		return -ENOENT;
	for (unsigned i = 0; i < v->hdr->nrefs; i++) {
		const struct paste_ref *r = &v->hdr->refs[i];

		if (r->off > pv->len || r->len > pv->len - r->off || total + r->len > cap)
			return r->off > pv->len || r->len > pv->len - r->off ? -ENOENT : -EMSGSIZE;
		memcpy((uint8_t *)buf + total, pv->base + r->off, r->len);
		crc = paste_crc32c(crc, (uint8_t *)buf + total, r->len);
		total += r->len;
	}
	if (total != v->hdr->len || crc != v->hdr->pcrc)
		return -ENOENT;
	atomic_thread_fence(memory_order_acquire); /* the caller re-checks first after this */
	*len = (uint32_t)total;
	return 0;
}

PASTE_EXPORT int paste_log_view__read(struct paste_log_view *v, uint64_t seq, uint64_t first,
                                      uint64_t next, void *buf, size_t cap, uint32_t *len)
{
	int err;

	if (!v || (!buf && cap) || !len)
		return paste_fail(-EINVAL, "paste_log_view__read: view and len must not be NULL");
	err = view_read(v, seq, first, next, buf, cap, len);
	return err ? view_miss(v, seq, err) : 0;
}

static int view_len(struct paste_log_view *v, uint64_t seq, uint64_t first, uint64_t next,
                    uint32_t *len)
{
	uint64_t off;
	bool wrap;
	int err = seq < first || seq >= next ? -ENOENT : view_find(v, seq, first, next, &off);

	if (err)
		return err;
	if (!view_hdr(v, off, seq, &wrap) || wrap)
		return -ENOENT;
	*len = v->hdr->len;
	return 0;
}

PASTE_EXPORT int paste_log_view__len(struct paste_log_view *v, uint64_t seq, uint64_t first,
                                     uint64_t next, uint32_t *len)
{
	int err;

	if (!v || !len)
		return paste_fail(-EINVAL, "paste_log_view__len: view and len must not be NULL");
	err = view_len(v, seq, first, next, len);
	return err ? view_miss(v, seq, err) : 0;
}
