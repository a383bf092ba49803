#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""hostile_gen.py - malformed and hostile traffic for test_hostile.sh (Python 3 standard library only).

Runs in the client namespace of the testbed and writes Ethernet frames with an AF_PACKET socket on
the client veth, addressed to the stack's dedicated address. Every burst is bounded (a count, and
for the flood a rate). Subcommands (each prints one summary line "hostile_gen: <cmd> key=value ..."):

  malformed  truncated Ethernet/IPv4/TCP headers, bad IHL, total lengths and data offsets, bad IPv4
             and TCP checksums, invalid flag combinations (SYN+FIN, SYN+RST, none, all), stray
             ACKs/RSTs/FINs, out-of-window segments for unknown connections, IPv4 fragments
             (incomplete, overlapping, tiny, past 64 KiB), IP options garbage, truncated ARP,
             non-IP ethertypes, oversized frames, SYNs from martian sources (the stack's own
             address, loopback, 0/8, multicast, broadcast). --count frames per kind.
  conn       on real established connections (kernel sockets; their sequence numbers are read
             from the wire with a second AF_PACKET socket) a POST whose body is sent partly by the
             kernel and partly injected: duplicate and overlapping segments, a segment ahead of
             rcv_nxt (out of order), segments outside the window with garbage, ACKs of unsent
             data, out-of-window RST and SYN, a zero window, garbage at rcv_nxt with a bad TCP
             checksum and with a bad data offset. The kernel then finishes the body; the reply
             must be 201 and GET of that record must return exactly the body (a payload in
             wal_client.py's format, so 'wal_client.py verify --strict' accepts it).
  synflood   --count SYNs (default 100000) at --rate per second from spoofed addresses in the
             test subnet and random ports; a sniffer counts the stack's SYN-ACKs and ARP requests.
Exit status: 0 done (and, for conn, every check passed), 1 a check failed, 2 usage error.
"""
import argparse
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wal_client import payload, take_response  # noqa: E402

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip4(s):
    return socket.inet_aton(s)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


class Gen:
    def __init__(self, a):
        self.a = a
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.s.bind((a.iface, 0))
        self.smac = mac(open("/sys/class/net/%s/address" % a.iface).read().strip())
        self.dmac = mac(a.dst_mac)
        self.dip = ip4(a.dst_ip)
        self.sent = 0
        self.refused = 0  # frames the kernel would not send (too short or too long)
        self.ipid = random.randrange(65536)

    def eth(self, payload, etype=ETH_P_IP):
        return self.dmac + self.smac + struct.pack("!H", etype) + payload

    def send(self, frame):
        try:
            self.s.send(frame)
            self.sent += 1
        except OSError:
            self.refused += 1

    def iphdr(self, src, proto, plen, ihl=5, tot=None, frag=0x4000, bad=False, opts=b"", ident=None):
        if ident is None:
            self.ipid = (self.ipid + 1) & 0xffff
            ident = self.ipid
        tot = 20 + len(opts) + plen if tot is None else tot
        h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot & 0xffff, ident, frag, 64, proto, 0, src,
                        self.dip) + opts
        c = csum(h)
        if bad:
            c ^= 0x5a5a
        return h[:10] + struct.pack("!H", c) + h[12:]

    def tcp(self, src, sport, dport, seq, ack, flags, win=65535, data=b"", doff=5, bad=False, opts=b""):
        h = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xffffffff, ack & 0xffffffff,
                        (doff & 15) << 4, flags & 0xff, win, 0, 0) + opts
        ph = src + self.dip + struct.pack("!BBH", 0, 6, len(h) + len(data))
        c = csum(ph + h + data)
        if bad:
            c ^= 0x1234
        return h[:16] + struct.pack("!H", c) + h[18:] + data

    def tcp_frame(self, src, sport, dport, seq, ack, flags, **kw):
        ipbad = kw.pop("ipbad", False)
        seg = self.tcp(src, sport, dport, seq, ack, flags, **kw)
        return self.eth(self.iphdr(src, 6, len(seg), bad=ipbad) + seg)


def rnd_src(a, rng):
    return ip4(a.spoof_net + "." + str(rng.randint(a.spoof_lo, a.spoof_hi)))


# ---- malformed ----------------------------------------------------------------------------------

def cmd_malformed(a):
    g = Gen(a)
    rng = random.Random(a.seed)
    cli = ip4(a.src_ip)
    port = a.dport
    kinds = {}

    def kind(name, fn):
        before = g.sent + g.refused
        for i in range(a.count):
            fn(i)
        kinds[name] = g.sent + g.refused - before

    def syn(i, **kw):
        return g.tcp(cli, 20000 + rng.randrange(20000), port, rng.getrandbits(32), 0, SYN, **kw)

    # Ethernet shorter than its header, and IPv4/TCP headers cut short.
    kind("trunc_eth", lambda i: g.send(g.eth(b"")[:rng.randint(1, 13)]))
    kind("trunc_ip", lambda i: g.send(g.eth(g.iphdr(cli, 6, 20)[:rng.randint(0, 19)])))
    kind("trunc_tcp", lambda i: g.send(g.eth(g.iphdr(cli, 6, 20) + syn(i)[:rng.randint(0, 19)])))
    # IPv4 header lies: IHL < 5, IHL past the packet, total length past / inside the frame.
    kind("bad_ihl", lambda i: g.send(g.eth(g.iphdr(cli, 6, 20, ihl=rng.choice([0, 1, 4, 6, 15])) + syn(i))))
    kind("bad_totlen", lambda i: g.send(g.eth(g.iphdr(cli, 6, 20, tot=rng.choice(
        [0, 19, 21, 39, 41, 1500, 65535])) + syn(i))))
    kind("bad_ip_version", lambda i: g.send(g.eth(bytes([rng.choice([0x05, 0x65, 0xf5])]) +
                                                  g.iphdr(cli, 6, 20)[1:] + syn(i))))
    # TCP data offset < 5, past the segment, and options garbage.
    kind("bad_doff", lambda i: (lambda s: g.send(g.eth(g.iphdr(cli, 6, len(s)) + s)))(
        syn(i, doff=rng.choice([0, 1, 4, 6, 15]))))
    kind("tcp_opts_garbage", lambda i: (lambda s: g.send(g.eth(g.iphdr(cli, 6, len(s)) + s)))(
        syn(i, doff=10, opts=bytes(rng.choice([0, 1, 2, 3, 4, 8, 255]) for _ in range(20)))))
    kind("ip_opts_garbage", lambda i: (lambda s: g.send(g.eth(g.iphdr(
        cli, 6, len(s), ihl=15, opts=rng.randbytes(40)) + s)))(syn(i)))
    # Checksums.
    kind("bad_ip_csum", lambda i: (lambda s: g.send(g.eth(g.iphdr(cli, 6, len(s), bad=True) + s)))(syn(i)))
    kind("bad_tcp_csum", lambda i: (lambda s: g.send(g.eth(g.iphdr(cli, 6, len(s)) + s)))(
        syn(i, bad=True)))
    # Flag combinations, to the listening port and to a closed one, new 4-tuples each time.
    for name, fl in (("syn_fin", SYN | FIN), ("syn_rst", SYN | RST), ("no_flags", 0),
                     ("all_flags", 0xff), ("fin_only", FIN), ("rst_only", RST), ("ack_only", ACK),
                     ("syn_ack", SYN | ACK), ("urg_psh_fin", URG | PSH | FIN)):
        kind(name, lambda i, fl=fl: g.send(g.tcp_frame(
            cli if i % 2 else rnd_src(a, rng), 20000 + rng.randrange(20000),
            port if i % 4 else rng.choice([1, 22, 81, 65535]), rng.getrandbits(32),
            rng.getrandbits(32), fl, data=rng.randbytes(rng.choice([0, 0, 10, 500])))))
    # Martian sources: SYNs "from" the stack's own address (a LAND attack: lwIP's answer to itself
    # would take its loopback path, which aborts in Debian's build), loopback, 0/8, multicast and
    # limited broadcast. The stack must drop them (counted in rx_invalid) and keep serving.
    martians = [g.dip, ip4("127.0.0.1"), ip4("0.0.0.0"), ip4("224.0.0.1"), ip4("255.255.255.255")]
    kind("martian_src", lambda i: g.send(g.tcp_frame(martians[i % len(martians)],
                                                     20000 + rng.randrange(20000), port,
                                                     rng.getrandbits(32), 0, SYN)))
    # Zero window SYN and zero-window data to unknown connections.
    kind("syn_zero_window", lambda i: g.send(g.tcp_frame(cli, 20000 + rng.randrange(20000), port,
                                                        rng.getrandbits(32), 0, SYN, win=0)))
    # IPv4 fragments: first pieces never completed, overlapping pieces, tiny pieces, past 64 KiB.
    def frag(i):
        s = syn(i, data=rng.randbytes(64))
        ident = rng.randrange(65536)
        v = i % 4
        if v == 0:  # first fragment only (MF), waits for a reassembly that never comes
            g.send(g.eth(g.iphdr(cli, 6, 24, frag=0x2000, ident=ident) + s[:24]))
        elif v == 1:  # two overlapping fragments that together claim to be complete
            g.send(g.eth(g.iphdr(cli, 6, 40, frag=0x2000, ident=ident) + s[:40]))
            g.send(g.eth(g.iphdr(cli, 6, len(s) - 16, frag=2, ident=ident) + s[16:]))
        elif v == 2:  # tiny 8-byte pieces, last one missing
            for k in range(0, 48, 8):
                g.send(g.eth(g.iphdr(cli, 6, 8, frag=0x2000 | (k // 8), ident=ident) + s[k:k + 8]))
        else:  # last fragment whose end is past 65535
            g.send(g.eth(g.iphdr(cli, 6, 1000, frag=8190, ident=ident) + rng.randbytes(1000)))
    kind("ip_fragments", frag)
    # Other ethertypes and truncated ARP.
    kind("truncated_arp", lambda i: g.send(g.eth(struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) +
                                                 g.smac + cli + b"\0" * 6 + g.dip, 0x0806)[:rng.randint(14, 41)]))
    kind("arp_bad_lengths", lambda i: g.send(g.eth(struct.pack("!HHBBH", 1, 0x0800, rng.choice([0, 4, 255]),
                                                               rng.choice([0, 6, 255]), 1) + rng.randbytes(20), 0x0806)))
    kind("other_ethertype", lambda i: g.send(g.eth(rng.randbytes(rng.randint(0, 200)),
                                                   rng.choice([0x86dd, 0x8100, 0x88cc, 0x0000, 0xffff]))))
    # ICMP echo with a bad checksum and truncated ICMP.
    kind("icmp_garbage", lambda i: (lambda d: g.send(g.eth(g.iphdr(cli, 1, len(d)) + d)))(
        rng.randbytes(rng.randint(0, 64))))
    # Oversized: longer than the MTU (the veth usually refuses or drops them before the stack).
    kind("oversized", lambda i: (lambda s: g.send(g.eth(g.iphdr(cli, 6, len(s)) + s)))(
        syn(i, data=rng.randbytes(rng.choice([1500, 3000, 9000])))))
    print("hostile_gen: malformed sent=%d refused_by_kernel=%d kinds=%d per_kind=%d %s" % (
        g.sent, g.refused, len(kinds), a.count, " ".join("%s=%d" % kv for kv in kinds.items())))


# ---- attacks on an established connection -------------------------------------------------------

def parse_tcp(fr):
    """(src, dst, sport, dport, seq, ack, flags, plen) of an IPv4/TCP frame, else None."""
    if len(fr) < 54 or fr[12:14] != b"\x08\x00" or fr[23] != 6:
        return None
    ihl = (fr[14] & 15) * 4
    t = 14 + ihl
    sport, dport, seq, ack, off, fl = struct.unpack("!HHIIBB", fr[t:t + 14])
    tot = struct.unpack("!H", fr[16:18])[0]
    return fr[26:30], fr[30:34], sport, dport, seq, ack, fl, tot - ihl - (off >> 4) * 4


# Classic BPF: accept only IPv4 TCP frames with SYN set. The handshake sniffer runs beside a load
# client that puts tens of thousands of frames/s on the same veth; unfiltered, a descheduled Python
# reader can let the socket buffer overflow and lose the very SYN / SYN-ACK it waits for (one run
# failed with "handshake not seen on the wire" although the connection was up; this is the
# likeliest cause, and filtering in the kernel removes it).
SYN_FILTER = [
    (0x28, 0, 0, 12),      # ldh [12]            ethertype
    (0x15, 0, 6, 0x0800),  # jne IPv4 -> drop
    (0x30, 0, 0, 23),      # ldb [23]            IP protocol
    (0x15, 0, 4, 6),       # jne TCP -> drop
    (0xb1, 0, 0, 14),      # ldxb 4*([14]&0xf)   IP header length
    (0x50, 0, 0, 27),      # ldb [x+27]          TCP flags (14 + 13)
    (0x45, 0, 1, 0x02),    # jset SYN, else drop
    (0x06, 0, 0, 0xffff),  # ret accept
    (0x06, 0, 0, 0),       # ret drop
]


def syn_sniffer(iface):
    import ctypes
    sn = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    prog = b"".join(struct.pack("HBBI", *ins) for ins in SYN_FILTER)
    buf = ctypes.create_string_buffer(prog)
    sn.setsockopt(socket.SOL_SOCKET, 26,  # SO_ATTACH_FILTER
                  struct.pack("HL", len(SYN_FILTER), ctypes.addressof(buf)))
    sn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sn.bind((iface, 0))
    return sn


def one_conn(a, g, rng, n):
    sn = syn_sniffer(a.iface)
    sn.settimeout(0.2)
    k = socket.create_connection((a.dst_ip, a.dport), timeout=10)
    k.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lport = k.getsockname()[1]
    src = ip4(k.getsockname()[0])
    isn_c = isn_s = None
    t_end = time.monotonic() + 3
    while (isn_c is None or isn_s is None) and time.monotonic() < t_end:
        try:
            fr = sn.recv(65535)
        except socket.timeout:
            continue
        p = parse_tcp(fr)
        if not p:
            continue
        if p[2] == lport and p[6] & SYN and not p[6] & ACK:
            isn_c = p[4]
        elif p[3] == lport and p[6] & SYN and p[6] & ACK:
            isn_s = p[4]
    sn.close()
    if isn_c is None or isn_s is None:
        raise RuntimeError("conn %d: handshake not seen on the wire" % n)
    body = payload(a.seed, a.conn_base + n, 0, rng.randint(4000, 9000))
    head = (b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    msg = head + body
    first = len(head) + 1000
    k.sendall(msg[:first])
    time.sleep(0.05)
    base = isn_c + 1
    ack = isn_s + 1
    dport = a.dport

    def seg(off, data, flags=ACK | PSH, **kw):
        g.send(g.tcp_frame(src, lport, dport, base + off, kw.pop("ackno", ack), flags, data=data, **kw))

    junk = lambda n_: b"\xde\xad" * (n_ // 2)  # noqa: E731  (out-of-window garbage)
    for _ in range(3):  # duplicates of what was delivered
        seg(len(head), msg[len(head):len(head) + 500])
    seg(len(head) + 200, msg[len(head) + 200:first + 200])  # overlaps the delivered edge, same bytes
    seg(first + 1000, msg[first + 1000:first + 1400])       # ahead of rcv_nxt: out of order
    seg(first + 700, msg[first + 700:first + 1100])         # overlaps the out-of-order piece
    seg(first + 1000000, junk(400))                         # beyond the window
    seg(-100000, junk(400))                                 # far behind
    seg(first, b"", flags=ACK, ackno=ack + 1000000)         # ACK of data never sent
    seg(first, b"", flags=ACK, ackno=ack - 1000000)         # ACK far in the past
    seg(first + 3000000, b"", flags=RST)                    # RST outside the window
    seg(first - 3000000, b"", flags=RST | ACK)
    seg(first + 5000000, b"", flags=SYN)                    # SYN outside the window
    seg(first + 1600, msg[first + 1600:first + 1700], flags=SYN | FIN | ACK)  # invalid flags, data
    # Garbage at rcv_nxt, one byte value per kind so that a record that took it says which.
    seg(first, b"\xc5" * 300, bad=True)                     # bad TCP checksum
    seg(first, b"\x1c" * 300, ipbad=True)                   # bad IP checksum
    seg(first, b"\xd1" * 20, doff=15)                       # data offset past the segment's end
    seg(first, b"\xd3" * 300, doff=3)                       # data offset below 5
    seg(first, b"", flags=ACK, win=0)                       # zero window: the stack must wait
    time.sleep(0.05)
    k.sendall(msg[first:])  # the kernel's next segments reopen the window and fill the gaps
    k.settimeout(15)
    buf = bytearray()
    r = None
    while r is None:
        d = k.recv(65536)
        if not d:
            raise RuntimeError("conn %d: closed before the reply" % n)
        buf += d
        r = take_response(buf)
    st, _, rb = r
    if st != 201:
        raise RuntimeError("conn %d: POST answered %d %r" % (n, st, bytes(rb[:100])))
    seq = int(rb.decode().split(":")[1].strip(" }\n"))
    k.sendall(b"GET /log/%d HTTP/1.1\r\nHost: x\r\n\r\n" % seq)
    buf = bytearray()
    r = None
    while r is None:
        d = k.recv(65536)
        if not d:
            raise RuntimeError("conn %d: closed before the GET reply" % n)
        buf += d
        r = take_response(buf)
    k.close()
    got = bytes(r[2])
    if r[0] != 200 or got != body:
        bad = [i for i in range(min(len(got), len(body))) if got[i] != body[i]]
        where = ("bytes %d..%d of the body (head is %d bytes; %r instead of %r)" % (
            bad[0], bad[-1], len(head), got[bad[0]:bad[0] + 8], body[bad[0]:bad[0] + 8])) if bad else ""
        raise RuntimeError("conn %d: record %d differs from what was sent (status %d, %d bytes, "
                           "expected %d) %s" % (n, seq, r[0], len(got), len(body), where))
    return seq


def cmd_conn(a):
    g = Gen(a)
    rng = random.Random(a.seed + 1)
    seqs = []
    for n in range(a.conns):
        try:
            seqs.append(one_conn(a, g, rng, n))
        except (RuntimeError, OSError) as e:
            print("hostile_gen: conn FAIL %s" % e, file=sys.stderr)
            print("hostile_gen: conn conns=%d ok=%d injected=%d" % (a.conns, len(seqs), g.sent))
            sys.exit(1)
    print("hostile_gen: conn conns=%d ok=%d injected=%d seqs=%s" % (
        a.conns, len(seqs), g.sent, ",".join(map(str, seqs))))


# ---- SYN flood ----------------------------------------------------------------------------------

def cmd_synflood(a):
    g = Gen(a)
    rng = random.Random(a.seed + 2)
    sn = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sn.bind((a.iface, 0))
    sn.setblocking(False)
    synacks = arps = rsts = 0
    srcs = [ip4(a.spoof_net + "." + str(h)) for h in range(a.spoof_lo, a.spoof_hi + 1)]
    if a.src_ip:
        srcs.append(ip4(a.src_ip))

    def drain():
        nonlocal synacks, arps, rsts
        while True:
            try:
                fr, addr = sn.recvfrom(65535)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            if fr[12:14] == b"\x08\x06":
                arps += 1
                continue
            p = parse_tcp(fr)
            if p and p[2] == a.dport:
                if p[6] & SYN and p[6] & ACK:
                    synacks += 1
                elif p[6] & RST:
                    rsts += 1

    t0 = time.monotonic()
    chunk = max(1, a.rate // 500)
    for i in range(a.count):
        src = srcs[i % len(srcs)]
        g.send(g.tcp_frame(src, 1024 + rng.randrange(64000), a.dport, rng.getrandbits(32), 0, SYN,
                           opts=b"\x02\x04\x05\xb4", doff=6))
        if (i + 1) % chunk == 0:
            drain()
            ahead = (i + 1) / a.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    secs = time.monotonic() - t0
    t_end = time.monotonic() + a.linger
    while time.monotonic() < t_end:
        drain()
        time.sleep(0.05)
    print("hostile_gen: synflood syns=%d refused_by_kernel=%d secs=%.1f rate=%.0f sources=%d "
          "synacks_seen=%d rsts_seen=%d arp_requests_seen=%d" % (
              g.sent, g.refused, secs, g.sent / secs if secs else 0, len(srcs), synacks, rsts, arps))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--iface", required=True, help="client veth")
    common.add_argument("--dst-mac", required=True, help="the stack's MAC (ARP reply for --dst-ip)")
    common.add_argument("--dst-ip", required=True)
    common.add_argument("--src-ip", required=True, help="the client namespace's own address")
    common.add_argument("--dport", type=int, default=8080)
    common.add_argument("--seed", type=int, default=1)
    common.add_argument("--spoof-net", default="10.77.0", help="first three octets of spoofed sources")
    common.add_argument("--spoof-lo", type=int, default=100)
    common.add_argument("--spoof-hi", type=int, default=250)
    p = sub.add_parser("malformed", parents=[common])
    p.add_argument("--count", type=int, default=200, help="frames per kind")
    p = sub.add_parser("conn", parents=[common])
    p.add_argument("--conns", type=int, default=20)
    p.add_argument("--conn-base", type=int, default=90000, help="payload conn ids (see wal_client.py)")
    p = sub.add_parser("synflood", parents=[common])
    p.add_argument("--count", type=int, default=100000)
    p.add_argument("--rate", type=int, default=10000, help="SYNs per second")
    p.add_argument("--linger", type=float, default=2, help="seconds to keep counting replies")
    a = ap.parse_args()
    if getattr(a, "count", 1) < 1 or getattr(a, "rate", 1) < 1:
        ap.error("--count and --rate must be positive")
    {"malformed": cmd_malformed, "conn": cmd_conn, "synflood": cmd_synflood}[a.cmd](a)


if __name__ == "__main__":
    main()
