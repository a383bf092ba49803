/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_cluster.h - paste-kv's cluster mode: the static slot map (kv_cluster_map.c), the key hash
 * (kv_crc16.c), and the CLUSTER commands and redirections (kv_cluster.c). docs/paste-kv.md,
 * "Cluster mode", has the file format and the story.
 */
#ifndef PASTE_KV_CLUSTER_H
#define PASTE_KV_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#define KV_SLOTS      16384
#define KV_NODE_ID    40 /* node ids are 40 hex digits, as Redis Cluster's */
#define KV_CL_MAXADDR 46 /* INET6_ADDRSTRLEN */

struct kv_cl_node {
	char id[KV_NODE_ID + 1];
	char ip[KV_CL_MAXADDR];
	uint16_t port;
	unsigned line; /* where the file names it (messages) */
	unsigned nslots;
};

struct kv_cluster {
	struct kv_cl_node *nodes;
	unsigned n;
	int self;                /* index of this node in nodes[] */
	int16_t owner[KV_SLOTS]; /* node index serving each slot, -1: none */
	unsigned served;         /* slots with an owner */
	char path[256];
};

uint16_t kv_crc16(const uint8_t *p, size_t n);
unsigned kv_key_slot(const uint8_t *k, size_t n);

/*
 * Read the slot map at @path and find this node in it: the entry whose id is @self_id if given,
 * else the one whose port is @port (and, if @ip is given, whose address is @ip). On error returns
 * a negative errno with a message naming the file, the line and what to fix in @err.
 */
int kv_cluster_load(struct kv_cluster *cl, const char *path, const char *self_id, const char *ip,
                    uint16_t port, char *err, size_t errlen);
void kv_cluster_free(struct kv_cluster *cl);

#endif
