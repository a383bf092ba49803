#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""gen_seeds.py - (re)writes the seed corpora in tests/fuzz/corpus/<target>/: small valid and
near-valid inputs in each target's input format (see the comment at the top of fuzz_<target>.c).

    tests/fuzz/gen_seeds.py [BUILD_DIR]

BUILD_DIR (default build) must hold tests/fuzz/fuzz-replay-index_recovery: its template pool
image seeds fuzz_pool_open with real log and key-value regions. Deterministic: the same files
every run. Inputs the fuzzers found later are added by run.sh (-merge), not here.
"""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_MAC = bytes([2, 0, 0, 0, 0, 1])
STACK_MAC = bytes([2, 0, 0, 0, 0, 2])
PEER_IP = bytes([10, 0, 0, 1])
STACK_IP = bytes([10, 0, 0, 2])
ISN = 6510  # lwIP's first initial sequence number while tcp_ticks is 0 (fuzz_netif.c)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- Ethernet / IPv4 / TCP ----------------------------------------------------------------

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(payload, etype=0x0800, dst=STACK_MAC):
    return dst + PEER_MAC + struct.pack("!H", etype) + payload


def ipv4(proto, l4, ident=1, frag=0, src=PEER_IP, dst=STACK_IP, tot=None, ihl=5):
    opts = b"\x01" * (4 * ihl - 20)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot or 4 * ihl + len(l4), ident, frag, 64,
                      proto, 0, src, dst) + opts
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def tcp(sport, dport, seq, ack, flags, payload=b"", opts=b"", win=65535, doff=None):
    off = doff if doff is not None else (20 + len(opts)) // 4
    h = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4,
                    flags, win, 0, 0) + opts
    pseudo = PEER_IP + STACK_IP + struct.pack("!BBH", 0, 6, len(h) + len(payload))
    c = csum(pseudo + h + payload)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload


FIN, SYN, RST, PSH, ACK, URG = 1, 2, 4, 8, 16, 32
MSS = b"\x02\x04\x05\xb4"
OPTS_ALL = MSS + b"\x01\x03\x03\x07" + b"\x04\x02" + b"\x08\x0a" + b"\0\0\0\1\0\0\0\0" + b"\0\0"


def seg(sport, dport, seq, ack, flags, payload=b"", **kw):
    return eth(ipv4(6, tcp(sport, dport, seq, ack, flags, payload, **kw)))


def arp_request():
    a = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER_MAC, PEER_IP, b"\0" * 6, STACK_IP)
    return eth(a, 0x0806, b"\xff" * 6)


def frames(flags, fs):
    out = bytes([flags])
    for f in fs:
        out += struct.pack("<H", len(f)) + f
    return out


def handshake(sport, dport, opts=MSS):
    return [seg(sport, dport, 1000, 0, SYN, opts=opts), seg(sport, dport, 1001, ISN + 1, ACK)]


def netif_seeds():
    t = "netif"
    p = 40000
    hs = [arp_request()] + handshake(p, 7)
    data = [seg(p, 7, 1001, ISN + 1, PSH | ACK, b"hello\n"),
            seg(p, 7, 1007, ISN + 1, FIN | ACK)]
    write(t, "echo-session", frames(0, hs + data))
    write(t, "echo-session-fixcsum", frames(1, hs + data))
    write(t, "echo-slow-reader", frames(2, hs + data))
    write(t, "echo-close-early", frames(4, hs + data))
    write(t, "echo-timers", frames(8, hs + data + [seg(p, 7, 1008, ISN + 8, ACK)]))
    keep = [arp_request()] + handshake(p, 8) + [
        seg(p, 8, 1001, ISN + 1, PSH | ACK, b"A" * 1000),
        seg(p, 8, 2001, ISN + 1, PSH | ACK, b"B" * 500),
        seg(p, 8, 2501, ISN + 1, FIN | ACK)]
    write(t, "keep-session", frames(0, keep))
    ooo = [arp_request()] + handshake(p, 7) + [
        seg(p, 7, 1011, ISN + 1, ACK, b"0123456789"),   # second segment first
        seg(p, 7, 1031, ISN + 1, ACK, b"abcdefghij"),   # a hole before it
        seg(p, 7, 1001, ISN + 1, ACK, b"ABCDEFGHIJ"),   # fills the first gap
        seg(p, 7, 1005, ISN + 1, ACK, b"overlapping!"),  # overlaps
        seg(p, 7, 1011, ISN + 1, ACK, b"0123456789"),   # duplicate
        seg(p, 7, 1021, ISN + 1, ACK, b"klmnopqrst"),   # fills the hole
        seg(p, 7, 1001 + (1 << 20), ISN + 1, ACK, b"far out of window"),
        seg(p, 7, 1041, ISN + 1, RST)]
    write(t, "out-of-order", frames(0, ooo))
    tcp_full = tcp(p, 7, 1001, ISN + 1, PSH | ACK, b"F" * 1200)
    frag1 = eth(ipv4(6, tcp_full[:800], ident=77, frag=0x2000))
    frag2 = eth(ipv4(6, tcp_full[800:], ident=77, frag=100))
    write(t, "ip-fragments", frames(0, [arp_request()] + handshake(p, 7) + [frag2, frag1]))
    write(t, "ip-fragment-alone", frames(0, [frag1]))
    ping = eth(ipv4(1, b"\x08\x00\x00\x00\x12\x34\x00\x01" + b"ping" * 8))
    udp = eth(ipv4(17, struct.pack("!HHHH", 5000, 9, 12, 0) + b"udp!"))
    write(t, "icmp-udp", frames(1, [arp_request(), ping, udp]))
    ns = (bytes.fromhex("6000000000203aff") + bytes.fromhex("fe80" + "00" * 13 + "01") +
          bytes.fromhex("ff0200000000000000000001ff000002") +
          bytes.fromhex("8700000000000000") + bytes.fromhex("fe80" + "00" * 13 + "02") +
          bytes.fromhex("0101") + PEER_MAC)
    write(t, "ipv6-ns", frames(0, [eth(ns, 0x86DD, b"\x33\x33\xff\x00\x00\x02")]))
    many = [arp_request()]
    for i in range(10):  # more than max_conns (8): the last ones are refused
        many += handshake(41000 + i, 7) + [seg(41000 + i, 7, 1001, ISN + 1, ACK, b"x")]
    write(t, "many-connections", frames(0, many))
    flood = [seg(42000 + i, 7, 5000 + i, 0, SYN) for i in range(20)]
    write(t, "syn-flood", frames(0, flood))
    write(t, "tcp-options", frames(1, [arp_request()] + handshake(p, 7, OPTS_ALL) +
                                   [seg(p, 7, 1001, ISN + 1, ACK | URG, b"urgent", win=0)]))
    bad = [eth(b""), eth(b"\x45"), seg(p, 7, 1, 0, SYN)[:40],
           eth(ipv4(6, tcp(p, 7, 1, 0, SYN), ihl=15)),
           eth(ipv4(6, tcp(p, 7, 1, 0, SYN), tot=2000)),
           seg(p, 7, 1, 0, SYN | FIN | RST | URG),
           seg(p, 7, 1, 0, SYN, doff=15), seg(p, 7, 1, 0, SYN, doff=2),
           bytes(seg(p, 7, 1, 0, SYN)[:-2]) + b"\xff\xff"]
    write(t, "malformed", frames(0, bad))
    write(t, "malformed-fixcsum", frames(1, bad))


# ---- HTTP and RESP ------------------------------------------------------------------------

def http_seeds():
    t = "http"
    reqs = {
        "post": b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "get-query": b"GET /log?from=3&n=10 HTTP/1.1\r\nHost: x\r\n\r\n",
        "pipeline": b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /x HTTP/1.0\r\n\r\n"
                    b"PUT /k HTTP/1.1\r\nHost: b\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        "chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "bad-cl": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\nContent-Length: 3\r\n\r\n",
        "folding": b"GET / HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n",
        "bare-lf": b"GET / HTTP/1.1\nHost: x\n\n",
        "version": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        "connection": b"DELETE /k HTTP/1.1\r\nHost: x\r\nConnection: close, keep-alive\r\n\r\n",
        "options-star": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "huge": b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
    }
    for name, r in reqs.items():
        write(t, name, b"\0" + r)
        write(t, name + "-split", bytes([3, 0, 6, 1]) + r)


def resp_seeds():
    t = "resp"
    streams = {
        "set-get": b"*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n",
        "inline": b"PING\r\nSET \"a b\" 'c\\x41' \r\n\r\n",
        "empty": b"*0\r\n*-1\r\n\r\n",
        "big-arg": b"*2\r\n$4\r\nECHO\r\n$40\r\n" + b"x" * 40 + b"\r\n*1\r\n$4\r\nPING\r\n",
        "many-args": b"*20\r\n" + b"$1\r\na\r\n" * 20,
        "errors": b"*2\r\n$3\r\nGET\r\n$-5\r\nfoo\r\n",
        "bad-count": b"*99999999999999999999\r\n",
        "glob": b"*3\r\n$4\r\nKEYS\r\n$5\r\nk[a-c]*\r\n$3\r\n-12\r\n",
    }
    for name, s in streams.items():
        write(t, name, b"\0\0" + s)
        write(t, name + "-tiny-split", bytes([1, 3, 0, 4, 1]) + s)


# ---- pools --------------------------------------------------------------------------------

def sb(pool_size=2 << 20, frame_size=2048, region_used=0, regions=(), clean=1):
    area = 1 << 20
    fao = 4096 + area
    count = (pool_size - fao) // frame_size
    rec = struct.pack("<8sIIQIIQQQQ16sII", b"PASTEPL\0", 1, 0, pool_size, frame_size, count, 4096,
                      area, region_used, fao, bytes(range(16)), clean, len(regions))
    for name, off, size in regions:
        rec += struct.pack("<32sQQ", name.encode(), off, size)
    return rec + b"\0" * (2048 - len(rec))


def pool_seeds(build):
    t = "pool_open"
    write(t, "empty-pool", bytes([7]) + sb())
    write(t, "empty-pool-nofix", bytes([4]) + sb())
    write(t, "backup-only", bytes([6]) + b"\0" * 2048 + sb())
    write(t, "regions", bytes([7]) + sb(region_used=16384, regions=[("a", 4096, 4096),
                                                                   ("b.c", 8192, 8192)]))
    write(t, "log-magic-region", bytes([7]) + sb(region_used=4096, regions=[("wal", 4096, 4096)]) +
          b"\0" * 2048 + struct.pack("<Q", 0x31474f4c45545350))
    write(t, "kv-magic-region", bytes([7]) + sb(region_used=8192, regions=[("kv", 4096, 8192)]) +
          b"\0" * 2048 + struct.pack("<Q", 0x31564b5f45545350))
    write(t, "4k-frames", bytes([7]) + sb(frame_size=4096, pool_size=3 << 20))
    write(t, "not-a-pool", b"\0" + b"hello" * 1000)
    tool = os.path.join(build, "tests", "fuzz", "fuzz-replay-index_recovery")
    if os.path.exists(tool):
        with tempfile.TemporaryDirectory() as d:
            empty, img = os.path.join(d, "empty"), os.path.join(d, "img")
            open(empty, "wb").close()
            subprocess.run([tool, empty], check=True, env=dict(os.environ, PASTE_FUZZ_DUMP_IMAGE=img),
                           stdout=subprocess.DEVNULL)
            with open(img, "rb") as f:
                write(t, "real-indexes", f.read())
    else:
        print("gen_seeds: %s not built: no real-indexes seed" % tool, file=sys.stderr)


def patch(where, off, data):
    return struct.pack("<BIB", where, off, len(data)) + data


def recovery_seeds():
    t = "index_recovery"
    write(t, "clean", b"\0")
    write(t, "unclean", b"\1")
    write(t, "mutate", b"\2")
    write(t, "unclean-mutate", b"\3")
    write(t, "log-head-slot", b"\1" + patch(0, 64, b"\xff" * 8) + patch(0, 128 + 8, b"\x01"))
    write(t, "log-record", b"\1" + patch(0, 256 + 8, b"\xff\xff\xff\x7f") + patch(0, 256 + 40, b"\0" * 8))
    write(t, "small-log", b"\3" + patch(1, 300, b"\x55" * 64))
    write(t, "kv-header", b"\0" + patch(2, 8, b"\xff" * 16))
    write(t, "kv-buckets", b"\1" + patch(2, 4096, b"\x07" * 100) + patch(2, 9000, b"\x00" * 50))
    write(t, "payload", b"\1" + patch(3, 20, b"XXXX") + patch(3, 3000, b"\0" * 200))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build")
    netif_seeds()
    http_seeds()
    resp_seeds()
    pool_seeds(build)
    recovery_seeds()


if __name__ == "__main__":
    main()
