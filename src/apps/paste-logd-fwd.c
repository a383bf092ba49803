/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste-logd-fwd.c - paste-logd's forwarder: frames between two interfaces through two AF_XDP
 * sockets that share one UMEM, the pool's frame area, so a frame leaves from the very frame it
 * arrived in.
 *
 * One batch of the loop (logd_run):
 *   1. take TX completions of both sockets (a frame comes back; it stays pinned if a record names
 * it)
 *   2. take up to --batch received frames of each socket; read the XDP program's verdict from the
 *      metadata in front of each frame; append a record for each selected frame (record and packet
 *      bytes flushed, no fence) and queue every frame to forward for the other socket's TX ring
 *   3. one fence (paste_pool__drain) if anything was logged: every record of the batch is durable
 *   4. only now put the queued frames on the TX rings (the descriptor's address is the RX one: no
 *      copy) and kick
 *   5. capacity: if free frames run short, drop the oldest records (durably) and release their
 *      frames; then refill both fill rings
 * So a logged packet leaves only after its record is durable, and a forwarded packet that was
 * selected is always in the log unless the capacity policy dropped it later (counted: evicted).
 *
 * Frames are owned here, not by the library's allocator: each frame has bits FILL (on a fill ring),
 * TX (on a TX ring) and LOG (a live record names it); it is free when no bit is set. At start every
 * frame a live record names is LOG, every other one free.
 */
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/if_xdp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include "logd.h"
#include "paste-logd.h"

extern const unsigned char logd_bpf_obj[];
extern const unsigned long logd_bpf_obj_len;

#define F_FILL    1u
#define F_TX      2u
#define F_LOG     4u
#define MAX_BATCH 256

struct side {
	const char *ifname;
	int ifindex;
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx, comp;
	struct xsk_ring_prod tx, fill;
	int fd;
	uint32_t xdp_flags; /* 0 while not attached */
	unsigned nout;      /* queued for this side's TX ring in the current batch */
	struct xdp_desc out[2 * MAX_BATCH];
};

struct logd {
	struct logd_opts o;
	struct paste_pool *pool;
	struct plog *log;
	uint8_t *area;
	uint32_t fsz, nframes;
	struct xsk_umem *umem;
	struct side s[2];
	struct bpf_object *obj;
	int prog_fd, conf_fd, rules_fd, xsks_fd, cnt_fd;
	uint8_t *fbits;
	uint32_t *free_stack, nfree;
	struct logd_stats st;
};

/* ---- frames ---------------------------------------------------------------------------------- */

static void frame_clear(struct logd *l, uint32_t f, uint8_t bit)
{
	if (!(l->fbits[f] & bit))
		return;
	l->fbits[f] &= ~bit;
	if (!l->fbits[f])
		l->free_stack[l->nfree++] = f;
}

/* Aligned UMEM: a descriptor address is frame * frame_size + the offset of the data in the frame
 * (the headroom in copy mode). */
static inline uint32_t frame_of(const struct logd *l, uint64_t addr)
{
	return (uint32_t)(addr / l->fsz);
}

/* A frame no ring holds any more (dropped): free it unless a record keeps it. */
static void frame_put(struct logd *l, uint32_t f)
{
	if (!l->fbits[f])
		l->free_stack[l->nfree++] = f;
}

static void release_logged(void *arg, uint32_t frame)
{
	struct logd *l = arg;

	if (frame < l->nframes)
		frame_clear(l, frame, F_LOG);
}

static int frames_init(struct logd *l)
{
	struct plog_info pi;
	struct plog_rec r;
	const uint8_t *b;

	l->fbits = calloc(l->nframes, 1);
	l->free_stack = calloc(l->nframes, sizeof(*l->free_stack));
	if (!l->fbits || !l->free_stack)
		return -ENOMEM;
	plog_info(l->log, &pi);
	for (uint64_t seq = pi.first_seq; seq < pi.next_seq; seq++)
		if (!plog_get(l->log, seq, &r, &b))
			l->fbits[r.frame] = F_LOG;
	for (uint32_t i = l->nframes; i-- > 0;) /* frame 0 on top */
		if (!l->fbits[i])
			l->free_stack[l->nfree++] = i;
	return 0;
}

/* ---- the XDP program ------------------------------------------------------------------------- */

static int remove_stale(struct side *s)
{
	struct bpf_prog_info info = {};
	uint32_t len = sizeof(info), id = 0;
	int fd, err;

	if (bpf_xdp_query_id(s->ifindex, 0, &id) || !id)
		return 0;
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return 0;
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (err || strcmp(info.name, LOGD_PROG_NAME)) {
		fprintf(stderr,
		        "paste-logd: %s already has an XDP program (%s) that is not paste-logd's: "
		        "remove it first (ip link set dev %s xdp off)\n",
		        s->ifname, err ? "?" : info.name, s->ifname);
		return -EBUSY;
	}
	fprintf(stderr, "paste-logd: removing a paste-logd XDP program left on %s\n", s->ifname);
	bpf_xdp_detach(s->ifindex, XDP_FLAGS_DRV_MODE, NULL);
	bpf_xdp_detach(s->ifindex, XDP_FLAGS_SKB_MODE, NULL);
	return 0;
}

static int attach(struct logd *l, struct side *s)
{
	static const uint32_t modes[] = {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
	int err = remove_stale(s);

	for (unsigned i = 0; !err && i < 2; i++) {
		if ((l->o.xdp_mode == 1 && i == 1) || (l->o.xdp_mode == 2 && i == 0))
			continue;
		err = bpf_xdp_attach(s->ifindex, l->prog_fd, modes[i] | XDP_FLAGS_UPDATE_IF_NOEXIST,
		                     NULL);
		if (!err) {
			s->xdp_flags = modes[i];
			return 0;
		}
		if (l->o.xdp_mode == 0 && i == 0)
			err = 0; /* try generic */
	}
	fprintf(stderr, "paste-logd: attaching the XDP program to %s failed: %s\n", s->ifname,
	        strerror(-err));
	return err ? err : -EOPNOTSUPP;
}

static int bpf_setup(struct logd *l)
{
	struct logd_conf conf = {.mode = l->o.sel_mode,
	                         .nrules = l->o.nrules,
	                         .ifindex_a = l->s[0].ifindex,
	                         .redirect = l->o.kernel_redirect};
	struct bpf_program *prog;
	uint32_t key = 0;
	int err;

	l->obj = bpf_object__open_mem(logd_bpf_obj, logd_bpf_obj_len, NULL);
	if (!l->obj)
		return -errno;
	err = bpf_object__load(l->obj);
	if (err) {
		fprintf(stderr, "paste-logd: loading the XDP program failed: %s (run as root)\n",
		        strerror(-err));
		return err;
	}
	prog = bpf_object__find_program_by_name(l->obj, LOGD_PROG_NAME);
	l->prog_fd = prog ? bpf_program__fd(prog) : -1;
	l->conf_fd = bpf_object__find_map_fd_by_name(l->obj, "logd_conf");
	l->rules_fd = bpf_object__find_map_fd_by_name(l->obj, "logd_rules");
	l->xsks_fd = bpf_object__find_map_fd_by_name(l->obj, "logd_xsks");
	l->cnt_fd = bpf_object__find_map_fd_by_name(l->obj, "logd_counters");
	if (l->prog_fd < 0 || l->conf_fd < 0 || l->rules_fd < 0 || l->xsks_fd < 0 || l->cnt_fd < 0)
		return -ENOENT;
	for (uint32_t i = 0; i < l->o.nrules; i++) {
		struct logd_rule r = {.addr = l->o.rules[i].addr,
		                      .mask = l->o.rules[i].mask,
		                      .port = l->o.rules[i].port,
		                      .proto = l->o.rules[i].proto};

		if (bpf_map_update_elem(l->rules_fd, &i, &r, 0))
			return -errno;
	}
	if (l->o.kernel_redirect) {
		int devs = bpf_object__find_map_fd_by_name(l->obj, "logd_devs");

		for (uint32_t i = 0; i < 2; i++) {
			uint32_t to = (uint32_t)l->s[i ^ 1].ifindex;

			if (devs < 0 || bpf_map_update_elem(devs, &i, &to, 0))
				return devs < 0 ? -ENOENT : -errno;
		}
	}
	return bpf_map_update_elem(l->conf_fd, &key, &conf, 0) ? -errno : 0;
}

static void bpf_counters(struct logd *l, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v;

	if (ncpu <= 0 || !(v = calloc(ncpu, sizeof(*v))))
		return;
	for (uint32_t k = 0; k < LOGD_CNT_MAX && k < 8; k++) {
		out[k] = 0;
		if (!bpf_map_lookup_elem(l->cnt_fd, &k, v))
			for (int c = 0; c < ncpu; c++)
				out[k] += v[c];
	}
	free(v);
}

/* ---- sockets --------------------------------------------------------------------------------- */

static int xsk_open(struct logd *l, struct side *s, bool first)
{
	struct xsk_socket_config cfg = {
	    .rx_size = l->o.ring_size,
	    .tx_size = l->o.ring_size,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	};
	uint16_t modes[2] = {XDP_ZEROCOPY, XDP_COPY};
	uint32_t key;
	int err = 0;

	for (unsigned i = 0; i < 2; i++) {
		cfg.bind_flags = modes[i] | XDP_USE_NEED_WAKEUP;
		if (first)
			err = xsk_socket__create(&s->xsk, s->ifname, 0, l->umem, &s->rx, &s->tx,
			                         &cfg);
		else
			err = xsk_socket__create_shared(&s->xsk, s->ifname, 0, l->umem, &s->rx,
			                                &s->tx, &s->fill, &s->comp, &cfg);
		if (!err)
			break;
	}
	if (err) {
		fprintf(stderr,
		        "paste-logd: binding an AF_XDP socket to %s queue 0 failed: %s (is another "
		        "AF_XDP program on it?)\n",
		        s->ifname, strerror(-err));
		return err;
	}
	s->fd = xsk_socket__fd(s->xsk);
	key = (s == &l->s[0] ? 0 : LOGD_MAX_QUEUES);
	if (bpf_map_update_elem(l->xsks_fd, &key, &s->fd, 0))
		return -errno;
	return 0;
}

static int umem_open(struct logd *l)
{
	struct xsk_umem_config ucfg = {
	    .fill_size = l->o.ring_size,
	    .comp_size = l->o.ring_size,
	    .frame_size = l->fsz,
	};
	int err = xsk_umem__create(&l->umem, l->area, (uint64_t)l->fsz * l->nframes, &l->s[0].fill,
	                           &l->s[0].comp, &ucfg);

	if (err)
		fprintf(stderr,
		        "paste-logd: registering the pool's frame area as UMEM failed: %s%s\n",
		        strerror(-err),
		        err == -EFAULT ? " (put the pool on /dev/shm or a device-DAX path)" : "");
	return err;
}

/* ---- open / close ---------------------------------------------------------------------------- */

static int pool_open(struct logd *l)
{
	struct paste_pool_opts po = {.sz = sizeof(po), .size = l->o.pool_size, .create = true};
	struct paste_pool_info pi;
	int err = paste_pool__open(&l->pool, l->o.pool_path, &po);

	if (err) {
		fprintf(stderr, "paste-logd: opening pool %s failed: %s\n", l->o.pool_path,
		        strerror(-err));
		return err;
	}
	paste_pool__info(l->pool, &pi, sizeof(pi));
	l->area = paste_pool__frames(l->pool);
	l->fsz = pi.frame_size;
	l->nframes = pi.frame_count;
	if (l->nframes < 8 * l->o.ring_size) {
		fprintf(stderr,
		        "paste-logd: the pool has %u frames; %u are needed for rings of %u (use a "
		        "larger --pool-size or a smaller --ring-size)\n",
		        l->nframes, 8 * l->o.ring_size, l->o.ring_size);
		return -ENOSPC;
	}
	err = plog_check_pool(l->pool, l->o.pool_path);
	return err ? err : plog_open(l->pool, true, true, &l->log);
}

int logd_open(const struct logd_opts *o, struct logd **out)
{
	struct logd *l = calloc(1, sizeof(*l));
	int err;

	if (!l)
		return -ENOMEM;
	l->o = *o;
	l->s[0].ifname = o->in;
	l->s[1].ifname = o->out;
	for (int i = 0; i < 2; i++) {
		l->s[i].ifindex = if_nametoindex(l->s[i].ifname);
		if (!l->s[i].ifindex) {
			fprintf(stderr, "paste-logd: no interface %s\n", l->s[i].ifname);
			err = -ENODEV;
			goto fail;
		}
	}
	err = pool_open(l);
	if (!err)
		err = frames_init(l);
	if (!err)
		err = bpf_setup(l);
	if (!err)
		err = umem_open(l);
	for (int i = 0; !err && i < 2; i++)
		err = xsk_open(l, &l->s[i], i == 0);
	for (int i = 0; !err && i < 2; i++)
		err = attach(l, &l->s[i]);
	if (err)
		goto fail;
	*out = l;
	return 0;
fail:
	logd_close(&l);
	return err;
}

void logd_close(struct logd **lp)
{
	struct logd *l = *lp;

	if (!l)
		return;
	for (int i = 0; i < 2; i++) {
		if (l->s[i].xdp_flags)
			bpf_xdp_detach(l->s[i].ifindex, l->s[i].xdp_flags, NULL);
		if (l->s[i].xsk)
			xsk_socket__delete(l->s[i].xsk);
	}
	if (l->umem)
		xsk_umem__delete(l->umem);
	bpf_object__close(l->obj);
	if (l->log)
		plog_close(&l->log);
	if (l->pool)
		paste_pool__close(&l->pool);
	free(l->fbits);
	free(l->free_stack);
	free(l);
	*lp = NULL;
}

/* ---- the batch loop -------------------------------------------------------------------------- */

static void complete(struct logd *l, struct side *s)
{
	uint32_t idx = 0, n = xsk_ring_cons__peek(&s->comp, l->o.ring_size, &idx);

	for (uint32_t i = 0; i < n; i++) {
		uint64_t addr = *xsk_ring_cons__comp_addr(&s->comp, idx + i);
		uint32_t f = frame_of(l, addr);

		if (f >= l->nframes || !(l->fbits[f] & F_TX)) {
			l->st.invalid++;
			continue;
		}
		frame_clear(l, f, F_TX);
		l->st.completed++;
	}
	if (n)
		xsk_ring_cons__release(&s->comp, n);
}

/* The verdict the XDP program left in front of the frame; LOG if there is none (safe side). The
 * magic is cleared so a stale one is never read again from this frame. */
static uint32_t verdict(struct logd *l, uint64_t addr)
{
	struct logd_meta *m;
	uint32_t v;

	if (addr % l->fsz < sizeof(*m)) {
		l->st.no_meta++;
		return LOGD_V_LOG;
	}
	m = (struct logd_meta *)(l->area + addr - sizeof(*m));
	if (m->magic != LOGD_META_MAGIC) {
		l->st.no_meta++;
		return LOGD_V_LOG;
	}
	v = m->verdict;
	m->magic = 0;
	return v;
}

/* Log one frame. Under -ENOSPC (every slot live) the oldest records make room. */
static int log_frame(struct logd *l, struct side *in, const struct xdp_desc *d, uint64_t ts,
                     uint32_t flags)
{
	uint32_t f = frame_of(l, d->addr);
	struct plog_rec r = {.ts_ns = ts,
	                     .frame = f,
	                     .off = (uint16_t)(d->addr % l->fsz),
	                     .len = (uint16_t)d->len,
	                     .ifindex = in->ifindex,
	                     .flags = flags};
	uint64_t seq;
	int err = plog_append(l->log, &r, &seq);

	if (err == -ENOSPC) {
		struct plog_info pi;

		plog_info(l->log, &pi);
		l->st.evicted +=
		    plog_truncate(l->log, pi.first_seq + pi.nslots / 16, release_logged, l);
		err = plog_append(l->log, &r, &seq);
	}
	if (err)
		return err;
	l->fbits[f] |= F_LOG;
	l->st.logged++;
	return 0;
}

/* Step 2 for one side: @return frames taken; *logged counts the records appended. */
static unsigned receive(struct logd *l, int si, uint64_t ts, unsigned *logged)
{
	struct side *in = &l->s[si], *out = &l->s[si ^ 1];
	uint32_t idx = 0, n = xsk_ring_cons__peek(&in->rx, l->o.batch, &idx);

	for (uint32_t i = 0; i < n; i++) {
		struct xdp_desc d = *xsk_ring_cons__rx_desc(&in->rx, idx + i);
		uint32_t f = frame_of(l, d.addr), v;
		bool fwd = true, mal;

		if (f >= l->nframes || !(l->fbits[f] & F_FILL)) {
			l->st.invalid++; /* not a frame we gave the kernel: never touch it */
			continue;
		}
		l->fbits[f] &= ~F_FILL;
		l->st.rx[si]++;
		l->st.rx_bytes += d.len;
		v = verdict(l, d.addr);
		mal = v == LOGD_V_MALFORMED;
		if (mal) {
			l->st.malformed++;
			fwd = l->o.malformed == LOGD_MALFORMED_FORWARD;
			v = l->o.malformed == LOGD_MALFORMED_LOG ||
			            (fwd && l->o.sel_mode == LOGD_SEL_ALL)
			        ? LOGD_V_LOG
			        : LOGD_V_PASS;
		}
		if (v == LOGD_V_LOG) {
			if (log_frame(l, in, &d, ts, mal ? PLOG_F_MALFORMED : 0)) {
				l->st.log_errors++; /* selected but not logged: never forwarded */
				fwd = false;
			} else {
				(*logged)++;
				l->st.malformed_logged += mal && !fwd;
			}
		} else if (fwd) {
			l->st.unlogged++;
		}
		if (!fwd) {
			if (mal && l->o.malformed == LOGD_MALFORMED_DROP)
				l->st.malformed_dropped++;
			frame_put(l, f); /* free unless a record keeps it */
			continue;
		}
		out->out[out->nout++] = d;
	}
	if (n)
		xsk_ring_cons__release(&in->rx, n);
	return n;
}

/* Step 4 for one side: the batch's frames go on its TX ring (the RX descriptor as it was). */
static void transmit(struct logd *l, int si)
{
	struct side *s = &l->s[si];
	uint32_t idx = 0, n, i;

	if (!s->nout)
		return;
	if (xsk_prod_nb_free(&s->tx, s->nout) < s->nout)
		complete(l, s);
	n = xsk_prod_nb_free(&s->tx, s->nout);
	if (n > s->nout)
		n = s->nout;
	if (n && xsk_ring_prod__reserve(&s->tx, n, &idx) != n)
		n = 0;
	for (i = 0; i < n; i++) {
		const struct xdp_desc *d = &s->out[i];
		struct xdp_desc *t = xsk_ring_prod__tx_desc(&s->tx, idx + i);
		uint8_t *bits = &l->fbits[frame_of(l, d->addr)];

		/* The descriptor the packet arrived with, unchanged: same frame, same offset. The
		 * frame must be a received one that no ring holds (else this would send it twice).
		 */
		*t = *d;
		l->st.inplace += !(*bits & (F_FILL | F_TX));
		*bits |= F_TX;
		l->st.tx[si]++;
		l->st.tx_bytes += d->len;
	}
	for (; i < s->nout; i++) { /* ring full: dropped (a logged one stays logged) */
		l->st.tx_full++;
		frame_put(l, frame_of(l, s->out[i].addr));
	}
	s->nout = 0;
	if (!n)
		return;
	xsk_ring_prod__submit(&s->tx, n);
	if (xsk_ring_prod__needs_wakeup(&s->tx))
		for (int k = 0; k < 4; k++) {
			if (sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 ||
			    (errno != EAGAIN && errno != EBUSY && errno != ENOBUFS))
				break;
			complete(l, s);
		}
}

static void refill(struct logd *l, struct side *s)
{
	uint32_t want = xsk_prod_nb_free(&s->fill, l->o.ring_size), idx = 0, i;

	if (want > l->nfree)
		want = l->nfree;
	if (!want || xsk_ring_prod__reserve(&s->fill, want, &idx) != want)
		return;
	for (i = 0; i < want; i++) {
		uint32_t f = l->free_stack[--l->nfree];

		l->fbits[f] = F_FILL;
		*xsk_ring_prod__fill_addr(&s->fill, idx + i) = (uint64_t)f * l->fsz;
	}
	xsk_ring_prod__submit(&s->fill, want);
	if (xsk_ring_prod__needs_wakeup(&s->fill))
		recvfrom(s->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
}

/* Capacity policy: keep 2 rings' worth of frames free for the fill rings by dropping the oldest
 * records (durably, before their frames are reused). Counted in evicted. */
static void make_room(struct logd *l)
{
	uint32_t low = 2 * l->o.ring_size, want = 4 * l->o.ring_size;
	struct plog_info pi;

	if (l->nfree >= low)
		return;
	plog_info(l->log, &pi);
	if (pi.next_seq == pi.first_seq)
		return;
	l->st.evicted += plog_truncate(l->log, pi.first_seq + (want - l->nfree), release_logged, l);
}

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int logd_run(struct logd *l, volatile sig_atomic_t *stop, void (*tick)(struct logd *l, void *arg),
             void *arg)
{
	struct pollfd pfd[2] = {{.fd = l->s[0].fd, .events = POLLIN},
	                        {.fd = l->s[1].fd, .events = POLLIN}};
	uint64_t next_tick = 0;

	for (int i = 0; i < 2; i++)
		refill(l, &l->s[i]);
	while (!*stop) {
		unsigned got = 0, logged = 0;
		uint64_t ts = now_ns(CLOCK_REALTIME), mono = now_ns(CLOCK_MONOTONIC);

		for (int i = 0; i < 2; i++)
			complete(l, &l->s[i]);
		for (int i = 0; i < 2; i++)
			got += receive(l, i, ts, &logged);
		if (logged) { /* the fence: every record of this batch is durable before any TX */
			paste_pool__drain(l->pool);
			l->st.fences++;
		}
		for (int i = 0; i < 2; i++)
			transmit(l, i);
		make_room(l);
		for (int i = 0; i < 2; i++)
			refill(l, &l->s[i]);
		if (mono >= next_tick) {
			next_tick = mono + 100000000ull;
			tick(l, arg);
		}
		if (!got && !l->o.busy_poll && poll(pfd, 2, 100) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

void logd_get_stats(struct logd *l, struct logd_stats *st)
{
	struct plog_info pi;
	uint32_t n[3] = {0, 0, 0};

	for (uint32_t f = 0; f < l->nframes; f++) {
		if (l->fbits[f] & F_LOG)
			n[1]++;
		else if (l->fbits[f])
			n[2]++;
	}
	plog_info(l->log, &pi);
	l->st.frames_free = l->nfree;
	l->st.frames_pinned = n[1];
	l->st.frames_kernel = n[2];
	l->st.first_seq = pi.first_seq;
	l->st.next_seq = pi.next_seq;
	bpf_counters(l, l->st.bpf);
	*st = l->st;
}
