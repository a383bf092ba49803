/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * netif.c - the lwIP network interface over the AF_XDP socket.
 *
 * RX: each received frame becomes a pbuf_custom (PBUF_REF) whose payload is the frame itself in the
 * pool, and goes to ethernet_input(): lwIP's TCP reassembles in place, so the payload the
 * application gets still lies in the frame the kernel wrote. The pbuf's free callback hands the
 * frame back to the allocator (RX -> FREE); the event loop moves free frames to the fill ring in
 * batches. TX: linkoutput copies the (small, lwIP-allocated) outgoing pbuf chain into a TX frame;
 * lwIP computes every IPv4/TCP checksum in software, so frames leave complete (a veth peer
 * validates them).
 *
 * Address modes: in dedicated-IP mode lwIP owns the address and does ARP (netif->output is
 * etharp_output). In shared-IP mode the kernel owns the address and answers ARP, so lwIP must never
 * ARP: netif->output resolves the next hop from a table learned from received frames (the source
 * MAC of a peer's frame is the next hop back to it), then the kernel's neighbour table, and calls
 * ethernet_output() directly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lwip/etharp.h>
#include <lwip/init.h>
#include <lwip/ip4_addr.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/tcp.h>
#include <lwip/timeouts.h>
#include <netif/ethernet.h>

#include "ptransport.h"

/* lwIP keeps global state: it is initialised once per process, and one context uses it at a time
 * (see paste.h). */
static bool lwip_inited, lwip_in_use;

static void rxbuf_free(struct pbuf *p)
{
	struct paste_rxbuf *rb = (struct paste_rxbuf *)p;
	struct paste_netif *nif = rb->nif;
	uint32_t idx = (uint32_t)(rb - nif->rxbufs);

	if (rb->detached) { /* a connection holds the frame now (ptransport.c, take_piece) */
		rb->detached = false;
		return;
	}
	/* RX -> FREE, or only drop the pbuf's hold on a frame the application kept. */
	paste_frames__rx_done(nif->frames, idx); /* prints if accounting is broken */
}

struct pbuf *paste_netif__wrap(struct paste_netif *nif, uint32_t idx, uint8_t *data, uint32_t len)
{
	struct paste_rxbuf *rb = &nif->rxbufs[idx];

	rb->nif = nif;
	rb->detached = false;
	rb->pc.custom_free_function = rxbuf_free;
	return pbuf_alloced_custom(PBUF_RAW, (u16_t)len, PBUF_REF, &rb->pc, data, (u16_t)len);
}

/* Remember which MAC the peer at the frame's source IPv4 address sits behind (its next hop). */
static void neigh_learn(struct paste_netif *nif, const uint8_t *frame, uint32_t len)
{
	uint32_t ip, h, i;

	if (len < 14 + 20 || frame[12] != 0x08 || frame[13] != 0x00)
		return;
	memcpy(&ip, frame + 14 + 12, 4);
	h = (ntohl(ip) * 2654435761u) & (PASTE_NEIGH_SLOTS - 1);
	for (i = 0; i < 8; i++) {
		struct paste_neigh *n = &nif->neigh[(h + i) & (PASTE_NEIGH_SLOTS - 1)];

		if (n->ip == ip || n->ip == 0 || i == 7) {
			n->ip = ip;
			memcpy(n->mac, frame + 6, 6);
			return;
		}
	}
}

/* The TCP header of @f if it is an IPv4 TCP segment (not a fragment) with SYN and without ACK or
 * RST, with *@ipp set to its IP header; else NULL. */
static const uint8_t *bare_syn(const uint8_t *f, uint32_t len, const uint8_t **ipp)
{
	const uint8_t *ip = f + 14, *th;
	uint32_t ihl;

	if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00)
		return NULL;
	if ((ip[0] >> 4) != 4 || ip[9] != IP_PROTO_TCP || (ip[6] & 0x3f) || ip[7])
		return NULL; /* not IPv4 TCP, or a fragment */
	ihl = (ip[0] & 0x0fu) * 4u;
	if (ihl < 20 || len < 14 + ihl + 20)
		return NULL;
	th = ip + ihl;
	if ((th[13] & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
		return NULL;
	*ipp = ip;
	return th;
}

/*
 * A SYN for a 4-tuple that lwIP still holds in TIME-WAIT. That happens whenever the server closed
 * first (HTTP "Connection: close", QUIT, timeouts): the client keeps no TIME-WAIT then and may
 * reuse its port at once, but lwIP keeps the 4-tuple for 2 MSL (120 s in Debian's build) and
 * answers a SYN there with an ACK or a reset, so the client's connect() stalls or is refused
 * until it expires (measured: 260 of 300 "Connection: close" connections over 64 client ports).
 * Like Linux without timestamps (RFC 1122 4.2.2.13), a SYN whose sequence number lies beyond
 * the old connection's ends the TIME-WAIT, and the listener takes the SYN.
 */
static void tw_recycle(struct paste_netif *nif, const uint8_t *ip, const uint8_t *th)
{
	uint32_t src, dst, seq;
	uint16_t sport, dport;
	struct tcp_pcb *pcb;

	if (!tcp_tw_pcbs || (th[13] & TCP_FIN))
		return;
	memcpy(&src, ip + 12, 4);
	memcpy(&dst, ip + 16, 4);
	sport = (uint16_t)(th[0] << 8 | th[1]);
	dport = (uint16_t)(th[2] << 8 | th[3]);
	seq = (uint32_t)th[4] << 24 | (uint32_t)th[5] << 16 | (uint32_t)th[6] << 8 | th[7];
	for (pcb = tcp_tw_pcbs; pcb; pcb = pcb->next) {
		if (pcb->remote_port != sport || pcb->local_port != dport ||
		    !IP_IS_V4(&pcb->remote_ip) || ip_2_ip4(&pcb->remote_ip)->addr != src ||
		    ip_2_ip4(&pcb->local_ip)->addr != dst)
			continue;
		if (TCP_SEQ_GT(seq, pcb->rcv_nxt)) {
			tcp_abort(pcb); /* a TIME-WAIT pcb is just freed: no reset, no callback */
			nif->st->tw_recycled++;
		}
		return;
	}
}

/*
 * Half-open connections. Debian's lwIP (TCP_LISTEN_BACKLOG 0) keeps a SYN_RCVD pcb for every SYN
 * to a listening port, for TCP_SYN_RCVD_TIMEOUT (20 s), on its one list of active pcbs, and
 * matches each segment against that list in order. Under a SYN flood every new SYN walks all the
 * earlier ones and the slow timer retransmits SYN-ACKs to all of them: 100,000 spoofed SYNs at
 * 10,000/s (test_hostile) held ~100,000 pcbs, took the server's CPU, overflowed the RX ring and
 * stalled established connections for over 10 s. So at most nif->syn_backlog SYN_RCVD pcbs are
 * held: past that, before a new SYN to a listener reaches lwIP, the older half of them are dropped
 * without a reset (a flood's sources are spoofed). The list is newest first (lwIP pushes new
 * pcbs at its front and moves a pcb that receives a segment there), so a real client, whose ACK
 * follows its SYN within a round trip, is established long before its pcb is among the older
 * half; a flood ages out instead of locking new clients out for 20 s. Counting walks the list, so
 * it runs only when the SYNs admitted since the last count may have filled the backlog: at most
 * once per syn_backlog / 2 SYNs.
 */
static bool syn_to_listener(const uint8_t *th)
{
	uint16_t dport = (uint16_t)(th[2] << 8 | th[3]);
	struct tcp_pcb_listen *l;

	for (l = tcp_listen_pcbs.listen_pcbs; l; l = l->next)
		if (l->local_port == dport)
			return true;
	return false;
}

static void syn_admit(struct paste_netif *nif, const uint8_t *th)
{
	struct tcp_pcb *pcb, *next;
	uint32_t n = 0, keep = nif->syn_backlog / 2;

	if (!syn_to_listener(th))
		return;
	if (nif->syn_room) {
		nif->syn_room--;
		return;
	}
	for (pcb = tcp_active_pcbs; pcb; pcb = next) {
		next = pcb->next;
		if (pcb->state != SYN_RCVD || ++n <= keep)
			continue;
		tcp_abandon(pcb, 0); /* no errf before accept: no callback */
		nif->st->syn_evicted++;
	}
	nif->syn_room = nif->syn_backlog - (n < keep ? n : keep) - 1; /* - 1: this SYN */
}

/*
 * An IPv4 packet whose source no peer can have: this stack's own address, loopback (127/8),
 * "this network" (0/8), multicast or limited broadcast. Linux drops these as martians; lwIP does
 * not, and its answer to its own address goes to netif_loop_output(), which in Debian's
 * multi-threaded build posts to a tcpip thread this process does not run and aborts. One spoofed
 * SYN from "ourselves" would kill the daemon, so such frames never reach lwIP.
 */
static bool martian_source(const struct paste_netif *nif, const uint8_t *f, uint32_t len)
{
	uint32_t src;

	if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4)
		return false;
	memcpy(&src, f + 14 + 12, 4);
	src = ntohl(src);
	return src == ntohl(nif->ip) || (src >> 24) == 127 || (src >> 24) == 0 ||
	       (src >> 28) == 0xe || src == 0xffffffffu;
}

void paste_netif__input(struct paste_netif *nif, uint32_t idx, uint8_t *data, uint32_t len)
{
	const uint8_t *ip, *th;
	struct pbuf *p;

	if (len < 14 || len > 0xffff || martian_source(nif, data, len)) {
		nif->st->rx_invalid++;
		paste_frames__move(nif->frames, idx, PASTE_FRAME_RX, PASTE_FRAME_FREE);
		return;
	}
	neigh_learn(nif, data, len);
	th = bare_syn(data, len, &ip);
	if (th) {
		tw_recycle(nif, ip, th);
		syn_admit(nif, th);
	}
	p = paste_netif__wrap(nif, idx, data, len);
	/* ethernet_input always consumes p (frees it on error). */
	ethernet_input(p, &nif->netif);
}

static void copy_pbuf(const void *p, uint8_t *dst)
{
	pbuf_copy_partial(p, dst, ((const struct pbuf *)p)->tot_len, 0);
}

static err_t netif_linkoutput(struct netif *netif, struct pbuf *p)
{
	struct paste_netif *nif = netif->state;

	if (paste_xsk__tx(nif->xsk, p->tot_len, copy_pbuf, p)) {
		nif->st->tx_dropped++;
		return ERR_MEM;
	}
	return ERR_OK;
}

/* Kernel neighbour table (of this network namespace), for a next hop we have not heard from. */
static bool neigh_kernel(const struct paste_netif *nif, uint32_t ip, uint8_t mac[6])
{
	char line[256], ipbuf[INET_ADDRSTRLEN], want[INET_ADDRSTRLEN], dev[IFNAMSIZ + 1];
	unsigned m[6], flags;
	bool found = false;
	FILE *f = fopen("/proc/net/arp", "r");

	if (!f)
		return false;
	inet_ntop(AF_INET, &ip, want, sizeof(want));
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%15s %*s %x %x:%x:%x:%x:%x:%x %*s %16s", ipbuf, &flags, &m[0],
		           &m[1], &m[2], &m[3], &m[4], &m[5], dev) != 9)
			continue;
		if (strcmp(ipbuf, want) || strcmp(dev, nif->ifname) || !(flags & 0x2))
			continue;
		for (int i = 0; i < 6; i++)
			mac[i] = (uint8_t)m[i];
		found = true;
	}
	fclose(f);
	return found;
}

/* Next hop learned from a received frame (see neigh_learn), or false. */
static bool neigh_lookup(const struct paste_netif *nif, uint32_t ip, struct eth_addr *to)
{
	uint32_t h = (ntohl(ip) * 2654435761u) & (PASTE_NEIGH_SLOTS - 1);

	for (uint32_t i = 0; i < 8; i++) {
		const struct paste_neigh *n = &nif->neigh[(h + i) & (PASTE_NEIGH_SLOTS - 1)];

		if (n->ip == ip) {
			memcpy(to->addr, n->mac, 6);
			return true;
		}
	}
	return false;
}

void paste_netif__neigh_probe(struct paste_netif *nif, uint32_t ip)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = ip};
	struct eth_addr to;
	int fd;

	if (neigh_lookup(nif, ip, &to) || neigh_kernel(nif, ip, to.addr))
		return;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, nif->ifname, (socklen_t)strlen(nif->ifname));
	sendto(fd, "", 0, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof(a));
	close(fd);
}

static err_t netif_output_shared(struct netif *netif, struct pbuf *p, const ip4_addr_t *dst)
{
	struct paste_netif *nif = netif->state;
	uint32_t ip = ip4_addr_get_u32(dst);
	struct eth_addr to;

	if (neigh_lookup(nif, ip, &to) || neigh_kernel(nif, ip, to.addr))
		return ethernet_output(netif, p, (struct eth_addr *)netif->hwaddr, &to, ETHTYPE_IP);
	nif->st->tx_dropped++;
	return ERR_RTE;
}

/*
 * Dedicated IP: answer a peer at the MAC its own frames came from, and ARP (lwIP) only for peers
 * never heard from. lwIP's ARP table has 10 entries in Debian's build; a flood of SYNs from spoofed
 * addresses would otherwise evict the real clients' entries and stall their connections.
 */
static err_t netif_output_dedicated(struct netif *netif, struct pbuf *p, const ip4_addr_t *dst)
{
	struct paste_netif *nif = netif->state;
	struct eth_addr to;

	if (neigh_lookup(nif, ip4_addr_get_u32(dst), &to))
		return ethernet_output(netif, p, (struct eth_addr *)netif->hwaddr, &to, ETHTYPE_IP);
	return etharp_output(netif, p, dst);
}

static err_t netif_init_cb(struct netif *netif)
{
	struct paste_netif *nif = netif->state;

	netif->name[0] = 'p';
	netif->name[1] = 'x';
	netif->mtu = (u16_t)nif->mtu;
	netif->hwaddr_len = 6;
	memcpy(netif->hwaddr, nif->mac, 6);
	netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHERNET | NETIF_FLAG_LINK_UP;
	if (!nif->shared_ip)
		netif->flags |= NETIF_FLAG_ETHARP;
	netif->linkoutput = netif_linkoutput;
	netif->output = nif->shared_ip ? netif_output_shared : netif_output_dedicated;
	return ERR_OK;
}

/* One pbuf descriptor per frame of the pool (paste_netif__wrap). */
static int netif_descs(struct paste_netif *nif)
{
	if (nif->rxbufs)
		return 0;
	nif->rxbufs = calloc(nif->frame_count, sizeof(*nif->rxbufs));
	if (!nif->rxbufs)
		return paste_fail(-ENOMEM, "out of memory for %u frame descriptors",
		                  nif->frame_count);
	return 0;
}

static int query_addr(struct paste_netif *nif)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (getifaddrs(&ifa))
		return paste_fail(-errno, "getifaddrs: %s", strerror(errno));
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    strcmp(i->ifa_name, nif->ifname))
			continue;
		nif->ip = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
		nif->netmask = ((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr;
		found = true;
	}
	freeifaddrs(ifa);
	if (!found)
		return paste_fail(
		    -EADDRNOTAVAIL,
		    "shared-IP mode: %s has no IPv4 address; give it one, or use a dedicated --ip",
		    nif->ifname);
	return 0;
}

int paste_netif__query(struct paste_netif *nif)
{
	struct ifreq ifr = {0};
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return paste_fail(-errno, "socket: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", nif->ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr)) {
		err = paste_fail(-errno, "reading the MAC address of %s: %s", nif->ifname,
		                 strerror(errno));
		goto out;
	}
	memcpy(nif->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(fd, SIOCGIFMTU, &ifr)) {
		err = paste_fail(-errno, "reading the MTU of %s: %s", nif->ifname, strerror(errno));
		goto out;
	}
	nif->mtu = (uint32_t)ifr.ifr_mtu;
	if (nif->mtu + 14 > nif->frame_size - 256) {
		err = paste_fail(
		    -EINVAL,
		    "%s has MTU %u, too large for %u-byte frames: lower the MTU or use 4096-byte frames",
		    nif->ifname, nif->mtu, nif->frame_size);
		goto out;
	}
	if (nif->query_addr)
		err = query_addr(nif);
	if (!err)
		err = netif_descs(nif);
out:
	close(fd);
	return err;
}

int paste_netif__open(struct paste_netif *nif)
{
	ip4_addr_t ip, mask, gw;
	unsigned seed;

	if (lwip_in_use)
		return paste_fail(
		    -EBUSY,
		    "one paste context per process: lwIP keeps global state (run one process per NIC queue)");
	/* lwIP draws initial sequence numbers and ports from rand(): seed it unpredictably. */
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	srand(seed);
	if (!lwip_inited)
		lwip_init();
	lwip_inited = true;
	if (!nif->rxbufs) {
		int err = netif_descs(nif);

		if (err)
			return err;
	}
	ip4_addr_set_u32(&ip, nif->ip);
	ip4_addr_set_u32(&mask, nif->netmask);
	ip4_addr_set_zero(&gw);
	if (!netif_add(&nif->netif, &ip, &mask, &gw, nif, netif_init_cb, ethernet_input))
		return paste_fail(-ENOMEM, "lwIP: netif_add failed");
	lwip_in_use = true;
	nif->added = true;
	netif_set_default(&nif->netif);
	netif_set_up(&nif->netif);
	netif_set_link_up(&nif->netif);
	/* ethernet_input() drops IPv4 on a netif without ETHARP. In shared-IP mode set it only now,
	 * after netif_set_up/link_up, so lwIP sends no gratuitous ARP for the kernel's address; its
	 * output never ARPs either (netif_output_shared). */
	nif->netif.flags |= NETIF_FLAG_ETHARP;
	return 0;
}

void paste_netif__close(struct paste_netif *nif)
{
	if (nif->added) {
		netif_set_down(&nif->netif);
		netif_remove(&nif->netif);
		nif->added = false;
		lwip_in_use = false;
	}
	free(nif->rxbufs);
	nif->rxbufs = NULL;
}
