/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-logd-log.c - paste-logd's packet log: one fixed-size record per packet, in a ring of slots
 * inside one pool region, naming the pool frame the packet arrived in (no copy). docs/paste-logd.md
 * has the format and the crash argument; in short:
 *
 *   0     struct plog_super: magic, version, geometry, crc; written once at creation
 *   64    head slot 0 \ struct plog_head {gen, first_seq, epoch, crc}, written alternately;
 *   128   head slot 1 / the slot with a good crc and the higher gen is current
 *   4096  nslots records of 64 bytes; record seq lives in slot seq % nslots
 *
 * A record is one cache line: {seq, ts, frame, off, len, ifindex, flags, epoch, crc}; its crc
 * covers the record (crc = 0) and the packet bytes it names, so a record whose frame was not fully
 * flushed, or was reused, does not check out. There is no persistent tail: recovery walks from the
 * head while slot(seq) holds seq with a good crc and an epoch no older than the previous record's.
 * Every open for writing starts a new epoch (persisted before any append), so after a crash a new
 * record can never chain into a stale one left behind a gap. The head moves only forward
 * (truncation), durably, before the dropped records' frames are released.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paste-logd.h"

#define PLOG_MAGIC    0x3130444f474c5050ull /* "PPLOGD01" */
#define PLOG_VERSION  1u
#define PLOG_HDR_SIZE 4096u
#define PLOG_REC_SIZE 64u

struct plog_super {
	uint64_t magic;
	uint32_t version;
	uint32_t rec_size;
	uint64_t nslots; /* power of two */
	uint32_t frame_size, frame_count;
	uint32_t hdr_size;
	uint32_t crc; /* CRC32C of this struct, crc = 0 */
};

struct plog_head {
	uint64_t gen;
	uint64_t first_seq;
	uint32_t epoch;
	uint32_t crc;
};

struct plog_slot {
	uint64_t seq; /* 0: never written */
	uint64_t ts_ns;
	uint32_t frame;
	uint16_t off, len;
	uint32_t ifindex;
	uint32_t flags;
	uint32_t epoch;
	uint32_t crc; /* CRC32C of this slot (crc = 0) followed by the packet bytes */
	uint8_t pad[24];
};
_Static_assert(sizeof(struct plog_slot) == PLOG_REC_SIZE, "a record is one cache line");
_Static_assert(sizeof(struct plog_super) <= 64 && sizeof(struct plog_head) <= 64, "header lines");

struct plog {
	struct paste_pool *pool;
	uint8_t *region, *frames;
	struct plog_super *super;
	struct plog_slot *slots;
	uint64_t nslots;
	uint32_t frame_size, frame_count;
	unsigned cur; /* current head slot */
	uint64_t gen;
	uint32_t epoch;
	uint64_t first_seq, next_seq;
	uint64_t recovered, cut_seq;
	bool cut, writable;
};

static struct plog_head *head_slot(struct plog *l, unsigned i)
{
	return (struct plog_head *)(l->region + 64 + 64 * i);
}

static uint32_t crc_of(const void *p, size_t len, size_t crc_off)
{
	uint8_t buf[64];

	memcpy(buf, p, len);
	memset(buf + crc_off, 0, 4);
	return paste_crc32c(0, buf, len);
}

static uint32_t slot_crc(const struct plog *l, const struct plog_slot *s)
{
	struct plog_slot c = *s;

	c.crc = 0;
	return paste_crc32c(paste_crc32c(0, &c, sizeof(c)),
	                    l->frames + (uint64_t)s->frame * l->frame_size + s->off, s->len);
}

static uint64_t pow2_at_least(uint64_t n)
{
	uint64_t p = 64;

	while (p < n)
		p <<= 1;
	return p;
}

static int plog_create(struct plog *l, uint64_t nslots)
{
	struct plog_super *s = l->super;

	memset(l->region, 0, PLOG_HDR_SIZE);
	s->version = PLOG_VERSION;
	s->rec_size = PLOG_REC_SIZE;
	s->nslots = nslots;
	s->frame_size = l->frame_size;
	s->frame_count = l->frame_count;
	s->hdr_size = PLOG_HDR_SIZE;
	s->magic = PLOG_MAGIC;
	s->crc = crc_of(s, sizeof(*s), offsetof(struct plog_super, crc));
	s->magic = 0;
	paste_pool__persist(l->pool, s, sizeof(*s));
	s->magic = PLOG_MAGIC; /* last, in its own persist: a magic implies the rest */
	paste_pool__persist(l->pool, s, sizeof(*s));
	return 0;
}

static int check_super(struct plog *l, uint64_t len)
{
	const struct plog_super *s = l->super;

	if (s->magic != PLOG_MAGIC || s->version != PLOG_VERSION || s->rec_size != PLOG_REC_SIZE ||
	    s->hdr_size != PLOG_HDR_SIZE ||
	    s->crc != crc_of(s, sizeof(*s), offsetof(struct plog_super, crc))) {
		fprintf(stderr,
		        "paste-logd: region %s of the pool is not a packet log of this version or "
		        "its header is corrupt: use another pool file\n",
		        PLOG_REGION);
		return -EBADMSG;
	}
	if (s->frame_size != l->frame_size || s->frame_count != l->frame_count ||
	    (s->nslots & (s->nslots - 1)) || s->nslots < l->frame_count ||
	    PLOG_HDR_SIZE + s->nslots * PLOG_REC_SIZE > len) {
		fprintf(stderr,
		        "paste-logd: the packet log's geometry (%llu slots, %u frames of %u bytes) "
		        "does not match the pool (%u frames of %u bytes): the pool was altered\n",
		        (unsigned long long)s->nslots, s->frame_count, s->frame_size,
		        l->frame_count, l->frame_size);
		return -EINVAL;
	}
	l->nslots = s->nslots;
	return 0;
}

/* Pick the current head slot. An unwritten pair (gen 0 both) is a fresh log: first_seq 1. */
static void read_head(struct plog *l)
{
	struct plog_head *h[2] = {head_slot(l, 0), head_slot(l, 1)};
	bool ok[2];

	for (unsigned i = 0; i < 2; i++)
		ok[i] = h[i]->gen &&
		        h[i]->crc == crc_of(h[i], sizeof(*h[i]), offsetof(struct plog_head, crc));
	l->cur = ok[1] && (!ok[0] || h[1]->gen > h[0]->gen);
	if (!ok[l->cur]) {
		l->gen = 0, l->first_seq = 1, l->epoch = 0, l->cur = 1;
		return;
	}
	l->gen = h[l->cur]->gen;
	l->first_seq = h[l->cur]->first_seq;
	l->epoch = h[l->cur]->epoch;
}

static void write_head(struct plog *l)
{
	unsigned next = l->cur ^ 1;
	struct plog_head *h = head_slot(l, next);

	h->gen = l->gen + 1;
	h->first_seq = l->first_seq;
	h->epoch = l->epoch;
	h->crc = crc_of(h, sizeof(*h), offsetof(struct plog_head, crc));
	paste_pool__persist(l->pool, h, sizeof(*h));
	l->cur = next;
	l->gen++;
}

static bool slot_valid(const struct plog *l, const struct plog_slot *s, uint64_t seq,
                       uint32_t min_epoch)
{
	return s->seq == seq && s->epoch >= min_epoch && s->epoch <= l->epoch &&
	       s->frame < l->frame_count && (uint32_t)s->off + s->len <= l->frame_size && s->len &&
	       s->crc == slot_crc(l, s);
}

static void recover(struct plog *l)
{
	uint64_t seq = l->first_seq;
	uint32_t epoch = 0;

	while (seq - l->first_seq < l->nslots) {
		const struct plog_slot *s = &l->slots[seq & (l->nslots - 1)];

		if (!slot_valid(l, s, seq, epoch))
			break;
		epoch = s->epoch;
		seq++;
	}
	l->next_seq = seq;
	l->recovered = seq - l->first_seq;
	/* A record after the end that carries the next seq was torn or checks out wrong: say so. */
	const struct plog_slot *s = &l->slots[seq & (l->nslots - 1)];
	l->cut = s->seq == seq;
	l->cut_seq = seq;
}

int plog_check_pool(struct paste_pool *pool, const char *path)
{
	struct paste_pool_info pi;
	uint64_t mine;

	paste_pool__info(pool, &pi, sizeof(pi));
	mine = PLOG_HDR_SIZE + pow2_at_least(pi.frame_count) * PLOG_REC_SIZE;
	mine = (mine + 4095) & ~4095ull;
	if (pi.region_area_used == 0 || pi.region_area_used == mine)
		return 0;
	fprintf(stderr,
	        "paste-logd: pool %s holds regions paste-logd did not make (%llu bytes used, a "
	        "packet log takes %llu): it belongs to another program (paste-wal, paste-kv?), and "
	        "paste-logd owns every frame of its pool. Use a pool file of its own.\n",
	        path, (unsigned long long)pi.region_area_used, (unsigned long long)mine);
	return -EINVAL;
}

int plog_open(struct paste_pool *pool, bool create, bool writable, struct plog **out)
{
	struct paste_pool_info pi;
	struct plog *l;
	uint64_t len, nslots;
	void *addr;
	int err;

	paste_pool__info(pool, &pi, sizeof(pi));
	nslots = pow2_at_least(pi.frame_count);
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->pool = pool;
	l->frames = paste_pool__frames(pool);
	l->frame_size = pi.frame_size;
	l->frame_count = pi.frame_count;
	l->writable = writable;
	/* The full size even for a lookup: a region made by a lookup is then usable by a later
	 * create. */
	err = paste_pool__region(pool, PLOG_REGION, PLOG_HDR_SIZE + nslots * PLOG_REC_SIZE, &addr,
	                         &len);
	if (err) {
		fprintf(
		    stderr, "paste-logd: cannot %s the packet log region (%s) in the pool: %s%s\n",
		    create ? "create" : "find", PLOG_REGION, strerror(-err),
		    err == -ENOSPC ? " (the pool's region area is too small: use a new pool file)"
		                   : "");
		free(l);
		return err;
	}
	l->region = addr;
	l->super = addr;
	l->slots = (struct plog_slot *)(l->region + PLOG_HDR_SIZE);
	if (l->super->magic == 0) {
		if (!create) {
			free(l);
			fprintf(stderr, "paste-logd: the pool holds no packet log yet\n");
			return -ENOENT;
		}
		plog_create(l, nslots);
	}
	err = check_super(l, len);
	if (err) {
		free(l);
		return err;
	}
	read_head(l);
	recover(l);
	if (writable) {
		l->epoch++;
		write_head(l); /* persisted before any record of the new epoch */
	}
	*out = l;
	return 0;
}

void plog_close(struct plog **l)
{
	free(*l);
	*l = NULL;
}

void plog_info(const struct plog *l, struct plog_info *i)
{
	i->first_seq = l->first_seq;
	i->next_seq = l->next_seq;
	i->nslots = l->nslots;
	i->epoch = l->epoch;
	i->recovered = l->recovered;
	i->cut = l->cut;
	i->cut_seq = l->cut_seq;
}

int plog_append(struct plog *l, const struct plog_rec *r, uint64_t *seq)
{
	struct plog_slot *s;
	uint8_t *bytes;

	if (!l->writable)
		return -EPERM;
	if (l->next_seq - l->first_seq >= l->nslots)
		return -ENOSPC;
	if (r->frame >= l->frame_count || (uint32_t)r->off + r->len > l->frame_size || !r->len)
		return -EINVAL;
	s = &l->slots[l->next_seq & (l->nslots - 1)];
	s->seq = l->next_seq;
	s->ts_ns = r->ts_ns;
	s->frame = r->frame;
	s->off = r->off;
	s->len = r->len;
	s->ifindex = r->ifindex;
	s->flags = r->flags;
	s->epoch = l->epoch;
	memset(s->pad, 0, sizeof(s->pad));
	s->crc = 0;
	s->crc = slot_crc(l, s);
	bytes = l->frames + (uint64_t)r->frame * l->frame_size + r->off;
	paste_pool__flush(l->pool, bytes, r->len);
	paste_pool__flush(l->pool, s, sizeof(*s));
	*seq = l->next_seq++;
	return 0;
}

int plog_get(const struct plog *l, uint64_t seq, struct plog_rec *r, const uint8_t **bytes)
{
	const struct plog_slot *s;

	if (seq < l->first_seq || seq >= l->next_seq)
		return -ENOENT;
	s = &l->slots[seq & (l->nslots - 1)];
	r->seq = s->seq;
	r->ts_ns = s->ts_ns;
	r->frame = s->frame;
	r->off = s->off;
	r->len = s->len;
	r->ifindex = s->ifindex;
	r->flags = s->flags;
	*bytes = l->frames + (uint64_t)s->frame * l->frame_size + s->off;
	return 0;
}

uint64_t plog_truncate(struct plog *l, uint64_t seq, void (*release)(void *arg, uint32_t frame),
                       void *arg)
{
	uint64_t old = l->first_seq, n;

	if (seq > l->next_seq)
		seq = l->next_seq;
	if (seq <= old || !l->writable)
		return 0;
	l->first_seq = seq;
	write_head(l); /* flushed and fenced: no crash can bring the dropped records back */
	for (n = old; n < seq; n++)
		release(arg, l->slots[n & (l->nslots - 1)].frame);
	return seq - old;
}
