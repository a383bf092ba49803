/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_cluster_map.c - the static slot map of paste-kv's cluster mode: one file, the same on every
 * node, naming each node (id, address, port) and the slot ranges it serves.
 *
 *   # comment
 *   node ID ADDRESS PORT RANGE...
 *
 * ID: 40 hex digits, unique. ADDRESS: a numeric IPv4 or IPv6 address clients reach the node at
 * (it is what MOVED and CLUSTER SLOTS/NODES/SHARDS tell them). PORT: 1-65535. RANGE: a slot
 * (0-16383) or FIRST-LAST. No slot may be named twice; slots nobody serves get -CLUSTERDOWN.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_cluster.h"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static bool parse_num(const char *s, const char *end, unsigned long max, unsigned long *v)
{
	unsigned long x = 0;

	if (s == end)
		return false;
	for (; s < end; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		x = x * 10 + (unsigned long)(*s - '0');
		if (x > max)
			return false;
	}
	*v = x;
	return true;
}

static int add_range(struct kv_cluster *cl, unsigned ni, const char *tok, const char *path,
                     unsigned line, char *err, size_t errlen)
{
	const char *dash = strchr(tok, '-');
	const char *end = tok + strlen(tok);
	unsigned long a, b;

	if (!parse_num(tok, dash ? dash : end, KV_SLOTS - 1, &a) ||
	    !parse_num(dash ? dash + 1 : tok, end, KV_SLOTS - 1, &b) || b < a)
		return fail(err, errlen, -EINVAL,
		            "%s:%u: bad slot range '%s' (a slot 0-16383 or FIRST-LAST with "
		            "FIRST <= LAST)",
		            path, line, tok);
	for (unsigned long s = a; s <= b; s++) {
		if (cl->owner[s] >= 0)
			return fail(
			    err, errlen, -EINVAL,
			    "%s:%u: slot %lu is already served by node %s (line %u): each slot "
			    "belongs to one node",
			    path, line, s, cl->nodes[cl->owner[s]].id,
			    cl->nodes[cl->owner[s]].line);
		cl->owner[s] = (int16_t)ni;
		cl->nodes[ni].nslots++;
		cl->served++;
	}
	return 0;
}

/* One "node ID ADDRESS PORT RANGE..." line, already split into @tok[0..ntok). */
static int add_node(struct kv_cluster *cl, char **tok, unsigned ntok, const char *path,
                    unsigned line, char *err, size_t errlen)
{
	struct kv_cl_node *nn, *n;
	unsigned char addr[16];
	unsigned long port;
	size_t idlen = strlen(tok[1]);
	int rc;

	if (ntok < 4)
		return fail(err, errlen, -EINVAL,
		            "%s:%u: expected 'node ID ADDRESS PORT [RANGE...]'", path, line);
	if (idlen != KV_NODE_ID || strspn(tok[1], "0123456789abcdefABCDEF") != KV_NODE_ID)
		return fail(
		    err, errlen, -EINVAL,
		    "%s:%u: node id '%s' is not 40 hex digits (Redis Cluster's node id form; "
		    "e.g. 'echo node1 | sha1sum')",
		    path, line, tok[1]);
	if (strlen(tok[2]) >= KV_CL_MAXADDR ||
	    (inet_pton(AF_INET, tok[2], addr) != 1 && inet_pton(AF_INET6, tok[2], addr) != 1))
		return fail(err, errlen, -EINVAL,
		            "%s:%u: '%s' is not a numeric IPv4 or IPv6 address (clients connect to "
		            "it after a MOVED: no host names)",
		            path, line, tok[2]);
	if (!parse_num(tok[3], tok[3] + strlen(tok[3]), 65535, &port) || !port)
		return fail(err, errlen, -EINVAL, "%s:%u: bad port '%s' (1-65535)", path, line,
		            tok[3]);
	for (unsigned i = 0; i < cl->n; i++) {
		if (!strcasecmp(cl->nodes[i].id, tok[1]))
			return fail(err, errlen, -EINVAL, "%s:%u: node id %s is also on line %u",
			            path, line, tok[1], cl->nodes[i].line);
		if (!strcmp(cl->nodes[i].ip, tok[2]) && cl->nodes[i].port == port)
			return fail(err, errlen, -EINVAL, "%s:%u: %s port %lu is also on line %u",
			            path, line, tok[2], port, cl->nodes[i].line);
	}
	if (cl->n >= INT16_MAX)
		return fail(err, errlen, -E2BIG, "%s:%u: too many nodes", path, line);
	nn = realloc(cl->nodes, (cl->n + 1) * sizeof(*nn));
	if (!nn)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", path);
	cl->nodes = nn;
	n = &nn[cl->n];
	memset(n, 0, sizeof(*n));
	for (size_t i = 0; i < KV_NODE_ID; i++)
		n->id[i] = (char)tolower((unsigned char)tok[1][i]);
	snprintf(n->ip, sizeof(n->ip), "%s", tok[2]);
	n->port = (uint16_t)port;
	n->line = line;
	cl->n++;
	for (unsigned i = 4; i < ntok; i++) {
		rc = add_range(cl, cl->n - 1, tok[i], path, line, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

static int find_self(struct kv_cluster *cl, const char *self_id, const char *ip, uint16_t port,
                     char *err, size_t errlen)
{
	int found = -1;

	for (unsigned i = 0; i < cl->n; i++) {
		const struct kv_cl_node *n = &cl->nodes[i];
		bool match = self_id ? !strcasecmp(n->id, self_id)
		                     : n->port == port && (!ip || !strcmp(n->ip, ip));

		if (!match)
			continue;
		if (found >= 0)
			return fail(err, errlen, -EINVAL,
			            "%s: lines %u and %u both match this node (port %u%s%s): give "
			            "--cluster-id ID",
			            cl->path, cl->nodes[found].line, n->line, port,
			            ip ? ", address " : "", ip ? ip : "");
		found = (int)i;
	}
	if (found < 0) {
		if (self_id)
			return fail(err, errlen, -ENOENT,
			            "%s: no node has the id %s (--cluster-id)", cl->path, self_id);
		return fail(
		    err, errlen, -ENOENT,
		    "%s: no node line has port %u%s%s: this node must be in the map (or give "
		    "--cluster-id ID)",
		    cl->path, port, ip ? " and address " : "", ip ? ip : "");
	}
	cl->self = found;
	return 0;
}

int kv_cluster_load(struct kv_cluster *cl, const char *path, const char *self_id, const char *ip,
                    uint16_t port, char *err, size_t errlen)
{
	char buf[4096];
	unsigned line = 0;
	FILE *f;
	int rc = 0;

	memset(cl, 0, sizeof(*cl));
	memset(cl->owner, 0xff, sizeof(cl->owner)); /* -1 */
	snprintf(cl->path, sizeof(cl->path), "%s", path);
	f = fopen(path, "r");
	if (!f)
		return fail(err, errlen, -errno, "cannot open the cluster config %s: %s", path,
		            strerror(errno));
	while (!rc && fgets(buf, sizeof(buf), f)) {
		char *tok[1024], *save = NULL, *t, *hash = strchr(buf, '#');
		unsigned ntok = 0;

		line++;
		if (!strchr(buf, '\n') && !feof(f)) {
			rc = fail(err, errlen, -EINVAL,
			          "%s:%u: line longer than %zu bytes (split the node's ranges over "
			          "fewer, wider ranges)",
			          path, line, sizeof(buf) - 2);
			break;
		}
		if (hash)
			*hash = 0;
		for (t = strtok_r(buf, " \t\r\n", &save); t && ntok < 1024;
		     t = strtok_r(NULL, " \t\r\n", &save))
			tok[ntok++] = t;
		if (!ntok)
			continue;
		if (strcmp(tok[0], "node"))
			rc = fail(
			    err, errlen, -EINVAL,
			    "%s:%u: unknown word '%s' (lines are 'node ID ADDRESS PORT RANGE...' "
			    "or '# comment')",
			    path, line, tok[0]);
		else
			rc = add_node(cl, tok, ntok, path, line, err, errlen);
	}
	fclose(f);
	if (!rc && !cl->n)
		rc = fail(err, errlen, -EINVAL, "%s: no 'node' line", path);
	if (!rc)
		rc = find_self(cl, self_id, ip, port, err, errlen);
	if (rc)
		kv_cluster_free(cl);
	return rc;
}

void kv_cluster_free(struct kv_cluster *cl)
{
	free(cl->nodes);
	cl->nodes = NULL;
	cl->n = 0;
}
