/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * steer.h - loading, configuring and attaching the XDP steering program (bpf/paste_steer.bpf.c).
 *
 * The BPF object is embedded in the library (bpf/CMakeLists.txt), opened from memory with libbpf
 * and attached with libxdp. libxdp's multi-program dispatcher does not work on every kernel (here:
 * freplace is refused), so attaching falls back to libxdp's single-program (legacy) mode. A program
 * of ours left attached by a killed process is recognised by name and replaced; someone else's is
 * never touched.
 */
#ifndef PASTE_STEER_H_USER
#define PASTE_STEER_H_USER

#include <stdbool.h>
#include <stdint.h>

#include <paste/paste.h>

struct paste_steer;

struct paste_steer_cfg {
	int ifindex;
	bool shared_ip;
	uint32_t ip;              /* network byte order */
	uint16_t eph_lo, eph_hi;  /* shared mode: the stack's ephemeral range (host order) */
	enum paste_xdp_mode mode; /* AUTO: native, then SKB */
};

/* Open the embedded object, load it, and fill the config map. Does not attach. */
int paste_steer__open(struct paste_steer **s, const struct paste_steer_cfg *cfg);
/* Attach to cfg.ifindex (after removing a stale program of ours). -EBUSY if a foreign one is there.
 */
int paste_steer__attach(struct paste_steer *s);
/*
 * Open, shared between the processes serving one interface (one per NIC queue): join the program
 * of ours another running process attached (same address and IP mode, else -EBUSY), or load and
 * attach one.
 */
int paste_steer__open_shared(struct paste_steer **s, const struct paste_steer_cfg *cfg);
/* Close a handle of paste_steer__open_shared(): detach only if no other process holds the
 * program; every fd is closed before the next worker looks. *s = NULL. */
void paste_steer__close_shared(struct paste_steer **s);
/* Take @queue's socket out of the XSK map (a closing worker). */
int paste_steer__clear_xsk(struct paste_steer *s, uint32_t queue);

/* Detach if attached, free everything, *s = NULL. */
void paste_steer__close(struct paste_steer **s);

/* Steer TCP to @port (host order) in shared mode (harmless in dedicated mode). */
int paste_steer__add_port(struct paste_steer *s, uint16_t port);
int paste_steer__del_port(struct paste_steer *s, uint16_t port);
/* Put an AF_XDP socket fd in the XSK map at @queue. */
int paste_steer__set_xsk(struct paste_steer *s, uint32_t queue, int xsk_fd);

int paste_steer__prog_fd(const struct paste_steer *s);
enum paste_xdp_mode paste_steer__attached_mode(const struct paste_steer *s);
/* Sum of the per-CPU counters (enum paste_steer_counter order); @n entries. */
int paste_steer__counters(const struct paste_steer *s, uint64_t *out, unsigned n);

/* Detach a program of ours attached to @ifindex, if any. @return 1 if one was removed, 0 if none,
 * -EBUSY if the attached program is not ours. */
int paste_steer__remove_stale(int ifindex);

#endif
