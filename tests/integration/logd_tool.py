#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""logd_tool.py - helpers of the paste-logd integration tests.

  serve PORT OUT          accept one TCP connection, read to EOF, write "bytes sha256" to OUT
  send HOST PORT MB [SEED] [RATE_MBPS]
                          send MB MiB of seeded pseudo-random bytes, print "bytes sha256"
  frames FILE             print one line per frame of a pcap or pcapng file: "sha256 len"
  malformed send IF DST_MAC SRC_MAC
                          send the malformed test frames (and one well-formed frame of an unknown
                          EtherType) out of IF through a packet socket
  malformed count FILE    print "malformed=N odd=M": how many frames of FILE are test frames
  tail N FILE             write the last N frames of FILE as a pcap file to standard output
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


def test_frames(dst, src):
    """Frames whose headers do not fit them, and one fine frame of EtherType 0x88b5."""
    eth = bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", ""))
    ip = eth + b"\x08\x00"

    def ipv4(ihl, tot, proto, payload):
        h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot, 0x1234, 0, 64, proto, 0,
                        socket.inet_aton("10.77.0.1"), socket.inet_aton("10.77.0.2"))
        return h + payload

    bad = [
        ip,  # no IPv4 header at all
        ip + ipv4(3, 40, 17, b"\0" * 20)[:20] + b"\0" * 20,  # IHL 3
        ip + ipv4(5, 1400, 17, b"\0" * 26),  # total length past the frame
        ip + ipv4(5, 40, 6, struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 0x20, 0, 0, 0, 0)),  # doff 2
        ip + ipv4(5, 24, 17, b"\0\x09\0"),  # UDP header cut off by the frame
    ]
    odd = eth + b"\x88\xb5" + b"paste-logd odd ethertype".ljust(46, b".")
    return bad, odd


def malformed(cmd, *args):
    if cmd == "send":
        ifname, dst, src = args
        bad, odd = test_frames(dst, src)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((ifname, 0))
        for fr in bad + [odd]:
            s.send(fr)
        print(f"sent={len(bad) + 1}")
        return 0
    path = args[0]
    bad, odd = test_frames("00:00:00:00:00:00", "00:00:00:00:00:00")
    n = m = 0
    for fr in frames(path):
        # compare without the MAC addresses
        if any(fr[12:] == b[12:] for b in bad):
            n += 1
        elif fr[12:] == odd[12:]:
            m += 1
    print(f"malformed={n} odd={m}")
    return 0


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
    elif cmd == "malformed":
        return malformed(*args)
    elif cmd == "tail":
        frs = list(frames(args[1]))[-int(args[0]):]
        out = sys.stdout.buffer
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for fr in frs:
            out.write(struct.pack("<IIII", 0, 0, len(fr), len(fr)) + fr)
    elif cmd == "subset":
        return subset(*args)
    else:
        raise SystemExit(f"unknown command {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
