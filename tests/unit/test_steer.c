/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_steer.c - src/steer.c and bpf/paste_steer.bpf.c.
 *
 * Part 1 runs the loaded program on hand-built frames with BPF_PROG_TEST_RUN and checks the verdict
 * and which per-CPU counter moved: with no socket in the XSK map, a frame the program wants to
 * steer is counted NO_SOCKET and a frame it leaves to the kernel is counted PASSED, so the counters
 * tell "matched" from "not matched". Both address modes, every rule, truncated and odd frames.
 *
 * Part 2 attaches to a veth pair in a private network namespace (unshare(CLONE_NEWNET)): native and
 * SKB mode, real frames into a real AF_XDP socket, a program left behind by a killed process (a
 * child that attaches and exits without cleanup), a program still held by a running process, a
 * foreign program (never touched: -EBUSY), one program shared by two processes (joined, another
 * address refused, the last to close detaches), libxdp's and libbpf's messages kept off stderr.
 * Every test's teardown asserts that nothing is left attached to the interface.
 *
 * Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for unshare); skips otherwise.
 */
#define _GNU_SOURCE /* unshare, O_TMPFILE */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include "internal.h"
#include "paste_steer.h"
#include "steer.h"

#define OUR_IP   "10.77.0.3"
#define OTHER_IP "10.77.0.9"
#define PORT     8080
#define EPH_LO   49152
#define EPH_HI   65535
#define IF0      "pst0" /* the stack's side of the veth pair */
#define IF1      "pst1" /* the peer, where test frames are sent from */

/* ---- captured messages -------------------------------------------------------------------- */

static char logbuf[1 << 16];
static size_t loglen;
static unsigned nwarn; /* ERROR + WARN messages since the last log_reset() */

static void capture(enum paste_log_level level, const char *msg, void *user)
{
	int n = snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "%s\n", msg);

	if (n > 0)
		loglen +=
		    (size_t)n < sizeof(logbuf) - loglen ? (size_t)n : sizeof(logbuf) - loglen - 1;
	if (level <= PASTE_LOG_WARN)
		nwarn++;
	if (getenv("PASTE_TEST_VERBOSE"))
		printf("  [%d] %s\n", level, msg); /* stdout: one test watches stderr */
}

static void log_reset(void)
{
	loglen = 0;
	logbuf[0] = 0;
	nwarn = 0;
}

static void assert_logged(const char *text)
{
	if (!strstr(logbuf, text))
		fail_msg("expected a message containing \"%s\"; got:\n%s", text, logbuf);
}

/* ---- frames ------------------------------------------------------------------------------- */

struct frame {
	uint8_t b[256];
	size_t len;
};

static uint32_t ip(const char *s)
{
	return inet_addr(s);
}

static uint8_t *put_eth(struct frame *f, uint16_t proto)
{
	static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x01}, src[6] = {0x02, 0, 0, 0, 0, 0x02};

	memset(f, 0, sizeof(*f));
	memcpy(f->b, dst, 6);
	memcpy(f->b + 6, src, 6);
	f->b[12] = proto >> 8;
	f->b[13] = proto & 0xff;
	f->len = ETH_HLEN;
	return f->b + ETH_HLEN;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

/* ARP for IPv4 over Ethernet, asking (op 1) or telling (op 2) about target address @tpa. */
static void arp(struct frame *f, const char *tpa, uint16_t op)
{
	uint8_t *a = put_eth(f, ETH_P_ARP);
	uint32_t t = ip(tpa), sp = ip("10.77.0.1");

	put16(a, 1);            /* hardware: Ethernet */
	put16(a + 2, ETH_P_IP); /* protocol: IPv4 */
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, f->b + 6, 6); /* sender MAC */
	memcpy(a + 14, &sp, 4);
	memcpy(a + 24, &t, 4);
	f->len += 28;
}

/*
 * IPv4 to @dst with protocol @proto, header length @ihl words (options are NOPs) and frag_off @frag
 * (host order, flags included); then a TCP (20 bytes), UDP or ICMP (8 bytes) header to @dport.
 * Returns the start of the options, for tests that want to put something there.
 */
static uint8_t *ipv4(struct frame *f, uint8_t proto, const char *dst, unsigned ihl, uint16_t frag,
                     uint16_t dport)
{
	uint8_t *h = put_eth(f, ETH_P_IP), *l4 = h + ihl * 4;
	uint32_t d = ip(dst), s = ip("10.77.0.1");
	size_t l4len = proto == IPPROTO_TCP ? 20 : 8;

	h[0] = 0x40 | ihl;
	put16(h + 2, ihl * 4 + l4len);
	put16(h + 6, frag);
	h[8] = 64;
	h[9] = proto;
	memcpy(h + 12, &s, 4);
	memcpy(h + 16, &d, 4);
	memset(h + 20, 1, ihl * 4 - 20); /* IP option NOP */
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		put16(l4, 40000);
		put16(l4 + 2, dport);
	} else {
		l4[0] = 8; /* ICMP echo request */
	}
	if (proto == IPPROTO_TCP)
		l4[12] = 5 << 4; /* data offset */
	f->len += ihl * 4 + l4len;
	return h + 20;
}

static void tcp(struct frame *f, const char *dst, uint16_t dport)
{
	ipv4(f, IPPROTO_TCP, dst, 5, 0, dport);
}

static void ipv6(struct frame *f)
{
	uint8_t *h = put_eth(f, ETH_P_IPV6);

	h[0] = 0x60;
	put16(h + 4, 20);
	h[6] = IPPROTO_TCP;
	h[7] = 64;
	h[24] = 0xfd; /* destination fd00::... */
	put16(h + 40 + 2, PORT);
	f->len += 40 + 20;
}

/* ---- running the program ------------------------------------------------------------------ */

static void counters(struct paste_steer *s, uint64_t c[PASTE_CNT_MAX])
{
	assert_int_equal(paste_steer__counters(s, c, PASTE_CNT_MAX), 0);
}

/* Run @f through the program @repeat times; the verdict, and each counter's change in @delta. */
static int run(struct paste_steer *s, const struct frame *f, unsigned repeat,
               uint64_t delta[PASTE_CNT_MAX])
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f->b, .data_size_in = f->len,
	            .repeat = repeat);
	uint64_t before[PASTE_CNT_MAX], after[PASTE_CNT_MAX];

	counters(s, before);
	assert_int_equal(bpf_prog_test_run_opts(paste_steer__prog_fd(s), &opts), 0);
	counters(s, after);
	for (int i = 0; i < PASTE_CNT_MAX; i++)
		delta[i] = after[i] - before[i];
	return opts.retval;
}

static void expect(struct paste_steer *s, const struct frame *f, int action,
                   enum paste_steer_counter which, const char *what)
{
	static const char *const names[] = {"STEERED", "PASSED", "NO_SOCKET"};
	uint64_t d[PASTE_CNT_MAX];
	int verdict = run(s, f, 1, d);

	if (verdict != action)
		fail_msg("%s: verdict %d, expected %d", what, verdict, action);
	for (int i = 0; i < PASTE_CNT_MAX; i++)
		if (d[i] != (i == (int)which))
			fail_msg("%s: counter %s moved by %llu, expected %d (%s counted)", what,
			         names[i], (unsigned long long)d[i], i == (int)which, names[which]);
}

/* Matched: the program wanted to steer it, but no socket is on queue 0 (unit tests insert none). */
#define MATCHED(s, f, what) expect(s, f, XDP_PASS, PASTE_CNT_NO_SOCKET, what)
#define PASSED(s, f, what)  expect(s, f, XDP_PASS, PASTE_CNT_PASSED, what)

/* An fd for the program's map called @name (closed by the caller). */
static int map_of(struct paste_steer *s, const char *name)
{
	__u32 ids[8], len = sizeof(struct bpf_prog_info);
	struct bpf_prog_info info = {.nr_map_ids = 8, .map_ids = (uintptr_t)ids};

	assert_int_equal(bpf_obj_get_info_by_fd(paste_steer__prog_fd(s), &info, &len), 0);
	for (__u32 i = 0; i < info.nr_map_ids && i < 8; i++) {
		struct bpf_map_info mi = {};
		__u32 mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		assert_true(fd >= 0);
		assert_int_equal(bpf_obj_get_info_by_fd(fd, &mi, &mlen), 0);
		if (!strcmp(mi.name, name))
			return fd;
		close(fd);
	}
	fail_msg("no map %s", name);
	return -1;
}

/* ---- part 1: the program's rules (BPF_PROG_TEST_RUN) -------------------------------------- */

static struct paste_steer *open_steer(bool shared, int ifindex, enum paste_xdp_mode mode)
{
	struct paste_steer_cfg cfg = {
	    .ifindex = ifindex,
	    .shared_ip = shared,
	    .ip = ip(OUR_IP),
	    .eph_lo = shared ? EPH_LO : 0,
	    .eph_hi = shared ? EPH_HI : 0,
	    .mode = mode,
	};
	struct paste_steer *s = NULL;

	assert_int_equal(paste_steer__open(&s, &cfg), 0);
	assert_non_null(s);
	return s;
}

static int setup_dedicated(void **state)
{
	log_reset();
	*state = open_steer(false, 0, PASTE_XDP_AUTO);
	return 0;
}

static int setup_shared(void **state)
{
	log_reset();
	*state = open_steer(true, 0, PASTE_XDP_AUTO);
	assert_int_equal(paste_steer__add_port(*state, PORT), 0);
	return 0;
}

static int teardown_steer(void **state)
{
	struct paste_steer *s = *state;

	paste_steer__close(&s);
	assert_null(s);
	return 0;
}

static void test_open_fills_conf(void **state)
{
	struct paste_steer *s = *state, *sh;
	struct paste_steer_conf conf;
	__u32 key = 0;
	int fd;

	fd = map_of(s, "paste_conf");
	assert_int_equal(bpf_map_lookup_elem(fd, &key, &conf), 0);
	assert_int_equal(conf.mode, PASTE_STEER_DEDICATED);
	assert_int_equal(conf.ip, ip(OUR_IP));
	close(fd);

	sh = open_steer(true, 0, PASTE_XDP_AUTO);
	fd = map_of(sh, "paste_conf");
	assert_int_equal(bpf_map_lookup_elem(fd, &key, &conf), 0);
	assert_int_equal(conf.mode, PASTE_STEER_SHARED);
	assert_int_equal(conf.ip, ip(OUR_IP));
	assert_int_equal(conf.eph_lo, EPH_LO);
	assert_int_equal(conf.eph_hi, EPH_HI);
	close(fd);
	paste_steer__close(&sh);
	assert_int_equal(paste_steer__attached_mode(s), PASTE_XDP_AUTO); /* not attached */
	assert_true(paste_steer__prog_fd(s) >= 0);
}

static void test_dedicated_arp(void **state)
{
	struct paste_steer *s = *state;
	struct frame f;

	arp(&f, OUR_IP, 1);
	MATCHED(s, &f, "ARP request for our IP");
	arp(&f, OUR_IP, 2);
	MATCHED(s, &f, "ARP reply for our IP");
	arp(&f, OTHER_IP, 1);
	PASSED(s, &f, "ARP request for another IP");
	arp(&f, OUR_IP, 1);
	f.b[ETH_HLEN + 4] = 8; /* hardware address length 8: not Ethernet ARP */
	PASSED(s, &f, "ARP with a bad hardware address length");
	arp(&f, OUR_IP, 1);
	f.len--; /* target address cut short */
	PASSED(s, &f, "truncated ARP for our IP");
}

static void test_dedicated_ipv4(void **state)
{
	struct paste_steer *s = *state;
	struct frame f;

	tcp(&f, OUR_IP, PORT);
	MATCHED(s, &f, "TCP to our IP");
	tcp(&f, OUR_IP, 22);
	MATCHED(s, &f, "TCP to our IP, any port");
	ipv4(&f, IPPROTO_UDP, OUR_IP, 5, 0, 53);
	MATCHED(s, &f, "UDP to our IP");
	ipv4(&f, IPPROTO_ICMP, OUR_IP, 5, 0, 0);
	MATCHED(s, &f, "ICMP to our IP");
	ipv4(&f, IPPROTO_TCP, OUR_IP, 5, 185, PORT);
	MATCHED(s, &f, "a later fragment to our IP (dedicated: all IPv4)");
	tcp(&f, OTHER_IP, PORT);
	PASSED(s, &f, "TCP to another IP");
	ipv4(&f, IPPROTO_ICMP, OTHER_IP, 5, 0, 0);
	PASSED(s, &f, "ICMP to another IP");
	ipv6(&f);
	PASSED(s, &f, "IPv6");
	tcp(&f, OUR_IP, PORT);
	f.b[ETH_HLEN] = 0x65; /* version 6 in an IPv4 ethertype */
	PASSED(s, &f, "bad IP version");
	tcp(&f, OUR_IP, PORT);
	f.b[ETH_HLEN] = 0x44; /* IHL 4: shorter than the fixed header */
	PASSED(s, &f, "IHL < 5");
}

static void test_truncated(void **state)
{
	static const size_t lens[] = {14, 20, 33};
	struct paste_steer *s = *state;
	struct frame f;

	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		tcp(&f, OUR_IP, PORT); /* would match if it were whole */
		f.len = lens[i];
		PASSED(s, &f, "truncated IPv4 frame");
	}
	arp(&f, OUR_IP, 1);
	f.len = 20;
	PASSED(s, &f, "truncated ARP frame");
}

static void test_shared_ports(void **state)
{
	struct paste_steer *s = *state;
	struct frame f;

	tcp(&f, OUR_IP, PORT);
	MATCHED(s, &f, "TCP to a listening port");
	tcp(&f, OUR_IP, PORT + 1);
	PASSED(s, &f, "TCP to another port");
	tcp(&f, OUR_IP, 22);
	PASSED(s, &f, "TCP to ssh");
	tcp(&f, OUR_IP, EPH_LO);
	MATCHED(s, &f, "TCP to the first ephemeral port");
	tcp(&f, OUR_IP, 50000);
	MATCHED(s, &f, "TCP into the ephemeral range");
	tcp(&f, OUR_IP, EPH_HI);
	MATCHED(s, &f, "TCP to the last ephemeral port");
	tcp(&f, OUR_IP, EPH_LO - 1);
	PASSED(s, &f, "TCP just below the ephemeral range");
	tcp(&f, OTHER_IP, PORT);
	PASSED(s, &f, "TCP to a listening port of another IP");
	tcp(&f, OUR_IP, PORT);
	f.len -= 1; /* TCP header cut short */
	PASSED(s, &f, "truncated TCP header");
}

static void test_shared_other_protocols(void **state)
{
	struct paste_steer *s = *state;
	struct frame f;

	ipv4(&f, IPPROTO_UDP, OUR_IP, 5, 0, PORT);
	PASSED(s, &f, "UDP to our IP, listening port number");
	ipv4(&f, IPPROTO_ICMP, OUR_IP, 5, 0, 0);
	PASSED(s, &f, "ICMP to our IP");
	arp(&f, OUR_IP, 1);
	PASSED(s, &f, "ARP for our IP (the kernel answers in shared mode)");
	ipv6(&f);
	PASSED(s, &f, "IPv6");
}

static void test_shared_del_port(void **state)
{
	struct paste_steer *s = *state;
	struct frame f;

	assert_int_equal(paste_steer__add_port(s, 9000), 0);
	tcp(&f, OUR_IP, 9000);
	MATCHED(s, &f, "TCP to a port just added");
	assert_int_equal(paste_steer__del_port(s, 9000), 0);
	PASSED(s, &f, "TCP to a port just removed");
	tcp(&f, OUR_IP, PORT);
	MATCHED(s, &f, "TCP to a port still listening");
	assert_int_equal(paste_steer__del_port(s, PORT), 0);
	PASSED(s, &f, "TCP to the last port, removed");
	assert_int_equal(paste_steer__del_port(s, PORT), -ENOENT);
	assert_int_equal(paste_steer__add_port(s, PORT), 0);
	assert_int_equal(paste_steer__add_port(s, PORT), 0); /* twice: still one entry */
	MATCHED(s, &f, "TCP to a port added back");
}

static void test_shared_ip_options(void **state)
{
	struct paste_steer *s = *state;
	uint8_t *opt;
	struct frame f;

	ipv4(&f, IPPROTO_TCP, OUR_IP, 6, 0, PORT);
	MATCHED(s, &f, "IHL 6, TCP to a listening port");
	/* Options bytes that read as port 8080 if the TCP header were taken at offset 20. */
	opt = ipv4(&f, IPPROTO_TCP, OUR_IP, 6, 0, PORT + 1);
	put16(opt + 2, PORT);
	PASSED(s, &f, "IHL 6, TCP to another port (options look like a listening port)");
	ipv4(&f, IPPROTO_TCP, OUR_IP, 15, 0, PORT);
	MATCHED(s, &f, "IHL 15 (40 bytes of options)");
	ipv4(&f, IPPROTO_TCP, OUR_IP, 15, 0, PORT);
	f.len -= 20; /* the options are there, the TCP header is not */
	PASSED(s, &f, "IHL 15, TCP header missing");
}

static void test_shared_fragments(void **state)
{
	struct paste_steer *s = *state;
	struct frame f;

	ipv4(&f, IPPROTO_TCP, OUR_IP, 5, 0x4000, PORT); /* DF */
	MATCHED(s, &f, "DF set, not a fragment");
	ipv4(&f, IPPROTO_TCP, OUR_IP, 5, 0x2000, PORT); /* MF, offset 0 */
	MATCHED(s, &f, "first fragment");
	ipv4(&f, IPPROTO_TCP, OUR_IP, 5, 185, PORT); /* offset 1480, last */
	PASSED(s, &f, "last fragment (bytes look like a TCP header to a listening port)");
	ipv4(&f, IPPROTO_TCP, OUR_IP, 5, 0x2000 | 1, PORT);
	PASSED(s, &f, "middle fragment");
}

static void test_mode_off(void **state)
{
	struct paste_steer *s = *state;
	struct paste_steer_conf conf;
	struct frame f;
	__u32 key = 0;
	int fd = map_of(s, "paste_conf");

	assert_int_equal(bpf_map_lookup_elem(fd, &key, &conf), 0);
	conf.mode = PASTE_STEER_OFF;
	assert_int_equal(bpf_map_update_elem(fd, &key, &conf, BPF_ANY), 0);
	tcp(&f, OUR_IP, PORT);
	PASSED(s, &f, "mode OFF: TCP to our IP");
	arp(&f, OUR_IP, 1);
	PASSED(s, &f, "mode OFF: ARP for our IP");
	conf.mode = PASTE_STEER_DEDICATED;
	assert_int_equal(bpf_map_update_elem(fd, &key, &conf, BPF_ANY), 0);
	MATCHED(s, &f, "mode back to DEDICATED: ARP for our IP");
	close(fd);
}

static void test_counters_sum(void **state)
{
	struct paste_steer *s = *state;
	uint64_t d[PASTE_CNT_MAX], c[PASTE_CNT_MAX + 2];
	struct frame f;

	tcp(&f, OUR_IP, PORT);
	assert_int_equal(run(s, &f, 7, d), XDP_PASS);
	assert_int_equal(d[PASTE_CNT_NO_SOCKET], 7);
	assert_int_equal(d[PASTE_CNT_STEERED], 0);
	memset(c, 0xff, sizeof(c));
	assert_int_equal(paste_steer__counters(s, c, PASTE_CNT_MAX + 2), 0);
	assert_true(c[PASTE_CNT_NO_SOCKET] >= 7);
	assert_int_equal(c[PASTE_CNT_MAX], 0); /* beyond the known counters: zeroed */
	assert_int_equal(c[PASTE_CNT_MAX + 1], 0);
}

static void test_bad_arguments(void **state)
{
	struct paste_steer_cfg cfg = {.ip = ip(OUR_IP)};
	struct paste_steer *s = *state, *t = (void *)1;
	int pfd[2];

	assert_int_equal(paste_steer__open(NULL, &cfg), -EINVAL);
	assert_int_equal(paste_steer__open(&t, NULL), -EINVAL);
	assert_null(t);
	cfg.ip = 0;
	assert_int_equal(paste_steer__open(&t, &cfg), -EINVAL);
	cfg =
	    (struct paste_steer_cfg){.ip = ip(OUR_IP), .shared_ip = true, .eph_lo = 2, .eph_hi = 1};
	assert_int_equal(paste_steer__open(&t, &cfg), -EINVAL);
	cfg = (struct paste_steer_cfg){.ip = ip(OUR_IP), .mode = 7};
	assert_int_equal(paste_steer__open(&t, &cfg), -EINVAL);
	assert_null(t);
	assert_int_equal(paste_steer__attach(s), -EINVAL); /* ifindex 0: nowhere to attach */
	assert_int_equal(paste_steer__add_port(s, 0), -EINVAL);
	assert_int_equal(paste_steer__set_xsk(s, PASTE_STEER_MAX_QUEUES, 3), -EINVAL);
	assert_int_equal(paste_steer__set_xsk(s, 0, -1), -EINVAL);
	assert_int_equal(pipe(pfd), 0);
	assert_true(paste_steer__set_xsk(s, 0, pfd[0]) < 0); /* not an AF_XDP socket */
	assert_non_null(strstr(paste_last_error(), "queue 0"));
	close(pfd[0]);
	close(pfd[1]);
	assert_int_equal(paste_steer__counters(s, NULL, 1), -EINVAL);
	paste_steer__close(NULL);
	t = NULL;
	paste_steer__close(&t);
}

static void test_ports_full(void **state)
{
	struct paste_steer *s = *state;
	uint16_t p;

	for (p = 1; p <= PASTE_STEER_MAX_PORTS; p++)
		assert_int_equal(paste_steer__add_port(s, p), 0);
	assert_int_equal(paste_steer__add_port(s, p), -ENOSPC);
	assert_int_equal(paste_steer__add_port(s, 1), 0); /* an existing one: still fine */
	assert_int_equal(paste_steer__del_port(s, 1), 0);
	assert_int_equal(paste_steer__add_port(s, p), 0); /* room again */
}

/* ---- part 2: attaching (veth pair in a private network namespace) ------------------------- */

static int if0; /* ifindex of IF0 */

static __u32 attached_id(__u8 *mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	assert_int_equal(bpf_xdp_query(if0, 0, &q), 0);
	if (mode)
		*mode = q.attach_mode;
	return q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id;
}

static __u32 prog_id_of(int prog_fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	assert_int_equal(bpf_obj_get_info_by_fd(prog_fd, &info, &len), 0);
	return info.id;
}

static int setup_netns(void **state)
{
	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return -1;
	}
	if (system("ip link add " IF0 " type veth peer name " IF1 " && ip link set " IF0
	           " up && ip link set " IF1 " up"))
		return -1;
	if0 = if_nametoindex(IF0);
	return if0 > 0 ? 0 : -1;
}

static int setup_attach(void **state)
{
	log_reset();
	assert_int_equal(attached_id(NULL), 0);
	*state = NULL;
	return 0;
}

/* Close what the test left open, then: nothing may remain attached. */
static int teardown_attach(void **state)
{
	struct paste_steer *s = *state;

	paste_steer__close(&s);
	if (attached_id(NULL)) {
		fprintf(stderr, "a program was left attached to " IF0 "\n");
		bpf_xdp_detach(if0, XDP_FLAGS_DRV_MODE, NULL);
		bpf_xdp_detach(if0, XDP_FLAGS_SKB_MODE, NULL);
		return -1;
	}
	return 0;
}

/* BPF program fds open in this process: the same after a close as before the open. */
static int prog_fds(void)
{
	char target[32];
	struct dirent *de;
	int n = 0;
	DIR *d = opendir("/proc/self/fd");

	assert_non_null(d);
	while ((de = readdir(d))) {
		ssize_t len = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);

		if (len > 0 && (target[len] = 0, !strcmp(target, "anon_inode:bpf-prog")))
			n++;
	}
	closedir(d);
	return n;
}

static void attach_and_check(void **state, enum paste_xdp_mode mode, enum paste_xdp_mode want,
                             __u8 want_kernel_mode)
{
	int fds = prog_fds();
	struct paste_steer *s = open_steer(true, if0, mode);
	__u8 kmode;

	*state = s;
	assert_int_equal(paste_steer__attach(s), 0);
	assert_int_equal(paste_steer__attached_mode(s), want);
	assert_int_equal(attached_id(&kmode), prog_id_of(paste_steer__prog_fd(s)));
	assert_int_equal(kmode, want_kernel_mode);
	assert_int_equal(paste_steer__attach(s), 0); /* again: a no-op */
	assert_int_equal(nwarn, 0);                  /* no warnings, no errors */
	assert_logged("attached to " IF0);
	paste_steer__close(&s);
	*state = NULL;
	assert_int_equal(attached_id(NULL), 0); /* a clean close detaches */
	assert_int_equal(prog_fds(), fds);      /* and leaves no program fd behind */
}

static void test_attach_native(void **state)
{
	attach_and_check(state, PASTE_XDP_NATIVE, PASTE_XDP_NATIVE, XDP_ATTACHED_DRV);
}

static void test_attach_skb(void **state)
{
	attach_and_check(state, PASTE_XDP_SKB, PASTE_XDP_SKB, XDP_ATTACHED_SKB);
}

static void test_attach_auto(void **state)
{
	attach_and_check(state, PASTE_XDP_AUTO, PASTE_XDP_NATIVE, XDP_ATTACHED_DRV); /* veth */
}

/* lo has no native XDP: AUTO falls back to SKB mode, NATIVE fails with a message that says so. */
static void test_attach_fallback(void **state)
{
	int lo = if_nametoindex("lo");
	struct paste_steer *s = open_steer(false, lo, PASTE_XDP_NATIVE), *t;
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	*state = s;
	assert_int_equal(paste_steer__attach(s), -EOPNOTSUPP);
	assert_non_null(strstr(paste_last_error(), "does not support native XDP"));
	assert_int_equal(paste_steer__attached_mode(s), PASTE_XDP_AUTO);

	t = open_steer(false, lo, PASTE_XDP_AUTO);
	assert_int_equal(paste_steer__attach(t), 0);
	assert_int_equal(paste_steer__attached_mode(t), PASTE_XDP_SKB);
	assert_logged("native XDP on lo failed");
	assert_int_equal(bpf_xdp_query(lo, 0, &q), 0);
	assert_int_equal(q.skb_prog_id, prog_id_of(paste_steer__prog_fd(t)));
	paste_steer__close(&t);
	assert_int_equal(bpf_xdp_query(lo, 0, &q), 0);
	assert_int_equal(q.skb_prog_id, 0);
}

/* The dispatcher is skipped through the environment, unless the user decided otherwise. */
static void test_env_and_quiet_stderr(void **state)
{
	char buf[256] = "";
	int saved, tmp;

	unsetenv("LIBXDP_SKIP_DISPATCHER");
	attach_and_check(state, PASTE_XDP_AUTO, PASTE_XDP_NATIVE, XDP_ATTACHED_DRV);
	assert_string_equal(getenv("LIBXDP_SKIP_DISPATCHER"), "1");

	/* User says "0": kept; libxdp tries its dispatcher, fails and falls back, all on DEBUG. */
	setenv("LIBXDP_SKIP_DISPATCHER", "0", 1);
	tmp = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	assert_true(tmp >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(tmp, 2);
	attach_and_check(state, PASTE_XDP_AUTO, PASTE_XDP_NATIVE, XDP_ATTACHED_DRV);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_true(pread(tmp, buf, sizeof(buf) - 1, 0) >= 0);
	close(tmp);
	assert_string_equal(buf, ""); /* libxdp / libbpf wrote nothing to stderr */
	assert_string_equal(getenv("LIBXDP_SKIP_DISPATCHER"), "0");
	assert_logged("libxdp: ");
	unsetenv("LIBXDP_SKIP_DISPATCHER");
}

/*
 * Fork a child that attaches in @mode and exits without cleanup: at once, or (with @hold, a pipe)
 * when the parent closes hold[1]. It dies with the parent in any case (PR_SET_PDEATHSIG).
 */
static pid_t child_attach(enum paste_xdp_mode mode, const int *hold)
{
	int ready[2];
	char c = 0;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct paste_steer *s = NULL;
		struct paste_steer_cfg cfg = {.ifindex = if0, .ip = ip(OUR_IP), .mode = mode};

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (hold)
			close(hold[1]);
		c = paste_steer__open(&s, &cfg) || paste_steer__attach(s) ? 'E' : 'A';
		if (write(ready[1], &c, 1) != 1 || !hold)
			_exit(0); /* no close: the program stays attached, like after kill -9 */
		while (read(hold[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(c, 'A');
	return pid;
}

static void reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
}

static void test_stale_replaced(void **state)
{
	struct paste_steer *s;
	__u32 stale;

	reap(child_attach(PASTE_XDP_NATIVE, NULL));
	stale = attached_id(NULL);
	assert_int_not_equal(stale, 0); /* the child's program outlived the child */

	*state = s = open_steer(true, if0, PASTE_XDP_AUTO);
	assert_int_equal(paste_steer__attach(s), 0);
	assert_logged("replaced a stale steering program left by an earlier process");
	assert_int_equal(attached_id(NULL), prog_id_of(paste_steer__prog_fd(s)));
	assert_int_not_equal(attached_id(NULL), stale);
}

static void test_stale_other_mode(void **state)
{
	struct paste_steer *s;
	__u8 kmode;

	reap(child_attach(PASTE_XDP_SKB, NULL));
	assert_int_not_equal(attached_id(&kmode), 0);
	assert_int_equal(kmode, XDP_ATTACHED_SKB);
	*state = s = open_steer(false, if0, PASTE_XDP_NATIVE);
	assert_int_equal(paste_steer__attach(s), 0); /* a stale SKB program does not block native */
	assert_logged("replaced a stale steering program");
	assert_int_equal(attached_id(&kmode), prog_id_of(paste_steer__prog_fd(s)));
	assert_int_equal(kmode, XDP_ATTACHED_DRV);
}

static void test_remove_stale_direct(void **state)
{
	assert_int_equal(paste_steer__remove_stale(if0), 0); /* nothing attached */
	reap(child_attach(PASTE_XDP_SKB, NULL));
	assert_int_not_equal(attached_id(NULL), 0);
	assert_int_equal(paste_steer__remove_stale(if0), 1);
	assert_int_equal(attached_id(NULL), 0);
	assert_int_equal(paste_steer__remove_stale(if0), 0);
}

/* A program held by a running process is a live instance, not a leftover: not removed. */
static void test_live_not_replaced(void **state)
{
	struct paste_steer *s, *t;
	char pidstr[32];
	int hold[2];
	__u32 live;
	pid_t pid;

	assert_int_equal(pipe(hold), 0);
	pid = child_attach(PASTE_XDP_NATIVE, hold);
	close(hold[0]);
	live = attached_id(NULL);
	*state = s = open_steer(true, if0, PASTE_XDP_AUTO);
	assert_int_equal(paste_steer__attach(s), -EBUSY);
	snprintf(pidstr, sizeof(pidstr), "process %d", (int)pid);
	assert_non_null(strstr(paste_last_error(), pidstr));
	assert_int_equal(attached_id(NULL), live); /* untouched */
	assert_int_equal(paste_steer__remove_stale(if0), -EBUSY);

	close(hold[1]); /* the child exits without cleanup: now it is stale */
	reap(pid);
	assert_int_equal(paste_steer__attach(s), 0);
	assert_int_equal(attached_id(NULL), prog_id_of(paste_steer__prog_fd(s)));

	t = open_steer(true, if0, PASTE_XDP_AUTO); /* a second instance in this very process */
	assert_int_equal(paste_steer__attach(t), -EBUSY);
	assert_non_null(strstr(paste_last_error(), "(this process)"));
	paste_steer__close(&t);
	assert_int_equal(attached_id(NULL), prog_id_of(paste_steer__prog_fd(s)));
}

/* ---- one program shared by the processes of an interface's queues (steer_share.c) -------- */

/* A worker joins the program a live process holds (its maps reached by id), one serving another
 * address is refused, and the last one to close detaches it even if the first died uncleanly. */
static void test_shared_join(void **state)
{
	struct paste_steer_cfg cfg = {.ifindex = if0, .ip = ip(OUR_IP), .mode = PASTE_XDP_NATIVE};
	struct paste_steer *s = NULL, *t = (void *)1;
	int hold[2];
	__u32 live;
	pid_t pid;

	assert_int_equal(pipe(hold), 0);
	pid = child_attach(PASTE_XDP_NATIVE, hold);
	close(hold[0]);
	live = attached_id(NULL);
	log_reset();
	assert_int_equal(paste_steer__open_shared(&s, &cfg), 0);
	assert_logged("joined the steering program");
	assert_int_equal(prog_id_of(paste_steer__prog_fd(s)), live); /* not a second program */
	assert_int_equal(paste_steer__attached_mode(s), PASTE_XDP_NATIVE);
	assert_int_equal(paste_steer__add_port(s, 8080), 0); /* the adopted maps work */
	assert_int_equal(paste_steer__clear_xsk(s, 1), 0);   /* no socket there: not an error */

	cfg.ip = ip(OTHER_IP);
	assert_int_equal(paste_steer__open_shared(&t, &cfg), -EBUSY);
	assert_null(t);
	assert_non_null(strstr(paste_last_error(), "different address"));

	close(hold[1]); /* the first process exits without cleanup */
	reap(pid);
	assert_int_equal(attached_id(NULL), live);
	paste_steer__close_shared(&s); /* the last user: detaches */
	assert_null(s);
	assert_int_equal(attached_id(NULL), 0);
}

/* The first worker closes while another still serves: the program stays until that one closes. */
static void test_shared_last_detaches(void **state)
{
	struct paste_steer_cfg cfg = {.ifindex = if0, .ip = ip(OUR_IP), .mode = PASTE_XDP_NATIVE};
	struct paste_steer *s = NULL;
	int hold[2], ready[2];
	char c = 0;
	__u32 id;
	pid_t pid;

	assert_int_equal(paste_steer__open_shared(&s, &cfg), 0); /* nothing there: attaches */
	id = attached_id(NULL);
	assert_int_equal(id, prog_id_of(paste_steer__prog_fd(s)));
	assert_int_equal(pipe(hold), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct paste_steer *t = NULL;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(hold[1]);
		c = paste_steer__open_shared(&t, &cfg) ? 'E' : 'J';
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		while (read(hold[0], &c, 1) > 0)
			;
		paste_steer__close_shared(&t);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(c, 'J');
	paste_steer__close_shared(&s);
	assert_int_equal(attached_id(NULL), id); /* the other worker still uses it */
	close(hold[1]);
	reap(pid);
	assert_int_equal(attached_id(NULL), 0); /* it was the last */
}

static int load_foreign(void)
{
	struct bpf_insn insns[] = {
	    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
	    {.code = BPF_JMP | BPF_EXIT},
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "foreign_pass", "GPL", insns, 2, NULL);

	assert_true(fd >= 0);
	return fd;
}

static void foreign_in(void **state, __u32 xdp_flags, enum paste_xdp_mode our_mode)
{
	int fd = load_foreign();
	struct paste_steer *s;
	__u32 foreign;

	assert_int_equal(bpf_xdp_attach(if0, fd, xdp_flags, NULL), 0);
	foreign = attached_id(NULL);
	assert_int_equal(foreign, prog_id_of(fd));
	*state = s = open_steer(true, if0, our_mode);
	log_reset();
	assert_int_equal(paste_steer__attach(s), -EBUSY);
	assert_logged("\"foreign_pass\"");
	assert_logged("ip link set dev " IF0 " xdp off");
	assert_logged("xdp-loader unload " IF0 " --all");
	assert_int_equal(paste_steer__attached_mode(s), PASTE_XDP_AUTO);
	assert_int_equal(paste_steer__remove_stale(if0), -EBUSY);
	assert_int_equal(attached_id(NULL), foreign); /* untouched */
	close(fd);
	assert_int_equal(attached_id(NULL), foreign); /* the kernel keeps it attached */
	assert_int_equal(bpf_xdp_detach(if0, xdp_flags, NULL), 0);
}

static void test_foreign_native(void **state)
{
	foreign_in(state, XDP_FLAGS_DRV_MODE, PASTE_XDP_AUTO);
}

static void test_foreign_skb(void **state)
{
	foreign_in(state, XDP_FLAGS_SKB_MODE, PASTE_XDP_NATIVE);
}

/* ---- part 2b: real frames through the attached program ------------------------------------ */

#define NFRAMES 64
#define FRAME   2048

struct xsk_env {
	void *area;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp, rx;
	struct xsk_ring_prod tx;
};

static void xsk_open(struct xsk_env *x)
{
	struct xsk_socket_config cfg = {
	    .rx_size = NFRAMES,
	    .tx_size = NFRAMES,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	};
	struct xsk_umem_config ucfg = {
	    .fill_size = NFRAMES,
	    .comp_size = NFRAMES,
	    .frame_size = FRAME,
	};
	__u32 idx = 0;

	x->area =
	    mmap(NULL, NFRAMES * FRAME, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(x->area != MAP_FAILED);
	assert_int_equal(
	    xsk_umem__create(&x->umem, x->area, NFRAMES * FRAME, &x->fill, &x->comp, &ucfg), 0);
	assert_int_equal(xsk_socket__create(&x->xsk, IF0, 0, x->umem, &x->rx, &x->tx, &cfg), 0);
	assert_int_equal(xsk_ring_prod__reserve(&x->fill, NFRAMES / 2, &idx), NFRAMES / 2);
	for (__u32 i = 0; i < NFRAMES / 2; i++)
		*xsk_ring_prod__fill_addr(&x->fill, idx + i) = (__u64)i * FRAME;
	xsk_ring_prod__submit(&x->fill, NFRAMES / 2);
}

static void xsk_close(struct xsk_env *x)
{
	xsk_socket__delete(x->xsk);
	assert_int_equal(xsk_umem__delete(x->umem), 0);
	munmap(x->area, NFRAMES * FRAME);
}

static void send_from_peer(const struct frame *f)
{
	struct sockaddr_ll to = {
	    .sll_family = AF_PACKET, .sll_ifindex = if_nametoindex(IF1), .sll_halen = ETH_ALEN};
	int fd = socket(AF_PACKET, SOCK_RAW, 0);

	assert_true(fd >= 0);
	assert_int_equal(sendto(fd, f->b, f->len, 0, (struct sockaddr *)&to, sizeof(to)),
	                 (ssize_t)f->len);
	close(fd);
}

/* Wait up to a second for one frame on the socket; check it is @f, byte for byte. */
static void expect_rx(struct xsk_env *x, const struct frame *f)
{
	struct pollfd p = {.fd = xsk_socket__fd(x->xsk), .events = POLLIN};
	const struct xdp_desc *d;
	__u32 idx = 0;

	for (int i = 0; i < 100 && !xsk_ring_cons__peek(&x->rx, 1, &idx); i++)
		poll(&p, 1, 10);
	d = xsk_ring_cons__rx_desc(&x->rx, idx);
	assert_non_null(d);
	assert_int_equal(d->len, f->len);
	assert_memory_equal(xsk_umem__get_data(x->area, d->addr), f->b, f->len);
	xsk_ring_cons__release(&x->rx, 1);
}

static uint64_t wait_counter(struct paste_steer *s, enum paste_steer_counter which, uint64_t want)
{
	uint64_t c[PASTE_CNT_MAX];

	for (int i = 0; i < 100; i++) {
		counters(s, c);
		if (c[which] >= want)
			break;
		usleep(10000);
	}
	return c[which];
}

static void traffic_in(void **state, enum paste_xdp_mode mode)
{
	struct paste_steer *s = open_steer(true, if0, mode);
	struct xsk_env x;
	struct frame f;
	uint64_t d[PASTE_CNT_MAX];

	*state = s;
	assert_int_equal(paste_steer__add_port(s, PORT), 0);
	assert_int_equal(paste_steer__attach(s), 0);
	tcp(&f, OUR_IP, PORT);
	send_from_peer(&f); /* no socket yet: matched, passed to the kernel */
	assert_int_equal(wait_counter(s, PASTE_CNT_NO_SOCKET, 1), 1);

	xsk_open(&x);
	assert_int_equal(paste_steer__set_xsk(s, 0, xsk_socket__fd(x.xsk)), 0);
	assert_int_equal(run(s, &f, 1, d), XDP_REDIRECT); /* test run sees the socket too */
	assert_int_equal(d[PASTE_CNT_STEERED], 1);
	for (int i = 0; i < 3; i++) {
		f.b[ETH_HLEN + 4] = i; /* IP id: three distinct frames */
		send_from_peer(&f);
		expect_rx(&x, &f);
	}
	assert_int_equal(wait_counter(s, PASTE_CNT_STEERED, 4), 4);
	tcp(&f, OUR_IP, 22);
	send_from_peer(&f); /* not ours: the kernel gets it */
	assert_true(wait_counter(s, PASTE_CNT_PASSED, 1) >= 1);
	assert_int_equal(wait_counter(s, PASTE_CNT_STEERED, 4), 4);
	paste_steer__close(&s);
	*state = NULL;
	xsk_close(&x);
}

static void test_traffic_native(void **state)
{
	traffic_in(state, PASTE_XDP_NATIVE);
}

static void test_traffic_skb(void **state)
{
	traffic_in(state, PASTE_XDP_SKB);
}

int main(void)
{
	const struct CMUnitTest rules[] = {
	    cmocka_unit_test_setup_teardown(test_open_fills_conf, setup_dedicated, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_dedicated_arp, setup_dedicated, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_dedicated_ipv4, setup_dedicated, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_truncated, setup_dedicated, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_shared_ports, setup_shared, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_shared_other_protocols, setup_shared,
	                                    teardown_steer),
	    cmocka_unit_test_setup_teardown(test_shared_del_port, setup_shared, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_shared_ip_options, setup_shared, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_shared_fragments, setup_shared, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_truncated, setup_shared, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_mode_off, setup_dedicated, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_counters_sum, setup_shared, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_bad_arguments, setup_dedicated, teardown_steer),
	    cmocka_unit_test_setup_teardown(test_ports_full, setup_dedicated, teardown_steer),
	};
	const struct CMUnitTest attach[] = {
	    cmocka_unit_test_setup_teardown(test_attach_native, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_attach_skb, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_attach_auto, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_attach_fallback, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_env_and_quiet_stderr, setup_attach,
	                                    teardown_attach),
	    cmocka_unit_test_setup_teardown(test_stale_replaced, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_stale_other_mode, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_remove_stale_direct, setup_attach,
	                                    teardown_attach),
	    cmocka_unit_test_setup_teardown(test_live_not_replaced, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_shared_join, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_shared_last_detaches, setup_attach,
	                                    teardown_attach),
	    cmocka_unit_test_setup_teardown(test_foreign_native, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_foreign_skb, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_traffic_native, setup_attach, teardown_attach),
	    cmocka_unit_test_setup_teardown(test_traffic_skb, setup_attach, teardown_attach),
	};
	int failed;

	if (geteuid() != 0) {
		fprintf(stderr, "test_steer: needs root (BPF, XDP, network namespaces): skipped\n");
		return 0;
	}
	paste_set_print(capture, NULL, PASTE_LOG_DEBUG);
	failed = cmocka_run_group_tests_name("steer: program rules", rules, NULL, NULL);
	failed += cmocka_run_group_tests_name("steer: attach", attach, setup_netns, NULL);
	return failed ? 1 : 0;
}
