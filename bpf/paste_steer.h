/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * paste_steer.h - what the XDP steering program (paste_steer.bpf.c) and the library (src/steer.c)
 * agree on: map names and value layouts. Included by both BPF and user space, so it uses only
 * fixed-width types from <linux/types.h>.
 */
#ifndef PASTE_STEER_H
#define PASTE_STEER_H

#include <linux/types.h>

#define PASTE_STEER_PROG_NAME  "paste_steer" /* how we recognise a stale program of ours */
#define PASTE_STEER_MAX_QUEUES 64
#define PASTE_STEER_MAX_PORTS  1024

enum paste_steer_mode {
	PASTE_STEER_OFF = 0,       /* not configured yet: pass everything */
	PASTE_STEER_DEDICATED = 1, /* all IPv4 to conf.ip, and ARP for it */
	PASTE_STEER_SHARED = 2,    /* only TCP to conf.ip on listening ports / ephemeral range */
};

/* Value of map paste_conf (BPF_MAP_TYPE_ARRAY, one entry, key 0). */
struct paste_steer_conf {
	__u32 mode;   /* enum paste_steer_mode */
	__u32 ip;     /* IPv4 address, network byte order */
	__u16 eph_lo; /* shared mode: ephemeral port range of the stack, host order, inclusive */
	__u16 eph_hi;
	__u32 pad;
};

/* Keys of map paste_counters (BPF_MAP_TYPE_PERCPU_ARRAY of __u64). */
enum paste_steer_counter {
	PASTE_CNT_STEERED = 0, /* redirected to the XSK map */
	PASTE_CNT_PASSED,      /* left to the kernel */
	PASTE_CNT_NO_SOCKET,   /* matched, but no socket on this queue: passed */
	PASTE_CNT_MAX,
};

/* Map paste_ports: BPF_MAP_TYPE_HASH, key __u16 port (host order), value __u8 (1). */
/* Map paste_xsks: BPF_MAP_TYPE_XSKMAP, key = rx_queue_index, PASTE_STEER_MAX_QUEUES entries. */

#endif /* PASTE_STEER_H */
