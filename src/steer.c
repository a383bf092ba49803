/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * steer.c - loading, configuring and attaching the XDP steering program (bpf/paste_steer.bpf.c).
 *
 * paste_steer__open() opens the BPF object embedded in the library (paste_steer_bpf_obj), loads it
 * with libbpf and fills paste_conf, so the program can be tested (BPF_PROG_TEST_RUN) before it is
 * attached. paste_steer__attach() hands the loaded program to libxdp. libxdp's multi-program
 * dispatcher cannot load on the kernels we run on (freplace programs are refused), so we ask libxdp
 * for its single-program ("legacy") mode up front (LIBXDP_SKIP_DISPATCHER=1) instead of letting
 * every attach try the dispatcher, fail and fall back.
 *
 * An XDP program outlives its process. Before attaching, a program already on the interface is
 * looked at: one named paste_steer that no running process holds open is the leftover of a killed
 * process and is detached; one still held by a process belongs to a running libpaste-xdp instance,
 * and anything else is someone else's: both are left alone (-EBUSY, with a message saying how to
 * remove them).
 *
 * libbpf's and libxdp's own messages are routed to our print callback at DEBUG level (process-wide:
 * libbpf_set_print / libxdp_set_print), so they are there when asked for and never spam stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <linux/if_link.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "internal.h"
#include "paste_steer.h"
#include "steer.h"
#include "steer_priv.h"

/* The compiled bpf/paste_steer.bpf.c, embedded by bpf/CMakeLists.txt. */
extern const unsigned char paste_steer_bpf_obj[];
extern const unsigned long paste_steer_bpf_obj_len;

#define SKIP_DISPATCHER_ENV "LIBXDP_SKIP_DISPATCHER"

/* ---- libbpf / libxdp messages --------------------------------------------------------------- */

static void forward_lines(const char *fmt, va_list ap)
{
	char buf[4096], *line, *save = NULL;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		pr_debug("%s", line);
}

static int libbpf_print_cb(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	forward_lines(fmt, ap);
	return 0;
}

static int libxdp_print_cb(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	forward_lines(fmt, ap);
	return 0;
}

static void route_prints(void)
{
	libbpf_set_print(libbpf_print_cb);
	libxdp_set_print(libxdp_print_cb);
}

/* ---- helpers -------------------------------------------------------------------------------- */

const char *paste_steer__ifname(int ifindex, char buf[IF_NAMESIZE + 16])
{
	if (!if_indextoname(ifindex, buf))
		snprintf(buf, IF_NAMESIZE + 16, "ifindex %d", ifindex);
	return buf;
}

static const char *mode_name(enum xdp_attach_mode mode)
{
	return mode == XDP_MODE_NATIVE ? "native" : mode == XDP_MODE_SKB ? "generic (SKB)" : "no";
}

bool paste_steer__is_ours(const char *prog_name)
{
	return prog_name && !strcmp(prog_name, PASTE_STEER_PROG_NAME);
}

static int map_fd(struct paste_steer *s, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(s->obj, name);
	int fd = map ? bpf_map__fd(map) : -ENOENT;

	if (fd < 0)
		return paste_fail(
		    -ENOENT,
		    "steering: map %s missing from the embedded BPF object (the library build is broken: rebuild it)",
		    name);
	return fd;
}

/* ---- open ----------------------------------------------------------------------------------- */

int paste_steer__check_cfg(const struct paste_steer_cfg *cfg)
{
	if (cfg->ifindex < 0)
		return paste_fail(-EINVAL, "steering: invalid interface index %d", cfg->ifindex);
	if (!cfg->ip)
		return paste_fail(-EINVAL, "steering: no IPv4 address to steer (0.0.0.0)");
	if (cfg->mode != PASTE_XDP_AUTO && cfg->mode != PASTE_XDP_NATIVE &&
	    cfg->mode != PASTE_XDP_SKB)
		return paste_fail(-EINVAL, "steering: unknown XDP mode %d", (int)cfg->mode);
	if (cfg->shared_ip && cfg->eph_lo > cfg->eph_hi)
		return paste_fail(-EINVAL, "steering: ephemeral port range %u-%u is empty",
		                  cfg->eph_lo, cfg->eph_hi);
	return 0;
}

static int load_error(int err)
{
	if (err == -EPERM)
		return paste_fail(
		    err,
		    "loading the XDP steering program was refused (EPERM): run as root, or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON");
	return paste_fail(
	    err,
	    "the kernel rejected the XDP steering program: %s (set the log level to PASTE_LOG_DEBUG to see libbpf's verifier log; the kernel needs XDP and AF_XDP support, CONFIG_XDP_SOCKETS)",
	    strerror(-err));
}

static int load_object(struct paste_steer *s)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = PASTE_STEER_PROG_NAME);
	struct bpf_program *prog;
	int err;

	s->obj = bpf_object__open_mem(paste_steer_bpf_obj, paste_steer_bpf_obj_len, &opts);
	if (!s->obj) {
		err = -errno;
		return paste_fail(
		    err,
		    "steering: cannot parse the embedded BPF object: %s (the library build is broken: rebuild it)",
		    strerror(-err));
	}
	prog = bpf_object__find_program_by_name(s->obj, PASTE_STEER_PROG_NAME);
	if (!prog)
		return paste_fail(
		    -ENOENT,
		    "steering: program %s missing from the embedded BPF object (the library build is broken: rebuild it)",
		    PASTE_STEER_PROG_NAME);
	err = bpf_object__load(s->obj);
	if (err)
		return load_error(err);
	s->prog_fd = bpf_program__fd(prog);
	return 0;
}

/* Maps, the libxdp handle and the per-CPU buffer: everything the loaded object gives access to. */
static int bind_object(struct paste_steer *s)
{
	DECLARE_LIBXDP_OPTS(xdp_program_opts, xopts, .fd = s->prog_fd);

	if ((s->conf_fd = map_fd(s, "paste_conf")) < 0 ||
	    (s->ports_fd = map_fd(s, "paste_ports")) < 0 ||
	    (s->xsks_fd = map_fd(s, "paste_xsks")) < 0 ||
	    (s->counters_fd = map_fd(s, "paste_counters")) < 0)
		return -ENOENT;
	s->xdp = xdp_program__create(&xopts);
	if (!s->xdp)
		return paste_fail(-errno, "steering: libxdp cannot take the loaded program: %s",
		                  strerror(errno));
	s->ncpus = libbpf_num_possible_cpus();
	if (s->ncpus <= 0)
		return paste_fail(
		    s->ncpus ? s->ncpus : -EINVAL,
		    "steering: cannot count the possible CPUs (/sys/devices/system/cpu/possible)");
	s->percpu = calloc(s->ncpus, sizeof(*s->percpu));
	if (!s->percpu)
		return paste_fail(-ENOMEM, "steering: out of memory");
	return 0;
}

static int write_conf(struct paste_steer *s)
{
	struct paste_steer_conf conf = {
	    .mode = s->cfg.shared_ip ? PASTE_STEER_SHARED : PASTE_STEER_DEDICATED,
	    .ip = s->cfg.ip,
	    .eph_lo = s->cfg.shared_ip ? s->cfg.eph_lo : 0,
	    .eph_hi = s->cfg.shared_ip ? s->cfg.eph_hi : 0,
	};
	__u32 key = 0;
	int err;

	err = bpf_map_update_elem(s->conf_fd, &key, &conf, BPF_ANY);
	if (err)
		return paste_fail(err, "steering: writing the configuration map failed: %s",
		                  strerror(-err));
	return 0;
}

int paste_steer__open(struct paste_steer **out, const struct paste_steer_cfg *cfg)
{
	static pthread_once_t prints_routed = PTHREAD_ONCE_INIT;
	struct paste_steer *s;
	int err;

	if (out)
		*out = NULL;
	if (!out || !cfg)
		return paste_fail(-EINVAL, "paste_steer__open: NULL argument");
	err = paste_steer__check_cfg(cfg);
	if (err)
		return err;
	pthread_once(&prints_routed, route_prints);
	s = calloc(1, sizeof(*s));
	if (!s)
		return paste_fail(-ENOMEM, "steering: out of memory");
	s->cfg = *cfg;
	s->prog_fd = s->conf_fd = s->ports_fd = s->xsks_fd = s->counters_fd = -1;
	err = load_object(s);
	if (err)
		goto fail;
	err = bind_object(s);
	if (err)
		goto fail;
	err = write_conf(s);
	if (err)
		goto fail;
	*out = s;
	return 0;
fail:
	paste_steer__close(&s);
	return err;
}

/* ---- stale programs ------------------------------------------------------------------------- */

/*
 * This part uses libbpf directly, not xdp_multiprog__get_from_ifindex(): libxdp 1.3.1 leaks one
 * program fd per call of it (the one from bpf_prog_get_fd_by_id), which would keep a removed
 * program loaded for the life of the process and make this very process look like a holder of it.
 * Our program is always attached on its own (never inside a libxdp dispatcher, see
 * skip_dispatcher()), so a dispatcher on the interface is someone else's, like any other program
 * not named paste_steer.
 */

/* The XDP program attached to @ifindex in driver or generic mode: id (0 if none) and its mode. */
int paste_steer__attached_prog(int ifindex, __u32 *id, __u32 *mode_flag)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	char ifn[IF_NAMESIZE + 16];
	int err;

	err = bpf_xdp_query(ifindex, 0, &q);
	if (err)
		return paste_fail(err, "steering: cannot query the XDP program on %s: %s%s",
		                  paste_steer__ifname(ifindex, ifn), strerror(-err),
		                  err == -EPERM ? " (run as root)" : "");
	*id = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id;
	*mode_flag = q.drv_prog_id ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	return 0;
}

/* Does process @pid hold an fd to BPF program @prog_id (/proc/PID/fdinfo), other than @skip_fd? */
static bool pid_holds_prog(long pid, __u32 prog_id, int skip_fd)
{
	char path[320], target[32], line[128];
	struct dirent *de;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	dir = opendir(path);
	if (!dir)
		return false;
	while (!found && (de = readdir(dir))) {
		unsigned id;
		ssize_t n;
		FILE *f;

		n = readlinkat(dirfd(dir), de->d_name, target, sizeof(target) - 1);
		if (n <= 0 || (target[n] = 0, strcmp(target, "anon_inode:bpf-prog")))
			continue;
		if (pid == (long)getpid() && (skip_fd == SKIP_SELF || atoi(de->d_name) == skip_fd))
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fdinfo/%s", pid, de->d_name);
		f = fopen(path, "r");
		while (f && !found && fgets(line, sizeof(line), f))
			found = sscanf(line, "prog_id: %u", &id) == 1 && id == prog_id;
		if (f)
			fclose(f);
	}
	closedir(dir);
	return found;
}

/*
 * A process (visible in our /proc) that holds BPF program @prog_id open, or 0 if none does; our own
 * @skip_fd does not count. A killed process holds nothing: only the interface keeps its program.
 */
long paste_steer__prog_holder(__u32 prog_id, int skip_fd)
{
	struct dirent *de;
	long pid = 0;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!pid && (de = readdir(proc))) {
		char *end;
		long p = strtol(de->d_name, &end, 10);

		if (p > 0 && !*end && pid_holds_prog(p, prog_id, skip_fd))
			pid = p;
	}
	closedir(proc);
	return pid;
}

/* -EBUSY with a message if program @id (@fd, named @name) must not be removed, else 0. */
static int check_removable(int ifindex, __u32 id, int fd, const char *name)
{
	char ifn[IF_NAMESIZE + 16];
	long pid;

	paste_steer__ifname(ifindex, ifn);
	if (!paste_steer__is_ours(name))
		return paste_fail(
		    -EBUSY,
		    "another XDP program (\"%s\", id %u) is attached to %s; it is not ours, so it is left alone. If it is not needed, remove it with `ip link set dev %s xdp off` (or `xdp-loader unload %s --all`)",
		    name[0] ? name : "(unnamed)", id, ifn, ifn, ifn);
	pid = paste_steer__prog_holder(id, fd);
	if (pid)
		return paste_fail(
		    -EBUSY,
		    "%s already has a steering program (id %u) in use by running process %ld%s: one libpaste-xdp instance per interface; stop it first",
		    ifn, id, pid, pid == (long)getpid() ? " (this process)" : "");
	return 0;
}

/* Detach program @fd (id @id) from @ifindex, only if it is still the one attached there. */
static int detach_stale(int ifindex, __u32 id, int fd, __u32 mode_flag)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = fd);
	char ifn[IF_NAMESIZE + 16];
	int err;

	paste_steer__ifname(ifindex, ifn);
	err = bpf_xdp_detach(ifindex, mode_flag, &opts);
	if (err == -EEXIST)
		return paste_fail(
		    -EBUSY,
		    "the XDP program on %s changed while the stale one (id %u) was being removed; retry",
		    ifn, id);
	if (err)
		return paste_fail(
		    err,
		    "steering: removing the stale steering program (id %u) from %s failed: %s; remove it with `ip link set dev %s xdp off`",
		    id, ifn, strerror(-err), ifn);
	pr_info("replaced a stale steering program left by an earlier process (id %u on %s)", id,
	        ifn);
	return 1;
}

int paste_steer__remove_stale(int ifindex)
{
	struct bpf_prog_info info = {};
	__u32 id = 0, mode_flag = 0, len = sizeof(info);
	int err, fd;

	err = paste_steer__attached_prog(ifindex, &id, &mode_flag);
	if (err || !id)
		return err;
	fd = bpf_prog_get_fd_by_id(id);
	if (fd == -ENOENT)
		return 0; /* detached meanwhile */
	if (fd < 0)
		return paste_fail(fd,
		                  "steering: cannot open the attached XDP program (id %u): %s%s",
		                  id, strerror(-fd), fd == -EPERM ? " (run as root)" : "");
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err)
		err = paste_fail(err, "steering: cannot read the attached XDP program (id %u): %s",
		                 id, strerror(-err));
	if (!err)
		err = check_removable(ifindex, id, fd, info.name);
	if (!err)
		err = detach_stale(ifindex, id, fd, mode_flag);
	close(fd);
	return err;
}

/* ---- attach / detach ------------------------------------------------------------------------ */

/* libxdp in single-program mode, unless the user has said otherwise (process-wide: setenv). */
static void skip_dispatcher(void)
{
	if (getenv(SKIP_DISPATCHER_ENV))
		return;
	if (setenv(SKIP_DISPATCHER_ENV, "1", 0))
		pr_debug("cannot set %s=1: libxdp will try its dispatcher first",
		         SKIP_DISPATCHER_ENV);
}

static int attach_error(const struct paste_steer *s, enum xdp_attach_mode mode, int err)
{
	char ifn[IF_NAMESIZE + 16];

	paste_steer__ifname(s->cfg.ifindex, ifn);
	if (err == -EPERM || err == -EACCES)
		return paste_fail(
		    err,
		    "attaching the XDP steering program to %s was refused: run as root (needs CAP_NET_ADMIN and CAP_BPF)",
		    ifn);
	if (err == -EBUSY || err == -EEXIST)
		return paste_fail(
		    err,
		    "another XDP program was attached to %s meanwhile; remove it with `ip link set dev %s xdp off` and retry",
		    ifn, ifn);
	if (err == -ENODEV)
		return paste_fail(err, "no interface %s (was it removed?)", ifn);
	if (mode == XDP_MODE_NATIVE && (err == -EOPNOTSUPP || err == -EINVAL))
		return paste_fail(
		    err,
		    "the driver of %s does not support native XDP (%s): use the generic (SKB) or automatic XDP mode",
		    ifn, strerror(-err));
	return paste_fail(err, "attaching the XDP steering program to %s in %s mode failed: %s",
	                  ifn, mode_name(mode), strerror(-err));
}

static int attach_in(struct paste_steer *s, enum xdp_attach_mode mode)
{
	int err = xdp_program__attach(s->xdp, s->cfg.ifindex, mode, 0);

	if (!err)
		s->attached = mode;
	return err;
}

int paste_steer__attach(struct paste_steer *s)
{
	char ifn[IF_NAMESIZE + 16];
	int err;

	if (!s)
		return paste_fail(-EINVAL, "paste_steer__attach: NULL argument");
	if (s->attached != XDP_MODE_UNSPEC)
		return 0;
	if (s->cfg.ifindex <= 0)
		return paste_fail(-EINVAL, "steering: no interface to attach to");
	err = paste_steer__remove_stale(s->cfg.ifindex);
	if (err < 0)
		return err;
	skip_dispatcher();
	paste_steer__ifname(s->cfg.ifindex, ifn);
	if (s->cfg.mode != PASTE_XDP_SKB) {
		err = attach_in(s, XDP_MODE_NATIVE);
		if (err && (s->cfg.mode == PASTE_XDP_NATIVE || err == -EPERM || err == -EACCES ||
		            err == -ENODEV))
			return attach_error(s, XDP_MODE_NATIVE, err);
		if (err)
			pr_info("native XDP on %s failed (%s): trying generic (SKB) mode", ifn,
			        strerror(-err));
	}
	if (s->attached == XDP_MODE_UNSPEC) {
		err = attach_in(s, XDP_MODE_SKB);
		if (err)
			return attach_error(s, XDP_MODE_SKB, err);
	}
	pr_info("steering program attached to %s in %s mode", ifn, mode_name(s->attached));
	return 0;
}

void paste_steer__detach(struct paste_steer *s)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = s->prog_fd);
	__u32 flags = s->attached == XDP_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	char ifn[IF_NAMESIZE + 16];
	int err;

	/* Not xdp_program__detach(): it leaks a program fd (see "stale programs"). The old_prog_fd
	 * makes the kernel detach only if our program is still the one attached. */
	err = bpf_xdp_detach(s->cfg.ifindex, flags, &opts);
	paste_steer__ifname(s->cfg.ifindex, ifn);
	if (!err)
		pr_debug("steering program detached from %s", ifn);
	else if (err == -EEXIST || err == -ENODEV || err == -ENOENT)
		pr_debug("steering program no longer attached to %s", ifn);
	else
		pr_warn(
		    "detaching the steering program from %s failed: %s; remove it with `ip link set dev %s xdp off`",
		    ifn, strerror(-err), ifn);
	s->attached = XDP_MODE_UNSPEC;
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* Free everything without detaching. */
void paste_steer__release(struct paste_steer *s)
{
	xdp_program__close(s->xdp);
	bpf_object__close(s->obj);
	if (s->adopted) { /* fds of our own, not the object's */
		close_fd(s->prog_fd);
		close_fd(s->conf_fd);
		close_fd(s->ports_fd);
		close_fd(s->xsks_fd);
		close_fd(s->counters_fd);
	}
	free(s->percpu);
	free(s);
}

void paste_steer__close(struct paste_steer **ps)
{
	struct paste_steer *s = ps ? *ps : NULL;

	if (!s)
		return;
	*ps = NULL;
	if (s->attached != XDP_MODE_UNSPEC)
		paste_steer__detach(s);
	paste_steer__release(s);
}

/* ---- maps ----------------------------------------------------------------------------------- */

int paste_steer__add_port(struct paste_steer *s, uint16_t port)
{
	__u8 one = 1;
	int err;

	if (!s || !port)
		return paste_fail(-EINVAL, "steering: cannot steer TCP port %u", port);
	err = bpf_map_update_elem(s->ports_fd, &port, &one, BPF_ANY);
	if (err == -E2BIG)
		return paste_fail(-ENOSPC, "steering: at most %d ports can be steered",
		                  PASTE_STEER_MAX_PORTS);
	if (err)
		return paste_fail(err, "steering: adding TCP port %u failed: %s", port,
		                  strerror(-err));
	return 0;
}

int paste_steer__del_port(struct paste_steer *s, uint16_t port)
{
	int err;

	if (!s)
		return paste_fail(-EINVAL, "paste_steer__del_port: NULL argument");
	err = bpf_map_delete_elem(s->ports_fd, &port);
	if (err)
		return paste_fail(err, "steering: removing TCP port %u failed: %s", port,
		                  err == -ENOENT ? "it is not steered" : strerror(-err));
	return 0;
}

int paste_steer__set_xsk(struct paste_steer *s, uint32_t queue, int xsk_fd)
{
	int err;

	if (!s || xsk_fd < 0)
		return paste_fail(-EINVAL, "paste_steer__set_xsk: invalid argument");
	if (queue >= PASTE_STEER_MAX_QUEUES)
		return paste_fail(-EINVAL, "steering: queue %u is beyond the %d queues supported",
		                  queue, PASTE_STEER_MAX_QUEUES);
	err = bpf_map_update_elem(s->xsks_fd, &queue, &xsk_fd, BPF_ANY);
	if (err)
		return paste_fail(
		    err, "steering: putting the AF_XDP socket in the map at queue %u failed: %s%s",
		    queue, strerror(-err),
		    err == -EOPNOTSUPP || err == -EINVAL ? " (is the socket bound?)" : "");
	return 0;
}

int paste_steer__prog_fd(const struct paste_steer *s)
{
	return s ? s->prog_fd : -EINVAL;
}

/* PASTE_XDP_AUTO while not attached. */
enum paste_xdp_mode paste_steer__attached_mode(const struct paste_steer *s)
{
	if (!s || s->attached == XDP_MODE_UNSPEC)
		return PASTE_XDP_AUTO;
	return s->attached == XDP_MODE_NATIVE ? PASTE_XDP_NATIVE : PASTE_XDP_SKB;
}

int paste_steer__counters(const struct paste_steer *s, uint64_t *out, unsigned n)
{
	if (!s || (n && !out))
		return paste_fail(-EINVAL, "paste_steer__counters: invalid argument");
	for (__u32 i = 0; i < n; i++) {
		int err;

		out[i] = 0;
		if (i >= PASTE_CNT_MAX)
			continue;
		err = bpf_map_lookup_elem(s->counters_fd, &i, s->percpu);
		if (err)
			return paste_fail(err, "steering: reading counter %u failed: %s", i,
			                  strerror(-err));
		for (int cpu = 0; cpu < s->ncpus; cpu++)
			out[i] += s->percpu[cpu];
	}
	return 0;
}
