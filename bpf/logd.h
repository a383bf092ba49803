/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * logd.h - what paste-logd's XDP program (bpf/logd.bpf.c) and paste-logd (src/apps/paste-logd*.c)
 * agree on: map layouts, the verdict the program leaves in front of every frame (XDP metadata),
 * and the counters. Included by both BPF and user space: fixed-width types from <linux/types.h>.
 */
#ifndef PASTE_LOGD_BPF_H
#define PASTE_LOGD_BPF_H

#include <linux/types.h>

#define LOGD_PROG_NAME  "logd_xdp" /* how a stale program of ours is recognised */
#define LOGD_MAX_QUEUES 64
#define LOGD_MAX_RULES  8

/* Selection modes (logd_conf.mode). */
enum logd_mode {
	LOGD_SEL_ALL = 0,   /* every frame is logged */
	LOGD_SEL_RULES = 1, /* IPv4 frames matching any rule are logged */
	LOGD_SEL_NONE = 2,  /* nothing is logged (plain forwarding) */
};

/* Value of map logd_conf (ARRAY, one entry). Side 0 is --in, side 1 is --out. */
struct logd_conf {
	__u32 mode;      /* enum logd_mode */
	__u32 nrules;    /* rules in logd_rules used (RULES mode) */
	__u32 ifindex_a; /* ifindex of side 0: frames from it go to XSK slot queue, else 64+queue */
	__u32 redirect;  /* benchmark baseline: XDP_REDIRECT to the other interface (logd_devs) */
};

/*
 * One selection rule (map logd_rules, ARRAY of LOGD_MAX_RULES). A frame matches when every field
 * set matches: proto (0 = any IP protocol), the source or destination address under mask (mask 0 =
 * any), the source or destination port (0 = any; TCP and UDP only). Network byte order for addr
 * and mask, host order for port.
 */
struct logd_rule {
	__u32 addr;
	__u32 mask;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

/* The verdict, written by the program into the frame's XDP metadata (just before the frame). */
#define LOGD_META_MAGIC 0x4c4f4744u /* "LOGD" */
enum logd_verdict {
	LOGD_V_PASS = 0,      /* forward without logging */
	LOGD_V_LOG = 1,       /* log, then forward */
	LOGD_V_MALFORMED = 2, /* headers inconsistent with the frame: --malformed decides */
};
struct logd_meta {
	__u32 verdict;
	__u32 magic; /* last: it sits right before the frame */
};

/* Keys of map logd_counters (PERCPU_ARRAY of __u64). */
enum logd_counter {
	LOGD_CNT_SEEN = 0,  /* frames the program ran on */
	LOGD_CNT_SELECTED,  /* verdict LOG */
	LOGD_CNT_MALFORMED, /* verdict MALFORMED */
	LOGD_CNT_NO_META,   /* metadata unsupported: user space logs the frame (safe side) */
	LOGD_CNT_NO_SOCKET, /* no socket for this interface/queue: dropped */
	LOGD_CNT_MAX,
};

#endif /* PASTE_LOGD_BPF_H */
