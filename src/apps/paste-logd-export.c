/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-logd-export.c - reading paste-logd's packet log offline: `export` writes a range of records
 * as pcapng (one interface block per ingress interface, nanosecond timestamps: the time the batch
 * was received, a comment with the record's seq), and `replay` re-sends a range out of an
 * interface through a packet socket, in log order (the recovery step of a fault-tolerant middlebox:
 * the packets a failed instance had made durable are sent again). Both open the pool the way the
 * daemon does and recover the log read-only, so they see exactly the records a restart would keep.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "paste-logd.h"

int logd_open_offline(const char *path, struct paste_pool **pool, struct plog **log)
{
	struct paste_pool_opts po = {.sz = sizeof(po)};
	int err = paste_pool__open(pool, path, &po);

	if (err) {
		fprintf(stderr, "paste-logd: opening pool %s failed: %s%s\n", path, strerror(-err),
		        err == -EBUSY
		            ? " (a running paste-logd holds it: stop it, or copy the file)"
		            : "");
		return err;
	}
	err = plog_check_pool(*pool, path);
	if (!err)
		err = plog_open(*pool, false, false, log);
	if (err)
		paste_pool__close(pool);
	return err;
}

/* Clamp [from, to] (inclusive, 0 = open end) to the live records: [*lo, *hi). */
static void range(const struct plog *log, uint64_t from, uint64_t to, uint64_t *lo, uint64_t *hi)
{
	struct plog_info i;

	plog_info(log, &i);
	*lo = from > i.first_seq ? from : i.first_seq;
	*hi = to && to < i.next_seq ? to + 1 : i.next_seq;
	if (*hi < *lo)
		*hi = *lo;
}

/* ---- pcapng ---------------------------------------------------------------------------------- */

struct out {
	FILE *f;
	int err;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (!o->err && fwrite(p, 1, n, o->f) != n)
		o->err = -errno ? -errno : -EIO;
}

static void put32(struct out *o, uint32_t v)
{
	put(o, &v, 4);
}

static void put_opt(struct out *o, uint16_t code, const void *v, uint16_t len)
{
	static const uint8_t zero[4];
	uint16_t h[2] = {code, len};

	put(o, h, 4);
	put(o, v, len);
	put(o, zero, (4 - len % 4) % 4);
}

static uint32_t opt_size(uint16_t len)
{
	return 4 + ((len + 3u) & ~3u);
}

static void write_shb(struct out *o)
{
	uint32_t len = 28;
	uint16_t ver[2] = {1, 0};
	int64_t section = -1;

	put32(o, 0x0A0D0D0A);
	put32(o, len);
	put32(o, 0x1A2B3C4D);
	put(o, ver, 4);
	put(o, &section, 8);
	put32(o, len);
}

static void write_idb(struct out *o, uint32_t ifindex)
{
	char name[IF_NAMESIZE + 16];
	uint8_t tsresol = 9; /* nanoseconds */
	uint16_t nlen, link[2] = {1 /* LINKTYPE_ETHERNET */, 0};
	uint32_t len;

	if (!if_indextoname(ifindex, name))
		snprintf(name, sizeof(name), "ifindex%u", ifindex);
	nlen = (uint16_t)strlen(name);
	len = 20 + opt_size(nlen) + opt_size(1) + 4;
	put32(o, 1);
	put32(o, len);
	put(o, link, 4);
	put32(o, 0); /* snaplen: no limit */
	put_opt(o, 2 /* if_name */, name, nlen);
	put_opt(o, 9 /* if_tsresol */, &tsresol, 1);
	put32(o, 0); /* opt_endofopt */
	put32(o, len);
}

static void write_epb(struct out *o, uint32_t ifid, const struct plog_rec *r, const uint8_t *b)
{
	static const uint8_t zero[4];
	char comment[64];
	uint16_t clen = (uint16_t)snprintf(comment, sizeof(comment), "paste-logd seq %llu%s",
	                                   (unsigned long long)r->seq,
	                                   r->flags & PLOG_F_MALFORMED ? " malformed" : "");
	uint32_t pad = (4 - r->len % 4) % 4;
	uint32_t len = 32 + r->len + pad + opt_size(clen) + 4;

	put32(o, 6);
	put32(o, len);
	put32(o, ifid);
	put32(o, (uint32_t)(r->ts_ns >> 32));
	put32(o, (uint32_t)r->ts_ns);
	put32(o, r->len);
	put32(o, r->len);
	put(o, b, r->len);
	put(o, zero, pad);
	put_opt(o, 1 /* opt_comment */, comment, clen);
	put32(o, 0);
	put32(o, len);
}

/* Index of @ifindex in ifs[0..n), or n. */
static uint32_t if_slot(const uint32_t *ifs, uint32_t n, uint32_t ifindex)
{
	uint32_t i = 0;

	while (i < n && ifs[i] != ifindex)
		i++;
	return i;
}

int logd_export(const char *pool_path, uint64_t from, uint64_t to, int fd)
{
	struct paste_pool *pool;
	struct plog *log;
	struct plog_rec r;
	const uint8_t *b;
	uint32_t ifs[64], nifs = 0;
	uint64_t lo, hi, n = 0;
	struct out o = {.f = fdopen(dup(fd), "w")};
	int err;

	if (!o.f)
		return -errno;
	err = logd_open_offline(pool_path, &pool, &log);
	if (err) {
		fclose(o.f);
		return err;
	}
	range(log, from, to, &lo, &hi);
	/* Interface blocks first: one per ingress interface in the range. */
	for (uint64_t s = lo; s < hi && nifs < 64; s++)
		if (!plog_get(log, s, &r, &b) && if_slot(ifs, nifs, r.ifindex) == nifs)
			ifs[nifs++] = r.ifindex;
	write_shb(&o);
	for (uint32_t i = 0; i < nifs; i++)
		write_idb(&o, ifs[i]);
	for (uint64_t s = lo; s < hi && !o.err; s++) {
		uint32_t i;

		if (plog_get(log, s, &r, &b))
			continue;
		i = if_slot(ifs, nifs, r.ifindex);
		if (i == nifs)
			continue; /* more than 64 interfaces: not exported */
		write_epb(&o, i, &r, b);
		n++;
	}
	if (fflush(o.f) && !o.err)
		o.err = -errno;
	fclose(o.f);
	if (o.err)
		fprintf(stderr, "paste-logd: writing the export failed: %s\n", strerror(-o.err));
	else
		fprintf(stderr, "paste-logd: exported %llu packets (seq %llu..%llu)\n",
		        (unsigned long long)n, (unsigned long long)lo, (unsigned long long)hi - 1);
	plog_close(&log);
	paste_pool__close(&pool);
	return o.err;
}

/* ---- replay ---------------------------------------------------------------------------------- */

static int send_one(int fd, const struct sockaddr_ll *sll, const uint8_t *b, uint16_t len)
{
	for (int tries = 0; tries < 1000; tries++) {
		if (sendto(fd, b, len, 0, (const struct sockaddr *)sll, sizeof(*sll)) == len)
			return 0;
		if (errno != ENOBUFS && errno != EAGAIN)
			return -errno;
		nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
	}
	return -ENOBUFS;
}

int logd_replay(const char *pool_path, const char *ifname, uint64_t from, uint64_t to,
                uint64_t *sent)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	struct paste_pool *pool;
	struct plog *log;
	struct plog_rec r;
	const uint8_t *b;
	uint64_t lo, hi;
	int fd, err;

	*sent = 0;
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex) {
		fprintf(stderr, "paste-logd: no interface %s\n", ifname);
		return -ENODEV;
	}
	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		err = -errno;
		fprintf(stderr, "paste-logd: packet socket: %s (run as root)\n", strerror(errno));
		return err;
	}
	err = logd_open_offline(pool_path, &pool, &log);
	if (err) {
		close(fd);
		return err;
	}
	range(log, from, to, &lo, &hi);
	for (uint64_t s = lo; s < hi && !err; s++) {
		if (plog_get(log, s, &r, &b))
			continue;
		err = send_one(fd, &sll, b, r.len);
		if (err)
			fprintf(stderr,
			        "paste-logd: sending record %llu (%u bytes) on %s failed: %s\n",
			        (unsigned long long)s, r.len, ifname, strerror(-err));
		else
			(*sent)++;
	}
	plog_close(&log);
	paste_pool__close(&pool);
	close(fd);
	return err;
}
