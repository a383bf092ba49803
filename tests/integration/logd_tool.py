#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""logd_tool.py - helpers of the paste-logd integration tests.

  serve PORT OUT          accept one TCP connection, read to EOF, write "bytes sha256" to OUT
  send HOST PORT MB [SEED] [RATE_MBPS]
                          send MB MiB of seeded pseudo-random bytes, print "bytes sha256"
  frames FILE             print one line per frame of a pcap or pcapng file: "sha256 len"
  subset CAPTURE EXPORT   check that every frame of CAPTURE is in EXPORT (as multisets); print
                          "captured=N logged=M missing=K" and exit 1 if K > 0
"""
import hashlib
import random
import socket
import struct
import sys
import time


def serve(port, out):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", int(port)))
    ls.listen(1)
    c, _ = ls.accept()
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    c.close()
    with open(out, "w") as f:
        f.write(f"{n} {h.hexdigest()}\n")


def send(host, port, mb, seed=1, rate=0):
    rng = random.Random(int(seed))
    s = socket.create_connection((host, int(port)), timeout=60)
    h, n, total = hashlib.sha256(), 0, int(mb) << 20
    t0 = time.monotonic()
    while n < total:
        b = rng.randbytes(min(1 << 16, total - n))
        s.sendall(b)
        h.update(b)
        n += len(b)
        if float(rate) > 0:  # MB/s pacing, so a kill lands mid-transfer
            ahead = n / (float(rate) * 1e6) - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    print(f"{n} {h.hexdigest()}")


def frames(path):
    """Yield the frames of a pcap (us or ns) or pcapng file."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack_from("<IIII", data, off)[2]
            yield data[off + 16:off + 16 + incl]
            off += 16 + incl
        return
    if magic != 0x0A0D0D0A:
        raise SystemExit(f"{path}: not a pcap or pcapng file")
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if blen < 12 or off + blen > len(data):
            raise SystemExit(f"{path}: bad block at {off}")
        if btype == 6:
            caplen = struct.unpack_from("<I", data, off + 20)[0]
            yield data[off + 28:off + 28 + caplen]
        off += blen


def hashes(path):
    d = {}
    for fr in frames(path):
        k = hashlib.sha256(fr).hexdigest()
        d[k] = d.get(k, 0) + 1
    return d


def subset(cap, exp):
    c, e = hashes(cap), hashes(exp)
    missing = sum(max(0, n - e.get(k, 0)) for k, n in c.items())
    print(f"captured={sum(c.values())} logged={sum(e.values())} missing={missing}")
    return 1 if missing else 0


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, args = argv[1], argv[2:]
    if cmd == "serve":
        serve(*args)
    elif cmd == "send":
        send(*args)
    elif cmd == "frames":
        for fr in frames(args[0]):
            print(hashlib.sha256(fr).hexdigest(), len(fr))
    elif cmd == "subset":
        return subset(*args)
    else:
        raise SystemExit(f"unknown command {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
