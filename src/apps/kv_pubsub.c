/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * kv_pubsub.c - PUBLISH, SUBSCRIBE and UNSUBSCRIBE on exact channel names: what Redis Sentinel
 * uses on a monitored primary (its "__sentinel__:hello" channel). Messages are not stored and
 * not replicated. A subscribed connection may still run any command (Redis allows only the
 * subscribe family, PING and QUIT there); PSUBSCRIBE (patterns) is not implemented.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "kv_primary.h"

static int sub_index(const struct kv_pconn *pc, const uint8_t *ch, size_t n)
{
	for (unsigned i = 0; i < pc->nchans; i++)
		if (strlen(pc->chans[i]) == n && !memcmp(pc->chans[i], ch, n))
			return (int)i;
	return -1;
}

static int reply_sub(struct kconn *kc, const char *kind, const void *ch, size_t n, unsigned count)
{
	return out_str(kc, "*3\r\n") || out_value(kc, (const uint8_t *)kind, strlen(kind)) ||
	               (ch ? out_value(kc, ch, n) : out_str(kc, "$-1\r\n")) ||
	               out_hdr(kc, ':', count)
	           ? -ENOMEM
	           : 0;
}

int cmd_subscribe(struct req *r)
{
	struct kv_pconn *pc = kv_primary_pconn(r->d, r->kc);

	if (!pc)
		return out_err(r->kc, "ERR out of memory");
	if (r->queued)
		return out_err(r->kc, "ERR SUBSCRIBE isn't allowed for a DENY BLOCKING client");
	for (unsigned i = 1; i < r->cmd->argc; i++) {
		const uint8_t *ch = arg(r, i);
		size_t n = arg_len(r, i);

		if (!ch || memchr(ch, 0, n))
			return out_err(r->kc, "ERR channel name not supported");
		if (sub_index(pc, ch, n) < 0) {
			char **v = realloc(pc->chans, (pc->nchans + 1) * sizeof(*v));
			char *c = malloc(n + 1);

			if (v)
				pc->chans = v;
			if (!v || !c) {
				free(c);
				return out_err(r->kc, "ERR out of memory");
			}
			memcpy(c, ch, n);
			c[n] = 0;
			pc->chans[pc->nchans++] = c;
		}
		if (reply_sub(r->kc, "subscribe", ch, n, pc->nchans))
			return -ENOMEM;
	}
	return 0;
}

int cmd_unsubscribe(struct req *r)
{
	struct kv_pconn *pc = kv_primary_pconn(r->d, r->kc);

	if (!pc)
		return out_err(r->kc, "ERR out of memory");
	if (r->cmd->argc == 1) { /* all of them */
		if (!pc->nchans)
			return reply_sub(r->kc, "unsubscribe", NULL, 0, 0);
		while (pc->nchans) {
			char *c = pc->chans[--pc->nchans];
			int err = reply_sub(r->kc, "unsubscribe", c, strlen(c), pc->nchans);

			free(c);
			if (err)
				return err;
		}
		return 0;
	}
	for (unsigned i = 1; i < r->cmd->argc; i++) {
		const uint8_t *ch = arg(r, i);
		size_t n = arg_len(r, i);
		int k = ch ? sub_index(pc, ch, n) : -1;

		if (k >= 0) {
			free(pc->chans[k]);
			pc->chans[k] = pc->chans[--pc->nchans];
		}
		if (reply_sub(r->kc, "unsubscribe", ch, n, pc->nchans))
			return -ENOMEM;
	}
	return 0;
}

/* PUBLISH channel message: delivered to the subscribers' output now; :receivers. */
int cmd_publish(struct req *r)
{
	size_t npc, cn = arg_len(r, 1), mn = arg_len(r, 2);
	struct kv_pconn **pcs = kv_primary_pconns(r->d, &npc);
	const uint8_t *ch = arg(r, 1);
	const uint8_t *msg = ch ? arg(r, 2) : NULL;
	int64_t got = 0;

	if (!ch || !msg)
		return out_err(r->kc, "ERR out of memory");
	for (size_t i = 0; i < npc; i++) {
		struct kconn *kc = pcs[i]->kc;

		if (kc->closing || sub_index(pcs[i], ch, cn) < 0)
			continue;
		/* copies: the subscriber's output may outlive this round's received bytes */
		if (out_str(kc, "*3\r\n$7\r\nmessage\r\n") || out_hdr(kc, '$', (int64_t)cn) ||
		    out(kc, ch, cn) || out(kc, "\r\n", 2) || out_hdr(kc, '$', (int64_t)mn) ||
		    out(kc, msg, mn) || out(kc, "\r\n", 2))
			continue;
		if (kc != r->kc)
			flush_out(r->d, kc->c, kc);
		got++;
	}
	return out_hdr(r->kc, ':', got);
}
