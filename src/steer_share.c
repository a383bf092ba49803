/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * steer_share.c - one XDP steering program shared by the processes serving the queues of one
 * interface (paste_steer__open_shared, steer.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/if_link.h>

#include "internal.h"
#include "paste_steer.h"
#include "steer_priv.h"

/* ---- one program shared by the processes of one interface (one per NIC queue) -------------- */

/*
 * Workers on different queues of one interface share one program: the first attaches it, later
 * ones find it attached (bpf_xdp_query), see that it is ours and held open by a running process,
 * and adopt it: its maps are reached by id (bpf_map_get_fd_by_id), nothing is pinned, so no bpffs
 * is needed (`ip netns exec` hides /sys/fs/bpf). Each worker puts its own socket at its queue in
 * the XSKMAP and its ports in paste_ports. A worker that dies closes its socket, which removes it
 * from the XSKMAP: the others keep serving. The last one to close (no other process holds the
 * program) detaches it. Open and close run under an flock on a file per (network namespace,
 * ifindex) in /run/paste-xdp, so "am I the last" and "is someone there" are never decided at the
 * same time by two workers; every fd is closed before the lock is released.
 */

#define LOCK_DIR "/run/paste-xdp"

static int lock_path(int ifindex, char *path, size_t n)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st))
		st.st_ino = 0;
	if (mkdir(LOCK_DIR, 0700) && errno != EEXIST)
		return paste_fail(-errno, "steering: cannot create %s: %s (run as root)", LOCK_DIR,
		                  strerror(errno));
	snprintf(path, n, LOCK_DIR "/steer-%lu-%d.lock", (unsigned long)st.st_ino, ifindex);
	return 0;
}

/* flock(LOCK_EX) on the interface's lock file; retried if it was unlinked meanwhile. */
static int lock_iface(int ifindex)
{
	char path[128];
	struct stat a, b;
	int fd, err = lock_path(ifindex, path, sizeof(path));

	while (!err) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return paste_fail(-errno, "steering: cannot open the lock file %s: %s",
			                  path, strerror(errno));
		if (flock(fd, LOCK_EX)) {
			err = paste_fail(-errno, "steering: cannot lock %s: %s", path,
			                 strerror(errno));
			close(fd);
			return err;
		}
		if (!fstat(fd, &a) && !stat(path, &b) && a.st_ino == b.st_ino)
			return fd;
		close(fd); /* the last worker removed it while we waited: take the new one */
	}
	return err;
}

static void unlock_iface(int fd, int ifindex, bool remove)
{
	char path[128];

	if (remove && !lock_path(ifindex, path, sizeof(path)))
		unlink(path);
	close(fd);
}

/* The map fds of program @prog_fd, by name. */
static int adopt_maps(struct paste_steer *s, __u32 nmaps, const __u32 *ids)
{
	struct {
		const char *name;
		int *fd;
	} want[] = {{"paste_conf", &s->conf_fd},
	            {"paste_ports", &s->ports_fd},
	            {"paste_xsks", &s->xsks_fd},
	            {"paste_counters", &s->counters_fd}};

	for (__u32 i = 0; i < nmaps; i++) {
		struct bpf_map_info mi = {};
		__u32 len = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);
		bool kept = false;

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &mi, &len))
			for (unsigned w = 0; w < sizeof(want) / sizeof(want[0]); w++)
				if (*want[w].fd < 0 && !strcmp(mi.name, want[w].name)) {
					*want[w].fd = fd;
					kept = true;
				}
		if (!kept)
			close(fd);
	}
	for (unsigned w = 0; w < sizeof(want) / sizeof(want[0]); w++)
		if (*want[w].fd < 0)
			return paste_fail(
			    -ENOENT,
			    "steering: the attached steering program has no map %s "
			    "(another libpaste-xdp version?): stop its processes first",
			    want[w].name);
	return 0;
}

/* Same address and mode as the program already there, or -EBUSY. */
static int check_same_conf(struct paste_steer *s)
{
	struct paste_steer_conf have = {}, want = {
	                                       .mode = s->cfg.shared_ip ? PASTE_STEER_SHARED
	                                                                : PASTE_STEER_DEDICATED,
	                                       .ip = s->cfg.ip,
	                                       .eph_lo = s->cfg.shared_ip ? s->cfg.eph_lo : 0,
	                                       .eph_hi = s->cfg.shared_ip ? s->cfg.eph_hi : 0,
	                                   };
	char ifn[IF_NAMESIZE + 16];
	__u32 key = 0;

	if (bpf_map_lookup_elem(s->conf_fd, &key, &have) || have.mode != want.mode ||
	    have.ip != want.ip || have.eph_lo != want.eph_lo || have.eph_hi != want.eph_hi)
		return paste_fail(-EBUSY,
		                  "%s is served by another libpaste-xdp process with a different "
		                  "address or IP mode: workers on one interface must use the same "
		                  "--ip/--shared-ip",
		                  paste_steer__ifname(s->cfg.ifindex, ifn));
	return 0;
}

/* Join program @id (attached in @mode_flag) that a running process holds. */
static int adopt(struct paste_steer *s, int prog_fd, __u32 mode_flag)
{
	__u32 ids[16], len;
	struct bpf_prog_info info = {};
	int err;

	s->adopted = true;
	s->prog_fd = prog_fd;
	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(unsigned long)ids;
	len = sizeof(info);
	err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
	if (err)
		return paste_fail(err, "steering: cannot read the attached program: %s",
		                  strerror(-err));
	err = adopt_maps(s, info.nr_map_ids < 16 ? info.nr_map_ids : 16, ids);
	if (!err)
		err = check_same_conf(s);
	if (err)
		return err;
	s->ncpus = libbpf_num_possible_cpus();
	s->percpu = s->ncpus > 0 ? calloc(s->ncpus, sizeof(*s->percpu)) : NULL;
	if (!s->percpu)
		return paste_fail(-ENOMEM, "steering: out of memory");
	s->attached = mode_flag == XDP_FLAGS_DRV_MODE ? XDP_MODE_NATIVE : XDP_MODE_SKB;
	pr_info("joined the steering program (id %u) other workers attached", info.id);
	return 0;
}

/* An fd to the program of ours attached to @ifindex that another running process holds, or 0. */
static int joinable(int ifindex, __u32 *mode_flag)
{
	struct bpf_prog_info info = {};
	__u32 id = 0, len = sizeof(info);
	int err, fd;

	err = paste_steer__attached_prog(ifindex, &id, mode_flag);
	if (err || !id)
		return err;
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return 0; /* gone meanwhile, or not ours to open: attach decides */
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) && paste_steer__is_ours(info.name) &&
	    paste_steer__prog_holder(id, SKIP_SELF))
		return fd;
	close(fd);
	return 0;
}

int paste_steer__open_shared(struct paste_steer **out, const struct paste_steer_cfg *cfg)
{
	struct paste_steer *s = NULL;
	__u32 mode_flag = 0;
	int err, lock, fd;

	if (out)
		*out = NULL;
	if (!out || !cfg || cfg->ifindex <= 0)
		return paste_fail(-EINVAL, "paste_steer__open_shared: invalid argument");
	lock = lock_iface(cfg->ifindex);
	if (lock < 0)
		return lock;
	fd = joinable(cfg->ifindex, &mode_flag);
	if (fd > 0) {
		err = paste_steer__check_cfg(cfg);
		s = err ? NULL : calloc(1, sizeof(*s));
		if (!err && !s)
			err = paste_fail(-ENOMEM, "steering: out of memory");
		if (s) {
			s->cfg = *cfg;
			s->conf_fd = s->ports_fd = s->xsks_fd = s->counters_fd = -1;
			err = adopt(s, fd, mode_flag);
		} else {
			close(fd);
		}
	} else {
		err = fd < 0 ? fd : paste_steer__open(&s, cfg);
		if (!err)
			err = paste_steer__attach(s);
	}
	if (err && s) {
		if (s->attached != XDP_MODE_UNSPEC && !s->adopted)
			paste_steer__detach(s);
		paste_steer__release(s);
		s = NULL;
	}
	unlock_iface(lock, cfg->ifindex, false);
	*out = s;
	return err;
}

int paste_steer__clear_xsk(struct paste_steer *s, uint32_t queue)
{
	int err;

	if (!s)
		return paste_fail(-EINVAL, "paste_steer__clear_xsk: NULL argument");
	err = bpf_map_delete_elem(s->xsks_fd, &queue);
	if (err && err != -ENOENT)
		return paste_fail(err, "steering: removing queue %u from the map failed: %s", queue,
		                  strerror(-err));
	return 0;
}

void paste_steer__close_shared(struct paste_steer **ps)
{
	struct paste_steer *s = ps ? *ps : NULL;
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	bool last = false;
	int lock, ifindex;

	if (!s)
		return;
	*ps = NULL;
	ifindex = s->cfg.ifindex;
	lock = lock_iface(ifindex);
	if (s->attached != XDP_MODE_UNSPEC && !bpf_obj_get_info_by_fd(s->prog_fd, &info, &len)) {
		last = !paste_steer__prog_holder(info.id, SKIP_SELF);
		if (last) /* nobody else serves this interface: no stale program */
			paste_steer__detach(s);
		else
			pr_debug("steering program left attached: other workers still use it");
	}
	paste_steer__release(s); /* every fd closed before the next worker looks */
	if (lock >= 0)
		unlock_iface(lock, ifindex, last);
}
