/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * steer_priv.h - what steer.c (one program, one process) shares with steer_share.c (one program
 * joined by the processes serving the queues of one interface). Private to those two files.
 */
#ifndef PASTE_STEER_PRIV_H
#define PASTE_STEER_PRIV_H

#include <stdbool.h>
#include <net/if.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "steer.h"

struct paste_steer {
	struct paste_steer_cfg cfg;
	struct bpf_object *obj;  /* owns the program and map fds */
	struct xdp_program *xdp; /* libxdp's handle on the loaded program (its own fd) */
	int prog_fd;
	int conf_fd, ports_fd, xsks_fd, counters_fd;
	int ncpus;                     /* libbpf_num_possible_cpus() */
	__u64 *percpu;                 /* ncpus values: buffer for per-CPU counter reads */
	enum xdp_attach_mode attached; /* XDP_MODE_UNSPEC while not attached */
	bool adopted;                  /* joined a program another process attached: no obj */
};

#define SKIP_SELF (-2) /* for paste_steer__prog_holder's @skip_fd: none of this process's fds */

const char *paste_steer__ifname(int ifindex, char buf[IF_NAMESIZE + 16]);
bool paste_steer__is_ours(const char *prog_name);
int paste_steer__check_cfg(const struct paste_steer_cfg *cfg);
/* The XDP program attached to @ifindex: id (0 if none) and its mode flag (XDP_FLAGS_*_MODE). */
int paste_steer__attached_prog(int ifindex, __u32 *id, __u32 *mode_flag);
/* A process holding program @prog_id open (not counting @skip_fd of ours, or SKIP_SELF), or 0. */
long paste_steer__prog_holder(__u32 prog_id, int skip_fd);
/* Detach our program from the interface (only if it is still the one attached). */
void paste_steer__detach(struct paste_steer *s);
/* Free everything without detaching. */
void paste_steer__release(struct paste_steer *s);

#endif
