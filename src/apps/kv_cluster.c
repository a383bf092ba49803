/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_cluster.c - paste-kv's cluster mode (--cluster-config FILE): a static slot map, the same file
 * on every node (kv_cluster_map.c). Every command that names keys is checked before it runs or is
 * queued (cluster_redirect, called by dispatch()): keys of several slots get -CROSSSLOT, a slot of
 * another node -MOVED slot addr:port, a slot nobody serves -CLUSTERDOWN. The CLUSTER commands a
 * cluster-aware client or redis-cli --cluster uses (SLOTS, SHARDS, NODES, INFO, KEYSLOT, MYID,
 * COUNTKEYSINSLOT, GETKEYSINSLOT) answer in Redis 7's reply formats; ASKING, READONLY and
 * READWRITE are accepted. There is no gossip and no failover: the map changes only by editing the
 * file and restarting (docs/paste-kv.md, "Moving slots").
 *
 * Keys by slot: no per-slot index is kept (it would cost a hook in every insert and delete of the
 * store); COUNTKEYSINSLOT and GETKEYSINSLOT walk the key index and hash each key. Their cost is
 * one walk of the index (docs/paste-kv.md has the measurement); they are for tools, not the data
 * path.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "kv_cluster.h"

#define CROSSSLOT "-CROSSSLOT Keys in request don't hash to the same slot\r\n"

/* ---- startup ----------------------------------------------------------------------------------
 */

struct slot_walk {
	struct kvd *d;
	int slot;         /* -1: every slot */
	uint64_t max;     /* GETKEYSINSLOT: stop after this many */
	uint64_t n;       /* keys counted */
	bool collect;     /* add the keys to d->big */
	bool unowned;     /* count keys of slots other nodes serve */
	uint64_t *counts; /* unowned: per-node counts (the owner's index), or NULL */
};

/* One key of the index: in database 0, not expired, in the slot asked for. */
static int slot_fn(const struct paste_ref *key, const struct paste_ref *val, void *arg)
{
	struct slot_walk *w = arg;
	struct kvd *d = w->d;
	const uint8_t *p = paste_pool__ref_ptr(d->pool, key);
	uint8_t *full = NULL; /* a large key's bytes (its index key is a stand-in, kv_lkey.c) */
	const uint8_t *name;
	size_t nlen;
	struct str k;
	unsigned s;
	uint64_t dl;
	int rc = 0;

	(void)val;
	if (!p || !key_in(p, key->len, db_tag(0)))
		return 0;
	if (lkey_is(p, key->len)) {
		if (!(full = lkey_bytes(d, p, key->len, &nlen)))
			return 0; /* chunks missing: the startup sweep drops it */
		name = full;
	} else {
		name = p;
		nlen = key->len - 1;
	}
	s = kv_key_slot(name, nlen);
	if (w->unowned ? d->cl->owner[s] == d->cl->self : (w->slot >= 0 && (int)s != w->slot))
		goto out;
	k = (struct str){.p = p, .n = key->len};
	dl = ttl_get(d, &k);
	if (dl && dl <= d->now_ms)
		goto out;
	w->n++;
	if (w->unowned && w->counts && d->cl->owner[s] >= 0)
		w->counts[d->cl->owner[s]]++;
	if (w->collect && big_bulk(d, name, nlen))
		rc = -ENOMEM;
	else
		rc = w->n >= w->max ? 1 : 0;
out:
	free(full);
	return rc;
}

/* Read the map (before the pool is opened: a bad map costs nothing). */
int cluster_load(struct kvd *d)
{
	struct kv_cluster *cl;
	char err[512];
	int rc;

	if (!d->cluster_config)
		return 0;
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		fprintf(stderr, "paste-kv: out of memory for the cluster map\n");
		return -ENOMEM;
	}
	rc = kv_cluster_load(cl, d->cluster_config, d->cluster_id, d->d.paste.ip, d->d.port, err,
	                     sizeof(err));
	if (rc) {
		fprintf(stderr, "paste-kv: --cluster-config: %s\n", err);
		free(cl);
		return rc;
	}
	d->cl = cl;
	return 0;
}

/* Once the store is open: count the keys of slots other nodes serve (a moved slot's leftovers). */
int cluster_open(struct kvd *d)
{
	struct kv_cluster *cl = d->cl;
	struct slot_walk w = {.d = d, .max = UINT64_MAX, .unowned = true};
	uint64_t t0;

	if (!cl)
		return 0;
	w.counts = calloc(cl->n, sizeof(*w.counts));
	d->now_ms = wall_ms();
	t0 = mono_ns();
	if (paste_kv__iterate(d->kv, slot_fn, &w) < 0) {
		fprintf(stderr, "paste-kv: warning: could not count the keys of other nodes' slots "
		                "(out of memory); scripts/kv-slot-move finds them anyway\n");
		w.n = 0;
	}
	printf("paste-kv: cluster node=%s addr=%s:%u slots=%u nodes=%u slots_served=%u "
	       "keys_elsewhere=%" PRIu64 " walk_ms=%.1f\n",
	       cl->nodes[cl->self].id, cl->nodes[cl->self].ip, cl->nodes[cl->self].port,
	       cl->nodes[cl->self].nslots, cl->n, cl->served, w.n, (double)(mono_ns() - t0) / 1e6);
	if (cl->served < KV_SLOTS)
		fprintf(stderr,
		        "paste-kv: warning: %s serves %u of %u slots; commands on the others get "
		        "-CLUSTERDOWN\n",
		        cl->path, cl->served, KV_SLOTS);
	for (unsigned i = 0; w.n && w.counts && i < cl->n; i++)
		if (w.counts[i])
			fprintf(stderr,
			        "paste-kv: %" PRIu64
			        " keys here belong to slots node %s (%s:%u) serves now: move "
			        "them there with scripts/kv-slot-move (docs/paste-kv.md, \"Moving "
			        "slots\"); until then clients are sent to that node\n",
			        w.counts[i], cl->nodes[i].id, cl->nodes[i].ip, cl->nodes[i].port);
	free(w.counts);
	fflush(stdout);
	return 0;
}

void cluster_close(struct kvd *d)
{
	if (!d->cl)
		return;
	kv_cluster_free(d->cl);
	free(d->cl);
	d->cl = NULL;
}

/* ---- redirection: the hook in dispatch() ------------------------------------------------------
 */

/* The request was answered (an error): it must not run, whether or not the reply was queued. */
static int replied(int err)
{
	(void)err;
	return 1;
}

/*
 * Decide whether this node runs the request: returns 1 after replying an error (-CROSSSLOT,
 * -MOVED, -CLUSTERDOWN; inside MULTI the transaction is also flagged, so EXEC aborts, as Redis
 * does), 0 to run or queue it. Queued commands of several slots make EXEC reply -CROSSSLOT.
 */
int cluster_redirect(struct req *r)
{
	struct kvd *d = r->d;
	struct kconn *kc = r->kc;
	struct kv_cluster *cl = d->cl;
	const uint8_t *name = arg(r, 0);
	bool asking = kc->cl_asking;
	const struct command *c;
	int (*fn)(struct req *);
	int slot = -1, last, step;

	if (!cl || !name)
		return 0;
	c = find_command(name, arg_len(r, 0));
	if (!c || !arity_ok(c, r->cmd->argc))
		return 0;
	kc->cl_asking = false; /* ASKING covers the one command after it */
	fn = command_fn(c);
	if (fn == cmd_multi && !kc->multi) {
		kc->cl_slot1 = 0;
		kc->cl_cross = false;
		return 0;
	}
	if (fn == cmd_exec && kc->multi && kc->cl_cross && !kc->multi_err) {
		multi_abort(kc);
		return replied(out_str(kc, CROSSSLOT));
	}
	if (fn == cmd_select && !(arg_len(r, 1) == 1 && arg(r, 1) && arg(r, 1)[0] == '0'))
		return replied(out_err(kc, "ERR SELECT is not allowed in cluster mode"));
	if (c->first <= 0)
		return 0;
	last = c->last < 0 ? (int)r->cmd->argc + c->last : c->last;
	step = c->step > 0 ? c->step : 1;
	for (int i = c->first; i <= last && i < (int)r->cmd->argc; i += step) {
		const uint8_t *k = arg(r, (unsigned)i);
		int s;

		if (!k)
			return 0; /* the command replies its own error */
		s = (int)kv_key_slot(k, arg_len(r, (unsigned)i));
		if (slot >= 0 && s != slot) {
			if (kc->multi)
				kc->multi_err = true;
			return replied(out_str(kc, CROSSSLOT));
		}
		slot = s;
	}
	if (slot < 0)
		return 0;
	if (cl->owner[slot] != cl->self && !asking) {
		const struct kv_cl_node *o =
		    cl->owner[slot] >= 0 ? &cl->nodes[cl->owner[slot]] : NULL;

		if (kc->multi)
			kc->multi_err = true;
		d->cl_moved++;
		if (!o)
			return replied(out_str(kc, "-CLUSTERDOWN Hash slot not served\r\n"));
		return replied(out_err(kc, "MOVED %d %s:%u", slot, o->ip, o->port));
	}
	if (kc->multi) {
		if (!kc->cl_slot1)
			kc->cl_slot1 = slot + 1;
		else if (kc->cl_slot1 != slot + 1)
			kc->cl_cross = true;
	}
	return 0;
}

/* ---- CLUSTER ----------------------------------------------------------------------------------
 */

/* Calls @fn for each run of consecutive slots of node @node (-2: of any node), in slot order. */
static unsigned ranges(const struct kv_cluster *cl, int node,
                       void (*fn)(struct kvd *d, int owner, unsigned a, unsigned b), struct kvd *d)
{
	unsigned n = 0;

	for (unsigned s = 0; s < KV_SLOTS;) {
		int o = cl->owner[s];
		unsigned e = s;

		while (e + 1 < KV_SLOTS && cl->owner[e + 1] == o)
			e++;
		if (o >= 0 && (node == -2 || o == node)) {
			if (fn)
				fn(d, o, s, e);
			n++;
		}
		s = e + 1;
	}
	return n;
}

static void node_entry(struct kvd *d, const struct kv_cl_node *n)
{
	big_printf(d, "*4\r\n");
	big_bulk(d, n->ip, strlen(n->ip));
	big_printf(d, ":%u\r\n", n->port);
	big_bulk(d, n->id, KV_NODE_ID);
	big_printf(d, "*0\r\n");
}

static void slots_range(struct kvd *d, int owner, unsigned a, unsigned b)
{
	big_printf(d, "*3\r\n:%u\r\n:%u\r\n", a, b);
	node_entry(d, &d->cl->nodes[owner]);
}

static void shard_range(struct kvd *d, int owner, unsigned a, unsigned b)
{
	(void)owner;
	big_printf(d, ":%u\r\n:%u\r\n", a, b);
}

static void nodes_range(struct kvd *d, int owner, unsigned a, unsigned b)
{
	(void)owner;
	if (a == b)
		big_printf(d, " %u", a);
	else
		big_printf(d, " %u-%u", a, b);
}

static int reply_big(struct kconn *kc, struct kvd *d, char type, int64_t n)
{
	return out_hdr(kc, type, n) || out(kc, d->big, d->big_len) ||
	               (type == '$' && out(kc, "\r\n", 2))
	           ? -ENOMEM
	           : 0;
}

static int cluster_slots(struct req *r)
{
	struct kvd *d = r->d;

	d->big_len = 0;
	return reply_big(r->kc, d, '*', ranges(d->cl, -2, slots_range, d));
}

static int cluster_shards(struct req *r)
{
	struct kvd *d = r->d;
	const struct kv_cluster *cl = d->cl;

	d->big_len = 0;
	for (unsigned i = 0; i < cl->n; i++) {
		const struct kv_cl_node *n = &cl->nodes[i];

		big_printf(d, "*4\r\n$5\r\nslots\r\n*%u\r\n", 2 * ranges(cl, (int)i, NULL, d));
		ranges(cl, (int)i, shard_range, d);
		big_printf(d, "$5\r\nnodes\r\n*1\r\n*14\r\n$2\r\nid\r\n");
		big_bulk(d, n->id, KV_NODE_ID);
		big_printf(d, "$4\r\nport\r\n:%u\r\n$2\r\nip\r\n", n->port);
		big_bulk(d, n->ip, strlen(n->ip));
		big_printf(d, "$8\r\nendpoint\r\n");
		big_bulk(d, n->ip, strlen(n->ip));
		big_printf(d, "$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:0\r\n"
		              "$6\r\nhealth\r\n$6\r\nonline\r\n");
	}
	return reply_big(r->kc, d, '*', cl->n);
}

static int cluster_nodes(struct req *r)
{
	struct kvd *d = r->d;
	const struct kv_cluster *cl = d->cl;
	uint64_t now = wall_ms();

	d->big_len = 0;
	for (unsigned i = 0; i < cl->n; i++) {
		const struct kv_cl_node *n = &cl->nodes[i];
		bool me = (int)i == cl->self;

		/* id addr:port@cport flags master ping-sent pong-recv config-epoch link slots */
		big_printf(d, "%s %s:%u@%u %s - 0 %" PRIu64 " %u connected", n->id, n->ip, n->port,
		           n->port <= 55535 ? n->port + 10000u : 0u,
		           me ? "myself,master" : "master", me ? (uint64_t)0 : now, i + 1);
		ranges(cl, (int)i, nodes_range, d);
		big_printf(d, "\n");
	}
	return reply_big(r->kc, d, '$', (int64_t)d->big_len);
}

static int cluster_info(struct req *r)
{
	struct kvd *d = r->d;
	const struct kv_cluster *cl = d->cl;
	unsigned size = 0;

	for (unsigned i = 0; i < cl->n; i++)
		size += cl->nodes[i].nslots > 0;
	d->big_len = 0;
	big_printf(d,
	           "cluster_state:%s\r\ncluster_slots_assigned:%u\r\ncluster_slots_ok:%u\r\n"
	           "cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:%u\r\n"
	           "cluster_size:%u\r\ncluster_current_epoch:%u\r\ncluster_my_epoch:%d\r\n"
	           "cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n"
	           "total_cluster_links_buffer_limit_exceeded:0\r\n",
	           cl->served == KV_SLOTS ? "ok" : "fail", cl->served, cl->served, cl->n, size,
	           cl->n, cl->self + 1);
	return reply_big(r->kc, d, '$', (int64_t)d->big_len);
}

static int cluster_keys(struct req *r, bool get)
{
	struct kvd *d = r->d;
	struct slot_walk w = {.d = d, .max = UINT64_MAX, .collect = get};
	int64_t slot, max = 0;

	if (!arg_ll(r, 2, &slot) || (get && !arg_ll(r, 3, &max)))
		return out_err(r->kc, "ERR value is not an integer or out of range");
	if (get && (slot < 0 || slot >= KV_SLOTS || max < 0))
		return out_err(r->kc, "ERR Invalid slot or number of keys");
	if (slot < 0 || slot >= KV_SLOTS)
		return out_err(r->kc, "ERR Invalid slot");
	w.slot = (int)slot;
	if (get)
		w.max = (uint64_t)max;
	d->big_len = 0;
	if (w.max && paste_kv__iterate(d->kv, slot_fn, &w) < 0)
		return out_err(r->kc, "ERR out of memory");
	if (!get)
		return out_hdr(r->kc, ':', (int64_t)w.n);
	return reply_big(r->kc, d, '*', (int64_t)w.n);
}

int cmd_cluster(struct req *r)
{
	struct kvd *d = r->d;
	unsigned argc = r->cmd->argc;
	const uint8_t *a;

	if (!d->cl)
		return out_err(r->kc, "ERR This instance has cluster support disabled");
	if (arg_is(r, 1, "SLOTS") && argc == 2)
		return cluster_slots(r);
	if (arg_is(r, 1, "SHARDS") && argc == 2)
		return cluster_shards(r);
	if (arg_is(r, 1, "NODES") && argc == 2)
		return cluster_nodes(r);
	if (arg_is(r, 1, "INFO") && argc == 2)
		return cluster_info(r);
	if (arg_is(r, 1, "MYID") && argc == 2)
		return out_value(r->kc, (const uint8_t *)d->cl->nodes[d->cl->self].id, KV_NODE_ID);
	if (arg_is(r, 1, "KEYSLOT") && argc == 3) {
		a = arg(r, 2);
		if (!a)
			return out_err(r->kc, "ERR request too large");
		return out_hdr(r->kc, ':', kv_key_slot(a, arg_len(r, 2)));
	}
	if (arg_is(r, 1, "COUNTKEYSINSLOT") && argc == 3)
		return cluster_keys(r, false);
	if (arg_is(r, 1, "GETKEYSINSLOT") && argc == 4)
		return cluster_keys(r, true);
	a = arg(r, 1);
	if (arg_is(r, 1, "SETSLOT") || arg_is(r, 1, "ADDSLOTS") || arg_is(r, 1, "DELSLOTS") ||
	    arg_is(r, 1, "MEET") || arg_is(r, 1, "FORGET") || arg_is(r, 1, "FAILOVER") ||
	    arg_is(r, 1, "REPLICATE") || arg_is(r, 1, "RESET") || arg_is(r, 1, "ADDSLOTSRANGE") ||
	    arg_is(r, 1, "DELSLOTSRANGE") || arg_is(r, 1, "FLUSHSLOTS"))
		return out_err(
		    r->kc,
		    "ERR CLUSTER %.*s is not supported: paste-kv's slot map is the static "
		    "file %s (docs/paste-kv.md, \"Moving slots\")",
		    (int)(arg_len(r, 1) < 32 ? arg_len(r, 1) : 32), (const char *)a, d->cl->path);
	return out_err(r->kc, "ERR unknown subcommand '%.*s'. Try CLUSTER HELP.",
	               (int)(arg_len(r, 1) < 128 ? arg_len(r, 1) : 128), a ? (const char *)a : "");
}

/* ASKING: the next command runs here whatever its slot (Redis allows it for an importing slot;
 * paste-kv has no importing state: this is what the offline slot move uses to reach keys of
 * slots the map gave to another node). READONLY/READWRITE: no replicas, nothing changes. */
int cmd_asking(struct req *r)
{
	if (!r->d->cl)
		return out_err(r->kc, "ERR This instance has cluster support disabled");
	if (arg_is(r, 0, "ASKING"))
		r->kc->cl_asking = true;
	return out_str(r->kc, "+OK\r\n");
}

void info_cluster(struct kvd *d)
{
	big_printf(d, "# Cluster\r\ncluster_enabled:%d\r\n", d->cl ? 1 : 0);
	if (d->cl)
		big_printf(d,
		           "cluster_config:%s\r\ncluster_myid:%s\r\ncluster_my_slots:%u\r\n"
		           "cluster_redirects:%" PRIu64 "\r\n",
		           d->cl->path, d->cl->nodes[d->cl->self].id,
		           d->cl->nodes[d->cl->self].nslots, d->cl_moved);
	big_printf(d, "\r\n");
}
