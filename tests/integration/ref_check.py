#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""tests/integration/ref_check.py - protocol and durability checks of the reference WAL servers
(bench/ref-epoll.c, bench/ref-uring.c), driven by tests/integration/test_ref_servers.sh.

  ref_check.py proto --host H --port P --acks FILE
      POST bodies of 1, 1280, 7999 and 8192 bytes (whole, in small pieces over time, and
      several requests pipelined in one send), a Connection: close POST (201, then EOF), GET
      /stats, DELETE, a malformed head (400 and close), a body over 8192 bytes (413 and close).
      Writes "seq size seed" for every 201 to FILE.
  ref_check.py verify --pool FILE --kind ref-epoll|ref-uring --acks FILE
      After the server stopped: every acknowledged record is in the log with its seq, its body
      byte for byte and its CRC32C.
"""
import argparse
import socket
import struct
import sys
import time


def body(size, seed):
    return bytes((i * 131 + seed * 7 + 3) % 251 for i in range(size))


def post(size, seed, close=False):
    return (b"POST /log HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n"
            % (size, b"Connection: close\r\n" if close else b"") + body(size, seed))


def read_reply(s, buf):
    """One HTTP reply (head + Content-Length body) from socket @s; @buf holds leftovers."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise AssertionError(f"EOF before a reply head (have {buf[:200]!r})")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    clen = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v)
    while len(rest) < clen:
        d = s.recv(65536)
        if not d:
            raise AssertionError("EOF inside a reply body")
        rest += d
    status = int(head.split(b" ")[1])
    hdrs = {l.partition(b":")[0].strip().lower(): l.partition(b":")[2].strip()
            for l in head.split(b"\r\n")[1:]}
    return status, hdrs, rest[:clen], rest[clen:]


def expect_created(s, buf, acks, size, seed, last):
    status, h, b, buf = read_reply(s, buf)
    assert status == 201, f"status {status}, expected 201"
    seq = int(h[b"x-seq"])
    assert seq > last, f"seq {seq} after {last}"
    assert b == b'{"seq":%d}\n' % seq, f"body {b!r}"
    assert h[b"location"] == b"/log/%d" % seq, f"location {h[b'location']!r}"
    acks.append((seq, size, seed))
    return seq, buf


def connect(a):
    s = socket.create_connection((a.host, a.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def expect_eof(s):
    s.settimeout(10)
    while True:
        if not s.recv(65536):
            return


def proto(a):
    acks, last, seed = [], 0, 0
    s = connect(a)
    buf = b""
    for size in (1, 1280, 7999, 8192):  # whole
        seed += 1
        s.sendall(post(size, seed))
        last, buf = expect_created(s, buf, acks, size, seed, last)
    for size in (1280, 7999, 8192):  # in pieces over time: many receive buffers per body
        seed += 1
        m = post(size, seed)
        for i in range(0, len(m), 300):
            s.sendall(m[i:i + 300])
            time.sleep(0.002)
        last, buf = expect_created(s, buf, acks, size, seed, last)
    batch = []  # pipelined: 20 requests in one send
    for i in range(20):
        seed += 1
        batch.append((100 + 97 * i, seed))
    s.sendall(b"".join(post(n, sd) for n, sd in batch))
    for n, sd in batch:
        last, buf = expect_created(s, buf, acks, n, sd, last)
    s.sendall(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _, b, buf = read_reply(s, buf)
    assert status == 200 and b'"appended":%d' % len(acks) in b, f"/stats: {status} {b!r}"
    s.sendall(b"DELETE /log?upto=5 HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _, _, buf = read_reply(s, buf)
    assert status == 200, f"DELETE: {status}"
    s.sendall(b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _, _, buf = read_reply(s, buf)
    assert status == 404, f"GET /nothing: {status}"
    seed += 1
    s.sendall(post(640, seed, close=True))
    last, buf = expect_created(s, buf, acks, 640, seed, last)
    expect_eof(s)
    for req, want in ((b"NOT HTTP\r\n\r\n", 400),
                      (b"POST /log HTTP/1.1\r\nHost: t\r\nContent-Length: 8193\r\n\r\n", 413)):
        s = connect(a)
        s.sendall(req)
        status, _, _, _ = read_reply(s, b"")
        assert status == want, f"{req[:20]!r}: {status}, expected {want}"
        expect_eof(s)
    with open(a.acks, "w") as f:
        for seq, size, sd in acks:
            f.write(f"{seq} {size} {sd}\n")
    print(f"proto: {len(acks)} records acknowledged, replies and closes as expected")


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def verify(a):
    data = open(a.pool, "rb").read()
    acks = [tuple(map(int, l.split())) for l in open(a.acks) if l.strip()]
    found = {}
    if a.kind == "ref-epoll":
        off = 4096
        while off + 16 <= len(data):
            seq, ln, crc = struct.unpack_from("<QII", data, off)
            if seq == 0:
                break
            found[seq] = (data[off + 16:off + 16 + ln], crc)
            off += (16 + ln + 63) & ~63
    else:
        area = len(data) - 4096
        dbytes = (area // 16) & ~4095
        ndesc = dbytes // 64
        bufs = 4096 + dbytes
        for seq, _, _ in acks:
            d = 4096 + (seq % ndesc) * 64
            s, ln, crc, n, _ = struct.unpack_from("<QIIII", data, d)
            got = b""
            for i in range(min(n, 5)):
                o, bo, pl = struct.unpack_from("<IHH", data, d + 24 + 8 * i)
                p = bufs + o * 2048 + bo
                got += data[p:p + pl]
            found[s] = (got, crc)
    for seq, size, seed in acks:
        assert seq in found, f"record {seq} not in the log"
        got, crc = found[seq]
        assert got == body(size, seed), f"record {seq}: body differs ({len(got)} vs {size} bytes)"
        assert crc == crc32c(got), f"record {seq}: crc {crc:#x} != {crc32c(got):#x}"
    print(f"verify: {len(acks)} acknowledged records in the log, bodies and CRC32C match")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("proto")
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--acks", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--pool", required=True)
    v.add_argument("--kind", required=True, choices=("ref-epoll", "ref-uring"))
    v.add_argument("--acks", required=True)
    a = p.parse_args()
    try:
        proto(a) if a.cmd == "proto" else verify(a)
    except (AssertionError, OSError) as e:
        print(f"ref_check {a.cmd}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
